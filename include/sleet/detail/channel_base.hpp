// sleet/detail/channel_base.hpp — the untyped half of Channel<T> and Pipe<T>:
// one ring (spsc or mpmc) in a segment, its options, the spsc role claims,
// and the byte-level send/receive loops the typed front ends call.
//
// Layout of one channel inside a segment, at `offset` from the object start
// (0 for a Channel; a Pipe holds two, one per direction):
//
//   +0    ChannelConfig   topology, capacity, max_message_size, spin budget
//   +128  SpscControl or MpmcControl, then the ring's array
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/mpmc_ring.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/detail/spsc_ring.hpp"
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

// Options resolved and validated: everything needed to lay a channel out.
struct ChannelLayout {
  Topology topology;
  std::uint64_t capacity;
  std::uint64_t max_message_size;
  std::int64_t spin_ns;
  std::uint64_t ring_units;  // spsc: bytes of the array; mpmc: slots
  std::uint64_t bytes;       // config + control + array, a multiple of 128

  // Throws errc::invalid_argument / too_large naming `what`.
  static ChannelLayout resolve(const ChannelOptions& options, const MessageType& type,
                               std::string_view what);
  // Creator only, before the segment is published.
  void initialize(std::byte* at) const;
  // Validates a channel found at `at` with `limit` bytes available; returns
  // its size in bytes. Throws errc::not_sleet / too_large naming `what`.
  static std::uint64_t check(const std::byte* at, std::uint64_t limit, const MessageType& type,
                             std::string_view what);
};

// Reads the counters of the channel laid out at `at` (its ChannelConfig),
// which check() has accepted: a racy snapshot that needs only read access,
// so the registry can use it on a read-only mapping.
ChannelStats read_channel_stats(const std::byte* at) noexcept;
// Whether close() has begun on the channel at `at` (same conditions).
bool read_channel_closed(const std::byte* at) noexcept;

class ChannelBase {
 public:
  ChannelBase() = default;
  ChannelBase(Segment seg, std::size_t offset, std::string label);
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

  // A second view of the same channel for another role holder in this
  // process (it claims spsc roles on its own).
  ChannelBase share() const;

  bool valid() const noexcept { return seg_.valid(); }
  std::string_view name() const noexcept { return seg_.name(); }
  // "channel 'jobs'" or "pipe 'p' (a->b)": how errors name this object.
  const std::string& label() const noexcept { return label_; }
  Topology topology() const noexcept { return topology_; }
  std::size_t capacity() const noexcept { return config().capacity; }
  std::size_t max_message_size() const noexcept { return max_size_; }
  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }
  ChannelStats stats() const noexcept;
  std::size_t size_approx() const noexcept;
  // Two-phase close (ring_common.hpp): refuse new sends, wait until no
  // send is mid-publish, then let receivers report closed once drained.
  void close() noexcept;
  bool closed() const noexcept { return common().refuses_sends(); }
  // Wakes every receiver sleeping on this channel (they re-check and, if
  // nothing changed, sleep again); used to stop a dispatcher thread.
  void wake_receivers() noexcept { common().data_ec.notify_slow(); }

  // `write(dst, room)` encodes into dst (room bytes) and returns the size
  // of the encoding; more than `room` means it did not fit, and the claim is
  // abandoned before errc::too_large is thrown. If `write` throws, the claim
  // is abandoned too and the exception passes on.
  template <class Write>
  Poll try_send_bytes(std::uint32_t room, Write& write) {
    std::size_t n;
    if (topology_ == Topology::spsc) {
      if (SLEET_UNLIKELY(producer_pid_ != current_pid())) {
        if (common().refuses_sends()) return Poll::closed;  // before asking for the role
        claim_producer();
      }
      // in_send brackets the closed check and the publish, so close() can
      // wait for a send that passed the check (ring_common.hpp).
      struct InSend {
        std::atomic<std::uint32_t>& flag;
        explicit InSend(std::atomic<std::uint32_t>& f) : flag(f) {
          flag.store(1, std::memory_order_relaxed);  // relaxed: ordered by the fence below
          light_fence();  // pairs with heavy_fence() in close(): Dekker on in_send/closed
        }
        // release: the publish is visible to close() once it sees 0.
        ~InSend() { flag.store(0, std::memory_order_release); }
      } in_send{spsc_.control().in_send};
      if (SLEET_UNLIKELY(common().refuses_sends())) return Poll::closed;
      std::byte* dst = spsc_.try_claim(room);
      if (dst == nullptr) return Poll::empty;
      n = write(dst, room);  // an spsc claim that is never committed is never published
      if (SLEET_LIKELY(n <= room)) {
        spsc_.commit(static_cast<std::uint32_t>(n));
        return Poll::ready;
      }
    } else {
      const auto cl = mpmc_.try_claim();
      if (!cl) return cl.closed ? Poll::closed : Poll::empty;
      struct Abandon {  // consumers wait for every ticket: an mpmc claim must be committed
        MpmcRing& ring;
        const MpmcRing::Claim& claim;
        bool armed = true;
        ~Abandon() {
          if (armed) ring.commit(claim, MpmcRing::kSkip);
        }
      } abandon{mpmc_, cl};
      n = write(cl.data(), room);
      if (SLEET_LIKELY(n <= room)) {
        abandon.armed = false;
        mpmc_.commit(cl, static_cast<std::uint32_t>(n));
        return Poll::ready;
      }
    }
    throw_too_large(n);
  }

  // `read(data, size)` decodes a record. The record is consumed even if
  // `read` throws, so a bad record never blocks the ones behind it; a
  // decode failure is rethrown naming this channel.
  template <class Read>
  Poll try_receive_bytes(Read& read) {
    if (topology_ == Topology::spsc) {
      if (SLEET_UNLIKELY(consumer_pid_ != current_pid())) claim_consumer();
      SpscRing::Record r;
      if (!spsc_.try_peek(r)) {
        if (SLEET_LIKELY(!common().is_closed())) return Poll::empty;
        if (!spsc_.try_peek(r)) return Poll::closed;  // else: sent before close
      }
      struct Consume {
        SpscRing& ring;
        const SpscRing::Record& rec;
        ~Consume() { ring.consume(rec); }
      } guard{spsc_, r};
      decode(read, r.data, r.size);
    } else {
      auto t = mpmc_.try_take();
      if (!t) {
        if (SLEET_LIKELY(!common().is_closed())) return Poll::empty;
        t = mpmc_.try_take();  // sent before close
        if (!t) return mpmc_.drained() ? Poll::closed : Poll::empty;
      }
      struct Consume {
        MpmcRing& ring;
        const MpmcRing::Take& take;
        ~Consume() { ring.consume(take); }
      } guard{mpmc_, t};
      decode(read, t.data(), t.size());
    }
    return Poll::ready;
  }

  // A send found the ring full (stats).
  void count_full() noexcept {
    common().times_full.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats only
  }

  // Blocking forms: Poll::empty means the deadline passed.
  template <class Write>
  Poll send_bytes_until(std::uint32_t room, Write& write, Deadline deadline) {
    Poll p = try_send_bytes(room, write);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    count_full();
    return block_on(
        common().space_ec, [&] { return try_send_bytes(room, write); }, spin_, deadline,
        common().send_sleeps);
  }
  // `stop()` is checked before every attempt; true ends the wait with
  // Poll::closed (a dispatcher being shut down).
  template <class Read, class Stop>
  Poll receive_bytes_until(Read& read, Deadline deadline, Stop&& stop) {
    Poll p = try_receive_bytes(read);
    if (SLEET_LIKELY(p != Poll::empty)) return p;
    return block_on(
        common().data_ec,
        [&] { return stop() ? Poll::closed : try_receive_bytes(read); }, spin_, deadline,
        common().receive_sleeps);
  }
  template <class Read>
  Poll receive_bytes_until(Read& read, Deadline deadline) {
    return receive_bytes_until(read, deadline, [] { return false; });
  }

  // spsc: takes the receiving role now (errc::busy if a live object has it).
  void take_receiver_role() {
    if (topology_ == Topology::spsc && consumer_pid_ != current_pid()) claim_consumer();
  }

  [[noreturn]] void throw_closed() const;
  [[noreturn]] void throw_too_large(std::size_t size) const;
  [[noreturn]] void throw_wrong_mode(std::string_view detail) const;

  // White-box access for tests and benchmarks.
  SpscRing& spsc_ring() noexcept { return spsc_; }
  MpmcRing& mpmc_ring() noexcept { return mpmc_; }
  const Segment& segment() const noexcept { return seg_; }

 private:
  void swap(ChannelBase& other) noexcept;
  const ChannelConfig& config() const noexcept {
    return *reinterpret_cast<const ChannelConfig*>(seg_.object() + offset_);
  }
  RingCommon& common() const noexcept {
    return topology_ == Topology::spsc ? spsc_.common() : mpmc_.common();
  }
  template <class Read>
  void decode(Read& read, const std::byte* data, std::size_t size) {
    try {
      read(data, size);
    } catch (const Error& e) {
      if (e.code() == errc::decode_failed) rethrow_decode_failed(e);
      throw;
    }
  }
  [[noreturn]] void rethrow_decode_failed(const Error& e) const;
  void claim_producer();
  void claim_consumer();
  void claim(std::atomic<std::uint64_t>& owner, const char* role, int& held_pid);
  void release_claims() noexcept;

  Segment seg_;
  std::size_t offset_ = 0;
  std::string label_;
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
}  // namespace sleet
