/*
 * test_comm.c - infra/comm and codec.h: error texts and errno mapping, version, option
 * defaults, the log hook and its level filter, log_once, corruption reports, the assertion hook,
 * the little/big-endian and varint codecs with the bounds-checked reader, hash64, clocks.
 */
#include "tutil.h"

#include "clock.h"
#include "codec.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "opts.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

/* ---------------------------------------------------------------------------------------------
 * Errors and version
 * ------------------------------------------------------------------------------------------- */
static void strerror_names_every_code(void **state)
{
  (void)state;
  static const struct { int code; const char *name; } codes[] = {
    {JDB_OK, "JDB_OK"},           {JDB_NOTFOUND, "JDB_NOTFOUND"},
    {JDB_EINVAL, "JDB_EINVAL"},   {JDB_ENOMEM, "JDB_ENOMEM"},
    {JDB_EIO, "JDB_EIO"},         {JDB_ENOSPC, "JDB_ENOSPC"},
    {JDB_ECORRUPT, "JDB_ECORRUPT"}, {JDB_EEXIST, "JDB_EEXIST"},
    {JDB_EBUSY, "JDB_EBUSY"},     {JDB_EREADONLY, "JDB_EREADONLY"},
    {JDB_ETRUNCATED, "JDB_ETRUNCATED"}, {JDB_EAGAIN, "JDB_EAGAIN"},
    {JDB_EVERSION, "JDB_EVERSION"}, {JDB_ECLOSED, "JDB_ECLOSED"},
    {JDB_ENOTSUP, "JDB_ENOTSUP"},
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = jdb_strerror(codes[i].code);
    assert_non_null(s);
    size_t n = strlen(codes[i].name);
    /* "NAME: text": the name, then a colon (so JDB_E is not a prefix match of JDB_EIO...). */
    if (strncmp(s, codes[i].name, n) != 0 || s[n] != ':' || strlen(s) < n + 3)
      fail_msg("jdb_strerror(%d) = \"%s\", want \"%s: ...\"", codes[i].code, s, codes[i].name);
    /* The codes are contiguous 0 .. -14: every one has its own text. */
    assert_int_equal(codes[i].code, -(int)i);
  }
  static const int unknown[] = {1, 2, 100, -15, -16, -100, -4096, INT_MAX, INT_MIN, INT_MIN + 1};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *s = jdb_strerror(unknown[i]);
    assert_non_null(s);
    assert_true(strncmp(s, "JDB_E?:", 7) == 0);
  }
}

static void version_matches_header(void **state)
{
  (void)state;
  assert_non_null(jdb_version());
  assert_string_equal(jdb_version(), JDB_VERSION_STRING);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", JDB_VERSION_MAJOR, JDB_VERSION_MINOR,
           JDB_VERSION_PATCH);
  assert_string_equal(jdb_version(), want);
}

static void options_defaults(void **state)
{
  (void)state;
  jdb_options_t o;
  memset(&o, 0xff, sizeof o);   /* init must overwrite whatever was there */
  jdb_options_init(&o);
  assert_int_equal(o.struct_size, sizeof o);
  assert_int_equal(o.shards, 0);
  assert_int_equal(o.pin_cores, 1);
  assert_int_equal(o.create_if_missing, 1);
  assert_int_equal(o.read_only, 0);
  /* the cache: a quarter of the memory the process may use (never more than the machine's),
     in whole pages, between the bounds */
  uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t ram = opts_ram_bytes();
  assert_true(ram > 0 && ram <= phys);
  uint64_t want = ram / 4 / 4096 * 4096;
  want = want < OPTS_CACHE_DEFAULT_MIN   ? OPTS_CACHE_DEFAULT_MIN
         : want > OPTS_CACHE_DEFAULT_MAX ? OPTS_CACHE_DEFAULT_MAX
                                         : want;
  assert_true(o.cache_bytes == want);
  assert_true(opts_cache_bytes_default() == want);
  assert_true(o.memtable_bytes == 64ull << 20);
  assert_int_equal(o.inline_value_max, 256);
  assert_true(o.history_seconds == 0);
  assert_int_equal(o.io_backend, JDB_IO_AUTO);
  assert_int_equal(o.direct_io, JDB_DIRECT_AUTO);
  jdb_options_init(NULL);   /* documented as ignored */
}

/* The cgroup walk behind the default cache: the smallest limit from the process's own cgroup up
   to the hierarchy's root, "max" and missing files being no limit. */
static void put_file(const char *dir, const char *name, const char *text)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void cgroup_walk_takes_smallest(void **state)
{
  (void)state;
  const char *base = tutil_tmpdir("cgwalk");
  char a[4096], b[4096], c[4096];
  snprintf(a, sizeof a, "%s/a", base);
  snprintf(b, sizeof b, "%s/a/b", base);
  snprintf(c, sizeof c, "%s/a/b/c", base);
  assert_int_equal(mkdir(a, 0755), 0);
  assert_int_equal(mkdir(b, 0755), 0);
  assert_int_equal(mkdir(c, 0755), 0);
  put_file(c, "memory.max", "max\n");
  assert_true(opts_cgroup_walk(base, "/a/b/c", "memory.max") == 0);
  put_file(a, "memory.max", "2147483648\n");
  put_file(b, "memory.max", "garbage\n");
  assert_true(opts_cgroup_walk(base, "/a/b/c", "memory.max") == 2147483648ull);
  assert_true(opts_cgroup_walk(base, "/a/b/c/", "memory.max") == 2147483648ull);
  put_file(base, "memory.max", "1073741824\n");   /* the root's binds too */
  assert_true(opts_cgroup_walk(base, "/a/b/c", "memory.max") == 1073741824ull);
  assert_true(opts_cgroup_walk(base, "/", "memory.max") == 1073741824ull);
  put_file(c, "memory.max", "536870912");
  assert_true(opts_cgroup_walk(base, "/a/b/c", "memory.max") == 536870912ull);
  assert_true(opts_cgroup_walk(base, "/a/b", "memory.max") == 1073741824ull);
  assert_true(opts_cgroup_walk(base, "/nowhere", "memory.max") == 1073741824ull);
  tutil_rmrf(base);
}

static void errno_mapping(void **state)
{
  (void)state;
  static const struct { int neg_errno, code; } map[] = {
    {-EIO, JDB_EIO},         {-ENOSPC, JDB_ENOSPC},    {-EDQUOT, JDB_ENOSPC},
    {-EFBIG, JDB_ENOSPC},    {-ENOMEM, JDB_ENOMEM},    {-EEXIST, JDB_EEXIST},
    {-ENOENT, JDB_NOTFOUND}, {-EWOULDBLOCK, JDB_EBUSY}, {-EROFS, JDB_EREADONLY},
    {-EACCES, JDB_EREADONLY}, {-EPERM, JDB_EREADONLY}, {-EINVAL, JDB_EINVAL},
    {-EOPNOTSUPP, JDB_ENOTSUP},
    /* Anything else is an I/O error. */
    {-EBADF, JDB_EIO},       {-EINTR, JDB_EIO},        {-ENOTDIR, JDB_EIO},
    {-4095, JDB_EIO},         {INT_MIN, JDB_EIO},   /* no overflow negating it */
    /* Not an error. */
    {0, JDB_OK},             {1, JDB_OK},              {4096, JDB_OK},
    {INT_MAX, JDB_OK},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (err_from_errno(map[i].neg_errno) != map[i].code)
      fail_msg("err_from_errno(%d) = %d, want %d", map[i].neg_errno,
               err_from_errno(map[i].neg_errno), map[i].code);
}

/* ---------------------------------------------------------------------------------------------
 * Log
 * ------------------------------------------------------------------------------------------- */
struct log_capture {
  int lines;
  int level;
  char last[2048];
};

static void log_capture_fn(void *ud, int level, const char *msg)
{
  struct log_capture *c = ud;
  c->lines++;
  c->level = level;
  snprintf(c->last, sizeof c->last, "%s", msg);
}

static void log_restore(void)
{
  jdb_log_set(NULL, NULL, JDB_LOG_OFF);
  log_quiet_for_tests();
}

static void log_hook_and_level(void **state)
{
  (void)state;
  struct log_capture c;
  memset(&c, 0, sizeof c);
  jdb_log_set(log_capture_fn, &c, JDB_LOG_INFO);
  assert_int_equal(log_level(), JDB_LOG_INFO);

  LOG_INFO("hello %d %s", 42, "world");
  assert_int_equal(c.lines, 1);
  assert_int_equal(c.level, JDB_LOG_INFO);
  assert_string_equal(c.last, "hello 42 world");   /* the hook gets the text, no prefix */
  LOG_ERROR("e");
  LOG_WARN("w");
  assert_int_equal(c.lines, 3);
  assert_int_equal(c.level, JDB_LOG_WARN);
  LOG_DEBUG("dropped %d", 1);                      /* above the level */
  assert_int_equal(c.lines, 3);

  jdb_log_set(log_capture_fn, &c, JDB_LOG_WARN);
  LOG_INFO("dropped");
  assert_int_equal(c.lines, 3);
  LOG_WARN("kept");
  assert_int_equal(c.lines, 4);
  assert_string_equal(c.last, "kept");

  jdb_log_set(log_capture_fn, &c, JDB_LOG_OFF);
  LOG_ERROR("dropped");
  assert_int_equal(c.lines, 4);
  log_printf(JDB_LOG_OFF, "never a level of its own");
  assert_int_equal(c.lines, 4);

  /* Out-of-range levels are clamped. */
  jdb_log_set(log_capture_fn, &c, 99);
  assert_int_equal(log_level(), JDB_LOG_DEBUG);
  LOG_DEBUG("debug %s", "now");
  assert_int_equal(c.lines, 5);
  assert_string_equal(c.last, "debug now");
  jdb_log_set(log_capture_fn, &c, -5);
  assert_int_equal(log_level(), JDB_LOG_OFF);

  /* Long lines are truncated to the 1 KiB line buffer, still NUL-terminated. */
  jdb_log_set(log_capture_fn, &c, JDB_LOG_DEBUG);
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  LOG_ERROR("%s", big);
  assert_int_equal(c.lines, 6);
  assert_true(strlen(c.last) > 900 && strlen(c.last) < 1024);
  log_restore();
}

static void log_once_fires_once(void **state)
{
  (void)state;
  struct log_capture c;
  memset(&c, 0, sizeof c);
  jdb_log_set(log_capture_fn, &c, JDB_LOG_INFO);
  int flag = 0;
  for (int i = 0; i < 5; i++)
    log_once(&flag, JDB_LOG_WARN, "once %d", i);
  assert_int_equal(c.lines, 1);
  assert_string_equal(c.last, "once 0");
  assert_int_not_equal(flag, 0);
  /* A separate flag is a separate call site. */
  int flag2 = 0;
  log_once(&flag2, JDB_LOG_ERROR, "other");
  assert_int_equal(c.lines, 2);
  /* Filtered out the first time: the flag is still spent (it is "once", not "once shown"). */
  int flag3 = 0;
  log_once(&flag3, JDB_LOG_DEBUG, "filtered");
  jdb_log_set(log_capture_fn, &c, JDB_LOG_DEBUG);
  log_once(&flag3, JDB_LOG_DEBUG, "filtered");
  assert_int_equal(c.lines, 2);
  log_restore();
}

static void corrupt_reports_and_counts(void **state)
{
  (void)state;
  struct log_capture c;
  memset(&c, 0, sizeof c);
  jdb_log_set(log_capture_fn, &c, JDB_LOG_ERROR);
  uint64_t n0 = err_corrupt_count();
  assert_int_equal(JDB_CORRUPT("test page", 77), JDB_ECORRUPT);
  assert_true(err_corrupt_count() == n0 + 1);
  assert_int_equal(c.lines, 1);
  assert_int_equal(c.level, JDB_LOG_ERROR);
  assert_non_null(strstr(c.last, "corrupt test page"));
  assert_non_null(strstr(c.last, "77"));
  assert_non_null(strstr(c.last, "test_comm.c"));
  /* Counted even when the log is off. */
  jdb_log_set(NULL, NULL, JDB_LOG_OFF);
  assert_int_equal(JDB_CORRUPT("again", 1), JDB_ECORRUPT);
  assert_true(err_corrupt_count() == n0 + 2);
  log_restore();
}

static void assert_hook_child(const char *expr, const char *file, int line)
{
  (void)file;
  (void)line;
  _exit(strstr(expr, "1 + 1 == 3") ? 42 : 43);
}

static void assert_runs_hook_then_aborts(void **state)
{
  (void)state;
  JDB_ASSERT(1 + 1 == 2);   /* a true assertion is a no-op */
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Child: silence the report, install the hook, fail an assertion. */
    if (!freopen("/dev/null", "w", stderr))
      _exit(44);
    err_assert_hook_set(assert_hook_child);
    volatile int two = 2;
    JDB_ASSERT(1 + 1 == 3 && two);
    _exit(45);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 42);

  /* Without a hook: abort(). */
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stderr))
      _exit(44);
    err_assert_hook_set(NULL);
    volatile int zero = 0;
    JDB_ASSERT(zero);
    _exit(45);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* ---------------------------------------------------------------------------------------------
 * Codec
 * ------------------------------------------------------------------------------------------- */
static void codec_fixed_width(void **state)
{
  (void)state;
  uint8_t b[8];
  le16_put(b, 0x1234);
  assert_int_equal(b[0], 0x34);
  assert_int_equal(b[1], 0x12);
  assert_int_equal(le16_get(b), 0x1234);
  le32_put(b, 0x89abcdefu);
  assert_int_equal(b[0], 0xef);
  assert_int_equal(b[3], 0x89);
  assert_int_equal(le32_get(b), 0x89abcdefu);
  le64_put(b, 0x0123456789abcdefull);
  assert_int_equal(b[0], 0xef);
  assert_int_equal(b[7], 0x01);
  assert_true(le64_get(b) == 0x0123456789abcdefull);
  be64_put(b, 0x0123456789abcdefull);
  assert_int_equal(b[0], 0x01);
  assert_int_equal(b[7], 0xef);
  assert_true(be64_get(b) == 0x0123456789abcdefull);

  /* Round trips of random and edge values, at unaligned addresses. */
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed());
  uint8_t buf[16];
  for (int i = 0; i < 10000; i++) {
    uint64_t v = tutil_rng_next(&r);
    if (i < 4)
      v = i == 0 ? 0 : i == 1 ? UINT64_MAX : i == 2 ? 1ull << 63 : 0x8000;
    size_t a = (size_t)(i % 8);
    le16_put(buf + a, (uint16_t)v);
    assert_int_equal(le16_get(buf + a), (uint16_t)v);
    le32_put(buf + a, (uint32_t)v);
    assert_int_equal(le32_get(buf + a), (uint32_t)v);
    le64_put(buf + a, v);
    assert_true(le64_get(buf + a) == v);
    be64_put(buf + a, v);
    assert_true(be64_get(buf + a) == v);
    /* Big-endian order sorts like the numbers. */
    uint64_t w = tutil_rng_next(&r);
    uint8_t bv[8], bw[8];
    be64_put(bv, v);
    be64_put(bw, w);
    int c = memcmp(bv, bw, 8);
    assert_true((c < 0) == (v < w) && (c == 0) == (v == w));
  }
}

static void codec_varint(void **state)
{
  (void)state;
  static const struct { uint64_t v; size_t len; } edges[] = {
    {0, 1}, {1, 1}, {127, 1}, {128, 2}, {16383, 2}, {16384, 3}, {(1ull << 21) - 1, 3},
    {1ull << 21, 4}, {(1ull << 28) - 1, 4}, {1ull << 28, 5}, {(1ull << 35) - 1, 5},
    {1ull << 35, 6}, {(1ull << 56) - 1, 8}, {1ull << 56, 9}, {(1ull << 63) - 1, 9},
    {1ull << 63, 10}, {UINT64_MAX, 10},
  };
  uint8_t b[VARINT_MAX + 4];
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    assert_int_equal(varint_len(edges[i].v), edges[i].len);
    assert_int_equal(varint_put(b, edges[i].v), edges[i].len);
    struct codec_rd rd;
    codec_rd_init(&rd, b, edges[i].len);
    assert_true(codec_rd_varint(&rd) == edges[i].v);
    assert_int_equal(rd.err, 0);
    assert_int_equal(rd.off, edges[i].len);
    /* One byte short: an error, not a read past the end. */
    codec_rd_init(&rd, b, edges[i].len - 1);
    assert_true(codec_rd_varint(&rd) == 0);
    assert_int_equal(rd.err, JDB_ECORRUPT);
  }
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 1);
  for (int i = 0; i < 10000; i++) {
    uint64_t v = tutil_rng_next(&r) >> tutil_rng_below(&r, 64);
    size_t n = varint_put(b, v);
    assert_int_equal(n, varint_len(v));
    struct codec_rd rd;
    codec_rd_init(&rd, b, n);
    assert_true(codec_rd_varint(&rd) == v);
    assert_int_equal(rd.err, 0);
  }

  /* Overlong and overflowing encodings are rejected. */
  struct codec_rd rd;
  /* 11 bytes: ten continuation bytes then a terminator. */
  uint8_t eleven[11];
  memset(eleven, 0x80, 10);
  eleven[10] = 0x00;
  codec_rd_init(&rd, eleven, sizeof eleven);
  assert_true(codec_rd_varint(&rd) == 0);
  assert_int_equal(rd.err, JDB_ECORRUPT);
  /* 10 bytes whose last one carries more than the 64th bit. */
  uint8_t big[10];
  memset(big, 0xff, 9);
  big[9] = 0x02;
  codec_rd_init(&rd, big, sizeof big);
  assert_true(codec_rd_varint(&rd) == 0);
  assert_int_equal(rd.err, JDB_ECORRUPT);
  big[9] = 0x7f;
  codec_rd_init(&rd, big, sizeof big);
  codec_rd_varint(&rd);
  assert_int_equal(rd.err, JDB_ECORRUPT);
  big[9] = 0x81;   /* bit 64 clear but a continuation bit: an 11th byte would follow */
  codec_rd_init(&rd, big, sizeof big);
  codec_rd_varint(&rd);
  assert_int_equal(rd.err, JDB_ECORRUPT);
  /* ... while 0x01 in the tenth byte is exactly UINT64_MAX. */
  big[9] = 0x01;
  codec_rd_init(&rd, big, sizeof big);
  assert_true(codec_rd_varint(&rd) == UINT64_MAX);
  assert_int_equal(rd.err, 0);
  /* Empty input. */
  codec_rd_init(&rd, big, 0);
  assert_true(codec_rd_varint(&rd) == 0);
  assert_int_equal(rd.err, JDB_ECORRUPT);
}

static void codec_reader_bounds(void **state)
{
  (void)state;
  /* An exact-size heap buffer, so ASan flags any read past it. */
  uint8_t *b = malloc(15);
  assert_non_null(b);
  for (int i = 0; i < 15; i++)
    b[i] = (uint8_t)(i + 1);
  struct codec_rd rd;
  codec_rd_init(&rd, b, 15);
  assert_int_equal(codec_rd_u8(&rd), 1);
  assert_int_equal(codec_rd_u16(&rd), 0x0302);
  assert_int_equal(codec_rd_u32(&rd), 0x07060504u);
  const uint8_t *q = codec_rd_bytes(&rd, 0);
  assert_ptr_equal(q, b + 7);
  assert_true(codec_rd_u64(&rd) == 0x0f0e0d0c0b0a0908ull);
  assert_int_equal(rd.off, 15);
  assert_int_equal(rd.err, 0);
  /* At the end: every read fails and the error sticks. */
  assert_int_equal(codec_rd_u8(&rd), 0);
  assert_int_equal(rd.err, JDB_ECORRUPT);
  assert_int_equal(rd.off, 15);

  codec_rd_init(&rd, b, 15);
  assert_true(codec_rd_u64(&rd) != 0);
  assert_true(codec_rd_u64(&rd) == 0);   /* 7 left: fails without consuming them */
  assert_int_equal(rd.off, 8);
  assert_int_equal(rd.err, JDB_ECORRUPT);
  assert_int_equal(codec_rd_u8(&rd), 0);   /* sticky even though 1 byte would fit */
  assert_null(codec_rd_bytes(&rd, 1));
  assert_int_equal(rd.off, 8);

  codec_rd_init(&rd, b, 15);
  assert_ptr_equal(codec_rd_bytes(&rd, 10), b);
  assert_null(codec_rd_bytes(&rd, 6));
  assert_int_equal(rd.err, JDB_ECORRUPT);
  codec_rd_init(&rd, b, 15);
  assert_null(codec_rd_bytes(&rd, SIZE_MAX));   /* huge lengths cannot wrap the check */
  assert_int_equal(rd.off, 0);
  codec_rd_init(&rd, b, 15);
  codec_rd_u8(&rd);
  assert_null(codec_rd_bytes(&rd, SIZE_MAX - 0));
  assert_null(codec_rd_bytes(&rd, (size_t)-1 - 3));
  free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Hash and clocks
 * ------------------------------------------------------------------------------------------- */
static void hash64_is_xxh3(void **state)
{
  (void)state;
  /* XXH3-64 of the empty input: a published constant. */
  assert_true(hash64("", 0) == 0x2D06800538D394C2ull);
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 2);
  uint8_t b[300];
  tutil_rng_fill(&r, b, sizeof b);
  for (size_t n = 0; n <= sizeof b; n++) {
    uint64_t h = hash64(b, n);
    assert_true(h == hash64(b, n));   /* deterministic */
    assert_true(h == XXH3_64bits(b, n));
    assert_true(hash64_seed(b, n, 0) == h);
    assert_true(hash64_seed(b, n, 12345) == XXH3_64bits_withSeed(b, n, 12345));
    if (n > 0)
      assert_true(hash64(b, n) != hash64(b, n - 1));
  }
  /* hash_u64: a bijection-style mixer; distinct small inputs stay distinct, 0 maps to 0. */
  assert_true(hash_u64(0) == 0);
  for (uint64_t x = 1; x < 1000; x++) {
    assert_true(hash_u64(x) == hash_u64(x));
    assert_true(hash_u64(x) != hash_u64(x - 1));
  }
}

static void clocks(void **state)
{
  (void)state;
  uint64_t a = clock_mono_ns();
  uint64_t b = clock_mono_ns();
  assert_true(b >= a);
  assert_true(clock_now_sec() > 1600000000ull);
  clock_commit_sec_override(1234567);
  assert_true(clock_commit_sec() == 1234567);
  clock_commit_sec_override(0);
  uint64_t now = clock_now_sec();
  assert_true(clock_commit_sec() >= now && clock_commit_sec() <= now + 5);
}

int main(void)
{
  tutil_init();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(strerror_names_every_code),
    cmocka_unit_test(version_matches_header),
    cmocka_unit_test(options_defaults),
    cmocka_unit_test(cgroup_walk_takes_smallest),
    cmocka_unit_test(errno_mapping),
    cmocka_unit_test(log_hook_and_level),
    cmocka_unit_test(log_once_fires_once),
    cmocka_unit_test(corrupt_reports_and_counts),
    cmocka_unit_test(assert_runs_hook_then_aborts),
    cmocka_unit_test(codec_fixed_width),
    cmocka_unit_test(codec_varint),
    cmocka_unit_test(codec_reader_bounds),
    cmocka_unit_test(hash64_is_xxh3),
    cmocka_unit_test(clocks),
  };
  return cmocka_run_group_tests_name("comm", tests, NULL, NULL);
}
