/*
 * bt_check.c - whole-tree invariant check for tests and debugging (bt.h).
 */
#include "bt_int.h"

#include "err.h"
#include "log.h"
#include "mem.h"

struct bt_chk {
  struct pg *pg;
  int fill;
  int all;                /* BT_CHECK_ALL: count a damaged subtree and go on */
  uint32_t leaf_depth;    /* depth of the first leaf met; every leaf must be at it */
  struct bt_check_stats st;
  /* the last entry seen, to check order across leaves */
  uint8_t last[BT_KEY_MAX];
  uint32_t last_len;
  uint64_t last_seq;
  int have_last;
  uint8_t kb[BT_KEY_MAX];
};

struct bt_bound {
  const uint8_t *key;   /* NULL: unbounded */
  uint32_t klen;
  uint64_t seq;
};

static int bt_in_bounds(const uint8_t *k, uint32_t kl, uint64_t s, const struct bt_bound *lo,
                        const struct bt_bound *hi)
{
  if (lo->key && bt_cmp(lo->key, lo->klen, lo->seq, k, kl, s) > 0)
    return 0;
  if (hi->key && bt_cmp(k, kl, s, hi->key, hi->klen, hi->seq) >= 0)
    return 0;
  return 1;
}

/* Body bytes children i and i+1 of branch `parent` would take as one page. */
static int bt_chk_pair(struct bt_chk *ck, const uint8_t *parent, uint32_t i, uint32_t *size)
{
  struct pg_frame *fa, *fb;
  const void *da, *db;
  int rc = pg_pin(ck->pg, bt_br_child(parent, i), 0, &fa, &da);
  if (rc)
    return rc;
  rc = pg_pin(ck->pg, bt_br_child(parent, i + 1), 0, &fb, &db);
  if (rc) {
    pg_unpin(ck->pg, fa);
    return rc;
  }
  const uint8_t *pp[2] = {da, db};
  uint32_t n = le16_get(pp[0] + 8) + le16_get(pp[1] + 8);
  struct bt_item *it = mem_calloc(n, sizeof *it);
  uint8_t *keys = NULL;
  rc = it ? JDB_OK : JDB_ENOMEM;
  if (rc == JDB_OK && pp[0][6] == LAYOUT_PAGE_LEAF) {
    keys = mem_malloc((size_t)n * BT_KEY_MAX);
    rc = keys ? JDB_OK : JDB_ENOMEM;
    for (uint32_t s = 0, k = 0; rc == JDB_OK && s < 2; s++) {
      struct bt_leaf l;
      bt_leaf_init(&l, pp[s]);
      for (uint32_t j = 0; j < l.n; j++, k++)
        bt_leaf_item(&l, j, keys + (size_t)k * BT_KEY_MAX, &it[k]);
    }
    if (rc == JDB_OK)
      *size = bt_leaf_body_size(it, n);
  } else if (rc == JDB_OK) {
    /* the right page's first child is bounded by the parent's separator i+1 */
    for (uint32_t s = 0, k = 0; s < 2; s++) {
      uint32_t m = bt_br_n(pp[s]);
      for (uint32_t j = 0; j < m; j++, k++) {
        const uint8_t *pg = j ? pp[s] : parent;
        uint32_t at = j ? j : i + 1;
        if (j || s)
          bt_br_sep(pg, at, &it[k].key, &it[k].klen, &it[k].seq, &it[k].v64);
        else
          it[k].seq = UINT64_MAX;
      }
    }
    *size = bt_br_body_size(it, n);
  }
  mem_free(keys);
  mem_free(it);
  pg_unpin(ck->pg, fa);
  pg_unpin(ck->pg, fb);
  return rc;
}

/* A page under a quarter full is allowed only where it cannot be merged with a neighbour under
   the same parent that is itself under a quarter full: the two would not fit one page. (A page
   left underfull because it fit with no neighbour may later sit next to a neighbour that a run
   shrank without making it underfull; rewriting would need reading every neighbour of every
   page a run writes, so that pair is allowed.) */
static int bt_chk_fill(struct bt_chk *ck, const uint8_t *parent, uint32_t i)
{
  uint32_t n = bt_br_n(parent);
  if (i + 1 >= n)
    return JDB_OK;
  uint32_t used[2];
  for (uint32_t s = 0; s < 2; s++) {
    struct pg_frame *fr;
    const void *d;
    int rc = pg_pin(ck->pg, bt_br_child(parent, i + s), 0, &fr, &d);
    if (rc)
      return rc;
    used[s] = bt_page_used(d);
    pg_unpin(ck->pg, fr);
  }
  if (used[0] >= BT_FILL_MIN || used[1] >= BT_FILL_MIN)
    return JDB_OK;
  uint32_t size;
  int rc = bt_chk_pair(ck, parent, i, &size);
  if (rc)
    return rc;
  if (size <= BT_USABLE)
    return JDB_CORRUPT("two neighbouring pages under the minimum fill that fit one page",
                       bt_br_child(parent, i));
  return JDB_OK;
}

static int bt_chk_node(struct bt_chk *ck, uint64_t pgno, int level, uint32_t depth,
                       const struct bt_bound *lo, const struct bt_bound *hi, int is_root)
{
  if (depth >= BT_HEIGHT_MAX)
    return JDB_CORRUPT("tree deeper than the maximum height", pgno);
  struct pg_frame *fr;
  const void *d;
  int rc = pg_pin(ck->pg, pgno, 0, &fr, &d);
  if (rc == JDB_EINVAL)
    rc = JDB_CORRUPT("tree points at a page outside the pages file", pgno);
  if (rc)
    return rc;
  const uint8_t *page = d;
  uint8_t type = page[6];
  if (level >= 0 && page[7] != level)
    rc = JDB_CORRUPT("child level is not its parent's level minus one", pgno);
  else if (type == LAYOUT_PAGE_LEAF)
    rc = bt_leaf_verify(page, BT_PAGE, pgno);
  else if (type == LAYOUT_PAGE_BRANCH)
    rc = bt_br_verify(page, BT_PAGE, pgno);
  else
    rc = JDB_CORRUPT("tree page of a non-tree type", pgno);
  if (rc)
    goto out;
  if (type == LAYOUT_PAGE_LEAF) {
    struct bt_leaf l;
    bt_leaf_init(&l, page);
    uint32_t used = bt_page_used(page);
    (void)is_root;   /* fill is judged by the parent, which sees the siblings */
    if (ck->leaf_depth == UINT32_MAX)
      ck->leaf_depth = depth;
    else if (ck->leaf_depth != depth) {
      rc = JDB_CORRUPT("leaves at different depths", pgno);
      goto out;
    }
    for (uint32_t i = 0; i < l.n; i++) {
      struct bt_ent e;
      bt_leaf_get(&l, i, ck->kb, &e);
      if (!bt_in_bounds(e.key, e.klen, e.seq, lo, hi)) {
        rc = JDB_CORRUPT("leaf entry outside the bounds its parent gives", pgno);
        goto out;
      }
      if (ck->have_last && bt_cmp(ck->last, ck->last_len, ck->last_seq, e.key, e.klen, e.seq) >= 0) {
        rc = JDB_CORRUPT("entries out of order across leaves", pgno);
        goto out;
      }
      memcpy(ck->last, e.key, e.klen);
      ck->last_len = e.klen;
      ck->last_seq = e.seq;
      ck->have_last = 1;
      ck->st.key_bytes += e.klen;
    }
    ck->st.entries += l.n;
    ck->st.leaves++;
    ck->st.leaf_bytes += BT_HDR + used;
    ck->st.prefix_saved += (uint64_t)(l.n - 1) * l.plen;
    if (depth + 1 > ck->st.height)
      ck->st.height = depth + 1;
    goto out;
  }
  /* branch */
  uint32_t n = bt_br_n(page);

  ck->st.branches++;
  struct bt_bound clo = *lo;
  for (uint32_t i = 0; i < n && rc == JDB_OK; i++) {
    struct bt_bound chi = *hi;
    uint64_t child = bt_br_child0(page), c;
    if (i > 0) {
      uint64_t s;
      const uint8_t *k;
      uint32_t kl;
      bt_br_sep(page, i, &k, &kl, &s, &child);
      (void)k;
      (void)kl;
      (void)s;
    }
    if (i + 1 < n) {
      bt_br_sep(page, i + 1, &chi.key, &chi.klen, &chi.seq, &c);
      if (!bt_in_bounds(chi.key, chi.klen, chi.seq, lo, hi) ||
          (hi->key && bt_cmp(chi.key, chi.klen, chi.seq, hi->key, hi->klen, hi->seq) == 0)) {
        rc = JDB_CORRUPT("separator outside the bounds its parent gives", pgno);
        break;
      }
    }
    rc = bt_chk_node(ck, child, page[7] - 1, depth + 1, &clo, &chi, 0);
    if (rc == JDB_ECORRUPT && ck->all) {
      ck->st.damaged++;   /* counted once, here; the siblings are still walked */
      rc = JDB_OK;
    } else if (rc == JDB_OK && ck->fill) {
      rc = bt_chk_fill(ck, page, i);
    }
    clo = chi;
  }
out:
  pg_unpin(ck->pg, fr);
  return rc;
}

int bt_check(struct pg *pg, uint64_t root, unsigned flags, struct bt_check_stats *st)
{
  struct bt_chk *ck = mem_calloc(1, sizeof(*ck));
  if (!ck)
    return JDB_ENOMEM;
  ck->pg = pg;
  ck->fill = (flags & BT_CHECK_FILL) != 0;
  ck->all = (flags & BT_CHECK_ALL) != 0;
  ck->leaf_depth = UINT32_MAX;
  struct bt_bound inf = {0};
  int rc = root ? bt_chk_node(ck, root, -1, 0, &inf, &inf, 1) : JDB_OK;
  if (ck->all) {
    if (rc == JDB_ECORRUPT)
      ck->st.damaged++;   /* the root's own damage */
    if (rc == JDB_OK && ck->st.damaged)
      rc = JDB_ECORRUPT;
  }
  if (st)
    *st = ck->st;
  mem_free(ck);
  return rc;
}
