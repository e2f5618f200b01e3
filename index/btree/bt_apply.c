/*
 * bt_apply.c - the tree's writer: apply a sorted run of puts and erases copy-on-write.
 *
 * One recursive pass from the root. A node whose key range receives ops is read once, its
 * entries (leaf) or children (branch) are merged with what the ops and the children's rewrites
 * produced, and the result is packed into as many new pages as it needs ("items" of the level
 * above: (lower bound, page)). A node no op reaches is not read at all; a node whose ops change
 * nothing (erases of absent entries) keeps its page. So each affected page is read and written
 * once per run, however many ops land in it.
 *
 * Packing: the fewest pages that hold the items, filled evenly; when the run only appends past
 * the right end of the tree (time-series ingestion, sorted loads), pages are filled whole instead
 * and only the last two are balanced. A page under a quarter full (BT_FILL_MIN) that this run
 * wrote is merged with a sibling (or balanced against it when both do not fit one page) by the
 * parent before the parent is packed; the root is exempt. The tree grows a level when the root's
 * rewrite needs more than one page and shrinks while the root is a branch with one child.
 *
 * Leaf separators are the shortest: between a left page ending with (k1, s1) and a right page
 * starting with (k2, s2), the separator is the shortest prefix of k2 that sorts after k1 (its
 * seq "absent", i.e. before every version of that key), or (k2, s2) itself when k1 == k2 (the
 * versions of one key continue on the next page). Branch splits push the first separator of each
 * new page up unchanged.
 *
 * Failure leaves the tree and pg as they were: pages are freed (pg_free) only after the whole run
 * succeeded, and the pages the run allocated are handed back if it did not.
 */
#include "bt_int.h"

#include "err.h"
#include "log.h"
#include "mem.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------------------------- */
/* Scratch memory: item vectors and byte pools, kept in the handle across runs */

struct bt_vec {
  struct bt_item *v;
  size_t n, cap;
};

struct bt_chunk {
  struct bt_chunk *next;
  size_t size;
  uint8_t data[];
};
struct bt_pool {
  struct bt_chunk *head;   /* head is the chunk being carved */
  size_t used;
};

struct bt_fresh {
  uint64_t pgno;   /* 0: empty */
  uint32_t size;   /* body bytes of a page this run wrote, or BT_SEEN / BT_GONE */
  uint32_t aidx;   /* its index in allocd */
};
#define BT_SEEN UINT32_MAX         /* a page of the old state this run has read */
#define BT_GONE (UINT32_MAX - 1u)  /* a page this run wrote and already dropped */

struct bt_u64s {
  uint64_t *v;
  size_t n, cap;
};

struct bt {
  struct pg *pg;
  uint32_t inline_max;
  uint64_t root;
  /* apply scratch */
  struct bt_vec lv[BT_HEIGHT_MAX + 1];   /* lv[L]: items of level L being collected */
  struct bt_vec ents;                    /* merged entries of one leaf */
  struct bt_vec mv[BT_HEIGHT_MAX];       /* mv[L]: items of a merged pair of level-L pages */
  struct bt_vec mo[BT_HEIGHT_MAX];       /* mo[L]: the pages that pair became */
  struct bt_pool keep;                   /* key bytes living until the run ends */
  struct bt_pool tmp;                    /* key bytes of the leaf being merged */
  struct bt_u64s allocd;                 /* pages allocated by this run */
  struct bt_u64s dfree;                  /* pages to free when the run succeeds */
  struct bt_fresh *fresh;                /* pages this run wrote -> body bytes (open-addressed) */
  size_t fresh_cap, fresh_n;
  struct bt_apply_stats st;
  /* version pruning (bt_opts.prune_older) */
  int prune;
  void (*pruned)(void *ud, uint64_t vpos, uint32_t vlen, int why);
  void *pruned_ud;
  struct bt_u64s pv;                     /* VREF entries gone: position, length, why triples */
  uint32_t *ends[BT_HEIGHT_MAX];         /* per branch level: ops per child (bt_ax_node) */
  uint64_t *pfs[BT_HEIGHT_MAX];          /* per branch level: children to prefetch */
};

#define BT_CHUNK (64u << 10)

static void *bt_pool_alloc(struct bt_pool *p, size_t n)
{
  n = (n + 7u) & ~(size_t)7u;   /* keep every piece 8-byte aligned */
  if (!p->head || p->head->size - p->used < n) {
    size_t sz = n > BT_CHUNK ? n : BT_CHUNK;
    struct bt_chunk *c = mem_malloc(sizeof(*c) + sz);
    if (!c)
      return NULL;
    c->size = sz;
    c->next = p->head;
    p->head = c;
    p->used = 0;
  }
  void *r = p->head->data + p->used;
  p->used += n;
  return r;
}

/* Keep one chunk (the newest) for reuse, free the rest. */
static void bt_pool_reset(struct bt_pool *p)
{
  if (!p->head)
    return;
  struct bt_chunk *c = p->head->next;
  p->head->next = NULL;
  p->used = 0;
  while (c) {
    struct bt_chunk *n = c->next;
    mem_free(c);
    c = n;
  }
}

static void bt_pool_free(struct bt_pool *p)
{
  bt_pool_reset(p);
  mem_free(p->head);
  p->head = NULL;
}

static int bt_vec_push(struct bt_vec *v, const struct bt_item *it)
{
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    struct bt_item *nv = mem_realloc(v->v, cap * sizeof(*nv));
    if (!nv)
      return JDB_ENOMEM;
    v->v = nv;
    v->cap = cap;
  }
  v->v[v->n++] = *it;
  return JDB_OK;
}

/* Replace v[a, a+cnt) with the items of r. */
static int bt_vec_splice(struct bt_vec *v, size_t a, size_t cnt, const struct bt_vec *r)
{
  size_t need = v->n - cnt + r->n;
  if (need > v->cap) {
    size_t cap = v->cap ? v->cap : 64;
    while (cap < need)
      cap *= 2;
    struct bt_item *nv = mem_realloc(v->v, cap * sizeof(*nv));
    if (!nv)
      return JDB_ENOMEM;
    v->v = nv;
    v->cap = cap;
  }
  memmove(v->v + a + r->n, v->v + a + cnt, (v->n - a - cnt) * sizeof(*v->v));
  memcpy(v->v + a, r->v, r->n * sizeof(*v->v));
  v->n = need;
  return JDB_OK;
}

static int bt_u64s_push(struct bt_u64s *s, uint64_t x)
{
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    uint64_t *nv = mem_realloc(s->v, cap * sizeof(*nv));
    if (!nv)
      return JDB_ENOMEM;
    s->v = nv;
    s->cap = cap;
  }
  s->v[s->n++] = x;
  return JDB_OK;
}

/* The pages this run wrote, with their body size: a branch page rewritten by a merge gives its
   children back as items, and those written by this run may be underfull (pages of older states
   never are, but the root). */
static inline size_t bt_fresh_home(uint64_t pgno, size_t cap)
{
  return (size_t)((pgno * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static int bt_fresh_put(struct bt *t, uint64_t pgno, uint32_t size, uint32_t aidx)
{
  if (2 * (t->fresh_n + 1) > t->fresh_cap) {
    size_t cap = t->fresh_cap ? t->fresh_cap * 2 : 1024;
    struct bt_fresh *nv = mem_calloc(cap, sizeof *nv);
    if (!nv)
      return JDB_ENOMEM;
    for (size_t i = 0; i < t->fresh_cap; i++) {
      if (!t->fresh[i].pgno)
        continue;
      size_t j = bt_fresh_home(t->fresh[i].pgno, cap);
      while (nv[j].pgno)
        j = (j + 1) & (cap - 1);
      nv[j] = t->fresh[i];
    }
    mem_free(t->fresh);
    t->fresh = nv;
    t->fresh_cap = cap;
  }
  size_t j = bt_fresh_home(pgno, t->fresh_cap);
  while (t->fresh[j].pgno && t->fresh[j].pgno != pgno)
    j = (j + 1) & (t->fresh_cap - 1);
  t->fresh_n += !t->fresh[j].pgno;
  t->fresh[j] = (struct bt_fresh){.pgno = pgno, .size = size, .aidx = aidx};
  return JDB_OK;
}

static struct bt_fresh *bt_fresh_find(const struct bt *t, uint64_t pgno)
{
  if (!t->fresh_n)
    return NULL;
  size_t j = bt_fresh_home(pgno, t->fresh_cap);
  while (t->fresh[j].pgno) {
    if (t->fresh[j].pgno == pgno)
      return &t->fresh[j];
    j = (j + 1) & (t->fresh_cap - 1);
  }
  return NULL;
}

/* A page this run wrote (and still holds): its body size. */
static int bt_fresh_get(const struct bt *t, uint64_t pgno, uint32_t *size)
{
  const struct bt_fresh *f = bt_fresh_find(t, pgno);
  if (!f || f->size >= BT_GONE)
    return 0;
  *size = f->size;
  return 1;
}

/* Count a read of a page of the old state once per run however often it is looked at. */
static int bt_note_read(struct bt *t, uint64_t pgno)
{
  if (bt_fresh_find(t, pgno))
    return JDB_OK;
  t->st.pages_read++;
  return bt_fresh_put(t, pgno, BT_SEEN, 0);
}

static void bt_fresh_clear(struct bt *t)
{
  if (t->fresh_n)
    memset(t->fresh, 0, t->fresh_cap * sizeof *t->fresh);
  t->fresh_n = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Handle */

int bt_open(struct pg *pg, const struct bt_opts *opts, uint64_t root, struct bt **out)
{
  *out = NULL;
  uint32_t im = opts && opts->inline_max ? opts->inline_max : BT_INLINE_DEF;
  if (!pg || im > BT_INLINE_MAX)
    return JDB_EINVAL;
  struct bt *t = mem_calloc(1, sizeof(*t));
  if (!t)
    return JDB_ENOMEM;
  t->pg = pg;
  t->inline_max = im;
  t->root = root;
  t->prune = opts && opts->prune_older;
  t->pruned = opts ? opts->pruned : NULL;
  t->pruned_ud = opts ? opts->pruned_ud : NULL;
  *out = t;
  return JDB_OK;
}

void bt_close(struct bt *t)
{
  if (!t)
    return;
  for (size_t i = 0; i <= BT_HEIGHT_MAX; i++)
    mem_free(t->lv[i].v);
  mem_free(t->ents.v);
  for (size_t i = 0; i < BT_HEIGHT_MAX; i++) {
    mem_free(t->mv[i].v);
    mem_free(t->mo[i].v);
  }
  bt_pool_free(&t->keep);
  bt_pool_free(&t->tmp);
  mem_free(t->allocd.v);
  mem_free(t->dfree.v);
  mem_free(t->pv.v);
  for (size_t i = 0; i < BT_HEIGHT_MAX; i++) {
    mem_free(t->ends[i]);
    mem_free(t->pfs[i]);
  }
  mem_free(t->fresh);
  mem_free(t);
}

uint64_t bt_root(const struct bt *t)
{
  return t->root;
}

void bt_set_root(struct bt *t, uint64_t root)
{
  t->root = root;
}

/* ------------------------------------------------------------------------------------------- */
/* Page sizes and packing */

static inline int bt_underfull(const struct bt_item *it)
{
  return it->fresh && it->vlen < BT_FILL_MIN;
}

/* Exact body size of items [s, e) as one page of the given level. */
static uint32_t bt_range_size(const struct bt_item *it, size_t s, size_t e, uint32_t level)
{
  return level ? bt_br_body_size(it + s, (uint32_t)(e - s)) : bt_leaf_body_size(it + s, (uint32_t)(e - s));
}

/* Greedy page boundaries: cuts[0..k] with cuts[0] = 0, cuts[k] = m. target: close a page once
   it holds at least this many bytes. Returns k, or 0 on ENOMEM. */
static size_t bt_cuts(const struct bt_item *it, size_t m, uint32_t level, uint32_t target,
                      size_t **cutsp, size_t *cap)
{
  size_t k = 0;
  size_t *cuts = *cutsp;
#define BT_CUT_PUSH(x)                                                  \
  do {                                                                  \
    if (k + 1 >= *cap) {                                                \
      size_t nc = *cap ? *cap * 2 : 64;                                 \
      size_t *nv = mem_realloc(cuts, nc * sizeof(*nv));                 \
      if (!nv)                                                          \
        return 0;                                                       \
      cuts = *cutsp = nv;                                               \
      *cap = nc;                                                        \
    }                                                                   \
    cuts[k++] = (x);                                                    \
  } while (0)
  BT_CUT_PUSH(0);
  size_t s = 0;
  uint32_t p = 0;    /* leaf: prefix of the page being filled */
  uint32_t sum = 0;  /* body bytes of [s, i) */
  for (size_t i = 0; i < m; i++) {
    uint32_t add, nsum;
    if (level) {
      add = i == s ? 0 : bt_br_item_size(&it[i]);
      nsum = (i == s ? 8u : sum) + add;
    } else if (i == s) {
      p = it[i].klen;
      nsum = 2u + p + bt_leaf_item_size(&it[i], p);
    } else {
      uint32_t np = bt_lcp(it[s].key, it[s].klen, it[i].key, it[i].klen);
      if (np < p) {
        p = np;
        sum = 2u + p;
        for (size_t j = s; j < i; j++)
          sum += bt_leaf_item_size(&it[j], p);
      }
      nsum = sum + bt_leaf_item_size(&it[i], p);
    }
    if (i > s && nsum > BT_USABLE) {
      /* close the page before i; i starts the next one */
      BT_CUT_PUSH(i);
      s = i;
      i--;
      continue;
    }
    sum = nsum;
    if (sum >= target && i + 1 < m) {
      BT_CUT_PUSH(i + 1);
      s = i + 1;
    }
  }
  BT_CUT_PUSH(m);
#undef BT_CUT_PUSH
  return k - 1;
}

/* Page sizes of every split of items [a, c) into [a, x) and [x, c), for x in (a, c):
   l[x - a] and r[x - a]. Leaves: a range's prefix is the common prefix of its ends, which only
   shrinks as the range grows, so sizes are kept incrementally and recomputed when it shrinks. */
static void bt_split_sizes(const struct bt_item *it, size_t a, size_t c, uint32_t level,
                           uint32_t *l, uint32_t *r)
{
  if (level) {
    uint32_t sum = 8;
    for (size_t x = a + 1; x < c; x++) {
      l[x - a] = sum;
      sum += bt_br_item_size(&it[x]);
    }
    sum = 8;
    for (size_t x = c - 1; x > a; x--) {
      r[x - a] = sum;
      sum += bt_br_item_size(&it[x]);
    }
    return;
  }
  uint32_t p = it[a].klen, sum = 2u + p + bt_leaf_item_size(&it[a], p);
  for (size_t x = a + 1; x < c; x++) {
    l[x - a] = sum;   /* [a, x) */
    uint32_t np = bt_lcp(it[a].key, it[a].klen, it[x].key, it[x].klen);
    if (np < p) {
      p = np;
      sum = 2u + p;
      for (size_t j = a; j < x; j++)
        sum += bt_leaf_item_size(&it[j], p);
    }
    sum += bt_leaf_item_size(&it[x], p);
  }
  p = it[c - 1].klen;
  sum = 2u + p + bt_leaf_item_size(&it[c - 1], p);
  for (size_t x = c - 1; x > a; x--) {
    r[x - a] = sum;   /* [x, c) */
    uint32_t np = bt_lcp(it[x - 1].key, it[x - 1].klen, it[c - 1].key, it[c - 1].klen);
    if (np < p) {
      p = np;
      sum = 2u + p;
      for (size_t j = x; j < c; j++)
        sum += bt_leaf_item_size(&it[j], p);
    }
    sum += bt_leaf_item_size(&it[x - 1], p);
  }
}

struct bt_ax {
  struct bt *t;
  uint32_t *sz;     /* bt_split_sizes scratch: 2 x sz_cap */
  size_t sz_cap;
  uint32_t grp;     /* last borrow group handed out (bt_fix_level) */
  size_t *cuts;
  size_t cuts_cap;
};

/* Move the cut between pages [cuts[j], cuts[j+1]) and [cuts[j+1], cuts[j+2]) to where the
   larger of the two is smallest (both must fit). */
static int bt_balance_pair(struct bt_ax *ax, const struct bt_item *it, size_t *cuts, size_t j,
                           uint32_t level)
{
  size_t a = cuts[j], c = cuts[j + 2];
  if (c - a < 2)
    return JDB_OK;
  if (c - a > ax->sz_cap) {
    uint32_t *nv = mem_realloc(ax->sz, 2 * (c - a) * sizeof *nv);
    if (!nv)
      return JDB_ENOMEM;
    ax->sz = nv;
    ax->sz_cap = c - a;
  }
  uint32_t *l = ax->sz, *r = ax->sz + ax->sz_cap;
  bt_split_sizes(it, a, c, level, l, r);
  size_t best = cuts[j + 1];
  uint32_t bmax = l[best - a] > r[best - a] ? l[best - a] : r[best - a];
  for (size_t x = a + 1; x < c; x++) {
    uint32_t mx = l[x - a] > r[x - a] ? l[x - a] : r[x - a];
    if (mx <= BT_USABLE && mx < bmax) {
      bmax = mx;
      best = x;
    }
  }
  cuts[j + 1] = best;
  return JDB_OK;
}

static int bt_alloc_page(struct bt_ax *ax, uint64_t *pgno, struct pg_frame **fr, uint8_t **data)
{
  void *d;
  int rc = pg_alloc(ax->t->pg, pgno, fr, &d);
  if (rc)
    return rc;
  rc = bt_u64s_push(&ax->t->allocd, *pgno);
  if (rc) {
    pg_unpin(ax->t->pg, *fr);
    pg_free(ax->t->pg, *pgno);
    return rc;
  }
  *data = d;
  ax->t->st.pages_written++;
  return JDB_OK;
}

/* The new state no longer needs pgno. A page of the old state is freed when the run succeeds;
   one this run wrote goes back to pg at once (its frame is needed more than its bytes: a run
   that merges a lot would otherwise hold every intermediate page until it ends). */
static int bt_defer_free(struct bt_ax *ax, uint64_t pgno)
{
  struct bt *t = ax->t;
  struct bt_fresh *f = bt_fresh_find(t, pgno);
  if (f && f->size < BT_GONE) {
    pg_free(t->pg, pgno);
    t->allocd.v[f->aidx] = 0;
    f->size = BT_GONE;
    t->st.pages_freed++;
    return JDB_OK;
  }
  return bt_u64s_push(&t->dfree, pgno);
}

/* Copy a key into the run's pool. */
static int bt_keep_key(struct bt_ax *ax, struct bt_item *it)
{
  if (!it->klen)
    return JDB_OK;
  uint8_t *k = bt_pool_alloc(&ax->t->keep, it->klen);
  if (!k)
    return JDB_ENOMEM;
  memcpy(k, it->key, it->klen);
  it->key = k;
  return JDB_OK;
}

/* Pack items [0, m) of a level into new pages; append one item per page to out. The first
   page's item takes bound's key; the others take the separator in front of their first item.
   append: fill pages whole (the run only extends the right end). */
static int bt_pack(struct bt_ax *ax, const struct bt_item *it, size_t m, uint32_t level,
                   const struct bt_item *bound, int append, struct bt_vec *out)
{
  if (m == 0)
    return JDB_OK;
  /* The fewest pages a greedy fill needs (by each page's own prefix), then each neighbouring pair
     evened out, left to right; a run that only appends keeps its pages 15/16 full and evens out
     only a last page left under the minimum. */
  uint32_t total = bt_range_size(it, 0, m, level);
  uint32_t target = total <= BT_USABLE || !append ? BT_USABLE : BT_USABLE - BT_USABLE / 16u;
  size_t k = bt_cuts(it, m, level, target, &ax->cuts, &ax->cuts_cap);
  if (!k)
    return JDB_ENOMEM;
  for (size_t j = 0; j + 1 < k; j++) {
    if (append && (j + 2 < k || bt_range_size(it, ax->cuts[j + 1], m, level) >= BT_FILL_MIN))
      continue;
    int rc = bt_balance_pair(ax, it, ax->cuts, j, level);
    if (rc)
      return rc;
  }
  for (size_t j = 0; j < k; j++) {
    size_t s = ax->cuts[j], e = ax->cuts[j + 1];
    uint64_t pgno;
    struct pg_frame *fr;
    uint8_t *page;
    int rc = bt_alloc_page(ax, &pgno, &fr, &page);
    if (rc)
      return rc;
    uint32_t n = (uint32_t)(e - s);
    uint32_t size = bt_range_size(it, s, e, level);
    JDB_ASSERT(size <= BT_USABLE);
    struct layout_page_hdr h = {.count = (uint16_t)n, .level = (uint8_t)level};
    if (level) {
      h.type = LAYOUT_PAGE_BRANCH;
      h.aux = bt_br_plen_of(it + s, n);
      bt_br_encode(page, it + s, n);
    } else {
      h.type = LAYOUT_PAGE_LEAF;
      bt_leaf_encode(page, it + s, n);
    }
    pg_page_set_hdr(page, &h);
    pg_unpin(ax->t->pg, fr);
    rc = bt_fresh_put(ax->t, pgno, size, (uint32_t)(ax->t->allocd.n - 1));
    if (rc)
      return rc;
    struct bt_item r = {.fresh = 1, .vlen = size, .v64 = pgno, .seq = UINT64_MAX};
    if (j == 0) {
      r.key = bound->key;
      r.klen = bound->klen;
      r.seq = bound->seq;
    } else if (level) {
      r.key = it[s].key;
      r.klen = it[s].klen;
      r.seq = it[s].seq;
      rc = bt_keep_key(ax, &r);
    } else {
      const struct bt_item *a = &it[s - 1], *b = &it[s];
      if (a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0) {
        r.key = b->key;
        r.klen = b->klen;
        r.seq = b->seq;
      } else {
        r.key = b->key;
        r.klen = bt_lcp(a->key, a->klen, b->key, b->klen) + 1;
      }
      rc = bt_keep_key(ax, &r);
    }
    if (rc == JDB_OK)
      rc = bt_vec_push(out, &r);
    if (rc)
      return rc;
  }
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Decoding pages into items */

static int bt_pin(struct bt_ax *ax, uint64_t pgno, uint32_t level, struct pg_frame **fr,
                  const uint8_t **page)
{
  const void *d;
  int rc = pg_pin(ax->t->pg, pgno, level ? LAYOUT_PAGE_BRANCH : LAYOUT_PAGE_LEAF, fr, &d);
  if (rc == JDB_EINVAL)
    rc = JDB_CORRUPT("tree points at a page outside the pages file", pgno);
  if (rc)
    return rc;
  *page = d;
  if ((*page)[7] != level) {
    pg_unpin(ax->t->pg, *fr);
    return JDB_CORRUPT("tree page at the wrong level", pgno);
  }
  return JDB_OK;
}

/* Leaf entry i with its full key copied to the tmp pool. */
static int bt_leaf_take(struct bt_ax *ax, const struct bt_leaf *l, uint32_t i, struct bt_item *it)
{
  const uint8_t *sfx;
  uint32_t slen;
  bt_leaf_sfx(bt_leaf_ent(l, i), &sfx, &slen);
  uint8_t *k = bt_pool_alloc(&ax->t->tmp, l->plen + slen);
  if (!k)
    return JDB_ENOMEM;
  bt_leaf_item(l, i, k, it);
  return JDB_OK;
}

/* Append the children of branch page as items; item 0 takes key/seq of lo. Children this run
   wrote come back marked fresh, with their size. */
static int bt_br_take(const struct bt *t, const uint8_t *page, const struct bt_item *lo,
                      struct bt_vec *out)
{
  uint32_t n = bt_br_n(page);
  int rc = JDB_OK;
  for (uint32_t i = 0; rc == JDB_OK && i < n; i++) {
    struct bt_item it = {0};
    if (i == 0) {
      it = (struct bt_item){.key = lo->key, .klen = lo->klen, .seq = lo->seq,
                            .v64 = bt_br_child0(page)};
    } else {
      bt_br_sep(page, i, &it.key, &it.klen, &it.seq, &it.v64);
    }
    it.fresh = (uint8_t)bt_fresh_get(t, it.v64, &it.vlen);
    rc = bt_vec_push(out, &it);
  }
  return rc;
}

static struct bt_item bt_op_item(const struct bt_op *o)
{
  return (struct bt_item){.key = o->key, .klen = o->klen, .seq = o->seq, .kind = o->kind,
                          .vlen = o->kind == BT_TOMB ? 0 : o->vlen,
                          .val = o->kind == BT_INLINE ? o->val : NULL,
                          .v64 = o->kind == BT_VREF ? o->vpos : 0};
}

/* ------------------------------------------------------------------------------------------- */
/* Merging underfull pages of one level */

static int bt_fix_level(struct bt_ax *ax, struct bt_vec *v, uint32_t level);

/* Pages of older states are not underfull (but the root), so merges look only at pages this run
   wrote, except where two older pages become neighbours: the page between them went away, or
   their parents merged. Such a pair is looked at here, and an underfull one is marked for
   bt_fix_level like a page of this run. */
static int bt_seam(struct bt_ax *ax, struct bt_vec *v, size_t j, uint32_t level)
{
  for (size_t k = j; k <= j + 1 && k < v->n; k++) {
    struct bt_item *it = &v->v[k];
    if (it->fresh)
      continue;
    struct pg_frame *fr;
    const uint8_t *page;
    int rc = bt_pin(ax, it->v64, level, &fr, &page);
    if (rc)
      return rc;
    uint32_t used = bt_page_used(page);
    pg_unpin(ax->t->pg, fr);
    rc = bt_note_read(ax->t, it->v64);
    if (rc)
      return rc;
    if (used < BT_FILL_MIN) {
      it->fresh = 1;
      it->vlen = used;
    }
  }
  return JDB_OK;
}

/* Merge pages v[a] and v[a+1] (of `level`) and repack their items into v[a..]: one page when
   they fit, else (only if force) as evenly as possible, which is how an underfull page borrows
   from a full neighbour. *done says whether anything was written. Merging two branches puts
   their children side by side, so an underfull child that was alone under its parent now has a
   sibling: the combined child list is fixed (recursively) before it is packed. */
static int bt_merge_pair(struct bt_ax *ax, struct bt_vec *v, size_t a, uint32_t level, int force,
                         int *done)
{
  *done = 0;
  struct bt *t = ax->t;
  struct pg_frame *fa = NULL, *fb = NULL;
  const uint8_t *pa, *pb;
  struct bt_item ia = v->v[a], ib = v->v[a + 1];
  int rc = bt_pin(ax, ia.v64, level, &fa, &pa);
  if (rc)
    return rc;
  rc = bt_pin(ax, ib.v64, level, &fb, &pb);
  if (rc) {
    pg_unpin(t->pg, fa);
    return rc;
  }
  if (!ia.fresh)
    rc = bt_note_read(t, ia.v64);
  if (rc == JDB_OK && !ib.fresh)
    rc = bt_note_read(t, ib.v64);
  struct bt_vec *e = level ? &t->mv[level] : &t->ents;
  e->n = 0;
  if (level) {
    rc = bt_br_take(t, pa, &ia, e);
    size_t na = e->n;
    if (rc == JDB_OK)
      rc = bt_br_take(t, pb, &ib, e);
    if (rc == JDB_OK)
      rc = bt_seam(ax, e, na - 1, level - 1);
  } else {
    bt_pool_reset(&t->tmp);
    const uint8_t *pp[2] = {pa, pb};
    for (int s = 0; s < 2 && rc == JDB_OK; s++) {
      struct bt_leaf l;
      bt_leaf_init(&l, pp[s]);
      for (uint32_t i = 0; i < l.n && rc == JDB_OK; i++) {
        struct bt_item it;
        rc = bt_leaf_take(ax, &l, i, &it);
        if (rc == JDB_OK)
          rc = bt_vec_push(e, &it);
      }
    }
  }
  if (rc == JDB_OK && !force && bt_range_size(e->v, 0, e->n, level) > BT_USABLE) {
    pg_unpin(t->pg, fa);   /* does not fit one page: the caller tries elsewhere first */
    pg_unpin(t->pg, fb);
    return JDB_OK;
  }
  /* Decided: fix the combined children (this writes and frees pages, so only once the merge is
     sure to happen). Separators point into pa and pb, which stay pinned meanwhile. */
  if (rc == JDB_OK && level)
    rc = bt_fix_level(ax, e, level - 1);
  struct bt_vec *out = &t->mo[level];
  out->n = 0;
  t->st.merges += rc == JDB_OK;
  if (rc == JDB_OK)
    rc = bt_pack(ax, e->v, e->n, level, &ia, 0, out);
  pg_unpin(t->pg, fa);
  pg_unpin(t->pg, fb);
  *done = rc == JDB_OK;
  if (rc == JDB_OK)
    rc = bt_defer_free(ax, ia.v64);
  if (rc == JDB_OK)
    rc = bt_defer_free(ax, ib.v64);
  if (rc == JDB_OK)
    rc = bt_vec_splice(v, a, 2, out);
  return rc;
}

/* Merge every underfull page this run wrote into v with a neighbour it fits with (the next,
   else the previous); where it fits with neither, it borrows: the pair is repacked as evenly as
   possible (a merged leaf can lose prefix compression, so even then a page may stay under the
   minimum, and the page on the other side of the pair may now fit with it: the scan steps back
   one). The pages one borrow produced are never merged or balanced with each other again, and
   borrows are capped, so the scan ends; merges that fit always shrink the list. */
static int bt_fix_level(struct bt_ax *ax, struct bt_vec *v, uint32_t level)
{
  size_t i = 0, borrows = 0, cap = 2 * v->n + 8;
#define BT_SAME_GRP(x, y) (v->v[x].grp && v->v[x].grp == v->v[y].grp)
  while (i < v->n) {
    if (v->n < 2 || !bt_underfull(&v->v[i])) {
      i++;
      continue;
    }
    int fwd = i + 1 < v->n && !BT_SAME_GRP(i, i + 1);
    int bwd = i >= 1 && !BT_SAME_GRP(i - 1, i);
    int done = 0, rc = JDB_OK;
    if (fwd)
      rc = bt_merge_pair(ax, v, i, level, 0, &done);
    if (rc == JDB_OK && !done && bwd) {
      rc = bt_merge_pair(ax, v, i - 1, level, 0, &done);
      if (done)
        i--;
    }
    if (rc)
      return rc;
    if (done)
      continue;                     /* one page now: it may still be underfull */
    if ((!fwd && !bwd) || borrows >= cap) {
      i++;
      continue;
    }
    size_t a = fwd ? i : i - 1, before = v->n;
    rc = bt_merge_pair(ax, v, a, level, 1, &done);
    if (rc)
      return rc;
    borrows++;
    uint32_t g = ++ax->grp;
    for (size_t k = a; k < a + (v->n + 2 - before); k++)
      v->v[k].grp = g;
    i = a ? a - 1 : 0;
  }
#undef BT_SAME_GRP
  /* Borrows may have left pages that now fit a neighbour: merge those (merges only shrink the
     list, so this ends). */
  for (i = 0; v->n >= 2 && i < v->n;) {
    int done = 0, rc = JDB_OK;
    if (bt_underfull(&v->v[i])) {
      if (i + 1 < v->n)
        rc = bt_merge_pair(ax, v, i, level, 0, &done);
      if (rc == JDB_OK && !done && i >= 1) {
        rc = bt_merge_pair(ax, v, i - 1, level, 0, &done);
        i -= done;
      }
    }
    if (rc)
      return rc;
    i += !done;
  }
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* The recursive pass */

/* Sparse runs (the common case once a tree is large: a run of 100 k random keys into 140 k
   leaves puts one or two ops in each): when every op lies strictly between the leaf's first and
   last entry, the leaf keeps its prefix and every untouched entry keeps its bytes, so the new page
   is the old one with the changes spliced in: untouched entries are copied in blocks, only the
   ops are encoded. Returns 0 (nothing done) when the ops touch an end of the leaf or the result
   does not fit one page; then the general merge runs. */
/* An out-of-line value leaves the tree with this run (reported to the caller if it succeeds). */
static int bt_gone(struct bt *t, const struct bt_item *old, int why)
{
  if (old->kind != BT_VREF || !t->pruned)
    return JDB_OK;
  int rc = bt_u64s_push(&t->pv, old->v64);
  if (rc == JDB_OK)
    rc = bt_u64s_push(&t->pv, old->vlen);
  if (rc == JDB_OK)
    rc = bt_u64s_push(&t->pv, (uint64_t)why);
  return rc;
}

/* Entry i of leaf l (if any) has the key of op o. o's key lies inside the leaf's key range, so it
   carries the leaf's prefix. */
static int bt_leaf_same_key(const struct bt_leaf *l, uint32_t i, const struct bt_op *o)
{
  if (i >= l->n)
    return 0;
  const uint8_t *sfx;
  uint32_t slen;
  bt_leaf_sfx(bt_leaf_ent(l, i), &sfx, &slen);
  return l->plen + slen == o->klen &&
         memcmp(sfx, (const uint8_t *)o->key + l->plen, slen) == 0;
}

static int bt_leaf_splice(struct bt_ax *ax, uint64_t pgno, const struct bt_leaf *l,
                          const struct bt_op *ops, size_t n, const struct bt_item *bound, int *rc)
{
  struct bt *t = ax->t;
  if (l->n < 2)
    return 0;
  struct bt_item first, last;
  if ((*rc = bt_leaf_take(ax, l, 0, &first)) || (*rc = bt_leaf_take(ax, l, l->n - 1, &last)))
    return 1;
  if (bt_cmp(first.key, first.klen, first.seq, ops[0].key, ops[0].klen, ops[0].seq) >= 0 ||
      bt_cmp(ops[n - 1].key, ops[n - 1].klen, ops[n - 1].seq, last.key, last.klen, last.seq) >= 0)
    return 0;
  uint32_t *pos = bt_pool_alloc(&t->tmp, n * sizeof *pos);   /* slot | 1u << 31 when equal */
  if (!pos) {
    *rc = JDB_ENOMEM;
    return 1;
  }
  const uint8_t *page = l->page, *end = bt_leaf_end(l);
  const uint8_t *oslot = page + BT_LEAF_BASE + l->plen;
  int64_t used = end - page - BT_HDR;
  uint32_t nn = l->n;
  uint64_t ins = 0, rep = 0, era = 0, miss = 0;
  for (size_t j = 0; j < n; j++) {
    const struct bt_op *o = &ops[j];
    uint32_t i = bt_leaf_lower(l, o->key, o->klen, o->seq);
    const uint8_t *sfx;
    uint32_t slen;
    const uint8_t *q = bt_leaf_sfx(bt_leaf_ent(l, i), &sfx, &slen);   /* i < n: o < last */
    int eq = l->plen + slen == o->klen && le64_get(q) == o->seq &&
             memcmp(sfx, (const uint8_t *)o->key + l->plen, slen) == 0;
    pos[j] = i | (eq ? 1u << 31 : 0u);
    if (t->prune && o->op == BT_OP_PUT && bt_leaf_same_key(l, i + (uint32_t)eq, o))
      return 0;   /* an older version to prune: the general merge drops it */
    if (eq && t->pruned)
      return 0;   /* an entry replaced or erased: the general merge reports its value */
    if (eq) {
      const uint8_t *ee = i + 1 < l->n ? page + le16_get(oslot + BT_LSLOT * (i + 1)) : end;
      used -= BT_LSLOT + (ee - bt_leaf_ent(l, i));
      nn--;
    }
    if (o->op == BT_OP_PUT) {
      struct bt_item it = bt_op_item(o);
      used += bt_leaf_item_size(&it, l->plen);
      nn++;
      eq ? rep++ : ins++;
    } else {
      eq ? era++ : miss++;
    }
  }
  if (used > (int64_t)BT_USABLE)
    return 0;
  t->st.inserted += ins;
  t->st.replaced += rep;
  t->st.erased += era;
  t->st.erase_missing += miss;
  if (ins + rep + era == 0) {
    struct bt_item r = {.key = bound->key, .klen = bound->klen, .seq = bound->seq, .v64 = pgno};
    *rc = bt_vec_push(&t->lv[0], &r);
    return 1;
  }
  uint64_t npg;
  struct pg_frame *fr;
  uint8_t *np;
  if ((*rc = bt_alloc_page(ax, &npg, &fr, &np)))
    return 1;
  le16_put(np + BT_HDR, (uint16_t)l->plen);
  memcpy(np + BT_LEAF_BASE, l->prefix, l->plen);
  uint8_t *nslot = np + BT_LEAF_BASE + l->plen;
  uint8_t *e = nslot + BT_LSLOT * nn;
  uint32_t i = 0, k = 0;
  for (size_t j = 0;; j++) {
    uint32_t stop = j < n ? pos[j] & ~(1u << 31) : l->n;
    if (stop > i) {
      /* old entries [i, stop) are contiguous: one copy, slots shifted by the same amount */
      const uint8_t *from = bt_leaf_ent(l, i);
      const uint8_t *to = stop < l->n ? bt_leaf_ent(l, stop) : end;
      memcpy(e, from, (size_t)(to - from));
      for (uint32_t m = i; m < stop; m++, k++) {
        le16_put(nslot + BT_LSLOT * k, (uint16_t)(e - np + (le16_get(oslot + BT_LSLOT * m) -
                                                            (from - page))));
        memcpy(nslot + BT_LSLOT * k + 2u, oslot + BT_LSLOT * m + 2u, 4);
      }
      e += to - from;
      i = stop;
    }
    if (j == n)
      break;
    if (pos[j] >> 31)
      i++;   /* the old version of this entry is replaced or erased */
    if (ops[j].op == BT_OP_PUT) {
      struct bt_item it = bt_op_item(&ops[j]);
      e = bt_leaf_put(np, nslot + BT_LSLOT * k, e, &it, l->plen);
      k++;
    }
  }
  JDB_ASSERT(k == nn && e - np - BT_HDR == used);
  struct layout_page_hdr h = {.type = LAYOUT_PAGE_LEAF, .count = (uint16_t)nn};
  pg_page_set_hdr(np, &h);
  pg_unpin(t->pg, fr);
  struct bt_item r = {.key = bound->key, .klen = bound->klen, .seq = bound->seq, .fresh = 1,
                      .vlen = (uint32_t)used, .v64 = npg};
  *rc = bt_fresh_put(t, npg, (uint32_t)used, (uint32_t)(t->allocd.n - 1));
  if (*rc == JDB_OK)
    *rc = bt_vec_push(&t->lv[0], &r);
  if (*rc == JDB_OK)
    *rc = bt_defer_free(ax, pgno);
  return 1;
}

/* Merge leaf pgno (0: none, the tree is empty) with ops [0, n) and append the result to lv[0].
   With pruning, an old entry whose key is that of the PUT just placed is older than it: dropped
   (a VREF one remembered in pv, reported when the run succeeds). */
static int bt_ax_leaf(struct bt_ax *ax, uint64_t pgno, const struct bt_op *ops, size_t n,
                      const struct bt_item *bound, int rightmost)
{
  struct bt *t = ax->t;
  struct pg_frame *fr = NULL;
  const uint8_t *page = NULL;
  struct bt_leaf l = {0};
  int rc;
  if (pgno) {
    rc = bt_pin(ax, pgno, 0, &fr, &page);
    if (rc)
      return rc;
    bt_leaf_init(&l, page);
    rc = bt_note_read(t, pgno);
    if (rc) {
      pg_unpin(t->pg, fr);
      return rc;
    }
  }
  bt_pool_reset(&t->tmp);
  if (pgno && bt_leaf_splice(ax, pgno, &l, ops, n, bound, &rc)) {
    pg_unpin(t->pg, fr);
    return rc;
  }
  struct bt_vec *e = &t->ents;
  e->n = 0;
  uint64_t changes = 0;
  uint32_t i = 0;
  size_t j = 0;
  struct bt_item old;
  int have = 0;
  rc = JDB_OK;
  if (i < l.n) {
    rc = bt_leaf_take(ax, &l, i, &old);
    have = rc == JDB_OK;
  }
  const uint8_t *putk = NULL;   /* key of the last PUT placed (pruning) */
  uint32_t putkl = 0;
  int append = rightmost;
  if (append && l.n) {
    struct bt_item last;
    rc = rc ? rc : bt_leaf_take(ax, &l, l.n - 1, &last);
    append = rc == JDB_OK &&
             bt_cmp(last.key, last.klen, last.seq, ops[0].key, ops[0].klen, ops[0].seq) < 0;
  }
  while (rc == JDB_OK && (have || j < n)) {
    int c = !have ? 1
            : j == n ? -1
                     : bt_cmp(old.key, old.klen, old.seq, ops[j].key, ops[j].klen, ops[j].seq);
    if (c < 0 && putk && old.klen == putkl && memcmp(old.key, putk, putkl) == 0) {
      changes++;                            /* an older version of a key just put: pruned */
      t->st.pruned++;
      rc = bt_gone(t, &old, BT_GONE_PRUNED);
    } else if (c < 0) {
      rc = bt_vec_push(e, &old);            /* an entry no op touches */
    } else {
      const struct bt_op *o = &ops[j++];
      if (o->op == BT_OP_PUT) {
        struct bt_item it = bt_op_item(o);
        rc = bt_vec_push(e, &it);
        if (t->prune) {
          putk = o->key;
          putkl = o->klen;
        }
        changes++;
        if (c == 0)
          t->st.replaced++;
        else
          t->st.inserted++;
        if (c == 0 && rc == JDB_OK && !(it.kind == BT_VREF && it.v64 == old.v64))
          rc = bt_gone(t, &old, BT_GONE_REPLACED);
      } else if (c == 0) {
        changes++;                          /* erased: the old entry is not pushed */
        t->st.erased++;
        rc = bt_gone(t, &old, BT_GONE_ERASED);
      } else {
        t->st.erase_missing++;
      }
    }
    if (c <= 0 && rc == JDB_OK) {
      have = 0;
      if (++i < l.n) {
        rc = bt_leaf_take(ax, &l, i, &old);
        have = rc == JDB_OK;
      }
    }
  }
  if (rc == JDB_OK) {
    if (!changes) {
      if (pgno) {
        struct bt_item r = {.key = bound->key, .klen = bound->klen, .seq = bound->seq,
                            .v64 = pgno};
        rc = bt_vec_push(&t->lv[0], &r);
      }
    } else {
      rc = bt_pack(ax, e->v, e->n, 0, bound, append, &t->lv[0]);
      if (rc == JDB_OK && pgno)
        rc = bt_defer_free(ax, pgno);
    }
  }
  if (fr)
    pg_unpin(t->pg, fr);
  return rc;
}

static int bt_ax_node(struct bt_ax *ax, uint64_t pgno, uint32_t level, const struct bt_op *ops,
                      size_t n, const struct bt_item *bound, int rightmost)
{
  if (level == 0)
    return bt_ax_leaf(ax, pgno, ops, n, bound, rightmost);
  struct bt *t = ax->t;
  struct pg_frame *fr;
  const uint8_t *page;
  int rc = bt_pin(ax, pgno, level, &fr, &page);
  if (rc)
    return rc;
  rc = bt_note_read(t, pgno);
  if (rc) {
    pg_unpin(t->pg, fr);
    return rc;
  }
  struct bt_vec *kids = &t->lv[level - 1];
  kids->n = 0;
  uint32_t nc = bt_br_n(page);
  /* First pass: how many ops fall to each child (end[i]), and the reads of the children with
     ops started ahead of the descent (pg_prefetch), so a run over a tree larger than the page
     cache does not wait for its leaves one at a time. */
  JDB_ASSERT(nc <= BT_BR_CHILDREN_MAX);
  if (!t->ends[level]) {
    t->ends[level] = mem_malloc(BT_BR_CHILDREN_MAX * sizeof(uint32_t));
    t->pfs[level] = mem_malloc(BT_BR_CHILDREN_MAX * sizeof(uint64_t));
    if (!t->ends[level] || !t->pfs[level]) {
      pg_unpin(t->pg, fr);
      return JDB_ENOMEM;
    }
  }
  uint32_t *end = t->ends[level];
  uint64_t *pf = t->pfs[level];
  size_t npf = 0;
  {
    size_t e = 0;
    uint64_t c = bt_br_child0(page);
    struct bt_item hi = {0};
    for (uint32_t i = 0; i < nc; i++) {
      size_t b = e;
      if (i + 1 == nc) {
        e = n;
      } else {
        bt_br_sep(page, i + 1, &hi.key, &hi.klen, &hi.seq, &hi.v64);
        while (e < n && bt_cmp(ops[e].key, ops[e].klen, ops[e].seq, hi.key, hi.klen, hi.seq) < 0)
          e++;
      }
      end[i] = (uint32_t)(e - b);
      if (e > b)
        pf[npf++] = c;
      c = hi.v64;
    }
  }
  if (npf > 1)
    pg_prefetch(t->pg, pf, npf);
  size_t j = 0;
  uint32_t first_changed = UINT32_MAX;
  struct bt_item lo = *bound;
  for (uint32_t i = 0; rc == JDB_OK && i < nc; i++) {
    /* child i covers [lo, hi) */
    struct bt_item hi = {0};
    uint64_t child;
    if (i == 0)
      child = bt_br_child0(page);
    else
      child = lo.v64;
    if (i + 1 < nc)
      bt_br_sep(page, i + 1, &hi.key, &hi.klen, &hi.seq, &hi.v64);
    size_t e = j + end[i];
    if (e == j) {
      struct bt_item it = {.key = lo.key, .klen = lo.klen, .seq = lo.seq, .v64 = child};
      rc = bt_vec_push(kids, &it);
    } else {
      size_t before = kids->n;
      rc = bt_ax_node(ax, child, level - 1, ops + j, e - j, &lo, rightmost && i + 1 == nc);
      if (rc == JDB_OK && kids->n == before && before)
        kids->v[before - 1].kind = 1;   /* gone: its neighbours meet (bt_seam below) */
      if (rc == JDB_OK &&
          (kids->n != before + 1 || kids->v[before].fresh || kids->v[before].v64 != child) &&
          first_changed == UINT32_MAX)
        first_changed = i;
    }
    j = e;
    lo = hi;
  }
  if (rc == JDB_OK) {
    if (first_changed == UINT32_MAX) {
      /* nothing below changed: keep this page */
      struct bt_item r = {.key = bound->key, .klen = bound->klen, .seq = bound->seq,
                          .v64 = pgno};
      rc = bt_vec_push(&t->lv[level], &r);
    } else {
      for (size_t k = 0; rc == JDB_OK && k + 1 < kids->n; k++)
        if (kids->v[k].kind)
          rc = bt_seam(ax, kids, k, level - 1);
      if (rc == JDB_OK)
        rc = bt_fix_level(ax, kids, level - 1);
      if (rc == JDB_OK)
        rc = bt_pack(ax, kids->v, kids->n, level, bound, rightmost && first_changed + 1 >= nc,
                     &t->lv[level]);
      if (rc == JDB_OK)
        rc = bt_defer_free(ax, pgno);
    }
  }
  pg_unpin(t->pg, fr);
  return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Entry point */

static int bt_ops_check(const struct bt *t, const struct bt_op *ops, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct bt_op *o = &ops[i];
    if (!o->key || o->klen == 0 || o->klen > BT_KEY_MAX)
      return JDB_EINVAL;
    if (o->op == BT_OP_PUT) {
      if (o->kind == BT_INLINE) {
        if (o->vlen > t->inline_max || (o->vlen && !o->val))
          return JDB_EINVAL;
      } else if (o->kind == BT_VREF) {
        if (o->vlen == 0)
          return JDB_EINVAL;
      } else if (o->kind != BT_TOMB) {
        return JDB_EINVAL;
      }
    } else if (o->op != BT_OP_ERASE) {
      return JDB_EINVAL;
    }
    if (i && bt_cmp(ops[i - 1].key, ops[i - 1].klen, ops[i - 1].seq, o->key, o->klen, o->seq) >= 0)
      return JDB_EINVAL;
  }
  return JDB_OK;
}

static int bt_root_level(struct bt *t, uint32_t *level)
{
  struct pg_frame *fr;
  const void *d;
  int rc = pg_pin(t->pg, t->root, 0, &fr, &d);
  if (rc)
    return rc;
  const uint8_t *p = d;
  if (p[6] != LAYOUT_PAGE_LEAF && p[6] != LAYOUT_PAGE_BRANCH)
    rc = JDB_CORRUPT("tree root is not a tree page", t->root);
  *level = p[7];
  pg_unpin(t->pg, fr);
  return rc;
}

int bt_apply(struct bt *t, const struct bt_op *ops, size_t n, struct bt_apply_stats *st)
{
  memset(&t->st, 0, sizeof(t->st));
  int rc = bt_ops_check(t, ops, n);
  if (rc || n == 0) {
    if (st)
      *st = t->st;
    return rc;
  }
  struct bt_ax ax = {.t = t};
  t->allocd.n = 0;
  t->dfree.n = 0;
  t->pv.n = 0;
  uint64_t pruned0 = t->st.pruned;
  bt_pool_reset(&t->keep);
  for (size_t i = 0; i <= BT_HEIGHT_MAX; i++)
    t->lv[i].n = 0;
  const struct bt_item inf = {.seq = UINT64_MAX};   /* the lower bound of everything */
  uint32_t level = 0;
  if (t->root)
    rc = bt_root_level(t, &level);
  if (rc == JDB_OK)
    rc = bt_ax_node(&ax, t->root, level, ops, n, &inf, 1);
  uint64_t root = 0;
  while (rc == JDB_OK) {
    struct bt_vec *v = &t->lv[level];
    rc = bt_fix_level(&ax, v, level);
    if (rc)
      break;
    if (v->n <= 1) {
      root = v->n ? v->v[0].v64 : 0;
      /* shrink: a root branch with one child gives way to the child */
      while (root && v->n && v->v[0].fresh && level) {
        struct pg_frame *fr;
        const uint8_t *page;
        rc = bt_pin(&ax, root, level, &fr, &page);
        if (rc)
          break;
        uint32_t nc = bt_br_n(page);
        uint64_t child = bt_br_child0(page);
        pg_unpin(t->pg, fr);
        if (nc != 1)
          break;
        rc = bt_defer_free(&ax, root);
        root = child;
        level--;
      }
      break;
    }
    if (level + 1 >= BT_HEIGHT_MAX) {
      rc = JDB_CORRUPT("tree would grow past the maximum height", t->root);
      break;
    }
    t->lv[level + 1].n = 0;
    rc = bt_pack(&ax, v->v, v->n, level + 1, &inf, 0, &t->lv[level + 1]);
    level++;
  }
  if (rc == JDB_OK) {
    for (size_t i = 0; i < t->dfree.n; i++)
      pg_free(t->pg, t->dfree.v[i]);
    t->st.pages_freed += t->dfree.n;
    t->root = root;
    for (size_t i = 0; t->pruned && i + 2 < t->pv.n + 1; i += 3)
      t->pruned(t->pruned_ud, t->pv.v[i], (uint32_t)t->pv.v[i + 1], (int)t->pv.v[i + 2]);
  } else {
    t->st.pruned = pruned0;
    for (size_t i = 0; i < t->allocd.n; i++)
      if (t->allocd.v[i])   /* 0: dropped already (bt_defer_free) */
        pg_free(t->pg, t->allocd.v[i]);
    t->st.pages_written = 0;
    t->st.pages_freed = 0;
  }
  t->allocd.n = 0;
  t->dfree.n = 0;
  bt_fresh_clear(t);
  bt_pool_reset(&t->keep);
  bt_pool_reset(&t->tmp);
  mem_free(ax.cuts);
  mem_free(ax.sz);
  if (st)
    *st = t->st;
  return rc;
}
