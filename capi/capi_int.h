/*
 * capi_int.h - what the C API's units (jdb.c, jdb_iter.c, jdb_pipe.c, jdb_notsup.c) share: the
 * handle structs, argument checks, and the bookkeeping that lets jdb_close release what callers
 * left open. Not installed; nothing here is exported.
 *
 * A handle names its shard and the table's id there: every operation on it is one rt_call to
 * that shard (ARCHITECTURE.md §2: a table lives in shard hash(name) mod shards; its id is the
 * one that shard's catalog gave it).
 *
 * Objects that live on a shard on behalf of a client handle (snapshots, iterators) are "capi
 * objects": linked into their instance, so that jdb_close can release on the shard whatever
 * the caller did not (the tablet asserts at close that nothing is left). Creating one, using
 * one and releasing one happen inside the instance's gate; jdb_close closes the gate, waits for
 * the calls inside it, releases every object still linked and marks it orphaned. From then on
 * the handle holds nothing but its own memory: calls through it give JDB_ECLOSED without
 * touching the instance, and releasing it frees that memory. Handle lifecycle:
 *
 *     create:  capi_gate_enter(db) -> rt_call making the tablet object -> capi_obj_link
 *              -> capi_gate_leave(db)   (capi_obj_create does the four)
 *     use:     capi_obj_enter(db, o) (JDB_ECLOSED when orphaned or closing) -> rt_call
 *              -> capi_gate_leave(db)
 *     release: capi_obj_release(db, o) (runs o->drop on the shard, or waits for jdb_close to
 *              have done it) -> free the handle
 */
#ifndef JDB_CAPI_INT_H
#define JDB_CAPI_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "jdb.h"
#include "rt.h"
#include "tab.h"

/* A tablet-side object owned by a client handle. Embed it in the handle. */
struct capi_obj {
  struct capi_obj *next, *prev;  /* the instance's list, newest first (guarded by objs_mu) */
  rt_fn drop;                    /* runs on the shard with arg = this capi_obj: releases the
                                    tablet-side object (its result is ignored) */
  uint32_t shard;
  atomic_int orphaned;           /* 1 once jdb_close ran drop: only the handle's memory is left */
};

struct jdb_db {
  struct rt *rt;
  uint32_t shards;
  int read_only;
  jdb_options_t opts;            /* as given (struct_size normalised), for stats and tools */
  /* The gate (capi_gate_enter): jdb_close sets closing, then waits until busy is 0. */
  atomic_int closing;
  atomic_ulong busy;
  pthread_mutex_t objs_mu;
  struct capi_obj objs;          /* list head of live capi objects */
  uint64_t nobjs;
};

struct jdb_table {
  struct jdb_db *db;
  uint32_t shard;
  uint64_t id;                   /* the table's id in its shard's catalog */
  size_t name_len;
  unsigned char name[];          /* name_len bytes */
};

struct jdb_snap {
  struct capi_obj obj;           /* drop releases snap on the shard */
  struct jdb_db *db;                /* dereferenced only while obj is not orphaned */
  uint32_t shard;
  uint64_t id;                   /* the table it was taken for */
  struct tab_snap *snap;         /* lives on the shard; released there */
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

/* Bytes one operation adds to a batch's log record beyond its key and value (kind, space byte,
   length varints, a value checksum); a batch's keys, values and this per op stay within
   JDB_BATCH_BYTES_MAX, so its record fits the log's record limit. */
#define CAPI_OP_OVERHEAD 16u

/* A tablet write error for a handle whose arguments were checked: the tablet says EINVAL for a
   table id that was dropped, which the API reports as JDB_NOTFOUND. */
int capi_write_rc(int rc);

/* Make room for `need` elements of `size` bytes in *v (capacity *cap, doubled from 16).
   JDB_OK or JDB_ENOMEM (*v unchanged). Defined in jdb_pipe.c. */
int capi_grow(void **v, size_t *cap, size_t need, size_t size);

/* The gate. Enter before a call that creates or uses a capi object: JDB_OK (leave it with
   capi_gate_leave once the call is over), or JDB_ECLOSED when jdb_close has begun. */
int capi_gate_enter(struct jdb_db *db);
void capi_gate_leave(struct jdb_db *db);
/* Link o (its tablet-side object just made on `shard`) into db. Inside the gate. */
void capi_obj_link(struct jdb_db *db, struct capi_obj *o, uint32_t shard, rt_fn drop);
/* The whole creation: enter the gate, rt_call(make, arg) on shard, on success link o with
   drop, leave. Returns make's result or JDB_ECLOSED; o is linked only on JDB_OK. */
int capi_obj_create(struct jdb_db *db, struct capi_obj *o, uint32_t shard, rt_fn make, void *arg,
                    rt_fn drop);
/* Enter the gate for a call that uses o's tablet-side object: JDB_OK (then capi_gate_leave),
   or JDB_ECLOSED (o orphaned: db is not touched; or the instance is closing). */
int capi_obj_enter(struct jdb_db *db, struct capi_obj *o);
/* Release o's tablet-side object (o->drop on its shard) and unlink it; if jdb_close is
   releasing everything, wait until it has released o. Outside the gate. Afterwards the caller
   frees the handle. An orphaned o: nothing to do. */
void capi_obj_release(struct jdb_db *db, struct capi_obj *o);

#endif
