/*
 * rt_int.h - what the runtime's files share: the instance, shard and ring structs, the request
 * states, and the functions one file calls in another. Only runtime/ includes it.
 *
 *   rt.c          instance: directory, LOCK, MANIFEST, shard start and stop, accessors
 *   rt_reactor.c  shard thread: its I/O context, scheduler and tablet, the reactor loop, sleep
 *                 and wake-up
 *   rt_client.c   client threads: per-thread state, rings, rt_call / rt_call_many, waiting
 *
 * Ownership of a ring: made and attached (put in a shard's slot table) by its client thread on
 * its first call to that shard; from then on reachable from the slot table. When the client
 * thread exits, its ring is marked dead and the shard frees it once empty; at rt_close, after
 * the shards stopped, rt.c frees every ring still attached.
 */
#ifndef JDB_RT_INT_H
#define JDB_RT_INT_H

#include "rt.h"

#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define RT_RING_SIZE 1024u     /* ring slots (a power of two); holds RT_RING_SIZE - 1 requests */
#define RT_RINGS_MAX 4096u     /* client rings per shard (client threads calling it at once) */
#define RT_CACHELINE 64

/* rt_req.state, the futex word */
enum { RT_REQ_PENDING = 0, RT_REQ_DONE = 1, RT_REQ_ASLEEP = 2 };

struct rt_ring {                 /* one (client thread, shard) pair; single producer, single consumer */
  ck_ring_t ring;
  atomic_int dead;               /* the client thread is gone: the shard frees the ring */
  ck_ring_buffer_t buf[RT_RING_SIZE];
};

struct rt_shard {
  struct rt *rt;
  uint32_t id;
  int cpu;                       /* pinned CPU, or -1 */
  int efd;                       /* eventfd the shard sleeps on; closed by rt.c at the end */
  int thread_started;
  pthread_t thread;
  /* Owned by the shard thread. */
  struct fs_ctx *ctx;
  struct coro_sched *sched;
  struct tab *tab;
  int open_rc;                   /* setup result, reported to rt_open */
  int close_rc;                  /* tab_close result */
  int flush_logged, poll_logged;
  /* Client rings. slots[] and hwm change under slot_lock (clients attach, the shard detaches
     dead rings); the shard reads them without it. */
  pthread_mutex_t slot_lock;
  int slot_lock_init;
  _Atomic(struct rt_ring *) *slots;     /* RT_RINGS_MAX entries */
  atomic_uint hwm;                      /* slots[hwm ..] are all NULL */
  atomic_uint nrings;
  /* Written by clients. */
  _Alignas(RT_CACHELINE) atomic_int sleeping;   /* the shard is (about to be) asleep on efd */
  atomic_int stop;                              /* rt_close: finish the fibers and exit */
  _Atomic uint64_t wakeups_sent;
  /* Written by the shard only. */
  _Alignas(RT_CACHELINE) _Atomic uint64_t calls;
  _Atomic uint64_t loops;
  _Atomic uint64_t sleeps;
};

struct rt_client;

struct rt {
  char *path;
  uint64_t uid;                  /* never reused: keys the client threads' caches */
  uint32_t nshards;
  int lock_fd;
  int io_backend;
  struct tab_opts tab;           /* per shard */
  struct rt_shard *shards;
  /* shard start-up: each shard reports its open result */
  pthread_mutex_t start_lock;
  pthread_cond_t start_cond;
  uint32_t nreported;
  struct rt_client *clients;     /* client threads attached; under rt_g_lock (rt_client.c) */
  _Alignas(RT_CACHELINE) atomic_uint inflight;  /* calls between rt_enter and rt_leave */
  atomic_int closing;
  /* client waits (rt_client.c): clients waiting now, and above how many they skip the yield
     phase; clients yielding past RT_SPIN_NS now, and how many may at once */
  _Alignas(RT_CACHELINE) atomic_uint waiters;
  uint32_t yield_waiters;
  atomic_uint long_spinners;
  uint32_t long_spin_slots;
};

/* rt_reactor.c */
void *rt_shard_main(void *arg);              /* the shard thread */
/* Wake the shard if it sleeps (force: write its eventfd anyway). Any thread. */
void rt_shard_wake(struct rt_shard *sh, int force);
/* The calling thread's shard, or NULL on other threads. */
struct rt_shard *rt_shard_self(void);

/* rt_client.c */
/* Drop every client thread's link to rt (rt_close, after the shards stopped): the threads'
   exit hooks no longer see it. */
void rt_clients_detach(struct rt *rt);

/* Complete a request: store rc, publish, wake the client if it sleeps. The request may be gone
   as soon as the state turns DONE, so nothing but the futex wake follows. */
void rt_req_done(struct rt_req *req, int rc);

/* ThreadSanitizer cannot see ck_ring's ordering (inline assembly fences), so under TSan the
   ring operations are hidden from it and the hand-over of a request is declared instead:
   release before the enqueue that publishes it, acquire after the dequeue that takes it. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define RT_TSAN_ACQUIRE(p) __tsan_acquire(p)
#define RT_TSAN_RELEASE(p) __tsan_release(p)
#define RT_TSAN_HIDE_BEGIN() __tsan_ignore_thread_begin()
#define RT_TSAN_HIDE_END() __tsan_ignore_thread_end()
#else
#define RT_TSAN_ACQUIRE(p) ((void)0)
#define RT_TSAN_RELEASE(p) ((void)0)
#define RT_TSAN_HIDE_BEGIN() ((void)0)
#define RT_TSAN_HIDE_END() ((void)0)
#endif

static inline int rt_ring_put(struct rt_ring *r, struct rt_req *req)
{
  RT_TSAN_RELEASE(req);
  RT_TSAN_HIDE_BEGIN();
  int ok = ck_ring_enqueue_spsc(&r->ring, r->buf, req);
  RT_TSAN_HIDE_END();
  return ok;
}

static inline struct rt_req *rt_ring_take(struct rt_ring *r)
{
  struct rt_req *req = NULL;
  RT_TSAN_HIDE_BEGIN();
  int ok = ck_ring_dequeue_spsc(&r->ring, r->buf, &req);
  RT_TSAN_HIDE_END();
  if (!ok)
    return NULL;
  RT_TSAN_ACQUIRE(req);
  return req;
}

static inline unsigned rt_ring_count(struct rt_ring *r)
{
  RT_TSAN_HIDE_BEGIN();
  unsigned n = ck_ring_size(&r->ring);
  RT_TSAN_HIDE_END();
  return n;
}

static inline void rt_stat_inc(_Atomic uint64_t *c)
{
  /* single writer: no locked instruction needed */
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

static inline void rt_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
