/*
 * hash.h - the library's hash: XXH3 (libxxhash). 64-bit for hash tables and routing; the
 * on-disk checksum is layout_cksum() in infra/layout, which is defined on top of it.
 */
#ifndef JDB_HASH_H
#define JDB_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t hash64(const void *p, size_t n);
uint64_t hash64_seed(const void *p, size_t n, uint64_t seed);
/* Mix a 64-bit integer (for integer-keyed tables). */
static inline uint64_t hash_u64(uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

#endif
