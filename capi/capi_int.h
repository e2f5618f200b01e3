/*
 * capi_int.h - what the C API's units (jdb.c, jdb_iter.c, jdb_pipe.c, jdb_notsup.c) share: the
 * handle structs and argument checks. Not installed; nothing here is exported.
 *
 * A handle names its shard and the table's id there: every operation on it is one rt_call to
 * that shard (ARCHITECTURE.md §2: a table lives in shard hash(name) mod shards; its id is the
 * one that shard's catalog gave it).
 */
#ifndef JDB_CAPI_INT_H
#define JDB_CAPI_INT_H

#include <stddef.h>
#include <stdint.h>

#include "jdb.h"
#include "rt.h"
#include "tab.h"

struct jdb {
  struct rt *rt;
  uint32_t shards;
  int read_only;
  jdb_options_t opts;         /* as given (struct_size normalised), for stats and tools */
};

struct jdb_table {
  struct jdb *db;
  uint32_t shard;
  uint64_t id;                /* the table's id in its shard's catalog */
  size_t name_len;
  unsigned char name[];       /* name_len bytes */
};

struct jdb_snap {
  struct jdb *db;
  uint32_t shard;
  uint64_t id;                /* the table it was taken for */
  struct tab_snap *snap;      /* lives on the shard; released there */
  uint64_t seq;
};

/* Argument checks shared by every entry point: 1 .. JDB_KEY_MAX, 0 .. JDB_VALUE_MAX (val may
   be NULL only when vlen is 0), 1 .. JDB_NAME_MAX. Return JDB_OK or JDB_EINVAL. */
static inline int capi_key_ok(const void *key, size_t klen)
{
  return key && klen >= 1 && klen <= JDB_KEY_MAX ? JDB_OK : JDB_EINVAL;
}
static inline int capi_val_ok(const void *val, size_t vlen)
{
  return (val || vlen == 0) && vlen <= JDB_VALUE_MAX ? JDB_OK : JDB_EINVAL;
}
static inline int capi_name_ok(const void *name, size_t nlen)
{
  return name && nlen >= 1 && nlen <= JDB_NAME_MAX ? JDB_OK : JDB_EINVAL;
}

/* A tablet write error for a handle whose arguments were checked: the tablet says EINVAL for a
   table id that was dropped, which the API reports as JDB_NOTFOUND. */
int capi_write_rc(int rc);

#endif
