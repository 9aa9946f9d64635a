// sleet/topic_options.hpp — the options and statistics of a Topic<T>
// (topic.hpp), apart so the layers below can use them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sleet {

// What a publisher does when the slowest live subscriber is a whole ring
// behind.
enum class Overflow : std::uint32_t {
  block = 0,      // waits until that subscriber has read (nothing is ever lost)
  overwrite = 1,  // never waits: the subscriber skips ahead and counts what it lost
};

struct TopicOptions {
  std::size_t capacity = 1024;          // messages the ring holds (rounded up to a power of two)
  std::size_t max_message_size = 256;   // bytes of one encoded message
  std::size_t max_subscribers = 64;     // live subscribers at once (1-4096)
  Overflow overflow = Overflow::block;
  unsigned permissions = 0600;
  // Busy-wait budget of blocking calls before they sleep on a futex.
  std::chrono::nanoseconds spin = std::chrono::microseconds(20);
};

// Where a new subscriber starts.
enum class From {
  next,    // the first message published after subscribe() returns
  oldest,  // the oldest message the ring still holds (block: all but the oldest slot,
           // which a publisher that has not seen the new subscriber may be rewriting)
};

// A racy snapshot (every field read separately).
struct TopicStats {
  std::size_t capacity = 0;
  std::size_t max_message_size = 0;
  std::size_t max_subscribers = 0;
  Overflow overflow = Overflow::block;
  bool closed = false;
  std::uint64_t published = 0;    // tickets taken (messages published or being published)
  std::size_t subscribers = 0;    // places taken, live or not yet found dead
  std::uint64_t slowest_lag = 0;  // messages the slowest subscriber has yet to read
  std::uint64_t lost = 0;         // messages subscribers skipped under overwrite (all of them)
  std::uint64_t reclaimed = 0;    // places of dead subscribers taken back
  std::uint64_t abandoned = 0;    // tickets of dead publishers, published as skipped
  std::uint64_t times_full = 0;   // publishes that found the ring full (block)
  std::uint64_t publish_sleeps = 0;
  std::uint64_t receive_sleeps = 0;
};

}  // namespace sleet
