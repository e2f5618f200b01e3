/*
 * bench_pages.c - `jdb_bench pages`: the buffer manager (store/page) on one pages file.
 *
 * Setup (untimed): a pages file of NPAGES LEAF pages (256 MiB; 64 MiB with --quick), built with
 * pg_alloc + pg_commit in batches, each page's body stamped with its own page number. Every
 * pinned page is checked against its stamp, so a fast but wrong run reports failures instead of
 * numbers.
 *
 * Cases:
 *   pages.hit.pin+unpin          pg_pin + pg_unpin of random pages of a resident set of 2048
 *                                pages (budget 4096 frames), one caller outside any fiber.
 *                                Expect: a hash lookup and a few branches, ~20-40 ns per pair;
 *                                no I/O, no allocation.
 *   pages.miss.qd1               pins of random pages of the whole file (budget 1024 frames =
 *                                1/64 of it, so ~98% misses), one at a time outside any fiber
 *                                (blocking). Expect: the device's QD1 read latency (~80-100 us
 *                                on the virtual NVMe disk) + verification (~0.2 us checksum).
 *   pages.miss.qd32.<be>         32 fibers on one scheduler, each pinning random pages of the
 *                                file, driven by fs_loop_run. Expect uring: close to the
 *                                device's QD32 random-read IOPS (io.uring.randread.4k.qd32,
 *                                ~80k on the dev VM), the difference being pg's CPU per miss
 *                                (CLOCK sweep, verification, fiber switches); psync runs reads
 *                                one at a time, so ~QD1.
 * ops/s is pins per second (hits included on the miss cases; the note line gives the hit
 * count); latency columns are per pin.
 */
#include "bench.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_PAGE LAYOUT_PAGE_SIZE
#define PB_QD 32
#define PB_HOT 2048u
#define PB_LAT_MAX (1u << 22)

static int pb_page_ok(const void *data, uint64_t pgno)
{
  uint64_t got;
  memcpy(&got, (const uint8_t *)data + 32, 8);
  return got == pgno;
}

/* Build (or reuse, when the kept file already has the size) the pages file. */
static int pb_build(struct fs_ctx *ctx, const char *path, uint64_t npages)
{
  struct pg_opts o = {.frames = 1024};
  struct pg *p = NULL;
  int rc = pg_open(ctx, path, &o, 1, &p);
  if (rc)
    return rc;
  if (pg_super(p)->page_count == npages + 2) {
    pg_close(p);
    return JDB_OK;
  }
  if (pg_super(p)->page_count != 2) {
    pg_close(p);
    bench_note("pages: %s holds another layout; delete it", path);
    return JDB_EINVAL;
  }
  struct layout_super next = {0};
  for (uint64_t i = 0; i < npages && !rc; i++) {
    uint64_t pgno;
    struct pg_frame *fr;
    void *d;
    rc = pg_alloc(p, &pgno, &fr, &d);
    if (rc)
      break;
    struct layout_page_hdr h = {.type = LAYOUT_PAGE_LEAF};
    pg_page_set_hdr(d, &h);
    for (unsigned off = 32; off < PB_PAGE; off += 512)
      memcpy((uint8_t *)d + off, &pgno, 8);
    pg_unpin(p, fr);
    if ((i + 1) % 900 == 0 || i + 1 == npages) {
      next.tree_root = pgno;
      rc = pg_commit(p, &next);
    }
  }
  pg_close(p);
  return rc;
}

/* ------------------------------------------------------------------------------------------- */

static int pb_hits(const struct bench_env *env, struct fs_ctx *ctx, const char *path,
                   uint64_t npages)
{
  const char *name = "pages.hit.pin+unpin";
  if (!bench_want(env, name))
    return 0;
  struct pg_opts o = {.frames = 2 * PB_HOT};
  struct pg *p = NULL;
  int rc = pg_open(ctx, path, &o, 0, &p);
  if (rc) {
    bench_note("%s: open: %s", name, jdb_strerror(rc));
    return 1;
  }
  uint64_t hot = npages < PB_HOT ? npages : PB_HOT, bad = 0;
  for (uint64_t i = 0; i < hot; i++) {   /* make the set resident */
    struct pg_frame *fr;
    const void *d;
    if (pg_pin(p, 2 + i, LAYOUT_PAGE_LEAF, &fr, &d)) {
      bad++;
      continue;
    }
    pg_unpin(p, fr);
  }
  struct pg_stats st0, st1;
  pg_stats_get(p, &st0);
  uint64_t rng = env->seed, ops = 0, sink = 0;
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(env->secs * 1e9), now = t0;
  while (now < deadline) {
    for (int i = 0; i < 4096; i++) {
      uint64_t pgno = 2 + bench_rand(&rng) % hot;
      struct pg_frame *fr;
      const void *d;
      if (pg_pin(p, pgno, LAYOUT_PAGE_LEAF, &fr, &d)) {
        bad++;
        continue;
      }
      sink += ((const uint8_t *)d)[32];
      bad += !pb_page_ok(d, pgno);
      pg_unpin(p, fr);
    }
    ops += 4096;
    now = bench_now_ns();
  }
  double secs = (double)(now - t0) / 1e9;
  pg_stats_get(p, &st1);
  bench_row(name, ops, secs, 0, NULL, 0);
  bench_note("%s: %llu hits, %llu misses (frames %u, %u of them in fixed buffers), sink %llu",
             name, (unsigned long long)(st1.hits - st0.hits),
             (unsigned long long)(st1.misses - st0.misses), st1.frames, st1.fixed_frames,
             (unsigned long long)(sink & 1));
  pg_close(p);
  if (bad)
    bench_note("%s: %llu pins failed or returned the wrong page", name, (unsigned long long)bad);
  return bad ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------- */

struct pb_run {
  struct pg *p;
  uint64_t npages;
  uint64_t deadline;
  uint64_t ops, bad;
  uint64_t *lat;
  size_t nlat;
};

struct pb_fib {
  struct pb_run *run;
  uint64_t rng;
};

static void pb_lat_push(struct pb_run *r, uint64_t ns)
{
  if (r->lat && r->nlat < PB_LAT_MAX)
    r->lat[r->nlat++] = ns;
}

static void pb_one_miss(struct pb_run *r, uint64_t *rng)
{
  uint64_t pgno = 2 + bench_rand(rng) % r->npages;
  struct pg_frame *fr;
  const void *d;
  uint64_t a = bench_now_ns();
  int rc = pg_pin(r->p, pgno, LAYOUT_PAGE_LEAF, &fr, &d);
  pb_lat_push(r, bench_now_ns() - a);
  r->ops++;
  if (rc) {
    r->bad++;
    return;
  }
  r->bad += !pb_page_ok(d, pgno);
  pg_unpin(r->p, fr);
}

static void pb_fib_main(void *arg)
{
  struct pb_fib *f = arg;
  while (bench_now_ns() < f->run->deadline)
    pb_one_miss(f->run, &f->rng);
}

static int pb_misses(const struct bench_env *env, struct fs_ctx *ctx, const char *path,
                     uint64_t npages, unsigned qd, const char *name)
{
  if (!bench_want(env, name))
    return 0;
  struct pg_opts o = {.frames = 1024};
  struct pb_run r = {.npages = npages};
  int rc = pg_open(ctx, path, &o, 0, &r.p);
  if (rc) {
    bench_note("%s: open: %s", name, jdb_strerror(rc));
    return 1;
  }
  r.lat = malloc(PB_LAT_MAX * sizeof *r.lat);
  struct pg_stats st0, st1;
  pg_stats_get(r.p, &st0);
  uint64_t t0 = bench_now_ns();
  r.deadline = t0 + (uint64_t)(env->secs * 1e9);
  if (qd == 1) {
    uint64_t rng = env->seed;
    while (bench_now_ns() < r.deadline)
      pb_one_miss(&r, &rng);
  } else {
    struct coro_sched *s = NULL;
    struct pb_fib fibs[PB_QD];
    rc = coro_sched_create(NULL, &s);
    for (unsigned i = 0; i < qd && i < PB_QD && !rc; i++) {
      fibs[i] = (struct pb_fib){.run = &r, .rng = env->seed * 1000003 + i};
      rc = coro_spawn(s, pb_fib_main, &fibs[i], NULL);
    }
    if (!rc)
      rc = fs_loop_run(ctx, s);
    if (s)
      coro_sched_destroy(s);
    if (rc) {
      bench_note("%s: fibers: %s", name, jdb_strerror(rc));
      r.bad++;
    }
  }
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  pg_stats_get(r.p, &st1);
  bench_row(name, r.ops, secs, (st1.reads - st0.reads) * PB_PAGE, r.lat, r.nlat);
  bench_note("%s: %llu reads, %llu hits, %llu joined, %llu evictions (frames %u for %llu "
             "pages, %u in fixed buffers)",
             name, (unsigned long long)(st1.reads - st0.reads),
             (unsigned long long)(st1.hits - st0.hits),
             (unsigned long long)(st1.read_waits_joined - st0.read_waits_joined),
             (unsigned long long)(st1.evictions - st0.evictions), st1.frames,
             (unsigned long long)npages, st1.fixed_frames);
  pg_close(r.p);
  free(r.lat);
  if (r.bad)
    bench_note("%s: %llu pins failed or returned the wrong page", name,
               (unsigned long long)r.bad);
  return r.bad ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------- */

int bench_pages(const struct bench_env *env)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/pages-bench.dat", env->dir);
  uint64_t npages = env->quick ? (16384 - 2) : (65536 - 2);
  struct fs_ctx_opts ou = {.backend = FS_BACKEND_URING};
  struct fs_ctx *ctx = NULL;
  int have_uring = fs_ctx_create(&ou, &ctx) == JDB_OK;
  if (!have_uring) {
    struct fs_ctx_opts op = {.backend = FS_BACKEND_PSYNC};
    if (fs_ctx_create(&op, &ctx) != JDB_OK) {
      bench_note("pages: no I/O backend");
      return 1;
    }
    bench_note("pages: io_uring unavailable; psync only");
  }
  int rc = pb_build(ctx, path, npages);
  if (rc) {
    bench_note("pages: building %s: %s", path, jdb_strerror(rc));
    fs_ctx_destroy(ctx);
    return 1;
  }
  bench_table_header();
  int fail = 0;
  fail |= pb_hits(env, ctx, path, npages);
  fail |= pb_misses(env, ctx, path, npages, 1,
                    have_uring ? "pages.miss.qd1.uring" : "pages.miss.qd1.psync");
  fail |= pb_misses(env, ctx, path, npages, PB_QD,
                    have_uring ? "pages.miss.qd32.uring" : "pages.miss.qd32.psync");
  fs_ctx_destroy(ctx);
  if (have_uring) {
    struct fs_ctx_opts op = {.backend = FS_BACKEND_PSYNC};
    if (fs_ctx_create(&op, &ctx) == JDB_OK) {
      fail |= pb_misses(env, ctx, path, npages, PB_QD, "pages.miss.qd32.psync");
      fs_ctx_destroy(ctx);
    }
  }
  if (!env->keep)
    remove(path);
  printf("\n");
  return fail;
}
