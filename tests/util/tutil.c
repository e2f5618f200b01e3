/*
 * tutil.c - see tutil.h.
 */
#include "tutil.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef JDB_TEST_DIR
#define JDB_TEST_DIR "/tmp/jdb-test"
#endif

uint64_t tutil_seed(void)
{
  static uint64_t seed;
  static int have;
  if (!have) {
    const char *e = getenv("JDB_TEST_SEED");
    if (e && *e) {
      seed = strtoull(e, NULL, 0);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    have = 1;
    fprintf(stderr, "[ seed ] JDB_TEST_SEED=%llu\n", (unsigned long long)seed);
  }
  return seed;
}

static uint64_t tutil_splitmix(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void tutil_rng_init(struct tutil_rng *r, uint64_t seed)
{
  for (int i = 0; i < 4; i++)
    r->s[i] = tutil_splitmix(&seed);
}

static inline uint64_t tutil_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tutil_rng_next(struct tutil_rng *r)
{
  uint64_t *s = r->s;
  uint64_t out = tutil_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = tutil_rotl(s[3], 45);
  return out;
}

uint64_t tutil_rng_below(struct tutil_rng *r, uint64_t n)
{
  return n ? tutil_rng_next(r) % n : 0;
}

void tutil_rng_fill(struct tutil_rng *r, void *buf, size_t n)
{
  uint8_t *b = buf;
  while (n >= 8) {
    uint64_t v = tutil_rng_next(r);
    memcpy(b, &v, 8);
    b += 8;
    n -= 8;
  }
  if (n) {
    uint64_t v = tutil_rng_next(r);
    memcpy(b, &v, n);
  }
}

static int tutil_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  remove(p);
  return 0;
}

void tutil_rmrf(const char *path)
{
  nftw(path, tutil_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Every directory tutil_tmpdir made, removed at exit by the process that made it (a forked
   child that exits normally leaves its parent's alone) unless JDB_TEST_KEEP is set: left in
   place, a suite run left ~1 GB under the build directory (test_page alone 16 MB a test). */
static char **tutil_dirs;
static int tutil_ndirs, tutil_capdirs;
static pid_t tutil_dirs_pid;

static void tutil_free_dirs(void)
{
  int rm = getpid() == tutil_dirs_pid && !getenv("JDB_TEST_KEEP");
  for (int i = 0; i < tutil_ndirs; i++) {
    if (rm)
      tutil_rmrf(tutil_dirs[i]);
    free(tutil_dirs[i]);
  }
  free(tutil_dirs);
  tutil_dirs = NULL;
  tutil_ndirs = tutil_capdirs = 0;
}

const char *tutil_tmpdir(const char *name)
{
  static unsigned counter;
  char buf[4096];
  mkdir(JDB_TEST_DIR, 0755);
  snprintf(buf, sizeof buf, "%s/%s-%d-%u", JDB_TEST_DIR, name, (int)getpid(), counter++);
  tutil_rmrf(buf);
  if (mkdir(buf, 0755) != 0) {
    fprintf(stderr, "tutil_tmpdir: mkdir %s: %s\n", buf, strerror(errno));
    abort();
  }
  if (tutil_dirs_pid != getpid()) {   /* first call, or first in a forked child: its own list */
    if (!tutil_dirs_pid)
      atexit(tutil_free_dirs);
    for (int i = 0; i < tutil_ndirs; i++)   /* the parent's: its to remove */
      free(tutil_dirs[i]);
    tutil_dirs_pid = getpid();
    tutil_ndirs = 0;
  }
  char *s = strdup(buf);
  if (!s)
    abort();
  if (tutil_ndirs == tutil_capdirs) {
    int cap = tutil_capdirs ? 2 * tutil_capdirs : 64;
    char **d = realloc(tutil_dirs, (size_t)cap * sizeof *d);
    if (!d)
      abort();
    tutil_dirs = d;
    tutil_capdirs = cap;
  }
  tutil_dirs[tutil_ndirs++] = s;
  return s;
}

int tutil_threads_share_main_mask(const char *prefix)
{
  cpu_set_t main_mask, got;
  if (sched_getaffinity(getpid(), sizeof main_mask, &main_mask) != 0)
    return 0;
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return 0;
  int found = 0, bad = 0;
  struct dirent *de;
  size_t plen = strlen(prefix);
  while ((de = readdir(d))) {
    char path[300], comm[64];
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    int named = fgets(comm, sizeof comm, f) && strncmp(comm, prefix, plen) == 0;
    fclose(f);
    if (!named || sched_getaffinity((pid_t)atoi(de->d_name), sizeof got, &got) != 0)
      continue;
    found = 1;
    bad |= !CPU_EQUAL(&got, &main_mask);
  }
  closedir(d);
  return bad ? -1 : found;
}

char *tutil_path(char *buf, size_t cap, const char *dir, const char *file)
{
  snprintf(buf, cap, "%s/%s", dir, file);
  return buf;
}

void *tutil_abuf(size_t n)
{
  void *p = NULL;
  assert_int_equal(posix_memalign(&p, 4096, n ? n : 1), 0);
  memset(p, 0, n);
  return p;
}

void tutil_pat_fill(void *buf, size_t len, uint64_t tag)
{
  struct tutil_rng r;
  tutil_rng_init(&r, tag * 0x9e3779b97f4a7c15ull + 1);
  tutil_rng_fill(&r, buf, len);
}

int tutil_pat_check(const void *buf, size_t len, uint64_t tag)
{
  uint8_t *want = malloc(len ? len : 1);
  if (!want)
    return 0;
  tutil_pat_fill(want, len, tag);
  int ok = memcmp(want, buf, len) == 0;
  free(want);
  return ok;
}

void tutil_init(void)
{
  log_quiet_for_tests();
  tutil_seed();
}
