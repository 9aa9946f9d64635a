// sleet/detail/stored_value.hpp — the untyped part of SharedValue<T> and
// SharedArray<T>: their segment layouts and the two-buffer seqlock.
//
// Object layouts (offsets from the start of the object, 64-byte lines):
//
//   SharedValue, lock-free T:  +0 ValueConfig  +64 std::atomic<T>
//   SharedValue, other T:      +0 ValueConfig  +64 RobustLock  +128 SeqIndex
//                              +192 buffer 0   +192+B buffer 1   (B = sizeof(T) rounded to 64)
//   SharedArray:               +0 ValueConfig  +64 RobustLock  +128 elements
//
// The seqlock (values too large for a lock-free std::atomic; the steps and
// their fences are seqlock.hpp's, numbered as there). Writers are
// serialised by the RobustLock and always write the buffer readers are NOT
// directed to, then flip `index`:
//
//   writer (holds the lock)              reader (never writes, never blocks)
//   b = 1 - index                        i = index            (acquire)
//   seq[b] = odd; fence(release) (3)     s1 = seq[i]          (acquire) (2)
//   copy the value into buffer b         copy buffer i        (relaxed atomic words)
//   seq[b] = even  (release)     (1)     fence(acquire); s2 = seq[i]    (4)
//   index = b      (release)             retry unless s1 == s2 and even
//
// A writer killed at any point leaves `index` on a complete buffer, so
// readers neither spin on it nor see a torn value; the next writer takes the
// lock over (robust_lock.hpp) and rewrites the same spare buffer. A reader
// only retries when a writer rewrote the buffer it was copying, which takes
// two writes since it read `index`.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "sleet/detail/process.hpp"
#include "sleet/detail/robust_lock.hpp"
#include "sleet/detail/segment.hpp"

namespace sleet::detail {

struct ValueConfig {
  std::uint32_t lock_free;     // SharedValue: 1 = std::atomic<T>, 0 = seqlock
  std::uint32_t element_size;  // sizeof(T)
  std::uint64_t length;        // elements: 1 for a SharedValue
  std::int64_t spin_ns;        // busy-wait budget of the lock
  std::byte pad[kCacheLine - 24];
};
static_assert(sizeof(ValueConfig) == kCacheLine);

struct alignas(kCacheLine) SeqIndex {
  std::atomic<std::uint32_t> index;   // the buffer readers use
  std::atomic<std::uint32_t> seq[2];  // odd while that buffer is written
};

// How big the object is and where its parts are, from the config alone.
struct ValueLayout {
  std::uint64_t lock = kCacheLine;        // RobustLock (seqlock values, arrays)
  std::uint64_t data = 0;                 // atomic<T>, buffer 0, or element 0
  std::uint64_t buffer_bytes = 0;         // seqlock buffers only
  std::uint64_t size = 0;                 // the whole object
};
ValueLayout value_layout(SegmentKind kind, const ValueConfig& config) noexcept;

// A mapped value or array segment; typed by SharedValue/SharedArray.
class StoredValue {
 public:
  StoredValue() = default;
  // `init(object)` writes the initial value(s) at object + layout().data.
  static StoredValue create(std::string_view name, SegmentKind kind, std::uint64_t fingerprint,
                            std::string_view type_name, const ValueConfig& config,
                            unsigned permissions, const std::function<void(std::byte*)>& init);
  // Opens and checks the layout against what the type expects.
  static StoredValue open(std::string_view name, SegmentKind kind, std::uint64_t fingerprint,
                          std::string_view type_name, std::uint32_t element_size,
                          std::uint32_t lock_free);

  std::string_view name() const noexcept { return seg_.name(); }
  const ValueConfig& config() const noexcept {
    return *reinterpret_cast<const ValueConfig*>(seg_.object());
  }
  std::byte* data() const noexcept { return seg_.object() + layout_.data; }
  RobustLock& lock() const noexcept {
    return *reinterpret_cast<RobustLock*>(seg_.object() + layout_.lock);
  }
  // Takes the lock (errc::busy if this thread holds it); true if its
  // previous holder died holding it.
  bool acquire(std::string_view op) const;
  void release() const noexcept { lock().unlock(current_thread_identity()); }

  // Seqlock value: a consistent copy of the current value (never blocks).
  void read(void* out) const noexcept;
  // Seqlock value, lock held: publishes `in` as the new value.
  void write_locked(const void* in) const noexcept;
  // Seqlock value, lock held: the current value (stable while locked).
  const std::byte* current_locked() const noexcept;

  std::string describe() const;

 private:
  StoredValue(Segment seg, SegmentKind kind);
  SeqIndex& seq() const noexcept { return *reinterpret_cast<SeqIndex*>(seg_.object() + 2 * kCacheLine); }
  std::byte* buffer(std::uint32_t i) const noexcept { return data() + i * layout_.buffer_bytes; }

  Segment seg_;
  SegmentKind kind_ = SegmentKind::value;
  ValueLayout layout_;
};

// A T from its bytes; T need not be default-constructible.
template <class T>
T value_from_bytes(const void* bytes) noexcept {
  std::array<std::byte, sizeof(T)> b;
  std::memcpy(b.data(), bytes, sizeof(T));
  return std::bit_cast<T>(b);
}

// Holds a StoredValue's lock for a scope.
struct StoredValueLock {
  const StoredValue& stored;
  const bool owner_died;  // the previous holder died holding it
  StoredValueLock(const StoredValue& s, std::string_view op) : stored(s), owner_died(s.acquire(op)) {}
  ~StoredValueLock() { stored.release(); }
  StoredValueLock(const StoredValueLock&) = delete;
  StoredValueLock& operator=(const StoredValueLock&) = delete;
};

}  // namespace sleet::detail
