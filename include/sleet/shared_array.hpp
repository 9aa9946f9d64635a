// sleet/shared_array.hpp — SharedArray<T>: a named fixed-length array of a
// trivially copyable T shared by processes, like multiprocessing.Array.
//
//   auto scores = sleet::SharedArray<double>::open_or_create("scores", 64);
//   scores.set(3, 0.5);                 // one element, under the array's lock
//   double s = scores.get(3);
//   scores.with_lock([](std::span<double> all) {       // several elements at once
//     std::rotate(all.begin(), all.begin() + 1, all.end());
//   });
//   scores.with_lock([](std::span<double> all, sleet::LockResult r) {
//     if (r == sleet::LockResult::owner_died) repair(all);  // a holder died mid-update
//   });
//
// Every access takes the array's robust lock (detail/robust_lock.hpp), so
// get() never sees a half-written element and with_lock() updates are
// atomic to every other access. If a holder dies inside with_lock(), the
// next holder takes the lock over; a with_lock() function that accepts a
// LockResult is told so and can repair. get/set/fill/snapshot do not
// report it (they touch whole elements; a set() cut short by a kill can
// leave that one element torn when T is larger than 8 bytes).
//
// Index out of range: errc::invalid_argument naming the array and index.
#pragma once

#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sleet/detail/stored_value.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/mutex.hpp"
#include "sleet/shared_value.hpp"

namespace sleet {

namespace detail {
[[noreturn]] void throw_index_out_of_range(std::string_view what, std::size_t index,
                                           std::size_t length);
}

template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>, "SharedArray<T> needs a trivially copyable T");
  static_assert(alignof(T) <= detail::kCacheLine, "SharedArray<T>: T is over-aligned");

 public:
  SharedArray() = default;

  static SharedArray create(std::string_view name, std::size_t length, const T& fill = T{},
                            const ValueOptions& options = {}) {
    detail::ValueConfig config{};
    config.element_size = sizeof(T);
    config.length = length;
    config.spin_ns = options.spin.count();
    return SharedArray(detail::StoredValue::create(
        name, detail::SegmentKind::array, fingerprint(), detail::type_name<T>(), config,
        options.permissions, [&](std::byte* at) {
          for (std::size_t i = 0; i < length; ++i) std::memcpy(at + i * sizeof(T), &fill, sizeof(T));
        }));
  }
  static SharedArray open(std::string_view name) {
    return SharedArray(detail::StoredValue::open(name, detail::SegmentKind::array, fingerprint(),
                                                 detail::type_name<T>(), sizeof(T), 0));
  }
  // An existing array keeps its own length (see size()).
  static SharedArray open_or_create(std::string_view name, std::size_t length,
                                    const T& fill = T{}, const ValueOptions& options = {}) {
    return detail::create_or_open([&] { return create(name, length, fill, options); },
                                  [&] { return open(name); });
  }
  static bool remove(std::string_view name) {
    return detail::remove_segment(name, detail::SegmentKind::array);
  }

  std::size_t size() const noexcept { return static_cast<std::size_t>(stored_.config().length); }

  T get(std::size_t i) const {
    check(i);
    detail::StoredValueLock locked(stored_, "get");
    return detail::value_from_bytes<T>(element(i));
  }
  T operator[](std::size_t i) const { return get(i); }
  void set(std::size_t i, const T& v) {
    check(i);
    detail::StoredValueLock locked(stored_, "set");
    std::memcpy(element(i), &v, sizeof(T));
  }
  void fill(const T& v) {
    with_lock([&](std::span<T> all) {
      for (T& e : all) e = v;
    });
  }
  std::vector<T> snapshot() const {
    detail::StoredValueLock locked(stored_, "snapshot");
    return std::vector<T>(elements(), elements() + size());
  }
  // Runs fn(std::span<T>) or fn(std::span<T>, LockResult) under the lock and
  // returns what fn returns. fn must not call other members of this array.
  template <class F>
  decltype(auto) with_lock(F&& fn) {
    detail::StoredValueLock locked(stored_, "with_lock");
    std::span<T> all(elements(), size());
    if constexpr (std::is_invocable_v<F&, std::span<T>, LockResult>) {
      return fn(all, locked.owner_died ? LockResult::owner_died : LockResult::acquired);
    } else {
      return fn(all);
    }
  }

  std::string_view name() const noexcept { return stored_.name(); }

 private:
  explicit SharedArray(detail::StoredValue stored) : stored_(std::move(stored)) {}
  static constexpr std::uint64_t fingerprint() noexcept {
    return detail::fingerprint<T>("sleet::SharedArray");
  }
  T* elements() const noexcept { return reinterpret_cast<T*>(stored_.data()); }
  std::byte* element(std::size_t i) const noexcept { return stored_.data() + i * sizeof(T); }
  void check(std::size_t i) const {
    if (SLEET_UNLIKELY(i >= size())) detail::throw_index_out_of_range(stored_.describe(), i, size());
  }
  detail::StoredValue stored_;
};

}  // namespace sleet
