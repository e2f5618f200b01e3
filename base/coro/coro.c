/*
 * coro.c - fibers: the scheduler, the run queue, pooled guarded stacks, and the ASan bookkeeping
 * around every context switch. The switch itself is in coro_switch.c.
 *
 * Role in base: the runtime runs one scheduler per core thread; store/index code written as
 * straight-line code parks its fiber while an fs_op is in flight and the reactor wakes it when
 * the completion arrives (coro.h).
 *
 * Stack mapping of one fiber (map_bytes, a multiple of the page size, from mmap):
 *   off                    size        content
 *   0                      page        guard, PROT_NONE: an overflow faults (SIGSEGV) here
 *   page                   stack_bytes the stack, growing down from its top
 *   page + stack_bytes     hdr_bytes   struct coro (the fiber's handle), 64-byte aligned
 * So spawning allocates nothing besides the stack, and the handle lives exactly as long as the
 * stack belongs to the fiber. Dead fibers' mappings go to a LIFO pool (up to pool_max) linked
 * through coro.next and are reused whole, handle included.
 *
 * Switching. Contexts are the scheduler's (s->main_sp: the thread's own stack inside
 * coro_sched_run) and one per fiber. coro_yield and coro_park hand the CPU straight to the next
 * READY fiber (one switch, not two through the scheduler); the scheduler's context is resumed
 * only when a fiber parks with nothing else ready, or dies. A dying fiber cannot free the stack
 * it runs on, so it leaves itself in s->dead and switches to the scheduler, which pools or
 * unmaps the stack once it is off it.
 *
 * ASan (built with -fsanitize=address): ASan must be told about every change of stack, or it
 * reports false stack overflows and use-after-returns. Each switch is bracketed by
 * __sanitizer_start_switch_fiber(&from's fake_stack, to's bounds) before and
 * __sanitizer_finish_switch_fiber(own fake_stack, ...) on arrival, including a fiber's first
 * arrival (coro_fiber_main, fake stack NULL) and a dying fiber's last departure (fake_stack_save
 * NULL, which frees its fake stack). The scheduler's own stack bounds are learned from the first
 * finish call after leaving it. A dead fiber's stack is unpoisoned near its top before it is
 * pooled or unmapped, since the frames that never returned (coro_fiber_main's and the final
 * switch's) may leave poisoned redzones in its shadow.
 *
 * Invariants:
 *  - coro_tls_cur is the RUNNING fiber, or NULL on the scheduler's stack; exactly one fiber of a
 *    scheduler is RUNNING while coro_tls_cur != NULL.
 *  - A fiber is on the ready queue iff it is READY; ready_n counts them.
 *  - live_n == READY + RUNNING + PARKED fibers; s->dead is non-NULL only between a fiber's last
 *    switch and the scheduler's next instruction.
 *  - wake_pending is only set while the fiber is READY or RUNNING; coro_park clears it.
 *  - All calls happen on the owner thread (asserted where cheap).
 *
 * States (function making the transition):
 *
 *      coro_spawn              coro_sched_run / coro_yield / coro_park (of another fiber)
 *   (pool|mmap) ---> READY ------------------------------------------------------> RUNNING
 *                     ^  ^---------------------- coro_yield ----------------------/  |  |
 *                     |                                                               |  |
 *                     +------ coro_wake ------ PARKED <------ coro_park --------------+  |
 *                                             (coro_park returns at once instead if a    |
 *                                              coro_wake came while READY or RUNNING)    |
 *   (pool|munmap) <-- coro_sched_run <-- DEAD <---------- fn returns (coro_fiber_main) --+
 */
#include "coro.h"

#include "err.h"
#include "mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif

#ifdef CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CORO_STACK_DEF ((size_t)256 << 10)
#else
#define CORO_STACK_DEF ((size_t)64 << 10)
#endif
#define CORO_STACK_MIN  ((size_t)16 << 10)
#define CORO_STACK_MAX  ((size_t)1 << 30)
#define CORO_POOL_DEF   1024u

enum coro_state { CORO_READY = 1, CORO_RUNNING = 2, CORO_PARKED = 3, CORO_DEAD = 4 };

struct coro {
  void *sp;                    /* saved context while not RUNNING (coro_switch.c) */
  struct coro_sched *sched;
  struct coro *next;           /* ready queue, or pool when dead */
  uint8_t *lo;                 /* lowest usable stack byte (just above the guard page) */
  void (*fn)(void *arg);
  void *arg;
  void *data;
  uint8_t state;               /* enum coro_state */
  uint8_t wake_pending;
#ifdef CORO_ASAN
  void *asan_fake;             /* ASan fake stack while switched out */
#endif
};

struct coro_sched {
  void *main_sp;               /* scheduler context while a fiber runs */
  struct coro *ready_head, *ready_tail;
  size_t ready_n;
  size_t live_n;
  struct coro *pool;
  size_t pool_n, pool_max;
  struct coro *dead;           /* fiber whose stack the scheduler must release */
  size_t budget;               /* switches into fibers left in this run (SIZE_MAX: drain) */
  size_t page_bytes, stack_bytes, hdr_bytes, map_bytes;
  pthread_t owner;
  struct coro_sched_stats st;
#ifdef CORO_ASAN
  void *main_fake;
  const void *main_lo;
  size_t main_size;
  bool asan_from_main;         /* next arrival in a fiber learns the scheduler's stack bounds */
#endif
};

static _Thread_local struct coro *coro_tls_cur;
static _Thread_local struct coro_sched *coro_tls_sched;

/* ---------------------------------------------------------------------------------------------
 * Run queue
 * ------------------------------------------------------------------------------------------- */

static void coro_ready_push(struct coro_sched *s, struct coro *c)
{
  c->next = NULL;
  if (s->ready_tail)
    s->ready_tail->next = c;
  else
    s->ready_head = c;
  s->ready_tail = c;
  s->ready_n++;
}

static struct coro *coro_ready_pop(struct coro_sched *s)
{
  struct coro *c = s->ready_head;
  if (!c)
    return NULL;
  s->ready_head = c->next;
  if (!s->ready_head)
    s->ready_tail = NULL;
  c->next = NULL;
  JDB_ASSERT(s->ready_n > 0);
  s->ready_n--;
  JDB_ASSERT(c->state == CORO_READY);
  return c;
}

/* ---------------------------------------------------------------------------------------------
 * Stacks
 * ------------------------------------------------------------------------------------------- */

/* ASan: after fiber c died, clear the shadow of the frames that never returned (from its last
   saved stack pointer up to the top, plus a margin below for the red zone). Every frame below
   returned and unpoisoned itself on the way out, so the whole stack is clean afterwards and can
   be reused or unmapped. Cheaper than clearing the whole stack's shadow (1/8 of its size). */
static void coro_stack_unpoison(const struct coro_sched *s, struct coro *c)
{
#ifdef CORO_ASAN
  uint8_t *top = (uint8_t *)c;
  uint8_t *low = (uint8_t *)c->sp;
  JDB_ASSERT(low > c->lo && low < top);
  low = (size_t)(low - c->lo) > 1024 ? low - 1024 : c->lo;
  __asan_unpoison_memory_region(low, (size_t)(top - low));
  (void)s;
#else
  (void)s;
  (void)c;
#endif
}

static struct coro *coro_stack_get(struct coro_sched *s)
{
  struct coro *c = s->pool;
  if (c) {
    s->pool = c->next;
    s->pool_n--;
    s->st.stacks_reused++;
    return c;
  }
  uint8_t *map = mmap(NULL, s->map_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED)
    return NULL;
  if (mprotect(map, s->page_bytes, PROT_NONE) != 0) {
    (void)munmap(map, s->map_bytes);
    return NULL;
  }
  c = (struct coro *)(map + s->map_bytes - s->hdr_bytes);
  c->lo = map + s->page_bytes;
  JDB_ASSERT(c->lo + s->stack_bytes == (uint8_t *)c);
  s->st.stacks_mapped++;
  return c;
}

static void coro_stack_unmap(struct coro_sched *s, struct coro *c)
{
  uint8_t *map = c->lo - s->page_bytes;
  int rc = munmap(map, s->map_bytes);
  JDB_ASSERT(rc == 0);
  s->st.stacks_unmapped++;
}

static void coro_stack_put(struct coro_sched *s, struct coro *c)
{
  JDB_ASSERT(c->state == CORO_DEAD);
  if (s->pool_n < s->pool_max) {
    c->next = s->pool;
    s->pool = c;
    s->pool_n++;
    return;
  }
  coro_stack_unmap(s, c);
}

/* ---------------------------------------------------------------------------------------------
 * Switching
 * ------------------------------------------------------------------------------------------- */

#ifdef CORO_ASAN
/* First thing on arrival on a stack: tell ASan the switch is over. */
static void coro_asan_arrived(struct coro_sched *s, void *fake)
{
  const void *old_lo = NULL;
  size_t old_size = 0;
  __sanitizer_finish_switch_fiber(fake, &old_lo, &old_size);
  if (s->asan_from_main) {
    s->main_lo = old_lo;
    s->main_size = old_size;
    s->asan_from_main = false;
  }
}
#endif

/* Save the running context in *from_sp and resume to_sp, whose stack is [to_lo, +to_bytes).
   from_fake is the leaving context's ASan fake-stack slot, NULL when it will never resume. */
static void coro_jump(struct coro_sched *s, void **from_sp, void **from_fake, void *to_sp,
                      const void *to_lo, size_t to_bytes)
{
#ifdef CORO_ASAN
  __sanitizer_start_switch_fiber(from_fake, to_lo, to_bytes);
  coro_ctx_switch(from_sp, to_sp);
  coro_asan_arrived(s, from_fake ? *from_fake : NULL);
#else
  (void)s;
  (void)from_fake;
  (void)to_lo;
  (void)to_bytes;
  coro_ctx_switch(from_sp, to_sp);
#endif
}

static void *coro_fake_slot(struct coro *c)
{
#ifdef CORO_ASAN
  return &c->asan_fake;
#else
  (void)c;
  return NULL;
#endif
}

static void coro_jump_to_main(struct coro_sched *s, struct coro *c, bool dying)
{
  coro_tls_cur = NULL;
#ifdef CORO_ASAN
  coro_jump(s, &c->sp, dying ? NULL : &c->asan_fake, s->main_sp, s->main_lo, s->main_size);
#else
  (void)dying;
  coro_jump(s, &c->sp, NULL, s->main_sp, NULL, 0);
#endif
}

/* From fiber c (already queued or parked) straight to READY fiber n. Returns when c resumes. */
static void coro_handoff(struct coro_sched *s, struct coro *c, struct coro *n)
{
  n->state = CORO_RUNNING;
  coro_tls_cur = n;
  s->st.switches++;
  coro_jump(s, &c->sp, coro_fake_slot(c), n->sp, n->lo, s->stack_bytes);
}

/* Every fiber starts here, on its own stack, entered by `ret` from coro_ctx_switch. */
static _Noreturn void coro_fiber_main(void)
{
  struct coro *c = coro_tls_cur;
  struct coro_sched *s = c->sched;
#ifdef CORO_ASAN
  coro_asan_arrived(s, NULL);
#endif
  c->fn(c->arg);

  JDB_ASSERT(coro_tls_cur == c);
  JDB_ASSERT(c->state == CORO_RUNNING);
  c->state = CORO_DEAD;
  c->wake_pending = 0;
  JDB_ASSERT(s->live_n > 0);
  s->live_n--;
  JDB_ASSERT(s->dead == NULL);
  s->dead = c;
  coro_jump_to_main(s, c, true);
  err_assert_fail("a dead fiber was resumed", __FILE__, __LINE__, __func__);
}

/* ---------------------------------------------------------------------------------------------
 * Public calls
 * ------------------------------------------------------------------------------------------- */

static size_t coro_round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

int coro_sched_create(const struct coro_sched_opts *opts, struct coro_sched **out)
{
  JDB_ASSERT(out != NULL);
  *out = NULL;
  size_t stack = opts && opts->stack_bytes ? opts->stack_bytes : CORO_STACK_DEF;
  size_t pool_max = opts && opts->pool_max ? opts->pool_max : CORO_POOL_DEF;
  if (stack < CORO_STACK_MIN || stack > CORO_STACK_MAX)
    return JDB_EINVAL;
  long page = sysconf(_SC_PAGESIZE);
  size_t page_bytes = page > 0 ? (size_t)page : 4096;
  stack = coro_round_up(stack, page_bytes);
  size_t hdr = coro_round_up(sizeof(struct coro), 64);
  size_t map = page_bytes + coro_round_up(stack + hdr, page_bytes);

  struct coro_sched *s = mem_calloc(1, sizeof *s);
  if (!s)
    return JDB_ENOMEM;
  s->page_bytes = page_bytes;
  s->hdr_bytes = hdr;
  s->map_bytes = map;
  s->stack_bytes = map - page_bytes - hdr;   /* >= the rounded request */
  s->pool_max = pool_max;
  s->owner = pthread_self();
  *out = s;
  return JDB_OK;
}

void coro_sched_destroy(struct coro_sched *s)
{
  if (!s)
    return;
  JDB_ASSERT(pthread_equal(s->owner, pthread_self()));
  JDB_ASSERT(coro_tls_sched != s);   /* not from inside its own coro_sched_run */
  JDB_ASSERT(s->live_n == 0);
  JDB_ASSERT(s->ready_n == 0);
  JDB_ASSERT(s->dead == NULL);
  while (s->pool) {
    struct coro *c = s->pool;
    s->pool = c->next;
    s->pool_n--;
    coro_stack_unmap(s, c);
  }
  JDB_ASSERT(s->pool_n == 0);
  mem_free(s);
}

int coro_spawn(struct coro_sched *s, void (*fn)(void *arg), void *arg, struct coro **out)
{
  if (out)
    *out = NULL;
  JDB_ASSERT(s != NULL);
  JDB_ASSERT(fn != NULL);
  JDB_ASSERT(pthread_equal(s->owner, pthread_self()));
  struct coro *c = coro_stack_get(s);
  if (!c)
    return JDB_ENOMEM;
  c->sched = s;
  c->fn = fn;
  c->arg = arg;
  c->data = NULL;
  c->wake_pending = 0;
#ifdef CORO_ASAN
  c->asan_fake = NULL;
#endif
  c->sp = coro_ctx_make(c->lo, s->stack_bytes, coro_fiber_main);
  c->state = CORO_READY;
  coro_ready_push(s, c);
  s->live_n++;
  s->st.spawns++;
  if (out)
    *out = c;
  return JDB_OK;
}

/* Run READY fibers while the budget lasts: every switch into a fiber (from the scheduler or a
   handoff from yield/park) spends one unit; a fiber that finds the budget spent goes back to the
   scheduler instead of handing off, and the run ends. */
static size_t coro_sched_run_budget(struct coro_sched *s, size_t budget)
{
  JDB_ASSERT(s != NULL);
  JDB_ASSERT(pthread_equal(s->owner, pthread_self()));
  JDB_ASSERT(coro_tls_cur == NULL);     /* not from inside a fiber */
  JDB_ASSERT(coro_tls_sched == NULL);   /* not nested */
  coro_tls_sched = s;
  s->budget = budget;
  uint64_t start = s->st.switches;
  struct coro *c;
  while (s->budget > 0 && (c = coro_ready_pop(s)) != NULL) {
    s->budget--;
    c->state = CORO_RUNNING;
    coro_tls_cur = c;
    s->st.switches++;
#ifdef CORO_ASAN
    s->asan_from_main = true;
    coro_jump(s, &s->main_sp, &s->main_fake, c->sp, c->lo, s->stack_bytes);
#else
    coro_jump(s, &s->main_sp, NULL, c->sp, c->lo, s->stack_bytes);
#endif
    /* Back on the thread's stack: the last fiber to run parked or yielded with nothing ready or
       no budget left, or died. */
    JDB_ASSERT(coro_tls_cur == NULL);
    if (s->dead) {
      coro_stack_unpoison(s, s->dead);
      coro_stack_put(s, s->dead);
      s->dead = NULL;
    }
  }
  coro_tls_sched = NULL;
  return (size_t)(s->st.switches - start);
}

size_t coro_sched_run(struct coro_sched *s)
{
  return coro_sched_run_budget(s, SIZE_MAX);
}

size_t coro_sched_run_round(struct coro_sched *s)
{
  return coro_sched_run_budget(s, s->ready_n);
}

size_t coro_sched_live(const struct coro_sched *s)
{
  return s->live_n;
}

size_t coro_sched_ready(const struct coro_sched *s)
{
  return s->ready_n;
}

void coro_sched_stats_get(const struct coro_sched *s, struct coro_sched_stats *out)
{
  *out = s->st;
  out->pool_count = s->pool_n;
}

struct coro *coro_self(void)
{
  return coro_tls_cur;
}

struct coro_sched *coro_sched_self(void)
{
  return coro_tls_sched;
}

void coro_yield(void)
{
  struct coro *c = coro_tls_cur;
  JDB_ASSERT(c != NULL);   /* coro_yield outside a fiber */
  JDB_ASSERT(c->state == CORO_RUNNING);
  struct coro_sched *s = c->sched;
  if (s->budget == 0) {
    /* Round over: back to the scheduler, first in line for the next round's tail. */
    c->state = CORO_READY;
    coro_ready_push(s, c);
    coro_jump_to_main(s, c, false);
  } else {
    struct coro *n = coro_ready_pop(s);
    s->budget--;
    if (!n)
      return;   /* alone in the queue: it would be picked again at once */
    c->state = CORO_READY;
    coro_ready_push(s, c);
    coro_handoff(s, c, n);
  }
  JDB_ASSERT(coro_tls_cur == c);
  JDB_ASSERT(c->state == CORO_RUNNING);
}

void coro_park(void)
{
  struct coro *c = coro_tls_cur;
  JDB_ASSERT(c != NULL);   /* coro_park outside a fiber */
  JDB_ASSERT(c->state == CORO_RUNNING);
  if (c->wake_pending) {
    c->wake_pending = 0;
    return;
  }
  struct coro_sched *s = c->sched;
  c->state = CORO_PARKED;
  struct coro *n = s->budget > 0 ? coro_ready_pop(s) : NULL;
  if (n) {
    s->budget--;
    coro_handoff(s, c, n);
  }
  else
    coro_jump_to_main(s, c, false);
  JDB_ASSERT(coro_tls_cur == c);
  JDB_ASSERT(c->state == CORO_RUNNING);
}

void coro_wake(struct coro *c)
{
  JDB_ASSERT(c != NULL);
  JDB_ASSERT(pthread_equal(c->sched->owner, pthread_self()));
  switch (c->state) {
  case CORO_PARKED:
    c->state = CORO_READY;
    coro_ready_push(c->sched, c);
    break;
  case CORO_READY:
  case CORO_RUNNING:
    c->wake_pending = 1;
    break;
  default:
    err_assert_fail("coro_wake of a dead fiber", __FILE__, __LINE__, __func__);
  }
}

void coro_set_data(struct coro *c, void *data)
{
  c->data = data;
}

void *coro_get_data(const struct coro *c)
{
  return c->data;
}
