/*
 * tab_int.h - what the tablet's files share: the tablet struct, views, sources and the
 * catalog's spaces. Not for other units.
 */
#ifndef JDB_TAB_INT_H
#define JDB_TAB_INT_H

#include "bt.h"
#include "mt.h"
#include "tab.h"
#include "wal.h"

#include <stddef.h>
#include <stdint.h>

struct coro;
struct coro_sched;
struct pg;
struct vlog;
struct wal;

/* Catalog (table 0) spaces. */
enum {
  TAB_SPACE_NAME = 0x01,   /* name -> meta (TAB_META_LEN bytes, below) */
  TAB_SPACE_IDS = 0x02,    /* id (8, big-endian) -> state (u8: 0 live, 1 dropped) ‖ name */
  TAB_SPACE_DROPQ = 0x03,  /* id (8, big-endian) -> empty: data still to be removed */
  TAB_SPACE_ACCT = 0x04,   /* log segment (4, big-endian) -> u64 values, u64 bytes (LE): the
                              out-of-line values the tree references there */
  TAB_SPACE_DEAD = 0x05,   /* id (8, big-endian) -> empty: a dropped table (writes refused) */
};
/* meta: u8 format (1), u64 id, u64 created_sec, u64 parent_id, u64 fork_seq, u64 import_mark
   (all little-endian). */
#define TAB_META_LEN 41u
#define TAB_IKEY_MAX (8u + 1u + TAB_NAME_MAX)   /* names and user keys share the limit */

/* A memtable with the log position after its last record (set when frozen). */
struct tab_mt {
  struct mt *m;
  uint32_t refs;
  uint64_t end_pos;        /* frozen: replay position of its checkpoint */
  uint64_t seq_max;        /* frozen: highest seq it holds */
};

/* The sources a reader needs (RocksDB's SuperVersion): the active memtable, the frozen one (or
   NULL) and a committed tree root with its superblock generation. Refcounted; the tablet keeps
   a list of live views so that pg_reclaim gets the oldest generation still read. */
struct tab_view {
  uint32_t refs;
  struct tab_mt *act, *frz;
  uint64_t root, gen;
  struct tab_view *next, *prev;
};

struct tab_snap {
  struct tab *t;
  struct tab_view *v;
  uint64_t seq;
};

struct tab_waiter {
  struct coro *c;
  struct tab_waiter *next;
};

/* Out-of-line values the committed tree references in one log segment (persisted in the
   catalog's ACCT space by every checkpoint that changes them), and the counts the checkpoint in
   progress will commit. */
struct tab_acct {
  uint64_t seg;                 /* first: the sorted-array key (tab.c) */
  int dirty;
  uint64_t values, bytes;       /* committed */
  uint64_t nvalues, nbytes;     /* after the checkpoint in progress */
};

/* Ids of dropped tables: pending (data still in the tree) or finished this session. Sorted. */
struct tab_drop {
  uint64_t id;                  /* first: the sorted-array key (tab.c) */
  int pending;
};

struct tab {
  struct fs_ctx *ctx;
  struct tab_opts o;
  char *dir;               /* the tablet's directory (tab_verify, tab_io_stats_get read it) */
  struct pg *pg;
  struct wal *wal;
  struct vlog *vlog;
  struct bt *bt;
  struct tab_view *cur;
  struct tab_view views;   /* list head of live views */
  uint64_t seq;            /* last seq given */
  uint64_t next_id;        /* next table id */
  int poison;              /* JDB_E* once a log or checkpoint write failed */
  int ckpt_running;
  struct coro_sched *ckpt_sched;   /* the scheduler running a background checkpoint */
  struct tab_waiter *ckpt_waiters;
  int committing;          /* a tab_commit holds the seq counter and the write-path scratch */
  struct tab_waiter *commit_waiters;
  struct tab_drop *drops;
  size_t ndrops, cdrops;
  /* write-path scratch */
  uint8_t *scratch;
  size_t scratch_cap;
  uint8_t *apply_ik;               /* tab_mt_apply: MT_PUT_GROUP composite keys (made on first use) */
  void *wops;              /* struct wal_op[], wcap */
  void *vrefs;             /* struct wal_vref[], wcap */
  void *aops;              /* struct tab_apply_op[] (tab.c), wcap */
  size_t wcap;
  /* log values a checkpoint found dead: reported to vlog only once its commit succeeded (a
     retried checkpoint would otherwise count them twice and make live bytes look dead) */
  uint64_t *dead;          /* position, length pairs */
  size_t ndead, cdead;
  int dead_oom;            /* a report was lost: no segment is released until reopen */
  struct tab_acct *acct;   /* sorted by seg */
  size_t nacct, cacct;
  struct tab_stats st;
};

/* Remember a dead log value of the checkpoint in progress. */
void tab_dead_note(struct tab *t, uint64_t vpos, uint32_t vlen);
/* The checkpoint in progress adds (sign > 0) or removes a tree reference to a log value. */
int tab_acct_delta(struct tab *t, uint64_t vpos, uint32_t vlen, int sign);

/* Composite key: table ‖ space ‖ key into buf (TAB_IKEY_MAX + 1 bytes); returns its length. */
size_t tab_ikey(uint8_t *buf, uint64_t table, uint8_t space, const void *key, uint32_t klen);

/* Views. */
struct tab_view *tab_view_ref(struct tab *t);          /* the current view, referenced */
void tab_view_unref(struct tab *t, struct tab_view *v);
int tab_view_install(struct tab *t, struct tab_mt *act, struct tab_mt *frz, uint64_t root,
                     uint64_t gen);                    /* becomes current; JDB_ENOMEM */
int tab_mt_new(const struct tab *t, struct tab_mt **out);   /* refs 1 */
void tab_mt_unref(struct tab_mt *m);

/* tab_commit flag: do not start a checkpoint afterwards (the checkpoint's own writes). */
#define TAB_NOCKPT 0x100u

/* A logged batch: table, per-op spaces (NULL = all TAB_SPACE_KV), ops; flags as tab_write. */
int tab_commit(struct tab *t, uint64_t table, const struct tab_op *ops, const uint8_t *spaces,
               uint32_t n, unsigned flags, uint64_t *seq);

/* The newest entry of ikey with seq <= snap across the view's sources. JDB_OK (a tombstone is an
   entry), JDB_NOTFOUND, or an error. vbuf holds BT_INLINE_MAX bytes for an inline value. */
int tab_lookup(struct tab *t, const struct tab_view *v, uint64_t snap, const uint8_t *ikey,
               uint32_t iklen, struct bt_ent *out, void *vbuf);

/* Internal iterator over one (table, space). */
int tab_iter_open_space(struct tab *t, const struct tab_snap *snap, uint64_t table,
                        uint8_t space, struct tab_iter **out);

/* Checkpoint (tab_ckpt.c): freeze the active memtable and apply it; waits for one running. */
int tab_ckpt(struct tab *t, int force);
/* Called after a write: start a checkpoint when the active memtable is over budget. */
int tab_ckpt_maybe(struct tab *t);
/* Log GC (tab_ckpt.c), shared with replay of MOVE records: is (table, key, seq) -> ref the
   newest version (1 / 0 / error), and point it at new_ref in the active memtable (1, or 0 when
   the memtable has that version already). key is the logged key (space ‖ key). */
int tab_gc_current(struct tab *t, uint64_t table, const uint8_t *key, uint32_t klen, uint64_t seq,
                   struct wal_vref ref);
int tab_gc_redirect(struct tab *t, uint64_t table, const uint8_t *key, uint32_t klen, uint64_t seq,
                    struct wal_vref new_ref);
/* Dropped-table ids. */
int tab_drop_find(const struct tab *t, uint64_t id);   /* index or -1 */
int tab_drop_add(struct tab *t, uint64_t id, int pending);

#endif
