/*
 * tab.h - the tablet: one shard's whole database (ARCHITECTURE.md §2-§3). Log (store/wal, which
 * is also the value log), value reads and live-byte accounting (store/vlog), pages (store/page),
 * one copy-on-write B+ tree (index/btree) holding every table, a memtable in front of it
 * (engine/tablet/mt.h), MVCC snapshots, the table catalog, checkpoints and recovery.
 *
 * Files under dir: "pages" (superblocks + tree pages) and "log/" (segments).
 *
 * Keys. Everything lives in one tree under composite keys
 *     table id (8 bytes, big-endian) ‖ space (1 byte) ‖ key
 * Table 0 is the catalog (names, the id counter, pending drops); user tables get ids from
 * TAB_ID_FIRST on and store their keys in space TAB_SPACE_KV. The log stores per record the table
 * id once and per op space ‖ key.
 *
 * Writes. tab_write gives a batch of one table the next seq and the commit time, appends it to
 * the log as one record (values above inline_max go out of line and are referenced, never copied
 * again), applies it to the active memtable and then waits for the durability its flags ask
 * (default: handed to the kernel = survives kill -9; TAB_SYNC: fdatasync'd = survives power loss;
 * TAB_NOWAIT: not waited for, see tab_flush). When the active memtable passes memtable_bytes it is
 * frozen and checkpointed: its entries (and the deletions of dropped tables' data) are applied to
 * the tree in one sorted run, the pages written, and one superblock names the new root, the
 * highest seq and the log replay position (the first record not in the tree). Then log segments
 * before the replay position that hold no live value are released.
 *
 * Reads see, per key, the newest version with seq <= the snapshot's seq; a tombstone hides older
 * versions. A snapshot (and an iterator) holds the sources that were current when it was taken:
 * the active and frozen memtables (which only gain newer seqs) and the committed tree root (kept
 * alive, with every page it reaches, until the last holder lets go).
 *
 * Recovery (tab_open): the newest valid superblock, then every log record from its replay
 * position is applied to the memtable, once. What is visible after reopen is always a prefix of
 * the acknowledged history.
 *
 * Threading: one shard thread. Calls that do I/O park the calling fiber, or block outside a fiber.
 * A checkpoint started from a fiber runs in its own fiber while other fibers go on reading and
 * writing; started outside any fiber it runs inline.
 *
 * Errors: JDB_EINVAL for bad arguments (sizes, NULLs, unknown or reserved table ids),
 * JDB_ECORRUPT from the call that meets damaged pages or log records, JDB_EIO / JDB_ENOSPC when
 * the disk fails: after a failed log or checkpoint write the tablet refuses later writes with
 * JDB_EREADONLY (the call that met the failure returned the disk's code; tab_flush and
 * tab_checkpoint keep returning it) and reads go on, until it is closed and reopened.
 */
#ifndef JDB_TAB_H
#define JDB_TAB_H

#include <stddef.h>
#include <stdint.h>

struct fs_ctx;
struct tab;
struct tab_snap;
struct tab_iter;

#define TAB_KEY_MAX 1024u              /* user keys: 1 .. 1024 bytes */
#define TAB_VAL_MAX (64u << 20)        /* values: 0 .. 64 MiB */
#define TAB_NAME_MAX 1024u             /* table names: 1 .. 1024 bytes */
#define TAB_ID_FIRST 16u               /* ids below are reserved (0 = the catalog) */
#define TAB_PREFIX_LEN 9u              /* table id (8, big-endian) + space (1) */

/* Spaces inside a table. */
enum {
  TAB_SPACE_KV = 0x10,                 /* user keys */
};

struct tab_opts {
  uint64_t memtable_bytes;    /* freeze and checkpoint past this (default 64 MiB, >= 1 MiB) */
  uint32_t cache_frames;      /* page cache, 4 KiB frames (default 16384 = 64 MiB, >= 64) */
  uint32_t inline_max;        /* values longer than this are referenced in the log (default 256,
                                 at most 512) */
  uint64_t segment_bytes;     /* log segment size (default 64 MiB) */
  uint64_t history_seconds;   /* keep overwritten versions this long (default 0) */
  int create_if_missing;
  int pages_buffered;         /* 1: pages through the page cache (default: O_DIRECT), and no
                                 log flush with O_DIRECT either (wal_opts.direct_min) */
  int read_only;              /* 1: never create anything; writes, table creation and drops,
                                 checkpoints give JDB_EREADONLY; close does not checkpoint.
                                 Recovery reads the log without repairing it (wal_opts.read_only:
                                 a torn tail stays for the next writable open); nothing is
                                 written, and the files are opened read-only */
};

/* Open (or create, with create_if_missing and not read_only) the tablet in dir and recover it.
   [in] ctx: the I/O context, borrowed (must outlive the tablet). [in] opts: NULL = defaults.
   JDB_OK, JDB_EINVAL, JDB_NOTFOUND (missing and !create_if_missing), JDB_ECORRUPT (damage that
   is not a torn log tail), JDB_EVERSION, JDB_EIO, JDB_ENOMEM. *out is NULL on failure. */
int tab_open(struct fs_ctx *ctx, const char *dir, const struct tab_opts *opts, struct tab **out);
/* Checkpoint what the memtables hold (unless the tablet refuses writes or is read-only), close
   files and free.
   Snapshots and iterators must have been released (asserted). Called outside any fiber while a
   background checkpoint fiber runs, it drives that fiber's scheduler and the I/O until the
   checkpoint ends. Returns the checkpoint's error, if any: the log still has everything written,
   so nothing acknowledged is lost. JDB_EBUSY (tablet left open) only if a checkpoint fiber can
   make no progress. */
int tab_close(struct tab *t);

/* ---------------------------------------------------------------------------------------------
 * Tables
 * ------------------------------------------------------------------------------------------- */

/* Create table `name`: JDB_OK with *id, JDB_EEXIST (then *id is the existing table's id),
   JDB_EINVAL (name NULL or length not 1 .. TAB_NAME_MAX), JDB_EREADONLY (a new name on a
   read-only tablet). The catalog change is a logged batch
   with the same durability as a put (TAB_SYNC in flags for power-loss durability). */
int tab_table_create(struct tab *t, const void *name, size_t nlen, unsigned flags, uint64_t *id);
/* Find table `name`: JDB_OK with *id, JDB_NOTFOUND, JDB_EINVAL. */
int tab_table_find(struct tab *t, const void *name, size_t nlen, uint64_t *id);
/* 1 when id names a table that exists now (given by this tablet and not dropped), else 0. Reads
   of a dropped id still see its data until checkpoints erase it: callers that want "the table is
   gone" semantics at once (the C API) check this first. Never parks. */
int tab_table_live(const struct tab *t, uint64_t id);
/* Drop table `name`: its name goes at once; its data is removed by later checkpoints (space is
   reclaimed then). Writes to its id afterwards are JDB_EINVAL. JDB_OK, JDB_NOTFOUND, JDB_EINVAL,
   JDB_EREADONLY. */
int tab_table_drop(struct tab *t, const void *name, size_t nlen, unsigned flags);
/* Call fn for every table whose name is >= start (start NULL: from the first), in name order
   (bytewise), until fn returns non-zero (returned) or the names run out (JDB_OK). */
typedef int (*tab_name_fn)(void *ud, const void *name, size_t nlen, uint64_t id);
int tab_table_list(struct tab *t, const void *start, size_t slen, tab_name_fn fn, void *ud);

/* ---------------------------------------------------------------------------------------------
 * Writes
 * ------------------------------------------------------------------------------------------- */

enum { TAB_PUT = 1, TAB_DEL = 2 };
enum {
  TAB_SYNC = 1,      /* wait until the batch is durable (survives power loss) */
  TAB_NOWAIT = 2,    /* return once applied; the log is written by a later wait or tab_flush */
};

struct tab_op {
  uint8_t kind;      /* TAB_PUT / TAB_DEL */
  const void *key;
  uint32_t klen;     /* 1 .. TAB_KEY_MAX */
  const void *val;   /* PUT: vlen bytes (NULL allowed when vlen is 0) */
  uint32_t vlen;     /* 0 .. TAB_VAL_MAX */
};

/* Write one atomic batch (1 .. 2^20 ops; a later op on the same key wins) to table id.
   [out] seq: the batch's seq (may be NULL). JDB_OK, JDB_EINVAL (sizes, unknown or dropped table,
   reserved id), JDB_EREADONLY, JDB_ENOMEM, JDB_EIO / JDB_ENOSPC (the log failed: the tablet
   refuses writes). */
int tab_write(struct tab *t, uint64_t table, const struct tab_op *ops, uint32_t n,
              unsigned flags, uint64_t *seq);
/* Everything written so far durable. JDB_OK or the log's error (read-only: JDB_OK). */
int tab_flush(struct tab *t);
/* Freeze the active memtable (when not empty) and checkpoint it now; waits for it.
   JDB_EREADONLY on a read-only tablet. */
int tab_checkpoint(struct tab *t);

/* ---------------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------------- */

/* A snapshot of the whole tablet at the current seq. JDB_OK or JDB_ENOMEM. */
int tab_snapshot(struct tab *t, struct tab_snap **out);
uint64_t tab_snapshot_seq(const struct tab_snap *s);
void tab_snapshot_release(struct tab_snap *s);      /* NULL is a no-op */

/* The value of key in table at snap (NULL: now). [out] *val: mem_malloc'd copy (free with
   mem_free; a 0-byte value gives a non-NULL pointer), *vlen. JDB_OK, JDB_NOTFOUND (absent or
   deleted), JDB_EINVAL (bad arguments, a reserved id or one never given), JDB_ECORRUPT, JDB_EIO,
   JDB_ENOMEM. */
int tab_get(struct tab *t, const struct tab_snap *snap, uint64_t table, const void *key,
            uint32_t klen, void **val, size_t *vlen);

/* Many tab_get of one table at one snapshot (NULL: now, the same instant for all): each
   request's rc, val and vlen as tab_get gives them (val mem_malloc'd, NULL unless JDB_OK).
   Faster than the single calls: the lookups run in groups whose cache misses overlap (the
   memtables' hash slots, then the B+ tree a level at a time; bt_get_many). JDB_OK when every
   request ran (each has its own rc), JDB_EINVAL (t, table or snap bad; no request ran: each rc
   is JDB_EINVAL), JDB_ENOMEM (no request ran: each rc is JDB_ENOMEM). */
struct tab_get_req {
  const void *key;
  uint32_t klen;
  int rc;
  void *val;
  size_t vlen;
};
int tab_get_many(struct tab *t, const struct tab_snap *snap, uint64_t table,
                 struct tab_get_req *r, size_t n);

/* Iterator over the live keys of one table at a snapshot (NULL: a snapshot taken now, held by
   the iterator). Positioned calls: JDB_OK, JDB_NOTFOUND (ran off the table; unpositioned), or an
   error (unpositioned). Key and value pointers stay valid until the next move or close. */
int tab_iter_open(struct tab *t, const struct tab_snap *snap, uint64_t table,
                  struct tab_iter **out);
int tab_iter_first(struct tab_iter *it);
int tab_iter_last(struct tab_iter *it);
int tab_iter_seek(struct tab_iter *it, const void *key, uint32_t klen);      /* first >= key */
int tab_iter_seek_prev(struct tab_iter *it, const void *key, uint32_t klen); /* last <= key */
int tab_iter_next(struct tab_iter *it);
int tab_iter_prev(struct tab_iter *it);
/* JDB_EINVAL when unpositioned. The value is read from the log on first use when it is stored
   out of line (JDB_ECORRUPT / JDB_EIO then). */
int tab_iter_key(struct tab_iter *it, const void **key, size_t *klen);
int tab_iter_value(struct tab_iter *it, const void **val, size_t *vlen);
void tab_iter_close(struct tab_iter *it);           /* NULL is a no-op */

/* ---------------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------------- */
struct tab_stats {
  uint64_t seq;                   /* last seq given */
  uint64_t writes, ops;           /* batches and ops written since open */
  uint64_t replayed_records;      /* log records applied by recovery */
  uint64_t checkpoints;
  uint64_t mt_bytes, mt_entries;  /* active memtable */
  uint64_t frozen_bytes;          /* frozen memtable (0 when none) */
  uint64_t tree_root, generation;
  uint64_t segments_released;     /* log segments dropped after checkpoints */
  uint64_t versions_pruned;       /* versions dropped by checkpoints */
  uint64_t drop_entries_erased;   /* tree entries of dropped tables removed */
  uint64_t gc_segments;           /* log segments collected by GC (live values moved) */
  uint64_t gc_values_moved;
  uint64_t moves_replayed;        /* GC moves applied again by recovery */
  uint64_t snapshots;             /* live snapshots and iterators */
  uint64_t ckpt_running;          /* 1 while a checkpoint (merge, release, log GC) runs */
  /* The log since open (wal_stats): bytes written, segments created (zero-filled, or of them
     allocated: space reserved only) and the zeros that took, segments reused from dropped ones
     (no preparation). */
  uint64_t log_bytes_written, log_segments_created, log_bytes_prepared, log_segments_reused;
  uint64_t log_segments_allocated;
  uint64_t log_writes, log_writes_direct;   /* log writes, and of them with O_DIRECT */
};
void tab_stats_get(const struct tab *t, struct tab_stats *out);

/* Sizes and page-cache counters (jdb_stats). */
struct tab_io_stats {
  uint64_t cache_frames;          /* page cache budget, 4 KiB frames */
  uint64_t cache_frames_used;     /* frames that have held a page (the memory the cache takes) */
  uint64_t cache_hits, cache_misses;
  uint64_t page_file_bytes;       /* size of the pages file (stat(2)) */
  uint64_t log_segments;          /* log segment files */
  uint64_t log_bytes;             /* their sizes (one stat(2) each) */
};
/* JDB_OK, or JDB_EINVAL (NULL). Never parks. */
int tab_io_stats_get(struct tab *t, struct tab_io_stats *out);

/* Walk everything and check it (tests, `jdb check`): the tree (bt_check), pg's structures, and
   that the per-segment counts of out-of-line values the checkpoints persisted equal what the
   tree references. JDB_OK or JDB_ECORRUPT (logged). Reads the whole tree. */
int tab_check(struct tab *t);

/* What tab_verify read. Counts add up (callers may sum several tablets into one report). */
struct tab_verify_report {
  uint64_t pages_checked;         /* tree pages walked and verified (branches + leaves) */
  uint64_t entries_checked;       /* tree entries */
  uint64_t log_segments_checked;
  uint64_t log_records_checked;   /* every framed record: SEG, BATCH, MOVE, PAD */
  uint64_t log_bytes_checked;     /* their bytes, padding included */
  uint64_t log_values_checked;    /* ops of BATCH records and entries of MOVE records */
  uint64_t errors;                /* problems found, each logged at JDB_LOG_ERROR */
};
/* Verify the tablet while it runs (`jdb check`): the page cache's structures (pg_check), the
   committed tree (every page read and checked: checksums, format, key order, bt_check), the log
   accounting against the tree (as tab_check), and every log record of every segment on disk, read
   through its own read-only descriptor: framing, checksum, position, segment header and end, and
   every op of BATCH and MOVE records (out-of-line values' checksums included). The current
   segment is read up to the position the kernel had when the walk began.
   A view of the tablet is held for the whole walk: pages of the walked tree are not reused and no
   log segment is released or collected until it ends (checkpoints go on). Other fibers keep
   running whenever this one parks on I/O. Counts are added to *r (not zeroed first).
   Returns JDB_OK, JDB_ECORRUPT (r->errors > 0), JDB_EIO, JDB_ENOMEM, JDB_EINVAL (NULL). */
int tab_verify(struct tab *t, struct tab_verify_report *r);

#endif
