/*
 * pg.c - the buffer manager of one shard's pages file (store/page, L2): open and close, the two
 * superblock slots, pins (the read path, its verification and its waits), page allocation and
 * freeing, statistics and the structure walker. Frames and eviction are in pg_evict.c; the
 * free-page sets, free-list pages and commit in pg_commit.c.
 *
 * Pages file (4 KiB pages; docs/FORMAT.md has the tables):
 *   pgno  contents
 *      0  superblock slot 0: generations 0, 2, 4, ... (infra/layout super)
 *      1  superblock slot 1: generations 1, 3, 5, ...
 *     2.. tree pages (BRANCH, LEAF, OVERFLOW: the caller's bodies) and free-list pages
 *         (FREELIST, pg_commit.c), each with the 32-byte page header:
 *   off size field
 *     0    4 checksum over bytes 4..4095
 *     4    2 magic 0x504A
 *     6    1 type          7 1 level     8 2 count     10 2 flags     12 4 aux
 *    16    8 pgno: the page's own number
 *    24    8 generation: the commit that wrote it (<= the superblock generation that is read;
 *              current + 1 for a page the state being built spilled, pg_commit.c)
 *    32    . body
 *
 * Invariants:
 *   - The superblock in memory (p->sb) is the newest durable one; a slot holds generations of
 *     its own parity, so commits alternate slots and the other slot keeps the previous state.
 *   - Nobody sees a frame's bytes before they pass layout_page_open and the generation check:
 *     the read's completion callback verifies, and only then makes the frame RESIDENT and wakes
 *     the waiters. A failed read or verification releases the frame (FREE) and gives every
 *     waiter the error; the next pin reads again. The generation check: a page in the spilled
 *     set must carry exactly current + 1, any other page at most current.
 *   - One read per missing page: a pin that finds the page LOADING joins its waiter list.
 *   - pin/unpin/alloc never allocate memory, except a spill growing the spilled set: frames,
 *     the hash table and the op each frame embeds exist from pg_open; a waiter lives on its
 *     fiber's stack.
 *   - A page of the state being built is DIRTY in a frame, or in the spilled set (then its
 *     frame, if any, is RESIDENT or LOADING), never both; pg_free and pg_page_writable look at
 *     both.
 *
 * Frame states and the functions making each transition:
 *   FREE --pg_pin (miss)--> LOADING --pg_frame_read_done ok--> RESIDENT
 *   LOADING --pg_frame_read_done error / bad page--> FREE
 *   RESIDENT (no pin) --pg_frame_take (CLOCK, pg_evict.c)--> FREE
 *   FREE or RESIDENT (a reusable page's stale copy) --pg_alloc--> DIRTY
 *   DIRTY --pg_commit ok--> RESIDENT
 *   DIRTY (no pin) --pg_spill ok (pg_commit.c)--> RESIDENT, page in the spilled set
 *   RESIDENT (spilled page) --pg_page_writable--> DIRTY, out of the spilled set
 *   DIRTY --pg_free / pg_commit or pg_spill failure--> FREE (no pin) or ORPHAN --last
 *     pg_unpin--> FREE; the same for a RESIDENT spilled page
 *
 * Needing a frame: pg_pin (miss) and pg_alloc take a FREE frame or evict one (pg_frame_take);
 * when none can be had they call pg_make_room (pg_commit.c), which spills a batch of dirty
 * pages or waits for the batch another fiber is spilling, and then look again (the page may
 * have been loaded meanwhile).
 *
 * Waiting for a read: the pin that misses takes a frame, queues the frame's own fs_op and adds
 * itself (a struct pg_waiter on its stack) to the frame's waiter list, as does every later pin
 * of the same page. In a fiber the waiter parks until the callback marks it done (coro_wake);
 * outside any fiber it polls the ctx (fs_poll with wait) until then. The callback runs from
 * fs_poll, so it is never concurrent with the waiters.
 */
#include "pg_int.h"

#include "coro.h"
#include "err.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const size_t PG_HDR_OFF_TYPE = 6, PG_HDR_OFF_LEVEL = 7, PG_HDR_OFF_COUNT = 8,
                    PG_HDR_OFF_FLAGS = 10, PG_HDR_OFF_AUX = 12;

/* ------------------------------------------------------------------------------------------- */
/* Superblocks */

/* Format a new file: both slots (generations 0 and 1, empty state) written under <path>.new,
   synced, then renamed to path (fs_rename syncs the directory). */
static int pg_format(struct fs_ctx *ctx, const char *path, const struct pg_opts *o)
{
  size_t n = strlen(path);
  char *tmp = mem_malloc(n + 5);
  uint8_t *buf = mem_buf_get(2 * PG_PAGE);
  struct fs_file *f = NULL;
  int rc = JDB_ENOMEM;
  if (!tmp || !buf)
    goto out;
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".new", 5);
  rc = fs_unlink(ctx, tmp);
  if (rc && rc != JDB_NOTFOUND)
    goto out;
  rc = fs_file_open(ctx, tmp, FS_O_CREATE | FS_O_EXCL | (o->buffered ? 0 : FS_O_DIRECT), &f);
  if (rc)
    goto out;
  struct layout_super sb = {
    .format_version = LAYOUT_FORMAT_VERSION,
    .page_size = PG_PAGE,
    .page_count = 2,
    .shard_id = o->shard_id,
    .shard_count = o->shard_count,
    .created_sec = (uint64_t)time(NULL),
  };
  for (uint64_t slot = 0; slot < 2; slot++) {
    sb.generation = slot;
    layout_super_encode(buf + slot * PG_PAGE, PG_PAGE, slot, &sb);
  }
  rc = fs_write(ctx, f, buf, 2 * PG_PAGE, 0);
  if (!rc)
    rc = fs_sync(ctx, f);
  int rc2 = fs_file_close(ctx, f);
  if (!rc)
    rc = rc2;
  if (!rc)
    rc = fs_rename(ctx, tmp, path);
  if (rc)
    LOG_ERROR("%s: creating the pages file: %s", path, jdb_strerror(rc));
out:
  if (buf)
    mem_buf_put(buf, 2 * PG_PAGE);
  mem_free(tmp);
  return rc;
}

/* Decode both slots from buf (got bytes read from offset 0) and take the newest usable one. */
static int pg_super_pick(struct pg *p, const uint8_t *buf, uint32_t got)
{
  struct layout_super s[2];
  int rc[2];
  uint64_t gen[2] = {0, 0};
  for (unsigned i = 0; i < 2; i++) {
    memset(&s[i], 0, sizeof s[i]);
    if (got < (i + 1) * PG_PAGE) {
      rc[i] = JDB_CORRUPT("superblock slot past the end of the file", i);
      continue;
    }
    const uint8_t *page = buf + (size_t)i * PG_PAGE;
    rc[i] = layout_super_decode(page, PG_PAGE, i, &s[i]);
    if (rc[i] == JDB_OK) {
      gen[i] = s[i].generation;
      if ((gen[i] & 1) != i)
        rc[i] = JDB_CORRUPT("superblock generation parity", i);
    } else if (rc[i] == JDB_EVERSION) {
      struct layout_page_hdr h;
      if (layout_page_open(page, PG_PAGE, i, &h) == JDB_OK)
        gen[i] = h.generation;
    }
  }
  int ok0 = rc[0] == JDB_OK || rc[0] == JDB_EVERSION;
  int ok1 = rc[1] == JDB_OK || rc[1] == JDB_EVERSION;
  if (!ok0 && !ok1) {
    LOG_ERROR("%s: both superblock slots are invalid", p->path);
    return JDB_ECORRUPT;
  }
  unsigned best = !ok0 ? 1 : !ok1 ? 0 : gen[1] > gen[0] ? 1 : 0;
  if (rc[best] == JDB_EVERSION)
    return JDB_EVERSION;
  if (rc[1 - best] != JDB_OK)
    LOG_WARN("%s: superblock slot %u is invalid; using slot %u (generation %llu)", p->path,
             1 - best, best, (unsigned long long)gen[best]);
  p->sb = s[best];
  p->sb_other = s[1 - best];
  p->sb_other_ok = rc[1 - best] == JDB_OK;
  return JDB_OK;
}

static int pg_super_read(struct pg *p)
{
  uint8_t *buf = mem_buf_get(2 * PG_PAGE);
  if (!buf)
    return JDB_ENOMEM;
  memset(buf, 0, 2 * PG_PAGE);
  uint32_t got = 0;
  int rc = fs_read(p->ctx, p->file, buf, 2 * PG_PAGE, 0, &got);
  if (rc)
    LOG_ERROR("%s: reading the superblocks: %s", p->path, jdb_strerror(rc));
  else
    rc = pg_super_pick(p, buf, got);
  mem_buf_put(buf, 2 * PG_PAGE);
  return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Open / close */

static int pg_opts_resolve(const struct pg_opts *in, struct pg_opts *o)
{
  *o = (struct pg_opts){.frames = PG_FRAMES_DEF, .shard_count = 1};
  if (!in)
    return JDB_OK;
  if (in->frames)
    o->frames = in->frames;
  o->buffered = in->buffered != 0;
  o->read_only = in->read_only != 0;
  o->shard_id = in->shard_id;
  o->verify = in->verify;
  o->verify_arg = in->verify_arg;
  if (in->shard_count)
    o->shard_count = in->shard_count;
  if (o->frames < PG_FRAMES_MIN || o->frames > PG_FRAMES_MAX || o->shard_id >= o->shard_count)
    return JDB_EINVAL;
  return JDB_OK;
}

int pg_open(struct fs_ctx *ctx, const char *path, const struct pg_opts *opts,
            int create_if_missing, struct pg **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!ctx || !path || !*path)
    return JDB_EINVAL;
  struct pg_opts o;
  int rc = pg_opts_resolve(opts, &o);
  if (rc)
    return rc;
  struct pg *p = mem_calloc(1, sizeof *p);
  size_t n = strlen(path);
  if (!p)
    return JDB_ENOMEM;
  p->ctx = ctx;
  p->opts = o;
  p->nframes = o.frames;
  p->dirty.lnext = p->dirty.lprev = &p->dirty;
  p->path = mem_malloc(n + 1);
  rc = JDB_ENOMEM;
  if (!p->path)
    goto fail;
  memcpy(p->path, path, n + 1);

  unsigned flags = (o.buffered ? 0 : FS_O_DIRECT) | (o.read_only ? FS_O_RDONLY : 0);
  rc = fs_file_open(ctx, path, flags, &p->file);
  if (rc == JDB_NOTFOUND && create_if_missing && !o.read_only) {
    rc = pg_format(ctx, path, &o);
    if (!rc)
      rc = fs_file_open(ctx, path, flags, &p->file);
  }
  if (rc)
    goto fail;
  rc = pg_super_read(p);
  if (rc)
    goto fail;
  p->page_count = p->sb.page_count;
  rc = fs_file_size(ctx, p->file, &p->file_bytes);
  if (rc)
    goto fail;
  rc = JDB_ENOMEM;
  p->sb_buf = mem_buf_get(PG_PAGE);
  if (!p->sb_buf)
    goto fail;
  rc = pg_frames_init(p);
  if (rc)
    goto fail;
  p->spill_cap = p->nframes / 8 > PG_SPILL_MIN ? p->nframes / 8 : PG_SPILL_MIN;
  if (p->spill_cap > PG_SPILL_MAX)
    p->spill_cap = PG_SPILL_MAX;
  if (p->spill_cap > p->nframes)
    p->spill_cap = p->nframes;
  rc = JDB_ENOMEM;
  p->spill_batch = mem_calloc(p->spill_cap, sizeof *p->spill_batch);
  if (!p->spill_batch)
    goto fail;
  rc = pg_freelist_load(p);
  if (rc)
    goto fail;
  LOG_DEBUG("%s: opened at generation %llu, %llu pages, %zu free, %u frames%s", path,
            (unsigned long long)p->sb.generation, (unsigned long long)p->sb.page_count,
            p->ready.len, p->nframes, p->fixed ? " (fixed buffers)" : "");
  *out = p;
  return JDB_OK;
fail:
  pg_close(p);
  return rc;
}

void pg_close(struct pg *p)
{
  if (!p)
    return;
  JDB_ASSERT(!p->committing && !p->spilling && !p->spill_waiters);
  /* Reads in flight (or writes a failed commit could not wait for) still own frame memory. */
  int leak = 0;
  if (p->frames) {
    for (;;) {
      int busy = 0;
      for (uint32_t i = 0; i < p->nused; i++) {
        struct pg_frame *f = &p->frames[i];
        JDB_ASSERT(f->waiters == NULL);   /* nobody may be parked in pg_pin */
        busy |= pg_op_busy(&f->op);
      }
      if (!busy)
        break;
      if (fs_poll(p->ctx, 1) < 0) {
        LOG_ERROR("%s: I/O still in flight at close; leaking the frame memory", p->path);
        leak = 1;
        break;
      }
    }
  }
  /* The helper thread must be done with the request embedded in p before p goes. */
  mem_prefault_cancel(&p->pf);
  if (!leak)
    pg_frames_deinit(p);
  if (p->file)
    fs_file_close(p->ctx, p->file);
  if (p->sb_buf)
    mem_buf_put(p->sb_buf, PG_PAGE);
  pg_freelist_deinit(p);
  pg_set_free(&p->spilled);
  mem_free(p->spill_batch);
  mem_free(p->path);
  mem_free(p);
}

const struct layout_super *pg_super(const struct pg *p)
{
  return &p->sb;
}

/* ------------------------------------------------------------------------------------------- */
/* Reads */

/* Completion of a frame's read (runs from fs_poll): verify, then publish or release. */
static void pg_frame_read_done(struct fs_op *op)
{
  struct pg_frame *f = op->udata;
  struct pg *p = f->pg;
  JDB_ASSERT(f->state == PG_FRAME_LOADING);
  int rc = fs_op_error(op);
  if (rc) {
    LOG_ERROR("%s: read of page %llu failed: %s (errno %d)", p->path,
              (unsigned long long)f->pgno, jdb_strerror(rc), -op->result);
  } else if ((uint32_t)op->result != PG_PAGE) {
    rc = JDB_CORRUPT("page past the end of the pages file", f->pgno);
  } else {
    struct layout_page_hdr h;
    rc = layout_page_open(f->data, PG_PAGE, f->pgno, &h);
    if (rc == JDB_OK) {
      /* A page the state being built spilled carries the generation its commit will have. */
      int spilled = pg_set_has(&p->spilled, f->pgno);
      if (spilled && h.generation != p->sb.generation + 1)
        rc = JDB_CORRUPT("spilled page of another generation", f->pgno);
      else if (!spilled && h.generation > p->sb.generation)
        rc = JDB_CORRUPT("page generation newer than the superblock", f->pgno);
    }
    if (rc == JDB_OK && p->opts.verify)
      rc = p->opts.verify(p->opts.verify_arg, f->data, PG_PAGE, &h);
  }
  if (rc == JDB_ECORRUPT) {
    p->stats.corrupt++;
    LOG_ERROR("%s: page %llu failed verification", p->path, (unsigned long long)f->pgno);
  }
  struct pg_waiter *w = f->waiters;
  f->waiters = NULL;
  if (rc)
    pg_frame_release(p, f);
  else {
    f->state = PG_FRAME_RESIDENT;
    pg_hash_set_ready(p, f);
  }
  while (w) {
    struct pg_waiter *next = w->next;   /* w may be gone once done is set and it runs */
    struct coro *co = w->co;
    w->rc = rc;
    w->done = 1;
    if (co)
      coro_wake(co);
    w = next;
  }
}

/* Wait for a LOADING frame the caller holds a pin on. On error the pin is gone (the frame was
   released, or this waiter left it). */
static int pg_frame_wait(struct pg *p, struct pg_frame *f)
{
  struct pg_waiter w = {.co = coro_self()};
  w.next = f->waiters;
  /* w stays linked only while this function waits: the callback unlinks every waiter before it
     sets done, and the error path below unlinks it itself. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
  f->waiters = &w;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
  if (w.co) {
    while (!w.done)
      coro_park();
    return w.rc;
  }
  while (!w.done) {
    int rc = fs_poll(p->ctx, 1);
    if (rc < 0 && !w.done) {
      /* The backend itself failed: leave the frame to its read (its callback still runs). */
      struct pg_waiter **pp = &f->waiters;
      while (*pp != &w)
        pp = &(*pp)->next;
      *pp = w.next;
      JDB_ASSERT(f->pins > 0);
      f->pins--;
      return rc;
    }
  }
  return w.rc;
}

/* Submit a frame op, falling back from fixed buffers if the ctx's registered set changed. */
int pg_op_submit(struct pg *p, struct fs_op *op)
{
  int rc = fs_submit(p->ctx, op);
  if (rc == JDB_EINVAL && op->fixed_buf) {
    static int logged;
    log_once(&logged, JDB_LOG_WARN,
             "%s: frame buffers no longer registered with the ctx; using plain reads/writes",
             p->path);
    p->fixed = 0;
    op->fixed_buf = 0;
    rc = fs_submit(p->ctx, op);
  }
  return rc;
}

/* Frame f (taken, FREE) starts loading pgno with `pins` pins. On failure the frame is released. */
static int pg_frame_read_start(struct pg *p, struct pg_frame *f, uint64_t pgno, uint32_t pins)
{
  f->pgno = pgno;
  f->state = PG_FRAME_LOADING;
  f->pins = pins;
  p->refs[f->idx] = 1;
  pg_hash_insert(p, f);
  fs_op_prep_read(&f->op, p->file, f->data, PG_PAGE, pgno * PG_PAGE);
  f->op.fixed_buf = pg_frame_fixed(p, f);
  f->op.done = pg_frame_read_done;
  f->op.udata = f;
  int rc = pg_op_submit(p, &f->op);
  if (rc) {
    pg_frame_release(p, f);
    return rc;
  }
  p->stats.reads++;
  return JDB_OK;
}

int pg_pin(struct pg *p, uint64_t pgno, uint8_t want_type, struct pg_frame **fr,
           const void **data)
{
  JDB_ASSERT(fr != NULL && data != NULL);
  *fr = NULL;
  *data = NULL;
  if (pgno < 2 || pgno >= p->page_count)
    return JDB_EINVAL;
  struct pg_frame *f;
  int rc;
  for (;;) {
    f = pg_hash_find(p, pgno);
    if (f)
      break;
    f = pg_frame_take(p);
    if (f)
      break;
    /* May park: the page may be loading or loaded when it returns. */
    rc = pg_make_room(p);
    if (rc) {
      p->stats.misses++;
      return rc;
    }
  }
  if (f->state != PG_FRAME_FREE && f->state != PG_FRAME_LOADING) {
    f->pins++;
    p->refs[f->idx] = 1;
    p->stats.hits++;
  } else if (f->state == PG_FRAME_LOADING) {
    f->pins++;
    p->stats.misses++;
    p->stats.read_waits_joined++;
    rc = pg_frame_wait(p, f);
    if (rc)
      return rc;
  } else {
    p->stats.misses++;
    rc = pg_frame_read_start(p, f, pgno, 1);
    if (rc)
      return rc;
    rc = pg_frame_wait(p, f);
    if (rc)
      return rc;
  }
  /* A dirty page's header is the caller's own until commit seals it (a spilled page's is
     final). */
  if (want_type && f->state != PG_FRAME_DIRTY && f->data[PG_HDR_OFF_TYPE] != want_type) {
    p->stats.corrupt++;
    LOG_ERROR("%s: page %llu has type %u where type %u was expected", p->path,
              (unsigned long long)pgno, f->data[PG_HDR_OFF_TYPE], want_type);
    pg_unpin(p, f);
    return JDB_CORRUPT("page type", pgno);
  }
  *fr = f;
  *data = f->data;
  return JDB_OK;
}

size_t pg_prefetch(struct pg *p, const uint64_t *pgnos, size_t n)
{
  /* At most a quarter of the frames per call: the caller goes on to pin (and a writer to
     allocate) pages of its own, which must still find frames that are not loading. */
  size_t cap = p->nframes / 4 ? p->nframes / 4 : 1;
  size_t issued = 0;
  for (size_t i = 0; i < n && issued < cap; i++) {
    uint64_t pgno = pgnos[i];
    if (pgno < 2 || pgno >= p->page_count || pg_hash_find(p, pgno))
      continue;
    struct pg_frame *f = pg_frame_take(p);   /* a free or clean frame: no I/O, no parking */
    if (!f)
      break;
    if (pg_frame_read_start(p, f, pgno, 0))
      break;
    p->stats.prefetches++;
    issued++;
  }
  if (issued)
    fs_flush(p->ctx);
  return issued;
}

void pg_unpin(struct pg *p, struct pg_frame *f)
{
  JDB_ASSERT(f != NULL);
  JDB_ASSERT(f->pins > 0);
  JDB_ASSERT(f->state == PG_FRAME_RESIDENT || f->state == PG_FRAME_DIRTY ||
             f->state == PG_FRAME_ORPHAN);
  if (--f->pins == 0 && f->state == PG_FRAME_ORPHAN && !pg_op_busy(&f->op))
    pg_frame_release(p, f);
}

uint64_t pg_frame_pgno(const struct pg_frame *fr)
{
  return fr->pgno;
}

/* ------------------------------------------------------------------------------------------- */
/* The state being built */

int pg_alloc(struct pg *p, uint64_t *pgno, struct pg_frame **fr, void **data)
{
  JDB_ASSERT(pgno != NULL && fr != NULL && data != NULL);
  *pgno = 0;
  *fr = NULL;
  *data = NULL;
  if (p->poisoned)
    return JDB_EIO;
  if (p->committing)
    return JDB_EBUSY;
  int from_ready;
  uint64_t n;
  struct pg_frame *f;
  for (;;) {
    from_ready = p->ready.len > 0;
    n = from_ready ? p->ready.v[p->ready.len - 1] : p->page_count;
    if (!from_ready && n >= PG_PAGE_COUNT_MAX)
      return JDB_ENOSPC;
    f = pg_hash_find(p, n);
    if (f && f->state == PG_FRAME_LOADING) {
      /* A read of a spilled page this state freed since (a reader outside the contract): it
         fails verification, the page having left the spilled set, and releases the frame. */
      f->pins++;
      if (pg_frame_wait(p, f) == JDB_OK)
        pg_unpin(p, f);
      if (p->poisoned)
        return JDB_EIO;
      if (p->committing)
        return JDB_EBUSY;
      continue;
    }
    if (f) {
      /* A stale copy of a reusable page: no reader may hold it (pg_reclaim's contract). */
      JDB_ASSERT(from_ready);
      JDB_ASSERT(f->state == PG_FRAME_RESIDENT);
      JDB_ASSERT(f->pins == 0);
      JDB_ASSERT(!pg_set_has(&p->spilled, n));
      break;
    }
    f = pg_frame_take(p);
    if (f) {
      f->pgno = n;
      pg_hash_insert(p, f);
      break;
    }
    /* Spill (or wait for a spill); may park, so look at the state again afterwards. */
    int rc = pg_make_room(p);
    if (rc)
      return rc;
    if (p->poisoned)
      return JDB_EIO;
    if (p->committing)
      return JDB_EBUSY;
  }
  if (from_ready) {
    p->ready.len--;
    p->fl_dirty = 1;
  } else {
    p->page_count++;
  }
  memset(f->data, 0, PG_PAGE);
  f->state = PG_FRAME_DIRTY;
  f->pins = 1;
  p->refs[f->idx] = 1;
  pg_dirty_add(p, f);
  *pgno = n;
  *fr = f;
  *data = f->data;
  return JDB_OK;
}

int pg_page_writable(struct pg *p, struct pg_frame *fr, void **data)
{
  JDB_ASSERT(fr != NULL && data != NULL);
  JDB_ASSERT(fr->pins > 0);
  *data = NULL;
  /* Another fiber's spill is writing this page: its bytes must not change before it is done. */
  while (fr->in_spill)
    if (pg_spill_wait(p))
      return JDB_EINVAL;
  if (p->committing)
    return JDB_EINVAL;
  if (fr->state == PG_FRAME_RESIDENT && pg_set_has(&p->spilled, fr->pgno)) {
    /* Spilled: dirty again, rewritten by the commit (or the next spill). */
    pg_set_remove(&p->spilled, fr->pgno);
    fr->state = PG_FRAME_DIRTY;
    pg_dirty_add(p, fr);
  }
  if (fr->state != PG_FRAME_DIRTY)
    return JDB_EINVAL;
  *data = fr->data;
  return JDB_OK;
}

void pg_page_set_hdr(void *data, const struct layout_page_hdr *h)
{
  uint8_t *d = data;
  d[PG_HDR_OFF_TYPE] = h->type;
  d[PG_HDR_OFF_LEVEL] = h->level;
  le16_put(d + PG_HDR_OFF_COUNT, h->count);
  le16_put(d + PG_HDR_OFF_FLAGS, h->flags);
  le32_put(d + PG_HDR_OFF_AUX, h->aux);
}

void pg_free(struct pg *p, uint64_t pgno)
{
  JDB_ASSERT(pgno >= 2 && pgno < p->page_count);
  JDB_ASSERT(!p->committing);
  if (p->poisoned)
    return;
  struct pg_frame *f = pg_hash_find(p, pgno);
  int built = f && f->state == PG_FRAME_DIRTY;
  if (!built && pg_set_has(&p->spilled, pgno)) {
    built = 1;
    pg_set_remove(&p->spilled, pgno);
    /* A LOADING frame is left to its read, which now fails verification (the page left the
       spilled set) and releases it. */
    if (f && f->state != PG_FRAME_RESIDENT)
      f = NULL;
  }
  if (built) {
    /* Allocated by the state being built: no committed state or reader knows it. A frame
       whose spill write is in flight is orphaned; the spill releases it. */
    if (f) {
      if (f->state == PG_FRAME_DIRTY)
        pg_dirty_remove(p, f);
      if (f->pins || f->in_spill) {
        pg_hash_remove(p, f);
        f->state = PG_FRAME_ORPHAN;
      } else {
        pg_frame_release(p, f);
      }
    }
    if (pg_ready_push(p, pgno)) {
      p->leaked++;
      LOG_WARN("%s: out of memory: page %llu stays unused", p->path, (unsigned long long)pgno);
    }
    p->fl_dirty = 1;
    return;
  }
  if (pg_pend_push(p, pgno, p->sb.generation + 1)) {
    p->leaked++;
    LOG_WARN("%s: out of memory: page %llu stays unused", p->path, (unsigned long long)pgno);
  }
  p->fl_dirty = 1;
  /* A committed page's cached copy goes at once, unless someone holds it: the state being built
     no longer uses it, and a reader of an older state that pins it again reads it back, the
     disk copy staying intact until the page is reusable (pg_reclaim). Kept, dead pages held
     their frames until their numbers were reused: a checkpoint rewrites most of a randomly
     filled tree, so the cache held the previous tree as well (fillrandom took twice the tree
     in frames, and the kernel zeroing them was 35 % of its time, perf). */
  if (f && f->state == PG_FRAME_RESIDENT && f->pins == 0 && !pg_op_busy(&f->op)) {
    pg_frame_release(p, f);
    p->stats.dropped_on_free++;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Stats and checks */

void pg_stats_get(const struct pg *p, struct pg_stats *out)
{
  *out = p->stats;
  out->frames = p->nframes;
  out->pinned = 0;
  out->frames_used = p->nused;
  for (uint32_t i = 0; i < p->nused; i++)
    out->pinned += p->frames[i].pins > 0;
  out->dirty = p->ndirty;
  out->free_pages = p->ready.len;
  out->pending_free_pages = p->pend_len - p->pend_head;
  out->page_count = p->page_count;
  out->fixed_buffers = (uint32_t)p->fixed;
  out->fixed_frames = p->fixed ? p->nfixed : 0;
  out->freelist_pages = (uint32_t)p->chain.len;
}

static int pg_cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

#define PG_CHECK(cond, ...)                                     \
  do {                                                          \
    if (!(cond)) {                                              \
      LOG_ERROR("pg_check: " __VA_ARGS__);                      \
      rc = JDB_ECORRUPT;                                        \
      goto out;                                                 \
    }                                                           \
  } while (0)

int pg_check(const struct pg *p)
{
  int rc = JDB_OK;
  uint64_t *all = NULL;
  uint64_t nfree = 0, nhashed = 0, ndirty = 0;
  for (const struct pg_frame *f = p->free_frames; f; f = f->lnext) {
    PG_CHECK(f->state == PG_FRAME_FREE, "%s: frame %u on the free list is not FREE", p->path,
             f->idx);
    PG_CHECK(++nfree <= p->nframes, "%s: free-frame list loops", p->path);
  }
  for (const struct pg_frame *f = p->dirty.lnext; f != &p->dirty; f = f->lnext) {
    PG_CHECK(f->state == PG_FRAME_DIRTY, "%s: frame %u on the dirty list is not DIRTY",
             p->path, f->idx);
    PG_CHECK(++ndirty <= p->nframes, "%s: dirty list loops", p->path);
  }
  PG_CHECK(ndirty == p->ndirty, "%s: dirty list holds %llu frames, count says %u", p->path,
           (unsigned long long)ndirty, p->ndirty);
  uint64_t nstate[5] = {0};
  PG_CHECK(p->nused <= p->nframes && 2ull * p->nused <= p->slot_mask + 1,
           "%s: %u frames used of %u, %llu slots", p->path, p->nused, p->nframes,
           (unsigned long long)(p->slot_mask + 1));
  for (uint32_t i = 0; i < p->nused; i++) {
    const struct pg_frame *f = &p->frames[i];
    PG_CHECK(f->state <= PG_FRAME_ORPHAN, "%s: frame %u has state %u", p->path, i, f->state);
    nstate[f->state]++;
    PG_CHECK(!f->in_spill || (p->spilling && (f->state == PG_FRAME_DIRTY ||
                                              f->state == PG_FRAME_ORPHAN)),
             "%s: frame %u marked in a spill (state %u, spilling %d)", p->path, i, f->state,
             p->spilling);
    if (f->state == PG_FRAME_DIRTY)
      PG_CHECK(!pg_set_has(&p->spilled, f->pgno), "%s: dirty page %llu is in the spilled set",
               p->path, (unsigned long long)f->pgno);
    if (f->state == PG_FRAME_FREE) {
      PG_CHECK(f->pins == 0 && !f->waiters, "%s: FREE frame %u pinned or awaited", p->path, i);
      continue;
    }
    if (f->state == PG_FRAME_ORPHAN) {
      PG_CHECK(pg_hash_find(p, f->pgno) != f, "%s: ORPHAN frame %u is hashed", p->path, i);
      continue;
    }
    PG_CHECK(f->pgno >= 2 && f->pgno < p->page_count, "%s: frame %u holds page %llu", p->path,
             i, (unsigned long long)f->pgno);
    PG_CHECK(pg_hash_find(p, f->pgno) == f, "%s: frame %u (page %llu) not found by its pgno",
             p->path, i, (unsigned long long)f->pgno);
    PG_CHECK(f->state == PG_FRAME_LOADING || !f->waiters, "%s: frame %u has waiters", p->path,
             i);
  }
  PG_CHECK(nstate[PG_FRAME_FREE] == nfree, "%s: %llu FREE frames, %llu on the free list",
           p->path, (unsigned long long)nstate[PG_FRAME_FREE], (unsigned long long)nfree);
  PG_CHECK(nstate[PG_FRAME_DIRTY] == ndirty, "%s: DIRTY frames off the dirty list", p->path);
  for (uint64_t b = 0; b <= p->slot_mask; b++) {
    const struct pg_slot *sl = &p->slots[b];
    if (!sl->pgno)
      continue;
    nhashed++;
    PG_CHECK(sl->idx < p->nused, "%s: slot %llu names frame %u", p->path,
             (unsigned long long)b, sl->idx);
    const struct pg_frame *f = &p->frames[sl->idx];
    PG_CHECK(f->pgno == sl->pgno, "%s: slot %llu names frame %u of another page", p->path,
             (unsigned long long)b, sl->idx);
    PG_CHECK(f->state == PG_FRAME_LOADING || f->state == PG_FRAME_RESIDENT ||
                 f->state == PG_FRAME_DIRTY,
             "%s: hashed frame %u in state %u", p->path, f->idx, f->state);
    PG_CHECK(sl->ready == (f->state != PG_FRAME_LOADING), "%s: slot %llu readiness", p->path,
             (unsigned long long)b);
  }
  PG_CHECK(nhashed == nstate[PG_FRAME_LOADING] + nstate[PG_FRAME_RESIDENT] + ndirty,
           "%s: %llu frames hashed", p->path, (unsigned long long)nhashed);

  /* Spilled set: its count, its pages in range and held (if at all) by RESIDENT or LOADING
     frames; empty once the pg is poisoned. */
  uint64_t nspilled = 0;
  for (uint64_t b = 0; p->spilled.v && b <= p->spilled.mask; b++) {
    uint64_t pg = p->spilled.v[b];
    if (!pg)
      continue;
    nspilled++;
    PG_CHECK(pg >= 2 && pg < p->page_count, "%s: spilled page %llu out of range", p->path,
             (unsigned long long)pg);
    PG_CHECK(pg_set_has(&p->spilled, pg), "%s: spilled page %llu not found by its pgno",
             p->path, (unsigned long long)pg);
    const struct pg_frame *f = pg_hash_find(p, pg);
    PG_CHECK(!f || f->state == PG_FRAME_RESIDENT || f->state == PG_FRAME_LOADING,
             "%s: spilled page %llu in a frame of state %u", p->path, (unsigned long long)pg,
             f ? f->state : 0);
  }
  PG_CHECK(nspilled == p->spilled.n, "%s: spilled set holds %llu pages, count says %zu",
           p->path, (unsigned long long)nspilled, p->spilled.n);
  PG_CHECK(!p->poisoned || (nspilled == 0 && p->ndirty == 0),
           "%s: poisoned with pages of the state being built", p->path);
  PG_CHECK(p->spill_cap >= 1 && p->spill_cap <= p->nframes, "%s: spill batch of %u", p->path,
           p->spill_cap);

  /* Free-page sets and spilled pages: in range, pairwise distinct, none of them dirty, pending
     in order. */
  size_t npend = p->pend_len - p->pend_head;
  size_t nall = p->ready.len + npend + p->chain.len + p->spilled.n;
  all = mem_malloc((nall ? nall : 1) * sizeof *all);
  PG_CHECK(all != NULL, "%s: out of memory", p->path);
  size_t k = 0;
  for (uint64_t b = 0; p->spilled.v && b <= p->spilled.mask; b++)
    if (p->spilled.v[b])
      all[k++] = p->spilled.v[b];
  for (size_t i = 0; i < p->ready.len; i++)
    all[k++] = p->ready.v[i];
  uint64_t prev_gen = 0;
  for (size_t i = p->pend_head; i < p->pend_len; i++) {
    PG_CHECK(p->pend[i].gen >= prev_gen && p->pend[i].gen <= p->sb.generation + 1,
             "%s: pending entry %zu has generation %llu", p->path, i,
             (unsigned long long)p->pend[i].gen);
    prev_gen = p->pend[i].gen;
    all[k++] = p->pend[i].pgno;
  }
  for (size_t i = 0; i < p->chain.len; i++)
    all[k++] = p->chain.v[i];
  for (size_t i = 0; i < nall; i++) {
    PG_CHECK(all[i] >= 2 && all[i] < p->page_count, "%s: free page %llu out of range", p->path,
             (unsigned long long)all[i]);
    const struct pg_frame *f = pg_hash_find(p, all[i]);
    PG_CHECK(!f || f->state != PG_FRAME_DIRTY, "%s: free or spilled page %llu is dirty",
             p->path, (unsigned long long)all[i]);
  }
  qsort(all, nall, sizeof *all, pg_cmp_u64);
  for (size_t i = 1; i < nall; i++)
    PG_CHECK(all[i] != all[i - 1], "%s: page %llu is free twice (or spilled and free)",
             p->path, (unsigned long long)all[i]);
  PG_CHECK(p->sb.page_count <= p->page_count, "%s: page count went down", p->path);
  PG_CHECK(p->ready.cap >= p->ready.len + npend, "%s: no room to reclaim the pending pages",
           p->path);
out:
  mem_free(all);
  return rc;
}
