/*
 * fuzz_btree.c - libFuzzer target for the B+ tree page verifier (bt_page_verify, the check every
 * tree page read from disk goes through) and the page decoders behind it (bt_int.h).
 *
 * Input: byte 0 holds mode bits, the rest is the data.
 *   bit 0      page type: LEAF (0) or BRANCH (1)
 *   bit 1      raw: the data is the page (placed at the start of a zero-filled 4 KiB page held in
 *              an exact-size heap buffer, so ASan catches any read past it; bytes 8..9 are the
 *              count the verifier reads)
 *   bit 1 = 0  structured: a valid page is generated from the data (tests/index/btt_pages.h:
 *              random keys sharing prefixes, versions, all value kinds, built with the tree's
 *              own encoders), then edited by (offset, xor) pairs taken from the data's start,
 *              so the deep checks are reached from the start
 *   bits 2-4   structured: number of edits (0..7)
 *
 * Besides "no crash, no sanitizer report", the target checks the verifier's promise: it returns
 * JDB_OK or JDB_ECORRUPT; an unedited generated page is accepted and decodes to exactly what was
 * encoded; and every page it accepts decodes entry by entry inside the page, in strict order, with
 * lengths and kinds in range, each entry found again by the page's own binary search (traps
 * otherwise).
 *
 *   CC=clang cmake -S . -B build-fuzz -DJDB_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
 *   cmake --build build-fuzz --target fuzz_btree
 *   ./build-fuzz/tests/fuzz/fuzz_btree -max_total_time=30 [corpus-dir]
 */
#include "bt_int.h"
#include "btt_pages.h"
#include "err.h"
#include "jdb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond))         \
      __builtin_trap();  \
  } while (0)

static int fuzz_verify(const uint8_t *page, uint8_t type)
{
  struct layout_page_hdr h = {.type = type, .level = page[7], .count = le16_get(page + 8),
                              .pgno = 77};
  int rc = bt_page_verify(NULL, page, BT_PAGE, &h);
  FUZZ_CHECK(rc == JDB_OK || rc == JDB_ECORRUPT);
  if (rc == JDB_OK)
    FUZZ_CHECK(btt_check_page(page, BT_PAGE, type) == 0);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int quiet;
  if (!quiet) {
    jdb_log_set(NULL, NULL, JDB_LOG_OFF);   /* JDB_CORRUPT would log every rejection */
    quiet = 1;
  }
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  uint8_t type = mode & 1u ? LAYOUT_PAGE_BRANCH : LAYOUT_PAGE_LEAF;
  data++;
  size--;
  uint8_t *page = malloc(BT_PAGE);
  FUZZ_CHECK(page != NULL);
  if (mode & 2u) {
    memset(page, 0, BT_PAGE);
    memcpy(page, data, size < BT_PAGE ? size : BT_PAGE);
    fuzz_verify(page, type);
    free(page);
    return 0;
  }
  unsigned edits = (mode >> 2) & 7u;
  size_t skip = 3u * edits < size ? 3u * edits : size;
  struct btt_src src = {.p = data + skip, .n = size - skip, .x = size};
  static struct btt_items items;
  if (type == LAYOUT_PAGE_LEAF)
    btt_gen_leaf(&src, &items, page);
  else
    btt_gen_branch(&src, &items, page);
  FUZZ_CHECK(fuzz_verify(page, type) == JDB_OK);
  FUZZ_CHECK(btt_check_items(page, type, &items) == 0);
  for (unsigned i = 0; i < edits && 3u * i + 3u <= skip; i++) {
    size_t off = 8u + (((size_t)data[3 * i] | (size_t)data[3 * i + 1] << 8) % (BT_PAGE - 8u));
    page[off] ^= data[3 * i + 2];
  }
  if (edits)
    fuzz_verify(page, type);
  free(page);
  return 0;
}
