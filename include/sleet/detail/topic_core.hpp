// sleet/detail/topic_core.hpp — the untyped half of Topic<T> and
// Subscriber<T>: the segment (TopicCore) and the two ports over the
// broadcast ring (broadcast_ring.hpp has the layout and the protocol), in
// the form every port shares (spsc_port.hpp), so the typed code of
// channel_io.hpp serves topics unchanged:
//
//   PublisherPort   try_claim / claim_until -> Poll; commit; abort; publish
//   SubscriberPort  try_peek / peek_until / peek_forever -> Poll; peek_next;
//                   consume; release
//
// Threads. A PublisherPort keeps plain state (its cache of the slowest
// cursor, its staging buffer), and a SubscriberPort is one subscription (one
// entry, one private cursor): each is used by one thread at a time. Any
// number of Topic objects, in any processes, publish at once.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sleet/detail/broadcast_ring.hpp"
#include "sleet/detail/channel_core.hpp"
#include "sleet/detail/fault.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/messaging_core.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/topic_options.hpp"

namespace sleet::detail {

inline constexpr std::size_t kMaxSubscribers = 4096;
// How often a publisher blocked by a full ring (block) checks whether the
// subscribers holding it back still live: reading /proc costs microseconds,
// and a dead subscriber is rare, so a few checks a second bound the stall.
inline constexpr std::chrono::milliseconds kReapPeriod{20};
// Skips ahead one try_peek() makes under overwrite before it reports empty
// (each is a lap lost to publishers faster than this subscriber).
inline constexpr unsigned kLapTries = 16;

class TopicCore : public MessagingCore {
 public:
  TopicCore() = default;
  TopicCore(TopicCore&&) noexcept = default;
  TopicCore& operator=(TopicCore&&) noexcept = default;

  static TopicCore create(std::string_view name, const TopicOptions& options,
                          const MessageType& type);
  static TopicCore open(std::string_view name, const MessageType& type);
  static TopicCore open_or_create(std::string_view name, const TopicOptions& options,
                                  const MessageType& type);
  static bool remove(std::string_view name);
  TopicCore share() const;

  BroadcastRing& ring() noexcept { return ring_; }
  const BroadcastRing& ring() const noexcept { return ring_; }
  Overflow overflow() const noexcept { return overflow_; }
  std::size_t capacity() const noexcept { return ring_.slots(); }
  std::size_t max_subscribers() const noexcept { return max_subscribers_; }

  // Takes a free entry for this process and sets its starting cursor
  // (broadcast_ring.hpp (1)); reclaims dead subscribers' entries when all
  // are taken. Throws errc::full naming the topic and the limit.
  std::uint64_t subscribe(From from, std::uint64_t& cursor) const;
  // The minimum cursor of the live subscribers (block), or `t` when there
  // are none; returns false if a registration is in flight. Reclaims the
  // entries of dead subscribers below `t - slots` when `reap` is set.
  bool min_cursor(std::uint64_t t, bool reap, std::uint64_t& min) const noexcept;

  // Dead publishers (broadcast_ring.hpp). A PublisherEntry for a port of
  // this process, or kUntrackedPublisher when all are held by live ones.
  std::uint32_t attach_publisher() const noexcept;
  // Publishes ticket t as skipped if it stayed unpublished, exactly so,
  // for kRecoverAfter and its taker is dead. Slow: reads /proc.
  bool unstick(std::uint64_t t) const noexcept;
  // Whether a subscriber at `cursor` waits on a taken, unpublished ticket.
  bool stuck_at(std::uint64_t cursor) const noexcept {
    // acquire: as in recover(); relaxed would do for a hint, but this keeps one reading of head.
    const std::uint64_t h = ring_.control().head.load(std::memory_order_acquire) & ~kTopicClosedBit;
    return cursor < h && !ring_.published(cursor);
  }

  void close() const noexcept;
  bool closed() const noexcept {
    // acquire: pairs with the fetch_or in close().
    return (ring_.control().head.load(std::memory_order_acquire) & kTopicClosedBit) != 0;
  }
  TopicStats stats() const noexcept;

 private:
  TopicCore(Segment seg, std::string label);

  BroadcastRing ring_;
  Overflow overflow_ = Overflow::block;
  std::size_t max_subscribers_ = 0;
};

class PublisherPort {
 public:
  static constexpr bool kFixedSlots = true;  // every claim has room for max_message_size

  struct Claim {
    std::byte* ptr = nullptr;
    std::uint64_t ticket = 0;
    std::byte* data() const noexcept { return ptr; }
  };

  PublisherPort() = default;
  explicit PublisherPort(const TopicCore& core)
      : ring_(core.ring()), overwrite_(core.overflow() == Overflow::overwrite) {
    if (overwrite_) staging_.resize((ring_.max_message_size() + 7) / 8);
  }
  PublisherPort(PublisherPort&& o) noexcept { swap(o); }
  PublisherPort& operator=(PublisherPort&& o) noexcept {
    PublisherPort tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~PublisherPort() { detach(); }

  SLEET_INLINE Poll try_claim(const TopicCore& core, std::uint32_t, Claim& out) {
    // First claim of this port in this process (or in a fork()ed child).
    if (SLEET_UNLIKELY(pid_ != current_pid())) attach(core);
    TopicControl& ctl = ring_.control();
    // seq_cst (1): pairs with a subscriber's registration.
    std::uint64_t h = ctl.head.load(std::memory_order_seq_cst);
    for (;;) {
      if (SLEET_UNLIKELY(h & kTopicClosedBit)) return give_up(Poll::closed);
      if (!overwrite_ && SLEET_UNLIKELY(!space_for(core, h))) return give_up(Poll::empty);
      if (SLEET_UNLIKELY(!ring_.slot_free(h))) return wait_for_lap(core, h);
      // release: a recoverer that reads this claim (acquire) also sees our
      // earlier tickets published; the seq_cst CAS below publishes it to
      // whoever sees head past h ("Dead publishers").
      claiming_->store(h, std::memory_order_release);
      // seq_cst (1); a failure reloads h and checks again.
      if (ctl.head.compare_exchange_weak(h, h + 1, std::memory_order_seq_cst,
                                         std::memory_order_seq_cst)) {
        break;
      }
    }
    SLEET_FAULT_POINT("topic.claim");
    // Only overwrite needs the odd mark: under block no subscriber reads a
    // slot before it holds the ticket that subscriber waits for.
    if (overwrite_) ring_.begin_write(h);
    out.ticket = h;
    out.ptr = overwrite_ ? reinterpret_cast<std::byte*>(staging_.data()) : ring_.slot(h).payload();
    return Poll::ready;
  }
  SLEET_INLINE Poll claim_until(const TopicCore& core, std::uint32_t n, Claim& out, Deadline deadline) {
    const Poll p = try_claim(core, n, out);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    return wait_claim(core, n, out, deadline);
  }
  SLEET_NOINLINE Poll wait_claim(const TopicCore& core, std::uint32_t n, Claim& out, Deadline deadline) {
    core.count_full();
    RingCommon& c = ring_.common();
    for (;;) {
      // Sleeps in slices: a dead subscriber wakes nobody, so the publisher
      // looks for it (space_for() reaps) at least every kReapPeriod.
      const Deadline slice = std::min(deadline, Clock::now() + kReapPeriod);
      const Poll p = block_on(
          c.space_ec, [&] { return try_claim(core, n, out); }, core.spin(), slice, c.send_sleeps);
      if (p != Poll::empty || Clock::now() >= deadline) return p;
    }
  }
  SLEET_INLINE void commit(const Claim& c, std::uint32_t n) noexcept {
    if (overwrite_) store_shared_words(ring_.slot(c.ticket).payload(), staging_.data(), (n + 7) / 8);
    ring_.finish_write(c.ticket, n);
    // release: after the seq store (3), so a recoverer that sees the claim
    // gone sees the ticket published.
    claiming_->store(kNotClaiming, std::memory_order_release);
  }
  void abort(const Claim& c) noexcept {
    // relaxed: statistics.
    ring_.common().aborted.fetch_add(1, std::memory_order_relaxed);
    ring_.finish_write(c.ticket, kTopicSkip);
    claiming_->store(kNotClaiming, std::memory_order_release);  // release: as in commit()
    publish();  // subscribers waiting on the ticket step over it
  }
  SLEET_INLINE void publish() noexcept { ring_.common().data_ec.notify(); }

 private:
  // block: may ticket t be taken, i.e. is every live cursor above t - slots?
  SLEET_INLINE bool space_for(const TopicCore& core, std::uint64_t t) {
    // seq_cst (1): a registration bumps it before reading head.
    const std::uint32_t gen = ring_.control().generation.load(std::memory_order_seq_cst);
    if (SLEET_LIKELY(gen == gen_ && t < min_ + ring_.slots())) return true;
    return rescan(core, t, gen);
  }
  SLEET_NOINLINE bool rescan(const TopicCore& core, std::uint64_t t, std::uint32_t gen) {
    std::uint64_t min = 0;
    bool complete = core.min_cursor(t, false, min);
    if (!complete || t >= min + ring_.slots()) {
      // Held back: by a live subscriber (wait), or by a dead one, which we
      // look for at most once per kReapPeriod (it reads /proc).
      const Deadline now = Clock::now();
      if (now >= next_reap_) {
        next_reap_ = now + kReapPeriod;
        complete = core.min_cursor(t, true, min);
      }
    }
    if (!complete) return false;  // a subscriber is registering: wait for its cursor
    gen_ = gen;
    min_ = min;
    return t < min + ring_.slots();
  }

  SLEET_NOINLINE void attach(const TopicCore& core) noexcept {
    detach();
    entry_ = core.attach_publisher();
    claiming_ = entry_ < kTrackedPublishers ? &ring_.publisher(entry_).claiming : &untracked_claim_;
    pid_ = current_pid();
  }
  void detach() noexcept {
    // A fork()ed copy does not give back its parent's entry.
    if (pid_ == current_pid() && entry_ < kTrackedPublishers) {
      PublisherEntry& e = ring_.publisher(entry_);
      e.claiming.store(kNotClaiming, std::memory_order_relaxed);  // relaxed: published below
      e.owner.store(0, std::memory_order_release);  // release: pairs with attach_publisher()'s CAS
    }
    entry_ = kUntrackedPublisher;
    claiming_ = &untracked_claim_;
    pid_ = 0;
  }
  // No ticket taken: nothing is being claimed any more.
  SLEET_INLINE Poll give_up(Poll p) noexcept {
    claiming_->store(kNotClaiming, std::memory_order_release);  // release: as the claim in try_claim()
    return p;
  }
  // Ticket h's slot still waits for the publisher of h - slots: ask whether
  // that one died (after kRecoverAfter of the same state).
  SLEET_NOINLINE Poll wait_for_lap(const TopicCore& core, std::uint64_t h) noexcept {
    if (h >= ring_.slots()) (void)core.unstick(h - ring_.slots());
    return give_up(Poll::empty);
  }
  void swap(PublisherPort& o) noexcept {
    std::swap(ring_, o.ring_);
    std::swap(overwrite_, o.overwrite_);
    std::swap(gen_, o.gen_);
    std::swap(min_, o.min_);
    std::swap(next_reap_, o.next_reap_);
    staging_.swap(o.staging_);
    std::swap(entry_, o.entry_);
    std::swap(pid_, o.pid_);
    // Each port keeps its own untracked word: swap where the pointers lead.
    const bool mine = claiming_ == &untracked_claim_;
    const bool theirs = o.claiming_ == &o.untracked_claim_;
    std::swap(claiming_, o.claiming_);
    if (theirs) claiming_ = &untracked_claim_;
    if (mine) o.claiming_ = &o.untracked_claim_;
  }

  BroadcastRing ring_;
  bool overwrite_ = false;
  std::uint32_t entry_ = kUntrackedPublisher;  // our PublisherEntry
  int pid_ = 0;                                // the process entry_ was taken in
  std::atomic<std::uint64_t> untracked_claim_{kNotClaiming};  // claiming_ when untracked
  std::atomic<std::uint64_t>* claiming_ = &untracked_claim_;
  std::uint32_t gen_ = ~std::uint32_t{0};  // generation min_ was computed at
  std::uint64_t min_ = 0;                 // slowest live cursor then
  Deadline next_reap_{};
  std::vector<std::uint64_t> staging_;  // overwrite: the payload before its atomic copy
};

class SubscriberPort : public PeekWaits<SubscriberPort> {
 public:
  struct Record {
    const std::byte* ptr = nullptr;
    std::uint32_t len = 0;
    const std::byte* data() const noexcept { return ptr; }
    std::uint32_t size() const noexcept { return len; }
  };

  SubscriberPort() = default;
  SubscriberPort(const TopicCore& core, From from)
      : ring_(core.ring()), overwrite_(core.overflow() == Overflow::overwrite) {
    if (overwrite_) copy_.resize((ring_.max_message_size() + 7) / 8);
    index_ = core.subscribe(from, cursor_);
    entry_ = &ring_.entry(index_);
  }
  SubscriberPort(SubscriberPort&& o) noexcept { swap(o); }
  SubscriberPort& operator=(SubscriberPort&& o) noexcept {
    SubscriberPort tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~SubscriberPort() { unsubscribe(); }

  // Gives the entry back (if this process still owns it: a fork()ed copy
  // does not); a publisher it held back may go on.
  void unsubscribe() noexcept {
    if (entry_ == nullptr) return;
    // relaxed: only our own identity matters, and it is stable.
    if (entry_->owner.load(std::memory_order_relaxed) == current_identity()) {
      // seq_cst: publishers' rescans (seq_cst loads) see the place free
      // before the owner word says so (as in reclaim()).
      entry_->cursor.store(kCursorFree, std::memory_order_seq_cst);
      entry_->owner.store(0, std::memory_order_release);  // release: the free cursor comes first
      ring_.common().space_ec.notify();
    }
    entry_ = nullptr;
  }
  bool subscribed() const noexcept { return entry_ != nullptr; }

  RingCommon& common() const noexcept { return ring_.common(); }
  std::uint64_t index() const noexcept { return index_; }
  std::uint64_t cursor() const noexcept { return cursor_; }
  std::uint64_t lost() const noexcept { return lost_; }

  SLEET_INLINE Poll try_peek(const TopicCore& core, Record& r) noexcept {
    if (SLEET_LIKELY(peek_next(r))) return Poll::ready;
    // Not head: publishers write it for every message, and a subscriber
    // that polls it while caught up would pull its line away from them.
    // The read-mostly close flag is stored after head's closed bit.
    if (SLEET_LIKELY(!ring_.common().is_closed())) {
      // A poller that never waits still gets a dead publisher's ticket
      // settled: every 1024th empty poll asks (reads head).
      if (SLEET_UNLIKELY((++empty_polls_ & 1023) == 0)) unstick(core);
      return Poll::empty;
    }
    // closed and drained: every ticket below the final one was published.
    // acquire: pairs with close()'s fetch_or.
    const std::uint64_t h = ring_.control().head.load(std::memory_order_acquire);
    if ((h & kTopicClosedBit) != 0 && cursor_ >= (h & ~kTopicClosedBit)) return Poll::closed;
    return Poll::empty;
  }
  SLEET_INLINE bool peek_next(Record& r) noexcept {
    for (unsigned lap = 0; lap < kLapTries; ++lap) {
      BroadcastSlot& s = ring_.slot(cursor_);
      const std::uint64_t want = BroadcastRing::holds(cursor_);
      // acquire (4): pairs with the publisher's release (3).
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
      if (SLEET_UNLIKELY(seq != want)) {
        if (seq < want) return false;  // not published yet
        skip_ahead();                  // a later lap: overwritten
        continue;
      }
      const std::uint32_t n = s.size.load(std::memory_order_relaxed);  // relaxed: after (4)
      if (SLEET_UNLIKELY(n == kTopicSkip)) {
        ++cursor_;  // an aborted claim carries nothing
        continue;
      }
      if (SLEET_UNLIKELY(n > ring_.max_message_size())) {
        r = {nullptr, kTopicDamaged};
        return true;
      }
      if (!overwrite_) {
        r = {s.payload(), n};
        return true;
      }
      load_shared_words(copy_.data(), s.payload(), (n + 7) / 8);
      std::atomic_thread_fence(std::memory_order_acquire);  // (5)
      if (SLEET_LIKELY(s.seq.load(std::memory_order_relaxed) == want)) {
        r = {reinterpret_cast<const std::byte*>(copy_.data()), n};
        return true;
      }
      skip_ahead();  // overwritten while we copied: the copy may be torn
    }
    return false;
  }
  Poll peek_forever(const TopicCore& core, Record& r) {
    return peek_until(core, r, kForever, [] { return false; });
  }
  // The wait of PeekWaits, in slices of kRecoverAfter while the next ticket
  // is taken but unpublished (its publisher may be dead: nobody would wake
  // us). Whether it is means reading head, the line every publish writes,
  // so a subscriber that keeps up does not ask on every wait: it asks when
  // the ticket after ours is already published (a slot line we read
  // anyway), once the topic is closed (close wakes it once), on every 64th
  // wait, and on every wait while the last answer was yes.
  template <class Stop>
  SLEET_NOINLINE Poll wait_peek(const TopicCore& core, Record& r, Deadline deadline, Stop& stop) {
    for (;;) {
      const bool ask = suspect_ || ring_.published(cursor_ + 1) || (++waits_ & 63) == 0 ||
                       ring_.common().is_closed();
      const bool stuck = ask && unstick(core);
      suspect_ = stuck;
      const Deadline slice = stuck ? std::min(deadline, Clock::now() + kRecoverAfter) : deadline;
      const Poll p = PeekWaits<SubscriberPort>::wait_peek(core, r, slice, stop);
      if (p != Poll::empty || Clock::now() >= deadline) return p;
    }
  }
  std::size_t batch_limit() const noexcept { return ring_.slots(); }
  static bool damaged(const Record& r) noexcept { return r.len == kTopicDamaged; }
  void drop_damaged(const Record& r) noexcept {
    consume(r);
    release();
  }
  SLEET_INLINE void consume(const Record&) noexcept { ++cursor_; }
  SLEET_INLINE void release() noexcept {
    // release (6): our reads of the slots before the cursor happen before
    // the next lap's write; pairs with the seq_cst load in a rescan.
    entry_->cursor.store(cursor_, std::memory_order_release);
    if (!overwrite_) ring_.common().space_ec.notify();
  }
  void take_receiver_role(const TopicCore&) noexcept {}
  bool stuck_on_damage() noexcept { return false; }


 private:
  void swap(SubscriberPort& o) noexcept {
    std::swap(ring_, o.ring_);
    std::swap(overwrite_, o.overwrite_);
    std::swap(index_, o.index_);
    std::swap(entry_, o.entry_);
    std::swap(cursor_, o.cursor_);
    std::swap(lost_, o.lost_);
    std::swap(empty_polls_, o.empty_polls_);
    std::swap(waits_, o.waits_);
    std::swap(suspect_, o.suspect_);
    copy_.swap(o.copy_);
  }
  // Whether our next ticket is taken but unpublished; if so, asks whether
  // its publisher died (broadcast_ring.hpp, "Dead publishers").
  SLEET_NOINLINE bool unstick(const TopicCore& core) noexcept {
    if (!core.stuck_at(cursor_)) return false;
    (void)core.unstick(cursor_);
    return true;
  }
  SLEET_NOINLINE void skip_ahead() noexcept {
    // acquire: the head we read comes with the tickets below it claimed.
    const std::uint64_t h = ring_.control().head.load(std::memory_order_acquire) & ~kTopicClosedBit;
    std::uint64_t next = h > ring_.slots() ? h - ring_.slots() : 0;
    if (next <= cursor_) next = cursor_ + 1;
    const std::uint64_t n = next - cursor_;
    lost_ += n;
    // relaxed (both): statistics.
    entry_->lost.fetch_add(n, std::memory_order_relaxed);
    ring_.control().lost.fetch_add(n, std::memory_order_relaxed);
    cursor_ = next;
  }

  BroadcastRing ring_;
  bool overwrite_ = false;
  std::uint64_t index_ = 0;
  SubscriberEntry* entry_ = nullptr;
  std::uint64_t cursor_ = 0;
  std::uint64_t lost_ = 0;
  std::uint32_t empty_polls_ = 0;  // try_peek() found nothing (see there)
  std::uint32_t waits_ = 0;        // wait_peek() calls (see there)
  bool suspect_ = false;           // the last wait found our ticket stuck
  std::vector<std::uint64_t> copy_;  // overwrite: the payload copied out of its slot
};

}  // namespace sleet::detail
