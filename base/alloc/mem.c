/*
 * mem.c - the heap hooks and the per-thread recycler of 4 KiB-aligned I/O buffers.
 *
 * Role: every allocation JDB makes goes through mem_malloc & co (so a host or a test can route or
 * fail them), and O_DIRECT buffers come from mem_buf_get, which keeps freed buffers per thread by
 * size class so the hot path does not call the allocator. The arena lives in mem_arena.c.
 *
 * Size classes: class i holds buffers of exactly MEM_ALIGN << i bytes, i = 0 .. MEM_BUF_NCLASS-1
 * (4 KiB .. 1 MiB). A request of n bytes is served by the smallest class >= n (n = 0 counts as
 * 1); above MEM_BUF_CLASS_MAX it goes straight to the aligned allocator rounded up to MEM_ALIGN
 * and is freed again on put, never cached.
 *
 * Per-thread cache (one struct mem_buf_cache in thread-local storage):
 *   head[i]      singly-linked free list of class i, the link stored in the buffer's first word;
 *   cached_bytes sum of the sizes of all buffers on the lists;
 *   stats        gets/puts/hits/misses of this thread (a large buffer counts as a miss).
 *
 * Invariants:
 *  - cached_bytes == sum over i of count[i] * (MEM_ALIGN << i), and cached_bytes never exceeds
 *    the limit that was in force at the put that cached a buffer (a lower limit set later trims
 *    the caller's cache at once and other threads' caches as they next put).
 *  - Every cached buffer came from the aligned hook (or libc) and is released through the
 *    matching free: hooks must not change while buffers are cached (mem.h says hooks are not to
 *    change while JDB runs; tests drain first).
 *  - A buffer has no owner thread: whichever thread puts it caches it (they are plain aligned
 *    heap blocks).
 *  - Under ASan a cached buffer is poisoned except its link word, so use after put is reported.
 *
 * Cache lifecycle per thread:
 *   UNREGISTERED --first get/put (mem_buf_cache_self)--> REGISTERED (pthread key value set)
 *   REGISTERED --thread exit (mem_buf_cache_thread_exit, the key destructor)--> drained
 * A put from another key destructor after that registers again, and glibc runs the destructor
 * another round, so nothing is lost. The main thread's cache is not drained at exit(); its
 * buffers stay reachable from TLS (LeakSanitizer scans it) unless mem_buf_cache_drain is called.
 */
#include "mem.h"

#include "err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif

#ifdef MEM_ASAN
#include <sanitizer/asan_interface.h>
#define MEM_POISON(p, n)   __asan_poison_memory_region((p), (n))
#define MEM_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define MEM_POISON(p, n)   ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---------------------------------------------------------------------------------------------
 * Heap hooks
 * ------------------------------------------------------------------------------------------- */

static struct mem_hooks mem_hooks_cur;   /* members NULL = libc */

void mem_hooks_set(const struct mem_hooks *h)
{
  if (h)
    mem_hooks_cur = *h;
  else
    memset(&mem_hooks_cur, 0, sizeof mem_hooks_cur);
}

void *mem_malloc(size_t n)
{
  return mem_hooks_cur.malloc_fn ? mem_hooks_cur.malloc_fn(n) : malloc(n);
}

void *mem_calloc(size_t count, size_t size)
{
  size_t n;
  if (__builtin_mul_overflow(count, size, &n))
    return NULL;
  if (!mem_hooks_cur.malloc_fn)
    return calloc(count, size);
  void *p = mem_hooks_cur.malloc_fn(n);
  if (p)
    memset(p, 0, n);
  return p;
}

void *mem_realloc(void *p, size_t n)
{
  return mem_hooks_cur.realloc_fn ? mem_hooks_cur.realloc_fn(p, n) : realloc(p, n);
}

void mem_free(void *p)
{
  if (!p)
    return;
  if (mem_hooks_cur.free_fn)
    mem_hooks_cur.free_fn(p);
  else
    free(p);
}

/* n is a multiple of align; align a power of two >= sizeof(void *). */
static void *mem_aligned_alloc(size_t align, size_t n)
{
  if (mem_hooks_cur.aligned_fn)
    return mem_hooks_cur.aligned_fn(align, n);
  void *p = NULL;
  return posix_memalign(&p, align, n) == 0 ? p : NULL;
}

static void mem_aligned_free(void *p)
{
  if (mem_hooks_cur.aligned_free_fn)
    mem_hooks_cur.aligned_free_fn(p);
  else
    free(p);
}

/* ---------------------------------------------------------------------------------------------
 * Buffer recycler
 * ------------------------------------------------------------------------------------------- */

#define MEM_BUF_NCLASS     9u             /* 4 KiB << 0 .. 4 KiB << 8 = 1 MiB */
#define MEM_BUF_LIMIT_DEF  ((size_t)8 << 20)

_Static_assert((MEM_ALIGN << (MEM_BUF_NCLASS - 1)) == MEM_BUF_CLASS_MAX,
               "size classes must end at MEM_BUF_CLASS_MAX");
_Static_assert((MEM_ALIGN & (MEM_ALIGN - 1)) == 0, "MEM_ALIGN must be a power of two");

struct mem_buf_free {
  struct mem_buf_free *next;
};

struct mem_buf_cache {
  struct mem_buf_free *head[MEM_BUF_NCLASS];
  uint32_t count[MEM_BUF_NCLASS];
  size_t cached_bytes;
  uint64_t gets, puts, hits, misses;
  bool registered;                  /* pthread key value set, destructor will run */
};

static _Thread_local struct mem_buf_cache mem_buf_tls;
static _Atomic size_t mem_buf_limit_bytes = MEM_BUF_LIMIT_DEF;
static pthread_key_t mem_buf_key;
static pthread_once_t mem_buf_key_once = PTHREAD_ONCE_INIT;
static bool mem_buf_key_ok;

static void mem_buf_cache_free_all(struct mem_buf_cache *c, size_t keep_bytes);

static void mem_buf_cache_thread_exit(void *arg)
{
  struct mem_buf_cache *c = arg;
  mem_buf_cache_free_all(c, 0);
  c->registered = false;
}

static void mem_buf_key_create(void)
{
  /* Without the key the cache still works; it just is not drained at thread exit. */
  mem_buf_key_ok = pthread_key_create(&mem_buf_key, mem_buf_cache_thread_exit) == 0;
}

static struct mem_buf_cache *mem_buf_cache_self(void)
{
  struct mem_buf_cache *c = &mem_buf_tls;
  if (__builtin_expect(!c->registered, 0)) {
    pthread_once(&mem_buf_key_once, mem_buf_key_create);
    if (mem_buf_key_ok && pthread_setspecific(mem_buf_key, c) == 0)
      c->registered = true;
  }
  return c;
}

/* Class index for n bytes (n <= MEM_BUF_CLASS_MAX): smallest i with MEM_ALIGN << i >= n. */
static unsigned mem_buf_class(size_t n)
{
  if (n <= MEM_ALIGN)
    return 0;
  size_t pages = (n + MEM_ALIGN - 1) / MEM_ALIGN;            /* >= 2 */
  unsigned i = (unsigned)(64 - __builtin_clzll((unsigned long long)(pages - 1)));
  JDB_ASSERT(i < MEM_BUF_NCLASS);
  return i;
}

static size_t mem_buf_large_bytes(size_t n)
{
  return (n + MEM_ALIGN - 1) & ~(size_t)(MEM_ALIGN - 1);
}

void *mem_buf_get(size_t n)
{
  struct mem_buf_cache *c = mem_buf_cache_self();
  c->gets++;
  if (n > MEM_BUF_CLASS_MAX) {
    c->misses++;
    if (n > (size_t)PTRDIFF_MAX)   /* no allocator can serve it; do not even ask */
      return NULL;
    return mem_aligned_alloc(MEM_ALIGN, mem_buf_large_bytes(n));
  }
  unsigned i = mem_buf_class(n);
  size_t bytes = (size_t)MEM_ALIGN << i;
  struct mem_buf_free *b = c->head[i];
  if (b) {
    MEM_UNPOISON(b, bytes);
    c->head[i] = b->next;
    c->count[i]--;
    JDB_ASSERT(c->cached_bytes >= bytes);
    c->cached_bytes -= bytes;
    c->hits++;
    return b;
  }
  c->misses++;
  return mem_aligned_alloc(MEM_ALIGN, bytes);
}

void mem_buf_put(void *p, size_t n)
{
  if (!p)
    return;
  JDB_ASSERT(((uintptr_t)p & (MEM_ALIGN - 1)) == 0);
  struct mem_buf_cache *c = mem_buf_cache_self();
  c->puts++;
  if (n > MEM_BUF_CLASS_MAX) {
    mem_aligned_free(p);
    return;
  }
  unsigned i = mem_buf_class(n);
  size_t bytes = (size_t)MEM_ALIGN << i;
  size_t limit = atomic_load_explicit(&mem_buf_limit_bytes, memory_order_relaxed);
  if (c->cached_bytes + bytes > limit) {
    mem_aligned_free(p);
    return;
  }
  struct mem_buf_free *b = p;
  b->next = c->head[i];
  c->head[i] = b;
  c->count[i]++;
  c->cached_bytes += bytes;
  MEM_POISON((uint8_t *)p + sizeof *b, bytes - sizeof *b);
}

/* Free cached buffers, largest classes first, until at most keep_bytes remain. */
static void mem_buf_cache_free_all(struct mem_buf_cache *c, size_t keep_bytes)
{
  for (unsigned i = MEM_BUF_NCLASS; i-- > 0 && c->cached_bytes > keep_bytes;) {
    size_t bytes = (size_t)MEM_ALIGN << i;
    while (c->head[i] && c->cached_bytes > keep_bytes) {
      struct mem_buf_free *b = c->head[i];
      c->head[i] = b->next;
      c->count[i]--;
      c->cached_bytes -= bytes;
      MEM_UNPOISON(b, bytes);
      mem_aligned_free(b);
    }
  }
  JDB_ASSERT(c->cached_bytes <= keep_bytes);
}

void mem_buf_cache_limit_set(size_t bytes)
{
  atomic_store_explicit(&mem_buf_limit_bytes, bytes, memory_order_relaxed);
  mem_buf_cache_free_all(&mem_buf_tls, bytes);
}

void mem_buf_cache_drain(void)
{
  mem_buf_cache_free_all(&mem_buf_tls, 0);
  for (unsigned i = 0; i < MEM_BUF_NCLASS; i++) {
    JDB_ASSERT(mem_buf_tls.head[i] == NULL);
    JDB_ASSERT(mem_buf_tls.count[i] == 0);
  }
}

void mem_buf_stats_get(struct mem_buf_stats *out)
{
  const struct mem_buf_cache *c = &mem_buf_tls;
  out->gets = c->gets;
  out->puts = c->puts;
  out->hits = c->hits;
  out->misses = c->misses;
  out->cached_bytes = c->cached_bytes;
}
