/*
 * layout.h - on-disk formats shared by the store: the checksum, the page header, the log record
 * frame and the superblock. docs/FORMAT.md keeps a copy of every table below.
 *
 * Everything read from disk is untrusted: every decoder here checks every field (lengths,
 * offsets, types, identity, checksum) before returning it, never reads outside the buffer it is
 * given, and reports any inconsistency as JDB_ECORRUPT (JDB_EVERSION for a well-formed superblock
 * of another format version). Encoders assert their inputs (they come from our own code).
 */
#ifndef JDB_LAYOUT_H
#define JDB_LAYOUT_H

#include "codec.h"
#include "jdb.h"

#include <stddef.h>
#include <stdint.h>

#define LAYOUT_FORMAT_VERSION 2u
#define LAYOUT_PAGE_SIZE 4096u        /* the only page size this version writes */
#define LAYOUT_PAGE_SIZE_MIN 4096u    /* decoders accept 4 KiB .. 64 KiB, powers of two */
#define LAYOUT_PAGE_SIZE_MAX 65536u
#define LAYOUT_SECTOR 512u            /* torn writes happen at this granularity */

/* ---------------------------------------------------------------------------------------------
 * Checksum. One function, used for every page and record. See docs/DESIGN.md for the
 * measurement that chose it; layout_crc32c / layout_xxh3_32 stay available for the bench.
 * ------------------------------------------------------------------------------------------- */
uint32_t layout_cksum(const void *p, size_t n);
uint32_t layout_crc32c(const void *p, size_t n);   /* SSE4.2 when the CPU has it, else table */
uint32_t layout_crc32c_sw(const void *p, size_t n);/* portable table version (tests compare) */
uint32_t layout_xxh3_32(const void *p, size_t n);  /* low 32 bits of XXH3-64 */

/* ---------------------------------------------------------------------------------------------
 * Page header: the first 32 bytes of every page.
 *   off size field
 *     0    4 checksum: layout_cksum(page[4 .. page_size-1])
 *     4    2 magic 0x504A ("JP" little-endian)
 *     6    1 type (LAYOUT_PAGE_*)
 *     7    1 level: 0 for leaves and non-tree pages, 1..LAYOUT_LEVEL_MAX for branches
 *     8    2 count: entries in the page (meaning belongs to the page type)
 *    10    2 flags (meaning belongs to the page type)
 *    12    4 aux: a u32 the page type may use (e.g. free-space offset); 0 otherwise
 *    16    8 pgno: the page's own page number (misdirected writes fail this)
 *    24    8 generation: tree generation that wrote the page (stale pages fail checks above)
 *    32    . body
 * ------------------------------------------------------------------------------------------- */
#define LAYOUT_PAGE_HDR_SIZE 32u
#define LAYOUT_PAGE_MAGIC 0x504Au
#define LAYOUT_LEVEL_MAX 32u
enum layout_page_type {
  LAYOUT_PAGE_SUPER = 1,     /* superblock (pages 0 and 1) */
  LAYOUT_PAGE_BRANCH = 2,    /* B+ tree internal page; level >= 1 */
  LAYOUT_PAGE_LEAF = 3,      /* B+ tree leaf; level == 0 */
  LAYOUT_PAGE_FREELIST = 4,  /* free-page list */
  LAYOUT_PAGE_OVERFLOW = 5,  /* continuation of a large entry */
  LAYOUT_PAGE_TYPE_MAX = 5
};

struct layout_page_hdr {
  uint8_t type;
  uint8_t level;
  uint16_t count;
  uint16_t flags;
  uint32_t aux;
  uint64_t pgno;
  uint64_t generation;
};

/* Write h into page[0..31] and seal the page: compute the checksum over the whole page (body
   included), so call it after the body is final. page_size must be a valid page size. */
void layout_page_seal(void *page, size_t page_size, const struct layout_page_hdr *h);

/* Verify a page read from disk and decode its header into *out: size valid, checksum, magic,
   type known, level consistent with the type (leaf 0, branch 1..LAYOUT_LEVEL_MAX, others 0),
   count <= page_size, pgno == want_pgno. Any failure: JDB_ECORRUPT (logged with the pgno),
   *out zeroed. */
int layout_page_open(const void *page, size_t page_size, uint64_t want_pgno,
                     struct layout_page_hdr *out);

/* ---------------------------------------------------------------------------------------------
 * Log position: where a record starts. Segment number in the high 24 bits, byte offset within
 * the segment in the low 40 bits, so positions order the same way records were written.
 * ------------------------------------------------------------------------------------------- */
#define LOG_POS_OFF_BITS 40
#define LOG_POS(seg, off) (((uint64_t)(seg) << LOG_POS_OFF_BITS) | (uint64_t)(off))
#define LOG_POS_SEG(pos) ((uint32_t)((pos) >> LOG_POS_OFF_BITS))
#define LOG_POS_OFF(pos) ((pos) & ((1ull << LOG_POS_OFF_BITS) - 1))
#define LOG_SEG_MAX ((1u << 24) - 1)

/* ---------------------------------------------------------------------------------------------
 * Log record frame: every record in a log segment, 8-byte aligned.
 *   off size field
 *     0    4 checksum: layout_cksum(rec[4 .. len-1])
 *     4    4 len: bytes of header + payload (padding to 8 not included); 32 .. LOG_REC_LEN_MAX
 *     8    1 type (LOG_REC_*)
 *     9    1 flags (meaning belongs to the type)
 *    10    2 reserved, zero
 *    12    4 reserved, zero
 *    16    8 pos: the record's own log position (segment + offset; misplaced records fail)
 *    24    8 durable_pos: every record before this position was durable (fdatasync completed)
 *            when this record was written; <= pos
 *    32    . payload (len - 32 bytes), then zero padding to the next multiple of 8
 * ------------------------------------------------------------------------------------------- */
#define LOG_REC_HDR_SIZE 32u
#define LOG_REC_ALIGN 8u
#define LOG_REC_LEN_MAX (256u << 20)  /* 64 MiB values plus keys and batch framing fit easily */
enum log_rec_type {
  LOG_REC_BATCH = 1,  /* a write batch: table id, seq, commit time, ops */
  LOG_REC_PAD = 2,    /* filler up to a block or segment end; payload ignored */
  LOG_REC_SEG = 3,    /* first record of a segment: segment metadata */
  LOG_REC_MOVE = 4,   /* values relocated by log GC (store/vlog) */
  LOG_REC_TYPE_MAX = 4
};

struct layout_rec_hdr {
  uint32_t len;
  uint8_t type;
  uint8_t flags;
  uint64_t pos;
  uint64_t durable_pos;
};

static inline uint32_t layout_rec_padded(uint32_t len)
{
  return (len + LOG_REC_ALIGN - 1) & ~(LOG_REC_ALIGN - 1);
}

/* Write h into rec[0..31] and checksum rec[4 .. h->len-1]; the payload must already be in
   rec[32 .. h->len-1]. Padding bytes (up to layout_rec_padded(len)) are zeroed. */
void layout_rec_seal(void *rec, const struct layout_rec_hdr *h);

/* Decode and check the header only (no checksum), from avail >= 0 bytes at buf: needs 32 bytes,
   len in range, type known, reserved zero, pos == want_pos, durable_pos <= pos. Returns JDB_OK
   with *out filled (out->len may exceed avail: the caller reads more), or JDB_ECORRUPT. */
int layout_rec_peek(const void *buf, size_t avail, uint64_t want_pos, struct layout_rec_hdr *out);

/* Full check of one record: layout_rec_peek, then len <= avail, then the checksum. On JDB_OK the
   payload is buf[32 .. out->len-1]. Any failure: JDB_ECORRUPT, *out zeroed. */
int layout_rec_open(const void *buf, size_t avail, uint64_t want_pos, struct layout_rec_hdr *out);

/* ---------------------------------------------------------------------------------------------
 * Superblock: pages 0 and 1 of a shard's pages file, written alternately (LMDB's meta pages).
 * A page with the page header above (type SUPER, level 0, count 0, pgno 0 or 1, generation =
 * superblock generation), then:
 *   off size field
 *    32    4 magic 0x5342444A ("JDBS" little-endian)
 *    36    4 format version (LAYOUT_FORMAT_VERSION)
 *    40    4 page size
 *    44    4 flags (0)
 *    48    8 tree root pgno (0 = empty tree)
 *    56    8 catalog root pgno (0 = none)
 *    64    8 directory root pgno (0 = none)
 *    72    8 free-list root pgno (0 = none)
 *    80    8 page count: pages file high-water mark; every root < page count
 *    88    8 highest seq applied to the tree
 *    96    8 replay position: first log record not in this checkpoint
 *   104    4 shard id
 *   108    4 shard count
 *   112    8 created time (seconds)
 *   120    . zero up to the end of the page
 * ------------------------------------------------------------------------------------------- */
#define LAYOUT_SUPER_MAGIC 0x5342444Au
#define LAYOUT_SUPER_BODY_END 120u

struct layout_super {
  uint64_t generation;
  uint32_t format_version;
  uint32_t page_size;
  uint32_t flags;
  uint64_t tree_root;
  uint64_t catalog_root;
  uint64_t dir_root;
  uint64_t freelist_root;
  uint64_t page_count;
  uint64_t seq_max;
  uint64_t replay_pos;
  uint32_t shard_id;
  uint32_t shard_count;
  uint64_t created_sec;
};

/* Encode sb into page (page_size bytes) as superblock slot slot_pgno (0 or 1) and seal it. */
void layout_super_encode(void *page, size_t page_size, uint64_t slot_pgno,
                         const struct layout_super *sb);

/* Decode and check a superblock slot: page header (type SUPER, pgno == slot_pgno), magic, page
   size equal to page_size, every root < page_count, page_count >= 2, shard_id < shard_count,
   reserved bytes zero. JDB_EVERSION if everything else is valid but the format version differs;
   JDB_ECORRUPT otherwise. *out zeroed on failure. */
int layout_super_decode(const void *page, size_t page_size, uint64_t slot_pgno,
                        struct layout_super *out);

#endif
