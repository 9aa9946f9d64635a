// sleet/semaphore.hpp — Semaphore: a named cross-process counting semaphore.
//
//   auto slots = sleet::Semaphore::open_or_create("gpu-slots", 2);   // initial count 2
//   slots.acquire();                       // blocks while the count is 0
//   if (slots.try_acquire()) { ... }
//   if (slots.acquire_for(100ms)) { ... }
//   slots.release();                       // or release(n)
//
// The count lives in one 32-bit futex word. acquire takes one with a CAS;
// release adds n with a CAS (bounded by SemaphoreOptions::max: a release
// past it is errc::full and changes nothing) and calls futex_wake only if
// someone announced that it sleeps. Blocking acquires spin for the spin
// budget first.
//
// No lost wake-up: a sleeper increments `waiters` and then sleeps only
// while the count is still 0 (the kernel checks the word under its futex
// lock); a releaser increments the count and then reads `waiters`. Both
// are seq_cst read-modify-writes followed by a load (the kernel's check is
// a full barrier), so at least one side sees the other: either the sleeper
// finds the count above 0, or the releaser finds waiters != 0 and wakes.
//
// A semaphore has no owner, so the death of a process that acquired it
// cannot be detected: what it held stays taken. A sleeper killed while
// asleep leaves its announcement behind, which costs every later release a
// futex_wake call (correct, slower).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/segment.hpp"

namespace sleet {

inline constexpr std::uint32_t kSemaphoreMax = 0x7fffffff;

struct SemaphoreOptions {
  std::uint32_t max = kSemaphoreMax;  // release() past this is errc::full
  unsigned permissions = 0600;
  // Busy-wait budget of a blocking acquire before it sleeps.
  std::chrono::nanoseconds spin = std::chrono::microseconds(5);
};

struct SemaphoreStats {
  std::uint32_t value = 0;
  std::uint32_t max = 0;
  std::uint32_t waiters = 0;   // announced sleepers, racy
  std::uint64_t sleeps = 0;    // times an acquirer went to sleep
  std::uint64_t wakes = 0;     // futex_wake calls made by release()
};

namespace detail {
struct SemaphoreObject {
  alignas(kCacheLine) std::atomic<std::uint32_t> count;  // futex word
  std::atomic<std::uint32_t> waiters;
  std::uint32_t max;
  std::uint32_t reserved;
  std::int64_t spin_ns;
  std::atomic<std::uint64_t> sleeps;
  std::atomic<std::uint64_t> wakes;
};
}  // namespace detail

class Semaphore {
 public:
  Semaphore() = default;
  Semaphore(Semaphore&&) noexcept = default;
  Semaphore& operator=(Semaphore&&) noexcept = default;

  static Semaphore create(std::string_view name, std::uint32_t initial,
                          const SemaphoreOptions& options = {});
  static Semaphore open(std::string_view name);
  static Semaphore open_or_create(std::string_view name, std::uint32_t initial,
                                  const SemaphoreOptions& options = {});
  static bool remove(std::string_view name);

  bool try_acquire() noexcept {
    // relaxed: the CAS below is what takes the unit.
    std::uint32_t c = object_->count.load(std::memory_order_relaxed);
    while (c != 0) {
      // acquire: what the releaser did before release() happens-before us.
      if (object_->count.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                               std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void acquire() {
    if (SLEET_LIKELY(try_acquire())) return;
    acquire_slow(detail::kForever);
  }
  bool acquire_for(std::chrono::nanoseconds timeout);
  // Adds n (n == 0 does nothing); errc::full if the count would pass max().
  void release(std::uint32_t n = 1);

  std::uint32_t value() const noexcept {
    return object_->count.load(std::memory_order_relaxed);  // relaxed: a snapshot
  }
  std::uint32_t max() const noexcept { return object_->max; }
  std::string_view name() const noexcept { return seg_.name(); }
  SemaphoreStats stats() const noexcept;
  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }

 private:
  explicit Semaphore(detail::Segment seg);
  bool acquire_slow(detail::Deadline deadline);

  detail::Segment seg_;
  detail::SemaphoreObject* object_ = nullptr;
  std::chrono::nanoseconds spin_{0};
};

}  // namespace sleet
