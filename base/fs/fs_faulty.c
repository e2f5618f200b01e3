/*
 * fs_faulty.c - the fault-injecting backend: wraps another backend, injects errors by rule, and
 * simulates power loss.
 *
 * Forwarding: every op the caller queues is decided when its chain attempt starts (a lone op is a
 * chain of one). Each op of the chain is matched against the rules in order; the ops up to the
 * first one that breaks the chain are forwarded to the inner ctx as "shadow" ops (a chain of
 * their own), the breaking op gets its injected result, the ops after it -ECANCELED (what a
 * kernel link chain does). Shadow completions come back through the inner ctx's done callbacks
 * and are reported to the caller's ctx from reap(), like any backend's completions.
 *
 *   fault      effect on the op                          chain after it
 *   EIO        not forwarded, completes -EIO              canceled
 *   ENOSPC     not forwarded, completes -ENOSPC           canceled
 *   SHORT      forwarded with half its length (aligned);  canceled (the generic layer then
 *              completes short                            resubmits the remainder and the rest)
 *   MISDIRECT  write forwarded to offset + delta; the     continues
 *              caller is told it succeeded
 *   CRASH      fs_faulty_crash(policy) runs first; the    canceled (-EIO: everything fails
 *              op completes -EIO                           after a crash)
 *
 * Power loss model: before a write is forwarded, the bytes it will overwrite are read through a
 * second, buffered descriptor of the file and kept as an undo record. A completed fdatasync or
 * fsync of the file retires the records of writes that had completed before the sync was issued,
 * and of writes linked ahead of it in the same chain. fs_faulty_crash() drains the inner ctx,
 * then walks the remaining records newest first and, per the policy, keeps a write, drops it
 * (restores the old bytes) or tears it (keeps a prefix of its 512-byte sectors, restores the
 * rest). Bytes a newer kept write covers are never rolled back by an older dropped one. A dropped
 * write that had extended the file leaves zeros there (the size change may have been durable).
 * File creation, rename and unlink are not rolled back: the fs layer syncs the directory on each
 * of them before returning, so they are durable when reported.
 */
#include "fs_int.h"

#include "err.h"
#include "layout.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAULTY_RULES_MAX 16
#define FAULTY_NTARGETS 7

struct faulty_file {
  struct fs_file pub;            /* what the caller holds; backend_priv = inner file */
  int undo_fd;                   /* buffered descriptor for undo reads and restores; -1 */
  uint64_t dev, ino;             /* the inode: every descriptor of a file shares its writes'
                                    fate (a sync through one covers writes through another) */
  int closed;
  struct faulty_file *next_all;  /* every file of the ctx, freed at destroy */
};

struct faulty_write {            /* an unsynced write and the bytes it overwrote */
  struct faulty_file *file;
  uint64_t off;
  uint32_t len;
  uint8_t *old;
  uint64_t issue_seq, done_seq;  /* done_seq 0 = not completed */
  uint64_t link_sync_seq;        /* a sync chained after it in the same attempt, or 0 */
  int covered;                   /* that sync completed before this write's completion was seen
                                    (CQEs of a link chain can arrive out of order): retire the
                                    record when it is */
  struct faulty_write *prev, *next;
};

struct faulty_ctx {
  struct fs_ctx base;
  struct fs_ctx *inner;
  uint64_t rng[4];
  struct fs_fault_rule rules[FAULTY_RULES_MAX];
  uint64_t rule_seen[FAULTY_RULES_MAX];
  unsigned nrules;
  uint64_t count[FAULTY_NTARGETS];
  uint64_t seq;                  /* orders write completions against sync issues */
  struct faulty_write *w_head, *w_tail;
  uint64_t nwrites;
  struct faulty_file *files;
  int crashed;
  uint64_t inner_submits_seen;   /* inner metrics.submits already added to ours */
  struct fs_op_list pend;        /* caller ops with a result, not yet reported */
  /* plan of the chain attempt being queued: ops after its head are already decided */
  struct fs_op *plan_next;
};

struct faulty_shadow {
  struct fs_op op;               /* submitted to the inner ctx */
  struct fs_op *orig;
  struct faulty_ctx *fc;
  struct faulty_write *w;
  uint64_t sync_seq;
};

static inline struct faulty_ctx *faulty_of(struct fs_ctx *ctx) { return (struct faulty_ctx *)ctx; }
static inline struct faulty_file *faulty_file_of(struct fs_file *f) { return (struct faulty_file *)f; }
static inline struct fs_file *faulty_inner_file(struct fs_file *f) { return f->backend_priv; }

/* Two handles of one file (the log writes through a buffered and an O_DIRECT descriptor of the
   same segment): the kernel's page cache and fdatasync work per inode, and so does this model. */
static int faulty_same_file(const struct faulty_file *a, const struct faulty_file *b)
{
  return a == b || (a->ino && a->dev == b->dev && a->ino == b->ino);
}

/* xoshiro256** seeded by splitmix64 */
static uint64_t faulty_rand(struct faulty_ctx *fc)
{
  uint64_t *s = fc->rng;
  uint64_t r = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return r;
}

static double faulty_rand01(struct faulty_ctx *fc)
{
  return (double)(faulty_rand(fc) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------------------------------------- */
/* Rules */

static unsigned faulty_target_bit_index(unsigned bit)
{
  return (unsigned)__builtin_ctz(bit);
}

/* Count an operation of kind `bit` and return the first rule that fires on it, or NULL. */
static const struct fs_fault_rule *faulty_pick(struct faulty_ctx *fc, unsigned bit)
{
  fc->count[faulty_target_bit_index(bit)]++;
  const struct fs_fault_rule *fired = NULL;
  for (unsigned i = 0; i < fc->nrules; i++) {
    const struct fs_fault_rule *r = &fc->rules[i];
    unsigned targets = r->targets ? r->targets : FS_FT_ALL;
    if (!(targets & bit))
      continue;
    uint64_t seen = ++fc->rule_seen[i];
    if (fired)
      continue;
    if (r->at) {
      uint64_t n = r->count ? r->count : 1;
      if (seen >= r->at && seen - r->at < n)
        fired = r;
    } else if (r->probability > 0 && faulty_rand01(fc) < r->probability) {
      fired = r;
    }
  }
  return fired;
}

static unsigned faulty_op_bit(const struct fs_op *op)
{
  return op->opcode == FS_OP_READ ? FS_FT_READ : op->opcode == FS_OP_WRITE ? FS_FT_WRITE
                                                                           : FS_FT_SYNC;
}

int fs_faulty_add_rule(struct fs_ctx *ctx, const struct fs_fault_rule *rule)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  if (!rule || rule->kind < FS_FAULT_EIO || rule->kind > FS_FAULT_CRASH)
    return JDB_EINVAL;
  if (rule->kind == FS_FAULT_CRASH &&
      (rule->crash_policy < FS_CRASH_DROP || rule->crash_policy > FS_CRASH_RANDOM))
    return JDB_EINVAL;
  if (!rule->at && !(rule->probability > 0))
    return JDB_EINVAL;
  if (fc->nrules == FAULTY_RULES_MAX)
    return JDB_ENOMEM;
  fc->rule_seen[fc->nrules] = 0;
  fc->rules[fc->nrules++] = *rule;
  return JDB_OK;
}

void fs_faulty_clear_rules(struct fs_ctx *ctx)
{
  faulty_of(ctx)->nrules = 0;
}

uint64_t fs_faulty_count(const struct fs_ctx *ctx, unsigned targets)
{
  const struct faulty_ctx *fc = (const struct faulty_ctx *)ctx;
  uint64_t n = 0;
  for (unsigned i = 0; i < FAULTY_NTARGETS; i++)
    if (targets & (1u << i))
      n += fc->count[i];
  return n;
}

uint64_t fs_faulty_unsynced(const struct fs_ctx *ctx)
{
  return ((const struct faulty_ctx *)ctx)->nwrites;
}

/* ------------------------------------------------------------------------------------------- */
/* Undo records */

static void faulty_write_unlink(struct faulty_ctx *fc, struct faulty_write *w)
{
  if (w->prev) w->prev->next = w->next; else fc->w_head = w->next;
  if (w->next) w->next->prev = w->prev; else fc->w_tail = w->prev;
  fc->nwrites--;
  free(w->old);
  free(w);
}

/* Remember what [off, off+len) of the file holds now. NULL if the file has no undo descriptor
   or memory is short (the write then cannot be rolled back: logged). */
static struct faulty_write *faulty_write_record(struct faulty_ctx *fc, struct faulty_file *ff,
                                                uint64_t off, uint32_t len)
{
  struct faulty_write *w = calloc(1, sizeof *w);
  uint8_t *old = w ? calloc(1, len) : NULL;
  if (!w || !old || ff->undo_fd < 0) {
    LOG_ERROR("faulty: cannot record undo for %s at %llu", ff->pub.path, (unsigned long long)off);
    free(w);
    free(old);
    return NULL;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(ff->undo_fd, old + got, len - got, (off_t)(off + got));
    if (r <= 0)
      break;     /* beyond end of file: the old contents are zeros */
    got += (size_t)r;
  }
  w->file = ff;
  w->off = off;
  w->len = len;
  w->old = old;
  w->issue_seq = ++fc->seq;
  w->prev = fc->w_tail;
  if (fc->w_tail) fc->w_tail->next = w; else fc->w_head = w;
  fc->w_tail = w;
  fc->nwrites++;
  return w;
}

static void faulty_sync_done(struct faulty_ctx *fc, struct faulty_file *ff, uint64_t sync_seq)
{
  struct faulty_write *w = fc->w_head;
  while (w) {
    struct faulty_write *next = w->next;
    if (faulty_same_file(w->file, ff) && w->link_sync_seq == sync_seq && !w->done_seq)
      w->covered = 1;      /* its shadow still points at it */
    else if (faulty_same_file(w->file, ff) &&
             ((w->done_seq && w->done_seq < sync_seq) || w->link_sync_seq == sync_seq))
      faulty_write_unlink(fc, w);
    w = next;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Ops */

/* The faulty ctx reports the kernel entries its inner ctx made on its behalf, wherever they
   happened (queueing, flushing, waiting). */
static void faulty_count_submits(struct faulty_ctx *fc)
{
  uint64_t now = fc->inner->metrics.submits;
  if (now > fc->inner_submits_seen)
    fc->base.metrics.submits += now - fc->inner_submits_seen;
  fc->inner_submits_seen = now;
}

static void faulty_report(struct faulty_ctx *fc, struct fs_op *op, int res)
{
  op->result = res;
  fs_op_list_push(&fc->pend, op);
}

static void faulty_shadow_done(struct fs_op *sop)
{
  struct faulty_shadow *sh = (struct faulty_shadow *)sop;
  struct faulty_ctx *fc = sh->fc;
  int res = sop->result;
  if (sh->w && sh->w->covered)
    faulty_write_unlink(fc, sh->w);
  else if (sh->w)
    sh->w->done_seq = ++fc->seq;
  if ((sop->opcode == FS_OP_FDATASYNC || sop->opcode == FS_OP_FSYNC) && res == 0)
    faulty_sync_done(fc, faulty_file_of(sh->orig->file), sh->sync_seq);
  faulty_report(fc, sh->orig, res);
  free(sh);
}

static uint64_t faulty_crash_now(struct faulty_ctx *fc, unsigned policy);

/* Hand the decided shadows of an attempt to the inner ctx as one chain. */
static void faulty_forward(struct faulty_ctx *fc, struct faulty_shadow **sh, size_t nfwd)
{
  if (nfwd) {
    struct fs_op *sops[64];
    for (size_t j = 0; j < nfwd; j++)
      sops[j] = &sh[j]->op;
    int rc = fs_submit_chain(fc->inner, sops, nfwd);
    JDB_ASSERT(rc == JDB_OK);   /* the caller's ops passed the same validation */
    faulty_count_submits(fc);   /* the inner backend may enter the kernel while queueing */
  }
}

/* Decide and launch one chain attempt starting at head. */
static void faulty_queue_chain(struct faulty_ctx *fc, struct fs_op *head)
{
  struct fs_op *ops[64];
  struct faulty_shadow *sh[64];
  size_t n = 0;
  for (struct fs_op *o = head;; o = o->chain_next) {
    JDB_ASSERT(n < 64);
    ops[n++] = o;
    if (!(o->flags & FS_OP_F_LINK) || !o->chain_next)
      break;
  }
  size_t nfwd = 0;
  int broken = 0;
  for (size_t i = 0; i < n; i++) {
    struct fs_op *op = ops[i];
    if (broken) {
      faulty_report(fc, op, fc->crashed ? -EIO : -ECANCELED);
      continue;
    }
    if (fc->crashed) {
      faulty_report(fc, op, -EIO);
      broken = 1;
      continue;
    }
    const struct fs_fault_rule *r = faulty_pick(fc, faulty_op_bit(op));
    unsigned kind = r ? r->kind : 0;
    if (kind == FS_FAULT_CRASH) {
      /* The ops ahead of it in this attempt were issued before it: they go out first and are
         in flight at the power cut (unsynced writes the policy applies to). Launched later,
         they would land after the crash, with their undo records already freed. */
      faulty_forward(fc, sh, nfwd);
      nfwd = 0;
      faulty_crash_now(fc, r->crash_policy);
      faulty_report(fc, op, -EIO);
      broken = 1;
      continue;
    }
    if (kind == FS_FAULT_EIO || kind == FS_FAULT_ENOSPC) {
      faulty_report(fc, op, kind == FS_FAULT_EIO ? -EIO : -ENOSPC);
      broken = 1;
      continue;
    }
    struct faulty_shadow *s = calloc(1, sizeof *s);
    if (!s) {
      faulty_report(fc, op, -ENOMEM);
      broken = 1;
      continue;
    }
    s->orig = op;
    s->fc = fc;
    struct fs_file *inner_f = faulty_inner_file(op->file);
    uint32_t len = fs_op_cur_len(op);
    uint64_t off = fs_op_cur_off(op);
    switch (op->opcode) {
    case FS_OP_READ:
    case FS_OP_WRITE: {
      if (kind == FS_FAULT_SHORT) {
        uint32_t a = fs_file_align(op->file);
        uint32_t half = (len / 2) / a * a;
        if (half == 0) {
          /* Too small to shorten: make it an interrupted attempt instead. */
          free(s);
          faulty_report(fc, op, -EINTR);
          broken = 1;
          continue;
        }
        len = half;
        broken = 1;   /* a short transfer severs the chain after it */
      }
      if (kind == FS_FAULT_MISDIRECT && op->opcode == FS_OP_WRITE) {
        int64_t d = r->misdirect_delta ? r->misdirect_delta : 4096;
        if (d < 0 && (uint64_t)(-d) > off)
          d = -d;    /* would land before the file start: go the other way */
        off = (uint64_t)((int64_t)off + d);
      }
      if (op->opcode == FS_OP_READ)
        fs_op_prep_read(&s->op, inner_f, fs_op_cur_buf(op), len, off);
      else {
        fs_op_prep_write(&s->op, inner_f, fs_op_cur_buf(op), len, off);
        s->w = faulty_write_record(fc, faulty_file_of(op->file), off, len);
      }
      s->op.fixed_buf = op->fixed_buf;   /* the same buffers are registered with the inner ctx */
      break;
    }
    default:
      fs_op_prep_sync(&s->op, inner_f, op->opcode == FS_OP_FSYNC);
      s->sync_seq = ++fc->seq;
      /* Writes linked ahead of this sync in the attempt are covered by it. */
      for (size_t j = 0; j < nfwd; j++)
        if (sh[j]->w && faulty_same_file(sh[j]->w->file, faulty_file_of(op->file)))
          sh[j]->w->link_sync_seq = s->sync_seq;
      break;
    }
    s->op.done = faulty_shadow_done;
    sh[nfwd++] = s;
  }
  faulty_forward(fc, sh, nfwd);
  /* Ops 1..n-1 of the attempt will be queued by the generic layer right after this one. */
  fc->plan_next = n > 1 ? ops[1] : NULL;
}

static void faulty_queue(struct fs_ctx *ctx, struct fs_op *op)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  if (fc->plan_next) {
    /* Already decided and launched as part of its chain's attempt. */
    JDB_ASSERT(op == fc->plan_next);
    op->state = FS_OP_INFLIGHT;
    fc->plan_next = (op->flags & FS_OP_F_LINK) ? op->chain_next : NULL;
    return;
  }
  op->state = FS_OP_INFLIGHT;
  faulty_queue_chain(fc, op);
}

static int faulty_submit(struct fs_ctx *ctx)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = fs_flush(fc->inner);
  faulty_count_submits(fc);
  return rc;
}

static int faulty_reap(struct fs_ctx *ctx, int wait)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  if (fs_inflight(fc->inner) > 0) {
    int rc = fs_poll(fc->inner, wait && !fc->pend.head);
    faulty_count_submits(fc);
    if (rc < 0)
      return rc;
  }
  struct fs_op *op = fs_op_list_take(&fc->pend);
  if (op)
    ctx->metrics.reaps++;
  return fs_op_finish_all(ctx, op);
}

/* ------------------------------------------------------------------------------------------- */
/* Crash */

struct faulty_range { uint64_t lo, hi; };

/* Restore [lo, hi) of w's old bytes, except what ranges in keep[] (same file) cover. */
static void faulty_restore(struct faulty_write *w, uint64_t lo, uint64_t hi,
                           const struct faulty_range *keep, const struct faulty_file *const *kf,
                           size_t nkeep)
{
  uint64_t pos = lo;
  while (pos < hi) {
    /* Find the first kept range of this file that intersects [pos, hi). */
    uint64_t cut_lo = hi, cut_hi = hi;
    for (size_t i = 0; i < nkeep; i++) {
      if (!faulty_same_file(kf[i], w->file) || keep[i].hi <= pos || keep[i].lo >= hi)
        continue;
      uint64_t a = keep[i].lo > pos ? keep[i].lo : pos;
      if (a < cut_lo) {
        cut_lo = a;
        cut_hi = keep[i].hi;
      } else if (a == cut_lo && keep[i].hi > cut_hi) {
        cut_hi = keep[i].hi;
      }
    }
    if (cut_lo > pos) {
      const uint8_t *src = w->old + (pos - w->off);
      size_t n = (size_t)(cut_lo - pos), done = 0;
      while (done < n) {
        ssize_t r = pwrite(w->file->undo_fd, src + done, n - done, (off_t)(pos + done));
        if (r <= 0) {
          LOG_ERROR("faulty: restore of %s at %llu failed", w->file->pub.path,
                    (unsigned long long)(pos + done));
          break;
        }
        done += (size_t)r;
      }
    }
    pos = cut_hi > cut_lo ? cut_hi : cut_lo;
    if (cut_lo == hi)
      break;
  }
}

static uint64_t faulty_crash_now(struct faulty_ctx *fc, unsigned policy)
{
  /* Let every forwarded op land first: what is in flight at a power cut is simply unsynced. */
  while (fs_inflight(fc->inner) > 0) {
    fs_flush(fc->inner);
    if (fs_poll(fc->inner, 1) < 0)
      break;
  }
  size_t cap = fc->nwrites ? (size_t)fc->nwrites : 1;
  struct faulty_range *keep = calloc(cap, sizeof *keep);
  const struct faulty_file **kf = calloc(cap, sizeof *kf);
  size_t nkeep = 0;
  uint64_t lost = 0;
  for (struct faulty_write *w = fc->w_tail; w; w = w->prev) {
    unsigned p = policy;
    if (p == FS_CRASH_RANDOM) {
      uint64_t r = faulty_rand(fc) % 3;
      p = r == 0 ? FS_CRASH_DROP : r == 1 ? FS_CRASH_KEEP : FS_CRASH_TEAR;
    }
    uint64_t lo = w->off, hi = w->off + w->len, keep_hi = lo;
    if (p == FS_CRASH_KEEP) {
      keep_hi = hi;
    } else if (p == FS_CRASH_TEAR) {
      /* Keep a prefix ending at a sector boundary strictly inside the write when there is one. */
      uint64_t first = (lo / LAYOUT_SECTOR + 1) * LAYOUT_SECTOR;
      if (first < hi) {
        uint64_t nb = (hi - first + LAYOUT_SECTOR - 1) / LAYOUT_SECTOR;
        keep_hi = first + (faulty_rand(fc) % nb) * LAYOUT_SECTOR;
      }
    }
    if (keep_hi < hi) {
      faulty_restore(w, keep_hi, hi, keep, kf, nkeep);
      lost++;
    }
    if (keep_hi > lo && keep && kf) {
      keep[nkeep] = (struct faulty_range){lo, keep_hi};
      kf[nkeep++] = w->file;
    }
  }
  free(keep);
  free(kf);
  for (struct faulty_file *ff = fc->files; ff; ff = ff->next_all)
    if (ff->undo_fd >= 0)
      fdatasync(ff->undo_fd);
  while (fc->w_head)
    faulty_write_unlink(fc, fc->w_head);
  fc->crashed = 1;
  return lost;
}

uint64_t fs_faulty_crash(struct fs_ctx *ctx, unsigned policy)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  if (policy < FS_CRASH_DROP || policy > FS_CRASH_RANDOM)
    policy = FS_CRASH_DROP;
  return faulty_crash_now(fc, policy);
}

void fs_faulty_revive(struct fs_ctx *ctx)
{
  faulty_of(ctx)->crashed = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* File operations: counted and matched against rules like data ops. */

static int faulty_file_fault(struct faulty_ctx *fc, unsigned bit)
{
  if (fc->crashed)
    return JDB_EIO;
  const struct fs_fault_rule *r = faulty_pick(fc, bit);
  if (!r)
    return JDB_OK;
  switch (r->kind) {
  case FS_FAULT_EIO: return JDB_EIO;
  case FS_FAULT_ENOSPC: return JDB_ENOSPC;
  case FS_FAULT_CRASH:
    faulty_crash_now(fc, r->crash_policy);
    return JDB_EIO;
  default: return JDB_OK;   /* SHORT and MISDIRECT mean nothing for metadata calls */
  }
}

static int faulty_open(struct fs_ctx *ctx, const char *path, unsigned flags, struct fs_file **out)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_OPEN);
  if (rc)
    return rc;
  struct fs_file *in;
  rc = fs_file_open(fc->inner, path, flags, &in);
  if (rc)
    return rc;
  struct faulty_file *ff = mem_calloc(1, sizeof *ff);
  char *p = ff ? strdup(path) : NULL;
  if (!ff || !p) {
    mem_free(ff);
    fs_file_close(fc->inner, in);
    return JDB_ENOMEM;
  }
  ff->pub = *in;
  ff->pub.path = p;
  ff->pub.fixed_index = -1;
  ff->pub.backend_priv = in;
  ff->undo_fd = (flags & FS_O_RDONLY) ? -1 : open(path, O_RDWR | O_CLOEXEC);
  struct stat stb;
  if (fstat(ff->undo_fd >= 0 ? ff->undo_fd : in->fd, &stb) == 0) {
    ff->dev = (uint64_t)stb.st_dev;
    ff->ino = (uint64_t)stb.st_ino;
  }
  ff->next_all = fc->files;
  fc->files = ff;
  *out = &ff->pub;
  return JDB_OK;
}

static int faulty_close(struct fs_ctx *ctx, struct fs_file *f)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  struct faulty_file *ff = faulty_file_of(f);
  /* The undo descriptor and record stay: unsynced writes of a closed file can still be lost. */
  ff->closed = 1;
  int rc = fs_file_close(fc->inner, faulty_inner_file(f));
  f->backend_priv = NULL;
  return rc;
}

static int faulty_size(struct fs_ctx *ctx, struct fs_file *f, uint64_t *size)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  if (fc->crashed)
    return JDB_EIO;
  return fs_file_size(fc->inner, faulty_inner_file(f), size);
}

static int faulty_allocate(struct fs_ctx *ctx, struct fs_file *f, uint64_t off, uint64_t len)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_ALLOCATE);
  return rc ? rc : fs_file_allocate(fc->inner, faulty_inner_file(f), off, len);
}

static int faulty_truncate(struct fs_ctx *ctx, struct fs_file *f, uint64_t size)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_TRUNCATE);
  return rc ? rc : fs_file_truncate(fc->inner, faulty_inner_file(f), size);
}

static int faulty_mkdir(struct fs_ctx *ctx, const char *path)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_DIROP);
  return rc ? rc : fs_mkdir(fc->inner, path);
}

static int faulty_unlink(struct fs_ctx *ctx, const char *path)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_DIROP);
  return rc ? rc : fs_unlink(fc->inner, path);
}

static int faulty_rename(struct fs_ctx *ctx, const char *from, const char *to)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_DIROP);
  return rc ? rc : fs_rename(fc->inner, from, to);
}

static int faulty_dir_sync(struct fs_ctx *ctx, const char *dir)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  int rc = faulty_file_fault(fc, FS_FT_DIROP);
  return rc ? rc : fs_dir_sync(fc->inner, dir);
}

static int faulty_register_buffers(struct fs_ctx *ctx, const struct iovec *iov, unsigned n)
{
  return fs_ctx_register_buffers(faulty_of(ctx)->inner, iov, n);
}

static int faulty_reserve_buffers(struct fs_ctx *ctx, unsigned n)
{
  return fs_ctx_reserve_buffers(faulty_of(ctx)->inner, n);
}

static int faulty_set_buffer(struct fs_ctx *ctx, unsigned i, const struct iovec *iov)
{
  return fs_ctx_set_buffer(faulty_of(ctx)->inner, i, iov);
}

static int faulty_set_notify_fd(struct fs_ctx *ctx, int fd)
{
  return fs_ctx_set_notify_fd(faulty_of(ctx)->inner, fd);
}

static void faulty_destroy(struct fs_ctx *ctx)
{
  struct faulty_ctx *fc = faulty_of(ctx);
  JDB_ASSERT(!fc->pend.head);
  while (fc->w_head)
    faulty_write_unlink(fc, fc->w_head);
  struct faulty_file *ff = fc->files;
  while (ff) {
    struct faulty_file *next = ff->next_all;
    if (!ff->closed && ff->pub.backend_priv)
      fs_file_close(fc->inner, ff->pub.backend_priv);
    if (ff->undo_fd >= 0)
      close(ff->undo_fd);
    free(ff->pub.path);
    mem_free(ff);
    ff = next;
  }
  fs_ctx_destroy(fc->inner);
  mem_free(fc);
}

static const struct fs_backend faulty_backend = {
  .struct_size = sizeof(struct fs_backend),
  .name = "faulty",
  .destroy = faulty_destroy,
  .queue = faulty_queue,
  .submit = faulty_submit,
  .reap = faulty_reap,
  .open = faulty_open,
  .close = faulty_close,
  .size = faulty_size,
  .allocate = faulty_allocate,
  .truncate = faulty_truncate,
  .mkdir = faulty_mkdir,
  .unlink = faulty_unlink,
  .rename = faulty_rename,
  .dir_sync = faulty_dir_sync,
  .register_buffers = faulty_register_buffers,
  .reserve_buffers = faulty_reserve_buffers,
  .set_buffer = faulty_set_buffer,
  .set_notify_fd = faulty_set_notify_fd,
};

int fs_faulty_create(struct fs_ctx *inner, uint64_t seed, struct fs_ctx **out)
{
  if (!inner || !out)
    return JDB_EINVAL;
  struct faulty_ctx *fc = mem_calloc(1, sizeof *fc);
  if (!fc)
    return JDB_ENOMEM;
  fs_ctx_init_base(&fc->base, &faulty_backend);
  fc->inner = inner;
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    fc->rng[i] = z ^ (z >> 31);
  }
  *out = &fc->base;
  return JDB_OK;
}
