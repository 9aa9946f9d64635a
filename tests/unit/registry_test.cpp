// The registry: list_objects()/inspect_object() see every kind with its
// header, counters and liveness (including a creator that died), damaged and
// foreign objects are reported or refused, remove_object() removes only
// sleet segments, list_channels() sees channels and pipes, and
// get_channel<T>() opens with the type check. Other tests' objects may
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

// The entry named `name` in a listing, checking that it is listed once.
template <class Info>
std::optional<Info> find_named(std::vector<Info> all, const std::string& name) {
  std::optional<Info> found;
  for (auto& info : all) {
    if (info.name != name) continue;
    REQUIRE_FALSE(found.has_value());  // listed once
    found = std::move(info);
  }
  return found;
}

std::optional<sleet::ChannelInfo> find_info(const std::string& name) {
  return find_named(sleet::list_channels(), name);
}

std::optional<sleet::ObjectInfo> find_object(const std::string& name) {
  return find_named(sleet::list_objects(), name);
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
  for (int i = 0; i < 5; ++i) tx.send(std::string("m").append(std::to_string(i)));
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
  REQUIRE(st::write_foreign_object(junk, 4096));
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

namespace {

// A pid that certainly belonged to a process that is now gone (reaped).
int dead_pid() {
  st::Child child([] { return 0; });
  const int pid = child.pid();
  REQUIRE(child.wait() == 0);
  return pid;
}

}  // namespace

TEST_CASE("registry: list_objects and inspect_object report a channel's header and counters",
          "[registry]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  const auto name = st::unique_name("reg.obj");
  st::Cleanup cleanup(name);
  const auto before = std::chrono::system_clock::now() - 1s;
  auto tx = Channel<std::string>::create(
      name, {.topology = topo, .capacity = 4, .max_message_size = 64, .permissions = 0640,
             .spin = 0ns});
  auto rx = Channel<std::string>::open(name);
  // A receiver that sleeps (no spin budget), then sends until the ring is
  // full and one more that sleeps on it: every counter moves. (How many fit
  // depends on the topology: spsc packs records.)
  CHECK_FALSE(rx.receive_for(1ms).has_value());
  const std::string big(50, 'x');
  std::uint64_t n = 0;
  while (tx.try_send(big)) ++n;
  REQUIRE(n >= 4);
  CHECK_FALSE(tx.send_for(big, 1ms));
  REQUIRE(rx.receive() == big);

  const auto listed = find_object(name);
  REQUIRE(listed);
  const sleet::ObjectInfo info = sleet::inspect_object(name);
  for (const sleet::ObjectInfo* o : {&*listed, &info}) {
    CHECK(o->name == name);
    CHECK(o->kind == "channel");
    CHECK(o->type_name == tname<std::string>());
    CHECK(o->layout_version == sleet::detail::kLayoutVersion);
    CHECK(o->total_size == tx.base().segment().size());
    CHECK(o->permissions == 0640u);
    CHECK(o->owner_uid == ::getuid());
    CHECK(o->created >= before);
    CHECK(o->created <= std::chrono::system_clock::now());
    CHECK(o->creator_pid == static_cast<int>(::getpid()));
    CHECK(o->creator_alive);
    // tx and rx each took a slot in the users table; the pid is listed once.
    CHECK(o->users == std::vector<int>{static_cast<int>(::getpid())});
    CHECK_FALSE(o->stale);
    CHECK(o->problem.empty());
    CHECK_FALSE(o->kv.has_value());
    REQUIRE(o->rings.size() == 1);
    const sleet::RingInfo& r = o->rings[0];
    CHECK(r.direction.empty());
    CHECK(r.topology == topo);
    CHECK(r.capacity == 4);
    CHECK(r.max_message_size == 64);
    CHECK_FALSE(r.closed);
    CHECK(r.stats.sent == n);
    CHECK(r.stats.received == 1);
    CHECK(r.stats.queued == n - 1);
    CHECK(r.stats.times_full >= 2);
    CHECK(r.stats.receive_sleeps >= 1);
    CHECK(r.stats.send_sleeps >= 1);
  }
  // The same numbers the channel reports itself (nothing ran in between).
  const auto own = tx.stats();
  const auto& seen = info.rings[0].stats;
  CHECK(seen.sent == own.sent);
  CHECK(seen.received == own.received);
  CHECK(seen.times_full == own.times_full);
  CHECK(seen.send_sleeps == own.send_sleeps);
  CHECK(seen.receive_sleeps == own.receive_sleeps);
  CHECK(seen.send_wakes == own.send_wakes);
  CHECK(seen.receive_wakes == own.receive_wakes);

  // Closing shows, and the closed mark does not leak into the counters.
  tx.close();
  const auto closed = sleet::inspect_object(name);
  REQUIRE(closed.rings.size() == 1);
  CHECK(closed.rings[0].closed);
  CHECK(closed.rings[0].stats.sent == n);
  CHECK(closed.rings[0].stats.queued == n - 1);
}

TEST_CASE("registry: a pipe reports each direction on its own", "[registry][pipe]") {
  const auto name = st::unique_name("reg.pdir");
  st::Cleanup cleanup(name);
  auto [a, b] = sleet::Pipe<int>::create(name, {.capacity = 8});
  for (int i = 0; i < 3; ++i) a.send(i);
  REQUIRE(b.receive() == 0);
  b.send(10);
  const auto info = sleet::inspect_object(name);
  CHECK(info.kind == "pipe");
  CHECK(info.type_name == "int");
  // The fingerprint open() checks (the bridge opens objects by it).
  CHECK(info.fingerprint == sleet::detail::fingerprint<int>(sleet::Codec<int>::name));
  CHECK(info.problem.empty());
  REQUIRE(info.rings.size() == 2);
  CHECK(info.rings[0].direction == "a->b");
  CHECK(info.rings[0].topology == Topology::spsc);
  CHECK(info.rings[0].capacity == 8);
  CHECK(info.rings[0].stats.sent == 3);
  CHECK(info.rings[0].stats.received == 1);
  CHECK(info.rings[0].stats.queued == 2);
  CHECK(info.rings[1].direction == "b->a");
  CHECK(info.rings[1].stats.sent == 1);
  CHECK(info.rings[1].stats.received == 0);
  CHECK(info.rings[1].stats.queued == 1);
}

TEST_CASE("registry: a kv store reports its shape and live entries", "[registry][kv]") {
  const auto name = st::unique_name("reg.kv");
  st::Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 100, .max_key_size = 40, .max_value_size = 300});
  kv.set("a", 1);
  kv.set("b", std::string("two"));
  kv.set("c", 3.0);
  REQUIRE(kv.erase("c"));
  const auto listed = find_object(name);
  REQUIRE(listed);
  for (const sleet::ObjectInfo& info : {*listed, sleet::inspect_object(name)}) {
    CHECK(info.kind == "kv");
    CHECK(info.problem.empty());
    CHECK(info.rings.empty());
    REQUIRE(info.kv.has_value());
    CHECK(info.kv->capacity == 100);
    CHECK(info.kv->slots == 128);
    CHECK(info.kv->entries == 2);
    CHECK(info.kv->max_key_size == 40);
    CHECK(info.kv->max_value_size == 300);
    CHECK(info.creator_alive);
    CHECK_FALSE(info.stale);
  }
  // Not a channel: list_channels() leaves it out.
  for (const auto& c : sleet::list_channels()) CHECK(c.name != name);
}

TEST_CASE("registry: a primitive of the wrong size reports its header and the problem", "[registry]") {
  const auto name = st::unique_name("reg.mutex");
  st::Cleanup cleanup(name);
  auto seg = sleet::detail::Segment::create(
      name, {sleet::detail::SegmentKind::mutex, 64, 0, "mutex-thing", 0600}, nullptr);
  const auto info = sleet::inspect_object(name);
  CHECK(info.kind == "mutex");
  CHECK(info.type_name == "mutex-thing");
  CHECK(info.total_size == seg.size());
  CHECK(info.creator_alive);
  CHECK(info.problem == "damaged: object size 64");
  CHECK(info.fields.empty());
  CHECK(info.rings.empty());
  CHECK_FALSE(info.kv.has_value());
}

TEST_CASE("registry: inspect_object and remove_object refuse bad names and foreign files",
          "[registry]") {
  const auto missing = st::unique_name("reg.none");
  CHECK_SLEET_ERROR(sleet::inspect_object(missing), sleet::errc::not_found,
                    "sleet segment '" + missing + "': does not exist");
  CHECK_FALSE(sleet::remove_object(missing));
  CHECK_SLEET_ERROR(sleet::inspect_object("bad name!"), sleet::errc::invalid_name, "bad name!");
  CHECK_SLEET_ERROR(sleet::remove_object("bad/name"), sleet::errc::invalid_name, "bad/name");

  const auto junk = st::unique_name("reg.foreign");
  const auto tiny = st::unique_name("reg.tiny");
  st::Cleanup c1(junk), c2(tiny);
  REQUIRE(st::write_foreign_object(junk, 4096));
  REQUIRE(st::write_foreign_object(tiny, 10));
  CHECK_SLEET_ERROR(sleet::inspect_object(junk), sleet::errc::not_sleet,
                    "sleet segment '" + junk + "': not a sleet segment (bad magic)");
  CHECK_SLEET_ERROR(sleet::inspect_object(tiny), sleet::errc::not_sleet,
                    "sleet segment '" + tiny + "': not a sleet segment (10 bytes, header needs 512)");
  CHECK_SLEET_ERROR(sleet::remove_object(junk), sleet::errc::not_sleet, "not a sleet segment");
  CHECK(st::shm_exists(junk));  // refused: still there
  CHECK_FALSE(find_object(junk).has_value());
  CHECK_FALSE(find_object(tiny).has_value());

  // Any kind of sleet object goes.
  const auto ch = st::unique_name("reg.rmch");
  const auto kv = st::unique_name("reg.rmkv");
  st::Cleanup c3(ch), c4(kv);
  (void)Channel<int>::create(ch);
  (void)sleet::KvStore::create(kv, {.capacity = 8});
  CHECK(sleet::remove_object(ch));
  CHECK(sleet::remove_object(kv));
  CHECK_FALSE(st::shm_exists(ch));
  CHECK_FALSE(st::shm_exists(kv));
  CHECK_FALSE(sleet::remove_object(ch));
}

TEST_CASE("registry: damaged, unfinished and foreign-version segments are listed with a problem",
          "[registry]") {
  using sleet::detail::Segment;
  const auto damaged = st::unique_name("reg.damaged");
  const auto unfinished = st::unique_name("reg.unfinished");
  const auto newer = st::unique_name("reg.newer");
  const auto badkv = st::unique_name("reg.badkv");
  st::Cleanup c1(damaged), c2(unfinished), c3(newer), c4(badkv);
  const int gone = dead_pid();
  {
    // A channel whose ring claims more slots than its segment holds.
    auto ch = Channel<int>::create(damaged, {.capacity = 8});
    std::byte* ring = ch.base().segment().object() + sizeof(sleet::detail::ChannelConfig);
    reinterpret_cast<sleet::detail::MpmcControl*>(ring)->slots = std::uint64_t{1} << 40;
    // A kv store whose slot count no longer matches its capacity.
    auto kv = sleet::KvStore::create(badkv, {.capacity = 8});
    auto seg = Segment::open(badkv, sleet::detail::SegmentKind::kv,
                             sleet::detail::fnv1a("sleet::KvStore"), "kv");
    reinterpret_cast<sleet::detail::KvConfig*>(seg.object())->slots = 1024;
    // A creator that died before publishing `ready`.
    auto u = Segment::create(unfinished, {sleet::detail::SegmentKind::channel, 64, 0, "x", 0600},
                             nullptr);
    u.header()->state.store(0, std::memory_order_relaxed);
    u.header()->creator.store(std::uint64_t(gone) << 32, std::memory_order_relaxed);
    // Another layout version.
    auto n = Segment::create(newer, {sleet::detail::SegmentKind::kv, 64, 0, "x", 0600}, nullptr);
    n.header()->layout_version = sleet::detail::kLayoutVersion + 1;
  }  // every handle gone: no live user is left on any of them

  auto info = sleet::inspect_object(damaged);
  CHECK(info.kind == "channel");
  CHECK(contains(info.problem, "mpmc ring"));
  CHECK(contains(info.problem, "does not fit"));
  CHECK(info.rings.empty());
  CHECK(info.creator_alive);

  info = sleet::inspect_object(badkv);
  CHECK(info.kind == "kv");
  CHECK(info.problem == "damaged kv layout");
  CHECK_FALSE(info.kv.has_value());

  info = sleet::inspect_object(unfinished);
  CHECK(info.kind == "unknown");
  CHECK(info.problem == "creator pid " + std::to_string(gone) + " died before it was ready");
  CHECK(info.creator_pid == gone);
  CHECK_FALSE(info.creator_alive);
  CHECK(info.users.empty());
  CHECK(info.stale);

  info = sleet::inspect_object(newer);
  CHECK(info.kind == "unknown");
  CHECK(info.layout_version == sleet::detail::kLayoutVersion + 1);
  CHECK(info.problem == "layout version " + std::to_string(sleet::detail::kLayoutVersion + 1) +
                           ", this build reads " + std::to_string(sleet::detail::kLayoutVersion));
  CHECK_FALSE(info.stale);  // unknown layout: not judged

  // All are listed (so they can be found and removed); none is a channel.
  for (const auto& n : {damaged, unfinished, newer, badkv}) CHECK(find_object(n).has_value());
  for (const auto& c : sleet::list_channels()) {
    CHECK(c.name != damaged);
    CHECK(c.name != unfinished);
  }
  for (const auto& n : {damaged, unfinished, newer, badkv}) {
    CHECK(sleet::remove_object(n));
    CHECK_FALSE(st::shm_exists(n));
  }
}

TEST_CASE("registry: the primitives report their state and counters", "[registry][sync]") {
  const auto mn = sleet::test::unique_name("reg-mutex");
  const auto sn = sleet::test::unique_name("reg-sem");
  const auto en = sleet::test::unique_name("reg-event");
  const auto vn = sleet::test::unique_name("reg-value");
  const auto an = sleet::test::unique_name("reg-array");
  sleet::test::Cleanup c1(mn), c2(sn), c3(en), c4(vn), c5(an);
  auto m = sleet::Mutex::create(mn);
  m.lock();
  auto s = sleet::Semaphore::create(sn, 3, {.max = 7});
  auto e = sleet::Event::create(en);
  e.set();
  auto v = sleet::SharedValue<std::int64_t>::create(vn, 1);
  auto a = sleet::SharedArray<double>::create(an, 12);
  using Fields = std::vector<std::pair<std::string, std::uint64_t>>;
  const auto tid = static_cast<std::uint64_t>(sleet::detail::current_tid());
  const sleet::ObjectInfo mi = sleet::inspect_object(mn);
  CHECK(mi.kind == "mutex");
  CHECK(mi.problem.empty());
  CHECK(mi.fields == Fields{{"owner_tid", tid}, {"sleeps", 0}, {"recoveries", 0}});
  CHECK(sleet::inspect_object(sn).fields ==
        Fields{{"value", 3}, {"max", 7}, {"waiters", 0}, {"sleeps", 0}, {"wakes", 0}});
  CHECK(sleet::inspect_object(en).fields ==
        Fields{{"set", 1}, {"waiters", 0}, {"sets", 1}, {"sleeps", 0}});
  CHECK(sleet::inspect_object(vn).fields == Fields{{"lock_free", 1}, {"size", 8}});
  const sleet::ObjectInfo ai = sleet::inspect_object(an);
  CHECK(ai.kind == "array");
  CHECK(ai.fields == Fields{{"length", 12}, {"element_size", 8}, {"owner_tid", 0}});
  m.unlock();
  CHECK(sleet::inspect_object(mn).fields.front() == std::pair<std::string, std::uint64_t>{"owner_tid", 0});
}
