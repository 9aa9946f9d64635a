// sleet/detail/ring_common.hpp — what both rings share: the closed flag, the
// two eventcounts and the slow-path counters.
//
//   +0    closed (read-mostly line)
//   +128  data_ec   receivers sleep here until something is published
//   +256  space_ec  senders sleep here until space is released
//   +384  counters written only on slow paths (full, sleeps, aborted claims,
//         claims recovered from dead processes)
//
// Closing is two-phase (ChannelCore::close()):
//   kClosing  senders refuse from now on; a send already past its check may
//             still be publishing;
//   kClosed   every send that did not refuse has published (spsc: the
//             sender's in_send word is clear; mpmc: tickets below the final
//             one are claimed, and receivers drain up to it).
// Receivers report errc::closed only in kClosed, once they find nothing
// more, so a send that returned normally is never stranded.
//
// A closer may die half-way. Before its first step it stores its process
// identity in `closer` and, once sends are refused, wakes the receivers;
// from then on until kClosed a receiver waits in slices of kRecoverAfter,
// and at the end of each asks whether the closer's process is gone: if so
// it finishes the close itself (close() is idempotent and may run in many
// processes at once). A closer that dies before it woke anyone leaves an
// open channel (nothing was refused yet); the next close() or blocking
// wait finishes it.
//
// Synchronization
// `closed` is stored with release by close() and loaded with acquire by the
// checks below, so everything published before a phase is visible to whoever
// sees that phase.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"

namespace sleet::detail {

// How long a slot must stay taken, unchanged, before its owner's process is
// looked up (a /proc read): a send or receive holds a slot for nanoseconds,
// so this is far beyond any live holder's step and short for a human.
inline constexpr std::chrono::milliseconds kRecoverAfter{10};
// True when this thread's successive looks have seen `slot` hold exactly
// `word` for kRecoverAfter (then the clock restarts, so a live holder is
// asked about no more often than that). Rings' recovery paths (mpmc,
// broadcast) use it so that a live holder mid-step costs no /proc read.
bool stuck_for_long(const void* slot, std::uint64_t word) noexcept;

inline constexpr std::uint32_t kOpen = 0;
inline constexpr std::uint32_t kClosing = 1;
inline constexpr std::uint32_t kClosed = 2;

struct RingCommon {
  alignas(kFalseSharing) std::atomic<std::uint32_t> closed{kOpen};
  std::atomic<std::uint64_t> closer{0};  // identity of the last process that began close(); 0: none
  alignas(kFalseSharing) EventCount data_ec;   // receivers wait for data
  alignas(kFalseSharing) EventCount space_ec;  // senders wait for space
  alignas(kFalseSharing) std::atomic<std::uint64_t> times_full{0};
  std::atomic<std::uint64_t> send_sleeps{0};
  std::atomic<std::uint64_t> receive_sleeps{0};
  std::atomic<std::uint64_t> aborted{0};  // mpmc claims given up (tickets that carry no message)
  // mpmc recovery (mpmc_ring.hpp, "Dead processes"): claims whose producer
  // died before publishing (no send() returned for them), and messages taken
  // by a receiver that died before it returned them.
  std::atomic<std::uint64_t> abandoned{0};
  std::atomic<std::uint64_t> lost{0};

  // Senders: has close() begun?
  bool refuses_sends() const noexcept {
    // acquire: pairs with the release stores in ChannelCore::close().
    return closed.load(std::memory_order_acquire) != kOpen;
  }
  // Receivers: has close() finished, so that empty means drained?
  bool is_closed() const noexcept {
    // acquire: pairs with the release of kClosed in ChannelCore::close().
    return closed.load(std::memory_order_acquire) == kClosed;
  }
  // Has a close() begun that has not finished? (Its closer may be dead.)
  bool close_in_progress() const noexcept {
    // relaxed: a hint that makes a receiver wait in slices; close_abandoned()
    // decides. A closer's store reaches a sleeper through the epoch of the
    // wake that follows it (release there, acquire in block_on).
    return closer.load(std::memory_order_relaxed) != 0 && !is_closed();
  }
  // A close() began, has not finished, and its closer's process is gone: a
  // /proc read, for the end of a wait's slice only.
  bool close_abandoned() const noexcept;
};
static_assert(offsetof(RingCommon, closer) == 8);
static_assert(sizeof(RingCommon) == 4 * kFalseSharing);
static_assert(alignof(RingCommon) == kFalseSharing);

// The receivers' waits, the same for every port (spsc, mpmc, subscriber):
// Port provides try_peek(core, r) and common(). peek_until() tries once
// inline and leaves the spin-then-sleep on data_ec out of line.
template <class Port>
class PeekWaits {
 public:
  template <class Core, class Record, class Stop>
  SLEET_INLINE Poll peek_until(const Core& core, Record& r, Deadline deadline, Stop&& stop) {
    const Poll p = self().try_peek(core, r);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    return self().wait_peek(core, r, deadline, stop);  // a port may wrap the wait (mpmc: recovery slices)
  }
  // While a close is in progress the wait is sliced (its closer may die
  // before it wakes anyone again), and at each slice's end a closer found
  // dead has its close finished here (core.close()). A
  // close that begins during the wait ends the block_on (its wake makes the
  // re-check see `closer`), so the wait goes on in slices.
  template <class Core, class Record, class Stop>
  SLEET_NOINLINE Poll wait_peek(const Core& core, Record& r, Deadline deadline, Stop& stop) {
    RingCommon& c = self().common();
    for (;;) {
      const bool closing = c.close_in_progress();
      bool began = false;
      const Poll p = block_on(
          c.data_ec,
          [&] {
            if (stop()) return Poll::closed;
            const Poll q = self().try_peek(core, r);
            if (q != Poll::empty || closing || !c.close_in_progress()) return q;
            began = true;  // not a result: leaves block_on to wait in slices
            return Poll::closed;
          },
          core.spin(), closing ? std::min(deadline, Clock::now() + kRecoverAfter) : deadline,
          c.receive_sleeps);
      if (began) continue;
      if (p != Poll::empty || Clock::now() >= deadline) return p;
      if (closing && c.close_abandoned()) core.close();
    }
  }

 private:
  Port& self() noexcept { return static_cast<Port&>(*this); }
};

}  // namespace sleet::detail
