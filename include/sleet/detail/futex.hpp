// sleet/detail/futex.hpp — layer 2: futex words and the eventcount protocol.
//
// An EventCount lets one side sleep until the other publishes something,
// with no system call on the publisher's fast path when nobody sleeps:
//
//   waiter (slow path, wait_event)          publisher (fast path, notify)
//   ------------------                      ---------------------
//   spin on try_op() for the spin budget    publish (release store)
//   waiters += 1                   (1)      light_fence()                (3)
//   e = epoch                      (2)      if waiters != 0:             (4)
//   heavy_fence()                               epoch += 1; futex_wake(epoch)
//   if try_op(): waiters -= 1, done
//   futex_wait(epoch, e, deadline)
//   waiters -= 1, retry
//
// No lost wake-up: (1)-heavy_fence-try_op and publish-(3)-(4) form a Dekker
// pair, so either the waiter's re-check sees the publication or the
// publisher sees waiters != 0 and bumps the epoch. If it bumps before (2),
// the waiter reads the new epoch with acquire and therefore also sees the
// publication; if after (2), futex_wait(e) returns at once or is woken.
//
// Asymmetric fences. A store-load fence costs tens of cycles, and the
// publisher would pay it on every message. Where the kernel offers
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), each process registers once,
// light_fence() is only a compiler barrier, and heavy_fence() (paid by a
// waiter about to sleep, already a slow path) makes the kernel run a full
// barrier on every CPU running a registered process. heavy_fence() uses
// membarrier whenever the kernel supports it, even in a process that opted
// out of the light path (SLEET_NO_MEMBARRIER=1), so processes that differ in
// that choice still pair correctly.
//
// The protocol runs over a pair of 32-bit words {epoch, waiters}, an
// EventWords, wherever they live: in an EventCount (channels, topics), or
// as fields of another shared struct (a store stripe's changes/watchers).
// EventWords::notify() is the publisher's half, wait_event() the waiter's;
// block_on() is a spin phase in front of wait_event(). Nothing else in the
// library announces and sleeps by hand (a WaitSet announces on many pairs
// and sleeps on all their epochs at once, the same steps: wait_set.cpp).
//
// Deadlines are absolute CLOCK_MONOTONIC times (std::chrono::steady_clock is
// CLOCK_MONOTONIC on Linux), so a retried wait never stretches its timeout.
// Futex words are shared (never FUTEX_PRIVATE_FLAG): they live in segments
// mapped by several processes.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "sleet/detail/platform.hpp"

namespace sleet::detail {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline constexpr Deadline kForever = Deadline::max();

// Converts a relative timeout to an absolute deadline without overflow; a
// timeout of zero or less is "now".
inline Deadline deadline_after(std::chrono::nanoseconds timeout) noexcept {
  const auto now = Clock::now();
  if (timeout.count() <= 0) return now;
  if (timeout >= Deadline::max() - now) return kForever;
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

// Sleeps while *word == expected, until woken or the deadline passes.
// Returns false only on timeout; spurious returns are true.
bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                Deadline deadline) noexcept;
void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept;

// One word of a vectored wait: sleep while *word == expected.
struct FutexWaitItem {
  std::atomic<std::uint32_t>* word;
  std::uint32_t expected;
};
enum class WaitvResult { woken, timeout, unsupported };
// Sleeps until one of the words no longer holds its expected value (or is
// woken, or the deadline passes): futex_waitv (Linux 5.16+), at most 128
// items. `woken` also covers a value that differed at once and a signal;
// `unsupported` means the kernel lacks the call (the caller falls back).
WaitvResult futex_waitv(const FutexWaitItem* items, std::size_t count, Deadline deadline) noexcept;

extern bool g_light_fence;  // set once at start-up: membarrier registration worked

// The publisher's half of the store-load fence (see the essay above).
inline void light_fence() noexcept {
  if (SLEET_LIKELY(g_light_fence)) {
    asm volatile("" ::: "memory");
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}
// The waiter's half: membarrier when the kernel has it, plus a full fence.
void heavy_fence() noexcept;
// Whether this process uses the asymmetric (membarrier) scheme.
bool asymmetric_fences() noexcept;

// The eventcount's two words, wherever they live (see the essay above):
// notify() is the publisher's half, wait_event() below the waiter's.
struct EventWords {
  std::atomic<std::uint32_t>* epoch;    // futex word
  std::atomic<std::uint32_t>* waiters;  // announced sleepers

  // Publisher side, after the release store that published the change.
  // True if it woke (or may have woken) someone.
  bool notify() const noexcept {
    light_fence();  // (3): orders the publication before the load (4)
    // relaxed: the fence above provides the store-load order; pairs with the
    // waiter's increment (1) through heavy_fence().
    if (SLEET_LIKELY(waiters->load(std::memory_order_relaxed) == 0)) return false;  // (4)
    wake();
    return true;
  }
  // Bumps the epoch and wakes every sleeper, whether or not any announced
  // itself (close(), recovery, a failed test).
  void wake() const noexcept;
};

// Announces a waiter on `w` for as long as it lives, even if the re-check
// throws: a count left behind would cost every later publish a futex_wake.
class Announce {
 public:
  explicit Announce(EventWords w) noexcept : waiters_(*w.waiters) {
    // relaxed: ordered before the re-check by heavy_fence(); pairs with the
    // publisher's load (4) in notify().
    waiters_.fetch_add(1, std::memory_order_relaxed);  // (1)
  }
  ~Announce() {
    // relaxed: a stale count only costs the publisher one spare wake.
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  Announce(const Announce&) = delete;
  Announce& operator=(const Announce&) = delete;

 private:
  std::atomic<std::uint32_t>& waiters_;
};

enum class Poll { ready, empty, closed };

// The waiter's slow path on `w`: announce, read the epoch, heavy_fence(),
// re-check try_op(), sleep until the epoch moves or the deadline passes,
// re-check; until try_op() returns Poll::ready or Poll::closed. Returns
// Poll::empty at the deadline. The caller has just tried (a deadline that
// has already passed returns at once, without announcing). `sleeps`, if
// given, counts the times it went to sleep (relaxed, stats only).
template <class TryOp>
Poll wait_event(EventWords w, TryOp&& try_op, Deadline deadline,
                std::atomic<std::uint64_t>* sleeps = nullptr) {
  for (;;) {
    // With the deadline gone, announcing (and paying a membarrier) would be wasted.
    if (deadline != kForever && Clock::now() >= deadline) return Poll::empty;
    Poll p;
    {
      Announce announce(w);
      // acquire: if we read an epoch bumped by wake() (release), we also see
      // what the publisher published before it.
      const std::uint32_t epoch = w.epoch->load(std::memory_order_acquire);  // (2)
      heavy_fence();
      p = try_op();
      if (p == Poll::empty && Clock::now() < deadline) {
        if (sleeps != nullptr) sleeps->fetch_add(1, std::memory_order_relaxed);  // stats only
        futex_wait(w.epoch, epoch, deadline);
        p = try_op();
      }
    }
    if (p != Poll::empty) return p;
    if (Clock::now() >= deadline) return Poll::empty;
  }
}

// Lives in shared memory, 64-byte aligned, one per direction of waiting.
struct alignas(kCacheLine) EventCount {
  std::atomic<std::uint32_t> epoch{0};    // futex word
  std::atomic<std::uint32_t> waiters{0};  // announced sleepers
  std::atomic<std::uint64_t> wakes{0};    // notify() calls that woke someone (stats)

  EventWords words() noexcept { return {&epoch, &waiters}; }
  // Publisher side, after the release store that published the change.
  void notify() noexcept {
    if (SLEET_UNLIKELY(words().notify())) count_wake();
  }
  // Wakes every sleeper unconditionally (EventWords::wake()).
  void notify_slow() noexcept {
    words().wake();
    count_wake();
  }

 private:
  void count_wake() noexcept { wakes.fetch_add(1, std::memory_order_relaxed); }  // stats only
};
static_assert(sizeof(EventCount) == kCacheLine);
static_assert(offsetof(EventCount, waiters) == 4 && offsetof(EventCount, wakes) == 8);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// Gives the CPU to another runnable thread, if there is one (sched_yield).
void yield_cpu() noexcept;

// Tries of a spin separated only by a pause. A peer running on another CPU
// answers within a few cross-core round trips (60-400 ns each here), so 64
// tries (a few microseconds) catch it; past them the peer is most likely
// not running at all, and every further try first yields the CPU, which it
// may be waiting for (more runnable processes than CPUs).
inline constexpr unsigned kPureSpinTries = 64;

// Waits until try_op() returns Poll::ready or Poll::closed, spinning for up
// to `spin` before sleeping on `ec`. Returns Poll::empty on timeout.
// `sleeps` counts the times this side went to sleep (relaxed, stats only).
template <class TryOp>
Poll block_on(EventCount& ec, TryOp&& try_op, std::chrono::nanoseconds spin, Deadline deadline,
              std::atomic<std::uint64_t>& sleeps) {
  if (spin.count() > 0) {
    const Deadline spin_end = Clock::now() + spin;
    for (unsigned i = 1;; ++i) {
      if (SLEET_LIKELY(i <= kPureSpinTries)) {
        cpu_relax();
      } else {
        yield_cpu();
      }
      const Poll p = try_op();
      if (p != Poll::empty) return p;
      // Reading the clock costs more than a pause (but less than a yield).
      if ((i & 63) == 0 || i > kPureSpinTries) {
        const auto now = Clock::now();
        if (now >= spin_end) break;
        if (now >= deadline) return Poll::empty;
      }
    }
  }
  return wait_event(ec.words(), try_op, deadline, &sleeps);
}

// The wait of the primitives whose futex word is their state (semaphore,
// event): sleeps on `word` while it reads `expected`, announcing itself in
// `waiters`; the other side changes the word with a seq_cst RMW and then
// wakes only if it reads waiters != 0 (semaphore.hpp has the argument).
// Returns true once done() does, false at the deadline.
template <class Done>
bool wait_announced(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                    std::atomic<std::uint32_t>& waiters, std::atomic<std::uint64_t>& sleeps,
                    Done&& done, std::chrono::nanoseconds spin, Deadline deadline) noexcept {
  if (spin.count() > 0) {
    const Deadline spin_end = std::min(deadline, Clock::now() + spin);
    for (unsigned i = 1;; ++i) {
      cpu_relax();
      if (done()) return true;
      if ((i & 63) == 0 && Clock::now() >= spin_end) break;
    }
  }
  for (;;) {
    if (Clock::now() >= deadline) return false;
    // seq_cst: the announcement is ordered before the re-check below. The
    // guarantee rests on the kernel: futex_wait() executes a full barrier
    // (smp_mb) before it reads the word, and sleeps only if it still reads
    // `expected`; the other side's seq_cst RMW on the word comes before its
    // load of `waiters`. So either the kernel sees the change or the other
    // side sees us. done()'s own loads may be weaker: they are a shortcut.
    waiters.fetch_add(1, std::memory_order_seq_cst);
    bool finished = done();
    if (!finished) {
      sleeps.fetch_add(1, std::memory_order_relaxed);  // stats
      futex_wait(&word, expected, deadline);
      finished = done();
    }
    // relaxed: a late decrement only costs the other side a spare wake.
    waiters.fetch_sub(1, std::memory_order_relaxed);
    if (finished) return true;
  }
}

}  // namespace sleet::detail
