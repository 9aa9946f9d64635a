// sleet/detail/robust_lock.hpp — a futex mutex in shared memory that
// survives the death of its owner.
//
// The futex word holds the owner's thread id (gettid) and a waiters bit:
//
//   word == 0                 free
//   word == tid               held by thread `tid`, nobody sleeps
//   word == tid | kWaiters    held, and someone may sleep on the word
//
// lock:   CAS 0 -> tid (fast path). Otherwise spin for the spin budget,
//         then set kWaiters and futex_wait on the word. A locker that has
//         slept takes the lock as tid | kWaiters, since others may still
//         sleep (U. Drepper, "Futexes Are Tricky", mutex 3).
// unlock: exchange 0; futex_wake one sleeper if kWaiters was set.
//
// Dead owners. Holding the owner's tid in the word makes the owner known
// at every instant, with no window between taking the lock and recording
// who took it. A sleeper wakes at least every kOwnerCheck, and a locker
// whose deadline has come (try_lock, a short lock_for) looks once before it
// gives up; if the word has not changed and its owner thread is gone (or a
// zombie), the locker takes the lock over with one CAS from the dead
// owner's word to its own, sets `dirty`, and reports LockState::owner_died
// so the caller can repair what the lock protects. `dirty` stays set
// until the holder unlocks, so a second death before the repair is
// reported again. The kernel's robust
// futex list would report a death at once, but glibc owns each thread's
// list (its entries have pthread_mutex_t's layout), so sleet cannot add its
// own locks to it; the check period bounds the delay instead.
//
// Limits: tids are compared within one pid namespace, and a tid reused by
// a new thread before the check looks alive (the lock then waits for that
// thread to exit).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"

namespace sleet::detail {

enum class LockState { acquired, owner_died, timeout, self_deadlock };

inline constexpr std::uint32_t kWaiters = 0x80000000u;
inline constexpr std::uint32_t kTidMask = ~kWaiters;  // Linux tids are < 2^22
inline constexpr std::chrono::milliseconds kOwnerCheck{10};

struct alignas(kCacheLine) RobustLock {
  std::atomic<std::uint32_t> word{0};       // futex word: owner tid | kWaiters
  std::atomic<std::uint32_t> dirty{0};      // 1: the holder took it from a dead owner
  std::atomic<std::uint64_t> sleeps{0};     // times a locker slept (stats)
  std::atomic<std::uint64_t> recoveries{0}; // dead owners taken over (stats)

  bool try_lock_fast(std::uint32_t tid) noexcept {
    std::uint32_t expected = 0;
    // acquire: pairs with the release exchange in unlock(); the critical
    // section of the previous holder happens-before ours.
    return word.compare_exchange_strong(expected, tid, std::memory_order_acquire,
                                        std::memory_order_relaxed);
  }
  // Fast path, then the spin/sleep/dead-owner slow path.
  LockState lock(std::uint32_t tid, Deadline deadline, std::chrono::nanoseconds spin) {
    if (SLEET_LIKELY(try_lock_fast(tid))) return LockState::acquired;
    return lock_slow(tid, deadline, spin);
  }
  // One attempt; on failure, takes the lock over if its owner is dead.
  LockState try_lock(std::uint32_t tid) noexcept;
  // False if `tid` does not hold the lock (nothing changes then).
  bool unlock(std::uint32_t tid) noexcept {
    // relaxed: only the owner's own earlier store can make this equal tid.
    if (SLEET_UNLIKELY((word.load(std::memory_order_relaxed) & kTidMask) != tid)) return false;
    // relaxed: published by the release exchange below.
    dirty.store(0, std::memory_order_relaxed);
    // release: publishes the critical section to the next locker's acquire.
    if (SLEET_UNLIKELY(word.exchange(0, std::memory_order_release) & kWaiters)) wake_one();
    return true;
  }
  std::uint32_t owner() const noexcept {
    return word.load(std::memory_order_relaxed) & kTidMask;  // relaxed: a snapshot
  }
  bool owner_died() const noexcept {
    return dirty.load(std::memory_order_relaxed) != 0;  // relaxed: read by the holder only
  }

  LockState lock_slow(std::uint32_t tid, Deadline deadline, std::chrono::nanoseconds spin);
  void wake_one() noexcept;

 private:
  // CAS from a dead owner's `seen` word to ours (keeping kWaiters).
  bool take_over(std::uint32_t seen, std::uint32_t tid) noexcept;
};
static_assert(sizeof(RobustLock) == kCacheLine);

}  // namespace sleet::detail
