/*
 * opts.c - option defaults (jdb_options_init). Fields are only ever appended to jdb_options_t;
 * struct_size tells a newer library how much of the struct an older caller filled in.
 */
#include "jdb.h"

#include <string.h>

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
  o->cache_bytes = 256ull << 20;
  o->memtable_bytes = 64ull << 20;
  o->inline_value_max = 256;
  o->history_seconds = 0;
  o->io_backend = JDB_IO_AUTO;
  o->direct_io = JDB_DIRECT_AUTO;
}
