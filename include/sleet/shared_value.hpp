// sleet/shared_value.hpp — SharedValue<T>: one named value of a trivially
// copyable T that processes read and write, like multiprocessing.Value.
//
//   auto hits = sleet::SharedValue<std::int64_t>::open_or_create("hits", 0);
//   hits.fetch_add(1);                         // any process
//   std::int64_t n = hits.load();
//   auto pos = sleet::SharedValue<Pose>::create("pose", Pose{});   // a 48-byte struct
//   pos.store({1, 2, 3});  Pose p = pos.load();
//   pos.update([](Pose p) { p.x += 1; return p; });                 // atomic read-modify-write
//
// When std::atomic<T> is always lock-free (integers, pointers-sized structs
// of up to 8 bytes), the value is a std::atomic<T> in the segment: every
// operation is one atomic instruction, with the memory order you pass
// (seq_cst by default). Otherwise it is a seqlock over two buffers
// (detail/stored_value.hpp): load() never blocks and never writes shared
// memory; writers are serialised by a robust lock, and a writer killed
// mid-store leaves the previous value intact. is_lock_free() says which.
//
// compare_exchange compares object representations (bytes), like
// std::atomic. fetch_add/fetch_sub exist for integer T. The memory_order
// arguments apply to lock-free values; a seqlock value is always
// sequentially consistent per value (its writers hold a lock, and a load
// returns the latest complete store).
#pragma once

#include <atomic>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "sleet/detail/stored_value.hpp"
#include "sleet/detail/type_name.hpp"

namespace sleet {

struct ValueOptions {
  unsigned permissions = 0600;
  // Busy-wait budget of a writer waiting for the lock (seqlock values and
  // SharedArray) before it sleeps.
  std::chrono::nanoseconds spin = std::chrono::microseconds(5);
};

template <class T>
class SharedValue {
  static_assert(std::is_trivially_copyable_v<T>, "SharedValue<T> needs a trivially copyable T");
  static_assert(alignof(T) <= detail::kCacheLine, "SharedValue<T>: T is over-aligned");

 public:
  static constexpr bool kLockFree = std::atomic<T>::is_always_lock_free && sizeof(T) <= 8;

  SharedValue() = default;

  static SharedValue create(std::string_view name, const T& initial = T{},
                            const ValueOptions& options = {}) {
    detail::ValueConfig config{};
    config.lock_free = kLockFree;
    config.element_size = sizeof(T);
    config.length = 1;
    config.spin_ns = options.spin.count();
    return SharedValue(detail::StoredValue::create(
        name, detail::SegmentKind::value, fingerprint(), detail::type_name<T>(), config,
        options.permissions, [&](std::byte* at) {
          if constexpr (kLockFree) {
            new (at) std::atomic<T>(initial);
          } else {
            // Buffer 0 is the current one (index 0, seq 0).
            std::memcpy(at, &initial, sizeof(T));
          }
        }));
  }
  static SharedValue open(std::string_view name) {
    return SharedValue(detail::StoredValue::open(name, detail::SegmentKind::value, fingerprint(),
                                                 detail::type_name<T>(), sizeof(T), kLockFree));
  }
  static SharedValue open_or_create(std::string_view name, const T& initial = T{},
                                    const ValueOptions& options = {}) {
    return detail::create_or_open([&] { return create(name, initial, options); },
                                  [&] { return open(name); });
  }
  static bool remove(std::string_view name) {
    return detail::remove_segment(name, detail::SegmentKind::value);
  }

  T load(std::memory_order order = std::memory_order_seq_cst) const {
    if constexpr (kLockFree) {
      return atomic().load(order);
    } else {
      std::array<std::byte, sizeof(T)> bytes;
      stored_.read(bytes.data());
      return std::bit_cast<T>(bytes);
    }
  }
  void store(const T& v, std::memory_order order = std::memory_order_seq_cst) {
    if constexpr (kLockFree) {
      atomic().store(v, order);
    } else {
      detail::StoredValueLock locked(stored_, "store");
      stored_.write_locked(&v);
    }
  }
  T exchange(const T& v, std::memory_order order = std::memory_order_seq_cst) {
    if constexpr (kLockFree) {
      return atomic().exchange(v, order);
    } else {
      detail::StoredValueLock locked(stored_, "exchange");
      const T old = detail::value_from_bytes<T>(stored_.current_locked());
      stored_.write_locked(&v);
      return old;
    }
  }
  // Stores `desired` if the value equals `expected` (bytewise); otherwise
  // copies the current value into `expected` and returns false.
  bool compare_exchange(T& expected, const T& desired,
                        std::memory_order order = std::memory_order_seq_cst) {
    if constexpr (kLockFree) {
      return atomic().compare_exchange_strong(expected, desired, order);
    } else {
      detail::StoredValueLock locked(stored_, "compare_exchange");
      const std::byte* current = stored_.current_locked();
      if (std::memcmp(current, &expected, sizeof(T)) != 0) {
        std::memcpy(&expected, current, sizeof(T));
        return false;
      }
      stored_.write_locked(&desired);
      return true;
    }
  }
  // Atomically replaces the value v with fn(v); returns the new value.
  // fn may run more than once (lock-free T: a CAS loop).
  template <class F>
  T update(F fn) {
    if constexpr (kLockFree) {
      T current = atomic().load(std::memory_order_relaxed);  // relaxed: the CAS decides
      T next = fn(current);
      while (!atomic().compare_exchange_weak(current, next, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
        next = fn(current);
      }
      return next;
    } else {
      detail::StoredValueLock locked(stored_, "update");
      const T next = fn(detail::value_from_bytes<T>(stored_.current_locked()));
      stored_.write_locked(&next);
      return next;
    }
  }
  template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
  T fetch_add(T delta, std::memory_order order = std::memory_order_seq_cst) {
    return atomic().fetch_add(delta, order);
  }
  template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
  T fetch_sub(T delta, std::memory_order order = std::memory_order_seq_cst) {
    return atomic().fetch_sub(delta, order);
  }

  static constexpr bool is_lock_free() noexcept { return kLockFree; }
  std::string_view name() const noexcept { return stored_.name(); }

 private:
  static_assert(!std::is_integral_v<T> || kLockFree, "integer SharedValue must be lock-free");

  explicit SharedValue(detail::StoredValue stored) : stored_(std::move(stored)) {}
  static constexpr std::uint64_t fingerprint() noexcept {
    return detail::fingerprint<T>(kLockFree ? "sleet::SharedValue/atomic" : "sleet::SharedValue/seqlock");
  }
  std::atomic<T>& atomic() const noexcept {
    return *reinterpret_cast<std::atomic<T>*>(stored_.data());
  }
  detail::StoredValue stored_;
};

}  // namespace sleet
