/*
 * test_wal_kill.c - the WAL_WRITTEN level ("handed to the kernel") survives kill -9.
 *
 * Each cycle forks a child that opens the log directory, replays it (learning where the seqs
 * continue), reports how many records it replayed, then appends records one at a time, each
 * followed by wal_wait(WAL_WRITTEN), and writes the seq to a pipe once the wait returned. The
 * parent lets it run for a random 1-30 ms, kills it with SIGKILL, reads every acknowledged seq,
 * then opens and replays the log itself: every acknowledged seq must be there, the replayed seqs
 * must be contiguous and complete from the oldest kept segment on, their contents byte for byte
 * what was appended, and nothing recovered by an earlier cycle may be missing. The same directory
 * continues across cycles. After checking, the parent drops all but the two newest segments
 * (they become spares the next children reuse), so replays stay short.
 *
 * Children alternate between the io_uring and psync backends (psync only without io_uring).
 * A child never calls cmocka: it reports problems through its exit status.
 */
#include "tutil.h"

#include "fs.h"
#include "jdb.h"
#include "layout.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_CYCLES 60
#define SEG_BYTES (1u << 20)
#define VAL_MAX 50000u

static int g_have_uring;

/* Record seq: one PUT (or a DEL now and then) whose key and value derive from (seed, seq). */
struct krec {
  uint64_t table, ts;
  struct wal_op op;
  uint8_t key[32];
  uint8_t val[VAL_MAX];
};

static uint64_t mix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void krec_make(struct krec *k, uint64_t seed, uint64_t seq)
{
  uint64_t x = mix(seed ^ mix(seq));
  k->table = 1 + x % 7;
  k->ts = 1700000000u + seq;
  x = mix(x);
  k->op.kind = x % 20 == 0 ? WAL_OP_DEL : WAL_OP_PUT;
  k->op.klen = 8 + (uint32_t)(x >> 8) % 25;
  for (uint32_t i = 0; i < k->op.klen; i++)
    k->key[i] = (uint8_t)(mix(x + i) >> 3);
  k->op.key = k->key;
  k->op.val = NULL;
  k->op.vlen = 0;
  if (k->op.kind == WAL_OP_PUT) {
    x = mix(x);
    uint32_t n = x % 100 < 3 ? 10000 + (uint32_t)(x >> 16) % (VAL_MAX - 10000)
                             : (uint32_t)(x >> 16) % 1500;
    uint64_t y = x | 1;
    for (uint32_t i = 0; i < n; i++) {
      if (i % 8 == 0) {
        y ^= y << 13;
        y ^= y >> 7;
        y ^= y << 17;
      }
      k->val[i] = (uint8_t)(y >> (8 * (i % 8)));
    }
    k->op.val = k->val;
    k->op.vlen = n;
  }
}

static struct fs_ctx *kctx_new(int cycle)
{
  struct fs_ctx_opts o = {.backend = g_have_uring && cycle % 2 == 0 ? FS_BACKEND_URING
                                                                     : FS_BACKEND_PSYNC};
  struct fs_ctx *ctx = NULL;
  return fs_ctx_create(&o, &ctx) == JDB_OK ? ctx : NULL;
}

/* Replay checker shared by child and parent: seqs contiguous from the first one seen, contents
   equal to krec_make. */
struct kcheck {
  uint64_t seed;
  uint64_t first_seq, last_seq, n;
  uint32_t first_seg;        /* segment of the first record */
  uint64_t seg_first[4096];  /* first seq of each segment (0 = none seen) */
  char err[200];
  struct krec k;
};

static int kcheck_cb(void *ud, const struct wal_rec *rec)
{
  struct kcheck *c = ud;
  struct wal_batch b;
  struct wal_op_view v;
  if (rec->type != LOG_REC_BATCH || wal_batch_open(rec, &b) != JDB_OK) {
    snprintf(c->err, sizeof c->err, "record at %llx is not a valid batch",
             (unsigned long long)rec->pos);
    return 1;
  }
  if (c->n == 0) {
    c->first_seq = b.seq;
    c->first_seg = LOG_POS_SEG(rec->pos);
  } else if (b.seq != c->last_seq + 1) {
    snprintf(c->err, sizeof c->err, "seq %llu follows seq %llu", (unsigned long long)b.seq,
             (unsigned long long)c->last_seq);
    return 1;
  }
  uint32_t seg = LOG_POS_SEG(rec->pos);
  if (seg < 4096 && !c->seg_first[seg])
    c->seg_first[seg] = b.seq;
  krec_make(&c->k, c->seed, b.seq);
  const struct wal_op *op = &c->k.op;
  if (b.table_id != c->k.table || b.ts_sec != c->k.ts || b.nops != 1 ||
      wal_batch_next(&b, &v) != JDB_OK || v.kind != op->kind || v.klen != op->klen ||
      memcmp(v.key, op->key, op->klen) != 0 || v.vlen != op->vlen ||
      (op->vlen && memcmp(v.val, op->val, op->vlen) != 0) ||
      wal_batch_next(&b, &v) != JDB_NOTFOUND) {
    snprintf(c->err, sizeof c->err, "seq %llu: contents differ", (unsigned long long)b.seq);
    return 1;
  }
  c->last_seq = b.seq;
  c->n++;
  return 0;
}

static void write_all(int fd, const void *p, size_t n)
{
  while (n) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      _exit(10);
    p = (const uint8_t *)p + r;
    n -= (size_t)r;
  }
}

/* The child: never returns. Message 1: the last seq it replayed (0 if none); then each seq as
   soon as wal_wait(WAL_WRITTEN) returned for it. */
static void child_main(const char *dir, uint64_t seed, int fd, int cycle)
{
  struct fs_ctx *ctx = kctx_new(cycle);
  if (!ctx)
    _exit(3);
  struct wal_opts o = {.segment_bytes = SEG_BYTES, .inline_max = 512};
  struct wal *w = NULL;
  if (wal_open(ctx, dir, &o, &w) != JDB_OK)
    _exit(4);
  struct kcheck *c = calloc(1, sizeof *c);
  struct krec *k = malloc(sizeof *k);
  if (!c || !k)
    _exit(5);
  c->seed = seed;
  int rc = wal_replay(w, 0, kcheck_cb, c, NULL);
  if (rc != JDB_OK)
    _exit(6);
  uint64_t seq = c->last_seq;
  write_all(fd, &seq, sizeof seq);
  for (uint64_t i = 1; i <= 1000000; i++) {
    seq++;
    krec_make(k, seed, seq);
    uint64_t end;
    if (wal_append(w, k->table, seq, k->ts, &k->op, 1, NULL, &end) != JDB_OK)
      _exit(7);
    /* Mostly the WRITTEN level, now and then a durable commit. */
    if (wal_wait(w, end, i % 64 == 0 ? WAL_DURABLE : WAL_WRITTEN) != JDB_OK)
      _exit(8);
    write_all(fd, &seq, sizeof seq);
  }
  _exit(0);
}

static void test_kill9_cycles(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed();
  struct tutil_rng rng;
  tutil_rng_init(&rng, seed);
  const char *dir = tutil_tmpdir("wal_kill");
  struct kcheck *c = calloc(1, sizeof *c);
  assert_non_null(c);
  uint64_t recovered = 0;        /* the highest seq a replay of ours has seen */
  uint64_t acked_total = 0, killed_mid = 0, kept_first = 1;
  for (int cycle = 0; cycle < KILL_CYCLES; cycle++) {
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(pfd[0]);
      child_main(dir, seed, pfd[1], cycle);
    }
    close(pfd[1]);
    uint64_t start = UINT64_MAX;
    ssize_t r = read(pfd[0], &start, sizeof start);
    if (r != (ssize_t)sizeof start) {
      int st = 0;
      waitpid(pid, &st, 0);
      fail_msg("cycle %d: the child died before appending (status %#x)", cycle, st);
    }
    /* The child saw what our last replay saw (nothing was lost in between). */
    if (start != recovered)
      fail_msg("cycle %d: the child replayed up to seq %llu, we had %llu", cycle,
               (unsigned long long)start, (unsigned long long)recovered);
    struct timespec ts = {0, (long)(1 + tutil_rng_below(&rng, 30)) * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
      fail_msg("cycle %d: the child ended on its own (status %#x)", cycle, st);
    /* Every acknowledged seq, in order. */
    uint64_t acked = start, s;
    while ((r = read(pfd[0], &s, sizeof s)) == (ssize_t)sizeof s) {
      if (s != acked + 1)
        fail_msg("cycle %d: acknowledgement %llu after %llu", cycle, (unsigned long long)s,
                 (unsigned long long)acked);
      acked = s;
    }
    assert_true(r == 0);     /* whole messages only: 8-byte writes to a pipe are atomic */
    close(pfd[0]);
    acked_total += acked - start;

    /* Recover and check. */
    struct fs_ctx *ctx = kctx_new(cycle + 1);
    assert_non_null(ctx);
    struct wal_opts o = {.segment_bytes = SEG_BYTES, .inline_max = 512};
    struct wal *w = NULL;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    memset(c, 0, sizeof *c);
    c->seed = seed;
    int rc = wal_replay(w, 0, kcheck_cb, c, NULL);
    if (rc != JDB_OK || c->err[0])
      fail_msg("cycle %d: replay %d: %s", cycle, rc, c->err);
    uint64_t m = c->n ? c->last_seq : 0;
    if (c->n && c->first_seq != kept_first)
      fail_msg("cycle %d: the oldest kept record is seq %llu, want %llu", cycle,
               (unsigned long long)c->first_seq, (unsigned long long)kept_first);
    if (m < acked)
      fail_msg("cycle %d: acknowledged up to seq %llu, replayed only up to %llu", cycle,
               (unsigned long long)acked, (unsigned long long)m);
    if (m < recovered)
      fail_msg("cycle %d: seq %llu was replayed before, now only up to %llu", cycle,
               (unsigned long long)recovered, (unsigned long long)m);
    killed_mid += m > acked;     /* a record handed over but not yet acknowledged */
    recovered = m;
    /* Keep the two newest segments. */
    uint32_t segs[64];
    size_t n = wal_segments(w, segs, 64);
    assert_true(n <= 64);
    for (size_t i = 0; i + 2 < n; i++)
      assert_int_equal(wal_segment_drop(w, segs[i]), JDB_OK);
    if (n > 2) {
      /* The first record of the oldest kept segment (or, if it has none, of a later one). */
      kept_first = 0;
      for (size_t i = n - 2; i < n && !kept_first; i++)
        if (segs[i] < 4096)
          kept_first = c->seg_first[segs[i]];
      if (!kept_first)
        kept_first = m + 1;
    }
    wal_close(w);
    fs_ctx_destroy(ctx);
  }
  print_message("  %d kill -9 cycles, %llu acknowledged records, last seq %llu, %llu kills "
                "with a written but unacknowledged record\n", KILL_CYCLES,
                (unsigned long long)acked_total, (unsigned long long)recovered,
                (unsigned long long)killed_mid);
  assert_true(acked_total > KILL_CYCLES);
  free(c);
  tutil_rmrf(dir);
}

int main(void)
{
  tutil_init();
  struct fs_ctx_opts o = {.backend = FS_BACKEND_URING};
  struct fs_ctx *probe = NULL;
  if (fs_ctx_create(&o, &probe) == JDB_OK) {
    g_have_uring = 1;
    fs_ctx_destroy(probe);
  } else {
    fprintf(stderr, "io_uring unavailable: every child uses psync\n");
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kill9_cycles),
  };
  return cmocka_run_group_tests_name("wal_kill", tests, NULL, NULL);
}
