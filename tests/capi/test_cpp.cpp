/*
 * test_cpp.cpp - the C++ wrapper (include/jdb.hpp) through libjdb.so.
 *
 * Every wrapper type (Error, Options, Db, Table, Batch, Snapshot, Iter, Pipe): results checked
 * against std::map models, error codes of the exceptions, RAII (leaving a scope closes the
 * instance, so reopening the directory works), moves (the moved-from object holds nothing and
 * its calls throw JDB_EINVAL), iteration both ways, snapshots, batches and pipelines.
 *
 * The databases live in a fresh directory made under $JDB_TEST_DIR (or the working directory,
 * which is the build tree under ctest); it is removed when every case passes. Exit status 0
 * when every case passed, 1 otherwise.
 */
#include <jdb.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

namespace {

/* A failed check; stops the current case. */
struct CheckFailed : std::exception {};

void check_failed(const char *file, int line, const std::string &what) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what.c_str());
  throw CheckFailed();
}

#define CHECK(cond)                                         \
  do {                                                      \
    if (!(cond)) check_failed(__FILE__, __LINE__, #cond);   \
  } while (0)

#define CHECK_EQ(a, b)                                                                   \
  do {                                                                                   \
    auto check_a_ = (a);                                                                 \
    auto check_b_ = (b);                                                                 \
    if (!(check_a_ == check_b_))                                                         \
      check_failed(__FILE__, __LINE__, std::string(#a " == " #b " (") +                  \
                                           to_text(check_a_) + " vs " + to_text(check_b_) + ")"); \
  } while (0)

/* expr must throw jdb::Error with code `want`. */
#define CHECK_THROWS(want, expr)                                                          \
  do {                                                                                    \
    int check_got_ = JDB_OK;                                                              \
    try {                                                                                 \
      (void)(expr);                                                                       \
    } catch (const jdb::Error &check_e_) {                                                \
      check_got_ = check_e_.code();                                                       \
    }                                                                                     \
    if (check_got_ != (want))                                                             \
      check_failed(__FILE__, __LINE__, std::string(#expr " throws " #want ", got ") +     \
                                           (check_got_ ? jdb_strerror(check_got_) : "no throw")); \
  } while (0)

std::string to_text(const std::string &s) { return "\"" + s + "\""; }
std::string to_text(std::string_view s) { return to_text(std::string(s)); }
std::string to_text(const std::optional<std::string> &s) { return s ? to_text(*s) : "nullopt"; }
std::string to_text(const std::optional<std::string_view> &s) {
  return s ? to_text(*s) : "nullopt";
}
template <class T, class = std::enable_if_t<std::is_arithmetic_v<T> || std::is_enum_v<T>>>
std::string to_text(T v) {
  if constexpr (std::is_enum_v<T>)
    return std::to_string(static_cast<long long>(v));
  else
    return std::to_string(v);
}

using Model = std::map<std::string, std::string>;

std::string g_root; /* the directory of this run */

std::string db_path(const char *name) { return g_root + "/" + name; }

jdb::Options small_options() {
  jdb::Options o;
  o.shards = 2;
  o.pin_cores = 0;
  o.cache_bytes = 16u << 20;
  o.memtable_bytes = 4u << 20;
  return o;
}

std::string key_of(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%05d", i);
  return buf;
}

/* Every key/value of the table, walking forwards (first/next) or backwards (last/prev). */
Model scan(jdb::Iter &it, bool backward) {
  Model got;
  std::string prev_key;
  bool more = backward ? it.last() : it.first();
  for (; more; more = backward ? it.prev() : it.next()) {
    std::string k(it.key());
    if (!got.empty()) CHECK(backward ? k < prev_key : k > prev_key);
    got.emplace(k, std::string(it.value()));
    prev_key = k;
  }
  return got;
}

/* ------------------------------------------------------------------------------------------ */

void error_and_options() {
  jdb::Error e(JDB_EINVAL, "jdb_put");
  CHECK_EQ(e.code(), JDB_EINVAL);
  CHECK_EQ(std::string(e.what()), std::string("jdb_put: ") + jdb_strerror(JDB_EINVAL));
  CHECK_EQ(std::string(jdb::Error(JDB_ECORRUPT).what()), std::string(jdb_strerror(JDB_ECORRUPT)));
  try {
    throw jdb::Error(JDB_EBUSY, "x");
  } catch (const std::runtime_error &re) {
    CHECK(std::strstr(re.what(), "JDB_EBUSY") != nullptr);
  }
  CHECK_EQ(std::string(jdb::version()), std::string(JDB_VERSION_STRING));

  jdb::Options o;
  jdb_options_t c;
  std::memset(&c, 0xA5, sizeof c);
  jdb_options_init(&c);
  CHECK_EQ(o.struct_size, static_cast<uint32_t>(sizeof(jdb_options_t)));
  CHECK(std::memcmp(static_cast<const jdb_options_t *>(&o), &c, sizeof c) == 0);
  CHECK_EQ(o.create_if_missing, 1);
  CHECK_EQ(o.read_only, 0);
}

/* Handles: movable (without throwing), not copyable. */
template <class T>
constexpr bool is_handle_v = std::is_nothrow_move_constructible_v<T> &&
                             std::is_nothrow_move_assignable_v<T> &&
                             !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T>;
static_assert(is_handle_v<jdb::Db> && is_handle_v<jdb::Table> && is_handle_v<jdb::Batch> &&
              is_handle_v<jdb::Snapshot> && is_handle_v<jdb::Iter> && is_handle_v<jdb::Pipe>);
static_assert(std::is_base_of_v<std::runtime_error, jdb::Error>);
static_assert(std::is_base_of_v<jdb_options_t, jdb::Options>);

void open_errors() {
  jdb::Options bad = small_options();
  bad.struct_size = 0;
  CHECK_THROWS(JDB_EINVAL, jdb::Db(db_path("bad"), bad));
  jdb::Options nocreate = small_options();
  nocreate.create_if_missing = 0;
  CHECK_THROWS(JDB_NOTFOUND, jdb::Db(db_path("missing"), nocreate));
  CHECK(!std::filesystem::exists(db_path("missing")));

  jdb::Db db(db_path("busy"), small_options());
  CHECK(db);
  CHECK(db.handle() != nullptr);
  CHECK_THROWS(JDB_EBUSY, jdb::Db(db_path("busy"), small_options()));

  /* An empty Db passes NULL down: JDB_EINVAL, never a crash. */
  jdb::Db none;
  CHECK(!none);
  CHECK_THROWS(JDB_EINVAL, none.flush());
  CHECK_THROWS(JDB_EINVAL, none.checkpoint());
  CHECK_THROWS(JDB_EINVAL, none.open_table("t", JDB_CREATE));
  CHECK_THROWS(JDB_EINVAL, none.stats());
  CHECK_THROWS(JDB_EINVAL, none.pipe());
  none.close(); /* jdb_close(NULL) is JDB_OK */
}

void key_value(const jdb::Db &db) {
  CHECK_THROWS(JDB_NOTFOUND, db.open_table("kv-missing", 0));
  CHECK_THROWS(JDB_EINVAL, db.open_table("", JDB_CREATE));
  CHECK_THROWS(JDB_EINVAL, db.open_table(std::string(JDB_NAME_MAX + 1, 'n'), JDB_CREATE));
  CHECK_THROWS(JDB_EINVAL, db.open_table("kv", 0x80));

  jdb::Table t = db.open_table("kv", JDB_CREATE);
  CHECK(t);
  CHECK_EQ(t.get("a"), std::optional<std::string>());
  t.put("a", "1");
  CHECK_EQ(t.get("a"), std::optional<std::string>("1"));
  t.put("a", "22");
  CHECK_EQ(t.get("a"), std::optional<std::string>("22"));
  t.put_sync("b", "sync");
  CHECK_EQ(t.get("b"), std::optional<std::string>("sync"));
  t.del("a");
  CHECK_EQ(t.get("a"), std::optional<std::string>());
  t.del("never-there"); /* JDB_OK even if absent */

  /* Any bytes, NUL included; an empty value is a value, not an absence. */
  const std::string bk("k\0ey", 4), bv("\0v\0", 3);
  t.put(bk, bv);
  CHECK_EQ(t.get(bk), std::optional<std::string>(bv));
  CHECK_EQ(t.get(std::string_view("k", 1)), std::optional<std::string>());
  t.put("empty", "");
  auto ev = t.get("empty");
  CHECK(ev.has_value());
  CHECK(ev->empty());
  const std::string big(100000, 'v');
  t.put("big", big);
  CHECK_EQ(t.get("big"), std::optional<std::string>(big));

  /* Limits. */
  CHECK_THROWS(JDB_EINVAL, t.put("", "v"));
  CHECK_THROWS(JDB_EINVAL, t.get(""));
  CHECK_THROWS(JDB_EINVAL, t.del(""));
  CHECK_THROWS(JDB_EINVAL, t.put(std::string(JDB_KEY_MAX + 1, 'k'), "v"));
  const std::string kmax(JDB_KEY_MAX, 'k');
  t.put(kmax, "max");
  CHECK_EQ(t.get(kmax), std::optional<std::string>("max"));

  /* A second handle on the same table sees the same data. */
  jdb::Table t2 = db.open_table("kv", 0);
  CHECK_EQ(t2.get("b"), std::optional<std::string>("sync"));
  t2.put("c", "via t2");
  CHECK_EQ(t.get("c"), std::optional<std::string>("via t2"));

  /* Drop: gone at once; writes through an old handle get JDB_NOTFOUND. */
  jdb::Table d = db.open_table("kv-drop", JDB_CREATE);
  d.put("x", "y");
  db.drop_table("kv-drop");
  CHECK_THROWS(JDB_NOTFOUND, db.open_table("kv-drop", 0));
  CHECK_THROWS(JDB_NOTFOUND, db.drop_table("kv-drop"));
  CHECK_THROWS(JDB_NOTFOUND, d.put("x", "z"));
  CHECK_THROWS(JDB_EINVAL, db.drop_table(""));

  /* A moved-from table holds nothing. */
  jdb::Table moved = std::move(t2);
  CHECK(!t2);
  CHECK(t2.handle() == nullptr);
  CHECK_THROWS(JDB_EINVAL, t2.put("k", "v"));
  CHECK_THROWS(JDB_EINVAL, t2.get("k"));
  CHECK_EQ(moved.get("c"), std::optional<std::string>("via t2"));
  jdb::Table assigned;
  assigned = std::move(moved);
  CHECK(!moved);
  CHECK_EQ(assigned.get("c"), std::optional<std::string>("via t2"));

  /* Handles in a container survive its reallocations. */
  std::vector<jdb::Table> many;
  for (int i = 0; i < 20; i++)
    many.push_back(db.open_table("kv-many-" + std::to_string(i), JDB_CREATE));
  for (int i = 0; i < 20; i++) many[static_cast<size_t>(i)].put("i", std::to_string(i));
  for (int i = 0; i < 20; i++)
    CHECK_EQ(many[static_cast<size_t>(i)].get("i"), std::optional<std::string>(std::to_string(i)));
}

void table_list(const jdb::Db &db) {
  const std::vector<std::string> want = {"ls/a", "ls/b", "ls/c", "ls/d"};
  for (auto it = want.rbegin(); it != want.rend(); ++it) db.open_table(*it, JDB_CREATE);

  std::vector<std::string> got;
  for (const auto &n : db.table_names("ls/"))
    if (n.compare(0, 3, "ls/") == 0) got.push_back(n);
  CHECK(got == want);
  CHECK(std::is_sorted(got.begin(), got.end()));
  std::vector<std::string> all = db.table_names();
  CHECK(std::is_sorted(all.begin(), all.end()));
  CHECK(std::includes(all.begin(), all.end(), want.begin(), want.end()));

  /* Starting in the middle; a bool callback stops the walk. */
  got.clear();
  db.for_each_table("ls/b", [&got](std::string_view n) {
    got.emplace_back(n);
    return got.size() < 2;
  });
  CHECK((got == std::vector<std::string>{"ls/b", "ls/c"}));

  /* An exception from the callback stops the walk and reaches the caller. */
  int calls = 0;
  bool caught = false;
  try {
    db.for_each_table("", [&calls](std::string_view) {
      calls++;
      throw std::logic_error("stop");
    });
  } catch (const std::logic_error &) {
    caught = true;
  }
  CHECK(caught);
  CHECK_EQ(calls, 1);

  db.drop_table("ls/c");
  got.clear();
  for (const auto &n : db.table_names("ls/"))
    if (n.compare(0, 3, "ls/") == 0) got.push_back(n);
  CHECK((got == std::vector<std::string>{"ls/a", "ls/b", "ls/d"}));
}

void batches(const jdb::Db &db) {
  jdb::Table t = db.open_table("batch", JDB_CREATE);
  t.put("gone", "soon");

  jdb::Batch b;
  CHECK(b);
  CHECK_EQ(b.count(), size_t(0));
  b.put("a", "1").put("b", "2").del("gone").put("c", "3");
  b.put("dup", "first").put("dup", "second"); /* a later operation on a key wins */
  b.put("pd", "x").del("pd");
  CHECK_EQ(b.count(), size_t(8));
  CHECK_THROWS(JDB_EINVAL, b.put("", "v"));
  CHECK_THROWS(JDB_EINVAL, b.del(std::string(JDB_KEY_MAX + 1, 'k')));
  CHECK_EQ(b.count(), size_t(8));

  t.write(b);
  CHECK_EQ(b.count(), size_t(8)); /* unchanged by write */
  CHECK_EQ(t.get("a"), std::optional<std::string>("1"));
  CHECK_EQ(t.get("b"), std::optional<std::string>("2"));
  CHECK_EQ(t.get("c"), std::optional<std::string>("3"));
  CHECK_EQ(t.get("gone"), std::optional<std::string>());
  CHECK_EQ(t.get("dup"), std::optional<std::string>("second"));
  CHECK_EQ(t.get("pd"), std::optional<std::string>());

  b.clear();
  CHECK_EQ(b.count(), size_t(0));
  t.write(b); /* empty: writes nothing */
  b.put("s", "synced");
  t.write(b, JDB_SYNC);
  CHECK_EQ(t.get("s"), std::optional<std::string>("synced"));
  CHECK_THROWS(JDB_EINVAL, t.write(b, 0x80));

  /* Moves. */
  jdb::Batch c = std::move(b);
  CHECK(!b);
  CHECK_EQ(b.count(), size_t(0));
  CHECK_THROWS(JDB_EINVAL, b.put("k", "v"));
  CHECK_THROWS(JDB_EINVAL, b.del("k"));
  CHECK_THROWS(JDB_EINVAL, t.write(b));
  b.clear(); /* NULL: no-op */
  CHECK_EQ(c.count(), size_t(1));
  jdb::Batch d;
  d.put("d", "4");
  d = std::move(c); /* frees d's old batch */
  CHECK_EQ(d.count(), size_t(1));
  d.put("e", "5");
  t.write(d);
  CHECK_EQ(t.get("e"), std::optional<std::string>("5"));
  CHECK_EQ(t.get("d"), std::optional<std::string>());
}

void iterators(const jdb::Db &db) {
  jdb::Table empty = db.open_table("iter-empty", JDB_CREATE);
  {
    jdb::Iter it = empty.iter();
    CHECK(!it.first());
    CHECK(!it.last());
    CHECK(!it.seek("a"));
    CHECK(!it.seek_prev("z"));
    CHECK_THROWS(JDB_EINVAL, it.next());
    CHECK_THROWS(JDB_EINVAL, it.prev());
    CHECK_THROWS(JDB_EINVAL, it.key());
    CHECK_THROWS(JDB_EINVAL, it.value());
  }

  jdb::Table t = db.open_table("iter", JDB_CREATE);
  Model model;
  /* 300 keys written in a scattered order, every third one deleted again. */
  for (int i = 0; i < 300; i++) {
    int k = (i * 7) % 300;
    std::string v = "v" + std::to_string(k * 13);
    t.put(key_of(k), v);
    model[key_of(k)] = v;
  }
  for (int k = 0; k < 300; k += 3) {
    t.del(key_of(k));
    model.erase(key_of(k));
  }

  jdb::Iter it = t.iter();
  CHECK(it);
  CHECK(scan(it, false) == model);
  CHECK(scan(it, true) == model);

  /* seek: first key >= target; seek_prev: last key <= target. */
  for (int k : {-1, 0, 1, 2, 3, 150, 151, 297, 298, 299, 300}) {
    std::string target = k < 0 ? std::string("a") : key_of(k);
    auto lo = model.lower_bound(target);
    bool found = it.seek(target);
    CHECK_EQ(found, lo != model.end());
    if (found) {
      CHECK_EQ(it.key(), std::string_view(lo->first));
      CHECK_EQ(it.value(), std::string_view(lo->second));
    }
    auto up = model.upper_bound(target);
    found = it.seek_prev(target);
    CHECK_EQ(found, up != model.begin());
    if (found) CHECK_EQ(it.key(), std::string_view(std::prev(up)->first));
  }
  CHECK(!it.seek("l"));
  CHECK(!it.seek_prev("a"));
  CHECK_THROWS(JDB_EINVAL, it.key());

  /* Walking off either end unpositions the iterator. */
  CHECK(it.last());
  CHECK(!it.next());
  CHECK_THROWS(JDB_EINVAL, it.next());
  CHECK(it.first());
  CHECK(!it.prev());
  CHECK_THROWS(JDB_EINVAL, it.key());

  /* Turning around mid-way. */
  CHECK(it.seek(key_of(100)));
  CHECK_EQ(std::string(it.key()), key_of(100));
  CHECK(it.next());
  CHECK_EQ(std::string(it.key()), key_of(101));
  CHECK(it.prev());
  CHECK(it.prev());
  CHECK_EQ(std::string(it.key()), key_of(98));

  /* An iterator reads at the snapshot taken when it opened. */
  t.put("k00001x", "late");
  t.del(key_of(1));
  CHECK(scan(it, false) == model);
  jdb::Iter fresh = t.iter();
  Model now = model;
  now["k00001x"] = "late";
  now.erase(key_of(1));
  CHECK(scan(fresh, false) == now);
  CHECK(scan(fresh, true) == now);

  /* A move keeps the position; the moved-from iterator holds nothing. */
  CHECK(it.seek(key_of(200)));
  jdb::Iter moved = std::move(it);
  CHECK(!it);
  CHECK_THROWS(JDB_EINVAL, it.next());
  CHECK_THROWS(JDB_EINVAL, it.first());
  CHECK_EQ(std::string(moved.key()), key_of(200));
  CHECK(moved.next());
  CHECK_EQ(std::string(moved.key()), key_of(202));
  moved.reset();
  CHECK(!moved);
  fresh = std::move(moved); /* closes fresh's iterator */
  CHECK(!fresh);
}

void snapshots(const jdb::Db &db) {
  jdb::Table t = db.open_table("snap", JDB_CREATE);
  jdb::Table other = db.open_table("snap-other", JDB_CREATE);
  t.put("a", "1");
  t.put("b", "1");

  jdb::Snapshot s = t.snapshot();
  CHECK(s);
  const uint64_t seq = s.seq();
  CHECK(seq > 0);
  t.put("a", "2");
  t.del("b");
  t.put("c", "2");

  CHECK_EQ(s.get("a"), std::optional<std::string>("1"));
  CHECK_EQ(s.get("b"), std::optional<std::string>("1"));
  CHECK_EQ(s.get("c"), std::optional<std::string>());
  CHECK_EQ(t.get("a"), std::optional<std::string>("2"));
  CHECK_EQ(t.get("b"), std::optional<std::string>());
  CHECK_THROWS(JDB_EINVAL, s.get(""));

  {
    jdb::Iter it = t.iter(s);
    CHECK((scan(it, false) == Model{{"a", "1"}, {"b", "1"}}));
    CHECK((scan(it, true) == Model{{"a", "1"}, {"b", "1"}}));
  }
  CHECK_THROWS(JDB_EINVAL, other.iter(s)); /* a snapshot of another table */
  {
    /* An iterator keeps reading after the snapshot it was opened at is released. */
    jdb::Snapshot tmp = t.snapshot();
    jdb::Iter it = t.iter(tmp);
    tmp.reset();
    t.put("d", "later");
    CHECK((scan(it, false) == Model{{"a", "2"}, {"c", "2"}}));
  }

  jdb::Snapshot later = t.snapshot();
  CHECK(later.seq() > seq);
  CHECK_EQ(later.get("c"), std::optional<std::string>("2"));

  /* Moves and early release. */
  jdb::Snapshot moved = std::move(s);
  CHECK(!s);
  CHECK_EQ(s.seq(), uint64_t(0));
  CHECK_THROWS(JDB_EINVAL, s.get("a"));
  CHECK_EQ(moved.seq(), seq);
  CHECK_EQ(moved.get("a"), std::optional<std::string>("1"));
  later = std::move(moved); /* releases later's snapshot */
  CHECK_EQ(later.seq(), seq);
  later.reset();
  CHECK(!later);
}

void pipes(const jdb::Db &db) {
  jdb::Table t1 = db.open_table("pipe-1", JDB_CREATE);
  jdb::Table t2 = db.open_table("pipe-2", JDB_CREATE);
  t2.put("old", "o");

  jdb::Pipe p = db.pipe();
  CHECK(p);
  CHECK_EQ(p.count(), size_t(0));
  CHECK_EQ(p.status(0), JDB_EINVAL); /* before any exec */
  for (int i = 0; i < 50; i++) p.put(i % 2 ? t1 : t2, key_of(i), "p" + std::to_string(i));
  p.get(t1, key_of(1))        /* 50: sees the put queued before it */
      .get(t2, "missing")     /* 51 */
      .del(t2, "old")         /* 52 */
      .get(t2, "old")         /* 53 */
      .get(t2, key_of(0));    /* 54 */
  CHECK_EQ(p.count(), size_t(55));
  CHECK_THROWS(JDB_EINVAL, p.put(t1, "", "v"));
  CHECK_THROWS(JDB_EINVAL, p.get(jdb::Table(), "k"));
  CHECK_EQ(p.count(), size_t(55));

  p.exec();
  for (size_t i = 0; i < 50; i++) CHECK_EQ(p.status(i), JDB_OK);
  CHECK_EQ(p.status(50), JDB_OK);
  CHECK_EQ(p.value(50), std::optional<std::string_view>("p1"));
  CHECK_EQ(p.status(51), JDB_NOTFOUND);
  CHECK_EQ(p.value(51), std::optional<std::string_view>());
  CHECK_EQ(p.status(52), JDB_OK);
  CHECK_EQ(p.value(53), std::optional<std::string_view>());
  CHECK_EQ(p.value(54), std::optional<std::string_view>("p0"));
  CHECK_EQ(p.status(55), JDB_EINVAL);
  CHECK_THROWS(JDB_EINVAL, p.value(55));
  for (int i = 0; i < 50; i++)
    CHECK_EQ((i % 2 ? t1 : t2).get(key_of(i)), std::optional<std::string>("p" + std::to_string(i)));
  CHECK_EQ(t2.get("old"), std::optional<std::string>());

  /* Reset forgets operations and results; the pipe is reusable, also with JDB_SYNC. */
  p.reset();
  CHECK_EQ(p.count(), size_t(0));
  CHECK_EQ(p.status(0), JDB_EINVAL);
  p.put(t1, "sync", "s").get(t1, "sync");
  p.exec(JDB_SYNC);
  CHECK_EQ(p.value(1), std::optional<std::string_view>("s"));
  CHECK_THROWS(JDB_EINVAL, p.exec(0x80));

  /* Moves. */
  jdb::Pipe q = std::move(p);
  CHECK(!p);
  CHECK_EQ(p.count(), size_t(0));
  CHECK_THROWS(JDB_EINVAL, p.put(t1, "k", "v"));
  CHECK_THROWS(JDB_EINVAL, p.exec());
  CHECK_EQ(q.count(), size_t(2));
  CHECK_EQ(q.value(1), std::optional<std::string_view>("s"));
  jdb::Pipe r(db);
  r = std::move(q);
  CHECK_EQ(r.count(), size_t(2));
}

void admin(const jdb::Db &db) {
  jdb::Table t = db.open_table("admin", JDB_CREATE);
  for (int i = 0; i < 100; i++) t.put(key_of(i), std::string(50, 'a'));
  db.flush();
  db.checkpoint();
  jdb_stats_t s = db.stats();
  CHECK_EQ(s.struct_size, static_cast<uint32_t>(sizeof s));
  CHECK_EQ(s.shards, 2u);
  CHECK(s.ops >= 100);
  CHECK(s.checkpoints >= 1);
  jdb_stats_t s0 = db.stats(0);
  CHECK(s0.ops <= s.ops);
  CHECK_THROWS(JDB_EINVAL, db.stats(2));
  jdb_check_report_t r = db.check();
  CHECK_EQ(r.errors, uint64_t(0));
  CHECK_EQ(r.shards, 2u);
  CHECK(r.pages_checked > 0);
  CHECK_EQ(t.get(key_of(42)), std::optional<std::string>(std::string(50, 'a')));
}

/* Not supported yet in this build: each either works or throws JDB_ENOTSUP. */
void not_supported(const jdb::Db &db) {
  jdb::Table t = db.open_table("notsup", JDB_CREATE);
  t.put("k", "v");
  auto allowed = [](int code) { return code == JDB_ENOTSUP || code == JDB_NOTFOUND; };
  try {
    jdb::Table f = t.fork(0, JDB_ASC, "notsup-fork");
    CHECK_EQ(f.get("k"), std::optional<std::string>("v"));
  } catch (const jdb::Error &e) {
    CHECK_EQ(e.code(), JDB_ENOTSUP);
  }
  try {
    jdb::Snapshot s = t.snapshot_at(0, JDB_ASC);
  } catch (const jdb::Error &e) {
    CHECK(allowed(e.code()));
  }
  try {
    jdb::Iter h = t.history("k");
    if (h.first()) {
      CHECK_EQ(h.value(), std::string_view("v"));
      CHECK(!h.version().tombstone);
    }
  } catch (const jdb::Error &e) {
    CHECK_EQ(e.code(), JDB_ENOTSUP);
  }
}

/* RAII: leaving a scope closes the instance (the directory can be opened again) and frees
   every handle; moves hand the instance over; an explicit close() reports close's result. */
void raii_and_reopen() {
  const std::string path = db_path("raii");
  {
    jdb::Db db(path, small_options());
    jdb::Table t = db.open_table("r", JDB_CREATE);
    jdb::Batch b;
    b.put("batch", "1");
    t.write(b);
    jdb::Pipe p = db.pipe();
    p.put(t, "pipe", "2");
    p.exec();
    t.put("plain", "3");
    jdb::Snapshot s = t.snapshot();
    jdb::Iter it = t.iter(s);
    CHECK(it.first());
  }
  {
    jdb::Db db(path, small_options()); /* no JDB_EBUSY: the first one was closed */
    jdb::Table t = db.open_table("r", 0);
    CHECK_EQ(t.get("batch"), std::optional<std::string>("1"));
    CHECK_EQ(t.get("pipe"), std::optional<std::string>("2"));
    CHECK_EQ(t.get("plain"), std::optional<std::string>("3"));

    /* A table handle may be destroyed after its instance is closed. */
    jdb::Table late = db.open_table("r", 0);
    jdb::Db moved = std::move(db);
    CHECK(!db);
    CHECK_THROWS(JDB_EINVAL, db.flush());
    moved.flush();
    jdb::Db assigned;
    assigned = std::move(moved);
    CHECK(!moved);
    assigned.close();
    CHECK(!assigned);
    assigned.close(); /* nothing left: no-op */
  }
  {
    /* Move-assigning over an open Db closes the old instance. */
    jdb::Db db(path, small_options());
    db = jdb::Db(db_path("raii-2"), small_options());
    jdb::Db again(path, small_options());
    CHECK(again);
    CHECK_THROWS(JDB_EBUSY, jdb::Db(db_path("raii-2"), small_options()));
    CHECK_EQ(again.open_table("r", 0).get("plain"), std::optional<std::string>("3"));
  }
}

/* Every handle may be destroyed after its instance is closed: calls through snapshots and
   iterators then throw JDB_ECLOSED, and the destructors only free memory (ASan checks); the
   table and pipe are only destroyed. */
void handles_after_close() {
  jdb::Table t;
  jdb::Batch b;
  jdb::Pipe p;
  jdb::Snapshot s;
  jdb::Iter it;
  uint64_t seq = 0;
  {
    jdb::Db db(db_path("after-close"), small_options());
    t = db.open_table("t", JDB_CREATE);
    t.put("k", "v");
    b.put("k", "w");
    p = db.pipe();
    p.get(t, "k");
    p.exec();
    s = t.snapshot();
    seq = s.seq();
    it = t.iter();
    CHECK(it.first());
    db.close();
  }
  CHECK_EQ(s.seq(), seq);
  CHECK_THROWS(JDB_ECLOSED, s.get("k"));
  CHECK_THROWS(JDB_ECLOSED, it.first());
  CHECK_THROWS(JDB_ECLOSED, it.seek("k"));
  /* A batch belongs to no instance. */
  CHECK_EQ(b.count(), size_t(1));
  b.put("k2", "x");
  CHECK_EQ(b.count(), size_t(2));
}

struct Case {
  const char *name;
  void (*run)(const jdb::Db &db);
};

}  // namespace

int main() {
  const char *base = std::getenv("JDB_TEST_DIR");
  /* mkdtemp's template: a name ending in six X. */
  std::string tmpl = std::string(base && *base ? base : ".") + "/test_cpp." + std::string(6, 'X');
  std::filesystem::create_directories(std::filesystem::path(tmpl).parent_path());
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  g_root = std::filesystem::canonical(buf.data()).string();

  int failed = 0, passed = 0;
  auto run = [&](const char *name, auto &&fn) {
    try {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      passed++;
      std::printf("[ OK ] %s (%lld ms)\n", name, static_cast<long long>(ms.count()));
    } catch (const CheckFailed &) {
      failed++;
      std::printf("[FAIL] %s\n", name);
    } catch (const std::exception &e) {
      failed++;
      std::printf("[FAIL] %s: unexpected exception: %s\n", name, e.what());
    }
  };

  run("error_and_options", error_and_options);
  run("open_errors", open_errors);
  const Case with_db[] = {{"key_value", key_value},     {"table_list", table_list},
                          {"batches", batches},         {"iterators", iterators},
                          {"snapshots", snapshots},     {"pipes", pipes},
                          {"admin", admin},             {"not_supported", not_supported}};
  run("open shared db", [&] {
    jdb::Db db(db_path("shared"), small_options());
    for (const Case &c : with_db) run(c.name, [&] { c.run(db); });
    db.close();
  });
  run("raii_and_reopen", raii_and_reopen);
  run("handles_after_close", handles_after_close);

  std::printf("%d passed, %d failed (data in %s)\n", passed, failed, g_root.c_str());
  if (failed) return 1;
  std::error_code ec;
  std::filesystem::remove_all(g_root, ec);
  return 0;
}
