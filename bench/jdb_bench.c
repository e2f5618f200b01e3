/*
 * jdb_bench.c - the benchmark driver: `jdb_bench <workload|all> [--dir D] [--secs S] [--quick]
 * [--filter F] [--seed N]`. Prints a header describing the machine and build, then one line per
 * case. Workloads: io (base/fs backends), cksum (checksum candidates), pages (buffer manager),
 * log (the shard log), btree (the B+ tree, next to LMDB when built with it), memtable (the
 * shard's memtable, in memory), tablet (the whole tablet, next to RocksDB and LMDB when built
 * with them), api (the public API over the runtime's shard threads, next to RocksDB and LMDB).
 */
#include "bench.h"

#include "jdb.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "jdb_git_sha.h"   /* JDB_GIT_SHA, written at build time (cmake/git_sha.cmake) */
#ifndef JDB_BUILD_FLAGS
#define JDB_BUILD_FLAGS ""
#endif

static const struct bench_env *bench_cur;

/* bench_memtable.c (declared here: bench.h belongs to the other workloads' owners) */
int bench_memtable(const struct bench_env *env);
/* bench_tablet.c (declared here for the same reason) */
int bench_tablet(const struct bench_env *env);
/* bench_api.c (declared here for the same reason) */
int bench_api(const struct bench_env *env);

uint64_t bench_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_rmdir(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  char p[4200];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

int bench_want(const struct bench_env *env, const char *case_name)
{
  return !env->filter || strstr(case_name, env->filter) != NULL;
}

void bench_table_header(void)
{
  printf("%-30s %11s %12s %10s %10s %10s %10s\n", "case", "ops", "ops/s", "ns/op", "p50 us",
         "p99 us", "MB/s");
}

int bench_cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int bench_cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void bench_row(const char *name, uint64_t ops, double secs, uint64_t bytes, uint64_t *lat_ns,
               size_t nlat)
{
  char p50[32] = "-", p99[32] = "-", mbs[32] = "-";
  if (lat_ns && nlat) {
    qsort(lat_ns, nlat, sizeof *lat_ns, bench_cmp_u64);
    snprintf(p50, sizeof p50, "%.1f", (double)lat_ns[nlat / 2] / 1e3);
    snprintf(p99, sizeof p99, "%.1f", (double)lat_ns[(size_t)((double)nlat * 0.99)] / 1e3);
  }
  if (bytes)
    snprintf(mbs, sizeof mbs, "%.1f", (double)bytes / secs / 1e6);
  printf("%-30s %11llu %12.0f %10.1f %10s %10s %10s\n", name, (unsigned long long)ops,
         (double)ops / secs, secs * 1e9 / (double)(ops ? ops : 1), p50, p99, mbs);
  fflush(stdout);
}

void bench_note(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("  # ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

static void bench_header(const struct bench_env *env)
{
  struct utsname u;
  uname(&u);
  char cpu[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "model name", 10) == 0) {
        char *c = strchr(line, ':');
        if (c) {
          snprintf(cpu, sizeof cpu, "%s", c + 2);
          cpu[strcspn(cpu, "\n")] = 0;
        }
        break;
      }
    fclose(f);
  }
  char dev[256] = "unknown";
  struct stat st;
  if (stat(env->dir, &st) == 0)
    snprintf(dev, sizeof dev, "dev %u:%u", (unsigned)(st.st_dev >> 8) & 0xfff,
             (unsigned)(st.st_dev & 0xff));
  printf("jdb_bench %s (git %s)  kernel %s %s  cpu %s\n", jdb_version(), JDB_GIT_SHA, u.sysname,
         u.release, cpu);
  printf("dir %s (%s)  build %s  secs/case %.1f%s  seed %llu\n\n", env->dir, dev,
         JDB_BUILD_FLAGS, env->secs, env->quick ? " (quick)" : "",
         (unsigned long long)env->seed);
}

static void bench_usage(void)
{
  fprintf(stderr,
          "usage: jdb_bench <io|cksum|pages|log|btree|memtable|tablet|api|all> [--dir DIR] "
          "[--secs S] "
          "[--quick] [--filter F] [--seed N] [--keep]\n");
}

int main(int argc, char **argv)
{
  struct bench_env env = {.dir = "jdb-bench-data", .secs = 0, .seed = 42};
  const char *what = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--dir") && i + 1 < argc) env.dir = argv[++i];
    else if (!strcmp(a, "--secs") && i + 1 < argc) env.secs = atof(argv[++i]);
    else if (!strcmp(a, "--quick")) env.quick = 1;
    else if (!strcmp(a, "--keep")) env.keep = 1;
    else if (!strcmp(a, "--filter") && i + 1 < argc) env.filter = argv[++i];
    else if (!strcmp(a, "--seed") && i + 1 < argc) env.seed = strtoull(argv[++i], NULL, 0);
    else if (a[0] != '-' && !what) what = a;
    else { bench_usage(); return 2; }
  }
  if (!what) { bench_usage(); return 2; }
  if (env.secs == 0)
    env.secs = env.quick ? 1.0 : 3.0;
  if (env.secs < 0) { bench_usage(); return 2; }
  mkdir(env.dir, 0755);
  bench_cur = &env;
  bench_header(&env);
  int rc = 0, any = 0;
  if (!strcmp(what, "io") || !strcmp(what, "all")) { rc |= bench_io(&env); any = 1; }
  if (!strcmp(what, "cksum") || !strcmp(what, "all")) { rc |= bench_cksum(&env); any = 1; }
  if (!strcmp(what, "pages") || !strcmp(what, "all")) { rc |= bench_pages(&env); any = 1; }
  if (!strcmp(what, "log") || !strcmp(what, "all")) { rc |= bench_log(&env); any = 1; }
  if (!strcmp(what, "btree") || !strcmp(what, "all")) { rc |= bench_btree(&env); any = 1; }
  if (!strcmp(what, "memtable") || !strcmp(what, "all")) { rc |= bench_memtable(&env); any = 1; }
  if (!strcmp(what, "tablet") || !strcmp(what, "all")) { rc |= bench_tablet(&env); any = 1; }
  if (!strcmp(what, "api") || !strcmp(what, "all")) { rc |= bench_api(&env); any = 1; }
  if (!any) { bench_usage(); return 2; }
  return rc ? 1 : 0;
}

static void bench_cksum_report(const char *name, double ns_per_op, double bytes_per_sec)
{
  printf("%-30s %11s %12.0f %10.1f %10s %10s %10.1f\n", name, "-", 1e9 / ns_per_op, ns_per_op,
         "-", "-", bytes_per_sec / 1e6);
}

int bench_cksum(const struct bench_env *env)
{
  bench_table_header();
  bench_cksum_run(env->quick ? 0.2 : 0.5, bench_cksum_report);
  printf("\n");
  return 0;
}
