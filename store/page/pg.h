/*
 * pg.h - the buffer manager of one shard's pages file: a fixed budget of 4 KiB frames, page
 * numbers to frames, CLOCK eviction, pins, verified reads, page allocation with a free list whose
 * pages are reused only when safe, and the two superblock slots.
 *
 * One struct pg per shard, used from the shard's thread only (fibers of one scheduler). Reads go
 * through the fs ctx given at open; inside a fiber a missing page parks the fiber (several fibers
 * missing the same page wait on one read), outside any fiber the call blocks. A fiber parked in
 * pg_pin, pg_alloc or pg_commit resumes only if the loop running the fibers flushes and polls
 * the ctx (fs_loop_run, or the runtime's reactor).
 *
 * File: pages 0 and 1 are the superblock slots (infra/layout super), pages 2.. are tree pages and
 * free-list pages (docs/FORMAT.md, "Free-list pages"). Every page is sealed on write with its own
 * pgno, the generation of the commit that wrote it and a checksum (infra/layout page header), and
 * verified on read before anyone sees it (checksum, own pgno, known type, generation not newer
 * than the current superblock, or exactly current + 1 for a page the state being built spilled):
 * a page that fails is JDB_ECORRUPT (logged with its pgno), never a crash, and its frame is
 * released so a later pin reads it again.
 *
 * Copy-on-write contract (what the B+ tree relies on): a page that is part of a committed state
 * is never modified in place. The tree allocates new pages (pg_alloc), fills them, and frees the
 * pages they replace (pg_free). pg_commit writes every dirty page with direct I/O in batches,
 * fdatasyncs, then writes the superblock to the other slot and fdatasyncs again; only then is the
 * new state durable. A freed page becomes reusable only when (a) the superblock that stopped
 * referencing it is durable and (b) no reader that may still see an older state remains
 * (pg_reclaim tells pg the oldest generation any reader still uses). After pg_open no reader
 * exists, so every page the free list names is reusable at once.
 *
 * Spill: the state being built may dirty more pages than the frame budget. When a pin or an
 * allocation finds no free or evictable frame, pg writes a batch of unpinned dirty pages
 * (max(32, frames / 8), at most 4096) early, at their own page numbers, sealed exactly as the
 * commit would seal them (generation current + 1), in page-number order, and waits for the
 * writes (parking the fiber, or blocking outside any fiber). Their frames become clean
 * RESIDENT frames that CLOCK may evict; a later pin reads such a page back (it verifies with
 * generation current + 1, accepted for the pages spilled since the last commit and no other).
 * The commit writes only the pages still dirty; its fdatasync covers the spilled ones. This is
 * safe for copy-on-write: a page of the state being built is a new page, beyond the durable
 * page count or a reusable free page no superblock in use and no reader references; a crash
 * before the commit's superblock leaves it unreferenced garbage. So an unpinned page of the
 * state being built may be written at any time: its header must be complete when it is
 * unpinned (a page whose header fields would fail the commit's check is never spilled).
 *
 * Writers: pg_alloc, pg_page_writable, pg_free and pg_commit build "the state being built"; one
 * fiber at a time may do so, and not while a pg_commit is in progress (pg_alloc and pg_commit
 * return JDB_EBUSY then). Readers (pg_pin / pg_unpin) may run in any fiber at any time; a
 * reader's pin may spill too (then the writer's calls that need a frame, pg_commit and
 * pg_page_writable of a page in the batch wait for it; pg_alloc with a frame at hand and
 * pg_free do not).
 *
 * Frame states (function making each transition):
 *   FREE --pg_pin miss--> LOADING --read ok + verified--> RESIDENT --pg_alloc (reuse)--> DIRTY
 *   FREE --pg_alloc--> DIRTY
 *   LOADING --read fails / verify fails--> FREE (every waiter gets the error)
 *   DIRTY --pg_commit succeeds--> RESIDENT;  RESIDENT (unpinned) --CLOCK eviction--> FREE
 *   DIRTY (unpinned) --spill (in pg_pin / pg_alloc)--> RESIDENT "spilled" (the state being
 *     built, already on disk) --CLOCK eviction--> FREE --pg_pin miss--> LOADING --> RESIDENT
 *     "spilled";  RESIDENT "spilled" --pg_page_writable--> DIRTY;  --pg_commit--> RESIDENT
 *   DIRTY or "spilled" --pg_free, or a pg_commit / spill fails--> FREE (unpinned) / ORPHAN
 *     (pinned: FREE at last unpin)
 *   A pinned frame (pin count > 0) and a LOADING or DIRTY frame are never evicted. When every
 *   frame is pinned, loading or dirty, pg_pin / pg_alloc spill unpinned dirty pages; they
 *   return JDB_ENOMEM only when there are none (every frame pinned or loading), while a commit
 *   is in progress, or outside a fiber while a fiber's spill is in flight.
 */
#ifndef JDB_PG_H
#define JDB_PG_H

#include "layout.h"

#include <stddef.h>
#include <stdint.h>

struct fs_ctx;
struct pg;
struct pg_frame;

/* A field left 0 takes its default. */
struct pg_opts {
  uint32_t frames;         /* frame budget (default 1024 = 4 MiB); at least 16, at most 2^26 */
  int buffered;            /* 0 (default): O_DIRECT (with fs's logged fallback to buffered I/O
                              where the file system refuses it); 1: buffered I/O + fdatasync */
  uint32_t shard_id, shard_count;   /* recorded in a new file's superblocks (default 0 / 1) */
  int read_only;           /* open the file read-only (nothing may be written: pg_commit and
                              spills then fail with JDB_EIO); never creates it */
  /* Optional: called for every page read from disk after the generic checks (checksum, pgno,
     type, generation) passed and before anyone sees the page, so the layer above can check the
     body's structure once per load instead of on every access. Returns JDB_OK or JDB_ECORRUPT
     (the read then fails as any corrupt page does). Runs from fs_poll: must not block. */
  int (*verify)(void *arg, const void *page, size_t page_size, const struct layout_page_hdr *h);
  void *verify_arg;
};

/* Open (create_if_missing: format a new file with two valid superblocks of generation 0 and 1,
   both describing an empty state; the file is built under "<path>.new" and renamed into place,
   so a crash while creating leaves no half-formatted file at path) the pages file at path. Picks
   the newest valid superblock: JDB_ECORRUPT only if both slots are invalid (or the free list of
   the chosen one is), JDB_EVERSION if the newest readable slot is of another format version,
   JDB_NOTFOUND if missing and !create_if_missing, JDB_EINVAL for bad opts, JDB_ENOMEM, JDB_EIO.
   Allocates every frame here (one arena, registered with the ctx as fixed buffers when the
   backend accepts them: an optimisation, silently skipped otherwise). *out is NULL on failure.
   The ctx must outlive the pg. */
int pg_open(struct fs_ctx *ctx, const char *path, const struct pg_opts *opts,
            int create_if_missing, struct pg **out);
/* Frees everything; dirty pages not committed are dropped (the last commit is what counts).
   Waits for reads still in flight; no fiber may be waiting in pg_pin (asserted). NULL is a
   no-op. */
void pg_close(struct pg *p);

/* The current (last committed) superblock. Valid until the next pg_commit or pg_close. */
const struct layout_super *pg_super(const struct pg *p);

/* Pin page pgno for reading. Loads and verifies it when not resident (checksum, own pgno, known
   type, generation <= the current superblock's, or == current + 1 for a page spilled since the
   last commit; and type == want_type unless want_type is 0 or the page is dirty, since a dirty
   page's header is the caller's until commit; a spilled page's header is final and checked).
   When no frame is free or evictable, spills dirty pages first (see above; may park). *data
   points to page_size bytes, valid until pg_unpin; read-only unless the page is dirty
   (allocated by this transaction; pg_page_writable). Errors (then *fr and *data are NULL and
   nothing is pinned): JDB_EINVAL (pgno is a superblock slot or >= the page count), JDB_ECORRUPT,
   JDB_EIO (the read, or a spill write: the pg is then poisoned as by a failed commit),
   JDB_ENOMEM (no frame: see the frame states). */
int pg_pin(struct pg *p, uint64_t pgno, uint8_t want_type, struct pg_frame **fr,
           const void **data);
void pg_unpin(struct pg *p, struct pg_frame *fr);
/* The bytes of page pgno if it is resident or dirty, without pinning or loading it: NULL when it
   is not in memory or still loading (then use pg_pin). For short read-only looks that do not
   yield: the pointer is valid until the calling fiber parks or calls a pg function that may
   evict or drop pages (pg_pin, pg_alloc, pg_free, pg_commit, pg_reclaim, pg_close). Sets the
   page's CLOCK reference bit and counts a hit. The page was verified when it was loaded; the
   caller checks its type. */
const void *pg_peek(struct pg *p, uint64_t pgno);
/* Start loading into the CPU cache what pg_peek(pgno) reads first, its frame-table slot: a
   caller peeking many pages (bt_get_many) issues these for all of them before the peeks. */
void pg_peek_prefetch(const struct pg *p, uint64_t pgno);
/* Start reading pages that will be pinned soon (a writer walking a tree, a cursor's next
   leaves): for each pgno that is in range and not in memory, take a free or clean frame (never
   spilling, never waiting) and submit its read; then flush the submissions once. Nothing is
   pinned: the page becomes RESIDENT (and evictable) when the read completes, which happens while
   someone polls the ctx (a pin waiting for a page, the reactor). A failed or damaged read just
   releases the frame; the later pg_pin reads again and reports the error. Stops at the first
   pgno no frame is available for, and after a quarter of the frames. Returns how many reads
   were started. */
size_t pg_prefetch(struct pg *p, const uint64_t *pgnos, size_t n);
/* The page number a pinned frame holds. */
uint64_t pg_frame_pgno(const struct pg_frame *fr);

/* A new page for the state being built: from the reusable free list (lowest page numbers first
   after open), else the end of the file. Returned pinned and dirty, zero-filled; the caller
   writes header fields type, level, count, flags, aux (pg_page_set_hdr; pg fills pgno, generation
   and checksum when it writes the page) and the body, before it unpins the page (from then on
   pg may spill it). When no frame is free or evictable it spills a batch of dirty pages first:
   then it does I/O and parks the fiber (blocks outside one), and may call malloc (to grow the
   set of spilled pages); otherwise it never calls malloc. Errors (outputs NULL / 0): JDB_ENOMEM
   (every frame pinned or loading, or the spilled set cannot grow), JDB_EBUSY (a commit is in
   progress), JDB_EIO (a commit or spill failed: the pg must be reopened; the failing spill
   itself returns its own error, JDB_EIO or JDB_ENOSPC), JDB_ENOSPC (2^40 pages). */
int pg_alloc(struct pg *p, uint64_t *pgno, struct pg_frame **fr, void **data);
/* Writable pointer of a pinned frame that belongs to the state being built (a page from
   pg_alloc; a spilled one becomes dirty again and is rewritten by the commit); JDB_EINVAL for a
   page of a committed state (copy-on-write is the caller's job) or while a commit is in
   progress (the page is being written). If another fiber's spill is writing this very page,
   waits for it (parks). */
int pg_page_writable(struct pg *p, struct pg_frame *fr, void **data);
/* Write the caller's header fields (type, level, count, flags, aux; pgno and generation are
   ignored) into a dirty page's first 32 bytes. pg_commit checks them (type BRANCH, LEAF or
   OVERFLOW, level consistent with it, count <= page size) before writing anything. */
void pg_page_set_hdr(void *data, const struct layout_page_hdr *h);

/* The state being built no longer references pgno (2 <= pgno < page count, not already free;
   asserted where cheap). A page of a committed state joins the pending free list; a page
   allocated by the state being built (dirty, or spilled: resident or not) is dropped and
   reusable at once. Never parks. After a failed commit or spill this is a no-op. */
void pg_free(struct pg *p, uint64_t pgno);

/* Make the state being built durable: write all dirty pages and the free list (batched, direct
   I/O), fdatasync (also when only spilled pages need it), then the superblock `next` to the
   other slot, fdatasync. Waits first for a spill another fiber has in flight. From `next` pg takes
   tree_root, catalog_root, dir_root, seq_max and replay_pos; it sets generation (current + 1),
   page count and free-list root and keeps the rest (format, shard, creation time). Errors before
   any I/O leave the pg usable: JDB_EINVAL (a root that is not 0 or in [2, page count), a
   replay_pos that is not a record position, a dirty page with a bad header), JDB_ENOMEM,
   JDB_EBUSY (a commit is already in progress). An I/O error (JDB_EIO, JDB_ENOSPC, ...) means
   nothing of the new state is visible after reopen (if the superblock write itself failed, pg
   rewrites the slot's previous contents, best effort; should that fail too, a reopen may see the
   new state, which is then whole), and the pg refuses further commits and allocations (JDB_EIO)
   until reopened; pins of committed pages keep working. */
int pg_commit(struct pg *p, const struct layout_super *next);

/* Readers: the oldest superblock generation any reader still uses (the current generation when
   there is none; larger values are clamped to it). Pages freed by commits at or before it become
   reusable. Never calls malloc; callable at any time. */
void pg_reclaim(struct pg *p, uint64_t oldest_reader_generation);

struct pg_stats {
  uint64_t hits, misses, reads, writes, evictions, read_waits_joined;
  uint64_t prefetches;      /* reads started by pg_prefetch (also counted in reads) */
  /* hits: pins that found the page resident or dirty; misses: pins that did not (each either
     issued a read, counted in reads, or joined one in flight, counted in read_waits_joined);
     writes: pages written by commits (data, free-list and superblock pages) and spills;
     write_ops: the write operations that took (a commit writes a run of consecutive pages as
     one). */
  uint64_t write_ops;
  uint64_t dropped_on_free; /* cached copies of committed pages dropped by pg_free */
  uint64_t prefault_grows;  /* times the prefault window doubled (use caught up with it) */
  uint64_t spills;          /* spill batches written (successful ones) */
  uint64_t spilled_pages;   /* pages they wrote */
  uint64_t corrupt;         /* pages that failed verification (or a want_type check) */
  uint32_t frames, pinned, dirty;   /* dirty: frames DIRTY now (spilled pages are not) */
  uint32_t frames_used;     /* frames that have held a page (the rest cost no memory yet) */
  uint64_t free_pages, pending_free_pages, page_count;
  /* free_pages: reusable now; pending_free_pages: freed, waiting for durability / readers;
     page_count: high-water mark of the state being built. */
  uint64_t commits;         /* successful pg_commit calls */
  uint32_t fixed_buffers;   /* 1 when the frames are registered with the ctx */
  uint32_t fixed_frames;    /* ... the frames registered so far (filled slots; grows with use) */
  uint32_t freelist_pages;  /* pages of the free list the current superblock references */
};
void pg_stats_get(const struct pg *p, struct pg_stats *out);

/* Walk every internal structure (hash table, frame lists, free lists, the set of spilled pages)
   and check it against the others: JDB_OK, or JDB_ECORRUPT with the broken invariant logged.
   O(frames + free pages + spilled pages), and allocates: for tests and JDB_DEBUG builds. */
int pg_check(const struct pg *p);

/* The frames' prefault window (pg_evict.c; here for its tests): frames [0, next) are populated
   or requested from the helper thread; requests run up to ahead frames past use. The last
   request began at start, ahead of use when it was issued (early); reached: use got into it
   while the helper still worked on it; streak: the one before was reached too. */
struct pg_pfwin {
  uint32_t next, start, ahead;
  int early, reached, streak;
};
/* Frame nused - 1 has just come into use (of nframes); busy: the last request is still with the
   helper. Returns how many frames to request at w->next now (0: none; the caller then advances
   w->next past them, or to nframes when it cannot). The window doubles (*grew = 1), up to max
   frames, when use reaches a request the helper has not finished that was issued ahead of use
   or follows another such (once per request). */
uint32_t pg_pfwin_step(struct pg_pfwin *w, uint32_t nused, uint32_t nframes, int busy,
                       uint32_t chunk, uint32_t max, int *grew);

#endif
