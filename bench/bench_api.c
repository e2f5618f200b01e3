/*
 * bench_api.c - `jdb_bench api`: JDB through its public API (jdb.h, linked from the jdb_capi
 * module: client threads talk to the shard threads over the runtime's rings) next to RocksDB
 * (JDB_HAVE_ROCKSDB) and LMDB (JDB_HAVE_LMDB) through their C APIs, in one process, on the data
 * of the tablet bench's fillrandom (bench_peer.h: random 16-byte keys, 100-byte values from a
 * pool of random bytes, so that every read is checked).
 *
 * Settings (env JDB_BENCH_API_N: fill keys, default 2 M, 200 k with --quick;
 * JDB_BENCH_API_CACHE_MB: JDB's cache and RocksDB's block cache, default 1024, enough for the
 * fill's tree so that reads compare engines and not the device; JDB_BENCH_API_SHARDS: shards of the main instance, default
 * 1, which on a 2-core machine leaves a core to the client thread instead of sharing one with a
 * pinned shard thread; 0 = one per online CPU; the ingest cases measure 1 against 2 shards):
 *   JDB      jdb_options_init defaults but cache_bytes and shards; one table "bench"; writes with
 *            flags 0 (handed to the kernel) except jdb_put_sync (power-loss durable).
 *   RocksDB  bench_rocks_open (default options + LRU block cache); writes WAL on, sync off, except
 *            put_sync: sync = true.
 *   LMDB     MDB_NOSYNC, one write txn per call (or batch), except put_sync: MDB_NOSYNC cleared,
 *            so every commit is durable; gets in a read txn held by the thread for the case.
 *
 * Workloads, engines in turn within each case (names for --filter: api.<case>.<jdb|rocksdb|lmdb>):
 *   fillrandom     the N keys in generation order, batches of 1000 (JDB: jdb_batch + jdb_write),
 *                  into an empty database which then stays open for the rest: it is scanned once
 *                  (count and order checked; warms the caches). First each engine is left to
 *                  settle: RocksDB until no flush or compaction runs, JDB until no checkpoint
 *                  runs (the memtables keep what they hold).
 *   get.Tt         T = 1, 2, 4 client threads calling get of random fill keys for secs, value
 *                  checked; p50 / p99 of single calls.
 *   pipe.get.D     one thread, D = 1, 16, 256 gets per exec (JDB: jdb_pipe; RocksDB:
 *                  rocksdb_multi_get; LMDB: D gets in one renewed read txn); ops = gets,
 *                  p50 / p99 per exec.
 *   put.Tt         T threads calling put of random keys of a second key set (disjoint per thread,
 *                  so the last write of each thread is checked afterwards).
 *   pipe.put.D     one thread, D puts per exec (JDB: jdb_pipe, flags 0; RocksDB: a write batch;
 *                  LMDB: one write txn).
 *   floor          4 KiB pwrite + fdatasync at random block offsets of a file written in full
 *                  before (O_DIRECT), in --dir, one pair per op; then fio (when installed) on the
 *                  same file: psync randwrite, bs 4k, fdatasync=1.
 *   put_sync.Tt    T = 1 and 64 threads calling the durable put.
 *   ingest.Sshard  scaling: a fresh instance of S = 1 and 2 shards, S client threads, each writing
 *                  N / S fill keys in batches of 1000 to its own table, placed on shard i (found by
 *                  a probe write and the per-shard jdb_stats), then 1000 keys per thread checked.
 * Each case runs secs (half of it with --quick). Rows: ops/s and per-call (per-exec, per-batch)
 * latency; the summary compares the engines and ends with the targets of issue 6.
 */
#include "bench.h"
#include "bench_peer.h"

#include "jdb.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AB_BATCH 1000u          /* fillrandom and ingest: puts per batch, as the tablet bench */
#define AB_DEPTH_MAX 256u
#define AB_LAT_MAX (1u << 22)   /* latencies kept per case, split between its threads */
#define AB_CACHE_MB 1024u
#define AB_SETTLE_SECS 120.0
#define AB_FLOOR_BS 4096u
#define AB_CHECKS 1000u         /* ingest: keys checked per thread */

enum { AB_JDB = BENCH_JDB, AB_ROCKS = BENCH_ROCKS, AB_LMDB = BENCH_LMDB, AB_NENG = BENCH_NENG };
enum { AB_GET, AB_PUT, AB_PUT_SYNC };

/* The cases after the fill, in the order they run. depth 0: single calls. */
struct ab_case {
  const char *name, *label;
  int kind;
  unsigned threads, depth;
};
static const struct ab_case ab_cases[] = {
  {"get.1t", "get, 1 thread", AB_GET, 1, 0},
  {"get.2t", "get, 2 threads", AB_GET, 2, 0},
  {"get.4t", "get, 4 threads", AB_GET, 4, 0},
  {"pipe.get.1", "pipeline get x1", AB_GET, 1, 1},
  {"pipe.get.16", "pipeline get x16", AB_GET, 1, 16},
  {"pipe.get.256", "pipeline get x256", AB_GET, 1, 256},
  {"put.1t", "put, 1 thread", AB_PUT, 1, 0},
  {"put.2t", "put, 2 threads", AB_PUT, 2, 0},
  {"put.4t", "put, 4 threads", AB_PUT, 4, 0},
  {"pipe.put.1", "pipeline put x1", AB_PUT, 1, 1},
  {"pipe.put.16", "pipeline put x16", AB_PUT, 1, 16},
  {"pipe.put.256", "pipeline put x256", AB_PUT, 1, 256},
  {"put_sync.1t", "put_sync, 1 thread", AB_PUT_SYNC, 1, 0},
  {"put_sync.64t", "put_sync, 64 threads", AB_PUT_SYNC, 64, 0},
};
enum { AB_C_GET1 = 0, AB_C_PGET256 = 5, AB_C_PUT1 = 6, AB_C_SYNC1 = 12, AB_C_SYNC64 = 13,
       AB_NC = sizeof ab_cases / sizeof ab_cases[0] };

struct ab_eng {
  const char *name, *tag;
  int on;                     /* built in, opened, no error so far */
  char dir[4096];
  jdb_t *db;
  jdb_table_t *t;
#ifdef JDB_HAVE_ROCKSDB
  struct bench_rocks rk;
  rocksdb_writeoptions_t *wo_sync;
#endif
#ifdef JDB_HAVE_LMDB
  MDB_env *env;
  MDB_dbi dbi;
#endif
};

struct ab_run {
  const struct bench_env *env;
  struct ab_eng eng[AB_NENG];
  size_t n;
  uint8_t *rndk, *putk, *pool;   /* fill keys, put keys (n each), value pool */
  uint64_t *lat;                 /* AB_LAT_MAX */
  uint64_t cache_bytes;
  uint32_t shards;               /* asked for (0: one per CPU) */
  uint32_t shards_open;          /* the main instance's, from jdb_stats */
  double secs;                   /* per case */
  double fill[AB_NENG];          /* fillrandom ops/s */
  double rate[AB_NC][AB_NENG], p50[AB_NC][AB_NENG], p99[AB_NC][AB_NENG];   /* ns */
  double floor_p50, floor_p99, fio_p50, fio_pair;   /* ns */
  double ingest[2];              /* ops/s with 1 and 2 shards */
  int fail;
};

/* One client thread of a case (or of an ingest). */
struct ab_job {
  struct ab_run *r;
  struct ab_eng *e;
  const struct ab_case *c;
  jdb_table_t *t;               /* ingest: this thread's table */
  unsigned tid, nthreads;
  pthread_rwlock_t *gate;       /* write-held by the starter until every thread exists */
  uint64_t rng, w;              /* random state; write number of the next put */
  uint64_t ops, bad, t0, t1;
  uint64_t *lat;
  size_t cap, nlat;
  size_t last_idx;              /* the last put: key index, write number */
  uint64_t last_w;
  int wrote, rc, stop;
  size_t idx[AB_DEPTH_MAX];     /* the keys of the exec in flight */
  struct bench_put puts[AB_DEPTH_MAX];
  jdb_pipe_t *pipe;
  jdb_batch_t *batch;
#ifdef JDB_HAVE_ROCKSDB
  rocksdb_writebatch_t *wb;
  const char *keys[AB_DEPTH_MAX];
  size_t klens[AB_DEPTH_MAX], vlens[AB_DEPTH_MAX];
  char *vals[AB_DEPTH_MAX], *errs[AB_DEPTH_MAX];
#endif
#ifdef JDB_HAVE_LMDB
  MDB_txn *rtxn;
#endif
};

static const uint8_t *ab_val(const struct ab_run *r, uint64_t w)
{
  return bench_pool_val(r->pool, w, BENCH_VLEN);
}

static int ab_same(const void *v, size_t vlen, const uint8_t *want)
{
  return vlen == BENCH_VLEN && memcmp(v, want, BENCH_VLEN) == 0;
}

static int ab_want(const struct ab_run *r, const char *c, int e)
{
  char name[96];
  snprintf(name, sizeof name, "api.%s.%s", c, r->eng[e].tag);
  return r->eng[e].on && bench_want(r->env, name);
}

/* ------------------------------------------------------------------------------------------- */
/* Errors                                                                                       */

static int ab_jdb_err(struct ab_eng *e, const char *what, int rc)
{
  bench_note("api: JDB %s (%s): %s", what, e->dir, jdb_strerror(rc));
  return -1;
}

#ifdef JDB_HAVE_ROCKSDB
static int ab_rocks_err(struct ab_eng *e, const char *what, char *err)
{
  bench_note("api: RocksDB %s (%s): %s", what, e->dir, err ? err : "error");
  rocksdb_free(err);
  return -1;
}
#endif

#ifdef JDB_HAVE_LMDB
static int ab_lmdb_err(struct ab_eng *e, const char *what, int rc)
{
  bench_note("api: LMDB %s (%s): %s", what, e->dir, mdb_strerror(rc));
  return -1;
}
#endif

/* ------------------------------------------------------------------------------------------- */
/* Engines: open, close, one checked read                                                      */

static int ab_jdb_open(struct ab_run *r, const char *dir, uint32_t shards, jdb_t **db)
{
  jdb_options_t o;
  jdb_options_init(&o);
  o.shards = shards;
  o.cache_bytes = r->cache_bytes;
  return jdb_open(dir, &o, db);
}

static int ab_open(struct ab_run *r, struct ab_eng *e, int which)
{
  snprintf(e->dir, sizeof e->dir, "%s/api-fill.%s", r->env->dir, e->tag);
  bench_rmtree(e->dir);
  if (which == AB_JDB) {
    int rc = ab_jdb_open(r, e->dir, r->shards, &e->db);
    if (rc)
      return ab_jdb_err(e, "jdb_open", rc);
    rc = jdb_table_open(e->db, "bench", 5, JDB_CREATE, &e->t);
    if (rc) {
      jdb_close(e->db);
      e->db = NULL;
      return ab_jdb_err(e, "jdb_table_open", rc);
    }
    return 0;
  }
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS) {
    char *err = bench_rocks_open(&e->rk, e->dir, r->cache_bytes);
    if (err)
      return ab_rocks_err(e, "rocksdb_open", err);
    e->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(e->wo_sync, 1);
    return 0;
  }
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB) {
    const char *what;
    /* the fill, the put keys and room for LMDB's copy-on-write pages */
    size_t map = r->n * (BENCH_KLEN + BENCH_VLEN) * 16 + (2ull << 30);
    int rc = bench_lmdb_open(e->dir, map, MDB_NOSYNC, &e->env, &e->dbi, &what);
    return rc ? ab_lmdb_err(e, what, rc) : 0;
  }
#endif
  return -1;
}

/* Close (timed, noted), remove the directory unless --keep. */
static int ab_close(struct ab_run *r, struct ab_eng *e, int which)
{
  uint64_t t0 = bench_now_ns();
  int rc = 0;
  if (which == AB_JDB && e->db) {
    jdb_table_close(e->t);
    rc = jdb_close(e->db);
    e->db = NULL;
    e->t = NULL;
    if (rc)
      ab_jdb_err(e, "jdb_close", rc);
  }
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS && e->rk.db) {
    rocksdb_writeoptions_destroy(e->wo_sync);
    e->wo_sync = NULL;
    bench_rocks_close(&e->rk);
  }
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB && e->env) {
    mdb_env_close(e->env);
    e->env = NULL;
  }
#endif
  bench_note("api.%s: close %.2f s", e->tag, bench_secs(t0, bench_now_ns()));
  if (!r->env->keep)
    bench_rmtree(e->dir);
  return rc ? -1 : 0;
}

static void ab_drop(struct ab_run *r, int which)
{
  struct ab_eng *e = &r->eng[which];
  if (!e->on)
    return;
  ab_close(r, e, which);
  bench_note("api: %s left out of the remaining workloads after the error above", e->name);
  e->on = 0;
  r->fail = 1;
}

/* One read outside the timed loops: 0 (value as want), 1 (missing or wrong), < 0 (error). */
static int ab_check(struct ab_eng *e, int which, jdb_table_t *t, const uint8_t *k,
                    const uint8_t *want)
{
  if (which == AB_JDB) {
    void *v;
    size_t vl;
    int rc = jdb_get(t, k, BENCH_KLEN, &v, &vl);
    if (rc == JDB_NOTFOUND)
      return 1;
    if (rc)
      return ab_jdb_err(e, "jdb_get", rc);
    rc = !ab_same(v, vl, want);
    jdb_free(v);
    return rc;
  }
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS) {
    char *err = NULL;
    size_t vl;
    char *v = rocksdb_get(e->rk.db, e->rk.ro, (const char *)k, BENCH_KLEN, &vl, &err);
    if (err)
      return ab_rocks_err(e, "rocksdb_get", err);
    int rc = !v || !ab_same(v, vl, want);
    rocksdb_free(v);
    return rc;
  }
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn);
    if (rc)
      return ab_lmdb_err(e, "mdb_txn_begin", rc);
    MDB_val kv = {.mv_size = BENCH_KLEN, .mv_data = (void *)k}, v;
    rc = mdb_get(txn, e->dbi, &kv, &v);
    int out = rc == MDB_NOTFOUND ? 1 : rc ? ab_lmdb_err(e, "mdb_get", rc)
                                          : !ab_same(v.mv_data, v.mv_size, want);
    mdb_txn_abort(txn);
    return out;
  }
#endif
  return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* One call (depth 0) or one exec of a case, per engine                                         */

/* The key of the next op: a random fill key (gets; its value is write number idx) or a random
   put key of this thread's share (puts; the value is the next write number). */
static const uint8_t *ab_next_key(struct ab_job *j, size_t slot)
{
  struct ab_run *r = j->r;
  if (j->c->kind == AB_GET) {
    size_t idx = (size_t)(bench_rand(&j->rng) % r->n);
    j->idx[slot] = idx;
    return r->rndk + idx * BENCH_KLEN;
  }
  size_t share = r->n / j->nthreads;
  size_t idx = (size_t)(bench_rand(&j->rng) % share) * j->nthreads + j->tid;
  j->idx[slot] = idx;
  j->puts[slot] = (struct bench_put){.k = r->putk + idx * BENCH_KLEN, .v = ab_val(r, j->w),
                                     .vlen = BENCH_VLEN};
  j->last_idx = idx;
  j->last_w = j->w++;
  j->wrote = 1;
  return j->puts[slot].k;
}

static int ab_jdb_op(struct ab_job *j)
{
  struct ab_eng *e = j->e;
  const struct ab_case *c = j->c;
  int rc;
  if (!c->depth) {
    const uint8_t *k = ab_next_key(j, 0);
    if (c->kind == AB_GET) {
      void *v;
      size_t vl;
      rc = jdb_get(e->t, k, BENCH_KLEN, &v, &vl);
      if (rc == JDB_NOTFOUND) {
        j->bad++;
        return 0;
      }
      if (rc)
        return ab_jdb_err(e, "jdb_get", rc);
      j->bad += !ab_same(v, vl, ab_val(j->r, j->idx[0]));
      jdb_free(v);
      return 0;
    }
    rc = c->kind == AB_PUT_SYNC ? jdb_put_sync(e->t, k, BENCH_KLEN, j->puts[0].v, BENCH_VLEN)
                                : jdb_put(e->t, k, BENCH_KLEN, j->puts[0].v, BENCH_VLEN);
    return rc ? ab_jdb_err(e, c->kind == AB_PUT_SYNC ? "jdb_put_sync" : "jdb_put", rc) : 0;
  }
  jdb_pipe_reset(j->pipe);
  for (unsigned i = 0; i < c->depth; i++) {
    const uint8_t *k = ab_next_key(j, i);
    rc = c->kind == AB_GET ? jdb_pipe_get(j->pipe, e->t, k, BENCH_KLEN)
                           : jdb_pipe_put(j->pipe, e->t, k, BENCH_KLEN, j->puts[i].v, BENCH_VLEN);
    if (rc)
      return ab_jdb_err(e, "jdb_pipe_get/put", rc);
  }
  if ((rc = jdb_pipe_exec(j->pipe, 0)) != 0)
    return ab_jdb_err(e, "jdb_pipe_exec", rc);
  for (unsigned i = 0; i < c->depth; i++) {
    const void *v;
    size_t vl;
    rc = jdb_pipe_result(j->pipe, i, &v, &vl);
    if (c->kind == AB_GET && rc == JDB_NOTFOUND)
      j->bad++;
    else if (rc)
      return ab_jdb_err(e, "a pipelined operation", rc);
    else if (c->kind == AB_GET)
      j->bad += !ab_same(v, vl, ab_val(j->r, j->idx[i]));
  }
  return 0;
}

#ifdef JDB_HAVE_ROCKSDB
static int ab_rocks_op(struct ab_job *j)
{
  struct ab_eng *e = j->e;
  const struct ab_case *c = j->c;
  char *err = NULL;
  if (!c->depth) {
    const uint8_t *k = ab_next_key(j, 0);
    if (c->kind == AB_GET) {
      size_t vl;
      char *v = rocksdb_get(e->rk.db, e->rk.ro, (const char *)k, BENCH_KLEN, &vl, &err);
      if (err)
        return ab_rocks_err(e, "rocksdb_get", err);
      j->bad += !v || !ab_same(v, vl, ab_val(j->r, j->idx[0]));
      rocksdb_free(v);
      return 0;
    }
    rocksdb_put(e->rk.db, c->kind == AB_PUT_SYNC ? e->wo_sync : e->rk.wo, (const char *)k,
                BENCH_KLEN, (const char *)j->puts[0].v, BENCH_VLEN, &err);
    return err ? ab_rocks_err(e, "rocksdb_put", err) : 0;
  }
  if (c->kind == AB_PUT) {
    rocksdb_writebatch_clear(j->wb);
    for (unsigned i = 0; i < c->depth; i++) {
      const uint8_t *k = ab_next_key(j, i);
      rocksdb_writebatch_put(j->wb, (const char *)k, BENCH_KLEN, (const char *)j->puts[i].v,
                             BENCH_VLEN);
    }
    rocksdb_write(e->rk.db, e->rk.wo, j->wb, &err);
    return err ? ab_rocks_err(e, "rocksdb_write", err) : 0;
  }
  for (unsigned i = 0; i < c->depth; i++) {
    j->keys[i] = (const char *)ab_next_key(j, i);
    j->klens[i] = BENCH_KLEN;
  }
  rocksdb_multi_get(e->rk.db, e->rk.ro, c->depth, j->keys, j->klens, j->vals, j->vlens, j->errs);
  int rc = 0;
  for (unsigned i = 0; i < c->depth; i++) {
    if (j->errs[i] && !rc)
      rc = ab_rocks_err(e, "rocksdb_multi_get", j->errs[i]);
    else if (j->errs[i])
      rocksdb_free(j->errs[i]);
    else
      j->bad += !j->vals[i] || !ab_same(j->vals[i], j->vlens[i], ab_val(j->r, j->idx[i]));
    rocksdb_free(j->vals[i]);
  }
  return rc;
}
#endif

#ifdef JDB_HAVE_LMDB
static int ab_lmdb_op(struct ab_job *j)
{
  struct ab_eng *e = j->e;
  const struct ab_case *c = j->c;
  unsigned n = c->depth ? c->depth : 1;
  int rc;
  if (c->kind != AB_GET) {
    for (unsigned i = 0; i < n; i++)
      ab_next_key(j, i);
    const char *what;
    rc = bench_lmdb_write(e->env, e->dbi, j->puts, n, &what);
    return rc ? ab_lmdb_err(e, what, rc) : 0;
  }
  if (c->depth && (rc = mdb_txn_renew(j->rtxn)) != 0)
    return ab_lmdb_err(e, "mdb_txn_renew", rc);
  for (unsigned i = 0; i < n; i++) {
    MDB_val kv = {.mv_size = BENCH_KLEN, .mv_data = (void *)ab_next_key(j, i)}, v;
    rc = mdb_get(j->rtxn, e->dbi, &kv, &v);
    if (rc && rc != MDB_NOTFOUND)
      return ab_lmdb_err(e, "mdb_get", rc);
    j->bad += rc || !ab_same(v.mv_data, v.mv_size, ab_val(j->r, j->idx[i]));
  }
  if (c->depth)
    mdb_txn_reset(j->rtxn);
  return 0;
}
#endif

static int ab_op(struct ab_job *j, int which)
{
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS)
    return ab_rocks_op(j);
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB)
    return ab_lmdb_op(j);
#endif
  return ab_jdb_op(j);
}

/* The per-thread objects a case needs (a pipe, a read txn, a write batch). */
static int ab_job_begin(struct ab_job *j, int which)
{
  struct ab_eng *e = j->e;
  if (which == AB_JDB && j->c->depth && !(j->pipe = jdb_pipe_new(e->db)))
    return ab_jdb_err(e, "jdb_pipe_new", JDB_ENOMEM);
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS && j->c->depth)
    j->wb = rocksdb_writebatch_create();
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB && j->c->kind == AB_GET) {
    int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &j->rtxn);
    if (rc)
      return ab_lmdb_err(e, "mdb_txn_begin", rc);
    if (j->c->depth)
      mdb_txn_reset(j->rtxn);
  }
#endif
  return 0;
}

static void ab_job_end(struct ab_job *j)
{
  jdb_pipe_free(j->pipe);
  j->pipe = NULL;
#ifdef JDB_HAVE_ROCKSDB
  if (j->wb)
    rocksdb_writebatch_destroy(j->wb);
  j->wb = NULL;
#endif
#ifdef JDB_HAVE_LMDB
  if (j->rtxn)
    mdb_txn_abort(j->rtxn);
  j->rtxn = NULL;
#endif
}

static int ab_which(const struct ab_job *j)
{
  return (int)(j->e - j->r->eng);
}

/* Wait for the starter to open the gate; non-zero when the job must not run. */
static int ab_gate_pass(struct ab_job *j)
{
  pthread_rwlock_rdlock(j->gate);
  pthread_rwlock_unlock(j->gate);
  return j->stop;
}

static void *ab_worker(void *arg)
{
  struct ab_job *j = arg;
  int which = ab_which(j);
  int rc = ab_job_begin(j, which);
  if (ab_gate_pass(j) && !rc)
    rc = -1;
  uint64_t now = bench_now_ns(), deadline = now + (uint64_t)(j->r->secs * 1e9);
  j->t0 = now;
  while (!rc && now < deadline) {
    uint64_t a = bench_now_ns();
    rc = ab_op(j, which);
    now = bench_now_ns();
    if (j->nlat < j->cap)
      j->lat[j->nlat++] = now - a;
    j->ops++;
  }
  j->t1 = now;
  j->rc = rc;
  ab_job_end(j);
  return NULL;
}

/* Start n threads running fn on jobs[0..n-1], release them together, wait for all. */
static int ab_threads(struct ab_job *jobs, unsigned n, void *(*fn)(void *))
{
  pthread_rwlock_t gate;
  pthread_t th[64];
  unsigned started = 0;
  if (n > 64 || pthread_rwlock_init(&gate, NULL))
    return -1;
  pthread_rwlock_wrlock(&gate);
  for (unsigned i = 0; i < n; i++)
    jobs[i].gate = &gate;
  for (; started < n; started++)
    if (pthread_create(&th[started], NULL, fn, &jobs[started]))
      break;
  if (started < n) {
    bench_note("api: pthread_create failed after %u threads", started);
    for (unsigned i = 0; i < n; i++)
      jobs[i].stop = 1;   /* read by the threads only after the gate opens */
  }
  pthread_rwlock_unlock(&gate);
  for (unsigned i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  pthread_rwlock_destroy(&gate);
  return started < n ? -1 : 0;
}

/* The latencies of n jobs moved to the front of r->lat; their count. */
static size_t ab_lat_gather(struct ab_run *r, struct ab_job *jobs, unsigned n)
{
  size_t m = 0;
  for (unsigned i = 0; i < n; i++) {
    memmove(r->lat + m, jobs[i].lat, jobs[i].nlat * sizeof *r->lat);
    m += jobs[i].nlat;
  }
  return m;
}

static double ab_pct(const uint64_t *sorted, size_t n, double q)
{
  return n ? (double)sorted[(size_t)((double)n * q)] : 0;
}

/* Untimed, after a write case: every thread's last put reads back. */
static int ab_check_last(struct ab_run *r, int which, struct ab_job *jobs, unsigned n)
{
  uint64_t bad = 0;
  for (unsigned i = 0; i < n; i++) {
    if (!jobs[i].wrote)
      continue;
    int rc = ab_check(&r->eng[which], which, r->eng[which].t,
                      r->putk + jobs[i].last_idx * BENCH_KLEN, ab_val(r, jobs[i].last_w));
    if (rc < 0)
      return rc;
    bad += (uint64_t)rc;
  }
  if (bad)
    bench_note("api: VERIFY FAILED: %s, %llu of %u threads' last puts missing or wrong",
               r->eng[which].name, (unsigned long long)bad, n);
  return bad ? -1 : 0;
}

/* JDB instance counters, for the notes (zeros when jdb_stats fails). */
static jdb_stats_t ab_jdb_stats(jdb_t *db, int shard)
{
  jdb_stats_t st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  if (jdb_stats(db, shard, &st)) {
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
  }
  return st;
}

static void ab_case(struct ab_run *r, int ci, int which)
{
  const struct ab_case *c = &ab_cases[ci];
  struct ab_eng *e = &r->eng[which];
  unsigned n = c->threads;
  struct ab_job *jobs = calloc(n, sizeof *jobs);
  if (!jobs) {
    bench_note("api: no memory for %u jobs", n);
    r->fail = 1;
    return;
  }
  size_t cap = AB_LAT_MAX / n;
  for (unsigned i = 0; i < n; i++)
    jobs[i] = (struct ab_job){.r = r, .e = e, .c = c, .tid = i, .nthreads = n,
                              .rng = r->env->seed * 7919 + (uint64_t)ci * 131 + i,
                              .w = ((uint64_t)ci + 1) << 40 | (uint64_t)i << 32,
                              .lat = r->lat + i * cap, .cap = cap};
  jdb_stats_t s0 = which == AB_JDB ? ab_jdb_stats(e->db, -1) : (jdb_stats_t){0};
  int rc = ab_threads(jobs, n, ab_worker);
  jdb_stats_t s1 = which == AB_JDB ? ab_jdb_stats(e->db, -1) : (jdb_stats_t){0};
  uint64_t ops = 0, bad = 0, t0 = UINT64_MAX, t1 = 0;
  for (unsigned i = 0; i < n; i++) {
    rc |= jobs[i].rc;
    ops += jobs[i].ops * (c->depth ? c->depth : 1);
    bad += jobs[i].bad;
    t0 = jobs[i].t0 < t0 ? jobs[i].t0 : t0;
    t1 = jobs[i].t1 > t1 ? jobs[i].t1 : t1;
  }
  if (!rc && c->kind != AB_GET)
    rc = ab_check_last(r, which, jobs, n);
  if (rc) {
    free(jobs);
    ab_drop(r, which);
    return;
  }
  char name[96];
  snprintf(name, sizeof name, "api.%s.%s", c->name, e->tag);
  size_t nlat = ab_lat_gather(r, jobs, n);
  double secs = bench_secs(t0, t1);
  bench_row(name, ops, secs, 0, r->lat, nlat);
  r->rate[ci][which] = (double)ops / secs;
  r->p50[ci][which] = ab_pct(r->lat, nlat, 0.5);
  r->p99[ci][which] = ab_pct(r->lat, nlat, 0.99);
  if (bad) {
    bench_note("%s: VERIFY FAILED: %llu gets missing or wrong", name, (unsigned long long)bad);
    r->fail = 1;
  }
  if (c->depth)
    bench_note("%s: p50 / p99 per exec of %u", name, c->depth);
  if (which == AB_JDB && c->kind != AB_GET) {
    uint64_t syncs = s1.io_syncs - s0.io_syncs, writes = s1.writes - s0.writes;
    bench_note("%s: %llu writes, %llu checkpoints, %llu syncs (%.1f writes per sync), "
               "%llu calls served; fdatasync p50 / p99 since open %.1f / %.1f us",
               name, (unsigned long long)writes,
               (unsigned long long)(s1.checkpoints - s0.checkpoints), (unsigned long long)syncs,
               syncs ? (double)writes / (double)syncs : 0,
               (unsigned long long)(s1.calls - s0.calls), (double)s1.io_sync_p50_ns / 1e3,
               (double)s1.io_sync_p99_ns / 1e3);
  }
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS && c->kind != AB_GET) {
    double w = bench_rocks_settle(&e->rk, AB_SETTLE_SECS);
    if (w > 0.5)
      bench_note("%s: then %.1f s (untimed) until no flush or compaction ran", name, w);
  }
#endif
  free(jobs);
}

/* ------------------------------------------------------------------------------------------- */
/* fillrandom and the scan after it                                                             */

static int ab_fill_batch(struct ab_run *r, struct ab_eng *e, int which, jdb_batch_t *b,
                         const struct bench_put *p, uint32_t m)
{
  if (which == AB_JDB) {
    jdb_batch_clear(b);
    for (uint32_t i = 0; i < m; i++) {
      int rc = jdb_batch_put(b, p[i].k, BENCH_KLEN, p[i].v, p[i].vlen);
      if (rc)
        return ab_jdb_err(e, "jdb_batch_put", rc);
    }
    int rc = jdb_write(e->t, b, 0);
    return rc ? ab_jdb_err(e, "jdb_write", rc) : 0;
  }
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS) {
    char *err = bench_rocks_write(&e->rk, e->rk.wo, p, m);
    return err ? ab_rocks_err(e, "rocksdb_write", err) : 0;
  }
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB) {
    const char *what;
    int rc = bench_lmdb_write(e->env, e->dbi, p, m, &what);
    return rc ? ab_lmdb_err(e, what, rc) : 0;
  }
#endif
  return -1;
}

/* Keys [from, to) of the fill set in batches of AB_BATCH (value of key i: write number i);
   per-batch latencies (batch built and written) to lat. */
static int ab_fill_range(struct ab_run *r, struct ab_eng *e, int which, jdb_batch_t *b,
                         struct bench_put *puts, size_t from, size_t to, uint64_t *lat,
                         size_t *nlat)
{
  for (size_t base = from; base < to; base += AB_BATCH) {
    uint32_t m = (uint32_t)(to - base < AB_BATCH ? to - base : AB_BATCH);
    uint64_t a = bench_now_ns();
    for (uint32_t i = 0; i < m; i++)
      puts[i] = (struct bench_put){.k = r->rndk + (base + i) * BENCH_KLEN,
                                   .v = ab_val(r, base + i), .vlen = BENCH_VLEN};
    if (ab_fill_batch(r, e, which, b, puts, m))
      return -1;
    lat[(*nlat)++] = bench_now_ns() - a;
  }
  return 0;
}

struct ab_scan {
  size_t count, disorder;
  uint8_t prev[BENCH_KLEN];
};

static void ab_scan_see(struct ab_scan *s, const void *k, size_t kl, size_t vl)
{
  if (kl != BENCH_KLEN || vl != BENCH_VLEN || (s->count && memcmp(k, s->prev, BENCH_KLEN) <= 0))
    s->disorder++;
  if (kl == BENCH_KLEN)
    memcpy(s->prev, k, BENCH_KLEN);
  s->count++;
}

static int ab_scan(struct ab_eng *e, int which, struct ab_scan *s)
{
  memset(s, 0, sizeof *s);
  if (which == AB_JDB) {
    jdb_iter_t *it;
    int rc = jdb_iter_open(e->t, NULL, &it);
    if (rc)
      return ab_jdb_err(e, "jdb_iter_open", rc);
    for (rc = jdb_iter_first(it); rc == 0; rc = jdb_iter_next(it)) {
      const void *k, *v;
      size_t kl, vl;
      if ((rc = jdb_iter_key(it, &k, &kl)) != 0 || (rc = jdb_iter_value(it, &v, &vl)) != 0)
        break;
      ab_scan_see(s, k, kl, vl);
    }
    jdb_iter_close(it);
    return rc == JDB_NOTFOUND ? 0 : ab_jdb_err(e, "iterator", rc);
  }
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS) {
    rocksdb_iterator_t *it = rocksdb_create_iterator(e->rk.db, e->rk.ro);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
      size_t kl, vl;
      const char *k = rocksdb_iter_key(it, &kl);
      rocksdb_iter_value(it, &vl);
      ab_scan_see(s, k, kl, vl);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return err ? ab_rocks_err(e, "iterator", err) : 0;
  }
#endif
#ifdef JDB_HAVE_LMDB
  if (which == AB_LMDB) {
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn);
    if (rc)
      return ab_lmdb_err(e, "mdb_txn_begin", rc);
    if ((rc = mdb_cursor_open(txn, e->dbi, &cur)) != 0) {
      mdb_txn_abort(txn);
      return ab_lmdb_err(e, "mdb_cursor_open", rc);
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
      ab_scan_see(s, k.mv_data, k.mv_size, v.mv_size);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : ab_lmdb_err(e, "cursor", rc);
  }
#endif
  return -1;
}

/* fillrandom for one engine: open a fresh database, fill, scan (checked); the database stays
   open for the cases. */
/* JDB's counterpart of bench_rocks_settle: wait (at most max_secs) until no shard is merging a
   frozen memtable into its tree, so that reads after the fill do not share the shard with the
   checkpoint the fill left running. The active memtable stays as it is (RocksDB's too). */
static double ab_jdb_settle(jdb_t *db, double max_secs)
{
  uint64_t t0 = bench_now_ns();
  while (bench_secs(t0, bench_now_ns()) < max_secs && ab_jdb_stats(db, -1).checkpoints_running)
    bench_sleep_ms(100);
  return bench_secs(t0, bench_now_ns());
}

static void ab_fill(struct ab_run *r, int which)
{
  struct ab_eng *e = &r->eng[which];
  struct bench_put *puts = calloc(AB_BATCH, sizeof *puts);
  jdb_batch_t *b = which == AB_JDB ? jdb_batch_new() : NULL;
  if (!puts || (which == AB_JDB && !b)) {
    bench_note("api: no memory for the fill");
    free(puts);
    jdb_batch_free(b);
    e->on = 0;
    r->fail = 1;
    return;
  }
  sync();
  size_t nlat = 0;
  int rc = ab_open(r, e, which);
  if (rc) {
    e->on = 0;
    r->fail = 1;
    goto out;
  }
  uint64_t t0 = bench_now_ns();
  rc = ab_fill_range(r, e, which, b, puts, 0, r->n, r->lat, &nlat);
  double secs = bench_secs(t0, bench_now_ns());
  if (rc) {
    ab_drop(r, which);
    goto out;
  }
  char name[96];
  snprintf(name, sizeof name, "api.fillrandom.%s", e->tag);
  bench_row(name, r->n, secs, (uint64_t)r->n * (BENCH_KLEN + BENCH_VLEN), r->lat, nlat);
  r->fill[which] = (double)r->n / secs;
  char settle[96] = "";
#ifdef JDB_HAVE_ROCKSDB
  if (which == AB_ROCKS)
    snprintf(settle, sizeof settle, "; %.1f s until no flush or compaction ran",
             bench_rocks_settle(&e->rk, AB_SETTLE_SECS));
#endif
  if (which == AB_JDB)
    snprintf(settle, sizeof settle, "; %.1f s until no checkpoint ran",
             ab_jdb_settle(e->db, AB_SETTLE_SECS));
  struct ab_scan s;
  t0 = bench_now_ns();
  rc = ab_scan(e, which, &s);
  double scan_secs = bench_secs(t0, bench_now_ns());
  if (rc) {
    ab_drop(r, which);
    goto out;
  }
  char info[160] = "";
  if (which == AB_JDB) {
    jdb_stats_t st = ab_jdb_stats(e->db, -1);
    r->shards_open = st.shards;
    snprintf(info, sizeof info,
             "; %u shard(s), %llu checkpoints, memtable %.1f MB, pages %.1f MB, log %.1f MB",
             st.shards, (unsigned long long)st.checkpoints, (double)st.memtable_bytes / 1e6,
             (double)st.page_file_bytes / 1e6, (double)st.log_bytes / 1e6);
  }
  bench_note("%s: p50 / p99 per batch of %u (built and written)%s; scan of %zu entries %.2f s%s",
             name, AB_BATCH, settle, s.count, scan_secs, info);
  if (s.count != r->n || s.disorder) {
    bench_note("%s: VERIFY FAILED: the scan saw %zu entries (want %zu), %zu out of order or of "
               "the wrong size", name, s.count, r->n, s.disorder);
    ab_drop(r, which);
  }
out:
  free(puts);
  jdb_batch_free(b);
}

/* ------------------------------------------------------------------------------------------- */
/* The floor: 4 KiB pwrite + fdatasync over written blocks, in-process and with fio             */

/* The number after the keys path[0], path[1], ... found in turn in s; -1 when missing. */
static double ab_json_num(const char *s, const char *const *path, int n)
{
  for (int i = 0; i < n && s; i++)
    if ((s = strstr(s, path[i])) != NULL)
      s += strlen(path[i]);
  if (!s || !(s = strchr(s, ':')))
    return -1;
  return strtod(s + 1, NULL);
}

static void ab_fio(struct ab_run *r, const char *path, uint64_t size)
{
  char cmd[4600];
  int secs = r->secs < 1 ? 1 : (int)r->secs;
  snprintf(cmd, sizeof cmd, "fio --name=floor --filename='%s' --size=%llu --direct=1 "
           "--rw=randwrite --bs=4k --ioengine=psync --fdatasync=1 --time_based --runtime=%d "
           "--output-format=json 2>/dev/null", path, (unsigned long long)size, secs);
  FILE *f = popen(cmd, "r");
  size_t cap = 1 << 20, len = 0;
  char *out = malloc(cap + 1);
  if (f && out)
    len = fread(out, 1, cap, f);
  int st = f ? pclose(f) : -1;
  if (!out || st != 0 || len == 0) {
    bench_note("api.floor.fio: fio not installed or failed (scripts/deps.sh --bench)");
    free(out);
    return;
  }
  out[len] = 0;
  static const char *const w_p50[] = {"\"write\" : {", "\"clat_ns\"", "\"50.000000\""};
  static const char *const w_p99[] = {"\"write\" : {", "\"clat_ns\"", "\"99.000000\""};
  static const char *const w_iops[] = {"\"write\" : {", "\"iops\""};
  static const char *const s_p50[] = {"\"sync\" : {", "\"lat_ns\"", "\"50.000000\""};
  static const char *const s_p99[] = {"\"sync\" : {", "\"lat_ns\"", "\"99.000000\""};
  double wp50 = ab_json_num(out, w_p50, 3), wp99 = ab_json_num(out, w_p99, 3);
  double iops = ab_json_num(out, w_iops, 2);
  double sp50 = ab_json_num(out, s_p50, 3), sp99 = ab_json_num(out, s_p99, 3);
  free(out);
  if (wp50 <= 0 || sp50 <= 0 || iops <= 0) {
    bench_note("api.floor.fio: could not read fio's output");
    return;
  }
  r->fio_p50 = wp50 + sp50;
  r->fio_pair = 1e9 / iops;
  printf("%-30s %11.0f %12.0f %10.1f %10.1f %10.1f %10.1f\n", "api.floor.fio", iops * secs,
         iops, 1e9 / iops, r->fio_p50 / 1e3, (wp99 + sp99) / 1e3, iops * AB_FLOOR_BS / 1e6);
  bench_note("api.floor.fio: write p50 %.1f us + fdatasync p50 %.1f us (p99 %.1f + %.1f); the "
             "p50 column is their sum, ns/op the mean pair", wp50 / 1e3, sp50 / 1e3, wp99 / 1e3,
             sp99 / 1e3);
}

static void ab_floor(struct ab_run *r)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/api-floor.dat", r->env->dir);
  uint64_t size = r->env->quick ? 16ull << 20 : 64ull << 20;
  const size_t chunk = 1u << 20;
  int direct = 1;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
  if (fd < 0) {
    direct = 0;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  }
  void *buf = NULL;
  if (fd < 0 || posix_memalign(&buf, 4096, chunk)) {
    bench_note("api.floor: cannot open %s or get memory", path);
    if (fd >= 0)
      close(fd);
    r->fail = 1;
    return;
  }
  bench_pool_fill(buf, chunk, r->env->seed + 7);
  int ok = 1;
  for (uint64_t off = 0; off < size && ok; off += chunk)
    ok = pwrite(fd, buf, chunk, (off_t)off) == (ssize_t)chunk;
  ok = ok && fdatasync(fd) == 0;
  uint64_t rng = r->env->seed + 8, ops = 0;
  size_t nlat = 0;
  uint64_t t0 = bench_now_ns(), now = t0, deadline = t0 + (uint64_t)(r->secs * 1e9);
  while (ok && now < deadline) {
    uint64_t off = (bench_rand(&rng) % (size / AB_FLOOR_BS)) * AB_FLOOR_BS;
    ((uint64_t *)buf)[0] = ops;
    uint64_t a = bench_now_ns();
    ok = pwrite(fd, buf, AB_FLOOR_BS, (off_t)off) == (ssize_t)AB_FLOOR_BS && fdatasync(fd) == 0;
    now = bench_now_ns();
    if (nlat < AB_LAT_MAX)
      r->lat[nlat++] = now - a;
    ops++;
  }
  close(fd);
  free(buf);
  if (!ok) {
    bench_note("api.floor: a write or fdatasync of %s failed", path);
    unlink(path);
    r->fail = 1;
    return;
  }
  bench_row("api.floor.pwrite+fdatasync", ops, bench_secs(t0, now), ops * AB_FLOOR_BS, r->lat,
            nlat);
  r->floor_p50 = ab_pct(r->lat, nlat, 0.5);
  r->floor_p99 = ab_pct(r->lat, nlat, 0.99);
  bench_note("api.floor.pwrite+fdatasync: %s, random 4 KiB blocks of a %llu MiB file written "
             "before", direct ? "O_DIRECT" : "buffered (O_DIRECT refused)",
             (unsigned long long)(size >> 20));
  if (bench_want(r->env, "api.floor.fio"))
    ab_fio(r, path, size);
  if (!r->env->keep)
    unlink(path);
}

/* ------------------------------------------------------------------------------------------- */
/* Scaling: batch ingest with 1 and 2 shards                                                    */

/* Open (creating) a table of db that lives in shard `shard`: a probe put into candidate names
   until the shard's write counter moves. */
static int ab_table_on_shard(jdb_t *db, uint32_t shard, uint32_t shards, jdb_table_t **out)
{
  for (unsigned i = 0; i < 4096; i++) {
    char name[32];
    int len = snprintf(name, sizeof name, "ingest.%u", i);
    jdb_table_t *t;
    int rc = jdb_table_open(db, name, (size_t)len, JDB_CREATE, &t);
    if (rc)
      return rc;
    if (shards == 1) {
      *out = t;
      return 0;
    }
    jdb_stats_t a = ab_jdb_stats(db, (int)shard);
    if ((rc = jdb_put(t, "probe", 5, "", 0)) != 0 || (rc = jdb_del(t, "probe", 5)) != 0) {
      jdb_table_close(t);
      return rc;
    }
    jdb_stats_t b = ab_jdb_stats(db, (int)shard);
    if (b.writes > a.writes || b.ops > a.ops) {
      *out = t;
      return 0;
    }
    jdb_table_close(t);
  }
  return JDB_NOTFOUND;
}

static void *ab_ingest_worker(void *arg)
{
  struct ab_job *j = arg;
  struct ab_run *r = j->r;
  size_t from = r->n / j->nthreads * j->tid;
  size_t to = j->tid + 1 == j->nthreads ? r->n : from + r->n / j->nthreads;
  struct bench_put *puts = calloc(AB_BATCH, sizeof *puts);
  jdb_batch_t *b = jdb_batch_new();
  struct ab_eng e = {.name = "JDB", .tag = "jdb", .t = j->t};
  snprintf(e.dir, sizeof e.dir, "ingest thread %u", j->tid);
  int stop = ab_gate_pass(j);
  j->t0 = bench_now_ns();
  j->rc = stop || !puts || !b
            ? -1 : ab_fill_range(r, &e, AB_JDB, b, puts, from, to, j->lat, &j->nlat);
  j->t1 = bench_now_ns();
  j->ops = to - from;
  free(puts);
  jdb_batch_free(b);
  return NULL;
}

/* 1 (shards = 1) or 2 shards: the ops/s, or 0 on failure. */
static double ab_ingest(struct ab_run *r, uint32_t shards)
{
  struct ab_eng e = {.name = "JDB", .tag = "jdb"};
  snprintf(e.dir, sizeof e.dir, "%s/api-ingest.%u", r->env->dir, shards);
  bench_rmtree(e.dir);
  struct ab_job jobs[2];
  memset(jobs, 0, sizeof jobs);
  double rate = 0;
  sync();
  int rc = ab_jdb_open(r, e.dir, shards, &e.db);
  if (rc) {
    ab_jdb_err(&e, "jdb_open", rc);
    r->fail = 1;
    return 0;
  }
  size_t cap = AB_LAT_MAX / shards;
  for (uint32_t i = 0; i < shards; i++) {
    jobs[i] = (struct ab_job){.r = r, .tid = i, .nthreads = shards, .lat = r->lat + i * cap,
                              .cap = cap};
    if ((rc = ab_table_on_shard(e.db, i, shards, &jobs[i].t)) != 0) {
      ab_jdb_err(&e, "a table on each shard", rc);
      goto out;
    }
  }
  if ((rc = ab_threads(jobs, shards, ab_ingest_worker)) != 0)
    goto out;
  uint64_t t0 = UINT64_MAX, t1 = 0;
  for (uint32_t i = 0; i < shards; i++) {
    rc |= jobs[i].rc;
    t0 = jobs[i].t0 < t0 ? jobs[i].t0 : t0;
    t1 = jobs[i].t1 > t1 ? jobs[i].t1 : t1;
  }
  if (rc)
    goto out;
  /* untimed: AB_CHECKS random keys of each thread's share read back */
  uint64_t bad = 0, rng = r->env->seed ^ 0x1a9e;
  for (uint32_t i = 0; i < shards && !rc; i++) {
    size_t from = r->n / shards * i, cnt = i + 1 == shards ? r->n - from : r->n / shards;
    for (unsigned k = 0; k < AB_CHECKS && !rc; k++) {
      size_t idx = from + (size_t)(bench_rand(&rng) % cnt);
      int x = ab_check(&e, AB_JDB, jobs[i].t, r->rndk + idx * BENCH_KLEN, ab_val(r, idx));
      if (x < 0)
        rc = x;
      else
        bad += (uint64_t)x;
    }
  }
  if (rc)
    goto out;
  char name[96];
  snprintf(name, sizeof name, "api.ingest.%ushard%s.jdb", shards, shards > 1 ? "s" : "");
  size_t nlat = ab_lat_gather(r, jobs, shards);
  double secs = bench_secs(t0, t1);
  bench_row(name, r->n, secs, (uint64_t)r->n * (BENCH_KLEN + BENCH_VLEN), r->lat, nlat);
  rate = (double)r->n / secs;
  jdb_stats_t st = ab_jdb_stats(e.db, -1);
  bench_note("%s: %u client thread%s, each its own table on its own shard, batches of %u; "
             "p50 / p99 per batch; %llu checkpoints; %u x %u keys read back%s",
             name, shards, shards > 1 ? "s" : "", AB_BATCH, (unsigned long long)st.checkpoints,
             shards, AB_CHECKS, bad ? "" : ", all right");
  if (bad) {
    bench_note("%s: VERIFY FAILED: %llu keys missing or wrong", name, (unsigned long long)bad);
    rate = 0;
  }
out:
  for (uint32_t i = 0; i < shards; i++)
    jdb_table_close(jobs[i].t);
  e.t = NULL;
  if (ab_close(r, &e, AB_JDB) || rate == 0)
    r->fail = 1;
  return rate;
}

/* ------------------------------------------------------------------------------------------- */
/* Summary                                                                                      */

static void ab_summary(struct ab_run *r)
{
  char t[AB_NC][112];
  memset(t, 0, sizeof t);
  double lmdb_get = r->rate[AB_C_GET1][AB_LMDB];
  double x = lmdb_get > 0 ? r->rate[AB_C_PGET256][AB_JDB] / lmdb_get : 0;
  snprintf(t[AB_C_PGET256], sizeof t[0], "JDB >= 1.5x LMDB get 1 thread: %.2f %s", x,
           bench_verdict(x, 1.5, 1e300));
  double sync1 = r->rate[AB_C_SYNC1][AB_JDB];
  double group = sync1 > 0 ? r->rate[AB_C_SYNC64][AB_JDB] / sync1 : 0;
  snprintf(t[AB_C_SYNC64], sizeof t[0], "JDB >= 20x its 1 thread: %.1f %s", group,
           bench_verdict(group, 20, 1e300));
  double fillx = r->fill[AB_ROCKS] > 0 ? r->fill[AB_JDB] / r->fill[AB_ROCKS] : 0;
  char tf[112];
  snprintf(tf, sizeof tf, "JDB/RocksDB >= 2: %s", bench_verdict(fillx, 2, 1e300));

  printf("\napi summary: %zu fill keys of %u + %u bytes; JDB %u shard%s, "
         "%.0f MiB cache (RocksDB's block cache the same); %.1f s per case; ops/s, ratio > 1 = "
         "JDB faster\n",
         r->n, BENCH_KLEN, BENCH_VLEN, r->shards_open, r->shards_open == 1 ? "" : "s",
         (double)r->cache_bytes / (1 << 20), r->secs);
  bench_peer_header("workload", "target");
  int any = 0;
  for (int e = 0; e < AB_NENG; e++)
    any |= r->fill[e] > 0;
  bench_peer_line("fillrandom, batch 1000", r->fill, any, "%.0f", tf);
  for (int c = 0; c < AB_NC; c++) {
    any = 0;
    for (int e = 0; e < AB_NENG; e++)
      any |= r->rate[c][e] > 0;
    bench_peer_line(ab_cases[c].label, r->rate[c], any, "%.0f", t[c]);
  }
  bench_peer_header("latency, us", "");
  static const int lat_c[] = {AB_C_GET1, AB_C_PUT1, AB_C_SYNC1, AB_C_SYNC64};
  /* the floor: the lower p50 of the two measures of the same thing (noise only adds) */
  double floor = r->fio_p50 > 0 && (r->floor_p50 <= 0 || r->fio_p50 < r->floor_p50)
                   ? r->fio_p50 : r->floor_p50;
  const char *floor_by = floor <= 0 ? "none" : floor == r->fio_p50 ? "fio's" : "the in-process";
  for (int i = 0; i < 4; i++) {
    int c = lat_c[i];
    double p50[AB_NENG], p99[AB_NENG];
    char label[48], tgt[112] = "";
    any = 0;
    for (int e = 0; e < AB_NENG; e++) {
      p50[e] = r->p50[c][e] / 1e3;
      p99[e] = r->p99[c][e] / 1e3;
      any |= p50[e] > 0;
    }
    if (c == AB_C_PUT1)
      snprintf(tgt, sizeof tgt, "JDB <= 5 us: %s", bench_verdict(p50[AB_JDB], 1e-9, 5));
    if (c == AB_C_SYNC1 && floor > 0) {
      x = r->p50[c][AB_JDB] / floor;
      snprintf(tgt, sizeof tgt, "JDB <= 1.2x the floor: %.2f %s", x,
               bench_verdict(x, 1e-9, 1.2));
    }
    snprintf(label, sizeof label, "%s p50", ab_cases[c].label);
    bench_peer_line(label, p50, any, "%.1f", tgt);
    snprintf(label, sizeof label, "%s p99", ab_cases[c].label);
    bench_peer_line(label, p99, any, "%.1f", "");
  }
  if (floor > 0) {
    double q[AB_NENG];
    any = 0;
    for (int e = 0; e < AB_NENG; e++) {
      q[e] = r->p50[AB_C_SYNC1][e] / floor;
      any |= q[e] > 0;
    }
    bench_peer_line("put_sync p50 / floor", q, any, "%.2f", "lower is better");
  }
  printf("floor, 4 KiB pwrite+fdatasync over written blocks: in-process p50 %.1f us, p99 %.1f "
         "us; fio write p50 + fdatasync p50 %.1f us, mean pair %.1f us\n",
         r->floor_p50 / 1e3, r->floor_p99 / 1e3, r->fio_p50 / 1e3, r->fio_pair / 1e3);
  double scale = r->ingest[0] > 0 ? r->ingest[1] / r->ingest[0] : 0;
  printf("batch ingest (JDB): 1 shard x 1 thread %.0f ops/s, 2 shards x 2 threads %.0f ops/s, "
         "%.2fx\n", r->ingest[0], r->ingest[1], scale);

  printf("\ntargets (issue 6):\n");
  printf("  pipeline of 256 gets >= 1.5x LMDB's single-thread get rate: %.0f vs %.0f ops/s, "
         "%.2fx: %s\n", r->rate[AB_C_PGET256][AB_JDB], lmdb_get,
         lmdb_get > 0 ? r->rate[AB_C_PGET256][AB_JDB] / lmdb_get : 0,
         bench_verdict(lmdb_get > 0 ? r->rate[AB_C_PGET256][AB_JDB] / lmdb_get : 0, 1.5, 1e300));
  double putp50 = r->p50[AB_C_PUT1][AB_JDB] / 1e3;
  printf("  single put round-trip p50 <= 5 us: %.1f us: %s\n", putp50,
         bench_verdict(putp50, 1e-9, 5));
  x = floor > 0 ? r->p50[AB_C_SYNC1][AB_JDB] / floor : 0;
  printf("  jdb_put_sync p50 <= 1.2x the 4 KiB write+fdatasync p50 (%s, the lower): %.1f vs "
         "%.1f us, %.2fx: %s (RocksDB %.2fx, LMDB %.2fx)\n", floor_by,
         r->p50[AB_C_SYNC1][AB_JDB] / 1e3, floor / 1e3, x, bench_verdict(x, 1e-9, 1.2),
         floor > 0 ? r->p50[AB_C_SYNC1][AB_ROCKS] / floor : 0,
         floor > 0 ? r->p50[AB_C_SYNC1][AB_LMDB] / floor : 0);
  printf("  64 threads of jdb_put_sync >= 20x the single-thread durable rate: %.0f vs %.0f "
         "ops/s, %.1fx: %s (RocksDB %.1fx)\n", r->rate[AB_C_SYNC64][AB_JDB], sync1, group,
         bench_verdict(group, 20, 1e300),
         r->rate[AB_C_SYNC1][AB_ROCKS] > 0
           ? r->rate[AB_C_SYNC64][AB_ROCKS] / r->rate[AB_C_SYNC1][AB_ROCKS] : 0);
  printf("  fillrandom through the API >= 2x RocksDB's: %.0f vs %.0f ops/s, %.2fx: %s\n",
         r->fill[AB_JDB], r->fill[AB_ROCKS], fillx, bench_verdict(fillx, 2, 1e300));
  printf("  2 shards >= 1.8x 1 shard on batch ingest: %.2fx: %s\n\n", scale,
         bench_verdict(scale, 1.8, 1e300));
  fflush(stdout);
}

/* ------------------------------------------------------------------------------------------- */

static void ab_free(struct ab_run *r)
{
  free(r->rndk);
  free(r->putk);
  free(r->pool);
  free(r->lat);
  free(r);
}

static int ab_case_wanted(const struct ab_run *r, int e)
{
  if (ab_want(r, "fillrandom", e))
    return 1;
  for (int c = 0; c < AB_NC; c++)
    if (ab_want(r, ab_cases[c].name, e))
      return 1;
  return 0;
}

/* LMDB's commits durable (put_sync) or not. */
static void ab_lmdb_sync(struct ab_run *r, int on)
{
#ifdef JDB_HAVE_LMDB
  if (r->eng[AB_LMDB].on && r->eng[AB_LMDB].env)
    mdb_env_set_flags(r->eng[AB_LMDB].env, MDB_NOSYNC, !on);
#endif
}

int bench_api(const struct bench_env *env)
{
  struct ab_run *r = calloc(1, sizeof *r);
  if (!r)
    return 1;
  r->env = env;
  r->n = bench_env_size("JDB_BENCH_API_N", env->quick ? 200000 : 2000000);
  r->cache_bytes = (uint64_t)bench_env_size("JDB_BENCH_API_CACHE_MB", AB_CACHE_MB) << 20;
  const char *sh = getenv("JDB_BENCH_API_SHARDS");
  r->shards = sh && *sh ? (uint32_t)strtoul(sh, NULL, 0) : 1;
  r->secs = env->quick ? env->secs / 2 : env->secs;
  r->rndk = malloc(r->n * BENCH_KLEN);
  r->putk = malloc(r->n * BENCH_KLEN);
  r->pool = malloc(BENCH_POOL);
  r->lat = malloc(AB_LAT_MAX * sizeof *r->lat);
  if (!r->rndk || !r->putk || !r->pool || !r->lat || r->n < 64) {
    bench_note("api: no memory for %zu keys (or fewer than 64)", r->n);
    ab_free(r);
    return 1;
  }
  bench_keys_random(r->rndk, r->n, env->seed);
  bench_keys_random(r->putk, r->n, env->seed + 3);
  bench_pool_fill(r->pool, BENCH_POOL, env->seed + 2);
  r->eng[AB_JDB] = (struct ab_eng){.name = "JDB", .tag = "jdb", .on = 1};
  r->eng[AB_ROCKS] = (struct ab_eng){.name = "RocksDB", .tag = "rocksdb"};
  r->eng[AB_LMDB] = (struct ab_eng){.name = "LMDB", .tag = "lmdb"};
#ifdef JDB_HAVE_ROCKSDB
  r->eng[AB_ROCKS].on = 1;
#else
  bench_note("RocksDB not built in (librocksdb-dev not found): its column stays empty");
#endif
#ifdef JDB_HAVE_LMDB
  r->eng[AB_LMDB].on = 1;
#else
  bench_note("LMDB not built in (liblmdb-dev not found): its column stays empty");
#endif
  bench_note("api: JDB through jdb.h, %u shard(s) (0 = one per CPU), %llu MiB cache, writes flags "
             "0 unless _sync; RocksDB default options + the same block cache, WAL on, sync off "
             "unless _sync; LMDB MDB_NOSYNC unless _sync; %.1f s per case",
             r->shards, (unsigned long long)(r->cache_bytes >> 20), r->secs);
  bench_table_header();

  int open[AB_NENG] = {0};
  for (int e = 0; e < AB_NENG; e++)
    if (r->eng[e].on && ab_case_wanted(r, e)) {
      ab_fill(r, e);
      open[e] = r->eng[e].on;
    }
  for (int c = 0; c < AB_NC; c++) {
    if (c == AB_C_SYNC1) {
      int floor = bench_want(env, "api.floor.pwrite+fdatasync");
      for (int e = 0; e < AB_NENG; e++)
        floor |= open[e] && ab_want(r, ab_cases[c].name, e);
      if (floor)
        ab_floor(r);
      ab_lmdb_sync(r, 1);
    }
    for (int e = 0; e < AB_NENG; e++)
      if (open[e] && ab_want(r, ab_cases[c].name, e))
        ab_case(r, c, e);
  }
  for (int e = 0; e < AB_NENG; e++)
    if (open[e] && r->eng[e].on && ab_close(r, &r->eng[e], e))
      r->fail = 1;

  if (bench_want(env, "api.ingest.1shard.jdb"))
    r->ingest[0] = ab_ingest(r, 1);
  if (bench_want(env, "api.ingest.2shards.jdb"))
    r->ingest[1] = ab_ingest(r, 2);

  ab_summary(r);
  int fail = r->fail;
  ab_free(r);
  return fail;
}
