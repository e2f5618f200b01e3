/*
 * jdb.c - L5 C API: instance, tables, key-value calls, batches, snapshots, stats and check, on
 * top of the runtime (runtime/rt.h). jdb_version, jdb_strerror, jdb_options_init and jdb_log_set
 * live in infra/comm; iterators in jdb_iter.c, pipelines in jdb_pipe.c.
 *
 * Every call checks its arguments on the calling thread, then runs one function on the table's
 * shard (rt_call) or on every shard (rt_call_many) and returns its result. Keys and values are
 * passed by pointer: the call is synchronous and the tablet copies them before it returns.
 *
 * Options. jdb_options_t is versioned by struct_size: a caller built against an older header
 * passes a smaller struct and keeps the defaults of the fields it never heard of. cache_bytes is
 * for the whole instance (0: opts_cache_bytes_default, a quarter of the memory the process may
 * use); the runtime divides it: cache_bytes / 4 KiB / shards frames per shard (at least 64), once
 * the MANIFEST (or, for a new instance, opts.shards or the online CPUs) has given the shard
 * count. Frames take memory only as pages fill them (store/page).
 *
 * Closing (capi_int.h): snapshots and iterators are capi objects; jdb_close closes the gate,
 * waits for the calls inside it, releases on their shards the objects callers left open, marks
 * them orphaned, then closes the runtime (which waits for every other call in flight and
 * checkpoints). The handles of orphaned objects are still the callers' to free.
 */
#include "capi_int.h"

#include "err.h"
#include "fs.h"
#include "layout.h"
#include "log.h"
#include "mem.h"
#include "opts.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The first published jdb_options_t ends with direct_io; jdb_stats_t with snapshots;
   jdb_check_report_t with errors. Callers may pass any size from these up to sizeof. */
#define CAPI_OPTS_SIZE_MIN (offsetof(jdb_options_t, direct_io) + sizeof(int))
#define CAPI_STATS_SIZE_MIN (offsetof(jdb_stats_t, snapshots) + sizeof(uint64_t))
#define CAPI_CHECK_SIZE_MIN (offsetof(jdb_check_report_t, errors) + sizeof(uint64_t))

#define CAPI_PAGE 4096u
#define CAPI_FRAMES_MIN 64u
#define CAPI_FRAMES_MAX (1u << 26)

_Static_assert(JDB_BATCH_BYTES_MAX + 64u <= LOG_REC_LEN_MAX,
               "a full batch must fit one log record");
_Static_assert(JDB_KEY_MAX == TAB_KEY_MAX && JDB_VALUE_MAX == TAB_VAL_MAX &&
               JDB_NAME_MAX == TAB_NAME_MAX, "API limits are the tablet's");

static void capi_nap(void)
{
  struct timespec ts = {0, 50 * 1000};
  nanosleep(&ts, NULL);
}

int capi_write_rc(int rc)
{
  return rc == JDB_EINVAL ? JDB_NOTFOUND : rc;
}

/* ------------------------------------------------------------------------------------------- */
/* The gate and capi objects */

int capi_gate_enter(struct jdb_db *db)
{
  atomic_fetch_add(&db->busy, 1);
  if (atomic_load(&db->closing)) {
    atomic_fetch_sub(&db->busy, 1);
    return JDB_ECLOSED;
  }
  return JDB_OK;
}

void capi_gate_leave(struct jdb_db *db)
{
  atomic_fetch_sub(&db->busy, 1);
}

void capi_obj_link(struct jdb_db *db, struct capi_obj *o, uint32_t shard, rt_fn drop)
{
  o->shard = shard;
  o->drop = drop;
  atomic_store(&o->orphaned, 0);
  pthread_mutex_lock(&db->objs_mu);
  o->prev = &db->objs;
  o->next = db->objs.next;
  db->objs.next->prev = o;
  db->objs.next = o;
  db->nobjs++;
  pthread_mutex_unlock(&db->objs_mu);
}

static void capi_obj_unlink(struct jdb_db *db, struct capi_obj *o)
{
  o->prev->next = o->next;
  o->next->prev = o->prev;
  o->next = o->prev = NULL;
  db->nobjs--;
}

int capi_obj_create(struct jdb_db *db, struct capi_obj *o, uint32_t shard, rt_fn make, void *arg,
                    rt_fn drop)
{
  int rc = capi_gate_enter(db);
  if (rc)
    return rc;
  rc = rt_call(db->rt, shard, make, arg);
  if (rc == JDB_OK)
    capi_obj_link(db, o, shard, drop);
  capi_gate_leave(db);
  return rc;
}

int capi_obj_enter(struct jdb_db *db, struct capi_obj *o)
{
  if (atomic_load(&o->orphaned))
    return JDB_ECLOSED;
  return capi_gate_enter(db);
}

void capi_obj_release(struct jdb_db *db, struct capi_obj *o)
{
  while (!atomic_load(&o->orphaned)) {
    if (capi_gate_enter(db) != JDB_OK) {
      /* jdb_close is on its way: it releases o and then marks it orphaned */
      capi_nap();
      continue;
    }
    /* Inside the gate the runtime is open, so the only failure is a ring this thread could
       not get (out of memory): retry, leaving the gate so that a close is not held up. */
    int rc = rt_call(db->rt, o->shard, o->drop, o);
    if (rc == JDB_OK) {
      pthread_mutex_lock(&db->objs_mu);
      capi_obj_unlink(db, o);
      pthread_mutex_unlock(&db->objs_mu);
      capi_gate_leave(db);
      return;
    }
    capi_gate_leave(db);
    capi_nap();
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Instance */

/* The caller's options over the defaults, checked. */
static int capi_opts_read(const jdb_options_t *in, jdb_options_t *o)
{
  jdb_options_init(o);
  if (in) {
    if (in->struct_size < CAPI_OPTS_SIZE_MIN || in->struct_size > sizeof *o)
      return JDB_EINVAL;
    memcpy(o, in, in->struct_size);
    o->struct_size = (uint32_t)sizeof *o;
  }
  if (o->shards > JDB_SHARDS_MAX || o->inline_value_max > 512u ||
      (o->memtable_bytes && o->memtable_bytes < (1ull << 20)) ||
      (o->io_backend != JDB_IO_AUTO && o->io_backend != JDB_IO_URING &&
       o->io_backend != JDB_IO_PSYNC) ||
      (o->direct_io != JDB_DIRECT_AUTO && o->direct_io != JDB_DIRECT_ON &&
       o->direct_io != JDB_DIRECT_OFF))
    return JDB_EINVAL;
  if (!o->cache_bytes)
    o->cache_bytes = opts_cache_bytes_default();
  return JDB_OK;
}

/* The runtime's options; the runtime divides the cache between the shards (their count is
   known only once it has read the MANIFEST). */
static int capi_rt_opts(const jdb_options_t *o, struct rt_opts *ro)
{
  uint64_t frames = o->cache_bytes / CAPI_PAGE;
  if (frames > (uint64_t)CAPI_FRAMES_MAX * JDB_SHARDS_MAX)
    return JDB_EINVAL;
  int create = o->create_if_missing && !o->read_only;
  *ro = (struct rt_opts){
    .shards = o->shards,
    .pin_cores = o->pin_cores != 0,
    .create_if_missing = create,
    .io_backend = o->io_backend == JDB_IO_URING   ? FS_BACKEND_URING
                  : o->io_backend == JDB_IO_PSYNC ? FS_BACKEND_PSYNC
                                                  : FS_BACKEND_AUTO,
    .direct_strict = o->direct_io == JDB_DIRECT_ON,
    .read_only = o->read_only != 0,
    .cache_frames_total = frames,
    .tab = {.memtable_bytes = o->memtable_bytes, .cache_frames = CAPI_FRAMES_MIN,
            .inline_max = o->inline_value_max, .history_seconds = o->history_seconds,
            .create_if_missing = create, .pages_buffered = o->direct_io == JDB_DIRECT_OFF,
            .read_only = o->read_only != 0},
  };
  return JDB_OK;
}

JDB_API int jdb_open(const char *path, const jdb_options_t *opts, jdb_t **out)
{
  if (out)
    *out = NULL;
  if (!path || !*path || !out)
    return JDB_EINVAL;
  jdb_options_t o;
  struct rt_opts ro;
  int rc = capi_opts_read(opts, &o);
  if (rc == JDB_OK)
    rc = capi_rt_opts(&o, &ro);
  if (rc)
    return rc;
  struct jdb_db *db = mem_calloc(1, sizeof *db);
  if (!db)
    return JDB_ENOMEM;
  if (pthread_mutex_init(&db->objs_mu, NULL)) {
    mem_free(db);
    return JDB_ENOMEM;
  }
  db->objs.next = db->objs.prev = &db->objs;
  db->opts = o;
  db->read_only = o.read_only != 0;
  rc = rt_open(path, &ro, &db->rt);
  if (rc) {
    pthread_mutex_destroy(&db->objs_mu);
    mem_free(db);
    return rc;
  }
  db->shards = rt_shards(db->rt);
  *out = db;
  return JDB_OK;
}

JDB_API int jdb_close(jdb_t *db)
{
  if (!db)
    return JDB_OK;
  atomic_store(&db->closing, 1);
  while (atomic_load(&db->busy))
    capi_nap();
  /* Nothing enters the gate any more: release what callers left open, newest first. */
  pthread_mutex_lock(&db->objs_mu);
  while (db->objs.next != &db->objs) {
    struct capi_obj *o = db->objs.next;
    int rc;
    while ((rc = rt_call(db->rt, o->shard, o->drop, o)) == JDB_ENOMEM)
      capi_nap();
    JDB_ASSERT(rc == JDB_OK);   /* only jdb_close closes the runtime */
    capi_obj_unlink(db, o);
    atomic_store(&o->orphaned, 1);
  }
  pthread_mutex_unlock(&db->objs_mu);
  int rc = rt_close(db->rt);
  pthread_mutex_destroy(&db->objs_mu);
  mem_free(db);
  return rc;
}

/* One call per shard (all shards, or only `shard` when it is not -1): fn(tab, args + i * size)
   for the i-th shard called. Returns the runtime's error, else the first shard's error. */
static int capi_each_shard(struct jdb_db *db, int shard, rt_fn fn, void *args, size_t size)
{
  uint32_t first = shard < 0 ? 0 : (uint32_t)shard, n = shard < 0 ? db->shards : 1;
  struct rt_req one, *reqs = n == 1 ? &one : mem_calloc(n, sizeof *reqs);
  if (!reqs)
    return JDB_ENOMEM;
  for (uint32_t i = 0; i < n; i++)
    reqs[i] = (struct rt_req){.shard = first + i, .fn = fn,
                              .arg = args ? (uint8_t *)args + i * size : NULL};
  int rc = rt_call_many(db->rt, reqs, n);
  for (uint32_t i = 0; i < n && rc == JDB_OK; i++)
    rc = reqs[i].rc;
  if (reqs != &one)
    mem_free(reqs);
  return rc;
}

static int capi_flush_call(struct tab *tab, void *arg)
{
  (void)arg;
  return tab_flush(tab);
}

static int capi_checkpoint_call(struct tab *tab, void *arg)
{
  (void)arg;
  return tab_checkpoint(tab);
}

JDB_API int jdb_flush(jdb_t *db)
{
  return db ? capi_each_shard(db, -1, capi_flush_call, NULL, 0) : JDB_EINVAL;
}

JDB_API int jdb_checkpoint(jdb_t *db)
{
  return db ? capi_each_shard(db, -1, capi_checkpoint_call, NULL, 0) : JDB_EINVAL;
}

/* ------------------------------------------------------------------------------------------- */
/* Stats and check */

struct capi_stats_shard {
  struct tab_stats ts;
  struct tab_io_stats io;
  struct fs_metrics fm;
};

static int capi_stats_call(struct tab *tab, void *arg)
{
  struct capi_stats_shard *s = arg;
  tab_stats_get(tab, &s->ts);
  tab_io_stats_get(tab, &s->io);
  struct fs_ctx *ctx = rt_self_ctx();
  if (ctx)
    fs_metrics_get(ctx, &s->fm);
  return JDB_OK;
}

/* Copy a filled report into the caller's struct, up to its struct_size. */
static void capi_out_copy(void *out, const void *full, size_t full_size)
{
  uint32_t size;
  memcpy(&size, out, sizeof size);
  memcpy(out, full, size < full_size ? size : full_size);
  memcpy(out, &size, sizeof size);
}

static void capi_hist_add(struct fs_op_metrics *to, const struct fs_op_metrics *from)
{
  to->ops += from->ops;
  to->bytes += from->bytes;
  to->errors += from->errors;
  to->retries += from->retries;
  for (int b = 0; b < FS_HIST_BUCKETS; b++)
    to->hist[b] += from->hist[b];
}

JDB_API int jdb_stats(jdb_t *db, int shard, jdb_stats_t *out)
{
  if (!db || !out || out->struct_size < CAPI_STATS_SIZE_MIN || shard < -1 ||
      (shard >= 0 && (uint32_t)shard >= db->shards))
    return JDB_EINVAL;
  uint32_t n = shard < 0 ? db->shards : 1, first = shard < 0 ? 0 : (uint32_t)shard;
  struct capi_stats_shard *ss = mem_calloc(n, sizeof *ss);
  if (!ss)
    return JDB_ENOMEM;
  int rc = capi_each_shard(db, shard, capi_stats_call, ss, sizeof *ss);
  jdb_stats_t st = {.struct_size = (uint32_t)sizeof st, .shards = n};
  struct fs_metrics fm = {0};
  for (uint32_t i = 0; i < n && rc == JDB_OK; i++) {
    const struct capi_stats_shard *s = &ss[i];
    st.seq += s->ts.seq;
    st.writes += s->ts.writes;
    st.ops += s->ts.ops;
    st.checkpoints += s->ts.checkpoints;
    st.memtable_bytes += s->ts.mt_bytes + s->ts.frozen_bytes;
    st.page_file_bytes += s->io.page_file_bytes;
    st.log_bytes += s->io.log_bytes;
    st.cache_bytes += s->io.cache_frames * CAPI_PAGE;
    st.cache_used_bytes += s->io.cache_frames_used * CAPI_PAGE;
    st.cache_hits += s->io.cache_hits;
    st.cache_misses += s->io.cache_misses;
    st.versions_pruned += s->ts.versions_pruned;
    st.segments_released += s->ts.segments_released + s->ts.gc_segments;
    st.snapshots += s->ts.snapshots;
    st.checkpoints_running += s->ts.ckpt_running;
    for (int op = 0; op < FS_OP_NOPCODES; op++)
      capi_hist_add(&fm.op[op], &s->fm.op[op]);
    struct rt_shard_stats rs;
    if (rt_shard_stats(db->rt, first + i, &rs) == JDB_OK)
      st.calls += rs.calls;
  }
  mem_free(ss);
  if (rc)
    return rc;
  /* full fsyncs are rare (directories): counted with the fdatasyncs */
  capi_hist_add(&fm.op[FS_OP_FDATASYNC], &fm.op[FS_OP_FSYNC]);
  st.io_reads = fm.op[FS_OP_READ].ops;
  st.io_read_bytes = fm.op[FS_OP_READ].bytes;
  st.io_writes = fm.op[FS_OP_WRITE].ops;
  st.io_write_bytes = fm.op[FS_OP_WRITE].bytes;
  st.io_syncs = fm.op[FS_OP_FDATASYNC].ops;
  st.io_read_p50_ns = fs_metrics_quantile_ns(&fm, FS_OP_READ, 0.5);
  st.io_read_p99_ns = fs_metrics_quantile_ns(&fm, FS_OP_READ, 0.99);
  st.io_write_p50_ns = fs_metrics_quantile_ns(&fm, FS_OP_WRITE, 0.5);
  st.io_write_p99_ns = fs_metrics_quantile_ns(&fm, FS_OP_WRITE, 0.99);
  st.io_sync_p50_ns = fs_metrics_quantile_ns(&fm, FS_OP_FDATASYNC, 0.5);
  st.io_sync_p99_ns = fs_metrics_quantile_ns(&fm, FS_OP_FDATASYNC, 0.99);
  capi_out_copy(out, &st, sizeof st);
  return JDB_OK;
}

struct capi_check_shard {
  struct tab_verify_report r;
  int rc;
};

static int capi_check_call(struct tab *tab, void *arg)
{
  struct capi_check_shard *c = arg;
  c->rc = tab_verify(tab, &c->r);
  return JDB_OK;
}

JDB_API int jdb_check(jdb_t *db, jdb_check_report_t *report)
{
  if (!db || !report || report->struct_size < CAPI_CHECK_SIZE_MIN)
    return JDB_EINVAL;
  struct capi_check_shard *cs = mem_calloc(db->shards, sizeof *cs);
  if (!cs)
    return JDB_ENOMEM;
  int rc = capi_each_shard(db, -1, capi_check_call, cs, sizeof *cs);
  jdb_check_report_t r = {.struct_size = (uint32_t)sizeof r, .shards = db->shards};
  int worst = JDB_OK;
  for (uint32_t i = 0; i < db->shards && rc == JDB_OK; i++) {
    r.pages_checked += cs[i].r.pages_checked;
    r.log_records_checked += cs[i].r.log_records_checked;
    r.log_bytes_checked += cs[i].r.log_bytes_checked;
    r.errors += cs[i].r.errors;
    /* an error that stopped a shard's walk (I/O, memory) wins over damage found */
    if (cs[i].rc && (worst == JDB_OK || worst == JDB_ECORRUPT))
      worst = cs[i].rc;
  }
  mem_free(cs);
  if (rc)
    return rc;
  capi_out_copy(report, &r, sizeof r);
  return worst;
}

/* ------------------------------------------------------------------------------------------- */
/* Tables */

struct capi_name_call {
  const void *name;
  size_t nlen;
  unsigned flags;
  uint64_t id;
};

static int capi_table_open_call(struct tab *tab, void *arg)
{
  struct capi_name_call *c = arg;
  if (!(c->flags & JDB_CREATE))
    return tab_table_find(tab, c->name, c->nlen, &c->id);
  int rc = tab_table_create(tab, c->name, c->nlen, 0, &c->id);
  return rc == JDB_EEXIST ? JDB_OK : rc;
}

static int capi_table_drop_call(struct tab *tab, void *arg)
{
  struct capi_name_call *c = arg;
  return tab_table_drop(tab, c->name, c->nlen, 0);
}

JDB_API int jdb_table_open(jdb_t *db, const void *name, size_t name_len, unsigned flags,
                           jdb_table_t **out)
{
  if (out)
    *out = NULL;
  if (!db || !out || capi_name_ok(name, name_len) || (flags & ~JDB_CREATE))
    return JDB_EINVAL;
  uint32_t shard = rt_shard_of(db->rt, name, name_len);
  struct capi_name_call c = {.name = name, .nlen = name_len, .flags = flags};
  int rc = rt_call(db->rt, shard, capi_table_open_call, &c);
  if (rc)
    return rc;
  struct jdb_table *t = mem_malloc(sizeof *t + name_len);
  if (!t)
    return JDB_ENOMEM;
  t->db = db;
  t->shard = shard;
  t->id = c.id;
  t->name_len = name_len;
  memcpy(t->name, name, name_len);
  *out = t;
  return JDB_OK;
}

JDB_API void jdb_table_close(jdb_table_t *t)
{
  mem_free(t);
}

JDB_API int jdb_table_drop(jdb_t *db, const void *name, size_t name_len)
{
  if (!db || capi_name_ok(name, name_len))
    return JDB_EINVAL;
  struct capi_name_call c = {.name = name, .nlen = name_len};
  return rt_call(db->rt, rt_shard_of(db->rt, name, name_len), capi_table_drop_call, &c);
}

/* Listing: each shard hands over its names in chunks (names >= a start, in order); the calling
   thread merges the shards' chunks and calls fn, so fn runs outside every shard. */
#define CAPI_LIST_NAMES 128u
#define CAPI_LIST_BYTES (16u << 10)

struct capi_list_shard {
  uint8_t from[JDB_NAME_MAX];   /* fetch names >= from (> from when skip) */
  size_t from_len;
  int has_from, skip;
  uint8_t buf[CAPI_LIST_BYTES + JDB_NAME_MAX];
  size_t off[CAPI_LIST_NAMES + 1];   /* name i is buf[off[i] .. off[i+1]) */
  size_t n, at;
  int more;                     /* the chunk filled up: names may follow */
};

static int capi_list_add(void *ud, const void *name, size_t nlen, uint64_t id)
{
  (void)id;
  struct capi_list_shard *s = ud;
  if (s->skip && nlen == s->from_len && memcmp(name, s->from, nlen) == 0)
    return 0;
  if (s->n == CAPI_LIST_NAMES || (s->n && s->off[s->n] + nlen > CAPI_LIST_BYTES)) {
    s->more = 1;
    return 1;
  }
  memcpy(s->buf + s->off[s->n], name, nlen);
  s->off[s->n + 1] = s->off[s->n] + nlen;
  s->n++;
  return 0;
}

static int capi_list_call(struct tab *tab, void *arg)
{
  struct capi_list_shard *s = arg;
  s->n = s->at = 0;
  s->off[0] = 0;
  s->more = 0;
  int rc = tab_table_list(tab, s->has_from ? s->from : NULL, s->from_len, capi_list_add, s);
  return rc == 1 ? JDB_OK : rc;
}

static int capi_name_cmp(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
  int c = memcmp(a, b, la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

JDB_API int jdb_table_list(jdb_t *db, const void *start, size_t start_len, jdb_name_fn fn,
                           void *ud)
{
  if (!db || !fn || (!start && start_len) || start_len > JDB_NAME_MAX)
    return JDB_EINVAL;
  uint32_t n = db->shards;
  struct capi_list_shard *ss = mem_malloc(n * sizeof *ss);
  if (!ss)
    return JDB_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    ss[i].has_from = start_len > 0;
    ss[i].from_len = start_len;
    ss[i].skip = 0;
    if (start_len)
      memcpy(ss[i].from, start, start_len);
  }
  int rc = capi_each_shard(db, -1, capi_list_call, ss, sizeof *ss);
  while (rc == JDB_OK) {
    struct capi_list_shard *best = NULL;
    for (uint32_t i = 0; i < n; i++) {
      struct capi_list_shard *s = &ss[i];
      if (s->at < s->n &&
          (!best || capi_name_cmp(s->buf + s->off[s->at], s->off[s->at + 1] - s->off[s->at],
                                  best->buf + best->off[best->at],
                                  best->off[best->at + 1] - best->off[best->at]) < 0))
        best = s;
    }
    if (!best)
      break;
    const uint8_t *name = best->buf + best->off[best->at];
    size_t nlen = best->off[best->at + 1] - best->off[best->at];
    best->at++;
    if (best->at == best->n && best->more) {
      /* next chunk from after this name; fn sees the name from the copy in `from` */
      memcpy(best->from, name, nlen);
      best->from_len = nlen;
      best->has_from = best->skip = 1;
      name = best->from;
      rc = fn(ud, name, nlen);
      if (rc == JDB_OK)
        rc = rt_call(db->rt, (uint32_t)(best - ss), capi_list_call, best);
      continue;
    }
    rc = fn(ud, name, nlen);
  }
  mem_free(ss);
  return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* Key-value */

struct capi_write_call {
  uint64_t table;
  const struct tab_op *ops;
  uint32_t n;
  unsigned flags;
};

static int capi_write_call(struct tab *tab, void *arg)
{
  struct capi_write_call *c = arg;
  return tab_write(tab, c->table, c->ops, c->n, c->flags, NULL);
}

static int capi_write(jdb_table_t *t, const struct tab_op *ops, uint32_t n, unsigned flags)
{
  struct capi_write_call c = {.table = t->id, .ops = ops, .n = n, .flags = flags};
  return capi_write_rc(rt_call(t->db->rt, t->shard, capi_write_call, &c));
}

static int capi_put(jdb_table_t *t, const void *key, size_t klen, const void *val, size_t vlen,
                    unsigned flags)
{
  if (!t || capi_key_ok(key, klen) || capi_val_ok(val, vlen))
    return JDB_EINVAL;
  struct tab_op op = {.kind = TAB_PUT, .key = key, .klen = (uint32_t)klen, .val = val,
                      .vlen = (uint32_t)vlen};
  return capi_write(t, &op, 1, flags);
}

JDB_API int jdb_put(jdb_table_t *t, const void *key, size_t klen, const void *val, size_t vlen)
{
  return capi_put(t, key, klen, val, vlen, 0);
}

JDB_API int jdb_put_sync(jdb_table_t *t, const void *key, size_t klen, const void *val,
                         size_t vlen)
{
  return capi_put(t, key, klen, val, vlen, TAB_SYNC);
}

JDB_API int jdb_del(jdb_table_t *t, const void *key, size_t klen)
{
  if (!t || capi_key_ok(key, klen))
    return JDB_EINVAL;
  struct tab_op op = {.kind = TAB_DEL, .key = key, .klen = (uint32_t)klen};
  return capi_write(t, &op, 1, 0);
}

struct capi_get_call {
  const struct tab_snap *snap;
  uint64_t table;
  const void *key;
  uint32_t klen;
  void *val;
  size_t vlen;
};

static int capi_get_call(struct tab *tab, void *arg)
{
  struct capi_get_call *c = arg;
  /* a dropped table is gone at once for current reads (a snapshot keeps what it saw) */
  if (!c->snap && !tab_table_live(tab, c->table))
    return JDB_NOTFOUND;
  return tab_get(tab, c->snap, c->table, c->key, c->klen, &c->val, &c->vlen);
}

/* A get on the table's shard; the value stays the caller's (jdb_free). */
static int capi_get(struct jdb_db *db, uint32_t shard, struct capi_get_call *c, void **val,
                    size_t *vlen)
{
  int rc = rt_call(db->rt, shard, capi_get_call, c);
  if (rc == JDB_OK) {
    *val = c->val;
    *vlen = c->vlen;
  } else {
    mem_free(c->val);
  }
  return rc;
}

JDB_API int jdb_get(jdb_table_t *t, const void *key, size_t klen, void **val, size_t *vlen)
{
  if (val)
    *val = NULL;
  if (vlen)
    *vlen = 0;
  if (!t || !val || !vlen || capi_key_ok(key, klen))
    return JDB_EINVAL;
  struct capi_get_call c = {.table = t->id, .key = key, .klen = (uint32_t)klen};
  return capi_get(t->db, t->shard, &c, val, vlen);
}

JDB_API void jdb_free(void *p)
{
  mem_free(p);
}

/* ------------------------------------------------------------------------------------------- */
/* Batches: operations in one array, their keys and values in one byte buffer (offsets, since
   the buffer moves as it grows); jdb_write points a tab_op array into it. */

struct capi_bop {
  uint8_t kind;
  uint32_t klen, vlen;
  size_t off;                 /* key at bytes + off, a put's value right after it */
};

struct jdb_batch {
  struct capi_bop *ops;
  size_t n, cap;
  uint8_t *bytes;
  size_t used, cbytes;
  uint64_t load;              /* keys + values + CAPI_OP_OVERHEAD per op */
  struct tab_op *tops;        /* jdb_write's view, ctops entries */
  size_t ctops;
};

JDB_API jdb_batch_t *jdb_batch_new(void)
{
  return mem_calloc(1, sizeof(struct jdb_batch));
}

static int capi_batch_add(jdb_batch_t *b, uint8_t kind, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
  if (!b || capi_key_ok(key, klen) || capi_val_ok(val, vlen) || b->n >= JDB_BATCH_MAX ||
      b->load + klen + vlen + CAPI_OP_OVERHEAD > JDB_BATCH_BYTES_MAX)
    return JDB_EINVAL;
  if (capi_grow((void **)&b->ops, &b->cap, b->n + 1, sizeof *b->ops) ||
      capi_grow((void **)&b->bytes, &b->cbytes, b->used + klen + vlen, 1))
    return JDB_ENOMEM;
  b->ops[b->n++] = (struct capi_bop){.kind = kind, .klen = (uint32_t)klen,
                                     .vlen = (uint32_t)vlen, .off = b->used};
  memcpy(b->bytes + b->used, key, klen);
  if (vlen)
    memcpy(b->bytes + b->used + klen, val, vlen);
  b->used += klen + vlen;
  b->load += klen + vlen + CAPI_OP_OVERHEAD;
  return JDB_OK;
}

JDB_API int jdb_batch_put(jdb_batch_t *b, const void *key, size_t klen, const void *val,
                          size_t vlen)
{
  return capi_batch_add(b, TAB_PUT, key, klen, val, vlen);
}

JDB_API int jdb_batch_del(jdb_batch_t *b, const void *key, size_t klen)
{
  return capi_batch_add(b, TAB_DEL, key, klen, NULL, 0);
}

JDB_API void jdb_batch_clear(jdb_batch_t *b)
{
  if (b)
    b->n = b->used = b->load = 0;
}

JDB_API void jdb_batch_free(jdb_batch_t *b)
{
  if (!b)
    return;
  mem_free(b->ops);
  mem_free(b->bytes);
  mem_free(b->tops);
  mem_free(b);
}

JDB_API size_t jdb_batch_count(const jdb_batch_t *b)
{
  return b ? b->n : 0;
}

JDB_API int jdb_write(jdb_table_t *t, jdb_batch_t *b, unsigned flags)
{
  if (!t || !b || (flags & ~JDB_SYNC))
    return JDB_EINVAL;
  if (b->n == 0)
    return JDB_OK;
  if (capi_grow((void **)&b->tops, &b->ctops, b->n, sizeof *b->tops))
    return JDB_ENOMEM;
  for (size_t i = 0; i < b->n; i++) {
    const struct capi_bop *op = &b->ops[i];
    b->tops[i] = (struct tab_op){.kind = op->kind, .key = b->bytes + op->off, .klen = op->klen,
                                 .val = op->kind == TAB_PUT ? b->bytes + op->off + op->klen
                                                            : NULL,
                                 .vlen = op->vlen};
  }
  return capi_write(t, b->tops, (uint32_t)b->n, (flags & JDB_SYNC) ? TAB_SYNC : 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Snapshots */

static int capi_snap_call(struct tab *tab, void *arg)
{
  struct jdb_snap *s = arg;
  if (!tab_table_live(tab, s->id))
    return JDB_NOTFOUND;
  int rc = tab_snapshot(tab, &s->snap);
  if (rc == JDB_OK)
    s->seq = tab_snapshot_seq(s->snap);
  return rc;
}

static int capi_snap_drop(struct tab *tab, void *arg)
{
  (void)tab;
  struct jdb_snap *s = (struct jdb_snap *)((uint8_t *)arg - offsetof(struct jdb_snap, obj));
  tab_snapshot_release(s->snap);
  s->snap = NULL;
  return JDB_OK;
}

JDB_API int jdb_snapshot(jdb_table_t *t, jdb_snap_t **out)
{
  if (out)
    *out = NULL;
  if (!t || !out)
    return JDB_EINVAL;
  struct jdb_snap *s = mem_calloc(1, sizeof *s);
  if (!s)
    return JDB_ENOMEM;
  /* the handle is filled before it is linked: jdb_close may release it at once */
  s->db = t->db;
  s->shard = t->shard;
  s->id = t->id;
  int rc = capi_obj_create(t->db, &s->obj, t->shard, capi_snap_call, s, capi_snap_drop);
  if (rc) {
    mem_free(s);
    return rc;
  }
  *out = s;
  return JDB_OK;
}

JDB_API uint64_t jdb_snapshot_seq(const jdb_snap_t *s)
{
  return s ? s->seq : 0;
}

/* An iterator opened on the snapshot holds the tablet view itself (tab_iter_open): releasing
   the snapshot first does not end it. */
JDB_API void jdb_snapshot_release(jdb_snap_t *s)
{
  if (!s)
    return;
  capi_obj_release(s->db, &s->obj);
  mem_free(s);
}

JDB_API int jdb_get_at(const jdb_snap_t *s, const void *key, size_t klen, void **val,
                       size_t *vlen)
{
  if (val)
    *val = NULL;
  if (vlen)
    *vlen = 0;
  if (!s || !val || !vlen || capi_key_ok(key, klen))
    return JDB_EINVAL;
  struct jdb_snap *sn = (struct jdb_snap *)s;
  int rc = capi_obj_enter(sn->db, &sn->obj);
  if (rc)
    return rc;
  struct capi_get_call c = {.snap = sn->snap, .table = sn->id, .key = key,
                            .klen = (uint32_t)klen};
  rc = capi_get(sn->db, sn->shard, &c, val, vlen);
  capi_gate_leave(sn->db);
  return rc;
}
