/*
 * jdb.h - the public C API of JDB, an embedded time-series and key-value storage kernel.
 *
 * This is the only header a program needs (link with `pkg-config --libs jdb`). Every function
 * returning int returns JDB_OK (0) or a negative JDB_E* code; jdb_strerror() names it. Nothing
 * in the library aborts the host process on bad input or bad disk data.
 *
 * Functions appear here as their layers land; see README.md for what is available in this build
 * and what still returns JDB_ENOTSUP.
 */
#ifndef JDB_H
#define JDB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define JDB_API __attribute__((visibility("default")))
#else
#define JDB_API
#endif

#define JDB_VERSION_MAJOR 0
#define JDB_VERSION_MINOR 1
#define JDB_VERSION_PATCH 0
#define JDB_VERSION_STRING "0.1.0"

/* Error codes. Every public function returns one of these (0 or negative). */
enum {
  JDB_OK = 0,
  JDB_NOTFOUND   = -1,  /* no such key / table / version */
  JDB_EINVAL     = -2,  /* bad argument */
  JDB_ENOMEM     = -3,
  JDB_EIO        = -4,  /* the OS reported an I/O error */
  JDB_ENOSPC     = -5,
  JDB_ECORRUPT   = -6,  /* on-disk data failed a checksum or a format check */
  JDB_EEXIST     = -7,
  JDB_EBUSY      = -8,  /* directory in use by another process */
  JDB_EREADONLY  = -9,  /* opened read-only, or writes refused after an I/O error */
  JDB_ETRUNCATED = -10, /* watch: the requested seq is no longer retained */
  JDB_EAGAIN     = -11, /* watch: nothing new before the timeout */
  JDB_EVERSION   = -12, /* on-disk format from an incompatible version */
  JDB_ECLOSED    = -13, /* instance is closing */
  JDB_ENOTSUP    = -14  /* not supported (yet) by this build or this table */
};

/**
 * Describe an error code.
 * @param[in] code  any int; JDB_OK, a JDB_E* code, or anything else.
 * @return a static string "JDB_ECORRUPT: on-disk data failed a checksum or format check" style;
 *         never NULL, never to be freed. Unknown codes give "JDB_E?: unknown error code".
 * Thread-safe.
 */
JDB_API const char *jdb_strerror(int code);

/**
 * The library's version, "MAJOR.MINOR.PATCH" (equal to JDB_VERSION_STRING of the header the
 * library was built with). Static string; thread-safe.
 */
JDB_API const char *jdb_version(void);

/* I/O backends (jdb_options_t.io_backend). AUTO: io_uring when the kernel allows it, else psync.
   The environment variable JDB_IO=psync|uring overrides AUTO (for tests and locked-down hosts). */
enum { JDB_IO_AUTO = 0, JDB_IO_URING = 1, JDB_IO_PSYNC = 2 };
/* Direct I/O (jdb_options_t.direct_io). AUTO: O_DIRECT, falling back to buffered I/O + fdatasync
   on file systems that refuse it (tmpfs), logged once. ON: fail with JDB_ENOTSUP instead. */
enum { JDB_DIRECT_AUTO = 0, JDB_DIRECT_ON = 1, JDB_DIRECT_OFF = 2 };

typedef struct jdb_options {
  uint32_t struct_size;        /* set by jdb_options_init; lets the struct grow */
  uint32_t shards;             /* 0 = one per online CPU; fixed when the directory is created */
  int      pin_cores;          /* 1 = pin shard threads (default 1) */
  int      create_if_missing;  /* default 1 */
  int      read_only;          /* default 0 */
  uint64_t cache_bytes;        /* buffer pool, whole instance (default 256 MiB) */
  uint64_t memtable_bytes;     /* per shard, before a checkpoint (default 64 MiB) */
  uint32_t inline_value_max;   /* values up to this size live in B+ tree leaves (default 256) */
  uint64_t history_seconds;    /* keep overwritten versions this long (default 0) */
  int      io_backend;         /* JDB_IO_AUTO, JDB_IO_URING, JDB_IO_PSYNC */
  int      direct_io;          /* JDB_DIRECT_AUTO, JDB_DIRECT_ON, JDB_DIRECT_OFF */
} jdb_options_t;

/**
 * Fill *o with the defaults above and set o->struct_size. Call it before setting any field.
 * @param[out] o  options to initialise; NULL is ignored.
 */
JDB_API void jdb_options_init(jdb_options_t *o);

/* Log levels for jdb_log_set(). */
enum { JDB_LOG_OFF = 0, JDB_LOG_ERROR = 1, JDB_LOG_WARN = 2, JDB_LOG_INFO = 3, JDB_LOG_DEBUG = 4 };
typedef void (*jdb_log_fn)(void *ud, int level, const char *msg);

/**
 * Route the library's log lines (process-wide). By default lines at JDB_LOG_WARN and above go to
 * stderr; the environment variable JDB_LOG=off|error|warn|info|debug changes the default level.
 * @param[in] fn     callback, or NULL for stderr. Called from any JDB thread; must not call JDB.
 * @param[in] ud     passed to fn unchanged.
 * @param[in] level  lines above this level are dropped (JDB_LOG_OFF drops all).
 */
JDB_API void jdb_log_set(jdb_log_fn fn, void *ud, int level);

#ifdef __cplusplus
}
#endif
#endif /* JDB_H */
