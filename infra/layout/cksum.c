/*
 * cksum.c - the checksums of the on-disk formats: layout_cksum (pages, log records) and the two
 * candidates it is chosen from, CRC32C and the low 32 bits of XXH3-64.
 *
 * layout_cksum is what every page header (layout.h, "Page header", offset 0) and every log
 * record frame (layout.h, "Log record frame", offset 0) stores. It is a one-line switch below
 * (CKSUM_IMPL); changing it changes the on-disk format, so it goes with a LAYOUT_FORMAT_VERSION
 * bump. bench/bench_cksum.c measures the candidates.
 *
 * CRC32C is the standard Castagnoli CRC (polynomial 0x1EDC6F41, reflected as 0x82F63B78, initial
 * value ~0, final xor ~0; "123456789" gives 0xE3069283). Two implementations give identical
 * results (tests compare them):
 *   - layout_crc32c_sw: portable slice-by-8, eight 256-entry tables.
 *   - the SSE4.2 path of layout_crc32c (x86-64 only, chosen at run time with
 *     __builtin_cpu_supports, compiled with a target attribute so the build needs no -msse4.2).
 *     The crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle, so long
 *     inputs are cut into three equal blocks whose CRCs run interleaved; the three are then
 *     combined: crc(A || B) = shift(crc(A), |B|) ^ crc0(B), where crc0 starts from a zero
 *     register and shift() multiplies the register by x^(8|B|) modulo the polynomial. shift() is
 *     four table lookups per fixed block size (Mark Adler's crc32c.c scheme), so only two block
 *     sizes exist: CKSUM_LONG and CKSUM_SHORT, both powers of two.
 *
 * Invariants: the tables are built once (pthread_once) before any use and never written again;
 * every function reads exactly n bytes from p and nothing else; p may be NULL when n == 0.
 */
#include "layout.h"

#include <pthread.h>
#include <string.h>
#include <xxhash.h>
#if defined(__x86_64__)
/* libxxhash's run-time dispatch (AVX2 / AVX-512 when the CPU has them; the plain XXH3_64bits
   entry point of Debian's build is SSE2): the same hash, 2-3x faster on long inputs. */
#define XXH_DISPATCH_DISABLE_REPLACE 1
#include <xxh_x86dispatch.h>
#define CKSUM_XXH3_64 XXH3_64bits_dispatch
#else
#define CKSUM_XXH3_64 XXH3_64bits
#endif

/* -DCKSUM_HAVE_SSE42=0 builds the portable version only (what non-x86 hosts get). */
#ifndef CKSUM_HAVE_SSE42
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CKSUM_HAVE_SSE42 1
#else
#define CKSUM_HAVE_SSE42 0
#endif
#endif
#if CKSUM_HAVE_SSE42
#include <nmmintrin.h>
#endif

/* The one-line switch: layout_crc32c or layout_xxh3_32 (see bench/bench_cksum.c). */
#define CKSUM_IMPL layout_xxh3_32

#define CKSUM_POLY 0x82F63B78u   /* CRC-32C (Castagnoli), reflected */
#define CKSUM_LONG 4096u         /* bytes per stream in the 3-way loop for big inputs */
#define CKSUM_SHORT 256u         /* bytes per stream in the 3-way loop for the rest */

_Static_assert((CKSUM_LONG & (CKSUM_LONG - 1)) == 0, "CKSUM_LONG must be a power of two");
_Static_assert((CKSUM_SHORT & (CKSUM_SHORT - 1)) == 0, "CKSUM_SHORT must be a power of two");
_Static_assert(CKSUM_SHORT % 8 == 0 && CKSUM_LONG % CKSUM_SHORT == 0, "block sizes");

static pthread_once_t cksum_once = PTHREAD_ONCE_INIT;
static uint32_t cksum_sw_tab[8][256];     /* slice-by-8: [k][b] = CRC of b followed by k zeros */
#if CKSUM_HAVE_SSE42
static uint32_t cksum_long_tab[4][256];   /* register shift by CKSUM_LONG zero bytes */
static uint32_t cksum_short_tab[4][256];  /* register shift by CKSUM_SHORT zero bytes */
static int cksum_hw;                      /* 1 if the CPU has SSE4.2 */
#endif

#if CKSUM_HAVE_SSE42
/* ---------------------------------------------------------------------------------------------
 * Shift tables for the 3-way SSE4.2 path. A "zeros operator" is the 32x32 GF(2) matrix that
 * advances a CRC register over a run of zero bytes; row i is the image of bit i.
 * ------------------------------------------------------------------------------------------- */
static uint32_t cksum_gf2_times(const uint32_t *mat, uint32_t vec)
{
  uint32_t sum = 0;
  for (; vec; vec >>= 1, mat++)
    if (vec & 1)
      sum ^= *mat;
  return sum;
}

static void cksum_gf2_square(uint32_t *square, const uint32_t *mat)
{
  for (int i = 0; i < 32; i++)
    square[i] = cksum_gf2_times(mat, mat[i]);
}

/* op := the operator for len zero bytes; len is a power of two >= 1. */
static void cksum_zeros_op(uint32_t op[32], size_t len)
{
  uint32_t odd[32];
  uint32_t even[32];
  /* One zero bit: shift right, folding the polynomial in when bit 0 falls off. */
  odd[0] = CKSUM_POLY;
  for (int i = 1; i < 32; i++)
    odd[i] = 1u << (i - 1);
  cksum_gf2_square(even, odd);   /* 2 bits */
  cksum_gf2_square(odd, even);   /* 4 bits */
  cksum_gf2_square(even, odd);   /* 8 bits = 1 byte */
  for (size_t n = 1; n < len; n <<= 1) {
    cksum_gf2_square(odd, even);
    memcpy(even, odd, sizeof even);
  }
  memcpy(op, even, sizeof even);
}

static void cksum_zeros_tab(uint32_t tab[4][256], size_t len)
{
  uint32_t op[32];
  cksum_zeros_op(op, len);
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 0; k < 4; k++)
      tab[k][b] = cksum_gf2_times(op, b << (8 * k));
}

static inline uint32_t cksum_shift(uint32_t tab[4][256], uint32_t crc)
{
  return tab[0][crc & 0xff] ^ tab[1][(crc >> 8) & 0xff] ^ tab[2][(crc >> 16) & 0xff] ^
         tab[3][crc >> 24];
}
#endif

static void cksum_init(void)
{
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++)
      c = (c >> 1) ^ (CKSUM_POLY & (0u - (c & 1)));
    cksum_sw_tab[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 1; k < 8; k++) {
      uint32_t c = cksum_sw_tab[k - 1][b];
      cksum_sw_tab[k][b] = (c >> 8) ^ cksum_sw_tab[0][c & 0xff];
    }
#if CKSUM_HAVE_SSE42
  cksum_zeros_tab(cksum_long_tab, CKSUM_LONG);
  cksum_zeros_tab(cksum_short_tab, CKSUM_SHORT);
  __builtin_cpu_init();
  cksum_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Portable CRC32C: slice-by-8 on the raw register (no pre/post inversion here).
 * ------------------------------------------------------------------------------------------- */
static uint32_t cksum_crc32c_sw_reg(uint32_t crc, const uint8_t *b, size_t n)
{
  uint32_t(*t)[256] = cksum_sw_tab;
  while (n >= 8) {
    uint32_t lo = le32_get(b) ^ crc;
    uint32_t hi = le32_get(b + 4);
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    b += 8;
    n -= 8;
  }
  while (n--)
    crc = (crc >> 8) ^ t[0][(crc ^ *b++) & 0xff];
  return crc;
}

uint32_t layout_crc32c_sw(const void *p, size_t n)
{
  pthread_once(&cksum_once, cksum_init);
  return ~cksum_crc32c_sw_reg(~0u, p, n);
}

/* ---------------------------------------------------------------------------------------------
 * SSE4.2 CRC32C on the raw register, three interleaved streams per block.
 * ------------------------------------------------------------------------------------------- */
#if CKSUM_HAVE_SSE42
static inline uint64_t cksum_ld64(const uint8_t *b)
{
  uint64_t v;
  memcpy(&v, b, 8);   /* x86-64 is little-endian and allows unaligned loads */
  return v;
}

__attribute__((target("sse4.2")))
static uint32_t cksum_crc32c_hw_reg(uint32_t crc, const uint8_t *b, size_t n)
{
  uint64_t c0 = crc;
  while (n >= 3 * CKSUM_LONG) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < CKSUM_LONG; i += 8) {
      c0 = _mm_crc32_u64(c0, cksum_ld64(b + i));
      c1 = _mm_crc32_u64(c1, cksum_ld64(b + CKSUM_LONG + i));
      c2 = _mm_crc32_u64(c2, cksum_ld64(b + 2 * CKSUM_LONG + i));
    }
    c0 = cksum_shift(cksum_long_tab, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = cksum_shift(cksum_long_tab, (uint32_t)c0) ^ (uint32_t)c2;
    b += 3 * CKSUM_LONG;
    n -= 3 * CKSUM_LONG;
  }
  while (n >= 3 * CKSUM_SHORT) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < CKSUM_SHORT; i += 8) {
      c0 = _mm_crc32_u64(c0, cksum_ld64(b + i));
      c1 = _mm_crc32_u64(c1, cksum_ld64(b + CKSUM_SHORT + i));
      c2 = _mm_crc32_u64(c2, cksum_ld64(b + 2 * CKSUM_SHORT + i));
    }
    c0 = cksum_shift(cksum_short_tab, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = cksum_shift(cksum_short_tab, (uint32_t)c0) ^ (uint32_t)c2;
    b += 3 * CKSUM_SHORT;
    n -= 3 * CKSUM_SHORT;
  }
  while (n >= 8) {
    c0 = _mm_crc32_u64(c0, cksum_ld64(b));
    b += 8;
    n -= 8;
  }
  /* At most 7 bytes left: 4 + 2 + 1, one instruction each. */
  uint32_t c = (uint32_t)c0;
  if (n & 4) {
    uint32_t v;
    memcpy(&v, b, 4);
    c = _mm_crc32_u32(c, v);
    b += 4;
  }
  if (n & 2) {
    uint16_t v;
    memcpy(&v, b, 2);
    c = _mm_crc32_u16(c, v);
    b += 2;
  }
  if (n & 1)
    c = _mm_crc32_u8(c, *b);
  return c;
}
#endif

uint32_t layout_crc32c(const void *p, size_t n)
{
  pthread_once(&cksum_once, cksum_init);
#if CKSUM_HAVE_SSE42
  if (cksum_hw)
    return ~cksum_crc32c_hw_reg(~0u, p, n);
#endif
  return ~cksum_crc32c_sw_reg(~0u, p, n);
}

/* ---------------------------------------------------------------------------------------------
 * XXH3 and the switch.
 * ------------------------------------------------------------------------------------------- */
uint32_t layout_xxh3_32(const void *p, size_t n)
{
  return (uint32_t)CKSUM_XXH3_64(p, n);
}

uint32_t layout_cksum(const void *p, size_t n)
{
  return CKSUM_IMPL(p, n);
}
