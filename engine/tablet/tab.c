/*
 * tab.c - the tablet: open and recovery, the write path, point reads, views and snapshots, the
 * table catalog, statistics, checks (tab_check, tab_verify). Checkpoints are in tab_ckpt.c,
 * iterators in tab_iter.c.
 *
 * Read-only (tab_opts.read_only): every path that would log something (tab_commit: writes,
 * catalog changes) or checkpoint (tab_ckpt, tab_ckpt_maybe, tab_close) refuses first; open
 * creates nothing. Recovery reads the log without repairing it (wal_opts.read_only: a torn tail
 * is left as it is, no segment is synced, created or removed), so a read-only open writes
 * nothing at all - several may share a directory no writer holds.
 *
 * Recovery, exactly once: the superblock names the first log record that is not in its tree
 * (replay_pos) and the highest seq the tree holds (seq_max). Every BATCH record from replay_pos
 * on is applied to the memtable; seqs must rise strictly (a record that does not is corruption),
 * and a record at or below seq_max (impossible unless the files were mixed) is not applied
 * again. A batch applies wholly or not at all: the log yields whole records only.
 */
#include "tab_int.h"

#include "clock.h"
#include "codec.h"
#include "coro.h"
#include "err.h"
#include "fs.h"
#include "log.h"
#include "mem.h"
#include "pg.h"
#include "vlog.h"
#include "wal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define TAB_BATCH_MAX (1u << 20)

static struct tab_acct *tab_acct_find(struct tab *t, uint32_t seg, int add);

/* Make room for `need` elements of `size` bytes in *v (capacity *cap, doubled from `first`). */
static int tab_grow(void **v, size_t *cap, size_t need, size_t size, size_t first)
{
  if (need <= *cap)
    return JDB_OK;
  size_t c = *cap ? *cap : first;
  while (c < need)
    c *= 2;
  void *p = mem_realloc(*v, c * size);
  if (!p)
    return JDB_ENOMEM;
  *v = p;
  *cap = c;
  return JDB_OK;
}

size_t tab_ikey(uint8_t *buf, uint64_t table, uint8_t space, const void *key, uint32_t klen)
{
  be64_put(buf, table);
  buf[8] = space;
  if (klen)
    memcpy(buf + 9, key, klen);
  return 9u + klen;
}

/* ------------------------------------------------------------------------------------------- */
/* Views */

static void tab_reclaim(struct tab *t)
{
  uint64_t oldest = UINT64_MAX;
  for (struct tab_view *v = t->views.next; v != &t->views; v = v->next)
    if (v->gen < oldest)
      oldest = v->gen;
  if (oldest != UINT64_MAX)
    pg_reclaim(t->pg, oldest);
}

void tab_mt_unref(struct tab_mt *m)
{
  if (m && --m->refs == 0) {
    mt_destroy(m->m);
    mem_free(m);
  }
}

struct tab_view *tab_view_ref(struct tab *t)
{
  t->cur->refs++;
  return t->cur;
}

void tab_view_unref(struct tab *t, struct tab_view *v)
{
  if (!v || --v->refs)
    return;
  v->prev->next = v->next;
  v->next->prev = v->prev;
  tab_mt_unref(v->act);
  tab_mt_unref(v->frz);
  mem_free(v);
  if (t->pg)
    tab_reclaim(t);
}

int tab_view_install(struct tab *t, struct tab_mt *act, struct tab_mt *frz, uint64_t root,
                     uint64_t gen)
{
  struct tab_view *v = mem_calloc(1, sizeof *v);
  if (!v)
    return JDB_ENOMEM;
  v->refs = 1;
  v->act = act;
  v->frz = frz;
  act->refs++;
  if (frz)
    frz->refs++;
  v->root = root;
  v->gen = gen;
  v->next = &t->views;
  v->prev = t->views.prev;
  t->views.prev->next = v;
  t->views.prev = v;
  struct tab_view *old = t->cur;
  t->cur = v;
  tab_view_unref(t, old);
  return JDB_OK;
}

int tab_mt_new(const struct tab *t, struct tab_mt **out)
{
  struct tab_mt *m = mem_calloc(1, sizeof *m);
  if (!m)
    return JDB_ENOMEM;
  /* arena chunks small enough that the budget is crossed near memtable_bytes, not a chunk late */
  size_t chunk = (size_t)(t->o.memtable_bytes / 16);
  chunk = chunk < (64u << 10) ? (64u << 10) : chunk > (1u << 20) ? (1u << 20) : chunk;
  /* a hash slot per 128 bytes of budget: about one per entry of 16-byte keys and 100-byte values
     (nodes of ~170 bytes), 6 % of the budget */
  size_t slots = (size_t)(t->o.memtable_bytes / 128);
  int rc = mt_create(chunk, slots, &m->m);
  if (rc) {
    mem_free(m);
    return rc;
  }
  m->refs = 1;
  *out = m;
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Applying a batch to a memtable (the write path and replay share it) */

struct tab_apply_op {
  uint8_t kind;            /* WAL_OP_PUT / WAL_OP_DEL */
  const uint8_t *key;      /* space ‖ key, as logged */
  uint32_t klen;
  const uint8_t *val;      /* inline value (when ref.len == 0) */
  uint32_t vlen;
  struct wal_vref ref;
};

/* Ops are applied last to first, so that of two ops on one key the later one is the entry (the
   earlier one meets JDB_EEXIST and is skipped), MT_PUT_GROUP at a time through mt_put_many (their
   searches overlap their cache misses). A value referenced in the log is accounted live in vlog
   when it becomes an entry. Nothing here parks, so the key scratch is the tablet's. */
#define TAB_IK_STRIDE (8u + WAL_KEY_MAX)
static int tab_mt_apply(struct tab *t, struct mt *m, uint64_t table, uint64_t seq,
                        const struct tab_apply_op *ops, uint32_t n)
{
  if (!t->apply_ik && !(t->apply_ik = mem_malloc((size_t)MT_PUT_GROUP * TAB_IK_STRIDE)))
    return JDB_ENOMEM;
  struct mt_put_req q[MT_PUT_GROUP];
  for (uint32_t hi = n; hi > 0;) {
    uint32_t lo = hi > MT_PUT_GROUP ? hi - MT_PUT_GROUP : 0;
    for (uint32_t i = lo; i < hi; i++) {
      const struct tab_apply_op *op = &ops[i];
      uint8_t *ik = t->apply_ik + (size_t)(i - lo) * TAB_IK_STRIDE;
      be64_put(ik, table);
      memcpy(ik + 8, op->key, op->klen);
      uint8_t kind = op->kind == WAL_OP_DEL ? MT_TOMB : op->ref.len ? MT_VREF : MT_INLINE;
      q[i - lo] = (struct mt_put_req){
          .key = ik, .klen = 8 + op->klen, .kind = kind, .val = op->val,
          .vlen = kind == MT_VREF ? op->ref.len : kind == MT_INLINE ? op->vlen : 0,
          .vpos = op->ref.pos};
    }
    int rc = mt_put_many(m, seq, q, hi - lo);
    if (rc)
      return rc;
    for (uint32_t i = hi; i-- > lo;) {
      rc = q[i - lo].rc;
      if (rc == JDB_EEXIST)
        continue;
      if (rc)
        return rc;
      if (q[i - lo].kind == MT_VREF && (rc = vlog_account_add(t->vlog, ops[i].ref)) != JDB_OK)
        return rc;
    }
    hi = lo;
  }
  return JDB_OK;
}

static int tab_scratch(struct tab *t, size_t bytes, uint32_t n)
{
  if (bytes > t->scratch_cap) {
    size_t cap = t->scratch_cap ? t->scratch_cap : 4096;
    while (cap < bytes)
      cap *= 2;
    uint8_t *p = mem_realloc(t->scratch, cap);
    if (!p)
      return JDB_ENOMEM;
    t->scratch = p;
    t->scratch_cap = cap;
  }
  if (n > t->wcap) {
    size_t cap = t->wcap ? t->wcap : 16;
    while (cap < n)
      cap *= 2;
    void *a = mem_realloc(t->wops, cap * sizeof(struct wal_op));
    if (!a)
      return JDB_ENOMEM;
    t->wops = a;
    void *c = mem_realloc(t->aops, cap * sizeof(struct tab_apply_op));
    if (!c)
      return JDB_ENOMEM;
    t->aops = c;
    void *b = mem_realloc(t->vrefs, cap * sizeof(struct wal_vref));
    if (!b)
      return JDB_ENOMEM;
    t->vrefs = b;
    t->wcap = cap;
  }
  return JDB_OK;
}

static int tab_poison(struct tab *t, int rc)
{
  if (rc == JDB_EIO || rc == JDB_ENOSPC || rc == JDB_ENOMEM || rc == JDB_ECORRUPT) {
    if (!t->poison) {
      LOG_ERROR("tablet: refusing writes after error %d (reopen to recover)", rc);
      t->poison = rc;
    }
  }
  return rc;
}

/* One commit at a time from taking its seq to applying its batch: wal_append may park the fiber
   (its own segment roll, or another fiber's), and neither the seq nor the write-path scratch may
   go to a second commit meanwhile. Only a fiber can find the lock taken. */
static void tab_commit_lock(struct tab *t)
{
  while (t->committing) {
    struct tab_waiter w = {.c = coro_self(), .next = t->commit_waiters};
    JDB_ASSERT(w.c != NULL);
    t->commit_waiters = &w;
    coro_park();
    /* the unlock unlinked every waiter before waking them */
  }
  t->committing = 1;
}

static void tab_commit_unlock(struct tab *t)
{
  t->committing = 0;
  struct tab_waiter *w = t->commit_waiters;
  t->commit_waiters = NULL;
  while (w) {
    struct tab_waiter *nx = w->next;
    coro_wake(w->c);
    w = nx;
  }
}

static int tab_commit_locked(struct tab *t, uint64_t table, const struct tab_op *ops,
                             const uint8_t *spaces, uint32_t n, uint64_t *seq_out,
                             uint64_t *end_out);

int tab_commit(struct tab *t, uint64_t table, const struct tab_op *ops, const uint8_t *spaces,
               uint32_t n, unsigned flags, uint64_t *seq_out)
{
  if (t->o.read_only)
    return JDB_EREADONLY;
  if (t->poison)
    return JDB_EREADONLY;   /* the call that met the disk's error reported it */
  tab_commit_lock(t);
  uint64_t seq = 0, end = 0;
  int rc = t->poison ? JDB_EREADONLY : tab_commit_locked(t, table, ops, spaces, n, &seq, &end);
  tab_commit_unlock(t);
  if (rc)
    return rc;
  t->st.writes++;
  t->st.ops += n;
  if (seq_out)
    *seq_out = seq;
  if (!(flags & TAB_NOWAIT)) {
    rc = wal_wait(t->wal, end, (flags & TAB_SYNC) ? WAL_DURABLE : WAL_WRITTEN);
    if (rc)
      return tab_poison(t, rc);
  }
  return (flags & TAB_NOCKPT) ? JDB_OK : tab_ckpt_maybe(t);
}

static int tab_commit_locked(struct tab *t, uint64_t table, const struct tab_op *ops,
                             const uint8_t *spaces, uint32_t n, uint64_t *seq_out,
                             uint64_t *end_out)
{
  size_t bytes = 0;
  for (uint32_t i = 0; i < n; i++)
    bytes += 1u + ops[i].klen;
  int rc = tab_scratch(t, bytes, n);
  if (rc)
    return rc;
  struct wal_op *w = t->wops;
  struct wal_vref *refs = t->vrefs;
  uint8_t *p = t->scratch;
  for (uint32_t i = 0; i < n; i++) {
    p[0] = spaces ? spaces[i] : TAB_SPACE_KV;
    memcpy(p + 1, ops[i].key, ops[i].klen);
    w[i] = (struct wal_op){.kind = ops[i].kind == TAB_DEL ? WAL_OP_DEL : WAL_OP_PUT, .key = p,
                           .klen = ops[i].klen + 1u, .val = ops[i].val, .vlen = ops[i].vlen};
    if (!w[i].val)
      w[i].val = "";
    p += 1u + ops[i].klen;
  }
  uint64_t seq = t->seq + 1, end = 0;
  rc = wal_append(t->wal, table, seq, clock_commit_sec(), w, n, refs, &end);
  if (rc == JDB_ENOMEM || rc == JDB_EINVAL)
    return rc;                  /* nothing was appended: the tablet stays usable */
  if (rc)
    return tab_poison(t, rc);
  t->seq = seq;
  struct tab_apply_op *a = t->aops;
  for (uint32_t i = 0; i < n; i++)
    a[i] = (struct tab_apply_op){.kind = w[i].kind, .key = w[i].key, .klen = w[i].klen,
                                 .val = w[i].val, .vlen = w[i].vlen, .ref = refs[i]};
  rc = tab_mt_apply(t, t->cur->act->m, table, seq, a, n);
  if (rc)
    return tab_poison(t, rc);   /* logged but not applied: only a reopen makes it whole */
  *seq_out = seq;
  *end_out = end;
  return JDB_OK;
}

/* Sorted arrays of records whose first field is a u64 key (drops, log accounting): the index of
   the first record with a key >= key, and a zeroed record inserted at an index. */
static size_t tab_sorted_lower(const void *base, size_t n, size_t size, uint64_t key)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    uint64_t k;
    memcpy(&k, (const uint8_t *)base + mid * size, sizeof k);
    if (k < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void *tab_sorted_insert(void **base, size_t *n, size_t *cap, size_t size, size_t at,
                               uint64_t key)
{
  if (tab_grow(base, cap, *n + 1, size, 16))
    return NULL;
  uint8_t *p = (uint8_t *)*base + at * size;
  memmove(p + size, p, (*n - at) * size);
  memset(p, 0, size);
  memcpy(p, &key, sizeof key);
  (*n)++;
  return p;
}

int tab_drop_find(const struct tab *t, uint64_t id)
{
  size_t at = tab_sorted_lower(t->drops, t->ndrops, sizeof *t->drops, id);
  return at < t->ndrops && t->drops[at].id == id ? (int)at : -1;
}

int tab_drop_add(struct tab *t, uint64_t id, int pending)
{
  size_t at = tab_sorted_lower(t->drops, t->ndrops, sizeof *t->drops, id);
  struct tab_drop *d = at < t->ndrops && t->drops[at].id == id ? &t->drops[at]
      : tab_sorted_insert((void **)&t->drops, &t->ndrops, &t->cdrops, sizeof *t->drops, at, id);
  if (!d)
    return JDB_ENOMEM;
  d->pending = pending;
  return JDB_OK;
}

int tab_write(struct tab *t, uint64_t table, const struct tab_op *ops, uint32_t n,
              unsigned flags, uint64_t *seq)
{
  if (seq)
    *seq = 0;
  if (!t || !ops || n == 0 || n > TAB_BATCH_MAX || table < TAB_ID_FIRST || table >= t->next_id ||
      tab_drop_find(t, table) >= 0)
    return JDB_EINVAL;
  for (uint32_t i = 0; i < n; i++) {
    const struct tab_op *op = &ops[i];
    if ((op->kind != TAB_PUT && op->kind != TAB_DEL) || !op->key || op->klen == 0 ||
        op->klen > TAB_KEY_MAX)
      return JDB_EINVAL;
    if (op->kind == TAB_PUT && (op->vlen > TAB_VAL_MAX || (op->vlen && !op->val)))
      return JDB_EINVAL;
  }
  return tab_commit(t, table, ops, NULL, n, flags, seq);
}

int tab_flush(struct tab *t)
{
  if (!t)
    return JDB_EINVAL;
  if (t->o.read_only)
    return JDB_OK;
  if (t->poison)
    return t->poison;
  return tab_poison(t, wal_sync(t->wal));
}

/* ------------------------------------------------------------------------------------------- */
/* Reads */

/* A memtable entry as the tree's entry type (enum mt_kind is enum bt_kind). */
static struct bt_ent tab_ent_of(const struct mt_ent *e)
{
  return (struct bt_ent){.key = e->key, .klen = e->klen, .seq = e->seq, .kind = e->kind,
                         .vlen = e->vlen, .val = e->val, .vpos = e->vpos};
}

/* The view's memtables a point lookup must ask, newest first (NULL: none). An empty one is left
   out: its hash slot would be a cache miss per lookup for nothing (after a reopen the active
   memtable is often empty and every get went through it: 10 % of readrandom, perf). */
static void tab_view_mts(const struct tab_view *v, struct tab_mt *ms[2])
{
  ms[0] = v->act && mt_count(v->act->m) ? v->act : NULL;
  ms[1] = v->frz && mt_count(v->frz->m) ? v->frz : NULL;
}

int tab_lookup(struct tab *t, const struct tab_view *v, uint64_t snap, const uint8_t *ikey,
               uint32_t iklen, struct bt_ent *out, void *vbuf)
{
  struct tab_mt *ms[2];
  tab_view_mts(v, ms);
  for (int i = 0; i < 2; i++) {
    if (!ms[i])
      continue;
    struct mt_ent e;
    if (mt_get(ms[i]->m, ikey, iklen, snap, &e) == JDB_OK) {
      *out = tab_ent_of(&e);
      return JDB_OK;
    }
  }
  if (!v->root)
    return JDB_NOTFOUND;
  return bt_get(t->pg, v->root, ikey, iklen, snap, out, vbuf);
}

/* The value of an entry, copied to a new buffer. */
static int tab_value_copy(struct tab *t, const struct bt_ent *e, void **val, size_t *vlen)
{
  uint8_t *p = mem_malloc(e->vlen ? e->vlen : 1);
  if (!p)
    return JDB_ENOMEM;
  if (e->kind == BT_VREF) {
    int rc = vlog_read(t->vlog, (struct wal_vref){.pos = e->vpos, .len = e->vlen}, p);
    if (rc) {
      mem_free(p);
      return rc;
    }
  } else if (e->vlen) {
    memcpy(p, e->val, e->vlen);
  }
  *val = p;
  *vlen = e->vlen;
  return JDB_OK;
}

static int tab_get_space(struct tab *t, const struct tab_snap *snap, uint64_t table,
                         uint8_t space, const void *key, uint32_t klen, void **val, size_t *vlen)
{
  uint8_t ik[TAB_IKEY_MAX + 1];
  uint32_t iklen = (uint32_t)tab_ikey(ik, table, space, key, klen);
  uint8_t vbuf[BT_INLINE_MAX];
  struct bt_ent e;
  /* the view is held while the lookup may park: a checkpoint finishing meanwhile must not let
     the pages of its root be reused */
  struct tab_view *v = snap ? snap->v : tab_view_ref(t);
  int rc = tab_lookup(t, v, snap ? snap->seq : t->seq, ik, iklen, &e, vbuf);
  if (rc == JDB_OK && e.kind == BT_TOMB)
    rc = JDB_NOTFOUND;
  if (rc == JDB_OK)
    rc = tab_value_copy(t, &e, val, vlen);
  if (!snap)
    tab_view_unref(t, v);
  return rc;
}

int tab_get(struct tab *t, const struct tab_snap *snap, uint64_t table, const void *key,
            uint32_t klen, void **val, size_t *vlen)
{
  if (val)
    *val = NULL;
  if (vlen)
    *vlen = 0;
  if (!t || !key || !val || !vlen || klen == 0 || klen > TAB_KEY_MAX || table < TAB_ID_FIRST ||
      table >= t->next_id || (snap && snap->t != t))
    return JDB_EINVAL;
  return tab_get_space(t, snap, table, TAB_SPACE_KV, key, klen, val, vlen);
}

/* Scratch of one group of tab_get_many: composite keys, inline value buffers, the tree's
   requests and which requests the memtables answered. */
struct tab_mget {
  uint8_t ik[BT_GET_GROUP][TAB_IKEY_MAX + 1];
  uint8_t vbuf[BT_GET_GROUP][BT_INLINE_MAX];
  struct bt_get_req br[BT_GET_GROUP];
  uint64_t hash[BT_GET_GROUP];
};

static void tab_get_group(struct tab *t, const struct tab_view *v, uint64_t snap, uint64_t table,
                          struct tab_get_req *r, size_t n, struct tab_mget *g)
{
  struct tab_mt *ms[2];
  tab_view_mts(v, ms);
  struct bt_get_req *tree[BT_GET_GROUP];
  size_t nt = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t iklen = (uint32_t)tab_ikey(g->ik[i], table, TAB_SPACE_KV, r[i].key, r[i].klen);
    g->br[i] = (struct bt_get_req){.key = g->ik[i], .klen = iklen, .snap = snap,
                                   .vbuf = g->vbuf[i], .rc = JDB_NOTFOUND};
    g->hash[i] = mt_key_hash(g->ik[i], iklen);
  }
  for (int stage = 0; stage < 2; stage++)
    for (size_t i = 0; i < n; i++)
      for (int m = 0; m < 2; m++)
        if (ms[m])
          mt_prefetch(ms[m]->m, g->hash[i], stage);
  for (size_t i = 0; i < n; i++) {
    struct bt_get_req *q = &g->br[i];
    int found = 0;
    for (int m = 0; m < 2 && !found; m++) {
      struct mt_ent e;
      if (ms[m] && mt_get_hashed(ms[m]->m, q->key, q->klen, g->hash[i], snap, &e) == JDB_OK) {
        q->out = tab_ent_of(&e);
        q->rc = JDB_OK;
        found = 1;
      }
    }
    if (!found && v->root)
      tree[nt++] = q;
  }
  if (nt) {
    /* the tree's lookups, packed together */
    struct bt_get_req packed[BT_GET_GROUP];
    for (size_t j = 0; j < nt; j++)
      packed[j] = *tree[j];
    bt_get_many(t->pg, v->root, packed, nt);
    for (size_t j = 0; j < nt; j++)
      *tree[j] = packed[j];
  }
  for (size_t i = 0; i < n; i++) {
    struct bt_get_req *q = &g->br[i];
    int rc = q->rc;
    if (rc == JDB_OK && q->out.kind == BT_TOMB)
      rc = JDB_NOTFOUND;
    if (rc == JDB_OK)
      rc = tab_value_copy(t, &q->out, &r[i].val, &r[i].vlen);
    r[i].rc = rc;
  }
}

int tab_get_many(struct tab *t, const struct tab_snap *snap, uint64_t table,
                 struct tab_get_req *r, size_t n)
{
  int rc = JDB_OK;
  if (!t || (n && !r) || table < TAB_ID_FIRST || table >= t->next_id || (snap && snap->t != t))
    rc = JDB_EINVAL;
  struct tab_mget *g = rc ? NULL : mem_malloc(sizeof *g);
  if (!rc && !g)
    rc = JDB_ENOMEM;
  for (size_t i = 0; r && i < n; i++) {
    r[i].val = NULL;
    r[i].vlen = 0;
    r[i].rc = rc;
  }
  if (rc)
    return rc;
  /* one view for all: the lookups see one instant, and a checkpoint finishing while one parks
     cannot let the pages of its root be reused */
  struct tab_view *v = snap ? snap->v : tab_view_ref(t);
  uint64_t seq = snap ? snap->seq : t->seq;
  for (size_t at = 0; at < n;) {
    /* a group of valid requests; bad ones answer at once */
    size_t e = at;
    while (e < n && e - at < BT_GET_GROUP && r[e].key && r[e].klen >= 1 &&
           r[e].klen <= TAB_KEY_MAX)
      e++;
    if (e == at) {
      r[at++].rc = JDB_EINVAL;
      continue;
    }
    tab_get_group(t, v, seq, table, r + at, e - at, g);
    at = e;
  }
  if (!snap)
    tab_view_unref(t, v);
  mem_free(g);
  return JDB_OK;
}

int tab_snapshot(struct tab *t, struct tab_snap **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!t)
    return JDB_EINVAL;
  struct tab_snap *s = mem_malloc(sizeof *s);
  if (!s)
    return JDB_ENOMEM;
  s->t = t;
  s->v = tab_view_ref(t);
  s->seq = t->seq;
  t->st.snapshots++;
  *out = s;
  return JDB_OK;
}

uint64_t tab_snapshot_seq(const struct tab_snap *s)
{
  return s ? s->seq : 0;
}

void tab_snapshot_release(struct tab_snap *s)
{
  if (!s)
    return;
  s->t->st.snapshots--;
  tab_view_unref(s->t, s->v);
  mem_free(s);
}

/* ------------------------------------------------------------------------------------------- */
/* Catalog */

static int tab_name_ok(const void *name, size_t nlen)
{
  return name && nlen >= 1 && nlen <= TAB_NAME_MAX;
}

static int tab_meta_read(struct tab *t, const void *name, size_t nlen, uint64_t *id)
{
  void *v;
  size_t vl;
  int rc = tab_get_space(t, NULL, 0, TAB_SPACE_NAME, name, (uint32_t)nlen, &v, &vl);
  if (rc)
    return rc;
  if (vl != TAB_META_LEN || ((uint8_t *)v)[0] != 1) {
    mem_free(v);
    return JDB_CORRUPT("catalog entry of a table", nlen);
  }
  *id = le64_get((uint8_t *)v + 1);
  mem_free(v);
  if (*id < TAB_ID_FIRST)
    return JDB_CORRUPT("catalog entry names a reserved table id", *id);
  return JDB_OK;
}

/* An IDS entry: key = id (big-endian) into idkey, value = state ‖ name (mem_malloc'd). */
static uint8_t *tab_id_entry(uint8_t idkey[8], uint64_t id, uint8_t state, const void *name,
                             size_t nlen)
{
  be64_put(idkey, id);
  uint8_t *v = mem_malloc(1 + nlen);
  if (v) {
    v[0] = state;
    memcpy(v + 1, name, nlen);
  }
  return v;
}

int tab_table_find(struct tab *t, const void *name, size_t nlen, uint64_t *id)
{
  if (id)
    *id = 0;
  if (!t || !id || !tab_name_ok(name, nlen))
    return JDB_EINVAL;
  return tab_meta_read(t, name, nlen, id);
}

int tab_table_create(struct tab *t, const void *name, size_t nlen, unsigned flags, uint64_t *id)
{
  if (id)
    *id = 0;
  if (!t || !id || !tab_name_ok(name, nlen))
    return JDB_EINVAL;
  int rc = tab_meta_read(t, name, nlen, id);
  if (rc == JDB_OK)
    return JDB_EEXIST;
  if (rc != JDB_NOTFOUND)
    return rc;
  uint64_t nid = t->next_id;
  uint8_t meta[TAB_META_LEN] = {1};
  le64_put(meta + 1, nid);
  le64_put(meta + 9, clock_commit_sec());
  uint8_t idkey[8];
  uint8_t *idval = tab_id_entry(idkey, nid, 0, name, nlen);
  if (!idval)
    return JDB_ENOMEM;
  struct tab_op ops[2] = {
    {.kind = TAB_PUT, .key = name, .klen = (uint32_t)nlen, .val = meta, .vlen = TAB_META_LEN},
    {.kind = TAB_PUT, .key = idkey, .klen = 8, .val = idval, .vlen = (uint32_t)(1 + nlen)},
  };
  const uint8_t spaces[2] = {TAB_SPACE_NAME, TAB_SPACE_IDS};
  t->next_id = nid + 1;
  rc = tab_commit(t, 0, ops, spaces, 2, flags, NULL);
  mem_free(idval);
  if (rc && t->next_id == nid + 1 && !t->poison)
    t->next_id = nid;   /* nothing was logged */
  if (rc == JDB_OK)
    *id = nid;
  return rc;
}

int tab_table_drop(struct tab *t, const void *name, size_t nlen, unsigned flags)
{
  if (!t || !tab_name_ok(name, nlen))
    return JDB_EINVAL;
  if (t->o.read_only)
    return JDB_EREADONLY;   /* before the drop list learns of the id */
  uint64_t id;
  int rc = tab_meta_read(t, name, nlen, &id);
  if (rc)
    return rc;
  uint8_t idkey[8];
  uint8_t *idval = tab_id_entry(idkey, id, 1, name, nlen);
  if (!idval)
    return JDB_ENOMEM;
  struct tab_op ops[4] = {
    {.kind = TAB_DEL, .key = name, .klen = (uint32_t)nlen},
    {.kind = TAB_PUT, .key = idkey, .klen = 8, .val = idval, .vlen = (uint32_t)(1 + nlen)},
    {.kind = TAB_PUT, .key = idkey, .klen = 8, .val = "", .vlen = 0},
    {.kind = TAB_PUT, .key = idkey, .klen = 8, .val = "", .vlen = 0},
  };
  const uint8_t spaces[4] = {TAB_SPACE_NAME, TAB_SPACE_IDS, TAB_SPACE_DROPQ, TAB_SPACE_DEAD};
  rc = tab_drop_add(t, id, 1);
  if (rc == JDB_OK)
    rc = tab_commit(t, 0, ops, spaces, 4, flags, NULL);
  mem_free(idval);
  return rc;
}

int tab_table_live(const struct tab *t, uint64_t id)
{
  return t && id >= TAB_ID_FIRST && id < t->next_id && tab_drop_find(t, id) < 0;
}

/* Call fn for every entry of a catalog space, in key order from start (NULL: the first), until
   fn returns non-zero (returned) or the space ends (JDB_OK). */
typedef int (*tab_space_fn)(void *ud, const void *k, size_t kl, const void *v, size_t vl);
static int tab_space_each(struct tab *t, uint8_t space, const void *start, size_t slen,
                          tab_space_fn fn, void *ud)
{
  struct tab_iter *it;
  int rc = tab_iter_open_space(t, NULL, 0, space, &it);
  if (rc)
    return rc;
  rc = start && slen ? tab_iter_seek(it, start, (uint32_t)slen) : tab_iter_first(it);
  while (rc == JDB_OK) {
    const void *k, *v;
    size_t kl, vl;
    tab_iter_key(it, &k, &kl);
    rc = tab_iter_value(it, &v, &vl);
    if (rc == JDB_OK)
      rc = fn(ud, k, kl, v, vl);
    if (rc == JDB_OK)
      rc = tab_iter_next(it);
  }
  tab_iter_close(it);
  return rc == JDB_NOTFOUND ? JDB_OK : rc;
}

struct tab_list_ctx {
  tab_name_fn fn;
  void *ud;
};

static int tab_list_one(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
  struct tab_list_ctx *c = ud;
  if (vl != TAB_META_LEN || ((const uint8_t *)v)[0] != 1)
    return JDB_CORRUPT("catalog entry of a table", kl);
  return c->fn(c->ud, k, kl, le64_get((const uint8_t *)v + 1));
}

int tab_table_list(struct tab *t, const void *start, size_t slen, tab_name_fn fn, void *ud)
{
  if (!t || !fn || (start && slen > TAB_NAME_MAX))
    return JDB_EINVAL;
  struct tab_list_ctx c = {fn, ud};
  return tab_space_each(t, TAB_SPACE_NAME, start, slen, tab_list_one, &c);
}

/* ------------------------------------------------------------------------------------------- */
/* Open, recovery, close */

struct tab_replay {
  struct tab *t;
  uint64_t seq_max;        /* the checkpoint's */
  uint64_t last;           /* last seq applied */
  struct tab_apply_op *ops;
  size_t cap;
};

/* A GC move found by replay: applied if the moved version is still the newest (as the live GC
   decided, at the same point of the history). */
static int tab_replay_move(void *ud, const struct vlog_move_entry *e)
{
  struct tab *t = ud;
  int rc = tab_gc_current(t, e->table_id, e->key, e->klen, e->seq, e->old_ref);
  if (rc == 1)
    rc = tab_gc_redirect(t, e->table_id, e->key, e->klen, e->seq, e->new_ref);
  if (rc == 1) {
    t->st.moves_replayed++;
    rc = vlog_account_add(t->vlog, e->new_ref);
  }
  return rc < 0 ? rc : JDB_OK;
}

static int tab_replay_rec(void *ud, const struct wal_rec *rec)
{
  struct tab_replay *r = ud;
  struct tab *t = r->t;
  if (rec->type == LOG_REC_MOVE)
    return vlog_move_decode(rec, tab_replay_move, t);
  if (rec->type != LOG_REC_BATCH)
    return JDB_CORRUPT("log record of a kind this engine does not write", rec->pos);
  struct wal_batch b;
  int rc = wal_batch_open(rec, &b);
  if (rc)
    return rc;
  if (b.seq <= r->seq_max) {
    t->st.replayed_records++;   /* in the checkpoint already: never applied twice */
    return JDB_OK;
  }
  if (b.seq <= r->last)
    return JDB_CORRUPT("log record seq does not rise", rec->pos);
  if (b.table_id != 0 && b.table_id < TAB_ID_FIRST)
    return JDB_CORRUPT("log record names a reserved table id", rec->pos);
  if (b.nops > r->cap) {
    size_t cap = r->cap ? r->cap : 64;
    while (cap < b.nops)
      cap *= 2;
    void *p = mem_realloc(r->ops, cap * sizeof *r->ops);
    if (!p)
      return JDB_ENOMEM;
    r->ops = p;
    r->cap = cap;
  }
  uint32_t n = 0;
  struct wal_op_view v;
  while ((rc = wal_batch_next(&b, &v)) == JDB_OK) {
    if (n >= b.nops)
      return JDB_CORRUPT("log record op count", rec->pos);
    r->ops[n++] = (struct tab_apply_op){.kind = v.kind, .key = v.key, .klen = v.klen,
                                        .val = v.val, .vlen = v.vlen, .ref = v.vref};
  }
  if (rc != JDB_NOTFOUND)
    return rc;
  if (b.table_id >= t->next_id)
    t->next_id = b.table_id + 1;
  rc = tab_mt_apply(t, t->cur->act->m, b.table_id, b.seq, r->ops, n);
  if (rc)
    return rc;
  r->last = b.seq;
  t->st.replayed_records++;
  return JDB_OK;
}

/* Every id in a catalog space of ids (DEAD or DROPQ) into the drop list. */
struct tab_drops_ctx {
  struct tab *t;
  int pending;
};

static int tab_drop_load_one(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
  struct tab_drops_ctx *c = ud;
  if (kl != 8)
    return JDB_CORRUPT("catalog drop entry", kl);
  return tab_drop_add(c->t, be64_get(k), c->pending);
}

static int tab_drops_load(struct tab *t, uint8_t space, int pending)
{
  struct tab_drops_ctx c = {t, pending};
  return tab_space_each(t, space, NULL, 0, tab_drop_load_one, &c);
}

/* One ACCT entry: segment (4 bytes, big-endian) -> values, bytes (u64 LE each). */
static int tab_acct_load_one(void *ud, const void *k, size_t kl, const void *v, size_t vl)
{
  struct tab *t = ud;
  if (kl != 4 || vl != 16)
    return JDB_CORRUPT("catalog log accounting entry", kl);
  const uint8_t *kb = k;
  uint32_t seg = (uint32_t)kb[0] << 24 | (uint32_t)kb[1] << 16 | (uint32_t)kb[2] << 8 | kb[3];
  uint64_t values = le64_get(v), bytes = le64_get((const uint8_t *)v + 8);
  struct tab_acct *a = values ? tab_acct_find(t, seg, 1) : NULL;
  if (values && !a)
    return JDB_ENOMEM;
  if (a) {
    a->values = values;
    a->bytes = bytes;
  }
  int rc = vlog_account_load(t->vlog, seg, values, bytes);
  return rc == JDB_EINVAL ? JDB_CORRUPT("catalog log accounting entry", seg) : rc;
}

/* After replay: the counts of out-of-line values the tree references, per log segment, come
   from the catalog's ACCT space into vlog's accounting (the memtable's were added as they were
   applied); the id counter and the pending drops come from the catalog too. */
static int tab_recover_state(struct tab *t)
{
  int rc = tab_space_each(t, TAB_SPACE_ACCT, NULL, 0, tab_acct_load_one, t);
  if (rc)
    return rc;
  struct tab_iter *it;
  rc = tab_iter_open_space(t, NULL, 0, TAB_SPACE_IDS, &it);
  if (rc)
    return rc;
  rc = tab_iter_last(it);
  if (rc == JDB_OK) {
    const void *k;
    size_t kl;
    tab_iter_key(it, &k, &kl);
    if (kl != 8)
      rc = JDB_CORRUPT("catalog id entry", kl);
    else if (be64_get(k) + 1 > t->next_id)
      t->next_id = be64_get(k) + 1;
  }
  tab_iter_close(it);
  if (rc != JDB_OK && rc != JDB_NOTFOUND)
    return rc;
  /* Dropped ids (writes to them stay refused), then those whose data is still to be erased. */
  rc = tab_drops_load(t, TAB_SPACE_DEAD, 0);
  return rc ? rc : tab_drops_load(t, TAB_SPACE_DROPQ, 1);
}

/* An out-of-line value left the tree in a checkpoint's run. Pruned (a newer version came) or
   erased (a dropped table): its log bytes are dead. Replaced (a log GC move reached the tree):
   the old copy's segment is gone already, vlog forgot it; only the tree's counts change. */
static void tab_pruned(void *ud, uint64_t vpos, uint32_t vlen, int why)
{
  struct tab *t = ud;
  if (why != BT_GONE_REPLACED)
    tab_dead_note(t, vpos, vlen);
  if (tab_acct_delta(t, vpos, vlen, -1))
    t->dead_oom = 1;
  t->st.versions_pruned += why == BT_GONE_PRUNED;
}

static struct tab_acct *tab_acct_find(struct tab *t, uint32_t seg, int add)
{
  size_t at = tab_sorted_lower(t->acct, t->nacct, sizeof *t->acct, seg);
  if (at < t->nacct && t->acct[at].seg == seg)
    return &t->acct[at];
  if (!add)
    return NULL;
  return tab_sorted_insert((void **)&t->acct, &t->nacct, &t->cacct, sizeof *t->acct, at, seg);
}

int tab_acct_delta(struct tab *t, uint64_t vpos, uint32_t vlen, int sign)
{
  struct tab_acct *a = tab_acct_find(t, LOG_POS_SEG(vpos), 1);
  if (!a)
    return JDB_ENOMEM;
  if (!a->dirty) {
    a->dirty = 1;
    a->nvalues = a->values;
    a->nbytes = a->bytes;
  }
  if (sign > 0) {
    a->nvalues++;
    a->nbytes += vlen;
  } else {
    a->nvalues = a->nvalues ? a->nvalues - 1 : 0;
    a->nbytes = a->nbytes >= vlen ? a->nbytes - vlen : 0;
  }
  return JDB_OK;
}

void tab_dead_note(struct tab *t, uint64_t vpos, uint32_t vlen)
{
  if (tab_grow((void **)&t->dead, &t->cdead, t->ndead + 2, sizeof *t->dead, 1024)) {
    t->dead_oom = 1;
    return;
  }
  t->dead[t->ndead++] = vpos;
  t->dead[t->ndead++] = vlen;
}

static void tab_free(struct tab *t)
{
  if (t->cur)
    tab_view_unref(t, t->cur);
  t->cur = NULL;
  JDB_ASSERT(t->views.next == &t->views);   /* every snapshot and iterator released */
  bt_close(t->bt);
  vlog_close(t->vlog);
  if (t->wal)
    wal_close(t->wal);
  pg_close(t->pg);
  mem_free(t->dir);
  mem_free(t->drops);
  mem_free(t->scratch);
  mem_free(t->apply_ik);
  mem_free(t->wops);
  mem_free(t->vrefs);
  mem_free(t->aops);
  mem_free(t->dead);
  mem_free(t->acct);
  mem_free(t);
}

static int tab_opts_fix(const struct tab_opts *in, struct tab_opts *o)
{
  *o = in ? *in : (struct tab_opts){0};
  if (!o->memtable_bytes)
    o->memtable_bytes = 64ull << 20;
  if (!o->cache_frames)
    o->cache_frames = 16384;
  if (!o->inline_max)
    o->inline_max = BT_INLINE_DEF;
  if (!o->segment_bytes)
    o->segment_bytes = 64ull << 20;
  if (o->memtable_bytes < (1ull << 20) || o->cache_frames < 64 || o->inline_max > BT_INLINE_MAX)
    return JDB_EINVAL;
  return JDB_OK;
}

int tab_open(struct fs_ctx *ctx, const char *dir, const struct tab_opts *opts, struct tab **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!ctx || !dir || !*dir)
    return JDB_EINVAL;
  struct tab_opts o;
  int rc = tab_opts_fix(opts, &o);
  if (rc)
    return rc;
  char pages[4096], logdir[4096];
  if ((size_t)snprintf(pages, sizeof pages, "%s/pages", dir) >= sizeof pages ||
      (size_t)snprintf(logdir, sizeof logdir, "%s/log", dir) >= sizeof logdir)
    return JDB_EINVAL;
  if (o.read_only)
    o.create_if_missing = 0;
  if (o.create_if_missing) {
    rc = fs_mkdir(ctx, dir);
    if (rc)
      return rc;
  }
  struct tab *t = mem_calloc(1, sizeof *t);
  if (!t)
    return JDB_ENOMEM;
  t->ctx = ctx;
  t->o = o;
  t->views.next = t->views.prev = &t->views;
  t->next_id = TAB_ID_FIRST;
  t->dir = mem_malloc(strlen(dir) + 1);
  if (!t->dir) {
    rc = JDB_ENOMEM;
    goto fail;
  }
  memcpy(t->dir, dir, strlen(dir) + 1);
  struct pg_opts po = {.frames = o.cache_frames, .buffered = o.pages_buffered,
                       .read_only = o.read_only};
  bt_pg_opts(&po);
  rc = pg_open(ctx, pages, &po, o.create_if_missing, &t->pg);
  if (rc)
    goto fail;
  struct wal_opts wo = {.segment_bytes = o.segment_bytes, .inline_max = o.inline_max,
                        .direct_min = o.pages_buffered ? UINT32_MAX : 0,
                        .read_only = o.read_only};
  rc = wal_open(ctx, logdir, &wo, &t->wal);
  if (rc)
    goto fail;
  rc = vlog_open(ctx, t->wal, logdir, NULL, &t->vlog);
  if (rc)
    goto fail;
  const struct layout_super *sb = pg_super(t->pg);
  /* The tree accepts every inline value it can hold, not only those up to this open's
     inline_max: records logged under a larger setting by an earlier open replay into it. */
  struct bt_opts bo = {.inline_max = BT_INLINE_MAX, .prune_older = o.history_seconds == 0,
                       .pruned = tab_pruned, .pruned_ud = t};
  rc = bt_open(t->pg, &bo, sb->tree_root, &t->bt);
  if (rc)
    goto fail;
  struct tab_mt *act;
  rc = tab_mt_new(t, &act);
  if (rc)
    goto fail;
  rc = tab_view_install(t, act, NULL, sb->tree_root, sb->generation);
  act->refs--;   /* the view holds it */
  if (rc) {
    tab_mt_unref(act);
    goto fail;
  }
  struct tab_replay r = {.t = t, .seq_max = sb->seq_max, .last = sb->seq_max};
  rc = wal_replay(t->wal, sb->replay_pos, tab_replay_rec, &r, NULL);
  mem_free(r.ops);
  if (rc)
    goto fail;
  t->seq = r.last;
  rc = tab_recover_state(t);
  if (rc)
    goto fail;
  rc = o.read_only ? JDB_OK : tab_ckpt_maybe(t);
  if (rc)
    goto fail;
  *out = t;
  return JDB_OK;
fail:
  tab_free(t);
  return rc;
}

int tab_close(struct tab *t)
{
  if (!t)
    return JDB_OK;
  int rc = JDB_OK;
  if (t->o.read_only)
    rc = JDB_OK;            /* nothing was written: nothing to checkpoint */
  else if (!t->poison)
    rc = tab_ckpt(t, 0);
  else
    rc = tab_ckpt(t, -1);   /* only waits for a running one */
  if (rc == JDB_EBUSY && t->ckpt_running)
    return rc;              /* a checkpoint fiber still uses the tablet: not closed */
  tab_free(t);
  return rc;
}

void tab_stats_get(const struct tab *t, struct tab_stats *out)
{
  *out = t->st;
  out->seq = t->seq;
  out->mt_bytes = mt_bytes(t->cur->act->m);
  out->mt_entries = mt_count(t->cur->act->m);
  out->frozen_bytes = t->cur->frz ? mt_bytes(t->cur->frz->m) : 0;
  out->tree_root = t->cur->root;
  out->generation = t->cur->gen;
  out->ckpt_running = t->ckpt_running != 0;
  if (t->wal) {
    struct wal_stats ws;
    wal_stats_get(t->wal, &ws);
    out->log_bytes_written = ws.bytes_written;
    out->log_segments_created = ws.segments_created;
    out->log_bytes_prepared = ws.bytes_prepared;
    out->log_segments_reused = ws.segments_reused;
    out->log_segments_allocated = ws.segments_allocated;
    out->log_writes = ws.writes;
    out->log_writes_direct = ws.writes_direct;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Checks */

/* Count the out-of-line values the tree at root references, per log segment (may park). */
static int tab_tree_vrefs(struct tab *t, uint64_t root, struct tab_acct **seen, size_t *nseen)
{
  size_t cseen = 0;
  *seen = NULL;
  *nseen = 0;
  if (!root)
    return JDB_OK;
  struct bt_cursor *c = mem_malloc(sizeof *c);
  if (!c)
    return JDB_ENOMEM;
  bt_cursor_init(c, t->pg, root);
  int rc = bt_cursor_first(c);
  while (rc == JDB_OK) {
    const struct bt_ent *e = bt_cursor_ent(c);
    if (e->kind == BT_VREF) {
      uint32_t seg = LOG_POS_SEG(e->vpos);
      size_t i = 0;
      while (i < *nseen && (*seen)[i].seg != seg)
        i++;
      if (i == *nseen) {
        if (tab_grow((void **)seen, &cseen, *nseen + 1, sizeof **seen, 16)) {
          rc = JDB_ENOMEM;
          break;
        }
        (*seen)[(*nseen)++] = (struct tab_acct){.seg = seg};
      }
      (*seen)[i].values++;
      (*seen)[i].bytes += e->vlen;
    }
    rc = bt_cursor_next(c);
  }
  bt_cursor_close(c);
  mem_free(c);
  return rc == JDB_NOTFOUND ? JDB_OK : rc;
}

/* The committed log accounting against what the tree references (tab_tree_vrefs). */
static int tab_acct_compare(struct tab *t, const struct tab_acct *seen, size_t nseen)
{
  int rc = JDB_OK;
  for (size_t i = 0; i < nseen && rc == JDB_OK; i++) {
    struct tab_acct *a = tab_acct_find(t, (uint32_t)seen[i].seg, 0);
    if (!a || a->values != seen[i].values || a->bytes != seen[i].bytes) {
      LOG_ERROR("tablet: segment %u: the tree references %llu values (%llu bytes), the "
                "accounting says %llu (%llu)", (unsigned)seen[i].seg,
                (unsigned long long)seen[i].values, (unsigned long long)seen[i].bytes,
                a ? (unsigned long long)a->values : 0ull,
                a ? (unsigned long long)a->bytes : 0ull);
      rc = JDB_CORRUPT("log accounting of a segment", seen[i].seg);
    }
  }
  for (size_t i = 0; i < t->nacct && rc == JDB_OK; i++) {
    size_t j = 0;
    while (j < nseen && seen[j].seg != t->acct[i].seg)
      j++;
    if (j == nseen && t->acct[i].values) {
      LOG_ERROR("tablet: segment %u: accounted %llu values the tree does not reference",
                (unsigned)t->acct[i].seg, (unsigned long long)t->acct[i].values);
      rc = JDB_CORRUPT("log accounting of a segment", t->acct[i].seg);
    }
  }
  return rc;
}

int tab_check(struct tab *t)
{
  if (!t)
    return JDB_EINVAL;
  uint64_t root = t->cur->root;
  int rc = pg_check(t->pg);
  if (rc == JDB_OK && root)
    rc = bt_check(t->pg, root, BT_CHECK_FILL, NULL);
  if (rc)
    return rc;
  struct tab_acct *seen;
  size_t nseen;
  rc = tab_tree_vrefs(t, root, &seen, &nseen);
  if (rc == JDB_OK)
    rc = tab_acct_compare(t, seen, nseen);
  mem_free(seen);
  return rc;
}

int tab_io_stats_get(struct tab *t, struct tab_io_stats *out)
{
  if (!t || !out)
    return JDB_EINVAL;
  struct pg_stats ps;
  pg_stats_get(t->pg, &ps);
  *out = (struct tab_io_stats){.cache_frames = ps.frames, .cache_frames_used = ps.frames_used,
                               .cache_hits = ps.hits, .cache_misses = ps.misses};
  char path[4096];
  struct stat st;
  if ((size_t)snprintf(path, sizeof path, "%s/pages", t->dir) < sizeof path &&
      stat(path, &st) == 0)
    out->page_file_bytes = (uint64_t)st.st_size;
  size_t n = wal_segments(t->wal, NULL, 0);
  uint32_t *segs = n ? mem_malloc(n * sizeof *segs) : NULL;
  out->log_segments = n;
  if (!segs)
    return JDB_OK;   /* sizes unknown (out of memory): counted as 0 */
  n = wal_segments(t->wal, segs, n);
  for (size_t i = 0; i < n; i++) {
    if ((size_t)snprintf(path, sizeof path, "%s/log/%08u.log", t->dir, segs[i]) < sizeof path &&
        stat(path, &st) == 0)
      out->log_bytes += (uint64_t)st.st_size;
  }
  mem_free(segs);
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Verification (tab_verify): the tree under a held view, then every log segment read through
   its own read-only descriptor, sequentially, in chunks. */

static int tab_verify_move(void *ud, const struct vlog_move_entry *e)
{
  (void)e;
  ((struct tab_verify_report *)ud)->log_values_checked++;
  return 0;
}

/* Decode every op of a BATCH or MOVE record (checksums of out-of-line values included). */
static int tab_verify_payload(const struct wal_rec *rec, struct tab_verify_report *r)
{
  if (rec->type == LOG_REC_MOVE)
    return vlog_move_decode(rec, tab_verify_move, r);
  struct wal_batch b;
  int rc = wal_batch_open(rec, &b);
  struct wal_op_view v;
  uint32_t n = 0;
  while (rc == JDB_OK && (rc = wal_batch_next(&b, &v)) == JDB_OK)
    n++;
  if (rc == JDB_NOTFOUND)
    rc = n == b.nops ? JDB_OK : JDB_CORRUPT("log record op count", rec->pos);
  r->log_values_checked += n;
  return rc;
}

/* One segment, from its start up to its END record, or (the segment being written when the walk
   began) up to offset `stop`. Damage is counted in r->errors and ends the segment's walk; I/O
   and memory errors are returned. */
static int tab_verify_segment(struct tab *t, uint32_t seg, uint64_t stop,
                              struct tab_verify_report *r)
{
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/log/%08u.log", t->dir, seg) >= sizeof path)
    return JDB_EINVAL;
  struct wal_win s = {0};
  int rc = fs_file_open(t->ctx, path, FS_O_RDONLY, &s.f);
  if (rc == JDB_NOTFOUND) {
    LOG_ERROR("check: log segment %s is missing", path);
    r->errors++;
    return JDB_OK;
  }
  if (rc == JDB_OK)
    rc = fs_file_size(t->ctx, s.f, &s.size);
  const char *bad = NULL;
  uint64_t off = 0;
  while (rc == JDB_OK && !bad && off < stop) {
    uint64_t pos = LOG_POS(seg, off);
    const uint8_t *p;
    size_t avail;
    struct layout_rec_hdr h;
    /* The written mark of the current segment may fall inside a record (a streamed flush
       leaves it on a block boundary): a record not wholly below it is not in the file yet. */
    if (stop != UINT64_MAX && off + LOG_REC_HDR_SIZE > stop)
      break;
    rc = wal_win_get(t->ctx, &s, off, LOG_REC_HDR_SIZE, &p, &avail);
    if (rc)
      break;
    if (avail < LOG_REC_HDR_SIZE) {
      bad = stop == UINT64_MAX ? "the segment ends without its END record"
                               : "the segment ends before the written log";
      break;
    }
    if (layout_rec_peek(p, avail, pos, &h) != JDB_OK) {
      bad = "bad record header";
      break;
    }
    if (stop != UINT64_MAX && off + layout_rec_padded(h.len) > stop)
      break;
    rc = wal_win_get(t->ctx, &s, off, h.len, &p, &avail);
    if (rc)
      break;
    if (layout_rec_open(p, avail, pos, &h) != JDB_OK) {
      bad = "record checksum or length";
      break;
    }
    if ((off == 0) != (h.type == LOG_REC_SEG) ||
        (off == 0 && (h.len < LOG_REC_HDR_SIZE + 4 || le32_get(p + LOG_REC_HDR_SIZE) != seg))) {
      bad = "segment header record";
      break;
    }
    r->log_records_checked++;
    r->log_bytes_checked += layout_rec_padded(h.len);
    off += layout_rec_padded(h.len);
    if (h.type == LOG_REC_PAD && (h.flags & WAL_PAD_END))
      break;
    if (h.type == LOG_REC_BATCH || h.type == LOG_REC_MOVE) {
      struct wal_rec rec = {.pos = pos, .end = LOG_POS(seg, off), .type = h.type,
                            .flags = h.flags, .payload = p + LOG_REC_HDR_SIZE,
                            .len = h.len - LOG_REC_HDR_SIZE};
      int prc = tab_verify_payload(&rec, r);
      if (prc == JDB_ENOMEM)
        rc = prc;
      else if (prc)
        bad = "record contents";
    }
  }
  if (bad) {
    LOG_ERROR("check: %s at offset %llu: %s", path, (unsigned long long)off, bad);
    r->errors++;
  }
  r->log_segments_checked++;
  if (s.f)
    fs_file_close(t->ctx, s.f);
  wal_win_free(&s);
  return rc;
}

/* Every segment that exists now; the one being written up to the kernel's written position. */
static int tab_verify_log(struct tab *t, struct tab_verify_report *r)
{
  uint64_t written = wal_written_pos(t->wal);
  size_t n = wal_segments(t->wal, NULL, 0);
  uint32_t *segs = mem_malloc((n ? n : 1) * sizeof *segs);
  if (!segs)
    return JDB_ENOMEM;
  n = wal_segments(t->wal, segs, n);
  int rc = JDB_OK;
  for (size_t i = 0; i < n && rc == JDB_OK; i++) {
    if (segs[i] > LOG_POS_SEG(written))
      break;
    uint64_t stop = segs[i] == LOG_POS_SEG(written) ? LOG_POS_OFF(written) : UINT64_MAX;
    rc = tab_verify_segment(t, segs[i], stop, r);
  }
  mem_free(segs);
  return rc;
}

int tab_verify(struct tab *t, struct tab_verify_report *r)
{
  if (!t || !r)
    return JDB_EINVAL;
  uint64_t errors0 = r->errors;
  /* The view keeps the walked root's pages from reuse and every log segment in place: no
     checkpoint releases segments nor runs the log GC while an older view is alive. */
  struct tab_view *v = tab_view_ref(t);
  int rc = pg_check(t->pg);
  if (rc == JDB_ECORRUPT)
    r->errors++;
  else if (rc)
    goto out;
  if (v->root) {
    struct bt_check_stats bs = {0};
    rc = bt_check(t->pg, v->root, BT_CHECK_ALL, &bs);
    r->pages_checked += bs.leaves + bs.branches;
    r->entries_checked += bs.entries;
    if (rc == JDB_ECORRUPT)
      r->errors += bs.damaged ? bs.damaged : 1;
    else if (rc)
      goto out;
  }
  if (rc == JDB_OK) {
    struct tab_acct *seen;
    size_t nseen;
    rc = tab_tree_vrefs(t, v->root, &seen, &nseen);
    /* The committed counts describe the current root: compare only when no checkpoint
       committed a new one while the walk parked. */
    if (rc == JDB_OK && t->cur->root == v->root && tab_acct_compare(t, seen, nseen))
      r->errors++;
    mem_free(seen);
    if (rc == JDB_ECORRUPT)
      r->errors++;
    else if (rc)
      goto out;
  }
  rc = tab_verify_log(t, r);
out:
  tab_view_unref(t, v);
  if (rc == JDB_OK && r->errors > errors0)
    rc = JDB_ECORRUPT;
  return rc;
}
