/*
 * jdb_notsup.c - the public functions whose layers have not landed yet: time travel (forks,
 * snapshots at a time, key history), streams (watches, event encoding, import) and time series.
 *
 * Each returns JDB_ENOTSUP whatever its arguments (it does not check them first: a caller learns
 * the one thing that matters, that this build cannot do it) and sets its handle output to NULL
 * when it has one, so a caller's cleanup path stays safe. jdb_watch_close is a no-op. README.md
 * lists these functions; each moves to its own unit when its issue lands.
 */
#include "capi_int.h"

int jdb_table_fork(jdb_table_t *src, uint64_t ts_sec, int order, const void *name,
                   size_t name_len, jdb_table_t **out)
{
  (void)src, (void)ts_sec, (void)order, (void)name, (void)name_len;
  if (out)
    *out = NULL;
  return JDB_ENOTSUP;
}

int jdb_snapshot_at(jdb_table_t *t, uint64_t ts_sec, int order, jdb_snap_t **out)
{
  (void)t, (void)ts_sec, (void)order;
  if (out)
    *out = NULL;
  return JDB_ENOTSUP;
}

int jdb_history_open(jdb_table_t *t, const void *key, size_t klen, jdb_iter_t **out)
{
  (void)t, (void)key, (void)klen;
  if (out)
    *out = NULL;
  return JDB_ENOTSUP;
}

int jdb_iter_version(jdb_iter_t *it, uint64_t *seq, uint64_t *ts_sec, int *is_tombstone)
{
  (void)it, (void)seq, (void)ts_sec, (void)is_tombstone;
  return JDB_ENOTSUP;
}

int jdb_watch_open(jdb_table_t *t, uint64_t from_seq, jdb_watch_t **out)
{
  (void)t, (void)from_seq;
  if (out)
    *out = NULL;
  return JDB_ENOTSUP;
}

int jdb_watch_next(jdb_watch_t *w, jdb_event_t *ev, int timeout_ms)
{
  (void)w, (void)ev, (void)timeout_ms;
  return JDB_ENOTSUP;
}

int jdb_watch_fd(jdb_watch_t *w)
{
  (void)w;
  return JDB_ENOTSUP;
}

void jdb_watch_close(jdb_watch_t *w)
{
  (void)w;
}

int jdb_event_encode(const jdb_event_t *ev, void *buf, size_t cap, size_t *used)
{
  (void)ev, (void)buf, (void)cap;
  if (used)
    *used = 0;
  return JDB_ENOTSUP;
}

int jdb_import(jdb_table_t *t, jdb_read_fn read, void *ud, uint64_t *applied)
{
  (void)t, (void)read, (void)ud;
  if (applied)
    *applied = 0;
  return JDB_ENOTSUP;
}

int jdb_series_put(jdb_table_t *t, const jdb_tag_t *tags, size_t ntags, int64_t ts, double value)
{
  (void)t, (void)tags, (void)ntags, (void)ts, (void)value;
  return JDB_ENOTSUP;
}

int jdb_series_write_lp(jdb_table_t *t, const char *buf, size_t len, int precision,
                        size_t *points)
{
  (void)t, (void)buf, (void)len, (void)precision;
  if (points)
    *points = 0;
  return JDB_ENOTSUP;
}

int jdb_series_query(jdb_table_t *t, const char *selector, int64_t t0, int64_t t1, int64_t step,
                     int agg, jdb_point_fn fn, void *ud)
{
  (void)t, (void)selector, (void)t0, (void)t1, (void)step, (void)agg, (void)fn, (void)ud;
  return JDB_ENOTSUP;
}
