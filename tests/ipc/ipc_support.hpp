// Helpers for the multi-process (tests/ipc) and stress (tests/stress) tests:
// memory shared with forked children, a report a child fills in instead of
// using Catch2 (whose state a child only has a copy of), bounded waits, and
// the scale of message counts under sanitizers.
#pragma once

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "sleet/detail/process.hpp"
#include "support.hpp"


namespace sleet::test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Multiplier for message counts and time budgets: 1 in a normal build, 1/4
// under sanitizers; SLEET_TEST_SCALE (a positive number) overrides both.
inline double scale() {
  static const double s = [] {
    if (const char* e = std::getenv("SLEET_TEST_SCALE")) {
      const double v = std::atof(e);
      if (v > 0) return v;
    }
    return SLEET_TEST_SANITIZED ? 0.25 : 1.0;
  }();
  return s;
}
inline std::uint64_t scaled(std::uint64_t n, std::uint64_t at_least = 1) {
  return std::max<std::uint64_t>(at_least, static_cast<std::uint64_t>(static_cast<double>(n) * scale()));
}
// How long the parent waits before it declares a child hung: generous, since
// it only matters when something is wrong, and longer under sanitizers.
inline std::chrono::milliseconds patience(std::chrono::milliseconds base) {
  return SLEET_TEST_SANITIZED ? base * 4 : base;
}

// `count` value-initialised T in a MAP_SHARED anonymous mapping: forked
// children write, the parent reads after waitpid() (which orders it all).
template <class T>
class SharedMemory {
  static_assert(std::is_trivially_destructible_v<T>);

 public:
  explicit SharedMemory(std::size_t count = 1) : count_(count) {
    bytes_ = std::max<std::size_t>(sizeof(T) * count, 1);
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    p_ = static_cast<T*>(p);
    for (std::size_t i = 0; i < count; ++i) new (p_ + i) T{};
  }
  ~SharedMemory() { ::munmap(p_, bytes_); }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  T& operator[](std::size_t i) const { return p_[i]; }
  std::size_t size() const { return count_; }

 private:
  T* p_ = nullptr;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

// What a child tells the parent about its failures. The first failure wins.
struct Report {
  std::atomic<int> failed{0};
  char error[480] = {};

  // Records the failure (if it is the first) and returns the exit code 1.
  int fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    int expected = 0;
    if (failed.compare_exchange_strong(expected, 1, std::memory_order_relaxed)) {
      va_list ap;
      va_start(ap, fmt);
      std::vsnprintf(error, sizeof error, fmt, ap);
      va_end(ap);
    }
    return 1;
  }
  bool ok() const { return failed.load(std::memory_order_relaxed) == 0; }
  std::string what() const { return ok() ? std::string("ok") : std::string(error); }
};

// The child has not exited yet (it is not reaped: Child keeps working).
inline bool running(const Child& c) {
  if (c.pid() <= 0) return false;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(c.pid()), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  return info.si_pid == 0;
}

// Waits for `c` until `deadline`; -1 (and the child is killed) if it overran.
inline int wait_until(Child& c, Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return c.wait_for(std::max(left, std::chrono::milliseconds(1)));
}

// Polls `pred` every millisecond until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= end) return pred();
    std::this_thread::sleep_for(1ms);
  }
}

// Child-side version of eventually() on a shared flag, for the parent's go.
template <class Int>
bool wait_flag(const std::atomic<Int>& flag, Int at_least, std::chrono::milliseconds timeout) {
  // acquire: what the parent wrote before raising the flag is visible.
  return eventually([&] { return flag.load(std::memory_order_acquire) >= at_least; }, timeout);
}

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A small deterministic PRNG (splitmix64) for children, seeded per process.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

// A live process unrelated to any object: it only sleeps (its Child
// destructor kills it).
inline Child sleeper() {
  return Child([] {
    for (;;) ::pause();
    return 0;
  });
}

// The identity of a live process (Catch2 assertions: /proc/<pid>/stat
// exists from fork() on and its start time is fixed). An owner word left
// behind by an earlier process with the same pid names `identity ^ 1`.
inline std::uint64_t identity_now(const Child& c) {
  const std::uint64_t id = sleet::detail::identity_of(c.pid());
  REQUIRE(sleet::detail::identity_pid(id) == c.pid());
  REQUIRE(sleet::detail::identity_alive(id));
  return id;
}

}  // namespace sleet::test
