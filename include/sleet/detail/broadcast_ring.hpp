// sleet/detail/broadcast_ring.hpp — layer 3: the ring of a Topic. Any
// number of publishers, any number of subscribers, and every subscriber
// reads every message: a ring of fixed-size slots, one sequence per slot,
// one cursor per subscriber (the LMAX Disruptor's shape, in shared memory).
//
// Layout of a topic inside its segment:
//
//   +0      TopicConfig       slots, stride, max_message_size, max_subscribers, overflow, spin
//   +128    TopicControl
//             +0    head      next ticket; bit 63: closed (the value below it is the final ticket)
//             +128  RingCommon close flag (display), data_ec, space_ec, slow-path counters
//             +640  generation, high_water, reclaimed, lost
//             +768  recovery lock (RobustLock), untracked publishers
//             +896  PublisherEntry[kTrackedPublishers]  one 64-byte line each
//   +3072   SubscriberEntry[max_subscribers]  one 128-byte line each
//   ...     BroadcastSlot[slots], `stride` bytes apart (16 + max_message_size, in 16-byte steps):
//
//   0                 8          12         16
//   +-----------------+----------+----------+-----------------------------+
//   |  seq (atomic)   |   size   | reserved |  payload (max_message_size)  |
//   +-----------------+----------+----------+-----------------------------+
//
// Tickets. A publisher takes ticket t by compare-and-swap on `head`, only
// after it has seen that it may (below); the message of ticket t goes to
// slot t % slots. A slot's seq says what it holds:
//   0          nothing yet (no ticket below `slots` has used it)
//   2t + 1     the publisher of ticket t is writing it (overwrite only)
//   2t + 2     it holds the message of ticket t
// The publisher of ticket t waits until the slot holds ticket t - slots (its
// previous lap) — so one slot never has two writers — then (overwrite)
// stores 2t + 1, writes, and publishes with 2t + 2. An aborted claim publishes size kSkip,
// which subscribers step over.
//
// Subscribers. Each has a SubscriberEntry: its owner's identity (pid +
// start time, process.hpp; 0 = free) and its cursor, the next ticket it
// reads. A subscriber reads ticket c when slot c % slots holds 2c + 2; it
// owns no slot and writes nothing but its own entry.
//
// Overflow.
// - block: a publisher takes ticket t only when every live subscriber's
//   cursor is above t - slots, i.e. has read what the slot held. The
//   publisher keeps the minimum cursor it last computed and rescans the
//   entries only when t reaches it (or when the set of subscribers changed,
//   `generation`), so a rescan costs one read of each entry in use and
//   happens about once per ring, not per message. A subscriber found dead
//   (its identity no longer runs) is reclaimed by the publisher it blocks.
// - overwrite: publishers never look at cursors. A subscriber that finds a
//   later lap in its slot (seq > 2c + 2) has lost messages: it jumps to the
//   oldest ticket the ring can still hold (head - slots) and counts the gap
//   in `lost`. Slots are then read as a seqlock: the subscriber copies the
//   payload out (relaxed atomic words), fences, and re-reads seq; a change
//   means the copy may be torn, and it counts as lost too. Publishers
//   therefore write the payload with atomic words as well (from a staging
//   buffer), so the race is defined behaviour.
//
// Synchronization (numbers name the pairs)
// (1) publisher: head.load and generation.load are seq_cst; a subscriber's
//     registration bumps generation (seq_cst RMW) and then loads head
//     (seq_cst). In the single total order, a publisher that did not see the
//     bump read a head that the subscriber's own head load also sees (or a
//     later one), so the subscriber's starting cursor is at or above every
//     ticket that publisher can take, and nothing it needs is overwritten.
//     A publisher that saw the bump rescans and sees the entry's pending or
//     final cursor (both stored before or by seq_cst operations after the
//     bump).
// (2) slot seq.load(acquire) by the next lap's publisher pairs with the
//     release store of 2t + 2 (3): writes of two laps never overlap.
// (3) seq.store(2t + 2, release) publishes the payload and size; pairs with
//     the subscriber's acquire load (4).
// (4) subscriber seq.load(acquire); under overwrite it copies, then
//     fence(acquire) and re-loads seq (5) — pairs with the publisher's
//     seq.store(2t + 1) + fence(release) before its payload stores: a copy
//     that read a newer payload word sees the newer seq.
// (6) cursor.store(release) after reading pairs with the publisher's
//     seq_cst load of the cursor in a rescan: the read happens before the
//     next lap's write (block).
// Closing sets bit 63 of head with one fetch_or: later claims fail, every
// ticket below the final one was claimed before and is published by its
// (live) publisher; subscribers drain up to it.
//
// Dead publishers. A publisher that dies between taking ticket t and
// publishing it would stall every subscriber at t, and the publishers of
// t + slots behind them. So a publisher names the ticket it is taking
// before it takes it: each PublisherPort has a PublisherEntry (its
// process's identity, and `claiming`), and before its CAS of head from t it
// stores claiming = t (the CAS is seq_cst, so its release half publishes
// the store: a checker that reads head > t with acquire reads from that
// CAS's release sequence and sees claiming = t or later). It stores
// claiming = none when the ticket is published (after the seq store (3)) or
// when it gives up without a ticket. Every store of `claiming` is a
// release and every check an acquire, so a checker that reads any later
// value of an entry also sees the tickets that publisher published before.
// So at every instant the taker of an unpublished ticket t has
// claiming == t in its entry, and a claim seen gone means published.
//
// A subscriber waiting at t (or a publisher waiting for t's slot to be
// published, to write t + slots) that sees the same unpublished seq for
// kRecoverAfter looks: head > t (t was taken), no entry claiming t names a
// live process, and some entry claiming t names a dead one. Then, under the
// topic's recovery lock (a RobustLock, so one recoverer writes and a
// recoverer that dies is taken over), it checks all of that again, entries
// first and the slot last (a taker that published t cleared its claim after
// publishing, so it is seen as published), and publishes t as an aborted
// claim (size kTopicSkip, subscribers step over it), counted in
// `abandoned`. A dead announcer that never took t is harmless (a live taker
// of t announces t itself). A dead entry is reused only after its claim is
// settled the same way. Publishers that found the table full
// (kTrackedPublishers live ones) are untracked: from then on, this topic
// recovers nothing (`untracked` stays set), since one of them might hold the
// ticket.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sleet/detail/platform.hpp"
#include "sleet/detail/ring_common.hpp"
#include "sleet/detail/robust_lock.hpp"

namespace sleet::detail {

struct TopicConfig {
  std::uint64_t slots;  // power of two
  std::uint64_t stride;
  std::uint64_t max_message_size;
  std::uint32_t max_subscribers;
  std::uint32_t overflow;  // Overflow
  std::int64_t spin_ns;
  std::byte pad[kFalseSharing - 40];
};
static_assert(sizeof(TopicConfig) == kFalseSharing);

// Publisher ports a topic tracks at once (see "Dead publishers").
inline constexpr std::uint32_t kTrackedPublishers = 32;
inline constexpr std::uint32_t kUntrackedPublisher = kTrackedPublishers;
inline constexpr std::uint64_t kNotClaiming = ~std::uint64_t{0};

struct alignas(kCacheLine) PublisherEntry {
  std::atomic<std::uint64_t> owner{0};                // process identity, 0 free
  std::atomic<std::uint64_t> claiming{kNotClaiming};  // ticket being taken or written
};
static_assert(sizeof(PublisherEntry) == kCacheLine);

struct TopicControl {
  alignas(kFalseSharing) std::atomic<std::uint64_t> head{0};
  RingCommon common;
  alignas(kFalseSharing) std::atomic<std::uint32_t> generation{0};  // bumped by each registration
  std::atomic<std::uint32_t> high_water{0};  // entries [0, high_water) have been used
  std::atomic<std::uint64_t> reclaimed{0};   // dead subscribers' places taken back (stats)
  std::atomic<std::uint64_t> lost{0};        // messages skipped by subscribers (stats)
  alignas(kFalseSharing) RobustLock recovery;  // held while a dead publisher's ticket is settled
  std::atomic<std::uint64_t> untracked{0};     // publishers that found the table full (ever)
  alignas(kFalseSharing) PublisherEntry publishers[kTrackedPublishers];
};
static_assert(offsetof(TopicControl, head) == 0);
static_assert(offsetof(TopicControl, common) == kFalseSharing);
static_assert(offsetof(TopicControl, generation) == 5 * kFalseSharing);
static_assert(offsetof(TopicControl, recovery) == 6 * kFalseSharing);
static_assert(offsetof(TopicControl, publishers) == 7 * kFalseSharing);
static_assert(sizeof(TopicControl) == 7 * kFalseSharing + kTrackedPublishers * kCacheLine);

struct alignas(kFalseSharing) SubscriberEntry {
  std::atomic<std::uint64_t> owner{0};   // identity, 0 free, kReclaiming
  std::atomic<std::uint64_t> cursor{0};  // next ticket; kFree / kPending
  std::atomic<std::uint64_t> lost{0};    // this subscriber's losses (stats)
};
static_assert(sizeof(SubscriberEntry) == kFalseSharing);
static_assert(offsetof(SubscriberEntry, cursor) == 8);

struct BroadcastSlot {
  std::atomic<std::uint64_t> seq;
  std::atomic<std::uint32_t> size;
  std::uint32_t reserved;
  std::byte* payload() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
};
static_assert(sizeof(BroadcastSlot) == 16);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::uint64_t kTopicClosedBit = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kCursorFree = ~std::uint64_t{0};          // no subscriber
inline constexpr std::uint64_t kCursorPending = ~std::uint64_t{0} - 1;   // registering
inline constexpr std::uint64_t kOwnerReclaiming = ~std::uint64_t{0};     // a reaper holds it
// Payload length of an aborted claim (subscribers step over it) and the
// Record::size() of a slot whose length fails its bound.
inline constexpr std::uint32_t kTopicSkip = 0xFFFFFFFFu;
inline constexpr std::uint32_t kTopicDamaged = 0xFFFFFFFEu;

// Word-wise copies for the overwrite seqlock (see the essay): relaxed
// atomic words on the shared side, so a torn read is detected, not UB.
inline void load_shared_words(std::uint64_t* dst, const std::byte* shared, std::size_t words) noexcept {
  auto* src = reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(shared));
  for (std::size_t i = 0; i < words; ++i) dst[i] = std::atomic_ref<std::uint64_t>(src[i]).load(std::memory_order_relaxed);
}
inline void store_shared_words(std::byte* shared, const std::uint64_t* src, std::size_t words) noexcept {
  auto* dst = reinterpret_cast<std::uint64_t*>(shared);
  for (std::size_t i = 0; i < words; ++i) std::atomic_ref<std::uint64_t>(dst[i]).store(src[i], std::memory_order_relaxed);
}

// A view of one topic's ring: addresses and the per-slot steps. Policy
// (who may take which ticket) lives in the ports (topic_core.hpp).
class BroadcastRing {
 public:
  static constexpr std::uint64_t stride_for(std::uint64_t max_message_size) noexcept {
    // Packed (16-byte steps), not whole lines: a topic usually has one
    // publisher, and every subscriber reads the slots in order, so small
    // messages sharing a line cost one line transfer per several messages.
    // Several publishers then share lines at the boundaries of their
    // tickets, which costs them some contention.
    return round_up(sizeof(BroadcastSlot) + max_message_size, 16);
  }
  static std::uint64_t slot_count(std::uint64_t capacity) noexcept {
    return capacity < 2 ? 2 : next_pow2(capacity);
  }
  static constexpr std::uint64_t entries_offset() noexcept {
    return sizeof(TopicConfig) + sizeof(TopicControl);
  }
  static constexpr std::uint64_t slots_offset(std::uint64_t max_subscribers) noexcept {
    return entries_offset() + max_subscribers * sizeof(SubscriberEntry);
  }
  static constexpr std::uint64_t bytes(std::uint64_t slots, std::uint64_t stride,
                                       std::uint64_t max_subscribers) noexcept {
    return slots_offset(max_subscribers) + slots * stride;
  }
  // seq of a slot that holds ticket t, and what it must hold before t is written.
  static constexpr std::uint64_t holds(std::uint64_t t) noexcept { return 2 * t + 2; }
  std::uint64_t before(std::uint64_t t) const noexcept { return t >= slots_ ? holds(t - slots_) : 0; }

  BroadcastRing() = default;
  explicit BroadcastRing(std::byte* object) noexcept
      : cfg_(reinterpret_cast<TopicConfig*>(object)),
        ctl_(reinterpret_cast<TopicControl*>(object + sizeof(TopicConfig))),
        entries_(reinterpret_cast<SubscriberEntry*>(object + entries_offset())),
        slots_base_(object + slots_offset(cfg_->max_subscribers)),
        slots_(cfg_->slots),
        stride_(cfg_->stride),
        max_size_(cfg_->max_message_size) {}

  TopicConfig& config() const noexcept { return *cfg_; }
  TopicControl& control() const noexcept { return *ctl_; }
  RingCommon& common() const noexcept { return ctl_->common; }
  SubscriberEntry& entry(std::uint64_t i) const noexcept { return entries_[i]; }
  PublisherEntry& publisher(std::uint32_t i) const noexcept { return ctl_->publishers[i]; }
  std::uint64_t slots() const noexcept { return slots_; }
  std::uint64_t max_message_size() const noexcept { return max_size_; }
  BroadcastSlot& slot(std::uint64_t t) const noexcept {
    return *reinterpret_cast<BroadcastSlot*>(slots_base_ + (t & (slots_ - 1)) * stride_);
  }

  // ---- publisher steps ----

  // Whether ticket t's slot is done with its previous lap (2).
  bool slot_free(std::uint64_t t) const noexcept {
    // acquire (2): pairs with the previous lap's release (3).
    return slot(t).seq.load(std::memory_order_acquire) == before(t);
  }
  void begin_write(std::uint64_t t) const noexcept {
    // relaxed + fence(release): seqlock writer's opening, pairs with (5).
    slot(t).seq.store(2 * t + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  bool published(std::uint64_t t) const noexcept {
    // acquire (4): as a subscriber's.
    return slot(t).seq.load(std::memory_order_acquire) >= holds(t);
  }
  void finish_write(std::uint64_t t, std::uint32_t size) const noexcept {
    BroadcastSlot& s = slot(t);
    s.size.store(size, std::memory_order_relaxed);  // relaxed: published by (3)
    s.seq.store(holds(t), std::memory_order_release);  // (3)
  }

 private:
  TopicConfig* cfg_ = nullptr;
  TopicControl* ctl_ = nullptr;
  SubscriberEntry* entries_ = nullptr;
  std::byte* slots_base_ = nullptr;
  std::uint64_t slots_ = 0;
  std::uint64_t stride_ = 0;
  std::uint64_t max_size_ = 0;
};

}  // namespace sleet::detail
