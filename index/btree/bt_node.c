/*
 * bt_node.c - leaf and branch page bodies: search, decode, encode, verify (layouts in bt_int.h).
 */
#include "bt_int.h"

#include "err.h"
#include "log.h"

int bt_cmp(const void *k1, uint32_t l1, uint64_t s1, const void *k2, uint32_t l2, uint64_t s2)
{
  int c = bt_keycmp(k1, l1, k2, l2);
  return c ? c : bt_seqcmp(s1, s2);
}

/* ------------------------------------------------------------------------------------------- */
/* Leaves */

static const uint8_t *bt_leaf_val(const uint8_t *p, uint8_t *kind, uint32_t *vlen,
                                  const uint8_t **val, uint64_t *vpos)
{
  *kind = p[0];
  p++;
  *val = NULL;
  *vpos = 0;
  *vlen = 0;
  if (*kind == BT_INLINE) {
    uint32_t v;
    p = bt_vlen_fast(p, &v);
    *vlen = v;
    *val = p;
    p += v;
  } else if (*kind == BT_VREF) {
    *vpos = le64_get(p);
    *vlen = le32_get(p + 8);
    p += 12;
  }
  return p;
}

void bt_leaf_get(const struct bt_leaf *l, uint32_t i, uint8_t *kbuf, struct bt_ent *ent)
{
  const uint8_t *sfx;
  uint32_t slen;
  const uint8_t *p = bt_leaf_sfx(bt_leaf_ent(l, i), &sfx, &slen);
  memcpy(kbuf, l->prefix, l->plen);
  memcpy(kbuf + l->plen, sfx, slen);
  ent->key = kbuf;
  ent->klen = l->plen + slen;
  ent->seq = le64_get(p);
  bt_leaf_val(p + 8, &ent->kind, &ent->vlen, &ent->val, &ent->vpos);
}

void bt_leaf_item(const struct bt_leaf *l, uint32_t i, uint8_t *kbuf, struct bt_item *it)
{
  struct bt_ent e;
  bt_leaf_get(l, i, kbuf, &e);
  *it = (struct bt_item){.key = kbuf, .klen = e.klen, .seq = e.seq, .kind = e.kind,
                         .vlen = e.vlen, .val = e.val, .v64 = e.vpos};
}

uint32_t bt_leaf_lower(const struct bt_leaf *l, const uint8_t *key, uint32_t klen, uint64_t seq)
{
  uint32_t p = l->plen;
  if (p) {
    uint32_t m = klen < p ? klen : p;
    int c = memcmp(key, l->prefix, m);
    if (c < 0 || (c == 0 && klen < p))
      return 0;          /* key sorts before every key of the page */
    if (c > 0)
      return l->n;       /* after every key */
  }
  const uint8_t *k = key + p;
  uint32_t kl = klen - p;
  uint32_t th = bt_head(k, kl);
  uint32_t lo = 0, hi = l->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    uint32_t h = bt_leaf_head(l, mid);
    int c;
    if (h != th) {
      c = h < th ? -1 : 1;
    } else {
      const uint8_t *sfx;
      uint32_t slen;
      const uint8_t *q = bt_leaf_sfx(bt_leaf_ent(l, mid), &sfx, &slen);
      c = bt_keycmp(sfx, slen, k, kl);
      if (c == 0)
        c = bt_seqcmp(le64_get(q), seq);
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static uint32_t bt_leaf_prefix(const struct bt_item *it, uint32_t n)
{
  if (n == 0)
    return 0;
  return bt_lcp(it[0].key, it[0].klen, it[n - 1].key, it[n - 1].klen);
}

uint32_t bt_leaf_body_size(const struct bt_item *it, uint32_t n)
{
  uint32_t p = bt_leaf_prefix(it, n), s = 2u + p;
  for (uint32_t i = 0; i < n; i++)
    s += bt_leaf_item_size(&it[i], p);
  return s;
}

uint8_t *bt_leaf_put(uint8_t *page, uint8_t *slot, uint8_t *e, const struct bt_item *it,
                     uint32_t p)
{
  JDB_ASSERT(e - page < (ptrdiff_t)BT_PAGE);
  uint32_t sl = it->klen - p;
  le16_put(slot, (uint16_t)(e - page));
  bt_head_put(slot + 2u, bt_head(it->key + p, sl));
  e = bt_vlen_put(e, sl);
  memcpy(e, it->key + p, sl);
  e += sl;
  le64_put(e, it->seq);
  e += 8;
  *e++ = it->kind;
  if (it->kind == BT_INLINE) {
    e = bt_vlen_put(e, it->vlen);
    if (it->vlen)
      memcpy(e, it->val, it->vlen);
    e += it->vlen;
  } else if (it->kind == BT_VREF) {
    le64_put(e, it->v64);
    le32_put(e + 8, it->vlen);
    e += 12;
  }
  return e;
}

void bt_leaf_encode(uint8_t *page, const struct bt_item *it, uint32_t n)
{
  uint32_t p = bt_leaf_prefix(it, n);
  le16_put(page + BT_HDR, (uint16_t)p);
  if (p)
    memcpy(page + BT_LEAF_BASE, it[0].key, p);
  uint8_t *slot = page + BT_LEAF_BASE + p;
  uint8_t *e = slot + BT_LSLOT * n;
  for (uint32_t i = 0; i < n; i++)
    e = bt_leaf_put(page, slot + BT_LSLOT * i, e, &it[i], p);
  JDB_ASSERT(e - page <= (ptrdiff_t)BT_PAGE);
}

const uint8_t *bt_leaf_end(const struct bt_leaf *l)
{
  const uint8_t *sfx;
  uint32_t slen, v;
  const uint8_t *q = bt_leaf_sfx(bt_leaf_ent(l, l->n - 1), &sfx, &slen) + 8;
  uint8_t kind = *q++;
  if (kind == BT_INLINE) {
    q = bt_vlen_fast(q, &v);
    q += v;
  } else if (kind == BT_VREF) {
    q += 12;
  }
  return q;
}

uint32_t bt_page_used(const uint8_t *page)
{
  if (page[6] == LAYOUT_PAGE_LEAF) {
    struct bt_leaf l;
    bt_leaf_init(&l, page);
    return (uint32_t)(bt_leaf_end(&l) - page) - BT_HDR;
  }
  uint32_t n = bt_br_n(page);
  if (n < 2)
    return 8u;
  const uint8_t *k;
  uint32_t kl;
  uint64_t s, c;
  bt_br_sep(page, n - 1, &k, &kl, &s, &c);
  return (uint32_t)(k + kl + (s != UINT64_MAX ? 8u : 0u) + 8u - page) - BT_HDR;
}

int bt_leaf_verify(const uint8_t *page, size_t size, uint64_t pgno)
{
  const uint8_t *end = page + size;
  uint32_t n = le16_get(page + 8);
  uint32_t p = le16_get(page + BT_HDR);
  if (p > BT_KEY_MAX || BT_LEAF_BASE + p + (uint64_t)BT_LSLOT * n > size)
    return JDB_CORRUPT("leaf prefix or slot array out of the page", pgno);
  const uint8_t *prefix = page + BT_LEAF_BASE;
  const uint8_t *slot = prefix + p;
  const uint8_t *want = slot + BT_LSLOT * n;   /* where entry i must start */
  const uint8_t *pk = NULL;              /* previous suffix */
  uint32_t pl = 0;
  uint64_t ps = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (page + le16_get(slot + BT_LSLOT * i) != want)
      return JDB_CORRUPT("leaf slot does not point at the next entry", pgno);
    uint32_t sl;
    const uint8_t *q = bt_vlen_get(want, end, &sl);
    if (!q || sl > (uint32_t)(end - q) || p + sl == 0 || p + sl > BT_KEY_MAX ||
        end - (q + sl) < 9)
      return JDB_CORRUPT("leaf key out of the page or of bad length", pgno);
    const uint8_t *sfx = q;
    if (bt_be32_get(slot + BT_LSLOT * i + 2u) != bt_head(sfx, sl))
      return JDB_CORRUPT("leaf slot head does not match its entry", pgno);
    q += sl;
    uint64_t seq = le64_get(q);
    q += 8;
    uint8_t kind = *q++;
    if (kind == BT_INLINE) {
      uint32_t vl;
      q = bt_vlen_get(q, end, &vl);
      if (!q || vl > BT_INLINE_MAX || vl > (uint32_t)(end - q))
        return JDB_CORRUPT("leaf inline value out of the page or too long", pgno);
      q += vl;
    } else if (kind == BT_VREF) {
      if (end - q < 12 || le32_get(q + 8) == 0)
        return JDB_CORRUPT("leaf value reference out of the page or empty", pgno);
      q += 12;
    } else if (kind != BT_TOMB) {
      return JDB_CORRUPT("leaf entry of unknown kind", pgno);
    }
    if (pk && bt_cmp(pk, pl, ps, sfx, sl, seq) >= 0)
      return JDB_CORRUPT("leaf entries out of order", pgno);
    pk = sfx;
    pl = sl;
    ps = seq;
    want = q;
  }
  if (n == 0)
    return JDB_CORRUPT("empty leaf", pgno);
  /* the prefix is the common prefix of the first and last key: with one entry the whole key;
     else their suffixes differ at their first byte (or one of them is empty) */
  const uint8_t *s0, *s1;
  uint32_t l0, l1;
  bt_leaf_sfx(page + le16_get(slot), &s0, &l0);
  bt_leaf_sfx(page + le16_get(slot + BT_LSLOT * (n - 1)), &s1, &l1);
  if (n == 1 ? l0 != 0 : (l0 && l1 && s0[0] == s1[0]))
    return JDB_CORRUPT("leaf prefix is not the common prefix of its first and last key", pgno);
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Branches */

static const uint8_t *bt_br_sep_at(const uint8_t *s, const uint8_t **key, uint32_t *klen,
                                   uint64_t *seq)
{
  uint32_t v;
  s = bt_vlen_fast(s, &v);
  *key = s;
  *klen = v >> 1;
  s += v >> 1;
  if (v & 1u) {
    *seq = le64_get(s);
    s += 8;
  } else {
    *seq = UINT64_MAX;
  }
  return s;
}

void bt_br_sep(const uint8_t *page, uint32_t i, const uint8_t **key, uint32_t *klen,
               uint64_t *seq, uint64_t *child)
{
  const uint8_t *s = page + le16_get(page + BT_BR_BASE + BT_LSLOT * (i - 1));
  s = bt_br_sep_at(s, key, klen, seq);
  *child = le64_get(s);
}

uint64_t bt_br_child(const uint8_t *page, uint32_t i)
{
  if (i == 0)
    return bt_br_child0(page);
  const uint8_t *k;
  uint32_t kl;
  uint64_t s, c;
  bt_br_sep(page, i, &k, &kl, &s, &c);
  return c;
}

uint32_t bt_br_find(const uint8_t *page, const uint8_t *key, uint32_t klen, uint64_t seq)
{
  /* separators 1..n-1; find the last one <= (key, seq). Every separator starts with the same
     P bytes (the header's aux): a key differing there is before or after all of them, else the
     heads of the bytes after P order it as the keys do */
  uint32_t n = bt_br_n(page);
  uint32_t p = bt_br_plen(page);
  if (p) {
    const uint8_t *k1;
    uint32_t kl1;
    uint64_t s1;
    bt_br_sep_at(page + le16_get(page + BT_BR_BASE), &k1, &kl1, &s1);
    uint32_t m = klen < p ? klen : p;
    int c = memcmp(key, k1, m);
    if (c < 0 || (c == 0 && klen < p))
      return 0;
    if (c > 0)
      return n - 1;
  }
  uint32_t th = bt_head(key + p, klen - p);
  uint32_t lo = 1, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const uint8_t *slot = page + BT_BR_BASE + BT_LSLOT * (mid - 1);
    uint32_t h = bt_be32_get(slot + 2u);
    int c;
    if (h != th) {
      c = h < th ? -1 : 1;
    } else {
      const uint8_t *k;
      uint32_t kl;
      uint64_t s;
      bt_br_sep_at(page + le16_get(slot), &k, &kl, &s);
      c = bt_keycmp(k, kl, key, klen);
      if (c == 0)
        c = bt_seqcmp(s, seq);
    }
    if (c <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - 1;
}

uint32_t bt_br_body_size(const struct bt_item *it, uint32_t n)
{
  uint32_t s = 8u;
  for (uint32_t i = 1; i < n; i++)
    s += bt_br_item_size(&it[i]);
  return s;
}

uint32_t bt_br_plen_of(const struct bt_item *it, uint32_t n)
{
  return n >= 2 ? bt_lcp(it[1].key, it[1].klen, it[n - 1].key, it[n - 1].klen) : 0;
}

void bt_br_encode(uint8_t *page, const struct bt_item *it, uint32_t n)
{
  JDB_ASSERT(n >= 1);
  uint32_t p = bt_br_plen_of(it, n);
  le64_put(page + BT_HDR, it[0].v64);
  uint8_t *slot = page + BT_BR_BASE;
  uint8_t *e = slot + BT_LSLOT * (n - 1);
  for (uint32_t i = 1; i < n; i++) {
    le16_put(slot + BT_LSLOT * (i - 1), (uint16_t)(e - page));
    bt_head_put(slot + BT_LSLOT * (i - 1) + 2u, bt_head(it[i].key + p, it[i].klen - p));
    int has_seq = it[i].seq != UINT64_MAX;
    e = bt_vlen_put(e, it[i].klen << 1 | (uint32_t)has_seq);
    memcpy(e, it[i].key, it[i].klen);
    e += it[i].klen;
    if (has_seq) {
      le64_put(e, it[i].seq);
      e += 8;
    }
    le64_put(e, it[i].v64);
    e += 8;
  }
  JDB_ASSERT(e - page <= (ptrdiff_t)BT_PAGE);
}

int bt_br_verify(const uint8_t *page, size_t size, uint64_t pgno)
{
  const uint8_t *end = page + size;
  uint32_t n = le16_get(page + 8);
  if (n < 2 || BT_BR_BASE + (uint64_t)BT_LSLOT * (n - 1) > size)
    return JDB_CORRUPT("branch with fewer than two children or slot array out of the page", pgno);
  if (bt_br_child0(page) < 2)
    return JDB_CORRUPT("branch child is a superblock slot", pgno);
  const uint8_t *slot = page + BT_BR_BASE;
  const uint8_t *want = slot + BT_LSLOT * (n - 1);
  const uint8_t *pk = NULL, *k1 = NULL;
  uint32_t pl = 0, kl1 = 0;
  uint64_t ps = 0;
  /* the heads are taken after the aux prefix length; checked against the keys at the end (a
     head past a key's end reads nothing: bt_head stops at the length) */
  uint32_t p = bt_br_plen(page);
  if (p > BT_KEY_MAX)
    return JDB_CORRUPT("branch prefix length out of range", pgno);
  for (uint32_t i = 1; i < n; i++) {
    if (page + le16_get(slot + BT_LSLOT * (i - 1)) != want)
      return JDB_CORRUPT("branch slot does not point at the next separator", pgno);
    uint32_t v;
    const uint8_t *q = bt_vlen_get(want, end, &v);
    uint32_t kl = v >> 1;
    uint32_t need = kl + (v & 1u ? 8u : 0u) + 8u;
    if (!q || kl == 0 || kl > BT_KEY_MAX || need > (uint32_t)(end - q))
      return JDB_CORRUPT("branch separator out of the page or of bad length", pgno);
    const uint8_t *k = q;
    if (kl < p)
      return JDB_CORRUPT("branch separator shorter than the page's prefix", pgno);
    if (bt_be32_get(slot + BT_LSLOT * (i - 1) + 2u) != bt_head(k + p, kl - p))
      return JDB_CORRUPT("branch slot head does not match its separator", pgno);
    if (i == 1) {
      k1 = k;
      kl1 = kl;
    }
    q += kl;
    uint64_t seq = UINT64_MAX;
    if (v & 1u) {
      seq = le64_get(q);
      q += 8;
      if (seq == UINT64_MAX)
        return JDB_CORRUPT("branch separator with an explicit UINT64_MAX seq", pgno);
    }
    if (le64_get(q) < 2)
      return JDB_CORRUPT("branch child is a superblock slot", pgno);
    q += 8;
    if (pk && bt_cmp(pk, pl, ps, k, kl, seq) >= 0)
      return JDB_CORRUPT("branch separators out of order", pgno);
    pk = k;
    pl = kl;
    ps = seq;
    want = q;
  }
  if (p != bt_lcp(k1, kl1, pk, pl))
    return JDB_CORRUPT("branch prefix length is not the separators' common prefix", pgno);
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* pg hook */

int bt_page_verify(void *arg, const void *page, size_t page_size, const struct layout_page_hdr *h)
{
  (void)arg;
  if (h->type == LAYOUT_PAGE_LEAF)
    return bt_leaf_verify(page, page_size, h->pgno);
  if (h->type == LAYOUT_PAGE_BRANCH)
    return bt_br_verify(page, page_size, h->pgno);
  return JDB_OK;
}

void bt_pg_opts(struct pg_opts *o)
{
  o->verify = bt_page_verify;
  o->verify_arg = NULL;
}
