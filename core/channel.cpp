// The untyped part of Channel<T> and Pipe<T>: laying out, creating, opening
// and validating channels, the close protocol, the spsc role claims and the
// statistics (channel_core.hpp).
#include "sleet/detail/channel_core.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>

#include "sleet/detail/fault.hpp"
#include "sleet/detail/owner_word.hpp"
#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet::detail {

namespace {

// A Channel object's serial, for spsc roles: unique within this process,
// and mixed with the process's identity so that a dead holder's serial,
// left in a role until the next holder writes its own, never equals one of
// ours (claim_role()'s same-process check). Never 0.
std::uint64_t next_serial() noexcept {
  static std::atomic<std::uint64_t> serial{0};
  // relaxed: only uniqueness matters.
  const std::uint64_t n = serial.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint64_t s = (current_identity() * 0x9E3779B97F4A7C15u) ^ n;
  return s != 0 ? s : 1;
}

}  // namespace

// ---- layout ----

ChannelLayout ChannelLayout::resolve(const ChannelOptions& options, const MessageType& type,
                                     std::string_view what) {
  if (options.topology != Topology::spsc && options.topology != Topology::mpmc) {
    throw_error(errc::invalid_argument, what, "unknown topology");
  }
  const std::uint64_t max_size =
      check_ring_options(options.capacity, options.max_message_size, options.spin, type, what);

  ChannelLayout l{};
  l.topology = options.topology;
  l.capacity = options.capacity;
  l.max_message_size = max_size;
  l.spin_ns = options.spin.count();
  std::uint64_t ring;
  if (l.topology == Topology::spsc) {
    l.ring_units = SpscRing::array_bytes(l.capacity, max_size);
    ring = SpscRing::control_size() + l.ring_units;
  } else {
    l.ring_units = MpmcRing::slot_count(l.capacity);
    ring = MpmcRing::control_size() + l.ring_units * MpmcRing::stride_for(max_size);
  }
  l.bytes = round_up(sizeof(ChannelConfig) + ring, kFalseSharing);
  if (l.bytes > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(l.capacity) + " of " + std::to_string(max_size) +
                    "-byte messages needs " + std::to_string(l.bytes) +
                    " bytes, more than the limit of " + std::to_string(kMaxSegmentSize));
  }
  return l;
}

void ChannelLayout::initialize(std::byte* at) const {
  auto* cfg = new (at) ChannelConfig{};
  cfg->topology = static_cast<std::uint32_t>(topology);
  cfg->capacity = capacity;
  cfg->max_message_size = max_message_size;
  cfg->spin_ns = spin_ns;
  void* ring = at + sizeof(ChannelConfig);
  if (topology == Topology::spsc) {
    SpscRing::initialize(ring, ring_units, max_message_size);
  } else {
    MpmcRing::initialize(ring, ring_units, max_message_size);
  }
}

std::uint64_t ChannelLayout::check(const std::byte* at, std::uint64_t limit,
                                   const MessageType& type, std::string_view what) {
  // The smaller control block; the mpmc one is checked again below.
  if (limit < sizeof(ChannelConfig) + std::min(SpscRing::control_size(), MpmcRing::control_size())) {
    throw_error(errc::not_sleet, what, "too small for a channel");
  }
  const auto& cfg = *reinterpret_cast<const ChannelConfig*>(at);
  const std::byte* ring = at + sizeof(ChannelConfig);
  std::uint64_t need = sizeof(ChannelConfig);
  if (cfg.max_message_size > kMaxMessageSize) {
    throw_error(errc::not_sleet, what, "damaged channel (max_message_size out of range)");
  }
  if (cfg.topology == static_cast<std::uint32_t>(Topology::spsc)) {
    const auto& c = *reinterpret_cast<const SpscControl*>(ring);
    if (!is_pow2(c.bytes) || c.bytes < 2 * SpscRing::record_size(c.max_message_size) ||
        c.max_message_size != cfg.max_message_size) {
      throw_error(errc::not_sleet, what, "damaged spsc ring (array size or message size)");
    }
    if (c.bytes > limit) throw_error(errc::not_sleet, what, "spsc ring does not fit in its segment");
    need += SpscRing::control_size() + c.bytes;
  } else if (cfg.topology == static_cast<std::uint32_t>(Topology::mpmc)) {
    if (limit < need + MpmcRing::control_size()) throw_error(errc::not_sleet, what, "too small for an mpmc channel");
    const auto& c = *reinterpret_cast<const MpmcControl*>(ring);
    if (!is_pow2(c.slots) || c.slots < 2 || c.stride != MpmcRing::stride_for(c.max_message_size) ||
        c.max_message_size != cfg.max_message_size) {
      throw_error(errc::not_sleet, what, "damaged mpmc ring (slot count or stride)");
    }
    // Divide rather than multiply: a damaged slot count must not overflow.
    if (c.slots > (limit - need - MpmcRing::control_size()) / c.stride) {
      throw_error(errc::not_sleet, what, "mpmc ring of " + std::to_string(c.slots) +
                                             " slots does not fit in " + std::to_string(limit));
    }
    need += MpmcRing::control_size() + c.slots * c.stride;
  } else {
    throw_error(errc::not_sleet, what, "unknown topology " + std::to_string(cfg.topology));
  }
  need = round_up(need, kFalseSharing);
  if (need > limit) {
    throw_error(errc::not_sleet, what,
                "ring of " + std::to_string(need) + " bytes does not fit in " +
                    std::to_string(limit));
  }
  if (type.fixed_size > cfg.max_message_size) {
    throw_error(errc::too_large, what,
                "'" + readable_type_name(type.name) + "' needs " + std::to_string(type.fixed_size) +
                    " bytes, max_message_size is " + std::to_string(cfg.max_message_size));
  }
  return need;
}

// ---- read-only views (stats, registry) ----

namespace {

const RingCommon& common_at(const std::byte* at) noexcept {
  return *reinterpret_cast<const RingCommon*>(at + sizeof(ChannelConfig) + kRingCommonOffset);
}

}  // namespace

ChannelStats read_channel_stats(const std::byte* at) noexcept {
  ChannelStats s;
  const auto& cfg = *reinterpret_cast<const ChannelConfig*>(at);
  const std::byte* ring = at + sizeof(ChannelConfig);
  // relaxed (all loads here): statistics, a racy snapshot by design.
  if (cfg.topology == static_cast<std::uint32_t>(Topology::spsc)) {
    const auto& c = *reinterpret_cast<const SpscControl*>(ring);
    s.sent = c.sent.load(std::memory_order_relaxed);
    s.received = c.received.load(std::memory_order_relaxed);
  } else {
    const auto& c = *reinterpret_cast<const MpmcControl*>(ring);
    const std::uint64_t e = c.enqueue_pos.load(std::memory_order_relaxed);
    // Once closed, the final ticket is what was sent.
    const std::uint64_t final_ticket = c.final_ticket.load(std::memory_order_relaxed);
    const std::uint64_t tickets = (e & MpmcRing::kClosedBit) && final_ticket != 0
                                      ? final_ticket - 1  // stored plus one (mpmc_ring.hpp)
                                      : e & ~MpmcRing::kClosedBit;
    // Aborted claims took a ticket each and carry no message; a consumer
    // that skipped one took its ticket too (until it does, received may
    // read one low: a snapshot).
    // A claim recovered from a dead producer is skipped like an aborted one.
    s.abandoned = c.common.abandoned.load(std::memory_order_relaxed);
    s.lost = c.common.lost.load(std::memory_order_relaxed);
    const std::uint64_t skipped = c.common.aborted.load(std::memory_order_relaxed) + s.abandoned;
    s.sent = tickets > skipped ? tickets - skipped : 0;
    const std::uint64_t taken = c.dequeue_pos.load(std::memory_order_relaxed);
    s.received = taken > skipped ? taken - skipped : 0;
  }
  s.queued = s.sent > s.received ? s.sent - s.received : 0;
  const RingCommon& c = common_at(at);
  s.times_full = c.times_full.load(std::memory_order_relaxed);
  s.send_sleeps = c.send_sleeps.load(std::memory_order_relaxed);
  s.receive_sleeps = c.receive_sleeps.load(std::memory_order_relaxed);
  s.send_wakes = c.space_ec.wakes.load(std::memory_order_relaxed);
  s.receive_wakes = c.data_ec.wakes.load(std::memory_order_relaxed);
  return s;
}

bool read_channel_closed(const std::byte* at) noexcept {
  // relaxed: a display snapshot; nothing is read through it (refuses_sends()
  // needs acquire for that, this does not).
  return common_at(at).closed.load(std::memory_order_relaxed) != kOpen;
}

// ---- ChannelCore ----

namespace {
const ChannelConfig& config_at(const Segment& seg, std::size_t offset) noexcept {
  return *reinterpret_cast<const ChannelConfig*>(seg.object() + offset);
}
RingCommon* common_of(const Segment& seg, std::size_t offset) noexcept {
  return reinterpret_cast<RingCommon*>(seg.object() + offset + sizeof(ChannelConfig) +
                                       kRingCommonOffset);
}
}  // namespace

ChannelCore::ChannelCore(Segment seg, std::size_t offset, std::string label)
    : MessagingCore(std::move(seg), std::move(label), nullptr, 0, {}),
      offset_(offset),
      serial_(next_serial()) {
  const ChannelConfig& cfg = config_at(seg_, offset);
  common_ = common_of(seg_, offset);
  topology_ = static_cast<Topology>(cfg.topology);
  capacity_ = cfg.capacity;
  max_size_ = static_cast<std::uint32_t>(cfg.max_message_size);
  spin_ = std::chrono::nanoseconds(cfg.spin_ns);
}

ChannelCore ChannelCore::share() const {
  ChannelCore c(seg_.share(), offset_, label_);
  c.spin_ = spin_;
  return c;
}

ChannelCore ChannelCore::create(std::string_view name, const ChannelOptions& options,
                                const MessageType& type) {
  validate_name(name);
  std::string label = object_label("channel", name);
  const ChannelLayout layout = ChannelLayout::resolve(options, type, label);
  SegmentSpec spec{SegmentKind::channel, layout.bytes, type.fingerprint, type.name,
                   options.permissions};
  Segment seg = Segment::create(name, spec, [&](std::byte* object) { layout.initialize(object); });
  return ChannelCore(std::move(seg), 0, std::move(label));
}

ChannelCore ChannelCore::open(std::string_view name, const MessageType& type) {
  Segment seg = Segment::open(name, SegmentKind::channel, type.fingerprint, type.name);
  std::string label = object_label("channel", name);
  ChannelLayout::check(seg.object(), seg.object_size(), type, label);
  return ChannelCore(std::move(seg), 0, std::move(label));
}

ChannelCore ChannelCore::open_or_create(std::string_view name, const ChannelOptions& options,
                                        const MessageType& type) {
  return create_or_open([&] { return create(name, options, type); },
                        [&] { return open(name, type); });
}

bool ChannelCore::remove(std::string_view name, SegmentKind kind) { return remove_segment(name, kind); }

std::uint64_t ChannelCore::claim_role(SpscRole& role, const char* what) const {
  const std::uint64_t me = current_identity();
  // acquire: we continue the ring where the previous holder left it; pairs
  // with the release in release_role().
  std::uint64_t cur = role.owner.load(std::memory_order_acquire);
  for (;;) {
    if (cur == me) {
      // relaxed: the serial is written and read by this process only; a
      // claim of ours still writing it shows 0 (busy, correctly).
      if (role.serial.load(std::memory_order_relaxed) == serial_) return me;
      throw_error(errc::busy, label_,
                  std::string("spsc channel already has a live ") + what +
                      " (another Channel object in this process)");
    }
    // Free, or held by a dead process: take it (owner_word.hpp; acquire on
    // success, as above: a dead holder's ring stores were made visible by
    // its last release store of the index). A role never waits.
    const std::uint64_t before = cur;
    if (try_owner_word(role.owner, me, cur) != OwnerTake::held) break;
    if (cur == before) {  // unchanged: a live holder
      throw_error(errc::busy, label_,
                  std::string("spsc channel already has a live ") + what + " (pid " +
                      std::to_string(token_pid(cur)) + ")");
    }
    // The word moved under the attempt (a claim or a release raced us): look again.
  }
  role.serial.store(serial_, std::memory_order_relaxed);  // relaxed: see above
  return me;
}

void release_role(SpscRole& role, std::uint64_t token, std::uint64_t serial) noexcept {
  // Not held, or held by our parent before fork(): not ours to give back.
  if (token == 0 || token_pid(token) != current_pid()) return;
  // relaxed: as in claim_role().
  if (role.serial.load(std::memory_order_relaxed) != serial) return;
  role.serial.store(0, std::memory_order_relaxed);
  // release: the next holder's acquire in claim_role() sees our last ring stores.
  role.owner.compare_exchange_strong(token, 0, std::memory_order_release,
                                     std::memory_order_relaxed);
}

void ChannelCore::close() const noexcept {
  RingCommon& c = common();
  // relaxed: needed only by a receiver that finishes our close if we die;
  // it reaches sleepers through the release of the wake below, and pollers
  // eventually (a dead process's stores are all visible).
  c.closer.store(current_identity(), std::memory_order_relaxed);
  if (topology_ == Topology::mpmc) MpmcRing(ring()).close_tickets();  // later claims fail
  SLEET_FAULT_POINT("close.begun");
  // A CAS, so that a second closer can never move kClosed back to kClosing.
  // release: pairs with refuses_sends() (acquire); relaxed on failure: the
  // state is already past kOpen and we read nothing through it.
  std::uint32_t open = kOpen;
  c.closed.compare_exchange_strong(open, kClosing, std::memory_order_release,
                                   std::memory_order_relaxed);
  heavy_fence();             // pairs with the sender's light_fence() after in_send = 1
  c.space_ec.notify_slow();  // senders asleep on a full ring wake up and see kClosing
  c.data_ec.notify_slow();   // receivers asleep see `closer`: they wait in slices until kClosed
  SLEET_FAULT_POINT("close.closing");
  if (topology_ == Topology::spsc) {
    // A send that missed kClosing is still publishing: wait for it, unless
    // its process died (then nothing more will be published).
    auto& ctl = *static_cast<SpscControl*>(ring());
    // acquire: pairs with the release store of 0 in SpscPort::leave_send().
    for (unsigned i = 0; ctl.in_send.load(std::memory_order_acquire) != 0; ++i) {
      if ((i & 255) == 255) {
        // relaxed: we only need the holder's identity.
        if (!identity_alive(ctl.producer.owner.load(std::memory_order_relaxed))) break;
      }
      std::this_thread::yield();
    }
  }
  // release: everything published by sends that did not refuse is visible
  // to a receiver that sees kClosed; pairs with is_closed() (acquire).
  c.closed.store(kClosed, std::memory_order_release);
  // The wakes below are unconditional (notify_slow bumps the epoch whether
  // or not anyone announced itself), so no store-load fence is needed: a
  // waiter that read the epoch before the bump is woken, one that reads it
  // after sees kClosed through the epoch's acquire.
  c.data_ec.notify_slow();
  c.space_ec.notify_slow();
}

}  // namespace sleet::detail
