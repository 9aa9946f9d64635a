// sleet/detail/owner_word.hpp — the dead-owner lock shared by every lock
// word in sleet that names its holder: the robust lock (robust_lock.hpp),
// a store's stripe and overflow locks (kv_table.hpp), the spsc role tokens
// (spsc_ring.hpp).
//
// An owner word is a 64-bit atomic that is 0 while free and otherwise names
// its holder's identity (detail/process.hpp: pid or tid plus start time, so
// a recycled pid is not mistaken for it), through an encoding:
//
//   IdentityWord        word == identity          store locks, spsc roles
//   RobustLock's        word == halves swapped | kWaiters (its low half is
//                       a futex word: tid and a waiters bit)
//
// Taking one:
//   try_owner_word   one attempt: CAS 0 -> mine; or, if the word names an
//                    identity that no longer runs, CAS from that word to
//                    mine (two takers cannot both win; bits the encoding
//                    keeps, such as kWaiters, survive). A take-over tells
//                    the caller that what the lock protects may be half
//                    written: it must repair before using it.
//   spin_owner_word  tries until taken or a spin deadline: a pause between
//                    tries for kPureSpinTries (a running holder is inside a
//                    short critical section), then a yield (it may be
//                    waiting for our CPU), then a nap of kOwnerNap (it is
//                    slow, stopped or dead); past the pure spin, every
//                    kOwnerCheckTries tries check the holder's liveness
//                    (identity_alive() reads /proc: microseconds, so not on
//                    every try).
//   lock_owner_word  spin_owner_word with no deadline, for words nobody
//                    sleeps on (the store's locks: a holder is inside one
//                    short write).
//
// Synchronization: every CAS that takes a word is acquire, and every store
// that frees it is release (unlock_owner_word(), RobustLock::unlock()): the
// previous holder's critical section happens-before ours. A take-over CAS
// is acquire too: whatever a dead holder wrote is as visible as it will ever
// be, and the repair reads it.
//
// The spsc role tokens take a dead holder's word with try_owner_word() but
// never wait: a live holder is errc::busy at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"
#include "sleet/detail/process.hpp"

namespace sleet::detail {

// A holder that is not running gets this long between tries once the
// yields are spent (kOwnerYieldTries): long enough to leave the CPU to it,
// short against a store write that was preempted.
inline constexpr std::chrono::microseconds kOwnerNap{50};
// Tries (pauses, then yields) before a waiter starts to nap: with several
// runnable processes per CPU a preempted holder needs a few time slices.
inline constexpr unsigned kOwnerYieldTries = 1024;
// Past the pure spin, the holder's liveness is checked every this many
// tries (one check costs about as much as a few dozen yields).
inline constexpr unsigned kOwnerCheckTries = 64;

// The encoding of the store's locks and the spsc roles: the identity itself.
struct IdentityWord {
  static constexpr std::uint64_t word_of(std::uint64_t identity) noexcept { return identity; }
  static constexpr std::uint64_t owner_of(std::uint64_t word) noexcept { return word; }
  // Bits of a dead holder's word that a take-over keeps (none).
  static constexpr std::uint64_t kept(std::uint64_t) noexcept { return 0; }
};

enum class OwnerTake { acquired, taken_over, held };

// One attempt on `word` for identity `me`. `seen` is what the caller last
// read from the word; it is updated to what the word held when the attempt
// failed (held: a live holder's word, or one that changed under us).
template <class Encoding = IdentityWord>
OwnerTake try_owner_word(std::atomic<std::uint64_t>& word, std::uint64_t me,
                         std::uint64_t& seen) noexcept {
  if (seen == 0) {
    // acquire: pairs with the release store that freed the word; the
    // previous holder's critical section happens-before ours.
    return word.compare_exchange_strong(seen, Encoding::word_of(me), std::memory_order_acquire,
                                        std::memory_order_relaxed)
               ? OwnerTake::acquired
               : OwnerTake::held;
  }
  if (identity_alive(Encoding::owner_of(seen))) return OwnerTake::held;
  // acquire: what the dead holder wrote is as visible as it will ever be;
  // the CAS fails if anyone else changed the word since we looked.
  return word.compare_exchange_strong(seen, Encoding::word_of(me) | Encoding::kept(seen),
                                      std::memory_order_acquire, std::memory_order_relaxed)
             ? OwnerTake::taken_over
             : OwnerTake::held;
}

// Sleeps kOwnerNap (a system call: core/robust_lock.cpp).
void owner_nap() noexcept;

// Tries `word` until it is taken or `spin_end` passes (then `held`, with
// `seen` the word's last value). The pacing and the liveness checks are
// described above.
template <class Encoding = IdentityWord>
OwnerTake spin_owner_word(std::atomic<std::uint64_t>& word, std::uint64_t me, Deadline spin_end,
                          std::uint64_t& seen) noexcept {
  for (unsigned tries = 1;; ++tries) {
    // relaxed: a hint; try_owner_word()'s CAS decides.
    seen = word.load(std::memory_order_relaxed);
    const bool check = seen != 0 && tries > kPureSpinTries && tries % kOwnerCheckTries == 0;
    if (seen == 0 || check) {
      const OwnerTake t = try_owner_word<Encoding>(word, me, seen);
      if (t != OwnerTake::held) return t;
    }
    if (SLEET_LIKELY(tries <= kPureSpinTries)) {
      cpu_relax();
    } else if (tries <= kOwnerYieldTries) {
      yield_cpu();
    } else {
      owner_nap();
    }
    // Reading the clock costs more than a pause (but less than a yield).
    if (spin_end != kForever && ((tries & 63) == 0 || tries > kPureSpinTries) &&
        Clock::now() >= spin_end) {
      seen = word.load(std::memory_order_relaxed);  // relaxed: as above
      return OwnerTake::held;
    }
  }
}

// Takes an IdentityWord lock for the calling process, however long its
// holder takes. True if it was taken over from a dead holder: the caller
// repairs what the lock protects.
inline bool lock_owner_word(std::atomic<std::uint64_t>& word) noexcept {
  const std::uint64_t me = current_identity();
  std::uint64_t seen = 0;
  const OwnerTake t = try_owner_word(word, me, seen);
  if (SLEET_LIKELY(t == OwnerTake::acquired)) return false;
  return spin_owner_word(word, me, kForever, seen) == OwnerTake::taken_over;
}

inline void unlock_owner_word(std::atomic<std::uint64_t>& word) noexcept {
  // release: publishes the critical section to the next holder's acquire
  // CAS in try_owner_word().
  word.store(0, std::memory_order_release);
}

}  // namespace sleet::detail
