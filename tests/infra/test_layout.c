/*
 * test_layout.c - the on-disk formats of infra/layout: checksums, page header, log record frame,
 * superblock.
 *
 * Three kinds of test:
 *   - round trips: encode, decode, compare; decoding then re-encoding gives the same bytes;
 *   - one test per decoder check: a valid encoding with exactly one field broken (checksum
 *     recomputed, so that field's check is the one that fires) is rejected, logged through
 *     JDB_CORRUPT and leaves *out zeroed;
 *   - a random/mutation run: LAYOUT_TEST_INPUTS (default 100,000) inputs, random bytes and
 *     valid encodings with bit flips, truncations, extensions and byte overwrites (half of them
 *     with the checksum recomputed afterwards), each in its own exact-size malloc'd buffer so
 *     ASan sees any read past the end. Every decoder must either reject an input or accept
 *     something that re-encodes to exactly the input bytes.
 * Seeded from JDB_TEST_SEED (printed at start).
 */
#include "tutil.h"

#include "clock.h"
#include "err.h"
#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static struct tutil_rng test_rng;

static int is_zero(const void *p, size_t n)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return 0;
  return 1;
}

static void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  assert_non_null(p);
  return p;
}

/* Expect JDB_ECORRUPT, a JDB_CORRUPT report, and *outp zeroed (it is poisoned first). */
#define EXPECT_CORRUPT(call, outp)                     \
  do {                                                 \
    uint64_t corrupt0_ = err_corrupt_count();          \
    memset((outp), 0xA5, sizeof *(outp));              \
    assert_int_equal((call), JDB_ECORRUPT);            \
    assert_true(err_corrupt_count() > corrupt0_);      \
    assert_true(is_zero((outp), sizeof *(outp)));      \
  } while (0)

/* Recompute the checksum of a page / a record after a test broke one field on purpose. */
static void page_reseal_cksum(uint8_t *page, size_t page_size)
{
  le32_put(page, layout_cksum(page + 4, page_size - 4));
}

static void rec_reseal_cksum(uint8_t *rec, uint32_t len)
{
  le32_put(rec, layout_cksum(rec + 4, len - 4));
}

/* ---------------------------------------------------------------------------------------------
 * Checksums
 * ------------------------------------------------------------------------------------------- */
static void crc32c_known_vectors(void **state)
{
  (void)state;
  static const struct { const char *name; uint8_t data[32]; size_t n; uint32_t crc; } v[] = {
    {"empty", {0}, 0, 0x00000000u},
    {"a", {'a'}, 1, 0xC1D04330u},
    {"123456789", {'1', '2', '3', '4', '5', '6', '7', '8', '9'}, 9, 0xE3069283u},
    /* RFC 3720 (iSCSI) B.4 */
    {"32 x 00", {0}, 32, 0x8A9136AAu},
    {"32 x ff", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 32, 0x62A8AB43u},
    {"0..31", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
               22, 23, 24, 25, 26, 27, 28, 29, 30, 31}, 32, 0x46DD794Eu},
    {"31..0", {31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
               12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 32, 0x113FDB5Cu},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t *b = xmalloc(v[i].n);   /* exact size: ASan checks both versions stay inside */
    memcpy(b, v[i].data, v[i].n);
    if (layout_crc32c(b, v[i].n) != v[i].crc || layout_crc32c_sw(b, v[i].n) != v[i].crc)
      fail_msg("crc32c(%s): hw %08x sw %08x want %08x", v[i].name, layout_crc32c(b, v[i].n),
               layout_crc32c_sw(b, v[i].n), v[i].crc);
    free(b);
  }
  assert_int_equal(layout_crc32c(NULL, 0), 0);
  assert_int_equal(layout_crc32c_sw(NULL, 0), 0);
}

static void crc32c_hw_equals_sw(void **state)
{
  (void)state;
  enum { MAXLEN = 300 };
  /* Every length 0..300 at every start alignment 0..7, each in an exact-size buffer. */
  for (size_t n = 0; n <= MAXLEN; n++) {
    for (size_t a = 0; a < 8; a++) {
      uint8_t *b = xmalloc(a + n);
      tutil_rng_fill(&test_rng, b, a + n);
      uint32_t hw = layout_crc32c(b + a, n), sw = layout_crc32c_sw(b + a, n);
      if (hw != sw)
        fail_msg("crc32c len %zu align %zu: hw %08x sw %08x", n, a, hw, sw);
      free(b);
    }
  }
  /* Lengths around the 3-way block sizes of the SSE4.2 path (3 x 256, 3 x 4096). */
  static const size_t big[] = {767, 768, 769, 775, 776, 1535, 1536, 1543, 4096, 8192, 12287,
                               12288, 12289, 12288 + 768 + 5, 24576 + 1, 65536, 100003};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    for (size_t a = 0; a < 8; a++) {
      size_t n = big[i];
      uint8_t *b = xmalloc(a + n);
      tutil_rng_fill(&test_rng, b, a + n);
      uint32_t hw = layout_crc32c(b + a, n), sw = layout_crc32c_sw(b + a, n);
      if (hw != sw)
        fail_msg("crc32c len %zu align %zu: hw %08x sw %08x", n, a, hw, sw);
      free(b);
    }
  }
  /* A CRC detects every single-bit error: flip each bit of a 300-byte buffer. */
  uint8_t b[300];
  tutil_rng_fill(&test_rng, b, sizeof b);
  uint32_t c0 = layout_crc32c(b, sizeof b);
  for (size_t bit = 0; bit < sizeof b * 8; bit++) {
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_int_not_equal(layout_crc32c(b, sizeof b), c0);
    b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
}

static void xxh3_32_and_cksum(void **state)
{
  (void)state;
  for (size_t n = 0; n <= 600; n += 7) {
    uint8_t *b = xmalloc(n);
    tutil_rng_fill(&test_rng, b, n);
    assert_int_equal(layout_xxh3_32(b, n), (uint32_t)XXH3_64bits(b, n));
    /* layout_cksum is one of the two (which one is a build-time switch in cksum.c). */
    uint32_t c = layout_cksum(b, n);
    assert_true(c == layout_xxh3_32(b, n) || c == layout_crc32c(b, n));
    assert_int_equal(layout_cksum(b, n), c);
    free(b);
  }
  /* Whichever it is, it must be the same function for every length. */
  uint8_t b[64] = {1, 2, 3};
  int is_xxh = layout_cksum(b, sizeof b) == layout_xxh3_32(b, sizeof b);
  for (size_t n = 1; n <= sizeof b; n++)
    assert_int_equal(layout_cksum(b, n), is_xxh ? layout_xxh3_32(b, n) : layout_crc32c(b, n));
}

/* ---------------------------------------------------------------------------------------------
 * Generators of valid encodings
 * ------------------------------------------------------------------------------------------- */
static const size_t page_sizes[] = {4096, 8192, 16384, 32768, 65536};

static struct layout_page_hdr rand_page_hdr(struct tutil_rng *r, size_t page_size)
{
  struct layout_page_hdr h;
  memset(&h, 0, sizeof h);
  h.type = (uint8_t)(1 + tutil_rng_below(r, LAYOUT_PAGE_TYPE_MAX));
  h.level = h.type == LAYOUT_PAGE_BRANCH ? (uint8_t)(1 + tutil_rng_below(r, LAYOUT_LEVEL_MAX)) : 0;
  size_t count_max = page_size < UINT16_MAX ? page_size : UINT16_MAX;
  h.count = (uint16_t)tutil_rng_below(r, count_max + 1);
  h.flags = (uint16_t)tutil_rng_next(r);
  h.aux = (uint32_t)tutil_rng_next(r);
  h.pgno = tutil_rng_below(r, 2) ? tutil_rng_next(r) : tutil_rng_below(r, 1000);
  h.generation = tutil_rng_next(r);
  return h;
}

/* A sealed page with a random body; caller frees. */
static uint8_t *page_new(struct tutil_rng *r, size_t page_size, const struct layout_page_hdr *h)
{
  uint8_t *p = xmalloc(page_size);
  tutil_rng_fill(r, p, page_size);
  layout_page_seal(p, page_size, h);
  return p;
}

static struct layout_rec_hdr rand_rec_hdr(struct tutil_rng *r, uint32_t len)
{
  struct layout_rec_hdr h;
  memset(&h, 0, sizeof h);
  h.len = len;
  h.type = (uint8_t)(1 + tutil_rng_below(r, LOG_REC_TYPE_MAX));
  h.flags = (uint8_t)tutil_rng_next(r);
  uint64_t seg = tutil_rng_below(r, (uint64_t)LOG_SEG_MAX + 1);
  uint64_t off = tutil_rng_below(r, 2) ? tutil_rng_below(r, 1u << 20) * LOG_REC_ALIGN
                                       : tutil_rng_below(r, (1ull << 37) - 1024) * LOG_REC_ALIGN;
  h.pos = LOG_POS(seg, off);
  h.durable_pos = tutil_rng_below(r, 4) ? tutil_rng_below(r, h.pos + 1) : h.pos;
  return h;
}

/* A sealed record of h->len bytes plus padding with a random payload; caller frees. */
static uint8_t *rec_new(struct tutil_rng *r, const struct layout_rec_hdr *h)
{
  size_t n = layout_rec_padded(h->len);
  uint8_t *p = xmalloc(n);
  tutil_rng_fill(r, p, n);
  layout_rec_seal(p, h);
  return p;
}

static struct layout_super rand_super(struct tutil_rng *r, size_t page_size)
{
  struct layout_super sb;
  memset(&sb, 0, sizeof sb);
  sb.generation = tutil_rng_next(r);
  sb.format_version = LAYOUT_FORMAT_VERSION;
  sb.page_size = (uint32_t)page_size;
  sb.page_count = 2 + (tutil_rng_below(r, 2) ? tutil_rng_below(r, 100) : tutil_rng_next(r) >> 2);
  uint64_t *roots[4] = {&sb.tree_root, &sb.catalog_root, &sb.dir_root, &sb.freelist_root};
  for (int i = 0; i < 4; i++)
    *roots[i] = (sb.page_count > 2 && tutil_rng_below(r, 4))
                    ? 2 + tutil_rng_below(r, sb.page_count - 2) : 0;
  sb.seq_max = tutil_rng_next(r);
  sb.replay_pos = LOG_POS(tutil_rng_below(r, (uint64_t)LOG_SEG_MAX + 1),
                          tutil_rng_below(r, 1ull << 37) * LOG_REC_ALIGN);
  sb.shard_count = 1 + (uint32_t)tutil_rng_below(r, 1024);
  sb.shard_id = (uint32_t)tutil_rng_below(r, sb.shard_count);
  sb.created_sec = tutil_rng_next(r) >> 30;
  return sb;
}

/* The superblock the rejection tests start from (pages 0..999 in use). */
static struct layout_super super_example(size_t page_size)
{
  struct layout_super sb;
  memset(&sb, 0, sizeof sb);
  sb.generation = 7;
  sb.format_version = LAYOUT_FORMAT_VERSION;
  sb.page_size = (uint32_t)page_size;
  sb.tree_root = 10;
  sb.catalog_root = 20;
  sb.dir_root = 0;
  sb.freelist_root = 30;
  sb.page_count = 1000;
  sb.seq_max = 123456789;
  sb.replay_pos = LOG_POS(2, 800);
  sb.shard_id = 1;
  sb.shard_count = 4;
  sb.created_sec = 1700000000;
  return sb;
}

/* ---------------------------------------------------------------------------------------------
 * Page header
 * ------------------------------------------------------------------------------------------- */
static void page_round_trip(void **state)
{
  (void)state;
  for (size_t s = 0; s < sizeof page_sizes / sizeof page_sizes[0]; s++) {
    size_t ps = page_sizes[s];
    for (int i = 0; i < 40; i++) {
      struct layout_page_hdr h = rand_page_hdr(&test_rng, ps);
      if (i == 0) { h.type = LAYOUT_PAGE_BRANCH; h.level = LAYOUT_LEVEL_MAX; }
      if (i == 1) { h.count = (uint16_t)(ps < UINT16_MAX ? ps : UINT16_MAX); }
      if (i == 2) { h.pgno = UINT64_MAX; h.generation = 0; h.flags = 0xffff; h.aux = ~0u; }
      uint8_t *p = page_new(&test_rng, ps, &h);
      uint8_t *copy = xmalloc(ps);
      memcpy(copy, p, ps);

      struct layout_page_hdr out;
      memset(&out, 0xA5, sizeof out);
      assert_int_equal(layout_page_open(p, ps, h.pgno, &out), JDB_OK);
      assert_int_equal(out.type, h.type);
      assert_int_equal(out.level, h.level);
      assert_int_equal(out.count, h.count);
      assert_int_equal(out.flags, h.flags);
      assert_int_equal(out.aux, h.aux);
      assert_true(out.pgno == h.pgno);
      assert_true(out.generation == h.generation);
      /* The documented byte positions, read back independently of page.c. */
      assert_int_equal(le32_get(p), layout_cksum(p + 4, ps - 4));
      assert_int_equal(le16_get(p + 4), LAYOUT_PAGE_MAGIC);
      assert_int_equal(p[6], h.type);
      assert_int_equal(p[7], h.level);
      assert_int_equal(le16_get(p + 8), h.count);
      assert_int_equal(le16_get(p + 10), h.flags);
      assert_int_equal(le32_get(p + 12), h.aux);
      assert_true(le64_get(p + 16) == h.pgno);
      assert_true(le64_get(p + 24) == h.generation);
      /* Re-sealing from the decoded header reproduces the page. */
      layout_page_seal(copy, ps, &out);
      assert_memory_equal(copy, p, ps);
      free(copy);
      free(p);
    }
  }
}

static void page_rejects_each_check(void **state)
{
  (void)state;
  const size_t ps = LAYOUT_PAGE_SIZE;
  struct layout_page_hdr h = {.type = LAYOUT_PAGE_LEAF, .level = 0, .count = 17, .flags = 3,
                              .aux = 1234, .pgno = 42, .generation = 99};
  struct layout_page_hdr out;
  uint8_t *good = page_new(&test_rng, ps, &h);
  uint8_t *p = xmalloc(ps);
#define RESET() memcpy(p, good, ps)

  RESET();
  assert_int_equal(layout_page_open(p, ps, 42, &out), JDB_OK);

  /* Checksum: a bit anywhere (body, header, last byte, the checksum itself). */
  static const size_t flips[] = {0, 3, 4, 6, 8, 16, 24, 31, 32, 100, 2047, 4095};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    RESET();
    p[flips[i]] ^= 0x10;
    EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
  }
  /* A torn write: the second sector still holds an older version of the page. */
  {
    uint8_t *old = page_new(&test_rng, ps, &h);
    RESET();
    memcpy(p + LAYOUT_SECTOR, old + LAYOUT_SECTOR, LAYOUT_SECTOR);
    EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
    free(old);
  }
  /* Magic (checksum made valid again so the magic check is what fires). */
  RESET();
  le16_put(p + 4, 0x4A50);
  page_reseal_cksum(p, ps);
  EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
  RESET();
  le16_put(p + 4, 0);
  page_reseal_cksum(p, ps);
  EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
  /* Type. */
  static const uint8_t bad_types[] = {0, LAYOUT_PAGE_TYPE_MAX + 1, 0x80, 0xff};
  for (size_t i = 0; i < sizeof bad_types; i++) {
    RESET();
    p[6] = bad_types[i];
    page_reseal_cksum(p, ps);
    EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
  }
  /* Level against type: {type, level, ok}. */
  static const struct { uint8_t type, level; int ok; } lv[] = {
    {LAYOUT_PAGE_LEAF, 0, 1},      {LAYOUT_PAGE_LEAF, 1, 0},       {LAYOUT_PAGE_LEAF, 255, 0},
    {LAYOUT_PAGE_BRANCH, 0, 0},    {LAYOUT_PAGE_BRANCH, 1, 1},     {LAYOUT_PAGE_BRANCH, 32, 1},
    {LAYOUT_PAGE_BRANCH, 33, 0},   {LAYOUT_PAGE_BRANCH, 255, 0},   {LAYOUT_PAGE_SUPER, 1, 0},
    {LAYOUT_PAGE_FREELIST, 1, 0},  {LAYOUT_PAGE_OVERFLOW, 2, 0},   {LAYOUT_PAGE_OVERFLOW, 0, 1},
  };
  for (size_t i = 0; i < sizeof lv / sizeof lv[0]; i++) {
    RESET();
    p[6] = lv[i].type;
    p[7] = lv[i].level;
    page_reseal_cksum(p, ps);
    if (lv[i].ok) {
      assert_int_equal(layout_page_open(p, ps, 42, &out), JDB_OK);
      assert_int_equal(out.level, lv[i].level);
    } else {
      EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
    }
  }
  /* Count: page_size is the limit. */
  RESET();
  le16_put(p + 8, (uint16_t)ps);
  page_reseal_cksum(p, ps);
  assert_int_equal(layout_page_open(p, ps, 42, &out), JDB_OK);
  RESET();
  le16_put(p + 8, (uint16_t)(ps + 1));
  page_reseal_cksum(p, ps);
  EXPECT_CORRUPT(layout_page_open(p, ps, 42, &out), &out);
  /* Wrong page number: a misdirected write has a perfect checksum. */
  RESET();
  EXPECT_CORRUPT(layout_page_open(p, ps, 43, &out), &out);
  EXPECT_CORRUPT(layout_page_open(p, ps, 42 | (1ull << 63), &out), &out);
  EXPECT_CORRUPT(layout_page_open(p, ps, 0, &out), &out);
  /* Invalid page sizes are refused before the page is read: the buffer is 4 KiB, so ASan
     would catch a read for the larger ones. */
  static const size_t bad_sizes[] = {0, 1, 32, 512, 2048, 4095, 4097, 6144, 12288, 65535,
                                     131072, (size_t)1 << 40};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    RESET();
    EXPECT_CORRUPT(layout_page_open(p, bad_sizes[i], 42, &out), &out);
  }
  /* Opened with another valid size than it was sealed with: the checksum differs. */
  {
    uint8_t *big = page_new(&test_rng, 8192, &h);
    EXPECT_CORRUPT(layout_page_open(big, 4096, 42, &out), &out);
    free(big);
  }
#undef RESET
  free(p);
  free(good);
}

/* ---------------------------------------------------------------------------------------------
 * Log record frame
 * ------------------------------------------------------------------------------------------- */
static void rec_round_trip(void **state)
{
  (void)state;
  static const uint32_t lens[] = {32, 33, 38, 39, 40, 41, 47, 48, 100, 101, 255, 4096, 4099,
                                  65536 + 5};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (int k = 0; k < 8; k++) {
      struct layout_rec_hdr h = rand_rec_hdr(&test_rng, lens[i]);
      size_t padded = layout_rec_padded(h.len);
      assert_true(padded % LOG_REC_ALIGN == 0);
      assert_true(padded >= h.len && padded < h.len + LOG_REC_ALIGN);
      /* The buffer has one sentinel byte after the padding: seal must not touch it. */
      uint8_t *p = xmalloc(padded + 1);
      tutil_rng_fill(&test_rng, p, padded + 1);
      p[padded] = 0xEE;
      uint8_t *payload = xmalloc(h.len - 32);
      memcpy(payload, p + 32, h.len - 32);
      layout_rec_seal(p, &h);
      assert_memory_equal(p + 32, payload, h.len - 32);
      assert_true(is_zero(p + h.len, padded - h.len));
      assert_int_equal(p[padded], 0xEE);
      /* Documented byte positions. */
      assert_int_equal(le32_get(p), layout_cksum(p + 4, h.len - 4));
      assert_int_equal(le32_get(p + 4), h.len);
      assert_int_equal(p[8], h.type);
      assert_int_equal(p[9], h.flags);
      assert_true(is_zero(p + 10, 6));
      assert_true(le64_get(p + 16) == h.pos);
      assert_true(le64_get(p + 24) == h.durable_pos);

      /* Decode from an exact-size copy of len bytes (no padding: the reader may not have it). */
      uint8_t *exact = xmalloc(h.len);
      memcpy(exact, p, h.len);
      struct layout_rec_hdr out;
      memset(&out, 0xA5, sizeof out);
      assert_int_equal(layout_rec_peek(exact, LOG_REC_HDR_SIZE, h.pos, &out), JDB_OK);
      assert_int_equal(out.len, h.len);
      memset(&out, 0xA5, sizeof out);
      assert_int_equal(layout_rec_open(exact, h.len, h.pos, &out), JDB_OK);
      assert_int_equal(out.len, h.len);
      assert_int_equal(out.type, h.type);
      assert_int_equal(out.flags, h.flags);
      assert_true(out.pos == h.pos);
      assert_true(out.durable_pos == h.durable_pos);
      /* And with the padding and more bytes after it. */
      assert_int_equal(layout_rec_open(p, padded + 1, h.pos, &out), JDB_OK);
      /* Re-seal from the decoded header reproduces the record and its padding. */
      uint8_t *again = xmalloc(padded);
      memcpy(again + 32, exact + 32, h.len - 32);
      layout_rec_seal(again, &out);
      assert_memory_equal(again, p, padded);
      free(again);
      free(exact);
      free(payload);
      free(p);
    }
  }
  /* Records back to back: each starts where the previous one's padding ends. */
  uint8_t seg[1024];
  size_t off = 0;
  uint64_t base = LOG_POS(5, 0);
  for (uint32_t len = 32; off + layout_rec_padded(len) <= sizeof seg; len += 13) {
    struct layout_rec_hdr h = {.len = len, .type = LOG_REC_BATCH, .pos = base + off,
                               .durable_pos = base};
    memset(seg + off + 32, (int)len, len - 32);
    layout_rec_seal(seg + off, &h);
    off += layout_rec_padded(len);
  }
  size_t at = 0;
  int n = 0;
  while (at < off) {
    struct layout_rec_hdr out;
    assert_int_equal(layout_rec_open(seg + at, off - at, base + at, &out), JDB_OK);
    assert_int_equal(out.len, 32 + 13 * n);
    at += layout_rec_padded(out.len);
    n++;
  }
  assert_true(n > 3);
}

static void rec_rejects_each_check(void **state)
{
  (void)state;
  const uint32_t len = 100;
  const uint64_t pos = LOG_POS(3, 4096);
  struct layout_rec_hdr h = {.len = len, .type = LOG_REC_BATCH, .flags = 0x5a, .pos = pos,
                             .durable_pos = LOG_POS(3, 0)};
  uint8_t *good = rec_new(&test_rng, &h);
  const size_t padded = layout_rec_padded(len);
  uint8_t *p = xmalloc(padded);
  struct layout_rec_hdr out;
#define RESET() memcpy(p, good, padded)

  RESET();
  assert_int_equal(layout_rec_peek(p, padded, pos, &out), JDB_OK);
  assert_int_equal(layout_rec_open(p, padded, pos, &out), JDB_OK);

  /* Checksum: peek does not look at it, open does. The padding is outside it. */
  static const size_t flips[] = {0, 3, 4, 8, 9, 16, 24, 31, 32, 50, 99};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    RESET();
    p[flips[i]] ^= 0x01;
    EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);
  }
  RESET();
  p[60] ^= 0x80;
  assert_int_equal(layout_rec_peek(p, padded, pos, &out), JDB_OK);
  EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);

  /* Short buffers: peek needs 32 bytes. Exact-size copies, so ASan checks the reads. */
  for (size_t avail = 0; avail < LOG_REC_HDR_SIZE; avail++) {
    uint8_t *s = xmalloc(avail);
    memcpy(s, good, avail);
    EXPECT_CORRUPT(layout_rec_peek(s, avail, pos, &out), &out);
    EXPECT_CORRUPT(layout_rec_open(s, avail, pos, &out), &out);
    free(s);
  }
  /* len > avail: peek says how much to read, open refuses. */
  for (size_t avail = LOG_REC_HDR_SIZE; avail < len; avail += 7) {
    uint8_t *s = xmalloc(avail);
    memcpy(s, good, avail);
    memset(&out, 0, sizeof out);
    assert_int_equal(layout_rec_peek(s, avail, pos, &out), JDB_OK);
    assert_int_equal(out.len, len);
    EXPECT_CORRUPT(layout_rec_open(s, avail, pos, &out), &out);
    free(s);
  }
  {
    uint8_t *s = xmalloc(len - 1);
    memcpy(s, good, len - 1);
    EXPECT_CORRUPT(layout_rec_open(s, len - 1, pos, &out), &out);
    free(s);
  }
  /* len out of range (checksum fixed where it can be, so the len check is what fires). */
  static const uint32_t bad_lens[] = {0, 1, 31, LOG_REC_LEN_MAX + 1, LOG_REC_LEN_MAX + 8,
                                      UINT32_MAX - 7, UINT32_MAX};
  for (size_t i = 0; i < sizeof bad_lens / sizeof bad_lens[0]; i++) {
    RESET();
    le32_put(p + 4, bad_lens[i]);
    if (bad_lens[i] >= 8 && bad_lens[i] <= padded)
      rec_reseal_cksum(p, bad_lens[i]);
    EXPECT_CORRUPT(layout_rec_peek(p, padded, pos, &out), &out);
    EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);
  }
  /* len == LOG_REC_LEN_MAX is a valid header; open then needs the bytes. */
  RESET();
  le32_put(p + 4, LOG_REC_LEN_MAX);
  assert_int_equal(layout_rec_peek(p, padded, pos, &out), JDB_OK);
  assert_int_equal(out.len, LOG_REC_LEN_MAX);
  EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);
  /* Type. */
  static const uint8_t bad_types[] = {0, LOG_REC_TYPE_MAX + 1, 0x7f, 0xff};
  for (size_t i = 0; i < sizeof bad_types; i++) {
    RESET();
    p[8] = bad_types[i];
    rec_reseal_cksum(p, len);
    EXPECT_CORRUPT(layout_rec_peek(p, padded, pos, &out), &out);
    EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);
  }
  /* Reserved bytes 10..15, each bit position that matters. */
  for (size_t off = 10; off < 16; off++) {
    for (int bit = 0; bit < 8; bit += 7) {
      RESET();
      p[off] = (uint8_t)(1u << bit);
      rec_reseal_cksum(p, len);
      EXPECT_CORRUPT(layout_rec_peek(p, padded, pos, &out), &out);
      EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);
    }
  }
  /* Position: the record is somewhere else than the reader expected. */
  static const uint64_t wrong_pos[] = {pos + 8, pos - 8, LOG_POS(4, 4096), LOG_POS(3, 0), 0,
                                       UINT64_MAX};
  for (size_t i = 0; i < sizeof wrong_pos / sizeof wrong_pos[0]; i++) {
    RESET();
    EXPECT_CORRUPT(layout_rec_peek(p, padded, wrong_pos[i], &out), &out);
    EXPECT_CORRUPT(layout_rec_open(p, padded, wrong_pos[i], &out), &out);
  }
  /* An unaligned position, even the expected one: records start 8-byte aligned. */
  for (uint64_t d = 1; d < LOG_REC_ALIGN; d++) {
    RESET();
    le64_put(p + 16, pos + d);
    rec_reseal_cksum(p, len);
    EXPECT_CORRUPT(layout_rec_peek(p, padded, pos + d, &out), &out);
    EXPECT_CORRUPT(layout_rec_open(p, padded, pos + d, &out), &out);
  }
  /* durable_pos: == pos is fine, > pos is not. */
  RESET();
  le64_put(p + 24, pos);
  rec_reseal_cksum(p, len);
  assert_int_equal(layout_rec_open(p, padded, pos, &out), JDB_OK);
  static const uint64_t bad_durable[] = {pos + 1, LOG_POS(4, 0), UINT64_MAX};
  for (size_t i = 0; i < sizeof bad_durable / sizeof bad_durable[0]; i++) {
    RESET();
    le64_put(p + 24, bad_durable[i]);
    rec_reseal_cksum(p, len);
    EXPECT_CORRUPT(layout_rec_peek(p, padded, pos, &out), &out);
    EXPECT_CORRUPT(layout_rec_open(p, padded, pos, &out), &out);
  }
  /* A record running past the 40-bit offset space of its segment. */
  {
    uint64_t end_pos = LOG_POS(3, (1ull << LOG_POS_OFF_BITS) - 64);   /* 64 bytes left */
    RESET();
    le64_put(p + 16, end_pos);
    rec_reseal_cksum(p, len);
    EXPECT_CORRUPT(layout_rec_peek(p, padded, end_pos, &out), &out);
    le32_put(p + 4, 64);   /* exactly fills the segment: fine */
    rec_reseal_cksum(p, 64);
    assert_int_equal(layout_rec_open(p, padded, end_pos, &out), JDB_OK);
  }
#undef RESET
  free(p);
  free(good);
}

/* ---------------------------------------------------------------------------------------------
 * Superblock
 * ------------------------------------------------------------------------------------------- */
static void super_assert_equal(const struct layout_super *a, const struct layout_super *b)
{
  assert_true(a->generation == b->generation);
  assert_int_equal(a->format_version, b->format_version);
  assert_int_equal(a->page_size, b->page_size);
  assert_int_equal(a->flags, b->flags);
  assert_true(a->tree_root == b->tree_root);
  assert_true(a->catalog_root == b->catalog_root);
  assert_true(a->dir_root == b->dir_root);
  assert_true(a->freelist_root == b->freelist_root);
  assert_true(a->page_count == b->page_count);
  assert_true(a->seq_max == b->seq_max);
  assert_true(a->replay_pos == b->replay_pos);
  assert_int_equal(a->shard_id, b->shard_id);
  assert_int_equal(a->shard_count, b->shard_count);
  assert_true(a->created_sec == b->created_sec);
}

static void super_round_trip(void **state)
{
  (void)state;
  for (size_t s = 0; s < sizeof page_sizes / sizeof page_sizes[0]; s++) {
    size_t ps = page_sizes[s];
    for (int i = 0; i < 20; i++) {
      struct layout_super sb = i == 0 ? super_example(ps) : rand_super(&test_rng, ps);
      uint64_t slot = (uint64_t)(i & 1);
      uint8_t *p = xmalloc(ps);
      memset(p, 0xCC, ps);   /* the encoder must clear the whole page */
      layout_super_encode(p, ps, slot, &sb);

      struct layout_super out;
      memset(&out, 0xA5, sizeof out);
      assert_int_equal(layout_super_decode(p, ps, slot, &out), JDB_OK);
      super_assert_equal(&out, &sb);
      /* The page header is a regular one. */
      struct layout_page_hdr h;
      assert_int_equal(layout_page_open(p, ps, slot, &h), JDB_OK);
      assert_int_equal(h.type, LAYOUT_PAGE_SUPER);
      assert_int_equal(h.level, 0);
      assert_int_equal(h.count, 0);
      assert_true(h.generation == sb.generation);
      /* Documented byte positions. */
      assert_int_equal(le32_get(p + 32), LAYOUT_SUPER_MAGIC);
      assert_int_equal(le32_get(p + 36), LAYOUT_FORMAT_VERSION);
      assert_int_equal(le32_get(p + 40), ps);
      assert_true(le64_get(p + 48) == sb.tree_root);
      assert_true(le64_get(p + 80) == sb.page_count);
      assert_true(le64_get(p + 96) == sb.replay_pos);
      assert_int_equal(le32_get(p + 104), sb.shard_id);
      assert_int_equal(le32_get(p + 108), sb.shard_count);
      assert_true(le64_get(p + 112) == sb.created_sec);
      assert_true(is_zero(p + LAYOUT_SUPER_BODY_END, ps - LAYOUT_SUPER_BODY_END));
      /* The other slot's page number does not match. */
      EXPECT_CORRUPT(layout_super_decode(p, ps, slot ^ 1, &out), &out);
      /* Re-encoding the decoded value gives the same page. */
      assert_int_equal(layout_super_decode(p, ps, slot, &out), JDB_OK);
      uint8_t *again = xmalloc(ps);
      layout_super_encode(again, ps, slot, &out);
      assert_memory_equal(again, p, ps);
      free(again);
      free(p);
    }
  }
}

static void super_rejects_each_check(void **state)
{
  (void)state;
  const size_t ps = LAYOUT_PAGE_SIZE;
  struct layout_super sb = super_example(ps);
  struct layout_super out;
  uint8_t *good = xmalloc(ps);
  layout_super_encode(good, ps, 0, &sb);
  uint8_t *p = xmalloc(ps);
#define RESET() memcpy(p, good, ps)
#define PATCH64(off, v) (RESET(), le64_put(p + (off), (v)), page_reseal_cksum(p, ps))
#define PATCH32(off, v) (RESET(), le32_put(p + (off), (v)), page_reseal_cksum(p, ps))

  RESET();
  assert_int_equal(layout_super_decode(p, ps, 0, &out), JDB_OK);

  /* Checksum. */
  static const size_t flips[] = {0, 5, 40, 80, 119, 120, 2000, 4095};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    RESET();
    p[flips[i]] ^= 0x04;
    EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  }
  /* Slot: wrong slot, and a SUPER page claiming page 2 read as "slot 2". */
  RESET();
  EXPECT_CORRUPT(layout_super_decode(p, ps, 1, &out), &out);
  {
    struct layout_page_hdr h = {.type = LAYOUT_PAGE_SUPER, .pgno = 2, .generation = 7};
    RESET();
    layout_page_seal(p, ps, &h);
    EXPECT_CORRUPT(layout_super_decode(p, ps, 2, &out), &out);
  }
  /* Page header: type, count, flags, aux. */
  {
    static const struct layout_page_hdr bad_hdr[] = {
      {.type = LAYOUT_PAGE_LEAF, .pgno = 0, .generation = 7},
      {.type = LAYOUT_PAGE_FREELIST, .pgno = 0, .generation = 7},
      {.type = LAYOUT_PAGE_SUPER, .count = 1, .pgno = 0, .generation = 7},
      {.type = LAYOUT_PAGE_SUPER, .flags = 1, .pgno = 0, .generation = 7},
      {.type = LAYOUT_PAGE_SUPER, .aux = 0x80000000u, .pgno = 0, .generation = 7},
    };
    for (size_t i = 0; i < sizeof bad_hdr / sizeof bad_hdr[0]; i++) {
      RESET();
      layout_page_seal(p, ps, &bad_hdr[i]);
      EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
    }
  }
  /* Magic. */
  PATCH32(32, LAYOUT_SUPER_MAGIC ^ 1);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH32(32, 0);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  /* Page size field against the file's page size. */
  static const uint32_t bad_ps[] = {0, 2048, 4095, 8192, 65536};
  for (size_t i = 0; i < sizeof bad_ps / sizeof bad_ps[0]; i++) {
    PATCH32(40, bad_ps[i]);
    EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  }
  {
    /* Written with 8 KiB pages, read as 4 KiB: fails (at the checksum). */
    struct layout_super sb8 = super_example(8192);
    uint8_t *p8 = xmalloc(8192);
    layout_super_encode(p8, 8192, 0, &sb8);
    assert_int_equal(layout_super_decode(p8, 8192, 0, &out), JDB_OK);
    EXPECT_CORRUPT(layout_super_decode(p8, 4096, 0, &out), &out);
    EXPECT_CORRUPT(layout_super_decode(p8, 5000, 0, &out), &out);
    free(p8);
  }
  /* Flags. */
  PATCH32(44, 1);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH32(44, 0x80000000u);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  /* Page count: at least the two slots, and above every root. */
  PATCH64(80, 0);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH64(80, 1);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH64(80, 30);   /* freelist root is 30 */
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH64(80, 31);
  assert_int_equal(layout_super_decode(p, ps, 0, &out), JDB_OK);
  /* Each root: == page_count, > page_count, far out, 1 (a superblock slot). */
  static const unsigned root_off[] = {48, 56, 64, 72};
  static const uint64_t bad_roots[] = {1000, 1001, UINT64_MAX, 1};
  for (size_t r = 0; r < 4; r++) {
    for (size_t i = 0; i < sizeof bad_roots / sizeof bad_roots[0]; i++) {
      PATCH64(root_off[r], bad_roots[i]);
      EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
    }
    PATCH64(root_off[r], 999);
    assert_int_equal(layout_super_decode(p, ps, 0, &out), JDB_OK);
    PATCH64(root_off[r], 2);
    assert_int_equal(layout_super_decode(p, ps, 0, &out), JDB_OK);
  }
  /* Shards: id < count (so count >= 1). */
  PATCH32(104, 4);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH32(104, UINT32_MAX);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH32(108, 0);
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH32(108, 1);   /* shard 1 of 1 */
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH32(108, 2);
  assert_int_equal(layout_super_decode(p, ps, 0, &out), JDB_OK);
  /* Replay position: a record position, so 8-byte aligned. */
  PATCH64(96, LOG_POS(2, 801));
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  PATCH64(96, LOG_POS(2, 804));
  EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  /* Any nonzero byte from offset 120 to the end. */
  static const size_t tail[] = {120, 121, 127, 128, 1000, 4094, 4095};
  for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) {
    RESET();
    p[tail[i]] = 0x01;
    page_reseal_cksum(p, ps);
    EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  }
  /* Format version: JDB_EVERSION when everything else is valid, JDB_ECORRUPT otherwise. */
  static const uint32_t other_versions[] = {0, LAYOUT_FORMAT_VERSION + 1, UINT32_MAX};
  for (size_t i = 0; i < sizeof other_versions / sizeof other_versions[0]; i++) {
    PATCH32(36, other_versions[i]);
    memset(&out, 0xA5, sizeof out);
    assert_int_equal(layout_super_decode(p, ps, 0, &out), JDB_EVERSION);
    assert_true(is_zero(&out, sizeof out));
    le32_put(p + 108, 0);   /* ... and a broken shard count as well */
    page_reseal_cksum(p, ps);
    EXPECT_CORRUPT(layout_super_decode(p, ps, 0, &out), &out);
  }
  /* Invalid page size argument: refused before anything is read. */
  RESET();
  EXPECT_CORRUPT(layout_super_decode(p, 131072, 0, &out), &out);
  EXPECT_CORRUPT(layout_super_decode(p, 0, 0, &out), &out);
#undef PATCH32
#undef PATCH64
#undef RESET
  free(p);
  free(good);
}

/* ---------------------------------------------------------------------------------------------
 * Random and mutated inputs
 * ------------------------------------------------------------------------------------------- */
struct mut_stats {
  uint64_t inputs, bytes;
  uint64_t page_ok, page_bad, super_ok, super_bad, super_version;
  uint64_t peek_ok, peek_bad, open_ok, open_bad, rd_ops;
  uint64_t mutants_accepted;   /* changed inputs some decoder accepted (re-encoding checked) */
};

/* Every decoder gets the n bytes at buf (an exact-size allocation). An accepted input must
   re-encode to the same bytes. Returns how many decodes accepted it. */
static int feed_pages(const uint8_t *buf, size_t n, uint64_t want_pgno, struct mut_stats *st)
{
  int accepted = 0;
  size_t sizes[1 + sizeof page_sizes / sizeof page_sizes[0]];
  size_t ns = 0;
  sizes[ns++] = n;   /* mostly an invalid size: rejected without reading */
  for (size_t i = 0; i < sizeof page_sizes / sizeof page_sizes[0]; i++)
    if (page_sizes[i] <= n && page_sizes[i] != n)
      sizes[ns++] = page_sizes[i];
  for (size_t i = 0; i < ns; i++) {
    size_t ps = sizes[i];
    struct layout_page_hdr h;
    int rc = layout_page_open(buf, ps, want_pgno, &h);
    if (rc == JDB_OK) {
      st->page_ok++;
      accepted++;
      uint8_t *again = xmalloc(ps);
      memcpy(again, buf, ps);
      layout_page_seal(again, ps, &h);
      assert_memory_equal(again, buf, ps);
      free(again);
    } else {
      st->page_bad++;
      assert_int_equal(rc, JDB_ECORRUPT);
      assert_true(is_zero(&h, sizeof h));
    }
    for (uint64_t slot = 0; slot < 2; slot++) {
      struct layout_super sb;
      rc = layout_super_decode(buf, ps, slot, &sb);
      if (rc == JDB_OK) {
        st->super_ok++;
        accepted++;
        uint8_t *again = xmalloc(ps);
        layout_super_encode(again, ps, slot, &sb);
        assert_memory_equal(again, buf, ps);
        free(again);
      } else {
        assert_true(rc == JDB_ECORRUPT || rc == JDB_EVERSION);
        if (rc == JDB_EVERSION)
          st->super_version++;
        else
          st->super_bad++;
        assert_true(is_zero(&sb, sizeof sb));
      }
    }
  }
  return accepted;
}

static int feed_rec(const uint8_t *buf, size_t avail, uint64_t want_pos, struct mut_stats *st)
{
  int accepted = 0;
  struct layout_rec_hdr h;
  int rc = layout_rec_peek(buf, avail, want_pos, &h);
  if (rc == JDB_OK) {
    st->peek_ok++;
    assert_true(h.len >= LOG_REC_HDR_SIZE && h.len <= LOG_REC_LEN_MAX);
    assert_true(h.pos == want_pos && h.durable_pos <= h.pos);
    if (h.len <= avail) {
      /* The header re-encodes to the same 28 bytes (the checksum is open's business). */
      uint8_t *again = xmalloc(layout_rec_padded(h.len));
      memcpy(again + 32, buf + 32, h.len - 32);
      layout_rec_seal(again, &h);
      assert_memory_equal(again + 4, buf + 4, LOG_REC_HDR_SIZE - 4);
      free(again);
    }
  } else {
    st->peek_bad++;
    assert_int_equal(rc, JDB_ECORRUPT);
    assert_true(is_zero(&h, sizeof h));
  }
  int rc2 = layout_rec_open(buf, avail, want_pos, &h);
  if (rc2 == JDB_OK) {
    st->open_ok++;
    accepted++;
    assert_int_equal(rc, JDB_OK);
    assert_true(h.len <= avail);
    uint8_t *again = xmalloc(layout_rec_padded(h.len));
    memcpy(again + 32, buf + 32, h.len - 32);
    layout_rec_seal(again, &h);
    assert_memory_equal(again, buf, h.len);
    free(again);
  } else {
    st->open_bad++;
    assert_int_equal(rc2, JDB_ECORRUPT);
    assert_true(is_zero(&h, sizeof h));
  }
  return accepted;
}

/* A random walk of codec_rd reads over an exact-size buffer, checking the reader's contract. */
static void feed_codec(struct tutil_rng *r, const uint8_t *buf, size_t n, struct mut_stats *st)
{
  struct codec_rd rd;
  codec_rd_init(&rd, buf, n);
  int ops = 1 + (int)tutil_rng_below(r, 24);
  for (int i = 0; i < ops; i++) {
    size_t off0 = rd.off;
    int err0 = rd.err;
    size_t want = 0;
    uint64_t v = 0, expect = 0;
    const uint8_t *q = NULL;
    unsigned op = (unsigned)tutil_rng_below(r, 6);
    switch (op) {
    case 0: v = codec_rd_u8(&rd); want = 1; if (!rd.err) expect = buf[off0]; break;
    case 1: v = codec_rd_u16(&rd); want = 2; if (!rd.err) expect = le16_get(buf + off0); break;
    case 2: v = codec_rd_u32(&rd); want = 4; if (!rd.err) expect = le32_get(buf + off0); break;
    case 3: v = codec_rd_u64(&rd); want = 8; if (!rd.err) expect = le64_get(buf + off0); break;
    case 4: v = codec_rd_varint(&rd); break;
    default:
      want = (size_t)tutil_rng_below(r, 20);
      q = codec_rd_bytes(&rd, want);
      break;
    }
    st->rd_ops++;
    assert_true(rd.off <= rd.len);
    if (err0) {   /* sticky: nothing moves, zero / NULL comes back */
      assert_int_equal(rd.err, JDB_ECORRUPT);
      assert_true(rd.off == off0);
      assert_true(v == 0 && q == NULL);
      continue;
    }
    if (rd.err) {
      assert_int_equal(rd.err, JDB_ECORRUPT);
      assert_true(v == 0 && q == NULL);
      if (op != 4)
        assert_true(rd.off == off0 && want > n - off0);
      continue;
    }
    if (op == 4) {
      size_t used = rd.off - off0;
      assert_true(used >= 1 && used <= VARINT_MAX);
      assert_true(varint_len(v) <= used);
      assert_true((buf[rd.off - 1] & 0x80) == 0);
      /* Canonical encodings round-trip byte for byte. */
      if (used == varint_len(v)) {
        uint8_t enc[VARINT_MAX];
        assert_int_equal(varint_put(enc, v), used);
        assert_memory_equal(enc, buf + off0, used);
      }
    } else if (op == 5) {
      assert_true(rd.off == off0 + want && q == buf + off0);
    } else {
      assert_true(rd.off == off0 + want && v == expect);
    }
  }
}

static size_t pick_page_size(struct tutil_rng *r)
{
  uint64_t x = tutil_rng_below(r, 64);
  if (x == 0)
    return 65536;
  if (x < 3)
    return 16384;
  if (x < 7)
    return 8192;
  return 4096;
}

/* Mutate a copy of orig[0..on): bit flips, truncation, extension or byte overwrites, biased to
   the first `hot` bytes (the header) half the time. Returns a new exact-size buffer. */
static uint8_t *mutate(struct tutil_rng *r, const uint8_t *orig, size_t on, size_t hot,
                       size_t *nn)
{
  size_t n = on;
  unsigned kind = (unsigned)tutil_rng_below(r, 5);
  if (kind == 1)   /* truncation: anywhere, or by a few bytes (a torn tail) */
    n = tutil_rng_below(r, 2) ? (size_t)tutil_rng_below(r, on)
                              : on - 1 - (size_t)tutil_rng_below(r, on < 16 ? on : 16);
  else if (kind == 2)   /* extension with random bytes */
    n = on + 1 + (size_t)tutil_rng_below(r, 64);
  uint8_t *b = xmalloc(n);
  memcpy(b, orig, n < on ? n : on);
  if (n > on)
    tutil_rng_fill(r, b + on, n - on);
  if (n == 0)
    return *nn = 0, b;
  size_t span = (tutil_rng_below(r, 2) && hot < n) ? hot : n;
  if (kind == 0 || kind == 4) {   /* bit flips (kind 4: flips and overwrites together) */
    int flips = 1 + (int)tutil_rng_below(r, 4);
    for (int i = 0; i < flips; i++) {
      size_t at = (size_t)tutil_rng_below(r, span);
      b[at] ^= (uint8_t)(1u << tutil_rng_below(r, 8));
    }
  }
  if (kind == 3 || kind == 4) {   /* byte overwrites, often with the extreme values */
    int writes = 1 + (int)tutil_rng_below(r, 8);
    for (int i = 0; i < writes; i++) {
      size_t at = (size_t)tutil_rng_below(r, span);
      uint64_t x = tutil_rng_below(r, 4);
      b[at] = x == 0 ? 0 : x == 1 ? 0xff : (uint8_t)tutil_rng_next(r);
    }
  }
  *nn = n;
  return b;
}

static void random_and_mutated_inputs(void **state)
{
  (void)state;
  uint64_t total = 100000;
  const char *e = getenv("LAYOUT_TEST_INPUTS");
  if (e && *e)
    total = strtoull(e, NULL, 0);
  struct tutil_rng *r = &test_rng;
  struct mut_stats st;
  memset(&st, 0, sizeof st);
  uint64_t t0 = clock_mono_ns();

  for (uint64_t it = 0; it < total; it++) {
    unsigned cat = (unsigned)(it % 4);
    uint8_t *orig = NULL, *b = NULL;
    size_t on = 0, n = 0;
    uint64_t want_pgno = 0, want_pos = 0;

    if (cat == 0) {
      /* Random bytes, mostly short, sometimes page-sized. */
      uint64_t x = tutil_rng_below(r, 16);
      n = x < 12 ? (size_t)tutil_rng_below(r, 200) : x < 15 ? (size_t)tutil_rng_below(r, 5000)
                                                            : pick_page_size(r);
      b = xmalloc(n);
      tutil_rng_fill(r, b, n);
      /* Give the identity checks a chance: take the wanted pgno / pos from the bytes. */
      want_pgno = (n >= 24 && tutil_rng_below(r, 2)) ? le64_get(b + 16) : tutil_rng_below(r, 4);
      want_pos = (n >= 24 && tutil_rng_below(r, 2)) ? le64_get(b + 16) : tutil_rng_next(r);
      if (n >= 32 && tutil_rng_below(r, 4) == 0) {   /* plausible record header, fixed cksum */
        uint32_t len = LOG_REC_HDR_SIZE + (uint32_t)tutil_rng_below(r, n - LOG_REC_HDR_SIZE + 1);
        le32_put(b + 4, len);
        b[8] = (uint8_t)(1 + tutil_rng_below(r, LOG_REC_TYPE_MAX));
        memset(b + 10, 0, 6);
        le64_put(b + 24, tutil_rng_below(r, 2) ? 0 : le64_get(b + 24));
        want_pos = le64_get(b + 16);
        rec_reseal_cksum(b, len);
      }
    } else if (cat == 1) {
      size_t ps = pick_page_size(r);
      struct layout_page_hdr h = rand_page_hdr(r, ps);
      orig = page_new(r, ps, &h);
      on = ps;
      b = mutate(r, orig, on, 64, &n);
      if (n >= ps && tutil_rng_below(r, 2))
        page_reseal_cksum(b, ps);
      want_pgno = tutil_rng_below(r, 4) ? h.pgno : tutil_rng_next(r);
      want_pos = (n >= 24) ? le64_get(b + 16) : 0;
    } else if (cat == 2) {
      uint32_t len = LOG_REC_HDR_SIZE + (uint32_t)(tutil_rng_below(r, 8)
                                                       ? tutil_rng_below(r, 300)
                                                       : tutil_rng_below(r, 5000));
      struct layout_rec_hdr h = rand_rec_hdr(r, len);
      orig = rec_new(r, &h);
      on = tutil_rng_below(r, 2) ? layout_rec_padded(len) : len;
      b = mutate(r, orig, on, 40, &n);
      if (n >= 8 && tutil_rng_below(r, 2)) {
        uint32_t l = le32_get(b + 4);
        if (l >= 8 && l <= n)
          rec_reseal_cksum(b, l);
      }
      want_pos = tutil_rng_below(r, 8) ? h.pos : tutil_rng_next(r);
      want_pgno = (n >= 24) ? le64_get(b + 16) : 0;
    } else {
      size_t ps = pick_page_size(r);
      struct layout_super sb = rand_super(r, ps);
      uint64_t slot = tutil_rng_below(r, 2);
      orig = xmalloc(ps);
      layout_super_encode(orig, ps, slot, &sb);
      on = ps;
      b = mutate(r, orig, on, 136, &n);
      if (n >= ps && tutil_rng_below(r, 2))
        page_reseal_cksum(b, ps);
      want_pgno = slot;
      want_pos = (n >= 24) ? le64_get(b + 16) : 0;
    }
    st.inputs++;
    st.bytes += n;

    int accepted = feed_pages(b, n, want_pgno, &st);
    /* Records and the codec see a random prefix, copied to its own exact-size allocation. */
    size_t avail = tutil_rng_below(r, 2) ? n : (size_t)tutil_rng_below(r, n + 1);
    uint8_t *view = xmalloc(avail);
    memcpy(view, b, avail);
    accepted += feed_rec(view, avail, want_pos, &st);
    feed_codec(r, view, avail, &st);
    free(view);

    if (orig && accepted && !(n == on && memcmp(b, orig, n) == 0))
      st.mutants_accepted++;
    free(b);
    free(orig);
  }

  double secs = (double)(clock_mono_ns() - t0) / 1e9;
  print_message("[ layout ] %llu inputs (%.1f MB) in %.2f s: page ok/bad %llu/%llu, super "
                "ok/bad/version %llu/%llu/%llu, peek ok/bad %llu/%llu, open ok/bad %llu/%llu, "
                "codec reads %llu, changed inputs accepted %llu\n",
                (unsigned long long)st.inputs, (double)st.bytes / 1e6, secs,
                (unsigned long long)st.page_ok, (unsigned long long)st.page_bad,
                (unsigned long long)st.super_ok, (unsigned long long)st.super_bad,
                (unsigned long long)st.super_version, (unsigned long long)st.peek_ok,
                (unsigned long long)st.peek_bad, (unsigned long long)st.open_ok,
                (unsigned long long)st.open_bad, (unsigned long long)st.rd_ops,
                (unsigned long long)st.mutants_accepted);
  /* The run must have reached the deep checks, not just bounced off the checksums. */
  if (total >= 10000) {
    assert_true(st.page_ok > 100);
    assert_true(st.super_ok > 100);
    assert_true(st.open_ok > 100);
    assert_true(st.super_version > 0);
  }
}

int main(void)
{
  tutil_init();
  tutil_rng_init(&test_rng, tutil_seed());
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(crc32c_known_vectors),
    cmocka_unit_test(crc32c_hw_equals_sw),
    cmocka_unit_test(xxh3_32_and_cksum),
    cmocka_unit_test(page_round_trip),
    cmocka_unit_test(page_rejects_each_check),
    cmocka_unit_test(rec_round_trip),
    cmocka_unit_test(rec_rejects_each_check),
    cmocka_unit_test(super_round_trip),
    cmocka_unit_test(super_rejects_each_check),
    cmocka_unit_test(random_and_mutated_inputs),
  };
  return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
