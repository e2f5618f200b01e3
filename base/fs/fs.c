/*
 * fs.c - the generic half of the I/O interface: op validation, the in-flight count, retries of
 * short transfers and EAGAIN/EINTR, chain bookkeeping, the done queue and its callbacks, waiting
 * (fiber or blocking), backend selection, and the public wrappers over the backend vtable.
 *
 * Invariants:
 *   - ctx->accepted counts ops in QUEUED, INFLIGHT, HELD or REAPED; ctx->reaped those in REAPED
 *     (linked through op->next in the done queue). Both return to 0 before fs_ctx_destroy.
 *   - An op reaches REAPED only through fs_op_finish with a final result, and DONE only in
 *     fs_poll, just before its callback runs; so a DONE op is in no queue and can be reused.
 *   - A chain is resubmitted only when none of its ops is QUEUED or INFLIGHT (every CQE of the
 *     previous attempt has arrived), so a buffer is never lent to the kernel twice.
 */
#include "fs_int.h"

#include "clock.h"
#include "coro.h"
#include "err.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define FS_RETRY_MAX 64        /* zero-byte writes / EAGAIN loops before giving up with -EIO */
#define FS_CHAIN_MAX 64

void fs_ctx_init_base(struct fs_ctx *ctx, const struct fs_backend *be)
{
  memset(ctx, 0, sizeof *ctx);
  ctx->be = be;
}

int fs_op_error(const struct fs_op *op)
{
  return op->result < 0 ? err_from_errno(op->result) : JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */

static int fs_op_validate(const struct fs_op *op)
{
  if (!op || !op->file)
    return JDB_EINVAL;
  if (op->state != FS_OP_IDLE && op->state != FS_OP_DONE)
    return JDB_EINVAL;
  switch (op->opcode) {
  case FS_OP_READ:
  case FS_OP_WRITE: {
    if (!op->buf || op->len_bytes == 0 || op->len_bytes > (1u << 30))
      return JDB_EINVAL;
    if (op->opcode == FS_OP_WRITE && (op->file->flags & FS_O_RDONLY))
      return JDB_EINVAL;
    uint32_t a = fs_file_align(op->file);
    if (a > 1 && (((uintptr_t)op->buf % a) || (op->len_bytes % a) || (op->offset_bytes % a)))
      return JDB_EINVAL;
    if (op->offset_bytes > (UINT64_MAX >> 2))
      return JDB_EINVAL;
    return JDB_OK;
  }
  case FS_OP_FDATASYNC:
  case FS_OP_FSYNC:
    return JDB_OK;
  default:
    return JDB_EINVAL;
  }
}

static void fs_op_accept(struct fs_ctx *ctx, struct fs_op *op, uint64_t now)
{
  op->state = FS_OP_QUEUED;
  op->result = 0;
  op->flags = 0;
  op->moved_bytes = 0;
  op->retries = 0;
  op->waiter = NULL;
  op->next = NULL;
  op->chain_next = op->chain_prev = NULL;
  op->backend_priv = NULL;
  op->t_submit_ns = now;
  ctx->accepted++;
}

/* A registered buffer must hold the whole transfer, or the kernel fails it with -EFAULT. */
static int fs_op_fixed_ok(const struct fs_ctx *ctx, const struct fs_op *op)
{
  if (!op->fixed_buf)
    return 1;
  if (op->fixed_buf > ctx->nbufs || (op->opcode != FS_OP_READ && op->opcode != FS_OP_WRITE))
    return 0;
  uintptr_t lo = (uintptr_t)op->buf, hi = lo + op->len_bytes;
  uintptr_t blo = ctx->buf_lo[op->fixed_buf - 1], bhi = ctx->buf_hi[op->fixed_buf - 1];
  return bhi != 0 && lo >= blo && hi <= bhi;   /* bhi 0: an empty slot */
}

/* Replace the registered set by n buffers iov[] (sparse: n empty slots, iov unused): the
   bookkeeping [buf_lo, buf_hi) per slot (0, 0 when empty) and the backend's registration. */
static int fs_bufs_replace(struct fs_ctx *ctx, const struct iovec *iov, unsigned n, int sparse)
{
  if (ctx->accepted)
    return JDB_EINVAL;   /* ops in flight may name the old set */
  uintptr_t *lo = NULL, *hi = NULL;
  if (n) {
    lo = mem_calloc(n, sizeof *lo);
    hi = mem_calloc(n, sizeof *hi);
    if (!lo || !hi) {
      mem_free(lo);
      mem_free(hi);
      return JDB_ENOMEM;
    }
  }
  for (unsigned i = 0; !sparse && i < n; i++) {
    lo[i] = (uintptr_t)iov[i].iov_base;
    hi[i] = lo[i] + iov[i].iov_len;
  }
  const struct fs_backend *be = ctx->be;
  int rc = sparse ? (be->reserve_buffers ? be->reserve_buffers(ctx, n) : JDB_OK)
                  : (be->register_buffers ? be->register_buffers(ctx, iov, n) : JDB_OK);
  if (rc) {
    mem_free(lo);
    mem_free(hi);
    return rc;
  }
  mem_free(ctx->buf_lo);
  mem_free(ctx->buf_hi);
  ctx->buf_lo = lo;
  ctx->buf_hi = hi;
  ctx->nbufs = n;
  return JDB_OK;
}

int fs_ctx_register_buffers(struct fs_ctx *ctx, const struct iovec *iov, unsigned n)
{
  if (!ctx || (n && !iov) || n > 1024)
    return JDB_EINVAL;
  for (unsigned i = 0; i < n; i++)
    if (!iov[i].iov_base || !iov[i].iov_len)
      return JDB_EINVAL;
  return fs_bufs_replace(ctx, iov, n, 0);
}

int fs_ctx_reserve_buffers(struct fs_ctx *ctx, unsigned n)
{
  if (!ctx || !n || n > 1024)
    return JDB_EINVAL;
  return fs_bufs_replace(ctx, NULL, n, 1);
}

int fs_ctx_set_buffer(struct fs_ctx *ctx, unsigned i, const struct iovec *iov)
{
  if (!ctx || i >= ctx->nbufs || ctx->buf_hi[i] || !iov || !iov->iov_base || !iov->iov_len)
    return JDB_EINVAL;
  int rc = ctx->be->set_buffer ? ctx->be->set_buffer(ctx, i, iov) : JDB_OK;
  if (rc)
    return rc;
  ctx->buf_lo[i] = (uintptr_t)iov->iov_base;
  ctx->buf_hi[i] = ctx->buf_lo[i] + iov->iov_len;
  return JDB_OK;
}

int fs_ctx_set_notify_fd(struct fs_ctx *ctx, int fd)
{
  if (!ctx)
    return JDB_EINVAL;
  return ctx->be->set_notify_fd ? ctx->be->set_notify_fd(ctx, fd < 0 ? -1 : fd) : JDB_OK;
}

int fs_submit(struct fs_ctx *ctx, struct fs_op *op)
{
  if (!ctx)
    return JDB_EINVAL;
  int rc = fs_op_validate(op);
  if (rc)
    return rc;
  if (!fs_op_fixed_ok(ctx, op))
    return JDB_EINVAL;
  fs_op_accept(ctx, op, clock_mono_ns());
  ctx->be->queue(ctx, op);
  return JDB_OK;
}

int fs_submit_chain(struct fs_ctx *ctx, struct fs_op **ops, size_t n)
{
  if (!ctx || !ops || n == 0 || n > FS_CHAIN_MAX)
    return JDB_EINVAL;
  for (size_t i = 0; i < n; i++) {
    int rc = fs_op_validate(ops[i]);
    if (rc)
      return rc;
    if (!fs_op_fixed_ok(ctx, ops[i]))
      return JDB_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (ops[j] == ops[i])
        return JDB_EINVAL;
  }
  uint64_t now = clock_mono_ns();
  for (size_t i = 0; i < n; i++)
    fs_op_accept(ctx, ops[i], now);
  for (size_t i = 0; i < n; i++) {
    if (i + 1 < n) {
      ops[i]->chain_next = ops[i + 1];
      ops[i]->flags |= FS_OP_F_LINK;
    }
    if (i > 0)
      ops[i]->chain_prev = ops[i - 1];
  }
  for (size_t i = 0; i < n; i++)
    ctx->be->queue(ctx, ops[i]);
  return JDB_OK;
}

int fs_flush(struct fs_ctx *ctx)
{
  return ctx->be->submit(ctx);
}

size_t fs_inflight(const struct fs_ctx *ctx)
{
  return ctx->accepted;
}

/* ------------------------------------------------------------------------------------------- */

static void fs_op_final(struct fs_ctx *ctx, struct fs_op *op, int res)
{
  if (res >= 0 && (op->opcode == FS_OP_READ || op->opcode == FS_OP_WRITE))
    res = (int)op->moved_bytes;
  op->result = res;
  op->state = FS_OP_REAPED;
  op->flags &= (uint16_t)~FS_OP_F_RETRY;
  fs_op_list_push(&ctx->done, op);
  ctx->reaped++;
  fs_metrics_record(&ctx->metrics, op, clock_mono_ns());
}

static struct fs_op *fs_chain_head(struct fs_op *op)
{
  while (op->chain_prev)
    op = op->chain_prev;
  return op;
}

/* Called whenever an op of a chain becomes HELD: once no op of the chain is still with the
   backend, either resubmit from the op that wants a retry (its canceled followers after it), or,
   when nothing wants a retry, finish the canceled followers with -ECANCELED. */
static void fs_chain_settle(struct fs_ctx *ctx, struct fs_op *any)
{
  struct fs_op *head = fs_chain_head(any);
  struct fs_op *retry = NULL;
  for (struct fs_op *o = head; o; o = o->chain_next) {
    if (o->state == FS_OP_QUEUED || o->state == FS_OP_INFLIGHT)
      return;   /* a CQE of this attempt is still due */
    if (o->state == FS_OP_HELD && (o->flags & FS_OP_F_RETRY) && !retry)
      retry = o;
  }
  if (retry) {
    for (struct fs_op *o = retry; o; o = o->chain_next) {
      if (o->state != FS_OP_HELD)
        continue;
      o->flags &= (uint16_t)~FS_OP_F_RETRY;
      o->state = FS_OP_QUEUED;
      ctx->be->queue(ctx, o);
    }
    return;
  }
  for (struct fs_op *o = head; o; o = o->chain_next)
    if (o->state == FS_OP_HELD)
      fs_op_final(ctx, o, -ECANCELED);
}

static int fs_op_in_chain(const struct fs_op *op)
{
  return op->chain_next != NULL || op->chain_prev != NULL;
}

/* The op should run again for its remaining range. */
static void fs_op_retry(struct fs_ctx *ctx, struct fs_op *op)
{
  ctx->metrics.op[op->opcode].retries++;
  if (++op->retries > FS_RETRY_MAX) {
    LOG_ERROR("%s: %s at %llu made no progress after %u attempts", fs_file_path(op->file),
              op->opcode == FS_OP_READ ? "read" : op->opcode == FS_OP_WRITE ? "write" : "sync",
              (unsigned long long)fs_op_cur_off(op), FS_RETRY_MAX);
    fs_op_final(ctx, op, -EIO);
    if (fs_op_in_chain(op))
      fs_chain_settle(ctx, op);
    return;
  }
  if (!fs_op_in_chain(op)) {
    op->state = FS_OP_QUEUED;
    ctx->be->queue(ctx, op);
    return;
  }
  op->state = FS_OP_HELD;
  op->flags |= FS_OP_F_RETRY;
  fs_chain_settle(ctx, op);
}

void fs_op_finish(struct fs_ctx *ctx, struct fs_op *op, int res)
{
  JDB_ASSERT(op->state == FS_OP_INFLIGHT || op->state == FS_OP_QUEUED);

  if (res == -EAGAIN || res == -EINTR) {
    fs_op_retry(ctx, op);
    return;
  }
  if (res == -ECANCELED && op->chain_prev) {
    /* Severed chain: whether it runs again depends on the op that broke it. */
    op->state = FS_OP_HELD;
    fs_chain_settle(ctx, op);
    return;
  }
  if (res > 0 && (op->opcode == FS_OP_READ || op->opcode == FS_OP_WRITE)) {
    JDB_ASSERT((uint32_t)res <= fs_op_cur_len(op));
    op->moved_bytes += (uint32_t)res;
    if (op->moved_bytes < op->len_bytes) {
      fs_op_retry(ctx, op);
      return;
    }
  } else if (res == 0 && op->opcode == FS_OP_WRITE) {
    fs_op_retry(ctx, op);       /* a write that moved nothing: try again, bounded */
    return;
  }
  /* res == 0 on a read is end of file: the op completes with the bytes it got. */
  fs_op_final(ctx, op, res);
  if (fs_op_in_chain(op))
    fs_chain_settle(ctx, op);
}

int fs_op_finish_all(struct fs_ctx *ctx, struct fs_op *op)
{
  int n = 0;
  while (op) {
    struct fs_op *next = op->next;
    op->next = NULL;
    fs_op_finish(ctx, op, op->result);
    n++;
    op = next;
  }
  return n;
}

int fs_poll(struct fs_ctx *ctx, int wait)
{
  size_t with_backend = ctx->accepted - ctx->reaped;
  int w = wait && ctx->reaped == 0 && with_backend > 0;
  int rc = ctx->be->reap(ctx, w);
  if (rc < 0)
    return rc;
  int n = 0;
  while (ctx->done.head) {
    struct fs_op *op = ctx->done.head;
    ctx->done.head = op->next;
    if (!ctx->done.head)
      ctx->done.tail = NULL;
    op->next = NULL;
    ctx->reaped--;
    ctx->accepted--;
    struct coro *waiter = op->waiter;
    void (*done)(struct fs_op *) = op->done;
    op->waiter = NULL;
    /* Leave its chain: the owner may free or reuse a DONE op while later ops of the chain are
       still in flight, and fs_chain_settle must not walk through it then. */
    if (op->chain_prev) {
      op->chain_prev->chain_next = op->chain_next;
      if (!op->chain_next)
        op->chain_prev->flags &= (uint16_t)~FS_OP_F_LINK;
    }
    if (op->chain_next)
      op->chain_next->chain_prev = op->chain_prev;
    op->chain_next = op->chain_prev = NULL;
    op->state = FS_OP_DONE;
    n++;
    /* The callback may reuse or free the op: nothing touches it afterwards. */
    if (done)
      done(op);
    if (waiter)
      coro_wake(waiter);
  }
  return n;
}

int fs_wait(struct fs_ctx *ctx, struct fs_op *op)
{
  JDB_ASSERT(op->state != FS_OP_IDLE);
  if (coro_self()) {
    while (op->state != FS_OP_DONE) {
      op->waiter = coro_self();
      coro_park();
    }
  } else {
    /* A waiting poll submits what is queued and waits in one system call (uring). */
    while (op->state != FS_OP_DONE) {
      int rc = fs_poll(ctx, 1);
      if (rc < 0)
        return rc;
    }
  }
  return fs_op_error(op);
}

int fs_loop_run(struct fs_ctx *ctx, struct coro_sched *sched)
{
  while (coro_sched_live(sched) > 0) {
    coro_sched_run_round(sched);
    int rc = fs_flush(ctx);
    if (rc < 0)
      return rc;
    if (coro_sched_live(sched) == 0)
      break;
    int ready = coro_sched_ready(sched) > 0;
    if (!ready && ctx->accepted == 0) {
      LOG_ERROR("fs_loop_run: %zu fibers parked with no I/O in flight",
                coro_sched_live(sched));
      return JDB_EINVAL;
    }
    rc = fs_poll(ctx, !ready);
    if (rc < 0)
      return rc;
  }
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */

static int fs_run_one(struct fs_ctx *ctx, struct fs_op *op)
{
  int rc = fs_submit(ctx, op);
  if (rc)
    return rc;
  return fs_wait(ctx, op);
}

int fs_read(struct fs_ctx *ctx, struct fs_file *f, void *buf, uint32_t len, uint64_t off,
            uint32_t *got)
{
  struct fs_op op;
  fs_op_prep_read(&op, f, buf, len, off);
  int rc = fs_run_one(ctx, &op);
  if (got)
    *got = rc == JDB_OK ? (uint32_t)op.result : 0;
  return rc;
}

int fs_write(struct fs_ctx *ctx, struct fs_file *f, const void *buf, uint32_t len, uint64_t off)
{
  struct fs_op op;
  fs_op_prep_write(&op, f, buf, len, off);
  return fs_run_one(ctx, &op);
}

int fs_sync(struct fs_ctx *ctx, struct fs_file *f)
{
  struct fs_op op;
  fs_op_prep_sync(&op, f, 0);
  return fs_run_one(ctx, &op);
}

int fs_write_sync(struct fs_ctx *ctx, struct fs_file *f, const void *buf, uint32_t len,
                  uint64_t off)
{
  struct fs_op w, s;
  fs_op_prep_write(&w, f, buf, len, off);
  fs_op_prep_sync(&s, f, 0);
  struct fs_op *chain[2] = {&w, &s};
  int rc = fs_submit_chain(ctx, chain, 2);
  if (rc)
    return rc;
  int rw = fs_wait(ctx, &w);
  int rs = fs_wait(ctx, &s);
  return rw ? rw : rs;
}

/* ------------------------------------------------------------------------------------------- */

int fs_ctx_create(const struct fs_ctx_opts *opts, struct fs_ctx **out)
{
  static int fs_fallback_logged;
  struct fs_ctx_opts o = {.backend = FS_BACKEND_AUTO, .queue_depth = 256};
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (opts) {
    o.backend = opts->backend;
    if (opts->queue_depth)
      o.queue_depth = opts->queue_depth;
    o.plain_fds = opts->plain_fds;
    o.submit_batch = opts->submit_batch;
  }
  if (o.queue_depth > 32768 || o.backend < FS_BACKEND_AUTO || o.backend > FS_BACKEND_PSYNC)
    return JDB_EINVAL;
  if (o.backend == FS_BACKEND_AUTO) {
    const char *e = getenv("JDB_IO");
    if (e && strcmp(e, "psync") == 0)
      o.backend = FS_BACKEND_PSYNC;
    else if (e && strcmp(e, "uring") == 0)
      o.backend = FS_BACKEND_URING;
  }
  if (o.backend == FS_BACKEND_PSYNC)
    return fs_psync_create(out);
  int rc = fs_uring_create(&o, out);
  if (rc == JDB_OK || o.backend == FS_BACKEND_URING)
    return rc;
  log_once(&fs_fallback_logged, JDB_LOG_WARN,
           "io_uring unavailable (%s); using the psync backend", jdb_strerror(rc));
  return fs_psync_create(out);
}

void fs_ctx_destroy(struct fs_ctx *ctx)
{
  if (!ctx)
    return;
  /* Drain: every op handed to the kernel must come back before its memory may go. */
  while (ctx->accepted > 0) {
    fs_flush(ctx);
    if (fs_poll(ctx, 1) < 0)
      break;
  }
  JDB_ASSERT(ctx->accepted == 0);
  mem_free(ctx->buf_lo);
  mem_free(ctx->buf_hi);
  ctx->be->destroy(ctx);
}

const char *fs_ctx_backend_name(const struct fs_ctx *ctx)
{
  return ctx->be->name;
}

/* Public wrappers for file calls: argument checks here, the work in the backend. */
int fs_file_open(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out)
{
  if (!out)
    return JDB_EINVAL;
  *out = NULL;
  if (!ctx || !path || !*path || (flags & ~0x1fu))
    return JDB_EINVAL;
  if ((flags & FS_O_RDONLY) && (flags & FS_O_CREATE))
    return JDB_EINVAL;
  return ctx->be->open(ctx, path, flags, out);
}

int fs_file_close(struct fs_ctx *ctx, struct fs_file *f)
{
  if (!ctx || !f)
    return JDB_EINVAL;
  return ctx->be->close(ctx, f);
}

int fs_file_size(struct fs_ctx *ctx, struct fs_file *f, uint64_t *size)
{
  if (!ctx || !f || !size)
    return JDB_EINVAL;
  return ctx->be->size(ctx, f, size);
}

int fs_file_allocate(struct fs_ctx *ctx, struct fs_file *f, uint64_t off, uint64_t len)
{
  if (!ctx || !f || len == 0 || off + len < off || (f->flags & FS_O_RDONLY))
    return JDB_EINVAL;
  return ctx->be->allocate(ctx, f, off, len);
}

int fs_file_truncate(struct fs_ctx *ctx, struct fs_file *f, uint64_t size)
{
  if (!ctx || !f || (f->flags & FS_O_RDONLY))
    return JDB_EINVAL;
  return ctx->be->truncate(ctx, f, size);
}

int fs_file_is_direct(const struct fs_file *f) { return f->direct; }
uint32_t fs_file_align(const struct fs_file *f) { return f->direct ? 4096u : 1u; }
const char *fs_file_path(const struct fs_file *f) { return f->path; }
int fs_file_fd(const struct fs_file *f) { return f->fd; }

int fs_mkdir(struct fs_ctx *ctx, const char *path)
{
  return (!ctx || !path || !*path) ? JDB_EINVAL : ctx->be->mkdir(ctx, path);
}

int fs_unlink(struct fs_ctx *ctx, const char *path)
{
  return (!ctx || !path || !*path) ? JDB_EINVAL : ctx->be->unlink(ctx, path);
}

int fs_rename(struct fs_ctx *ctx, const char *from, const char *to)
{
  return (!ctx || !from || !to || !*from || !*to) ? JDB_EINVAL : ctx->be->rename(ctx, from, to);
}

int fs_dir_sync(struct fs_ctx *ctx, const char *dir)
{
  return (!ctx || !dir || !*dir) ? JDB_EINVAL : ctx->be->dir_sync(ctx, dir);
}
