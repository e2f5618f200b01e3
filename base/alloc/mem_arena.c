/*
 * mem_arena.c - one big anonymous mapping carved into MEM_ALIGN-aligned pieces by a bump pointer.
 *
 * Role: long-lived buffers sized at open (page frames, WAL buffers) come from here, so they sit
 * on 2 MiB pages when the system offers them and cost one TLB entry per 2 MiB instead of 512.
 *
 * Backing, chosen at mem_arena_init (logged at INFO):
 *   MEM_ARENA_HUGETLB  flags has MEM_ARENA_HUGE_TRY and mmap(MAP_HUGETLB | MAP_HUGE_2MB)
 *                      succeeded: the kernel reserved the huge pages, so touching them cannot
 *                      SIGBUS later;
 *   MEM_ARENA_THP      otherwise an ordinary mapping, trimmed to start on a 2 MiB boundary, on
 *                      which madvise(MADV_HUGEPAGE) succeeded (transparent huge pages, best
 *                      effort by the kernel);
 *   MEM_ARENA_PLAIN    the same mapping when madvise failed (THP off or unsupported).
 *
 * Invariants: base is 2 MiB-aligned and size a multiple of 2 MiB (at least 2 MiB, so a request of
 * 0 bytes still gets one huge page); used is a multiple of MEM_ALIGN and used <= size; pieces are
 * handed out in increasing address order and never overlap. A zeroed struct (or one after
 * mem_arena_deinit) holds nothing and may be deinit'ed again.
 *
 * States: (zeroed) --mem_arena_init--> MAPPED --mem_arena_alloc...--> MAPPED (used grows, until
 * an alloc that does not fit returns NULL) --mem_arena_deinit--> (zeroed).
 */
#include "mem.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define MEM_ARENA_HUGE_BYTES ((size_t)2 << 20)

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

static const char *mem_arena_backing_name(int backing)
{
  switch (backing) {
  case MEM_ARENA_HUGETLB: return "hugetlb 2 MiB pages";
  case MEM_ARENA_THP:     return "transparent huge pages (madvise)";
  default:                return "plain pages";
  }
}

/* An anonymous read-write mapping of `size` bytes starting on a 2 MiB boundary, or NULL. */
static void *mem_arena_map_aligned(size_t size)
{
  size_t over = size + MEM_ARENA_HUGE_BYTES;
  uint8_t *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return NULL;
  uintptr_t mask = (uintptr_t)MEM_ARENA_HUGE_BYTES - 1;
  uintptr_t start = ((uintptr_t)raw + mask) & ~mask;
  size_t head = start - (uintptr_t)raw;
  size_t tail = over - head - size;
  /* Trimming cannot fail for a range we just mapped; if it did we would only waste address
     space, so the results are not checked. */
  if (head)
    (void)munmap(raw, head);
  if (tail)
    (void)munmap((uint8_t *)start + size, tail);
  return (void *)start;
}

int mem_arena_init(struct mem_arena *a, size_t bytes, unsigned flags)
{
  memset(a, 0, sizeof *a);
  if (bytes > SIZE_MAX / 2)
    return JDB_ENOMEM;
  size_t size = (bytes + MEM_ARENA_HUGE_BYTES - 1) & ~(MEM_ARENA_HUGE_BYTES - 1);
  if (size == 0)
    size = MEM_ARENA_HUGE_BYTES;

  void *p = MAP_FAILED;
  int backing = MEM_ARENA_PLAIN;
  int huge_errno = 0;
  if (flags & MEM_ARENA_HUGE_TRY) {
    /* Trying the mapping is the authoritative test for "the system has huge pages": it fails
       with ENOMEM when the pool is empty (HugePages_Free 0) or too small. */
    p = mmap(NULL, size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    if (p != MAP_FAILED)
      backing = MEM_ARENA_HUGETLB;
    else
      huge_errno = errno;
  }
  if (p == MAP_FAILED) {
    p = mem_arena_map_aligned(size);
    if (!p) {
      LOG_WARN("mem_arena: mmap of %zu bytes failed (errno %d)", size, errno);
      return JDB_ENOMEM;
    }
    backing = madvise(p, size, MADV_HUGEPAGE) == 0 ? MEM_ARENA_THP : MEM_ARENA_PLAIN;
  }

  a->base = p;
  a->size = size;
  a->used = 0;
  a->backing = backing;
  if (huge_errno)
    LOG_INFO("mem_arena: %zu bytes backed by %s (MAP_HUGETLB failed, errno %d)", size,
             mem_arena_backing_name(backing), huge_errno);
  else
    LOG_INFO("mem_arena: %zu bytes backed by %s", size, mem_arena_backing_name(backing));
  return JDB_OK;
}

void *mem_arena_alloc(struct mem_arena *a, size_t n)
{
  JDB_ASSERT(a->used <= a->size);
  if (n == 0)
    n = 1;   /* distinct pieces even for empty requests */
  if (n > a->size - a->used)
    return NULL;
  size_t take = (n + MEM_ALIGN - 1) & ~(size_t)(MEM_ALIGN - 1);
  if (take > a->size - a->used)
    return NULL;
  void *p = a->base + a->used;
  a->used += take;
  return p;
}

void mem_arena_deinit(struct mem_arena *a)
{
  if (a->base) {
    JDB_ASSERT(a->size % MEM_ARENA_HUGE_BYTES == 0);
    int rc = munmap(a->base, a->size);
    JDB_ASSERT(rc == 0);   /* only fails on a bad range: our bookkeeping was corrupted */
  }
  memset(a, 0, sizeof *a);
}
