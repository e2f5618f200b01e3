/*
 * test_tablet_kill.c - the tablet's default durability (tab_write returned JDB_OK: the batch was
 * handed to the kernel) survives kill -9 of the process, across checkpoints, and batches are
 * atomic.
 *
 * Each cycle forks a child that opens the tablet directory (real io_uring or psync context),
 * creates table "kv" on the first cycle, then writes batches with default durability: batch i of
 * cycle c is 1 .. 16 puts and deletes (keys of 8 .. 1024 bytes out of 3000, values of 0 .. 1500
 * bytes, half of them inline, and now and then up to 16 KiB; a key twice in a batch now and then,
 * the later op wins), all derived from (seed, c, i). memtable_bytes is 1 MiB and segment_bytes
 * 1 MiB, so checkpoints run (and log segments roll, are released or collected by log GC) in the
 * middle of the writing; one cycle in three the child writes from a fiber under fs_loop_run, so
 * its checkpoints run in a fiber of their own while the writing goes on. As soon as tab_write
 * returned JDB_OK the child publishes (i, seq) in a shared mmap'd array and then bumps the count
 * (release order). The parent waits until the child has opened the tablet, lets it run 5 .. 50 ms
 * and kills it with SIGKILL (one cycle in eight kills it 0 .. 10 ms after the fork instead, often
 * during recovery), then opens the tablet itself, checks it (tab_check: tree, pages, persisted log
 * accounting) and reads it in full (iterator and tab_get of every key). The state must equal the
 * model after every acknowledged batch, or after those plus the one batch the child may have
 * issued without getting to acknowledge it (a partially applied batch matches neither), and the
 * recovered seq must name the same point. One cycle in four the parent then closes the tablet (a
 * checkpoint); otherwise it ends as if it crashed too (see below), so the memtable's worth of log
 * carries over to the next child. The next cycle continues on the same directory.
 *
 * Children alternate between io_uring and psync (psync only when the kernel refuses io_uring);
 * the parent uses the other one. A child never calls cmocka: problems end it with an exit status.
 * JDB_TEST_SEED=<n> repeats the choices (not the timing); JDB_TEST_SCALE=<x> multiplies the
 * number of cycles (default 100, 40 under ASan; never below 50 in the plain build at scale 1).
 */
#include "tutil.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"
#include "mem.h"
#include "tab.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#else
#define T_ASAN 0
#endif

#define MIB (1ull << 20)
#define NK 3000u                /* key ids */
#define OPS_MAX 16u             /* ops per batch */
#define VAL_BIG (16u << 10)
#define ACK_MAX (1u << 18)      /* batches a child may acknowledge in one cycle */
#define TABLE_NAME "kv"

static double g_scale = 1.0;

/* ------------------------------------------------------------------------------------------- */
/* Keys, values, batches */

static uint8_t g_keys[NK][TAB_KEY_MAX];
static uint32_t g_klen[NK];

/* Key id -> "K%05u" and random bytes: 8 .. 1024 bytes, mostly long (the memtable fills fast). */
static void keys_init(void)
{
  struct tutil_rng r;
  tutil_rng_init(&r, 0x6b6579);
  for (uint32_t id = 0; id < NK; id++) {
    uint32_t k = (uint32_t)tutil_rng_below(&r, 10);
    uint32_t n = k < 2 ? 8 + (uint32_t)tutil_rng_below(&r, 60)
               : k < 7 ? 68 + (uint32_t)tutil_rng_below(&r, 400)
                       : 468 + (uint32_t)tutil_rng_below(&r, 557);
    char tmp[8];
    snprintf(tmp, sizeof tmp, "K%05u", id);
    memcpy(g_keys[id], tmp, 6);
    tutil_rng_fill(&r, g_keys[id] + 6, n - 6);
    g_klen[id] = n;
  }
}

static int key_parse(const uint8_t *k, size_t klen)
{
  if (klen < 6 || k[0] != 'K')
    return -1;
  uint32_t id = 0;
  for (int i = 1; i < 6; i++) {
    if (k[i] < '0' || k[i] > '9')
      return -1;
    id = id * 10 + (uint32_t)(k[i] - '0');
  }
  if (id >= NK || klen != g_klen[id] || memcmp(g_keys[id], k, klen) != 0)
    return -1;
  return (int)id;
}

struct bop {
  uint32_t key;
  uint8_t del;
  uint32_t vlen;
  uint64_t tag;     /* unique per op: value contents */
};

/* Batch idx of cycle c: n ops into b[]; returns n. Values are tutil_pat_fill(tag). */
static uint32_t batch_make(uint64_t seed, uint32_t c, uint32_t idx, struct bop *b)
{
  static const uint32_t edges[] = {0, 1, 255, 256, 257, 512};
  struct tutil_rng r;
  tutil_rng_init(&r, seed ^ (((uint64_t)c << 32 | idx) * 0x9e3779b97f4a7c15ull));
  uint32_t n = tutil_rng_below(&r, 2) ? 1 : 2 + (uint32_t)tutil_rng_below(&r, OPS_MAX - 1);
  for (uint32_t j = 0; j < n; j++) {
    b[j].key = j && tutil_rng_below(&r, 9) == 0 ? b[j - 1].key
                                                : (uint32_t)tutil_rng_below(&r, NK);
    b[j].del = tutil_rng_below(&r, 10) == 0;
    /* mostly inline (up to 256 bytes: they fill the memtable), else out of line */
    uint32_t k = (uint32_t)tutil_rng_below(&r, 100);
    b[j].vlen = b[j].del ? 0 : k < 2 ? 1501 + (uint32_t)tutil_rng_below(&r, VAL_BIG - 1500)
                         : k < 8 ? edges[k - 2] : k < 60 ? (uint32_t)tutil_rng_below(&r, 257)
                                                         : (uint32_t)tutil_rng_below(&r, 1501);
    b[j].tag = ((uint64_t)c << 40) | ((uint64_t)idx << 5) | j;
  }
  return n;
}

/* ------------------------------------------------------------------------------------------- */
/* What the child shares with the parent */

struct kack {
  uint64_t seq;
  uint32_t idx;
  uint32_t pad;
};

struct kshared {
  int ready;                /* the child's tab_open returned (1) */
  uint64_t start_seq;       /* its seq then */
  uint64_t n;               /* acknowledged batches published in acks[] */
  uint64_t ckpts;           /* checkpoints completed by the child (stats) */
  uint64_t segs_released;
  uint64_t gc_segs;         /* log segments collected by GC in the child */
  struct kack acks[ACK_MAX];
};

/* io_uring when asked for and the kernel allows it, else psync. */
static struct fs_ctx *kctx_new(int uring)
{
  struct fs_ctx_opts o = {.backend = FS_BACKEND_URING};
  struct fs_ctx *ctx = NULL;
  if (uring && fs_ctx_create(&o, &ctx) == JDB_OK)
    return ctx;
  o.backend = FS_BACKEND_PSYNC;
  return fs_ctx_create(&o, &ctx) == JDB_OK ? ctx : NULL;
}

static const struct tab_opts g_opts = {.memtable_bytes = MIB, .segment_bytes = MIB,
                                       .cache_frames = 1024};

/* Child exit codes. */
enum { CX_CTX = 3, CX_OPEN = 4, CX_TABLE = 5, CX_WRITE = 6, CX_SEQ = 7, CX_DONE = 8,
       CX_FIBER = 9 };

static const char *cx_name(int code)
{
  switch (code) {
  case CX_CTX: return "creating the I/O context failed";
  case CX_OPEN: return "tab_open failed";
  case CX_TABLE: return "finding or creating the table failed";
  case CX_WRITE: return "tab_write failed";
  case CX_SEQ: return "tab_write returned a seq that does not follow the last";
  case CX_DONE: return "wrote every batch without being killed";
  case CX_FIBER: return "the fiber loop failed or ended";
  default: return "unknown";
  }
}

struct kwriter {
  struct tab *t;
  uint64_t id, seed;
  uint32_t cycle;
  struct kshared *sh;
};

/* Write batches 0, 1, ... until killed, publishing each acknowledgement. Never returns. */
static void child_write(void *arg)
{
  struct kwriter *k = arg;
  static struct bop b[OPS_MAX];
  static struct tab_op ops[OPS_MAX];
  static uint8_t vals[OPS_MAX][VAL_BIG];
  struct tab_stats st;
  uint64_t last = k->sh->start_seq;
  for (uint32_t i = 0; i < ACK_MAX; i++) {
    uint32_t n = batch_make(k->seed, k->cycle, i, b);
    for (uint32_t j = 0; j < n; j++) {
      ops[j] = (struct tab_op){.kind = b[j].del ? TAB_DEL : TAB_PUT, .key = g_keys[b[j].key],
                               .klen = g_klen[b[j].key]};
      if (!b[j].del) {
        tutil_pat_fill(vals[j], b[j].vlen, b[j].tag);
        ops[j].val = vals[j];
        ops[j].vlen = b[j].vlen;
      }
    }
    uint64_t seq = 0;
    if (tab_write(k->t, k->id, ops, n, 0, &seq) != JDB_OK)
      _exit(CX_WRITE);
    if (seq != last + 1)
      _exit(CX_SEQ);
    last = seq;
    k->sh->acks[i] = (struct kack){.seq = seq, .idx = i};
    tab_stats_get(k->t, &st);
    k->sh->ckpts = st.checkpoints;
    k->sh->segs_released = st.segments_released;
    k->sh->gc_segs = st.gc_segments;
    __atomic_store_n(&k->sh->n, (uint64_t)i + 1, __ATOMIC_RELEASE);
  }
  _exit(CX_DONE);
}

/* The child: never returns. In fiber cycles the writes run in a fiber under fs_loop_run, so the
   checkpoints they start run in a fiber of their own while the writing goes on. */
static void child_main(const char *dir, uint64_t seed, uint32_t cycle, int fiber,
                       struct kshared *sh)
{
  struct fs_ctx *ctx = kctx_new(cycle % 2 == 0);
  if (!ctx)
    _exit(CX_CTX);
  struct tab_opts o = g_opts;
  o.create_if_missing = 1;
  struct kwriter k = {.seed = seed, .cycle = cycle, .sh = sh};
  if (tab_open(ctx, dir, &o, &k.t) != JDB_OK)
    _exit(CX_OPEN);
  int rc = tab_table_find(k.t, TABLE_NAME, strlen(TABLE_NAME), &k.id);
  if (rc == JDB_NOTFOUND)
    rc = tab_table_create(k.t, TABLE_NAME, strlen(TABLE_NAME), TAB_SYNC, &k.id);
  if (rc != JDB_OK)
    _exit(CX_TABLE);
  struct tab_stats st;
  tab_stats_get(k.t, &st);
  sh->start_seq = st.seq;
  __atomic_store_n(&sh->ready, 1, __ATOMIC_RELEASE);
  if (!fiber)
    child_write(&k);
  struct coro_sched *sched = NULL;
  struct coro_sched_opts so = {.stack_bytes = 512u << 10};
  if (coro_sched_create(&so, &sched) != JDB_OK || coro_spawn(sched, child_write, &k, NULL))
    _exit(CX_FIBER);
  fs_loop_run(ctx, sched);
  _exit(CX_FIBER);
}

/* ------------------------------------------------------------------------------------------- */
/* The model and the recovered state */

struct kst {
  uint64_t tag;
  uint32_t vlen;
  uint8_t live;
};

struct rstate {
  uint8_t live[NK];
  uint32_t vlen[NK];
  uint8_t *val[NK];
  uint64_t seq;
  int have_table;
  uint64_t id;
};

static void rstate_clear(struct rstate *r)
{
  for (uint32_t i = 0; i < NK; i++)
    free(r->val[i]);
  memset(r, 0, sizeof *r);
}

static void model_apply(struct kst *m, uint64_t seed, uint32_t c, uint32_t idx)
{
  struct bop b[OPS_MAX];
  uint32_t n = batch_make(seed, c, idx, b);
  for (uint32_t j = 0; j < n; j++)
    m[b[j].key] = b[j].del ? (struct kst){0}
                           : (struct kst){.tag = b[j].tag, .vlen = b[j].vlen, .live = 1};
}

static int key_same(const struct kst *m, const struct rstate *r, uint32_t i)
{
  if (!m[i].live)
    return !r->live[i];
  return r->live[i] && r->vlen[i] == m[i].vlen && tutil_pat_check(r->val[i], m[i].vlen, m[i].tag);
}

/* Differences between model m and r (first few described into buf). */
static uint32_t model_diff(const struct kst *m, const struct rstate *r, char *buf, size_t cap)
{
  uint32_t n = 0;
  size_t used = 0;
  buf[0] = 0;
  for (uint32_t i = 0; i < NK; i++) {
    if (key_same(m, r, i))
      continue;
    if (n++ < 4 && used < cap)
      used += (size_t)snprintf(buf + used, cap - used, " [key %u: model %s cycle %llu batch %llu "
                               "op %llu len %u, read %s len %u]", i,
                               m[i].live ? "live" : "absent",
                               (unsigned long long)(m[i].tag >> 40),
                               (unsigned long long)((m[i].tag >> 5) & 0x7ffffffffull),
                               (unsigned long long)(m[i].tag & 31), m[i].vlen,
                               r->live[i] ? "live" : "absent", r->live[i] ? r->vlen[i] : 0);
  }
  return n;
}

/* Read the table in full: iterator forwards, tab_get of every key. */
static void read_state(struct tab *t, struct rstate *r)
{
  rstate_clear(r);
  struct tab_stats st;
  tab_stats_get(t, &st);
  r->seq = st.seq;
  int rc = tab_table_find(t, TABLE_NAME, strlen(TABLE_NAME), &r->id);
  if (rc == JDB_NOTFOUND)
    return;
  assert_int_equal(rc, JDB_OK);
  r->have_table = 1;
  struct tab_iter *it = NULL;
  assert_int_equal(tab_iter_open(t, NULL, r->id, &it), JDB_OK);
  int prev = -1;
  for (rc = tab_iter_first(it); rc == JDB_OK; rc = tab_iter_next(it)) {
    const void *k, *v;
    size_t kl, vl;
    assert_int_equal(tab_iter_key(it, &k, &kl), JDB_OK);
    int id = key_parse(k, kl);
    if (id <= prev)
      fail_msg("iterator: key %d (%zu bytes) after key %d", id, kl, prev);
    assert_int_equal(tab_iter_value(it, &v, &vl), JDB_OK);
    assert_true(vl <= VAL_BIG);
    r->live[id] = 1;
    r->vlen[id] = (uint32_t)vl;
    r->val[id] = malloc(vl ? vl : 1);
    assert_non_null(r->val[id]);
    if (vl)
      memcpy(r->val[id], v, vl);
    prev = id;
  }
  assert_int_equal(rc, JDB_NOTFOUND);
  tab_iter_close(it);
  for (uint32_t i = 0; i < NK; i++) {
    void *v = NULL;
    size_t vl = 0;
    rc = tab_get(t, NULL, r->id, g_keys[i], g_klen[i], &v, &vl);
    int bad = r->live[i] ? rc != JDB_OK || vl != r->vlen[i] || (vl && memcmp(v, r->val[i], vl))
                         : rc != JDB_NOTFOUND;
    mem_free(v);
    if (bad)
      fail_msg("key %u: tab_get %d (%zu bytes), the iterator %s", i, rc, vl,
               r->live[i] ? "has it" : "does not");
  }
}

/* ------------------------------------------------------------------------------------------- */

static void sleep_ms(double ms)
{
  long ns = (long)(ms * 1e6);
  struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
  nanosleep(&ts, NULL);
}

static double now_sec(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_kill9_cycles(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed();
  struct tutil_rng rng;
  tutil_rng_init(&rng, seed);
  const char *base = tutil_tmpdir("tab_kill");
  char dir[4096];
  tutil_path(dir, sizeof dir, base, "db");
  uint32_t cycles = (uint32_t)((T_ASAN ? 40 : 100) * g_scale);
  if (!T_ASAN && g_scale >= 1 && cycles < 50)
    cycles = 50;
  cycles = cycles < 2 ? 2 : cycles;
  struct kshared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
  assert_true(sh != MAP_FAILED);
  struct kst *m = calloc(NK, sizeof *m), *mnext = calloc(NK, sizeof *mnext);
  struct rstate *r = calloc(1, sizeof *r);
  assert_true(m && mnext && r);
  int have_table = 0;
  uint64_t seq = 0;           /* the last seq the parent recovered */
  uint64_t acked_batches = 0, acked_ops = 0, next_recovered = 0, early_kills = 0,
           not_ready = 0, child_ckpts = 0, cycles_with_ckpt = 0, segs_released = 0,
           full_at_open = 0, gc_segs = 0, moves_replayed = 0;
  double t0 = now_sec();
  for (uint32_t c = 0; c < cycles; c++) {
    memset(sh, 0, offsetof(struct kshared, acks));
    int early = c % 8 == 7;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
      child_main(dir, seed, c, c % 3 == 1, sh);
    if (early) {
      sleep_ms((double)tutil_rng_below(&rng, 10001) / 1000.0);
      early_kills++;
    } else {
      /* until the child has opened the tablet (10 s at most), then 5 .. 50 ms of writing */
      double w0 = now_sec();
      int st = 0;
      while (!__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) && now_sec() - w0 < 10) {
        if (waitpid(pid, &st, WNOHANG) == pid)
          fail_msg("cycle %u: the child ended before writing (status %#x: %s)", c, st,
                   WIFEXITED(st) ? cx_name(WEXITSTATUS(st)) : "killed by a signal");
        sleep_ms(0.2);
      }
      if (!__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE))
        fail_msg("cycle %u: the child did not open the tablet within 10 s", c);
      sleep_ms(5 + (double)tutil_rng_below(&rng, 45001) / 1000.0);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
      fail_msg("cycle %u: the child ended on its own (status %#x: %s)", c, st,
               WIFEXITED(st) ? cx_name(WEXITSTATUS(st)) : "a signal other than SIGKILL");
    int ready = __atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE);
    uint64_t n = __atomic_load_n(&sh->n, __ATOMIC_ACQUIRE);
    not_ready += !ready;
    child_ckpts += sh->ckpts;
    cycles_with_ckpt += sh->ckpts > 0;
    segs_released += sh->segs_released;
    gc_segs += sh->gc_segs;

    /* The acknowledgements: batches 0 .. n-1 in order, seqs following the child's start. The
       first cycles' table create is a batch of its own. */
    int had_table = have_table;
    if (ready && sh->start_seq != seq + (had_table ? 0 : 1))
      fail_msg("cycle %u: the child opened at seq %llu, the last recovery saw %llu", c,
               (unsigned long long)sh->start_seq, (unsigned long long)seq);
    uint64_t s0 = ready ? sh->start_seq : seq;
    for (uint64_t i = 0; i < n; i++) {
      if (sh->acks[i].idx != i || sh->acks[i].seq != s0 + i + 1)
        fail_msg("cycle %u: acknowledgement %llu is batch %u seq %llu, want seq %llu", c,
                 (unsigned long long)i, sh->acks[i].idx, (unsigned long long)sh->acks[i].seq,
                 (unsigned long long)(s0 + i + 1));
      model_apply(m, seed, c, (uint32_t)i);
      struct bop b[OPS_MAX];
      acked_ops += batch_make(seed, c, (uint32_t)i, b);
    }
    acked_batches += n;
    /* The batch the child may have issued without acknowledging it. */
    memcpy(mnext, m, NK * sizeof *m);
    model_apply(mnext, seed, c, (uint32_t)n);

    /* Recover and compare. The parent's ctx is the faulty backend over a real one, without
       rules: after the check it either closes cleanly (a checkpoint) or, three cycles in four,
       ends like a crashed process (fs_faulty_crash KEEP: every write stays, every later op
       fails, so tab_close writes no checkpoint) and the next child finds the memtable's worth
       of log to replay again, so its own checkpoints come sooner. */
    struct fs_ctx *inner = kctx_new(c % 2 == 1), *ctx = NULL;
    assert_non_null(inner);
    assert_int_equal(fs_faulty_create(inner, seed + c, &ctx), JDB_OK);
    struct tab_opts o = g_opts;
    o.create_if_missing = 1;
    struct tab *t = NULL;
    int rc = tab_open(ctx, dir, &o, &t);
    if (rc != JDB_OK)
      fail_msg("cycle %u: tab_open after kill -9: %d (%s)", c, rc, jdb_strerror(rc));
    rc = tab_check(t);
    if (rc != JDB_OK)
      fail_msg("cycle %u: tab_check after kill -9: %d (%s)", c, rc, jdb_strerror(rc));
    read_state(t, r);
    struct tab_stats st0;
    tab_stats_get(t, &st0);
    full_at_open += st0.checkpoints > 0;
    moves_replayed += st0.moves_replayed > 0;
    if (!r->have_table && (had_table || ready))
      fail_msg("cycle %u: table %s is gone", c, TABLE_NAME);
    have_table = r->have_table;
    /* the seq of the last acknowledged batch (or of the create, when it was recovered) */
    uint64_t want = ready ? s0 + n : seq + (!had_table && r->have_table);
    char d1[600], d2[600];
    uint32_t n1 = model_diff(m, r, d1, sizeof d1);
    uint32_t n2 = model_diff(mnext, r, d2, sizeof d2);
    if (n1 && n2) {
      /* which ops of the unacknowledged batch are visible */
      struct bop b[OPS_MAX];
      uint32_t bn = batch_make(seed, c, (uint32_t)n, b), vis = 0;
      for (uint32_t j = 0; j < bn; j++)
        vis += key_same(mnext, r, b[j].key) && !key_same(m, r, b[j].key);
      fail_msg("cycle %u: %llu acknowledged batches (last seq %llu), recovered seq %llu: the "
               "state differs from the acknowledged one in %u keys:%s; from the one with the "
               "next batch (%u ops, %u of them visible) in %u keys:%s", c,
               (unsigned long long)n, (unsigned long long)want, (unsigned long long)r->seq, n1,
               d1, bn, vis, n2, d2);
    }
    /* the recovered seq names the same point (a batch that changes nothing may be either) */
    if (!(n1 == 0 && r->seq == want) && !(n2 == 0 && ready && r->seq == want + 1))
      fail_msg("cycle %u: recovered seq %llu, but the state is the one after %s (seq %llu)", c,
               (unsigned long long)r->seq, n1 == 0 ? "the acknowledged batches"
                                                   : "the unacknowledged batch",
               (unsigned long long)(n1 == 0 ? want : want + 1));
    if (r->seq == want + 1) {
      next_recovered++;
      memcpy(m, mnext, NK * sizeof *m);
    }
    seq = r->seq;
    if (c % 4 == 3) {
      rc = tab_close(t);
      if (rc != JDB_OK)
        fail_msg("cycle %u: tab_close: %d", c, rc);
    } else {
      fs_faulty_crash(ctx, FS_CRASH_KEEP);
      tab_close(t);
    }
    fs_ctx_destroy(ctx);
  }
  uint32_t live = 0;
  for (uint32_t i = 0; i < NK; i++)
    live += m[i].live;
  print_message("[ info ] %u kill -9 cycles in %.1f s (%llu killed 0-10 ms after the fork, %llu "
                "of them before the child's open returned): %llu acknowledged batches (%llu ops), "
                "last seq %llu, %u live keys; the unacknowledged batch recovered %llu times; "
                "checkpoints completed in the children %llu (in %llu cycles), log segments "
                "released there %llu, collected by log GC %llu; recoveries that found the "
                "memtable full (the child was killed in or right before a checkpoint) %llu, that "
                "replayed log GC moves %llu\n", cycles, now_sec() - t0,
                (unsigned long long)early_kills, (unsigned long long)not_ready,
                (unsigned long long)acked_batches, (unsigned long long)acked_ops,
                (unsigned long long)seq, live, (unsigned long long)next_recovered,
                (unsigned long long)child_ckpts, (unsigned long long)cycles_with_ckpt,
                (unsigned long long)segs_released, (unsigned long long)gc_segs,
                (unsigned long long)full_at_open, (unsigned long long)moves_replayed);
  assert_true(acked_batches > cycles);
  rstate_clear(r);
  free(r);
  free(m);
  free(mnext);
  munmap(sh, sizeof *sh);
  tutil_rmrf(base);
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
    cmocka_unit_test(test_kill9_cycles),
  };
  return cmocka_run_group_tests_name("tablet_kill", tests, NULL, NULL);
}
