/*
 * mem_prefault.c - prefaulting anonymous memory on a helper thread (mem.h, mem_prefault_*).
 *
 * The first write to a page of an anonymous mapping takes a fault in which the kernel allocates
 * and zeroes the page (2 MiB at once on transparent huge pages). On this VM that runs at about
 * 430 MB/s (512 MiB: 1.18 s touched fresh, 23 ms once populated): a buffer manager growing into
 * its budget paid it on the shard thread, 24-35 % of a fillrandom run (perf: clear_page_erms
 * under pg_alloc). A request asks one process-wide helper thread to populate a range with
 * madvise(MADV_POPULATE_WRITE) (Linux 5.14) on another core, ahead of use; where the kernel
 * lacks it the request completes having done nothing and the faults happen on first touch, as
 * they would have.
 *
 * Requests are structs the owner embeds (no allocation); an owner has at most one in the queue
 * or running at a time. States: IDLE --mem_prefault_start--> QUEUED --worker--> RUNNING -->
 * IDLE; mem_prefault_cancel takes a QUEUED request out, or waits for a RUNNING one to end, so
 * that the owner may unmap the range. The thread starts on the first request and lives until
 * the process exits (it holds no memory of its own beyond its stack).
 *
 * fork: the child has no helper thread, and a request copied from the parent may say QUEUED or
 * RUNNING forever. A pthread_atfork child handler resets the queue and bumps a generation;
 * a request started in an older generation counts as idle (busy and cancel look at it).
 */
#include "mem.h"

#include "err.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static struct {
  pthread_mutex_t mu;
  pthread_cond_t work, idle;
  struct mem_prefault *head, *tail;
  int started;
  atomic_int unsupported;   /* the kernel refused MADV_POPULATE_WRITE with EINVAL */
  atomic_uint gen;          /* bumped in a forked child: older requests are void */
} g_pf = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          NULL, NULL, 0, 0, 1};

static void mem_prefault_atfork_child(void)
{
  pthread_mutex_init(&g_pf.mu, NULL);
  pthread_cond_init(&g_pf.work, NULL);
  pthread_cond_init(&g_pf.idle, NULL);
  g_pf.head = g_pf.tail = NULL;
  g_pf.started = 0;
  atomic_fetch_add(&g_pf.gen, 1);
}

/* The request's state, IDLE if it was started before a fork this process is the child of. */
static int mem_prefault_state(const struct mem_prefault *r)
{
  int st = atomic_load(&r->state);
  return st != MEM_PREFAULT_IDLE && r->gen != atomic_load(&g_pf.gen) ? MEM_PREFAULT_IDLE : st;
}

static void *mem_prefault_main(void *arg)
{
  (void)arg;
  /* A thread inherits its creator's CPU mask and name: started by a shard thread pinned to one
     core, the helper zeroed pages on that very core, taking it from the shard (perf: 19 % of an
     API fillrandom run, all on the shard's CPU, under the shard's name). It runs where the
     process may (the main thread's mask). */
  pthread_setname_np(pthread_self(), "jdb-prefault");
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof cpus, &cpus) == 0)
    (void)sched_setaffinity(0, sizeof cpus, &cpus);
  pthread_mutex_lock(&g_pf.mu);
  for (;;) {
    while (!g_pf.head)
      pthread_cond_wait(&g_pf.work, &g_pf.mu);
    struct mem_prefault *r = g_pf.head;
    g_pf.head = r->next;
    if (!g_pf.head)
      g_pf.tail = NULL;
    r->next = NULL;
    atomic_store(&r->state, MEM_PREFAULT_RUNNING);
    pthread_mutex_unlock(&g_pf.mu);
    if (!atomic_load(&g_pf.unsupported) &&
        madvise(r->addr, r->len, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
      atomic_store(&g_pf.unsupported, 1);
    pthread_mutex_lock(&g_pf.mu);
    atomic_store(&r->state, MEM_PREFAULT_IDLE);
    pthread_cond_broadcast(&g_pf.idle);
  }
  return NULL;
}

int mem_prefault_start(struct mem_prefault *r, void *addr, size_t len)
{
  if (!r || !addr || !len)
    return JDB_EINVAL;
  if (mem_prefault_state(r) != MEM_PREFAULT_IDLE)
    return JDB_EBUSY;
  if (atomic_load(&g_pf.unsupported))
    return JDB_ENOTSUP;
  pthread_mutex_lock(&g_pf.mu);
  if (!g_pf.started) {
    static int atfork;
    if (!atfork && pthread_atfork(NULL, NULL, mem_prefault_atfork_child) != 0) {
      pthread_mutex_unlock(&g_pf.mu);
      return JDB_ENOMEM;
    }
    atfork = 1;
    pthread_attr_t at;
    pthread_t th;
    int ok = pthread_attr_init(&at) == 0;
    ok = ok && pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0 &&
         pthread_create(&th, &at, mem_prefault_main, NULL) == 0;
    pthread_attr_destroy(&at);
    if (!ok) {
      pthread_mutex_unlock(&g_pf.mu);
      return JDB_ENOMEM;
    }
    g_pf.started = 1;
  }
  r->addr = addr;
  r->len = len;
  r->next = NULL;
  r->gen = atomic_load(&g_pf.gen);
  atomic_store(&r->state, MEM_PREFAULT_QUEUED);
  if (g_pf.tail)
    g_pf.tail->next = r;
  else
    g_pf.head = r;
  g_pf.tail = r;
  pthread_cond_signal(&g_pf.work);
  pthread_mutex_unlock(&g_pf.mu);
  return JDB_OK;
}

int mem_prefault_busy(const struct mem_prefault *r)
{
  return mem_prefault_state(r) != MEM_PREFAULT_IDLE;
}

void mem_prefault_cancel(struct mem_prefault *r)
{
  if (!r)
    return;
  if (mem_prefault_state(r) == MEM_PREFAULT_IDLE) {
    atomic_store(&r->state, MEM_PREFAULT_IDLE);   /* a request from before a fork */
    return;
  }
  pthread_mutex_lock(&g_pf.mu);
  if (atomic_load(&r->state) == MEM_PREFAULT_QUEUED) {
    struct mem_prefault **pp = &g_pf.head, *prev = NULL;
    while (*pp && *pp != r) {
      prev = *pp;
      pp = &(*pp)->next;
    }
    if (*pp) {
      *pp = r->next;
      if (g_pf.tail == r)
        g_pf.tail = prev;
      r->next = NULL;
      atomic_store(&r->state, MEM_PREFAULT_IDLE);
    }
  }
  while (atomic_load(&r->state) != MEM_PREFAULT_IDLE)
    pthread_cond_wait(&g_pf.idle, &g_pf.mu);
  pthread_mutex_unlock(&g_pf.mu);
}
