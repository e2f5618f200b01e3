/*
 * clock.c - the commit-time clock, which tests can pin to make time travel deterministic.
 */
#include "clock.h"

#include <stdatomic.h>

static atomic_uint_fast64_t clock_override;

uint64_t clock_commit_sec(void)
{
  uint64_t o = atomic_load_explicit(&clock_override, memory_order_relaxed);
  return o ? o : clock_now_sec();
}

void clock_commit_sec_override(uint64_t sec)
{
  atomic_store_explicit(&clock_override, sec, memory_order_relaxed);
}
