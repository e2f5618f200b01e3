/*
 * err.c - jdb_strerror, jdb_version, assertion failure and corruption reports.
 */
#include "err.h"
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const err_text[] = {
  [0]  = "JDB_OK: success",
  [1]  = "JDB_NOTFOUND: no such key, table or version",
  [2]  = "JDB_EINVAL: invalid argument",
  [3]  = "JDB_ENOMEM: out of memory",
  [4]  = "JDB_EIO: the operating system reported an I/O error",
  [5]  = "JDB_ENOSPC: no space left on device",
  [6]  = "JDB_ECORRUPT: on-disk data failed a checksum or format check",
  [7]  = "JDB_EEXIST: already exists",
  [8]  = "JDB_EBUSY: directory in use by another process",
  [9]  = "JDB_EREADONLY: read-only, or writes refused after an I/O error",
  [10] = "JDB_ETRUNCATED: the requested sequence is no longer retained",
  [11] = "JDB_EAGAIN: nothing new before the timeout",
  [12] = "JDB_EVERSION: on-disk format from an incompatible version",
  [13] = "JDB_ECLOSED: instance is closing",
  [14] = "JDB_ENOTSUP: not supported by this build or this table",
};

JDB_API const char *jdb_strerror(int code)
{
  if (code <= 0 && -code < (int)(sizeof err_text / sizeof err_text[0]))
    return err_text[-code];
  return "JDB_E?: unknown error code";
}

JDB_API const char *jdb_version(void)
{
  return JDB_VERSION_STRING;
}

static void (*err_hook)(const char *, const char *, int);

void err_assert_hook_set(void (*hook)(const char *expr, const char *file, int line))
{
  err_hook = hook;
}

_Noreturn void err_assert_fail(const char *expr, const char *file, int line, const char *func)
{
  fprintf(stderr, "jdb: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
  fflush(stderr);
  if (err_hook)
    err_hook(expr, file, line);
  abort();
}

static atomic_uint_fast64_t err_corrupt_n;

int err_corrupt(const char *what, uint64_t off, const char *file, int line)
{
  atomic_fetch_add_explicit(&err_corrupt_n, 1, memory_order_relaxed);
  log_printf(JDB_LOG_ERROR, "corrupt %s at offset/page %llu (detected at %s:%d)", what,
             (unsigned long long)off, file, line);
  return JDB_ECORRUPT;
}

uint64_t err_corrupt_count(void)
{
  return atomic_load_explicit(&err_corrupt_n, memory_order_relaxed);
}

int err_from_errno(int neg_errno)
{
  if (neg_errno >= 0)
    return JDB_OK;
  switch (neg_errno) {   /* negated cases: -INT_MIN would overflow */
  case -EIO: return JDB_EIO;
  case -ENOSPC: case -EDQUOT: case -EFBIG: return JDB_ENOSPC;
  case -ENOMEM: return JDB_ENOMEM;
  case -EEXIST: return JDB_EEXIST;
  case -ENOENT: return JDB_NOTFOUND;
  case -EWOULDBLOCK: return JDB_EBUSY;
  case -EROFS: case -EACCES: case -EPERM: return JDB_EREADONLY;
  case -EINVAL: return JDB_EINVAL;
  case -EOPNOTSUPP: return JDB_ENOTSUP;
  default: return JDB_EIO;
  }
}
