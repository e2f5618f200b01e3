/*
 * test_faulty.c - the fault-injecting backend (fs_faulty_*): injected errors, short and
 * misdirected transfers, rule counting and seeding, and simulated power loss.
 *
 * Every case runs twice: faulty wrapping psync, and faulty wrapping uring (skipped when
 * io_uring is unavailable). Contents are checked through plain descriptors opened by the test,
 * independent of the ctx under test.
 */
#include "tutil.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK 4096u
#define SEC 512u

struct inner_kind { int backend; const char *name; };
static struct inner_kind g_psync = {FS_BACKEND_PSYNC, "psync"};
static struct inner_kind g_uring = {FS_BACKEND_URING, "uring"};
static int g_have_uring;

/* ------------------------------------------------------------------------------------------- */
/* Helpers */

static struct fs_ctx *fctx_new(void **state, uint64_t seed)
{
  const struct inner_kind *k = *state;
  if (k->backend == FS_BACKEND_URING && !g_have_uring)
    skip();
  struct fs_ctx_opts o = {.backend = k->backend};
  struct fs_ctx *inner = NULL, *fc = NULL;
  assert_int_equal(fs_ctx_create(&o, &inner), JDB_OK);
  assert_int_equal(fs_faulty_create(inner, seed, &fc), JDB_OK);
  assert_string_equal(fs_ctx_backend_name(fc), "faulty");
  return fc;
}




static struct fs_file *open_ok(struct fs_ctx *ctx, const char *path, unsigned flags)
{
  struct fs_file *f = NULL;
  assert_int_equal(fs_file_open(ctx, path, flags, &f), JDB_OK);
  return f;
}

/* Read [off, off+len) through a descriptor of our own (zeros past the end). */
static void plain_read(const char *path, uint64_t off, void *buf, size_t len)
{
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  memset(buf, 0, len);
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
    assert_true(r >= 0);
    if (r == 0)
      break;
    got += (size_t)r;
  }
  close(fd);
}

static int plain_block_is(const char *path, uint64_t blk, uint64_t tag)
{
  uint8_t b[BLK];
  plain_read(path, blk * BLK, b, BLK);
  return tutil_pat_check(b, BLK, tag);
}

static int plain_block_zero(const char *path, uint64_t blk)
{
  uint8_t b[BLK], z[BLK] = {0};
  plain_read(path, blk * BLK, b, BLK);
  return memcmp(b, z, BLK) == 0;
}

static int write_blk(struct fs_ctx *ctx, struct fs_file *f, uint64_t blk, uint64_t tag)
{
  uint8_t *b = tutil_abuf(BLK);
  tutil_pat_fill(b, BLK, tag);
  int rc = fs_write(ctx, f, b, BLK, blk * BLK);
  free(b);
  return rc;
}

static int write_sync_blk(struct fs_ctx *ctx, struct fs_file *f, uint64_t blk, uint64_t tag)
{
  uint8_t *b = tutil_abuf(BLK);
  tutil_pat_fill(b, BLK, tag);
  int rc = fs_write_sync(ctx, f, b, BLK, blk * BLK);
  free(b);
  return rc;
}

static int read_blk_is(struct fs_ctx *ctx, struct fs_file *f, uint64_t blk, uint64_t tag)
{
  uint8_t *b = tutil_abuf(BLK);
  uint32_t got = 0;
  int rc = fs_read(ctx, f, b, BLK, blk * BLK, &got);
  int ok = rc == JDB_OK && got == BLK && tutil_pat_check(b, BLK, tag);
  free(b);
  return ok;
}

static void add_rule(struct fs_ctx *ctx, unsigned kind, unsigned targets, uint64_t at,
                     uint64_t count)
{
  struct fs_fault_rule r = {.kind = kind, .targets = targets, .at = at, .count = count};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
}

/* ------------------------------------------------------------------------------------------- */
/* Injected errors */

static void test_rules(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 1);
  struct fs_fault_rule r = {0};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_EINVAL);            /* no kind */
  r.kind = 99;
  r.at = 1;
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_EINVAL);
  r.kind = FS_FAULT_CRASH;                                               /* no policy */
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_EINVAL);
  r.kind = FS_FAULT_EIO;
  r.at = 0;                                                              /* never fires */
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_EINVAL);
  assert_int_equal(fs_faulty_add_rule(ctx, NULL), JDB_EINVAL);
  r.at = 1000;
  for (int i = 0; i < 16; i++)
    assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_ENOMEM);
  fs_faulty_clear_rules(ctx);
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  fs_faulty_clear_rules(ctx);
  fs_ctx_destroy(ctx);
  struct fs_ctx *x = NULL;
  assert_int_equal(fs_faulty_create(NULL, 1, &x), JDB_EINVAL);
}

static void test_data_faults(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 2);
  const char *dir = tutil_tmpdir("faulty_data");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);

  /* EIO at the 3rd write: that one fails and is not performed, the others land. */
  add_rule(ctx, FS_FAULT_EIO, FS_FT_WRITE, 3, 0);
  for (uint64_t i = 0; i < 5; i++)
    assert_int_equal(write_blk(ctx, f, i, 10 + i), i == 2 ? JDB_EIO : JDB_OK);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_WRITE), 5);
  for (uint64_t i = 0; i < 5; i++)
    assert_true(i == 2 ? plain_block_zero(p, i) : plain_block_is(p, i, 10 + i));
  fs_faulty_clear_rules(ctx);

  /* ENOSPC at the 2nd read; count covers two ops in a row. */
  add_rule(ctx, FS_FAULT_ENOSPC, FS_FT_READ, 2, 2);
  uint8_t *b = tutil_abuf(BLK);
  assert_int_equal(fs_read(ctx, f, b, BLK, 0, NULL), JDB_OK);
  uint32_t got = 77;
  assert_int_equal(fs_read(ctx, f, b, BLK, 0, &got), JDB_ENOSPC);
  assert_int_equal(got, 0);
  assert_int_equal(fs_read(ctx, f, b, BLK, 0, NULL), JDB_ENOSPC);
  assert_int_equal(fs_read(ctx, f, b, BLK, 0, NULL), JDB_OK);
  assert_true(tutil_pat_check(b, BLK, 10));
  assert_int_equal(fs_faulty_count(ctx, FS_FT_READ), 4);
  fs_faulty_clear_rules(ctx);

  /* Through fs_submit / fs_wait: the raw -errno and its translation. */
  add_rule(ctx, FS_FAULT_ENOSPC, FS_FT_WRITE, 1, 0);
  struct fs_op op;
  tutil_pat_fill(b, BLK, 99);
  fs_op_prep_write(&op, f, b, BLK, 7 * BLK);
  assert_int_equal(fs_submit(ctx, &op), JDB_OK);
  assert_int_equal(fs_wait(ctx, &op), JDB_ENOSPC);
  assert_int_equal(op.result, -ENOSPC);
  assert_int_equal(fs_op_error(&op), JDB_ENOSPC);
  assert_int_equal(fs_write(ctx, f, b, BLK, 7 * BLK), JDB_OK);   /* fired once */
  fs_faulty_clear_rules(ctx);

  /* Syncs. */
  add_rule(ctx, FS_FAULT_EIO, FS_FT_SYNC, 1, 2);
  assert_int_equal(fs_sync(ctx, f), JDB_EIO);
  struct fs_op s;
  fs_op_prep_sync(&s, f, 1);
  assert_int_equal(fs_submit(ctx, &s), JDB_OK);
  assert_int_equal(fs_wait(ctx, &s), JDB_EIO);
  assert_int_equal(s.result, -EIO);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  fs_faulty_clear_rules(ctx);

  /* targets 0 means every kind of op; the first rule that fires decides. */
  uint64_t seen = fs_faulty_count(ctx, FS_FT_ALL);
  add_rule(ctx, FS_FAULT_ENOSPC, 0, 2, 0);
  add_rule(ctx, FS_FAULT_EIO, FS_FT_READ, 1, 0);
  assert_int_equal(fs_read(ctx, f, b, BLK, 0, NULL), JDB_EIO);     /* rule 2 fires */
  assert_int_equal(fs_sync(ctx, f), JDB_ENOSPC);                   /* rule 1 fires */
  assert_int_equal(fs_read(ctx, f, b, BLK, 0, NULL), JDB_OK);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_ALL), seen + 3);
  fs_faulty_clear_rules(ctx);

  struct fs_metrics m;
  fs_metrics_get(ctx, &m);
  assert_true(m.op[FS_OP_WRITE].errors >= 2);
  assert_true(m.op[FS_OP_READ].errors >= 3);
  assert_int_equal(fs_inflight(ctx), 0);
  free(b);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_file_faults(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 3);
  const char *dir = tutil_tmpdir("faulty_file");
  char p[4096], q[4096], sub[4096];
  tutil_path(p, sizeof p, dir, "a");
  tutil_path(q, sizeof q, dir, "b");
  tutil_path(sub, sizeof sub, dir, "sub");
  struct stat st;

  add_rule(ctx, FS_FAULT_EIO, FS_FT_OPEN, 1, 0);
  struct fs_file *f = (struct fs_file *)1;
  assert_int_equal(fs_file_open(ctx, p, FS_O_CREATE, &f), JDB_EIO);
  assert_null(f);
  assert_int_not_equal(stat(p, &st), 0);                  /* nothing was created */
  f = open_ok(ctx, p, FS_O_CREATE);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_OPEN), 2);

  add_rule(ctx, FS_FAULT_ENOSPC, FS_FT_ALLOCATE, 1, 0);
  assert_int_equal(fs_file_allocate(ctx, f, 0, 1 << 16), JDB_ENOSPC);
  uint64_t sz = 1;
  assert_int_equal(fs_file_size(ctx, f, &sz), JDB_OK);
  assert_int_equal(sz, 0);
  assert_int_equal(fs_file_allocate(ctx, f, 0, 1 << 16), JDB_OK);
  assert_int_equal(fs_file_size(ctx, f, &sz), JDB_OK);
  assert_int_equal(sz, 1 << 16);

  add_rule(ctx, FS_FAULT_EIO, FS_FT_TRUNCATE, 1, 0);
  assert_int_equal(fs_file_truncate(ctx, f, 100), JDB_EIO);
  assert_int_equal(fs_file_size(ctx, f, &sz), JDB_OK);
  assert_int_equal(sz, 1 << 16);
  assert_int_equal(fs_file_truncate(ctx, f, 100), JDB_OK);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);

  add_rule(ctx, FS_FAULT_EIO, FS_FT_DIROP, 1, 4);
  assert_int_equal(fs_mkdir(ctx, sub), JDB_EIO);
  assert_int_not_equal(stat(sub, &st), 0);
  assert_int_equal(fs_rename(ctx, p, q), JDB_EIO);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(fs_unlink(ctx, p), JDB_EIO);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(fs_dir_sync(ctx, dir), JDB_EIO);
  assert_int_equal(fs_mkdir(ctx, sub), JDB_OK);
  assert_int_equal(fs_rename(ctx, p, q), JDB_OK);
  assert_int_equal(fs_unlink(ctx, q), JDB_OK);
  assert_int_equal(fs_dir_sync(ctx, dir), JDB_OK);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_DIROP), 8);

  /* SHORT and MISDIRECT mean nothing for metadata calls. */
  fs_faulty_clear_rules(ctx);
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_OPEN | FS_FT_DIROP, 1, 10);
  f = open_ok(ctx, p, FS_O_CREATE);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  assert_int_equal(fs_unlink(ctx, p), JDB_OK);

  assert_int_equal(fs_faulty_count(ctx, FS_FT_ALLOCATE), 2);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_TRUNCATE), 2);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_DATA), 0);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_counts(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 4);
  const char *dir = tutil_tmpdir("faulty_count");
  char p[4096], sub[4096];
  tutil_path(p, sizeof p, dir, "a");
  tutil_path(sub, sizeof sub, dir, "s");
  assert_int_equal(fs_faulty_count(ctx, FS_FT_ALL), 0);
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE);
  char b[64] = "abc";
  for (int i = 0; i < 3; i++)
    assert_int_equal(fs_write(ctx, f, b, 3, (uint64_t)i * 3), JDB_OK);
  for (int i = 0; i < 2; i++)
    assert_int_equal(fs_read(ctx, f, b, 3, 0, NULL), JDB_OK);
  assert_int_equal(fs_write_sync(ctx, f, b, 3, 0), JDB_OK);
  assert_int_equal(fs_file_allocate(ctx, f, 0, 4096), JDB_OK);
  assert_int_equal(fs_file_truncate(ctx, f, 10), JDB_OK);
  assert_int_equal(fs_mkdir(ctx, sub), JDB_OK);
  assert_int_equal(fs_dir_sync(ctx, sub), JDB_OK);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_WRITE), 4);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_READ), 2);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_SYNC), 1);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_DATA), 7);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_OPEN), 1);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_ALLOCATE | FS_FT_TRUNCATE), 2);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_DIROP), 2);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_ALL), 12);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* The same seed gives the same faults; another seed, others. */
static uint64_t prob_run(void **state, uint64_t seed, const char *path, uint8_t *out, int n)
{
  struct fs_ctx *ctx = fctx_new(state, seed);
  struct fs_fault_rule r = {.kind = FS_FAULT_EIO, .targets = FS_FT_WRITE, .probability = 0.3};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  struct fs_fault_rule r2 = {.kind = FS_FAULT_ENOSPC, .targets = FS_FT_READ, .probability = 0.2};
  assert_int_equal(fs_faulty_add_rule(ctx, &r2), JDB_OK);
  struct fs_file *f = open_ok(ctx, path, FS_O_CREATE);
  uint64_t fails = 0;
  char b[16] = "0123456789abcdef";
  for (int i = 0; i < n; i++) {
    int rc = (i % 3) ? fs_write(ctx, f, b, 16, (uint64_t)i * 16)
                     : fs_read(ctx, f, b, 16, 0, NULL);
    out[i] = (uint8_t)(rc == JDB_OK ? 0 : rc == JDB_EIO ? 1 : rc == JDB_ENOSPC ? 2 : 3);
    fails += rc != JDB_OK;
  }
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  return fails;
}

static void test_probability_seeded(void **state)
{
  const char *dir = tutil_tmpdir("faulty_prob");
  char p[4096];
  tutil_path(p, sizeof p, dir, "a");
  enum { N = 300 };
  uint8_t a[N], b[N], c[N];
  uint64_t seed = tutil_seed();
  uint64_t fa = prob_run(state, seed, p, a, N);
  uint64_t fb = prob_run(state, seed, p, b, N);
  prob_run(state, seed + 1, p, c, N);
  assert_int_equal(fa, fb);
  assert_memory_equal(a, b, N);
  assert_memory_not_equal(a, c, N);
  for (int i = 0; i < N; i++)
    assert_true(a[i] <= 2);
  /* About 0.3 * 200 + 0.2 * 100 = 80 expected. */
  assert_true(fa > 40 && fa < 130);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Short and misdirected transfers */

static void test_short(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 5);
  const char *dir = tutil_tmpdir("faulty_short");
  char p[4096], q[4096];
  tutil_path(p, sizeof p, dir, "d");
  tutil_path(q, sizeof q, dir, "b");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  uint8_t *b = tutil_abuf(64 * 1024), *r = tutil_abuf(64 * 1024);

  /* Writes shortened five times in a row still land whole. */
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_WRITE, 1, 5);
  tutil_pat_fill(b, 64 * 1024, 1);
  assert_int_equal(fs_write(ctx, f, b, 64 * 1024, 0), JDB_OK);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_WRITE), 6);
  plain_read(p, 0, r, 64 * 1024);
  assert_memory_equal(r, b, 64 * 1024);
  struct fs_metrics m;
  fs_metrics_get(ctx, &m);
  assert_true(m.op[FS_OP_WRITE].retries > 0);
  assert_int_equal(m.op[FS_OP_WRITE].ops, 1);
  assert_int_equal(m.op[FS_OP_WRITE].bytes, 64 * 1024);
  fs_faulty_clear_rules(ctx);

  /* Reads too; the op's result is the whole length. */
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_READ, 1, 3);
  memset(r, 0, 64 * 1024);
  struct fs_op op;
  fs_op_prep_read(&op, f, r, 64 * 1024, 0);
  assert_int_equal(fs_submit(ctx, &op), JDB_OK);
  assert_int_equal(fs_wait(ctx, &op), JDB_OK);
  assert_int_equal(op.result, 64 * 1024);
  assert_memory_equal(r, b, 64 * 1024);
  fs_metrics_get(ctx, &m);
  assert_true(m.op[FS_OP_READ].retries > 0);
  fs_faulty_clear_rules(ctx);

  /* A single direct page cannot be halved: still whole. */
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_READ | FS_FT_WRITE, 1, 2);
  tutil_pat_fill(b, BLK, 2);
  assert_int_equal(fs_write(ctx, f, b, BLK, 20 * BLK), JDB_OK);
  assert_true(read_blk_is(ctx, f, 20, 2));
  fs_faulty_clear_rules(ctx);

  /* Odd sizes on a buffered file. */
  struct fs_file *g = open_ok(ctx, q, FS_O_CREATE);
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_READ | FS_FT_WRITE, 1, 6);
  tutil_pat_fill(b, 1001, 3);
  assert_int_equal(fs_write(ctx, g, b + 1, 1001, 13), JDB_OK);
  uint32_t got = 0;
  memset(r, 0, 2000);
  assert_int_equal(fs_read(ctx, g, r + 3, 1001, 13, &got), JDB_OK);
  assert_int_equal(got, 1001);
  assert_memory_equal(r + 3, b + 1, 1001);
  fs_faulty_clear_rules(ctx);
  assert_int_equal(fs_sync(ctx, g), JDB_OK);
  assert_int_equal(fs_file_close(ctx, g), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);

  /* SHORT on the head of a write -> fdatasync chain: success, and durable. */
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_WRITE, 1, 2);
  tutil_pat_fill(b, 32 * 1024, 4);
  assert_int_equal(fs_write_sync(ctx, f, b, 32 * 1024, 32 * BLK), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  fs_faulty_clear_rules(ctx);
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 0);
  plain_read(p, 32 * BLK, r, 32 * 1024);
  assert_memory_equal(r, b, 32 * 1024);
  fs_faulty_revive(ctx);
  assert_int_equal(fs_inflight(ctx), 0);

  /* A transfer that never makes progress gives up with JDB_EIO after a bounded number of
     attempts; a chain behind it is canceled. */
  add_rule(ctx, FS_FAULT_SHORT, FS_FT_WRITE, 1, 100000);
  uint64_t before = fs_faulty_count(ctx, FS_FT_WRITE);
  assert_int_equal(fs_write(ctx, f, b, BLK, 40 * BLK), JDB_EIO);
  uint64_t attempts = fs_faulty_count(ctx, FS_FT_WRITE) - before;
  assert_true(attempts > 8 && attempts < 1000);
  uint64_t syncs = fs_faulty_count(ctx, FS_FT_SYNC);
  struct fs_op w, s;
  fs_op_prep_write(&w, f, b, BLK, 40 * BLK);
  fs_op_prep_sync(&s, f, 0);
  struct fs_op *ch[2] = {&w, &s};
  assert_int_equal(fs_submit_chain(ctx, ch, 2), JDB_OK);
  assert_int_equal(fs_wait(ctx, &w), JDB_EIO);
  assert_int_equal(fs_wait(ctx, &s), JDB_EIO);
  assert_int_equal(s.result, -ECANCELED);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_SYNC), syncs);     /* the sync never ran */
  fs_faulty_clear_rules(ctx);
  assert_int_equal(fs_inflight(ctx), 0);

  free(b);
  free(r);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_misdirect(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 6);
  const char *dir = tutil_tmpdir("faulty_mis");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  for (uint64_t i = 0; i < 8; i++)
    assert_int_equal(write_blk(ctx, f, i, 10 + i), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);

  add_rule(ctx, FS_FAULT_MISDIRECT, FS_FT_WRITE, 1, 0);
  assert_int_equal(write_blk(ctx, f, 1, 100), JDB_OK);      /* reported as a success */
  assert_true(plain_block_is(p, 1, 11));                    /* intended place: old data */
  assert_true(plain_block_is(p, 2, 100));                   /* landed 4096 further */
  assert_true(read_blk_is(ctx, f, 1, 11));
  assert_true(read_blk_is(ctx, f, 2, 100));
  fs_faulty_clear_rules(ctx);

  struct fs_fault_rule r = {.kind = FS_FAULT_MISDIRECT, .targets = FS_FT_WRITE | FS_FT_READ,
                            .at = 1, .count = 3, .misdirect_delta = -2 * (int64_t)BLK};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  assert_true(read_blk_is(ctx, f, 3, 13));                  /* reads are not misdirected */
  assert_int_equal(write_blk(ctx, f, 6, 101), JDB_OK);
  assert_true(plain_block_is(p, 6, 16));
  assert_true(plain_block_is(p, 4, 101));
  assert_int_equal(write_blk(ctx, f, 0, 102), JDB_OK);      /* would land before 0: +2 pages */
  assert_true(plain_block_is(p, 0, 10));
  assert_true(plain_block_is(p, 2, 102));
  fs_faulty_clear_rules(ctx);

  /* A misdirected write is unsynced where it landed: a crash restores that place. */
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  add_rule(ctx, FS_FAULT_MISDIRECT, FS_FT_WRITE, 1, 0);
  assert_int_equal(write_blk(ctx, f, 5, 103), JDB_OK);
  assert_true(plain_block_is(p, 6, 103));
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 1);
  assert_true(plain_block_is(p, 5, 15));
  assert_true(plain_block_is(p, 6, 16));
  fs_faulty_revive(ctx);

  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Chains */

static void test_chain_faults(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 7);
  const char *dir = tutil_tmpdir("faulty_chain");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  uint8_t *b = tutil_abuf(2 * BLK);

  /* EIO on the head write: the write fails, the linked sync is canceled (-ECANCELED, which
     fs_op_error reports as JDB_EIO), nothing is written and nothing needs a sync. */
  add_rule(ctx, FS_FAULT_EIO, FS_FT_WRITE, 1, 0);
  struct fs_op w, s;
  tutil_pat_fill(b, BLK, 1);
  fs_op_prep_write(&w, f, b, BLK, 0);
  fs_op_prep_sync(&s, f, 0);
  struct fs_op *ch[2] = {&w, &s};
  assert_int_equal(fs_submit_chain(ctx, ch, 2), JDB_OK);
  assert_int_equal(fs_wait(ctx, &s), JDB_EIO);
  assert_int_equal(fs_wait(ctx, &w), JDB_EIO);
  assert_int_equal(w.result, -EIO);
  assert_int_equal(s.result, -ECANCELED);
  assert_int_equal(fs_op_error(&s), JDB_EIO);
  assert_int_equal(fs_faulty_count(ctx, FS_FT_SYNC), 0);    /* the sync never ran */
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  assert_true(plain_block_zero(p, 0));
  fs_faulty_clear_rules(ctx);

  add_rule(ctx, FS_FAULT_EIO, FS_FT_WRITE, 1, 0);
  assert_int_equal(write_sync_blk(ctx, f, 0, 2), JDB_EIO);
  assert_int_equal(write_sync_blk(ctx, f, 0, 3), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  fs_faulty_clear_rules(ctx);

  /* EIO in the middle: the ops before it complete, the ops after it are canceled. */
  add_rule(ctx, FS_FAULT_EIO, FS_FT_WRITE, 2, 0);
  struct fs_op w1, w2, w3, s2;
  tutil_pat_fill(b, BLK, 4);
  tutil_pat_fill(b + BLK, BLK, 5);
  fs_op_prep_write(&w1, f, b, BLK, 1 * BLK);
  fs_op_prep_write(&w2, f, b + BLK, BLK, 2 * BLK);
  fs_op_prep_write(&w3, f, b, BLK, 3 * BLK);
  fs_op_prep_sync(&s2, f, 0);
  struct fs_op *ch4[4] = {&w1, &w2, &w3, &s2};
  assert_int_equal(fs_submit_chain(ctx, ch4, 4), JDB_OK);
  assert_int_equal(fs_wait(ctx, &w1), JDB_OK);
  assert_int_equal(fs_wait(ctx, &s2), JDB_EIO);
  assert_int_equal(w2.result, -EIO);
  assert_int_equal(w3.result, -ECANCELED);
  assert_int_equal(s2.result, -ECANCELED);
  assert_int_equal(fs_inflight(ctx), 0);
  assert_true(plain_block_is(p, 1, 4));
  assert_true(plain_block_zero(p, 2));
  assert_true(plain_block_zero(p, 3));
  assert_int_equal(fs_faulty_unsynced(ctx), 1);             /* w1: its sync never ran */
  fs_faulty_clear_rules(ctx);

  /* ENOSPC on the sync of a chain. */
  add_rule(ctx, FS_FAULT_ENOSPC, FS_FT_SYNC, 1, 0);
  assert_int_equal(write_sync_blk(ctx, f, 4, 6), JDB_ENOSPC);
  assert_true(plain_block_is(p, 4, 6));
  assert_int_equal(fs_faulty_unsynced(ctx), 2);
  fs_faulty_clear_rules(ctx);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);

  free(b);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Random SHORT and EIO faults over many chains in flight together: every op ends whole or with
   its error, canceled followers never run, and the bytes on disk match the successes. */
static void test_random_stress(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, tutil_seed());
  const char *dir = tutil_tmpdir("faulty_stress");
  char p[4096];
  tutil_path(p, sizeof p, dir, "b");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE);
  struct fs_fault_rule sh = {.kind = FS_FAULT_SHORT, .targets = FS_FT_READ | FS_FT_WRITE,
                             .probability = 0.3};
  struct fs_fault_rule eio = {.kind = FS_FAULT_EIO, .targets = FS_FT_DATA, .probability = 0.03};
  assert_int_equal(fs_faulty_add_rule(ctx, &sh), JDB_OK);
  assert_int_equal(fs_faulty_add_rule(ctx, &eio), JDB_OK);

  enum { NC = 120, SZ = 3001 };
  struct chain { struct fs_op w1, w2, s; uint8_t d1[SZ], d2[SZ]; } *c = calloc(NC, sizeof *c);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < NC; i++) {
      tutil_pat_fill(c[i].d1, SZ, (uint64_t)(round * 1000 + 2 * i));
      tutil_pat_fill(c[i].d2, SZ, (uint64_t)(round * 1000 + 2 * i + 1));
      fs_op_prep_write(&c[i].w1, f, c[i].d1, SZ, (uint64_t)i * 2 * SZ);
      fs_op_prep_write(&c[i].w2, f, c[i].d2, SZ, (uint64_t)i * 2 * SZ + SZ);
      fs_op_prep_sync(&c[i].s, f, 0);
      struct fs_op *ch[3] = {&c[i].w1, &c[i].w2, &c[i].s};
      assert_int_equal(fs_submit_chain(ctx, ch, 3), JDB_OK);
    }
    while (fs_inflight(ctx) > 0) {
      assert_int_equal(fs_flush(ctx), JDB_OK);
      assert_true(fs_poll(ctx, 1) >= 0);
    }
    uint8_t *disk = malloc((size_t)NC * 2 * SZ);
    plain_read(p, 0, disk, (size_t)NC * 2 * SZ);
    for (int i = 0; i < NC; i++) {
      struct fs_op *ops[3] = {&c[i].w1, &c[i].w2, &c[i].s};
      int failed = 0;
      for (int k = 0; k < 3; k++) {
        assert_int_equal(ops[k]->state, FS_OP_DONE);
        if (failed) {
          assert_int_equal(ops[k]->result, -ECANCELED);
        } else if (ops[k]->result < 0) {
          assert_int_equal(ops[k]->result, -EIO);
          failed = 1;
        } else {
          assert_int_equal(ops[k]->result, k < 2 ? SZ : 0);
        }
      }
      if (c[i].w1.result == SZ)
        assert_memory_equal(disk + (size_t)i * 2 * SZ, c[i].d1, SZ);
      if (c[i].w2.result == SZ)
        assert_memory_equal(disk + (size_t)i * 2 * SZ + SZ, c[i].d2, SZ);
      else if (c[i].w2.result == -ECANCELED)     /* never ran */
        assert_memory_not_equal(disk + (size_t)i * 2 * SZ + SZ, c[i].d2, SZ);
    }
    free(disk);
  }
  struct fs_metrics m;
  fs_metrics_get(ctx, &m);
  assert_true(m.op[FS_OP_WRITE].retries > 0);
  assert_true(m.op[FS_OP_WRITE].errors > 0);
  free(c);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Fibers waiting in fs_wait while their ops are shortened, retried and failed at random. */
struct ffib {
  struct fs_ctx *ctx;
  struct fs_file *f;
  uint8_t *buf;
  uint32_t id;
  int write_rc, read_rc, data_ok, finished;
};

static void ffib_main(void *arg)
{
  struct ffib *x = arg;
  tutil_pat_fill(x->buf, 2 * BLK, 7000 + x->id);
  x->write_rc = fs_write_sync(x->ctx, x->f, x->buf, 2 * BLK, (uint64_t)x->id * 2 * BLK);
  coro_yield();
  memset(x->buf, 0, 2 * BLK);
  uint32_t got = 0;
  x->read_rc = fs_read(x->ctx, x->f, x->buf, 2 * BLK, (uint64_t)x->id * 2 * BLK, &got);
  x->data_ok = got == 2 * BLK && tutil_pat_check(x->buf, 2 * BLK, 7000 + x->id);
  x->finished = 1;
}

static void test_fibers_with_faults(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, tutil_seed() + 1);
  const char *dir = tutil_tmpdir("faulty_fib");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  struct fs_fault_rule sh = {.kind = FS_FAULT_SHORT, .targets = FS_FT_READ | FS_FT_WRITE,
                             .probability = 0.3};
  struct fs_fault_rule eio = {.kind = FS_FAULT_EIO, .targets = FS_FT_SYNC, .probability = 0.05};
  assert_int_equal(fs_faulty_add_rule(ctx, &sh), JDB_OK);
  assert_int_equal(fs_faulty_add_rule(ctx, &eio), JDB_OK);
  enum { N = 400 };
  struct ffib *x = calloc(N, sizeof *x);
  uint8_t *bufs = tutil_abuf((size_t)N * 2 * BLK);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  for (uint32_t i = 0; i < N; i++) {
    x[i] = (struct ffib){.ctx = ctx, .f = f, .buf = bufs + (size_t)i * 2 * BLK, .id = i};
    assert_int_equal(coro_spawn(s, ffib_main, &x[i], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  assert_int_equal(coro_sched_live(s), 0);
  coro_sched_destroy(s);
  int sync_failed = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(x[i].finished, 1);
    assert_true(x[i].write_rc == JDB_OK || x[i].write_rc == JDB_EIO);
    sync_failed += x[i].write_rc != JDB_OK;
    assert_int_equal(x[i].read_rc, JDB_OK);
    assert_int_equal(x[i].data_ok, 1);    /* an EIO here is the sync's: the write landed */
  }
  assert_true(sync_failed > 0 && sync_failed < N / 4);
  struct fs_metrics m;
  fs_metrics_get(ctx, &m);
  assert_true(m.op[FS_OP_WRITE].retries > 0);
  assert_true(m.op[FS_OP_READ].retries > 0);
  assert_int_equal(fs_inflight(ctx), 0);
  free(bufs);
  free(x);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Power loss */

/* 16 pages: base (tags 0..15) synced; A (100+i) over 0..7 synced; then unsynced: B (200+i)
   over 4..11 and C (300+i) over 12..15. */
static struct fs_file *crash_setup(struct fs_ctx *ctx, const char *path)
{
  struct fs_file *f = open_ok(ctx, path, FS_O_CREATE | FS_O_DIRECT);
  for (uint64_t i = 0; i < 16; i++)
    assert_int_equal(write_blk(ctx, f, i, i), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  for (uint64_t i = 0; i < 8; i++)
    assert_int_equal(write_blk(ctx, f, i, 100 + i), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  for (uint64_t i = 4; i < 12; i++)
    assert_int_equal(write_blk(ctx, f, i, 200 + i), JDB_OK);
  for (uint64_t i = 12; i < 16; i++)
    assert_int_equal(write_blk(ctx, f, i, 300 + i), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 12);
  return f;
}

static void expect_all_eio(struct fs_ctx *ctx, struct fs_file *f, const char *dir)
{
  char p[4096], q[4096];
  tutil_path(p, sizeof p, dir, "x");
  tutil_path(q, sizeof q, dir, "y");
  uint8_t *b = tutil_abuf(BLK);
  struct fs_file *g = (struct fs_file *)1;
  uint64_t sz;
  if (f) {
    assert_int_equal(fs_write(ctx, f, b, BLK, 0), JDB_EIO);
    assert_int_equal(fs_read(ctx, f, b, BLK, 0, NULL), JDB_EIO);
    assert_int_equal(fs_sync(ctx, f), JDB_EIO);
    assert_int_equal(fs_write_sync(ctx, f, b, BLK, 0), JDB_EIO);
    struct fs_op op;
    fs_op_prep_read(&op, f, b, BLK, 0);
    assert_int_equal(fs_submit(ctx, &op), JDB_OK);
    assert_int_equal(fs_wait(ctx, &op), JDB_EIO);
    assert_int_equal(op.result, -EIO);
    assert_int_equal(fs_file_allocate(ctx, f, 0, BLK), JDB_EIO);
    assert_int_equal(fs_file_truncate(ctx, f, 0), JDB_EIO);
    assert_int_equal(fs_file_size(ctx, f, &sz), JDB_EIO);
  }
  assert_int_equal(fs_file_open(ctx, p, FS_O_CREATE, &g), JDB_EIO);
  assert_null(g);
  assert_int_equal(fs_mkdir(ctx, p), JDB_EIO);
  assert_int_equal(fs_unlink(ctx, p), JDB_EIO);
  assert_int_equal(fs_rename(ctx, p, q), JDB_EIO);
  assert_int_equal(fs_dir_sync(ctx, dir), JDB_EIO);
  assert_int_equal(fs_inflight(ctx), 0);
  free(b);
}

static void test_crash_drop(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 8);
  const char *dir = tutil_tmpdir("faulty_drop");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = crash_setup(ctx, p);
  /* A write extending the file, also unsynced. */
  assert_int_equal(write_blk(ctx, f, 20, 400), JDB_OK);
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 13);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  expect_all_eio(ctx, f, dir);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);     /* closing still works */

  for (uint64_t i = 0; i < 8; i++)
    assert_true(plain_block_is(p, i, 100 + i));       /* synced */
  for (uint64_t i = 8; i < 16; i++)
    assert_true(plain_block_is(p, i, i));             /* unsynced: old contents */
  assert_true(plain_block_zero(p, 20));               /* the extension leaves zeros */

  /* Revive and reopen in the same ctx; and from a fresh ctx on the same file. */
  fs_faulty_revive(ctx);
  f = open_ok(ctx, p, FS_O_DIRECT);
  for (uint64_t i = 0; i < 16; i++)
    assert_true(read_blk_is(ctx, f, i, i < 8 ? 100 + i : i));
  assert_int_equal(write_sync_blk(ctx, f, 1, 500), JDB_OK);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_ctx_destroy(ctx);

  ctx = fctx_new(state, 9);
  f = open_ok(ctx, p, FS_O_DIRECT | FS_O_RDONLY);
  for (uint64_t i = 0; i < 16; i++)
    assert_true(read_blk_is(ctx, f, i, i == 1 ? 500 : i < 8 ? 100 + i : i));
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  /* A crash with nothing unsynced loses nothing, and still fails everything after it. */
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 0);
  expect_all_eio(ctx, NULL, dir);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_crash_keep(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 10);
  const char *dir = tutil_tmpdir("faulty_keep");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = crash_setup(ctx, p);
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_KEEP), 0);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  for (uint64_t i = 0; i < 16; i++)
    assert_true(plain_block_is(p, i, i < 4 ? 100 + i : i < 12 ? 200 + i : 300 + i));
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Which source a 512-byte sector of `got` matches: 0 = a, 1 = b, -1 neither. */
static int sector_src(const uint8_t *got, const uint8_t *a, const uint8_t *b)
{
  if (memcmp(got, a, SEC) == 0)
    return 0;
  if (memcmp(got, b, SEC) == 0)
    return 1;
  return -1;
}

static void test_crash_tear(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, tutil_seed());
  const char *dir = tutil_tmpdir("faulty_tear");
  char p[4096], q[4096];
  tutil_path(p, sizeof p, dir, "d");
  tutil_path(q, sizeof q, dir, "b");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  enum { N = 32 };
  for (uint64_t i = 0; i < N; i++)
    assert_int_equal(write_blk(ctx, f, i, i), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  for (uint64_t i = 0; i < N; i++)
    assert_int_equal(write_blk(ctx, f, i, 1000 + i), JDB_OK);

  /* Unaligned unsynced write on a buffered file. */
  struct fs_file *g = open_ok(ctx, q, FS_O_CREATE);
  uint8_t base[4096], nw[2000], got[4096];
  tutil_pat_fill(base, sizeof base, 77);
  assert_int_equal(fs_write(ctx, g, base, sizeof base, 0), JDB_OK);
  assert_int_equal(fs_sync(ctx, g), JDB_OK);
  tutil_pat_fill(nw, sizeof nw, 78);
  assert_int_equal(fs_write(ctx, g, nw, sizeof nw, 100), JDB_OK);

  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_TEAR), N + 1);
  int seen[8] = {0};
  for (uint64_t i = 0; i < N; i++) {
    uint8_t old[BLK], new_[BLK], now[BLK];
    tutil_pat_fill(old, BLK, i);
    tutil_pat_fill(new_, BLK, 1000 + i);
    plain_read(p, i * BLK, now, BLK);
    /* A prefix of new sectors (at least one, not all), then old ones, byte for byte. */
    unsigned k = 0;
    while (k < BLK / SEC && sector_src(now + k * SEC, new_ + k * SEC, old + k * SEC) == 0)
      k++;
    assert_true(k >= 1 && k < BLK / SEC);
    seen[k]++;
    for (unsigned j = k; j < BLK / SEC; j++)
      assert_int_equal(sector_src(now + j * SEC, new_ + j * SEC, old + j * SEC), 1);
  }
  int variety = 0;
  for (int k = 1; k < 8; k++)
    variety += seen[k] > 0;
  assert_true(variety >= 3);     /* the tear point is random */

  plain_read(q, 0, got, sizeof got);
  size_t cut = 100;
  while (cut < 2100 && got[cut] == nw[cut - 100])
    cut++;
  /* New bytes end at a sector boundary (or where the new data happens to equal the old). */
  size_t bound = (cut / SEC) * SEC;
  assert_true(bound >= SEC && bound < 2100);
  assert_memory_equal(got, base, 100);
  assert_memory_equal(got + 100, nw, bound - 100);
  assert_memory_equal(got + bound, base + bound, sizeof base - bound);

  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  assert_int_equal(fs_file_close(ctx, g), JDB_OK);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* FS_CRASH_RANDOM over many seeds and overlapping writes. Every write is random data at
   sector-aligned offsets. Expected final state (the model): start from the synced contents and
   apply the unsynced writes in issue order, each keeping only a prefix of its sectors (none,
   all, or some). So every sector holds the data of the newest write that kept it, or the synced
   contents. The test infers each write's kept prefix from the result: a sector showing write w
   means w kept it (a lower bound for w's prefix), a sector inside w showing older data means w
   did not keep it (an upper bound); the bounds must agree. An older dropped write that rolled
   back a newer kept one's bytes breaks them. */
#define RW_SECS 48
#define RW_MAX 8

struct rw_write { uint32_t lo, n; uint8_t data[RW_SECS * SEC]; };

static void test_crash_random_model(void **state)
{
  const char *dir = tutil_tmpdir("faulty_rand");
  char p[4096];
  tutil_path(p, sizeof p, dir, "b");
  struct tutil_rng rng;
  tutil_rng_init(&rng, tutil_seed() ^ 0x5eed);
  uint8_t *base = malloc(RW_SECS * SEC), *now = malloc(RW_SECS * SEC);
  struct rw_write *w = malloc(RW_MAX * sizeof *w);
  unsigned outcomes[3] = {0};   /* writes seen dropped / kept whole / torn (unambiguous) */
  for (int round = 0; round < 60; round++) {
    struct fs_ctx *ctx = fctx_new(state, tutil_rng_next(&rng));
    struct fs_file *f = open_ok(ctx, p, FS_O_CREATE);
    assert_int_equal(fs_file_truncate(ctx, f, 0), JDB_OK);
    tutil_rng_fill(&rng, base, RW_SECS * SEC);
    assert_int_equal(fs_write_sync(ctx, f, base, RW_SECS * SEC, 0), JDB_OK);
    unsigned nw = 2 + (unsigned)tutil_rng_below(&rng, RW_MAX - 1);
    for (unsigned i = 0; i < nw; i++) {
      if (i == 1 && round % 2) {
        /* An older write covering the start of a newer, longer one. */
        w[1].lo = w[0].lo;
        w[1].n = w[0].n + 1 + (uint32_t)tutil_rng_below(&rng, 8);
        if (w[1].lo + w[1].n > RW_SECS)
          w[1].n = RW_SECS - w[1].lo;
      } else {
        w[i].n = 1 + (uint32_t)tutil_rng_below(&rng, 16);
        w[i].lo = (uint32_t)tutil_rng_below(&rng, RW_SECS - w[i].n + 1);
      }
      tutil_rng_fill(&rng, w[i].data, w[i].n * SEC);
      assert_int_equal(fs_write(ctx, f, w[i].data, w[i].n * SEC, (uint64_t)w[i].lo * SEC),
                       JDB_OK);
    }
    assert_int_equal(fs_faulty_unsynced(ctx), nw);
    uint64_t lost = fs_faulty_crash(ctx, FS_CRASH_RANDOM);
    assert_true(lost <= nw);
    assert_int_equal(fs_file_close(ctx, f), JDB_OK);
    fs_faulty_revive(ctx);
    fs_ctx_destroy(ctx);

    plain_read(p, 0, now, RW_SECS * SEC);
    uint32_t lb[RW_MAX] = {0}, ub[RW_MAX];
    for (unsigned i = 0; i < nw; i++)
      ub[i] = w[i].n;
    for (uint32_t x = 0; x < RW_SECS; x++) {
      /* The source of sector x: the newest write covering x whose data it shows, else base. */
      int src = -2;
      for (int i = (int)nw - 1; i >= 0 && src == -2; i--)
        if (x >= w[i].lo && x < w[i].lo + w[i].n &&
            memcmp(now + x * SEC, w[i].data + (x - w[i].lo) * SEC, SEC) == 0)
          src = i;
      if (src == -2 && memcmp(now + x * SEC, base + x * SEC, SEC) == 0)
        src = -1;
      if (src == -2)
        fail_msg("round %d: sector %u matches no write and not the synced data", round, x);
      if (src >= 0 && x - w[src].lo + 1 > lb[src])
        lb[src] = x - w[src].lo + 1;
      /* Writes newer than the source that cover x did not keep x. */
      for (unsigned i = (unsigned)(src + 1); i < nw; i++)
        if (x >= w[i].lo && x < w[i].lo + w[i].n && x - w[i].lo < ub[i])
          ub[i] = x - w[i].lo;
    }
    for (unsigned i = 0; i < nw; i++) {
      if (lb[i] > ub[i])
        fail_msg("round %d: write %u [%u,+%u) kept sector %u but not sector %u", round, i,
                 w[i].lo, w[i].n, w[i].lo + lb[i] - 1, w[i].lo + ub[i]);
      if (ub[i] == 0)
        outcomes[0]++;
      else if (lb[i] == w[i].n)
        outcomes[1]++;
      else if (lb[i] == ub[i] && lb[i] > 0)
        outcomes[2]++;
    }
  }
  assert_true(outcomes[0] > 0);
  assert_true(outcomes[1] > 0);
  assert_true(outcomes[2] > 0);
  free(w);
  free(base);
  free(now);
  tutil_rmrf(dir);
}

/* The CRASH rule: power is lost when the n-th matching op is issued. */
static void test_crash_rule(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 11);
  const char *dir = tutil_tmpdir("faulty_crule");
  char p[4096];
  tutil_path(p, sizeof p, dir, "d");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  struct fs_fault_rule r = {.kind = FS_FAULT_CRASH, .targets = FS_FT_WRITE, .at = 5,
                            .crash_policy = FS_CRASH_DROP};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 0, 1), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 1, 2), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 2, 3), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 3, 4), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 4, 5), JDB_EIO);       /* the crash */
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  expect_all_eio(ctx, f, dir);
  assert_true(plain_block_is(p, 0, 1));
  assert_true(plain_block_is(p, 1, 2));
  assert_true(plain_block_zero(p, 2));
  assert_true(plain_block_zero(p, 3));
  assert_true(plain_block_zero(p, 4));
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_faulty_clear_rules(ctx);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);

  /* Crash at the sync of a write -> fdatasync chain: the write linked ahead of it was never
     issued, so it fails too and does not land; earlier synced data stays. */
  ctx = fctx_new(state, 12);
  f = open_ok(ctx, p, FS_O_DIRECT);
  struct fs_fault_rule r2 = {.kind = FS_FAULT_CRASH, .targets = FS_FT_SYNC, .at = 2,
                             .crash_policy = FS_CRASH_DROP};
  assert_int_equal(fs_faulty_add_rule(ctx, &r2), JDB_OK);
  assert_int_equal(write_sync_blk(ctx, f, 5, 6), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 6, 7), JDB_OK);
  assert_int_equal(write_sync_blk(ctx, f, 7, 8), JDB_EIO);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);
  assert_true(plain_block_is(p, 5, 6));
  assert_true(plain_block_zero(p, 6));
  assert_true(plain_block_zero(p, 7));
  expect_all_eio(ctx, f, dir);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);

  /* KEEP at the 3rd write: the unsynced ones before it survive. */
  ctx = fctx_new(state, 13);
  f = open_ok(ctx, p, FS_O_DIRECT);
  struct fs_fault_rule r3 = {.kind = FS_FAULT_CRASH, .targets = FS_FT_WRITE, .at = 3,
                             .crash_policy = FS_CRASH_KEEP};
  assert_int_equal(fs_faulty_add_rule(ctx, &r3), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 8, 9), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 9, 10), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 10, 11), JDB_EIO);
  assert_true(plain_block_is(p, 8, 9));
  assert_true(plain_block_is(p, 9, 10));
  assert_true(plain_block_zero(p, 10));
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);

  /* A CRASH rule on metadata calls: the mkdir fails and the unsynced write is lost. */
  ctx = fctx_new(state, 17);
  f = open_ok(ctx, p, FS_O_DIRECT);
  struct fs_fault_rule r4 = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DIROP, .at = 1,
                             .crash_policy = FS_CRASH_DROP};
  assert_int_equal(fs_faulty_add_rule(ctx, &r4), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 0, 12), JDB_OK);
  char sub[4096];
  tutil_path(sub, sizeof sub, dir, "sub");
  assert_int_equal(fs_mkdir(ctx, sub), JDB_EIO);
  assert_true(plain_block_is(p, 0, 1));
  expect_all_eio(ctx, f, dir);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* A crash waits for the ops in flight (queued, not even flushed here): they complete, and are
   then unsynced writes like any other. */
static void test_crash_inflight(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 16);
  const char *dir = tutil_tmpdir("faulty_infl");
  char p[4096];
  tutil_path(p, sizeof p, dir, "a");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  for (uint64_t i = 0; i < 4; i++)
    assert_int_equal(write_blk(ctx, f, i, i), JDB_OK);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  uint8_t *b = tutil_abuf(4 * BLK);
  struct fs_op w[4];
  for (int i = 0; i < 4; i++) {
    tutil_pat_fill(b + i * BLK, BLK, 50 + (uint64_t)i);
    fs_op_prep_write(&w[i], f, b + i * BLK, BLK, (uint64_t)i * BLK);
    assert_int_equal(fs_submit(ctx, &w[i]), JDB_OK);
  }
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(fs_wait(ctx, &w[i]), JDB_OK);     /* issued before the power cut */
    assert_true(plain_block_is(p, (uint64_t)i, (uint64_t)i));
  }
  assert_int_equal(fs_inflight(ctx), 0);
  free(b);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Which writes a completed fdatasync covers. */
static void test_sync_coverage(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 14);
  const char *dir = tutil_tmpdir("faulty_cover");
  char p[4096], q[4096];
  tutil_path(p, sizeof p, dir, "a");
  tutil_path(q, sizeof q, dir, "b");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  struct fs_file *g = open_ok(ctx, q, FS_O_CREATE | FS_O_DIRECT);
  uint8_t *b = tutil_abuf(4 * BLK);

  /* A write completed before the sync was issued: covered. */
  assert_int_equal(write_blk(ctx, f, 0, 1), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 1);
  assert_int_equal(fs_sync(ctx, f), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);

  /* A write issued after the sync was issued: not covered, even in the same flush. */
  struct fs_op s, w;
  fs_op_prep_sync(&s, f, 0);
  tutil_pat_fill(b, BLK, 2);
  fs_op_prep_write(&w, f, b, BLK, BLK);
  assert_int_equal(fs_submit(ctx, &s), JDB_OK);
  assert_int_equal(fs_submit(ctx, &w), JDB_OK);
  assert_int_equal(fs_wait(ctx, &w), JDB_OK);
  assert_int_equal(fs_wait(ctx, &s), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 1);

  /* A write in flight (not linked) when the sync was issued: not covered either; the sync
     does cover the previous write, which had completed by then. */
  tutil_pat_fill(b + BLK, BLK, 3);
  fs_op_prep_write(&w, f, b + BLK, BLK, 2 * BLK);
  fs_op_prep_sync(&s, f, 0);
  assert_int_equal(fs_submit(ctx, &w), JDB_OK);
  assert_int_equal(fs_submit(ctx, &s), JDB_OK);
  assert_int_equal(fs_wait(ctx, &s), JDB_OK);
  assert_int_equal(fs_wait(ctx, &w), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 1);

  /* A failed sync covers nothing. */
  add_rule(ctx, FS_FAULT_EIO, FS_FT_SYNC, 1, 0);
  assert_int_equal(fs_sync(ctx, f), JDB_EIO);
  assert_int_equal(fs_faulty_unsynced(ctx), 1);
  fs_faulty_clear_rules(ctx);

  /* Writes linked ahead of the sync in a chain: covered; the earlier ones are too. */
  struct fs_op w1, w2, s2;
  tutil_pat_fill(b + 2 * BLK, BLK, 4);
  tutil_pat_fill(b + 3 * BLK, BLK, 5);
  fs_op_prep_write(&w1, f, b + 2 * BLK, BLK, 3 * BLK);
  fs_op_prep_write(&w2, f, b + 3 * BLK, BLK, 4 * BLK);
  fs_op_prep_sync(&s2, f, 0);
  struct fs_op *ch[3] = {&w1, &w2, &s2};
  assert_int_equal(fs_submit_chain(ctx, ch, 3), JDB_OK);
  assert_int_equal(fs_wait(ctx, &s2), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 0);

  /* A sync covers only its own file; a full fsync covers like fdatasync. */
  assert_int_equal(write_blk(ctx, f, 5, 6), JDB_OK);
  assert_int_equal(write_blk(ctx, g, 0, 7), JDB_OK);
  assert_int_equal(fs_sync(ctx, g), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 1);
  assert_int_equal(write_blk(ctx, g, 1, 8), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 6, 9), JDB_OK);
  struct fs_op fs_full;
  fs_op_prep_sync(&fs_full, g, 1);
  assert_int_equal(fs_submit(ctx, &fs_full), JDB_OK);
  assert_int_equal(fs_wait(ctx, &fs_full), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 2);       /* f's pages 5 and 6 */

  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 2);
  assert_true(plain_block_is(p, 0, 1));
  assert_true(plain_block_is(p, 1, 2));
  assert_true(plain_block_is(p, 2, 3));
  assert_true(plain_block_is(p, 3, 4));
  assert_true(plain_block_is(p, 4, 5));
  assert_true(plain_block_zero(p, 5));
  assert_true(plain_block_zero(p, 6));
  assert_true(plain_block_is(q, 0, 7));
  assert_true(plain_block_is(q, 1, 8));
  free(b);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  assert_int_equal(fs_file_close(ctx, g), JDB_OK);
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* A crash drops the unsynced writes of files already closed as well. */
static void test_crash_closed_file(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 15);
  const char *dir = tutil_tmpdir("faulty_closed");
  char p[4096];
  tutil_path(p, sizeof p, dir, "a");
  struct fs_file *f = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  assert_int_equal(write_sync_blk(ctx, f, 0, 1), JDB_OK);
  assert_int_equal(write_blk(ctx, f, 0, 2), JDB_OK);
  assert_int_equal(fs_file_close(ctx, f), JDB_OK);
  assert_true(plain_block_is(p, 0, 2));
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 1);
  assert_true(plain_block_is(p, 0, 1));
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Two handles of one file (the log writes small flushes through a buffered descriptor and large
   ones through an O_DIRECT one): an fdatasync through either covers the writes of both, as the
   kernel's does per inode; and a newer write kept through one handle is never rolled back by an
   older dropped write through the other. Another file's writes stay uncovered. */
static void test_two_handles(void **state)
{
  struct fs_ctx *ctx = fctx_new(state, 16);
  const char *dir = tutil_tmpdir("faulty_handles");
  char p[4096], q[4096];
  tutil_path(p, sizeof p, dir, "a");
  tutil_path(q, sizeof q, dir, "b");
  struct fs_file *d = open_ok(ctx, p, FS_O_CREATE | FS_O_DIRECT);
  struct fs_file *buf = open_ok(ctx, p, 0);
  struct fs_file *other = open_ok(ctx, q, FS_O_CREATE | FS_O_DIRECT);
  for (uint64_t i = 0; i < 4; i++) {
    assert_int_equal(write_sync_blk(ctx, d, i, 100 + i), JDB_OK);
    assert_int_equal(write_sync_blk(ctx, other, i, 100 + i), JDB_OK);
  }
  /* Written through the direct handle, synced through the buffered one. */
  assert_int_equal(write_blk(ctx, d, 0, 200), JDB_OK);
  assert_int_equal(write_blk(ctx, buf, 1, 201), JDB_OK);
  assert_int_equal(write_blk(ctx, other, 0, 202), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 3);
  assert_int_equal(fs_sync(ctx, buf), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 1);        /* only the other file's write */
  /* Block 2: an older write through the buffered handle, a newer one through the direct handle
     linked to a sync on it; block 3: an unsynced write through the buffered handle alone. */
  assert_int_equal(write_blk(ctx, buf, 2, 300), JDB_OK);
  assert_int_equal(write_sync_blk(ctx, d, 2, 301), JDB_OK);
  assert_int_equal(write_blk(ctx, buf, 3, 302), JDB_OK);
  assert_int_equal(fs_faulty_unsynced(ctx), 2);        /* block 3 and the other file's */
  assert_int_equal(fs_faulty_crash(ctx, FS_CRASH_DROP), 2);
  assert_int_equal(fs_file_close(ctx, d), JDB_OK);
  assert_int_equal(fs_file_close(ctx, buf), JDB_OK);
  assert_int_equal(fs_file_close(ctx, other), JDB_OK);
  assert_true(plain_block_is(p, 0, 200));
  assert_true(plain_block_is(p, 1, 201));
  assert_true(plain_block_is(p, 2, 301));
  assert_true(plain_block_is(p, 3, 103));              /* dropped: the old contents */
  assert_true(plain_block_is(q, 0, 100));              /* the other file's write: dropped */
  fs_faulty_revive(ctx);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */

#define BOTH(fn) \
  cmocka_unit_test_prestate(fn, &g_psync), cmocka_unit_test_prestate(fn, &g_uring)

int main(void)
{
  tutil_init();
  struct fs_ctx_opts o = {.backend = FS_BACKEND_URING};
  struct fs_ctx *probe = NULL;
  if (fs_ctx_create(&o, &probe) == JDB_OK) {
    g_have_uring = 1;
    fs_ctx_destroy(probe);
  } else {
    fprintf(stderr, "io_uring unavailable: the uring variants are skipped\n");
  }
  const struct CMUnitTest tests[] = {
    BOTH(test_rules),
    BOTH(test_data_faults),
    BOTH(test_file_faults),
    BOTH(test_counts),
    BOTH(test_probability_seeded),
    BOTH(test_short),
    BOTH(test_misdirect),
    BOTH(test_chain_faults),
    BOTH(test_random_stress),
    BOTH(test_fibers_with_faults),
    BOTH(test_crash_drop),
    BOTH(test_crash_keep),
    BOTH(test_crash_tear),
    BOTH(test_crash_random_model),
    BOTH(test_crash_rule),
    BOTH(test_crash_inflight),
    BOTH(test_sync_coverage),
    BOTH(test_crash_closed_file),
    BOTH(test_two_handles),
  };
  return cmocka_run_group_tests_name("faulty", tests, NULL, NULL);
}
