/*
 * mt.c - the memtable (mt.h): a skiplist with a back link on the bottom level, in an arena, and
 * a hash index of the newest version of every key for point reads.
 *
 * Role: the write path of a shard lands here first; the B+ tree (index/btree) receives the
 * memtable's entries later, in the same order, so the order here is exactly bt_cmp's: key bytes
 * ascending (unsigned), a key before its extensions, then seq descending.
 *
 * Node: carved from a chunk at an 8-byte boundary. A node pointer points at the header; the links
 * sit below it (as in RocksDB's InlineSkipList), so the header, the key and the value are
 * contiguous whatever the height, and the bottom links are next to the header:
 *   off from node  size       field
 *   -8(h+2)        8 h        next[h-1] .. next[0] (next[i] at -24 - 8 i)
 *   -16            8          hnext: the next node of the same hash slot (newest versions only)
 *   -8             8          prev: the node before on the bottom level, NULL for the first node
 *    0             8          seq
 *    8             2          klen (1 .. MT_KEY_MAX)
 *   10             1          kind (enum mt_kind)
 *   11             1          height h (1 .. MT_HEIGHT_MAX)
 *   12             4          vlen (TOMB: 0)
 *   16             klen       key bytes
 *   16+klen        vlen | 8   INLINE: the value bytes; VREF: vpos (host order, unaligned); TOMB: -
 * The node ends at the next multiple of 8, so an 8-byte load at key + 8 i (8 i < klen) never
 * leaves the node: the key compare reads whole words and masks the tail.
 *
 * The head is a node of height MT_HEIGHT_MAX without a key, carved from the first chunk; it is
 * never compared. Searches start at level height-1 (the highest level any node has).
 *
 * Hash index: a power-of-two array of slots (hash64 of the key), each the head of a chain, linked
 * through hnext, of the newest node of each key hashing there. A point read is then a slot, a
 * node or two and, for a snapshot older than the newest version, a walk down the key's versions
 * on the bottom level; a search from the top of the skiplist is about twenty dependent cache
 * misses at a few hundred thousand entries (measured: 38 % of a 256-get pipeline's time went to
 * the search before the index). The slot count is fixed at creation (a rehash would touch every
 * node at once, a latency spike on the write path); chains grow when the guess was low.
 *
 * Invariants:
 *  - on every level, next links go in strictly ascending order, and level i's list is a
 *    sublist of level i-1's;
 *  - prev(next[0](n)) == n for every node with a successor; the first node's prev is NULL and
 *    tail is the last node (NULL when empty);
 *  - every distinct key has exactly one node in the hash chains, its highest-seq one, in the
 *    chain of slot hash64(key) & mask; older versions follow it on the bottom level;
 *  - nodes never move and are never freed before mt_destroy, so a cursor's node stays valid;
 *  - a failed mt_put changes nothing (not even the height generator's state).
 *
 * Arena: chunks of chunk_bytes from mem_malloc, linked through their first word, freed at
 * mt_destroy. A node never spans two chunks; the largest node (about 1.9 KiB: 20 levels, a
 * 1152-byte key, a 512-byte value) is far smaller than the smallest chunk (64 KiB), so the tail
 * a chunk leaves unused is under 3 % of it.
 */
#include "mt.h"

#include "bt.h"
#include "err.h"
#include "hash.h"
#include "mem.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MT_KEY_MAX 1152u
#define MT_HEIGHT_MAX 20u
#define MT_CHUNK_DEF ((size_t)1 << 20)
#define MT_CHUNK_MIN ((size_t)64 << 10)
#define MT_CHUNK_MAX ((size_t)1 << 30)
#define MT_SLOTS_MAX ((size_t)1 << 26)

_Static_assert(MT_KEY_MAX == BT_KEY_MAX, "memtable keys are B+ tree keys");
_Static_assert(MT_INLINE_MAX == BT_INLINE_MAX, "memtable inline values fit the B+ tree's");
_Static_assert((int)MT_INLINE == (int)BT_INLINE && (int)MT_VREF == (int)BT_VREF &&
                   (int)MT_TOMB == (int)BT_TOMB,
               "enum mt_kind is enum bt_kind");
_Static_assert(MT_KEY_MAX % 8 == 0, "the probe buffer holds whole words");

struct mt_node {
  uint64_t seq;
  uint16_t klen;
  uint8_t kind;
  uint8_t height;
  uint32_t vlen;
  uint8_t key[];
};
_Static_assert(sizeof(struct mt_node) == 16, "node header is 16 bytes");
_Static_assert(MT_KEY_MAX <= UINT16_MAX, "klen fits the header");

struct mt_chunk {
  struct mt_chunk *next;
  size_t bytes;
};   /* followed by the nodes */

struct mt {
  struct mt_node *head;
  struct mt_node *tail;     /* last node, NULL when empty */
  uint8_t *cur, *end;       /* free space of the newest chunk */
  struct mt_chunk *chunks;  /* newest first */
  struct mt_node **slots;   /* hash index: mask + 1 chain heads */
  uint64_t (*kbufs)[MT_KEY_MAX / 8];   /* mt_put_many's key copies, MT_PUT_GROUP of them */
  uint64_t mask;
  size_t chunk_bytes;
  size_t bytes;             /* sum of chunk sizes */
  uint64_t count;
  uint64_t seq_max;
  uint64_t rng;             /* xorshift64 state for node heights */
  uint32_t height;          /* levels in use, 1 .. MT_HEIGHT_MAX */
};

/* A key being looked for: key points at a word-aligned copy whose last word is zero-padded. */
struct mt_probe {
  const uint8_t *key;
  uint32_t klen;
  uint64_t seq;
};

/* ------------------------------------------------------------------------------------------- */
/* Nodes */

static inline struct mt_node **mt_links(const struct mt_node *n)
{
  return (struct mt_node **)(uintptr_t)n;
}
static inline struct mt_node *mt_next(const struct mt_node *n, uint32_t lv)
{
  return mt_links(n)[-3 - (ptrdiff_t)lv];
}
static inline void mt_next_set(struct mt_node *n, uint32_t lv, struct mt_node *to)
{
  mt_links(n)[-3 - (ptrdiff_t)lv] = to;
}
static inline struct mt_node **mt_hnext(const struct mt_node *n)
{
  return &mt_links(n)[-2];
}
static inline struct mt_node *mt_prev(const struct mt_node *n)
{
  return mt_links(n)[-1];
}
static inline void mt_prev_set(struct mt_node *n, struct mt_node *to)
{
  mt_links(n)[-1] = to;
}

static inline size_t mt_node_bytes(uint32_t h, uint32_t klen, uint32_t vbytes)
{
  return 8u * (h + 2) + sizeof(struct mt_node) + (((size_t)klen + vbytes + 7) & ~(size_t)7);
}

/* Eight key bytes as a big-endian word: comparing words compares the bytes in order. */
static inline uint64_t mt_word(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

/* Key order of bt_cmp. Both keys may be read up to the next multiple of 8 past their length
   (node keys and probe copies are laid out so); bytes past the shorter length are masked off. */
static inline int mt_key_cmp(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
  uint32_t n = la < lb ? la : lb;
  for (uint32_t i = 0; i < n; i += 8) {
    uint64_t x = mt_word(a + i), y = mt_word(b + i);
    if (x != y) {
      uint32_t rest = n - i;
      if (rest < 8) {
        uint64_t mask = ~(uint64_t)0 << (64 - 8 * rest);
        x &= mask;
        y &= mask;
        if (x == y)
          break;
      }
      return x < y ? -1 : 1;
    }
  }
  return la < lb ? -1 : la > lb ? 1 : 0;
}

/* Node against probe in tree order: <0 when the node comes first. */
static inline int mt_cmp(const struct mt_node *n, const struct mt_probe *p)
{
  int c = mt_key_cmp(n->key, n->klen, p->key, p->klen);
  if (c)
    return c;
  return n->seq > p->seq ? -1 : n->seq < p->seq ? 1 : 0;
}

/* Start loading what comparing n on level lv reads: the header and key at n, and n's link for
   lv, which sits below the header and is often on the line before. */
static inline void mt_prefetch_link(const struct mt_node *n, uint32_t lv)
{
  if (n) {
    __builtin_prefetch(n);
    __builtin_prefetch(&mt_links(n)[-3 - (ptrdiff_t)lv]);
  }
}

/* The last node before p (le: at or before p) on each level, from the top down into preds
   (NULL: not wanted); returns the bottom one, the head when none. A node found not to be before
   p is remembered (bound), so dropping a level does not compare it again.
   A search is a chain of cache misses (at 2 M entries the lower four levels are out of every
   cache), so while the next node on a level is compared, both nodes that may come after it are
   loaded too: the one after it on the same level (taken when it is before p) and the one below
   the current node (taken when it is not). Then only the advances wait on memory, not the
   overshoots. */
static struct mt_node *mt_find(const struct mt *m, const struct mt_probe *p, int le,
                               struct mt_node **preds)
{
  struct mt_node *x = m->head, *bound = NULL;
  for (uint32_t lv = m->height; lv-- > 0;) {
    for (;;) {
      struct mt_node *nx = mt_next(x, lv);
      if (nx == bound)   /* the end of the level, or a node already compared */
        break;
      if (lv)
        mt_prefetch_link(mt_next(x, lv - 1), lv - 1);
      mt_prefetch_link(mt_next(nx, lv), lv);
      int c = mt_cmp(nx, p);
      if (c > 0 || (c == 0 && !le)) {
        bound = nx;
        break;
      }
      x = nx;
    }
    if (preds)
      preds[lv] = x;
  }
  return x;
}

static int mt_probe_init(struct mt_probe *p, uint64_t *buf, const void *key, uint32_t klen,
                         uint64_t seq)
{
  if (!key || klen == 0 || klen > MT_KEY_MAX)
    return JDB_EINVAL;
  buf[(klen - 1) / 8] = 0;
  memcpy(buf, key, klen);
  p->key = (const uint8_t *)buf;
  p->klen = klen;
  p->seq = seq;
  return JDB_OK;
}

static void mt_ent_fill(const struct mt_node *n, struct mt_ent *e)
{
  e->key = n->key;
  e->klen = n->klen;
  e->seq = n->seq;
  e->kind = n->kind;
  e->vlen = n->vlen;
  e->val = n->kind == MT_INLINE ? n->key + n->klen : NULL;
  e->vpos = 0;
  if (n->kind == MT_VREF)
    memcpy(&e->vpos, n->key + n->klen, 8);
}

/* ------------------------------------------------------------------------------------------- */
/* Arena */

static int mt_chunk_add(struct mt *m)
{
  struct mt_chunk *ch = mem_malloc(m->chunk_bytes);
  if (!ch)
    return JDB_ENOMEM;
  ch->next = m->chunks;
  ch->bytes = m->chunk_bytes;
  m->chunks = ch;
  m->bytes += m->chunk_bytes;
  m->cur = (uint8_t *)(ch + 1);
  m->end = (uint8_t *)ch + m->chunk_bytes;
  return JDB_OK;
}

static void *mt_alloc(struct mt *m, size_t need)
{
  JDB_ASSERT(need % 8 == 0);
  JDB_ASSERT(need <= m->chunk_bytes - sizeof(struct mt_chunk));
  if ((size_t)(m->end - m->cur) < need && mt_chunk_add(m) != JDB_OK)
    return NULL;
  void *p = m->cur;
  m->cur += need;
  return p;
}

/* xorshift64, then a height with P(h > k) = 4^-k: each pair of zero low bits of the mixed
   output is one more level; the high bits of the multiply are the well-mixed ones. */
static inline uint64_t mt_rng_step(uint64_t x)
{
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}
static inline uint32_t mt_height(uint64_t state)
{
  uint64_t r = (state * 0x2545f4914f6cdd1dull) >> 24;
  r |= (uint64_t)1 << (2 * (MT_HEIGHT_MAX - 1));
  return 1 + (uint32_t)__builtin_ctzll(r) / 2;
}

/* ------------------------------------------------------------------------------------------- */
/* Create, destroy, add */

int mt_create(size_t chunk_bytes, size_t slots, struct mt **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (chunk_bytes == 0)
    chunk_bytes = MT_CHUNK_DEF;
  if (chunk_bytes < MT_CHUNK_MIN || chunk_bytes > MT_CHUNK_MAX)
    return JDB_EINVAL;
  chunk_bytes &= ~(size_t)15;   /* keeps every chunk's end 16-byte aligned */
  if (slots == 0)
    slots = chunk_bytes / 64;
  if (slots > MT_SLOTS_MAX)
    slots = MT_SLOTS_MAX;
  while (slots & (slots - 1))   /* down to a power of two */
    slots &= slots - 1;
  struct mt *m = mem_malloc(sizeof *m);
  if (!m)
    return JDB_ENOMEM;
  memset(m, 0, sizeof *m);
  m->chunk_bytes = chunk_bytes;
  m->rng = 0x9e3779b97f4a7c15ull;
  m->height = 1;
  m->mask = slots - 1;
  if (!(m->slots = mem_calloc(slots, sizeof *m->slots)) ||
      !(m->kbufs = mem_malloc(MT_PUT_GROUP * sizeof *m->kbufs)) || mt_chunk_add(m) != JDB_OK) {
    mem_free(m->kbufs);
    mem_free(m->slots);
    mem_free(m);
    return JDB_ENOMEM;
  }
  uint8_t *h = mt_alloc(m, mt_node_bytes(MT_HEIGHT_MAX, 0, 0));
  JDB_ASSERT(h != NULL);
  memset(h, 0, mt_node_bytes(MT_HEIGHT_MAX, 0, 0));
  m->head = (struct mt_node *)(h + 8u * (MT_HEIGHT_MAX + 2));
  m->head->height = MT_HEIGHT_MAX;
  *out = m;
  return JDB_OK;
}

void mt_destroy(struct mt *m)
{
  if (!m)
    return;
  struct mt_chunk *ch = m->chunks;
  while (ch) {
    struct mt_chunk *nx = ch->next;
    mem_free(ch);
    ch = nx;
  }
  mem_free(m->kbufs);
  mem_free(m->slots);
  mem_free(m);
}

/* The link in p's hash chain that holds p's key's node, or the chain's terminating NULL link. */
static struct mt_node **mt_slot_find(const struct mt *m, const struct mt_probe *p, uint64_t hash)
{
  struct mt_node **l = &m->slots[hash & m->mask];
  while (*l && ((*l)->klen != p->klen || mt_key_cmp((*l)->key, (*l)->klen, p->key, p->klen)))
    l = mt_hnext(*l);
  return l;
}

/* The bytes a value of this kind takes in a node, or -1 for bad arguments (mt_put's EINVAL). */
static int64_t mt_vbytes(uint8_t kind, const void *val, uint32_t vlen)
{
  switch (kind) {
  case MT_INLINE:
    return vlen > MT_INLINE_MAX || (vlen && !val) ? -1 : (int64_t)vlen;
  case MT_VREF:
    return vlen == 0 ? -1 : 8;
  case MT_TOMB:
    return 0;
  default:
    return -1;
  }
}

/* Add the entry (probe p, hash, value) after preds[lv] on each level lv below its height (preds
   holds the predecessors on every level, the head above the search's height); returns the node,
   NULL when out of memory (nothing changed). The caller checked that no entry has p's key and
   seq. */
static struct mt_node *mt_link_in(struct mt *m, const struct mt_probe *p, uint64_t hash,
                                  uint8_t kind, const void *val, uint32_t vlen, uint32_t vbytes,
                                  uint64_t vpos, struct mt_node *const *preds)
{
  struct mt_node **slot = mt_slot_find(m, p, hash);
  uint64_t rng = mt_rng_step(m->rng);
  uint32_t h = mt_height(rng);
  uint8_t *mem = mt_alloc(m, mt_node_bytes(h, p->klen, vbytes));
  if (!mem)
    return NULL;
  m->rng = rng;

  struct mt_node *n = (struct mt_node *)(mem + 8u * (h + 2));
  n->seq = p->seq;
  n->klen = (uint16_t)p->klen;
  n->kind = kind;
  n->height = (uint8_t)h;
  n->vlen = kind == MT_TOMB ? 0 : vlen;
  memcpy(n->key, p->key, p->klen);
  if (kind == MT_INLINE && vlen)
    memcpy(n->key + p->klen, val, vlen);
  else if (kind == MT_VREF)
    memcpy(n->key + p->klen, &vpos, 8);

  if (h > m->height)
    m->height = h;
  for (uint32_t lv = 0; lv < h; lv++) {
    mt_next_set(n, lv, mt_next(preds[lv], lv));
    mt_next_set(preds[lv], lv, n);
  }
  /* the index holds the newest version: the new node replaces its key's node when newer */
  if (!*slot) {
    *mt_hnext(n) = NULL;
    *slot = n;
  } else if ((*slot)->seq < p->seq) {
    *mt_hnext(n) = *mt_hnext(*slot);
    *slot = n;
  } else {
    *mt_hnext(n) = NULL;
  }
  struct mt_node *after = mt_next(n, 0);
  mt_prev_set(n, preds[0] == m->head ? NULL : preds[0]);
  if (after)
    mt_prev_set(after, n);
  else
    m->tail = n;
  m->count++;
  if (p->seq > m->seq_max)
    m->seq_max = p->seq;
  return n;
}

int mt_put(struct mt *m, const void *key, uint32_t klen, uint64_t seq, uint8_t kind,
           const void *val, uint32_t vlen, uint64_t vpos)
{
  if (!m)
    return JDB_EINVAL;
  int64_t vbytes = mt_vbytes(kind, val, vlen);
  if (vbytes < 0)
    return JDB_EINVAL;
  uint64_t kbuf[MT_KEY_MAX / 8];
  struct mt_probe p;
  int rc = mt_probe_init(&p, kbuf, key, klen, seq);
  if (rc)
    return rc;
  struct mt_node *preds[MT_HEIGHT_MAX];
  struct mt_node *x = mt_find(m, &p, 0, preds);
  struct mt_node *after = mt_next(x, 0);
  if (after && mt_cmp(after, &p) == 0)
    return JDB_EEXIST;
  for (uint32_t lv = m->height; lv < MT_HEIGHT_MAX; lv++)
    preds[lv] = m->head;
  return mt_link_in(m, &p, hash64(p.key, klen), kind, val, vlen, (uint32_t)vbytes, vpos, preds)
             ? JDB_OK
             : JDB_ENOMEM;
}

/* One search of mt_put_many's group, advanced a step per round. cand: the node to compare next
   on level lv (NULL or bound: the level's end for this key), already prefetched. */
struct mt_walk {
  struct mt_probe p;
  struct mt_node *x, *cand, *bound;
  uint32_t lv;
  int done;
  uint64_t hash;
  struct mt_node *preds[MT_HEIGHT_MAX];
};

/* mt_find(le = 0) for every walk, in rounds: each round compares one prefetched node per walk and
   prefetches the next one, so the walks' cache misses overlap (a lone search is a chain of ~20
   dependent misses). */
static void mt_find_many(const struct mt *m, struct mt_walk *w, size_t n)
{
  size_t live = n;
  for (size_t i = 0; i < n; i++) {
    w[i].x = m->head;
    w[i].bound = NULL;
    w[i].lv = m->height - 1;
    w[i].cand = mt_next(m->head, w[i].lv);
    w[i].done = 0;
    mt_prefetch_link(w[i].cand, w[i].lv);
    __builtin_prefetch(&m->slots[w[i].hash & m->mask]);
    for (uint32_t lv = m->height; lv < MT_HEIGHT_MAX; lv++)
      w[i].preds[lv] = m->head;
  }
  while (live) {
    for (size_t i = 0; i < n; i++) {
      struct mt_walk *k = &w[i];
      if (k->done)
        continue;
      if (k->cand != k->bound) {
        int c = mt_cmp(k->cand, &k->p);
        if (c < 0) {   /* before the key: go on along this level */
          k->x = k->cand;
          k->cand = mt_next(k->x, k->lv);
          mt_prefetch_link(k->cand, k->lv);
          continue;
        }
        k->bound = k->cand;
      }
      k->preds[k->lv] = k->x;   /* the level ends here for this key: down one */
      if (k->lv == 0) {
        k->done = 1;
        live--;
        continue;
      }
      k->lv--;
      k->cand = mt_next(k->x, k->lv);
      mt_prefetch_link(k->cand, k->lv);
    }
  }
}

int mt_put_many(struct mt *m, uint64_t seq, struct mt_put_req *r, size_t n)
{
  if (!m || (n && !r))
    return JDB_EINVAL;
  struct mt_walk w[MT_PUT_GROUP];
  uint64_t (*kbuf)[MT_KEY_MAX / 8] = m->kbufs;   /* the probes' aligned key copies */
  size_t idx[MT_PUT_GROUP];
  for (size_t g = n; g > 0;) {
    /* a group of the last requests not done yet, taken last to first; bad ones answer at once */
    size_t k = 0;
    for (; g > 0 && k < MT_PUT_GROUP; g--) {
      struct mt_put_req *q = &r[g - 1];
      if (mt_vbytes(q->kind, q->val, q->vlen) < 0 ||
          mt_probe_init(&w[k].p, kbuf[k], q->key, q->klen, seq) != JDB_OK) {
        q->rc = JDB_EINVAL;
        continue;
      }
      w[k].hash = hash64(w[k].p.key, q->klen);
      idx[k++] = g - 1;
    }
    mt_find_many(m, w, k);
    for (size_t i = 0; i < k; i++) {
      struct mt_put_req *q = &r[idx[i]];
      struct mt_walk *a = &w[i];
      struct mt_node *after = mt_next(a->preds[0], 0);
      if (after && mt_cmp(after, &a->p) == 0) {
        q->rc = JDB_EEXIST;
        continue;
      }
      struct mt_node *nd = mt_link_in(m, &a->p, a->hash, q->kind, q->val, q->vlen,
                                      (uint32_t)mt_vbytes(q->kind, q->val, q->vlen), q->vpos,
                                      a->preds);
      if (!nd) {
        q->rc = JDB_ENOMEM;
        continue;
      }
      q->rc = JDB_OK;
      /* the searches still to insert ran before this node existed: where it now sits between
         one of their predecessors and their key, it is their predecessor */
      for (size_t j = i + 1; j < k; j++) {
        struct mt_walk *b = &w[j];
        int before = -1;   /* nd before b's key: unknown yet */
        for (uint32_t lv = 0; lv < nd->height; lv++) {
          if (b->preds[lv] != a->preds[lv])
            continue;
          if (before < 0)
            before = mt_cmp(nd, &b->p) < 0;
          if (before)
            b->preds[lv] = nd;
        }
      }
    }
  }
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Reads */

uint64_t mt_key_hash(const void *key, uint32_t klen)
{
  return hash64(key, klen);
}

void mt_prefetch(const struct mt *m, uint64_t hash, int stage)
{
  struct mt_node *const *slot = &m->slots[hash & m->mask];
  if (stage == 0) {
    __builtin_prefetch(slot);
  } else if (*slot) {
    __builtin_prefetch(mt_hnext(*slot));   /* hnext, prev and the header share a line or two */
    __builtin_prefetch(*slot);
  }
}

int mt_get_hashed(const struct mt *m, const void *key, uint32_t klen, uint64_t hash,
                  uint64_t snap_seq, struct mt_ent *out)
{
  if (!m || !out)
    return JDB_EINVAL;
  memset(out, 0, sizeof *out);
  uint64_t kbuf[MT_KEY_MAX / 8];
  struct mt_probe p;
  int rc = mt_probe_init(&p, kbuf, key, klen, snap_seq);
  if (rc)
    return rc;
  struct mt_node *n = *mt_slot_find(m, &p, hash);
  /* older versions follow the newest on the bottom level, seq descending */
  while (n && n->seq > snap_seq) {
    n = mt_next(n, 0);
    if (n && mt_key_cmp(n->key, n->klen, p.key, p.klen) != 0)
      n = NULL;
  }
  if (!n)
    return JDB_NOTFOUND;
  mt_ent_fill(n, out);
  return JDB_OK;
}

int mt_get(const struct mt *m, const void *key, uint32_t klen, uint64_t snap_seq,
           struct mt_ent *out)
{
  if (key && klen >= 1 && klen <= MT_KEY_MAX)
    return mt_get_hashed(m, key, klen, hash64(key, klen), snap_seq, out);
  return mt_get_hashed(m, key, klen, 0, snap_seq, out);   /* the argument errors */
}

size_t mt_bytes(const struct mt *m)
{
  return m ? m->bytes + sizeof *m + (m->mask + 1) * sizeof *m->slots +
                 MT_PUT_GROUP * sizeof *m->kbufs
           : 0;
}

uint64_t mt_count(const struct mt *m)
{
  return m ? m->count : 0;
}

uint64_t mt_seq_max(const struct mt *m)
{
  return m ? m->seq_max : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Cursors */

void mt_cursor_init(struct mt_cursor *c, const struct mt *m)
{
  c->m = m;
  c->node = NULL;
}

/* Position on n (NULL: unposition and report NOTFOUND). */
static int mt_cursor_at(struct mt_cursor *c, const struct mt_node *n)
{
  c->node = n;
  return n ? JDB_OK : JDB_NOTFOUND;
}

int mt_cursor_first(struct mt_cursor *c)
{
  c->node = NULL;
  return c->m ? mt_cursor_at(c, mt_next(c->m->head, 0)) : JDB_EINVAL;
}

int mt_cursor_last(struct mt_cursor *c)
{
  c->node = NULL;
  return c->m ? mt_cursor_at(c, c->m->tail) : JDB_EINVAL;
}

/* Search for (key, seq) and position on the first entry at or after it (le 0) or on the last
   entry at or before it (le 1). */
static int mt_cursor_find(struct mt_cursor *c, const void *key, uint32_t klen, uint64_t seq,
                          int le)
{
  uint64_t kbuf[MT_KEY_MAX / 8];
  struct mt_probe p;
  c->node = NULL;
  if (!c->m || mt_probe_init(&p, kbuf, key, klen, seq) != JDB_OK)
    return JDB_EINVAL;
  struct mt_node *x = mt_find(c->m, &p, le, NULL);
  if (!le)
    return mt_cursor_at(c, mt_next(x, 0));
  return mt_cursor_at(c, x == c->m->head ? NULL : x);
}

int mt_cursor_seek(struct mt_cursor *c, const void *key, uint32_t klen, uint64_t seq)
{
  return mt_cursor_find(c, key, klen, seq, 0);
}

int mt_cursor_seek_prev(struct mt_cursor *c, const void *key, uint32_t klen, uint64_t seq)
{
  return mt_cursor_find(c, key, klen, seq, 1);
}

int mt_cursor_next(struct mt_cursor *c)
{
  if (!c->node)
    return JDB_NOTFOUND;
  return mt_cursor_at(c, mt_next(c->node, 0));
}

int mt_cursor_prev(struct mt_cursor *c)
{
  if (!c->node)
    return JDB_NOTFOUND;
  return mt_cursor_at(c, mt_prev(c->node));
}

int mt_cursor_ent(const struct mt_cursor *c, struct mt_ent *out)
{
  if (!c->node) {
    memset(out, 0, sizeof *out);
    return JDB_NOTFOUND;
  }
  mt_ent_fill(c->node, out);
  return JDB_OK;
}
