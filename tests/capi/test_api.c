/*
 * test_api.c - the public C API (include/jdb.h) through libjdb.so, as a program sees it: this
 * file includes nothing of the library but jdb.h and links nothing but libjdb.so.
 *
 *   - jdb_strerror, jdb_version, jdb_options_init, jdb_log_set;
 *   - jdb_open / jdb_close / jdb_flush / jdb_checkpoint / jdb_stats / jdb_check: every
 *     documented error, JDB_EBUSY for a second open in this process and from another process
 *     (a forked child), the shard count fixed at creation (created with 2, reopened asking 5);
 *   - values left in the log by a crashed process (a forked child) under inline_value_max 512,
 *     recovered and checkpointed by opens with 256 and 64;
 *   - the smallest cache with long keys and out-of-line values: checkpoints still work;
 *   - jdb_check on damaged leaf pages: JDB_ECORRUPT, errors counted and logged; reads give the
 *     right value or JDB_ECORRUPT, never wrong data;
 *   - tables: open/create, binary and longest names, drop (an old handle's writes give
 *     JDB_NOTFOUND, a recreated table starts empty), jdb_table_list order across shards, from a
 *     start name, stopped early, with JDB calls inside the callback;
 *   - key-value and batches: argument checks, 0-byte and multi-MiB values, JDB_VALUE_MAX and
 *     JDB_VALUE_MAX + 1, JDB_BATCH_MAX operations and one more; a randomised model test (puts,
 *     put_syncs, deletes, batches with repeated keys) checked after checkpoints and reopens with
 *     other tunables;
 *   - snapshots: reads and iterators at a snapshot see no later write;
 *   - iterators: both directions against a sorted model with random seeks, seek_prevs and turns,
 *     values inline, out of line (> 256 bytes) and empty, memtable and tree mixed;
 *   - pipelines: mixed put/get/del over several tables on two shards against a model, each
 *     operation's result; one of 40000 operations;
 *   - read-only instances; the functions that return JDB_ENOTSUP in this build;
 *   - concurrency: 8 client threads x 2 shards doing everything above for a few seconds, each on
 *     its own tables and on shared tables in disjoint key ranges, checked exactly against
 *     per-thread models; threads end while others work and new ones take their place; then
 *     jdb_close of a second instance while its threads work (each call gives its result or
 *     JDB_ECLOSED, nothing crashes, handles are freed afterwards).
 *
 * Run once per I/O backend (env JDB_IO=uring | psync, set by CMake); exits 77 when io_uring is
 * refused for the "uring" run. JDB_TEST_SEED=<n> replays a run (the seed is printed);
 * JDB_TEST_SCALE=<x> multiplies loop counts and durations (default 1). Scratch directories live
 * under JDB_TEST_DIR.
 *
 * The model: a sorted universe of keys per table (short keys over a small alphabet so that
 * prefixes, 0x00 and 0xff are common, random ones, a few up to JDB_KEY_MAX bytes); for each key
 * whether it is present and the (tag, length) of its value. Value bytes are regenerated from
 * the tag, never stored. Threads never call cmocka asserts: they count failures and keep the
 * first message, which the main thread reports.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <jdb.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#ifndef JDB_TEST_DIR
#define JDB_TEST_DIR "/tmp/jdb-test-tmp"
#endif

#define T_VMAX 3000u          /* longest value of the randomised tests (inline max is 256) */

/* ------------------------------------------------------------------------------------------- */
/* Seed, scale, random numbers */

static uint64_t g_seed;
static double g_scale = 1.0;

static uint64_t t_mix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

typedef struct t_rng {
  uint64_t s;
} t_rng;

static void t_rng_init(t_rng *r, uint64_t salt)
{
  r->s = t_mix(g_seed ^ t_mix(salt));
}

static uint64_t t_rand(t_rng *r)
{
  r->s += 0x9e3779b97f4a7c15ull;
  return t_mix(r->s);
}

static uint64_t t_below(t_rng *r, uint64_t n)
{
  return n ? t_rand(r) % n : 0;
}

static size_t t_scaled(double n)
{
  double v = n * g_scale;
  return v < 1.0 ? 1 : (size_t)v;
}

static double t_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void t_sleep_ms(unsigned ms)
{
  struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* Value bytes of (tag, len): the same bytes every time. */
static void t_val_fill(uint8_t *p, uint32_t tag, size_t len)
{
  uint64_t s = t_mix((uint64_t)tag * 0x100000001b3ull + len);
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = t_mix(s + i);
    size_t n = len - i < 8 ? len - i : 8;
    memcpy(p + i, &w, n);
  }
}

/* 1 when p[0..len) are the bytes of (tag, want_len) and len == want_len. */
static int t_val_is(const void *p, size_t len, uint32_t tag, size_t want_len)
{
  if (len != want_len)
    return 0;
  if (len == 0)
    return 1;
  if (!p)
    return 0;
  uint8_t buf[T_VMAX];
  uint8_t *b = len <= sizeof buf ? buf : malloc(len);
  if (!b)
    return 0;
  t_val_fill(b, tag, len);
  int same = memcmp(p, b, len) == 0;
  if (b != buf)
    free(b);
  return same;
}

/* A value length: empty, short, around the inline limit (256), out of line. */
static uint32_t t_vlen_pick(t_rng *r)
{
  uint64_t c = t_below(r, 100);
  if (c < 8)
    return 0;
  if (c < 55)
    return (uint32_t)(1 + t_below(r, 100));
  if (c < 80)
    return (uint32_t)(240 + t_below(r, 40));
  return (uint32_t)(257 + t_below(r, T_VMAX - 257));
}

/* ------------------------------------------------------------------------------------------- */
/* Scratch directories */

static int t_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  remove(p);
  return 0;
}

static void t_rm_rf(const char *p)
{
  nftw(p, t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void t_mkdir_p(const char *path)
{
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++) {
    if (*s == '/') {
      *s = 0;
      mkdir(p, 0755);
      *s = '/';
    }
  }
  mkdir(p, 0755);
}

/* A fresh (absent) path for test `name`: JDB_TEST_DIR/api-<pid>-<name>. */
static void t_path(char *p, size_t cap, const char *name)
{
  t_mkdir_p(JDB_TEST_DIR);
  snprintf(p, cap, "%s/api-%ld-%s", JDB_TEST_DIR, (long)getpid(), name);
  t_rm_rf(p);
}

static int t_exists(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0;
}

/* Options of the tests: small cache and memtables so that checkpoints and page misses happen. */
static jdb_options_t t_opts(uint32_t shards)
{
  jdb_options_t o;
  jdb_options_init(&o);
  o.shards = shards;
  o.pin_cores = 0;
  o.create_if_missing = 1;
  o.cache_bytes = 8u << 20;
  o.memtable_bytes = 2u << 20;
  return o;
}

static jdb_t *t_open(const char *path, uint32_t shards)
{
  jdb_options_t o = t_opts(shards);
  jdb_t *db = NULL;
  int rc = jdb_open(path, &o, &db);
  if (rc != JDB_OK)
    fail_msg("jdb_open(%s): %s", path, jdb_strerror(rc));
  assert_non_null(db);
  return db;
}

static jdb_table_t *t_table(jdb_t *db, const char *name, unsigned flags)
{
  jdb_table_t *t = NULL;
  int rc = jdb_table_open(db, name, strlen(name), flags, &t);
  if (rc != JDB_OK)
    fail_msg("jdb_table_open(%s): %s", name, jdb_strerror(rc));
  assert_non_null(t);
  return t;
}

#define assert_rc(call, want)                                                                \
  do {                                                                                       \
    int rc_ = (call);                                                                        \
    if (rc_ != (want))                                                                       \
      fail_msg("%s = %d (%s), want %d (%s)", #call, rc_, jdb_strerror(rc_), (int)(want),     \
               jdb_strerror(want));                                                          \
  } while (0)
#define assert_ok(call) assert_rc(call, JDB_OK)

/* get of a key given as a string: JDB_OK and exactly `want` (NULL: want JDB_NOTFOUND). */
static void t_get_str(jdb_table_t *t, const char *key, const char *want)
{
  void *v = (void *)1;
  size_t vl = 99;
  int rc = jdb_get(t, key, strlen(key), &v, &vl);
  if (!want) {
    if (rc != JDB_NOTFOUND)
      fail_msg("get %s: %s, want JDB_NOTFOUND", key, jdb_strerror(rc));
    assert_null(v);
    assert_int_equal(vl, 0);
    return;
  }
  if (rc != JDB_OK)
    fail_msg("get %s: %s, want \"%s\"", key, jdb_strerror(rc), want);
  assert_non_null(v);
  assert_int_equal(vl, strlen(want));
  assert_memory_equal(v, want, vl);
  jdb_free(v);
}

static void t_put_str(jdb_table_t *t, const char *key, const char *val)
{
  assert_ok(jdb_put(t, key, strlen(key), val, strlen(val)));
}

static jdb_stats_t t_stats(jdb_t *db, int shard)
{
  jdb_stats_t st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  assert_ok(jdb_stats(db, shard, &st));
  return st;
}

/* ------------------------------------------------------------------------------------------- */
/* Errors, version, options, log */

static void test_strerror_version(void **state)
{
  (void)state;
  static const struct {
    int code;
    const char *name;
  } codes[] = {
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
    if (strncmp(s, codes[i].name, n) != 0 || s[n] != ':' || strlen(s) < n + 3)
      fail_msg("jdb_strerror(%d) = \"%s\", want \"%s: ...\"", codes[i].code, s, codes[i].name);
    assert_ptr_equal(jdb_strerror(codes[i].code), s);   /* static */
  }
  const int unknown[] = {1, 7, -15, -100, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    assert_string_equal(jdb_strerror(unknown[i]), "JDB_E?: unknown error code");

  const char *v = jdb_version();
  assert_non_null(v);
  assert_string_equal(v, JDB_VERSION_STRING);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", JDB_VERSION_MAJOR, JDB_VERSION_MINOR,
           JDB_VERSION_PATCH);
  assert_string_equal(v, want);
}

static void test_options_init(void **state)
{
  (void)state;
  jdb_options_t o;
  memset(&o, 0xab, sizeof o);
  jdb_options_init(&o);
  assert_int_equal(o.struct_size, sizeof o);
  assert_int_equal(o.shards, 0);
  assert_int_equal(o.pin_cores, 1);
  assert_int_equal(o.create_if_missing, 1);
  assert_int_equal(o.read_only, 0);
  /* a quarter of the memory the process may use (physical, or less under a cgroup limit), in
     whole pages, at least 64 MiB */
  uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  assert_true(o.cache_bytes >= (64ull << 20));
  assert_int_equal(o.cache_bytes % 4096, 0);
  assert_true(o.cache_bytes <= (ram / 4 > (64ull << 20) ? ram / 4 : 64ull << 20));
  assert_int_equal(o.memtable_bytes, 64ull << 20);
  assert_int_equal(o.inline_value_max, 256);
  assert_int_equal(o.history_seconds, 0);
  assert_int_equal(o.io_backend, JDB_IO_AUTO);
  assert_int_equal(o.direct_io, JDB_DIRECT_AUTO);
  jdb_options_init(NULL);   /* ignored */
}

struct t_log {
  atomic_int lines;
};

static void t_log_fn(void *ud, int level, const char *msg)
{
  struct t_log *l = ud;
  (void)level;
  (void)msg;
  atomic_fetch_add(&l->lines, 1);
}

/* JDB_LOG_OFF drops every line, whatever happens; NULL goes back to stderr. */
static void test_log_set(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "log");
  struct t_log l;
  atomic_init(&l.lines, 0);
  jdb_log_set(t_log_fn, &l, JDB_LOG_OFF);
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "t", JDB_CREATE);
  t_put_str(t, "k", "v");
  jdb_table_close(t);
  jdb_t *db2 = (jdb_t *)1;
  assert_rc(jdb_open(p, NULL, &db2), JDB_EBUSY);
  assert_ok(jdb_close(db));
  assert_int_equal(atomic_load(&l.lines), 0);
  jdb_log_set(NULL, NULL, JDB_LOG_WARN);
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Instance */

static void test_open_errors(void **state)
{
  (void)state;
  char p[PATH_MAX], q[PATH_MAX + 32];
  t_path(p, sizeof p, "open_errors");
  jdb_options_t o = t_opts(2);
  jdb_t *db = (jdb_t *)1;

  assert_rc(jdb_open(NULL, &o, &db), JDB_EINVAL);
  assert_null(db);
  assert_rc(jdb_open(p, &o, NULL), JDB_EINVAL);
  db = (jdb_t *)1;
  assert_rc(jdb_open("", &o, &db), JDB_EINVAL);
  assert_null(db);

  /* bad options: nothing is created */
  jdb_options_t b = o;
  b.struct_size = 0;
  db = (jdb_t *)1;
  assert_rc(jdb_open(p, &b, &db), JDB_EINVAL);
  assert_null(db);
  b = o;
  b.struct_size = sizeof b + 8;
  assert_rc(jdb_open(p, &b, &db), JDB_EINVAL);
  b = o;
  b.shards = JDB_SHARDS_MAX + 1;
  assert_rc(jdb_open(p, &b, &db), JDB_EINVAL);
  b = o;
  b.io_backend = 7;
  assert_rc(jdb_open(p, &b, &db), JDB_EINVAL);
  b = o;
  b.io_backend = -1;
  assert_rc(jdb_open(p, &b, &db), JDB_EINVAL);
  b = o;
  b.direct_io = 9;
  assert_rc(jdb_open(p, &b, &db), JDB_EINVAL);
  assert_false(t_exists(p));

  /* missing and !create_if_missing: JDB_NOTFOUND, nothing created */
  b = o;
  b.create_if_missing = 0;
  db = (jdb_t *)1;
  assert_rc(jdb_open(p, &b, &db), JDB_NOTFOUND);
  assert_null(db);
  assert_false(t_exists(p));
  b.read_only = 1;
  assert_rc(jdb_open(p, &b, &db), JDB_NOTFOUND);
  assert_false(t_exists(p));

  /* parents are not created */
  snprintf(q, sizeof q, "%s/a/b", p);
  db = (jdb_t *)1;
  int rc = jdb_open(q, &o, &db);
  assert_true(rc < 0);
  assert_null(db);
  assert_false(t_exists(p));

  /* a regular file where the directory should be */
  t_mkdir_p(p);
  snprintf(q, sizeof q, "%s/file", p);
  FILE *fp = fopen(q, "w");
  assert_non_null(fp);
  fputs("not a database\n", fp);
  fclose(fp);
  db = (jdb_t *)1;
  jdb_log_set(NULL, NULL, JDB_LOG_OFF);   /* the expected error is logged */
  rc = jdb_open(q, &o, &db);
  jdb_log_set(NULL, NULL, JDB_LOG_WARN);
  assert_true(rc < 0);
  assert_null(db);
  t_rm_rf(p);

  /* NULL handles */
  assert_ok(jdb_close(NULL));
  assert_rc(jdb_flush(NULL), JDB_EINVAL);
  assert_rc(jdb_checkpoint(NULL), JDB_EINVAL);
  jdb_stats_t st = {.struct_size = sizeof st};
  assert_rc(jdb_stats(NULL, -1, &st), JDB_EINVAL);
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_rc(jdb_check(NULL, &cr), JDB_EINVAL);

  /* NULL options: the defaults (one shard per online CPU) */
  db = NULL;
  assert_ok(jdb_open(p, NULL, &db));
  assert_non_null(db);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1)
    cpus = 1;
  if (cpus > (long)JDB_SHARDS_MAX)
    cpus = JDB_SHARDS_MAX;
  assert_int_equal(t_stats(db, -1).shards, (uint32_t)cpus);
  assert_ok(jdb_close(db));
  /* an existing directory opens without create_if_missing */
  b = o;
  b.create_if_missing = 0;
  db = NULL;
  assert_ok(jdb_open(p, &b, &db));
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* A child process: waits for a byte on `go`, tries jdb_open(path) and reports the result as one
   int on `res`; repeats until `go` is closed. On "w" it also writes key "child" and closes. */
static void t_child_loop(const char *path, int go, int res)
{
  alarm(60);
  char c;
  while (read(go, &c, 1) == 1) {
    jdb_options_t o = t_opts(2);
    jdb_t *db = NULL;
    int rc = jdb_open(path, &o, &db);
    if (rc == JDB_OK && c == 'w') {
      jdb_table_t *t = NULL;
      rc = jdb_table_open(db, "t", 1, JDB_CREATE, &t);
      if (rc == JDB_OK)
        rc = jdb_put(t, "child", 5, "yes", 3);
      jdb_table_close(t);
    }
    if (db) {
      int rc2 = jdb_close(db);
      if (rc == JDB_OK)
        rc = rc2;
    }
    if (write(res, &rc, sizeof rc) != (ssize_t)sizeof rc)
      _exit(3);
  }
  _exit(0);
}

static int t_child_ask(int go, int res, char what)
{
  int rc = 12345;
  if (write(go, &what, 1) != 1)
    return 12345;
  if (read(res, &rc, sizeof rc) != (ssize_t)sizeof rc)
    return 12346;
  return rc;
}

static void test_busy(void **state)
{
  (void)state;
  char p[PATH_MAX], q[PATH_MAX + 8];
  t_path(p, sizeof p, "busy");
  snprintf(q, sizeof q, "%s/.", p);

  /* A child forked while no instance is open: another process proper. */
  int go[2], res[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(res), 0);
  pid_t kid = fork();
  assert_true(kid >= 0);
  if (kid == 0) {
    close(go[1]);
    close(res[0]);
    t_child_loop(p, go[0], res[1]);
  }
  close(go[0]);
  close(res[1]);

  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "t", JDB_CREATE);
  t_put_str(t, "parent", "yes");

  /* the same process: same path, another spelling of it, read-only */
  jdb_options_t o = t_opts(2);
  jdb_t *db2 = (jdb_t *)1;
  assert_rc(jdb_open(p, &o, &db2), JDB_EBUSY);
  assert_null(db2);
  db2 = (jdb_t *)1;
  assert_rc(jdb_open(q, &o, &db2), JDB_EBUSY);
  assert_null(db2);
  o.read_only = 1;
  db2 = (jdb_t *)1;
  assert_rc(jdb_open(p, &o, &db2), JDB_EBUSY);
  assert_null(db2);

  /* another process */
  assert_rc(t_child_ask(go[1], res[0], 'r'), JDB_EBUSY);

  /* a child forked now, while the instance is open (it inherits its state) */
  pid_t kid2 = fork();
  assert_true(kid2 >= 0);
  if (kid2 == 0) {
    alarm(60);
    jdb_options_t o2 = t_opts(2);
    jdb_t *d = NULL;
    int rc = jdb_open(p, &o2, &d);
    _exit(rc == JDB_EBUSY && d == NULL ? 0 : 10 + (rc < 0 ? -rc : 50));
  }
  int ws = 0;
  assert_int_equal(waitpid(kid2, &ws, 0), kid2);
  if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
    fail_msg("forked child's jdb_open of an open directory: status %#x (want exit 0 = EBUSY)",
             ws);

  /* the instance still works; once closed, the other process may open it and write */
  t_get_str(t, "parent", "yes");
  jdb_table_close(t);
  assert_ok(jdb_close(db));
  assert_rc(t_child_ask(go[1], res[0], 'w'), JDB_OK);
  close(go[1]);
  assert_int_equal(waitpid(kid, &ws, 0), kid);
  assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  close(res[0]);

  db = t_open(q, 2);
  t = t_table(db, "t", 0);
  t_get_str(t, "parent", "yes");
  t_get_str(t, "child", "yes");
  jdb_table_close(t);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* The shard of table t: the one whose seq moves when t is written (a probe key, deleted again). */
static int t_shard_of(jdb_t *db, jdb_table_t *t, uint32_t shards)
{
  uint64_t before[8];
  assert_true(shards <= 8);
  for (uint32_t i = 0; i < shards; i++)
    before[i] = t_stats(db, (int)i).seq;
  assert_ok(jdb_put(t, "\xff\xff\xffprobe", 8, "", 0));
  assert_ok(jdb_del(t, "\xff\xff\xffprobe", 8));
  int found = -1;
  for (uint32_t i = 0; i < shards; i++) {
    if (t_stats(db, (int)i).seq != before[i]) {
      assert_int_equal(found, -1);
      found = (int)i;
    }
  }
  assert_true(found >= 0);
  return found;
}

/* Created with 2 shards, reopened asking for 5: still 2, data kept; stats and check. */
static void test_reopen_stats_check(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "reopen");
  jdb_t *db = t_open(p, 2);
  enum { NT = 12, NK = 50 };
  jdb_table_t *t[NT];
  int on[2] = {0, 0};
  for (int i = 0; i < NT; i++) {
    char name[32];
    snprintf(name, sizeof name, "table-%02d", i);
    t[i] = t_table(db, name, JDB_CREATE);
    on[t_shard_of(db, t[i], 2)]++;
  }
  assert_true(on[0] > 0 && on[1] > 0);   /* 12 names on one shard: 1 in 2048 */

  /* most of a megabyte of inline values in one memtable, so that a checkpoint visibly empties
     it (memtables grow in chunks) */
  uint8_t bulk[200];
  for (int k = 0; k < 3000; k++) {
    char key[32];
    snprintf(key, sizeof key, "bulk-%04d", k);
    t_val_fill(bulk, (uint32_t)k, sizeof bulk);
    assert_ok(jdb_put(t[0], key, strlen(key), bulk, sizeof bulk));
  }

  /* exact counters: every put is one write of one op, a batch of 5 one write of 5 ops */
  jdb_stats_t s0 = t_stats(db, -1);
  assert_int_equal(s0.shards, 2);
  for (int i = 0; i < NT; i++) {
    for (int k = 0; k < NK; k++) {
      char key[32], val[32];
      snprintf(key, sizeof key, "key-%03d", k);
      snprintf(val, sizeof val, "v-%d-%d", i, k);
      t_put_str(t[i], key, val);
    }
  }
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  for (int k = 0; k < 5; k++)
    assert_ok(jdb_batch_put(b, "bk", 2, &k, sizeof k));   /* the last one wins */
  assert_ok(jdb_write(t[0], b, 0));
  jdb_stats_t s1 = t_stats(db, -1);
  assert_int_equal(s1.writes - s0.writes, NT * NK + 1);
  assert_int_equal(s1.ops - s0.ops, NT * NK + 5);
  assert_true(s1.seq >= s0.seq + NT * NK + 1);
  jdb_stats_t a = t_stats(db, 0), c = t_stats(db, 1);
  assert_int_equal(a.shards, 1);
  assert_int_equal(c.shards, 1);
  assert_int_equal(a.seq + c.seq, s1.seq);
  assert_int_equal(a.writes + c.writes, s1.writes);
  assert_true(s1.memtable_bytes > 0);
  assert_true(s1.log_bytes > 0);
  assert_true(s1.cache_bytes > 0);
  assert_true(s1.cache_used_bytes <= s1.cache_bytes);
  /* the pool takes frames as pages fill them: the checkpoint's tree pages */
  assert_ok(jdb_checkpoint(db));
  jdb_stats_t su = t_stats(db, -1);
  a = t_stats(db, 0);
  c = t_stats(db, 1);
  assert_true(su.cache_used_bytes > 0 && su.cache_used_bytes <= su.cache_bytes);
  assert_int_equal(a.cache_used_bytes + c.cache_used_bytes, su.cache_used_bytes);
  assert_true(s1.calls > 0);

  /* stats argument checks; a smaller struct_size gets only its fields */
  jdb_stats_t st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  assert_rc(jdb_stats(db, 2, &st), JDB_EINVAL);
  assert_rc(jdb_stats(db, -2, &st), JDB_EINVAL);
  assert_rc(jdb_stats(db, INT_MAX, &st), JDB_EINVAL);
  assert_rc(jdb_stats(db, -1, NULL), JDB_EINVAL);
  st.struct_size = 0;
  assert_rc(jdb_stats(db, -1, &st), JDB_EINVAL);
  st.struct_size = 4;
  assert_rc(jdb_stats(db, -1, &st), JDB_EINVAL);

  /* snapshots and iterators are counted while live */
  jdb_snap_t *sn = NULL;
  jdb_iter_t *it = NULL;
  uint64_t live = t_stats(db, -1).snapshots;
  assert_ok(jdb_snapshot(t[1], &sn));
  assert_ok(jdb_iter_open(t[2], NULL, &it));
  assert_true(t_stats(db, -1).snapshots >= live + 2);
  jdb_iter_close(it);
  jdb_snapshot_release(sn);
  assert_int_equal(t_stats(db, -1).snapshots, live);

  /* checkpoint moves the memtables into the trees */
  assert_ok(jdb_flush(db));
  assert_ok(jdb_checkpoint(db));
  jdb_stats_t s2 = t_stats(db, -1);
  assert_true(s2.checkpoints > s1.checkpoints);
  assert_int_equal(s2.checkpoints_running, 0);   /* jdb_checkpoint waited for them */
  if (!(s2.memtable_bytes < s1.memtable_bytes))
    fail_msg("memtable_bytes %llu before a checkpoint, %llu after",
             (unsigned long long)s1.memtable_bytes, (unsigned long long)s2.memtable_bytes);
  assert_true(s2.page_file_bytes > 0);
  assert_true(s2.io_writes > 0 && s2.io_write_bytes > 0 && s2.io_syncs > 0);

  jdb_check_report_t cr;
  memset(&cr, 0xee, sizeof cr);
  cr.struct_size = sizeof cr;
  assert_ok(jdb_check(db, &cr));
  assert_int_equal(cr.struct_size, sizeof cr);
  assert_int_equal(cr.shards, 2);
  assert_true(cr.pages_checked > 0);
  assert_true(cr.log_records_checked > 0);
  assert_true(cr.log_bytes_checked > 0);
  assert_int_equal(cr.errors, 0);
  assert_rc(jdb_check(db, NULL), JDB_EINVAL);
  cr.struct_size = 0;
  assert_rc(jdb_check(db, &cr), JDB_EINVAL);

  for (int i = 0; i < NT; i++)
    jdb_table_close(t[i]);
  assert_ok(jdb_close(db));

  /* reopen asking for 5 shards: the directory says 2; everything is there */
  jdb_options_t o = t_opts(5);
  o.pin_cores = 1;   /* pinning 2 shards on this machine: works or logs a warning */
  db = NULL;
  assert_ok(jdb_open(p, &o, &db));
  assert_int_equal(t_stats(db, -1).shards, 2);
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  assert_rc(jdb_stats(db, 2, &st), JDB_EINVAL);
  for (int i = 0; i < NT; i++) {
    char name[32];
    snprintf(name, sizeof name, "table-%02d", i);
    t[i] = t_table(db, name, 0);
    for (int k = 0; k < NK; k++) {
      char key[32], val[32];
      snprintf(key, sizeof key, "key-%03d", k);
      snprintf(val, sizeof val, "v-%d-%d", i, k);
      t_get_str(t[i], key, val);
    }
  }
  void *v = NULL;
  size_t vl = 0;
  assert_ok(jdb_get(t[0], "bk", 2, &v, &vl));
  assert_int_equal(vl, sizeof(int));
  int last;
  memcpy(&last, v, sizeof last);
  assert_int_equal(last, 4);
  jdb_free(v);
  /* the shard of each table is still the same one */
  jdb_stats_t r = t_stats(db, -1);
  assert_int_equal(r.shards, 2);
  cr.struct_size = sizeof cr;
  assert_ok(jdb_check(db, &cr));
  assert_int_equal(cr.shards, 2);
  assert_int_equal(cr.errors, 0);
  for (int i = 0; i < NT; i++)
    jdb_table_close(t[i]);
  jdb_batch_free(b);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* Damaged tree pages: jdb_check finds them (JDB_ECORRUPT, errors > 0, each logged at
   JDB_LOG_ERROR); reads give the right data or JDB_ECORRUPT, never wrong data, never a crash.
   The damage: one byte flipped in the middle of every leaf page (page header bytes 4..5 are
   the magic "JP", byte 6 the type, 3 = leaf; docs/FORMAT.md) of each shard's pages file. */
struct t_errlog {
  atomic_int errors, lines;
};

static void t_errlog_fn(void *ud, int level, const char *msg)
{
  struct t_errlog *l = ud;
  (void)msg;
  atomic_fetch_add(&l->lines, 1);
  if (level <= JDB_LOG_ERROR)
    atomic_fetch_add(&l->errors, 1);
}

static size_t t_damage_leaves(const char *dbpath)
{
  size_t flipped = 0;
  for (int sh = 0; sh < 8; sh++) {
    char fp[PATH_MAX + 32];
    snprintf(fp, sizeof fp, "%s/shard-%03d/pages", dbpath, sh);
    int fd = open(fp, O_RDWR);
    if (fd < 0)
      continue;
    uint8_t pg[4096];
    for (off_t pgno = 2; pread(fd, pg, sizeof pg, pgno * 4096) == (ssize_t)sizeof pg; pgno++) {
      if (pg[4] != 0x4a || pg[5] != 0x50 || pg[6] != 3)
        continue;
      pg[2048] ^= 0x5a;
      if (pwrite(fd, pg, sizeof pg, pgno * 4096) == (ssize_t)sizeof pg)
        flipped++;
    }
    fsync(fd);
    close(fd);
  }
  return flipped;
}

static void test_check_damage(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "check_damage");
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "c", JDB_CREATE);
  enum { NK = 3000 };
  uint8_t val[100];
  for (uint32_t k = 0; k < NK; k++) {
    char key[16];
    snprintf(key, sizeof key, "c%05u", k);
    t_val_fill(val, k, sizeof val);
    assert_ok(jdb_put(t, key, strlen(key), val, sizeof val));
  }
  assert_ok(jdb_checkpoint(db));
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_ok(jdb_check(db, &cr));
  assert_int_equal(cr.errors, 0);
  uint64_t pages_before = cr.pages_checked;
  jdb_table_close(t);
  assert_ok(jdb_close(db));
  assert_true(t_damage_leaves(p) > 0);

  struct t_errlog l;
  atomic_init(&l.errors, 0);
  atomic_init(&l.lines, 0);
  jdb_log_set(t_errlog_fn, &l, JDB_LOG_ERROR);
  jdb_options_t o = t_opts(2);
  db = NULL;
  int rc = jdb_open(p, &o, &db);
  if (rc == JDB_ECORRUPT) {
    assert_null(db);
    jdb_log_set(NULL, NULL, JDB_LOG_WARN);
    t_rm_rf(p);
    return;
  }
  assert_ok(rc);
  memset(&cr, 0, sizeof cr);
  cr.struct_size = sizeof cr;
  assert_rc(jdb_check(db, &cr), JDB_ECORRUPT);
  assert_true(cr.errors > 0);
  assert_true(cr.pages_checked > 0 && cr.pages_checked <= pages_before);
  assert_true((uint64_t)atomic_load(&l.errors) >= 1);
  t = NULL;
  rc = jdb_table_open(db, "c", 1, 0, &t);
  if (rc == JDB_OK) {
    size_t good = 0, bad = 0;
    for (uint32_t k = 0; k < NK; k++) {
      char key[16];
      snprintf(key, sizeof key, "c%05u", k);
      void *v = NULL;
      size_t vl = 0;
      rc = jdb_get(t, key, strlen(key), &v, &vl);
      if (rc == JDB_OK) {
        if (!t_val_is(v, vl, k, sizeof val))
          fail_msg("key %u read from a damaged file: JDB_OK with a wrong value", k);
        jdb_free(v);
        good++;
      } else if (rc == JDB_ECORRUPT) {
        bad++;
      } else {
        fail_msg("key %u in a damaged leaf: %s, want its value or JDB_ECORRUPT", k,
                 jdb_strerror(rc));
      }
    }
    assert_true(bad > 0);
    jdb_iter_t *it = NULL;
    assert_ok(jdb_iter_open(t, NULL, &it));
    for (rc = jdb_iter_first(it); rc == JDB_OK; rc = jdb_iter_next(it)) {
      const void *k = NULL, *v = NULL;
      size_t kl = 0, vl = 0;
      assert_ok(jdb_iter_key(it, &k, &kl));
      assert_ok(jdb_iter_value(it, &v, &vl));
      char key[16];
      assert_true(kl == 6 && kl < sizeof key);
      memcpy(key, k, kl);
      key[kl] = 0;
      assert_true(t_val_is(v, vl, (uint32_t)atoi(key + 1), sizeof val));
    }
    assert_rc(rc, JDB_ECORRUPT);   /* the scan cannot have passed every damaged leaf */
    jdb_iter_close(it);
    jdb_table_close(t);
  } else {
    assert_rc(rc, JDB_ECORRUPT);
  }
  jdb_log_set(NULL, NULL, JDB_LOG_WARN);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* inline_value_max is an option of each open, not of the directory: values a crashed process
   wrote inline under a larger limit (still only in the log) must be recovered and checkpointed
   by an instance opened with a smaller one. The crash: a forked child writes and _exits. */
static void test_reopen_inline_limit(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "inline_limit");
  enum { NK = 40 };
  pid_t kid = fork();
  assert_true(kid >= 0);
  if (kid == 0) {
    alarm(60);
    jdb_options_t o = t_opts(2);
    o.inline_value_max = 512;
    jdb_t *db = NULL;
    jdb_table_t *t = NULL;
    if (jdb_open(p, &o, &db) != JDB_OK || jdb_table_open(db, "t", 1, JDB_CREATE, &t) != JDB_OK)
      _exit(2);
    uint8_t val[512];
    for (uint32_t k = 0; k < NK; k++) {
      char key[16];
      snprintf(key, sizeof key, "k%03u", k);
      size_t vl = 200 + (k * 37) % 313;   /* 200 .. 512: many above the default 256 */
      t_val_fill(val, k, vl);
      if (jdb_put(t, key, strlen(key), val, vl) != JDB_OK)
        _exit(3);
    }
    _exit(0);   /* no jdb_close: the values are only in the log */
  }
  int ws = 0;
  assert_int_equal(waitpid(kid, &ws, 0), kid);
  assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  for (int round = 0; round < 2; round++) {
    jdb_options_t o = t_opts(2);
    o.inline_value_max = round ? 64 : 256;
    jdb_t *db = NULL;
    assert_ok(jdb_open(p, &o, &db));
    jdb_table_t *t = t_table(db, "t", 0);
    for (uint32_t k = 0; k < NK; k++) {
      char key[16];
      snprintf(key, sizeof key, "k%03u", k);
      void *v = NULL;
      size_t vl = 0;
      assert_ok(jdb_get(t, key, strlen(key), &v, &vl));
      assert_true(t_val_is(v, vl, k, 200 + (k * 37) % 313));
      jdb_free(v);
    }
    if (round == 0)
      assert_ok(jdb_checkpoint(db));
    jdb_table_close(t);
    assert_ok(jdb_close(db));
  }
  t_rm_rf(p);
}

/* The smallest cache (cache_bytes 1: the library's minimum number of pages per shard) with
   long keys and out-of-line values: checkpoints (background ones while writing, jdb_checkpoint,
   the one in jdb_close) must work, only slower; everything must read back after a reopen. */
static void test_small_cache(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "small_cache");
  jdb_options_t o = t_opts(1);
  o.cache_bytes = 1;
  o.memtable_bytes = 1u << 20;
  static uint8_t key[1000], val[300];
  enum { NK = 3000, ROUNDS = 4 };
  for (int round = 0; round < ROUNDS; round++) {
    jdb_t *db = NULL;
    assert_ok(jdb_open(p, &o, &db));
    jdb_table_t *t = t_table(db, "t", JDB_CREATE);
    for (uint32_t k = 0; k < NK; k++) {
      memset(key, 'k', sizeof key);
      snprintf((char *)key, 32, "r%d-%08u", round, (k * 761u) % NK);   /* a permutation */
      t_val_fill(val, k, sizeof val);
      assert_ok(jdb_put(t, key, sizeof key, val, sizeof val));
    }
    assert_ok(jdb_checkpoint(db));
    jdb_table_close(t);
    assert_ok(jdb_close(db));
  }
  jdb_t *db = t_open(p, 1);
  jdb_table_t *t = t_table(db, "t", 0);
  jdb_iter_t *it = NULL;
  assert_ok(jdb_iter_open(t, NULL, &it));
  size_t n = 0;
  int rc;
  for (rc = jdb_iter_first(it); rc == JDB_OK; rc = jdb_iter_next(it))
    n++;
  assert_rc(rc, JDB_NOTFOUND);
  assert_int_equal(n, ROUNDS * NK);
  jdb_iter_close(it);
  jdb_table_close(t);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Tables */

struct t_names {
  size_t n, cap;
  uint8_t **name;
  size_t *len;
};

static void t_names_add(struct t_names *ns, const void *name, size_t len)
{
  if (ns->n == ns->cap) {
    ns->cap = ns->cap ? ns->cap * 2 : 16;
    ns->name = realloc(ns->name, ns->cap * sizeof *ns->name);
    ns->len = realloc(ns->len, ns->cap * sizeof *ns->len);
    assert_non_null(ns->name);
    assert_non_null(ns->len);
  }
  ns->name[ns->n] = malloc(len ? len : 1);
  assert_non_null(ns->name[ns->n]);
  memcpy(ns->name[ns->n], name, len);
  ns->len[ns->n++] = len;
}

static void t_names_free(struct t_names *ns)
{
  for (size_t i = 0; i < ns->n; i++)
    free(ns->name[i]);
  free(ns->name);
  free(ns->len);
  memset(ns, 0, sizeof *ns);
}

static int t_bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : al < bl ? -1 : al > bl ? 1 : 0;
}

static struct t_names *g_sort_names;
static int t_names_idx_cmp(const void *x, const void *y)
{
  size_t i = *(const size_t *)x, j = *(const size_t *)y;
  return t_bytes_cmp(g_sort_names->name[i], g_sort_names->len[i], g_sort_names->name[j],
                     g_sort_names->len[j]);
}

/* ns sorted bytewise (a new list). */
static void t_names_sorted(struct t_names *ns, struct t_names *out)
{
  size_t *idx = malloc((ns->n + 1) * sizeof *idx);
  assert_non_null(idx);
  for (size_t i = 0; i < ns->n; i++)
    idx[i] = i;
  g_sort_names = ns;
  qsort(idx, ns->n, sizeof *idx, t_names_idx_cmp);
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < ns->n; i++)
    t_names_add(out, ns->name[idx[i]], ns->len[idx[i]]);
  free(idx);
}

struct t_list_ud {
  struct t_names got;
  size_t stop_after;     /* return 7 after this many names (0: never) */
  jdb_t *db;             /* open each listed table from inside the callback */
  int inner_errors;
};

static int t_list_fn(void *ud, const void *name, size_t len)
{
  struct t_list_ud *u = ud;
  t_names_add(&u->got, name, len);
  if (u->db) {
    jdb_table_t *t = NULL;
    if (jdb_table_open(u->db, name, len, 0, &t) != JDB_OK)
      u->inner_errors++;
    jdb_table_close(t);
  }
  return u->stop_after && u->got.n == u->stop_after ? 7 : 0;
}

/* jdb_table_list from `start` must give exactly the names of `sorted` that are >= start. */
static void t_list_check(jdb_t *db, struct t_names *sorted, const void *start, size_t start_len,
                         size_t stop_after, int inner)
{
  struct t_list_ud u;
  memset(&u, 0, sizeof u);
  u.stop_after = stop_after;
  u.db = inner ? db : NULL;
  int rc = jdb_table_list(db, start, start_len, t_list_fn, &u);
  size_t first = 0;
  while (start && first < sorted->n &&
         t_bytes_cmp(sorted->name[first], sorted->len[first], start, start_len) < 0)
    first++;
  size_t want = sorted->n - first;
  if (stop_after && stop_after <= want) {
    assert_rc(rc, 7);
    want = stop_after;
  } else {
    assert_ok(rc);
  }
  if (u.got.n != want)
    fail_msg("jdb_table_list from %zu bytes: %zu names, want %zu", start_len, u.got.n, want);
  for (size_t i = 0; i < want; i++) {
    if (t_bytes_cmp(u.got.name[i], u.got.len[i], sorted->name[first + i],
                    sorted->len[first + i]) != 0)
      fail_msg("jdb_table_list: name %zu differs (len %zu, want len %zu)", i, u.got.len[i],
               sorted->len[first + i]);
  }
  assert_int_equal(u.inner_errors, 0);
  t_names_free(&u.got);
}

static int t_list_count_fn(void *ud, const void *name, size_t len)
{
  (void)name;
  (void)len;
  (*(size_t *)ud)++;
  return 0;
}

struct t_create_ud {
  jdb_t *db;
  int calls, errors;
};

static int t_list_create_fn(void *ud, const void *name, size_t len)
{
  struct t_create_ud *u = ud;
  (void)name;
  (void)len;
  if (u->calls < 3) {
    char nm[32];
    snprintf(nm, sizeof nm, "made-in-callback-%d", u->calls);
    jdb_table_t *t = NULL;
    if (jdb_table_open(u->db, nm, strlen(nm), JDB_CREATE, &t) != JDB_OK ||
        jdb_put(t, "k", 1, "v", 1) != JDB_OK)
      u->errors++;
    jdb_table_close(t);
  }
  u->calls++;
  return 0;
}

static void test_tables(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "tables");
  t_rng r;
  t_rng_init(&r, 0x7ab1e5);
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = (jdb_table_t *)1;

  /* argument checks */
  static uint8_t longname[JDB_NAME_MAX + 1];
  memset(longname, 'n', sizeof longname);
  assert_rc(jdb_table_open(NULL, "a", 1, JDB_CREATE, &t), JDB_EINVAL);
  assert_null(t);
  assert_rc(jdb_table_open(db, "a", 1, JDB_CREATE, NULL), JDB_EINVAL);
  t = (jdb_table_t *)1;
  assert_rc(jdb_table_open(db, NULL, 1, JDB_CREATE, &t), JDB_EINVAL);
  assert_null(t);
  assert_rc(jdb_table_open(db, "a", 0, JDB_CREATE, &t), JDB_EINVAL);
  assert_rc(jdb_table_open(db, longname, JDB_NAME_MAX + 1, JDB_CREATE, &t), JDB_EINVAL);
  assert_rc(jdb_table_open(db, "a", 1, 2u, &t), JDB_EINVAL);
  assert_rc(jdb_table_open(db, "a", 1, JDB_CREATE | 0x80000000u, &t), JDB_EINVAL);
  assert_rc(jdb_table_open(db, "a", 1, ~0u, &t), JDB_EINVAL);
  t = (jdb_table_t *)1;
  assert_rc(jdb_table_open(db, "a", 1, 0, &t), JDB_NOTFOUND);
  assert_null(t);
  assert_rc(jdb_table_drop(NULL, "a", 1), JDB_EINVAL);
  assert_rc(jdb_table_drop(db, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_table_drop(db, "a", 0), JDB_EINVAL);
  assert_rc(jdb_table_drop(db, longname, JDB_NAME_MAX + 1), JDB_EINVAL);
  assert_rc(jdb_table_drop(db, "a", 1), JDB_NOTFOUND);
  size_t cnt = 0;
  assert_rc(jdb_table_list(NULL, NULL, 0, t_list_count_fn, &cnt), JDB_EINVAL);
  assert_rc(jdb_table_list(db, NULL, 0, NULL, &cnt), JDB_EINVAL);
  assert_rc(jdb_table_list(db, longname, JDB_NAME_MAX + 1, t_list_count_fn, &cnt), JDB_EINVAL);
  assert_ok(jdb_table_list(db, NULL, 0, t_list_count_fn, &cnt));
  assert_int_equal(cnt, 0);
  jdb_table_close(NULL);

  /* names: binary, prefixes of each other, one byte, the longest; created twice is fine */
  struct t_names ns;
  memset(&ns, 0, sizeof ns);
  t_names_add(&ns, longname, JDB_NAME_MAX);
  t_names_add(&ns, "\x00", 1);
  t_names_add(&ns, "\x00\x00", 2);
  t_names_add(&ns, "\xff", 1);
  t_names_add(&ns, "\xff\x00\xff", 3);
  t_names_add(&ns, "a", 1);
  t_names_add(&ns, "ab", 2);
  t_names_add(&ns, "a\x00", 2);
  /* enough names, some long, that each shard returns its names in several chunks */
  size_t nnames = t_scaled(420);
  while (ns.n < nnames) {
    uint8_t nm[JDB_NAME_MAX];
    size_t len = t_below(&r, 8) ? 1 + t_below(&r, 40) : 200 + t_below(&r, JDB_NAME_MAX - 199);
    for (size_t i = 0; i < len; i++)
      nm[i] = t_below(&r, 4) ? (uint8_t)('a' + t_below(&r, 3)) : (uint8_t)t_below(&r, 256);
    int dup = 0;
    for (size_t i = 0; i < ns.n && !dup; i++)
      dup = t_bytes_cmp(ns.name[i], ns.len[i], nm, len) == 0;
    if (!dup)
      t_names_add(&ns, nm, len);
  }
  for (size_t i = 0; i < ns.n; i++) {
    jdb_table_t *h = NULL, *h2 = NULL;
    assert_ok(jdb_table_open(db, ns.name[i], ns.len[i], JDB_CREATE, &h));
    assert_ok(jdb_put(h, "name", 4, ns.name[i], ns.len[i]));
    assert_ok(jdb_table_open(db, ns.name[i], ns.len[i], JDB_CREATE, &h2));   /* exists */
    void *v = NULL;
    size_t vl = 0;
    assert_ok(jdb_get(h2, "name", 4, &v, &vl));
    assert_int_equal(vl, ns.len[i]);
    assert_memory_equal(v, ns.name[i], vl);
    jdb_free(v);
    jdb_table_close(h2);
    jdb_table_close(h);
  }
  struct t_names sorted;
  t_names_sorted(&ns, &sorted);

  /* list: all, from every start, between names, past the end, stopped early, with calls */
  t_list_check(db, &sorted, NULL, 0, 0, 1);
  for (size_t i = 0; i < sorted.n; i += 1 + t_below(&r, 5))
    t_list_check(db, &sorted, sorted.name[i], sorted.len[i], 0, 0);
  for (int i = 0; i < 20; i++) {
    uint8_t nm[8];
    size_t len = 1 + t_below(&r, sizeof nm);
    for (size_t j = 0; j < len; j++)
      nm[j] = (uint8_t)t_below(&r, 256);
    t_list_check(db, &sorted, nm, len, 0, 0);
  }
  t_list_check(db, &sorted, "\xff\xff\xff", 3, 0, 0);
  for (size_t stop = 1; stop <= sorted.n; stop += 1 + t_below(&r, 9))
    t_list_check(db, &sorted, NULL, 0, stop, 0);
  t_list_check(db, &sorted, sorted.name[3], sorted.len[3], 2, 1);

  /* a callback that creates tables and writes (fn may call JDB): no deadlock, the tables are
     there afterwards (whether this listing shows them is not specified) */
  struct t_create_ud cu = {db, 0, 0};
  assert_ok(jdb_table_list(db, NULL, 0, t_list_create_fn, &cu));
  assert_int_equal(cu.errors, 0);
  assert_true(cu.calls >= 3);
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "made-in-callback-%d", i);
    jdb_table_t *h = t_table(db, name, 0);
    t_get_str(h, "k", "v");
    jdb_table_close(h);
    t_names_add(&ns, name, strlen(name));
  }
  t_names_free(&sorted);
  t_names_sorted(&ns, &sorted);
  t_list_check(db, &sorted, NULL, 0, 0, 0);

  /* drop: the old handles' writes fail, reads find nothing, the name is free again */
  jdb_table_t *d1 = t_table(db, "drop-me", JDB_CREATE);
  jdb_table_t *d2 = t_table(db, "drop-me", 0);
  for (int k = 0; k < 100; k++) {
    char key[16];
    snprintf(key, sizeof key, "k%03d", k);
    t_put_str(d1, key, "old");
  }
  assert_ok(jdb_checkpoint(db));   /* some of the dropped data in the tree, some not */
  t_put_str(d1, "mem", "old");
  t_get_str(d2, "k050", "old");
  jdb_snap_t *sn_before = NULL;
  assert_ok(jdb_snapshot(d2, &sn_before));
  assert_ok(jdb_table_drop(db, "drop-me", 7));
  assert_rc(jdb_table_drop(db, "drop-me", 7), JDB_NOTFOUND);
  t = (jdb_table_t *)1;
  assert_rc(jdb_table_open(db, "drop-me", 7, 0, &t), JDB_NOTFOUND);
  assert_null(t);
  jdb_snapshot_release(sn_before);
  assert_rc(jdb_put(d1, "k", 1, "v", 1), JDB_NOTFOUND);
  assert_rc(jdb_put_sync(d1, "k", 1, "v", 1), JDB_NOTFOUND);
  assert_rc(jdb_del(d2, "k001", 4), JDB_NOTFOUND);
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  assert_ok(jdb_batch_put(b, "k", 1, "v", 1));
  assert_ok(jdb_batch_del(b, "k002", 4));
  assert_rc(jdb_write(d1, b, 0), JDB_NOTFOUND);
  assert_rc(jdb_write(d2, b, JDB_SYNC), JDB_NOTFOUND);
  jdb_pipe_t *pp = jdb_pipe_new(db);
  assert_non_null(pp);
  assert_ok(jdb_pipe_put(pp, d1, "k", 1, "v", 1));
  assert_ok(jdb_pipe_del(pp, d2, "k003", 4));
  assert_ok(jdb_pipe_exec(pp, 0));
  assert_rc(jdb_pipe_result(pp, 0, NULL, NULL), JDB_NOTFOUND);
  assert_rc(jdb_pipe_result(pp, 1, NULL, NULL), JDB_NOTFOUND);
  void *v = (void *)1;
  size_t vl = 5;
  assert_rc(jdb_get(d1, "k050", 4, &v, &vl), JDB_NOTFOUND);
  assert_null(v);
  assert_int_equal(vl, 0);
  cnt = 0;
  assert_ok(jdb_table_list(db, "drop-me", 7, t_list_count_fn, &cnt));

  /* recreated: empty, and the old handles do not reach it */
  jdb_table_t *d3 = t_table(db, "drop-me", JDB_CREATE);
  t_get_str(d3, "k050", NULL);
  t_get_str(d3, "mem", NULL);
  jdb_iter_t *it = NULL;
  assert_ok(jdb_iter_open(d3, NULL, &it));
  assert_rc(jdb_iter_first(it), JDB_NOTFOUND);
  assert_rc(jdb_iter_last(it), JDB_NOTFOUND);
  jdb_iter_close(it);
  assert_rc(jdb_put(d1, "stale", 5, "v", 1), JDB_NOTFOUND);
  t_get_str(d3, "stale", NULL);
  t_put_str(d3, "new", "yes");
  t_get_str(d3, "new", "yes");
  size_t cnt2 = 0;
  assert_ok(jdb_table_list(db, "drop-me", 7, t_list_count_fn, &cnt2));
  assert_int_equal(cnt2, cnt + 1);

  jdb_table_close(d1);
  jdb_table_close(d2);
  jdb_table_close(d3);
  jdb_pipe_free(pp);
  jdb_batch_free(b);
  assert_ok(jdb_checkpoint(db));
  assert_ok(jdb_close(db));

  /* after a reopen: the same names in the same order; the recreated table holds only "new" */
  db = t_open(p, 2);
  t_names_add(&ns, "drop-me", 7);
  t_names_free(&sorted);
  t_names_sorted(&ns, &sorted);
  t_list_check(db, &sorted, NULL, 0, 0, 1);
  d3 = t_table(db, "drop-me", 0);
  t_get_str(d3, "new", "yes");
  t_get_str(d3, "k050", NULL);
  assert_ok(jdb_iter_open(d3, NULL, &it));
  assert_ok(jdb_iter_first(it));
  assert_rc(jdb_iter_next(it), JDB_NOTFOUND);
  jdb_iter_close(it);
  jdb_table_close(d3);
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_ok(jdb_check(db, &cr));
  assert_ok(jdb_close(db));
  t_names_free(&sorted);
  t_names_free(&ns);
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Key-value and batches: argument checks and limits */

/* jdb_get must fail with `want` and leave *val NULL, *vlen 0. */
static void t_get_fails(jdb_table_t *t, const void *key, size_t klen, int want)
{
  void *v = (void *)1;
  size_t vl = 77;
  assert_rc(jdb_get(t, key, klen, &v, &vl), want);
  assert_null(v);
  assert_int_equal(vl, 0);
}

static void test_kv_limits(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "kv_limits");
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "kv", JDB_CREATE);
  static uint8_t key[JDB_KEY_MAX + 1];
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t)(i * 7);

  /* put / put_sync / del */
  int (*const puts[2])(jdb_table_t *, const void *, size_t, const void *, size_t) = {
    jdb_put, jdb_put_sync};
  for (int i = 0; i < 2; i++) {
    assert_rc(puts[i](NULL, "k", 1, "v", 1), JDB_EINVAL);
    assert_rc(puts[i](t, NULL, 1, "v", 1), JDB_EINVAL);
    assert_rc(puts[i](t, "k", 0, "v", 1), JDB_EINVAL);
    assert_rc(puts[i](t, key, JDB_KEY_MAX + 1, "v", 1), JDB_EINVAL);
    assert_rc(puts[i](t, key, SIZE_MAX, "v", 1), JDB_EINVAL);
    assert_rc(puts[i](t, "k", 1, NULL, 1), JDB_EINVAL);
    assert_rc(puts[i](t, "k", 1, "v", (size_t)JDB_VALUE_MAX + 1), JDB_EINVAL);
    assert_rc(puts[i](t, "k", 1, "v", SIZE_MAX), JDB_EINVAL);
  }
  assert_rc(jdb_del(NULL, "k", 1), JDB_EINVAL);
  assert_rc(jdb_del(t, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_del(t, "k", 0), JDB_EINVAL);
  assert_rc(jdb_del(t, key, JDB_KEY_MAX + 1), JDB_EINVAL);
  t_get_fails(t, "k", 1, JDB_NOTFOUND);   /* nothing above was written */

  /* get */
  void *v = (void *)1;
  size_t vl = 3;
  t_get_fails(NULL, "k", 1, JDB_EINVAL);
  t_get_fails(t, NULL, 1, JDB_EINVAL);
  t_get_fails(t, "k", 0, JDB_EINVAL);
  t_get_fails(t, key, JDB_KEY_MAX + 1, JDB_EINVAL);
  assert_rc(jdb_get(t, "k", 1, NULL, &vl), JDB_EINVAL);
  assert_rc(jdb_get(t, "k", 1, &v, NULL), JDB_EINVAL);
  jdb_free(NULL);

  /* the longest key, one-byte keys 0x00 and 0xff, a key absent and deleted, del of absent */
  assert_ok(jdb_put(t, key, JDB_KEY_MAX, "max", 3));
  assert_ok(jdb_put(t, "\x00", 1, "zero", 4));
  assert_ok(jdb_put(t, "\xff", 1, "ff", 2));
  assert_ok(jdb_del(t, "absent", 6));
  assert_ok(jdb_get(t, key, JDB_KEY_MAX, &v, &vl));
  assert_int_equal(vl, 3);
  assert_memory_equal(v, "max", 3);
  jdb_free(v);
  t_get_fails(t, key, JDB_KEY_MAX - 1, JDB_NOTFOUND);
  t_get_str(t, "\xff", "ff");
  assert_ok(jdb_get(t, "\x00", 1, &v, &vl));
  assert_int_equal(vl, 4);
  jdb_free(v);
  assert_ok(jdb_del(t, key, JDB_KEY_MAX));
  t_get_fails(t, key, JDB_KEY_MAX, JDB_NOTFOUND);
  t_get_fails(t, "absent", 6, JDB_NOTFOUND);

  /* 0-byte values: val may be NULL; get gives a non-NULL pointer and length 0 */
  assert_ok(jdb_put(t, "empty", 5, NULL, 0));
  assert_ok(jdb_put_sync(t, "empty2", 6, "x", 0));
  for (int i = 0; i < 2; i++) {
    v = NULL;
    vl = 9;
    assert_ok(jdb_get(t, i ? "empty2" : "empty", i ? 6u : 5u, &v, &vl));
    assert_non_null(v);
    assert_int_equal(vl, 0);
    jdb_free(v);
  }

  /* values of a few MiB (odd sizes), through put, put_sync, a batch and a pipe */
  size_t big = (3u << 20) + 11;
  uint8_t *bv = malloc(big);
  assert_non_null(bv);
  t_val_fill(bv, 42, big);
  assert_ok(jdb_put(t, "big1", 4, bv, big));
  assert_ok(jdb_put_sync(t, "big2", 4, bv, big - 5));
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  assert_ok(jdb_batch_put(b, "big3", 4, bv, big - 7));
  assert_ok(jdb_batch_put(b, "small", 5, "s", 1));
  assert_ok(jdb_write(t, b, 0));
  jdb_pipe_t *pp = jdb_pipe_new(db);
  assert_non_null(pp);
  assert_ok(jdb_pipe_put(pp, t, "big4", 4, bv, big - 9));
  assert_ok(jdb_pipe_get(pp, t, "big1", 4));
  assert_ok(jdb_pipe_exec(pp, 0));
  assert_ok(jdb_pipe_result(pp, 0, NULL, NULL));
  const void *pv = NULL;
  size_t pvl = 0;
  assert_ok(jdb_pipe_result(pp, 1, &pv, &pvl));
  assert_int_equal(pvl, big);
  assert_true(t_val_is(pv, pvl, 42, big));
  for (int round = 0; round < 2; round++) {
    static const char *bk[4] = {"big1", "big2", "big3", "big4"};
    for (int i = 0; i < 4; i++) {
      v = NULL;
      assert_ok(jdb_get(t, bk[i], 4, &v, &vl));
      assert_int_equal(vl, big - (size_t)(i ? 3 + 2 * i : 0));
      assert_memory_equal(v, bv, vl);
      jdb_free(v);
    }
    assert_ok(jdb_checkpoint(db));   /* the second round reads them from the tree */
  }

  /* JDB_VALUE_MAX + 1: refused everywhere */
  uint8_t *huge = calloc(1, (size_t)JDB_VALUE_MAX + 1);
  assert_non_null(huge);
  assert_rc(jdb_put(t, "huge", 4, huge, (size_t)JDB_VALUE_MAX + 1), JDB_EINVAL);
  assert_rc(jdb_put_sync(t, "huge", 4, huge, (size_t)JDB_VALUE_MAX + 1), JDB_EINVAL);
  assert_rc(jdb_batch_put(b, "huge", 4, huge, (size_t)JDB_VALUE_MAX + 1), JDB_EINVAL);
  assert_rc(jdb_pipe_put(pp, t, "huge", 4, huge, (size_t)JDB_VALUE_MAX + 1), JDB_EINVAL);
  t_get_fails(t, "huge", 4, JDB_NOTFOUND);
  /* JDB_VALUE_MAX itself is a value like any other */
  for (size_t i = 0; i < JDB_VALUE_MAX; i += 4096)
    huge[i] = (uint8_t)(i >> 12);
  huge[JDB_VALUE_MAX - 1] = 0xee;
  assert_ok(jdb_put(t, "huge", 4, huge, JDB_VALUE_MAX));
  v = NULL;
  assert_ok(jdb_get(t, "huge", 4, &v, &vl));
  assert_int_equal(vl, JDB_VALUE_MAX);
  assert_true(memcmp(v, huge, JDB_VALUE_MAX) == 0);
  jdb_free(v);
  assert_ok(jdb_del(t, "huge", 4));
  free(huge);
  free(bv);

  /* batches: argument checks, count, clear, a later operation on a key wins, unknown flags */
  assert_int_equal(jdb_batch_count(b), 2);
  assert_int_equal(jdb_batch_count(NULL), 0);
  assert_rc(jdb_batch_put(NULL, "k", 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_batch_put(b, NULL, 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_batch_put(b, "k", 0, "v", 1), JDB_EINVAL);
  assert_rc(jdb_batch_put(b, key, JDB_KEY_MAX + 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_batch_put(b, "k", 1, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_batch_del(NULL, "k", 1), JDB_EINVAL);
  assert_rc(jdb_batch_del(b, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_batch_del(b, "k", 0), JDB_EINVAL);
  assert_rc(jdb_batch_del(b, key, JDB_KEY_MAX + 1), JDB_EINVAL);
  assert_int_equal(jdb_batch_count(b), 2);   /* refused operations were not added */
  jdb_batch_clear(b);
  jdb_batch_clear(NULL);
  assert_int_equal(jdb_batch_count(b), 0);
  jdb_stats_t s0 = t_stats(db, -1);
  assert_ok(jdb_write(t, b, 0));   /* empty: nothing written */
  assert_ok(jdb_write(t, b, JDB_SYNC));
  jdb_stats_t s1 = t_stats(db, -1);
  assert_int_equal(s1.seq, s0.seq);
  assert_int_equal(s1.writes, s0.writes);
  assert_ok(jdb_batch_put(b, "x", 1, "1", 1));
  assert_ok(jdb_batch_del(b, "x", 1));
  assert_ok(jdb_batch_put(b, "y", 1, "1", 1));
  assert_ok(jdb_batch_put(b, "y", 1, "2", 1));
  assert_ok(jdb_batch_del(b, "small", 5));
  assert_ok(jdb_batch_put(b, "z", 1, NULL, 0));
  assert_ok(jdb_batch_put(b, key, JDB_KEY_MAX, "kmax", 4));
  assert_int_equal(jdb_batch_count(b), 7);
  assert_rc(jdb_write(NULL, b, 0), JDB_EINVAL);
  assert_rc(jdb_write(t, NULL, 0), JDB_EINVAL);
  assert_rc(jdb_write(t, b, 2u), JDB_EINVAL);
  assert_rc(jdb_write(t, b, JDB_SYNC | 0x100u), JDB_EINVAL);
  t_get_fails(t, "y", 1, JDB_NOTFOUND);   /* refused writes wrote nothing */
  assert_ok(jdb_write(t, b, JDB_SYNC));
  assert_int_equal(jdb_batch_count(b), 7);   /* unchanged: apply it elsewhere too */
  jdb_table_t *t2 = t_table(db, "kv2", JDB_CREATE);
  assert_ok(jdb_write(t2, b, 0));
  jdb_table_t *tt[2] = {t, t2};
  for (int i = 0; i < 2; i++) {
    t_get_fails(tt[i], "x", 1, JDB_NOTFOUND);
    t_get_str(tt[i], "y", "2");
    t_get_str(tt[i], "z", "");
    t_get_fails(tt[i], "small", 5, JDB_NOTFOUND);
    v = NULL;
    assert_ok(jdb_get(tt[i], key, JDB_KEY_MAX, &v, &vl));
    assert_int_equal(vl, 4);
    jdb_free(v);
  }
  jdb_batch_free(NULL);

  /* JDB_BATCH_MAX operations fit; one more does not */
  jdb_batch_clear(b);
  for (uint32_t i = 0; i < JDB_BATCH_MAX; i++) {
    uint32_t k = i;
    int rc = jdb_batch_del(b, &k, sizeof k);
    if (rc != JDB_OK)
      fail_msg("batch op %u: %s", i, jdb_strerror(rc));
  }
  assert_int_equal(jdb_batch_count(b), JDB_BATCH_MAX);
  assert_rc(jdb_batch_del(b, "k", 1), JDB_EINVAL);
  assert_rc(jdb_batch_put(b, "k", 1, "v", 1), JDB_EINVAL);
  assert_int_equal(jdb_batch_count(b), JDB_BATCH_MAX);
  /* the largest batch applies as one: JDB_BATCH_MAX puts of 4-byte keys */
  jdb_batch_clear(b);
  for (uint32_t i = 0; i < JDB_BATCH_MAX; i++) {
    uint8_t k4[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    assert_ok(jdb_batch_put(b, k4, 4, k4 + 3, i % 3 ? 1 : 0));
  }
  jdb_table_t *t3 = t_table(db, "batch-max", JDB_CREATE);
  s0 = t_stats(db, -1);
  assert_ok(jdb_write(t3, b, 0));
  s1 = t_stats(db, -1);
  assert_int_equal(s1.ops - s0.ops, JDB_BATCH_MAX);
  assert_int_equal(s1.writes - s0.writes, 1);
  jdb_iter_t *it = NULL;
  assert_ok(jdb_iter_open(t3, NULL, &it));
  const void *ik = NULL, *iv = NULL;
  size_t ikl = 0, ivl = 0;
  assert_ok(jdb_iter_last(it));
  assert_ok(jdb_iter_key(it, &ik, &ikl));
  assert_ok(jdb_iter_value(it, &iv, &ivl));
  uint32_t lastk = JDB_BATCH_MAX - 1;
  uint8_t want4[4] = {(uint8_t)(lastk >> 24), (uint8_t)(lastk >> 16), (uint8_t)(lastk >> 8),
                      (uint8_t)lastk};
  assert_int_equal(ikl, 4);
  assert_memory_equal(ik, want4, 4);
  assert_int_equal(ivl, lastk % 3 ? 1 : 0);
  /* a sample of the keys, each followed by the next one */
  for (uint32_t i = 7; i + 1 < JDB_BATCH_MAX; i += 997) {
    uint8_t k4[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    assert_ok(jdb_iter_seek(it, k4, 4));
    assert_ok(jdb_iter_key(it, &ik, &ikl));
    assert_int_equal(ikl, 4);
    assert_memory_equal(ik, k4, 4);
    assert_ok(jdb_iter_next(it));
    assert_ok(jdb_iter_key(it, &ik, &ikl));
    k4[3]++;
    if (k4[3] == 0 && ++k4[2] == 0)
      k4[1]++;
    assert_memory_equal(ik, k4, 4);
  }
  jdb_iter_close(it);
  jdb_table_close(t3);
  jdb_batch_free(b);

  jdb_pipe_free(pp);
  jdb_table_close(t);
  jdb_table_close(t2);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* The model: sorted key universes, per-key state, checks that record failures (thread-safe) */

struct t_fail {
  int n;
  char msg[512];
};

static void t_failf(struct t_fail *f, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static void t_failf(struct t_fail *f, const char *fmt, ...)
{
  if (f->n++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
  }
}

#define T_FAIL_ASSERT(f)                                                    \
  do {                                                                      \
    if ((f)->n)                                                             \
      fail_msg("%d failed check(s); the first: %s", (f)->n, (f)->msg);     \
  } while (0)

struct t_keys {
  size_t n;
  uint8_t **k;
  uint16_t *len;
};

static int t_key_cmp(const void *a, const void *b)
{
  const uint8_t *x = *(uint8_t *const *)a, *y = *(uint8_t *const *)b;
  uint16_t xl, yl;
  memcpy(&xl, x, 2);
  memcpy(&yl, y, 2);
  return t_bytes_cmp(x + 2, xl, y + 2, yl);
}

/* n distinct keys, all starting with prefix[0..plen), sorted bytewise: short ones over a small
   alphabet (0x00, 0x01, 'a', 'b', 0xff), random ones up to 40 bytes, a few long ones up to
   JDB_KEY_MAX. */
static void t_keys_gen(struct t_keys *ks, t_rng *r, size_t n, const void *prefix, size_t plen)
{
  static const uint8_t alpha[5] = {0x00, 0x01, 'a', 'b', 0xff};
  uint8_t **raw = malloc(n * sizeof *raw);
  assert_non_null(raw);
  for (size_t i = 0; i < n; i++) {
    size_t len;
    uint64_t c = t_below(r, 100);
    if (c < 40)
      len = 1 + t_below(r, 5);
    else if (c < 98)
      len = 1 + t_below(r, 40);
    else
      len = 41 + t_below(r, JDB_KEY_MAX - 40);
    if (len + plen > JDB_KEY_MAX)
      len = JDB_KEY_MAX - plen;
    uint8_t *k = malloc(2 + plen + len);
    assert_non_null(k);
    uint16_t tl = (uint16_t)(plen + len);
    memcpy(k, &tl, 2);
    if (plen)
      memcpy(k + 2, prefix, plen);
    for (size_t j = 0; j < len; j++)
      k[2 + plen + j] = c < 40 ? alpha[t_below(r, 5)] : (uint8_t)t_below(r, 256);
    raw[i] = k;
  }
  qsort(raw, n, sizeof *raw, t_key_cmp);
  ks->k = malloc(n * sizeof *ks->k);
  ks->len = malloc(n * sizeof *ks->len);
  assert_non_null(ks->k);
  assert_non_null(ks->len);
  ks->n = 0;
  for (size_t i = 0; i < n; i++) {
    uint16_t l;
    memcpy(&l, raw[i], 2);
    if (ks->n && t_bytes_cmp(raw[i] + 2, l, ks->k[ks->n - 1], ks->len[ks->n - 1]) == 0) {
      free(raw[i]);
      continue;
    }
    memcpy(&ks->len[ks->n], raw[i], 2);
    memmove(raw[i], raw[i] + 2, ks->len[ks->n]);
    ks->k[ks->n++] = raw[i];
  }
  free(raw);
}

static void t_keys_free(struct t_keys *ks)
{
  for (size_t i = 0; i < ks->n; i++)
    free(ks->k[i]);
  free(ks->k);
  free(ks->len);
  memset(ks, 0, sizeof *ks);
}

/* The first index whose key is >= (upper: >) key. */
static size_t t_keys_bound(const struct t_keys *ks, const void *key, size_t klen, int upper)
{
  size_t lo = 0, hi = ks->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = t_bytes_cmp(ks->k[mid], ks->len[mid], key, klen);
    if (c < 0 || (upper && c == 0))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

struct t_model {
  const struct t_keys *ks;
  uint8_t *present;
  uint32_t *tag;
  uint32_t *vlen;
};

static void t_model_init(struct t_model *m, const struct t_keys *ks)
{
  m->ks = ks;
  m->present = calloc(ks->n ? ks->n : 1, 1);
  m->tag = calloc(ks->n ? ks->n : 1, sizeof *m->tag);
  m->vlen = calloc(ks->n ? ks->n : 1, sizeof *m->vlen);
  assert_non_null(m->present);
  assert_non_null(m->tag);
  assert_non_null(m->vlen);
}

static void t_model_copy(struct t_model *to, const struct t_model *from)
{
  t_model_init(to, from->ks);
  size_t n = from->ks->n;
  memcpy(to->present, from->present, n);
  memcpy(to->tag, from->tag, n * sizeof *to->tag);
  memcpy(to->vlen, from->vlen, n * sizeof *to->vlen);
}

static void t_model_free(struct t_model *m)
{
  free(m->present);
  free(m->tag);
  free(m->vlen);
  memset(m, 0, sizeof *m);
}

/* The present entry at or after (dir > 0) / at or before (dir < 0) index i; -1 when none. */
static long t_model_scan(const struct t_model *m, long i, int dir)
{
  for (; i >= 0 && (size_t)i < m->ks->n; i += dir) {
    if (m->present[i])
      return i;
  }
  return -1;
}

/* A probe key for seeks: a universe key, a prefix of one, one with a byte added or its last
   byte changed, or random bytes. */
static size_t t_probe(const struct t_model *m, t_rng *r, uint8_t *buf)
{
  size_t n = m->ks->n;
  if (n == 0 || t_below(r, 8) == 0) {
    size_t len = 1 + t_below(r, 6);
    for (size_t j = 0; j < len; j++)
      buf[j] = (uint8_t)t_below(r, 256);
    return len;
  }
  size_t i = t_below(r, n), len = m->ks->len[i];
  memcpy(buf, m->ks->k[i], len);
  switch (t_below(r, 5)) {
  case 0:
    if (len > 1)
      len = 1 + t_below(r, len - 1);
    break;
  case 1:
    if (len < JDB_KEY_MAX)
      buf[len++] = (uint8_t)(t_below(r, 2) ? 0 : t_below(r, 256));
    break;
  case 2:
    buf[len - 1] = (uint8_t)(buf[len - 1] + (t_below(r, 2) ? 1 : 255));
    break;
  default:
    break;
  }
  return len;
}

/* Get of key i must match the model. */
static void t_check_get(struct t_fail *f, jdb_table_t *t, const struct t_model *m, size_t i,
                        const char *what)
{
  void *v = (void *)1;
  size_t vl = 7;
  int rc = jdb_get(t, m->ks->k[i], m->ks->len[i], &v, &vl);
  if (!m->present[i]) {
    if (rc != JDB_NOTFOUND || v || vl)
      t_failf(f, "%s: get of absent key %zu (len %u): %s", what, i, m->ks->len[i],
              jdb_strerror(rc));
  } else if (rc != JDB_OK) {
    t_failf(f, "%s: get of key %zu (len %u): %s", what, i, m->ks->len[i], jdb_strerror(rc));
  } else if (!v || !t_val_is(v, vl, m->tag[i], m->vlen[i])) {
    t_failf(f, "%s: get of key %zu: wrong value (len %zu, want %u)", what, i, vl, m->vlen[i]);
  }
  if (rc == JDB_OK)
    jdb_free(v);
}

static void t_check_get_at(struct t_fail *f, const jdb_snap_t *s, const struct t_model *m,
                           size_t i, const char *what)
{
  void *v = (void *)1;
  size_t vl = 7;
  int rc = jdb_get_at(s, m->ks->k[i], m->ks->len[i], &v, &vl);
  if (!m->present[i]) {
    if (rc != JDB_NOTFOUND || v || vl)
      t_failf(f, "%s: get_at of absent key %zu: %s", what, i, jdb_strerror(rc));
  } else if (rc != JDB_OK) {
    t_failf(f, "%s: get_at of key %zu: %s", what, i, jdb_strerror(rc));
  } else if (!v || !t_val_is(v, vl, m->tag[i], m->vlen[i])) {
    t_failf(f, "%s: get_at of key %zu: wrong value (len %zu, want %u)", what, i, vl,
            m->vlen[i]);
  }
  if (rc == JDB_OK)
    jdb_free(v);
}

/* After a positioning call that returned rc: the iterator must be at model index want (-1:
   JDB_NOTFOUND and unpositioned). Returns 0 when it was not. */
static int t_iter_at(struct t_fail *f, jdb_iter_t *it, const struct t_model *m, int rc,
                     long want, const char *what)
{
  const void *k = NULL, *v = NULL;
  size_t kl = 0, vl = 0;
  if (want < 0) {
    if (rc != JDB_NOTFOUND) {
      int krc = jdb_iter_key(it, &k, &kl);
      t_failf(f, "%s: %s, want JDB_NOTFOUND (at a key of len %zu: %d)", what,
              jdb_strerror(rc), krc == JDB_OK ? kl : 0, krc);
      return 0;
    }
    if (jdb_iter_key(it, &k, &kl) != JDB_EINVAL || jdb_iter_value(it, &v, &vl) != JDB_EINVAL) {
      t_failf(f, "%s: key/value of an unpositioned iterator are not JDB_EINVAL", what);
      return 0;
    }
    return 1;
  }
  if (rc != JDB_OK) {
    t_failf(f, "%s: %s, want key %ld", what, jdb_strerror(rc), want);
    return 0;
  }
  int krc = jdb_iter_key(it, &k, &kl), vrc = jdb_iter_value(it, &v, &vl);
  if (krc != JDB_OK || vrc != JDB_OK) {
    t_failf(f, "%s: key %s, value %s", what, jdb_strerror(krc), jdb_strerror(vrc));
    return 0;
  }
  if (t_bytes_cmp(k, kl, m->ks->k[want], m->ks->len[want]) != 0) {
    size_t got = t_keys_bound(m->ks, k, kl, 0);
    t_failf(f, "%s: at key len %zu (model index ~%zu, present %d), want key %ld (len %u)", what,
            kl, got, got < m->ks->n ? m->present[got] : -1, want, m->ks->len[want]);
    return 0;
  }
  if (!t_val_is(v, vl, m->tag[want], m->vlen[want])) {
    t_failf(f, "%s: key %ld: wrong value (len %zu, want %u)", what, want, vl, m->vlen[want]);
    return 0;
  }
  return 1;
}

/* Whole scans both ways must be exactly the model's present keys. */
static void t_iter_scan(struct t_fail *f, jdb_iter_t *it, const struct t_model *m,
                        const char *what)
{
  long want = t_model_scan(m, 0, 1);
  int rc = jdb_iter_first(it);
  while (t_iter_at(f, it, m, rc, want, what) && want >= 0) {
    rc = jdb_iter_next(it);
    want = t_model_scan(m, want + 1, 1);
  }
  want = t_model_scan(m, (long)m->ks->n - 1, -1);
  rc = jdb_iter_last(it);
  while (t_iter_at(f, it, m, rc, want, what) && want >= 0) {
    rc = jdb_iter_prev(it);
    want = t_model_scan(m, want - 1, -1);
  }
}

/* `steps` random moves: first, last, seek, seek_prev, runs of next/prev with turns, moves of
   an unpositioned iterator (JDB_EINVAL). The whole table must be the model. */
static void t_iter_walk(struct t_fail *f, jdb_iter_t *it, const struct t_model *m, t_rng *r,
                        size_t steps, const char *what)
{
  static _Thread_local uint8_t probe[JDB_KEY_MAX + 8];
  long cur = -1;
  for (size_t s = 0; s < steps && f->n == 0; s++) {
    int rc;
    long want;
    uint64_t c = t_below(r, 100);
    if (c < 8) {
      rc = jdb_iter_first(it);
      want = t_model_scan(m, 0, 1);
    } else if (c < 16) {
      rc = jdb_iter_last(it);
      want = t_model_scan(m, (long)m->ks->n - 1, -1);
    } else if (c < 36) {
      size_t pl = t_probe(m, r, probe);
      rc = jdb_iter_seek(it, probe, pl);
      want = t_model_scan(m, (long)t_keys_bound(m->ks, probe, pl, 0), 1);
    } else if (c < 56) {
      size_t pl = t_probe(m, r, probe);
      rc = jdb_iter_seek_prev(it, probe, pl);
      want = t_model_scan(m, (long)t_keys_bound(m->ks, probe, pl, 1) - 1, -1);
    } else {
      /* a run of moves in one direction, sometimes turning */
      int dir = t_below(r, 2) ? 1 : -1;
      size_t run = 1 + t_below(r, 12);
      for (size_t j = 0; j < run && f->n == 0; j++) {
        if (t_below(r, 5) == 0)
          dir = -dir;
        rc = dir > 0 ? jdb_iter_next(it) : jdb_iter_prev(it);
        if (cur < 0) {
          if (rc != JDB_EINVAL)
            t_failf(f, "%s: %s of an unpositioned iterator: %s, want JDB_EINVAL", what,
                    dir > 0 ? "next" : "prev", jdb_strerror(rc));
          break;
        }
        want = t_model_scan(m, cur + dir, dir);
        t_iter_at(f, it, m, rc, want, dir > 0 ? "next" : "prev");
        cur = want;
      }
      continue;
    }
    t_iter_at(f, it, m, rc, want, what);
    cur = want;
  }
}

/* Apply random writes (put, put_sync, del, batches with repeated keys) to t and m. */
static void t_random_writes(struct t_fail *f, jdb_table_t *t, struct t_model *m, t_rng *r,
                            size_t nops, jdb_batch_t *b)
{
  static _Thread_local uint8_t val[T_VMAX];
  size_t n = m->ks->n;
  for (size_t op = 0; op < nops && f->n == 0; op++) {
    size_t i = t_below(r, n);
    uint64_t c = t_below(r, 100);
    if (c < 51) {
      /* one in 200 durable: each is an fdatasync */
      uint32_t tag = (uint32_t)t_rand(r), len = t_vlen_pick(r);
      t_val_fill(val, tag, len);
      int sync = c == 50 && t_below(r, 2) == 0;
      int rc = !sync ? jdb_put(t, m->ks->k[i], m->ks->len[i], val, len)
                     : jdb_put_sync(t, m->ks->k[i], m->ks->len[i], val, len);
      if (rc != JDB_OK) {
        t_failf(f, "put: %s", jdb_strerror(rc));
        continue;
      }
      m->present[i] = 1;
      m->tag[i] = tag;
      m->vlen[i] = len;
    } else if (c < 75) {
      int rc = jdb_del(t, m->ks->k[i], m->ks->len[i]);
      if (rc != JDB_OK) {
        t_failf(f, "del: %s", jdb_strerror(rc));
        continue;
      }
      m->present[i] = 0;
    } else if (c < 85) {
      /* a batch of 1..30 operations, keys near each other, repeats allowed: the later wins */
      jdb_batch_clear(b);
      size_t cnt = 1 + t_below(r, 30);
      size_t *idx = malloc(cnt * sizeof *idx);
      uint32_t *tg = malloc(cnt * sizeof *tg), *ln = malloc(cnt * sizeof *ln);
      if (!idx || !tg || !ln) {
        t_failf(f, "malloc");
        free(idx);
        free(tg);
        free(ln);
        return;
      }
      size_t base = t_below(r, n);
      for (size_t j = 0; j < cnt; j++) {
        idx[j] = (base + t_below(r, 40)) % n;
        int rc;
        if (t_below(r, 4)) {
          tg[j] = (uint32_t)t_rand(r);
          ln[j] = t_vlen_pick(r);
          t_val_fill(val, tg[j], ln[j]);
          rc = jdb_batch_put(b, m->ks->k[idx[j]], m->ks->len[idx[j]], val, ln[j]);
        } else {
          ln[j] = UINT32_MAX;
          rc = jdb_batch_del(b, m->ks->k[idx[j]], m->ks->len[idx[j]]);
        }
        if (rc != JDB_OK)
          t_failf(f, "batch op: %s", jdb_strerror(rc));
      }
      int rc = jdb_write(t, b, t_below(r, 20) ? 0 : JDB_SYNC);
      if (rc != JDB_OK) {
        t_failf(f, "jdb_write of %zu ops: %s", cnt, jdb_strerror(rc));
      } else {
        for (size_t j = 0; j < cnt; j++) {
          m->present[idx[j]] = ln[j] != UINT32_MAX;
          if (ln[j] != UINT32_MAX) {
            m->tag[idx[j]] = tg[j];
            m->vlen[idx[j]] = ln[j];
          }
        }
      }
      free(idx);
      free(tg);
      free(ln);
    } else {
      t_check_get(f, t, m, i, "random get");
    }
  }
}

/* Every key of the model by get, and whole scans both ways. */
static void t_check_all(struct t_fail *f, jdb_table_t *t, const struct t_model *m,
                        const char *what)
{
  for (size_t i = 0; i < m->ks->n && f->n == 0; i++)
    t_check_get(f, t, m, i, what);
  jdb_iter_t *it = NULL;
  int rc = jdb_iter_open(t, NULL, &it);
  if (rc != JDB_OK) {
    t_failf(f, "%s: jdb_iter_open: %s", what, jdb_strerror(rc));
    return;
  }
  t_iter_scan(f, it, m, what);
  jdb_iter_close(it);
}

/* ------------------------------------------------------------------------------------------- */
/* Key-value against the model, across checkpoints and reopens */

static void test_kv_model(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "kv_model");
  t_rng r;
  t_rng_init(&r, 0x6b766d);
  enum { NT = 3 };
  static const char *names[NT] = {"alpha", "beta", "gamma"};
  struct t_keys ks[NT];
  struct t_model m[NT];
  for (int i = 0; i < NT; i++) {
    t_keys_gen(&ks[i], &r, t_scaled(1200), NULL, 0);
    t_model_init(&m[i], &ks[i]);
  }
  struct t_fail f = {0};
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t[NT];
  for (int i = 0; i < NT; i++)
    t[i] = t_table(db, names[i], JDB_CREATE);
  size_t rounds = 6;
  for (size_t round = 0; round < rounds; round++) {
    for (int i = 0; i < NT; i++)
      t_random_writes(&f, t[i], &m[i], &r, t_scaled(1500), b);
    T_FAIL_ASSERT(&f);
    for (int i = 0; i < NT; i++)
      t_check_all(&f, t[i], &m[i], "kv_model");
    T_FAIL_ASSERT(&f);
    switch (round % 3) {
    case 0:
      assert_ok(jdb_checkpoint(db));
      break;
    case 1:
      assert_ok(jdb_flush(db));
      break;
    default: {
      /* reopen: handles closed after the instance (allowed); other tunables each time (a
         smaller or larger inline value limit, a cache of 64 pages per shard) */
      assert_ok(jdb_close(db));
      for (int i = 0; i < NT; i++)
        jdb_table_close(t[i]);
      jdb_options_t o = t_opts(2);
      o.inline_value_max = round % 2 ? 64 : 512;
      o.cache_bytes = 1;
      o.memtable_bytes = 1u << 20;
      db = NULL;
      assert_ok(jdb_open(p, &o, &db));
      for (int i = 0; i < NT; i++) {
        t[i] = t_table(db, names[i], 0);
        t_check_all(&f, t[i], &m[i], "kv_model after reopen");
      }
      T_FAIL_ASSERT(&f);
      break;
    }
    }
  }
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_ok(jdb_check(db, &cr));
  assert_int_equal(cr.errors, 0);
  for (int i = 0; i < NT; i++) {
    jdb_table_close(t[i]);
    t_model_free(&m[i]);
    t_keys_free(&ks[i]);
  }
  jdb_batch_free(b);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Snapshots */

static void test_snapshots(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "snapshots");
  t_rng r;
  t_rng_init(&r, 0x5a4a);
  struct t_keys ks;
  t_keys_gen(&ks, &r, t_scaled(800), NULL, 0);
  struct t_model m;
  t_model_init(&m, &ks);
  struct t_fail f = {0};
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "snap", JDB_CREATE);
  jdb_table_t *t_same = t_table(db, "snap", 0);   /* another handle on the same table */
  jdb_table_t *other = t_table(db, "other", JDB_CREATE);

  /* argument checks */
  jdb_snap_t *s = (jdb_snap_t *)1;
  assert_rc(jdb_snapshot(NULL, &s), JDB_EINVAL);
  assert_null(s);
  assert_rc(jdb_snapshot(t, NULL), JDB_EINVAL);
  assert_int_equal(jdb_snapshot_seq(NULL), 0);
  jdb_snapshot_release(NULL);

  /* an empty table's snapshot */
  assert_ok(jdb_snapshot(t, &s));
  assert_non_null(s);
  void *v = (void *)1;
  size_t vl = 1;
  assert_rc(jdb_get_at(s, "k", 1, &v, &vl), JDB_NOTFOUND);
  assert_null(v);
  assert_int_equal(vl, 0);
  assert_rc(jdb_get_at(NULL, "k", 1, &v, &vl), JDB_EINVAL);
  assert_rc(jdb_get_at(s, NULL, 1, &v, &vl), JDB_EINVAL);
  assert_rc(jdb_get_at(s, "k", 0, &v, &vl), JDB_EINVAL);
  static uint8_t lk[JDB_KEY_MAX + 1];
  assert_rc(jdb_get_at(s, lk, JDB_KEY_MAX + 1, &v, &vl), JDB_EINVAL);
  assert_rc(jdb_get_at(s, "k", 1, NULL, &vl), JDB_EINVAL);
  assert_rc(jdb_get_at(s, "k", 1, &v, NULL), JDB_EINVAL);
  jdb_iter_t *it = (jdb_iter_t *)1;
  assert_rc(jdb_iter_open(other, s, &it), JDB_EINVAL);   /* a snapshot of another table */
  assert_null(it);
  jdb_snapshot_release(s);

  /* several generations of snapshots, each checked after every later change */
  enum { GEN = 5 };
  jdb_snap_t *gs[GEN];
  jdb_iter_t *gi[GEN];
  struct t_model gm[GEN];
  uint64_t last_seq = 0;
  for (int g = 0; g < GEN; g++) {
    t_random_writes(&f, t, &m, &r, t_scaled(600), b);
    T_FAIL_ASSERT(&f);
    if (g == 2)
      assert_ok(jdb_checkpoint(db));
    assert_ok(jdb_snapshot(g % 2 ? t_same : t, &gs[g]));
    uint64_t seq = jdb_snapshot_seq(gs[g]);
    assert_true(seq > last_seq);
    last_seq = seq;
    /* iterators: one at the snapshot (through the other handle: the same table), one at
       "now" opened here, which holds its own snapshot */
    assert_ok(jdb_iter_open(g % 2 ? t : t_same, g % 2 ? gs[g] : NULL, &gi[g]));
    t_model_copy(&gm[g], &m);
    /* unrelated writes to another table on the instance move nothing here */
    assert_ok(jdb_put(other, "x", 1, "y", 1));
    for (int h = 0; h <= g; h++) {
      for (size_t i = 0; i < ks.n && f.n == 0; i++)
        t_check_get_at(&f, gs[h], &gm[h], i, "get_at");
      t_iter_walk(&f, gi[h], &gm[h], &r, 200, "iter at snapshot");
      t_iter_scan(&f, gi[h], &gm[h], "scan at snapshot");
      T_FAIL_ASSERT(&f);
    }
  }
  /* a write after the newest snapshot: invisible to all of them, also a new key */
  size_t i0 = t_below(&r, ks.n);
  assert_ok(jdb_del(t, ks.k[i0], ks.len[i0]));
  assert_ok(jdb_put(t, "brand-new", 9, "v", 1));
  for (int g = 0; g < GEN; g++) {
    t_check_get_at(&f, gs[g], &gm[g], i0, "get_at after del");
    v = (void *)1;
    assert_rc(jdb_get_at(gs[g], "brand-new", 9, &v, &vl), JDB_NOTFOUND);
    t_iter_scan(&f, gi[g], &gm[g], "scan after del");
  }
  T_FAIL_ASSERT(&f);
  /* the newest snapshot's seq is below the shard's seq now */
  jdb_snap_t *now = NULL;
  assert_ok(jdb_snapshot(t, &now));
  assert_true(jdb_snapshot_seq(now) > last_seq);
  void *nv = NULL;
  assert_ok(jdb_get_at(now, "brand-new", 9, &nv, &vl));
  assert_int_equal(vl, 1);
  jdb_free(nv);
  jdb_snapshot_release(now);
  for (int g = 0; g < GEN; g++) {
    jdb_iter_close(gi[g]);
    jdb_snapshot_release(gs[g]);
    t_model_free(&gm[g]);
  }
  assert_int_equal(t_stats(db, -1).snapshots, 0);

  /* 0-byte and out-of-line values through a snapshot, then overwritten and checkpointed */
  assert_ok(jdb_put(t, "z0", 2, NULL, 0));
  uint8_t big[1000];
  t_val_fill(big, 9, sizeof big);
  assert_ok(jdb_put(t, "z1", 2, big, sizeof big));
  assert_ok(jdb_snapshot(t, &s));
  assert_ok(jdb_put(t, "z0", 2, "now", 3));
  assert_ok(jdb_put(t, "z1", 2, "now", 3));
  assert_ok(jdb_checkpoint(db));
  t_put_str(t, "z1", "later");
  assert_ok(jdb_checkpoint(db));
  v = NULL;
  assert_ok(jdb_get_at(s, "z0", 2, &v, &vl));
  assert_non_null(v);
  assert_int_equal(vl, 0);
  jdb_free(v);
  assert_ok(jdb_get_at(s, "z1", 2, &v, &vl));
  assert_true(t_val_is(v, vl, 9, sizeof big));
  jdb_free(v);
  jdb_snapshot_release(s);

  jdb_table_close(t);
  jdb_table_close(t_same);
  jdb_table_close(other);
  jdb_batch_free(b);
  t_model_free(&m);
  t_keys_free(&ks);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Iterators */

static void test_iterators(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "iterators");
  t_rng r;
  t_rng_init(&r, 0x17e7);
  struct t_keys ks;
  t_keys_gen(&ks, &r, t_scaled(2000), NULL, 0);
  struct t_model m;
  t_model_init(&m, &ks);
  struct t_fail f = {0};
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "iter", JDB_CREATE);

  /* argument checks, an empty table */
  jdb_iter_t *it = (jdb_iter_t *)1;
  assert_rc(jdb_iter_open(NULL, NULL, &it), JDB_EINVAL);
  assert_null(it);
  assert_rc(jdb_iter_open(t, NULL, NULL), JDB_EINVAL);
  assert_rc(jdb_iter_first(NULL), JDB_EINVAL);
  assert_rc(jdb_iter_last(NULL), JDB_EINVAL);
  assert_rc(jdb_iter_next(NULL), JDB_EINVAL);
  assert_rc(jdb_iter_prev(NULL), JDB_EINVAL);
  assert_rc(jdb_iter_seek(NULL, "a", 1), JDB_EINVAL);
  assert_rc(jdb_iter_seek_prev(NULL, "a", 1), JDB_EINVAL);
  const void *k = NULL, *v = NULL;
  size_t kl = 0, vl = 0;
  assert_rc(jdb_iter_key(NULL, &k, &kl), JDB_EINVAL);
  assert_rc(jdb_iter_value(NULL, &v, &vl), JDB_EINVAL);
  jdb_iter_close(NULL);
  assert_ok(jdb_iter_open(t, NULL, &it));
  assert_rc(jdb_iter_first(it), JDB_NOTFOUND);
  assert_rc(jdb_iter_last(it), JDB_NOTFOUND);
  assert_rc(jdb_iter_seek(it, "a", 1), JDB_NOTFOUND);
  assert_rc(jdb_iter_seek_prev(it, "a", 1), JDB_NOTFOUND);
  assert_rc(jdb_iter_next(it), JDB_EINVAL);
  assert_rc(jdb_iter_prev(it), JDB_EINVAL);
  assert_rc(jdb_iter_key(it, &k, &kl), JDB_EINVAL);
  assert_rc(jdb_iter_value(it, &v, &vl), JDB_EINVAL);
  static uint8_t lk[JDB_KEY_MAX + 1];
  assert_rc(jdb_iter_seek(it, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_iter_seek(it, "a", 0), JDB_EINVAL);
  assert_rc(jdb_iter_seek(it, lk, JDB_KEY_MAX + 1), JDB_EINVAL);
  assert_rc(jdb_iter_seek_prev(it, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_iter_seek_prev(it, "a", 0), JDB_EINVAL);
  assert_rc(jdb_iter_seek_prev(it, lk, JDB_KEY_MAX + 1), JDB_EINVAL);
  jdb_iter_close(it);

  /* the table in stages: all in the memtable; all in the tree; tree + memtable overwrites and
     deletes on top; again after a reopen */
  for (int stage = 0; stage < 4; stage++) {
    if (stage == 0) {
      /* every third key with a value above the inline limit, some empty */
      for (size_t i = 0; i < ks.n; i++) {
        if (t_below(&r, 4) == 0)
          continue;
        uint32_t tag = (uint32_t)t_rand(&r);
        uint32_t len = i % 3 == 0 ? 257 + (uint32_t)t_below(&r, 2000)
                       : i % 7 == 0 ? 0 : (uint32_t)t_below(&r, 257);
        uint8_t val[T_VMAX];
        t_val_fill(val, tag, len);
        assert_ok(jdb_put(t, ks.k[i], ks.len[i], val, len));
        m.present[i] = 1;
        m.tag[i] = tag;
        m.vlen[i] = len;
      }
    } else if (stage == 1) {
      assert_ok(jdb_checkpoint(db));
    } else if (stage == 2) {
      t_random_writes(&f, t, &m, &r, t_scaled(1500), b);
    } else {
      jdb_table_close(t);
      assert_ok(jdb_close(db));
      db = t_open(p, 2);
      t = t_table(db, "iter", 0);
    }
    assert_ok(jdb_iter_open(t, NULL, &it));
    t_iter_scan(&f, it, &m, "scan");
    t_iter_walk(&f, it, &m, &r, t_scaled(3000), "walk");
    T_FAIL_ASSERT(&f);
    /* key and value pointers stay valid together until the next move */
    if (jdb_iter_last(it) == JDB_OK) {
      assert_ok(jdb_iter_key(it, &k, &kl));
      assert_ok(jdb_iter_value(it, &v, &vl));
      long w = t_model_scan(&m, (long)ks.n - 1, -1);
      assert_true(w >= 0);
      assert_int_equal(kl, ks.len[w]);
      assert_memory_equal(k, ks.k[w], kl);
      assert_true(t_val_is(v, vl, m.tag[w], m.vlen[w]));
      assert_rc(jdb_iter_key(it, NULL, &kl), JDB_EINVAL);
      assert_rc(jdb_iter_key(it, &k, NULL), JDB_EINVAL);
      assert_rc(jdb_iter_value(it, NULL, &vl), JDB_EINVAL);
      assert_rc(jdb_iter_value(it, &v, NULL), JDB_EINVAL);
      /* past the end: unpositioned, then moves are JDB_EINVAL until repositioned */
      assert_rc(jdb_iter_next(it), JDB_NOTFOUND);
      assert_rc(jdb_iter_prev(it), JDB_EINVAL);
      assert_rc(jdb_iter_next(it), JDB_EINVAL);
      assert_ok(jdb_iter_first(it));
      assert_rc(jdb_iter_prev(it), JDB_NOTFOUND);
      assert_rc(jdb_iter_next(it), JDB_EINVAL);
    }
    /* the iterator's own snapshot: writes after it opened are not seen */
    struct t_model before;
    t_model_copy(&before, &m);
    t_random_writes(&f, t, &m, &r, 300, b);
    t_iter_scan(&f, it, &before, "scan of an iterator opened before writes");
    t_iter_walk(&f, it, &before, &r, 300, "walk of an iterator opened before writes");
    t_model_free(&before);
    jdb_iter_close(it);
    T_FAIL_ASSERT(&f);
  }

  /* history and versions are not supported yet */
  it = (jdb_iter_t *)1;
  assert_rc(jdb_history_open(t, ks.k[0], ks.len[0], &it), JDB_ENOTSUP);
  assert_null(it);
  assert_ok(jdb_iter_open(t, NULL, &it));
  assert_ok(jdb_iter_first(it));
  uint64_t seq = 0, ts = 0;
  int tomb = 0;
  assert_rc(jdb_iter_version(it, &seq, &ts, &tomb), JDB_ENOTSUP);
  jdb_iter_close(it);

  jdb_table_close(t);
  jdb_batch_free(b);
  t_model_free(&m);
  t_keys_free(&ks);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Pipelines */

/* One queued operation and what the model says it must return. */
struct t_pop {
  int kind;             /* 0 put, 1 get, 2 del */
  int table;
  size_t key;
  uint32_t tag, vlen;   /* put: what was written; get: what must come back */
  int want;
};

/* Queue random operations on tables t[0..nt) into p; return their count. Repeated keys are
   common (a small window of each universe). */
static size_t t_pipe_fill(struct t_fail *f, jdb_pipe_t *p, jdb_table_t **t, struct t_model *m,
                          int nt, t_rng *r, struct t_pop *ops, size_t n)
{
  static _Thread_local uint8_t val[T_VMAX];
  for (size_t j = 0; j < n; j++) {
    struct t_pop *o = &ops[j];
    o->table = (int)t_below(r, (uint64_t)nt);
    const struct t_keys *ks = m[o->table].ks;
    o->key = t_below(r, ks->n < 64 ? ks->n : 64) + (ks->n > 64 ? t_below(r, 4) * (ks->n / 4) : 0);
    o->key %= ks->n;
    o->kind = (int)t_below(r, 3);
    int rc;
    if (o->kind == 0) {
      o->tag = (uint32_t)t_rand(r);
      o->vlen = t_vlen_pick(r);
      t_val_fill(val, o->tag, o->vlen);
      rc = jdb_pipe_put(p, t[o->table], ks->k[o->key], ks->len[o->key], val, o->vlen);
    } else if (o->kind == 1) {
      rc = jdb_pipe_get(p, t[o->table], ks->k[o->key], ks->len[o->key]);
    } else {
      rc = jdb_pipe_del(p, t[o->table], ks->k[o->key], ks->len[o->key]);
    }
    if (rc != JDB_OK) {
      t_failf(f, "queueing pipe op %zu: %s", j, jdb_strerror(rc));
      return j;
    }
  }
  return n;
}

/* Apply ops to the models in queue order, setting each one's expected result. */
static void t_pipe_model(struct t_model *m, struct t_pop *ops, size_t n)
{
  for (size_t j = 0; j < n; j++) {
    struct t_pop *o = &ops[j];
    struct t_model *mm = &m[o->table];
    if (o->kind == 0) {
      mm->present[o->key] = 1;
      mm->tag[o->key] = o->tag;
      mm->vlen[o->key] = o->vlen;
      o->want = JDB_OK;
    } else if (o->kind == 1) {
      o->want = mm->present[o->key] ? JDB_OK : JDB_NOTFOUND;
      o->tag = mm->tag[o->key];
      o->vlen = mm->vlen[o->key];
    } else {
      mm->present[o->key] = 0;
      o->want = JDB_OK;
    }
  }
}

static void t_pipe_check(struct t_fail *f, jdb_pipe_t *p, const struct t_pop *ops, size_t n)
{
  for (size_t j = 0; j < n; j++) {
    const struct t_pop *o = &ops[j];
    const void *v = NULL;
    size_t vl = 0;
    int rc = jdb_pipe_result(p, j, &v, &vl);
    if (rc != o->want) {
      t_failf(f, "pipe op %zu (kind %d, table %d, key %zu): %s, want %s", j, o->kind, o->table,
              o->key, jdb_strerror(rc), jdb_strerror(o->want));
      return;
    }
    if (o->kind == 1 && rc == JDB_OK && !t_val_is(v, vl, o->tag, o->vlen)) {
      t_failf(f, "pipe get %zu: wrong value (len %zu, want %u)", j, vl, o->vlen);
      return;
    }
  }
}

static void test_pipelines(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "pipelines");
  t_rng r;
  t_rng_init(&r, 0x919e);
  struct t_fail f = {0};
  jdb_t *db = t_open(p, 2);

  /* tables until each shard has at least two */
  enum { NT = 4 };
  jdb_table_t *t[NT];
  int nt = 0, per[2] = {0, 0};
  for (int i = 0; nt < NT && i < 200; i++) {
    char name[16];
    snprintf(name, sizeof name, "pipe%d", i);
    jdb_table_t *h = t_table(db, name, JDB_CREATE);
    int sh = t_shard_of(db, h, 2);
    if (per[sh] < NT / 2) {
      per[sh]++;
      t[nt++] = h;
    } else {
      jdb_table_close(h);
    }
  }
  assert_int_equal(nt, NT);
  struct t_keys ks[NT];
  struct t_model m[NT];
  for (int i = 0; i < NT; i++) {
    t_keys_gen(&ks[i], &r, 300, NULL, 0);
    t_model_init(&m[i], &ks[i]);
  }

  /* argument checks */
  assert_null(jdb_pipe_new(NULL));
  assert_int_equal(jdb_pipe_count(NULL), 0);
  jdb_pipe_free(NULL);
  jdb_pipe_reset(NULL);
  jdb_pipe_t *pp = jdb_pipe_new(db);
  assert_non_null(pp);
  static uint8_t lk[JDB_KEY_MAX + 1];
  assert_rc(jdb_pipe_put(NULL, t[0], "k", 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_put(pp, NULL, "k", 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_put(pp, t[0], NULL, 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_put(pp, t[0], "k", 0, "v", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_put(pp, t[0], lk, JDB_KEY_MAX + 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_put(pp, t[0], "k", 1, NULL, 1), JDB_EINVAL);
  assert_rc(jdb_pipe_get(NULL, t[0], "k", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_get(pp, NULL, "k", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_get(pp, t[0], NULL, 1), JDB_EINVAL);
  assert_rc(jdb_pipe_get(pp, t[0], "k", 0), JDB_EINVAL);
  assert_rc(jdb_pipe_get(pp, t[0], lk, JDB_KEY_MAX + 1), JDB_EINVAL);
  assert_rc(jdb_pipe_del(NULL, t[0], "k", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_del(pp, NULL, "k", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_del(pp, t[0], NULL, 1), JDB_EINVAL);
  assert_rc(jdb_pipe_del(pp, t[0], "k", 0), JDB_EINVAL);
  assert_rc(jdb_pipe_del(pp, t[0], lk, JDB_KEY_MAX + 1), JDB_EINVAL);
  assert_int_equal(jdb_pipe_count(pp), 0);
  assert_rc(jdb_pipe_exec(NULL, 0), JDB_EINVAL);
  assert_rc(jdb_pipe_result(pp, 0, NULL, NULL), JDB_EINVAL);   /* before any exec */
  assert_ok(jdb_pipe_exec(pp, 0));                               /* empty */
  assert_rc(jdb_pipe_result(pp, 0, NULL, NULL), JDB_EINVAL);
  assert_rc(jdb_pipe_result(NULL, 0, NULL, NULL), JDB_EINVAL);

  /* a table of another instance */
  char p2[PATH_MAX];
  t_path(p2, sizeof p2, "pipelines2");
  jdb_t *db2 = t_open(p2, 1);
  jdb_table_t *foreign = t_table(db2, "pipe0", JDB_CREATE);
  assert_rc(jdb_pipe_put(pp, foreign, "k", 1, "v", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_get(pp, foreign, "k", 1), JDB_EINVAL);
  assert_rc(jdb_pipe_del(pp, foreign, "k", 1), JDB_EINVAL);
  assert_int_equal(jdb_pipe_count(pp), 0);
  jdb_table_close(foreign);
  assert_ok(jdb_close(db2));
  t_rm_rf(p2);

  /* queue order on one key: put, get, del, get, put, get */
  assert_ok(jdb_pipe_put(pp, t[0], "q", 1, "1", 1));
  assert_ok(jdb_pipe_get(pp, t[0], "q", 1));
  assert_ok(jdb_pipe_del(pp, t[0], "q", 1));
  assert_ok(jdb_pipe_get(pp, t[0], "q", 1));
  assert_ok(jdb_pipe_put(pp, t[0], "q", 1, NULL, 0));
  assert_ok(jdb_pipe_get(pp, t[0], "q", 1));
  assert_ok(jdb_pipe_get(pp, t[1], "q", 1));
  assert_int_equal(jdb_pipe_count(pp), 7);
  assert_rc(jdb_pipe_exec(pp, 2u), JDB_EINVAL);
  assert_rc(jdb_pipe_exec(pp, ~0u), JDB_EINVAL);
  assert_rc(jdb_pipe_result(pp, 0, NULL, NULL), JDB_EINVAL);   /* nothing ran */
  t_get_str(t[0], "q", NULL);
  assert_ok(jdb_pipe_exec(pp, JDB_SYNC));
  assert_int_equal(jdb_pipe_count(pp), 7);
  const void *v = NULL;
  size_t vl = 0;
  assert_ok(jdb_pipe_result(pp, 0, NULL, NULL));
  assert_ok(jdb_pipe_result(pp, 1, &v, &vl));
  assert_int_equal(vl, 1);
  assert_memory_equal(v, "1", 1);
  assert_ok(jdb_pipe_result(pp, 1, NULL, &vl));
  assert_ok(jdb_pipe_result(pp, 1, &v, NULL));
  assert_ok(jdb_pipe_result(pp, 2, NULL, NULL));
  assert_rc(jdb_pipe_result(pp, 3, &v, &vl), JDB_NOTFOUND);
  assert_ok(jdb_pipe_result(pp, 4, NULL, NULL));
  vl = 99;
  assert_ok(jdb_pipe_result(pp, 5, &v, &vl));
  assert_int_equal(vl, 0);
  assert_rc(jdb_pipe_result(pp, 6, &v, &vl), JDB_NOTFOUND);
  assert_rc(jdb_pipe_result(pp, 7, &v, &vl), JDB_EINVAL);
  assert_rc(jdb_pipe_result(pp, SIZE_MAX, &v, &vl), JDB_EINVAL);
  t_get_str(t[0], "q", "");
  /* exec again: the same operations run again */
  assert_ok(jdb_del(t[0], "q", 1));
  assert_ok(jdb_pipe_exec(pp, 0));
  assert_ok(jdb_pipe_result(pp, 1, &v, &vl));
  assert_int_equal(vl, 1);
  assert_rc(jdb_pipe_result(pp, 3, &v, &vl), JDB_NOTFOUND);
  t_get_str(t[0], "q", "");
  jdb_pipe_reset(pp);
  assert_int_equal(jdb_pipe_count(pp), 0);
  assert_rc(jdb_pipe_result(pp, 0, NULL, NULL), JDB_EINVAL);
  assert_ok(jdb_del(t[0], "q", 1));

  /* random pipelines against the model; some executed twice; checkpoints in between */
  size_t maxn = 400;
  struct t_pop *ops = malloc(maxn * sizeof *ops);
  assert_non_null(ops);
  size_t rounds = t_scaled(60);
  for (size_t round = 0; round < rounds; round++) {
    size_t n = round % 10 == 0 ? 1 : 1 + t_below(&r, maxn);
    jdb_pipe_reset(pp);
    assert_int_equal(t_pipe_fill(&f, pp, t, m, NT, &r, ops, n), n);
    T_FAIL_ASSERT(&f);
    assert_int_equal(jdb_pipe_count(pp), n);
    int twice = t_below(&r, 5) == 0;
    for (int e = 0; e <= twice; e++) {
      t_pipe_model(m, ops, n);
      assert_ok(jdb_pipe_exec(pp, t_below(&r, 8) ? 0 : JDB_SYNC));
      t_pipe_check(&f, pp, ops, n);
      T_FAIL_ASSERT(&f);
    }
    if (round % 20 == 19)
      assert_ok(jdb_checkpoint(db));
    if (round % 10 == 9) {
      for (int i = 0; i < NT; i++)
        t_check_all(&f, t[i], &m[i], "after pipelines");
      T_FAIL_ASSERT(&f);
    }
  }
  free(ops);

  /* one big pipeline: many operations per shard in one exec */
  jdb_pipe_reset(pp);
  static const char bigval[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  size_t nbig = t_scaled(20000);
  for (size_t j = 0; j < 2 * nbig; j++) {
    char key[32];
    size_t k = j % nbig;
    snprintf(key, sizeof key, "bigpipe-%07zu", k);
    if (j < nbig)
      assert_ok(jdb_pipe_put(pp, t[k % NT], key, strlen(key), bigval + k % 7, k % 50));
    else
      assert_ok(jdb_pipe_get(pp, t[k % NT], key, strlen(key)));
  }
  assert_int_equal(jdb_pipe_count(pp), 2 * nbig);
  assert_ok(jdb_pipe_exec(pp, 0));
  for (size_t j = 0; j < 2 * nbig; j++) {
    char key[32];
    size_t k = j % nbig;
    snprintf(key, sizeof key, "bigpipe-%07zu", k);
    int rc = jdb_pipe_result(pp, j, &v, &vl);
    if (rc != JDB_OK || (j >= nbig && (vl != k % 50 || (vl && memcmp(v, bigval + k % 7, vl) != 0))))
      fail_msg("big pipeline op %zu: %s, value length %zu", j, jdb_strerror(rc), vl);
  }
  for (size_t k = 0; k < nbig; k += 1 + t_below(&r, 100)) {
    char key[32];
    snprintf(key, sizeof key, "bigpipe-%07zu", k);
    void *gv = NULL;
    size_t gl = 0;
    assert_ok(jdb_get(t[k % NT], key, strlen(key), &gv, &gl));
    assert_int_equal(gl, k % 50);
    jdb_free(gv);
    assert_ok(jdb_del(t[k % NT], key, strlen(key)));
  }
  jdb_pipe_reset(pp);
  for (size_t k = 0; k < nbig; k++) {
    char key[32];
    snprintf(key, sizeof key, "bigpipe-%07zu", k);
    assert_ok(jdb_pipe_del(pp, t[k % NT], key, strlen(key)));
  }
  assert_ok(jdb_pipe_exec(pp, JDB_SYNC));
  for (size_t k = 0; k < nbig; k++)
    assert_ok(jdb_pipe_result(pp, k, NULL, NULL));
  jdb_pipe_free(pp);
  for (int i = 0; i < NT; i++) {
    t_check_all(&f, t[i], &m[i], "after pipelines");
    jdb_table_close(t[i]);
    t_model_free(&m[i]);
    t_keys_free(&ks[i]);
  }
  T_FAIL_ASSERT(&f);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Read-only instances */

static void test_read_only(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "read_only");
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "ro", JDB_CREATE);
  jdb_table_t *t2 = t_table(db, "ro2", JDB_CREATE);
  for (int k = 0; k < 200; k++) {
    char key[16], val[16];
    snprintf(key, sizeof key, "k%03d", k);
    snprintf(val, sizeof val, "v%d", k);
    t_put_str(k % 2 ? t : t2, key, val);
  }
  assert_ok(jdb_checkpoint(db));
  t_put_str(t, "in-log", "only");   /* recovered from the log by the read-only open */
  jdb_table_close(t);
  jdb_table_close(t2);
  assert_ok(jdb_close(db));

  jdb_options_t o = t_opts(2);
  o.read_only = 1;
  db = NULL;
  assert_ok(jdb_open(p, &o, &db));
  jdb_table_t *n = (jdb_table_t *)1;
  assert_rc(jdb_table_open(db, "new", 3, JDB_CREATE, &n), JDB_EREADONLY);
  assert_null(n);
  assert_rc(jdb_table_open(db, "new", 3, 0, &n), JDB_NOTFOUND);
  t = t_table(db, "ro", JDB_CREATE);   /* exists: JDB_CREATE changes nothing */
  t2 = t_table(db, "ro2", 0);
  t_get_str(t, "k001", "v1");
  t_get_str(t2, "k000", "v0");
  t_get_str(t, "in-log", "only");
  t_get_str(t, "k000", NULL);
  jdb_iter_t *it = NULL;
  assert_ok(jdb_iter_open(t, NULL, &it));
  int cnt = 0;
  for (int rc = jdb_iter_first(it); rc == JDB_OK; rc = jdb_iter_next(it))
    cnt++;
  assert_int_equal(cnt, 101);
  jdb_iter_close(it);
  jdb_snap_t *s = NULL;
  assert_ok(jdb_snapshot(t2, &s));
  void *v = NULL;
  size_t vl = 0;
  assert_ok(jdb_get_at(s, "k198", 4, &v, &vl));
  jdb_free(v);
  jdb_snapshot_release(s);
  size_t names = 0;
  assert_ok(jdb_table_list(db, NULL, 0, t_list_count_fn, &names));
  assert_int_equal(names, 2);
  jdb_stats_t st = t_stats(db, -1);
  assert_int_equal(st.shards, 2);
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_ok(jdb_check(db, &cr));
  assert_int_equal(cr.errors, 0);

  /* every change is refused */
  assert_rc(jdb_put(t, "k", 1, "v", 1), JDB_EREADONLY);
  assert_rc(jdb_put_sync(t, "k", 1, "v", 1), JDB_EREADONLY);
  assert_rc(jdb_del(t, "k001", 4), JDB_EREADONLY);
  jdb_batch_t *b = jdb_batch_new();
  assert_non_null(b);
  assert_ok(jdb_batch_put(b, "k", 1, "v", 1));
  assert_rc(jdb_write(t, b, 0), JDB_EREADONLY);
  assert_rc(jdb_write(t, b, JDB_SYNC), JDB_EREADONLY);
  jdb_batch_free(b);
  jdb_pipe_t *pp = jdb_pipe_new(db);
  assert_non_null(pp);
  assert_ok(jdb_pipe_put(pp, t, "k", 1, "v", 1));
  assert_ok(jdb_pipe_get(pp, t, "k003", 4));
  assert_ok(jdb_pipe_del(pp, t2, "k002", 4));
  assert_ok(jdb_pipe_exec(pp, 0));
  assert_rc(jdb_pipe_result(pp, 0, NULL, NULL), JDB_EREADONLY);
  const void *pv = NULL;
  size_t pvl = 0;
  assert_ok(jdb_pipe_result(pp, 1, &pv, &pvl));
  assert_int_equal(pvl, 2);
  assert_memory_equal(pv, "v3", 2);
  assert_rc(jdb_pipe_result(pp, 2, NULL, NULL), JDB_EREADONLY);
  jdb_pipe_free(pp);
  assert_rc(jdb_table_drop(db, "ro", 2), JDB_EREADONLY);
  assert_rc(jdb_checkpoint(db), JDB_EREADONLY);
  t_get_str(t, "k", NULL);
  t_get_str(t, "k001", "v1");
  t_get_str(t2, "k002", "v2");
  jdb_table_close(t);
  jdb_table_close(t2);
  assert_ok(jdb_close(db));

  /* nothing changed */
  db = t_open(p, 2);
  t = t_table(db, "ro", 0);
  t_get_str(t, "k", NULL);
  t_get_str(t, "k001", "v1");
  t_get_str(t, "in-log", "only");
  names = 0;
  assert_ok(jdb_table_list(db, NULL, 0, t_list_count_fn, &names));
  assert_int_equal(names, 2);
  jdb_table_close(t);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Not supported yet */

static long t_read_nothing(void *ud, void *buf, size_t cap)
{
  (void)ud;
  (void)buf;
  (void)cap;
  return 0;
}

static int t_point_fn(void *ud, const jdb_tag_t *tags, size_t ntags, int64_t ts, double v)
{
  (void)ud;
  (void)tags;
  (void)ntags;
  (void)ts;
  (void)v;
  return 0;
}

static void test_notsup(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "notsup");
  jdb_t *db = t_open(p, 2);
  jdb_table_t *t = t_table(db, "n", JDB_CREATE);
  t_put_str(t, "k", "v");

  jdb_table_t *fk = (jdb_table_t *)1;
  assert_rc(jdb_table_fork(t, 0, JDB_ASC, "fork", 4, &fk), JDB_ENOTSUP);
  assert_null(fk);
  jdb_snap_t *s = (jdb_snap_t *)1;
  assert_rc(jdb_snapshot_at(t, 0, JDB_ASC, &s), JDB_ENOTSUP);
  assert_null(s);
  s = (jdb_snap_t *)1;
  assert_rc(jdb_snapshot_at(t, (uint64_t)time(NULL), JDB_DESC, &s), JDB_ENOTSUP);
  assert_null(s);
  jdb_iter_t *it = (jdb_iter_t *)1;
  assert_rc(jdb_history_open(t, "k", 1, &it), JDB_ENOTSUP);
  assert_null(it);
  assert_ok(jdb_iter_open(t, NULL, &it));
  assert_ok(jdb_iter_first(it));
  uint64_t seq = 0, ts = 0;
  int tomb = 0;
  assert_rc(jdb_iter_version(it, &seq, &ts, &tomb), JDB_ENOTSUP);
  jdb_iter_close(it);

  jdb_watch_t *w = (jdb_watch_t *)1;
  assert_rc(jdb_watch_open(t, 0, &w), JDB_ENOTSUP);
  assert_null(w);
  jdb_event_t ev;
  memset(&ev, 0, sizeof ev);
  assert_rc(jdb_watch_next(NULL, &ev, 0), JDB_ENOTSUP);
  assert_rc(jdb_watch_fd(NULL), JDB_ENOTSUP);
  jdb_watch_close(NULL);
  ev.op = JDB_OP_PUT;
  ev.key = "k";
  ev.klen = 1;
  ev.val = "v";
  ev.vlen = 1;
  uint8_t buf[64];
  size_t used = 5;
  assert_rc(jdb_event_encode(&ev, buf, sizeof buf, &used), JDB_ENOTSUP);
  uint64_t applied = 5;
  assert_rc(jdb_import(t, t_read_nothing, NULL, &applied), JDB_ENOTSUP);

  jdb_tag_t tag = {"host", 4, "a", 1};
  assert_rc(jdb_series_put(t, &tag, 1, 1000, 1.5), JDB_ENOTSUP);
  size_t points = 5;
  const char *lp = "cpu,host=a usage=1.5 1000\n";
  assert_rc(jdb_series_write_lp(t, lp, strlen(lp), 0, &points), JDB_ENOTSUP);
  assert_rc(jdb_series_query(t, "cpu_usage{host=\"a\"}", 0, 2000, 0, JDB_AGG_NONE, t_point_fn,
                             NULL),
            JDB_ENOTSUP);
  t_get_str(t, "k", "v");   /* nothing above touched the table */
  jdb_table_close(t);
  assert_ok(jdb_close(db));
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Concurrency: 8 client threads on 2 shards */

#define C_SLOTS 8
#define C_OWN 2
#define C_SHARED 2
#define C_PLEN 4        /* shared-table keys start with "Snn:" */

/* The work of one client thread slot: its models outlive the threads that use them (a thread
   ends, the next one of the slot carries on with the same tables and models). */
struct c_slot {
  int id;
  jdb_t *db;
  jdb_table_t *common;   /* shared-0 through one handle that every thread uses */
  double deadline, run_secs;
  uint8_t prefix[C_PLEN];
  struct t_keys own_ks[C_OWN], sh_ks[C_SHARED];
  struct t_model own_m[C_OWN], sh_m[C_SHARED];
  t_rng rng;
  struct t_fail f;
  uint64_t ops, threads;
  atomic_int done;
  pthread_t th;
  int running;
};

static void c_own_name(char *buf, size_t cap, int slot, int i)
{
  snprintf(buf, cap, "own-%d-%d", slot, i);
}

static void c_shared_name(char *buf, size_t cap, int i)
{
  snprintf(buf, cap, "shared-%d", i);
}

static int c_has_prefix(const void *k, size_t kl, const uint8_t *prefix)
{
  return kl >= C_PLEN && memcmp(k, prefix, C_PLEN) == 0;
}

/* In a table shared with other slots' key ranges, check this slot's range (model m, keys
   starting with prefix): scans both ways across its bounds, and random seeks inside it. */
static void t_iter_range(struct t_fail *f, jdb_iter_t *it, const struct t_model *m,
                         const uint8_t *prefix, t_rng *r, size_t seeks, const char *what)
{
  static _Thread_local uint8_t probe[JDB_KEY_MAX + 8];
  uint8_t upper[C_PLEN];
  memcpy(upper, prefix, C_PLEN);
  upper[C_PLEN - 1]++;
  const void *k;
  size_t kl;
  /* forwards from the prefix: our keys, then a foreign key or the end */
  int rc = jdb_iter_seek(it, prefix, C_PLEN);
  long want = t_model_scan(m, 0, 1);
  for (;;) {
    if (want < 0) {
      if (rc == JDB_OK && (jdb_iter_key(it, &k, &kl) != JDB_OK || c_has_prefix(k, kl, prefix)))
        t_failf(f, "%s: a key of this range that the model does not have (forwards)", what);
      else if (rc != JDB_OK && rc != JDB_NOTFOUND)
        t_failf(f, "%s: %s after the range", what, jdb_strerror(rc));
      break;
    }
    if (!t_iter_at(f, it, m, rc, want, what))
      return;
    rc = jdb_iter_next(it);
    want = t_model_scan(m, want + 1, 1);
  }
  /* backwards from just above the range */
  rc = jdb_iter_seek_prev(it, upper, C_PLEN);
  want = t_model_scan(m, (long)m->ks->n - 1, -1);
  for (;;) {
    if (want < 0) {
      if (rc == JDB_OK && (jdb_iter_key(it, &k, &kl) != JDB_OK || c_has_prefix(k, kl, prefix)))
        t_failf(f, "%s: a key of this range that the model does not have (backwards)", what);
      else if (rc != JDB_OK && rc != JDB_NOTFOUND)
        t_failf(f, "%s: %s before the range", what, jdb_strerror(rc));
      break;
    }
    if (!t_iter_at(f, it, m, rc, want, what))
      return;
    rc = jdb_iter_prev(it);
    want = t_model_scan(m, want - 1, -1);
  }
  for (size_t s = 0; s < seeks && f->n == 0; s++) {
    size_t pl = t_probe(m, r, probe);
    if (!c_has_prefix(probe, pl, prefix))
      continue;
    int fwd = (int)t_below(r, 2);
    rc = fwd ? jdb_iter_seek(it, probe, pl) : jdb_iter_seek_prev(it, probe, pl);
    want = fwd ? t_model_scan(m, (long)t_keys_bound(m->ks, probe, pl, 0), 1)
               : t_model_scan(m, (long)t_keys_bound(m->ks, probe, pl, 1) - 1, -1);
    if (want >= 0) {
      t_iter_at(f, it, m, rc, want, fwd ? "range seek" : "range seek_prev");
    } else if (rc == JDB_OK &&
               (jdb_iter_key(it, &k, &kl) != JDB_OK || c_has_prefix(k, kl, prefix))) {
      t_failf(f, "%s: %s lands on a key of this range the model does not have", what,
              fwd ? "seek" : "seek_prev");
    } else if (rc != JDB_OK && rc != JDB_NOTFOUND) {
      t_failf(f, "%s: seek: %s", what, jdb_strerror(rc));
    }
  }
}

struct c_list_ud {
  uint8_t last[JDB_NAME_MAX];
  size_t last_len, n;
  int unordered;
};

static int c_list_fn(void *ud, const void *name, size_t len)
{
  struct c_list_ud *u = ud;
  if (u->n && t_bytes_cmp(u->last, u->last_len, name, len) >= 0)
    u->unordered++;
  memcpy(u->last, name, len);
  u->last_len = len;
  u->n++;
  return 0;
}

static void *c_thread(void *arg)
{
  struct c_slot *s = arg;
  struct t_fail *f = &s->f;
  t_rng *r = &s->rng;
  jdb_table_t *tabs[C_OWN + C_SHARED] = {NULL};
  struct t_model *models[C_OWN + C_SHARED];
  tabs[C_OWN] = s->common;
  jdb_batch_t *b = jdb_batch_new();
  jdb_pipe_t *pp = jdb_pipe_new(s->db);
  struct t_pop *ops = malloc(64 * sizeof *ops);
  if (!b || !pp || !ops) {
    t_failf(f, "slot %d: out of memory", s->id);
    goto out;
  }
  for (int i = 0; i < C_OWN + C_SHARED; i++) {
    char name[32];
    if (i < C_OWN)
      c_own_name(name, sizeof name, s->id, i);
    else
      c_shared_name(name, sizeof name, i - C_OWN);
    int rc = i == C_OWN ? JDB_OK
                        : jdb_table_open(s->db, name, strlen(name), JDB_CREATE, &tabs[i]);
    if (rc != JDB_OK) {
      t_failf(f, "slot %d: jdb_table_open(%s): %s", s->id, name, jdb_strerror(rc));
      goto out;
    }
    models[i] = i < C_OWN ? &s->own_m[i] : &s->sh_m[i - C_OWN];
  }
  /* this thread ends after a random share of the run or of operations, whichever comes first */
  uint64_t budget = 100 + t_below(r, 1500);
  double end = t_now() + s->run_secs * (0.05 + (double)t_below(r, 1000) / 4000.0);
  if (end > s->deadline)
    end = s->deadline;
  for (uint64_t n = 0; n < budget && f->n == 0; n++) {
    if ((n & 7) == 0 && t_now() > end)
      break;
    s->ops++;
    int ti = (int)t_below(r, C_OWN + C_SHARED);
    jdb_table_t *t = tabs[ti];
    struct t_model *m = models[ti];
    uint64_t c = t_below(r, 100);
    if (c < 55) {
      t_random_writes(f, t, m, r, 1, b);
    } else if (c < 70) {
      /* a pipeline over this slot's tables (its own and its range of the shared ones) */
      size_t cnt = 1 + t_below(r, 64);
      jdb_pipe_reset(pp);
      struct t_model mm[C_OWN + C_SHARED];
      for (int i = 0; i < C_OWN + C_SHARED; i++)
        mm[i] = *models[i];   /* shallow: the same arrays */
      if (t_pipe_fill(f, pp, tabs, mm, C_OWN + C_SHARED, r, ops, cnt) != cnt)
        break;
      t_pipe_model(mm, ops, cnt);
      int rc = jdb_pipe_exec(pp, t_below(r, 20) ? 0 : JDB_SYNC);
      if (rc != JDB_OK)
        t_failf(f, "slot %d: jdb_pipe_exec: %s", s->id, jdb_strerror(rc));
      else
        t_pipe_check(f, pp, ops, cnt);
    } else if (c < 82) {
      jdb_iter_t *it = NULL;
      int rc = jdb_iter_open(t, NULL, &it);
      if (rc != JDB_OK) {
        t_failf(f, "slot %d: jdb_iter_open: %s", s->id, jdb_strerror(rc));
        continue;
      }
      if (ti < C_OWN) {
        t_iter_walk(f, it, m, r, 40, "own table walk");
        if (t_below(r, 4) == 0)
          t_iter_scan(f, it, m, "own table scan");
      } else {
        t_iter_range(f, it, m, s->prefix, r, 20, "shared table range");
      }
      jdb_iter_close(it);
    } else if (c < 90) {
      /* a snapshot, then writes to its table; reads at the snapshot see none of them */
      jdb_snap_t *sn = NULL;
      int rc = jdb_snapshot(t, &sn);
      if (rc != JDB_OK) {
        t_failf(f, "slot %d: jdb_snapshot: %s", s->id, jdb_strerror(rc));
        continue;
      }
      struct t_model old;
      t_model_copy(&old, m);
      t_random_writes(f, t, m, r, 1 + t_below(r, 20), b);
      for (int j = 0; j < 20 && f->n == 0; j++)
        t_check_get_at(f, sn, &old, t_below(r, old.ks->n), "concurrent get_at");
      if (t_below(r, 3) == 0) {
        jdb_iter_t *it = NULL;
        rc = jdb_iter_open(t, sn, &it);
        if (rc != JDB_OK)
          t_failf(f, "slot %d: jdb_iter_open at a snapshot: %s", s->id, jdb_strerror(rc));
        else if (ti < C_OWN)
          t_iter_walk(f, it, &old, r, 30, "own table walk at a snapshot");
        else
          t_iter_range(f, it, &old, s->prefix, r, 10, "shared range at a snapshot");
        jdb_iter_close(it);
      }
      jdb_snapshot_release(sn);
      t_model_free(&old);
    } else if (c < 93) {
      struct c_list_ud u;
      memset(&u, 0, sizeof u);
      int rc = jdb_table_list(s->db, NULL, 0, c_list_fn, &u);
      if (rc != JDB_OK || u.unordered || u.n < C_OWN + C_SHARED)
        t_failf(f, "slot %d: jdb_table_list: %s, %zu names, %d out of order", s->id,
                jdb_strerror(rc), u.n, u.unordered);
    } else if (c < 95) {
      jdb_stats_t st;
      memset(&st, 0, sizeof st);
      st.struct_size = sizeof st;
      int rc = jdb_stats(s->db, (int)t_below(r, 3) - 1, &st);
      if (rc != JDB_OK)
        t_failf(f, "slot %d: jdb_stats: %s", s->id, jdb_strerror(rc));
    } else {
      for (int j = 0; j < 10 && f->n == 0; j++)
        t_check_get(f, t, m, t_below(r, m->ks->n), "concurrent get");
    }
  }
out:
  for (int i = 0; i < C_OWN + C_SHARED; i++) {
    if (i != C_OWN)
      jdb_table_close(tabs[i]);
  }
  jdb_batch_free(b);
  jdb_pipe_free(pp);
  free(ops);
  atomic_store(&s->done, 1);
  return NULL;
}

static void c_start(struct c_slot *s)
{
  atomic_store(&s->done, 0);
  s->threads++;
  assert_int_equal(pthread_create(&s->th, NULL, c_thread, s), 0);
  s->running = 1;
}

/* Everything of every slot against its models: own tables whole, shared tables by range, and
   the shared tables hold nothing else. */
static void c_verify(jdb_t *db, struct c_slot *slots, const char *what)
{
  struct t_fail f = {0};
  t_rng r;
  t_rng_init(&r, 0xc0c0);
  size_t shared_live[C_SHARED] = {0};
  for (int si = 0; si < C_SLOTS; si++) {
    struct c_slot *s = &slots[si];
    for (int i = 0; i < C_OWN + C_SHARED; i++) {
      char name[32];
      if (i < C_OWN)
        c_own_name(name, sizeof name, s->id, i);
      else
        c_shared_name(name, sizeof name, i - C_OWN);
      jdb_table_t *t = t_table(db, name, 0);
      if (i < C_OWN) {
        t_check_all(&f, t, &s->own_m[i], what);
      } else {
        struct t_model *m = &s->sh_m[i - C_OWN];
        for (size_t k = 0; k < m->ks->n && f.n == 0; k++) {
          t_check_get(&f, t, m, k, what);
          shared_live[i - C_OWN] += m->present[k];
        }
        jdb_iter_t *it = NULL;
        assert_ok(jdb_iter_open(t, NULL, &it));
        t_iter_range(&f, it, m, s->prefix, &r, 200, what);
        jdb_iter_close(it);
      }
      jdb_table_close(t);
      if (f.n)
        fail_msg("slot %d table %s: %s", si, name, f.msg);
    }
  }
  for (int i = 0; i < C_SHARED; i++) {
    char name[32];
    c_shared_name(name, sizeof name, i);
    jdb_table_t *t = t_table(db, name, 0);
    jdb_iter_t *it = NULL;
    assert_ok(jdb_iter_open(t, NULL, &it));
    size_t n = 0;
    for (int rc = jdb_iter_first(it); rc == JDB_OK; rc = jdb_iter_next(it))
      n++;
    jdb_iter_close(it);
    jdb_table_close(t);
    if (n != shared_live[i])
      fail_msg("%s: table %s has %zu keys, the slots' models %zu", what, name, n,
               shared_live[i]);
  }
}

static void test_concurrency(void **state)
{
  (void)state;
  char p[PATH_MAX];
  t_path(p, sizeof p, "concurrency");
  jdb_options_t o = t_opts(2);
  o.pin_cores = 1;
  jdb_t *db = NULL;
  assert_ok(jdb_open(p, &o, &db));
  struct c_slot *slots = calloc(C_SLOTS, sizeof *slots);
  assert_non_null(slots);
  double secs = 3.0 * g_scale;
  if (secs < 0.5)
    secs = 0.5;
  double t0 = t_now(), deadline = t0 + secs;
  char cname[32];
  c_shared_name(cname, sizeof cname, 0);
  jdb_table_t *common = t_table(db, cname, JDB_CREATE);
  for (int si = 0; si < C_SLOTS; si++) {
    struct c_slot *s = &slots[si];
    s->id = si;
    s->db = db;
    s->common = common;
    s->deadline = deadline;
    s->run_secs = secs;
    char pre[8];
    snprintf(pre, sizeof pre, "S%02d:", si);
    memcpy(s->prefix, pre, C_PLEN);
    t_rng_init(&s->rng, 0xc000u + (uint64_t)si);
    for (int i = 0; i < C_OWN; i++) {
      t_keys_gen(&s->own_ks[i], &s->rng, 300, NULL, 0);
      t_model_init(&s->own_m[i], &s->own_ks[i]);
    }
    for (int i = 0; i < C_SHARED; i++) {
      t_keys_gen(&s->sh_ks[i], &s->rng, 300, s->prefix, C_PLEN);
      t_model_init(&s->sh_m[i], &s->sh_ks[i]);
    }
  }
  for (int si = 0; si < C_SLOTS; si++)
    c_start(&slots[si]);
  /* threads end on their own (a random budget); each slot gets a new one until the deadline */
  int live = C_SLOTS, failed = 0;
  while (live > 0) {
    t_sleep_ms(2);
    for (int si = 0; si < C_SLOTS; si++) {
      struct c_slot *s = &slots[si];
      if (!s->running || !atomic_load(&s->done))
        continue;
      pthread_join(s->th, NULL);
      s->running = 0;
      live--;
      failed |= s->f.n != 0;
      if (!failed && t_now() < deadline - 0.05) {
        c_start(s);
        live++;
      }
    }
  }
  uint64_t ops = 0, threads = 0;
  for (int si = 0; si < C_SLOTS; si++) {
    struct c_slot *s = &slots[si];
    ops += s->ops;
    threads += s->threads;
    if (s->f.n)
      fail_msg("slot %d: %d failed check(s); the first: %s", si, s->f.n, s->f.msg);
  }
  printf("  concurrency: %d slots, %llu threads, %llu operations in %.2f s\n", C_SLOTS,
         (unsigned long long)threads, (unsigned long long)ops, t_now() - t0);
  assert_true(threads > C_SLOTS);   /* threads ended and others took their place */
  jdb_table_close(common);

  c_verify(db, slots, "after the threads");
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_ok(jdb_check(db, &cr));
  assert_int_equal(cr.errors, 0);
  assert_ok(jdb_close(db));
  db = t_open(p, 2);
  c_verify(db, slots, "after reopen");
  assert_ok(jdb_close(db));
  for (int si = 0; si < C_SLOTS; si++) {
    struct c_slot *s = &slots[si];
    for (int i = 0; i < C_OWN; i++) {
      t_model_free(&s->own_m[i]);
      t_keys_free(&s->own_ks[i]);
    }
    for (int i = 0; i < C_SHARED; i++) {
      t_model_free(&s->sh_m[i]);
      t_keys_free(&s->sh_ks[i]);
    }
  }
  free(slots);
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* jdb_close while client threads work */

/* A client of the instance being closed. It calls until it sees JDB_ECLOSED, then stops; every
   result must be the call's own (JDB_OK, JDB_NOTFOUND for a get) or JDB_ECLOSED. Its puts to
   its own table use keys 0, 1, 2, ... in order, so after a reopen keys 0 .. acked-1 must be
   there and none above (a refused put wrote nothing). Iterators and snapshots are not used
   here: the header makes releasing them after jdb_close a caller bug. */
struct x_worker {
  jdb_t *db;
  jdb_table_t *own, *shared;
  jdb_batch_t *b;
  jdb_pipe_t *pp;
  int id;
  size_t round;
  t_rng rng;
  uint32_t acked;      /* puts of keys 0 .. acked-1 returned JDB_OK */
  uint64_t calls;
  int closed;
  struct t_fail f;
  atomic_int started;
};

static void x_key(char *buf, size_t cap, size_t round, int worker, uint32_t n)
{
  snprintf(buf, cap, "w%zu-%02d-%08u", round, worker, n);
}

/* 1 when the worker must stop (ECLOSED seen, or a wrong result). */
static int x_result(struct x_worker *w, int rc, int notfound_ok, const char *call)
{
  if (rc == JDB_ECLOSED) {
    w->closed = 1;
    return 1;
  }
  if (rc == JDB_OK || (notfound_ok && rc == JDB_NOTFOUND))
    return 0;
  t_failf(&w->f, "worker %d: %s: %s", w->id, call, jdb_strerror(rc));
  return 1;
}

static void *x_thread(void *arg)
{
  struct x_worker *w = arg;
  t_rng *r = &w->rng;
  char key[32];
  uint8_t val[600];
  atomic_store(&w->started, 1);
  for (;;) {
    w->calls++;
    uint64_t c = t_below(r, 100);
    int rc;
    if (c < 35) {
      x_key(key, sizeof key, w->round, w->id, w->acked);
      size_t vl = t_below(r, sizeof val);
      t_val_fill(val, w->acked, vl);
      rc = t_below(r, 20) ? jdb_put(w->own, key, strlen(key), val, vl)
                          : jdb_put_sync(w->own, key, strlen(key), val, vl);
      if (x_result(w, rc, 0, "put"))
        break;
      w->acked++;
    } else if (c < 55) {
      void *v = NULL;
      size_t vl = 0;
      uint32_t n = (uint32_t)t_below(r, w->acked + 1);
      x_key(key, sizeof key, w->round, w->id, n);
      rc = jdb_get(w->own, key, strlen(key), &v, &vl);
      if (rc == JDB_OK) {
        if (n >= w->acked || !t_val_is(v, vl, n, vl))
          t_failf(&w->f, "worker %d: get of key %u (acked %u): wrong", w->id, n, w->acked);
        jdb_free(v);
      } else if (rc == JDB_NOTFOUND && n < w->acked) {
        t_failf(&w->f, "worker %d: acknowledged key %u not found", w->id, n);
      }
      if (w->f.n || x_result(w, rc, 1, "get"))
        break;
    } else if (c < 65) {
      jdb_batch_clear(w->b);
      for (int j = 0; j < 8; j++) {
        snprintf(key, sizeof key, "b%02d-%03d", w->id, (int)t_below(r, 200));
        jdb_batch_put(w->b, key, strlen(key), key, strlen(key));
      }
      snprintf(key, sizeof key, "b%02d-%03d", w->id, (int)t_below(r, 200));
      jdb_batch_del(w->b, key, strlen(key));
      if (x_result(w, jdb_write(w->shared, w->b, t_below(r, 10) ? 0 : JDB_SYNC), 0, "write"))
        break;
    } else if (c < 80) {
      jdb_pipe_reset(w->pp);
      size_t n = 1 + t_below(r, 40);
      for (size_t j = 0; j < n; j++) {
        snprintf(key, sizeof key, "p%02d-%03d", w->id, (int)t_below(r, 100));
        jdb_table_t *t = t_below(r, 2) ? w->own : w->shared;
        switch (t_below(r, 3)) {
        case 0:
          jdb_pipe_put(w->pp, t, key, strlen(key), key, strlen(key));
          break;
        case 1:
          jdb_pipe_get(w->pp, t, key, strlen(key));
          break;
        default:
          jdb_pipe_del(w->pp, t, key, strlen(key));
          break;
        }
      }
      rc = jdb_pipe_exec(w->pp, 0);
      if (x_result(w, rc, 0, "pipe_exec"))
        break;
      for (size_t j = 0; j < n; j++) {
        int orc = jdb_pipe_result(w->pp, j, NULL, NULL);
        if (orc != JDB_OK && orc != JDB_NOTFOUND)
          t_failf(&w->f, "worker %d: pipe op %zu of an executed pipe: %s", w->id, j,
                  jdb_strerror(orc));
      }
      if (w->f.n)
        break;
    } else if (c < 85) {
      snprintf(key, sizeof key, "b%02d-%03d", w->id, (int)t_below(r, 200));
      if (x_result(w, jdb_del(w->shared, key, strlen(key)), 0, "del"))
        break;
    } else if (c < 90) {
      jdb_table_t *t = NULL;
      char name[16];
      snprintf(name, sizeof name, "x%d-%d", w->id, (int)t_below(r, 4));
      rc = jdb_table_open(w->db, name, strlen(name), JDB_CREATE, &t);
      if (rc == JDB_OK && t == NULL)
        t_failf(&w->f, "worker %d: jdb_table_open: JDB_OK and no handle", w->id);
      if (rc != JDB_OK && t != NULL)
        t_failf(&w->f, "worker %d: jdb_table_open failed with a handle", w->id);
      jdb_table_close(t);
      if (w->f.n || x_result(w, rc, 0, "table_open"))
        break;
    } else if (c < 95) {
      jdb_stats_t st;
      memset(&st, 0, sizeof st);
      st.struct_size = sizeof st;
      if (x_result(w, jdb_stats(w->db, -1, &st), 0, "stats"))
        break;
    } else if (c < 97) {
      if (x_result(w, jdb_flush(w->db), 0, "flush"))
        break;
    } else {
      size_t n = 0;
      if (x_result(w, jdb_table_list(w->db, NULL, 0, t_list_count_fn, &n), 0, "table_list"))
        break;
    }
  }
  return NULL;
}

static void test_close_race(void **state)
{
  (void)state;
  enum { NW = 6 };
  char p[PATH_MAX];
  t_path(p, sizeof p, "close_race");
  t_rng r;
  t_rng_init(&r, 0xc105e);
  struct x_worker *w = calloc(NW, sizeof *w);
  assert_non_null(w);
  size_t rounds = 3;
  uint8_t *val = malloc(4096);
  assert_non_null(val);
  for (size_t round = 0; round < rounds; round++) {
    jdb_t *db = t_open(p, 2);
    /* the previous round's acknowledged puts are all there, nothing after them */
    for (int i = 0; i < NW && round > 0; i++) {
      char name[16], key[32];
      snprintf(name, sizeof name, "own%d", i);
      jdb_table_t *t = t_table(db, name, 0);
      for (uint32_t n = 0; n <= w[i].acked; n++) {
        void *v = NULL;
        size_t vl = 0;
        x_key(key, sizeof key, round - 1, i, n);
        int rc = jdb_get(t, key, strlen(key), &v, &vl);
        if (n < w[i].acked && (rc != JDB_OK || !t_val_is(v, vl, n, vl)))
          fail_msg("round %zu worker %d: acknowledged put %u: %s", round, i, n,
                   jdb_strerror(rc));
        if (n == w[i].acked && rc != JDB_NOTFOUND)
          fail_msg("round %zu worker %d: the put refused at close (%u) is there: %s", round,
                   i, n, jdb_strerror(rc));
        if (rc == JDB_OK)
          jdb_free(v);
      }
      jdb_table_close(t);
    }
    /* some megabytes in the memtables, so that the close has a checkpoint to do */
    jdb_table_t *fill = t_table(db, "fill", JDB_CREATE);
    size_t nfill = t_scaled(600);
    for (size_t i = 0; i < nfill; i++) {
      char key[32];
      snprintf(key, sizeof key, "f%zu-%06zu", round, i);
      t_val_fill(val, (uint32_t)i, 4096);
      assert_ok(jdb_put(fill, key, strlen(key), val, 4096));
    }
    jdb_table_close(fill);
    pthread_t th[NW];
    for (int i = 0; i < NW; i++) {
      char name[16];
      snprintf(name, sizeof name, "own%d", i);
      w[i].db = db;
      w[i].id = i;
      w[i].round = round;
      w[i].own = t_table(db, name, JDB_CREATE);
      w[i].shared = t_table(db, "shared", JDB_CREATE);
      w[i].b = jdb_batch_new();
      w[i].pp = jdb_pipe_new(db);
      assert_non_null(w[i].b);
      assert_non_null(w[i].pp);
      w[i].acked = 0;
      w[i].closed = 0;
      w[i].calls = 0;
      t_rng_init(&w[i].rng, 0x1000u * round + (uint64_t)i);
      atomic_init(&w[i].started, 0);
      assert_int_equal(pthread_create(&th[i], NULL, x_thread, &w[i]), 0);
    }
    for (int i = 0; i < NW; i++) {
      while (!atomic_load(&w[i].started))
        sched_yield();
    }
    t_sleep_ms(30 + (unsigned)t_below(&r, 120));
    assert_ok(jdb_close(db));
    for (int i = 0; i < NW; i++) {
      pthread_join(th[i], NULL);
      /* freed after the instance: allowed for table handles, batches and pipes */
      jdb_table_close(w[i].own);
      jdb_table_close(w[i].shared);
      jdb_batch_free(w[i].b);
      jdb_pipe_free(w[i].pp);
      if (w[i].f.n)
        fail_msg("round %zu: %s", round, w[i].f.msg);
      assert_int_equal(w[i].closed, 1);
      assert_true(w[i].calls > 0);
    }
  }
  /* the last round's puts */
  jdb_t *db = t_open(p, 2);
  for (int i = 0; i < NW; i++) {
    char name[16], key[32];
    snprintf(name, sizeof name, "own%d", i);
    jdb_table_t *t = t_table(db, name, 0);
    for (uint32_t n = 0; n <= w[i].acked; n++) {
      x_key(key, sizeof key, rounds - 1, i, n);
      void *v = NULL;
      size_t vl = 0;
      int rc = jdb_get(t, key, strlen(key), &v, &vl);
      assert_rc(rc, n < w[i].acked ? JDB_OK : JDB_NOTFOUND);
      jdb_free(v);
    }
    jdb_table_close(t);
  }
  jdb_check_report_t cr = {.struct_size = sizeof cr};
  assert_ok(jdb_check(db, &cr));
  assert_ok(jdb_close(db));
  free(val);
  free(w);
  t_rm_rf(p);
}

/* ------------------------------------------------------------------------------------------- */

int main(void)
{
  const char *seed = getenv("JDB_TEST_SEED");
  g_seed = seed && *seed ? strtoull(seed, NULL, 0)
                         : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
  const char *scale = getenv("JDB_TEST_SCALE");
  if (scale && *scale) {
    g_scale = strtod(scale, NULL);
    if (!(g_scale > 0.0))
      g_scale = 1.0;
  }
  const char *io = getenv("JDB_IO");
  printf("test_api: seed %llu (JDB_TEST_SEED=%llu replays), scale %g, JDB_IO=%s\n",
         (unsigned long long)g_seed, (unsigned long long)g_seed, g_scale, io ? io : "(unset)");
  fflush(stdout);

  /* io_uring refused on this host: nothing to test for the uring run */
  char p[PATH_MAX];
  t_path(p, sizeof p, "probe");
  jdb_options_t o = t_opts(1);
  jdb_t *db = NULL;
  int rc = jdb_open(p, &o, &db);
  if (rc == JDB_ENOTSUP && io && strcmp(io, "uring") == 0) {
    printf("test_api: io_uring is not available here: skipped\n");
    t_rm_rf(p);
    return 77;
  }
  if (rc == JDB_OK)
    jdb_close(db);
  t_rm_rf(p);

  const char *filter = getenv("T_FILTER");
  if (filter && *filter)
    cmocka_set_test_filter(filter);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_strerror_version),
    cmocka_unit_test(test_options_init),
    cmocka_unit_test(test_log_set),
    cmocka_unit_test(test_open_errors),
    cmocka_unit_test(test_busy),
    cmocka_unit_test(test_reopen_stats_check),
    cmocka_unit_test(test_check_damage),
    cmocka_unit_test(test_reopen_inline_limit),
    cmocka_unit_test(test_small_cache),
    cmocka_unit_test(test_tables),
    cmocka_unit_test(test_kv_limits),
    cmocka_unit_test(test_kv_model),
    cmocka_unit_test(test_snapshots),
    cmocka_unit_test(test_iterators),
    cmocka_unit_test(test_pipelines),
    cmocka_unit_test(test_read_only),
    cmocka_unit_test(test_notsup),
    cmocka_unit_test(test_concurrency),
    cmocka_unit_test(test_close_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
