/*
 * bench_log.c - `jdb_bench log`: the shard log (store/wal) on the bench directory's file system.
 *
 * Each case starts from an empty log directory (64 MiB segments, default options), so its time
 * includes preparing segments (writing them full of zeros and syncing them) as they fill up.
 * Records are one PUT with a 16-byte key; "100b" has an 84-byte value (100 bytes of user data),
 * "4k" a 4080-byte one (above inline_max: stored with a value reference). MB/s counts log bytes
 * written (framing included), the figure to hold against fio's sequential write bandwidth.
 *
 *   log.append.100b.written64    append, wal_wait(WAL_WRITTEN) every 64 records.
 *   log.append.4k.written64      Expect: bounded by memcpy + checksum + buffered write() of
 *                                ~64 records a time: ~1-2 GB/s for 4 KiB, fewer MB/s for 100 B
 *                                (per-record encoding dominates).
 *   log.append.100b.nowait+sync  append only, with one reactor iteration (wal_flush, fs_flush,
 *   log.append.4k.nowait+sync    non-blocking fs_poll) every 64 records, and one wal_sync at
 *                                the end, inside the timing. Expect: above the written64 cases
 *                                (writes overlap appending instead of being waited for).
 *   log.append.4k.steady.*      the same after an untimed warm-up that leaves spare segments,
 *                                dropping the oldest segment whenever more than two exist (what
 *                                checkpoints do in a running engine): rolls rename spares and
 *                                nothing is zero-filled, so every byte is written once. The
 *                                figure to hold against fio's sequential write bandwidth.
 *   log.commit.sync.100b         append one record + wal_wait(WAL_DURABLE), one at a time.
 *                                Expect: one write + one fdatasync over already-written blocks,
 *                                ~100 us p50 here (fio's 4 KiB write+fdatasync: ~100 us).
 *   log.group.<n>fib.100b        n fibers (1, 8, 64) each committing durably in a loop under
 *                                fs_loop_run. Expect: ~1 fdatasync per commit with 1 fiber,
 *                                about n/2..n commits per fdatasync with n fibers.
 *
 * After each append case the log is replayed (untimed) and every record counted and its seq
 * summed, so a fast but wrong run reports a failure instead of a number.
 */
#include "bench.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"
#include "wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_KEY 16u

struct log_run {
  const struct bench_env *env;
  struct fs_ctx *ctx;
  struct wal *w;
  char dir[4096];
  uint8_t *val;
  uint32_t vlen;
  int steady;      /* drop old segments as checkpoints would, so rolls reuse them as spares */
};

static int log_open(struct log_run *r, const char *name)
{
  snprintf(r->dir, sizeof r->dir, "%s/log-%s", r->env->dir, name);
  bench_rmdir(r->dir);
  struct fs_ctx_opts o = {.backend = FS_BACKEND_AUTO};
  int rc = fs_ctx_create(&o, &r->ctx);
  if (rc) {
    bench_note("%s: fs_ctx_create: %s", name, jdb_strerror(rc));
    return rc;
  }
  rc = wal_open(r->ctx, r->dir, NULL, &r->w);
  if (rc == JDB_OK)
    rc = wal_replay(r->w, 0, NULL, NULL, NULL);
  if (rc) {
    bench_note("%s: opening the log: %s", name, jdb_strerror(rc));
    wal_close(r->w);
    fs_ctx_destroy(r->ctx);
    r->w = NULL;
    r->ctx = NULL;
  }
  return rc;
}

static void log_close(struct log_run *r)
{
  wal_close(r->w);
  fs_ctx_destroy(r->ctx);
  r->w = NULL;
  r->ctx = NULL;
}

static void log_key(uint8_t *key, uint64_t seq)
{
  memset(key, 'k', LOG_KEY);
  memcpy(key, &seq, sizeof seq);
}

static int log_append_one(struct log_run *r, uint64_t seq, uint64_t *end)
{
  uint8_t key[LOG_KEY];
  log_key(key, seq);
  memcpy(r->val, &seq, sizeof seq);     /* values differ from record to record */
  struct wal_op op = {.kind = WAL_OP_PUT, .key = key, .klen = LOG_KEY, .val = r->val,
                      .vlen = r->vlen};
  return wal_append(r->w, 1, seq, 0, &op, 1, NULL, end);
}

/* Replay check: n records with seqs 1..n. */
struct log_check { uint64_t n, first, bad; };

static int log_check_cb(void *ud, const struct wal_rec *rec)
{
  struct log_check *c = ud;
  struct wal_batch b;
  struct wal_op_view v;
  if (wal_batch_open(rec, &b) != JDB_OK || wal_batch_next(&b, &v) != JDB_OK || v.vlen < 8) {
    c->bad++;
    return 0;
  }
  uint64_t s;
  memcpy(&s, v.val, 8);
  if (c->n == 0)
    c->first = b.seq;
  if (s != b.seq || b.seq != c->first + c->n)
    c->bad++;
  c->n++;
  return 0;
}

static int log_verify(struct log_run *r, const char *name, uint64_t n)
{
  struct fs_ctx_opts o = {.backend = FS_BACKEND_AUTO};
  struct fs_ctx *ctx = NULL;
  struct wal *w = NULL;
  struct log_check c = {0};
  int rc = fs_ctx_create(&o, &ctx);
  if (rc == JDB_OK)
    rc = wal_open(ctx, r->dir, NULL, &w);
  if (rc == JDB_OK)
    rc = wal_replay(w, 0, log_check_cb, &c, NULL);
  wal_close(w);
  if (ctx)
    fs_ctx_destroy(ctx);
  /* Every record from the first kept one (1 unless old segments were dropped) to n, in order. */
  if (rc || c.bad || c.n == 0 || c.first + c.n - 1 != n || (!r->steady && c.first != 1)) {
    bench_note("%s: VERIFY FAILED: replay %s, %llu records (want %llu), %llu bad", name,
               jdb_strerror(rc), (unsigned long long)c.n, (unsigned long long)n,
               (unsigned long long)c.bad);
    return 1;
  }
  return 0;
}

/* Appends for env->secs; wait_every > 0: wal_wait(WAL_WRITTEN) every that many records, else
   only wal_flush every 64 and one wal_sync at the end. */
static int log_append_case(struct log_run *r, const char *name, uint32_t vlen, int wait_every,
                           double *mbs)
{
  if (!mbs && !bench_want(r->env, name))
    return 0;
  if (log_open(r, name))
    return 1;
  r->vlen = vlen;
  uint64_t seq = 0, end = 0, t0 = bench_now_ns();
  uint64_t deadline = t0 + (uint64_t)(r->env->secs * 1e9), now = t0;
  struct wal_stats a, b;
  int rc = JDB_OK;
  if (r->steady) {
    /* Untimed warm-up: fill four segments and drop the old ones, leaving spares behind as a
       running engine's checkpoints do; from then on each roll renames a spare. */
    uint32_t segs[8];
    while (rc == JDB_OK && wal_segments(r->w, segs, 8) < 5)
      rc = log_append_one(r, ++seq, &end);
    if (rc == JDB_OK)
      rc = wal_sync(r->w);
    while (rc == JDB_OK && wal_segments(r->w, segs, 8) > 1)
      rc = wal_segment_drop(r->w, segs[0]);
    t0 = now = bench_now_ns();
    deadline = t0 + (uint64_t)(r->env->secs * 1e9);
  }
  uint64_t seq0 = seq;
  wal_stats_get(r->w, &a);
  while (rc == JDB_OK && now < deadline) {
    for (int i = 0; i < 64 && rc == JDB_OK; i++)
      rc = log_append_one(r, ++seq, &end);
    uint32_t old[4];
    /* A segment older than the current one is durable whole (a roll syncs its END before the
       next segment exists), so dropping it needs no sync of the log. */
    if (rc == JDB_OK && r->steady && wal_segments(r->w, old, 4) > 2)
      rc = wal_segment_drop(r->w, old[0]);
    if (rc == JDB_OK && wait_every) {
      rc = wal_wait(r->w, end, WAL_WRITTEN);
    } else if (rc == JDB_OK) {
      /* One reactor iteration: start a flush if none is in flight, submit, reap. */
      rc = wal_flush(r->w);
      if (rc == JDB_OK)
        rc = fs_flush(r->ctx);
      if (rc == JDB_OK && fs_poll(r->ctx, 0) < 0)
        rc = JDB_EIO;
    }
    now = bench_now_ns();
  }
  if (rc == JDB_OK && !wait_every)
    rc = wal_sync(r->w);
  now = bench_now_ns();
  wal_stats_get(r->w, &b);
  double secs = (double)(now - t0) / 1e9;
  bench_row(name, seq - seq0, secs, b.bytes_written - a.bytes_written, NULL, 0);
  if (mbs)
    *mbs = (double)(b.bytes_written - a.bytes_written) / secs / 1e6;
  uint64_t allocated = b.segments_allocated - a.segments_allocated;
  bench_note("%s: %.1f MB/s of user data, %llu writes (%llu streamed pieces), %llu fdatasyncs, "
             "%llu stalled appends, segments: %llu zero-filled, %llu allocated, %llu reused",
             name, (double)(seq - seq0) * (LOG_KEY + vlen) / secs / 1e6,
             (unsigned long long)(b.writes - a.writes),
             (unsigned long long)(b.stream_pieces - a.stream_pieces),
             (unsigned long long)(b.syncs - a.syncs),
             (unsigned long long)(b.append_stalls - a.append_stalls),
             (unsigned long long)(b.segments_created - a.segments_created - allocated),
             (unsigned long long)allocated,
             (unsigned long long)(b.segments_reused - a.segments_reused));
  log_close(r);
  int fail = rc != JDB_OK;
  if (fail)
    bench_note("%s: failed: %s", name, jdb_strerror(rc));
  else
    fail = log_verify(r, name, seq);
  if (!r->env->keep)
    bench_rmdir(r->dir);
  return fail;
}

static uint64_t *log_lat_push(uint64_t *lat, size_t *n, size_t *cap, uint64_t v)
{
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 4096;
    uint64_t *p = realloc(lat, c * sizeof *p);
    if (!p)
      return lat;
    lat = p;
    *cap = c;
  }
  lat[(*n)++] = v;
  return lat;
}

static int log_commit_case(struct log_run *r)
{
  const char *name = "log.commit.sync.100b";
  if (!bench_want(r->env, name))
    return 0;
  if (log_open(r, name))
    return 1;
  r->vlen = 100 - LOG_KEY;
  uint64_t *lat = NULL, seq = 0;
  size_t nlat = 0, cap = 0;
  struct wal_stats a, b;
  wal_stats_get(r->w, &a);
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(r->env->secs * 1e9), now = t0;
  int rc = JDB_OK;
  while (rc == JDB_OK && now < deadline) {
    uint64_t s = bench_now_ns(), end;
    rc = log_append_one(r, ++seq, &end);
    if (rc == JDB_OK)
      rc = wal_wait(r->w, end, WAL_DURABLE);
    now = bench_now_ns();
    lat = log_lat_push(lat, &nlat, &cap, now - s);
  }
  wal_stats_get(r->w, &b);
  bench_row(name, seq, (double)(now - t0) / 1e9, b.bytes_written - a.bytes_written, lat, nlat);
  bench_note("%s: %llu fdatasyncs for %llu commits", name,
             (unsigned long long)(b.syncs - a.syncs), (unsigned long long)seq);
  free(lat);
  log_close(r);
  int fail = rc != JDB_OK;
  if (fail)
    bench_note("%s: failed: %s", name, jdb_strerror(rc));
  else
    fail = log_verify(r, name, seq);
  if (!r->env->keep)
    bench_rmdir(r->dir);
  return fail;
}

/* Group commit: fibers committing durably until the deadline. */
struct log_group {
  struct log_run *r;
  uint64_t deadline;
  uint64_t next_seq;
  uint64_t commits, errors;
  uint64_t *lat;
  size_t nlat, cap;
};

static void log_group_fiber(void *arg)
{
  struct log_group *g = arg;
  uint8_t key[LOG_KEY];
  uint8_t val[100 - LOG_KEY];
  memset(val, 'v', sizeof val);
  while (bench_now_ns() < g->deadline) {
    uint64_t s = bench_now_ns(), seq = ++g->next_seq, end;
    log_key(key, seq);
    memcpy(val, &seq, sizeof seq);
    struct wal_op op = {.kind = WAL_OP_PUT, .key = key, .klen = LOG_KEY, .val = val,
                        .vlen = sizeof val};
    int rc = wal_append(g->r->w, 1, seq, 0, &op, 1, NULL, &end);
    if (rc == JDB_OK)
      rc = wal_wait(g->r->w, end, WAL_DURABLE);
    if (rc != JDB_OK) {
      g->errors++;
      return;
    }
    g->commits++;
    g->lat = log_lat_push(g->lat, &g->nlat, &g->cap, bench_now_ns() - s);
  }
}

static int log_group_case(struct log_run *r, int nfib)
{
  char name[64];
  snprintf(name, sizeof name, "log.group.%dfib.100b", nfib);
  if (!bench_want(r->env, name))
    return 0;
  if (log_open(r, name))
    return 1;
  struct coro_sched *s = NULL;
  if (coro_sched_create(NULL, &s) != JDB_OK) {
    log_close(r);
    return 1;
  }
  struct log_group g = {.r = r};
  struct wal_stats a, b;
  wal_stats_get(r->w, &a);
  uint64_t t0 = bench_now_ns();
  g.deadline = t0 + (uint64_t)(r->env->secs * 1e9);
  int fail = 0;
  for (int i = 0; i < nfib; i++)
    fail |= coro_spawn(s, log_group_fiber, &g, NULL) != JDB_OK;
  int rc = fs_loop_run(r->ctx, s);
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  coro_sched_destroy(s);
  wal_stats_get(r->w, &b);
  bench_row(name, g.commits, secs, b.bytes_written - a.bytes_written, g.lat, g.nlat);
  uint64_t syncs = b.syncs - a.syncs;
  bench_note("%s: %llu fdatasyncs, %.1f commits per fdatasync, %llu writes", name,
             (unsigned long long)syncs, syncs ? (double)g.commits / (double)syncs : 0.0,
             (unsigned long long)(b.writes - a.writes));
  free(g.lat);
  log_close(r);
  fail |= rc != JDB_OK || g.errors != 0;
  if (fail)
    bench_note("%s: failed (%s, %llu errors)", name, jdb_strerror(rc),
               (unsigned long long)g.errors);
  else
    fail = log_verify(r, name, g.next_seq);
  if (!r->env->keep)
    bench_rmdir(r->dir);
  return fail;
}

/* log.vs-device: five rounds of (the device's sequential write bandwidth, 1 MiB O_DIRECT QD4 on
   a file next to the log; and log.append.4k.steady.nowait+sync), each env->secs long, in
   alternating order, and the median of the per-round ratios: the issue-3 target (>= 0.8)
   measured in one run on a device whose bandwidth moves by 2x from minute to minute here (three
   rounds gave medians from 0.73 to 0.95 at one commit). With the device always first, the log
   rounds ran 0.08 lower on average (0.85 vs 0.93 over 15 rounds at ad06242): the second case
   pays for the first one's writes. */
#define LOG_DEV_ROUNDS 5
static int log_device_ratio(struct log_run *r)
{
  const char *name = "log.vs-device";
  if (!bench_want(r->env, name))
    return 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/log-device.dat", r->env->dir);
  uint64_t size = r->env->quick ? (256ull << 20) : (2ull << 30);
  double ratio[LOG_DEV_ROUNDS];
  int fail = 0;
  for (int i = 0; i < LOG_DEV_ROUNDS && !fail; i++) {
    /* Odd rounds measure the log first: whichever runs second finds the device still busy
       with what the first one wrote (a virtual disk's host cache), so the order alternates. */
    double dev = 0, log = 0;
    if (i % 2)
      fail |= log_append_case(r, "log.vs-device.4k.steady", 4096 - LOG_KEY, 0, &log);
    fail |= bench_io_seqwrite_mbs(path, size, r->env->secs, &dev);
    if (!(i % 2))
      fail |= log_append_case(r, "log.vs-device.4k.steady", 4096 - LOG_KEY, 0, &log);
    ratio[i] = dev > 0 ? log / dev : 0;
    bench_note("%s round %d (%s first): device 1 MiB O_DIRECT QD4 %.1f MB/s, log 4 KiB "
               "appends %.1f MB/s = %.2f", name, i + 1, i % 2 ? "log" : "device", dev, log,
               ratio[i]);
  }
  unlink(path);
  if (!fail) {
    qsort(ratio, LOG_DEV_ROUNDS, sizeof ratio[0], bench_cmp_double);
    bench_note("%s: median log/device %.2f (target >= 0.80)", name, ratio[LOG_DEV_ROUNDS / 2]);
  }
  return fail;
}

int bench_log(const struct bench_env *env)
{
  bench_table_header();
  struct log_run r = {.env = env};
  r.val = malloc(4096);
  if (!r.val)
    return 1;
  memset(r.val, 'v', 4096);
  int fail = 0;
  fail |= log_append_case(&r, "log.append.100b.written64", 100 - LOG_KEY, 64, NULL);
  fail |= log_append_case(&r, "log.append.4k.written64", 4096 - LOG_KEY, 64, NULL);
  fail |= log_append_case(&r, "log.append.100b.nowait+sync", 100 - LOG_KEY, 0, NULL);
  fail |= log_append_case(&r, "log.append.4k.nowait+sync", 4096 - LOG_KEY, 0, NULL);
  r.steady = 1;
  fail |= log_append_case(&r, "log.append.4k.steady.nowait+sync", 4096 - LOG_KEY, 0, NULL);
  fail |= log_append_case(&r, "log.append.4k.steady.written64", 4096 - LOG_KEY, 64, NULL);
  fail |= log_device_ratio(&r);
  r.steady = 0;
  fail |= log_commit_case(&r);
  fail |= log_group_case(&r, 1);
  fail |= log_group_case(&r, 8);
  fail |= log_group_case(&r, 64);
  free(r.val);
  printf("\n");
  return fail;
}
