/*
 * bt_int.h - inside the B+ tree: page body layouts (docs/FORMAT.md "B+ tree pages") and the
 * helpers the node, apply, cursor and check files share.
 *
 * Leaf body (page header type LEAF, level 0, count = n entries):
 *   32            u16 P: prefix length; then P prefix bytes
 *   34+P          slot[n], 6 bytes each, in key order: u16 page offset of entry i, then the
 *                 entry's head: the first 4 bytes of its suffix, zero-padded, as a big-endian
 *                 u32 (binary search compares heads and reads an entry only on a tie)
 *   34+P+6n       entries, back to back in slot order (slot[0] is where they start):
 *                   klen'  suffix length (1 or 2 bytes, see bt_vlen)
 *                   suffix the key without the prefix (full key = prefix ‖ suffix, 1..BT_KEY_MAX)
 *                   seq    u64
 *                   kind   u8: BT_INLINE, BT_VREF, BT_TOMB
 *                   INLINE: vlen' (1 or 2 bytes) and vlen bytes; VREF: u64 pos, u32 len (>= 1)
 *   rest zero.
 * Branch body (type BRANCH, level 1..32, count = n children >= 1, header aux = P: the length
 * of the common prefix of separators 1 and n-1, so of all of them):
 *   32            u64 child[0]
 *   40            slot[n-1], 6 bytes each, in key order: u16 page offset of separator i
 *                 (1..n-1), then the head of its key's bytes after the first P (as leaf slots:
 *                 composite keys share their table id, so heads of whole keys would all tie)
 *   40+6(n-1)     separators back to back in slot order:
 *                   klen'  (key length << 1 | has_seq), 1 or 2 bytes
 *                   key    1..BT_KEY_MAX bytes
 *                   seq    u64, present only when has_seq (absent: UINT64_MAX, i.e. the first
 *                          possible entry of key)
 *                   child  u64: the child holding entries >= this separator (and < the next)
 *   rest zero.
 * Child i holds exactly the entries e with sep[i] <= e < sep[i+1] (sep[0] and sep[n] are the
 * bounds the parent gives the page). Small length fields (bt_vlen): one byte (high bit clear)
 * for values below 128, else two bytes (high bit set, then 15 bits big-endian).
 */
#ifndef JDB_BT_INT_H
#define JDB_BT_INT_H

#include "bt.h"
#include "codec.h"

#include <string.h>

#define BT_PAGE LAYOUT_PAGE_SIZE
#define BT_HDR LAYOUT_PAGE_HDR_SIZE
#define BT_LEAF_BASE (BT_HDR + 2u)                 /* after the prefix length */
#define BT_BR_BASE (BT_HDR + 8u)                   /* after child[0] */
#define BT_LSLOT 6u                                /* leaf slot: u16 offset + u32 head */
#define BT_USABLE (BT_PAGE - BT_HDR)
#define BT_FILL_MIN (BT_USABLE / 4u)               /* a page under this many body bytes is underfull */

/* ---- small length fields ---- */
static inline uint32_t bt_vlen_size(uint32_t v)
{
  return v < 128u ? 1u : 2u;
}
static inline uint8_t *bt_vlen_put(uint8_t *p, uint32_t v)
{
  if (v < 128u) {
    *p = (uint8_t)v;
    return p + 1;
  }
  p[0] = (uint8_t)(0x80u | (v >> 8));
  p[1] = (uint8_t)v;
  return p + 2;
}
/* Decode at p (end: one past the last readable byte). Returns the byte after, NULL if short. */
static inline const uint8_t *bt_vlen_get(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
  if (p >= end)
    return NULL;
  if (!(p[0] & 0x80u)) {
    *v = p[0];
    return p + 1;
  }
  if (end - p < 2)
    return NULL;
  *v = ((uint32_t)(p[0] & 0x7fu) << 8) | p[1];
  return p + 2;
}

/* Decode from a verified page (no bounds). */
static inline const uint8_t *bt_vlen_fast(const uint8_t *p, uint32_t *v)
{
  if (!(p[0] & 0x80u)) {
    *v = p[0];
    return p + 1;
  }
  *v = ((uint32_t)(p[0] & 0x7fu) << 8) | p[1];
  return p + 2;
}

/* The head of a suffix: its first 4 bytes, zero-padded, big-endian (so heads order as memcmp
   does, and unequal heads decide a comparison). */
static inline uint32_t bt_head(const uint8_t *s, uint32_t len)
{
  uint32_t h = 0;
  for (uint32_t i = 0; i < 4; i++)
    h = h << 8 | (i < len ? s[i] : 0u);
  return h;
}
static inline void bt_head_put(uint8_t *p, uint32_t h)
{
  p[0] = (uint8_t)(h >> 24);
  p[1] = (uint8_t)(h >> 16);
  p[2] = (uint8_t)(h >> 8);
  p[3] = (uint8_t)h;
}
static inline uint32_t bt_be32_get(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- keys ---- */
static inline int bt_keycmp(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
  uint32_t m = la < lb ? la : lb;
  int c = m ? memcmp(a, b, m) : 0;
  if (c)
    return c;
  return la < lb ? -1 : la > lb ? 1 : 0;
}
static inline int bt_seqcmp(uint64_t a, uint64_t b)   /* seq descending */
{
  return a > b ? -1 : a < b ? 1 : 0;
}
static inline uint32_t bt_lcp(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
  uint32_t m = la < lb ? la : lb, i = 0;
  while (i < m && a[i] == b[i])
    i++;
  return i;
}

/* ---- decoded items: one leaf entry or one branch child ---- */
struct bt_item {
  const uint8_t *key;   /* leaf: full key; branch: the child's lower bound (item 0: the node's) */
  uint32_t klen;
  uint64_t seq;         /* branch: UINT64_MAX when the bound has no seq */
  uint8_t kind;         /* leaf: enum bt_kind; branch: 0 */
  uint8_t fresh;        /* branch: child written by this apply (may be underfull) */
  uint32_t grp;         /* branch: nonzero for the pages one borrow produced (bt_fix_level) */
  uint32_t vlen;
  const uint8_t *val;   /* leaf INLINE */
  uint64_t v64;         /* leaf VREF: position; branch: child pgno */
};

/* Bytes an item takes in a page body, slot included (prefix p for leaves). */
static inline uint32_t bt_leaf_item_size(const struct bt_item *it, uint32_t p)
{
  uint32_t s = BT_LSLOT + bt_vlen_size(it->klen - p) + (it->klen - p) + 8u + 1u;
  if (it->kind == BT_INLINE)
    s += bt_vlen_size(it->vlen) + it->vlen;
  else if (it->kind == BT_VREF)
    s += 12u;
  return s;
}
static inline uint32_t bt_br_item_size(const struct bt_item *it)
{
  uint32_t s = BT_LSLOT + bt_vlen_size(it->klen << 1 | 1u) + it->klen + 8u;
  if (it->seq != UINT64_MAX)
    s += 8u;
  return s;
}

/* ---- leaf access (page already verified) ---- */
struct bt_leaf {
  const uint8_t *page;
  uint32_t n;
  uint32_t plen;
  const uint8_t *prefix;
};
static inline void bt_leaf_init(struct bt_leaf *l, const uint8_t *page)
{
  l->page = page;
  l->n = le16_get(page + 8);
  l->plen = le16_get(page + BT_HDR);
  l->prefix = page + BT_LEAF_BASE;
}
static inline const uint8_t *bt_leaf_ent(const struct bt_leaf *l, uint32_t i)
{
  return l->page + le16_get(l->page + BT_LEAF_BASE + l->plen + BT_LSLOT * i);
}
static inline uint32_t bt_leaf_head(const struct bt_leaf *l, uint32_t i)
{
  return bt_be32_get(l->page + BT_LEAF_BASE + l->plen + BT_LSLOT * i + 2u);
}
/* Decode the suffix of the entry at e: *sfx, *slen; returns the byte after the suffix (seq). */
static inline const uint8_t *bt_leaf_sfx(const uint8_t *e, const uint8_t **sfx, uint32_t *slen)
{
  uint32_t v;
  e = bt_vlen_fast(e, &v);
  *sfx = e;
  *slen = v;
  return e + v;
}

/* Fill ent from leaf entry i; the full key is written to kbuf (BT_KEY_MAX bytes). */
void bt_leaf_get(const struct bt_leaf *l, uint32_t i, uint8_t *kbuf, struct bt_ent *ent);
/* Decode entry i as an item whose key is prefix ‖ suffix copied to kbuf (klen bytes). */
void bt_leaf_item(const struct bt_leaf *l, uint32_t i, uint8_t *kbuf, struct bt_item *it);
/* First slot whose entry is >= (key, seq) (n if none). */
uint32_t bt_leaf_lower(const struct bt_leaf *l, const uint8_t *key, uint32_t klen, uint64_t seq);

/* ---- branch access (page already verified) ---- */
/* Most children a verified branch can have (every slot takes BT_LSLOT bytes of the body). */
#define BT_BR_CHILDREN_MAX (BT_USABLE / BT_LSLOT + 1u)
static inline uint32_t bt_br_n(const uint8_t *page)
{
  return le16_get(page + 8);
}
static inline uint64_t bt_br_child0(const uint8_t *page)
{
  return le64_get(page + BT_HDR);
}
/* P: the separators' common prefix length, kept in the page header's aux field. */
static inline uint32_t bt_br_plen(const uint8_t *page)
{
  return le32_get(page + 12);
}
/* Separator i (1..n-1): key, seq (UINT64_MAX when absent), child. */
void bt_br_sep(const uint8_t *page, uint32_t i, const uint8_t **key, uint32_t *klen,
               uint64_t *seq, uint64_t *child);
uint64_t bt_br_child(const uint8_t *page, uint32_t i);
/* Child index whose range holds (key, seq): the last separator <= it (0 if none). */
uint32_t bt_br_find(const uint8_t *page, const uint8_t *key, uint32_t klen, uint64_t seq);

/* ---- encoders: write items [0, n) into a zeroed page body; header fields via pg ---- */
/* Leaf body bytes (header excluded) for items with the prefix they would get. */
uint32_t bt_leaf_body_size(const struct bt_item *it, uint32_t n);
void bt_leaf_encode(uint8_t *page, const struct bt_item *it, uint32_t n);
/* Write one entry (prefix length p) at e and its slot at slot; returns the end of the entry. */
uint8_t *bt_leaf_put(uint8_t *page, uint8_t *slot, uint8_t *e, const struct bt_item *it,
                     uint32_t p);
/* Body bytes a verified tree page uses (header excluded). */
uint32_t bt_page_used(const uint8_t *page);
/* One past the last byte of the last entry of a verified, non-empty leaf. */
const uint8_t *bt_leaf_end(const struct bt_leaf *l);
/* Branch: it[0].v64 becomes child[0] (its key is the page's lower bound, not stored). */
uint32_t bt_br_body_size(const struct bt_item *it, uint32_t n);
/* The header aux (P) a branch of these items needs: set it with the other header fields. */
uint32_t bt_br_plen_of(const struct bt_item *it, uint32_t n);
void bt_br_encode(uint8_t *page, const struct bt_item *it, uint32_t n);

/* Structure checks of a page body (the verifier's core), also used by bt_check. */
int bt_leaf_verify(const uint8_t *page, size_t size, uint64_t pgno);
int bt_br_verify(const uint8_t *page, size_t size, uint64_t pgno);

#endif
