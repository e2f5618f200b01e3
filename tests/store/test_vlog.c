/*
 * test_vlog.c - the value log (store/vlog/vlog.h): reads by reference (single, batched, from the
 * wal's buffers, read-ahead), accounting, GC (choice, relocation, MOVE replay, crash at every I/O
 * op of a GC run), damaged segments, bad arguments.
 *
 * The "engine" here is a model: key id -> (live, version, reference). Value contents are never
 * stored: a value is regenerated from (key id, version), and its first 8 bytes carry both, so a
 * replay can rebuild the model from the log alone. A durable checkpoint is simulated by keeping a
 * copy of the model together with the replay position it corresponds to (after a wal_sync).
 * Recovery = that copy + replay of the log from the replay position (BATCH ops set references,
 * MOVE entries redirect a key that still names the entry's old reference).
 *
 * Callbacks (replay, GC, fibers) never call cmocka asserts: they count problems in the model and
 * the test asserts the counts afterwards.
 *
 * Log segments are 1 MiB. The backend is io_uring (psync when the kernel refuses io_uring, or
 * with JDB_IO=psync); the crash test wraps it in the faulty backend.
 */
#include "tutil.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"
#include "layout.h"
#include "vlog.h"
#include "wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1ull << 20)
#define TABLE 7u
#define NKEYS_MAX 4096u
#define BATCH_MAX 8u

/* ------------------------------------------------------------------------------------------- */
/* Values and keys */

static void val_fill(uint8_t *b, uint32_t len, uint32_t id, uint32_t version)
{
  uint64_t x = ((uint64_t)id << 32 | version) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  for (uint32_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (uint8_t)x;
  }
  if (len >= 8) {
    le32_put(b, id);
    le32_put(b + 4, version);
  }
}

static int val_ok(const uint8_t *b, uint32_t len, uint32_t id, uint32_t version)
{
  uint8_t *want = malloc(len);
  val_fill(want, len, id, version);
  int ok = memcmp(want, b, len) == 0;
  free(want);
  return ok;
}

static uint32_t key_put(uint8_t *buf, uint32_t id) /* "k000123" */
{
  char tmp[16];
  snprintf(tmp, sizeof tmp, "k%06u", id);
  memcpy(buf, tmp, 7);
  return 7;
}

static int key_parse(const uint8_t *k, uint32_t klen)
{
  if (klen != 7 || k[0] != 'k')
    return -1;
  int id = 0;
  for (int i = 1; i < 7; i++) {
    if (k[i] < '0' || k[i] > '9')
      return -1;
    id = id * 10 + (k[i] - '0');
  }
  return id < (int)NKEYS_MAX ? id : -1;
}

/* ------------------------------------------------------------------------------------------- */
/* The model */

struct env;

struct kstate {
  int live;
  uint32_t version;          /* of the live value */
  struct wal_vref ref;
};

struct model {
  struct kstate k[NKEYS_MAX];
  uint32_t gen[NKEYS_MAX];   /* last version handed out per key */
  uint64_t seq;
  uint64_t bad;              /* anything a callback found wrong */
  uint64_t moves_applied;
  uint64_t move_records;
  /* GC hooks */
  int overwrite_id;          /* live(): overwrite this key after calling it live (-1: none) */
  struct env *env;
};

static void model_copy(struct model *dst, const struct model *src)
{
  memcpy(dst, src, sizeof *dst);
}

/* Keys, versions and liveness equal (references too when with_refs). */
static void model_assert_same(const struct model *a, const struct model *b, int with_refs)
{
  for (uint32_t i = 0; i < NKEYS_MAX; i++) {
    assert_int_equal(a->k[i].live, b->k[i].live);
    if (!a->k[i].live)
      continue;
    assert_int_equal(a->k[i].version, b->k[i].version);
    assert_int_equal(a->k[i].ref.len, b->k[i].ref.len);
    if (with_refs)
      assert_true(a->k[i].ref.pos == b->k[i].ref.pos);
  }
}

static int model_move_apply(void *ud, const struct vlog_move_entry *e)
{
  struct model *m = ud;
  int id = key_parse(e->key, e->klen);
  if (id < 0 || e->table_id != TABLE || e->old_ref.len != e->new_ref.len ||
      e->new_ref.pos <= e->old_ref.pos) {
    m->bad++;
    return 0;
  }
  if (m->k[id].live && m->k[id].ref.pos == e->old_ref.pos) {
    if (m->k[id].ref.len != e->old_ref.len || le32_get(e->val) != (uint32_t)id ||
        le32_get(e->val + 4) != m->k[id].version)
      m->bad++;
    m->k[id].ref = e->new_ref;
    m->moves_applied++;
  }
  return 0;
}

/* Recovery of the model from the log (wal_replay callback). */
static int model_replay(void *ud, const struct wal_rec *rec)
{
  struct model *m = ud;
  if (rec->type == LOG_REC_MOVE) {
    m->move_records++;
    return vlog_move_decode(rec, model_move_apply, m);
  }
  struct wal_batch b;
  int rc = wal_batch_open(rec, &b);
  if (rc)
    return rc;
  if (b.table_id != TABLE)
    m->bad++;
  if (b.seq > m->seq)
    m->seq = b.seq;
  struct wal_op_view op;
  while ((rc = wal_batch_next(&b, &op)) == JDB_OK) {
    int id = key_parse(op.key, op.klen);
    if (id < 0)
      continue;   /* inline filler */
    if (op.kind == WAL_OP_DEL) {
      m->k[id].live = 0;
      continue;
    }
    if (op.vref.len == 0 || op.vlen < 8 || le32_get(op.val) != (uint32_t)id) {
      m->bad++;
      continue;
    }
    uint32_t version = le32_get(op.val + 4);
    m->k[id] = (struct kstate){1, version, op.vref};
    if (m->gen[id] < version)
      m->gen[id] = version;
  }
  return rc == JDB_NOTFOUND ? JDB_OK : rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Environment: a ctx, a wal and a vlog over a directory */

struct env {
  const char *dir;
  struct fs_ctx *ctx;
  struct wal *w;
  struct vlog *v;
  struct vlog_opts vo;
  struct model *m;
};

static struct fs_ctx *ctx_new(int faulty, uint64_t seed)
{
  /* AUTO: io_uring, or psync when the kernel refuses it or JDB_IO=psync asks for it. */
  struct fs_ctx_opts o = {.backend = FS_BACKEND_AUTO};
  struct fs_ctx *c = NULL;
  assert_int_equal(fs_ctx_create(&o, &c), JDB_OK);
  if (faulty) {
    struct fs_ctx *f = NULL;
    assert_int_equal(fs_faulty_create(c, seed, &f), JDB_OK);
    c = f;
  }
  return c;
}

/* Open wal + vlog; replay from replay_pos into m (NULL: no callback). */
static void env_open(struct env *e, uint64_t replay_pos, struct model *m)
{
  struct wal_opts o = {.segment_bytes = MIB};
  assert_int_equal(wal_open(e->ctx, e->dir, &o, &e->w), JDB_OK);
  assert_int_equal(wal_replay(e->w, replay_pos, m ? model_replay : NULL, m, NULL), JDB_OK);
  assert_int_equal(vlog_open(e->ctx, e->w, e->dir, &e->vo, &e->v), JDB_OK);
}

static void env_close(struct env *e)
{
  vlog_close(e->v);
  wal_close(e->w);
  e->v = NULL;
  e->w = NULL;
}

static void env_init(struct env *e, const char *name, int faulty, uint64_t seed)
{
  memset(e, 0, sizeof *e);
  e->dir = tutil_tmpdir(name);
  e->ctx = ctx_new(faulty, seed);
  e->m = calloc(1, sizeof *e->m);
  assert_non_null(e->m);
  e->m->overwrite_id = -1;
  e->m->env = e;
}

static void env_fini(struct env *e)
{
  if (e->v || e->w)
    env_close(e);
  fs_ctx_destroy(e->ctx);
  tutil_rmrf(e->dir);
  free(e->m);
}

/* Account every live reference of the model (what an engine does after recovery). */
static void env_account_all(struct env *e)
{
  for (uint32_t i = 0; i < NKEYS_MAX; i++)
    if (e->m->k[i].live)
      assert_int_equal(vlog_account_add(e->v, e->m->k[i].ref), JDB_OK);
}

/* One batch of ops on distinct keys. kinds[i]: 1 put (len lens[i]), 2 delete. An inline filler
   op (key "i...") is added when filler is set. Updates the model and the accounting. Returns
   the wal_append result (asserted by callers that expect success). */
static int env_batch(struct env *e, const uint32_t *ids, const uint8_t *kinds, const uint32_t *lens,
                     uint32_t n, int filler)
{
  struct model *m = e->m;
  struct wal_op ops[BATCH_MAX + 1];
  struct wal_vref vrefs[BATCH_MAX + 1];
  uint8_t keys[BATCH_MAX + 1][8];
  uint8_t *vals[BATCH_MAX + 1] = {0};
  uint32_t vers[BATCH_MAX];
  assert_true(n <= BATCH_MAX);
  for (uint32_t i = 0; i < n; i++) {
    ops[i] = (struct wal_op){.kind = kinds[i] == 1 ? WAL_OP_PUT : WAL_OP_DEL, .key = keys[i],
                             .klen = key_put(keys[i], ids[i])};
    if (kinds[i] == 1) {
      vers[i] = m->gen[ids[i]] + 1;
      vals[i] = malloc(lens[i]);
      val_fill(vals[i], lens[i], ids[i], vers[i]);
      ops[i].val = vals[i];
      ops[i].vlen = lens[i];
    }
  }
  uint32_t nops = n;
  uint8_t small[40];
  if (filler) {
    memset(small, 'x', sizeof small);
    memcpy(keys[n], "i000001", 7);
    ops[nops++] = (struct wal_op){.kind = WAL_OP_PUT, .key = keys[n], .klen = 7, .val = small,
                                  .vlen = sizeof small};
  }
  int rc = wal_append(e->w, TABLE, ++m->seq, 0, ops, nops, vrefs, NULL);
  for (uint32_t i = 0; rc == JDB_OK && i < n; i++) {
    struct kstate *k = &m->k[ids[i]];
    if (k->live)
      assert_int_equal(vlog_account_dead(e->v, k->ref), JDB_OK);
    if (kinds[i] == 1) {
      assert_int_equal(vrefs[i].len, lens[i]);
      m->gen[ids[i]] = vers[i];
      *k = (struct kstate){1, vers[i], vrefs[i]};
      assert_int_equal(vlog_account_add(e->v, vrefs[i]), JDB_OK);
    } else {
      k->live = 0;
    }
  }
  if (filler)
    assert_int_equal(vrefs[n].len, 0);
  for (uint32_t i = 0; i < n; i++)
    free(vals[i]);
  return rc;
}

static void env_put(struct env *e, uint32_t id, uint32_t len)
{
  uint8_t kind = 1;
  assert_int_equal(env_batch(e, &id, &kind, &len, 1, 0), JDB_OK);
}

static void env_del(struct env *e, uint32_t id)
{
  uint8_t kind = 2;
  uint32_t len = 0;
  assert_int_equal(env_batch(e, &id, &kind, &len, 1, 0), JDB_OK);
}

/* A random workload: nbatches batches of 1..4 ops over keys [0, nkeys), values 300..3000 bytes,
   about one op in ten a delete (of a live key). */
static void env_workload(struct env *e, struct tutil_rng *r, uint32_t nbatches, uint32_t nkeys)
{
  for (uint32_t b = 0; b < nbatches; b++) {
    uint32_t n = 1 + (uint32_t)tutil_rng_below(r, 4), ids[BATCH_MAX], lens[BATCH_MAX];
    uint8_t kinds[BATCH_MAX];
    for (uint32_t i = 0; i < n; i++) {
      uint32_t id;
      int dup;
      do {
        id = (uint32_t)tutil_rng_below(r, nkeys);
        dup = 0;
        for (uint32_t j = 0; j < i; j++)
          dup |= ids[j] == id;
      } while (dup);
      ids[i] = id;
      kinds[i] = e->m->k[id].live && tutil_rng_below(r, 10) == 0 ? 2 : 1;
      lens[i] = 300 + (uint32_t)tutil_rng_below(r, 2701);
    }
    assert_int_equal(env_batch(e, ids, kinds, lens, n, tutil_rng_below(r, 8) == 0), JDB_OK);
  }
}

/* Read every live value of the model in batches of 64 and check it. */
static void env_verify(struct env *e, const struct model *m)
{
  struct vlog_req reqs[64];
  uint32_t ids[64];
  uint32_t n = 0;
  for (uint32_t i = 0; i <= NKEYS_MAX; i++) {
    if (i < NKEYS_MAX && m->k[i].live) {
      ids[n] = i;
      reqs[n] = (struct vlog_req){.ref = m->k[i].ref, .dst = malloc(m->k[i].ref.len)};
      n++;
    }
    if (n == 64 || (i == NKEYS_MAX && n)) {
      int rc = vlog_read_batch(e->v, reqs, n);
      for (uint32_t j = 0; j < n; j++) {
        if (reqs[j].result != JDB_OK || !val_ok(reqs[j].dst, reqs[j].ref.len, ids[j],
                                                 m->k[ids[j]].version))
          fail_msg("key %u (version %u, ref %llx+%u): result %d", ids[j], m->k[ids[j]].version,
                   (unsigned long long)reqs[j].ref.pos, reqs[j].ref.len, reqs[j].result);
        free(reqs[j].dst);
      }
      assert_int_equal(rc, JDB_OK);
      n = 0;
    }
  }
}

static int seg_exists(struct env *e, uint32_t seg)
{
  uint32_t segs[256];
  size_t n = wal_segments(e->w, segs, 256);
  for (size_t i = 0; i < n && i < 256; i++)
    if (segs[i] == seg)
      return 1;
  return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* GC callbacks over e->m */

static int cb_live(void *ud, const struct vlog_value *val)
{
  struct model *m = ud;
  int id = key_parse(val->key, val->klen);
  if (id < 0 || val->table_id != TABLE) {
    m->bad++;
    return 0;
  }
  struct kstate *k = &m->k[id];
  if (!k->live || k->ref.pos != val->ref.pos)
    return 0;
  if (k->ref.len != val->ref.len)
    m->bad++;
  if (id == m->overwrite_id) {
    /* Called live, then overwritten before GC reports the move (a write racing the GC). */
    m->overwrite_id = -1;
    uint32_t uid = (uint32_t)id, len = 777;
    uint8_t kind = 1;
    if (env_batch(m->env, &uid, &kind, &len, 1, 0) != JDB_OK)
      m->bad++;
  }
  return 1;
}

static int cb_moved(void *ud, const struct vlog_value *val, struct wal_vref nref)
{
  struct model *m = ud;
  int id = key_parse(val->key, val->klen);
  if (id < 0 || nref.len != val->ref.len || nref.pos <= val->ref.pos) {
    m->bad++;
    return 0;
  }
  /* Until every move is reported, no checkpoint may pass the first MOVE record. */
  uint64_t cap = vlog_gc_replay_cap(m->env->v);
  if (cap == UINT64_MAX || cap > nref.pos)
    m->bad++;
  struct kstate *k = &m->k[id];
  if (!k->live || k->ref.pos != val->ref.pos)
    return 0;
  k->ref = nref;
  return 1;
}

static int env_gc(struct env *e, uint64_t replay_pos, uint32_t max_segments,
                  struct vlog_gc_result *res)
{
  struct vlog_gc_args a = {.replay_pos = replay_pos, .max_segments = max_segments,
                           .max_live_bytes = UINT64_MAX, .live = cb_live, .moved = cb_moved,
                           .ud = e->m};
  return vlog_gc(e->v, &a, res);
}

/* ------------------------------------------------------------------------------------------- */
/* Read-back */

static void test_read_back(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-read", 0, 0);
  env_open(&e, 0, NULL);
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed());

  /* Some old versions, to read back after they were overwritten (their segments remain). */
  struct oldv { struct wal_vref ref; uint32_t id, version; } old[200];
  uint32_t nold = 0;
  env_workload(&e, &r, 700, 900);
  for (uint32_t i = 0; i < 900 && nold < 200; i += 3)
    if (e.m->k[i].live)
      old[nold++] = (struct oldv){e.m->k[i].ref, i, e.m->k[i].version};
  env_workload(&e, &r, 700, 900);
  assert_true(LOG_POS_SEG(wal_append_pos(e.w)) >= 4);
  /* The last values are still in the wal's append buffer (nothing flushed them). */
  for (uint32_t i = 0; i < 20; i++)
    env_put(&e, 1000 + i, 500 + i * 50);
  assert_true(wal_written_pos(e.w) < wal_append_pos(e.w));

  struct vlog_stats st0, st1;
  vlog_stats_get(e.v, &st0);
  uint8_t *buf = malloc(4000);
  for (uint32_t i = 0; i < NKEYS_MAX; i++) {
    if (!e.m->k[i].live)
      continue;
    memset(buf, 0, 4000);
    assert_int_equal(vlog_read(e.v, e.m->k[i].ref, buf), JDB_OK);
    assert_true(val_ok(buf, e.m->k[i].ref.len, i, e.m->k[i].version));
  }
  vlog_stats_get(e.v, &st1);
  assert_true(st1.mem_reads - st0.mem_reads >= 20);
  for (uint32_t i = 0; i < nold; i++) {
    assert_int_equal(vlog_read(e.v, old[i].ref, buf), JDB_OK);
    assert_true(val_ok(buf, old[i].ref.len, old[i].id, old[i].version));
  }

  /* Batched, in random order, including the buffered ones. */
  uint32_t live[NKEYS_MAX], nlive = 0;
  for (uint32_t i = 0; i < NKEYS_MAX; i++)
    if (e.m->k[i].live)
      live[nlive++] = i;
  for (uint32_t i = nlive; i > 1; i--) {
    uint32_t j = (uint32_t)tutil_rng_below(&r, i), t = live[i - 1];
    live[i - 1] = live[j];
    live[j] = t;
  }
  struct vlog_req *reqs = calloc(100, sizeof *reqs);
  for (uint32_t at = 0; at < nlive; at += 100) {
    uint32_t n = nlive - at < 100 ? nlive - at : 100;
    for (uint32_t j = 0; j < n; j++)
      reqs[j] = (struct vlog_req){.ref = e.m->k[live[at + j]].ref,
                                  .dst = malloc(e.m->k[live[at + j]].ref.len)};
    assert_int_equal(vlog_read_batch(e.v, reqs, n), JDB_OK);
    for (uint32_t j = 0; j < n; j++) {
      assert_int_equal(reqs[j].result, JDB_OK);
      assert_true(val_ok(reqs[j].dst, reqs[j].ref.len, live[at + j],
                         e.m->k[live[at + j]].version));
      free(reqs[j].dst);
    }
  }
  vlog_stats_get(e.v, &st0);
  assert_true(st0.batches >= nlive / 100);

  /* After a sync everything comes from files, the current segment included. */
  assert_int_equal(wal_sync(e.w), JDB_OK);
  env_verify(&e, e.m);
  vlog_stats_get(e.v, &st1);
  assert_int_equal(st1.mem_reads, st0.mem_reads);
  assert_int_equal(st1.corrupt, 0);

  /* A reopened log reads the same. */
  env_close(&e);
  env_open(&e, 0, NULL);
  env_verify(&e, e.m);
  free(reqs);
  free(buf);
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* Read-ahead */

static void test_readahead(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-ra", 0, 0);
  env_open(&e, 0, NULL);
  const uint32_t n = 300;
  for (uint32_t i = 0; i < n; i++)
    env_put(&e, i, 1000);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  assert_int_equal(LOG_POS_SEG(e.m->k[0].ref.pos), LOG_POS_SEG(e.m->k[n - 1].ref.pos));
  uint8_t buf[1000];
  struct vlog_stats st;

  /* Sequential single reads: the first is direct, the second fills the window, then hits, a
     refill whenever a value crosses the window's end. */
  vlog_close(e.v);
  e.vo = (struct vlog_opts){.readahead_bytes = 64u << 10};
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &e.vo, &e.v), JDB_OK);
  for (uint32_t i = 0; i < n; i++) {
    assert_int_equal(vlog_read(e.v, e.m->k[i].ref, buf), JDB_OK);
    assert_true(val_ok(buf, 1000, i, e.m->k[i].version));
  }
  vlog_stats_get(e.v, &st);
  assert_int_equal(st.reads, n);
  assert_int_equal(st.direct_reads, 1);
  assert_int_equal(st.ra_hits + st.ra_fills + st.direct_reads, n);
  /* ~1.1 KiB per record: about 60 values per 64 KiB window. */
  assert_true(st.ra_fills >= 4 && st.ra_fills <= 8);
  assert_true(st.ra_hits >= n - 9);

  /* Backwards: no run, no read-ahead. */
  vlog_close(e.v);
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &e.vo, &e.v), JDB_OK);
  for (uint32_t i = n; i-- > 0;) {
    assert_int_equal(vlog_read(e.v, e.m->k[i].ref, buf), JDB_OK);
    assert_true(val_ok(buf, 1000, i, e.m->k[i].version));
  }
  vlog_stats_get(e.v, &st);
  assert_int_equal(st.ra_fills, 0);
  assert_int_equal(st.ra_hits, 0);
  assert_int_equal(st.direct_reads, n);

  /* One batch of the whole run in order: one submission, served mostly by window fills. */
  vlog_close(e.v);
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &e.vo, &e.v), JDB_OK);
  struct vlog_req *reqs = calloc(n, sizeof *reqs);
  uint8_t *bufs = malloc((size_t)n * 1000);
  for (uint32_t i = 0; i < n; i++)
    reqs[i] = (struct vlog_req){.ref = e.m->k[i].ref, .dst = bufs + (size_t)i * 1000};
  assert_int_equal(vlog_read_batch(e.v, reqs, n), JDB_OK);
  for (uint32_t i = 0; i < n; i++)
    assert_true(val_ok(bufs + (size_t)i * 1000, 1000, i, e.m->k[i].version));
  vlog_stats_get(e.v, &st);
  assert_int_equal(st.batches, 1);
  assert_true(st.ra_fills >= 1);
  /* One window per batch: the batch's refs inside it hit, the rest are direct reads. */
  assert_int_equal(st.ra_hits + st.ra_fills + st.direct_reads, n);
  assert_true(st.ra_hits >= 50);
  /* The following batches continue from the window the first one left. */
  for (uint32_t at = 0; at < n; at += 10) {
    assert_int_equal(vlog_read_batch(e.v, reqs + at, 10), JDB_OK);
  }
  struct vlog_stats st2;
  vlog_stats_get(e.v, &st2);
  assert_true(st2.ra_hits - st.ra_hits >= n - 20);

  /* Read-ahead off. */
  vlog_close(e.v);
  e.vo.readahead_off = 1;
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &e.vo, &e.v), JDB_OK);
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(vlog_read(e.v, e.m->k[i].ref, buf), JDB_OK);
  vlog_stats_get(e.v, &st);
  assert_int_equal(st.ra_fills + st.ra_hits, 0);
  assert_int_equal(st.direct_reads, n);
  free(reqs);
  free(bufs);
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* Fibers reading at once (window ownership, handle pins, parking waits) */

struct fib_arg {
  struct env *e;
  int mode;                  /* 0 batches, 1 sequential singles, 2 reverse singles */
  int failures;
};

static void fib_reader(void *p)
{
  struct fib_arg *a = p;
  struct model *m = a->e->m;
  uint8_t *buf = malloc(4000);
  struct vlog_req *reqs = calloc(32, sizeof *reqs);
  uint32_t ids[32], n = 0;
  for (uint32_t k = 0; k <= NKEYS_MAX; k++) {
    uint32_t i = a->mode == 2 && k < NKEYS_MAX ? NKEYS_MAX - 1 - k : k;
    if (k < NKEYS_MAX && !m->k[i].live)
      continue;
    if (a->mode) {
      if (k == NKEYS_MAX)
        break;
      if (vlog_read(a->e->v, m->k[i].ref, buf) != JDB_OK ||
          !val_ok(buf, m->k[i].ref.len, i, m->k[i].version))
        a->failures++;
      coro_yield();
      continue;
    }
    if (k < NKEYS_MAX) {
      ids[n] = i;
      reqs[n] = (struct vlog_req){.ref = m->k[i].ref, .dst = malloc(m->k[i].ref.len)};
      n++;
    }
    if (n == 32 || (k == NKEYS_MAX && n)) {
      if (vlog_read_batch(a->e->v, reqs, n) != JDB_OK)
        a->failures++;
      for (uint32_t j = 0; j < n; j++) {
        if (reqs[j].result || !val_ok(reqs[j].dst, reqs[j].ref.len, ids[j], m->k[ids[j]].version))
          a->failures++;
        free(reqs[j].dst);
      }
      n = 0;
    }
  }
  free(reqs);
  free(buf);
}

static void test_fibers(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-fib", 0, 0);
  env_open(&e, 0, NULL);
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() + 1);
  env_workload(&e, &r, 1500, 1000);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  struct coro_sched *s;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  struct fib_arg args[4] = {{&e, 0, 0}, {&e, 1, 0}, {&e, 2, 0}, {&e, 1, 0}};
  for (int i = 0; i < 4; i++)
    assert_int_equal(coro_spawn(s, fib_reader, &args[i], NULL), JDB_OK);
  assert_int_equal(fs_loop_run(e.ctx, s), JDB_OK);
  for (int i = 0; i < 4; i++)
    assert_int_equal(args[i].failures, 0);
  coro_sched_destroy(s);
  struct vlog_stats st;
  vlog_stats_get(e.v, &st);
  assert_true(st.ra_hits > 0);
  assert_int_equal(st.corrupt, 0);
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* Accounting */

static void test_accounting(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-acct", 0, 0);
  env_open(&e, 0, NULL);
  struct vlog_seg_info si;
  struct wal_vref a = {LOG_POS(3, 100), 1000}, b = {LOG_POS(3, 5000), 300},
                  c = {LOG_POS(3, 9000), 700}, d = {LOG_POS(5, 64), 4096};
  assert_int_equal(vlog_account_get(e.v, 3, &si), JDB_NOTFOUND);
  assert_int_equal(si.live_bytes + si.live_values + si.dead_bytes + si.dead_values, 0);
  assert_int_equal(vlog_account_add(e.v, a), JDB_OK);
  assert_int_equal(vlog_account_add(e.v, b), JDB_OK);
  assert_int_equal(vlog_account_add(e.v, c), JDB_OK);
  assert_int_equal(vlog_account_add(e.v, d), JDB_OK);
  assert_int_equal(vlog_account_dead(e.v, b), JDB_OK);
  assert_int_equal(vlog_account_get(e.v, 3, &si), JDB_OK);
  assert_int_equal(si.seg, 3);
  assert_int_equal(si.live_values, 2);
  assert_int_equal(si.live_bytes, 1700);
  assert_int_equal(si.dead_values, 1);
  assert_int_equal(si.dead_bytes, 300);
  assert_int_equal(vlog_account_get(e.v, 5, &si), JDB_OK);
  assert_int_equal(si.live_bytes, 4096);
  assert_int_equal(vlog_account_get(e.v, 4, &si), JDB_NOTFOUND);
  /* Out of order segments keep the table sorted. */
  for (uint32_t s = 200; s > 100; s--)
    assert_int_equal(vlog_account_add(e.v, (struct wal_vref){LOG_POS(s, 64), s}), JDB_OK);
  for (uint32_t s = 101; s <= 200; s++) {
    assert_int_equal(vlog_account_get(e.v, s, &si), JDB_OK);
    assert_int_equal(si.live_bytes, s);
  }
  /* Dead more than live: clamped at zero and counted. */
  assert_int_equal(vlog_account_dead(e.v, a), JDB_OK);
  assert_int_equal(vlog_account_dead(e.v, c), JDB_OK);
  assert_int_equal(vlog_account_dead(e.v, c), JDB_OK);
  assert_int_equal(vlog_account_get(e.v, 3, &si), JDB_OK);
  assert_int_equal(si.live_values, 0);
  assert_int_equal(si.live_bytes, 0);
  assert_int_equal(si.dead_values, 4);
  assert_int_equal(si.dead_bytes, 2700);
  struct vlog_stats st;
  vlog_stats_get(e.v, &st);
  assert_int_equal(st.acct_underflows, 1);
  /* Bulk load (an engine restoring persisted counts) adds to what is there. */
  assert_int_equal(vlog_account_load(e.v, 5, 3, 3000), JDB_OK);
  assert_int_equal(vlog_account_get(e.v, 5, &si), JDB_OK);
  assert_int_equal(si.live_values, 4);
  assert_int_equal(si.live_bytes, 7096);
  assert_int_equal(vlog_account_load(e.v, 9, 0, 0), JDB_OK);
  assert_int_equal(vlog_account_get(e.v, 9, &si), JDB_NOTFOUND);
  assert_int_equal(vlog_account_load(e.v, 0, 1, 1), JDB_EINVAL);
  assert_int_equal(vlog_account_load(e.v, 9, 0, 5), JDB_EINVAL);
  assert_int_equal(vlog_account_load(e.v, 9, 5, 0), JDB_EINVAL);
  assert_int_equal(vlog_account_load(e.v, 9, 5, 4), JDB_EINVAL);
  assert_int_equal(vlog_account_load(NULL, 9, 1, 1), JDB_EINVAL);

  /* The model's own writes: live bytes per segment equal the sum of live refs there. */
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() + 2);
  env_close(&e);
  tutil_rmrf(e.dir);
  e.dir = tutil_tmpdir("vlog-acct2");
  memset(e.m, 0, sizeof *e.m);
  e.m->overwrite_id = -1;
  e.m->env = &e;
  env_open(&e, 0, NULL);
  env_workload(&e, &r, 1500, 500);
  uint64_t per[16] = {0}, cnt[16] = {0};
  for (uint32_t i = 0; i < NKEYS_MAX; i++)
    if (e.m->k[i].live) {
      uint32_t s = LOG_POS_SEG(e.m->k[i].ref.pos);
      assert_true(s < 16);
      per[s] += e.m->k[i].ref.len;
      cnt[s]++;
    }
  for (uint32_t s = 1; s < 16; s++) {
    int rc = vlog_account_get(e.v, s, &si);
    if (rc == JDB_NOTFOUND) {
      assert_int_equal(per[s], 0);
      continue;
    }
    assert_int_equal(si.live_bytes, per[s]);
    assert_int_equal(si.live_values, cnt[s]);
  }
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* GC: choice, relocation, replay */

static void test_gc_pick_least_live(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-pick", 0, 0);
  env_open(&e, 0, NULL);
  /* Unique keys, 2000 bytes each, until four segments are full. */
  uint32_t nk = 0;
  while (LOG_POS_SEG(wal_append_pos(e.w)) < 5)
    env_put(&e, nk++, 2000);
  /* Kill a share of each segment: seg 1 half, seg 2 nine in ten, seg 3 none, seg 4 one in five. */
  const uint32_t every[5] = {0, 2, 1, 0, 5};   /* kill when i % every == 0 (0: never) */
  uint32_t killed2 = 0;
  for (uint32_t i = 0; i < nk; i++) {
    uint32_t s = LOG_POS_SEG(e.m->k[i].ref.pos);
    int kill = s == 2 ? i % 10 != 0 : s < 5 && every[s] && i % every[s] == 0;
    if (kill) {
      env_del(&e, i);
      killed2 += s == 2;
    }
  }
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp = wal_append_pos(e.w);
  assert_true(LOG_POS_SEG(rp) >= 5);

  uint32_t segs[16];
  size_t cnt;
  assert_int_equal(vlog_gc_pick(e.v, rp, UINT64_MAX, segs, 16, &cnt), JDB_OK);
  assert_int_equal(cnt, 4);
  assert_int_equal(segs[0], 2);
  assert_int_equal(segs[1], 1);
  assert_int_equal(segs[2], 4);
  assert_int_equal(segs[3], 3);
  /* Bounded by the replay position's segment. */
  assert_int_equal(vlog_gc_pick(e.v, LOG_POS(3, 0), UINT64_MAX, segs, 16, &cnt), JDB_OK);
  assert_int_equal(cnt, 2);
  assert_int_equal(segs[0], 2);
  assert_int_equal(segs[1], 1);
  /* By live bytes. */
  struct vlog_seg_info s2;
  assert_int_equal(vlog_account_get(e.v, 2, &s2), JDB_OK);
  assert_true(s2.dead_values == killed2);
  assert_int_equal(vlog_gc_pick(e.v, rp, s2.live_bytes, segs, 16, &cnt), JDB_OK);
  assert_int_equal(cnt, 1);
  assert_int_equal(vlog_gc_pick(e.v, rp, 0, segs, 16, &cnt), JDB_OK);
  assert_int_equal(cnt, 0);
  assert_int_equal(vlog_gc_pick(e.v, rp, UINT64_MAX, NULL, 0, &cnt), JDB_OK);
  assert_int_equal(cnt, 4);
  /* Nothing before replay position 0 / the first segment. */
  assert_int_equal(vlog_gc_pick(e.v, 0, UINT64_MAX, segs, 16, &cnt), JDB_OK);
  assert_int_equal(cnt, 0);

  /* Collect one: segment 2 goes, its live values move. */
  struct vlog_gc_result res;
  struct vlog_seg_info cur0, cur1;
  uint32_t cur = LOG_POS_SEG(wal_append_pos(e.w));
  vlog_account_get(e.v, cur, &cur0);
  assert_int_equal(env_gc(&e, rp, 1, &res), JDB_OK);
  assert_int_equal(res.segments_dropped, 1);
  assert_int_equal(res.values_moved, s2.live_values);
  assert_int_equal(res.bytes_moved, s2.live_bytes);
  assert_int_equal(res.values_rejected, 0);
  assert_true(res.values_checked >= s2.live_values + s2.dead_values);
  assert_false(seg_exists(&e, 2));
  assert_true(seg_exists(&e, 1));
  assert_int_equal(vlog_account_get(e.v, 2, &s2), JDB_NOTFOUND);
  assert_int_equal(LOG_POS_SEG(wal_append_pos(e.w)), cur);
  vlog_account_get(e.v, cur, &cur1);
  assert_int_equal(cur1.live_bytes - cur0.live_bytes, res.bytes_moved);
  assert_int_equal(vlog_gc_replay_cap(e.v), UINT64_MAX);
  assert_int_equal(e.m->bad, 0);
  env_verify(&e, e.m);
  assert_int_equal(vlog_gc_pick(e.v, rp, UINT64_MAX, segs, 16, &cnt), JDB_OK);
  assert_int_equal(cnt, 3);
  assert_int_equal(segs[0], 1);
  env_fini(&e);
}

static void test_gc_relocate(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-gc", 0, 0);
  env_open(&e, 0, NULL);
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() + 3);
  struct model *ckpt = calloc(1, sizeof *ckpt), *rec = calloc(1, sizeof *rec);

  env_workload(&e, &r, 1700, 700);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp = wal_append_pos(e.w);
  model_copy(ckpt, e.m);
  env_workload(&e, &r, 30, 700);          /* after the checkpoint: replayed at recovery */
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint32_t limit = LOG_POS_SEG(rp);
  assert_true(limit >= 4);

  /* The oldest live value gets overwritten between its live check and its move report. */
  uint64_t oldest = UINT64_MAX;
  for (uint32_t i = 0; i < NKEYS_MAX; i++)
    if (e.m->k[i].live && e.m->k[i].ref.pos < oldest) {
      oldest = e.m->k[i].ref.pos;
      e.m->overwrite_id = (int)i;
    }
  assert_true(e.m->overwrite_id >= 0 && LOG_POS_SEG(oldest) < limit);
  struct vlog_gc_result res;
  assert_int_equal(env_gc(&e, rp, 100, &res), JDB_OK);
  assert_int_equal(res.segments_dropped, limit - 1);
  assert_int_equal(res.values_rejected, 1);
  assert_true(res.values_moved > 0);
  for (uint32_t s = 1; s < limit; s++)
    assert_false(seg_exists(&e, s));
  assert_int_equal(e.m->bad, 0);
  env_verify(&e, e.m);
  struct vlog_stats st;
  vlog_stats_get(e.v, &st);
  assert_true(st.gc_move_records >= 1);
  assert_true(st.gc_move_records < res.values_moved);   /* values share MOVE records */
  /* Nothing left to collect before rp. */
  size_t cnt;
  assert_int_equal(vlog_gc_pick(e.v, rp, UINT64_MAX, NULL, 0, &cnt), JDB_OK);
  assert_int_equal(cnt, 0);
  assert_int_equal(env_gc(&e, rp, 100, &res), JDB_OK);
  assert_int_equal(res.segments_dropped, 0);

  /* Recovery from the checkpoint rebuilds exactly the same references. */
  env_close(&e);
  model_copy(rec, ckpt);
  env_open(&e, rp, rec);
  assert_int_equal(rec->bad, 0);
  assert_true(rec->moves_applied > 0);
  model_assert_same(rec, e.m, 1);
  env_verify(&e, rec);

  /* A second checkpoint, more writes, GC again: now the collected segments hold MOVE records
     whose live values move once more. */
  env_account_all(&e);
  env_workload(&e, &r, 600, 700);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp2 = wal_append_pos(e.w);
  model_copy(ckpt, e.m);
  assert_true(LOG_POS_SEG(rp2) > LOG_POS_SEG(rp));
  e.m->moves_applied = 0;
  vlog_stats_get(e.v, &st);
  uint64_t moved_before = st.gc_values_moved;
  assert_int_equal(env_gc(&e, rp2, 100, &res), JDB_OK);
  assert_int_equal(res.segments_dropped, LOG_POS_SEG(rp2) - LOG_POS_SEG(rp));
  assert_true(res.values_moved > 0);
  vlog_stats_get(e.v, &st);
  assert_int_equal(st.gc_values_moved - moved_before, res.values_moved);
  env_verify(&e, e.m);
  env_close(&e);
  model_copy(rec, ckpt);
  env_open(&e, rp2, rec);
  assert_int_equal(rec->bad, 0);
  model_assert_same(rec, e.m, 1);
  env_verify(&e, rec);
  free(ckpt);
  free(rec);
  env_fini(&e);
}

/* A segment whose values are all dead is dropped without appending anything. */
static void test_gc_all_dead(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-dead", 0, 0);
  env_open(&e, 0, NULL);
  uint32_t nk = 0;
  while (LOG_POS_SEG(wal_append_pos(e.w)) < 3)
    env_put(&e, nk++, 3000);
  for (uint32_t i = 0; i < nk; i++)
    if (LOG_POS_SEG(e.m->k[i].ref.pos) == 1)
      env_del(&e, i);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp = wal_append_pos(e.w), app = rp;
  uint32_t segs[4];
  size_t cnt;
  assert_int_equal(vlog_gc_pick(e.v, rp, 0, segs, 4, &cnt), JDB_OK);
  assert_int_equal(cnt, 1);
  assert_int_equal(segs[0], 1);
  struct vlog_gc_args a = {.replay_pos = rp, .max_segments = 5, .max_live_bytes = 0,
                           .live = cb_live, .moved = cb_moved, .ud = e.m};
  struct vlog_gc_result res;
  assert_int_equal(vlog_gc(e.v, &a, &res), JDB_OK);
  assert_int_equal(res.segments_dropped, 1);
  assert_int_equal(res.values_moved, 0);
  assert_true(res.values_checked > 0);
  assert_true(wal_append_pos(e.w) == app);
  assert_false(seg_exists(&e, 1));
  assert_true(seg_exists(&e, 2));
  env_verify(&e, e.m);
  env_fini(&e);
}

/* A segment made dead by writes that are not durable yet: GC must make them durable before it
   drops the segment, or a power loss brings the old versions back pointing into it. */
static void test_gc_dead_by_unsynced_writes(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-dead-unsynced", 0, 0);
  env_open(&e, 0, NULL);
  uint32_t nk = 0;
  while (LOG_POS_SEG(wal_append_pos(e.w)) < 3)
    env_put(&e, nk++, 3000);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp = wal_append_pos(e.w);
  for (uint32_t i = 0; i < nk; i++)
    if (LOG_POS_SEG(e.m->k[i].ref.pos) == 1)
      env_del(&e, i);
  assert_int_equal(wal_flush(e.w), JDB_OK);
  assert_true(wal_durable_pos(e.w) < wal_append_pos(e.w));   /* the deletes: not durable */
  struct vlog_gc_args a = {.replay_pos = rp, .max_segments = 1, .max_live_bytes = 0,
                           .live = cb_live, .moved = cb_moved, .ud = e.m};
  struct vlog_gc_result res;
  assert_int_equal(vlog_gc(e.v, &a, &res), JDB_OK);
  assert_int_equal(res.segments_dropped, 1);
  assert_false(seg_exists(&e, 1));
  assert_true(wal_durable_pos(e.w) >= wal_append_pos(e.w));  /* made durable before the drop */
  env_verify(&e, e.m);
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* GC under a simulated power loss at every I/O op of a GC run */

static void copy_dir(const char *from, const char *to)
{
  DIR *d = opendir(from);
  assert_non_null(d);
  struct dirent *de;
  uint8_t *buf = malloc(MIB);
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    char a[4096], b[4096];
    tutil_path(a, sizeof a, from, de->d_name);
    tutil_path(b, sizeof b, to, de->d_name);
    int fi = open(a, O_RDONLY), fo = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fi >= 0 && fo >= 0);
    ssize_t n;
    while ((n = read(fi, buf, MIB)) > 0)
      assert_int_equal(write(fo, buf, (size_t)n), n);
    close(fi);
    close(fo);
  }
  closedir(d);
  free(buf);
}

struct crash_plan {
  const char *tpl;
  uint64_t rp;
  const struct model *ckpt, *final;
  uint64_t seed;
};

/* One run over a copy of the template: recover, GC (crash at its at-th I/O op when at > 0),
   recover again, check that nothing was lost, GC again, check again. Returns the I/O ops the
   GC issued. */
static uint64_t crash_run(const struct crash_plan *p, uint64_t at, unsigned policy)
{
  struct env e;
  env_init(&e, "vlog-crash", 1, p->seed + at);
  copy_dir(p->tpl, e.dir);
  model_copy(e.m, p->ckpt);
  e.m->overwrite_id = -1;
  e.m->env = &e;
  env_open(&e, p->rp, e.m);
  model_assert_same(e.m, p->final, 1);
  env_account_all(&e);
  if (at) {
    struct fs_fault_rule rule = {.kind = FS_FAULT_CRASH, .targets = FS_FT_ALL, .at = at,
                                 .crash_policy = policy};
    assert_int_equal(fs_faulty_add_rule(e.ctx, &rule), JDB_OK);
  }
  uint64_t before = fs_faulty_count(e.ctx, FS_FT_ALL);
  struct vlog_gc_result res;
  int rc = env_gc(&e, p->rp, 2, &res);
  uint64_t ops = fs_faulty_count(e.ctx, FS_FT_ALL) - before;
  if (!at) {
    assert_int_equal(rc, JDB_OK);
    assert_int_equal(res.segments_dropped, 2);
    assert_true(res.values_moved > 0);
  } else if (rc == JDB_OK && ops >= at) {
    /* (ops < at: this run issued fewer I/Os than the dry run, e.g. the log's background segment
       preparation finished elsewhere, so the crash point lay past the GC: nothing to notice) */
    fail_msg("crash at op %llu of the GC went unnoticed", (unsigned long long)at);
  }
  env_close(&e);
  fs_faulty_clear_rules(e.ctx);
  fs_faulty_revive(e.ctx);

  /* Recovery: the checkpoint's model plus the replayed log. */
  struct model *m = e.m;
  model_copy(m, p->ckpt);
  m->overwrite_id = -1;
  m->env = &e;
  env_open(&e, p->rp, m);
  assert_int_equal(m->bad, 0);
  model_assert_same(m, p->final, 0);
  env_verify(&e, m);
  /* And GC finishes the job. */
  env_account_all(&e);
  assert_int_equal(env_gc(&e, p->rp, 100, &res), JDB_OK);
  size_t cnt;
  assert_int_equal(vlog_gc_pick(e.v, p->rp, UINT64_MAX, NULL, 0, &cnt), JDB_OK);
  assert_int_equal(cnt, 0);
  env_verify(&e, m);
  env_fini(&e);
  return ops;
}

static void test_gc_crash(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() + 4;
  struct env t;
  env_init(&t, "vlog-crash-tpl", 0, 0);
  env_open(&t, 0, NULL);
  struct tutil_rng r;
  tutil_rng_init(&r, seed);
  struct model *ckpt = calloc(1, sizeof *ckpt), *final = calloc(1, sizeof *final);
  env_workload(&t, &r, 1500, 2000);
  assert_int_equal(wal_sync(t.w), JDB_OK);
  uint64_t rp = wal_append_pos(t.w);
  model_copy(ckpt, t.m);
  env_workload(&t, &r, 40, 2000);
  assert_int_equal(wal_sync(t.w), JDB_OK);
  model_copy(final, t.m);
  assert_true(LOG_POS_SEG(rp) >= 4);
  env_close(&t);

  struct crash_plan p = {.tpl = t.dir, .rp = rp, .ckpt = ckpt, .final = final, .seed = seed};
  uint64_t nops = crash_run(&p, 0, 0);
  assert_true(nops >= 5);
  static const unsigned policies[] = {FS_CRASH_DROP, FS_CRASH_TEAR, FS_CRASH_RANDOM,
                                      FS_CRASH_KEEP};
  for (uint64_t at = 1; at <= nops; at++)
    for (unsigned pi = 0; pi < 4; pi++)
      crash_run(&p, at, policies[pi]);
  print_message("[ info ] gc crash sweep: %llu I/O ops per GC run, each crashed with 4 "
                "policies\n", (unsigned long long)nops);
  free(ckpt);
  free(final);
  env_fini(&t);
}

/* ------------------------------------------------------------------------------------------- */
/* Damaged segments */

static void file_flip(const char *path, uint64_t off)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
  close(fd);
}

static void test_damaged(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-dmg", 0, 0);
  env_open(&e, 0, NULL);
  uint32_t nk = 0;
  while (LOG_POS_SEG(wal_append_pos(e.w)) < 3)
    env_put(&e, nk++, 2000);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp = wal_append_pos(e.w);
  /* Keys in segment 1: [0, n1); in segment 2: [n1, n2). */
  uint32_t n1 = 0, n2 = 0;
  while (LOG_POS_SEG(e.m->k[n1].ref.pos) == 1)
    n1++;
  n2 = n1;
  while (LOG_POS_SEG(e.m->k[n2].ref.pos) == 2)
    n2++;
  assert_true(n1 > 100 && n2 - n1 > 100);
  uint32_t ka = n1 / 3, kb = n1 / 2, kc = n1 + (n2 - n1) / 2;
  struct wal_vref A = e.m->k[ka].ref, B = e.m->k[kb].ref, C = e.m->k[kc].ref;
  env_close(&e);

  char p1[4096], p2[4096];
  snprintf(p1, sizeof p1, "%s/%08u.log", e.dir, 1u);
  snprintf(p2, sizeof p2, "%s/%08u.log", e.dir, 2u);
  file_flip(p1, LOG_POS_OFF(A.pos) + 4 + 1000);   /* a value byte */
  file_flip(p1, LOG_POS_OFF(B.pos) + 1);          /* a checksum byte */
  assert_int_equal(truncate(p2, (off_t)(LOG_POS_OFF(C.pos) + 4 + C.len / 2)), 0);

  env_open(&e, rp, NULL);
  uint8_t *buf = malloc(2000);
  assert_int_equal(vlog_read(e.v, A, buf), JDB_ECORRUPT);
  assert_int_equal(vlog_read(e.v, B, buf), JDB_ECORRUPT);
  assert_int_equal(vlog_read(e.v, C, buf), JDB_ECORRUPT);
  assert_int_equal(vlog_read(e.v, e.m->k[kc + 1].ref, buf), JDB_ECORRUPT);  /* past the end */
  assert_int_equal(vlog_read(e.v, e.m->k[kc - 1].ref, buf), JDB_OK);
  assert_true(val_ok(buf, 2000, kc - 1, e.m->k[kc - 1].version));

  /* A batch: per-request results, the first failure returned. */
  uint32_t ids[6] = {0, ka, kb, kc, n1, ka + 1};
  int want[6] = {JDB_OK, JDB_ECORRUPT, JDB_ECORRUPT, JDB_ECORRUPT, JDB_OK, JDB_OK};
  struct vlog_req reqs[6];
  uint8_t *bufs = malloc(6 * 2000);
  for (int i = 0; i < 6; i++)
    reqs[i] = (struct vlog_req){.ref = e.m->k[ids[i]].ref, .dst = bufs + i * 2000};
  assert_int_equal(vlog_read_batch(e.v, reqs, 6), JDB_ECORRUPT);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(reqs[i].result, want[i]);
    if (want[i] == JDB_OK)
      assert_true(val_ok(bufs + i * 2000, 2000, ids[i], e.m->k[ids[i]].version));
  }

  /* A sequential scan through the read-ahead window finds exactly the damaged ones. */
  struct vlog_stats st0, st1;
  vlog_stats_get(e.v, &st0);
  uint32_t bad = 0;
  for (uint32_t i = 0; i < n2; i++) {
    int rc = vlog_read(e.v, e.m->k[i].ref, buf);
    if (rc) {
      assert_int_equal(rc, JDB_ECORRUPT);
      bad++;
      assert_true(i == ka || i == kb || i >= kc);
    } else {
      assert_true(val_ok(buf, 2000, i, e.m->k[i].version));
    }
  }
  assert_int_equal(bad, 2 + (n2 - kc));
  vlog_stats_get(e.v, &st1);
  assert_true(st1.ra_hits - st0.ra_hits > n2 / 2);
  assert_int_equal(st1.corrupt - st0.corrupt, bad);

  /* References outside the log. */
  uint64_t app = wal_append_pos(e.w);
  assert_int_equal(vlog_read(e.v, (struct wal_vref){app + 64, 100}, buf), JDB_ECORRUPT);
  assert_int_equal(vlog_read(e.v, (struct wal_vref){LOG_POS(LOG_POS_SEG(app) + 1, 64), 100},
                             buf), JDB_ECORRUPT);
  assert_int_equal(vlog_read(e.v, (struct wal_vref){LOG_POS(0, 64), 100}, buf), JDB_ECORRUPT);
  assert_int_equal(vlog_read(e.v, (struct wal_vref){LOG_POS(1, MIB - 10), 100}, buf),
                   JDB_ECORRUPT);
  /* Misaligned: lands in the middle of a value, so the checksum does not match. */
  assert_int_equal(vlog_read(e.v, (struct wal_vref){A.pos - 2000 - 64, 100}, buf), JDB_ECORRUPT);

  /* GC refuses to drop a damaged segment. */
  for (uint32_t i = 0; i < n2; i++)
    assert_int_equal(vlog_account_add(e.v, e.m->k[i].ref), JDB_OK);
  for (uint32_t i = 0; i < n1; i++)
    if (i % 3)
      assert_int_equal(vlog_account_dead(e.v, e.m->k[i].ref), JDB_OK);
  struct vlog_gc_result res;
  assert_int_equal(env_gc(&e, rp, 1, &res), JDB_ECORRUPT);   /* segment 1 is the least live */
  assert_int_equal(res.segments_dropped, 0);
  assert_true(seg_exists(&e, 1));
  assert_int_equal(vlog_gc_replay_cap(e.v), UINT64_MAX);
  for (uint32_t i = 0; i < n1; i++)
    if (i % 3 == 0)
      assert_int_equal(vlog_account_dead(e.v, e.m->k[i].ref), JDB_OK);
  for (uint32_t i = n1; i < n2; i++)
    assert_int_equal(vlog_account_dead(e.v, e.m->k[i].ref), JDB_OK);
  /* Segment 2 (truncated: no END record) is refused too. */
  uint32_t segs[4];
  size_t cnt;
  assert_int_equal(vlog_gc_pick(e.v, rp, UINT64_MAX, segs, 4, &cnt), JDB_OK);
  assert_int_equal(cnt, 2);
  assert_int_equal(segs[0], 1);
  struct vlog_gc_args a = {.replay_pos = LOG_POS(3, 0), .max_segments = 2,
                           .max_live_bytes = UINT64_MAX, .live = cb_live, .moved = cb_moved,
                           .ud = e.m};
  assert_int_equal(vlog_gc(e.v, &a, &res), JDB_ECORRUPT);
  assert_true(seg_exists(&e, 1) && seg_exists(&e, 2));

  /* A reference into a dropped segment. */
  assert_int_equal(vlog_read(e.v, e.m->k[0].ref, buf), JDB_OK);
  assert_int_equal(vlog_segment_drop(e.v, 1), JDB_OK);
  assert_int_equal(vlog_read(e.v, e.m->k[0].ref, buf), JDB_ECORRUPT);
  assert_int_equal(vlog_segment_drop(e.v, 1), JDB_NOTFOUND);
  free(bufs);
  free(buf);
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* MOVE record decoding of untrusted bytes */

struct move_cap {
  uint8_t *payload;
  uint32_t len;
  uint64_t pos;
};

static int capture_move(void *ud, const struct wal_rec *rec)
{
  struct move_cap *c = ud;
  if (rec->type == LOG_REC_MOVE && !c->payload) {
    c->payload = malloc(rec->len);
    memcpy(c->payload, rec->payload, rec->len);
    c->len = rec->len;
    c->pos = rec->pos;
  }
  return 0;
}

static int count_entry(void *ud, const struct vlog_move_entry *en)
{
  (void)en;
  (*(int *)ud)++;
  return 0;
}

static int stop_entry(void *ud, const struct vlog_move_entry *en)
{
  (void)en;
  (void)ud;
  return 42;
}

static void test_move_decode(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-move", 0, 0);
  env_open(&e, 0, NULL);
  uint32_t nk = 0;
  while (LOG_POS_SEG(wal_append_pos(e.w)) < 2)
    env_put(&e, nk++, 400);
  assert_int_equal(wal_sync(e.w), JDB_OK);
  uint64_t rp = wal_append_pos(e.w);
  struct vlog_gc_result res;
  e.vo.move_record_bytes = 8192;   /* several entries per record */
  vlog_close(e.v);
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &e.vo, &e.v), JDB_OK);
  assert_int_equal(env_gc(&e, rp, 1, &res), JDB_OK);
  uint32_t in1 = 0;
  for (uint32_t i = 0; i < nk; i++)
    in1 += LOG_POS_SEG(e.m->k[i].ref.pos) != 1 && i + 1 < nk;
  assert_int_equal(res.values_moved, nk - 1);
  assert_int_equal(in1, nk - 1);
  env_close(&e);
  struct move_cap c = {0};
  struct wal_opts o = {.segment_bytes = MIB};
  assert_int_equal(wal_open(e.ctx, e.dir, &o, &e.w), JDB_OK);
  assert_int_equal(wal_replay(e.w, rp, capture_move, &c, NULL), JDB_OK);
  wal_close(e.w);
  e.w = NULL;
  assert_non_null(c.payload);
  struct wal_rec rec = {.pos = c.pos, .type = LOG_REC_MOVE, .payload = c.payload, .len = c.len};
  int n = 0;
  assert_int_equal(vlog_move_decode(&rec, count_entry, &n), JDB_OK);
  assert_true(n > 1);
  assert_int_equal((uint32_t)n, le32_get(c.payload));
  assert_int_equal(vlog_move_decode(&rec, stop_entry, NULL), 42);

  /* Every truncation is corrupt; random damage is corrupt or (rarely) still valid, never a
     crash, and fn never runs on a corrupt record. */
  for (uint32_t cut = 0; cut < c.len; cut += 1 + cut / 16) {
    struct wal_rec t = rec;
    t.len = cut;
    n = 0;
    assert_int_equal(vlog_move_decode(&t, count_entry, &n), JDB_ECORRUPT);
    assert_int_equal(n, 0);
  }
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() + 5);
  uint8_t *dam = malloc(c.len);
  for (int it = 0; it < 2000; it++) {
    memcpy(dam, c.payload, c.len);
    int flips = 1 + (int)tutil_rng_below(&r, 3);
    for (int f = 0; f < flips; f++)
      dam[tutil_rng_below(&r, c.len)] ^= (uint8_t)(1u << tutil_rng_below(&r, 8));
    struct wal_rec t = rec;
    t.payload = dam;
    n = 0;
    int rc = vlog_move_decode(&t, count_entry, &n);
    assert_true(rc == JDB_OK || rc == JDB_ECORRUPT);
    if (rc)
      assert_int_equal(n, 0);
  }
  /* A MOVE record claiming to move a value from its own segment or a later one. */
  memcpy(dam, c.payload, c.len);
  le64_put(dam + 4 + 16, LOG_POS(LOG_POS_SEG(c.pos), 64));
  rec.payload = dam;
  assert_int_equal(vlog_move_decode(&rec, count_entry, &n), JDB_ECORRUPT);
  free(dam);
  free(c.payload);
  env_fini(&e);
}

/* ------------------------------------------------------------------------------------------- */
/* Bad arguments */

static int cb_never(void *ud, const struct vlog_move_entry *en)
{
  (void)ud;
  (void)en;
  return 0;
}

static void test_bad_args(void **state)
{
  (void)state;
  struct env e;
  env_init(&e, "vlog-args", 0, 0);
  env_open(&e, 0, NULL);
  env_put(&e, 1, 1000);
  struct wal_vref ref = e.m->k[1].ref;
  struct vlog *v = (struct vlog *)1;
  uint8_t buf[1000];

  assert_int_equal(vlog_open(NULL, e.w, e.dir, NULL, &v), JDB_EINVAL);
  assert_null(v);
  assert_int_equal(vlog_open(e.ctx, NULL, e.dir, NULL, &v), JDB_EINVAL);
  assert_int_equal(vlog_open(e.ctx, e.w, NULL, NULL, &v), JDB_EINVAL);
  assert_int_equal(vlog_open(e.ctx, e.w, "", NULL, &v), JDB_EINVAL);
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, NULL, NULL), JDB_EINVAL);
  struct vlog_opts bad = {.readahead_bytes = 100};
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &bad, &v), JDB_EINVAL);
  bad = (struct vlog_opts){.move_record_bytes = (64u << 20) + 1};
  assert_int_equal(vlog_open(e.ctx, e.w, e.dir, &bad, &v), JDB_EINVAL);
  vlog_close(NULL);

  assert_int_equal(vlog_read(NULL, ref, buf), JDB_EINVAL);
  assert_int_equal(vlog_read(e.v, ref, NULL), JDB_EINVAL);
  assert_int_equal(vlog_read(e.v, (struct wal_vref){ref.pos, 0}, buf), JDB_EINVAL);
  assert_int_equal(vlog_read(e.v, (struct wal_vref){ref.pos, WAL_VAL_MAX + 1}, buf), JDB_EINVAL);
  struct vlog_req rq[2] = {{.ref = ref, .dst = buf}, {.ref = ref, .dst = NULL}};
  assert_int_equal(vlog_read_batch(e.v, NULL, 1), JDB_EINVAL);
  assert_int_equal(vlog_read_batch(e.v, rq, 0), JDB_EINVAL);
  assert_int_equal(vlog_read_batch(e.v, rq, 2), JDB_EINVAL);
  assert_int_equal(rq[0].result, JDB_OK);
  assert_int_equal(rq[1].result, JDB_EINVAL);
  assert_true(val_ok(buf, 1000, 1, e.m->k[1].version));

  assert_int_equal(vlog_account_add(NULL, ref), JDB_EINVAL);
  assert_int_equal(vlog_account_add(e.v, (struct wal_vref){ref.pos, 0}), JDB_EINVAL);
  assert_int_equal(vlog_account_dead(e.v, (struct wal_vref){LOG_POS(0, 64), 10}), JDB_EINVAL);
  struct vlog_seg_info si;
  assert_int_equal(vlog_account_get(e.v, 1, NULL), JDB_EINVAL);
  assert_int_equal(vlog_account_get(NULL, 1, &si), JDB_EINVAL);

  size_t cnt = 9;
  uint32_t segs[2];
  assert_int_equal(vlog_gc_pick(NULL, 0, 0, segs, 2, &cnt), JDB_EINVAL);
  assert_int_equal(cnt, 0);
  assert_int_equal(vlog_gc_pick(e.v, 0, 0, segs, 2, NULL), JDB_EINVAL);
  assert_int_equal(vlog_gc_pick(e.v, 0, 0, NULL, 2, &cnt), JDB_EINVAL);
  assert_int_equal(vlog_gc_pick(e.v, wal_append_pos(e.w) + 8, 0, segs, 2, &cnt), JDB_EINVAL);
  struct vlog_gc_args a = {.replay_pos = 0, .live = cb_live, .moved = cb_moved, .ud = e.m};
  struct vlog_gc_result res;
  assert_int_equal(vlog_gc(NULL, &a, &res), JDB_EINVAL);
  assert_int_equal(vlog_gc(e.v, NULL, &res), JDB_EINVAL);
  a.live = NULL;
  assert_int_equal(vlog_gc(e.v, &a, &res), JDB_EINVAL);
  a.live = cb_live;
  a.moved = NULL;
  assert_int_equal(vlog_gc(e.v, &a, &res), JDB_EINVAL);
  a.moved = cb_moved;
  a.replay_pos = wal_append_pos(e.w) + 8;
  assert_int_equal(vlog_gc(e.v, &a, &res), JDB_EINVAL);
  a.replay_pos = wal_append_pos(e.w);
  assert_int_equal(vlog_gc(e.v, &a, NULL), JDB_OK);   /* nothing to collect */

  uint32_t cur = LOG_POS_SEG(wal_append_pos(e.w));
  assert_int_equal(vlog_segment_drop(NULL, 1), JDB_EINVAL);
  assert_int_equal(vlog_segment_drop(e.v, cur), JDB_EINVAL);
  assert_int_equal(vlog_segment_drop(e.v, cur + 1), JDB_EINVAL);
  assert_int_equal(vlog_segment_drop(e.v, 0), JDB_EINVAL);

  uint8_t payload[64] = {0};
  struct wal_rec rec = {.pos = LOG_POS(2, 64), .type = LOG_REC_BATCH, .payload = payload,
                        .len = 64};
  assert_int_equal(vlog_move_decode(&rec, cb_never, NULL), JDB_EINVAL);
  rec.type = LOG_REC_MOVE;
  assert_int_equal(vlog_move_decode(NULL, cb_never, NULL), JDB_EINVAL);
  assert_int_equal(vlog_move_decode(&rec, NULL, NULL), JDB_EINVAL);
  assert_int_equal(vlog_move_decode(&rec, cb_never, NULL), JDB_ECORRUPT);  /* n = 0 */
  env_fini(&e);
}

int main(void)
{
  tutil_init();
  tutil_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_back),
      cmocka_unit_test(test_readahead),
      cmocka_unit_test(test_fibers),
      cmocka_unit_test(test_accounting),
      cmocka_unit_test(test_gc_pick_least_live),
      cmocka_unit_test(test_gc_relocate),
      cmocka_unit_test(test_gc_all_dead),
    cmocka_unit_test(test_gc_dead_by_unsynced_writes),
      cmocka_unit_test(test_gc_crash),
      cmocka_unit_test(test_damaged),
      cmocka_unit_test(test_move_decode),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
