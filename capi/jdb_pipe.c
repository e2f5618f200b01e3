/*
 * jdb_pipe.c - pipelines: operations on any tables of one instance queued on the client, then
 * sent with one crossing per shard (rt_call_many) and run there in queue order.
 *
 * Queue. Each operation records its table's shard and id (not the handle, which the caller may
 * close before exec) and the offset of its key (and value, right after the key) in one byte
 * buffer that only grows; jdb_pipe_reset rewinds it, so a reused pipe stops allocating.
 *
 * Exec. A counting sort by shard keeps queue order within each shard (order[]); one rt_req per
 * shard carries its slice of order[]. On the shard (capi_pipe_run), consecutive gets of one table
 * are one tab_get_many (up to CAPI_PIPE_GETS); consecutive writes to one table are one tab_write
 * batch (bounded in ops and bytes). Every
 * write but the shard's last is TAB_NOWAIT: the log is one sequential stream, and waiting for
 * the last record (written to the kernel, or fdatasync'd for JDB_SYNC) covers every record
 * before it (wal_wait waits for all bytes before the record's end). A NOWAIT write is already in
 * the memtable, so a later get in the same run sees it. If the last write fails, the earlier
 * NOWAIT writes are waited for with tab_flush, and if that fails they take its error.
 *
 * Results: rc per operation, as the single calls give them (a dropped table: JDB_NOTFOUND for
 * gets and writes; a read-only instance: JDB_EREADONLY for writes); a get's value is tab_get's
 * mem_malloc'd copy, freed by the next exec, reset or free. A shard the runtime did not run
 * (closing) gives its operations the runtime's error. exec is not gated (as jdb_put): a pipe
 * holds nothing on a shard between calls.
 */
#include "capi_int.h"

#include "mem.h"

#include <string.h>

enum { CAPI_PIPE_PUT = 1, CAPI_PIPE_DEL = 2, CAPI_PIPE_GET = 3 };

/* One tab_write batch made of consecutive writes stops growing past this many bytes of keys and
   values (one op may exceed it alone): beyond it one more crossing saves nothing measurable,
   while a huge log record delays every other fiber of the shard. */
#define CAPI_PIPE_GROUP_BYTES (4u << 20)

struct capi_pipe_op {
  uint8_t kind;              /* CAPI_PIPE_* */
  uint32_t shard;
  uint64_t table;
  size_t off;                /* key at data + off, a put's value right after it */
  uint32_t klen, vlen;
  int rc;                    /* the last exec's result */
  void *val;                 /* a get's value (mem_malloc'd by tab_get), or NULL */
  size_t val_len;
};

/* What one shard runs: its operations' indexes in queue order. */
struct capi_pipe_run {
  struct jdb_pipe *p;
  const size_t *idx;
  size_t n;
  struct tab_op *tops;       /* scratch for a batch, n entries (this run's own slice) */
  unsigned last_flags;       /* tab_write flags of the shard's last write: 0 or TAB_SYNC */
};

struct jdb_pipe {
  struct jdb_db *db;
  struct capi_pipe_op *ops;
  size_t nops, cops;
  uint8_t *data;
  size_t ndata, cdata;
  size_t nexec;              /* operations the last exec ran (0: none yet) */
  /* exec scratch, kept for reuse: order and tops one entry per operation, the rest per shard */
  size_t *order;
  size_t corder;
  struct tab_op *tops;
  size_t ctops;
  size_t *per_shard;
  struct capi_pipe_run *runs;
  struct rt_req *reqs;
};

int capi_grow(void **v, size_t *cap, size_t need, size_t size)
{
  if (need <= *cap)
    return JDB_OK;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  if (c > SIZE_MAX / size)
    return JDB_ENOMEM;
  void *q = mem_realloc(*v, c * size);
  if (!q)
    return JDB_ENOMEM;
  *v = q;
  *cap = c;
  return JDB_OK;
}

jdb_pipe_t *jdb_pipe_new(jdb_t *db)
{
  if (!db)
    return NULL;
  struct jdb_pipe *p = mem_calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->db = db;
  p->per_shard = mem_calloc(db->shards, sizeof *p->per_shard);
  p->runs = mem_calloc(db->shards, sizeof *p->runs);
  p->reqs = mem_calloc(db->shards, sizeof *p->reqs);
  if (!p->per_shard || !p->runs || !p->reqs) {
    jdb_pipe_free(p);
    return NULL;
  }
  return p;
}

static void capi_pipe_results_free(struct jdb_pipe *p)
{
  for (size_t i = 0; i < p->nexec; i++) {
    mem_free(p->ops[i].val);
    p->ops[i].val = NULL;
  }
  p->nexec = 0;
}

void jdb_pipe_reset(jdb_pipe_t *p)
{
  if (!p)
    return;
  capi_pipe_results_free(p);
  p->nops = 0;
  p->ndata = 0;
}

void jdb_pipe_free(jdb_pipe_t *p)
{
  if (!p)
    return;
  capi_pipe_results_free(p);
  mem_free(p->ops);
  mem_free(p->data);
  mem_free(p->order);
  mem_free(p->tops);
  mem_free(p->per_shard);
  mem_free(p->runs);
  mem_free(p->reqs);
  mem_free(p);
}

size_t jdb_pipe_count(const jdb_pipe_t *p)
{
  return p ? p->nops : 0;
}

static int capi_pipe_add(struct jdb_pipe *p, uint8_t kind, jdb_table_t *t, const void *k,
                         size_t kl, const void *v, size_t vl)
{
  if (!p || !t || t->db != p->db || capi_key_ok(k, kl) || capi_val_ok(v, vl))
    return JDB_EINVAL;
  if (capi_grow((void **)&p->ops, &p->cops, p->nops + 1, sizeof *p->ops) ||
      capi_grow((void **)&p->data, &p->cdata, p->ndata + kl + vl, 1))
    return JDB_ENOMEM;
  struct capi_pipe_op *op = &p->ops[p->nops++];
  *op = (struct capi_pipe_op){.kind = kind, .shard = t->shard, .table = t->id, .off = p->ndata,
                              .klen = (uint32_t)kl, .vlen = (uint32_t)vl};
  memcpy(p->data + p->ndata, k, kl);
  if (vl)
    memcpy(p->data + p->ndata + kl, v, vl);
  p->ndata += kl + vl;
  return JDB_OK;
}

int jdb_pipe_put(jdb_pipe_t *p, jdb_table_t *t, const void *k, size_t kl, const void *v,
                 size_t vl)
{
  return capi_pipe_add(p, CAPI_PIPE_PUT, t, k, kl, v, vl);
}

int jdb_pipe_get(jdb_pipe_t *p, jdb_table_t *t, const void *k, size_t kl)
{
  return capi_pipe_add(p, CAPI_PIPE_GET, t, k, kl, NULL, 0);
}

int jdb_pipe_del(jdb_pipe_t *p, jdb_table_t *t, const void *k, size_t kl)
{
  return capi_pipe_add(p, CAPI_PIPE_DEL, t, k, kl, NULL, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* On the shard */

/* The end (exclusive, in r->idx) of the batch of writes to one table starting at j. */
static size_t capi_pipe_group_end(const struct capi_pipe_run *r, size_t j)
{
  const struct capi_pipe_op *ops = r->p->ops;
  uint64_t table = ops[r->idx[j]].table;
  size_t bytes = 0, e = j;
  while (e < r->n && e - j < JDB_BATCH_MAX) {
    const struct capi_pipe_op *op = &ops[r->idx[e]];
    if (op->kind == CAPI_PIPE_GET || op->table != table ||
        (e > j && bytes + op->klen + op->vlen > CAPI_PIPE_GROUP_BYTES))
      break;
    bytes += op->klen + op->vlen;
    e++;
  }
  return e;
}

static int capi_pipe_write(struct tab *tab, struct capi_pipe_run *r, size_t j, size_t e,
                           unsigned flags)
{
  const struct jdb_pipe *p = r->p;
  for (size_t k = j; k < e; k++) {
    const struct capi_pipe_op *op = &p->ops[r->idx[k]];
    r->tops[k - j] = (struct tab_op){.kind = op->kind == CAPI_PIPE_PUT ? TAB_PUT : TAB_DEL,
                                     .key = p->data + op->off, .klen = op->klen,
                                     .val = p->data + op->off + op->klen, .vlen = op->vlen};
  }
  return capi_write_rc(
      tab_write(tab, p->ops[r->idx[j]].table, r->tops, (uint32_t)(e - j), flags, NULL));
}

/* The consecutive gets of one table from position j, as one tab_get_many (the lookups overlap
   their cache misses; bounded so that the scratch stays on the stack); returns the position
   after them. A dropped table's data stays readable until checkpoints erase it: gone for the
   API, JDB_NOTFOUND. */
#define CAPI_PIPE_GETS 64u
static size_t capi_pipe_gets(struct tab *tab, struct capi_pipe_run *r, size_t j)
{
  struct capi_pipe_op *ops = r->p->ops;
  uint64_t table = ops[r->idx[j]].table;
  size_t e = j;
  while (e < r->n && e - j < CAPI_PIPE_GETS && ops[r->idx[e]].kind == CAPI_PIPE_GET &&
         ops[r->idx[e]].table == table)
    e++;
  if (!tab_table_live(tab, table)) {
    for (size_t k = j; k < e; k++)
      ops[r->idx[k]].rc = JDB_NOTFOUND;
    return e;
  }
  struct tab_get_req q[CAPI_PIPE_GETS];
  for (size_t k = j; k < e; k++) {
    const struct capi_pipe_op *op = &ops[r->idx[k]];
    q[k - j] = (struct tab_get_req){.key = r->p->data + op->off, .klen = op->klen};
  }
  tab_get_many(tab, NULL, table, q, e - j);
  for (size_t k = j; k < e; k++) {
    struct capi_pipe_op *op = &ops[r->idx[k]];
    op->rc = q[k - j].rc;
    op->val = q[k - j].val;
    op->val_len = q[k - j].vlen;
  }
  return e;
}

static int capi_pipe_run(struct tab *tab, void *arg)
{
  struct capi_pipe_run *r = arg;
  struct capi_pipe_op *ops = r->p->ops;
  size_t last = 0;           /* 1 + the position of the shard's last write (0: none) */
  for (size_t j = 0; j < r->n; j++)
    if (ops[r->idx[j]].kind != CAPI_PIPE_GET)
      last = j + 1;
  int unwaited = 0;          /* a NOWAIT write succeeded and no later wait covered it */
  for (size_t j = 0; j < r->n;) {
    struct capi_pipe_op *op = &ops[r->idx[j]];
    if (op->kind == CAPI_PIPE_GET) {
      j = capi_pipe_gets(tab, r, j);
      continue;
    }
    size_t e = capi_pipe_group_end(r, j);
    unsigned flags = e >= last ? r->last_flags : TAB_NOWAIT;
    int rc = capi_pipe_write(tab, r, j, e, flags);
    for (size_t k = j; k < e; k++)
      ops[r->idx[k]].rc = rc;
    if (flags == TAB_NOWAIT)
      unwaited |= rc == JDB_OK;
    else if (rc == JDB_OK)
      unwaited = 0;
    j = e;
  }
  if (unwaited) {
    /* The last write failed before it could wait for the earlier ones: wait for them here
       (durably: the tablet has no cheaper wait outside a write; this is the error path). */
    int rc = tab_flush(tab);
    for (size_t j = 0; rc && j < r->n; j++) {
      struct capi_pipe_op *op = &ops[r->idx[j]];
      if (op->kind != CAPI_PIPE_GET && op->rc == JDB_OK)
        op->rc = rc;
    }
  }
  return JDB_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Exec and results */

int jdb_pipe_exec(jdb_pipe_t *p, unsigned flags)
{
  if (!p || (flags & ~JDB_SYNC))
    return JDB_EINVAL;
  capi_pipe_results_free(p);
  if (p->nops == 0)
    return JDB_OK;
  if (capi_grow((void **)&p->order, &p->corder, p->nops, sizeof *p->order) ||
      capi_grow((void **)&p->tops, &p->ctops, p->nops, sizeof *p->tops))
    return JDB_ENOMEM;
  uint32_t shards = p->db->shards;
  memset(p->per_shard, 0, shards * sizeof *p->per_shard);
  for (size_t i = 0; i < p->nops; i++)
    p->per_shard[p->ops[i].shard]++;
  /* per_shard[s] becomes the start of shard s's slice of order[]. */
  size_t nreq = 0, at = 0;
  for (uint32_t s = 0; s < shards; s++) {
    size_t n = p->per_shard[s];
    if (n) {
      p->runs[nreq] = (struct capi_pipe_run){.p = p, .idx = p->order + at, .n = n,
                                             .tops = p->tops + at,
                                             .last_flags = (flags & JDB_SYNC) ? TAB_SYNC : 0};
      p->reqs[nreq] = (struct rt_req){.shard = s, .fn = capi_pipe_run, .arg = &p->runs[nreq],
                                      .rc = JDB_ECLOSED};
      nreq++;
    }
    p->per_shard[s] = at;
    at += n;
  }
  for (size_t i = 0; i < p->nops; i++)
    p->order[p->per_shard[p->ops[i].shard]++] = i;
  p->nexec = p->nops;
  int rc = rt_call_many(p->db->rt, p->reqs, nreq);
  /* capi_pipe_run always returns JDB_OK: any other rc is the runtime's (the shard never ran). */
  for (size_t q = 0; q < nreq; q++) {
    const struct capi_pipe_run *r = &p->runs[q];
    for (size_t j = 0; p->reqs[q].rc != JDB_OK && j < r->n; j++) {
      p->ops[r->idx[j]].rc = p->reqs[q].rc;
      p->ops[r->idx[j]].val = NULL;
    }
  }
  return rc;
}

int jdb_pipe_result(jdb_pipe_t *p, size_t i, const void **val, size_t *vlen)
{
  if (val)
    *val = NULL;
  if (vlen)
    *vlen = 0;
  if (!p || i >= p->nexec)
    return JDB_EINVAL;
  const struct capi_pipe_op *op = &p->ops[i];
  if (op->rc == JDB_OK && op->kind == CAPI_PIPE_GET) {
    if (val)
      *val = op->val;
    if (vlen)
      *vlen = op->val_len;
  }
  return op->rc;
}
