/*
 * fs_uring.c - the io_uring backend (liburing).
 *
 * queue() preps one SQE per op in the SQ ring and enters the kernel once submit_batch of them
 * are waiting (default 4, see below); submit() hands over whatever is left in one
 * io_uring_submit; reap() takes completions in batches
 * of up to 64 CQEs, advances the CQ once per batch, and only then reports them (so the generic
 * layer's retries may prep new SQEs freely). Chains are IOSQE_IO_LINK chains; a chain is never
 * split across two submissions (queue() submits first when the SQ lacks room for all of it).
 *
 * Registered buffers (fs_ctx_register_buffers, or fs_ctx_reserve_buffers and fs_ctx_set_buffer slot
 * by slot): ops with fixed_buf use READ_FIXED/WRITE_FIXED.
 * Registered files: unless opts.plain_fds is set, and when the kernel allows it, a sparse table of
 * URING_FILES_MAX slots is registered at create and each opened file takes a slot
 * (IOSQE_FIXED_FILE saves the per-op fget/fput). Files beyond the table use plain fds.
 *
 * Invariants: every SQE carries its op as user_data; ring->inflight counts SQEs prepped and not
 * yet reaped; destroy happens only with nothing in flight (fs_ctx_destroy drains first).
 */
#include "fs_int.h"

#include "err.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>

#define URING_FILES_MAX 1024
#define URING_REAP_BATCH 64
/* Measured (docs/DESIGN.md §6): with 32 reads in flight, handing all 32 to the kernel in one
   io_uring_enter makes the virtual disk serve them as one wave that completes together, and the
   waves persist (−15..20% IOPS against fio); entering every 4 SQEs keeps arrivals staggered and
   matches fio. */
#define URING_SUBMIT_BATCH_DEF 4
#define URING_DEPTH_MIN 64      /* FS_CHAIN_MAX: a chain is never split, so the SQ must hold one */

struct uring_ctx {
  struct fs_ctx base;
  struct io_uring ring;
  unsigned depth;
  size_t inflight;              /* SQEs prepped, CQE not yet reaped */
  unsigned unsubmitted;         /* SQEs prepped since the last io_uring_submit */
  unsigned submit_batch;        /* enter the kernel once this many SQEs are queued */
  struct fs_op_list stash;      /* completions moved off a full CQ ring by queue() and inline
                                   buffered writes (uring_queue_inline), reported
                                   by the next reap */
  int files_registered;
  int bufs_registered;
  int notify_registered;        /* an eventfd is registered (fs_ctx_set_notify_fd) */
  uint8_t slot_used[URING_FILES_MAX];
};

static int uring_submit_now(struct uring_ctx *u)
{
  if (!u->unsubmitted)
    return JDB_OK;
  for (;;) {
    int r = io_uring_submit(&u->ring);
    if (r >= 0) {
      u->unsubmitted -= (unsigned)r < u->unsubmitted ? (unsigned)r : u->unsubmitted;
      u->base.metrics.submits++;
      if (!u->unsubmitted)
        return JDB_OK;
      continue;
    }
    if (r == -EINTR)
      continue;
    if (r == -EAGAIN || r == -EBUSY) {
      /* The kernel wants completions reaped first; the caller's next poll does that. */
      return JDB_OK;
    }
    LOG_ERROR("io_uring_submit: %s", strerror(-r));
    return err_from_errno(r);
  }
}

static unsigned uring_chain_len_from(const struct fs_op *op)
{
  unsigned n = 1;
  while ((op->flags & FS_OP_F_LINK) && op->chain_next) {
    op = op->chain_next;
    n++;
  }
  return n;
}

/* Take every CQE off the ring now, keeping (op, result) for the next reap. */
static void uring_stash_cqes(struct uring_ctx *u)
{
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&u->ring, head, cqe) {
    struct fs_op *op = io_uring_cqe_get_data(cqe);
    op->result = cqe->res;
    fs_op_list_push(&u->stash, op);
    n++;
  }
  io_uring_cq_advance(&u->ring, n);
  u->inflight -= n;
}

/* Buffered writes (files without O_DIRECT: the log) are done with pwrite right here instead of
   through the ring. Such a write is a copy into the page cache, a few microseconds, but the ring
   hands it to an io-wq worker thread (ext4 cannot take buffered writes without blocking), and
   the hand-off plus the wake-ups cost three context switches per write: a single jdb_put took
   10.4 us at p50 against 3.1 us with the psync backend (docs/DESIGN.md §6). Syncs, reads and
   direct writes still go through the ring. The completion is reported by the next reap, and a
   chain behaves as with IOSQE_IO_LINK: when the write is short or fails, the op linked after it
   completes with -ECANCELED. */
static int uring_queue_inline(struct uring_ctx *u, struct fs_op *op, int starts_chain)
{
  struct fs_op *prev = op->chain_prev;
  if (!starts_chain && prev && (prev->flags & FS_OP_F_INLINE)) {
    /* linked after an inline write: that write already completed */
    if (prev->result < 0 || (uint32_t)prev->result < fs_op_cur_len(prev)) {
      op->state = FS_OP_INFLIGHT;
      op->result = -ECANCELED;
      fs_op_list_push(&u->stash, op);
      return 1;
    }
    return 0;   /* the sync goes to the ring, now that its predecessor is done */
  }
  if (op->opcode != FS_OP_WRITE || op->file->direct || !starts_chain)
    return 0;
  int res;
  do
    res = fs_posix_exec(op);
  while (res == -EINTR);
  op->flags |= FS_OP_F_INLINE;
  op->state = FS_OP_INFLIGHT;
  op->result = res;
  fs_op_list_push(&u->stash, op);
  return 1;
}

static void uring_queue(struct fs_ctx *ctx, struct fs_op *op)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  /* A chain starts here when no linked predecessor is being queued with it. */
  int starts_chain = !op->chain_prev || op->chain_prev->state != FS_OP_INFLIGHT ||
                     !(op->chain_prev->flags & FS_OP_F_LINK);
  op->flags &= (uint16_t)~FS_OP_F_INLINE;
  if (uring_queue_inline(u, op, starts_chain))
    return;
  if (op->chain_prev && (op->chain_prev->flags & FS_OP_F_INLINE))
    starts_chain = 1;   /* its predecessor is not in the ring: nothing to link to */
  if (starts_chain) {
    unsigned need = uring_chain_len_from(op);
    JDB_ASSERT(need <= u->depth);
    if (io_uring_sq_space_left(&u->ring) < need)
      uring_submit_now(u);
  }
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  while (!sqe) {
    uring_submit_now(u);
    sqe = io_uring_get_sqe(&u->ring);
    if (sqe)
      break;
    /* The kernel takes no more submissions until completions are consumed (-EBUSY under CQ
       pressure): wait for some and move them aside; reap() reports them. */
    struct io_uring_cqe *cqe;
    if (io_uring_wait_cqe(&u->ring, &cqe) == 0)
      uring_stash_cqes(u);
    sqe = io_uring_get_sqe(&u->ring);
  }
  struct fs_file *f = op->file;
  int fd = f->fixed_index >= 0 ? f->fixed_index : f->fd;
  switch (op->opcode) {
  case FS_OP_READ:
    if (op->fixed_buf)
      io_uring_prep_read_fixed(sqe, fd, fs_op_cur_buf(op), fs_op_cur_len(op), fs_op_cur_off(op),
                               op->fixed_buf - 1);
    else
      io_uring_prep_read(sqe, fd, fs_op_cur_buf(op), fs_op_cur_len(op), fs_op_cur_off(op));
    break;
  case FS_OP_WRITE:
    if (op->fixed_buf)
      io_uring_prep_write_fixed(sqe, fd, fs_op_cur_buf(op), fs_op_cur_len(op),
                                fs_op_cur_off(op), op->fixed_buf - 1);
    else
      io_uring_prep_write(sqe, fd, fs_op_cur_buf(op), fs_op_cur_len(op), fs_op_cur_off(op));
    break;
  case FS_OP_FDATASYNC:
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    break;
  case FS_OP_FSYNC:
    io_uring_prep_fsync(sqe, fd, 0);
    break;
  default:
    JDB_ASSERT(!"bad opcode");
  }
  if (f->fixed_index >= 0)
    sqe->flags |= IOSQE_FIXED_FILE;
  if (op->flags & FS_OP_F_LINK)
    sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data(sqe, op);
  op->state = FS_OP_INFLIGHT;
  u->inflight++;
  u->unsubmitted++;
  /* Enter the kernel every submit_batch SQEs instead of once per flush; never inside a chain
     (a link must not span two submissions). */
  if (u->unsubmitted >= u->submit_batch && !(op->flags & FS_OP_F_LINK))
    uring_submit_now(u);
}

static int uring_submit(struct fs_ctx *ctx)
{
  return uring_submit_now((struct uring_ctx *)ctx);
}

static int uring_reap(struct fs_ctx *ctx, int wait)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  struct io_uring_cqe *cqes[URING_REAP_BATCH];
  struct fs_op *ops[URING_REAP_BATCH];
  int res[URING_REAP_BATCH];
  int total = fs_op_finish_all(ctx, fs_op_list_take(&u->stash));
  if (wait && !total && u->inflight > 0 && io_uring_cq_ready(&u->ring) == 0) {
    for (;;) {
      struct io_uring_cqe *cqe;
      int submitting = u->unsubmitted > 0;
      int r = submitting ? io_uring_submit_and_wait(&u->ring, 1)
                         : io_uring_wait_cqe(&u->ring, &cqe);
      if (r >= 0) {
        if (submitting) {
          u->unsubmitted = 0;
          ctx->metrics.submits++;
        }
        break;
      }
      if (r == -EINTR)
        continue;
      if (r == -EBUSY || r == -EAGAIN)
        break;   /* CQ pressure: completions are waiting to be reaped below */
      LOG_ERROR("io_uring wait: %s", strerror(-r));
      return err_from_errno(r);
    }
  }
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_REAP_BATCH);
    if (!n)
      break;
    for (unsigned i = 0; i < n; i++) {
      ops[i] = io_uring_cqe_get_data(cqes[i]);
      res[i] = cqes[i]->res;
    }
    io_uring_cq_advance(&u->ring, n);
    u->inflight -= n;
    ctx->metrics.reaps++;
    for (unsigned i = 0; i < n; i++)
      fs_op_finish(ctx, ops[i], res[i]);
    total += (int)n;
    if (n < URING_REAP_BATCH)
      break;
  }
  return total;
}

static int uring_open(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  int rc = fs_posix_open(ctx, path, flags, out);
  if (rc || !u->files_registered)
    return rc;
  for (int i = 0; i < URING_FILES_MAX; i++) {
    if (u->slot_used[i])
      continue;
    int fd = (*out)->fd;
    if (io_uring_register_files_update(&u->ring, (unsigned)i, &fd, 1) == 1) {
      u->slot_used[i] = 1;
      (*out)->fixed_index = i;
    }
    break;
  }
  return JDB_OK;
}

static int uring_close(struct fs_ctx *ctx, struct fs_file *f)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  if (f->fixed_index >= 0) {
    int none = -1;
    io_uring_register_files_update(&u->ring, (unsigned)f->fixed_index, &none, 1);
    u->slot_used[f->fixed_index] = 0;
    f->fixed_index = -1;
  }
  return fs_posix_close(ctx, f);
}

static int uring_register_buffers(struct fs_ctx *ctx, const struct iovec *iov, unsigned n)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  if (u->bufs_registered) {
    io_uring_unregister_buffers(&u->ring);
    u->bufs_registered = 0;
  }
  if (!n)
    return JDB_OK;
  int r = io_uring_register_buffers(&u->ring, iov, n);
  if (r < 0) {
    LOG_WARN("io_uring_register_buffers (%u buffers): %s", n, strerror(-r));
    return r == -ENOMEM ? JDB_ENOMEM : JDB_ENOTSUP;
  }
  u->bufs_registered = 1;
  return JDB_OK;
}

static int uring_reserve_buffers(struct fs_ctx *ctx, unsigned n)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  if (u->bufs_registered) {
    io_uring_unregister_buffers(&u->ring);
    u->bufs_registered = 0;
  }
  int r = io_uring_register_buffers_sparse(&u->ring, n);
  if (r < 0) {
    LOG_DEBUG("io_uring_register_buffers_sparse (%u slots): %s", n, strerror(-r));
    return r == -ENOMEM ? JDB_ENOMEM : JDB_ENOTSUP;
  }
  u->bufs_registered = 1;
  return JDB_OK;
}

static int uring_set_buffer(struct fs_ctx *ctx, unsigned i, const struct iovec *iov)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  __u64 tag = 0;
  int r = io_uring_register_buffers_update_tag(&u->ring, i, iov, &tag, 1);
  if (r == 1)
    return JDB_OK;
  if (r >= 0)
    r = -EIO;
  LOG_DEBUG("io_uring_register_buffers_update_tag (slot %u, %zu bytes): %s", i, iov->iov_len,
            strerror(-r));
  return r == -ENOMEM ? JDB_ENOMEM : r == -EFAULT || r == -EINVAL ? JDB_EINVAL : JDB_ENOTSUP;
}

static int uring_set_notify_fd(struct fs_ctx *ctx, int fd)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  if (u->notify_registered) {
    io_uring_unregister_eventfd(&u->ring);
    u->notify_registered = 0;
  }
  if (fd < 0)
    return JDB_OK;
  int r = io_uring_register_eventfd(&u->ring, fd);
  if (r < 0) {
    LOG_WARN("io_uring_register_eventfd: %s", strerror(-r));
    return r == -ENOMEM ? JDB_ENOMEM : r == -EBADF || r == -EINVAL ? JDB_EINVAL : JDB_ENOTSUP;
  }
  u->notify_registered = 1;
  return JDB_OK;
}

static void uring_destroy(struct fs_ctx *ctx)
{
  struct uring_ctx *u = (struct uring_ctx *)ctx;
  JDB_ASSERT(u->inflight == 0);
  io_uring_queue_exit(&u->ring);
  mem_free(u);
}

static const struct fs_backend uring_backend = {
  .struct_size = sizeof(struct fs_backend),
  .name = "uring",
  .destroy = uring_destroy,
  .queue = uring_queue,
  .submit = uring_submit,
  .reap = uring_reap,
  .open = uring_open,
  .close = uring_close,
  .size = fs_posix_size,
  .allocate = fs_posix_allocate,
  .truncate = fs_posix_truncate,
  .mkdir = fs_posix_mkdir,
  .unlink = fs_posix_unlink,
  .rename = fs_posix_rename,
  .dir_sync = fs_posix_dir_sync,
  .register_buffers = uring_register_buffers,
  .reserve_buffers = uring_reserve_buffers,
  .set_buffer = uring_set_buffer,
  .set_notify_fd = uring_set_notify_fd,
};

int fs_uring_create(const struct fs_ctx_opts *opts, struct fs_ctx **out)
{
  struct uring_ctx *u = mem_calloc(1, sizeof *u);
  if (!u)
    return JDB_ENOMEM;
  fs_ctx_init_base(&u->base, &uring_backend);
  u->depth = opts->queue_depth < URING_DEPTH_MIN ? URING_DEPTH_MIN : opts->queue_depth;
  u->submit_batch = opts->submit_batch ? opts->submit_batch : URING_SUBMIT_BATCH_DEF;
  /* The ring is only ever entered from its owner thread; tell the kernel so where it can use
     it, and fall back to plain setup on kernels that reject the flags. */
  /* Setup flags, most wanted first; kernels that reject a set get the next one.
     SINGLE_ISSUER: only the owner thread enters the ring. COOP_TASKRUN: a completion does not
     interrupt the thread with an IPI; it is posted at the thread's next kernel entry, which for
     a reactor is its next submit or wait anyway. TASKRUN_FLAG: the kernel flags such pending
     completions in the SQ ring, and a non-waiting reap (liburing's peek) then enters the kernel
     to post them; without it a reactor that keeps running fibers and polling with fs_poll(ctx,
     0), making no system call, sees a completion only at the next timer tick (measured here:
     0.2 .. 8 ms late instead of ~25 us). */
  static const unsigned setups[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
  };
  struct io_uring_params p;
  int r = -EINVAL;
  for (size_t i = 0; i < sizeof setups / sizeof setups[0] && r == -EINVAL; i++) {
    memset(&p, 0, sizeof p);
    p.flags = setups[i];
    r = io_uring_queue_init_params(u->depth, &u->ring, &p);
  }
  if (r < 0) {
    mem_free(u);
    LOG_INFO("io_uring_queue_init: %s", strerror(-r));
    return r == -ENOMEM ? JDB_ENOMEM : JDB_ENOTSUP;
  }
  if (!opts->plain_fds &&
      io_uring_register_files_sparse(&u->ring, URING_FILES_MAX) == 0)
    u->files_registered = 1;
  *out = &u->base;
  return JDB_OK;
}
