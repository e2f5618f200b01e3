/*
 * bench_peer.h - what the benches that run JDB next to its peers share (bench_tablet.c,
 * bench_api.c): the fillrandom data (random 16-byte keys, 100-byte values cut from a pool of
 * random bytes), RocksDB and LMDB set up the same way through their C APIs (when the build
 * found them: JDB_HAVE_ROCKSDB, JDB_HAVE_LMDB), and the lines of the summary tables.
 */
#ifndef JDB_BENCH_PEER_H
#define JDB_BENCH_PEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef JDB_HAVE_ROCKSDB
#include <rocksdb/c.h>
#endif
#ifdef JDB_HAVE_LMDB
#include <lmdb.h>
#endif

#define BENCH_KLEN 16u
#define BENCH_VLEN 100u
#define BENCH_POOL (1u << 20)   /* value pool bytes (plus the largest value, for the tail) */

/* The engines of a peer table, in column order. */
enum { BENCH_JDB, BENCH_ROCKS, BENCH_LMDB, BENCH_NENG };

/* One put of a write batch: a BENCH_KLEN-byte key, vlen bytes of value. */
struct bench_put {
  const uint8_t *k;
  const uint8_t *v;
  uint32_t vlen;
};

/* The environment variable var as a count, or dflt when unset, empty or 0. */
size_t bench_env_size(const char *var, size_t dflt);
/* Remove dir and everything below it (missing is fine). */
void bench_rmtree(const char *dir);
/* n random BENCH_KLEN-byte keys, back to back, from seed. */
void bench_keys_random(uint8_t *keys, size_t n, uint64_t seed);
/* bytes (a multiple of 8) of random bytes from seed. */
void bench_pool_fill(uint8_t *pool, size_t bytes, uint64_t seed);
/* The value of write number w: vlen bytes of the pool at an offset derived from w, so that a
   read can be checked against it. */
static inline const uint8_t *bench_pool_val(const uint8_t *pool, uint64_t w, uint32_t vlen)
{
  return pool + (w * 4099u) % (BENCH_POOL - vlen);
}
/* Seconds between two bench_now_ns() readings. */
double bench_secs(uint64_t a, uint64_t b);
void bench_sleep_ms(unsigned ms);

/* Summary tables: columns JDB, RocksDB, LMDB, JDB/RocksDB, JDB/LMDB, target. The header line
   names the first and the last column; a line is printed only when any (a value <= 0 shows as
   "-"). */
void bench_peer_header(const char *first, const char *last);
void bench_peer_line(const char *label, const double *v, int any, const char *fmt,
                     const char *target);
/* "met" when lo <= v <= hi, "MISSED" otherwise, "(not measured)" when v <= 0. */
const char *bench_verdict(double v, double lo, double hi);

#ifdef JDB_HAVE_ROCKSDB
/* RocksDB as the benches run it: default Options (no bloom filter, Snappy, 2 background jobs)
   plus create_if_missing and an LRU block cache of cache_bytes; default write options (WAL on,
   sync off), default read options, one write batch (one thread at a time). */
struct bench_rocks {
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_block_based_table_options_t *bbto;
  rocksdb_cache_t *cache;
  rocksdb_writeoptions_t *wo;
  rocksdb_readoptions_t *ro;
  rocksdb_writebatch_t *wb;
};
/* NULL, or RocksDB's error text (release with rocksdb_free; *r is then cleared). */
char *bench_rocks_open(struct bench_rocks *r, const char *dir, uint64_t cache_bytes);
void bench_rocks_close(struct bench_rocks *r);
/* The n puts as one write batch through wo; NULL or the error text. */
char *bench_rocks_write(struct bench_rocks *r, const rocksdb_writeoptions_t *wo,
                        const struct bench_put *p, uint32_t n);
/* An integer property, 0 when unknown. */
uint64_t bench_rocks_prop(struct bench_rocks *r, const char *name);
/* Wait (at most max_secs) until no flush or compaction runs or is pending; seconds waited. */
double bench_rocks_settle(struct bench_rocks *r, double max_secs);
#endif

#ifdef JDB_HAVE_LMDB
/* An environment in dir (created) with a map of map_bytes and env flags (MDB_NOSYNC or 0), and
   its unnamed database. 0 or an mdb error, *what naming the call that failed. */
int bench_lmdb_open(const char *dir, size_t map_bytes, unsigned flags, MDB_env **env,
                    MDB_dbi *dbi, const char **what);
/* The n puts in one write transaction; 0 or an mdb error, *what naming the call. */
int bench_lmdb_write(MDB_env *env, MDB_dbi dbi, const struct bench_put *p, uint32_t n,
                     const char **what);
#endif

#endif
