/*
 * bench_cksum.c - the checksum candidates of infra/layout (cksum.c): CRC32C with SSE4.2,
 * portable CRC32C (slice-by-8) and XXH3-64 truncated to 32 bits, on the two sizes the store
 * checksums all day: a 4 KiB page and a 100-byte log record. The result decides what
 * layout_cksum is (the CKSUM_IMPL switch in cksum.c).
 *
 * Method: each case runs 5 repetitions of about seconds_per_case / 5 each; a repetition times
 * batches of calls on the monotonic clock until its share of time is used, and the case reports
 * the median repetition. The buffer holds fixed pseudo-random bytes; every result is folded
 * into an accumulator that ends in a volatile sink, so the calls cannot be dropped, and each
 * call's input depends on the previous result (one byte changes), so none can be hoisted or
 * merged. The figures are thus one checksum at a time, as the store computes them.
 *
 * Expected (one core at ~3 GHz):
 *   crc32c (SSE4.2, 3 streams): ~8 B/cycle on 4 KiB -> ~150-200 ns, ~20 GB/s; ~15 ns for 100 B
 *     (one stream, latency bound: 12 x 3 cycles plus the tail).
 *   crc32c_sw (slice-by-8):     ~0.6-1 B/cycle -> ~1.5-2.5 us per 4 KiB, ~2 GB/s.
 *   xxh3_32 (libxxhash, SSE2):  ~6-8 B/cycle -> ~200 ns per 4 KiB; ~10 ns for 100 B.
 * Measured on the 2-core AMD EPYC dev VM (RelWithDebInfo): 195 / 2150 / 218 ns per 4 KiB,
 * 13.8 / 56 / 10.7 ns per 100 B.
 */
#include "bench.h"

#include "clock.h"
#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_CKSUM_REPS 5

static volatile uint32_t bench_cksum_sink;

/* One repetition: calls fn on buf[0..n) until budget_ns has passed; returns ns per call. */
static double bench_cksum_rep(uint32_t (*fn)(const void *, size_t), uint8_t *buf, size_t n,
                              uint64_t budget_ns, uint32_t *acc)
{
  uint64_t calls = 0;
  uint64_t batch = 64;
  uint32_t a = *acc;
  uint64_t t0 = clock_mono_ns();
  uint64_t t = t0;
  do {
    for (uint64_t i = 0; i < batch; i++) {
      buf[i & 63] ^= (uint8_t)a;   /* data depends on the previous result: no reuse */
      a += fn(buf, n);
    }
    calls += batch;
    t = clock_mono_ns();
    if (batch < (1u << 20))
      batch *= 2;
  } while (t - t0 < budget_ns);
  *acc = a;
  return (double)(t - t0) / (double)calls;
}

void bench_cksum_run(double seconds_per_case,
                     void (*report)(const char *name, double ns_per_op, double bytes_per_sec))
{
  static const struct {
    const char *name;
    uint32_t (*fn)(const void *, size_t);
  } fns[] = {
    {"crc32c", layout_crc32c},
    {"crc32c_sw", layout_crc32c_sw},
    {"xxh3_32", layout_xxh3_32},
  };
  static const struct {
    const char *name;
    size_t n;
  } sizes[] = {
    {"4k", 4096},
    {"100b", 100},
  };

  /* One buffer, 64-byte aligned like a page frame; the 100-byte case uses its start. */
  uint8_t *buf = aligned_alloc(64, 4096);
  if (!buf) {
    fprintf(stderr, "bench_cksum: out of memory\n");
    return;
  }
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < 4096; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    buf[i] = (uint8_t)x;
  }

  uint64_t budget_ns = (uint64_t)(seconds_per_case / BENCH_CKSUM_REPS * 1e9);
  if (budget_ns < 1000000)
    budget_ns = 1000000;
  uint32_t acc = 0;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
      double ns[BENCH_CKSUM_REPS];
      for (int r = 0; r < BENCH_CKSUM_REPS; r++)
        ns[r] = bench_cksum_rep(fns[f].fn, buf, sizes[s].n, budget_ns, &acc);
      qsort(ns, BENCH_CKSUM_REPS, sizeof ns[0], bench_cmp_double);
      double med = ns[BENCH_CKSUM_REPS / 2];
      char name[64];
      snprintf(name, sizeof name, "cksum.%s.%s", fns[f].name, sizes[s].name);
      report(name, med, (double)sizes[s].n * 1e9 / med);
    }
  }
  bench_cksum_sink = acc;
  free(buf);
}
