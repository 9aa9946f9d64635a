// sleet/detail/spsc_ring.hpp — layer 3: single-producer single-consumer ring
// of variable-length records in shared memory.
//
// The ring is a power-of-two byte array. Each record is an 8-byte header
// followed by the payload, padded to 8 bytes:
//
//   0                   32                  64
//   +-------------------+-------------------+
//   |  payload length   |  flags (1 = pad)  |
//   +-------------------+-------------------+
//   |  payload ... (padded to 8 bytes)      |
//   +---------------------------------------+
//
// A record never wraps: when it does not fit before the end of the array,
// the producer writes a padding record over the rest and starts again at 0.
// `tail` and `head` are 64-bit byte counters that only grow (they never
// wrap in practice: 2^64 bytes); `index & (bytes - 1)` is the position.
//
// Invariants
// - 0 <= tail - head <= bytes; [head, tail) holds published records.
// - The array holds at least two records of the largest size, so a claim of
//   any allowed size succeeds once the ring is empty, padding included.
// - Only the producer writes `tail` and the records; only the consumer
//   writes `head`. Each side caches the other's index and reloads it only
//   when the cached value says full (producer) or empty (consumer).
//
// Synchronization
// - producer: writes records, then `tail.store(release)` (1); pairs with the
//   consumer's `tail.load(acquire)` (2), so a record is complete before it
//   is visible. Several records may be staged and published by one store.
// - consumer: reads records, then `head.store(release)` (3); pairs with the
//   producer's `head.load(acquire)` (4), so the producer never overwrites
//   bytes that are still being read.
// - after (1) and (3) the side notifies the other's eventcount (futex.hpp).
//
// Roles: every member marked "producer only" must be called by one thread
// at a time, the same for "consumer only". Channel enforces one process per
// side through the owner words.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "sleet/detail/platform.hpp"
#include "sleet/detail/ring_common.hpp"

namespace sleet::detail {

struct SpscControl {
  std::uint64_t bytes;             // power of two
  std::uint64_t max_message_size;  // largest payload
  RingCommon common;
  // Producer line.
  alignas(kFalseSharing) std::atomic<std::uint64_t> tail{0};
  std::atomic<std::uint64_t> sent{0};        // producer-only writer
  std::atomic<std::uint64_t> producer{0};    // owner token (pid << 32 | serial)
  // Consumer line.
  alignas(kFalseSharing) std::atomic<std::uint64_t> head{0};
  std::atomic<std::uint64_t> received{0};    // consumer-only writer
  std::atomic<std::uint64_t> consumer{0};    // owner token
};
static_assert(offsetof(SpscControl, common) == kFalseSharing);
static_assert(offsetof(SpscControl, head) - offsetof(SpscControl, tail) == kFalseSharing);
static_assert(sizeof(SpscControl) % kFalseSharing == 0);

class SpscRing {
 public:
  static constexpr std::uint32_t kPad = 1;
  static constexpr std::uint64_t kHeader = 8;

  static constexpr std::uint64_t record_size(std::uint64_t payload) noexcept {
    return kHeader + round_up(payload, 8);
  }
  // Bytes of the array for `capacity` records of `max_message_size`.
  static std::uint64_t array_bytes(std::uint64_t capacity, std::uint64_t max_message_size) noexcept {
    const std::uint64_t rec = record_size(max_message_size);
    std::uint64_t want = capacity * rec;
    if (want < 2 * rec) want = 2 * rec;
    return next_pow2(want);
  }
  static constexpr std::uint64_t control_size() noexcept { return sizeof(SpscControl); }

  // Creator only, before the segment is published. `start` is the initial
  // value of head and tail (white-box tests start near a wrap).
  static void initialize(void* at, std::uint64_t bytes, std::uint64_t max_message_size,
                         std::uint64_t start = 0) noexcept {
    auto* c = new (at) SpscControl{};
    c->bytes = bytes;
    c->max_message_size = max_message_size;
    c->tail.store(start, std::memory_order_relaxed);  // relaxed: published with the segment
    c->head.store(start, std::memory_order_relaxed);
  }

  SpscRing() = default;
  explicit SpscRing(void* at) noexcept
      : c_(static_cast<SpscControl*>(at)),
        data_(static_cast<std::byte*>(at) + sizeof(SpscControl)),
        mask_(c_->bytes - 1) {}

  SpscControl& control() const noexcept { return *c_; }
  RingCommon& common() const noexcept { return c_->common; }

  // ---- producer only ----

  // Takes over the producer role: loads the shared indices.
  void attach_producer() noexcept {
    // acquire: we continue from where the previous producer published.
    tail_ = c_->tail.load(std::memory_order_acquire);
    cached_head_ = c_->head.load(std::memory_order_acquire);
    sent_ = c_->sent.load(std::memory_order_relaxed);
  }

  // Space for a payload of `size` bytes, or nullptr if the ring is full.
  // Call commit() or stage() to write it; abandoning a claim is harmless.
  [[nodiscard]] std::byte* try_claim(std::uint32_t size) noexcept {
    const std::uint64_t need = record_size(size);
    const std::uint64_t pos = tail_ & mask_;
    const std::uint64_t to_end = c_->bytes - pos;
    const std::uint64_t total = need <= to_end ? need : to_end + need;
    if (SLEET_UNLIKELY(tail_ + total - cached_head_ > c_->bytes)) {
      // acquire (4): pairs with the consumer's release (3); the bytes below
      // head are no longer read.
      cached_head_ = c_->head.load(std::memory_order_acquire);
      if (tail_ + total - cached_head_ > c_->bytes) return nullptr;
    }
    if (need > to_end) {
      write_header(pos, static_cast<std::uint32_t>(to_end - kHeader), kPad);
      tail_ += to_end;
      return data_ + kHeader;
    }
    return data_ + pos + kHeader;
  }
  // Records the claimed payload as `size` bytes (at most the claimed size)
  // without publishing it yet.
  void stage(std::uint32_t size) noexcept {
    write_header(tail_ & mask_, size, 0);
    tail_ += record_size(size);
    ++sent_;
  }
  // Publishes everything staged and wakes a sleeping consumer.
  void publish() noexcept {
    c_->sent.store(sent_, std::memory_order_relaxed);  // relaxed: stats only
    // release (1): the staged records are complete before they are visible;
    // pairs with the acquire (2) in try_peek().
    c_->tail.store(tail_, std::memory_order_release);
    c_->common.data_ec.notify();
  }
  void commit(std::uint32_t size) noexcept {
    stage(size);
    publish();
  }
  [[nodiscard]] bool try_write(const void* p, std::uint32_t size) noexcept {
    std::byte* dst = try_claim(size);
    if (dst == nullptr) return false;
    std::memcpy(dst, p, size);
    commit(size);
    return true;
  }

  // ---- consumer only ----

  struct Record {
    const std::byte* data;
    std::uint32_t size;
  };

  void attach_consumer() noexcept {
    // acquire: continue from where the previous consumer released.
    head_ = c_->head.load(std::memory_order_acquire);
    cached_tail_ = c_->tail.load(std::memory_order_acquire);
    received_ = c_->received.load(std::memory_order_relaxed);
  }

  // The oldest unread record, or false if none is published.
  [[nodiscard]] bool try_peek(Record& out) noexcept {
    for (;;) {
      if (head_ == cached_tail_) {
        // acquire (2): pairs with the producer's release (1).
        cached_tail_ = c_->tail.load(std::memory_order_acquire);
        if (head_ == cached_tail_) return false;
      }
      const std::uint64_t pos = head_ & mask_;
      std::uint32_t hdr[2];
      std::memcpy(hdr, data_ + pos, sizeof hdr);
      if (SLEET_UNLIKELY(hdr[1] & kPad)) {
        head_ += kHeader + hdr[0];
        continue;
      }
      out = Record{data_ + pos + kHeader, hdr[0]};
      return true;
    }
  }
  // Marks the peeked record read without releasing its space yet.
  void advance(const Record& r) noexcept {
    head_ += record_size(r.size);
    ++received_;
  }
  // Returns the space of everything advanced over and wakes a sleeping producer.
  void release() noexcept {
    c_->received.store(received_, std::memory_order_relaxed);  // relaxed: stats only
    // release (3): we are done reading; pairs with the acquire (4) in try_claim().
    c_->head.store(head_, std::memory_order_release);
    c_->common.space_ec.notify();
  }
  void consume(const Record& r) noexcept {
    advance(r);
    release();
  }
  [[nodiscard]] bool try_read(void* p, std::uint32_t capacity, std::uint32_t& size) noexcept {
    Record r;
    if (!try_peek(r) || r.size > capacity) return false;
    std::memcpy(p, r.data, r.size);
    size = r.size;
    consume(r);
    return true;
  }

  // ---- anyone ----

  // Messages published and not yet released (racy: a snapshot).
  std::uint64_t size_approx() const noexcept {
    // relaxed: a statistic.
    const auto s = c_->sent.load(std::memory_order_relaxed);
    const auto r = c_->received.load(std::memory_order_relaxed);
    return s > r ? s - r : 0;
  }

 private:
  void write_header(std::uint64_t pos, std::uint32_t size, std::uint32_t flags) noexcept {
    const std::uint32_t hdr[2] = {size, flags};
    std::memcpy(data_ + pos, hdr, sizeof hdr);
  }

  SpscControl* c_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  // Producer-local.
  std::uint64_t tail_ = 0;
  std::uint64_t cached_head_ = 0;
  std::uint64_t sent_ = 0;
  // Consumer-local.
  std::uint64_t head_ = 0;
  std::uint64_t cached_tail_ = 0;
  std::uint64_t received_ = 0;
};

}  // namespace sleet::detail
