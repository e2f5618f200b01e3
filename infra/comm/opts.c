/*
 * opts.c - option defaults (jdb_options_init). Fields are only ever appended to jdb_options_t;
 * struct_size tells a newer library how much of the struct an older caller filled in.
 */
#include "opts.h"

#include "jdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cgroup limit file's value: a decimal byte count, or 0 for "max", a missing or odd file. */
static uint64_t opts_cgroup_limit(const char *path)
{
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  char buf[64];
  uint64_t v = 0;
  if (fgets(buf, sizeof buf, f)) {
    char *end = NULL;
    unsigned long long x = strtoull(buf, &end, 10);
    if (end != buf && (*end == '\n' || *end == '\0'))
      v = (uint64_t)x;
  }
  fclose(f);
  return v;
}

uint64_t opts_ram_bytes(void)
{
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
  static const char *const limits[] = {"/sys/fs/cgroup/memory.max",
                                       "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    uint64_t lim = opts_cgroup_limit(limits[i]);
    if (lim && (!ram || lim < ram))
      ram = lim;
  }
  return ram;
}

uint64_t opts_cache_bytes_default(void)
{
  uint64_t b = opts_ram_bytes() / 4 / 4096 * 4096;
  if (b < OPTS_CACHE_DEFAULT_MIN)
    b = OPTS_CACHE_DEFAULT_MIN;
  if (b > OPTS_CACHE_DEFAULT_MAX)
    b = OPTS_CACHE_DEFAULT_MAX;
  return b;
}

JDB_API void jdb_options_init(jdb_options_t *o)
{
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->struct_size = (uint32_t)sizeof *o;
  o->shards = 0;
  o->pin_cores = 1;
  o->create_if_missing = 1;
  o->read_only = 0;
  o->cache_bytes = opts_cache_bytes_default();
  o->memtable_bytes = 64ull << 20;
  o->inline_value_max = 256;
  o->history_seconds = 0;
  o->io_backend = JDB_IO_AUTO;
  o->direct_io = JDB_DIRECT_AUTO;
}
