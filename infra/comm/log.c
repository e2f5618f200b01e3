/*
 * log.c - log hook and level. The level defaults to WARN, or to the JDB_LOG environment variable
 * (off|error|warn|info|debug), read once. Lines are formatted into a stack buffer (truncated at
 * 1 KiB) and handed to the hook, or written to stderr in one write.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jdb_log_fn log_fn;
static void *log_ud;
static atomic_int log_lvl = -1;  /* -1: not yet read from the environment */

static int log_level_from_env(void)
{
  const char *e = getenv("JDB_LOG");
  static const char *const names[] = {"off", "error", "warn", "info", "debug"};
  if (e)
    for (int i = 0; i < 5; i++)
      if (strcmp(e, names[i]) == 0)
        return i;
  return JDB_LOG_WARN;
}

int log_level(void)
{
  int l = atomic_load_explicit(&log_lvl, memory_order_relaxed);
  if (l < 0) {
    l = log_level_from_env();
    atomic_store_explicit(&log_lvl, l, memory_order_relaxed);
  }
  return l;
}

JDB_API void jdb_log_set(jdb_log_fn fn, void *ud, int level)
{
  if (level < JDB_LOG_OFF)
    level = JDB_LOG_OFF;
  if (level > JDB_LOG_DEBUG)
    level = JDB_LOG_DEBUG;
  log_fn = fn;
  log_ud = ud;
  atomic_store_explicit(&log_lvl, level, memory_order_relaxed);
}

void log_quiet_for_tests(void)
{
  if (!getenv("JDB_TEST_LOG"))
    jdb_log_set(NULL, NULL, JDB_LOG_OFF);
}

static void log_vemit(int level, const char *fmt, va_list ap)
{
  static const char *const tag[] = {"", "error", "warn", "info", "debug"};
  char line[1024];
  int n = snprintf(line, sizeof line, "jdb %s: ", tag[level]);
  int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  if (log_fn) {
    line[len] = 0;
    log_fn(log_ud, level, line + n);
    return;
  }
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}

void log_printf(int level, const char *fmt, ...)
{
  if (level <= JDB_LOG_OFF || level > log_level())
    return;
  va_list ap;
  va_start(ap, fmt);
  log_vemit(level, fmt, ap);
  va_end(ap);
}

void log_once(int *flag, int level, const char *fmt, ...)
{
  if (__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED))
    return;
  if (level <= JDB_LOG_OFF || level > log_level())
    return;
  va_list ap;
  va_start(ap, fmt);
  log_vemit(level, fmt, ap);
  va_end(ap);
}
