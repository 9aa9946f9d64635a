// Helpers for the multi-process and crash tests of the sync primitives
// (tests/ipc/sync_ipc_test.cpp, tests/stress/sync_crash_test.cpp).
#pragma once

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <deque>
#include <cstdint>
#include <span>
#include <string>

#include "ipc/ipc_support.hpp"

namespace sleet::test {

// N unique object names, each removed when the test ends:
//   const Names<2> names("sem");  const auto& [a, b] = names.all;
template <std::size_t N>
struct Names {
  std::array<std::string, N> all;
  std::deque<Cleanup> cleanups;  // Cleanup cannot move; a deque never moves it

  explicit Names(const std::string& tag) {
    for (auto& n : all) {
      n = unique_name(tag);
      cleanups.emplace_back(n);
    }
  }
};

// Lets forked children start their timed part together, so that they
// really overlap (a child forked last could otherwise start after the
// first one finished). Lives in SharedMemory.
struct StartLine {
  std::atomic<int> ready{0};
  std::atomic<int> go{0};

  // Child: arrive, then wait for the parent's go (false if it never came).
  bool arrive() {
    ready.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count only
    return wait_flag(go, 1, patience(std::chrono::milliseconds(10000)));
  }
  // Parent: once `n` children arrived, let them all go.
  bool release(int n) {
    const bool all = eventually([&] { return ready.load(std::memory_order_relaxed) >= n; },
                                patience(std::chrono::milliseconds(10000)));
    go.store(1, std::memory_order_release);  // release: pairs with wait_flag()'s acquire
    return all;
  }
};

// A child that takes mutex `name`, raises `held` and waits to be killed.
inline Child lock_and_hang(const std::string& name, std::atomic<int>& held) {
  return Child([&name, &held]() -> int {
    auto m = Mutex::open(name);
    if (m.lock() != LockResult::acquired) return 2;
    held.store(1, std::memory_order_release);  // release: pairs with wait_flag()'s acquire
    for (;;) ::pause();
  });
}

// A value big enough for the seqlock (many words, so that a kill often lands
// in the middle of a store) that proves its own integrity.
template <std::size_t Words>
struct Checked {
  std::uint64_t writer;
  std::uint64_t seq;
  std::uint64_t data[Words];
  std::uint64_t sum;

  static Checked make(std::uint64_t writer, std::uint64_t seq) {
    Checked c{};
    c.writer = writer;
    c.seq = seq;
    for (std::size_t i = 0; i < Words; ++i) c.data[i] = mix(writer * 0x10000 + seq * Words + i);
    c.sum = c.checksum();
    return c;
  }
  std::uint64_t checksum() const {
    std::uint64_t s = mix(writer) ^ mix(seq + 1);
    for (std::size_t i = 0; i < Words; ++i) s = mix(s ^ data[i]);
    return s;
  }
  // The checksum covers every word: false for a torn or garbage copy.
  bool intact() const { return sum == checksum(); }
};

}  // namespace sleet::test
