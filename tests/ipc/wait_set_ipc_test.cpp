// WaitSet and notify_fd across real processes (fork): a parent sleeping on
// many sources is woken by a child that makes one of them ready, for every
// source kind; an epoll loop on notify descriptors receives every message
// of a child's stream (sequence numbers and checksums checked).
#include <catch2/catch.hpp>
#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ipc/ipc_support.hpp"
#include "sleet/wait_set.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Event;
using sleet::KvStore;
using sleet::Pipe;
using sleet::Topic;
using sleet::Topology;
using sleet::WaitSet;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::patience;
using sleet::test::scaled;
using sleet::test::unique_name;

using Msg = sleet::test::SeqMsg;
using sleet::test::intact;
using sleet::test::make_msg;

}  // namespace

TEST_CASE("wait set ipc: a child makes one of many sources ready and wakes the parent", "[wait_set][ipc]") {
  constexpr int kChannels = 8;
  std::vector<std::unique_ptr<Cleanup>> names;
  std::vector<Channel<int>> chans;
  for (int i = 0; i < kChannels; ++i) {
    names.push_back(std::make_unique<Cleanup>(unique_name("wsi-ch")));
    chans.push_back(Channel<int>::create(names.back()->name,
                                         {.topology = i % 2 ? Topology::mpmc : Topology::spsc, .capacity = 4}));
  }
  Cleanup pn(unique_name("wsi-pipe")), en(unique_name("wsi-ev")), kn(unique_name("wsi-kv")),
      tn(unique_name("wsi-topic"));
  auto [pa, pb] = Pipe<int>::create(pn.name);
  auto ev = Event::create(en.name);
  auto kv = KvStore::create(kn.name);
  auto topic = Topic<int>::create(tn.name);
  auto sub = topic.subscribe();

  WaitSet ws(std::chrono::nanoseconds(0));  // no spin: the parent really sleeps
  std::vector<WaitSet::Id> ch_ids;
  for (auto& ch : chans) ch_ids.push_back(ws.add(ch));
  const auto i_pipe = ws.add(pa);
  const auto i_ev = ws.add(ev);
  const auto i_kv = ws.add(kv, "go");
  const auto i_sub = ws.add(sub);

  // Each case: what the child does, and the id the parent must see.
  struct Case {
    std::function<void()> act;
    WaitSet::Id id;
  };
  std::vector<Case> cases;
  for (int k : {5, 0, 7}) {
    const std::string name = names[k]->name;
    cases.push_back({[name] { Channel<int>::open(name).send(42); }, ch_ids[k]});
  }
  cases.push_back({[&] { Pipe<int>::open(pn.name, sleet::End::b).send(42); }, i_pipe});
  cases.push_back({[&] { Event::open(en.name).set(); }, i_ev});
  cases.push_back({[&] { KvStore::open(kn.name).set("go", 1); }, i_kv});
  cases.push_back({[&] { Topic<int>::open(tn.name).publish(42); }, i_sub});

  for (auto& c : cases) {
    INFO("id " << c.id);
    REQUIRE(ws.try_wait().empty());
    Child child([&] {
      std::this_thread::sleep_for(30ms);  // the parent is asleep by then
      c.act();
      return 0;
    });
    const auto got = ws.wait_for(patience(10000ms));
    REQUIRE(got.size() == 1);
    CHECK(got[0] == c.id);
    CHECK(child.wait_for(patience(5000ms)) == 0);
    // Consume what made it ready.
    if (c.id == i_ev) ev.clear();
    if (c.id == i_pipe) CHECK(pa.try_receive() == 42);
    if (c.id == i_sub) CHECK(sub.try_receive() == 42);
    for (std::size_t k = 0; k < chans.size(); ++k) {
      if (c.id == ch_ids[k]) CHECK(chans[k].try_receive() == 42);
    }
  }
}

TEST_CASE("notify_fd ipc: an epoll loop receives every message of two children", "[wait_set][notify][ipc]") {
  Cleanup a(unique_name("nfd-a")), b(unique_name("nfd-b"));
  auto spsc = Channel<Msg>::create(a.name, {.topology = Topology::spsc, .capacity = 64});
  auto mpmc = Channel<Msg>::create(b.name, {.capacity = 64});
  const std::uint64_t n = scaled(20000, 2000);
  std::vector<Child> kids;
  for (std::uint32_t p = 0; p < 2; ++p) {
    const std::string name = p == 0 ? a.name : b.name;
    kids.emplace_back([name, p, n] {
      auto ch = Channel<Msg>::open(name);
      for (std::uint64_t i = 0; i < n; ++i) {
        ch.send(make_msg(p, i));
        if (i % 1000 == 999) std::this_thread::sleep_for(1ms);  // let the loop sleep now and then
      }
      return 0;
    });
  }
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  REQUIRE(ep >= 0);
  Channel<Msg>* chans[2] = {&spsc, &mpmc};
  for (int i = 0; i < 2; ++i) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u32 = static_cast<std::uint32_t>(i);
    REQUIRE(::epoll_ctl(ep, EPOLL_CTL_ADD, chans[i]->notify_fd(), &e) == 0);
  }
  std::uint64_t next[2] = {0, 0};
  bool ok = true;
  const auto deadline = sleet::test::Clock::now() + patience(60000ms);
  while ((next[0] < n || next[1] < n) && sleet::test::Clock::now() < deadline && ok) {
    epoll_event ev[2];
    const int k = ::epoll_wait(ep, ev, 2, 1000);
    for (int j = 0; j < k; ++j) {
      const std::uint32_t i = ev[j].data.u32;
      while (auto m = chans[i]->try_receive()) {
        if (!intact(*m) || m->producer != i || m->seq != next[i]) {
          ok = false;
          break;
        }
        ++next[i];
      }
    }
  }
  ::close(ep);
  CHECK(ok);
  CHECK(next[0] == n);
  CHECK(next[1] == n);
  for (auto& k : kids) CHECK(k.wait_for(patience(5000ms)) == 0);
}
