// Owner words against pid reuse (#11 item 2): every owner word (robust
// lock, store stripe and overflow locks, store slot claims, spsc roles)
// names a whole identity, pid or tid plus start time. A word that names a
// pid that now runs as another, unrelated process, which is what a recycled
// pid looks like, is recognised as not its owner and taken over; a word
// naming that live process exactly is respected.
//
// The "recycled" owner is simulated exactly: a live child (pid P, started at
// tick S) and an owner word recording P with another start time (S ^ 1):
// the identity of an earlier process that had pid P.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

#include "ipc_support.hpp"
#include "kv_support.hpp"
#include "sleet/channel.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/kv_store.hpp"
#include "sleet/mutex.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::identity_now;
using sleet::test::sleeper;
using sleet::test::unique_name;
namespace d = sleet::detail;

namespace {

std::uint64_t recycled(std::uint64_t live) { return live ^ 1; }

d::MutexObject& mutex_object(d::Segment& seg) {
  return *reinterpret_cast<d::MutexObject*>(seg.object());
}
d::Segment mutex_segment(const std::string& name) {
  return d::Segment::open(name, d::SegmentKind::mutex, d::fnv1a("sleet::Mutex"), "sleet::Mutex");
}

}  // namespace

TEST_CASE("identity: a thread identity names the thread, and dies with it", "[identity]") {
  const std::uint64_t me = d::current_thread_identity();
  CHECK(d::identity_pid(me) == static_cast<int>(::gettid()));
  CHECK(d::identity_alive(me));
  CHECK_FALSE(d::identity_alive(recycled(me)));  // our tid, another start time: not us
  std::uint64_t other = 0;
  std::thread([&] { other = d::current_thread_identity(); }).join();
  CHECK(other != me);
  CHECK_FALSE(d::identity_alive(other));  // the thread has exited
  CHECK(d::identity_of(0) == 0);
}

TEST_CASE("identity: a Mutex whose word names a recycled tid is taken over", "[identity][mutex]") {
  const std::string name = unique_name("id.mutex");
  Cleanup cleanup(name);
  auto m = sleet::Mutex::create(name);
  d::Segment seg = mutex_segment(name);
  Child live = sleeper();
  const std::uint64_t id = identity_now(live);  // a single-threaded child: tid == pid

  SECTION("the word names the live process exactly: it is respected") {
    mutex_object(seg).lock.word.store(d::lock_word(id));
    CHECK_FALSE(m.try_lock());
    CHECK_FALSE(m.try_lock_for(30ms));
    CHECK(m.stats().owner_tid == static_cast<std::uint32_t>(live.pid()));
    mutex_object(seg).lock.word.store(0);
  }
  SECTION("the word names an earlier process with that tid: taken over") {
    mutex_object(seg).lock.word.store(d::lock_word(recycled(id)));
    CHECK(m.try_lock());
    CHECK(m.owner_died());
    CHECK(m.stats().recoveries == 1);
    m.unlock();
    CHECK(m.lock() == sleet::LockResult::acquired);
    m.unlock();
  }
  SECTION("a blocking lock() takes it over too, within a few check periods") {
    mutex_object(seg).lock.word.store(d::lock_word(recycled(id)) | d::kWaiters);
    Child locker([&] {
      auto mine = sleet::Mutex::open(name);
      if (mine.lock() != sleet::LockResult::owner_died) return 1;
      mine.unlock();
      return 0;
    });
    CHECK(locker.wait_for(5000ms) == 0);
  }
}

TEST_CASE("identity: a store stripe lock naming a recycled pid is taken over", "[identity][kv]") {
  const std::string name = unique_name("id.kv");
  Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 16});
  kv.set("k", 1);
  sleet::test::KvTable t = sleet::test::kv_white_box(name);
  const std::uint64_t stripe = t.stripe_of("k");
  Child live = sleeper();
  const std::uint64_t id = identity_now(live);

  SECTION("naming the live process: a writer waits (bounded here by a child)") {
    t.stripe(stripe).owner.store(id);
    Child writer([&] {
      auto mine = sleet::KvStore::open(name);
      mine.set("k", 2);
      return 0;
    });
    CHECK(writer.wait_for(300ms) == -1);  // still waiting when killed
    CHECK(kv.get<int>("k") == 1);
    t.stripe(stripe).owner.store(0);
  }
  SECTION("naming an earlier process with that pid: the writer takes it over") {
    t.stripe(stripe).owner.store(recycled(id));
    Child writer([&] {
      auto mine = sleet::KvStore::open(name);
      mine.set("k", 2);
      return 0;
    });
    REQUIRE(writer.wait_for(5000ms) == 0);
    CHECK(kv.get<int>("k") == 2);
    CHECK(t.stripe(stripe).owner.load() == 0);
  }
}

TEST_CASE("identity: a store slot claimed under a recycled pid is reclaimed", "[identity][kv]") {
  const std::string name = unique_name("id.slot");
  Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 4});
  kv.set("a", 1);
  kv.set("b", 2);
  kv.set("c", 3);
  sleet::test::KvTable t = sleet::test::kv_white_box(name);
  long free_slot = -1;
  for (std::uint64_t i = 0; i < t.config().slots; ++i) {
    if (d::kv_state(t.slot(i).state.load()) == d::kKvEmpty) free_slot = static_cast<long>(i);
  }
  REQUIRE(free_slot >= 0);
  Child live = sleeper();
  const std::uint64_t id = identity_now(live);
  auto& s = t.slot(static_cast<std::uint64_t>(free_slot));
  t.meta(static_cast<std::uint64_t>(free_slot)).tag.store(d::kTagFree);

  SECTION("claimed by the live process: not taken, the store is full") {
    s.state.store(d::kv_state_word(d::kKvClaimed, id));
    CHECK(d::identity_pid(d::kv_owner(s.state.load())) == live.pid());
    CHECK_THROWS_AS(kv.set("d", 4), sleet::Error);
  }
  SECTION("claimed by an earlier process with that pid: a new key takes the slot") {
    s.state.store(d::kv_state_word(d::kKvClaimed, recycled(id)));
    kv.set("d", 4);
    CHECK(t.slot_of("d") == free_slot);
    CHECK(kv.get<int>("d") == 4);
  }
}

TEST_CASE("identity: an spsc role naming a recycled pid is not busy", "[identity][channel]") {
  const std::string name = unique_name("id.role");
  Cleanup cleanup(name);
  auto rx = sleet::Channel<int>::create(name, {.topology = sleet::Topology::spsc, .capacity = 8});
  (void)rx.try_receive();  // takes the receiver role
  Child live = sleeper();
  const std::uint64_t id = identity_now(live);
  auto& ctl = *static_cast<d::SpscControl*>(rx.base().core().ring());

  SECTION("naming the live process: busy, and the error names its pid") {
    ctl.producer.owner.store(id);
    ctl.producer.serial.store(7);
    auto tx = sleet::Channel<int>::open(name);
    CHECK_SLEET_ERROR(tx.send(1), sleet::errc::busy,
                      "spsc channel already has a live sender (pid " + std::to_string(live.pid()) + ")");
    ctl.producer.owner.store(0);
    ctl.producer.serial.store(0);
  }
  SECTION("naming an earlier process with that pid: the role is taken") {
    ctl.producer.owner.store(recycled(id));
    ctl.producer.serial.store(7);
    auto tx = sleet::Channel<int>::open(name);
    tx.send(41);
    CHECK(ctl.producer.owner.load() == d::current_identity());
    CHECK(rx.receive() == 41);
  }
}

TEST_CASE("identity: two Channel objects of one process cannot share an spsc side",
          "[identity][channel]") {
  const std::string name = unique_name("id.twice");
  Cleanup cleanup(name);
  auto a = sleet::Channel<int>::create(name, {.topology = sleet::Topology::spsc, .capacity = 8});
  auto b = sleet::Channel<int>::open(name);
  a.send(1);
  CHECK_SLEET_ERROR(b.send(2), sleet::errc::busy,
                    "spsc channel already has a live sender (another Channel object in this process)");
  // Assigning over a holder gives its side back (while its segment is still
  // mapped: this crashed before ChannelEnd replaced the port before the core).
  a = sleet::Channel<int>();
  b.send(2);
  auto& ctl = *static_cast<d::SpscControl*>(b.base().core().ring());
  CHECK(ctl.producer.owner.load() == d::current_identity());
  CHECK(ctl.producer.serial.load() == b.base().core().serial());
}

TEST_CASE("identity: owner words' layouts are pinned", "[identity][layout]") {
  // If this fails, a shared layout changed: bump kLayoutVersion.
  STATIC_REQUIRE(d::kLayoutVersion == 7);  // 6 made these owner words; 7 changed the segment header only
  STATIC_REQUIRE(sizeof(d::RobustLock) == 64);
  STATIC_REQUIRE(offsetof(d::RobustLock, word) == 0);
  STATIC_REQUIRE(offsetof(d::RobustLock, dirty) == 8);
  STATIC_REQUIRE(offsetof(d::RobustLock, sleeps) == 16);
  STATIC_REQUIRE(offsetof(d::RobustLock, recoveries) == 24);
  STATIC_REQUIRE(sizeof(d::MutexObject) == 128);
  STATIC_REQUIRE(offsetof(d::MutexObject, spin_ns) == 64);
  // The low half (the futex word) is the tid and the waiters bit.
  STATIC_REQUIRE(d::lock_word(std::uint64_t{1234} << 32 | 0xabcdef01u) == 0xabcdef01'000004d2u);
  STATIC_REQUIRE(d::word_owner(0xabcdef01'000004d2u | d::kWaiters) ==
                 (std::uint64_t{1234} << 32 | 0xabcdef01u));
  STATIC_REQUIRE(sizeof(d::SpscRole) == 16);
  STATIC_REQUIRE(offsetof(d::SpscRole, owner) == 0);
  STATIC_REQUIRE(offsetof(d::SpscRole, serial) == 8);
}
