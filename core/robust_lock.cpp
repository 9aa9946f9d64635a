// RobustLock slow paths: spinning, sleeping, and taking over from a dead
// owner. The protocol is described in detail/robust_lock.hpp.
#include "sleet/detail/robust_lock.hpp"

#include <algorithm>

#include "sleet/detail/process.hpp"

namespace sleet::detail {

bool RobustLock::take_over(std::uint32_t seen, std::uint32_t tid) noexcept {
  if (thread_alive(static_cast<int>(seen & kTidMask))) return false;
  // acquire: whatever the dead owner wrote is as visible as it will ever
  // be; the CAS fails if anyone else changed the word since we looked.
  if (!word.compare_exchange_strong(seen, tid | (seen & kWaiters), std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
    return false;
  }
  // relaxed: read only by the holder (us) until unlock()'s release.
  dirty.store(1, std::memory_order_relaxed);
  recoveries.fetch_add(1, std::memory_order_relaxed);  // stats
  return true;
}

LockState RobustLock::try_lock(std::uint32_t tid) noexcept {
  if (try_lock_fast(tid)) return LockState::acquired;
  const std::uint32_t seen = word.load(std::memory_order_relaxed);  // relaxed: take_over CASes
  if (seen == 0) return try_lock_fast(tid) ? LockState::acquired : LockState::timeout;
  if ((seen & kTidMask) == tid) return LockState::self_deadlock;
  return take_over(seen, tid) ? LockState::owner_died : LockState::timeout;
}

LockState RobustLock::lock_slow(std::uint32_t tid, Deadline deadline,
                                std::chrono::nanoseconds spin) {
  // relaxed loads below: each decision is confirmed by an acquire CAS.
  if ((word.load(std::memory_order_relaxed) & kTidMask) == tid) return LockState::self_deadlock;
  if (spin.count() > 0) {
    const Deadline spin_end = std::min(deadline, Clock::now() + spin);
    for (unsigned i = 1;; ++i) {
      cpu_relax();
      if (word.load(std::memory_order_relaxed) == 0 && try_lock_fast(tid)) {
        return LockState::acquired;
      }
      if ((i & 63) == 0 && Clock::now() >= spin_end) break;
    }
  }
  for (;;) {
    std::uint32_t seen = word.load(std::memory_order_relaxed);
    if (seen == 0) {
      // We may have slept: others may sleep too, so keep kWaiters set.
      // acquire: as in try_lock_fast().
      if (word.compare_exchange_strong(seen, tid | kWaiters, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return LockState::acquired;
      }
      continue;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      // Before giving up, look at the owner once, as try_lock() does: a
      // timeout shorter than kOwnerCheck never sleeps a whole period, and
      // would otherwise never recover a dead owner.
      return take_over(seen, tid) ? LockState::owner_died : LockState::timeout;
    }
    if ((seen & kWaiters) == 0) {
      // relaxed: kWaiters only tells the owner's unlock() to wake; the
      // futex syscall orders our sleep against that exchange.
      if (!word.compare_exchange_strong(seen, seen | kWaiters, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
        continue;
      }
      seen |= kWaiters;
    }
    const Deadline check_at = now + kOwnerCheck;
    sleeps.fetch_add(1, std::memory_order_relaxed);  // stats
    if (!futex_wait(&word, seen, std::min(deadline, check_at)) && Clock::now() >= check_at) {
      // Slept a whole check period: is the owner still there?
      if (word.load(std::memory_order_relaxed) == seen && take_over(seen, tid)) {
        return LockState::owner_died;
      }
    }
  }
}

void RobustLock::wake_one() noexcept { futex_wake(&word, 1); }

}  // namespace sleet::detail
