/*
 * test_alloc.c - mem.h: heap hooks, the per-thread buffer recycler, the arena.
 */
#include "tutil.h"

#include "err.h"
#include "mem.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_MIB ((size_t)1 << 20)
#define TEST_DEFAULT_LIMIT ((size_t)8 << 20)

/* Counting hooks; atomic because the thread-exit test allocates from another thread. */
static atomic_long test_n_malloc, test_n_realloc, test_n_free, test_n_aligned, test_n_aligned_free;

static void *count_malloc(size_t n)
{
  atomic_fetch_add(&test_n_malloc, 1);
  return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
  atomic_fetch_add(&test_n_realloc, 1);
  return realloc(p, n);
}

static void count_free(void *p)
{
  atomic_fetch_add(&test_n_free, 1);
  free(p);
}

static void *count_aligned(size_t align, size_t n)
{
  assert_true((align & (align - 1)) == 0);
  assert_true(align >= sizeof(void *));
  assert_int_equal(n % align, 0);
  atomic_fetch_add(&test_n_aligned, 1);
  void *p = NULL;
  return posix_memalign(&p, align, n) == 0 ? p : NULL;
}

static void count_aligned_free(void *p)
{
  atomic_fetch_add(&test_n_aligned_free, 1);
  free(p);
}

static const struct mem_hooks test_hooks = {
  .malloc_fn = count_malloc,
  .realloc_fn = count_realloc,
  .free_fn = count_free,
  .aligned_fn = count_aligned,
  .aligned_free_fn = count_aligned_free,
};

static void test_counts_reset(void)
{
  atomic_store(&test_n_malloc, 0);
  atomic_store(&test_n_realloc, 0);
  atomic_store(&test_n_free, 0);
  atomic_store(&test_n_aligned, 0);
  atomic_store(&test_n_aligned_free, 0);
}

/* Every test starts and ends with libc hooks, the default limit and an empty cache. */
static int test_setup(void **state)
{
  (void)state;
  mem_buf_cache_drain();
  mem_hooks_set(NULL);
  mem_buf_cache_limit_set(TEST_DEFAULT_LIMIT);
  test_counts_reset();
  return 0;
}

static int test_teardown(void **state)
{
  (void)state;
  mem_buf_cache_drain();
  mem_hooks_set(NULL);
  mem_buf_cache_limit_set(TEST_DEFAULT_LIMIT);
  return 0;
}

static void test_fill(void *p, size_t n, uint8_t v)
{
  memset(p, v, n);
}

/* --------------------------------------------------------------------------------------------- */

static void hooks_are_called_and_restored(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);

  void *p = mem_malloc(100);
  assert_non_null(p);
  p = mem_realloc(p, 1000);
  assert_non_null(p);
  mem_free(p);
  uint8_t *z = mem_calloc(10, 10);
  assert_non_null(z);
  for (int i = 0; i < 100; i++)
    assert_int_equal(z[i], 0);   /* calloc through a malloc hook still zeroes */
  mem_free(z);
  mem_free(NULL);                /* does not reach the hook */
  assert_int_equal(atomic_load(&test_n_malloc), 2);
  assert_int_equal(atomic_load(&test_n_realloc), 1);
  assert_int_equal(atomic_load(&test_n_free), 2);

  /* I/O buffers: a recycler miss and a large buffer both use the aligned hook. */
  void *b = mem_buf_get(4096);
  void *big = mem_buf_get(2 * TEST_MIB);
  assert_non_null(b);
  assert_non_null(big);
  assert_int_equal(atomic_load(&test_n_aligned), 2);
  mem_buf_put(big, 2 * TEST_MIB);
  assert_int_equal(atomic_load(&test_n_aligned_free), 1);
  mem_buf_put(b, 4096);          /* cached, not freed */
  assert_int_equal(atomic_load(&test_n_aligned_free), 1);
  mem_buf_cache_drain();
  assert_int_equal(atomic_load(&test_n_aligned_free), 2);

  /* Restored: nothing reaches the counters any more. */
  mem_hooks_set(NULL);
  test_counts_reset();
  p = mem_malloc(10);
  p = mem_realloc(p, 20);
  mem_free(p);
  mem_free(mem_calloc(2, 2));
  b = mem_buf_get(3 * TEST_MIB);
  mem_buf_put(b, 3 * TEST_MIB);
  assert_int_equal(atomic_load(&test_n_malloc) + atomic_load(&test_n_realloc) +
                       atomic_load(&test_n_free) + atomic_load(&test_n_aligned) +
                       atomic_load(&test_n_aligned_free),
                   0);
}

static void hooks_partial_fall_back_to_libc(void **state)
{
  (void)state;
  struct mem_hooks h = { .malloc_fn = count_malloc };
  mem_hooks_set(&h);
  void *p = mem_malloc(8);
  p = mem_realloc(p, 64);        /* libc realloc of a libc (count_malloc) block */
  mem_free(p);
  void *b = mem_buf_get(5 * TEST_MIB);
  mem_buf_put(b, 5 * TEST_MIB);
  assert_int_equal(atomic_load(&test_n_malloc), 1);
  assert_int_equal(atomic_load(&test_n_realloc), 0);
  assert_int_equal(atomic_load(&test_n_aligned), 0);
}

static void calloc_overflow_returns_null(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);
  assert_null(mem_calloc(SIZE_MAX / 2 + 1, 2));
  assert_null(mem_calloc(2, SIZE_MAX / 2 + 1));
  assert_null(mem_calloc(SIZE_MAX, SIZE_MAX));
  assert_null(mem_calloc((size_t)1 << 33, (size_t)1 << 33));
  assert_int_equal(atomic_load(&test_n_malloc), 0);   /* refused before allocating */
  mem_hooks_set(NULL);
  assert_null(mem_calloc(SIZE_MAX / 3 + 1, 3));
}

static void buf_alignment_many_sizes(void **state)
{
  (void)state;
  struct tutil_rng rng;
  tutil_rng_init(&rng, tutil_seed());
  size_t fixed[] = { 0, 1, 4095, 4096, 4097, 8191, 8192, 12288, 65536, 65537,
                     TEST_MIB - 1, TEST_MIB, TEST_MIB + 1, 3 * TEST_MIB + 5 };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    uint8_t *p = mem_buf_get(fixed[i]);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % MEM_ALIGN, 0);
    test_fill(p, fixed[i], 0xA5);    /* the whole request is usable (ASan checks the bounds) */
    mem_buf_put(p, fixed[i]);
  }
  enum { N = 200 };
  void *held[N];
  size_t size[N];
  for (int i = 0; i < N; i++) {
    size[i] = 1 + (size_t)tutil_rng_below(&rng, 2 * TEST_MIB);
    held[i] = mem_buf_get(size[i]);
    assert_non_null(held[i]);
    assert_int_equal((uintptr_t)held[i] % MEM_ALIGN, 0);
    test_fill(held[i], size[i], (uint8_t)i);
  }
  for (int i = 0; i < N; i++) {
    /* Contents survive while held (no two live buffers overlap). */
    assert_int_equal(((uint8_t *)held[i])[0], (uint8_t)i);
    assert_int_equal(((uint8_t *)held[i])[size[i] - 1], (uint8_t)i);
    mem_buf_put(held[i], size[i]);
  }
}

static void buf_recycler_hits_after_put(void **state)
{
  (void)state;
  struct mem_buf_stats a, b;
  mem_buf_stats_get(&a);
  assert_int_equal(a.cached_bytes, 0);

  void *p = mem_buf_get(8192);
  mem_buf_stats_get(&b);
  assert_int_equal(b.gets - a.gets, 1);
  assert_int_equal(b.misses - a.misses, 1);
  assert_int_equal(b.hits - a.hits, 0);

  mem_buf_put(p, 8192);
  mem_buf_stats_get(&b);
  assert_int_equal(b.puts - a.puts, 1);
  assert_int_equal(b.cached_bytes, 8192);

  /* 5000 bytes is in the same 8 KiB class: a hit returning the same block. */
  void *q = mem_buf_get(5000);
  assert_ptr_equal(q, p);
  mem_buf_stats_get(&b);
  assert_int_equal(b.hits - a.hits, 1);
  assert_int_equal(b.cached_bytes, 0);

  /* A different class misses even though an 8 KiB block could hold it. */
  mem_buf_put(q, 5000);
  void *r = mem_buf_get(16384);
  mem_buf_stats_get(&b);
  assert_int_equal(b.misses - a.misses, 2);
  assert_int_equal(b.cached_bytes, 8192);
  mem_buf_put(r, 16384);

  /* Every class up to 1 MiB recycles. */
  for (size_t n = 4096; n <= TEST_MIB; n *= 2) {
    void *x = mem_buf_get(n);
    mem_buf_put(x, n);
    struct mem_buf_stats c0, c1;
    mem_buf_stats_get(&c0);
    void *y = mem_buf_get(n);
    mem_buf_stats_get(&c1);
    assert_ptr_equal(x, y);
    assert_int_equal(c1.hits - c0.hits, 1);
    mem_buf_put(y, n);
  }
}

static void buf_cache_limit_respected(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);
  mem_buf_cache_limit_set(64 << 10);
  enum { N = 32 };
  void *p[N];
  for (int i = 0; i < N; i++)
    p[i] = mem_buf_get(4096);
  for (int i = 0; i < N; i++) {
    mem_buf_put(p[i], 4096);
    struct mem_buf_stats st;
    mem_buf_stats_get(&st);
    assert_true(st.cached_bytes <= (64 << 10));
  }
  struct mem_buf_stats st;
  mem_buf_stats_get(&st);
  assert_int_equal(st.cached_bytes, 64 << 10);
  assert_int_equal(atomic_load(&test_n_aligned_free), N - 16);

  /* A buffer bigger than the limit is never cached. */
  void *m = mem_buf_get(128 << 10);
  mem_buf_put(m, 128 << 10);
  mem_buf_stats_get(&st);
  assert_int_equal(st.cached_bytes, 64 << 10);

  /* Lowering the limit trims the caller's cache at once. */
  mem_buf_cache_limit_set(16 << 10);
  mem_buf_stats_get(&st);
  assert_int_equal(st.cached_bytes, 16 << 10);
  mem_buf_cache_limit_set(0);
  mem_buf_stats_get(&st);
  assert_int_equal(st.cached_bytes, 0);
  assert_int_equal(atomic_load(&test_n_aligned_free), atomic_load(&test_n_aligned));
}

static void buf_large_bypasses_recycler(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);
  size_t sizes[] = { TEST_MIB + 1, 2 * TEST_MIB, 7 * TEST_MIB + 123 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    struct mem_buf_stats a, b;
    mem_buf_stats_get(&a);
    uint8_t *p = mem_buf_get(sizes[i]);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % MEM_ALIGN, 0);
    test_fill(p, sizes[i], 0x5A);
    mem_buf_put(p, sizes[i]);
    mem_buf_stats_get(&b);
    assert_int_equal(b.cached_bytes, a.cached_bytes);
    assert_int_equal(b.misses - a.misses, 1);
    assert_int_equal(b.hits - a.hits, 0);
  }
  assert_int_equal(atomic_load(&test_n_aligned), 3);
  assert_int_equal(atomic_load(&test_n_aligned_free), 3);
  /* Exactly 1 MiB is still a size class. */
  void *q = mem_buf_get(TEST_MIB);
  mem_buf_put(q, TEST_MIB);
  struct mem_buf_stats st;
  mem_buf_stats_get(&st);
  assert_int_equal(st.cached_bytes, TEST_MIB);
  /* Absurd sizes fail cleanly, without reaching the allocator. */
  long before = atomic_load(&test_n_aligned);
  assert_null(mem_buf_get(SIZE_MAX));
  assert_null(mem_buf_get(SIZE_MAX - MEM_ALIGN));
  assert_null(mem_buf_get((size_t)PTRDIFF_MAX + 1));
  assert_int_equal(atomic_load(&test_n_aligned), before);
}

static void buf_drain_frees_everything(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);
  void *p[20];
  for (int i = 0; i < 20; i++)
    p[i] = mem_buf_get((size_t)4096 << (i % 9));
  for (int i = 0; i < 20; i++)
    mem_buf_put(p[i], (size_t)4096 << (i % 9));
  struct mem_buf_stats st;
  mem_buf_stats_get(&st);
  assert_true(st.cached_bytes > 0);
  assert_int_equal(atomic_load(&test_n_aligned_free), 0);
  mem_buf_cache_drain();
  mem_buf_stats_get(&st);
  assert_int_equal(st.cached_bytes, 0);
  assert_int_equal(atomic_load(&test_n_aligned_free), 20);
  mem_buf_cache_drain();   /* idempotent */
  assert_int_equal(atomic_load(&test_n_aligned_free), 20);
}

struct test_thread_result {
  struct mem_buf_stats st;
  void *foreign;           /* got here, put by the main thread */
};

static void *test_thread_body(void *arg)
{
  struct test_thread_result *r = arg;
  void *p[16];
  for (int i = 0; i < 16; i++)
    p[i] = mem_buf_get((size_t)4096 << (i % 5));
  for (int i = 0; i < 16; i++)
    mem_buf_put(p[i], (size_t)4096 << (i % 5));
  void *q = mem_buf_get(4096);   /* a hit from this thread's own cache */
  mem_buf_put(q, 4096);
  r->foreign = mem_buf_get(32768);
  mem_buf_stats_get(&r->st);
  return NULL;                   /* exits with a full cache: the key destructor must drain it */
}

static void buf_thread_exit_drains(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);
  struct mem_buf_stats before, after;
  mem_buf_stats_get(&before);

  struct test_thread_result r = { 0 };
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, test_thread_body, &r), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(r.st.gets, 18);
  assert_int_equal(r.st.hits, 2);    /* q, and `foreign` from the 32 KiB class */
  assert_true(r.st.cached_bytes > 0);
  /* Everything it allocated is freed except the buffer it handed over. */
  assert_int_equal(atomic_load(&test_n_aligned) - atomic_load(&test_n_aligned_free), 1);

  /* The buffer got by the other thread joins this thread's cache. */
  mem_buf_put(r.foreign, 32768);
  mem_buf_stats_get(&after);
  assert_int_equal(after.cached_bytes, before.cached_bytes + 32768);
  assert_int_equal(after.puts - before.puts, 1);
  assert_int_equal(after.gets - before.gets, 0);   /* stats are per thread */
  mem_buf_cache_drain();
  assert_int_equal(atomic_load(&test_n_aligned), atomic_load(&test_n_aligned_free));
}

static void *test_thread_many_body(void *arg)
{
  (void)arg;
  for (int i = 0; i < 100; i++) {
    void *p = mem_buf_get((size_t)4096 << (i % 9));
    mem_buf_put(p, (size_t)4096 << (i % 9));
  }
  return NULL;
}

static void buf_threads_concurrently(void **state)
{
  (void)state;
  mem_hooks_set(&test_hooks);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, test_thread_many_body, NULL), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  assert_int_equal(atomic_load(&test_n_aligned), 4 * 9);   /* one miss per class per thread */
  assert_int_equal(atomic_load(&test_n_aligned_free), 4 * 9);
}

/* --------------------------------------------------------------------------------------------- */

static void arena_allocations_aligned_distinct_until_full(void **state)
{
  (void)state;
  struct tutil_rng rng;
  tutil_rng_init(&rng, tutil_seed() ^ 0xa7e4a);
  struct mem_arena a;
  assert_int_equal(mem_arena_init(&a, 3 * TEST_MIB, 0), JDB_OK);
  assert_non_null(a.base);
  assert_int_equal(a.size, 4 * TEST_MIB);           /* rounded up to 2 MiB */
  assert_int_equal((uintptr_t)a.base % (2 * TEST_MIB), 0);
  assert_int_equal(a.used, 0);
  assert_true(a.backing == MEM_ARENA_PLAIN || a.backing == MEM_ARENA_THP);

  uint8_t *prev_end = a.base;
  size_t n_pieces = 0;
  for (;;) {
    size_t n = 1 + (size_t)tutil_rng_below(&rng, 100000);
    size_t used = a.used;
    uint8_t *p = mem_arena_alloc(&a, n);
    if (!p) {
      assert_true(a.size - used < ((n + MEM_ALIGN - 1) & ~(size_t)(MEM_ALIGN - 1)));
      assert_int_equal(a.used, used);   /* a failed alloc takes nothing */
      break;
    }
    n_pieces++;
    assert_int_equal((uintptr_t)p % MEM_ALIGN, 0);
    assert_true(p >= prev_end);         /* distinct, non-overlapping, in order */
    assert_true(p + n <= a.base + a.size);
    memset(p, (int)(n_pieces & 0xff), n);
    prev_end = p + n;
  }
  assert_true(n_pieces > 10);
  /* Fill the remainder page by page until exactly full, then everything fails. */
  while (mem_arena_alloc(&a, 1))
    ;
  assert_int_equal(a.used, a.size);
  assert_null(mem_arena_alloc(&a, 1));
  assert_null(mem_arena_alloc(&a, 0));
  assert_null(mem_arena_alloc(&a, SIZE_MAX));
  mem_arena_deinit(&a);
  assert_null(a.base);
  assert_int_equal(a.size, 0);
  mem_arena_deinit(&a);   /* twice is harmless */
}

static void arena_zero_and_huge_sizes(void **state)
{
  (void)state;
  struct mem_arena a;
  assert_int_equal(mem_arena_init(&a, 0, 0), JDB_OK);
  assert_int_equal(a.size, 2 * TEST_MIB);
  void *p = mem_arena_alloc(&a, 0);
  void *q = mem_arena_alloc(&a, 0);
  assert_non_null(p);
  assert_non_null(q);
  assert_ptr_not_equal(p, q);
  mem_arena_deinit(&a);

  assert_int_equal(mem_arena_init(&a, SIZE_MAX, MEM_ARENA_HUGE_TRY), JDB_ENOMEM);
  assert_null(a.base);
  assert_int_equal(mem_arena_init(&a, SIZE_MAX / 2 - 100, 0), JDB_ENOMEM);
  assert_null(a.base);
}

static void arena_huge_try_any_backing(void **state)
{
  (void)state;
  struct mem_arena a;
  assert_int_equal(mem_arena_init(&a, 4 * TEST_MIB + 1, MEM_ARENA_HUGE_TRY), JDB_OK);
  assert_true(a.backing == MEM_ARENA_PLAIN || a.backing == MEM_ARENA_HUGETLB ||
              a.backing == MEM_ARENA_THP);
  assert_int_equal(a.size, 6 * TEST_MIB);
  assert_int_equal((uintptr_t)a.base % (2 * TEST_MIB), 0);
  print_message("arena backing with MEM_ARENA_HUGE_TRY: %s\n",
                a.backing == MEM_ARENA_HUGETLB ? "hugetlb"
                : a.backing == MEM_ARENA_THP   ? "thp"
                                               : "plain");
  /* Every page is usable (hugetlb pages were reserved at mmap, so no SIGBUS). */
  uint8_t *p = mem_arena_alloc(&a, a.size);
  assert_non_null(p);
  for (size_t off = 0; off < a.size; off += 4096)
    p[off] = (uint8_t)off;
  assert_int_equal(p[8192], (uint8_t)8192);
  mem_arena_deinit(&a);
}

/* Prefaulting: a request populates its range on the helper thread without changing a byte of
   it (written data survives, never-written pages read as zeros); a second start while one is
   out is EBUSY; cancel returns with the request idle (dequeued, or waited for), after which the
   range may be unmapped; many requests from several owners all finish. */
static void prefault_populates_and_cancels(void **state)
{
  (void)state;
  struct mem_arena a = {0};
  size_t len = 64u << 20;
  assert_int_equal(mem_arena_init(&a, len, MEM_ARENA_HUGE_TRY), JDB_OK);
  uint8_t *p = mem_arena_alloc(&a, len);
  assert_non_null(p);
  memset(p, 0x5a, 1u << 20);   /* the first MiB written before */
  struct mem_prefault r[4];
  memset(r, 0, sizeof r);
  int rc = mem_prefault_start(&r[0], p, len);
  if (rc == JDB_ENOTSUP) {
    mem_arena_deinit(&a);
    skip();   /* the kernel lacks MADV_POPULATE_WRITE */
  }
  assert_int_equal(rc, JDB_OK);
  assert_int_equal(mem_prefault_start(&r[0], p, len), mem_prefault_busy(&r[0]) ? JDB_EBUSY
                                                                                 : JDB_OK);
  mem_prefault_cancel(&r[0]);
  assert_false(mem_prefault_busy(&r[0]));
  assert_int_equal(mem_prefault_start(NULL, p, len), JDB_EINVAL);
  assert_int_equal(mem_prefault_start(&r[1], NULL, len), JDB_EINVAL);
  assert_int_equal(mem_prefault_start(&r[1], p, 0), JDB_EINVAL);
  /* four owners, 16 MiB each; wait for all */
  for (int i = 0; i < 4; i++)
    assert_int_equal(mem_prefault_start(&r[i], p + (size_t)i * (16u << 20), 16u << 20), JDB_OK);
  for (int i = 0; i < 4; i++) {
    while (mem_prefault_busy(&r[i]))
      ;
  }
  for (size_t i = 0; i < (1u << 20); i++)
    if (p[i] != 0x5a)
      fail_msg("byte %zu changed to %u", i, p[i]);
  for (size_t i = 1u << 20; i < len; i += 4096)
    if (p[i] != 0)
      fail_msg("fresh byte %zu is %u", i, p[i]);
  /* cancel right after start: either dequeued or waited for */
  for (int k = 0; k < 50; k++) {
    assert_int_equal(mem_prefault_start(&r[k % 4], p, len), JDB_OK);
    mem_prefault_cancel(&r[k % 4]);
    assert_false(mem_prefault_busy(&r[k % 4]));
  }
  /* fork with requests out: in the child they count as idle (no helper thread there), cancel
     returns at once, and new requests get a helper of the child's own */
  assert_int_equal(mem_prefault_start(&r[0], p, len), JDB_OK);
  assert_int_equal(mem_prefault_start(&r[1], p, len), JDB_OK);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int bad = mem_prefault_busy(&r[0]) || mem_prefault_busy(&r[1]);
    mem_prefault_cancel(&r[0]);
    mem_prefault_cancel(&r[1]);
    bad |= mem_prefault_start(&r[2], p, 16u << 20) != JDB_OK;
    mem_prefault_cancel(&r[2]);
    bad |= mem_prefault_start(&r[2], p, 16u << 20) != JDB_OK;
    while (mem_prefault_busy(&r[2]))
      ;
    _exit(bad ? 1 : 0);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  mem_prefault_cancel(&r[0]);
  mem_prefault_cancel(&r[1]);
  mem_arena_deinit(&a);
}

/* The helper runs where the process may, whoever starts it: a thread pinned to one CPU (a
   shard) that makes the first request must not lend it its mask, or the helper zeroes pages on
   the pinned thread's core. In a child (a fresh helper), a pinned thread starts the first
   request; the "jdb-prefault" thread's mask then equals the main thread's. */
struct pin_arg {
  int cpu;
  struct mem_prefault *r;
  void *p;
  size_t len;
  int rc;
};

static void *pinned_starter(void *arg)
{
  struct pin_arg *a = arg;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(a->cpu, &one);
  a->rc = sched_setaffinity(0, sizeof one, &one) == 0 ? mem_prefault_start(a->r, a->p, a->len)
                                                      : -100;
  return NULL;
}

static int helper_mask_ok(void)
{
  cpu_set_t main_mask;
  if (sched_getaffinity(getpid(), sizeof main_mask, &main_mask) != 0 ||
      CPU_COUNT(&main_mask) < 2)
    return 2;   /* nothing to tell apart */
  int cpu = 0;
  while (!CPU_ISSET(cpu, &main_mask))
    cpu++;
  struct mem_arena a = {0};
  size_t len = 4u << 20;
  if (mem_arena_init(&a, len, 0) != JDB_OK || !mem_arena_alloc(&a, len))
    return 3;
  struct mem_prefault r = {0};
  struct pin_arg pa = {.cpu = cpu, .r = &r, .p = a.base, .len = len};
  pthread_t th;
  if (pthread_create(&th, NULL, pinned_starter, &pa) != 0 || pthread_join(th, NULL) != 0 ||
      pa.rc != JDB_OK)
    return 4;
  while (mem_prefault_busy(&r))
    usleep(100);
  int ok = 0;
  for (int tries = 0; tries < 100 && !ok; tries++) {   /* the helper names itself as it starts */
    ok = tutil_threads_share_main_mask("jdb-prefault");
    if (!ok)
      usleep(1000);
  }
  mem_arena_deinit(&a);
  return ok == 1 ? 0 : ok == 0 ? 5 : 6;
}

static void prefault_helper_not_pinned(void **state)
{
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(helper_mask_ok());
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  if (WEXITSTATUS(st) == 2) {
    print_message("  one CPU: nothing to check\n");
    return;
  }
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
  tutil_init();
  (void)tutil_seed();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(hooks_are_called_and_restored, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(hooks_partial_fall_back_to_libc, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(calloc_overflow_returns_null, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_alignment_many_sizes, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_recycler_hits_after_put, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_cache_limit_respected, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_large_bypasses_recycler, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_drain_frees_everything, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_thread_exit_drains, test_setup, test_teardown),
    cmocka_unit_test_setup_teardown(buf_threads_concurrently, test_setup, test_teardown),
    cmocka_unit_test(arena_allocations_aligned_distinct_until_full),
    cmocka_unit_test(arena_zero_and_huge_sizes),
    cmocka_unit_test(arena_huge_try_any_backing),
    cmocka_unit_test(prefault_populates_and_cancels),
    cmocka_unit_test(prefault_helper_not_pinned),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
