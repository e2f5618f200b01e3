/*
 * pg_commit.c - the free-page sets of the buffer manager, the free-list pages that persist them,
 * pg_reclaim, spills, and pg_commit (store/page, L2).
 *
 * Free pages live in three places in memory:
 *   ready    reusable now: no durable superblock and no reader references them. pg_alloc pops
 *            from the end (after open the list is sorted so the lowest page numbers go first).
 *   pending  a FIFO of (pgno, gen): pages the state of generation gen stopped referencing.
 *            pg_reclaim(oldest) moves entries with gen <= oldest (and <= the durable generation)
 *            to ready. A page freed by the state being built has gen = current + 1. ready's
 *            capacity always covers every pending entry, so pg_reclaim never allocates.
 *   chain    the free-list pages the current superblock points to (freelist_root). They are in
 *            use until the next commit that rewrites the list, which frees them (gen = new).
 * A page allocated and freed by the same state being built never reaches pending: pg_free puts
 * it straight back on ready.
 *
 * Free-list pages (type FREELIST; docs/FORMAT.md "Free-list pages"), a singly linked chain from
 * the superblock's freelist_root:
 *   off  size  field
 *     0    32  page header: type 4 FREELIST, level 0, count = entries in this page (0..507),
 *              flags 0, aux 0, pgno = own page number, generation = the commit that wrote it
 *    32     8  next: page number of the next free-list page, 0 on the last one
 *    40  8*n   entries: free page numbers, each in [2, page count)
 *     .     .  zero to the end of the page
 * Every page but the last is full (507 entries); the last holds the rest, possibly none (when
 * the pages the chain itself needed were the last free ones).
 * The chain lists ready and pending pages alike (after a reopen there is no reader, so every
 * one is reusable) and the previous chain's pages (freed by this commit). The new chain's own
 * pages are taken from ready (never from pending: those may still be referenced by the durable
 * superblock or by a reader), else from the end of the file, and are not listed in it. A chain
 * is rewritten only when the free set changed since the last commit (fl_dirty).
 *
 * Load (pg_open) checks every page (checksum, own pgno, type, generation <= superblock's,
 * reserved fields and padding zero, next and entries in range, full unless last, entries plus
 * chain pages fewer than the page count, which bounds a looping chain) and the whole (no page
 * listed twice, no chain page listed): JDB_ECORRUPT otherwise.
 *
 * Spill (pg_spill): when a pin or an allocation finds no free or evictable frame, up to
 * spill_cap unpinned dirty pages whose header is complete (pg_built_hdr_ok; a page whose header
 * is not stays dirty and is refused by the commit) are sealed exactly as the commit will seal
 * them (own pgno, generation current + 1, checksum), submitted in pgno order (sequential I/O),
 * one fs_flush, and waited for; their frames then become RESIDENT and their page numbers join
 * the spilled set, so CLOCK may evict them and a later pin re-reads them (pg.c accepts
 * generation current + 1 for exactly the pages of that set). No fdatasync: the commit's one
 * covers them. Safe under copy-on-write: a dirty page is a new page, either beyond the durable
 * page count or a reusable free page no superblock in use and no reader references, so a crash
 * before the superblock leaves unreferenced garbage (the pages a commit writes before its
 * superblock are no different). The file is grown ahead of the page count first (pg_grow), as
 * for a commit. While the batch is in flight (p->spilling; its frames marked in_spill, still
 * DIRTY): another fiber needing a frame, a commit and pg_page_writable on a batch frame wait
 * for it (spill_waiters); pg_free of a batch page orphans the frame, which the spill releases.
 * A failed write poisons the pg as a failed commit does (pg_drop_built).
 *
 * Commit sequence (every step waits for the previous one):
 *   1. checks that need no I/O: roots, replay position, dirty page headers (JDB_EINVAL);
 *      reserve memory (JDB_ENOMEM); nothing has changed yet if these fail
 *   2. build the free-list pages (when the free set changed)
 *   3. seal every dirty page and free-list page with its pgno and the new generation, submit
 *      them all, one fs_flush, wait for all (spilled pages are on disk already)
 *   4. one fdatasync (skipped when no page was written and nothing was spilled)
 *   5. superblock of the new generation into slot (gen & 1), linked write -> fdatasync
 *   6. publish: the new superblock is current, dirty frames become RESIDENT, the spilled set
 *      empties (its pages are committed pages now)
 * States of the pg as a whole (function making each transition):
 *   OPEN --pg_commit: steps 1-2 fail--> OPEN (nothing changed)
 *   OPEN --pg_commit: steps 3-6--> COMMITTING (p->committing; pg_alloc / pg_commit: JDB_EBUSY)
 *   OPEN --pg_make_room: pg_spill--> SPILLING (p->spilling; frame takers and pg_commit wait)
 *   SPILLING --writes done--> OPEN;  SPILLING --I/O error (pg_spill_fail)--> POISONED
 *   COMMITTING --step 6--> OPEN;  COMMITTING --I/O error (pg_commit_fail)--> POISONED
 *   POISONED: pins served, pg_alloc / pg_commit JDB_EIO, pg_free ignored, until pg_close
 * A failure in 3-5 poisons the pg (p->poisoned; JDB_EIO for later commits and allocations);
 * dirty frames and spilled pages are dropped; if step 5 failed, the slot's previous contents
 * are written back, best effort, so a reopen in this process does not find a superblock whose
 * sync failed.
 */
#include "pg_int.h"

#include "coro.h"
#include "err.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(PG_FL_PER_PAGE == 507, "free-list page capacity");
_Static_assert(PG_FL_OFF_ENTRIES + 8 * PG_FL_PER_PAGE <= PG_PAGE, "free-list entries fit");
_Static_assert(PG_FL_PER_PAGE <= PG_PAGE, "count fits the page header's count check");

/* ------------------------------------------------------------------------------------------- */
/* Vectors */

static int pg_vec_reserve(struct pg_vec *a, size_t extra)
{
  if (a->len + extra <= a->cap)
    return JDB_OK;
  size_t cap = a->cap ? a->cap : 64;
  while (cap < a->len + extra)
    cap *= 2;
  uint64_t *v = mem_realloc(a->v, cap * sizeof *v);
  if (!v)
    return JDB_ENOMEM;
  a->v = v;
  a->cap = cap;
  return JDB_OK;
}

int pg_vec_push(struct pg_vec *a, uint64_t x)
{
  int rc = pg_vec_reserve(a, 1);
  if (rc)
    return rc;
  a->v[a->len++] = x;
  return JDB_OK;
}

void pg_vec_free(struct pg_vec *a)
{
  mem_free(a->v);
  *a = (struct pg_vec){0};
}

static int pg_pend_reserve(struct pg *p, size_t extra)
{
  if (p->pend_len + extra <= p->pend_cap)
    return JDB_OK;
  if (p->pend_head > 0) {
    memmove(p->pend, p->pend + p->pend_head, (p->pend_len - p->pend_head) * sizeof *p->pend);
    p->pend_len -= p->pend_head;
    p->pend_head = 0;
    if (p->pend_len + extra <= p->pend_cap)
      return JDB_OK;
  }
  size_t cap = p->pend_cap ? p->pend_cap : 64;
  while (cap < p->pend_len + extra)
    cap *= 2;
  struct pg_pending *v = mem_realloc(p->pend, cap * sizeof *v);
  if (!v)
    return JDB_ENOMEM;
  p->pend = v;
  p->pend_cap = cap;
  return JDB_OK;
}

/* Room in ready for every pending page plus extra: pg_reclaim then never allocates. */
static int pg_ready_reserve_for_pending(struct pg *p, size_t extra)
{
  return pg_vec_reserve(&p->ready, (p->pend_len - p->pend_head) + extra);
}

int pg_ready_push(struct pg *p, uint64_t pgno)
{
  int rc = pg_ready_reserve_for_pending(p, 1);
  if (rc)
    return rc;
  p->ready.v[p->ready.len++] = pgno;
  return JDB_OK;
}

int pg_pend_push(struct pg *p, uint64_t pgno, uint64_t gen)
{
  int rc = pg_pend_reserve(p, 1);
  if (!rc)
    rc = pg_ready_reserve_for_pending(p, 1);
  if (rc)
    return rc;
  JDB_ASSERT(p->pend_len == p->pend_head || p->pend[p->pend_len - 1].gen <= gen);
  p->pend[p->pend_len++] = (struct pg_pending){.pgno = pgno, .gen = gen};
  return JDB_OK;
}

void pg_reclaim(struct pg *p, uint64_t oldest_reader_generation)
{
  uint64_t upto = oldest_reader_generation;
  if (upto > p->sb.generation)
    upto = p->sb.generation;   /* a page freed by a commit not yet durable is never reusable */
  while (p->pend_head < p->pend_len && p->pend[p->pend_head].gen <= upto) {
    /* ready has room for every pending page (pg_pend_push reserved it). */
    JDB_ASSERT(p->ready.len < p->ready.cap);
    p->ready.v[p->ready.len++] = p->pend[p->pend_head++].pgno;
  }
  if (p->pend_head == p->pend_len)
    p->pend_head = p->pend_len = 0;
}

void pg_freelist_deinit(struct pg *p)
{
  pg_vec_free(&p->ready);
  pg_vec_free(&p->chain);
  mem_free(p->pend);
  p->pend = NULL;
  p->pend_head = p->pend_len = p->pend_cap = 0;
  if (p->fl_buf)
    mem_buf_put(p->fl_buf, p->fl_cap * PG_PAGE);
  p->fl_buf = NULL;
  mem_free(p->fl_ops);
  p->fl_ops = NULL;
  mem_free(p->fl_pgnos);
  p->fl_pgnos = NULL;
  p->fl_cap = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Free-list load */

static int pg_cmp_u64_desc(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x > y ? -1 : x < y;
}

static void pg_fl_note(struct pg *p, uint64_t pgno)
{
  p->stats.corrupt++;
  LOG_ERROR("%s: free list (page %llu) is corrupt", p->path, (unsigned long long)pgno);
}

/* A macro, so JDB_CORRUPT logs the line of the check that failed. */
#define PG_FL_CORRUPT(p, what, pgno) (pg_fl_note((p), (pgno)), JDB_CORRUPT((what), (pgno)))

/* Check one free-list page in buf (read from pgno) and append its entries to ready. */
static int pg_fl_page_load(struct pg *p, const uint8_t *buf, uint64_t pgno, uint64_t *next)
{
  const uint64_t pc = p->sb.page_count;
  struct layout_page_hdr h;
  int rc = layout_page_open(buf, PG_PAGE, pgno, &h);
  if (rc) {
    p->stats.corrupt++;
    LOG_ERROR("%s: free-list page %llu failed verification", p->path, (unsigned long long)pgno);
    return rc;
  }
  if (h.type != LAYOUT_PAGE_FREELIST)
    return PG_FL_CORRUPT(p, "free-list page type", pgno);
  if (h.flags != 0 || h.aux != 0)
    return PG_FL_CORRUPT(p, "free-list page header reserved fields", pgno);
  if (h.count > PG_FL_PER_PAGE)
    return PG_FL_CORRUPT(p, "free-list page entry count", pgno);
  if (h.generation > p->sb.generation)
    return PG_FL_CORRUPT(p, "free-list page generation newer than the superblock", pgno);
  *next = le64_get(buf + PG_FL_OFF_NEXT);
  if (*next != 0 && (*next < 2 || *next >= pc))
    return PG_FL_CORRUPT(p, "free-list next page number", pgno);
  /* The encoder fills every page but the last. */
  if (*next != 0 && h.count != PG_FL_PER_PAGE)
    return PG_FL_CORRUPT(p, "free-list page not full before the last", pgno);
  size_t end = PG_FL_OFF_ENTRIES + (size_t)h.count * 8;
  for (size_t off = end; off < PG_PAGE; off++)
    if (buf[off] != 0)
      return PG_FL_CORRUPT(p, "free-list page padding", pgno);
  if (pg_vec_reserve(&p->ready, h.count))
    return JDB_ENOMEM;
  for (size_t off = PG_FL_OFF_ENTRIES; off < end; off += 8) {
    uint64_t e = le64_get(buf + off);
    if (e < 2 || e >= pc)
      return PG_FL_CORRUPT(p, "free-list entry out of range", pgno);
    p->ready.v[p->ready.len++] = e;
  }
  return JDB_OK;
}

int pg_freelist_load(struct pg *p)
{
  uint64_t pgno = p->sb.freelist_root;
  if (!pgno)
    return JDB_OK;
  uint8_t *buf = mem_buf_get(PG_PAGE);
  if (!buf)
    return JDB_ENOMEM;
  int rc = JDB_OK;
  while (pgno) {
    /* Entries and chain pages are distinct pages in [2, page count), and every page but the
       last is full: a chain that loops outgrows the file within a few pages. */
    if (p->ready.len + p->chain.len + 1 > p->sb.page_count - 2) {
      rc = PG_FL_CORRUPT(p, "free list longer than the file (loop)", pgno);
      break;
    }
    uint32_t got = 0;
    rc = fs_read(p->ctx, p->file, buf, PG_PAGE, pgno * PG_PAGE, &got);
    if (rc) {
      LOG_ERROR("%s: reading free-list page %llu: %s", p->path, (unsigned long long)pgno,
                jdb_strerror(rc));
      break;
    }
    if (got != PG_PAGE) {
      rc = PG_FL_CORRUPT(p, "free-list page past the end of the file", pgno);
      break;
    }
    uint64_t next = 0;
    rc = pg_fl_page_load(p, buf, pgno, &next);
    if (!rc)
      rc = pg_vec_push(&p->chain, pgno);
    if (rc)
      break;
    pgno = next;
  }
  mem_buf_put(buf, PG_PAGE);
  if (rc)
    return rc;
  /* No page twice, no chain page among the entries (both sorted descending, so ready pops the
     lowest page numbers first). */
  if (p->ready.len > 1)
    qsort(p->ready.v, p->ready.len, sizeof *p->ready.v, pg_cmp_u64_desc);
  if (p->chain.len > 1)
    qsort(p->chain.v, p->chain.len, sizeof *p->chain.v, pg_cmp_u64_desc);
  for (size_t i = 1; i < p->ready.len; i++)
    if (p->ready.v[i] == p->ready.v[i - 1])
      return PG_FL_CORRUPT(p, "free-list names a page twice", p->ready.v[i]);
  for (size_t i = 1; i < p->chain.len; i++)
    if (p->chain.v[i] == p->chain.v[i - 1])
      return PG_FL_CORRUPT(p, "free-list chain loops", p->chain.v[i]);
  for (size_t i = 0, j = 0; i < p->chain.len; i++) {
    while (j < p->ready.len && p->ready.v[j] > p->chain.v[i])
      j++;
    if (j < p->ready.len && p->ready.v[j] == p->chain.v[i])
      return PG_FL_CORRUPT(p, "free-list page lists itself as free", p->chain.v[i]);
  }
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Commit */

static int pg_root_ok(uint64_t root, uint64_t page_count)
{
  return root == 0 || (root >= 2 && root < page_count);
}

int pg_built_hdr_ok(const uint8_t *d)
{
  unsigned type = d[6], level = d[7], count = le16_get(d + 8);
  int ok = type == LAYOUT_PAGE_BRANCH ? level >= 1 && level <= LAYOUT_LEVEL_MAX
           : type == LAYOUT_PAGE_LEAF || type == LAYOUT_PAGE_OVERFLOW ? level == 0
                                                                       : 0;
  return ok && count <= PG_PAGE;
}

static int pg_commit_check(struct pg *p, const struct layout_super *next)
{
  if (!pg_root_ok(next->tree_root, p->page_count) ||
      !pg_root_ok(next->catalog_root, p->page_count) ||
      !pg_root_ok(next->dir_root, p->page_count)) {
    LOG_ERROR("%s: commit with a root outside [2, %llu)", p->path,
              (unsigned long long)p->page_count);
    return JDB_EINVAL;
  }
  if (LOG_POS_OFF(next->replay_pos) % LOG_REC_ALIGN != 0) {
    LOG_ERROR("%s: commit with replay position %llu, not a record position", p->path,
              (unsigned long long)next->replay_pos);
    return JDB_EINVAL;
  }
  for (struct pg_frame *f = p->dirty.lnext; f != &p->dirty; f = f->lnext) {
    const uint8_t *d = f->data;
    if (!pg_built_hdr_ok(d)) {
      LOG_ERROR("%s: dirty page %llu has a bad header (type %u, level %u, count %u)", p->path,
                (unsigned long long)f->pgno, d[6], d[7], le16_get(d + 8));
      return JDB_EINVAL;
    }
  }
  return JDB_OK;
}

/* Room for n free-list pages: buffers, ops, page numbers (kept across commits). */
static int pg_fl_reserve(struct pg *p, size_t n)
{
  if (n <= p->fl_cap)
    return JDB_OK;
  size_t cap = p->fl_cap ? p->fl_cap : 4;
  while (cap < n)
    cap *= 2;
  uint8_t *buf = mem_buf_get(cap * PG_PAGE);
  struct fs_op *ops = mem_calloc(cap, sizeof *ops);
  uint64_t *pgnos = mem_calloc(cap, sizeof *pgnos);
  if (!buf || !ops || !pgnos) {
    if (buf)
      mem_buf_put(buf, cap * PG_PAGE);
    mem_free(ops);
    mem_free(pgnos);
    return JDB_ENOMEM;
  }
  if (p->fl_buf)
    mem_buf_put(p->fl_buf, p->fl_cap * PG_PAGE);
  mem_free(p->fl_ops);
  mem_free(p->fl_pgnos);
  p->fl_buf = buf;
  p->fl_ops = ops;
  p->fl_pgnos = pgnos;
  p->fl_cap = cap;
  return JDB_OK;
}

/* Plan the new chain: how many pages, how many of them taken from ready. */
static void pg_fl_plan(const struct pg *p, size_t *npages, size_t *from_ready)
{
  size_t entries = p->ready.len + (p->pend_len - p->pend_head) + p->chain.len;
  size_t k = 0, r = 0;
  for (;;) {
    size_t need = (entries - r + PG_FL_PER_PAGE - 1) / PG_FL_PER_PAGE;
    if (k >= need)
      break;
    if (r < p->ready.len)
      r++;   /* a page taken from ready is no longer free: one entry fewer */
    k++;
  }
  *npages = k;
  *from_ready = r;
}

/* Steps 1-2 for the free list: reserve everything, then (no failure past this point) free the
   old chain, take the new chain's pages and fill them. *root = new freelist_root. */
static int pg_fl_build(struct pg *p, uint64_t gen, uint64_t *root, size_t *npages)
{
  *npages = 0;
  *root = p->sb.freelist_root;
  if (!p->fl_dirty)
    return JDB_OK;
  size_t k, r;
  pg_fl_plan(p, &k, &r);
  if (k - r > PG_PAGE_COUNT_MAX - p->page_count)
    return JDB_ENOSPC;
  int rc = pg_pend_reserve(p, p->chain.len);
  if (!rc)
    rc = pg_ready_reserve_for_pending(p, p->chain.len);
  if (!rc)
    rc = pg_fl_reserve(p, k);
  if (!rc)
    rc = pg_vec_reserve(&p->chain, k > p->chain.len ? k - p->chain.len : 0);
  if (rc)
    return rc;

  for (size_t i = 0; i < p->chain.len; i++) {
    rc = pg_pend_push(p, p->chain.v[i], gen);
    JDB_ASSERT(rc == JDB_OK);   /* reserved above */
  }
  p->chain.len = 0;
  for (size_t i = 0; i < k; i++) {
    uint64_t pgno = i < r ? p->ready.v[--p->ready.len] : p->page_count++;
    pg_frame_forget(p, pgno);
    p->fl_pgnos[i] = pgno;
  }
  /* Entries: ready, then pending (which now holds the old chain). */
  size_t ri = 0, pi = p->pend_head;
  for (size_t i = 0; i < k; i++) {
    uint8_t *pg = p->fl_buf + i * PG_PAGE;
    memset(pg, 0, PG_PAGE);
    le64_put(pg + PG_FL_OFF_NEXT, i + 1 < k ? p->fl_pgnos[i + 1] : 0);
    unsigned n = 0;
    while (n < PG_FL_PER_PAGE && (ri < p->ready.len || pi < p->pend_len)) {
      uint64_t e = ri < p->ready.len ? p->ready.v[ri++] : p->pend[pi++].pgno;
      le64_put(pg + PG_FL_OFF_ENTRIES + 8 * n, e);
      n++;
    }
    struct layout_page_hdr h = {.type = LAYOUT_PAGE_FREELIST, .count = (uint16_t)n,
                                .pgno = p->fl_pgnos[i], .generation = gen};
    pg_page_set_hdr(pg, &h);   /* sealed right before it is written */
  }
  JDB_ASSERT(ri == p->ready.len && pi == p->pend_len);
  *npages = k;
  *root = k ? p->fl_pgnos[0] : 0;
  return JDB_OK;
}

/* Seal a page for its number and the generation being written. */
static void pg_page_seal_gen(uint8_t *page, uint64_t pgno, uint64_t gen)
{
  struct layout_page_hdr h = {
    .type = page[6], .level = page[7], .count = le16_get(page + 8),
    .flags = le16_get(page + 10), .aux = le32_get(page + 12),
    .pgno = pgno, .generation = gen,
  };
  layout_page_seal(page, PG_PAGE, &h);
}

/* Seal and submit one page write. */
static int pg_write_page(struct pg *p, struct fs_op *op, uint8_t *page, uint64_t pgno,
                         uint64_t gen, uint16_t fixed)
{
  pg_page_seal_gen(page, pgno, gen);
  fs_op_prep_write(op, p->file, page, PG_PAGE, pgno * PG_PAGE);
  op->fixed_buf = fixed;
  int rc = pg_op_submit(p, op);
  if (!rc) {
    p->stats.writes++;
    p->stats.write_ops++;
  }
  return rc;
}

/* Wait for an op; if the backend fails while it is still in flight, keep trying a bounded
   number of times (its buffer must not be reused while the kernel owns it). */
static int pg_op_wait(struct pg *p, struct fs_op *op)
{
  int rc = fs_wait(p->ctx, op);
  for (int tries = 0; pg_op_busy(op) && tries < 100; tries++)
    (void)fs_wait(p->ctx, op);
  return rc;
}

/* Drop a frame of the state being built (out of every list already): FREE when nothing holds
   it, else ORPHAN (FREE at its last unpin). A frame whose write the backend still owns is
   orphaned with an extra pin, i.e. leaked until close. */
static void pg_frame_drop(struct pg *p, struct pg_frame *f)
{
  f->in_spill = 0;
  if (f->pins || pg_op_busy(&f->op)) {
    pg_hash_remove(p, f);
    f->state = PG_FRAME_ORPHAN;
    if (pg_op_busy(&f->op))
      f->pins++;
  } else {
    pg_frame_release(p, f);
  }
}

/* The state being built is gone (a commit or a spill failed): drop its dirty pages and the
   cached copies of its spilled ones, and poison the pg. */
static void pg_drop_built(struct pg *p, int rc)
{
  p->poisoned = rc;
  while (p->dirty.lnext != &p->dirty) {
    struct pg_frame *f = p->dirty.lnext;
    pg_dirty_remove(p, f);
    pg_frame_drop(p, f);
  }
  if (p->spilled.n) {
    for (uint64_t i = 0; i <= p->spilled.mask; i++) {
      uint64_t pgno = p->spilled.v[i];
      struct pg_frame *f = pgno ? pg_hash_find(p, pgno) : NULL;
      /* A LOADING frame belongs to its read: the pin that waits for it gets the page. */
      if (f && f->state == PG_FRAME_RESIDENT)
        pg_frame_drop(p, f);
    }
  }
  pg_set_clear(&p->spilled);
  p->spill_unsynced = 0;
}

static void pg_commit_fail(struct pg *p, int rc, uint64_t gen, const char *step)
{
  LOG_ERROR("%s: commit of generation %llu failed at %s: %s; no further commits until reopen",
            p->path, (unsigned long long)gen, step, jdb_strerror(rc));
  pg_drop_built(p, rc);
}

/* ------------------------------------------------------------------------------------------- */
/* Spill */

/* Grow the file ahead of the pages a commit or a spill writes (up to the page count), in chunks
   of an eighth of its size (at least 16 MiB). Measured: direct writes past the end of the file
   are serialised by the file system (each extends i_size under the inode lock), and a 1 M-key
   load committed 5x slower (1.70 s against 0.33 s) than into a preallocated file. Only an
   optimisation: on failure the writes extend the file themselves (and report ENOSPC if it
   comes to that). */
static void pg_grow(struct pg *p)
{
  uint64_t need = p->page_count * PG_PAGE;
  if (need <= p->file_bytes)
    return;
  uint64_t step = p->file_bytes / 8 > (16u << 20) ? p->file_bytes / 8 : (16u << 20);
  uint64_t to = p->file_bytes + step > need ? p->file_bytes + step : need;
  to = (to + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
  int rc = fs_file_allocate(p->ctx, p->file, p->file_bytes, to - p->file_bytes);
  if (rc) {
    LOG_DEBUG("%s: growing to %llu bytes: %s", p->path, (unsigned long long)to, jdb_strerror(rc));
    return;
  }
  p->file_bytes = to;
}

static int pg_frame_cmp_pgno(const void *a, const void *b)
{
  uint64_t x = (*(struct pg_frame *const *)a)->pgno, y = (*(struct pg_frame *const *)b)->pgno;
  return x < y ? -1 : x > y;
}

static void pg_spill_wake(struct pg *p)
{
  struct pg_waiter *w = p->spill_waiters;
  p->spill_waiters = NULL;
  while (w) {
    struct pg_waiter *next = w->next;   /* w may be gone once done is set and it runs */
    struct coro *co = w->co;
    w->rc = JDB_OK;
    w->done = 1;
    coro_wake(co);
    w = next;
  }
}

int pg_spill_wait(struct pg *p)
{
  struct pg_waiter w = {.co = coro_self()};
  if (!w.co)
    return JDB_EBUSY;
  w.next = p->spill_waiters;
  /* Linked only while this function waits: pg_spill_wake unlinks every waiter first. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
  p->spill_waiters = &w;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
  while (!w.done)
    coro_park();
  return JDB_OK;
}

/* Write one batch of unpinned dirty pages (the file comment). JDB_ENOMEM when there is none or
   the spilled set cannot grow (nothing changed then); an I/O error poisons the pg. */
static int pg_spill(struct pg *p)
{
  uint32_t k = 0;
  for (struct pg_frame *f = p->dirty.lnext; f != &p->dirty && k < p->spill_cap; f = f->lnext)
    if (f->pins == 0 && !pg_op_busy(&f->op) && pg_built_hdr_ok(f->data))
      p->spill_batch[k++] = f;
  if (k == 0 || pg_set_reserve(&p->spilled, k))
    return JDB_ENOMEM;
  qsort(p->spill_batch, k, sizeof *p->spill_batch, pg_frame_cmp_pgno);
  const uint64_t gen = p->sb.generation + 1;
  p->spilling = 1;
  pg_grow(p);
  int rc = JDB_OK;
  uint32_t nsub = 0;
  for (uint32_t i = 0; i < k && !rc; i++) {
    struct pg_frame *f = p->spill_batch[i];
    f->in_spill = 1;
    rc = pg_write_page(p, &f->op, f->data, f->pgno, gen, pg_frame_fixed(p, f));
    if (!rc) {
      f->op.udata = f;
      nsub++;
    }
  }
  int frc = fs_flush(p->ctx);
  if (!rc)
    rc = frc;
  /* Parks (or blocks): meanwhile other fibers may pin these pages, and the writer may free
     them (pg_free orphans a frame marked in_spill). */
  for (uint32_t i = 0; i < nsub; i++) {
    int wrc = pg_op_wait(p, &p->spill_batch[i]->op);
    if (!rc)
      rc = wrc;
  }
  if (rc) {
    LOG_ERROR("%s: spill of %u pages for generation %llu failed: %s; no further commits until "
              "reopen", p->path, k, (unsigned long long)gen, jdb_strerror(rc));
    for (uint32_t i = 0; i < k; i++) {
      struct pg_frame *f = p->spill_batch[i];
      if (f->state == PG_FRAME_ORPHAN && f->in_spill && f->pins == 0 && !pg_op_busy(&f->op))
        pg_frame_release(p, f);
      f->in_spill = 0;
    }
    pg_drop_built(p, rc);
  } else {
    for (uint32_t i = 0; i < k; i++) {
      struct pg_frame *f = p->spill_batch[i];
      JDB_ASSERT(f->in_spill);
      f->in_spill = 0;
      if (f->state == PG_FRAME_ORPHAN) {
        /* Freed while its write was in flight: the page is reusable already. */
        if (f->pins == 0)
          pg_frame_release(p, f);
        continue;
      }
      JDB_ASSERT(f->state == PG_FRAME_DIRTY);
      pg_dirty_remove(p, f);
      f->state = PG_FRAME_RESIDENT;
      pg_set_insert(&p->spilled, f->pgno);
    }
    p->spill_unsynced = 1;
    p->stats.spills++;
    p->stats.spilled_pages += k;
  }
  p->spilling = 0;
  pg_spill_wake(p);
  return rc;
}

int pg_make_room(struct pg *p)
{
  if (p->spilling)
    return pg_spill_wait(p) == JDB_OK ? JDB_OK : JDB_ENOMEM;
  if (p->committing || p->poisoned)
    return JDB_ENOMEM;
  return pg_spill(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Commit writes */

/* The dirty pages of a commit go out in page-number order; a run of consecutive numbers as one
   write of up to PG_RUN_MAX pages copied into a staging buffer, a page with no neighbour straight
   from its frame. One io_uring direct write per 4 KiB page cost the kernel its whole write path
   per page (ext4 block mapping, a bio, a virtio notification): 30 % of a fillrandom checkpoint,
   perf. The copy costs far less, and a checkpoint's new pages are mostly consecutive (taken from
   the file's end or the sorted free list). At most PG_STAGE_QD staged writes are in flight. */
#define PG_RUN_MAX 256u
#define PG_STAGE_QD 8u

struct pg_stager {
  struct fs_op op[PG_STAGE_QD];
  uint8_t *buf[PG_STAGE_QD];
  uint8_t busy[PG_STAGE_QD];   /* submitted, not yet waited for */
  unsigned next;               /* the slot to use next (round robin: the oldest write) */
  int leaked;                  /* a write the backend still owns: its buffer is not returned */
};

/* Wait for slot i's write if it has one; the first error goes to *rc. */
static void pg_stage_reap(struct pg *p, struct pg_stager *s, unsigned i, int *rc)
{
  if (!s->busy[i])
    return;
  int wrc = pg_op_wait(p, &s->op[i]);
  if (!*rc)
    *rc = wrc;
  s->busy[i] = 0;
  if (pg_op_busy(&s->op[i]))
    s->leaked |= 1 << i;
}

/* Submit the sealed pages v[0..n) (consecutive numbers, n >= 2) as one staged write. */
static int pg_stage_write(struct pg *p, struct pg_stager *s, struct pg_frame *const *v, size_t n)
{
  unsigned i = s->next;
  s->next = (i + 1) % PG_STAGE_QD;
  int rc = JDB_OK;
  if (s->busy[i]) {
    (void)fs_flush(p->ctx);
    pg_stage_reap(p, s, i, &rc);
    if (rc)
      return rc;
    if (s->leaked & (1 << i))
      return JDB_EIO;
  }
  if (!s->buf[i]) {
    s->buf[i] = mem_buf_get((size_t)PG_RUN_MAX * PG_PAGE);
    if (!s->buf[i])
      return JDB_ENOMEM;
  }
  for (size_t k = 0; k < n; k++)
    memcpy(s->buf[i] + k * PG_PAGE, v[k]->data, PG_PAGE);
  fs_op_prep_write(&s->op[i], p->file, s->buf[i], (uint32_t)(n * PG_PAGE), v[0]->pgno * PG_PAGE);
  rc = pg_op_submit(p, &s->op[i]);
  if (rc)
    return rc;
  s->busy[i] = 1;
  p->stats.writes += n;
  p->stats.write_ops++;
  return JDB_OK;
}

/* Seal and write the dirty pages v[0..n) (sorted by page number) for generation gen, and wait
   for every write. Frames written straight from their data are collected in direct[]. The
   stager is on the heap: should the backend still own one of its ops after the waits, it is
   leaked whole (ops and that buffer), as a frame with a write in flight is. */
static int pg_write_dirty(struct pg *p, struct pg_frame **v, size_t n, uint64_t gen,
                          struct pg_frame **direct)
{
  struct pg_stager *s = mem_calloc(1, sizeof *s);
  if (!s)
    return JDB_ENOMEM;
  size_t nd = 0;
  int rc = JDB_OK;
  for (size_t i = 0; i < n; i++)
    pg_page_seal_gen(v[i]->data, v[i]->pgno, gen);
  for (size_t i = 0, j; i < n && !rc; i = j) {
    for (j = i + 1; j < n && j - i < PG_RUN_MAX && v[j]->pgno == v[j - 1]->pgno + 1; j++)
      ;
    if (j - i > 1) {
      rc = pg_stage_write(p, s, v + i, j - i);
      continue;
    }
    struct pg_frame *f = v[i];
    fs_op_prep_write(&f->op, p->file, f->data, PG_PAGE, f->pgno * PG_PAGE);
    f->op.fixed_buf = pg_frame_fixed(p, f);
    f->op.udata = f;
    rc = pg_op_submit(p, &f->op);
    if (!rc) {
      direct[nd++] = f;
      p->stats.writes++;
      p->stats.write_ops++;
    }
  }
  int frc = fs_flush(p->ctx);
  if (!rc)
    rc = frc;
  for (unsigned i = 0; i < PG_STAGE_QD; i++)
    pg_stage_reap(p, s, i, &rc);
  for (size_t i = 0; i < nd; i++) {
    int wrc = pg_op_wait(p, &direct[i]->op);
    if (!rc)
      rc = wrc;
  }
  for (unsigned i = 0; i < PG_STAGE_QD; i++)
    if (s->buf[i] && !(s->leaked & (1 << i)))
      mem_buf_put(s->buf[i], (size_t)PG_RUN_MAX * PG_PAGE);
  if (s->leaked)
    LOG_ERROR("%s: a page write still in flight after its wait; leaking its op and buffer",
              p->path);
  else
    mem_free(s);
  return rc;
}

int pg_commit(struct pg *p, const struct layout_super *next)
{
  if (!next)
    return JDB_EINVAL;
  if (p->committing)
    return JDB_EBUSY;
  while (p->spilling)
    if (pg_spill_wait(p))
      return JDB_EBUSY;
  if (p->poisoned)
    return JDB_EIO;
  if (p->committing)
    return JDB_EBUSY;
  int rc = pg_commit_check(p, next);
  if (rc)
    return rc;
  const uint64_t gen = p->sb.generation + 1;
  uint64_t fl_root = 0;
  size_t nfl = 0;
  /* The dirty frames in page-number order, and room for the ones written from their frames. */
  size_t ndirty = p->ndirty;
  struct pg_frame **v = mem_malloc((2 * ndirty + 1) * sizeof *v);
  if (!v)
    return JDB_ENOMEM;
  size_t ndata = 0;
  for (struct pg_frame *f = p->dirty.lnext; f != &p->dirty; f = f->lnext)
    v[ndata++] = f;
  JDB_ASSERT(ndata == ndirty);
  qsort(v, ndata, sizeof *v, pg_frame_cmp_pgno);
  rc = pg_fl_build(p, gen, &fl_root, &nfl);
  if (rc) {
    mem_free(v);
    return rc;
  }
  p->committing = 1;
  pg_grow(p);

  /* 3. Every page: sealed, submitted (runs staged), one flush, then wait for all. */
  size_t nflsub = 0;
  const char *step = "page writes";
  for (size_t i = 0; i < nfl; i++) {
    rc = pg_write_page(p, &p->fl_ops[i], p->fl_buf + i * PG_PAGE, p->fl_pgnos[i], gen, 0);
    if (rc)
      break;
    nflsub++;
  }
  if (!rc)
    rc = pg_write_dirty(p, v, ndata, gen, v + ndata);
  mem_free(v);
  int frc = fs_flush(p->ctx);
  if (!rc)
    rc = frc;
  for (size_t i = 0; i < nflsub; i++) {
    int wrc = pg_op_wait(p, &p->fl_ops[i]);
    if (!rc)
      rc = wrc;
  }

  /* 4. One fdatasync covers them all, and the pages spilled since the last commit. */
  if (!rc && (ndata + nflsub > 0 || p->spill_unsynced)) {
    step = "page fdatasync";
    fs_op_prep_sync(&p->data_sync_op, p->file, 0);
    rc = pg_op_submit(p, &p->data_sync_op);
    if (!rc)
      rc = pg_op_wait(p, &p->data_sync_op);
  }

  /* 5. The superblock, to the slot of the new generation's parity, written and synced. */
  struct layout_super ns = p->sb;
  ns.generation = gen;
  ns.tree_root = next->tree_root;
  ns.catalog_root = next->catalog_root;
  ns.dir_root = next->dir_root;
  ns.seq_max = next->seq_max;
  ns.replay_pos = next->replay_pos;
  ns.freelist_root = fl_root;
  ns.page_count = p->page_count;
  const uint64_t slot = gen & 1;
  int sb_tried = 0;
  if (!rc) {
    step = "superblock write";
    layout_super_encode(p->sb_buf, PG_PAGE, slot, &ns);
    struct layout_super chk;
    JDB_ASSERT(layout_super_decode(p->sb_buf, PG_PAGE, slot, &chk) == JDB_OK);
    fs_op_prep_write(&p->sb_op, p->file, p->sb_buf, PG_PAGE, slot * PG_PAGE);
    fs_op_prep_sync(&p->sb_sync_op, p->file, 0);
    struct fs_op *chain[2] = {&p->sb_op, &p->sb_sync_op};
    rc = fs_submit_chain(p->ctx, chain, 2);
    if (!rc) {
      sb_tried = 1;
      p->stats.writes++;
      p->stats.write_ops++;
      int wrc = pg_op_wait(p, &p->sb_op);
      int src = pg_op_wait(p, &p->sb_sync_op);
      rc = wrc ? wrc : src;
      if (!wrc && src)
        step = "superblock fdatasync";
    }
  }

  if (rc) {
    if (sb_tried && !pg_op_busy(&p->sb_op) && !pg_op_busy(&p->sb_sync_op)) {
      /* The new superblock may be on disk although its sync failed: put back what the slot
         held, so this process does not find, at reopen, a state it reported as failed. */
      if (p->sb_other_ok)
        layout_super_encode(p->sb_buf, PG_PAGE, slot, &p->sb_other);
      else
        memset(p->sb_buf, 0, PG_PAGE);
      int rrc = fs_write_sync(p->ctx, p->file, p->sb_buf, PG_PAGE, slot * PG_PAGE);
      if (rrc)
        LOG_ERROR("%s: restoring superblock slot %llu: %s", p->path, (unsigned long long)slot,
                  jdb_strerror(rrc));
    }
    pg_commit_fail(p, rc, gen, step);
    p->committing = 0;
    return rc;
  }

  /* 6. Durable: publish. */
  p->sb_other = p->sb;
  p->sb_other_ok = 1;
  p->sb = ns;
  while (p->dirty.lnext != &p->dirty) {
    struct pg_frame *f = p->dirty.lnext;
    pg_dirty_remove(p, f);
    f->state = PG_FRAME_RESIDENT;
  }
  pg_set_clear(&p->spilled);
  p->spill_unsynced = 0;
  if (p->fl_dirty) {
    JDB_ASSERT(p->chain.len == 0 && p->chain.cap >= nfl);
    if (nfl)
      memcpy(p->chain.v, p->fl_pgnos, nfl * sizeof *p->fl_pgnos);
    p->chain.len = nfl;
    p->fl_dirty = 0;
  }
  p->stats.commits++;
  p->committing = 0;
  return JDB_OK;
}
