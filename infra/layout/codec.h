/*
 * codec.h - explicit little-endian encoders/decoders and a bounds-checked reader.
 *
 * Every on-disk integer goes through these (never a struct cast), so the format is the same on
 * every host. The reader never reads past its end: a read that would returns JDB_ECORRUPT and
 * leaves the reader in an error state that sticks.
 */
#ifndef JDB_CODEC_H
#define JDB_CODEC_H

#include "jdb.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void le16_put(void *p, uint16_t v) { uint8_t *b = p; b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static inline void le32_put(void *p, uint32_t v) { uint8_t *b = p; for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i)); }
static inline void le64_put(void *p, uint64_t v) { uint8_t *b = p; for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t le16_get(const void *p) { const uint8_t *b = p; return (uint16_t)(b[0] | (b[1] << 8)); }
static inline uint32_t le32_get(const void *p) { const uint8_t *b = p; uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | b[i]; return v; }
static inline uint64_t le64_get(const void *p) { const uint8_t *b = p; uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | b[i]; return v; }
/* Big-endian 64-bit, for keys that must sort bytewise (table ids in composite keys). */
static inline void be64_put(void *p, uint64_t v) { uint8_t *b = p; for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (56 - 8 * i)); }
static inline uint64_t be64_get(const void *p) { const uint8_t *b = p; uint64_t v = 0; for (int i = 0; i < 8; i++) v = (v << 8) | b[i]; return v; }

/* Unsigned LEB128 varint: at most 10 bytes for a u64. */
#define VARINT_MAX 10
static inline size_t varint_put(void *p, uint64_t v)
{
  uint8_t *b = p;
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (uint8_t)v;
  return n;
}
static inline size_t varint_len(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) { v >>= 7; n++; }
  return n;
}

/* Bounds-checked sequential reader over untrusted bytes. */
struct codec_rd {
  const uint8_t *p;
  size_t len;
  size_t off;
  int err;   /* 0, or JDB_ECORRUPT once any read went past the end / was malformed */
};

static inline void codec_rd_init(struct codec_rd *r, const void *p, size_t len)
{
  r->p = p; r->len = len; r->off = 0; r->err = 0;
}
static inline int codec_rd_need(struct codec_rd *r, size_t n)
{
  if (r->err || n > r->len - r->off) { r->err = JDB_ECORRUPT; return 0; }
  return 1;
}
static inline uint8_t codec_rd_u8(struct codec_rd *r) { if (!codec_rd_need(r, 1)) return 0; return r->p[r->off++]; }
static inline uint16_t codec_rd_u16(struct codec_rd *r) { if (!codec_rd_need(r, 2)) return 0; uint16_t v = le16_get(r->p + r->off); r->off += 2; return v; }
static inline uint32_t codec_rd_u32(struct codec_rd *r) { if (!codec_rd_need(r, 4)) return 0; uint32_t v = le32_get(r->p + r->off); r->off += 4; return v; }
static inline uint64_t codec_rd_u64(struct codec_rd *r) { if (!codec_rd_need(r, 8)) return 0; uint64_t v = le64_get(r->p + r->off); r->off += 8; return v; }
/* Varint: rejects encodings longer than 10 bytes or overflowing 64 bits. */
static inline uint64_t codec_rd_varint(struct codec_rd *r)
{
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (!codec_rd_need(r, 1)) return 0;
    uint8_t b = r->p[r->off++];
    if (shift == 63 && b > 1) { r->err = JDB_ECORRUPT; return 0; }
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->err = JDB_ECORRUPT;
  return 0;
}
/* Borrow n bytes in place (no copy); NULL on overrun. */
static inline const uint8_t *codec_rd_bytes(struct codec_rd *r, size_t n)
{
  if (!codec_rd_need(r, n)) return NULL;
  const uint8_t *q = r->p + r->off;
  r->off += n;
  return q;
}

#endif
