// WaitSet readiness for every source kind, ids, remove, timeouts, and the
// notify descriptor's arm/re-arm cycle (one process; tests/ipc has the
// wake-ups across processes).
#include <catch2/catch.hpp>
#include <poll.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sleet/wait_set.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::errc;
using sleet::Event;
using sleet::KvStore;
using sleet::Pipe;
using sleet::Topic;
using sleet::Topology;
using sleet::WaitSet;
using sleet::test::Cleanup;
using sleet::test::unique_name;

std::vector<WaitSet::Id> ids(std::span<const WaitSet::Id> s) { return {s.begin(), s.end()}; }

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

TEST_CASE("wait set: every source kind is ready exactly when it should be", "[wait_set]") {
  Cleanup c1(unique_name("ws-spsc")), c2(unique_name("ws-mpmc")), c3(unique_name("ws-pipe")),
      c4(unique_name("ws-event")), c5(unique_name("ws-kv")), c6(unique_name("ws-topic"));
  auto spsc = Channel<int>::create(c1.name, {.topology = Topology::spsc, .capacity = 8});
  auto mpmc = Channel<int>::create(c2.name, {.capacity = 8});
  auto [pa, pb] = Pipe<int>::create(c3.name, {.capacity = 8});
  auto ev = Event::create(c4.name);
  auto kv = KvStore::create(c5.name);
  auto topic = Topic<int>::create(c6.name, {.capacity = 8});
  auto sub = topic.subscribe();

  WaitSet ws;
  const auto i_spsc = ws.add(spsc);
  const auto i_mpmc = ws.add(mpmc);
  const auto i_pipe = ws.add(pb);  // b's receiving side: what a sends
  const auto i_ev = ws.add(ev);
  const auto i_kv = ws.add(kv, "mode");
  const auto i_sub = ws.add(sub);
  CHECK(ws.size() == 6);
  CHECK(ws.try_wait().empty());
  CHECK(ws.wait_for(5ms).empty());

  spsc.send(1);
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_spsc});
  mpmc.send(2);
  pa.send(3);
  CHECK(ids(ws.wait()) == std::vector<WaitSet::Id>{i_spsc, i_mpmc, i_pipe});
  pb.send(4);  // b's sending side: not what the set watches
  CHECK(spsc.try_receive() == 1);
  CHECK(mpmc.try_receive() == 2);
  CHECK(pb.try_receive() == 3);
  CHECK(ws.try_wait().empty());
  CHECK(pa.try_receive() == 4);

  ev.set();
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_ev});
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_ev});  // ready while set
  ev.clear();
  CHECK(ws.try_wait().empty());

  kv.set("other", 1);  // another key (maybe the same stripe): not a change of "mode"
  CHECK(ws.try_wait().empty());
  kv.set("mode", std::string("fast"));
  CHECK(ids(ws.wait_for(1s)) == std::vector<WaitSet::Id>{i_kv});
  CHECK(ws.try_wait().empty());  // a change is reported once
  kv.set("mode", std::string("slow"));
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_kv});
  kv.erase("mode");
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_kv});

  topic.publish(5);
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_sub});
  CHECK(sub.try_receive() == 5);
  CHECK(ws.try_wait().empty());

  // Closed counts as ready: receive() would report it.
  mpmc.close();
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_mpmc});

  CHECK(ws.remove(i_mpmc));
  CHECK_FALSE(ws.remove(i_mpmc));
  CHECK_FALSE(ws.remove(999));
  CHECK(ws.size() == 5);
  CHECK(ws.try_wait().empty());
  spsc.send(6);
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{i_spsc});  // ids are stable
}

TEST_CASE("wait set: sources outlive the objects they were added from", "[wait_set]") {
  Cleanup c(unique_name("ws-outlive"));
  WaitSet ws;
  WaitSet::Id id;
  {
    auto ch = Channel<int>::create(c.name);
    id = ws.add(ch);
  }
  auto ch = Channel<int>::open(c.name);
  ch.send(1);
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{id});
}

TEST_CASE("wait set: bad input", "[wait_set][bad-input]") {
  WaitSet empty;
  CHECK(empty.try_wait().empty());
  CHECK(empty.wait_for(1ms).empty());
  CHECK_SLEET_ERROR(empty.wait(), errc::invalid_argument, "empty set");

  Cleanup c(unique_name("ws-passive"));
  auto topic = Topic<int>::create(c.name);
  auto sub = topic.subscribe();
  sub.on_receive([](const int&) {});
  WaitSet ws;
  CHECK_SLEET_ERROR(ws.add(sub), errc::wrong_mode, "passive subscriber");
}

TEST_CASE("wait set: more sources than one futex_waitv takes", "[wait_set]") {
  std::vector<std::unique_ptr<Cleanup>> names;
  std::vector<Channel<int>> chans;
  WaitSet ws;
  for (int i = 0; i < 150; ++i) {
    names.push_back(std::make_unique<Cleanup>(unique_name("ws-many")));
    chans.push_back(Channel<int>::create(names.back()->name, {.capacity = 2}));
    ws.add(chans.back());
  }
  CHECK(ws.wait_for(3ms).empty());
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    chans[149].send(1);
  });
  const auto got = ids(ws.wait_for(5s));
  t.join();
  CHECK(got == std::vector<WaitSet::Id>{149});
}

TEST_CASE("notify_fd: readable while messages wait, re-armed by an empty try_receive", "[wait_set][notify]") {
  Cleanup c(unique_name("ws-fd"));
  for (Topology topo : {Topology::spsc, Topology::mpmc}) {
    INFO(sleet::test::topo_name(topo));
    Channel<int>::remove(c.name);
    auto ch = Channel<int>::create(c.name, {.topology = topo, .capacity = 8});
    const int fd = ch.notify_fd();
    REQUIRE(fd >= 0);
    CHECK(ch.notify_fd() == fd);  // one per object
    CHECK_FALSE(readable(fd, 20));
    ch.send(1);
    ch.send(2);
    CHECK(readable(fd, 5000));
    CHECK(ch.try_receive() == 1);
    CHECK(readable(fd, 0));  // not drained yet: still readable
    CHECK(ch.try_receive() == 2);
    CHECK_FALSE(ch.try_receive().has_value());  // re-arms: the descriptor is cleared
    CHECK_FALSE(readable(fd, 20));
    ch.send(3);
    CHECK(readable(fd, 5000));
    CHECK(ch.receive() == 3);
    CHECK_FALSE(ch.try_receive().has_value());
    CHECK_FALSE(readable(fd, 20));
  }
}

TEST_CASE("notify_fd: a WaitSet's descriptor, re-armed by try_wait", "[wait_set][notify]") {
  Cleanup c1(unique_name("ws-setfd")), c2(unique_name("ws-setfd-topic"));
  auto ch = Channel<int>::create(c1.name);
  auto topic = Topic<int>::create(c2.name);
  auto sub = topic.subscribe();
  const int sub_fd = sub.notify_fd();
  WaitSet ws;
  const auto a = ws.add(ch);
  const int fd = ws.notify_fd();
  const auto b = ws.add(sub);  // added after the descriptor: watched too
  CHECK_FALSE(readable(fd, 20));
  topic.publish(7);
  CHECK(readable(fd, 5000));
  CHECK(readable(sub_fd, 5000));
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{b});
  CHECK(sub.try_receive() == 7);
  CHECK_FALSE(sub.try_receive().has_value());
  CHECK(ws.try_wait().empty());  // nothing ready: the descriptor stays clear
  CHECK_FALSE(readable(fd, 20));
  CHECK_FALSE(readable(sub_fd, 20));
  ch.send(1);
  CHECK(readable(fd, 5000));
  CHECK(ids(ws.try_wait()) == std::vector<WaitSet::Id>{a});
}
