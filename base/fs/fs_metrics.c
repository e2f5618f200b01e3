/*
 * fs_metrics.c - per-ctx I/O counters and latency histograms (power-of-two ns buckets).
 */
#include "fs_int.h"

#include <string.h>

static unsigned fs_hist_bucket(uint64_t ns)
{
  unsigned b = ns ? 63u - (unsigned)__builtin_clzll(ns) : 0;
  return b < FS_HIST_BUCKETS ? b : FS_HIST_BUCKETS - 1;
}

void fs_metrics_record(struct fs_metrics *m, const struct fs_op *op, uint64_t now_ns)
{
  struct fs_op_metrics *om = &m->op[op->opcode < FS_OP_NOPCODES ? op->opcode : 0];
  om->ops++;
  if (op->result < 0)
    om->errors++;
  else
    om->bytes += (uint64_t)op->result;
  uint64_t lat = now_ns > op->t_submit_ns ? now_ns - op->t_submit_ns : 0;
  om->hist[fs_hist_bucket(lat)]++;
}

void fs_metrics_get(const struct fs_ctx *ctx, struct fs_metrics *out)
{
  *out = ctx->metrics;
}

void fs_metrics_reset(struct fs_ctx *ctx)
{
  memset(&ctx->metrics, 0, sizeof ctx->metrics);
}

uint64_t fs_metrics_quantile_ns(const struct fs_metrics *m, int opcode, double q)
{
  if (opcode <= 0 || opcode >= FS_OP_NOPCODES || q <= 0 || q >= 1)
    return 0;
  const struct fs_op_metrics *om = &m->op[opcode];
  uint64_t total = 0;
  for (unsigned b = 0; b < FS_HIST_BUCKETS; b++)
    total += om->hist[b];
  if (!total)
    return 0;
  double want = q * (double)total, seen = 0;
  for (unsigned b = 0; b < FS_HIST_BUCKETS; b++) {
    if (!om->hist[b])
      continue;
    if (seen + (double)om->hist[b] >= want) {
      double lo = (double)(1ull << b), frac = (want - seen) / (double)om->hist[b];
      return (uint64_t)(lo + frac * lo);   /* bucket b spans [2^b, 2^(b+1)) */
    }
    seen += (double)om->hist[b];
  }
  return 1ull << (FS_HIST_BUCKETS - 1);
}
