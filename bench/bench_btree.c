/*
 * bench_btree.c - `jdb_bench btree`: the copy-on-write B+ tree (index/btree) over store/page,
 * next to LMDB in the same process when the build found liblmdb (JDB_HAVE_LMDB; else JDB only).
 *
 * Data set (untimed to generate): N random 16-byte keys (N = 10 M; 1 M with --quick; the
 * environment variable JDB_BENCH_BTREE_N overrides), cut into runs of 100 k in generation order,
 * each run sorted; value i is an 8-byte counter. Both engines get the same runs and, in every
 * timed phase, the same sequence of keys (same seed).
 *
 * Cases (JDB and LMDB rows side by side, then notes with every repeat and the ratio JDB/LMDB;
 * both engines run behind one small interface, struct bb_eng, so the timed loops are shared):
 *   btree.load.*            every run applied as one bt_apply (BT_OP_PUT, BT_INLINE, 8-byte
 *                           value, seq = run number) and made durable with pg_commit
 *                           (next.tree_root = bt_root: O_DIRECT page writes + fdatasync, then the
 *                           superblock + fdatasync); pg_reclaim after each commit, since no reader
 *                           holds an old root. LMDB: one write txn per run, mdb_put of each key in
 *                           sorted order (not MDB_APPEND: keys are random across runs), default
 *                           durable commit (MDB_NOSYNC off: fdatasync of the data, then of the
 *                           meta page). ops = keys, time includes every commit.
 *   btree.get.warm.*        bt_get / mdb_get (one read txn per repeat) of random existing keys,
 *                           every value checked. Warm: the pg frame budget holds the whole tree
 *                           (sized from the page count) and bt_check has pinned every page
 *                           before; LMDB's map is in the page cache after the load and a full
 *                           cursor scan has faulted it in. The note gives pg misses in the phase
 *                           (expect 0).
 *   btree.get.cold.*        the same, each repeat from cold: JDB closes the pg, drops the file's
 *                           page cache (posix_fadvise DONTNEED; pg reads with O_DIRECT anyway)
 *                           and reopens it with fresh frames; LMDB closes the env, drops
 *                           data.mdb's page cache and reopens with MDB_NORDAHEAD, so a fault
 *                           reads one 4 KiB page as pg does (the note gives data.mdb's resident
 *                           share after the drop, measured with mincore). Each repeat times the
 *                           first max(1000, N/400) lookups from the cold start (at most its time
 *                           slice), so most land on a leaf not read yet while the upper levels
 *                           warm up within the first few hundred: expect the device's QD1 read
 *                           latency times the misses per lookup (pg misses; LMDB major faults).
 *   btree.seek+next10.*     seek to a random existing key, then 10 steps forward
 *   btree.seek+prev10.*     (bt_cursor_seek + bt_cursor_next; bt_cursor_seek_prev + bt_cursor_prev;
 *                           LMDB MDB_SET_RANGE + MDB_NEXT; MDB_SET_RANGE, MDB_PREV if it landed
 *                           past the key, + MDB_PREV). ops = seeks; every step is checked for key
 *                           order and the seek for the right key and value. The note gives JDB's
 *                           prev/next ratio (target >= 0.9: reverse steps should cost what
 *                           forward ones do).
 *   btree.space.*           bytes per entry: JDB leaf bytes (bt_check_stats), tree pages x 4 KiB,
 *                           the whole pages file (free pages included); LMDB tree pages x psize
 *                           (mdb_stat) and the map's used pages (last_pgno + 1). For the random
 *                           keys and, at a smaller N (1 M; 250 k with --quick), two shaped key
 *                           sets loaded the same way: "user:%09u" (14 bytes) and 8-byte BE table
 *                           id | 4-byte BE series id | 8-byte BE timestamp (4 tables x 256 series
 *                           x N/1024 timestamps), each with leaf bytes with and without the leaf
 *                           prefix compression (bt_check_stats.prefix_saved).
 *
 * Lookup and cursor phases are 3 repeats of secs/3 each; the row is the median repeat (the note
 * lists all three). Everything runs outside fibers: pg and bt calls block on their I/O.
 */
#include "bench.h"

#include "bt.h"
#include "fs.h"
#include "jdb.h"
#include "pg.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef JDB_HAVE_LMDB
#include <lmdb.h>
#endif

#define BB_RUN 100000u        /* ops per bt_apply / per LMDB write txn */
#define BB_KMAX 24u           /* key room in a record */
#define BB_REPS 3
#define BB_STEPS 10
#define BB_LAT_MAX (1u << 20)

struct bb_rec {
  uint8_t k[BB_KMAX];
  uint64_t v;
};

struct bb_set {
  const char *name;
  struct bb_rec *rec;   /* runs of BB_RUN, each sorted by key */
  size_t n;
  uint32_t klen;        /* every key of a set has this length */
};

struct bb_rep {
  uint64_t ops;
  double secs;
};

static uint32_t bb_sort_klen;
static int bb_rec_cmp(const void *a, const void *b)
{
  return memcmp(((const struct bb_rec *)a)->k, ((const struct bb_rec *)b)->k, bb_sort_klen);
}

static void bb_sort_runs(struct bb_set *s)
{
  bb_sort_klen = s->klen;
  for (size_t i = 0; i < s->n; i += BB_RUN)
    qsort(s->rec + i, s->n - i < BB_RUN ? s->n - i : BB_RUN, sizeof *s->rec, bb_rec_cmp);
}

static void bb_put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i++)
    p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* shape 0: random 16 bytes; 1: "user:%09u"; 2: table | series | timestamp. Shaped sets are
   generated in key order, then shuffled, so runs hold random keys as in the random set. */
static int bb_make_set(struct bb_set *s, const char *name, int shape, size_t n, uint64_t seed)
{
  s->name = name;
  s->n = n;
  s->rec = calloc(n ? n : 1, sizeof *s->rec);
  if (!s->rec)
    return JDB_ENOMEM;
  uint64_t rng = seed;
  size_t per_series = (n + 1023) / 1024;
  for (size_t i = 0; i < n; i++) {
    struct bb_rec *r = &s->rec[i];
    r->v = i;
    if (shape == 0) {
      uint64_t a = bench_rand(&rng), b = bench_rand(&rng);
      memcpy(r->k, &a, 8);
      memcpy(r->k + 8, &b, 8);
    } else if (shape == 1) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "user:%09u", (unsigned)i);
      memcpy(r->k, tmp, 14);
    } else {
      size_t series = i / per_series;   /* 0 .. 1023: 4 tables x 256 series */
      bb_put_be(r->k, 1000 + series / 256, 8);
      bb_put_be(r->k + 8, 7 + series % 256, 4);
      bb_put_be(r->k + 12, 1700000000000000000ull + (uint64_t)(i % per_series) * 1000000000ull, 8);
    }
  }
  s->klen = shape == 0 ? 16 : shape == 1 ? 14 : 20;
  if (shape != 0)
    for (size_t i = n; i > 1; i--) {
      size_t j = bench_rand(&rng) % i;
      struct bb_rec t = s->rec[i - 1];
      s->rec[i - 1] = s->rec[j];
      s->rec[j] = t;
    }
  bb_sort_runs(s);
  return JDB_OK;
}

static int bb_cmp_rep(const void *a, const void *b)
{
  const struct bb_rep *x = a, *y = b;
  double rx = (double)x->ops / x->secs, ry = (double)y->ops / y->secs;
  return rx < ry ? -1 : rx > ry;
}

/* Sort reps by rate; returns the median one and writes "a / b / c" ops/s to buf. */
static struct bb_rep bb_median(struct bb_rep *r, int n, char *buf, size_t cap)
{
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < n && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%.0f", i ? " / " : "", (double)r[i].ops / r[i].secs);
  qsort(r, (size_t)n, sizeof *r, bb_cmp_rep);
  return r[n / 2];
}

static double bb_rate(struct bb_rep r)
{
  return r.secs > 0 ? (double)r.ops / r.secs : 0;
}

static void bb_drop_cache(const char *path)
{
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

#ifdef JDB_HAVE_LMDB
/* Share of the file's pages in the page cache (mincore), or -1. */
static double bb_resident(const char *path)
{
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  struct stat st;
  double res = -1;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    size_t len = (size_t)st.st_size, pg = (size_t)sysconf(_SC_PAGESIZE), np = (len + pg - 1) / pg;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *vec = malloc(np);
    if (m != MAP_FAILED && vec && mincore(m, len, vec) == 0) {
      size_t in = 0;
      for (size_t i = 0; i < np; i++)
        in += vec[i] & 1;
      res = (double)in / (double)np;
    }
    free(vec);
    if (m != MAP_FAILED)
      munmap(m, len);
  }
  close(fd);
  return res;
}

#endif /* JDB_HAVE_LMDB */

static uint64_t bb_file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The timed loops, one for both engines                                                       */

#define BB_END 0x7fff0000   /* an engine's "no such key" / "past the end" (not an error code) */

struct bb_kv {            /* one entry as an engine returns it */
  const uint8_t *k, *v;
  uint32_t klen, vlen;    /* vlen UINT32_MAX: not an inline value */
};

/* One engine: rc 0, BB_END, or the engine's error code (named by strerr). begin / end bracket
   one repeat (LMDB: a read txn and a cursor; JDB: a cursor). cold drops every cache and reopens;
   misses counts page reads so far (pg misses; LMDB: major faults of the process). */
struct bb_eng {
  const char *name;
  void *h;
  int (*begin)(void *h);
  void (*end)(void *h);
  int (*get)(void *h, const uint8_t *k, uint32_t klen, struct bb_kv *out);
  int (*seek)(void *h, const uint8_t *k, uint32_t klen, int reverse, struct bb_kv *out);
  int (*step)(void *h, int reverse, struct bb_kv *out);
  int (*cold)(void *h);
  uint64_t (*misses)(void *h);
  const char *(*strerr)(int rc);
};

static int bb_val_ok(const struct bb_kv *kv, const struct bb_rec *r)
{
  return kv->vlen == 8 && memcmp(kv->v, &r->v, 8) == 0;
}

static void bb_bad(const struct bb_eng *e, uint64_t *bad, const char *what,
                   const struct bb_rec *r, int rc)
{
  if (*bad < 3)
    bench_note("btree: %s %s, key #%llu: %s", e->name, what, (unsigned long long)r->v,
               rc ? e->strerr(rc) : "wrong entry");
  (*bad)++;
}

/* The loops run between e->begin and e->end (bb_phase). */

/* Random existing keys until the deadline or max_ops; lat (may be NULL) gets per-lookup ns. */
static void bb_gets(const struct bb_eng *e, const struct bb_set *s, uint64_t seed, double secs,
                    uint64_t max_ops, struct bb_rep *rep, uint64_t *lat, size_t *nlat,
                    uint64_t *bad)
{
  uint64_t rng = seed, ops = 0;
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(secs * 1e9), now = t0;
  while (now < deadline && ops < max_ops) {
    for (int i = 0; i < 256 && ops < max_ops; i++, ops++) {
      const struct bb_rec *r = &s->rec[bench_rand(&rng) % s->n];
      struct bb_kv kv;
      uint64_t a = lat ? bench_now_ns() : 0;
      int rc = e->get(e->h, r->k, s->klen, &kv);
      if (lat && *nlat < BB_LAT_MAX)
        lat[(*nlat)++] = bench_now_ns() - a;
      if (rc || !bb_val_ok(&kv, r))
        bb_bad(e, bad, "lookup", r, rc);
    }
    now = bench_now_ns();
  }
  rep->ops = ops;
  rep->secs = (double)(now - t0) / 1e9;
}

/* Seek to random existing keys (forward, or backward: last entry <= key), then BB_STEPS steps
   the same way, each checked for key order. */
static void bb_scans(const struct bb_eng *e, const struct bb_set *s, int reverse, uint64_t seed,
                     double secs, struct bb_rep *rep, uint64_t *steps, uint64_t *bad)
{
  uint8_t prev[BB_KMAX];
  uint64_t rng = seed, ops = 0;
  uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(secs * 1e9), now = t0;
  while (now < deadline) {
    for (int i = 0; i < 64; i++) {
      const struct bb_rec *r = &s->rec[bench_rand(&rng) % s->n];
      struct bb_kv kv;
      int rc = e->seek(e->h, r->k, s->klen, reverse, &kv);
      if (rc || kv.klen != s->klen || memcmp(kv.k, r->k, s->klen) || !bb_val_ok(&kv, r)) {
        bb_bad(e, bad, reverse ? "seek_prev" : "seek", r, rc);
        continue;
      }
      memcpy(prev, kv.k, s->klen);
      for (int k = 0; k < BB_STEPS; k++) {
        rc = e->step(e->h, reverse, &kv);
        if (rc == BB_END)
          break;
        int cmp = !rc && kv.klen == s->klen ? memcmp(kv.k, prev, s->klen) : 0;
        if (rc || (reverse ? cmp >= 0 : cmp <= 0) || kv.vlen != 8) {
          bb_bad(e, bad, reverse ? "step back after" : "step after", r, rc);
          break;
        }
        memcpy(prev, kv.k, s->klen);
        (*steps)++;
      }
    }
    ops += 64;
    now = bench_now_ns();
  }
  rep->ops = ops;
  rep->secs = (double)(now - t0) / 1e9;
}

/* ------------------------------------------------------------------------------------------- */
/* JDB side                                                                                     */

struct bb_jdb {
  struct fs_ctx *ctx;
  char path[4096];
  struct pg *pg;
  uint64_t root;
  uint32_t frames;
  struct bt_cursor *cur;   /* between begin and end */
  uint8_t vbuf[BT_INLINE_MAX];
};

static int bb_jdb_open(struct bb_jdb *j, uint32_t frames, int create)
{
  struct pg_opts o = {.frames = frames};
  bt_pg_opts(&o);
  j->frames = frames;
  return pg_open(j->ctx, j->path, &o, create, &j->pg);
}

/* Frames for the whole tree plus the copies a run dirties (copy-on-write keeps the old page
   resident next to its new copy until eviction) and slack. */
static uint32_t bb_frames_for(uint64_t pages)
{
  uint64_t f = pages + 4096;
  return f > (1u << 26) ? (1u << 26) : (uint32_t)f;
}

struct bb_load {
  double secs, apply_secs, commit_secs;
  struct bt_apply_stats ast;
};

static int bb_jdb_load(struct bb_jdb *j, const struct bb_set *s, struct bb_load *ld)
{
  remove(j->path);
  /* Random keys fill leaves ~70%; ~40 bytes per entry: estimate, twice for the dirty copies. */
  uint32_t frames = bb_frames_for(2 * ((uint64_t)s->n * 40 / 2800) + 1024);
  int rc = bb_jdb_open(j, frames, 1);
  if (rc) {
    bench_note("btree: pg_open %s: %s", j->path, jdb_strerror(rc));
    return rc;
  }
  struct bt *t = NULL;
  struct bt_opts bo = {.inline_max = BT_INLINE_DEF};
  rc = bt_open(j->pg, &bo, 0, &t);
  struct bt_op *ops = malloc(BB_RUN * sizeof *ops);
  if (!rc && !ops)
    rc = JDB_ENOMEM;
  memset(ld, 0, sizeof *ld);
  uint64_t t0 = bench_now_ns();
  for (size_t base = 0; base < s->n && !rc; base += BB_RUN) {
    size_t m = s->n - base < BB_RUN ? s->n - base : BB_RUN;
    for (size_t i = 0; i < m; i++) {
      const struct bb_rec *r = &s->rec[base + i];
      ops[i] = (struct bt_op){.op = BT_OP_PUT, .kind = BT_INLINE, .key = r->k, .klen = s->klen,
                              .seq = base / BB_RUN + 1, .val = &r->v, .vlen = 8};
    }
    struct bt_apply_stats st = {0};
    uint64_t a = bench_now_ns();
    rc = bt_apply(t, ops, m, &st);
    uint64_t b = bench_now_ns();
    if (rc) {
      bench_note("btree: bt_apply of run %zu: %s", base / BB_RUN, jdb_strerror(rc));
      break;
    }
    struct layout_super next = *pg_super(j->pg);
    next.tree_root = bt_root(t);
    rc = pg_commit(j->pg, &next);
    uint64_t c = bench_now_ns();
    if (rc) {
      bench_note("btree: pg_commit of run %zu: %s", base / BB_RUN, jdb_strerror(rc));
      break;
    }
    pg_reclaim(j->pg, pg_super(j->pg)->generation);
    ld->apply_secs += (double)(b - a) / 1e9;
    ld->commit_secs += (double)(c - b) / 1e9;
    ld->ast.inserted += st.inserted;
    ld->ast.replaced += st.replaced;
    ld->ast.pages_read += st.pages_read;
    ld->ast.pages_written += st.pages_written;
    ld->ast.pages_freed += st.pages_freed;
    ld->ast.merges += st.merges;
  }
  ld->secs = (double)(bench_now_ns() - t0) / 1e9;
  j->root = t ? bt_root(t) : 0;
  bt_close(t);
  free(ops);
  if (!rc && ld->ast.inserted != s->n) {
    bench_note("btree: VERIFY FAILED: bt_apply inserted %llu of %zu keys",
               (unsigned long long)ld->ast.inserted, s->n);
    rc = JDB_ECORRUPT;
  }
  return rc;
}

/* Reopen with a budget for the whole tree (computed from the page count) unless it fits. */
static int bb_jdb_reopen(struct bb_jdb *j, int drop_cache)
{
  struct pg_stats ps;
  pg_stats_get(j->pg, &ps);
  uint32_t frames = bb_frames_for(ps.page_count);
  pg_close(j->pg);
  j->pg = NULL;
  if (drop_cache)
    bb_drop_cache(j->path);
  int rc = bb_jdb_open(j, frames, 0);
  if (!rc && pg_super(j->pg)->tree_root != j->root) {
    bench_note("btree: VERIFY FAILED: reopened root %llu, loaded %llu",
               (unsigned long long)pg_super(j->pg)->tree_root, (unsigned long long)j->root);
    rc = JDB_ECORRUPT;
  }
  return rc;
}

static int bb_jdb_kv(int rc, const struct bt_ent *e, struct bb_kv *out)
{
  if (rc)
    return rc == JDB_NOTFOUND ? BB_END : rc;
  *out = (struct bb_kv){.k = e->key, .klen = e->klen, .v = e->val,
                        .vlen = e->kind == BT_INLINE ? e->vlen : UINT32_MAX};
  return 0;
}

static int bb_jdb_begin(void *h)
{
  struct bb_jdb *j = h;
  j->cur = malloc(sizeof *j->cur);
  if (!j->cur)
    return JDB_ENOMEM;
  bt_cursor_init(j->cur, j->pg, j->root);
  return 0;
}

static void bb_jdb_end(void *h)
{
  struct bb_jdb *j = h;
  bt_cursor_close(j->cur);
  free(j->cur);
  j->cur = NULL;
}

static int bb_jdb_get(void *h, const uint8_t *k, uint32_t klen, struct bb_kv *out)
{
  struct bb_jdb *j = h;
  struct bt_ent e;
  return bb_jdb_kv(bt_get(j->pg, j->root, k, klen, UINT64_MAX, &e, j->vbuf), &e, out);
}

static int bb_jdb_seek(void *h, const uint8_t *k, uint32_t klen, int reverse, struct bb_kv *out)
{
  struct bb_jdb *j = h;
  int rc = reverse ? bt_cursor_seek_prev(j->cur, k, klen, 0)
                   : bt_cursor_seek(j->cur, k, klen, UINT64_MAX);
  return bb_jdb_kv(rc, bt_cursor_ent(j->cur), out);
}

static int bb_jdb_step(void *h, int reverse, struct bb_kv *out)
{
  struct bb_jdb *j = h;
  int rc = reverse ? bt_cursor_prev(j->cur) : bt_cursor_next(j->cur);
  return bb_jdb_kv(rc, bt_cursor_ent(j->cur), out);
}

static int bb_jdb_cold(void *h)
{
  return bb_jdb_reopen(h, 1);
}

static uint64_t bb_jdb_misses(void *h)
{
  struct pg_stats ps;
  pg_stats_get(((struct bb_jdb *)h)->pg, &ps);
  return ps.misses;
}

static void bb_jdb_eng(struct bb_jdb *j, struct bb_eng *e)
{
  *e = (struct bb_eng){.name = "JDB", .h = j, .begin = bb_jdb_begin, .end = bb_jdb_end,
                       .get = bb_jdb_get, .seek = bb_jdb_seek, .step = bb_jdb_step,
                       .cold = bb_jdb_cold, .misses = bb_jdb_misses, .strerr = jdb_strerror};
}

/* ------------------------------------------------------------------------------------------- */
/* LMDB side                                                                                    */

#ifdef JDB_HAVE_LMDB
struct bb_lmdb {
  char dir[4096];
  char data[4200];
  MDB_env *env;
  MDB_dbi dbi;
  size_t n;               /* entries (sizes the map) */
  MDB_txn *rtxn;          /* between begin and end */
  MDB_cursor *cur;
  double resident;        /* data.mdb's resident share after the last cold drop */
};

static int bb_lmdb_err(const char *what, int rc)
{
  bench_note("btree: LMDB %s: %s", what, mdb_strerror(rc));
  return JDB_EIO;
}

static int bb_lmdb_open(struct bb_lmdb *l, size_t n, unsigned flags)
{
  int rc = mdb_env_create(&l->env);
  if (rc)
    return bb_lmdb_err("mdb_env_create", rc);
  size_t map = (size_t)n * 256 + (1ull << 30);
  if ((rc = mdb_env_set_mapsize(l->env, map)) != 0 ||
      (rc = mdb_env_open(l->env, l->dir, flags, 0644)) != 0) {
    mdb_env_close(l->env);
    l->env = NULL;
    return bb_lmdb_err("mdb_env_open", rc);
  }
  MDB_txn *txn;
  if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0)
    return bb_lmdb_err("mdb_txn_begin", rc);
  if ((rc = mdb_dbi_open(txn, NULL, 0, &l->dbi)) != 0) {
    mdb_txn_abort(txn);
    return bb_lmdb_err("mdb_dbi_open", rc);
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    return bb_lmdb_err("mdb_txn_commit", rc);
  return JDB_OK;
}

static void bb_lmdb_close(struct bb_lmdb *l)
{
  if (l->env)
    mdb_env_close(l->env);
  l->env = NULL;
}

static int bb_lmdb_load(struct bb_lmdb *l, const struct bb_set *s, struct bb_load *ld)
{
  bench_rmdir(l->dir);
  mkdir(l->dir, 0755);
  snprintf(l->data, sizeof l->data, "%s/data.mdb", l->dir);
  l->n = s->n;
  int rc = bb_lmdb_open(l, s->n, 0);
  if (rc)
    return rc;
  memset(ld, 0, sizeof *ld);
  uint64_t t0 = bench_now_ns();
  for (size_t base = 0; base < s->n; base += BB_RUN) {
    size_t m = s->n - base < BB_RUN ? s->n - base : BB_RUN;
    MDB_txn *txn;
    uint64_t a = bench_now_ns();
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0)
      return bb_lmdb_err("mdb_txn_begin", rc);
    for (size_t i = 0; i < m; i++) {
      const struct bb_rec *r = &s->rec[base + i];
      MDB_val k = {.mv_size = s->klen, .mv_data = (void *)r->k};
      MDB_val v = {.mv_size = 8, .mv_data = (void *)&r->v};
      if ((rc = mdb_put(txn, l->dbi, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return bb_lmdb_err("mdb_put", rc);
      }
    }
    uint64_t b = bench_now_ns();
    if ((rc = mdb_txn_commit(txn)) != 0)
      return bb_lmdb_err("mdb_txn_commit", rc);
    uint64_t c = bench_now_ns();
    ld->apply_secs += (double)(b - a) / 1e9;
    ld->commit_secs += (double)(c - b) / 1e9;
  }
  ld->secs = (double)(bench_now_ns() - t0) / 1e9;
  MDB_stat st;
  MDB_txn *txn;
  if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) == 0) {
    if (mdb_stat(txn, l->dbi, &st) == 0 && st.ms_entries != s->n) {
      bench_note("btree: VERIFY FAILED: LMDB holds %zu of %zu keys", st.ms_entries, s->n);
      rc = JDB_ECORRUPT;
    }
    mdb_txn_abort(txn);
  }
  return rc;
}

/* Fault the whole map in: one cursor pass. Returns entries seen. */
static size_t bb_lmdb_scan(struct bb_lmdb *l)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  size_t n = 0;
  if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn))
    return 0;
  if (mdb_cursor_open(txn, l->dbi, &cur) == 0) {
    MDB_val k, v;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
      n++;
    mdb_cursor_close(cur);
  }
  mdb_txn_abort(txn);
  return n;
}

static int bb_lmdb_kv(int rc, const MDB_val *k, const MDB_val *v, struct bb_kv *out)
{
  if (rc)
    return rc == MDB_NOTFOUND ? BB_END : rc;
  *out = (struct bb_kv){.k = k->mv_data, .klen = (uint32_t)k->mv_size, .v = v->mv_data,
                        .vlen = (uint32_t)v->mv_size};
  return 0;
}

static int bb_lmdb_begin(void *h)
{
  struct bb_lmdb *l = h;
  int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->rtxn);
  if (!rc && (rc = mdb_cursor_open(l->rtxn, l->dbi, &l->cur)) != 0)
    mdb_txn_abort(l->rtxn);
  return rc;
}

static void bb_lmdb_end(void *h)
{
  struct bb_lmdb *l = h;
  mdb_cursor_close(l->cur);
  mdb_txn_abort(l->rtxn);
}

static int bb_lmdb_get(void *h, const uint8_t *k, uint32_t klen, struct bb_kv *out)
{
  struct bb_lmdb *l = h;
  MDB_val kv = {.mv_size = klen, .mv_data = (void *)k}, v;
  return bb_lmdb_kv(mdb_get(l->rtxn, l->dbi, &kv, &v), &kv, &v, out);
}

static int bb_lmdb_seek(void *h, const uint8_t *k, uint32_t klen, int reverse, struct bb_kv *out)
{
  struct bb_lmdb *l = h;
  MDB_val kv = {.mv_size = klen, .mv_data = (void *)k}, v;
  int rc = mdb_cursor_get(l->cur, &kv, &v, MDB_SET_RANGE);
  if (reverse) {   /* last key <= k */
    if (rc == MDB_NOTFOUND)
      rc = mdb_cursor_get(l->cur, &kv, &v, MDB_LAST);
    else if (rc == 0 && (kv.mv_size != klen || memcmp(kv.mv_data, k, klen)))
      rc = mdb_cursor_get(l->cur, &kv, &v, MDB_PREV);
  }
  return bb_lmdb_kv(rc, &kv, &v, out);
}

static int bb_lmdb_step(void *h, int reverse, struct bb_kv *out)
{
  struct bb_lmdb *l = h;
  MDB_val kv, v;
  return bb_lmdb_kv(mdb_cursor_get(l->cur, &kv, &v, reverse ? MDB_PREV : MDB_NEXT), &kv, &v,
                    out);
}

/* Close, drop data.mdb from the page cache, reopen without read-ahead (a fault then reads one
   page, as pg's misses do). */
static int bb_lmdb_cold(void *h)
{
  struct bb_lmdb *l = h;
  bb_lmdb_close(l);
  bb_drop_cache(l->data);
  l->resident = bb_resident(l->data);
  return bb_lmdb_open(l, l->n, MDB_NORDAHEAD);
}

static uint64_t bb_lmdb_misses(void *h)
{
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_majflt : 0;
}

static const char *bb_lmdb_strerr(int rc)
{
  return mdb_strerror(rc);
}

static void bb_lmdb_eng(struct bb_lmdb *l, struct bb_eng *e)
{
  *e = (struct bb_eng){.name = "LMDB", .h = l, .begin = bb_lmdb_begin, .end = bb_lmdb_end,
                       .get = bb_lmdb_get, .seek = bb_lmdb_seek, .step = bb_lmdb_step,
                       .cold = bb_lmdb_cold, .misses = bb_lmdb_misses, .strerr = bb_lmdb_strerr};
}

struct bb_lspace {
  MDB_stat st;
  uint64_t used_pages;
};

static int bb_lmdb_space(struct bb_lmdb *l, struct bb_lspace *sp)
{
  memset(sp, 0, sizeof *sp);
  MDB_txn *txn;
  int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
  if (rc)
    return bb_lmdb_err("mdb_txn_begin", rc);
  rc = mdb_stat(txn, l->dbi, &sp->st);
  mdb_txn_abort(txn);
  MDB_envinfo ei;
  if (!rc)
    rc = mdb_env_info(l->env, &ei);
  if (rc)
    return bb_lmdb_err("mdb_stat", rc);
  sp->used_pages = (uint64_t)ei.me_last_pgno + 1;
  return JDB_OK;
}
#endif /* JDB_HAVE_LMDB */

/* ------------------------------------------------------------------------------------------- */
/* Cases                                                                                        */

struct bb_run {
  const struct bench_env *env;
  struct bb_set *set;
  struct bb_jdb j;
  int have_lmdb;
#ifdef JDB_HAVE_LMDB
  struct bb_lmdb l;
#endif
  double rep_secs;
  uint64_t *lat;
  int fail;
};

static void bb_load_case(struct bb_run *r)
{
  struct bb_load jl, ll = {0};
  char name[96];
  snprintf(name, sizeof name, "btree.load.%s.jdb", r->set->name);
  if (bb_jdb_load(&r->j, r->set, &jl)) {
    r->fail = 1;
    return;
  }
  bench_row(name, r->set->n, jl.secs, 0, NULL, 0);
#ifdef JDB_HAVE_LMDB
  snprintf(name, sizeof name, "btree.load.%s.lmdb", r->set->name);
  if (bb_lmdb_load(&r->l, r->set, &ll)) {
    r->fail = 1;
    r->have_lmdb = 0;
  } else {
    bench_row(name, r->set->n, ll.secs, 0, NULL, 0);
  }
#endif
  struct pg_stats ps;
  pg_stats_get(r->j.pg, &ps);
  bench_note("btree.load.%s: %zu keys of %u bytes in runs of %u; JDB apply %.2f s + commit "
             "%.2f s, %llu pages written, %llu freed, %llu commits, %llu pg writes, %llu pg "
             "reads (%u frames)",
             r->set->name, r->set->n, r->set->klen, BB_RUN, jl.apply_secs, jl.commit_secs,
             (unsigned long long)jl.ast.pages_written, (unsigned long long)jl.ast.pages_freed,
             (unsigned long long)ps.commits, (unsigned long long)ps.writes,
             (unsigned long long)ps.reads, ps.frames);
  if (r->have_lmdb)
    bench_note("btree.load.%s: LMDB put %.2f s + commit %.2f s; JDB/LMDB keys/s %.2f",
               r->set->name, ll.apply_secs, ll.commit_secs, ll.secs / jl.secs);
}

static void bb_space_report(struct bb_run *r)
{
  char name[96];
  double n = (double)r->set->n;
  struct bt_check_stats cs = {0};
  int rc = bt_check(r->j.pg, r->j.root, BT_CHECK_FILL, &cs);
  if (rc) {
    bench_note("btree.space.%s: bt_check: %s", r->set->name, jdb_strerror(rc));
    r->fail = 1;
    return;
  }
  if (cs.entries != r->set->n) {
    bench_note("btree.space.%s: VERIFY FAILED: bt_check counted %llu entries, want %zu",
               r->set->name, (unsigned long long)cs.entries, r->set->n);
    r->fail = 1;
  }
  snprintf(name, sizeof name, "btree.space.%s.jdb", r->set->name);
  printf("%-30s B/entry: leaf bytes %.1f (without prefix compression %.1f; keys %.1f), tree "
         "pages %.1f, pages file %.1f; height %llu, %llu leaves + %llu branches\n",
         name, (double)cs.leaf_bytes / n, (double)(cs.leaf_bytes + cs.prefix_saved) / n,
         (double)cs.key_bytes / n, (double)(cs.leaves + cs.branches) * LAYOUT_PAGE_SIZE / n,
         (double)bb_file_size(r->j.path) / n, (unsigned long long)cs.height,
         (unsigned long long)cs.leaves, (unsigned long long)cs.branches);
#ifdef JDB_HAVE_LMDB
  struct bb_lspace ls;
  if (r->have_lmdb && bb_lmdb_space(&r->l, &ls) == JDB_OK) {
    snprintf(name, sizeof name, "btree.space.%s.lmdb", r->set->name);
    printf("%-30s B/entry: tree pages %.1f, used map %.1f, data.mdb %.1f; depth %u, %zu leaves "
           "+ %zu branches + %zu overflow\n",
           name,
           (double)(ls.st.ms_leaf_pages + ls.st.ms_branch_pages + ls.st.ms_overflow_pages) *
               ls.st.ms_psize / n,
           (double)ls.used_pages * ls.st.ms_psize / n, (double)bb_file_size(r->l.data) / n,
           ls.st.ms_depth, ls.st.ms_leaf_pages, ls.st.ms_branch_pages, ls.st.ms_overflow_pages);
  } else if (r->have_lmdb) {
    r->fail = 1;
  }
#endif
  fflush(stdout);
}

/* One lookup / scan phase for both engines: BB_REPS repeats each, median rows + ratio note. */
enum bb_phase { BB_GET_WARM, BB_GET_COLD, BB_SEEK_NEXT, BB_SEEK_PREV };

struct bb_acc {            /* one engine's repeats of a phase */
  struct bb_rep rep[BB_REPS];
  struct bb_rep med;
  char all[128];           /* every repeat's ops/s */
  uint64_t ops, bad, steps, misses;
  uint64_t *lat;           /* cold phase only */
  size_t nlat;
};

/* Returns JDB's median ops/s (0 if skipped or failed). */
static double bb_phase(struct bb_run *r, enum bb_phase ph)
{
  static const char *const names[] = {"btree.get.warm", "btree.get.cold", "btree.seek+next10",
                                      "btree.seek+prev10"};
  static const char *const how_cold[] = {
    "pg closed, pages file posix_fadvise(DONTNEED), reopened with fresh frames (O_DIRECT reads)",
    "env closed, data.mdb posix_fadvise(DONTNEED), reopened MDB_NORDAHEAD"};
  const char *base = names[ph];
  if (!bench_want(r->env, base))
    return 0;
  int cold = ph == BB_GET_COLD, ne = r->have_lmdb ? 2 : 1;
  struct bb_eng eng[2];
  struct bb_acc acc[2] = {{.lat = NULL}};
  bb_jdb_eng(&r->j, &eng[0]);
#ifdef JDB_HAVE_LMDB
  bb_lmdb_eng(&r->l, &eng[1]);
#endif
  for (int e = 0; e < ne && cold && r->lat; e++)
    acc[e].lat = r->lat + (size_t)e * BB_LAT_MAX;
  /* Cold: a bounded number of lookups from the cold start, so most reach a leaf not read yet
     (the upper levels warm up within the first few hundred). */
  uint64_t max_ops = cold ? (r->set->n / 400 > 1000 ? r->set->n / 400 : 1000) : UINT64_MAX;
  for (int i = 0; i < BB_REPS; i++) {
    uint64_t seed = r->env->seed * 7919 + (uint64_t)ph * 131 + (uint64_t)i;
    for (int e = 0; e < ne; e++) {
      struct bb_acc *a = &acc[e];
      int rc = cold ? eng[e].cold(eng[e].h) : 0;
      if (rc)
        bench_note("%s: %s cold reopen: %s", base, eng[e].name, eng[e].strerr(rc));
      if (!rc && (rc = eng[e].begin(eng[e].h)) != 0)
        bench_note("%s: %s: %s", base, eng[e].name, eng[e].strerr(rc));
      if (rc) {
        r->fail = 1;
        return 0;
      }
      uint64_t m0 = eng[e].misses(eng[e].h);
      if (ph <= BB_GET_COLD)
        bb_gets(&eng[e], r->set, seed, r->rep_secs, max_ops, &a->rep[i], a->lat, &a->nlat,
                &a->bad);
      else
        bb_scans(&eng[e], r->set, ph == BB_SEEK_PREV, seed, r->rep_secs, &a->rep[i], &a->steps,
                 &a->bad);
      a->misses += eng[e].misses(eng[e].h) - m0;
      eng[e].end(eng[e].h);
      a->ops += a->rep[i].ops;
    }
  }
  char how[96], name[96];
  if (cold)
    snprintf(how, sizeof how, "the first %llu lookups after a cold open (at most %.2f s)",
             (unsigned long long)max_ops, r->rep_secs);
  else
    snprintf(how, sizeof how, "%.2f s", r->rep_secs);
  for (int e = 0; e < ne; e++) {
    struct bb_acc *a = &acc[e];
    a->med = bb_median(a->rep, BB_REPS, a->all, sizeof a->all);
    snprintf(name, sizeof name, "%s.%s", base, e ? "lmdb" : "jdb");
    bench_row(name, a->med.ops, a->med.secs, 0, a->lat, a->nlat);
  }
  for (int e = 0; e < ne; e++) {
    struct bb_acc *a = &acc[e];
    double per = a->ops ? (double)a->misses / (double)a->ops : 0;
    char steps[48] = "";
    if (ph >= BB_SEEK_NEXT)
      snprintf(steps, sizeof steps, "; %.2f steps per seek",
               a->ops ? (double)a->steps / (double)a->ops : 0);
    bench_note("%s: %s medians of %d x %s: %s ops/s; %s %.2f per op%s%s%s", base, eng[e].name,
               BB_REPS, how, a->all, e ? "major faults" : "pg misses", per, steps,
               cold ? "; cold: " : "", cold ? how_cold[e] : "");
    if (a->bad) {
      bench_note("%s: VERIFY FAILED: %s, %llu bad results", base, eng[e].name,
                 (unsigned long long)a->bad);
      r->fail = 1;
    }
  }
#ifdef JDB_HAVE_LMDB
  if (cold && ne > 1)
    bench_note("%s: data.mdb resident after the drop: %.1f%% (mincore)", base,
               r->l.resident * 100);
#endif
  if (ne > 1)
    bench_note("%s: JDB/LMDB %.2f", base, bb_rate(acc[0].med) / bb_rate(acc[1].med));
  return bb_rate(acc[0].med);
}

static void bb_open_run(struct bb_run *r, const struct bench_env *env, struct fs_ctx *ctx,
                        struct bb_set *set, const char *tag)
{
  memset(&r->j, 0, sizeof r->j);
  r->env = env;
  r->set = set;
  r->j.ctx = ctx;
  r->fail = 0;
  snprintf(r->j.path, sizeof r->j.path, "%s/btree-%s.pages", env->dir, tag);
#ifdef JDB_HAVE_LMDB
  memset(&r->l, 0, sizeof r->l);
  snprintf(r->l.dir, sizeof r->l.dir, "%s/btree-%s.lmdb", env->dir, tag);
  r->have_lmdb = 1;
#else
  r->have_lmdb = 0;
#endif
}

static void bb_close_run(struct bb_run *r)
{
  pg_close(r->j.pg);
  r->j.pg = NULL;
  if (!r->env->keep)
    remove(r->j.path);
#ifdef JDB_HAVE_LMDB
  bb_lmdb_close(&r->l);
  if (!r->env->keep)
    bench_rmdir(r->l.dir);
#endif
}

static size_t bb_env_n(const char *var, size_t dflt)
{
  const char *s = getenv(var);
  if (!s || !*s)
    return dflt;
  unsigned long long v = strtoull(s, NULL, 0);
  return v ? (size_t)v : dflt;
}

int bench_btree(const struct bench_env *env)
{
#ifndef JDB_HAVE_LMDB
  bench_note("LMDB not installed (scripts/deps.sh --bench installs liblmdb-dev)");
#endif
  size_t n = bb_env_n("JDB_BENCH_BTREE_N", env->quick ? 1000000 : 10000000);
  size_t nshape = bb_env_n("JDB_BENCH_BTREE_SHAPE_N", env->quick ? 250000 : 1000000);
  struct fs_ctx *ctx = NULL;
  struct fs_ctx_opts fo = {.backend = FS_BACKEND_AUTO};
  int rc = fs_ctx_create(&fo, &ctx);
  if (rc) {
    bench_note("btree: fs_ctx_create: %s", jdb_strerror(rc));
    return 1;
  }
  struct bb_run r;
  r.lat = malloc(2 * BB_LAT_MAX * sizeof *r.lat);
  r.rep_secs = env->secs / BB_REPS;
  int fail = 0;
  bench_table_header();

  struct bb_set set;
  if (bb_make_set(&set, "rand16", 0, n, env->seed)) {
    bench_note("btree: no memory for %zu keys", n);
    free(r.lat);
    fs_ctx_destroy(ctx);
    return 1;
  }
  bb_open_run(&r, env, ctx, &set, "rand16");
  bb_load_case(&r);
  if (!r.fail) {
    struct pg_stats ps;
    pg_stats_get(r.j.pg, &ps);
    if (ps.page_count + 1024 > r.j.frames && bb_jdb_reopen(&r.j, 0))
      r.fail = 1;
  }
  if (!r.fail) {
    bb_space_report(&r);   /* bt_check pins every page: the tree is now resident */
#ifdef JDB_HAVE_LMDB
    if (r.have_lmdb && bb_lmdb_scan(&r.l) != set.n) {
      bench_note("btree: VERIFY FAILED: LMDB scan count");
      r.fail = 1;
    }
    if (r.have_lmdb)
      bench_note("btree: data.mdb resident before the warm phases: %.1f%% (mincore)",
                 bb_resident(r.l.data) * 100);
#endif
  }
  if (!r.fail) {
    bb_phase(&r, BB_GET_WARM);
    double next = bb_phase(&r, BB_SEEK_NEXT);
    double prev = bb_phase(&r, BB_SEEK_PREV);
    if (next > 0 && prev > 0)
      bench_note("btree.seek: JDB seek+prev10 / seek+next10 = %.2f (target >= 0.9)",
                 prev / next);
    bb_phase(&r, BB_GET_COLD);
  }
  fail |= r.fail;
  bb_close_run(&r);
  free(set.rec);

  /* Key shapes: space with and without prefix compression. */
  static const char *const shapes[] = {"user14", "tsid20"};
  for (int sh = 0; sh < 2; sh++) {
    char space[64], load[64];
    snprintf(space, sizeof space, "btree.space.%s", shapes[sh]);
    snprintf(load, sizeof load, "btree.load.%s", shapes[sh]);
    if (!bench_want(env, space) && !bench_want(env, load))
      continue;
    if (bb_make_set(&set, shapes[sh], sh + 1, nshape, env->seed + 1 + (uint64_t)sh)) {
      fail = 1;
      continue;
    }
    bb_open_run(&r, env, ctx, &set, shapes[sh]);
    bb_load_case(&r);
    if (!r.fail)
      bb_space_report(&r);
    fail |= r.fail;
    bb_close_run(&r);
    free(set.rec);
  }
  free(r.lat);
  fs_ctx_destroy(ctx);
  printf("\n");
  return fail;
}
