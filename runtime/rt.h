/*
 * rt.h - the runtime (L5): one instance directory, one pinned thread per shard, each owning its
 * I/O context (io_uring or psync), its fiber scheduler and its tablet; client threads hand work
 * to a shard over a single-producer/single-consumer ring and wait for the answer
 * (ARCHITECTURE.md §2, §4; docs/DESIGN.md §13).
 *
 * Directory:
 *     path/LOCK            flock(LOCK_EX | LOCK_NB) held while open: a second process gets
 *                          JDB_EBUSY
 *     path/MANIFEST        format version and shard count, written once at creation (FORMAT.md)
 *     path/shard-NNN/      shard NNN's tablet (pages + log/), NNN = 000 .. shards-1
 *
 * Work. The unit of work is a call: a function run on a shard's thread, inside a fiber of that
 * shard's scheduler, with the shard's tablet. The function may park (I/O) - other fibers of the
 * shard go on meanwhile. The runtime knows nothing about what calls do: the C API (capi/) builds
 * them. A client thread posts a call to a ring it alone fills (one ring per client thread and
 * shard, made on first use) and waits for it: a short spin, then a futex. rt_call_many posts
 * calls to several shards before waiting for any, so one request crosses to each shard once.
 *
 * Reactor, per shard thread, in this order each turn: drain the rings (a fiber per call), run
 * ready fibers one round, one fs_flush for all queued I/O, reap completions (waking fibers).
 * When there is nothing to do it sleeps on an eventfd that clients write only when the shard
 * says it sleeps, and that the I/O backend signals on completions (fs_ctx_set_notify_fd).
 *
 * Lifetime. rt_close refuses new calls (JDB_ECLOSED), waits for calls in flight, closes every
 * tablet (each checkpoints), stops and joins the threads and frees everything. A client thread's
 * rings are reclaimed when the thread exits (a thread-exit hook) or at rt_close, whichever
 * comes first.
 *
 * Thread safety: every function here may be called from any thread, except that an rt_fn runs
 * on its shard's thread and must not call rt_call itself.
 */
#ifndef JDB_RT_H
#define JDB_RT_H

#include <stddef.h>
#include <stdint.h>

#include "tab.h"

struct rt;

#define RT_SHARDS_MAX 256u
#define RT_FORMAT_VERSION 1u

struct rt_opts {
  uint32_t shards;          /* 0: one per online CPU. Used only when the directory is created;
                               an existing directory's MANIFEST decides. At most RT_SHARDS_MAX. */
  int pin_cores;            /* 1: pin shard i to online CPU (i mod ncpu); failure is logged */
  int create_if_missing;    /* 1: create path (and its parent must exist) */
  int io_backend;           /* FS_BACKEND_* (fs.h); AUTO honours env JDB_IO */
  int direct_strict;        /* 1: O_DIRECT or fail (JDB_ENOTSUP) */
  struct tab_opts tab;      /* per shard (cache_frames is per shard: the caller divides); its
                               create_if_missing is set by the runtime: 1 when the instance was
                               created by this open, else create_if_missing && !read_only */
  uint64_t cache_frames_total; /* when > 0: the whole instance's page cache, divided by the
                               runtime between the shards once their count is known (at least
                               64 frames each), replacing tab.cache_frames */
  int read_only;            /* 1: create nothing (no directory, LOCK or MANIFEST), take LOCK
                               shared (several read-only opens may share the directory, a writer
                               excludes them); the tablets' own read-only mode is in tab */
};

/* Open or create the instance at path and start its shards (each opens and recovers its tablet
   on its own thread; the first failure is returned after the others are stopped). JDB_OK,
   JDB_EINVAL, JDB_NOTFOUND (missing and !create_if_missing), JDB_EBUSY (LOCK held by another
   process or another rt in this process), JDB_EVERSION, JDB_ECORRUPT (MANIFEST or a tablet),
   JDB_EIO, JDB_ENOMEM. *out is NULL on failure. */
int rt_open(const char *path, const struct rt_opts *opts, struct rt **out);

/* Refuse new calls, wait for those in flight, close the tablets, stop the threads, free.
   Returns the first tablet close error (data already acknowledged is in the logs either way).
   Calls racing with rt_close get JDB_ECLOSED. NULL is a no-op returning JDB_OK. */
int rt_close(struct rt *rt);

/* The first half of rt_close: refuse new calls (JDB_ECLOSED from now on) and wait for those in
   flight; the instance stays allocated, the shards keep running. A caller whose other threads
   may still be calling uses it to make them see JDB_ECLOSED before it frees the handle with
   rt_close (a call that starts after rt_close returned touches freed memory). Idempotent;
   NULL is a no-op. */
void rt_shutdown(struct rt *rt);

uint32_t rt_shards(const struct rt *rt);
/* The shard a table name lives in: xxh3(name) mod shards. */
uint32_t rt_shard_of(const struct rt *rt, const void *name, size_t nlen);
const char *rt_path(const struct rt *rt);

/* A call: fn(tab, arg) on the shard's thread in a fiber; its return value comes back. */
typedef int (*rt_fn)(struct tab *tab, void *arg);

/* Run fn on shard and wait for it. Returns fn's result, or JDB_ECLOSED (closing: fn not run),
   JDB_EINVAL (shard out of range), JDB_ENOMEM (no ring could be made for this thread). */
int rt_call(struct rt *rt, uint32_t shard, rt_fn fn, void *arg);

struct rt_req {             /* one call of rt_call_many; the runtime owns the fields after fn */
  uint32_t shard;
  rt_fn fn;
  void *arg;
  int rc;                   /* [out] fn's result or JDB_ECLOSED / JDB_EINVAL / JDB_ENOMEM */
  /* runtime-private */
  uint32_t state;           /* futex word: pending / done / client asleep */
};
/* Post every call (at most one per shard is the intended use, but any number works), then wait
   for all. Returns JDB_OK when every call was run (their results are in reqs[i].rc, which may be
   errors), else the first runtime error (JDB_ECLOSED, JDB_EINVAL, JDB_ENOMEM) - calls posted
   before it still complete before rt_call_many returns. */
int rt_call_many(struct rt *rt, struct rt_req *reqs, size_t n);

/* Per-shard runtime counters (the tablet's own are read with a call running tab_stats_get). */
struct rt_shard_stats {
  uint64_t calls;           /* calls run */
  uint64_t loops;           /* reactor turns */
  uint64_t sleeps;          /* times the shard slept on its eventfd */
  uint64_t wakeups_sent;    /* eventfd writes by clients */
  uint32_t rings;           /* client rings attached now */
  uint32_t ring_slots;      /* slot table in use: highest attached slot + 1 (a ring freed when
                               its client thread exits leaves its slot to later threads) */
  int cpu;                  /* pinned CPU, -1 if not pinned */
};
int rt_shard_stats(struct rt *rt, uint32_t shard, struct rt_shard_stats *out);

/* Inside an rt_fn: the shard running it and its fs context (metrics: fs_metrics_get). Outside
   a shard thread: UINT32_MAX and NULL. */
uint32_t rt_self_shard(void);
struct fs_ctx *rt_self_ctx(void);

#endif
