/*
 * test_memtable.c - the memtable (engine/tablet/mt.h): argument checks, a randomised model test
 * (entries with colliding keys, prefixes and many versions against a sorted array in bt_cmp
 * order: full scans both ways, seek / seek_prev / get at random snapshots), cursors that keep
 * stepping while entries land around them, the longest keys and values in small chunks, and
 * allocation failures.
 *
 * JDB_TEST_SEED=<n> repeats a run; JDB_TEST_SCALE=<x> multiplies the randomised work (default 1,
 * 0.5 under ASan); T_FILTER=<glob> runs only the matching tests.
 *
 * The model: an array of entries with the key inline (keys of the random test are short), sorted
 * with bt_cmp from index/btree at each check, so the memtable's order is checked against the
 * tree's own compare. Seqs are unique (hash_u64 of a counter: a bijection), inline values are the
 * pattern of their seq (tutil_pat_fill), a VREF's position and length derive from its seq.
 */
#include "tutil.h"

#include "bt.h"
#include "hash.h"
#include "jdb.h"
#include "mem.h"
#include "mt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#else
#define T_ASAN 0
#endif

#define T_KMAX 1152u

static double g_scale = 1.0;

static size_t scaled(double n)
{
  double v = n * g_scale;
  return v < 1.0 ? 1 : (size_t)v;
}

#define below(r, n) tutil_rng_below((r), (n))

/* ------------------------------------------------------------------------------------------- */
/* The model */

#define MK 24u   /* longest key of the random tests */

struct ment {
  uint8_t key[MK];
  uint32_t klen;
  uint64_t seq;
  uint8_t kind;
  uint32_t vlen;
  uint64_t vpos;
};

struct model {
  struct ment *e;
  size_t n, cap;
  uint64_t seq_max;
};

static void model_add(struct model *md, const struct ment *e)
{
  if (md->n == md->cap) {
    md->cap = md->cap ? 2 * md->cap : 1024;
    md->e = realloc(md->e, md->cap * sizeof *md->e);
    assert_non_null(md->e);
  }
  md->e[md->n++] = *e;
  if (e->seq > md->seq_max)
    md->seq_max = e->seq;
}

static int ment_cmp(const void *a, const void *b)
{
  const struct ment *x = a, *y = b;
  return bt_cmp(x->key, x->klen, x->seq, y->key, y->klen, y->seq);
}

/* First index whose entry is >= (k, s) (after: > (k, s)). */
static size_t model_bound(const struct model *md, const uint8_t *k, uint32_t kl, uint64_t s,
                          int after)
{
  size_t lo = 0, hi = md->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct ment *e = &md->e[mid];
    int c = bt_cmp(e->key, e->klen, e->seq, k, kl, s);
    if (c < 0 || (after && c == 0))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Fill the value fields of e from its seq and kind; vbuf receives an inline value. */
static void ment_value(struct ment *e, uint8_t kind, uint8_t *vbuf)
{
  e->kind = kind;
  e->vlen = 0;
  e->vpos = 0;
  if (kind == MT_INLINE) {
    uint64_t u = e->seq % 64;
    e->vlen = u < 60 ? (uint32_t)(u % 40) : (uint32_t)(e->seq % (MT_INLINE_MAX + 1));
    tutil_pat_fill(vbuf, e->vlen, e->seq);
  } else if (kind == MT_VREF) {
    e->vpos = e->seq ^ 0x5555aaaa5555aaaaull;
    e->vlen = 1 + (uint32_t)(e->seq % 100000);
  }
}

static int ment_put(struct mt *m, const struct ment *e, const uint8_t *vbuf)
{
  return mt_put(m, e->key, e->klen, e->seq, e->kind, vbuf, e->vlen, e->vpos);
}

/* The memtable's entry equals the model's: key, seq, kind, value. */
static void ent_check(const struct mt_ent *g, const struct ment *w)
{
  assert_int_equal(g->klen, w->klen);
  assert_memory_equal(g->key, w->key, w->klen);
  assert_true(g->seq == w->seq);
  assert_int_equal(g->kind, w->kind);
  assert_int_equal(g->vlen, w->vlen);
  if (w->kind == MT_INLINE) {
    assert_non_null(g->val);
    assert_true(tutil_pat_check(g->val, g->vlen, w->seq));
  } else {
    assert_null(g->val);
  }
  assert_true(g->vpos == w->vpos);
}

static void cur_check(const struct mt_cursor *c, int rc, const struct model *md, size_t i)
{
  struct mt_ent g;
  if (i >= md->n) {
    assert_int_equal(rc, JDB_NOTFOUND);
    assert_int_equal(mt_cursor_ent(c, &g), JDB_NOTFOUND);
    return;
  }
  assert_int_equal(rc, JDB_OK);
  assert_int_equal(mt_cursor_ent(c, &g), JDB_OK);
  ent_check(&g, &md->e[i]);
}

/* Sort the model and compare everything: counts, both full scans. */
static void model_scan(struct mt *m, struct model *md)
{
  qsort(md->e, md->n, sizeof *md->e, ment_cmp);
  assert_true(mt_count(m) == md->n);
  assert_true(mt_seq_max(m) == md->seq_max);
  struct mt_cursor c;
  mt_cursor_init(&c, m);
  int rc = mt_cursor_first(&c);
  for (size_t i = 0; i < md->n; i++, rc = mt_cursor_next(&c))
    cur_check(&c, rc, md, i);
  cur_check(&c, rc, md, SIZE_MAX);
  assert_int_equal(mt_cursor_next(&c), JDB_NOTFOUND);   /* stays unpositioned */
  rc = mt_cursor_last(&c);
  for (size_t i = md->n; i-- > 0; rc = mt_cursor_prev(&c))
    cur_check(&c, rc, md, i);
  cur_check(&c, rc, md, SIZE_MAX);
  assert_int_equal(mt_cursor_prev(&c), JDB_NOTFOUND);
}

/* ------------------------------------------------------------------------------------------- */
/* Random keys: three byte values (0x00 and 0xff test unsigned order, 0x80 the sign bit), lengths
   1 .. MK so that word boundaries (8, 16) are crossed; half the keys are versions of keys already
   present, a quarter extend, cut or change one. */

static const uint8_t g_alpha[3] = {0x00, 0x80, 0xff};

static uint32_t key_fresh(struct tutil_rng *r, uint8_t *k)
{
  uint32_t kl = 1 + (uint32_t)below(r, below(r, 4) ? 12 : MK);
  for (uint32_t i = 0; i < kl; i++)
    k[i] = g_alpha[below(r, 3)];
  return kl;
}

static uint32_t key_near(struct tutil_rng *r, const struct ment *e, uint8_t *k)
{
  uint32_t kl = e->klen;
  memcpy(k, e->key, kl);
  switch (below(r, 4)) {
  case 0:   /* extend */
    for (uint64_t j = 1 + below(r, 3); j-- > 0 && kl < MK;)
      k[kl++] = g_alpha[below(r, 3)];
    break;
  case 1:   /* cut */
    kl = 1 + (uint32_t)below(r, kl);
    break;
  case 2:   /* change one byte */
    k[below(r, kl)] = g_alpha[below(r, 3)];
    break;
  default:  /* same key */
    break;
  }
  return kl;
}

static uint32_t key_gen(struct tutil_rng *r, const struct model *md, uint8_t *k)
{
  uint64_t u = below(r, 4);
  if (md->n == 0 || u == 3)
    return key_fresh(r, k);
  const struct ment *e = &md->e[below(r, md->n)];
  if (u < 2) {
    memcpy(k, e->key, e->klen);
    return e->klen;
  }
  return key_near(r, e, k);
}

static uint64_t seq_probe(struct tutil_rng *r, const struct model *md)
{
  switch (below(r, 5)) {
  case 0: return 0;
  case 1: return UINT64_MAX;
  case 2: return md->n ? md->e[below(r, md->n)].seq : 1;
  case 3: return md->n ? md->e[below(r, md->n)].seq + (below(r, 2) ? 1 : (uint64_t)-1) : 2;
  default: return tutil_rng_next(r);
  }
}

/* Random seeks, seek_prevs and gets against the (sorted) model. */
static void model_probe(struct mt *m, const struct model *md, struct tutil_rng *r, size_t probes)
{
  struct mt_cursor c;
  mt_cursor_init(&c, m);
  for (size_t t = 0; t < probes; t++) {
    uint8_t k[MK];
    uint32_t kl = md->n && below(r, 2) ? key_near(r, &md->e[below(r, md->n)], k)
                                       : key_fresh(r, k);
    uint64_t s = seq_probe(r, md);

    size_t lb = model_bound(md, k, kl, s, 0);
    cur_check(&c, mt_cursor_seek(&c, k, kl, s), md, lb);
    if (lb < md->n) {
      cur_check(&c, mt_cursor_next(&c), md, lb + 1);
      if (lb + 1 < md->n)
        cur_check(&c, mt_cursor_prev(&c), md, lb);
    }

    size_t ub = model_bound(md, k, kl, s, 1);
    cur_check(&c, mt_cursor_seek_prev(&c, k, kl, s), md, ub ? ub - 1 : SIZE_MAX);
    if (ub) {
      cur_check(&c, mt_cursor_prev(&c), md, ub >= 2 ? ub - 2 : SIZE_MAX);
      if (ub >= 2)
        cur_check(&c, mt_cursor_next(&c), md, ub - 1);
    }

    struct mt_ent g;
    int rc = mt_get(m, k, kl, s, &g);
    if (lb < md->n && md->e[lb].klen == kl && memcmp(md->e[lb].key, k, kl) == 0) {
      assert_int_equal(rc, JDB_OK);
      ent_check(&g, &md->e[lb]);
    } else {
      assert_int_equal(rc, JDB_NOTFOUND);
      assert_null(g.key);
    }
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Tests */

static void test_create_args(void **state)
{
  (void)state;
  struct mt *m = (struct mt *)&g_scale;
  assert_int_equal(mt_create(0, 0, NULL), JDB_EINVAL);
  assert_int_equal(mt_create((64u << 10) - 1, 0, &m), JDB_EINVAL);
  assert_null(m);
  assert_int_equal(mt_create((size_t)1 << 31, 0, &m), JDB_EINVAL);
  const size_t scratch = MT_PUT_GROUP * (size_t)T_KMAX;   /* mt_put_many's key copies */
  assert_int_equal(mt_create(64u << 10, 16, &m), JDB_OK);
  assert_true(mt_bytes(m) >= (64u << 10) + 16 * sizeof(void *) + scratch);
  assert_true(mt_bytes(m) < (64u << 10) + 16 * sizeof(void *) + scratch + 4096);
  mt_destroy(m);
  assert_int_equal(mt_create(64u << 10, 1000, &m), JDB_OK);   /* rounded down to 512 slots */
  assert_true(mt_bytes(m) >= (64u << 10) + 512 * sizeof(void *) + scratch);
  assert_true(mt_bytes(m) < (64u << 10) + 512 * sizeof(void *) + scratch + 4096);
  mt_destroy(m);
  assert_int_equal(mt_create(64u << 10, 0, &m), JDB_OK);   /* chunk / 64 slots */
  assert_true(mt_bytes(m) >= (64u << 10) + 1024 * sizeof(void *) + scratch);
  assert_true(mt_bytes(m) < (64u << 10) + 1024 * sizeof(void *) + scratch + 4096);
  mt_destroy(m);
  assert_int_equal(mt_create(0, 0, &m), JDB_OK);
  assert_true(mt_bytes(m) >= (1u << 20));
  assert_true(mt_count(m) == 0);
  assert_true(mt_seq_max(m) == 0);
  mt_destroy(m);
  mt_destroy(NULL);
  assert_true(mt_bytes(NULL) == 0 && mt_count(NULL) == 0 && mt_seq_max(NULL) == 0);
}

static void test_empty(void **state)
{
  (void)state;
  struct mt *m;
  assert_int_equal(mt_create(0, 0, &m), JDB_OK);
  struct mt_cursor c;
  struct mt_ent e;
  mt_cursor_init(&c, m);
  assert_int_equal(mt_cursor_ent(&c, &e), JDB_NOTFOUND);
  assert_int_equal(mt_cursor_next(&c), JDB_NOTFOUND);
  assert_int_equal(mt_cursor_prev(&c), JDB_NOTFOUND);
  assert_int_equal(mt_cursor_first(&c), JDB_NOTFOUND);
  assert_int_equal(mt_cursor_last(&c), JDB_NOTFOUND);
  assert_int_equal(mt_cursor_seek(&c, "a", 1, UINT64_MAX), JDB_NOTFOUND);
  assert_int_equal(mt_cursor_seek_prev(&c, "a", 1, 0), JDB_NOTFOUND);
  assert_int_equal(mt_get(m, "a", 1, UINT64_MAX, &e), JDB_NOTFOUND);
  assert_null(c.node);
  mt_destroy(m);
}

static void test_bad_input(void **state)
{
  (void)state;
  static uint8_t big[T_KMAX + 1], val[MT_INLINE_MAX + 1];
  memset(big, 0x61, sizeof big);
  memset(val, 0x76, sizeof val);
  struct mt *m;
  assert_int_equal(mt_create(64u << 10, 0, &m), JDB_OK);
  assert_int_equal(mt_put(m, "k", 1, 7, MT_INLINE, "v1", 2, 0), JDB_OK);
  size_t bytes = mt_bytes(m);

  assert_int_equal(mt_put(NULL, "k", 1, 1, MT_INLINE, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 0, 1, MT_INLINE, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, NULL, 1, 1, MT_INLINE, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, big, T_KMAX + 1, 1, MT_INLINE, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 1, 1, 0, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 1, 1, 4, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 1, 1, 255, "v", 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 1, 1, MT_INLINE, val, MT_INLINE_MAX + 1, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 1, 1, MT_INLINE, NULL, 3, 0), JDB_EINVAL);
  assert_int_equal(mt_put(m, "k", 1, 1, MT_VREF, NULL, 0, 99), JDB_EINVAL);
  /* the same key and seq, whatever the value: refused, the first value stays */
  assert_int_equal(mt_put(m, "k", 1, 7, MT_INLINE, "other", 5, 0), JDB_EEXIST);
  assert_int_equal(mt_put(m, "k", 1, 7, MT_TOMB, NULL, 0, 0), JDB_EEXIST);
  assert_int_equal(mt_put(m, "k", 1, 7, MT_VREF, NULL, 10, 5), JDB_EEXIST);
  assert_true(mt_count(m) == 1);
  assert_true(mt_seq_max(m) == 7);
  assert_true(mt_bytes(m) == bytes);

  struct mt_ent e;
  assert_int_equal(mt_get(m, "k", 1, UINT64_MAX, &e), JDB_OK);
  assert_int_equal(e.kind, MT_INLINE);
  assert_int_equal(e.vlen, 2);
  assert_memory_equal(e.val, "v1", 2);
  struct mt_cursor c;
  mt_cursor_init(&c, m);
  assert_int_equal(mt_cursor_first(&c), JDB_OK);
  assert_int_equal(mt_cursor_next(&c), JDB_NOTFOUND);

  /* the limits themselves are fine; a tombstone's value arguments are ignored */
  assert_int_equal(mt_put(m, big, T_KMAX, 1, MT_INLINE, val, MT_INLINE_MAX, 0), JDB_OK);
  assert_int_equal(mt_put(m, "k", 1, 8, MT_TOMB, "x", 1, 5), JDB_OK);
  assert_int_equal(mt_put(m, "k", 1, 9, MT_INLINE, NULL, 0, 0), JDB_OK);
  assert_int_equal(mt_put(m, "k", 1, 6, MT_VREF, NULL, 1, UINT64_MAX), JDB_OK);
  assert_int_equal(mt_get(m, "k", 1, 8, &e), JDB_OK);
  assert_int_equal(e.kind, MT_TOMB);
  assert_int_equal(e.vlen, 0);
  assert_null(e.val);
  assert_true(e.vpos == 0);
  assert_int_equal(mt_get(m, "k", 1, 9, &e), JDB_OK);
  assert_int_equal(e.kind, MT_INLINE);
  assert_int_equal(e.vlen, 0);
  assert_non_null(e.val);
  assert_int_equal(mt_get(m, "k", 1, 6, &e), JDB_OK);
  assert_int_equal(e.kind, MT_VREF);
  assert_int_equal(e.vlen, 1);
  assert_true(e.vpos == UINT64_MAX);
  assert_int_equal(mt_get(m, "k", 1, 5, &e), JDB_NOTFOUND);
  assert_true(mt_count(m) == 5);
  assert_true(mt_seq_max(m) == 9);

  /* reads with a key no entry can have */
  assert_int_equal(mt_get(m, "k", 0, 1, &e), JDB_EINVAL);
  assert_int_equal(mt_get(m, NULL, 1, 1, &e), JDB_EINVAL);
  assert_int_equal(mt_get(m, big, T_KMAX + 1, 1, &e), JDB_EINVAL);
  assert_int_equal(mt_get(m, "k", 1, 1, NULL), JDB_EINVAL);
  assert_int_equal(mt_get(NULL, "k", 1, 1, &e), JDB_EINVAL);
  assert_int_equal(mt_cursor_first(&c), JDB_OK);
  assert_int_equal(mt_cursor_seek(&c, big, T_KMAX + 1, 1), JDB_EINVAL);
  assert_null(c.node);
  assert_int_equal(mt_cursor_first(&c), JDB_OK);
  assert_int_equal(mt_cursor_seek_prev(&c, "k", 0, 1), JDB_EINVAL);
  assert_null(c.node);
  mt_cursor_init(&c, NULL);
  assert_int_equal(mt_cursor_first(&c), JDB_EINVAL);
  assert_int_equal(mt_cursor_last(&c), JDB_EINVAL);
  assert_int_equal(mt_cursor_seek(&c, "k", 1, 1), JDB_EINVAL);
  assert_int_equal(mt_cursor_next(&c), JDB_NOTFOUND);
  mt_destroy(m);
}

/* Hand-picked keys around the 8-byte words the compare reads. */
static void test_order(void **state)
{
  (void)state;
  static const struct {
    const char *k;
    uint32_t kl;
    uint64_t seq;
  } in[] = {
    {"", 1, 5},                       {"", 1, 9},
    {"\x00\x00", 2, 1},               {"a", 1, 3},
    {"a", 1, 0},                      {"a", 1, UINT64_MAX},
    {"a\x00", 2, 4},                  {"abcdefg", 7, 1},
    {"abcdefgh", 8, 1},               {"abcdefgh\x00", 9, 1},
    {"abcdefgh\x80", 9, 1},           {"abcdefgh\x7f", 9, 2},
    {"abcdefghijklmnop", 16, 1},      {"abcdefghijklmnoq", 16, 1},
    {"abcdefghijklmno", 15, 1},       {"abcdefghijklmnop\xff", 17, 1},
    {"abcdefgi", 8, 1},               {"\x80", 1, 1},
    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9, 1},
    {"\xff\xff\xff\xff\xff\xff\xff\xff", 8, 1},
    {"\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 9, 1},
  };
  size_t n = sizeof in / sizeof in[0];
  struct mt *m;
  assert_int_equal(mt_create(0, 0, &m), JDB_OK);
  struct model md = {0};
  for (size_t i = 0; i < n; i++) {
    struct ment e = {.klen = in[i].kl, .seq = in[i].seq, .kind = MT_TOMB};
    memcpy(e.key, in[i].k, in[i].kl);
    assert_int_equal(ment_put(m, &e, NULL), JDB_OK);
    model_add(&md, &e);
  }
  model_scan(m, &md);
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x0d3);
  model_probe(m, &md, &r, 2000);
  free(md.e);
  mt_destroy(m);
}

/* Random keys (many sharing prefixes) with random, out-of-order seqs against a sorted model:
   cursors and point reads (the hash index with slots slots) at random snapshots. */
static void model_random(uint64_t seed, size_t slots, size_t total)
{
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ seed);
  size_t phases = 4;
  struct mt *m;
  assert_int_equal(mt_create(0, slots, &m), JDB_OK);
  struct model md = {0};
  uint64_t ctr = 0;
  static uint8_t vbuf[MT_INLINE_MAX];
  size_t eexist = 0;
  for (size_t ph = 0; ph < phases; ph++) {
    for (size_t i = 0; i < total / phases; i++) {
      struct ment e = {0};
      e.klen = key_gen(&r, &md, e.key);
      e.seq = ph == phases - 1 && i == 0 ? UINT64_MAX : hash_u64(ctr++);
      uint64_t u = below(&r, 8);
      ment_value(&e, u < 5 ? MT_INLINE : u < 7 ? MT_VREF : MT_TOMB, vbuf);
      assert_int_equal(ment_put(m, &e, vbuf), JDB_OK);
      model_add(&md, &e);
      if (below(&r, 64) == 0) {   /* an existing (key, seq) again, another value */
        struct ment d = md.e[below(&r, md.n)];
        size_t bytes = mt_bytes(m);
        assert_int_equal(mt_put(m, d.key, d.klen, d.seq, MT_INLINE, "zz", 2, 0), JDB_EEXIST);
        assert_true(mt_count(m) == md.n);
        assert_true(mt_bytes(m) == bytes);
        eexist++;
      }
    }
    model_scan(m, &md);
    model_probe(m, &md, &r, scaled(20000));
  }
  print_message("  %zu entries, %zu refused duplicates, %.1f bytes held per entry\n", md.n,
                eexist, (double)mt_bytes(m) / (double)md.n);
  free(md.e);
  mt_destroy(m);
}

static void test_model_random(void **state)
{
  (void)state;
  model_random(0x3e3, 0, scaled(200000));
}

/* The same with every key in one or two hash chains: chain walks, replacement of a key's node in
   the middle of a chain, versions older than the indexed one. */
static void test_model_collisions(void **state)
{
  (void)state;
  model_random(0x3e4, 1, scaled(3000));
  model_random(0x3e5, 2, scaled(3000));
}

/* A cursor keeps stepping while entries land right before and after it and anywhere else. */
static void test_cursor_stability(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x57ab);
  struct mt *m;
  assert_int_equal(mt_create(64u << 10, 0, &m), JDB_OK);
  struct model md = {0};
  uint64_t ctr = 1;
  for (int i = 0; i < 100; i++) {
    struct ment e = {.kind = MT_TOMB};
    e.klen = key_gen(&r, &md, e.key);
    e.seq = ctr++ << 20;
    assert_int_equal(ment_put(m, &e, NULL), JDB_OK);
    model_add(&md, &e);
  }
  struct mt_cursor c;
  mt_cursor_init(&c, m);
  const struct ment *p = &md.e[below(&r, md.n)];
  assert_int_equal(mt_cursor_seek(&c, p->key, p->klen, p->seq), JDB_OK);
  struct mt_ent at;
  assert_int_equal(mt_cursor_ent(&c, &at), JDB_OK);
  assert_true(at.seq == p->seq);
  size_t steps = scaled(40000), adjacent = 0, ends = 0;
  int run = 1;
  for (size_t t = 0; t < steps; t++) {
    if (below(&r, 1024) == 0)   /* long runs one way, to reach the ends */
      run = 1 - run;
    int fwd = below(&r, 8) ? run : 1 - run;   /* and single steps back */
    /* right next to the cursor in the direction of the coming step: the next step must land on
       it, whether this put adds it or an earlier one did (nothing fits between seq s and s-1 of
       one key). Other puts use seqs 2^19 apart from each other and from these chains, which
       are never longer than the steps. */
    int adj = below(&r, 8) == 0;
    uint64_t aseq = fwd ? at.seq - 1 : at.seq + 1;
    if (adj && (fwd ? at.seq > 0 : at.seq < UINT64_MAX)) {
      int rc = mt_put(m, at.key, at.klen, aseq, MT_TOMB, NULL, 0, 0);
      assert_true(rc == JDB_OK || rc == JDB_EEXIST);
      adjacent += rc == JDB_OK;
    } else {
      adj = 0;
    }
    for (uint64_t j = below(&r, 16) == 0; j-- > 0;) {
      struct ment e = {.kind = MT_TOMB};
      e.klen = below(&r, 2) ? key_near(&r, &md.e[below(&r, md.n)], e.key) : key_fresh(&r, e.key);
      if (below(&r, 2) && at.klen <= MK) {   /* the cursor's key or one next to it */
        struct ment a = {.klen = at.klen};
        memcpy(a.key, at.key, at.klen);
        e.klen = key_near(&r, &a, e.key);
      }
      e.seq = (ctr++ << 20) | 1u << 19;
      assert_int_equal(ment_put(m, &e, NULL), JDB_OK);
    }
    int rc = fwd ? mt_cursor_next(&c) : mt_cursor_prev(&c);
    struct mt_ent nw;
    if (rc == JDB_NOTFOUND) {
      ends++;
      run = !fwd;   /* turn back at the end */
      assert_int_equal(mt_cursor_ent(&c, &nw), JDB_NOTFOUND);
      assert_int_equal(fwd ? mt_cursor_last(&c) : mt_cursor_first(&c), JDB_OK);
      assert_int_equal(mt_cursor_ent(&c, &at), JDB_OK);
      continue;
    }
    assert_int_equal(rc, JDB_OK);
    assert_int_equal(mt_cursor_ent(&c, &nw), JDB_OK);
    int cmp = bt_cmp(at.key, at.klen, at.seq, nw.key, nw.klen, nw.seq);
    assert_true(fwd ? cmp < 0 : cmp > 0);
    if (adj) {
      assert_int_equal(nw.klen, at.klen);
      assert_memory_equal(nw.key, at.key, at.klen);
      assert_true(nw.seq == aseq);
    }
    at = nw;
  }
  /* the whole list is still in strict order both ways, and holds every entry */
  uint64_t n = 0;
  struct mt_ent pv = {0}, cu;
  for (int rc = mt_cursor_first(&c); rc == JDB_OK; rc = mt_cursor_next(&c), n++) {
    assert_int_equal(mt_cursor_ent(&c, &cu), JDB_OK);
    if (n)
      assert_true(bt_cmp(pv.key, pv.klen, pv.seq, cu.key, cu.klen, cu.seq) < 0);
    pv = cu;
  }
  assert_true(n == mt_count(m));
  n = 0;
  for (int rc = mt_cursor_last(&c); rc == JDB_OK; rc = mt_cursor_prev(&c), n++) {
    assert_int_equal(mt_cursor_ent(&c, &cu), JDB_OK);
    if (n)
      assert_true(bt_cmp(pv.key, pv.klen, pv.seq, cu.key, cu.klen, cu.seq) > 0);
    pv = cu;
  }
  assert_true(n == mt_count(m));
  print_message("  %zu steps, %zu entries put next to the cursor, %zu ends reached\n", steps,
                adjacent, ends);
  free(md.e);
  mt_destroy(m);
}

/* Longest keys and values in the smallest chunks: many chunks, nodes close to every chunk end. */
struct big {
  uint32_t id;     /* key bytes: kfill(id) */
  uint32_t klen;
  uint64_t seq;
  uint8_t kind;
};

static void kfill(uint8_t *k, uint32_t klen, uint32_t id)
{
  /* ids of one group share everything but the last bytes, and some keys are prefixes of
     others, so the compare runs over the whole 1152 bytes */
  memset(k, 0x5a, klen);
  k[0] = (uint8_t)(id >> 8);
  if (klen >= 2)
    k[klen - 1] = (uint8_t)id;
}

static int big_cmp(const void *a, const void *b)
{
  const struct big *x = a, *y = b;
  static uint8_t ka[T_KMAX], kb[T_KMAX];
  kfill(ka, x->klen, x->id);
  kfill(kb, y->klen, y->id);
  return bt_cmp(ka, x->klen, x->seq, kb, y->klen, y->seq);
}

static void big_check(const struct mt_ent *g, const struct big *w)
{
  static uint8_t k[T_KMAX], v[MT_INLINE_MAX];
  kfill(k, w->klen, w->id);
  assert_int_equal(g->klen, w->klen);
  assert_memory_equal(g->key, k, w->klen);
  assert_true(g->seq == w->seq);
  assert_int_equal(g->kind, w->kind);
  if (w->kind == MT_INLINE) {
    assert_int_equal(g->vlen, MT_INLINE_MAX);
    tutil_pat_fill(v, MT_INLINE_MAX, w->seq);
    assert_memory_equal(g->val, v, MT_INLINE_MAX);
  } else {
    assert_int_equal(g->vlen, 77);
    assert_true(g->vpos == w->seq * 3);
  }
}

static void test_large_chunks(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xb16);
  const size_t chunk = 64u << 10;
  struct mt *m;
  assert_int_equal(mt_create(chunk, 0, &m), JDB_OK);
  size_t base = mt_bytes(m), n = scaled(1500), payload = 0;
  struct big *w = calloc(n, sizeof *w);
  assert_non_null(w);
  static uint8_t k[T_KMAX], v[MT_INLINE_MAX];
  for (size_t i = 0; i < n; i++) {
    w[i].id = (uint32_t)below(&r, 1024);
    w[i].klen = below(&r, 4) ? T_KMAX : T_KMAX - (uint32_t)below(&r, 3);
    w[i].seq = hash_u64(i + 1);
    w[i].kind = below(&r, 8) ? MT_INLINE : MT_VREF;
    kfill(k, w[i].klen, w[i].id);
    tutil_pat_fill(v, MT_INLINE_MAX, w[i].seq);
    int rc = w[i].kind == MT_INLINE
                 ? mt_put(m, k, w[i].klen, w[i].seq, MT_INLINE, v, MT_INLINE_MAX, 0)
                 : mt_put(m, k, w[i].klen, w[i].seq, MT_VREF, NULL, 77, w[i].seq * 3);
    assert_int_equal(rc, JDB_OK);
    payload += w[i].klen + (w[i].kind == MT_INLINE ? MT_INLINE_MAX : 8);
    assert_true((mt_bytes(m) - base) % chunk == 0);   /* grows a whole chunk at a time */
  }
  size_t held = mt_bytes(m);
  print_message("  %zu entries of ~1.6 KiB in %zu chunks of 64 KiB: %.1f%% over the payload\n", n,
                (held - base) / chunk + 1, 100.0 * ((double)held / (double)payload - 1));
  assert_true(held > payload);
  assert_true(held < payload + payload / 8 + 2 * chunk);

  qsort(w, n, sizeof *w, big_cmp);
  struct mt_cursor c;
  struct mt_ent g;
  mt_cursor_init(&c, m);
  size_t i = 0;
  for (int rc = mt_cursor_first(&c); rc == JDB_OK; rc = mt_cursor_next(&c), i++) {
    assert_true(i < n);
    assert_int_equal(mt_cursor_ent(&c, &g), JDB_OK);
    big_check(&g, &w[i]);
  }
  assert_true(i == n);
  for (int rc = mt_cursor_last(&c); rc == JDB_OK; rc = mt_cursor_prev(&c)) {
    assert_int_equal(mt_cursor_ent(&c, &g), JDB_OK);
    big_check(&g, &w[--i]);
  }
  assert_true(i == 0);
  for (size_t t = 0; t < n; t += 7) {
    kfill(k, w[t].klen, w[t].id);
    assert_int_equal(mt_get(m, k, w[t].klen, w[t].seq, &g), JDB_OK);
    big_check(&g, &w[t]);
    assert_int_equal(mt_cursor_seek_prev(&c, k, w[t].klen, w[t].seq), JDB_OK);
    assert_int_equal(mt_cursor_ent(&c, &g), JDB_OK);
    big_check(&g, &w[t]);
  }
  free(w);
  mt_destroy(m);
}

/* Two memtables hold the same entries, entry for entry (cursor walk), and answer mt_get alike. */
static void mt_same(struct mt *a, struct mt *b, struct tutil_rng *r, const struct model *md)
{
  assert_true(mt_count(a) == mt_count(b));
  assert_true(mt_seq_max(a) == mt_seq_max(b));
  struct mt_cursor ca, cb;
  mt_cursor_init(&ca, a);
  mt_cursor_init(&cb, b);
  int ra = mt_cursor_first(&ca), rb = mt_cursor_first(&cb);
  size_t n = 0;
  for (; ra == JDB_OK && rb == JDB_OK; ra = mt_cursor_next(&ca), rb = mt_cursor_next(&cb), n++) {
    struct mt_ent x, y;
    assert_int_equal(mt_cursor_ent(&ca, &x), JDB_OK);
    assert_int_equal(mt_cursor_ent(&cb, &y), JDB_OK);
    assert_int_equal(x.klen, y.klen);
    assert_memory_equal(x.key, y.key, x.klen);
    assert_true(x.seq == y.seq && x.kind == y.kind && x.vlen == y.vlen);
    if (x.kind == MT_INLINE && x.vlen)
      assert_memory_equal(x.val, y.val, x.vlen);
    if (x.kind == MT_VREF)
      assert_true(x.vpos == y.vpos);
  }
  assert_int_equal(ra, JDB_NOTFOUND);
  assert_int_equal(rb, JDB_NOTFOUND);
  assert_true(n == mt_count(a));
  for (int t = 0; t < 200 && md->n; t++) {
    const struct ment *e = &md->e[below(r, md->n)];
    uint64_t snap = below(r, 3) == 0 ? UINT64_MAX : e->seq + below(r, 3) - 1;
    struct mt_ent x, y;
    int gx = mt_get(a, e->key, e->klen, snap, &x), gy = mt_get(b, e->key, e->klen, snap, &y);
    assert_int_equal(gx, gy);
    if (gx == JDB_OK)
      assert_true(x.seq == y.seq && x.kind == y.kind && x.vlen == y.vlen);
  }
}

/* mt_put_many against mt_put applied last to first: random batches (keys near earlier ones,
   repeats within a batch, now and then a batch reusing an earlier batch's seq, bad requests),
   the same rc per request and the same memtable afterwards; with a hash index of `slots`. */
#define PM_MAX 48
static void put_many_run(uint64_t seed, size_t slots, size_t batches)
{
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ seed);
  struct mt *a, *b;
  assert_int_equal(mt_create(0, slots, &a), JDB_OK);
  assert_int_equal(mt_create(0, 0, &b), JDB_OK);
  struct model md = {0};
  static struct ment e[PM_MAX];
  static uint8_t vb[PM_MAX][MT_INLINE_MAX];
  struct mt_put_req q[PM_MAX];
  int rb[PM_MAX];
  uint64_t *seqs = calloc(batches, sizeof *seqs);
  assert_non_null(seqs);
  size_t ok = 0, eexist = 0, einval = 0;
  for (size_t bt = 0; bt < batches; bt++) {
    uint64_t seq = bt && below(&r, 20) == 0 ? seqs[below(&r, bt)] : hash_u64(bt + 1) | 1;
    seqs[bt] = seq;
    size_t n = 1 + below(&r, below(&r, 4) == 0 ? PM_MAX : 6);
    for (size_t i = 0; i < n; i++) {
      if (i && below(&r, 6) == 0) {
        e[i] = e[below(&r, i)];   /* the same key again: the later request wins */
      } else {
        e[i].klen = key_gen(&r, &md, e[i].key);
      }
      e[i].seq = seq;
      uint64_t u = below(&r, 8);
      ment_value(&e[i], u < 5 ? MT_INLINE : u < 7 ? MT_VREF : MT_TOMB, vb[i]);
      q[i] = (struct mt_put_req){.key = e[i].key, .klen = e[i].klen, .kind = e[i].kind,
                                 .val = vb[i], .vlen = e[i].vlen, .vpos = e[i].vpos, .rc = 777};
      if (below(&r, 50) == 0) {   /* a bad request */
        if (below(&r, 2))
          q[i].klen = 0;
        else
          q[i].kind = 9;
      }
    }
    assert_int_equal(mt_put_many(a, seq, q, n), JDB_OK);
    for (size_t i = n; i-- > 0;)
      rb[i] = mt_put(b, q[i].key, q[i].klen, seq, q[i].kind, q[i].val, q[i].vlen, q[i].vpos);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(q[i].rc, rb[i]);
      ok += rb[i] == JDB_OK;
      eexist += rb[i] == JDB_EEXIST;
      einval += rb[i] == JDB_EINVAL;
      if (rb[i] == JDB_OK)
        model_add(&md, &e[i]);
    }
    if (bt % 500 == 499)
      mt_same(a, b, &r, &md);
  }
  mt_same(a, b, &r, &md);
  assert_true(ok > 0 && eexist > 0 && einval > 0);
  print_message("  slots %zu: %zu entries, %zu refused (same key and seq), %zu bad\n", slots, ok,
                eexist, einval);
  assert_int_equal(mt_put_many(NULL, 1, q, 1), JDB_EINVAL);
  assert_int_equal(mt_put_many(a, 1, NULL, 1), JDB_EINVAL);
  assert_int_equal(mt_put_many(a, 1, NULL, 0), JDB_OK);
  free(seqs);
  free(md.e);
  mt_destroy(a);
  mt_destroy(b);
}

static void test_put_many(void **state)
{
  (void)state;
  put_many_run(0x9a1, 0, scaled(6000));
  put_many_run(0x9a2, 1, scaled(600));
}

/* Allocation failures: create fails cleanly, and a put that needs a new chunk changes nothing. */
static int g_fail;
static int g_allow = -1;   /* >= 0: allocations that succeed before they all fail */
static void *fail_malloc(size_t n)
{
  if (g_allow >= 0 && g_allow-- == 0)
    g_fail = 1;
  return g_fail ? NULL : malloc(n);
}

static void test_enomem(void **state)
{
  (void)state;
  struct mem_hooks h = {.malloc_fn = fail_malloc};
  mem_hooks_set(&h);
  g_fail = 1;
  struct mt *m = (struct mt *)&g_scale;
  assert_int_equal(mt_create(0, 0, &m), JDB_ENOMEM);
  assert_null(m);
  for (int allow = 1; allow <= 3; allow++) {   /* the index, the key scratch, the first chunk */
    g_fail = 0;
    g_allow = allow;
    m = (struct mt *)&g_scale;
    assert_int_equal(mt_create(0, 0, &m), JDB_ENOMEM);
    assert_null(m);
  }
  g_allow = -1;
  g_fail = 0;
  assert_int_equal(mt_create(64u << 10, 0, &m), JDB_OK);
  g_fail = 1;
  static uint8_t v[MT_INLINE_MAX];
  uint8_t k[8];
  uint32_t i = 0;
  int rc;
  for (;;) {   /* fill the first chunk until a put needs the next one */
    memcpy(k, &i, 4);
    size_t bytes = mt_bytes(m);
    rc = mt_put(m, k, 4, i, MT_INLINE, v, MT_INLINE_MAX, 0);
    if (rc != JDB_OK) {
      assert_int_equal(rc, JDB_ENOMEM);
      assert_true(mt_bytes(m) == bytes);
      break;
    }
    i++;
  }
  assert_true(i > 10);
  assert_true(mt_count(m) == i);
  assert_true(mt_seq_max(m) == i - 1);
  struct mt_ent e;
  assert_int_equal(mt_get(m, k, 4, UINT64_MAX, &e), JDB_NOTFOUND);
  struct mt_cursor c;
  mt_cursor_init(&c, m);
  uint32_t n = 0;
  for (rc = mt_cursor_first(&c); rc == JDB_OK; rc = mt_cursor_next(&c))
    n++;
  assert_int_equal(n, i);
  g_fail = 0;
  assert_int_equal(mt_put(m, k, 4, i, MT_INLINE, v, MT_INLINE_MAX, 0), JDB_OK);
  assert_int_equal(mt_get(m, k, 4, UINT64_MAX, &e), JDB_OK);
  assert_true(mt_count(m) == i + 1u);
  mt_destroy(m);
  mem_hooks_set(NULL);
}

int main(void)
{
  tutil_init();
  const char *sc = getenv("JDB_TEST_SCALE");
  g_scale = sc && *sc ? strtod(sc, NULL) : T_ASAN ? 0.5 : 1.0;
  if (!(g_scale > 0))
    g_scale = 1.0;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_create_args),
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_bad_input),
    cmocka_unit_test(test_order),
    cmocka_unit_test(test_model_random),
    cmocka_unit_test(test_model_collisions),
    cmocka_unit_test(test_put_many),
    cmocka_unit_test(test_cursor_stability),
    cmocka_unit_test(test_large_chunks),
    cmocka_unit_test(test_enomem),
  };
  if (getenv("T_FILTER"))
    cmocka_set_test_filter(getenv("T_FILTER"));
  return cmocka_run_group_tests_name("memtable", tests, NULL, NULL);
}
