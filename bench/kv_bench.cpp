// bench/kv_bench.cpp — KvStore measured against the key-value stores a C++
// user would otherwise pick, side by side in one run, with a table of
// ratios and targets at the end.
//
// What is measured
//   Every store holds 100,000 entries with 16-byte keys ("key:%012u") and
//   64-byte values (a trivially copyable struct, so sleet uses its raw
//   codec), in a table sized for 131,072 (sleet: capacity 131072,
//   max_key_size 16, max_value_size 64).
//   one process  get hit, get miss, set (update of an existing key),
//                insert+erase churn (insert a new key, erase the one inserted
//                1,024 pairs ago; one item = one pair), and a 90/10 get/set
//                mix, all over uniformly random keys; get hot (a hot set: the
//                first 1,000 keys only, which fit in L2); for sleet also
//                get_many (batches of 16 random present keys, one item = one
//                key).
//   processes    1 and 2 forked reader processes doing random gets at once
//                (aggregate gets/s and the scaling), and the same readers
//                with one writer process setting other keys as fast as it
//                can. Readers read keys [0, 90000), the writer writes keys
//                [90000, 100000).
//   contenders   sleet::KvStore; std::unordered_map under std::shared_mutex
//                (one process only); a boost::unordered_map in a
//                Boost.Interprocess managed_shared_memory segment under an
//                interprocess_sharable_mutex (readers take it shared); LMDB
//                in a fresh directory on tmpfs (/dev/shm), opened with
//                MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP.
//   extra rows   sleet with a 64-character std::string value (cereal codec,
//                max_value_size 72), and get miss on the stores that ran the
//                churn (tombstones left behind).
//
// LMDB transactions
//   get rows: one read transaction per benchmark run (a long read
//   transaction; millions of gets). Reader processes: mdb_txn_reset +
//   mdb_txn_renew every kLmdbRenewEvery gets, so that a writer process can
//   reuse freed pages. Writes (set, churn, mix, the writer process): one
//   write transaction committed every kLmdbCommitEvery writes (puts or
//   deletes; the gets of the mix run inside the same write transaction).
//
// How a multi-process run works
//   The parent creates and fills every store before any benchmark runs.
//   A multi-process row forks its readers (and writer); each opens the
//   store by name (LMDB: a new environment; the parent closes its own
//   before forking, as LMDB requires), warms up with one untimed pass over
//   its keys (page faults, caches), meets the others at a barrier in shared
//   memory and runs a fixed number of gets (calibrated once per store to
//   last about --mp-seconds, with a time cap). The time of a run is the
//   first reader's start to the last reader's finish; the rate is all
//   readers' gets over that time, given to Google Benchmark as manual time.
//   Processes are pinned to distinct CPUs (reader i on allowed CPU i mod n,
//   the writer on the next one; --no-pin to disable).
//
// Noise
//   Rows run in rounds: every round runs every row of a comparison back to
//   back (baseline, sleet, ...). A ratio is the median of the per-round
//   ratios, shown with its range. Targets are judged on wall-clock rates;
//   the table repeats each ratio on CPU time (Google Benchmark's CPU time,
//   or each reader's CLOCK_THREAD_CPUTIME_ID) and shows the share of wall
//   time the readers were on a CPU, so that a run on a machine shared with
//   other work can tell "slower" from "descheduled". Reader processes that
//   rarely run at the same time cannot contend, so a CPU-time scaling ratio
//   only means something when that share is high. A third column keeps only
//   the quiet rounds: those in which both rows had at least 90% of a CPU.
//
// Cleanup
//   Every sleet segment, Boost shared memory object and LMDB directory is
//   made under a name containing this process's pid, registered, and
//   removed by its owner's destructor, by an atexit handler, and by a
//   SIGINT/SIGTERM/SIGHUP handler (unlink()/rmdir() are async-signal-safe).
//   Children never remove anything; they end in _exit(), die with the
//   parent (PR_SET_PDEATHSIG) and carry an alarm() against a hang.
//
// Flags (removed before benchmark::Initialize; everything else is Google
// Benchmark's):
//   --quick            the target rows only, 3 rounds, short runs
//   --rounds=N         rounds (default 7, quick 3)
//   --mp-seconds=S     approximate length of one multi-process run
//   --table-out=PATH   also write the ratio table as markdown to PATH
//   --no-pin           let the scheduler place the processes
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "sleet/sleet.hpp"

#if SLEET_HAVE_BOOST
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_sharable_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/interprocess/sync/sharable_lock.hpp>
#include <boost/unordered_map.hpp>
#endif

#if SLEET_HAVE_LMDB
#include <lmdb.h>
#endif

namespace {

// ---------------------------------------------------------------- settings

constexpr std::uint32_t kEntries = 100'000;
constexpr std::size_t kCapacity = 131'072;
constexpr std::size_t kKeySize = 16;
constexpr std::size_t kValueSize = 64;
constexpr std::size_t kStringValueMax = 72;  // cereal: 8-byte length + 64 chars
constexpr std::uint32_t kReaderKeys = 90'000;  // readers: keys [0, 90000)
constexpr std::uint32_t kWriterFirst = 90'000;  // writer: keys [90000, 100000)
constexpr std::uint32_t kChurnKeys = 65'536;    // cycled; a power of two
constexpr std::uint32_t kChurnWindow = 1'024;   // churn keys live at any time
constexpr int kLmdbCommitEvery = 1'000;
constexpr int kLmdbRenewEvery = 4'096;
constexpr std::size_t kLmdbMapSize = std::size_t{1} << 30;
constexpr std::size_t kBoostSegmentSize = std::size_t{64} << 20;
constexpr int kMaxProcs = 4;

struct Settings {
  bool quick = false;
  bool pin = true;
  int rounds = 0;             // 0: the mode's default
  double mp_seconds = 0;      // 0: the mode's default
  std::string table_out;
  std::string min_time;
};
Settings g_settings;
std::vector<int> g_cpus;  // CPUs this process may run on
pid_t g_parent = 0;

// This thread's CPU time: time it was descheduled (other tenants on the
// VM) does not count, time it stalled on memory does.
std::int64_t cpu_now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

using sleet_bench::now_ns;
using sleet_bench::Shared;

void pin_to_cpu_for(int index) noexcept {
  if (g_settings.pin) sleet_bench::pin_to_cpu_for(g_cpus, index);
}

// ------------------------------------------------------- keys and values

struct Key16 {
  char b[kKeySize];
  std::string_view view() const noexcept { return {b, sizeof b}; }
  friend bool operator==(const Key16& x, const Key16& y) noexcept {
    return std::memcmp(x.b, y.b, sizeof x.b) == 0;
  }
};
static_assert(sizeof(Key16) == 16);

struct KeyHash {
  std::size_t operator()(const Key16& k) const noexcept {
    std::uint64_t a, b;
    std::memcpy(&a, k.b, 8);
    std::memcpy(&b, k.b + 8, 8);
    std::uint64_t h = a * 0x9e3779b97f4a7c15ull;
    h ^= b;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 32;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    return static_cast<std::size_t>(h);
  }
};
struct KeyEq {
  bool operator()(const Key16& x, const Key16& y) const noexcept { return x == y; }
};

// The value: w[0] is the key's index (checked by every hit), w[1] a
// generation the writers bump.
struct Val64 {
  std::uint64_t w[8];
};
static_assert(sizeof(Val64) == kValueSize && std::is_trivially_copyable_v<Val64>);

Val64 make_value(std::uint32_t index, std::uint64_t gen) noexcept {
  Val64 v;
  v.w[0] = index;
  v.w[1] = gen;
  for (int i = 2; i < 8; ++i) v.w[i] = index * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(i);
  return v;
}

Key16 make_key(const char* prefix, std::uint32_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%012u", prefix, index);
  Key16 k;
  std::memcpy(k.b, buf, sizeof k.b);
  return k;
}

// The keys, made once: formatting them in the timed loops would cost more
// than some of the lookups.
struct KeySets {
  std::vector<Key16> hit, miss, churn;
  KeySets() {
    for (std::uint32_t i = 0; i < kEntries; ++i) hit.push_back(make_key("key:", i));
    for (std::uint32_t i = 0; i < kEntries; ++i) miss.push_back(make_key("key:", 500'000'000 + i));
    for (std::uint32_t i = 0; i < kChurnKeys; ++i) churn.push_back(make_key("chr:", i));
  }
};
const KeySets& keys() {
  static const KeySets k;
  return k;
}

// xorshift64*: cheap and good enough to pick keys.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull | 1) {}
  std::uint64_t next() noexcept {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  // Uniform in [0, n) by multiply-shift (no division).
  std::uint32_t below(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>(((next() >> 32) * n) >> 32);
  }
};

// ---------------------------------------------------------- cleanup

// Paths this process created and has not removed yet. The signal handler
// and the atexit handler remove them; a directory is an LMDB environment.
sleet_bench::Cleanup g_registry;
using Kind = sleet_bench::Cleanup::Kind;

// A path under /dev/shm owned by this scope: removed when the scope ends,
// only by the process that made it.
class ScopedPath {
 public:
  ScopedPath(std::string path, bool dir)
      : path_(std::move(path)), kind_(dir ? Kind::kLmdbDir : Kind::kUnlink), slot_(g_registry.add(kind_, path_)) {
    sleet_bench::Cleanup::remove(kind_, path_.c_str());  // a leftover of a crashed run with a recycled pid
  }
  ~ScopedPath() {
    if (::getpid() != g_parent) return;
    sleet_bench::Cleanup::remove(kind_, path_.c_str());
    g_registry.drop(slot_);
  }
  ScopedPath(const ScopedPath&) = delete;
  ScopedPath& operator=(const ScopedPath&) = delete;
  const std::string& str() const noexcept { return path_; }

 private:
  std::string path_;
  Kind kind_;
  int slot_;
};

std::string unique_name(const char* tag) {
  static int counter = 0;
  return "kvb." + std::to_string(::getpid()) + "." + tag + "." + std::to_string(++counter);
}

// ------------------------------------------------------------- contenders
//
// A Store is made and filled once by the parent. A Session is one process's
// (or one benchmark run's) handle on it:
//   bool get(const Key16&, Val64&)     true if found
//   void put(const Key16&, const Val64&)   insert or update
//   bool erase(const Key16&)
//   void tick()                        after each op (LMDB: renew / commit)
// Store::session(use) makes one in the parent, Store::child_session(use) in a
// forked child (opening the store by name).

enum class Use { read, write, reader_process };

// Fills a store with the 100,000 entries, and the churn window if asked.
template <class Session>
void fill(Session& s, bool churn_window) {
  for (std::uint32_t i = 0; i < kEntries; ++i) {
    s.put(keys().hit[i], make_value(i, 0));
    s.tick();
  }
  if (churn_window) {
    for (std::uint32_t i = 0; i < kChurnWindow; ++i) {
      s.put(keys().churn[i], make_value(i, 0));
      s.tick();
    }
  }
}

// --- sleet

class SleetSession {
 public:
  explicit SleetSession(sleet::KvStore kv) : owned_(std::move(kv)), kv_(&owned_) {}
  explicit SleetSession(sleet::KvStore* kv) : kv_(kv) {}
  SleetSession(SleetSession&&) = delete;  // kv_ may point at owned_
  bool get(const Key16& k, Val64& out) {
    auto v = kv_->get<Val64>(k.view());
    if (!v) return false;
    out = *v;
    return true;
  }
  void put(const Key16& k, const Val64& v) { kv_->set(k.view(), v); }
  bool erase(const Key16& k) { return kv_->erase(k.view()); }
  void tick() noexcept {}
  const sleet::KvStore& kv() const noexcept { return *kv_; }

 private:
  sleet::KvStore owned_;
  sleet::KvStore* kv_;
};

class SleetStore {
 public:
  explicit SleetStore(bool churn_window)
      : name_(unique_name("sleet")), path_("/dev/shm/sleet." + name_, false) {
    kv_ = sleet::KvStore::create(name_, {.capacity = kCapacity, .max_key_size = kKeySize,
                                         .max_value_size = kValueSize});
    SleetSession s(&kv_);
    fill(s, churn_window);
  }
  SleetSession session(Use) { return SleetSession(&kv_); }
  SleetSession child_session(Use) { return SleetSession(sleet::KvStore::open(name_)); }
  void before_fork() {}
  // Bytes of the shared memory object.
  std::size_t footprint() const {
    struct stat st{};
    return ::stat(path_.str().c_str(), &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
  }

 private:
  std::string name_;
  ScopedPath path_;
  sleet::KvStore kv_;
};

// --- sleet with a std::string value (cereal codec)

class SleetStringSession {
 public:
  explicit SleetStringSession(sleet::KvStore* kv) : kv_(kv) {}
  bool get(const Key16& k, Val64& out) {
    auto v = kv_->get<std::string>(k.view());
    if (!v || v->size() != kValueSize) return false;
    std::memcpy(&out, v->data(), kValueSize);
    return true;
  }
  void put(const Key16& k, const Val64& v) {
    s_.assign(reinterpret_cast<const char*>(&v), kValueSize);
    kv_->set(k.view(), s_);
  }
  bool erase(const Key16& k) { return kv_->erase(k.view()); }
  void tick() noexcept {}

 private:
  sleet::KvStore* kv_;
  std::string s_;
};

class SleetStringStore {
 public:
  SleetStringStore() : name_(unique_name("sleetstr")), path_("/dev/shm/sleet." + name_, false) {
    kv_ = sleet::KvStore::create(name_, {.capacity = kCapacity, .max_key_size = kKeySize,
                                         .max_value_size = kStringValueMax});
    SleetStringSession s(&kv_);
    fill(s, false);
  }
  SleetStringSession session(Use) { return SleetStringSession(&kv_); }

 private:
  std::string name_;
  ScopedPath path_;
  sleet::KvStore kv_;
};

// --- std::unordered_map under std::shared_mutex (one process)

struct StdMap {
  std::shared_mutex mutex;
  std::unordered_map<Key16, Val64, KeyHash, KeyEq> map;
};

class StdSession {
 public:
  explicit StdSession(StdMap& m) : m_(m) {}
  bool get(const Key16& k, Val64& out) {
    std::shared_lock lock(m_.mutex);
    const auto it = m_.map.find(k);
    if (it == m_.map.end()) return false;
    out = it->second;
    return true;
  }
  void put(const Key16& k, const Val64& v) {
    std::unique_lock lock(m_.mutex);
    m_.map.insert_or_assign(k, v);
  }
  bool erase(const Key16& k) {
    std::unique_lock lock(m_.mutex);
    return m_.map.erase(k) != 0;
  }
  void tick() noexcept {}

 private:
  StdMap& m_;
};

class StdStore {
 public:
  explicit StdStore(bool churn_window) {
    m_.map.reserve(kCapacity);
    StdSession s(m_);
    fill(s, churn_window);
  }
  StdSession session(Use) { return StdSession(m_); }

 private:
  StdMap m_;
};

// --- Boost.Interprocess: boost::unordered_map in managed_shared_memory

#if SLEET_HAVE_BOOST
namespace bip = boost::interprocess;
using BoostAlloc = bip::allocator<std::pair<const Key16, Val64>, bip::managed_shared_memory::segment_manager>;
using BoostMap = boost::unordered_map<Key16, Val64, KeyHash, KeyEq, BoostAlloc>;

struct BoostShared {
  bip::interprocess_sharable_mutex mutex;
  BoostMap map;
  explicit BoostShared(const BoostAlloc& a) : map(kCapacity, KeyHash{}, KeyEq{}, a) {}
};

class BoostSession {
 public:
  BoostSession(BoostShared* shared, std::unique_ptr<bip::managed_shared_memory> seg = nullptr)
      : seg_(std::move(seg)), s_(shared) {}
  bool get(const Key16& k, Val64& out) {
    bip::sharable_lock<bip::interprocess_sharable_mutex> lock(s_->mutex);
    const auto it = s_->map.find(k);
    if (it == s_->map.end()) return false;
    out = it->second;
    return true;
  }
  void put(const Key16& k, const Val64& v) {
    bip::scoped_lock<bip::interprocess_sharable_mutex> lock(s_->mutex);
    const auto it = s_->map.find(k);
    if (it != s_->map.end()) {
      it->second = v;
    } else {
      s_->map.emplace(k, v);
    }
  }
  bool erase(const Key16& k) {
    bip::scoped_lock<bip::interprocess_sharable_mutex> lock(s_->mutex);
    return s_->map.erase(k) != 0;
  }
  void tick() noexcept {}

 private:
  std::unique_ptr<bip::managed_shared_memory> seg_;  // a child's own mapping
  BoostShared* s_;
};

class BoostStore {
 public:
  explicit BoostStore(bool churn_window)
      : name_(unique_name("boost")), path_("/dev/shm/" + name_, false) {
    seg_ = std::make_unique<bip::managed_shared_memory>(bip::create_only, name_.c_str(), kBoostSegmentSize);
    shared_ = seg_->construct<BoostShared>("kv")(BoostAlloc(seg_->get_segment_manager()));
    BoostSession s(shared_);
    fill(s, churn_window);
  }
  ~BoostStore() {
    seg_.reset();
    bip::shared_memory_object::remove(name_.c_str());
  }
  BoostSession session(Use) { return BoostSession(shared_); }
  BoostSession child_session(Use) {
    auto seg = std::make_unique<bip::managed_shared_memory>(bip::open_only, name_.c_str());
    BoostShared* s = seg->find<BoostShared>("kv").first;
    if (s == nullptr) throw std::runtime_error("boost: map not found in " + name_);
    return BoostSession(s, std::move(seg));
  }
  void before_fork() {}
  // Bytes of the segment in use (nodes, buckets, allocator headers).
  std::size_t footprint() const { return seg_->get_size() - seg_->get_free_memory(); }

 private:
  std::string name_;
  ScopedPath path_;
  std::unique_ptr<bip::managed_shared_memory> seg_;
  BoostShared* shared_ = nullptr;
};
#endif

// --- LMDB on tmpfs

#if SLEET_HAVE_LMDB
void lmdb_check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) throw std::runtime_error(std::string("lmdb ") + what + ": " + mdb_strerror(rc));
}

struct LmdbEnv {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  explicit LmdbEnv(const std::string& dir) {
    lmdb_check(mdb_env_create(&env), "env_create");
    try {
      lmdb_check(mdb_env_set_mapsize(env, kLmdbMapSize), "set_mapsize");
      lmdb_check(mdb_env_set_maxreaders(env, 126), "set_maxreaders");
      lmdb_check(mdb_env_open(env, dir.c_str(), MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP, 0600), "env_open");
      // Read-only: the main database always exists, and a write transaction
      // here would wait for a writer process parked at the barrier.
      MDB_txn* txn = nullptr;
      lmdb_check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "txn_begin");
      const int rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
      if (rc != MDB_SUCCESS) mdb_txn_abort(txn);
      lmdb_check(rc, "dbi_open");
      lmdb_check(mdb_txn_commit(txn), "txn_commit");
    } catch (...) {
      mdb_env_close(env);
      throw;
    }
  }
  ~LmdbEnv() { mdb_env_close(env); }
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;
};

class LmdbSession {
 public:
  LmdbSession(MDB_env* env, MDB_dbi dbi, Use use, std::unique_ptr<LmdbEnv> own = nullptr)
      : own_(std::move(own)), env_(env), dbi_(dbi), use_(use) {
    lmdb_check(mdb_txn_begin(env_, nullptr, use_ == Use::write ? 0 : MDB_RDONLY, &txn_), "txn_begin");
  }
  LmdbSession(LmdbSession&& o) noexcept
      : own_(std::move(o.own_)), env_(o.env_), dbi_(o.dbi_), use_(o.use_), txn_(o.txn_), n_(o.n_) {
    o.txn_ = nullptr;
  }
  ~LmdbSession() {
    if (txn_ == nullptr) return;
    if (use_ == Use::write) {
      mdb_txn_commit(txn_);
    } else {
      mdb_txn_abort(txn_);
    }
  }
  bool get(const Key16& k, Val64& out) {
    MDB_val key{sizeof k.b, const_cast<char*>(k.b)}, val{};
    const int rc = mdb_get(txn_, dbi_, &key, &val);
    if (rc == MDB_NOTFOUND) return false;
    lmdb_check(rc, "get");
    if (val.mv_size != sizeof out) return false;
    std::memcpy(&out, val.mv_data, sizeof out);
    return true;
  }
  void put(const Key16& k, const Val64& v) {
    MDB_val key{sizeof k.b, const_cast<char*>(k.b)}, val{sizeof v, const_cast<Val64*>(&v)};
    lmdb_check(mdb_put(txn_, dbi_, &key, &val, 0), "put");
    write_done();
  }
  bool erase(const Key16& k) {
    MDB_val key{sizeof k.b, const_cast<char*>(k.b)};
    const int rc = mdb_del(txn_, dbi_, &key, nullptr);
    if (rc == MDB_NOTFOUND) return false;
    lmdb_check(rc, "del");
    write_done();
    return true;
  }
  // Reader processes renew their snapshot every kLmdbRenewEvery gets.
  void tick() {
    if (use_ == Use::reader_process && ++n_ % kLmdbRenewEvery == 0) {
      mdb_txn_reset(txn_);
      lmdb_check(mdb_txn_renew(txn_), "txn_renew");
    }
  }

 private:
  void write_done() {
    if (++n_ % kLmdbCommitEvery != 0) return;
    MDB_txn* t = txn_;
    txn_ = nullptr;
    lmdb_check(mdb_txn_commit(t), "txn_commit");
    lmdb_check(mdb_txn_begin(env_, nullptr, 0, &txn_), "txn_begin");
  }

  std::unique_ptr<LmdbEnv> own_;  // a child's own environment
  MDB_env* env_;
  MDB_dbi dbi_;
  Use use_;
  MDB_txn* txn_ = nullptr;
  std::uint64_t n_ = 0;
};

class LmdbStore {
 public:
  explicit LmdbStore(bool churn_window) : dir_("/dev/shm/" + unique_name("lmdb"), true) {
    if (::mkdir(dir_.str().c_str(), 0700) != 0) {
      throw std::system_error(errno, std::generic_category(), "mkdir " + dir_.str());
    }
    {
      LmdbSession s = session(Use::write);
      fill(s, churn_window);
    }
  }
  ~LmdbStore() { env_.reset(); }  // before ScopedPath removes the files
  LmdbSession session(Use use) {
    if (!env_) env_ = std::make_unique<LmdbEnv>(dir_.str());
    return LmdbSession(env_->env, env_->dbi, use);
  }
  LmdbSession child_session(Use use) {
    auto env = std::make_unique<LmdbEnv>(dir_.str());
    MDB_env* e = env->env;
    const MDB_dbi dbi = env->dbi;
    return LmdbSession(e, dbi, use == Use::read ? Use::reader_process : use, std::move(env));
  }
  // LMDB: an environment must not be used across fork(); close ours, reopen later.
  void before_fork() { env_.reset(); }
  // Bytes of the pages in use (up to the last page number).
  std::size_t footprint() {
    if (!env_) env_ = std::make_unique<LmdbEnv>(dir_.str());
    MDB_envinfo info{};
    MDB_stat st{};
    if (mdb_env_info(env_->env, &info) != 0 || mdb_env_stat(env_->env, &st) != 0) return 0;
    return (info.me_last_pgno + 1) * static_cast<std::size_t>(st.ms_psize);
  }

 private:
  ScopedPath dir_;
  std::unique_ptr<LmdbEnv> env_;
};
#endif

// ------------------------------------------------------------- the stores

struct Stores {
  std::unique_ptr<SleetStore> sleet, sleet_churn;
  std::unique_ptr<SleetStringStore> sleet_str;
  std::unique_ptr<StdStore> stdmap, stdmap_churn;
#if SLEET_HAVE_BOOST
  std::unique_ptr<BoostStore> boost, boost_churn;
#endif
#if SLEET_HAVE_LMDB
  std::unique_ptr<LmdbStore> lmdb, lmdb_churn;
#endif
  std::map<std::string, std::int64_t> mp_ops;  // gets per reader process, by contender
  std::map<std::string, std::size_t> footprint;  // bytes of the filled store, by contender
};
Stores g_stores;

// Churn cursor per store: the next churn key to insert (survives runs).
std::map<const void*, std::uint32_t> g_churn_cursor;

// ------------------------------------------------------ one-process rows

struct HitCheck {
  std::uint64_t bad = 0;
  std::uint64_t sum = 0;
};

// Gets of uniformly random present keys among the first `range`.
template <class Store>
void get_hits(benchmark::State& state, Store* store, std::uint32_t range, std::uint64_t seed) {
  auto s = store->session(Use::read);
  Rng rng(seed);
  HitCheck c;
  Val64 v{};
  for (auto _ : state) {
    const std::uint32_t i = rng.below(range);
    if (!s.get(keys().hit[i], v) || v.w[0] != i) ++c.bad;
    c.sum += v.w[1];
    s.tick();
  }
  benchmark::DoNotOptimize(c.sum);
  if (c.bad) state.SkipWithError("get hit: a key was missing or had the wrong value");
  state.SetItemsProcessed(state.iterations());
}

template <class Store>
void BM_GetHit(benchmark::State& state, Store* store) {
  get_hits(state, store, kEntries, 1);
}

// A hot set: the first kHotKeys keys only (their lines fit in L2).
constexpr std::uint32_t kHotKeys = 1000;
template <class Store>
void BM_GetHot(benchmark::State& state, Store* store) {
  get_hits(state, store, kHotKeys, 5);
}

// sleet's batch get: kManyBatch random present keys per get_many() call
// (one item = one key, so the rate compares with GetHit's).
constexpr std::size_t kManyBatch = 16;
void BM_GetMany(benchmark::State& state, SleetStore* store) {
  auto s = store->session(Use::read);
  Rng rng(6);
  HitCheck c;
  std::string_view batch[kManyBatch];
  std::uint32_t idx[kManyBatch];
  for (auto _ : state) {
    for (std::size_t j = 0; j < kManyBatch; ++j) {
      idx[j] = rng.below(kEntries);
      batch[j] = keys().hit[idx[j]].view();
    }
    s.kv().get_many<Val64>(batch, [&](std::size_t j, std::optional<Val64> v) {
      if (!v || v->w[0] != idx[j]) ++c.bad;
      c.sum += v ? v->w[1] : 0;
    });
  }
  benchmark::DoNotOptimize(c.sum);
  if (c.bad) state.SkipWithError("get_many: a key was missing or had the wrong value");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kManyBatch));
}

template <class Store>
void BM_GetMiss(benchmark::State& state, Store* store) {
  auto s = store->session(Use::read);
  Rng rng(2);
  std::uint64_t found = 0;
  Val64 v{};
  for (auto _ : state) {
    const std::uint32_t i = rng.below(kEntries);
    found += s.get(keys().miss[i], v);
    s.tick();
  }
  if (found) state.SkipWithError("get miss: an absent key was found");
  state.SetItemsProcessed(state.iterations());
}

template <class Store>
void BM_Set(benchmark::State& state, Store* store) {
  auto s = store->session(Use::write);
  Rng rng(3);
  std::uint64_t gen = 1;
  for (auto _ : state) {
    const std::uint32_t i = rng.below(kEntries);
    s.put(keys().hit[i], make_value(i, gen++));
    s.tick();
  }
  state.SetItemsProcessed(state.iterations());
}

// One item: insert the next churn key, erase the one inserted kChurnWindow
// items ago (so the store holds 100,000 + 1,024 keys throughout).
template <class Store>
void BM_Churn(benchmark::State& state, Store* store) {
  auto s = store->session(Use::write);
  std::uint32_t& cursor = g_churn_cursor.try_emplace(store, kChurnWindow).first->second;
  std::uint64_t lost = 0;
  for (auto _ : state) {
    s.put(keys().churn[cursor & (kChurnKeys - 1)], make_value(cursor, 0));
    s.tick();
    lost += !s.erase(keys().churn[(cursor - kChurnWindow) & (kChurnKeys - 1)]);
    s.tick();
    ++cursor;
  }
  if (lost) state.SkipWithError("churn: a key to erase was missing");
  state.SetItemsProcessed(state.iterations());
}

template <class Store>
void BM_Mix(benchmark::State& state, Store* store) {
  auto s = store->session(Use::write);
  Rng rng(4);
  HitCheck c;
  std::uint64_t gen = 1;
  Val64 v{};
  for (auto _ : state) {
    const std::uint64_t r = rng.next();
    const auto i = static_cast<std::uint32_t>(((r >> 32) * kEntries) >> 32);
    if ((r & 0xffff) < 6554) {  // 10% of 65536
      s.put(keys().hit[i], make_value(i, gen++));
    } else {
      if (!s.get(keys().hit[i], v) || v.w[0] != i) ++c.bad;
      c.sum += v.w[1];
    }
    s.tick();
  }
  benchmark::DoNotOptimize(c.sum);
  if (c.bad) state.SkipWithError("mix: a key was missing or had the wrong value");
  state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------- multi-process rows

struct Ctrl {
  alignas(128) std::atomic<int> ready{0};  // processes at the barrier
  alignas(128) std::atomic<int> go{0};     // set once every process is ready
  alignas(128) std::atomic<int> readers_done{0};
  alignas(128) std::atomic<int> failed{0};
  std::atomic<int> error_set{0};
  char error[256] = {};
  struct alignas(128) Proc {
    std::atomic<std::int64_t> start_ns{0}, end_ns{0}, ops{0};
    std::atomic<std::int64_t> cpu_ns{0};  // CPU time of the timed part
    std::atomic<std::uint64_t> sum{0};
  };
  Proc proc[kMaxProcs];

  void fail(const char* what) noexcept {
    if (error_set.exchange(1, std::memory_order_acq_rel) == 0) std::snprintf(error, sizeof error, "%s", what);
    // release: the message is written before anyone sees `failed`.
    failed.store(1, std::memory_order_release);
  }
  // The barrier: returns when every process has arrived.
  bool arrive_and_wait() noexcept {
    ready.fetch_add(1, std::memory_order_acq_rel);
    // acquire: pairs with the parent's release store of `go`.
    while (!go.load(std::memory_order_acquire)) {
      if (failed.load(std::memory_order_relaxed)) return false;
      ::sched_yield();  // processes may outnumber CPUs
    }
    return true;
  }
};

struct MpResult {
  double seconds = 0;            // first reader start to last reader finish
  std::int64_t reader_ops = 0;   // all readers
  double ops_per_cpu_s = 0;      // sum over readers of gets / own CPU seconds
  double cpu_share = 0;          // mean over readers of CPU time / wall time
  std::int64_t writer_ops = 0;
  double writer_seconds = 0;
};

// Forks `readers` reader processes and, if `writer`, one writer process;
// returns once all are reaped. Throws std::runtime_error on any failure.
template <class Store>
MpResult run_processes(Store& store, int readers, bool writer, std::int64_t ops_per_reader) {
  // Time cap for one reader: a reader that is starved (the Boost map under a
  // writer) stops early and reports the gets it did.
  const double cap_s = g_settings.mp_seconds * 3 + 0.1;
  Shared<Ctrl> c;
  const int n = readers + (writer ? 1 : 0);
  store.before_fork();
  std::fflush(nullptr);  // nothing buffered may be written twice
  std::vector<pid_t> pids;
  for (int p = 0; p < n; ++p) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      c->fail("fork failed");
      break;
    }
    if (pid != 0) {
      pids.push_back(pid);
      continue;
    }
    // ---- child
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != g_parent) ::_exit(3);
    ::alarm(static_cast<unsigned>(cap_s * 4 + 60));  // last resort against a hang
    pin_to_cpu_for(p);
    Ctrl::Proc& me = c->proc[p];
    try {
      if (p < readers) {
        auto s = store.child_session(Use::read);
        Val64 v{};
        std::uint64_t bad = 0, sum = 0;
        for (std::uint32_t i = 0; i < kReaderKeys; ++i) {  // warm-up: faults and caches
          if (!s.get(keys().hit[i], v) || v.w[0] != i) ++bad;
          s.tick();
        }
        if (c->arrive_and_wait()) {
          Rng rng(100 + static_cast<std::uint64_t>(p));
          const std::int64_t start = now_ns();
          const std::int64_t deadline = start + static_cast<std::int64_t>(cap_s * 1e9);
          me.start_ns.store(start, std::memory_order_relaxed);
          const std::int64_t cpu0 = cpu_now_ns();
          std::int64_t done = 0;
          while (done < ops_per_reader) {
            const std::int64_t batch = std::min<std::int64_t>(4096, ops_per_reader - done);
            for (std::int64_t k = 0; k < batch; ++k) {
              const std::uint32_t i = rng.below(kReaderKeys);
              if (!s.get(keys().hit[i], v) || v.w[0] != i) ++bad;
              sum += v.w[1];
              s.tick();
            }
            done += batch;
            if (now_ns() > deadline) break;
          }
          me.end_ns.store(now_ns(), std::memory_order_relaxed);
          me.cpu_ns.store(cpu_now_ns() - cpu0, std::memory_order_relaxed);
          me.ops.store(done, std::memory_order_relaxed);
          me.sum.store(sum, std::memory_order_relaxed);
        }
        // release: this reader's results are stored before the writer (or
        // the parent) sees the count.
        c->readers_done.fetch_add(1, std::memory_order_release);
        if (bad) c->fail("reader: a key was missing or had the wrong value");
      } else {
        auto s = store.child_session(Use::write);
        constexpr std::uint32_t span = kEntries - kWriterFirst;
        if (c->arrive_and_wait()) {
          Rng rng(200);
          std::uint64_t gen = 1;
          std::int64_t done = 0;
          const std::int64_t start = now_ns();
          me.start_ns.store(start, std::memory_order_relaxed);
          // acquire: pairs with the readers' release increments.
          while (c->readers_done.load(std::memory_order_acquire) < readers &&
                 !c->failed.load(std::memory_order_relaxed)) {
            for (int k = 0; k < 64; ++k) {
              const std::uint32_t i = kWriterFirst + rng.below(span);
              s.put(keys().hit[i], make_value(i, gen++));
              s.tick();
            }
            done += 64;
          }
          me.end_ns.store(now_ns(), std::memory_order_relaxed);
          me.ops.store(done, std::memory_order_relaxed);
        }
      }
    } catch (const std::exception& e) {
      c->fail(e.what());
      c->readers_done.fetch_add(1, std::memory_order_release);
    } catch (...) {
      c->fail("unknown exception");
      c->readers_done.fetch_add(1, std::memory_order_release);
    }
    ::_exit(c->failed.load(std::memory_order_acquire) ? 1 : 0);
  }

  // ---- parent: release the barrier once everyone is there, then reap.
  std::vector<pid_t> live = pids;
  auto reap = [&](pid_t pid, int status) {
    live.erase(std::remove(live.begin(), live.end(), pid), live.end());
    if (WIFSIGNALED(status)) {
      char msg[96];
      std::snprintf(msg, sizeof msg, "process %d killed by signal %d", static_cast<int>(pid), WTERMSIG(status));
      c->fail(msg);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && !c->failed.load(std::memory_order_acquire)) {
      c->fail("a benchmark process exited with an error");
    }
  };
  if (static_cast<int>(pids.size()) == n) {
    const std::int64_t limit = now_ns() + 60'000'000'000;  // 60 s to open and warm up
    while (c->ready.load(std::memory_order_acquire) < n && !c->failed.load(std::memory_order_acquire)) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0 && std::find(live.begin(), live.end(), pid) != live.end()) {
        reap(pid, status);
        if (!c->failed.load(std::memory_order_acquire)) c->fail("a benchmark process exited before the start");
        break;
      }
      if (now_ns() > limit) {
        c->fail("benchmark processes did not reach the barrier within 60 s");
        break;
      }
      ::usleep(100);
    }
  }
  // release: pairs with the acquire in arrive_and_wait(). On failure the
  // children see `failed` instead and leave.
  c->go.store(1, std::memory_order_release);
  while (!live.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing left
    }
    if (std::find(live.begin(), live.end(), pid) != live.end()) reap(pid, status);
  }
  if (c->failed.load(std::memory_order_acquire)) throw std::runtime_error(c->error);

  MpResult r;
  std::int64_t first = INT64_MAX, last = 0;
  for (int p = 0; p < readers; ++p) {
    first = std::min(first, c->proc[p].start_ns.load(std::memory_order_relaxed));
    last = std::max(last, c->proc[p].end_ns.load(std::memory_order_relaxed));
    const auto& q = c->proc[p];
    const std::int64_t ops = q.ops.load(std::memory_order_relaxed);
    const auto cpu = static_cast<double>(q.cpu_ns.load(std::memory_order_relaxed)) * 1e-9;
    const auto wall = static_cast<double>(q.end_ns.load(std::memory_order_relaxed) -
                                          q.start_ns.load(std::memory_order_relaxed)) * 1e-9;
    r.reader_ops += ops;
    if (cpu > 0) r.ops_per_cpu_s += static_cast<double>(ops) / cpu;
    if (wall > 0) r.cpu_share += cpu / wall / readers;
  }
  if (first == INT64_MAX || last <= first) throw std::runtime_error("a reader did not record its time");
  r.seconds = static_cast<double>(last - first) * 1e-9;
  if (writer) {
    const auto& w = c->proc[readers];
    r.writer_ops = w.ops.load(std::memory_order_relaxed);
    r.writer_seconds = static_cast<double>(w.end_ns.load(std::memory_order_relaxed) -
                                           w.start_ns.load(std::memory_order_relaxed)) * 1e-9;
  }
  return r;
}

template <class Store>
void BM_Readers(benchmark::State& state, Store* store, const std::string& who, int readers, bool writer) {
  const std::int64_t ops = g_stores.mp_ops.at(who);
  try {
    for (auto _ : state) {
      const MpResult r = run_processes(*store, readers, writer, ops);
      state.SetIterationTime(r.seconds);
      state.counters["items_per_second"] = static_cast<double>(r.reader_ops) / r.seconds;
      state.counters["per_reader/s"] = static_cast<double>(r.reader_ops) / r.seconds / readers;
      state.counters["gets/reader"] = static_cast<double>(r.reader_ops) / readers;
      state.counters["items_per_cpu_second"] = r.ops_per_cpu_s;
      state.counters["cpu_share"] = r.cpu_share;
      if (writer && r.writer_seconds > 0) {
        state.counters["writer_sets/s"] = static_cast<double>(r.writer_ops) / r.writer_seconds;
      }
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Gets per second of one process on a fresh session (calibrates the
// multi-process rows so that each lasts about --mp-seconds).
template <class Store>
std::int64_t calibrate(Store& store) {
  auto s = store.session(Use::read);
  Rng rng(9);
  Val64 v{};
  std::uint64_t sum = 0;
  for (std::uint32_t i = 0; i < kReaderKeys; ++i) s.get(keys().hit[i], v);  // warm
  constexpr int kN = 200'000;
  const std::int64_t t0 = now_ns();
  for (int k = 0; k < kN; ++k) {
    s.get(keys().hit[rng.below(kReaderKeys)], v);
    sum += v.w[1];
    s.tick();
  }
  const double secs = static_cast<double>(now_ns() - t0) * 1e-9;
  benchmark::DoNotOptimize(sum);
  const double rate = kN / std::max(secs, 1e-6);
  return std::max<std::int64_t>(20'000, static_cast<std::int64_t>(rate * g_settings.mp_seconds));
}

// ------------------------------------------------------------- row names

const char* kSleet = "sleet";
const char* kStd = "std";
const char* kBoost = "boost";
const char* kLmdb = "lmdb";

std::string row(const std::string& op, const std::string& who) { return "BM_Kv_" + op + "/" + who; }
std::string mp_row(const std::string& who, int readers, bool writer) {
  return "BM_Kv_Procs/" + who + "/readers:" + std::to_string(readers) + (writer ? "+writer" : "");
}

struct Row {
  std::string name;
  std::function<void(benchmark::State&)> fn;
  bool manual_time = false;
  bool target = false;  // needed by a target: also run in --quick
};

// The one-process rows of one contender, in the order of kSingleOps.
const char* const kSingleOps[] = {"GetHit", "GetMiss", "Set", "Churn", "Mix90_10", "GetMissAfterChurn", "GetHot"};

template <class Store>
std::vector<Row> single_rows(const std::string& who, Store* main, Store* churn, bool targets_get,
                             bool targets_set) {
  return {
      {row("GetHit", who), [main](benchmark::State& s) { BM_GetHit(s, main); }, false, targets_get},
      {row("GetMiss", who), [main](benchmark::State& s) { BM_GetMiss(s, main); }},
      {row("Set", who), [main](benchmark::State& s) { BM_Set(s, main); }, false, targets_set},
      {row("Churn", who), [churn](benchmark::State& s) { BM_Churn(s, churn); }},
      {row("Mix90_10", who), [main](benchmark::State& s) { BM_Mix(s, main); }},
      {row("GetMissAfterChurn", who), [churn](benchmark::State& s) { BM_GetMiss(s, churn); }},
      {row("GetHot", who), [main](benchmark::State& s) { BM_GetHot(s, main); }, false, targets_get},
  };
}

// 1 reader, 2 readers, 1 reader + writer, 2 readers + writer.
template <class Store>
std::vector<Row> mp_rows(const std::string& who, Store* store, bool targets) {
  return {
      {mp_row(who, 1, false), [=](benchmark::State& s) { BM_Readers(s, store, who, 1, false); }, true, targets},
      {mp_row(who, 2, false), [=](benchmark::State& s) { BM_Readers(s, store, who, 2, false); }, true, targets},
      {mp_row(who, 1, true), [=](benchmark::State& s) { BM_Readers(s, store, who, 1, true); }, true, targets},
      {mp_row(who, 2, true), [=](benchmark::State& s) { BM_Readers(s, store, who, 2, true); }, true, false},
  };
}

// Every row in the order it runs within a round: for each operation the
// baselines, then sleet, back to back.
std::vector<Row> all_rows() {
  auto& st = g_stores;
  std::vector<std::vector<Row>> single, multi;
#if SLEET_HAVE_LMDB
  single.push_back(single_rows(kLmdb, st.lmdb.get(), st.lmdb_churn.get(), true, false));
  multi.push_back(mp_rows(kLmdb, st.lmdb.get(), true));
#endif
#if SLEET_HAVE_BOOST
  single.push_back(single_rows(kBoost, st.boost.get(), st.boost_churn.get(), true, true));
  multi.push_back(mp_rows(kBoost, st.boost.get(), true));
#endif
  single.push_back(single_rows(kStd, st.stdmap.get(), st.stdmap_churn.get(), false, false));
  single.push_back(single_rows(kSleet, st.sleet.get(), st.sleet_churn.get(), true, true));
  multi.push_back(mp_rows(kSleet, st.sleet.get(), true));

  std::vector<Row> rows;
  for (std::size_t op = 0; op < std::size(kSingleOps); ++op) {
    for (auto& contender : single) rows.push_back(contender[op]);
    if (op == 0 || op == 2) {  // the string-valued sleet rows next to their raw twins
      SleetStringStore* s = st.sleet_str.get();
      if (op == 0) {
        rows.push_back({row("GetHit", "sleet-string"), [s](benchmark::State& b) { BM_GetHit(b, s); }});
        SleetStore* raw = st.sleet.get();
        rows.push_back({row("GetMany", kSleet), [raw](benchmark::State& b) { BM_GetMany(b, raw); }});
      } else {
        rows.push_back({row("Set", "sleet-string"), [s](benchmark::State& b) { BM_Set(b, s); }});
      }
    }
  }
  for (std::size_t k = 0; k < 4; ++k) {
    for (auto& contender : multi) rows.push_back(contender[k]);
  }
  return rows;
}

// -------------------------------------------------------- results

struct Sample {
  double items_ps = NAN;
  double cpu_items_ps = NAN;  // items per CPU second (see cpu_now_ns())
  double share = NAN;         // CPU time / wall time (readers: their mean)
  std::map<std::string, double> counters;
};
struct Series {
  std::map<int, std::vector<Sample>> by_round;
  std::string error;
};
std::map<std::string, Series> g_results;

class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) collect(r);
    ConsoleReporter::ReportRuns(runs);
  }

 private:
  static void collect(const Run& r) {
    if (r.run_type != Run::RT_Iteration) return;
    std::string name = r.run_name.function_name;
    int round = -1;
    if (const auto pos = name.rfind("/round:"); pos != std::string::npos) {
      round = std::atoi(name.c_str() + pos + 7);
      name.resize(pos);
    }
    Series& s = g_results[name];
    if (r.error_occurred) {
      s.error = r.error_message;
      return;
    }
    Sample x;
    for (const auto& [k, v] : r.counters) x.counters[k] = v.value;
    if (auto it = x.counters.find("items_per_second"); it != x.counters.end()) x.items_ps = it->second;
    if (auto it = x.counters.find("items_per_cpu_second"); it != x.counters.end()) {
      x.cpu_items_ps = it->second;  // multi-process rows: the readers' own CPU time
    } else if (r.cpu_accumulated_time > 0) {
      x.cpu_items_ps = static_cast<double>(r.iterations) / r.cpu_accumulated_time;
    }
    if (auto it = x.counters.find("cpu_share"); it != x.counters.end()) {
      x.share = it->second;
    } else if (r.real_accumulated_time > 0) {
      x.share = r.cpu_accumulated_time / r.real_accumulated_time;
    }
    s.by_round[round].push_back(std::move(x));
  }
};

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

double metric(const Sample& s, const std::string& counter) {
  if (counter.empty()) return s.items_ps;
  const auto it = s.counters.find(counter);
  return it == s.counters.end() ? NAN : it->second;
}

std::vector<double> all_values(const std::string& row_name, const std::string& counter = "") {
  std::vector<double> v;
  const auto it = g_results.find(row_name);
  if (it == g_results.end()) return v;
  for (const auto& [round, samples] : it->second.by_round) {
    for (const auto& s : samples) {
      const double x = metric(s, counter);
      if (!std::isnan(x)) v.push_back(x);
    }
  }
  return v;
}

std::optional<double> value_of(const std::string& row_name, const std::string& counter = "") {
  const double m = median(all_values(row_name, counter));
  if (std::isnan(m)) return std::nullopt;
  return m;
}

struct Ratio {
  double median = NAN, lo = NAN, hi = NAN;
  int pairs = 0;   // rounds used
  int rounds = 0;  // rounds in which both rows ran
};

// a / b: the median of the per-round ratios.
// wall: wall-clock rates, every round. cpu: rates per CPU second. quiet:
// wall-clock rates, only the rounds in which both rows ran with at least
// kQuietShare of a CPU (nothing else competed for it).
enum class Basis { wall, cpu, quiet };
constexpr double kQuietShare = 0.9;

std::optional<Ratio> ratio_of(const std::string& a, const std::string& b, Basis basis = Basis::wall) {
  const auto ia = g_results.find(a), ib = g_results.find(b);
  if (ia == g_results.end() || ib == g_results.end()) return std::nullopt;
  std::vector<double> r;
  int rounds = 0;
  for (const auto& [round, samples] : ia->second.by_round) {
    const auto jt = ib->second.by_round.find(round);
    if (jt == ib->second.by_round.end()) continue;
    ++rounds;
    std::vector<double> xa, xb;
    bool quiet = true;
    for (const auto& s : samples) {
      xa.push_back(basis == Basis::cpu ? s.cpu_items_ps : s.items_ps);
      quiet = quiet && s.share >= kQuietShare;
    }
    for (const auto& s : jt->second) {
      xb.push_back(basis == Basis::cpu ? s.cpu_items_ps : s.items_ps);
      quiet = quiet && s.share >= kQuietShare;
    }
    if (basis == Basis::quiet && !quiet) continue;
    const double x = median(xa), y = median(xb);
    if (!std::isnan(x) && !std::isnan(y) && y != 0) r.push_back(x / y);
  }
  if (r.empty()) return std::nullopt;
  Ratio out;
  out.rounds = rounds;
  out.median = median(r);
  out.lo = *std::min_element(r.begin(), r.end());
  out.hi = *std::max_element(r.begin(), r.end());
  out.pairs = static_cast<int>(r.size());
  return out;
}

// ------------------------------------------------------------- the table

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string fmt_rate(std::optional<double> v) {
  if (!v) return "n/a";
  if (*v >= 1e6) return fmt("%.2f M/s", *v / 1e6);
  return fmt("%.0f k/s", *v / 1e3);
}
std::string fmt_x(double v) {
  if (std::isnan(v)) return "n/a";
  return v >= 100 ? fmt("%.0fx", v) : v >= 10 ? fmt("%.1fx", v) : fmt("%.2fx", v);
}
std::string fmt_ratio(const std::optional<Ratio>& r) {
  if (!r) return "n/a";
  std::string s = fmt_x(r->median);
  std::string range = r->pairs > 1 ? fmt_x(r->lo) + "–" + fmt_x(r->hi) : "";
  if (r->pairs < r->rounds) {
    range += (range.empty() ? "" : ", ") + std::to_string(r->pairs) + " of " + std::to_string(r->rounds) + " rounds";
  }
  if (!range.empty()) s += " (" + range + ")";
  return s;
}
std::string fmt_quiet(const std::optional<Ratio>& r) { return r ? fmt_ratio(r) : "no quiet round"; }
std::string shown(const std::string& row_name, const std::string& counter = "") {
  const auto it = g_results.find(row_name);
  if (it == g_results.end()) return "n/a";
  if (!it->second.error.empty() && it->second.by_round.empty()) return "error: " + it->second.error;
  return fmt_rate(value_of(row_name, counter));
}

// Median share of wall time the readers of a row were on a CPU.
std::string share(const std::string& row_name) {
  const auto v = value_of(row_name, "cpu_share");
  return v ? fmt("%.2f", *v) : "n/a";
}

// PASS/MISS against `goal` (the ratio must reach it), with the margin.
std::string verdict(const std::optional<Ratio>& r, double goal) {
  if (!r || std::isnan(r->median)) return "n/a";
  if (r->median >= goal) return "**PASS** (" + fmt_x(r->median / goal) + " of goal)";
  return "**MISS** (" + fmt("%.0f%%", (1 - r->median / goal) * 100) + " short)";
}

std::string read_first_line(const char* path, const char* key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (key == nullptr) return line;
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string g_load_before;
double g_wall_seconds = 0;

struct TargetLine {
  std::string what, a, b;
  double goal;
};

std::vector<TargetLine> targets() {
  return {
      {"get hit from another process: sleet vs LMDB (1 reader process each)", mp_row(kSleet, 1, false),
       mp_row(kLmdb, 1, false), 3.0},
      {"get hit from another process: sleet vs Boost.Interprocess map (1 reader process each)",
       mp_row(kSleet, 1, false), mp_row(kBoost, 1, false), 2.0},
      {"get hit, one process: sleet vs LMDB get (one long read txn)", row("GetHit", kSleet), row("GetHit", kLmdb), 3.0},
      {"get hit, one process: sleet vs Boost.Interprocess map", row("GetHit", kSleet), row("GetHit", kBoost), 2.0},
      {"hot set of 1,000 keys: sleet vs LMDB (one long read txn)", row("GetHot", kSleet), row("GetHot", kLmdb), 10.0},
      {"2 reader processes vs 1 reader process (sleet)", mp_row(kSleet, 2, false), mp_row(kSleet, 1, false), 1.8},
      {"set (update): sleet vs Boost.Interprocess map put", row("Set", kSleet), row("Set", kBoost), 2.0},
      {"reader with 1 writer process on other keys vs reader solo (sleet)", mp_row(kSleet, 1, true),
       mp_row(kSleet, 1, false), 0.9},
  };
}

std::string make_table() {
  std::ostringstream o;
  utsname u{};
  ::uname(&u);
#if defined(__clang__)
  const std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = "g++ " __VERSION__;
#else
  const std::string compiler = "unknown";
#endif
  o << "## sleet kv_bench: ratios and targets\n\n";
  o << "| | |\n|---|---|\n";
  o << "| CPU | " << read_first_line("/proc/cpuinfo", "model name") << ", " << g_cpus.size() << " usable CPUs |\n";
  o << "| kernel | " << u.sysname << " " << u.release << " " << u.machine << " |\n";
  o << "| compiler | " << compiler << " |\n";
  o << "| run | " << (g_settings.quick ? "--quick" : "full") << ", min_time " << g_settings.min_time << " s, "
    << g_settings.rounds << " rounds, multi-process runs of about " << g_settings.mp_seconds << " s, processes "
    << (g_settings.pin ? "pinned to distinct CPUs" : "not pinned") << ", " << fmt("%.0f", g_wall_seconds)
    << " s wall |\n";
  o << "| load average | before " << g_load_before << "; after " << read_first_line("/proc/loadavg", nullptr)
    << " |\n";
  o << "| data | 100,000 entries, 16-byte keys, 64-byte values (trivially copyable struct), sleet capacity "
       "131072, max_key_size 16, max_value_size 64 |\n";
  o << "| memory of the filled store |";
  for (const auto& [who, bytes] : g_stores.footprint) {
    o << " " << who << " " << fmt("%.1f MiB", static_cast<double>(bytes) / (1 << 20)) << ";";
  }
  o << " all in 4 KiB pages of tmpfs (shmem transparent huge pages: "
    << read_first_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", nullptr) << ") |\n";
  {
    std::size_t mine = 0, boost = 0;
    for (const auto& [who, bytes] : g_stores.footprint) {
      if (who == kSleet) mine = bytes;
      if (who == kBoost) boost = bytes;
    }
    if (mine && boost) {
      const double r = static_cast<double>(mine) / static_cast<double>(boost);
      o << "| memory: sleet / Boost.Interprocess map | " << fmt("%.2fx", r) << " (goal ≤ 1.50x: "
        << (r <= 1.5 ? "**PASS**" : "**MISS**") << "); sleet " << fmt("%.1f", static_cast<double>(mine) / 100000.0)
        << " bytes per entry |\n";
    }
  }
  o << "| LMDB | /dev/shm, MDB_NOSYNC\\|MDB_NOMETASYNC\\|MDB_WRITEMAP; one-process gets: one long read txn per "
       "run; reader processes: txn reset+renew every "
    << kLmdbRenewEvery << " gets; writes: commit every " << kLmdbCommitEvery << " writes |\n\n";
#if !SLEET_HAVE_BOOST
  o << "> Boost.Interprocess headers were not found at build time: the Boost rows and targets are n/a.\n\n";
#endif
#if !SLEET_HAVE_LMDB
  o << "> LMDB (lmdb.h / liblmdb) was not found at build time: the LMDB rows and targets are n/a.\n\n";
#endif

  o << "### Targets\n\n";
  o << "Ratio = first / second, the median of the per-round ratios (the two rows run back to back in every "
       "round), with the range over the rounds. The result is judged on wall-clock rates. The last two "
       "columns redo the ratio on CPU time (one process: Google Benchmark's CPU time; reader processes: "
       "each reader's own thread CPU time): time a process was descheduled because other tenants ran on "
       "its CPU does not count there, time it stalled on memory or contended cache lines does. \"Quiet "
       "rounds\" are the rounds in which both rows had at least "
    << fmt("%.0f%%", kQuietShare * 100)
    << " of a CPU (Google Benchmark's CPU time / real time; readers: the column \"reader CPU share\"), i.e. "
       "nothing else competed for the CPUs.\n\n";
  o << "| target | first | second | ratio | goal | result | ratio on CPU time | result on CPU time | "
       "ratio, quiet rounds only | result, quiet rounds |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& t : targets()) {
    const auto r = ratio_of(t.a, t.b);
    const auto rc = ratio_of(t.a, t.b, Basis::cpu);
    const auto rq = ratio_of(t.a, t.b, Basis::quiet);
    o << "| " << t.what << " | " << shown(t.a) << " | " << shown(t.b) << " | " << fmt_ratio(r) << " | ≥ "
      << fmt_x(t.goal) << " | " << verdict(r, t.goal) << " | " << fmt_ratio(rc) << " | " << verdict(rc, t.goal)
      << " | " << fmt_quiet(rq) << " | " << verdict(rq, t.goal) << " |\n";
  }

  o << "\n### One process\n\n";
  o << "Operations per second (median over rounds); sleet / baseline as the median of per-round ratios. "
       "Churn: one item = insert a new key + erase the key inserted 1,024 items earlier. "
       "Get miss after churn: on the store that ran the churn rows.\n\n";
  o << "| operation | sleet | std::unordered_map + shared_mutex | Boost.IPC map | LMDB | sleet / std | "
       "sleet / Boost | sleet / LMDB | sleet / Boost, quiet rounds | sleet / LMDB, quiet rounds |\n"
       "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const char* op : kSingleOps) {
    o << "| " << op << " | " << shown(row(op, kSleet)) << " | " << shown(row(op, kStd)) << " | "
      << shown(row(op, kBoost)) << " | " << shown(row(op, kLmdb)) << " | "
      << fmt_ratio(ratio_of(row(op, kSleet), row(op, kStd))) << " | "
      << fmt_ratio(ratio_of(row(op, kSleet), row(op, kBoost))) << " | "
      << fmt_ratio(ratio_of(row(op, kSleet), row(op, kLmdb))) << " | "
      << fmt_quiet(ratio_of(row(op, kSleet), row(op, kBoost), Basis::quiet)) << " | "
      << fmt_quiet(ratio_of(row(op, kSleet), row(op, kLmdb), Basis::quiet)) << " |\n";
  }
  o << "\nsleet with a 64-character std::string value (cereal, max_value_size 72):\n\n";
  o << "| operation | sleet std::string | sleet raw struct | string / raw |\n|---|---|---|---|\n";
  for (const char* op : {"GetHit", "Set"}) {
    o << "| " << op << " | " << shown(row(op, "sleet-string")) << " | " << shown(row(op, kSleet)) << " | "
      << fmt_ratio(ratio_of(row(op, "sleet-string"), row(op, kSleet))) << " |\n";
  }

  o << "\nsleet's batch get (get_many, " << kManyBatch << " random present keys per call; per key):\n\n";
  o << "| operation | sleet get_many | sleet get | get_many / get |\n|---|---|---|---|\n";
  o << "| GetHit | " << shown(row("GetMany", kSleet)) << " | " << shown(row("GetHit", kSleet)) << " | "
    << fmt_ratio(ratio_of(row("GetMany", kSleet), row("GetHit", kSleet))) << " |\n";

  o << "\n### Reader processes\n\n";
  o << "Aggregate gets per second of all reader processes (first start to last finish). "
       "\"+ writer\": one more process setting keys the readers never read, as fast as it can. "
       "With 2 readers + writer there are 3 processes on " << g_cpus.size() << " CPUs.\n\n";
  o << "| store | 1 reader | 2 readers | 2 / 1 | 2 / 1, quiet rounds | 2 / 1 on CPU time | 1 reader + writer | "
       "vs solo | vs solo, quiet rounds | vs solo on CPU time | writer sets/s | 2 readers + writer | vs solo | "
       "reader CPU share (1 / 2 / 1+w) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const char* who : {kSleet, kBoost, kLmdb}) {
    if (!g_results.count(mp_row(who, 1, false))) continue;
    o << "| " << who << " | " << shown(mp_row(who, 1, false)) << " | " << shown(mp_row(who, 2, false)) << " | "
      << fmt_ratio(ratio_of(mp_row(who, 2, false), mp_row(who, 1, false))) << " | "
      << fmt_quiet(ratio_of(mp_row(who, 2, false), mp_row(who, 1, false), Basis::quiet)) << " | "
      << fmt_ratio(ratio_of(mp_row(who, 2, false), mp_row(who, 1, false), Basis::cpu)) << " | "
      << shown(mp_row(who, 1, true)) << " | "
      << fmt_ratio(ratio_of(mp_row(who, 1, true), mp_row(who, 1, false))) << " | "
      << fmt_quiet(ratio_of(mp_row(who, 1, true), mp_row(who, 1, false), Basis::quiet)) << " | "
      << fmt_ratio(ratio_of(mp_row(who, 1, true), mp_row(who, 1, false), Basis::cpu)) << " | "
      << shown(mp_row(who, 1, true), "writer_sets/s") << " | " << shown(mp_row(who, 2, true)) << " | "
      << fmt_ratio(ratio_of(mp_row(who, 2, true), mp_row(who, 2, false))) << " | " << share(mp_row(who, 1, false))
      << " / " << share(mp_row(who, 2, false)) << " / " << share(mp_row(who, 1, true)) << " |\n";
  }
  o << "\nAcross stores (same rows):\n\n| comparison | ratio |\n|---|---|\n";
  for (const char* who : {kBoost, kLmdb}) {
    for (int r : {1, 2}) {
      o << "| sleet / " << who << ", " << r << " reader" << (r > 1 ? "s" : "") << " | "
        << fmt_ratio(ratio_of(mp_row(kSleet, r, false), mp_row(who, r, false))) << " |\n";
    }
    o << "| sleet / " << who << ", 1 reader + writer | "
      << fmt_ratio(ratio_of(mp_row(kSleet, 1, true), mp_row(who, 1, true))) << " |\n";
  }
  return o.str();
}

// ------------------------------------------------------------------ main

bool starts_with(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

void make_stores() {
  const std::int64_t t0 = now_ns();
  auto& st = g_stores;
  st.sleet = std::make_unique<SleetStore>(false);
  st.sleet_churn = std::make_unique<SleetStore>(true);
  st.sleet_str = std::make_unique<SleetStringStore>();
  st.stdmap = std::make_unique<StdStore>(false);
  st.stdmap_churn = std::make_unique<StdStore>(true);
  st.mp_ops[kSleet] = calibrate(*st.sleet);
  st.footprint[kSleet] = st.sleet->footprint();
#if SLEET_HAVE_BOOST
  st.boost = std::make_unique<BoostStore>(false);
  st.boost_churn = std::make_unique<BoostStore>(true);
  st.mp_ops[kBoost] = calibrate(*st.boost);
  st.footprint[kBoost] = st.boost->footprint();
#endif
#if SLEET_HAVE_LMDB
  st.lmdb = std::make_unique<LmdbStore>(false);
  st.lmdb_churn = std::make_unique<LmdbStore>(true);
  st.mp_ops[kLmdb] = calibrate(*st.lmdb);
  st.footprint[kLmdb] = st.lmdb->footprint();
#endif
  std::printf("stores filled in %.2f s; gets per reader process:", static_cast<double>(now_ns() - t0) * 1e-9);
  for (const auto& [who, n] : st.mp_ops) std::printf(" %s %lld", who.c_str(), static_cast<long long>(n));
  std::printf("\n");
}

void drop_stores() {
  auto& st = g_stores;
  st.sleet.reset();
  st.sleet_churn.reset();
  st.sleet_str.reset();
  st.stdmap.reset();
  st.stdmap_churn.reset();
#if SLEET_HAVE_BOOST
  st.boost.reset();
  st.boost_churn.reset();
#endif
#if SLEET_HAVE_LMDB
  st.lmdb.reset();
  st.lmdb_churn.reset();
#endif
}

}  // namespace

int main(int argc, char** argv) {
  g_parent = ::getpid();
  std::vector<char*> args{argv[0]};
  bool user_min_time = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_settings.quick = true;
    } else if (std::strcmp(argv[i], "--no-pin") == 0) {
      g_settings.pin = false;
    } else if (starts_with(argv[i], "--rounds=")) {
      g_settings.rounds = std::max(1, std::atoi(argv[i] + 9));
    } else if (starts_with(argv[i], "--mp-seconds=")) {
      g_settings.mp_seconds = std::atof(argv[i] + 13);
    } else if (starts_with(argv[i], "--table-out=")) {
      g_settings.table_out = argv[i] + 12;
    } else {
      if (starts_with(argv[i], "--benchmark_min_time=")) {
        user_min_time = true;
        g_settings.min_time = argv[i] + 21;
      }
      args.push_back(argv[i]);
    }
  }
  if (g_settings.rounds == 0) g_settings.rounds = g_settings.quick ? 3 : 7;
  if (g_settings.mp_seconds <= 0) g_settings.mp_seconds = g_settings.quick ? 0.05 : 0.3;
  std::string min_time_flag;
  if (!user_min_time) {
    g_settings.min_time = g_settings.quick ? "0.03" : "0.2";
    min_time_flag = "--benchmark_min_time=" + g_settings.min_time;
    args.push_back(min_time_flag.data());
  }
  int bargc = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&bargc, args.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, args.data())) return 1;

  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) g_cpus.push_back(c);
    }
  }
  sleet_bench::remove_on_fatal_signals(g_registry);
  std::atexit([] { g_registry.run(); });

#if !SLEET_HAVE_BOOST
  std::printf("note: Boost.Interprocess headers were not found at build time; the Boost rows are skipped\n");
#endif
#if !SLEET_HAVE_LMDB
  std::printf("note: LMDB was not found at build time; the LMDB rows are skipped\n");
#endif

  const std::int64_t t0 = now_ns();
  int rc = 0;
  try {
    g_load_before = read_first_line("/proc/loadavg", nullptr);
    keys();
    make_stores();
    // Every round runs every row (quick: the target rows) in the same order,
    // so the two sides of a comparison are never far apart in time.
    const std::vector<Row> rows = all_rows();
    for (int round = 0; round < g_settings.rounds; ++round) {
      for (const Row& r : rows) {
        if (g_settings.quick && !r.target) continue;
        auto* b = benchmark::RegisterBenchmark((r.name + "/round:" + std::to_string(round)).c_str(), r.fn);
        if (r.manual_time) {
          b->UseManualTime()->Iterations(1);
        } else {
          b->UseRealTime();
        }
      }
    }
    CollectingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    drop_stores();
    g_wall_seconds = static_cast<double>(now_ns() - t0) * 1e-9;

    const std::string table = make_table();
    std::printf("\n%s", table.c_str());
    if (!g_settings.table_out.empty()) {
      std::ofstream out(g_settings.table_out);
      out << table;
      if (!out) {
        std::fprintf(stderr, "kv_bench: cannot write %s\n", g_settings.table_out.c_str());
        rc = 1;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kv_bench: %s\n", e.what());
    rc = 1;
  }
  drop_stores();
  g_registry.run();
  benchmark::Shutdown();
  return rc;
}
