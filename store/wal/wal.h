/*
 * wal.h - the shard log: write-ahead log and value log in one (WiscKey: each value byte is
 * written once, here). Segmented, append-only, replayable; group commit.
 *
 * One struct wal per shard, used from the shard's thread only. Waiting (wal_wait) parks the
 * calling fiber, or blocks when called outside a fiber.
 *
 * Files: <dir>/NNNNNNNN.log (decimal segment number), each prepared before use so that it reads
 * as zeros, then synced: written full of zeros (so an fdatasync never has to convert unwritten
 * extents, which would also commit the file-system journal), or, where syncs are rare, only
 * allocated (wal_opts.zero_fill). A segment starts with a SEG record and, when the
 * writer moves on, ends with an END record (a PAD record with WAL_PAD_END set); the next segment
 * is created only after the END is durable. Record framing: infra/layout (docs/FORMAT.md).
 *
 * Durability levels (wal_wait):
 *   WAL_WRITTEN  the record's bytes were handed to the kernel by a completed write(): into the
 *                page cache (buffered descriptor) or to the device (O_DIRECT, for flushes of at
 *                least direct_min bytes). They survive a crash of the process (kill -9), not of
 *                the machine. No fdatasync per record: waiters in one reactor iteration share a
 *                write.
 *   WAL_DURABLE  an fdatasync that started after the write completed has completed: the record
 *                and every record before it survive power loss. Group commit: while a write +
 *                fdatasync is in flight, new durable waiters queue and the next flush covers all
 *                of them with one write and one fdatasync.
 * Small flushes go through the page cache because the WRITTEN level must not wait for the
 * device; large ones with O_DIRECT, because their copy into the page cache costs more than the
 * device's time (docs/DESIGN.md §6).
 *
 * Replay: wal_replay yields every record from a position on, in order, each verified (checksum,
 * identity), and stops at the first record that fails: what it yields is always a prefix of what
 * was written. A failing record that lies below a later record's durable_pos was acknowledged as
 * durable: that is corruption (JDB_ECORRUPT), not a torn tail. A torn tail is cut off (the
 * garbage after it zeroed and synced, so no stale record there can ever be replayed) and the
 * writer continues at the cut.
 *
 * Errors: a failed write or fdatasync poisons the log: every waiter and every later append gets
 * JDB_EIO (or JDB_ENOSPC) until the wal is closed and reopened (recovery decides what survived).
 */
#ifndef JDB_WAL_H
#define JDB_WAL_H

#include "layout.h"

#include <stddef.h>
#include <stdint.h>

struct fs_ctx;
struct fs_file;
struct wal;

struct wal_opts {
  uint64_t segment_bytes;   /* default 64 MiB; rounded up to 1 MiB; at least 1 MiB. A record
                               too large for an empty segment gets a segment sized to fit. */
  uint32_t inline_max;      /* values longer than this get a value reference (default 256) */
  uint32_t direct_min;      /* a flush of at least this many new bytes is written with O_DIRECT
                               (whole blocks; default 128 KiB); smaller ones go through the page
                               cache. UINT32_MAX: never direct (also when the file system
                               refuses O_DIRECT) */
  int read_only;            /* open and replay write nothing: no log directory made, no torn
                               tail cut, no segment synced, created or removed; appends, syncs
                               and segment drops give JDB_EREADONLY */
  int zero_fill;            /* how a new segment is prepared: WAL_ZERO_AUTO (default), _ALWAYS,
                               _NEVER (see "Segment preparation" below) */
};
enum { WAL_ZERO_AUTO = 0, WAL_ZERO_ALWAYS = 1, WAL_ZERO_NEVER = 2 };
/* WAL_ZERO_AUTO zero-fills the next segment when the log has made at least this many
   fdatasyncs since the previous segment began (or since open, or when nothing is known yet:
   the segment a new or replayed log starts with); otherwise it only reserves the space. */
#define WAL_ZERO_SYNCS 64u

/* Op kinds in a batch. */
enum { WAL_OP_PUT = 1, WAL_OP_DEL = 2 };
/* Durability levels. */
enum { WAL_WRITTEN = 1, WAL_DURABLE = 2 };
/* PAD record flags. */
enum { WAL_PAD_END = 1 };

/* A value stored out of line: len bytes at log position pos + 4, preceded at pos by their
   layout_cksum (u32 LE). len == 0 means "no reference" (inline value or delete). */
struct wal_vref {
  uint64_t pos;
  uint32_t len;
};

struct wal_op {
  uint8_t kind;             /* WAL_OP_PUT / WAL_OP_DEL */
  const void *key;
  uint32_t klen;            /* 1 .. WAL_KEY_MAX */
  const void *val;          /* PUT only */
  uint32_t vlen;            /* 0 .. WAL_VAL_MAX */
};
#define WAL_KEY_MAX 1040u   /* the engine logs space byte ‖ user key (1 + 1024); slack for later spaces */
#define WAL_VAL_MAX (64u << 20)

/* Open the log directory (created if missing). Lists segments; writes nothing. wal_replay must
   run once before the first append. JDB_OK, JDB_EINVAL, JDB_ENOMEM, JDB_EIO. */
int wal_open(struct fs_ctx *ctx, const char *dir, const struct wal_opts *opts, struct wal **out);
/* Waits for the flush in flight (appends queued behind it may be written by that wait), closes
   files, frees. Appends never flushed are dropped: only waited-for positions are promised. */
void wal_close(struct wal *w);

/* A record as replay yields it. payload/len are valid during the callback only. */
struct wal_rec {
  uint64_t pos;             /* the record's log position */
  uint64_t end;             /* position just after it (next record) */
  uint8_t type;             /* LOG_REC_BATCH or LOG_REC_MOVE (SEG and PAD stay inside wal) */
  uint8_t flags;
  const uint8_t *payload;
  uint32_t len;
};
/* Return 0 to go on, non-zero (returned by wal_replay) to stop. */
typedef int (*wal_replay_fn)(void *ud, const struct wal_rec *rec);

/* Replay every record from from_pos (0 = the start of the oldest segment; once log GC has dropped
   segments, pass the checkpoint's replay position instead) in order, then make
   the log ready for appends at the end of what was replayed. Stops at the first record that
   fails validation (torn tail: cut, zeroed, synced) unless a later record's durable_pos says it
   was durable (JDB_ECORRUPT, logged with file and offset; nothing is changed on disk). Segments
   after the end of the history are removed. *end_pos (may be NULL) receives the position where
   appends continue. Returns JDB_OK, JDB_ECORRUPT, JDB_EIO, or the callback's non-zero value. */
int wal_replay(struct wal *w, uint64_t from_pos, wal_replay_fn fn, void *ud, uint64_t *end_pos);

/* Decoding a BATCH record's payload (untrusted bytes: every field is checked). */
struct wal_batch {
  uint64_t table_id, seq, ts_sec;
  uint32_t nops;
  /* cursor */
  struct codec_rd rd;
  uint64_t rec_pos;
  uint32_t payload_off;     /* offset of payload[0] within the record */
  uint32_t next_op;
};
struct wal_op_view {
  uint8_t kind;
  const uint8_t *key;
  uint32_t klen;
  const uint8_t *val;       /* inline value, or the out-of-line bytes (checksum verified) */
  uint32_t vlen;
  struct wal_vref vref;     /* len > 0 when the value is out of line */
};
int wal_batch_open(const struct wal_rec *rec, struct wal_batch *b);     /* JDB_ECORRUPT */
/* Next op: JDB_OK, JDB_NOTFOUND after the last, JDB_ECORRUPT. */
int wal_batch_next(struct wal_batch *b, struct wal_op_view *op);

/* Append one batch as one record (atomic on replay: all ops or none). Values longer than
   inline_max are stored out of line and vrefs[i] (if vrefs is not NULL; nops entries) receives
   their reference, else vrefs[i].len = 0. Only buffers: nothing is written until a flush.
   It may wait (a fiber parks; outside fibers the thread polls the ctx): for a roll to the next
   segment, and, while a flush is in flight, when 1 MiB of new bytes are already buffered; other
   fibers' appends then queue behind it, in call order. Outside fibers, appends must not meet a
   fiber's wait in progress (one thread either appends from fibers or not at all).
   *end (may be NULL) receives the position after the record, to pass to wal_wait.
   JDB_OK, JDB_EINVAL (bad op, nops == 0, sizes), JDB_ENOMEM, or the poison error. */
int wal_append(struct wal *w, uint64_t table_id, uint64_t seq, uint64_t ts_sec,
               const struct wal_op *ops, uint32_t nops, struct wal_vref *vrefs, uint64_t *end);

/* Append one record of another layer's type (store/vlog: LOG_REC_MOVE) with the given payload.
   *pos receives the record's position (its payload starts at pos + LOG_REC_HDR_SIZE), *end the
   position after it. Same rules as wal_append. Replay yields these records too. */
int wal_append_record(struct wal *w, uint8_t type, const void *payload, uint32_t len,
                      uint64_t *pos, uint64_t *end);

/* Start writing what is buffered, if no flush is in flight: one write, plus a linked fdatasync
   when a durable waiter (or wal_sync) wants one. Never blocks. The reactor calls it once per loop
   iteration; wal_wait calls it too. Returns JDB_OK or the poison error.
   Streaming: a large direct flush started while nobody waits writes whole blocks only; while it
   is in flight, each wal_flush (and each of its completions) hands the whole blocks appended
   since to it as one more write, so a writer that never waits keeps the device busy without a
   pause between flushes. A waiter (wal_wait) ends the stream: the flush completes, and the next
   one writes the rest. Appends wait (append_stalls) when a flush is in flight and the buffer
   holds 1 MiB of new bytes. */
int wal_flush(struct wal *w);
/* Wait until everything before `end` has reached `level`. JDB_OK or the poison error. */
int wal_wait(struct wal *w, uint64_t end, int level);
/* Everything appended so far durable (wal_wait on the append position, WAL_DURABLE). */
int wal_sync(struct wal *w);

/* Positions: next append, written (kernel has it), durable (fdatasync completed). */
uint64_t wal_append_pos(const struct wal *w);
uint64_t wal_written_pos(const struct wal *w);
uint64_t wal_durable_pos(const struct wal *w);

/* Read len bytes at log position pos (bytes still in the append buffers are served from memory).
   Bounds-checked against the segment's size: JDB_ECORRUPT for a range outside it. For store/vlog. */
int wal_read(struct wal *w, uint64_t pos, void *dst, uint32_t len);
/* Segments that exist, oldest first: fills up to cap numbers, returns the count (may exceed cap;
   segs may be NULL with cap 0 to get the count). */
size_t wal_segments(const struct wal *w, uint32_t *segs, size_t cap);
/* Remove a whole segment older than the one being written (log GC / checkpoint release).
   JDB_EINVAL for the current segment or later. The file is kept as a spare for reuse. */
int wal_segment_drop(struct wal *w, uint32_t seg);

/* A read window over one segment file, for parsing records in order outside the log's own
   state (replay; tab_verify reads every record of every segment through one). f is borrowed;
   set f and size (the file's size), the rest zero. */
struct wal_win {
  struct fs_file *f;
  uint64_t size;
  uint8_t *buf;
  size_t cap;
  uint64_t base;            /* file offset of buf[0] */
  size_t len;               /* valid bytes in buf */
};
/* Make [off, off + n) readable at *p, reading 1 MiB or more when the window does not hold it;
   *avail is what the file has from off (less than n only at its end; 0 and *p NULL past it).
   JDB_OK, JDB_ENOMEM, or the read's error. */
int wal_win_get(struct fs_ctx *ctx, struct wal_win *wn, uint64_t off, size_t n,
                const uint8_t **p, size_t *avail);
void wal_win_free(struct wal_win *wn);   /* the buffer; f stays the caller's */

struct wal_stats {
  uint64_t records, bytes_appended;
  uint64_t writes, syncs, bytes_written;
  uint64_t writes_direct;   /* of writes: with O_DIRECT */
  uint64_t segments_created, segments_reused;
  uint64_t bytes_prepared;  /* zeros written to prepare segments (not in bytes_written) */
  uint64_t segments_allocated;  /* of segments_created: space reserved, not zero-filled */
  uint64_t stream_pieces;   /* direct writes of whole blocks added to a flush in flight while
                               nobody waited (wal_flush: streaming) */
  uint64_t append_stalls;   /* appends that waited for a flush: the buffer was full */
};
void wal_stats_get(const struct wal *w, struct wal_stats *out);

#endif
