/*
 * jdb.hpp - header-only C++17 wrapper of the JDB C API (jdb.h).
 *
 * Thin by design: every call forwards to one jdb_* function and adds nothing but
 *   - RAII: each handle type owns its C handle and frees it in its destructor; handles are
 *     movable (the moved-from object holds no handle) and not copyable;
 *   - std::string_view for bytes in (keys, values and names may hold any bytes, NUL included),
 *     std::optional<std::string> for values out (std::nullopt for JDB_NOTFOUND);
 *   - errors as jdb::Error exceptions: every negative code becomes a throw, except where a
 *     function's comment says otherwise (lookups return nullopt or false for JDB_NOTFOUND).
 *
 * Types: Error, Options, Db, Table, Batch, Snapshot, Iter, Pipe.
 *
 * Lifetimes are those of the C API (jdb.h):
 *   - Any handle may be destroyed after its Db is closed or destroyed. After the close, a Table
 *     or Pipe must not be used; Snapshot and Iter calls throw Error(JDB_ECLOSED) (jdb_close
 *     released what they held); a Batch belongs to no instance and stays usable. Destroying
 *     snapshots and iterators before the Db is better: they pin data until then. Declaring
 *     the Db first in a scope does that.
 *   - An Iter opened at a Snapshot keeps reading after the Snapshot is destroyed.
 *   - string_views returned by Iter::key/value and Pipe::value point into library memory and
 *     stay valid until the next move of the iterator / the next exec, reset or destruction of
 *     the pipe.
 *   - Using a moved-from or reset() object calls the C function with a NULL handle, which throws
 *     Error(JDB_EINVAL) (or returns 0 / does nothing for the functions that accept NULL).
 * Thread-safety is the C API's: Db and Table may be used from many threads at once (their
 * methods are const); Batch, Snapshot, Iter and Pipe belong to one thread at a time.
 *
 * Functions that return JDB_ENOTSUP in this build are wrapped as well and throw
 * Error(JDB_ENOTSUP) until their features land: Table::fork, Table::snapshot_at,
 * Table::history and Iter::version. Streams (jdb_watch_*, jdb_event_encode, jdb_import) and
 * series (jdb_series_*) are not wrapped yet; call the C functions through handle().
 */
#ifndef JDB_HPP
#define JDB_HPP

#include "jdb.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace jdb {

/* A failed call: code() is the JDB_E* value, what() is "<call>: " + jdb_strerror(code). */
class Error : public std::runtime_error {
 public:
  explicit Error(int code) : std::runtime_error(jdb_strerror(code)), code_(code) {}
  Error(int code, const char *call)
      : std::runtime_error(std::string(call) + ": " + jdb_strerror(code)), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

namespace detail {
/* Throws Error for a negative code; returns non-negative codes unchanged. */
inline int check(int rc, const char *call) {
  if (rc < 0) throw Error(rc, call);
  return rc;
}
struct DbClose { void operator()(jdb_t *p) const noexcept { (void)jdb_close(p); } };
struct TableClose { void operator()(jdb_table_t *p) const noexcept { jdb_table_close(p); } };
struct BatchFree { void operator()(jdb_batch_t *p) const noexcept { jdb_batch_free(p); } };
struct SnapRelease { void operator()(jdb_snap_t *p) const noexcept { jdb_snapshot_release(p); } };
struct IterClose { void operator()(jdb_iter_t *p) const noexcept { jdb_iter_close(p); } };
struct PipeFree { void operator()(jdb_pipe_t *p) const noexcept { jdb_pipe_free(p); } };
struct MemFree { void operator()(void *p) const noexcept { jdb_free(p); } };

/* Takes ownership of a jdb_get / jdb_get_at result and copies it into a string. */
inline std::optional<std::string> take_value(int rc, void *val, size_t vlen, const char *call) {
  std::unique_ptr<void, MemFree> owned(val);
  if (rc == JDB_NOTFOUND) return std::nullopt;
  check(rc, call);
  return std::string(static_cast<const char *>(owned.get()), vlen);
}
}  // namespace detail

/* The library's version, "MAJOR.MINOR.PATCH" (jdb_version). */
inline const char *version() noexcept { return jdb_version(); }

/* jdb_options_t filled with the defaults of jdb_options_init; set fields directly
   (o.shards = 2) and pass it to Db. */
struct Options : jdb_options_t {
  Options() noexcept : jdb_options_t() { jdb_options_init(this); }
};

class Table;
class Pipe;

/* An open instance (jdb_t). The destructor closes it, ignoring close's result; call close() to
   see that result. */
class Db {
 public:
  Db() noexcept = default;                    /* holds nothing */
  explicit Db(jdb_t *raw) noexcept : h_(raw) {} /* takes ownership */
  /* jdb_open with default options. Throws Error (JDB_EBUSY, JDB_NOTFOUND, ... see jdb.h). */
  explicit Db(std::string_view path) : Db(path, nullptr) {}
  /* jdb_open with opts (an Options, or a jdb_options_t set up with jdb_options_init). */
  Db(std::string_view path, const jdb_options_t &opts) : Db(path, &opts) {}
  Db(Db &&) noexcept = default;
  Db &operator=(Db &&) noexcept = default;
  Db(const Db &) = delete;
  Db &operator=(const Db &) = delete;
  ~Db() = default;

  jdb_t *handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  jdb_t *release() noexcept { return h_.release(); }  /* gives up ownership */

  /* jdb_close; the object holds nothing afterwards, even when this throws. No-op when empty. */
  void close() { detail::check(jdb_close(h_.release()), "jdb_close"); }
  void flush() const { detail::check(jdb_flush(handle()), "jdb_flush"); }
  void checkpoint() const { detail::check(jdb_checkpoint(handle()), "jdb_checkpoint"); }

  /* jdb_stats of one shard (0 .. shards-1) or of the whole instance (-1). */
  jdb_stats_t stats(int shard = -1) const {
    jdb_stats_t s{};
    s.struct_size = sizeof s;
    detail::check(jdb_stats(handle(), shard, &s), "jdb_stats");
    return s;
  }
  /* jdb_check. Corruption found is not thrown: it is reported in the result (errors > 0, and
     jdb_check returned JDB_ECORRUPT); other failures throw. */
  jdb_check_report_t check() const {
    jdb_check_report_t r{};
    r.struct_size = sizeof r;
    int rc = jdb_check(handle(), &r);
    if (rc != JDB_ECORRUPT) detail::check(rc, "jdb_check");
    return r;
  }

  /* jdb_table_open; flags 0 or JDB_CREATE. Throws Error(JDB_NOTFOUND) for a missing table
     opened without JDB_CREATE. */
  Table open_table(std::string_view name, unsigned flags) const;
  /* jdb_table_drop. Throws Error(JDB_NOTFOUND) when there is no such table. */
  void drop_table(std::string_view name) const {
    detail::check(jdb_table_drop(handle(), name.data(), name.size()), "jdb_table_drop");
  }
  /* jdb_table_list: calls fn(std::string_view name) for every table whose name is >= start
     (empty: from the first), in name order. fn returns void (visit all) or bool (false
     stops). An exception thrown by fn stops the listing and propagates. */
  template <class Fn>
  void for_each_table(std::string_view start, Fn &&fn) const {
    struct Ctx {
      std::remove_reference_t<Fn> *fn;
      std::exception_ptr error;
    } ctx{&fn, nullptr};
    auto visit = [](void *ud, const void *name, size_t name_len) -> int {
      Ctx *c = static_cast<Ctx *>(ud);
      std::string_view n(static_cast<const char *>(name), name_len);
      try {
        if constexpr (std::is_void_v<decltype((*c->fn)(n))>) {
          (*c->fn)(n);
          return 0;
        } else {
          return (*c->fn)(n) ? 0 : 1;
        }
      } catch (...) {
        c->error = std::current_exception();
        return 1;
      }
    };
    int rc = jdb_table_list(handle(), start.empty() ? nullptr : start.data(), start.size(),
                            visit, &ctx);
    if (ctx.error) std::rethrow_exception(ctx.error);
    detail::check(rc, "jdb_table_list");
  }
  /* Every table name >= start, in name order. */
  std::vector<std::string> table_names(std::string_view start = {}) const {
    std::vector<std::string> names;
    for_each_table(start, [&names](std::string_view n) { names.emplace_back(n); });
    return names;
  }

  /* A new pipeline on this instance (jdb_pipe_new). */
  Pipe pipe() const;

 private:
  Db(std::string_view path, const jdb_options_t *opts) {
    jdb_t *raw = nullptr;
    detail::check(jdb_open(std::string(path).c_str(), opts, &raw), "jdb_open");
    h_.reset(raw);
  }
  std::unique_ptr<jdb_t, detail::DbClose> h_;
};

/* An atomic group of writes to one table (jdb_batch_t). */
class Batch {
 public:
  /* jdb_batch_new; throws Error(JDB_ENOMEM) when it fails. */
  Batch() : h_(jdb_batch_new()) {
    if (!h_) throw Error(JDB_ENOMEM, "jdb_batch_new");
  }
  explicit Batch(jdb_batch_t *raw) noexcept : h_(raw) {} /* takes ownership */
  Batch(Batch &&) noexcept = default;
  Batch &operator=(Batch &&) noexcept = default;
  Batch(const Batch &) = delete;
  Batch &operator=(const Batch &) = delete;
  ~Batch() = default;

  jdb_batch_t *handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  jdb_batch_t *release() noexcept { return h_.release(); }

  Batch &put(std::string_view key, std::string_view val) {
    detail::check(jdb_batch_put(handle(), key.data(), key.size(), val.data(), val.size()),
                  "jdb_batch_put");
    return *this;
  }
  Batch &del(std::string_view key) {
    detail::check(jdb_batch_del(handle(), key.data(), key.size()), "jdb_batch_del");
    return *this;
  }
  void clear() noexcept { jdb_batch_clear(handle()); }
  size_t count() const noexcept { return jdb_batch_count(handle()); }

 private:
  std::unique_ptr<jdb_batch_t, detail::BatchFree> h_;
};

/* A consistent view of one table (jdb_snap_t); it pins what it sees until destroyed. */
class Snapshot {
 public:
  Snapshot() noexcept = default;
  explicit Snapshot(jdb_snap_t *raw) noexcept : h_(raw) {} /* takes ownership */
  Snapshot(Snapshot &&) noexcept = default;
  Snapshot &operator=(Snapshot &&) noexcept = default;
  Snapshot(const Snapshot &) = delete;
  Snapshot &operator=(const Snapshot &) = delete;
  ~Snapshot() = default;

  jdb_snap_t *handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  jdb_snap_t *release() noexcept { return h_.release(); }
  void reset() noexcept { h_.reset(); }  /* jdb_snapshot_release now */

  uint64_t seq() const noexcept { return jdb_snapshot_seq(handle()); }
  /* jdb_get_at: the value as of the snapshot, or nullopt when absent then. */
  std::optional<std::string> get(std::string_view key) const {
    void *val = nullptr;
    size_t vlen = 0;
    int rc = jdb_get_at(handle(), key.data(), key.size(), &val, &vlen);
    return detail::take_value(rc, val, vlen, "jdb_get_at");
  }

 private:
  std::unique_ptr<jdb_snap_t, detail::SnapRelease> h_;
};

/* A cursor over one table's keys in bytewise order (jdb_iter_t). Positioning calls return true
   on an entry and false for JDB_NOTFOUND (no entry: the iterator is then unpositioned); other
   codes throw. */
class Iter {
 public:
  Iter() noexcept = default;
  explicit Iter(jdb_iter_t *raw) noexcept : h_(raw) {} /* takes ownership */
  Iter(Iter &&) noexcept = default;
  Iter &operator=(Iter &&) noexcept = default;
  Iter(const Iter &) = delete;
  Iter &operator=(const Iter &) = delete;
  ~Iter() = default;

  jdb_iter_t *handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  jdb_iter_t *release() noexcept { return h_.release(); }
  void reset() noexcept { h_.reset(); }  /* jdb_iter_close now */

  bool first() { return found(jdb_iter_first(handle()), "jdb_iter_first"); }
  bool last() { return found(jdb_iter_last(handle()), "jdb_iter_last"); }
  /* First key >= key. */
  bool seek(std::string_view key) {
    return found(jdb_iter_seek(handle(), key.data(), key.size()), "jdb_iter_seek");
  }
  /* Last key <= key. */
  bool seek_prev(std::string_view key) {
    return found(jdb_iter_seek_prev(handle(), key.data(), key.size()), "jdb_iter_seek_prev");
  }
  /* Throw Error(JDB_EINVAL) when unpositioned. */
  bool next() { return found(jdb_iter_next(handle()), "jdb_iter_next"); }
  bool prev() { return found(jdb_iter_prev(handle()), "jdb_iter_prev"); }

  /* The current entry, valid until the next move; throw Error(JDB_EINVAL) when unpositioned. */
  std::string_view key() const {
    const void *p = nullptr;
    size_t n = 0;
    detail::check(jdb_iter_key(handle(), &p, &n), "jdb_iter_key");
    return std::string_view(static_cast<const char *>(p), n);
  }
  std::string_view value() const {
    const void *p = nullptr;
    size_t n = 0;
    detail::check(jdb_iter_value(handle(), &p, &n), "jdb_iter_value");
    return std::string_view(static_cast<const char *>(p), n);
  }

  /* The version of the current entry of a history iterator (jdb_iter_version). */
  struct Version {
    uint64_t seq;
    uint64_t ts_sec;
    bool tombstone;
  };
  Version version() const {
    uint64_t seq = 0, ts = 0;
    int tomb = 0;
    detail::check(jdb_iter_version(handle(), &seq, &ts, &tomb), "jdb_iter_version");
    return Version{seq, ts, tomb != 0};
  }

 private:
  static bool found(int rc, const char *call) {
    if (rc == JDB_NOTFOUND) return false;
    detail::check(rc, call);
    return true;
  }
  std::unique_ptr<jdb_iter_t, detail::IterClose> h_;
};

/* A table handle (jdb_table_t). Thread-safe; may be destroyed after its Db closes. */
class Table {
 public:
  Table() noexcept = default;
  explicit Table(jdb_table_t *raw) noexcept : h_(raw) {} /* takes ownership */
  /* jdb_table_open, as Db::open_table. */
  Table(const Db &db, std::string_view name, unsigned flags) {
    jdb_table_t *raw = nullptr;
    detail::check(jdb_table_open(db.handle(), name.data(), name.size(), flags, &raw),
                  "jdb_table_open");
    h_.reset(raw);
  }
  Table(Table &&) noexcept = default;
  Table &operator=(Table &&) noexcept = default;
  Table(const Table &) = delete;
  Table &operator=(const Table &) = delete;
  ~Table() = default;

  jdb_table_t *handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  jdb_table_t *release() noexcept { return h_.release(); }

  /* jdb_put: durable against a process crash on return. */
  void put(std::string_view key, std::string_view val) const {
    detail::check(jdb_put(handle(), key.data(), key.size(), val.data(), val.size()), "jdb_put");
  }
  /* jdb_put_sync: durable against power loss on return. */
  void put_sync(std::string_view key, std::string_view val) const {
    detail::check(jdb_put_sync(handle(), key.data(), key.size(), val.data(), val.size()),
                  "jdb_put_sync");
  }
  /* jdb_del (no error when the key is absent). */
  void del(std::string_view key) const {
    detail::check(jdb_del(handle(), key.data(), key.size()), "jdb_del");
  }
  /* jdb_get: the current value, or nullopt when the key is absent. */
  std::optional<std::string> get(std::string_view key) const {
    void *val = nullptr;
    size_t vlen = 0;
    int rc = jdb_get(handle(), key.data(), key.size(), &val, &vlen);
    return detail::take_value(rc, val, vlen, "jdb_get");
  }
  /* jdb_write: apply b atomically; flags 0 or JDB_SYNC. The batch is unchanged. */
  void write(Batch &b, unsigned flags = 0) const {
    detail::check(jdb_write(handle(), b.handle(), flags), "jdb_write");
  }

  /* jdb_snapshot: a view of the table now. */
  Snapshot snapshot() const {
    jdb_snap_t *raw = nullptr;
    detail::check(jdb_snapshot(handle(), &raw), "jdb_snapshot");
    return Snapshot(raw);
  }
  /* jdb_snapshot_at (time travel; throws Error(JDB_ENOTSUP) in this build). */
  Snapshot snapshot_at(uint64_t ts_sec, int order = JDB_ASC) const {
    jdb_snap_t *raw = nullptr;
    detail::check(jdb_snapshot_at(handle(), ts_sec, order, &raw), "jdb_snapshot_at");
    return Snapshot(raw);
  }
  /* jdb_iter_open at a snapshot taken now and held by the iterator. */
  Iter iter() const { return open_iter(nullptr); }
  /* jdb_iter_open at snap, a snapshot of this table (else Error(JDB_EINVAL)). */
  Iter iter(const Snapshot &snap) const { return open_iter(snap.handle()); }
  /* jdb_history_open (throws Error(JDB_ENOTSUP) in this build). */
  Iter history(std::string_view key) const {
    jdb_iter_t *raw = nullptr;
    detail::check(jdb_history_open(handle(), key.data(), key.size(), &raw), "jdb_history_open");
    return Iter(raw);
  }
  /* jdb_table_fork (throws Error(JDB_ENOTSUP) in this build). */
  Table fork(uint64_t ts_sec, int order, std::string_view name) const {
    jdb_table_t *raw = nullptr;
    detail::check(jdb_table_fork(handle(), ts_sec, order, name.data(), name.size(), &raw),
                  "jdb_table_fork");
    return Table(raw);
  }

 private:
  Iter open_iter(const jdb_snap_t *snap) const {
    jdb_iter_t *raw = nullptr;
    detail::check(jdb_iter_open(handle(), snap, &raw), "jdb_iter_open");
    return Iter(raw);
  }
  std::unique_ptr<jdb_table_t, detail::TableClose> h_;
};

/* Many operations on tables of one instance, one crossing per shard (jdb_pipe_t). Queue with
   put/get/del, run with exec, then read each operation's outcome by its index (0-based, in
   queue order) with status() or value(). */
class Pipe {
 public:
  Pipe() noexcept = default;
  explicit Pipe(jdb_pipe_t *raw) noexcept : h_(raw) {} /* takes ownership */
  /* jdb_pipe_new; throws Error(JDB_EINVAL) for an empty Db, Error(JDB_ENOMEM) otherwise. */
  explicit Pipe(const Db &db) : h_(jdb_pipe_new(db.handle())) {
    if (!h_) throw Error(db ? JDB_ENOMEM : JDB_EINVAL, "jdb_pipe_new");
  }
  Pipe(Pipe &&) noexcept = default;
  Pipe &operator=(Pipe &&) noexcept = default;
  Pipe(const Pipe &) = delete;
  Pipe &operator=(const Pipe &) = delete;
  ~Pipe() = default;

  jdb_pipe_t *handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  jdb_pipe_t *release() noexcept { return h_.release(); }

  Pipe &put(const Table &t, std::string_view key, std::string_view val) {
    detail::check(
        jdb_pipe_put(handle(), t.handle(), key.data(), key.size(), val.data(), val.size()),
        "jdb_pipe_put");
    return *this;
  }
  Pipe &get(const Table &t, std::string_view key) {
    detail::check(jdb_pipe_get(handle(), t.handle(), key.data(), key.size()), "jdb_pipe_get");
    return *this;
  }
  Pipe &del(const Table &t, std::string_view key) {
    detail::check(jdb_pipe_del(handle(), t.handle(), key.data(), key.size()), "jdb_pipe_del");
    return *this;
  }
  /* jdb_pipe_exec; flags 0 or JDB_SYNC. Throws only when the pipeline could not run; each
     operation's own outcome is read with status() / value(). */
  void exec(unsigned flags = 0) { detail::check(jdb_pipe_exec(handle(), flags), "jdb_pipe_exec"); }
  /* Operation i's return code (JDB_OK, JDB_NOTFOUND, ...), as jdb_pipe_result; never throws.
     JDB_EINVAL for i out of range or before any exec. */
  int status(size_t i) { return jdb_pipe_result(handle(), i, nullptr, nullptr); }
  /* Operation i's value: for a get, the value found (valid until the next exec, reset or
     destruction of the pipe) or nullopt for JDB_NOTFOUND; an empty view for a successful put
     or del. Any other code throws Error. */
  std::optional<std::string_view> value(size_t i) {
    const void *p = nullptr;
    size_t n = 0;
    int rc = jdb_pipe_result(handle(), i, &p, &n);
    if (rc == JDB_NOTFOUND) return std::nullopt;
    detail::check(rc, "jdb_pipe_result");
    return std::string_view(static_cast<const char *>(p), n);
  }
  /* Forget queued operations and results. */
  void reset() noexcept { jdb_pipe_reset(handle()); }
  size_t count() const noexcept { return jdb_pipe_count(handle()); }

 private:
  std::unique_ptr<jdb_pipe_t, detail::PipeFree> h_;
};

inline Table Db::open_table(std::string_view name, unsigned flags) const {
  return Table(*this, name, flags);
}
inline Pipe Db::pipe() const { return Pipe(*this); }

}  // namespace jdb

#endif /* JDB_HPP */
