/*
 * err.h - error codes, assertions and corruption reporting shared by every layer.
 *
 * The codes are the public JDB_E* values of jdb.h. Inside the library a function returns 0, a
 * JDB_E* value, or (from base only) a negative errno; the first layer that decides what an errno
 * means translates it with err_from_errno().
 */
#ifndef JDB_ERR_H
#define JDB_ERR_H

#include "jdb.h"

#include <stddef.h>
#include <stdint.h>

/* JDB_ASSERT: always compiled in and cheap; states an internal invariant, never checks input or
   disk contents. On failure: prints expression, file, line, function, runs the hook, aborts. */
#define JDB_ASSERT(expr) \
  ((expr) ? (void)0 : err_assert_fail(#expr, __FILE__, __LINE__, __func__))
#ifdef JDB_DEBUG
#define JDB_DEBUG_ASSERT(expr) JDB_ASSERT(expr)
#else
#define JDB_DEBUG_ASSERT(expr) ((void)0)
#endif

/* JDB_CORRUPT(what, off): log "corrupt <what> at <off>" with the source line, yield JDB_ECORRUPT.
   Use it where on-disk bytes fail a check, as SQLite's SQLITE_CORRUPT_BKPT. */
#define JDB_CORRUPT(what, off) err_corrupt((what), (uint64_t)(off), __FILE__, __LINE__)

_Noreturn void err_assert_fail(const char *expr, const char *file, int line, const char *func);
/* Hook called before abort() on an assertion failure (tests use it); NULL removes it. */
void err_assert_hook_set(void (*hook)(const char *expr, const char *file, int line));
int err_corrupt(const char *what, uint64_t off, const char *file, int line);
/* Count of JDB_CORRUPT reports since start (tests assert that corruption was noticed). */
uint64_t err_corrupt_count(void);

/* Map a negative errno (never a JDB_E* code: the two ranges overlap, so callers must know which
   they hold) to a JDB_E* code: EIO->EIO, ENOSPC/EDQUOT/EFBIG->ENOSPC, ENOMEM->ENOMEM,
   EEXIST->EEXIST, ENOENT->NOTFOUND, EWOULDBLOCK->EBUSY, EROFS/EACCES/EPERM->EREADONLY,
   EINVAL->EINVAL, EOPNOTSUPP->ENOTSUP, anything else -> EIO. 0 or positive gives JDB_OK.
   Convention: base returns JDB_E* codes from its calls; only fs_op.result holds a raw -errno. */
int err_from_errno(int neg_errno);

#endif
