/*
 * bench.h - shared pieces of jdb_bench: the run environment and the one-line-per-case report.
 */
#ifndef JDB_BENCH_H
#define JDB_BENCH_H

#include <stddef.h>
#include <stdint.h>

struct bench_env {
  const char *dir;       /* scratch directory (created if missing) */
  double secs;           /* target seconds per case */
  int quick;             /* smaller files, shorter cases (make demo) */
  uint64_t seed;
  const char *filter;    /* run only cases whose name contains this, or NULL */
  int keep;              /* leave data files behind (to rerun or to compare with fio) */
};

int bench_want(const struct bench_env *env, const char *case_name);
/* Print the table header once (columns of bench_row). */
void bench_table_header(void);
/* One case: ops done in secs, bytes moved (0 if not meaningful), latencies (ns, may be NULL):
   sorted in place to report p50 / p99. */
void bench_row(const char *name, uint64_t ops, double secs, uint64_t bytes, uint64_t *lat_ns,
               size_t nlat);
void bench_note(const char *fmt, ...);
uint64_t bench_now_ns(void);
/* qsort comparator of doubles, ascending */
int bench_cmp_double(const void *a, const void *b);
/* splitmix64: the benches' pseudo-random sequence (state advanced in place). */
static inline uint64_t bench_rand(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* Remove dir and the files in it (one level; missing is fine). */
void bench_rmdir(const char *dir);

int bench_io(const struct bench_env *env);
/* The device's sequential write bandwidth, the figure the log's append rate is held against
   (fio --rw=write --bs=1M --iodepth=4 --direct=1): 1 MiB O_DIRECT writes, 4 in flight, through
   io_uring, around the file at path (laid out first, untimed, to size bytes) for secs seconds,
   then one fdatasync. MB/s in *mbs. 0 = ok. */
int bench_io_seqwrite_mbs(const char *path, uint64_t size, double secs, double *mbs);
int bench_cksum(const struct bench_env *env);
int bench_pages(const struct bench_env *env);
int bench_log(const struct bench_env *env);
int bench_btree(const struct bench_env *env);
void bench_cksum_run(double seconds_per_case,
                     void (*report)(const char *name, double ns_per_op, double bytes_per_sec));

#endif
