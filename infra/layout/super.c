/*
 * super.c - the superblock of a shard's pages file: encode into a slot page and decode (verify)
 * one slot. Pages 0 and 1 hold the two slots, written alternately (LMDB's meta pages), so a torn
 * superblock write leaves the other slot intact; choosing between the slots (higher generation
 * among those that decode) is the caller's job.
 *
 * Format (layout.h, "Superblock"; docs/FORMAT.md keeps a copy). Page header (page.c) with type
 * LAYOUT_PAGE_SUPER, level 0, count 0, flags 0, aux 0, pgno = slot (0 or 1), generation =
 * superblock generation; then:
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
 *
 * Invariants (the encoder asserts them, the decoder checks them):
 *   - page_count >= 2 (the two slots) and every root is 0 (none) or in [2, page_count): pages
 *     0 and 1 are the slots themselves, so a root of 1 is as impossible as one past the end.
 *   - shard_id < shard_count; flags == 0; page size field == the file's page size.
 *   - replay_pos is a record position, so its offset is LOG_REC_ALIGN-aligned.
 *   - Header flags/aux and every byte from 120 to the end of the page are zero, so a slot that
 *     decodes re-encodes to exactly the same bytes.
 *   - Version: a slot that passes every other check but carries another format version gives
 *     JDB_EVERSION (not JDB_ECORRUPT), so an old binary refuses a newer store cleanly.
 */
#include "layout.h"

#include "err.h"
#include "log.h"

#include <string.h>

enum {
  SUPER_OFF_MAGIC = 32,
  SUPER_OFF_VERSION = 36,
  SUPER_OFF_PAGE_SIZE = 40,
  SUPER_OFF_FLAGS = 44,
  SUPER_OFF_TREE_ROOT = 48,
  SUPER_OFF_CATALOG_ROOT = 56,
  SUPER_OFF_DIR_ROOT = 64,
  SUPER_OFF_FREELIST_ROOT = 72,
  SUPER_OFF_PAGE_COUNT = 80,
  SUPER_OFF_SEQ_MAX = 88,
  SUPER_OFF_REPLAY_POS = 96,
  SUPER_OFF_SHARD_ID = 104,
  SUPER_OFF_SHARD_COUNT = 108,
  SUPER_OFF_CREATED = 112,
};

_Static_assert(SUPER_OFF_MAGIC == LAYOUT_PAGE_HDR_SIZE, "superblock body follows the header");
_Static_assert(SUPER_OFF_TREE_ROOT % 8 == 0 && SUPER_OFF_PAGE_COUNT % 8 == 0 &&
               SUPER_OFF_REPLAY_POS % 8 == 0 && SUPER_OFF_CREATED % 8 == 0,
               "superblock u64 fields 8-byte aligned");
_Static_assert(SUPER_OFF_SHARD_COUNT == SUPER_OFF_SHARD_ID + 4, "shard count follows shard id");
_Static_assert(SUPER_OFF_CREATED + 8 == LAYOUT_SUPER_BODY_END, "superblock body ends at 120");
_Static_assert(LAYOUT_SUPER_BODY_END <= LAYOUT_PAGE_SIZE_MIN, "superblock fits the smallest page");

/* The four root fields, which the decoder checks in one loop. */
static const unsigned layout_super_root_off[4] = {
  SUPER_OFF_TREE_ROOT, SUPER_OFF_CATALOG_ROOT, SUPER_OFF_DIR_ROOT, SUPER_OFF_FREELIST_ROOT,
};

static int layout_super_root_ok(uint64_t root, uint64_t page_count)
{
  return root == 0 || (root >= 2 && root < page_count);
}

void layout_super_encode(void *page, size_t page_size, uint64_t slot_pgno,
                         const struct layout_super *sb)
{
  JDB_ASSERT(page != NULL);
  JDB_ASSERT(sb != NULL);
  JDB_ASSERT(slot_pgno <= 1);
  JDB_ASSERT(sb->page_size == page_size);
  JDB_ASSERT(sb->format_version == LAYOUT_FORMAT_VERSION);
  JDB_ASSERT(sb->flags == 0);
  JDB_ASSERT(sb->page_count >= 2);
  JDB_ASSERT(layout_super_root_ok(sb->tree_root, sb->page_count));
  JDB_ASSERT(layout_super_root_ok(sb->catalog_root, sb->page_count));
  JDB_ASSERT(layout_super_root_ok(sb->dir_root, sb->page_count));
  JDB_ASSERT(layout_super_root_ok(sb->freelist_root, sb->page_count));
  JDB_ASSERT(sb->shard_id < sb->shard_count);
  JDB_ASSERT(LOG_POS_OFF(sb->replay_pos) % LOG_REC_ALIGN == 0);
  /* layout_page_seal asserts page_size itself; the memset below needs it first. */
  JDB_ASSERT(page_size >= LAYOUT_PAGE_SIZE_MIN && page_size <= LAYOUT_PAGE_SIZE_MAX);

  uint8_t *p = page;
  memset(p + LAYOUT_PAGE_HDR_SIZE, 0, page_size - LAYOUT_PAGE_HDR_SIZE);
  le32_put(p + SUPER_OFF_MAGIC, LAYOUT_SUPER_MAGIC);
  le32_put(p + SUPER_OFF_VERSION, sb->format_version);
  le32_put(p + SUPER_OFF_PAGE_SIZE, sb->page_size);
  le32_put(p + SUPER_OFF_FLAGS, sb->flags);
  le64_put(p + SUPER_OFF_TREE_ROOT, sb->tree_root);
  le64_put(p + SUPER_OFF_CATALOG_ROOT, sb->catalog_root);
  le64_put(p + SUPER_OFF_DIR_ROOT, sb->dir_root);
  le64_put(p + SUPER_OFF_FREELIST_ROOT, sb->freelist_root);
  le64_put(p + SUPER_OFF_PAGE_COUNT, sb->page_count);
  le64_put(p + SUPER_OFF_SEQ_MAX, sb->seq_max);
  le64_put(p + SUPER_OFF_REPLAY_POS, sb->replay_pos);
  le32_put(p + SUPER_OFF_SHARD_ID, sb->shard_id);
  le32_put(p + SUPER_OFF_SHARD_COUNT, sb->shard_count);
  le64_put(p + SUPER_OFF_CREATED, sb->created_sec);

  struct layout_page_hdr h;
  memset(&h, 0, sizeof h);
  h.type = LAYOUT_PAGE_SUPER;
  h.level = 0;
  h.count = 0;
  h.pgno = slot_pgno;
  h.generation = sb->generation;
  layout_page_seal(page, page_size, &h);
}

int layout_super_decode(const void *page, size_t page_size, uint64_t slot_pgno,
                        struct layout_super *out)
{
  JDB_ASSERT(out != NULL);
  memset(out, 0, sizeof *out);

  /* Size, checksum, magic, type/level and pgno == slot_pgno; page_size is valid after this. */
  struct layout_page_hdr h;
  int rc = layout_page_open(page, page_size, slot_pgno, &h);
  if (rc != JDB_OK)
    return rc;
  const uint8_t *p = page;
  if (h.type != LAYOUT_PAGE_SUPER)
    return JDB_CORRUPT("superblock page type", slot_pgno);
  if (h.pgno > 1)
    return JDB_CORRUPT("superblock slot number", slot_pgno);
  if (h.count != 0 || h.flags != 0 || h.aux != 0)
    return JDB_CORRUPT("superblock page header reserved fields", slot_pgno);
  if (le32_get(p + SUPER_OFF_MAGIC) != LAYOUT_SUPER_MAGIC)
    return JDB_CORRUPT("superblock magic", slot_pgno);

  struct layout_super sb;
  memset(&sb, 0, sizeof sb);
  sb.generation = h.generation;
  sb.format_version = le32_get(p + SUPER_OFF_VERSION);
  sb.page_size = le32_get(p + SUPER_OFF_PAGE_SIZE);
  sb.flags = le32_get(p + SUPER_OFF_FLAGS);
  sb.tree_root = le64_get(p + SUPER_OFF_TREE_ROOT);
  sb.catalog_root = le64_get(p + SUPER_OFF_CATALOG_ROOT);
  sb.dir_root = le64_get(p + SUPER_OFF_DIR_ROOT);
  sb.freelist_root = le64_get(p + SUPER_OFF_FREELIST_ROOT);
  sb.page_count = le64_get(p + SUPER_OFF_PAGE_COUNT);
  sb.seq_max = le64_get(p + SUPER_OFF_SEQ_MAX);
  sb.replay_pos = le64_get(p + SUPER_OFF_REPLAY_POS);
  sb.shard_id = le32_get(p + SUPER_OFF_SHARD_ID);
  sb.shard_count = le32_get(p + SUPER_OFF_SHARD_COUNT);
  sb.created_sec = le64_get(p + SUPER_OFF_CREATED);

  if (sb.page_size != page_size)
    return JDB_CORRUPT("superblock page size", slot_pgno);
  if (sb.flags != 0)
    return JDB_CORRUPT("superblock flags", slot_pgno);
  if (sb.page_count < 2)
    return JDB_CORRUPT("superblock page count", slot_pgno);
  for (int i = 0; i < 4; i++)
    if (!layout_super_root_ok(le64_get(p + layout_super_root_off[i]), sb.page_count))
      return JDB_CORRUPT("superblock root page number", slot_pgno);
  if (sb.shard_id >= sb.shard_count)
    return JDB_CORRUPT("superblock shard id", slot_pgno);
  if (LOG_POS_OFF(sb.replay_pos) % LOG_REC_ALIGN != 0)
    return JDB_CORRUPT("superblock replay position", slot_pgno);
  for (size_t off = LAYOUT_SUPER_BODY_END; off < page_size; off++)
    if (p[off] != 0)
      return JDB_CORRUPT("superblock reserved bytes", slot_pgno);

  /* Last, so that only an otherwise well-formed slot is reported as another version. */
  if (sb.format_version != LAYOUT_FORMAT_VERSION) {
    LOG_ERROR("superblock slot %llu: format version %u, this build reads version %u",
              (unsigned long long)slot_pgno, sb.format_version, LAYOUT_FORMAT_VERSION);
    return JDB_EVERSION;
  }

  *out = sb;
  return JDB_OK;
}
