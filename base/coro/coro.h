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

/* Create a scheduler owned by the calling thread. JDB_OK, JDB_EINVAL, JDB_ENOMEM. */
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
/* Make a PARKED fiber READY (no-op if it is READY or RUNNING, so a wake that races ahead of the
   park is not lost: the next coro_park returns at once). Same thread only. */
void coro_wake(struct coro *c);

/* Per-fiber user pointer (e.g. the request it serves). */
void coro_set_data(struct coro *c, void *data);
void *coro_get_data(const struct coro *c);

#endif
