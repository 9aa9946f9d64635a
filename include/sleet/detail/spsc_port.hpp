// sleet/detail/spsc_port.hpp — the port of an spsc ring: the ring's
// vocabulary (spsc_ring.hpp) plus what a channel adds around it — the role
// claims, the close bracket, blocking — in the form every port shares
// (mpmc_port.hpp), so the typed code above (channel_io.hpp) is written once:
//
//   producer  try_claim(core, n, c) / claim_until(core, n, c, deadline)
//             -> Poll; commit(c, n); abort(c); publish()
//   consumer  try_peek(core, r) / peek_until(core, r, deadline, stop)
//             -> Poll; peek_next(r) for the rest of a batch; consume(r);
//             release()
//   loans     try_loan / loan_until -> Poll; commit_loan(); abort_loan()
//
// Roles: the first claim takes the producer role, the first peek the
// consumer role (errc::busy if a live object has it); afterwards the only
// per-call check is one compare of this process's pid (a fork()ed child
// holding a copy must claim for itself).
//
// The close bracket: from the first claim of a batch to its publish() (or
// the abort of a single claim) the producer's `in_send` word is 1, so close()
// can wait for a send that passed its closed check (ring_common.hpp). One
// bracket per batch, not per message.
//
// Synchronization (the ring's own pairs are numbered in spsc_ring.hpp)
// - in_send.store(1, relaxed) then light_fence(): pairs with close()'s
//   heavy_fence() after it sets kClosing (Dekker: either the sender sees
//   kClosing or close() sees in_send == 1 and waits).
// - in_send.store(0, release) after the batch's publication: pairs with
//   close()'s acquire load, so a receiver that sees kClosed sees the batch.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "sleet/detail/channel_core.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/spsc_ring.hpp"

namespace sleet::detail {

class SpscPort : public PeekWaits<SpscPort> {
 public:
  static constexpr bool kFixedSlots = false;  // claims are exact: encoders learn sizes first

  struct Claim {
    std::byte* ptr = nullptr;
    std::byte* data() const noexcept { return ptr; }
  };
  using Record = SpscRing::Record;

  SpscPort() = default;
  explicit SpscPort(const ChannelCore& core) noexcept
      : ring_(core.ring()), common_(&ring_.common()) {}
  SpscPort(SpscPort&& other) noexcept { swap(other); }
  SpscPort& operator=(SpscPort&& other) noexcept {
    SpscPort tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  ~SpscPort() {
    if (common_ == nullptr) return;
    release_role(ring_.control().producer, producer_token_, serial_);
    release_role(ring_.control().consumer, consumer_token_, serial_);
  }

  // ---- producer ----

  SLEET_INLINE Poll try_claim(const ChannelCore& core, std::uint32_t n, Claim& out) {
    // Inside an open bracket (the rest of a batch) role and close were
    // checked when it opened; close() waits for the bracket.
    if (!in_send_ && !enter_send(core)) return Poll::closed;
    out.ptr = ring_.claim(n);
    if (SLEET_LIKELY(out.ptr != nullptr)) return Poll::ready;
    if (!ring_.unpublished()) leave_send();
    return Poll::empty;
  }
  // Room for up to `max` bytes without a wrap, or Poll::empty (nothing
  // written, nothing counted): encoders that learn the size by encoding.
  SLEET_INLINE Poll try_claim_in_place(const ChannelCore& core, std::uint32_t max, Claim& out) {
    if (!in_send_ && !enter_send(core)) return Poll::closed;  // as in try_claim()
    out.ptr = ring_.claim_in_place(max);
    if (SLEET_LIKELY(out.ptr != nullptr)) return Poll::ready;
    if (!ring_.unpublished()) leave_send();
    return Poll::empty;
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
    if (ring_.unpublished()) publish();  // never sleep on records the consumer cannot see
    return block_on(
        common_->space_ec, [&] { return try_claim(core, n, out); }, core.spin(), deadline,
        common_->send_sleeps);
  }
  SLEET_INLINE void commit(const Claim&, std::uint32_t n) noexcept { ring_.commit(n); }
  void abort(const Claim&) noexcept {
    ring_.abort();
    // A padding record (or, in a batch, records committed before) is
    // published; otherwise the bracket just closes.
    if (ring_.unpublished()) {
      publish();
    } else {
      leave_send();
    }
  }
  SLEET_INLINE void publish() noexcept {
    ring_.publish();
    leave_send();
  }

  // Loans (loan.hpp): the claim is taken outside the close bracket, so a
  // loan held for long never delays close(); commit_loan() brackets only
  // the publication and refuses once close has begun (false). One loan at a
  // time per object: a second claim while one is out is errc::busy.
  Poll try_loan(const ChannelCore& core, std::uint32_t n, Claim& out) {
    return end_claim_for_loan(try_claim(core, n, out));
  }
  Poll loan_until(const ChannelCore& core, std::uint32_t n, Claim& out, Deadline deadline) {
    return end_claim_for_loan(claim_until(core, n, out, deadline));
  }
  bool commit_loan(const ChannelCore& core, const Claim& c, std::uint32_t n) {
    loaned_ = false;
    producer_pid_ = token_pid(producer_token_);
    if (!enter_send(core)) return false;
    commit(c, n);
    publish();
    return true;
  }
  void abort_loan(const Claim&) noexcept {
    loaned_ = false;
    producer_pid_ = token_pid(producer_token_);
  }

  // ---- consumer ----

  SLEET_INLINE Poll try_peek(const ChannelCore& core, Record& r) {
    if (SLEET_UNLIKELY(consumer_pid_ != current_pid())) take_consumer(core);
    if (SLEET_LIKELY(ring_.peek(r))) return Poll::ready;
    if (SLEET_LIKELY(!common_->is_closed())) return Poll::empty;
    return ring_.peek(r) ? Poll::ready : Poll::closed;  // ready: sent before close
  }
  // A message is waiting, or the channel is closed (WaitSet's readiness).
  bool has_data() const noexcept { return ring_.readable() || common_->is_closed(); }
  // Most records one receive batch takes: none is released before the
  // batch ends, so the ring itself bounds it.
  static constexpr std::size_t batch_limit() noexcept { return std::numeric_limits<std::size_t>::max(); }
  // The next record of a batch whose first came from try_peek()/peek_until().
  SLEET_INLINE bool peek_next(Record& r) noexcept { return ring_.peek(r); }
  // Blocks without a deadline or a stop condition.
  SLEET_INLINE Poll peek_forever(const ChannelCore& core, Record& r) {
    return peek_until(core, r, kForever, [] { return false; });
  }
  static bool damaged(const Record& r) noexcept { return r.size() == SpscRing::kDamaged; }
  // A damaged header cannot be stepped over (its length is the damage): it
  // stays, and every receive reports it.
  void drop_damaged(const Record&) noexcept {}
  SLEET_INLINE void consume(const Record& r) noexcept { ring_.consume(r); }
  SLEET_INLINE void release() noexcept { ring_.release(); }

  // Whether the oldest record is damaged: every receive reports it again.
  bool stuck_on_damage() noexcept {
    Record r;
    return ring_.peek(r) && r.size() == SpscRing::kDamaged;
  }
  // Takes the consumer role now (errc::busy if a live object has it).
  void take_receiver_role(const ChannelCore& core) {
    if (consumer_pid_ != current_pid()) take_consumer(core);
  }

  RingCommon& common() const noexcept { return *common_; }
  SpscRing& ring() noexcept { return ring_; }  // white-box tests

 private:
  Poll end_claim_for_loan(Poll p) {
    if (p != Poll::ready) return p;
    // A padding record this claim wrote is published now (the consumer
    // then waits at the loan's position, which holds 0), and the bracket
    // closes until commit_loan().
    if (ring_.unpublished()) ring_.publish();
    leave_send();
    loaned_ = true;
    producer_pid_ = 0;  // every claim takes the slow path until the loan ends
    return p;
  }
  // Opens the close bracket (if not open) and checks that sends are allowed.
  SLEET_INLINE bool enter_send(const ChannelCore& core) {
    if (SLEET_UNLIKELY(producer_pid_ != current_pid()) && !become_producer(core)) return false;
    if (!in_send_) {
      // relaxed: ordered by the fence below.
      ring_.control().in_send.store(1, std::memory_order_relaxed);
      light_fence();  // pairs with heavy_fence() in close() (see the essay)
      in_send_ = true;
    }
    if (SLEET_UNLIKELY(common_->refuses_sends())) {
      if (ring_.unpublished()) {
        publish();  // what this batch committed before close began is delivered
      } else {
        leave_send();
      }
      return false;
    }
    return true;
  }
  // The slow half of enter_send(): a loan is out, or the role is not ours
  // in this process yet. False if sends are refused.
  SLEET_NOINLINE bool become_producer(const ChannelCore& core) {
    if (loaned_) {
      throw Error(errc::busy, core.label() + ": a Loan of this channel object is outstanding");
    }
    if (common_->refuses_sends()) return false;  // before asking for the role
    take_producer(core);
    return true;
  }
  SLEET_INLINE void leave_send() noexcept {
    if (!in_send_) return;
    // release: the batch is published before close() sees 0 (see the essay).
    ring_.control().in_send.store(0, std::memory_order_release);
    in_send_ = false;
  }
  void take_producer(const ChannelCore& core) {
    serial_ = core.serial();
    producer_token_ = core.claim_role(ring_.control().producer, "sender");
    producer_pid_ = token_pid(producer_token_);
    ring_.attach_producer();
    in_send_ = false;
  }
  SLEET_NOINLINE void take_consumer(const ChannelCore& core) {
    serial_ = core.serial();
    consumer_token_ = core.claim_role(ring_.control().consumer, "receiver");
    consumer_pid_ = token_pid(consumer_token_);
    ring_.attach_consumer();
  }
  void swap(SpscPort& o) noexcept {
    std::swap(ring_, o.ring_);
    std::swap(common_, o.common_);
    std::swap(producer_token_, o.producer_token_);
    std::swap(consumer_token_, o.consumer_token_);
    std::swap(serial_, o.serial_);
    std::swap(producer_pid_, o.producer_pid_);
    std::swap(consumer_pid_, o.consumer_pid_);
    std::swap(in_send_, o.in_send_);
    std::swap(loaned_, o.loaned_);
  }

  SpscRing ring_;
  RingCommon* common_ = nullptr;
  std::uint64_t producer_token_ = 0;  // 0: role not held (pid 0 is never ours)
  std::uint64_t consumer_token_ = 0;
  std::uint64_t serial_ = 0;          // the owning ChannelCore's serial (release_role)
  int producer_pid_ = 0;  // the pid the role is held under; 0 while a loan is out
  int consumer_pid_ = 0;
  bool in_send_ = false;  // the close bracket is open
  bool loaned_ = false;
};

}  // namespace sleet::detail
