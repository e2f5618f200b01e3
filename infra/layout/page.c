/*
 * page.c - the 32-byte header at the start of every page of a pages file: seal (write + checksum)
 * and open (verify + decode). Page contents above the header belong to their page type.
 *
 * Format (layout.h, "Page header"; docs/FORMAT.md keeps a copy):
 *   off size field
 *     0    4 checksum: layout_cksum(page[4 .. page_size-1])
 *     4    2 magic 0x504A ("JP" little-endian)
 *     6    1 type (LAYOUT_PAGE_*)
 *     7    1 level: 0 for leaves and non-tree pages, 1..LAYOUT_LEVEL_MAX for branches
 *     8    2 count: entries in the page (meaning belongs to the page type)
 *    10    2 flags (meaning belongs to the page type)
 *    12    4 aux: a u32 the page type may use; 0 otherwise
 *    16    8 pgno: the page's own page number
 *    24    8 generation: tree generation that wrote the page
 *    32    . body
 *
 * Invariants:
 *   - The checksum covers every byte of the page but itself, header and body alike, so a page
 *     is sealed after its body is final, and a torn write (LAYOUT_SECTOR granularity) anywhere
 *     in the page fails it.
 *   - A page that layout_page_open accepts re-seals, from the header it decoded, to exactly
 *     the same bytes: every header bit is either checked or carried in the struct.
 *   - layout_page_open reads page[0 .. page_size-1] only, and only after checking page_size;
 *     seal and open agree field by field (the PAGE_OFF_* table below is the only place the
 *     offsets appear).
 */
#include "layout.h"

#include "err.h"

#include <string.h>

enum {
  PAGE_OFF_CKSUM = 0,
  PAGE_OFF_MAGIC = 4,
  PAGE_OFF_TYPE = 6,
  PAGE_OFF_LEVEL = 7,
  PAGE_OFF_COUNT = 8,
  PAGE_OFF_FLAGS = 10,
  PAGE_OFF_AUX = 12,
  PAGE_OFF_PGNO = 16,
  PAGE_OFF_GEN = 24,
};

_Static_assert(PAGE_OFF_MAGIC == PAGE_OFF_CKSUM + 4, "page header: magic follows checksum");
_Static_assert(PAGE_OFF_COUNT == PAGE_OFF_LEVEL + 1, "page header: count follows level");
_Static_assert(PAGE_OFF_AUX == PAGE_OFF_FLAGS + 2, "page header: aux follows flags");
_Static_assert(PAGE_OFF_PGNO == PAGE_OFF_AUX + 4, "page header: pgno follows aux");
_Static_assert(PAGE_OFF_GEN + 8 == LAYOUT_PAGE_HDR_SIZE, "page header is 32 bytes");
_Static_assert(PAGE_OFF_PGNO % 8 == 0 && PAGE_OFF_GEN % 8 == 0, "u64 fields 8-byte aligned");
_Static_assert((LAYOUT_PAGE_SIZE_MIN & (LAYOUT_PAGE_SIZE_MIN - 1)) == 0, "min page size 2^n");
_Static_assert((LAYOUT_PAGE_SIZE_MAX & (LAYOUT_PAGE_SIZE_MAX - 1)) == 0, "max page size 2^n");
_Static_assert(LAYOUT_PAGE_SIZE >= LAYOUT_PAGE_SIZE_MIN && LAYOUT_PAGE_SIZE <= LAYOUT_PAGE_SIZE_MAX,
               "default page size in range");
_Static_assert(LAYOUT_PAGE_SIZE_MIN % LAYOUT_SECTOR == 0, "pages are whole sectors");
_Static_assert(LAYOUT_PAGE_TYPE_MAX <= UINT8_MAX && LAYOUT_LEVEL_MAX <= UINT8_MAX,
               "type and level are one byte");
_Static_assert(LAYOUT_PAGE_MAGIC <= UINT16_MAX, "page magic is two bytes");

static int layout_page_size_ok(size_t page_size)
{
  return page_size >= LAYOUT_PAGE_SIZE_MIN && page_size <= LAYOUT_PAGE_SIZE_MAX &&
         (page_size & (page_size - 1)) == 0;
}

/* Level rule: leaves and non-tree pages 0, branches 1..LAYOUT_LEVEL_MAX. type must be known. */
static int layout_page_level_ok(unsigned type, unsigned level)
{
  if (type == LAYOUT_PAGE_BRANCH)
    return level >= 1 && level <= LAYOUT_LEVEL_MAX;
  return level == 0;
}

static int layout_page_type_ok(unsigned type)
{
  return type >= 1 && type <= LAYOUT_PAGE_TYPE_MAX;
}

void layout_page_seal(void *page, size_t page_size, const struct layout_page_hdr *h)
{
  JDB_ASSERT(page != NULL);
  JDB_ASSERT(h != NULL);
  JDB_ASSERT(layout_page_size_ok(page_size));
  JDB_ASSERT(layout_page_type_ok(h->type));
  JDB_ASSERT(layout_page_level_ok(h->type, h->level));
  JDB_ASSERT(h->count <= page_size);

  uint8_t *p = page;
  le16_put(p + PAGE_OFF_MAGIC, (uint16_t)LAYOUT_PAGE_MAGIC);
  p[PAGE_OFF_TYPE] = h->type;
  p[PAGE_OFF_LEVEL] = h->level;
  le16_put(p + PAGE_OFF_COUNT, h->count);
  le16_put(p + PAGE_OFF_FLAGS, h->flags);
  le32_put(p + PAGE_OFF_AUX, h->aux);
  le64_put(p + PAGE_OFF_PGNO, h->pgno);
  le64_put(p + PAGE_OFF_GEN, h->generation);
  le32_put(p + PAGE_OFF_CKSUM, layout_cksum(p + 4, page_size - 4));
}

int layout_page_open(const void *page, size_t page_size, uint64_t want_pgno,
                     struct layout_page_hdr *out)
{
  JDB_ASSERT(out != NULL);
  memset(out, 0, sizeof *out);

  /* The size comes first: nothing below may read page[] before it is known to be sane. */
  if (!layout_page_size_ok(page_size))
    return JDB_CORRUPT("page size", want_pgno);
  JDB_ASSERT(page != NULL);
  const uint8_t *p = page;

  if (le32_get(p + PAGE_OFF_CKSUM) != layout_cksum(p + 4, page_size - 4))
    return JDB_CORRUPT("page checksum", want_pgno);
  if (le16_get(p + PAGE_OFF_MAGIC) != LAYOUT_PAGE_MAGIC)
    return JDB_CORRUPT("page magic", want_pgno);

  struct layout_page_hdr h;
  memset(&h, 0, sizeof h);
  h.type = p[PAGE_OFF_TYPE];
  h.level = p[PAGE_OFF_LEVEL];
  h.count = le16_get(p + PAGE_OFF_COUNT);
  h.flags = le16_get(p + PAGE_OFF_FLAGS);
  h.aux = le32_get(p + PAGE_OFF_AUX);
  h.pgno = le64_get(p + PAGE_OFF_PGNO);
  h.generation = le64_get(p + PAGE_OFF_GEN);

  if (!layout_page_type_ok(h.type))
    return JDB_CORRUPT("page type", want_pgno);
  if (!layout_page_level_ok(h.type, h.level))
    return JDB_CORRUPT("page level", want_pgno);
  if (h.count > page_size)
    return JDB_CORRUPT("page count", want_pgno);
  /* A good checksum on the wrong page number is a misdirected write (or read). */
  if (h.pgno != want_pgno)
    return JDB_CORRUPT("page number", want_pgno);

  *out = h;
  return JDB_OK;
}
