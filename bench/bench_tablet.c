/*
 * bench_tablet.c - `jdb_bench tablet`: the tablet (engine/tablet/tab.h: log, memtable, B+ tree,
 * inline checkpoints) next to RocksDB (when the build found librocksdb: JDB_HAVE_ROCKSDB) and
 * LMDB (JDB_HAVE_LMDB) in the same process, same workloads, same data, one thread calling each
 * engine in turn. A peer the build did not find only drops its column.
 *
 * Engine settings (env JDB_BENCH_TABLET_CACHE_MB sets the cache of JDB and RocksDB alike):
 *   JDB      tab_opts defaults (64 MiB memtable, values above 256 bytes referenced in the log,
 *            64 MiB log segments, O_DIRECT pages and log) except the page cache, which is the
 *            public API's default (jdb_options_init: a quarter of the memory, 6 GiB on a 24 GiB
 *            machine; frames take memory as pages fill them); tab_write with flags 0 (the log
 *            write handed to the kernel: survives kill -9, not power loss). No fibers: a checkpoint runs inline when the memtable
 *            fills, so its time counts in the fill rate.
 *   RocksDB  default Options (so no bloom filter, Snappy compression, 2 background jobs) plus
 *            create_if_missing and a 256 MiB LRU block cache; writes as a WriteBatch through
 *            rocksdb_write with default WriteOptions (WAL on, sync off). Flushes and compactions
 *            run on RocksDB's own threads: their bytes count in the write amplification, their
 *            time only as CPU taken from the writer (and in close, which waits for them).
 *   LMDB     MDB_NOSYNC (commits reach the OS page cache, no fsync: the counterpart of "WAL on,
 *            sync off"), one write txn per batch of mdb_put, reads through the OS page cache.
 *
 * Workloads (N = 2 M; 200 k with --quick; env JDB_BENCH_TABLET_N overrides). Values are cut
 * from a 1 MiB pool of random bytes (incompressible) at an offset derived from the write, so
 * every read can be checked.
 *   fillseq       N puts, 16-byte keys in ascending order (8-byte big-endian counter + 8 fixed
 *                 bytes), 100-byte values, batches of 1000, into an empty database. The row is
 *                 the puts (p50 / p99 columns: per batch of 1000); the note adds close time,
 *                 ops/s over puts + close, bytes written, write amplification and du after close.
 *   fillrandom    the same with N random 16-byte keys, in generation order.
 *   readrandom    get of random existing keys (value checked) on the fillrandom database,
 *                 reopened (open time noted; RocksDB is then left until its compactions settle,
 *                 polled) and warmed by one full scan. JDB and RocksDB return a malloc'd copy,
 *                 LMDB a pointer into its map. The note gives device reads per op (read_bytes of
 *                 /proc/self/io): a tree larger than the page cache shows there.
 *   seek+next10   seek to a random existing key, then 10 steps forward; or the last key <= it,
 *   seek+prev10   then 10 steps back. Key and value read at every step, order checked, the seek
 *                 checked for the key and its value. ops = seeks.
 *   fill4k        K = OW/4 random 16-byte keys with 4 KiB values, batches of 100, empty database;
 *   overwrite4k   then OW puts of random keys among the K, 4 KiB values, batches of 100 (OW =
 *                 200 k; 20 k with --quick; env JDB_BENCH_TABLET_OW_N), then close; du; then
 *                 (untimed) reopen and check every key's last value.
 * Read phases run repeats per engine, engines alternating; rows are medians. readrandom: 3
 * repeats of secs/3. seek+next10 and seek+prev10: 12 repeats of secs/12 each, interleaved (next,
 * prev, prev, next, ...), so that the two see the same background and each runs first as often;
 * the prev/next target is the paired ratio, the median of the 12 per-repeat ratios. (Run one
 * after the other, 3 x 1 s each, the ratio of the medians ranged 0.82-1.08 between runs of one
 * build on this shared machine, whose memory latency varies by the second.)
 *
 * Write amplification (WA) = bytes written / user bytes (16-byte key + value of every put).
 * /proc/self/io sums every thread of the process (RocksDB's background threads, io_uring
 * workers) and gives two counts, neither complete alone: wchar, the bytes given to write system
 * calls (RocksDB's and LMDB's writes; not JDB's, which go through io_uring), and write_bytes
 * (less cancelled_write_bytes), the bytes the block layer gets: an O_DIRECT write when submitted,
 * a buffered write when it dirties a clean page, so a page rewritten before writeback, or a file
 * deleted before it (RocksDB's WAL after a flush), counts once or not at all. Bytes written is
 * the larger of the two; the "block layer" figures are write_bytes alone (what reaches the
 * device in this run, the file system's journal aside). Should neither move on this file system,
 * the growth of the directory's allocated bytes stands in (said in the summary). JDB's figures
 * include the zeros its log writes into a new segment before use where syncs are frequent
 * (wal.h, WAL_ZERO_AUTO: this bench's writes are not durable commits, so only the segment a new
 * log starts with); a note and the summary give them (the log's count, tab_stats) and JDB's WA
 * without them.
 * WA of overwrite4k is from the end of fill4k to after close; "fill4k+overwrite4k" from open to
 * after close.
 * Disk bytes: allocated blocks (du) of the engine's directory after close. sync() runs (untimed)
 * before each engine's timed writes so that the previous engine's dirty pages do not land in its
 * time.
 *
 * Case names for --filter: tablet.<workload>.<jdb|rocksdb|lmdb>. The reads need the fillrandom
 * database, so a filter that selects one of them runs fillrandom for that engine too.
 */
#include "bench.h"
#include "bench_peer.h"

#include "fs.h"
#include "jdb.h"
#include "mem.h"
#include "tab.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TB_KLEN BENCH_KLEN
#define TB_VLEN BENCH_VLEN
#define TB_BIGV 4096u
#define TB_FILL_BATCH 1000u
#define TB_OW_BATCH 100u
#define TB_BATCH_MAX 1000u
#define TB_POOL BENCH_POOL
#define TB_REPS 3
#define TB_SCAN_REPS 12  /* seek+next10 and seek+prev10: short repeats, interleaved */
#define TB_REPS_MAX 12
#define TB_STEPS 10
#define TB_ROCKS_CACHE_MB 256u
#define TB_SETTLE_SECS 600

/* Engine call results: 0, TB_END (absent / ran off the end), TB_WRONG (wrong value), or < 0 (an
   error, already described in a note). */
#define TB_END 1
#define TB_WRONG 2
#define TB_ERR (-1)

enum { TB_JDB = BENCH_JDB, TB_ROCKS = BENCH_ROCKS, TB_LMDB = BENCH_LMDB, TB_NENG = BENCH_NENG };
enum { TB_W_FILLSEQ, TB_W_FILLRND, TB_W_READ, TB_W_NEXT, TB_W_PREV, TB_W_FILL4K, TB_W_OW4K,
       TB_NW };
static const char *const tb_wname[TB_NW] = {"fillseq", "fillrandom", "readrandom",
                                            "seek+next10", "seek+prev10", "fill4k",
                                            "overwrite4k"};

struct tb_kv {
  const uint8_t *k, *v;
  size_t klen, vlen;
};

struct tb_eng;
struct tb_ops {
  int (*open)(struct tb_eng *e);
  int (*close)(struct tb_eng *e);
  int (*write)(struct tb_eng *e, const struct bench_put *p, uint32_t n);
  int (*rbegin)(struct tb_eng *e, int scan);   /* a read txn / an iterator */
  void (*rend)(struct tb_eng *e);
  int (*get)(struct tb_eng *e, const uint8_t *k, const uint8_t *want, uint32_t wlen);
  int (*seek)(struct tb_eng *e, const uint8_t *k, int reverse, struct tb_kv *out);
  int (*step)(struct tb_eng *e, int reverse, struct tb_kv *out);
  void (*info)(struct tb_eng *e, char *buf, size_t cap);   /* engine counters, one line */
};

struct tb_eng {
  const char *name, *tag;
  const struct tb_ops *op;
  char dir[4096];
  int is_open;
  size_t map_bytes;           /* LMDB map size for the current database */
  uint64_t cache_bytes;       /* JDB page cache, RocksDB block cache */
  /* JDB */
  struct fs_ctx *ctx;
  struct tab *t;
  uint64_t table;
  struct tab_iter *it;
  struct tab_op *jops;
  uint64_t zero_bytes;        /* tb_jdb_zero_fill as info() last saw it (before the close) */
  unsigned zero_segs;
#ifdef JDB_HAVE_ROCKSDB
  struct bench_rocks rk;
  rocksdb_iterator_t *rit;
#endif
#ifdef JDB_HAVE_LMDB
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *rtxn;
  MDB_cursor *cur;
#endif
};

/* ------------------------------------------------------------------------------------------- */
/* Process I/O counters, directory sizes                                                        */

struct tb_io {
  uint64_t rd, wr, cancel, wchar;
};

static struct tb_io tb_io_now(void)
{
  struct tb_io io = {0};
  FILE *f = fopen("/proc/self/io", "r");
  if (!f)
    return io;
  char line[128];
  unsigned long long v;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "wchar: %llu", &v) == 1)
      io.wchar = v;
    else if (sscanf(line, "read_bytes: %llu", &v) == 1)
      io.rd = v;
    else if (sscanf(line, "write_bytes: %llu", &v) == 1)
      io.wr = v;
    else if (sscanf(line, "cancelled_write_bytes: %llu", &v) == 1)
      io.cancel = v;
  }
  fclose(f);
  return io;
}

static uint64_t tb_du_acc, tb_size_acc;
static int tb_du_fn(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  tb_du_acc += (uint64_t)st->st_blocks * 512u;
  if (flag == FTW_F)
    tb_size_acc += (uint64_t)st->st_size;
  return 0;
}

/* Allocated bytes under dir (du); *apparent (may be NULL) gets the files' sizes. */
static uint64_t tb_du(const char *dir, uint64_t *apparent)
{
  tb_du_acc = tb_size_acc = 0;
  nftw(dir, tb_du_fn, 16, FTW_PHYS);
  if (apparent)
    *apparent = tb_size_acc;
  return tb_du_acc;
}

/* ------------------------------------------------------------------------------------------- */
/* JDB                                                                                          */

static int tb_jdb_err(struct tb_eng *e, const char *what, int rc)
{
  bench_note("tablet: JDB %s (%s): %s", what, e->dir, jdb_strerror(rc));
  return TB_ERR;
}

static int tb_jdb_open(struct tb_eng *e)
{
  struct tab_opts o = {.cache_frames = (uint32_t)(e->cache_bytes / 4096), .create_if_missing = 1};
  int rc = tab_open(e->ctx, e->dir, &o, &e->t);
  if (rc)
    return tb_jdb_err(e, "tab_open", rc);
  rc = tab_table_create(e->t, "bench", 5, 0, &e->table);
  if (rc && rc != JDB_EEXIST) {
    tab_close(e->t);
    e->t = NULL;
    return tb_jdb_err(e, "tab_table_create", rc);
  }
  return 0;
}

static int tb_jdb_close(struct tb_eng *e)
{
  int rc = tab_close(e->t);
  e->t = NULL;
  return rc ? tb_jdb_err(e, "tab_close", rc) : 0;
}

static int tb_jdb_write(struct tb_eng *e, const struct bench_put *p, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    e->jops[i] = (struct tab_op){.kind = TAB_PUT, .key = p[i].k, .klen = TB_KLEN, .val = p[i].v,
                                 .vlen = p[i].vlen};
  int rc = tab_write(e->t, e->table, e->jops, n, 0, NULL);
  return rc ? tb_jdb_err(e, "tab_write", rc) : 0;
}

static int tb_jdb_rbegin(struct tb_eng *e, int scan)
{
  if (!scan)
    return 0;
  int rc = tab_iter_open(e->t, NULL, e->table, &e->it);
  return rc ? tb_jdb_err(e, "tab_iter_open", rc) : 0;
}

static void tb_jdb_rend(struct tb_eng *e)
{
  tab_iter_close(e->it);
  e->it = NULL;
}

static int tb_jdb_get(struct tb_eng *e, const uint8_t *k, const uint8_t *want, uint32_t wlen)
{
  void *val = NULL;
  size_t vlen = 0;
  int rc = tab_get(e->t, NULL, e->table, k, TB_KLEN, &val, &vlen);
  if (rc == JDB_NOTFOUND)
    return TB_END;
  if (rc)
    return tb_jdb_err(e, "tab_get", rc);
  rc = vlen == wlen && memcmp(val, want, wlen) == 0 ? 0 : TB_WRONG;
  mem_free(val);
  return rc;
}

static int tb_jdb_kv(struct tb_eng *e, int rc, struct tb_kv *out)
{
  if (rc == JDB_NOTFOUND)
    return TB_END;
  const void *k, *v;
  size_t kl, vl;
  if (!rc)
    rc = tab_iter_key(e->it, &k, &kl);
  if (!rc)
    rc = tab_iter_value(e->it, &v, &vl);
  if (rc)
    return tb_jdb_err(e, "iterator", rc);
  *out = (struct tb_kv){.k = k, .klen = kl, .v = v, .vlen = vl};
  return 0;
}

static int tb_jdb_seek(struct tb_eng *e, const uint8_t *k, int reverse, struct tb_kv *out)
{
  int rc = reverse ? tab_iter_seek_prev(e->it, k, TB_KLEN) : tab_iter_seek(e->it, k, TB_KLEN);
  return tb_jdb_kv(e, rc, out);
}

static int tb_jdb_step(struct tb_eng *e, int reverse, struct tb_kv *out)
{
  return tb_jdb_kv(e, reverse ? tab_iter_prev(e->it) : tab_iter_next(e->it), out);
}

/* Zeros JDB's log wrote to prepare segments since the tablet was opened (tab_stats, from the
   log's own count: segments zero-filled before use, not those only allocated nor those renamed
   from dropped ones). */
static uint64_t tb_jdb_zero_fill(struct tb_eng *e, unsigned *segs)
{
  struct tab_stats st;
  tab_stats_get(e->t, &st);
  *segs = (unsigned)(st.log_segments_created - st.log_segments_allocated);
  return st.log_bytes_prepared;
}

static void tb_jdb_info(struct tb_eng *e, char *buf, size_t cap)
{
  struct tab_stats st;
  tab_stats_get(e->t, &st);
  e->zero_bytes = tb_jdb_zero_fill(e, &e->zero_segs);
  snprintf(buf, cap, "%llu checkpoints, %llu log segments released, log GC %llu segments (%llu "
           "values moved), %llu versions pruned, memtable %.1f MB",
           (unsigned long long)st.checkpoints, (unsigned long long)st.segments_released,
           (unsigned long long)st.gc_segments, (unsigned long long)st.gc_values_moved,
           (unsigned long long)st.versions_pruned, (double)st.mt_bytes / 1e6);
}

static const struct tb_ops tb_jdb_ops = {
  .open = tb_jdb_open, .close = tb_jdb_close, .write = tb_jdb_write, .rbegin = tb_jdb_rbegin,
  .rend = tb_jdb_rend, .get = tb_jdb_get, .seek = tb_jdb_seek, .step = tb_jdb_step,
  .info = tb_jdb_info};

/* ------------------------------------------------------------------------------------------- */
/* RocksDB                                                                                      */

#ifdef JDB_HAVE_ROCKSDB
static int tb_rocks_err(struct tb_eng *e, const char *what, char *err)
{
  bench_note("tablet: RocksDB %s (%s): %s", what, e->dir, err ? err : "error");
  rocksdb_free(err);
  return TB_ERR;
}

static int tb_rocks_open(struct tb_eng *e)
{
  char *err = bench_rocks_open(&e->rk, e->dir, e->cache_bytes);
  return err ? tb_rocks_err(e, "rocksdb_open", err) : 0;
}

static int tb_rocks_close(struct tb_eng *e)
{
  bench_rocks_close(&e->rk);
  return 0;
}

static int tb_rocks_write(struct tb_eng *e, const struct bench_put *p, uint32_t n)
{
  char *err = bench_rocks_write(&e->rk, e->rk.wo, p, n);
  return err ? tb_rocks_err(e, "rocksdb_write", err) : 0;
}

static int tb_rocks_rbegin(struct tb_eng *e, int scan)
{
  if (scan)
    e->rit = rocksdb_create_iterator(e->rk.db, e->rk.ro);
  return 0;
}

static void tb_rocks_rend(struct tb_eng *e)
{
  if (e->rit)
    rocksdb_iter_destroy(e->rit);
  e->rit = NULL;
}

static int tb_rocks_get(struct tb_eng *e, const uint8_t *k, const uint8_t *want, uint32_t wlen)
{
  char *err = NULL;
  size_t vlen = 0;
  char *v = rocksdb_get(e->rk.db, e->rk.ro, (const char *)k, TB_KLEN, &vlen, &err);
  if (err)
    return tb_rocks_err(e, "rocksdb_get", err);
  if (!v)
    return TB_END;
  int rc = vlen == wlen && memcmp(v, want, wlen) == 0 ? 0 : TB_WRONG;
  rocksdb_free(v);
  return rc;
}

static int tb_rocks_kv(struct tb_eng *e, struct tb_kv *out)
{
  if (!rocksdb_iter_valid(e->rit)) {
    char *err = NULL;
    rocksdb_iter_get_error(e->rit, &err);
    return err ? tb_rocks_err(e, "iterator", err) : TB_END;
  }
  out->k = (const uint8_t *)rocksdb_iter_key(e->rit, &out->klen);
  out->v = (const uint8_t *)rocksdb_iter_value(e->rit, &out->vlen);
  return 0;
}

static int tb_rocks_seek(struct tb_eng *e, const uint8_t *k, int reverse, struct tb_kv *out)
{
  if (reverse)
    rocksdb_iter_seek_for_prev(e->rit, (const char *)k, TB_KLEN);
  else
    rocksdb_iter_seek(e->rit, (const char *)k, TB_KLEN);
  return tb_rocks_kv(e, out);
}

static int tb_rocks_step(struct tb_eng *e, int reverse, struct tb_kv *out)
{
  if (reverse)
    rocksdb_iter_prev(e->rit);
  else
    rocksdb_iter_next(e->rit);
  return tb_rocks_kv(e, out);
}

/* A property only available as a string (the per-level ones). */
static uint64_t tb_rocks_sprop(struct tb_eng *e, const char *name)
{
  char *v = rocksdb_property_value(e->rk.db, name);
  uint64_t n = v ? strtoull(v, NULL, 10) : 0;
  rocksdb_free(v);
  return n;
}

static void tb_rocks_info(struct tb_eng *e, char *buf, size_t cap)
{
  size_t o = (size_t)snprintf(buf, cap, "SST files per level");
  for (int l = 0; l < 7 && o < cap; l++) {
    char prop[64];
    snprintf(prop, sizeof prop, "rocksdb.num-files-at-level%d", l);
    o += (size_t)snprintf(buf + o, cap - o, "%s%llu", l ? "/" : " ",
                          (unsigned long long)tb_rocks_sprop(e, prop));
  }
  if (o < cap)
    snprintf(buf + o, cap - o, ", pending compaction %.1f MB, immutable memtables %llu",
             (double)bench_rocks_prop(&e->rk, "rocksdb.estimate-pending-compaction-bytes") / 1e6,
             (unsigned long long)bench_rocks_prop(&e->rk, "rocksdb.num-immutable-mem-table"));
}

static const struct tb_ops tb_rocks_ops = {
  .open = tb_rocks_open, .close = tb_rocks_close, .write = tb_rocks_write,
  .rbegin = tb_rocks_rbegin, .rend = tb_rocks_rend, .get = tb_rocks_get, .seek = tb_rocks_seek,
  .step = tb_rocks_step, .info = tb_rocks_info};
#endif /* JDB_HAVE_ROCKSDB */

/* ------------------------------------------------------------------------------------------- */
/* LMDB                                                                                         */

#ifdef JDB_HAVE_LMDB
static int tb_lmdb_err(struct tb_eng *e, const char *what, int rc)
{
  bench_note("tablet: LMDB %s (%s): %s", what, e->dir, mdb_strerror(rc));
  return TB_ERR;
}

static int tb_lmdb_open(struct tb_eng *e)
{
  const char *what;
  int rc = bench_lmdb_open(e->dir, e->map_bytes, MDB_NOSYNC, &e->env, &e->dbi, &what);
  return rc ? tb_lmdb_err(e, what, rc) : 0;
}

static int tb_lmdb_close(struct tb_eng *e)
{
  mdb_env_close(e->env);
  e->env = NULL;
  return 0;
}

static int tb_lmdb_write(struct tb_eng *e, const struct bench_put *p, uint32_t n)
{
  const char *what;
  int rc = bench_lmdb_write(e->env, e->dbi, p, n, &what);
  return rc ? tb_lmdb_err(e, what, rc) : 0;
}

static int tb_lmdb_rbegin(struct tb_eng *e, int scan)
{
  int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &e->rtxn);
  if (!rc && (rc = mdb_cursor_open(e->rtxn, e->dbi, &e->cur)) != 0)
    mdb_txn_abort(e->rtxn);
  return rc ? tb_lmdb_err(e, "read txn", rc) : 0;
}

static void tb_lmdb_rend(struct tb_eng *e)
{
  mdb_cursor_close(e->cur);
  mdb_txn_abort(e->rtxn);
  e->cur = NULL;
  e->rtxn = NULL;
}

static int tb_lmdb_get(struct tb_eng *e, const uint8_t *k, const uint8_t *want, uint32_t wlen)
{
  MDB_val kv = {.mv_size = TB_KLEN, .mv_data = (void *)k}, v;
  int rc = mdb_get(e->rtxn, e->dbi, &kv, &v);
  if (rc == MDB_NOTFOUND)
    return TB_END;
  if (rc)
    return tb_lmdb_err(e, "mdb_get", rc);
  return v.mv_size == wlen && memcmp(v.mv_data, want, wlen) == 0 ? 0 : TB_WRONG;
}

static int tb_lmdb_kv(struct tb_eng *e, int rc, const MDB_val *k, const MDB_val *v,
                      struct tb_kv *out)
{
  if (rc == MDB_NOTFOUND)
    return TB_END;
  if (rc)
    return tb_lmdb_err(e, "cursor", rc);
  *out = (struct tb_kv){.k = k->mv_data, .klen = k->mv_size, .v = v->mv_data,
                        .vlen = v->mv_size};
  return 0;
}

static int tb_lmdb_seek(struct tb_eng *e, const uint8_t *k, int reverse, struct tb_kv *out)
{
  MDB_val kv = {.mv_size = TB_KLEN, .mv_data = (void *)k}, v;
  int rc = mdb_cursor_get(e->cur, &kv, &v, MDB_SET_RANGE);
  if (reverse) {   /* last key <= k */
    if (rc == MDB_NOTFOUND)
      rc = mdb_cursor_get(e->cur, &kv, &v, MDB_LAST);
    else if (rc == 0 && (kv.mv_size != TB_KLEN || memcmp(kv.mv_data, k, TB_KLEN)))
      rc = mdb_cursor_get(e->cur, &kv, &v, MDB_PREV);
  }
  return tb_lmdb_kv(e, rc, &kv, &v, out);
}

static int tb_lmdb_step(struct tb_eng *e, int reverse, struct tb_kv *out)
{
  MDB_val kv, v;
  return tb_lmdb_kv(e, mdb_cursor_get(e->cur, &kv, &v, reverse ? MDB_PREV : MDB_NEXT), &kv, &v,
                    out);
}

static void tb_lmdb_info(struct tb_eng *e, char *buf, size_t cap)
{
  MDB_envinfo ei;
  MDB_stat st;
  MDB_txn *txn;
  buf[0] = 0;
  if (mdb_env_info(e->env, &ei) || mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn))
    return;
  if (mdb_stat(txn, e->dbi, &st) == 0)
    snprintf(buf, cap, "depth %u, %zu leaf + %zu branch + %zu overflow pages, map used %.1f MB",
             st.ms_depth, st.ms_leaf_pages, st.ms_branch_pages, st.ms_overflow_pages,
             (double)(ei.me_last_pgno + 1) * st.ms_psize / 1e6);
  mdb_txn_abort(txn);
}

static const struct tb_ops tb_lmdb_ops = {
  .open = tb_lmdb_open, .close = tb_lmdb_close, .write = tb_lmdb_write,
  .rbegin = tb_lmdb_rbegin, .rend = tb_lmdb_rend, .get = tb_lmdb_get, .seek = tb_lmdb_seek,
  .step = tb_lmdb_step, .info = tb_lmdb_info};
#endif /* JDB_HAVE_LMDB */

/* ------------------------------------------------------------------------------------------- */
/* Data and the run                                                                             */

struct tb_run {
  const struct bench_env *env;
  struct tb_eng eng[TB_NENG];
  int have[TB_NENG];         /* built with it and opened without error so far */
  size_t n, ow, k;
  uint8_t *seqk, *rndk, *owk;    /* n, n and k keys of TB_KLEN bytes */
  uint8_t *pool;                 /* TB_POOL + TB_BIGV random bytes */
  uint32_t *last;                /* overwrite4k: last write number of each key */
  struct bench_put *puts;
  uint64_t *lat;                 /* per-batch latencies */
  double rate[TB_NW][TB_NENG];   /* ops/s (0: not run) */
  double paired[TB_NW][TB_NENG]; /* median per-repeat ratio to the phase's first workload */
  double fill_close[TB_NENG];    /* fillrandom ops/s over puts + close */
  double wa[TB_NW][TB_NENG];     /* fillseq, fillrandom, overwrite4k (+close) */
  double wa_dev[TB_NW][TB_NENG]; /* the same, block layer count only */
  double wa_all4k[TB_NENG], wa_all4k_dev[TB_NENG];
  double wa_nozero[TB_NW];       /* JDB's WA less its log's zero fill */
  double du[TB_NW][TB_NENG];     /* bytes after close: fillseq, fillrandom, overwrite4k */
  int wa_fallback;
  int fail;
};

static const uint8_t *tb_val(const struct tb_run *r, uint64_t w, uint32_t vlen)
{
  return bench_pool_val(r->pool, w, vlen);
}

static const uint8_t *tb_key(const uint8_t *keys, size_t i)
{
  return keys + i * TB_KLEN;
}

static int tb_want(const struct tb_run *r, int w, int e)
{
  char name[64];
  snprintf(name, sizeof name, "tablet.%s.%s", tb_wname[w], r->eng[e].tag);
  return r->have[e] && bench_want(r->env, name);
}

static void tb_dir(struct tb_run *r, int e, const char *what)
{
  snprintf(r->eng[e].dir, sizeof r->eng[e].dir, "%s/tablet-%s.%s", r->env->dir, what,
           r->eng[e].tag);
}

/* Bytes written between a and b (see the header): the larger of the bytes given to write
   system calls (wchar) and the block layer's count (write_bytes less cancelled_write_bytes, which
   *dev gets); falls back to du growth (grow) when neither moved. */
static double tb_written(struct tb_run *r, struct tb_io a, struct tb_io b, uint64_t grow,
                         double *dev)
{
  uint64_t w = b.wr - a.wr, c = b.cancel - a.cancel, sys = b.wchar - a.wchar;
  *dev = w > c ? (double)(w - c) : 0;
  if (w == 0 && sys < grow) {
    r->wa_fallback = 1;
    *dev = (double)grow;
  }
  return (double)sys > *dev ? (double)sys : *dev;
}

static int tb_open(struct tb_eng *g)
{
  int rc = g->op->open(g);
  g->is_open = rc == 0;
  return rc;
}

static int tb_close(struct tb_eng *g)
{
  if (!g->is_open)
    return 0;
  g->is_open = 0;
  return g->op->close(g);
}

/* count puts with vlen-byte values, batches of `batch`: keys in order (rng NULL) or picked at
   random among nkeys. Write number w = wbase + i chooses the value; last[key] (may be NULL)
   records it. Per-batch latencies go to r->lat. */
static int tb_puts(struct tb_run *r, struct tb_eng *g, const uint8_t *keys, size_t nkeys,
                   size_t count, uint32_t vlen, uint32_t batch, uint64_t *rng, uint64_t wbase,
                   uint32_t *last, double *secs, size_t *nlat)
{
  size_t nb = 0;
  uint64_t t0 = bench_now_ns();
  for (size_t base = 0; base < count; base += batch) {
    uint32_t m = (uint32_t)(count - base < batch ? count - base : batch);
    for (uint32_t i = 0; i < m; i++) {
      size_t idx = rng ? (size_t)(bench_rand(rng) % nkeys) : base + i;
      uint64_t w = wbase + base + i;
      r->puts[i] = (struct bench_put){.k = tb_key(keys, idx), .v = tb_val(r, w, vlen),
                                      .vlen = vlen};
      if (last)
        last[idx] = (uint32_t)w;
    }
    uint64_t a = bench_now_ns();
    int rc = g->op->write(g, r->puts, m);
    r->lat[nb++] = bench_now_ns() - a;
    if (rc) {
      bench_note("tablet: %s: the write of batch %zu (ops %zu..) failed", g->name, base / batch,
                 base);
      return rc;
    }
  }
  *secs = bench_secs(t0, bench_now_ns());
  *nlat = nb;
  return 0;
}

/* Untimed: get `count` keys (all of them in order when count == 0, else random ones) and check
   each value: write number last[i] (last NULL: i) with vlen bytes. */
static int tb_check(struct tb_run *r, struct tb_eng *g, const uint8_t *keys, size_t n,
                    const uint32_t *last, uint32_t vlen, size_t count, const char *what)
{
  uint64_t rng = r->env->seed ^ 0xc4ecull, bad = 0;
  size_t nkeys = count ? count : n;
  int rc = g->op->rbegin(g, 0);
  if (rc)
    return rc;
  for (size_t i = 0; i < nkeys; i++) {
    size_t idx = count ? (size_t)(bench_rand(&rng) % n) : i;
    int x = g->op->get(g, tb_key(keys, idx), tb_val(r, last ? last[idx] : idx, vlen), vlen);
    if (x < 0) {
      rc = x;
      break;
    }
    if (x)
      bad++;
  }
  g->op->rend(g);
  if (bad) {
    bench_note("tablet.%s: VERIFY FAILED: %s, %llu of %zu checked keys missing or wrong", what,
               g->name, (unsigned long long)bad, nkeys);
    rc = TB_ERR;
  }
  return rc;
}

static void tb_drop_engine(struct tb_run *r, int e)
{
  struct tb_eng *g = &r->eng[e];
  tb_close(g);
  if (!r->env->keep)
    bench_rmtree(g->dir);
  bench_note("tablet: %s left out of the remaining workloads after the error above", g->name);
  r->have[e] = 0;
  r->fail = 1;
}

static double tb_ms(uint64_t ns)
{
  return (double)ns / 1e6;
}

/* The end of a write phase: close (timed), then, when the phase and the close succeeded, the
   I/O counters and the directory's size after close; else the engine is dropped (returns 1). */
struct tb_end {
  double close_secs;
  struct tb_io io;
  uint64_t du, files;
};

static int tb_finish(struct tb_run *r, int e, int rc, struct tb_end *out)
{
  struct tb_eng *g = &r->eng[e];
  uint64_t c0 = bench_now_ns();
  int crc = tb_close(g);
  out->close_secs = bench_secs(c0, bench_now_ns());
  if (rc || crc) {
    tb_drop_engine(r, e);
    return 1;
  }
  out->io = tb_io_now();
  out->du = tb_du(g->dir, &out->files);
  return 0;
}

/* fillseq / fillrandom for one engine: fresh database, puts, a sample check, close. keep_db:
   leave the database for the read phases. */
static void tb_fill(struct tb_run *r, int w, int e, const uint8_t *keys, int keep_db)
{
  struct tb_eng *g = &r->eng[e];
  tb_dir(r, e, tb_wname[w]);
  bench_rmtree(g->dir);
  g->map_bytes = (size_t)r->n * (TB_KLEN + TB_VLEN) * 4 + (1ull << 30);
  sync();
  struct tb_io io0 = tb_io_now();
  double secs = 0;
  size_t nlat = 0;
  char info[256] = "";
  int rc = tb_open(g);
  if (!rc)
    rc = tb_puts(r, g, keys, r->n, r->n, TB_VLEN, TB_FILL_BATCH, NULL, 0, NULL, &secs, &nlat);
  if (!rc) {
    g->op->info(g, info, sizeof info);
    rc = tb_check(r, g, keys, r->n, NULL, TB_VLEN, 1000, tb_wname[w]);
  }
  struct tb_end end;
  if (tb_finish(r, e, rc, &end))
    return;
  double close_secs = end.close_secs;
  uint64_t du = end.du, files = end.files;
  double user = (double)r->n * (TB_KLEN + TB_VLEN);
  double dev, wr = tb_written(r, io0, end.io, du, &dev);
  char name[64];
  snprintf(name, sizeof name, "tablet.%s.%s", tb_wname[w], g->tag);
  bench_row(name, r->n, secs, (uint64_t)user, r->lat, nlat);
  bench_note("%s: %s; close %.2f s, puts + close %.0f ops/s; written %.1f MB, WA %.2f (block "
             "layer %.1f MB, WA %.2f); %.1f MB read from the device; du after close %.1f MB (file "
             "sizes %.1f MB); p50/p99 per batch of %u, slowest %.1f ms",
             name, info, close_secs, (double)r->n / (secs + close_secs), wr / 1e6, wr / user,
             dev / 1e6, dev / user, (double)(end.io.rd - io0.rd) / 1e6, (double)du / 1e6,
             (double)files / 1e6, TB_FILL_BATCH, tb_ms(r->lat[nlat - 1]));
  if (e == TB_JDB && !rc) {
    uint64_t zero = g->zero_bytes;
    r->wa_nozero[w] = (wr - (double)zero) / user;
    bench_note("%s: of the bytes written, %.1f MB are the log's zero fill (%u segments "
               "zero-filled before the close); WA without it %.2f",
               name, (double)zero / 1e6, g->zero_segs, r->wa_nozero[w]);
  }
  r->rate[w][e] = (double)r->n / secs;
  r->wa[w][e] = wr / user;
  r->wa_dev[w][e] = dev / user;
  r->du[w][e] = (double)du;
  if (w == TB_W_FILLRND)
    r->fill_close[e] = (double)r->n / (secs + close_secs);
  if (!keep_db && !r->env->keep)
    bench_rmtree(g->dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Read phases                                                                                  */

struct tb_rep {
  uint64_t ops;
  double secs;
};

static int tb_cmp_rep(const void *a, const void *b)
{
  const struct tb_rep *x = a, *y = b;
  double rx = (double)x->ops / x->secs, ry = (double)y->ops / y->secs;
  return rx < ry ? -1 : rx > ry;
}

/* Reopen the fillrandom database, let RocksDB settle, warm with one full scan. */
static int tb_reads_open(struct tb_run *r, int e)
{
  struct tb_eng *g = &r->eng[e];
  tb_dir(r, e, tb_wname[TB_W_FILLRND]);
  struct tb_io oio = tb_io_now();
  uint64_t t0 = bench_now_ns();
  int rc = tb_open(g);
  double open_secs = bench_secs(t0, bench_now_ns());
  double open_rd = (double)(tb_io_now().rd - oio.rd);
  if (rc)
    return rc;
  char settle[96] = "";
#ifdef JDB_HAVE_ROCKSDB
  if (e == TB_ROCKS)
    snprintf(settle, sizeof settle, ", then %.1f s until no flush or compaction ran or was "
             "pending", bench_rocks_settle(&g->rk, TB_SETTLE_SECS));
#endif
  uint8_t zero[TB_KLEN] = {0}, prev[TB_KLEN];
  size_t count = 0, disorder = 0;
  struct tb_io io0 = tb_io_now();
  t0 = bench_now_ns();
  if ((rc = g->op->rbegin(g, 1)) != 0)
    return rc;
  struct tb_kv kv;
  for (rc = g->op->seek(g, zero, 0, &kv); rc == 0; rc = g->op->step(g, 0, &kv)) {
    if (kv.klen != TB_KLEN || kv.vlen != TB_VLEN || (count && memcmp(kv.k, prev, TB_KLEN) <= 0))
      disorder++;
    if (kv.klen == TB_KLEN)
      memcpy(prev, kv.k, TB_KLEN);
    count++;
  }
  g->op->rend(g);
  double scan_secs = bench_secs(t0, bench_now_ns());
  struct tb_io io1 = tb_io_now();
  if (rc != TB_END)
    return rc;
  char info[256];
  g->op->info(g, info, sizeof info);
  bench_note("tablet.reads.%s: reopen %.2f s (%.1f MB read from the device)%s; warm-up scan of "
             "%zu entries %.2f s (%.1f MB read from the device); %s",
             g->tag, open_secs, open_rd / 1e6, settle, count, scan_secs,
             (double)(io1.rd - io0.rd) / 1e6, info);
  if (count != r->n || disorder) {
    bench_note("tablet.reads: VERIFY FAILED: %s scan saw %zu entries (want %zu), %zu out of "
               "order or of the wrong size",
               g->name, count, r->n, disorder);
    return TB_ERR;
  }
  return 0;
}

static int tb_gets(struct tb_run *r, struct tb_eng *g, uint64_t seed, double secs,
                   struct tb_rep *rep, uint64_t *bad)
{
  uint64_t rng = seed, ops = 0;
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(secs * 1e9), now = t0;
  while (now < deadline) {
    for (int i = 0; i < 256; i++, ops++) {
      size_t idx = (size_t)(bench_rand(&rng) % r->n);
      int rc = g->op->get(g, tb_key(r->rndk, idx), tb_val(r, idx, TB_VLEN), TB_VLEN);
      if (rc < 0)
        return rc;
      if (rc)
        (*bad)++;
    }
    now = bench_now_ns();
  }
  rep->ops = ops;
  rep->secs = bench_secs(t0, now);
  return 0;
}

static int tb_scans(struct tb_run *r, struct tb_eng *g, int reverse, uint64_t seed, double secs,
                    struct tb_rep *rep, uint64_t *steps, uint64_t *bad)
{
  uint8_t prev[TB_KLEN];
  uint64_t rng = seed, ops = 0;
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(secs * 1e9), now = t0;
  while (now < deadline) {
    for (int i = 0; i < 64; i++, ops++) {
      size_t idx = (size_t)(bench_rand(&rng) % r->n);
      const uint8_t *k = tb_key(r->rndk, idx);
      struct tb_kv kv;
      int rc = g->op->seek(g, k, reverse, &kv);
      if (rc < 0)
        return rc;
      if (rc || kv.klen != TB_KLEN || memcmp(kv.k, k, TB_KLEN) || kv.vlen != TB_VLEN ||
          memcmp(kv.v, tb_val(r, idx, TB_VLEN), TB_VLEN)) {
        (*bad)++;
        continue;
      }
      memcpy(prev, kv.k, TB_KLEN);
      for (int s = 0; s < TB_STEPS; s++) {
        rc = g->op->step(g, reverse, &kv);
        if (rc < 0)
          return rc;
        if (rc)
          break;
        int c = kv.klen == TB_KLEN ? memcmp(kv.k, prev, TB_KLEN) : 0;
        if ((reverse ? c >= 0 : c <= 0) || kv.vlen != TB_VLEN)
          (*bad)++;
        memcpy(prev, kv.k, TB_KLEN);
        (*steps)++;
      }
    }
    now = bench_now_ns();
  }
  rep->ops = ops;
  rep->secs = bench_secs(t0, now);
  return 0;
}

struct tb_acc {
  struct tb_rep rep[TB_REPS_MAX];
  uint64_t ops, bad, steps, rd;
};

/* One read phase of nw workloads (ws[]) run interleaved: repeat i runs each workload once per
   engine, the workloads in turn (in reverse order on odd repeats), so that workloads compared with
   each other (seek+prev10 against seek+next10) see the same background (the other engines'
   compactions and writeback) and neither always runs first. Rows are medians of the reps. */
static void tb_phase(struct tb_run *r, const int *ws, int nw, int reps, const int *open)
{
  struct tb_acc acc[TB_NW][TB_NENG];
  memset(acc, 0, sizeof acc);
  int on[TB_NENG];
  for (int e = 0; e < TB_NENG; e++) {
    on[e] = 0;
    for (int j = 0; j < nw; j++)
      on[e] |= open[e] && r->have[e] && tb_want(r, ws[j], e);
  }
  double rep_secs = r->env->secs / reps;
  for (int i = 0; i < reps; i++)
    for (int j = 0; j < nw; j++) {
      int w = ws[i % 2 ? nw - 1 - j : j];
      for (int e = 0; e < TB_NENG; e++) {
        if (!on[e] || !tb_want(r, w, e))
          continue;
        struct tb_eng *g = &r->eng[e];
        struct tb_acc *a = &acc[w][e];
        uint64_t seed = r->env->seed * 7919 + (uint64_t)w * 131 + (uint64_t)i;
        int rc = g->op->rbegin(g, w != TB_W_READ);
        if (rc) {
          on[e] = 0;
          tb_drop_engine(r, e);
          continue;
        }
        struct tb_io io0 = tb_io_now();
        if (w == TB_W_READ)
          rc = tb_gets(r, g, seed, rep_secs, &a->rep[i], &a->bad);
        else
          rc = tb_scans(r, g, w == TB_W_PREV, seed, rep_secs, &a->rep[i], &a->steps, &a->bad);
        a->rd += tb_io_now().rd - io0.rd;
        g->op->rend(g);
        if (rc) {
          on[e] = 0;
          tb_drop_engine(r, e);
          continue;
        }
        a->ops += a->rep[i].ops;
      }
    }
  for (int j = 0; j < nw; j++)
    for (int e = 0; e < TB_NENG; e++) {
      int w = ws[j];
      if (!on[e] || !tb_want(r, w, e))
        continue;
      struct tb_eng *g = &r->eng[e];
      struct tb_acc *a = &acc[w][e];
      char all[512], name[64], steps[48] = "";
      size_t o = 0;
      for (int i = 0; i < reps && o < sizeof all; i++)
        o += (size_t)snprintf(all + o, sizeof all - o, "%s%.0f", i ? " / " : "",
                              (double)a->rep[i].ops / a->rep[i].secs);
      if (nw > 1 && w == ws[nw - 1] && tb_want(r, ws[0], e) && o < sizeof all) {
        /* the per-repeat ratios against the first workload, each from the same moment's
           background; their median is the paired ratio */
        double f[TB_REPS_MAX];
        char *q = all + o;
        size_t room = sizeof all - o;
        int k = snprintf(q, room, " (per repeat / %s:", tb_wname[ws[0]]);
        for (int i = 0; i < reps; i++) {
          const struct tb_rep *x = &a->rep[i], *y = &acc[ws[0]][e].rep[i];
          f[i] = y->ops && x->secs > 0 ? ((double)x->ops / x->secs) / ((double)y->ops / y->secs) : 0;
          if (k >= 0 && (size_t)k < room)
            k += snprintf(q + k, room - (size_t)k, " %.2f", f[i]);
        }
        qsort(f, (size_t)reps, sizeof *f, bench_cmp_double);
        r->paired[w][e] = (f[(reps - 1) / 2] + f[reps / 2]) / 2;
        if (k >= 0 && (size_t)k < room)
          snprintf(q + k, room - (size_t)k, "; median %.2f)", r->paired[w][e]);
      }
      qsort(a->rep, (size_t)reps, sizeof *a->rep, tb_cmp_rep);
      /* the median; of an even count, the mean rate of the middle two */
      const struct tb_rep *m0 = &a->rep[(reps - 1) / 2], *m1 = &a->rep[reps / 2];
      double rate = ((double)m0->ops / m0->secs + (double)m1->ops / m1->secs) / 2;
      snprintf(name, sizeof name, "tablet.%s.%s", tb_wname[w], g->tag);
      bench_row(name, (uint64_t)(rate * m1->secs + 0.5), m1->secs, 0, NULL, 0);
      if (w != TB_W_READ)
        snprintf(steps, sizeof steps, "; %.2f steps per seek",
                 a->ops ? (double)a->steps / (double)a->ops : 0);
      bench_note("%s: %d x %.2f s: %s ops/s; %.1f bytes read from the device per op%s", name,
                 reps, rep_secs, all, a->ops ? (double)a->rd / (double)a->ops : 0, steps);
      if (a->bad) {
        bench_note("%s: VERIFY FAILED: %llu bad results", name, (unsigned long long)a->bad);
        r->fail = 1;
      }
      r->rate[w][e] = rate;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* fill4k + overwrite4k                                                                         */

static void tb_overwrite(struct tb_run *r, int e)
{
  struct tb_eng *g = &r->eng[e];
  tb_dir(r, e, tb_wname[TB_W_OW4K]);
  bench_rmtree(g->dir);
  double vbytes = TB_KLEN + TB_BIGV;
  g->map_bytes = (size_t)((double)(r->k + r->ow) * vbytes * 2) + (1ull << 30);
  memset(r->last, 0, r->k * sizeof *r->last);
  sync();
  struct tb_io io0 = tb_io_now();
  double fill_secs = 0, ow_secs = 0;
  size_t nlat = 0;
  char name[64], info[256] = "";
  int rc = tb_open(g);
  if (!rc)
    rc = tb_puts(r, g, r->owk, r->k, r->k, TB_BIGV, TB_OW_BATCH, NULL, 0, r->last, &fill_secs,
                 &nlat);
  if (!rc) {
    snprintf(name, sizeof name, "tablet.%s.%s", tb_wname[TB_W_FILL4K], g->tag);
    bench_row(name, r->k, fill_secs, (uint64_t)((double)r->k * vbytes), r->lat, nlat);
    r->rate[TB_W_FILL4K][e] = (double)r->k / fill_secs;
  }
  struct tb_io io1 = tb_io_now();
  uint64_t du1 = tb_du(g->dir, NULL);
  unsigned segs0 = 0, segs1 = 0;
  uint64_t zero0 = e == TB_JDB && !rc ? tb_jdb_zero_fill(g, &segs0) : 0;
  uint64_t rng = r->env->seed ^ 0x0e4ull;
  if (!rc)
    rc = tb_puts(r, g, r->owk, r->k, r->ow, TB_BIGV, TB_OW_BATCH, &rng, r->k, r->last, &ow_secs,
                 &nlat);
  if (!rc)
    g->op->info(g, info, sizeof info);
  struct tb_end end;
  if (tb_finish(r, e, rc, &end))
    return;
  struct tb_io io2 = end.io;
  double close_secs = end.close_secs;
  uint64_t du = end.du, files = end.files;
  double user_ow = (double)r->ow * vbytes, user_all = (double)(r->k + r->ow) * vbytes;
  double dev_ow, wr_ow = tb_written(r, io1, io2, du > du1 ? du - du1 : 0, &dev_ow);
  double dev_all, wr_all = tb_written(r, io0, io2, du, &dev_all);
  snprintf(name, sizeof name, "tablet.%s.%s", tb_wname[TB_W_OW4K], g->tag);
  bench_row(name, r->ow, ow_secs, (uint64_t)user_ow, r->lat, nlat);
  r->rate[TB_W_OW4K][e] = (double)r->ow / ow_secs;
  r->wa[TB_W_OW4K][e] = wr_ow / user_ow;
  r->wa_all4k[e] = wr_all / user_all;
  r->wa_dev[TB_W_OW4K][e] = dev_ow / user_ow;
  r->wa_all4k_dev[e] = dev_all / user_all;
  r->du[TB_W_OW4K][e] = (double)du;
  if (e == TB_JDB) {
    uint64_t zero1 = g->zero_bytes;
    segs1 = g->zero_segs;
    r->wa_nozero[TB_W_OW4K] = (wr_ow - (double)(zero1 - zero0)) / user_ow;
    bench_note("%s: of the bytes written in the overwrites + close, about %.1f MB are the log's "
               "zero fill (%u segments zero-filled); WA without it %.2f",
               name, (double)(zero1 - zero0) / 1e6, segs1 - segs0, r->wa_nozero[TB_W_OW4K]);
  }
  /* reopen and check every key's last value */
  uint64_t t0 = bench_now_ns();
  rc = tb_open(g);
  double open_secs = bench_secs(t0, bench_now_ns());
  if (!rc)
    rc = tb_check(r, g, r->owk, r->k, r->last, TB_BIGV, 0, tb_wname[TB_W_OW4K]);
  int crc = tb_close(g);
  bench_note("%s: %s; close %.2f s; written %.1f MB in the overwrites + close (WA %.2f; block "
             "layer %.1f MB, WA %.2f), %.1f MB from open (WA %.2f; block layer %.2f); %.1f MB "
             "read from the device from open to after close; du after close %.1f MB (file sizes "
             "%.1f MB) for %.1f MB live; reopen %.2f s, every key's last value %s; p50/p99 per "
             "batch of %u, slowest %.1f ms",
             name, info, close_secs, wr_ow / 1e6, wr_ow / user_ow, dev_ow / 1e6, dev_ow / user_ow,
             wr_all / 1e6, wr_all / user_all, dev_all / user_all,
             (double)(io2.rd - io0.rd) / 1e6, (double)du / 1e6,
             (double)files / 1e6,
             (double)r->k * vbytes / 1e6, open_secs, rc || crc ? "NOT checked" : "checked",
             TB_OW_BATCH, tb_ms(r->lat[nlat - 1]));
  if (rc || crc)
    tb_drop_engine(r, e);
  else if (!r->env->keep)
    bench_rmtree(g->dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Summary                                                                                      */

static void tb_summary(struct tb_run *r)
{
  char t[TB_NW][96];
  memset(t, 0, sizeof t);
  double x = r->rate[TB_W_FILLRND][TB_ROCKS] > 0
               ? r->rate[TB_W_FILLRND][TB_JDB] / r->rate[TB_W_FILLRND][TB_ROCKS] : 0;
  snprintf(t[TB_W_FILLRND], sizeof t[0], "JDB/RocksDB >= 2: %s", bench_verdict(x, 2, 1e300));
  x = r->rate[TB_W_READ][TB_LMDB] > 0 ? r->rate[TB_W_READ][TB_JDB] / r->rate[TB_W_READ][TB_LMDB]
                                      : 0;
  snprintf(t[TB_W_READ], sizeof t[0], "JDB/LMDB >= 1: %s", bench_verdict(x, 1, 1e300));
  /* the paired ratio: the median of the per-repeat ratios (each repeat's seek+prev10 against
     the seek+next10 run just before or after it) */
  x = r->paired[TB_W_PREV][TB_JDB];
  snprintf(t[TB_W_PREV], sizeof t[0], "JDB prev/next (paired) >= 0.9: %.2f %s", x,
           bench_verdict(x, 0.9, 1e300));
  printf("\ntablet summary: %zu puts of %u + %u bytes (fills), overwrite4k %zu keys then %zu "
         "puts of %u + %u bytes; ops/s, ratio > 1 = JDB faster\n",
         r->n, TB_KLEN, TB_VLEN, r->k, r->ow, TB_KLEN, TB_BIGV);
  bench_peer_header("workload", "target");
  for (int w = 0; w < TB_NW; w++) {
    int any = 0;
    for (int e = 0; e < TB_NENG; e++)
      any |= r->rate[w][e] > 0;
    bench_peer_line(tb_wname[w], r->rate[w], any, "%.0f", t[w]);
    if (w == TB_W_FILLRND) {
      int anyc = 0;
      for (int e = 0; e < TB_NENG; e++)
        anyc |= r->fill_close[e] > 0;
      bench_peer_line("fillrandom (puts+close)", r->fill_close, anyc, "%.0f", "");
    }
  }
  bench_peer_header("write amplification", "(lower is better)");
  static const int wa_w[] = {TB_W_FILLSEQ, TB_W_FILLRND, TB_W_OW4K};
  for (int i = 0; i < 3; i++) {
    int w = wa_w[i], any = 0;
    char label[48], target[96] = "";
    for (int e = 0; e < TB_NENG; e++)
      any |= r->wa[w][e] > 0;
    snprintf(label, sizeof label, "WA %s+close", tb_wname[w]);
    if (w == TB_W_OW4K)
      snprintf(target, sizeof target, "JDB <= 1.3: %s; ", bench_verdict(r->wa[w][TB_JDB], 0, 1.3));
    if (r->wa[w][TB_JDB] > 0)
      snprintf(target + strlen(target), sizeof target - strlen(target),
               "JDB without the log's zero fill %.2f", r->wa_nozero[w]);
    bench_peer_line(label, r->wa[w], any, "%.2f", target);
    bench_peer_line("  block layer only", r->wa_dev[w], any, "%.2f", "");
  }
  int any4 = 0;
  for (int e = 0; e < TB_NENG; e++)
    any4 |= r->wa_all4k[e] > 0;
  bench_peer_line("WA fill4k+overwrite4k", r->wa_all4k, any4, "%.2f", "from open to after close");
  bench_peer_line("  block layer only", r->wa_all4k_dev, any4, "%.2f", "");
  for (int i = 0; i < 3; i++) {
    int w = wa_w[i], any = 0;
    char label[48], target[96] = "";
    double mb[TB_NENG];
    for (int e = 0; e < TB_NENG; e++) {
      mb[e] = r->du[w][e] / 1e6;
      any |= mb[e] > 0;
    }
    snprintf(label, sizeof label, "disk MB %s", tb_wname[w]);
    snprintf(target, sizeof target, "user data %.1f MB live",
             (w == TB_W_OW4K ? (double)r->k * (TB_KLEN + TB_BIGV)
                             : (double)r->n * (TB_KLEN + TB_VLEN)) / 1e6);
    bench_peer_line(label, mb, any, "%.1f", target);
  }
  if (r->wa_fallback)
    printf("  # write_bytes of /proc/self/io did not move: block layer bytes from the growth of du "
           "instead\n");
  printf("\n");
  fflush(stdout);
}

/* ------------------------------------------------------------------------------------------- */

static void tb_be64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void tb_free(struct tb_run *r)
{
  free(r->seqk);
  free(r->rndk);
  free(r->owk);
  free(r->pool);
  free(r->last);
  free(r->puts);
  free(r->lat);
  free(r->eng[TB_JDB].jops);
  if (r->eng[TB_JDB].ctx)
    fs_ctx_destroy(r->eng[TB_JDB].ctx);
  free(r);
}

int bench_tablet(const struct bench_env *env)
{
  struct tb_run *r = calloc(1, sizeof *r);
  if (!r)
    return 1;
  r->env = env;
  r->n = bench_env_size("JDB_BENCH_TABLET_N", env->quick ? 200000 : 2000000);
  r->ow = bench_env_size("JDB_BENCH_TABLET_OW_N", env->quick ? 20000 : 200000);
  r->k = r->ow / 4 ? r->ow / 4 : 1;
  size_t nlat = r->n / TB_FILL_BATCH + r->ow / TB_OW_BATCH + r->k / TB_OW_BATCH + 4;
  r->seqk = malloc(r->n * TB_KLEN);
  r->rndk = malloc(r->n * TB_KLEN);
  r->owk = malloc(r->k * TB_KLEN);
  r->pool = malloc(TB_POOL + TB_BIGV);
  r->last = calloc(r->k, sizeof *r->last);
  r->puts = calloc(TB_BATCH_MAX, sizeof *r->puts);
  r->lat = calloc(nlat, sizeof *r->lat);
  struct tb_eng *j = &r->eng[TB_JDB];
  j->jops = calloc(TB_BATCH_MAX, sizeof *j->jops);
  if (!r->seqk || !r->rndk || !r->owk || !r->pool || !r->last || !r->puts || !r->lat ||
      !j->jops) {
    bench_note("tablet: no memory for %zu keys", r->n);
    tb_free(r);
    return 1;
  }
  for (size_t i = 0; i < r->n; i++) {
    tb_be64(r->seqk + i * TB_KLEN, i);
    memcpy(r->seqk + i * TB_KLEN + 8, "fillseq.", 8);
  }
  bench_keys_random(r->rndk, r->n, env->seed);
  bench_keys_random(r->owk, r->k, env->seed + 1);
  bench_pool_fill(r->pool, TB_POOL + TB_BIGV, env->seed + 2);
  struct fs_ctx_opts fo = {.backend = FS_BACKEND_AUTO};
  int rc = fs_ctx_create(&fo, &j->ctx);
  if (rc) {
    bench_note("tablet: fs_ctx_create: %s", jdb_strerror(rc));
    tb_free(r);
    return 1;
  }
  *j = (struct tb_eng){.name = "JDB", .tag = "jdb", .op = &tb_jdb_ops, .ctx = j->ctx,
                       .jops = j->jops};
  r->have[TB_JDB] = 1;
  r->eng[TB_ROCKS] = (struct tb_eng){.name = "RocksDB", .tag = "rocksdb"};
  r->eng[TB_LMDB] = (struct tb_eng){.name = "LMDB", .tag = "lmdb"};
#ifdef JDB_HAVE_ROCKSDB
  r->eng[TB_ROCKS].op = &tb_rocks_ops;
  r->have[TB_ROCKS] = 1;
#else
  bench_note("RocksDB not built in (librocksdb-dev not found): its column stays empty");
#endif
#ifdef JDB_HAVE_LMDB
  r->eng[TB_LMDB].op = &tb_lmdb_ops;
  r->have[TB_LMDB] = 1;
#else
  bench_note("LMDB not built in (liblmdb-dev not found): its column stays empty");
#endif
  /* JDB's page cache: the public API's default (jdb_options_init), unless the env names one */
  jdb_options_t dopts;
  jdb_options_init(&dopts);
  size_t cache_mb = bench_env_size("JDB_BENCH_TABLET_CACHE_MB", 0);
  uint64_t jcache = cache_mb ? (uint64_t)cache_mb << 20 : dopts.cache_bytes;
  uint64_t rcache = cache_mb ? (uint64_t)cache_mb << 20 : (uint64_t)TB_ROCKS_CACHE_MB << 20;
  r->eng[TB_JDB].cache_bytes = jcache;
  r->eng[TB_ROCKS].cache_bytes = rcache;
  bench_note("tablet: JDB tab_opts defaults but a %.0f MiB page cache (%s; %llu frames, filled "
             "as pages are read), fs backend %s, tab_write flags 0 (handed to the kernel); "
             "RocksDB default options + %.0f MiB LRU block cache, WAL on, sync off; LMDB "
             "MDB_NOSYNC, a write txn per batch",
             (double)jcache / 1048576.0, cache_mb ? "JDB_BENCH_TABLET_CACHE_MB" : "the API default",
             (unsigned long long)(jcache / 4096), fs_ctx_backend_name(j->ctx),
             (double)rcache / 1048576.0);
  bench_table_header();

  for (int e = 0; e < TB_NENG; e++)
    if (tb_want(r, TB_W_FILLSEQ, e))
      tb_fill(r, TB_W_FILLSEQ, e, r->seqk, 0);

  int reads[TB_NENG], open[TB_NENG] = {0};
  for (int e = 0; e < TB_NENG; e++) {
    reads[e] = tb_want(r, TB_W_READ, e) || tb_want(r, TB_W_NEXT, e) || tb_want(r, TB_W_PREV, e);
    if (reads[e] || tb_want(r, TB_W_FILLRND, e))
      tb_fill(r, TB_W_FILLRND, e, r->rndk, reads[e]);
  }
  int any_reads = 0;
  for (int e = 0; e < TB_NENG; e++)
    if (reads[e] && r->have[e]) {
      if (tb_reads_open(r, e)) {
        tb_drop_engine(r, e);
        continue;
      }
      open[e] = 1;
      any_reads = 1;
    }
  if (any_reads) {
    static const int reads_w[] = {TB_W_READ}, scans_w[] = {TB_W_NEXT, TB_W_PREV};
    tb_phase(r, reads_w, 1, TB_REPS, open);
    tb_phase(r, scans_w, 2, TB_SCAN_REPS, open);
  }
  for (int e = 0; e < TB_NENG; e++)
    if (open[e] && r->have[e]) {
      uint64_t t0 = bench_now_ns();
      if (tb_close(&r->eng[e])) {
        tb_drop_engine(r, e);
        continue;
      }
      bench_note("tablet.reads.%s: close %.2f s", r->eng[e].tag, bench_secs(t0, bench_now_ns()));
      if (!env->keep)
        bench_rmtree(r->eng[e].dir);
    }

  for (int e = 0; e < TB_NENG; e++)
    if (tb_want(r, TB_W_FILL4K, e) || tb_want(r, TB_W_OW4K, e))
      tb_overwrite(r, e);

  tb_summary(r);
  int fail = r->fail;
  tb_free(r);
  return fail;
}
