/*
 * bt.h - the shard's copy-on-write B+ tree over store/page.
 *
 * Entries are (key, seq) -> value, ordered by key ascending (bytewise, a shorter key before its
 * extensions), then seq descending, so the newest version of a key comes first. A value is inline
 * bytes (0 .. inline_max), a reference into the log (position + length, see store/wal's
 * wal_vref), or a tombstone. Keys are 1 .. BT_KEY_MAX bytes.
 *
 * Pages (docs/FORMAT.md "B+ tree pages"): leaves hold one prefix shared by all keys of the page
 * (the longest common prefix of its first and last key) and then the key suffixes behind a slot
 * array, found by binary search; branches hold child page numbers and shortest separators. There
 * are no sibling pointers (copy-on-write would have to copy neighbours): cursors keep the
 * root-to-leaf path, as LMDB's do.
 *
 * Copy-on-write: bt_apply never changes a page of a committed state. It copies every page on
 * the paths it changes into new pages (pg_alloc) and hands the replaced pages to pg_free, so any
 * committed root stays readable, unchanged, while a reader holds it (the caller tells pg the
 * oldest generation a reader uses: pg_reclaim). The root a bt_apply returns is "the state being
 * built"; the caller makes it durable with pg_commit (superblock field tree_root, or any other
 * root field: one pages file may hold several trees). Only committed roots and the latest root
 * returned by bt_apply may be read: a later bt_apply may reuse the pages of an uncommitted
 * intermediate root.
 *
 * Threading: as store/page, one shard thread (fibers of one scheduler). Readers (bt_get, cursors)
 * may run in any fiber at any time on committed roots; bt_apply is a writer (one at a time, see
 * pg.h). A call that misses the page cache parks its fiber, or blocks outside a fiber.
 *
 * Untrusted bytes: every tree page read from disk is checked once when loaded (bt_page_verify,
 * installed as pg's verify hook by bt_pg_opts): slot offsets, lengths, value kinds and the order of
 * keys inside the page. A page that fails, a child of the wrong level, or a damaged page found by
 * pg is JDB_ECORRUPT from the operation that touched it; nothing crashes.
 */
#ifndef JDB_BT_H
#define JDB_BT_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "pg.h"

#define BT_KEY_MAX 1152u        /* longest key (engine keys: 9-byte table/space prefix + 1024) */
#define BT_INLINE_MAX 512u      /* longest inline value the format allows */
#define BT_INLINE_DEF 256u      /* default inline threshold */
#define BT_HEIGHT_MAX 32u       /* levels, leaves included (page header: branch level <= 32) */

enum bt_kind {
  BT_INLINE = 1,   /* value bytes stored in the leaf */
  BT_VREF = 2,     /* value in the log: vpos (a wal_vref position) and vlen */
  BT_TOMB = 3,     /* tombstone: the key was deleted at this seq */
};

/* One entry as read: key and inline value point into a pinned page (or the cursor's key buffer)
   and stay valid until the cursor moves or closes. */
struct bt_ent {
  const uint8_t *key;
  uint32_t klen;
  uint64_t seq;
  uint8_t kind;        /* enum bt_kind */
  uint32_t vlen;       /* INLINE: bytes at val; VREF: length of the value in the log; TOMB: 0 */
  const uint8_t *val;  /* INLINE only */
  uint64_t vpos;       /* VREF only */
};

enum bt_op_kind {
  BT_OP_PUT = 1,     /* insert entry (key, seq), or replace the one with the same key and seq */
  BT_OP_ERASE = 2,   /* remove entry (key, seq) exactly; absent is not an error (counted) */
};

struct bt_op {
  uint8_t op;          /* enum bt_op_kind */
  uint8_t kind;        /* PUT: enum bt_kind */
  const void *key;
  uint32_t klen;       /* 1 .. BT_KEY_MAX */
  uint64_t seq;
  const void *val;     /* PUT + BT_INLINE: vlen bytes (0 .. the tree's inline_max) */
  uint32_t vlen;       /* PUT + BT_VREF: value length, >= 1 */
  uint64_t vpos;       /* PUT + BT_VREF */
};

struct bt_opts {
  uint32_t inline_max;   /* longest inline value accepted (default BT_INLINE_DEF, <= BT_INLINE_MAX) */
  /* Version pruning (the engine's "newest version only" mode): a PUT of (key, s) also removes
     the entries of key with a seq below s that lie in the leaf it lands in (versions spread over
     several leaves keep those in other leaves until a later run reaches them). */
  int prune_older;
  /* Optional: after a run succeeds, called once per BT_VREF entry that left the tree in it (its
     value's position and length, and why: pruned, replaced by a PUT of the same key and seq with
     another value, or erased), so the caller can account the log bytes; a failed run reports
     nothing. */
  void (*pruned)(void *ud, uint64_t vpos, uint32_t vlen, int why);
  void *pruned_ud;
};

enum { BT_GONE_PRUNED = 1, BT_GONE_REPLACED = 2, BT_GONE_ERASED = 3 };

struct bt_apply_stats {
  uint64_t inserted, replaced, erased, erase_missing;   /* what the ops did */
  uint64_t pages_read;       /* tree pages of the old state decoded (each at most once) */
  uint64_t pages_written;    /* pages allocated for the new state */
  uint64_t pages_freed;      /* pages handed to pg_free (old state and discarded new pages) */
  uint64_t merges;           /* underfull pages merged with or balanced against a sibling */
  uint64_t pruned;           /* older versions removed by prune_older */
};

struct bt;

/* Install the tree's page verifier into pg options (before pg_open). */
void bt_pg_opts(struct pg_opts *o);
/* The verifier itself: JDB_OK, or JDB_ECORRUPT (logged with the pgno) for a BRANCH or LEAF page
   whose body is not one this code could have written. Other page types: JDB_OK. */
int bt_page_verify(void *arg, const void *page, size_t page_size, const struct layout_page_hdr *h);

/* A writer handle on the tree rooted at root (0: empty) in pg. JDB_EINVAL for bad opts,
   JDB_ENOMEM. Reads nothing. */
int bt_open(struct pg *pg, const struct bt_opts *opts, uint64_t root, struct bt **out);
void bt_close(struct bt *t);          /* NULL is a no-op; does not touch pg */
uint64_t bt_root(const struct bt *t); /* root of the state being built (0: empty tree) */
/* Point the handle at another root (after a failed pg_commit and reopen, for example). */
void bt_set_root(struct bt *t, uint64_t root);

/* Apply a sorted run: ops ordered by (key ascending, seq descending), no two with the same key
   and seq. Each affected page is copied once per call however many ops land in it; pages are
   split, merged with or balanced against a sibling when they fall under a quarter full, and the
   tree grows or shrinks in height. On success bt_root() is the new root. Errors leave the tree
   and pg as they were (pages allocated by the call are handed back): JDB_EINVAL (unsorted run,
   bad key or value length, unknown op or kind), JDB_ECORRUPT, JDB_EIO, JDB_ENOMEM (memory, or
   every frame pinned: pg spills the run's finished pages when its budget fills), JDB_EBUSY (pg
   commit in progress).
   st may be NULL. */
int bt_apply(struct bt *t, const struct bt_op *ops, size_t n, struct bt_apply_stats *st);

/* Point lookup: the newest entry of key with seq <= snap_seq in the tree at root. JDB_OK with
   *out filled (an inline value copied to vbuf, which holds BT_INLINE_MAX bytes; out->val points
   to vbuf), JDB_NOTFOUND (no such version; a tombstone is returned as an entry, not NOTFOUND),
   JDB_EINVAL (bad key length), JDB_ECORRUPT, JDB_EIO, JDB_ENOMEM. out->key points to the
   caller's key. */
int bt_get(struct pg *pg, uint64_t root, const void *key, uint32_t klen, uint64_t snap_seq,
           struct bt_ent *out, void *vbuf);

/* Many point lookups in the tree at root, each with bt_get's arguments and results. Lookups
   whose pages are in memory go down the tree together, a level at a time, in groups of
   BT_GET_GROUP: each page's frame-table slot, then its search area, is prefetched for the whole
   group before any page is searched, so the group's cache misses overlap instead of following
   one another. The others (a page not in memory, anything unusual) then take bt_get, which may
   park. */
#define BT_GET_GROUP 16u
struct bt_get_req {
  const void *key;
  uint32_t klen;
  uint64_t snap;
  void *vbuf;                /* BT_INLINE_MAX bytes */
  struct bt_ent out;
  int rc;                    /* bt_get's result */
};
void bt_get_many(struct pg *pg, uint64_t root, struct bt_get_req *r, size_t n);

/* Cursor: holds the root-to-leaf path as page numbers and positions, and pins only the leaf
   (pages of a committed state never change, so an upper page evicted meanwhile is simply read
   again when the cursor climbs). Positioned calls return JDB_OK (entry available through
   bt_cursor_ent), JDB_NOTFOUND (no such entry: the cursor is then unpositioned and holds no
   pin), or an error (unpositioned too). Reverse steps cost the same as forward ones. */
struct bt_cursor_level {
  uint64_t pgno;
  uint32_t idx;        /* slot (leaf) or child index (branch) */
  uint16_t n;          /* entries (leaf) or children (branch) */
  uint16_t level;      /* 0 for the leaf */
};
struct bt_cursor {
  struct pg *pg;
  uint64_t root;
  uint32_t depth;      /* levels on the path; 0 when unpositioned */
  struct bt_cursor_level lv[BT_HEIGHT_MAX];   /* lv[0] the root ... lv[depth-1] the leaf */
  struct pg_frame *leaf_fr;                   /* the pinned leaf */
  const uint8_t *leaf;
  const uint8_t *pf_lo;                       /* moving backwards: the lowest leaf address
                                                 prefetched so far (NULL: none in this leaf) */
  struct bt_ent ent;
  uint8_t key[BT_KEY_MAX];
};
void bt_cursor_init(struct bt_cursor *c, struct pg *pg, uint64_t root);
void bt_cursor_close(struct bt_cursor *c);   /* unpins; the cursor may be positioned again */
int bt_cursor_first(struct bt_cursor *c);
int bt_cursor_last(struct bt_cursor *c);
/* First entry >= (key, seq) in tree order: seek(k, UINT64_MAX) is the first entry whose key is
   >= k; seek(k, s) is then the newest version of k with seq <= s if k has one. */
int bt_cursor_seek(struct bt_cursor *c, const void *key, uint32_t klen, uint64_t seq);
/* Last entry <= (key, seq): seek_prev(k, 0) is the last entry whose key is <= k. */
int bt_cursor_seek_prev(struct bt_cursor *c, const void *key, uint32_t klen, uint64_t seq);
int bt_cursor_next(struct bt_cursor *c);    /* JDB_NOTFOUND past the end */
int bt_cursor_prev(struct bt_cursor *c);    /* JDB_NOTFOUND before the start */
const struct bt_ent *bt_cursor_ent(const struct bt_cursor *c);   /* NULL when unpositioned */
/* 1 when the entry before the current one is known to hold another key, from the leaf's slot
   array alone (the entries' heads differ); 0 when that takes a look (the current entry starts
   its leaf, or the heads tie) or the cursor is unpositioned. Lets a backward merge stop at a
   key's last version without stepping onto the next key before it is asked for. */
int bt_cursor_prev_other_key(const struct bt_cursor *c);

/* Compare (k1, s1) with (k2, s2) in tree order: <0, 0, >0. */
int bt_cmp(const void *k1, uint32_t l1, uint64_t s1, const void *k2, uint32_t l2, uint64_t s2);

/* Walk the whole tree at root and check every invariant: page structure, key order within and
   across pages, separators bound their subtrees, every leaf prefix is the common prefix of its
   first and last key, all leaves at the same depth, child levels, and (flags & BT_CHECK_FILL)
   no two neighbouring pages under one parent both under a quarter full while they would fit one
   page. The walk stops at the first damage, unless flags & BT_CHECK_ALL: then a damaged page's
   subtree is counted (damaged) and skipped, and the walk goes on with its siblings, so every
   damaged subtree whose parent is sound is found (jdb_check). JDB_OK or JDB_ECORRUPT (each
   damage logged), JDB_EIO, JDB_ENOMEM. For tests, debugging and jdb_check. */
enum { BT_CHECK_FILL = 1, BT_CHECK_ALL = 2 };
struct bt_check_stats {
  uint64_t entries, leaves, branches, height;
  uint64_t leaf_bytes;     /* bytes used in leaves (headers, prefixes, slots, entries) */
  uint64_t key_bytes;      /* sum of full key lengths, for prefix-compression figures */
  uint64_t prefix_saved;   /* bytes the leaf prefixes saved over storing every key whole */
  uint64_t damaged;        /* BT_CHECK_ALL: damaged subtrees skipped */
};
int bt_check(struct pg *pg, uint64_t root, unsigned flags, struct bt_check_stats *st);

#endif
