// sleet/detail/spsc_ring.hpp — layer 3: single-producer single-consumer ring
// of variable-length records in shared memory.
//
// The ring is a power-of-two byte array. Each record is an 8-byte header
// followed by the payload, padded to 8 bytes:
//
//   0                   32                  64
//   +-------------------+-------------------+
//   |  payload length   |  flags: 1 data,   |   one 64-bit atomic word;
//   |                   |         2 padding |   0 = nothing published here
//   +-------------------+-------------------+
//   |  payload ... (padded to 8 bytes)      |
//   +---------------------------------------+
//
// A record never wraps: when it does not fit before the end of the array,
// the producer writes a padding record over the rest and starts again at 0.
// `head` and the producer's `tail` are 64-bit byte counters that only grow;
// `index & (bytes - 1)` is the position.
//
// Publishing by header. The header is written last, so a non-zero header is
// the record's publication: the consumer polls the header word at `head`,
// never the producer's index, and a small record costs it one cache line.
// Before publishing a record the producer zeroes the header word just past
// it (the next record's header), so the consumer can never take a previous
// lap's bytes there for a header. A claim therefore needs 8 bytes beyond
// its record.
//
// Vocabulary (the same in every ring, mpmc_ring.hpp):
//   producer  claim(n) -> space for n bytes; commit(n) finishes the claimed
//             record; abort() gives the claim up; publish() ends a batch:
//             every record committed since the last publish() is visible to
//             the consumer no later than publish(), which also wakes it.
//   consumer  peek() -> the oldest record; consume(r) marks it read;
//             release() ends a batch: the space of every consumed record is
//             returned to the producer, which is woken if it sleeps.
// A batch of any length is one publication: commit() writes every header but
// the batch's first, which publish() stores with release (the consumer
// cannot pass a zero header), and one release of `head` returns its space.
//
// Bounds: the consumer trusts no header. A data record longer than
// max_message_size or running past the array, or a padding record that does
// not end exactly at the array's end, is reported as damaged (Record::size
// == kDamaged) instead of being read.
//
// Invariants
// - 0 <= tail - head <= bytes - 8; [head, tail) holds published records and
//   the word at tail is zero (or a committed, unpublished header).
// - The array holds at least two records of the largest size, so a claim of
//   any allowed size succeeds once the ring is empty, padding included.
// - Only the producer writes the array and `tail`; only the consumer writes
//   `head`. The producer caches `head` and reloads it only when its cached
//   value says full.
//
// Synchronization
// - producer: writes a batch, then header.store(release) (1); pairs with the
//   consumer's header.load(acquire) (2), so a record is complete before it
//   is visible.
// - consumer: reads records, then head.store(release) (3); pairs with the
//   producer's head.load(acquire) (4), so the producer never overwrites (or
//   zeroes) bytes that are still being read.
// - after (1) and (3) the side notifies the other's eventcount (futex.hpp).
// - `tail`, `sent`, `received` are relaxed: statistics, stored once per
//   batch, and the starting point for a producer that takes over from a dead
//   one (it walks forward over published headers from there).
//
// Roles: every member marked "producer only" must be called by one thread
// at a time, the same for "consumer only". Channel enforces one process per
// side through the owner words.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "sleet/detail/fault.hpp"
#include "sleet/detail/platform.hpp"
#include "sleet/detail/ring_common.hpp"

namespace sleet::detail {

// One side of an spsc channel: which process holds it (its identity,
// process.hpp: pid + start time, so a recycled pid is not mistaken for it;
// 0 free) and which of that process's Channel objects (a serial unique
// within the process, written after the owner CAS and read only by the
// owner's own process; 0 while being written or free). `owner` is an
// owner word (owner_word.hpp): a dead holder's role is taken over with
// try_owner_word(); a live one is errc::busy, never waited for.
struct SpscRole {
  std::atomic<std::uint64_t> owner{0};
  std::atomic<std::uint64_t> serial{0};
};

struct SpscControl {
  std::uint64_t bytes;             // power of two
  std::uint64_t max_message_size;  // largest payload
  RingCommon common;
  // Producer line.
  alignas(kFalseSharing) std::atomic<std::uint64_t> tail{0};
  std::atomic<std::uint64_t> sent{0};        // producer-only writer
  SpscRole producer;
  std::atomic<std::uint32_t> in_send{0};     // 1 while a send is past its closed check
  // Consumer line.
  alignas(kFalseSharing) std::atomic<std::uint64_t> head{0};
  std::atomic<std::uint64_t> received{0};    // consumer-only writer
  SpscRole consumer;
};
static_assert(offsetof(SpscControl, common) == kFalseSharing);
static_assert(offsetof(SpscControl, head) - offsetof(SpscControl, tail) == kFalseSharing);
static_assert(sizeof(SpscControl) % kFalseSharing == 0);

class SpscRing {
 public:
  static constexpr std::uint32_t kData = 1;
  static constexpr std::uint32_t kPad = 2;
  static constexpr std::uint64_t kHeader = 8;
  // Record::size of a header that fails its bounds (see the essay).
  static constexpr std::uint32_t kDamaged = 0xFFFFFFFFu;

  static constexpr std::uint64_t record_size(std::uint64_t payload) noexcept {
    return kHeader + round_up(payload, 8);
  }
  // Bytes of the array for `capacity` records of `max_message_size`.
  static std::uint64_t array_bytes(std::uint64_t capacity, std::uint64_t max_message_size) noexcept {
    const std::uint64_t rec = record_size(max_message_size);
    std::uint64_t want = capacity * rec + kHeader;
    if (want < 2 * rec) want = 2 * rec;
    return next_pow2(want);
  }
  static constexpr std::uint64_t control_size() noexcept { return sizeof(SpscControl); }

  // Creator only, before the segment is published, on a zeroed array.
  // `start` is the initial value of head and tail (white-box tests start
  // near a wrap).
  static void initialize(void* at, std::uint64_t bytes, std::uint64_t max_message_size,
                         std::uint64_t start = 0) noexcept {
    auto* c = new (at) SpscControl{};
    c->bytes = bytes;
    c->max_message_size = max_message_size;
    // relaxed (both): published with the segment's `ready` (release).
    c->tail.store(start, std::memory_order_relaxed);
    c->head.store(start, std::memory_order_relaxed);
  }

  SpscRing() = default;
  explicit SpscRing(void* at) noexcept
      : c_(static_cast<SpscControl*>(at)),
        data_(static_cast<std::byte*>(at) + sizeof(SpscControl)),
        bytes_(c_->bytes),
        // Clearing the low bits keeps every header access 8-byte aligned
        // even when a damaged segment holds an unaligned head or tail (the
        // ring's own steps are multiples of 8): free, the AND is there anyway.
        mask_((c_->bytes - 1) & ~(kHeader - 1)),
        max_size_(c_->max_message_size) {}

  SpscControl& control() const noexcept { return *c_; }
  RingCommon& common() const noexcept { return c_->common; }

  // ---- producer only ----

  // Takes over the producer role: continues after the last published record.
  void attach_producer() noexcept {
    // acquire (4): as in has_room().
    cached_head_ = c_->head.load(std::memory_order_acquire);
    // relaxed: a hint; the walk below reads published headers with acquire.
    std::uint64_t pos = c_->tail.load(std::memory_order_relaxed);
    if (pos - cached_head_ > bytes_) pos = cached_head_;  // the hint is behind head
    // A producer that died after publishing but before storing `tail` left
    // published records past the hint: walk over them (bounded by the array).
    for (std::uint64_t walked = 0; walked < bytes_;) {
      const std::uint64_t hdr = header(pos & mask_).load(std::memory_order_acquire);  // (2)
      if (hdr == 0) break;
      const std::uint64_t step = kHeader + round_up(static_cast<std::uint32_t>(hdr), 8);
      if (step > bytes_ - walked) break;  // a damaged header: stop at the last good one
      pos += step;
      walked += step;
    }
    tail_ = pos;
    pending_ = false;
    sent_ = c_->sent.load(std::memory_order_relaxed);  // relaxed: statistics
  }

  // Space for a payload of exactly `size` bytes (at most max_message_size),
  // or nullptr if the ring is full. Follow with commit() or abort().
  [[nodiscard]] SLEET_INLINE std::byte* claim(std::uint32_t size) noexcept {
    const std::uint64_t need = record_size(size);
    std::uint64_t pos = tail_ & mask_;
    const std::uint64_t to_end = bytes_ - pos;
    const bool wrap = need > to_end;
    const std::uint64_t total = (wrap ? to_end + need : need) + kHeader;
    if (SLEET_UNLIKELY(!has_room(total))) return nullptr;
    if (wrap) {
      // The consumer reaches 0 through the pad: it must find 0 there until
      // the record at 0 is committed, even if this claim is aborted.
      // relaxed: published by the release (1) of the batch's first header.
      header(0).store(0, std::memory_order_relaxed);
      put_header(pos, to_end - kHeader, kPad);
      tail_ += to_end;
      pos = 0;
    }
    return data_ + pos + kHeader;
  }
  // Space for a payload of up to `size` bytes at the current position, or
  // nullptr if that needs a wrap or the ring lacks the room; never writes
  // anything. For encoders that learn the size by encoding: commit() the
  // size they wrote, which may be less.
  [[nodiscard]] SLEET_INLINE std::byte* claim_in_place(std::uint32_t size) noexcept {
    const std::uint64_t need = record_size(size);
    const std::uint64_t pos = tail_ & mask_;
    if (need > bytes_ - pos || !has_room(need + kHeader)) return nullptr;
    return data_ + pos + kHeader;
  }
  // Finishes the claimed record with `size` bytes (at most the claimed
  // size); it becomes visible at the next publish().
  SLEET_INLINE void commit(std::uint32_t size) noexcept {
    const std::uint64_t pos = tail_ & mask_;
    tail_ += record_size(size);
    // relaxed: published by the release (1) of this batch's first header.
    header(tail_ & mask_).store(0, std::memory_order_relaxed);
    put_header(pos, size, kData);
    ++sent_;
  }
  // Gives up the current claim. Nothing of it is published (a padding
  // record it wrote is, at the next publish(), and the consumer skips it).
  void abort() noexcept {}
  // Ends a batch: publishes everything committed and wakes a sleeping consumer.
  SLEET_INLINE void publish() noexcept {
    if (SLEET_LIKELY(pending_)) {
      SLEET_FAULT_POINT("spsc.publish");
      // release (1): the batch is complete before its first header is seen;
      // pairs with the acquire (2) in peek().
      header(pending_pos_).store(pending_header_, std::memory_order_release);
      pending_ = false;
    }
    c_->tail.store(tail_, std::memory_order_relaxed);  // relaxed: statistics / takeover hint
    c_->sent.store(sent_, std::memory_order_relaxed);  // relaxed: statistics
    c_->common.data_ec.notify();
  }
  // Whether this batch holds committed or padding records not yet published.
  bool unpublished() const noexcept { return pending_; }
  [[nodiscard]] bool try_write(const void* p, std::uint32_t size) noexcept {
    std::byte* dst = claim(size);
    if (dst == nullptr) return false;
    std::memcpy(dst, p, size);
    commit(size);
    publish();
    return true;
  }

  // ---- consumer only ----

  struct Record {
    const std::byte* ptr = nullptr;
    std::uint32_t length = 0;  // kDamaged: the header failed its bounds
    const std::byte* data() const noexcept { return ptr; }
    std::uint32_t size() const noexcept { return length; }
  };

  void attach_consumer() noexcept {
    // acquire: pairs with the previous consumer's release (3) of head; we
    // continue from there.
    head_ = c_->head.load(std::memory_order_acquire);
    received_ = c_->received.load(std::memory_order_relaxed);  // relaxed: statistics
  }

  // The oldest unread record, or false if none is published. A damaged
  // header gives a Record of size kDamaged, which must not be consumed.
  [[nodiscard]] SLEET_INLINE bool peek(Record& out) noexcept {
    for (unsigned pads = 0;; ++pads) {
      const std::uint64_t pos = head_ & mask_;
      // acquire (2): pairs with the producer's release (1).
      const std::uint64_t hdr = header(pos).load(std::memory_order_acquire);
      if (hdr == 0) return false;
      const auto size = static_cast<std::uint32_t>(hdr);
      const auto flags = static_cast<std::uint32_t>(hdr >> 32);
      if (SLEET_LIKELY(flags == kData)) {
        if (SLEET_UNLIKELY(size > max_size_ || record_size(size) > bytes_ - pos)) break;
        out = Record{data_ + pos + kHeader, size};
        return true;
      }
      // A pad ends exactly at the array's end, and two in a row are damage.
      if (flags != kPad || pos + kHeader + size != bytes_ || pads != 0) break;
      head_ += kHeader + size;
    }
    out = Record{nullptr, kDamaged};
    return true;
  }
  // Whether something (a record or a pad) is published at the consumer's
  // released position: a racy hint for an observer that shares no state
  // with the consumer (a WaitSet), which then lets the consumer look.
  bool readable() const noexcept {
    // acquire: pairs with the consumer's release (3) of head: the header we
    // then read is not one the consumer already cleared.
    const std::uint64_t pos = c_->head.load(std::memory_order_acquire) & mask_;
    // relaxed: a hint; the consumer's peek() reads it again with acquire (2).
    return header(pos).load(std::memory_order_relaxed) != 0;
  }
  // Marks the peeked record read; its space returns at the next release().
  SLEET_INLINE void consume(const Record& r) noexcept {
    head_ += record_size(r.length);
    ++received_;
  }
  // Ends a batch: returns the space of everything consumed and wakes a
  // sleeping producer.
  SLEET_INLINE void release() noexcept {
    SLEET_FAULT_POINT("spsc.release");
    c_->received.store(received_, std::memory_order_relaxed);  // relaxed: statistics
    // release (3): we are done reading; pairs with the acquire (4) in claim().
    c_->head.store(head_, std::memory_order_release);
    c_->common.space_ec.notify();
  }
  // Copies the oldest record out if it fits in `capacity` bytes (else
  // leaves it queued and returns false).
  [[nodiscard]] bool try_read(void* p, std::uint32_t capacity, std::uint32_t& size) noexcept {
    Record r;
    if (!peek(r) || r.length == kDamaged || r.length > capacity) return false;
    std::memcpy(p, r.ptr, r.length);
    size = r.length;
    consume(r);
    release();
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
  std::atomic_ref<std::uint64_t> header(std::uint64_t pos) const noexcept {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + pos));
  }
  // Room for `total` more bytes past tail; reloads head only when the cached
  // value says no.
  SLEET_INLINE bool has_room(std::uint64_t total) noexcept {
    if (SLEET_LIKELY(tail_ + total - cached_head_ <= bytes_)) return true;
    // acquire (4): pairs with the consumer's release (3); the bytes below
    // head are no longer read.
    cached_head_ = c_->head.load(std::memory_order_acquire);
    return tail_ + total - cached_head_ <= bytes_;
  }
  // The first header of a batch is held back until publish().
  SLEET_INLINE void put_header(std::uint64_t pos, std::uint64_t size, std::uint32_t flags) noexcept {
    const std::uint64_t word = static_cast<std::uint64_t>(flags) << 32 | size;
    if (!pending_) {
      pending_ = true;
      pending_pos_ = pos;
      pending_header_ = word;
    } else {
      // relaxed: published by the release (1) of the batch's first header.
      header(pos).store(word, std::memory_order_relaxed);
    }
  }

  SpscControl* c_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t bytes_ = 0;  // copies of the control block's sizes, checked at open
  std::uint64_t mask_ = 0;
  std::uint64_t max_size_ = 0;
  // Producer-local.
  std::uint64_t tail_ = 0;
  std::uint64_t cached_head_ = 0;
  std::uint64_t sent_ = 0;
  bool pending_ = false;
  std::uint64_t pending_pos_ = 0;
  std::uint64_t pending_header_ = 0;
  // Consumer-local.
  std::uint64_t head_ = 0;
  std::uint64_t received_ = 0;
};

}  // namespace sleet::detail
