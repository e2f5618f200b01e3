/*
 * install_prog.c - a user's C program, built against the installed jdb.h and `pkg-config jdb`
 * only (tests/capi/install_check.sh).
 *
 * Usage: install_prog DIR   (DIR must not exist yet; the database is created there)
 * Opens a database, writes through put/del, a batch and a pipeline, reads it back with gets
 * and an iterator both ways, closes, reopens and checks everything again. Exit 0 and one line
 * on stdout when all is well; otherwise the failing call and its jdb_strerror text on stderr.
 */
#include <jdb.h>

#include <stdio.h>
#include <string.h>

#define N_KEYS 200

/* Stops the program with a message when a call fails. */
#define CHECK_RC(call)                                                                    \
  do {                                                                                    \
    int rc_ = (call);                                                                     \
    if (rc_ != JDB_OK) {                                                                  \
      fprintf(stderr, "install_prog.c:%d: %s: %s\n", __LINE__, #call, jdb_strerror(rc_)); \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)
#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "install_prog.c:%d: check failed: %s\n", __LINE__, #cond); \
      return 1;                                                                   \
    }                                                                             \
  } while (0)

static void key_of(int i, char *buf, size_t cap) { snprintf(buf, cap, "key%04d", i); }

/* Key i is live when it is not a multiple of 5 (those are deleted); its value is "val<i>",
   except for keys 0..9 whose value the batch replaced with "batch<i>". */
static int live(int i) { return i % 5 != 0; }
static void value_of(int i, char *buf, size_t cap)
{
  snprintf(buf, cap, i < 10 ? "batch%d" : "val%d", i);
}

/* Every check on the data; run before and after reopening. */
static int verify(jdb_table_t *t)
{
  char k[32], want[32];
  int live_count = 0;
  for (int i = 0; i < N_KEYS; i++) {
    void *v = NULL;
    size_t vlen = 0;
    key_of(i, k, sizeof k);
    int rc = jdb_get(t, k, strlen(k), &v, &vlen);
    if (!live(i)) {
      CHECK(rc == JDB_NOTFOUND);
      CHECK(v == NULL);
      continue;
    }
    CHECK_RC(rc);
    value_of(i, want, sizeof want);
    CHECK(vlen == strlen(want) && memcmp(v, want, vlen) == 0);
    jdb_free(v);
    live_count++;
  }

  /* Forwards, then backwards: every live key once, in order, with its value. */
  jdb_iter_t *it = NULL;
  CHECK_RC(jdb_iter_open(t, NULL, &it));
  for (int dir = 0; dir < 2; dir++) {
    int i = dir == 0 ? 0 : N_KEYS - 1, seen = 0;
    int rc = dir == 0 ? jdb_iter_first(it) : jdb_iter_last(it);
    for (; rc == JDB_OK; rc = dir == 0 ? jdb_iter_next(it) : jdb_iter_prev(it)) {
      while (!live(i)) i += dir == 0 ? 1 : -1;
      const void *ik, *iv;
      size_t iklen, ivlen;
      CHECK_RC(jdb_iter_key(it, &ik, &iklen));
      CHECK_RC(jdb_iter_value(it, &iv, &ivlen));
      key_of(i, k, sizeof k);
      value_of(i, want, sizeof want);
      CHECK(iklen == strlen(k) && memcmp(ik, k, iklen) == 0);
      CHECK(ivlen == strlen(want) && memcmp(iv, want, ivlen) == 0);
      seen++;
      i += dir == 0 ? 1 : -1;
    }
    CHECK(rc == JDB_NOTFOUND);
    CHECK(seen == live_count);
  }
  /* Seeks land on the neighbours of a deleted key. */
  CHECK_RC(jdb_iter_seek(it, "key0100", 7));
  const void *ik;
  size_t iklen;
  CHECK_RC(jdb_iter_key(it, &ik, &iklen));
  CHECK(iklen == 7 && memcmp(ik, "key0101", 7) == 0);
  CHECK_RC(jdb_iter_seek_prev(it, "key0100", 7));
  CHECK_RC(jdb_iter_key(it, &ik, &iklen));
  CHECK(iklen == 7 && memcmp(ik, "key0099", 7) == 0);
  jdb_iter_close(it);
  return 0;
}

static int open_db(const char *dir, jdb_t **db, jdb_table_t **t, unsigned flags)
{
  jdb_options_t o;
  jdb_options_init(&o);
  o.shards = 2;
  o.pin_cores = 0;
  o.cache_bytes = 16u << 20;
  CHECK_RC(jdb_open(dir, &o, db));
  CHECK_RC(jdb_table_open(*db, "demo", 4, flags, t));
  return 0;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: install_prog DIR\n");
    return 2;
  }
  if (strcmp(jdb_version(), JDB_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", JDB_VERSION_STRING, jdb_version());
    return 1;
  }
  CHECK(strncmp(jdb_strerror(JDB_ECORRUPT), "JDB_ECORRUPT", 12) == 0);

  jdb_t *db = NULL;
  jdb_table_t *t = NULL;
  if (open_db(argv[1], &db, &t, JDB_CREATE) != 0) return 1;

  /* put / get / del. */
  char k[32], v[32];
  for (int i = 0; i < N_KEYS; i++) {
    key_of(i, k, sizeof k);
    snprintf(v, sizeof v, "val%d", i);
    CHECK_RC(jdb_put(t, k, strlen(k), v, strlen(v)));
  }
  for (int i = 0; i < N_KEYS; i += 5) {
    key_of(i, k, sizeof k);
    CHECK_RC(jdb_del(t, k, strlen(k)));
  }
  CHECK(jdb_put(t, "", 0, "v", 1) == JDB_EINVAL);

  /* A batch rewrites keys 0..9 (deleted ones stay deleted: put then del). */
  jdb_batch_t *b = jdb_batch_new();
  CHECK(b != NULL);
  for (int i = 0; i < 10; i++) {
    key_of(i, k, sizeof k);
    snprintf(v, sizeof v, "batch%d", i);
    CHECK_RC(jdb_batch_put(b, k, strlen(k), v, strlen(v)));
    if (!live(i)) CHECK_RC(jdb_batch_del(b, k, strlen(k)));
  }
  CHECK_RC(jdb_write(t, b, JDB_SYNC));
  jdb_batch_free(b);

  /* A pipeline: one put and one get of the same key, in queue order. */
  jdb_pipe_t *p = jdb_pipe_new(db);
  CHECK(p != NULL);
  CHECK_RC(jdb_pipe_put(p, t, "piped", 5, "yes", 3));
  CHECK_RC(jdb_pipe_get(p, t, "piped", 5));
  CHECK_RC(jdb_pipe_exec(p, 0));
  const void *pv;
  size_t pvlen;
  CHECK_RC(jdb_pipe_result(p, 0, NULL, NULL));
  CHECK_RC(jdb_pipe_result(p, 1, &pv, &pvlen));
  CHECK(pvlen == 3 && memcmp(pv, "yes", 3) == 0);
  jdb_pipe_free(p);
  CHECK_RC(jdb_del(t, "piped", 5));

  if (verify(t) != 0) return 1;
  jdb_table_close(t);
  CHECK_RC(jdb_close(db));

  /* Reopen: everything acknowledged is there. */
  if (open_db(argv[1], &db, &t, 0) != 0) return 1;
  if (verify(t) != 0) return 1;
  jdb_table_close(t);
  CHECK_RC(jdb_close(db));

  printf("install_prog (C): libjdb %s: %d keys written, %d live, read back both ways after "
         "reopen\n", jdb_version(), N_KEYS, N_KEYS - N_KEYS / 5);
  return 0;
}
