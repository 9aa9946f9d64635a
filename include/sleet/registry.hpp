// sleet/registry.hpp — finding channels by name from any process.
//
//   auto ch = sleet::get_channel<Job>("jobs");   // open with the type check
//   for (const auto& c : sleet::list_channels()) std::cout << c.name << '\n';
//
// list_channels() scans /dev/shm for sleet segments of kind channel or pipe
// and reads their headers and counters without attaching to them (a
// read-only mapping, no role claimed, not listed as a user). Everything it
// reports about a live channel is a racy snapshot. Objects that are not
// valid sleet channels are skipped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sleet/channel.hpp"

namespace sleet {

struct ChannelInfo {
  std::string name;
  std::string kind;          // "channel" or "pipe"
  Topology topology = Topology::mpmc;
  std::string type_name;     // the message type, as the creator's compiler spelt it
  std::uint64_t capacity = 0;
  std::uint64_t max_message_size = 0;
  std::uint64_t queued = 0;  // for a pipe: both directions together
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  int creator_pid = 0;
  bool creator_alive = false;
  std::vector<int> users;  // live processes that have it mapped
  bool stale = false;      // neither the creator nor any user is alive
};

std::vector<ChannelInfo> list_channels();

// Opens an existing channel; errc::not_found if there is none and
// errc::type_mismatch (naming both types) if it carries another type.
template <class T>
Channel<T> get_channel(std::string_view name) {
  return Channel<T>::open(name);
}

}  // namespace sleet
