/*
 * opts.h - option defaults shared by jdb_options_init and jdb_open (a cache_bytes of 0).
 */
#ifndef JDB_OPTS_H
#define JDB_OPTS_H

#include <stdint.h>

/* The memory this process may use: the machine's physical memory (sysconf), or the smallest
   cgroup limit on the process's cgroup path when one is set and smaller (its own cgroup and
   every parent up to the hierarchy's root, from /proc/self/cgroup: v2 memory.max, v1
   memory.limit_in_bytes), as a container or a systemd MemoryMax= unit sees it; 0 if nothing
   can be read. Read afresh on every call. */
uint64_t opts_ram_bytes(void);
/* The smallest limit in the files named `file` of the directories base + path, its parents, up
   to base itself (a parent's limit binds its children); "max", missing or malformed files count
   as no limit; 0 when there is none. For opts_ram_bytes (and its test). */
uint64_t opts_cgroup_walk(const char *base, const char *path, const char *file);

/* The buffer pool a caller that names no size gets: a quarter of opts_ram_bytes, in whole 4 KiB pages, at least
   OPTS_CACHE_DEFAULT_MIN, at most OPTS_CACHE_DEFAULT_MAX (2^26 frames). The pool takes memory
   only as pages fill its frames (store/page), so the budget is a ceiling, not an allocation.
   WiredTiger sizes its default cache from RAM the same way (half of it less 1 GB); LMDB and
   RocksDB lean on the OS page cache, which grows into free memory unasked. */
#define OPTS_CACHE_DEFAULT_MIN (64ull << 20)
#define OPTS_CACHE_DEFAULT_MAX (256ull << 30)
uint64_t opts_cache_bytes_default(void);

#endif
