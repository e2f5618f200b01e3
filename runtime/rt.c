/*
 * rt.c - the runtime's instance: its directory, LOCK and MANIFEST, starting and stopping the
 * shard threads (rt_reactor.c), and the accessors. Calls are in rt_client.c.
 *
 * Directory (docs/FORMAT.md, "Instance directory and MANIFEST"):
 *     path/LOCK          empty; flock(LOCK_EX | LOCK_NB) while open (read-only: LOCK_SH)
 *     path/MANIFEST      written once at creation (MANIFEST.tmp, fdatasync, rename, dir fsync)
 *     path/shard-NNN/    shard NNN's tablet
 *
 * MANIFEST, 28 bytes, little-endian:
 *   off  size  field
 *     0     8  magic "JDBMANIF"
 *     8     4  format version (RT_FORMAT_VERSION)
 *    12     4  shard count, 1 .. RT_SHARDS_MAX
 *    16     8  creation time, seconds since the epoch
 *    24     4  layout_cksum(bytes 0 .. 23)
 * Later versions keep these first 24 bytes and the checksum at 24, so a reader tells another
 * version (JDB_EVERSION) from damage (JDB_ECORRUPT).
 *
 * Creation order: directory, LOCK, MANIFEST (which fixes the shard count), then each shard
 * creates its tablet. A crash in between leaves a MANIFEST with missing tablets: the next open
 * that may create makes them (nothing in them was ever acknowledged).
 *
 * rt_open: validate; directory; lock; MANIFEST (read, or write when creating); start one
 * thread per shard and wait until each reported its tablet's open; on any failure stop the
 * started ones and return the first error (lowest shard). rt_close: rt_shutdown (refuse new
 * calls, wait for those in flight), stop and join the shards (each closes its tablet),
 * detach the client threads, free the rings, unlock.
 */
#include "rt_int.h"

#include "clock.h"
#include "codec.h"
#include "err.h"
#include "fs.h"
#include "hash.h"
#include "layout.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define RT_MANIFEST_MAGIC "JDBMANIF"
#define RT_MANIFEST_BYTES 28u
#define RT_MANIFEST_CKSUM_OFF 24u
#define RT_PATH_MAX 3900u      /* leaves room for "/shard-NNN/log/..." under PATH_MAX */

static atomic_uint_fast64_t rt_uid_next = 1;

/* ------------------------------------------------------------------------------------------- */
/* Files */

static int rt_errno(const char *what, const char *path)
{
  int e = errno;
  LOG_ERROR("%s %s: %s", what, path, strerror(e));
  return err_from_errno(-e);
}

static int rt_fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return rt_errno("open", dir);
  int rc = fsync(fd) ? rt_errno("fsync", dir) : JDB_OK;
  close(fd);
  return rc;
}

/* The directory that holds path (for the fsync after creating path). */
static int rt_fsync_parent(const char *path)
{
  size_t n = strlen(path);
  char *parent = mem_malloc(n + 2);
  if (!parent)
    return JDB_ENOMEM;
  memcpy(parent, path, n + 1);
  while (n > 1 && parent[n - 1] == '/')
    parent[--n] = '\0';
  char *slash = strrchr(parent, '/');
  if (!slash)
    strcpy(parent, ".");
  else if (slash == parent)
    parent[1] = '\0';
  else
    *slash = '\0';
  int rc = rt_fsync_dir(parent);
  mem_free(parent);
  return rc;
}

static void rt_join(char *buf, size_t cap, const char *dir, const char *name)
{
  int n = snprintf(buf, cap, "%s/%s", dir, name);
  JDB_ASSERT(n > 0 && (size_t)n < cap);   /* path length is checked at open */
}

/* ------------------------------------------------------------------------------------------- */
/* MANIFEST */

static void rt_manifest_encode(uint8_t *b, uint32_t shards, uint64_t ctime_sec)
{
  memcpy(b, RT_MANIFEST_MAGIC, 8);
  le32_put(b + 8, RT_FORMAT_VERSION);
  le32_put(b + 12, shards);
  le64_put(b + 16, ctime_sec);
  le32_put(b + RT_MANIFEST_CKSUM_OFF, layout_cksum(b, RT_MANIFEST_CKSUM_OFF));
}

/* JDB_OK with *shards, JDB_ECORRUPT, JDB_EVERSION. */
static int rt_manifest_decode(const uint8_t *b, size_t len, uint32_t *shards)
{
  if (len < RT_MANIFEST_BYTES)
    return JDB_CORRUPT("MANIFEST (short)", len);
  if (memcmp(b, RT_MANIFEST_MAGIC, 8) != 0)
    return JDB_CORRUPT("MANIFEST (magic)", 0);
  if (le32_get(b + RT_MANIFEST_CKSUM_OFF) != layout_cksum(b, RT_MANIFEST_CKSUM_OFF))
    return JDB_CORRUPT("MANIFEST (checksum)", RT_MANIFEST_CKSUM_OFF);
  uint32_t version = le32_get(b + 8);
  if (version != RT_FORMAT_VERSION) {
    LOG_ERROR("MANIFEST: format version %u, this build reads %u", version, RT_FORMAT_VERSION);
    return JDB_EVERSION;
  }
  if (len != RT_MANIFEST_BYTES)
    return JDB_CORRUPT("MANIFEST (length)", len);
  uint32_t n = le32_get(b + 12);
  if (n == 0 || n > RT_SHARDS_MAX)
    return JDB_CORRUPT("MANIFEST (shard count)", 12);
  *shards = n;
  return JDB_OK;
}

/* JDB_NOTFOUND when there is none. */
static int rt_manifest_read(const char *dir, uint32_t *shards)
{
  char p[PATH_MAX];
  rt_join(p, sizeof p, dir, "MANIFEST");
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? JDB_NOTFOUND : rt_errno("open", p);
  uint8_t b[RT_MANIFEST_BYTES + 1];
  size_t len = 0;
  while (len < sizeof b) {
    ssize_t r = pread(fd, b + len, sizeof b - len, (off_t)len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int rc = rt_errno("read", p);
      close(fd);
      return rc;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  return rt_manifest_decode(b, len, shards);
}

static int rt_manifest_write(const char *dir, uint32_t shards)
{
  char tmp[PATH_MAX], fin[PATH_MAX];
  rt_join(tmp, sizeof tmp, dir, "MANIFEST.tmp");
  rt_join(fin, sizeof fin, dir, "MANIFEST");
  uint8_t b[RT_MANIFEST_BYTES];
  rt_manifest_encode(b, shards, clock_now_sec());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return rt_errno("create", tmp);
  size_t off = 0;
  while (off < sizeof b) {
    ssize_t w = pwrite(fd, b + off, sizeof b - off, (off_t)off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int rc = w < 0 ? rt_errno("write", tmp) : JDB_EIO;
      close(fd);
      return rc;
    }
    off += (size_t)w;
  }
  if (fdatasync(fd)) {
    int rc = rt_errno("fdatasync", tmp);
    close(fd);
    return rc;
  }
  close(fd);
  if (rename(tmp, fin))
    return rt_errno("rename", tmp);
  return rt_fsync_dir(dir);
}

/* ------------------------------------------------------------------------------------------- */
/* Directory and lock */

static int rt_lock(struct rt *rt, int read_only)
{
  char p[PATH_MAX];
  rt_join(p, sizeof p, rt->path, "LOCK");
  int fd = read_only ? open(p, O_RDONLY | O_CLOEXEC)
                     : open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (read_only && errno == ENOENT) {
      LOG_INFO("%s: no LOCK file; opening read-only without it", rt->path);
      return JDB_OK;
    }
    return rt_errno("open", p);
  }
  while (flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
    if (errno == EINTR)
      continue;
    int rc = errno == EWOULDBLOCK ? JDB_EBUSY : rt_errno("flock", p);
    close(fd);
    return rc;
  }
  rt->lock_fd = fd;
  return JDB_OK;
}

static uint32_t rt_online_cpus(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    n = 1;
  return n > (long)RT_SHARDS_MAX ? RT_SHARDS_MAX : (uint32_t)n;
}

/* Directory, LOCK and MANIFEST: rt->nshards and *created on success. */
static int rt_dir_open(struct rt *rt, const struct rt_opts *o, int *created)
{
  int may_create = o->create_if_missing && !o->read_only;
  struct stat st;
  if (stat(rt->path, &st) != 0) {
    if (errno != ENOENT)
      return rt_errno("stat", rt->path);
    if (!may_create)
      return JDB_NOTFOUND;
    if (mkdir(rt->path, 0755) != 0 && errno != EEXIST)
      return errno == ENOENT ? JDB_NOTFOUND : rt_errno("mkdir", rt->path);
    int rc = rt_fsync_parent(rt->path);
    if (rc)
      return rc;
  } else if (!S_ISDIR(st.st_mode)) {
    LOG_ERROR("%s: not a directory", rt->path);
    return JDB_EINVAL;
  }
  char p[PATH_MAX];
  rt_join(p, sizeof p, rt->path, "MANIFEST");
  if (!may_create && access(p, F_OK) != 0)
    return errno == ENOENT ? JDB_NOTFOUND : rt_errno("access", p);
  int rc = rt_lock(rt, o->read_only);
  if (rc)
    return rc;
  rc = rt_manifest_read(rt->path, &rt->nshards);
  if (rc != JDB_NOTFOUND)
    return rc;
  if (!may_create)
    return JDB_NOTFOUND;
  /* A shard directory without a MANIFEST is not something this code leaves behind. */
  rt_join(p, sizeof p, rt->path, "shard-000");
  if (access(p, F_OK) == 0) {
    LOG_ERROR("%s: shard directories but no MANIFEST", rt->path);
    return JDB_CORRUPT("MANIFEST (missing)", 0);
  }
  rt->nshards = o->shards ? o->shards : rt_online_cpus();
  rc = rt_manifest_write(rt->path, rt->nshards);
  if (rc)
    return rc;
  *created = 1;
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Shards */

/* CPU for shard i: the (i mod n)-th CPU this process may run on. */
static int rt_shard_cpu(uint32_t i)
{
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return (int)(i % rt_online_cpus());
  int n = CPU_COUNT(&set);
  if (n <= 0)
    return -1;
  int want = (int)(i % (uint32_t)n);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set) && want-- == 0)
      return c;
  return -1;
}

static void rt_shards_stop(struct rt *rt)
{
  for (uint32_t i = 0; i < rt->nshards; i++) {
    struct rt_shard *sh = &rt->shards[i];
    if (!sh->thread_started)
      continue;
    atomic_store(&sh->stop, 1);
    rt_shard_wake(sh, 1);
  }
  for (uint32_t i = 0; i < rt->nshards; i++) {
    struct rt_shard *sh = &rt->shards[i];
    if (!sh->thread_started)
      continue;
    pthread_join(sh->thread, NULL);
    sh->thread_started = 0;
  }
}

static int rt_shards_start(struct rt *rt, int pin)
{
  rt->shards = mem_calloc(rt->nshards, sizeof *rt->shards);
  if (!rt->shards)
    return JDB_ENOMEM;
  for (uint32_t i = 0; i < rt->nshards; i++)
    rt->shards[i].efd = -1;
  int rc = JDB_OK;
  uint32_t started = 0;
  for (uint32_t i = 0; i < rt->nshards && !rc; i++) {
    struct rt_shard *sh = &rt->shards[i];
    sh->rt = rt;
    sh->id = i;
    sh->cpu = pin ? rt_shard_cpu(i) : -1;
    sh->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    sh->slots = mem_calloc(RT_RINGS_MAX, sizeof *sh->slots);
    if (sh->efd < 0 || !sh->slots || pthread_mutex_init(&sh->slot_lock, NULL)) {
      rc = sh->efd < 0 ? rt_errno("eventfd", rt->path) : JDB_ENOMEM;
      break;
    }
    sh->slot_lock_init = 1;
    int e = pthread_create(&sh->thread, NULL, rt_shard_main, sh);
    if (e) {
      LOG_ERROR("%s: starting shard %u: %s", rt->path, i, strerror(e));
      rc = JDB_ENOMEM;
      break;
    }
    sh->thread_started = 1;
    started++;
  }
  pthread_mutex_lock(&rt->start_lock);
  while (rt->nreported < started)
    pthread_cond_wait(&rt->start_cond, &rt->start_lock);
  pthread_mutex_unlock(&rt->start_lock);
  for (uint32_t i = 0; i < started && !rc; i++)
    rc = rt->shards[i].open_rc;
  return rc;
}

/* Everything but the threads (stopped before). */
static void rt_free(struct rt *rt)
{
  if (rt->shards) {
    for (uint32_t i = 0; i < rt->nshards; i++) {
      struct rt_shard *sh = &rt->shards[i];
      JDB_ASSERT(!sh->thread_started);
      if (sh->slots) {
        for (uint32_t k = 0; k < RT_RINGS_MAX; k++)
          mem_free(atomic_load_explicit(&sh->slots[k], memory_order_relaxed));
        mem_free(sh->slots);
      }
      if (sh->slot_lock_init)
        pthread_mutex_destroy(&sh->slot_lock);
      if (sh->efd >= 0)
        close(sh->efd);
    }
    mem_free(rt->shards);
  }
  if (rt->lock_fd >= 0) {
    flock(rt->lock_fd, LOCK_UN);
    close(rt->lock_fd);
  }
  pthread_cond_destroy(&rt->start_cond);
  pthread_mutex_destroy(&rt->start_lock);
  mem_free(rt->path);
  mem_free(rt);
}

/* ------------------------------------------------------------------------------------------- */
/* Instance */

int rt_open(const char *path, const struct rt_opts *opts, struct rt **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!path || !*path || !opts || opts->shards > RT_SHARDS_MAX ||
      opts->io_backend < FS_BACKEND_AUTO || opts->io_backend > FS_BACKEND_PSYNC)
    return JDB_EINVAL;
  size_t plen = strlen(path);
  if (plen > RT_PATH_MAX)
    return JDB_EINVAL;
  struct rt *rt = mem_calloc(1, sizeof *rt);
  if (!rt)
    return JDB_ENOMEM;
  rt->lock_fd = -1;
  pthread_mutex_init(&rt->start_lock, NULL);
  pthread_cond_init(&rt->start_cond, NULL);
  rt->path = mem_malloc(plen + 1);
  if (!rt->path) {
    rt_free(rt);
    return JDB_ENOMEM;
  }
  memcpy(rt->path, path, plen + 1);
  rt->uid = atomic_fetch_add(&rt_uid_next, 1);
  rt->io_backend = opts->io_backend;

  int created = 0;
  int rc = rt_dir_open(rt, opts, &created);
  if (rc)
    goto fail;
  /* client threads that may keep a core spinning for a long call: the cores no shard holds;
     waiting clients that may take turns yielding at all: a few per core */
  uint32_t cpus = rt_online_cpus();
  rt->long_spin_slots = cpus > rt->nshards ? cpus - rt->nshards : 1;
  rt->yield_waiters = 4 * cpus;
  if (opts->direct_strict) {
    /* O_DIRECT or nothing: ask the file system with the MANIFEST (the tablets' files live on
       the same one). */
    char p[PATH_MAX];
    rt_join(p, sizeof p, rt->path, "MANIFEST");
    int fd = open(p, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
      rc = errno == EINVAL ? JDB_ENOTSUP : rt_errno("open O_DIRECT", p);
      if (rc == JDB_ENOTSUP)
        LOG_ERROR("%s: the file system refuses O_DIRECT", rt->path);
      goto fail;
    }
    close(fd);
  }
  rt->tab = opts->tab;
  if (opts->cache_frames_total) {
    uint64_t f = opts->cache_frames_total / rt->nshards;
    rt->tab.cache_frames = f < 64 ? 64u : f > UINT32_MAX ? UINT32_MAX : (uint32_t)f;
  }
  rt->tab.create_if_missing = created || (opts->create_if_missing && !opts->read_only);
  rc = rt_shards_start(rt, opts->pin_cores);
  if (rc)
    goto fail;
  *out = rt;
  return JDB_OK;
fail:
  if (rt->shards)
    rt_shards_stop(rt);
  rt_free(rt);
  return rc;
}

int rt_close(struct rt *rt)
{
  if (!rt)
    return JDB_OK;
  rt_shutdown(rt);
  rt_shards_stop(rt);
  int rc = JDB_OK;
  for (uint32_t i = 0; i < rt->nshards && !rc; i++)
    rc = rt->shards[i].close_rc;
  rt_clients_detach(rt);
  rt_free(rt);
  return rc;
}

uint32_t rt_shards(const struct rt *rt)
{
  return rt ? rt->nshards : 0;
}

uint32_t rt_shard_of(const struct rt *rt, const void *name, size_t nlen)
{
  if (!rt || (!name && nlen))
    return 0;
  return (uint32_t)(hash64(name, nlen) % rt->nshards);
}

const char *rt_path(const struct rt *rt)
{
  return rt ? rt->path : NULL;
}

int rt_shard_stats(struct rt *rt, uint32_t shard, struct rt_shard_stats *out)
{
  if (!rt || !out || shard >= rt->nshards)
    return JDB_EINVAL;
  struct rt_shard *sh = &rt->shards[shard];
  *out = (struct rt_shard_stats){
    .calls = atomic_load_explicit(&sh->calls, memory_order_relaxed),
    .loops = atomic_load_explicit(&sh->loops, memory_order_relaxed),
    .sleeps = atomic_load_explicit(&sh->sleeps, memory_order_relaxed),
    .wakeups_sent = atomic_load_explicit(&sh->wakeups_sent, memory_order_relaxed),
    .rings = atomic_load_explicit(&sh->nrings, memory_order_relaxed),
    .ring_slots = atomic_load_explicit(&sh->hwm, memory_order_relaxed),
    .cpu = sh->cpu,
  };
  return JDB_OK;
}
