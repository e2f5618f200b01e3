/*
 * rt_client.c - the client side: per-thread state, rings, rt_call / rt_call_many, waiting.
 *
 * A client thread's link to one instance is a struct rt_client holding its rings (one per
 * shard, made on first use). Each client is on two lists, both changed only under the
 * process-wide rt_g_lock: its thread's (struct rt_tls, found through a pthread key whose
 * destructor runs at thread exit) and its instance's (rt->clients). Whichever comes first
 * unlinks it from both and frees it:
 *   - thread exit (rt_tls_exit): marks the client's rings dead (the shards free them) and wakes
 *     their shards; every instance still on the thread's list is alive, because
 *   - rt_close (rt_clients_detach), after its shards stopped, takes all of its clients off their
 *     threads' lists before the instance is freed; their rings go with the instance.
 * So the exit hook never touches a freed instance, and rt_close never a freed thread state.
 *
 * Fast path: a small per-thread cache maps an instance's uid (never reused, unlike its address)
 * to the client; a miss takes rt_g_lock. A stale entry (instance closed) names a uid no live
 * instance has, so it is never matched again.
 *
 * In flight: rt_enter counts a call in rt->inflight and then checks rt->closing; rt_shutdown
 * sets closing and then waits for inflight to drain (both sequentially consistent, so a call
 * either sees closing or is waited for). Everything the call touches (client, rings) stays
 * alive while it is counted.
 *
 * Waiting: a request's state is a futex word (RT_REQ_PENDING, DONE, ASLEEP). The client spins
 * (briefly with a CPU pause, then yielding) up to RT_SPIN_NS, or RT_SPIN_LONG_NS while few enough
 * other clients do the same, then moves PENDING -> ASLEEP and sleeps in FUTEX_WAIT until DONE;
 * the shard's exchange to DONE tells it whether a FUTEX_WAKE is needed (rt_req_done).
 * rt_call_many spends one spin budget on all its requests.
 */
#include "rt_int.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Client wait: pause-spin RT_SPIN_PAUSE_NS (an empty call's round trip is ~0.3 us when both
   sides are awake), then sched_yield until RT_SPIN_NS (when client threads outnumber the free
   cores, the shard may be waiting for this very CPU), then the futex. Measured on 2 cores with
   2 shards and 1..4 clients calling empty functions (under SCHED_FIFO, to keep the shared
   machine's other load out): yielding after 1 us instead of pause-spinning all 15 us (with the
   shard's idle yield, rt_reactor.c) raised calls/s from 32k/81k/79k to 276k/453k/476k at the
   same 0.3 us awake p50.
   Many waiters: the yield phase costs every waiter's 15 us of a core; 64 threads waiting for
   group commits (fdatasyncs of ~100 us) spent a whole core-millisecond yielding per round, so
   above rt->yield_waiters waiters a client goes from the pause spin straight to the futex.
   Long calls: a call longer than the spin (a pipeline of 16 gets runs ~30 us on the shard) paid
   a futex sleep and wake-up, 20-60 us on this VM: 16-get pipelines ran at 207-280 k gets/s,
   3.6-6 us each, slower than single gets. So a waiting client may go on yielding to
   RT_SPIN_LONG_NS while it holds one of rt->long_spin_slots (the cores no shard has, at least
   one); 557 k gets/s then. */
#define RT_SPIN_PAUSE_NS 1000u
#define RT_SPIN_NS 15000u
#define RT_SPIN_LONG_NS 200000u
#define RT_TLS_CACHE 4      /* instances a thread finds without the lock */

struct rt_tls {             /* one client thread */
  struct rt_client *head;
};

struct rt_client {          /* one client thread's link to one instance */
  struct rt *rt;
  struct rt_tls *tls;
  struct rt_client *thr_next, **thr_pprev;   /* the thread's list */
  struct rt_client *rt_next, **rt_pprev;     /* the instance's list */
  struct rt_ring *rings[];                   /* per shard; NULL until first use */
};

static pthread_mutex_t rt_g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t rt_g_once = PTHREAD_ONCE_INIT;
static pthread_key_t rt_g_key;
static int rt_g_key_rc;

static __thread struct rt_tls *rt_tls_self;
static __thread uint64_t rt_tc_uid[RT_TLS_CACHE];
static __thread struct rt_client *rt_tc_client[RT_TLS_CACHE];
static __thread unsigned rt_tc_next;

/* ------------------------------------------------------------------------------------------- */
/* Client state */

static void rt_client_unlink(struct rt_client *cl)
{
  if ((*cl->thr_pprev = cl->thr_next))
    cl->thr_next->thr_pprev = cl->thr_pprev;
  if ((*cl->rt_pprev = cl->rt_next))
    cl->rt_next->rt_pprev = cl->rt_pprev;
}

static void rt_tc_clear(void)
{
  memset(rt_tc_uid, 0, sizeof rt_tc_uid);
  memset(rt_tc_client, 0, sizeof rt_tc_client);
}

/* The pthread key destructor: the thread exits. */
static void rt_tls_exit(void *p)
{
  struct rt_tls *tls = p;
  pthread_mutex_lock(&rt_g_lock);
  struct rt_client *cl;
  while ((cl = tls->head)) {
    rt_client_unlink(cl);
    for (uint32_t s = 0; s < cl->rt->nshards; s++) {
      if (!cl->rings[s])
        continue;
      atomic_store_explicit(&cl->rings[s]->dead, 1, memory_order_release);
      rt_shard_wake(&cl->rt->shards[s], 1);
    }
    mem_free(cl);
  }
  pthread_mutex_unlock(&rt_g_lock);
  mem_free(tls);
  if (rt_tls_self == tls)
    rt_tls_self = NULL;
  rt_tc_clear();
}

static void rt_g_init(void)
{
  rt_g_key_rc = pthread_key_create(&rt_g_key, rt_tls_exit);
}

void rt_clients_detach(struct rt *rt)
{
  pthread_mutex_lock(&rt_g_lock);
  struct rt_client *cl;
  while ((cl = rt->clients)) {
    rt_client_unlink(cl);
    mem_free(cl);
  }
  pthread_mutex_unlock(&rt_g_lock);
}

static struct rt_client *rt_client_find_slow(struct rt *rt)
{
  pthread_once(&rt_g_once, rt_g_init);
  if (rt_g_key_rc)
    return NULL;
  struct rt_client *cl = NULL;
  pthread_mutex_lock(&rt_g_lock);
  if (!rt_tls_self) {
    struct rt_tls *tls = mem_calloc(1, sizeof *tls);
    if (!tls || pthread_setspecific(rt_g_key, tls)) {
      mem_free(tls);
      goto out;
    }
    rt_tls_self = tls;
  }
  /* The thread's list holds live instances only (rt_close detaches), so the address is
     enough here. */
  for (cl = rt_tls_self->head; cl; cl = cl->thr_next)
    if (cl->rt == rt)
      break;
  if (!cl) {
    cl = mem_calloc(1, sizeof *cl + rt->nshards * sizeof cl->rings[0]);
    if (!cl)
      goto out;
    cl->rt = rt;
    cl->tls = rt_tls_self;
    if ((cl->thr_next = rt_tls_self->head))
      cl->thr_next->thr_pprev = &cl->thr_next;
    cl->thr_pprev = &rt_tls_self->head;
    rt_tls_self->head = cl;
    if ((cl->rt_next = rt->clients))
      cl->rt_next->rt_pprev = &cl->rt_next;
    cl->rt_pprev = &rt->clients;
    rt->clients = cl;
  }
  unsigned i = rt_tc_next++ % RT_TLS_CACHE;
  rt_tc_uid[i] = rt->uid;
  rt_tc_client[i] = cl;
out:
  pthread_mutex_unlock(&rt_g_lock);
  return cl;
}

static inline struct rt_client *rt_client_find(struct rt *rt)
{
  for (unsigned i = 0; i < RT_TLS_CACHE; i++)
    if (rt_tc_uid[i] == rt->uid)
      return rt_tc_client[i];
  return rt_client_find_slow(rt);
}

/* ------------------------------------------------------------------------------------------- */
/* Rings */

static struct rt_ring *rt_ring_attach(struct rt_shard *sh)
{
  struct rt_ring *r = mem_calloc(1, sizeof *r);
  if (!r)
    return NULL;
  ck_ring_init(&r->ring, RT_RING_SIZE);
  pthread_mutex_lock(&sh->slot_lock);
  uint32_t i = 0;
  while (i < RT_RINGS_MAX && atomic_load_explicit(&sh->slots[i], memory_order_relaxed))
    i++;
  if (i == RT_RINGS_MAX) {
    pthread_mutex_unlock(&sh->slot_lock);
    LOG_ERROR("shard %u: more than %u client threads", sh->id, RT_RINGS_MAX);
    mem_free(r);
    return NULL;
  }
  atomic_store_explicit(&sh->slots[i], r, memory_order_release);
  if (i + 1 > atomic_load_explicit(&sh->hwm, memory_order_relaxed))
    atomic_store_explicit(&sh->hwm, i + 1, memory_order_release);
  atomic_fetch_add_explicit(&sh->nrings, 1, memory_order_relaxed);
  pthread_mutex_unlock(&sh->slot_lock);
  return r;
}

static void rt_ring_post(struct rt_shard *sh, struct rt_ring *r, struct rt_req *req)
{
  while (!rt_ring_put(r, req)) {
    /* Full: the shard has a backlog; make sure it is awake and let it run. */
    atomic_thread_fence(memory_order_seq_cst);
    rt_shard_wake(sh, 0);
    sched_yield();
  }
  atomic_thread_fence(memory_order_seq_cst);
  rt_shard_wake(sh, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Waiting */

static int rt_req_is_done(const uint32_t *word)
{
  return __atomic_load_n(word, __ATOMIC_ACQUIRE) == RT_REQ_DONE;
}

/* *spin_start: when the caller's spin budget began (0: now); *long_spin: this caller holds one of
   rt's long-spin slots (taken here, released by the caller). */
static void rt_req_wait(struct rt *rt, struct rt_req *req, uint64_t *spin_start, int *long_spin)
{
  uint32_t *word = &req->state;
  if (rt_req_is_done(word))
    return;
  if (!*spin_start)
    *spin_start = clock_mono_ns();
  for (unsigned i = 1;; i++) {
    if (rt_req_is_done(word))
      return;
    if (!(i & 15) && clock_mono_ns() - *spin_start >= RT_SPIN_PAUSE_NS)
      break;
    rt_cpu_relax();
  }
  while (atomic_load_explicit(&rt->waiters, memory_order_relaxed) <= rt->yield_waiters &&
         clock_mono_ns() - *spin_start < RT_SPIN_NS) {
    if (rt_req_is_done(word))
      return;
    sched_yield();
  }
  if (!*long_spin && clock_mono_ns() - *spin_start < RT_SPIN_LONG_NS) {
    if (atomic_fetch_add_explicit(&rt->long_spinners, 1, memory_order_relaxed) <
        rt->long_spin_slots)
      *long_spin = 1;
    else
      atomic_fetch_sub_explicit(&rt->long_spinners, 1, memory_order_relaxed);
  }
  if (*long_spin) {
    while (clock_mono_ns() - *spin_start < RT_SPIN_LONG_NS) {
      if (rt_req_is_done(word))
        return;
      sched_yield();
    }
    *long_spin = 0;   /* going to sleep: the slot is another client's to use */
    atomic_fetch_sub_explicit(&rt->long_spinners, 1, memory_order_relaxed);
  }
  uint32_t expect = RT_REQ_PENDING;
  __atomic_compare_exchange_n(word, &expect, RT_REQ_ASLEEP, 0, __ATOMIC_ACQ_REL,
                              __ATOMIC_ACQUIRE);
  while (!rt_req_is_done(word))
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, RT_REQ_ASLEEP, NULL, NULL, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Calls */

static int rt_enter(struct rt *rt)
{
  atomic_fetch_add(&rt->inflight, 1);
  if (atomic_load(&rt->closing)) {
    atomic_fetch_sub(&rt->inflight, 1);
    return JDB_ECLOSED;
  }
  return JDB_OK;
}

static void rt_leave(struct rt *rt)
{
  atomic_fetch_sub_explicit(&rt->inflight, 1, memory_order_release);
}

void rt_shutdown(struct rt *rt)
{
  if (!rt)
    return;
  atomic_store(&rt->closing, 1);
  while (atomic_load(&rt->inflight))
    usleep(50);
}

int rt_call_many(struct rt *rt, struct rt_req *reqs, size_t n)
{
  if (!rt || (n && !reqs))
    return JDB_EINVAL;
  /* A shard thread waiting for a shard (itself or another, whose calls may wait for it) could
     deadlock. */
  int first = rt_shard_self() ? JDB_EINVAL : rt_enter(rt);
  struct rt_client *cl = NULL;
  if (!first) {
    cl = rt_client_find(rt);
    if (!cl) {
      rt_leave(rt);
      first = JDB_ENOMEM;
    }
  }
  if (first) {
    for (size_t i = 0; i < n; i++) {
      reqs[i].rc = first;
      reqs[i].state = RT_REQ_DONE;
    }
    return first;
  }
  for (size_t i = 0; i < n; i++) {
    struct rt_req *req = &reqs[i];
    req->state = RT_REQ_PENDING;
    int rc = req->shard < rt->nshards && req->fn ? JDB_OK : JDB_EINVAL;
    struct rt_ring *r = rc ? NULL : cl->rings[req->shard];
    if (!rc && !r) {
      r = cl->rings[req->shard] = rt_ring_attach(&rt->shards[req->shard]);
      rc = r ? JDB_OK : JDB_ENOMEM;
    }
    if (rc) {
      req->rc = rc;
      req->state = RT_REQ_DONE;
      if (!first)
        first = rc;
      continue;
    }
    rt_ring_post(&rt->shards[req->shard], r, req);
  }
  uint64_t spin_start = 0;
  int long_spin = 0;
  atomic_fetch_add_explicit(&rt->waiters, 1, memory_order_relaxed);
  for (size_t i = 0; i < n; i++)
    rt_req_wait(rt, &reqs[i], &spin_start, &long_spin);
  atomic_fetch_sub_explicit(&rt->waiters, 1, memory_order_relaxed);
  if (long_spin)
    atomic_fetch_sub_explicit(&rt->long_spinners, 1, memory_order_relaxed);
  rt_leave(rt);
  return first;
}

int rt_call(struct rt *rt, uint32_t shard, rt_fn fn, void *arg)
{
  struct rt_req req = {.shard = shard, .fn = fn, .arg = arg};
  int rc = rt_call_many(rt, &req, 1);
  return rc ? rc : req.rc;
}
