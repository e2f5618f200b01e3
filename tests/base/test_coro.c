/*
 * test_coro.c - coro.h: spawn/run, FIFO yield, park/wake (including wakes that come first),
 * many fibers and the stack pool, stack depth, guard pages, per-fiber FP control state, and the
 * cost of one context switch.
 */
#include "tutil.h"

#include "coro.h"
#include "err.h"

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
#define TEST_NO_ASAN __attribute__((no_sanitize_address))
#else
#define TEST_NO_ASAN
#endif

static struct coro_sched *test_sched_new(void)
{
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  assert_non_null(s);
  return s;
}

/* A log of small integers that fibers append to, to check orderings. */
struct test_log {
  int v[4096];
  int n;
};

static void test_log_add(struct test_log *l, int x)
{
  assert_true(l->n < (int)(sizeof l->v / sizeof l->v[0]));
  l->v[l->n++] = x;
}

/* --------------------------------------------------------------------------------------------- */

struct test_basic {
  struct coro_sched *s;
  struct coro *self_seen;
  struct coro_sched *sched_seen;
  int ran;
};

static void test_basic_fn(void *arg)
{
  struct test_basic *b = arg;
  b->self_seen = coro_self();
  b->sched_seen = coro_sched_self();
  b->ran++;
}

static void spawn_run_return(void **state)
{
  (void)state;
  assert_null(coro_self());
  assert_null(coro_sched_self());
  struct coro_sched *s = test_sched_new();
  struct test_basic b = { .s = s };
  struct coro *c = NULL;
  assert_int_equal(coro_spawn(s, test_basic_fn, &b, &c), JDB_OK);
  assert_non_null(c);
  assert_int_equal(coro_sched_live(s), 1);
  assert_int_equal(coro_sched_ready(s), 1);
  assert_int_equal(b.ran, 0);   /* spawn only queues */

  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(b.ran, 1);
  assert_ptr_equal(b.self_seen, c);
  assert_ptr_equal(b.sched_seen, s);
  assert_int_equal(coro_sched_live(s), 0);
  assert_int_equal(coro_sched_ready(s), 0);
  assert_null(coro_self());      /* NULL outside again */
  assert_null(coro_sched_self());
  assert_int_equal(coro_sched_run(s), 0);   /* nothing ready: returns at once */

  /* out may be NULL */
  assert_int_equal(coro_spawn(s, test_basic_fn, &b, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(b.ran, 2);
  coro_sched_destroy(s);
}

static void sched_create_options(void **state)
{
  (void)state;
  struct coro_sched *s = (struct coro_sched *)&s;   /* poison: must be cleared on failure */
  struct coro_sched_opts o = { .stack_bytes = 4096, .pool_max = 1 };
  assert_int_equal(coro_sched_create(&o, &s), JDB_EINVAL);
  assert_null(s);
  o.stack_bytes = (size_t)4 << 30;
  assert_int_equal(coro_sched_create(&o, &s), JDB_EINVAL);
  assert_null(s);

  o.stack_bytes = (20 << 10) + 1;   /* rounded up to pages */
  o.pool_max = 1;
  assert_int_equal(coro_sched_create(&o, &s), JDB_OK);
  struct test_basic b = { 0 };
  for (int i = 0; i < 3; i++)
    assert_int_equal(coro_spawn(s, test_basic_fn, &b, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 3);
  struct coro_sched_stats st;
  coro_sched_stats_get(s, &st);
  assert_int_equal(st.spawns, 3);
  assert_int_equal(st.stacks_mapped, 3);
  assert_int_equal(st.pool_count, 1);        /* pool_max honoured */
  assert_int_equal(st.stacks_unmapped, 2);
  coro_sched_destroy(s);
  coro_sched_destroy(NULL);                  /* harmless */
}

/* --------------------------------------------------------------------------------------------- */

struct test_rr {
  struct test_log *log;
  int id;
  int rounds;
};

static void test_rr_fn(void *arg)
{
  struct test_rr *r = arg;
  for (int i = 0; i < r->rounds; i++) {
    test_log_add(r->log, r->id);
    coro_yield();
  }
  test_log_add(r->log, 100 + r->id);
}

static void yield_is_fifo_round_robin(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  static struct test_log log;
  memset(&log, 0, sizeof log);
  enum { F = 4, R = 5 };
  struct test_rr rr[F];
  for (int i = 0; i < F; i++) {
    rr[i] = (struct test_rr){ .log = &log, .id = i, .rounds = R };
    assert_int_equal(coro_spawn(s, test_rr_fn, &rr[i], NULL), JDB_OK);
  }
  /* Each fiber is switched into R + 1 times. */
  assert_int_equal(coro_sched_run(s), F * (R + 1));
  assert_int_equal(log.n, F * (R + 1));
  for (int r = 0; r < R; r++)
    for (int i = 0; i < F; i++)
      assert_int_equal(log.v[r * F + i], i);
  for (int i = 0; i < F; i++)
    assert_int_equal(log.v[R * F + i], 100 + i);

  /* A fiber alone in the queue keeps running through coro_yield. */
  memset(&log, 0, sizeof log);
  struct test_rr one = { .log = &log, .id = 7, .rounds = 10 };
  assert_int_equal(coro_spawn(s, test_rr_fn, &one, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(log.n, 11);
  coro_sched_destroy(s);
}

/* --------------------------------------------------------------------------------------------- */

struct test_pw {
  struct test_log log;
  struct coro *sleeper;
  int woken;
};

static void test_pw_sleeper(void *arg)
{
  struct test_pw *p = arg;
  p->sleeper = coro_self();
  test_log_add(&p->log, 1);
  coro_park();
  test_log_add(&p->log, 4);
}

static void test_pw_waker(void *arg)
{
  struct test_pw *p = arg;
  test_log_add(&p->log, 2);
  coro_wake(p->sleeper);
  test_log_add(&p->log, 3);   /* the waker keeps the CPU; the sleeper is only made READY */
}

static void park_and_wake(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  static struct test_pw p;
  memset(&p, 0, sizeof p);
  assert_int_equal(coro_spawn(s, test_pw_sleeper, &p, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, test_pw_waker, &p, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 3);
  assert_int_equal(p.log.n, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(p.log.v[i], i + 1);

  /* Parked with nothing ready: run returns, the fiber stays live; a wake from outside any
     fiber (as the reactor does) makes it ready again. */
  memset(&p, 0, sizeof p);
  assert_int_equal(coro_spawn(s, test_pw_sleeper, &p, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(coro_sched_live(s), 1);
  assert_int_equal(coro_sched_ready(s), 0);
  assert_int_equal(p.log.n, 1);
  coro_wake(p.sleeper);
  assert_int_equal(coro_sched_ready(s), 1);
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(p.log.n, 2);
  assert_int_equal(p.log.v[1], 4);
  assert_int_equal(coro_sched_live(s), 0);
  coro_sched_destroy(s);
}

struct test_early {
  int parks_passed;
  struct coro *a;
  struct test_log log;
};

static void test_early_self(void *arg)
{
  struct test_early *e = arg;
  /* Wake while RUNNING, twice: the next park returns at once, and only the next one. */
  coro_wake(coro_self());
  coro_wake(coro_self());
  coro_park();
  e->parks_passed++;
  e->a = coro_self();
  coro_park();                /* really sleeps: woken from outside by the test */
  e->parks_passed++;
}

static void test_early_ready_a(void *arg)
{
  struct test_early *e = arg;
  e->a = coro_self();
  test_log_add(&e->log, 1);
  coro_yield();               /* READY while b runs and wakes it */
  test_log_add(&e->log, 3);
  coro_park();                /* the wake recorded while READY is pending: returns at once */
  test_log_add(&e->log, 4);
}

static void test_early_ready_b(void *arg)
{
  struct test_early *e = arg;
  test_log_add(&e->log, 2);
  coro_wake(e->a);
}

static void wake_before_park(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  static struct test_early e;
  memset(&e, 0, sizeof e);
  assert_int_equal(coro_spawn(s, test_early_self, &e, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 1);   /* the first park did not switch */
  assert_int_equal(e.parks_passed, 1);
  assert_int_equal(coro_sched_live(s), 1);  /* the second one sleeps */
  coro_wake(e.a);
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(e.parks_passed, 2);

  memset(&e, 0, sizeof e);
  assert_int_equal(coro_spawn(s, test_early_ready_a, &e, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, test_early_ready_b, &e, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 3);
  assert_int_equal(e.log.n, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(e.log.v[i], i + 1);
  assert_int_equal(coro_sched_live(s), 0);

  /* A wake recorded while READY, from outside the scheduler. */
  memset(&e, 0, sizeof e);
  struct coro *c = NULL;
  assert_int_equal(coro_spawn(s, test_early_self, &e, &c), JDB_OK);
  coro_wake(c);               /* READY: pending, on top of the fiber's own wakes */
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(e.parks_passed, 1);
  coro_wake(e.a);
  assert_int_equal(coro_sched_run(s), 1);
  assert_int_equal(coro_sched_live(s), 0);
  coro_sched_destroy(s);
}

/* --------------------------------------------------------------------------------------------- */

struct test_many {
  int done;
  int yields;
  int last_id;
  int order_ok;
};

struct test_many_arg {
  struct test_many *m;
  int id;
};

static void test_many_fn(void *arg)
{
  struct test_many_arg *a = arg;
  for (int i = 0; i < 10; i++) {
    a->m->yields++;
    coro_yield();
  }
  /* Round robin: fibers finish in spawn order. */
  if (a->id != a->m->last_id + 1)
    a->m->order_ok = 0;
  a->m->last_id = a->id;
  a->m->done++;
}

static void many_fibers_and_stack_pool(void **state)
{
  (void)state;
  enum { N = 10000, N2 = 2000 };
  struct coro_sched *s = test_sched_new();
  struct test_many m = { .last_id = -1, .order_ok = 1 };
  struct test_many_arg *args = calloc(N, sizeof *args);
  assert_non_null(args);
  for (int i = 0; i < N; i++) {
    args[i] = (struct test_many_arg){ .m = &m, .id = i };
    assert_int_equal(coro_spawn(s, test_many_fn, &args[i], NULL), JDB_OK);
  }
  assert_int_equal(coro_sched_live(s), N);
  assert_int_equal(coro_sched_run(s), (size_t)N * 11);
  assert_int_equal(m.done, N);
  assert_int_equal(m.yields, N * 10);
  assert_true(m.order_ok);
  assert_int_equal(coro_sched_live(s), 0);

  struct coro_sched_stats st;
  coro_sched_stats_get(s, &st);
  assert_int_equal(st.spawns, N);
  assert_int_equal(st.stacks_mapped, N);     /* all alive at once: no reuse yet */
  assert_int_equal(st.stacks_reused, 0);
  assert_int_equal(st.pool_count, 1024);     /* default pool_max */
  assert_int_equal(st.stacks_unmapped, N - 1024);

  /* Second wave: the pooled stacks come back first. */
  m = (struct test_many){ .last_id = -1, .order_ok = 1 };
  for (int i = 0; i < N2; i++) {
    args[i] = (struct test_many_arg){ .m = &m, .id = i };
    assert_int_equal(coro_spawn(s, test_many_fn, &args[i], NULL), JDB_OK);
  }
  coro_sched_stats_get(s, &st);
  assert_int_equal(st.stacks_reused, 1024);
  assert_int_equal(st.stacks_mapped, N + N2 - 1024);
  assert_int_equal(st.pool_count, 0);
  assert_int_equal(coro_sched_run(s), (size_t)N2 * 11);
  assert_int_equal(m.done, N2);
  assert_true(m.order_ok);

  /* Third wave, one at a time: each spawn reuses the stack the previous fiber left. */
  coro_sched_stats_get(s, &st);
  uint64_t mapped = st.stacks_mapped;
  for (int i = 0; i < 100; i++) {
    m = (struct test_many){ .last_id = -1, .order_ok = 1 };
    args[0] = (struct test_many_arg){ .m = &m, .id = 0 };
    assert_int_equal(coro_spawn(s, test_many_fn, &args[0], NULL), JDB_OK);
    coro_sched_run(s);
    assert_int_equal(m.done, 1);
  }
  coro_sched_stats_get(s, &st);
  assert_int_equal(st.stacks_mapped, mapped);
  coro_sched_destroy(s);
  free(args);
}

/* --------------------------------------------------------------------------------------------- */

/* ~600 bytes of frame per level; depth 64 uses well over 32 KiB of stack. */
__attribute__((noinline)) static uint64_t test_deep(int depth, uint64_t seed)
{
  volatile uint8_t buf[512];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t)(seed + i);
  uint64_t below = depth > 0 ? test_deep(depth - 1, seed * 31 + 7) : 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < sizeof buf; i++)
    sum += buf[i];
  return sum + below;
}

struct test_deep_arg {
  uint64_t got;
  uintptr_t sp_top, sp_low;
};

/* Same depth and frame size, recording the lowest frame address: the frame's, not buf's, since
   under ASan's detect_stack_use_after_return buf lives on a heap "fake stack". The callee reads
   the caller's buffer, so no call can become a tail call (or a loop). */
__attribute__((noinline)) static uint64_t test_deep_probe(volatile uint8_t *parent, int depth,
                                                          struct test_deep_arg *a)
{
  volatile uint8_t buf[512];
  buf[0] = (uint8_t)(parent[0] + 1);
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
  if (fp < a->sp_low)
    a->sp_low = fp;
  return depth > 0 ? test_deep_probe(buf, depth - 1, a) + buf[0] : buf[0];
}

static void test_deep_fn(void *arg)
{
  struct test_deep_arg *a = arg;
  a->sp_top = (uintptr_t)__builtin_frame_address(0);
  a->sp_low = a->sp_top;
  a->got = test_deep(64, 1);
  volatile uint8_t root[1] = { 0 };
  (void)test_deep_probe(root, 64, a);
  coro_yield();
  a->got += test_deep(64, 1);
}

static void deep_recursion_in_fiber(void **state)
{
  (void)state;
  uint64_t expect = 2 * test_deep(64, 1);   /* on the thread's own stack */
  struct coro_sched *s = test_sched_new();
  struct test_deep_arg a[2] = { { 0 }, { 0 } };
  assert_int_equal(coro_spawn(s, test_deep_fn, &a[0], NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, test_deep_fn, &a[1], NULL), JDB_OK);
  coro_sched_run(s);
  assert_int_equal(a[0].got, expect);
  assert_int_equal(a[1].got, expect);
  /* With ASan fake stacks the arrays live off the fiber stack; only the results count then. */
  if (!getenv("TEST_CORO_FAKE_STACKS"))
    assert_true(a[0].sp_top - a[0].sp_low >= (32 << 10));
  print_message("recursion used %zu bytes of fiber stack\n", (size_t)(a[0].sp_top - a[0].sp_low));
  coro_sched_destroy(s);
}

/* --------------------------------------------------------------------------------------------- */

/* longjmp inside a fiber abandons frames whose ASan redzones stay poisoned unless ASan knows the
   fiber's stack bounds (its longjmp interceptor unpoisons from sp to the top of the *current*
   stack). Then code that ASan does not instrument (libc, asm; here a no_sanitize_address
   function) fills a buffer in that area and hands it to an intercepted call, which would report
   a false stack-buffer-overflow. This is what catches missing switch annotations. */
struct test_lj {
  jmp_buf jb;
  int jumped;
  uint64_t sum;
};

__attribute__((noinline)) static void test_lj_deep(struct test_lj *t, int n)
{
  volatile uint8_t pad[200];   /* redzones around it in every frame */
  pad[0] = (uint8_t)n;
  if (n == 0) {
    if (t->jumped < 2)
      longjmp(t->jb, 1);
    return;                    /* never taken; keeps -Winfinite-recursion quiet */
  }
  test_lj_deep(t, n - 1);
  t->sum += pad[0];
}

static TEST_NO_ASAN void test_lj_raw(uint8_t *out, size_t n)
{
  volatile uint8_t buf[3000];
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t)i;
  void *(*volatile copy)(void *, const void *, size_t) = memcpy;   /* the ASan interceptor */
  copy(out, (const void *)buf, n);
}

static void test_lj_fn(void *arg)
{
  struct test_lj *t = arg;
  if (setjmp(t->jb) == 0)
    test_lj_deep(t, 12);
  t->jumped++;
  coro_yield();                /* and across a switch */
  uint8_t out[3000];
  test_lj_raw(out, sizeof out);
  for (size_t i = 0; i < sizeof out; i++)
    t->sum += out[i] == (uint8_t)i ? 0 : 1000;
}

static void longjmp_in_fiber(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  static struct test_lj t[3];
  memset(t, 0, sizeof t);
  for (int round = 0; round < 2; round++)   /* the second round reuses the pooled stacks */
    for (int i = 0; i < 3; i++)
      assert_int_equal(coro_spawn(s, test_lj_fn, &t[i], NULL), JDB_OK);
  coro_sched_run(s);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(t[i].jumped, 2);
    assert_int_equal(t[i].sum, 0);
  }
  coro_sched_destroy(s);
}

/* --------------------------------------------------------------------------------------------- */

struct test_data {
  struct coro *c;
  void *seen;
  void *after;
};

static void test_data_fn(void *arg)
{
  struct test_data *d = arg;
  d->seen = coro_get_data(coro_self());
  coro_set_data(coro_self(), (void *)(uintptr_t)0xBEEF);
  coro_yield();
  d->after = coro_get_data(coro_self());
}

static void data_pointer(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  struct test_data d = { 0 };
  assert_int_equal(coro_spawn(s, test_data_fn, &d, &d.c), JDB_OK);
  assert_null(coro_get_data(d.c));   /* starts NULL */
  int x;
  coro_set_data(d.c, &x);
  coro_sched_run(s);
  assert_ptr_equal(d.seen, &x);
  assert_ptr_equal(d.after, (void *)(uintptr_t)0xBEEF);
  coro_sched_destroy(s);

  /* A reused stack (same handle memory) starts with data NULL again. */
  s = test_sched_new();
  struct test_data d2 = { 0 };
  assert_int_equal(coro_spawn(s, test_data_fn, &d2, &d2.c), JDB_OK);
  coro_set_data(d2.c, &x);
  coro_sched_run(s);
  struct coro *c2 = NULL;
  struct test_data d3 = { 0 };
  assert_int_equal(coro_spawn(s, test_data_fn, &d3, &c2), JDB_OK);
  assert_ptr_equal(c2, d2.c);        /* the pooled stack, handle included */
  assert_null(coro_get_data(c2));
  coro_sched_run(s);
  assert_null(d3.seen);
  coro_sched_destroy(s);
}

/* --------------------------------------------------------------------------------------------- */

struct test_tree {
  struct test_log log;
  int depth_max;
};

struct test_tree_arg {
  struct test_tree *t;
  int depth;
  int id;
};

static struct test_tree_arg test_tree_args[64];
static int test_tree_n;

static void test_tree_fn(void *arg)
{
  struct test_tree_arg *a = arg;
  test_log_add(&a->t->log, a->id);
  if (a->depth < a->t->depth_max) {
    for (int i = 0; i < 2; i++) {
      struct test_tree_arg *k = &test_tree_args[test_tree_n++];
      *k = (struct test_tree_arg){ .t = a->t, .depth = a->depth + 1, .id = a->id * 2 + i + 1 };
      struct coro *c = NULL;
      assert_int_equal(coro_spawn(coro_sched_self(), test_tree_fn, k, &c), JDB_OK);
      assert_non_null(c);
    }
  }
  coro_yield();
}

static void fiber_spawns_fibers(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  static struct test_tree t;
  memset(&t, 0, sizeof t);
  t.depth_max = 4;                   /* 1 + 2 + 4 + 8 + 16 = 31 fibers */
  test_tree_n = 0;
  test_tree_args[test_tree_n] = (struct test_tree_arg){ .t = &t, .depth = 0, .id = 0 };
  assert_int_equal(coro_spawn(s, test_tree_fn, &test_tree_args[test_tree_n++], NULL), JDB_OK);
  coro_sched_run(s);                 /* one run covers the fibers spawned meanwhile */
  assert_int_equal(t.log.n, 31);
  assert_int_equal(coro_sched_live(s), 0);
  /* FIFO spawning of a binary tree visits it breadth-first: ids in order 0, 1, 2, ... */
  for (int i = 0; i < 31; i++)
    assert_int_equal(t.log.v[i], i);
  struct coro_sched_stats st;
  coro_sched_stats_get(s, &st);
  assert_int_equal(st.spawns, 31);
  coro_sched_destroy(s);
}

static void destroy_after_all_dead(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  static struct test_pw p;
  memset(&p, 0, sizeof p);
  assert_int_equal(coro_spawn(s, test_pw_sleeper, &p, NULL), JDB_OK);
  coro_sched_run(s);
  assert_int_equal(coro_sched_live(s), 1);   /* parked: destroying now would assert */
  coro_wake(p.sleeper);
  coro_sched_run(s);
  assert_int_equal(coro_sched_live(s), 0);
  struct coro_sched_stats st;
  coro_sched_stats_get(s, &st);
  assert_int_equal(st.pool_count, 1);
  coro_sched_destroy(s);                     /* unmaps the pooled stack */
  /* Nothing lingers: a fresh scheduler works as before. */
  s = test_sched_new();
  struct test_basic b = { 0 };
  assert_int_equal(coro_spawn(s, test_basic_fn, &b, NULL), JDB_OK);
  assert_int_equal(coro_sched_run(s), 1);
  coro_sched_destroy(s);
}

/* --------------------------------------------------------------------------------------------- */

#if defined(__x86_64__)
static uint32_t test_mxcsr_get(void)
{
  uint32_t v;
  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}

static void test_mxcsr_set(uint32_t v)
{
  __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t test_fpcw_get(void)
{
  uint16_t v;
  __asm__ volatile("fnstcw %0" : "=m"(v));
  return v;
}

static void test_fpcw_set(uint16_t v)
{
  __asm__ volatile("fldcw %0" : : "m"(v));
}

struct test_fp {
  uint32_t mxcsr_main;
  uint16_t fpcw_main;
  int ok_a, ok_b;
};

static void test_fp_a(void *arg)
{
  struct test_fp *f = arg;
  uint32_t mx = (f->mxcsr_main & ~0x6000u) | 0x4000u;   /* round up */
  uint16_t cw = (uint16_t)((f->fpcw_main & ~0x0C00u) | 0x0800u);
  test_mxcsr_set(mx);
  test_fpcw_set(cw);
  coro_yield();
  f->ok_a = test_mxcsr_get() == mx && test_fpcw_get() == cw;
}

static void test_fp_b(void *arg)
{
  struct test_fp *f = arg;
  f->ok_b = test_mxcsr_get() == f->mxcsr_main && test_fpcw_get() == f->fpcw_main;
  coro_yield();
}

static void fp_control_state_is_per_fiber(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  struct test_fp f = { .mxcsr_main = test_mxcsr_get(), .fpcw_main = test_fpcw_get() };
  assert_int_equal(coro_spawn(s, test_fp_a, &f, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, test_fp_b, &f, NULL), JDB_OK);
  coro_sched_run(s);
  assert_true(f.ok_a);
  assert_true(f.ok_b);
  assert_int_equal(test_mxcsr_get(), f.mxcsr_main);
  assert_int_equal(test_fpcw_get(), f.fpcw_main);
  coro_sched_destroy(s);
}
#endif

/* --------------------------------------------------------------------------------------------- */

#ifndef TEST_ASAN   /* the overflow child only runs without ASan; see guard_page_stops_overflow */
static volatile int test_depth_limit;   /* 0: unbounded (the compiler cannot know) */

/* The callee reads its caller's buffer, so the frame must stay: no tail call, no loop. */
__attribute__((noinline)) static uint64_t test_recurse(volatile uint8_t *parent, int depth)
{
  volatile uint8_t buf[200];
  buf[0] = (uint8_t)(parent[0] + 1);
  buf[199] = buf[0];
  if (test_depth_limit && depth >= test_depth_limit)
    return buf[199];
  return test_recurse(buf, depth + 1) + buf[199];
}

static void test_overflow_fn(void *arg)
{
  (void)arg;
  volatile uint8_t root[1] = { 0 };
  (void)test_recurse(root, 0);
}

static void test_child_overflow(void)
{
  struct coro_sched *s = NULL;
  if (coro_sched_create(NULL, &s) != JDB_OK)
    _exit(2);
  if (coro_spawn(s, test_overflow_fn, NULL, NULL) != JDB_OK)
    _exit(3);
  coro_sched_run(s);
  _exit(4);                     /* survived: the guard page did not stop it */
}
#endif

/* Fork; in the child run body(), which must not return; return the child's wait status. */
static int test_in_child(void (*body)(void))
{
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit no_core = { 0, 0 };
    (void)setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGSEGV, SIG_DFL);   /* cmocka installs handlers; the test wants the plain death */
    signal(SIGBUS, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0)
      (void)dup2(fd, 2);        /* keep the expected assertion message out of the log */
    alarm(30);                  /* a hang (say, recursion turned into a loop) fails too */
    body();
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

static void guard_page_stops_overflow(void **state)
{
  (void)state;
#ifdef TEST_ASAN
  print_message("skipped under ASan: it intercepts SIGSEGV and reports the overflow itself\n");
  skip();
#else
  int status = test_in_child(test_child_overflow);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGSEGV);
#endif
}

static void test_child_yield_outside(void)
{
  coro_yield();                 /* caller bug: asserts */
  _exit(5);
}

static void test_child_park_outside(void)
{
  coro_park();
  _exit(5);
}

static void yield_outside_fiber_asserts(void **state)
{
  (void)state;
  int status = test_in_child(test_child_yield_outside);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
  status = test_in_child(test_child_park_outside);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* --------------------------------------------------------------------------------------------- */

static uint64_t test_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_pingpong_fn(void *arg)
{
  long n = *(const long *)arg;
  for (long i = 0; i < n; i++)
    coro_yield();
}

/* Two fibers yielding to each other: every yield is one direct switch. Expected: a few ns to
   ~20 ns per switch for the asm path (about 20 instructions plus the queue bookkeeping). */
static void switch_cost_pingpong(void **state)
{
  (void)state;
#ifdef TEST_ASAN
  long n = 100000;
#else
  long n = 2000000;
#endif
  struct coro_sched *s = test_sched_new();
  double best = 1e9;
  for (int rep = 0; rep < 3; rep++) {
    assert_int_equal(coro_spawn(s, test_pingpong_fn, &n, NULL), JDB_OK);
    assert_int_equal(coro_spawn(s, test_pingpong_fn, &n, NULL), JDB_OK);
    uint64_t t0 = test_now_ns();
    size_t sw = coro_sched_run(s);
    uint64_t t1 = test_now_ns();
    assert_int_equal(sw, (size_t)(2 * n + 2));
    double ns = (double)(t1 - t0) / (double)sw;
    if (ns < best)
      best = ns;
  }
  print_message("context switch (yield ping-pong, best of 3): %.1f ns per switch%s\n", best,
#ifdef TEST_ASAN
                " [ASan build]"
#else
                ""
#endif
  );
  coro_sched_destroy(s);
}

#ifdef TEST_ASAN
/* Under ASan the suite runs twice: as configured (frames on the real stacks, where
   longjmp_in_fiber catches missing switch annotations), then in a child with
   detect_stack_use_after_return=1, where frames live on ASan's fake stacks: one per fiber,
   saved and restored at each switch, freed when the fiber dies. */
static int test_rerun_with_fake_stacks(char **argv)
{
  if (getenv("TEST_CORO_FAKE_STACKS"))
    return 0;
  char opts[1024];
  const char *old = getenv("ASAN_OPTIONS");
  snprintf(opts, sizeof opts, "%s%sdetect_stack_use_after_return=1", old ? old : "",
           old && *old ? ":" : "");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0) {
    setenv("TEST_CORO_FAKE_STACKS", "1", 1);
    setenv("ASAN_OPTIONS", opts, 1);
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
#endif

/* A round is bounded even when fibers yield forever: the reactor gets control back. */
struct test_spin { int yields; int stop; };

static void test_spin_fn(void *arg)
{
  struct test_spin *t = arg;
  while (!t->stop) {
    t->yields++;
    coro_yield();
  }
}

static void test_park_once_fn(void *arg)
{
  int *woke = arg;
  coro_park();
  (*woke)++;
}

static void run_round_is_bounded(void **state)
{
  (void)state;
  struct coro_sched *s = test_sched_new();
  struct test_spin a = {0}, b = {0};
  assert_int_equal(coro_spawn(s, test_spin_fn, &a, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, test_spin_fn, &b, NULL), JDB_OK);
  /* Two ready at entry: exactly two switches into fibers, then back here. */
  assert_int_equal(coro_sched_run_round(s), 2);
  assert_int_equal(a.yields, 1);
  assert_int_equal(b.yields, 1);
  assert_int_equal(coro_sched_ready(s), 2);
  for (int i = 0; i < 10; i++)
    assert_int_equal(coro_sched_run_round(s), 2);
  assert_int_equal(a.yields, 11);
  assert_int_equal(b.yields, 11);
  /* A lone yielder also comes back: its round allows one switch. */
  a.stop = 1;
  assert_int_equal(coro_sched_run_round(s), 2);   /* a ends, b yields */
  assert_int_equal(coro_sched_live(s), 1);
  size_t before = (size_t)b.yields;
  coro_sched_run_round(s);
  assert_true((size_t)b.yields <= before + 1);
  b.stop = 1;
  while (coro_sched_live(s))
    coro_sched_run_round(s);
  /* A parked fiber woken from outside runs in the next round. */
  int woke = 0;
  struct coro *c;
  assert_int_equal(coro_spawn(s, test_park_once_fn, &woke, &c), JDB_OK);
  assert_int_equal(coro_sched_run_round(s), 1);
  assert_int_equal(coro_sched_run_round(s), 0);
  coro_wake(c);
  assert_int_equal(coro_sched_run_round(s), 1);
  assert_int_equal(woke, 1);
  assert_int_equal(coro_sched_live(s), 0);
  coro_sched_destroy(s);
}

int main(int argc, char **argv)
{
  (void)argc;
  tutil_init();
  if (getenv("TEST_CORO_FAKE_STACKS"))
    fprintf(stderr, "[ note ] rerun with ASAN_OPTIONS=%s\n", getenv("ASAN_OPTIONS"));
  (void)tutil_seed();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(spawn_run_return),
    cmocka_unit_test(sched_create_options),
    cmocka_unit_test(yield_is_fifo_round_robin),
    cmocka_unit_test(park_and_wake),
    cmocka_unit_test(wake_before_park),
    cmocka_unit_test(many_fibers_and_stack_pool),
    cmocka_unit_test(deep_recursion_in_fiber),
    cmocka_unit_test(longjmp_in_fiber),
    cmocka_unit_test(data_pointer),
    cmocka_unit_test(fiber_spawns_fibers),
    cmocka_unit_test(destroy_after_all_dead),
#if defined(__x86_64__)
    cmocka_unit_test(fp_control_state_is_per_fiber),
#endif
    cmocka_unit_test(guard_page_stops_overflow),
    cmocka_unit_test(yield_outside_fiber_asserts),
    cmocka_unit_test(switch_cost_pingpong),
    cmocka_unit_test(run_round_is_bounded),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
#ifdef TEST_ASAN
  if (rc == 0)
    rc = test_rerun_with_fake_stacks(argv);
#else
  (void)argv;
#endif
  return rc;
}
