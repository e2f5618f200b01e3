/*
 * bench_peer.c - the pieces bench_tablet.c and bench_api.c share (bench_peer.h): fillrandom's
 * data, the summary lines, and RocksDB / LMDB opened and written the same way in both.
 */
#include "bench_peer.h"

#include "bench.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

size_t bench_env_size(const char *var, size_t dflt)
{
  const char *s = getenv(var);
  if (!s || !*s)
    return dflt;
  unsigned long long v = strtoull(s, NULL, 0);
  return v ? (size_t)v : dflt;
}

static int bench_rm_fn(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  remove(p);
  return 0;
}

void bench_rmtree(const char *dir)
{
  nftw(dir, bench_rm_fn, 16, FTW_DEPTH | FTW_PHYS);
}

void bench_keys_random(uint8_t *keys, size_t n, uint64_t seed)
{
  uint64_t rng = seed;
  for (size_t i = 0; i < n; i++) {
    uint64_t a = bench_rand(&rng), b = bench_rand(&rng);
    memcpy(keys + i * BENCH_KLEN, &a, 8);
    memcpy(keys + i * BENCH_KLEN + 8, &b, 8);
  }
}

void bench_pool_fill(uint8_t *pool, size_t bytes, uint64_t seed)
{
  uint64_t rng = seed;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t v = bench_rand(&rng);
    memcpy(pool + i, &v, 8);
  }
}

double bench_secs(uint64_t a, uint64_t b)
{
  return (double)(b - a) / 1e9;
}

void bench_sleep_ms(unsigned ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* Summary lines                                                                                */

#define BENCH_PEER_FMT "%-24s %12s %14s %12s %12s %10s  %s\n"

static void bench_cell(char *buf, size_t cap, int on, double v, const char *fmt)
{
  if (on && v > 0)
    snprintf(buf, cap, fmt, v);
  else
    snprintf(buf, cap, "-");
}

void bench_peer_header(const char *first, const char *last)
{
  printf(BENCH_PEER_FMT, first, "JDB", "RocksDB", "LMDB", "JDB/RocksDB", "JDB/LMDB", last);
}

void bench_peer_line(const char *label, const double *v, int any, const char *fmt,
                     const char *target)
{
  char c[BENCH_NENG][32], q[2][32];
  if (!any)
    return;
  for (int e = 0; e < BENCH_NENG; e++)
    bench_cell(c[e], sizeof c[e], 1, v[e], fmt);
  bench_cell(q[0], sizeof q[0], v[BENCH_ROCKS] > 0, v[BENCH_JDB] / v[BENCH_ROCKS], "%.2f");
  bench_cell(q[1], sizeof q[1], v[BENCH_LMDB] > 0, v[BENCH_JDB] / v[BENCH_LMDB], "%.2f");
  printf(BENCH_PEER_FMT, label, c[BENCH_JDB], c[BENCH_ROCKS], c[BENCH_LMDB], q[0], q[1], target);
}

const char *bench_verdict(double v, double lo, double hi)
{
  if (v <= 0)
    return "(not measured)";
  return v >= lo && v <= hi ? "met" : "MISSED";
}

/* ------------------------------------------------------------------------------------------- */
/* RocksDB                                                                                      */

#ifdef JDB_HAVE_ROCKSDB
static void bench_rocks_free(struct bench_rocks *r)
{
  rocksdb_writebatch_destroy(r->wb);
  rocksdb_writeoptions_destroy(r->wo);
  rocksdb_readoptions_destroy(r->ro);
  rocksdb_options_destroy(r->opts);
  rocksdb_block_based_options_destroy(r->bbto);
  rocksdb_cache_destroy(r->cache);
  memset(r, 0, sizeof *r);
}

char *bench_rocks_open(struct bench_rocks *r, const char *dir, uint64_t cache_bytes)
{
  memset(r, 0, sizeof *r);
  r->opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(r->opts, 1);
  r->cache = rocksdb_cache_create_lru((size_t)cache_bytes);
  r->bbto = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(r->bbto, r->cache);
  rocksdb_options_set_block_based_table_factory(r->opts, r->bbto);
  r->wo = rocksdb_writeoptions_create();
  r->ro = rocksdb_readoptions_create();
  r->wb = rocksdb_writebatch_create();
  char *err = NULL;
  r->db = rocksdb_open(r->opts, dir, &err);
  if (err || !r->db) {
    r->db = NULL;
    bench_rocks_free(r);
    return err ? err : strdup("rocksdb_open failed");
  }
  return NULL;
}

void bench_rocks_close(struct bench_rocks *r)
{
  if (r->db)
    rocksdb_close(r->db);
  r->db = NULL;
  bench_rocks_free(r);
}

char *bench_rocks_write(struct bench_rocks *r, const rocksdb_writeoptions_t *wo,
                        const struct bench_put *p, uint32_t n)
{
  rocksdb_writebatch_clear(r->wb);
  for (uint32_t i = 0; i < n; i++)
    rocksdb_writebatch_put(r->wb, (const char *)p[i].k, BENCH_KLEN, (const char *)p[i].v,
                           p[i].vlen);
  char *err = NULL;
  rocksdb_write(r->db, wo, r->wb, &err);
  return err;
}

uint64_t bench_rocks_prop(struct bench_rocks *r, const char *name)
{
  uint64_t v = 0;
  return rocksdb_property_int(r->db, name, &v) == 0 ? v : 0;
}

double bench_rocks_settle(struct bench_rocks *r, double max_secs)
{
  uint64_t t0 = bench_now_ns();
  while (bench_secs(t0, bench_now_ns()) < max_secs) {
    if (!bench_rocks_prop(r, "rocksdb.num-running-compactions") &&
        !bench_rocks_prop(r, "rocksdb.num-running-flushes") &&
        !bench_rocks_prop(r, "rocksdb.compaction-pending") &&
        !bench_rocks_prop(r, "rocksdb.mem-table-flush-pending"))
      break;
    bench_sleep_ms(100);
  }
  return bench_secs(t0, bench_now_ns());
}
#endif /* JDB_HAVE_ROCKSDB */

/* ------------------------------------------------------------------------------------------- */
/* LMDB                                                                                         */

#ifdef JDB_HAVE_LMDB
int bench_lmdb_open(const char *dir, size_t map_bytes, unsigned flags, MDB_env **env,
                    MDB_dbi *dbi, const char **what)
{
  mkdir(dir, 0755);
  *what = "mdb_env_create";
  int rc = mdb_env_create(env);
  if (rc)
    return rc;
  *what = "mdb_env_open";
  if ((rc = mdb_env_set_mapsize(*env, map_bytes)) != 0 ||
      (rc = mdb_env_open(*env, dir, flags, 0644)) != 0)
    goto fail;
  *what = "mdb_dbi_open";
  MDB_txn *txn;
  if ((rc = mdb_txn_begin(*env, NULL, 0, &txn)) != 0)
    goto fail;
  if ((rc = mdb_dbi_open(txn, NULL, 0, dbi)) != 0) {
    mdb_txn_abort(txn);
    goto fail;
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    goto fail;
  return 0;
fail:
  mdb_env_close(*env);
  *env = NULL;
  return rc;
}

int bench_lmdb_write(MDB_env *env, MDB_dbi dbi, const struct bench_put *p, uint32_t n,
                     const char **what)
{
  MDB_txn *txn;
  *what = "mdb_txn_begin";
  int rc = mdb_txn_begin(env, NULL, 0, &txn);
  if (rc)
    return rc;
  *what = "mdb_put";
  for (uint32_t i = 0; i < n; i++) {
    MDB_val k = {.mv_size = BENCH_KLEN, .mv_data = (void *)p[i].k};
    MDB_val v = {.mv_size = p[i].vlen, .mv_data = (void *)p[i].v};
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
      mdb_txn_abort(txn);
      return rc;
    }
  }
  *what = "mdb_txn_commit";
  return mdb_txn_commit(txn);
}
#endif /* JDB_HAVE_LMDB */
