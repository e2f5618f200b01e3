/*
 * fuzz_layout.c - libFuzzer target for the decoders of infra/layout: layout_page_open,
 * layout_super_decode, layout_rec_peek, layout_rec_open and the codec_rd reader.
 *
 * Input: bytes 0..7 are `want` (the expected pgno / log position, little-endian), byte 8 holds
 * mode bits, the rest is the data. Each decoder sees the data in an exact-size heap copy (so
 * ASan catches any read past it) as is, and again with its checksum recomputed (mode bit 0), so
 * the fuzzer gets past the checksum to the field checks. Page decoders also see the data placed
 * at the start of a zero-filled page of 4 KiB and of a size chosen by mode bits 1-2; each is
 * called with `want` and with the page's own pgno.
 *
 * Mode bit 3 switches to structured inputs instead (fuzz_structured): valid encodings built
 * from field values in the data, then edited, so the deep checks are reached from the start.
 *
 * Besides "no crash, no sanitizer report", the target checks the decoders' promise: whatever
 * they accept re-encodes to exactly the bytes they were given (traps otherwise).
 *
 *   CC=clang cmake -S . -B build-fuzz -DJDB_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
 *   cmake --build build-fuzz --target fuzz_layout
 *   ./build-fuzz/tests/fuzz/fuzz_layout -max_total_time=30 [corpus-dir]
 */
#include "err.h"
#include "layout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond))         \
      __builtin_trap();  \
  } while (0)

static uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
  uint8_t *b = malloc(n ? n : 1);
  FUZZ_CHECK(b != NULL);
  if (n)
    memcpy(b, p, n);
  return b;
}

static void fuzz_page(const uint8_t *page, size_t page_size, uint64_t want)
{
  struct layout_page_hdr h;
  if (layout_page_open(page, page_size, want, &h) == JDB_OK) {
    uint8_t *again = fuzz_dup(page, page_size);
    layout_page_seal(again, page_size, &h);
    FUZZ_CHECK(memcmp(again, page, page_size) == 0);
    free(again);
  } else {
    static const struct layout_page_hdr zero;
    FUZZ_CHECK(memcmp(&h, &zero, sizeof h) == 0);
  }
  struct layout_super sb;
  int rc = layout_super_decode(page, page_size, want, &sb);
  if (rc == JDB_OK) {
    uint8_t *again = malloc(page_size);
    FUZZ_CHECK(again != NULL);
    layout_super_encode(again, page_size, want, &sb);
    FUZZ_CHECK(memcmp(again, page, page_size) == 0);
    free(again);
  } else {
    FUZZ_CHECK(rc == JDB_ECORRUPT || rc == JDB_EVERSION);
  }
}

/* The page decoders on page[0 .. page_size-1], as is and with the checksum recomputed. */
static void fuzz_pages(uint8_t *page, size_t page_size, uint64_t want, int reseal)
{
  uint64_t own = page_size >= 24 ? le64_get(page + 16) : 0;
  fuzz_page(page, page_size, want);
  fuzz_page(page, page_size, own);
  if (reseal && page_size >= LAYOUT_PAGE_SIZE_MIN && page_size <= LAYOUT_PAGE_SIZE_MAX) {
    le32_put(page, layout_cksum(page + 4, page_size - 4));
    fuzz_page(page, page_size, want);
    fuzz_page(page, page_size, own);
  }
}

static void fuzz_rec(const uint8_t *buf, size_t avail, uint64_t want)
{
  struct layout_rec_hdr h;
  if (layout_rec_peek(buf, avail, want, &h) == JDB_OK) {
    FUZZ_CHECK(h.len >= LOG_REC_HDR_SIZE && h.len <= LOG_REC_LEN_MAX);
    FUZZ_CHECK(h.pos == want && h.durable_pos <= h.pos);
  }
  if (layout_rec_open(buf, avail, want, &h) == JDB_OK) {
    FUZZ_CHECK(h.len <= avail);
    uint8_t *again = malloc(layout_rec_padded(h.len));
    FUZZ_CHECK(again != NULL);
    memcpy(again + LOG_REC_HDR_SIZE, buf + LOG_REC_HDR_SIZE, h.len - LOG_REC_HDR_SIZE);
    layout_rec_seal(again, &h);
    FUZZ_CHECK(memcmp(again, buf, h.len) == 0);
    free(again);
  }
}

/* The reader, driven by the data itself: each step's operation comes from the next byte. */
static void fuzz_codec(const uint8_t *buf, size_t n)
{
  struct codec_rd rd;
  codec_rd_init(&rd, buf, n);
  for (int steps = 0; steps < 64 && !rd.err; steps++) {
    size_t off0 = rd.off;
    switch (codec_rd_u8(&rd) % 6) {
    case 0: codec_rd_u16(&rd); break;
    case 1: codec_rd_u32(&rd); break;
    case 2: codec_rd_u64(&rd); break;
    case 3: {
      uint64_t v = codec_rd_varint(&rd);
      if (!rd.err)
        FUZZ_CHECK(varint_len(v) <= rd.off - off0 - 1);
      break;
    }
    case 4: {
      const uint8_t *q = codec_rd_bytes(&rd, rd.off < n ? buf[rd.off] : 1);
      FUZZ_CHECK(rd.err ? q == NULL : q >= buf && q <= buf + n);
      break;
    }
    default: codec_rd_u8(&rd); break;
    }
    FUZZ_CHECK(rd.off <= rd.len);
  }
}

/* Structured mode: a valid page, superblock and record built from field values taken from the
   data, then up to 8 byte edits (offset, value) from the data, then (mode bit 0) the checksum
   recomputed. This reaches the deep checks at once instead of waiting for the fuzzer to guess
   two magics and a checksum. */
static void fuzz_edit(struct codec_rd *rd, uint8_t *b, size_t n)
{
  for (int i = 0; i < 8 && n; i++) {
    uint16_t off = codec_rd_u16(rd);
    uint8_t v = codec_rd_u8(rd);
    if (rd->err)
      return;
    b[off % n] = v;
  }
}

static void fuzz_structured(const uint8_t *data, size_t size, unsigned mode, size_t ps)
{
  struct codec_rd rd;
  codec_rd_init(&rd, data, size);
  uint64_t slot = (mode >> 4) & 1;

  struct layout_super sb;
  memset(&sb, 0, sizeof sb);
  sb.generation = codec_rd_u64(&rd);
  sb.format_version = LAYOUT_FORMAT_VERSION;
  sb.page_size = (uint32_t)ps;
  sb.page_count = codec_rd_u64(&rd);
  if (sb.page_count < 2)
    sb.page_count = 2;
  uint64_t *roots[4] = {&sb.tree_root, &sb.catalog_root, &sb.dir_root, &sb.freelist_root};
  for (int i = 0; i < 4; i++) {
    uint64_t r = codec_rd_u64(&rd);
    *roots[i] = (sb.page_count > 2 && (r & 1)) ? 2 + (r >> 1) % (sb.page_count - 2) : 0;
  }
  sb.seq_max = codec_rd_u64(&rd);
  sb.replay_pos = codec_rd_u64(&rd) & ~(uint64_t)(LOG_REC_ALIGN - 1);
  sb.shard_count = codec_rd_u32(&rd);
  if (sb.shard_count == 0)
    sb.shard_count = 1;
  sb.shard_id = codec_rd_u32(&rd) % sb.shard_count;
  sb.created_sec = codec_rd_u64(&rd);
  uint8_t *page = malloc(ps);
  FUZZ_CHECK(page != NULL);
  layout_super_encode(page, ps, slot, &sb);
  fuzz_edit(&rd, page, ps);
  if (mode & 1)
    le32_put(page, layout_cksum(page + 4, ps - 4));
  fuzz_page(page, ps, slot);

  struct layout_page_hdr h;
  memset(&h, 0, sizeof h);
  h.type = (uint8_t)(1 + codec_rd_u8(&rd) % LAYOUT_PAGE_TYPE_MAX);
  uint8_t level = codec_rd_u8(&rd);
  h.level = h.type == LAYOUT_PAGE_BRANCH ? (uint8_t)(1 + level % LAYOUT_LEVEL_MAX) : 0;
  h.count = (uint16_t)(codec_rd_u16(&rd) % ((ps < UINT16_MAX ? ps : UINT16_MAX) + 1));
  h.flags = codec_rd_u16(&rd);
  h.aux = codec_rd_u32(&rd);
  h.pgno = codec_rd_u64(&rd);
  h.generation = codec_rd_u64(&rd);
  memset(page, 0, ps);
  layout_page_seal(page, ps, &h);
  fuzz_edit(&rd, page, ps);
  if (mode & 1)
    le32_put(page, layout_cksum(page + 4, ps - 4));
  fuzz_page(page, ps, h.pgno);
  free(page);

  struct layout_rec_hdr rh;
  memset(&rh, 0, sizeof rh);
  rh.len = LOG_REC_HDR_SIZE + codec_rd_u16(&rd) % 1024;
  rh.type = (uint8_t)(1 + codec_rd_u8(&rd) % LOG_REC_TYPE_MAX);
  rh.flags = codec_rd_u8(&rd);
  uint64_t pos = codec_rd_u64(&rd) & ~(uint64_t)(LOG_REC_ALIGN - 1);
  uint64_t off_max = (1ull << LOG_POS_OFF_BITS) - layout_rec_padded(rh.len);
  if (LOG_POS_OFF(pos) > off_max)
    pos = LOG_POS(LOG_POS_SEG(pos), off_max);
  rh.pos = pos;
  rh.durable_pos = codec_rd_u64(&rd) % (pos + 1);
  size_t n = layout_rec_padded(rh.len);
  uint8_t *rec = calloc(1, n);
  FUZZ_CHECK(rec != NULL);
  layout_rec_seal(rec, &rh);
  fuzz_edit(&rd, rec, n);
  if ((mode & 1) && le32_get(rec + 4) >= 8 && le32_get(rec + 4) <= n)
    le32_put(rec, layout_cksum(rec + 4, le32_get(rec + 4) - 4));
  size_t avail = (mode & 32) ? rh.len : n;
  uint8_t *exact = fuzz_dup(rec, avail);
  fuzz_rec(exact, avail, rh.pos);
  free(exact);
  free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int quiet;
  if (!quiet) {
    jdb_log_set(NULL, NULL, JDB_LOG_OFF);   /* JDB_CORRUPT would log every rejection */
    quiet = 1;
  }
  if (size < 9)
    return 0;
  uint64_t want = le64_get(data);
  unsigned mode = data[8];
  data += 9;
  size -= 9;
  static const size_t sizes[4] = {4096, 8192, 16384, 65536};
  if (mode & 8) {
    fuzz_structured(data, size, mode, sizes[(mode >> 1) & 3]);
    return 0;
  }

  /* Records and the reader on an exact-size copy. */
  uint8_t *buf = fuzz_dup(data, size);
  fuzz_rec(buf, size, want);
  if (size >= 24)
    fuzz_rec(buf, size, le64_get(buf + 16));
  fuzz_codec(buf, size);
  if ((mode & 1) && size >= 8) {
    uint32_t len = le32_get(buf + 4);
    if (len >= 8 && len <= size) {
      le32_put(buf, layout_cksum(buf + 4, len - 4));
      fuzz_rec(buf, size, want);
      if (size >= 24)
        fuzz_rec(buf, size, le64_get(buf + 16));
    }
  }
  free(buf);

  /* The page decoders on the exact-size copy (usually an invalid page size: must not read). */
  buf = fuzz_dup(data, size);
  fuzz_pages(buf, size, want, mode & 1);
  free(buf);

  /* ... and on the data at the start of zero-filled pages. */
  size_t ps_list[2] = {4096, sizes[(mode >> 1) & 3]};
  for (int i = 0; i < 2; i++) {
    if (i == 1 && ps_list[1] == ps_list[0])
      break;
    size_t ps = ps_list[i];
    uint8_t *page = calloc(1, ps);
    FUZZ_CHECK(page != NULL);
    memcpy(page, data, size < ps ? size : ps);
    fuzz_pages(page, ps, want, mode & 1);
    free(page);
  }
  return 0;
}
