/*
 * test_page.c - the buffer manager (store/page, pg.h): create/open/reopen, commit and read back,
 * superblock slots, eviction and pins under a tiny budget, one read for many fibers, verified
 * reads (checksum, misdirected, wrong type, torn, stale, short), the free list (reuse rules,
 * persistence, steady state), crash at every I/O of a commit, I/O errors on reads and commits,
 * and spills (dirty pages written before the commit when the budget is full: read back,
 * re-dirtied, freed in every state, crash and I/O errors around them, their generation check,
 * fibers reading while another spills).
 *
 * Every case runs on the uring backend (skipped when io_uring is unavailable) and on psync; the
 * fault and crash cases run on the faulty backend wrapping each. Page contents are a function of
 * (pgno, tag), so a model of each committed state (pgno -> tag) says exactly what every page must
 * hold. Files are corrupted through plain descriptors opened by the test.
 */
#include "tutil.h"

#include "coro.h"
#include "err.h"
#include "fs.h"
#include "jdb.h"
#include "layout.h"
#include "mem.h"
#include "pg.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u
#define BODY LAYOUT_PAGE_HDR_SIZE

struct be {
  int backend;
  const char *name;
};
static struct be g_uring = {FS_BACKEND_URING, "uring"};
static struct be g_psync = {FS_BACKEND_PSYNC, "psync"};
static int g_have_uring;

/* ------------------------------------------------------------------------------------------- */
/* Helpers */

static struct fs_ctx *ctx_new(void **state)
{
  const struct be *b = *state;
  if (b->backend == FS_BACKEND_URING && !g_have_uring)
    skip();
  struct fs_ctx_opts o = {.backend = b->backend};
  struct fs_ctx *c = NULL;
  assert_int_equal(fs_ctx_create(&o, &c), JDB_OK);
  return c;
}

static struct fs_ctx *fctx_new(void **state, uint64_t seed)
{
  struct fs_ctx *inner = ctx_new(state), *fc = NULL;
  assert_int_equal(fs_faulty_create(inner, seed, &fc), JDB_OK);
  return fc;
}

static const char *file_in(const char *dir, char *buf, size_t cap)
{
  return tutil_path(buf, cap, dir, "pages");
}

static struct pg *open_ok(struct fs_ctx *ctx, const char *path, uint32_t frames)
{
  struct pg_opts o = {.frames = frames};
  struct pg *p = NULL;
  assert_int_equal(pg_open(ctx, path, &o, 1, &p), JDB_OK);
  assert_non_null(p);
  return p;
}

static void body_fill(uint8_t *page, uint64_t pgno, uint64_t tag)
{
  struct tutil_rng r;
  tutil_rng_init(&r, pgno * 0x9e3779b97f4a7c15ull ^ (tag * 0xbf58476d1ce4e5b9ull) ^ 0x5eed);
  tutil_rng_fill(&r, page + BODY, PAGE - BODY);
}

static int body_check(const uint8_t *page, uint64_t pgno, uint64_t tag)
{
  static uint8_t want[PAGE];
  body_fill(want, pgno, tag);
  return memcmp(want + BODY, page + BODY, PAGE - BODY) == 0;
}

/* A model of one state: tag[pgno] != 0 for live pages. */
#define MODEL_MAX 8192
struct model {
  uint64_t tag[MODEL_MAX];
  uint64_t seq;
};

static uint64_t g_tag = 1;

/* Fill a writable page as LEAF with a fresh tag, recorded in m (no asserts: fibers use it). */
static void page_fill(struct model *m, void *d, uint64_t pgno)
{
  struct layout_page_hdr h = {.type = LAYOUT_PAGE_LEAF, .count = 7, .flags = 3, .aux = 99};
  pg_page_set_hdr(d, &h);
  m->tag[pgno] = g_tag++;
  body_fill(d, pgno, m->tag[pgno]);
}

/* Allocate a page, fill it as LEAF with a fresh tag, unpin; record it in m. */
static uint64_t page_new(struct pg *p, struct model *m)
{
  uint64_t pgno = 0;
  struct pg_frame *fr = NULL;
  void *d = NULL;
  assert_int_equal(pg_alloc(p, &pgno, &fr, &d), JDB_OK);
  assert_true(pgno >= 2 && pgno < MODEL_MAX);
  assert_int_equal(m->tag[pgno], 0);
  page_fill(m, d, pgno);
  pg_unpin(p, fr);
  return pgno;
}

static void page_drop(struct pg *p, struct model *m, uint64_t pgno)
{
  assert_int_not_equal(m->tag[pgno], 0);
  m->tag[pgno] = 0;
  pg_free(p, pgno);
}

static struct layout_super next_of(const struct model *m)
{
  struct layout_super n = {0};
  n.seq_max = m->seq;
  n.replay_pos = LOG_POS(1, m->seq * 8);
  for (uint64_t i = 2; i < MODEL_MAX; i++)
    if (m->tag[i]) {
      n.tree_root = i;   /* any live page: the superblock must carry it */
      break;
    }
  return n;
}

static int commit(struct pg *p, struct model *m)
{
  m->seq++;
  struct layout_super n = next_of(m);
  return pg_commit(p, &n);
}

static void commit_ok(struct pg *p, struct model *m)
{
  uint64_t g = pg_super(p)->generation;
  assert_int_equal(commit(p, m), JDB_OK);
  assert_int_equal(pg_super(p)->generation, g + 1);
}

/* Every live page of m reads back as written; superblock fields match. */
static void verify(struct pg *p, const struct model *m)
{
  struct layout_super n = next_of(m);
  assert_int_equal(pg_super(p)->seq_max, m->seq);
  assert_int_equal(pg_super(p)->replay_pos, n.replay_pos);
  assert_int_equal(pg_super(p)->tree_root, n.tree_root);
  for (uint64_t i = 2; i < MODEL_MAX; i++) {
    if (!m->tag[i])
      continue;
    struct pg_frame *fr = NULL;
    const void *d = NULL;
    int rc = pg_pin(p, i, LAYOUT_PAGE_LEAF, &fr, &d);
    if (rc)
      fprintf(stderr, "pin %llu: %s\n", (unsigned long long)i, jdb_strerror(rc));
    assert_int_equal(rc, JDB_OK);
    assert_true(body_check(d, i, m->tag[i]));
    struct layout_page_hdr h;
    assert_int_equal(layout_page_open(d, PAGE, i, &h), JDB_OK);
    assert_int_equal(h.type, LAYOUT_PAGE_LEAF);
    assert_int_equal(h.count, 7);
    assert_int_equal(h.flags, 3);
    assert_int_equal(h.aux, 99);
    assert_int_equal(pg_frame_pgno(fr), i);
    pg_unpin(p, fr);
  }
  assert_int_equal(pg_check(p), JDB_OK);
}

/* Allocate every reusable page: none may be live in m, none twice, and the file must not grow.
   Drops them again (no commit follows). */
static void verify_free_list(struct pg *p, const struct model *m)
{
  struct pg_stats st;
  pg_stats_get(p, &st);
  uint64_t pc = st.page_count, nfree = st.free_pages;
  static uint8_t seen[MODEL_MAX];
  memset(seen, 0, sizeof seen);
  for (uint64_t i = 0; i < nfree; i++) {
    uint64_t pgno;
    struct pg_frame *fr;
    void *d;
    int rc = pg_alloc(p, &pgno, &fr, &d);
    if (rc == JDB_ENOMEM)
      break;   /* budget full of dirty pages: enough checked */
    assert_int_equal(rc, JDB_OK);
    assert_true(pgno < pc);
    assert_true(pgno < MODEL_MAX);
    assert_int_equal(m->tag[pgno], 0);
    assert_int_equal(seen[pgno], 0);
    seen[pgno] = 1;
    pg_unpin(p, fr);
  }
  pg_stats_get(p, &st);
  assert_int_equal(st.page_count, pc);
  assert_int_equal(pg_check(p), JDB_OK);
}

static void plain_pread(const char *path, void *buf, size_t len, uint64_t off)
{
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
  close(fd);
}

static void plain_pwrite(const char *path, const void *buf, size_t len, uint64_t off)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
  assert_int_equal(fsync(fd), 0);
  close(fd);
}

static void garbage_page(const char *path, uint64_t pgno, uint64_t seed)
{
  uint8_t buf[PAGE];
  struct tutil_rng r;
  tutil_rng_init(&r, seed);
  tutil_rng_fill(&r, buf, sizeof buf);
  plain_pwrite(path, buf, PAGE, pgno * PAGE);
}

static struct model *model_new(void)
{
  struct model *m = calloc(1, sizeof *m);
  assert_non_null(m);
  return m;
}

/* ------------------------------------------------------------------------------------------- */
/* Create, open, commit, read back, slots */

static void test_create_open(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_create");
  char path[4096], tmp[4200];
  file_in(dir, path, sizeof path);
  struct pg *p = (struct pg *)1;
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_NOTFOUND);
  assert_null(p);
  struct pg_opts bad = {.frames = 8};
  assert_int_equal(pg_open(ctx, path, &bad, 1, &p), JDB_EINVAL);
  bad = (struct pg_opts){.shard_id = 2, .shard_count = 2};
  assert_int_equal(pg_open(ctx, path, &bad, 1, &p), JDB_EINVAL);
  assert_int_equal(pg_open(NULL, path, NULL, 1, &p), JDB_EINVAL);

  struct pg_opts o = {.frames = 16, .shard_id = 3, .shard_count = 4};
  assert_int_equal(pg_open(ctx, path, &o, 1, &p), JDB_OK);
  const struct layout_super *sb = pg_super(p);
  assert_int_equal(sb->generation, 1);
  assert_int_equal(sb->page_count, 2);
  assert_int_equal(sb->tree_root, 0);
  assert_int_equal(sb->freelist_root, 0);
  assert_int_equal(sb->shard_id, 3);
  assert_int_equal(sb->shard_count, 4);
  assert_true(sb->created_sec > 0);
  struct pg_frame *fr = (struct pg_frame *)1;
  const void *d = (const void *)1;
  assert_int_equal(pg_pin(p, 0, 0, &fr, &d), JDB_EINVAL);
  assert_null(fr);
  assert_null(d);
  assert_int_equal(pg_pin(p, 1, 0, &fr, &d), JDB_EINVAL);
  assert_int_equal(pg_pin(p, 2, 0, &fr, &d), JDB_EINVAL);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.frames, 16);
  assert_int_equal(st.page_count, 2);
  assert_int_equal(st.free_pages, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  print_message("  %s: frames registered as fixed buffers: %u\n", fs_ctx_backend_name(ctx),
                st.fixed_buffers);
  pg_close(p);

  /* Both slots valid on disk, generations 0 and 1; no temporary file left behind. */
  uint8_t buf[2 * PAGE];
  plain_pread(path, buf, sizeof buf, 0);
  struct layout_super s0, s1;
  assert_int_equal(layout_super_decode(buf, PAGE, 0, &s0), JDB_OK);
  assert_int_equal(layout_super_decode(buf + PAGE, PAGE, 1, &s1), JDB_OK);
  assert_int_equal(s0.generation, 0);
  assert_int_equal(s1.generation, 1);
  struct stat stt;
  snprintf(tmp, sizeof tmp, "%s.new", path);
  assert_int_not_equal(stat(tmp, &stt), 0);
  assert_int_equal(stat(path, &stt), 0);
  assert_int_equal(stt.st_size, 2 * PAGE);

  /* Reopen (create flag set or not): the same state. */
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_OK);
  assert_int_equal(pg_super(p)->generation, 1);
  assert_int_equal(pg_super(p)->shard_id, 3);
  pg_stats_get(p, &st);
  assert_int_equal(st.frames, 1024);
  pg_close(p);
  pg_close(NULL);
  fs_ctx_destroy(ctx);
}

static void test_commit_readback(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_commit");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 64);
  for (int i = 0; i < 50; i++)
    page_new(p, m);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.dirty, 50);
  assert_int_equal(st.page_count, 52);
  commit_ok(p, m);
  pg_stats_get(p, &st);
  assert_int_equal(st.dirty, 0);
  assert_int_equal(st.commits, 1);
  assert_true(st.writes >= 51);
  /* pages 2..51 are consecutive: written as runs of up to 256 pages, not one write each */
  assert_true(st.write_ops < 10);
  verify(p, m);                     /* from the frames */

  /* A committed page is read-only; a dirty one is writable. */
  struct pg_frame *fr;
  const void *cd;
  void *wd = (void *)1;
  assert_int_equal(pg_pin(p, 2, LAYOUT_PAGE_LEAF, &fr, &cd), JDB_OK);
  assert_int_equal(pg_page_writable(p, fr, &wd), JDB_EINVAL);
  assert_null(wd);
  pg_unpin(p, fr);
  uint64_t pgno;
  assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), JDB_OK);
  void *wd2;
  assert_int_equal(pg_page_writable(p, fr, &wd2), JDB_OK);
  assert_ptr_equal(wd, wd2);
  /* A dirty page pins without type checks (its header is not final). */
  struct pg_frame *fr2;
  assert_int_equal(pg_pin(p, pgno, LAYOUT_PAGE_BRANCH, &fr2, &cd), JDB_OK);
  assert_ptr_equal(fr2, fr);
  pg_unpin(p, fr2);
  pg_unpin(p, fr);
  pg_free(p, pgno);                 /* allocated and dropped in the same state */
  pg_close(p);

  /* Reopen: cold frames, everything read from disk and verified. */
  for (int round = 0; round < 4; round++) {
    p = open_ok(ctx, path, 16);
    uint64_t g = pg_super(p)->generation;
    assert_int_equal(g, 2 + (uint64_t)round);
    verify(p, m);
    pg_stats_get(p, &st);
    assert_true(st.reads >= 50);
    assert_true(st.evictions > 0);
    for (int i = 0; i < 5; i++)
      page_new(p, m);
    commit_ok(p, m);
    pg_close(p);
    /* Slot alternation: generation g+1 went to slot (g+1) & 1, the other slot still holds g. */
    uint8_t buf[2 * PAGE];
    plain_pread(path, buf, sizeof buf, 0);
    struct layout_super s[2];
    assert_int_equal(layout_super_decode(buf, PAGE, 0, &s[0]), JDB_OK);
    assert_int_equal(layout_super_decode(buf + PAGE, PAGE, 1, &s[1]), JDB_OK);
    assert_int_equal(s[(g + 1) & 1].generation, g + 1);
    assert_int_equal(s[g & 1].generation, g);
  }
  p = open_ok(ctx, path, 16);
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

static void test_bad_commit_args(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_args");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  uint64_t a = page_new(p, m);
  struct layout_super n = next_of(m);
  n.tree_root = 1;
  assert_int_equal(pg_commit(p, &n), JDB_EINVAL);
  n.tree_root = 1000;
  assert_int_equal(pg_commit(p, &n), JDB_EINVAL);
  n = next_of(m);
  n.replay_pos = 3;
  assert_int_equal(pg_commit(p, &n), JDB_EINVAL);
  assert_int_equal(pg_commit(p, NULL), JDB_EINVAL);
  /* A dirty page whose header the caller never set. */
  uint64_t b;
  struct pg_frame *fr;
  void *d;
  assert_int_equal(pg_alloc(p, &b, &fr, &d), JDB_OK);
  pg_unpin(p, fr);
  assert_int_equal(commit(p, m), JDB_EINVAL);
  struct layout_page_hdr h = {.type = LAYOUT_PAGE_BRANCH, .level = 0};
  assert_int_equal(pg_pin(p, b, 0, &fr, (const void **)&d), JDB_OK);
  assert_int_equal(pg_page_writable(p, fr, &d), JDB_OK);
  pg_page_set_hdr(d, &h);           /* branch at level 0: still bad */
  assert_int_equal(commit(p, m), JDB_EINVAL);
  h = (struct layout_page_hdr){.type = LAYOUT_PAGE_FREELIST};
  pg_page_set_hdr(d, &h);           /* free-list pages are pg's own */
  assert_int_equal(commit(p, m), JDB_EINVAL);
  /* Freeing a dirty page that is still pinned: dropped at the last unpin. */
  pg_free(p, b);
  assert_int_equal(pg_check(p), JDB_OK);
  pg_unpin(p, fr);
  assert_int_equal(pg_check(p), JDB_OK);
  /* Nothing was poisoned: the commit goes through now. */
  commit_ok(p, m);
  assert_int_equal(pg_super(p)->tree_root, a);
  pg_close(p);
  p = open_ok(ctx, path, 16);
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------------------------- */
/* Eviction and pins */

/* Build n committed pages in batches the budget can hold. */
static void build_pages(struct pg *p, struct model *m, int n, int batch)
{
  for (int i = 0; i < n; i++) {
    page_new(p, m);
    if ((i + 1) % batch == 0)
      commit_ok(p, m);
  }
  commit_ok(p, m);
}

static void test_eviction(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_evict");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, m, 100, 14);
  pg_close(p);

  p = open_ok(ctx, path, 16);
  enum { HOLD = 15 };
  struct pg_frame *held[HOLD + 1];
  const void *hd[HOLD + 1];
  uint64_t first = 2;
  for (int i = 0; i < HOLD; i++)
    assert_int_equal(pg_pin(p, first + (uint64_t)i, LAYOUT_PAGE_LEAF, &held[i], &hd[i]),
                     JDB_OK);
  /* One frame left: every other page goes through it, evicting the previous one. */
  for (int round = 0; round < 2; round++) {
    for (uint64_t pg = first + HOLD; pg < 102; pg++) {
      struct pg_frame *fr;
      const void *d;
      assert_int_equal(pg_pin(p, pg, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
      assert_true(body_check(d, pg, m->tag[pg]));
      pg_unpin(p, fr);
      if (pg % 10 == 0)
        for (int i = 0; i < HOLD; i++)
          assert_true(body_check(hd[i], first + (uint64_t)i, m->tag[first + (uint64_t)i]));
    }
  }
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.pinned, HOLD);
  assert_true(st.evictions >= 2 * (102 - first - HOLD) - 2);
  for (int i = 0; i < HOLD; i++)
    assert_true(body_check(hd[i], first + (uint64_t)i, m->tag[first + (uint64_t)i]));
  /* Pin the last frame: now a miss has nowhere to go, and neither has an allocation. */
  assert_int_equal(pg_pin(p, 50, LAYOUT_PAGE_LEAF, &held[HOLD], &hd[HOLD]), JDB_OK);
  struct pg_frame *fr = (struct pg_frame *)1;
  const void *d = (const void *)1;
  assert_int_equal(pg_pin(p, 60, LAYOUT_PAGE_LEAF, &fr, &d), JDB_ENOMEM);
  assert_null(fr);
  assert_null(d);
  uint64_t pgno;
  void *wd;
  assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), JDB_ENOMEM);
  assert_int_equal(pgno, 0);
  /* A resident pinned page can still be pinned again (a hit). */
  assert_int_equal(pg_pin(p, 50, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  assert_ptr_equal(fr, held[HOLD]);
  pg_unpin(p, fr);
  for (int i = 0; i <= HOLD; i++)
    pg_unpin(p, held[i]);
  pg_stats_get(p, &st);
  assert_int_equal(st.pinned, 0);
  /* Hot pages survive a scan better than cold ones (CLOCK second chance): just check that all
     pages read back after heavy churn. */
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed());
  for (int i = 0; i < 2000; i++) {
    uint64_t pg = 2 + tutil_rng_below(&r, 100);
    assert_int_equal(pg_pin(p, pg, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
    assert_true(body_check(d, pg, m->tag[pg]));
    pg_unpin(p, fr);
  }
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* A budget full of dirty pages: unpinned ones with a complete header are spilled to make room;
   pinned ones, and ones whose header the commit would refuse, never are. */
static void test_dirty_budget(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_dirty");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, m, 20, 10);
  /* Every frame dirty and pinned: nothing to spill. */
  struct pg_frame *held[16];
  uint64_t hp[16];
  void *hd[16];
  for (int i = 0; i < 16; i++) {
    assert_int_equal(pg_alloc(p, &hp[i], &held[i], &hd[i]), JDB_OK);
    page_fill(m, hd[i], hp[i]);
  }
  uint64_t pgno;
  struct pg_frame *fr;
  void *wd;
  assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), JDB_ENOMEM);
  const void *d;
  assert_int_equal(pg_pin(p, 2, LAYOUT_PAGE_LEAF, &fr, &d), JDB_ENOMEM);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.dirty, 16);
  assert_int_equal(st.spills, 0);
  /* Unpinned with a header the commit would refuse (type 0): still not spilled. */
  for (int i = 0; i < 16; i++) {
    memset(hd[i], 0, BODY);
    pg_unpin(p, held[i]);
  }
  assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), JDB_ENOMEM);
  assert_int_equal(pg_pin(p, 2, LAYOUT_PAGE_LEAF, &fr, &d), JDB_ENOMEM);
  pg_stats_get(p, &st);
  assert_int_equal(st.spills, 0);
  struct layout_super bad = next_of(m);
  assert_int_equal(pg_commit(p, &bad), JDB_EINVAL);
  /* Headers complete: the next pin spills a batch (all 16: max(32, 16 / 8) capped by the
     frames) and reads page 2 into one of the frames. */
  for (int i = 0; i < 16; i++) {
    assert_int_equal(pg_pin(p, hp[i], 0, &held[i], &d), JDB_OK);
    assert_int_equal(pg_page_writable(p, held[i], &hd[i]), JDB_OK);
    page_fill(m, hd[i], hp[i]);
    pg_unpin(p, held[i]);
  }
  assert_int_equal(pg_pin(p, 2, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  assert_true(body_check(d, 2, m->tag[2]));
  pg_unpin(p, fr);
  pg_stats_get(p, &st);
  assert_int_equal(st.spills, 1);
  assert_int_equal(st.spilled_pages, 16);
  assert_int_equal(st.dirty, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  /* And an allocation evicts a spilled page now. */
  page_new(p, m);
  assert_int_equal(pg_check(p), JDB_OK);
  commit_ok(p, m);                  /* dirty frames become clean and evictable */
  page_new(p, m);
  assert_int_equal(pg_pin(p, 2, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  pg_unpin(p, fr);
  commit_ok(p, m);
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------------------------- */
/* Fibers */

struct fib {
  struct pg *p;
  const struct model *m;
  uint64_t pgno;
  uint64_t seed;
  int iters;
  int rc;
  int bad;
  int done;
};

static void fib_pin_one(void *arg)
{
  struct fib *x = arg;
  struct pg_frame *fr;
  const void *d;
  x->rc = pg_pin(x->p, x->pgno, LAYOUT_PAGE_LEAF, &fr, &d);
  if (x->rc == JDB_OK) {
    x->bad += !body_check(d, x->pgno, x->m->tag[x->pgno]);
    coro_yield();
    x->bad += !body_check(d, x->pgno, x->m->tag[x->pgno]);
    pg_unpin(x->p, fr);
  }
  x->done = 1;
}

static void fib_pin_random(void *arg)
{
  struct fib *x = arg;
  struct tutil_rng r;
  tutil_rng_init(&r, x->seed);
  for (int i = 0; i < x->iters; i++) {
    uint64_t pg = 2 + tutil_rng_below(&r, x->pgno);
    struct pg_frame *fr;
    const void *d;
    int rc = pg_pin(x->p, pg, LAYOUT_PAGE_LEAF, &fr, &d);
    if (rc) {
      x->rc = rc;
      break;
    }
    x->bad += !body_check(d, pg, x->m->tag[pg]);
    if (tutil_rng_below(&r, 4) == 0)
      coro_yield();
    pg_unpin(x->p, fr);
  }
  x->done = 1;
}

static void test_fibers_one_read(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_fib");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 64);
  build_pages(p, m, 200, 60);
  pg_close(p);

  p = open_ok(ctx, path, 32);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  enum { N = 50 };
  struct fib x[N];
  for (int i = 0; i < N; i++) {
    x[i] = (struct fib){.p = p, .m = m, .pgno = 77};
    assert_int_equal(coro_spawn(s, fib_pin_one, &x[i], NULL), JDB_OK);
  }
  struct pg_stats st;
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  pg_stats_get(p, &st);
  for (int i = 0; i < N; i++) {
    assert_int_equal(x[i].done, 1);
    assert_int_equal(x[i].rc, JDB_OK);
    assert_int_equal(x[i].bad, 0);
  }
  assert_int_equal(st.reads, 1);
  assert_int_equal(st.misses, N);
  assert_int_equal(st.read_waits_joined, N - 1);
  assert_int_equal(st.pinned, 0);

  /* Many fibers, random pages, a budget smaller than the file: loads, joins and evictions
     interleave; every pin sees its own page. */
  enum { M = 24 };
  struct fib y[M];
  for (int i = 0; i < M; i++) {
    y[i] = (struct fib){.p = p, .m = m, .pgno = 200, .seed = tutil_seed() + (uint64_t)i,
                        .iters = 150};
    assert_int_equal(coro_spawn(s, fib_pin_random, &y[i], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  for (int i = 0; i < M; i++) {
    assert_int_equal(y[i].done, 1);
    assert_int_equal(y[i].rc, JDB_OK);
    assert_int_equal(y[i].bad, 0);
  }
  pg_stats_get(p, &st);
  assert_true(st.evictions > 0);
  assert_int_equal(pg_check(p), JDB_OK);
  coro_sched_destroy(s);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

struct fib_commit {
  struct pg *p;
  struct model *m;
  int rc;
};

static void fib_commit(void *arg)
{
  struct fib_commit *c = arg;
  for (int i = 0; i < 10; i++) {
    uint64_t pgno;
    struct pg_frame *fr;
    void *d;
    c->rc = pg_alloc(c->p, &pgno, &fr, &d);
    if (c->rc)
      return;
    page_fill(c->m, d, pgno);
    pg_unpin(c->p, fr);
  }
  c->m->seq++;
  struct layout_super n = next_of(c->m);
  c->rc = pg_commit(c->p, &n);
}

/* A commit inside a fiber parks while its writes and syncs run; readers keep going. */
static void test_fiber_commit(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_fibc");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 64);
  build_pages(p, m, 100, 50);
  pg_close(p);
  p = open_ok(ctx, path, 32);
  struct model *snap = model_new();
  memcpy(snap, m, sizeof *m);       /* readers check the committed pages */
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  struct fib_commit c = {.p = p, .m = m};
  assert_int_equal(coro_spawn(s, fib_commit, &c, NULL), JDB_OK);
  enum { R = 8 };
  struct fib y[R];
  for (int i = 0; i < R; i++) {
    y[i] = (struct fib){.p = p, .m = snap, .pgno = 100, .seed = tutil_seed() + 7 * (uint64_t)i,
                        .iters = 60};
    assert_int_equal(coro_spawn(s, fib_pin_random, &y[i], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  assert_int_equal(c.rc, JDB_OK);
  for (int i = 0; i < R; i++) {
    assert_int_equal(y[i].rc, JDB_OK);
    assert_int_equal(y[i].bad, 0);
  }
  coro_sched_destroy(s);
  pg_close(p);
  p = open_ok(ctx, path, 16);
  verify(p, m);
  pg_close(p);
  free(snap);
  free(m);
  fs_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------------------------- */
/* Verified reads */

static void pin_expect(struct pg *p, uint64_t pgno, uint8_t type, int want)
{
  struct pg_frame *fr = (struct pg_frame *)1;
  const void *d = (const void *)1;
  int rc = pg_pin(p, pgno, type, &fr, &d);
  assert_int_equal(rc, want);
  if (rc == JDB_OK) {
    pg_unpin(p, fr);
  } else {
    assert_null(fr);
    assert_null(d);
  }
}

static void test_corrupt_pages(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_corrupt");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, m, 10, 10);        /* pages 2..11 */
  pg_close(p);

  uint8_t orig[PAGE], other[PAGE], page[PAGE];
  plain_pread(path, orig, PAGE, 3 * PAGE);
  garbage_page(path, 3, tutil_seed());                  /* checksum */
  plain_pread(path, other, PAGE, 4 * PAGE);
  plain_pwrite(path, other, PAGE, 5 * PAGE);            /* misdirected: page 4 at 5 */
  memset(page, 0, sizeof page);
  plain_pwrite(path, page, 512, 6 * PAGE + 1024);       /* torn: one sector zeroed */
  plain_pread(path, page, PAGE, 7 * PAGE);              /* from the future */
  struct layout_page_hdr h;
  assert_int_equal(layout_page_open(page, PAGE, 7, &h), JDB_OK);
  h.generation += 5;
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, 7 * PAGE);
  assert_int_equal(truncate(path, 11 * PAGE), 0);       /* page 11 is past the end */

  p = open_ok(ctx, path, 16);
  uint64_t c0 = err_corrupt_count();
  struct pg_stats st0, st1;
  pg_stats_get(p, &st0);
  pin_expect(p, 3, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pin_expect(p, 5, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pin_expect(p, 6, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pin_expect(p, 7, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pin_expect(p, 11, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pin_expect(p, 4, LAYOUT_PAGE_LEAF, JDB_OK);
  pin_expect(p, 2, LAYOUT_PAGE_BRANCH, JDB_ECORRUPT);  /* wrong type */
  pin_expect(p, 2, LAYOUT_PAGE_LEAF, JDB_OK);
  pin_expect(p, 2, 0, JDB_OK);
  pg_stats_get(p, &st1);
  assert_int_equal(st1.corrupt - st0.corrupt, 6);
  assert_true(err_corrupt_count() - c0 >= 6);
  assert_int_equal(st1.pinned, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  /* The failed frame was released: a second pin reads again (and fails again)... */
  pin_expect(p, 3, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pg_stats_get(p, &st0);
  assert_int_equal(st0.reads, st1.reads + 1);
  /* ... and once the page is repaired, the next pin succeeds. */
  plain_pwrite(path, orig, PAGE, 3 * PAGE);
  pin_expect(p, 3, LAYOUT_PAGE_LEAF, JDB_OK);
  /* Corrupt pages do not stop the others from being read and committed around. */
  for (uint64_t i = 8; i <= 10; i++)
    pin_expect(p, i, LAYOUT_PAGE_LEAF, JDB_OK);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------------------------- */
/* Superblock slots */

static void make_two_states(struct fs_ctx *ctx, const char *path, struct model *a,
                            struct model *b)
{
  struct pg *p = open_ok(ctx, path, 32);
  build_pages(p, a, 10, 20);        /* generation 2 */
  memcpy(b, a, sizeof *a);
  for (int i = 0; i < 5; i++)
    page_new(p, b);
  for (uint64_t i = 2; i < 5; i++)
    page_drop(p, b, i);
  commit_ok(p, b);                  /* generation 3 */
  pg_close(p);
}

static void test_superblock_slots(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_slots");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *b = model_new();
  uint8_t good[2 * PAGE];

  /* Newest slot (1, generation 3) bad: open falls back to generation 2, intact. */
  make_two_states(ctx, path, a, b);
  plain_pread(path, good, sizeof good, 0);
  garbage_page(path, 1, 11);
  struct pg *p = open_ok(ctx, path, 16);
  assert_int_equal(pg_super(p)->generation, 2);
  verify(p, a);
  pg_close(p);
  /* Older slot bad: the newest is used. */
  plain_pwrite(path, good, sizeof good, 0);
  garbage_page(path, 0, 12);
  p = open_ok(ctx, path, 16);
  assert_int_equal(pg_super(p)->generation, 3);
  verify(p, b);
  pg_close(p);
  /* Both bad. */
  garbage_page(path, 1, 13);
  p = (struct pg *)1;
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  assert_null(p);
  /* A slot whose generation has the other slot's parity is not trusted. */
  plain_pwrite(path, good, sizeof good, 0);
  struct layout_super s;
  uint8_t page[PAGE];
  assert_int_equal(layout_super_decode(good + PAGE, PAGE, 1, &s), JDB_OK);
  s.generation = 4;
  layout_super_encode(page, PAGE, 1, &s);
  plain_pwrite(path, page, PAGE, PAGE);
  p = open_ok(ctx, path, 16);
  assert_int_equal(pg_super(p)->generation, 2);
  verify(p, a);
  pg_close(p);

  /* Another format version in the newest slot: JDB_EVERSION; in the older one: ignored. */
  for (unsigned slot = 0; slot < 2; slot++) {
    struct layout_page_hdr h;
    memcpy(page, good + slot * PAGE, PAGE);
    assert_int_equal(layout_page_open(page, PAGE, slot, &h), JDB_OK);
    le32_put(page + 36, LAYOUT_FORMAT_VERSION + 1);
    layout_page_seal(page, PAGE, &h);
    plain_pwrite(path, good, sizeof good, 0);
    plain_pwrite(path, page, PAGE, slot * PAGE);
    p = (struct pg *)1;
    int rc = pg_open(ctx, path, NULL, 0, &p);
    if (slot == 1) {
      assert_int_equal(rc, JDB_EVERSION);
      assert_null(p);
    } else {
      assert_int_equal(rc, JDB_OK);
      assert_int_equal(pg_super(p)->generation, 3);
      verify(p, b);
      pg_close(p);
    }
  }
  free(a);
  free(b);
  fs_ctx_destroy(ctx);
}

/* A power cut while the superblock is being synced: the slot is torn (or survives whole); open
   takes the old or the new state, never an error. */
static void test_superblock_torn(void **state)
{
  const char *dir = tutil_tmpdir("pg_tear");
  char path[4096];
  file_in(dir, path, sizeof path);
  int outcomes[2] = {0, 0};
  for (uint64_t seed = 1; seed <= 6; seed++) {
    struct fs_ctx *ctx = fctx_new(state, tutil_seed() + seed);
    unlink(path);
    struct model *a = model_new(), *b = model_new();
    struct pg *p = open_ok(ctx, path, 32);
    build_pages(p, a, 12, 20);
    memcpy(b, a, sizeof *a);
    for (int i = 0; i < 4; i++)
      page_new(p, b);
    page_drop(p, b, 5);
    struct fs_fault_rule r = {.kind = FS_FAULT_CRASH, .targets = FS_FT_SYNC, .at = 2,
                              .crash_policy = seed & 1 ? FS_CRASH_TEAR : FS_CRASH_RANDOM};
    assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
    assert_int_equal(commit(p, b), JDB_EIO);
    struct layout_super again = next_of(b);
    assert_int_equal(pg_commit(p, &again), JDB_EIO);  /* refused until reopen */
    fs_faulty_revive(ctx);
    fs_faulty_clear_rules(ctx);
    pg_close(p);
    p = open_ok(ctx, path, 16);
    uint64_t g = pg_super(p)->generation;
    assert_true(g == 2 || g == 3);
    outcomes[g - 2]++;
    verify(p, g == 2 ? a : b);
    verify_free_list(p, g == 2 ? a : b);
    pg_close(p);
    free(a);
    free(b);
    fs_ctx_destroy(ctx);
  }
  print_message("  torn superblock: old state %d times, new state %d times\n", outcomes[0],
                outcomes[1]);
}

/* ------------------------------------------------------------------------------------------- */
/* Crash and errors at every I/O of a commit */

/* State A (with a free list and reusable pages) committed; B built on top, not committed. */
static struct pg *crash_setup(struct fs_ctx *ctx, const char *path, struct model *a,
                              struct model *b)
{
  unlink(path);
  memset(a, 0, sizeof *a);
  struct pg *p = open_ok(ctx, path, 64);
  for (int i = 0; i < 30; i++)
    page_new(p, a);
  commit_ok(p, a);                  /* generation 2 */
  for (uint64_t i = 2; i < 12; i++)
    page_drop(p, a, i);
  for (int i = 0; i < 10; i++)
    page_new(p, a);
  commit_ok(p, a);                  /* generation 3: ten pending pages and a free-list page */
  pg_reclaim(p, 3);
  memcpy(b, a, sizeof *a);
  for (int i = 0; i < 12; i++)
    page_new(p, b);
  for (uint64_t i = 12; i < 17; i++)
    page_drop(p, b, i);
  return p;
}

static void check_recovered(struct fs_ctx *ctx, const char *path, const struct model *a,
                            const struct model *b, int *outcomes)
{
  struct pg *p = NULL;
  int rc = pg_open(ctx, path, NULL, 0, &p);
  assert_int_equal(rc, JDB_OK);
  uint64_t g = pg_super(p)->generation;
  assert_true(g == 3 || g == 4);
  outcomes[g - 3]++;
  const struct model *m = g == 3 ? a : b;
  verify(p, m);
  verify_free_list(p, m);
  pg_close(p);
  /* The recovered state takes a further commit and reopens. */
  struct model *c = model_new();
  memcpy(c, m, sizeof *m);
  p = open_ok(ctx, path, 64);
  for (int i = 0; i < 3; i++)
    page_new(p, c);
  commit_ok(p, c);
  pg_close(p);
  p = open_ok(ctx, path, 64);
  verify(p, c);
  pg_close(p);
  free(c);
}

static void test_crash_every_io(void **state)
{
  const char *dir = tutil_tmpdir("pg_crash");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *b = model_new();

  /* Count the I/Os of B's commit once. */
  struct fs_ctx *ctx = fctx_new(state, 1);
  struct pg *p = crash_setup(ctx, path, a, b);
  uint64_t n0 = fs_faulty_count(ctx, FS_FT_DATA);
  assert_int_equal(commit(p, b), JDB_OK);
  uint64_t total = fs_faulty_count(ctx, FS_FT_DATA) - n0;
  pg_close(p);
  fs_ctx_destroy(ctx);
  /* B's 12 pages (runs of consecutive numbers go out as one write), its free-list page, the
     fdatasync, the superblock and its fdatasync */
  assert_true(total >= 1 + 1 + 3);
  print_message("  one commit = %llu I/Os\n", (unsigned long long)total);

  static const unsigned policies[] = {FS_CRASH_DROP, FS_CRASH_RANDOM, FS_CRASH_RANDOM,
                                      FS_CRASH_RANDOM, FS_CRASH_TEAR, FS_CRASH_KEEP};
  int outcomes[2] = {0, 0};
  for (size_t pi = 0; pi < sizeof policies / sizeof policies[0]; pi++) {
    for (uint64_t n = 1; n <= total; n++) {
      ctx = fctx_new(state, tutil_seed() * 31 + pi * 1000 + n);
      p = crash_setup(ctx, path, a, b);
      struct fs_fault_rule r = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = n,
                                .crash_policy = policies[pi]};
      assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
      int rc = commit(p, b);
      assert_int_not_equal(rc, JDB_OK);
      fs_faulty_revive(ctx);
      fs_faulty_clear_rules(ctx);
      /* Reads of the committed state are still served after the failure. */
      if (n == 1) {
        struct pg_frame *fr;
        const void *d;
        assert_int_equal(pg_pin(p, 20, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
        assert_true(body_check(d, 20, a->tag[20]));
        pg_unpin(p, fr);
      }
      pg_close(p);
      check_recovered(ctx, path, a, b, outcomes);
      fs_ctx_destroy(ctx);
    }
  }
  /* The crash after the superblock write with KEEP always shows the new state. */
  assert_true(outcomes[1] > 0);
  assert_true(outcomes[0] > 0);
  print_message("  crash outcomes: old %d, new %d\n", outcomes[0], outcomes[1]);
  free(a);
  free(b);
}

/* pg_free of a committed page drops its cached copy unless it is pinned: the frame goes back to
   the free list (an allocation takes it, the cache does not grow), and a reader of the older
   state that pins the page again reads it back from the file, intact until the page is
   reclaimed. A pinned page keeps its frame. */
static void test_free_drops_cache(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_freedrop");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 1024);
  for (int i = 0; i < 20; i++)
    page_new(p, m);
  commit_ok(p, m);
  uint64_t tag5 = m->tag[5], tag6 = m->tag[6];
  struct pg_stats s0, s1;
  pg_stats_get(p, &s0);
  struct pg_frame *held;
  const void *hd;
  assert_int_equal(pg_pin(p, 6, LAYOUT_PAGE_LEAF, &held, &hd), JDB_OK);
  page_drop(p, m, 5);
  page_drop(p, m, 6);   /* pinned: stays cached */
  pg_stats_get(p, &s1);
  assert_int_equal(s1.dropped_on_free - s0.dropped_on_free, 1);
  assert_true(body_check(hd, 6, tag6));
  pg_unpin(p, held);
  /* an allocation takes the dropped frame: no frame used for the first time */
  uint64_t used = s1.frames_used;
  page_new(p, m);
  pg_stats_get(p, &s1);
  assert_int_equal(s1.frames_used, used);
  /* the old state's reader: page 5 is read back from the file */
  struct pg_frame *fr;
  const void *d;
  uint64_t reads = s1.reads;
  assert_int_equal(pg_pin(p, 5, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  assert_true(body_check(d, 5, tag5));
  pg_unpin(p, fr);
  pg_stats_get(p, &s1);
  assert_int_equal(s1.reads, reads + 1);
  assert_int_equal(pg_check(p), JDB_OK);
  commit_ok(p, m);
  verify(p, m);
  pg_close(p);
  free(m);
  tutil_rmrf(dir);
  fs_ctx_destroy(ctx);
}

/* A commit writes runs of consecutive pages as staged writes of up to 256 pages (at most 8 in
   flight, so a ninth run waits for the first) and lone pages from their frames. State A: 2100
   consecutive pages (9 staged writes). State B on top: every 7th page of A freed, then (after a
   commit and reclaim) 300 pages on those numbers (lone pages) and 2100 more at the file's end
   (9 runs). Both read back after reopen. Then an EIO at I/Os spread over B's commit (among
   them its first staged write, which the ninth run waits for): the commit fails, reads go on,
   and a reopen shows A. */
static void runs_build_a(struct pg *p, struct model *a)
{
  for (int i = 0; i < 2100; i++)
    page_new(p, a);
  commit_ok(p, a);
  for (uint64_t pg = 2; pg < 2102; pg += 7)
    page_drop(p, a, pg);
  commit_ok(p, a);
  pg_reclaim(p, pg_super(p)->generation);
}

static void runs_build_b(struct pg *p, const struct model *a, struct model *b)
{
  memcpy(b, a, sizeof *a);
  for (int i = 0; i < 2400; i++)
    page_new(p, b);
}

static void test_commit_runs(void **state)
{
  const char *dir = tutil_tmpdir("pg_runs");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *b = model_new();
  struct fs_ctx *ctx = ctx_new(state);
  struct pg *p = open_ok(ctx, path, 8192);
  struct pg_stats s0, s1;
  pg_stats_get(p, &s0);
  for (int i = 0; i < 2100; i++)
    page_new(p, a);
  commit_ok(p, a);
  pg_stats_get(p, &s1);
  assert_true(s1.writes - s0.writes >= 2100);
  /* 9 runs (256 pages each but the last) and the superblock */
  assert_int_equal(s1.write_ops - s0.write_ops, 10);
  pg_close(p);
  unlink(path);
  memset(a, 0, sizeof *a);
  p = open_ok(ctx, path, 8192);
  runs_build_a(p, a);
  runs_build_b(p, a, b);
  pg_stats_get(p, &s0);
  commit_ok(p, b);
  pg_stats_get(p, &s1);
  /* 300 lone pages (the freed numbers, reused first), 2100 at the end (9 runs), the free list
     and the superblock */
  print_message("  B: %llu pages in %llu writes\n", (unsigned long long)(s1.writes - s0.writes),
                (unsigned long long)(s1.write_ops - s0.write_ops));
  assert_true(s1.write_ops - s0.write_ops >= 300 + 9 + 1);
  assert_true(s1.write_ops - s0.write_ops <= 300 + 9 + 1 + 4);
  pg_close(p);
  p = open_ok(ctx, path, 64);
  verify(p, b);
  verify_free_list(p, b);
  pg_close(p);
  fs_ctx_destroy(ctx);

  /* Count B's I/Os once, then fail a spread of them: the free-list page goes first, then B's
     pages in page order, the lone ones first, so I/O 302 is the first staged write and 310 the
     ninth, which waits for it. */
  ctx = fctx_new(state, 3);
  unlink(path);
  memset(a, 0, sizeof *a);
  p = open_ok(ctx, path, 8192);
  runs_build_a(p, a);
  runs_build_b(p, a, b);
  uint64_t n0 = fs_faulty_count(ctx, FS_FT_DATA);
  assert_int_equal(commit(p, b), JDB_OK);
  uint64_t total = fs_faulty_count(ctx, FS_FT_DATA) - n0;
  pg_close(p);
  fs_ctx_destroy(ctx);
  assert_int_equal(total, 1 + 300 + 9 + 3);
  const uint64_t at[] = {1, 2, 150, 301, 302, 303, 309, 310, total - 1, total};
  for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
    uint64_t n = at[k];
    ctx = fctx_new(state, 100 + n);
    unlink(path);
    memset(a, 0, sizeof *a);
    p = open_ok(ctx, path, 8192);
    runs_build_a(p, a);
    uint64_t gen = pg_super(p)->generation;
    runs_build_b(p, a, b);
    struct fs_fault_rule r = {.kind = FS_FAULT_EIO, .targets = FS_FT_DATA, .at = n};
    assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
    assert_int_equal(commit(p, b), JDB_EIO);
    fs_faulty_clear_rules(ctx);
    assert_int_equal(pg_super(p)->generation, gen);
    verify(p, a);   /* from the frames */
    pg_close(p);
    p = open_ok(ctx, path, 8192);
    assert_int_equal(pg_super(p)->generation, gen);
    if (k == 0 || n == 302 || n == total)
      verify(p, a);   /* every page read from the file */
    assert_int_equal(pg_check(p), JDB_OK);
    pg_close(p);
    fs_ctx_destroy(ctx);
  }
  tutil_rmrf(dir);
  free(a);
  free(b);
}

/* EIO / ENOSPC at each I/O of a commit (no crash): the error comes back, the pg refuses further
   commits, reads go on, and a reopen shows the old state. */
static void test_commit_errors(void **state)
{
  const char *dir = tutil_tmpdir("pg_cerr");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *b = model_new();
  struct fs_ctx *ctx = fctx_new(state, 2);
  struct pg *p = crash_setup(ctx, path, a, b);
  uint64_t n0 = fs_faulty_count(ctx, FS_FT_DATA);
  assert_int_equal(commit(p, b), JDB_OK);
  uint64_t total = fs_faulty_count(ctx, FS_FT_DATA) - n0;
  pg_close(p);
  fs_ctx_destroy(ctx);

  for (unsigned kind = FS_FAULT_EIO; kind <= FS_FAULT_ENOSPC; kind++) {
    for (uint64_t n = 1; n <= total; n++) {
      ctx = fctx_new(state, n);
      p = crash_setup(ctx, path, a, b);
      struct fs_fault_rule r = {.kind = kind, .targets = FS_FT_DATA, .at = n};
      assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
      int rc = commit(p, b);
      /* A sync's ENOSPC maps to ENOSPC too; anything else injected is EIO. */
      assert_int_equal(rc, kind == FS_FAULT_EIO ? JDB_EIO : JDB_ENOSPC);
      fs_faulty_clear_rules(ctx);
      assert_int_equal(commit(p, b), JDB_EIO);
      uint64_t pgno;
      struct pg_frame *fr;
      void *wd;
      assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), JDB_EIO);
      pg_free(p, 20);                                  /* ignored after the failure */
      assert_int_equal(pg_super(p)->generation, 3);
      verify(p, a);                                    /* reads still served */
      pg_close(p);
      p = open_ok(ctx, path, 64);
      assert_int_equal(pg_super(p)->generation, 3);
      verify(p, a);
      verify_free_list(p, a);
      pg_close(p);
      fs_ctx_destroy(ctx);
    }
  }
  free(a);
  free(b);
}

/* A read that fails with EIO: JDB_EIO for every waiter, then a later pin reads again. */
static void test_read_errors(void **state)
{
  const char *dir = tutil_tmpdir("pg_rerr");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct fs_ctx *ctx = fctx_new(state, 3);
  struct pg *p = open_ok(ctx, path, 32);
  build_pages(p, m, 20, 20);
  pg_close(p);
  p = open_ok(ctx, path, 32);
  struct fs_fault_rule r = {.kind = FS_FAULT_EIO, .targets = FS_FT_READ, .at = 1};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  pin_expect(p, 9, LAYOUT_PAGE_LEAF, JDB_EIO);
  pin_expect(p, 9, LAYOUT_PAGE_LEAF, JDB_OK);
  /* Short reads are finished by fs: invisible here. */
  fs_faulty_clear_rules(ctx);
  r = (struct fs_fault_rule){.kind = FS_FAULT_SHORT, .targets = FS_FT_READ, .at = 1};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  pin_expect(p, 10, LAYOUT_PAGE_LEAF, JDB_OK);
  fs_faulty_clear_rules(ctx);

  /* Ten fibers joined on one failing read all get the error; the next pin works. */
  r = (struct fs_fault_rule){.kind = FS_FAULT_EIO, .targets = FS_FT_READ, .at = 1};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  enum { N = 10 };
  struct fib x[N];
  for (int i = 0; i < N; i++) {
    x[i] = (struct fib){.p = p, .m = m, .pgno = 12};
    assert_int_equal(coro_spawn(s, fib_pin_one, &x[i], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  for (int i = 0; i < N; i++) {
    assert_int_equal(x[i].done, 1);
    assert_int_equal(x[i].rc, JDB_EIO);
  }
  coro_sched_destroy(s);
  fs_faulty_clear_rules(ctx);
  pin_expect(p, 12, LAYOUT_PAGE_LEAF, JDB_OK);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.pinned, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  verify(p, m);
  pg_close(p);

  /* An unreadable free list fails the open. */
  p = open_ok(ctx, path, 32);
  page_drop(p, m, 3);
  commit_ok(p, m);
  uint64_t fl = pg_super(p)->freelist_root;
  assert_true(fl >= 2);
  pg_close(p);
  r = (struct fs_fault_rule){.kind = FS_FAULT_EIO, .targets = FS_FT_READ, .at = 2};
  assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
  p = (struct pg *)1;
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_EIO);
  assert_null(p);
  fs_faulty_clear_rules(ctx);
  free(m);
  fs_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------------------------- */
/* Free list */

static int contains(const uint64_t *v, size_t n, uint64_t x)
{
  for (size_t i = 0; i < n; i++)
    if (v[i] == x)
      return 1;
  return 0;
}

static void test_free_reuse_rules(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_reuse");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, a, 20, 14);
  uint64_t gen_a = pg_super(p)->generation;
  memcpy(m, a, sizeof *a);

  /* Allocated and freed in the same state: reusable at once. */
  uint64_t x = page_new(p, m);
  page_drop(p, m, x);
  uint64_t y = page_new(p, m);
  assert_int_equal(y, x);
  page_drop(p, m, y);

  /* Free ten pages of A (a reader still uses A), replace them, commit. */
  uint64_t freed[10];
  int k = 0;
  for (uint64_t i = 2; i < 22 && k < 10; i += 2) {
    freed[k++] = i;
    page_drop(p, m, i);
  }
  pg_reclaim(p, gen_a + 5);         /* clamped: nothing freed by the state being built */
  for (int i = 0; i < 10; i++)
    assert_false(contains(freed, 10, page_new(p, m)));
  commit_ok(p, m);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.pending_free_pages, 10);
  /* Two more commits while the reader holds generation A: the freed pages stay untouched. */
  for (int round = 0; round < 2; round++) {
    pg_reclaim(p, gen_a);
    for (int i = 0; i < 10; i++)
      assert_false(contains(freed, 10, page_new(p, m)));
    commit_ok(p, m);
  }
  /* The reader sees A's pages intact (re-read from disk: the budget is tiny). */
  for (int i = 0; i < 10; i++) {
    struct pg_frame *fr;
    const void *d;
    assert_int_equal(pg_pin(p, freed[i], LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
    assert_true(body_check(d, freed[i], a->tag[freed[i]]));
    pg_unpin(p, fr);
  }
  /* The reader is gone: the pages come back, before the file grows. */
  pg_reclaim(p, pg_super(p)->generation);
  pg_stats_get(p, &st);
  uint64_t pc = st.page_count;
  assert_true(st.free_pages >= 10);
  int reused = 0;
  uint64_t nfree = st.free_pages;
  for (uint64_t i = 0; i < nfree && i < 14; i++)
    reused += contains(freed, 10, page_new(p, m));
  assert_int_equal(reused, 10);
  pg_stats_get(p, &st);
  assert_int_equal(st.page_count, pc);
  commit_ok(p, m);
  verify(p, m);
  pg_close(p);
  p = open_ok(ctx, path, 16);
  verify(p, m);
  pg_close(p);
  free(a);
  free(m);
  fs_ctx_destroy(ctx);
}

static void test_free_list_reopen(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_flre");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 128);
  build_pages(p, m, 1500, 120);
  /* Free 1200 pages: the list spans three pages. */
  for (uint64_t i = 2; i < 1202; i++)
    page_drop(p, m, i);
  commit_ok(p, m);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.freelist_pages, 3);
  uint64_t pc = st.page_count;
  uint64_t persisted = st.free_pages + st.pending_free_pages;
  pg_close(p);

  p = open_ok(ctx, path, 128);
  pg_stats_get(p, &st);
  assert_int_equal(st.free_pages, persisted);    /* no reader after open: all reusable */
  assert_int_equal(st.pending_free_pages, 0);
  assert_int_equal(st.freelist_pages, 3);
  assert_int_equal(st.page_count, pc);
  verify(p, m);
  /* Reusing them does not grow the file; the lowest page numbers come first. */
  uint64_t first = page_new(p, m);
  assert_int_equal(first, 2);
  for (int i = 0; i < 100; i++)
    page_new(p, m);
  commit_ok(p, m);
  pg_stats_get(p, &st);
  assert_int_equal(st.page_count, pc);
  pg_close(p);
  p = open_ok(ctx, path, 128);
  verify(p, m);
  verify_free_list(p, m);
  pg_close(p);

  /* A corrupt free-list page fails the open. */
  p = open_ok(ctx, path, 128);
  uint64_t root = pg_super(p)->freelist_root;
  assert_true(root >= 2);
  pg_close(p);
  uint8_t orig[PAGE], page[PAGE];
  plain_pread(path, orig, PAGE, root * PAGE);
  struct layout_page_hdr h;
  assert_int_equal(layout_page_open(orig, PAGE, root, &h), JDB_OK);
  assert_int_equal(h.type, LAYOUT_PAGE_FREELIST);
  assert_int_equal(h.count, 507);   /* the first of three pages is full */
  assert_int_not_equal(le64_get(orig + 32), 0);
  garbage_page(path, root, 77);
  p = (struct pg *)1;
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  assert_null(p);
  /* Well-sealed pages the encoder cannot produce: ... a page named twice, */
  memcpy(page, orig, PAGE);
  memcpy(page + 48, page + 40, 8);
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, root * PAGE);
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  /* ... an entry past the end of the file, */
  memcpy(page, orig, PAGE);
  le64_put(page + 48, pc + 10);
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, root * PAGE);
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  /* ... a chain that loops back to its start, */
  memcpy(page, orig, PAGE);
  le64_put(page + 32, root);
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, root * PAGE);
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  /* ... a page that is not full although another follows, */
  memcpy(page, orig, PAGE);
  memset(page + 40 + 8 * 506, 0, 8);
  h.count = 506;
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, root * PAGE);
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  /* ... and the right type with a wrong page in the chain. */
  h.count = 507;
  memcpy(page, orig, PAGE);
  h.type = LAYOUT_PAGE_LEAF;
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, root * PAGE);
  assert_int_equal(pg_open(ctx, path, NULL, 0, &p), JDB_ECORRUPT);
  /* Repaired, it opens again. */
  plain_pwrite(path, orig, PAGE, root * PAGE);
  p = open_ok(ctx, path, 128);
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* Alloc/free/commit cycles with reclaim: the file stops growing. */
static void test_steady_state(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_steady");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 64);
  enum { LIVE = 40, CHURN = 8, CYCLES = 150 };
  uint64_t live[LIVE];
  for (int i = 0; i < LIVE; i++)
    live[i] = page_new(p, m);
  commit_ok(p, m);
  struct tutil_rng r;
  tutil_rng_init(&r, tutil_seed() ^ 0x57ead);
  uint64_t pc_at_50 = 0, pc_max = 0;
  for (int c = 0; c < CYCLES; c++) {
    for (int i = 0; i < CHURN; i++) {
      size_t j = (size_t)tutil_rng_below(&r, LIVE);
      page_drop(p, m, live[j]);
      live[j] = page_new(p, m);
    }
    commit_ok(p, m);
    pg_reclaim(p, pg_super(p)->generation);
    struct pg_stats st;
    pg_stats_get(p, &st);
    if (c == 50)
      pc_at_50 = st.page_count;
    if (st.page_count > pc_max)
      pc_max = st.page_count;
    if (c % 37 == 36) {
      pg_close(p);
      p = open_ok(ctx, path, 64);
      verify(p, m);
    }
  }
  struct pg_stats st;
  pg_stats_get(p, &st);
  print_message("  steady state: %llu pages for %d live (max %llu)\n",
                (unsigned long long)st.page_count, LIVE, (unsigned long long)pc_max);
  assert_int_equal(st.page_count, pc_at_50);
  assert_true(st.page_count <= 2 + LIVE + 2 * CHURN + 4);
  verify(p, m);
  pg_close(p);
  p = open_ok(ctx, path, 64);
  verify(p, m);
  verify_free_list(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}


/* ------------------------------------------------------------------------------------------- */
/* Spills */

/* Reopen with this budget: the state is m, the free list holds only pages m does not use. */
static void reopen_check(struct fs_ctx *ctx, const char *path, uint32_t frames,
                         const struct model *m)
{
  struct pg *p = open_ok(ctx, path, frames);
  verify(p, m);
  verify_free_list(p, m);
  pg_close(p);
}

static void pin_check(struct pg *p, const struct model *m, uint64_t pgno)
{
  struct pg_frame *fr = NULL;
  const void *d = NULL;
  int rc = pg_pin(p, pgno, LAYOUT_PAGE_LEAF, &fr, &d);
  if (rc)
    fprintf(stderr, "pin %llu: %s\n", (unsigned long long)pgno, jdb_strerror(rc));
  assert_int_equal(rc, JDB_OK);
  assert_true(body_check(d, pgno, m->tag[pgno]));
  pg_unpin(p, fr);
}

/* Pin a page of the state being built and give it new contents (pg_page_writable). */
static void page_rewrite(struct pg *p, struct model *m, uint64_t pgno)
{
  struct pg_frame *fr = NULL;
  const void *d = NULL;
  void *w = NULL;
  assert_int_equal(pg_pin(p, pgno, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  assert_int_equal(pg_page_writable(p, fr, &w), JDB_OK);
  assert_ptr_equal(w, d);
  page_fill(m, w, pgno);
  pg_unpin(p, fr);
}

/* A run of ten times the frame budget: pages spill, come back (some re-read from disk), are
   re-dirtied and freed in each state (dirty, spilled and resident, spilled and evicted); the
   commit writes the rest and everything reads back after a reopen. */
static void test_spill_large_run(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_spill");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  enum { FRAMES = 64, BASE = 30, RUN = 640 };
  struct pg *p = open_ok(ctx, path, FRAMES);
  build_pages(p, m, BASE, BASE);    /* pages 2 .. 31, committed */
  uint64_t base_pc = pg_super(p)->page_count;
  struct pg_stats st0, st;
  pg_stats_get(p, &st0);

  static uint64_t run[RUN];
  for (int i = 0; i < RUN; i++) {
    run[i] = page_new(p, m);
    pg_stats_get(p, &st);
    assert_true(st.dirty <= FRAMES);
  }
  pg_stats_get(p, &st);
  print_message("  %d pages through %d frames: %llu spills, %llu pages spilled\n", RUN, FRAMES,
                (unsigned long long)st.spills, (unsigned long long)st.spilled_pages);
  assert_true(st.spills >= (RUN - FRAMES) / 32);
  assert_true(st.spilled_pages >= RUN - FRAMES);
  assert_true(st.writes - st0.writes >= st.spilled_pages);
  assert_int_equal(st.commits, st0.commits);
  assert_int_equal(pg_super(p)->page_count, base_pc);   /* nothing committed yet */
  assert_int_equal(pg_check(p), JDB_OK);

  /* Every page reads back, the first ones from disk; the committed ones too. */
  uint64_t reads0 = st.reads;
  for (int i = 0; i < RUN; i++)
    pin_check(p, m, run[i]);
  for (uint64_t i = 2; i < 2 + BASE; i++)
    pin_check(p, m, i);
  pg_stats_get(p, &st);
  assert_true(st.reads - reads0 >= RUN - FRAMES);
  assert_int_equal(pg_check(p), JDB_OK);

  /* Re-dirty a spilled page that was evicted and one that is resident. */
  uint64_t evicted = run[0], resident = run[100];
  assert_null(pg_peek(p, evicted));
  assert_null(pg_peek(p, resident));
  pin_check(p, m, resident);        /* read back: spilled and resident now */
  assert_non_null(pg_peek(p, resident));
  pg_stats_get(p, &st0);
  page_rewrite(p, m, evicted);
  page_rewrite(p, m, resident);
  pg_stats_get(p, &st);
  assert_int_equal(st.dirty, st0.dirty + 2);
  assert_int_equal(pg_check(p), JDB_OK);
  /* A committed page is not writable. */
  struct pg_frame *fr;
  const void *d;
  void *w;
  assert_int_equal(pg_pin(p, 5, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  assert_int_equal(pg_page_writable(p, fr, &w), JDB_EINVAL);
  pg_unpin(p, fr);

  /* Free: spilled and evicted, spilled and resident (pinned, and not), dirty, committed. */
  uint64_t nfreed = 0, freed_evicted = 0, freed_resident = 0;
  for (int i = 1; i < RUN - 1; i += 5) {
    uint64_t pg = run[i];
    if (pg_peek(p, pg))
      freed_resident++;
    else
      freed_evicted++;
    page_drop(p, m, pg);
    nfreed++;
  }
  assert_true(freed_evicted > 0);
  assert_true(freed_resident > 0);
  assert_int_equal(pg_pin(p, run[RUN - 3], LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
  page_drop(p, m, run[RUN - 3]);    /* pinned: dropped at the unpin */
  nfreed++;
  assert_int_equal(pg_check(p), JDB_OK);
  pg_unpin(p, fr);
  uint64_t fresh = page_new(p, m);
  assert_int_equal(fresh, run[RUN - 3]);   /* reusable at once (the last freed) */
  page_drop(p, m, fresh);
  page_drop(p, m, evicted);         /* dirty again, then freed */
  nfreed++;
  for (uint64_t i = 2; i < 6; i++)
    page_drop(p, m, i);             /* committed: pending */
  pg_stats_get(p, &st);
  assert_int_equal(st.free_pages, nfreed);
  assert_int_equal(st.pending_free_pages, 4);
  assert_int_equal(pg_check(p), JDB_OK);

  /* The freed pages come back before the file grows. */
  uint64_t pc = st.page_count;
  for (int i = 0; i < 10; i++)
    page_new(p, m);
  pg_stats_get(p, &st);
  assert_int_equal(st.page_count, pc);
  assert_int_equal(st.free_pages, nfreed - 10);

  commit_ok(p, m);
  pg_stats_get(p, &st);
  assert_int_equal(st.dirty, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  verify(p, m);
  pg_close(p);

  reopen_check(ctx, path, 16, m);
  /* A second run after the reopen (spilling into the reused free pages) commits too. */
  p = open_ok(ctx, path, 16);
  for (int i = 0; i < 200; i++)
    page_new(p, m);
  commit_ok(p, m);
  pg_close(p);
  p = open_ok(ctx, path, 32);
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* Spills then a crash (or a close) before the commit: the previous state exactly, whatever
   the crash keeps of the spilled writes; the next state reuses those pages. */
static void test_spill_crash(void **state)
{
  const char *dir = tutil_tmpdir("pg_spcrash");
  char path[4096];
  file_in(dir, path, sizeof path);
  static const unsigned policies[] = {0, FS_CRASH_DROP, FS_CRASH_KEEP, FS_CRASH_TEAR,
                                      FS_CRASH_RANDOM};
  for (size_t pi = 0; pi < sizeof policies / sizeof policies[0]; pi++) {
    struct fs_ctx *ctx = fctx_new(state, tutil_seed() + pi);
    unlink(path);
    struct model *a = model_new(), *b = model_new();
    struct pg *p = open_ok(ctx, path, 32);
    build_pages(p, a, 120, 30);
    for (uint64_t i = 2; i < 60; i++)
      page_drop(p, a, i);           /* free pages the run below reuses */
    commit_ok(p, a);
    pg_close(p);
    p = open_ok(ctx, path, 32);
    uint64_t gen = pg_super(p)->generation;
    memcpy(b, a, sizeof *a);
    for (int i = 0; i < 300; i++)
      page_new(p, b);
    for (uint64_t i = 60; i < 80; i++)
      page_drop(p, b, i);
    struct pg_stats st;
    pg_stats_get(p, &st);
    assert_true(st.spilled_pages >= 300 - 32);
    assert_true(st.page_count > pg_super(p)->page_count);
    if (policies[pi]) {
      assert_true(fs_faulty_unsynced(ctx) > 0);
      fs_faulty_crash(ctx, policies[pi]);
      fs_faulty_revive(ctx);
    }
    pg_close(p);

    p = open_ok(ctx, path, 32);
    assert_int_equal(pg_super(p)->generation, gen);
    verify(p, a);
    verify_free_list(p, a);
    pg_close(p);
    /* The next state spills over the same pages and commits. */
    p = open_ok(ctx, path, 32);
    memcpy(b, a, sizeof *a);
    for (int i = 0; i < 300; i++)
      page_new(p, b);
    commit_ok(p, b);
    pg_close(p);
    reopen_check(ctx, path, 32, b);
    free(a);
    free(b);
    fs_ctx_destroy(ctx);
  }
}

/* A power cut at each I/O of a spill: the allocation fails, the previous state reopens. */
static void test_spill_crash_every_io(void **state)
{
  const char *dir = tutil_tmpdir("pg_spcio");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *b = model_new();
  for (uint64_t n = 1; n <= 20; n++) {
    struct fs_ctx *ctx = fctx_new(state, tutil_seed() * 7 + n);
    unlink(path);
    memset(a, 0, sizeof *a);
    struct pg *p = open_ok(ctx, path, 16);
    build_pages(p, a, 40, 14);
    memcpy(b, a, sizeof *a);
    for (int i = 0; i < 16; i++)
      page_new(p, b);               /* the budget full of dirty pages */
    struct fs_fault_rule r = {.kind = FS_FAULT_CRASH, .targets = FS_FT_DATA, .at = n,
                              .crash_policy = n % 2 ? FS_CRASH_RANDOM : FS_CRASH_KEEP};
    assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
    int rc = JDB_OK;
    uint64_t pgno;
    struct pg_frame *fr;
    void *wd;
    for (int i = 0; i < 40 && rc == JDB_OK; i++) {
      rc = pg_alloc(p, &pgno, &fr, &wd);
      if (rc == JDB_OK) {
        struct layout_page_hdr h = {.type = LAYOUT_PAGE_LEAF};
        pg_page_set_hdr(wd, &h);
        pg_unpin(p, fr);
      }
    }
    assert_int_equal(rc, JDB_EIO);
    fs_faulty_revive(ctx);
    fs_faulty_clear_rules(ctx);
    assert_int_equal(commit(p, b), JDB_EIO);
    assert_int_equal(pg_check(p), JDB_OK);
    pg_close(p);
    reopen_check(ctx, path, 16, a);
    fs_ctx_destroy(ctx);
  }
  free(a);
  free(b);
}

/* A page whose generation is the one being built is accepted only if this state spilled it;
   a spilled page whose disk copy is of another generation (a lost write) is corrupt too. */
static void test_spill_generation_check(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_spgen");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, m, 40, 14);
  for (uint64_t i = 10; i < 20; i++)
    page_drop(p, m, i);
  commit_ok(p, m);
  uint64_t gen = pg_super(p)->generation;
  pg_close(p);

  /* By hand: a well-sealed LEAF at free page 12 with generation gen + 1. */
  uint8_t page[PAGE];
  memset(page, 0, sizeof page);
  body_fill(page, 12, 4242);
  struct layout_page_hdr h = {.type = LAYOUT_PAGE_LEAF, .pgno = 12, .generation = gen + 1};
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, 12 * PAGE);
  p = open_ok(ctx, path, 16);
  pin_expect(p, 12, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  pin_expect(p, 12, 0, JDB_ECORRUPT);
  /* The same page with generation gen passes (a stale free page, as any). */
  h.generation = gen;
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, 12 * PAGE);
  pin_expect(p, 12, LAYOUT_PAGE_LEAF, JDB_OK);
  pg_close(p);
  /* Still corrupt while a state is being built that spilled other pages. */
  h.generation = gen + 1;
  layout_page_seal(page, PAGE, &h);
  plain_pwrite(path, page, PAGE, 12 * PAGE);
  p = open_ok(ctx, path, 16);
  static uint64_t run[64];
  for (int i = 0; i < 64; i++)
    run[i] = page_new(p, m);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_true(st.spills > 0);
  /* (page 12 was reused by the run: it is first on the free list) */
  assert_int_equal(run[0], 10);
  assert_int_equal(run[2], 12);
  pin_check(p, m, 12);              /* this state's page 12 reads back */
  for (int i = 0; i < 64; i++)
    pin_check(p, m, run[i]);
  /* A spilled, evicted page whose disk copy is replaced by an older sealed one: corrupt. */
  uint64_t x = run[5];
  for (int i = 40; i < 64; i++)
    pin_check(p, m, run[i]);        /* push x out of the 16 frames */
  assert_null(pg_peek(p, x));
  uint8_t disk[PAGE], old[PAGE];
  plain_pread(path, disk, PAGE, x * PAGE);
  assert_int_equal(layout_page_open(disk, PAGE, x, &h), JDB_OK);
  assert_int_equal(h.generation, gen + 1);
  memcpy(old, disk, PAGE);
  h.generation = gen;
  layout_page_seal(old, PAGE, &h);
  plain_pwrite(path, old, PAGE, x * PAGE);
  pin_expect(p, x, LAYOUT_PAGE_LEAF, JDB_ECORRUPT);
  plain_pwrite(path, disk, PAGE, x * PAGE);
  pin_check(p, m, x);
  /* Wrong type on a spilled page: checked like a committed page's. */
  for (int i = 40; i < 64; i++)
    pin_check(p, m, run[i]);
  assert_null(pg_peek(p, x));
  pin_expect(p, x, LAYOUT_PAGE_BRANCH, JDB_ECORRUPT);
  pin_expect(p, x, LAYOUT_PAGE_LEAF, JDB_OK);
  assert_int_equal(pg_check(p), JDB_OK);
  commit_ok(p, m);
  pg_close(p);
  p = open_ok(ctx, path, 16);
  verify(p, m);
  pg_close(p);
  free(m);
  fs_ctx_destroy(ctx);
}

/* EIO (and ENOSPC) on a spill write, from pg_alloc and from a reader's pg_pin: that call fails,
   the pg is poisoned like after a failed commit (allocations and commits JDB_EIO, committed
   pages readable), and a reopen shows the previous state. */
static void test_spill_io_error(void **state)
{
  const char *dir = tutil_tmpdir("pg_sperr");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *a = model_new(), *b = model_new();
  for (int round = 0; round < 4; round++) {
    int via_pin = round & 1;
    unsigned kind = round < 2 ? FS_FAULT_EIO : FS_FAULT_ENOSPC;
    struct fs_ctx *ctx = fctx_new(state, 40 + (uint64_t)round);
    unlink(path);
    memset(a, 0, sizeof *a);
    struct pg *p = open_ok(ctx, path, 32);
    build_pages(p, a, 60, 30);
    pg_close(p);
    p = open_ok(ctx, path, 32);
    memcpy(b, a, sizeof *a);
    for (int i = 0; i < 60; i++)
      page_new(p, b);               /* a first spill succeeds */
    struct pg_stats st;
    pg_stats_get(p, &st);
    assert_true(st.spills >= 1);
    for (uint64_t i = 0; st.dirty < 32; i++) {
      page_new(p, b);
      pg_stats_get(p, &st);
      assert_true(i < 64);
    }
    /* The 3rd write of the next spill fails. */
    struct fs_fault_rule r = {.kind = kind, .targets = FS_FT_WRITE, .at = 3};
    assert_int_equal(fs_faulty_add_rule(ctx, &r), JDB_OK);
    int want = kind == FS_FAULT_EIO ? JDB_EIO : JDB_ENOSPC;
    if (via_pin) {
      pin_expect(p, 30, LAYOUT_PAGE_LEAF, want);
    } else {
      uint64_t pgno;
      struct pg_frame *fr;
      void *wd;
      assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), want);
      assert_null(fr);
    }
    fs_faulty_clear_rules(ctx);
    pg_stats_get(p, &st);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(pg_check(p), JDB_OK);
    uint64_t pgno;
    struct pg_frame *fr;
    void *wd;
    assert_int_equal(pg_alloc(p, &pgno, &fr, &wd), JDB_EIO);
    assert_int_equal(commit(p, b), JDB_EIO);
    pg_free(p, 20);                 /* ignored */
    verify(p, a);                   /* committed pages still served */
    pg_close(p);
    p = open_ok(ctx, path, 32);
    verify(p, a);
    verify_free_list(p, a);
    for (int i = 0; i < 100; i++)
      page_new(p, a);
    commit_ok(p, a);
    pg_close(p);
    p = open_ok(ctx, path, 32);
    verify(p, a);
    pg_close(p);
    fs_ctx_destroy(ctx);
  }
  free(a);
  free(b);
}

/* A writer fiber building a run far over the budget while reader fibers pin committed pages:
   readers need frames while a spill is in flight (they wait for it, or spill themselves), the
   writer re-dirties and frees its own pages meanwhile; everything reads back after commit. */
struct fib_run {
  struct pg *p;
  struct model *m;
  uint64_t *run;
  int n;
  int rc;
  int done;
};

static void fib_spill_writer(void *arg)
{
  struct fib_run *x = arg;
  for (int i = 0; i < x->n; i++) {
    uint64_t pgno;
    struct pg_frame *fr;
    void *d;
    x->rc = pg_alloc(x->p, &pgno, &fr, &d);
    if (x->rc)
      break;
    page_fill(x->m, d, pgno);
    pg_unpin(x->p, fr);
    x->run[i] = pgno;
    if (i % 3 == 0)
      coro_yield();
    if (i >= 40 && i % 7 == 0) {
      /* An older page of the run: pinned (maybe read back, maybe in a spill in flight),
         rewritten; another one freed. */
      uint64_t q = x->run[i - 40];
      if (q) {
        const void *cd;
        x->rc = pg_pin(x->p, q, LAYOUT_PAGE_LEAF, &fr, &cd);
        if (x->rc)
          break;
        void *w;
        x->rc = pg_page_writable(x->p, fr, &w);
        if (x->rc)
          break;
        page_fill(x->m, w, q);
        pg_unpin(x->p, fr);
      }
      uint64_t z = x->run[i - 13];
      if (z) {
        pg_free(x->p, z);
        x->m->tag[z] = 0;
        for (int j = 0; j <= i; j++)
          if (x->run[j] == z)
            x->run[j] = 0;
      }
    }
  }
  x->done = 1;
}

static void test_spill_fibers(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_spfib");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new(), *snap = model_new();
  struct pg *p = open_ok(ctx, path, 64);
  build_pages(p, m, 200, 60);
  pg_close(p);
  memcpy(snap, m, sizeof *m);
  p = open_ok(ctx, path, 32);
  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  enum { N = 700, R = 8 };
  static uint64_t run[N];
  memset(run, 0, sizeof run);
  struct fib_run w = {.p = p, .m = m, .run = run, .n = N};
  assert_int_equal(coro_spawn(s, fib_spill_writer, &w, NULL), JDB_OK);
  struct fib y[R];
  for (int i = 0; i < R; i++) {
    y[i] = (struct fib){.p = p, .m = snap, .pgno = 200, .seed = tutil_seed() + 13 * (uint64_t)i,
                        .iters = 300};
    assert_int_equal(coro_spawn(s, fib_pin_random, &y[i], NULL), JDB_OK);
  }
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  coro_sched_destroy(s);
  assert_int_equal(w.done, 1);
  assert_int_equal(w.rc, JDB_OK);
  for (int i = 0; i < R; i++) {
    assert_int_equal(y[i].rc, JDB_OK);
    assert_int_equal(y[i].bad, 0);
  }
  struct pg_stats st;
  pg_stats_get(p, &st);
  print_message("  %s: %llu spills while readers ran\n", fs_ctx_backend_name(ctx),
                (unsigned long long)st.spills);
  assert_true(st.spills > 0);
  assert_int_equal(st.pinned, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  for (int i = 0; i < N; i++)
    if (run[i])
      pin_check(p, m, run[i]);
  commit_ok(p, m);
  pg_close(p);
  reopen_check(ctx, path, 32, m);
  free(m);
  free(snap);
  fs_ctx_destroy(ctx);
}


/* While a reader's spill is in flight (the reader parked in it): the writer frees a page of the
   batch, re-dirties another (waiting for the batch), a second reader needing a frame waits for
   the batch, and a commit waits for it too. Every outcome is checked whether or not a backend
   completes the batch before the other fibers run. */
struct fib_inflight {
  struct pg *p;
  struct model *m;
  const uint64_t *d;
  int rc;
  int done;
};

static void fib_writer_inflight(void *arg)
{
  struct fib_inflight *x = arg;
  pg_free(x->p, x->d[3]);
  x->m->tag[x->d[3]] = 0;
  struct pg_frame *fr;
  const void *cd;
  void *w;
  x->rc = pg_pin(x->p, x->d[5], LAYOUT_PAGE_LEAF, &fr, &cd);
  if (x->rc)
    return;
  x->rc = pg_page_writable(x->p, fr, &w);
  if (x->rc)
    return;
  page_fill(x->m, w, x->d[5]);
  pg_unpin(x->p, fr);
  x->done = 1;
}

static void fib_commit_only(void *arg)
{
  struct fib_inflight *x = arg;
  x->rc = commit(x->p, x->m);
  x->done = 1;
}

static void fib_free_realloc(void *arg)
{
  struct fib_inflight *x = arg;
  uint64_t victim = x->d[0], pgno;
  pg_free(x->p, victim);
  x->m->tag[victim] = 0;
  struct pg_frame *fr;
  void *w;
  x->rc = pg_alloc(x->p, &pgno, &fr, &w);
  if (x->rc)
    return;
  x->done = pgno == victim;
  page_fill(x->m, w, pgno);
  pg_unpin(x->p, fr);
}

static void test_spill_inflight(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_spfly");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, m, 40, 14);
  pg_close(p);
  p = open_ok(ctx, path, 16);
  uint64_t d[16];
  for (int i = 0; i < 16; i++)
    d[i] = page_new(p, m);          /* every frame dirty */

  struct coro_sched *s = NULL;
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  struct fib r1 = {.p = p, .m = m, .pgno = 30}, r2 = {.p = p, .m = m, .pgno = 31};
  struct fib_inflight w = {.p = p, .m = m, .d = d};
  assert_int_equal(coro_spawn(s, fib_pin_one, &r1, NULL), JDB_OK);   /* spills, parks */
  assert_int_equal(coro_spawn(s, fib_writer_inflight, &w, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, fib_pin_one, &r2, NULL), JDB_OK);
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  assert_int_equal(r1.rc, JDB_OK);
  assert_int_equal(r1.bad, 0);
  assert_int_equal(r2.rc, JDB_OK);
  assert_int_equal(r2.bad, 0);
  assert_int_equal(w.rc, JDB_OK);
  assert_int_equal(w.done, 1);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.spills, 1);
  assert_int_equal(st.spilled_pages, 16);
  assert_int_equal(st.dirty, 1);    /* d[5], dirty again */
  assert_int_equal(st.free_pages, 1);   /* d[3] */
  assert_int_equal(st.pinned, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  for (int i = 0; i < 16; i++)
    if (i != 3)
      pin_check(p, m, d[i]);

  /* A commit waits for a spill in flight. */
  for (;;) {
    pg_stats_get(p, &st);
    if (st.dirty == 16)
      break;
    page_new(p, m);
  }
  struct fib r3 = {.p = p, .m = m, .pgno = 32};
  struct fib_inflight c = {.p = p, .m = m};
  assert_int_equal(coro_spawn(s, fib_pin_one, &r3, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, fib_commit_only, &c, NULL), JDB_OK);
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  coro_sched_destroy(s);
  assert_int_equal(r3.rc, JDB_OK);
  assert_int_equal(r3.bad, 0);
  assert_int_equal(c.rc, JDB_OK);
  pg_stats_get(p, &st);
  assert_int_equal(st.spills, 2);
  assert_int_equal(st.dirty, 0);
  assert_int_equal(pg_check(p), JDB_OK);
  verify(p, m);

  /* A reader loading a spilled page while the writer frees it and allocates it again (outside
     the contract: nobody may read a page the state being built dropped): the read fails
     verification, the allocation waits for it and gets the page. */
  uint64_t run[40];
  for (int i = 0; i < 40; i++)
    run[i] = page_new(p, m);
  assert_null(pg_peek(p, run[0]));
  struct fib r4 = {.p = p, .m = m, .pgno = run[0]};
  struct fib_inflight a = {.p = p, .m = m, .d = run};
  assert_int_equal(coro_sched_create(NULL, &s), JDB_OK);
  assert_int_equal(coro_spawn(s, fib_pin_one, &r4, NULL), JDB_OK);
  assert_int_equal(coro_spawn(s, fib_free_realloc, &a, NULL), JDB_OK);
  assert_int_equal(fs_loop_run(ctx, s), JDB_OK);
  coro_sched_destroy(s);
  assert_int_equal(r4.rc, JDB_ECORRUPT);
  assert_int_equal(a.rc, JDB_OK);
  assert_int_equal(a.done, 1);
  assert_int_equal(pg_check(p), JDB_OK);
  commit_ok(p, m);
  verify(p, m);
  pg_close(p);
  reopen_check(ctx, path, 16, m);
  free(m);
  fs_ctx_destroy(ctx);
}

/* pg_prefetch: reads start without pins, pins then find the pages (hit, or joining the read in
   flight), out-of-range and resident pages are skipped, a full budget stops the batch, and a
   damaged page read ahead is reported by the pin, not by the prefetch. */
static void test_prefetch(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_prefetch");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  struct pg *p = open_ok(ctx, path, 16);
  build_pages(p, m, 60, 14);
  pg_close(p);
  /* damage page 40 on disk (a sector of its body zeroed) */
  uint8_t zero[512] = {0};
  plain_pwrite(path, zero, sizeof zero, 40 * PAGE + 1024);

  p = open_ok(ctx, path, 16);
  uint64_t want[8] = {2, 3, 4, 0, 1, 5, 999999, 6};
  /* 0, 1 and past the end skipped; at most a quarter of the 16 frames: 2, 3, 4, 5 */
  assert_int_equal(pg_prefetch(p, want, 8), 4);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.prefetches, 4);
  assert_int_equal(st.pinned, 0);
  for (uint64_t pg = 2; pg <= 6; pg++) {
    struct pg_frame *fr;
    const void *d;
    assert_int_equal(pg_pin(p, pg, LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
    assert_true(body_check(d, pg, m->tag[pg]));
    pg_unpin(p, fr);
  }
  pg_stats_get(p, &st);
  assert_int_equal(st.reads, 5);                   /* the pin of 6 read it; no other again */
  /* already resident: nothing to do */
  assert_int_equal(pg_prefetch(p, want, 3), 0);
  /* more pages than frames: the batch stops at a quarter of the frames */
  uint64_t many[30];
  for (int i = 0; i < 30; i++)
    many[i] = 10 + (uint64_t)i;
  size_t got = pg_prefetch(p, many, 30);
  assert_true(got >= 1 && got <= 4);
  for (int i = 0; i < 30; i++) {
    struct pg_frame *fr;
    const void *d;
    assert_int_equal(pg_pin(p, many[i], LAYOUT_PAGE_LEAF, &fr, &d), JDB_OK);
    assert_true(body_check(d, many[i], m->tag[many[i]]));
    pg_unpin(p, fr);
  }
  /* the damaged page: the prefetch starts, the pin reports it */
  uint64_t bad = 40;
  assert_int_equal(pg_prefetch(p, &bad, 1), 1);
  struct pg_frame *fr;
  const void *d;
  assert_int_equal(pg_pin(p, 40, LAYOUT_PAGE_LEAF, &fr, &d), JDB_ECORRUPT);
  assert_int_equal(pg_check(p), JDB_OK);
  pg_close(p);
  free(m);
  tutil_rmrf(dir);
  fs_ctx_destroy(ctx);
}

/* A large budget costs memory only as frames come into use: after open none is used, each page
   read takes a frame never used before while the budget has one (no eviction), the hash table
   grows (rehashing) as they do, and every page stays readable across the growths. When the table
   cannot grow (out of memory) the cache stops growing and CLOCK reuses the frames it has; once
   memory is back it grows again. */
static int g_big_fail;   /* 1: allocations of 64 KiB and more fail (a slot table past 1024 frames) */
static void *big_fail_malloc(size_t n)
{
  return g_big_fail && n >= (64u << 10) ? NULL : malloc(n);
}

static void test_lazy_frames(void **state)
{
  struct fs_ctx *ctx = ctx_new(state);
  const char *dir = tutil_tmpdir("pg_lazy");
  char path[4096];
  file_in(dir, path, sizeof path);
  struct model *m = model_new();
  enum { NPAGES = 6000, BUDGET = 1u << 18 };   /* 1 GiB of frames */
  struct pg *p = open_ok(ctx, path, 64);
  build_pages(p, m, NPAGES, 48);
  pg_close(p);

  p = open_ok(ctx, path, BUDGET);
  struct pg_stats st;
  pg_stats_get(p, &st);
  assert_int_equal(st.frames, BUDGET);
  assert_true(st.frames_used <= 2);
  assert_int_equal(st.fixed_frames, 0);   /* registration pins: nothing before use */
  verify(p, m);   /* pins every page once, then pg_check */
  pg_stats_get(p, &st);
  assert_true(st.frames_used >= NPAGES && st.frames_used <= NPAGES + 8);
  assert_int_equal(st.evictions, 0);
  /* the first 16 MiB slot is filled once its frames are in use (when the backend registers) */
  if (st.fixed_buffers)
    assert_true(st.fixed_frames >= 4096 && st.fixed_frames <= 65536);
  verify(p, m);   /* all hits now */
  pg_stats_get(p, &st);
  assert_int_equal(st.evictions, 0);
  pg_close(p);

  /* Growth refused: 1024 frames (the first table's) and CLOCK. */
  p = open_ok(ctx, path, BUDGET);
  struct mem_hooks h = {.malloc_fn = big_fail_malloc};
  mem_hooks_set(&h);
  g_big_fail = 1;
  for (uint64_t pg = 2; pg < NPAGES + 2; pg++)
    pin_expect(p, pg, LAYOUT_PAGE_LEAF, JDB_OK);
  pg_stats_get(p, &st);
  assert_true(st.frames_used <= 1024);
  assert_true(st.evictions >= NPAGES - 1024);
  assert_int_equal(pg_check(p), JDB_OK);
  g_big_fail = 0;
  mem_hooks_set(NULL);
  verify(p, m);
  pg_stats_get(p, &st);
  assert_true(st.frames_used > 1024);
  pg_close(p);
  free(m);
  tutil_rmrf(dir);
  fs_ctx_destroy(ctx);
}

/* The prefault window (pg_pfwin_step) against a simulated helper that needs `cost` frames of use
   to populate one request: a helper faster than use never lets use reach a request issued ahead
   of it, so the window keeps its first size (RSS runs at most that far ahead); a slower one does,
   and the window doubles once per such request up to the maximum. Requests never pass the
   budget, never overlap, and are at most a chunk each. */
static uint32_t pfwin_run(uint32_t nframes, uint32_t cost, uint32_t *max_lead, uint64_t *grows)
{
  enum { CHUNK = 64, FIRST = 4 * CHUNK, MAX = 32 * CHUNK };
  struct pg_pfwin w = {.ahead = FIRST};
  uint32_t done_at = 0;   /* the use count at which the request in flight completes */
  int inflight = 0;
  *max_lead = 0;
  *grows = 0;
  for (uint32_t nused = 1; nused <= nframes; nused++) {
    int busy = inflight && nused < done_at;
    if (!busy)
      inflight = 0;
    int grew = 0;
    uint32_t prev_next = w.next;
    uint32_t n = pg_pfwin_step(&w, nused, nframes, busy, CHUNK, MAX, &grew);
    *grows += (uint64_t)grew;
    assert_true(w.ahead >= FIRST && w.ahead <= MAX);
    if (n) {
      assert_false(busy);
      assert_true(n <= CHUNK);
      assert_true(w.next >= prev_next && w.next >= nused);   /* no overlap with earlier ones */
      assert_true(w.next + n <= nframes);
      w.next += n;
      inflight = 1;
      done_at = nused + cost;
    }
    if (w.next > nused && w.next - nused > *max_lead)
      *max_lead = w.next - nused;
  }
  return w.ahead;
}

static void test_prefault_window(void **state)
{
  (void)state;
  enum { CHUNK = 64, FIRST = 4 * CHUNK, MAX = 32 * CHUNK };
  uint32_t lead;
  uint64_t grows;
  /* the helper 8x faster than use: the first window throughout */
  assert_int_equal(pfwin_run(100000, CHUNK / 8, &lead, &grows), FIRST);
  assert_int_equal(grows, 0);
  assert_true(lead <= FIRST + CHUNK);
  /* the helper 2x slower than use: grows to the maximum, one doubling per request reached */
  assert_int_equal(pfwin_run(100000, 2 * CHUNK, &lead, &grows), MAX);
  assert_int_equal(grows, 3);   /* 4 -> 8 -> 16 -> 32 chunks */
  assert_true(lead <= MAX + CHUNK);
  /* a budget smaller than a chunk: one request of what there is */
  struct pg_pfwin w = {.ahead = FIRST};
  int grew;
  assert_int_equal(pg_pfwin_step(&w, 1, 10, 0, CHUNK, MAX, &grew), 9);
  assert_int_equal(grew, 0);
  w.next += 9;
  assert_int_equal(pg_pfwin_step(&w, 2, 10, 1, CHUNK, MAX, &grew), 0);
  assert_int_equal(grew, 0);   /* the budget is all requested: nothing to grow for */
  assert_int_equal(pg_pfwin_step(&w, 3, 10, 0, CHUNK, MAX, &grew), 0);
}

/* ------------------------------------------------------------------------------------------- */

#define BOTH(fn) \
  cmocka_unit_test_prestate(fn, &g_uring), cmocka_unit_test_prestate(fn, &g_psync)

int main(void)
{
  tutil_init();
  struct fs_ctx_opts o = {.backend = FS_BACKEND_URING};
  struct fs_ctx *probe = NULL;
  if (fs_ctx_create(&o, &probe) == JDB_OK) {
    g_have_uring = 1;
    fs_ctx_destroy(probe);
  } else {
    fprintf(stderr, "io_uring unavailable: the uring variants are skipped\n");
  }
  const struct CMUnitTest tests[] = {
    BOTH(test_create_open),
    BOTH(test_commit_readback),
    BOTH(test_commit_runs),
    BOTH(test_free_drops_cache),
    BOTH(test_bad_commit_args),
    BOTH(test_eviction),
    BOTH(test_lazy_frames),
    cmocka_unit_test(test_prefault_window),
    BOTH(test_dirty_budget),
    BOTH(test_fibers_one_read),
    BOTH(test_fiber_commit),
    BOTH(test_corrupt_pages),
    BOTH(test_superblock_slots),
    BOTH(test_superblock_torn),
    BOTH(test_crash_every_io),
    BOTH(test_commit_errors),
    BOTH(test_read_errors),
    BOTH(test_free_reuse_rules),
    BOTH(test_free_list_reopen),
    BOTH(test_steady_state),
    BOTH(test_spill_large_run),
    BOTH(test_spill_crash),
    BOTH(test_spill_crash_every_io),
    BOTH(test_spill_generation_check),
    BOTH(test_spill_io_error),
    BOTH(test_spill_fibers),
    BOTH(test_spill_inflight),
    BOTH(test_prefetch),
  };
  return cmocka_run_group_tests_name("page", tests, NULL, NULL);
}
