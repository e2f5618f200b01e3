/*
 * test_runtime.c - the runtime (runtime/rt.h): the instance directory (LOCK, MANIFEST, shard
 * count), calls routed to shards and run in fibers that may park on I/O, many client threads,
 * ring reclaim at thread exit, close racing with calls, nested calls, counters.
 *
 * One binary, run once per backend: argv[1] is "uring" or "psync" (exit 77 when io_uring is
 * unavailable). Call functions run on shard threads inside fibers, where a cmocka assert would
 * longjmp out of a fiber stack: they report through their arguments and the test asserts on the
 * client side.
 */
#include "tutil.h"
#include "tutil_fs.h"

#include "codec.h"
#include "coro.h"
#include "fs.h"
#include "hash.h"
#include "jdb.h"
#include "layout.h"
#include "mem.h"
#include "rt.h"
#include "tab.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_backend = "uring";

/* ------------------------------------------------------------------------------------------- */
/* Helpers */

static struct rt_opts opts_make(uint32_t shards)
{
  return (struct rt_opts){
    .shards = shards,
    .create_if_missing = 1,
    .io_backend = strcmp(g_backend, "uring") == 0 ? FS_BACKEND_URING : FS_BACKEND_PSYNC,
    .tab = {.memtable_bytes = 1u << 20, .cache_frames = 256, .segment_bytes = 1u << 20,
            .create_if_missing = 1},
  };
}

static struct rt *open_ok(const char *path, uint32_t shards)
{
  struct rt_opts o = opts_make(shards);
  struct rt *rt = NULL;
  assert_int_equal(rt_open(path, &o, &rt), JDB_OK);
  assert_non_null(rt);
  return rt;
}

static int open_rc(const char *path, const struct rt_opts *o)
{
  struct rt *rt = (struct rt *)&rt;   /* must come back NULL on failure */
  int rc = rt_open(path, o, &rt);
  if (rc == JDB_OK)
    assert_int_equal(rt_close(rt), JDB_OK);
  else
    assert_null(rt);
  return rc;
}

static char *db_path(char *buf, size_t cap, const char *name)
{
  return tutil_path(buf, cap, tutil_tmpdir(name), "db");
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct rt_shard_stats stats_of(struct rt *rt, uint32_t shard)
{
  struct rt_shard_stats st;
  assert_int_equal(rt_shard_stats(rt, shard, &st), JDB_OK);
  return st;
}

/* Call functions. */

static int fn_self_shard(struct tab *t, void *arg)
{
  (void)arg;
  return t && rt_self_ctx() ? (int)rt_self_shard() : -1000;
}

static int fn_backend(struct tab *t, void *arg)
{
  (void)t;
  const char **name = arg;
  *name = fs_ctx_backend_name(rt_self_ctx());
  return JDB_OK;
}

struct sq_arg {
  uint64_t in;
  uint64_t out;
  uint32_t shard;
};

static int fn_square(struct tab *t, void *arg)
{
  (void)t;
  struct sq_arg *a = arg;
  a->out = a->in * a->in + 1;
  a->shard = rt_self_shard();
  if (a->in % 7 == 0)
    coro_yield();        /* let other fibers interleave */
  return (int)(a->in % 100000);
}

/* ------------------------------------------------------------------------------------------- */
/* Directory, LOCK, MANIFEST */

static void test_open_create_reopen(void **state)
{
  (void)state;
  char p[4096], f[4096];
  db_path(p, sizeof p, "rt_open");
  struct rt *rt = open_ok(p, 3);
  assert_int_equal(rt_shards(rt), 3);
  assert_string_equal(rt_path(rt), p);
  assert_int_equal(rt_close(rt), JDB_OK);

  struct stat st;
  assert_int_equal(stat(tutil_path(f, sizeof f, p, "MANIFEST"), &st), 0);
  assert_int_equal(st.st_size, 28);
  assert_int_equal(stat(tutil_path(f, sizeof f, p, "LOCK"), &st), 0);
  assert_int_equal(stat(tutil_path(f, sizeof f, p, "MANIFEST.tmp"), &st), -1);
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "shard-%03d", i);
    assert_int_equal(stat(tutil_path(f, sizeof f, p, name), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
  }
  assert_int_equal(stat(tutil_path(f, sizeof f, p, "shard-003"), &st), -1);

  /* The MANIFEST decides the count on reopen, whatever the options say. */
  rt = open_ok(p, 5);
  assert_int_equal(rt_shards(rt), 3);
  assert_int_equal(rt_close(rt), JDB_OK);
  struct rt_opts o = opts_make(0);
  o.direct_strict = 1;                 /* the build directory's file system takes O_DIRECT */
  assert_int_equal(open_rc(p, &o), JDB_OK);
  o.create_if_missing = 0;
  assert_int_equal(rt_open(p, &o, &rt), JDB_OK);
  assert_int_equal(rt_shards(rt), 3);
  assert_int_equal(rt_close(rt), JDB_OK);

  /* shards = 0: one per online CPU. */
  char p2[4096];
  db_path(p2, sizeof p2, "rt_open_cpus");
  rt = open_ok(p2, 0);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  assert_int_equal(rt_shards(rt), cpus > 256 ? 256 : cpus);
  assert_int_equal(rt_close(rt), JDB_OK);

  /* Bad arguments. */
  o = opts_make(RT_SHARDS_MAX + 1);
  char p3[4096];
  db_path(p3, sizeof p3, "rt_open_bad");
  assert_int_equal(open_rc(p3, &o), JDB_EINVAL);
  o = opts_make(1);
  o.io_backend = 7;
  assert_int_equal(open_rc(p3, &o), JDB_EINVAL);
  o = opts_make(1);
  assert_int_equal(open_rc(NULL, &o), JDB_EINVAL);
  assert_int_equal(open_rc("", &o), JDB_EINVAL);
  assert_int_equal(open_rc(p3, NULL), JDB_EINVAL);
  assert_int_equal(rt_open(p3, &o, NULL), JDB_EINVAL);
  o.tab.cache_frames = 1;              /* the tablets refuse it: reported, shards stopped */
  assert_int_equal(open_rc(p3, &o), JDB_EINVAL);
  assert_int_equal(stat(p3, &st), 0);  /* the directory was made before the shards failed */
  assert_int_equal(rt_close(NULL), JDB_OK);
  rt_shutdown(NULL);
  assert_int_equal(rt_shards(NULL), 0);
  assert_null(rt_path(NULL));
  tutil_rmrf(p);
  tutil_rmrf(p2);
  tutil_rmrf(p3);
}

static void test_notfound(void **state)
{
  (void)state;
  char p[4096], f[4096];
  db_path(p, sizeof p, "rt_nf");
  struct rt_opts o = opts_make(2);
  o.create_if_missing = 0;
  assert_int_equal(open_rc(p, &o), JDB_NOTFOUND);
  struct stat st;
  assert_int_equal(stat(p, &st), -1);           /* nothing made */
  /* An existing empty directory is not an instance either. */
  assert_int_equal(mkdir(p, 0755), 0);
  assert_int_equal(open_rc(p, &o), JDB_NOTFOUND);
  assert_int_equal(stat(tutil_path(f, sizeof f, p, "LOCK"), &st), -1);
  /* Read-only never creates, even when asked to. */
  o.create_if_missing = 1;
  o.read_only = 1;
  assert_int_equal(open_rc(p, &o), JDB_NOTFOUND);
  assert_int_equal(stat(tutil_path(f, sizeof f, p, "MANIFEST"), &st), -1);
  /* create_if_missing makes the directory only: its parent must exist. */
  o = opts_make(1);
  assert_int_equal(open_rc(tutil_path(f, sizeof f, p, "no/such"), &o), JDB_NOTFOUND);
  /* A file where the directory should be. */
  int fd = open(tutil_path(f, sizeof f, p, "file"), O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(open_rc(f, &o), JDB_EINVAL);
  tutil_rmrf(p);
}

static void test_busy(void **state)
{
  (void)state;
  char p[4096];
  db_path(p, sizeof p, "rt_busy");
  struct rt *rt = open_ok(p, 2);
  struct rt_opts o = opts_make(2);
  /* Same process: flock is per open file description, so a second open conflicts. */
  assert_int_equal(open_rc(p, &o), JDB_EBUSY);
  o.read_only = 1;
  assert_int_equal(open_rc(p, &o), JDB_EBUSY);
  o.read_only = 0;
  /* Another process. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rt *c = NULL;
    int rc = rt_open(p, &o, &c);
    _exit(rc == JDB_EBUSY && c == NULL ? 0 : 1);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(rt_close(rt), JDB_OK);

  /* Free again once closed; a writer and a read-only open exclude each other. */
  rt = open_ok(p, 2);
  assert_int_equal(rt_close(rt), JDB_OK);
  o.read_only = 1;
  o.create_if_missing = 0;
  struct rt *ro = NULL;
  assert_int_equal(rt_open(p, &o, &ro), JDB_OK);
  assert_int_equal(rt_shards(ro), 2);
  struct rt_opts w = opts_make(2);
  assert_int_equal(open_rc(p, &w), JDB_EBUSY);
  assert_int_equal(rt_close(ro), JDB_OK);
  tutil_rmrf(p);
}

static void manifest_rewrite(const char *path, const uint8_t *b, size_t n)
{
  char f[4096];
  int fd = open(tutil_path(f, sizeof f, path, "MANIFEST"), O_WRONLY | O_TRUNC);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  close(fd);
}

static void test_manifest_damage(void **state)
{
  (void)state;
  char p[4096], f[4096];
  db_path(p, sizeof p, "rt_manifest");
  assert_int_equal(rt_close(open_ok(p, 2)), JDB_OK);
  uint8_t orig[64];
  int fd = open(tutil_path(f, sizeof f, p, "MANIFEST"), O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(read(fd, orig, sizeof orig), 28);
  close(fd);
  /* The layout FORMAT.md gives. */
  assert_memory_equal(orig, "JDBMANIF", 8);
  assert_int_equal(le32_get(orig + 8), RT_FORMAT_VERSION);
  assert_int_equal(le32_get(orig + 12), 2);
  uint64_t ctime_sec = le64_get(orig + 16);
  assert_true(ctime_sec > 1600000000ull && ctime_sec <= (uint64_t)time(NULL));
  assert_int_equal(le32_get(orig + 24), layout_cksum(orig, 24));

  struct rt_opts o = opts_make(2);
  uint8_t b[64];
  /* Every single-bit flip in the 28 bytes is caught. */
  for (int bit = 0; bit < 28 * 8; bit += 5) {
    memcpy(b, orig, 28);
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    manifest_rewrite(p, b, 28);
    assert_int_equal(open_rc(p, &o), JDB_ECORRUPT);
  }
  manifest_rewrite(p, orig, 10);                       /* short */
  assert_int_equal(open_rc(p, &o), JDB_ECORRUPT);
  manifest_rewrite(p, orig, 0);
  assert_int_equal(open_rc(p, &o), JDB_ECORRUPT);
  memcpy(b, orig, 28);
  b[28] = 0;
  manifest_rewrite(p, b, 29);                          /* trailing bytes */
  assert_int_equal(open_rc(p, &o), JDB_ECORRUPT);
  /* A well-formed MANIFEST of another version. */
  memcpy(b, orig, 28);
  le32_put(b + 8, RT_FORMAT_VERSION + 1);
  le32_put(b + 24, layout_cksum(b, 24));
  manifest_rewrite(p, b, 28);
  assert_int_equal(open_rc(p, &o), JDB_EVERSION);
  /* A well-formed checksum over an impossible shard count. */
  memcpy(b, orig, 28);
  le32_put(b + 12, 0);
  le32_put(b + 24, layout_cksum(b, 24));
  manifest_rewrite(p, b, 28);
  assert_int_equal(open_rc(p, &o), JDB_ECORRUPT);
  /* Gone, with shard directories present. */
  assert_int_equal(unlink(tutil_path(f, sizeof f, p, "MANIFEST")), 0);
  assert_int_equal(open_rc(p, &o), JDB_ECORRUPT);
  /* Restored: opens again (every failure above released the LOCK). */
  fd = open(f, O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  close(fd);
  manifest_rewrite(p, orig, 28);
  struct rt *rt = open_ok(p, 7);
  assert_int_equal(rt_shards(rt), 2);
  assert_int_equal(rt_close(rt), JDB_OK);
  tutil_rmrf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Calls */

static void test_calls_route(void **state)
{
  (void)state;
  char p[4096];
  db_path(p, sizeof p, "rt_route");
  struct rt *rt = open_ok(p, 3);
  assert_int_equal(rt_self_shard(), UINT32_MAX);
  assert_null(rt_self_ctx());
  for (uint32_t s = 0; s < 3; s++) {
    assert_int_equal(rt_call(rt, s, fn_self_shard, NULL), (int)s);
    const char *name = NULL;
    assert_int_equal(rt_call(rt, s, fn_backend, &name), JDB_OK);
    assert_non_null(name);
    assert_string_equal(name, g_backend);
  }
  assert_int_equal(rt_call(rt, 3, fn_self_shard, NULL), JDB_EINVAL);
  assert_int_equal(rt_call(rt, UINT32_MAX, fn_self_shard, NULL), JDB_EINVAL);
  assert_int_equal(rt_call(rt, 0, NULL, NULL), JDB_EINVAL);
  assert_int_equal(rt_call(NULL, 0, fn_self_shard, NULL), JDB_EINVAL);

  /* Many: one per shard and more, with a bad one in the middle. */
  struct rt_req reqs[7];
  const uint32_t shard[7] = {2, 0, 1, 9, 1, 2, 0};
  struct sq_arg a[7];
  for (int i = 0; i < 7; i++) {
    a[i] = (struct sq_arg){.in = 1000u + (uint64_t)i, .shard = UINT32_MAX};
    reqs[i] = (struct rt_req){.shard = shard[i], .fn = fn_square, .arg = &a[i]};
  }
  assert_int_equal(rt_call_many(rt, reqs, 7), JDB_EINVAL);
  for (int i = 0; i < 7; i++) {
    if (shard[i] >= 3) {
      assert_int_equal(reqs[i].rc, JDB_EINVAL);
      assert_int_equal(a[i].shard, UINT32_MAX);      /* not run */
      continue;
    }
    assert_int_equal(reqs[i].rc, (int)a[i].in);
    assert_int_equal(a[i].out, a[i].in * a[i].in + 1);
    assert_int_equal(a[i].shard, shard[i]);
  }
  for (int i = 0; i < 3; i++) {
    a[i] = (struct sq_arg){.in = 7u * (uint64_t)i};
    reqs[i] = (struct rt_req){.shard = (uint32_t)i, .fn = fn_square, .arg = &a[i]};
  }
  assert_int_equal(rt_call_many(rt, reqs, 3), JDB_OK);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(reqs[i].rc, (int)a[i].in);
    assert_int_equal(a[i].shard, (uint32_t)i);
  }
  assert_int_equal(rt_call_many(rt, reqs, 0), JDB_OK);

  /* More calls to one shard than its ring holds: posting waits for room. */
  enum { NBIG = 3000 };
  struct rt_req *big = calloc(NBIG, sizeof *big);
  struct sq_arg *ba = calloc(NBIG, sizeof *ba);
  assert_non_null(big);
  assert_non_null(ba);
  for (int i = 0; i < NBIG; i++) {
    ba[i] = (struct sq_arg){.in = (uint64_t)i};
    big[i] = (struct rt_req){.shard = i % 5 == 4 ? 2u : 1u, .fn = fn_square, .arg = &ba[i]};
  }
  assert_int_equal(rt_call_many(rt, big, NBIG), JDB_OK);
  for (int i = 0; i < NBIG; i++) {
    assert_int_equal(big[i].rc, i);
    assert_int_equal(ba[i].out, (uint64_t)i * (uint64_t)i + 1);
    assert_int_equal(ba[i].shard, big[i].shard);
  }
  free(big);
  free(ba);
  assert_int_equal(rt_call_many(rt, NULL, 1), JDB_EINVAL);

  /* Routing of names. */
  int seen[3] = {0};
  for (int i = 0; i < 300; i++) {
    char name[32];
    int n = snprintf(name, sizeof name, "table-%d", i);
    uint32_t s = rt_shard_of(rt, name, (size_t)n);
    assert_true(s < 3);
    assert_int_equal(s, (uint32_t)(hash64(name, (size_t)n) % 3));
    seen[s]++;
  }
  assert_true(seen[0] > 50 && seen[1] > 50 && seen[2] > 50);

  /* Closed: refused. */
  rt_shutdown(rt);
  assert_int_equal(rt_call(rt, 0, fn_self_shard, NULL), JDB_ECLOSED);
  reqs[0] = (struct rt_req){.shard = 0, .fn = fn_self_shard};
  assert_int_equal(rt_call_many(rt, reqs, 1), JDB_ECLOSED);
  assert_int_equal(reqs[0].rc, JDB_ECLOSED);
  assert_int_equal(rt_close(rt), JDB_OK);
  tutil_rmrf(p);
}

/* Calls that park on I/O: the tablet's own work inside call fibers. */
struct kv_arg {
  uint64_t table;
  uint32_t first, count;
  unsigned flags;
  int bad;               /* values read back that differ */
};

static void kv_key(char *k, size_t cap, uint32_t i)
{
  snprintf(k, cap, "key-%08u", i);
}

static int fn_create(struct tab *t, void *arg)
{
  struct kv_arg *a = arg;
  int rc = tab_table_create(t, "t", 1, TAB_SYNC, &a->table);
  return rc == JDB_EEXIST ? JDB_OK : rc;
}

static int fn_put(struct tab *t, void *arg)
{
  struct kv_arg *a = arg;
  for (uint32_t i = a->first; i < a->first + a->count; i++) {
    char k[32], v[64];
    kv_key(k, sizeof k, i);
    int vl = snprintf(v, sizeof v, "value-%u-shard-%u", i * 31u, rt_self_shard());
    struct tab_op op = {.kind = TAB_PUT, .key = k, .klen = (uint32_t)strlen(k), .val = v,
                        .vlen = (uint32_t)vl};
    int rc = tab_write(t, a->table, &op, 1, a->flags, NULL);
    if (rc)
      return rc;
  }
  return JDB_OK;
}

static int fn_get(struct tab *t, void *arg)
{
  struct kv_arg *a = arg;
  for (uint32_t i = a->first; i < a->first + a->count; i++) {
    char k[32], v[64];
    kv_key(k, sizeof k, i);
    int vl = snprintf(v, sizeof v, "value-%u-shard-%u", i * 31u, rt_self_shard());
    void *got = NULL;
    size_t glen = 0;
    int rc = tab_get(t, NULL, a->table, k, (uint32_t)strlen(k), &got, &glen);
    if (rc)
      return rc;
    if (glen != (size_t)vl || memcmp(got, v, glen) != 0)
      a->bad++;
    mem_free(got);
  }
  return JDB_OK;
}

static int fn_checkpoint(struct tab *t, void *arg)
{
  (void)arg;
  return tab_checkpoint(t);
}

static void test_io_calls(void **state)
{
  (void)state;
  char p[4096];
  db_path(p, sizeof p, "rt_io");
  struct rt *rt = open_ok(p, 2);
  struct kv_arg a[2] = {{0}};
  for (uint32_t s = 0; s < 2; s++) {
    assert_int_equal(rt_call(rt, s, fn_create, &a[s]), JDB_OK);
    assert_true(a[s].table >= TAB_ID_FIRST);
    a[s].flags = TAB_SYNC;
    a[s].count = 50;
    assert_int_equal(rt_call(rt, s, fn_put, &a[s]), JDB_OK);     /* 50 fdatasyncs */
    a[s].flags = 0;
    a[s].first = 50;
    a[s].count = 3000;                                            /* past one memtable */
    assert_int_equal(rt_call(rt, s, fn_put, &a[s]), JDB_OK);
  }
  /* Both shards at once, checkpointing and reading. */
  struct rt_req reqs[2];
  for (uint32_t s = 0; s < 2; s++)
    reqs[s] = (struct rt_req){.shard = s, .fn = fn_checkpoint};
  assert_int_equal(rt_call_many(rt, reqs, 2), JDB_OK);
  assert_int_equal(reqs[0].rc, JDB_OK);
  assert_int_equal(reqs[1].rc, JDB_OK);
  for (uint32_t s = 0; s < 2; s++) {
    a[s].first = 0;
    a[s].count = 3050;
    reqs[s] = (struct rt_req){.shard = s, .fn = fn_get, .arg = &a[s]};
  }
  assert_int_equal(rt_call_many(rt, reqs, 2), JDB_OK);
  for (uint32_t s = 0; s < 2; s++) {
    assert_int_equal(reqs[s].rc, JDB_OK);
    assert_int_equal(a[s].bad, 0);
  }
  assert_int_equal(rt_close(rt), JDB_OK);

  /* Everything is there after reopen (rt_close closed the tablets). */
  rt = open_ok(p, 2);
  for (uint32_t s = 0; s < 2; s++) {
    assert_int_equal(rt_call(rt, s, fn_create, &a[s]), JDB_OK);
    assert_int_equal(rt_call(rt, s, fn_get, &a[s]), JDB_OK);
    assert_int_equal(a[s].bad, 0);
  }
  assert_int_equal(rt_close(rt), JDB_OK);
  tutil_rmrf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Threads */

struct shard_count {
  uint64_t n[RT_SHARDS_MAX];    /* per shard, touched only by that shard's thread */
};

struct worker {
  struct rt *rt;
  struct shard_count *counts;
  uint32_t shards;
  int id;
  int calls;
  int errors;
  uint64_t done;               /* calls that returned their result */
  uint64_t closed;             /* calls that returned JDB_ECLOSED */
  atomic_int *stop;
  pthread_barrier_t *barrier;
};

struct count_arg {
  struct shard_count *counts;
  uint64_t in;
  uint64_t out;
};

static int fn_count(struct tab *t, void *arg)
{
  (void)t;
  struct count_arg *a = arg;
  a->counts->n[rt_self_shard()]++;
  a->out = a->in * 3 + rt_self_shard();
  if (a->in % 5 == 0)
    coro_yield();
  return (int)(a->in & 0xffff);
}

static int fn_read_count(struct tab *t, void *arg)
{
  (void)t;
  struct count_arg *a = arg;
  a->out = a->counts->n[rt_self_shard()];
  return JDB_OK;
}

/* One call, or a call_many across all shards every 16th time; checks every result. Returns
   the number of calls made, or -1 on a wrong result; *closed when JDB_ECLOSED came back. */
static int worker_step(struct worker *w, uint64_t k, int *closed)
{
  uint64_t in = ((uint64_t)w->id << 32) | k;
  if (k % 16 == 15 && w->shards <= 8) {
    struct count_arg a[8];
    struct rt_req reqs[8];
    for (uint32_t s = 0; s < w->shards; s++) {
      a[s] = (struct count_arg){.counts = w->counts, .in = in + s};
      reqs[s] = (struct rt_req){.shard = s, .fn = fn_count, .arg = &a[s]};
    }
    int rc = rt_call_many(w->rt, reqs, w->shards);
    if (rc == JDB_ECLOSED) {
      *closed = 1;
      return 0;
    }
    if (rc)
      return -1;
    for (uint32_t s = 0; s < w->shards; s++)
      if (reqs[s].rc != (int)((in + s) & 0xffff) || a[s].out != (in + s) * 3 + s)
        return -1;
    return (int)w->shards;
  }
  uint32_t s = (uint32_t)((k + (uint64_t)w->id) % w->shards);
  struct count_arg a = {.counts = w->counts, .in = in};
  int rc = rt_call(w->rt, s, fn_count, &a);
  if (rc == JDB_ECLOSED) {
    *closed = 1;
    return 0;
  }
  if (rc != (int)(in & 0xffff) || a.out != in * 3 + s)
    return -1;
  return 1;
}

static void *worker_calls(void *arg)
{
  struct worker *w = arg;
  for (int k = 0; k < w->calls; k++) {
    int closed = 0;
    int n = worker_step(w, (uint64_t)k, &closed);
    if (n < 0 || closed)
      w->errors++;
    else
      w->done += (uint64_t)n;
  }
  return NULL;
}

static uint64_t shard_count_total(struct rt *rt, struct shard_count *c)
{
  uint64_t total = 0;
  for (uint32_t s = 0; s < rt_shards(rt); s++) {
    struct count_arg a = {.counts = c};
    assert_int_equal(rt_call(rt, s, fn_read_count, &a), JDB_OK);
    total += a.out;
  }
  return total;
}

static void test_many_threads(void **state)
{
  (void)state;
  enum { NT = 16, CALLS = 2500 };
  char p[4096];
  db_path(p, sizeof p, "rt_threads");
  struct rt *rt = open_ok(p, 3);
  struct shard_count *counts = calloc(1, sizeof *counts);
  assert_non_null(counts);
  uint64_t calls0 = 0;
  for (uint32_t s = 0; s < 3; s++)
    calls0 += stats_of(rt, s).calls;
  pthread_t th[NT];
  struct worker w[NT];
  for (int i = 0; i < NT; i++) {
    w[i] = (struct worker){.rt = rt, .counts = counts, .shards = 3, .id = i, .calls = CALLS};
    assert_int_equal(pthread_create(&th[i], NULL, worker_calls, &w[i]), 0);
  }
  uint64_t done = 0;
  for (int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].errors, 0);
    done += w[i].done;
  }
  /* Every call ran exactly once, on the shard it was sent to. */
  assert_int_equal(shard_count_total(rt, counts), done);
  uint64_t calls1 = 0;
  for (uint32_t s = 0; s < 3; s++)
    calls1 += stats_of(rt, s).calls;
  assert_int_equal(calls1 - calls0, done + 3);
  assert_int_equal(rt_close(rt), JDB_OK);
  free(counts);
  tutil_rmrf(p);
}

/* Threads that attach, wait at a barrier (so they all hold rings at once), then exit. */
static void *worker_attach(void *arg)
{
  struct worker *w = arg;
  for (uint32_t s = 0; s < w->shards; s++) {
    struct count_arg a = {.counts = w->counts, .in = s};
    if (rt_call(w->rt, s, fn_count, &a) != (int)s)
      w->errors++;
  }
  pthread_barrier_wait(w->barrier);
  pthread_barrier_wait(w->barrier);
  return NULL;
}

static int rings_wait(struct rt *rt, uint32_t want, unsigned timeout_ms)
{
  uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    int all = 1;
    for (uint32_t s = 0; s < rt_shards(rt); s++)
      all &= stats_of(rt, s).rings == want;
    if (all)
      return 1;
    if (now_ns() > until)
      return 0;
    sleep_ms(1);
  }
}

static void test_thread_exit_rings(void **state)
{
  (void)state;
  enum { NT = 8, ROUNDS = 5 };
  char p[4096];
  db_path(p, sizeof p, "rt_rings");
  struct rt *rt = open_ok(p, 2);
  struct shard_count *counts = calloc(1, sizeof *counts);
  assert_non_null(counts);
  /* The main thread's own rings stay for the whole test. */
  assert_int_equal(rt_call(rt, 0, fn_self_shard, NULL), 0);
  assert_int_equal(rt_call(rt, 1, fn_self_shard, NULL), 1);
  assert_true(rings_wait(rt, 1, 1000));
  pthread_barrier_t barrier;
  for (int round = 0; round < ROUNDS; round++) {
    assert_int_equal(pthread_barrier_init(&barrier, NULL, NT + 1), 0);
    pthread_t th[NT];
    struct worker w[NT];
    for (int i = 0; i < NT; i++) {
      w[i] = (struct worker){.rt = rt, .counts = counts, .shards = 2, .id = i,
                             .barrier = &barrier};
      assert_int_equal(pthread_create(&th[i], NULL, worker_attach, &w[i]), 0);
    }
    pthread_barrier_wait(&barrier);
    for (uint32_t s = 0; s < 2; s++) {
      struct rt_shard_stats st = stats_of(rt, s);
      assert_int_equal(st.rings, NT + 1);
      /* Slots of the threads of earlier rounds were reused. */
      assert_int_equal(st.ring_slots, NT + 1);
    }
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < NT; i++) {
      pthread_join(th[i], NULL);
      assert_int_equal(w[i].errors, 0);
    }
    pthread_barrier_destroy(&barrier);
    /* The exit hooks marked them; the shards free them. */
    assert_true(rings_wait(rt, 1, 5000));
  }
  assert_int_equal(shard_count_total(rt, counts), (uint64_t)NT * ROUNDS * 2);
  assert_int_equal(rt_close(rt), JDB_OK);
  free(counts);
  tutil_rmrf(p);
}

/* Calls racing with shutdown: each returns its result or JDB_ECLOSED, and once one returned
   JDB_ECLOSED every later one does. */
static void *worker_until_closed(void *arg)
{
  struct worker *w = arg;
  for (uint64_t k = 0;; k++) {
    int closed = 0;
    int n = worker_step(w, k, &closed);
    if (n < 0) {
      w->errors++;
      return NULL;
    }
    if (closed) {
      w->closed++;
      break;
    }
    w->done += (uint64_t)n;
  }
  /* Closed stays closed. */
  for (int i = 0; i < 10; i++) {
    int closed = 0;
    if (worker_step(w, (uint64_t)i, &closed) != 0 || !closed)
      w->errors++;
  }
  return NULL;
}

struct park_arg {
  atomic_int *inside;
  uint64_t ms;
  int result;
};

/* A long call: yields (other fibers and calls go on) for a while. */
static int fn_park(struct tab *t, void *arg)
{
  (void)t;
  struct park_arg *a = arg;
  atomic_fetch_add(a->inside, 1);
  uint64_t until = now_ns() + a->ms * 1000000u;
  while (now_ns() < until)
    coro_yield();
  return a->result;
}

struct parker {
  struct park_arg a;
  struct rt *rt;
  uint32_t shard;
  int rc;
};

static void *parker_main(void *arg)
{
  struct parker *pk = arg;
  pk->rc = rt_call(pk->rt, pk->shard, fn_park, &pk->a);
  return NULL;
}

static void test_close_race(void **state)
{
  (void)state;
  enum { NT = 8 };
  char p[4096];
  db_path(p, sizeof p, "rt_close_race");
  struct tutil_rng rng;
  tutil_rng_init(&rng, tutil_seed() ^ 0xc105e);
  struct shard_count *counts = calloc(1, sizeof *counts);
  assert_non_null(counts);
  uint64_t total_done = 0;
  for (int round = 0; round < 3; round++) {
    struct rt *rt = open_ok(p, 2);
    memset(counts, 0, sizeof *counts);
    pthread_t th[NT];
    struct worker w[NT];
    for (int i = 0; i < NT; i++) {
      w[i] = (struct worker){.rt = rt, .counts = counts, .shards = 2, .id = i};
      assert_int_equal(pthread_create(&th[i], NULL, worker_until_closed, &w[i]), 0);
    }
    sleep_ms(20 + (unsigned)tutil_rng_below(&rng, 60));
    rt_shutdown(rt);
    /* Nothing is in flight any more: the shards' counts are final. */
    uint64_t ran = counts->n[0] + counts->n[1];
    uint64_t done = 0;
    for (int i = 0; i < NT; i++) {
      pthread_join(th[i], NULL);
      assert_int_equal(w[i].errors, 0);
      assert_int_equal(w[i].closed, 1);
      done += w[i].done;
    }
    total_done += done;
    /* Each call either ran and returned its result, or was refused without running (a
       call_many refused as a whole counts none). */
    assert_int_equal(ran, done);
    assert_int_equal(rt_close(rt), JDB_OK);
  }
  assert_true(total_done > 0);

  /* rt_close itself waits for calls in flight: 8 threads each inside a long call when it
     starts; all of them get their results, and the threads exit after the instance is gone
     (their exit hooks must not touch it). */
  struct rt *rt = open_ok(p, 2);
  atomic_int inside = 0;
  struct parker pk[NT];
  pthread_t th[NT];
  for (int i = 0; i < NT; i++) {
    pk[i] = (struct parker){.a = {.inside = &inside, .ms = 50, .result = 100 + i}, .rt = rt,
                            .shard = (uint32_t)i % 2};
    assert_int_equal(pthread_create(&th[i], NULL, parker_main, &pk[i]), 0);
  }
  while (atomic_load(&inside) < NT)
    sleep_ms(1);
  assert_int_equal(rt_close(rt), JDB_OK);
  for (int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(pk[i].rc, 100 + i);
  }
  free(counts);
  tutil_rmrf(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Nested calls, counters */

struct nest_arg {
  struct rt *rt;
  int rc_call, rc_many;
};

static int fn_nested(struct tab *t, void *arg)
{
  (void)t;
  struct nest_arg *a = arg;
  a->rc_call = rt_call(a->rt, 0, fn_self_shard, NULL);
  struct rt_req r = {.shard = 1, .fn = fn_self_shard};
  a->rc_many = rt_call_many(a->rt, &r, 1);
  return r.rc == JDB_EINVAL ? 7 : -7;
}

static void test_nested(void **state)
{
  (void)state;
  char p[4096];
  db_path(p, sizeof p, "rt_nested");
  struct rt *rt = open_ok(p, 2);
  for (uint32_t s = 0; s < 2; s++) {
    struct nest_arg a = {.rt = rt};
    assert_int_equal(rt_call(rt, s, fn_nested, &a), 7);
    assert_int_equal(a.rc_call, JDB_EINVAL);
    assert_int_equal(a.rc_many, JDB_EINVAL);
  }
  /* The shards are fine afterwards. */
  assert_int_equal(rt_call(rt, 1, fn_self_shard, NULL), 1);
  assert_int_equal(rt_close(rt), JDB_OK);
  tutil_rmrf(p);
}

static void test_stats(void **state)
{
  (void)state;
  char p[4096];
  db_path(p, sizeof p, "rt_stats");
  struct rt_opts o = opts_make(2);
  o.pin_cores = 1;
  struct rt *rt = NULL;
  assert_int_equal(rt_open(p, &o, &rt), JDB_OK);
  struct rt_shard_stats st;
  assert_int_equal(rt_shard_stats(rt, 2, &st), JDB_EINVAL);
  assert_int_equal(rt_shard_stats(rt, 0, NULL), JDB_EINVAL);
  assert_int_equal(rt_shard_stats(NULL, 0, &st), JDB_EINVAL);
  cpu_set_t set;
  CPU_ZERO(&set);
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  for (uint32_t s = 0; s < 2; s++) {
    st = stats_of(rt, s);
    assert_int_equal(st.calls, 0);
    assert_int_equal(st.rings, 0);
    assert_true(st.cpu >= 0);                       /* pinning works here */
    assert_true(CPU_ISSET(st.cpu, &set));
  }
  if (CPU_COUNT(&set) >= 2)
    assert_int_not_equal(stats_of(rt, 0).cpu, stats_of(rt, 1).cpu);

  for (int i = 0; i < 100; i++)
    assert_int_equal(rt_call(rt, 1, fn_self_shard, NULL), 1);
  st = stats_of(rt, 1);
  assert_int_equal(st.calls, 100);
  assert_int_equal(st.rings, 1);
  assert_true(st.loops >= 100);
  assert_int_equal(stats_of(rt, 0).calls, 0);
  assert_int_equal(stats_of(rt, 0).rings, 0);
  /* An idle shard sleeps; a call then has to wake it (unless it happened to be awake: its
     safety-net timeout, so try a few times). */
  struct rt_shard_stats a, b;
  int woke = 0;
  for (int i = 0; i < 10 && !woke; i++) {
    sleep_ms(30);
    a = stats_of(rt, 1);
    assert_true(a.sleeps >= 1);
    assert_int_equal(rt_call(rt, 1, fn_self_shard, NULL), 1);
    b = stats_of(rt, 1);
    woke = b.wakeups_sent > a.wakeups_sent;
    assert_int_equal(b.calls, 101 + (uint64_t)i);
  }
  assert_true(woke);
  assert_int_equal(rt_close(rt), JDB_OK);

  /* Unpinned. */
  rt = open_ok(p, 2);
  assert_int_equal(stats_of(rt, 0).cpu, -1);
  assert_int_equal(rt_close(rt), JDB_OK);
  tutil_rmrf(p);
}

static int frames_fn(struct tab *tab, void *arg)
{
  struct tab_io_stats io;
  int rc = tab_io_stats_get(tab, &io);
  ((uint64_t *)arg)[rt_self_shard()] = io.cache_frames;
  return rc;
}

/* cache_frames_total is divided by the shard count the MANIFEST decides, not the one asked. */
static void test_cache_division(void **state)
{
  (void)state;
  char p[4096];
  db_path(p, sizeof p, "rt_cache");
  struct rt *rt = open_ok(p, 2);
  assert_int_equal(rt_close(rt), JDB_OK);
  struct rt_opts o = opts_make(4);
  o.cache_frames_total = 3000;
  rt = NULL;
  assert_int_equal(rt_open(p, &o, &rt), JDB_OK);
  uint64_t frames[2] = {0, 0};
  for (uint32_t i = 0; i < 2; i++)
    assert_int_equal(rt_call(rt, i, frames_fn, frames), JDB_OK);
  assert_int_equal(frames[0], 1500);
  assert_int_equal(frames[1], 1500);
  assert_int_equal(rt_close(rt), JDB_OK);
  o.cache_frames_total = 10;          /* below the floor: 64 each */
  assert_int_equal(rt_open(p, &o, &rt), JDB_OK);
  assert_int_equal(rt_call(rt, 1, frames_fn, frames), JDB_OK);
  assert_int_equal(frames[1], 64);
  assert_int_equal(rt_close(rt), JDB_OK);
  tutil_rmrf(p);
}

int main(int argc, char **argv)
{
  tutil_init();
  g_backend = tutil_backend_arg(argc, argv, g_backend);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_open_create_reopen),
    cmocka_unit_test(test_notfound),
    cmocka_unit_test(test_cache_division),
    cmocka_unit_test(test_busy),
    cmocka_unit_test(test_manifest_damage),
    cmocka_unit_test(test_calls_route),
    cmocka_unit_test(test_io_calls),
    cmocka_unit_test(test_many_threads),
    cmocka_unit_test(test_thread_exit_rings),
    cmocka_unit_test(test_close_race),
    cmocka_unit_test(test_nested),
    cmocka_unit_test(test_stats),
  };
  char name[64];
  snprintf(name, sizeof name, "runtime_%s", g_backend);
  return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
