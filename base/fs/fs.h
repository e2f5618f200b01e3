/*
 * fs.h - the I/O interface: files plus asynchronous reads, writes and fdatasyncs, behind one
 * versioned backend vtable (the seam SQLite's VFS provides).
 *
 * Backends:
 *   uring   liburing; ops queue into the SQ ring and go to the kernel in small batches (and the
 *           rest at fs_flush()), completions are reaped in batches; write->fdatasync chains are
 *           kernel links.
 *   psync   pread/pwrite/fdatasync; same semantics, ops run at fs_flush() in queue order.
 *   faulty  wraps another backend: counts operations, injects EIO / ENOSPC / short transfers /
 *           misdirected writes at chosen operation numbers or at random, and simulates power loss
 *           (writes not covered by a completed fdatasync are dropped, torn at a 512-byte
 *           boundary, or kept, per a seeded policy). See fs_faulty_*.
 *
 * One struct fs_ctx per thread (per shard). It is not thread-safe: every call on a ctx and on
 * its files' ops comes from the owning thread.
 *
 * An op lives in memory its owner provides (a WAL segment, a page frame); fs never allocates one
 * for the caller. From fs_submit() until the op is DONE the owner must not touch buf, reuse the
 * op or free either. Errors: calls return JDB_OK or a JDB_E* code; only fs_op.result holds a raw
 * -errno (kernel style) and fs_op_error() translates it.
 *
 * Op states (function making the transition):
 *   IDLE --fs_submit--> QUEUED --fs_flush--> INFLIGHT --completion--> DONE
 *   (a short transfer, -EAGAIN or -EINTR goes INFLIGHT -> QUEUED again for the remainder, done by
 *    the generic layer; the caller only ever sees whole transfers or an error)
 *   DONE: op->done(op) runs (from fs_poll, never inside the backend's reap loop) and a fiber
 *   waiting in fs_wait() is woken. The owner may then reuse the op (set state back with
 *   fs_op_reset or by the next fs_op_prep_*).
 */
#ifndef JDB_FS_H
#define JDB_FS_H

#include "jdb.h"

#include <stddef.h>
#include <stdint.h>

struct fs_ctx;
struct fs_file;
struct coro;

enum fs_opcode {
  FS_OP_READ = 1,
  FS_OP_WRITE = 2,
  FS_OP_FDATASYNC = 3,   /* data + metadata needed to read it back (fdatasync) */
  FS_OP_FSYNC = 4,       /* everything (fsync) */
  FS_OP_NOPCODES
};

enum fs_op_state {
  FS_OP_IDLE = 0,
  FS_OP_QUEUED = 1,      /* accepted, not yet handed to the kernel */
  FS_OP_INFLIGHT = 2,    /* handed to the kernel */
  FS_OP_HELD = 3,        /* internal: waits for the rest of its chain to be resubmitted */
  FS_OP_REAPED = 4,      /* internal: complete, its callback not yet run (in the done queue) */
  FS_OP_DONE = 5
};

enum {
  FS_OP_F_LINK = 1u << 0,  /* internal: the next op in the chain starts only if this one
                              completes whole (set by fs_submit_chain) */
  FS_OP_F_RETRY = 1u << 1, /* internal: HELD for a resubmission of its remainder */
  FS_OP_F_INLINE = 1u << 2,/* internal (uring): a buffered write done with pwrite at submit */
};

/* One read, write or sync. Embed it in its owner. */
struct fs_op {
  uint8_t state;           /* enum fs_op_state */
  uint8_t opcode;          /* enum fs_opcode */
  uint16_t flags;          /* FS_OP_F_* (internal) */
  int32_t result;          /* when DONE: bytes moved (the whole length), 0 for syncs, or -errno */
  struct fs_file *file;
  void *buf;               /* lent to the kernel until DONE */
  uint32_t len_bytes;
  uint64_t offset_bytes;
  uint16_t fixed_buf;      /* 1 + index of a buffer registered with fs_ctx_register_buffers
                              that holds [buf, buf + len_bytes); 0 = not registered */
  void (*done)(struct fs_op *op);   /* optional completion callback */
  void *udata;                      /* the owner's, untouched by fs */
  /* Internal to fs; zeroed by the prep helpers. */
  uint32_t moved_bytes;    /* progress of a transfer resubmitted after a short completion */
  uint32_t retries;
  struct coro *waiter;     /* fiber parked in fs_wait */
  struct fs_op *next;      /* intrusive queue link (done queue, backend queues) */
  struct fs_op *chain_next;/* next op of a linked chain */
  struct fs_op *chain_prev;
  void *backend_priv;      /* backend's own per-op pointer (faulty: its shadow op) */
  uint64_t t_submit_ns;    /* metrics */
};

static inline void fs_op_prep_read(struct fs_op *op, struct fs_file *f, void *buf,
                                   uint32_t len, uint64_t off)
{
  *op = (struct fs_op){.opcode = FS_OP_READ, .file = f, .buf = buf, .len_bytes = len,
                       .offset_bytes = off};
}
static inline void fs_op_prep_write(struct fs_op *op, struct fs_file *f, const void *buf,
                                    uint32_t len, uint64_t off)
{
  *op = (struct fs_op){.opcode = FS_OP_WRITE, .file = f, .buf = (void *)buf, .len_bytes = len,
                       .offset_bytes = off};
}
static inline void fs_op_prep_sync(struct fs_op *op, struct fs_file *f, int full_fsync)
{
  *op = (struct fs_op){.opcode = full_fsync ? FS_OP_FSYNC : FS_OP_FDATASYNC, .file = f};
}
/* Translate a DONE op's result: JDB_OK, or the JDB_E* code of its -errno. */
int fs_op_error(const struct fs_op *op);

/* ---------------------------------------------------------------------------------------------
 * Contexts
 * ------------------------------------------------------------------------------------------- */
enum fs_backend_kind { FS_BACKEND_AUTO = 0, FS_BACKEND_URING = 1, FS_BACKEND_PSYNC = 2 };

struct fs_ctx_opts {
  int backend;             /* FS_BACKEND_*; AUTO honours env JDB_IO=psync|uring, else tries
                              io_uring and falls back to psync (logged once) */
  uint32_t queue_depth;    /* io_uring SQ entries (default 256) */
  uint32_t submit_batch;   /* uring: enter the kernel as soon as this many ops are queued
                              (default 4; see docs/DESIGN.md for the measurement). fs_flush
                              submits the rest. */
  int plain_fds;           /* uring: 1 = do not use the registered file table (default 0:
                              use it when the kernel allows) */
};

/* JDB_OK, JDB_ENOMEM, JDB_ENOTSUP (io_uring requested explicitly and unavailable), JDB_EIO. */
int fs_ctx_create(const struct fs_ctx_opts *opts /* NULL = defaults */, struct fs_ctx **out);
/* Drains every op in flight (asserting none is lost), then frees the ctx. Files must be closed. */
void fs_ctx_destroy(struct fs_ctx *ctx);
const char *fs_ctx_backend_name(const struct fs_ctx *ctx);   /* "uring", "psync", "faulty" */

/* Register up to 1024 long-lived buffers (uring: io_uring_register_buffers, so reads and
   writes into them skip per-op page pinning; other backends accept and ignore them). Replaces
   any earlier set; call with n = 0 to drop them. Ops name one with op->fixed_buf = index + 1.
   JDB_OK, JDB_EINVAL, JDB_ENOMEM (locked-memory limit), JDB_ENOTSUP (kernel refuses). */
struct iovec;
int fs_ctx_register_buffers(struct fs_ctx *ctx, const struct iovec *iov, unsigned n);
/* Register n (up to 1024) empty buffer slots, to be filled one at a time by fs_ctx_set_buffer
   as the memory they will hold comes into use (uring: io_uring_register_buffers_sparse, kernel
   5.19; registering pins, and so commits, the memory). Replaces any earlier set, like
   fs_ctx_register_buffers (no op may be in flight). An op naming an empty slot is refused with
   JDB_EINVAL, like one outside its buffer. JDB_OK, JDB_EINVAL, JDB_ENOMEM, JDB_ENOTSUP. */
int fs_ctx_reserve_buffers(struct fs_ctx *ctx, unsigned n);
/* Fill empty slot i (uring: io_uring_register_buffers_update_tag). Allowed with ops in flight:
   none of them can name an empty slot. JDB_OK, JDB_EINVAL (no such slot, slot filled, bad iov),
   JDB_ENOMEM (locked-memory limit), JDB_ENOTSUP. */
int fs_ctx_set_buffer(struct fs_ctx *ctx, unsigned i, const struct iovec *iov);

/* Signal completions on fd (an eventfd): from now on each completion the backend learns of
   asynchronously adds to fd's counter, so a reactor can sleep on fd (with its own wake-ups) and
   still learn of finished I/O; it then calls fs_poll(ctx, 0). fd < 0 removes it. uring:
   io_uring_register_eventfd (a later call replaces the fd). psync: JDB_OK and nothing (its ops
   complete inside fs_flush, on the calling thread). faulty: forwarded to the inner ctx. The fd is
   borrowed: it must stay open until it is removed or the ctx destroyed. JDB_OK, JDB_EINVAL,
   JDB_ENOTSUP (kernel refuses), JDB_ENOMEM. */
int fs_ctx_set_notify_fd(struct fs_ctx *ctx, int fd);

/* Accept an op (state IDLE or DONE) for the next fs_flush. Validates it: a known opcode, a
   file, for reads/writes a buffer and 0 < len; with O_DIRECT files, buffer, length and offset
   aligned to the file's alignment. On a bad op returns JDB_EINVAL and the op stays untouched.
   Never blocks. */
int fs_submit(struct fs_ctx *ctx, struct fs_op *op);
/* Accept n ops as a chain: op i+1 starts only after op i completed whole; if op i fails, the
   rest complete with -ECANCELED. The usual chain is write -> fdatasync. */
int fs_submit_chain(struct fs_ctx *ctx, struct fs_op **ops, size_t n);
/* Hand every queued op to the kernel (uring: one io_uring_submit; psync: run them). Returns
   JDB_OK or JDB_E* if the backend itself failed (queued ops then complete with the error). */
int fs_flush(struct fs_ctx *ctx);
/* Reap completions, then run done callbacks and wake waiting fibers. wait = 1: when no op is
   DONE yet, submit whatever is queued (uring: io_uring_submit_and_wait, one system call) and
   block until at least one op completes. Returns the number of ops that became DONE. */
int fs_poll(struct fs_ctx *ctx, int wait);
/* Ops accepted and not yet DONE. */
size_t fs_inflight(const struct fs_ctx *ctx);

/* Wait for one op to be DONE and return fs_op_error(op). Inside a fiber: parks the fiber (the
   loop running fibers must call fs_flush/fs_poll; see fs_loop_run). Outside any fiber: flushes
   and polls this ctx until the op is DONE. The op must have been submitted. */
int fs_wait(struct fs_ctx *ctx, struct fs_op *op);

/* Blocking conveniences for tools and tests: submit one op, wait, return JDB_OK or JDB_E*.
   A read that reaches end of file returns JDB_OK with *got < len (got may be NULL). */
int fs_read(struct fs_ctx *ctx, struct fs_file *f, void *buf, uint32_t len, uint64_t off,
            uint32_t *got);
int fs_write(struct fs_ctx *ctx, struct fs_file *f, const void *buf, uint32_t len, uint64_t off);
int fs_sync(struct fs_ctx *ctx, struct fs_file *f);           /* fdatasync */
/* write then fdatasync, as one linked chain. */
int fs_write_sync(struct fs_ctx *ctx, struct fs_file *f, const void *buf, uint32_t len,
                  uint64_t off);

/* Run a scheduler's fibers to completion over this ctx's I/O: run ready fibers, one flush, reap
   (blocking when no fiber is ready), repeat while any fiber lives. The small reactor used by
   tools and tests; the runtime's reactor adds its request rings to the same steps. */
struct coro_sched;
int fs_loop_run(struct fs_ctx *ctx, struct coro_sched *sched);

/* ---------------------------------------------------------------------------------------------
 * Files. Synchronous (metadata is rare and the kernel would block anyway).
 * ------------------------------------------------------------------------------------------- */
enum {
  FS_O_CREATE = 1u << 0,   /* create if missing (then fsync the parent directory) */
  FS_O_EXCL = 1u << 1,     /* with CREATE: fail with JDB_EEXIST if it exists */
  FS_O_RDONLY = 1u << 2,
  FS_O_DIRECT = 1u << 3,   /* O_DIRECT; on file systems that refuse it, buffered I/O (logged
                              once per ctx) unless FS_O_DIRECT_STRICT */
  FS_O_DIRECT_STRICT = 1u << 4,  /* with DIRECT: refuse (JDB_ENOTSUP) rather than fall back */
};
int fs_file_open(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out);
int fs_file_close(struct fs_ctx *ctx, struct fs_file *f);     /* ops on it must be DONE */
int fs_file_size(struct fs_ctx *ctx, struct fs_file *f, uint64_t *size);
/* Reserve [off, off+len) (fallocate mode 0; JDB_ENOSPC when the disk is full). */
int fs_file_allocate(struct fs_ctx *ctx, struct fs_file *f, uint64_t off, uint64_t len);
int fs_file_truncate(struct fs_ctx *ctx, struct fs_file *f, uint64_t size);
int fs_file_is_direct(const struct fs_file *f);          /* 1 when O_DIRECT is in effect */
uint32_t fs_file_align(const struct fs_file *f);         /* 4096 when direct, else 1 */
const char *fs_file_path(const struct fs_file *f);
int fs_file_fd(const struct fs_file *f);                 /* for tests and diagnostics */

/* Directory operations; each one that changes a directory fsyncs it before returning. */
int fs_mkdir(struct fs_ctx *ctx, const char *path);              /* JDB_OK if it exists */
int fs_unlink(struct fs_ctx *ctx, const char *path);             /* JDB_NOTFOUND if missing */
int fs_rename(struct fs_ctx *ctx, const char *from, const char *to);
int fs_dir_sync(struct fs_ctx *ctx, const char *dir);

/* ---------------------------------------------------------------------------------------------
 * Metrics, per ctx: operation counts, bytes, and a latency histogram per opcode (power-of-two
 * buckets of nanoseconds, submit to completion).
 * ------------------------------------------------------------------------------------------- */
#define FS_HIST_BUCKETS 40
struct fs_op_metrics {
  uint64_t ops;
  uint64_t bytes;
  uint64_t errors;
  uint64_t retries;                   /* short transfers / EAGAIN resubmissions */
  uint64_t hist[FS_HIST_BUCKETS];     /* bucket b counts latencies in [2^b, 2^(b+1)) ns */
};
struct fs_metrics {
  struct fs_op_metrics op[FS_OP_NOPCODES];
  uint64_t submits;                   /* fs_flush calls that handed ops to the kernel */
  uint64_t reaps;                     /* backend reap calls that found completions */
};
void fs_metrics_get(const struct fs_ctx *ctx, struct fs_metrics *out);
void fs_metrics_reset(struct fs_ctx *ctx);
/* Latency quantile (0 < q < 1) of an opcode, in ns, interpolated inside its bucket. */
uint64_t fs_metrics_quantile_ns(const struct fs_metrics *m, int opcode, double q);

/* ---------------------------------------------------------------------------------------------
 * Faulty backend (tests and crash simulation). Wraps `inner`, which it takes ownership of.
 * ------------------------------------------------------------------------------------------- */
enum fs_fault_kind {
  FS_FAULT_EIO = 1,        /* op completes with -EIO (file ops return JDB_EIO) */
  FS_FAULT_ENOSPC = 2,     /* op completes with -ENOSPC */
  FS_FAULT_SHORT = 3,      /* read/write moves only part of its bytes (the generic layer
                              resubmits the rest; the caller still sees a whole transfer) */
  FS_FAULT_MISDIRECT = 4,  /* write lands at offset + misdirect_delta instead */
  FS_FAULT_CRASH = 5,      /* simulated power loss when this op is issued: fs_faulty_crash()
                              runs with the rule's crash policy and every later op fails -EIO */
};
enum fs_fault_target {       /* which operations a rule counts and matches (a bit mask) */
  FS_FT_READ = 1u << 0, FS_FT_WRITE = 1u << 1, FS_FT_SYNC = 1u << 2,
  FS_FT_OPEN = 1u << 3, FS_FT_ALLOCATE = 1u << 4, FS_FT_TRUNCATE = 1u << 5,
  FS_FT_DIROP = 1u << 6,     /* mkdir, unlink, rename, dir sync */
  FS_FT_DATA = (1u << 0) | (1u << 1) | (1u << 2),
  FS_FT_ALL = 0x7f
};
enum fs_crash_policy {
  FS_CRASH_DROP = 1,       /* every unsynced write is lost */
  FS_CRASH_KEEP = 2,       /* every unsynced write survives (a process crash) */
  FS_CRASH_TEAR = 3,       /* every unsynced write keeps a random prefix of its 512 B sectors */
  FS_CRASH_RANDOM = 4,     /* per write, at random: lost, kept, or random sectors kept */
};
struct fs_fault_rule {
  unsigned kind;           /* enum fs_fault_kind */
  unsigned targets;        /* FS_FT_* mask; 0 = FS_FT_ALL */
  uint64_t at;             /* fire on the at-th matching op (1-based) ... */
  uint64_t count;          /* ... and the count-1 after it (0 means 1) */
  double probability;      /* if at == 0: fire on each matching op with this probability */
  int64_t misdirect_delta; /* MISDIRECT: byte delta (default 4096 when 0) */
  unsigned crash_policy;   /* CRASH: enum fs_crash_policy */
};
/* Wrap inner (owned from now on, destroyed with the faulty ctx). seed drives every random
   choice, so a failing run repeats with the same seed. */
int fs_faulty_create(struct fs_ctx *inner, uint64_t seed, struct fs_ctx **out);
/* Add a rule (up to 16). Rules are checked in order; the first that fires decides. */
int fs_faulty_add_rule(struct fs_ctx *ctx, const struct fs_fault_rule *rule);
void fs_faulty_clear_rules(struct fs_ctx *ctx);
/* Operations seen so far that match `targets` (to plan "fail at the n-th" sweeps). Every
   attempt counts: a transfer resubmitted after a short completion is a new operation. */
uint64_t fs_faulty_count(const struct fs_ctx *ctx, unsigned targets);
/* Simulated power loss now: waits for ops in flight, then applies `policy` to every write not
   covered by a completed fdatasync of its file, restoring the bytes it overwrote (newest first;
   a kept sector is never rolled back by an older dropped write). Afterwards every op and file
   call on this ctx fails with -EIO / JDB_EIO until fs_faulty_revive(). Returns the number of
   writes that were dropped or torn. */
uint64_t fs_faulty_crash(struct fs_ctx *ctx, unsigned policy);
/* After a crash: accept calls again (the caller reopens its files, as after a reboot). */
void fs_faulty_revive(struct fs_ctx *ctx);
/* Writes issued and not yet covered by a completed fdatasync (for tests). */
uint64_t fs_faulty_unsynced(const struct fs_ctx *ctx);

#endif
