// sleet/channel.hpp — Channel<T>: a named, typed message queue in shared
// memory that any process may open, send to and receive from.
//
//   auto jobs = sleet::Channel<Job>::create("jobs", {.capacity = 4096});
//   jobs.send(job);                          // blocks while full
//   if (auto j = other.receive_for(10ms)) …  // std::nullopt on timeout
//   jobs.close();                            // receivers drain, then errc::closed
//
// Topology is chosen at creation:
// - spsc: one sending process and one receiving process (they may be the
//   same). Records are variable-length and packed (spsc_ring.hpp). A second
//   live Channel object that tries to send (or receive) gets errc::busy
//   instead of corrupting the ring; the role passes on when its holder is
//   destroyed or its process dies.
// - mpmc: any number of senders and receivers; fixed slots of
//   max_message_size (mpmc_ring.hpp).
//
// Blocking calls spin for the channel's spin budget, then sleep on a futex
// (futex.hpp). A sender that finds the ring full and a receiver that finds
// it empty are the only paths that may sleep; the fast path of send is claim,
// copy, one release store and one load of the receivers' eventcount.
//
// Errors: the cold paths (create/open/remove) throw sleet::Error naming the
// channel. Full, empty and timeout come back as bool/std::optional. A
// closed channel throws errc::closed from send*, and from receive* once it
// is drained.
//
// Threads: one Channel object may be used by several threads for an mpmc
// channel. For spsc, each role (sending, receiving) must be used by one
// thread at a time.
//
// Segment layout (after the segment header):
//
//   +0    ChannelConfig   topology, capacity, max_message_size, spin budget
//   +128  SpscControl or MpmcControl, then the ring's array
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "sleet/codec.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/mpmc_ring.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/detail/spsc_ring.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"

namespace sleet {

enum class Topology : std::uint32_t { spsc = 1, mpmc = 2 };

inline constexpr std::chrono::nanoseconds kDefaultSpin = std::chrono::microseconds(50);
inline constexpr std::size_t kMaxCapacity = std::size_t{1} << 32;
inline constexpr std::size_t kMaxMessageSize = std::size_t{1} << 30;

struct ChannelOptions {
  Topology topology = Topology::mpmc;
  std::size_t capacity = 1024;       // messages of max_message_size that fit
  std::size_t max_message_size = 0;  // bytes of one encoded message; 0: sizeof(T) for
                                     // fixed-size codecs, 256 otherwise
  unsigned permissions = 0600;
  std::chrono::nanoseconds spin = kDefaultSpin;  // busy-wait budget before sleeping
};

struct ChannelStats {
  std::uint64_t sent = 0;            // messages published
  std::uint64_t received = 0;        // messages taken
  std::uint64_t queued = 0;          // sent - received, racy snapshot
  std::uint64_t times_full = 0;      // sends that found the ring full
  std::uint64_t send_sleeps = 0;     // times a sender went to sleep
  std::uint64_t receive_sleeps = 0;  // times a receiver went to sleep
  std::uint64_t send_wakes = 0;      // futex wakes issued for sleeping senders
  std::uint64_t receive_wakes = 0;   // futex wakes issued for sleeping receivers
};

namespace detail {

struct ChannelConfig {
  std::uint32_t topology;
  std::uint32_t reserved;
  std::uint64_t capacity;
  std::uint64_t max_message_size;
  std::int64_t spin_ns;
  std::byte pad[kFalseSharing - 32];
};
static_assert(sizeof(ChannelConfig) == kFalseSharing);

// What the template tells the untyped channel code about T.
struct MessageType {
  std::uint64_t fingerprint;
  std::string_view name;
  std::size_t fixed_size;  // 0 if variable
};

// The untyped part of Channel<T>: the segment, the ring and the role claims.
class ChannelBase {
 public:
  ChannelBase() = default;
  ChannelBase(ChannelBase&& other) noexcept { swap(other); }
  ChannelBase& operator=(ChannelBase&& other) noexcept {
    ChannelBase tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  ~ChannelBase();

  static ChannelBase create(std::string_view name, const ChannelOptions& options,
                            const MessageType& type);
  static ChannelBase open(std::string_view name, const MessageType& type);
  static ChannelBase open_or_create(std::string_view name, const ChannelOptions& options,
                                    const MessageType& type);
  static bool remove(std::string_view name);

  std::string_view name() const noexcept { return seg_.name(); }
  Topology topology() const noexcept { return topology_; }
  std::size_t capacity() const noexcept { return config().capacity; }
  std::size_t max_message_size() const noexcept { return max_size_; }
  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }
  ChannelStats stats() const noexcept;
  std::size_t size_approx() const noexcept;
  void close() noexcept { common().close(); }
  bool closed() const noexcept { return common().is_closed(); }

  // `write(dst, room)` encodes into dst (room bytes) and returns the size
  // of the encoding; more than `room` means it did not fit, and the claim is
  // abandoned before errc::too_large is thrown.
  template <class Write>
  Poll try_send_bytes(std::uint32_t room, Write& write) {
    if (SLEET_UNLIKELY(common().is_closed())) return Poll::closed;
    std::size_t n;
    if (topology_ == Topology::spsc) {
      if (SLEET_UNLIKELY(producer_pid_ != current_pid())) claim_producer();
      std::byte* dst = spsc_.try_claim(room);
      if (dst == nullptr) return Poll::empty;
      n = write(dst, room);
      if (SLEET_LIKELY(n <= room)) {
        spsc_.commit(static_cast<std::uint32_t>(n));
        return Poll::ready;
      }
      // An uncommitted spsc claim is simply never published.
    } else {
      const auto cl = mpmc_.try_claim();
      if (!cl) return Poll::empty;
      n = write(cl.data(), room);
      if (SLEET_LIKELY(n <= room)) {
        mpmc_.commit(cl, static_cast<std::uint32_t>(n));
        return Poll::ready;
      }
      mpmc_.commit(cl, MpmcRing::kSkip);  // consumers wait for every ticket
    }
    throw_too_large(n);
  }

  // `read(data, size)` decodes a record. The record is consumed even if
  // `read` throws, so a bad record never blocks the ones behind it.
  template <class Read>
  Poll try_receive_bytes(Read& read) {
    if (topology_ == Topology::spsc) {
      if (SLEET_UNLIKELY(consumer_pid_ != current_pid())) claim_consumer();
      SpscRing::Record r;
      if (!spsc_.try_peek(r)) {
        if (!common().is_closed()) return Poll::empty;
        if (!spsc_.try_peek(r)) return Poll::closed;  // else: sent before close
      }
      struct Consume {
        SpscRing& ring;
        const SpscRing::Record& rec;
        ~Consume() { ring.consume(rec); }
      } guard{spsc_, r};
      read(r.data, r.size);
    } else {
      auto t = mpmc_.try_take();
      if (!t) {
        if (!common().is_closed()) return Poll::empty;
        t = mpmc_.try_take();  // sent before close
        if (!t) return Poll::closed;
      }
      struct Consume {
        MpmcRing& ring;
        const MpmcRing::Take& take;
        ~Consume() { ring.consume(take); }
      } guard{mpmc_, t};
      read(t.data(), t.size());
    }
    return Poll::ready;
  }

  // Blocking forms: Poll::empty means the deadline passed.
  template <class Write>
  Poll send_bytes_until(std::uint32_t room, Write& write, Deadline deadline) {
    Poll p = try_send_bytes(room, write);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    common().times_full.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats only
    return block_on(
        common().space_ec, [&] { return try_send_bytes(room, write); }, spin_, deadline,
        common().send_sleeps);
  }
  template <class Read>
  Poll receive_bytes_until(Read& read, Deadline deadline) {
    Poll p = try_receive_bytes(read);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    return block_on(
        common().data_ec, [&] { return try_receive_bytes(read); }, spin_, deadline,
        common().receive_sleeps);
  }

  [[noreturn]] void throw_closed() const;
  [[noreturn]] void throw_too_large(std::size_t size) const;

  // White-box access for tests and benchmarks.
  SpscRing& spsc_ring() noexcept { return spsc_; }
  MpmcRing& mpmc_ring() noexcept { return mpmc_; }
  const Segment& segment() const noexcept { return seg_; }

 private:
  explicit ChannelBase(Segment seg);
  void swap(ChannelBase& other) noexcept;
  const ChannelConfig& config() const noexcept {
    return *reinterpret_cast<const ChannelConfig*>(seg_.object());
  }
  RingCommon& common() const noexcept {
    return topology_ == Topology::spsc ? spsc_.common() : mpmc_.common();
  }
  void claim_producer();
  void claim_consumer();
  void claim(std::atomic<std::uint64_t>& owner, const char* role, int& held_pid);
  void release_claims() noexcept;

  Segment seg_;
  Topology topology_ = Topology::mpmc;
  std::uint32_t max_size_ = 0;
  std::chrono::nanoseconds spin_{0};
  SpscRing spsc_;
  MpmcRing mpmc_;
  std::uint64_t serial_ = 0;  // this object's id within its process
  int producer_pid_ = 0;      // pid under which this object holds the spsc producer role
  int consumer_pid_ = 0;      // same, consumer role
};

}  // namespace detail

template <class T>
class Channel {
  static_assert(HasCodec<T>, "sleet::Channel<T>: no sleet::Codec<T> for this type");
  using C = Codec<T>;

 public:
  using value_type = T;

  Channel() = default;

  static Channel create(std::string_view name, const ChannelOptions& options = {}) {
    return Channel(detail::ChannelBase::create(name, options, type()));
  }
  static Channel open(std::string_view name) {
    return Channel(detail::ChannelBase::open(name, type()));
  }
  static Channel open_or_create(std::string_view name, const ChannelOptions& options = {}) {
    return Channel(detail::ChannelBase::open_or_create(name, options, type()));
  }
  static bool remove(std::string_view name) { return detail::ChannelBase::remove(name); }

  // Blocks while the ring is full. Throws errc::closed.
  void send(const T& value) {
    auto w = writer(value);
    if (base_.send_bytes_until(room(), w, detail::kForever) == detail::Poll::closed) {
      base_.throw_closed();
    }
  }
  // False if the ring is full. Throws errc::closed.
  [[nodiscard]] bool try_send(const T& value) {
    auto w = writer(value);
    const detail::Poll p = base_.try_send_bytes(room(), w);
    if (SLEET_UNLIKELY(p == detail::Poll::closed)) base_.throw_closed();
    return p == detail::Poll::ready;
  }
  // False if the ring stayed full for `timeout`. Throws errc::closed.
  [[nodiscard]] bool send_for(const T& value, std::chrono::nanoseconds timeout) {
    auto w = writer(value);
    const detail::Poll p = base_.send_bytes_until(room(), w, detail::deadline_after(timeout));
    if (p == detail::Poll::closed) base_.throw_closed();
    return p == detail::Poll::ready;
  }

  // Blocks while the ring is empty. Throws errc::closed once closed and drained.
  T receive() {
    T out{};
    auto r = reader(out);
    if (base_.receive_bytes_until(r, detail::kForever) == detail::Poll::closed) {
      base_.throw_closed();
    }
    return out;
  }
  [[nodiscard]] std::optional<T> try_receive() {
    T out{};
    auto r = reader(out);
    const detail::Poll p = base_.try_receive_bytes(r);
    if (SLEET_UNLIKELY(p == detail::Poll::closed)) base_.throw_closed();
    if (p == detail::Poll::empty) return std::nullopt;
    return out;
  }
  [[nodiscard]] std::optional<T> receive_for(std::chrono::nanoseconds timeout) {
    T out{};
    auto r = reader(out);
    const detail::Poll p = base_.receive_bytes_until(r, detail::deadline_after(timeout));
    if (p == detail::Poll::closed) base_.throw_closed();
    if (p == detail::Poll::empty) return std::nullopt;
    return out;
  }

  // Marks the channel closed for every process and wakes all sleepers.
  void close() noexcept { base_.close(); }
  bool closed() const noexcept { return base_.closed(); }

  std::string_view name() const noexcept { return base_.name(); }
  Topology topology() const noexcept { return base_.topology(); }
  std::size_t capacity() const noexcept { return base_.capacity(); }
  std::size_t max_message_size() const noexcept { return base_.max_message_size(); }
  std::size_t size_approx() const noexcept { return base_.size_approx(); }
  ChannelStats stats() const noexcept { return base_.stats(); }
  std::chrono::nanoseconds spin() const noexcept { return base_.spin(); }
  // Busy-wait budget of this object's blocking calls (the segment keeps the default).
  void set_spin(std::chrono::nanoseconds spin) noexcept { base_.set_spin(spin); }

  detail::ChannelBase& base() noexcept { return base_; }  // white-box tests, benchmarks

 private:
  explicit Channel(detail::ChannelBase base) : base_(std::move(base)) {}

  static detail::MessageType type() noexcept {
    return {detail::fingerprint<T>(C::name), detail::type_name<T>(), C::fixed_size};
  }
  std::uint32_t room() const noexcept {
    return C::fixed_size ? static_cast<std::uint32_t>(C::fixed_size)
                         : static_cast<std::uint32_t>(base_.max_message_size());
  }
  auto writer(const T& value) {
    return [&value](std::byte* dst, std::size_t space) { return C::encode(value, dst, space); };
  }
  static auto reader(T& out) {
    return [&out](const std::byte* src, std::size_t size) { C::decode(src, size, out); };
  }

  detail::ChannelBase base_;
};

}  // namespace sleet
