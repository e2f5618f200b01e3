/*
 * coro.h - fibers: stackful coroutines with pooled stacks and guard pages, one scheduler per
 * thread.
 *
 * A fiber runs until it yields, parks or returns. Parking is how code waits for I/O: the waiter
 * records coro_self(), parks, and whoever completes the wait calls coro_wake() on the same
 * thread. A scheduler belongs to the thread that created it; fibers never migrate.
 *
 * States (function making the transition):
 *   coro_spawn -> READY -> (coro_sched_run) RUNNING -> coro_yield -> READY
 *                                         RUNNING -> coro_park  -> PARKED -> coro_wake -> READY
 *                                         RUNNING -> return from fn -> DEAD (stack back to pool)
 */
#ifndef JDB_CORO_H
#define JDB_CORO_H

#include <stddef.h>
#include <stdint.h>

struct coro;
struct coro_sched;

struct coro_sched_opts {
  size_t stack_bytes;    /* usable stack per fiber, rounded to pages (default 64 KiB; 256 KiB
                            under ASan) */
  size_t pool_max;       /* stacks kept for reuse after fibers die (default 1024) */
};
/* A field left 0 takes its default. */

/* Create a scheduler owned by the calling thread. JDB_OK, JDB_EINVAL (stack_bytes below 16 KiB
   or above 1 GiB), JDB_ENOMEM. */
int coro_sched_create(const struct coro_sched_opts *opts /* NULL = defaults */,
                      struct coro_sched **out);
/* Destroy: every fiber must be dead (asserted); frees pooled stacks. */
void coro_sched_destroy(struct coro_sched *s);

/* New fiber running fn(arg), READY at the tail of the run queue. JDB_OK or JDB_ENOMEM.
   `out` may be NULL; the handle is valid until the fiber returns. Callable from a fiber or from
   outside one, on the scheduler's thread. */
int coro_spawn(struct coro_sched *s, void (*fn)(void *arg), void *arg, struct coro **out);

/* Run READY fibers until none is ready (fibers made ready meanwhile also run). Returns how many
   switches happened. Must be called from outside any fiber, on the scheduler's thread. */
size_t coro_sched_run(struct coro_sched *s);
/* One round: run at most as many fiber switches as there were READY fibers at entry, then
   return, even if fibers keep yielding. Reactors call this between I/O polls, so a fiber that
   yields in a loop cannot starve the loop. Same calling rules as coro_sched_run. */
size_t coro_sched_run_round(struct coro_sched *s);
/* Fibers not yet DEAD (READY + RUNNING + PARKED). */
size_t coro_sched_live(const struct coro_sched *s);
size_t coro_sched_ready(const struct coro_sched *s);

/* The running fiber, or NULL when the caller is not inside a fiber. */
struct coro *coro_self(void);
/* The calling thread's scheduler while inside coro_sched_run, else NULL. */
struct coro_sched *coro_sched_self(void);

/* From inside a fiber only: */
void coro_yield(void);   /* go to the tail of the run queue */
void coro_park(void);    /* sleep until coro_wake(self) */
/* Make a PARKED fiber READY. If it is READY or RUNNING the call does not change its state but
   records a pending wake, so a wake that races ahead of the park is not lost: the fiber's next
   coro_park consumes it and returns at once (several wakes before one park count once). So
   coro_park may return before the awaited event: waiters re-check their condition in a loop.
   Waking a DEAD fiber is a caller bug (asserted). Callable from a fiber or from outside one,
   on the scheduler's thread only. */
void coro_wake(struct coro *c);

/* Per-fiber user pointer (e.g. the request it serves). */
void coro_set_data(struct coro *c, void *data);
void *coro_get_data(const struct coro *c);

/* Counters of one scheduler since coro_sched_create (tests and metrics). */
struct coro_sched_stats {
  uint64_t spawns;          /* coro_spawn calls that succeeded */
  uint64_t switches;        /* context switches into fibers (what coro_sched_run counts) */
  uint64_t stacks_mapped;   /* stacks created with mmap */
  uint64_t stacks_reused;   /* stacks taken from the pool */
  uint64_t stacks_unmapped; /* stacks released because the pool was full (or at destroy) */
  size_t pool_count;        /* stacks in the pool now */
};
void coro_sched_stats_get(const struct coro_sched *s, struct coro_sched_stats *out);

/* Internal to coro.c and coro_switch.c (the machine-dependent part); not for other units.
   coro_ctx_make builds a fresh context on the stack [lo, lo + bytes) that starts running
   entry() (which must never return) and returns its handle. coro_ctx_switch saves the running
   context, stores its handle in *from, and resumes the context `to`; it returns when someone
   switches back to *from. */
void *coro_ctx_make(void *lo, size_t bytes, void (*entry)(void));
void coro_ctx_switch(void **from, void *to);

#endif
