// The registry: list_channels() sees channels and pipes with their shape,
// counters and liveness (including a creator that died), and
// get_channel<T>() opens with the type check. Other tests' channels may
// exist at the same time, so everything is looked up by this test's names.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace st = sleet::test;
using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Topology;

namespace {

using sleet::test::thrown_error;
using sleet::test::contains;
using sleet::test::tname;




std::optional<sleet::ChannelInfo> find_info(const std::string& name) {
  std::optional<sleet::ChannelInfo> found;
  for (auto& info : sleet::list_channels()) {
    if (info.name != name) continue;
    REQUIRE_FALSE(found.has_value());  // listed once
    found = std::move(info);
  }
  return found;
}

bool has_user(const sleet::ChannelInfo& info, int pid) {
  return std::find(info.users.begin(), info.users.end(), pid) != info.users.end();
}

}  // namespace

TEST_CASE("registry: list_channels sees a channel with its shape, counters and liveness",
          "[registry]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  const auto name = st::unique_name("reg.ch");
  st::Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(name,
                                         {.topology = topo, .capacity = 16, .max_message_size = 100});
  auto rx = Channel<std::string>::open(name);
  for (int i = 0; i < 5; ++i) tx.send("m" + std::to_string(i));
  REQUIRE(rx.receive() == "m0");
  REQUIRE(rx.receive() == "m1");

  auto info = find_info(name);
  REQUIRE(info);
  CHECK(info->kind == "channel");
  CHECK(info->topology == topo);
  CHECK(info->type_name == tname<std::string>());
  CHECK(info->capacity == 16);
  CHECK(info->max_message_size == 100);
  CHECK(info->sent == 5);
  CHECK(info->received == 2);
  CHECK(info->queued == 3);
  CHECK(info->creator_pid == static_cast<int>(::getpid()));
  CHECK(info->creator_alive);
  CHECK(has_user(*info, static_cast<int>(::getpid())));
  CHECK_FALSE(info->stale);

  // Listing is read-only: it neither consumes, nor claims, nor registers.
  CHECK(rx.receive() == "m2");
  info = find_info(name);
  REQUIRE(info);
  CHECK(info->queued == 2);
  CHECK(info->received == 3);

  // A removed channel is no longer listed (our objects keep their mapping).
  REQUIRE(Channel<std::string>::remove(name));
  CHECK_FALSE(find_info(name).has_value());
  tx.send("still works");
  CHECK(rx.receive() == "m3");
}

TEST_CASE("registry: list_channels sees a pipe", "[registry][pipe]") {
  const auto name = st::unique_name("reg.pipe");
  st::Cleanup cleanup(name);
  auto [a, b] = sleet::Pipe<int>::create(name, {.capacity = 8});
  for (int i = 0; i < 3; ++i) a.send(i);
  REQUIRE(b.receive() == 0);
  b.send(10);
  b.send(11);
  auto info = find_info(name);
  REQUIRE(info);
  CHECK(info->kind == "pipe");
  CHECK(info->topology == Topology::spsc);
  CHECK(info->type_name == "int");
  CHECK(info->capacity == 8);
  CHECK(info->sent == 5);
  CHECK(info->received == 1);
  CHECK(info->queued == 4);  // both directions together
  CHECK(info->creator_pid == static_cast<int>(::getpid()));
  CHECK(info->creator_alive);
  CHECK_FALSE(info->stale);
}

TEST_CASE("registry: a channel whose creator died is stale only when no user is alive",
          "[registry][ipc]") {
  const auto name = st::unique_name("reg.orphan");
  const auto go_name = st::unique_name("reg.go");
  st::Cleanup cleanup(name);
  st::Cleanup go_cleanup(go_name);
  auto go = Channel<int>::create(go_name, {.capacity = 4});
  st::Child child([&] {
    auto ch = Channel<std::int64_t>::create(name, {.capacity = 32});
    ch.send(1);
    ch.send(2);
    // Stay alive until the parent has opened the channel too.
    return go.receive_for(3s) == 1 ? 0 : 2;
  });

  // Attach while the creator still lives.
  std::optional<Channel<std::int64_t>> mine;
  const auto end = std::chrono::steady_clock::now() + 2s;
  while (!mine) {
    try {
      mine = sleet::get_channel<std::int64_t>(name);
    } catch (const sleet::Error& e) {
      if (e.code() != sleet::errc::not_found || std::chrono::steady_clock::now() >= end) throw;
      std::this_thread::sleep_for(1ms);
    }
  }
  auto info = find_info(name);
  REQUIRE(info);
  CHECK(info->creator_pid == child.pid());
  CHECK(info->creator_alive);
  CHECK(has_user(*info, child.pid()));
  CHECK(has_user(*info, static_cast<int>(::getpid())));
  CHECK_FALSE(info->stale);

  go.send(1);
  REQUIRE(child.wait_for(3000ms) == 0);  // reaped: the pid is gone for good

  // The creator is dead, but this process still has it open: not stale.
  info = find_info(name);
  REQUIRE(info);
  CHECK(info->creator_pid > 0);
  CHECK_FALSE(info->creator_alive);
  CHECK(info->users == std::vector<int>{static_cast<int>(::getpid())});
  CHECK_FALSE(info->stale);
  CHECK(info->queued == 2);
  CHECK(mine->receive() == 1);

  // Once the last user lets go, nobody alive is left: stale.
  mine.reset();
  info = find_info(name);
  REQUIRE(info);
  CHECK_FALSE(info->creator_alive);
  CHECK(info->users.empty());
  CHECK(info->stale);
  CHECK(info->queued == 1);

  // Opening it again makes it live again.
  auto again = sleet::get_channel<std::int64_t>(name);
  info = find_info(name);
  REQUIRE(info);
  CHECK_FALSE(info->stale);
  CHECK(again.receive() == 2);
}

TEST_CASE("registry: get_channel opens with the type check", "[registry]") {
  const auto name = st::unique_name("reg.get");
  st::Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(name, {.topology = Topology::spsc});

  auto rx = sleet::get_channel<std::string>(name);
  tx.send("via registry");
  CHECK(rx.receive() == "via registry");
  CHECK(rx.topology() == Topology::spsc);

  auto err = thrown_error([&] { (void)sleet::get_channel<std::vector<char>>(name); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::type_mismatch);
  CHECK(contains(err->what(), name));
  CHECK(contains(err->what(), tname<std::string>()));
  CHECK(contains(err->what(), tname<std::vector<char>>()));

  err = thrown_error([&] { (void)sleet::get_channel<int>(name); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::type_mismatch);
  CHECK(contains(err->what(), "int"));

  const auto missing = st::unique_name("reg.missing");
  err = thrown_error([&] { (void)sleet::get_channel<int>(missing); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::not_found);
  CHECK(contains(err->what(), missing));

  err = thrown_error([&] { (void)sleet::get_channel<int>("bad name!"); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::invalid_name);
}

TEST_CASE("registry: list_channels skips what is not a sleet channel", "[registry]") {
  // A foreign object under our prefix and a sleet segment of another kind.
  const auto junk = st::unique_name("reg.junk");
  const auto other = st::unique_name("reg.kind");
  const auto real = st::unique_name("reg.real");
  st::Cleanup c1(junk), c2(other), c3(real);
  {
    const std::string path = "/sleet." + junk;
    const int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    const std::string garbage(4096, 'G');
    REQUIRE(::write(fd, garbage.data(), garbage.size()) == static_cast<ssize_t>(garbage.size()));
    ::close(fd);
  }
  auto seg = sleet::detail::Segment::create(
      other, {sleet::detail::SegmentKind::kv, 4096, 0, "kv-thing", 0600}, nullptr);
  auto ch = Channel<int>::create(real);
  std::vector<sleet::ChannelInfo> all;
  REQUIRE_NOTHROW(all = sleet::list_channels());
  auto named = [&](const std::string& n) {
    return std::count_if(all.begin(), all.end(), [&](const auto& i) { return i.name == n; });
  };
  CHECK(named(junk) == 0);
  CHECK(named(other) == 0);
  CHECK(named(real) == 1);
}
