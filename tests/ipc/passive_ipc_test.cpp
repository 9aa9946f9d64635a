// Passive mode in a real child process: the child filters a
// Channel<std::variant<std::string, int64_t>> for strings and reports what
// it handled (and what it did not) back over a second channel.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <variant>

#include "support.hpp"

namespace st = sleet::test;
using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Topology;

namespace {

using Msg = std::variant<std::string, std::int64_t>;

struct Report {
  std::int64_t handled;    // strings the handler saw
  std::int64_t unhandled;  // Channel::unhandled()
  std::int64_t filtered;   // filter calls
  std::uint64_t checksum;  // over the strings, in arrival order
  std::int64_t in_order;   // 1 if the strings came in the order sent
};

std::uint64_t fold(std::uint64_t acc, const std::string& s) {
  for (char c : s) acc = st::mix(acc ^ static_cast<unsigned char>(c));
  return st::mix(acc + s.size());
}

}  // namespace

TEST_CASE("passive ipc: a child filters a variant channel for strings and reports exact counts",
          "[passive][ipc]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  const auto data_name = st::unique_name("passive.ipc.data");
  const auto report_name = st::unique_name("passive.ipc.report");
  st::Cleanup data_cleanup(data_name);
  st::Cleanup report_cleanup(report_name);
  auto data = Channel<Msg>::create(data_name, {.topology = topo, .capacity = 64});
  auto report = Channel<Report>::create(report_name, {.capacity = 4});

  st::Child child([&] {
    std::atomic<std::int64_t> handled{0}, filtered{0};
    std::uint64_t checksum = 0;  // dispatcher thread only; read after close() joined it
    std::int64_t next = 0;
    bool in_order = true;
    auto ch = Channel<Msg>::open(data_name);
    auto out = Channel<Report>::open(report_name);
    ch.on_receive(
        [&](const Msg& m) {
          const std::string& s = std::get<std::string>(m);
          checksum = fold(checksum, s);
          // Strings are "s<i>" with i not a multiple of 3, sent in increasing order.
          const std::int64_t i = std::stoll(s.substr(1));
          if (i <= next - 1) in_order = false;
          next = i + 1;
          handled.fetch_add(1);
        },
        [&](const Msg& m) {
          filtered.fetch_add(1);
          return std::holds_alternative<std::string>(m);
        });
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (!ch.closed()) {
      if (std::chrono::steady_clock::now() >= end) return 2;
      std::this_thread::sleep_for(1ms);
    }
    ch.close();  // the parent closed it: drain and join the dispatcher
    out.send(Report{handled.load(), static_cast<std::int64_t>(ch.unhandled()), filtered.load(),
                    checksum, in_order ? 1 : 0});
    return 0;
  });

  constexpr int kN = 600;  // ten times the capacity: the child keeps up while we send
  std::uint64_t expected_checksum = 0;
  std::int64_t strings = 0, numbers = 0;
  for (int i = 0; i < kN; ++i) {
    if (i % 3 == 0) {
      data.send(Msg{std::int64_t{i}});
      ++numbers;
    } else {
      const std::string s = "s" + std::to_string(i);
      data.send(Msg{s});
      expected_checksum = fold(expected_checksum, s);
      ++strings;
    }
  }
  data.close();
  auto r = report.receive_for(3s);
  REQUIRE(r);
  CHECK(r->handled == strings);
  CHECK(r->unhandled == numbers);
  CHECK(r->filtered == kN);
  CHECK(r->checksum == expected_checksum);
  CHECK(r->in_order == 1);
  CHECK(child.wait_for(3000ms) == 0);
  CHECK(data.stats().received == static_cast<std::uint64_t>(kN));
}
