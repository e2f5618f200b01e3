/*
 * fs_psync.c - the psync backend: pread/pwrite/fdatasync with the same semantics as uring.
 *
 * queue() appends to a FIFO; submit() runs every queued op in order, one syscall per attempt,
 * and parks the results on a completion list; reap() reports them. Chains: when an op with
 * FS_OP_F_LINK fails or is short, the ops after it in its chain are not run and complete with
 * -ECANCELED, exactly as io_uring's IOSQE_IO_LINK. Used where io_uring cannot be set up (old
 * kernels, seccomp) or when JDB_IO=psync.
 */
#include "fs_int.h"

#include "err.h"
#include "mem.h"

#include <errno.h>

struct psync_ctx {
  struct fs_ctx base;
  struct fs_op_list queued;             /* not yet run */
  struct fs_op_list ran;                /* run, result in op->result, not yet reaped */
};

static void psync_queue(struct fs_ctx *ctx, struct fs_op *op)
{
  struct psync_ctx *p = (struct psync_ctx *)ctx;
  op->state = FS_OP_INFLIGHT;
  fs_op_list_push(&p->queued, op);
}

static int psync_submit(struct fs_ctx *ctx)
{
  struct psync_ctx *p = (struct psync_ctx *)ctx;
  struct fs_op *op = fs_op_list_take(&p->queued);
  int severed = 0;     /* the previous op was linked to this one and did not complete whole */
  if (op)
    ctx->metrics.submits++;
  while (op) {
    struct fs_op *next = op->next;
    int res;
    if (severed) {
      res = -ECANCELED;
    } else {
      res = fs_posix_exec(op);
      if (op->opcode == FS_OP_READ || op->opcode == FS_OP_WRITE)
        severed = res < 0 || (uint32_t)res < fs_op_cur_len(op);
      else
        severed = res < 0;
    }
    if (!(op->flags & FS_OP_F_LINK))
      severed = 0;     /* the chain ends here */
    op->result = res;
    fs_op_list_push(&p->ran, op);
    op = next;
  }
  return JDB_OK;
}

static int psync_reap(struct fs_ctx *ctx, int wait)
{
  struct psync_ctx *p = (struct psync_ctx *)ctx;
  /* A waiting reap runs what is queued (the contract of reap(wait)); everything submitted has
     already completed, so there is never anything else to wait for. */
  if (wait && !p->ran.head && p->queued.head)
    psync_submit(ctx);
  struct fs_op *op = fs_op_list_take(&p->ran);
  if (op)
    ctx->metrics.reaps++;
  return fs_op_finish_all(ctx, op);
}

static void psync_destroy(struct fs_ctx *ctx)
{
  mem_free(ctx);
}

static const struct fs_backend psync_backend = {
  .struct_size = sizeof(struct fs_backend),
  .name = "psync",
  .destroy = psync_destroy,
  .queue = psync_queue,
  .submit = psync_submit,
  .reap = psync_reap,
  .open = fs_posix_open,
  .close = fs_posix_close,
  .size = fs_posix_size,
  .allocate = fs_posix_allocate,
  .truncate = fs_posix_truncate,
  .mkdir = fs_posix_mkdir,
  .unlink = fs_posix_unlink,
  .rename = fs_posix_rename,
  .dir_sync = fs_posix_dir_sync,
};

int fs_psync_create(struct fs_ctx **out)
{
  struct psync_ctx *p = mem_calloc(1, sizeof *p);
  if (!p)
    return JDB_ENOMEM;
  fs_ctx_init_base(&p->base, &psync_backend);
  *out = &p->base;
  return JDB_OK;
}
