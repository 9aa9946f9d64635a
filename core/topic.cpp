// The untyped part of Topic<T>: laying out, creating, opening and validating
// topics, subscriber registration and reclaiming, close and statistics
// (topic_core.hpp, broadcast_ring.hpp).
#include "sleet/detail/topic_core.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "sleet/detail/fault.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet::detail {

namespace {

struct TopicLayout {
  std::uint64_t slots;
  std::uint64_t stride;
  std::uint64_t max_message_size;
  std::uint64_t max_subscribers;
  std::uint64_t bytes;
};

TopicLayout resolve(const TopicOptions& o, const MessageType& type, std::string_view what) {
  if (o.max_subscribers == 0 || o.max_subscribers > kMaxSubscribers) {
    throw_error(errc::invalid_argument, what,
                "max_subscribers " + std::to_string(o.max_subscribers) + " is out of range [1, " +
                    std::to_string(kMaxSubscribers) + "]");
  }
  if (o.overflow != Overflow::block && o.overflow != Overflow::overwrite) {
    throw_error(errc::invalid_argument, what, "unknown overflow policy");
  }
  const std::uint64_t max_size = check_ring_options(o.capacity, o.max_message_size, o.spin, type, what);
  TopicLayout l{};
  l.slots = BroadcastRing::slot_count(o.capacity);
  l.stride = BroadcastRing::stride_for(max_size);
  l.max_message_size = max_size;
  l.max_subscribers = o.max_subscribers;
  l.bytes = BroadcastRing::bytes(l.slots, l.stride, l.max_subscribers);
  if (l.bytes > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(o.capacity) + " of " + std::to_string(max_size) +
                    "-byte messages needs " + std::to_string(l.bytes) +
                    " bytes, more than the limit of " + std::to_string(kMaxSegmentSize));
  }
  return l;
}

void initialize(std::byte* at, const TopicLayout& l, const TopicOptions& o) {
  auto* cfg = new (at) TopicConfig{};
  cfg->slots = l.slots;
  cfg->stride = l.stride;
  cfg->max_message_size = l.max_message_size;
  cfg->max_subscribers = static_cast<std::uint32_t>(l.max_subscribers);
  cfg->overflow = static_cast<std::uint32_t>(o.overflow);
  cfg->spin_ns = o.spin.count();
  new (at + sizeof(TopicConfig)) TopicControl{};
  auto* entries = at + BroadcastRing::entries_offset();
  for (std::uint64_t i = 0; i < l.max_subscribers; ++i) {
    auto* e = new (entries + i * sizeof(SubscriberEntry)) SubscriberEntry{};
    // relaxed: published with the segment's `ready`.
    e->cursor.store(kCursorFree, std::memory_order_relaxed);
  }
  auto* slots = at + BroadcastRing::slots_offset(l.max_subscribers);
  for (std::uint64_t i = 0; i < l.slots; ++i) {
    auto* s = new (slots + i * l.stride) BroadcastSlot{};
    s->seq.store(0, std::memory_order_relaxed);  // relaxed: as above
    s->size.store(0, std::memory_order_relaxed);
  }
}

// Validates the layout found in an opened segment before anything is read
// through it.
void check(const Segment& seg, std::string_view what) {
  if (seg.object_size() < BroadcastRing::entries_offset()) {
    throw_error(errc::not_sleet, what, "too small for a topic");
  }
  const auto& c = *reinterpret_cast<const TopicConfig*>(seg.object());
  if (!is_pow2(c.slots) || c.slots < 2 || c.slots > 2 * kMaxCapacity ||
      c.max_message_size > kMaxMessageSize ||
      c.stride != BroadcastRing::stride_for(c.max_message_size) || c.max_subscribers == 0 ||
      c.max_subscribers > kMaxSubscribers || c.overflow > 1) {
    throw_error(errc::not_sleet, what, "damaged topic configuration");
  }
  if (BroadcastRing::bytes(c.slots, c.stride, c.max_subscribers) > seg.object_size()) {
    throw_error(errc::not_sleet, what, "topic ring does not fit in its segment");
  }
}

}  // namespace

TopicCore::TopicCore(Segment seg, std::string label)
    : MessagingCore(std::move(seg), std::move(label), nullptr, 0, {}), ring_(seg_.object()) {
  const TopicConfig& c = ring_.config();
  common_ = &ring_.common();
  max_size_ = static_cast<std::uint32_t>(c.max_message_size);
  spin_ = std::chrono::nanoseconds(c.spin_ns);
  overflow_ = static_cast<Overflow>(c.overflow);
  max_subscribers_ = c.max_subscribers;
}

TopicCore TopicCore::share() const {
  TopicCore c(seg_.share(), label_);
  c.spin_ = spin_;
  return c;
}

TopicCore TopicCore::create(std::string_view name, const TopicOptions& options,
                            const MessageType& type) {
  validate_name(name);
  std::string label = object_label("topic", name);
  const TopicLayout layout = resolve(options, type, label);
  SegmentSpec spec{SegmentKind::topic, layout.bytes, type.fingerprint, type.name,
                   options.permissions};
  Segment seg =
      Segment::create(name, spec, [&](std::byte* object) { initialize(object, layout, options); });
  return TopicCore(std::move(seg), std::move(label));
}

TopicCore TopicCore::open(std::string_view name, const MessageType& type) {
  Segment seg = Segment::open(name, SegmentKind::topic, type.fingerprint, type.name);
  std::string label = object_label("topic", name);
  check(seg, label);
  return TopicCore(std::move(seg), std::move(label));
}

TopicCore TopicCore::open_or_create(std::string_view name, const TopicOptions& options,
                                    const MessageType& type) {
  return create_or_open([&] { return create(name, options, type); },
                        [&] { return open(name, type); });
}

bool TopicCore::remove(std::string_view name) { return remove_segment(name, SegmentKind::topic); }

// ---- subscribers ----

namespace {

// Takes entry `e` back from a dead owner `owner`: marks it (so no second
// reaper and no registrant touches it), frees the cursor, then the owner.
bool reclaim(TopicControl& ctl, SubscriberEntry& e, std::uint64_t owner) noexcept {
  // acquire: we see the dead owner's last stores; relaxed on failure: someone
  // else changed it, we read nothing through it.
  if (!e.owner.compare_exchange_strong(owner, kOwnerReclaiming, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
    return false;
  }
  // seq_cst: publishers' rescans (seq_cst loads) see the place free before
  // the owner word says so.
  e.cursor.store(kCursorFree, std::memory_order_seq_cst);
  e.owner.store(0, std::memory_order_release);  // release: the free cursor comes first
  ctl.reclaimed.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
  return true;
}

}  // namespace

std::uint64_t TopicCore::subscribe(From from, std::uint64_t& cursor) const {
  TopicControl& ctl = ring_.control();
  const std::uint64_t me = current_identity();
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint64_t i = 0; i < max_subscribers_; ++i) {
      SubscriberEntry& e = ring_.entry(i);
      std::uint64_t owner = 0;
      // acquire: the previous holder's release of the entry happened before.
      if (!e.owner.compare_exchange_strong(owner, me, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
        // Second pass: take back the places of dead subscribers.
        if (pass == 1 && owner != 0 && owner != kOwnerReclaiming && !identity_alive(owner) &&
            reclaim(ctl, e, owner)) {
          --i;  // try this entry again (unsigned wrap-around is defined)
        }
        continue;
      }
      // seq_cst (1): the pending mark is visible to any publisher that sees
      // the generation bump below.
      e.cursor.store(kCursorPending, std::memory_order_seq_cst);
      e.lost.store(0, std::memory_order_relaxed);  // relaxed: stats
      // relaxed: published by the seq_cst bump of generation just below,
      // which publishers load before they read high_water.
      std::uint32_t hw = ctl.high_water.load(std::memory_order_relaxed);
      while (hw < i + 1 && !ctl.high_water.compare_exchange_weak(
                               hw, static_cast<std::uint32_t>(i + 1), std::memory_order_relaxed)) {
      }
      ctl.generation.fetch_add(1, std::memory_order_seq_cst);                               // (1)
      const std::uint64_t h = ctl.head.load(std::memory_order_seq_cst) & ~kTopicClosedBit;  // (1)
      if (from == From::next) {
        cursor = h;
      } else if (overflow_ == Overflow::overwrite) {
        cursor = h > ring_.slots() ? h - ring_.slots() : 0;  // the oldest the ring can hold
      } else {
        // block: a publisher that did not see our bump holds a ticket of
        // at most h, and ticket h rewrites the slot of h - slots: start
        // after it.
        cursor = h >= ring_.slots() ? h - ring_.slots() + 1 : 0;
      }
      e.cursor.store(cursor, std::memory_order_seq_cst);  // seq_cst: publishers now see where we start
      ctl.common.space_ec.notify();  // a publisher waiting for our pending cursor may go on
      return i;
    }
  }
  throw_error(errc::full, label_,
              "all " + std::to_string(max_subscribers_) +
                  " subscriber places are taken by live subscribers (max_subscribers)");
}

bool TopicCore::min_cursor(std::uint64_t t, bool reap, std::uint64_t& min) const noexcept {
  TopicControl& ctl = ring_.control();
  // seq_cst (1): after the generation load, so it covers every entry
  // registered by then. Bounded by max_subscribers: a damaged value cannot
  // make us read past the table.
  const std::uint64_t n =
      std::min<std::uint64_t>(ctl.high_water.load(std::memory_order_seq_cst), max_subscribers_);
  std::uint64_t m = t;
  bool complete = true;
  for (std::uint64_t i = 0; i < n; ++i) {
    SubscriberEntry& e = ring_.entry(i);
    // seq_cst (1), (6): see the essay.
    const std::uint64_t c = e.cursor.load(std::memory_order_seq_cst);
    if (c == kCursorFree) continue;
    if (reap && (c == kCursorPending || c + ring_.slots() <= t)) {
      const std::uint64_t owner = e.owner.load(std::memory_order_acquire);  // acquire: as in reclaim()
      if (owner != 0 && owner != kOwnerReclaiming && !identity_alive(owner) &&
          reclaim(ctl, e, owner)) {
        continue;
      }
    }
    if (c == kCursorPending) {
      complete = false;
      continue;
    }
    m = std::min(m, c);
  }
  min = m;
  return complete;
}

// ---- dead publishers (broadcast_ring.hpp) ----

namespace {

// Whether ticket t, unpublished, was taken by a process that died: some
// entry claiming t names a dead process and none claiming it names a live
// one. Entries are read before the caller re-checks the slot (see the essay).
bool taken_by_dead(const BroadcastRing& ring, std::uint64_t t) noexcept {
  bool dead = false;
  for (std::uint32_t i = 0; i < kTrackedPublishers; ++i) {
    const PublisherEntry& e = ring.publisher(i);
    // acquire (both): pair with the release that cleared a claim after its
    // ticket was published, and with attach_publisher()'s CAS.
    if (e.claiming.load(std::memory_order_acquire) != t) continue;
    const std::uint64_t owner = e.owner.load(std::memory_order_acquire);
    if (owner != 0 && identity_alive(owner)) return false;
    dead = true;
  }
  return dead;
}

// Settles ticket t of a dead taker: published as skipped. Called with the
// recovery lock held; re-checks everything.
bool settle(const BroadcastRing& ring, std::uint64_t t) noexcept {
  TopicControl& ctl = ring.control();
  // acquire: reads from the taker's CAS release sequence (see the essay).
  const std::uint64_t h = ctl.head.load(std::memory_order_acquire) & ~kTopicClosedBit;
  if (t >= h) return false;
  // An untracked publisher may hold t. acquire: pairs with the seq_cst
  // store in attach_publisher(), which comes before that publisher's CAS.
  if (ctl.untracked.load(std::memory_order_acquire) != 0) return false;
  if (!taken_by_dead(ring, t) || ring.published(t)) return false;
  // The odd mark first, as a writer's opening (an overwrite subscriber
  // copying an older lap sees the seq move), then skip and publish.
  ring.begin_write(t);
  ring.finish_write(t, kTopicSkip);
  for (std::uint32_t i = 0; i < kTrackedPublishers; ++i) {
    PublisherEntry& e = ring.publisher(i);
    std::uint64_t c = t;
    // relaxed: the entry's owner is dead (taken_by_dead); only its claim goes.
    e.claiming.compare_exchange_strong(c, kNotClaiming, std::memory_order_relaxed);
  }
  ctl.common.abandoned.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
  return true;
}

// Runs `f` under the topic's recovery lock (a holder that died is taken
// over; a live one is waited for, briefly: recovery is rare and short).
template <class F>
bool with_recovery_lock(const BroadcastRing& ring, F&& f) noexcept {
  RobustLock& lock = ring.control().recovery;
  const std::uint64_t me = current_thread_identity();
  const LockState st = lock.lock(me, Clock::now() + std::chrono::milliseconds(100), std::chrono::nanoseconds(0));
  if (st != LockState::acquired && st != LockState::owner_died) return false;
  const bool done = f();
  lock.unlock(me);
  return done;
}

}  // namespace

std::uint32_t TopicCore::attach_publisher() const noexcept {
  TopicControl& ctl = ring_.control();
  const std::uint64_t me = current_identity();
  for (std::uint32_t i = 0; i < kTrackedPublishers; ++i) {
    std::uint64_t expected = 0;
    // acq_rel: the entry is ours before we announce with it; pairs with the
    // release in PublisherPort::detach().
    if (ring_.publisher(i).owner.compare_exchange_strong(expected, me, std::memory_order_acq_rel,
                                                         std::memory_order_acquire)) {
      return i;
    }
  }
  // A dead port's entry: settle what it was claiming, then take it.
  for (std::uint32_t i = 0; i < kTrackedPublishers; ++i) {
    PublisherEntry& e = ring_.publisher(i);
    std::uint64_t dead = e.owner.load(std::memory_order_acquire);  // acquire: as above
    if (dead == 0 || identity_alive(dead)) continue;
    const bool taken = with_recovery_lock(ring_, [&] {
      // acquire: as in taken_by_dead().
      const std::uint64_t t = e.claiming.load(std::memory_order_acquire);
      if (t != kNotClaiming && !ring_.published(t)) (void)settle(ring_, t);
      // Unsettled (t not taken, or a live taker of t announced it too): the
      // dead claim says nothing any more.
      e.claiming.store(kNotClaiming, std::memory_order_relaxed);  // relaxed: published by the CAS
      return e.owner.compare_exchange_strong(dead, me, std::memory_order_acq_rel,
                                             std::memory_order_acquire);
    });
    if (taken) return i;
  }
  ctl.untracked.store(1, std::memory_order_seq_cst);  // seq_cst: before any claim of ours
  return kUntrackedPublisher;
}

bool TopicCore::unstick(std::uint64_t t) const noexcept {
  const BroadcastSlot& s = ring_.slot(t);
  // relaxed: a hint; settle() re-reads everything under the lock.
  if (!stuck_for_long(&s, s.seq.load(std::memory_order_relaxed))) return false;
  if (!taken_by_dead(ring_, t)) return false;  // a pre-check; settle() decides
  const bool done = with_recovery_lock(ring_, [&] { return settle(ring_, t); });
  if (done) {
    ring_.common().data_ec.notify();   // subscribers at t step over it
    ring_.common().space_ec.notify();  // the publisher of t + slots may write
  }
  return done;
}

void TopicCore::close() const noexcept {
  TopicControl& ctl = ring_.control();
  // relaxed: as in ChannelCore::close(): for a subscriber that finishes our
  // close if we die, reached through the release of the wake below.
  ctl.common.closer.store(current_identity(), std::memory_order_relaxed);
  // acq_rel: later claims see the bit (their CAS fails); subscribers that see
  // it (acquire) see the tickets claimed before it.
  ctl.head.fetch_or(kTopicClosedBit, std::memory_order_acq_rel);
  ctl.common.data_ec.notify_slow();  // subscribers asleep see `closer`: they wait in slices until kClosed
  SLEET_FAULT_POINT("topic.close");
  // release: after the head bit, so a subscriber that sees kClosed (acquire,
  // try_peek's cheap check) then reads head with the final ticket.
  ctl.common.closed.store(kClosed, std::memory_order_release);
  // Unconditional wakes (see ChannelCore::close()).
  ctl.common.data_ec.notify_slow();
  ctl.common.space_ec.notify_slow();
}

TopicStats TopicCore::stats() const noexcept {
  const TopicControl& ctl = ring_.control();
  TopicStats s;
  s.capacity = ring_.slots();
  s.max_message_size = max_size_;
  s.max_subscribers = max_subscribers_;
  s.overflow = overflow_;
  // relaxed (all): a racy snapshot for display.
  const std::uint64_t h = ctl.head.load(std::memory_order_relaxed);
  s.closed = (h & kTopicClosedBit) != 0;
  s.published = h & ~kTopicClosedBit;
  const std::uint64_t n =
      std::min<std::uint64_t>(ctl.high_water.load(std::memory_order_relaxed), max_subscribers_);
  std::uint64_t min = s.published;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t c = ring_.entry(i).cursor.load(std::memory_order_relaxed);
    if (c == kCursorFree || c == kCursorPending) continue;
    ++s.subscribers;
    min = std::min(min, c);
  }
  s.slowest_lag = s.published - std::min(min, s.published);
  s.lost = ctl.lost.load(std::memory_order_relaxed);
  s.abandoned = ctl.common.abandoned.load(std::memory_order_relaxed);
  s.reclaimed = ctl.reclaimed.load(std::memory_order_relaxed);
  s.times_full = ctl.common.times_full.load(std::memory_order_relaxed);
  s.publish_sleeps = ctl.common.send_sleeps.load(std::memory_order_relaxed);
  s.receive_sleeps = ctl.common.receive_sleeps.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sleet::detail
