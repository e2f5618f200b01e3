/*
 * test_tablet_crash.c - recovery of the tablet (engine/tablet/tab.h) after a simulated power loss
 * at I/O operations spread over a whole workload, with the faulty backend (base/fs/fs.h).
 *
 * The workload (a plan, generated from the seed before anything runs): on tables "alpha" and
 * "beta", single puts and multi-op batches (1 .. 12 ops, now and then the same key twice: the
 * later op wins), deletes (of present and absent keys), values of 0 .. 1500 bytes (inline and out
 * of line, the 256-byte threshold hit exactly now and then), keys of 6 .. 1024 bytes, some
 * TAB_SYNC writes, tab_flush calls, explicit tab_checkpoint calls and automatic ones
 * (memtable_bytes 1 MiB), log segments of 1 MiB that roll and are released (or collected by log
 * GC, their live values moved) after checkpoints, and a third table "gamma" created a quarter of
 * the way in, written to, and dropped at 55% (its data is erased by the checkpoints after that).
 *
 * Four configurations (g_cfgs): "direct" (pages O_DIRECT on the build's file system), "tmpfs"
 * (the same in a /dev/shm directory: what survives a crash is decided by the faulty backend, not
 * the device, so there real fdatasyncs only cost time; most points run here), "spill" (64
 * page-cache frames, so checkpoints spill dirty pages early and reads evict; buffered pages) and
 * "fiber" (the plan runs in a fiber under fs_loop_run, so automatic checkpoints run in a fiber of
 * their own while the plan goes on writing).
 * For each, one fault-free run counts the I/O operations of the plan (open, workload, close) and
 * is checked like a crash point. Then, for crash points spread over that whole range (one at
 * random in each of equal strides) with each crash policy (DROP, TEAR, RANDOM, KEEP), plus every
 * sync and directory operation with the RANDOM policy: a fresh directory, the plan runs until the
 * crash (the first call that fails stops it), tab_close (may fail, must not crash or leak),
 * fs_faulty_revive, tab_open (must succeed), tab_check (tree, pages, persisted log accounting)
 * and the state is read in full (the catalog, every table by iterator both ways, tab_get of
 * every key).
 *
 * The check: the state equals the model after some prefix of the plan (batches whole: a prefix
 * ends between ops) that includes every op acknowledged as durable (a TAB_SYNC write, create or
 * drop that returned JDB_OK, every op before a tab_flush or tab_checkpoint that returned JDB_OK,
 * every op up to the one during which the memtable a completed checkpoint wrote was frozen,
 * everything after a clean close) and no
 * op that was never issued. The longest such prefix is taken; the seq the tablet recovered must
 * name a prefix that matches as well (every record applied once). Then: a second power loss
 * right after recovery (RANDOM policy: the recovery's own unsynced writes) and a second reopen
 * give exactly the same state (replay is idempotent); new writes, a checkpoint (the dropped
 * table's data is gone after it, and its id refuses writes), a clean close and a third reopen
 * give the model plus those writes.
 *
 * Crash points run in forked worker processes (T_JOBS=<n>, default CPUs + 1), each with its own
 * directories, results in shared memory; a worker that dies names the point it was running.
 * Under ASan each worker runs LeakSanitizer before it exits. Workers never call cmocka.
 *
 * The inner backend is psync (JDB_IO=uring selects io_uring): psync runs operations in queue
 * order, so a crash point repeats exactly. JDB_TEST_SEED=<n> repeats a run; JDB_TEST_SCALE=<x>
 * multiplies the number of crash points (default 1; a quarter of them under ASan); T_NO_TMPFS=1
 * keeps everything on the build's file system; T_FILTER=<glob> runs only the matching tests.
 * One crash point alone, as failures print it: T_CRASH_CFG=<0 direct|1 tmpfs|2 spill|3 fiber>
 * T_CRASH_AT=<op> T_CRASH_POLICY=<1 drop|2 keep|3 tear|4 random> T_CRASH_TARGETS=<mask>.
 * Failures are collected (the sweep goes on), grouped by kind, and the first of each kind
 * printed with what reproduces it. test_writer_fibers: two writer fibers across log rolls.
 */
#include "tutil.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"
#include "mem.h"
#include "tab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#include <sanitizer/lsan_interface.h>
#else
#define T_ASAN 0
#endif

#define MIB (1ull << 20)
#define NSLOT 3                 /* alpha, beta, gamma */
#define NKEYS 150u              /* keys per table (old log segments become all dead) */
#define VAL_MAX 1500u
#define BATCH_MAX 12u
#define NBATCHES 2200u          /* write batches in the plan */

static const char *const g_names[NSLOT] = {"alpha", "beta", "gamma"};
static double g_scale = 1.0;

/* ------------------------------------------------------------------------------------------- */
/* Keys and values */

static uint64_t mix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Key id -> 6 .. 1024 bytes: "k%05u" then bytes of every value (0x00 and 0xff included). */
static uint32_t key_len(uint32_t id)
{
  uint64_t h = mix(0x4b4559ull + id);
  uint32_t r = (uint32_t)(h % 10), x = (uint32_t)(h >> 16);
  return r < 2 ? 6 + x % 35 : r < 6 ? 41 + x % 360 : 401 + x % 624;
}

static uint32_t key_gen(uint8_t *buf, uint32_t id)
{
  char tmp[8];
  snprintf(tmp, sizeof tmp, "k%05u", id);
  memcpy(buf, tmp, 6);
  uint32_t n = key_len(id);
  uint64_t x = mix(id);
  for (uint32_t i = 6; i < n; i++) {
    if (i % 8 == 6)
      x = mix(x);
    buf[i] = (uint8_t)(x >> (8 * (i % 8)));
  }
  return n;
}

static uint8_t g_keys[NKEYS][TAB_KEY_MAX];
static uint32_t g_klen[NKEYS];

static void keys_init(void)
{
  for (uint32_t i = 0; i < NKEYS; i++)
    g_klen[i] = key_gen(g_keys[i], i);
}

static uint32_t key_make(uint8_t *buf, uint32_t id)
{
  memcpy(buf, g_keys[id], g_klen[id]);
  return g_klen[id];
}

/* The key id of a key this test wrote, or -1. */
static int key_parse(const uint8_t *k, size_t klen)
{
  if (klen < 6 || k[0] != 'k')
    return -1;
  uint32_t id = 0;
  for (int i = 1; i < 6; i++) {
    if (k[i] < '0' || k[i] > '9')
      return -1;
    id = id * 10 + (uint32_t)(k[i] - '0');
  }
  if (id >= NKEYS || klen != g_klen[id])
    return -1;
  return memcmp(g_keys[id], k, klen) == 0 ? (int)id : -1;
}

static void val_fill(uint8_t *b, uint32_t len, uint64_t tag)
{
  uint64_t x = mix(tag ^ 0x76616c7565ull) | 1;
  for (uint32_t i = 0; i < len; i++) {
    if (i % 8 == 0) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    b[i] = (uint8_t)(x >> (8 * (i % 8)));
  }
}

/* b equals val_fill(len, tag); stops at the first word that differs. */
static int val_same(const uint8_t *b, uint32_t len, uint64_t tag)
{
  uint64_t x = mix(tag ^ 0x76616c7565ull) | 1;
  for (uint32_t i = 0; i < len; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint8_t w[8];
    for (int j = 0; j < 8; j++)
      w[j] = (uint8_t)(x >> (8 * j));
    if (memcmp(w, b + i, len - i < 8 ? len - i : 8) != 0)
      return 0;
  }
  return 1;
}

/* ------------------------------------------------------------------------------------------- */
/* The plan */

enum { OP_CREATE = 1, OP_DROP, OP_WRITE, OP_FLUSH, OP_CKPT };

struct wop {
  uint16_t key;
  uint8_t del;
  uint32_t vlen;
  uint64_t vtag;
};

struct op {
  uint8_t type;
  uint8_t slot;
  unsigned flags;     /* TAB_SYNC for writes, creates and drops */
  uint32_t first, n;  /* OP_WRITE: wops[first .. first + n) */
};

struct plan {
  struct op *ops;
  size_t nops, cops;
  struct wop *w;
  size_t nw, cw;
};

static struct op *plan_op(struct plan *p, uint8_t type, uint8_t slot, unsigned flags)
{
  if (p->nops == p->cops) {
    p->cops = p->cops ? p->cops * 2 : 1024;
    p->ops = realloc(p->ops, p->cops * sizeof *p->ops);
    assert_non_null(p->ops);
  }
  struct op *o = &p->ops[p->nops++];
  *o = (struct op){.type = type, .slot = slot, .flags = flags};
  return o;
}

static struct wop *plan_wop(struct plan *p)
{
  if (p->nw == p->cw) {
    p->cw = p->cw ? p->cw * 2 : 4096;
    p->w = realloc(p->w, p->cw * sizeof *p->w);
    assert_non_null(p->w);
  }
  return &p->w[p->nw++];
}

static uint32_t gen_vlen(struct tutil_rng *r)
{
  static const uint32_t edges[] = {0, 1, 255, 256, 257, 258, 511, 512, 513, VAL_MAX};
  if (tutil_rng_below(r, 10) == 0)
    return edges[tutil_rng_below(r, sizeof edges / sizeof edges[0])];
  return (uint32_t)tutil_rng_below(r, VAL_MAX + 1);
}

static void plan_make(struct plan *p, uint64_t seed, uint32_t nbatches)
{
  memset(p, 0, sizeof *p);
  struct tutil_rng r;
  tutil_rng_init(&r, seed);
  uint64_t tag = 0;
  int live[NSLOT] = {0};
  plan_op(p, OP_CREATE, 0, tutil_rng_below(&r, 2) ? TAB_SYNC : 0);
  live[0] = 1;
  plan_op(p, OP_CREATE, 1, 0);
  live[1] = 1;
  for (uint32_t b = 0; b < nbatches; b++) {
    if (b == nbatches / 4) {
      plan_op(p, OP_CREATE, 2, 0);
      live[2] = 1;
    }
    if (b == nbatches * 55 / 100) {
      plan_op(p, OP_DROP, 2, tutil_rng_below(&r, 2) ? TAB_SYNC : 0);
      live[2] = 0;
    }
    if (b == nbatches * 8 / 100 || b == nbatches * 90 / 100)
      plan_op(p, OP_CKPT, 0, 0);
    if (tutil_rng_below(&r, 1000) < 5)
      plan_op(p, OP_FLUSH, 0, 0);
    uint8_t slot;
    do
      slot = (uint8_t)tutil_rng_below(&r, NSLOT);
    while (!live[slot]);
    struct op *o = plan_op(p, OP_WRITE, slot, tutil_rng_below(&r, 100) < 1 ? TAB_SYNC : 0);
    o->first = (uint32_t)p->nw;
    o->n = tutil_rng_below(&r, 100) < 60 ? 1 : 2 + (uint32_t)tutil_rng_below(&r, BATCH_MAX - 1);
    for (uint32_t i = 0; i < o->n; i++) {
      struct wop *w = plan_wop(p);
      if (i && tutil_rng_below(&r, 8) == 0)
        w->key = p->w[p->nw - 2].key;   /* the same key again: the later op wins */
      else
        w->key = (uint16_t)tutil_rng_below(&r, NKEYS);
      w->del = tutil_rng_below(&r, 100) < 15;
      w->vlen = w->del ? 0 : gen_vlen(&r);
      w->vtag = ++tag;
    }
  }
}

static void plan_free(struct plan *p)
{
  free(p->ops);
  free(p->w);
}

/* ------------------------------------------------------------------------------------------- */
/* The model: what the tablet holds after a prefix of the plan */

struct kst {
  uint64_t vtag;
  uint32_t vlen;
  uint8_t live;
};

struct model {
  uint8_t exists[NSLOT];
  uint8_t dropped[NSLOT];     /* created and dropped again: the id's data must be erased */
  uint64_t id[NSLOT];
  struct kst k[NSLOT][NKEYS];
};

/* What was read back from a tablet. */
struct rstate {
  uint8_t exists[NSLOT];
  uint64_t id[NSLOT];
  uint8_t live[NSLOT][NKEYS];
  uint32_t vlen[NSLOT][NKEYS];
  uint8_t *val[NSLOT][NKEYS];
  uint64_t seq;
  int open_ckpt;      /* tab_open ran a checkpoint: it may have logged a DROPQ delete (1 seq) */
};

static void rstate_clear(struct rstate *r)
{
  for (int s = 0; s < NSLOT; s++)
    for (uint32_t i = 0; i < NKEYS; i++)
      free(r->val[s][i]);
  memset(r, 0, sizeof *r);
}

static int key_same(const struct model *m, const struct rstate *r, int s, uint32_t id)
{
  const struct kst *k = &m->k[s][id];
  int rl = r->exists[s] && r->live[s][id];
  if (!k->live || !m->exists[s])
    return !rl;
  return rl && r->vlen[s][id] == k->vlen && val_same(r->val[s][id], k->vlen, k->vtag);
}

static int cat_same(const struct model *m, const struct rstate *r, int s)
{
  return m->exists[s] == r->exists[s] && (!m->exists[s] || m->id[s] == r->id[s]);
}

/* Apply op to m; with r, keep *diff (keys and catalog entries that differ from r) current. */
static void model_apply(struct model *m, const struct plan *p, const struct op *o,
                        const struct rstate *r, long *diff)
{
  int s = o->slot;
  switch (o->type) {
  case OP_CREATE:
  case OP_DROP: {
    long before = r ? !cat_same(m, r, s) : 0;
    for (uint32_t i = 0; r && i < NKEYS; i++)
      before += !key_same(m, r, s, i);
    if (o->type == OP_CREATE) {
      m->exists[s] = 1;
      m->id[s] = TAB_ID_FIRST + (uint64_t)s;
    } else {
      m->exists[s] = 0;
      m->dropped[s] = 1;
      memset(m->k[s], 0, sizeof m->k[s]);
    }
    long after = r ? !cat_same(m, r, s) : 0;
    for (uint32_t i = 0; r && i < NKEYS; i++)
      after += !key_same(m, r, s, i);
    if (r)
      *diff += after - before;
    break;
  }
  case OP_WRITE:
    for (uint32_t j = 0; j < o->n; j++) {
      const struct wop *w = &p->w[o->first + j];
      long before = r ? !key_same(m, r, s, w->key) : 0;
      m->k[s][w->key] = w->del ? (struct kst){0}
                               : (struct kst){.vtag = w->vtag, .vlen = w->vlen, .live = 1};
      if (r)
        *diff += (long)!key_same(m, r, s, w->key) - before;
    }
    break;
  default:
    break;
  }
}

static void model_at(struct model *m, const struct plan *p, size_t prefix)
{
  memset(m, 0, sizeof *m);
  for (size_t i = 0; i < prefix; i++)
    model_apply(m, p, &p->ops[i], NULL, NULL);
}

/* Describe up to a few differences between m and r into buf. Returns how many there are. */
static long model_diff(const struct model *m, const struct rstate *r, char *buf, size_t cap)
{
  long n = 0;
  size_t used = 0;
  buf[0] = 0;
  for (int s = 0; s < NSLOT; s++) {
    if (!cat_same(m, r, s)) {
      if (n++ < 4 && used < cap)
        used += (size_t)snprintf(buf + used, cap - used, " [table %s: model %s id %llu, read %s "
                                 "id %llu]", g_names[s], m->exists[s] ? "exists" : "absent",
                                 (unsigned long long)m->id[s], r->exists[s] ? "exists" : "absent",
                                 (unsigned long long)r->id[s]);
    }
    for (uint32_t i = 0; i < NKEYS; i++) {
      if (key_same(m, r, s, i))
        continue;
      if (n++ < 4 && used < cap) {
        const struct kst *k = &m->k[s][i];
        int ml = m->exists[s] && k->live, rl = r->exists[s] && r->live[s][i];
        used += (size_t)snprintf(buf + used, cap - used, " [%s key %u: model %s tag %llu len %u,"
                                 " read %s len %u]", g_names[s], i, ml ? "live" : "absent",
                                 (unsigned long long)k->vtag, k->vlen, rl ? "live" : "absent",
                                 rl ? r->vlen[s][i] : 0);
      }
    }
  }
  return n;
}

/* ------------------------------------------------------------------------------------------- */
/* Errors: checks write a message and return -1 (the sweep goes on) */

struct err {
  char msg[1024];
};

static int errf(struct err *e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* Reading a tablet's whole state */

struct list_ud {
  struct rstate *r;
  int bad;
  char name[64];
};

static int list_cb(void *ud, const void *name, size_t nlen, uint64_t id)
{
  struct list_ud *l = ud;
  for (int s = 0; s < NSLOT; s++) {
    if (strlen(g_names[s]) == nlen && memcmp(g_names[s], name, nlen) == 0) {
      if (l->r->exists[s])
        l->bad = 1;
      l->r->exists[s] = 1;
      l->r->id[s] = id;
      return 0;
    }
  }
  l->bad = 1;
  snprintf(l->name, sizeof l->name, "%.*s", (int)(nlen < 40 ? nlen : 40), (const char *)name);
  return 0;
}

static int read_table(struct tab *t, struct rstate *r, int s, struct err *e)
{
  uint64_t id = r->id[s];
  struct tab_iter *it = NULL;
  int rc = tab_iter_open(t, NULL, id, &it);
  if (rc)
    return errf(e, "tab_iter_open(%s): %d", g_names[s], rc);
  int prev = -1, count = 0, res = 0;
  for (rc = tab_iter_first(it); rc == JDB_OK; rc = tab_iter_next(it)) {
    const void *k, *v;
    size_t kl, vl;
    if ((rc = tab_iter_key(it, &k, &kl)) != JDB_OK)
      break;
    int kid = key_parse(k, kl);
    if (kid < 0 || kid <= prev) {
      res = errf(e, "%s: iterator key %d (length %zu) after key %d", g_names[s], kid, kl, prev);
      break;
    }
    if ((rc = tab_iter_value(it, &v, &vl)) != JDB_OK)
      break;
    if (vl > VAL_MAX) {
      res = errf(e, "%s key %d: value of %zu bytes", g_names[s], kid, vl);
      break;
    }
    r->live[s][kid] = 1;
    r->vlen[s][kid] = (uint32_t)vl;
    r->val[s][kid] = malloc(vl ? vl : 1);
    assert_non_null(r->val[s][kid]);
    if (vl)
      memcpy(r->val[s][kid], v, vl);
    prev = kid;
    count++;
  }
  if (res == 0 && rc != JDB_NOTFOUND)
    res = errf(e, "%s: forward iteration failed with %d", g_names[s], rc);
  /* Backwards: the same entries in reverse. */
  int next = NKEYS, back = 0;
  for (rc = res ? JDB_NOTFOUND : tab_iter_last(it); rc == JDB_OK; rc = tab_iter_prev(it)) {
    const void *k, *v;
    size_t kl, vl;
    if ((rc = tab_iter_key(it, &k, &kl)) != JDB_OK || (rc = tab_iter_value(it, &v, &vl)) != JDB_OK)
      break;
    int kid = key_parse(k, kl);
    if (kid < 0 || kid >= next || !r->live[s][kid] || r->vlen[s][kid] != vl ||
        (vl && memcmp(r->val[s][kid], v, vl) != 0)) {
      res = errf(e, "%s: backward iteration shows key %d (length %zu, value %zu bytes) that "
                 "the forward one did not", g_names[s], kid, kl, vl);
      break;
    }
    next = kid;
    back++;
  }
  if (res == 0 && rc != JDB_NOTFOUND)
    res = errf(e, "%s: backward iteration failed with %d", g_names[s], rc);
  if (res == 0 && back != count)
    res = errf(e, "%s: %d keys forwards, %d backwards", g_names[s], count, back);
  tab_iter_close(it);
  if (res)
    return res;
  /* Point reads agree with the iterator. */
  uint8_t key[TAB_KEY_MAX];
  for (uint32_t i = 0; i < NKEYS; i++) {
    uint32_t kl = key_make(key, i);
    void *v = NULL;
    size_t vl = 0;
    rc = tab_get(t, NULL, id, key, kl, &v, &vl);
    int bad = r->live[s][i] ? rc != JDB_OK || vl != r->vlen[s][i] ||
                                  (vl && memcmp(v, r->val[s][i], vl) != 0)
                            : rc != JDB_NOTFOUND;
    mem_free(v);
    if (bad)
      return errf(e, "%s key %u: tab_get %d (%zu bytes), the iterator %s", g_names[s], i, rc, vl,
                  r->live[s][i] ? "has it" : "does not");
  }
  return 0;
}

static int read_state(struct tab *t, struct rstate *r, struct err *e)
{
  rstate_clear(r);
  /* the tree, the pages and the persisted log accounting against a walk of the tree */
  int rc = tab_check(t);
  if (rc)
    return errf(e, "tab_check: %d (%s)", rc, jdb_strerror(rc));
  struct list_ud l = {.r = r};
  rc = tab_table_list(t, NULL, 0, list_cb, &l);
  if (rc)
    return errf(e, "tab_table_list: %d", rc);
  if (l.bad)
    return errf(e, "tab_table_list: unexpected or repeated table '%s'", l.name);
  for (int s = 0; s < NSLOT; s++) {
    uint64_t id = 0;
    rc = tab_table_find(t, g_names[s], strlen(g_names[s]), &id);
    if (r->exists[s] ? rc != JDB_OK || id != r->id[s] : rc != JDB_NOTFOUND)
      return errf(e, "tab_table_find(%s): %d id %llu, the list says %s id %llu", g_names[s], rc,
                  (unsigned long long)id, r->exists[s] ? "present" : "absent",
                  (unsigned long long)r->id[s]);
    if (r->exists[s] && read_table(t, r, s, e))
      return -1;
  }
  struct tab_stats st;
  tab_stats_get(t, &st);
  r->seq = st.seq;
  r->open_ckpt = st.checkpoints > 0;
  return 0;
}

/* The same state. The seqs are equal too, but for the DROPQ delete a checkpoint in either
   tab_open may have logged (TAB_NOWAIT: the crash after the first recovery may lose it, or the
   second open logs it again). */
static int rstate_equal(const struct rstate *a, const struct rstate *b, struct err *e)
{
  uint64_t slack = a->open_ckpt || b->open_ckpt;
  if (a->seq > b->seq + slack || b->seq > a->seq + slack)
    return errf(e, "seq %llu, before %llu", (unsigned long long)b->seq,
                (unsigned long long)a->seq);
  for (int s = 0; s < NSLOT; s++) {
    if (a->exists[s] != b->exists[s] || a->id[s] != b->id[s])
      return errf(e, "table %s: %s id %llu, before %s id %llu", g_names[s],
                  b->exists[s] ? "present" : "absent", (unsigned long long)b->id[s],
                  a->exists[s] ? "present" : "absent", (unsigned long long)a->id[s]);
    for (uint32_t i = 0; i < NKEYS; i++)
      if (a->live[s][i] != b->live[s][i] || a->vlen[s][i] != b->vlen[s][i] ||
          (a->live[s][i] && a->vlen[s][i] && memcmp(a->val[s][i], b->val[s][i], a->vlen[s][i])))
        return errf(e, "%s key %u: %s (%u bytes), before %s (%u bytes)", g_names[s], i,
                    b->live[s][i] ? "live" : "absent", b->vlen[s][i],
                    a->live[s][i] ? "live" : "absent", a->vlen[s][i]);
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Running the plan */

struct runres {
  size_t issued;        /* ops started (a failing one included) */
  size_t durable;       /* ops that must survive (a prefix length) */
  int fail_rc;          /* the first failure, JDB_OK if none */
  size_t fail_op;
  uint64_t *op_seq;     /* the seq each logging op's batch got (0: no batch of its own) */
  uint64_t bg_freezes;  /* ops that returned with a frozen memtable (its checkpoint running) */
  uint64_t ckpts;       /* checkpoints completed */
  uint64_t released, erased;   /* log segments released, dropped tables' entries erased */
  uint64_t gc_segs, gc_moved;  /* log GC: segments collected, values moved */
};

static const char *op_desc(const struct plan *p, size_t i, char *buf, size_t cap)
{
  const struct op *o = &p->ops[i];
  const char *sync = (o->flags & TAB_SYNC) ? ", TAB_SYNC" : "";
  switch (o->type) {
  case OP_CREATE: snprintf(buf, cap, "create %s%s", g_names[o->slot], sync); break;
  case OP_DROP: snprintf(buf, cap, "drop %s%s", g_names[o->slot], sync); break;
  case OP_FLUSH: snprintf(buf, cap, "tab_flush"); break;
  case OP_CKPT: snprintf(buf, cap, "tab_checkpoint"); break;
  default:
    snprintf(buf, cap, "write of %u op(s) to %s%s", o->n, g_names[o->slot], sync);
    break;
  }
  return buf;
}

static int op_run(struct tab *t, const struct plan *p, const struct op *o)
{
  const char *nm = g_names[o->slot];
  switch (o->type) {
  case OP_CREATE: {
    uint64_t id = 0;
    /* the model expects ids from the counter: alpha 16, beta 17, gamma 18 (a catalog check
       compares them) */
    return tab_table_create(t, nm, strlen(nm), o->flags, &id);
  }
  case OP_DROP:
    return tab_table_drop(t, nm, strlen(nm), o->flags);
  case OP_FLUSH:
    return tab_flush(t);
  case OP_CKPT:
    return tab_checkpoint(t);
  default:
    break;
  }
  struct tab_op ops[BATCH_MAX];
  uint8_t keys[BATCH_MAX][TAB_KEY_MAX];
  uint8_t vals[BATCH_MAX][VAL_MAX];
  for (uint32_t j = 0; j < o->n; j++) {
    const struct wop *w = &p->w[o->first + j];
    ops[j] = (struct tab_op){.kind = w->del ? TAB_DEL : TAB_PUT, .key = keys[j],
                             .klen = key_make(keys[j], w->key)};
    if (!w->del) {
      val_fill(vals[j], w->vlen, w->vtag);
      ops[j].val = vals[j];
      ops[j].vlen = w->vlen;
    }
  }
  return tab_write(t, TAB_ID_FIRST + o->slot, ops, o->n, o->flags, NULL);
}

/* Runs the plan until the first failure. Durability: a checkpoint covers the ops up to the one
   during which its memtable was frozen. Inline (outside fibers) the freeze and the checkpoint
   happen in the same op; in a fiber an automatic checkpoint runs in its own fiber while the plan
   goes on, so freezes are noted (the frozen memtable appears) and matched, oldest first, with
   the checkpoints that complete later. */
static void plan_run(struct tab *t, const struct plan *p, struct runres *rr)
{
  size_t freezes[8], nfreeze = 0;
  rr->issued = rr->durable = 0;
  rr->fail_rc = JDB_OK;
  for (size_t i = 0; i < p->nops; i++) {
    const struct op *o = &p->ops[i];
    struct tab_stats before, after;
    tab_stats_get(t, &before);
    int logs = o->type == OP_CREATE || o->type == OP_DROP || o->type == OP_WRITE;
    rr->op_seq[i] = logs ? before.seq + 1 : 0;
    rr->issued = i + 1;
    int rc = op_run(t, p, o);
    tab_stats_get(t, &after);
    rr->ckpts = after.checkpoints;
    rr->released = after.segments_released;
    rr->erased = after.drop_entries_erased;
    rr->gc_segs = after.gc_segments;
    rr->gc_moved = after.gc_values_moved;
    for (uint64_t k = before.checkpoints; k < after.checkpoints; k++) {
      size_t upto = i + 1;            /* frozen during this op */
      if (nfreeze) {
        upto = freezes[0] + 1;
        memmove(freezes, freezes + 1, --nfreeze * sizeof *freezes);
      }
      if (upto > rr->durable)
        rr->durable = upto;
    }
    if (after.frozen_bytes && (!before.frozen_bytes || after.checkpoints > before.checkpoints) &&
        nfreeze < sizeof freezes / sizeof freezes[0]) {
      freezes[nfreeze++] = i;
      rr->bg_freezes++;
    }
    if (rc != JDB_OK) {
      rr->fail_rc = rc;
      rr->fail_op = i;
      return;
    }
    if (o->type == OP_FLUSH || o->type == OP_CKPT || (o->flags & TAB_SYNC)) {
      rr->durable = i + 1;
      if (o->type == OP_CKPT)
        nfreeze = 0;
    }
  }
}

struct plan_fiber {
  struct tab *t;
  const struct plan *p;
  struct runres *rr;
};

static void plan_fiber_main(void *arg)
{
  struct plan_fiber *f = arg;
  plan_run(f->t, f->p, f->rr);
}

/* ------------------------------------------------------------------------------------------- */
/* Configurations, crash points and their results */

struct cfg {
  const char *name;
  struct tab_opts o;
  int tmpfs;                /* run in a tmpfs directory when there is one */
  int fiber;                /* run the plan in a fiber: automatic checkpoints in their own */
  unsigned per_policy;      /* crash points per policy over all I/O ops (scale 1, plain) */
  unsigned sync_step;       /* every sync_step-th sync or directory op (scale 1, plain) */
  uint64_t nall, nsync;     /* I/O ops of a fault-free run: all, syncs + directory ops */
};

/* direct: the build's file system, pages O_DIRECT, enough frames for the whole tree.
   tmpfs: the same options in a tmpfs directory (most points: what survives is decided by the
   faulty backend, not the device, so real fdatasyncs there only cost time; O_DIRECT falls back
   to buffered I/O). spill: 64 frames (checkpoints spill dirty pages early, reads evict), pages
   buffered, tmpfs. fiber: as tmpfs, the plan in a fiber under fs_loop_run, so automatic
   checkpoints run in a fiber of their own while the plan goes on writing. */
#define NCFG 4
static struct cfg g_cfgs[NCFG] = {
  {.name = "direct", .o = {.memtable_bytes = MIB, .segment_bytes = MIB, .cache_frames = 1024},
   .per_policy = 40, .sync_step = 4},
  {.name = "tmpfs", .o = {.memtable_bytes = MIB, .segment_bytes = MIB, .cache_frames = 1024},
   .tmpfs = 1, .per_policy = 250, .sync_step = 1},
  {.name = "spill", .o = {.memtable_bytes = MIB, .segment_bytes = MIB, .cache_frames = 64,
                          .pages_buffered = 1}, .tmpfs = 1, .per_policy = 100, .sync_step = 2},
  {.name = "fiber", .o = {.memtable_bytes = MIB, .segment_bytes = MIB, .cache_frames = 1024},
   .tmpfs = 1, .fiber = 1, .per_policy = 100, .sync_step = 2},
};

struct pt {
  uint64_t at;              /* 0: fault-free */
  uint32_t policy, targets;
  uint32_t cfg;
};

/* One point's outcome; in memory shared with the worker processes. */
struct pres {
  int state;                /* 0 not started, 1 started, 2 done */
  int failed;
  uint8_t fired, opened_first, close_failed, more;
  uint32_t lost;            /* issued ops not recovered */
  uint32_t reopens;
  uint32_t ckpts, bg_freezes, released, erased, gc_segs, gc_moved;   /* of the run (runres) */
  uint32_t moves_replayed;      /* by the first recovery */
  char msg[1200];
};

struct worker {
  const char *base, *shm;   /* directories for the configurations (shm: tmpfs or NULL) */
  char dir[4096];
  uint64_t seed;
  const struct plan *p;
  uint64_t *op_seq;
  struct rstate r1, r2;
};

static struct fs_ctx *ctx_new(uint64_t seed)
{
  const char *io = getenv("JDB_IO");
  struct fs_ctx_opts o = {.backend = io && strcmp(io, "uring") == 0 ? FS_BACKEND_URING
                                                                    : FS_BACKEND_PSYNC};
  struct fs_ctx *inner = NULL, *f = NULL;
  if (fs_ctx_create(&o, &inner) != JDB_OK || fs_faulty_create(inner, seed, &f) != JDB_OK)
    return NULL;
  return f;
}

static const char *policy_name(unsigned p)
{
  return p == FS_CRASH_DROP ? "drop" : p == FS_CRASH_KEEP ? "keep" : p == FS_CRASH_TEAR ? "tear"
                                                                                         : "random";
}

/* New writes after recovery: SYNC puts and a delete on each table of m (creating alpha when no
   table exists), applied to m as well; a checkpoint. Problems with dropped tables go to late
   (checked after everything else). */
static int after_writes(struct tab *t, struct model *m, struct err *e, struct err *late)
{
  if (!m->exists[0] && !m->exists[1] && !m->exists[2]) {
    uint64_t id = 0;
    int rc = tab_table_create(t, "alpha", 5, TAB_SYNC, &id);
    if (rc != JDB_OK)
      return errf(e, "after recovery: tab_table_create(alpha): %d", rc);
    m->exists[0] = 1;
    m->id[0] = id;
  }
  uint64_t tag = 1ull << 40;
  for (int s = 0; s < NSLOT; s++) {
    if (!m->exists[s])
      continue;
    struct tab_op ops[8];
    uint8_t keys[8][TAB_KEY_MAX];
    uint8_t vals[8][VAL_MAX];
    for (uint32_t j = 0; j < 8; j++) {
      uint32_t id = (j * 53 + (uint32_t)s * 7) % NKEYS;
      ops[j] = (struct tab_op){.kind = j == 7 ? TAB_DEL : TAB_PUT, .key = keys[j],
                               .klen = key_make(keys[j], id)};
      struct kst *k = &m->k[s][id];
      if (j == 7) {
        *k = (struct kst){0};
        continue;
      }
      uint32_t vl = (uint32_t)(mix(tag) % (VAL_MAX + 1));
      val_fill(vals[j], vl, ++tag);
      ops[j].val = vals[j];
      ops[j].vlen = vl;
      *k = (struct kst){.vtag = tag, .vlen = vl, .live = 1};
    }
    int rc = tab_write(t, m->id[s], ops, 8, TAB_SYNC, NULL);
    if (rc != JDB_OK)
      return errf(e, "after recovery: tab_write(%s): %d", g_names[s], rc);
  }
  int rc = tab_checkpoint(t);
  if (rc != JDB_OK)
    return errf(e, "after recovery: tab_checkpoint: %d", rc);
  /* A dropped table's data is gone once a checkpoint ran after the drop; its id takes no
     writes. */
  for (int s = 0; s < NSLOT; s++) {
    if (!m->dropped[s] || m->exists[s] || late->msg[0])
      continue;
    struct tab_iter *it = NULL;
    rc = tab_iter_open(t, NULL, TAB_ID_FIRST + (uint64_t)s, &it);
    if (rc == JDB_OK)
      rc = tab_iter_first(it);
    tab_iter_close(it);
    if (rc != JDB_NOTFOUND) {
      errf(late, "after recovery and a checkpoint: dropped table %s (id %d) still shows data "
           "(%d)", g_names[s], TAB_ID_FIRST + s, rc);
      continue;
    }
    uint8_t key[TAB_KEY_MAX];
    struct tab_op op = {.kind = TAB_PUT, .key = key, .klen = key_make(key, 1)};
    rc = tab_write(t, TAB_ID_FIRST + (uint64_t)s, &op, 1, 0, NULL);
    if (rc != JDB_EINVAL)
      errf(late, "after recovery: a write to the id of dropped table %s (%d) gave %d, not "
           "JDB_EINVAL", g_names[s], TAB_ID_FIRST + s, rc);
    if (rc == JDB_OK) {
      /* keep the model true to the tablet: the key now lives under that id (unlisted) */
      rc = tab_checkpoint(t);
      if (rc != JDB_OK)
        return errf(e, "after recovery: tab_checkpoint: %d", rc);
    }
  }
  return 0;
}

static int reopen(struct worker *wk, struct fs_ctx *ctx, const struct cfg *c, int create,
                  struct tab **t, struct pres *pr, struct err *e)
{
  struct tab_opts o = c->o;
  o.create_if_missing = create;
  int rc = tab_open(ctx, wk->dir, &o, t);
  pr->reopens++;
  if (rc != JDB_OK)
    return errf(e, "tab_open after the crash: %d (%s)", rc, jdb_strerror(rc));
  return 0;
}

/* Run the plan with a crash at pt (pt->at 0: none; then *nall / *nsync get the I/O op counts),
   recover and check. The outcome goes to pr. Never calls cmocka (runs in worker processes). */
static void crash_point(struct worker *wk, const struct pt *pt, struct pres *pr, uint64_t *nall,
                        uint64_t *nsync)
{
  const struct cfg *c = &g_cfgs[pt->cfg];
  struct err e = {{0}}, late = {{0}};
  int res = 0;
  snprintf(wk->dir, sizeof wk->dir, "%s/db", c->tmpfs && wk->shm ? wk->shm : wk->base);
  tutil_rmrf(wk->dir);
  uint64_t fseed = wk->seed ^ mix(pt->at * 16 + pt->policy + (uint64_t)pt->targets * 977 +
                                  ((uint64_t)pt->cfg << 40));
  struct fs_ctx *ctx = ctx_new(fseed);
  if (!ctx) {
    pr->failed = 1;
    snprintf(pr->msg, sizeof pr->msg, "cannot create the I/O context");
    return;
  }
  if (pt->at) {
    struct fs_fault_rule rule = {.kind = FS_FAULT_CRASH, .targets = pt->targets, .at = pt->at,
                                 .crash_policy = pt->policy};
    fs_faulty_add_rule(ctx, &rule);
  }
  struct runres rr = {.op_seq = wk->op_seq};
  struct tab_opts o = c->o;
  o.create_if_missing = 1;
  struct tab *t = NULL;
  int rc = tab_open(ctx, wk->dir, &o, &t);
  pr->opened_first = rc == JDB_OK;
  if (pr->opened_first) {
    if (c->fiber) {
      struct coro_sched *sched = NULL;
      struct coro_sched_opts so = {.stack_bytes = 512u << 10};
      struct plan_fiber pf = {.t = t, .p = wk->p, .rr = &rr};
      if (coro_sched_create(&so, &sched) != JDB_OK ||
          coro_spawn(sched, plan_fiber_main, &pf, NULL) != JDB_OK)
        abort();
      rc = fs_loop_run(ctx, sched);
      if (rc != JDB_OK) {
        /* fibers are stuck: nothing can be closed safely */
        pr->failed = 1;
        snprintf(pr->msg, sizeof pr->msg, "fs_loop_run: %d with %zu fibers alive (op %zu "
                 "issued last)", rc, coro_sched_live(sched), rr.issued);
        return;
      }
      coro_sched_destroy(sched);
    } else {
      plan_run(t, wk->p, &rr);
    }
    pr->ckpts = (uint32_t)rr.ckpts;
    pr->bg_freezes = (uint32_t)rr.bg_freezes;
    pr->released = (uint32_t)rr.released;
    pr->erased = (uint32_t)rr.erased;
    pr->gc_segs = (uint32_t)rr.gc_segs;
    pr->gc_moved = (uint32_t)rr.gc_moved;
    rc = tab_close(t);
    t = NULL;
    pr->close_failed = rc != JDB_OK;
    if (rc == JDB_OK && rr.fail_rc == JDB_OK)
      rr.durable = rr.issued;   /* a clean close checkpoints everything */
  }
  if (nall) {
    *nall = fs_faulty_count(ctx, FS_FT_ALL);
    *nsync = fs_faulty_count(ctx, FS_FT_SYNC | FS_FT_DIROP);
  }
  pr->fired = pt->at && fs_faulty_count(ctx, pt->targets ? pt->targets : FS_FT_ALL) >= pt->at;
  if (!pr->fired && (!pr->opened_first || rr.fail_rc || pr->close_failed))
    res = errf(&e, "no crash, yet: open %s, op %zu failed with %d, close %s",
               pr->opened_first ? "ok" : "failed", rr.fail_op, rr.fail_rc,
               pr->close_failed ? "failed" : "ok");
  fs_faulty_clear_rules(ctx);
  fs_faulty_revive(ctx);

  struct model *m = calloc(1, sizeof *m);
  if (!m)
    abort();
  if (res == 0)
    res = reopen(wk, ctx, c, !pr->opened_first, &t, pr, &e);
  if (res == 0) {
    struct tab_stats st;
    tab_stats_get(t, &st);
    pr->moves_replayed = (uint32_t)st.moves_replayed;
    res = read_state(t, &wk->r1, &e);
  }
  size_t best = 0;
  if (res == 0) {
    /* The longest prefix in [durable, issued] whose model equals what was read, and the one
       the recovered seq names. */
    long diff = 0, best_diff = -1;
    for (int s = 0; s < NSLOT; s++) {
      diff += !cat_same(m, &wk->r1, s);
      for (uint32_t i = 0; i < NKEYS; i++)
        diff += !key_same(m, &wk->r1, s, i);
    }
    size_t below = 0;   /* 1 + a matching prefix shorter than durable */
    int found = 0;
    /* The prefix the recovered seq names: the ops whose batches have seqs up to it. When
       tab_open ran a checkpoint, its DROPQ delete may have taken the last seq: then the seq
       before it may be the one that names the prefix. */
    uint64_t sq[2] = {wk->r1.seq, wk->r1.seq - (wk->r1.open_ckpt && wk->r1.seq > 0)};
    size_t p_seq[2] = {0, 0};
    long diff_seq[2] = {diff, diff};
    for (size_t i = 0; i <= rr.issued; i++) {
      if (i) {
        model_apply(m, wk->p, &wk->p->ops[i - 1], &wk->r1, &diff);
        for (int k = 0; k < 2; k++)
          if (p_seq[k] == i - 1 && (!rr.op_seq[i - 1] || rr.op_seq[i - 1] <= sq[k])) {
            p_seq[k] = i;
            diff_seq[k] = diff;
          }
      }
      if (diff == 0 && i >= rr.durable) {
        found = 1;
        best = i;
      }
      if (diff == 0 && i < rr.durable)
        below = i + 1;
      if (!found && (best_diff < 0 || diff <= best_diff)) {
        best_diff = diff;
        best = i;
      }
    }
    char d[700], od[80], fd[160];
    if (rr.fail_rc)
      snprintf(fd, sizeof fd, "the run stopped at op %zu (%s): %d", rr.fail_op,
               op_desc(wk->p, rr.fail_op, od, sizeof od), rr.fail_rc);
    else
      snprintf(fd, sizeof fd, "the run went through%s", pr->close_failed ? ", close failed" : "");
    if (!found && below) {
      res = errf(&e, "durable ops lost: the state is the one after %zu ops, but %zu were "
                 "acknowledged as durable (the last by op %zu: %s); %zu issued, %s", below - 1,
                 rr.durable, rr.durable - 1, op_desc(wk->p, rr.durable - 1, od, sizeof od),
                 rr.issued, fd);
    } else if (!found) {
      model_at(m, wk->p, best);
      long n = model_diff(m, &wk->r1, d, sizeof d);
      res = errf(&e, "no prefix matches (durable %zu, issued %zu; %s); the closest, after %zu "
                 "ops, differs in %ld:%s", rr.durable, rr.issued, fd, best, n, d);
    } else if (diff_seq[0] != 0 && diff_seq[1] != 0) {
      model_at(m, wk->p, p_seq[0]);
      long n = model_diff(m, &wk->r1, d, sizeof d);
      res = errf(&e, "the recovered seq %llu names prefix %zu, which differs in %ld:%s (prefix "
                 "%zu matches)", (unsigned long long)wk->r1.seq, p_seq[0], n, d, best);
    } else {
      pr->more = best > rr.durable;
      pr->lost = (uint32_t)(rr.issued - best);
    }
  }
  /* A second power loss right after recovery, and a second reopen: the same state. */
  if (res == 0) {
    fs_faulty_crash(ctx, FS_CRASH_RANDOM);
    tab_close(t);
    t = NULL;
    fs_faulty_revive(ctx);
    res = reopen(wk, ctx, c, 0, &t, pr, &e);
    if (res == 0)
      res = read_state(t, &wk->r2, &e);
    if (res == 0 && rstate_equal(&wk->r1, &wk->r2, &e)) {
      char tmp[sizeof e.msg];
      memcpy(tmp, e.msg, sizeof tmp);
      res = errf(&e, "a second recovery (power loss right after the first) differs: %.900s", tmp);
    }
  }
  /* New writes, a checkpoint, a clean close and a third reopen. */
  if (res == 0) {
    model_at(m, wk->p, best);
    res = after_writes(t, m, &e, &late);
    if (res == 0) {
      rc = tab_close(t);
      t = NULL;
      if (rc)
        res = errf(&e, "after recovery: tab_close %d", rc);
    }
    if (res == 0)
      res = reopen(wk, ctx, c, 0, &t, pr, &e);
    if (res == 0)
      res = read_state(t, &wk->r2, &e);
    if (res == 0) {
      char d[700];
      long n = model_diff(m, &wk->r2, d, sizeof d);
      if (n)
        res = errf(&e, "after new writes, a checkpoint and a reopen: %ld differences:%s", n, d);
    }
  }
  if (res == 0 && late.msg[0])
    res = errf(&e, "%s", late.msg);
  if (t)
    tab_close(t);
  free(m);
  rstate_clear(&wk->r1);
  rstate_clear(&wk->r2);
  fs_ctx_destroy(ctx);
  pr->failed = res != 0;
  if (res)
    snprintf(pr->msg, sizeof pr->msg, "%s", e.msg);
}

/* ------------------------------------------------------------------------------------------- */
/* The sweep */

static double now_sec(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pt_describe(char *buf, size_t cap, uint64_t seed, const struct pt *pt)
{
  snprintf(buf, cap, "JDB_TEST_SEED=%llu T_CRASH_CFG=%u T_CRASH_AT=%llu T_CRASH_POLICY=%u "
           "T_CRASH_TARGETS=%#x (%s, %s)", (unsigned long long)seed, pt->cfg,
           (unsigned long long)pt->at, pt->policy, pt->targets, g_cfgs[pt->cfg].name,
           policy_name(pt->policy));
}

static void worker_main(struct worker *wk, const struct pt *pts, struct pres *res, size_t n,
                        unsigned w, unsigned nw)
{
  for (size_t i = w; i < n; i += nw) {
    res[i].state = 1;
    __sync_synchronize();
    crash_point(wk, &pts[i], &res[i], NULL, NULL);
    __sync_synchronize();
    res[i].state = 2;
  }
}

/* Failures grouped by kind (the message without its numbers): a count and the first few. */
#define KINDS_MAX 24
#define KIND_SHOW 3
struct kinds {
  unsigned n, other;
  struct {
    char key[80];
    unsigned count;
    char first[KIND_SHOW][1500];
  } k[KINDS_MAX];
};

static void kinds_add(struct kinds *kd, const char *desc, const char *msg)
{
  char key[80];
  size_t j = 0;
  for (const char *c = msg; *c && j + 1 < sizeof key; c++)
    if (!(*c >= '0' && *c <= '9'))
      key[j++] = *c;
  key[j] = 0;
  unsigned i = 0;
  while (i < kd->n && strcmp(kd->k[i].key, key) != 0)
    i++;
  if (i == kd->n) {
    if (kd->n == KINDS_MAX) {
      kd->other++;
      print_message("[ FAIL ] %s: %s\n", desc, msg);
      return;
    }
    snprintf(kd->k[kd->n++].key, sizeof kd->k[0].key, "%s", key);
  }
  if (kd->k[i].count < KIND_SHOW)
    snprintf(kd->k[i].first[kd->k[i].count], sizeof kd->k[i].first[0], "%s: %s", desc, msg);
  kd->k[i].count++;
}

static void kinds_print(const struct kinds *kd)
{
  for (unsigned i = 0; i < kd->n; i++) {
    print_message("[ FAIL ] %u crash point(s) failed with: %s...\n", kd->k[i].count,
                  kd->k[i].key);
    for (unsigned j = 0; j < kd->k[i].count && j < KIND_SHOW; j++)
      print_message("[ FAIL ]   %s\n", kd->k[i].first[j]);
  }
}

static void pts_add(struct pt **pts, size_t *n, size_t *cap, struct pt p)
{
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 1024;
    *pts = realloc(*pts, *cap * sizeof **pts);
    assert_non_null(*pts);
  }
  (*pts)[(*n)++] = p;
}

/* A fresh directory on a tmpfs (/dev/shm), or NULL (none, or T_NO_TMPFS=1). */
static char *shm_dir(void)
{
  const char *no = getenv("T_NO_TMPFS");
  if (no && *no && strcmp(no, "0") != 0)
    return NULL;
  char *d = strdup("/dev/shm/jdb-tab_crash-......");
  if (d)
    memset(d + strlen(d) - 6, 'X', 6);   /* the mkdtemp template */
  if (d && mkdtemp(d))
    return d;
  free(d);
  return NULL;
}

static void test_crash_sweep(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed();
  struct plan p;
  plan_make(&p, seed, NBATCHES);
  struct worker wk = {.seed = seed, .p = &p, .base = tutil_tmpdir("tab_crash")};
  char *shm = shm_dir();
  wk.shm = shm;
  wk.op_seq = calloc(p.nops, sizeof *wk.op_seq);
  assert_non_null(wk.op_seq);

  /* Fault-free runs: count the I/O ops of each configuration, and check the result (a failure
     is reported, and the sweep still runs when the plan itself went through). */
  double t0 = now_sec();
  uint64_t failures = 0, free_failures = 0;
  for (uint32_t c = 0; c < NCFG; c++) {
    struct pres pr = {0};
    struct pt pt = {.cfg = c};
    double t1 = now_sec();
    crash_point(&wk, &pt, &pr, &g_cfgs[c].nall, &g_cfgs[c].nsync);
    if (pr.failed) {
      print_message("[ FAIL ] JDB_TEST_SEED=%llu fault-free run (%s): %s\n",
                    (unsigned long long)seed, g_cfgs[c].name, pr.msg);
      free_failures++;
      if (!pr.opened_first || pr.close_failed || g_cfgs[c].nall == 0)
        fail_msg("the fault-free plan did not run through");
    }
    print_message("[ info ] %s (%s): %zu ops (%zu puts and deletes), %llu I/O ops (%llu syncs "
                  "and directory ops), %u checkpoints (%u still running when the op that froze "
                  "the memtable returned), %u log segments released, %u collected by log GC "
                  "(%u values moved), %u entries of the dropped table erased; run, check and "
                  "reopens %.0f ms\n", g_cfgs[c].name, g_cfgs[c].tmpfs && shm ? shm : wk.base,
                  p.nops, p.nw, (unsigned long long)g_cfgs[c].nall,
                  (unsigned long long)g_cfgs[c].nsync, pr.ckpts, pr.bg_freezes, pr.released,
                  pr.gc_segs, pr.gc_moved, pr.erased, (now_sec() - t1) * 1000);
  }

  /* The crash points. */
  struct pt *pts = NULL;
  size_t npts = 0, cpts = 0;
  const char *one = getenv("T_CRASH_AT");
  if (one && *one) {
    const char *pe = getenv("T_CRASH_POLICY"), *te = getenv("T_CRASH_TARGETS"),
               *ce = getenv("T_CRASH_CFG");
    struct pt pt = {.at = strtoull(one, NULL, 0),
                    .policy = pe && *pe ? (uint32_t)strtoul(pe, NULL, 0) : FS_CRASH_DROP,
                    .targets = te && *te ? (uint32_t)strtoul(te, NULL, 0) : FS_FT_ALL,
                    .cfg = ce && *ce ? (uint32_t)strtoul(ce, NULL, 0) % NCFG : 0};
    pts_add(&pts, &npts, &cpts, pt);
  } else {
    static const uint32_t policies[] = {FS_CRASH_DROP, FS_CRASH_TEAR, FS_CRASH_RANDOM,
                                        FS_CRASH_KEEP};
    struct tutil_rng r;
    tutil_rng_init(&r, seed ^ 0x5eedull);
    for (uint32_t c = 0; c < NCFG; c++) {
      /* per points and policy, one at random in each of per equal strides of [1, nall] */
      uint64_t nall = g_cfgs[c].nall, nsync = g_cfgs[c].nsync;
      uint64_t per = (uint64_t)(g_cfgs[c].per_policy * g_scale / (T_ASAN ? 4 : 1));
      per = per < 2 ? 2 : per > nall ? nall : per;
      for (unsigned pi = 0; pi < 4; pi++)
        for (uint64_t k = 0; k < per; k++) {
          uint64_t lo = 1 + k * nall / per, hi = (k + 1) * nall / per;
          pts_add(&pts, &npts, &cpts, (struct pt){.at = lo + tutil_rng_below(&r, hi >= lo ?
                                                                              hi - lo + 1 : 1),
                                                  .policy = policies[pi], .targets = FS_FT_ALL,
                                                  .cfg = c});
        }
      /* every sync and directory operation (a share of them when scaled down), random policy */
      uint64_t step = (uint64_t)(g_cfgs[c].sync_step * (T_ASAN ? 4 : 1) / g_scale);
      step = step < 1 ? 1 : step;
      for (uint64_t at = 1 + tutil_rng_below(&r, step); at <= nsync; at += step)
        pts_add(&pts, &npts, &cpts, (struct pt){.at = at, .policy = FS_CRASH_RANDOM,
                                                .targets = FS_FT_SYNC | FS_FT_DIROP, .cfg = c});
    }
  }

  /* Workers: forked processes, each with its own directory, results in shared memory. */
  const char *je = getenv("T_JOBS");
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned nw = je && *je ? (unsigned)strtoul(je, NULL, 0) : (unsigned)(ncpu > 0 ? ncpu : 1) + 1;
  nw = nw < 1 ? 1 : nw > 16 ? 16 : nw;
  if (nw > npts)
    nw = (unsigned)npts;
  size_t rbytes = npts * sizeof(struct pres);
  struct pres *res = mmap(NULL, rbytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(res != MAP_FAILED);
  memset(res, 0, rbytes);
  double t2 = now_sec();
  pid_t pids[16];
  int wstat[16];
  fflush(NULL);
  for (unsigned w = 0; w < nw; w++) {
    pids[w] = fork();
    assert_true(pids[w] >= 0);
    if (pids[w] == 0) {
      char wb[4096], ws[4096];
      snprintf(wb, sizeof wb, "%s/w%u", wk.base, w);
      wk.base = wb;
      mkdir(wb, 0755);
      if (shm) {
        snprintf(ws, sizeof ws, "%s/w%u", shm, w);
        wk.shm = ws;
        mkdir(ws, 0755);
      }
      worker_main(&wk, pts, res, npts, w, nw);
      free(wk.op_seq);
      plan_free(&p);
      free(pts);
      free(shm);
#if T_ASAN
      __lsan_do_leak_check();   /* leaks of the crash paths: exits non-zero when there are */
#endif
      _exit(0);
    }
  }
  for (unsigned w = 0; w < nw; w++)
    assert_int_equal(waitpid(pids[w], &wstat[w], 0), pids[w]);
  double el = now_sec() - t2;

  uint64_t fired = 0, unfired = 0, open_failed = 0, close_failed = 0, more = 0, lost = 0,
           reopens = 0, moves = 0, cnt[NCFG] = {0};
  char desc[256];
  struct kinds kd = {0};
  for (size_t i = 0; i < npts; i++) {
    struct pres *pr = &res[i];
    cnt[pts[i].cfg]++;
    if (pr->state != 2) {
      unsigned w = (unsigned)(i % nw);
      if (pr->state == 1) {
        pt_describe(desc, sizeof desc, seed, &pts[i]);
        snprintf(pr->msg, sizeof pr->msg, "the worker died here (status %#x)", wstat[w]);
        kinds_add(&kd, desc, pr->msg);
        failures++;
      }
      continue;
    }
    fired += pr->fired;
    unfired += !pr->fired;
    open_failed += !pr->opened_first;
    close_failed += pr->close_failed;
    more += pr->more;
    lost += pr->lost;
    reopens += pr->reopens;
    moves += pr->moves_replayed > 0;
    if (pr->failed) {
      failures++;
      pt_describe(desc, sizeof desc, seed, &pts[i]);
      kinds_add(&kd, desc, pr->msg);
    }
  }
  kinds_print(&kd);
  for (unsigned w = 0; w < nw; w++)
    if (!WIFEXITED(wstat[w]) || WEXITSTATUS(wstat[w]) != 0) {
      print_message("[ FAIL ] worker %u ended with status %#x\n", w, wstat[w]);
      failures++;
    }
  print_message("[ info ] %zu crash points (%llu direct, %llu tmpfs, %llu spill, %llu fiber; 4 "
                "policies over all I/O ops, random policy at syncs and directory ops) in %.1f s "
                "with %u workers (%.1f s in all)\n", npts, (unsigned long long)cnt[0],
                (unsigned long long)cnt[1], (unsigned long long)cnt[2], (unsigned long long)cnt[3],
                el, nw, now_sec() - t0);
  print_message("[ info ] crashed %llu, crash point not reached %llu; first open failed %llu, "
                "close failed %llu; recovered more than the durable prefix %llu times; %llu "
                "issued ops lost in all; %llu reopens; %llu recoveries replayed log GC moves\n",
                (unsigned long long)fired, (unsigned long long)unfired,
                (unsigned long long)open_failed, (unsigned long long)close_failed,
                (unsigned long long)more, (unsigned long long)lost, (unsigned long long)reopens,
                (unsigned long long)moves);
  munmap(res, rbytes);
  free(pts);
  free(wk.op_seq);
  plan_free(&p);
  tutil_rmrf(wk.base);
  if (shm)
    tutil_rmrf(shm);
  free(shm);
  if (failures || free_failures)
    fail_msg("%llu of %zu crash points failed (and %llu of %d fault-free runs)",
             (unsigned long long)failures, npts, (unsigned long long)free_failures, NCFG);
}

/* ------------------------------------------------------------------------------------------- */
/* Two writer fibers across log segment rolls */

#define FW_N 1500u          /* batches per fiber */
#define FW_VLEN 1000u

struct fw {
  struct tab *t;
  uint64_t table;
  unsigned w;
  uint64_t seq[FW_N];
  int rc;
  uint32_t done;
};

static uint32_t fw_key(uint8_t *buf, unsigned w, uint32_t i)
{
  return (uint32_t)snprintf((char *)buf, 16, "w%u-%05u", w, i);
}

static void fw_main(void *arg)
{
  struct fw *f = arg;
  uint8_t key[16], val[FW_VLEN];
  for (uint32_t i = 0; i < FW_N; i++) {
    val_fill(val, FW_VLEN, ((uint64_t)f->w << 32) | i);
    struct tab_op op = {.kind = TAB_PUT, .key = key, .klen = fw_key(key, f->w, i), .val = val,
                        .vlen = FW_VLEN};
    f->rc = tab_write(f->t, f->table, &op, 1, 0, &f->seq[i]);
    if (f->rc)
      return;
    f->done = i + 1;
  }
}

/* Every acknowledged batch of both fibers readable with its own value; returns the count of
   those that are not, first ones described into buf. */
static uint32_t fw_check(struct tab *t, uint64_t table, const struct fw *f, char *buf, size_t cap)
{
  uint32_t bad = 0;
  size_t used = 0;
  buf[0] = 0;
  for (unsigned w = 0; w < 2; w++)
    for (uint32_t i = 0; i < f[w].done; i++) {
      uint8_t key[16];
      uint32_t kl = fw_key(key, w, i);
      void *v = NULL;
      size_t vl = 0;
      int rc = tab_get(t, NULL, table, key, kl, &v, &vl);
      int ok = rc == JDB_OK && vl == FW_VLEN && val_same(v, FW_VLEN, ((uint64_t)w << 32) | i);
      mem_free(v);
      if (!ok && bad++ < 3 && used < cap)
        used += (size_t)snprintf(buf + used, cap - used, " [%.*s (seq %llu): %d, %zu bytes]",
                                 (int)kl, (const char *)key, (unsigned long long)f[w].seq[i], rc,
                                 vl);
    }
  return bad;
}

/* Two fibers write batches at the same time (default durability) while the log rolls to new
   segments: a roll parks the writer that needs it, and the other one's commit comes in
   meanwhile. Every batch must get a seq of its own and keep its own contents; after a crash of
   the process (every write kept) the tablet must open with every acknowledged batch. */
static void test_writer_fibers(void **state)
{
  (void)state;
  const char *dir = tutil_tmpdir("tab_crash_fibers");
  struct fs_ctx *ctx = ctx_new(tutil_seed());
  assert_non_null(ctx);
  struct tab_opts o = {.memtable_bytes = 64 * MIB, .segment_bytes = MIB, .create_if_missing = 1};
  struct tab *t = NULL;
  assert_int_equal(tab_open(ctx, dir, &o, &t), JDB_OK);
  uint64_t table = 0;
  assert_int_equal(tab_table_create(t, "fibers", 6, 0, &table), JDB_OK);
  struct fw *f = calloc(2, sizeof *f);
  assert_non_null(f);
  struct coro_sched *sched = NULL;
  struct coro_sched_opts so = {.stack_bytes = 512u << 10};
  assert_int_equal(coro_sched_create(&so, &sched), JDB_OK);
  for (unsigned w = 0; w < 2; w++) {
    f[w] = (struct fw){.t = t, .table = table, .w = w};
    assert_int_equal(coro_spawn(sched, fw_main, &f[w], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, sched), JDB_OK);
  coro_sched_destroy(sched);
  assert_int_equal(f[0].rc, JDB_OK);
  assert_int_equal(f[1].rc, JDB_OK);
  struct fseq {
    uint64_t seq;
    unsigned w;
    uint32_t i;
  } *all = malloc(2 * FW_N * sizeof *all);
  assert_non_null(all);
  uint32_t n = 0, dups = 0;
  for (unsigned w = 0; w < 2; w++)
    for (uint32_t i = 0; i < FW_N; i++)
      all[n++] = (struct fseq){f[w].seq[i], w, i};
  char d[600] = "";
  size_t used = 0;
  for (uint32_t a = 0; a < n; a++)     /* seqs of each fiber rise: compare across fibers only */
    for (uint32_t b = 0; b < n; b++)
      if (all[a].w == 0 && all[b].w == 1 && all[a].seq == all[b].seq && dups++ < 3)
        used += (size_t)snprintf(d + used, sizeof d - used, " [seq %llu: w0-%05u and w1-%05u]",
                                 (unsigned long long)all[a].seq, all[a].i, all[b].i);
  free(all);
  char d1[400], d2[400];
  uint32_t bad_live = fw_check(t, table, f, d1, sizeof d1);
  struct tab_stats st;
  tab_stats_get(t, &st);
  /* a crash of the process: every write stays, nothing more is written */
  fs_faulty_crash(ctx, FS_CRASH_KEEP);
  tab_close(t);
  fs_faulty_revive(ctx);
  o.create_if_missing = 0;
  int rc = tab_open(ctx, dir, &o, &t);
  uint32_t bad_reopen = rc == JDB_OK ? fw_check(t, table, f, d2, sizeof d2) : 0;
  if (rc == JDB_OK)
    assert_int_equal(tab_close(t), JDB_OK);
  fs_ctx_destroy(ctx);
  free(f);
  tutil_rmrf(dir);
  print_message("[ info ] 2 fibers x %u batches of %u bytes (seq %llu, 1 MiB log segments): %u "
                "seqs given twice, %u batches unreadable before the crash, reopen %d, %u "
                "unreadable after it\n", FW_N, FW_VLEN, (unsigned long long)st.seq, dups,
                bad_live, rc, bad_reopen);
  if (dups || bad_live || rc != JDB_OK || bad_reopen)
    fail_msg("seqs given twice: %u%s; acknowledged batches not readable (live tablet): %u%s; "
             "tab_open after a process crash: %d (%s); not readable after it: %u%s", dups, d,
             bad_live, d1, rc, jdb_strerror(rc), bad_reopen, rc == JDB_OK ? d2 : "");
}

int main(void)
{
  tutil_init();
  const char *sc = getenv("JDB_TEST_SCALE");
  g_scale = sc && *sc ? strtod(sc, NULL) : 1.0;
  if (!(g_scale > 0))
    g_scale = 1.0;
  keys_init();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_writer_fibers),
    cmocka_unit_test(test_crash_sweep),
  };
  if (getenv("T_FILTER"))
    cmocka_set_test_filter(getenv("T_FILTER"));
  return cmocka_run_group_tests_name("tablet_crash", tests, NULL, NULL);
}
