// sleet send / sleet recv: text lines through a Channel<std::string>.
#include <algorithm>
#include <iostream>
#include <string>

#include <sleet/sleet.hpp>

#include "cli.hpp"

namespace sleet::cli {

int run_send(const SendOptions& o) {
  auto ch = Channel<std::string>::open(o.channel);
  std::string line;
  while (std::getline(std::cin, line)) ch.send(line);  // blocks while the channel is full
  if (o.close) ch.close();
  return kOk;
}

int run_recv(const RecvOptions& o) {
  auto ch = Channel<std::string>::open(o.channel);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t got = 0;
  try {
    while (!o.count || got < *o.count) {
      std::optional<std::string> m;
      if (o.timeout) {
        const auto left = *o.timeout - (std::chrono::steady_clock::now() - start);
        m = ch.receive_for(std::max(left, std::chrono::nanoseconds::zero()));
        if (!m) {
          std::cout.flush();
          throw Failure(kTimeout, "channel '" + o.channel + "': timed out after " +
                                      format_duration(*o.timeout) + " (" + std::to_string(got) +
                                      (got == 1 ? " message)" : " messages)"));
        }
      } else {
        m = ch.receive();
      }
      std::cout << *m << '\n';
      std::cout.flush();  // a reader at the other end of a shell pipe sees each one at once
      ++got;
    }
  } catch (const Error& e) {
    if (e.code() != errc::closed) throw;  // closed and drained: the normal end
  }
  return kOk;
}

}  // namespace sleet::cli
