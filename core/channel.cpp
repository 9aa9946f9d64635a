// The untyped part of Channel<T>: creating, opening and validating channel
// segments, the spsc role claims and the statistics.
#include <atomic>
#include <string>

#include "sleet/channel.hpp"
#include "system.hpp"

namespace sleet::detail {

namespace {

constexpr std::size_t kDefaultVariableMessageSize = 256;

std::string describe(std::string_view name) {
  std::string s = "channel '";
  s.append(name).append("'");
  return s;
}

std::uint64_t next_serial() noexcept {
  static std::atomic<std::uint64_t> serial{0};
  // relaxed: only uniqueness within this process matters.
  return serial.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::uint64_t make_token(int pid, std::uint64_t serial) noexcept {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) << 32) |
         (serial & 0xFFFFFFFFu);
}
int token_pid(std::uint64_t token) noexcept { return static_cast<int>(token >> 32); }

void* ring_at(const Segment& seg) noexcept { return seg.object() + sizeof(ChannelConfig); }

}  // namespace

ChannelBase::ChannelBase(Segment seg) : seg_(std::move(seg)), serial_(next_serial()) {
  const ChannelConfig& cfg = config();
  topology_ = static_cast<Topology>(cfg.topology);
  max_size_ = static_cast<std::uint32_t>(cfg.max_message_size);
  spin_ = std::chrono::nanoseconds(cfg.spin_ns);
  if (topology_ == Topology::spsc) {
    spsc_ = SpscRing(ring_at(seg_));
  } else {
    mpmc_ = MpmcRing(ring_at(seg_));
  }
}

ChannelBase::~ChannelBase() { release_claims(); }

void ChannelBase::swap(ChannelBase& other) noexcept {
  std::swap(seg_, other.seg_);
  std::swap(topology_, other.topology_);
  std::swap(max_size_, other.max_size_);
  std::swap(spin_, other.spin_);
  std::swap(spsc_, other.spsc_);
  std::swap(mpmc_, other.mpmc_);
  std::swap(serial_, other.serial_);
  std::swap(producer_pid_, other.producer_pid_);
  std::swap(consumer_pid_, other.consumer_pid_);
}

ChannelBase ChannelBase::create(std::string_view name, const ChannelOptions& options,
                                const MessageType& type) {
  validate_name(name);
  const std::string what = describe(name);
  if (options.topology != Topology::spsc && options.topology != Topology::mpmc) {
    throw_error(errc::invalid_argument, what, "unknown topology");
  }
  if (options.capacity == 0 || options.capacity > kMaxCapacity) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(options.capacity) + " is out of range [1, " +
                    std::to_string(kMaxCapacity) + "]");
  }
  std::size_t max_size = options.max_message_size;
  if (max_size == 0) max_size = type.fixed_size ? type.fixed_size : kDefaultVariableMessageSize;
  if (max_size > kMaxMessageSize) {
    throw_error(errc::invalid_argument, what,
                "max_message_size " + std::to_string(max_size) + " is above the limit of " +
                    std::to_string(kMaxMessageSize));
  }
  if (type.fixed_size > max_size) {
    throw_error(errc::too_large, what,
                "'" + std::string(type.name) + "' needs " + std::to_string(type.fixed_size) +
                    " bytes, max_message_size is " + std::to_string(max_size));
  }
  if (options.spin.count() < 0) throw_error(errc::invalid_argument, what, "negative spin budget");

  std::uint64_t ring_bytes;
  std::uint64_t slots = 0;
  if (options.topology == Topology::spsc) {
    ring_bytes = SpscRing::control_size() + SpscRing::array_bytes(options.capacity, max_size);
  } else {
    slots = MpmcRing::slot_count(options.capacity);
    ring_bytes = MpmcRing::control_size() + slots * MpmcRing::stride_for(max_size);
  }
  const std::uint64_t object_size = sizeof(ChannelConfig) + ring_bytes;
  if (object_size > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(options.capacity) + " of " +
                    std::to_string(max_size) + "-byte messages needs " +
                    std::to_string(object_size) + " bytes, more than the limit of " +
                    std::to_string(kMaxSegmentSize));
  }
  SegmentSpec spec{SegmentKind::channel, object_size, type.fingerprint, type.name,
                   options.permissions};
  Segment seg = Segment::create(name, spec, [&](std::byte* object) {
    auto* cfg = new (object) ChannelConfig{};
    cfg->topology = static_cast<std::uint32_t>(options.topology);
    cfg->capacity = options.capacity;
    cfg->max_message_size = max_size;
    cfg->spin_ns = options.spin.count();
    void* ring = object + sizeof(ChannelConfig);
    if (options.topology == Topology::spsc) {
      SpscRing::initialize(ring, SpscRing::array_bytes(options.capacity, max_size), max_size);
    } else {
      MpmcRing::initialize(ring, slots, max_size);
    }
  });
  return ChannelBase(std::move(seg));
}

ChannelBase ChannelBase::open(std::string_view name, const MessageType& type) {
  Segment seg = Segment::open(name, SegmentKind::channel, type.fingerprint, type.name);
  const std::string what = describe(name);
  // The header was validated; check that the channel's own layout fits too.
  const auto& cfg = *reinterpret_cast<const ChannelConfig*>(seg.object());
  const auto topology = static_cast<Topology>(cfg.topology);
  std::uint64_t need = sizeof(ChannelConfig);
  if (topology == Topology::spsc) {
    const auto& c = *reinterpret_cast<const SpscControl*>(ring_at(seg));
    const bool pow2 = c.bytes != 0 && (c.bytes & (c.bytes - 1)) == 0;
    if (!pow2) throw_error(errc::not_sleet, what, "damaged spsc ring (size not a power of two)");
    need += SpscRing::control_size() + c.bytes;
  } else if (topology == Topology::mpmc) {
    const auto& c = *reinterpret_cast<const MpmcControl*>(ring_at(seg));
    const bool pow2 = c.slots != 0 && (c.slots & (c.slots - 1)) == 0;
    if (!pow2 || c.stride != MpmcRing::stride_for(c.max_message_size)) {
      throw_error(errc::not_sleet, what, "damaged mpmc ring (slot count or stride)");
    }
    need += MpmcRing::control_size() + c.slots * c.stride;
  } else {
    throw_error(errc::not_sleet, what, "unknown topology " + std::to_string(cfg.topology));
  }
  if (need > seg.object_size()) {
    throw_error(errc::not_sleet, what, "ring of " + std::to_string(need) +
                                           " bytes does not fit in " +
                                           std::to_string(seg.object_size()));
  }
  if (type.fixed_size > cfg.max_message_size) {
    throw_error(errc::too_large, what,
                "'" + std::string(type.name) + "' needs " + std::to_string(type.fixed_size) +
                    " bytes, max_message_size is " + std::to_string(cfg.max_message_size));
  }
  return ChannelBase(std::move(seg));
}

ChannelBase ChannelBase::open_or_create(std::string_view name, const ChannelOptions& options,
                                        const MessageType& type) {
  // Another process may create or remove the name between our attempts.
  for (int attempt = 0;; ++attempt) {
    try {
      return create(name, options, type);
    } catch (const Error& e) {
      if (e.code() != errc::already_exists) throw;
    }
    try {
      return open(name, type);
    } catch (const Error& e) {
      if (e.code() != errc::not_found || attempt >= 100) throw;
    }
  }
}

bool ChannelBase::remove(std::string_view name) { return Segment::remove(name); }

void ChannelBase::claim(std::atomic<std::uint64_t>& owner, const char* role, int& held_pid) {
  const int me = current_pid();
  const std::uint64_t token = make_token(me, serial_);
  // acquire: we continue the ring where the previous holder left it; pairs
  // with the release in release_claims() (or the holder's ring stores).
  std::uint64_t cur = owner.load(std::memory_order_acquire);
  for (;;) {
    if (cur == token) break;
    if (cur != 0 && pid_alive(token_pid(cur))) {
      const int holder = token_pid(cur);
      throw_error(errc::busy, describe(name()),
                  std::string("spsc channel already has a live ") + role + " (" +
                      (holder == me ? std::string("another Channel object in this process")
                                    : "pid " + std::to_string(holder)) +
                      ")");
    }
    // acq_rel: acquire as above; release orders nothing of ours but is
    // harmless, and the failure order reloads `cur` for the next round.
    if (owner.compare_exchange_weak(cur, token, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      break;
    }
  }
  held_pid = me;
}

void ChannelBase::claim_producer() {
  claim(spsc_.control().producer, "sender", producer_pid_);
  spsc_.attach_producer();
}

void ChannelBase::claim_consumer() {
  claim(spsc_.control().consumer, "receiver", consumer_pid_);
  spsc_.attach_consumer();
}

void ChannelBase::release_claims() noexcept {
  if (!seg_.valid() || topology_ != Topology::spsc) return;
  const int me = current_pid();
  auto drop = [&](std::atomic<std::uint64_t>& owner, int held_pid) {
    if (held_pid != me) return;  // not held, or held by our parent before fork()
    std::uint64_t token = make_token(me, serial_);
    // release: the next holder's acquire sees our last ring stores.
    owner.compare_exchange_strong(token, 0, std::memory_order_release, std::memory_order_relaxed);
  };
  drop(spsc_.control().producer, producer_pid_);
  drop(spsc_.control().consumer, consumer_pid_);
}

ChannelStats ChannelBase::stats() const noexcept {
  ChannelStats s;
  const RingCommon& c = common();
  if (topology_ == Topology::spsc) {
    // relaxed (all loads here): statistics, a racy snapshot by design.
    s.sent = spsc_.control().sent.load(std::memory_order_relaxed);
    s.received = spsc_.control().received.load(std::memory_order_relaxed);
  } else {
    s.sent = mpmc_.sent_approx();
    s.received = mpmc_.received_approx();
  }
  s.queued = s.sent > s.received ? s.sent - s.received : 0;
  s.times_full = c.times_full.load(std::memory_order_relaxed);
  s.send_sleeps = c.send_sleeps.load(std::memory_order_relaxed);
  s.receive_sleeps = c.receive_sleeps.load(std::memory_order_relaxed);
  s.send_wakes = c.space_ec.wakes.load(std::memory_order_relaxed);
  s.receive_wakes = c.data_ec.wakes.load(std::memory_order_relaxed);
  return s;
}

std::size_t ChannelBase::size_approx() const noexcept {
  return topology_ == Topology::spsc ? spsc_.size_approx() : mpmc_.size_approx();
}

void ChannelBase::throw_closed() const { throw_error(errc::closed, describe(name()), "closed"); }

void ChannelBase::throw_too_large(std::size_t size) const {
  throw_error(errc::too_large, describe(name()),
              "message of " + std::to_string(size) + " bytes exceeds max_message_size " +
                  std::to_string(max_size_));
}

}  // namespace sleet::detail
