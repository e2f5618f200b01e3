/*
 * rt_reactor.c - a shard's thread: it makes its I/O context (io_uring rings are single-issuer,
 * so the owning thread creates them), its fiber scheduler and opens its tablet, reports to
 * rt_open, then runs the reactor until rt_close stops it, closes the tablet outside any fiber
 * and frees what it made.
 *
 * Reactor turn: drain every attached ring (a fiber per request), run ready fibers one round,
 * one fs_flush for all queued I/O, reap completions without blocking (waking fibers). A turn
 * that found nothing to do starts an idle stretch: the loop keeps turning for RT_IDLE_SPIN_NS
 * (a client posting back-to-back calls finds the shard awake; after the first RT_IDLE_PAUSE_NS
 * each idle turn yields the CPU), then sleeps - but never while its own I/O is in flight: a
 * shard waiting for a log fdatasync keeps turning (yielding) until the completion, because
 * waking a sleeping thread costs ~20-50 us on this VM and made jdb_put_sync 1.5-2x the
 * write+fdatasync floor (p50 150-180 us vs 123 us with the polling, floor 90-96 us).
 *
 * Sleep protocol (no lost wake-up):
 *   shard:  sleeping = 1; fence; re-check rings, ready fibers, stop; poll(efd); sleeping = 0
 *   client: enqueue; fence; if (sleeping && exchange(sleeping, 0)) write(efd)
 * With both fences sequentially consistent, either the shard's re-check sees the request or
 * the client sees sleeping == 1 (or a later 0 from a wake already under way). I/O completions
 * signal the same eventfd (fs_ctx_set_notify_fd); psync completes its ops inside fs_flush, so
 * it has nothing to signal. The poll timeout is only a safety net.
 *
 * Never blocks in fs_poll(ctx, 1): clients could not wake it there.
 */
#include "rt_int.h"

#include "clock.h"
#include "coro.h"
#include "err.h"
#include "fs.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Idle stretch before sleeping: RT_IDLE_PAUSE_NS of turns with a CPU pause, then turns with
   sched_yield (a client thread waiting for a core gets it) until RT_IDLE_SPIN_NS. Waking a
   sleeping shard costs ~15-45 us here (eventfd write, then the VM's wake-up of the thread).
   20 us was too short for a client that spends longer between calls: checking a 256-get
   pipeline's results takes it ~30 us, so every exec found the shard asleep and paid the wake-up
   (449 us per exec, 557 k gets/s; with 200 us: 258-370 us, 672-915 k gets/s, same run). Seastar's
   reactor polls about as long (idle-poll-time-us) before it sleeps. */
#define RT_IDLE_PAUSE_NS 2000u
#define RT_IDLE_SPIN_NS 200000u
#define RT_SLEEP_MS 100          /* safety net: a sleeping shard looks around at least this often */

static __thread struct rt_shard *rt_self;

struct rt_shard *rt_shard_self(void)
{
  return rt_self;
}

uint32_t rt_self_shard(void)
{
  return rt_self ? rt_self->id : UINT32_MAX;
}

struct fs_ctx *rt_self_ctx(void)
{
  return rt_self ? rt_self->ctx : NULL;
}

void rt_shard_wake(struct rt_shard *sh, int force)
{
  if (!force && !(atomic_load_explicit(&sh->sleeping, memory_order_relaxed) &&
                  atomic_exchange(&sh->sleeping, 0)))
    return;
  uint64_t one = 1;
  if (write(sh->efd, &one, sizeof one) == (ssize_t)sizeof one)
    atomic_fetch_add_explicit(&sh->wakeups_sent, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------- */
/* Requests */

void rt_req_done(struct rt_req *req, int rc)
{
  req->rc = rc;
  uint32_t *word = &req->state;
  if (__atomic_exchange_n(word, RT_REQ_DONE, __ATOMIC_ACQ_REL) == RT_REQ_ASLEEP)
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void rt_call_fiber(void *arg)
{
  struct rt_req *req = arg;
  struct rt_shard *sh = rt_self;
  int rc = req->fn(sh->tab, req->arg);
  rt_stat_inc(&sh->calls);
  rt_req_done(req, rc);
}

/* ------------------------------------------------------------------------------------------- */
/* Rings */

/* A dead ring's client thread is gone; it posted nothing that is not done (it waited for every
   call), so the ring is empty. */
static void rt_shard_ring_free(struct rt_shard *sh, uint32_t slot, struct rt_ring *r)
{
  pthread_mutex_lock(&sh->slot_lock);
  atomic_store_explicit(&sh->slots[slot], NULL, memory_order_relaxed);
  atomic_fetch_sub_explicit(&sh->nrings, 1, memory_order_relaxed);
  unsigned hwm = atomic_load_explicit(&sh->hwm, memory_order_relaxed);
  while (hwm > 0 && !atomic_load_explicit(&sh->slots[hwm - 1], memory_order_relaxed))
    hwm--;
  atomic_store_explicit(&sh->hwm, hwm, memory_order_release);
  pthread_mutex_unlock(&sh->slot_lock);
  mem_free(r);
}

static size_t rt_shard_drain(struct rt_shard *sh)
{
  size_t n = 0;
  unsigned hwm = atomic_load_explicit(&sh->hwm, memory_order_acquire);
  for (unsigned i = 0; i < hwm; i++) {
    struct rt_ring *r = atomic_load_explicit(&sh->slots[i], memory_order_acquire);
    if (!r)
      continue;
    int dead = atomic_load_explicit(&r->dead, memory_order_acquire);
    struct rt_req *req;
    while ((req = rt_ring_take(r))) {
      n++;
      int rc = coro_spawn(sh->sched, rt_call_fiber, req, NULL);
      if (rc)
        rt_req_done(req, rc);
    }
    if (dead)
      rt_shard_ring_free(sh, i, r);
  }
  return n;
}

static int rt_shard_rings_pending(struct rt_shard *sh)
{
  unsigned hwm = atomic_load_explicit(&sh->hwm, memory_order_acquire);
  for (unsigned i = 0; i < hwm; i++) {
    struct rt_ring *r = atomic_load_explicit(&sh->slots[i], memory_order_acquire);
    if (r && (rt_ring_count(r) || atomic_load_explicit(&r->dead, memory_order_relaxed)))
      return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Loop */

static void rt_shard_sleep(struct rt_shard *sh)
{
  atomic_store(&sh->sleeping, 1);
  atomic_thread_fence(memory_order_seq_cst);
  if (!rt_shard_rings_pending(sh) && !coro_sched_ready(sh->sched) &&
      !atomic_load(&sh->stop)) {
    rt_stat_inc(&sh->sleeps);
    struct pollfd pf = {.fd = sh->efd, .events = POLLIN};
    if (poll(&pf, 1, RT_SLEEP_MS) > 0) {
      uint64_t v;
      if (read(sh->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        LOG_WARN("shard %u: eventfd read: %s", sh->id, strerror(errno));
    }
  }
  atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
}

static void rt_shard_loop(struct rt_shard *sh)
{
  uint64_t idle_from = 0;
  for (;;) {
    rt_stat_inc(&sh->loops);
    size_t work = rt_shard_drain(sh);
    work += coro_sched_run_round(sh->sched);
    int rc = fs_flush(sh->ctx);
    if (rc)
      log_once(&sh->flush_logged, JDB_LOG_ERROR, "shard %u: fs_flush: %s", sh->id,
               jdb_strerror(rc));
    rc = fs_poll(sh->ctx, 0);
    if (rc > 0)
      work += (size_t)rc;
    else if (rc < 0)
      log_once(&sh->poll_logged, JDB_LOG_ERROR, "shard %u: fs_poll: %s", sh->id,
               jdb_strerror(rc));
    if (work || coro_sched_ready(sh->sched)) {
      idle_from = 0;
      continue;
    }
    if (atomic_load(&sh->stop) && coro_sched_live(sh->sched) == 0)
      return;
    uint64_t now = clock_mono_ns();
    if (!idle_from)
      idle_from = now;
    if (now - idle_from < RT_IDLE_PAUSE_NS) {
      rt_cpu_relax();
      continue;
    }
    if (now - idle_from < RT_IDLE_SPIN_NS || fs_inflight(sh->ctx) > 0) {
      sched_yield();
      continue;
    }
    rt_shard_sleep(sh);
    idle_from = 0;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Thread */

static void rt_shard_pin(struct rt_shard *sh)
{
  if (sh->cpu < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(sh->cpu, &set);
  int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (e) {
    LOG_WARN("shard %u: pinning to CPU %d failed (%s); running unpinned", sh->id, sh->cpu,
             strerror(e));
    sh->cpu = -1;
  }
}

static int rt_shard_setup(struct rt_shard *sh)
{
  struct rt *rt = sh->rt;
  struct fs_ctx_opts fo = {.backend = rt->io_backend};
  int rc = fs_ctx_create(&fo, &sh->ctx);
  if (rc)
    return rc;
  rc = fs_ctx_set_notify_fd(sh->ctx, sh->efd);
  if (rc)
    return rc;
  rc = coro_sched_create(NULL, &sh->sched);
  if (rc)
    return rc;
  char dir[4096];
  if ((size_t)snprintf(dir, sizeof dir, "%s/shard-%03u", rt->path, sh->id) >= sizeof dir)
    return JDB_EINVAL;
  rc = tab_open(sh->ctx, dir, &rt->tab, &sh->tab);
  if (rc)
    LOG_ERROR("shard %u: opening its tablet %s: %s", sh->id, dir, jdb_strerror(rc));
  return rc;
}

static void rt_shard_report(struct rt_shard *sh, int rc)
{
  struct rt *rt = sh->rt;
  pthread_mutex_lock(&rt->start_lock);
  sh->open_rc = rc;
  rt->nreported++;
  pthread_cond_broadcast(&rt->start_cond);
  pthread_mutex_unlock(&rt->start_lock);
}

void *rt_shard_main(void *arg)
{
  struct rt_shard *sh = arg;
  char name[16];
  snprintf(name, sizeof name, "jdb-shard-%u", sh->id);
  pthread_setname_np(pthread_self(), name);
  rt_self = sh;
  rt_shard_pin(sh);
  int rc = rt_shard_setup(sh);
  rt_shard_report(sh, rc);
  if (rc == JDB_OK) {
    rt_shard_loop(sh);
    sh->close_rc = tab_close(sh->tab);
    if (sh->close_rc)
      LOG_ERROR("shard %u: closing its tablet: %s", sh->id, jdb_strerror(sh->close_rc));
    sh->tab = NULL;
  }
  if (sh->sched)
    coro_sched_destroy(sh->sched);
  sh->sched = NULL;
  if (sh->ctx)
    fs_ctx_destroy(sh->ctx);
  sh->ctx = NULL;
  rt_self = NULL;
  return NULL;
}
