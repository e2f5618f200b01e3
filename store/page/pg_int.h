/*
 * pg_int.h - what the files of store/page share: the pg and frame structs, the frame table
 * (pg_evict.c), the free-page sets and the commit (pg_commit.c). Only store/page includes it.
 *
 * Files:
 *   pg.c         open/close, superblock slots, pin/unpin (the read path and its waits), alloc,
 *                free, stats, pg_check
 *   pg_evict.c   frames: the pgno hash table, the free-frame list, CLOCK eviction, the set of
 *                spilled page numbers
 *   pg_commit.c  the free-page sets, free-list pages (encode/load), spills, pg_commit, pg_reclaim
 */
#ifndef JDB_PG_INT_H
#define JDB_PG_INT_H

#include "pg.h"

#include "fs.h"
#include "mem.h"

#include <stdint.h>

#define PG_PAGE LAYOUT_PAGE_SIZE
#define PG_FRAMES_DEF 1024u
#define PG_META_HUGE_MIN ((size_t)2 << 20)   /* a slot table this large goes on huge pages */
#define PG_SLOTS_FRAMES_INIT 1024u          /* frames the first slot table is sized for */
#define PG_FIXED_FRAMES_MAX (1u << 16)      /* frames registered as fixed buffers (256 MiB) */
#define PG_PREFAULT_FRAMES 4096u            /* frames prefaulted per request (16 MiB) */
#define PG_PREFAULT_FIRST 256u             /* ... at least, while the cache is small (1 MiB) */
#define PG_PREFAULT_AHEAD (4u * PG_PREFAULT_FRAMES)   /* how far ahead of use at first (64 MiB) */
#define PG_PREFAULT_AHEAD_MAX (32u * PG_PREFAULT_FRAMES)   /* ... growing to at most 512 MiB */
#define PG_FRAMES_MIN 16u
#define PG_FRAMES_MAX (1u << 26)            /* 256 GiB of frames */
#define PG_FIXED_CHUNK_FRAMES (1u << 12)    /* frames per registered buffer (16 MiB) */
#define PG_PAGE_COUNT_MAX (1ull << 40)      /* 4 EiB of pages: far beyond any file we write */
#define PG_SPILL_MIN 32u                    /* pages per spill batch: max(32, frames / 8) ... */
#define PG_SPILL_MAX 4096u                  /* ... at most 16 MiB, and never above the frames */

/* Free-list page body (docs/FORMAT.md "Free-list pages"): next pgno, then count entries. */
#define PG_FL_OFF_NEXT LAYOUT_PAGE_HDR_SIZE
#define PG_FL_OFF_ENTRIES (LAYOUT_PAGE_HDR_SIZE + 8u)
#define PG_FL_PER_PAGE ((PG_PAGE - PG_FL_OFF_ENTRIES) / 8u)    /* 507 */

enum pg_frame_state {
  PG_FRAME_FREE = 0,       /* on the free-frame list, in no hash chain */
  PG_FRAME_LOADING = 1,    /* read in flight; in the hash; waiters queued on it */
  PG_FRAME_RESIDENT = 2,   /* verified copy of a committed page, or of a spilled page (one in
                              p->spilled: the state being built wrote it early); in the hash */
  PG_FRAME_DIRTY = 3,      /* page of the state being built; in the hash and the dirty list */
  PG_FRAME_ORPHAN = 4,     /* dropped dirty page still pinned; in no list; FREE at last unpin */
};

/* A pin waiting for a LOADING frame. Lives on the waiting fiber's (or blocking caller's) stack
   while it is linked into frame->waiters. */
struct pg_waiter {
  struct pg_waiter *next;
  struct coro *co;         /* the parked fiber, or NULL for a caller polling the ctx */
  int rc;                  /* result of the read, set with done */
  int done;
};

struct pg_frame {
  struct fs_op op;         /* its read while LOADING, its write during a commit */
  uint8_t *data;           /* PG_PAGE bytes in the arena; fixed for the frame's life */
  struct pg *pg;
  uint64_t pgno;
  uint32_t pins;
  uint32_t idx;            /* index in pg->frames */
  uint8_t state;           /* enum pg_frame_state */
  uint8_t in_spill;        /* DIRTY and in the spill batch being written (p->spilling) */
  struct pg_frame *lnext, *lprev;   /* free-frame list (lnext only) or dirty list */
  struct pg_waiter *waiters;
};

/* One entry of the pgno -> frame table: empty when pgno is 0 (never a frame's page). ready: the
   frame is RESIDENT or DIRTY (readable without waiting), so pg_peek needs no frame struct. */
struct pg_slot {
  uint64_t pgno;
  uint32_t idx;
  uint32_t ready;
};

/* A growable array of page numbers (free-page sets). */
struct pg_vec {
  uint64_t *v;
  size_t len, cap;
};

/* A set of page numbers (the spilled pages): open addressing, linear probing, 0 = empty slot,
   at most half full. */
struct pg_set {
  uint64_t *v;
  uint64_t mask;           /* capacity - 1 (capacity a power of two), or 0 with v NULL */
  size_t n;
};

/* A page freed by the commit of generation gen (durable once that commit is). */
struct pg_pending {
  uint64_t pgno;
  uint64_t gen;
};

struct pg {
  struct fs_ctx *ctx;
  struct fs_file *file;
  char *path;
  struct pg_opts opts;

  struct layout_super sb;          /* the current (durable) superblock */
  struct layout_super sb_other;    /* what the other slot holds (valid if sb_other_ok) */
  int sb_other_ok;
  uint64_t page_count;             /* high-water mark of the state being built */
  uint64_t file_bytes;             /* the file's size: grown ahead of page_count (pg_commit) */
  int poisoned;                    /* JDB_E* of the commit or spill that failed, or 0 */
  int committing;
  int spilling;                    /* a spill batch is being written (pg_spill) */

  /* Frames (pg_evict.c). */
  struct mem_arena arena;
  struct pg_frame *frames;
  uint32_t nframes;
  uint32_t hand;                   /* CLOCK hand */
  uint32_t nused;                  /* frames [0, nused) have been used; the rest are zeroes */
  uint32_t nfixed;                 /* frames [0, nfixed) are in registered buffers */
  uint32_t fixed_max;              /* ... up to fixed_max as the cache grows (slots reserved) */
  struct pg_pfwin pfw;             /* which frames are populated or being populated */
  struct mem_prefault pf;          /* the helper thread's request for the next frames */
  struct mem_arena meta;           /* the slot table's mapping when it is large, else empty */
  struct pg_slot *slots;           /* open-addressed pgno -> frame table (pg_evict.c), sized
                                      for at least twice nused */
  uint64_t slot_mask;
  uint8_t *refs;                   /* CLOCK reference bits, one byte per frame */
  struct pg_frame *free_frames;    /* FREE frames, through lnext */
  struct pg_frame dirty;           /* sentinel of the DIRTY list (lnext/lprev) */
  uint32_t ndirty;
  int fixed;                       /* frames registered as fixed buffers with the ctx */

  /* Spills (pg_commit.c). spilled: the pages of the state being built that a spill wrote and
     that are not dirty again nor freed since (each RESIDENT, LOADING or in no frame); emptied
     by every commit. spill_batch: room for one batch (spill_cap frames). spill_waiters: fibers
     waiting for the batch in flight to finish. spill_unsynced: a spill wrote pages since the
     last commit, whose fdatasync must cover them. */
  struct pg_set spilled;
  struct pg_frame **spill_batch;
  uint32_t spill_cap;
  struct pg_waiter *spill_waiters;
  int spill_unsynced;

  /* Free pages (pg_commit.c). ready: reusable now, popped from the end. pending: FIFO of pages
     freed by commits not yet reclaimable, generations nondecreasing from pend_head. chain: the
     free-list pages the current superblock references. The persisted free set is ready plus
     pending; fl_dirty says it changed since the current superblock. */
  struct pg_vec ready;
  struct pg_pending *pend;
  size_t pend_head, pend_len, pend_cap;   /* live entries are [pend_head, pend_len) */
  struct pg_vec chain;
  int fl_dirty;
  uint64_t leaked;                 /* freed pages dropped because memory ran out */

  /* Commit I/O: the superblock page, the syncs, the free-list pages being written. */
  uint8_t *sb_buf;
  struct fs_op sb_op, sb_sync_op, data_sync_op;
  uint8_t *fl_buf;                 /* fl_cap pages */
  struct fs_op *fl_ops;
  uint64_t *fl_pgnos;
  size_t fl_cap;

  struct pg_stats stats;
};

/* An op the backend still owns (its buffer is lent out). */
static inline int pg_op_busy(const struct fs_op *op)
{
  return op->state != FS_OP_IDLE && op->state != FS_OP_DONE;
}

/* pg.c */
/* fs_submit, falling back from fixed buffers if the ctx's registered set was replaced. */
int pg_op_submit(struct pg *p, struct fs_op *op);

/* pg_evict.c */
int pg_frames_init(struct pg *p);
void pg_frames_deinit(struct pg *p);
struct pg_frame *pg_hash_find(const struct pg *p, uint64_t pgno);
void pg_hash_insert(struct pg *p, struct pg_frame *f);
void pg_hash_remove(struct pg *p, struct pg_frame *f);
/* The frame of a hashed page finished loading (LOADING -> RESIDENT). */
void pg_hash_set_ready(struct pg *p, const struct pg_frame *f);
/* Entries in the table (for pg_check). */
uint64_t pg_hash_count(const struct pg *p);
/* Grow the hash table (rehashing) so that it is at most half full with this many frames
   hashed; JDB_ENOMEM leaves it as it was. */
int pg_slots_fit(struct pg *p, uint64_t frames);
/* A FREE frame (from the free list, else a frame never used while the budget has one, else by
   evicting an unpinned RESIDENT one), out of every list; NULL when none can be had. */
struct pg_frame *pg_frame_take(struct pg *p);
/* Back to FREE: out of the hash (if in it) and onto the free-frame list. */
void pg_frame_release(struct pg *p, struct pg_frame *f);
void pg_dirty_add(struct pg *p, struct pg_frame *f);
void pg_dirty_remove(struct pg *p, struct pg_frame *f);
/* Forget a clean cached copy of a page that is about to be rewritten (taken from the free list
   for a free-list page): release its frame if unpinned. */
void pg_frame_forget(struct pg *p, uint64_t pgno);
/* fixed_buf value for an op on this frame's data (0 when not registered). */
uint16_t pg_frame_fixed(const struct pg *p, const struct pg_frame *f);
/* The spilled set: membership, room for extra more entries (JDB_ENOMEM), insert (room
   reserved), remove (absent: no-op), empty it (keeping or dropping its memory), free it. */
int pg_set_has(const struct pg_set *s, uint64_t pgno);
int pg_set_reserve(struct pg_set *s, size_t extra);
void pg_set_insert(struct pg_set *s, uint64_t pgno);
void pg_set_remove(struct pg_set *s, uint64_t pgno);
void pg_set_clear(struct pg_set *s);
void pg_set_free(struct pg_set *s);

/* pg_commit.c */
int pg_vec_push(struct pg_vec *a, uint64_t x);
void pg_vec_free(struct pg_vec *a);
/* Append to ready / pending, keeping ready's capacity >= ready + pending (JDB_ENOMEM). */
int pg_ready_push(struct pg *p, uint64_t pgno);
int pg_pend_push(struct pg *p, uint64_t pgno, uint64_t gen);
/* Read and check the free list of p->sb into p->ready / p->chain. */
int pg_freelist_load(struct pg *p);
void pg_freelist_deinit(struct pg *p);
/* The header fields a page of the state being built must carry before it is written (type
   BRANCH, LEAF or OVERFLOW, level consistent with it, count <= page size). */
int pg_built_hdr_ok(const uint8_t *page);
/* Called when no frame is free or evictable: write a batch of unpinned dirty pages (pg_spill),
   or wait for the batch another fiber is writing. JDB_OK: try again (frames may be evictable
   now); JDB_ENOMEM: nothing to write or wait for; the error of a failed spill (the pg is then
   poisoned). May park the calling fiber (or block outside any fiber). */
int pg_make_room(struct pg *p);
/* Park the calling fiber until the spill in flight ends. JDB_EBUSY outside any fiber (a blocking
   caller cannot let the spilling fiber run). */
int pg_spill_wait(struct pg *p);

#endif
