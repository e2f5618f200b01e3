/*
 * bt_cursor.c - readers: cursors (the root-to-leaf path, one pin per level) and point lookups.
 *
 * Stepping past either end of a leaf climbs to the nearest level that has a sibling in that
 * direction and descends along its nearest edge, so next and prev cost the same. Every child
 * pinned must be one level below its parent (a wrong level, or a child page number outside the
 * file, is JDB_ECORRUPT), which also bounds the walk on a damaged tree.
 */
#include "bt_int.h"

#include "err.h"
#include "log.h"

void bt_cursor_init(struct bt_cursor *c, struct pg *pg, uint64_t root)
{
  c->pg = pg;
  c->root = root;
  c->depth = 0;
  memset(&c->ent, 0, sizeof(c->ent));
}

void bt_cursor_close(struct bt_cursor *c)
{
  while (c->depth) {
    c->depth--;
    pg_unpin(c->pg, c->lv[c->depth].fr);
  }
}

const struct bt_ent *bt_cursor_ent(const struct bt_cursor *c)
{
  return c->depth ? &c->ent : NULL;
}

/* Pin pgno as level d of the path. want_level < 0: the root (any level). */
static int bt_cur_pin(struct bt_cursor *c, uint64_t pgno, int want_level)
{
  struct bt_cursor_level *l = &c->lv[c->depth];
  const void *d;
  uint8_t type = want_level < 0 ? 0 : want_level ? LAYOUT_PAGE_BRANCH : LAYOUT_PAGE_LEAF;
  int rc = pg_pin(c->pg, pgno, type, &l->fr, &d);
  if (rc == JDB_EINVAL)
    rc = JDB_CORRUPT("tree points at a page outside the pages file", pgno);
  if (rc)
    return rc;
  const uint8_t *p = d;
  if ((want_level >= 0 && p[7] != (uint8_t)want_level) ||
      (p[6] != LAYOUT_PAGE_LEAF && p[6] != LAYOUT_PAGE_BRANCH) ||
      (want_level < 0 && p[7] >= BT_HEIGHT_MAX)) {
    pg_unpin(c->pg, l->fr);
    return JDB_CORRUPT("tree page of the wrong type or level", pgno);
  }
  l->page = p;
  l->n = le16_get(p + 8);
  l->idx = 0;
  c->depth++;
  return JDB_OK;
}

static inline int bt_cur_is_leaf(const struct bt_cursor_level *l)
{
  return l->page[6] == LAYOUT_PAGE_LEAF;
}

/* Descend from the deepest pinned level (a branch whose idx is set) to a leaf, taking the
   first (dir > 0) or last (dir < 0) child at each level below. */
static int bt_cur_descend(struct bt_cursor *c, int dir)
{
  for (;;) {
    struct bt_cursor_level *l = &c->lv[c->depth - 1];
    if (bt_cur_is_leaf(l)) {
      l->idx = dir > 0 ? 0 : l->n - 1;
      return JDB_OK;
    }
    int rc = bt_cur_pin(c, bt_br_child(l->page, l->idx), l->page[7] - 1);
    if (rc)
      return rc;
    struct bt_cursor_level *k = &c->lv[c->depth - 1];
    if (!bt_cur_is_leaf(k))
      k->idx = dir > 0 ? 0 : k->n - 1;
  }
}

static void bt_cur_load(struct bt_cursor *c)
{
  struct bt_leaf l;
  bt_leaf_init(&l, c->lv[c->depth - 1].page);
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
    struct bt_cursor_level *p = &c->lv[d - 1];
    if (dir > 0 ? p->idx + 1 < p->n : p->idx > 0)
      break;
    d--;
  }
  if (d == 0)
    return bt_cur_fail(c, JDB_NOTFOUND);
  while (c->depth > d) {
    c->depth--;
    pg_unpin(c->pg, c->lv[c->depth].fr);
  }
  struct bt_cursor_level *p = &c->lv[d - 1];
  p->idx = dir > 0 ? p->idx + 1 : p->idx - 1;
  int rc = bt_cur_descend(c, dir);
  if (rc)
    return bt_cur_fail(c, rc);
  return JDB_OK;
}

static int bt_cur_root(struct bt_cursor *c)
{
  bt_cursor_close(c);
  if (!c->root)
    return JDB_NOTFOUND;
  return bt_cur_pin(c, c->root, -1);
}

static int bt_cur_edge(struct bt_cursor *c, int dir)
{
  int rc = bt_cur_root(c);
  if (rc)
    return bt_cur_fail(c, rc);
  struct bt_cursor_level *l = &c->lv[0];
  l->idx = dir > 0 ? 0 : l->n - 1;
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
  int rc = bt_cur_root(c);
  while (rc == JDB_OK) {
    struct bt_cursor_level *l = &c->lv[c->depth - 1];
    if (bt_cur_is_leaf(l)) {
      struct bt_leaf lf;
      bt_leaf_init(&lf, l->page);
      l->idx = bt_leaf_lower(&lf, key, klen, seq);
      return JDB_OK;
    }
    l->idx = bt_br_find(l->page, key, klen, seq);
    rc = bt_cur_pin(c, bt_br_child(l->page, l->idx), l->page[7] - 1);
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
    bt_cur_load(c);
    if (bt_cmp(c->ent.key, c->ent.klen, c->ent.seq, key, klen, seq) == 0)
      return JDB_OK;
  }
  if (l->idx == 0) {
    rc = bt_cur_step_leaf(c, -1);
    if (rc)
      return rc;
  } else {
    l->idx--;
  }
  bt_cur_load(c);
  return JDB_OK;
}

int bt_cursor_next(struct bt_cursor *c)
{
  if (!c->depth)
    return JDB_NOTFOUND;
  struct bt_cursor_level *l = &c->lv[c->depth - 1];
  if (l->idx + 1 < l->n) {
    l->idx++;
  } else {
    int rc = bt_cur_step_leaf(c, 1);
    if (rc)
      return rc;
  }
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
  bt_cur_load(c);
  return JDB_OK;
}

/* The lookup without pins, while every page on the path is resident (nothing can be evicted
   while the fiber does not yield). Returns 0 when it cannot answer (a page not in memory, a
   damaged level, or the entry sought starting the next leaf): the caller takes the cursor path,
   which loads, checks and reports. */
static int bt_get_peek(struct pg *pg, uint64_t root, const uint8_t *key, uint32_t klen,
                       uint64_t snap, struct bt_ent *out, void *vbuf, int *rc)
{
  const uint8_t *page = pg_peek(pg, root);
  if (!page)
    return 0;
  uint32_t level = page[7];
  while (page[6] == LAYOUT_PAGE_BRANCH) {
    uint32_t i = bt_br_find(page, key, klen, snap);
    page = pg_peek(pg, bt_br_child(page, i));
    if (!page || page[7] != level - 1 || (level == 1) != (page[6] == LAYOUT_PAGE_LEAF))
      return 0;
    level--;
  }
  if (page[6] != LAYOUT_PAGE_LEAF || level != 0)
    return 0;
  struct bt_leaf l;
  bt_leaf_init(&l, page);
  uint32_t i = bt_leaf_lower(&l, key, klen, snap);
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
