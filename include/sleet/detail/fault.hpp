// sleet/detail/fault.hpp — layer 1: test-only fault injection.
//
// A process may die at any instruction; the rare instants that matter (a
// slot claimed but not written, a close half done) are too short to hit by
// killing at random. A build with SLEET_FAULT_INJECTION (CMake option of
// the same name: on in the sanitizer builds, off otherwise) compiles a named
// point into each of them, and a test arms one point: its n-th hit in this
// process kills the process (SIGKILL to itself, so nothing of it runs on:
// no destructor, no atexit, exactly like a kill from outside). Without the
// option SLEET_FAULT_POINT expands to nothing, so released builds carry no
// trace of it.
//
// Arming: fault::arm(point, nth) in the process itself (a forked child), or
// the environment variable SLEET_FAULT="point:nth" read at start-up (an
// exec'd program: the CLI, a ProcessManager argv target).
//
// The points (each names the state the survivors must cope with):
//   mpmc.claim     a sender took a slot (writing), the ticket counter not moved yet
//   mpmc.commit    a sender wrote its payload, the slot not published
//   mpmc.take      a receiver took a message (reading), the ticket counter not moved yet
//   mpmc.consume   a receiver copied a message out, the slot not freed
//   mpmc.close     a closer set the closed ticket bit, the final ticket not stored
//   spsc.publish   a sender wrote its records (in_send open), the first header not published
//   spsc.release   a receiver read its records, their space not released
//   close.begun    a closer announced itself (mpmc: tickets closed), kClosing not set
//   close.closing  kClosing is set (sends refused), kClosed not yet
//   topic.claim    a publisher took a ticket, the slot not written
//   topic.close    a closer set the head's closed bit, kClosed not yet
//   kv.write       an update (stripe lock held) wrote the new value into the stripe's spare, unpublished
//   kv.claim       an insert wrote key and value into a claimed slot, neither published nor live
//   kv.erase       an erase moved the slot's version, the key not yet taken out
//   lock.held      a robust lock was just taken (Mutex, and the writers of SharedValue / SharedArray)
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "sleet/detail/platform.hpp"

namespace sleet::detail::fault {

#if defined(SLEET_FAULT_INJECTION)
inline constexpr bool kEnabled = true;

// Whether a point is armed in this process: the only cost of a point in a
// fault-injection build while nothing is armed (a relaxed load and a branch).
extern std::atomic<bool> g_armed;

// Counts a hit of `point`; kills the process on the armed point's n-th hit.
void hit(std::string_view point) noexcept;
#else
inline constexpr bool kEnabled = false;
#endif

// Arms `point` (one of the names above): its nth hit (1-based) in this
// process kills it. Replaces an earlier arming. No effect without
// SLEET_FAULT_INJECTION.
void arm(std::string_view point, std::uint64_t nth) noexcept;
void disarm() noexcept;

}  // namespace sleet::detail::fault

#if defined(SLEET_FAULT_INJECTION)
// relaxed: arming happens in this process before the hits it targets (the
// same thread, or one the test started after arming).
#define SLEET_FAULT_POINT(name)                                                  \
  do {                                                                           \
    if (SLEET_UNLIKELY(::sleet::detail::fault::g_armed.load(std::memory_order_relaxed))) \
      ::sleet::detail::fault::hit(name);                                         \
  } while (0)
#else
#define SLEET_FAULT_POINT(name) \
  do {                          \
  } while (0)
#endif
