// Mutex, Semaphore, Event, SharedValue, SharedArray in one process: the
// basic contract of each. Cross-process and crash behaviour: tests/ipc and
// tests/stress.
#include <catch2/catch.hpp>

#include <mutex>
#include <thread>

#include "../support.hpp"

using namespace sleet;
using namespace sleet::test;
using namespace std::chrono_literals;

namespace {
struct Pose {
  double x, y, z;
  std::int64_t stamp;
  bool operator==(const Pose&) const = default;
};
}  // namespace

TEST_CASE("Mutex: lock, try_lock, lock_for, unlock, std::lock_guard", "[sync][mutex]") {
  const auto name = unique_name("mutex");
  Cleanup cleanup(name);
  auto m = Mutex::create(name);
  CHECK(m.lock() == LockResult::acquired);
  CHECK_FALSE(m.owner_died());
  CHECK(m.stats().owner_tid != 0);
  bool other_got_it = true;
  std::thread([&] {
    auto m2 = Mutex::open(name);
    other_got_it = m2.try_lock() || m2.lock_for(20ms);
  }).join();
  CHECK_FALSE(other_got_it);
  CHECK_SLEET_ERROR(m.lock(), errc::busy, "already held by this thread");
  m.unlock();
  CHECK(m.stats().owner_tid == 0);
  CHECK_SLEET_ERROR(m.unlock(), errc::not_owner, "it is not locked");
  {
    std::lock_guard guard(m);
    std::thread([&] {
      CHECK_SLEET_ERROR(m.unlock(), errc::not_owner, "held by thread");
    }).join();
  }
  std::unique_lock lk(m, std::defer_lock);
  CHECK(lk.try_lock_for(1ms));
}

TEST_CASE("Mutex: a thread that exits holding it leaves owner_died to the next locker",
          "[sync][mutex]") {
  const auto name = unique_name("mutex");
  Cleanup cleanup(name);
  auto m = Mutex::create(name);
  std::thread([&] { m.lock(); }).join();  // exits without unlocking
  CHECK(m.lock() == LockResult::owner_died);
  CHECK(m.owner_died());
  CHECK(m.stats().recoveries == 1);
  m.unlock();
  CHECK(m.lock() == LockResult::acquired);
  CHECK_FALSE(m.owner_died());
  m.unlock();
  // A timed lock shorter than the owner check period still recovers it.
  std::thread([&] { m.lock(); }).join();
  CHECK(m.lock_for(1ms));
  CHECK(m.owner_died());
  m.unlock();
}

TEST_CASE("Semaphore: counts, bounds and timeouts", "[sync][semaphore]") {
  const auto name = unique_name("sem");
  Cleanup cleanup(name);
  auto s = Semaphore::create(name, 2, {.max = 3});
  CHECK(s.value() == 2);
  CHECK(s.try_acquire());
  s.acquire();
  CHECK_FALSE(s.try_acquire());
  CHECK_FALSE(s.acquire_for(5ms));
  s.release(3);
  CHECK(s.value() == 3);
  CHECK_SLEET_ERROR(s.release(), errc::full, "past its max 3");
  CHECK(s.value() == 3);
  std::thread waker;
  s = Semaphore::open(name);
  while (s.try_acquire()) {
  }
  waker = std::thread([&] {
    std::this_thread::sleep_for(20ms);
    auto s2 = Semaphore::open(name);
    s2.release();
  });
  s.acquire();
  waker.join();
  CHECK(s.value() == 0);
  CHECK_SLEET_ERROR(Semaphore::create(unique_name("sem"), 5, {.max = 4}), errc::invalid_argument,
                    "initial count 5 is above max 4");
}

TEST_CASE("Event: set wakes waiters, clear, wait_for", "[sync][event]") {
  const auto name = unique_name("event");
  Cleanup cleanup(name);
  auto e = Event::create(name);
  CHECK_FALSE(e.is_set());
  CHECK_FALSE(e.wait_for(5ms));
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);
    auto e2 = Event::open(name);
    e2.set();
    e2.clear();  // a waiter already waiting is released all the same
  });
  e.set_spin(0ns);
  CHECK(e.wait_for(5s));
  setter.join();
  CHECK_FALSE(e.is_set());
  e.set();
  CHECK(e.is_set());
  e.wait();
}

TEST_CASE("SharedValue: lock-free integers and seqlock structs", "[sync][value]") {
  const auto n1 = unique_name("value");
  const auto n2 = unique_name("value");
  Cleanup c1(n1), c2(n2);
  auto v = SharedValue<std::int64_t>::create(n1, 5);
  STATIC_REQUIRE(SharedValue<std::int64_t>::is_lock_free());
  CHECK(v.fetch_add(2) == 5);
  CHECK(v.fetch_sub(1) == 7);
  CHECK(v.load() == 6);
  std::int64_t expected = 1;
  CHECK_FALSE(v.compare_exchange(expected, 9));
  CHECK(expected == 6);
  CHECK(v.compare_exchange(expected, 9));
  CHECK(SharedValue<std::int64_t>::open(n1).exchange(3) == 9);
  CHECK(v.update([](std::int64_t x) { return x * 10; }) == 30);

  auto p = SharedValue<Pose>::create(n2, Pose{1, 2, 3, 4});
  STATIC_REQUIRE_FALSE(SharedValue<Pose>::is_lock_free());
  CHECK(p.load() == Pose{1, 2, 3, 4});
  p.store({5, 6, 7, 8});
  auto p2 = SharedValue<Pose>::open(n2);
  CHECK(p2.load() == Pose{5, 6, 7, 8});
  CHECK(p2.exchange({0, 0, 0, 1}) == Pose{5, 6, 7, 8});
  Pose want{9, 9, 9, 9};
  CHECK_FALSE(p.compare_exchange(want, {1, 1, 1, 1}));
  CHECK(want == Pose{0, 0, 0, 1});
  CHECK(p.compare_exchange(want, {1, 1, 1, 1}));
  CHECK(p.update([](Pose q) { q.stamp += 1; return q; }) == Pose{1, 1, 1, 2});
  CHECK_SLEET_ERROR(SharedValue<std::int32_t>::open(n1), errc::type_mismatch, n1);
}

TEST_CASE("SharedArray: elements, with_lock, bounds", "[sync][array]") {
  const auto name = unique_name("array");
  Cleanup cleanup(name);
  auto a = SharedArray<int>::create(name, 8, 7);
  CHECK(a.size() == 8);
  CHECK(a.get(7) == 7);
  a.set(3, 42);
  auto b = SharedArray<int>::open(name);
  CHECK(b[3] == 42);
  const int sum = b.with_lock([](std::span<int> all) {
    int s = 0;
    for (int& e : all) s += (e += 1);
    return s;
  });
  CHECK(sum == 7 * 8 + 35 + 8);
  CHECK(a.snapshot()[3] == 43);
  CHECK_SLEET_ERROR(a.get(8), errc::invalid_argument, "index 8 is out of range (length 8)");
  CHECK_SLEET_ERROR(a.with_lock([&](std::span<int>) { return a.get(0); }), errc::busy,
                    "inside with_lock");
  a.with_lock([](std::span<int>, LockResult r) { CHECK(r == LockResult::acquired); });
}

// A "forever" timeout (nanoseconds::max(), time_point::max()) must mean
// forever, not overflow the deadline into the past and give up at once.
TEST_CASE("Mutex, Semaphore, Event: a timeout of nanoseconds::max() waits", "[sync][timeout]") {
  const auto nm = unique_name("mutex");
  const auto ns = unique_name("sem");
  const auto ne = unique_name("event");
  Cleanup c1(nm), c2(ns), c3(ne);
  auto m = Mutex::create(nm);
  auto s = Semaphore::create(ns, 0);
  auto e = Event::create(ne);
  std::atomic<bool> locked{false};
  std::thread later([&] {
    m.lock();
    locked.store(true, std::memory_order_release);  // release: pairs with the acquire below
    std::this_thread::sleep_for(30ms);
    m.unlock();
    s.release();
    e.set();
  });
  while (!locked.load(std::memory_order_acquire)) std::this_thread::yield();
  auto m2 = Mutex::open(nm);
  CHECK(m2.lock_for(std::chrono::nanoseconds::max()));
  m2.unlock();
  CHECK(s.acquire_for(std::chrono::nanoseconds::max()));
  CHECK(e.wait_for(std::chrono::nanoseconds::max()));
  later.join();
  CHECK(m2.try_lock_until(std::chrono::steady_clock::time_point::max()));
  m2.unlock();
  CHECK(m2.try_lock_for(std::chrono::hours::max()));
  m2.unlock();
  CHECK(s.value() == 0);
}

// lock_for() with a timeout shorter than the owner-check period (and
// lock_for(0)) must still take over from a dead owner, as try_lock() does;
// a caller polling with short timeouts would otherwise wait forever.
TEST_CASE("Mutex: lock_for with a short timeout takes over from a dead owner", "[sync][mutex]") {
  const auto name = unique_name("mutex");
  Cleanup cleanup(name);
  auto m = Mutex::create(name);
  SECTION("lock_for(1ms)") {
    std::thread([&] { m.lock(); }).join();  // exits holding it
    bool got = false;
    for (int i = 0; i < 50 && !got; ++i) got = m.lock_for(1ms);
    REQUIRE(got);
  }
  SECTION("lock_for(0)") {
    std::thread([&] { m.lock(); }).join();
    REQUIRE(m.lock_for(0ms));
  }
  CHECK(m.owner_died());
  CHECK(m.stats().recoveries == 1);
  m.unlock();
  CHECK(m.lock_for(0ms));
  CHECK_FALSE(m.owner_died());
  m.unlock();
}
