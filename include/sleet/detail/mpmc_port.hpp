// sleet/detail/mpmc_port.hpp — the port of an mpmc ring, in the form every
// port shares (spsc_port.hpp has the vocabulary). Stateless apart from the
// ring's address: one object may be used by many threads at once, and a
// claim or a peeked record carries its own ticket.
//
// A receive() that blocks without a deadline takes its ticket with one
// fetch_add when the ring shows a message ready (mpmc_ring.hpp, "Two ways to
// take a ticket"), then waits for that slot alone; everything else takes
// tickets by compare-and-swap, so a try, a timeout or a closed channel
// takes nothing.
//
// Closing needs no bracket here: close() sets the closed bit in the ticket
// counter, so every ticket below the final one was claimed before the close
// and is committed or aborted by its (live) producer; receivers drain up to
// it. A claim held open (a loan) therefore holds up the receivers of every
// later ticket, and their report of closed, until it is committed or
// abandoned.
#pragma once

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
  explicit MpmcPort(const ChannelCore& core) noexcept : ring_(core.ring()), common_(&ring_.common()) {}

  // ---- producers ----

  SLEET_INLINE Poll try_claim(const ChannelCore&, std::uint32_t, Claim& out) noexcept {
    out = ring_.claim();
    if (SLEET_LIKELY(out)) return Poll::ready;
    return out.closed ? Poll::closed : Poll::empty;
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
  SLEET_NOINLINE Poll wait_claim(const ChannelCore& core, std::uint32_t n, Claim& out,
                                 Deadline deadline) {
    core.count_full();
    return block_on(
        common_->space_ec, [&] { return try_claim(core, n, out); }, core.spin(), deadline,
        common_->send_sleeps);
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
    r = ring_.peek();
    if (SLEET_LIKELY(static_cast<bool>(r))) return Poll::ready;
    if (SLEET_LIKELY(!common_->is_closed())) return Poll::empty;
    r = ring_.peek();  // sent before close
    if (r) return Poll::ready;
    return ring_.drained() ? Poll::closed : Poll::empty;
  }
  // A message is waiting, or the channel is closed (WaitSet's readiness).
  bool has_data() const noexcept { return ring_.looks_ready() || common_->is_closed(); }
  // Most messages one receive batch takes: slots are freed one by one, so
  // without a bound a batch could go on for as long as producers keep up.
  std::size_t batch_limit() const noexcept { return ring_.control().slots; }
  // The next message of a batch whose first came from try_peek()/peek_until().
  SLEET_INLINE bool peek_next(Record& r) noexcept {
    r = ring_.peek();
    return static_cast<bool>(r);
  }
  Poll peek_forever(const ChannelCore& core, Record& r) {
    while (ring_.looks_ready()) {
      const std::uint64_t ticket = ring_.next_receive_ticket();
      r = ring_.take_at(ticket);
      if (SLEET_UNLIKELY(!r)) {
        // Another consumer took the message we saw: wait for our ticket's.
        const Poll p = block_on(
            common_->data_ec,
            [&] {
              r = ring_.take_at(ticket);
              if (r) return Poll::ready;
              // No producer fills a ticket at or past the final one.
              return common_->is_closed() && ticket >= ring_.final() ? Poll::closed : Poll::empty;
            },
            core.spin(), kForever, common_->receive_sleeps);
        if (p == Poll::closed) return p;
      }
      if (SLEET_LIKELY(r.size() != MpmcRing::kSkip)) return Poll::ready;
      ring_.consume(r);  // an aborted claim: free it (a sender may sleep on it) and try again
      ring_.release();
    }
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

 private:
  MpmcRing ring_;
  RingCommon* common_ = nullptr;
};

}  // namespace sleet::detail
