/*
 * test_wal.c - the shard log (store/wal/wal.h): append/replay round trips, group commit, torn
 * tails, damaged durable records, simulated power loss, error paths and the batch decoder.
 *
 * One binary, run once per backend: argv[1] is "uring" or "psync" (the faulty backend wraps that
 * one where a test injects faults or power loss). Exits 77 when io_uring is unavailable for the
 * "uring" run.
 *
 * Record contents are never stored: record i (1-based) is regenerated from (seed, i) by gen_*,
 * both to append it and to check what replay yields, byte for byte. Replay callbacks never call
 * cmocka asserts (they describe the first mismatch and stop the replay); fibers never do either
 * (they count failures and the test asserts the counts afterwards).
 *
 * Disk images are damaged through plain descriptors opened by the test, after wal_close.
 * JDB_TEST_SEED=<n> repeats a run; T_FILTER=<glob> runs only the matching tests.
 * The kill -9 test (real process crashes) is test_wal_kill.c.
 */
#include "tutil.h"
#include "tutil_fs.h"

#include "coro.h"
#include "fs.h"
#include "jdb.h"
#include "layout.h"
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1ull << 20)

static const char *g_backend = "uring";
/* argv[2] "direct": every flush with O_DIRECT (direct_min 1), so every test also runs the
   whole-block direct writes, the page-cache write of a dirty first block ahead of them, and the
   switches between the two; else the default (small flushes buffered, large ones direct). */
static uint32_t g_direct_min;

static int t_wal_open(struct fs_ctx *ctx, const char *dir, const struct wal_opts *o,
                      struct wal **out)
{
  if (!o)
    return wal_open(ctx, dir, o, out);
  struct wal_opts c = *o;
  if (!c.direct_min)
    c.direct_min = g_direct_min;
  return wal_open(ctx, dir, &c, out);
}
#define wal_open t_wal_open

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#else
#define T_ASAN 0
#endif

/* ------------------------------------------------------------------------------------------- */
/* Contexts and files */

static struct fs_ctx *ctx_new(void)
{
  struct fs_ctx_opts o = {.backend = strcmp(g_backend, "psync") == 0 ? FS_BACKEND_PSYNC
                                                                      : FS_BACKEND_URING};
  struct fs_ctx *ctx = NULL;
  assert_int_equal(fs_ctx_create(&o, &ctx), JDB_OK);
  return ctx;
}

static struct fs_ctx *fctx_new(uint64_t seed)
{
  struct fs_ctx *fc = NULL;
  assert_int_equal(fs_faulty_create(ctx_new(), seed, &fc), JDB_OK);
  return fc;
}

/* Rules count matching ops from when they are added: at = 1 is the next one. */
static void add_rule(struct fs_ctx *ctx, unsigned kind, unsigned targets, uint64_t at)
{
  struct fs_fault_rule r = {.kind = kind, .targets = targets, .at = at};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
}

static char *seg_path(char *buf, size_t cap, const char *dir, uint32_t seg)
{
  snprintf(buf, cap, "%s/%08u.log", dir, seg);
  return buf;
}

static uint8_t *file_slurp(const char *path, size_t *len)
{
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  uint8_t *b = malloc((size_t)st.st_size + 1);
  assert_non_null(b);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);
    assert_true(r > 0);
    got += (size_t)r;
  }
  close(fd);
  *len = got;
  return b;
}

static void file_pwrite(const char *path, uint64_t off, const void *buf, size_t len)
{
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
  close(fd);
}

static void file_pread(const char *path, uint64_t off, void *buf, size_t len)
{
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
  close(fd);
}

static void flip_bit(const char *path, uint64_t off, unsigned bit)
{
  uint8_t b;
  file_pread(path, off, &b, 1);
  b ^= (uint8_t)(1u << bit);
  file_pwrite(path, off, &b, 1);
}

/* Sorted names in dir, one per line, into buf (to compare directory states). */
static void dir_list(const char *dir, char *buf, size_t cap)
{
  char names[64][64];
  int n = 0;
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 64)
    if (e->d_name[0] != '.' && strlen(e->d_name) < 64)
      memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char t[64];
      memcpy(t, names[j], 64);
      memcpy(names[j], names[j - 1], 64);
      memcpy(names[j - 1], t, 64);
    }
  buf[0] = 0;
  for (int i = 0; i < n; i++) {
    strncat(buf, names[i], cap - strlen(buf) - 1);
    strncat(buf, "\n", cap - strlen(buf) - 1);
  }
}

/* The directory listing without next.tmp: whether a preparation is under way or waiting (it
   starts once a segment is a quarter full, and a prepared file waits while spares serve the
   rolls) depends on the generated record sizes, not on what these tests check. */
static void dir_list_segments(const char *dir, char *buf, size_t cap)
{
  dir_list(dir, buf, cap);
  char *n = strstr(buf, "next.tmp\n");
  if (n)
    memmove(n, n + 9, strlen(n + 9) + 1);
}

static int file_exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Deterministic records: record idx of a log made with `seed` */

struct shape {
  uint32_t ops_max;        /* ops per batch: 1 .. ops_max */
  uint32_t small_max;      /* most values: 0 .. small_max */
  uint32_t mid_max;        /* mid_pm permille: small_max+1 .. mid_max */
  uint32_t big_min, big_max;   /* big_pm permille: big_min .. big_max */
  uint32_t mid_pm, big_pm;
  uint32_t move_every;     /* record idx % move_every == 0 is a MOVE record (0: never) */
  uint32_t force_every;    /* record idx % force_every == 0 starts with a PUT of force_min ..
                              big_max bytes (0: never) */
  uint32_t force_min;
};

/* The round trip: keys 1..64 B, values mostly small, 12% up to 1 KiB, 2.5% up to 8 KiB. */
static const struct shape SH_MIXED = {3, 64, 1024, 1025, 8192, 120, 25, 1000, 0, 0};
/* Small records only (group commit, torn tails). */
static const struct shape SH_SMALL = {2, 120, 400, 401, 600, 100, 10, 0, 0, 0};
/* Big values forcing rolls of 1 MiB segments every few records. */
static const struct shape SH_ROLL = {2, 100, 2000, 40000, 200000, 300, 300, 0, 0, 0};
/* The power-loss workload: a roll every dozen records or so; every 4th record carries at least
   180 KB, so 48 records always fill more than two 1 MiB segments. */
static const struct shape SH_CRASH = {2, 100, 2000, 60000, 250000, 300, 200, 0, 4, 180000};

#define GEN_KEY_MAX 64
#define GEN_OPS_MAX 4

struct gen {
  const struct shape *sh;
  uint64_t table, seq, ts;
  uint32_t nops;
  int is_move;
  uint8_t move_payload[40];
  struct wal_op ops[GEN_OPS_MAX];
  uint8_t key[GEN_OPS_MAX][GEN_KEY_MAX];
  uint8_t *vbuf;           /* GEN_OPS_MAX * big_max bytes */
};

static void gen_init(struct gen *g, const struct shape *sh)
{
  memset(g, 0, sizeof *g);
  g->sh = sh;
  g->vbuf = malloc((size_t)GEN_OPS_MAX * (sh->big_max + 8));
  assert_non_null(g->vbuf);
}

static void gen_free(struct gen *g)
{
  free(g->vbuf);
  g->vbuf = NULL;
}

/* Value bytes: xorshift64, 8 bytes a step into an 8-aligned buffer (tutil_rng_fill costs too
   much for megabytes of values in the unoptimised ASan build). */
static void fast_fill(uint8_t *buf, uint32_t n, uint64_t x)
{
  uint64_t *q = (uint64_t *)(void *)buf;
  x |= 1;
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *q++ = x;
  }
  for (; i < n; i++)
    buf[i] = (uint8_t)(x >> (8 * (i & 7))) ^ (uint8_t)i;
}

static void gen_make(struct gen *g, uint64_t seed, uint64_t idx)
{
  const struct shape *sh = g->sh;
  struct tutil_rng r;
  tutil_rng_init(&r, seed * 0x9e3779b97f4a7c15ull + idx * 0xd1b54a32d192ed03ull + 7);
  g->is_move = sh->move_every && idx % sh->move_every == 0;
  if (g->is_move) {
    le64_put(g->move_payload, idx);
    tutil_rng_fill(&r, g->move_payload + 8, sizeof g->move_payload - 8);
    return;
  }
  g->table = 1 + tutil_rng_below(&r, 1000);
  g->seq = idx;
  g->ts = 1700000000u + idx + tutil_rng_below(&r, 100);
  g->nops = 1 + (uint32_t)tutil_rng_below(&r, sh->ops_max);
  uint8_t *v = g->vbuf;
  for (uint32_t i = 0; i < g->nops; i++) {
    struct wal_op *op = &g->ops[i];
    int force = i == 0 && sh->force_every && idx % sh->force_every == 0;
    op->kind = tutil_rng_below(&r, 10) == 0 && !force ? WAL_OP_DEL : WAL_OP_PUT;
    op->klen = 1 + (uint32_t)tutil_rng_below(&r, GEN_KEY_MAX);
    tutil_rng_fill(&r, g->key[i], op->klen);
    op->key = g->key[i];
    op->val = NULL;
    op->vlen = 0;
    if (op->kind == WAL_OP_PUT) {
      uint64_t pm = tutil_rng_below(&r, 1000);
      uint32_t n;
      if (force)
        n = sh->force_min + (uint32_t)tutil_rng_below(&r, sh->big_max - sh->force_min + 1);
      else if (pm < sh->big_pm)
        n = sh->big_min + (uint32_t)tutil_rng_below(&r, sh->big_max - sh->big_min + 1);
      else if (pm < sh->big_pm + sh->mid_pm)
        n = sh->small_max + 1 + (uint32_t)tutil_rng_below(&r, sh->mid_max - sh->small_max);
      else
        n = (uint32_t)tutil_rng_below(&r, sh->small_max + 1);
      fast_fill(v, n, tutil_rng_next(&r));
      op->val = n ? v : NULL;
      op->vlen = n;
      v += (n + 7) & ~7u;
    }
  }
}

/* Append record idx; *end receives the position after it. */
static int gen_append(struct wal *w, struct gen *g, uint64_t seed, uint64_t idx, uint64_t *end,
                      struct wal_vref *vrefs)
{
  gen_make(g, seed, idx);
  if (g->is_move)
    return wal_append_record(w, LOG_REC_MOVE, g->move_payload, sizeof g->move_payload, NULL,
                             end);
  return wal_append(w, g->table, g->seq, g->ts, g->ops, g->nops, vrefs, end);
}

/* Read a value reference back and compare it with the value (and its checksum). NULL or what
   differs. */
static const char *vref_check(struct wal *w, struct wal_vref ref, const uint8_t *val,
                              uint32_t vlen, uint8_t *scratch)
{
  if (ref.len != vlen)
    return "vref length";
  int rc = wal_read(w, ref.pos, scratch, vlen + 4);
  if (rc)
    return "wal_read of a vref failed";
  if (le32_get(scratch) != layout_cksum(val, vlen))
    return "vref checksum";
  if (memcmp(scratch + 4, val, vlen) != 0)
    return "vref bytes";
  return NULL;
}

/* Replay checker: expects records first, first+1, ... of `seed` (records at or after seed2_from
   come from seed2). Stops the replay (returns 1) with a description at the first difference. */
struct rp {
  struct wal *w;
  uint64_t seed, seed2, seed2_from;
  uint32_t inline_max;
  uint64_t first;
  uint64_t n;              /* records seen */
  uint64_t moves;
  int check_vrefs;
  uint64_t vrefs_checked;
  uint64_t last_end;
  char err[256];
  struct gen g;
  uint8_t *scratch;
};

static void rp_init(struct rp *r, struct wal *w, const struct shape *sh, uint64_t seed)
{
  memset(r, 0, sizeof *r);
  r->w = w;
  r->seed = seed;
  r->seed2_from = UINT64_MAX;
  r->inline_max = 256;
  r->first = 1;
  gen_init(&r->g, sh);
  r->scratch = malloc(sh->big_max + 8);
  assert_non_null(r->scratch);
}

static void rp_free(struct rp *r)
{
  gen_free(&r->g);
  free(r->scratch);
}

static int rp_fail(struct rp *r, uint64_t idx, const char *what)
{
  snprintf(r->err, sizeof r->err, "record %llu (%llu-th replayed): %s", (unsigned long long)idx,
           (unsigned long long)r->n + 1, what);
  return 1;
}

static int rp_cb(void *ud, const struct wal_rec *rec)
{
  struct rp *r = ud;
  uint64_t idx = r->first + r->n;
  struct gen *g = &r->g;
  gen_make(g, idx >= r->seed2_from ? r->seed2 : r->seed, idx);
  if (rec->end <= rec->pos || (r->last_end && rec->pos != r->last_end &&
                               LOG_POS_SEG(rec->pos) == LOG_POS_SEG(r->last_end)))
    return rp_fail(r, idx, "record positions are not contiguous");
  if (g->is_move) {
    if (rec->type != LOG_REC_MOVE || rec->len != sizeof g->move_payload ||
        memcmp(rec->payload, g->move_payload, rec->len) != 0)
      return rp_fail(r, idx, "MOVE record differs");
    r->moves++;
  } else {
    if (rec->type != LOG_REC_BATCH)
      return rp_fail(r, idx, "not a BATCH record");
    struct wal_batch b;
    if (wal_batch_open(rec, &b) != JDB_OK)
      return rp_fail(r, idx, "wal_batch_open failed");
    if (b.table_id != g->table || b.seq != g->seq || b.ts_sec != g->ts || b.nops != g->nops)
      return rp_fail(r, idx, "batch header differs");
    for (uint32_t i = 0; i < g->nops; i++) {
      struct wal_op_view v;
      const struct wal_op *op = &g->ops[i];
      if (wal_batch_next(&b, &v) != JDB_OK)
        return rp_fail(r, idx, "wal_batch_next failed");
      if (v.kind != op->kind || v.klen != op->klen || memcmp(v.key, op->key, op->klen) != 0)
        return rp_fail(r, idx, "op kind or key differs");
      if (v.vlen != op->vlen || (op->vlen && memcmp(v.val, op->val, op->vlen) != 0))
        return rp_fail(r, idx, "op value differs");
      int sep = op->kind == WAL_OP_PUT && op->vlen > r->inline_max;
      if (!sep && v.vref.len != 0)
        return rp_fail(r, idx, "inline value has a vref");
      if (sep) {
        if (v.vref.len != op->vlen || v.vref.pos <= rec->pos || v.vref.pos >= rec->end)
          return rp_fail(r, idx, "vref outside its record");
        if (r->check_vrefs) {
          const char *e = vref_check(r->w, v.vref, op->val, op->vlen, r->scratch);
          if (e)
            return rp_fail(r, idx, e);
          r->vrefs_checked++;
        }
      }
    }
    struct wal_op_view v;
    if (wal_batch_next(&b, &v) != JDB_NOTFOUND)
      return rp_fail(r, idx, "batch has more ops than appended");
  }
  r->last_end = rec->end;
  r->n++;
  return 0;
}

/* Open and replay dir, expecting records 1..(some n) of seed; returns the wal (replayed). */
static struct wal *open_replay(struct fs_ctx *ctx, const char *dir, const struct wal_opts *o,
                               struct rp *r, uint64_t *end_pos)
{
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, o, &w), JDB_OK);
  r->w = w;
  int rc = wal_replay(w, 0, rp_cb, r, end_pos);
  if (r->err[0])
    fail_msg("replay: %s", r->err);
  assert_int_equal(rc, JDB_OK);
  return w;
}

/* ------------------------------------------------------------------------------------------- */
/* 1. Round trip of many mixed records over many small segments */

static void test_roundtrip(void **state)
{
  (void)state;
  /* 1 M records (about 480 MB of log, 120 segments); the psync run under ASan, which would
     take 8 s more for the same code, and the every-flush-direct run, 200 k. */
  uint64_t N = 1000000;
  if ((T_ASAN && strcmp(g_backend, "psync") == 0) || g_direct_min)
    N = 200000;   /* the direct run: the default run already crosses both ways 1 M times */
  uint64_t seed = tutil_seed() ^ 0x1111;
  const char *dir = tutil_tmpdir("wal_rt");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = 4 * MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  uint64_t end = 0;
  assert_int_equal(wal_replay(w, 0, NULL, NULL, &end), JDB_OK);
  assert_int_equal(LOG_POS_SEG(end), 1);
  assert_int_equal(end, wal_append_pos(w));

  struct gen g;
  gen_init(&g, &SH_MIXED);
  uint8_t *scratch = malloc(SH_MIXED.big_max + 8);
  struct wal_vref vrefs[GEN_OPS_MAX];
  uint64_t nvref = 0, checked_mem = 0, checked_file = 0;
  struct { struct wal_vref ref; uint64_t idx; uint32_t op; } keep = {{0, 0}, 0, 0};
  for (uint64_t i = 1; i <= N; i++) {
    assert_int_equal(gen_append(w, &g, seed, i, &end, vrefs), JDB_OK);
    if (!g.is_move)
      for (uint32_t k = 0; k < g.nops; k++) {
        const struct wal_op *op = &g.ops[k];
        int sep = op->kind == WAL_OP_PUT && op->vlen > 256;
        assert_int_equal(vrefs[k].len, sep ? op->vlen : 0);
        if (!sep)
          continue;
        nvref++;
        /* Still in the append buffer: served from memory. */
        if (nvref % 64 == 1) {
          const char *e = vref_check(w, vrefs[k], op->val, op->vlen, scratch);
          if (e)
            fail_msg("record %llu: fresh vref: %s", (unsigned long long)i, e);
          checked_mem++;
        }
        if (nvref % 512 == 1)
          keep.ref = vrefs[k], keep.idx = i, keep.op = k;
      }
    /* A flush starts when none is in flight (a completion is reaped by the waits every 4096
       records): in every other stretch of 50 k records they come 16x less often, so by default
       the log switches between page-cache and O_DIRECT writes many times. */
    if (i % ((i / 50000) % 2 ? 1024 : 64) == 0)
      assert_int_equal(wal_flush(w), JDB_OK);
    if (i % 4096 == 0) {
      assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
      assert_true(wal_written_pos(w) >= end);
      /* An older vref, now read through the file (maybe an older segment). */
      if (keep.idx) {
        gen_make(&g, seed, keep.idx);
        const struct wal_op *op = &g.ops[keep.op];
        const char *e = vref_check(w, keep.ref, op->val, op->vlen, scratch);
        if (e)
          fail_msg("record %llu: written vref: %s", (unsigned long long)keep.idx, e);
        checked_file++;
      }
    }
  }
  assert_int_equal(wal_sync(w), JDB_OK);
  assert_true(wal_durable_pos(w) == wal_append_pos(w));
  uint64_t final_pos = wal_append_pos(w);
  struct wal_stats st;
  wal_stats_get(w, &st);
  uint32_t segs[4];
  size_t nsegs = wal_segments(w, segs, 4);
  print_message("  %llu records, %llu MB, %zu segments, %llu writes, %llu syncs, %llu vrefs\n",
                (unsigned long long)N, (unsigned long long)(st.bytes_appended >> 20), nsegs,
                (unsigned long long)st.writes, (unsigned long long)st.syncs,
                (unsigned long long)nvref);
  assert_true(st.records >= N);
  assert_true(st.bytes_written == st.bytes_appended);
  assert_true(nsegs >= 10);
  assert_int_equal(st.segments_created, nsegs);
  assert_true(nvref > N / 50);
  assert_true(checked_mem > 0 && checked_file > 0);
  if (tutil_dir_takes_direct(ctx, dir)) {
    print_message("  %llu of the writes with O_DIRECT\n", (unsigned long long)st.writes_direct);
    assert_true(st.writes_direct > 0);
    if (!g_direct_min)
      assert_true(st.writes_direct < st.writes);   /* both ways, switching back and forth */
  }
  wal_close(w);

  /* Replay everything, checking every record and reading every vref back. */
  struct rp r;
  rp_init(&r, NULL, &SH_MIXED, seed);
  r.check_vrefs = 1;
  uint64_t end2 = 0;
  w = open_replay(ctx, dir, &o, &r, &end2);
  assert_int_equal(r.n, N);
  assert_int_equal(r.moves, N / 1000);
  assert_int_equal(r.vrefs_checked, nvref);
  assert_int_equal(end2, final_pos);
  assert_int_equal(wal_append_pos(w), final_pos);
  /* The log goes on where it ended. */
  for (uint64_t i = N + 1; i <= N + 100; i++)
    assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  rp_free(&r);
  rp_init(&r, NULL, &SH_MIXED, seed);
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, N + 100);
  wal_close(w);
  rp_free(&r);
  gen_free(&g);
  free(scratch);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Replay from a position; a record bigger than a segment; reads of references in the current
   and older segments. */
static void test_replay_from_pos(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x2222;
  const char *dir = tutil_tmpdir("wal_from");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB, .inline_max = 100};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct gen g;
  gen_init(&g, &SH_ROLL);
  enum { N = 60 };
  uint64_t pos[N + 2];
  pos[1] = wal_append_pos(w);
  for (uint64_t i = 1; i <= N; i++) {
    uint64_t end;
    assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
    if (i < N)
      pos[i + 1] = end;
    if (i % 5 == 0)
      assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  }
  /* One batch with a 2.5 MiB value: a segment sized to fit it. */
  uint8_t *big = malloc(5 * MIB / 2);
  struct tutil_rng rng;
  tutil_rng_init(&rng, seed);
  tutil_rng_fill(&rng, big, 5 * MIB / 2);
  struct wal_op bop = {.kind = WAL_OP_PUT, .key = "big", .klen = 3, .val = big,
                       .vlen = (uint32_t)(5 * MIB / 2)};
  struct wal_vref bref;
  uint64_t bend;
  assert_int_equal(wal_append(w, 9, N + 1, 0, &bop, 1, &bref, &bend), JDB_OK);
  assert_int_equal(bref.len, bop.vlen);
  uint8_t *rb = malloc(5 * MIB / 2 + 4);
  assert_int_equal(wal_read(w, bref.pos, rb, bop.vlen + 4), JDB_OK);   /* from memory */
  assert_memory_equal(rb + 4, big, bop.vlen);
  assert_int_equal(wal_sync(w), JDB_OK);
  assert_int_equal(wal_read(w, bref.pos, rb, bop.vlen + 4), JDB_OK);   /* from the file */
  assert_memory_equal(rb + 4, big, bop.vlen);
  assert_int_equal(le32_get(rb), layout_cksum(big, bop.vlen));
  uint32_t bseg = LOG_POS_SEG(bref.pos);
  char p[4096];
  struct stat st;
  assert_int_equal(stat(seg_path(p, sizeof p, dir, bseg), &st), 0);
  assert_true((uint64_t)st.st_size >= 5 * MIB / 2 && (uint64_t)st.st_size % MIB == 0);
  uint32_t segs[64];
  size_t nsegs = wal_segments(w, segs, 64);
  assert_true(nsegs >= 3);
  /* Reads past the written end of the current segment or past an old segment's end fail. */
  uint8_t tmp[64];
  assert_int_equal(wal_read(w, wal_append_pos(w) - 8, tmp, 16), JDB_ECORRUPT);
  assert_int_equal(wal_read(w, LOG_POS(1, MIB - 8), tmp, 16), JDB_ECORRUPT);
  assert_int_equal(wal_read(w, LOG_POS(segs[nsegs - 1] + 5, 0), tmp, 16), JDB_ECORRUPT);
  wal_close(w);

  /* From each of a few positions: exactly the records from there on. */
  uint64_t froms[] = {1, 2, 17, 33, N - 1, N};
  for (size_t k = 0; k < sizeof froms / sizeof *froms; k++) {
    struct rp r;
    rp_init(&r, NULL, &SH_ROLL, seed);
    r.first = froms[k];
    r.inline_max = 100;
    r.check_vrefs = 1;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    r.w = w;
    uint64_t stop_at = N + 1 - froms[k];
    int rc = wal_replay(w, pos[froms[k]], rp_cb, &r, NULL);
    /* The big record is not a gen record: rp_cb reports a difference on it, after the rest. */
    assert_int_equal(rc, 1);
    assert_int_equal(r.n, stop_at);
    wal_close(w);
    rp_free(&r);
  }
  free(big);
  free(rb);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* wal_read of ranges of the current segment that lie in the file, in the buffer being written,
   in the active buffer, or across them: the same bytes as once everything is written. */
static void test_read_across_buffers(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x2323;
  const char *dir = tutil_tmpdir("wal_read");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct gen g;
  gen_init(&g, &SH_SMALL);
  uint64_t p0 = wal_append_pos(w), p1, p2, p3;
  assert_int_equal(gen_append(w, &g, seed, 1, &p1, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, p1, WAL_WRITTEN), JDB_OK);          /* [p0, p1) in the file */
  assert_int_equal(gen_append(w, &g, seed, 2, &p2, NULL), JDB_OK);
  assert_int_equal(wal_flush(w), JDB_OK);                          /* [p1, p2) being written */
  assert_int_equal(gen_append(w, &g, seed, 3, &p3, NULL), JDB_OK); /* [p2, p3) buffered */
  assert_true(wal_written_pos(w) == p1);
  uint32_t n = (uint32_t)(p3 - p0);
  /* Ranges starting and ending on record boundaries and inside records, read while the
     middle record is in flight; kept to compare with the same ranges once all is written. */
  uint64_t cuts[] = {p0, p0 + 8, p1 - 8, p1, p1 + 8, p2 - 8, p2, p2 + 8, p3 - 8, p3};
  enum { NC = sizeof cuts / sizeof *cuts };
  uint8_t *early[NC][NC] = {{0}};
  for (size_t i = 0; i < NC; i++)
    for (size_t j = i + 1; j < NC; j++) {
      uint32_t len = (uint32_t)(cuts[j] - cuts[i]);
      early[i][j] = malloc(len);
      int rc = wal_read(w, cuts[i], early[i][j], len);
      if (rc != JDB_OK)
        fail_msg("read [%llu, %llu) with a write in flight: %d",
                 (unsigned long long)(cuts[i] - p0), (unsigned long long)(cuts[j] - p0), rc);
    }
  assert_int_equal(wal_wait(w, p3, WAL_WRITTEN), JDB_OK);
  uint8_t *all = malloc(n);
  assert_int_equal(wal_read(w, p0, all, n), JDB_OK);
  /* The records read back are the appended ones. */
  struct rp r;
  rp_init(&r, w, &SH_SMALL, seed);
  for (uint64_t at = p0; at < p3;) {
    uint32_t len = le32_get(all + (at - p0) + 4);
    struct wal_rec rec = {.pos = at, .end = at + layout_rec_padded(len), .type = LOG_REC_BATCH,
                          .payload = all + (at - p0) + LOG_REC_HDR_SIZE,
                          .len = len - LOG_REC_HDR_SIZE};
    assert_int_equal(rp_cb(&r, &rec), 0);
    at = rec.end;
  }
  assert_int_equal(r.n, 3);
  rp_free(&r);
  for (size_t i = 0; i < NC; i++)
    for (size_t j = i + 1; j < NC; j++) {
      assert_memory_equal(early[i][j], all + (cuts[i] - p0), cuts[j] - cuts[i]);
      free(early[i][j]);
    }
  free(all);
  gen_free(&g);
  wal_close(w);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* 2. Group commit */

struct gc {
  struct wal *w;
  uint64_t seed;
  uint64_t *next_idx;      /* shared: the log order is the idx order */
  int rounds, level;
  uint64_t waits, fails;
  struct gen g;
};

static void gc_main(void *arg)
{
  struct gc *f = arg;
  for (int r = 0; r < f->rounds; r++) {
    uint64_t idx = ++*f->next_idx, end = 0;
    /* No yield between taking idx and appending: appends land in idx order. */
    int rc = gen_append(f->w, &f->g, f->seed, idx, &end, NULL);
    if (rc != JDB_OK) {
      f->fails++;
      return;
    }
    rc = wal_wait(f->w, end, f->level);
    f->waits++;
    if (rc != JDB_OK || (f->level == WAL_DURABLE ? wal_durable_pos(f->w) : wal_written_pos(f->w))
                            < end) {
      f->fails++;
      return;
    }
  }
}

static void run_fibers(struct fs_ctx *ctx, struct wal *w, uint64_t seed, uint64_t *next_idx,
                       int nfib, int rounds, int level, const struct shape *sh, uint64_t *waits)
{
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  struct gc *f = calloc((size_t)nfib, sizeof *f);
  for (int i = 0; i < nfib; i++) {
    f[i] = (struct gc){.w = w, .seed = seed, .next_idx = next_idx, .rounds = rounds,
                       .level = level};
    gen_init(&f[i].g, sh);
    assert_int_equal(coro_spawn(s, gc_main, &f[i], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  uint64_t fails = 0;
  *waits = 0;
  for (int i = 0; i < nfib; i++) {
    fails += f[i].fails;
    *waits += f[i].waits;
    gen_free(&f[i].g);
  }
  free(f);
  coro_sched_destroy(s);
  assert_int_equal(fails, 0);
  assert_int_equal(*waits, (uint64_t)nfib * (uint64_t)rounds);
}

static void test_group_commit(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x3333;
  const char *dir = tutil_tmpdir("wal_gc");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = 4 * MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  uint64_t idx = 0, waits;
  struct wal_stats a, b;

  /* 64 durable writers, 20 commits each: one fdatasync serves many of them. */
  wal_stats_get(w, &a);
  run_fibers(ctx, w, seed, &idx, 64, 20, WAL_DURABLE, &SH_SMALL, &waits);
  wal_stats_get(w, &b);
  uint64_t syncs = b.syncs - a.syncs, writes = b.writes - a.writes;
  print_message("  64 durable writers: %llu waits, %llu writes, %llu fdatasyncs\n",
                (unsigned long long)waits, (unsigned long long)writes,
                (unsigned long long)syncs);
  assert_true(syncs >= 1 && syncs * 4 < waits);
  assert_true(writes * 4 < waits);
  assert_int_equal(wal_durable_pos(w), wal_append_pos(w));

  /* 64 writers at the WRITTEN level: shared writes, no fdatasync at all. */
  wal_stats_get(w, &a);
  run_fibers(ctx, w, seed, &idx, 64, 20, WAL_WRITTEN, &SH_SMALL, &waits);
  wal_stats_get(w, &b);
  print_message("  64 written-level writers: %llu waits, %llu writes, %llu fdatasyncs\n",
                (unsigned long long)waits, (unsigned long long)(b.writes - a.writes),
                (unsigned long long)(b.syncs - a.syncs));
  assert_int_equal(b.syncs, a.syncs);
  assert_true((b.writes - a.writes) * 4 < waits);
  assert_int_equal(wal_written_pos(w), wal_append_pos(w));

  /* One durable writer in a fiber: one write + one fdatasync per commit. */
  wal_stats_get(w, &a);
  run_fibers(ctx, w, seed, &idx, 1, 50, WAL_DURABLE, &SH_SMALL, &waits);
  wal_stats_get(w, &b);
  assert_int_equal(b.syncs - a.syncs, 50);
  assert_int_equal(b.writes - a.writes, 50);

  /* One writer outside any fiber (blocking waits): the same. */
  struct gen g;
  gen_init(&g, &SH_SMALL);
  wal_stats_get(w, &a);
  for (int i = 0; i < 50; i++) {
    uint64_t end;
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
    assert_true(wal_durable_pos(w) >= end);
    /* Waiting again for what is already durable costs nothing. */
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
    assert_int_equal(wal_sync(w), JDB_OK);
  }
  wal_stats_get(w, &b);
  assert_int_equal(b.syncs - a.syncs, 50);
  assert_int_equal(b.writes - a.writes, 50);
  /* WRITTEN then DURABLE on the same record: the second needs only an fdatasync. */
  uint64_t end;
  assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  assert_true(wal_durable_pos(w) < end);
  wal_stats_get(w, &a);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  wal_stats_get(w, &b);
  assert_int_equal(b.syncs - a.syncs, 1);
  assert_int_equal(b.writes - a.writes, 0);
  gen_free(&g);
  wal_close(w);

  struct rp r;
  rp_init(&r, NULL, &SH_SMALL, seed);
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, idx);
  wal_close(w);
  rp_free(&r);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* coro_park may return before the awaited event (coro.h): a fiber woken by someone else while
   it waits in wal_wait must wait on, and nothing of it may stay behind in the wal. Here each
   fiber gets a stray wake before it first parks, and another one from a neighbour while it
   waits. */
struct sw {
  struct wal *w;
  struct coro *self;
  struct sw *peer;
  int alive;
  uint64_t seed;
  uint64_t *next_idx;
  int fails;
  struct gen g;
};

static void sw_main(void *arg)
{
  struct sw *f = arg;
  f->alive = 1;
  for (int r = 0; r < 10; r++) {
    uint64_t idx = ++*f->next_idx, end;
    if (gen_append(f->w, &f->g, f->seed, idx, &end, NULL) != JDB_OK) {
      f->fails++;
      return;
    }
    if (f->peer && f->peer->alive)
      coro_wake(f->peer->self);   /* the peer is parked in wal_wait, or about to be */
    int rc = wal_wait(f->w, end, r % 2 ? WAL_DURABLE : WAL_WRITTEN);
    if (rc != JDB_OK || wal_written_pos(f->w) < end ||
        (r % 2 && wal_durable_pos(f->w) < end))
      f->fails++;
  }
  f->alive = 0;
}

static void test_wait_spurious_wake(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x3434;
  const char *dir = tutil_tmpdir("wal_spur");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  enum { NF = 8 };
  struct sw f[NF];
  struct coro *c[NF];
  uint64_t idx = 0;
  for (int i = 0; i < NF; i++) {
    f[i] = (struct sw){.w = w, .seed = seed, .next_idx = &idx};
    gen_init(&f[i].g, &SH_SMALL);
    assert_int_equal(coro_spawn(s, sw_main, &f[i], &c[i]), JDB_OK);
    f[i].self = c[i];
    coro_wake(c[i]);          /* READY: a pending wake, consumed by its first park */
  }
  /* Fiber i also wakes fiber i+1 while that one waits (the last one nobody). */
  for (int i = 0; i + 1 < NF; i++)
    f[i].peer = &f[i + 1];
  alarm(20);                  /* a waiter list that loops on itself hangs: fail instead */
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  alarm(0);
  int fails = 0;
  for (int i = 0; i < NF; i++) {
    fails += f[i].fails;
    gen_free(&f[i].g);
  }
  coro_sched_destroy(s);
  assert_int_equal(fails, 0);
  /* Later waits from outside fibers still work (no stale waiter left in the wal). */
  struct gen g;
  gen_init(&g, &SH_SMALL);
  for (int i = 0; i < 5; i++) {
    uint64_t end;
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  }
  gen_free(&g);
  wal_close(w);
  struct rp r;
  rp_init(&r, NULL, &SH_SMALL, seed);
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, idx);
  wal_close(w);
  rp_free(&r);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Many fibers appending big records over small segments: rolls happen while other fibers
   append and wait. Everything acknowledged is replayed, in order, once. */
static void test_fibers_roll(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x4444;
  const char *dir = tutil_tmpdir("wal_froll");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  uint64_t idx = 0, waits;
  run_fibers(ctx, w, seed, &idx, 16, 12, WAL_WRITTEN, &SH_ROLL, &waits);
  run_fibers(ctx, w, seed, &idx, 16, 12, WAL_DURABLE, &SH_ROLL, &waits);
  uint32_t segs[64];
  size_t nsegs = wal_segments(w, segs, 64);
  assert_true(nsegs >= 5);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  struct rp r;
  rp_init(&r, NULL, &SH_ROLL, seed);
  r.check_vrefs = 1;
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, idx);
  wal_close(w);
  rp_free(&r);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* 3. Torn tails at every byte of the last record */

static void test_torn_tail(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x5555;
  const char *dir = tutil_tmpdir("wal_torn");
  struct fs_ctx *ctx = ctx_new();
  /* Every replay here scans the rest of the 1 MiB segment (wal_check_tail): keep the last
     record short (values above 64 bytes go out of line, so it still carries a vref). */
  struct wal_opts o = {.segment_bytes = MIB, .inline_max = 64};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  enum { N = 20 };
  struct gen g;
  gen_init(&g, &SH_SMALL);
  uint64_t end;
  for (uint64_t i = 1; i <= N; i++) {
    assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
    if (i % 4 == 0 || i == N)
      assert_int_equal(wal_sync(w), JDB_OK);
  }
  /* The last record: one op with a 100-byte value (out of line: a vref). */
  uint64_t last_pos = wal_append_pos(w);
  uint8_t val[100];
  struct tutil_rng rng;
  tutil_rng_init(&rng, seed + 1);
  tutil_rng_fill(&rng, val, sizeof val);
  struct wal_op lop = {.kind = WAL_OP_PUT, .key = "the-last-key", .klen = 12, .val = val,
                       .vlen = sizeof val};
  assert_int_equal(wal_append(w, 5, N + 1, 0, &lop, 1, NULL, &end), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  assert_true(wal_durable_pos(w) == last_pos);
  wal_close(w);

  char path[4096];
  seg_path(path, sizeof path, dir, 1);
  uint8_t hdr[8];
  file_pread(path, LOG_POS_OFF(last_pos), hdr, 8);
  uint32_t len = le32_get(hdr + 4);
  assert_int_equal(layout_rec_padded(len), end - last_pos);
  uint64_t off0 = LOG_POS_OFF(last_pos);
  enum { REGION = 65536 };
  uint8_t *orig = malloc(REGION), *junk = malloc(REGION);
  file_pread(path, off0, orig, REGION);
  for (size_t i = len; i < REGION; i++)
    if (orig[i] != 0 && i >= layout_rec_padded(len))
      fail_msg("bytes after the last record are not zero at %zu", i);

  struct gen g2;
  gen_init(&g2, &SH_SMALL);
  for (uint32_t k = 0; k < len; k++) {
    /* Damage [k, len) of the last record: zeros or random bytes. */
    if (k % 2)
      tutil_rng_fill(&rng, junk, len - k);
    else
      memset(junk, 0, len - k);
    file_pwrite(path, off0 + k, junk, len - k);

    struct rp r;
    rp_init(&r, NULL, &SH_SMALL, seed);
    r.inline_max = 64;
    r.check_vrefs = 1;
    uint64_t e2 = 0;
    w = open_replay(ctx, dir, &o, &r, &e2);
    if (r.n != N)
      fail_msg("k=%u: %llu records replayed, want %d", k, (unsigned long long)r.n, N);
    assert_int_equal(e2, last_pos);
    /* New records after the cut, with other contents (seed2). */
    uint64_t seed2 = seed ^ (0xabcdull * (k + 1));
    for (uint64_t i = N + 1; i <= N + 3; i++)
      assert_int_equal(gen_append(w, &g2, seed2, i, &end, NULL), JDB_OK);
    assert_int_equal(wal_sync(w), JDB_OK);
    assert_true(LOG_POS_OFF(end) < off0 + REGION);
    wal_close(w);
    rp_free(&r);

    rp_init(&r, NULL, &SH_SMALL, seed);
    r.inline_max = 64;
    r.check_vrefs = 1;
    r.seed2 = seed2;
    r.seed2_from = N + 1;
    w = open_replay(ctx, dir, &o, &r, &e2);
    if (r.n != N + 3)
      fail_msg("k=%u: %llu records after the appends, want %d", k, (unsigned long long)r.n,
               N + 3);
    assert_int_equal(e2, end);
    wal_close(w);
    rp_free(&r);
    file_pwrite(path, off0, orig, REGION);    /* back to the original last record */
  }
  gen_free(&g);
  gen_free(&g2);
  free(orig);
  free(junk);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Valid records after the cut (written by later, separate writes that survived while an earlier
   one was lost) are stale: replay zeroes them, and a later record boundary that lands exactly on
   one of them must not bring it back. */
struct count_rp { uint64_t batches, moves; uint64_t last_seq; };

static int count_cb(void *ud, const struct wal_rec *rec)
{
  struct count_rp *c = ud;
  if (rec->type == LOG_REC_MOVE) {
    c->moves++;
    return 0;
  }
  struct wal_batch b;
  if (wal_batch_open(rec, &b) != JDB_OK)
    return 1;
  c->batches++;
  c->last_seq = b.seq;
  return 0;
}

static void test_torn_stale_records(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x5a5a;
  const char *dir = tutil_tmpdir("wal_stale");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct gen g;
  gen_init(&g, &SH_SMALL);
  enum { N = 10 };
  uint64_t end, pos[N + 5];
  for (uint64_t i = 1; i <= N; i++) {
    assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  }
  /* Three records, three separate writes, none synced. */
  for (uint64_t i = N + 1; i <= N + 3; i++) {
    pos[i] = wal_append_pos(w);
    assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  }
  pos[N + 4] = end;
  wal_close(w);
  /* The first of them is lost (zeros), the two later ones survived. */
  char path[4096];
  seg_path(path, sizeof path, dir, 1);
  uint64_t lo = LOG_POS_OFF(pos[N + 1]), hi = LOG_POS_OFF(pos[N + 4]);
  uint8_t *z = calloc(1, hi - lo), *now = malloc(hi - lo);
  file_pwrite(path, lo, z, LOG_POS_OFF(pos[N + 2]) - lo);

  struct count_rp c = {0};
  uint64_t e2;
  {
    /* A read-only open replays the same history and changes nothing: the stale records stay,
       no segment appears, every write is refused. */
    char before[4096], after[4096];
    dir_list(dir, before, sizeof before);
    size_t len0, len1;
    uint8_t *img0 = file_slurp(path, &len0);
    struct wal_opts ro = o;
    ro.read_only = 1;
    assert_int_equal(wal_open(ctx, dir, &ro, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, count_cb, &c, &e2), JDB_OK);
    assert_int_equal(c.batches, N);
    assert_int_equal(e2, pos[N + 1]);
    assert_int_equal(wal_append_pos(w), pos[N + 1]);
    uint8_t pl[8] = {0};
    uint64_t p1, p2;
    assert_int_equal(wal_append_record(w, LOG_REC_MOVE, pl, sizeof pl, &p1, &p2), JDB_EREADONLY);
    assert_int_equal(gen_append(w, &g, seed, N + 9, &end, NULL), JDB_EREADONLY);
    assert_int_equal(wal_flush(w), JDB_EREADONLY);
    assert_int_equal(wal_sync(w), JDB_OK);   /* nothing to make durable */
    wal_close(w);
    uint8_t *img1 = file_slurp(path, &len1);
    assert_true(len0 == len1);
    assert_memory_equal(img0, img1, len0);
    dir_list(dir, after, sizeof after);
    assert_string_equal(before, after);
    free(img0);
    free(img1);
    memset(&c, 0, sizeof c);
  }
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, count_cb, &c, &e2), JDB_OK);
  assert_int_equal(c.batches, N);
  assert_int_equal(e2, pos[N + 1]);
  /* The stale records are gone from the file. */
  file_pread(path, lo, now, hi - lo);
  assert_memory_equal(now, z, hi - lo);
  /* A new record ending exactly where the last stale one began; then the log ends. */
  uint32_t plen = (uint32_t)(LOG_POS_OFF(pos[N + 3]) - lo) - LOG_REC_HDR_SIZE;
  uint8_t *payload = calloc(1, plen + 1);
  uint64_t mpos, mend;
  assert_int_equal(wal_append_record(w, LOG_REC_MOVE, payload, plen, &mpos, &mend), JDB_OK);
  assert_int_equal(mpos, pos[N + 1]);
  assert_int_equal(mend, pos[N + 3]);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  memset(&c, 0, sizeof c);
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, count_cb, &c, &e2), JDB_OK);
  assert_int_equal(c.batches, N);        /* not N + 1: record N + 3 does not come back */
  assert_int_equal(c.moves, 1);
  assert_int_equal(e2, pos[N + 3]);
  wal_close(w);
  free(z);
  free(now);
  free(payload);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* Read-only opens of a missing directory (not created), an empty one (no segment created) and a
   log over three segments (every record replayed, nothing written, a segment drop refused). */
static void test_read_only_open(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x40ad;
  const char *dir = tutil_tmpdir("wal_ro");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB}, ro = o;
  ro.read_only = 1;
  char missing[4096], list[4096];
  tutil_path(missing, sizeof missing, dir, "nope");
  struct wal *w = NULL;
  assert_int_not_equal(wal_open(ctx, missing, &ro, &w), JDB_OK);
  assert_null(w);
  assert_false(file_exists(missing));
  assert_int_equal(wal_open(ctx, dir, &ro, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  uint8_t pl[8] = {0};
  assert_int_equal(wal_append_record(w, LOG_REC_MOVE, pl, sizeof pl, NULL, NULL), JDB_EREADONLY);
  wal_close(w);
  dir_list(dir, list, sizeof list);
  assert_string_equal(list, "");
  /* records over three segments (rolls write END records), synced */
  struct gen g;
  gen_init(&g, &SH_SMALL);
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  uint64_t end = 0, n = 0;
  while (LOG_POS_SEG(wal_append_pos(w)) < 3)
    assert_int_equal(gen_append(w, &g, seed, ++n, &end, NULL), JDB_OK);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  char before[4096], after[4096], path[4096];
  dir_list_segments(dir, before, sizeof before);
  assert_int_equal(wal_open(ctx, dir, &ro, &w), JDB_OK);
  struct count_rp c = {0};
  assert_int_equal(wal_replay(w, 0, count_cb, &c, NULL), JDB_OK);
  assert_true(c.batches == n);
  assert_int_equal(wal_segment_drop(w, 1), JDB_EREADONLY);
  wal_close(w);
  dir_list_segments(dir, after, sizeof after);
  assert_string_equal(before, after);
  assert_true(file_exists(seg_path(path, sizeof path, dir, 1)));
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* 4. Damaged records: durable ones are corruption, the unsynced last one is a torn tail */

/* The evidence scan after a damaged record (wal_check_tail) looks at every aligned offset of the
   rest of the segment, across its read windows (1 MiB): record a, then a 2.5 MiB value of random
   bytes (out of line) and its record b, each made durable in turn; a damaged a is corruption, b
   saying the log was durable past it. With everything after a zeroed there is no evidence: a is
   a torn tail and the log goes on where it began. */
static void test_tail_evidence_far(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x6767;
  const char *dir = tutil_tmpdir("wal_far");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = 8 * MIB, .inline_max = 64};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  enum { BIG = 5 * (MIB / 2) };
  uint8_t *val = malloc(BIG);
  assert_non_null(val);
  struct tutil_rng rng;
  tutil_rng_init(&rng, seed);
  tutil_rng_fill(&rng, val, BIG);
  struct wal_op a = {.kind = WAL_OP_DEL, .key = "a", .klen = 1};
  struct wal_op big = {.kind = WAL_OP_PUT, .key = "b", .klen = 1, .val = val, .vlen = BIG};
  uint64_t end, pos_a = wal_append_pos(w);
  assert_int_equal(wal_append(w, 1, 1, 0, &a, 1, NULL, &end), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  assert_int_equal(wal_append(w, 1, 2, 0, &big, 1, NULL, &end), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  wal_close(w);
  assert_int_equal(LOG_POS_SEG(end), LOG_POS_SEG(pos_a));
  assert_true(LOG_POS_OFF(end) - LOG_POS_OFF(pos_a) > 2 * MIB);
  char path[4096];
  seg_path(path, sizeof path, dir, LOG_POS_SEG(pos_a));
  flip_bit(path, LOG_POS_OFF(pos_a) + 2, 3);   /* a's checksum */
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_ECORRUPT);
  wal_close(w);
  /* everything after a zeroed: no evidence, a torn tail */
  uint8_t *zero = calloc(1, MIB);
  assert_non_null(zero);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  for (uint64_t off = LOG_POS_OFF(pos_a) + 64; off < LOG_POS_OFF(end) + 4096; off += MIB)
    assert_int_equal(pwrite(fd, zero, MIB, (off_t)off), (ssize_t)MIB);
  close(fd);
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  assert_int_equal(wal_append_pos(w), pos_a);   /* the log goes on where the damage began */
  wal_close(w);
  free(zero);
  free(val);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_bitflip_durable(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x6666;
  const char *dir = tutil_tmpdir("wal_flip");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  enum { N = 30 };
  struct gen g;
  gen_init(&g, &SH_SMALL);
  uint64_t pos[N + 2], end;
  for (uint64_t i = 1; i <= N; i++) {
    pos[i] = wal_append_pos(w);
    assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);   /* every one acknowledged */
  }
  pos[N + 1] = end;
  wal_close(w);
  char path[4096], before[4096], after[4096];
  seg_path(path, sizeof path, dir, 1);
  dir_list(dir, before, sizeof before);

  struct tutil_rng rng;
  tutil_rng_init(&rng, seed);
  uint64_t victims[] = {1, 2, 10, 15, N - 1};
  for (size_t v = 0; v < sizeof victims / sizeof *victims; v++) {
    uint64_t i = victims[v];
    uint8_t hdr[8];
    file_pread(path, LOG_POS_OFF(pos[i]), hdr, 8);
    uint32_t len = le32_get(hdr + 4);
    /* Checksum, length, type, identity, durable_pos, and payload bytes. */
    uint32_t offs[] = {0, 5, 8, 17, 25, 32, 33 + (uint32_t)tutil_rng_below(&rng, len - 33),
                       len - 1};
    for (size_t t = 0; t < sizeof offs / sizeof *offs; t++) {
      uint64_t at = LOG_POS_OFF(pos[i]) + offs[t];
      unsigned bit = (unsigned)tutil_rng_below(&rng, 8);
      flip_bit(path, at, bit);
      size_t n0;
      uint8_t *img0 = file_slurp(path, &n0);
      struct rp r;
      rp_init(&r, NULL, &SH_SMALL, seed);
      assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
      r.w = w;
      int rc = wal_replay(w, 0, rp_cb, &r, NULL);
      if (rc != JDB_ECORRUPT)
        fail_msg("record %llu byte %u bit %u flipped: replay returned %d (%s), want "
                 "JDB_ECORRUPT", (unsigned long long)i, offs[t], bit, rc, r.err);
      assert_int_equal(r.n, i - 1);     /* the prefix before the damage, nothing after */
      /* Appending is refused: the wal was not made ready. */
      struct wal_op op = {.kind = WAL_OP_DEL, .key = "k", .klen = 1};
      assert_int_equal(wal_append(w, 1, 1, 0, &op, 1, NULL, NULL), JDB_EINVAL);
      wal_close(w);
      size_t n1;
      uint8_t *img1 = file_slurp(path, &n1);
      assert_int_equal(n0, n1);
      assert_memory_equal(img0, img1, n0);
      dir_list(dir, after, sizeof after);
      assert_string_equal(before, after);
      free(img0);
      free(img1);
      rp_free(&r);
      flip_bit(path, at, bit);
    }
  }
  /* Undamaged again: everything replays. */
  struct rp r;
  rp_init(&r, NULL, &SH_SMALL, seed);
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, N);

  /* Across segments: roll twice with big records, then damage the END record of the first
     segment and the SEG record of the second; the next segment's records say they were
     durable. */
  struct gen gb;
  gen_init(&gb, &SH_ROLL);
  uint64_t idx = N;
  while (wal_segments(w, NULL, 0) < 3) {
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
    /* a big PUT to move on faster (its own seed2 range is not replay-checked below) */
    struct wal_op big = {.kind = WAL_OP_PUT, .key = "b", .klen = 1, .val = gb.vbuf,
                         .vlen = 150000};
    memset(gb.vbuf, 0x5a, 150000);
    assert_int_equal(wal_append(w, 1, ++idx, 0, &big, 1, NULL, &end), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  }
  wal_close(w);
  rp_free(&r);
  gen_free(&gb);
  /* Where is the END record of segment 1? Just after the last record there: scan for it. */
  size_t n1;
  uint8_t *img = file_slurp(path, &n1);
  uint64_t off = 0, end_off = 0;
  while (off + LOG_REC_HDR_SIZE <= n1) {
    uint32_t len = le32_get(img + off + 4);
    if (len < 32 || img[off + 8] == 0)
      break;
    if (img[off + 8] == LOG_REC_PAD && (img[off + 9] & WAL_PAD_END))
      end_off = off;
    off += layout_rec_padded(len);
  }
  free(img);
  assert_true(end_off > 0);
  char seg2[4096];
  seg_path(seg2, sizeof seg2, dir, 2);
  struct { const char *path; uint64_t off; } spots[] = {{path, end_off + 1}, {path, end_off + 20},
                                                        {seg2, 3}, {seg2, 40}};
  dir_list(dir, before, sizeof before);
  for (size_t t = 0; t < sizeof spots / sizeof *spots; t++) {
    flip_bit(spots[t].path, spots[t].off, 2);
    size_t na, nb;
    uint8_t *ia = file_slurp(spots[t].path, &na);
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_ECORRUPT);
    wal_close(w);
    uint8_t *ib = file_slurp(spots[t].path, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na);
    dir_list(dir, after, sizeof after);
    assert_string_equal(before, after);
    free(ia);
    free(ib);
    flip_bit(spots[t].path, spots[t].off, 2);
  }
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  wal_close(w);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_bitflip_tail(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x7777;
  const char *dir = tutil_tmpdir("wal_fliptail");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct gen g;
  gen_init(&g, &SH_SMALL);
  struct tutil_rng rng;
  tutil_rng_init(&rng, seed);
  for (int round = 0; round < 8; round++) {
    tutil_rmrf(dir);
    struct wal *w = NULL;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
    enum { N = 30 };
    uint64_t end;
    for (uint64_t i = 1; i <= N; i++) {
      assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
      assert_int_equal(wal_wait(w, end, i % 3 ? WAL_WRITTEN : WAL_DURABLE), JDB_OK);
    }
    assert_int_equal(wal_sync(w), JDB_OK);
    /* Records written after the last fdatasync; a bit flips in the last one. */
    uint64_t last_pos = 0;
    for (uint64_t i = N + 1; i <= N + 3; i++) {
      last_pos = wal_append_pos(w);
      assert_int_equal(gen_append(w, &g, seed, i, &end, NULL), JDB_OK);
      assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
    }
    wal_close(w);
    char path[4096];
    seg_path(path, sizeof path, dir, 1);
    uint8_t hdr[8];
    file_pread(path, LOG_POS_OFF(last_pos), hdr, 8);
    uint32_t len = le32_get(hdr + 4);
    flip_bit(path, LOG_POS_OFF(last_pos) + tutil_rng_below(&rng, len),
             (unsigned)tutil_rng_below(&rng, 8));
    struct rp r;
    rp_init(&r, NULL, &SH_SMALL, seed);
    uint64_t e2;
    w = open_replay(ctx, dir, &o, &r, &e2);
    assert_int_equal(r.n, N + 2);
    assert_int_equal(e2, last_pos);
    uint64_t seed2 = seed + 99 + (uint64_t)round;
    for (uint64_t i = N + 3; i <= N + 6; i++)
      assert_int_equal(gen_append(w, &g, seed2, i, &end, NULL), JDB_OK);
    assert_int_equal(wal_sync(w), JDB_OK);
    wal_close(w);
    rp_free(&r);
    rp_init(&r, NULL, &SH_SMALL, seed);
    r.seed2 = seed2;
    r.seed2_from = N + 3;
    w = open_replay(ctx, dir, &o, &r, NULL);
    assert_int_equal(r.n, N + 6);
    wal_close(w);
    rp_free(&r);
  }
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* 5. Simulated power loss after every operation of a workload */

#define CW_RECORDS 48

struct cw {
  uint64_t appended;          /* records appended (buffered at least) */
  uint64_t acked_durable;     /* highest idx acknowledged WAL_DURABLE */
  uint64_t acked_written;     /* highest idx acknowledged WAL_WRITTEN or better */
  int failed;                 /* an error stopped the workload */
};

/* Appends CW_RECORDS records of SH_CRASH (several segment rolls with 1 MiB segments), waiting
   WRITTEN, DURABLE or not at all in a fixed pattern, until the first error. */
static void crash_workload(struct fs_ctx *ctx, const char *dir, uint64_t seed, struct cw *cw)
{
  memset(cw, 0, sizeof *cw);
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  if (wal_open(ctx, dir, &o, &w) != JDB_OK) {
    cw->failed = 1;
    return;
  }
  if (wal_replay(w, 0, NULL, NULL, NULL) != JDB_OK) {
    cw->failed = 1;
    wal_close(w);
    return;
  }
  struct gen g;
  gen_init(&g, &SH_CRASH);
  for (uint64_t i = 1; i <= CW_RECORDS; i++) {
    uint64_t end;
    if (gen_append(w, &g, seed, i, &end, NULL) != JDB_OK) {
      cw->failed = 1;
      break;
    }
    cw->appended = i;
    int level = i % 4 == 0 ? WAL_DURABLE : i % 4 == 2 ? 0 : WAL_WRITTEN;
    if (level == 0) {
      if (wal_flush(w) != JDB_OK) {
        cw->failed = 1;
        break;
      }
      continue;
    }
    if (wal_wait(w, end, level) != JDB_OK) {
      cw->failed = 1;
      break;
    }
    cw->acked_written = i;
    if (level == WAL_DURABLE)
      cw->acked_durable = i;
  }
  gen_free(&g);
  wal_close(w);
}

static const char *policy_name(unsigned p)
{
  return p == FS_CRASH_DROP ? "DROP" : p == FS_CRASH_TEAR ? "TEAR" : p == FS_CRASH_KEEP ? "KEEP"
                                                                                          : "RANDOM";
}

/* After the crash: reopen (same revived ctx or a fresh one), replay, check, append, replay. */
static void crash_check(struct fs_ctx *ctx, const char *dir, uint64_t seed, const struct cw *cw,
                        unsigned policy, uint64_t n, uint64_t *replayed)
{
  struct wal_opts o = {.segment_bytes = MIB};
  struct rp r;
  rp_init(&r, NULL, &SH_CRASH, seed);
  r.check_vrefs = 1;
  struct wal *w = NULL;
  int rc = wal_open(ctx, dir, &o, &w);
  if (rc != JDB_OK)
    fail_msg("crash at op %llu (%s): wal_open: %d", (unsigned long long)n, policy_name(policy),
             rc);
  r.w = w;
  rc = wal_replay(w, 0, rp_cb, &r, NULL);
  if (rc != JDB_OK || r.err[0])
    fail_msg("crash at op %llu (%s): replay %d: %s", (unsigned long long)n, policy_name(policy),
             rc, r.err);
  if (r.n < cw->acked_durable || r.n > cw->appended ||
      (policy == FS_CRASH_KEEP && r.n < cw->acked_written))
    fail_msg("crash at op %llu (%s): replayed 1..%llu; appended %llu, acknowledged written %llu, "
             "durable %llu", (unsigned long long)n, policy_name(policy),
             (unsigned long long)r.n, (unsigned long long)cw->appended,
             (unsigned long long)cw->acked_written, (unsigned long long)cw->acked_durable);
  *replayed = r.n;
  /* The log goes on after the recovered prefix, with nothing stale after it. */
  uint64_t m = r.n, end;
  struct gen g;
  gen_init(&g, &SH_CRASH);
  uint64_t seed2 = seed ^ 0xfeed;
  for (uint64_t i = m + 1; i <= m + 2; i++)
    assert_int_equal(gen_append(w, &g, seed2, i, &end, NULL), JDB_OK);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  rp_free(&r);
  gen_free(&g);
  rp_init(&r, NULL, &SH_CRASH, seed);
  r.seed2 = seed2;
  r.seed2_from = m + 1;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  r.w = w;
  rc = wal_replay(w, 0, rp_cb, &r, NULL);
  if (rc != JDB_OK || r.err[0] || r.n != m + 2)
    fail_msg("crash at op %llu (%s): second replay %d, %llu records (want %llu): %s",
             (unsigned long long)n, policy_name(policy), rc, (unsigned long long)r.n,
             (unsigned long long)m + 2, r.err);
  wal_close(w);
  rp_free(&r);
}

static void test_crash_sweep(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x8888;
  const char *dir = tutil_tmpdir("wal_crash");
  /* Dry run: how many data ops does the workload issue? */
  struct fs_ctx *ctx = fctx_new(seed);
  struct cw cw;
  crash_workload(ctx, dir, seed, &cw);
  assert_int_equal(cw.failed, 0);
  assert_int_equal(cw.appended, CW_RECORDS);
  uint64_t total = fs_faulty_count(ctx, FS_FT_DATA);
  uint32_t segs[64];
  struct wal *w = NULL;
  struct wal_opts o = {.segment_bytes = MIB};
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  size_t nsegs = wal_segments(w, segs, 64);
  wal_close(w);
  fs_ctx_destroy(ctx);
  print_message("  workload: %d records, %zu segments, %llu data ops\n", CW_RECORDS, nsegs,
                (unsigned long long)total);
  assert_true(nsegs >= 3);     /* at least two rolls (more than 2 MiB in 1 MiB segments) */

  /* Power loss at each op, with several policies. */
  struct { unsigned policy; uint64_t salt; } pol[] = {
    {FS_CRASH_DROP, 1}, {FS_CRASH_TEAR, 2}, {FS_CRASH_RANDOM, 3}, {FS_CRASH_RANDOM, 4},
    {FS_CRASH_KEEP, 5}};
  unsigned npol = sizeof pol / sizeof *pol;
  /* At every op: DROP and RANDOM; TEAR, the second RANDOM seed and KEEP take turns (uring
     run). */
  uint64_t runs = 0, lost_any = 0, sum_replayed = 0;
  for (uint64_t n = 1; n <= total + 1; n++) {
    for (unsigned p = 0; p < npol; p++) {
      if (p >= 1 && p != 2 && (p == 1 ? 0 : p == 3 ? 1 : 2) != n % 3)
        continue;
      /* The psync run (same wal code, other backend) only DROP and RANDOM. */
      if (strcmp(g_backend, "psync") == 0 && p != 0 && p != 2)
        continue;
      tutil_rmrf(dir);
      uint64_t fseed = seed ^ (n * 1000003u) ^ (pol[p].salt << 48);
      ctx = fctx_new(fseed);
      struct fs_fault_rule rule = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = n,
                                   .crash_policy = pol[p].policy};
      assert_int_equal(fs_faulty_add_rule(ctx, &rule), JDB_OK);
      crash_workload(ctx, dir, seed, &cw);
      /* A crash past the workload's ops cannot fail it; one inside may not either when it hits
         the background preparation of a segment the workload never reaches (its last ops). */
      assert_true(!cw.failed || n <= total);
      fs_faulty_clear_rules(ctx);
      if ((n + p) % 2 == 0) {
        fs_faulty_revive(ctx);
      } else {
        fs_ctx_destroy(ctx);
        ctx = ctx_new();
      }
      uint64_t m = 0;
      crash_check(ctx, dir, seed, &cw, pol[p].policy, n, &m);
      fs_ctx_destroy(ctx);
      runs++;
      lost_any += m < cw.acked_written;
      sum_replayed += m;
    }
  }
  print_message("  %llu crash runs; %llu lost acknowledged-written (not durable) records\n",
                (unsigned long long)runs, (unsigned long long)lost_any);
  assert_true(lost_any > 0);      /* the sweep did simulate losses */
  tutil_rmrf(dir);
}

/* The same with fibers: 8 writers with mixed levels, power loss at every op. */
struct cwf {
  struct wal *w;
  uint64_t seed;
  uint64_t *next_idx;
  uint64_t *acked_durable;
  uint64_t *appended;
  int failed;
  struct gen g;
  int id;
};

static void cwf_main(void *arg)
{
  struct cwf *f = arg;
  for (int r = 0; r < 5 && !f->failed; r++) {
    uint64_t idx = ++*f->next_idx, end;
    if (gen_append(f->w, &f->g, f->seed, idx, &end, NULL) != JDB_OK) {
      f->failed = 1;
      return;
    }
    if (idx > *f->appended)
      *f->appended = idx;
    int level = (r + f->id) % 2 ? WAL_DURABLE : WAL_WRITTEN;
    if (wal_wait(f->w, end, level) != JDB_OK) {
      f->failed = 1;
      return;
    }
    if (level == WAL_DURABLE && idx > *f->acked_durable)
      *f->acked_durable = idx;
  }
}

static void crash_fibers_run(struct fs_ctx *ctx, const char *dir, uint64_t seed, struct cw *cw)
{
  memset(cw, 0, sizeof *cw);
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  if (wal_open(ctx, dir, &o, &w) != JDB_OK) {
    cw->failed = 1;
    return;
  }
  if (wal_replay(w, 0, NULL, NULL, NULL) != JDB_OK) {
    cw->failed = 1;
    wal_close(w);
    return;
  }
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  uint64_t idx = 0, acked = 0, appended = 0;
  struct cwf f[8];
  for (int i = 0; i < 8; i++) {
    f[i] = (struct cwf){.w = w, .seed = seed, .next_idx = &idx, .acked_durable = &acked,
                        .appended = &appended, .id = i};
    gen_init(&f[i].g, &SH_CRASH);
    assert_int_equal(coro_spawn(s, cwf_main, &f[i], NULL), JDB_OK);
  }
  int rc = fs_loop_run(ctx, s);
  for (int i = 0; i < 8; i++) {
    cw->failed |= f[i].failed;
    gen_free(&f[i].g);
  }
  coro_sched_destroy(s);
  if (rc != JDB_OK)
    cw->failed = 1;
  cw->appended = appended;
  cw->acked_durable = acked;
  wal_close(w);
}

static void test_crash_fibers(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x9999;
  const char *dir = tutil_tmpdir("wal_crashf");
  struct fs_ctx *ctx = fctx_new(seed);
  struct cw cw;
  crash_fibers_run(ctx, dir, seed, &cw);
  assert_int_equal(cw.failed, 0);
  assert_int_equal(cw.appended, 40);
  uint64_t total = fs_faulty_count(ctx, FS_FT_DATA);
  fs_ctx_destroy(ctx);
  print_message("  fibers workload: %llu data ops\n", (unsigned long long)total);
  for (uint64_t n = 1; n <= total; n++) {
    unsigned policy = n % 2 ? FS_CRASH_DROP : FS_CRASH_RANDOM;
    tutil_rmrf(dir);
    ctx = fctx_new(seed ^ n);
    struct fs_fault_rule rule = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = n,
                                 .crash_policy = policy};
    assert_int_equal(fs_faulty_add_rule(ctx, &rule), JDB_OK);
    crash_fibers_run(ctx, dir, seed, &cw);
    fs_faulty_clear_rules(ctx);
    fs_faulty_revive(ctx);
    uint64_t m;
    crash_check(ctx, dir, seed, &cw, policy, n, &m);
    fs_ctx_destroy(ctx);
  }
  tutil_rmrf(dir);
}

/* What a replay recovers may exist only in the page cache (the writer died, or its fdatasync
   failed, before the data was durable). Replay must make it durable before anything new is
   acknowledged on top of it. Here the fdatasync after the writer's last records fails and the
   log is reopened in the same (living) system. Twice: the failed fdatasync is an ordinary commit
   (the history ends inside a segment), or the one of a roll's END record (the history ends at
   a segment's end, and replay creates the next segment).
   Observed through the fdatasyncs replay issues, not through a simulated power loss (the faulty
   backend would see replay's fdatasync cover the dead writer's writes, since it retires them
   per inode as the kernel does, but a crash would also drop what the writer never synced, and
   this test is about which syncs replay issues). */
static void test_replay_makes_recovered_durable(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x1234;
  const char *dir = tutil_tmpdir("wal_recdur");
  /* Zero-filled preparation: its fdatasync comes after its zero writes, so the failing fdatasync
     is the roll's (a preparation that only reserves space syncs at once, and would take the
     failure instead: then the roll reports it, which test_err_enospc covers). */
  struct wal_opts o = {.segment_bytes = MIB, .zero_fill = WAL_ZERO_ALWAYS};
  for (int at_roll = 0; at_roll < 2; at_roll++) {
    tutil_rmrf(dir);
    struct fs_ctx *ctx = fctx_new(seed + (uint64_t)at_roll);
    struct wal *w = NULL;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
    struct gen g;
    gen_init(&g, &SH_SMALL);
    uint64_t idx = 0, end;
    for (int i = 0; i < 10; i++) {
      assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
      assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
    }
    for (int i = 0; i < 5; i++) {
      assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
      assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
    }
    add_rule(ctx, FS_FAULT_EIO, FS_FT_SYNC, 1);
    if (at_roll) {
      /* Two 600 KB records: the second does not fit, and the roll's fdatasync (of the first
         and the END record) fails. */
      uint8_t *v = calloc(1, 600000);
      struct wal_op big = {.kind = WAL_OP_PUT, .key = "big", .klen = 3, .val = v,
                           .vlen = 600000};
      assert_int_equal(wal_append(w, 1, idx + 1, 0, &big, 1, NULL, &end), JDB_OK);
      assert_int_equal(wal_append(w, 1, idx + 2, 0, &big, 1, NULL, &end), JDB_EIO);
      free(v);
    } else {
      assert_int_equal(wal_sync(w), JDB_EIO);
    }
    wal_close(w);
    fs_faulty_clear_rules(ctx);
    assert_true(fs_faulty_unsynced(ctx) > 0);

    /* Restart in the same system: the unsynced records are in the page cache. */
    uint64_t syncs0 = fs_faulty_count(ctx, FS_FT_SYNC);
    struct rp r;
    rp_init(&r, NULL, &SH_SMALL, seed);
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    r.w = w;
    /* (with the roll, the big record is not a gen record: the checker stops there) */
    assert_int_equal(wal_replay(w, 0, at_roll ? NULL : rp_cb, &r, NULL), JDB_OK);
    assert_int_equal(LOG_POS_SEG(wal_append_pos(w)), at_roll ? 2 : 1);
    /* The recovered segment's fdatasync (plus, after an END, the new segment's own). */
    uint64_t syncs = fs_faulty_count(ctx, FS_FT_SYNC) - syncs0;
    if (syncs < (uint64_t)(1 + at_roll))
      fail_msg("%s: replay issued %llu fdatasyncs, want %d", at_roll ? "END" : "commit",
               (unsigned long long)syncs, 1 + at_roll);
    if (!at_roll)
      assert_int_equal(r.n, idx);
    rp_free(&r);
    for (int i = 0; i < 5; i++) {
      assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
      assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
    }
    wal_close(w);
    if (!at_roll) {
      rp_init(&r, NULL, &SH_SMALL, seed);
      w = open_replay(ctx, dir, &o, &r, NULL);
      assert_int_equal(r.n, idx);
      wal_close(w);
      rp_free(&r);
    }
    gen_free(&g);
    fs_ctx_destroy(ctx);
  }
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* 6. Error paths */

static struct wal *err_setup_zero(struct fs_ctx *ctx, const char *dir, uint64_t seed,
                                  uint64_t n, struct gen *g, int zero_fill)
{
  struct wal_opts o = {.segment_bytes = MIB, .zero_fill = zero_fill};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  for (uint64_t i = 1; i <= n; i++) {
    uint64_t end;
    assert_int_equal(gen_append(w, g, seed, i, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  }
  return w;
}

static struct wal *err_setup(struct fs_ctx *ctx, const char *dir, uint64_t seed, uint64_t n,
                             struct gen *g)
{
  return err_setup_zero(ctx, dir, seed, n, g, WAL_ZERO_AUTO);
}

/* After a poisoning error: every later call reports it; reopening recovers a prefix >= durable. */
static void expect_poisoned(struct wal *w, struct gen *g, uint64_t seed, uint64_t idx, int err)
{
  uint64_t end;
  assert_int_equal(gen_append(w, g, seed, idx, &end, NULL), err);
  uint8_t p[8] = {0};
  assert_int_equal(wal_append_record(w, LOG_REC_MOVE, p, 8, NULL, NULL), err);
  assert_int_equal(wal_flush(w), err);
  /* wal_sync has something to wait for only if records are pending. */
  assert_int_equal(wal_sync(w), wal_durable_pos(w) < wal_append_pos(w) ? err : JDB_OK);
}

static void reopen_expect(struct fs_ctx *ctx, const char *dir, uint64_t seed, uint64_t lo,
                          uint64_t hi)
{
  struct wal_opts o = {.segment_bytes = MIB};
  struct rp r;
  rp_init(&r, NULL, &SH_SMALL, seed);
  struct wal *w = open_replay(ctx, dir, &o, &r, NULL);
  if (r.n < lo || r.n > hi)
    fail_msg("replayed %llu records, want %llu..%llu", (unsigned long long)r.n,
             (unsigned long long)lo, (unsigned long long)hi);
  /* And appending works again. */
  struct gen g;
  gen_init(&g, &SH_SMALL);
  uint64_t end;
  assert_int_equal(gen_append(w, &g, seed, r.n + 1, &end, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  gen_free(&g);
  wal_close(w);
  rp_free(&r);
}

static void test_err_write_eio(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0xaaaa;
  const char *dir = tutil_tmpdir("wal_eio_w");
  struct fs_ctx *ctx = fctx_new(seed);
  struct gen g;
  gen_init(&g, &SH_SMALL);
  struct wal *w = err_setup(ctx, dir, seed, 10, &g);
  add_rule(ctx, FS_FAULT_EIO, FS_FT_WRITE, 1);
  uint64_t end;
  assert_int_equal(gen_append(w, &g, seed, 11, &end, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_EIO);
  assert_true(wal_written_pos(w) < end);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_EIO);
  expect_poisoned(w, &g, seed, 12, JDB_EIO);
  wal_close(w);
  fs_faulty_clear_rules(ctx);
  reopen_expect(ctx, dir, seed, 10, 10);     /* the failed write never landed */

  /* The same inside fibers: every waiter of the failed flush gets the error. */
  tutil_rmrf(dir);
  w = err_setup(ctx, dir, seed, 5, &g);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  uint64_t idx = 5;
  struct gc f[8];
  for (int i = 0; i < 8; i++) {
    f[i] = (struct gc){.w = w, .seed = seed, .next_idx = &idx, .rounds = 3,
                       .level = i % 2 ? WAL_DURABLE : WAL_WRITTEN};
    gen_init(&f[i].g, &SH_SMALL);
    assert_int_equal(coro_spawn(s, gc_main, &f[i], NULL), JDB_OK);
  }
  add_rule(ctx, FS_FAULT_EIO, FS_FT_WRITE, 2);
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  uint64_t fails = 0;
  for (int i = 0; i < 8; i++) {
    fails += f[i].fails;
    gen_free(&f[i].g);
  }
  coro_sched_destroy(s);
  assert_int_equal(fails, 8);          /* each fiber stopped at its first failure */
  expect_poisoned(w, &g, seed, idx + 1, JDB_EIO);
  wal_close(w);
  fs_faulty_clear_rules(ctx);
  reopen_expect(ctx, dir, seed, 5, idx);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_err_sync_eio(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0xbbbb;
  const char *dir = tutil_tmpdir("wal_eio_s");
  struct fs_ctx *ctx = fctx_new(seed);
  struct gen g;
  gen_init(&g, &SH_SMALL);
  struct wal *w = err_setup(ctx, dir, seed, 10, &g);
  add_rule(ctx, FS_FAULT_EIO, FS_FT_SYNC, 1);
  uint64_t end;
  assert_int_equal(gen_append(w, &g, seed, 11, &end, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_EIO);
  assert_true(wal_durable_pos(w) < end);
  expect_poisoned(w, &g, seed, 12, JDB_EIO);
  wal_close(w);
  fs_faulty_clear_rules(ctx);
  reopen_expect(ctx, dir, seed, 10, 11);

  /* A failing fdatasync requested after a plain WRITTEN wait (sync-only flush). */
  tutil_rmrf(dir);
  w = err_setup(ctx, dir, seed, 3, &g);
  assert_int_equal(gen_append(w, &g, seed, 4, &end, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  add_rule(ctx, FS_FAULT_EIO, FS_FT_SYNC, 1);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_EIO);
  assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);   /* that level was reached */
  expect_poisoned(w, &g, seed, 5, JDB_EIO);
  wal_close(w);
  fs_faulty_clear_rules(ctx);
  reopen_expect(ctx, dir, seed, 3, 4);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_err_enospc(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0xcccc;
  const char *dir = tutil_tmpdir("wal_nospc");
  struct fs_ctx *ctx = fctx_new(seed);
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;

  /* No room for the first segment. */
  add_rule(ctx, FS_FAULT_ENOSPC, FS_FT_WRITE, 1);
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_ENOSPC);
  struct wal_op op = {.kind = WAL_OP_DEL, .key = "k", .klen = 1};
  assert_int_equal(wal_append(w, 1, 1, 0, &op, 1, NULL, NULL), JDB_EINVAL);
  wal_close(w);
  fs_faulty_clear_rules(ctx);

  /* No room for the next segment: its background preparation fails while creating the file,
     writing its zeros or reserving its space, and the roll that needs it reports that. The
     preparation starts when the segment is a quarter full, i.e. right after the big append
     below: its open of next.tmp is the next open, its first zero write the next write (the
     log's own write of the big record comes later, with wal_sync), its fallocate the next one.
     err_setup's 10 records are synced one by one, fewer than WAL_ZERO_SYNCS: WAL_ZERO_AUTO
     reserves; the write case asks for zeros. */
  struct gen g;
  gen_init(&g, &SH_SMALL);
  unsigned targets[] = {FS_FT_OPEN, FS_FT_WRITE, FS_FT_ALLOCATE};
  for (int t = 0; t < 3; t++) {
    tutil_rmrf(dir);
    w = err_setup_zero(ctx, dir, seed, 10, &g,
                       targets[t] == FS_FT_WRITE ? WAL_ZERO_ALWAYS : WAL_ZERO_AUTO);
    add_rule(ctx, FS_FAULT_ENOSPC, targets[t], 1);   /* counted from the rule on */
    uint8_t *v = calloc(1, 700000);
    struct wal_op big = {.kind = WAL_OP_PUT, .key = "big", .klen = 3, .val = v, .vlen = 700000};
    uint64_t end;
    assert_int_equal(wal_append(w, 1, 11, 0, &big, 1, NULL, &end), JDB_OK);
    assert_int_equal(wal_sync(w), JDB_OK);
    int rc = wal_append(w, 1, 12, 0, &big, 1, NULL, &end);    /* needs a roll */
    assert_int_equal(rc, JDB_ENOSPC);
    expect_poisoned(w, &g, seed, 13, JDB_ENOSPC);
    wal_close(w);
    fs_faulty_clear_rules(ctx);
    free(v);
    /* Reopen: the 10 small ones and the big one; the roll is completed now. */
    struct rp r;
    rp_init(&r, NULL, &SH_SMALL, seed);
    r.seed2_from = 11;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    r.w = w;
    assert_int_equal(wal_replay(w, 0, rp_cb, &r, NULL), 1);   /* stops at the foreign one */
    assert_int_equal(r.n, 10);
    wal_close(w);
    rp_free(&r);
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
    assert_int_equal(LOG_POS_SEG(wal_append_pos(w)), 2);
    assert_int_equal(wal_sync(w), JDB_OK);
    wal_close(w);
  }

  /* ENOSPC on a log write itself. */
  tutil_rmrf(dir);
  w = err_setup(ctx, dir, seed, 4, &g);
  add_rule(ctx, FS_FAULT_ENOSPC, FS_FT_WRITE, 1);
  uint64_t end;
  assert_int_equal(gen_append(w, &g, seed, 5, &end, NULL), JDB_OK);
  assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_ENOSPC);
  expect_poisoned(w, &g, seed, 6, JDB_ENOSPC);
  wal_close(w);
  fs_faulty_clear_rules(ctx);
  reopen_expect(ctx, dir, seed, 4, 4);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_bad_args(void **state)
{
  (void)state;
  const char *dir = tutil_tmpdir("wal_args");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB + MIB / 2};    /* rounded up to 2 MiB */
  struct wal *w = (struct wal *)1;
  assert_int_equal(wal_open(NULL, dir, &o, &w), JDB_EINVAL);
  assert_null(w);
  assert_int_equal(wal_open(ctx, NULL, &o, &w), JDB_EINVAL);
  assert_int_equal(wal_open(ctx, "", &o, &w), JDB_EINVAL);
  assert_int_equal(wal_open(ctx, dir, &o, NULL), JDB_EINVAL);
  struct wal_opts tiny = {.segment_bytes = 4096};
  assert_int_equal(wal_open(ctx, dir, &tiny, &w), JDB_EINVAL);
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);

  uint8_t key[WAL_KEY_MAX + 1] = {0}, val[16] = {0};
  struct wal_op op = {.kind = WAL_OP_PUT, .key = key, .klen = 4, .val = val, .vlen = 16};
  /* Before replay. */
  assert_int_equal(wal_append(w, 1, 1, 0, &op, 1, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append_record(w, LOG_REC_MOVE, val, 16, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_segment_drop(w, 1), JDB_EINVAL);
  assert_int_equal(wal_replay(NULL, 0, NULL, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_EINVAL);   /* only once */
  char p[4096];
  struct stat st;
  assert_int_equal(stat(seg_path(p, sizeof p, dir, 1), &st), 0);
  assert_int_equal(st.st_size, 2 * MIB);

  uint64_t pos0 = wal_append_pos(w);
  assert_int_equal(wal_append(NULL, 1, 1, 0, &op, 1, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append(w, 1, 1, 0, NULL, 1, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append(w, 1, 1, 0, &op, 0, NULL, NULL), JDB_EINVAL);
  struct wal_op bad = op;
  bad.klen = 0;
  assert_int_equal(wal_append(w, 1, 1, 0, &bad, 1, NULL, NULL), JDB_EINVAL);
  bad.klen = WAL_KEY_MAX + 1;
  assert_int_equal(wal_append(w, 1, 1, 0, &bad, 1, NULL, NULL), JDB_EINVAL);
  bad = op;
  bad.key = NULL;
  assert_int_equal(wal_append(w, 1, 1, 0, &bad, 1, NULL, NULL), JDB_EINVAL);
  bad = op;
  bad.vlen = WAL_VAL_MAX + 1;         /* refused before anything reads the value */
  assert_int_equal(wal_append(w, 1, 1, 0, &bad, 1, NULL, NULL), JDB_EINVAL);
  bad = op;
  bad.val = NULL;
  assert_int_equal(wal_append(w, 1, 1, 0, &bad, 1, NULL, NULL), JDB_EINVAL);
  bad = op;
  bad.kind = 7;
  assert_int_equal(wal_append(w, 1, 1, 0, &bad, 1, NULL, NULL), JDB_EINVAL);
  /* A bad op after good ones rejects the whole batch. */
  struct wal_op two[2] = {op, op};
  two[1].klen = 0;
  assert_int_equal(wal_append(w, 1, 1, 0, two, 2, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append_record(NULL, LOG_REC_MOVE, val, 16, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append_record(w, LOG_REC_BATCH, val, 16, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append_record(w, LOG_REC_SEG, val, 16, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append_record(w, LOG_REC_MOVE, NULL, 16, NULL, NULL), JDB_EINVAL);
  assert_int_equal(wal_append_pos(w), pos0);      /* nothing was appended */
  /* Limits themselves are fine: a WAL_KEY_MAX-byte key, an empty value, a delete. */
  struct wal_op ok[3] = {{.kind = WAL_OP_PUT, .key = key, .klen = WAL_KEY_MAX, .val = val,
                          .vlen = 0},
                         {.kind = WAL_OP_DEL, .key = key, .klen = 1},
                         {.kind = WAL_OP_PUT, .key = key, .klen = 1, .val = NULL, .vlen = 0}};
  uint64_t end;
  assert_int_equal(wal_append(w, 1, 1, 0, ok, 3, NULL, &end), JDB_OK);
  uint64_t mpos, mend;
  assert_int_equal(wal_append_record(w, LOG_REC_MOVE, NULL, 0, &mpos, &mend), JDB_OK);
  assert_int_equal(mpos, end);
  assert_true(mend == mpos + LOG_REC_HDR_SIZE);

  assert_int_equal(wal_wait(w, wal_append_pos(w) + 8, WAL_WRITTEN), JDB_EINVAL);
  assert_int_equal(wal_wait(w, wal_append_pos(w), 0), JDB_EINVAL);
  assert_int_equal(wal_wait(w, wal_append_pos(w), 3), JDB_EINVAL);
  assert_int_equal(wal_wait(NULL, 0, WAL_WRITTEN), JDB_EINVAL);
  assert_int_equal(wal_sync(NULL), JDB_EINVAL);
  assert_int_equal(wal_flush(NULL), JDB_EINVAL);
  assert_int_equal(wal_wait(w, wal_append_pos(w), WAL_DURABLE), JDB_OK);
  assert_int_equal(wal_segment_drop(w, 1), JDB_EINVAL);      /* the current one */
  assert_int_equal(wal_segment_drop(w, 2), JDB_EINVAL);      /* the future */
  assert_int_equal(wal_segment_drop(NULL, 1), JDB_EINVAL);
  uint8_t buf[16];
  assert_int_equal(wal_read(w, wal_append_pos(w), buf, 8), JDB_ECORRUPT);
  assert_int_equal(wal_read(w, LOG_POS(1, 2 * MIB), buf, 8), JDB_ECORRUPT);
  assert_int_equal(wal_read(w, pos0, buf, 0), JDB_OK);
  wal_close(w);
  wal_close(NULL);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* How new segments are prepared (wal_opts.zero_fill). AUTO zero-fills the segment a new log
   starts with and, later, a segment only when at least WAL_ZERO_SYNCS fdatasyncs were made since
   the previous segment began; otherwise it reserves the space (fallocate), which reads as zeros
   just the same: replay over segments prepared either way yields every record, in order, with
   its seq. ALWAYS and NEVER force one way. */
struct zf_count {
  uint64_t n, bad;
};

static int zf_cb(void *ud, const struct wal_rec *rec)
{
  struct zf_count *c = ud;
  struct wal_batch b;
  if (rec->type != LOG_REC_BATCH || wal_batch_open(rec, &b) != JDB_OK || b.seq != c->n + 1)
    c->bad++;
  c->n++;
  return 0;
}

static void test_zero_fill_policy(void **state)
{
  (void)state;
  const char *dir = tutil_tmpdir("wal_zero");
  struct fs_ctx *ctx = ctx_new();
  static uint8_t val[4000];
  const int modes[] = {WAL_ZERO_AUTO, WAL_ZERO_ALWAYS, WAL_ZERO_NEVER};
  for (int m = 0; m < 3; m++) {
    tutil_rmrf(dir);
    struct wal_opts o = {.segment_bytes = MIB, .zero_fill = modes[m]};
    struct wal *w = NULL;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
    uint64_t seq = 0, end;
    struct wal_op op = {.kind = WAL_OP_PUT, .key = "k", .klen = 1, .val = val, .vlen = 100};
    /* Handed to the kernel only: 4 segments, the roll's and the preparation's syncs alone. */
    while (LOG_POS_SEG(wal_append_pos(w)) < 4) {
      assert_int_equal(wal_append(w, 1, ++seq, 0, &op, 1, NULL, &end), JDB_OK);
      assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
    }
    struct wal_stats s1, s2;
    wal_stats_get(w, &s1);
    assert_int_equal(s1.segments_created, 4);
    assert_int_equal(s1.segments_reused, 0);
    uint64_t want_zeroed = modes[m] == WAL_ZERO_AUTO     ? 1
                           : modes[m] == WAL_ZERO_ALWAYS ? 4
                                                         : 0;
    assert_int_equal(s1.bytes_prepared, want_zeroed * MIB);
    assert_int_equal(s1.segments_allocated, 4 - want_zeroed);
    /* Every record durable: 4 KB records, about 250 fdatasyncs per segment. The segment after
       the current one may have been prepared before them; the one after that sees them. */
    op.vlen = sizeof val;
    while (LOG_POS_SEG(wal_append_pos(w)) < 7) {
      assert_int_equal(wal_append(w, 1, ++seq, 0, &op, 1, NULL, &end), JDB_OK);
      assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
    }
    wal_stats_get(w, &s2);
    assert_int_equal(s2.segments_created, 7);
    uint64_t zeroed = (s2.bytes_prepared - s1.bytes_prepared) / MIB;
    assert_int_equal(zeroed + s2.segments_allocated - s1.segments_allocated, 3);
    if (modes[m] == WAL_ZERO_NEVER)
      assert_int_equal(zeroed, 0);
    else
      assert_true(zeroed >= 2);
    wal_close(w);
    /* Replay: every record of the 7 segments, in order. */
    struct zf_count c = {0, 0};
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, zf_cb, &c, NULL), JDB_OK);
    assert_int_equal(c.n, seq);
    assert_int_equal(c.bad, 0);
    wal_close(w);
  }
  struct wal_opts bad = {.zero_fill = 3};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &bad, &w), JDB_EINVAL);
  assert_null(w);
  tutil_rmrf(dir);
  fs_ctx_destroy(ctx);
}

static void test_segment_drop_reuse(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0xdddd;
  const char *dir = tutil_tmpdir("wal_drop");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct gen g;
  gen_init(&g, &SH_ROLL);
  uint64_t idx = 0, end;
  uint64_t first_in[64] = {0};      /* first record idx of each segment */
  struct wal_vref ref1 = {0, 0};
  uint32_t segs[64];
  while (wal_segments(w, segs, 64) < 5) {
    struct wal_vref vr[GEN_OPS_MAX];
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, vr), JDB_OK);
    uint32_t s = LOG_POS_SEG(end);
    if (!first_in[s])
      first_in[s] = idx;
    if (s == 1 && !ref1.len)
      for (uint32_t k = 0; k < g.nops; k++)
        if (vr[k].len)
          ref1 = vr[k];
    assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  }
  assert_true(ref1.len > 0);
  uint8_t *tmp = malloc(ref1.len + 4);
  assert_int_equal(wal_read(w, ref1.pos, tmp, ref1.len + 4), JDB_OK);
  char p[4096], sp[4096];
  struct wal_stats st;
  wal_stats_get(w, &st);
  assert_int_equal(st.segments_reused, 0);
  /* Drop 1, 2, 3: two become spares, the third is unlinked. */
  assert_int_equal(wal_segment_drop(w, 1), JDB_OK);
  assert_false(file_exists(seg_path(p, sizeof p, dir, 1)));
  assert_true(file_exists(tutil_path(sp, sizeof sp, dir, "spare-0.log")));
  assert_int_equal(wal_segment_drop(w, 1), JDB_NOTFOUND);
  assert_int_equal(wal_read(w, ref1.pos, tmp, ref1.len + 4), JDB_ECORRUPT);
  assert_int_equal(wal_segment_drop(w, 2), JDB_OK);
  assert_int_equal(wal_segment_drop(w, 3), JDB_OK);
  size_t n = wal_segments(w, segs, 64);
  assert_int_equal(n, 2);
  assert_int_equal(segs[0], 4);
  assert_int_equal(segs[1], 5);
  assert_false(file_exists(seg_path(p, sizeof p, dir, 3)));
  char listing[4096];
  dir_list_segments(dir, listing, sizeof listing);
  assert_string_equal(listing, "00000004.log\n00000005.log\nspare-0.log\nspare-1.log\n");
  /* The next rolls take the spares instead of writing new files. */
  wal_stats_get(w, &st);
  uint64_t created0 = st.segments_created;
  while (wal_segments(w, segs, 64) < 4) {
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
    uint32_t s = LOG_POS_SEG(end);
    if (!first_in[s])
      first_in[s] = idx;
    assert_int_equal(wal_wait(w, end, WAL_DURABLE), JDB_OK);
  }
  wal_stats_get(w, &st);
  assert_int_equal(st.segments_reused, 2);
  assert_int_equal(st.segments_created, created0);
  dir_list_segments(dir, listing, sizeof listing);
  assert_string_equal(listing, "00000004.log\n00000005.log\n00000006.log\n00000007.log\n");
  /* A roll with no spare left creates a file again. */
  while (wal_segments(w, segs, 64) < 5) {
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
    uint32_t s = LOG_POS_SEG(end);
    if (!first_in[s])
      first_in[s] = idx;
  }
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_stats_get(w, &st);
  assert_int_equal(st.segments_created, created0 + 1);
  wal_close(w);

  /* Replay starts at the oldest remaining segment, with its first record; the reused files'
     old contents never show up. */
  struct rp r;
  rp_init(&r, NULL, &SH_ROLL, seed);
  r.first = first_in[4];
  r.check_vrefs = 1;
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, idx - first_in[4] + 1);
  wal_close(w);
  rp_free(&r);
  /* Spares survive a reopen: drop, close, reopen, roll. */
  rp_init(&r, NULL, &SH_ROLL, seed);
  r.first = first_in[4];
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(wal_segment_drop(w, 4), JDB_OK);
  wal_close(w);
  rp_free(&r);
  rp_init(&r, NULL, &SH_ROLL, seed);
  r.first = first_in[5];
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, idx - first_in[5] + 1);
  uint32_t before = (uint32_t)wal_segments(w, segs, 64);
  while (wal_segments(w, segs, 64) == before)
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
  wal_stats_get(w, &st);
  assert_int_equal(st.segments_reused, 1);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  rp_free(&r);
  free(tmp);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_missing_middle_segment(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0xeeee;
  const char *dir = tutil_tmpdir("wal_hole");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct gen g;
  gen_init(&g, &SH_ROLL);
  uint64_t idx = 0, end;
  while (wal_segments(w, NULL, 0) < 4) {
    assert_int_equal(gen_append(w, &g, seed, ++idx, &end, NULL), JDB_OK);
    assert_int_equal(wal_wait(w, end, WAL_WRITTEN), JDB_OK);
  }
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  char p[4096], before[4096], after[4096];
  for (uint32_t gone = 2; gone <= 3; gone++) {
    char keep[4096];
    seg_path(p, sizeof p, dir, gone);
    snprintf(keep, sizeof keep, "%s/../hole-%u.save", dir, gone);
    assert_int_equal(rename(p, keep), 0);
    dir_list(dir, before, sizeof before);
    struct rp r;
    rp_init(&r, NULL, &SH_ROLL, seed);
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    r.w = w;
    assert_int_equal(wal_replay(w, 0, rp_cb, &r, NULL), JDB_ECORRUPT);
    assert_string_equal(r.err, "");
    wal_close(w);
    rp_free(&r);
    dir_list(dir, after, sizeof after);
    assert_string_equal(before, after);       /* nothing removed, nothing created */
    assert_int_equal(rename(keep, p), 0);
  }
  struct rp r;
  rp_init(&r, NULL, &SH_ROLL, seed);
  w = open_replay(ctx, dir, &o, &r, NULL);
  assert_int_equal(r.n, idx);
  wal_close(w);
  rp_free(&r);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Decoding untrusted batch payloads */

static void decode_all(const uint8_t *p, uint32_t len, uint64_t pos)
{
  struct wal_rec rec = {.pos = pos, .end = pos + 64 + len, .type = LOG_REC_BATCH,
                        .payload = p, .len = len};
  struct wal_batch b;
  if (wal_batch_open(&rec, &b) != JDB_OK)
    return;
  assert_true(b.nops >= 1 && b.nops <= len);
  for (uint32_t i = 0; i <= b.nops; i++) {
    struct wal_op_view v;
    int rc = wal_batch_next(&b, &v);
    if (rc == JDB_NOTFOUND) {
      assert_int_equal(i, b.nops);
      return;
    }
    if (rc != JDB_OK) {
      assert_int_equal(rc, JDB_ECORRUPT);
      return;
    }
    assert_true(v.kind == WAL_OP_PUT || v.kind == WAL_OP_DEL);
    assert_true(v.klen >= 1 && v.klen <= WAL_KEY_MAX);
    assert_true(v.key >= p && v.key + v.klen <= p + len);
    if (v.vlen) {
      assert_true(v.val >= p && v.val + v.vlen <= p + len);
    }
    if (v.vref.len) {
      assert_int_equal(v.vref.len, v.vlen);
      assert_true(v.vref.pos + 4 + v.vlen <= pos + LOG_REC_HDR_SIZE + len);
    }
  }
  fail_msg("wal_batch_next went past nops");
}

static void test_batch_decode_fuzz(void **state)
{
  (void)state;
  struct tutil_rng rng;
  tutil_rng_init(&rng, tutil_seed() ^ 0xf00d);
  /* A MOVE record is not a batch. */
  uint8_t x[64] = {0};
  struct wal_rec mv = {.pos = LOG_POS(1, 64), .type = LOG_REC_MOVE, .payload = x, .len = 64};
  struct wal_batch b;
  assert_int_equal(wal_batch_open(&mv, &b), JDB_ECORRUPT);

  /* Valid payloads to mutate: take them from a real log. */
  const char *dir = tutil_tmpdir("wal_fuzz");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = {.segment_bytes = MIB, .inline_max = 16};
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  struct gen g;
  gen_init(&g, &SH_SMALL);
  uint64_t seed = tutil_seed();
  for (uint64_t i = 1; i <= 64; i++)
    assert_int_equal(gen_append(w, &g, seed, i, NULL, NULL), JDB_OK);
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  char p[4096];
  size_t n;
  uint8_t *img = file_slurp(seg_path(p, sizeof p, dir, 1), &n);
  struct { uint32_t off, len; } recs[64];
  int nrec = 0;
  for (uint64_t off = 0; off + 32 <= n && nrec < 64;) {
    uint32_t len = le32_get(img + off + 4);
    if (len < 32)
      break;
    if (img[off + 8] == LOG_REC_BATCH)
    {
      recs[nrec].off = (uint32_t)off + 32;
      recs[nrec++].len = len - 32;
    }
    off += layout_rec_padded(len);
  }
  assert_int_equal(nrec, 64);

  uint64_t opened = 0;
  for (int i = 0; i < 100000; i++) {
    uint32_t len;
    uint8_t *buf;
    if (i % 2 == 0) {
      /* Random bytes, with a plausible header now and then. */
      len = (uint32_t)tutil_rng_below(&rng, 200);
      buf = malloc(len ? len : 1);
      tutil_rng_fill(&rng, buf, len);
      if (len > 25 && i % 4 == 0)
        buf[24] = (uint8_t)(1 + tutil_rng_below(&rng, 4));
    } else {
      /* A real payload with a few bytes changed, maybe cut short. */
      int k = (int)tutil_rng_below(&rng, (uint64_t)nrec);
      len = recs[k].len;
      if (tutil_rng_below(&rng, 4) == 0)
        len = (uint32_t)tutil_rng_below(&rng, len + 1);
      buf = malloc(len ? len : 1);
      memcpy(buf, img + recs[k].off, len);
      int flips = 1 + (int)tutil_rng_below(&rng, 3);
      for (int f = 0; f < flips && len; f++)
        buf[tutil_rng_below(&rng, len)] ^= (uint8_t)(1u << tutil_rng_below(&rng, 8));
    }
    struct wal_rec rec = {.pos = LOG_POS(1, 4096), .type = LOG_REC_BATCH, .payload = buf,
                          .len = len};
    struct wal_batch bb;
    opened += wal_batch_open(&rec, &bb) == JDB_OK;
    decode_all(buf, len, LOG_POS(1, 4096));
    free(buf);
  }
  assert_true(opened > 1000);
  free(img);
  gen_free(&g);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* ------------------------------------------------------------------------------------------- */

/* ------------------------------------------------------------------------------------------- */
/* A large O_DIRECT flush goes out in 512 KiB writes, 4 in flight, and its fdatasync after all of
   them. Faults at every write and sync of such a flush (EIO, and a simulated power loss with
   each crash policy): the waiter gets the error, the log refuses more, and a reopen replays a
   prefix of the records that holds every one acknowledged as durable. */

struct ck_count {
  uint64_t n;
  int bad;
};

static int ck_cb(void *ud, const struct wal_rec *rec)
{
  struct ck_count *c = ud;
  struct wal_batch b;
  struct wal_op_view v;
  if (wal_batch_open(rec, &b) || b.seq != c->n + 1 || wal_batch_next(&b, &v) ||
      v.vlen != 4000 || v.val[0] != (uint8_t)b.seq || v.val[3999] != (uint8_t)(b.seq >> 8))
    c->bad = 1;
  c->n++;
  return 0;
}

/* Appends record seq (its value checked by ck_cb), its value reference into *ref if not NULL. */
static int ck_append_ref(struct wal *w, uint64_t seq, uint8_t *val, struct wal_vref *ref)
{
  uint8_t key[16] = {0};
  memcpy(key, &seq, sizeof seq);
  memset(val, (uint8_t)seq, 4000);
  val[3999] = (uint8_t)(seq >> 8);
  struct wal_op op = {.kind = WAL_OP_PUT, .key = key, .klen = 16, .val = val, .vlen = 4000};
  return wal_append(w, 1, seq, 0, &op, 1, ref, NULL);
}

static int ck_append(struct wal *w, uint64_t seq, uint8_t *val)
{
  return ck_append_ref(w, seq, val, NULL);
}

/* After a fault scenario: closes w and its (faulty) ctx, reopens the directory on a plain ctx
   (what the disk holds after a simulated power loss) and checks that replay yields a prefix of
   records 1..total with every value right and at least the `acked` first ones; removes dir. */
static void ck_reopen_check(struct wal *w, struct fs_ctx *ctx, const char *dir,
                            const struct wal_opts *o, unsigned sc, uint64_t acked, uint64_t total)
{
  wal_close(w);
  fs_ctx_destroy(ctx);
  ctx = ctx_new();
  struct ck_count c = {0, 0};
  assert_int_equal(wal_open(ctx, dir, o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, ck_cb, &c, NULL), JDB_OK);
  if (c.bad || c.n < acked || c.n > total)
    fail_msg("scenario %u: replayed %llu records (bad %d), acknowledged %llu", sc,
             (unsigned long long)c.n, c.bad, (unsigned long long)acked);
  wal_close(w);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

static void test_chunked_flush_faults(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0xc4c4;
  uint8_t *val = malloc(4000);
  const uint64_t first = 20, big = 800;          /* 800 x ~4 KiB: a flush of ~3.2 MiB */
  /* Scenario 0: no fault; 1..5: EIO at the k-th data op (write or sync) after the first
     records; 6..13: CRASH at the (sc - 5)-th data op, the policy cycling through DROP, KEEP,
     TEAR, RANDOM. */
  for (unsigned sc = 0; sc < 14; sc++) {
    const char *dir = tutil_tmpdir("wal_chunks");
    struct fs_ctx *ctx = fctx_new(seed + sc);
    /* 16 MiB: the next segment's preparation (from a quarter full) never starts, so every
       data op the rules count belongs to the flushes. */
    struct wal_opts o = {.segment_bytes = 16 * MIB};
    struct wal *w = NULL;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
    for (uint64_t i = 1; i <= first; i++)
      assert_int_equal(ck_append(w, i, val), JDB_OK);
    assert_int_equal(wal_sync(w), JDB_OK);
    struct wal_stats a, b;
    wal_stats_get(w, &a);
    if (sc >= 1 && sc < 6) {
      add_rule(ctx, FS_FAULT_EIO, FS_FT_DATA, sc);
    } else if (sc >= 6) {
      static const unsigned pol[4] = {FS_CRASH_DROP, FS_CRASH_KEEP, FS_CRASH_TEAR,
                                      FS_CRASH_RANDOM};
      struct fs_fault_rule r = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = sc - 5,
                                .crash_policy = pol[(sc - 6) % 4]};
      assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
    }
    for (uint64_t i = first + 1; i <= first + big; i++)
      assert_int_equal(ck_append(w, i, val), JDB_OK);
    int rc = wal_sync(w);
    wal_stats_get(w, &b);
    uint64_t acked = rc == JDB_OK ? first + big : first;
    uint64_t k = sc == 0 ? 0 : sc < 6 ? sc : sc - 5;   /* the data op that faults */
    uint64_t ops = (b.writes - a.writes) + (b.syncs - a.syncs);
    if (sc == 0 && tutil_dir_takes_direct(ctx, dir))
      assert_true(b.writes - a.writes >= 4 && b.writes_direct > a.writes_direct);
    if (k == 0 || k > ops) {
      /* no fault, or the flush had fewer ops than k (with every flush direct there is no
         page-cache write of the first block): the rule never fired */
      assert_int_equal(rc, JDB_OK);
    } else {
      if (rc == JDB_OK)
        fail_msg("scenario %u: the fault did not reach the flush (%llu writes, %llu syncs)", sc,
                 (unsigned long long)(b.writes - a.writes),
                 (unsigned long long)(b.syncs - a.syncs));
      assert_int_equal(ck_append(w, first + big + 1, val), rc);
    }
    ck_reopen_check(w, ctx, dir, &o, sc, acked, first + big);
  }
  free(val);
}

/* Reads record seq's value back through its reference (wherever its bytes are: the active
   buffer, a piece in flight, or the file) and checks it. */
static void st_check_read(struct wal *w, uint64_t seq, const struct wal_vref *ref)
{
  uint8_t got[4000];
  assert_int_equal(ref->len, 4000);
  assert_int_equal(wal_read(w, ref->pos + 4, got, 4000), JDB_OK);
  if (got[0] != (uint8_t)seq || got[1999] != (uint8_t)seq || got[3999] != (uint8_t)(seq >> 8))
    fail_msg("record %llu: wrong value read back", (unsigned long long)seq);
}

/* Streaming: a writer that never waits, only calls wal_flush (and reaps) between appends, has
   its flush in flight take pieces of whole blocks as they fill, the partial last block carried
   unwritten to the next buffer. Scenario 0: pieces streamed; 15: every value reads back while
   its bytes are in the active buffer, in a piece in flight or in the file (a read of the file
   reaps completions, which changes the flushes, so 0 reads only at the end); 1..6: EIO at a
   data op of the stream; 7..14: power loss at a data op (DROP, KEEP, TEAR, RANDOM): the log
   refuses more, and a reopen replays a prefix holding every record acknowledged before (each
   checked). */
static void test_stream_faults(void **state)
{
  (void)state;
  uint64_t seed = tutil_seed() ^ 0x57e4;
  uint8_t *val = malloc(4000);
  const uint64_t first = 20, big = 1500;          /* ~6 MiB without a wait */
  struct wal_vref *refs = calloc(first + big + 1, sizeof *refs);
  static const uint64_t at[16] = {0, 1, 2, 3, 5, 8, 13, 1, 2, 3, 4, 6, 9, 12, 17, 0};
  static const unsigned pol[4] = {FS_CRASH_DROP, FS_CRASH_KEEP, FS_CRASH_TEAR, FS_CRASH_RANDOM};
  for (unsigned sc = 0; sc < 16; sc++) {
    const char *dir = tutil_tmpdir("wal_stream");
    struct fs_ctx *ctx = fctx_new(seed + sc);
    /* 32 MiB, allocated: no preparation of a next segment, so the rules count only flushes. */
    struct wal_opts o = {.segment_bytes = 32 * MIB, .zero_fill = WAL_ZERO_NEVER};
    struct wal *w = NULL;
    assert_int_equal(wal_open(ctx, dir, &o, &w), JDB_OK);
    assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
    for (uint64_t i = 1; i <= first; i++)
      assert_int_equal(ck_append_ref(w, i, val, &refs[i]), JDB_OK);
    assert_int_equal(wal_sync(w), JDB_OK);
    struct wal_stats a, b;
    wal_stats_get(w, &a);
    if (sc >= 1 && sc < 7) {
      add_rule(ctx, FS_FAULT_EIO, FS_FT_DATA, at[sc]);
    } else if (sc >= 7 && sc < 15) {
      struct fs_fault_rule r = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = at[sc],
                                .crash_policy = pol[sc % 4]};
      assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
    }
    struct tutil_rng rng;
    tutil_rng_init(&rng, seed + sc);
    int rc = JDB_OK;
    uint64_t last = first;   /* the last record appended */
    for (uint64_t i = first + 1; i <= first + big && rc == JDB_OK; i++) {
      rc = ck_append_ref(w, i, val, &refs[i]);
      if (rc == JDB_OK)
        last = i;
      /* A flush call every 64 appends, a reap every 448: the piece in flight is still out when
         512 KiB of whole blocks have gathered behind it. */
      if (rc == JDB_OK && i % 64 == 0)
        rc = wal_flush(w);
      if (rc == JDB_OK && i % 448 == 0 && fs_poll(ctx, 0) < 0)
        rc = JDB_EIO;
      if (rc == JDB_OK && sc == 15 && i % 16 == 0) {
        uint64_t j = i - tutil_rng_below(&rng, i < 600 ? i : 600);   /* recent: in buffers */
        st_check_read(w, j, &refs[j]);
        st_check_read(w, i, &refs[i]);
      }
    }
    /* An EIO at one of the first data ops (the page-cache write of the first block, or an
       early chunk) ends the stream: appends fail long before the loop's end. */
    if (sc >= 1 && sc <= 3 && rc == JDB_OK)
      fail_msg("scenario %u: the stream went on after a failed write", sc);
    if (rc == JDB_OK)
      rc = wal_sync(w);
    wal_stats_get(w, &b);
    uint64_t ops = (b.writes - a.writes) + (b.syncs - a.syncs);
    if (rc != JDB_OK) {
      /* The failed flush's buffers are gone: a read above the written mark says so. */
      uint8_t got[4000];
      assert_int_equal(wal_read(w, refs[last].pos + 4, got, 4000), rc);
    }
    if (sc == 0 || sc == 15) {
      assert_int_equal(rc, JDB_OK);
      if (sc == 0 && tutil_dir_takes_direct(ctx, dir) && g_direct_min == 0)
        assert_true(b.stream_pieces > a.stream_pieces);
      for (uint64_t j = 1; j <= first + big; j++)
        st_check_read(w, j, &refs[j]);
    } else if (at[sc] <= ops && rc == JDB_OK) {
      fail_msg("scenario %u: the fault did not reach the stream (%llu data ops)", sc,
               (unsigned long long)ops);
    }
    if (rc != JDB_OK)
      assert_int_equal(ck_append_ref(w, first + big + 1, val, NULL), rc);
    ck_reopen_check(w, ctx, dir, &o, sc, rc == JDB_OK ? first + big : first, first + big);
  }
  free(refs);
  free(val);
}

/* Syncs and closes w, reopens dir on the same ctx and checks that replay yields exactly records
   1..n in order, every value right; then closes, destroys ctx and removes dir. */
static void ck_sync_replay_all(struct wal *w, struct fs_ctx *ctx, const char *dir,
                               const struct wal_opts *o, uint64_t n)
{
  assert_int_equal(wal_sync(w), JDB_OK);
  wal_close(w);
  struct ck_count c = {0, 0};
  assert_int_equal(wal_open(ctx, dir, o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, ck_cb, &c, NULL), JDB_OK);
  assert_false(c.bad);
  assert_int_equal(c.n, n);
  wal_close(w);
  fs_ctx_destroy(ctx);
  tutil_rmrf(dir);
}

/* 32 MiB segments, allocated: no preparation of a next segment during these tests. */
#define STALL_OPTS {.segment_bytes = 32 * MIB, .zero_fill = WAL_ZERO_NEVER}

/* A new log in dir, replayed (empty), ready for appends. */
static struct wal *ck_open_new(struct fs_ctx *ctx, const char *dir, const struct wal_opts *o)
{
  struct wal *w = NULL;
  assert_int_equal(wal_open(ctx, dir, o, &w), JDB_OK);
  assert_int_equal(wal_replay(w, 0, NULL, NULL, NULL), JDB_OK);
  return w;
}

/* An appender that never lets the flush in flight complete (no wal_flush, no reaping) stops at
   1 MiB of new bytes and waits for it there (reaping in the wait), instead of buffering the
   whole segment; everything replays. */
static void test_append_stall(void **state)
{
  (void)state;
  const char *dir = tutil_tmpdir("wal_stall");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = STALL_OPTS;
  struct wal *w = ck_open_new(ctx, dir, &o);
  uint8_t *val = malloc(4000);
  const uint64_t n = 3000;   /* ~12 MiB */
  for (uint64_t i = 1; i <= 100; i++)
    assert_int_equal(ck_append(w, i, val), JDB_OK);
  assert_int_equal(wal_flush(w), JDB_OK);   /* in flight until something reaps */
  struct wal_stats a, b;
  wal_stats_get(w, &a);
  for (uint64_t i = 101; i <= n; i++)
    assert_int_equal(ck_append(w, i, val), JDB_OK);
  wal_stats_get(w, &b);
  assert_true(b.append_stalls > a.append_stalls);
  free(val);
  ck_sync_replay_all(w, ctx, dir, &o, n);
}

/* Fibers appending without waits, each append taking the next seq: appends held at the buffer
   bound queue the later fibers' appends behind them (as a roll does), so the log keeps seq
   order; every record replays once, in order, values checked. */
struct stall_fib {
  struct wal *w;
  uint64_t *next_seq;
  uint8_t *val;
  int fails;
};

static void stall_fib_main(void *arg)
{
  struct stall_fib *f = arg;
  for (int r = 0; r < 150; r++) {
    uint64_t seq = ++*f->next_seq;
    if (ck_append(f->w, seq, f->val) != JDB_OK) {
      f->fails++;
      return;
    }
    if (r % 16 == 0 && wal_flush(f->w) != JDB_OK)
      f->fails++;
  }
}

static void test_append_stall_fibers(void **state)
{
  (void)state;
  const char *dir = tutil_tmpdir("wal_stallf");
  struct fs_ctx *ctx = ctx_new();
  struct wal_opts o = STALL_OPTS;
  struct wal *w = ck_open_new(ctx, dir, &o);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  enum { NF = 8 };
  struct stall_fib f[NF];
  uint64_t seq = 0;
  for (int i = 0; i < NF; i++) {
    f[i] = (struct stall_fib){.w = w, .next_seq = &seq, .val = malloc(4000)};
    assert_int_equal(coro_spawn(s, stall_fib_main, &f[i], NULL), JDB_OK);
  }
  struct wal_stats a, b;
  wal_stats_get(w, &a);
  alarm(30);
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  alarm(0);
  wal_stats_get(w, &b);
  coro_sched_destroy(s);
  for (int i = 0; i < NF; i++) {
    assert_int_equal(f[i].fails, 0);
    free(f[i].val);
  }
  assert_true(b.append_stalls > a.append_stalls);
  ck_sync_replay_all(w, ctx, dir, &o, seq);
}

int main(int argc, char **argv)
{
  tutil_init();
  g_backend = tutil_backend_arg(argc, argv, g_backend);
  int direct = argc > 2 && strcmp(argv[2], "direct") == 0;
  if (direct)
    g_direct_min = 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_args),
    cmocka_unit_test(test_batch_decode_fuzz),
    cmocka_unit_test(test_replay_from_pos),
    cmocka_unit_test(test_read_across_buffers),
    cmocka_unit_test(test_group_commit),
    cmocka_unit_test(test_fibers_roll),
    cmocka_unit_test(test_wait_spurious_wake),
    cmocka_unit_test(test_torn_tail),
    cmocka_unit_test(test_torn_stale_records),
    cmocka_unit_test(test_tail_evidence_far),
    cmocka_unit_test(test_read_only_open),
    cmocka_unit_test(test_bitflip_durable),
    cmocka_unit_test(test_bitflip_tail),
    cmocka_unit_test(test_err_write_eio),
    cmocka_unit_test(test_err_sync_eio),
    cmocka_unit_test(test_err_enospc),
    cmocka_unit_test(test_zero_fill_policy),
    cmocka_unit_test(test_segment_drop_reuse),
    cmocka_unit_test(test_missing_middle_segment),
    cmocka_unit_test(test_crash_sweep),
    cmocka_unit_test(test_crash_fibers),
    cmocka_unit_test(test_replay_makes_recovered_durable),
    cmocka_unit_test(test_roundtrip),
    cmocka_unit_test(test_chunked_flush_faults),
    cmocka_unit_test(test_stream_faults),
    cmocka_unit_test(test_append_stall),
    cmocka_unit_test(test_append_stall_fibers),
  };
  if (getenv("T_FILTER"))
    cmocka_set_test_filter(getenv("T_FILTER"));
  char name[64];
  snprintf(name, sizeof name, "wal_%s%s", g_backend, direct ? "_direct" : "");
  return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
