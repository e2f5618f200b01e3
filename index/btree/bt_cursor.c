/*
 * bt_cursor.c - readers: cursors and point lookups.
 *
 * A cursor keeps the root-to-leaf path as (page number, position, count) per level and pins only
 * the leaf. Upper pages are looked at without pins (pg_peek; pinned only while being loaded) and
 * only while the cursor descends or climbs: a committed page never changes, so one evicted in
 * between is read again, identical. Stepping past either end of a leaf climbs to the nearest level
 * that has a sibling in that direction and descends along its near edge, so next and prev cost
 * the same; the entry after the current one in the direction of travel is prefetched. Every page
 * on the way down must be a tree page one level below its parent (a wrong level, or a child page
 * number outside the file, is JDB_ECORRUPT), which also bounds the walk on a damaged tree. A
 * point lookup first tries the same descent without any pin at all and falls back to a cursor
 * when a page is not resident or the answer starts the next leaf.
 */
#include "bt_int.h"

#include "err.h"
#include "log.h"

void bt_cursor_init(struct bt_cursor *c, struct pg *pg, uint64_t root)
{
  c->pg = pg;
  c->root = root;
  c->depth = 0;
  c->leaf_fr = NULL;
  c->leaf = NULL;
  c->pf_lo = NULL;
  memset(&c->ent, 0, sizeof(c->ent));
}

void bt_cursor_close(struct bt_cursor *c)
{
  if (c->leaf_fr)
    pg_unpin(c->pg, c->leaf_fr);
  c->leaf_fr = NULL;
  c->leaf = NULL;
  c->depth = 0;
}

const struct bt_ent *bt_cursor_ent(const struct bt_cursor *c)
{
  return c->depth ? &c->ent : NULL;
}

int bt_cursor_prev_other_key(const struct bt_cursor *c)
{
  if (!c->depth)
    return 0;
  uint32_t i = c->lv[c->depth - 1].idx;
  if (i == 0)
    return 0;
  struct bt_leaf lf;
  bt_leaf_init(&lf, c->leaf);
  return bt_leaf_head(&lf, i - 1) != bt_leaf_head(&lf, i);
}

/* The bytes of tree page pgno at want_level (< 0: the root, any level): resident pages are
   peeked, others pinned (loaded and verified) and *fr set: unpin after use. Checks the type and
   level. */
static int bt_cur_page(struct bt_cursor *c, uint64_t pgno, int want_level, struct pg_frame **fr,
                       const uint8_t **page)
{
  *fr = NULL;
  const uint8_t *p = pg_peek(c->pg, pgno);
  if (!p) {
    const void *d;
    uint8_t type = want_level < 0 ? 0 : want_level ? LAYOUT_PAGE_BRANCH : LAYOUT_PAGE_LEAF;
    int rc = pg_pin(c->pg, pgno, type, fr, &d);
    if (rc == JDB_EINVAL)
      rc = JDB_CORRUPT("tree points at a page outside the pages file", pgno);
    if (rc)
      return rc;
    p = d;
  }
  if ((p[6] != LAYOUT_PAGE_LEAF && p[6] != LAYOUT_PAGE_BRANCH) ||
      (want_level >= 0 && p[7] != (uint8_t)want_level) ||
      (want_level < 0 && p[7] >= BT_HEIGHT_MAX) || (p[6] == LAYOUT_PAGE_LEAF) != (p[7] == 0)) {
    if (*fr)
      pg_unpin(c->pg, *fr);
    *fr = NULL;
    return JDB_CORRUPT("tree page of the wrong type or level", pgno);
  }
  *page = p;
  return JDB_OK;
}

/* Push page pgno (level want_level) onto the path; the idx is set by the caller. A leaf gets
   pinned and becomes c->leaf; *page is valid until the next page call. */
static int bt_cur_push(struct bt_cursor *c, uint64_t pgno, int want_level, const uint8_t **page)
{
  struct pg_frame *fr;
  int rc = bt_cur_page(c, pgno, want_level, &fr, page);
  if (rc)
    return rc;
  if ((*page)[6] == LAYOUT_PAGE_LEAF) {
    if (!fr) {
      const void *d;
      rc = pg_pin(c->pg, pgno, LAYOUT_PAGE_LEAF, &fr, &d);   /* resident: a hit */
      if (rc)
        return rc;
    }
    c->leaf_fr = fr;
    c->leaf = *page;
    c->pf_lo = NULL;
  } else if (fr) {
    pg_unpin(c->pg, fr);   /* nothing evicts it before the caller's next page call */
  }
  c->lv[c->depth] = (struct bt_cursor_level){.pgno = pgno, .n = le16_get(*page + 8),
                                              .level = (*page)[7]};
  c->depth++;
  return JDB_OK;
}

/* Prefetch the entries the cursor reaches next: entries lie in key order in the page, so the
   next few are the cache lines after (dir > 0) or before (dir < 0) entry i. Hardware prefetchers
   follow ascending streams on their own, and two lines past the next entry suffice. Descending
   ones they follow late: moving backwards the cursor keeps up to BT_PF_BACK bytes below the next
   entry requested, asking for at most BT_PF_BURST lines a step (the window grows by four lines a
   step while the walk uses about two). One entry ahead, as forwards, left seek+prev10 at
   0.61-0.74 of seek+next10 with 100-byte values (each step's entry load a miss: perf put 70 % of
   the backward walk on it); 2 KiB ahead at once: 0.85-1.10 (the same quick bench; 512 B and
   1 KiB measured within that noise), with up to 34 prefetches issued by the first step, which
   stalled there (more than the core's line-fill buffers: perf put 37 % of bt_cursor_prev on the
   instruction after them) and left later entries' loads missing (the entry-length decode of a
   step back took 1.6x the samples of a step forward). Four lines a step: the prefetch's own
   samples down 2.5x, tablet seek+prev10 / seek+next10 paired medians 0.90-0.94 (2 KiB at once:
   0.87-0.91, same session). */
#define BT_PF_BACK 2048
#define BT_PF_BURST 4
static inline void bt_cur_prefetch(struct bt_cursor *c, uint32_t i, int dir)
{
  const struct bt_cursor_level *l = &c->lv[c->depth - 1];
  if (i >= l->n)
    return;
  struct bt_leaf lf;
  bt_leaf_init(&lf, c->leaf);
  const uint8_t *e = bt_leaf_ent(&lf, i);
  if (dir > 0) {
    for (int k = 0; k < 3; k++)
      if (e + 64 * k < c->leaf + BT_PAGE)
        __builtin_prefetch(e + 64 * k);
    return;
  }
  /* addresses as integers: the window may start below the page. Entry 0 starts right after
     the slot array (bt_leaf_verify checks it), found without loading slot 0, whose line the
     seek's binary search may not have touched (a miss on every first step back). */
  uintptr_t at = (uintptr_t)e;
  uintptr_t base = (uintptr_t)(lf.prefix + lf.plen + BT_LSLOT * (size_t)lf.n);
  uintptr_t want = (at - base > BT_PF_BACK ? at - BT_PF_BACK : base) & ~(uintptr_t)63;
  uintptr_t q = c->pf_lo && (uintptr_t)c->pf_lo <= at + 64 ? (uintptr_t)c->pf_lo : at + 64;
  for (int k = 0; q > want && k < BT_PF_BURST; q -= 64, k++)
    __builtin_prefetch((const void *)(q - 64));
  if (!c->pf_lo || q < (uintptr_t)c->pf_lo)
    c->pf_lo = (const uint8_t *)q;
}

/* The child pointer at lv[d].idx of interior level d. */
static int bt_cur_child(struct bt_cursor *c, uint32_t d, uint64_t *child)
{
  struct pg_frame *fr;
  const uint8_t *page;
  int rc = bt_cur_page(c, c->lv[d].pgno, c->lv[d].level, &fr, &page);
  if (rc)
    return rc;
  *child = bt_br_child(page, c->lv[d].idx);
  if (fr)
    pg_unpin(c->pg, fr);
  return JDB_OK;
}

/* Descend from the deepest level on the path (a branch whose idx is set) to a leaf, taking the
   first (dir > 0) or last (dir < 0) child at each level below. */
static int bt_cur_descend(struct bt_cursor *c, int dir)
{
  while (!c->leaf) {
    const struct bt_cursor_level *l = &c->lv[c->depth - 1];
    uint64_t child;
    const uint8_t *page;
    int rc = bt_cur_child(c, c->depth - 1, &child);
    if (rc == JDB_OK)
      rc = bt_cur_push(c, child, l->level - 1, &page);
    if (rc)
      return rc;
    struct bt_cursor_level *k = &c->lv[c->depth - 1];
    k->idx = dir > 0 ? 0 : k->n - 1u;
  }
  return JDB_OK;
}

static void bt_cur_load(struct bt_cursor *c)
{
  struct bt_leaf l;
  bt_leaf_init(&l, c->leaf);
  bt_leaf_get(&l, c->lv[c->depth - 1].idx, c->key, &c->ent);
}

static int bt_cur_fail(struct bt_cursor *c, int rc)
{
  bt_cursor_close(c);
  return rc;
}

/* Move to the neighbouring leaf in direction dir; JDB_NOTFOUND at the end of the tree. */
static int bt_cur_step_leaf(struct bt_cursor *c, int dir)
{
  uint32_t d = c->depth - 1;   /* the leaf */
  while (d > 0) {
    const struct bt_cursor_level *p = &c->lv[d - 1];
    if (dir > 0 ? p->idx + 1u < p->n : p->idx > 0)
      break;
    d--;
  }
  if (d == 0)
    return bt_cur_fail(c, JDB_NOTFOUND);
  pg_unpin(c->pg, c->leaf_fr);
  c->leaf_fr = NULL;
  c->leaf = NULL;
  c->depth = d;
  struct bt_cursor_level *p = &c->lv[d - 1];
  p->idx = dir > 0 ? p->idx + 1 : p->idx - 1;
  int rc = bt_cur_descend(c, dir);
  if (rc)
    return bt_cur_fail(c, rc);
  return JDB_OK;
}

static int bt_cur_root(struct bt_cursor *c, const uint8_t **page)
{
  bt_cursor_close(c);
  if (!c->root)
    return JDB_NOTFOUND;
  return bt_cur_push(c, c->root, -1, page);
}

static int bt_cur_edge(struct bt_cursor *c, int dir)
{
  const uint8_t *page;
  int rc = bt_cur_root(c, &page);
  if (rc)
    return bt_cur_fail(c, rc);
  struct bt_cursor_level *l = &c->lv[0];
  l->idx = dir > 0 ? 0 : l->n - 1u;
  rc = bt_cur_descend(c, dir);
  if (rc)
    return bt_cur_fail(c, rc);
  bt_cur_load(c);
  return JDB_OK;
}

int bt_cursor_first(struct bt_cursor *c)
{
  return bt_cur_edge(c, 1);
}

int bt_cursor_last(struct bt_cursor *c)
{
  return bt_cur_edge(c, -1);
}

/* Descend towards (key, seq); leaves the leaf's idx at the first entry >= it (may be n). */
static int bt_cur_find(struct bt_cursor *c, const void *key, uint32_t klen, uint64_t seq)
{
  if (!key || klen == 0 || klen > BT_KEY_MAX) {
    bt_cursor_close(c);
    return JDB_EINVAL;
  }
  const uint8_t *page;
  int rc = bt_cur_root(c, &page);
  while (rc == JDB_OK) {
    struct bt_cursor_level *l = &c->lv[c->depth - 1];
    if (c->leaf) {
      struct bt_leaf lf;
      bt_leaf_init(&lf, c->leaf);
      l->idx = bt_leaf_lower(&lf, key, klen, seq);
      return JDB_OK;
    }
    l->idx = bt_br_find(page, key, klen, seq);
    rc = bt_cur_push(c, bt_br_child(page, l->idx), l->level - 1, &page);
  }
  return bt_cur_fail(c, rc);
}

int bt_cursor_seek(struct bt_cursor *c, const void *key, uint32_t klen, uint64_t seq)
{
  int rc = bt_cur_find(c, key, klen, seq);
  if (rc)
    return rc;
  struct bt_cursor_level *l = &c->lv[c->depth - 1];
  if (l->idx == l->n) {
    rc = bt_cur_step_leaf(c, 1);
    if (rc)
      return rc;
  }
  bt_cur_load(c);
  return JDB_OK;
}

int bt_cursor_seek_prev(struct bt_cursor *c, const void *key, uint32_t klen, uint64_t seq)
{
  int rc = bt_cur_find(c, key, klen, seq);
  if (rc)
    return rc;
  struct bt_cursor_level *l = &c->lv[c->depth - 1];
  if (l->idx < l->n) {
    /* an exact match is the answer; compare in place before decoding anything */
    struct bt_leaf lf;
    bt_leaf_init(&lf, c->leaf);
    const uint8_t *sfx;
    uint32_t slen;
    const uint8_t *q = bt_leaf_sfx(bt_leaf_ent(&lf, l->idx), &sfx, &slen);
    if (lf.plen + slen == klen && le64_get(q) == seq && memcmp(lf.prefix, key, lf.plen) == 0 &&
        memcmp(sfx, (const uint8_t *)key + lf.plen, slen) == 0) {
      bt_cur_load(c);
      return JDB_OK;
    }
  }
  if (l->idx == 0) {
    rc = bt_cur_step_leaf(c, -1);
    if (rc)
      return rc;
  } else {
    l->idx--;
  }
  bt_cur_prefetch(c, c->lv[c->depth - 1].idx - 1, -1);
  bt_cur_load(c);
  return JDB_OK;
}

int bt_cursor_next(struct bt_cursor *c)
{
  if (!c->depth)
    return JDB_NOTFOUND;
  struct bt_cursor_level *l = &c->lv[c->depth - 1];
  if (l->idx + 1u < l->n) {
    l->idx++;
  } else {
    int rc = bt_cur_step_leaf(c, 1);
    if (rc)
      return rc;
  }
  bt_cur_prefetch(c, c->lv[c->depth - 1].idx + 1, 1);
  bt_cur_load(c);
  return JDB_OK;
}

int bt_cursor_prev(struct bt_cursor *c)
{
  if (!c->depth)
    return JDB_NOTFOUND;
  struct bt_cursor_level *l = &c->lv[c->depth - 1];
  if (l->idx > 0) {
    l->idx--;
  } else {
    int rc = bt_cur_step_leaf(c, -1);
    if (rc)
      return rc;
  }
  bt_cur_prefetch(c, c->lv[c->depth - 1].idx - 1, -1);
  bt_cur_load(c);
  return JDB_OK;
}

/* The answer from a resident leaf (bt_get_peek, bt_get_many) whose slot i is the first entry
   >= (key, snap) (bt_leaf_lower): 0 when it cannot tell (the entry sought may start the next
   leaf), else 1 with *rc JDB_OK (out filled) or JDB_NOTFOUND. */
static int bt_peek_leaf_at(const uint8_t *page, uint32_t i, const uint8_t *key, uint32_t klen,
                           struct bt_ent *out, void *vbuf, int *rc)
{
  struct bt_leaf l;
  bt_leaf_init(&l, page);
  if (i == l.n)
    return 0;
  const uint8_t *sfx;
  uint32_t slen;
  const uint8_t *q = bt_leaf_sfx(bt_leaf_ent(&l, i), &sfx, &slen);
  if (l.plen + slen != klen || memcmp(sfx, key + l.plen, slen) != 0 ||
      (l.plen && memcmp(l.prefix, key, l.plen) != 0)) {
    *rc = JDB_NOTFOUND;
    return 1;
  }
  *out = (struct bt_ent){.key = key, .klen = klen, .seq = le64_get(q), .kind = q[8]};
  q += 9;
  if (out->kind == BT_INLINE) {
    q = bt_vlen_fast(q, &out->vlen);
    if (out->vlen)
      memcpy(vbuf, q, out->vlen);
    out->val = vbuf;
  } else if (out->kind == BT_VREF) {
    out->vpos = le64_get(q);
    out->vlen = le32_get(q + 8);
  }
  *rc = JDB_OK;
  return 1;
}

static int bt_peek_leaf(const uint8_t *page, const uint8_t *key, uint32_t klen, uint64_t snap,
                        struct bt_ent *out, void *vbuf, int *rc)
{
  struct bt_leaf l;
  bt_leaf_init(&l, page);
  return bt_peek_leaf_at(page, bt_leaf_lower(&l, key, klen, snap), key, klen, out, vbuf, rc);
}

/* A peeked page's type and level as its parent says (level: the parent's minus one; ~0u for the
   root, which may be anything a tree page may be). */
static int bt_peek_fits(const uint8_t *page, uint32_t level)
{
  if (level == ~0u)
    return page[6] == LAYOUT_PAGE_LEAF ? page[7] == 0 : page[6] == LAYOUT_PAGE_BRANCH;
  return page[7] == level && (level == 0) == (page[6] == LAYOUT_PAGE_LEAF);
}

/* The lookup without pins, while every page on the path is resident (nothing can be evicted
   while the fiber does not yield). Returns 0 when it cannot answer (a page not in memory, a
   damaged level, or the entry sought starting the next leaf): the caller takes the cursor path,
   which loads, checks and reports. */
static int bt_get_peek(struct pg *pg, uint64_t root, const uint8_t *key, uint32_t klen,
                       uint64_t snap, struct bt_ent *out, void *vbuf, int *rc)
{
  const uint8_t *page = pg_peek(pg, root);
  if (!page || !bt_peek_fits(page, ~0u))
    return 0;
  while (page[6] == LAYOUT_PAGE_BRANCH) {
    uint32_t level = page[7];
    uint32_t i = bt_br_find(page, key, klen, snap);
    page = pg_peek(pg, bt_br_child(page, i));
    if (!page || !bt_peek_fits(page, level - 1))
      return 0;
  }
  return bt_peek_leaf(page, key, klen, snap, out, vbuf, rc);
}

/* Prefetch the lines a search of page reads first, once its header line is in the cache: the
   slots the first two rounds of the binary search compare (the middle, then a quarter either
   side) and, in a branch with a common prefix, separator 1 (bt_br_find compares the key's
   prefix with it). Loading the whole slot array instead would queue up to 16 lines per page for
   a group of 16 lookups, more than the core keeps in flight. */
static void bt_prefetch_search(const uint8_t *page)
{
  uint32_t n = le16_get(page + 8);
  const uint8_t *slots;
  if (page[6] == LAYOUT_PAGE_BRANCH) {
    if (n < 2)
      return;
    n--;
    slots = page + BT_BR_BASE;
    if (bt_br_plen(page))
      __builtin_prefetch(page + le16_get(slots));
  } else {
    slots = page + BT_LEAF_BASE + le16_get(page + BT_HDR);
  }
  if ((size_t)(slots - page) + (size_t)BT_LSLOT * n > BT_PAGE)
    return;   /* a bad count: the search path checks nothing, it cannot be reached */
  __builtin_prefetch(slots + BT_LSLOT * (n / 2));
  __builtin_prefetch(slots + BT_LSLOT * (n / 4));
  __builtin_prefetch(slots + BT_LSLOT * (3 * n / 4));
}

static void bt_get_group(struct pg *pg, uint64_t root, struct bt_get_req *r, size_t n)
{
  uint64_t pgno[BT_GET_GROUP];
  const uint8_t *page[BT_GET_GROUP];
  uint8_t state[BT_GET_GROUP];   /* 1: going down; 0: answered; 2: for bt_get */
  uint32_t slot[BT_GET_GROUP];   /* the child to take; in a leaf, the first entry >= the key */
  size_t live = 0;
  for (size_t i = 0; i < n; i++) {
    r[i].rc = JDB_EINVAL;
    state[i] = 0;
    if (!r[i].key || r[i].klen == 0 || r[i].klen > BT_KEY_MAX)
      continue;
    r[i].rc = JDB_NOTFOUND;
    if (!root)
      continue;
    pgno[i] = root;
    state[i] = 1;
    live++;
  }
  uint32_t level = ~0u;   /* the level the pages peeked next must have (~0u: the root's) */
  while (live) {
    for (size_t i = 0; i < n; i++)
      if (state[i] == 1)
        pg_peek_prefetch(pg, pgno[i]);
    for (size_t i = 0; i < n; i++) {
      if (state[i] != 1)
        continue;
      page[i] = pg_peek(pg, pgno[i]);
      if (!page[i]) {
        state[i] = 2;
        live--;
        continue;
      }
      __builtin_prefetch(page[i]);   /* the header line */
    }
    for (size_t i = 0; i < n; i++) {
      if (state[i] != 1)
        continue;
      if (!bt_peek_fits(page[i], level)) {
        state[i] = 2;
        live--;
        continue;
      }
      bt_prefetch_search(page[i]);
    }
    uint32_t next = ~0u;
    int leaves = 0;
    for (size_t i = 0; i < n; i++) {
      if (state[i] != 1)
        continue;
      const uint8_t *pgd = page[i];
      if (level == ~0u && next == ~0u)
        next = pgd[7];   /* all lookups share the root */
      if (pgd[6] == LAYOUT_PAGE_BRANCH) {
        /* the child's number sits after its separator: read it once all are on their way */
        slot[i] = bt_br_find(pgd, r[i].key, r[i].klen, r[i].snap);
        if (slot[i])
          __builtin_prefetch(pgd + le16_get(pgd + BT_BR_BASE + BT_LSLOT * (slot[i] - 1)));
        continue;
      }
      /* a leaf: find the slot now, read the entry once all of the group's are on their way */
      struct bt_leaf l;
      bt_leaf_init(&l, pgd);
      slot[i] = bt_leaf_lower(&l, r[i].key, r[i].klen, r[i].snap);
      if (slot[i] < l.n)
        __builtin_prefetch(bt_leaf_ent(&l, slot[i]));
      leaves = 1;
    }
    for (size_t i = 0; !leaves && i < n; i++)
      if (state[i] == 1)
        pgno[i] = bt_br_child(page[i], slot[i]);
    for (size_t i = 0; leaves && i < n; i++) {
      if (state[i] != 1)
        continue;
      state[i] = bt_peek_leaf_at(page[i], slot[i], r[i].key, r[i].klen, &r[i].out, r[i].vbuf,
                                 &r[i].rc)
                     ? 0
                     : 2;
      live--;
    }
    level = (level == ~0u ? next : level) - 1;
  }
  /* the peeks are over: from here lookups may park and pages may go */
  for (size_t i = 0; i < n; i++)
    if (state[i] == 2)
      r[i].rc = bt_get(pg, root, r[i].key, r[i].klen, r[i].snap, &r[i].out, r[i].vbuf);
}

void bt_get_many(struct pg *pg, uint64_t root, struct bt_get_req *r, size_t n)
{
  for (size_t g = 0; g < n; g += BT_GET_GROUP)
    bt_get_group(pg, root, r + g, n - g < BT_GET_GROUP ? n - g : BT_GET_GROUP);
}

int bt_get(struct pg *pg, uint64_t root, const void *key, uint32_t klen, uint64_t snap_seq,
           struct bt_ent *out, void *vbuf)
{
  int rc;
  if (!key || klen == 0 || klen > BT_KEY_MAX)
    return JDB_EINVAL;
  if (!root)
    return JDB_NOTFOUND;
  if (bt_get_peek(pg, root, key, klen, snap_seq, out, vbuf, &rc))
    return rc;
  struct bt_cursor c;
  bt_cursor_init(&c, pg, root);
  rc = bt_cursor_seek(&c, key, klen, snap_seq);
  if (rc == JDB_OK) {
    if (c.ent.klen != klen || memcmp(c.ent.key, key, klen) != 0) {
      rc = JDB_NOTFOUND;
    } else {
      *out = c.ent;
      out->key = key;
      if (out->kind == BT_INLINE) {
        if (out->vlen)
          memcpy(vbuf, c.ent.val, out->vlen);
        out->val = vbuf;
      }
    }
  }
  bt_cursor_close(&c);
  return rc;
}
