// Mutex, Semaphore, Event, SharedValue and SharedArray between real
// processes (fork), the death of a mutex owner, and bad input. Children
// report through a Report in shared memory and their exit code, never
// through Catch2.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "sync_support.hpp"

using namespace sleet;
using namespace sleet::test;

namespace {

// The mutex is usable as if nothing had happened: no owner_died, and a
// fresh process takes it as well.
void check_works_normally(Mutex& m, const std::string& name) {
  CHECK(m.lock() == LockResult::acquired);
  CHECK_FALSE(m.owner_died());
  m.unlock();
  Child other([&]() -> int {
    auto mine = Mutex::open(name);
    if (mine.lock() != LockResult::acquired || mine.owner_died()) return 1;
    mine.unlock();
    return 0;
  });
  CHECK(other.wait_for(patience(5000ms)) == 0);
  CHECK(m.stats().owner_tid == 0);
}

}  // namespace

TEST_CASE("Mutex between processes: a load-then-store increment under the lock is exact",
          "[ipc][sync][mutex]") {
  const Names<3> names("counter");
  const auto& [mn, vn, an] = names.all;
  // spin 0: a contended lock() sleeps on the futex at once (the slow path).
  auto m = Mutex::create(mn, {.spin = std::chrono::nanoseconds(0)});
  auto value = SharedValue<std::uint64_t>::create(vn, 0);
  auto array = SharedArray<std::uint64_t>::create(an, 2, 0);
  constexpr int kProcs = 4;
  const std::uint64_t per = scaled(50000, 2000);
  SharedMemory<Report> report;
  SharedMemory<StartLine> start;

  std::vector<Child> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.emplace_back([&, p]() -> int {
      auto mine = Mutex::open(mn);
      auto v = SharedValue<std::uint64_t>::open(vn);
      auto a = SharedArray<std::uint64_t>::open(an);
      if (!start->arrive()) return report->fail("child %d: no start", p);
      for (std::uint64_t i = 0; i < per; ++i) {
        if (mine.lock() != LockResult::acquired) return report->fail("child %d: lock not clean", p);
        // relaxed: two separate steps on purpose (a lost update without
        // the mutex); the mutex orders them between processes.
        v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        a.set(0, a.get(0) + 1);
        a.set(1, a.get(1) + static_cast<std::uint64_t>(p) + 1);
        mine.unlock();
      }
      return 0;
    });
  }
  CHECK(start->release(kProcs));
  for (auto& k : kids) CHECK(k.wait_for(patience(60000ms)) == 0);
  INFO(report->what());
  CHECK(report->ok());
  CHECK(value.load() == kProcs * per);
  CHECK(array.get(0) == kProcs * per);
  CHECK(array.get(1) == per * (1 + 2 + 3 + 4));
  CHECK(m.stats().recoveries == 0);
  check_works_normally(m, mn);
}

TEST_CASE("Mutex: SIGKILL of the owner hands the lock to the next locker with owner_died",
          "[ipc][sync][mutex][crash]") {
  const auto name = unique_name("mutex");
  Cleanup cleanup(name);
  auto m = Mutex::create(name);
  SharedMemory<std::atomic<int>> held;
  Child owner = lock_and_hang(name, *held);
  REQUIRE(wait_flag(*held, 1, patience(5000ms)));
  CHECK(m.stats().owner_tid == static_cast<std::uint32_t>(owner.pid()));
  CHECK_FALSE(m.try_lock());  // alive: no take-over

  SECTION("killed and reaped; the parent locks") {
    owner.kill();
    CHECK(owner.wait() == 128 + SIGKILL);
    CHECK(m.lock() == LockResult::owner_died);
    CHECK(m.owner_died());
    m.unlock();
  }
  SECTION("killed, not reaped (a zombie owner counts as dead); the parent locks") {
    owner.kill();
    const auto t0 = Clock::now();
    CHECK(m.lock() == LockResult::owner_died);
    CHECK(ms_since(t0) < 2000);
    CHECK(::kill(owner.pid(), 0) == 0);  // still a zombie: nobody waited for it yet
    CHECK(m.owner_died());
    m.unlock();
    CHECK(owner.wait() == 128 + SIGKILL);
  }
  SECTION("killed; a third process locks and repairs") {
    owner.kill();
    Child third([&]() -> int {
      auto mine = Mutex::open(name);
      if (mine.lock() != LockResult::owner_died) return 1;
      if (!mine.owner_died()) return 2;
      mine.unlock();
      if (mine.lock() != LockResult::acquired || mine.owner_died()) return 3;
      mine.unlock();
      return 0;
    });
    CHECK(third.wait_for(patience(5000ms)) == 0);
  }
  SECTION("a process already asleep in lock() wakes up with owner_died") {
    SharedMemory<std::atomic<int>> result;
    Child waiter([&]() -> int {
      auto mine = Mutex::open(name);
      mine.set_spin(std::chrono::nanoseconds(0));
      const LockResult r = mine.lock();
      result->store(r == LockResult::owner_died && mine.owner_died() ? 1 : 2,
                    std::memory_order_relaxed);  // relaxed: read after waitpid()
      mine.unlock();
      return 0;
    });
    REQUIRE(eventually([&] { return m.stats().sleeps > 0; }, patience(5000ms)));
    owner.kill();
    CHECK(waiter.wait_for(patience(5000ms)) == 0);
    CHECK(result->load(std::memory_order_relaxed) == 1);
  }
  SECTION("killed; lock_for(1ms) polling and try_lock take it over") {
    owner.kill();
    CHECK(owner.wait() == 128 + SIGKILL);
    bool got = false;
    for (int i = 0; i < 100 && !got; ++i) got = m.lock_for(std::chrono::milliseconds(1));
    REQUIRE(got);
    CHECK(m.owner_died());
    m.unlock();
  }
  CHECK(m.stats().recoveries == 1);
  check_works_normally(m, name);
}

TEST_CASE("Semaphore(2) between processes lets at most two of four workers in", "[ipc][sync][semaphore]") {
  const Names<3> names("sem");
  const auto& [sn, in, mx] = names.all;
  auto sem = Semaphore::create(sn, 2, {.max = 2});
  auto inside = SharedValue<int>::create(in, 0);
  auto most = SharedValue<int>::create(mx, 0);
  const std::uint64_t rounds = scaled(200, 40);
  SharedMemory<Report> report;
  SharedMemory<StartLine> start;
  std::vector<Child> kids;
  for (int w = 0; w < 4; ++w) {
    kids.emplace_back([&, w]() -> int {
      auto s = Semaphore::open(sn);
      auto now_in = SharedValue<int>::open(in);
      auto max_in = SharedValue<int>::open(mx);
      if (!start->arrive()) return report->fail("worker %d: no start", w);
      for (std::uint64_t r = 0; r < rounds; ++r) {
        if (!s.acquire_for(patience(10000ms))) return report->fail("worker %d: acquire timed out", w);
        const int n = now_in.fetch_add(1) + 1;
        max_in.update([n](int m) { return std::max(m, n); });
        if (n > 2) return report->fail("worker %d saw %d inside", w, n);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        now_in.fetch_sub(1);
        s.release();
      }
      return 0;
    });
  }
  CHECK(start->release(4));
  for (auto& k : kids) CHECK(k.wait_for(patience(60000ms)) == 0);
  INFO(report->what());
  CHECK(report->ok());
  CHECK(most.load() == 2);
  CHECK(inside.load() == 0);
  CHECK(sem.value() == 2);
  CHECK_SLEET_ERROR(sem.release(), errc::full, "past its max 2");
}

TEST_CASE("Semaphore ping-pong between two processes", "[ipc][sync][semaphore]") {
  const Names<3> names("pingpong");
  const auto& [pn, qn, bn] = names.all;
  auto ping = Semaphore::create(pn, 0, {.max = 1});
  auto pong = Semaphore::create(qn, 0, {.max = 1});
  auto ball = SharedValue<std::int64_t>::create(bn, 0);
  const auto trips = static_cast<std::int64_t>(scaled(2000, 200));
  SharedMemory<Report> report;
  Child other([&]() -> int {
    auto in = Semaphore::open(pn);
    auto out = Semaphore::open(qn);
    auto b = SharedValue<std::int64_t>::open(bn);
    for (std::int64_t i = 1; i <= trips; ++i) {
      if (!in.acquire_for(patience(5000ms))) return report->fail("trip %lld: no ping", static_cast<long long>(i));
      const std::int64_t got = b.load();
      if (got != i) return report->fail("trip %lld: ball %lld", static_cast<long long>(i), static_cast<long long>(got));
      b.store(-i);
      out.release();
    }
    return 0;
  });
  std::int64_t answered = 0;
  for (std::int64_t i = 1; i <= trips; ++i) {
    ball.store(i);
    ping.release();
    if (!pong.acquire_for(patience(5000ms))) break;
    if (ball.load() != -i) break;
    ++answered;
  }
  CHECK(answered == trips);
  CHECK(other.wait_for(patience(5000ms)) == 0);
  INFO(report->what());
  CHECK(report->ok());
  CHECK(ping.value() == 0);
  CHECK(pong.value() == 0);
}

TEST_CASE("Event across processes", "[ipc][sync][event]") {
  const auto name = unique_name("event");
  Cleanup cleanup(name);
  auto e = Event::create(name);
  constexpr std::uint32_t kWaiters = 4;
  auto start_waiters = [&](std::vector<Child>& kids) {
    for (std::uint32_t i = 0; i < kWaiters; ++i) {
      kids.emplace_back([&]() -> int {
        auto mine = Event::open(name);
        return mine.wait_for(patience(10000ms)) ? 0 : 1;
      });
    }
    // Every waiter announced itself: they are asleep (or about to be).
    return eventually([&] { return e.stats().waiters == kWaiters; }, patience(5000ms));
  };

  SECTION("one set() releases waiters in several processes") {
    std::vector<Child> kids;
    REQUIRE(start_waiters(kids));
    e.set();
    for (auto& k : kids) CHECK(k.wait_for(patience(5000ms)) == 0);
    CHECK(e.is_set());
  }
  SECTION("set() followed at once by clear() still releases the waiting processes") {
    std::vector<Child> kids;
    REQUIRE(start_waiters(kids));
    e.set();
    e.clear();
    for (auto& k : kids) CHECK(k.wait_for(patience(5000ms)) == 0);
    CHECK_FALSE(e.is_set());
  }
  SECTION("wait_for times out in a child; a set() in a child wakes the parent") {
    Child late([&]() -> int {
      auto mine = Event::open(name);
      const auto t0 = Clock::now();
      if (mine.wait_for(std::chrono::milliseconds(50))) return 1;
      const double waited = ms_since(t0);
      if (waited < 50 || waited > 5000) return 2;
      mine.set();
      return 0;
    });
    CHECK(e.wait_for(patience(5000ms)));
    CHECK(late.wait_for(patience(5000ms)) == 0);
    CHECK(e.stats().sets == 1);
  }
  CHECK(e.stats().waiters == 0);
}

TEST_CASE("SharedValue<int64> fetch_add from several processes is exact", "[ipc][sync][value]") {
  const auto name = unique_name("value");
  Cleanup cleanup(name);
  auto v = SharedValue<std::int64_t>::create(name, 0);
  constexpr int kProcs = 4;
  const auto per = static_cast<std::int64_t>(scaled(200000, 5000));
  SharedMemory<StartLine> start;
  std::vector<Child> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.emplace_back([&, p]() -> int {
      auto mine = SharedValue<std::int64_t>::open(name);
      if (!start->arrive()) return 3;
      for (std::int64_t i = 0; i < per; ++i) {
        mine.fetch_add(p + 2);
        mine.fetch_sub(1, std::memory_order_relaxed);  // relaxed: only the sum is checked
      }
      return 0;
    });
  }
  CHECK(start->release(kProcs));
  for (auto& k : kids) CHECK(k.wait_for(patience(60000ms)) == 0);
  CHECK(v.load() == per * (1 + 2 + 3 + 4));
}

TEST_CASE("SharedValue<large struct>: concurrent writer processes, readers never see a torn value",
          "[ipc][sync][value]") {
  using Big = Checked<30>;  // 256 bytes: the seqlock
  STATIC_REQUIRE_FALSE(SharedValue<Big>::is_lock_free());
  const auto name = unique_name("value");
  Cleanup cleanup(name);
  auto v = SharedValue<Big>::create(name, Big::make(0, 0));
  constexpr int kWriters = 2, kReaders = 2;
  const std::uint64_t writes = scaled(20000, 2000);
  SharedMemory<Report> report;
  SharedMemory<std::atomic<int>> writers_done;
  SharedMemory<std::atomic<std::uint64_t>> changes_seen;
  SharedMemory<StartLine> start;

  std::vector<Child> kids;
  for (int w = 1; w <= kWriters; ++w) {
    kids.emplace_back([&, w]() -> int {
      auto mine = SharedValue<Big>::open(name);
      if (!start->arrive()) return report->fail("writer %d: no start", w);
      for (std::uint64_t s = 1; s <= writes; ++s) {
        if (s % 2 == 0) {
          mine.store(Big::make(static_cast<std::uint64_t>(w), s));
        } else {
          bool intact = true;
          mine.update([&](const Big& old) {
            intact = old.intact();  // under the writers' lock: never torn
            return Big::make(static_cast<std::uint64_t>(w), s);
          });
          if (!intact) return report->fail("writer %d: update saw a torn value", w);
        }
      }
      writers_done->fetch_add(1, std::memory_order_release);  // release: pairs with the readers' acquire
      return 0;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    kids.emplace_back([&, r]() -> int {
      auto mine = SharedValue<Big>::open(name);
      std::uint64_t last[kWriters + 1] = {};
      std::uint64_t changes = 0, previous = 0;
      if (!start->arrive()) return report->fail("reader %d: no start", r);
      // acquire: pairs with the writers' release; one more read after both finish.
      for (bool more = true; more;) {
        more = writers_done->load(std::memory_order_acquire) < kWriters;
        const Big b = mine.load();
        if (!b.intact()) return report->fail("reader %d: torn value (writer %llu, seq %llu)", r,
                                             static_cast<unsigned long long>(b.writer),
                                             static_cast<unsigned long long>(b.seq));
        if (b.writer > kWriters) return report->fail("reader %d: writer %llu", r, static_cast<unsigned long long>(b.writer));
        // Each writer's values appear in the order it wrote them.
        if (b.seq < last[b.writer]) return report->fail("reader %d: writer %llu went back", r,
                                                       static_cast<unsigned long long>(b.writer));
        last[b.writer] = b.seq;
        const std::uint64_t id = b.writer << 32 | b.seq;
        changes += id != previous;
        previous = id;
      }
      if (last[1] != writes && last[2] != writes) return report->fail("reader %d: missed the last value", r);
      changes_seen->fetch_add(changes, std::memory_order_relaxed);  // relaxed: read after waitpid()
      return 0;
    });
  }
  CHECK(start->release(kWriters + kReaders));
  for (auto& k : kids) CHECK(k.wait_for(patience(60000ms)) == 0);
  INFO(report->what());
  CHECK(report->ok());
  const Big last = v.load();
  CHECK(last.intact());
  CHECK(last.seq == writes);
  CHECK(changes_seen->load(std::memory_order_relaxed) > 0);
}

TEST_CASE("Sync primitives: bad input gets a clear error", "[ipc][sync][bad_input]") {
  SECTION("unlock by a thread or a forked process that does not hold the mutex") {
    const auto name = unique_name("mutex");
    Cleanup cleanup(name);
    auto m = Mutex::create(name);
    m.lock();
    const std::string holder = "held by thread " + std::to_string(::gettid());
    std::thread([&] { CHECK_SLEET_ERROR(m.unlock(), errc::not_owner, holder); }).join();
    SharedMemory<Report> report;
    Child forked([&]() -> int {
      // The child inherited the object, not the ownership.
      if (m.try_lock()) return report->fail("the child could take a held mutex");
      const auto err = thrown_error([&] { m.unlock(); });
      if (!err || err->code() != errc::not_owner) return report->fail("unlock did not fail with not_owner");
      if (!contains(err->what(), holder)) return report->fail("message: %s", err->what());
      return 0;
    });
    CHECK(forked.wait_for(patience(5000ms)) == 0);
    INFO(report->what());
    CHECK(report->ok());
    CHECK(m.stats().owner_tid == static_cast<std::uint32_t>(::gettid()));
    m.unlock();
  }
  SECTION("relocking a held mutex is busy, not a deadlock") {
    const auto name = unique_name("mutex");
    Cleanup cleanup(name);
    auto m = Mutex::create(name);
    m.lock();
    auto again = Mutex::open(name);  // another object, the same thread
    CHECK_SLEET_ERROR(again.lock(), errc::busy, "lock: already held by this thread");
    CHECK_SLEET_ERROR(again.try_lock(), errc::busy, "try_lock: already held by this thread");
    CHECK_SLEET_ERROR(again.lock_for(std::chrono::milliseconds(5)), errc::busy,
                      "lock_for: already held by this thread");
    m.unlock();
  }
  SECTION("semaphore release past its max changes nothing") {
    const auto name = unique_name("sem");
    Cleanup cleanup(name);
    auto s = Semaphore::create(name, 1, {.max = 3});
    CHECK_SLEET_ERROR(s.release(3), errc::full, "release(3) would raise the count 1 past its max 3");
    CHECK(s.value() == 1);
    s.release(2);
    CHECK(s.value() == 3);
  }
  SECTION("invalid names, counts and options at create") {
    CHECK_SLEET_ERROR(Mutex::create(""), errc::invalid_name, "empty");
    CHECK_SLEET_ERROR(Semaphore::create("a/b", 1), errc::invalid_name, "found '/'");
    CHECK_SLEET_ERROR(Event::create(std::string(201, 'e')), errc::invalid_name, "201 characters, at most 200");
    CHECK_SLEET_ERROR(SharedValue<int>::create("no space"), errc::invalid_name, "found ' '");
    CHECK_SLEET_ERROR(SharedArray<int>::create("x*", 4), errc::invalid_name, "found '*'");
    CHECK_SLEET_ERROR(Mutex::open("../etc"), errc::invalid_name, "found '/'");
    const auto name = unique_name("bad");
    Cleanup cleanup(name);
    CHECK_SLEET_ERROR(Semaphore::create(name, 3, {.max = 2}), errc::invalid_argument,
                      "initial count 3 is above max 2");
    CHECK_SLEET_ERROR(Semaphore::create(name, 0, {.max = 0}), errc::invalid_argument,
                      "max 0 is out of range");
    CHECK_SLEET_ERROR(Mutex::create(name, {.spin = std::chrono::nanoseconds(-1)}), errc::invalid_argument,
                      "spin must not be negative");
    CHECK_SLEET_ERROR(SharedArray<int>::create(name, 0), errc::invalid_argument, "length 0 is out of range");
    CHECK_FALSE(Mutex::remove(name));  // nothing was left behind by the failures
  }
  SECTION("open of a missing name, of another kind, of another type") {
    const auto missing = unique_name("missing");
    CHECK_SLEET_ERROR(Mutex::open(missing), errc::not_found, missing);
    CHECK_SLEET_ERROR(Semaphore::open(missing), errc::not_found, "does not exist");
    CHECK_SLEET_ERROR(Event::open(missing), errc::not_found, "does not exist");
    CHECK_SLEET_ERROR(SharedValue<int>::open(missing), errc::not_found, "does not exist");
    CHECK_SLEET_ERROR(SharedArray<int>::open(missing), errc::not_found, "does not exist");
    const Names<3> names("kinds");
    const auto& [mn, vn, an] = names.all;
    auto m = Mutex::create(mn);
    auto v = SharedValue<int>::create(vn, 1);
    auto a = SharedArray<int>::create(an, 4);
    CHECK_SLEET_ERROR(Semaphore::open(mn), errc::kind_mismatch, "is a mutex, not a semaphore");
    CHECK_SLEET_ERROR(Event::open(mn), errc::kind_mismatch, "is a mutex, not a event");
    CHECK_SLEET_ERROR(SharedArray<int>::open(vn), errc::kind_mismatch, "is a value, not a array");
    CHECK_SLEET_ERROR(SharedValue<double>::open(vn), errc::type_mismatch,
                      "holds '" + tname<int>() + "', opened as '" + tname<double>() + "'");
    CHECK_SLEET_ERROR(SharedArray<long>::open(an), errc::type_mismatch, "opened as '" + tname<long>() + "'");
  }
  SECTION("SharedArray index out of range, re-entrance from with_lock") {
    const auto name = unique_name("array");
    Cleanup cleanup(name);
    auto a = SharedArray<std::uint64_t>::create(name, 3, 1);
    CHECK_SLEET_ERROR(a.set(3, 0), errc::invalid_argument, "index 3 is out of range (length 3)");
    CHECK_SLEET_ERROR(a[100], errc::invalid_argument, "index 100 is out of range (length 3)");
    CHECK_SLEET_ERROR(a.with_lock([&](std::span<std::uint64_t>) { a.set(0, 2); }), errc::busy,
                      "set: its lock is already held by this thread");
    CHECK_SLEET_ERROR(a.with_lock([&](std::span<std::uint64_t>) { return a.snapshot(); }), errc::busy,
                      "snapshot: its lock is already held by this thread");
    CHECK_SLEET_ERROR(a.with_lock([&](std::span<std::uint64_t>) { a.with_lock([](std::span<std::uint64_t>) {}); }),
                      errc::busy, "with_lock: its lock is already held by this thread");
    // The failed calls released the lock: another process gets it at once.
    Child other([&]() -> int { return SharedArray<std::uint64_t>::open(name).get(0) == 1 ? 0 : 1; });
    CHECK(other.wait_for(patience(5000ms)) == 0);
  }
  SECTION("a truncated segment is reported, not mapped past its end") {
    const auto name = unique_name("mutex");
    Cleanup cleanup(name);
    { auto m = Mutex::create(name); }
    const std::string path = "/dev/shm/sleet." + name;
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    REQUIRE(::truncate(path.c_str(), st.st_size - 64) == 0);
    CHECK_SLEET_ERROR(Mutex::open(name), errc::corrupted, "truncated or damaged");
    REQUIRE(::truncate(path.c_str(), 100) == 0);
    CHECK_SLEET_ERROR(Mutex::open(name), errc::not_sleet, "not a sleet segment (100 bytes");
  }
}
