/*
 * tab_ckpt.c - checkpoints: freeze the active memtable, apply it to the B+ tree in one sorted
 * run (plus the removal of dropped tables' data), make the new tree durable under one
 * superblock that also names the log replay position, then release log segments nothing needs.
 *
 * Order of a checkpoint (each step only after the previous one is complete):
 *   1. freeze: the active memtable becomes the frozen one; its end (the log append position now)
 *      is the replay position the checkpoint will record; a new active memtable takes writes.
 *   2. the frozen memtable's entries, newest version per key (older ones are dropped unless
 *      history is kept), become bt_apply PUT ops; entries of dropped tables are left out, and up
 *      to TAB_DROP_ERASE_MAX tree entries of dropped tables become ERASE ops.
 *   3. the log is made durable up to the replay position: tree entries reference values in it.
 *   4. pg_commit: pages, fdatasync, superblock (root, seq_max, replay_pos), fdatasync.
 *   5. a new view (active memtable, no frozen one, new root) becomes current; readers holding the
 *      old view keep the old root and frozen memtable until they let go.
 *   6. finished drops lose their DROPQ entry (a logged catalog delete); log segments wholly
 *      before the replay position with no live value referenced are dropped.
 * A crash before 4 completes leaves the previous superblock: recovery replays from its replay
 * position, which covers everything the frozen memtable held. A crash after 4 replays from the
 * new position. Either way each record is applied once.
 */
#include "tab_int.h"

#include "codec.h"
#include "coro.h"
#include "err.h"
#include "fs.h"
#include "log.h"
#include "mem.h"
#include "pg.h"
#include "vlog.h"
#include "wal.h"

#include <string.h>

#define TAB_DROP_ERASE_MAX 65536u
#define TAB_LOG_SEGS_CKPT 2u     /* checkpoint after this many log segments, full memtable or not */

struct tab_ckpt_run {
  struct bt_op *ops;
  size_t n, cap;
  struct bt_op *erase;
  size_t nerase, cerase;
  uint8_t *keys;          /* copies of erased keys */
  size_t kused, kcap;
  uint64_t *done;         /* drops finished by this run */
  size_t ndone;
};

static int tab_ops_push(struct bt_op **v, size_t *n, size_t *cap, const struct bt_op *op)
{
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 1024;
    struct bt_op *p = mem_realloc(*v, c * sizeof *p);
    if (!p)
      return JDB_ENOMEM;
    *v = p;
    *cap = c;
  }
  (*v)[(*n)++] = *op;
  return JDB_OK;
}

static void tab_dead(struct tab *t, uint8_t kind, uint64_t vpos, uint32_t vlen)
{
  if (kind == BT_VREF)
    tab_dead_note(t, vpos, vlen);
}

/* Step 2a: the frozen memtable as a sorted run. */
static int tab_ckpt_ops(struct tab *t, struct tab_mt *frz, struct tab_ckpt_run *r)
{
  struct mt_cursor c;
  mt_cursor_init(&c, frz->m);
  const uint8_t *prev = NULL;
  uint32_t prevlen = 0;
  int keep_history = t->o.history_seconds != 0;
  int rc = mt_cursor_first(&c);
  while (rc == JDB_OK) {
    struct mt_ent e;
    mt_cursor_ent(&c, &e);
    uint64_t table = e.klen >= 8 ? be64_get(e.key) : 0;
    int same = prev && prevlen == e.klen && memcmp(prev, e.key, e.klen) == 0;
    if (table && tab_drop_find(t, table) >= 0) {
      tab_dead(t, e.kind, e.vpos, e.vlen);
    } else if (same && !keep_history) {
      tab_dead(t, e.kind, e.vpos, e.vlen);
      t->st.versions_pruned++;
    } else {
      struct bt_op op = {.op = BT_OP_PUT, .kind = e.kind, .key = e.key, .klen = e.klen,
                         .seq = e.seq, .val = e.val, .vlen = e.vlen, .vpos = e.vpos};
      rc = tab_ops_push(&r->ops, &r->n, &r->cap, &op);
      if (rc == JDB_OK && e.kind == BT_VREF)
        rc = tab_acct_delta(t, e.vpos, e.vlen, +1);
      if (rc)
        return rc;
      prev = e.key;
      prevlen = e.klen;
    }
    rc = mt_cursor_next(&c);
  }
  return rc == JDB_NOTFOUND ? JDB_OK : rc;
}

/* Step 2b: ERASE ops for tree entries of dropped tables (pending drops, in id order). */
static int tab_ckpt_erase(struct tab *t, uint64_t root, struct tab_ckpt_run *r)
{
  if (!root)
    return JDB_OK;
  struct bt_cursor *c = mem_malloc(sizeof *c);
  if (!c)
    return JDB_ENOMEM;
  /* the pending ids, copied: the walk parks, and a drop meanwhile moves t->drops around */
  size_t nids = 0;
  uint64_t *ids = mem_malloc((t->ndrops + 1) * sizeof *ids);
  if (!ids) {
    mem_free(c);
    return JDB_ENOMEM;
  }
  for (size_t i = 0; i < t->ndrops; i++)
    if (t->drops[i].pending)
      ids[nids++] = t->drops[i].id;
  int rc = JDB_OK;
  for (size_t i = 0; i < nids && r->nerase < TAB_DROP_ERASE_MAX && rc == JDB_OK; i++) {
    uint8_t lo[8];
    be64_put(lo, ids[i]);
    bt_cursor_init(c, t->pg, root);
    rc = bt_cursor_seek(c, lo, 8, UINT64_MAX);
    while (rc == JDB_OK) {
      const struct bt_ent *e = bt_cursor_ent(c);
      if (e->klen < 8 || memcmp(e->key, lo, 8) != 0) {
        rc = JDB_NOTFOUND;
        break;
      }
      if (r->nerase >= TAB_DROP_ERASE_MAX)
        break;
      if (r->kused + e->klen > r->kcap) {
        size_t cap = r->kcap ? r->kcap * 2 : 1u << 20;
        while (cap < r->kused + e->klen)
          cap *= 2;
        uint8_t *p = mem_realloc(r->keys, cap);
        if (!p) {
          rc = JDB_ENOMEM;
          break;
        }
        r->keys = p;
        r->kcap = cap;
      }
      memcpy(r->keys + r->kused, e->key, e->klen);
      /* key holds an offset until the copies stop moving */
      struct bt_op op = {.op = BT_OP_ERASE, .key = (const void *)(uintptr_t)r->kused,
                         .klen = e->klen, .seq = e->seq};
      r->kused += e->klen;   /* its value, if out of line, is reported by bt_apply */
      rc = tab_ops_push(&r->erase, &r->nerase, &r->cerase, &op);
      if (rc == JDB_OK)
        rc = bt_cursor_next(c);
    }
    bt_cursor_close(c);
    if (rc == JDB_NOTFOUND) {      /* the table's range is exhausted: this drop finishes */
      uint64_t *d = mem_realloc(r->done, (r->ndone + 1) * sizeof *d);
      if (!d) {
        rc = JDB_ENOMEM;
        break;
      }
      r->done = d;
      r->done[r->ndone++] = ids[i];
      rc = JDB_OK;
    }
  }
  mem_free(c);
  mem_free(ids);
  for (size_t i = 0; i < r->nerase; i++)
    r->erase[i].key = r->keys + (uintptr_t)r->erase[i].key;
  return rc;
}

/* Step 2c, after the other runs: the changed per-segment counts of the tree's out-of-line values
   as catalog ACCT entries (seq: the checkpoint's seq_max; pruning drops the older ones). */
static int tab_ckpt_acct(struct tab *t, uint64_t seq)
{
  size_t n = 0;
  for (size_t i = 0; i < t->nacct; i++)
    n += t->acct[i].dirty;
  if (!n)
    return JDB_OK;
  struct bt_op *ops = mem_malloc(n * sizeof *ops);
  uint8_t *kv = mem_malloc(n * (13u + 16u));
  if (!ops || !kv) {
    mem_free(ops);
    mem_free(kv);
    return JDB_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < t->nacct; i++) {
    const struct tab_acct *a = &t->acct[i];
    if (!a->dirty)
      continue;
    uint8_t *key = kv + k * 29u, *val = key + 13;
    uint8_t seg[4] = {(uint8_t)(a->seg >> 24), (uint8_t)(a->seg >> 16), (uint8_t)(a->seg >> 8),
                      (uint8_t)a->seg};
    tab_ikey(key, 0, TAB_SPACE_ACCT, seg, 4);
    le64_put(val, a->nvalues);
    le64_put(val + 8, a->nbytes);
    ops[k++] = (struct bt_op){.op = BT_OP_PUT, .kind = BT_INLINE, .key = key, .klen = 13,
                              .seq = seq, .val = val, .vlen = 16};
  }
  int rc = bt_apply(t->bt, ops, n, NULL);
  mem_free(ops);
  mem_free(kv);
  return rc;
}

/* Step 6b: log segments before the replay position's segment with nothing live in them. */
static int tab_ckpt_release(struct tab *t, uint64_t replay_pos)
{
  uint32_t rseg = LOG_POS_SEG(replay_pos);
  size_t n = wal_segments(t->wal, NULL, 0);
  if (n == 0)
    return JDB_OK;
  uint32_t *segs = mem_malloc(n * sizeof *segs);
  if (!segs)
    return JDB_ENOMEM;
  n = wal_segments(t->wal, segs, n);
  int rc = JDB_OK;
  for (size_t i = 0; i < n && rc == JDB_OK; i++) {
    if (segs[i] >= rseg)
      break;
    struct vlog_seg_info info;
    int g = vlog_account_get(t->vlog, segs[i], &info);
    if (g == JDB_OK && info.live_bytes)
      continue;
    rc = vlog_segment_drop(t->vlog, segs[i]);
    if (rc == JDB_OK)
      t->st.segments_released++;
  }
  mem_free(segs);
  return rc;
}

/* Is the newest version of val's key, in the current view, the very value GC found? Then it is
   live (1); else dead (0), or a negative error. Only the newest version counts: GC runs when no
   older view (snapshot, iterator) is alive and no history is kept. */
int tab_gc_current(struct tab *t, uint64_t table, const uint8_t *key, uint32_t klen, uint64_t seq,
                   struct wal_vref ref)
{
  uint8_t ik[8 + WAL_KEY_MAX];
  if (klen == 0 || klen > WAL_KEY_MAX)
    return JDB_CORRUPT("log value key length", klen);
  be64_put(ik, table);
  memcpy(ik + 8, key, klen);
  uint8_t vbuf[BT_INLINE_MAX];
  struct bt_ent e;
  int rc = tab_lookup(t, t->cur, UINT64_MAX, ik, 8 + klen, &e, vbuf);
  if (rc == JDB_NOTFOUND)
    return 0;
  if (rc)
    return rc;
  return e.seq == seq && e.kind == BT_VREF && e.vpos == ref.pos && e.vlen == ref.len;
}

/* The value now lives at new_ref: the active memtable gets (key, seq) -> new_ref, which reads
   prefer over the tree's entry of the same seq, and which the next checkpoint puts in its place. */
int tab_gc_redirect(struct tab *t, uint64_t table, const uint8_t *key, uint32_t klen, uint64_t seq,
                    struct wal_vref new_ref)
{
  uint8_t ik[8 + WAL_KEY_MAX];
  be64_put(ik, table);
  memcpy(ik + 8, key, klen);
  int rc = mt_put(t->cur->act->m, ik, 8 + klen, seq, MT_VREF, NULL, new_ref.len, new_ref.pos);
  return rc == JDB_EEXIST ? 0 : rc ? rc : 1;
}

static int tab_gc_live(void *ud, const struct vlog_value *val)
{
  return tab_gc_current(ud, val->table_id, val->key, val->klen, val->seq, val->ref);
}

static int tab_gc_moved(void *ud, const struct vlog_value *val, struct wal_vref new_ref)
{
  struct tab *t = ud;
  int rc = tab_gc_current(t, val->table_id, val->key, val->klen, val->seq, val->ref);
  if (rc == 1)
    rc = tab_gc_redirect(t, val->table_id, val->key, val->klen, val->seq, new_ref);
  return rc;
}

/* Log GC after a checkpoint: segments before the replay position that are at most half live
   get their live values re-appended (MOVE records) and are dropped. Only when nothing older than
   the current view is read (an older root may reference values the current one does not). */
static int tab_gc(struct tab *t)
{
  if (t->o.history_seconds || t->views.next != t->cur || t->cur->next != &t->views)
    return JDB_OK;
  struct vlog_gc_args a = {.replay_pos = pg_super(t->pg)->replay_pos, .max_segments = 8,
                           .max_live_bytes = t->o.segment_bytes / 4, .live = tab_gc_live,
                           .moved = tab_gc_moved, .ud = t};
  struct vlog_gc_result res;
  int rc = vlog_gc(t->vlog, &a, &res);
  t->st.gc_segments += res.segments_dropped;
  t->st.gc_values_moved += res.values_moved;
  if (rc == JDB_EIO || rc == JDB_ENOSPC || rc == JDB_ENOMEM)
    return rc;
  if (rc)
    LOG_WARN("tablet: log GC stopped: %d (the segment is kept)", rc);
  return JDB_OK;
}

static int tab_freeze(struct tab *t)
{
  struct tab_mt *m;
  int rc = tab_mt_new(t, &m);
  if (rc)
    return rc;
  struct tab_mt *act = t->cur->act;
  act->end_pos = wal_append_pos(t->wal);
  act->seq_max = t->seq;
  rc = tab_view_install(t, m, act, t->cur->root, t->cur->gen);
  m->refs--;   /* the view holds it */
  if (rc)
    tab_mt_unref(m);
  return rc;
}

static void tab_ckpt_wake(struct tab *t)
{
  struct tab_waiter *w = t->ckpt_waiters;
  t->ckpt_waiters = NULL;
  while (w) {
    struct tab_waiter *nx = w->next;
    coro_wake(w->c);
    w = nx;
  }
}

/* Steps 2-6 for the current frozen memtable. */
static int tab_ckpt_run(struct tab *t)
{
  struct tab_view *v = tab_view_ref(t);
  struct tab_mt *frz = v->frz;
  struct tab_ckpt_run r = {0};
  t->ndead = 0;
  for (size_t i = 0; i < t->nacct; i++)
    t->acct[i].dirty = 0;
  int rc = tab_ckpt_ops(t, frz, &r);
  if (rc == JDB_OK)
    rc = tab_ckpt_erase(t, v->root, &r);
  if (rc == JDB_OK && r.nerase)
    rc = bt_apply(t->bt, r.erase, r.nerase, NULL);
  if (rc == JDB_OK && r.n)
    rc = bt_apply(t->bt, r.ops, r.n, NULL);
  if (rc == JDB_OK)
    rc = tab_ckpt_acct(t, frz->seq_max);
  uint64_t replay = frz->end_pos;
  if (rc == JDB_OK)
    rc = wal_wait(t->wal, replay, WAL_DURABLE);
  if (rc == JDB_OK) {
    struct layout_super next = *pg_super(t->pg);
    next.tree_root = bt_root(t->bt);
    next.seq_max = frz->seq_max;
    next.replay_pos = replay;
    rc = pg_commit(t->pg, &next);
  }
  if (rc == JDB_OK) {
    for (size_t i = 0; i < t->nacct; i++) {
      struct tab_acct *a = &t->acct[i];
      if (a->dirty) {
        a->values = a->nvalues;
        a->bytes = a->nbytes;
        a->dirty = 0;
      }
    }
    for (size_t i = 0; i + 1 < t->ndead; i += 2) {
      struct wal_vref ref = {.pos = t->dead[i], .len = (uint32_t)t->dead[i + 1]};
      vlog_account_dead(t->vlog, ref);
    }
    t->ndead = 0;
    const struct layout_super *sb = pg_super(t->pg);
    rc = tab_view_install(t, t->cur->act, NULL, sb->tree_root, sb->generation);
    t->st.checkpoints++;
    t->st.drop_entries_erased += r.nerase;
  } else {
    bt_set_root(t->bt, v->root);
    if (rc == JDB_EIO || rc == JDB_ENOSPC || rc == JDB_ECORRUPT) {
      if (!t->poison)
        LOG_ERROR("tablet: checkpoint failed (%d): refusing writes until reopened", rc);
      t->poison = rc;
    }
  }
  tab_view_unref(t, v);
  if (rc == JDB_OK) {
    for (size_t i = 0; i < r.ndone && rc == JDB_OK; i++) {
      uint8_t idkey[8];
      be64_put(idkey, r.done[i]);
      struct tab_op op = {.kind = TAB_DEL, .key = idkey, .klen = 8};
      const uint8_t sp = TAB_SPACE_DROPQ;
      int at = tab_drop_find(t, r.done[i]);
      if (at >= 0)
        t->drops[at].pending = 0;
      rc = tab_commit(t, 0, &op, &sp, 1, TAB_NOWAIT | TAB_NOCKPT, NULL);
    }
  }
  /* An older view's root may reference values the new tree pruned: nothing is released or
     collected while one is alive (a later checkpoint does it). */
  int alone = t->views.next == t->cur && t->cur->next == &t->views;
  if (rc == JDB_OK && !t->dead_oom && alone)
    rc = tab_ckpt_release(t, replay);
  if (rc == JDB_OK && !t->dead_oom && alone)
    rc = tab_gc(t);
  mem_free(r.ops);
  mem_free(r.erase);
  mem_free(r.keys);
  mem_free(r.done);
  return rc;
}

/* Wait for the checkpoint in flight. From a fiber: park until it wakes us. From outside any
   fiber (tab_close or tab_checkpoint called by the thread that runs the fibers, between loop
   iterations): drive the scheduler that runs the checkpoint fiber, and the ctx's I/O, until it
   is done. JDB_EBUSY if it cannot finish (parked on something no I/O will complete). */
static int tab_ckpt_wait(struct tab *t)
{
  if (!coro_self()) {
    while (t->ckpt_running) {
      size_t ran = coro_sched_run_round(t->ckpt_sched);
      fs_flush(t->ctx);
      int idle = ran == 0 && coro_sched_ready(t->ckpt_sched) == 0;
      if (idle && fs_inflight(t->ctx) == 0 && t->ckpt_running)
        return JDB_EBUSY;
      fs_poll(t->ctx, idle);
    }
    return JDB_OK;
  }
  while (t->ckpt_running) {
    struct coro *self = coro_self();
    struct tab_waiter w = {.c = self, .next = t->ckpt_waiters};
    t->ckpt_waiters = &w;
    coro_park();
    /* tab_ckpt_wake unlinked every waiter before waking them */
  }
  return JDB_OK;
}

struct tab_ckpt_fiber {
  struct tab *t;
};

static void tab_ckpt_fiber_main(void *arg)
{
  struct tab *t = arg;
  int rc = tab_ckpt_run(t);
  if (rc && rc != JDB_ENOMEM)
    LOG_WARN("tablet: background checkpoint failed: %d", rc);
  t->ckpt_running = 0;
  tab_ckpt_wake(t);
}

int tab_ckpt(struct tab *t, int force)
{
  int wrc = tab_ckpt_wait(t);
  if (wrc)
    return wrc;
  if (force < 0)
    return JDB_OK;
  if (t->o.read_only)
    return JDB_EREADONLY;
  if (t->poison)
    return t->poison;
  int pending = 0;
  for (size_t i = 0; i < t->ndrops; i++)
    pending |= t->drops[i].pending;
  if (!t->cur->frz) {
    if (mt_count(t->cur->act->m) == 0 && !pending)
      return JDB_OK;
    int rc = tab_freeze(t);
    if (rc)
      return rc;
  }
  t->ckpt_running = 1;
  int rc = tab_ckpt_run(t);
  t->ckpt_running = 0;
  tab_ckpt_wake(t);
  return rc;
}

/* Log segments written since the replay position of the last checkpoint. */
static uint32_t tab_log_segs_since(const struct tab *t)
{
  uint32_t a = LOG_POS_SEG(wal_append_pos(t->wal)), r = LOG_POS_SEG(pg_super(t->pg)->replay_pos);
  if (r == 0)
    r = 1;   /* no checkpoint yet: replay starts at the first segment */
  return a > r ? a - r : 0;
}

int tab_ckpt_maybe(struct tab *t)
{
  /* A checkpoint is due when the memtable is full, or when the log has grown by
     TAB_LOG_SEGS_CKPT segments since the last one (large values fill the log while their
     references barely fill the memtable; until a checkpoint no segment can be released). */
  if (t->poison || t->o.read_only || (mt_bytes(t->cur->act->m) < t->o.memtable_bytes &&
                    tab_log_segs_since(t) < TAB_LOG_SEGS_CKPT))
    return JDB_OK;
  if (t->ckpt_running) {
    /* Back-pressure: a second full memtable waits for the checkpoint in flight. */
    if (mt_bytes(t->cur->act->m) >= 2 * t->o.memtable_bytes)
      tab_ckpt_wait(t);
    return JDB_OK;
  }
  if (!coro_self())
    return tab_ckpt(t, 0);
  if (!t->cur->frz) {
    int rc = tab_freeze(t);
    if (rc)
      return rc;
  }
  t->ckpt_running = 1;
  t->ckpt_sched = coro_sched_self();
  int rc = coro_spawn(t->ckpt_sched, tab_ckpt_fiber_main, t, NULL);
  if (rc) {
    t->ckpt_running = 0;
    return tab_ckpt(t, 0);
  }
  return JDB_OK;
}

int tab_checkpoint(struct tab *t)
{
  if (!t)
    return JDB_EINVAL;
  return tab_ckpt(t, 0);
}
