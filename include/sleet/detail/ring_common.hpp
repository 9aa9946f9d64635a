// sleet/detail/ring_common.hpp — what both rings share: the closed flag, the
// two eventcounts and the slow-path counters.
//
//   +0    closed (read-mostly line)
//   +128  data_ec   receivers sleep here until something is published
//   +256  space_ec  senders sleep here until space is released
//   +384  counters written only on slow paths (full, sleeps)
//
// Synchronization
// `closed` is stored with release by close() and loaded with acquire by the
// operations that report errc::closed, so everything sent before close() is
// visible to a receiver that has seen the flag.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"

namespace sleet::detail {

struct RingCommon {
  alignas(kFalseSharing) std::atomic<std::uint32_t> closed{0};
  alignas(kFalseSharing) EventCount data_ec;   // receivers wait for data
  alignas(kFalseSharing) EventCount space_ec;  // senders wait for space
  alignas(kFalseSharing) std::atomic<std::uint64_t> times_full{0};
  std::atomic<std::uint64_t> send_sleeps{0};
  std::atomic<std::uint64_t> receive_sleeps{0};

  bool is_closed() const noexcept {
    // acquire: pairs with the release in close(); see the essay above.
    return closed.load(std::memory_order_acquire) != 0;
  }
  void close() noexcept {
    // release: pairs with the acquire in is_closed().
    closed.store(1, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // close is rare: take the full fence
    data_ec.notify_slow();
    space_ec.notify_slow();
  }
};
static_assert(sizeof(RingCommon) == 4 * kFalseSharing);
static_assert(alignof(RingCommon) == kFalseSharing);

// Converts a relative timeout to an absolute deadline without overflow.
inline Deadline deadline_after(std::chrono::nanoseconds timeout) noexcept {
  const auto now = Clock::now();
  if (timeout >= Deadline::max() - now) return kForever;
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

}  // namespace sleet::detail
