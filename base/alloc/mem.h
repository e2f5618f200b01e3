/*
 * mem.h - all memory the library takes goes through here.
 *
 * Three kinds:
 *  - general heap (mem_malloc / mem_calloc / mem_realloc / mem_free): hookable, so a host program
 *    or a test can route or fail allocations (CRoaring's memory.h does the same);
 *  - 4 KiB-aligned I/O buffers (mem_buf_*), which O_DIRECT requires, recycled per thread by size
 *    class so the hot path does not call the allocator;
 *  - an arena (mem_arena_*): one big mapping, backed by 2 MiB huge pages when the system has them
 *    (MAP_HUGETLB, else madvise(MADV_HUGEPAGE), else plain pages), carved into aligned buffers.
 */
#ifndef JDB_MEM_H
#define JDB_MEM_H

#include <stddef.h>
#include <stdint.h>

#define MEM_ALIGN 4096u

/* Heap hooks. Any member NULL means "use libc". Not thread-safe to change while JDB runs. */
struct mem_hooks {
  void *(*malloc_fn)(size_t n);
  void *(*realloc_fn)(void *p, size_t n);
  void (*free_fn)(void *p);
  /* aligned: size is a multiple of align; align is a power of two >= sizeof(void *) */
  void *(*aligned_fn)(size_t align, size_t n);
  void (*aligned_free_fn)(void *p);
};
void mem_hooks_set(const struct mem_hooks *h);   /* NULL restores libc */

void *mem_malloc(size_t n);
void *mem_calloc(size_t count, size_t size);     /* overflow-checked */
void *mem_realloc(void *p, size_t n);
void mem_free(void *p);

/* Aligned buffer of at least n bytes (n rounded up to MEM_ALIGN), start aligned to MEM_ALIGN.
   Buffers up to MEM_BUF_CLASS_MAX come from the calling thread's recycler (size classes 4 KiB,
   8 KiB, ... 1 MiB); larger ones straight from the aligned allocator. NULL on failure.
   mem_buf_put must be given the same n (any thread may put; it goes to that thread's cache). */
#define MEM_BUF_CLASS_MAX (1u << 20)
void *mem_buf_get(size_t n);
void mem_buf_put(void *p, size_t n);
/* Limit the bytes each thread's recycler keeps (default 8 MiB); beyond it buffers are freed. */
void mem_buf_cache_limit_set(size_t bytes);
/* Free everything cached by the calling thread (also runs at thread exit). */
void mem_buf_cache_drain(void);
struct mem_buf_stats {
  uint64_t gets, puts, hits, misses;   /* this thread */
  size_t cached_bytes;
};
void mem_buf_stats_get(struct mem_buf_stats *out);

/* Arena: one mapping of `bytes` (rounded up to 2 MiB), carved into MEM_ALIGN-aligned pieces by
   a bump pointer; pieces are released all at once by mem_arena_deinit. */
enum { MEM_ARENA_HUGE_TRY = 1 };   /* flags: try 2 MiB huge pages first */
enum { MEM_ARENA_PLAIN = 0, MEM_ARENA_HUGETLB = 1, MEM_ARENA_THP = 2 };  /* what backs it */
struct mem_arena {
  uint8_t *base;
  size_t size;
  size_t used;
  int backing;     /* MEM_ARENA_* */
};
int mem_arena_init(struct mem_arena *a, size_t bytes, unsigned flags);   /* JDB_OK / JDB_ENOMEM */
void *mem_arena_alloc(struct mem_arena *a, size_t n);  /* aligned to MEM_ALIGN; NULL when full */
void mem_arena_deinit(struct mem_arena *a);

/* Prefault [addr, addr + len) of an anonymous mapping for writing on a helper thread
   (madvise MADV_POPULATE_WRITE), so that the caller's first writes there take no page faults
   (mem_prefault.c). The request struct is the caller's, zeroed before first use; one range at
   a time per struct. mem_prefault_start: JDB_OK, JDB_EBUSY (this request is still queued or
   running), JDB_ENOTSUP (the kernel lacks MADV_POPULATE_WRITE), JDB_ENOMEM (no thread).
   mem_prefault_cancel: on return the request is idle (dequeued, or waited for): call it before
   unmapping the range. Thread-safe across requests; one request is used by one thread. */
enum { MEM_PREFAULT_IDLE = 0, MEM_PREFAULT_QUEUED = 1, MEM_PREFAULT_RUNNING = 2 };
struct mem_prefault {
  _Atomic int state;
  unsigned gen;             /* the process generation it was started in (fork) */
  void *addr;
  size_t len;
  struct mem_prefault *next;
};
int mem_prefault_start(struct mem_prefault *r, void *addr, size_t len);
int mem_prefault_busy(const struct mem_prefault *r);
void mem_prefault_cancel(struct mem_prefault *r);

#endif
