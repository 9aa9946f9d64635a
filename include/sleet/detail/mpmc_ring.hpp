// sleet/detail/mpmc_ring.hpp — layer 3: bounded multi-producer
// multi-consumer ring of fixed-size slots (D. Vyukov's bounded MPMC queue).
//
// `slots` is a power of two. Each slot is a sequence number, the payload
// length and room for `max_message_size` bytes:
//
//   0                   64                  96                 128
//   +-------------------+-------------------+------------------+
//   |   seq (atomic)    |  payload length   |     reserved     |
//   +-------------------+-------------------+------------------+
//   |  payload ... (max_message_size; the slot padded to 64)  |
//   +----------------------------------------------------------+
//
// Slot i of lap L (ticket t = L * slots + i) is free for the producer of
// ticket t when seq == t, and holds its message for the consumer of ticket t
// when seq == t + 1. The consumer frees it for the next lap with
// seq = t + slots.
//
// Vocabulary (the same in every ring, spsc_ring.hpp):
//   producer  claim() -> a slot (room for max_message_size bytes);
//             commit(c, n) finishes it with n bytes; abort(c) gives it up
//             (consumers skip it); publish() ends a batch: everything
//             committed is visible no later than publish() (here: at once,
//             a slot's seq is its publication), and it wakes consumers.
//   consumer  peek() -> the oldest message, now ours alone; consume(t)
//             frees its slot; release() ends a batch and wakes producers.
// Two ways to take a ticket:
// - claim()/peek() compare-and-swap the position only after seeing that the
//   slot is ready, so a failed try takes nothing (every send, try_receive,
//   receive_for);
// - next_receive_ticket() fetch_adds it (atomic_queue's scheme: one RMW
//   that never fails under contention), and the caller then waits for that
//   slot. A ticket taken so must be used: only a receive() that blocks
//   without a deadline takes one, and only when the slot it saw looked
//   ready, so it rarely waits; a ticket at or past the final one ends the
//   wait with closed. Senders never take tickets this way: a sender waiting
//   on a ticket could not give it back when the channel closes and its
//   receivers are gone.
//
// Synchronization
// - producer: wins ticket t (relaxed CAS or fetch_add on enqueue_pos: the
//   ticket is only a name; the slot's seq carries the data), sees seq == t
//   with acquire (1), writes the payload, then seq.store(t + 1, release) (2).
// - consumer: wins ticket t on dequeue_pos, sees seq == t + 1 with acquire
//   (3) — pairs with (2) — reads, then seq.store(t + slots, release) (4),
//   which pairs with (1): the next lap's producer never overwrites bytes
//   still being read.
// - `enqueue_pos - dequeue_pos` is the fill; both only grow.
//
// Closing sets kClosedBit (bit 63) in enqueue_pos (one fetch_or): later
// claims fail, and the value below the bit is the final ticket; consumers
// drain up to it. The closer that set the bit also stores the final ticket
// plus one in `final_ticket` (0: not stored yet); a second closer waits
// until it is there, so nobody reports closed against a missing value.
// Tickets therefore have 63 bits (2^63 messages: centuries at a billion a
// second).
//
// Bounds: a slot's length is checked against max_message_size before the
// payload is read; a bad one is reported as damaged (Take::size() ==
// kDamaged) and its slot freed like any other.
//
// A producer that dies between winning its ticket and (2) stalls consumers
// at that slot; recovering from that is not implemented (see the issue notes).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"
#include "sleet/detail/ring_common.hpp"

namespace sleet::detail {

struct MpmcControl {
  std::uint64_t slots;             // power of two
  std::uint64_t stride;            // bytes per slot
  std::uint64_t max_message_size;
  std::atomic<std::uint64_t> final_ticket{0};  // final ticket + 1, set by close_tickets(); 0: open
  RingCommon common;
  alignas(kFalseSharing) std::atomic<std::uint64_t> enqueue_pos{0};
  alignas(kFalseSharing) std::atomic<std::uint64_t> dequeue_pos{0};
};
static_assert(offsetof(MpmcControl, final_ticket) == 24);
static_assert(offsetof(MpmcControl, common) == kFalseSharing);
static_assert(sizeof(MpmcControl) % kFalseSharing == 0);

struct alignas(16) MpmcSlot {
  std::atomic<std::uint64_t> seq;
  std::uint32_t size;
  std::uint32_t reserved;
  std::byte* payload() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};
static_assert(sizeof(MpmcSlot) == 16);

class MpmcRing {
 public:
  // Payload length of a slot whose producer abandoned it (abort()):
  // consumers free it and move on.
  static constexpr std::uint32_t kSkip = 0xFFFFFFFFu;
  // Take::size() of a slot whose length fails its bound.
  static constexpr std::uint32_t kDamaged = 0xFFFFFFFEu;
  static constexpr std::uint64_t kClosedBit = std::uint64_t{1} << 63;

  // Whole cache lines per slot: neighbouring tickets belong to different
  // producers and consumers, and sharing a line would make them fight over it.
  static constexpr std::uint64_t stride_for(std::uint64_t max_message_size) noexcept {
    return round_up(sizeof(MpmcSlot) + max_message_size, kCacheLine);
  }
  // At least two: with one slot, "holds ticket t" (seq == t + 1) and "free
  // for ticket t + 1" are the same state.
  static std::uint64_t slot_count(std::uint64_t capacity) noexcept {
    return capacity < 2 ? 2 : next_pow2(capacity);
  }
  static constexpr std::uint64_t control_size() noexcept { return sizeof(MpmcControl); }

  // Creator only, before the segment is published. `start` is the first
  // ticket (white-box tests start near a counter wrap).
  static void initialize(void* at, std::uint64_t slots, std::uint64_t max_message_size,
                         std::uint64_t start = 0) noexcept {
    auto* c = new (at) MpmcControl{};
    c->slots = slots;
    c->stride = stride_for(max_message_size);
    c->max_message_size = max_message_size;
    // relaxed (all three): published together with the segment's `ready`.
    c->enqueue_pos.store(start, std::memory_order_relaxed);
    c->dequeue_pos.store(start, std::memory_order_relaxed);
    auto* data = static_cast<std::byte*>(at) + sizeof(MpmcControl);
    for (std::uint64_t i = 0; i < slots; ++i) {
      const std::uint64_t t = start + i;
      auto* s = new (data + (t & (slots - 1)) * c->stride) MpmcSlot{};
      s->seq.store(t, std::memory_order_relaxed);
    }
  }

  MpmcRing() = default;
  explicit MpmcRing(void* at) noexcept
      : c_(static_cast<MpmcControl*>(at)),
        data_(static_cast<std::byte*>(at) + sizeof(MpmcControl)),
        mask_(c_->slots - 1),
        stride_(c_->stride),
        max_size_(c_->max_message_size) {}

  MpmcControl& control() const noexcept { return *c_; }
  RingCommon& common() const noexcept { return c_->common; }

  struct Claim {
    MpmcSlot* slot = nullptr;
    std::uint64_t ticket = 0;
    bool closed = false;  // no slot because the ring is closed (not full)
    std::byte* data() const noexcept { return slot->payload(); }
    explicit operator bool() const noexcept { return slot != nullptr; }
  };

  // ---- producers ----

  // A free slot, or an empty Claim if the ring is full or closed. A claim
  // must be committed or aborted: consumers wait for it.
  [[nodiscard]] SLEET_INLINE Claim claim() noexcept {
    // relaxed: a hint; the CAS below decides (and fails once the closed bit
    // is set, since the bit is part of the value it compares).
    std::uint64_t pos = c_->enqueue_pos.load(std::memory_order_relaxed);
    for (;;) {
      if (SLEET_UNLIKELY(pos & kClosedBit)) return Claim{nullptr, 0, true};
      MpmcSlot* s = slot(pos);
      // acquire (1): pairs with the consumer's release (4) of the previous lap.
      const std::uint64_t seq = s->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - pos);
      if (diff == 0) {
        // relaxed: the ticket carries no data (see the essay).
        if (c_->enqueue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                                  std::memory_order_relaxed)) {
          return Claim{s, pos};
        }
      } else if (diff < 0) {
        return Claim{};
      } else {
        pos = c_->enqueue_pos.load(std::memory_order_relaxed);  // relaxed: as above
      }
    }
  }
  // Finishes the claimed slot with `size` bytes of payload; it is visible
  // at once (no wake-up: publish()).
  SLEET_INLINE void commit(const Claim& cl, std::uint32_t size) noexcept {
    cl.slot->size = size;
    // release (2): the payload is complete before consumers see the slot;
    // pairs with the acquire (3) in peek().
    cl.slot->seq.store(cl.ticket + 1, std::memory_order_release);
  }
  void abort(const Claim& cl) noexcept { commit(cl, kSkip); }
  // Ends a batch: wakes sleeping consumers.
  SLEET_INLINE void publish() noexcept { c_->common.data_ec.notify(); }
  [[nodiscard]] bool try_write(const void* p, std::uint32_t size) noexcept {
    const Claim cl = claim();
    if (!cl) return false;
    std::memcpy(cl.data(), p, size);
    commit(cl, size);
    publish();
    return true;
  }

  // ---- consumers ----

  struct Take {
    MpmcSlot* slot = nullptr;
    std::uint64_t ticket = 0;
    std::uint32_t length = 0;  // checked copy of the slot's size
    const std::byte* data() const noexcept { return slot->payload(); }
    std::uint32_t size() const noexcept { return length; }
    explicit operator bool() const noexcept { return slot != nullptr; }
  };

  // The oldest published message, or an empty Take. Must be consumed.
  [[nodiscard]] SLEET_INLINE Take peek() noexcept {
    // relaxed: a hint; the CAS below decides.
    std::uint64_t pos = c_->dequeue_pos.load(std::memory_order_relaxed);
    for (;;) {
      MpmcSlot* s = slot(pos);
      // acquire (3): pairs with the producer's release (2).
      const std::uint64_t seq = s->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - (pos + 1));
      if (diff == 0) {
        // relaxed: the ticket carries no data.
        if (c_->dequeue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                                  std::memory_order_relaxed)) {
          const Take t = checked(s, pos);
          if (SLEET_LIKELY(t.length != kSkip)) return t;
          consume(t);
          release();  // the skipped slot is free: a sender may sleep on it
          pos = c_->dequeue_pos.load(std::memory_order_relaxed);  // relaxed: as above
        }
      } else if (diff < 0) {
        return Take{};
      } else {
        pos = c_->dequeue_pos.load(std::memory_order_relaxed);  // relaxed: as above
      }
    }
  }
  // Whether the next peek() would find a message (a racy hint).
  bool looks_ready() const noexcept {
    // relaxed: a hint; whoever acts on it checks the slot with acquire (3).
    const std::uint64_t pos = c_->dequeue_pos.load(std::memory_order_relaxed);
    return slot(pos)->seq.load(std::memory_order_relaxed) == pos + 1;
  }
  // fetch_add form: a ticket whose slot the caller waits for with
  // take_at(); the ticket is the caller's whatever happens.
  [[nodiscard]] std::uint64_t next_receive_ticket() noexcept {
    // relaxed: the ticket carries no data; its slot's seq does.
    return c_->dequeue_pos.fetch_add(1, std::memory_order_relaxed);
  }
  // The message of `ticket` once published (empty Take until then). A
  // skipped slot is freed and given back as a Take of size kSkip.
  [[nodiscard]] Take take_at(std::uint64_t ticket) noexcept {
    MpmcSlot* s = slot(ticket);
    // acquire (3): pairs with the producer's release (2).
    if (s->seq.load(std::memory_order_acquire) != ticket + 1) return Take{};
    return checked(s, ticket);
  }
  // Frees the slot for the next lap (no wake-up: release()).
  SLEET_INLINE void consume(const Take& t) noexcept {
    // release (4): we are done reading; pairs with the acquire (1).
    t.slot->seq.store(t.ticket + mask_ + 1, std::memory_order_release);
  }
  // Ends a batch: wakes sleeping producers.
  SLEET_INLINE void release() noexcept { c_->common.space_ec.notify(); }
  // Copies the oldest message out if it fits in `capacity` bytes; one that
  // does not (or a damaged one) is consumed and refused.
  [[nodiscard]] bool try_read(void* p, std::uint32_t capacity, std::uint32_t& size) noexcept {
    const Take t = peek();
    if (!t) return false;
    const bool fits = t.size() <= capacity;
    if (fits) {
      std::memcpy(p, t.data(), t.size());
      size = t.size();
    }
    consume(t);
    release();
    return fits;
  }

  // ---- anyone ----

  // Makes every later claim fail; returns the final ticket.
  std::uint64_t close_tickets() noexcept {
    // relaxed: the bit only makes later CASes fail (they compare the whole
    // word); nothing is published through it. The final ticket is published
    // by the release store below.
    const std::uint64_t old = c_->enqueue_pos.fetch_or(kClosedBit, std::memory_order_relaxed);
    if (old & kClosedBit) {
      // Another closer set the bit: wait for it to store the value (two
      // instructions away in that closer).
      for (;;) {
        // acquire: pairs with the release store below.
        const std::uint64_t f = c_->final_ticket.load(std::memory_order_acquire);
        if (f != 0) return f - 1;
        yield_cpu();
      }
    }
    const std::uint64_t final_ticket = old & ~kClosedBit;
    // release: pairs with the acquire loads here and in final().
    c_->final_ticket.store(final_ticket + 1, std::memory_order_release);
    return final_ticket;
  }
  // After close (the ring common's kClosed, which a closer stores only after
  // close_tickets() returned): the first ticket no producer will fill.
  std::uint64_t final() const noexcept {
    // acquire: pairs with the release in close_tickets().
    return c_->final_ticket.load(std::memory_order_acquire) - 1;
  }
  // After close: true once every ticket below the final one has been taken
  // by a consumer.
  bool drained() const noexcept {
    // relaxed: nothing is read through it; the consumer that took the last
    // ticket owns that slot and reports its message itself.
    return c_->dequeue_pos.load(std::memory_order_relaxed) >= final();
  }
  std::uint64_t sent_approx() const noexcept {
    // relaxed: a statistic.
    return c_->enqueue_pos.load(std::memory_order_relaxed) & ~kClosedBit;
  }
  std::uint64_t received_approx() const noexcept {
    return c_->dequeue_pos.load(std::memory_order_relaxed);  // relaxed: a statistic
  }
  std::uint64_t size_approx() const noexcept {
    const auto r = received_approx();
    const auto s = sent_approx();
    return s > r ? s - r : 0;
  }

 private:
  MpmcSlot* slot(std::uint64_t ticket) const noexcept {
    return reinterpret_cast<MpmcSlot*>(data_ + (ticket & mask_) * stride_);
  }
  Take checked(MpmcSlot* s, std::uint64_t ticket) const noexcept {
    std::uint32_t n = s->size;
    if (SLEET_UNLIKELY(n > max_size_ && n != kSkip)) n = kDamaged;
    return Take{s, ticket, n};
  }

  MpmcControl* c_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t stride_ = 0;
  std::uint64_t max_size_ = 0;  // copy of the control block's, checked at open
};

}  // namespace sleet::detail
