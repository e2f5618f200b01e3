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

uint64_t opts_cgroup_walk(const char *base, const char *path, const char *file)
{
  char dir[4096], full[8400];
  if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
    return 0;
  uint64_t best = 0;
  for (;;) {
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/')
      dir[--n] = '\0';   /* "/" and "" both name the hierarchy's root */
    if ((size_t)snprintf(full, sizeof full, "%s%s/%s", base, dir, file) < sizeof full) {
      uint64_t v = opts_cgroup_limit(full);
      if (v && (!best || v < best))
        best = v;
    }
    if (n == 0)
      return best;
    char *slash = strrchr(dir, '/');
    if (!slash)
      return best;
    *slash = '\0';
  }
}

/* The smallest memory limit on the process's cgroup paths (/proc/self/cgroup): cgroup v2
   (memory.max) and v1 (memory.limit_in_bytes of the memory controller); 0 when none is set. */
static uint64_t opts_cgroup_min(void)
{
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f)
    return 0;
  char line[4096];
  uint64_t best = 0;
  while (fgets(line, sizeof line, f)) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
      continue;
    *c2 = '\0';
    char *path = c2 + 1;
    path[strcspn(path, "\n")] = '\0';
    const char *ctrl = c1 + 1;
    uint64_t v = 0;
    if (*ctrl == '\0') {
      v = opts_cgroup_walk("/sys/fs/cgroup", path, "memory.max");
    } else {
      char *save = NULL;
      for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, "memory") == 0)
          v = opts_cgroup_walk("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes");
    }
    if (v && (!best || v < best))
      best = v;
  }
  fclose(f);
  return best;
}

uint64_t opts_ram_bytes(void)
{
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
  uint64_t lim = opts_cgroup_min();
  if (lim && (!ram || lim < ram))
    ram = lim;
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
