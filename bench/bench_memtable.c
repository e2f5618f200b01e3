/*
 * bench_memtable.c - `jdb_bench memtable`: the memtable (engine/tablet/mt.h) in memory, no I/O.
 *
 * Data set (untimed to generate): N keys of 25 bytes, the engine's shape: a 9-byte table/space
 * prefix (8-byte big-endian table id 7, space byte 1) then 16 random bytes (N = 2 M; 200 k with
 * --quick; the environment variable JDB_BENCH_MT_N overrides). Key i gets seq i + 1 and an
 * inline value of 100 bytes cut from a random pool at an offset derived from i, so every read
 * can be checked.
 *
 * Cases (one thread, the shard's):
 *   memtable.insert       mt_put of the N keys in generation (random) order into a fresh
 *                         memtable (1 MiB chunks); ops = keys. Three builds, the row is the
 *                         median, the note lists all three. A fill of RocksDB's skiplist
 *                         memtable with random keys is the figure to compare with: the whole
 *                         write path has to be twice as fast as RocksDB's fillrandom.
 *   memtable.get          mt_get(key, UINT64_MAX) of random existing keys, seq and value
 *                         checked. The random keys are copied in probe order beforehand (up
 *                         to 1 M of them, reused in turn), so reading them misses no cache.
 *   memtable.seek+next10  mt_cursor_seek(key, UINT64_MAX) to a random existing key, then 10
 *   memtable.seek+prev10  mt_cursor_next; mt_cursor_seek_prev(key, 0) then 10 mt_cursor_prev.
 *                         ops = seeks; the seek is checked for the key, every step for order.
 *                         The note gives the prev/next ratio (the back link should make it ~1).
 *   memtable.space        bytes held (mt_bytes) per entry, next to the 125 bytes of key and
 *                         value an entry carries.
 * Lookup and cursor cases run for secs each on the last build.
 */
#include "bench.h"

#include "jdb.h"
#include "mt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BM_KLEN 25u
#define BM_PREFIX 9u
#define BM_VLEN 100u
#define BM_POOL 4096u
#define BM_REPS 3
#define BM_STEPS 10
#define BM_PROBES (1u << 20)

struct bm_set {
  size_t n;
  uint8_t *keys;            /* n * BM_KLEN */
  uint8_t pool[BM_POOL];    /* values: BM_VLEN bytes at bm_voff(i) */
  size_t nprobe;            /* lookups read probes in order, so the memtable is all they miss */
  uint32_t *probe;          /* random key numbers */
  uint8_t *pkeys;           /* their keys, nprobe * BM_KLEN */
};

static inline const uint8_t *bm_key(const struct bm_set *s, size_t i)
{
  return s->keys + i * BM_KLEN;
}
static inline size_t bm_voff(size_t i)
{
  return (i * 61u) % (BM_POOL - BM_VLEN);
}

static void bm_free(struct bm_set *s)
{
  free(s->keys);
  free(s->probe);
  free(s->pkeys);
}

static int bm_make(struct bm_set *s, size_t n, uint64_t seed)
{
  s->n = n;
  s->nprobe = n < BM_PROBES ? n : BM_PROBES;
  s->keys = malloc(n * BM_KLEN);
  s->probe = malloc(s->nprobe * sizeof *s->probe);
  s->pkeys = malloc(s->nprobe * BM_KLEN);
  if (!s->keys || !s->probe || !s->pkeys)
    return -1;
  for (size_t i = 0; i < BM_POOL; i += 8) {
    uint64_t v = bench_rand(&seed);
    memcpy(s->pool + i, &v, 8);
  }
  for (size_t i = 0; i < n; i++) {
    uint8_t *k = s->keys + i * BM_KLEN;
    memset(k, 0, BM_PREFIX);
    k[7] = 7;   /* table id 7, big-endian */
    k[8] = 1;   /* space */
    uint64_t a = bench_rand(&seed), b = bench_rand(&seed);
    memcpy(k + BM_PREFIX, &a, 8);
    memcpy(k + BM_PREFIX + 8, &b, 8);
  }
  for (size_t j = 0; j < s->nprobe; j++) {
    s->probe[j] = (uint32_t)(bench_rand(&seed) % n);
    memcpy(s->pkeys + j * BM_KLEN, bm_key(s, s->probe[j]), BM_KLEN);
  }
  return 0;
}

/* Build a memtable of the whole set; returns seconds, or < 0 on failure (m left NULL). */
static double bm_build(const struct bm_set *s, struct mt **out)
{
  struct mt *m = NULL;
  *out = NULL;
  int rc = mt_create(0, 0, &m);
  if (rc) {
    bench_note("memtable: mt_create: %s", jdb_strerror(rc));
    return -1;
  }
  uint64_t t0 = bench_now_ns();
  for (size_t i = 0; i < s->n; i++) {
    rc = mt_put(m, bm_key(s, i), BM_KLEN, i + 1, MT_INLINE, s->pool + bm_voff(i), BM_VLEN, 0);
    if (rc) {
      bench_note("memtable: mt_put of key #%zu: %s", i, jdb_strerror(rc));
      mt_destroy(m);
      return -1;
    }
  }
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  if (mt_count(m) != s->n) {
    bench_note("memtable: VERIFY FAILED: %llu entries after %zu puts",
               (unsigned long long)mt_count(m), s->n);
    mt_destroy(m);
    return -1;
  }
  *out = m;
  return secs;
}

static int bm_ent_ok(const struct bm_set *s, size_t i, const struct mt_ent *e)
{
  return e->klen == BM_KLEN && memcmp(e->key, bm_key(s, i), BM_KLEN) == 0 && e->seq == i + 1 &&
         e->kind == MT_INLINE && e->vlen == BM_VLEN &&
         memcmp(e->val, s->pool + bm_voff(i), BM_VLEN) == 0;
}

/* Random point reads for secs; returns ops done, *bad counts wrong answers. */
static uint64_t bm_gets(const struct mt *m, const struct bm_set *s, double secs, double *took,
                        uint64_t *bad)
{
  uint64_t ops = 0, t0 = bench_now_ns(), limit = (uint64_t)(secs * 1e9), now = t0;
  size_t j = 0;
  while (now - t0 < limit) {
    for (int r = 0; r < 256; r++, ops++, j = j + 1 < s->nprobe ? j + 1 : 0) {
      struct mt_ent e;
      if (mt_get(m, s->pkeys + j * BM_KLEN, BM_KLEN, UINT64_MAX, &e) != JDB_OK ||
          !bm_ent_ok(s, s->probe[j], &e))
        (*bad)++;
    }
    now = bench_now_ns();
  }
  *took = (double)(now - t0) / 1e9;
  return ops;
}

/* Seek to a random existing key and step BM_STEPS times one way, for secs. */
static uint64_t bm_scans(const struct mt *m, const struct bm_set *s, int reverse, double secs,
                         double *took, uint64_t *bad)
{
  struct mt_cursor c;
  mt_cursor_init(&c, m);
  uint64_t ops = 0, t0 = bench_now_ns(), limit = (uint64_t)(secs * 1e9), now = t0;
  size_t j = 0;
  while (now - t0 < limit) {
    for (int r = 0; r < 64; r++, ops++, j = j + 1 < s->nprobe ? j + 1 : 0) {
      const uint8_t *k = s->pkeys + j * BM_KLEN;
      int rc = reverse ? mt_cursor_seek_prev(&c, k, BM_KLEN, 0)
                       : mt_cursor_seek(&c, k, BM_KLEN, UINT64_MAX);
      struct mt_ent e, p;
      if (rc != JDB_OK || mt_cursor_ent(&c, &e) != JDB_OK || !bm_ent_ok(s, s->probe[j], &e)) {
        (*bad)++;
        continue;
      }
      for (int st = 0; st < BM_STEPS; st++) {
        p = e;
        if ((reverse ? mt_cursor_prev(&c) : mt_cursor_next(&c)) != JDB_OK)
          break;   /* an end of the list */
        mt_cursor_ent(&c, &e);
        int o = memcmp(p.key, e.key, BM_KLEN);
        if (reverse ? o <= 0 : o >= 0)
          (*bad)++;
      }
    }
    now = bench_now_ns();
  }
  *took = (double)(now - t0) / 1e9;
  return ops;
}

int bench_memtable(const struct bench_env *env)
{
  size_t n = env->quick ? 200000 : 2000000;
  const char *ev = getenv("JDB_BENCH_MT_N");
  if (ev && *ev && strtoull(ev, NULL, 0) > 0)
    n = (size_t)strtoull(ev, NULL, 0);
  struct bm_set s = {0};
  if (bm_make(&s, n, env->seed) != 0) {
    bench_note("memtable: out of memory for %zu keys", n);
    bm_free(&s);
    return 1;
  }
  bench_table_header();
  int fail = 0;
  struct mt *m = NULL;
  double build[BM_REPS];
  int reps = bench_want(env, "memtable.insert") ? BM_REPS : 1;
  for (int r = 0; r < reps; r++) {
    mt_destroy(m);
    build[r] = bm_build(&s, &m);
    if (build[r] < 0) {
      bm_free(&s);
      return 1;
    }
  }
  if (bench_want(env, "memtable.insert")) {
    double sorted[BM_REPS];
    memcpy(sorted, build, sizeof sorted);
    qsort(sorted, BM_REPS, sizeof sorted[0], bench_cmp_double);
    bench_row("memtable.insert", n, sorted[BM_REPS / 2], 0, NULL, 0);
    bench_note("memtable.insert: %zu random 25-byte keys, 100-byte values; builds %.3f %.3f "
               "%.3f s", n, build[0], build[1], build[2]);
  }
  double took = 0, rate[2] = {0, 0};
  uint64_t bad = 0, ops;
  if (bench_want(env, "memtable.get")) {
    ops = bm_gets(m, &s, env->secs, &took, &bad);
    bench_row("memtable.get", ops, took, 0, NULL, 0);
  }
  static const char *const scan_name[2] = {"memtable.seek+next10", "memtable.seek+prev10"};
  for (int rev = 0; rev < 2; rev++) {
    if (!bench_want(env, scan_name[rev]))
      continue;
    ops = bm_scans(m, &s, rev, env->secs, &took, &bad);
    bench_row(scan_name[rev], ops, took, 0, NULL, 0);
    rate[rev] = (double)ops / took;
  }
  if (rate[0] > 0 && rate[1] > 0)
    bench_note("memtable.seek+prev10 / seek+next10: %.2f", rate[1] / rate[0]);
  if (bench_want(env, "memtable.space"))
    bench_note("memtable.space: %.1f bytes held per entry (%zu MiB for %llu entries; key + value "
               "%u bytes)", (double)mt_bytes(m) / (double)mt_count(m), mt_bytes(m) >> 20,
               (unsigned long long)mt_count(m), BM_KLEN + BM_VLEN);
  if (bad) {
    bench_note("memtable: VERIFY FAILED: %llu wrong answers", (unsigned long long)bad);
    fail = 1;
  }
  printf("\n");
  mt_destroy(m);
  bm_free(&s);
  return fail;
}
