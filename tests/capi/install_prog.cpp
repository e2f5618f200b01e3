/*
 * install_prog.cpp - a user's C++17 program, built against the installed jdb.hpp and
 * `pkg-config jdb` only (tests/capi/install_check.sh). The same job as install_prog.c, through
 * the wrapper.
 *
 * Usage: install_prog_cpp DIR   (DIR must not exist yet; the database is created there)
 * Exit 0 and one line on stdout when all is well; otherwise the failure on stderr.
 */
#include <jdb.hpp>

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

namespace {

constexpr int kKeys = 200;

void check(bool ok, int line, const char *what) {
  if (!ok) throw std::runtime_error("install_prog.cpp:" + std::to_string(line) + ": " + what);
}
#define CHECK(cond) check((cond), __LINE__, #cond)

std::string key_of(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "key%04d", i);
  return buf;
}

jdb::Db open_db(const std::string &dir) {
  jdb::Options o;
  o.shards = 2;
  o.pin_cores = 0;
  o.cache_bytes = 16u << 20;
  return jdb::Db(dir, o);
}

/* Every check on the data against the model; run before and after reopening. */
void verify(const jdb::Table &t, const std::map<std::string, std::string> &model) {
  for (int i = 0; i < kKeys; i++) {
    auto it = model.find(key_of(i));
    std::optional<std::string> got = t.get(key_of(i));
    if (it == model.end())
      CHECK(!got);
    else
      CHECK(got && *got == it->second);
  }

  jdb::Iter it = t.iter();
  auto m = model.begin();
  for (bool more = it.first(); more; more = it.next(), ++m) {
    CHECK(m != model.end());
    CHECK(it.key() == m->first && it.value() == m->second);
  }
  CHECK(m == model.end());
  auto r = model.rbegin();
  for (bool more = it.last(); more; more = it.prev(), ++r) {
    CHECK(r != model.rend());
    CHECK(it.key() == r->first && it.value() == r->second);
  }
  CHECK(r == model.rend());

  CHECK(it.seek("key0100") && it.key() == "key0101");
  CHECK(it.seek_prev("key0100") && it.key() == "key0099");
}

int run(const std::string &dir) {
  CHECK(std::string(jdb::version()) == JDB_VERSION_STRING);
  std::map<std::string, std::string> model;
  {
    jdb::Db db = open_db(dir);
    jdb::Table t = db.open_table("demo", JDB_CREATE);

    for (int i = 0; i < kKeys; i++) {
      t.put(key_of(i), "val" + std::to_string(i));
      model[key_of(i)] = "val" + std::to_string(i);
    }
    for (int i = 0; i < kKeys; i += 5) {
      t.del(key_of(i));
      model.erase(key_of(i));
    }
    try {
      t.put("", "v");
      CHECK(false);
    } catch (const jdb::Error &e) {
      CHECK(e.code() == JDB_EINVAL);
    }
    try {
      db.open_table("absent", 0);
      CHECK(false);
    } catch (const jdb::Error &e) {
      CHECK(e.code() == JDB_NOTFOUND);
    }

    jdb::Batch b;
    for (int i = 0; i < 10; i++) {
      b.put(key_of(i), "batch" + std::to_string(i));
      model[key_of(i)] = "batch" + std::to_string(i);
      if (i % 5 == 0) {
        b.del(key_of(i));
        model.erase(key_of(i));
      }
    }
    t.write(b, JDB_SYNC);

    jdb::Pipe p = db.pipe();
    p.put(t, "piped", "yes").get(t, "piped");
    p.exec();
    CHECK(p.status(0) == JDB_OK);
    CHECK(p.value(1) == std::optional<std::string_view>("yes"));
    t.del("piped");

    {
      jdb::Snapshot s = t.snapshot();
      t.put("after", "snapshot");
      CHECK(!s.get("after") && t.get("after") == std::optional<std::string>("snapshot"));
      t.del("after");
    }

    verify(t, model);
    db.close();
  }
  {
    jdb::Db db = open_db(dir);
    verify(db.open_table("demo", 0), model);
  }
  std::printf("install_prog (C++): libjdb %s: %d keys written, %zu live, read back both ways "
              "after reopen\n", jdb::version(), kKeys, model.size());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: install_prog_cpp DIR\n");
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const jdb::Error &e) {
    std::fprintf(stderr, "jdb::Error %d: %s\n", e.code(), e.what());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  return 1;
}
