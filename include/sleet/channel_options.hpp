// sleet/channel_options.hpp — the public vocabulary of channels and pipes:
// the topology, the options a channel is created with, and its statistics.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sleet {

enum class Topology : std::uint32_t { spsc = 1, mpmc = 2 };

inline constexpr std::chrono::nanoseconds kDefaultSpin = std::chrono::microseconds(50);
inline constexpr std::size_t kMaxCapacity = std::size_t{1} << 32;
inline constexpr std::size_t kMaxMessageSize = std::size_t{1} << 30;

struct ChannelOptions {
  Topology topology = Topology::mpmc;
  std::size_t capacity = 1024;       // messages of max_message_size that fit
  std::size_t max_message_size = 0;  // bytes of one encoded message; 0: sizeof(T) for
                                     // fixed-size codecs, 256 otherwise
  unsigned permissions = 0600;
  std::chrono::nanoseconds spin = kDefaultSpin;  // busy-wait budget before sleeping
};

// A racy snapshot: counters are read one by one while others may change them.
struct ChannelStats {
  std::uint64_t sent = 0;            // messages published
  std::uint64_t received = 0;        // messages taken
  std::uint64_t queued = 0;          // sent - received
  std::uint64_t times_full = 0;      // sends that found the ring full
  std::uint64_t send_sleeps = 0;     // times a sender went to sleep
  std::uint64_t receive_sleeps = 0;  // times a receiver went to sleep
  std::uint64_t send_wakes = 0;      // futex wakes issued for sleeping senders
  std::uint64_t receive_wakes = 0;   // futex wakes issued for sleeping receivers
  // mpmc, slots recovered from processes that died holding them: sends
  // that never returned (skipped), and messages a dying receiver had taken.
  std::uint64_t abandoned = 0;
  std::uint64_t lost = 0;
};

}  // namespace sleet
