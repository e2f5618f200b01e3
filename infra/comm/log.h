/*
 * log.h - the library's log lines: one hook (jdb_log_set), default stderr at WARN.
 */
#ifndef JDB_LOG_H
#define JDB_LOG_H

#include "jdb.h"

#if defined(__GNUC__)
#define JDB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define JDB_PRINTF(a, b)
#endif

/* Format and emit one line at `level` if the current level lets it through. Thread-safe. */
void log_printf(int level, const char *fmt, ...) JDB_PRINTF(2, 3);
/* Emit a line only the first time this call site runs (per flag; flag starts at 0). */
void log_once(int *flag, int level, const char *fmt, ...) JDB_PRINTF(3, 4);
int log_level(void);
/* Tests: silence all output unless the environment variable JDB_TEST_LOG is set. */
void log_quiet_for_tests(void);

#define LOG_ERROR(...) log_printf(JDB_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  log_printf(JDB_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...)  log_printf(JDB_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) do { if (log_level() >= JDB_LOG_DEBUG) log_printf(JDB_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
