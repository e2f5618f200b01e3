/*
 * wal.c - the shard log: appending, group commit, segments, replay. See wal.h for the contract.
 *
 * Segment file <dir>/NNNNNNNN.log (prepared full of zeros, synced, then renamed into place):
 *   off  record (infra/layout frame; docs/FORMAT.md "Log records")
 *     0  SEG   payload: u32 segment number, u32 zero, u64 created seconds
 *     .  BATCH records, PAD records
 *     .  END   (PAD with WAL_PAD_END): the writer moved to segment number + 1 after this record
 *              was durable
 *   zeros up to the file's end (never-written space)
 *
 * BATCH payload (all integers LE, varint = unsigned LEB128):
 *   u64 table id, u64 seq, u64 commit seconds, varint nops, then per op:
 *   u8 kind (1 PUT inline, 2 DEL, 3 PUT out of line), varint klen, key bytes,
 *   PUT inline: varint vlen, value bytes
 *   PUT out of line: varint vlen, u32 layout_cksum(value), value bytes   <- a wal_vref points at
 *                                                                          the checksum
 *
 * Writer: records are encoded into the active buffer (durable_pos stamped with the position an
 * fdatasync had completed at that moment). A flush hands the active buffer to the kernel as one
 * write (a free buffer becomes active), with a linked fdatasync when a durable waiter wants
 * one; at most one flush is in flight, so appends made meanwhile are batched into the next one
 * (group commit). A flush completes when all its ops have (CQEs of a chain may arrive in any
 * order), then wakes the waiters. A large direct write goes out in 512 KiB writes, a few in
 * flight. Streaming (nobody waiting): such a flush writes whole blocks only, and takes the
 * whole blocks appended meanwhile as further pieces, each from its own buffer (wal_stream_seal);
 * the partial last block always stays in the active buffer, unwritten, so pieces never share a
 * block and may be in flight together.
 *
 * Segment preparation: from the moment a segment is a quarter full, the next one is prepared in
 * the background (next.tmp: zero-filled with O_DIRECT 1 MiB writes, 4 in flight, or allocated,
 * as wal_zero_wanted decides; then fdatasync), so a roll only waits for the END record's sync and
 * a rename, unless a spare from a dropped segment can be renamed instead.
 * A preparation that failed makes the roll that needs it fail (and poison the log).
 *
 * Invariants:
 *   durable_pos <= written_pos <= append_pos; all three in the current segment or at its start.
 *   bufs[active] holds [append_pos - fresh, append_pos) after `head` bytes of its first block
 *   already in the file; a busy buffer holds [start, start + fresh) of the flush in flight, and
 *   is freed only when its writes completed; the busy buffers and the active one cover
 *   [written_pos, append_pos) but for pieces already complete in the file.
 *   Buffers only ever hold bytes of the current segment (a roll waits for the END record to
 *   be durable before the next segment exists).
 *   poison != 0: no write is ever issued again.
 */
#include "wal.h"

#include "clock.h"
#include "coro.h"
#include "err.h"
#include "fs.h"
#include "log.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAL_SEG_REC_LEN (LOG_REC_HDR_SIZE + 16u)
#define WAL_END_REC_LEN LOG_REC_HDR_SIZE
#define WAL_OP_PUT_SEP 3
#define WAL_READ_CHUNK (1u << 20)
#define WAL_ZERO_CHUNK (1u << 20)
#define WAL_SPARES_MAX 2
#define WAL_READ_FILES 8
#define WAL_BLOCK 4096u           /* O_DIRECT granularity of log writes */
#define WAL_DIRECT_MIN_DEFAULT (128u << 10)
/* Large direct writes go out in WAL_DIO_CHUNK writes, WAL_DIO_QD in flight, and appends wait
   while a flush is out and WAL_BUF_MAX new bytes are buffered: the device reads 2-3 MiB of
   memory written moments before. On this VM's virtual disk, writes from a 4 MiB ring of buffers
   ran at 2.2-3.5 GB/s with the device's moods, from a 16 or 64 MiB ring at a flat 2.0-2.1; the
   log with 1 MiB x 4 in flight and 8 MiB buffered capped at ~2.0 GB/s, with 512 KiB x 4 and
   1 MiB buffered it reached 2.6-3.1 (DESIGN.md §8). */
#define WAL_DIO_CHUNK (512u << 10)
#define WAL_DIO_QD 4
#define WAL_NBUF 8                /* the active buffer, the flush's, and stream pieces' */
#define WAL_STREAM_MIN (512u << 10)   /* a stream piece holds at least this many bytes */
#define WAL_BUF_MAX (1u << 20)    /* past this many new bytes, appends wait (wal_room) */

/* An append buffer. p[0, head) repeats the bytes already in the file just before the buffer's
   first new byte, back to the block boundary (so a flush can write whole blocks with O_DIRECT);
   p[head, len) are new records. cap always leaves WAL_BLOCK bytes of slack after len for the
   zeros that round a direct write up to a whole block. p is WAL_BLOCK-aligned (mem_buf_*). */
struct wal_buf {
  uint8_t *p;
  size_t cap, len, head;
  uint64_t start;                 /* log position of p[head], while busy */
  int busy;                       /* part of the flush in flight: not free, not active */
};

/* A direct write of whole blocks of one buffer, bytes [skip, skip + len), at file offset off,
   in WAL_DIO_CHUNK writes. A flush's large direct write is one; a stream adds more. */
struct wal_piece {
  int buf;
  uint64_t off;
  size_t skip, len, issued;
  unsigned out;                   /* chunk writes in flight */
};

struct wal_waiter {
  struct coro *c;
  struct wal_waiter *next;
};

/* The next segment, prepared in the background while the current one fills up, so a roll
   only renames it into place instead of stalling the writer for a whole zero-fill. */
#define WAL_PREP_QD 4
enum { WAL_PREP_IDLE = 0, WAL_PREP_BUSY, WAL_PREP_READY, WAL_PREP_FAILED };
struct wal_prep {
  int state;
  int err;
  int zeroed;                     /* 1: zero-filled; 0: space reserved (fallocate) only */
  struct fs_file *f;
  uint64_t size, next_off;
  unsigned inflight;
  void *zero;                     /* WAL_ZERO_CHUNK zero bytes, shared by the writes */
  struct fs_op ops[WAL_PREP_QD];
  struct fs_op sync;
  struct coro *waiter;            /* a roll parked until the preparation ends */
  struct fs_ctx *ctx;
};

struct wal_rfile {                /* cached read handle of an older segment */
  uint32_t seg;
  struct fs_file *f;
  uint64_t size;
  uint64_t used;
};

struct wal {
  struct fs_ctx *ctx;
  char *dir;
  struct wal_opts o;
  uint32_t *segs;                 /* existing segments, ascending */
  size_t nsegs, cap_segs;
  unsigned nspares;
  int replayed;
  /* current segment */
  uint32_t cur_seg;
  struct fs_file *cur_f;
  struct fs_file *cur_dio;        /* the same segment opened O_DIRECT, for large flushes; NULL
                                     when the file system refuses O_DIRECT */
  uint64_t cur_size;
  int dio_last;                   /* the last write was direct: the page cache lacks its blocks,
                                     so a buffered write must cover whole pages (else the kernel
                                     reads the block first, on the reactor thread) */
  /* positions */
  uint64_t append_pos, written_pos, durable_pos;
  uint64_t sync_target;           /* a durable waiter wants everything before this */
  /* buffers and the flush in flight */
  struct wal_buf bufs[WAL_NBUF];
  int active;
  int flushing;
  int streaming;                  /* the flush in flight takes more pieces (wal_stream_seal) */
  uint64_t want_pos;              /* a waiter wants everything before this written */
  int flush_buf;                  /* index of the buffer being written, -1 for a lone fdatasync */
  int flush_w1, flush_w2;         /* op_write / op_write2 are part of the flush */
  int flush_err;                  /* first failure of a chunk write */
  int flush_sync_after;           /* chunked flush: the fdatasync still to issue after the writes */
  /* Direct writes go out in WAL_DIO_CHUNK writes through op_chunk[], WAL_DIO_QD at a time
     (one large write ran 20 % slower than 1 MiB writes 4 deep on this machine's virtual disk),
     from the pieces in the FIFO pieces[pc_head .. pc_head + pc_n). */
  struct wal_piece pieces[WAL_NBUF];
  unsigned pc_head, pc_n;
  struct fs_op op_chunk[WAL_DIO_QD];
  unsigned chunk_piece[WAL_DIO_QD];
  uint8_t chunk_busy[WAL_DIO_QD];
  unsigned flush_ops_left;
  int flush_sync;
  uint64_t flush_end;
  struct fs_op op_write, op_write2, op_sync;   /* a flush: [write2 ->] write [-> fdatasync] */
  struct wal_waiter *waiters;
  /* A roll in progress (other fibers' appends wait in gate_*, first come first served). */
  int rolling;
  struct wal_waiter *gate_head, *gate_tail;
  int poison;
  struct wal_prep prep;
  struct wal_rfile rfiles[WAL_READ_FILES];
  uint64_t rfile_clock;
  struct wal_stats st;
  uint64_t syncs_from;            /* st.syncs when the previous segment began (or at open) */
  uint64_t syncs_cur;             /* st.syncs when the current segment began (or at open) */
};

/* ------------------------------------------------------------------------------------------- */
/* Names and the segment list */

static void wal_seg_path(const struct wal *w, uint32_t seg, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s/%08u.log", w->dir, seg);
}

static void wal_prep_path(const struct wal *w, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s/next.tmp", w->dir);
}

static void wal_spare_path(const struct wal *w, unsigned i, char *buf, size_t cap)
{
  snprintf(buf, cap, "%s/spare-%u.log", w->dir, i);
}

static int wal_segs_add(struct wal *w, uint32_t seg)
{
  if (w->nsegs == w->cap_segs) {
    size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
    uint32_t *p = mem_realloc(w->segs, cap * sizeof *p);
    if (!p)
      return JDB_ENOMEM;
    w->segs = p;
    w->cap_segs = cap;
  }
  size_t i = w->nsegs;
  while (i > 0 && w->segs[i - 1] > seg) {
    w->segs[i] = w->segs[i - 1];
    i--;
  }
  w->segs[i] = seg;
  w->nsegs++;
  return JDB_OK;
}

static void wal_segs_remove(struct wal *w, uint32_t seg)
{
  for (size_t i = 0; i < w->nsegs; i++)
    if (w->segs[i] == seg) {
      memmove(&w->segs[i], &w->segs[i + 1], (w->nsegs - i - 1) * sizeof *w->segs);
      w->nsegs--;
      return;
    }
}

static int wal_scan_dir(struct wal *w)
{
  DIR *d = opendir(w->dir);
  if (!d)
    return err_from_errno(-errno);
  struct dirent *e;
  int rc = JDB_OK;
  while (rc == JDB_OK && (e = readdir(d)) != NULL) {
    unsigned seg, n = 0;
    char tail[8];
    if (sscanf(e->d_name, "%8u%7s%n", &seg, tail, (int *)&n) == 2 && strcmp(tail, ".log") == 0 &&
        strlen(e->d_name) == 12 && seg > 0 && seg <= LOG_SEG_MAX)
      rc = wal_segs_add(w, seg);
    else if (strncmp(e->d_name, "spare-", 6) == 0)
      w->nspares++;
  }
  closedir(d);
  return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Open / close */

int wal_open(struct fs_ctx *ctx, const char *dir, const struct wal_opts *opts, struct wal **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!ctx || !dir || !*dir)
    return JDB_EINVAL;
  struct wal_opts o = {.segment_bytes = 64ull << 20, .inline_max = 256,
                       .direct_min = WAL_DIRECT_MIN_DEFAULT};
  if (opts) {
    if (opts->segment_bytes)
      o.segment_bytes = opts->segment_bytes;
    o.inline_max = opts->inline_max ? opts->inline_max : o.inline_max;
    o.direct_min = opts->direct_min ? opts->direct_min : o.direct_min;
    o.read_only = opts->read_only;
    o.zero_fill = opts->zero_fill;
  }
  if (o.zero_fill != WAL_ZERO_AUTO && o.zero_fill != WAL_ZERO_ALWAYS &&
      o.zero_fill != WAL_ZERO_NEVER)
    return JDB_EINVAL;
  if (o.segment_bytes < (1u << 20) || o.segment_bytes > (1ull << 38))
    return JDB_EINVAL;
  o.segment_bytes = (o.segment_bytes + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
  int rc = o.read_only ? JDB_OK : fs_mkdir(ctx, dir);
  if (rc)
    return rc;
  struct wal *w = mem_calloc(1, sizeof *w);
  if (!w)
    return JDB_ENOMEM;
  w->ctx = ctx;
  w->o = o;
  w->dir = strdup(dir);
  if (!w->dir) {
    mem_free(w);
    return JDB_ENOMEM;
  }
  rc = wal_scan_dir(w);
  if (rc) {
    wal_close(w);
    return rc;
  }
  *out = w;
  return JDB_OK;
}

static void wal_rfiles_close(struct wal *w)
{
  for (int i = 0; i < WAL_READ_FILES; i++)
    if (w->rfiles[i].f) {
      fs_file_close(w->ctx, w->rfiles[i].f);
      w->rfiles[i].f = NULL;
    }
}

static int wal_prep_finish(struct wal *w, int *err);

/* Open segment `path` as the current one: a buffered descriptor (small flushes, reads) and an
   O_DIRECT one (large flushes skip the page-cache copy, which cost a third of the append
   path's time: docs/DESIGN.md §6). */
static int wal_cur_open(struct wal *w, const char *path)
{
  int rc = fs_file_open(w->ctx, path, 0, &w->cur_f);
  if (rc)
    return rc;
  w->dio_last = 0;
  if (w->o.direct_min == UINT32_MAX)
    return JDB_OK;
  rc = fs_file_open(w->ctx, path, FS_O_DIRECT, &w->cur_dio);
  if (rc == JDB_OK && !fs_file_is_direct(w->cur_dio)) {
    fs_file_close(w->ctx, w->cur_dio);   /* the file system refuses O_DIRECT: buffered only */
    w->cur_dio = NULL;
  }
  if (rc) {
    fs_file_close(w->ctx, w->cur_f);
    w->cur_f = NULL;
  }
  return rc;
}

static void wal_cur_close(struct wal *w)
{
  if (w->cur_f)
    fs_file_close(w->ctx, w->cur_f);
  if (w->cur_dio)
    fs_file_close(w->ctx, w->cur_dio);
  w->cur_f = w->cur_dio = NULL;
}

void wal_close(struct wal *w)
{
  if (!w)
    return;
  while (w->flushing)
    fs_poll(w->ctx, 1);
  if (w->prep.state != WAL_PREP_IDLE) {
    int err;
    wal_prep_finish(w, &err);   /* next.tmp stays; the next preparation recreates it */
  }
  wal_cur_close(w);
  wal_rfiles_close(w);
  for (int i = 0; i < WAL_NBUF; i++)
    if (w->bufs[i].p)
      mem_buf_put(w->bufs[i].p, w->bufs[i].cap);
  mem_free(w->segs);
  free(w->dir);
  mem_free(w);
}

/* ------------------------------------------------------------------------------------------- */
/* Buffers and encoding */

/* New bytes in a buffer (after its head). */
static inline size_t wal_buf_fresh(const struct wal_buf *b) { return b->len - b->head; }

static int wal_buf_reserve(struct wal_buf *b, size_t more)
{
  size_t need = b->len + more + WAL_BLOCK;
  if (need <= b->cap)
    return JDB_OK;
  size_t cap = b->cap ? b->cap : (1u << 20);
  while (cap < need)
    cap *= 2;
  uint8_t *p = mem_buf_get(cap);
  if (!p)
    return JDB_ENOMEM;
  if (b->p) {
    memcpy(p, b->p, b->len);
    mem_buf_put(b->p, b->cap);
  }
  b->p = p;
  b->cap = cap;
  return JDB_OK;
}

/* Append a framed record with the given payload writer into the active buffer at append_pos.
   The payload is written by the caller into the returned space (len - 32 bytes). */
static uint8_t *wal_rec_begin(struct wal *w, uint32_t len)
{
  struct wal_buf *b = &w->bufs[w->active];
  if (wal_buf_reserve(b, layout_rec_padded(len)))
    return NULL;
  return b->p + b->len;
}

static void wal_rec_end(struct wal *w, uint8_t *rec, uint8_t type, uint8_t flags, uint32_t len)
{
  struct wal_buf *b = &w->bufs[w->active];
  struct layout_rec_hdr h = {.len = len, .type = type, .flags = flags, .pos = w->append_pos,
                             .durable_pos = w->durable_pos};
  layout_rec_seal(rec, &h);
  uint32_t padded = layout_rec_padded(len);
  b->len += padded;
  w->append_pos += padded;
  w->st.records++;
  w->st.bytes_appended += padded;
}

static int wal_put_seg_record(struct wal *w)
{
  uint8_t *r = wal_rec_begin(w, WAL_SEG_REC_LEN);
  if (!r)
    return JDB_ENOMEM;
  uint8_t *p = r + LOG_REC_HDR_SIZE;
  le32_put(p, w->cur_seg);
  le32_put(p + 4, 0);
  le64_put(p + 8, clock_now_sec());
  wal_rec_end(w, r, LOG_REC_SEG, 0, WAL_SEG_REC_LEN);
  return JDB_OK;
}

/* Encoded size of a batch, or 0 if an op is invalid. */
static uint64_t wal_batch_size(const struct wal *w, const struct wal_op *ops, uint32_t nops)
{
  uint64_t n = LOG_REC_HDR_SIZE + 24 + varint_len(nops);
  for (uint32_t i = 0; i < nops; i++) {
    const struct wal_op *op = &ops[i];
    if (!op->key || op->klen == 0 || op->klen > WAL_KEY_MAX)
      return 0;
    n += 1 + varint_len(op->klen) + op->klen;
    if (op->kind == WAL_OP_PUT) {
      if (op->vlen > WAL_VAL_MAX || (op->vlen && !op->val))
        return 0;
      n += varint_len(op->vlen) + op->vlen + (op->vlen > w->o.inline_max ? 4 : 0);
    } else if (op->kind != WAL_OP_DEL) {
      return 0;
    }
  }
  return n;
}

/* ------------------------------------------------------------------------------------------- */
/* Flushing and waiting */

static void wal_wake_all(struct wal *w)
{
  struct wal_waiter *q = w->waiters;
  w->waiters = NULL;
  while (q) {
    struct wal_waiter *next = q->next;
    coro_wake(q->c);
    q = next;
  }
}

static void wal_poison(struct wal *w, int err, const char *what)
{
  if (!w->poison) {
    LOG_ERROR("log %s/%08u.log: %s failed (%s); refusing further writes", w->dir, w->cur_seg,
              what, jdb_strerror(err));
    w->poison = err;
  }
}

static void wal_flush_done(struct fs_op *op);

/* The index of the first piece not wholly issued (pieces are issued in order), or -1. */
static int wal_piece_unissued(const struct wal *w)
{
  for (unsigned k = 0; k < w->pc_n; k++) {
    unsigned pi = (w->pc_head + k) % WAL_NBUF;
    if (w->pieces[pi].issued < w->pieces[pi].len)
      return (int)pi;
  }
  return -1;
}

/* A buffer whose writes completed (or failed) holds nothing any more and is free. */
static void wal_buf_release(struct wal_buf *b)
{
  b->len = b->head = 0;
  b->busy = 0;
}

/* Issue the next WAL_DIO_CHUNK of the stream's first unissued piece through chunk slot `slot`.
   Returns 0 when nothing is left to issue (or a chunk failed: then nothing more goes out). */
static int wal_chunk_next(struct wal *w, unsigned slot)
{
  int i = w->flush_err ? -1 : wal_piece_unissued(w);
  if (i < 0)
    return 0;
  unsigned pi = (unsigned)i;
  struct wal_piece *pc = &w->pieces[pi];
  size_t n = pc->len - pc->issued;
  if (n > WAL_DIO_CHUNK)
    n = WAL_DIO_CHUNK;
  struct fs_op *op = &w->op_chunk[slot];
  fs_op_prep_write(op, w->cur_dio, w->bufs[pc->buf].p + pc->skip + pc->issued, (uint32_t)n,
                   pc->off + pc->issued);
  op->done = wal_flush_done;
  op->udata = w;
  w->chunk_piece[slot] = pi;
  w->chunk_busy[slot] = 1;
  pc->issued += n;
  pc->out++;
  w->flush_ops_left++;
  w->st.writes++;
  w->st.writes_direct++;
  int rc = fs_submit(w->ctx, op);
  JDB_ASSERT(rc == JDB_OK);   /* ops built here are always valid */
  (void)rc;
  return 1;
}

/* Every free chunk slot gets the next chunk, while there are any. */
static void wal_chunks_fill(struct wal *w)
{
  for (unsigned i = 0; i < WAL_DIO_QD; i++)
    if (!w->chunk_busy[i] && !wal_chunk_next(w, i))
      return;
}

static void wal_piece_push(struct wal *w, int buf, uint64_t off, size_t skip, size_t len)
{
  JDB_ASSERT(w->pc_n < WAL_NBUF);
  w->pieces[(w->pc_head + w->pc_n++) % WAL_NBUF] =
      (struct wal_piece){.buf = buf, .off = off, .skip = skip, .len = len};
}

/* A buffer that is neither active nor part of the flush in flight, or -1. */
static int wal_buf_free_index(const struct wal *w)
{
  for (int i = 0; i < WAL_NBUF; i++)
    if (i != w->active && !w->bufs[i].busy)
      return i;
  return -1;
}

/* Make a free buffer active, holding the `tail` bytes that end the old active buffer as new
   (unwritten) bytes; the old one keeps [0, len - tail). JDB_OK or JDB_ENOMEM. */
static int wal_buf_split(struct wal *w, size_t tail)
{
  int i = wal_buf_free_index(w);
  JDB_ASSERT(i >= 0);
  struct wal_buf *b = &w->bufs[w->active], *nb = &w->bufs[i];
  JDB_ASSERT(nb->len == 0 && nb->head == 0 && tail <= b->len - b->head);
  if (wal_buf_reserve(nb, tail))
    return JDB_ENOMEM;
  memcpy(nb->p, b->p + b->len - tail, tail);
  nb->len = tail;
  b->len -= tail;
  w->active = i;
  return JDB_OK;
}

/* A waiter wants a position no stream piece is going to cover soon: the partial last block, or
   an fdatasync. The stream then stops growing, so the flush ends and the next one serves it. */
static int wal_stream_wanted(const struct wal *w)
{
  return w->want_pos <= w->written_pos && w->sync_target <= w->durable_pos;
}

/* Streaming: while nobody waits, a direct flush in flight takes the whole blocks the active
   buffer has gathered (at least WAL_STREAM_MIN) as one more piece, and the bytes of the last,
   partial block move to a fresh active buffer, unwritten. Pieces never share a block, so their
   writes may be in flight together, and the device never waits for one flush to drain before
   the next begins (a drain every 4 MiB cost a quarter of the bandwidth here; DESIGN.md §8).
   Returns 1 if a piece was added. */
static int wal_stream_seal(struct wal *w)
{
  if (!w->streaming)
    return 0;
  if (w->flush_err || w->poison || !wal_stream_wanted(w)) {
    w->streaming = 0;
    return 0;
  }
  /* Only when every piece is out: data queued behind the device would only age (the appends
     meanwhile wait at WAL_BUF_MAX instead). */
  if (wal_piece_unissued(w) >= 0)
    return 0;
  struct wal_buf *b = &w->bufs[w->active];
  JDB_ASSERT(b->head == 0);   /* a stream's active buffer starts at a block boundary */
  size_t whole = b->len & ~(size_t)(WAL_BLOCK - 1);
  if (whole < WAL_STREAM_MIN || wal_buf_free_index(w) < 0)
    return 0;
  int old = w->active;
  uint64_t start = w->append_pos - b->len;
  if (wal_buf_split(w, b->len - whole))
    return 0;
  b->busy = 1;
  b->start = start;
  wal_piece_push(w, old, LOG_POS_OFF(start), 0, whole);
  w->flush_end = start + whole;
  w->st.stream_pieces++;
  wal_wake_all(w);   /* an append held back by WAL_BUF_MAX has room again */
  return 1;
}

/* Pieces whose writes all completed leave the stream in order; their buffers are free again
   (the flush's own buffer stays until the flush ends). */
static void wal_pieces_retire(struct wal *w)
{
  while (w->pc_n) {
    struct wal_piece *pc = &w->pieces[w->pc_head];
    if (pc->issued < pc->len || pc->out)
      return;
    if (pc->buf != w->flush_buf) {
      struct wal_buf *b = &w->bufs[pc->buf];
      w->st.bytes_written += b->len - b->head;
      wal_buf_release(b);
    }
    w->pc_head = (w->pc_head + 1) % WAL_NBUF;
    w->pc_n--;
  }
}

static void wal_flush_done(struct fs_op *op)
{
  struct wal *w = op->udata;
  if (op != &w->op_sync) {
    /* A failed write (a chunk, or the page-cache write of the first block) ends the stream and
       the chunks: the flush ends when the writes out complete. */
    int e = fs_op_error(op);
    if (e && !w->flush_err)
      w->flush_err = e;
  }
  if (op >= w->op_chunk && op < w->op_chunk + WAL_DIO_QD) {
    unsigned slot = (unsigned)(op - w->op_chunk);
    w->chunk_busy[slot] = 0;
    w->pieces[w->chunk_piece[slot]].out--;
    if (!w->flush_err)
      wal_pieces_retire(w);   /* first: a seal needs a free buffer */
    if (!wal_chunk_next(w, slot) && wal_stream_seal(w))
      wal_chunks_fill(w);
  }
  if (--w->flush_ops_left > 0)
    return;   /* other ops of the flush are still out (CQEs of a chain may come in any order) */
  /* The first failure says what happened (in a chain, the ops after it are canceled). */
  int rw = w->flush_w2 ? fs_op_error(&w->op_write2) : JDB_OK;
  if (!rw && w->flush_w1)
    rw = fs_op_error(&w->op_write);
  if (!rw)
    rw = w->flush_err;
  if (w->flush_sync_after) {
    /* Every chunk is written: now the fdatasync (per inode: it covers the page-cache write of
       the first block too), unless a write failed. */
    w->flush_sync_after = 0;
    if (!rw) {
      w->flush_ops_left = 1;
      int rc = fs_submit(w->ctx, &w->op_sync);
      JDB_ASSERT(rc == JDB_OK);
      (void)rc;
      return;
    }
    w->flush_sync = 0;
  }
  int rs = w->flush_sync ? fs_op_error(&w->op_sync) : JDB_OK;
  if (rw)
    wal_poison(w, rw, "write");
  else if (rs)
    wal_poison(w, rs == JDB_ENOSPC ? JDB_ENOSPC : JDB_EIO, "fdatasync");
  if (!w->poison) {
    w->written_pos = w->flush_end;
    if (w->flush_sync)
      w->durable_pos = w->flush_end;
  }
  /* Pieces left after a failure: their buffers are free (the log is poisoned). */
  for (; w->pc_n; w->pc_n--, w->pc_head = (w->pc_head + 1) % WAL_NBUF)
    if (w->pieces[w->pc_head].buf != w->flush_buf)
      wal_buf_release(&w->bufs[w->pieces[w->pc_head].buf]);
  if (w->flush_buf >= 0) {
    struct wal_buf *b = &w->bufs[w->flush_buf];
    if (!w->poison)
      w->st.bytes_written += wal_buf_fresh(b);
    wal_buf_release(b);
  }
  /* Buffers beyond the active one and a spare served a stream: they go back (a stream resumes
     with fresh ones; a large record can leave a buffer of any size). */
  int kept = 0;
  for (int i = 0; i < WAL_NBUF; i++) {
    struct wal_buf *b = &w->bufs[i];
    if (i == w->active || !b->p || !kept++)
      continue;
    mem_buf_put(b->p, b->cap);
    b->p = NULL;
    b->cap = 0;
  }
  w->flushing = 0;
  w->streaming = 0;
  wal_wake_all(w);
  /* Waiters that arrived during this flush are served by the next one right away. */
  struct wal_buf *ac = &w->bufs[w->active];
  if (!w->poison && (w->sync_target > w->durable_pos || wal_buf_fresh(ac)))
    wal_flush(w);
}

int wal_flush(struct wal *w)
{
  if (!w)
    return JDB_EINVAL;
  if (w->poison)
    return w->poison;
  if (!w->replayed)
    return JDB_OK;
  if (w->flushing) {
    if (wal_stream_seal(w))
      wal_chunks_fill(w);
    return JDB_OK;
  }
  struct wal_buf *b = &w->bufs[w->active];
  size_t fresh = wal_buf_fresh(b);
  uint64_t start = w->append_pos - fresh;
  int want_sync = w->sync_target > w->durable_pos;
  if (!fresh && !(want_sync && w->written_pos > w->durable_pos))
    return JDB_OK;
  JDB_ASSERT(start == w->written_pos);
  w->flushing = 1;
  w->streaming = 0;
  w->flush_sync = want_sync;
  w->flush_end = w->append_pos;
  w->flush_buf = -1;
  w->flush_w1 = w->flush_w2 = 0;
  w->flush_err = 0;
  w->flush_sync_after = 0;
  w->flush_ops_left = 0;
  struct fs_op *chain[3];
  size_t nops = 0;
  int chunked = 0;
  if (fresh) {
    /* Every write ends at a block boundary, the rest of its last block filled with zeros: a
       buffered write that covered a page only in part would make the kernel read the block
       first, on this thread (segments are zero-filled with O_DIRECT, so their pages are not
       cached); that read cost 10x the append itself for small records. Past the append
       position the file holds nothing replay would take (zeros, or a recycled spare's old
       records, whose positions name another segment), and zeros keep it so. */
    uint64_t end_off = LOG_POS_OFF(w->append_pos);
    size_t pad = (size_t)(-end_off & (WAL_BLOCK - 1));
    memset(b->p + b->len, 0, pad);
    /* The buffer's file range [start - head, append_pos) starts at a block boundary unless no
       earlier flush of this segment left a head (after replay stopped mid-block). */
    uint64_t boff = LOG_POS_OFF(start) - b->head;
    int aligned = boff % WAL_BLOCK == 0;
    int direct = aligned && w->cur_dio && fresh >= w->o.direct_min;
    size_t skip = b->head;         /* buffer bytes before the first one written */
    if (direct && !w->dio_last && b->head) {
      /* The block holding `start` was last written through the page cache and may be dirty
         there: a direct write over it would first wait for its writeback (4 ms measured, at
         every switch from small flushes to large ones). Its new bytes go through the page
         cache too, and the direct write starts at the next block. */
      if (b->len + pad <= WAL_BLOCK) {
        direct = 0;
      } else {
        fs_op_prep_write(&w->op_write2, w->cur_f, b->p + b->head, WAL_BLOCK - (uint32_t)b->head,
                         LOG_POS_OFF(start));
        chain[nops++] = &w->op_write2;
        w->flush_w2 = 1;
        skip = WAL_BLOCK;
      }
    } else if (aligned && (direct || w->dio_last)) {
      /* From the block boundary: O_DIRECT needs it, and after a direct write the first block
         is not in the page cache (a partial buffered write would read it). */
      skip = 0;
    }
    int old = w->active;
    size_t whole = b->len & ~(size_t)(WAL_BLOCK - 1);
    if (direct && !want_sync && wal_stream_wanted(w) && whole > skip &&
        whole - skip >= w->o.direct_min && wal_buf_split(w, b->len - whole) == JDB_OK) {
      /* A stream: the next buffer holds the bytes of the partial last block as new ones, and
         later pieces go on from the block boundary (wal_stream_seal). */
      pad = 0;
      w->streaming = 1;
      w->flush_end = w->append_pos - wal_buf_fresh(&w->bufs[w->active]);
    }
    size_t wlen = b->len + pad - skip;
    if (direct && (w->streaming || wlen > WAL_DIO_CHUNK)) {
      wal_piece_push(w, old, boff + skip, skip, wlen);
      chunked = 1;
    } else {
      JDB_ASSERT(wlen <= UINT32_MAX);
      fs_op_prep_write(&w->op_write, direct ? w->cur_dio : w->cur_f, b->p + skip, (uint32_t)wlen,
                       boff + skip);
      chain[nops++] = &w->op_write;
      w->flush_w1 = 1;
      w->st.writes++;
      w->st.writes_direct += direct;
    }
    w->st.writes += w->flush_w2;
    w->dio_last = direct;
    b->busy = 1;
    b->start = start;
    if (!w->streaming) {
      /* The next buffer starts with the bytes of append_pos's block written so far. */
      w->active = wal_buf_free_index(w);
      JDB_ASSERT(w->active >= 0);
      struct wal_buf *nb = &w->bufs[w->active];
      JDB_ASSERT(nb->len == 0 && nb->head == 0);
      size_t tail = end_off % WAL_BLOCK;
      if (tail <= b->len && wal_buf_reserve(nb, tail) == JDB_OK) {
        memcpy(nb->p, b->p + b->len - tail, tail);
        nb->len = nb->head = tail;
      }
    }
    w->flush_buf = old;
  }
  if (want_sync && chunked) {
    /* Chunks go out side by side: the fdatasync follows when every one has completed. */
    fs_op_prep_sync(&w->op_sync, w->cur_dio, 0);
    w->op_sync.done = wal_flush_done;
    w->op_sync.udata = w;
    w->flush_sync_after = 1;
    w->st.syncs++;
  } else if (want_sync) {
    /* fdatasync works per inode: either descriptor covers the writes of both. */
    fs_op_prep_sync(&w->op_sync, w->dio_last ? w->cur_dio : w->cur_f, 0);
    chain[nops++] = &w->op_sync;
    w->st.syncs++;
  }
  w->flush_ops_left = (unsigned)nops;
  for (size_t i = 0; i < nops; i++) {
    chain[i]->done = wal_flush_done;
    chain[i]->udata = w;
  }
  int rc = JDB_OK;
  if (nops)
    rc = nops == 1 ? fs_submit(w->ctx, chain[0]) : fs_submit_chain(w->ctx, chain, nops);
  JDB_ASSERT(rc == JDB_OK);   /* ops built here are always valid */
  wal_chunks_fill(w);
  return JDB_OK;
}

static int wal_reached(const struct wal *w, uint64_t end, int level)
{
  return level == WAL_DURABLE ? w->durable_pos >= end : w->written_pos >= end;
}

/* Wait for the flush in flight to make progress: a fiber parks until wal_wake_all, a thread
   outside fibers reaps completions. */
static int wal_park(struct wal *w)
{
  if (coro_self()) {
    struct wal_waiter me = {.c = coro_self(), .next = w->waiters};
    w->waiters = &me;
    coro_park();
    /* coro_park may return early (a wake from elsewhere): then we are still linked, and
       must not stay in the list once this frame is gone. */
    for (struct wal_waiter **pp = &w->waiters; *pp; pp = &(*pp)->next)
      if (*pp == &me) {
        *pp = me.next;
        break;
      }
    return JDB_OK;
  }
  JDB_ASSERT(w->flushing);
  int rc = fs_poll(w->ctx, 1);
  return rc < 0 ? rc : JDB_OK;
}

int wal_wait(struct wal *w, uint64_t end, int level)
{
  if (!w || (level != WAL_WRITTEN && level != WAL_DURABLE))
    return JDB_EINVAL;
  if (end > w->append_pos)
    return JDB_EINVAL;
  for (;;) {
    if (wal_reached(w, end, level))
      return JDB_OK;
    if (w->poison)
      return w->poison;
    if (level == WAL_DURABLE && w->sync_target < end)
      w->sync_target = end;
    if (w->want_pos < end)
      w->want_pos = end;
    int rc = wal_flush(w);
    if (rc)
      return rc;
    rc = wal_park(w);
    if (rc)
      return rc;
  }
}

int wal_sync(struct wal *w)
{
  if (!w)
    return JDB_EINVAL;
  return wal_wait(w, w->append_pos, WAL_DURABLE);
}

/* ------------------------------------------------------------------------------------------- */
/* Segments: preparing, rolling, dropping */

static void wal_prep_end(struct wal_prep *pp, int state)
{
  pp->state = state;
  struct coro *c = pp->waiter;
  pp->waiter = NULL;
  if (c)
    coro_wake(c);
}

static void wal_prep_sync_done(struct fs_op *op)
{
  struct wal_prep *pp = op->udata;
  pp->inflight--;
  pp->err = fs_op_error(op);
  wal_prep_end(pp, pp->err ? WAL_PREP_FAILED : WAL_PREP_READY);
}

static void wal_prep_write_done(struct fs_op *op);

/* Queue the next zero chunk on op; 0 when there is none left or the submit failed. */
static int wal_prep_issue(struct wal_prep *pp, struct fs_op *op)
{
  if (pp->err || pp->next_off >= pp->size)
    return 0;
  fs_op_prep_write(op, pp->f, pp->zero, WAL_ZERO_CHUNK, pp->next_off);
  op->done = wal_prep_write_done;
  op->udata = pp;
  if (fs_submit(pp->ctx, op) != JDB_OK) {
    pp->err = JDB_EIO;
    return 0;
  }
  pp->next_off += WAL_ZERO_CHUNK;
  pp->inflight++;
  return 1;
}

/* The preparation's last step: its file's fdatasync (the zeros, or the reserved size). */
static void wal_prep_sync_start(struct wal_prep *pp)
{
  fs_op_prep_sync(&pp->sync, pp->f, 0);
  pp->sync.done = wal_prep_sync_done;
  pp->sync.udata = pp;
  if (fs_submit(pp->ctx, &pp->sync) != JDB_OK) {
    pp->err = JDB_EIO;
    wal_prep_end(pp, WAL_PREP_FAILED);
    return;
  }
  pp->inflight++;
}

static void wal_prep_write_done(struct fs_op *op)
{
  struct wal_prep *pp = op->udata;
  pp->inflight--;
  if (!pp->err)
    pp->err = fs_op_error(op);
  if (wal_prep_issue(pp, op) || pp->inflight)
    return;
  if (pp->err) {
    wal_prep_end(pp, WAL_PREP_FAILED);
    return;
  }
  wal_prep_sync_start(pp);
}

/* Whether the next segment is zero-filled (wal_opts.zero_fill). An fdatasync after writes into
   reserved, never-written space also converts the extents and commits the file-system journal
   (about 170 us here against 90 us over written blocks), while zero-filling writes every byte of
   the segment twice. WAL_ZERO_AUTO pays the zeros where syncs are frequent: the log's own
   syncs (a roll's, a checkpoint's) are a few per segment, durable commits many. */
static int wal_zero_wanted(const struct wal *w)
{
  if (w->o.zero_fill != WAL_ZERO_AUTO)
    return w->o.zero_fill == WAL_ZERO_ALWAYS;
  return !w->replayed || w->st.syncs - w->syncs_from >= WAL_ZERO_SYNCS;
}

/* Start preparing next.tmp for the segment after the current one (zero-filling it, or reserving
   its space), unless a spare can serve the next roll or a preparation is already under way.
   Failures are kept for the roll to see. */
static void wal_prep_start(struct wal *w)
{
  struct wal_prep *pp = &w->prep;
  if (pp->state != WAL_PREP_IDLE || w->nspares > 0)
    return;
  char path[4096];
  wal_prep_path(w, path, sizeof path);
  fs_unlink(w->ctx, path);
  memset(pp, 0, sizeof *pp);
  pp->ctx = w->ctx;
  pp->size = w->o.segment_bytes;
  pp->state = WAL_PREP_BUSY;
  pp->zeroed = wal_zero_wanted(w);
  pp->err = fs_file_open(w->ctx, path, FS_O_CREATE | (pp->zeroed ? FS_O_DIRECT : 0), &pp->f);
  if (pp->err) {
    wal_prep_end(pp, WAL_PREP_FAILED);
    return;
  }
  if (!pp->zeroed) {
    pp->err = fs_file_allocate(w->ctx, pp->f, 0, pp->size);
    if (pp->err) {
      wal_prep_end(pp, WAL_PREP_FAILED);
      return;
    }
    wal_prep_sync_start(pp);
    fs_flush(w->ctx);
    return;
  }
  pp->zero = mem_buf_get(WAL_ZERO_CHUNK);
  if (!pp->zero) {
    pp->err = JDB_ENOMEM;
    wal_prep_end(pp, WAL_PREP_FAILED);
    return;
  }
  memset(pp->zero, 0, WAL_ZERO_CHUNK);
  for (unsigned i = 0; i < WAL_PREP_QD; i++)
    wal_prep_issue(pp, &pp->ops[i]);
  if (!pp->inflight)
    wal_prep_end(pp, WAL_PREP_FAILED);
  else
    fs_flush(w->ctx);
}

/* The next segment is prepared once the current one is a quarter full, not when it is
   created: a process that opens the log, writes a little and exits (tools, tests, crash loops)
   never zero-fills a segment it will not use, and three quarters of a segment of appends still
   run ahead of the roll that needs the preparation. */
static void wal_prep_maybe(struct wal *w)
{
  if (w->prep.state == WAL_PREP_IDLE && w->nspares == 0 &&
      LOG_POS_OFF(w->append_pos) >= w->cur_size / 4)
    wal_prep_start(w);
}

/* Wait for a preparation under way; then release its file and buffer. Returns its final state
   and sets *err. The file stays on disk (next.tmp) for the caller to rename or remove. */
static int wal_prep_finish(struct wal *w, int *err)
{
  struct wal_prep *pp = &w->prep;
  while (pp->state == WAL_PREP_BUSY) {
    if (coro_self()) {
      pp->waiter = coro_self();
      coro_park();
    } else if (fs_poll(w->ctx, 1) < 0) {
      break;
    }
  }
  while (pp->inflight)   /* a failed preparation may still have writes out */
    fs_poll(w->ctx, 1);
  if (pp->f)
    fs_file_close(w->ctx, pp->f);
  pp->f = NULL;
  if (pp->zero)
    mem_buf_put(pp->zero, WAL_ZERO_CHUNK);
  pp->zero = NULL;
  int state = pp->state;
  *err = pp->err ? pp->err : (state == WAL_PREP_READY ? JDB_OK : JDB_EIO);
  pp->state = WAL_PREP_IDLE;
  return state;
}

static int wal_zero_range(struct wal *w, struct fs_file *f, uint64_t from, uint64_t to);

/* A new segment file that reads as zeros (zero-filled or allocated, wal_zero_wanted; or a
   recycled spare, whose blocks are already written and whose old records carry other segment
   numbers), synced and renamed into place, then opened for buffered writing as the current
   segment. */
static int wal_seg_create(struct wal *w, uint32_t seg, uint64_t size)
{
  char path[4096], tmp[4200];
  wal_seg_path(w, seg, path, sizeof path);
  int rc;
  if (w->nspares > 0) {
    char sp[4096];
    wal_spare_path(w, w->nspares - 1, sp, sizeof sp);
    struct fs_file *f;
    uint64_t have = 0;
    rc = fs_file_open(w->ctx, sp, 0, &f);
    if (rc == JDB_OK) {
      fs_file_size(w->ctx, f, &have);
      fs_file_close(w->ctx, f);
    }
    w->nspares--;
    if (rc == JDB_OK && have >= size) {
      rc = fs_rename(w->ctx, sp, path);
      if (rc == JDB_OK) {
        w->st.segments_reused++;
        size = have;
        goto opened;
      }
    }
    fs_unlink(w->ctx, sp);
  }
  if (w->prep.state != WAL_PREP_IDLE) {
    int perr;
    uint64_t psize = w->prep.size;
    int pzeroed = w->prep.zeroed;
    int st = wal_prep_finish(w, &perr);
    char pp[4096];
    wal_prep_path(w, pp, sizeof pp);
    if (st != WAL_PREP_READY) {
      fs_unlink(w->ctx, pp);
      return perr;   /* the disk refused the preparation: the roll reports it */
    }
    if (pzeroed)
      w->st.bytes_prepared += psize;
    if (psize >= size && fs_rename(w->ctx, pp, path) == JDB_OK) {
      w->st.segments_created++;
      w->st.segments_allocated += !pzeroed;
      size = psize;
      goto opened;
    }
    fs_unlink(w->ctx, pp);   /* too small for an oversized record: prepare one to fit */
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  fs_unlink(w->ctx, tmp);
  struct fs_file *f;
  int zeroed = wal_zero_wanted(w);
  rc = fs_file_open(w->ctx, tmp, FS_O_CREATE | (zeroed ? FS_O_DIRECT : 0), &f);
  if (rc)
    return rc;
  rc = zeroed ? wal_zero_range(w, f, 0, size) : fs_file_allocate(w->ctx, f, 0, size);
  if (rc == JDB_OK)
    rc = fs_sync(w->ctx, f);
  fs_file_close(w->ctx, f);
  if (rc == JDB_OK)
    rc = fs_rename(w->ctx, tmp, path);
  if (rc) {
    fs_unlink(w->ctx, tmp);
    return rc;
  }
  if (zeroed)
    w->st.bytes_prepared += size;
  w->st.segments_created++;
  w->st.segments_allocated += !zeroed;
opened:
  rc = wal_cur_open(w, path);
  if (rc)
    return rc;
  rc = wal_segs_add(w, seg);
  if (rc)
    return rc;
  w->cur_seg = seg;
  w->cur_size = size;
  w->syncs_from = w->syncs_cur;
  w->syncs_cur = w->st.syncs;
  w->append_pos = w->written_pos = w->durable_pos = LOG_POS(seg, 0);
  /* The roll left everything written: the active buffer holds at most the old segment's last
     block, which is no head of this one. */
  struct wal_buf *b = &w->bufs[w->active];
  JDB_ASSERT(!w->flushing && b->len == b->head);
  b->len = b->head = 0;
  return wal_put_seg_record(w);
}

/* Appends that other fibers make while a roll is parked (waiting for its END record to be
   durable, or creating the next segment) wait here: a record placed after the END would never
   be replayed, and its write could still be in flight when the roll closes the file. They go on
   in arrival order, so the log keeps the order in which appends were called. Returns the poison
   error (JDB_OK if none). */
static int wal_gate(struct wal *w)
{
  if (!w->rolling && !w->gate_head)
    return w->poison;
  /* Only a fiber can find a roll in progress: a roll outside fibers blocks the thread. */
  JDB_ASSERT(coro_self() != NULL);
  struct wal_waiter me = {.c = coro_self(), .next = NULL};
  if (w->gate_tail)
    w->gate_tail->next = &me;
  else
    w->gate_head = &me;
  w->gate_tail = &me;
  while (w->rolling || w->gate_head != &me)
    coro_park();
  w->gate_head = me.next;
  if (!w->gate_head)
    w->gate_tail = NULL;
  else
    coro_wake(w->gate_head->c);   /* it runs after this append (or parks again on a roll) */
  return w->poison;
}

static int wal_roll_locked(struct wal *w, uint64_t need);

/* End the current segment and start the next, sized for at least `need` more bytes. */
static int wal_roll(struct wal *w, uint64_t need)
{
  w->rolling = 1;
  int rc = wal_roll_locked(w, need);
  w->rolling = 0;
  if (w->gate_head)
    coro_wake(w->gate_head->c);
  return rc;
}

static int wal_roll_locked(struct wal *w, uint64_t need)
{
  uint8_t *r = wal_rec_begin(w, WAL_END_REC_LEN);
  if (!r)
    return JDB_ENOMEM;
  wal_rec_end(w, r, LOG_REC_PAD, WAL_PAD_END, WAL_END_REC_LEN);
  /* The next segment may exist only once this one is durable through its END: then a segment's
     existence implies every earlier one is whole, and replay can follow the chain. */
  int rc = wal_sync(w);
  if (rc)
    return rc;
  if (w->cur_seg == LOG_SEG_MAX) {
    wal_poison(w, JDB_ENOSPC, "segment numbering");
    return JDB_ENOSPC;
  }
  wal_cur_close(w);
  uint64_t size = w->o.segment_bytes;
  uint64_t min = need + WAL_SEG_REC_LEN + WAL_END_REC_LEN;
  if (min > size)
    size = (min + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
  rc = wal_seg_create(w, w->cur_seg + 1, size);
  if (rc)
    wal_poison(w, rc, "creating the next segment");
  return rc;
}

int wal_segment_drop(struct wal *w, uint32_t seg)
{
  if (!w || !w->replayed || seg >= w->cur_seg)
    return JDB_EINVAL;
  if (w->o.read_only)
    return JDB_EREADONLY;
  int found = 0;
  for (size_t i = 0; i < w->nsegs; i++)
    found |= w->segs[i] == seg;
  if (!found)
    return JDB_NOTFOUND;
  for (int i = 0; i < WAL_READ_FILES; i++)
    if (w->rfiles[i].f && w->rfiles[i].seg == seg) {
      fs_file_close(w->ctx, w->rfiles[i].f);
      w->rfiles[i].f = NULL;
    }
  char path[4096];
  wal_seg_path(w, seg, path, sizeof path);
  int rc;
  if (w->nspares < WAL_SPARES_MAX) {
    char sp[4096];
    wal_spare_path(w, w->nspares, sp, sizeof sp);
    rc = fs_rename(w->ctx, path, sp);
    if (rc == JDB_OK)
      w->nspares++;
  } else {
    rc = fs_unlink(w->ctx, path);
  }
  if (rc == JDB_OK)
    wal_segs_remove(w, seg);
  return rc;
}

size_t wal_segments(const struct wal *w, uint32_t *segs, size_t cap)
{
  for (size_t i = 0; i < w->nsegs && i < cap; i++)
    segs[i] = w->segs[i];
  return w->nsegs;
}

/* ------------------------------------------------------------------------------------------- */
/* Appending */

/* Room for a record of `padded` bytes: the next segment when this one cannot hold it (and its
   END); and, while a flush is out, an active buffer below WAL_BUF_MAX: past it the append waits
   until the flush (or its stream) has taken the buffer (other fibers' appends queue at the gate
   meanwhile, as during a roll). An appender faster than the device so holds a few MiB, not a
   whole segment, and the device reads data written moments before (DESIGN.md §8). */
static int wal_room(struct wal *w, uint64_t padded)
{
  if (LOG_POS_OFF(w->append_pos) + padded + WAL_END_REC_LEN > w->cur_size)
    return wal_roll(w, padded);
  int rc = JDB_OK;
  while (rc == JDB_OK && !w->poison && w->flushing) {
    size_t fresh = wal_buf_fresh(&w->bufs[w->active]);
    if (!fresh || fresh + padded <= WAL_BUF_MAX)
      break;
    w->st.append_stalls += !w->rolling;
    w->rolling = 1;
    rc = wal_park(w);
  }
  if (w->rolling) {
    w->rolling = 0;
    if (w->gate_head)
      coro_wake(w->gate_head->c);
  }
  return rc ? rc : w->poison;
}

int wal_append(struct wal *w, uint64_t table_id, uint64_t seq, uint64_t ts_sec,
               const struct wal_op *ops, uint32_t nops, struct wal_vref *vrefs, uint64_t *end)
{
  if (!w || !ops || nops == 0)
    return JDB_EINVAL;
  if (!w->replayed)
    return JDB_EINVAL;
  if (w->poison)
    return w->poison;
  uint64_t len = wal_batch_size(w, ops, nops);
  if (len == 0 || len > LOG_REC_LEN_MAX)
    return JDB_EINVAL;
  int rc = wal_gate(w);
  if (rc)
    return rc;
  rc = wal_room(w, layout_rec_padded((uint32_t)len));
  if (rc)
    return rc;
  uint8_t *r = wal_rec_begin(w, (uint32_t)len);
  if (!r)
    return JDB_ENOMEM;
  uint8_t *p = r + LOG_REC_HDR_SIZE;
  le64_put(p, table_id);
  le64_put(p + 8, seq);
  le64_put(p + 16, ts_sec);
  p += 24;
  p += varint_put(p, nops);
  for (uint32_t i = 0; i < nops; i++) {
    const struct wal_op *op = &ops[i];
    int sep = op->kind == WAL_OP_PUT && op->vlen > w->o.inline_max;
    *p++ = (uint8_t)(sep ? WAL_OP_PUT_SEP : op->kind);
    p += varint_put(p, op->klen);
    memcpy(p, op->key, op->klen);
    p += op->klen;
    if (vrefs)
      vrefs[i] = (struct wal_vref){0, 0};
    if (op->kind != WAL_OP_PUT)
      continue;
    p += varint_put(p, op->vlen);
    if (sep) {
      uint64_t at = w->append_pos + (uint64_t)(p - r);
      le32_put(p, layout_cksum(op->val, op->vlen));
      p += 4;
      if (vrefs)
        vrefs[i] = (struct wal_vref){at, op->vlen};
    }
    if (op->vlen)
      memcpy(p, op->val, op->vlen);
    p += op->vlen;
  }
  JDB_ASSERT((uint64_t)(p - r) == len);
  wal_rec_end(w, r, LOG_REC_BATCH, 0, (uint32_t)len);
  wal_prep_maybe(w);
  if (end)
    *end = w->append_pos;
  return JDB_OK;
}

int wal_append_record(struct wal *w, uint8_t type, const void *payload, uint32_t len,
                      uint64_t *pos, uint64_t *end)
{
  if (!w || (len && !payload) || type != LOG_REC_MOVE)
    return JDB_EINVAL;
  if (!w->replayed)
    return JDB_EINVAL;
  if (w->poison)
    return w->poison;
  uint64_t total = (uint64_t)len + LOG_REC_HDR_SIZE;
  if (total > LOG_REC_LEN_MAX)
    return JDB_EINVAL;
  int rc = wal_gate(w);
  if (rc)
    return rc;
  rc = wal_room(w, layout_rec_padded((uint32_t)total));
  if (rc)
    return rc;
  uint8_t *r = wal_rec_begin(w, (uint32_t)total);
  if (!r)
    return JDB_ENOMEM;
  if (len)
    memcpy(r + LOG_REC_HDR_SIZE, payload, len);
  if (pos)
    *pos = w->append_pos;
  wal_rec_end(w, r, type, 0, (uint32_t)total);
  wal_prep_maybe(w);
  if (end)
    *end = w->append_pos;
  return JDB_OK;
}

uint64_t wal_append_pos(const struct wal *w) { return w->append_pos; }
uint64_t wal_written_pos(const struct wal *w) { return w->written_pos; }
uint64_t wal_durable_pos(const struct wal *w) { return w->durable_pos; }

void wal_stats_get(const struct wal *w, struct wal_stats *out)
{
  *out = w->st;
}

/* ------------------------------------------------------------------------------------------- */
/* Batch decoding (untrusted) */

int wal_batch_open(const struct wal_rec *rec, struct wal_batch *b)
{
  memset(b, 0, sizeof *b);
  if (rec->type != LOG_REC_BATCH)
    return JDB_CORRUPT("log batch type", rec->pos);
  codec_rd_init(&b->rd, rec->payload, rec->len);
  b->table_id = codec_rd_u64(&b->rd);
  b->seq = codec_rd_u64(&b->rd);
  b->ts_sec = codec_rd_u64(&b->rd);
  uint64_t n = codec_rd_varint(&b->rd);
  if (b->rd.err || n == 0 || n > rec->len)
    return JDB_CORRUPT("log batch header", rec->pos);
  b->nops = (uint32_t)n;
  b->rec_pos = rec->pos;
  b->payload_off = LOG_REC_HDR_SIZE;
  return JDB_OK;
}

int wal_batch_next(struct wal_batch *b, struct wal_op_view *op)
{
  memset(op, 0, sizeof *op);
  if (b->next_op == b->nops) {
    if (b->rd.off != b->rd.len)
      return JDB_CORRUPT("log batch trailing bytes", b->rec_pos);
    return JDB_NOTFOUND;
  }
  uint8_t kind = codec_rd_u8(&b->rd);
  uint64_t klen = codec_rd_varint(&b->rd);
  if (b->rd.err || klen == 0 || klen > WAL_KEY_MAX ||
      (kind != WAL_OP_PUT && kind != WAL_OP_DEL && kind != WAL_OP_PUT_SEP))
    return JDB_CORRUPT("log batch op", b->rec_pos);
  op->key = codec_rd_bytes(&b->rd, klen);
  op->klen = (uint32_t)klen;
  op->kind = kind == WAL_OP_DEL ? WAL_OP_DEL : WAL_OP_PUT;
  if (kind != WAL_OP_DEL) {
    uint64_t vlen = codec_rd_varint(&b->rd);
    if (b->rd.err || vlen > WAL_VAL_MAX)
      return JDB_CORRUPT("log batch value length", b->rec_pos);
    if (kind == WAL_OP_PUT_SEP) {
      uint64_t at = b->rec_pos + b->payload_off + b->rd.off;
      uint32_t ck = codec_rd_u32(&b->rd);
      op->val = codec_rd_bytes(&b->rd, vlen);
      if (b->rd.err || vlen == 0 || layout_cksum(op->val, vlen) != ck)
        return JDB_CORRUPT("log value", b->rec_pos);
      op->vref = (struct wal_vref){at, (uint32_t)vlen};
    } else {
      op->val = codec_rd_bytes(&b->rd, vlen);
    }
    op->vlen = (uint32_t)vlen;
  }
  if (b->rd.err)
    return JDB_CORRUPT("log batch op bytes", b->rec_pos);
  b->next_op++;
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Reading */

static int wal_rfile_get(struct wal *w, uint32_t seg, struct fs_file **f, uint64_t *size)
{
  int victim = 0;
  for (int i = 0; i < WAL_READ_FILES; i++) {
    if (w->rfiles[i].f && w->rfiles[i].seg == seg) {
      w->rfiles[i].used = ++w->rfile_clock;
      *f = w->rfiles[i].f;
      *size = w->rfiles[i].size;
      return JDB_OK;
    }
    /* An empty slot wins; else the least recently used. */
    if (w->rfiles[victim].f && (!w->rfiles[i].f || w->rfiles[i].used < w->rfiles[victim].used))
      victim = i;
  }
  struct wal_rfile *r = &w->rfiles[victim];
  if (r->f) {
    fs_file_close(w->ctx, r->f);
    r->f = NULL;
  }
  char path[4096];
  wal_seg_path(w, seg, path, sizeof path);
  int rc = fs_file_open(w->ctx, path, FS_O_RDONLY, &r->f);
  if (rc)
    return rc == JDB_NOTFOUND ? JDB_CORRUPT("log reference to a missing segment", seg) : rc;
  rc = fs_file_size(w->ctx, r->f, &r->size);
  if (rc) {
    fs_file_close(w->ctx, r->f);
    r->f = NULL;
    return rc;
  }
  r->seg = seg;
  r->used = ++w->rfile_clock;
  *f = r->f;
  *size = r->size;
  return JDB_OK;
}

int wal_read(struct wal *w, uint64_t pos, void *dst, uint32_t len)
{
  uint32_t seg = LOG_POS_SEG(pos);
  uint64_t off = LOG_POS_OFF(pos);
  if (len == 0)
    return JDB_OK;
  if (seg == w->cur_seg && w->cur_f) {
    if (off + len > LOG_POS_OFF(w->append_pos))
      return JDB_CORRUPT("log reference past the log end", pos);
    if (w->poison && pos + len > w->written_pos)
      return w->poison;   /* bytes a failed flush never wrote: its buffers are gone */
    /* Bytes not yet in the file are in buffers: the active one, [append_pos - fresh,
       append_pos), and those of the flush in flight (busy: [start, start + fresh)). Every other
       byte of the segment is in the file: a buffer is freed only once its writes completed.
       The buffered parts are copied first: a file read may park this fiber, and meanwhile the
       flush in flight can complete and its buffers be reused. */
    uint64_t end = pos + len, gap_at[WAL_NBUF + 1], gap_end[WAL_NBUF + 1];
    unsigned ngaps = 0;
    uint8_t *d = dst;
    for (uint64_t at = pos; at < end;) {
      uint64_t next = end;
      int hit = 0;
      for (int i = 0; i < WAL_NBUF && !hit; i++) {
        const struct wal_buf *b = &w->bufs[i];
        if (i != w->active && !b->busy)
          continue;
        uint64_t be = i == w->active ? w->append_pos : b->start + wal_buf_fresh(b);
        uint64_t bs = be - wal_buf_fresh(b);
        if (bs <= at && at < be) {
          uint64_t stop = be < end ? be : end;
          memcpy(d + (at - pos), b->p + b->head + (at - bs), (size_t)(stop - at));
          at = stop;
          hit = 1;
        } else if (bs > at && bs < next) {
          next = bs;
        }
      }
      if (hit)
        continue;
      JDB_ASSERT(ngaps <= WAL_NBUF);
      gap_at[ngaps] = at;
      gap_end[ngaps++] = next;
      at = next;
    }
    for (unsigned i = 0; i < ngaps; i++) {
      uint32_t n = (uint32_t)(gap_end[i] - gap_at[i]), got = 0;
      int rc = fs_read(w->ctx, w->cur_f, d + (gap_at[i] - pos), n, LOG_POS_OFF(gap_at[i]), &got);
      if (rc)
        return rc;
      if (got != n)
        return JDB_CORRUPT("short log segment", gap_at[i]);
    }
    return JDB_OK;
  }
  struct fs_file *f;
  uint64_t size;
  int rc = wal_rfile_get(w, seg, &f, &size);
  if (rc)
    return rc;
  if (off + len > size || off + len < off)
    return JDB_CORRUPT("log reference past the segment end", pos);
  uint32_t got = 0;
  rc = fs_read(w->ctx, f, dst, len, off, &got);
  return rc ? rc : got == len ? JDB_OK : JDB_CORRUPT("short log segment", pos);
}

/* ------------------------------------------------------------------------------------------- */
/* Replay */

/* A sliding window over one segment file, for sequential record parsing. */
int wal_win_get(struct fs_ctx *ctx, struct wal_win *wn, uint64_t off, size_t n,
                const uint8_t **p, size_t *avail)
{
  if (off >= wn->size) {
    *p = NULL;
    *avail = 0;
    return JDB_OK;
  }
  if (off + n > wn->size)
    n = (size_t)(wn->size - off);
  if (!(off >= wn->base && off + n <= wn->base + wn->len)) {
    size_t want = n > WAL_READ_CHUNK ? n : WAL_READ_CHUNK;
    if (off + want > wn->size)
      want = (size_t)(wn->size - off);
    if (want > wn->cap) {
      uint8_t *q = mem_realloc(wn->buf, want);
      if (!q)
        return JDB_ENOMEM;
      wn->buf = q;
      wn->cap = want;
    }
    uint32_t got = 0;
    int rc = fs_read(ctx, wn->f, wn->buf, (uint32_t)want, off, &got);
    if (rc)
      return rc;
    wn->base = off;
    wn->len = got;
    if (got < n)
      n = got;
  }
  *p = wn->buf + (off - wn->base);
  *avail = (size_t)(wn->base + wn->len - off);
  return JDB_OK;
}

void wal_win_free(struct wal_win *wn)
{
  mem_free(wn->buf);
  wn->buf = NULL;
  wn->cap = wn->base = wn->len = 0;
}

/* Try to read a whole valid record at off in seg. JDB_OK with *h filled, JDB_NOTFOUND if no
   valid record is there (quietly: the caller decides whether that is a tail or corruption). */
static int wal_rec_at(struct fs_ctx *ctx, struct wal_win *wn, uint32_t seg, uint64_t off,
                      struct layout_rec_hdr *h, const uint8_t **rec)
{
  const uint8_t *p;
  size_t avail;
  int rc = wal_win_get(ctx, wn, off, LOG_REC_HDR_SIZE, &p, &avail);
  if (rc)
    return rc;
  uint64_t pos = LOG_POS(seg, off);
  /* Cheap filter first: the identity field must name this very position. Zeros and stale
     records from a recycled file fail here without a log line. */
  if (avail < LOG_REC_HDR_SIZE || le64_get(p + 16) != pos)
    return JDB_NOTFOUND;
  if (layout_rec_peek(p, avail, pos, h) != JDB_OK)
    return JDB_NOTFOUND;
  rc = wal_win_get(ctx, wn, off, h->len, &p, &avail);
  if (rc)
    return rc;
  if (layout_rec_open(p, avail, pos, h) != JDB_OK)
    return JDB_NOTFOUND;
  *rec = p;
  return JDB_OK;
}

/* After the history stopped at stop_pos (a record there failed): is there evidence that it had
   been acknowledged as durable? Scans the rest of its segment and every later segment for a
   valid record whose durable_pos lies beyond stop_pos. Also reports the end of the last record
   with a valid identity after stop_pos in its segment (*stale_end), so it can be zeroed. */
static int wal_check_tail(struct wal *w, struct wal_win *wn, uint64_t stop_pos, uint64_t *stale_end)
{
  uint32_t seg = LOG_POS_SEG(stop_pos);
  *stale_end = LOG_POS_OFF(stop_pos);
  for (uint64_t off = LOG_POS_OFF(stop_pos) + LOG_REC_ALIGN; off + LOG_REC_HDR_SIZE <= wn->size;
       off += LOG_REC_ALIGN) {
    /* Skip to the next offset whose identity field names it, scanning the window in place
       (calling wal_rec_at at each of a 64 MiB segment's 8 M offsets took ~0.1 s of every open
       of a log that ends in a preallocated segment). */
    const uint8_t *p;
    size_t avail;
    int rc = wal_win_get(w->ctx, wn, off, LOG_REC_HDR_SIZE, &p, &avail);
    if (rc)
      return rc;
    if (avail < LOG_REC_HDR_SIZE)
      break;
    size_t k = 0;
    uint64_t pos = LOG_POS(seg, off);
    while (k + LOG_REC_HDR_SIZE <= avail && le64_get(p + k + 16) != pos + k)
      k += LOG_REC_ALIGN;
    if (k + LOG_REC_HDR_SIZE > avail) {
      off += k - LOG_REC_ALIGN;   /* the loop's step lands on the first offset not looked at */
      continue;
    }
    off += k;
    struct layout_rec_hdr h;
    const uint8_t *rec;
    rc = wal_rec_at(w->ctx, wn, seg, off, &h, &rec);
    if (rc == JDB_NOTFOUND)
      continue;
    if (rc)
      return rc;
    if (h.durable_pos > stop_pos) {
      char path[4096];
      wal_seg_path(w, seg, path, sizeof path);
      LOG_ERROR("%s: record at offset %llu is damaged, but the record at %llu says it was "
                "durable", path, (unsigned long long)LOG_POS_OFF(stop_pos),
                (unsigned long long)off);
      return JDB_CORRUPT("acknowledged log record", stop_pos);
    }
    *stale_end = off + layout_rec_padded(h.len);
    off = *stale_end - LOG_REC_ALIGN;
  }
  /* Later segments: any record claiming durability past the stop. */
  for (size_t i = 0; i < w->nsegs; i++) {
    uint32_t s = w->segs[i];
    if (s <= seg)
      continue;
    struct wal_win lw = {0};
    char path[4096];
    wal_seg_path(w, s, path, sizeof path);
    int rc = fs_file_open(w->ctx, path, FS_O_RDONLY, &lw.f);
    if (rc)
      return rc;
    fs_file_size(w->ctx, lw.f, &lw.size);
    uint64_t off = 0;
    for (;;) {
      struct layout_rec_hdr h;
      const uint8_t *rec;
      rc = wal_rec_at(w->ctx, &lw, s, off, &h, &rec);
      if (rc)
        break;
      if (h.durable_pos > stop_pos) {
        LOG_ERROR("%s: record at %llu says the log was durable past a damaged record in "
                  "segment %u at %llu", path, (unsigned long long)off, seg,
                  (unsigned long long)LOG_POS_OFF(stop_pos));
        rc = JDB_CORRUPT("acknowledged log record", stop_pos);
        break;
      }
      off += layout_rec_padded(h.len);
    }
    fs_file_close(w->ctx, lw.f);
    mem_free(lw.buf);
    if (rc != JDB_NOTFOUND && rc != JDB_OK)
      return rc;
  }
  return JDB_OK;
}

/* Zero [from, to) of the segment file and sync it, so nothing there can be replayed later. */
static int wal_zero_range(struct wal *w, struct fs_file *f, uint64_t from, uint64_t to)
{
  if (to <= from)
    return JDB_OK;
  void *zero = mem_buf_get(WAL_ZERO_CHUNK);
  if (!zero)
    return JDB_ENOMEM;
  memset(zero, 0, WAL_ZERO_CHUNK);
  int rc = JDB_OK;
  for (uint64_t off = from; rc == JDB_OK && off < to; off += WAL_ZERO_CHUNK) {
    uint64_t n = to - off < WAL_ZERO_CHUNK ? to - off : WAL_ZERO_CHUNK;
    rc = fs_write(w->ctx, f, zero, (uint32_t)n, off);
  }
  mem_buf_put(zero, WAL_ZERO_CHUNK);
  return rc;
}

static int wal_drop_after(struct wal *w, uint32_t seg)
{
  while (w->nsegs && w->segs[w->nsegs - 1] > seg) {
    char path[4096];
    uint32_t s = w->segs[w->nsegs - 1];
    wal_seg_path(w, s, path, sizeof path);
    LOG_WARN("log: removing segment %u, written after the end of the recovered history", s);
    int rc = fs_unlink(w->ctx, path);
    if (rc && rc != JDB_NOTFOUND)
      return rc;
    w->nsegs--;
  }
  return JDB_OK;
}

/* The end of a read-only replay: the positions are set; nothing was written and nothing may be. */
static int wal_replay_end_ro(struct wal *w, uint64_t *end_pos)
{
  w->cur_seg = LOG_POS_SEG(w->append_pos);
  w->replayed = 1;
  w->poison = JDB_EREADONLY;
  if (end_pos)
    *end_pos = w->append_pos;
  return JDB_OK;
}

int wal_replay(struct wal *w, uint64_t from_pos, wal_replay_fn fn, void *ud, uint64_t *end_pos)
{
  if (!w || w->replayed)
    return JDB_EINVAL;
  int rc = JDB_OK;
  if (w->nsegs == 0) {
    if (from_pos && LOG_POS_SEG(from_pos) > 1)
      return JDB_CORRUPT("log is empty but the checkpoint names a later position", from_pos);
    if (w->o.read_only) {
      w->append_pos = w->written_pos = w->durable_pos = LOG_POS(1, 0);
      return wal_replay_end_ro(w, end_pos);
    }
    rc = wal_seg_create(w, 1, w->o.segment_bytes);
    if (rc)
      return rc;
    w->replayed = 1;
    if (end_pos)
      *end_pos = w->append_pos;
    return JDB_OK;
  }
  uint32_t seg = from_pos ? LOG_POS_SEG(from_pos) : w->segs[0];
  uint64_t off = from_pos ? LOG_POS_OFF(from_pos) : 0;
  if (seg < w->segs[0] || (off % LOG_REC_ALIGN))
    return JDB_CORRUPT("replay position before the oldest log segment", from_pos);
  uint64_t stop = 0;        /* where the history ends (a failing record), 0 = clean segment end */
  uint32_t next_seg = 0;    /* after a clean END: the segment that comes next */
  struct wal_win wn = {0};
  for (;;) {
    int exists = 0;
    for (size_t i = 0; i < w->nsegs; i++)
      exists |= w->segs[i] == seg;
    if (!exists) {
      /* The previous segment ended cleanly (or the checkpoint names the start of a segment
         that was never created): the history ends at its start. */
      next_seg = seg;
      break;
    }
    char path[4096];
    wal_seg_path(w, seg, path, sizeof path);
    rc = fs_file_open(w->ctx, path, FS_O_RDONLY, &wn.f);
    if (rc)
      goto out;
    rc = fs_file_size(w->ctx, wn.f, &wn.size);
    if (rc)
      goto out;
    wn.base = wn.len = 0;
    int ended = 0;
    while (!ended) {
      struct layout_rec_hdr h;
      const uint8_t *recp;
      rc = wal_rec_at(w->ctx, &wn, seg, off, &h, &recp);
      if (rc == JDB_NOTFOUND) {
        stop = LOG_POS(seg, off);
        rc = JDB_OK;
        break;
      }
      if (rc)
        goto out;
      int bad = 0;
      if (off == 0)
        bad = h.type != LOG_REC_SEG || h.len != WAL_SEG_REC_LEN ||
              le32_get(recp + LOG_REC_HDR_SIZE) != seg;
      else if (h.type == LOG_REC_SEG)
        bad = 1;
      if (bad) {
        rc = JDB_CORRUPT("log segment header", LOG_POS(seg, off));
        goto out;
      }
      if (h.type == LOG_REC_PAD && (h.flags & WAL_PAD_END))
        ended = 1;
      if ((h.type == LOG_REC_BATCH || h.type == LOG_REC_MOVE) && fn) {
        struct wal_rec rec = {.pos = LOG_POS(seg, off), .end = LOG_POS(seg, off) +
                              layout_rec_padded(h.len), .type = h.type, .flags = h.flags,
                              .payload = recp + LOG_REC_HDR_SIZE,
                              .len = h.len - LOG_REC_HDR_SIZE};
        rc = fn(ud, &rec);
        if (rc)
          goto out;
      }
      off += layout_rec_padded(h.len);
    }
    if (!ended)
      break;
    int last = 1;
    for (size_t i = 0; i < w->nsegs; i++)
      last &= w->segs[i] != seg + 1;
    if (last && !w->o.read_only) {
      /* The history ends with this END record, which may have come from the page cache of a
         process that died before its fdatasync completed. A roll creates the next segment only
         once the END is durable; the replay below creates it now, so make this one durable
         first (else a power loss could tear this segment under a next one that exists). */
      rc = fs_sync(w->ctx, wn.f);
      if (rc)
        goto out;
    }
    fs_file_close(w->ctx, wn.f);
    wn.f = NULL;
    seg++;
    off = 0;
  }

  if (stop) {
    /* The history ends inside segment `seg` at `stop`. Torn tail or damaged durable data? */
    uint64_t stale_end;
    rc = wal_check_tail(w, &wn, stop, &stale_end);
    if (rc)
      goto out;
    fs_file_close(w->ctx, wn.f);
    wn.f = NULL;
    if (w->o.read_only) {   /* the torn tail and anything after it stay on disk, unread */
      w->append_pos = w->written_pos = w->durable_pos = stop;
      rc = wal_replay_end_ro(w, end_pos);
      goto out;
    }
    rc = wal_drop_after(w, seg);
    if (rc)
      goto out;
    char path[4096];
    wal_seg_path(w, seg, path, sizeof path);
    rc = wal_cur_open(w, path);
    if (rc)
      goto out;
    if (stale_end > LOG_POS_OFF(stop)) {
      LOG_WARN("%s: torn tail at offset %llu cut off (%llu bytes zeroed)", path,
               (unsigned long long)LOG_POS_OFF(stop),
               (unsigned long long)(stale_end - LOG_POS_OFF(stop)));
      rc = wal_zero_range(w, w->cur_f, LOG_POS_OFF(stop), stale_end);
      if (rc)
        goto out;
    }
    /* What was replayed may have come from the page cache of a process that died: make it
       durable before anything new is acknowledged on top of it. */
    rc = fs_sync(w->ctx, w->cur_f);
    if (rc)
      goto out;
    w->cur_seg = seg;
    w->cur_size = wn.size;
    w->append_pos = w->written_pos = w->durable_pos = stop;
    if (LOG_POS_OFF(stop) == 0) {
      rc = wal_put_seg_record(w);   /* a segment whose SEG record never made it */
      if (rc)
        goto out;
    }
  } else {
    /* Clean end: the next segment was never created. A later one existing means a segment in
       the middle of the history is missing. */
    if (w->segs[w->nsegs - 1] > next_seg) {
      rc = JDB_CORRUPT("log segment missing from the middle of the history", next_seg);
      goto out;
    }
    if (w->o.read_only) {
      w->append_pos = w->written_pos = w->durable_pos = LOG_POS(next_seg, 0);
      rc = wal_replay_end_ro(w, end_pos);
      goto out;
    }
    rc = wal_seg_create(w, next_seg, w->o.segment_bytes);
    if (rc)
      goto out;
  }
  w->replayed = 1;
  if (end_pos)
    *end_pos = w->append_pos;
out:
  if (wn.f)
    fs_file_close(w->ctx, wn.f);
  wal_win_free(&wn);
  return rc;
}
