/*
 * btt_pages.h - B+ tree page bodies for tests: a generator of valid leaf and branch pages (built
 * with the tree's own encoders from random items), and the check of a page the verifier
 * accepted (every entry decoded through the bt_int.h helpers, in bounds and in order, and found
 * again by the page's own search). Shared by tests/index/test_btree.c and the libFuzzer target
 * tests/fuzz/fuzz_btree.c; header only, no test library, so the fuzzer can include it.
 *
 * Every random choice comes from a byte source: the fuzzer hands it its input (then a fixed
 * pseudo-random stream once the input is used up), the unit test hands it RNG output. The
 * checks return 0 or the source line of the first violated promise.
 */
#ifndef JDB_BTT_PAGES_H
#define JDB_BTT_PAGES_H

#include "bt_int.h"
#include "codec.h"

#include <stdlib.h>
#include <string.h>

/* ---- byte source ---- */
struct btt_src {
  const uint8_t *p;
  size_t n, i;
  uint64_t x;
};

static inline uint8_t btt_byte(struct btt_src *s)
{
  if (s->i < s->n)
    return s->p[s->i++];
  uint64_t z = (s->x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (uint8_t)(z ^ (z >> 31));
}

/* uniform enough in [0, n), n >= 1 */
static inline uint32_t btt_below(struct btt_src *s, uint32_t n)
{
  uint32_t v = btt_byte(s);
  if (n > 256u)
    v |= (uint32_t)btt_byte(s) << 8;
  if (n > 65536u)
    v |= (uint32_t)btt_byte(s) << 16 | (uint32_t)btt_byte(s) << 24;
  return v % n;
}

static inline uint64_t btt_u64(struct btt_src *s)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | btt_byte(s);
  return v;
}

/* ---- generated items ---- */
#define BTT_ITEMS_MAX 400u   /* more than a 4 KiB page holds (12 bytes at least per item) */

struct btt_items {
  struct bt_item it[BTT_ITEMS_MAX];
  uint32_t n;
  uint8_t keys[BTT_ITEMS_MAX][BT_KEY_MAX];
  uint8_t vals[BT_INLINE_MAX];   /* every inline value points into this */
};

static inline int btt_item_cmp(const void *a, const void *b)
{
  const struct bt_item *x = a, *y = b;
  return bt_cmp(x->key, x->klen, x->seq, y->key, y->klen, y->seq);
}

static inline uint64_t btt_seq(struct btt_src *s)
{
  switch (btt_below(s, 8)) {
  case 0: return 0;
  case 1: return UINT64_MAX;
  case 2: return UINT64_MAX - 1;
  case 3:
  case 4: return btt_below(s, 4);   /* versions of one key */
  default: return btt_u64(s);
  }
}

/* n random keys: a shared prefix (often long, sometimes up to BT_KEY_MAX) and short suffixes
   from a small alphabet, so keys repeat and extend each other. */
static inline void btt_gen_keys(struct btt_src *s, struct btt_items *b, uint32_t n)
{
  static const uint8_t alpha[4] = {'a', 'b', 0x00, 0xff};
  uint8_t pre[BT_KEY_MAX];
  uint32_t plen = btt_below(s, 6) == 0 ? btt_below(s, BT_KEY_MAX + 1u) : btt_below(s, 24);
  for (uint32_t i = 0; i < plen; i++)
    pre[i] = btt_below(s, 3) ? 'p' : btt_byte(s);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t p = btt_below(s, 4) ? plen : btt_below(s, plen + 1u);
    uint32_t sl = btt_below(s, 8) ? btt_below(s, 6) : btt_below(s, 200);
    if (p + sl > BT_KEY_MAX)
      sl = BT_KEY_MAX - p;
    if (p + sl == 0)
      sl = 1;
    memcpy(b->keys[i], pre, p);
    for (uint32_t j = 0; j < sl; j++)
      b->keys[i][p + j] = alpha[btt_below(s, 4)];
    b->it[i] = (struct bt_item){.key = b->keys[i], .klen = p + sl, .seq = btt_seq(s)};
  }
}

/* Sort, drop duplicates of (key, seq); returns the count left. */
static inline uint32_t btt_sort_unique(struct btt_items *b, uint32_t n)
{
  qsort(b->it, n, sizeof b->it[0], btt_item_cmp);
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++)
    if (k == 0 || btt_item_cmp(&b->it[k - 1], &b->it[i]) != 0)
      b->it[k++] = b->it[i];
  return k;
}

/* Encode the longest run of items [0, k), k >= lo, whose body fits a page (the body grows with
   every item), as a page of the given level (0: leaf) in page (zeroed here); b->n = k. */
static inline void btt_encode_fit(struct btt_items *b, uint32_t lo, uint32_t n, uint8_t level,
                                  uint8_t *page)
{
  uint32_t hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    uint32_t sz = level ? bt_br_body_size(b->it, mid) : bt_leaf_body_size(b->it, mid);
    if (sz <= BT_USABLE)
      lo = mid;
    else
      hi = mid - 1;
  }
  b->n = lo;
  memset(page, 0, BT_PAGE);
  if (level)
    bt_br_encode(page, b->it, b->n);
  else
    bt_leaf_encode(page, b->it, b->n);
  page[6] = level ? LAYOUT_PAGE_BRANCH : LAYOUT_PAGE_LEAF;
  page[7] = level;
  le16_put(page + 8, (uint16_t)b->n);
  if (level)
    le32_put(page + 12, bt_br_plen_of(b->it, b->n));
}

/* A valid leaf page (header type, level, count and the body) in page (BT_PAGE bytes) from the
   source; b->n items. */
static inline void btt_gen_leaf(struct btt_src *s, struct btt_items *b, uint8_t *page)
{
  for (uint32_t i = 0; i < BT_INLINE_MAX; i++)
    b->vals[i] = btt_byte(s);
  uint32_t n = 1u + btt_below(s, BTT_ITEMS_MAX);
  btt_gen_keys(s, b, n);
  n = btt_sort_unique(b, n);
  for (uint32_t i = 0; i < n; i++) {
    struct bt_item *it = &b->it[i];
    uint32_t k = btt_below(s, 4);
    if (k <= 1) {
      it->kind = BT_INLINE;
      it->vlen = btt_below(s, 6) ? btt_below(s, 20) : btt_below(s, BT_INLINE_MAX + 1u);
      it->val = b->vals;
    } else if (k == 2) {
      it->kind = BT_VREF;
      it->vlen = 1u + btt_below(s, UINT32_MAX);
      it->v64 = btt_u64(s);
    } else {
      it->kind = BT_TOMB;
    }
  }
  btt_encode_fit(b, 1, n, 0, page);
}

/* A valid branch page: item 0 is the lower bound (key unused) with child[0]; b->n >= 2 items. */
static inline void btt_gen_branch(struct btt_src *s, struct btt_items *b, uint8_t *page)
{
  uint32_t n = 2u + btt_below(s, BTT_ITEMS_MAX - 2u);
  btt_gen_keys(s, b, n);
  n = btt_sort_unique(b, n);
  if (n < 2) {   /* all keys equal: one separator after them (item 0's key is not stored) */
    b->keys[1][0] = 0xff;
    b->it[1] = (struct bt_item){.key = b->keys[1], .klen = 1, .seq = UINT64_MAX};
    n = 2;
  }
  for (uint32_t i = 0; i < n; i++) {
    b->it[i].kind = 0;
    b->it[i].v64 = 2u + (btt_below(s, 4) ? btt_below(s, 1000) : btt_u64(s) % (UINT64_MAX - 2));
  }
  btt_encode_fit(b, 2, n, (uint8_t)(1u + btt_below(s, BT_HEIGHT_MAX - 1u)), page);
}

/* ---- checks of a page the verifier accepted ---- */

/* The head a slot carries: the first 4 bytes of a suffix (leaf) or key (branch), zero-padded,
   big-endian (written here from the format text, not with the tree's helper). */
static inline uint32_t btt_head(const uint8_t *k, uint32_t len)
{
  uint32_t h = 0;
  for (uint32_t i = 0; i < 4; i++)
    h = h << 8 | (i < len ? k[i] : 0u);
  return h;
}

static inline uint32_t btt_slot_head(const uint8_t *slot)
{
  return (uint32_t)slot[2] << 24 | (uint32_t)slot[3] << 16 | (uint32_t)slot[4] << 8 | slot[5];
}

static inline int btt_in(const uint8_t *page, size_t size, const uint8_t *p, size_t n)
{
  return p >= page && p <= page + size && n <= (size_t)(page + size - p);
}

/* Every entry decodes inside the page, with lengths and kinds in range, strictly ascending, the
   prefix is the common prefix of the first and last key, and bt_leaf_lower finds each entry. */
static inline int btt_check_leaf(const uint8_t *page, size_t size)
{
  static uint8_t kfirst[BT_KEY_MAX], kb[2][BT_KEY_MAX];
  struct bt_leaf l;
  bt_leaf_init(&l, page);
  if (l.n == 0 || BT_LEAF_BASE + l.plen + (uint64_t)BT_LSLOT * l.n > size || l.plen > BT_KEY_MAX)
    return __LINE__;
  struct bt_ent e, prev = {0};
  uint32_t first_len = 0;
  for (uint32_t i = 0; i < l.n; i++) {
    const uint8_t *ep = bt_leaf_ent(&l, i);
    if (!btt_in(page, size, ep, 1) || ep < page + BT_LEAF_BASE + l.plen + BT_LSLOT * l.n)
      return __LINE__;
    bt_leaf_get(&l, i, kb[i & 1], &e);
    if (e.klen < 1 || e.klen > BT_KEY_MAX || e.klen < l.plen || e.key != kb[i & 1])
      return __LINE__;
    if (memcmp(e.key, l.prefix, l.plen) != 0)
      return __LINE__;
    if (btt_slot_head(page + BT_LEAF_BASE + l.plen + BT_LSLOT * i) !=
        btt_head(e.key + l.plen, e.klen - l.plen))
      return __LINE__;
    if (e.kind == BT_INLINE) {
      if (e.vlen > BT_INLINE_MAX || !btt_in(page, size, e.val, e.vlen))
        return __LINE__;
    } else if (e.kind == BT_VREF) {
      if (e.vlen == 0 || e.val)
        return __LINE__;
    } else if (e.kind == BT_TOMB) {
      if (e.vlen != 0 || e.val)
        return __LINE__;
    } else {
      return __LINE__;
    }
    if (i > 0 && bt_cmp(prev.key, prev.klen, prev.seq, e.key, e.klen, e.seq) >= 0)
      return __LINE__;
    if (bt_leaf_lower(&l, e.key, e.klen, e.seq) != i)
      return __LINE__;
    if (i == 0) {
      memcpy(kfirst, e.key, e.klen);
      first_len = e.klen;
    }
    prev = e;   /* its key stays in kb[i & 1] until entry i + 2 */
  }
  uint32_t lcp = l.n == 1 ? first_len : bt_lcp(kfirst, first_len, prev.key, prev.klen);
  if (lcp != l.plen)
    return __LINE__;
  return 0;
}

/* Separators strictly ascending, in range, children >= 2, bt_br_child agrees with bt_br_sep and
   bt_br_find maps each separator to its own child index (and a key before all to 0). */
static inline int btt_check_branch(const uint8_t *page, size_t size)
{
  uint32_t n = bt_br_n(page);
  if (n < 2 || BT_BR_BASE + (uint64_t)BT_LSLOT * (n - 1) > size || bt_br_child0(page) < 2 ||
      bt_br_child(page, 0) != bt_br_child0(page))
    return __LINE__;
  const uint8_t *pk = NULL, *k1 = NULL;
  uint32_t pl = 0, kl1 = 0, p = bt_br_plen(page);
  uint64_t ps = 0;
  for (uint32_t i = 1; i < n; i++) {
    const uint8_t *k;
    uint32_t kl;
    uint64_t seq, child;
    bt_br_sep(page, i, &k, &kl, &seq, &child);
    if (kl < 1 || kl > BT_KEY_MAX || !btt_in(page, size, k, kl) || child < 2 || kl < p)
      return __LINE__;
    if (bt_br_child(page, i) != child)
      return __LINE__;
    if (btt_slot_head(page + BT_BR_BASE + BT_LSLOT * (i - 1)) != btt_head(k + p, kl - p))
      return __LINE__;
    if (i == 1) {
      k1 = k;
      kl1 = kl;
    }
    if (pk && bt_cmp(pk, pl, ps, k, kl, seq) >= 0)
      return __LINE__;
    if (bt_br_find(page, k, kl, seq) != i)
      return __LINE__;
    pk = k;
    pl = kl;
    ps = seq;
  }
  if (p != bt_lcp(k1, kl1, pk, pl))   /* heads are taken after the separators' common prefix */
    return __LINE__;
  if (bt_br_find(page, (const uint8_t *)"", 0, UINT64_MAX) != 0)
    return __LINE__;
  if (p) {   /* keys that leave the prefix go before or after every separator */
    static uint8_t kb[BT_KEY_MAX];
    memcpy(kb, k1, p);
    for (uint32_t j = 0; j < p; j++) {
      if (kb[j] < 0xff) {
        kb[j]++;
        if (bt_br_find(page, kb, j + 1, UINT64_MAX) != n - 1)
          return __LINE__;
        kb[j]--;
      }
      if (kb[j] > 0) {
        kb[j]--;
        if (bt_br_find(page, kb, p, UINT64_MAX) != 0)
          return __LINE__;
        kb[j]++;
      }
    }
    if (bt_br_find(page, kb, p - 1, UINT64_MAX) != 0)   /* a proper prefix of the prefix */
      return __LINE__;
  }
  return 0;
}

static inline int btt_check_page(const uint8_t *page, size_t size, uint8_t type)
{
  if (type == LAYOUT_PAGE_LEAF)
    return btt_check_leaf(page, size);
  if (type == LAYOUT_PAGE_BRANCH)
    return btt_check_branch(page, size);
  return 0;
}

/* A page freshly built from b decodes to exactly b's items. */
static inline int btt_check_items(const uint8_t *page, uint8_t type, const struct btt_items *b)
{
  static uint8_t kb[BT_KEY_MAX];
  if (type == LAYOUT_PAGE_LEAF) {
    struct bt_leaf l;
    bt_leaf_init(&l, page);
    if (l.n != b->n)
      return __LINE__;
    for (uint32_t i = 0; i < l.n; i++) {
      struct bt_ent e;
      const struct bt_item *w = &b->it[i];
      bt_leaf_get(&l, i, kb, &e);
      if (e.klen != w->klen || memcmp(e.key, w->key, w->klen) || e.seq != w->seq ||
          e.kind != w->kind)
        return __LINE__;
      if (e.kind == BT_INLINE && (e.vlen != w->vlen || (w->vlen && memcmp(e.val, w->val, w->vlen))))
        return __LINE__;
      if (e.kind == BT_VREF && (e.vlen != w->vlen || e.vpos != w->v64))
        return __LINE__;
      if (e.kind == BT_TOMB && e.vlen != 0)
        return __LINE__;
    }
    return 0;
  }
  if (bt_br_n(page) != b->n || bt_br_child0(page) != b->it[0].v64)
    return __LINE__;
  for (uint32_t i = 1; i < b->n; i++) {
    const uint8_t *k;
    uint32_t kl;
    uint64_t seq, child;
    bt_br_sep(page, i, &k, &kl, &seq, &child);
    const struct bt_item *w = &b->it[i];
    if (kl != w->klen || memcmp(k, w->key, kl) || seq != w->seq || child != w->v64)
      return __LINE__;
  }
  return 0;
}

#endif
