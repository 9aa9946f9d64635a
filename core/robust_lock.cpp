// RobustLock slow paths: spinning, sleeping, and taking over from a dead
// owner. The protocol is described in detail/robust_lock.hpp.
#include "sleet/detail/robust_lock.hpp"

#include <algorithm>

#include "sleet/detail/process.hpp"

namespace sleet::detail {

bool RobustLock::take_over(std::uint64_t seen, std::uint64_t me) noexcept {
  if (identity_alive(word_owner(seen))) return false;
  // acquire: whatever the dead owner wrote is as visible as it will ever
  // be; the CAS fails if anyone else changed the word since we looked.
  if (!word.compare_exchange_strong(seen, lock_word(me) | (seen & kWaiters),
                                    std::memory_order_acquire, std::memory_order_relaxed)) {
    return false;
  }
  // relaxed: read only by the holder (us) until unlock()'s release.
  dirty.store(1, std::memory_order_relaxed);
  recoveries.fetch_add(1, std::memory_order_relaxed);  // stats
  return true;
}

LockState RobustLock::try_lock(std::uint64_t me) noexcept {
  if (try_lock_fast(me)) return LockState::acquired;
  const std::uint64_t seen = word.load(std::memory_order_relaxed);  // relaxed: take_over CASes
  if (seen == 0) return try_lock_fast(me) ? LockState::acquired : LockState::timeout;
  if ((seen & ~kWaiters) == lock_word(me)) return LockState::self_deadlock;
  return take_over(seen, me) ? LockState::owner_died : LockState::timeout;
}

LockState RobustLock::lock_slow(std::uint64_t me, Deadline deadline,
                                std::chrono::nanoseconds spin) {
  const std::uint64_t mine = lock_word(me);
  // relaxed loads below: each decision is confirmed by an acquire CAS.
  if ((word.load(std::memory_order_relaxed) & ~kWaiters) == mine) return LockState::self_deadlock;
  if (spin.count() > 0) {
    const Deadline spin_end = std::min(deadline, Clock::now() + spin);
    for (unsigned i = 1;; ++i) {
      cpu_relax();
      if (word.load(std::memory_order_relaxed) == 0 && try_lock_fast(me)) {
        return LockState::acquired;
      }
      if ((i & 63) == 0 && Clock::now() >= spin_end) break;
    }
  }
  // The owner is checked once it has held the lock for kOwnerCheck while we
  // waited (measured here, so wake-ups by signals or other lockers do not
  // postpone the check), and once more before a timed lock gives up.
  std::uint64_t watched = 0;
  Deadline watched_since{};
  for (;;) {
    std::uint64_t seen = word.load(std::memory_order_relaxed);
    if (seen == 0) {
      // We may have slept: others may sleep too, so keep kWaiters set.
      // acquire: as in try_lock_fast().
      if (word.compare_exchange_strong(seen, mine | kWaiters, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return LockState::acquired;
      }
      continue;
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
    const auto now = Clock::now();
    if ((seen & ~kWaiters) != watched) {
      watched = seen & ~kWaiters;
      watched_since = now;
    }
    const bool timed_out = now >= deadline;
    if (timed_out || now - watched_since >= kOwnerCheck) {
      if (take_over(seen, me)) return LockState::owner_died;
      if (timed_out) return LockState::timeout;
      watched_since = now;  // alive: look again after another period
    }
    sleeps.fetch_add(1, std::memory_order_relaxed);  // stats
    // The low half of `seen` is what the futex compares (kWaiters and the tid).
    futex_wait(futex_half(), static_cast<std::uint32_t>(seen),
               std::min(deadline, watched_since + kOwnerCheck));
  }
}

void RobustLock::wake_one() noexcept { futex_wake(futex_half(), 1); }

}  // namespace sleet::detail
