/*
 * vlog.c - the value log: reads of out-of-line values by reference (batched, with read-ahead),
 * live-byte accounting per segment, and log GC. See vlog.h for the contract.
 *
 * A value reference (struct wal_vref) names a log position pos and a length len; the log holds
 *   pos      u32  layout_cksum(value)
 *   pos + 4  len  value bytes
 * inside a BATCH record (written by store/wal) or inside a MOVE record (written here by GC).
 *
 * MOVE record payload (record type LOG_REC_MOVE; infra/layout frame; integers LE,
 * varint = unsigned LEB128); docs/FORMAT.md "Value log GC records (MOVE)" keeps a copy:
 *   off  size  field
 *     0     4  n: entries, >= 1
 *     4     .  n entries, each:
 *              8  table id
 *              8  seq of the batch that wrote the value
 *              8  old_pos: the value's previous reference position (its length is vlen);
 *                 its segment is below this record's segment
 *              v  klen (1 .. WAL_KEY_MAX), then klen key bytes
 *              v  vlen (1 .. WAL_VAL_MAX)
 *              4  layout_cksum(value)   <- the new reference points here:
 *                                          new pos = record pos + 32 + offset of this field
 *           vlen  value bytes
 *   nothing after the last entry.
 *
 * Reads. A request is classified once, in submission order:
 *   - beyond the log end, segment 0 or a segment not yet created: JDB_ECORRUPT;
 *   - in the current segment reaching above the written mark: wal_read (the bytes above it are
 *     in the wal's buffers; a streamed flush leaves the mark on a block boundary, so a value may
 *     straddle it, and wal_read takes the part below from the file);
 *   - inside the read-ahead window: copied from it;
 *   - else a file read of the segment (vlog's own read-only handle): either a window fill, when
 *     it continues a run of increasing positions in one segment (later requests of the batch
 *     that fall in the window wait for that fill), or two ops (checksum, value into dst).
 * Every op of the batch is queued, then one fs_flush, then the call waits for all of them.
 * Segment handles are cached (VLOG_FILES, LRU) and pinned while an op uses them; a handle whose
 * segment is dropped while pinned is closed by its last unpin. When every handle is pinned the
 * request falls back to wal_read after the submission.
 *
 * Read-ahead window states (function making the transition):
 *   EMPTY --vlog_read_batch: a run continues--> FILLING (owned by that batch; others bypass it)
 *   FILLING --the owner's wait completes--> VALID (or EMPTY on error or a drop meanwhile)
 *   VALID --another run elsewhere--> FILLING;  VALID --vlog_segment_drop of its segment--> EMPTY
 *
 * GC of one segment S (vlog_gc_segment), and why a crash anywhere loses nothing:
 *   1. walk S from its SEG record to its END record, every record verified; for each out-of-line
 *      value (BATCH ops, entries of earlier MOVE records) ask live(); pack the live ones into
 *      MOVE records (wal_append_record). vlog_gc_replay_cap() reports the first one's position.
 *   2. wal_sync: the MOVE records are durable, and so is every write that made a value of S dead
 *      (done even when nothing is moved: a replaced value is dead only once its replacement is).
 *   3. moved() for each: the caller points its index at the new reference.
 *   4. vlog_segment_drop(S).
 *   S lies before the durable checkpoint's replay position, so the checkpoint's index may point
 *   into S and recovery never replays S; the MOVE records lie after that position, so recovery
 *   replays them. Crash before 2 completes: S is intact and every old reference still valid (a
 *   MOVE record that did survive only redirects to an equal, valid copy). Crash after 2: the MOVE
 *   records are durable and replayed, redirecting every reference into S that moved() redirected.
 *   A checkpoint made durable between 1 and 3 with a replay position past a MOVE record would
 *   both miss the redirection and skip the record; callers cap checkpoints with
 *   vlog_gc_replay_cap(). A moved() that says the key changed meanwhile leaves the index alone:
 *   the change was appended before the MOVE record or will be replayed after it, and MOVE
 *   entries are applied only when the index still names old_pos.
 *
 * Invariants:
 *   files[i].pins counts ops (and GC walks) using the handle; a pinned handle is never closed.
 *   win_state == FILLING iff one batch owns win_op and it is in flight or not yet waited for.
 *   acct is sorted by segment, one entry per segment something was reported for.
 *   gc_cap != UINT64_MAX only while vlog_gc runs with MOVE records appended and unreported.
 */
#include "vlog.h"

#include "err.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VLOG_FILES 16
#define VLOG_RA_DEFAULT (128u << 10)
#define VLOG_RA_MIN (4u << 10)
#define VLOG_RA_MAX (16u << 20)
#define VLOG_RA_TRIGGER 2            /* the 2nd read of an increasing run fills the window */
#define VLOG_WALK_CHUNK (256u << 10)
#define VLOG_MOVE_DEFAULT (64u << 10)
#define VLOG_MOVE_MIN (4u << 10)
#define VLOG_MOVE_MAX (64u << 20)
#define VLOG_MOVE_HDR 4u
#define VLOG_MOVE_ENTRY_FIXED 24u    /* table id, seq, old_pos */
#define VLOG_MOVE_ENTRY_MIN (VLOG_MOVE_ENTRY_FIXED + 1 + 1 + 1 + 4 + 1)
#define VLOG_PATH_MAX 4096

enum { VLOG_M_NONE = 0, VLOG_M_DONE, VLOG_M_FILE, VLOG_M_WIN, VLOG_M_SYNC };
enum { VLOG_WIN_EMPTY = 0, VLOG_WIN_FILLING, VLOG_WIN_VALID };

struct vlog_file {
  uint32_t seg;
  struct fs_file *f;
  uint64_t size;
  uint64_t used;                /* LRU clock */
  uint32_t pins;
  int doomed;                   /* segment dropped: close at the last unpin */
};

struct vlog_pending {           /* a value packed into a MOVE record, not yet reported */
  uint64_t table_id, seq;
  size_t key_off;
  uint32_t klen;
  struct wal_vref old;
  uint32_t payload_off;         /* offset of its checksum within the MOVE payload */
  uint64_t new_pos;             /* 0 until its record is appended */
};

struct vlog_cand {
  uint32_t seg;
  uint64_t live;
};

struct vlog {
  struct fs_ctx *ctx;
  struct wal *w;
  char *dir;
  struct vlog_opts o;
  struct vlog_file files[VLOG_FILES];
  uint64_t file_clock;
  /* read-ahead */
  uint8_t *win;
  uint32_t win_cap;
  int win_state;
  uint32_t win_seg;
  uint64_t win_off;
  uint32_t win_len;
  uint64_t win_gen;             /* bumped by every drop: a fill in flight then is not kept */
  int win_file;
  struct fs_op win_op;
  uint32_t ra_seg;              /* the run of increasing reads */
  uint64_t ra_end;
  uint32_t ra_run;
  /* accounting */
  struct vlog_seg_info *acct;
  size_t nacct, cap_acct;
  /* GC */
  int gc_running;
  uint64_t gc_cap;
  uint8_t *walk;
  size_t walk_cap;
  uint8_t *mv;                  /* MOVE payload being packed */
  size_t mv_cap, mv_len;
  uint32_t mv_n;
  struct vlog_pending *pend;
  size_t npend, cap_pend, pend_fixed;
  uint8_t *keys;
  size_t keys_len, keys_cap;
  uint32_t *segs;
  size_t cap_segs;
  struct vlog_cand *cand;
  size_t cap_cand;
  struct vlog_stats st;
};

/* ------------------------------------------------------------------------------------------- */
/* Open / close */

int vlog_open(struct fs_ctx *ctx, struct wal *w, const char *dir, const struct vlog_opts *opts,
              struct vlog **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!ctx || !w || !dir || !*dir || strlen(dir) > VLOG_PATH_MAX - 32)
    return JDB_EINVAL;
  struct vlog_opts o = {.readahead_bytes = VLOG_RA_DEFAULT, .move_record_bytes = VLOG_MOVE_DEFAULT};
  if (opts) {
    if (opts->readahead_bytes)
      o.readahead_bytes = opts->readahead_bytes;
    if (opts->move_record_bytes)
      o.move_record_bytes = opts->move_record_bytes;
    o.readahead_off = opts->readahead_off;
  }
  if (o.readahead_bytes < VLOG_RA_MIN || o.readahead_bytes > VLOG_RA_MAX ||
      o.move_record_bytes < VLOG_MOVE_MIN || o.move_record_bytes > VLOG_MOVE_MAX)
    return JDB_EINVAL;
  struct vlog *v = mem_calloc(1, sizeof *v);
  if (!v)
    return JDB_ENOMEM;
  v->ctx = ctx;
  v->w = w;
  v->o = o;
  v->gc_cap = UINT64_MAX;
  v->win_file = -1;
  v->dir = mem_malloc(strlen(dir) + 1);
  v->win_cap = o.readahead_bytes;
  v->win = mem_malloc(v->win_cap);
  v->walk_cap = VLOG_WALK_CHUNK;
  v->walk = mem_malloc(v->walk_cap);
  v->mv_cap = (size_t)o.move_record_bytes + 4096;
  v->mv = mem_malloc(v->mv_cap);
  v->cap_pend = 256;
  v->pend = mem_calloc(v->cap_pend, sizeof *v->pend);
  v->keys_cap = 16u << 10;
  v->keys = mem_malloc(v->keys_cap);
  if (!v->dir || !v->win || !v->walk || !v->mv || !v->pend || !v->keys) {
    vlog_close(v);
    return JDB_ENOMEM;
  }
  memcpy(v->dir, dir, strlen(dir) + 1);
  *out = v;
  return JDB_OK;
}

void vlog_close(struct vlog *v)
{
  if (!v)
    return;
  JDB_ASSERT(!v->gc_running);
  JDB_ASSERT(v->win_state != VLOG_WIN_FILLING);
  for (int i = 0; i < VLOG_FILES; i++) {
    JDB_ASSERT(v->files[i].pins == 0);
    if (v->files[i].f)
      fs_file_close(v->ctx, v->files[i].f);
  }
  mem_free(v->dir);
  mem_free(v->win);
  mem_free(v->walk);
  mem_free(v->mv);
  mem_free(v->pend);
  mem_free(v->keys);
  mem_free(v->segs);
  mem_free(v->cand);
  mem_free(v->acct);
  mem_free(v);
}

void vlog_stats_get(const struct vlog *v, struct vlog_stats *out)
{
  *out = v->st;
}

/* ------------------------------------------------------------------------------------------- */
/* Segment handles */

/* A pinned read-only handle of segment seg in files[*idx]. JDB_EBUSY when every slot is pinned;
   JDB_ECORRUPT when the segment does not exist (a reference to it is dangling). */
static int vlog_file_get(struct vlog *v, uint32_t seg, int *idx)
{
  int victim = -1;
  for (int i = 0; i < VLOG_FILES; i++) {
    struct vlog_file *f = &v->files[i];
    if (f->f && f->seg == seg && !f->doomed) {
      f->used = ++v->file_clock;
      f->pins++;
      *idx = i;
      return JDB_OK;
    }
    if (f->pins)
      continue;
    /* An empty slot wins; else the least recently used unpinned one. */
    if (victim < 0 || (v->files[victim].f && (!f->f || f->used < v->files[victim].used)))
      victim = i;
  }
  if (victim < 0)
    return JDB_EBUSY;
  struct vlog_file *f = &v->files[victim];
  if (f->f) {
    fs_file_close(v->ctx, f->f);
    f->f = NULL;
  }
  f->doomed = 0;
  char path[VLOG_PATH_MAX];
  snprintf(path, sizeof path, "%s/%08u.log", v->dir, seg);
  int rc = fs_file_open(v->ctx, path, FS_O_RDONLY, &f->f);
  if (rc) {
    f->f = NULL;
    return rc == JDB_NOTFOUND ? JDB_CORRUPT("log reference to a missing segment", seg) : rc;
  }
  rc = fs_file_size(v->ctx, f->f, &f->size);
  if (rc) {
    fs_file_close(v->ctx, f->f);
    f->f = NULL;
    return rc;
  }
  f->seg = seg;
  f->pins = 1;
  f->used = ++v->file_clock;
  *idx = victim;
  return JDB_OK;
}

static void vlog_file_unpin(struct vlog *v, int idx)
{
  struct vlog_file *f = &v->files[idx];
  JDB_ASSERT(f->pins > 0);
  if (--f->pins == 0 && f->doomed) {
    fs_file_close(v->ctx, f->f);
    f->f = NULL;
    f->doomed = 0;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Reading */

static void vlog_req_done(struct vlog *v, struct vlog_req *r, int rc)
{
  r->result = rc;
  r->mode = VLOG_M_DONE;
  if (rc == JDB_OK)
    v->st.read_bytes += r->ref.len;
  else if (rc == JDB_ECORRUPT)
    v->st.corrupt++;
}

/* The value is in dst and its stored checksum in ck. */
static int vlog_req_verify(const struct vlog_req *r, const uint8_t *ck)
{
  if (layout_cksum(r->dst, r->ref.len) != le32_get(ck))
    return JDB_CORRUPT("log value checksum", r->ref.pos);
  return JDB_OK;
}

/* Copy a request's bytes out of the window (which holds them) and verify. */
static int vlog_req_from_win(struct vlog *v, struct vlog_req *r)
{
  const uint8_t *p = v->win + (LOG_POS_OFF(r->ref.pos) - v->win_off);
  memcpy(r->dst, p + 4, r->ref.len);
  return vlog_req_verify(r, p);
}

static int vlog_win_covers(const struct vlog *v, uint32_t seg, uint64_t off, uint64_t need)
{
  return seg == v->win_seg && off >= v->win_off && off + need <= v->win_off + v->win_len;
}

/* Record a read in the run tracker; 1 when the read continues an increasing run in one segment
   long enough to read ahead. */
static int vlog_ra_note(struct vlog *v, uint32_t seg, uint64_t off, uint64_t need)
{
  int cont = seg == v->ra_seg && off >= v->ra_end && off - v->ra_end <= v->win_cap / 4;
  v->ra_run = cont ? v->ra_run + 1 : 1;
  v->ra_seg = seg;
  v->ra_end = off + need;
  return !v->o.readahead_off && v->ra_run >= VLOG_RA_TRIGGER;
}

/* Classify one request and start its I/O (see the file header). Returns the number of ops
   queued. */
static unsigned vlog_req_start(struct vlog *v, struct vlog_req *r, uint64_t app, uint64_t wr,
                               int *own_win)
{
  uint64_t pos = r->ref.pos;
  uint32_t seg = LOG_POS_SEG(pos), cur = LOG_POS_SEG(app);
  uint64_t off = LOG_POS_OFF(pos), need = 4 + (uint64_t)r->ref.len;
  int rc;
  if (seg == 0 || seg > cur) {
    vlog_req_done(v, r, JDB_CORRUPT("log reference to a segment not written yet", pos));
    return 0;
  }
  uint64_t bound = UINT64_MAX;
  if (seg == cur) {
    if (off + need > LOG_POS_OFF(app)) {
      vlog_req_done(v, r, JDB_CORRUPT("log reference past the log end", pos));
      return 0;
    }
    if (off + need > LOG_POS_OFF(wr)) {
      /* Not (all) handed to the kernel yet: wal_read finds each byte in the wal's buffers or,
         below the written mark, in the file. */
      v->st.mem_reads++;
      rc = wal_read(v->w, pos, r->ck, 4);
      if (rc == JDB_OK)
        rc = wal_read(v->w, pos + 4, r->dst, r->ref.len);
      if (rc == JDB_OK)
        rc = vlog_req_verify(r, r->ck);
      vlog_req_done(v, r, rc);
      return 0;
    }
    bound = LOG_POS_OFF(wr);
  }
  if (v->win_state == VLOG_WIN_VALID && vlog_win_covers(v, seg, off, need)) {
    v->st.ra_hits++;
    vlog_ra_note(v, seg, off, need);
    vlog_req_done(v, r, vlog_req_from_win(v, r));
    return 0;
  }
  if (*own_win && vlog_win_covers(v, seg, off, need)) {
    v->st.ra_hits++;
    vlog_ra_note(v, seg, off, need);
    r->mode = VLOG_M_WIN;
    return 0;
  }
  int fi;
  rc = vlog_file_get(v, seg, &fi);
  if (rc == JDB_EBUSY) {
    r->mode = VLOG_M_SYNC;
    return 0;
  }
  if (rc) {
    vlog_req_done(v, r, rc);
    return 0;
  }
  struct vlog_file *f = &v->files[fi];
  if (bound > f->size)
    bound = f->size;
  if (off + need > bound) {
    vlog_file_unpin(v, fi);
    vlog_req_done(v, r, JDB_CORRUPT("log reference past the segment end", pos));
    return 0;
  }
  if (vlog_ra_note(v, seg, off, need) && !*own_win && v->win_state != VLOG_WIN_FILLING &&
      need <= v->win_cap) {
    uint64_t len = bound - off < v->win_cap ? bound - off : v->win_cap;
    fs_op_prep_read(&v->win_op, f->f, v->win, (uint32_t)len, off);
    rc = fs_submit(v->ctx, &v->win_op);
    if (rc == JDB_OK) {
      v->win_state = VLOG_WIN_FILLING;
      v->win_seg = seg;
      v->win_off = off;
      v->win_len = (uint32_t)len;
      v->win_file = fi;
      *own_win = 1;
      v->st.ra_fills++;
      r->mode = VLOG_M_WIN;
      return 1;
    }
    /* fall through to a direct read */
  }
  v->st.direct_reads++;
  fs_op_prep_read(&r->op_ck, f->f, r->ck, 4, off);
  fs_op_prep_read(&r->op_val, f->f, r->dst, r->ref.len, off + 4);
  rc = fs_submit(v->ctx, &r->op_ck);
  if (rc == JDB_OK) {
    r->nsub = 1;
    rc = fs_submit(v->ctx, &r->op_val);
    if (rc == JDB_OK)
      r->nsub = 2;
  }
  r->file = (int8_t)fi;
  r->mode = VLOG_M_FILE;
  r->result = rc;
  return r->nsub;
}

/* Wait for a FILE request's ops and finish it. */
static void vlog_req_finish_file(struct vlog *v, struct vlog_req *r)
{
  int rc = r->result;
  int rc_ck = r->nsub >= 1 ? fs_wait(v->ctx, &r->op_ck) : JDB_OK;
  int rc_val = r->nsub >= 2 ? fs_wait(v->ctx, &r->op_val) : JDB_OK;
  vlog_file_unpin(v, r->file);
  r->file = -1;
  if (rc == JDB_OK)
    rc = rc_ck ? rc_ck : rc_val;
  if (rc == JDB_OK && ((uint32_t)r->op_ck.result != 4 ||
                       (uint32_t)r->op_val.result != r->ref.len))
    rc = JDB_CORRUPT("short log segment", r->ref.pos);
  if (rc == JDB_OK)
    rc = vlog_req_verify(r, r->ck);
  vlog_req_done(v, r, rc);
}

int vlog_read_batch(struct vlog *v, struct vlog_req *reqs, size_t n)
{
  if (!v || !reqs || n == 0)
    return JDB_EINVAL;
  uint64_t app = wal_append_pos(v->w), wr = wal_written_pos(v->w);
  uint64_t gen = v->win_gen;
  int own_win = 0;
  size_t queued = 0;
  for (size_t i = 0; i < n; i++) {
    struct vlog_req *r = &reqs[i];
    r->mode = VLOG_M_NONE;
    r->nsub = 0;
    r->file = -1;
    r->result = JDB_OK;
    v->st.reads++;
    if (!r->dst || r->ref.len == 0 || r->ref.len > WAL_VAL_MAX) {
      vlog_req_done(v, r, JDB_EINVAL);
      continue;
    }
    queued += vlog_req_start(v, r, app, wr, &own_win);
  }
  if (queued) {
    v->st.batches++;
    fs_flush(v->ctx);   /* a backend failure completes the queued ops with the error */
  }
  /* While the kernel works: requests that found no free handle go through the wal. */
  for (size_t i = 0; i < n; i++) {
    struct vlog_req *r = &reqs[i];
    if (r->mode != VLOG_M_SYNC)
      continue;
    int rc = wal_read(v->w, r->ref.pos, r->ck, 4);
    if (rc == JDB_OK)
      rc = wal_read(v->w, r->ref.pos + 4, r->dst, r->ref.len);
    if (rc == JDB_OK)
      rc = vlog_req_verify(r, r->ck);
    v->st.direct_reads++;
    vlog_req_done(v, r, rc);
  }
  for (size_t i = 0; i < n; i++)
    if (reqs[i].mode == VLOG_M_FILE)
      vlog_req_finish_file(v, &reqs[i]);
  if (own_win) {
    int rc = fs_wait(v->ctx, &v->win_op);
    vlog_file_unpin(v, v->win_file);
    v->win_file = -1;
    if (rc == JDB_OK)
      v->win_len = (uint32_t)v->win_op.result;   /* short only if the file shrank */
    for (size_t i = 0; i < n; i++) {
      struct vlog_req *r = &reqs[i];
      if (r->mode != VLOG_M_WIN)
        continue;
      int rr = rc;
      if (rr == JDB_OK && !vlog_win_covers(v, LOG_POS_SEG(r->ref.pos), LOG_POS_OFF(r->ref.pos),
                                            4 + (uint64_t)r->ref.len))
        rr = JDB_CORRUPT("short log segment", r->ref.pos);
      if (rr == JDB_OK)
        rr = vlog_req_from_win(v, r);
      vlog_req_done(v, r, rr);
    }
    v->win_state = rc == JDB_OK && v->win_gen == gen ? VLOG_WIN_VALID : VLOG_WIN_EMPTY;
  }
  for (size_t i = 0; i < n; i++) {
    JDB_ASSERT(reqs[i].mode == VLOG_M_DONE);
    if (reqs[i].result != JDB_OK)
      return reqs[i].result;
  }
  return JDB_OK;
}

int vlog_read(struct vlog *v, struct wal_vref ref, void *dst)
{
  struct vlog_req r = {.ref = ref, .dst = dst};
  return vlog_read_batch(v, &r, 1);
}

/* ------------------------------------------------------------------------------------------- */
/* Accounting */

/* Index of the first entry with segment >= seg. */
static size_t vlog_acct_lower(const struct vlog *v, uint32_t seg)
{
  size_t lo = 0, hi = v->nacct;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v->acct[mid].seg < seg)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static struct vlog_seg_info *vlog_acct_get(struct vlog *v, uint32_t seg)
{
  size_t i = vlog_acct_lower(v, seg);
  if (i < v->nacct && v->acct[i].seg == seg)
    return &v->acct[i];
  if (v->nacct == v->cap_acct) {
    size_t cap = v->cap_acct ? v->cap_acct * 2 : 64;
    struct vlog_seg_info *p = mem_realloc(v->acct, cap * sizeof *p);
    if (!p)
      return NULL;
    v->acct = p;
    v->cap_acct = cap;
  }
  memmove(&v->acct[i + 1], &v->acct[i], (v->nacct - i) * sizeof *v->acct);
  v->nacct++;
  v->acct[i] = (struct vlog_seg_info){.seg = seg};
  return &v->acct[i];
}

static void vlog_acct_forget(struct vlog *v, uint32_t seg)
{
  size_t i = vlog_acct_lower(v, seg);
  if (i < v->nacct && v->acct[i].seg == seg) {
    memmove(&v->acct[i], &v->acct[i + 1], (v->nacct - i - 1) * sizeof *v->acct);
    v->nacct--;
  }
}

int vlog_account_add(struct vlog *v, struct wal_vref ref)
{
  if (!v || ref.len == 0 || LOG_POS_SEG(ref.pos) == 0)
    return JDB_EINVAL;
  struct vlog_seg_info *s = vlog_acct_get(v, LOG_POS_SEG(ref.pos));
  if (!s)
    return JDB_ENOMEM;
  s->live_values++;
  s->live_bytes += ref.len;
  return JDB_OK;
}

int vlog_account_load(struct vlog *v, uint32_t seg, uint64_t values, uint64_t bytes)
{
  if (!v || seg == 0 || (values == 0) != (bytes == 0) || bytes < values)
    return JDB_EINVAL;
  if (values == 0)
    return JDB_OK;
  struct vlog_seg_info *s = vlog_acct_get(v, seg);
  if (!s)
    return JDB_ENOMEM;
  s->live_values += values;
  s->live_bytes += bytes;
  return JDB_OK;
}

int vlog_account_dead(struct vlog *v, struct wal_vref ref)
{
  if (!v || ref.len == 0 || LOG_POS_SEG(ref.pos) == 0)
    return JDB_EINVAL;
  struct vlog_seg_info *s = vlog_acct_get(v, LOG_POS_SEG(ref.pos));
  if (!s)
    return JDB_ENOMEM;
  s->dead_values++;
  s->dead_bytes += ref.len;
  if (s->live_values == 0 || s->live_bytes < ref.len)
    v->st.acct_underflows++;
  s->live_values = s->live_values ? s->live_values - 1 : 0;
  s->live_bytes = s->live_bytes >= ref.len ? s->live_bytes - ref.len : 0;
  return JDB_OK;
}

int vlog_account_get(const struct vlog *v, uint32_t seg, struct vlog_seg_info *out)
{
  if (!out)
    return JDB_EINVAL;
  memset(out, 0, sizeof *out);
  if (!v)
    return JDB_EINVAL;
  out->seg = seg;
  size_t i = vlog_acct_lower(v, seg);
  if (i < v->nacct && v->acct[i].seg == seg) {
    *out = v->acct[i];
    return JDB_OK;
  }
  return JDB_NOTFOUND;
}

/* ------------------------------------------------------------------------------------------- */
/* Dropping segments */

int vlog_segment_drop(struct vlog *v, uint32_t seg)
{
  if (!v)
    return JDB_EINVAL;
  uint32_t cur = LOG_POS_SEG(wal_append_pos(v->w));
  if (seg == 0 || seg >= cur)
    return JDB_EINVAL;
  for (int i = 0; i < VLOG_FILES; i++) {
    struct vlog_file *f = &v->files[i];
    if (!f->f || f->seg != seg || f->doomed)
      continue;
    if (f->pins) {
      f->doomed = 1;
    } else {
      fs_file_close(v->ctx, f->f);
      f->f = NULL;
    }
  }
  v->win_gen++;
  if (v->win_state == VLOG_WIN_VALID && v->win_seg == seg)
    v->win_state = VLOG_WIN_EMPTY;
  if (v->ra_seg == seg)
    v->ra_run = 0;
  int rc = wal_segment_drop(v->w, seg);
  if (rc)
    return rc;
  vlog_acct_forget(v, seg);
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* MOVE records */

/* Parse a MOVE payload. fn == NULL: check everything (values' checksums included) and call
   nothing; else call fn per entry (the payload was checked before). */
static int vlog_move_parse(const struct wal_rec *rec, vlog_move_fn fn, void *ud)
{
  struct codec_rd rd;
  codec_rd_init(&rd, rec->payload, rec->len);
  uint32_t n = codec_rd_u32(&rd);
  if (rd.err || n == 0 || n > rec->len / VLOG_MOVE_ENTRY_MIN)
    return JDB_CORRUPT("log move record header", rec->pos);
  for (uint32_t i = 0; i < n; i++) {
    struct vlog_move_entry e;
    e.table_id = codec_rd_u64(&rd);
    e.seq = codec_rd_u64(&rd);
    uint64_t old = codec_rd_u64(&rd);
    uint64_t klen = codec_rd_varint(&rd);
    if (rd.err || klen == 0 || klen > WAL_KEY_MAX)
      return JDB_CORRUPT("log move entry key", rec->pos);
    e.key = codec_rd_bytes(&rd, klen);
    e.klen = (uint32_t)klen;
    uint64_t vlen = codec_rd_varint(&rd);
    if (rd.err || vlen == 0 || vlen > WAL_VAL_MAX)
      return JDB_CORRUPT("log move entry value length", rec->pos);
    uint64_t at = rec->pos + LOG_REC_HDR_SIZE + rd.off;
    uint32_t ck = codec_rd_u32(&rd);
    e.val = codec_rd_bytes(&rd, vlen);
    if (rd.err)
      return JDB_CORRUPT("log move entry bytes", rec->pos);
    if (LOG_POS_SEG(old) == 0 || LOG_POS_SEG(old) >= LOG_POS_SEG(rec->pos))
      return JDB_CORRUPT("log move entry old reference", rec->pos);
    e.old_ref = (struct wal_vref){old, (uint32_t)vlen};
    e.new_ref = (struct wal_vref){at, (uint32_t)vlen};
    if (!fn) {
      if (layout_cksum(e.val, vlen) != ck)
        return JDB_CORRUPT("log move entry value", rec->pos);
      continue;
    }
    int rc = fn(ud, &e);
    if (rc)
      return rc;
  }
  if (rd.off != rd.len)
    return JDB_CORRUPT("log move record trailing bytes", rec->pos);
  return JDB_OK;
}

int vlog_move_decode(const struct wal_rec *rec, vlog_move_fn fn, void *ud)
{
  if (!rec || !fn || rec->type != LOG_REC_MOVE || (rec->len && !rec->payload))
    return JDB_EINVAL;
  int rc = vlog_move_parse(rec, NULL, NULL);
  return rc ? rc : vlog_move_parse(rec, fn, ud);
}

/* ------------------------------------------------------------------------------------------- */
/* GC: choosing segments */

static int vlog_cand_cmp(const void *a, const void *b)
{
  const struct vlog_cand *x = a, *y = b;
  if (x->live != y->live)
    return x->live < y->live ? -1 : 1;
  return x->seg < y->seg ? -1 : x->seg > y->seg;
}

/* Fill v->cand with the qualifying segments, best first; returns the count or -error. */
static int vlog_gc_candidates(struct vlog *v, uint64_t replay_pos, uint64_t max_live_bytes,
                              size_t *count)
{
  size_t ns = wal_segments(v->w, NULL, 0);
  if (ns > v->cap_segs) {
    uint32_t *p = mem_realloc(v->segs, ns * sizeof *p);
    struct vlog_cand *c = p ? mem_realloc(v->cand, ns * sizeof *c) : NULL;
    if (p)
      v->segs = p;
    if (!p || !c)
      return JDB_ENOMEM;
    v->cand = c;
    v->cap_segs = v->cap_cand = ns;
  }
  ns = wal_segments(v->w, v->segs, ns);
  uint32_t limit = LOG_POS_SEG(wal_append_pos(v->w));
  if (LOG_POS_SEG(replay_pos) < limit)
    limit = LOG_POS_SEG(replay_pos);
  size_t nc = 0;
  for (size_t i = 0; i < ns; i++) {
    uint32_t seg = v->segs[i];
    if (seg >= limit)
      continue;
    size_t j = vlog_acct_lower(v, seg);
    uint64_t live = j < v->nacct && v->acct[j].seg == seg ? v->acct[j].live_bytes : 0;
    if (live > max_live_bytes)
      continue;
    v->cand[nc++] = (struct vlog_cand){seg, live};
  }
  if (nc > 1)
    qsort(v->cand, nc, sizeof *v->cand, vlog_cand_cmp);
  *count = nc;
  return JDB_OK;
}

int vlog_gc_pick(struct vlog *v, uint64_t replay_pos, uint64_t max_live_bytes, uint32_t *segs,
                 size_t cap, size_t *count)
{
  if (count)
    *count = 0;
  if (!v || !count || (!segs && cap))
    return JDB_EINVAL;
  if (replay_pos > wal_append_pos(v->w))
    return JDB_EINVAL;
  size_t nc;
  int rc = vlog_gc_candidates(v, replay_pos, max_live_bytes, &nc);
  if (rc)
    return rc;
  for (size_t i = 0; i < nc && i < cap; i++)
    segs[i] = v->cand[i].seg;
  *count = nc;
  return JDB_OK;
}

uint64_t vlog_gc_replay_cap(const struct vlog *v)
{
  return v->gc_cap;
}

/* ------------------------------------------------------------------------------------------- */
/* GC: relocating values */

static void vlog_gc_reset(struct vlog *v)
{
  v->mv_len = 0;
  v->mv_n = 0;
  v->npend = 0;
  v->pend_fixed = 0;
  v->keys_len = 0;
  v->gc_cap = UINT64_MAX;
}

static int vlog_grow(void **p, size_t *cap, size_t need, size_t elem)
{
  if (need <= *cap)
    return JDB_OK;
  size_t c = *cap ? *cap : 64;
  while (c < need)
    c *= 2;
  void *q = mem_realloc(*p, c * elem);
  if (!q)
    return JDB_ENOMEM;
  *p = q;
  *cap = c;
  return JDB_OK;
}

/* Append the packed MOVE payload as one record and fix the new positions of its entries. */
static int vlog_gc_move_flush(struct vlog *v)
{
  if (!v->mv_n)
    return JDB_OK;
  le32_put(v->mv, v->mv_n);
  uint64_t pos;
  JDB_ASSERT(v->mv_len <= UINT32_MAX);
  int rc = wal_append_record(v->w, LOG_REC_MOVE, v->mv, (uint32_t)v->mv_len, &pos, NULL);
  if (rc)
    return rc;
  for (size_t i = v->pend_fixed; i < v->npend; i++)
    v->pend[i].new_pos = pos + LOG_REC_HDR_SIZE + v->pend[i].payload_off;
  v->pend_fixed = v->npend;
  if (v->gc_cap == UINT64_MAX)
    v->gc_cap = pos;
  v->mv_len = 0;
  v->mv_n = 0;
  v->st.gc_move_records++;
  return JDB_OK;
}

/* Pack a live value (val->ref is where it is now; bytes are its verified contents). */
static int vlog_gc_move_add(struct vlog *v, const struct vlog_value *val, const uint8_t *bytes)
{
  uint32_t vlen = val->ref.len;
  size_t esz = VLOG_MOVE_ENTRY_FIXED + varint_len(val->klen) + val->klen + varint_len(vlen) + 4 +
               vlen;
  int rc;
  if (v->mv_n && v->mv_len + esz > v->o.move_record_bytes) {
    rc = vlog_gc_move_flush(v);
    if (rc)
      return rc;
  }
  if (!v->mv_len)
    v->mv_len = VLOG_MOVE_HDR;
  if ((rc = vlog_grow((void **)&v->mv, &v->mv_cap, v->mv_len + esz, 1)) ||
      (rc = vlog_grow((void **)&v->pend, &v->cap_pend, v->npend + 1, sizeof *v->pend)) ||
      (rc = vlog_grow((void **)&v->keys, &v->keys_cap, v->keys_len + val->klen, 1)))
    return rc;
  uint8_t *p = v->mv + v->mv_len;
  le64_put(p, val->table_id);
  le64_put(p + 8, val->seq);
  le64_put(p + 16, val->ref.pos);
  p += VLOG_MOVE_ENTRY_FIXED;
  p += varint_put(p, val->klen);
  memcpy(p, val->key, val->klen);
  p += val->klen;
  p += varint_put(p, vlen);
  uint32_t ck_off = (uint32_t)(p - v->mv);
  le32_put(p, layout_cksum(bytes, vlen));
  memcpy(p + 4, bytes, vlen);
  p += 4 + vlen;
  JDB_ASSERT((size_t)(p - v->mv) == v->mv_len + esz);
  v->mv_len += esz;
  v->mv_n++;
  memcpy(v->keys + v->keys_len, val->key, val->klen);
  v->pend[v->npend++] = (struct vlog_pending){.table_id = val->table_id, .seq = val->seq,
                                              .key_off = v->keys_len, .klen = val->klen,
                                              .old = val->ref, .payload_off = ck_off};
  v->keys_len += val->klen;
  return JDB_OK;
}

struct vlog_gc_run {
  struct vlog *v;
  const struct vlog_gc_args *a;
  struct vlog_gc_result *res;
};

static int vlog_gc_consider(struct vlog_gc_run *g, const struct vlog_value *val,
                            const uint8_t *bytes)
{
  g->res->values_checked++;
  g->v->st.gc_values_checked++;
  int live = g->a->live(g->a->ud, val);
  if (live < 0)
    return live;
  if (live == 0)
    return JDB_OK;
  return vlog_gc_move_add(g->v, val, bytes);
}

static int vlog_gc_move_entry(void *ud, const struct vlog_move_entry *e)
{
  struct vlog_value val = {.table_id = e->table_id, .seq = e->seq, .key = e->key,
                           .klen = e->klen, .ref = e->new_ref};
  return vlog_gc_consider(ud, &val, e->val);
}

static int vlog_gc_batch(struct vlog_gc_run *g, const struct wal_rec *rec)
{
  struct wal_batch b;
  int rc = wal_batch_open(rec, &b);
  if (rc)
    return rc;
  struct wal_op_view op;
  while ((rc = wal_batch_next(&b, &op)) == JDB_OK) {
    if (op.kind != WAL_OP_PUT || op.vref.len == 0)
      continue;
    struct vlog_value val = {.table_id = b.table_id, .seq = b.seq, .key = op.key,
                             .klen = op.klen, .ref = op.vref};
    rc = vlog_gc_consider(g, &val, op.val);
    if (rc)
      return rc;
  }
  return rc == JDB_NOTFOUND ? JDB_OK : rc;
}

/* Make [off, off + n) of the segment available in the walk buffer (cut short by the file end). */
struct vlog_walk {
  struct fs_file *f;
  uint64_t size, base;
  size_t len;
};

static int vlog_walk_get(struct vlog *v, struct vlog_walk *wk, uint64_t off, size_t n,
                         const uint8_t **p, size_t *avail)
{
  *p = NULL;
  *avail = 0;
  if (off >= wk->size)
    return JDB_OK;
  if (n > wk->size - off)
    n = (size_t)(wk->size - off);
  if (!(off >= wk->base && off + n <= wk->base + wk->len)) {
    size_t want = n > VLOG_WALK_CHUNK ? n : VLOG_WALK_CHUNK;
    if (want > wk->size - off)
      want = (size_t)(wk->size - off);
    int rc = vlog_grow((void **)&v->walk, &v->walk_cap, want, 1);
    if (rc)
      return rc;
    uint32_t got = 0;
    rc = fs_read(v->ctx, wk->f, v->walk, (uint32_t)want, off, &got);
    if (rc)
      return rc;
    wk->base = off;
    wk->len = got;
  }
  *p = v->walk + (off - wk->base);
  *avail = (size_t)(wk->base + wk->len - off);
  return JDB_OK;
}

/* Walk segment seg and pack its live values (steps 1 of the file header). */
static int vlog_gc_walk(struct vlog_gc_run *g, uint32_t seg)
{
  struct vlog *v = g->v;
  int fi;
  int rc = vlog_file_get(v, seg, &fi);
  if (rc)
    return rc;
  struct vlog_walk wk = {.f = v->files[fi].f, .size = v->files[fi].size};
  uint64_t off = 0;
  for (int ended = 0; !ended;) {
    uint64_t pos = LOG_POS(seg, off);
    const uint8_t *p;
    size_t avail;
    struct layout_rec_hdr h;
    rc = vlog_walk_get(v, &wk, off, LOG_REC_HDR_SIZE, &p, &avail);
    if (rc)
      break;
    if (avail < LOG_REC_HDR_SIZE) {
      rc = JDB_CORRUPT("log segment without an END record", pos);
      break;
    }
    if (layout_rec_peek(p, avail, pos, &h) != JDB_OK) {
      rc = JDB_CORRUPT("log record header in a segment being collected", pos);
      break;
    }
    rc = vlog_walk_get(v, &wk, off, h.len, &p, &avail);
    if (rc)
      break;
    if (layout_rec_open(p, avail, pos, &h) != JDB_OK) {
      rc = JDB_CORRUPT("log record in a segment being collected", pos);
      break;
    }
    struct wal_rec rec = {.pos = pos, .end = pos + layout_rec_padded(h.len), .type = h.type,
                          .flags = h.flags, .payload = p + LOG_REC_HDR_SIZE,
                          .len = h.len - LOG_REC_HDR_SIZE};
    if ((off == 0) != (h.type == LOG_REC_SEG) ||
        (off == 0 && (rec.len < 4 || le32_get(rec.payload) != seg))) {
      rc = JDB_CORRUPT("log segment header", pos);
      break;
    }
    if (h.type == LOG_REC_BATCH)
      rc = vlog_gc_batch(g, &rec);
    else if (h.type == LOG_REC_MOVE)
      rc = vlog_move_decode(&rec, vlog_gc_move_entry, g);
    else if (h.type == LOG_REC_PAD && (h.flags & WAL_PAD_END))
      ended = 1;
    if (rc)
      break;
    off += layout_rec_padded(h.len);
  }
  vlog_file_unpin(v, fi);
  return rc;
}

/* Steps 2-4 of the file header for segment seg, whose live values are packed. */
static int vlog_gc_commit(struct vlog_gc_run *g, uint32_t seg)
{
  struct vlog *v = g->v;
  int rc = vlog_gc_move_flush(v);
  if (rc)
    return rc;
  /* Always, even with nothing to move: a value the index no longer names may have been
     replaced by a write that is only handed to the kernel; until that write is durable, a power
     loss brings the old version back, and it points into seg. */
  rc = wal_sync(v->w);
  if (rc)
    return rc;
  for (size_t i = 0; i < v->npend; i++) {
    const struct vlog_pending *pe = &v->pend[i];
    JDB_ASSERT(pe->new_pos != 0);
    struct vlog_value val = {.table_id = pe->table_id, .seq = pe->seq,
                             .key = v->keys + pe->key_off, .klen = pe->klen, .ref = pe->old};
    struct wal_vref nref = {pe->new_pos, pe->old.len};
    int r = g->a->moved(g->a->ud, &val, nref);
    if (r < 0)
      return r;
    if (r == 0) {
      g->res->values_rejected++;
      v->st.gc_values_rejected++;
      continue;
    }
    rc = vlog_account_add(v, nref);
    if (rc)
      return rc;
    g->res->values_moved++;
    g->res->bytes_moved += nref.len;
    v->st.gc_values_moved++;
    v->st.gc_bytes_moved += nref.len;
  }
  vlog_gc_reset(v);
  rc = vlog_segment_drop(v, seg);
  if (rc)
    return rc;
  g->res->segments_dropped++;
  v->st.gc_segments_dropped++;
  return JDB_OK;
}

int vlog_gc(struct vlog *v, const struct vlog_gc_args *args, struct vlog_gc_result *res)
{
  struct vlog_gc_result dummy;
  if (!res)
    res = &dummy;
  memset(res, 0, sizeof *res);
  if (!v || !args || !args->live || !args->moved)
    return JDB_EINVAL;
  if (args->replay_pos > wal_append_pos(v->w))
    return JDB_EINVAL;
  if (v->gc_running)
    return JDB_EBUSY;
  v->gc_running = 1;
  v->st.gc_runs++;
  struct vlog_gc_run g = {.v = v, .a = args, .res = res};
  uint32_t max = args->max_segments ? args->max_segments : 1;
  size_t nc;
  int rc = vlog_gc_candidates(v, args->replay_pos, args->max_live_bytes, &nc);
  if (rc == JDB_OK && nc > max)
    nc = max;
  /* Copy the choice: the candidate array is rebuilt by nothing during the run, but keep the
     segment numbers independent of it anyway (callbacks may call vlog_gc_pick). */
  uint32_t *pick = rc == JDB_OK && nc ? mem_malloc(nc * sizeof *pick) : NULL;
  if (rc == JDB_OK && nc && !pick)
    rc = JDB_ENOMEM;
  for (size_t i = 0; rc == JDB_OK && i < nc; i++)
    pick[i] = v->cand[i].seg;
  for (size_t i = 0; rc == JDB_OK && i < nc; i++) {
    rc = vlog_gc_walk(&g, pick[i]);
    if (rc == JDB_OK)
      rc = vlog_gc_commit(&g, pick[i]);
    if (rc) {
      LOG_WARN("log gc: segment %u of %s kept: %s", pick[i], v->dir, jdb_strerror(rc));
      vlog_gc_reset(v);
    }
  }
  mem_free(pick);
  v->gc_running = 0;
  return rc;
}
