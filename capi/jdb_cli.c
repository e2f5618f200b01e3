/*
 * jdb_cli.c - the `jdb` command: a small front end to one database directory, written against
 * the public header only (it links libjdb.so like any other program).
 *
 *     jdb [global options] <command> [command options] [args]
 *
 * Global options (accepted before or after the command): --dir D (default ./jdb-data),
 * --table T (default "default"), --shards N (only when the directory is created), --sync (writes
 * survive power loss before the command returns), --create / --no-create (whether a missing
 * database and table are created; by default only put and bench create), -h/--help, -V/--version.
 * An argument starting with '-' is an option; "--" ends the options (for keys such as "-1").
 *
 * Commands: put, get, del, scan, tables, stats, check, bench (cli_cmds[] below says what each
 * does). Each invocation opens the instance, runs one command and closes it; get, scan, tables,
 * stats and check open it read-only. Output bytes that are not printable ASCII, and the
 * backslash, are written as \xNN by scan and tables; get writes the value as it is (or in hex
 * with --hex).
 *
 * Exit status: 0 success; 1 a database error (the message on stderr carries jdb_strerror's
 * text), including a missing key for get, a check that found problems and a bench whose read-back
 * or scans found a wrong value; 2 a usage error.
 *
 * bench: generated key i (0 <= i < n) is the 16 hex digits of cli_mix64(i), a bijection on
 * 64-bit integers, so every key is distinct, keys arrive in random order, and a scanned key gives
 * its i back (cli_unmix64). Key i lives in table "bench-(i mod tables)" and its value is
 * value_size printable bytes drawn from a generator seeded by i, so every value read or scanned
 * is checked against the one written.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jdb.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_DB = 1, CLI_EXIT_USAGE = 2 };

/* The options of one invocation (cli_opts[] fills them in) and the open instance. */
struct cli {
  const char *dir;
  const char *table;
  uint64_t shards;
  int sync;              /* --sync */
  int create;            /* -1: the command decides; 0: --no-create; 1: --create */
  int help, version;
  int hex, reverse, per_shard;
  const char *from;
  uint64_t limit;
  uint64_t bench_n, bench_value_size, bench_tables, bench_threads, bench_batch, bench_pipe;
  jdb_t *db;
};

/* ============================================================================================
 * Options: one table for every command.
 * ========================================================================================== */

enum { CLI_OPT_FLAG, CLI_OPT_CLEAR, CLI_OPT_U64, CLI_OPT_STR };

#define CLI_BENCH_TABLES_MAX 1024u
#define CLI_BENCH_THREADS_MAX 64u
#define CLI_BENCH_VALUE_MAX (1u << 20)

struct cli_opt {
  const char *name;      /* "--from" */
  const char *alias;     /* "-r", or NULL */
  const char *cmds;      /* the commands taking it, space separated; NULL: every command */
  int kind;              /* FLAG sets the int field to 1, CLEAR to 0; U64 and STR take a value */
  size_t off;            /* the field of struct cli */
  uint64_t min, max;     /* U64 bounds */
};

#define CLI_OFF(f) offsetof(struct cli, f)
static const struct cli_opt cli_opts[] = {
    {"--dir", NULL, NULL, CLI_OPT_STR, CLI_OFF(dir), 0, 0},
    {"--table", NULL, NULL, CLI_OPT_STR, CLI_OFF(table), 0, 0},
    {"--shards", NULL, NULL, CLI_OPT_U64, CLI_OFF(shards), 0, JDB_SHARDS_MAX},
    {"--sync", NULL, NULL, CLI_OPT_FLAG, CLI_OFF(sync), 0, 0},
    {"--create", NULL, NULL, CLI_OPT_FLAG, CLI_OFF(create), 0, 0},
    {"--no-create", NULL, NULL, CLI_OPT_CLEAR, CLI_OFF(create), 0, 0},
    {"--help", "-h", NULL, CLI_OPT_FLAG, CLI_OFF(help), 0, 0},
    {"--version", "-V", NULL, CLI_OPT_FLAG, CLI_OFF(version), 0, 0},
    {"--hex", NULL, "get scan", CLI_OPT_FLAG, CLI_OFF(hex), 0, 0},
    {"--reverse", "-r", "scan", CLI_OPT_FLAG, CLI_OFF(reverse), 0, 0},
    {"--from", NULL, "scan", CLI_OPT_STR, CLI_OFF(from), 0, 0},
    {"--limit", "-n", "scan", CLI_OPT_U64, CLI_OFF(limit), 0, UINT64_MAX},
    {"--per-shard", NULL, "stats", CLI_OPT_FLAG, CLI_OFF(per_shard), 0, 0},
    {"--n", NULL, "bench", CLI_OPT_U64, CLI_OFF(bench_n), 0, UINT64_C(1) << 40},
    {"--value-size", NULL, "bench", CLI_OPT_U64, CLI_OFF(bench_value_size), 0,
     CLI_BENCH_VALUE_MAX},
    {"--tables", NULL, "bench", CLI_OPT_U64, CLI_OFF(bench_tables), 1, CLI_BENCH_TABLES_MAX},
    {"--threads", NULL, "bench", CLI_OPT_U64, CLI_OFF(bench_threads), 1, CLI_BENCH_THREADS_MAX},
    {"--batch", NULL, "bench", CLI_OPT_U64, CLI_OFF(bench_batch), 1, JDB_BATCH_MAX},
    {"--pipe", NULL, "bench", CLI_OPT_U64, CLI_OFF(bench_pipe), 1, JDB_BATCH_MAX},
};
#define CLI_NOPTS (sizeof(cli_opts) / sizeof(cli_opts[0]))

static void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cli_err(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("jdb: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* A database error: "jdb: <what>: JDB_E...: text". Returns the exit status. */
static int cli_fail(const char *what, int rc)
{
  cli_err("%s: %s", what, jdb_strerror(rc));
  return CLI_EXIT_DB;
}

/* Decimal unsigned integer, the whole string, within [min, max]. */
static int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
  char *end = NULL;
  if (s[0] < '0' || s[0] > '9')
    return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

/* Is `word` one of the space-separated words of `list`? */
static int cli_word_in(const char *list, const char *word)
{
  size_t n = strlen(word);
  for (const char *p = list; *p != '\0';) {
    size_t len = strcspn(p, " ");
    if (len == n && memcmp(p, word, n) == 0)
      return 1;
    p += len + (p[len] == ' ');
  }
  return 0;
}

/* The option called name[0 .. name_len-1] that command `cmd` takes (NULL: before a command). */
static const struct cli_opt *cli_opt_find(const char *name, size_t name_len, const char *cmd)
{
  for (size_t i = 0; i < CLI_NOPTS; i++) {
    const struct cli_opt *o = &cli_opts[i];
    int named = (strlen(o->name) == name_len && memcmp(o->name, name, name_len) == 0) ||
                (o->alias != NULL && strlen(o->alias) == name_len &&
                 memcmp(o->alias, name, name_len) == 0);
    if (named && (o->cmds == NULL || (cmd != NULL && cli_word_in(o->cmds, cmd))))
      return o;
  }
  return NULL;
}

/*
 * Parse argv[0 .. argc-1]: the options command `cmd` takes (cmd NULL: the global ones) go into c,
 * the other arguments to pos[], which must receive exactly npos of them (unless --help was
 * given). Returns 0, or CLI_EXIT_USAGE after a message.
 */
static int cli_parse(struct cli *c, const char *cmd, int argc, char **argv, char **pos, int npos)
{
  char who[32] = "";   /* "get: ", or nothing before the command */
  if (cmd != NULL)
    snprintf(who, sizeof(who), "%s: ", cmd);
  int n = 0;
  int only_pos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (only_pos || a[0] != '-' || a[1] == '\0') {
      if (n == npos) {
        cli_err("%sunexpected argument '%s'", who, a);
        return CLI_EXIT_USAGE;
      }
      pos[n++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    const char *eq = strchr(a, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - a) : strlen(a);
    const struct cli_opt *o = cli_opt_find(a, name_len, cmd);
    if (o == NULL) {
      cli_err("%sunknown option '%.*s' (see jdb --help)", who, (int)name_len, a);
      return CLI_EXIT_USAGE;
    }
    void *dst = (char *)c + o->off;
    if (o->kind == CLI_OPT_FLAG || o->kind == CLI_OPT_CLEAR) {
      if (eq != NULL) {
        cli_err("%soption %s takes no value", who, o->name);
        return CLI_EXIT_USAGE;
      }
      *(int *)dst = o->kind == CLI_OPT_FLAG;
      continue;
    }
    const char *val = eq != NULL ? eq + 1 : NULL;
    if (val == NULL) {
      if (i + 1 == argc) {
        cli_err("%soption %s needs a value", who, o->name);
        return CLI_EXIT_USAGE;
      }
      val = argv[++i];
    }
    if (o->kind == CLI_OPT_STR) {
      *(const char **)dst = val;
    } else if (cli_parse_u64(val, o->min, o->max, (uint64_t *)dst) != 0) {
      cli_err("%soption %s wants an integer in %" PRIu64 "..%" PRIu64 ", not '%s'", who,
              o->name, o->min, o->max, val);
      return CLI_EXIT_USAGE;
    }
  }
  if (n < npos && !c->help) {
    cli_err("%smissing argument (see jdb %s --help)", who, cmd);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

/* ============================================================================================
 * Output helpers.
 * ========================================================================================== */

/* Bytes as text: printable ASCII as is, anything else and '\' as \xNN. */
static void cli_put_escaped(FILE *f, const void *p, size_t n)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
      putc_unlocked(b[i], f);
    else
      fprintf(f, "\\x%02x", b[i]);
  }
}

static void cli_put_hex(FILE *f, const void *p, size_t n)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    putc_unlocked(digits[b[i] >> 4], f);
    putc_unlocked(digits[b[i] & 15], f);
  }
}

/* "1.5 MiB"; exact bytes below 1 KiB. */
static const char *cli_fmt_bytes(uint64_t v, char buf[32])
{
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (v < 1024) {
    snprintf(buf, 32, "%" PRIu64 " B", v);
    return buf;
  }
  double d = (double)v / 1024.0;
  size_t u = 0;
  while (d >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
    d /= 1024.0;
    u++;
  }
  snprintf(buf, 32, "%.1f %s", d, units[u]);
  return buf;
}

/* "850 ns", "12.3 us", "4.56 ms", "1.23 s". */
static const char *cli_fmt_ns(uint64_t ns, char buf[32])
{
  if (ns < 1000)
    snprintf(buf, 32, "%" PRIu64 " ns", ns);
  else if (ns < 1000000)
    snprintf(buf, 32, "%.1f us", (double)ns / 1e3);
  else if (ns < 1000000000)
    snprintf(buf, 32, "%.2f ms", (double)ns / 1e6);
  else
    snprintf(buf, 32, "%.2f s", (double)ns / 1e9);
  return buf;
}

static double cli_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ============================================================================================
 * Opening.
 * ========================================================================================== */

/*
 * Open c->dir. `creates` is the command's default for a missing directory; a command that only
 * reads (and is not told to --create) opens read-only: it shares the directory with other
 * readers and its close has nothing to checkpoint.
 */
static int cli_open(struct cli *c, int creates, int reads_only)
{
  jdb_options_t o;
  jdb_options_init(&o);
  o.shards = (uint32_t)c->shards;
  o.create_if_missing = c->create >= 0 ? c->create : creates;
  o.read_only = reads_only && !o.create_if_missing;
  int rc = jdb_open(c->dir, &o, &c->db);
  if (rc == JDB_NOTFOUND && !o.create_if_missing) {
    cli_err("open %s: %s (no database there; put and bench create one, as does --create)",
            c->dir, jdb_strerror(rc));
    return CLI_EXIT_DB;
  }
  if (rc != JDB_OK) {
    cli_err("open %s: %s", c->dir, jdb_strerror(rc));
    return CLI_EXIT_DB;
  }
  return 0;
}

/* Open c->table (JDB_CREATE when the command creates and --no-create is absent). */
static int cli_table_open(struct cli *c, int creates, jdb_table_t **out)
{
  int create = c->create >= 0 ? c->create : creates;
  int rc = jdb_table_open(c->db, c->table, strlen(c->table), create ? JDB_CREATE : 0, out);
  if (rc != JDB_OK) {
    cli_err("table '%s': %s", c->table, jdb_strerror(rc));
    return CLI_EXIT_DB;
  }
  return 0;
}

/* ============================================================================================
 * put, get, del, scan, tables. Each runs with the instance open, t open unless the command
 * needs no table, and pos[] holding its arguments (cli_cmds[]).
 * ========================================================================================== */

static int cli_cmd_put(struct cli *c, jdb_table_t *t, char **pos)
{
  int (*put)(jdb_table_t *, const void *, size_t, const void *, size_t) =
      c->sync ? jdb_put_sync : jdb_put;
  int rc = put(t, pos[0], strlen(pos[0]), pos[1], strlen(pos[1]));
  return rc == JDB_OK ? 0 : cli_fail("put", rc);
}

static int cli_cmd_get(struct cli *c, jdb_table_t *t, char **pos)
{
  void *val = NULL;
  size_t vlen = 0;
  int rc = jdb_get(t, pos[0], strlen(pos[0]), &val, &vlen);
  if (rc != JDB_OK) {
    cli_err("get '%s': %s", pos[0], jdb_strerror(rc));
    return CLI_EXIT_DB;
  }
  if (c->hex)
    cli_put_hex(stdout, val, vlen);
  else
    fwrite(val, 1, vlen, stdout);
  putchar('\n');
  jdb_free(val);
  return 0;
}

static int cli_cmd_del(struct cli *c, jdb_table_t *t, char **pos)
{
  int rc = jdb_del(t, pos[0], strlen(pos[0]));
  if (rc == JDB_OK && c->sync)
    rc = jdb_flush(c->db);
  return rc == JDB_OK ? 0 : cli_fail("del", rc);
}

static int cli_cmd_scan(struct cli *c, jdb_table_t *t, char **pos)
{
  jdb_iter_t *it = NULL;
  int rc = jdb_iter_open(t, NULL, &it);
  if (rc != JDB_OK)
    return cli_fail("scan", rc);
  const char *from = c->from;
  if (from != NULL && c->reverse)
    rc = jdb_iter_seek_prev(it, from, strlen(from));
  else if (from != NULL)
    rc = jdb_iter_seek(it, from, strlen(from));
  else
    rc = c->reverse ? jdb_iter_last(it) : jdb_iter_first(it);
  for (uint64_t n = 0; rc == JDB_OK && n < c->limit; n++) {
    const void *k, *v;
    size_t kl, vl;
    if ((rc = jdb_iter_key(it, &k, &kl)) != JDB_OK || (rc = jdb_iter_value(it, &v, &vl)) != JDB_OK)
      break;
    cli_put_escaped(stdout, k, kl);
    putc_unlocked('\t', stdout);
    if (c->hex)
      cli_put_hex(stdout, v, vl);
    else
      cli_put_escaped(stdout, v, vl);
    putc_unlocked('\n', stdout);
    rc = c->reverse ? jdb_iter_prev(it) : jdb_iter_next(it);
  }
  jdb_iter_close(it);
  return rc == JDB_OK || rc == JDB_NOTFOUND ? 0 : cli_fail("scan", rc);
}

struct cli_names {
  FILE *out;           /* NULL: count only */
  uint64_t count;
};

static int cli_names_fn(void *ud, const void *name, size_t name_len)
{
  struct cli_names *s = ud;
  s->count++;
  if (s->out != NULL) {
    cli_put_escaped(s->out, name, name_len);
    putc_unlocked('\n', s->out);
  }
  return 0;
}

static int cli_cmd_tables(struct cli *c, jdb_table_t *t, char **pos)
{
  struct cli_names s = {stdout, 0};
  int rc = jdb_table_list(c->db, NULL, 0, cli_names_fn, &s);
  return rc == JDB_OK ? 0 : cli_fail("tables", rc);
}

/* ============================================================================================
 * stats, check
 * ========================================================================================== */

static void cli_stats_io_line(const char *what, uint64_t count, const uint64_t *bytes,
                              uint64_t p50, uint64_t p99)
{
  char b[32], l50[32], l99[32];
  printf("  %-20s %" PRIu64, what, count);
  if (bytes != NULL)
    printf(" (%s)", cli_fmt_bytes(*bytes, b));
  if (count > 0)
    printf(", latency p50 %s, p99 %s", cli_fmt_ns(p50, l50), cli_fmt_ns(p99, l99));
  putchar('\n');
}

/* Print the counters of one shard (shard >= 0) or of the instance (shard -1, with the table
   count). */
static int cli_stats_print(jdb_t *db, int shard)
{
  jdb_stats_t s;
  memset(&s, 0, sizeof(s));
  s.struct_size = sizeof(s);
  int rc = jdb_stats(db, shard, &s);
  if (rc != JDB_OK)
    return cli_fail("stats", rc);
  char b1[32], b2[32];
  if (shard < 0)
    printf("instance (%" PRIu32 " shard%s)\n", s.shards, s.shards == 1 ? "" : "s");
  else
    printf("shard %d\n", shard);
  printf("  %-20s %" PRIu32 "\n", "shards", s.shards);
  if (shard < 0) {
    struct cli_names names = {NULL, 0};
    rc = jdb_table_list(db, NULL, 0, cli_names_fn, &names);
    if (rc != JDB_OK)
      return cli_fail("stats: table list", rc);
    printf("  %-20s %" PRIu64 "\n", "tables", names.count);
  }
  printf("  %-20s %" PRIu64 "\n", "sequence", s.seq);
  printf("  %-20s %" PRIu64 " batches, %" PRIu64 " operations (since open)\n", "writes",
         s.writes, s.ops);
  printf("  %-20s %" PRIu64 " (since open)\n", "calls served", s.calls);
  printf("  %-20s %" PRIu64 ", %" PRIu64 " versions pruned, %" PRIu64 " log segments released\n",
         "checkpoints", s.checkpoints, s.versions_pruned, s.segments_released);
  printf("  %-20s %s\n", "memtable", cli_fmt_bytes(s.memtable_bytes, b1));
  printf("  %-20s %s\n", "page files", cli_fmt_bytes(s.page_file_bytes, b1));
  printf("  %-20s %s\n", "log", cli_fmt_bytes(s.log_bytes, b1));
  uint64_t lookups = s.cache_hits + s.cache_misses;
  printf("  %-20s %s", "cache", cli_fmt_bytes(s.cache_bytes, b2));
  printf(" (%s in use)", cli_fmt_bytes(s.cache_used_bytes, b1));
  if (lookups > 0)
    printf(", hit rate %.2f%% (%" PRIu64 " hits, %" PRIu64 " misses)\n",
           100.0 * (double)s.cache_hits / (double)lookups, s.cache_hits, s.cache_misses);
  else
    printf(", hit rate n/a (no page lookups yet)\n");
  cli_stats_io_line("I/O reads", s.io_reads, &s.io_read_bytes, s.io_read_p50_ns,
                    s.io_read_p99_ns);
  cli_stats_io_line("I/O writes", s.io_writes, &s.io_write_bytes, s.io_write_p50_ns,
                    s.io_write_p99_ns);
  cli_stats_io_line("I/O syncs", s.io_syncs, NULL, s.io_sync_p50_ns, s.io_sync_p99_ns);
  printf("  %-20s %" PRIu64 "\n", "live snapshots", s.snapshots);
  return 0;
}

static int cli_cmd_stats(struct cli *c, jdb_table_t *t, char **pos)
{
  printf("database %s (libjdb %s)\n", c->dir, jdb_version());
  int rc = cli_stats_print(c->db, -1);
  if (rc != 0 || !c->per_shard)
    return rc;
  jdb_stats_t s = {.struct_size = sizeof(s)};
  if ((rc = jdb_stats(c->db, -1, &s)) != JDB_OK)
    return cli_fail("stats", rc);
  for (uint32_t i = 0; i < s.shards; i++)
    if ((rc = cli_stats_print(c->db, (int)i)) != 0)
      return rc;
  return 0;
}

static int cli_cmd_check(struct cli *c, jdb_table_t *t, char **pos)
{
  jdb_check_report_t r;
  memset(&r, 0, sizeof(r));
  r.struct_size = sizeof(r);
  double t0 = cli_now();
  int rc = jdb_check(c->db, &r);
  double secs = cli_now() - t0;
  if (rc != JDB_OK && rc != JDB_ECORRUPT)
    return cli_fail("check", rc);
  char b[32];
  printf("check %s\n", c->dir);
  printf("  %-20s %" PRIu32 "\n", "shards", r.shards);
  printf("  %-20s %" PRIu64 "\n", "pages checked", r.pages_checked);
  printf("  %-20s %" PRIu64 "\n", "log records checked", r.log_records_checked);
  printf("  %-20s %s\n", "log bytes checked", cli_fmt_bytes(r.log_bytes_checked, b));
  printf("  %-20s %" PRIu64 "\n", "errors", r.errors);
  printf("  %-20s %.2f s\n", "time", secs);
  if (rc == JDB_OK && r.errors == 0) {
    printf("  %-20s OK\n", "result");
    return 0;
  }
  printf("  %-20s CORRUPT: %s\n", "result", jdb_strerror(rc != JDB_OK ? rc : JDB_ECORRUPT));
  cli_err("check %s: %" PRIu64 " error%s found: %s", c->dir, r.errors, r.errors == 1 ? "" : "s",
          jdb_strerror(JDB_ECORRUPT));
  return CLI_EXIT_DB;
}

/* ============================================================================================
 * bench
 * ========================================================================================== */

#define CLI_BENCH_KEY_LEN 16u
#define CLI_BENCH_ERRORS_SHOWN 10u
/* A batch or pipeline holds at most this many value bytes (bounds memory with big values). */
#define CLI_BENCH_CHUNK_BYTES (16u << 20)

enum { CLI_PHASE_LOAD, CLI_PHASE_READ, CLI_PHASE_SCAN_FWD, CLI_PHASE_SCAN_BACK, CLI_PHASES };
static const char *const cli_phase_names[CLI_PHASES] = {"load", "read", "scan forward",
                                                        "scan backward"};

struct cli_bench {
  jdb_t *db;
  jdb_table_t **tables;
  uint64_t n;
  uint64_t value_size;
  uint64_t ntables;
  uint64_t threads;
  uint64_t batch;          /* operations per batch (load) */
  uint64_t pipe;           /* operations per pipeline (read) */
  unsigned write_flags;    /* 0 or JDB_SYNC */
  int phase;
  double t0;               /* start of the phase */
  atomic_uint_fast64_t done;    /* keys finished in this phase (progress) */
  atomic_uint_fast64_t errors;  /* wrong, missing, extra or misordered entries */
  atomic_int stop;              /* a worker met a database error */
  pthread_mutex_t err_lock;
  int first_rc;            /* the first database error (under err_lock) */
  char first_what[64];
};

struct cli_bench_worker {
  struct cli_bench *b;
  uint64_t id;
  pthread_t thread;
};

/* splitmix64's finalizer: a bijection on 64-bit integers. */
static uint64_t cli_mix64(uint64_t x)
{
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* The inverse of x ^= x >> s. */
static uint64_t cli_unxorshift(uint64_t y, unsigned s)
{
  uint64_t x = y;
  for (unsigned k = s; k < 64; k += s)
    x = y ^ (x >> s);
  return x;
}

/* The inverse of an odd number modulo 2^64 (Newton's iteration doubles the correct bits). */
static uint64_t cli_inverse64(uint64_t a)
{
  uint64_t x = a;          /* correct to 3 bits: a * a = 1 mod 8 for odd a */
  for (int i = 0; i < 5; i++)
    x *= 2 - a * x;
  return x;
}

static uint64_t cli_unmix64(uint64_t x)
{
  x = cli_unxorshift(x, 31);
  x *= cli_inverse64(0x94d049bb133111ebull);
  x = cli_unxorshift(x, 27);
  x *= cli_inverse64(0xbf58476d1ce4e5b9ull);
  return cli_unxorshift(x, 30);
}

static void cli_bench_key(uint64_t i, char key[CLI_BENCH_KEY_LEN])
{
  static const char digits[] = "0123456789abcdef";
  uint64_t x = cli_mix64(i);
  for (int j = CLI_BENCH_KEY_LEN - 1; j >= 0; j--, x >>= 4)
    key[j] = digits[x & 15];
}

/* The index a bench key was made from; -1 when the bytes are no bench key. */
static int cli_bench_key_index(const void *key, size_t klen, uint64_t *i)
{
  const char *k = key;
  uint64_t x = 0;
  if (klen != CLI_BENCH_KEY_LEN)
    return -1;
  for (size_t j = 0; j < klen; j++) {
    unsigned d;
    if (k[j] >= '0' && k[j] <= '9')
      d = (unsigned)(k[j] - '0');
    else if (k[j] >= 'a' && k[j] <= 'f')
      d = (unsigned)(k[j] - 'a' + 10);
    else
      return -1;
    x = x << 4 | d;
  }
  *i = cli_unmix64(x);
  return 0;
}

/* Value of key i: printable bytes from an xorshift generator seeded by i. */
static void cli_bench_value(uint64_t i, unsigned char *v, size_t len)
{
  uint64_t s = cli_mix64(~i) | 1;
  for (size_t j = 0; j < len; j++) {
    if (j % 8 == 0) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
    }
    v[j] = (unsigned char)('a' + ((s >> (8 * (j % 8))) & 0xff) % 26);
  }
}

/* Is v[0 .. vl-1] the value of key i? want: room for value_size bytes. */
static int cli_bench_value_ok(const struct cli_bench *b, uint64_t i, const void *v, size_t vl,
                              unsigned char *want)
{
  cli_bench_value(i, want, b->value_size);
  return vl == b->value_size && (vl == 0 || memcmp(v, want, vl) == 0);
}

static void cli_bench_fail(struct cli_bench *b, const char *what, int rc)
{
  pthread_mutex_lock(&b->err_lock);
  if (b->first_rc == JDB_OK) {
    b->first_rc = rc;
    snprintf(b->first_what, sizeof(b->first_what), "%s", what);
  }
  pthread_mutex_unlock(&b->err_lock);
  atomic_store(&b->stop, 1);
}

/* A wrong entry (key NULL: a wrong count): counted, and the first few described on stderr. */
static void cli_bench_wrong(struct cli_bench *b, const void *key, size_t klen, const char *what)
{
  if (atomic_fetch_add(&b->errors, 1) >= CLI_BENCH_ERRORS_SHOWN)
    return;
  flockfile(stderr);
  fprintf(stderr, "jdb: bench %s: ", cli_phase_names[b->phase]);
  if (key != NULL) {
    fputs("key ", stderr);
    cli_put_escaped(stderr, key, klen);
    fputs(": ", stderr);
  }
  fprintf(stderr, "%s\n", what);
  funlockfile(stderr);
}

/* Count `n` more keys done; print a progress line when a tenth of the phase's total is crossed. */
static void cli_bench_progress(struct cli_bench *b, uint64_t n, uint64_t total)
{
  uint64_t old = atomic_fetch_add(&b->done, n);
  uint64_t now = old + n;
  if (total == 0 || old * 10 / total == now * 10 / total)
    return;
  double secs = cli_now() - b->t0;
  printf("  %-13s %3" PRIu64 "%%  %10" PRIu64 " keys  %6.2f s  %11.0f ops/s\n",
         cli_phase_names[b->phase], now * 100 / total, now, secs,
         secs > 0 ? (double)now / secs : 0.0);
  fflush(stdout);
}

static void cli_bench_range(const struct cli_bench *b, uint64_t id, uint64_t *lo, uint64_t *hi)
{
  *lo = b->n * id / b->threads;
  *hi = b->n * (id + 1) / b->threads;
}

/* Write table t's batch when it holds at least `min` operations. */
static int cli_bench_write(struct cli_bench *b, jdb_batch_t *batch, uint64_t t, uint64_t min)
{
  size_t count = jdb_batch_count(batch);
  if (count == 0 || count < min)
    return JDB_OK;
  int rc = jdb_write(b->tables[t], batch, b->write_flags);
  if (rc != JDB_OK)
    return rc;
  jdb_batch_clear(batch);
  cli_bench_progress(b, count, b->n);
  return JDB_OK;
}

/* Load: this worker's share of the keys, in one batch per table, written when full. */
static void cli_bench_load(struct cli_bench_worker *w)
{
  struct cli_bench *b = w->b;
  jdb_batch_t **batches = calloc(b->ntables, sizeof(*batches));
  unsigned char *val = malloc(b->value_size + 1);
  uint64_t lo, hi;
  int rc = JDB_ENOMEM;
  cli_bench_range(b, w->id, &lo, &hi);
  if (batches == NULL || val == NULL)
    goto fail;
  for (uint64_t t = 0; t < b->ntables; t++)
    if ((batches[t] = jdb_batch_new()) == NULL)
      goto fail;
  for (uint64_t i = lo; i < hi && !atomic_load(&b->stop); i++) {
    char key[CLI_BENCH_KEY_LEN];
    uint64_t t = i % b->ntables;
    cli_bench_key(i, key);
    cli_bench_value(i, val, b->value_size);
    if ((rc = jdb_batch_put(batches[t], key, sizeof(key), val, b->value_size)) != JDB_OK ||
        (rc = cli_bench_write(b, batches[t], t, b->batch)) != JDB_OK)
      goto fail;
  }
  for (uint64_t t = 0; t < b->ntables && !atomic_load(&b->stop); t++)
    if ((rc = cli_bench_write(b, batches[t], t, 1)) != JDB_OK)
      goto fail;
  goto out;
fail:
  cli_bench_fail(b, "bench load", rc);
out:
  for (uint64_t t = 0; batches != NULL && t < b->ntables; t++)
    jdb_batch_free(batches[t]);
  free(batches);
  free(val);
}

/* Read back: this worker's keys in pipelines of b->pipe gets, every value checked. */
static void cli_bench_read(struct cli_bench_worker *w)
{
  struct cli_bench *b = w->b;
  jdb_pipe_t *p = jdb_pipe_new(b->db);
  unsigned char *want = malloc(b->value_size + 1);
  uint64_t lo, hi;
  int rc = JDB_ENOMEM;
  cli_bench_range(b, w->id, &lo, &hi);
  if (p == NULL || want == NULL)
    goto fail;
  for (uint64_t first = lo; first < hi && !atomic_load(&b->stop); first += b->pipe) {
    uint64_t end = first + b->pipe < hi ? first + b->pipe : hi;
    jdb_pipe_reset(p);
    for (uint64_t i = first; i < end; i++) {
      char key[CLI_BENCH_KEY_LEN];
      cli_bench_key(i, key);
      if ((rc = jdb_pipe_get(p, b->tables[i % b->ntables], key, sizeof(key))) != JDB_OK)
        goto fail;
    }
    if ((rc = jdb_pipe_exec(p, 0)) != JDB_OK)
      goto fail;
    for (uint64_t i = first; i < end; i++) {
      const void *v = NULL;
      size_t vl = 0;
      rc = jdb_pipe_result(p, (size_t)(i - first), &v, &vl);
      char key[CLI_BENCH_KEY_LEN];
      cli_bench_key(i, key);
      if (rc == JDB_NOTFOUND) {
        cli_bench_wrong(b, key, sizeof(key), "missing");
        continue;
      }
      if (rc != JDB_OK)
        goto fail;
      if (!cli_bench_value_ok(b, i, v, vl, want))
        cli_bench_wrong(b, key, sizeof(key), "wrong value");
    }
    cli_bench_progress(b, end - first, b->n);
  }
  goto out;
fail:
  cli_bench_fail(b, "bench read", rc);
out:
  jdb_pipe_free(p);
  free(want);
}

/* Keys of table t: the i < n with i mod ntables = t. */
static uint64_t cli_bench_table_keys(const struct cli_bench *b, uint64_t t)
{
  return b->n / b->ntables + (t < b->n % b->ntables ? 1 : 0);
}

/* Scan table t one way; every key must be a bench key of t, in order, with its value. */
static int cli_bench_scan_table(struct cli_bench *b, uint64_t t, int backward,
                                unsigned char *want)
{
  jdb_iter_t *it = NULL;
  char prev[CLI_BENCH_KEY_LEN];
  uint64_t seen = 0, pending = 0;
  int rc = jdb_iter_open(b->tables[t], NULL, &it);
  if (rc != JDB_OK)
    return rc;
  for (rc = backward ? jdb_iter_last(it) : jdb_iter_first(it); rc == JDB_OK;
       rc = backward ? jdb_iter_prev(it) : jdb_iter_next(it)) {
    const void *k, *v;
    size_t kl, vl;
    uint64_t i;
    if ((rc = jdb_iter_key(it, &k, &kl)) != JDB_OK || (rc = jdb_iter_value(it, &v, &vl)) != JDB_OK)
      break;
    if (cli_bench_key_index(k, kl, &i) != 0 || i >= b->n || i % b->ntables != t) {
      cli_bench_wrong(b, k, kl, "not a key loaded into this table");
      continue;
    }
    if (seen > 0) {
      int cmp = memcmp(k, prev, CLI_BENCH_KEY_LEN);
      if (backward ? cmp >= 0 : cmp <= 0)
        cli_bench_wrong(b, k, kl, "out of order");
    }
    memcpy(prev, k, CLI_BENCH_KEY_LEN);
    if (!cli_bench_value_ok(b, i, v, vl, want))
      cli_bench_wrong(b, k, kl, "wrong value");
    seen++;
    if (++pending == 4096) {
      cli_bench_progress(b, pending, b->n);
      pending = 0;
      if (atomic_load(&b->stop))
        break;
    }
  }
  jdb_iter_close(it);
  cli_bench_progress(b, pending, b->n);
  if (rc != JDB_NOTFOUND && rc != JDB_OK)
    return rc;
  if (seen != cli_bench_table_keys(b, t)) {
    char what[96];
    snprintf(what, sizeof(what), "table bench-%" PRIu64 ": %" PRIu64 " keys, %" PRIu64
             " expected", t, seen, cli_bench_table_keys(b, t));
    cli_bench_wrong(b, NULL, 0, what);
  }
  return JDB_OK;
}

/* Scan: this worker's tables (t = id, id + threads, ...), whole, one way. */
static void cli_bench_scan(struct cli_bench_worker *w)
{
  struct cli_bench *b = w->b;
  unsigned char *want = malloc(b->value_size + 1);
  if (want == NULL) {
    cli_bench_fail(b, "bench scan", JDB_ENOMEM);
    return;
  }
  for (uint64_t t = w->id; t < b->ntables && !atomic_load(&b->stop); t += b->threads) {
    int rc = cli_bench_scan_table(b, t, b->phase == CLI_PHASE_SCAN_BACK, want);
    if (rc != JDB_OK) {
      cli_bench_fail(b, "bench scan", rc);
      break;
    }
  }
  free(want);
}

static void *cli_bench_worker_main(void *arg)
{
  struct cli_bench_worker *w = arg;
  switch (w->b->phase) {
  case CLI_PHASE_LOAD:
    cli_bench_load(w);
    break;
  case CLI_PHASE_READ:
    cli_bench_read(w);
    break;
  default:
    cli_bench_scan(w);
    break;
  }
  return NULL;
}

/* Run one phase on b->threads threads (the calling thread is worker 0). Returns its seconds, or
   a negative value when a thread could not start. */
static double cli_bench_phase(struct cli_bench *b, int phase, struct cli_bench_worker *ws)
{
  b->phase = phase;
  atomic_store(&b->done, 0);
  b->t0 = cli_now();
  uint64_t started = 1;
  for (uint64_t i = 0; i < b->threads; i++)
    ws[i] = (struct cli_bench_worker){.b = b, .id = i};
  for (; started < b->threads; started++)
    if (pthread_create(&ws[started].thread, NULL, cli_bench_worker_main, &ws[started]) != 0)
      break;
  if (started < b->threads)
    cli_bench_fail(b, "bench: start a thread", JDB_ENOMEM);
  cli_bench_worker_main(&ws[0]);
  for (uint64_t i = 1; i < started; i++)
    pthread_join(ws[i].thread, NULL);
  return cli_now() - b->t0;
}

/* Drop and create tables bench-0 .. ntables-1 (a previous run's keys would upset the scans). */
static int cli_bench_tables_open(struct cli_bench *b)
{
  for (uint64_t t = 0; t < b->ntables; t++) {
    char name[32];
    snprintf(name, sizeof(name), "bench-%" PRIu64, t);
    int rc = jdb_table_drop(b->db, name, strlen(name));
    if (rc == JDB_OK || rc == JDB_NOTFOUND)
      rc = jdb_table_open(b->db, name, strlen(name), JDB_CREATE, &b->tables[t]);
    if (rc != JDB_OK) {
      cli_err("table '%s': %s", name, jdb_strerror(rc));
      return CLI_EXIT_DB;
    }
  }
  return 0;
}

static int cli_bench_run(struct cli_bench *b, struct cli *c)
{
  struct cli_bench_worker *ws = calloc(b->threads, sizeof(*ws));
  double secs[CLI_PHASES] = {0};
  int phases_run = 0, rc;
  if (ws == NULL)
    return cli_fail("bench", JDB_ENOMEM);
  printf("bench: %" PRIu64 " keys of %u bytes, values of %" PRIu64 " bytes, in %" PRIu64
         " tables (bench-0..%" PRIu64 "), %" PRIu64 " thread%s, batches of %" PRIu64
         ", pipelines of %" PRIu64 "%s, in %s\n",
         b->n, CLI_BENCH_KEY_LEN, b->value_size, b->ntables, b->ntables - 1, b->threads,
         b->threads == 1 ? "" : "s", b->batch, b->pipe, c->sync ? ", synced writes" : "", c->dir);
  fflush(stdout);
  for (int ph = 0; ph < CLI_PHASES && !atomic_load(&b->stop); ph++) {
    secs[ph] = cli_bench_phase(b, ph, ws);
    phases_run = ph + 1;
  }
  free(ws);
  if (b->first_rc != JDB_OK)
    return cli_fail(b->first_what, b->first_rc);
  printf("\n%-14s %12s %9s %13s\n", "phase", "keys", "seconds", "ops/s");
  for (int ph = 0; ph < phases_run; ph++)
    printf("%-14s %12" PRIu64 " %9.2f %13.0f\n", cli_phase_names[ph], b->n, secs[ph],
           secs[ph] > 0 ? (double)b->n / secs[ph] : 0.0);
  putchar('\n');
  if ((rc = cli_stats_print(c->db, -1)) != 0)
    return rc;
  uint64_t errors = atomic_load(&b->errors);
  if (errors > 0) {
    cli_err("bench: %" PRIu64 " wrong, missing or misordered entr%s (see above)", errors,
            errors == 1 ? "y" : "ies");
    return CLI_EXIT_DB;
  }
  printf("bench: every value read back and scanned both ways matched\n");
  return 0;
}

static int cli_cmd_bench(struct cli *c, jdb_table_t *unused, char **pos)
{
  struct cli_bench *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return cli_fail("bench", JDB_ENOMEM);
  *b = (struct cli_bench){
      .db = c->db,
      .n = c->bench_n,
      .value_size = c->bench_value_size,
      .ntables = c->bench_tables,
      .threads = c->bench_threads,
      .batch = c->bench_batch,
      .pipe = c->bench_pipe,
      .write_flags = c->sync ? JDB_SYNC : 0,
      .err_lock = PTHREAD_MUTEX_INITIALIZER,
  };
  /* Big values: fewer operations per batch and pipeline, so memory stays bounded. */
  uint64_t per_chunk = CLI_BENCH_CHUNK_BYTES / (b->value_size + CLI_BENCH_KEY_LEN);
  if (b->batch > per_chunk)
    b->batch = per_chunk;
  if (b->pipe > per_chunk)
    b->pipe = per_chunk;
  b->tables = calloc(b->ntables, sizeof(*b->tables));
  int rc = b->tables != NULL ? cli_bench_tables_open(b) : cli_fail("bench", JDB_ENOMEM);
  if (rc == 0)
    rc = cli_bench_run(b, c);
  for (uint64_t t = 0; b->tables != NULL && t < b->ntables; t++)
    jdb_table_close(b->tables[t]);
  free(b->tables);
  free(b);
  if (rc == 0) {
    /* Closed here to time it: every shard checkpoints its memtable into its tree. */
    double t0 = cli_now();
    int crc = jdb_close(c->db);
    c->db = NULL;
    if (crc != JDB_OK)
      return cli_fail("close", crc);
    printf("close (checkpoint every shard): %.2f s\n", cli_now() - t0);
  }
  return rc;
}

/* ============================================================================================
 * main
 * ========================================================================================== */

enum { CLI_USE_DB, CLI_USE_TABLE };

struct cli_cmd {
  const char *name;
  const char *synopsis;
  const char *help;
  int npos;            /* arguments besides options */
  int use;             /* CLI_USE_DB: the instance; CLI_USE_TABLE: also --table */
  int creates;         /* a missing database (and table) is created unless --no-create */
  int reads_only;      /* opens the instance read-only (unless --create) */
  int (*run)(struct cli *c, jdb_table_t *t, char **pos);
};

static const struct cli_cmd cli_cmds[] = {
    {"put", "KEY VALUE", "store VALUE under KEY (creates the database and the table)", 2,
     CLI_USE_TABLE, 1, 0, cli_cmd_put},
    {"get", "[--hex] KEY", "print KEY's value and a newline (--hex: as hex digits)", 1,
     CLI_USE_TABLE, 0, 1, cli_cmd_get},
    {"del", "KEY", "delete KEY (no error when absent)", 1, CLI_USE_TABLE, 0, 0, cli_cmd_del},
    {"scan", "[--reverse] [--from K] [--limit N] [--hex]",
     "print key<TAB>value lines in key order; --reverse: descending; --from K: start at the\n"
     "first key >= K (the last <= K with --reverse); -r and -n are --reverse and --limit",
     0, CLI_USE_TABLE, 0, 1, cli_cmd_scan},
    {"tables", "", "print every table name, one per line", 0, CLI_USE_DB, 0, 1, cli_cmd_tables},
    {"stats", "[--per-shard]", "print shards, tables, sizes, cache hit rate and I/O counters", 0,
     CLI_USE_DB, 0, 1, cli_cmd_stats},
    {"check", "", "verify every page and log record checksum and the trees; exit 1 on problems",
     0, CLI_USE_DB, 0, 1, cli_cmd_check},
    {"bench", "[--n N] [--value-size B] [--threads T] [--tables M] [--batch OPS] [--pipe OPS]",
     "load N generated keys into tables bench-0..M-1 (dropped first) with T threads in batches\n"
     "of --batch operations, read them back in pipelines of --pipe gets, scan each table both\n"
     "ways; every value and the order are checked; prints ops/s per phase and the stats.\n"
     "Defaults: N 1000000, B 100, T online CPUs (at most 8), M 4, --batch 1000, --pipe 256",
     0, CLI_USE_DB, 1, 0, cli_cmd_bench},
};
#define CLI_NCMDS (sizeof(cli_cmds) / sizeof(cli_cmds[0]))

/* "<indent>name synopsis", then the help text indented by 4 more. */
static void cli_cmd_usage(FILE *f, const struct cli_cmd *cmd, const char *indent)
{
  fprintf(f, "%s%s%s%s\n%s    ", indent, cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis,
          indent);
  for (const char *p = cmd->help; *p != '\0'; p++) {
    putc(*p, f);
    if (*p == '\n')
      fprintf(f, "%s    ", indent);
  }
  putc('\n', f);
}

static void cli_usage(FILE *f)
{
  fprintf(f,
          "usage: jdb [global options] <command> [args]\n"
          "\n"
          "global options (also accepted after the command):\n"
          "  --dir D        database directory (default ./jdb-data)\n"
          "  --table T      table (default \"default\")\n"
          "  --shards N     shard count when the directory is created (default: one per CPU)\n"
          "  --sync         writes survive power loss before the command returns\n"
          "  --create       create a missing database and table (put and bench do by default)\n"
          "  --no-create    never create them\n"
          "  -h, --help     this text, or a command's with `jdb <command> --help`\n"
          "  -V, --version  print the library version\n"
          "\n"
          "commands:\n");
  for (size_t i = 0; i < CLI_NCMDS; i++)
    cli_cmd_usage(f, &cli_cmds[i], "  ");
  fprintf(f,
          "\n"
          "Bytes that are not printable ASCII (and '\\') print as \\xNN. \"--\" ends the options.\n"
          "Exit status: 0 success, 1 database error (message on stderr), 2 usage error.\n");
}

/* Open what the command uses, run it, close. */
static int cli_run(struct cli *c, const struct cli_cmd *cmd, char **pos)
{
  jdb_table_t *t = NULL;
  int rc = cli_open(c, cmd->creates, cmd->reads_only);
  if (rc == 0 && cmd->use == CLI_USE_TABLE)
    rc = cli_table_open(c, cmd->creates, &t);
  if (rc == 0)
    rc = cmd->run(c, t, pos);
  jdb_table_close(t);
  if (c->db != NULL) {
    int crc = jdb_close(c->db);
    c->db = NULL;
    if (crc != JDB_OK && rc == 0)
      rc = cli_fail("close", crc);
  }
  return rc;
}

int main(int argc, char **argv)
{
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  struct cli c = {
      .dir = "./jdb-data",
      .table = "default",
      .create = -1,
      .limit = UINT64_MAX,
      .bench_n = 1000000,
      .bench_value_size = 100,
      .bench_tables = 4,
      .bench_threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (uint64_t)ncpu,
      .bench_batch = 1000,
      .bench_pipe = 256,
  };
  /* The command is the first argument that is neither an option nor an option's value. */
  int i = 1;
  while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
    const struct cli_opt *o = cli_opt_find(argv[i], strlen(argv[i]), NULL);
    i += o != NULL && (o->kind == CLI_OPT_STR || o->kind == CLI_OPT_U64) ? 2 : 1;
  }
  if (i > argc)
    i = argc;
  if (cli_parse(&c, NULL, i - 1, argv + 1, NULL, 0) != 0)
    return CLI_EXIT_USAGE;
  if (c.version) {
    printf("jdb %s (libjdb %s)\n", JDB_VERSION_STRING, jdb_version());
    return CLI_EXIT_OK;
  }
  if (i == argc) {
    cli_usage(c.help ? stdout : stderr);
    return c.help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  }
  const struct cli_cmd *cmd = NULL;
  for (size_t k = 0; k < CLI_NCMDS; k++)
    if (strcmp(argv[i], cli_cmds[k].name) == 0)
      cmd = &cli_cmds[k];
  if (cmd == NULL) {
    cli_err("unknown command '%s' (see jdb --help)", argv[i]);
    return CLI_EXIT_USAGE;
  }
  char *pos[2];
  if (cli_parse(&c, cmd->name, argc - i - 1, argv + i + 1, pos, cmd->npos) != 0)
    return CLI_EXIT_USAGE;
  if (c.help) {
    fputs("usage: jdb [global options] ", stdout);
    cli_cmd_usage(stdout, cmd, "");
    return CLI_EXIT_OK;
  }
  int rc = cli_run(&c, cmd, pos);
  if (fflush(stdout) != 0 && rc == 0) {
    cli_err("writing the output: %s", strerror(errno));
    rc = CLI_EXIT_DB;
  }
  return rc;
}
