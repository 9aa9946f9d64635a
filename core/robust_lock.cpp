// RobustLock slow paths: spinning, sleeping, and taking over from a dead
// owner. The protocol is described in detail/robust_lock.hpp; the owner
// word's take-over and pacing in detail/owner_word.hpp (its nap is here).
#include "sleet/detail/robust_lock.hpp"

#include <time.h>

#include <algorithm>

#include "sleet/detail/process.hpp"

namespace sleet::detail {

void owner_nap() noexcept {
  constexpr auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kOwnerNap).count();
  constexpr timespec nap{0, ns};
  ::nanosleep(&nap, nullptr);
}

LockState RobustLock::taken(OwnerTake t, LockState busy) noexcept {
  if (t == OwnerTake::acquired) return LockState::acquired;
  if (t == OwnerTake::held) return busy;
  // relaxed: read only by the holder (us) until unlock()'s release.
  dirty.store(1, std::memory_order_relaxed);
  recoveries.fetch_add(1, std::memory_order_relaxed);  // stats
  return LockState::owner_died;
}

LockState RobustLock::try_lock(std::uint64_t me) noexcept {
  if (try_lock_fast(me)) return LockState::acquired;
  // relaxed: try_owner_word()'s acquire CAS decides.
  std::uint64_t seen = word.load(std::memory_order_relaxed);
  if ((seen & ~kWaiters) == lock_word(me)) return LockState::self_deadlock;
  return taken(try_owner_word<LockWordEncoding>(word, me, seen), LockState::timeout);
}

LockState RobustLock::lock_slow(std::uint64_t me, Deadline deadline,
                                std::chrono::nanoseconds spin) {
  const std::uint64_t mine = lock_word(me);
  // relaxed loads below: each decision is confirmed by an acquire CAS.
  if ((word.load(std::memory_order_relaxed) & ~kWaiters) == mine) return LockState::self_deadlock;
  if (spin.count() > 0) {
    std::uint64_t seen = 0;
    const OwnerTake t = spin_owner_word<LockWordEncoding>(
        word, me, std::min(deadline, Clock::now() + spin), seen);
    if (t != OwnerTake::held) return taken(t, LockState::timeout);
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
      // seen != 0 here: one take-over attempt if its owner is dead.
      std::uint64_t probe = seen;
      const OwnerTake t = try_owner_word<LockWordEncoding>(word, me, probe);
      if (t != OwnerTake::held) return taken(t, LockState::timeout);
      if (timed_out) return LockState::timeout;
      watched_since = now;  // alive: look again after another period
      if (probe != seen) continue;  // the word moved under the attempt: look again
    }
    sleeps.fetch_add(1, std::memory_order_relaxed);  // stats
    // The low half of `seen` is what the futex compares (kWaiters and the tid).
    futex_wait(futex_half(), static_cast<std::uint32_t>(seen),
               std::min(deadline, watched_since + kOwnerCheck));
  }
}

void RobustLock::wake_one() noexcept { futex_wake(futex_half(), 1); }

}  // namespace sleet::detail
