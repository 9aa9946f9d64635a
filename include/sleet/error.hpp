// sleet/error.hpp — the one error type of sleet.
//
// Every cold-path failure (create, open, remove, a closed channel, a bad
// argument) throws sleet::Error, a std::system_error whose code() compares
// equal to a sleet::errc value and whose what() names the object involved:
//
//   try { auto ch = sleet::Channel<int>::open("jobs"); }
//   catch (const sleet::Error& e) {
//     if (e.code() == sleet::errc::not_found) ...
//   }
//
// Hot paths never throw for expected outcomes: a full ring, an empty ring and
// a timeout are reported through return values (bool / std::optional).
//
// errno values are mapped to errc in exactly one place (core/error.cpp).
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace sleet {

enum class errc {
  invalid_name = 1,      // not 1-200 characters of [A-Za-z0-9._-]
  invalid_argument,      // an option out of range (capacity 0, ...)
  not_found,             // no object of that name
  already_exists,        // create() of a name that is taken
  not_sleet,             // the shared memory object is not a sleet segment
  version_mismatch,      // a sleet segment of another layout version
  kind_mismatch,         // a sleet segment of another kind (kv opened as channel)
  type_mismatch,         // a channel of another message type
  too_large,             // a message or value larger than its maximum
  full,                  // a store with no free slot, a semaphore at its maximum
  timeout,               // a bounded wait ran out (cold paths only)
  closed,                // the channel was closed
  wrong_mode,            // active and passive receive on one Channel object
  busy,                  // the side of an spsc channel is held by a live process
  peer_dead,             // the process we depended on died (e.g. before `ready`)
  decode_failed,         // a payload that does not decode
  owner_died,            // a robust lock whose owner died
  permission_denied,     // the object exists but we may not open it
  system_error,          // any other failing system call (errno in the message)
  not_owner,             // a mutex unlocked by a thread that does not hold it
  not_managed,           // this_process used in a process no ProcessManager started
  child_failed,          // a managed child could not be started
  corrupted,             // a sleet segment whose bytes contradict its own limits
};
// The last errc value: bindings that name every code go up to it.
inline constexpr errc kLastErrc = errc::corrupted;

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// The exception every cold path throws. what() is "<object>: <detail>".
class Error : public std::system_error {
 public:
  Error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
  errc value() const noexcept { return static_cast<errc>(code().value()); }
  // what() without the ": <code>" that std::system_error appends, i.e.
  // "<object>: <detail>": for messages that show the code another way.
  std::string detail() const;
};

// Short name of a code, e.g. "not_found" (for messages and tests).
std::string_view to_string(errc e) noexcept;

}  // namespace sleet

template <>
struct std::is_error_code_enum<sleet::errc> : std::true_type {};
