/*
 * test_btree.c - the copy-on-write B+ tree (index/btree/bt.h): a randomised model test (runs of
 * puts, overwrites and erases against a sorted in-memory model, commits, reopens, old committed
 * roots re-read while the tree moves on), empty trees, height growth and shrink, erase patterns
 * that empty whole subtrees, entries no split can share out evenly, cursors both ways across
 * page boundaries, point lookups by snapshot, key and value limits, bad runs, the "each page
 * once per run" promise, crash at every I/O of a commit, damaged pages (bit flips and
 * well-sealed pages the tree could not have written), readers in fibers next to a writer, and
 * the page verifier on random and mutated pages.
 *
 * One binary, run once per backend: argv[1] is "uring" or "psync" (the faulty backend wraps that
 * one where a test simulates power loss). Exits 77 when io_uring is unavailable for the "uring"
 * run. JDB_TEST_SEED=<n> repeats a run; JDB_TEST_SCALE=<x> multiplies the randomised work
 * (default 1, 0.5 under ASan); T_FILTER=<glob> runs only the matching tests.
 *
 * The model: a sorted array of (key, seq, kind, value) in tree order (key bytewise ascending, a
 * key before its extensions, then seq descending). Keys live in an arena for the whole test, so
 * model copies (old committed states) are plain array copies. Inline values are never stored:
 * they are regenerated from a 64-bit tag. Fibers never call cmocka asserts (they count problems).
 * Files are damaged through plain descriptors opened by the test, with the pg closed. When
 * bt_check fails, the pages it would call underfull or malformed are listed with their siblings.
 */
#include "tutil.h"
#include "tutil_fs.h"

#include "bt.h"
#include "bt_int.h"
#include "btt_pages.h"
#include "codec.h"
#include "coro.h"
#include "err.h"
#include "fs.h"
#include "jdb.h"
#include "layout.h"
#include "pg.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#else
#define T_ASAN 0
#endif

#define PAGE BT_PAGE

static const char *g_backend = "uring";
static double g_scale = 1.0;

static int scaled(double n)
{
  double v = n * g_scale;
  return v < 1.0 ? 1 : (int)v;
}

#define below(r, n) tutil_rng_below((r), (n))

/* ------------------------------------------------------------------------------------------- */
/* Contexts */

static struct fs_ctx *ctx_new(void)
{
  struct fs_ctx_opts o = {.backend = strcmp(g_backend, "uring") == 0 ? FS_BACKEND_URING
                                                                      : FS_BACKEND_PSYNC};
  struct fs_ctx *c = NULL;
  assert_int_equal(fs_ctx_create(&o, &c), JDB_OK);
  return c;
}

static struct fs_ctx *fctx_new(uint64_t seed)
{
  struct fs_ctx *fc = NULL;
  assert_int_equal(fs_faulty_create(ctx_new(), seed, &fc), JDB_OK);
  return fc;
}

/* ------------------------------------------------------------------------------------------- */
/* Keys, values, the model */

/* Key bytes live here until the end of the test. */
#define KARENA_BLK (1u << 20)
static struct {
  uint8_t **blk;
  size_t n, cap, used;
} g_ka;

static const uint8_t *key_keep(const void *k, uint32_t len)
{
  if (g_ka.n == 0 || g_ka.used + len > KARENA_BLK) {
    if (g_ka.n == g_ka.cap) {
      g_ka.cap = g_ka.cap ? 2 * g_ka.cap : 64;
      g_ka.blk = realloc(g_ka.blk, g_ka.cap * sizeof *g_ka.blk);
      assert_non_null(g_ka.blk);
    }
    g_ka.blk[g_ka.n] = malloc(KARENA_BLK);
    assert_non_null(g_ka.blk[g_ka.n]);
    g_ka.n++;
    g_ka.used = 0;
  }
  uint8_t *d = g_ka.blk[g_ka.n - 1] + g_ka.used;
  memcpy(d, k, len);
  g_ka.used += len;
  return d;
}

static void keys_free(void)
{
  for (size_t i = 0; i < g_ka.n; i++)
    free(g_ka.blk[i]);
  free(g_ka.blk);
  memset(&g_ka, 0, sizeof g_ka);
}

static uint64_t mix64(uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Inline value bytes of a tag. */
static void val_fill(uint8_t *b, uint32_t n, uint64_t tag)
{
  uint64_t st = tag, z = 0;
  for (uint32_t i = 0; i < n; i++) {
    if ((i & 7u) == 0)
      z = mix64(st += 0x9e3779b97f4a7c15ull);
    b[i] = (uint8_t)(z >> (8u * (i & 7u)));
  }
}

/* Tree order, written here independently of the tree's own comparator. */
static int kcmp(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
  uint32_t n = la < lb ? la : lb;
  int c = n ? memcmp(a, b, n) : 0;
  if (c)
    return c < 0 ? -1 : 1;
  return la < lb ? -1 : la > lb;
}

static int tcmp(const uint8_t *a, uint32_t la, uint64_t sa, const uint8_t *b, uint32_t lb,
                uint64_t sb)
{
  int c = kcmp(a, la, b, lb);
  if (c)
    return c;
  return sa > sb ? -1 : sa < sb;
}

struct ment {
  const uint8_t *key;
  uint64_t seq;
  uint64_t v;      /* INLINE: content tag; VREF: position */
  uint32_t klen;
  uint32_t vlen;
  uint8_t kind;
};

struct model {
  struct ment *e;
  size_t n;
  uint64_t key_bytes;
};

static void model_copy(struct model *d, const struct model *s)
{
  free(d->e);
  d->e = malloc((s->n + 1) * sizeof *d->e);
  assert_non_null(d->e);
  if (s->n)
    memcpy(d->e, s->e, s->n * sizeof *d->e);
  d->n = s->n;
  d->key_bytes = s->key_bytes;
}

static void model_free(struct model *m)
{
  free(m->e);
  memset(m, 0, sizeof *m);
}

/* First entry >= (k, s) */
static size_t model_lower(const struct model *m, const uint8_t *k, uint32_t kl, uint64_t s)
{
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (tcmp(m->e[mid].key, m->e[mid].klen, m->e[mid].seq, k, kl, s) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* First entry > (k, s) */
static size_t model_upper(const struct model *m, const uint8_t *k, uint32_t kl, uint64_t s)
{
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (tcmp(m->e[mid].key, m->e[mid].klen, m->e[mid].seq, k, kl, s) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* One op of a run as the test generates it; v is the inline tag or the VREF position. */
struct gop {
  const uint8_t *key;
  uint64_t seq, v;
  uint32_t klen, vlen;
  uint8_t op, kind;
};

static int gop_cmp(const void *a, const void *b)
{
  const struct gop *x = a, *y = b;
  return tcmp(x->key, x->klen, x->seq, y->key, y->klen, y->seq);
}

/* Sort into tree order, keep the first of equal (key, seq); returns the count. */
static size_t gops_sort(struct gop *g, size_t n)
{
  qsort(g, n, sizeof *g, gop_cmp);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (k == 0 || gop_cmp(&g[k - 1], &g[i]) != 0)
      g[k++] = g[i];
  return k;
}

struct counts {
  uint64_t ins, rep, era, miss;
};

static struct ment ment_of(const struct gop *g)
{
  return (struct ment){.key = g->key, .klen = g->klen, .seq = g->seq, .kind = g->kind,
                       .vlen = g->kind == BT_TOMB ? 0 : g->vlen,
                       .v = g->kind == BT_TOMB ? 0 : g->v};
}

/* Merge a sorted run into the model. */
static void model_apply(struct model *m, const struct gop *g, size_t n, struct counts *c)
{
  struct ment *out = malloc((m->n + n + 1) * sizeof *out);
  assert_non_null(out);
  memset(c, 0, sizeof *c);
  size_t i = 0, j = 0, k = 0;
  while (j < n) {
    int cmp = i < m->n ? tcmp(m->e[i].key, m->e[i].klen, m->e[i].seq, g[j].key, g[j].klen,
                              g[j].seq)
                       : 1;
    if (cmp < 0) {
      out[k++] = m->e[i++];
      continue;
    }
    if (g[j].op == BT_OP_PUT) {
      out[k++] = ment_of(&g[j]);
      m->key_bytes += g[j].klen;
      if (cmp == 0) {
        c->rep++;
        m->key_bytes -= m->e[i++].klen;
      } else {
        c->ins++;
      }
    } else if (cmp == 0) {
      c->era++;
      m->key_bytes -= m->e[i++].klen;
    } else {
      c->miss++;
    }
    j++;
  }
  while (i < m->n)
    out[k++] = m->e[i++];
  free(m->e);
  m->e = out;
  m->n = k;
}

/* bt_op array (and the inline value bytes) of a run. */
struct run {
  struct bt_op *ops;
  uint8_t *vals;
};

static void run_build(struct run *r, const struct gop *g, size_t n)
{
  size_t vb = 0;
  for (size_t i = 0; i < n; i++)
    if (g[i].op == BT_OP_PUT && g[i].kind == BT_INLINE)
      vb += g[i].vlen;
  r->vals = malloc(vb + 1);
  r->ops = calloc(n + 1, sizeof *r->ops);
  assert_non_null(r->vals);
  assert_non_null(r->ops);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    struct bt_op *o = &r->ops[i];
    *o = (struct bt_op){.op = g[i].op, .kind = g[i].kind, .key = g[i].key, .klen = g[i].klen,
                        .seq = g[i].seq};
    if (g[i].op != BT_OP_PUT)
      continue;
    if (g[i].kind == BT_INLINE) {
      val_fill(r->vals + off, g[i].vlen, g[i].v);
      o->val = r->vals + off;
      o->vlen = g[i].vlen;
      off += g[i].vlen;
    } else if (g[i].kind == BT_VREF) {
      o->vlen = g[i].vlen;
      o->vpos = g[i].v;
    }
  }
}

static void run_free(struct run *r)
{
  free(r->ops);
  free(r->vals);
}

/* ------------------------------------------------------------------------------------------- */
/* A tree in a pages file */

struct env {
  struct fs_ctx *ctx;
  const char *dir;
  char path[4096];
  uint32_t frames;
  int buffered;   /* pg_opts.buffered: page-cache reads (cheap misses) instead of O_DIRECT */
  struct bt_opts bo;
  struct pg *p;
  struct bt *t;
};

static void env_open(struct env *e)
{
  struct pg_opts o = {.frames = e->frames, .buffered = e->buffered};
  bt_pg_opts(&o);
  assert_non_null(o.verify);
  e->p = NULL;
  int rc = pg_open(e->ctx, e->path, &o, 1, &e->p);
  if (rc)
    print_message("pg_open %s: %s\n", e->path, jdb_strerror(rc));
  assert_int_equal(rc, JDB_OK);
  e->t = NULL;
  assert_int_equal(bt_open(e->p, &e->bo, pg_super(e->p)->tree_root, &e->t), JDB_OK);
  assert_non_null(e->t);
  assert_int_equal(bt_root(e->t), pg_super(e->p)->tree_root);
}

static void env_init(struct env *e, struct fs_ctx *ctx, const char *name, uint32_t frames,
                     uint32_t inline_max)
{
  memset(e, 0, sizeof *e);
  e->bo.inline_max = inline_max;
  e->ctx = ctx;
  e->dir = tutil_tmpdir(name);
  tutil_path(e->path, sizeof e->path, e->dir, "pages");
  e->frames = frames;
  env_open(e);
}

static void env_close(struct env *e)
{
  bt_close(e->t);
  e->t = NULL;
  pg_close(e->p);
  e->p = NULL;
}

static void env_done(struct env *e)
{
  env_close(e);
  fs_ctx_destroy(e->ctx);
  tutil_rmrf(e->dir);
}

static void env_reopen(struct env *e, uint32_t frames)
{
  env_close(e);
  if (frames)
    e->frames = frames;
  env_open(e);
}

static int env_commit(struct env *e)
{
  struct layout_super n = *pg_super(e->p);
  n.tree_root = bt_root(e->t);
  n.seq_max++;
  return pg_commit(e->p, &n);
}

static void env_commit_ok(struct env *e)
{
  uint64_t g = pg_super(e->p)->generation;
  int rc = env_commit(e);
  if (rc)
    print_message("commit: %s\n", jdb_strerror(rc));
  assert_int_equal(rc, JDB_OK);
  assert_int_equal(pg_super(e->p)->generation, g + 1);
  assert_int_equal(pg_super(e->p)->tree_root, bt_root(e->t));
}

static uint32_t pinned(struct pg *p)
{
  struct pg_stats st;
  pg_stats_get(p, &st);
  return st.pinned;
}

/* ------------------------------------------------------------------------------------------- */
/* Checking a tree against a model */

static void key_str(char *out, size_t cap, const uint8_t *k, uint32_t kl)
{
  size_t o = 0;
  for (uint32_t i = 0; i < kl && o + 8 < cap && i < 40; i++) {
    if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
      out[o++] = (char)k[i];
    else
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", k[i]);
  }
  snprintf(out + o, cap - o, "%s(%u)", kl > 40 ? "..." : "", kl);
}

static int ent_ok(const struct bt_ent *e, const struct ment *w, const char *what, size_t idx)
{
  static uint8_t vb[BT_INLINE_MAX];
  const char *bad = NULL;
  if (!e)
    bad = "no entry";
  else if (e->klen != w->klen || !e->key || memcmp(e->key, w->key, w->klen) != 0)
    bad = "key";
  else if (e->seq != w->seq)
    bad = "seq";
  else if (e->kind != w->kind)
    bad = "kind";
  else if (w->kind == BT_INLINE) {
    val_fill(vb, w->vlen, w->v);
    if (e->vlen != w->vlen)
      bad = "inline length";
    else if (w->vlen && (!e->val || memcmp(e->val, vb, w->vlen) != 0))
      bad = "inline value";
  } else if (w->kind == BT_VREF) {
    if (e->vlen != w->vlen || e->vpos != w->v)
      bad = "value reference";
  } else if (e->vlen != 0) {
    bad = "tombstone length";
  }
  if (!bad)
    return 1;
  char a[400], b[400] = "-";
  key_str(a, sizeof a, w->key, w->klen);
  if (e && e->key)
    key_str(b, sizeof b, e->key, e->klen);
  print_message("%s: entry %zu: %s differs: want %s seq %llu kind %u vlen %u; got %s seq %llu "
                "kind %u vlen %u\n",
                what, idx, bad, a, (unsigned long long)w->seq, w->kind, w->vlen, b,
                (unsigned long long)(e ? e->seq : 0), e ? e->kind : 0, e ? e->vlen : 0);
  return 0;
}

static uint64_t leaf_of(const struct bt_cursor *c)
{
  return c->lv[c->depth - 1].pgno;
}

/* Whole tree forward: equals the model, then NOTFOUND and unpositioned. Every positioned state
   holds one pin per level (height > 0). Returns the number of leaves seen. */
static uint64_t walk_fwd(struct pg *p, uint64_t root, const struct model *m, uint64_t height)
{
  struct bt_cursor c;
  bt_cursor_init(&c, p, root);
  int rc = bt_cursor_first(&c);
  uint64_t leaves = 0, last = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (rc != JDB_OK)
      print_message("forward walk: entry %zu of %zu: %s\n", i, m->n, jdb_strerror(rc));
    assert_int_equal(rc, JDB_OK);
    assert_true(ent_ok(bt_cursor_ent(&c), &m->e[i], "forward walk", i));
    if (height)
      assert_int_equal(c.depth, height);
    if (leaf_of(&c) != last) {
      leaves++;
      last = leaf_of(&c);
    }
    rc = bt_cursor_next(&c);
  }
  assert_int_equal(rc, JDB_NOTFOUND);
  assert_null(bt_cursor_ent(&c));
  assert_int_equal(c.depth, 0);
  bt_cursor_close(&c);
  return leaves;
}

static void walk_rev(struct pg *p, uint64_t root, const struct model *m)
{
  struct bt_cursor c;
  bt_cursor_init(&c, p, root);
  int rc = bt_cursor_last(&c);
  for (size_t i = m->n; i-- > 0;) {
    if (rc != JDB_OK)
      print_message("reverse walk: entry %zu of %zu: %s\n", i, m->n, jdb_strerror(rc));
    assert_int_equal(rc, JDB_OK);
    assert_true(ent_ok(bt_cursor_ent(&c), &m->e[i], "reverse walk", i));
    rc = bt_cursor_prev(&c);
  }
  assert_int_equal(rc, JDB_NOTFOUND);
  assert_null(bt_cursor_ent(&c));
  assert_int_equal(c.depth, 0);
  bt_cursor_close(&c);
}

/* Diagnostics when bt_check fails: every page the check would call underfull or malformed,
   with its place in the tree (body bytes as the encoders count them). */
static uint32_t page_body(const uint8_t *page)
{
  static uint8_t kb[BT_KEY_MAX];
  uint32_t n = le16_get(page + 8);
  if (page[6] == LAYOUT_PAGE_BRANCH) {
    uint32_t s = 8;
    for (uint32_t i = 1; i < n; i++) {
      struct bt_item it = {0};
      uint64_t ch;
      bt_br_sep(page, i, &it.key, &it.klen, &it.seq, &ch);
      s += bt_br_item_size(&it);
    }
    return s;
  }
  struct bt_leaf l;
  bt_leaf_init(&l, page);
  uint32_t s = 2u + l.plen;
  for (uint32_t i = 0; i < n; i++) {
    struct bt_item it;
    bt_leaf_item(&l, i, kb, &it);
    s += bt_leaf_item_size(&it, l.plen);
  }
  return s;
}

static void dump_bad_pages(struct pg *p, uint64_t pgno, int depth)
{
  struct pg_frame *fr;
  const void *d;
  if (pg_pin(p, pgno, 0, &fr, &d) != JDB_OK)
    return;
  const uint8_t *pg8 = d;
  uint32_t n = le16_get(pg8 + 8);
  if (pg8[6] != LAYOUT_PAGE_BRANCH || n > BTT_ITEMS_MAX) {
    pg_unpin(p, fr);
    return;
  }
  uint64_t ch[BTT_ITEMS_MAX];
  uint32_t body[BTT_ITEMS_MAX], cnt[BTT_ITEMS_MAX];
  for (uint32_t i = 0; i < n; i++)
    ch[i] = bt_br_child(pg8, i);
  pg_unpin(p, fr);
  if (n < 2)
    print_message("  branch %llu (depth %d): %u child\n", (unsigned long long)pgno, depth, n);
  for (uint32_t i = 0; i < n; i++) {
    body[i] = cnt[i] = 0;
    int rc = pg_pin(p, ch[i], 0, &fr, &d);
    if (rc) {
      print_message("  page %llu (child %u of %llu): %s\n", (unsigned long long)ch[i], i,
                    (unsigned long long)pgno, jdb_strerror(rc));
      continue;
    }
    body[i] = page_body(d);
    cnt[i] = le16_get((const uint8_t *)d + 8);
    pg_unpin(p, fr);
  }
  for (uint32_t i = 0; i < n; i++)
    if (body[i] < BT_FILL_MIN)
      print_message("  page %llu (child %u of %u of %llu, depth %d): %u entries, body %u bytes; "
                    "siblings' bodies %u, %u\n",
                    (unsigned long long)ch[i], i, n, (unsigned long long)pgno, depth + 1, cnt[i],
                    body[i], i ? body[i - 1] : 0, i + 1 < n ? body[i + 1] : 0);
  for (uint32_t i = 0; i < n; i++)
    dump_bad_pages(p, ch[i], depth + 1);
}

/* bt_check and its figures against the model. */
static struct bt_check_stats check_tree(struct pg *p, uint64_t root, const struct model *m)
{
  struct bt_check_stats st;
  memset(&st, 0xa5, sizeof st);
  int rc = bt_check(p, root, 1, &st);
  if (rc) {
    print_message("bt_check(root %llu): %s; pages under a quarter full or malformed:\n",
                  (unsigned long long)root, jdb_strerror(rc));
    dump_bad_pages(p, root, 0);
  }
  assert_int_equal(rc, JDB_OK);
  assert_int_equal(st.entries, m->n);
  assert_int_equal(st.key_bytes, m->key_bytes);
  if (m->n == 0) {
    assert_int_equal(root, 0);
    assert_int_equal(st.height, 0);
    assert_int_equal(st.leaves, 0);
    assert_int_equal(st.branches, 0);
    return st;
  }
  assert_int_not_equal(root, 0);
  assert_true(st.height >= 1 && st.height <= BT_HEIGHT_MAX);
  assert_true(st.leaves >= 1);
  if (st.height == 1) {
    assert_int_equal(st.leaves, 1);
    assert_int_equal(st.branches, 0);
  } else {
    assert_true(st.leaves >= 2);
    assert_true(st.branches >= st.height - 1);
    assert_true(st.branches < st.leaves);
    /* no leaf under a quarter full when the root is a branch */
    assert_true(st.leaf_bytes >= st.leaves * BT_FILL_MIN);
  }
  assert_true(st.leaf_bytes <= st.leaves * (uint64_t)PAGE);
  assert_true(st.prefix_saved <= st.key_bytes);
  return st;
}

static void cursor_expect(struct bt_cursor *c, int rc, const struct model *m, size_t idx,
                          int want_found, const char *what)
{
  if (want_found) {
    if (rc != JDB_OK)
      print_message("%s: want entry %zu of %zu, got %s\n", what, idx, m->n, jdb_strerror(rc));
    assert_int_equal(rc, JDB_OK);
    assert_true(ent_ok(bt_cursor_ent(c), &m->e[idx], what, idx));
    assert_true(c->depth >= 1);
  } else {
    if (rc != JDB_NOTFOUND)
      print_message("%s: want NOTFOUND, got %s\n", what, jdb_strerror(rc));
    assert_int_equal(rc, JDB_NOTFOUND);
    assert_null(bt_cursor_ent(c));
    assert_int_equal(c->depth, 0);
  }
}

/* From model index idx (cursor positioned there), up to steps random next/prev. Returns the
   new index, or SIZE_MAX when the cursor fell off an end. */
static size_t cursor_steps(struct bt_cursor *c, const struct model *m, size_t idx, int steps,
                           struct tutil_rng *r)
{
  for (int i = 0; i < steps; i++) {
    if (below(r, 2)) {
      int rc = bt_cursor_next(c);
      int found = idx + 1 < m->n;
      cursor_expect(c, rc, m, idx + 1, found, "next");
      if (!found)
        return SIZE_MAX;
      idx++;
    } else {
      int rc = bt_cursor_prev(c);
      int found = idx > 0;
      cursor_expect(c, rc, m, idx - 1, found, "prev");
      if (!found)
        return SIZE_MAX;
      idx--;
    }
  }
  return idx;
}

/* ---- key generators ---- */
enum { KG_ALPHA, KG_USER, KG_TS, KG_BIN, KG_LONG };
static uint8_t g_longpre[3][BT_KEY_MAX];
static const uint32_t g_longpre_len[3] = {300, 800, BT_KEY_MAX - 8};

static void ts_key(uint8_t *k, uint64_t table, uint32_t series, uint64_t ts)
{
  be64_put(k, table);
  k[8] = (uint8_t)(series >> 24);
  k[9] = (uint8_t)(series >> 16);
  k[10] = (uint8_t)(series >> 8);
  k[11] = (uint8_t)series;
  be64_put(k + 12, ts);
}

static uint32_t gen_key(struct tutil_rng *r, uint8_t *k, int g)
{
  switch (g) {
  case KG_ALPHA: {
    uint32_t n = 1 + (uint32_t)below(r, 10);
    for (uint32_t i = 0; i < n; i++)
      k[i] = (uint8_t)"abc"[below(r, 3)];
    return n;
  }
  case KG_USER:
    return (uint32_t)snprintf((char *)k, BT_KEY_MAX, "user:%09u", (unsigned)below(r, 30000));
  case KG_TS:
    ts_key(k, 1 + below(r, 3), (uint32_t)below(r, 64), below(r, 100000));
    return 20;
  case KG_BIN: {
    uint32_t n = 1 + (uint32_t)below(r, 24);
    for (uint32_t i = 0; i < n; i++) {
      uint64_t u = below(r, 4);
      k[i] = u == 0 ? 0x00 : u == 1 ? 0xff : (uint8_t)tutil_rng_next(r);
    }
    return n;
  }
  default: {
    unsigned pi = (unsigned)below(r, 3);
    uint32_t l = g_longpre_len[pi];
    memcpy(k, g_longpre[pi], l);
    uint32_t sl = 1 + (uint32_t)below(r, BT_KEY_MAX - l);
    for (uint32_t i = 0; i < sl; i++)
      k[l + i] = (uint8_t)"xyz"[below(r, 3)];
    return l + sl;
  }
  }
}

static int pick_gen(struct tutil_rng *r)
{
  uint64_t u = below(r, 100);
  return u < 30 ? KG_ALPHA : u < 55 ? KG_USER : u < 80 ? KG_TS : u < 96 ? KG_BIN : KG_LONG;
}

static uint64_t gen_seq(struct tutil_rng *r)
{
  uint64_t u = below(r, 40);
  if (u == 0)
    return 0;
  if (u == 1)
    return UINT64_MAX;
  if (u < 24)
    return 1 + below(r, 64);
  return tutil_rng_next(r);
}

static void gen_val(struct tutil_rng *r, struct gop *g, uint32_t imax)
{
  uint64_t u = below(r, 100);
  g->op = BT_OP_PUT;
  g->v = tutil_rng_next(r);
  if (u < 70) {
    uint64_t w = below(r, 10);
    g->kind = BT_INLINE;
    g->vlen = (uint32_t)(w < 6 ? below(r, 17) : w < 9 ? 17 + below(r, 48) : below(r, imax + 1));
  } else if (u < 85) {
    g->kind = BT_VREF;
    g->vlen = below(r, 50) ? 1 + (uint32_t)below(r, 1u << 20) : UINT32_MAX;
  } else {
    g->kind = BT_TOMB;
    g->vlen = 0;
    g->v = 0;
  }
}

/* A lookup key near the model's contents: present keys with nearby snapshots, mutated keys
   (extended, shortened, last byte changed), fresh keys, keys before the first and after the
   last. */
static uint32_t probe_key(struct tutil_rng *r, const struct model *m, uint8_t *k, uint64_t *seq)
{
  uint64_t c = below(r, 10);
  uint32_t kl;
  if (m->n && c < 5) {
    const struct ment *e = &m->e[below(r, m->n)];
    memcpy(k, e->key, e->klen);
    kl = e->klen;
    static const int64_t d[] = {0, 1, -1};
    uint64_t u = below(r, 6);
    *seq = u < 3 ? e->seq + (uint64_t)d[u] : u == 3 ? UINT64_MAX : u == 4 ? 0 : gen_seq(r);
    if (c == 4) {
      uint64_t how = below(r, 3);
      if (how == 0 && kl < BT_KEY_MAX)
        k[kl++] = below(r, 2) ? 0x00 : (uint8_t)tutil_rng_next(r);
      else if (how == 1 && kl > 1)
        kl--;
      else
        k[kl - 1]++;
    }
  } else if (c < 8) {
    kl = gen_key(r, k, pick_gen(r));
    *seq = gen_seq(r);
  } else if (c == 8) {
    kl = 1;
    k[0] = 0x00;
    *seq = below(r, 2) ? UINT64_MAX : 0;
  } else {
    kl = 1 + (uint32_t)below(r, BT_KEY_MAX);
    memset(k, 0xff, kl);
    *seq = below(r, 2) ? 0 : UINT64_MAX;
  }
  return kl;
}

static void get_check(struct pg *p, uint64_t root, const struct model *m, const uint8_t *k,
                      uint32_t kl, uint64_t snap)
{
  static uint8_t vbuf[BT_INLINE_MAX];
  struct bt_ent out;
  memset(&out, 0, sizeof out);
  int rc = bt_get(p, root, k, kl, snap, &out, vbuf);
  size_t i = model_lower(m, k, kl, snap);
  if (i < m->n && kcmp(m->e[i].key, m->e[i].klen, k, kl) == 0) {
    if (rc != JDB_OK) {
      char s[400];
      key_str(s, sizeof s, k, kl);
      print_message("get %s snap %llu: want entry %zu, got %s\n", s, (unsigned long long)snap, i,
                    jdb_strerror(rc));
    }
    assert_int_equal(rc, JDB_OK);
    assert_true(ent_ok(&out, &m->e[i], "get", i));
    assert_ptr_equal(out.key, k);
    if (out.kind == BT_INLINE && out.vlen)
      assert_ptr_equal(out.val, vbuf);
  } else {
    if (rc != JDB_NOTFOUND) {
      char s[400];
      key_str(s, sizeof s, k, kl);
      print_message("get %s snap %llu: want NOTFOUND, got %s\n", s, (unsigned long long)snap,
                    jdb_strerror(rc));
    }
    assert_int_equal(rc, JDB_NOTFOUND);
  }
}

/* bt_get_many on up to 40 probe keys (some of bad length) against bt_get's answers, which
   get_check holds to the model. */
#define MANY_MAX 40
static void probe_get_many(struct pg *p, uint64_t root, const struct model *m,
                           struct tutil_rng *r)
{
  static uint8_t keys[MANY_MAX][BT_KEY_MAX + 1], vb[MANY_MAX][BT_INLINE_MAX], v1[BT_INLINE_MAX];
  struct bt_get_req q[MANY_MAX];
  size_t n = 1 + below(r, MANY_MAX);
  for (size_t i = 0; i < n; i++) {
    uint64_t s;
    uint32_t kl = probe_key(r, m, keys[i], &s);
    if (below(r, 50) == 0)
      kl = below(r, 2) ? 0 : BT_KEY_MAX + 1;
    q[i] = (struct bt_get_req){.key = keys[i], .klen = kl, .snap = s, .vbuf = vb[i], .rc = 12345};
  }
  bt_get_many(p, root, q, n);
  for (size_t i = 0; i < n; i++) {
    if (q[i].klen == 0 || q[i].klen > BT_KEY_MAX) {
      assert_int_equal(q[i].rc, JDB_EINVAL);
      continue;
    }
    get_check(p, root, m, keys[i], q[i].klen, q[i].snap);
    struct bt_ent one;
    int rc = bt_get(p, root, keys[i], q[i].klen, q[i].snap, &one, v1);
    assert_int_equal(q[i].rc, rc);
    if (rc != JDB_OK)
      continue;
    const struct bt_ent *e = &q[i].out;
    assert_ptr_equal(e->key, keys[i]);
    assert_true(e->klen == one.klen && e->seq == one.seq && e->kind == one.kind &&
                e->vlen == one.vlen);
    if (e->kind == BT_INLINE) {
      assert_ptr_equal(e->val, vb[i]);
      assert_memory_equal(e->val, one.val, one.vlen);
    } else if (e->kind == BT_VREF) {
      assert_true(e->vpos == one.vpos);
    }
  }
}

static void probe_gets(struct pg *p, uint64_t root, const struct model *m, struct tutil_rng *r,
                       int n)
{
  static uint8_t k[BT_KEY_MAX];
  for (int i = 0; i < n; i++) {
    uint64_t s;
    uint32_t kl = probe_key(r, m, k, &s);
    get_check(p, root, m, k, kl, s);
  }
  for (int i = 0; i < n; i += MANY_MAX)
    probe_get_many(p, root, m, r);
}

/* seek / seek_prev at key, seq against the model; returns the index or SIZE_MAX. */
static size_t seek_check(struct bt_cursor *c, const struct model *m, const uint8_t *k,
                         uint32_t kl, uint64_t s, int backward)
{
  if (backward) {
    size_t up = model_upper(m, k, kl, s);
    int rc = bt_cursor_seek_prev(c, k, kl, s);
    cursor_expect(c, rc, m, up ? up - 1 : 0, up > 0, "seek_prev");
    return up ? up - 1 : SIZE_MAX;
  }
  size_t lo = model_lower(m, k, kl, s);
  int rc = bt_cursor_seek(c, k, kl, s);
  cursor_expect(c, rc, m, lo, lo < m->n, "seek");
  return lo < m->n ? lo : SIZE_MAX;
}

static void probe_seeks(struct pg *p, uint64_t root, const struct model *m, struct tutil_rng *r,
                        int n)
{
  static uint8_t k[BT_KEY_MAX];
  struct bt_cursor c;
  bt_cursor_init(&c, p, root);
  for (int i = 0; i < n; i++) {
    uint64_t s;
    uint32_t kl = probe_key(r, m, k, &s);
    size_t idx = seek_check(&c, m, k, kl, s, (int)below(r, 2));
    if (idx != SIZE_MAX)
      cursor_steps(&c, m, idx, 1 + (int)below(r, 12), r);
  }
  bt_cursor_close(&c);
  assert_int_equal(c.depth, 0);
}

/* bt_check, both walks, lookups and seeks. */
static struct bt_check_stats verify_full(struct pg *p, uint64_t root, const struct model *m,
                                         struct tutil_rng *r, int probes)
{
  struct bt_check_stats st = check_tree(p, root, m);
  uint64_t leaves = walk_fwd(p, root, m, st.height);
  assert_int_equal(leaves, st.leaves);
  walk_rev(p, root, m);
  probe_gets(p, root, m, r, probes);
  probe_seeks(p, root, m, r, probes);
  return st;
}

/* Every page of the file is a superblock, a page of the current tree, a free-list page, or free
   (reusable or pending): nothing leaks. */
static void check_accounting(struct pg *p, const struct bt_check_stats *st)
{
  struct pg_stats ps;
  pg_stats_get(p, &ps);
  uint64_t acc = 2 + st->leaves + st->branches + ps.free_pages + ps.pending_free_pages +
                 ps.freelist_pages;
  if (acc != ps.page_count)
    print_message("page accounting: 2 + %llu leaves + %llu branches + %llu free + %llu pending + "
                  "%u free-list pages != %llu pages\n",
                  (unsigned long long)st->leaves, (unsigned long long)st->branches,
                  (unsigned long long)ps.free_pages, (unsigned long long)ps.pending_free_pages,
                  ps.freelist_pages, (unsigned long long)ps.page_count);
  assert_int_equal(acc, ps.page_count);
  assert_int_equal(pg_check(p), JDB_OK);
}

/* ---- applying runs ---- */

static int apply_gops(struct env *e, const struct gop *g, size_t n, struct bt_apply_stats *st)
{
  struct run r;
  run_build(&r, g, n);
  memset(st, 0, sizeof *st);
  int rc = bt_apply(e->t, r.ops, n, st);
  run_free(&r);
  return rc;
}

static void counts_check(const struct bt_apply_stats *st, const struct counts *c)
{
  if (st->inserted != c->ins || st->replaced != c->rep || st->erased != c->era ||
      st->erase_missing != c->miss)
    print_message("apply stats: inserted %llu/%llu replaced %llu/%llu erased %llu/%llu missing "
                  "%llu/%llu (tree/model)\n",
                  (unsigned long long)st->inserted, (unsigned long long)c->ins,
                  (unsigned long long)st->replaced, (unsigned long long)c->rep,
                  (unsigned long long)st->erased, (unsigned long long)c->era,
                  (unsigned long long)st->erase_missing, (unsigned long long)c->miss);
  assert_int_equal(st->inserted, c->ins);
  assert_int_equal(st->replaced, c->rep);
  assert_int_equal(st->erased, c->era);
  assert_int_equal(st->erase_missing, c->miss);
}

static struct bt_apply_stats apply_ok(struct env *e, struct model *m, const struct gop *g,
                                      size_t n)
{
  struct bt_apply_stats st;
  int rc = apply_gops(e, g, n, &st);
  if (rc)
    print_message("bt_apply of %zu ops: %s\n", n, jdb_strerror(rc));
  assert_int_equal(rc, JDB_OK);
  struct counts c;
  model_apply(m, g, n, &c);
  counts_check(&st, &c);
  return st;
}

/* What a failed call must leave as it was. */
struct pgsnap {
  uint32_t dirty, pinned;
  uint64_t pending, free, page_count;
};

static void pg_snap(struct pg *p, struct pgsnap *s)
{
  struct pg_stats st;
  pg_stats_get(p, &st);
  *s = (struct pgsnap){.dirty = st.dirty, .pinned = st.pinned, .pending = st.pending_free_pages,
                       .free = st.free_pages, .page_count = st.page_count};
}

static void expect_unchanged(struct env *e, uint64_t root0, const struct pgsnap *s0)
{
  struct pgsnap s1;
  pg_snap(e->p, &s1);
  assert_int_equal(bt_root(e->t), root0);
  assert_int_equal(s1.dirty, s0->dirty);
  assert_int_equal(s1.pinned, s0->pinned);
  assert_int_equal(s1.pending, s0->pending);
  /* pages taken from the end of the file and handed back join the free list */
  assert_int_equal(s1.free - s0->free, s1.page_count - s0->page_count);
  assert_int_equal(pg_check(e->p), JDB_OK);
}

/* n random new entries (keys of generator g, or mixed when g < 0). */
static size_t gen_puts(struct tutil_rng *r, struct gop *g, size_t n, int kg, uint32_t imax)
{
  uint8_t k[BT_KEY_MAX];
  for (size_t i = 0; i < n; i++) {
    uint32_t kl = gen_key(r, k, kg < 0 ? pick_gen(r) : kg);
    g[i].key = key_keep(k, kl);
    g[i].klen = kl;
    g[i].seq = gen_seq(r);
    gen_val(r, &g[i], imax);
  }
  return gops_sort(g, n);
}

static struct gop *gops_new(size_t n)
{
  struct gop *g = calloc(n + 1, sizeof *g);
  assert_non_null(g);
  return g;
}

/* ------------------------------------------------------------------------------------------- */
/* The randomised model test */

#define HELD_MAX 3

struct held {
  int on;
  uint64_t root, gen;
  struct model m;
};

enum { RT_MIX, RT_HOT, RT_ERASE_RANGE, RT_APPEND, RT_REWRITE, RT_ERASE_ALL, RT_N };

struct world {
  struct env e;
  struct tutil_rng r;
  struct model m;           /* the state being built (bt_root) */
  struct model committed;   /* the last committed state */
  struct held h[HELD_MAX];  /* older committed roots a reader still uses */
  struct bt_cursor rd;      /* a reader positioned inside one of them */
  int rd_on, rd_h;
  size_t rd_idx;
  uint32_t imax, max_run;
  size_t target;            /* entry count the runs steer towards */
  const uint8_t *hot[4];
  uint32_t hot_len[4];
  uint64_t ts_next, seq_next;
  struct bt_check_stats last;   /* of last_root */
  uint64_t last_root;
  uint64_t n_apply, n_commit, n_reopen, n_enomem, n_split, n_ops, merges, max_height,
      max_entries, runs[RT_N];
};

static void world_frames(struct world *w)
{
  uint64_t u = below(&w->r, 10);
  w->e.frames = u == 0 ? 24 : u < 3 ? 48 : u < 5 ? 256 : 4096;
  w->e.buffered = w->e.frames < 4096 && below(&w->r, 4) != 0;   /* small budgets miss a lot */
  w->max_run = w->e.frames >= 4096 ? 5000 : w->e.frames >= 256 ? 1000 : w->e.frames * 2;
}

static void reader_stop(struct world *w)
{
  if (w->rd_on)
    bt_cursor_close(&w->rd);
  w->rd_on = 0;
}

static void reader_start(struct world *w)
{
  int cand[HELD_MAX], nc = 0;
  for (int i = 0; i < HELD_MAX; i++)
    if (w->h[i].on && w->h[i].m.n)
      cand[nc++] = i;
  if (w->rd_on || nc == 0)
    return;
  w->rd_h = cand[below(&w->r, (uint64_t)nc)];
  const struct model *m = &w->h[w->rd_h].m;
  bt_cursor_init(&w->rd, w->e.p, w->h[w->rd_h].root);
  w->rd_idx = below(&w->r, m->n);
  const struct ment *x = &m->e[w->rd_idx];
  int rc = bt_cursor_seek(&w->rd, x->key, x->klen, x->seq);
  cursor_expect(&w->rd, rc, m, w->rd_idx, 1, "reader seek");
  w->rd_on = 1;
}

static void reader_step(struct world *w)
{
  if (!w->rd_on)
    return;
  size_t idx = cursor_steps(&w->rd, &w->h[w->rd_h].m, w->rd_idx, 1 + (int)below(&w->r, 8),
                            &w->r);
  if (idx == SIZE_MAX)
    reader_stop(w);
  else
    w->rd_idx = idx;
}

static void world_reclaim(struct world *w)
{
  uint64_t g = pg_super(w->e.p)->generation;
  for (int i = 0; i < HELD_MAX; i++)
    if (w->h[i].on && w->h[i].gen < g)
      g = w->h[i].gen;
  pg_reclaim(w->e.p, g);
}

static void held_drop(struct world *w, int i)
{
  if (w->rd_on && w->rd_h == i)
    reader_stop(w);
  w->h[i].on = 0;
}

static void world_commit(struct world *w)
{
  env_commit_ok(&w->e);
  model_copy(&w->committed, &w->m);
  w->n_commit++;
  if (below(&w->r, 2)) {
    int slot = -1;
    for (int i = 0; i < HELD_MAX; i++)
      if (!w->h[i].on)
        slot = i;
    if (slot < 0) {
      slot = (int)below(&w->r, HELD_MAX);
      held_drop(w, slot);
    }
    w->h[slot].on = 1;
    w->h[slot].root = bt_root(w->e.t);
    w->h[slot].gen = pg_super(w->e.p)->generation;
    model_copy(&w->h[slot].m, &w->m);
  }
  world_reclaim(w);
  if (w->last_root == bt_root(w->e.t))
    check_accounting(w->e.p, &w->last);
}

/* Re-read one held root whole (it must not have changed). */
static void world_check_held(struct world *w)
{
  int cand[HELD_MAX], nc = 0;
  for (int i = 0; i < HELD_MAX; i++)
    if (w->h[i].on)
      cand[nc++] = i;
  if (!nc)
    return;
  struct held *h = &w->h[cand[below(&w->r, (uint64_t)nc)]];
  if (below(&w->r, 2))
    walk_fwd(w->e.p, h->root, &h->m, 0);
  else
    walk_rev(w->e.p, h->root, &h->m);
}

static void world_verify(struct world *w)
{
  w->last = verify_full(w->e.p, bt_root(w->e.t), &w->m, &w->r, 24);
  w->last_root = bt_root(w->e.t);
  if (w->last.height > w->max_height)
    w->max_height = w->last.height;
  if (w->m.n > w->max_entries)
    w->max_entries = w->m.n;
  check_accounting(w->e.p, &w->last);
}

static void world_reopen(struct world *w, int commit)
{
  if (commit)
    world_commit(w);
  else
    model_copy(&w->m, &w->committed);   /* what was not committed is gone */
  reader_stop(w);
  env_close(&w->e);
  world_frames(w);
  env_open(&w->e);
  /* The held roots read back from disk; after an open nothing protects their pages any more. */
  for (int i = 0; i < HELD_MAX; i++) {
    if (!w->h[i].on)
      continue;
    check_tree(w->e.p, w->h[i].root, &w->h[i].m);
    walk_fwd(w->e.p, w->h[i].root, &w->h[i].m, 0);
    held_drop(w, i);
  }
  world_verify(w);
  w->n_reopen++;
}

static void world_apply(struct world *w, const struct gop *g, size_t n)
{
  struct pgsnap s0;
  pg_snap(w->e.p, &s0);
  uint64_t root0 = bt_root(w->e.t);
  struct bt_apply_stats st;
  int rc = apply_gops(&w->e, g, n, &st);
  if (rc == JDB_ENOMEM) {
    /* The budget cannot hold what the run dirties: nothing changed; commit, or split. */
    w->n_enomem++;
    expect_unchanged(&w->e, root0, &s0);
    if (w->n_enomem % 8 == 1)
      walk_fwd(w->e.p, root0, &w->m, 0);
    if (s0.dirty > 0) {
      world_commit(w);
      world_apply(w, g, n);
    } else if (n > 1) {
      w->n_split++;
      world_apply(w, g, n / 2);
      world_apply(w, g + n / 2, n - n / 2);
    } else {
      /* one op fits any budget here, unless a reader pins a path */
      if (!w->rd_on)
        print_message("ENOMEM for one op, nothing dirty, %u frames, height %llu: %llu pages "
                      "written, %llu merges\n",
                      w->e.frames, (unsigned long long)w->last.height,
                      (unsigned long long)st.pages_written, (unsigned long long)st.merges);
      assert_true(w->rd_on);
      reader_stop(w);
      world_apply(w, g, n);
    }
    return;
  }
  if (rc)
    print_message("bt_apply of %zu ops: %s\n", n, jdb_strerror(rc));
  assert_int_equal(rc, JDB_OK);
  struct counts c;
  model_apply(&w->m, g, n, &c);
  counts_check(&st, &c);
  /* each page of the old state decoded at most once */
  assert_true(st.pages_read <= w->last.leaves + w->last.branches);
  w->n_apply++;
  w->n_ops += n;
  w->merges += st.merges;
  /* leave room in the budget for the checks' pins */
  struct pg_stats ps;
  pg_stats_get(w->e.p, &ps);
  uint32_t margin = 2u * (uint32_t)(w->max_height + 2) + 6u;
  if (ps.dirty + margin > w->e.frames)
    world_commit(w);
  world_verify(w);
  world_check_held(w);
  reader_step(w);
}

static size_t run_size(struct tutil_rng *r, size_t max)
{
  uint64_t u = below(r, 10);
  size_t cap = u < 4 ? 10 : u < 7 ? 200 : max;
  if (cap > max)
    cap = max;
  return 1 + (size_t)below(r, cap);
}

static int world_run_type(struct world *w)
{
  static const unsigned grow[RT_N] = {40, 10, 12, 20, 15, 3};
  static const unsigned shrink[RT_N] = {30, 5, 40, 5, 10, 10};
  const unsigned *wt = w->m.n > w->target ? shrink : grow;
  uint64_t u = below(&w->r, 100);
  for (int t = 0; t < RT_N; t++) {
    if (u < wt[t])
      return t;
    u -= wt[t];
  }
  return RT_MIX;
}

/* One sorted run of the chosen type; *n_out ops. */
static struct gop *world_gen_run(struct world *w, size_t *n_out, int *type_out)
{
  struct tutil_rng *r = &w->r;
  const struct model *m = &w->m;
  int type = world_run_type(w);
  if (m->n == 0 && (type == RT_ERASE_RANGE || type == RT_REWRITE || type == RT_ERASE_ALL))
    type = RT_MIX;
  if (type == RT_ERASE_ALL && m->n > w->max_run)
    type = RT_ERASE_RANGE;
  size_t n = run_size(r, w->max_run);
  struct gop *g = gops_new(m->n + 2 * (size_t)w->max_run + 3100);
  uint8_t k[BT_KEY_MAX];
  switch (type) {
  case RT_HOT: {
    /* many versions of one key: they span several leaves */
    unsigned hk = (unsigned)below(r, 4);
    size_t cnt = 50 + below(r, w->max_run < 3000 ? w->max_run : 3000);
    n = cnt;
    uint64_t s = 1 + below(r, 1u << 20), step = 1 + below(r, 3);
    for (size_t i = 0; i < n; i++) {
      g[i] = (struct gop){.key = w->hot[hk], .klen = w->hot_len[hk], .seq = s + i * step};
      if (below(r, 5)) {
        g[i].op = BT_OP_PUT;
        g[i].kind = BT_INLINE;
        g[i].vlen = (uint32_t)below(r, 40);
        g[i].v = tutil_rng_next(r);
      } else if (below(r, 2)) {
        g[i].op = BT_OP_PUT;
        g[i].kind = BT_TOMB;
      } else {
        g[i].op = BT_OP_ERASE;
      }
    }
    break;
  }
  case RT_ERASE_RANGE:
  case RT_ERASE_ALL:
  case RT_REWRITE: {
    size_t start = type == RT_ERASE_ALL ? 0 : below(r, m->n);
    size_t len = type == RT_ERASE_ALL ? m->n : 1 + below(r, m->n - start < w->max_run
                                                                ? m->n - start
                                                                : w->max_run);
    n = 0;
    for (size_t i = start; i < start + len; i++) {
      const struct ment *x = &m->e[i];
      g[n] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_ERASE};
      if (type == RT_REWRITE)
        gen_val(r, &g[n], w->imax);
      n++;
      if (type == RT_ERASE_RANGE && below(r, 10) == 0) {   /* a new version in the range */
        g[n] = (struct gop){.key = x->key, .klen = x->klen, .seq = gen_seq(r)};
        gen_val(r, &g[n], w->imax);
        n++;
      }
    }
    break;
  }
  case RT_APPEND: {
    /* time-series ingestion: increasing timestamps of a few series of one table */
    uint32_t series = (uint32_t)below(r, 4);
    for (size_t i = 0; i < n; i++) {
      if (below(r, 8) == 0)
        series = (uint32_t)below(r, 4);
      ts_key(k, 7, series, w->ts_next++);
      g[i] = (struct gop){.key = key_keep(k, 20), .klen = 20, .seq = w->seq_next++,
                          .op = BT_OP_PUT, .kind = BT_INLINE,
                          .vlen = 8 + (uint32_t)below(r, 9), .v = tutil_rng_next(r)};
    }
    break;
  }
  default: {
    for (size_t i = 0; i < n; i++) {
      struct gop *o = &g[i];
      uint64_t u = below(r, 100);
      const struct ment *x = m->n ? &m->e[below(r, m->n)] : NULL;
      if (x && u < 15) {   /* overwrite: same key and seq */
        *o = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq};
        gen_val(r, o, w->imax);
      } else if (x && u < 40) {
        *o = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_ERASE};
      } else if (u < 45) {   /* erase of something absent (mostly) */
        uint32_t kl = gen_key(r, k, pick_gen(r));
        *o = (struct gop){.key = key_keep(k, kl), .klen = kl, .seq = gen_seq(r),
                          .op = BT_OP_ERASE};
      } else if (x && u < 55) {   /* another version of a present key */
        *o = (struct gop){.key = x->key, .klen = x->klen, .seq = gen_seq(r)};
        gen_val(r, o, w->imax);
      } else {
        uint32_t kl = gen_key(r, k, pick_gen(r));
        *o = (struct gop){.key = key_keep(k, kl), .klen = kl, .seq = gen_seq(r)};
        gen_val(r, o, w->imax);
      }
    }
    type = RT_MIX;
    break;
  }
  }
  *n_out = gops_sort(g, n);
  *type_out = type;
  return g;
}

static void test_model_random(void **state)
{
  (void)state;
  struct world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  tutil_rng_init(&w->r, tutil_seed() ^ 0xb7ee0001ull);
  uint64_t im = below(&w->r, 3);
  w->imax = im == 0 ? BT_INLINE_MAX : im == 1 ? BT_INLINE_DEF : 100;
  w->target = (size_t)scaled(30000);
  w->seq_next = 1;
  world_frames(w);
  env_init(&w->e, ctx_new(), "bt_model", w->e.frames, w->imax);
  /* hot keys: short, user-like, time-series, long */
  uint8_t k[BT_KEY_MAX];
  w->hot[0] = key_keep("abca", 4);
  w->hot_len[0] = 4;
  w->hot[1] = key_keep("user:000000123", 14);
  w->hot_len[1] = 14;
  ts_key(k, 2, 5, 777);
  w->hot[2] = key_keep(k, 20);
  w->hot_len[2] = 20;
  memcpy(k, g_longpre[1], g_longpre_len[1]);
  memcpy(k + g_longpre_len[1], "hot", 3);
  w->hot[3] = key_keep(k, g_longpre_len[1] + 3);
  w->hot_len[3] = g_longpre_len[1] + 3;
  world_verify(w);

  int iters = scaled(2500);   /* ~1 M ops at scale 1 */
  for (int it = 0; it < iters; it++) {
    uint64_t u = below(&w->r, 100);
    if (u < 80) {
      size_t n;
      int type;
      struct gop *g = world_gen_run(w, &n, &type);
      w->runs[type]++;
      if (!w->rd_on && below(&w->r, 2))
        reader_start(w);
      world_apply(w, g, n);
      free(g);
    } else if (u < 91) {
      world_commit(w);
    } else if (u < 95) {
      int i = (int)below(&w->r, HELD_MAX);
      if (w->h[i].on) {
        held_drop(w, i);
        world_reclaim(w);
      }
    } else if (u < 98) {
      world_reopen(w, 1);
    } else {
      world_reopen(w, 0);
    }
  }
  world_reopen(w, 1);
  print_message("  %llu applies (%llu ops; runs mix %llu hot %llu erase-range %llu append %llu "
                "rewrite %llu erase-all %llu), %llu commits, %llu reopens, %llu ENOMEM (%llu "
                "splits), %llu merges; up to %llu entries, height %llu\n",
                (unsigned long long)w->n_apply, (unsigned long long)w->n_ops,
                (unsigned long long)w->runs[RT_MIX], (unsigned long long)w->runs[RT_HOT],
                (unsigned long long)w->runs[RT_ERASE_RANGE],
                (unsigned long long)w->runs[RT_APPEND], (unsigned long long)w->runs[RT_REWRITE],
                (unsigned long long)w->runs[RT_ERASE_ALL], (unsigned long long)w->n_commit,
                (unsigned long long)w->n_reopen, (unsigned long long)w->n_enomem,
                (unsigned long long)w->n_split, (unsigned long long)w->merges,
                (unsigned long long)w->max_entries, (unsigned long long)w->max_height);
  assert_true(w->max_height >= 2);
  reader_stop(w);
  env_done(&w->e);
  model_free(&w->m);
  model_free(&w->committed);
  for (int i = 0; i < HELD_MAX; i++)
    model_free(&w->h[i].m);
  free(w);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Empty trees, growth and shrink */

static void expect_empty_reads(struct pg *p, uint64_t root)
{
  static uint8_t vbuf[BT_INLINE_MAX];
  struct bt_ent out;
  assert_int_equal(bt_get(p, root, "a", 1, UINT64_MAX, &out, vbuf), JDB_NOTFOUND);
  struct bt_cursor c;
  bt_cursor_init(&c, p, root);
  assert_null(bt_cursor_ent(&c));
  assert_int_equal(bt_cursor_first(&c), JDB_NOTFOUND);
  assert_int_equal(bt_cursor_last(&c), JDB_NOTFOUND);
  assert_int_equal(bt_cursor_seek(&c, "a", 1, UINT64_MAX), JDB_NOTFOUND);
  assert_int_equal(bt_cursor_seek_prev(&c, "\xff", 1, 0), JDB_NOTFOUND);
  assert_null(bt_cursor_ent(&c));
  assert_int_equal(c.depth, 0);
  bt_cursor_close(&c);
  assert_int_equal(pinned(p), 0);
}

static void test_empty_tree(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xe0);
  struct env e;
  env_init(&e, ctx_new(), "bt_empty", 64, 0);
  struct model m = {0};
  assert_int_equal(bt_root(e.t), 0);
  check_tree(e.p, 0, &m);
  expect_empty_reads(e.p, 0);
  walk_fwd(e.p, 0, &m, 0);
  walk_rev(e.p, 0, &m);

  /* an empty run, and erases on an empty tree: counted as missing, still empty */
  struct bt_apply_stats st;
  memset(&st, 0xa5, sizeof st);
  assert_int_equal(bt_apply(e.t, NULL, 0, &st), JDB_OK);
  assert_int_equal(st.inserted + st.replaced + st.erased + st.erase_missing, 0);
  assert_int_equal(bt_root(e.t), 0);
  assert_int_equal(bt_apply(e.t, NULL, 0, NULL), JDB_OK);
  struct gop g[600];
  for (int i = 0; i < 5; i++)
    g[i] = (struct gop){.key = key_keep("abcde", 1 + (uint32_t)i), .klen = 1 + (uint32_t)i,
                        .seq = 9, .op = BT_OP_ERASE};
  st = apply_ok(&e, &m, g, 5);
  assert_int_equal(st.erase_missing, 5);
  assert_int_equal(bt_root(e.t), 0);

  /* one entry: a single leaf; erased again: the root goes back to 0 */
  g[0] = (struct gop){.key = key_keep("k", 1), .klen = 1, .seq = 1, .op = BT_OP_PUT,
                      .kind = BT_INLINE, .vlen = 3, .v = 42};
  st = apply_ok(&e, &m, g, 1);
  assert_int_not_equal(bt_root(e.t), 0);
  assert_int_equal(st.pages_written, 1);
  struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &m, &r, 10);
  assert_int_equal(cs.height, 1);
  g[0].op = BT_OP_ERASE;
  st = apply_ok(&e, &m, g, 1);
  assert_int_equal(st.erased, 1);
  assert_int_equal(bt_root(e.t), 0);
  assert_int_equal(st.pages_written, 0);
  assert_true(st.pages_freed >= 1);
  check_accounting(e.p, &(struct bt_check_stats){0});
  env_commit_ok(&e);
  assert_int_equal(pg_super(e.p)->tree_root, 0);

  /* a tree of several levels, committed, then erased whole in one run */
  size_t n = gen_puts(&r, g, 600, KG_USER, BT_INLINE_DEF);
  for (size_t i = 0; i < n; i++)
    if (g[i].kind == BT_INLINE)
      g[i].vlen = 100 + (uint32_t)(i % 50);
  apply_ok(&e, &m, g, n);
  cs = verify_full(e.p, bt_root(e.t), &m, &r, 20);
  assert_true(cs.height >= 2);
  env_commit_ok(&e);
  check_accounting(e.p, &cs);
  for (size_t i = 0; i < n; i++)
    g[i].op = BT_OP_ERASE;
  st = apply_ok(&e, &m, g, n);
  assert_int_equal(st.erased, n);
  assert_int_equal(m.n, 0);
  assert_int_equal(bt_root(e.t), 0);
  check_tree(e.p, 0, &m);
  expect_empty_reads(e.p, 0);
  env_commit_ok(&e);
  pg_reclaim(e.p, pg_super(e.p)->generation);
  check_accounting(e.p, &(struct bt_check_stats){0});
  env_reopen(&e, 16);
  assert_int_equal(bt_root(e.t), 0);
  expect_empty_reads(e.p, 0);
  check_accounting(e.p, &(struct bt_check_stats){0});

  /* and it fills again, reusing the freed pages before the file grows */
  struct pg_stats ps0, ps1;
  pg_stats_get(e.p, &ps0);
  n = gen_puts(&r, g, 40, KG_ALPHA, BT_INLINE_DEF);
  apply_ok(&e, &m, g, n);
  pg_stats_get(e.p, &ps1);
  assert_int_equal(ps1.page_count, ps0.page_count);
  env_commit_ok(&e);
  env_reopen(&e, 64);
  verify_full(e.p, bt_root(e.t), &m, &r, 20);
  env_done(&e);
  model_free(&m);
  keys_free();
}

/* Keys sharing a long prefix (so separators are long and branches hold few) and large values
   (so leaves hold few): a deep tree from a few thousand entries. */
static uint32_t deep_key(uint8_t *k, uint64_t id)
{
  memset(k, 'p', 400);
  be64_put(k + 400, id);
  return 408;
}

static void test_grow_shrink(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x96);
  struct env e;
  env_init(&e, ctx_new(), "bt_height", 2048, BT_INLINE_MAX);
  struct model m = {0};
  enum { N = 9000 };
  uint64_t *ids = malloc(N * sizeof *ids);
  assert_non_null(ids);
  for (uint64_t i = 0; i < N; i++)
    ids[i] = i * 7919u % 100003u;   /* distinct, shuffled */
  struct gop *g = gops_new(N);
  uint8_t k[BT_KEY_MAX];
  uint64_t h_prev = 0, h_max = 0, grew = 0;
  size_t done = 0;
  int round = 0;
  /* grow: sorted appends first, then random order */
  while (done < N) {
    size_t cnt = round < 2 ? 700 : 200 + below(&r, 1500);
    if (cnt > N - done)
      cnt = N - done;
    for (size_t i = 0; i < cnt; i++) {
      uint64_t id = round < 2 ? 200000u + done + i : ids[done + i];
      uint32_t kl = deep_key(k, id);
      g[i] = (struct gop){.key = key_keep(k, kl), .klen = kl, .seq = 1 + below(&r, 3),
                          .op = BT_OP_PUT, .kind = BT_INLINE, .vlen = 150 + (uint32_t)below(&r, 200),
                          .v = tutil_rng_next(&r)};
    }
    size_t n = gops_sort(g, cnt);
    apply_ok(&e, &m, g, n);
    done += cnt;
    struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &m, &r, 10);
    assert_true(cs.height >= h_prev);   /* inserts never shrink the tree */
    grew += cs.height > h_prev;
    h_prev = cs.height;
    if (cs.height > h_max)
      h_max = cs.height;
    if (round++ % 3 == 2) {
      env_commit_ok(&e);
      pg_reclaim(e.p, pg_super(e.p)->generation);
      check_accounting(e.p, &cs);
    }
  }
  print_message("  grown to %zu entries, height %llu (%llu increases)\n", m.n,
                (unsigned long long)h_max, (unsigned long long)grew);
  assert_true(h_max >= 4);
  assert_true(grew >= 3);
  env_commit_ok(&e);
  env_reopen(&e, 2048);

  /* one run erasing all but three entries: the root collapses to a single leaf */
  struct model full = {0};
  model_copy(&full, &m);
  size_t n = 0;
  for (size_t i = 0; i < m.n; i++)
    if (i != 0 && i != m.n / 2 && i != m.n - 1)
      g[n++] = (struct gop){.key = m.e[i].key, .klen = m.e[i].klen, .seq = m.e[i].seq,
                            .op = BT_OP_ERASE};
  struct bt_apply_stats st = apply_ok(&e, &m, g, n);
  struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &m, &r, 10);
  assert_int_equal(m.n, 3);
  assert_int_equal(cs.height, 1);
  assert_true(st.pages_freed >= cs.leaves + cs.branches);
  env_reopen(&e, 2048);   /* not committed: the full tree again */
  model_copy(&m, &full);
  model_free(&full);
  cs = verify_full(e.p, bt_root(e.t), &m, &r, 10);
  assert_int_equal(cs.height, h_max);

  /* shrink: random erases of up to a third of what is left, until empty */
  uint64_t merges = 0, seen = 0;
  while (m.n) {
    size_t cnt = m.n < 8 ? m.n : 1 + below(&r, m.n / 3);
    for (size_t i = 0; i < cnt; i++) {
      const struct ment *x = m.n < 8 ? &m.e[i] : &m.e[below(&r, m.n)];
      g[i] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_ERASE};
    }
    n = gops_sort(g, cnt);
    st = apply_ok(&e, &m, g, n);
    merges += st.merges;
    cs = verify_full(e.p, bt_root(e.t), &m, &r, 10);
    seen |= 1ull << cs.height;
    env_commit_ok(&e);
    pg_reclaim(e.p, pg_super(e.p)->generation);
    check_accounting(e.p, &cs);
  }
  /* it passed through intermediate heights on the way down */
  uint64_t mid = 0;
  for (uint64_t h = 1; h < h_max; h++)
    mid += (seen >> h) & 1u;
  assert_true(mid >= 2);
  print_message("  shrunk to empty: %llu merges\n", (unsigned long long)merges);
  assert_int_equal(bt_root(e.t), 0);
  assert_true(merges > 0);
  env_reopen(&e, 32);
  assert_int_equal(bt_root(e.t), 0);
  check_accounting(e.p, &(struct bt_check_stats){0});
  free(g);
  free(ids);
  env_done(&e);
  model_free(&m);
  keys_free();
}

/* Erase patterns on one committed tree of height 3, each a single run from the same state (the
   uncommitted result is dropped by a reopen): prefixes, all but a few entries far apart, every
   other entry, a middle range. The tree must stay a valid B+ tree: no branch with one child, no
   page under a quarter full that a sibling could take in. */
static void test_erase_patterns(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xe7a5e);
  struct env e;
  env_init(&e, ctx_new(), "bt_erase", 1024, BT_INLINE_MAX);
  struct model base = {0}, m = {0};
  enum { N = 800 };
  struct gop *g = gops_new(N);
  uint8_t k[BT_KEY_MAX];
  for (uint64_t i = 0; i < N; i++) {
    uint32_t kl = deep_key(k, i);
    g[i] = (struct gop){.key = key_keep(k, kl), .klen = kl, .seq = 1, .op = BT_OP_PUT,
                        .kind = BT_INLINE, .vlen = 250, .v = i};
  }
  apply_ok(&e, &base, g, N);
  env_commit_ok(&e);
  struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &base, &r, 10);
  assert_int_equal(cs.height, 3);
  enum { P_PREFIX, P_KEEP_FEW, P_EVERY_OTHER, P_MIDDLE, P_N };
  for (int pat = 0; pat < P_N; pat++) {
    for (size_t v = 0; v < 6; v++) {
      size_t n = 0;
      for (size_t i = 0; i < N; i++) {
        int erase;
        switch (pat) {
        case P_PREFIX: erase = i >= 1 && i < 20 + 40 * v; break;          /* [1, k) */
        case P_KEEP_FEW: erase = i % (N / (v + 2)) != 0; break;         /* keep v + 2 */
        case P_EVERY_OTHER: erase = (i + v) % (v + 2) != 0; break;
        default: erase = i >= N / 3 - 30 * v && i < N / 2 + 30 * v; break;
        }
        if (erase)
          g[n++] = (struct gop){.key = base.e[i].key, .klen = base.e[i].klen, .seq = 1,
                                .op = BT_OP_ERASE};
      }
      model_copy(&m, &base);
      apply_ok(&e, &m, g, n);
      struct bt_check_stats st;
      if (bt_check(e.p, bt_root(e.t), 1, &st) != JDB_OK)
        print_message("erase pattern %d.%zu (%zu of %d entries)\n", pat, v, n, N);
      verify_full(e.p, bt_root(e.t), &m, &r, 10);
      env_reopen(&e, 1024);
    }
  }
  free(g);
  env_done(&e);
  model_free(&base);
  model_free(&m);
  keys_free();
}

/* A few tiny entries and versions of one long key: one page cannot hold them and no split leaves
   both halves a quarter full (each half stores the long key's bytes once as its prefix). The run
   must still succeed and the tree read back whole. */
static void test_unsplittable(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x5b1);
  struct env e;
  env_init(&e, ctx_new(), "bt_unsplit", 1024, 0);
  struct model m = {0};
  uint8_t lk[800];
  memset(lk, 'x', sizeof lk);
  lk[0] = 'b';
  const uint8_t *key = key_keep(lk, sizeof lk);
  struct gop g[9];
  static const char *small[4] = {"a1", "a2", "a3", "a4"};
  for (int i = 0; i < 4; i++)
    g[i] = (struct gop){.key = key_keep(small[i], 2), .klen = 2, .seq = 1, .op = BT_OP_PUT,
                        .kind = BT_TOMB};
  for (int v = 0; v < 5; v++)
    g[4 + v] = (struct gop){.key = key, .klen = sizeof lk, .seq = 50 - (uint64_t)v,
                            .op = BT_OP_PUT, .kind = BT_INLINE, .vlen = 10, .v = (uint64_t)v};
  struct bt_apply_stats st;
  int rc = apply_gops(&e, g, 9, &st);
  if (rc)
    print_message("apply: %s after %llu merges\n", jdb_strerror(rc),
                  (unsigned long long)st.merges);
  assert_int_equal(rc, JDB_OK);
  struct counts c;
  model_apply(&m, g, 9, &c);
  counts_check(&st, &c);
  struct bt_check_stats cs;
  assert_int_equal(bt_check(e.p, bt_root(e.t), 0, &cs), JDB_OK);
  assert_int_equal(cs.entries, 9);
  walk_fwd(e.p, bt_root(e.t), &m, cs.height);
  walk_rev(e.p, bt_root(e.t), &m);
  probe_gets(e.p, bt_root(e.t), &m, &r, 20);
  env_commit_ok(&e);
  env_reopen(&e, 16);
  walk_fwd(e.p, bt_root(e.t), &m, cs.height);
  env_done(&e);
  model_free(&m);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Cursors and lookups */

/* Keys "k%05u" for even u (odd ones absent), each with versions 30, 20, 10 or fewer, some
   tombstones and references; values sized so that leaves hold a few dozen entries. */
static size_t versions_run(struct tutil_rng *r, struct gop *g, unsigned nkeys)
{
  size_t n = 0;
  char k[16];
  for (unsigned u = 0; u < nkeys; u++) {
    int len = snprintf(k, sizeof k, "k%05u", 2 * u);
    const uint8_t *key = key_keep(k, (uint32_t)len);
    unsigned nv = 1 + (unsigned)below(r, 3);
    for (unsigned v = 0; v < nv; v++) {
      struct gop *o = &g[n++];
      *o = (struct gop){.key = key, .klen = (uint32_t)len, .seq = 30 - 10 * v};
      gen_val(r, o, BT_INLINE_DEF);
      if (o->kind == BT_INLINE)
        o->vlen = 20 + (uint32_t)below(r, 60);
    }
  }
  return gops_sort(g, n);
}

static void test_cursor(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xc0);
  struct env e;
  env_init(&e, ctx_new(), "bt_cursor", 256, 0);
  struct model m1 = {0}, m2 = {0};
  struct gop *g = gops_new(20000);
  size_t n = versions_run(&r, g, 3000);
  apply_ok(&e, &m1, g, n);
  env_commit_ok(&e);
  uint64_t root1 = bt_root(e.t), gen1 = pg_super(e.p)->generation;
  struct bt_check_stats cs1 = verify_full(e.p, root1, &m1, &r, 50);
  assert_true(cs1.height >= 2);

  /* A reader on root 1, positioned, while the tree moves on: odd keys arrive, a range goes,
     versions change. */
  struct bt_cursor c1, c2;
  bt_cursor_init(&c1, e.p, root1);
  size_t i1 = seek_check(&c1, &m1, m1.e[m1.n / 3].key, m1.e[m1.n / 3].klen, UINT64_MAX, 0);
  assert_int_not_equal(i1, SIZE_MAX);
  assert_int_equal(pinned(e.p), 1);   /* the leaf only */
  assert_int_equal(c1.depth, cs1.height);
  model_copy(&m2, &m1);
  char k[16];
  n = 0;
  for (unsigned u = 0; u < 3000; u += 1 + (unsigned)below(&r, 4)) {
    int len = snprintf(k, sizeof k, "k%05u", 2 * u + 1);
    g[n] = (struct gop){.key = key_keep(k, (uint32_t)len), .klen = (uint32_t)len, .seq = 25};
    gen_val(&r, &g[n++], BT_INLINE_DEF);
  }
  for (size_t i = m1.n / 2; i < m1.n / 2 + 500; i++)
    g[n++] = (struct gop){.key = m1.e[i].key, .klen = m1.e[i].klen, .seq = m1.e[i].seq,
                          .op = BT_OP_ERASE};
  n = gops_sort(g, n);
  apply_ok(&e, &m2, g, n);
  i1 = cursor_steps(&c1, &m1, i1, 200, &r);   /* the old reader did not notice */
  env_commit_ok(&e);
  pg_reclaim(e.p, gen1);
  uint64_t root2 = bt_root(e.t);
  struct bt_check_stats cs2 = verify_full(e.p, root2, &m2, &r, 50);
  if (i1 != SIZE_MAX)
    i1 = cursor_steps(&c1, &m1, i1, 200, &r);
  bt_cursor_close(&c1);
  verify_full(e.p, root1, &m1, &r, 50);   /* root 1 unchanged */

  /* first / last; after NOTFOUND a cursor is unpositioned and can be positioned again */
  const struct model *ms[2] = {&m1, &m2};
  const uint64_t roots[2] = {root1, root2}, heights[2] = {cs1.height, cs2.height};
  for (int t = 0; t < 2; t++) {
    const struct model *m = ms[t];
    bt_cursor_init(&c1, e.p, roots[t]);
    cursor_expect(&c1, bt_cursor_first(&c1), m, 0, 1, "first");
    assert_int_equal(c1.depth, heights[t]);
    cursor_expect(&c1, bt_cursor_prev(&c1), m, 0, 0, "prev before first");
    assert_int_equal(pinned(e.p), 0);
    cursor_expect(&c1, bt_cursor_last(&c1), m, m->n - 1, 1, "last");
    cursor_expect(&c1, bt_cursor_next(&c1), m, 0, 0, "next after last");
    cursor_expect(&c1, bt_cursor_last(&c1), m, m->n - 1, 1, "last again");
    bt_cursor_close(&c1);
    assert_int_equal(pinned(e.p), 0);
    bt_cursor_close(&c1);   /* closing twice is harmless */
    cursor_expect(&c1, bt_cursor_first(&c1), m, 0, 1, "first after close");
    bt_cursor_close(&c1);
  }

  /* seek / seek_prev: present keys, absent keys between, before the first, after the last,
     with seqs above, at, between and below the versions */
  static const uint64_t seqs[] = {UINT64_MAX, 31, 30, 29, 25, 20, 15, 10, 9, 1, 0};
  bt_cursor_init(&c1, e.p, root1);
  bt_cursor_init(&c2, e.p, root2);
  for (int i = 0; i < scaled(400); i++) {
    uint32_t kl;
    uint8_t key[32];
    uint64_t u = below(&r, 6);
    if (u == 0) {
      kl = 1;
      key[0] = 'a';           /* before every key */
    } else if (u == 1) {
      kl = 1;
      key[0] = 'k';           /* a prefix of every key: still before them */
    } else if (u == 2) {
      kl = 2;
      memcpy(key, "l0", 2);   /* after every key */
    } else if (u == 3) {
      kl = (uint32_t)snprintf((char *)key, sizeof key, "k%05u", (unsigned)below(&r, 6000));
      if (below(&r, 2))
        key[kl++] = 0x00;     /* an extension: between a key and the next */
    } else {
      kl = (uint32_t)snprintf((char *)key, sizeof key, "k%05u", (unsigned)below(&r, 6000));
    }
    uint64_t s = seqs[below(&r, sizeof seqs / sizeof seqs[0])];
    int back = (int)below(&r, 2);
    size_t a = seek_check(&c1, &m1, key, kl, s, back);
    size_t b = seek_check(&c2, &m2, key, kl, s, !back);
    /* both cursors step, interleaved */
    for (int j = 0; j < 30 && (a != SIZE_MAX || b != SIZE_MAX); j++) {
      if (a != SIZE_MAX)
        a = cursor_steps(&c1, &m1, a, 1, &r);
      if (b != SIZE_MAX)
        b = cursor_steps(&c2, &m2, b, 1, &r);
    }
  }
  bt_cursor_close(&c1);
  bt_cursor_close(&c2);
  assert_int_equal(pinned(e.p), 0);

  /* every leaf boundary of tree 2, both ways: seek to the first entry of a leaf, step back into
     the previous leaf and forward again; seek_prev to the last entry of the previous leaf and
     step forward; seek to a position between the two leaves */
  bt_cursor_init(&c1, e.p, root2);
  assert_int_equal(bt_cursor_first(&c1), JDB_OK);
  size_t nb = 0, *bounds = malloc(m2.n * sizeof *bounds);
  assert_non_null(bounds);
  uint64_t leaf = leaf_of(&c1);
  for (size_t i = 1; i < m2.n; i++) {
    assert_int_equal(bt_cursor_next(&c1), JDB_OK);
    if (leaf_of(&c1) != leaf) {
      bounds[nb++] = i;
      leaf = leaf_of(&c1);
    }
  }
  bt_cursor_close(&c1);
  assert_int_equal(nb + 1, cs2.leaves);
  bt_cursor_init(&c1, e.p, root2);
  for (size_t j = 0; j < nb; j++) {
    size_t b = bounds[j];
    const struct ment *x = &m2.e[b], *y = &m2.e[b - 1];
    uint64_t lp, lq;
    assert_int_equal(seek_check(&c1, &m2, x->key, x->klen, x->seq, 0), b);
    lq = leaf_of(&c1);
    cursor_expect(&c1, bt_cursor_prev(&c1), &m2, b - 1, 1, "prev across a leaf boundary");
    lp = leaf_of(&c1);
    assert_int_not_equal(lp, lq);
    cursor_expect(&c1, bt_cursor_next(&c1), &m2, b, 1, "next across a leaf boundary");
    assert_int_equal(leaf_of(&c1), lq);
    assert_int_equal(seek_check(&c1, &m2, y->key, y->klen, y->seq, 1), b - 1);
    assert_int_equal(leaf_of(&c1), lp);
    cursor_expect(&c1, bt_cursor_next(&c1), &m2, b, 1, "next after seek_prev");
    /* between y and x: (x's key, seq just above x's) when y is another key or an older... */
    if (x->seq < UINT64_MAX &&
        tcmp(y->key, y->klen, y->seq, x->key, x->klen, x->seq + 1) < 0) {
      assert_int_equal(seek_check(&c1, &m2, x->key, x->klen, x->seq + 1, 0), b);
      assert_int_equal(seek_check(&c1, &m2, x->key, x->klen, x->seq + 1, 1), b - 1);
    }
    if (y->seq > 0 && tcmp(y->key, y->klen, y->seq - 1, x->key, x->klen, x->seq) < 0) {
      assert_int_equal(seek_check(&c1, &m2, y->key, y->klen, y->seq - 1, 0), b);
      assert_int_equal(seek_check(&c1, &m2, y->key, y->klen, y->seq - 1, 1), b - 1);
    }
  }
  bt_cursor_close(&c1);
  free(bounds);

  /* zig-zag through the whole tree: two forward, one back */
  bt_cursor_init(&c1, e.p, root2);
  cursor_expect(&c1, bt_cursor_first(&c1), &m2, 0, 1, "first");
  size_t i = 0;
  while (i + 1 < m2.n) {
    cursor_expect(&c1, bt_cursor_next(&c1), &m2, i + 1, 1, "zig");
    if (i + 2 < m2.n) {
      cursor_expect(&c1, bt_cursor_next(&c1), &m2, i + 2, 1, "zig");
      cursor_expect(&c1, bt_cursor_prev(&c1), &m2, i + 1, 1, "zag");
    }
    i++;
  }
  cursor_expect(&c1, bt_cursor_next(&c1), &m2, 0, 0, "end");
  bt_cursor_close(&c1);
  assert_int_equal(pinned(e.p), 0);

  free(g);
  env_done(&e);
  model_free(&m1);
  model_free(&m2);
  keys_free();
}

static void test_get_versions(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x9e7);
  struct env e;
  env_init(&e, ctx_new(), "bt_get", 256, 0);
  struct model m = {0}, old = {0};
  struct gop *g = gops_new(20000);
  size_t n = versions_run(&r, g, 2500);
  apply_ok(&e, &m, g, n);
  env_commit_ok(&e);
  uint64_t root_old = bt_root(e.t);
  model_copy(&old, &m);
  /* tombstones on top of some keys, more versions on others */
  n = 0;
  for (size_t i = 0; i < m.n; i += 1 + below(&r, 5)) {
    g[n] = (struct gop){.key = m.e[i].key, .klen = m.e[i].klen, .seq = 40 + below(&r, 3),
                        .op = BT_OP_PUT, .kind = below(&r, 2) ? BT_TOMB : BT_INLINE,
                        .vlen = (uint32_t)below(&r, BT_INLINE_DEF + 1), .v = tutil_rng_next(&r)};
    n++;
  }
  n = gops_sort(g, n);
  apply_ok(&e, &m, g, n);
  env_commit_ok(&e);
  uint64_t root = bt_root(e.t);
  static const uint64_t snaps[] = {0, 5, 9, 10, 11, 15, 19, 20, 21, 29, 30, 31, 39, 40, 41, 42,
                                   43, UINT64_MAX - 1, UINT64_MAX};
  uint64_t found = 0, tombs = 0, notfound = 0;
  static uint8_t vbuf[BT_INLINE_MAX];
  for (size_t i = 0; i < m.n; i += 1 + below(&r, 3)) {
    const struct ment *x = &m.e[i];
    for (size_t s = 0; s < sizeof snaps / sizeof snaps[0]; s++) {
      get_check(e.p, root, &m, x->key, x->klen, snaps[s]);
      get_check(e.p, root_old, &old, x->key, x->klen, snaps[s]);
      struct bt_ent out;
      int rc = bt_get(e.p, root, x->key, x->klen, snaps[s], &out, vbuf);
      found += rc == JDB_OK;
      tombs += rc == JDB_OK && out.kind == BT_TOMB;
      notfound += rc == JDB_NOTFOUND;
    }
    /* absent: the odd neighbour, a prefix, an extension */
    uint8_t k[16];
    memcpy(k, x->key, x->klen);
    k[x->klen - 1]++;
    get_check(e.p, root, &m, k, x->klen, UINT64_MAX);
    get_check(e.p, root, &m, x->key, x->klen - 1, UINT64_MAX);
    k[x->klen - 1]--;
    k[x->klen] = 0;
    get_check(e.p, root, &m, k, x->klen + 1, UINT64_MAX);
  }
  assert_true(found > 0 && tombs > 0 && notfound > 0);
  /* the empty tree, and keys of bad length */
  struct bt_ent out;
  assert_int_equal(bt_get(e.p, 0, "k00000", 6, UINT64_MAX, &out, vbuf), JDB_NOTFOUND);
  static uint8_t big[BT_KEY_MAX + 1];
  assert_int_equal(bt_get(e.p, root, "k", 0, UINT64_MAX, &out, vbuf), JDB_EINVAL);
  assert_int_equal(bt_get(e.p, root, big, BT_KEY_MAX + 1, UINT64_MAX, &out, vbuf), JDB_EINVAL);
  assert_int_equal(bt_get(e.p, root, big, BT_KEY_MAX, UINT64_MAX, &out, vbuf), JDB_NOTFOUND);
  /* the same through bt_get_many: an empty tree, bad lengths, a NULL key */
  struct bt_get_req q[4] = {{.key = "k00000", .klen = 6, .snap = UINT64_MAX, .vbuf = vbuf},
                            {.key = "k", .klen = 0, .snap = UINT64_MAX, .vbuf = vbuf},
                            {.key = big, .klen = BT_KEY_MAX + 1, .snap = UINT64_MAX, .vbuf = vbuf},
                            {.key = NULL, .klen = 3, .snap = UINT64_MAX, .vbuf = vbuf}};
  bt_get_many(e.p, 0, q, 4);
  assert_int_equal(q[0].rc, JDB_NOTFOUND);
  assert_int_equal(q[1].rc, JDB_EINVAL);
  assert_int_equal(q[2].rc, JDB_EINVAL);
  assert_int_equal(q[3].rc, JDB_EINVAL);
  bt_get_many(e.p, root, q, 4);
  assert_int_equal(q[0].rc, bt_get(e.p, root, "k00000", 6, UINT64_MAX, &out, vbuf));
  assert_int_equal(q[1].rc, JDB_EINVAL);
  assert_int_equal(q[3].rc, JDB_EINVAL);
  bt_get_many(e.p, root, q, 0);
  assert_int_equal(pinned(e.p), 0);
  print_message("  %llu found (%llu tombstones), %llu not found\n", (unsigned long long)found,
                (unsigned long long)tombs, (unsigned long long)notfound);
  free(g);
  env_done(&e);
  model_free(&m);
  model_free(&old);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Each page once per run */

static void test_one_leaf_run(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x1ea);
  struct env e;
  env_init(&e, ctx_new(), "bt_once", 2048, 0);
  struct model m = {0};
  struct gop *g = gops_new(6000);
  uint8_t k[BT_KEY_MAX];
  /* keys with a 100-byte common prefix: long separators, so three levels come early */
  struct bt_check_stats cs = {0};
  uint64_t id = 0;
  while (cs.height < 3) {
    for (size_t i = 0; i < 5000; i++) {
      memset(k, 'q', 100);
      be64_put(k + 100, id++);
      g[i] = (struct gop){.key = key_keep(k, 108), .klen = 108, .seq = 1, .op = BT_OP_PUT,
                          .kind = BT_INLINE, .vlen = 10, .v = id};
    }
    apply_ok(&e, &m, g, 5000);
    cs = check_tree(e.p, bt_root(e.t), &m);
  }
  env_commit_ok(&e);
  env_reopen(&e, 2048);   /* cold cache: pages_read counts real decodes */

  /* the leaf with the most entries, not the first or last */
  struct bt_cursor c;
  bt_cursor_init(&c, e.p, bt_root(e.t));
  assert_int_equal(bt_cursor_first(&c), JDB_OK);
  uint64_t leaf = leaf_of(&c), best_leaf = 0;
  size_t start = 0, best = 0, best_n = 0, leaves = 1;
  for (size_t i = 1; i <= m.n; i++) {
    int rc = i < m.n ? bt_cursor_next(&c) : JDB_NOTFOUND;
    if (rc != JDB_OK || leaf_of(&c) != leaf) {
      if (start > 0 && i < m.n && i - start > best_n) {
        best = start;
        best_n = i - start;
        best_leaf = leaf;
      }
      if (rc != JDB_OK)
        break;
      leaf = leaf_of(&c);
      start = i;
      leaves++;
    }
  }
  bt_cursor_close(&c);
  assert_true(best_n >= 8);
  assert_int_equal(leaves, cs.leaves);

  /* overwrite every entry of that leaf (same sizes), and replace two of its middle entries by
     newer versions: one leaf and its path are read and written once */
  size_t n = 0;
  for (size_t i = best; i < best + best_n; i++) {
    const struct ment *x = &m.e[i];
    if (i == best + 2 || i == best + 5) {
      g[n++] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_ERASE};
      g[n++] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq + 1, .op = BT_OP_PUT,
                            .kind = BT_INLINE, .vlen = 10, .v = tutil_rng_next(&r)};
    } else {
      g[n++] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_PUT,
                            .kind = BT_INLINE, .vlen = 10, .v = tutil_rng_next(&r)};
    }
  }
  n = gops_sort(g, n);
  struct pg_stats p0, p1;
  pg_stats_get(e.p, &p0);
  struct bt_apply_stats st = apply_ok(&e, &m, g, n);
  pg_stats_get(e.p, &p1);
  print_message("  one leaf of %zu entries, height %llu: read %llu, written %llu, freed %llu, "
                "pg reads %llu\n",
                best_n, (unsigned long long)cs.height, (unsigned long long)st.pages_read,
                (unsigned long long)st.pages_written, (unsigned long long)st.pages_freed,
                (unsigned long long)(p1.reads - p0.reads));
  assert_int_equal(st.replaced, best_n - 2);
  assert_int_equal(st.inserted, 2);
  assert_int_equal(st.erased, 2);
  assert_int_equal(st.pages_read, cs.height);
  assert_int_equal(st.pages_written, cs.height);
  assert_int_equal(st.pages_freed, cs.height);
  assert_int_equal(st.merges, 0);
  assert_int_equal(p1.dirty, cs.height);
  assert_true(p1.reads - p0.reads <= cs.height);
  struct bt_check_stats cs2 = verify_full(e.p, bt_root(e.t), &m, &r, 20);
  assert_int_equal(cs2.leaves, cs.leaves);
  assert_int_equal(cs2.branches, cs.branches);
  /* the new leaf holds exactly the same entries */
  bt_cursor_init(&c, e.p, bt_root(e.t));
  assert_int_equal(bt_cursor_seek(&c, m.e[best].key, m.e[best].klen, m.e[best].seq), JDB_OK);
  uint64_t nl = leaf_of(&c);
  assert_int_not_equal(nl, best_leaf);
  for (size_t i = 1; i < best_n; i++) {
    assert_int_equal(bt_cursor_next(&c), JDB_OK);
    assert_int_equal(leaf_of(&c), nl);
  }
  assert_int_equal(bt_cursor_next(&c), JDB_OK);
  assert_int_not_equal(leaf_of(&c), nl);
  bt_cursor_close(&c);
  env_commit_ok(&e);
  check_accounting(e.p, &cs2);

  /* erases of absent entries only: nothing changes, nothing is written */
  for (size_t i = 0; i < 50; i++) {
    const struct ment *x = &m.e[below(&r, m.n)];
    g[i] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq + 1000, .op = BT_OP_ERASE};
  }
  n = gops_sort(g, 50);
  uint64_t root0 = bt_root(e.t);
  st = apply_ok(&e, &m, g, n);
  assert_int_equal(st.erase_missing, n);
  assert_int_equal(st.pages_written, 0);
  assert_int_equal(st.pages_freed, 0);
  assert_int_equal(bt_root(e.t), root0);

  /* appends past the right end: only the right-most path of the old state is read */
  pg_reclaim(e.p, pg_super(e.p)->generation);
  env_reopen(&e, 2048);
  for (size_t i = 0; i < 5000; i++) {
    memset(k, 'q', 100);
    be64_put(k + 100, id++);
    g[i] = (struct gop){.key = key_keep(k, 108), .klen = 108, .seq = 1, .op = BT_OP_PUT,
                        .kind = BT_INLINE, .vlen = 10, .v = id};
  }
  uint64_t h0 = cs2.height;
  st = apply_ok(&e, &m, g, 5000);
  cs2 = verify_full(e.p, bt_root(e.t), &m, &r, 20);
  print_message("  append of 5000 past the end: read %llu, written %llu (height %llu -> %llu, "
                "%llu -> %llu leaves)\n",
                (unsigned long long)st.pages_read, (unsigned long long)st.pages_written,
                (unsigned long long)h0, (unsigned long long)cs2.height,
                (unsigned long long)cs.leaves, (unsigned long long)cs2.leaves);
  assert_int_equal(st.pages_read, h0);
  assert_int_equal(st.inserted, 5000);
  env_commit_ok(&e);
  check_accounting(e.p, &cs2);
  free(g);
  env_done(&e);
  model_free(&m);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Crash at every I/O of a commit */

static uint8_t *file_load(const char *path, size_t *len)
{
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  *len = (size_t)st.st_size;
  uint8_t *b = malloc(*len);
  assert_non_null(b);
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, b, *len, 0), (ssize_t)*len);
  close(fd);
  return b;
}

static void file_store(const char *path, const uint8_t *b, size_t len)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)len), 0);
  assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
  assert_int_equal(fsync(fd), 0);
  close(fd);
}

static void test_crash_commit(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xc4a5);
  struct env e;
  env_init(&e, ctx_new(), "bt_crash", 256, 0);
  struct model a = {0}, b = {0}, c = {0};
  struct gop *g = gops_new(4000);
  /* state A: a few commits, with erases, so there is a free list */
  for (int i = 0; i < 3; i++) {
    size_t n = gen_puts(&r, g, 800, -1, BT_INLINE_DEF);
    apply_ok(&e, &a, g, n);
    env_commit_ok(&e);
  }
  size_t n = 0;
  for (size_t i = a.n / 3; i < a.n / 3 + 300; i++)
    g[n++] = (struct gop){.key = a.e[i].key, .klen = a.e[i].klen, .seq = a.e[i].seq,
                          .op = BT_OP_ERASE};
  apply_ok(&e, &a, g, n);
  env_commit_ok(&e);
  struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &a, &r, 20);
  assert_true(cs.height >= 2);
  uint64_t gen_a = pg_super(e.p)->generation;
  env_close(&e);
  fs_ctx_destroy(e.ctx);
  size_t img_len;
  uint8_t *img = file_load(e.path, &img_len);

  /* run B: new keys, overwrites, erases across the whole tree */
  struct gop *gb = gops_new(1000);
  size_t nb = gen_puts(&r, gb, 300, -1, BT_INLINE_DEF);
  for (int i = 0; i < 200; i++) {
    const struct ment *x = &a.e[below(&r, a.n)];
    gb[nb] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_ERASE};
    if (i % 2)
      gen_val(&r, &gb[nb], BT_INLINE_DEF);
    nb++;
  }
  nb = gops_sort(gb, nb);
  model_copy(&b, &a);
  struct counts cnt;
  model_apply(&b, gb, nb, &cnt);

  /* count the I/Os of B's commit once */
  e.ctx = fctx_new(1);
  e.frames = 1024;
  env_open(&e);
  struct bt_apply_stats st;
  assert_int_equal(apply_gops(&e, gb, nb, &st), JDB_OK);
  uint64_t n0 = fs_faulty_count(e.ctx, FS_FT_DATA);
  env_commit_ok(&e);
  uint64_t total = fs_faulty_count(e.ctx, FS_FT_DATA) - n0;
  env_close(&e);
  fs_ctx_destroy(e.ctx);
  print_message("  commit of B (%zu ops, %llu pages written) = %llu I/Os\n", nb,
                (unsigned long long)st.pages_written, (unsigned long long)total);
  assert_true(total >= 3);

  static const unsigned policies[] = {FS_CRASH_DROP, FS_CRASH_RANDOM, FS_CRASH_RANDOM,
                                      FS_CRASH_TEAR, FS_CRASH_KEEP};
  int outcomes[2] = {0, 0}, iter = 0;
  for (size_t pi = 0; pi < sizeof policies / sizeof policies[0]; pi++) {
    for (uint64_t at = 1; at <= total; at++, iter++) {
      file_store(e.path, img, img_len);
      e.ctx = fctx_new(tutil_seed() * 31 + pi * 1000 + at);
      e.frames = 512 + (uint32_t)below(&r, 512);
      env_open(&e);
      int rc = apply_gops(&e, gb, nb, &st);
      assert_int_equal(rc, JDB_OK);
      struct fs_fault_rule fr = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = at,
                                 .crash_policy = policies[pi]};
      assert_int_equal(fs_faulty_add_rule(e.ctx, &fr), JDB_OK);
      rc = env_commit(&e);
      assert_int_not_equal(rc, JDB_OK);
      fs_faulty_revive(e.ctx);
      fs_faulty_clear_rules(e.ctx);
      if (at == 1)   /* the committed state is still served after the failure */
        walk_fwd(e.p, pg_super(e.p)->tree_root, &a, 0);
      env_close(&e);

      /* after the "reboot": exactly A or exactly B, never an error */
      env_open(&e);
      uint64_t gen = pg_super(e.p)->generation;
      assert_true(gen == gen_a || gen == gen_a + 1);
      outcomes[gen - gen_a]++;
      const struct model *m = gen == gen_a ? &a : &b;
      cs = check_tree(e.p, bt_root(e.t), m);
      walk_fwd(e.p, bt_root(e.t), m, cs.height);
      if (iter % 3 == 0)
        walk_rev(e.p, bt_root(e.t), m);
      probe_gets(e.p, bt_root(e.t), m, &r, 20);
      check_accounting(e.p, &cs);
      /* every few: the recovered state takes another run and commit, and reads back */
      if (iter % 4 == 0) {
        model_copy(&c, m);
        n = gen_puts(&r, g, 200, -1, BT_INLINE_DEF);
        apply_ok(&e, &c, g, n);
        env_commit_ok(&e);
        env_reopen(&e, 64);
        cs = check_tree(e.p, bt_root(e.t), &c);
        walk_fwd(e.p, bt_root(e.t), &c, cs.height);
        check_accounting(e.p, &cs);
      }
      env_close(&e);
      fs_ctx_destroy(e.ctx);
    }
  }
  print_message("  crash outcomes: old %d, new %d\n", outcomes[0], outcomes[1]);
  assert_true(outcomes[0] > 0);
  assert_true(outcomes[1] > 0);
  free(img);
  free(g);
  free(gb);
  tutil_rmrf(e.dir);
  model_free(&a);
  model_free(&b);
  model_free(&c);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Damaged pages */

static void page_read(const char *path, uint64_t pgno, uint8_t *buf)
{
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, buf, PAGE, (off_t)(pgno * PAGE)), (ssize_t)PAGE);
  close(fd);
}

static void page_write(const char *path, uint64_t pgno, const uint8_t *buf)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, buf, PAGE, (off_t)(pgno * PAGE)), (ssize_t)PAGE);
  assert_int_equal(fsync(fd), 0);
  close(fd);
}

/* One page of a committed tree, read from the file: the model entries [lo, hi) below it, and
   for branches those below child 0 ([lo, c0_hi)). */
struct tpage {
  uint64_t pgno;
  uint8_t type, level;
  int is_root;
  size_t lo, hi, c0_hi;
};

static void tree_map(const char *path, uint64_t pgno, int is_root, size_t *idx, struct tpage *out,
                     size_t *np, size_t cap)
{
  uint8_t buf[PAGE];
  page_read(path, pgno, buf);
  struct layout_page_hdr h;
  assert_int_equal(layout_page_open(buf, PAGE, pgno, &h), JDB_OK);
  assert_true(*np < cap);
  size_t me = (*np)++;
  out[me] = (struct tpage){.pgno = pgno, .type = h.type, .level = h.level, .is_root = is_root,
                           .lo = *idx};
  if (h.type == LAYOUT_PAGE_LEAF) {
    assert_int_equal(h.level, 0);
    *idx += h.count;
  } else {
    assert_int_equal(h.type, LAYOUT_PAGE_BRANCH);
    uint32_t n = bt_br_n(buf);
    uint64_t ch[BTT_ITEMS_MAX];
    assert_true(n >= 2 && n <= BTT_ITEMS_MAX);
    for (uint32_t i = 0; i < n; i++)
      ch[i] = bt_br_child(buf, i);
    for (uint32_t i = 0; i < n; i++) {
      tree_map(path, ch[i], 0, idx, out, np, cap);
      if (i == 0)
        out[me].c0_hi = *idx;
    }
  }
  out[me].hi = *idx;
}

/* Offset of the child pgno of branch entry i (0: child[0]). */
static size_t br_child_off(const uint8_t *page, uint32_t i)
{
  if (i == 0)
    return BT_HDR;
  const uint8_t *s = page + le16_get(page + BT_BR_BASE + BT_LSLOT * (i - 1));
  uint32_t v = 0;
  const uint8_t *q = bt_vlen_get(s, page + PAGE, &v);
  assert_non_null(q);
  return (size_t)(q - page) + (v >> 1) + (v & 1u ? 8u : 0u);
}

static struct gop tomb_of(const struct ment *x)
{
  return (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq, .op = BT_OP_PUT,
                      .kind = BT_TOMB};
}

/* Entries [lo, hi) sit below a page that cannot be read: everything that touches it is
   JDB_ECORRUPT, everything else works, nothing crashes or leaks a pin. */
static void expect_damaged(struct env *e, const struct model *m, size_t lo, size_t hi,
                           const char *what)
{
  static uint8_t vbuf[BT_INLINE_MAX];
  uint64_t c0 = err_corrupt_count();
  uint64_t root = bt_root(e->t);
  struct bt_check_stats st;
  int rc = bt_check(e->p, root, 1, &st);
  if (rc != JDB_ECORRUPT)
    print_message("%s: bt_check: %s\n", what, jdb_strerror(rc));
  assert_int_equal(rc, JDB_ECORRUPT);
  struct bt_cursor c;
  bt_cursor_init(&c, e->p, root);
  rc = bt_cursor_first(&c);
  for (size_t i = 0; i < lo; i++) {
    assert_int_equal(rc, JDB_OK);
    assert_true(ent_ok(bt_cursor_ent(&c), &m->e[i], what, i));
    rc = bt_cursor_next(&c);
  }
  if (rc != JDB_ECORRUPT)
    print_message("%s: forward walk at entry %zu: %s\n", what, lo, jdb_strerror(rc));
  assert_int_equal(rc, JDB_ECORRUPT);
  assert_null(bt_cursor_ent(&c));
  assert_int_equal(c.depth, 0);
  rc = bt_cursor_last(&c);
  for (size_t i = m->n; i-- > hi;) {
    assert_int_equal(rc, JDB_OK);
    assert_true(ent_ok(bt_cursor_ent(&c), &m->e[i], what, i));
    rc = bt_cursor_prev(&c);
  }
  if (rc != JDB_ECORRUPT)
    print_message("%s: reverse walk at entry %zu: %s\n", what, hi - 1, jdb_strerror(rc));
  assert_int_equal(rc, JDB_ECORRUPT);
  assert_null(bt_cursor_ent(&c));
  const struct ment *x = &m->e[lo], *y = &m->e[hi - 1];
  struct bt_ent out;
  assert_int_equal(bt_get(e->p, root, x->key, x->klen, x->seq, &out, vbuf), JDB_ECORRUPT);
  assert_int_equal(bt_get(e->p, root, y->key, y->klen, y->seq, &out, vbuf), JDB_ECORRUPT);
  assert_int_equal(bt_cursor_seek(&c, x->key, x->klen, x->seq), JDB_ECORRUPT);
  assert_null(bt_cursor_ent(&c));
  assert_int_equal(bt_cursor_seek_prev(&c, y->key, y->klen, y->seq), JDB_ECORRUPT);
  assert_int_equal(c.depth, 0);
  if (lo > 0) {
    get_check(e->p, root, m, m->e[0].key, m->e[0].klen, m->e[0].seq);
    assert_int_equal(seek_check(&c, m, m->e[0].key, m->e[0].klen, m->e[0].seq, 0), 0);
  }
  if (hi < m->n) {
    const struct ment *z = &m->e[m->n - 1];
    get_check(e->p, root, m, z->key, z->klen, z->seq);
    assert_int_equal(seek_check(&c, m, z->key, z->klen, z->seq, 1), m->n - 1);
  }
  bt_cursor_close(&c);
  assert_int_equal(pinned(e->p), 0);

  /* A run that reaches the page fails whole, even after it rewrote pages before it. */
  struct gop g[4];
  size_t n = 0;
  if (lo > 0)
    g[n++] = tomb_of(&m->e[0]);
  if (lo > 1)
    g[n++] = tomb_of(&m->e[lo / 2]);
  g[n++] = tomb_of(x);
  if (hi < m->n)
    g[n++] = tomb_of(&m->e[m->n - 1]);
  struct pgsnap s0;
  pg_snap(e->p, &s0);
  struct bt_apply_stats ast;
  rc = apply_gops(e, g, n, &ast);
  if (rc != JDB_ECORRUPT)
    print_message("%s: apply: %s\n", what, jdb_strerror(rc));
  assert_int_equal(rc, JDB_ECORRUPT);
  expect_unchanged(e, root, &s0);
  /* and one that does not reach it works */
  if (lo > 0) {
    g[0] = tomb_of(&m->e[0]);
    assert_int_equal(apply_gops(e, g, 1, &ast), JDB_OK);
    assert_int_equal(ast.replaced, 1);
  }
  assert_int_equal(pinned(e->p), 0);
  assert_true(err_corrupt_count() > c0);
}

enum {
  M_FLIP,
  M_LEAF_COUNT_UP, M_LEAF_KIND, M_LEAF_PREFIX_LEN, M_LEAF_EMPTY, M_LEAF_AS_BRANCH,
  M_BR_ONE_CHILD, M_BR_CHILD_SUPER, M_BR_CHILD_PAST_END, M_BR_CHILD_SELF, M_BR_LEVEL_UP,
  M_BR_SLOT, M_BR_CHILD_FREELIST, M_BR_AS_LEAF, M_BR_SWAP,
  M_N
};
static const char *const g_mut_name[M_N] = {
  "bit flip", "leaf count+1", "leaf entry kind", "leaf prefix length", "leaf count 0",
  "leaf typed branch", "branch with one child", "branch child 1",
  "branch child past the end", "branch child = itself", "branch level+1", "branch slot+1",
  "branch child = free-list page", "branch typed leaf", "branch children swapped"};

/* Damage page tp as mut says; *lo, *hi: the entries that become unreadable. Returns 0 when the
   mutation does not apply to this page. */
static int page_damage(const char *path, const struct tpage *tp, int mut, struct tutil_rng *r,
                       uint64_t page_count, uint64_t freelist_root, size_t *lo, size_t *hi)
{
  int leaf = tp->type == LAYOUT_PAGE_LEAF;
  if (mut != M_FLIP && (mut < M_BR_ONE_CHILD) != leaf)
    return 0;
  if ((mut == M_BR_AS_LEAF || mut == M_LEAF_AS_BRANCH) && tp->is_root)
    return 0;
  if (mut == M_BR_CHILD_FREELIST && freelist_root < 2)
    return 0;
  uint8_t page[PAGE];
  page_read(path, tp->pgno, page);
  struct layout_page_hdr h;
  assert_int_equal(layout_page_open(page, PAGE, tp->pgno, &h), JDB_OK);
  *lo = tp->lo;
  *hi = tp->hi;
  if (mut == M_FLIP) {
    size_t b = below(r, PAGE);
    page[b] ^= (uint8_t)(1u << below(r, 8));
    page_write(path, tp->pgno, page);
    return 1;
  }
  uint32_t plen = le16_get(page + BT_HDR);
  switch (mut) {
  case M_LEAF_COUNT_UP: h.count++; break;
  case M_LEAF_KIND: {
    const uint8_t *e0 = page + le16_get(page + BT_LEAF_BASE + plen), *sfx;
    uint32_t sl;
    const uint8_t *q = bt_leaf_sfx(e0, &sfx, &sl);
    page[(q - page) + 8] = 7;
    break;
  }
  case M_LEAF_PREFIX_LEN: le16_put(page + BT_HDR, BT_KEY_MAX + 1); break;
  case M_LEAF_EMPTY: h.count = 0; break;
  case M_LEAF_AS_BRANCH: h.type = LAYOUT_PAGE_BRANCH; h.level = 1; break;
  case M_BR_ONE_CHILD: h.count = 1; break;
  case M_BR_CHILD_SUPER: le64_put(page + BT_HDR, 1); break;
  case M_BR_CHILD_PAST_END:
    le64_put(page + BT_HDR, page_count + 3);
    *hi = tp->c0_hi;
    break;
  case M_BR_CHILD_SELF:
    le64_put(page + BT_HDR, tp->pgno);
    *hi = tp->c0_hi;
    break;
  case M_BR_LEVEL_UP: h.level++; break;
  case M_BR_SLOT: le16_put(page + BT_BR_BASE, (uint16_t)(le16_get(page + BT_BR_BASE) + 1)); break;
  case M_BR_CHILD_FREELIST:
    le64_put(page + BT_HDR, freelist_root);
    *hi = tp->c0_hi;
    break;
  case M_BR_AS_LEAF: h.type = LAYOUT_PAGE_LEAF; h.level = 0; break;
  case M_BR_SWAP: {
    size_t o1 = br_child_off(page, 1);
    uint64_t a = le64_get(page + BT_HDR), b = le64_get(page + o1);
    le64_put(page + BT_HDR, b);
    le64_put(page + o1, a);
    break;
  }
  default: fail();
  }
  layout_page_seal(page, PAGE, &h);
  page_write(path, tp->pgno, page);
  return 1;
}

static void test_damaged_pages(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xdead);
  struct env e;
  env_init(&e, ctx_new(), "bt_damage", 1024, BT_INLINE_MAX);
  struct model m = {0};
  struct gop *g = gops_new(4000);
  uint8_t k[BT_KEY_MAX];
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < 2000; i++) {
      uint32_t kl = deep_key(k, below(&r, 1u << 30));
      g[i] = (struct gop){.key = key_keep(k, kl), .klen = kl, .seq = 1 + below(&r, 4)};
      gen_val(&r, &g[i], BT_INLINE_MAX);
    }
    size_t n = gops_sort(g, 2000);
    apply_ok(&e, &m, g, n);
    env_commit_ok(&e);   /* two commits: the second leaves a free list */
  }
  struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &m, &r, 20);
  assert_true(cs.height >= 3);
  uint64_t page_count = pg_super(e.p)->page_count, fl = pg_super(e.p)->freelist_root;
  uint64_t root = bt_root(e.t);
  env_close(&e);

  size_t cap = (size_t)(cs.leaves + cs.branches), np = 0, idx = 0;
  struct tpage *tp = calloc(cap, sizeof *tp);
  assert_non_null(tp);
  tree_map(e.path, root, 1, &idx, tp, &np, cap);
  assert_int_equal(idx, m.n);
  assert_int_equal(np, cap);
  size_t nleaf = 0, nbr = 0, *leaves = calloc(np, sizeof *leaves), *brs = calloc(np, sizeof *brs);
  assert_non_null(leaves);
  assert_non_null(brs);
  for (size_t i = 0; i < np; i++) {
    if (tp[i].type == LAYOUT_PAGE_LEAF)
      leaves[nleaf++] = i;
    else
      brs[nbr++] = i;
  }
  assert_true(tp[0].is_root && tp[0].type == LAYOUT_PAGE_BRANCH);

  int tried = 0, flips = scaled(12);
  for (int mut = 0; mut < M_N; mut++) {
    int reps = mut == M_FLIP ? flips : 2;
    for (int rep = 0; rep < reps; rep++) {
      const struct tpage *t;
      if (mut == M_FLIP)   /* the root, branches and leaves */
        t = rep == 0 ? &tp[0] : rep % 3 == 1 ? &tp[brs[below(&r, nbr)]]
                                             : &tp[leaves[below(&r, nleaf)]];
      else if (mut < M_BR_ONE_CHILD)
        t = &tp[leaves[below(&r, nleaf)]];
      else
        t = rep == 0 ? &tp[0] : &tp[brs[below(&r, nbr)]];
      uint8_t orig[PAGE];
      page_read(e.path, t->pgno, orig);
      size_t lo, hi;
      if (!page_damage(e.path, t, mut, &r, page_count, fl, &lo, &hi))
        continue;
      tried++;
      env_reopen(&e, 64);
      char what[128];
      snprintf(what, sizeof what, "%s in %s %llu (level %u, entries %zu..%zu)", g_mut_name[mut],
               t->type == LAYOUT_PAGE_LEAF ? "leaf" : "branch", (unsigned long long)t->pgno,
               t->level, lo, hi);
      if (mut == M_BR_SWAP) {
        /* well-formed pages in the wrong place: only the whole-tree check can tell */
        struct bt_check_stats st;
        assert_int_equal(bt_check(e.p, bt_root(e.t), 1, &st), JDB_ECORRUPT);
        struct bt_cursor c;
        bt_cursor_init(&c, e.p, bt_root(e.t));
        size_t cnt = 0;
        int rc = bt_cursor_first(&c);
        while (rc == JDB_OK && cnt <= m.n) {
          cnt++;
          rc = bt_cursor_next(&c);
        }
        assert_int_equal(rc, JDB_NOTFOUND);
        assert_int_equal(cnt, m.n);
        bt_cursor_close(&c);
        assert_int_equal(pinned(e.p), 0);
      } else {
        expect_damaged(&e, &m, lo, hi, what);
      }
      env_close(&e);
      page_write(e.path, t->pgno, orig);
    }
  }
  print_message("  %d damaged pages detected\n", tried);
  assert_true(tried >= M_N);

  /* Three damaged leaves at once: a full check (BT_CHECK_ALL) finds all three and walks the
     rest; the default check stops at the first. */
  if (nleaf >= 6) {
    static uint8_t saved[3][PAGE];
    uint64_t dmg[3];
    for (int d = 0; d < 3; d++) {
      dmg[d] = tp[leaves[d * (nleaf / 3)]].pgno;
      page_read(e.path, dmg[d], saved[d]);
      uint8_t bad[PAGE];
      memcpy(bad, saved[d], PAGE);
      bad[PAGE / 2] ^= 0x5a;
      page_write(e.path, dmg[d], bad);
    }
    env_reopen(&e, 64);
    struct bt_check_stats all = {0}, first = {0};
    assert_int_equal(bt_check(e.p, bt_root(e.t), BT_CHECK_ALL, &all), JDB_ECORRUPT);
    assert_int_equal(all.damaged, 3);
    assert_int_equal(all.leaves, nleaf - 3);
    assert_int_equal(all.branches, nbr);
    assert_int_equal(bt_check(e.p, bt_root(e.t), 0, &first), JDB_ECORRUPT);
    assert_int_equal(first.damaged, 0);
    assert_true(first.leaves < all.leaves);
    assert_int_equal(pinned(e.p), 0);
    env_close(&e);
    for (int d = 0; d < 3; d++)
      page_write(e.path, dmg[d], saved[d]);
  }
  env_open(&e);
  assert_int_equal(bt_root(e.t), root);
  verify_full(e.p, root, &m, &r, 20);
  free(tp);
  free(leaves);
  free(brs);
  free(g);
  env_done(&e);
  model_free(&m);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Limits and bad input */

/* A bad run leaves the tree, the model and pg as they were. */
static void expect_einval_run(struct env *e, const struct model *m, const struct bt_op *ops,
                              size_t n, const char *what)
{
  struct pgsnap s0;
  pg_snap(e->p, &s0);
  uint64_t root0 = bt_root(e->t);
  struct bt_apply_stats st;
  int rc = bt_apply(e->t, ops, n, &st);
  if (rc != JDB_EINVAL)
    print_message("%s: %s\n", what, jdb_strerror(rc));
  assert_int_equal(rc, JDB_EINVAL);
  expect_unchanged(e, root0, &s0);
}

static void test_bad_args(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xbad);
  struct env e;
  env_init(&e, ctx_new(), "bt_args", 1024, 0);
  /* options */
  struct bt *t = NULL;
  struct bt_opts bo = {.inline_max = BT_INLINE_MAX + 1};
  assert_int_equal(bt_open(e.p, &bo, 0, &t), JDB_EINVAL);
  bo.inline_max = BT_INLINE_MAX;
  assert_int_equal(bt_open(e.p, &bo, 0, &t), JDB_OK);
  bt_set_root(t, 77);
  assert_int_equal(bt_root(t), 77);
  bt_close(t);
  bt_close(NULL);

  struct model m = {0};
  struct gop *g = gops_new(3000);
  size_t n = gen_puts(&r, g, 2500, -1, BT_INLINE_DEF);
  apply_ok(&e, &m, g, n);
  env_commit_ok(&e);
  n = gen_puts(&r, g, 300, -1, BT_INLINE_DEF);
  apply_ok(&e, &m, g, n);   /* and an uncommitted state on top */
  struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &m, &r, 10);

  /* a valid run across the whole tree; each bad op goes at its start, middle and end */
  n = gen_puts(&r, g, 2000, -1, BT_INLINE_DEF);
  struct run run;
  run_build(&run, g, n);
  struct bt_op *ops = run.ops;
  static uint8_t big[BT_KEY_MAX + 2];
  memset(big, 'z', sizeof big);
  static uint8_t val[BT_INLINE_MAX + 2];
  enum { B_KLEN0, B_KLEN_MAX1, B_EKLEN0, B_EKLEN_MAX1, B_OP0, B_OP3, B_KIND0, B_KIND4,
         B_INLINE_LONG, B_INLINE_NULL, B_VREF0, B_KEY_NULL, B_UNSORTED, B_SEQ_ASC, B_DUP_PUT,
         B_DUP_MIX, B_DUP_ERASE, B_N };
  for (int bad = 0; bad < B_N; bad++) {
    for (int where = 0; where < 3; where++) {
      size_t pos = where == 0 ? 0 : where == 1 ? n / 2 : n - 2;
      struct bt_op save[2] = {ops[pos], ops[pos + 1]};
      struct bt_op *o = &ops[pos];
      switch (bad) {
      case B_KLEN0: o->klen = 0; break;
      case B_KLEN_MAX1: o->key = big; o->klen = BT_KEY_MAX + 1; break;
      case B_EKLEN0: o->op = BT_OP_ERASE; o->klen = 0; break;
      case B_EKLEN_MAX1: o->op = BT_OP_ERASE; o->key = big; o->klen = BT_KEY_MAX + 1; break;
      case B_OP0: o->op = 0; break;
      case B_OP3: o->op = 3; break;
      case B_KIND0: o->op = BT_OP_PUT; o->kind = 0; break;
      case B_KIND4: o->op = BT_OP_PUT; o->kind = 4; break;
      case B_INLINE_LONG:
        *o = (struct bt_op){.op = BT_OP_PUT, .kind = BT_INLINE, .key = o->key, .klen = o->klen,
                            .seq = o->seq, .val = val, .vlen = BT_INLINE_DEF + 1};
        break;
      case B_INLINE_NULL:
        *o = (struct bt_op){.op = BT_OP_PUT, .kind = BT_INLINE, .key = o->key, .klen = o->klen,
                            .seq = o->seq, .val = NULL, .vlen = 5};
        break;
      case B_VREF0:
        *o = (struct bt_op){.op = BT_OP_PUT, .kind = BT_VREF, .key = o->key, .klen = o->klen,
                            .seq = o->seq, .vpos = 4096, .vlen = 0};
        break;
      case B_KEY_NULL: o->key = NULL; break;
      case B_UNSORTED:   /* two different keys swapped */
        if (kcmp(ops[pos].key, ops[pos].klen, ops[pos + 1].key, ops[pos + 1].klen) == 0)
          continue;
        ops[pos] = save[1];
        ops[pos + 1] = save[0];
        break;
      case B_SEQ_ASC:    /* the same key, seqs ascending */
        if (ops[pos].seq == UINT64_MAX)
          continue;
        ops[pos + 1] = ops[pos];
        ops[pos + 1].seq = ops[pos].seq + 1;
        break;
      case B_DUP_PUT: ops[pos + 1] = ops[pos]; break;
      case B_DUP_MIX: ops[pos + 1] = ops[pos]; ops[pos + 1].op = BT_OP_ERASE; break;
      case B_DUP_ERASE:
        ops[pos].op = BT_OP_ERASE;
        ops[pos + 1] = ops[pos];
        break;
      }
      char what[64];
      snprintf(what, sizeof what, "bad op %d at %zu", bad, pos);
      expect_einval_run(&e, &m, ops, n, what);
      ops[pos] = save[0];
      ops[pos + 1] = save[1];
    }
  }
  /* the untouched run is fine, and a single bad op alone too */
  expect_einval_run(&e, &m, &(struct bt_op){.op = BT_OP_PUT, .kind = BT_TOMB, .key = "a"}, 1,
                    "klen 0 alone");
  walk_fwd(e.p, bt_root(e.t), &m, cs.height);
  struct bt_apply_stats st;
  assert_int_equal(bt_apply(e.t, ops, n, &st), JDB_OK);
  struct counts c;
  model_apply(&m, g, n, &c);
  counts_check(&st, &c);
  run_free(&run);
  verify_full(e.p, bt_root(e.t), &m, &r, 20);
  env_commit_ok(&e);
  env_reopen(&e, 64);
  verify_full(e.p, bt_root(e.t), &m, &r, 20);

  /* bad roots given to readers are damage, not crashes: a superblock slot, past the end */
  static uint8_t vbuf[BT_INLINE_MAX];
  struct bt_ent out;
  struct bt_cursor cur;
  uint64_t pc = pg_super(e.p)->page_count;
  static const uint64_t bad_roots[] = {1, 0 /* placeholder: pc + 5 */};
  for (int i = 0; i < 2; i++) {
    uint64_t br = i == 0 ? bad_roots[0] : pc + 5;
    int rc = bt_get(e.p, br, "a", 1, UINT64_MAX, &out, vbuf);
    assert_true(rc == JDB_ECORRUPT || rc == JDB_EINVAL);
    bt_cursor_init(&cur, e.p, br);
    rc = bt_cursor_first(&cur);
    assert_true(rc == JDB_ECORRUPT || rc == JDB_EINVAL);
    assert_null(bt_cursor_ent(&cur));
    bt_cursor_close(&cur);
    struct bt_check_stats cst;
    assert_int_not_equal(bt_check(e.p, br, 1, &cst), JDB_OK);
  }
  assert_int_equal(pinned(e.p), 0);
  free(g);
  env_done(&e);
  model_free(&m);
  keys_free();
}

/* Key lengths 1 .. BT_KEY_MAX around the 1- and 2-byte length field boundary, keys that extend
   each other up to the longest, inline values around each threshold, references, tombstones. */
static void test_key_value_sizes(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x512e);
  static const uint32_t imaxes[] = {0 /* default */, 100, BT_INLINE_MAX};
  for (size_t ii = 0; ii < 3; ii++) {
    uint32_t imax = imaxes[ii] ? imaxes[ii] : BT_INLINE_DEF;
    struct env e;
    env_init(&e, ctx_new(), "bt_sizes", 2048, imaxes[ii]);
    struct model m = {0};
    struct gop *g = gops_new(5000);
    size_t n = 0;
    static const uint32_t klens[] = {1, 2, 3, 126, 127, 128, 129, 254, 255, 256, 257, 1000,
                                     BT_KEY_MAX - 1, BT_KEY_MAX};
    static const uint32_t vl[] = {0, 1, 126, 127, 128, 129};
    uint8_t k[BT_KEY_MAX];
    for (size_t i = 0; i < sizeof klens / sizeof klens[0]; i++) {
      for (int variant = 0; variant < 3; variant++) {
        tutil_rng_fill(&r, k, klens[i]);
        k[0] = (uint8_t)("mno"[variant]);
        const uint8_t *key = key_keep(k, klens[i]);
        uint32_t vlens[] = {vl[i % 6], imax - 1, imax, vl[(i + 3) % 6]};
        for (uint32_t s = 0; s < 4; s++) {
          struct gop *o = &g[n++];
          *o = (struct gop){.key = key, .klen = klens[i], .seq = 100 - s, .op = BT_OP_PUT,
                            .kind = BT_INLINE, .vlen = vlens[s] > imax ? imax : vlens[s],
                            .v = tutil_rng_next(&r)};
        }
        g[n++] = (struct gop){.key = key, .klen = klens[i], .seq = 50, .op = BT_OP_PUT,
                              .kind = BT_VREF, .vlen = UINT32_MAX, .v = UINT64_MAX};
        g[n++] = (struct gop){.key = key, .klen = klens[i], .seq = 49, .op = BT_OP_PUT,
                              .kind = BT_VREF, .vlen = 1, .v = 0};
        g[n++] = (struct gop){.key = key, .klen = klens[i], .seq = 0, .op = BT_OP_PUT,
                              .kind = BT_TOMB};
        g[n++] = (struct gop){.key = key, .klen = klens[i], .seq = UINT64_MAX, .op = BT_OP_PUT,
                              .kind = BT_INLINE, .vlen = 7, .v = 3};
      }
    }
    /* "a", "aa", ... up to BT_KEY_MAX bytes of 'a', then the same with a 0x00 appended: keys
       that are prefixes of each other (long separators, deep branches, prefix compression) */
    memset(k, 'a', BT_KEY_MAX);
    for (uint32_t l = 1; l <= BT_KEY_MAX; l += 1 + (uint32_t)below(&r, 3)) {
      g[n] = (struct gop){.key = key_keep(k, l), .klen = l, .seq = l};
      gen_val(&r, &g[n++], imax);
    }
    k[0] = 0;
    for (uint32_t l = 1; l <= 64; l++) {   /* "\0", "\0\0", ...: before everything */
      memset(k, 0, l);
      g[n] = (struct gop){.key = key_keep(k, l), .klen = l, .seq = 1};
      gen_val(&r, &g[n++], imax);
    }
    n = gops_sort(g, n);
    apply_ok(&e, &m, g, n);
    struct bt_check_stats cs = verify_full(e.p, bt_root(e.t), &m, &r, 100);
    print_message("  inline_max %u: %zu entries, height %llu, %llu leaves, %llu branches, prefix "
                  "saved %llu of %llu key bytes\n",
                  imax, m.n, (unsigned long long)cs.height, (unsigned long long)cs.leaves,
                  (unsigned long long)cs.branches, (unsigned long long)cs.prefix_saved,
                  (unsigned long long)cs.key_bytes);
    assert_true(cs.prefix_saved > 0);
    assert_true(cs.height >= 3);
    /* the threshold + 1 is refused, at the threshold accepted */
    val_fill(k, imax + 1, 0);
    struct bt_op o = {.op = BT_OP_PUT, .kind = BT_INLINE, .key = "zz", .klen = 2, .seq = 1,
                      .val = k, .vlen = imax + 1};
    expect_einval_run(&e, &m, &o, 1, "inline threshold + 1");
    o.vlen = imax;
    struct bt_apply_stats st;
    assert_int_equal(bt_apply(e.t, &o, 1, &st), JDB_OK);
    assert_int_equal(st.inserted, 1);
    g[0] = (struct gop){.key = key_keep("zz", 2), .klen = 2, .seq = 1, .op = BT_OP_PUT,
                        .kind = BT_INLINE, .vlen = imax, .v = 0};
    struct counts c;
    model_apply(&m, g, 1, &c);
    env_commit_ok(&e);
    env_reopen(&e, 16);
    cs = verify_full(e.p, bt_root(e.t), &m, &r, 100);
    check_accounting(e.p, &cs);
    /* erase everything, longest keys first in one run, the rest in another */
    n = 0;
    for (size_t i = 0; i < m.n; i++)
      if (m.e[i].klen > 200)
        g[n++] = (struct gop){.key = m.e[i].key, .klen = m.e[i].klen, .seq = m.e[i].seq,
                              .op = BT_OP_ERASE};
    env_reopen(&e, 2048);
    apply_ok(&e, &m, g, n);
    verify_full(e.p, bt_root(e.t), &m, &r, 50);
    n = 0;
    for (size_t i = 0; i < m.n; i++)
      g[n++] = (struct gop){.key = m.e[i].key, .klen = m.e[i].klen, .seq = m.e[i].seq,
                            .op = BT_OP_ERASE};
    apply_ok(&e, &m, g, n);
    assert_int_equal(bt_root(e.t), 0);
    env_commit_ok(&e);
    free(g);
    env_done(&e);
    model_free(&m);
  }
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Readers in fibers next to a writer */

struct fib_reader {
  struct pg *p;
  uint64_t root;
  const struct model *m;
  int walks;
  uint64_t bad, errs, steps;
  int done;
};

static void fib_read(void *arg)
{
  struct fib_reader *x = arg;
  for (int w = 0; w < x->walks; w++) {
    struct bt_cursor c;
    bt_cursor_init(&c, x->p, x->root);
    int fwd = w % 2 == 0;
    int rc = fwd ? bt_cursor_first(&c) : bt_cursor_last(&c);
    for (size_t i = 0; i < x->m->n; i++) {
      size_t idx = fwd ? i : x->m->n - 1 - i;
      if (rc != JDB_OK) {
        x->errs++;
        break;
      }
      x->bad += !ent_ok(bt_cursor_ent(&c), &x->m->e[idx], "fiber walk", idx);
      x->steps++;
      if (i % 97 == 0)
        coro_yield();
      rc = fwd ? bt_cursor_next(&c) : bt_cursor_prev(&c);
    }
    if (rc != JDB_NOTFOUND)
      x->errs++;
    bt_cursor_close(&c);
  }
  x->done = 1;
}

struct fib_writer {
  struct env *e;
  struct gop **runs;
  size_t *ns;
  int nruns;
  uint64_t hold_gen;
  int rc, done;
};

static void fib_write(void *arg)
{
  struct fib_writer *x = arg;
  for (int i = 0; i < x->nruns && !x->rc; i++) {
    struct bt_apply_stats st;
    x->rc = apply_gops(x->e, x->runs[i], x->ns[i], &st);
    if (!x->rc)
      x->rc = env_commit(x->e);
    pg_reclaim(x->e->p, x->hold_gen);
    coro_yield();
  }
  x->done = 1;
}

static void test_fibers(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xf1b);
  struct env e;
  env_init(&e, ctx_new(), "bt_fibers", 2048, 0);
  struct model m0 = {0}, m = {0};
  struct gop *g = gops_new(6000);
  size_t n = gen_puts(&r, g, 6000, -1, BT_INLINE_DEF);
  apply_ok(&e, &m0, g, n);
  env_commit_ok(&e);
  uint64_t root0 = bt_root(e.t), gen0 = pg_super(e.p)->generation;
  struct bt_check_stats cs = check_tree(e.p, root0, &m0);
  env_reopen(&e, 160);   /* cold and small: readers park on misses, pages get evicted */

  enum { RUNS = 12, READERS = 6 };
  struct gop *runs[RUNS];
  size_t ns[RUNS];
  model_copy(&m, &m0);
  for (int i = 0; i < RUNS; i++) {
    runs[i] = gops_new(60);
    ns[i] = gen_puts(&r, runs[i], 40, -1, BT_INLINE_DEF);
    for (size_t j = 0; j < 10 && m.n; j++) {   /* and erases */
      const struct ment *x = &m.e[below(&r, m.n)];
      runs[i][ns[i]++] = (struct gop){.key = x->key, .klen = x->klen, .seq = x->seq,
                                      .op = BT_OP_ERASE};
    }
    ns[i] = gops_sort(runs[i], ns[i]);
    struct counts c;
    model_apply(&m, runs[i], ns[i], &c);
  }
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  struct fib_reader rd[READERS];
  for (int i = 0; i < READERS; i++) {
    rd[i] = (struct fib_reader){.p = e.p, .root = root0, .m = &m0, .walks = 2};
    assert_int_equal(coro_spawn(s, fib_read, &rd[i], NULL), JDB_OK);
  }
  struct fib_writer wr = {.e = &e, .runs = runs, .ns = ns, .nruns = RUNS, .hold_gen = gen0};
  assert_int_equal(coro_spawn(s, fib_write, &wr, NULL), JDB_OK);
  assert_int_equal(fs_loop_run(e.ctx, s), JDB_OK);
  coro_sched_destroy(s);
  struct pg_stats ps;
  pg_stats_get(e.p, &ps);
  print_message("  %d readers x 2 walks of %zu entries (height %llu) next to %d applies+commits: "
                "%llu misses, %llu joined reads, %llu evictions\n",
                READERS, m0.n, (unsigned long long)cs.height, RUNS,
                (unsigned long long)ps.misses, (unsigned long long)ps.read_waits_joined,
                (unsigned long long)ps.evictions);
  assert_int_equal(wr.done, 1);
  if (wr.rc)
    print_message("writer: %s\n", jdb_strerror(wr.rc));
  assert_int_equal(wr.rc, JDB_OK);
  for (int i = 0; i < READERS; i++) {
    assert_int_equal(rd[i].done, 1);
    assert_int_equal(rd[i].bad, 0);
    assert_int_equal(rd[i].errs, 0);
    assert_int_equal(rd[i].steps, 2 * m0.n);
  }
  assert_true(ps.evictions > 0);
  assert_int_equal(ps.pinned, 0);
  verify_full(e.p, bt_root(e.t), &m, &r, 30);
  walk_fwd(e.p, root0, &m0, cs.height);   /* the readers' root is untouched */
  for (int i = 0; i < RUNS; i++)
    free(runs[i]);
  free(g);
  env_done(&e);
  model_free(&m0);
  model_free(&m);
  keys_free();
}

/* ------------------------------------------------------------------------------------------- */
/* Order */

static void test_cmp(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0xc3);
  uint8_t a[8], b[8];
  static const uint64_t seqs[] = {0, 1, 2, UINT64_MAX - 1, UINT64_MAX};
  for (int i = 0; i < 200000; i++) {
    uint32_t la = (uint32_t)below(&r, 5), lb = (uint32_t)below(&r, 5);
    for (uint32_t j = 0; j < 4; j++) {
      a[j] = (uint8_t)"\x00\x01\x7f\x80\xff"[below(&r, 5)];
      b[j] = below(&r, 3) ? a[j] : (uint8_t)"\x00\x01\x7f\x80\xff"[below(&r, 5)];
    }
    uint64_t sa = seqs[below(&r, 5)], sb = below(&r, 2) ? sa : seqs[below(&r, 5)];
    int want = tcmp(a, la, sa, b, lb, sb);
    int got = bt_cmp(a, la, sa, b, lb, sb);
    got = got < 0 ? -1 : got > 0;
    if (got != want)
      print_message("bt_cmp(%u bytes, seq %llu; %u bytes, seq %llu) = %d, want %d\n", la,
                    (unsigned long long)sa, lb, (unsigned long long)sb, got, want);
    assert_int_equal(got, want);
  }
  /* a key sorts before its extensions, whatever the seqs */
  assert_true(bt_cmp("ab", 2, 0, "ab\x00", 3, UINT64_MAX) < 0);
  assert_true(bt_cmp("", 0, 0, "\x00", 1, UINT64_MAX) < 0);
  assert_true(bt_cmp("b", 1, UINT64_MAX, "ab", 2, 0) > 0);
  /* newer versions first */
  assert_true(bt_cmp("k", 1, 9, "k", 1, 8) < 0);
  assert_true(bt_cmp("k", 1, UINT64_MAX, "k", 1, 0) < 0);
  assert_int_equal(bt_cmp("k", 1, 5, "k", 1, 5), 0);
}

/* ------------------------------------------------------------------------------------------- */
/* The page verifier */

/* Entries (leaf) or separators (branch) written byte by byte from the format in bt_int.h, then
   laid out behind a slot array; what does not fit is cut at the page end. */
struct raw {
  uint8_t b[4 * PAGE];
  uint32_t off[2400];
  uint32_t len, n;
};

static uint8_t *raw_len(uint8_t *p, uint32_t v)
{
  if (v < 128u) {
    *p++ = (uint8_t)v;
  } else {
    *p++ = (uint8_t)(0x80u | (v >> 8));
    *p++ = (uint8_t)v;
  }
  return p;
}

static void raw_leaf_ent(struct raw *w, const void *sfx, uint32_t sl, uint64_t seq, uint8_t kind,
                         uint32_t vlen, uint64_t vpos)
{
  assert_true(w->len + sl + 600 < sizeof w->b);
  w->off[w->n++] = w->len;
  uint8_t *p = raw_len(w->b + w->len, sl);
  if (sl)
    memcpy(p, sfx, sl);
  p += sl;
  le64_put(p, seq);
  p += 8;
  *p++ = kind;
  if (kind == BT_INLINE) {
    p = raw_len(p, vlen);
    val_fill(p, vlen, vpos);
    p += vlen;
  } else if (kind == BT_VREF) {
    le64_put(p, vpos);
    le32_put(p + 8, vlen);
    p += 12;
  }
  w->len = (uint32_t)(p - w->b);
}

static void raw_br_sep(struct raw *w, const void *key, uint32_t kl, uint64_t seq, uint64_t child,
                       int has_seq)
{
  w->off[w->n++] = w->len;
  uint8_t *p = raw_len(w->b + w->len, kl << 1 | (uint32_t)(has_seq != 0));
  memcpy(p, key, kl);
  p += kl;
  if (has_seq) {
    le64_put(p, seq);
    p += 8;
  }
  le64_put(p, child);
  p += 8;
  w->len = (uint32_t)(p - w->b);
}

/* Fillers: k entries (leaf: tombstones "a", i, "xx...") or separators (branch: "a", i, "xx...",
   no seq) taking exactly `bytes` together. An entry of suffix length l takes l + 10 bytes
   (l + 11 from 128 on), a separator of key length l takes l + 9 (l + 10 from 64 on). */
static int fill_size_ok(int leaf, uint32_t c)
{
  return leaf ? c >= 12 && c <= BT_KEY_MAX + 11 && c != 138 : c >= 11 && c <= BT_KEY_MAX + 10 &&
                                                                  c != 73;
}

static void raw_fill(struct raw *w, int leaf, uint32_t bytes, uint32_t k)
{
  uint8_t key[BT_KEY_MAX];
  for (uint32_t i = 0; i < k; i++) {
    uint32_t left = k - i, avg = bytes / left, c = 0;
    for (uint32_t d = 0; d < 6 && !c; d++) {   /* step around the one size no entry takes */
      uint32_t t = d % 2 ? avg - (d + 1) / 2 : avg + d / 2;
      if (fill_size_ok(leaf, t) && (left == 1 ? t == bytes
                                              : fill_size_ok(leaf, (bytes - t) / (left - 1))))
        c = t;
    }
    assert_true(c != 0);
    uint32_t l = leaf ? (c <= 137 ? c - 10 : c - 11) : (c <= 72 ? c - 9 : c - 10);
    key[0] = 'a';
    key[1] = (uint8_t)i;
    memset(key + 2, 'x', l - 2);
    if (leaf)
      raw_leaf_ent(w, key, l, 1, BT_TOMB, 0, 0);
    else
      raw_br_sep(w, key, l, 0, 2 + i, 0);
    bytes -= c;
  }
  assert_int_equal(bytes, 0);
}

/* Fillers such that the next entry starts at page offset at, with `tail` entries after the
   fillers in all (leaf: plen 0). */
static void raw_fill_to(struct raw *w, int leaf, uint32_t at, uint32_t tail)
{
  for (uint32_t nf = 1; nf < 20; nf++) {
    uint32_t base = (leaf ? BT_LEAF_BASE : BT_BR_BASE) + BT_LSLOT * (nf + tail);
    uint32_t bytes = at - base;
    if (bytes >= nf * 40u && bytes <= nf * 1000u) {
      raw_fill(w, leaf, bytes, nf);
      assert_int_equal(base + w->len, at);
      return;
    }
  }
  fail();
}

/* The key (leaf: suffix) of an encoded entry or separator. */
static const uint8_t *raw_key(const uint8_t *ent, int branch, uint32_t *kl)
{
  uint32_t v = ent[0] & 0x80u ? ((uint32_t)(ent[0] & 0x7fu) << 8 | ent[1]) : ent[0];
  *kl = branch ? v >> 1 : v;
  return ent + (ent[0] & 0x80u ? 2 : 1);
}

/* A slot: the entry's page offset, then the head of its suffix (leaf) or of its key's bytes
   after the first p (branch): 4 bytes, zero-padded, big-endian. */
static void raw_slot(uint8_t *slot, uint32_t off, const uint8_t *ent, int branch, uint32_t p)
{
  uint32_t kl;
  const uint8_t *k = raw_key(ent, branch, &kl);
  uint32_t h = kl >= p ? btt_head(k + p, kl - p) : 0;
  le16_put(slot, (uint16_t)off);
  slot[2] = (uint8_t)(h >> 24);
  slot[3] = (uint8_t)(h >> 16);
  slot[4] = (uint8_t)(h >> 8);
  slot[5] = (uint8_t)h;
}

static void raw_leaf_page(uint8_t *page, const struct raw *w, const void *prefix, uint32_t plen,
                          uint32_t count)
{
  memset(page, 0, PAGE);
  page[6] = LAYOUT_PAGE_LEAF;
  le16_put(page + 8, (uint16_t)count);
  le16_put(page + BT_HDR, (uint16_t)plen);
  if (BT_LEAF_BASE + plen > PAGE)
    return;
  memcpy(page + BT_LEAF_BASE, prefix, plen);
  uint32_t base = BT_LEAF_BASE + plen + BT_LSLOT * w->n;
  if (base > PAGE)
    return;
  for (uint32_t i = 0; i < w->n; i++)
    raw_slot(page + BT_LEAF_BASE + plen + BT_LSLOT * i, base + w->off[i], w->b + w->off[i], 0, 0);
  memcpy(page + base, w->b, w->len < PAGE - base ? w->len : PAGE - base);
}

/* A branch whose header aux (the separators' common prefix length, after which the heads are
   taken) is that length plus pdelta (PD_HUGE: BT_KEY_MAX + 1). */
#define PD_HUGE 1000000
static void raw_br_page(uint8_t *page, const struct raw *w, uint64_t child0, uint32_t count,
                        int pdelta)
{
  memset(page, 0, PAGE);
  page[6] = LAYOUT_PAGE_BRANCH;
  page[7] = 1;
  le16_put(page + 8, (uint16_t)count);
  le64_put(page + BT_HDR, child0);
  uint32_t base = BT_BR_BASE + BT_LSLOT * w->n;
  if (base > PAGE)
    return;
  uint32_t p = 0;
  if (w->n && w->off[w->n - 1] < w->len) {
    uint32_t l1, l2;
    const uint8_t *k1 = raw_key(w->b + w->off[0], 1, &l1);
    const uint8_t *k2 = raw_key(w->b + w->off[w->n - 1], 1, &l2);
    p = bt_lcp(k1, l1, k2, l2);
  }
  p = pdelta == PD_HUGE ? BT_KEY_MAX + 1 : (uint32_t)((int)p + pdelta);
  le32_put(page + 12, p);
  for (uint32_t i = 0; i < w->n; i++)
    raw_slot(page + BT_BR_BASE + BT_LSLOT * i, base + w->off[i], w->b + w->off[i], 1, p);
  memcpy(page + base, w->b, w->len < PAGE - base ? w->len : PAGE - base);
}

/* Verify a copy of exactly one page (so ASan sees any read past it). */
static int vfy(const uint8_t *page, uint8_t type)
{
  uint8_t *copy = malloc(PAGE);
  assert_non_null(copy);
  memcpy(copy, page, PAGE);
  struct layout_page_hdr h = {.type = type, .level = copy[7], .count = le16_get(copy + 8),
                              .pgno = 1234};
  int rc = bt_page_verify(NULL, copy, PAGE, &h);
  if (rc == JDB_OK) {
    int line = btt_check_page(copy, PAGE, type);
    if (line)
      print_message("accepted page fails the check at btt_pages.h:%d\n", line);
    assert_int_equal(line, 0);
  }
  free(copy);
  return rc;
}

static void expect_corrupt(const uint8_t *page, uint8_t type, const char *what)
{
  uint64_t c0 = err_corrupt_count();
  int rc = vfy(page, type);
  if (rc != JDB_ECORRUPT)
    print_message("%s: %s, want ECORRUPT\n", what, jdb_strerror(rc));
  assert_int_equal(rc, JDB_ECORRUPT);
  assert_true(err_corrupt_count() > c0);
}

static void expect_valid(const uint8_t *page, uint8_t type, const char *what)
{
  int rc = vfy(page, type);
  if (rc != JDB_OK)
    print_message("%s: %s, want OK\n", what, jdb_strerror(rc));
  assert_int_equal(rc, JDB_OK);
}

/* Crafted pages: up to three entries (leaf) or separators (branch) written byte by byte, behind
   fillers when `at` says where the first of them must start, then one edit; the verifier must
   accept the page (ok) or reject it. Every rejection path of the verifier has a case. */
enum {
  ED_NONE, ED_COUNT_UP, ED_COUNT_0, ED_COUNT_1, ED_COUNT_HUGE, ED_SLOT1_UP, ED_SLOT0_DOWN,
  ED_HEAD1, ED_HEAD0_PAD, ED_HEAD2, ED_PREFIX_FFFF, ED_CHILD0_0, ED_CHILD0_1, ED_SEP_AT_END,
  ED_AUX_UP, ED_AUX_DOWN, ED_AUX_HUGE
};
struct craft_ent {
  const void *key;   /* leaf: suffix; branch: separator key */
  uint32_t klen;
  uint64_t seq;
  uint8_t kind;      /* leaf: the kind byte; branch: 1 when the seq is written */
  uint32_t vlen;
  uint64_t v;        /* leaf: inline tag or reference position; branch: child */
};
struct craft {
  const char *what;
  int branch, ok, edit;
  uint32_t at;
  const char *prefix;
  uint32_t plen, n;
  struct craft_ent e[3];
};

static uint8_t g_kk[BT_KEY_MAX + 8], g_bx[300], g_zz[300];   /* 'k'..., 'b' 'x'..., 'z'... */

#define T1(s) {(s), sizeof(s) - 1, 5, BT_TOMB, 0, 0}
#define SEP(s, c) {(s), sizeof(s) - 1, UINT64_MAX, 0, 0, (c)}
static const struct craft g_crafts[] = {
  {"valid leaf", 0, 1, ED_NONE, 0, "user:", 5, 3,
   {{"a", 1, 7, BT_INLINE, 5, 99}, {"b", 1, UINT64_MAX, BT_VREF, 123456, 1ull << 50},
    {"c\xff", 2, 0, BT_TOMB, 0, 0}}},
  {"valid leaf, empty suffix", 0, 1, ED_NONE, 0, "ab", 2, 2,
   {{"", 0, 5, BT_TOMB, 0, 0}, {g_kk, 300, 5, BT_INLINE, 200, 1}}},
  {"valid single entry", 0, 1, ED_NONE, 0, "only", 4, 1, {{"", 0, 5, BT_TOMB, 0, 0}}},
  {"leaf filled to the last byte", 0, 1, ED_NONE, BT_PAGE - 12, "", 0, 1, {T1("b0")}},
  {"prefix longer than a key", 0, 0, ED_NONE, 0, (const char *)g_kk, BT_KEY_MAX + 1, 1,
   {T1("")}},
  {"prefix past the page", 0, 0, ED_PREFIX_FFFF, 0, (const char *)g_kk, BT_KEY_MAX + 1, 1,
   {T1("")}},
  {"slot array past the page", 0, 0, ED_COUNT_HUGE, 0, "", 0, 1, {T1("a")}},
  {"two entries", 0, 1, ED_NONE, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"slot 1 off by one", 0, 0, ED_SLOT1_UP, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"slot 1 head wrong", 0, 0, ED_HEAD1, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"slot 0 head padding wrong", 0, 0, ED_HEAD0_PAD, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"slot 0 into the slot array", 0, 0, ED_SLOT0_DOWN, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"count one more than the entries", 0, 0, ED_COUNT_UP, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"empty leaf", 0, 0, ED_COUNT_0, 0, "", 0, 2, {T1("a"), T1("b")}},
  {"key of length 0", 0, 0, ED_NONE, 0, "", 0, 1, {T1("")}},
  {"key of BT_KEY_MAX", 0, 1, ED_NONE, 0, (const char *)g_kk, 100, 2,
   {T1(""), {g_kk, BT_KEY_MAX - 100, 5, BT_TOMB, 0, 0}}},
  {"key longer than BT_KEY_MAX", 0, 0, ED_NONE, 0, (const char *)g_kk, 100, 2,
   {T1(""), {g_kk, BT_KEY_MAX - 99, 5, BT_TOMB, 0, 0}}},
  {"key past the page end", 0, 0, ED_NONE, BT_PAGE - 20, "", 0, 1,
   {{g_bx, 40, 1, BT_TOMB, 0, 0}}},
  {"seq past the page end", 0, 0, ED_NONE, BT_PAGE - 8, "", 0, 1, {T1("b0")}},
  {"2-byte key length cut at the page end", 0, 0, ED_NONE, BT_PAGE - 1, "", 0, 1,
   {{g_bx, 130, 1, BT_TOMB, 0, 0}}},
  {"inline value longer than BT_INLINE_MAX", 0, 0, ED_NONE, 0, "a", 1, 1,
   {{"", 0, 5, BT_INLINE, BT_INLINE_MAX + 1, 3}}},
  {"inline value of BT_INLINE_MAX", 0, 1, ED_NONE, 0, "a", 1, 1,
   {{"", 0, 5, BT_INLINE, BT_INLINE_MAX, 3}}},
  {"inline value past the page end", 0, 0, ED_NONE, BT_PAGE - 50, "", 0, 1,
   {{"b0", 2, 1, BT_INLINE, 100, 1}}},
  {"inline length missing at the page end", 0, 0, ED_NONE, BT_PAGE - 12, "", 0, 1,
   {{"b0", 2, 1, BT_INLINE, 0, 1}}},
  {"2-byte inline length cut at the page end", 0, 0, ED_NONE, BT_PAGE - 13, "", 0, 1,
   {{"b0", 2, 1, BT_INLINE, 300, 1}}},
  {"value reference past the page end", 0, 0, ED_NONE, BT_PAGE - 20, "", 0, 1,
   {{"b0", 2, 1, BT_VREF, 10, 1}}},
  {"value reference of length 0", 0, 0, ED_NONE, 0, "a", 1, 1, {{"", 0, 5, BT_VREF, 0, 4096}}},
  {"kind 0", 0, 0, ED_NONE, 0, "a", 1, 1, {{"", 0, 5, 0, 0, 0}}},
  {"kind 4", 0, 0, ED_NONE, 0, "a", 1, 1, {{"", 0, 5, 4, 0, 0}}},
  {"kind 0x80", 0, 0, ED_NONE, 0, "a", 1, 1, {{"", 0, 5, 0x80, 0, 0}}},
  {"kind 0xff", 0, 0, ED_NONE, 0, "a", 1, 1, {{"", 0, 5, 0xff, 0, 0}}},
  {"keys descending", 0, 0, ED_NONE, 0, "", 0, 2, {T1("b"), T1("a")}},
  {"same key and seq twice", 0, 0, ED_NONE, 0, "", 0, 3,
   {T1("a"), {"a", 1, 5, BT_INLINE, 1, 0}, T1("b")}},
  {"seqs ascending", 0, 0, ED_NONE, 0, "", 0, 3, {T1("a"), {"a", 1, 6, BT_TOMB, 0, 0}, T1("b")}},
  {"extension before its key", 0, 0, ED_NONE, 0, "", 0, 2, {T1("ab"), T1("a")}},
  {"single entry with a suffix", 0, 0, ED_NONE, 0, "ab", 2, 1, {T1("c")}},
  {"prefix shorter than the common prefix", 0, 0, ED_NONE, 0, "a", 1, 2, {T1("bx"), T1("by")}},

  {"valid branch", 1, 1, ED_NONE, 0, NULL, 0, 3,
   {SEP("m", 40), {"m", 1, 5, 1, 0, 41}, {g_zz, 200, UINT64_MAX, 0, 0, 42}}},
  {"branch with one child", 1, 0, ED_COUNT_1, 0, NULL, 0, 1, {SEP("m", 40)}},
  {"branch with no child", 1, 0, ED_COUNT_0, 0, NULL, 0, 1, {SEP("m", 40)}},
  {"branch slot array past the page", 1, 0, ED_COUNT_HUGE, 0, NULL, 0, 1, {SEP("m", 40)}},
  {"branch count one more than its separators", 1, 0, ED_COUNT_UP, 0, NULL, 0, 1,
   {SEP("m", 40)}},
  {"child 0 is page 0", 1, 0, ED_CHILD0_0, 0, NULL, 0, 1, {SEP("m", 40)}},
  {"child 0 is page 1", 1, 0, ED_CHILD0_1, 0, NULL, 0, 1, {SEP("m", 40)}},
  {"branch slot off by one", 1, 0, ED_SLOT1_UP, 0, NULL, 0, 2, {SEP("m", 40), SEP("t", 41)}},
  {"branch slot head wrong", 1, 0, ED_HEAD2, 0, NULL, 0, 3,
   {SEP("m", 40), SEP("t", 41), {g_zz, 200, UINT64_MAX, 0, 0, 42}}},
  {"separator of length 0", 1, 0, ED_NONE, 0, NULL, 0, 1, {SEP("", 40)}},
  {"separator longer than BT_KEY_MAX", 1, 0, ED_NONE, 0, NULL, 0, 1,
   {{g_kk, BT_KEY_MAX + 1, UINT64_MAX, 0, 0, 40}}},
  {"separator of BT_KEY_MAX", 1, 1, ED_NONE, 0, NULL, 0, 1,
   {{g_kk, BT_KEY_MAX, UINT64_MAX, 0, 0, 40}}},
  {"separator with an explicit UINT64_MAX seq", 1, 0, ED_NONE, 0, NULL, 0, 1,
   {{"m", 1, UINT64_MAX, 1, 0, 40}}},
  {"separator child page 0", 1, 0, ED_NONE, 0, NULL, 0, 1, {SEP("m", 0)}},
  {"separator child page 1", 1, 0, ED_NONE, 0, NULL, 0, 1, {SEP("m", 1)}},
  {"separators descending", 1, 0, ED_NONE, 0, NULL, 0, 2, {SEP("t", 40), SEP("m", 41)}},
  {"separator twice", 1, 0, ED_NONE, 0, NULL, 0, 2, {{"m", 1, 5, 1, 0, 40}, {"m", 1, 5, 1, 0, 41}}},
  {"separator without seq after one with", 1, 0, ED_NONE, 0, NULL, 0, 2,
   {{"m", 1, 5, 1, 0, 40}, SEP("m", 41)}},   /* (m, absent) is before every version of m */
  {"separator past the page end", 1, 0, ED_NONE, BT_PAGE - 10, NULL, 0, 1,
   {{g_bx, 20, UINT64_MAX, 0, 0, 40}}},
  {"branch filled to the last byte", 1, 1, ED_NONE, BT_PAGE, NULL, 0, 0, {{0}}},
  {"separator length missing at the page end", 1, 0, ED_SEP_AT_END, BT_PAGE, NULL, 0, 0,
   {{0}}},
  {"branch with a common prefix", 1, 1, ED_NONE, 0, NULL, 0, 3,
   {SEP("mxa", 40), SEP("mxb", 41), SEP("mxbc", 42)}},
  {"branch prefix one short of the common prefix", 1, 0, ED_AUX_DOWN, 0, NULL, 0, 2,
   {SEP("mxa", 40), SEP("mxb", 41)}},
  {"branch prefix one past the common prefix", 1, 0, ED_AUX_UP, 0, NULL, 0, 2,
   {SEP("mxa", 40), SEP("mxb", 41)}},
  {"branch prefix longer than a separator", 1, 0, ED_AUX_UP, 0, NULL, 0, 1, {SEP("m", 40)}},
  {"branch prefix past BT_KEY_MAX", 1, 0, ED_AUX_HUGE, 0, NULL, 0, 1, {SEP("m", 40)}},
};
#undef T1
#undef SEP

static void craft_build(const struct craft *c, uint8_t *page, struct raw *w)
{
  memset(w, 0, sizeof *w);
  if (c->at)
    raw_fill_to(w, !c->branch, c->at, c->edit == ED_SEP_AT_END ? 1 : c->n);
  for (uint32_t i = 0; i < c->n; i++) {
    const struct craft_ent *x = &c->e[i];
    if (c->branch)
      raw_br_sep(w, x->key, x->klen, x->seq, x->v, x->kind);
    else
      raw_leaf_ent(w, x->key, x->klen, x->seq, x->kind, x->vlen, x->v);
  }
  if (c->edit == ED_SEP_AT_END)
    w->off[w->n++] = w->len;   /* one more separator, starting at the page end */
  uint32_t count = c->branch ? w->n + 1 : w->n;
  switch (c->edit) {
  case ED_COUNT_UP: count++; break;
  case ED_COUNT_0: count = 0; break;
  case ED_COUNT_1: count = 1; break;
  case ED_COUNT_HUGE: count = 2100; break;
  default: break;
  }
  if (c->branch)
    raw_br_page(page, w, c->edit == ED_CHILD0_0 ? 0 : c->edit == ED_CHILD0_1 ? 1 : 39, count,
                c->edit == ED_AUX_UP     ? 1
                : c->edit == ED_AUX_DOWN ? -1
                : c->edit == ED_AUX_HUGE ? PD_HUGE
                                         : 0);
  else
    raw_leaf_page(page, w, c->prefix, c->plen, count);
  uint8_t *slot = page + (c->branch ? BT_BR_BASE : BT_LEAF_BASE + c->plen);
  switch (c->edit) {
  case ED_PREFIX_FFFF: le16_put(page + BT_HDR, 0xffff); break;
  case ED_SLOT1_UP: le16_put(slot + BT_LSLOT, (uint16_t)(le16_get(slot + BT_LSLOT) + 1)); break;
  case ED_SLOT0_DOWN: le16_put(slot, (uint16_t)(le16_get(slot) - 1)); break;
  case ED_HEAD1: slot[BT_LSLOT + 2] ^= 0x01; break;
  case ED_HEAD0_PAD: slot[5] ^= 0x01; break;   /* the zero padding of a 1-byte suffix's head */
  case ED_HEAD2: slot[2 * BT_LSLOT + 5] ^= 0x80; break;
  default: break;
  }
}

static void test_verify_crafted(void **state)
{
  (void)state;
  static struct raw w;
  static uint8_t page[PAGE], enc[PAGE];
  memset(g_kk, 'k', sizeof g_kk);
  memset(g_zz, 'z', sizeof g_zz);
  memset(g_bx, 'x', sizeof g_bx);
  g_bx[0] = 'b';
  for (size_t i = 0; i < sizeof g_crafts / sizeof g_crafts[0]; i++) {
    const struct craft *c = &g_crafts[i];
    craft_build(c, page, &w);
    uint8_t type = c->branch ? LAYOUT_PAGE_BRANCH : LAYOUT_PAGE_LEAF;
    if (c->ok)
      expect_valid(page, type, c->what);
    else
      expect_corrupt(page, type, c->what);
  }

  /* The encoders write the bytes of the format text. */
  craft_build(&g_crafts[0], page, &w);
  uint8_t v5[5];
  val_fill(v5, 5, 99);
  struct bt_item li[3] = {
    {.key = (const uint8_t *)"user:a", .klen = 6, .seq = 7, .kind = BT_INLINE, .vlen = 5,
     .val = v5},
    {.key = (const uint8_t *)"user:b", .klen = 6, .seq = UINT64_MAX, .kind = BT_VREF,
     .vlen = 123456, .v64 = 1ull << 50},
    {.key = (const uint8_t *)"user:c\xff", .klen = 7, .seq = 0, .kind = BT_TOMB}};
  memset(enc, 0, PAGE);
  bt_leaf_encode(enc, li, 3);
  assert_int_equal(bt_leaf_body_size(li, 3), w.len + BT_LSLOT * 3 + 2 + 5);
  assert_memory_equal(enc + BT_HDR, page + BT_HDR, PAGE - BT_HDR);
  const struct craft *vb = NULL;
  for (size_t i = 0; i < sizeof g_crafts / sizeof g_crafts[0]; i++)
    if (strcmp(g_crafts[i].what, "valid branch") == 0)
      vb = &g_crafts[i];
  assert_non_null(vb);
  craft_build(vb, page, &w);
  struct bt_item bi[4] = {{.v64 = 39},
                          {.key = (const uint8_t *)"m", .klen = 1, .seq = UINT64_MAX, .v64 = 40},
                          {.key = (const uint8_t *)"m", .klen = 1, .seq = 5, .v64 = 41},
                          {.key = g_zz, .klen = 200, .seq = UINT64_MAX, .v64 = 42}};
  memset(enc, 0, PAGE);
  bt_br_encode(enc, bi, 4);
  assert_int_equal(bt_br_body_size(bi, 4), 8 + BT_LSLOT * 3 + w.len);
  assert_memory_equal(enc + BT_HDR, page + BT_HDR, PAGE - BT_HDR);

  /* Pages of other types are not the tree's business. */
  memset(page, 0xa5, PAGE);
  static const uint8_t others[] = {LAYOUT_PAGE_SUPER, LAYOUT_PAGE_FREELIST, LAYOUT_PAGE_OVERFLOW};
  for (size_t i = 0; i < sizeof others; i++)
    assert_int_equal(vfy(page, others[i]), JDB_OK);
}

/* Random pages and mutated valid pages: JDB_OK or JDB_ECORRUPT, never a crash or a read past the
   page, and whatever is accepted decodes cleanly. */
static void test_verify_random(void **state)
{
  (void)state;
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x7a9e);
  uint8_t *page = malloc(PAGE), *mut = malloc(PAGE);
  struct btt_items *b = malloc(sizeof *b);
  assert_non_null(page);
  assert_non_null(mut);
  assert_non_null(b);
  uint64_t acc[2] = {0, 0}, rej[2] = {0, 0};
  int iters = scaled(20000);
  for (int i = 0; i < iters; i++) {
    tutil_rng_fill(&r, page, PAGE);
    uint8_t type = below(&r, 2) ? LAYOUT_PAGE_LEAF : LAYOUT_PAGE_BRANCH;
    if (below(&r, 2))
      le16_put(page + 8, (uint16_t)below(&r, 8));
    if (below(&r, 2))
      le16_put(page + BT_HDR, (uint16_t)below(&r, 16));
    int rc = vfy(page, type);
    assert_true(rc == JDB_OK || rc == JDB_ECORRUPT);
  }
  for (int i = 0; i < iters; i++) {
    struct btt_src src = {.x = tutil_rng_next(&r)};
    uint8_t type = below(&r, 2) ? LAYOUT_PAGE_LEAF : LAYOUT_PAGE_BRANCH;
    if (type == LAYOUT_PAGE_LEAF)
      btt_gen_leaf(&src, b, page);
    else
      btt_gen_branch(&src, b, page);
    expect_valid(page, type, "generated page");
    int line = btt_check_items(page, type, b);
    if (line)
      print_message("generated page decodes wrong at btt_pages.h:%d\n", line);
    assert_int_equal(line, 0);
    for (int j = 0; j < 8; j++) {
      memcpy(mut, page, PAGE);
      int edits = 1 + (int)below(&r, 3);
      for (int k = 0; k < edits; k++) {
        uint64_t u = below(&r, 9);
        size_t off = below(&r, 3) ? below(&r, 700) : below(&r, PAGE);
        if (off < 8)
          off = 8 + off % 2;   /* bytes 0..7 (checksum, magic, type, level) are not the body's */
        switch (u) {
        case 0: mut[off] = (uint8_t)tutil_rng_next(&r); break;
        case 1: mut[off] ^= (uint8_t)(1u << below(&r, 8)); break;
        case 2: le16_put(mut + 8, (uint16_t)(le16_get(mut + 8) + below(&r, 3) - 1)); break;
        case 3: le16_put(mut + BT_HDR, (uint16_t)(le16_get(mut + BT_HDR) + below(&r, 3) - 1)); break;
        case 4:
        case 5: {   /* a slot moved a little */
          uint32_t n = le16_get(page + 8);
          size_t so = type == LAYOUT_PAGE_LEAF ? BT_LEAF_BASE + le16_get(page + BT_HDR)
                                               : BT_BR_BASE;
          size_t s = so + BT_LSLOT * below(&r, n > 1 ? n - 1 : 1);
          if (s + 2 <= PAGE)
            le16_put(mut + s, (uint16_t)(le16_get(mut + s) + below(&r, 7) - 3));
          break;
        }
        case 6: mut[off] |= 0x80; break;   /* a length field becomes 2 bytes */
        case 7: {   /* a slot head changed */
          uint32_t n = le16_get(page + 8);
          size_t so = type == LAYOUT_PAGE_LEAF ? BT_LEAF_BASE + le16_get(page + BT_HDR)
                                               : BT_BR_BASE;
          size_t s = so + BT_LSLOT * below(&r, n > 1 ? n - 1 : 1) + 2 + below(&r, 4);
          if (s < PAGE)
            mut[s] ^= (uint8_t)(1u << below(&r, 8));
          break;
        }
        default: mut[off] = 0; break;
        }
      }
      int rc = vfy(mut, type);
      assert_true(rc == JDB_OK || rc == JDB_ECORRUPT);
      int ti = type == LAYOUT_PAGE_LEAF;
      acc[ti] += rc == JDB_OK && memcmp(mut, page, PAGE) != 0;
      rej[ti] += rc == JDB_ECORRUPT;
    }
  }
  print_message("  mutated leaves: %llu accepted, %llu rejected; branches: %llu / %llu\n",
                (unsigned long long)acc[1], (unsigned long long)rej[1],
                (unsigned long long)acc[0], (unsigned long long)rej[0]);
  assert_true(acc[0] > 0 && acc[1] > 0 && rej[0] > 0 && rej[1] > 0);
  free(page);
  free(mut);
  free(b);
}

/* ------------------------------------------------------------------------------------------- */

/* ------------------------------------------------------------------------------------------- */
/* Version pruning (bt_opts.prune_older) */

struct prune_seen {
  uint64_t n;
  uint8_t *hit;      /* per key index: reported (vpos = index + 1) */
  size_t nkeys;
  uint64_t bad;
  uint64_t why[4];
};

static void prune_cb(void *ud, uint64_t vpos, uint32_t vlen, int why)
{
  struct prune_seen *p = ud;
  p->n++;
  p->why[why & 3]++;
  if (why == BT_GONE_REPLACED || why == BT_GONE_ERASED)
    return;
  if (why != BT_GONE_PRUNED || vpos == 0 || vpos > p->nkeys || vlen != 100 || p->hit[vpos - 1])
    p->bad++;
  else
    p->hit[vpos - 1] = 1;
}

/* Versions of key i in the tree, newest first (seqs into out, up to 4). */
static int prune_versions(struct pg *p, uint64_t root, const char *k, uint64_t *out,
                          uint8_t *kinds)
{
  struct bt_cursor c;
  bt_cursor_init(&c, p, root);
  int n = 0;
  int rc = bt_cursor_seek(&c, k, (uint32_t)strlen(k), UINT64_MAX);
  while (rc == JDB_OK) {
    const struct bt_ent *e = bt_cursor_ent(&c);
    if (e->klen != strlen(k) || memcmp(e->key, k, e->klen) != 0)
      break;
    if (n < 4) {
      out[n] = e->seq;
      kinds[n] = e->kind;
    }
    n++;
    rc = bt_cursor_next(&c);
  }
  bt_cursor_close(&c);
  return n;
}

static void test_prune(void **state)
{
  (void)state;
  enum { NK = 20000 };
  struct prune_seen seen = {.nkeys = NK};
  seen.hit = calloc(NK, 1);
  assert_non_null(seen.hit);
  struct env e;
  memset(&e, 0, sizeof e);
  e.bo = (struct bt_opts){.prune_older = 1, .pruned = prune_cb, .pruned_ud = &seen};
  e.ctx = ctx_new();
  e.dir = tutil_tmpdir("bt_prune");
  tutil_path(e.path, sizeof e.path, e.dir, "pages");
  e.frames = 2048;
  env_open(&e);
  static char keys[NK][8];
  struct bt_op *ops = calloc(2 * NK, sizeof *ops);
  assert_non_null(ops);
  /* version 1 of every key: even keys out of line (vpos = index + 1), odd keys inline */
  for (size_t i = 0; i < NK; i++) {
    snprintf(keys[i], sizeof keys[i], "k%06zu", i);
    ops[i] = (struct bt_op){.op = BT_OP_PUT, .key = keys[i], .klen = 7, .seq = 1,
                            .kind = i % 2 ? BT_INLINE : BT_VREF, .val = "v1",
                            .vlen = i % 2 ? 2 : 100, .vpos = i + 1};
  }
  struct bt_apply_stats st;
  assert_int_equal(bt_apply(e.t, ops, NK, &st), JDB_OK);
  assert_int_equal(st.pruned, 0);
  env_commit_ok(&e);
  /* run 2, dense: every 3rd key gets version 2, every 5th a tombstone at 3 (both: 3 then 2) */
  size_t n = 0;
  for (size_t i = 0; i < NK; i++) {
    if (i % 5 == 0)
      ops[n++] = (struct bt_op){.op = BT_OP_PUT, .key = keys[i], .klen = 7, .seq = 3,
                                .kind = BT_TOMB};
    if (i % 3 == 0)
      ops[n++] = (struct bt_op){.op = BT_OP_PUT, .key = keys[i], .klen = 7, .seq = 2,
                                .kind = BT_INLINE, .val = "v2", .vlen = 2};
  }
  assert_int_equal(bt_apply(e.t, ops, n, &st), JDB_OK);
  uint64_t pruned2 = st.pruned;
  env_commit_ok(&e);
  /* run 3, sparse (the leaf splice path): every 97th key gets version 10 */
  n = 0;
  for (size_t i = 0; i < NK; i += 97)
    ops[n++] = (struct bt_op){.op = BT_OP_PUT, .key = keys[i], .klen = 7, .seq = 10,
                              .kind = BT_INLINE, .val = "v10", .vlen = 3};
  assert_int_equal(bt_apply(e.t, ops, n, &st), JDB_OK);
  uint64_t pruned3 = st.pruned;
  env_commit_ok(&e);
  uint64_t root = bt_root(e.t);
  assert_int_equal(bt_check(e.p, root, 1, NULL), JDB_OK);
  /* Every key keeps the versions no newer put covers... */
  uint64_t stale = 0, gone = 0;
  for (size_t i = 0; i < NK; i++) {
    uint64_t seqs[4];
    uint8_t kinds[4];
    int nv = prune_versions(e.p, root, keys[i], seqs, kinds);
    assert_true(nv >= 1);
    uint64_t newest = i % 97 == 0 ? 10 : i % 5 == 0 ? 3 : i % 3 == 0 ? 2 : 1;
    assert_int_equal(seqs[0], newest);
    /* ...and the version 2 written by the same run as the tombstone at 3 stays (it is no
       older version of the tree's, it is an op) unless a later run pruned it */
    if (i % 5 == 0 && i % 3 == 0 && i % 97 != 0) {
      assert_true(nv >= 2);
      assert_int_equal(seqs[1], 2);
    }
    int has1 = 0;
    for (int v = 0; v < nv && v < 4; v++)
      has1 |= seqs[v] == 1;
    if (newest > 1) {
      stale += has1;            /* an older version in a neighbouring leaf: allowed, rare */
      gone += !has1;
    }
    /* an out-of-line version 1 is reported exactly when it left the tree */
    if (i % 2 == 0 && newest > 1)
      assert_int_equal(seen.hit[i], !has1);
    if (i % 2 == 0 && newest == 1)
      assert_int_equal(seen.hit[i], 0);
  }
  assert_int_equal(seen.bad, 0);
  assert_true(gone > 0 && stale * 100 <= gone);   /* at most 1% left in neighbouring leaves */
  assert_true(pruned2 > 0 && pruned3 > 0);
  print_message("  pruned %llu + %llu versions, %llu reported out of line, %llu left in a "
                "neighbouring leaf\n", (unsigned long long)pruned2, (unsigned long long)pruned3,
                (unsigned long long)seen.n, (unsigned long long)stale);
  /* a put of the same key and seq with another value, and an erase, report the value too */
  size_t k2 = 2;   /* even (out of line), untouched by runs 2 and 3, as is k2 + 2 */
  assert_int_equal(seen.hit[k2], 0);
  ops[0] = (struct bt_op){.op = BT_OP_PUT, .key = keys[k2], .klen = 7, .seq = 1,
                          .kind = BT_VREF, .vlen = 100, .vpos = 777777};
  assert_int_equal(bt_apply(e.t, ops, 1, &st), JDB_OK);
  assert_int_equal(st.replaced, 1);
  assert_int_equal(seen.why[BT_GONE_REPLACED], 1);
  ops[0] = (struct bt_op){.op = BT_OP_ERASE, .key = keys[k2], .klen = 7, .seq = 1};
  assert_int_equal(bt_apply(e.t, ops, 1, &st), JDB_OK);
  assert_int_equal(seen.why[BT_GONE_ERASED], 1);
  /* the same value put again is no change of reference: not reported */
  ops[0] = (struct bt_op){.op = BT_OP_PUT, .key = keys[k2 + 2], .klen = 7, .seq = 1,
                          .kind = BT_VREF, .vlen = 100, .vpos = k2 + 3};
  assert_int_equal(bt_apply(e.t, ops, 1, &st), JDB_OK);
  assert_int_equal(seen.why[BT_GONE_REPLACED], 1);
  env_commit_ok(&e);
  root = bt_root(e.t);
  /* without pruning, the same put keeps the old version */
  struct bt *plain;
  assert_int_equal(bt_open(e.p, NULL, root, &plain), JDB_OK);
  ops[0] = (struct bt_op){.op = BT_OP_PUT, .key = keys[1], .klen = 7, .seq = 50,
                          .kind = BT_INLINE, .val = "x", .vlen = 1};
  assert_int_equal(bt_apply(plain, ops, 1, &st), JDB_OK);
  uint64_t seqs[4];
  uint8_t kinds[4];
  assert_int_equal(prune_versions(e.p, bt_root(plain), keys[1], seqs, kinds), 2);
  bt_close(plain);
  free(ops);
  free(seen.hit);
  env_done(&e);
}

int main(int argc, char **argv)
{
  tutil_init();
  g_backend = tutil_backend_arg(argc, argv, g_backend);
  const char *sc = getenv("JDB_TEST_SCALE");
  g_scale = sc && *sc ? strtod(sc, NULL) : T_ASAN ? 0.5 : 1.0;
  if (!(g_scale > 0))
    g_scale = 1.0;
  for (int i = 0; i < 3; i++)
    val_fill(g_longpre[i], BT_KEY_MAX, 1000u + (unsigned)i);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cmp),
    cmocka_unit_test(test_verify_crafted),
    cmocka_unit_test(test_verify_random),
    cmocka_unit_test(test_empty_tree),
    cmocka_unit_test(test_bad_args),
    cmocka_unit_test(test_key_value_sizes),
    cmocka_unit_test(test_get_versions),
    cmocka_unit_test(test_cursor),
    cmocka_unit_test(test_one_leaf_run),
    cmocka_unit_test(test_grow_shrink),
    cmocka_unit_test(test_erase_patterns),
    cmocka_unit_test(test_unsplittable),
    cmocka_unit_test(test_model_random),
    cmocka_unit_test(test_fibers),
    cmocka_unit_test(test_crash_commit),
    cmocka_unit_test(test_damaged_pages),
    cmocka_unit_test(test_prune),
  };
  if (getenv("T_FILTER"))
    cmocka_set_test_filter(getenv("T_FILTER"));
  char name[64];
  snprintf(name, sizeof name, "btree_%s", g_backend);
  return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
