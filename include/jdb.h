/*
 * jdb.h - the public C API of JDB, an embedded time-series and key-value storage kernel.
 *
 * This is the only header a program needs (link with `pkg-config --libs jdb`). Every function
 * returning int returns JDB_OK (0) or a negative JDB_E* code; jdb_strerror() names it. Nothing
 * in the library aborts the host process on bad input or bad disk data.
 *
 * Functions appear here as their layers land; see README.md for what is available in this build
 * and what still returns JDB_ENOTSUP.
 */
#ifndef JDB_H
#define JDB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define JDB_API __attribute__((visibility("default")))
#else
#define JDB_API
#endif

#define JDB_VERSION_MAJOR 0
#define JDB_VERSION_MINOR 1
#define JDB_VERSION_PATCH 0
#define JDB_VERSION_STRING "0.1.0"

/* Error codes. Every public function returns one of these (0 or negative). */
enum {
  JDB_OK = 0,
  JDB_NOTFOUND   = -1,  /* no such key / table / version */
  JDB_EINVAL     = -2,  /* bad argument */
  JDB_ENOMEM     = -3,
  JDB_EIO        = -4,  /* the OS reported an I/O error */
  JDB_ENOSPC     = -5,
  JDB_ECORRUPT   = -6,  /* on-disk data failed a checksum or a format check */
  JDB_EEXIST     = -7,
  JDB_EBUSY      = -8,  /* directory in use by another process */
  JDB_EREADONLY  = -9,  /* opened read-only, or writes refused after an I/O error */
  JDB_ETRUNCATED = -10, /* watch: the requested seq is no longer retained */
  JDB_EAGAIN     = -11, /* watch: nothing new before the timeout */
  JDB_EVERSION   = -12, /* on-disk format from an incompatible version */
  JDB_ECLOSED    = -13, /* instance is closing */
  JDB_ENOTSUP    = -14  /* not supported (yet) by this build or this table */
};

/**
 * Describe an error code.
 * @param[in] code  any int; JDB_OK, a JDB_E* code, or anything else.
 * @return a static string "JDB_ECORRUPT: on-disk data failed a checksum or format check" style;
 *         never NULL, never to be freed. Unknown codes give "JDB_E?: unknown error code".
 * Thread-safe.
 */
JDB_API const char *jdb_strerror(int code);

/**
 * The library's version, "MAJOR.MINOR.PATCH" (equal to JDB_VERSION_STRING of the header the
 * library was built with). Static string; thread-safe.
 */
JDB_API const char *jdb_version(void);

/* I/O backends (jdb_options_t.io_backend). AUTO: io_uring when the kernel allows it, else psync.
   The environment variable JDB_IO=psync|uring overrides AUTO (for tests and locked-down hosts). */
enum { JDB_IO_AUTO = 0, JDB_IO_URING = 1, JDB_IO_PSYNC = 2 };
/* Direct I/O (jdb_options_t.direct_io). AUTO: O_DIRECT, falling back to buffered I/O + fdatasync
   on file systems that refuse it (tmpfs), logged once. ON: fail with JDB_ENOTSUP instead. */
enum { JDB_DIRECT_AUTO = 0, JDB_DIRECT_ON = 1, JDB_DIRECT_OFF = 2 };

/* Options of jdb_open. Versioned by struct_size: fields are only ever appended, and a caller
   built against an older header (a smaller struct_size) gets the defaults of the fields it does
   not know. Values out of range make jdb_open fail with JDB_EINVAL. */
typedef struct jdb_options {
  uint32_t struct_size;        /* set by jdb_options_init; lets the struct grow */
  uint32_t shards;             /* 0 = one per online CPU; fixed when the directory is created;
                                  at most JDB_SHARDS_MAX */
  int      pin_cores;          /* 1 = pin shard threads (default 1) */
  int      create_if_missing;  /* default 1 */
  int      read_only;          /* default 0. 1: no write of any kind is accepted (JDB_EREADONLY),
                                  nothing is created, close does not checkpoint; several
                                  read-only opens may share a directory no writer has open.
                                  Recovery replays the log without repairing it: nothing is
                                  written (a torn tail after a crash stays for the next
                                  writable open to cut). Every file is opened read-only. */
  uint64_t cache_bytes;        /* buffer pool, whole instance (0 = default: a quarter of the
                                  memory the process may use, physical or its cgroup's limit,
                                  at least 64 MiB). Each shard gets cache_bytes / shards, at
                                  least 256 KiB. The pool takes memory as pages fill it (up
                                  to 256 MiB per shard is committed at open where io_uring
                                  registers it as fixed buffers), never more than this */
  uint64_t memtable_bytes;     /* per shard, before a checkpoint (default 64 MiB; 0 = default;
                                  else at least 1 MiB) */
  uint32_t inline_value_max;   /* values up to this size live in B+ tree leaves (default 256;
                                  0 = default; at most 512); longer ones stay in the log */
  uint64_t history_seconds;    /* keep overwritten versions this long (default 0) */
  int      io_backend;         /* JDB_IO_AUTO, JDB_IO_URING, JDB_IO_PSYNC */
  int      direct_io;          /* JDB_DIRECT_AUTO, JDB_DIRECT_ON, JDB_DIRECT_OFF: the pages file;
                                  and the log's large flushes (128 KiB and more; smaller ones
                                  always go through the page cache), which OFF writes through
                                  the page cache too */
} jdb_options_t;

/**
 * Fill *o with the defaults above and set o->struct_size. Call it before setting any field.
 * @param[out] o  options to initialise; NULL is ignored.
 */
JDB_API void jdb_options_init(jdb_options_t *o);

/* Log levels for jdb_log_set(). */
enum { JDB_LOG_OFF = 0, JDB_LOG_ERROR = 1, JDB_LOG_WARN = 2, JDB_LOG_INFO = 3, JDB_LOG_DEBUG = 4 };
typedef void (*jdb_log_fn)(void *ud, int level, const char *msg);

/**
 * Route the library's log lines (process-wide). By default lines at JDB_LOG_WARN and above go to
 * stderr; the environment variable JDB_LOG=off|error|warn|info|debug changes the default level.
 * @param[in] fn     callback, or NULL for stderr. Called from any JDB thread; must not call JDB.
 * @param[in] ud     passed to fn unchanged.
 * @param[in] level  lines above this level are dropped (JDB_LOG_OFF drops all).
 */
JDB_API void jdb_log_set(jdb_log_fn fn, void *ud, int level);

/* =============================================================================================
 * Limits. Beyond them a call returns JDB_EINVAL.
 * =========================================================================================== */
#define JDB_KEY_MAX   1024u              /* keys: 1 .. 1024 bytes */
#define JDB_VALUE_MAX (64u << 20)        /* values: 0 .. 64 MiB */
#define JDB_NAME_MAX  1024u              /* table names: 1 .. 1024 bytes */
#define JDB_BATCH_MAX (1u << 20)         /* operations in one batch */
#define JDB_BATCH_BYTES_MAX (255u << 20) /* one batch's keys and values, plus 16 bytes per
                                            operation (one log record holds the whole batch) */
#define JDB_SHARDS_MAX 256u

/* =============================================================================================
 * Instance
 * =========================================================================================== */
typedef struct jdb_db jdb_t;

/**
 * Open (or create) the database in directory `path`.
 *
 * One thread per shard starts, pinned to a core when opts->pin_cores; each recovers its shard
 * from its log. The shard count is fixed when the directory is created (opts->shards, 0 = the
 * number of online CPUs) and read back from the directory afterwards (opts->shards is then
 * ignored). opts->cache_bytes is divided evenly between the shards.
 *
 * @param[in]  path  directory; created (not its parents) when missing and create_if_missing
 *                   (never when read_only).
 * @param[in]  opts  NULL for defaults (see jdb_options_init); struct_size must be set. Read
 *                   during the call only.
 * @param[out] out   the instance, or NULL on failure.
 * @return JDB_OK; JDB_EINVAL (NULL or empty path, NULL out, an option out of range,
 *         struct_size 0, smaller than the first published jdb_options_t or larger than this
 *         header's); JDB_NOTFOUND (missing, and !create_if_missing or read_only); JDB_EBUSY
 *         (the directory is open in another process or already in this one, except read-only
 *         opens of a directory no writer has open); JDB_EVERSION; JDB_ECORRUPT; JDB_EIO;
 *         JDB_ENOSPC; JDB_ENOMEM; JDB_ENOTSUP (io_backend/direct_io asked for something this
 *         kernel or file system refuses).
 * Thread-safe. The returned handle may be used from any number of threads; release it with
 * jdb_close.
 */
JDB_API int jdb_open(const char *path, const jdb_options_t *opts, jdb_t **out);

/**
 * Close the instance: calls in flight finish, new calls (racing with close) get JDB_ECLOSED,
 * every shard checkpoints its memtable (not when read-only), threads stop, all memory the
 * instance holds is released.
 *
 * Handles: table handles, batches and pipes are the caller's to free, before or after close.
 * Snapshots and iterators still open are released by close on their shards; their handles then
 * hold only their own memory: every call through them returns JDB_ECLOSED, and
 * jdb_snapshot_release / jdb_iter_close free them (call those before or after close, as for
 * any handle). Nothing leaks and nothing crashes as long as no call on this instance starts
 * after jdb_close has returned (the handle is freed then).
 * @param[in] db  the instance; NULL is a no-op returning JDB_OK. Invalid afterwards.
 * @return JDB_OK, or the first error a shard met while checkpointing (acknowledged writes are
 *         safe in the log either way; the instance is closed regardless).
 * Call it once, from any thread.
 */
JDB_API int jdb_close(jdb_t *db);

/**
 * Make every write acknowledged so far durable (survives power loss) on every shard: one
 * fdatasync per shard with unsynced writes, run on all shards at once.
 * @return JDB_OK (also on a read-only instance); JDB_EINVAL (NULL); JDB_ECLOSED; JDB_EIO /
 *         JDB_ENOSPC (a shard's log failed).
 * Thread-safe.
 */
JDB_API int jdb_flush(jdb_t *db);

/**
 * Force every shard's memtable into its B+ tree now and wait for it (all shards at once).
 * @return JDB_OK; JDB_EINVAL (NULL); JDB_ECLOSED; JDB_EREADONLY (read-only instance); JDB_EIO;
 *         JDB_ENOSPC; JDB_ENOMEM; JDB_ECORRUPT.
 * Thread-safe.
 */
JDB_API int jdb_checkpoint(jdb_t *db);

/* Instance counters (jdb_stats). Sizes in bytes; latencies in nanoseconds. */
typedef struct jdb_stats_s {
  uint32_t struct_size;        /* set by the caller to sizeof(jdb_stats_t) */
  uint32_t shards;             /* shards summed (1 when one shard was asked for) */
  uint64_t seq;                /* sum of the shards' last sequence numbers */
  uint64_t writes, ops;        /* write batches and operations since open */
  uint64_t checkpoints;
  uint64_t memtable_bytes;     /* active + frozen memtables */
  uint64_t page_file_bytes;    /* size of the page files */
  uint64_t log_bytes;          /* size of the log segments */
  uint64_t cache_bytes;        /* buffer pool size */
  uint64_t cache_hits, cache_misses;
  uint64_t io_reads, io_read_bytes, io_writes, io_write_bytes, io_syncs;
  uint64_t io_read_p50_ns, io_read_p99_ns, io_write_p50_ns, io_write_p99_ns;
  uint64_t io_sync_p50_ns, io_sync_p99_ns;  /* over the shards' merged histograms */
  uint64_t versions_pruned;    /* old versions dropped by checkpoints */
  uint64_t segments_released;  /* log segments freed (after checkpoints and by log GC) */
  uint64_t calls;              /* requests served by the shard threads */
  uint64_t snapshots;          /* live snapshots and iterators */
  uint64_t checkpoints_running;  /* shards running a checkpoint now (merge, log release, log GC) */
  uint64_t cache_used_bytes;   /* of cache_bytes, the frames that have held a page: the memory
                                  the buffer pool takes (it never shrinks while open) */
} jdb_stats_t;

/**
 * Read counters of one shard (shard = 0 .. shards-1) or the whole instance (shard = -1, the
 * shards' sums; latency quantiles over their merged histograms). Each shard is read by a call
 * on its thread, all at once: the figures of different shards are not from one instant.
 * @param[in,out] out  out->struct_size must be set (sizeof(jdb_stats_t) of the caller's
 *                     header); fields beyond it are not written. Unchanged on failure.
 * @return JDB_OK; JDB_EINVAL (NULL, shard out of range, struct_size smaller than the first
 *         published jdb_stats_t); JDB_ECLOSED; JDB_ENOMEM.
 * Thread-safe.
 */
JDB_API int jdb_stats(jdb_t *db, int shard, jdb_stats_t *out);

/* Result of jdb_check. */
typedef struct jdb_check_report {
  uint32_t struct_size;        /* set by the caller to sizeof(jdb_check_report_t) */
  uint32_t shards;
  uint64_t pages_checked;      /* tree pages read and verified (checksum, format, order) */
  uint64_t log_records_checked;/* log records read and verified (checksum, format) */
  uint64_t log_bytes_checked;
  uint64_t errors;             /* problems found (each is logged at JDB_LOG_ERROR) */
} jdb_check_report_t;

/**
 * Verify every shard, all at once: every page of the committed tree (checksum, format, key
 * order and the tree's invariants), the page cache's structures, the log-space accounting, and
 * every record of every log segment on disk (framing, checksum, position; every operation of
 * every batch, out-of-line values' checksums included), read through separate read-only
 * descriptors. The segment being written is read up to what the kernel had when the check
 * began. Reads the whole database (slow on big ones); other calls keep working meanwhile, but
 * no log segment is released until the check of its shard ends. A damaged page counts one
 * error and its subtree is skipped; the walk goes on with the rest of the tree (pages under a
 * damaged branch are not reached, so `errors` counts damaged subtrees, not pages).
 * @param[in,out] report  report->struct_size must be set; fields beyond it are not written.
 *                        Filled also when damage is found.
 * @return JDB_OK when nothing is wrong; JDB_ECORRUPT when something is (report->errors > 0,
 *         each problem logged at JDB_LOG_ERROR); JDB_EINVAL (NULL, struct_size smaller than the
 *         first published jdb_check_report_t); JDB_ECLOSED; JDB_EIO; JDB_ENOMEM (a shard's
 *         check stopped: report counts what was checked).
 * Thread-safe.
 */
JDB_API int jdb_check(jdb_t *db, jdb_check_report_t *report);

/* =============================================================================================
 * Tables. A table is a binary name (1 .. JDB_NAME_MAX bytes) in one shard (chosen by a hash
 * of the name). A table costs nothing while untouched.
 * =========================================================================================== */
typedef struct jdb_table jdb_table_t;
#define JDB_CREATE 1u

/**
 * Open table `name`, creating it when flags has JDB_CREATE (the creation has the durability of
 * jdb_put). Opening an existing table with JDB_CREATE is not an error.
 * @param[in]  name, name_len  1 .. JDB_NAME_MAX bytes, any values; copied.
 * @param[out] out  the handle, or NULL on failure.
 * @return JDB_OK; JDB_NOTFOUND (no such table and no JDB_CREATE); JDB_EINVAL (NULL, bad name
 *         length, unknown flags); JDB_EREADONLY (JDB_CREATE of a new table on a read-only
 *         instance); JDB_ECLOSED; JDB_ENOMEM; JDB_EIO; JDB_ENOSPC.
 * The handle is safe to share between threads; free it with jdb_table_close (before or after
 * jdb_close). It names the table it was opened on, not the name: once that table is dropped,
 * writes through the handle give JDB_NOTFOUND, reads find nothing and jdb_snapshot gives
 * JDB_NOTFOUND - also after a new table of the same name was created (open that one anew).
 * Thread-safe.
 */
JDB_API int jdb_table_open(jdb_t *db, const void *name, size_t name_len, unsigned flags,
                           jdb_table_t **out);
/** Free the handle only (the table stays). NULL is a no-op. Never touches the instance, so it
    may be called after jdb_close. */
JDB_API void jdb_table_close(jdb_table_t *t);
/**
 * Drop table `name`: it disappears at once (names, reads and writes through handles); its
 * space is reclaimed by later checkpoints. Snapshots taken before the drop keep reading it.
 * The drop has the durability of jdb_put.
 * @return JDB_OK; JDB_NOTFOUND; JDB_EINVAL; JDB_EREADONLY; JDB_ECLOSED; JDB_EIO; JDB_ENOSPC;
 *         JDB_ENOMEM.
 * Thread-safe.
 */
JDB_API int jdb_table_drop(jdb_t *db, const void *name, size_t name_len);

enum { JDB_ASC = 0, JDB_DESC = 1 };
/** Fork a table as of a time. Not supported yet: JDB_ENOTSUP. */
JDB_API int jdb_table_fork(jdb_table_t *src, uint64_t ts_sec, int order, const void *name,
                           size_t name_len, jdb_table_t **out);

/**
 * Call fn for every table whose name is >= start (NULL: from the first), in bytewise name order
 * across all shards, until fn returns non-zero. Names are fetched from the shards in chunks
 * and merged on the calling thread: a table created or dropped during the walk may or may not
 * be seen, every other table is seen exactly once.
 * @param[in] start, start_len  the first name to list (start NULL needs start_len 0); read
 *            during the call only.
 * @param[in] fn  gets each name (valid during the callback only).
 * @return JDB_OK (names ran out), fn's non-zero return, JDB_EINVAL (NULL db or fn, start NULL
 *         with start_len > 0, start_len > JDB_NAME_MAX), JDB_ECLOSED, JDB_EIO, JDB_ECORRUPT,
 *         JDB_ENOMEM.
 * fn runs on the calling thread and may call JDB (but not jdb_close). Thread-safe.
 */
typedef int (*jdb_name_fn)(void *ud, const void *name, size_t name_len);
JDB_API int jdb_table_list(jdb_t *db, const void *start, size_t start_len, jdb_name_fn fn,
                           void *ud);

/* =============================================================================================
 * Key-value. Keys 1 .. JDB_KEY_MAX bytes, values 0 .. JDB_VALUE_MAX bytes. Each write is given
 * the shard's next sequence number; a later write to a key replaces it.
 * =========================================================================================== */

/**
 * Put key -> val. Returns once the write survives a crash of this process (it is in the
 * kernel's page cache); jdb_put_sync returns once it survives power loss, together with every
 * write to the same shard acknowledged before it started.
 * @return JDB_OK; JDB_EINVAL (NULL table or key, klen 0 or > JDB_KEY_MAX, vlen > JDB_VALUE_MAX,
 *         val NULL with vlen > 0); JDB_NOTFOUND (table dropped); JDB_EREADONLY (read-only
 *         instance, or the shard refuses writes since its log or a checkpoint failed: reads go
 *         on, jdb_flush reports the original error, reopening recovers); JDB_ECLOSED;
 *         JDB_ENOMEM; JDB_EIO / JDB_ENOSPC (this write's log write failed); JDB_ECORRUPT (the
 *         write met damaged pages).
 * Thread-safe. key and val are copied before the call returns.
 */
JDB_API int jdb_put(jdb_table_t *t, const void *key, size_t klen, const void *val, size_t vlen);
JDB_API int jdb_put_sync(jdb_table_t *t, const void *key, size_t klen, const void *val,
                         size_t vlen);
/** Delete key (JDB_OK even if absent). Errors as jdb_put. */
JDB_API int jdb_del(jdb_table_t *t, const void *key, size_t klen);

/**
 * Read the current value of key.
 * @param[out] val   a copy, the caller's, to release with jdb_free (not free(): the library's
 *                   allocator may be another); non-NULL even for a 0-byte value.
 * @param[out] vlen  its length.
 * @return JDB_OK; JDB_NOTFOUND (absent, deleted, or the table was dropped); JDB_EINVAL (NULL
 *         table, key, val or vlen; klen 0 or > JDB_KEY_MAX); JDB_ECLOSED; JDB_ECORRUPT;
 *         JDB_EIO; JDB_ENOMEM. On error *val is NULL and *vlen 0 (when they are not NULL).
 * Thread-safe.
 */
JDB_API int jdb_get(jdb_table_t *t, const void *key, size_t klen, void **val, size_t *vlen);
/** Release memory returned by jdb_get / jdb_get_at. NULL is a no-op. Any thread; valid also
    after jdb_close. */
JDB_API void jdb_free(void *p);

/* A batch: operations on one table applied atomically (all or nothing, also across crashes).
   A later operation on the same key wins. At most JDB_BATCH_MAX operations and
   JDB_BATCH_BYTES_MAX bytes. Keys and values are copied into the batch; it belongs to no
   instance (one batch may be written to any tables, any number of times). Owned by one thread
   at a time. */
typedef struct jdb_batch jdb_batch_t;
/** New empty batch, or NULL when out of memory. */
JDB_API jdb_batch_t *jdb_batch_new(void);
/** Append a put (copied). JDB_OK; JDB_EINVAL (NULL b, sizes as jdb_put, or more than
    JDB_BATCH_MAX operations or JDB_BATCH_BYTES_MAX bytes); JDB_ENOMEM. On error the batch is
    unchanged. */
JDB_API int jdb_batch_put(jdb_batch_t *b, const void *key, size_t klen, const void *val,
                          size_t vlen);
/** Append a delete. Errors as jdb_batch_put. */
JDB_API int jdb_batch_del(jdb_batch_t *b, const void *key, size_t klen);
/** Remove every operation (keeps the memory for reuse). NULL is a no-op. */
JDB_API void jdb_batch_clear(jdb_batch_t *b);
/** NULL is a no-op. */
JDB_API void jdb_batch_free(jdb_batch_t *b);
/** Number of operations in the batch (0 for NULL). */
JDB_API size_t jdb_batch_count(const jdb_batch_t *b);

#define JDB_SYNC 1u
/**
 * Apply batch b to table t atomically: one log record, one sequence number. flags: 0 (survives
 * a process crash) or JDB_SYNC (survives power loss). An empty batch is JDB_OK and writes
 * nothing. The batch is unchanged (write it again, or clear it for reuse).
 * @return as jdb_put; JDB_EINVAL also for NULL b and unknown flags.
 * Thread-safe for t; b must not be changed by another thread meanwhile.
 */
JDB_API int jdb_write(jdb_table_t *t, jdb_batch_t *b, unsigned flags);

/* =============================================================================================
 * Snapshots. A snapshot is a consistent view of one table's shard at a sequence number; reads
 * through it see no later write. It keeps what it sees alive (memtables, tree pages, log
 * segments) until released: release snapshots soon. Owned by one thread at a time. One left
 * open at jdb_close is released by it (see jdb_close); free its handle with
 * jdb_snapshot_release all the same.
 * =========================================================================================== */
typedef struct jdb_snap jdb_snap_t;
/** A snapshot of t now. JDB_OK; JDB_EINVAL (NULL); JDB_NOTFOUND (t's table was dropped);
    JDB_ECLOSED; JDB_ENOMEM. Thread-safe for t; *out belongs to the calling thread. */
JDB_API int jdb_snapshot(jdb_table_t *t, jdb_snap_t **out);
/** Time travel. Not supported yet: JDB_ENOTSUP. */
JDB_API int jdb_snapshot_at(jdb_table_t *t, uint64_t ts_sec, int order, jdb_snap_t **out);
/** The snapshot's sequence number: the shard's last write it sees (0 for NULL). Valid also
    after jdb_close. */
JDB_API uint64_t jdb_snapshot_seq(const jdb_snap_t *s);
/** Release the snapshot and free its handle (also after jdb_close, which released what it
    held already). An iterator opened on it keeps reading until it is closed. NULL is a no-op. */
JDB_API void jdb_snapshot_release(jdb_snap_t *s);
/** jdb_get as of the snapshot, in the snapshot's table (a table dropped since still reads).
    Errors as jdb_get; JDB_ECLOSED once the instance is closing or closed. */
JDB_API int jdb_get_at(const jdb_snap_t *s, const void *key, size_t klen, void **val,
                       size_t *vlen);

/* =============================================================================================
 * Iterators: the live keys of one table in key order (bytewise), forwards and backwards at the
 * same cost, at a snapshot (NULL: a snapshot taken when the iterator opens, held until close).
 * Positioning calls return JDB_OK on an entry and JDB_NOTFOUND when there is none (the
 * iterator is then unpositioned). Key/value pointers stay valid until the next move or close.
 * Owned by one thread at a time; close it before jdb_close.
 * =========================================================================================== */
typedef struct jdb_iter jdb_iter_t;
/** JDB_OK; JDB_EINVAL (NULL t/out, snap of another table); JDB_ECLOSED; JDB_ENOMEM. */
JDB_API int jdb_iter_open(jdb_table_t *t, const jdb_snap_t *snap, jdb_iter_t **out);
JDB_API int jdb_iter_first(jdb_iter_t *it);
JDB_API int jdb_iter_last(jdb_iter_t *it);
JDB_API int jdb_iter_seek(jdb_iter_t *it, const void *key, size_t klen);      /* first >= key */
JDB_API int jdb_iter_seek_prev(jdb_iter_t *it, const void *key, size_t klen); /* last <= key */
JDB_API int jdb_iter_next(jdb_iter_t *it);    /* JDB_EINVAL when unpositioned */
JDB_API int jdb_iter_prev(jdb_iter_t *it);    /* JDB_EINVAL when unpositioned */
/** The current entry. JDB_OK; JDB_EINVAL (unpositioned or NULL arguments). */
JDB_API int jdb_iter_key(jdb_iter_t *it, const void **key, size_t *klen);
JDB_API int jdb_iter_value(jdb_iter_t *it, const void **val, size_t *vlen);
/** NULL is a no-op. */
JDB_API void jdb_iter_close(jdb_iter_t *it);
/** History of one key. Not supported yet: JDB_ENOTSUP. */
JDB_API int jdb_history_open(jdb_table_t *t, const void *key, size_t klen, jdb_iter_t **out);
/** Version of a history entry. Not supported yet: JDB_ENOTSUP. */
JDB_API int jdb_iter_version(jdb_iter_t *it, uint64_t *seq, uint64_t *ts_sec, int *is_tombstone);

/* =============================================================================================
 * Pipelines: queue many operations (on any tables of one instance), then jdb_pipe_exec sends
 * them with one crossing per shard and waits for all. Operations on one shard run in queue
 * order; operations are not atomic together (use a batch for that). Owned by one thread.
 * =========================================================================================== */
typedef struct jdb_pipe jdb_pipe_t;
/** New empty pipeline for db, or NULL (NULL db or out of memory). */
JDB_API jdb_pipe_t *jdb_pipe_new(jdb_t *db);
/** Queue an operation (copied). JDB_OK; JDB_EINVAL (sizes as jdb_put, a table of another
    instance); JDB_ENOMEM. */
JDB_API int jdb_pipe_put(jdb_pipe_t *p, jdb_table_t *t, const void *k, size_t kl, const void *v,
                         size_t vl);
JDB_API int jdb_pipe_get(jdb_pipe_t *p, jdb_table_t *t, const void *k, size_t kl);
JDB_API int jdb_pipe_del(jdb_pipe_t *p, jdb_table_t *t, const void *k, size_t kl);
/**
 * Run every queued operation. flags: 0 or JDB_SYNC (the writes survive power loss on return).
 * @return JDB_OK when every operation ran (each has its own result, see jdb_pipe_result);
 *         JDB_EINVAL; JDB_ECLOSED. After exec the operations stay queued until jdb_pipe_reset.
 */
JDB_API int jdb_pipe_exec(jdb_pipe_t *p, unsigned flags);
/**
 * Result of operation i (0-based, in queue order) of the last exec: its return code (JDB_OK,
 * JDB_NOTFOUND for a get of a missing key, ...). For a successful get, *val / *vlen (either may
 * be NULL) give the value, valid until the next exec, reset or free. JDB_EINVAL for i out of
 * range or before any exec.
 */
JDB_API int jdb_pipe_result(jdb_pipe_t *p, size_t i, const void **val, size_t *vlen);
/** Forget queued operations and results (keeps memory). NULL is a no-op. */
JDB_API void jdb_pipe_reset(jdb_pipe_t *p);
/** NULL is a no-op. */
JDB_API void jdb_pipe_free(jdb_pipe_t *p);
/** Operations queued (0 for NULL). */
JDB_API size_t jdb_pipe_count(const jdb_pipe_t *p);

/* =============================================================================================
 * Streams. Not supported yet: every function returns JDB_ENOTSUP (jdb_watch_close is a no-op).
 * =========================================================================================== */
enum { JDB_OP_PUT = 1, JDB_OP_DEL = 2 };
typedef struct jdb_event {
  uint64_t seq, ts_sec;
  int op;
  const void *key;
  size_t klen;
  const void *val;
  size_t vlen;   /* valid until the next call */
} jdb_event_t;
typedef struct jdb_watch jdb_watch_t;
JDB_API int jdb_watch_open(jdb_table_t *t, uint64_t from_seq, jdb_watch_t **out);
JDB_API int jdb_watch_next(jdb_watch_t *w, jdb_event_t *ev, int timeout_ms);
JDB_API int jdb_watch_fd(jdb_watch_t *w);
JDB_API void jdb_watch_close(jdb_watch_t *w);
JDB_API int jdb_event_encode(const jdb_event_t *ev, void *buf, size_t cap, size_t *used);
typedef long (*jdb_read_fn)(void *ud, void *buf, size_t cap);
JDB_API int jdb_import(jdb_table_t *t, jdb_read_fn read, void *ud, uint64_t *applied);

/* =============================================================================================
 * Series (time series). Not supported yet: every function returns JDB_ENOTSUP.
 * =========================================================================================== */
typedef struct jdb_tag {
  const void *name;
  size_t name_len;
  const void *value;
  size_t value_len;
} jdb_tag_t;
JDB_API int jdb_series_put(jdb_table_t *t, const jdb_tag_t *tags, size_t ntags, int64_t ts,
                           double value);
JDB_API int jdb_series_write_lp(jdb_table_t *t, const char *buf, size_t len, int precision,
                                size_t *points);
enum { JDB_AGG_NONE, JDB_AGG_COUNT, JDB_AGG_SUM, JDB_AGG_MIN, JDB_AGG_MAX, JDB_AGG_AVG,
       JDB_AGG_FIRST, JDB_AGG_LAST };
typedef int (*jdb_point_fn)(void *ud, const jdb_tag_t *tags, size_t ntags, int64_t ts, double v);
JDB_API int jdb_series_query(jdb_table_t *t, const char *selector, int64_t t0, int64_t t1,
                             int64_t step, int agg, jdb_point_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* JDB_H */
