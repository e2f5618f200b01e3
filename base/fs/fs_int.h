/*
 * fs_int.h - what the I/O backends share with the generic layer (fs.c): the context and file
 * structs and the backend vtable. Only base/fs includes it.
 *
 * Division of work: the generic layer validates ops, keeps the in-flight count, resubmits short
 * transfers and EAGAIN/EINTR (fs_op_finish), emulates nothing else, and runs callbacks from
 * fs_poll. A backend only moves bytes: queue() accepts an op for its remaining range
 * (buf + moved_bytes, len_bytes - moved_bytes, offset_bytes + moved_bytes), submit() hands the
 * queued ops to the kernel, reap() reports each completion with fs_op_finish(). Chains: an op
 * with FS_OP_F_LINK makes the next op of its chain start only after it completed whole; if it
 * fails or is short, the rest of the chain completes with -ECANCELED (io_uring's IOSQE_IO_LINK
 * semantics; psync emulates them).
 */
#ifndef JDB_FS_INT_H
#define JDB_FS_INT_H

#include "fs.h"

/* A FIFO of ops linked through op->next (an op is on at most one such list at a time). */
struct fs_op_list {
  struct fs_op *head, *tail;
};
static inline void fs_op_list_push(struct fs_op_list *l, struct fs_op *op)
{
  op->next = NULL;
  if (l->tail)
    l->tail->next = op;
  else
    l->head = op;
  l->tail = op;
}
static inline struct fs_op *fs_op_list_take(struct fs_op_list *l)
{
  struct fs_op *h = l->head;
  l->head = l->tail = NULL;
  return h;
}

struct fs_backend {
  uint32_t struct_size;            /* sizeof(struct fs_backend) the backend was built with */
  const char *name;
  void (*destroy)(struct fs_ctx *ctx);
  void (*queue)(struct fs_ctx *ctx, struct fs_op *op);
  int (*submit)(struct fs_ctx *ctx);                 /* JDB_OK or JDB_E* */
  /* Report completions with fs_op_finish; returns how many, or JDB_E*. wait = 1: first submit
     anything queued (in the same system call where the backend can) and block until at least
     one completion is there. */
  int (*reap)(struct fs_ctx *ctx, int wait);
  int (*open)(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out);
  int (*close)(struct fs_ctx *ctx, struct fs_file *f);
  int (*size)(struct fs_ctx *ctx, struct fs_file *f, uint64_t *size);
  int (*allocate)(struct fs_ctx *ctx, struct fs_file *f, uint64_t off, uint64_t len);
  int (*truncate)(struct fs_ctx *ctx, struct fs_file *f, uint64_t size);
  int (*mkdir)(struct fs_ctx *ctx, const char *path);
  int (*unlink)(struct fs_ctx *ctx, const char *path);
  int (*rename)(struct fs_ctx *ctx, const char *from, const char *to);
  int (*dir_sync)(struct fs_ctx *ctx, const char *dir);
  /* optional (NULL: buffers are accepted and ignored) */
  int (*register_buffers)(struct fs_ctx *ctx, const struct iovec *iov, unsigned n);
  /* optional, both or neither (NULL: slots are accepted and ignored): n empty slots, replacing
     any earlier set; then fill empty slot i */
  int (*reserve_buffers)(struct fs_ctx *ctx, unsigned n);
  int (*set_buffer)(struct fs_ctx *ctx, unsigned i, const struct iovec *iov);
  /* optional (NULL: completions happen inside fs_flush, nothing to signal) */
  int (*set_notify_fd)(struct fs_ctx *ctx, int fd);
};

struct fs_ctx {
  const struct fs_backend *be;
  unsigned nbufs;                  /* registered buffers: [buf_lo[i], buf_hi[i]); 0, 0: empty */
  uintptr_t *buf_lo, *buf_hi;
  size_t accepted;                 /* ops accepted by fs_submit and not yet DONE */
  size_t reaped;                   /* of those, REAPED and waiting in the done queue */
  struct fs_op_list done;          /* REAPED ops, callbacks not yet run */
  struct fs_metrics metrics;
  int direct_fallback_logged;      /* log_once flag for the O_DIRECT fallback */
};

struct fs_file {
  int fd;
  unsigned flags;                  /* FS_O_* it was opened with */
  int direct;                      /* O_DIRECT in effect */
  int fixed_index;                 /* uring: registered file slot, or -1 */
  char *path;
  void *backend_priv;              /* faulty: the inner file */
};

/* Generic layer, called by backends. */
void fs_ctx_init_base(struct fs_ctx *ctx, const struct fs_backend *be);
/* Report that op's current attempt finished with res (bytes moved, 0, or -errno). Handles
   retries and chains, and moves the op to the done queue when it is final. Safe to call from a
   backend's reap loop (it may queue() again, never runs callbacks). */
void fs_op_finish(struct fs_ctx *ctx, struct fs_op *op, int res);
/* Report every op of a list taken with fs_op_list_take, each with the result stored in its
   op->result, through fs_op_finish. Returns how many. Backends that learn results before they
   may report them (psync runs ops at submit, faulty injects, uring stashes CQEs) use it. */
int fs_op_finish_all(struct fs_ctx *ctx, struct fs_op *head);
/* Remaining range of a read/write. */
static inline void *fs_op_cur_buf(const struct fs_op *op) { return (uint8_t *)op->buf + op->moved_bytes; }
static inline uint32_t fs_op_cur_len(const struct fs_op *op) { return op->len_bytes - op->moved_bytes; }
static inline uint64_t fs_op_cur_off(const struct fs_op *op) { return op->offset_bytes + op->moved_bytes; }

/* POSIX file operations shared by the psync and uring backends (fs_file.c). */
int fs_posix_open(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out);
int fs_posix_close(struct fs_ctx *ctx, struct fs_file *f);
int fs_posix_size(struct fs_ctx *ctx, struct fs_file *f, uint64_t *size);
int fs_posix_allocate(struct fs_ctx *ctx, struct fs_file *f, uint64_t off, uint64_t len);
int fs_posix_truncate(struct fs_ctx *ctx, struct fs_file *f, uint64_t size);
int fs_posix_mkdir(struct fs_ctx *ctx, const char *path);
int fs_posix_unlink(struct fs_ctx *ctx, const char *path);
int fs_posix_rename(struct fs_ctx *ctx, const char *from, const char *to);
int fs_posix_dir_sync(struct fs_ctx *ctx, const char *dir);
/* Run one op's current attempt synchronously with pread/pwrite/fdatasync: bytes or -errno. */
int fs_posix_exec(const struct fs_op *op);

/* Backend constructors. */
int fs_psync_create(struct fs_ctx **out);
int fs_uring_create(const struct fs_ctx_opts *opts, struct fs_ctx **out);

/* Metrics (fs_metrics.c). */
void fs_metrics_record(struct fs_metrics *m, const struct fs_op *op, uint64_t now_ns);

#endif
