// sleet/detail/mpmc_port.hpp — the port of an mpmc ring, in the form every
// port shares (spsc_port.hpp has the vocabulary). Apart from the ring's
// address it holds only this process's entry in the ring's process table
// (mpmc_ring.hpp, "Dead processes"): one object may be used by many threads
// at once, and a claim or a peeked record carries its own ticket. In a
// child of fork() an inherited port looks its process's entry up again.
//
// Every try first does what it came for; only when it finds nothing does
// it look whether a dead process holds the slot it waits on. A dead process
// wakes nobody, so a sender's wait always sleeps in slices of kRecoverAfter
// and a receiver's does whenever a sender holds the slot it waits on.
//
// Closing needs no bracket here: close() sets the closed bit in the ticket
// counter, so every ticket below the final one was claimed before the close
// and is committed or aborted by its producer (or recovered when that one
// died); receivers drain up to it. A claim held open (a loan) therefore
// holds up the receivers of every later ticket, and their report of closed,
// until it is committed or abandoned.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "sleet/detail/channel_core.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/mpmc_ring.hpp"

namespace sleet::detail {

class MpmcPort : public PeekWaits<MpmcPort> {
 public:
  static constexpr bool kFixedSlots = true;  // every claim has room for max_message_size

  using Claim = MpmcRing::Claim;
  using Record = MpmcRing::Take;

  MpmcPort() = default;
  explicit MpmcPort(const ChannelCore& core) noexcept
      : ring_(core.ring()), common_(&ring_.common()), me_(ring_.attach()), pid_(current_pid()) {}

  // ---- producers ----

  SLEET_INLINE Poll try_claim(const ChannelCore&, std::uint32_t, Claim& out) noexcept {
    out = ring_.claim(me());
    if (SLEET_LIKELY(out)) return Poll::ready;
    if (out.closed) return Poll::closed;
    if (SLEET_UNLIKELY(ring_.unstick_producer(me()))) out = ring_.claim(me());  // a dead receiver held us back
    return out ? Poll::ready : out.closed ? Poll::closed : Poll::empty;
  }
  SLEET_INLINE Poll try_claim_in_place(const ChannelCore& core, std::uint32_t n, Claim& out) noexcept {
    return try_claim(core, n, out);
  }
  SLEET_INLINE Poll claim_until(const ChannelCore& core, std::uint32_t n, Claim& out,
                                Deadline deadline) {
    const Poll p = try_claim(core, n, out);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    return wait_claim(core, n, out, deadline);
  }
  // Always in slices of kRecoverAfter: the slot a sender waits for holds
  // the previous lap, and a receiver may take it and die without waking
  // anyone. (A sender blocked on a full ring is woken by every release
  // anyway; the slices add at most 100 wakes a second while it waits.)
  SLEET_NOINLINE Poll wait_claim(const ChannelCore& core, std::uint32_t n, Claim& out,
                                 Deadline deadline) {
    core.count_full();
    for (;;) {
      const Poll p = block_on(
          common_->space_ec, [&] { return try_claim(core, n, out); }, core.spin(),
          std::min(deadline, Clock::now() + kRecoverAfter), common_->send_sleeps);
      if (p != Poll::empty || Clock::now() >= deadline) return p;
    }
  }
  SLEET_INLINE void commit(const Claim& c, std::uint32_t n) noexcept { ring_.commit(c, n); }
  void abort(const Claim& c) noexcept {
    // relaxed: statistics (its ticket is in enqueue_pos; stats subtract it).
    common_->aborted.fetch_add(1, std::memory_order_relaxed);
    ring_.abort(c);
    ring_.publish();  // consumers asleep on the skipped slot move on
  }
  SLEET_INLINE void publish() noexcept { ring_.publish(); }

  // Loans: a claimed slot is below the final ticket, so it is delivered
  // even if close() began meanwhile (like a send in flight).
  Poll try_loan(const ChannelCore& core, std::uint32_t n, Claim& out) noexcept {
    return try_claim(core, n, out);
  }
  Poll loan_until(const ChannelCore& core, std::uint32_t n, Claim& out, Deadline deadline) {
    return claim_until(core, n, out, deadline);
  }
  bool commit_loan(const ChannelCore&, const Claim& c, std::uint32_t n) noexcept {
    commit(c, n);
    publish();
    return true;
  }
  void abort_loan(const Claim& c) noexcept { abort(c); }

  // ---- consumers ----

  SLEET_INLINE Poll try_peek(const ChannelCore&, Record& r) noexcept {
    r = ring_.peek(me());
    if (SLEET_LIKELY(static_cast<bool>(r))) return Poll::ready;
    return try_peek_empty(r);
  }
  // The receivers' wait, in slices while a sender holds the slot they wait
  // on (it may die there, and nobody else would wake them). A slot taken by
  // a sender during an unsliced wait ends that wait (the wake of any later
  // publish makes the re-check see it), and the wait goes on in slices.
  template <class Core, class Stop>
  SLEET_NOINLINE Poll wait_peek(const Core& core, Record& r, Deadline deadline, Stop& stop) {
    for (;;) {
      const bool held = ring_.consumer_stuck();
      bool became_held = false;
      auto stop_or_held = [&] {
        if (stop()) return true;
        if (held || !ring_.consumer_stuck()) return false;
        became_held = true;  // not a stop: leaves the unsliced wait
        return true;
      };
      const Deadline until = held ? std::min(deadline, Clock::now() + kRecoverAfter) : deadline;
      const Poll p = PeekWaits<MpmcPort>::wait_peek(core, r, until, stop_or_held);
      if (became_held) continue;
      if (p != Poll::empty || Clock::now() >= deadline) return p;
    }
  }
  // A message is waiting, or the channel is closed (WaitSet's readiness).
  bool has_data() const noexcept { return ring_.looks_ready() || common_->is_closed(); }
  // Most messages one receive batch takes: slots are freed one by one, so
  // without a bound a batch could go on for as long as producers keep up.
  std::size_t batch_limit() const noexcept { return ring_.control().slots; }
  // The next message of a batch whose first came from try_peek()/peek_until().
  SLEET_INLINE bool peek_next(Record& r) noexcept {
    r = ring_.peek(me());
    return static_cast<bool>(r);
  }
  Poll peek_forever(const ChannelCore& core, Record& r) {
    return peek_until(core, r, kForever, [] { return false; });
  }
  static bool damaged(const Record& r) noexcept { return r.size() == MpmcRing::kDamaged; }
  // The slot is intact, only its length is bad: free it so the ones behind
  // it are delivered.
  void drop_damaged(const Record& r) noexcept {
    ring_.consume(r);
    ring_.release();
  }
  SLEET_INLINE void consume(const Record& r) noexcept { ring_.consume(r); }
  SLEET_INLINE void release() noexcept { ring_.release(); }

  void take_receiver_role(const ChannelCore&) noexcept {}
  // A damaged slot is consumed, so the ring never stays stuck on one.
  bool stuck_on_damage() noexcept { return false; }

  RingCommon& common() const noexcept { return *common_; }
  MpmcRing& ring() noexcept { return ring_; }  // white-box tests
  // This process's name in the ring's slots.
  std::uint32_t me() noexcept { return SLEET_LIKELY(current_pid() == pid_) ? me_ : ring_.attach(); }

 private:
  SLEET_NOINLINE Poll try_peek_empty(Record& r) noexcept {
    if (SLEET_UNLIKELY(ring_.unstick_consumer(me()))) {  // a dead sender held the slot
      r = ring_.peek(me());
      if (r) return Poll::ready;
    }
    if (SLEET_LIKELY(!common_->is_closed())) return Poll::empty;
    r = ring_.peek(me());  // sent before close
    if (r) return Poll::ready;
    return ring_.drained() ? Poll::closed : Poll::empty;
  }
  MpmcRing ring_;
  RingCommon* common_ = nullptr;
  std::uint32_t me_ = kUntracked;
  int pid_ = 0;
};

}  // namespace sleet::detail
