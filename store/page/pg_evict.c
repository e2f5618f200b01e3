/*
 * pg_evict.c - the frame table of the buffer manager: frame memory, the pgno -> frame hash
 * table, the free-frame list and CLOCK eviction; and the set of spilled page numbers.
 *
 * Memory, mapped once at pg_open for the whole budget but touched only as frames come into use:
 * the frames' pages are one arena mapping (2 MiB huge pages when the system has them), frame i's
 * data at base + i * PG_PAGE; the frame structs are one zeroed array. Frames [0, nused) have been
 * used; when the free list is empty pg_frame_take hands out frame nused while the budget has one,
 * and only then evicts, so a budget larger than the working set costs address space, not memory.
 * The hash table is a power-of-two array of slots, at least twice nused (pg_slots_fit doubles it
 * with a rehash as frames come into use: the one allocation after open, and rare; on huge pages
 * from 2 MiB), open-addressed with linear probing, each slot holding the pgno, the frame index
 * and whether the page is readable, so a lookup touches one slot and pg_peek reaches the page
 * without touching the frame struct (a chained table cost a bucket and a frame-struct cache miss
 * per level of a tree descent: 45% of a warm point lookup). CLOCK reference bits live in their
 * own byte array for the same reason. The first PG_FIXED_FRAMES_MAX frames (registering pins the
 * memory, and so commits it) are registered with the fs ctx as fixed buffers, one slot per
 * PG_FIXED_CHUNK_FRAMES frames, each slot filled once its frames are populated (pg_fixed_grow);
 * reads and writes of a frame i in a filled slot name buffer i / PG_FIXED_CHUNK_FRAMES + 1, other
 * frames go without.
 * Registration is an optimisation: when the backend or the locked-memory limit refuses it, ops
 * simply go without fixed_buf.
 *
 * Invariants:
 *   - A frame is in the hash table iff its state is LOADING, RESIDENT or DIRTY, under its pgno,
 *     and at most one frame holds a given pgno.
 *   - Of the frames [0, nused), the FREE ones are exactly the ones on the free-frame list; DIRTY
 *     frames exactly the ones on the dirty list (p->ndirty of them). Frames from nused on are
 *     zeroes no list, slot or sweep reaches; the table has at least 2 * nused slots.
 *   - Eviction takes only RESIDENT frames with no pin, whose op is idle or done and which have no
 *     waiter: a LOADING frame (read in flight) or a DIRTY one (not yet written) is never taken.
 *     A RESIDENT frame of a spilled page is taken like any other: its bytes are on disk.
 *
 * CLOCK: every pin and peek sets the frame's reference bit. When no frame is free, the hand
 * sweeps the frame array: an unpinned RESIDENT frame with its bit set gets it cleared (a second
 * chance), one with the bit clear is evicted. Two full turns without a victim mean every frame
 * is pinned, loading or dirty: the caller then spills dirty pages (pg_make_room, pg_commit.c)
 * or fails with JDB_ENOMEM. The sweep touches only the frame structs, never the page memory.
 *
 * Spilled set: the page numbers a spill wrote for the state being built, open-addressed like the
 * frame table (linear probing, backward-shift deletion, at most half full). Grown only by a
 * spill, before it writes anything; emptied by every commit.
 */
#include "pg_int.h"

#include "err.h"
#include "log.h"

#include <string.h>
#include <sys/uio.h>

static inline uint64_t pg_mix(uint64_t pgno, uint64_t mask)
{
  return ((pgno * 0x9e3779b97f4a7c15ull) >> 29) & mask;
}

static inline uint64_t pg_hash_home(const struct pg *p, uint64_t pgno)
{
  return pg_mix(pgno, p->slot_mask);
}

/* Slot index holding pgno, or the empty slot where it would go. */
static inline uint64_t pg_hash_probe(const struct pg *p, uint64_t pgno)
{
  uint64_t i = pg_hash_home(p, pgno);
  while (p->slots[i].pgno && p->slots[i].pgno != pgno)
    i = (i + 1) & p->slot_mask;
  return i;
}

struct pg_frame *pg_hash_find(const struct pg *p, uint64_t pgno)
{
  const struct pg_slot *s = &p->slots[pg_hash_probe(p, pgno)];
  return s->pgno ? &p->frames[s->idx] : NULL;
}

const void *pg_peek(struct pg *p, uint64_t pgno)
{
  const struct pg_slot *s = &p->slots[pg_hash_probe(p, pgno)];
  if (!s->pgno || !s->ready)
    return NULL;
  p->refs[s->idx] = 1;
  p->stats.hits++;
  return p->arena.base + (size_t)s->idx * PG_PAGE;
}

void pg_peek_prefetch(const struct pg *p, uint64_t pgno)
{
  __builtin_prefetch(&p->slots[pg_hash_home(p, pgno)]);
}

void pg_hash_insert(struct pg *p, struct pg_frame *f)
{
  uint64_t i = pg_hash_probe(p, f->pgno);
  JDB_ASSERT(p->slots[i].pgno == 0);
  p->slots[i] = (struct pg_slot){.pgno = f->pgno, .idx = f->idx,
                                 .ready = f->state != PG_FRAME_LOADING};
}

void pg_hash_set_ready(struct pg *p, const struct pg_frame *f)
{
  uint64_t i = pg_hash_probe(p, f->pgno);
  JDB_ASSERT(p->slots[i].pgno == f->pgno && p->slots[i].idx == f->idx);
  p->slots[i].ready = 1;
}

/* Linear probing with backward-shift deletion: later entries of the cluster whose home is not
   between the hole and themselves move into the hole, so lookups never need tombstones. */
void pg_hash_remove(struct pg *p, struct pg_frame *f)
{
  uint64_t i = pg_hash_probe(p, f->pgno), m = p->slot_mask;
  JDB_ASSERT(p->slots[i].pgno == f->pgno && p->slots[i].idx == f->idx);
  for (uint64_t j = (i + 1) & m; p->slots[j].pgno; j = (j + 1) & m) {
    uint64_t k = pg_hash_home(p, p->slots[j].pgno);
    /* the entry at j may fill the hole at i iff its home k is not in (i, j] (cyclically) */
    int in = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (!in) {
      p->slots[i] = p->slots[j];
      i = j;
    }
  }
  p->slots[i] = (struct pg_slot){0};
}

/* A zeroed slot table of nb entries: on huge pages when large (every lookup of a page not in the
   CPU's cache misses on its slot; the load was 86 % of pg_peek in readrandom over 262144 frames,
   a TLB miss as much as a cache miss), from the heap otherwise. */
static int pg_slots_make(uint64_t nb, struct pg_slot **slots, struct mem_arena *a)
{
  size_t bytes = (size_t)nb * sizeof **slots;
  *a = (struct mem_arena){0};
  if (bytes >= PG_META_HUGE_MIN) {
    int rc = mem_arena_init(a, bytes, MEM_ARENA_HUGE_TRY);
    if (rc)
      return rc;
    *slots = mem_arena_alloc(a, bytes);
    return JDB_OK;
  }
  *slots = mem_calloc(nb, sizeof **slots);
  return *slots ? JDB_OK : JDB_ENOMEM;
}

static void pg_slots_drop(struct pg_slot *slots, struct mem_arena *a)
{
  if (a->base)
    mem_arena_deinit(a);
  else
    mem_free(slots);
}

int pg_slots_fit(struct pg *p, uint64_t frames)
{
  uint64_t nb = p->slots ? p->slot_mask + 1 : 0;
  if (nb && 2 * frames <= nb)
    return JDB_OK;
  uint64_t want = nb ? 2 * nb : 1024;
  while (want < 2 * frames)
    want <<= 1;
  struct pg_slot *ns;
  struct mem_arena na;
  int rc = pg_slots_make(want, &ns, &na);
  if (rc)
    return rc;
  struct pg_slot *os = p->slots;
  struct mem_arena oa = p->meta;
  p->slots = ns;
  p->meta = na;
  p->slot_mask = want - 1;
  for (uint64_t i = 0; i < nb; i++)
    if (os[i].pgno)
      p->slots[pg_hash_probe(p, os[i].pgno)] = os[i];
  if (os)
    pg_slots_drop(os, &oa);
  return JDB_OK;
}

uint64_t pg_hash_count(const struct pg *p)
{
  uint64_t n = 0;
  for (uint64_t i = 0; i <= p->slot_mask; i++)
    n += p->slots[i].pgno != 0;
  return n;
}

/* ------------------------------------------------------------------------------------------- */
/* The spilled set */

static uint64_t pg_set_probe(const struct pg_set *s, uint64_t pgno)
{
  uint64_t i = pg_mix(pgno, s->mask);
  while (s->v[i] && s->v[i] != pgno)
    i = (i + 1) & s->mask;
  return i;
}

int pg_set_has(const struct pg_set *s, uint64_t pgno)
{
  return s->n && s->v[pg_set_probe(s, pgno)] == pgno;
}

int pg_set_reserve(struct pg_set *s, size_t extra)
{
  uint64_t cap = s->v ? s->mask + 1 : 0;
  if (2 * ((uint64_t)s->n + extra) <= cap)
    return JDB_OK;
  uint64_t ncap = cap ? cap : 256;
  while (ncap < 2 * ((uint64_t)s->n + extra))
    ncap *= 2;
  uint64_t *v = mem_calloc(ncap, sizeof *v);
  if (!v)
    return JDB_ENOMEM;
  struct pg_set ns = {.v = v, .mask = ncap - 1, .n = 0};
  for (uint64_t i = 0; i < cap; i++)
    if (s->v[i])
      pg_set_insert(&ns, s->v[i]);
  mem_free(s->v);
  *s = ns;
  return JDB_OK;
}

void pg_set_insert(struct pg_set *s, uint64_t pgno)
{
  JDB_ASSERT(pgno != 0 && s->v && 2 * (s->n + 1) <= s->mask + 1);
  uint64_t i = pg_set_probe(s, pgno);
  if (s->v[i] == pgno)
    return;
  s->v[i] = pgno;
  s->n++;
}

void pg_set_remove(struct pg_set *s, uint64_t pgno)
{
  if (!s->n)
    return;
  uint64_t i = pg_set_probe(s, pgno), m = s->mask;
  if (s->v[i] != pgno)
    return;
  for (uint64_t j = (i + 1) & m; s->v[j]; j = (j + 1) & m) {
    uint64_t k = pg_mix(s->v[j], m);
    int in = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (!in) {
      s->v[i] = s->v[j];
      i = j;
    }
  }
  s->v[i] = 0;
  s->n--;
}

void pg_set_clear(struct pg_set *s)
{
  if (!s->v)
    return;
  /* A table much larger than its last use is given back rather than wiped every commit. */
  if (s->mask + 1 > 4096 && s->mask + 1 > 16 * (uint64_t)s->n) {
    pg_set_free(s);
    return;
  }
  if (s->n)
    memset(s->v, 0, (size_t)(s->mask + 1) * sizeof *s->v);
  s->n = 0;
}

void pg_set_free(struct pg_set *s)
{
  mem_free(s->v);
  *s = (struct pg_set){0};
}

/* ------------------------------------------------------------------------------------------- */
/* Lists */

void pg_dirty_add(struct pg *p, struct pg_frame *f)
{
  f->lprev = p->dirty.lprev;
  f->lnext = &p->dirty;
  p->dirty.lprev->lnext = f;
  p->dirty.lprev = f;
  p->ndirty++;
}

void pg_dirty_remove(struct pg *p, struct pg_frame *f)
{
  JDB_ASSERT(p->ndirty > 0);
  f->lprev->lnext = f->lnext;
  f->lnext->lprev = f->lprev;
  f->lnext = f->lprev = NULL;
  p->ndirty--;
}

void pg_frame_release(struct pg *p, struct pg_frame *f)
{
  JDB_ASSERT(f->state != PG_FRAME_FREE);
  JDB_ASSERT(f->waiters == NULL);
  JDB_ASSERT(f->lnext == NULL && f->lprev == NULL);   /* off the dirty list */
  if (f->state == PG_FRAME_LOADING || f->state == PG_FRAME_RESIDENT ||
      f->state == PG_FRAME_DIRTY)
    pg_hash_remove(p, f);
  f->state = PG_FRAME_FREE;
  f->in_spill = 0;
  f->pins = 0;
  p->refs[f->idx] = 0;
  f->lnext = p->free_frames;
  p->free_frames = f;
}

static int pg_frame_evictable(const struct pg_frame *f)
{
  return f->state == PG_FRAME_RESIDENT && f->pins == 0;
}

/* Keep the frames about to come into use populated by the helper thread (mem_prefault): up to
   the window (pfw.ahead) ahead of nused, one request in flight. The kernel zeroing fresh frames
   on first touch was 24-35 % of a fillrandom run on the shard thread. (pg_fixed_grow registers
   frames as fixed buffers only once they are populated, by use or by this.) The window starts at PG_PREFAULT_AHEAD and doubles (to PG_PREFAULT_AHEAD_MAX) whenever
   use reaches the last request while the helper still works on it: a checkpoint takes frames in
   bursts faster than the helper zeroes them (~430 MB/s here), and with 64 MiB ahead the shard
   thread still faulted its own frames in (7.9 % of a fillrandom run's samples); a larger window
   lets the helper work through the quiet stretches between bursts. A slowly growing cache keeps
   the first window, so RSS runs at most that far ahead of use. */
uint32_t pg_pfwin_step(struct pg_pfwin *w, uint32_t nused, uint32_t nframes, int busy,
                       uint32_t chunk, uint32_t max, int *grew)
{
  *grew = 0;
  if (busy && nused > w->start && !w->reached) {
    w->reached = 1;
    /* Use caught up with the helper. The first request of a growing cache always starts where
       use is, so that alone says nothing; a request issued ahead of use, or a second one in a
       row, does. */
    if ((w->early || w->streak) && w->next < nframes && w->ahead < max) {
      w->ahead = w->ahead * 2 < max ? w->ahead * 2 : max;
      *grew = 1;
    }
  }
  if (w->next < nused)
    w->next = nused;
  if (busy || w->next >= nframes || w->next - nused >= w->ahead)
    return 0;
  w->streak = w->reached;
  w->reached = 0;
  w->start = w->next;
  w->early = w->next > nused;
  return nframes - w->next < chunk ? nframes - w->next : chunk;
}

static void pg_prefault_ahead(struct pg *p)
{
  struct pg_pfwin *w = &p->pfw;
  if (!w->ahead)
    w->ahead = PG_PREFAULT_AHEAD;
  int grew;
  /* A request is a quarter of the window: the helper gets asked only as frames come into use,
     so a larger window must come in larger requests to keep it busy through a quiet stretch.
     But no larger than the frames in use (at least PG_PREFAULT_FIRST): a small cache stays
     small (a one-key database populated 16 MiB per shard with its first page). */
  uint32_t chunk = w->ahead / 4 > PG_PREFAULT_FRAMES ? w->ahead / 4 : PG_PREFAULT_FRAMES;
  uint32_t grown = p->nused > PG_PREFAULT_FIRST ? p->nused : PG_PREFAULT_FIRST;
  if (chunk > grown)
    chunk = grown;
  uint32_t n = pg_pfwin_step(w, p->nused, p->nframes, mem_prefault_busy(&p->pf), chunk,
                             PG_PREFAULT_AHEAD_MAX, &grew);
  p->stats.prefault_grows += (uint64_t)grew;
  if (!n)
    return;
  if (mem_prefault_start(&p->pf, p->arena.base + (size_t)w->next * PG_PAGE,
                         (size_t)n * PG_PAGE) == JDB_OK)
    w->next += n;
  else
    w->next = p->nframes;   /* no helper or no kernel support: faults on first touch */
}

static void pg_fixed_grow(struct pg *p);

struct pg_frame *pg_frame_take(struct pg *p)
{
  struct pg_frame *f = p->free_frames;
  if (f) {
    JDB_ASSERT(f->state == PG_FRAME_FREE);
    p->free_frames = f->lnext;
    f->lnext = NULL;
    return f;
  }
  /* A frame never used yet, while the budget has one and the hash table can grow to hold its
     page; when the table cannot grow (out of memory) the cache stops growing and CLOCK reuses
     the frames it has. */
  if (p->nused < p->nframes && pg_slots_fit(p, (uint64_t)p->nused + 1) == JDB_OK) {
    f = &p->frames[p->nused];
    f->data = p->arena.base + (size_t)p->nused * PG_PAGE;
    f->pg = p;
    f->idx = p->nused++;
    f->state = PG_FRAME_FREE;
    pg_prefault_ahead(p);
    pg_fixed_grow(p);
    return f;
  }
  uint32_t n = p->nused;
  if (!n)
    return NULL;
  for (uint64_t step = 0; step < 2ull * n; step++) {
    f = &p->frames[p->hand];
    p->hand = p->hand + 1 == n ? 0 : p->hand + 1;
    if (!pg_frame_evictable(f))
      continue;
    if (p->refs[f->idx]) {
      p->refs[f->idx] = 0;
      continue;
    }
    /* A RESIDENT frame has no I/O in flight and nobody waiting on it. */
    JDB_ASSERT(f->op.state == FS_OP_IDLE || f->op.state == FS_OP_DONE);
    JDB_ASSERT(f->waiters == NULL);
    pg_hash_remove(p, f);
    f->state = PG_FRAME_FREE;
    p->stats.evictions++;
    return f;
  }
  return NULL;
}

void pg_frame_forget(struct pg *p, uint64_t pgno)
{
  struct pg_frame *f = pg_hash_find(p, pgno);
  if (!f)
    return;
  /* A page on the reusable list has no reader (pg_reclaim's contract), so no pin and no read. */
  JDB_ASSERT(f->state == PG_FRAME_RESIDENT);
  JDB_ASSERT(f->pins == 0);
  pg_frame_release(p, f);
}

uint16_t pg_frame_fixed(const struct pg *p, const struct pg_frame *f)
{
  return p->fixed && f->idx < p->nfixed ? (uint16_t)(f->idx / PG_FIXED_CHUNK_FRAMES + 1) : 0;
}

/* Reserve the registered-buffer slots for the first PG_FIXED_FRAMES_MAX frames, one per
   PG_FIXED_CHUNK_FRAMES; pg_fixed_grow fills them as the cache grows. Registering pins (and so
   commits) the memory it covers: registering all 256 MiB at open made every open zero that much
   (0.6 s on this VM, 9 % of a fillrandom run's samples) and gave even an empty database a
   256 MiB RSS per shard. */
static void pg_frames_register(struct pg *p)
{
  uint32_t max = p->nframes < PG_FIXED_FRAMES_MAX ? p->nframes : PG_FIXED_FRAMES_MAX;
  unsigned nslots = (max + PG_FIXED_CHUNK_FRAMES - 1) / PG_FIXED_CHUNK_FRAMES;
  int rc = fs_ctx_reserve_buffers(p->ctx, nslots);
  p->fixed = rc == JDB_OK;
  p->nfixed = 0;
  p->fixed_max = p->fixed ? max : 0;
  if (rc)
    LOG_DEBUG("%s: frames not registered as fixed buffers (%s)", p->path, jdb_strerror(rc));
}

/* Register the next chunks of frames whose memory is populated: used already, or prefaulted by
   requests the helper has finished (pinning a chunk that is not would fault it in here, on the
   shard thread). Until its chunk is registered a frame's I/O goes without fixed_buf. A refused
   registration (the locked-memory limit) ends the growth where it is. */
static void pg_fixed_grow(struct pg *p)
{
  const struct pg_pfwin *w = &p->pfw;
  uint32_t ready = mem_prefault_busy(&p->pf) ? w->start : w->next;
  if (ready < p->nused)
    ready = p->nused;
  while (p->fixed && p->nfixed < p->fixed_max) {
    uint32_t n = p->fixed_max - p->nfixed < PG_FIXED_CHUNK_FRAMES ? p->fixed_max - p->nfixed
                                                                    : PG_FIXED_CHUNK_FRAMES;
    if (p->nfixed + n > ready)
      return;
    struct iovec iov = {.iov_base = p->arena.base + (size_t)p->nfixed * PG_PAGE,
                        .iov_len = (size_t)n * PG_PAGE};
    int rc = fs_ctx_set_buffer(p->ctx, p->nfixed / PG_FIXED_CHUNK_FRAMES, &iov);
    if (rc) {
      LOG_DEBUG("%s: frames from %u on not registered (%s)", p->path, p->nfixed,
                jdb_strerror(rc));
      p->fixed_max = p->nfixed;
      return;
    }
    p->nfixed += n;
  }
}

int pg_frames_init(struct pg *p)
{
  uint32_t n = p->nframes;
  /* MAP_HUGETLB reserves the whole mapping at once (from a pool the administrator set aside):
     only for a budget of at most PG_FIXED_FRAMES_MAX; a larger one gets transparent huge pages,
     taken as frames come into use. */
  int rc = mem_arena_init(&p->arena, (size_t)n * PG_PAGE,
                          n <= PG_FIXED_FRAMES_MAX ? MEM_ARENA_HUGE_TRY : 0);
  if (rc)
    return rc;
  if (!mem_arena_alloc(&p->arena, (size_t)n * PG_PAGE))
    return JDB_ENOMEM;
  /* Zeroed, and touched only as frames come into use (pg_frame_take): a large budget costs
     address space, not memory, until the pages it caches need it. */
  p->frames = mem_calloc(n, sizeof *p->frames);
  p->refs = mem_calloc(n, 1);
  if (!p->frames || !p->refs)
    return JDB_ENOMEM;
  rc = pg_slots_fit(p, n < PG_SLOTS_FRAMES_INIT ? n : PG_SLOTS_FRAMES_INIT);
  if (rc)
    return rc;
  p->dirty.lnext = p->dirty.lprev = &p->dirty;
  pg_frames_register(p);
  return JDB_OK;
}

void pg_frames_deinit(struct pg *p)
{
  mem_prefault_cancel(&p->pf);   /* before the arena goes */
  if (p->fixed) {
    /* Drops the ctx's registered set, which is ours unless another unit replaced it since. */
    int rc = fs_ctx_register_buffers(p->ctx, NULL, 0);
    if (rc)
      LOG_WARN("%s: unregistering the frame buffers: %s", p->path, jdb_strerror(rc));
    p->fixed = 0;
  }
  pg_slots_drop(p->slots, &p->meta);
  p->slots = NULL;
  p->slot_mask = 0;
  mem_free(p->refs);
  p->refs = NULL;
  mem_free(p->frames);
  p->frames = NULL;
  if (p->arena.base)
    mem_arena_deinit(&p->arena);
}
