/*
 * test_api_kill.c - kill -9 of a process using the public API (libjdb.so, jdb.h only) during a
 * mixed workload: every acknowledged jdb_put, jdb_put_sync, jdb_del, jdb_write and pipeline
 * survives, every batch is all or nothing, and jdb_open never fails afterwards.
 *
 * Each cycle forks a child that opens the database (2 shards, 1 MiB memtables) and its NTAB
 * tables, then starts NTHR writer threads, a reader thread and a thread that calls
 * jdb_checkpoint (or, one time in three, jdb_flush) every 1 .. 21 ms, so kills also land inside
 * checkpoints. Writer t owns the keys whose id is t modulo NTHR in every table (one writer per
 * key), and runs operations 0, 1, 2, ... of its stream: jdb_put, jdb_put_sync, jdb_del,
 * jdb_write of a batch of 2 .. OPS_MAX puts and deletes on one table (with or without JDB_SYNC;
 * a key twice in a batch now and then, the later op wins), or a pipeline of puts and deletes on
 * distinct keys of several tables. Operation i of writer t in cycle c is derived from (seed, c,
 * t, i) alone, so the parent can rebuild any of them. Every value names the operation that wrote
 * it:
 *
 *   off  size  field
 *     0     4  magic 0x4A4B5631
 *     4     2  table id
 *     6     2  key id
 *     8     4  cycle
 *    12     4  operation index in the writer's stream of that cycle
 *    16     1  writer
 *    17     1  operation kind (K_*)
 *    18     1  slot: position of this put in the batch or pipeline
 *    19     1  operations in the batch or pipeline
 *    20     4  value length
 *    24     8  batch id: cycle << 32 | writer << 24 | operation index
 *    32     *  bytes derived from (seed, batch id, slot)
 *
 * After a call returned JDB_OK the writer reports (writer, index) through a pipe (16-byte
 * records, atomic). The reader thread reads random keys and walks tables meanwhile, checking that
 * every value it sees is one some operation wrote. The parent drains the pipe while it waits,
 * kills the child with SIGKILL 2 .. 100 ms after the child reported that it opened (one cycle in
 * eight 0 .. 15 ms after the fork instead, often inside jdb_open's recovery), drains the rest,
 * then opens the database itself, which must succeed, and reads every key (jdb_get) and every
 * table (iterator). For each writer with a acknowledged operations, operation a may or may not
 * have run (it may have started; it may even have returned without being reported), later ones
 * never started. So every key of the writer must hold what the model says after its acknowledged
 * operations, except the keys of operation a, which hold either that or the result of operation
 * a: for a batch, all of its keys one way or all of them the other. Independently of the model,
 * any batch id found in a value is checked against the batch's other keys: each carries the same
 * batch id, or a later operation of the same writer overwrote or deleted it. The model then takes
 * the recovered state, the parent closes the database (a checkpoint) and the next child recovers
 * on top of it. Every eighth cycle and at the end jdb_check must find no error; at the end a
 * clean reopen must show exactly the model.
 *
 * The I/O backend is the library's choice under JDB_IO (ctest runs this once with uring, once
 * with psync). A child never calls cmocka: it reports errors through the pipe and exits.
 * JDB_TEST_SEED=<n> repeats the choices (operations, delays, which cycles kill early), not the
 * timing. JDB_TEST_SCALE=<x> multiplies the number of cycles (50; never below 50 at scale 1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "jdb.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define NTAB 6u           /* tables */
#define NKEY 96u          /* key ids per table */
#define NTHR 3u           /* writer threads in the child */
#define OPS_MAX 12u       /* puts and deletes in one batch */
#define PIPE_OPS_MAX 8u   /* operations in one pipeline */
#define VAL_HDR 32u
#define VAL_MAX (24u << 10)
#define KEY_LEN_MAX 48u
#define MAGIC 0x4A4B5631u

enum { K_PUT = 1, K_PUT_SYNC, K_DEL, K_BATCH, K_BATCH_SYNC, K_PIPE, K_PIPE_SYNC, K_END };

static const char *kind_name(int k)
{
  switch (k) {
  case K_PUT: return "jdb_put";
  case K_PUT_SYNC: return "jdb_put_sync";
  case K_DEL: return "jdb_del";
  case K_BATCH: return "jdb_write";
  case K_BATCH_SYNC: return "jdb_write(JDB_SYNC)";
  case K_PIPE: return "jdb_pipe_exec";
  case K_PIPE_SYNC: return "jdb_pipe_exec(JDB_SYNC)";
  default: return "?";
  }
}

static double g_scale = 1.0;

/* ------------------------------------------------------------------------------------------- */
/* Random numbers: splitmix64 seeding xoshiro256** */

struct rng {
  uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void rng_init(struct rng *r, uint64_t seed)
{
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix(&seed);
}

static uint64_t rng_next(struct rng *r)
{
  uint64_t *s = r->s;
  uint64_t x = s[1] * 5;
  uint64_t res = ((x << 7) | (x >> 57)) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return res;
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
  return n ? (uint32_t)(rng_next(r) % n) : 0;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
  uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ull);
  return splitmix(&x);
}

/* ------------------------------------------------------------------------------------------- */
/* Keys, operations, values */

static uint8_t g_key[NTAB][NKEY][KEY_LEN_MAX];
static uint32_t g_klen[NTAB][NKEY];
static char g_tname[NTAB][16];

/* Key (table, id): "k%03u-" and 0 .. 40 bytes of filler, so keys sort by id. */
static void keys_init(void)
{
  for (uint32_t tb = 0; tb < NTAB; tb++) {
    snprintf(g_tname[tb], sizeof g_tname[tb], "kill-t%u", tb);
    for (uint32_t k = 0; k < NKEY; k++) {
      struct rng r;
      rng_init(&r, mix(0x6b6579, tb * 1000u + k));
      char head[8];
      snprintf(head, sizeof head, "k%03u-", k);
      memcpy(g_key[tb][k], head, 5);
      uint32_t n = 5 + rng_below(&r, 41);
      for (uint32_t i = 5; i < n; i++)
        g_key[tb][k][i] = (uint8_t)rng_next(&r);
      g_klen[tb][k] = n;
    }
  }
}

/* Key id of a key read back, or -1. */
static int key_parse(uint32_t tb, const void *key, size_t klen)
{
  const uint8_t *p = key;
  if (klen < 5 || p[0] != 'k' || p[4] != '-')
    return -1;
  uint32_t id = 0;
  for (int i = 1; i < 4; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    id = id * 10 + (uint32_t)(p[i] - '0');
  }
  if (id >= NKEY || klen != g_klen[tb][id] || memcmp(g_key[tb][id], p, klen) != 0)
    return -1;
  return (int)id;
}

struct kop {
  uint8_t del;
  uint16_t tb, key;
  uint32_t vlen;
};

struct op {
  uint8_t kind;
  uint8_t n;
  struct kop k[OPS_MAX];
};

static uint64_t g_seed;

static uint32_t vlen_pick(struct rng *r)
{
  uint32_t k = rng_below(r, 100);
  if (k < 50)
    return VAL_HDR + rng_below(r, 256 - VAL_HDR + 1);  /* inline */
  if (k < 85)
    return 257 + rng_below(r, 1744);
  if (k < 97)
    return 2001 + rng_below(r, 4000);
  return 6001 + rng_below(r, VAL_MAX - 6000);
}

/* A key of writer thr in table tb. */
static uint16_t key_pick(struct rng *r, uint32_t thr)
{
  return (uint16_t)(thr + NTHR * rng_below(r, NKEY / NTHR));
}

/* Operation idx of writer thr in cycle c. */
static void op_make(uint32_t c, uint32_t thr, uint32_t idx, struct op *o)
{
  struct rng r;
  rng_init(&r, mix(g_seed, ((uint64_t)c << 32) | ((uint64_t)thr << 24) | idx));
  memset(o, 0, sizeof *o);
  uint32_t k = rng_below(&r, 100);
  o->kind = k < 30 ? K_PUT : k < 36 ? K_PUT_SYNC : k < 48 ? K_DEL : k < 78 ? K_BATCH
          : k < 86 ? K_BATCH_SYNC : k < 97 ? K_PIPE : K_PIPE_SYNC;
  switch (o->kind) {
  case K_PUT:
  case K_PUT_SYNC:
  case K_DEL:
    o->n = 1;
    o->k[0].tb = (uint16_t)rng_below(&r, NTAB);
    o->k[0].key = key_pick(&r, thr);
    o->k[0].del = o->kind == K_DEL;
    o->k[0].vlen = o->k[0].del ? 0 : vlen_pick(&r);
    break;
  case K_BATCH:
  case K_BATCH_SYNC: {
    uint16_t tb = (uint16_t)rng_below(&r, NTAB);
    o->n = (uint8_t)(2 + rng_below(&r, OPS_MAX - 1));
    for (uint32_t j = 0; j < o->n; j++) {
      o->k[j].tb = tb;
      o->k[j].key = j && rng_below(&r, 8) == 0 ? o->k[j - 1].key : key_pick(&r, thr);
      o->k[j].del = rng_below(&r, 8) == 0;
      o->k[j].vlen = o->k[j].del ? 0 : vlen_pick(&r);
    }
    break;
  }
  default: /* a pipeline: distinct keys, any tables */
    o->n = (uint8_t)(2 + rng_below(&r, PIPE_OPS_MAX - 1));
    for (uint32_t j = 0; j < o->n; j++) {
      for (;;) {
        o->k[j].tb = (uint16_t)rng_below(&r, NTAB);
        o->k[j].key = key_pick(&r, thr);
        uint32_t d = 0;
        while (d < j && !(o->k[d].tb == o->k[j].tb && o->k[d].key == o->k[j].key))
          d++;
        if (d == j)
          break;
      }
      o->k[j].del = rng_below(&r, 6) == 0;
      o->k[j].vlen = o->k[j].del ? 0 : vlen_pick(&r);
    }
    break;
  }
}

static int kind_is_batch(int k)
{
  return k == K_BATCH || k == K_BATCH_SYNC;
}

static uint64_t batch_id(uint32_t c, uint32_t thr, uint32_t idx)
{
  return ((uint64_t)c << 32) | ((uint64_t)thr << 24) | idx;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* The value slot j of operation o (cycle c, writer thr, index idx) puts: o->k[j].vlen bytes. */
static void val_fill(uint8_t *v, const struct op *o, uint32_t c, uint32_t thr, uint32_t idx,
                     uint32_t j)
{
  const struct kop *k = &o->k[j];
  put32(v, MAGIC);
  put16(v + 4, k->tb);
  put16(v + 6, k->key);
  put32(v + 8, c);
  put32(v + 12, idx);
  v[16] = (uint8_t)thr;
  v[17] = o->kind;
  v[18] = (uint8_t)j;
  v[19] = o->n;
  put32(v + 20, k->vlen);
  put64(v + 24, batch_id(c, thr, idx));
  struct rng r;
  rng_init(&r, mix(g_seed ^ 0x76616c, batch_id(c, thr, idx) * 64 + j));
  uint32_t i = VAL_HDR;
  for (; i + 8 <= k->vlen; i += 8)
    put64(v + i, rng_next(&r));
  uint64_t last = rng_next(&r);
  for (; i < k->vlen; i++, last >>= 8)
    v[i] = (uint8_t)last;
}

/* What a key holds: a put (live) or nothing, and the operation that put or deleted it (a delete
   is known to the model only: a value read back names its put). ref_none: never written. */
struct ref {
  uint8_t live;
  uint8_t slot;
  uint8_t kind;
  uint32_t c, idx;      /* UINT32_MAX for a key never written */
};

static const struct ref ref_none = {.c = UINT32_MAX, .idx = UINT32_MAX};

static int ref_written(const struct ref *r)
{
  return r->c != UINT32_MAX;
}

/* a is a later operation of the same writer than b */
static int ref_later(const struct ref *a, const struct ref *b)
{
  if (!ref_written(a))
    return 0;
  if (!ref_written(b))
    return 1;
  return a->c != b->c ? a->c > b->c : a->idx > b->idx;
}

static int ref_same(const struct ref *a, const struct ref *b)
{
  if (a->live != b->live)
    return 0;
  if (!a->live)
    return 1; /* absent is absent, whoever deleted it */
  return a->c == b->c && a->idx == b->idx && a->slot == b->slot;
}

/* Decode a value read back for (tb, key) into *out; 0 when it is exactly a value some operation
   of the key's writer put there in cycle <= cmax, else -1 with the reason in why. */
static int val_decode(uint32_t tb, uint32_t key, const void *val, size_t vlen, uint32_t cmax,
                      struct ref *out, char *why, size_t cap)
{
  static __thread uint8_t buf[VAL_MAX];
  const uint8_t *v = val;
  *out = ref_none;
  if (vlen < VAL_HDR || vlen > VAL_MAX) {
    snprintf(why, cap, "length %zu", vlen);
    return -1;
  }
  uint32_t c = get32(v + 8), idx = get32(v + 12), thr = v[16], j = v[18];
  if (get32(v) != MAGIC || get16(v + 4) != tb || get16(v + 6) != key || thr != key % NTHR ||
      c > cmax || get32(v + 20) != vlen || get64(v + 24) != batch_id(c, thr, idx) ||
      idx >= (1u << 24)) {
    snprintf(why, cap, "bad header (magic %#x table %u key %u cycle %u index %u writer %u "
             "length %u)", get32(v), get16(v + 4), get16(v + 6), c, idx, thr, get32(v + 20));
    return -1;
  }
  struct op o;
  op_make(c, thr, idx, &o);
  if (j >= o.n || v[17] != o.kind || v[19] != o.n || o.k[j].del || o.k[j].tb != tb ||
      o.k[j].key != key || o.k[j].vlen != vlen) {
    snprintf(why, cap, "names cycle %u writer %u operation %u slot %u, which did not put this "
             "key with this length", c, thr, idx, j);
    return -1;
  }
  val_fill(buf, &o, c, thr, idx, j);
  if (memcmp(buf, v, vlen) != 0) {
    size_t d = 0;
    while (buf[d] == v[d])
      d++;
    snprintf(why, cap, "cycle %u writer %u operation %u slot %u: bytes differ from offset %zu",
             c, thr, idx, j, d);
    return -1;
  }
  *out = (struct ref){.live = 1, .slot = (uint8_t)j, .kind = o.kind, .c = c, .idx = idx};
  return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The library's log: lines are printed with the cycle and the phase they came from, and the
   parent counts its own error lines (a torn log tail found by recovery is reported as one). */

static volatile uint32_t g_log_cycle;
static const char *volatile g_log_phase = "setup";
static uint64_t g_log_errors, g_log_warnings;

static void log_hook(void *ud, int level, const char *msg)
{
  (void)ud;
  if (level <= JDB_LOG_ERROR)
    __atomic_fetch_add(&g_log_errors, 1, __ATOMIC_RELAXED);
  else
    __atomic_fetch_add(&g_log_warnings, 1, __ATOMIC_RELAXED);
  fprintf(stderr, "[ jdb %s ] cycle %u, %s: %s\n", level <= JDB_LOG_ERROR ? "error" : "warn",
          g_log_cycle, g_log_phase, msg);
}

/* ------------------------------------------------------------------------------------------- */
/* The child */

/* Pipe records, 16 bytes (atomic on a pipe). */
enum { R_READY = 1, R_ACK = 2, R_ERR = 3, R_NOTE = 4 };
struct rec {
  uint8_t type;
  uint8_t thr;       /* writer; NTHR the reader, NTHR + 1 the checkpointer, 255 the main thread */
  uint8_t kind;      /* operation kind (R_ACK, R_ERR) */
  uint8_t what;      /* R_ERR: which step (E_*); R_NOTE: E_CKPT or E_FLUSH done */
  uint32_t idx;      /* operation index */
  int32_t rc;        /* R_ERR: the JDB code */
  uint32_t extra;    /* R_ERR: slot, key */
};
_Static_assert(sizeof(struct rec) == 16, "pipe record size");

enum { E_OPEN = 1, E_TABLE, E_CALL, E_RESULT, E_READ, E_VALUE, E_ITER, E_THREAD, E_MEM, E_CKPT,
       E_FLUSH };

static const char *err_what(int w)
{
  switch (w) {
  case E_OPEN: return "jdb_open failed";
  case E_TABLE: return "jdb_table_open (no JDB_CREATE) failed";
  case E_CALL: return "the write call failed";
  case E_RESULT: return "a pipeline operation's result was not JDB_OK";
  case E_READ: return "jdb_get failed";
  case E_VALUE: return "the reader saw a value no operation wrote";
  case E_ITER: return "an iterator call failed or went out of order";
  case E_THREAD: return "pthread_create failed";
  case E_MEM: return "out of memory";
  case E_CKPT: return "jdb_checkpoint failed";
  case E_FLUSH: return "jdb_flush failed";
  default: return "?";
  }
}

struct child {
  int fd;
  uint32_t cycle;
  jdb_t *db;
  jdb_table_t *t[NTAB];
};

static void rec_send(int fd, const struct rec *r)
{
  for (;;) {
    ssize_t n = write(fd, r, sizeof *r);
    if (n == (ssize_t)sizeof *r)
      return;
    if (n < 0 && errno == EINTR)
      continue;
    _exit(20); /* the parent went away */
  }
}

static void child_fail(struct child *ch, uint32_t thr, int what, int kind, uint32_t idx, int rc,
                       uint32_t extra)
{
  struct rec r = {.type = R_ERR, .thr = (uint8_t)thr, .kind = (uint8_t)kind,
                  .what = (uint8_t)what, .idx = idx, .rc = rc, .extra = extra};
  rec_send(ch->fd, &r);
  _exit(10 + what);
}

struct wctx {
  struct child *ch;
  uint32_t thr;
};

static void *child_writer(void *arg)
{
  struct wctx *w = arg;
  struct child *ch = w->ch;
  uint8_t *vals = malloc((size_t)OPS_MAX * VAL_MAX);
  jdb_batch_t *b = jdb_batch_new();
  jdb_pipe_t *p = jdb_pipe_new(ch->db);
  if (!vals || !b || !p)
    child_fail(ch, w->thr, E_MEM, 0, 0, JDB_ENOMEM, 0);
  for (uint32_t i = 0; i < (1u << 24); i++) {
    struct op o;
    op_make(ch->cycle, w->thr, i, &o);
    for (uint32_t j = 0; j < o.n; j++)
      if (!o.k[j].del)
        val_fill(vals + (size_t)j * VAL_MAX, &o, ch->cycle, w->thr, i, j);
    int rc = JDB_OK;
    const struct kop *k0 = &o.k[0];
    jdb_table_t *t0 = ch->t[k0->tb];
    switch (o.kind) {
    case K_PUT:
      rc = jdb_put(t0, g_key[k0->tb][k0->key], g_klen[k0->tb][k0->key], vals, k0->vlen);
      break;
    case K_PUT_SYNC:
      rc = jdb_put_sync(t0, g_key[k0->tb][k0->key], g_klen[k0->tb][k0->key], vals, k0->vlen);
      break;
    case K_DEL:
      rc = jdb_del(t0, g_key[k0->tb][k0->key], g_klen[k0->tb][k0->key]);
      break;
    case K_BATCH:
    case K_BATCH_SYNC:
      jdb_batch_clear(b);
      for (uint32_t j = 0; j < o.n && rc == JDB_OK; j++) {
        const struct kop *k = &o.k[j];
        rc = k->del ? jdb_batch_del(b, g_key[k->tb][k->key], g_klen[k->tb][k->key])
                    : jdb_batch_put(b, g_key[k->tb][k->key], g_klen[k->tb][k->key],
                                    vals + (size_t)j * VAL_MAX, k->vlen);
      }
      if (rc == JDB_OK)
        rc = jdb_write(t0, b, o.kind == K_BATCH_SYNC ? JDB_SYNC : 0);
      break;
    default:
      jdb_pipe_reset(p);
      for (uint32_t j = 0; j < o.n && rc == JDB_OK; j++) {
        const struct kop *k = &o.k[j];
        rc = k->del ? jdb_pipe_del(p, ch->t[k->tb], g_key[k->tb][k->key], g_klen[k->tb][k->key])
                    : jdb_pipe_put(p, ch->t[k->tb], g_key[k->tb][k->key], g_klen[k->tb][k->key],
                                   vals + (size_t)j * VAL_MAX, k->vlen);
      }
      if (rc == JDB_OK)
        rc = jdb_pipe_exec(p, o.kind == K_PIPE_SYNC ? JDB_SYNC : 0);
      for (uint32_t j = 0; j < o.n && rc == JDB_OK; j++) {
        int r = jdb_pipe_result(p, j, NULL, NULL);
        if (r != JDB_OK)
          child_fail(ch, w->thr, E_RESULT, o.kind, i, r, j);
      }
      break;
    }
    if (rc != JDB_OK)
      child_fail(ch, w->thr, E_CALL, o.kind, i, rc, 0);
    struct rec r = {.type = R_ACK, .thr = (uint8_t)w->thr, .kind = o.kind, .idx = i};
    rec_send(ch->fd, &r);
  }
  _exit(30); /* never gets here in 100 ms */
}

/* Reads random keys and walks tables while the writers run: every value must be one that some
   operation wrote (which one is not known here). */
static void *child_reader(void *arg)
{
  struct child *ch = arg;
  struct rng r;
  rng_init(&r, mix(g_seed ^ 0x726561, ch->cycle));
  char why[200];
  struct ref ref;
  for (uint32_t i = 0;; i++) {
    uint32_t tb = rng_below(&r, NTAB);
    if (i % 64 == 63) {
      jdb_iter_t *it = NULL;
      int rc = jdb_iter_open(ch->t[tb], NULL, &it);
      if (rc != JDB_OK)
        child_fail(ch, NTHR, E_ITER, 0, i, rc, tb);
      int desc = rng_below(&r, 2);
      int prev = desc ? (int)NKEY : -1;
      for (rc = desc ? jdb_iter_last(it) : jdb_iter_first(it); rc == JDB_OK;
           rc = desc ? jdb_iter_prev(it) : jdb_iter_next(it)) {
        const void *k, *v;
        size_t kl, vl;
        if (jdb_iter_key(it, &k, &kl) != JDB_OK || jdb_iter_value(it, &v, &vl) != JDB_OK)
          child_fail(ch, NTHR, E_ITER, 0, i, JDB_EINVAL, tb);
        int id = key_parse(tb, k, kl);
        if (id < 0 || (desc ? id >= prev : id <= prev))
          child_fail(ch, NTHR, E_ITER, 0, i, JDB_OK, tb << 16 | (uint32_t)(id & 0xffff));
        if (val_decode(tb, (uint32_t)id, v, vl, ch->cycle, &ref, why, sizeof why) != 0)
          child_fail(ch, NTHR, E_VALUE, 0, i, JDB_OK, tb << 16 | (uint32_t)id);
        prev = id;
      }
      if (rc != JDB_NOTFOUND)
        child_fail(ch, NTHR, E_ITER, 0, i, rc, tb);
      jdb_iter_close(it);
      continue;
    }
    uint32_t key = rng_below(&r, NKEY);
    void *v = NULL;
    size_t vl = 0;
    int rc = jdb_get(ch->t[tb], g_key[tb][key], g_klen[tb][key], &v, &vl);
    if (rc != JDB_OK && rc != JDB_NOTFOUND)
      child_fail(ch, NTHR, E_READ, 0, i, rc, tb << 16 | key);
    if (rc == JDB_OK && val_decode(tb, key, v, vl, ch->cycle, &ref, why, sizeof why) != 0)
      child_fail(ch, NTHR, E_VALUE, 0, i, JDB_OK, tb << 16 | key);
    jdb_free(v);
  }
  return NULL;
}

/* Now and then a checkpoint (the memtables into the trees) or a flush, so kills also land in the
   middle of those. */
static void *child_ckpt(void *arg)
{
  struct child *ch = arg;
  struct rng r;
  rng_init(&r, mix(g_seed ^ 0x636b70, ch->cycle));
  for (uint32_t i = 0;; i++) {
    uint32_t us = 1000 + rng_below(&r, 20000);
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
    int flush = rng_below(&r, 3) == 0;
    int rc = flush ? jdb_flush(ch->db) : jdb_checkpoint(ch->db);
    if (rc != JDB_OK)
      child_fail(ch, NTHR + 1, flush ? E_FLUSH : E_CKPT, 0, i, rc, 0);
    struct rec n = {.type = R_NOTE, .thr = NTHR + 1, .what = flush ? E_FLUSH : E_CKPT, .idx = i};
    rec_send(ch->fd, &n);
  }
  return NULL;
}

static void db_options(jdb_options_t *o, int pin)
{
  jdb_options_init(o);
  o->shards = 2;
  o->pin_cores = pin;
  o->create_if_missing = 1;
  o->cache_bytes = 8u << 20;
  o->memtable_bytes = 1u << 20;
}

/* The child: never returns. */
static void child_main(int fd, const char *dir, uint32_t cycle, int pin)
{
  struct child ch = {.fd = fd, .cycle = cycle};
  g_log_phase = "child";
  jdb_options_t o;
  db_options(&o, pin);
  int rc = jdb_open(dir, &o, &ch.db);
  if (rc != JDB_OK)
    child_fail(&ch, 255, E_OPEN, 0, 0, rc, 0);
  for (uint32_t tb = 0; tb < NTAB; tb++) {
    rc = jdb_table_open(ch.db, g_tname[tb], strlen(g_tname[tb]), 0, &ch.t[tb]);
    if (rc != JDB_OK)
      child_fail(&ch, 255, E_TABLE, 0, 0, rc, tb);
  }
  struct rec r = {.type = R_READY};
  rec_send(fd, &r);
  static struct wctx w[NTHR];
  pthread_t th;
  for (uint32_t i = 0; i < NTHR; i++) {
    w[i] = (struct wctx){.ch = &ch, .thr = i};
    if (pthread_create(&th, NULL, child_writer, &w[i]) != 0)
      child_fail(&ch, 255, E_THREAD, 0, i, 0, 0);
  }
  if (pthread_create(&th, NULL, child_reader, &ch) != 0)
    child_fail(&ch, 255, E_THREAD, 0, NTHR, 0, 0);
  if (pthread_create(&th, NULL, child_ckpt, &ch) != 0)
    child_fail(&ch, 255, E_THREAD, 0, NTHR + 1, 0, 0);
  for (;;)
    pause();
}

/* ------------------------------------------------------------------------------------------- */
/* The parent: model, pipe, checks */

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

struct cyc {
  uint32_t c;
  int ready;
  uint32_t acked[NTHR];
  int err;
  struct rec err_rec;
  uint8_t carry[sizeof(struct rec)];
  size_t ncarry;
  uint64_t acks_by_kind[K_END];
  uint64_t ckpts, flushes;      /* jdb_checkpoint / jdb_flush calls the child completed */
};

static struct ref g_model[NTAB][NKEY];

static void model_apply(uint32_t c, uint32_t thr, uint32_t idx, const struct op *o)
{
  for (uint32_t j = 0; j < o->n; j++) {
    const struct kop *k = &o->k[j];
    g_model[k->tb][k->key] = (struct ref){.live = !k->del, .slot = (uint8_t)j, .kind = o->kind,
                                          .c = c, .idx = idx};
  }
}

static void rec_take(struct cyc *y, const struct rec *r)
{
  switch (r->type) {
  case R_READY:
    y->ready = 1;
    break;
  case R_ACK: {
    if (r->thr >= NTHR || r->idx != y->acked[r->thr] || r->kind == 0 || r->kind >= K_END)
      fail_msg("cycle %u: acknowledgement of writer %u operation %u (kind %u) out of order "
               "(expected operation %u)", y->c, r->thr, r->idx, r->kind,
               r->thr < NTHR ? y->acked[r->thr] : 0);
    struct op o;
    op_make(y->c, r->thr, r->idx, &o);
    if (o.kind != r->kind)
      fail_msg("cycle %u: writer %u acknowledged operation %u as %s, it is %s", y->c, r->thr,
               r->idx, kind_name(r->kind), kind_name(o.kind));
    model_apply(y->c, r->thr, r->idx, &o);
    y->acked[r->thr]++;
    y->acks_by_kind[r->kind]++;
    break;
  }
  case R_NOTE:
    if (r->what == E_CKPT)
      y->ckpts++;
    else
      y->flushes++;
    break;
  case R_ERR:
    if (!y->err) {
      y->err = 1;
      y->err_rec = *r;
    }
    break;
  default:
    fail_msg("cycle %u: unknown pipe record type %u", y->c, r->type);
  }
}

/* Read what the pipe holds until deadline_ms (or EOF; -1: until EOF). Returns 1 at EOF. */
static int drain(int fd, struct cyc *y, double deadline_ms, int until_ready)
{
  static uint8_t buf[64u << 10];
  for (;;) {
    if (until_ready && y->ready)
      return 0;
    int wait = -1;
    if (deadline_ms >= 0) {
      double left = deadline_ms - now_ms();
      if (left <= 0)
        return 0;
      wait = (int)left + 1;
    }
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n = poll(&pf, 1, wait);
    if (n < 0 && errno == EINTR)
      continue;
    assert_true(n >= 0);
    if (n == 0)
      continue;
    memcpy(buf, y->carry, y->ncarry);
    ssize_t got = read(fd, buf + y->ncarry, sizeof buf - y->ncarry);
    if (got < 0 && errno == EINTR)
      continue;
    assert_true(got >= 0);
    if (got == 0)
      return 1;
    size_t have = y->ncarry + (size_t)got, at = 0;
    for (; at + sizeof(struct rec) <= have; at += sizeof(struct rec)) {
      struct rec r;
      memcpy(&r, buf + at, sizeof r);
      rec_take(y, &r);
    }
    y->ncarry = have - at;
    memcpy(y->carry, buf + at, y->ncarry);
  }
}

static const char *ref_str(const struct ref *r, char *buf, size_t cap)
{
  if (!r->live && !ref_written(r))
    snprintf(buf, cap, "absent (never written)");
  else if (!r->live)
    snprintf(buf, cap, "absent (deleted by cycle %u op %u %s)", r->c, r->idx, kind_name(r->kind));
  else
    snprintf(buf, cap, "cycle %u op %u %s slot %u", r->c, r->idx, kind_name(r->kind), r->slot);
  return buf;
}

/* What the database holds now: every key by jdb_get, every table by an iterator (both ways,
   which must agree), each value decoded. */
static void read_state(jdb_t *db, uint32_t cmax, struct ref st[NTAB][NKEY], const char *when)
{
  char why[256];
  for (uint32_t tb = 0; tb < NTAB; tb++) {
    jdb_table_t *t = NULL;
    int rc = jdb_table_open(db, g_tname[tb], strlen(g_tname[tb]), 0, &t);
    if (rc != JDB_OK)
      fail_msg("%s: jdb_table_open(%s): %d (%s)", when, g_tname[tb], rc, jdb_strerror(rc));
    for (uint32_t k = 0; k < NKEY; k++) {
      void *v = NULL;
      size_t vl = 0;
      rc = jdb_get(t, g_key[tb][k], g_klen[tb][k], &v, &vl);
      st[tb][k] = ref_none;
      if (rc == JDB_OK) {
        if (val_decode(tb, k, v, vl, cmax, &st[tb][k], why, sizeof why) != 0)
          fail_msg("%s: table %u key %u holds a value no operation wrote: %s", when, tb, k, why);
      } else if (rc != JDB_NOTFOUND) {
        fail_msg("%s: jdb_get table %u key %u: %d (%s)", when, tb, k, rc, jdb_strerror(rc));
      }
      jdb_free(v);
    }
    for (int desc = 0; desc < 2; desc++) {
      jdb_iter_t *it = NULL;
      rc = jdb_iter_open(t, NULL, &it);
      if (rc != JDB_OK)
        fail_msg("%s: jdb_iter_open(%s): %d (%s)", when, g_tname[tb], rc, jdb_strerror(rc));
      int prev = desc ? (int)NKEY : -1;
      uint32_t seen = 0, live = 0;
      for (rc = desc ? jdb_iter_last(it) : jdb_iter_first(it); rc == JDB_OK;
           rc = desc ? jdb_iter_prev(it) : jdb_iter_next(it)) {
        const void *kp, *vp;
        size_t kl, vl;
        assert_int_equal(jdb_iter_key(it, &kp, &kl), JDB_OK);
        assert_int_equal(jdb_iter_value(it, &vp, &vl), JDB_OK);
        int id = key_parse(tb, kp, kl);
        if (id < 0)
          fail_msg("%s: table %u: the iterator returned an unknown key (%zu bytes)", when, tb,
                   kl);
        if (desc ? id >= prev : id <= prev)
          fail_msg("%s: table %u: iterator %s: key %d after key %d", when, tb,
                   desc ? "backwards" : "forwards", id, prev);
        struct ref r;
        if (val_decode(tb, (uint32_t)id, vp, vl, cmax, &r, why, sizeof why) != 0)
          fail_msg("%s: table %u key %d: the iterator gives a value no operation wrote: %s",
                   when, tb, id, why);
        if (!ref_same(&r, &st[tb][id]))
          fail_msg("%s: table %u key %d: the iterator and jdb_get disagree", when, tb, id);
        prev = id;
        seen++;
      }
      if (rc != JDB_NOTFOUND)
        fail_msg("%s: table %u: iterator ended with %d (%s)", when, tb, rc, jdb_strerror(rc));
      for (uint32_t k = 0; k < NKEY; k++)
        live += st[tb][k].live;
      if (seen != live)
        fail_msg("%s: table %u: the iterator (%s) saw %u keys, jdb_get found %u", when, tb,
                 desc ? "backwards" : "forwards", seen, live);
      jdb_iter_close(it);
    }
    jdb_table_close(t);
  }
}

/* The value-only check: a batch whose id some key carries must show on every one of its keys,
   unless a later operation of the same writer replaced or deleted the key. The model (g_model:
   acknowledged operations applied) is used only to tell whether a later delete exists. */
static void check_batches(const struct cyc *y, struct ref st[NTAB][NKEY])
{
  char b1[120], b2[120];
  for (uint32_t tb = 0; tb < NTAB; tb++)
    for (uint32_t k = 0; k < NKEY; k++) {
      const struct ref *s = &st[tb][k];
      if (!s->live || !kind_is_batch(s->kind))
        continue;
      uint32_t thr = k % NTHR;
      struct op o, inf;
      op_make(s->c, thr, s->idx, &o);
      op_make(y->c, thr, y->acked[thr], &inf);
      for (uint32_t j = 0; j < o.n; j++) {
        const struct kop *kj = &o.k[j];
        uint32_t last = j;
        for (uint32_t l = j + 1; l < o.n; l++)
          if (o.k[l].key == kj->key)
            last = l;
        if (last != j)
          continue;
        const struct ref *got = &st[kj->tb][kj->key];
        struct ref want = {.live = !kj->del, .slot = (uint8_t)j, .kind = o.kind, .c = s->c,
                           .idx = s->idx};
        if (got->live ? (got->c == s->c && got->idx == s->idx && got->slot == j && !kj->del) ||
                            ref_later(got, s)
                      : kj->del)
          continue;
        /* absent: fine when a later operation deleted it (acknowledged, or the one in flight) */
        if (!got->live) {
          const struct ref *m = &g_model[kj->tb][kj->key];
          if (!m->live && ref_later(m, s))
            continue;
          int inflight_del = 0;
          for (uint32_t l = 0; l < inf.n; l++)
            if (inf.k[l].tb == kj->tb && inf.k[l].key == kj->key)
              inflight_del = inf.k[l].del; /* the last op on the key decides */
          if (inflight_del && (y->c != s->c || y->acked[thr] > s->idx))
            continue;
        }
        fail_msg("cycle %u: batch %#llx (cycle %u writer %u op %u, %u ops on table %u) is "
                 "partly applied: table %u key %u carries its id, key %u (slot %u) should hold "
                 "%s but holds %s", y->c, (unsigned long long)batch_id(s->c, thr, s->idx), s->c,
                 thr, s->idx, o.n, kj->tb, tb, k, kj->key, j, ref_str(&want, b1, sizeof b1),
                 ref_str(got, b2, sizeof b2));
      }
    }
}

struct totals {
  uint64_t acks_by_kind[K_END];
  uint64_t inflight_applied, inflight_not, inflight_same, early, not_ready, checks;
  uint64_t ckpts, flushes;
};

/* The model check. Every key must hold what g_model says (acknowledged operations applied),
   except the keys of each writer's next operation, which may hold its result instead: all of
   them (a batch) or each on its own (a single call, a pipeline). Then the model takes the
   state. */
static void check_model(const struct cyc *y, struct ref st[NTAB][NKEY], struct totals *tot)
{
  char b1[120], b2[120], b3[120];
  for (uint32_t thr = 0; thr < NTHR; thr++) {
    struct op o;
    op_make(y->c, thr, y->acked[thr], &o);
    /* the state after operation acked[thr], key by key */
    static struct ref after[NTAB][NKEY];
    static uint8_t touched[NTAB][NKEY];
    memset(touched, 0, sizeof touched);
    for (uint32_t j = 0; j < o.n; j++) {
      const struct kop *k = &o.k[j];
      touched[k->tb][k->key] = 1;
      after[k->tb][k->key] = (struct ref){.live = !k->del, .slot = (uint8_t)j, .kind = o.kind,
                                          .c = y->c, .idx = y->acked[thr]};
    }
    uint32_t n_a = 0, n_b = 0, n_keys = 0;
    for (uint32_t tb = 0; tb < NTAB; tb++)
      for (uint32_t k = thr; k < NKEY; k += NTHR) {
        const struct ref *m = &g_model[tb][k], *s = &st[tb][k];
        if (!touched[tb][k]) {
          if (!ref_same(m, s))
            fail_msg("cycle %u: table %u key %u (writer %u, %u acknowledged ops, the next is "
                     "%s on other keys) should hold %s but holds %s", y->c, tb, k, thr,
                     y->acked[thr], kind_name(o.kind), ref_str(m, b1, sizeof b1),
                     ref_str(s, b2, sizeof b2));
          continue;
        }
        int is_a = ref_same(m, s), is_b = ref_same(&after[tb][k], s);
        n_keys++;
        n_a += is_a;
        n_b += is_b;
        if (!is_a && !is_b)
          fail_msg("cycle %u: table %u key %u (writer %u, %u acknowledged ops) should hold %s "
                   "or, if the next op (%s) ran, %s; it holds %s", y->c, tb, k, thr,
                   y->acked[thr], ref_str(m, b1, sizeof b1), kind_name(o.kind),
                   ref_str(&after[tb][k], b2, sizeof b2), ref_str(s, b3, sizeof b3));
      }
    if (kind_is_batch(o.kind) && n_a < n_keys && n_b < n_keys)
      fail_msg("cycle %u: writer %u's batch (op %u, %u ops on table %u) is partly applied: of "
               "its %u keys %u hold the state before it and %u the state after it", y->c, thr,
               y->acked[thr], o.n, o.k[0].tb, n_keys, n_a, n_b);
    for (uint32_t j = 0; j < o.n; j++) {
      const struct kop *k = &o.k[j];
      g_model[k->tb][k->key] = ref_same(&g_model[k->tb][k->key], &st[k->tb][k->key])
                                 ? g_model[k->tb][k->key] : after[k->tb][k->key];
    }
    if (n_b == n_keys && n_a < n_keys)
      tot->inflight_applied++;
    else if (n_a == n_keys && n_b < n_keys)
      tot->inflight_not++;
    else
      tot->inflight_same++;
  }
}

static void db_check(jdb_t *db, const char *when)
{
  jdb_check_report_t rep;
  memset(&rep, 0, sizeof rep);
  rep.struct_size = sizeof rep;
  int rc = jdb_check(db, &rep);
  if (rc != JDB_OK || rep.errors != 0)
    fail_msg("%s: jdb_check: %d (%s), %llu errors (%llu pages, %llu log records checked)", when,
             rc, jdb_strerror(rc), (unsigned long long)rep.errors,
             (unsigned long long)rep.pages_checked, (unsigned long long)rep.log_records_checked);
  if (rep.shards != 2)
    fail_msg("%s: jdb_check reports %u shards, want 2", when, rep.shards);
}

/* ------------------------------------------------------------------------------------------- */

static char g_base[4096];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static void rmrf(const char *p)
{
  nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_kill9_cycles(void **state)
{
  (void)state;
  struct rng rng;
  rng_init(&rng, g_seed);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/db", g_base);
  uint32_t cycles = (uint32_t)(50 * g_scale);
  if (g_scale >= 1 && cycles < 50)
    cycles = 50;
  cycles = cycles < 2 ? 2 : cycles;

  /* create the directory and the tables */
  jdb_options_t o;
  db_options(&o, 0);
  jdb_t *db = NULL;
  int rc = jdb_open(dir, &o, &db);
  if (rc == JDB_ENOTSUP) {
    print_message("[ skip ] jdb_open: %s (JDB_IO=%s)\n", jdb_strerror(rc),
                  getenv("JDB_IO") ? getenv("JDB_IO") : "");
    skip();
  }
  if (rc != JDB_OK)
    fail_msg("jdb_open(%s): %d (%s)", dir, rc, jdb_strerror(rc));
  for (uint32_t tb = 0; tb < NTAB; tb++) {
    jdb_table_t *t = NULL;
    rc = jdb_table_open(db, g_tname[tb], strlen(g_tname[tb]), JDB_CREATE, &t);
    if (rc != JDB_OK)
      fail_msg("jdb_table_open(%s, JDB_CREATE): %d (%s)", g_tname[tb], rc, jdb_strerror(rc));
    jdb_table_close(t);
  }
  assert_int_equal(jdb_close(db), JDB_OK);
  for (uint32_t tb = 0; tb < NTAB; tb++)
    for (uint32_t k = 0; k < NKEY; k++)
      g_model[tb][k] = ref_none;

  static struct ref st[NTAB][NKEY];
  struct totals tot;
  memset(&tot, 0, sizeof tot);
  double t0 = now_ms(), t_child = 0, t_check = 0, t_open = 0, t_read = 0, t_close = 0;
  for (uint32_t c = 0; c < cycles; c++) {
    int early = rng_below(&rng, 8) == 7;
    double delay = early ? (double)rng_below(&rng, 15001) / 1000.0
                         : 2 + (double)rng_below(&rng, 98001) / 1000.0;
    int pin = (int)rng_below(&rng, 2);
    struct cyc y = {.c = c};
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    g_log_cycle = c;
    fflush(NULL);
    double tf = now_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_main(fds[1], dir, c, pin);
    }
    close(fds[1]);
    int eof = 0;
    if (early) {
      eof = drain(fds[0], &y, tf + delay, 0);
      tot.early++;
    } else {
      /* until the child has opened the database (60 s at most), then the delay */
      eof = drain(fds[0], &y, now_ms() + 60000, 1);
      if (!y.ready && !eof)
        fail_msg("cycle %u: the child did not open the database within 60 s", c);
      if (!eof)
        eof = drain(fds[0], &y, now_ms() + delay, 0);
    }
    kill(pid, SIGKILL);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (!eof)
      drain(fds[0], &y, -1, 0);
    close(fds[0]);
    t_child += now_ms() - tf;
    if (y.err) {
      const struct rec *e = &y.err_rec;
      const char *who = e->thr == NTHR ? "reader" : e->thr == NTHR + 1 ? "checkpointer"
                      : e->thr == 255 ? "main thread" : "writer";
      fail_msg("cycle %u (seed %llu): the child's %s %u: %s (%s op %u, extra %#x): %d (%s)", c,
               (unsigned long long)g_seed, who, e->thr, err_what(e->what), kind_name(e->kind),
               e->idx, e->extra, e->rc, jdb_strerror(e->rc));
    }
    if (!(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL))
      fail_msg("cycle %u (seed %llu): the child ended on its own: %s %d", c,
               (unsigned long long)g_seed, WIFEXITED(ws) ? "exit status" : "signal",
               WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
    tot.not_ready += !y.ready;
    tot.ckpts += y.ckpts;
    tot.flushes += y.flushes;
    for (int k = 0; k < K_END; k++)
      tot.acks_by_kind[k] += y.acks_by_kind[k];

    /* recover and compare */
    double tc = now_ms();
    char when[64];
    snprintf(when, sizeof when, "cycle %u (seed %llu)", c, (unsigned long long)g_seed);
    db_options(&o, 0);
    db = NULL;
    g_log_phase = "parent's jdb_open after the kill";
    rc = jdb_open(dir, &o, &db);
    if (rc != JDB_OK)
      fail_msg("%s: jdb_open after kill -9: %d (%s)", when, rc, jdb_strerror(rc));
    t_open += now_ms() - tc;
    double tr = now_ms();
    g_log_phase = "parent's reads";
    read_state(db, c, st, when);
    t_read += now_ms() - tr;
    check_batches(&y, st);
    check_model(&y, st, &tot);
    if (c % 8 == 7) {
      g_log_phase = "jdb_check";
      db_check(db, when);
      tot.checks++;
    }
    double tx = now_ms();
    g_log_phase = "parent's jdb_close";
    rc = jdb_close(db);
    if (rc != JDB_OK)
      fail_msg("%s: jdb_close: %d (%s)", when, rc, jdb_strerror(rc));
    t_close += now_ms() - tx;
    t_check += now_ms() - tc;
  }

  /* a clean reopen holds exactly the model; jdb_check finds nothing */
  g_log_phase = "final reopen and check";
  g_log_cycle = cycles;
  db_options(&o, 0);
  rc = jdb_open(dir, &o, &db);
  if (rc != JDB_OK)
    fail_msg("final jdb_open: %d (%s)", rc, jdb_strerror(rc));
  read_state(db, cycles, st, "final");
  uint32_t live = 0;
  for (uint32_t tb = 0; tb < NTAB; tb++)
    for (uint32_t k = 0; k < NKEY; k++) {
      char b1[120], b2[120];
      if (!ref_same(&g_model[tb][k], &st[tb][k]))
        fail_msg("final: table %u key %u should hold %s but holds %s", tb, k,
                 ref_str(&g_model[tb][k], b1, sizeof b1), ref_str(&st[tb][k], b2, sizeof b2));
      live += st[tb][k].live;
    }
  db_check(db, "final");
  tot.checks++;
  jdb_stats_t s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  assert_int_equal(jdb_stats(db, -1, &s), JDB_OK);
  assert_int_equal(jdb_close(db), JDB_OK);

  uint64_t acks = 0;
  for (int k = 0; k < K_END; k++)
    acks += tot.acks_by_kind[k];
  print_message("[ info ] %u kill -9 cycles in %.1f s (children %.1f s, reopen+checks %.1f s: "
                "jdb_open %.1f s, reads %.1f s, jdb_close %.1f s; "
                "JDB_IO=%s); %llu killed 0-15 ms after the fork (%llu before the child opened); "
                "%llu acknowledged ops: put %llu, put_sync %llu, del %llu, write %llu, "
                "write(SYNC) %llu, pipe %llu, pipe(SYNC) %llu; the op in flight was found applied "
                "%llu times, not applied %llu, either (no change) %llu; jdb_checkpoint %llu and "
                "jdb_flush %llu calls completed in the children; %u live keys; %llu "
                "jdb_check runs; page files %llu bytes, log %llu bytes; library log lines in the "
                "parent: %llu errors, %llu warnings\n", cycles,
                (now_ms() - t0) / 1e3, t_child / 1e3, t_check / 1e3, t_open / 1e3,
                t_read / 1e3, t_close / 1e3,
                getenv("JDB_IO") ? getenv("JDB_IO") : "(auto)", (unsigned long long)tot.early,
                (unsigned long long)tot.not_ready, (unsigned long long)acks,
                (unsigned long long)tot.acks_by_kind[K_PUT],
                (unsigned long long)tot.acks_by_kind[K_PUT_SYNC],
                (unsigned long long)tot.acks_by_kind[K_DEL],
                (unsigned long long)tot.acks_by_kind[K_BATCH],
                (unsigned long long)tot.acks_by_kind[K_BATCH_SYNC],
                (unsigned long long)tot.acks_by_kind[K_PIPE],
                (unsigned long long)tot.acks_by_kind[K_PIPE_SYNC],
                (unsigned long long)tot.inflight_applied, (unsigned long long)tot.inflight_not,
                (unsigned long long)tot.inflight_same, (unsigned long long)tot.ckpts,
                (unsigned long long)tot.flushes, live, (unsigned long long)tot.checks,
                (unsigned long long)s.page_file_bytes, (unsigned long long)s.log_bytes,
                (unsigned long long)g_log_errors, (unsigned long long)g_log_warnings);
  /* the workload must have done something in most cycles */
  assert_true(acks > 10ull * cycles);
  assert_true(tot.acks_by_kind[K_BATCH] + tot.acks_by_kind[K_BATCH_SYNC] > cycles);
  rmrf(g_base);
}

int main(void)
{
  const char *e = getenv("JDB_TEST_SEED");
  if (e && *e) {
    g_seed = strtoull(e, NULL, 0);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g_seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
  }
  fprintf(stderr, "[ seed ] JDB_TEST_SEED=%llu\n", (unsigned long long)g_seed);
  const char *sc = getenv("JDB_TEST_SCALE");
  g_scale = sc && *sc ? strtod(sc, NULL) : 1.0;
  if (!(g_scale > 0))
    g_scale = 1.0;
  signal(SIGPIPE, SIG_IGN);
  if (mkdir(JDB_TEST_DIR, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "mkdir %s: %s\n", JDB_TEST_DIR, strerror(errno));
    return 1;
  }
  snprintf(g_base, sizeof g_base, "%s/api_kill-%ld", JDB_TEST_DIR, (long)getpid());
  rmrf(g_base);
  if (mkdir(g_base, 0755) != 0) {
    fprintf(stderr, "mkdir %s: %s\n", g_base, strerror(errno));
    return 1;
  }
  keys_init();
  jdb_log_set(log_hook, NULL, JDB_LOG_WARN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kill9_cycles),
  };
  return cmocka_run_group_tests_name("api_kill", tests, NULL, NULL);
}
