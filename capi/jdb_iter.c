/*
 * jdb_iter.c - iterators: a tablet iterator on the table's shard, seen from the client through a
 * buffer of entries copied across in batches.
 *
 * The tablet iterator (tab_iter) may only be used on its shard's thread, and a round trip there
 * costs microseconds, so every crossing (one rt_call running capi_iter_call) positions or moves
 * it and copies the next few entries in the direction of travel - keys and values, a value
 * stored out of line read from the log there - into the client's buffer. next/prev inside the
 * buffer are local. The batch size adapts: CAPI_ITER_WANT_MIN entries after a positioning call
 * or a change of direction (a seek and a few nexts copies few values), doubled on each refill in
 * the same direction up to CAPI_ITER_WANT_MAX entries or about CAPI_ITER_FILL_BYTES (a full scan
 * pays one crossing per few hundred entries).
 *
 * Buffer. ents[0 .. nents-1] were read in that order moving in direction dir (+1 forwards, -1
 * backwards), so they are consecutive entries of the table; cur indexes the current entry, and
 * dir == 0 means unpositioned. A move in direction dir past ents[nents-1] refills, and so does a
 * move against dir before ents[0]. `tail` says where the tablet iterator is:
 *     CAPI_ITER_AT    on ents[nents-1]: a refill in direction dir just steps it
 *     CAPI_ITER_END   past the table's end in direction dir: moving on is JDB_NOTFOUND, locally
 *     CAPI_ITER_LOST  anywhere else (after an error while filling): a refill seeks first
 * A refill from an entry the tablet iterator is not on seeks to its key (present: the view is a
 * snapshot) and steps once - a change of direction costs one seek, as in the tablet.
 *
 * Lifetime. Key and value pointers point into buf, rewritten only by a refill (a move) or freed by
 * close. The iterator holds a snapshot (its own, or the caller's view, which the tablet iterator
 * references, so the caller may release its snapshot first), so every crossing sees the same
 * entries. The iterator is a capi object (capi_int.h): crossings run inside the instance's gate,
 * jdb_close closes the tablet iterator of one left open (capi_iter_drop) and orphans it, after
 * which moves give JDB_ECLOSED and jdb_iter_close only frees the memory.
 */
#include "capi_int.h"

#include "mem.h"

#include <stddef.h>
#include <string.h>

#define CAPI_ITER_WANT_MIN 4u
#define CAPI_ITER_WANT_MAX 256u
#define CAPI_ITER_FILL_BYTES (256u << 10)

enum { CAPI_ITER_AT = 0, CAPI_ITER_END = 1, CAPI_ITER_LOST = 2 };

/* How a crossing positions the tablet iterator before filling. */
enum {
  CAPI_ITER_FIRST = 1,
  CAPI_ITER_LAST,
  CAPI_ITER_SEEK,
  CAPI_ITER_SEEK_PREV,
  CAPI_ITER_STEP,            /* to the entry after `key` in direction dir (it is on key if at) */
};

struct capi_iter_ent {
  size_t off;                /* key at buf + off, its value right after it */
  uint32_t klen;
  size_t vlen;
};

struct jdb_iter {
  struct capi_obj obj;       /* drop closes ti on the shard (capi_int.h: closing) */
  struct jdb_db *db;            /* dereferenced only while obj is not orphaned */
  uint32_t shard;
  uint64_t table;
  struct tab_iter *ti;       /* on the shard: used by capi_iter_call only */
  struct capi_iter_ent *ents;
  size_t nents, cents;
  uint8_t *buf;
  size_t nbuf, cbuf;
  size_t cur;
  int dir;
  int tail;
  uint32_t want;             /* entries the last fill asked for */
};

/* ------------------------------------------------------------------------------------------- */
/* On the shard */

struct capi_iter_req {
  struct jdb_iter *it;
  int how;                   /* CAPI_ITER_* positioning */
  int dir;                   /* direction of the fill */
  const void *key;           /* SEEK, SEEK_PREV, STEP */
  size_t klen;
  int at;                    /* STEP: the tablet iterator is on key */
  uint32_t want;
};

/* Append the tablet iterator's entry to the buffer. */
static int capi_iter_copy(struct jdb_iter *it)
{
  const void *k, *v;
  size_t kl, vl;
  int rc = tab_iter_key(it->ti, &k, &kl);
  if (rc == JDB_OK)
    rc = tab_iter_value(it->ti, &v, &vl);
  if (rc)
    return rc;
  if (capi_grow((void **)&it->ents, &it->cents, it->nents + 1, sizeof *it->ents) ||
      capi_grow((void **)&it->buf, &it->cbuf, it->nbuf + kl + vl, 1))
    return JDB_ENOMEM;
  it->ents[it->nents++] = (struct capi_iter_ent){.off = it->nbuf, .klen = (uint32_t)kl,
                                                 .vlen = vl};
  memcpy(it->buf + it->nbuf, k, kl);
  if (vl)
    memcpy(it->buf + it->nbuf + kl, v, vl);
  it->nbuf += kl + vl;
  return JDB_OK;
}

static int capi_iter_step(struct tab_iter *ti, int dir)
{
  return dir > 0 ? tab_iter_next(ti) : tab_iter_prev(ti);
}

/* STEP: the entry after key in direction dir. */
static int capi_iter_step_from(const struct capi_iter_req *q)
{
  struct tab_iter *ti = q->it->ti;
  if (q->at)
    return capi_iter_step(ti, q->dir);
  uint32_t kl = (uint32_t)q->klen;
  int rc = q->dir > 0 ? tab_iter_seek(ti, q->key, kl) : tab_iter_seek_prev(ti, q->key, kl);
  if (rc)
    return rc;
  const void *k;
  size_t l;
  rc = tab_iter_key(ti, &k, &l);
  if (rc == JDB_OK && l == q->klen && memcmp(k, q->key, l) == 0)
    rc = capi_iter_step(ti, q->dir);
  return rc;
}

static int capi_iter_position(const struct capi_iter_req *q)
{
  struct tab_iter *ti = q->it->ti;
  switch (q->how) {
  case CAPI_ITER_FIRST:
    return tab_iter_first(ti);
  case CAPI_ITER_LAST:
    return tab_iter_last(ti);
  case CAPI_ITER_SEEK:
    return tab_iter_seek(ti, q->key, (uint32_t)q->klen);
  case CAPI_ITER_SEEK_PREV:
    return tab_iter_seek_prev(ti, q->key, (uint32_t)q->klen);
  default:
    return capi_iter_step_from(q);
  }
}

/* Position the tablet iterator, then replace the buffer with up to q->want entries from there in
   direction q->dir. JDB_OK when at least one entry was copied (an error after the first leaves
   tail LOST, so the next refill meets it again), else the positioning's result. The key a STEP
   starts from may point into the buffer: it is used before the buffer is touched. */
static int capi_iter_call(struct tab *tab, void *arg)
{
  (void)tab;
  struct capi_iter_req *q = arg;
  struct jdb_iter *it = q->it;
  int rc = capi_iter_position(q);
  it->nents = 0;
  it->nbuf = 0;
  while (rc == JDB_OK) {
    rc = capi_iter_copy(it);
    if (rc)
      break;
    if (it->nents >= q->want || it->nbuf >= CAPI_ITER_FILL_BYTES) {
      it->tail = CAPI_ITER_AT;
      return JDB_OK;
    }
    rc = capi_iter_step(it->ti, q->dir);
  }
  it->tail = rc == JDB_NOTFOUND ? CAPI_ITER_END : CAPI_ITER_LOST;
  return it->nents ? JDB_OK : rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Client side */

static void capi_iter_unposition(struct jdb_iter *it)
{
  it->dir = 0;
  it->nents = 0;
  it->nbuf = 0;
  it->cur = 0;
}

/* One crossing: position as q says and fill in direction q->dir; the first entry copied is the
   current one. */
static int capi_iter_cross(struct jdb_iter *it, struct capi_iter_req *q)
{
  q->it = it;
  int rc = capi_obj_enter(it->db, &it->obj);
  if (rc == JDB_OK) {
    rc = rt_call(it->db->rt, it->shard, capi_iter_call, q);
    capi_gate_leave(it->db);
  }
  if (rc) {
    capi_iter_unposition(it);
    return rc;
  }
  it->dir = q->dir;
  it->cur = 0;
  it->want = q->want;
  return JDB_OK;
}

static int capi_iter_position_at(struct jdb_iter *it, int how, int dir, const void *key,
                                 size_t klen)
{
  if (!it || ((how == CAPI_ITER_SEEK || how == CAPI_ITER_SEEK_PREV) && capi_key_ok(key, klen)))
    return JDB_EINVAL;   /* the position is kept: nothing was asked of the tablet */
  struct capi_iter_req q = {.how = how, .dir = dir, .key = key, .klen = klen,
                            .want = CAPI_ITER_WANT_MIN};
  return capi_iter_cross(it, &q);
}

int jdb_iter_first(jdb_iter_t *it)
{
  return capi_iter_position_at(it, CAPI_ITER_FIRST, +1, NULL, 0);
}

int jdb_iter_last(jdb_iter_t *it)
{
  return capi_iter_position_at(it, CAPI_ITER_LAST, -1, NULL, 0);
}

int jdb_iter_seek(jdb_iter_t *it, const void *key, size_t klen)
{
  return capi_iter_position_at(it, CAPI_ITER_SEEK, +1, key, klen);
}

int jdb_iter_seek_prev(jdb_iter_t *it, const void *key, size_t klen)
{
  return capi_iter_position_at(it, CAPI_ITER_SEEK_PREV, -1, key, klen);
}

/* Move one entry in direction d: inside the buffer locally, else refill from the current entry. */
static int capi_iter_move(struct jdb_iter *it, int d)
{
  if (!it || !it->dir)
    return JDB_EINVAL;
  if (atomic_load_explicit(&it->obj.orphaned, memory_order_relaxed)) {
    capi_iter_unposition(it);   /* jdb_close released the tablet iterator */
    return JDB_ECLOSED;
  }
  struct capi_iter_req q = {.how = CAPI_ITER_STEP, .dir = d, .want = CAPI_ITER_WANT_MIN};
  if (d == it->dir) {
    if (it->cur + 1 < it->nents) {
      it->cur++;
      return JDB_OK;
    }
    if (it->tail == CAPI_ITER_END) {
      capi_iter_unposition(it);
      return JDB_NOTFOUND;
    }
    q.at = it->tail == CAPI_ITER_AT;
    q.want = it->want >= CAPI_ITER_WANT_MAX / 2 ? CAPI_ITER_WANT_MAX : it->want * 2;
  } else {
    if (it->cur > 0) {
      it->cur--;
      return JDB_OK;
    }
    /* Turning at ents[0]: the tablet iterator is on it only if it is also the last entry. */
    q.at = it->nents == 1 && it->tail == CAPI_ITER_AT;
  }
  const struct capi_iter_ent *e = &it->ents[it->cur];
  q.key = it->buf + e->off;
  q.klen = e->klen;
  return capi_iter_cross(it, &q);
}

int jdb_iter_next(jdb_iter_t *it)
{
  return capi_iter_move(it, +1);
}

int jdb_iter_prev(jdb_iter_t *it)
{
  return capi_iter_move(it, -1);
}

int jdb_iter_key(jdb_iter_t *it, const void **key, size_t *klen)
{
  if (!it || !key || !klen || !it->dir)
    return JDB_EINVAL;
  const struct capi_iter_ent *e = &it->ents[it->cur];
  *key = it->buf + e->off;
  *klen = e->klen;
  return JDB_OK;
}

int jdb_iter_value(jdb_iter_t *it, const void **val, size_t *vlen)
{
  if (!it || !val || !vlen || !it->dir)
    return JDB_EINVAL;
  const struct capi_iter_ent *e = &it->ents[it->cur];
  *val = it->buf + e->off + e->klen;
  *vlen = e->vlen;
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Open and close */

struct capi_iter_open_req {
  const struct tab_snap *snap;
  uint64_t table;
  struct tab_iter *ti;
};

static int capi_iter_open_call(struct tab *tab, void *arg)
{
  struct capi_iter_open_req *q = arg;
  /* a dropped table is gone at once for current reads (a snapshot keeps what it saw) */
  if (!q->snap && !tab_table_live(tab, q->table))
    return JDB_NOTFOUND;
  return tab_iter_open(tab, q->snap, q->table, &q->ti);
}

/* The capi object's drop: runs on the shard, from jdb_iter_close or from jdb_close. */
static int capi_iter_drop(struct tab *tab, void *arg)
{
  (void)tab;
  struct jdb_iter *it = (struct jdb_iter *)((uint8_t *)arg - offsetof(struct jdb_iter, obj));
  tab_iter_close(it->ti);
  it->ti = NULL;
  return JDB_OK;
}

int jdb_iter_open(jdb_table_t *t, const jdb_snap_t *snap, jdb_iter_t **out)
{
  if (out)
    *out = NULL;
  if (!t || !out)
    return JDB_EINVAL;
  if (snap && (snap->db != t->db || snap->shard != t->shard || snap->id != t->id))
    return JDB_EINVAL;
  struct jdb_iter *it = mem_calloc(1, sizeof *it);
  if (!it)
    return JDB_ENOMEM;
  struct jdb_db *db = t->db;
  int rc = capi_gate_enter(db);
  if (rc) {
    mem_free(it);
    return rc;
  }
  /* The tablet iterator references the snapshot's view itself: the caller may release snap
     before closing the iterator. */
  struct capi_iter_open_req q = {.snap = snap ? snap->snap : NULL, .table = t->id};
  rc = rt_call(db->rt, t->shard, capi_iter_open_call, &q);
  if (rc == JDB_OK) {
    it->db = db;
    it->shard = t->shard;
    it->table = t->id;
    it->ti = q.ti;
    capi_obj_link(db, &it->obj, t->shard, capi_iter_drop);
    *out = it;
  } else {
    mem_free(it);
  }
  capi_gate_leave(db);
  return rc;
}

void jdb_iter_close(jdb_iter_t *it)
{
  if (!it)
    return;
  capi_obj_release(it->db, &it->obj);
  mem_free(it->ents);
  mem_free(it->buf);
  mem_free(it);
}
