/*
 * record.c - the frame of every log record: seal (write header, zero padding, checksum), peek
 * (check the header alone, so a reader learns how many bytes to fetch) and open (full check).
 *
 * Format (layout.h, "Log record frame"; docs/FORMAT.md keeps a copy):
 *   off size field
 *     0    4 checksum: layout_cksum(rec[4 .. len-1])
 *     4    4 len: header + payload, padding excluded; 32 .. LOG_REC_LEN_MAX
 *     8    1 type (LOG_REC_*)
 *     9    1 flags (meaning belongs to the type)
 *    10    2 reserved, zero
 *    12    4 reserved, zero
 *    16    8 pos: the record's own log position (LOG_POS(segment, offset))
 *    24    8 durable_pos: every record before it was durable when this one was written; <= pos
 *    32    . payload (len - 32 bytes), then zero padding to the next multiple of 8
 *
 * Invariants:
 *   - Records start 8-byte aligned (LOG_POS_OFF(pos) % LOG_REC_ALIGN == 0) and the next one
 *     starts at pos + layout_rec_padded(len), which must stay inside the 40-bit offset space of
 *     pos's segment. The encoder asserts both and the decoder checks both (beyond the checks
 *     layout.h lists), so that whatever decodes can be sealed again.
 *   - The checksum covers rec[4 .. len-1]: the header fields and the payload, not the padding.
 *     Padding is written as zeros but never read back: it is not part of the record, and the
 *     caller may hold only len bytes.
 *   - A record that layout_rec_open accepts re-seals, from its decoded header and payload, to
 *     the same len bytes: every header bit is checked (reserved) or carried in the struct.
 *   - layout_rec_peek reads buf[0 .. 31] only, layout_rec_open buf[0 .. len-1] only, and only
 *     after checking that avail covers it.
 */
#include "layout.h"

#include "err.h"

#include <string.h>

enum {
  REC_OFF_CKSUM = 0,
  REC_OFF_LEN = 4,
  REC_OFF_TYPE = 8,
  REC_OFF_FLAGS = 9,
  REC_OFF_RSV16 = 10,
  REC_OFF_RSV32 = 12,
  REC_OFF_POS = 16,
  REC_OFF_DURABLE = 24,
};

_Static_assert(REC_OFF_LEN == REC_OFF_CKSUM + 4, "record: len follows checksum");
_Static_assert(REC_OFF_RSV32 == REC_OFF_RSV16 + 2, "record: reserved fields adjacent");
_Static_assert(REC_OFF_POS == REC_OFF_RSV32 + 4, "record: pos follows reserved");
_Static_assert(REC_OFF_DURABLE + 8 == LOG_REC_HDR_SIZE, "record header is 32 bytes");
_Static_assert(REC_OFF_POS % 8 == 0 && REC_OFF_DURABLE % 8 == 0, "u64 fields 8-byte aligned");
_Static_assert((LOG_REC_ALIGN & (LOG_REC_ALIGN - 1)) == 0, "record alignment is 2^n");
_Static_assert(LOG_REC_HDR_SIZE % LOG_REC_ALIGN == 0, "payload starts aligned");
_Static_assert(LOG_REC_LEN_MAX % LOG_REC_ALIGN == 0, "padded max length does not grow");
_Static_assert(LOG_REC_LEN_MAX <= UINT32_MAX - LOG_REC_ALIGN, "layout_rec_padded cannot wrap");
_Static_assert((uint64_t)LOG_REC_LEN_MAX < (1ull << LOG_POS_OFF_BITS), "a record fits a segment");
_Static_assert(LOG_POS_OFF_BITS + 24 == 64, "position = 24-bit segment + 40-bit offset");
_Static_assert(LOG_REC_TYPE_MAX <= UINT8_MAX, "record type is one byte");

static int layout_rec_type_ok(unsigned type)
{
  return type >= 1 && type <= LOG_REC_TYPE_MAX;
}

/* The record [off, off + padded(len)) must not run past the 40-bit offset space. */
static int layout_rec_fits_segment(uint64_t pos, uint32_t len)
{
  return LOG_POS_OFF(pos) + layout_rec_padded(len) <= (1ull << LOG_POS_OFF_BITS);
}

void layout_rec_seal(void *rec, const struct layout_rec_hdr *h)
{
  JDB_ASSERT(rec != NULL);
  JDB_ASSERT(h != NULL);
  JDB_ASSERT(h->len >= LOG_REC_HDR_SIZE);
  JDB_ASSERT(h->len <= LOG_REC_LEN_MAX);
  JDB_ASSERT(layout_rec_type_ok(h->type));
  JDB_ASSERT(h->durable_pos <= h->pos);
  JDB_ASSERT(LOG_POS_OFF(h->pos) % LOG_REC_ALIGN == 0);
  JDB_ASSERT(layout_rec_fits_segment(h->pos, h->len));

  uint8_t *p = rec;
  le32_put(p + REC_OFF_LEN, h->len);
  p[REC_OFF_TYPE] = h->type;
  p[REC_OFF_FLAGS] = h->flags;
  le16_put(p + REC_OFF_RSV16, 0);
  le32_put(p + REC_OFF_RSV32, 0);
  le64_put(p + REC_OFF_POS, h->pos);
  le64_put(p + REC_OFF_DURABLE, h->durable_pos);
  memset(p + h->len, 0, layout_rec_padded(h->len) - h->len);
  le32_put(p + REC_OFF_CKSUM, layout_cksum(p + 4, h->len - 4));
}

int layout_rec_peek(const void *buf, size_t avail, uint64_t want_pos, struct layout_rec_hdr *out)
{
  JDB_ASSERT(out != NULL);
  memset(out, 0, sizeof *out);

  if (avail < LOG_REC_HDR_SIZE)
    return JDB_CORRUPT("log record header (short)", want_pos);
  JDB_ASSERT(buf != NULL);
  const uint8_t *p = buf;

  struct layout_rec_hdr h;
  memset(&h, 0, sizeof h);
  h.len = le32_get(p + REC_OFF_LEN);
  h.type = p[REC_OFF_TYPE];
  h.flags = p[REC_OFF_FLAGS];
  h.pos = le64_get(p + REC_OFF_POS);
  h.durable_pos = le64_get(p + REC_OFF_DURABLE);

  if (h.len < LOG_REC_HDR_SIZE || h.len > LOG_REC_LEN_MAX)
    return JDB_CORRUPT("log record length", want_pos);
  if (!layout_rec_type_ok(h.type))
    return JDB_CORRUPT("log record type", want_pos);
  if (le16_get(p + REC_OFF_RSV16) != 0 || le32_get(p + REC_OFF_RSV32) != 0)
    return JDB_CORRUPT("log record reserved bytes", want_pos);
  /* A record with a good header at the wrong place is a stale or misdirected one. */
  if (h.pos != want_pos)
    return JDB_CORRUPT("log record position", want_pos);
  if (LOG_POS_OFF(h.pos) % LOG_REC_ALIGN != 0)
    return JDB_CORRUPT("log record position (unaligned)", want_pos);
  if (h.durable_pos > h.pos)
    return JDB_CORRUPT("log record durable position", want_pos);
  if (!layout_rec_fits_segment(h.pos, h.len))
    return JDB_CORRUPT("log record length (past segment end)", want_pos);

  *out = h;
  return JDB_OK;
}

int layout_rec_open(const void *buf, size_t avail, uint64_t want_pos, struct layout_rec_hdr *out)
{
  JDB_ASSERT(out != NULL);
  struct layout_rec_hdr h;
  int rc = layout_rec_peek(buf, avail, want_pos, &h);
  if (rc != JDB_OK) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  if (h.len > avail) {
    memset(out, 0, sizeof *out);
    return JDB_CORRUPT("log record length (past available bytes)", want_pos);
  }
  const uint8_t *p = buf;
  if (le32_get(p + REC_OFF_CKSUM) != layout_cksum(p + 4, h.len - 4)) {
    memset(out, 0, sizeof *out);
    return JDB_CORRUPT("log record checksum", want_pos);
  }
  *out = h;
  return JDB_OK;
}
