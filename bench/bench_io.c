/*
 * bench_io.c - `jdb_bench io`: the raw I/O backends (base/fs) on one data file.
 *
 * Per backend (uring, psync), in this order on the same O_DIRECT file:
 *   io.<be>.seqwrite.1m.qd4      sequential 1 MiB writes over the whole file, then fdatasync.
 *                                Expect: the device's write bandwidth (fio --rw=write --bs=1M).
 *   io.<be>.randread.4k.qd1      one 4 KiB random read at a time. Expect: device read latency,
 *                                ~ 1 / (80..100 us) on a virtual NVMe disk.
 *   io.<be>.randread.4k.qd32     32 in flight. Expect uring: the device's random-read IOPS (fio
 *                                io_uring iodepth=32); psync runs them one by one, so ~QD1.
 *   io.<be>.write+fdatasync.4k   overwrite one random, already-written block and fdatasync it
 *                                (uring: one linked write->fdatasync submission). Expect: the
 *                                device's flush latency plus one write.
 * uring only:
 *   io.uring.randread.4k.qd32.fixedbuf  same as qd32 into registered buffers (READ_FIXED).
 *   io.uring.randread.4k.qd32.nofixed   same as qd32 without the registered file table.
 *
 * Every block carries its block number in its first 8 bytes; reads check it, so a fast but
 * wrong run reports failures instead of numbers.
 */
#include "bench.h"

#include "fs.h"
#include "jdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define IO_BLOCK 4096u
#define IO_SEQ_CHUNK (1u << 20)
#define IO_QD_MAX 64

struct io_run;
struct io_slot {
  struct fs_op op;
  void *buf;
  struct io_run *run;
  uint64_t t0;
  uint64_t block;
};

struct io_run {
  struct fs_ctx *ctx;
  struct fs_file *f;
  uint64_t nblocks;
  uint64_t rng;
  uint64_t deadline;
  uint64_t ops, bad, errors;
  unsigned outstanding;
  uint64_t *lat;
  size_t nlat, cap;
  int fixed;                 /* reads use registered buffers (slot i = buffer i) */
  struct io_slot slots[IO_QD_MAX];
};

static void io_lat_push(struct io_run *r, uint64_t ns)
{
  if (r->nlat == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 1 << 16;
    uint64_t *p = realloc(r->lat, cap * sizeof *p);
    if (!p)
      return;
    r->lat = p;
    r->cap = cap;
  }
  r->lat[r->nlat++] = ns;
}

static void io_stamp(void *buf, uint32_t len, uint64_t first_block)
{
  for (uint32_t off = 0; off < len; off += IO_BLOCK)
    memcpy((uint8_t *)buf + off, &(uint64_t){first_block + off / IO_BLOCK}, 8);
}

static void io_read_issue(struct io_slot *s);

static void io_read_done(struct fs_op *op)
{
  struct io_slot *s = (struct io_slot *)op;
  struct io_run *r = s->run;
  uint64_t now = bench_now_ns();
  if (op->result != (int32_t)IO_BLOCK) {
    r->errors++;
  } else {
    uint64_t got;
    memcpy(&got, s->buf, 8);
    if (got != s->block)
      r->bad++;
  }
  r->ops++;
  io_lat_push(r, now - s->t0);
  if (now < r->deadline)
    io_read_issue(s);
  else
    r->outstanding--;
}

static void io_read_issue(struct io_slot *s)
{
  struct io_run *r = s->run;
  s->block = bench_rand(&r->rng) % r->nblocks;
  fs_op_prep_read(&s->op, r->f, s->buf, IO_BLOCK, s->block * IO_BLOCK);
  s->op.fixed_buf = r->fixed ? (uint16_t)(s - r->slots + 1) : 0;
  s->op.done = io_read_done;
  s->t0 = bench_now_ns();
  if (fs_submit(r->ctx, &s->op) != JDB_OK) {
    r->errors++;
    r->outstanding--;
  }
}

static int io_randread(const struct bench_env *env, struct io_run *r, unsigned qd,
                       const char *name)
{
  r->ops = r->bad = r->errors = 0;
  r->nlat = 0;
  uint64_t t0 = bench_now_ns();
  r->deadline = t0 + (uint64_t)(env->secs * 1e9);
  r->outstanding = qd;
  for (unsigned i = 0; i < qd; i++) {
    io_read_issue(&r->slots[i]);
  }
  /* Each poll submits the reissued reads and waits for the next completion in one call. */
  while (r->outstanding > 0)
    fs_poll(r->ctx, 1);
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  bench_row(name, r->ops, secs, r->ops * IO_BLOCK, r->lat, r->nlat);
  if (r->bad || r->errors) {
    bench_note("%s: %llu reads returned wrong data, %llu failed", name,
               (unsigned long long)r->bad, (unsigned long long)r->errors);
    return 1;
  }
  return 0;
}

static void io_seq_issue(struct io_slot *s, uint64_t *next_off, uint64_t size);

static uint64_t io_seq_next, io_seq_size;

static void io_seq_done(struct fs_op *op)
{
  struct io_slot *s = (struct io_slot *)op;
  struct io_run *r = s->run;
  if (op->result != (int32_t)IO_SEQ_CHUNK)
    r->errors++;
  r->ops++;
  if (r->deadline && bench_now_ns() < r->deadline) {
    if (io_seq_next >= io_seq_size)
      io_seq_next = 0;            /* timed: around the file again */
    io_seq_issue(s, &io_seq_next, io_seq_size);
  } else if (!r->deadline && io_seq_next < io_seq_size) {
    io_seq_issue(s, &io_seq_next, io_seq_size);
  } else {
    r->outstanding--;
  }
}

static void io_seq_issue(struct io_slot *s, uint64_t *next_off, uint64_t size)
{
  struct io_run *r = s->run;
  (void)size;
  uint64_t off = *next_off;
  *next_off += IO_SEQ_CHUNK;
  io_stamp(s->buf, IO_SEQ_CHUNK, off / IO_BLOCK);
  fs_op_prep_write(&s->op, r->f, s->buf, IO_SEQ_CHUNK, off);
  s->op.done = io_seq_done;
  if (fs_submit(r->ctx, &s->op) != JDB_OK) {
    r->errors++;
    r->outstanding--;
  }
}

/* Sequential 1 MiB writes, 4 in flight, then fdatasync: the whole file once (secs == 0) or around
   it for secs seconds. Returns the seconds taken; r->ops counts the writes. */
static double io_seq_run(struct io_run *r, uint64_t size, double secs)
{
  const unsigned qd = 4;
  r->ops = r->errors = 0;
  io_seq_next = 0;
  io_seq_size = size;
  uint64_t t0 = bench_now_ns();
  r->deadline = secs > 0 ? t0 + (uint64_t)(secs * 1e9) : 0;
  r->outstanding = qd;
  for (unsigned i = 0; i < qd; i++)
    io_seq_issue(&r->slots[i], &io_seq_next, size);
  while (r->outstanding > 0)
    fs_poll(r->ctx, 1);
  if (fs_sync(r->ctx, r->f) != JDB_OK)
    r->errors++;
  r->deadline = 0;
  return (double)(bench_now_ns() - t0) / 1e9;
}

static int io_seqwrite(struct io_run *r, uint64_t size, const char *name)
{
  double secs = io_seq_run(r, size, 0);
  if (name)
    bench_row(name, r->ops, secs, r->ops * IO_SEQ_CHUNK, NULL, 0);
  return r->errors ? 1 : 0;
}

int bench_io_seqwrite_mbs(const char *path, uint64_t size, double secs, double *mbs)
{
  *mbs = 0;
  size &= ~(uint64_t)(IO_SEQ_CHUNK - 1);
  struct fs_ctx_opts o = {.backend = FS_BACKEND_URING, .queue_depth = 64};
  struct io_run *r = calloc(1, sizeof *r);
  if (!r || size == 0)
    return (free(r), 1);
  int fail = 1;
  if (fs_ctx_create(&o, &r->ctx) != JDB_OK)
    goto out_free;
  if (fs_file_open(r->ctx, path, FS_O_CREATE | FS_O_DIRECT, &r->f) != JDB_OK)
    goto out_ctx;
  unsigned nbuf = 0;
  for (; nbuf < 4; nbuf++) {
    r->slots[nbuf].run = r;
    if (posix_memalign(&r->slots[nbuf].buf, 4096, IO_SEQ_CHUNK))
      goto out_bufs;
  }
  uint64_t cur = 0;
  fs_file_size(r->ctx, r->f, &cur);
  if (cur < size && io_seqwrite(r, size, NULL))   /* laid out first, untimed, as fio does */
    goto out_bufs;
  double t = io_seq_run(r, size, secs);
  *mbs = (double)r->ops * IO_SEQ_CHUNK / t / 1e6;
  fail = r->errors != 0;
out_bufs:
  for (unsigned i = 0; i < nbuf; i++)
    free(r->slots[i].buf);
  fs_file_close(r->ctx, r->f);
out_ctx:
  fs_ctx_destroy(r->ctx);
out_free:
  free(r);
  return fail;
}

static int io_write_sync(const struct bench_env *env, struct io_run *r, const char *name)
{
  r->ops = r->errors = 0;
  r->nlat = 0;
  void *buf = r->slots[0].buf;
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(env->secs * 1e9), now = t0;
  while (now < deadline) {
    uint64_t block = bench_rand(&r->rng) % r->nblocks;
    io_stamp(buf, IO_BLOCK, block);
    uint64_t a = bench_now_ns();
    if (fs_write_sync(r->ctx, r->f, buf, IO_BLOCK, block * IO_BLOCK) != JDB_OK)
      r->errors++;
    now = bench_now_ns();
    io_lat_push(r, now - a);
    r->ops++;
  }
  double secs = (double)(now - t0) / 1e9;
  bench_row(name, r->ops, secs, r->ops * IO_BLOCK, r->lat, r->nlat);
  return r->errors ? 1 : 0;
}

static int io_backend(const struct bench_env *env, int backend, int register_files,
                      const char *label, int full)
{
  char path[4096], name[96];
  snprintf(path, sizeof path, "%s/io-bench.dat", env->dir);
  uint64_t size = env->quick ? (128ull << 20) : (1ull << 30);
  struct fs_ctx_opts o = {.backend = backend, .queue_depth = 256, .plain_fds = !register_files};
  struct io_run *r = calloc(1, sizeof *r);
  if (!r)
    return 1;
  int rc = fs_ctx_create(&o, &r->ctx);
  if (rc) {
    bench_note("io.%s: backend unavailable (%s)", label, jdb_strerror(rc));
    free(r);
    return 0;
  }
  rc = fs_file_open(r->ctx, path, FS_O_CREATE | FS_O_DIRECT, &r->f);
  if (rc) {
    bench_note("io.%s: open %s: %s", label, path, jdb_strerror(rc));
    fs_ctx_destroy(r->ctx);
    free(r);
    return 1;
  }
  if (!fs_file_is_direct(r->f))
    bench_note("io.%s: O_DIRECT refused on %s: numbers include the page cache", label, path);
  r->nblocks = size / IO_BLOCK;
  r->rng = env->seed;
  int fail = 0;
  for (unsigned i = 0; i < IO_QD_MAX; i++) {
    r->slots[i].run = r;
    if (posix_memalign(&r->slots[i].buf, 4096, IO_SEQ_CHUNK))
      return 1;
  }
  uint64_t cur = 0;
  fs_file_size(r->ctx, r->f, &cur);
  if (cur < size) {
    /* Lay the file out first, untimed (as fio does): every timed case then runs over written
       blocks, so no case pays for converting unwritten extents and backends compare fairly. */
    fail |= io_seqwrite(r, size, NULL);
  }
  snprintf(name, sizeof name, "io.%s.seqwrite.1m.qd4", label);
  if (full && bench_want(env, name))
    fail |= io_seqwrite(r, size, name);
  snprintf(name, sizeof name, "io.%s.randread.4k.qd1", label);
  if (full && bench_want(env, name))
    fail |= io_randread(env, r, 1, name);
  snprintf(name, sizeof name, "io.%s.randread.4k.qd32%s", label,
           backend == FS_BACKEND_URING && !register_files ? ".nofixed" : "");
  if (bench_want(env, name))
    fail |= io_randread(env, r, 32, name);
  if (backend == FS_BACKEND_URING && register_files) {
    /* The same reads into registered buffers (READ_FIXED). */
    struct iovec iov[IO_QD_MAX];
    for (unsigned i = 0; i < IO_QD_MAX; i++)
      iov[i] = (struct iovec){.iov_base = r->slots[i].buf, .iov_len = IO_BLOCK};
    rc = fs_ctx_register_buffers(r->ctx, iov, IO_QD_MAX);
    if (rc) {
      bench_note("io.%s: buffers not registered (%s)", label, jdb_strerror(rc));
    } else {
      r->fixed = 1;
      snprintf(name, sizeof name, "io.%s.randread.4k.qd32.fixedbuf", label);
      if (bench_want(env, name))
        fail |= io_randread(env, r, 32, name);
      r->fixed = 0;
      fs_ctx_register_buffers(r->ctx, NULL, 0);
    }
  }
  snprintf(name, sizeof name, "io.%s.write+fdatasync.4k", label);
  if (full && bench_want(env, name))
    fail |= io_write_sync(env, r, name);
  for (unsigned i = 0; i < IO_QD_MAX; i++)
    free(r->slots[i].buf);
  fs_file_close(r->ctx, r->f);
  fs_ctx_destroy(r->ctx);
  free(r->lat);
  free(r);
  return fail;
}

int bench_io(const struct bench_env *env)
{
  bench_table_header();
  int fail = 0;
  fail |= io_backend(env, FS_BACKEND_URING, 1, "uring", 1);
  fail |= io_backend(env, FS_BACKEND_URING, 0, "uring", 0);
  fail |= io_backend(env, FS_BACKEND_PSYNC, 0, "psync", 1);
  char path[4096];
  snprintf(path, sizeof path, "%s/io-bench.dat", env->dir);
  if (!env->keep)
    remove(path);
  printf("\n");
  return fail;
}
