/*
 * vlog.h - the value log: reading out-of-line values by reference, live-byte accounting per log
 * segment, and log GC (relocating live values out of old segments, then dropping them).
 *
 * The log (store/wal) is the value log: a value longer than the inline threshold is written once,
 * inside its BATCH record, and the index keeps a struct wal_vref {pos, len}: at log position pos
 * a u32 layout_cksum of the value, then len value bytes. vlog reads those bytes back, verified.
 *
 * One struct vlog per shard, next to its struct wal, used from the shard's thread only. Calls that
 * do I/O park the calling fiber (or block when called outside a fiber). Several fibers may read at
 * once; at most one GC runs at a time.
 *
 * GC and crash safety (see vlog.c for the full argument): GC only touches segments entirely before
 * the replay position of the newest durable checkpoint. Live values are re-appended as
 * LOG_REC_MOVE records (format in vlog.c and docs/FORMAT.md), which are made durable before the
 * caller hears of any new reference, and the old segment is dropped only after that. Recovery
 * replays MOVE records (they lie after the replay position) and applies them with
 * vlog_move_decode: "if (table, key, seq) still points at old_ref, point it at new_ref".
 *
 * Segment files are opened read-only by vlog itself (<dir>/NNNNNNNN.log, the wal's naming); drop
 * segments through vlog_segment_drop, not wal_segment_drop, so vlog closes its handles, forgets the
 * segment's accounting and its read-ahead window.
 */
#ifndef JDB_VLOG_H
#define JDB_VLOG_H

#include "fs.h"
#include "wal.h"

#include <stddef.h>
#include <stdint.h>

struct vlog;

struct vlog_opts {
  uint32_t readahead_bytes;     /* read-ahead window (default 128 KiB; 4 KiB .. 16 MiB) */
  int readahead_off;            /* 1 = never read ahead */
  uint32_t move_record_bytes;   /* GC packs moved values into MOVE records of about this payload
                                   size (default 64 KiB; one bigger value gets its own record) */
};

/* Open the value log of a shard over its (replayed or not yet replayed) wal. dir is the directory
   given to wal_open (copied). Allocates the read-ahead window and the GC buffers; does no I/O.
   [in] ctx, w: borrowed, must outlive the vlog. [in] opts: NULL = defaults, copied.
   [out] *out: the vlog, or NULL on failure.
   Returns JDB_OK, JDB_EINVAL (NULL argument, empty dir, option out of range), JDB_ENOMEM. */
int vlog_open(struct fs_ctx *ctx, struct wal *w, const char *dir, const struct vlog_opts *opts,
              struct vlog **out);
/* Close segment handles and free. No read or GC may be running (asserted). NULL is a no-op. */
void vlog_close(struct vlog *v);

/* ---------------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------------- */

/* One value read. The caller owns it (an array of them for a batch) and fills ref and dst; the
   other fields are vlog's. It must stay in place, untouched, until the call that was given it
   returns. */
struct vlog_req {
  struct wal_vref ref;          /* [in] the reference (len 1 .. WAL_VAL_MAX) */
  void *dst;                    /* [in] ref.len bytes, written by the call */
  int result;                   /* [out] JDB_OK or the error for this ref */
  /* internal */
  uint8_t mode;
  uint8_t nsub;
  int8_t file;
  uint8_t ck[4];
  struct fs_op op_ck, op_val;
};

/* Read n values in one submission: every read is queued, then one fs_flush hands them to the
   kernel, then the call waits for all of them. Refs into bytes the wal has not yet written are
   copied from its buffers; refs inside the read-ahead window are copied from it; a run of
   increasing positions in one segment fills the window (one larger read) and later refs of the
   run are served from it. Each value's checksum is verified.
   [in,out] reqs: n caller-owned requests; each gets its own result; dst bytes are unspecified for
   a failed one.
   Returns JDB_OK when every read succeeded, else the first failing request's result:
   JDB_EINVAL (NULL v/reqs/dst, n == 0, len 0 or above WAL_VAL_MAX), JDB_ECORRUPT (checksum
   mismatch, reference outside its segment or past the log end, missing segment, short file),
   JDB_EIO / JDB_ENOMEM from the backend. Shard thread only; parks the fiber. */
int vlog_read_batch(struct vlog *v, struct vlog_req *reqs, size_t n);

/* Read one value: ref.len bytes into dst (vlog_read_batch with n = 1). Same errors. */
int vlog_read(struct vlog *v, struct wal_vref ref, void *dst);

/* ---------------------------------------------------------------------------------------------
 * Live-byte accounting, per segment. Kept in memory only: after a restart the engine rebuilds it
 * (add every reference its index holds). Counts are what callers report; vlog trusts them, except
 * that live counts never go below zero (vlog_stats.acct_underflows counts such reports).
 * ------------------------------------------------------------------------------------------- */

/* A value now referenced (written by a batch, or loaded from the index at recovery).
   JDB_OK, JDB_EINVAL (NULL v, ref.len 0, segment 0), JDB_ENOMEM. */
int vlog_account_add(struct vlog *v, struct wal_vref ref);
/* Many values of segment seg at once (an engine restoring counts it persisted): values values
   of bytes bytes in total. JDB_OK, JDB_EINVAL (NULL v, segment 0, only one of the counts zero, or
   fewer bytes than values), JDB_ENOMEM. */
int vlog_account_load(struct vlog *v, uint32_t seg, uint64_t values, uint64_t bytes);
/* A value no longer referenced (overwritten, deleted, out of retention). Same errors. */
int vlog_account_dead(struct vlog *v, struct wal_vref ref);

struct vlog_seg_info {
  uint32_t seg;
  uint64_t live_values, live_bytes;   /* added minus dead (value bytes, checksums excluded) */
  uint64_t dead_values, dead_bytes;   /* reported dead so far */
};
/* [out] *out: the counters of segment seg (zero when nothing was reported for it).
   JDB_OK, JDB_NOTFOUND (nothing reported for seg; *out zeroed), JDB_EINVAL (NULL argument). */
int vlog_account_get(const struct vlog *v, uint32_t seg, struct vlog_seg_info *out);

/* ---------------------------------------------------------------------------------------------
 * GC
 * ------------------------------------------------------------------------------------------- */

/* One out-of-line value found in a segment being collected. key and the struct are valid during
   the callback only. */
struct vlog_value {
  uint64_t table_id;
  uint64_t seq;                 /* the seq of the batch that wrote it */
  const uint8_t *key;
  uint32_t klen;
  struct wal_vref ref;          /* where it is now (inside the segment being collected) */
};
/* Is this value still referenced by the index (or by any snapshot that may still read it)?
   Return 1 (live: relocate it), 0 (dead), or a negative JDB_E* code to abort the GC. */
typedef int (*vlog_live_fn)(void *ud, const struct vlog_value *val);
/* The value now also lives at new_ref (durable). If the index still maps (table, key, seq) to
   val->ref, point it at new_ref and return 1; if it changed meanwhile (overwritten while GC ran),
   leave it and return 0. A negative JDB_E* code aborts the GC (the segment is then kept). vlog
   accounts new_ref itself when 1 is returned: do not report it again. */
typedef int (*vlog_moved_fn)(void *ud, const struct vlog_value *val, struct wal_vref new_ref);

struct vlog_gc_args {
  uint64_t replay_pos;          /* replay position of the newest DURABLE checkpoint: only
                                   segments entirely before its segment are collected */
  uint32_t max_segments;        /* collect at most this many (0 = 1) */
  uint64_t max_live_bytes;      /* skip segments with more live bytes than this (UINT64_MAX:
                                   no limit; 0: only segments with nothing live) */
  vlog_live_fn live;
  vlog_moved_fn moved;
  void *ud;
};

struct vlog_gc_result {
  uint32_t segments_dropped;
  uint64_t values_checked;      /* out-of-line values found in the walked segments */
  uint64_t values_moved;        /* moves the caller applied (moved returned 1) */
  uint64_t values_rejected;     /* moves the caller refused (moved returned 0) */
  uint64_t bytes_moved;         /* value bytes re-appended */
};

/* The segments GC would pick, best first: existing segments below both the current segment and
   the segment of replay_pos, with at most max_live_bytes live, by live bytes ascending (older
   first on ties). Segments nothing was reported for count as empty.
   [out] segs: up to cap numbers; [out] *count: how many qualify (may exceed cap).
   JDB_OK, JDB_EINVAL (NULL v/count, segs NULL with cap > 0, replay_pos past the append
   position), JDB_ENOMEM. */
int vlog_gc_pick(struct vlog *v, uint64_t replay_pos, uint64_t max_live_bytes, uint32_t *segs,
                 size_t cap, size_t *count);

/* Collect up to max_segments segments chosen as vlog_gc_pick does. For each: walk every record
   (BATCH ops with out-of-line values, earlier MOVE records' values), ask live() for each value,
   append the live ones as MOVE records, wal_sync, report each through moved(), then drop the
   segment (vlog_segment_drop). A segment that fails its walk (a damaged record: JDB_ECORRUPT) or
   whose callbacks fail is kept and the error returned; segments collected before it stay dropped.
   A crash at any point loses nothing, provided the caller
     - passes the replay position of its newest durable checkpoint, and
     - never makes durable a checkpoint whose replay position is above vlog_gc_replay_cap()
       (MOVE records appended but not yet reported through moved()).
   [in] args: borrowed for the call. [out] res: may be NULL; filled even on failure.
   Returns JDB_OK, JDB_EINVAL (NULL v/args/callbacks, replay_pos past the append position),
   JDB_EBUSY (a GC is already running), JDB_ECORRUPT, JDB_EIO / JDB_ENOSPC (the wal's poison),
   JDB_ENOMEM, or a callback's negative code. Shard thread only; parks the fiber. */
int vlog_gc(struct vlog *v, const struct vlog_gc_args *args, struct vlog_gc_result *res);

/* The highest replay position a checkpoint may be made durable with right now: the position of
   the oldest MOVE record of the running GC whose moves were not yet reported, or UINT64_MAX when
   there is none. */
uint64_t vlog_gc_replay_cap(const struct vlog *v);

/* Drop a whole segment (older than the current one): close vlog's handles on it, forget its
   accounting and read-ahead window, then wal_segment_drop. Use it instead of wal_segment_drop.
   JDB_OK, JDB_EINVAL (current segment or later), JDB_NOTFOUND, JDB_EIO. */
int vlog_segment_drop(struct vlog *v, uint32_t seg);

/* ---------------------------------------------------------------------------------------------
 * MOVE records at recovery
 * ------------------------------------------------------------------------------------------- */

/* One relocated value of a MOVE record. Pointers are valid during the callback only. */
struct vlog_move_entry {
  uint64_t table_id;
  uint64_t seq;
  const uint8_t *key;
  uint32_t klen;
  struct wal_vref old_ref;      /* where the value was */
  struct wal_vref new_ref;      /* where it is now: inside this MOVE record */
  const uint8_t *val;           /* the value bytes (checksum verified), new_ref.len of them */
};
/* Return 0 to go on, non-zero (returned by vlog_move_decode) to stop. */
typedef int (*vlog_move_fn)(void *ud, const struct vlog_move_entry *e);

/* Decode a MOVE record as wal_replay yields it (untrusted bytes: the whole payload is checked
   first, so on JDB_ECORRUPT fn was never called), then call fn for each entry in order. An engine
   applies each entry as "if (table_id, key, seq) maps to old_ref, map it to new_ref".
   Returns JDB_OK, JDB_EINVAL (NULL rec/fn, rec not a MOVE record), JDB_ECORRUPT, or fn's
   non-zero value. Any thread (touches nothing but its arguments). */
int vlog_move_decode(const struct wal_rec *rec, vlog_move_fn fn, void *ud);

/* ---------------------------------------------------------------------------------------------
 * Statistics (since vlog_open)
 * ------------------------------------------------------------------------------------------- */
struct vlog_stats {
  uint64_t reads;               /* references read (each request of a batch counts) */
  uint64_t read_bytes;          /* value bytes returned */
  uint64_t mem_reads;           /* served from the wal's append buffers */
  uint64_t ra_hits;             /* served from the read-ahead window */
  uint64_t ra_fills;            /* read-ahead window reads issued */
  uint64_t direct_reads;        /* read with their own I/O (checksum + value) */
  uint64_t batches;             /* vlog_read_batch calls that submitted I/O */
  uint64_t corrupt;             /* references that failed a check */
  uint64_t acct_underflows;     /* dead reports larger than what was live */
  uint64_t gc_runs;
  uint64_t gc_segments_dropped;
  uint64_t gc_values_checked;
  uint64_t gc_values_moved;
  uint64_t gc_values_rejected;
  uint64_t gc_bytes_moved;
  uint64_t gc_move_records;
};
void vlog_stats_get(const struct vlog *v, struct vlog_stats *out);

#endif
