// sleet/detail/mpmc_ring.hpp — layer 3: bounded multi-producer
// multi-consumer ring of fixed-size slots (after D. Vyukov's bounded MPMC
// queue), in which every claimed slot names the process that holds it, so
// the survivors can take it back when that process dies.
//
// `slots` is a power of two. Each slot is a state word, the payload length
// and room for `max_message_size` bytes:
//
//   0                   8          12         16
//   +-------------------+----------+----------+----------------------+
//   | word (atomic)     |  length  | reserved | payload ... (to a 64-byte multiple)
//   +-------------------+----------+----------+----------------------+
//
//   word:  63                      9   8   7 6         0
//          +------------------------+-------+-----------+
//          | ticket (low 55 bits)   | state | owner (7) |
//          +------------------------+-------+-----------+
//
// For ticket t (slot t mod slots, lap t / slots) the state is one of
//   free(t)     the slot awaits the producer of t
//   writing(t)  a producer holds it; `owner` is its entry in `processes`
//   holds(t)    it carries t's message, for the consumer of t
//   reading(t)  a consumer holds it; `owner` as above
// and a consumer that is done stores free(t + slots). Tickets in the word
// are compared modulo 2^55 (lap_diff()), so ring positions may run up to the
// 63-bit limit of the counters.
//
// Taking a ticket is one compare-and-swap on the slot word (free(t) ->
// writing(t, me); holds(t) -> reading(t, me)): the word is lap-tagged, so a
// stale CAS never succeeds (no ABA), and the same instruction that takes the
// slot names its holder, so no instant exists at which a slot is taken by
// nobody. `enqueue_pos` / `dequeue_pos` are then only the position to try
// next: the taker moves it past its ticket with a CAS, and anyone who finds
// the slot at the position already taken moves it on for them (helping), so
// a holder that stalls or dies between the two steps blocks nobody.
//
// Vocabulary (the same in every ring, spsc_ring.hpp):
//   producer  claim() -> a slot (room for max_message_size bytes);
//             commit(c, n) finishes it with n bytes; abort(c) gives it up
//             (consumers skip it); publish() ends a batch: everything
//             committed is visible no later than publish() (here: at once,
//             a slot's word is its publication), and it wakes consumers.
//   consumer  peek() -> the oldest message, now ours alone; consume(t)
//             frees its slot; release() ends a batch and wakes producers.
// A failed try takes nothing: a slot is taken only when it is seen ready.
//
// Synchronization
// - producer: loads the word of slot(pos) with acquire (1) — pairs with the
//   consumer's release (4) of the previous lap, so the bytes it is about to
//   overwrite are no longer read — and CASes it to writing (relaxed: (1)
//   already read the value the CAS replaces); writes the payload and the
//   length, then stores holds(t) with release (2).
// - consumer: loads the word with acquire (3) — pairs with (2) — CASes it to
//   reading (relaxed, as above), reads, then stores free(t + slots) with
//   release (4), which pairs with (1).
// - the positions are relaxed: they carry no data, the slot words do.
//
// Closing sets kClosedBit (bit 63) in enqueue_pos (one fetch_or): later
// position CASes fail, and the value below the bit is the final ticket;
// consumers drain up to it. A producer that took slot t but finds the bit
// set on a position not yet past t gives the slot back and reports closed:
// its ticket is at or past the final one, so nobody would receive it.
// Every closer stores the final ticket plus one in `final_ticket` (0: not
// stored yet): the position is frozen once the bit is set, so they all store
// the same value, and a closer that died between the two steps leaves
// nothing for the next one to wait for.
//
// Dead processes
// Every process that uses the ring takes an entry in `processes` (its
// identity: pid + start time, process.hpp) when its port is made (attach())
// and stamps the entry's index into the slots it takes. A slot found in
// writing or reading state with the same word for kRecoverAfter is checked:
// if its owner's process is gone, the finder takes the slot over with a CAS
// (writing(t, dead) -> writing(t, me)), so two finders never both act, and
//   - writing: marks it skipped (kSkip) and publishes it; counted in
//     `abandoned`. The dead producer's send() never returned, so no message
//     whose send() returned is lost; the messages behind it flow again.
//   - reading: frees it; counted in `lost` (the message was taken by a
//     receiver that died before its receive() returned).
// Consumers look at the slot at dequeue_pos, producers at the slot that
// holds them back (enqueue_pos, previous lap); a waiter whose ring shows
// such a slot sleeps in slices of kRecoverAfter, since no dead process wakes
// it. The guarantee at each instant:
//   send:    before its CAS, nothing is taken; after it, the slot is its own
//            and named: dying anywhere up to (2) is recovered as abandoned;
//            after (2) the message is delivered.
//   receive: before its CAS, nothing is taken; after it, dying anywhere up
//            to the return of receive() loses that one message, counted in
//            `lost`; after (4) nothing is owed.
// An entry whose process died is reused by a later attach() only after that
// attach() has recovered every slot still stamped with it. Beyond
// kTrackedProcesses live processes at once, later ones stamp kUntracked, and
// their slots are not recovered if they die (stats show them as `queued`).
//
// Bounds: a slot's length is checked against max_message_size before the
// payload is read; a bad one is reported as damaged (Take::size() ==
// kDamaged) and its slot freed like any other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "sleet/detail/fault.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/ring_common.hpp"

namespace sleet::detail {

// Entries of the process table; index kUntracked names nobody.
inline constexpr std::uint32_t kTrackedProcesses = 127;
inline constexpr std::uint32_t kUntracked = 127;

struct MpmcControl {
  std::uint64_t slots;             // power of two
  std::uint64_t stride;            // bytes per slot
  std::uint64_t max_message_size;
  std::atomic<std::uint64_t> final_ticket{0};  // final ticket + 1, set by close_tickets(); 0: open
  RingCommon common;
  alignas(kFalseSharing) std::atomic<std::uint64_t> enqueue_pos{0};
  alignas(kFalseSharing) std::atomic<std::uint64_t> dequeue_pos{0};
  // Identity of the process using each entry (0: free); written at attach
  // only, read when a slot looks stuck.
  alignas(kFalseSharing) std::atomic<std::uint64_t> processes[kTrackedProcesses + 1];
};
static_assert(offsetof(MpmcControl, final_ticket) == 24);
static_assert(offsetof(MpmcControl, common) == kFalseSharing);
static_assert(offsetof(MpmcControl, enqueue_pos) == 5 * kFalseSharing);
static_assert(offsetof(MpmcControl, dequeue_pos) == 6 * kFalseSharing);
static_assert(offsetof(MpmcControl, processes) == 7 * kFalseSharing);
static_assert(sizeof(MpmcControl) == 15 * kFalseSharing);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

struct alignas(16) MpmcSlot {
  std::atomic<std::uint64_t> word;
  std::uint32_t size;
  std::uint32_t reserved;
  std::byte* payload() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};
static_assert(sizeof(MpmcSlot) == 16);
static_assert(offsetof(MpmcSlot, size) == 8);

class MpmcRing {
 public:
  // Payload length of a slot whose producer abandoned it (abort(), or a
  // producer that died): consumers free it and move on.
  static constexpr std::uint32_t kSkip = 0xFFFFFFFFu;
  // Take::size() of a slot whose length fails its bound.
  static constexpr std::uint32_t kDamaged = 0xFFFFFFFEu;
  static constexpr std::uint64_t kClosedBit = std::uint64_t{1} << 63;

  enum State : std::uint64_t { kFree = 0, kWriting = 1, kHolds = 2, kReading = 3 };
  static constexpr unsigned kTicketShift = 9;
  static constexpr std::uint64_t word(std::uint64_t ticket, State st, std::uint32_t owner) noexcept {
    return ticket << kTicketShift | std::uint64_t{st} << 7 | owner;
  }
  static constexpr State state_of(std::uint64_t w) noexcept { return static_cast<State>((w >> 7) & 3); }
  static constexpr std::uint32_t owner_of(std::uint64_t w) noexcept { return w & 127; }
  // The word's ticket minus `ticket`, modulo 2^55, as a signed number.
  static constexpr std::int64_t lap_diff(std::uint64_t w, std::uint64_t ticket) noexcept {
    return static_cast<std::int64_t>(((w >> kTicketShift) - ticket) << kTicketShift) >> kTicketShift;
  }

  // Whole cache lines per slot: neighbouring tickets belong to different
  // producers and consumers, and sharing a line would make them fight over it.
  static constexpr std::uint64_t stride_for(std::uint64_t max_message_size) noexcept {
    return round_up(sizeof(MpmcSlot) + max_message_size, kCacheLine);
  }
  // At least two: with one slot, "holds ticket t" and "free for ticket
  // t + 1" would be the same slot in the same lap.
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
    // relaxed (all): published together with the segment's `ready`.
    c->enqueue_pos.store(start, std::memory_order_relaxed);
    c->dequeue_pos.store(start, std::memory_order_relaxed);
    for (auto& p : c->processes) p.store(0, std::memory_order_relaxed);
    auto* data = static_cast<std::byte*>(at) + sizeof(MpmcControl);
    for (std::uint64_t i = 0; i < slots; ++i) {
      const std::uint64_t t = start + i;
      auto* s = new (data + (t & (slots - 1)) * c->stride) MpmcSlot{};
      s->word.store(word(t, kFree, 0), std::memory_order_relaxed);
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

  // This process's entry in the process table (taken on first use, shared by
  // every object of the process on this mapping), or kUntracked when the
  // table is full of live processes. Slow: once per port.
  std::uint32_t attach() noexcept;

  struct Claim {
    MpmcSlot* slot = nullptr;
    std::uint64_t ticket = 0;
    bool closed = false;  // no slot because the ring is closed (not full)
    std::byte* data() const noexcept { return slot->payload(); }
    explicit operator bool() const noexcept { return slot != nullptr; }
  };

  // ---- producers ----

  // A free slot, taken under the name `me` (attach()), or an empty Claim if
  // the ring is full or closed. A claim must be committed or aborted:
  // consumers wait for it.
  [[nodiscard]] SLEET_INLINE Claim claim(std::uint32_t me = kUntracked) noexcept {
    // relaxed: a position to try; the slot word decides.
    std::uint64_t pos = c_->enqueue_pos.load(std::memory_order_relaxed);
    for (;;) {
      if (SLEET_UNLIKELY(pos & kClosedBit)) return Claim{nullptr, 0, true};
      MpmcSlot* s = slot(pos);
      // acquire (1): pairs with the consumer's release (4) of the previous lap.
      std::uint64_t w = s->word.load(std::memory_order_acquire);
      const std::int64_t d = lap_diff(w, pos);
      if (d == 0 && state_of(w) == kFree) {
        // relaxed: (1) read the value this replaces (see Synchronization).
        if (SLEET_LIKELY(s->word.compare_exchange_strong(w, word(pos, kWriting, me), std::memory_order_relaxed,
                                                         std::memory_order_relaxed))) {
          std::uint64_t e = pos;
          // relaxed: a position (a failure means a helper moved it, or close).
          SLEET_FAULT_POINT("mpmc.claim");
          if (SLEET_UNLIKELY(!c_->enqueue_pos.compare_exchange_strong(e, pos + 1, std::memory_order_relaxed,
                                                                      std::memory_order_relaxed)) &&
              e == (pos | kClosedBit)) {
            // Closed with the final ticket at ours: nobody will receive it.
            // release: pairs with (1) of nobody in particular; the slot is
            // as the last consumer left it.
            s->word.store(word(pos, kFree, 0), std::memory_order_release);
            return Claim{nullptr, 0, true};
          }
          return Claim{s, pos};
        }
        continue;  // the slot changed under us: look again at the same position
      }
      if (d > 0 || (d == 0 && state_of(w) != kFree)) {
        pos = help_past(c_->enqueue_pos, pos);  // ticket pos is taken
        continue;
      }
      return Claim{};  // the previous lap is still in the slot: full
    }
  }
  // Finishes the claimed slot with `size` bytes of payload; it is visible
  // at once (no wake-up: publish()).
  SLEET_INLINE void commit(const Claim& cl, std::uint32_t size) noexcept {
    SLEET_FAULT_POINT("mpmc.commit");
    cl.slot->size = size;
    // release (2): the payload is complete before consumers see the slot;
    // pairs with the acquire (3) in peek().
    cl.slot->word.store(word(cl.ticket, kHolds, 0), std::memory_order_release);
  }
  void abort(const Claim& cl) noexcept { commit(cl, kSkip); }
  // Ends a batch: wakes sleeping consumers.
  SLEET_INLINE void publish() noexcept { c_->common.data_ec.notify(); }
  [[nodiscard]] bool try_write(const void* p, std::uint32_t size, std::uint32_t me = kUntracked) noexcept {
    const Claim cl = claim(me);
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

  // The oldest published message, taken under the name `me`, or an empty
  // Take. Must be consumed.
  [[nodiscard]] SLEET_INLINE Take peek(std::uint32_t me = kUntracked) noexcept {
    // relaxed: a position to try; the slot word decides.
    std::uint64_t pos = c_->dequeue_pos.load(std::memory_order_relaxed);
    for (;;) {
      MpmcSlot* s = slot(pos);
      // acquire (3): pairs with the producer's release (2).
      std::uint64_t w = s->word.load(std::memory_order_acquire);
      const std::int64_t d = lap_diff(w, pos);
      if (d == 0 && state_of(w) == kHolds) {
        // relaxed: (3) read the value this replaces.
        if (SLEET_LIKELY(s->word.compare_exchange_strong(w, word(pos, kReading, me), std::memory_order_relaxed,
                                                         std::memory_order_relaxed))) {
          SLEET_FAULT_POINT("mpmc.take");
          std::uint64_t e = pos;
          // relaxed: a position (a failure means a helper moved it).
          c_->dequeue_pos.compare_exchange_strong(e, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed);
          const Take t = checked(s, pos);
          if (SLEET_LIKELY(t.length != kSkip)) return t;
          consume(t);
          release();  // the skipped slot is free: a sender may sleep on it
          pos = c_->dequeue_pos.load(std::memory_order_relaxed);  // relaxed: as above
        }
        continue;
      }
      if (d > 0 || (d == 0 && state_of(w) == kReading)) {
        pos = help_past(c_->dequeue_pos, pos);  // ticket pos is taken
        continue;
      }
      return Take{};  // not yet published (or being written)
    }
  }
  // Whether the next peek() would find a message (a racy hint).
  bool looks_ready() const noexcept {
    // relaxed: a hint; whoever acts on it checks the slot with acquire (3).
    const std::uint64_t pos = c_->dequeue_pos.load(std::memory_order_relaxed);
    const std::uint64_t w = slot(pos)->word.load(std::memory_order_relaxed);
    return lap_diff(w, pos) == 0 && state_of(w) == kHolds;
  }
  // Frees the slot for the next lap (no wake-up: release()).
  SLEET_INLINE void consume(const Take& t) noexcept {
    SLEET_FAULT_POINT("mpmc.consume");
    // release (4): we are done reading; pairs with the acquire (1).
    t.slot->word.store(word(t.ticket + mask_ + 1, kFree, 0), std::memory_order_release);
  }
  // Ends a batch: wakes sleeping producers.
  SLEET_INLINE void release() noexcept { c_->common.space_ec.notify(); }
  // Copies the oldest message out if it fits in `capacity` bytes; one that
  // does not (or a damaged one) is consumed and refused.
  [[nodiscard]] bool try_read(void* p, std::uint32_t capacity, std::uint32_t& size,
                              std::uint32_t me = kUntracked) noexcept {
    const Take t = peek(me);
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

  // ---- recovery (slow paths; see "Dead processes") ----

  // Whether the slot a consumer waits on is held by a producer (writing, at
  // dequeue_pos): a candidate for recovery. (Producers always wait in
  // slices: see MpmcPort::wait_claim().)
  bool consumer_stuck() const noexcept { return held_at(c_->dequeue_pos, 0, kWriting); }
  // Recovers the slot a consumer waits on (writing, at dequeue_pos) or the
  // one a producer waits on (reading, the previous lap at enqueue_pos) if it
  // stayed held, unchanged, for kRecoverAfter (as seen by this thread) and
  // its owner's process is gone. True if it did.
  bool unstick_consumer(std::uint32_t me) noexcept { return unstick(c_->dequeue_pos, 0, kWriting, me); }
  bool unstick_producer(std::uint32_t me) noexcept { return unstick(c_->enqueue_pos, mask_ + 1, kReading, me); }
  // Takes over the slot of `ticket` if it is held (writing or reading) by a
  // process that is gone; true if it did. Now, not after kRecoverAfter.
  bool recover(std::uint64_t ticket, std::uint32_t me) noexcept;

  // ---- anyone ----

  // Makes every later claim fail; returns the final ticket. Any number of
  // closers may run it, at once or after one died half-way: once the bit is
  // set, enqueue_pos never changes again (every claim and helper moves it
  // by a CAS of the whole word), so each closer reads the same final ticket
  // and stores the same value.
  std::uint64_t close_tickets() noexcept {
    // relaxed: the bit only makes later CASes fail (they compare the whole
    // word); nothing is published through it. The final ticket is published
    // by the release store below.
    const std::uint64_t final_ticket = c_->enqueue_pos.fetch_or(kClosedBit, std::memory_order_relaxed) & ~kClosedBit;
    SLEET_FAULT_POINT("mpmc.close");
    // release: pairs with the acquire in final().
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
    // relaxed: a position; a consumer that took a ticket below the final
    // one but has not moved the position yet is helped past it by peek().
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
  // Moves `pos_word` from `pos` to pos + 1 (or learns it moved); returns
  // the position to try next.
  static std::uint64_t help_past(std::atomic<std::uint64_t>& pos_word, std::uint64_t pos) noexcept {
    // relaxed: positions carry no data.
    if (pos_word.compare_exchange_strong(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
      return pos + 1;
    }
    return pos;  // the current value
  }
  bool held_at(const std::atomic<std::uint64_t>& pos_word, std::uint64_t back, State st) const noexcept {
    // relaxed (both): a hint for the waits; unstick() decides.
    const std::uint64_t pos = (pos_word.load(std::memory_order_relaxed) & ~kClosedBit) - back;
    const std::uint64_t w = slot(pos)->word.load(std::memory_order_relaxed);
    return lap_diff(w, pos) == 0 && state_of(w) == st;
  }
  bool unstick(const std::atomic<std::uint64_t>& pos_word, std::uint64_t back, State st,
               std::uint32_t me) noexcept;

  MpmcControl* c_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t stride_ = 0;
  std::uint64_t max_size_ = 0;  // copy of the control block's, checked at open
};

}  // namespace sleet::detail
