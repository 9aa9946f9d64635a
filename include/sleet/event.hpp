// sleet/event.hpp — Event: a named cross-process flag that processes wait on.
//
//   auto ready = sleet::Event::open_or_create("model-loaded");
//   ready.wait();                 // in the workers: until some process calls set()
//   ready.set();                  // in the loader: wakes every waiter
//   ready.wait_for(1s);           // false on timeout
//   ready.clear();
//
// The futex word is (generation << 1) | set-bit. set() turns the bit on and
// advances the generation, clear() turns the bit off. A waiter that saw the
// bit off returns true as soon as the word changes at all: only a set()
// changes a word whose bit is off, so a set() followed at once by clear()
// still releases everyone that was waiting (like Python's Event), and no
// wake-up is lost. Announcing waiters (a counter next to the word, with the
// same seq_cst argument as semaphore.hpp) keeps set() free of system calls
// when nobody waits.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/detail/wait_source.hpp"

namespace sleet {

struct EventOptions {
  bool initially_set = false;
  unsigned permissions = 0600;
  // Busy-wait budget of wait() before it sleeps.
  std::chrono::nanoseconds spin = std::chrono::microseconds(5);
};

struct EventStats {
  bool is_set = false;
  std::uint32_t waiters = 0;  // announced sleepers, racy
  std::uint64_t sets = 0;     // set() calls that turned the flag on
  std::uint64_t sleeps = 0;   // times a waiter went to sleep
};

namespace detail {
struct EventObject {
  alignas(kCacheLine) std::atomic<std::uint32_t> word;  // futex word: generation << 1 | set
  std::atomic<std::uint32_t> waiters;
  std::int64_t spin_ns;
  std::atomic<std::uint64_t> sets;
  std::atomic<std::uint64_t> sleeps;
};
}  // namespace detail

class Event {
 public:
  Event() = default;
  Event(Event&&) noexcept = default;
  Event& operator=(Event&&) noexcept = default;

  static Event create(std::string_view name, const EventOptions& options = {});
  static Event open(std::string_view name);
  static Event open_or_create(std::string_view name, const EventOptions& options = {});
  static bool remove(std::string_view name);

  void set() noexcept;
  void clear() noexcept;
  bool is_set() const noexcept {
    // acquire: pairs with set(); what the setter did before is visible.
    return (object_->word.load(std::memory_order_acquire) & 1u) != 0;
  }
  void wait() { wait_until(detail::kForever); }
  bool wait_for(std::chrono::nanoseconds timeout);

  std::string_view name() const noexcept { return seg_.name(); }
  EventStats stats() const noexcept;
  // What a WaitSet waits on (wait_set.hpp): ready while set.
  detail::WaitSource wait_source() const;
  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }

 private:
  explicit Event(detail::Segment seg);
  bool wait_until(detail::Deadline deadline);

  detail::Segment seg_;
  detail::EventObject* object_ = nullptr;
  std::chrono::nanoseconds spin_{0};
};

}  // namespace sleet
