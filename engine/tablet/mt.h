/*
 * mt.h - the memtable: one shard's recent writes, in memory, sorted as the B+ tree is.
 *
 * Entries are (key, seq) -> value with the B+ tree's order (index/btree bt_cmp): key ascending
 * (bytewise, a shorter key before its extensions), then seq descending, so the newest version of
 * a key comes first. Keys are the engine's composite keys (table id ‖ space ‖ user key), 1 ..
 * BT_KEY_MAX bytes. A value is inline bytes (0 .. MT_INLINE_MAX), a reference into the log
 * (position + length: the value itself stays in the log) or a tombstone.
 *
 * Structure: a skiplist with a back link on the bottom level, so stepping backwards costs what
 * stepping forwards does, and a hash index of each key's newest version for point reads. Nodes (key and inline value bytes included) are carved from an arena
 * of large chunks and never freed one by one: everything goes at mt_destroy. Nothing is ever
 * removed; an entry with the same key and seq as an existing one is refused (the engine gives
 * every write a new seq).
 *
 * Threading: one shard thread. Cursors stay valid while entries are added (an insert between two
 * cursor steps is seen or not, depending on where it lands; nothing is ever skipped twice or
 * crashes), because nodes never move and never die before mt_destroy. No locking.
 */
#ifndef JDB_MT_H
#define JDB_MT_H

#include <stddef.h>
#include <stdint.h>

#define MT_INLINE_MAX 512u    /* the B+ tree's BT_INLINE_MAX */

enum mt_kind { MT_INLINE = 1, MT_VREF = 2, MT_TOMB = 3 };   /* = enum bt_kind */

struct mt_ent {
  const uint8_t *key;
  uint32_t klen;
  uint64_t seq;
  uint8_t kind;          /* enum mt_kind */
  uint32_t vlen;         /* INLINE: bytes at val; VREF: value length in the log; TOMB: 0 */
  const uint8_t *val;    /* INLINE only (points into the arena: valid until mt_destroy) */
  uint64_t vpos;         /* VREF only */
};

struct mt;

/* chunk_bytes: arena chunk size (0 = 1 MiB; 64 KiB .. 1 GiB, rounded down to 16). slots: hash
   index slots for point reads (0 = chunk_bytes / 64; rounded down to a power of two, at most
   2^26), fixed for the memtable's life: about one per expected key keeps mt_get at a node or
   two. JDB_OK, JDB_EINVAL, JDB_ENOMEM. */
int mt_create(size_t chunk_bytes, size_t slots, struct mt **out);
void mt_destroy(struct mt *m);   /* NULL is a no-op */

/* Add one entry (copies key and inline value). JDB_OK, JDB_EINVAL (klen 0 or above 1152, bad
   kind, inline vlen above MT_INLINE_MAX, VREF with vlen 0), JDB_EEXIST (same key and seq already
   present; nothing changed), JDB_ENOMEM (nothing changed). */
int mt_put(struct mt *m, const void *key, uint32_t klen, uint64_t seq, uint8_t kind,
           const void *val, uint32_t vlen, uint64_t vpos);

/* Many mt_put of one seq (a batch): each request's rc as mt_put gives it, applied last to first
   (of two requests with one key, the later is the entry and the earlier gets JDB_EEXIST). The
   requests are searched in groups of MT_PUT_GROUP whose cache misses overlap (the searches
   advance a node per round), then linked in one by one. JDB_OK (see each rc), JDB_EINVAL (m
   NULL, or r NULL with n > 0). */
#define MT_PUT_GROUP 16u
struct mt_put_req {
  const void *key;
  uint32_t klen;
  uint8_t kind;
  const void *val;
  uint32_t vlen;
  uint64_t vpos;
  int rc;
};
int mt_put_many(struct mt *m, uint64_t seq, struct mt_put_req *r, size_t n);

/* Newest entry of key with seq <= snap_seq (a tombstone is returned as an entry), found through
   the hash index, not a search. JDB_OK,
   JDB_NOTFOUND, JDB_EINVAL (NULL argument, klen 0 or above 1152; *out zeroed). out->key points
   into the memtable. */
int mt_get(const struct mt *m, const void *key, uint32_t klen, uint64_t snap_seq,
           struct mt_ent *out);

/* Point reads of a group of keys (tab_get_many): the hash of each key (the same for every
   memtable), then mt_prefetch of each key's hash slot (stage 0) and, once all of those were
   issued, of the node the slot holds (stage 1), so that the group's cache misses overlap;
   mt_get_hashed is mt_get given the hash (same results and errors). */
uint64_t mt_key_hash(const void *key, uint32_t klen);
void mt_prefetch(const struct mt *m, uint64_t hash, int stage);
int mt_get_hashed(const struct mt *m, const void *key, uint32_t klen, uint64_t hash,
                  uint64_t snap_seq, struct mt_ent *out);

/* Bytes of memory held (arena chunks, the hash index, the head), entries, and the highest seq
   added. */
size_t mt_bytes(const struct mt *m);
uint64_t mt_count(const struct mt *m);
uint64_t mt_seq_max(const struct mt *m);

/* Cursor over every entry (all versions). Positioned calls return JDB_OK or JDB_NOTFOUND (then
   unpositioned); JDB_EINVAL for a cursor of a NULL memtable or a bad seek key (as mt_get). A
   cursor needs no closing. */
struct mt_cursor {
  const struct mt *m;
  const void *node;      /* NULL when unpositioned */
};
void mt_cursor_init(struct mt_cursor *c, const struct mt *m);
int mt_cursor_first(struct mt_cursor *c);
int mt_cursor_last(struct mt_cursor *c);
/* First entry >= (key, seq) in tree order (seq UINT64_MAX: first entry whose key is >= key). */
int mt_cursor_seek(struct mt_cursor *c, const void *key, uint32_t klen, uint64_t seq);
/* Last entry <= (key, seq) (seq 0: last entry whose key is <= key). */
int mt_cursor_seek_prev(struct mt_cursor *c, const void *key, uint32_t klen, uint64_t seq);
int mt_cursor_next(struct mt_cursor *c);
int mt_cursor_prev(struct mt_cursor *c);
/* The entry under a positioned cursor (JDB_OK), JDB_NOTFOUND when unpositioned. */
int mt_cursor_ent(const struct mt_cursor *c, struct mt_ent *out);

#endif
