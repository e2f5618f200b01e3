/*
 * tutil.h - helpers shared by the test programs: reproducible seeds, a small RNG, scratch
 * directories on the build's file system (so O_DIRECT is exercised for real).
 */
#ifndef JDB_TUTIL_H
#define JDB_TUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* The run's seed: JDB_TEST_SEED if set, else from the clock. Printed once to stderr, so a failure
   can be replayed with JDB_TEST_SEED=<seed>. */
uint64_t tutil_seed(void);

/* xoshiro256** */
struct tutil_rng { uint64_t s[4]; };
void tutil_rng_init(struct tutil_rng *r, uint64_t seed);
uint64_t tutil_rng_next(struct tutil_rng *r);
/* uniform in [0, n); n > 0 */
uint64_t tutil_rng_below(struct tutil_rng *r, uint64_t n);
void tutil_rng_fill(struct tutil_rng *r, void *buf, size_t n);

/* A fresh empty directory <build>/test-tmp/<name>-<pid>-<counter>; returns a static-lifetime
   string owned by tutil (freed at exit), removed again by tutil_rmrf. */
const char *tutil_tmpdir(const char *name);
void tutil_rmrf(const char *path);
/* Threads of this process whose name (comm) starts with prefix: 1 when there is one and every
   such thread may run on exactly the CPUs the main thread may, -1 when one differs, 0 when there
   is none. */
int tutil_threads_share_main_mask(const char *prefix);
/* path join into a caller buffer; returns buf */
char *tutil_path(char *buf, size_t cap, const char *dir, const char *file);

/* A zero-filled buffer of n bytes aligned to 4 KiB (O_DIRECT), from posix_memalign; free() it.
   Fails the running test if memory is short. */
void *tutil_abuf(size_t n);
/* Deterministic content of len bytes for a tag (seeded RNG stream), and its check. */
void tutil_pat_fill(void *buf, size_t len, uint64_t tag);
int tutil_pat_check(const void *buf, size_t len, uint64_t tag);

/* Silence the library's log unless JDB_TEST_LOG is set. Call first in main. */
void tutil_init(void);

#endif
