/*
 * clock.h - time sources: wall-clock seconds (commit times) and a monotonic nanosecond clock
 * (latencies, timeouts).
 */
#ifndef JDB_CLOCK_H
#define JDB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds since the Unix epoch (CLOCK_REALTIME). */
static inline uint64_t clock_now_sec(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec;
}

/* Monotonic nanoseconds (CLOCK_MONOTONIC); only differences mean anything. */
static inline uint64_t clock_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Seconds clock that tests can pin: returns the override when one is set (0 = none). */
uint64_t clock_commit_sec(void);
void clock_commit_sec_override(uint64_t sec);

#endif
