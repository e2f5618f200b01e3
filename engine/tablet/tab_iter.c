/*
 * tab_iter.c - iterators: the view's sources (active memtable, frozen memtable, tree) merged in
 * both directions, showing per key the newest version with seq <= the snapshot, hiding
 * tombstones and shadowed versions.
 *
 * Each source has a cursor over all its versions in tree order (key ascending, seq descending)
 * limited to one table's space (the 9-byte prefix). Moving forwards, every source sits at or
 * after the current key; the next key is the smallest source key, and at it each source skips
 * versions newer than the snapshot, so the first remaining version of each source is a candidate
 * (the highest seq wins; on equal seqs the newer source). Moving backwards is the mirror image:
 * every source sits at or before the current key, the previous key is the largest, and each
 * source walks its versions of that key from the oldest up, remembering the newest one <= the
 * snapshot, until a version newer than the snapshot or another key. Both directions step the
 * cursors one entry at a time; only a change of direction repositions them with a seek.
 *
 * The entry found is copied (key; inline value, or the reference of a value in the log, read on
 * first use), so the sources may move on.
 */
#include "tab_int.h"

#include "codec.h"
#include "err.h"
#include "mem.h"
#include "vlog.h"
#include "wal.h"

#include <string.h>

enum { TAB_SRC_MT = 1, TAB_SRC_BT = 2 };

struct tab_src {
  int type;
  int valid;
  int lag;                  /* backwards: the entry under the cursor is used up, the one before
                               it holds another key, and the step onto it is still owed */
  struct mt_cursor mc;
  struct bt_cursor *bc;
  struct bt_ent e;          /* the entry under the cursor when valid */
};

/* A candidate version copied out of a source. */
struct tab_cand {
  int have;
  uint64_t seq;
  uint8_t kind;
  uint32_t vlen;
  uint64_t vpos;
  uint8_t val[BT_INLINE_MAX];
};

struct tab_iter {
  struct tab *t;
  struct tab_view *v;
  struct tab_snap *own;      /* snapshot taken by open, when the caller gave none */
  uint64_t seq;
  uint8_t lo[TAB_PREFIX_LEN], hi[TAB_PREFIX_LEN];   /* prefix and its successor */
  int nsrc;
  struct tab_src src[3];
  int dir;                   /* +1 forwards, -1 backwards, 0 unpositioned */
  /* the current entry */
  uint8_t key[TAB_IKEY_MAX + 1];
  uint32_t klen;
  struct tab_cand fwd;       /* the current entry when found moving forwards */
  const struct tab_cand *cur;   /* the current entry: fwd, or the winning cand[] backwards */
  uint8_t *vbuf;             /* an out-of-line value, once read */
  size_t vcap;
  int vloaded;
  struct tab_cand cand[3];   /* backwards walk scratch */
  struct bt_cursor bc;
};

/* ------------------------------------------------------------------------------------------- */
/* Sources */

static int tab_src_load(struct tab_iter *it, struct tab_src *s, int rc)
{
  s->lag = 0;
  if (rc == JDB_OK) {
    if (s->type == TAB_SRC_MT) {
      struct mt_ent me;
      mt_cursor_ent(&s->mc, &me);
      s->e = (struct bt_ent){.key = me.key, .klen = me.klen, .seq = me.seq, .kind = me.kind,
                             .vlen = me.vlen, .val = me.val, .vpos = me.vpos};
    } else {
      s->e = *bt_cursor_ent(s->bc);
    }
    if (s->e.klen > TAB_PREFIX_LEN && memcmp(s->e.key, it->lo, TAB_PREFIX_LEN) == 0) {
      s->valid = 1;
      return JDB_OK;
    }
    rc = JDB_NOTFOUND;
  }
  s->valid = 0;
  if (s->type == TAB_SRC_BT)
    bt_cursor_close(s->bc);
  return rc == JDB_NOTFOUND ? JDB_OK : rc;
}

static int tab_src_seek(struct tab_iter *it, struct tab_src *s, const uint8_t *k, uint32_t kl,
                        uint64_t seq)
{
  int rc = s->type == TAB_SRC_MT ? mt_cursor_seek(&s->mc, k, kl, seq)
                                 : bt_cursor_seek(s->bc, k, kl, seq);
  return tab_src_load(it, s, rc);
}

static int tab_src_seek_prev(struct tab_iter *it, struct tab_src *s, const uint8_t *k,
                             uint32_t kl, uint64_t seq)
{
  int rc = s->type == TAB_SRC_MT ? mt_cursor_seek_prev(&s->mc, k, kl, seq)
                                 : bt_cursor_seek_prev(s->bc, k, kl, seq);
  return tab_src_load(it, s, rc);
}

static int tab_src_step(struct tab_iter *it, struct tab_src *s, int dir)
{
  int rc;
  if (s->type == TAB_SRC_MT)
    rc = dir > 0 ? mt_cursor_next(&s->mc) : mt_cursor_prev(&s->mc);
  else
    rc = dir > 0 ? bt_cursor_next(s->bc) : bt_cursor_prev(s->bc);
  return tab_src_load(it, s, rc);
}

static int tab_key_eq(const struct tab_src *s, const uint8_t *k, uint32_t kl)
{
  return s->valid && !s->lag && s->e.klen == kl && memcmp(s->e.key, k, kl) == 0;
}

static int tab_key_cmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}

static void tab_cand_take(struct tab_cand *c, const struct bt_ent *e)
{
  c->have = 1;
  c->seq = e->seq;
  c->kind = e->kind;
  c->vlen = e->vlen;
  c->vpos = e->vpos;
  if (e->kind == BT_INLINE && e->vlen)
    memcpy(c->val, e->val, e->vlen);
}

static void tab_iter_unposition(struct tab_iter *it)
{
  it->dir = 0;
  for (int i = 0; i < it->nsrc; i++) {
    it->src[i].valid = 0;
    it->src[i].lag = 0;
    if (it->src[i].type == TAB_SRC_BT)
      bt_cursor_close(it->src[i].bc);
  }
}

static int tab_iter_fail(struct tab_iter *it, int rc)
{
  tab_iter_unposition(it);
  return rc;
}

/* The smallest (dir > 0) or largest key among valid sources, copied to it->key. 0 if none. */
static int tab_iter_pick(struct tab_iter *it, int dir)
{
  const struct bt_ent *best = NULL;
  for (int i = 0; i < it->nsrc; i++) {
    const struct tab_src *s = &it->src[i];
    if (!s->valid)
      continue;
    if (!best) {
      best = &s->e;
      continue;
    }
    int c = tab_key_cmp(s->e.key, s->e.klen, best->key, best->klen);
    if ((dir > 0 && c < 0) || (dir < 0 && c > 0))
      best = &s->e;
  }
  if (!best)
    return 0;
  memcpy(it->key, best->key, best->klen);
  it->klen = best->klen;
  return 1;
}

/* Every source past the current key in direction dir. */
static int tab_iter_skip(struct tab_iter *it, int dir)
{
  for (int i = 0; i < it->nsrc; i++) {
    struct tab_src *s = &it->src[i];
    while (tab_key_eq(s, it->key, it->klen)) {
      int rc = tab_src_step(it, s, dir);
      if (rc)
        return rc;
    }
  }
  return JDB_OK;
}

static int tab_iter_settle_fwd(struct tab_iter *it)
{
  for (;;) {
    if (!tab_iter_pick(it, +1))
      return tab_iter_fail(it, JDB_NOTFOUND);
    int best = -1;
    uint64_t bseq = 0;
    for (int i = 0; i < it->nsrc; i++) {
      struct tab_src *s = &it->src[i];
      while (tab_key_eq(s, it->key, it->klen) && s->e.seq > it->seq) {
        int rc = tab_src_step(it, s, +1);
        if (rc)
          return tab_iter_fail(it, rc);
      }
      if (tab_key_eq(s, it->key, it->klen) && (best < 0 || s->e.seq > bseq)) {
        best = i;
        bseq = s->e.seq;
      }
    }
    if (best >= 0 && it->src[best].e.kind != BT_TOMB) {
      tab_cand_take(&it->fwd, &it->src[best].e);
      it->cur = &it->fwd;
      it->vloaded = 0;
      it->dir = +1;
      return JDB_OK;
    }
    int rc = tab_iter_skip(it, +1);
    if (rc)
      return tab_iter_fail(it, rc);
  }
}

/* Backwards, a tree source stops on a key's last version when its slot array shows that the
   entry before holds another key, and owes the step (lag) until the next move needs it: a walk of
   n keys back then steps n times, not n + 1 (seek+prev10 stepped 11 times where seek+next10
   stepped 10). */
static int tab_iter_settle_rev(struct tab_iter *it)
{
  for (;;) {
    for (int i = 0; i < it->nsrc; i++)
      if (it->src[i].lag) {
        int rc = tab_src_step(it, &it->src[i], -1);
        if (rc)
          return tab_iter_fail(it, rc);
      }
    if (!tab_iter_pick(it, -1))
      return tab_iter_fail(it, JDB_NOTFOUND);
    int best = -1;
    for (int i = 0; i < it->nsrc; i++) {
      struct tab_src *s = &it->src[i];
      struct tab_cand *c = &it->cand[i];
      c->have = 0;
      while (tab_key_eq(s, it->key, it->klen) && s->e.seq <= it->seq) {
        tab_cand_take(c, &s->e);
        if (s->type == TAB_SRC_BT && bt_cursor_prev_other_key(s->bc)) {
          s->lag = 1;
          break;
        }
        int rc = tab_src_step(it, s, -1);
        if (rc)
          return tab_iter_fail(it, rc);
      }
      if (c->have && (best < 0 || c->seq > it->cand[best].seq))
        best = i;
    }
    /* Sources still at this key hold only versions newer than the snapshot: step past them. */
    int rc = tab_iter_skip(it, -1);
    if (rc)
      return tab_iter_fail(it, rc);
    if (best >= 0 && it->cand[best].kind != BT_TOMB) {
      it->cur = &it->cand[best];   /* no copy: cand[] is only rewritten by the next move */
      it->vloaded = 0;
      it->dir = -1;
      return JDB_OK;
    }
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Positioning */

static int tab_iter_seek_all(struct tab_iter *it, const uint8_t *k, uint32_t kl, uint64_t seq,
                             int prev)
{
  for (int i = 0; i < it->nsrc; i++) {
    int rc = prev ? tab_src_seek_prev(it, &it->src[i], k, kl, seq)
                  : tab_src_seek(it, &it->src[i], k, kl, seq);
    if (rc)
      return tab_iter_fail(it, rc);
  }
  return JDB_OK;
}

int tab_iter_first(struct tab_iter *it)
{
  if (!it)
    return JDB_EINVAL;
  int rc = tab_iter_seek_all(it, it->lo, TAB_PREFIX_LEN, UINT64_MAX, 0);
  return rc ? rc : tab_iter_settle_fwd(it);
}

int tab_iter_last(struct tab_iter *it)
{
  if (!it)
    return JDB_EINVAL;
  int rc = tab_iter_seek_all(it, it->hi, TAB_PREFIX_LEN, UINT64_MAX, 1);
  return rc ? rc : tab_iter_settle_rev(it);
}

static int tab_iter_ikey(struct tab_iter *it, const void *key, uint32_t klen, uint8_t *ik)
{
  if (!key || klen == 0 || klen > TAB_NAME_MAX)
    return 0;
  memcpy(ik, it->lo, TAB_PREFIX_LEN);
  memcpy(ik + TAB_PREFIX_LEN, key, klen);
  return 1;
}

int tab_iter_seek(struct tab_iter *it, const void *key, uint32_t klen)
{
  uint8_t ik[TAB_IKEY_MAX];
  if (!it || !tab_iter_ikey(it, key, klen, ik))
    return JDB_EINVAL;
  int rc = tab_iter_seek_all(it, ik, TAB_PREFIX_LEN + klen, UINT64_MAX, 0);
  return rc ? rc : tab_iter_settle_fwd(it);
}

int tab_iter_seek_prev(struct tab_iter *it, const void *key, uint32_t klen)
{
  uint8_t ik[TAB_IKEY_MAX];
  if (!it || !tab_iter_ikey(it, key, klen, ik))
    return JDB_EINVAL;
  int rc = tab_iter_seek_all(it, ik, TAB_PREFIX_LEN + klen, 0, 1);
  return rc ? rc : tab_iter_settle_rev(it);
}

int tab_iter_next(struct tab_iter *it)
{
  if (!it || !it->dir)
    return JDB_EINVAL;
  int rc;
  if (it->dir < 0)   /* turn: every source to the first entry after the current key */
    rc = tab_iter_seek_all(it, it->key, it->klen, 0, 0);
  else
    rc = tab_iter_skip(it, +1);
  if (rc)
    return tab_iter_fail(it, rc);
  return tab_iter_settle_fwd(it);
}

int tab_iter_prev(struct tab_iter *it)
{
  if (!it || !it->dir)
    return JDB_EINVAL;
  int rc;
  if (it->dir > 0)   /* turn: every source to the last entry before the current key */
    rc = tab_iter_seek_all(it, it->key, it->klen, UINT64_MAX, 1);
  else
    rc = JDB_OK;     /* settle_rev left every source before the current key */
  if (rc)
    return tab_iter_fail(it, rc);
  return tab_iter_settle_rev(it);
}

int tab_iter_key(struct tab_iter *it, const void **key, size_t *klen)
{
  if (!it || !key || !klen || !it->dir)
    return JDB_EINVAL;
  *key = it->key + TAB_PREFIX_LEN;
  *klen = it->klen - TAB_PREFIX_LEN;
  return JDB_OK;
}

int tab_iter_value(struct tab_iter *it, const void **val, size_t *vlen)
{
  if (!it || !val || !vlen || !it->dir)
    return JDB_EINVAL;
  if (it->cur->kind == BT_INLINE) {
    *val = it->cur->val;
    *vlen = it->cur->vlen;
    return JDB_OK;
  }
  if (!it->vloaded) {
    if (it->cur->vlen > it->vcap) {
      uint8_t *p = mem_realloc(it->vbuf, it->cur->vlen);
      if (!p)
        return JDB_ENOMEM;
      it->vbuf = p;
      it->vcap = it->cur->vlen;
    }
    struct wal_vref ref = {.pos = it->cur->vpos, .len = it->cur->vlen};
    int rc = vlog_read(it->t->vlog, ref, it->vbuf);
    if (rc)
      return rc;
    it->vloaded = 1;
  }
  *val = it->vbuf;
  *vlen = it->cur->vlen;
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Open / close */

int tab_iter_open_space(struct tab *t, const struct tab_snap *snap, uint64_t table,
                        uint8_t space, struct tab_iter **out)
{
  *out = NULL;
  struct tab_iter *it = mem_calloc(1, sizeof *it);
  if (!it)
    return JDB_ENOMEM;
  it->t = t;
  if (!snap) {
    int rc = tab_snapshot(t, &it->own);
    if (rc) {
      mem_free(it);
      return rc;
    }
    snap = it->own;
  }
  it->v = snap->v;
  it->v->refs++;
  it->seq = snap->seq;
  tab_ikey(it->lo, table, space, NULL, 0);
  tab_ikey(it->hi, table, (uint8_t)(space + 1), NULL, 0);
  struct tab_mt *ms[2] = {it->v->act, it->v->frz};
  for (int i = 0; i < 2; i++) {
    if (!ms[i])
      continue;
    struct tab_src *s = &it->src[it->nsrc++];
    s->type = TAB_SRC_MT;
    mt_cursor_init(&s->mc, ms[i]->m);
  }
  if (it->v->root) {
    struct tab_src *s = &it->src[it->nsrc++];
    s->type = TAB_SRC_BT;
    s->bc = &it->bc;
    bt_cursor_init(s->bc, t->pg, it->v->root);
  }
  t->st.snapshots++;
  *out = it;
  return JDB_OK;
}

int tab_iter_open(struct tab *t, const struct tab_snap *snap, uint64_t table,
                  struct tab_iter **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!t || table < TAB_ID_FIRST || table >= t->next_id || (snap && snap->t != t))
    return JDB_EINVAL;
  return tab_iter_open_space(t, snap, table, TAB_SPACE_KV, out);
}

void tab_iter_close(struct tab_iter *it)
{
  if (!it)
    return;
  tab_iter_unposition(it);
  it->t->st.snapshots--;
  tab_view_unref(it->t, it->v);
  tab_snapshot_release(it->own);
  mem_free(it->vbuf);
  mem_free(it);
}
