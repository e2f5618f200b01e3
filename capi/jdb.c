/*
 * jdb.c - L5 C API. For now the library exports what the lower layers define with JDB_API
 * (jdb_version, jdb_strerror, jdb_options_init, jdb_log_set); the instance API lands with the
 * runtime issue.
 */
#include "jdb.h"
