// sleet/detail/robust_lock.hpp — a futex mutex in shared memory that
// survives the death of its owner, and whose owner a recycled thread id
// cannot impersonate.
//
// The lock word is 64 bits: the owner's thread identity (detail/process.hpp:
// tid plus the thread's start time) with its halves swapped, so the low 32
// bits, which are the futex word, hold the tid and a waiters bit:
//
//   word == 0                          free
//   word == start << 32 | tid          held by that thread, nobody sleeps
//   word == start << 32 | tid | kWaiters   held, someone may sleep on it
//
// lock:   CAS 0 -> lock_word(me) (fast path). Otherwise spin for the spin
//         budget (spin_owner_word(), owner_word.hpp: pauses, then yields),
//         then set kWaiters and futex_wait on the low half. A locker that
//         has slept takes the lock with kWaiters set, since others may
//         still sleep (U. Drepper, "Futexes Are Tricky", mutex 3).
// unlock: exchange 0; futex_wake one sleeper if kWaiters was set.
//
// Dead owners. The word names its owner at every instant, completely: one
// CAS takes the lock and records who took it, so there is no window in
// which a holder is unknown or half-known. During the spin (every
// kOwnerCheckTries tries past the pure spin), once one owner has held the
// lock for kOwnerCheck while a locker sleeps, and before a timed lock or
// try_lock gives up, the locker checks that identity (identity_alive():
// the tid runs and started at the recorded tick, so a recycled tid is not
// it). If it is gone, the locker takes the lock over with one CAS from the dead
// owner's word to its own (two lockers cannot both win it: try_owner_word()
// of owner_word.hpp, the one dead-owner take-over of sleet), sets `dirty`,
// and reports LockState::owner_died so the caller can repair what the lock
// protects. `dirty` stays set until the holder unlocks, so a second death
// before the repair is reported again. The kernel's robust futex list would
// report a death at once, but glibc owns each thread's list (its entries
// have pthread_mutex_t's layout), so sleet cannot add its own locks to it;
// the check period bounds the delay instead.
//
// The futex syscalls name the word's low half (little-endian: its first 4
// bytes); every C++ access is to the whole 64-bit atomic.
//
// Limit: every process using a lock must share one pid namespace (a tid
// from another namespace cannot be checked; it is judged by kill() only).
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstddef>

#include "sleet/detail/fault.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/owner_word.hpp"
#include "sleet/detail/platform.hpp"

namespace sleet::detail {

enum class LockState { acquired, owner_died, timeout, self_deadlock };

inline constexpr std::uint64_t kWaiters = 0x80000000u;
inline constexpr std::uint64_t kTidMask = 0x7FFFFFFFu;  // Linux tids are < 2^22
inline constexpr std::chrono::milliseconds kOwnerCheck{10};

// The lock word of the owner `identity` (a current_thread_identity()).
constexpr std::uint64_t lock_word(std::uint64_t identity) noexcept {
  return identity << 32 | identity >> 32;
}
// The owner identity a lock word names (0: free).
constexpr std::uint64_t word_owner(std::uint64_t word) noexcept {
  return (word & kTidMask) << 32 | word >> 32;
}
// RobustLock's owner-word encoding (owner_word.hpp); a take-over keeps kWaiters.
struct LockWordEncoding {
  static constexpr std::uint64_t word_of(std::uint64_t identity) noexcept { return lock_word(identity); }
  static constexpr std::uint64_t owner_of(std::uint64_t word) noexcept { return word_owner(word); }
  static constexpr std::uint64_t kept(std::uint64_t word) noexcept { return word & kWaiters; }
};

struct alignas(kCacheLine) RobustLock {
  std::atomic<std::uint64_t> word{0};       // lock_word(owner) | kWaiters; low half: futex
  std::atomic<std::uint32_t> dirty{0};      // 1: the holder took it from a dead owner
  std::atomic<std::uint64_t> sleeps{0};     // times a locker slept (stats)
  std::atomic<std::uint64_t> recoveries{0}; // dead owners taken over (stats)

  // `me` is the caller's current_thread_identity() everywhere below.
  bool try_lock_fast(std::uint64_t me) noexcept {
    std::uint64_t seen = 0;
    // One acquire CAS 0 -> lock_word(me); pairs with the release exchange
    // in unlock(): the previous holder's critical section happens-before ours.
    return try_owner_word<LockWordEncoding>(word, me, seen) == OwnerTake::acquired;
  }
  // Fast path, then the spin/sleep/dead-owner slow path.
  LockState lock(std::uint64_t me, Deadline deadline, std::chrono::nanoseconds spin) {
    const LockState s = SLEET_LIKELY(try_lock_fast(me)) ? LockState::acquired : lock_slow(me, deadline, spin);
    if (s == LockState::acquired || s == LockState::owner_died) SLEET_FAULT_POINT("lock.held");
    return s;
  }
  // One attempt; on failure, takes the lock over if its owner is dead.
  LockState try_lock(std::uint64_t me) noexcept;
  // False if `me` does not hold the lock (nothing changes then).
  bool unlock(std::uint64_t me) noexcept {
    // relaxed: only the owner's own earlier CAS can make this equal ours.
    if (SLEET_UNLIKELY((word.load(std::memory_order_relaxed) & ~kWaiters) != lock_word(me))) {
      return false;
    }
    // relaxed: published by the release exchange below.
    dirty.store(0, std::memory_order_relaxed);
    // release: publishes the critical section to the next locker's acquire.
    if (SLEET_UNLIKELY(word.exchange(0, std::memory_order_release) & kWaiters)) wake_one();
    return true;
  }
  // The owner's identity (0: free); identity_pid() of it is its tid.
  std::uint64_t owner() const noexcept {
    return word_owner(word.load(std::memory_order_relaxed));  // relaxed: a snapshot
  }
  bool owner_died() const noexcept {
    return dirty.load(std::memory_order_relaxed) != 0;  // relaxed: read by the holder only
  }

  LockState lock_slow(std::uint64_t me, Deadline deadline, std::chrono::nanoseconds spin);
  void wake_one() noexcept;

 private:
  // What try_owner_word() or spin_owner_word() returned, as a LockState
  // (`held` is `busy`); a take-over sets `dirty`.
  LockState taken(OwnerTake t, LockState busy) noexcept;
  // The futex word: the low half of `word` (little-endian).
  std::atomic<std::uint32_t>* futex_half() noexcept {
    static_assert(std::endian::native == std::endian::little);
    return reinterpret_cast<std::atomic<std::uint32_t>*>(&word);
  }
};
static_assert(sizeof(RobustLock) == kCacheLine);
static_assert(offsetof(RobustLock, dirty) == 8 && offsetof(RobustLock, sleeps) == 16 &&
              offsetof(RobustLock, recoveries) == 24);

}  // namespace sleet::detail
