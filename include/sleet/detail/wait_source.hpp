// sleet/detail/wait_source.hpp — one thing a WaitSet (wait_set.hpp) can
// wait for, described the same way whatever it is: a futex word that
// changes when the thing may have become ready, the counter where a
// sleeper announces itself so that whoever changes the word also wakes it,
// and a readiness check that makes no system call.
//
// Every object's publishing side already follows the eventcount protocol
// of futex.hpp with such a pair: a channel's or topic's data_ec (epoch,
// waiters), an Event's (word, waiters), a store stripe's (changes,
// watchers). A WaitSet announces itself on all of its sources, re-checks
// them, and sleeps on all their words at once (futex_waitv).
//
// A source keeps its own view of the object (a shared mapping in `keep`),
// so it stays valid when the object it was made from is moved or destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace sleet::detail {

struct WaitSource {
  std::atomic<std::uint32_t>* word = nullptr;
  std::atomic<std::uint32_t>* waiters = nullptr;
  // Whether the source is ready now (no system call; may be stale either
  // way, the caller re-checks before acting).
  bool (*ready)(WaitSource& self) noexcept = nullptr;
  // Called when a wait reports the source ready (e.g. a key's change is
  // reported once); may be null.
  void (*reported)(WaitSource& self) noexcept = nullptr;
  std::shared_ptr<void> keep;  // the source's own view: its state lives here
  explicit operator bool() const noexcept { return ready != nullptr; }
};

}  // namespace sleet::detail
