// In-process tests of the Channel<T> API (include/sleet/channel.hpp) for
// both topologies: life cycle, the three forms of send and receive, close(),
// stats(), the spsc side ownership, struct payloads and set_spin(). Real
// multi-process use is covered by tests/ipc.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::ChannelOptions;
using sleet::errc;
using sleet::Topology;
using sleet::test::Cleanup;
using sleet::test::unique_name;
using Clock = std::chrono::steady_clock;

using sleet::test::thrown_error;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Polls pred (every 100 us) until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 3000ms) {
  const auto end = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= end) return pred();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

using sleet::test::topo_name;

ChannelOptions opts(Topology t, std::size_t capacity) {
  ChannelOptions o;
  o.topology = t;
  o.capacity = capacity;
  return o;
}

// Sends until the ring is full; returns how many fit.
template <class T>
int fill(Channel<T>& ch, T value) {
  int n = 0;
  while (ch.try_send(value)) {
    ++n;
    REQUIRE(n < 100000);
  }
  return n;
}

struct Point {
  std::int32_t x;
  double y;
  char tag[12];
  bool operator==(const Point& o) const {
    return x == o.x && y == o.y && std::memcmp(tag, o.tag, sizeof tag) == 0;
  }
};

struct Big {
  std::uint64_t seq;
  std::uint8_t bytes[1000];
};

}  // namespace

TEST_CASE("Channel create/open/open_or_create/remove", "[channel]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("life");
  Cleanup cleanup(name);

  auto ch = Channel<int>::create(name, opts(topo, 16));
  CHECK(ch.name() == name);
  CHECK(ch.topology() == topo);
  CHECK(ch.capacity() == 16);
  CHECK(ch.max_message_size() == sizeof(int));
  CHECK(ch.spin() == sleet::kDefaultSpin);
  CHECK_FALSE(ch.closed());
  CHECK(ch.size_approx() == 0);

  auto opened = Channel<int>::open(name);
  CHECK(opened.name() == name);
  CHECK(opened.topology() == topo);
  CHECK(opened.capacity() == 16);
  CHECK(opened.max_message_size() == sizeof(int));

  // open_or_create of an existing channel opens it: options are ignored, contents kept.
  ch.send(41);
  auto again = Channel<int>::open_or_create(name, opts(Topology::mpmc, 999));
  CHECK(again.topology() == topo);
  CHECK(again.capacity() == 16);
  CHECK(again.size_approx() == 1);
  CHECK(again.receive() == 41);

  // open_or_create of a missing name creates it with the options given.
  const std::string fresh = unique_name("life");
  Cleanup cleanup_fresh(fresh);
  auto created = Channel<int>::open_or_create(fresh, opts(topo, 3));
  CHECK(created.capacity() == 3);
  CHECK(created.topology() == topo);

  CHECK(Channel<int>::remove(name));
  CHECK_SLEET_ERROR(Channel<int>::open(name), errc::not_found, name);
  CHECK_FALSE(Channel<int>::remove(name));
  // The objects already open keep working after the name is gone.
  ch.send(42);
  CHECK(again.receive() == 42);
  CHECK(Channel<int>::remove(fresh));
}

TEST_CASE("Channel send/receive keep order; try_ forms report full and empty", "[channel]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("order");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, opts(topo, 8));
  auto rx = Channel<int>::open(name);
  CHECK_FALSE(rx.try_receive());
  for (int round = 0; round < 50; ++round) {
    const int n = fill(tx, 0);  // count the room, then drain it
    REQUIRE(n >= 8);
    for (int i = 0; i < n; ++i) CHECK(rx.try_receive() == std::optional<int>(0));
    for (int i = 0; i < n; ++i) {
      if (i % 2 == 0) {
        tx.send(round * 100 + i);
      } else {
        CHECK(tx.try_send(round * 100 + i));
      }
    }
    CHECK_FALSE(tx.try_send(-1));
    CHECK(tx.size_approx() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      if (i % 3 == 0) {
        CHECK(rx.receive() == round * 100 + i);
      } else if (i % 3 == 1) {
        CHECK(rx.try_receive() == std::optional<int>(round * 100 + i));
      } else {
        CHECK(rx.receive_for(1s) == std::optional<int>(round * 100 + i));
      }
    }
    CHECK_FALSE(rx.try_receive());
  }
}

TEST_CASE("Channel capacity: at least `capacity` messages fit", "[channel]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  const std::size_t capacity = GENERATE(2, 5, 8, 100);
  CAPTURE(topo_name(topo), capacity);
  const std::string name = unique_name("cap");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, capacity));
  const int n = fill(ch, 7);
  CHECK(n >= static_cast<int>(capacity));
  if (topo == Topology::mpmc) {
    // One slot per message, rounded up to a power of two.
    CHECK(n == static_cast<int>(sleet::detail::MpmcRing::slot_count(capacity)));
  } else {
    // Records of record_size(sizeof(int)) in a power-of-two array, less the
    // 8-byte header word kept free past the last record.
    using sleet::detail::SpscRing;
    const auto bytes = SpscRing::array_bytes(capacity, sizeof(int));
    CHECK(n == static_cast<int>((bytes - SpscRing::kHeader) / SpscRing::record_size(sizeof(int))));
  }
  CHECK(ch.capacity() == capacity);
}

// With one mpmc slot a second message would overwrite the unread first one
// and the next receive would spin forever (see mpmc_ring_test.cpp), so
// capacity 1 must still get two slots.
TEST_CASE("Channel mpmc of capacity 1 never overwrites an unread message", "[channel]") {
  const std::string name = unique_name("cap1");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(Topology::mpmc, 1));
  const int n = fill(ch, 1);
  CHECK(n >= 1);
  CHECK(n == static_cast<int>(sleet::detail::MpmcRing::slot_count(1)));
  for (int i = 0; i < n; ++i) CHECK(ch.try_receive() == std::optional<int>(1));
  CHECK_FALSE(ch.try_receive());
  for (int i = 0; i < 100; ++i) {
    REQUIRE(ch.try_send(i));
    REQUIRE(ch.try_receive() == std::optional<int>(i));
  }
}

TEST_CASE("Channel spsc of capacity 1 works", "[channel]") {
  const std::string name = unique_name("cap1s");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(Topology::spsc, 1));
  for (int i = 0; i < 100; ++i) {
    REQUIRE(ch.try_send(i));
    REQUIRE(ch.try_receive() == std::optional<int>(i));
  }
}

TEST_CASE("Channel send_for on a full channel returns false after the timeout", "[channel][timing]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  const auto spin = GENERATE(std::chrono::nanoseconds(0), sleet::kDefaultSpin,
                             std::chrono::nanoseconds(5ms));
  CAPTURE(topo_name(topo), spin.count());
  const std::string name = unique_name("sendfor");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, 4));
  ch.set_spin(spin);
  CHECK(ch.send_for(1, 1s));  // room: returns at once
  fill(ch, 2);
  for (const auto timeout : {1ms, 30ms}) {
    const auto t0 = Clock::now();
    CHECK_FALSE(ch.send_for(3, timeout));
    const double ms = ms_since(t0);
    CHECK(ms >= std::chrono::duration<double, std::milli>(timeout).count());
    CHECK(ms < std::chrono::duration<double, std::milli>(timeout).count() + 750);
  }
  // Nothing was sent by the failed attempts.
  CHECK(ch.receive() == 1);
  while (auto v = ch.try_receive()) CHECK(*v == 2);
}

TEST_CASE("Channel receive_for on an empty channel returns nullopt after the timeout",
          "[channel][timing]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  const auto spin = GENERATE(std::chrono::nanoseconds(0), sleet::kDefaultSpin);
  CAPTURE(topo_name(topo), spin.count());
  const std::string name = unique_name("recvfor");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, 4));
  ch.set_spin(spin);
  for (const auto timeout : {0ms, 1ms, 30ms}) {
    const auto t0 = Clock::now();
    CHECK_FALSE(ch.receive_for(timeout));
    const double ms = ms_since(t0);
    CHECK(ms >= std::chrono::duration<double, std::milli>(timeout).count());
    CHECK(ms < std::chrono::duration<double, std::milli>(timeout).count() + 750);
  }
  ch.send(5);
  CHECK(ch.receive_for(0ms) == std::optional<int>(5));
  // An enormous timeout must not overflow the deadline.
  ch.send(6);
  CHECK(ch.receive_for(std::chrono::nanoseconds::max()) == std::optional<int>(6));
  CHECK(ch.send_for(7, std::chrono::nanoseconds::max()));
  CHECK(ch.try_receive() == std::optional<int>(7));
}

TEST_CASE("Channel send blocks until a receiver makes room", "[channel][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("block");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, opts(topo, 2));
  auto rx = Channel<int>::open(name);
  tx.set_spin(0ns);
  const int n = fill(tx, 0);
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    tx.send(99);  // blocks: the ring is full
    sent.store(true);
  });
  // Wait until the sender sleeps, then make room.
  CHECK(eventually([&] { return rx.stats().send_sleeps >= 1; }));
  CHECK_FALSE(sent.load());
  CHECK(rx.receive() == 0);
  CHECK(eventually([&] { return sent.load(); }));
  sender.join();
  CHECK(rx.stats().times_full >= 1);
  CHECK(rx.stats().send_wakes >= 1);
  for (int i = 1; i < n; ++i) CHECK(rx.receive() == 0);
  CHECK(rx.receive() == 99);
}

TEST_CASE("Channel delivers 20000 messages between two threads in order", "[channel][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  constexpr int kCount = 20000;
  const std::string name = unique_name("flow");
  Cleanup cleanup(name);
  auto tx = Channel<std::uint64_t>::create(name, opts(topo, 64));
  auto rx = Channel<std::uint64_t>::open(name);
  const auto t0 = Clock::now();
  std::atomic<bool> send_failed{false};
  std::thread sender([&] {
    for (std::uint64_t i = 0; i < kCount; ++i) {
      if (!tx.send_for(sleet::test::mix(i), 2s)) {
        send_failed.store(true);
        return;
      }
    }
  });
  int got = 0;
  bool in_order = true;
  for (; got < kCount; ++got) {
    const auto v = rx.receive_for(2s);
    if (!v) break;
    in_order &= *v == sleet::test::mix(static_cast<std::uint64_t>(got));
  }
  sender.join();
  CHECK_FALSE(send_failed.load());
  CHECK(got == kCount);
  CHECK(in_order);
  const auto s = rx.stats();
  CHECK(s.sent == kCount);
  CHECK(s.received == kCount);
  CHECK(s.queued == 0);
  CHECK(ms_since(t0) < 3000);
}

TEST_CASE("Channel close: queued messages drain, then errc::closed", "[channel][close]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("close");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, opts(topo, 8));
  auto rx = Channel<int>::open(name);
  tx.send(1);
  tx.send(2);
  tx.send(3);
  tx.close();
  CHECK(tx.closed());
  CHECK(rx.closed());  // shared state
  tx.close();          // idempotent
  CHECK(rx.receive() == 1);
  CHECK(rx.try_receive() == std::optional<int>(2));
  CHECK(rx.receive_for(1s) == std::optional<int>(3));
  const auto t0 = Clock::now();
  CHECK_SLEET_ERROR(rx.receive(), errc::closed, name);
  CHECK_SLEET_ERROR(rx.try_receive(), errc::closed, name);
  CHECK_SLEET_ERROR(rx.receive_for(10s), errc::closed, name);
  CHECK(ms_since(t0) < 1000);  // no waiting on a closed, drained channel
  CHECK_SLEET_ERROR(tx.send(4), errc::closed, name);
  CHECK_SLEET_ERROR(tx.try_send(4), errc::closed, name);
  CHECK_SLEET_ERROR(tx.send_for(4, 10s), errc::closed, name);
  CHECK(ms_since(t0) < 1000);
  // A channel opened after close() sees it closed too.
  auto late = Channel<int>::open(name);
  CHECK(late.closed());
  CHECK_SLEET_ERROR(late.try_send(5), errc::closed, name);
}

TEST_CASE("Channel close wakes a receiver blocked in another thread", "[channel][close][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  const auto spin = GENERATE(std::chrono::nanoseconds(0), sleet::kDefaultSpin);
  CAPTURE(topo_name(topo), spin.count());
  const std::string name = unique_name("closewake");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, 8));
  auto rx = Channel<int>::open(name);
  rx.set_spin(spin);
  std::atomic<int> outcome{0};  // 1: closed, 2: a value, 3: another error
  std::thread receiver([&] {
    try {
      (void)rx.receive();
      outcome.store(2);
    } catch (const sleet::Error& e) {
      outcome.store(e.code() == errc::closed ? 1 : 3);
    }
  });
  CHECK(eventually([&] { return ch.stats().receive_sleeps >= 1; }));
  CHECK(outcome.load() == 0);
  const auto t0 = Clock::now();
  ch.close();
  const bool woke = eventually([&] { return outcome.load() != 0; });
  CHECK(woke);
  CHECK(ms_since(t0) < 3000);
  // If the wake-up was lost, keep nudging so that the thread can be joined.
  while (outcome.load() == 0) {
    ch.close();
    std::this_thread::sleep_for(1ms);
  }
  receiver.join();
  CHECK(outcome.load() == 1);
}

TEST_CASE("Channel close wakes a sender blocked on a full channel", "[channel][close][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("closesend");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, 2));
  auto tx = Channel<int>::open(name);
  tx.set_spin(0ns);
  fill(tx, 1);
  std::atomic<int> outcome{0};  // 1: closed, 2: sent, 3: another error
  std::thread sender([&] {
    try {
      tx.send(2);
      outcome.store(2);
    } catch (const sleet::Error& e) {
      outcome.store(e.code() == errc::closed ? 1 : 3);
    }
  });
  CHECK(eventually([&] { return ch.stats().send_sleeps >= 1; }));
  ch.close();
  CHECK(eventually([&] { return outcome.load() != 0; }));
  while (outcome.load() == 0) {
    ch.close();
    std::this_thread::sleep_for(1ms);
  }
  sender.join();
  CHECK(outcome.load() == 1);
  // What was queued before close still drains.
  CHECK(ch.receive() == 1);
}

// close() is two-phase: a send that returned normally is never stranded,
// and every later one throws errc::closed. Close lands at a different
// point of a busy sender in every round.
TEST_CASE("Channel close racing with a sender strands nothing", "[channel][close][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  for (int round = 0; round < 40; ++round) {
    CAPTURE(round);
    const std::string name = unique_name("closerace");
    Cleanup cleanup(name);
    auto closer = Channel<std::uint64_t>::create(name, opts(topo, 16));
    auto tx = Channel<std::uint64_t>::open(name);
    auto rx = Channel<std::uint64_t>::open(name);
    std::atomic<std::uint64_t> sent_ok{0};
    std::atomic<int> sender_end{0}, receiver_end{0};  // 1: closed, 2: timeout, 3: other
    std::uint64_t received = 0;
    bool in_order = true;
    std::thread sender([&] {
      try {
        for (std::uint64_t i = 0;; ++i) {
          if (!tx.send_for(i, 2s)) {
            sender_end.store(2);
            return;
          }
          sent_ok.fetch_add(1);
        }
      } catch (const sleet::Error& e) {
        sender_end.store(e.code() == errc::closed ? 1 : 3);
      }
    });
    std::thread receiver([&] {
      try {
        for (;;) {
          const auto v = rx.receive_for(2s);
          if (!v) {
            receiver_end.store(2);
            return;
          }
          in_order &= *v == received;
          ++received;
        }
      } catch (const sleet::Error& e) {
        receiver_end.store(e.code() == errc::closed ? 1 : 3);
      }
    });
    const std::uint64_t close_after = static_cast<std::uint64_t>(round) * 7;
    eventually([&] { return sent_ok.load() >= close_after; }, 2000ms);
    closer.close();
    sender.join();
    receiver.join();
    CHECK(sender_end.load() == 1);
    CHECK(receiver_end.load() == 1);
    CHECK(received == sent_ok.load());
    CHECK(in_order);
  }
}

TEST_CASE("Channel stats count sent, received, queued, times_full and sleeps", "[channel][stats]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("stats");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, 4));
  ch.set_spin(0ns);
  auto s = ch.stats();
  CHECK(s.sent == 0);
  CHECK(s.received == 0);
  CHECK(s.queued == 0);
  CHECK(s.times_full == 0);
  CHECK(s.send_sleeps == 0);
  CHECK(s.receive_sleeps == 0);
  CHECK(s.send_wakes == 0);
  CHECK(s.receive_wakes == 0);

  ch.send(1);
  ch.send(2);
  ch.send(3);
  s = ch.stats();
  CHECK(s.sent == 3);
  CHECK(s.received == 0);
  CHECK(s.queued == 3);
  CHECK(ch.receive() == 1);
  s = ch.stats();
  CHECK(s.received == 1);
  CHECK(s.queued == 2);
  CHECK(ch.size_approx() == 2);

  const int more = fill(ch, 9);
  CHECK_FALSE(ch.send_for(10, 5ms));
  s = ch.stats();
  CHECK(s.sent == static_cast<std::uint64_t>(3 + more));
  CHECK(s.times_full == 2);  // the try_send that ended fill(), and the send_for
  CHECK(s.send_sleeps >= 1);
  CHECK(s.receive_sleeps == 0);

  while (ch.try_receive()) {
  }
  CHECK_FALSE(ch.receive_for(5ms));
  s = ch.stats();
  CHECK(s.received == s.sent);
  CHECK(s.queued == 0);
  CHECK(s.receive_sleeps >= 1);

  // Every object of the channel sees the same numbers.
  auto other = Channel<int>::open(name);
  const auto o = other.stats();
  CHECK(o.sent == s.sent);
  CHECK(o.received == s.received);
  CHECK(o.times_full == s.times_full);
  CHECK(o.send_sleeps == s.send_sleeps);
  CHECK(o.receive_sleeps == s.receive_sleeps);
}

// ChannelStats::times_full is "sends that found the ring full": try_send()
// counts too, not only the blocking forms.
TEST_CASE("Channel stats: a try_send that finds the ring full counts in times_full",
          "[channel][stats]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("tryfull");
  Cleanup cleanup(name);
  auto ch = Channel<int>::create(name, opts(topo, 2));
  fill(ch, 1);  // ends with one try_send that found the ring full
  CHECK(ch.stats().times_full == 1);
  CHECK_FALSE(ch.try_send(1));
  CHECK_FALSE(ch.send_for(1, 1ms));
  CHECK(ch.stats().times_full == 3);
}

TEST_CASE("Channel spsc: a second sending object gets errc::busy", "[channel][spsc]") {
  const std::string name = unique_name("busy");
  Cleanup cleanup(name);
  std::optional<Channel<int>> first = Channel<int>::create(name, opts(Topology::spsc, 8));
  auto second = Channel<int>::open(name);
  first->send(1);  // first holds the sender role
  CHECK_SLEET_ERROR(second.send(2), errc::busy, name);
  CHECK_SLEET_ERROR(second.try_send(2), errc::busy, "another Channel object in this process");
  CHECK_SLEET_ERROR(second.send_for(2, 10ms), errc::busy, "sender");
  // The receiving role is separate: second may take it, then first may not.
  CHECK(second.receive() == 1);
  CHECK_SLEET_ERROR(first->try_receive(), errc::busy, name);
  CHECK_SLEET_ERROR(first->try_receive(), errc::busy, "receiver");
  first->send(3);
  // Destroying the holder frees the role.
  first.reset();
  second.send(4);
  CHECK(second.receive() == 3);
  CHECK(second.receive() == 4);
  // And a third object now meets second as the holder of both roles.
  auto third = Channel<int>::open(name);
  CHECK_SLEET_ERROR(third.try_send(5), errc::busy, name);
  CHECK_SLEET_ERROR(third.try_receive(), errc::busy, name);
}

TEST_CASE("Channel spsc: a moved Channel keeps its role", "[channel][spsc]") {
  const std::string name = unique_name("move");
  Cleanup cleanup(name);
  auto a = Channel<int>::create(name, opts(Topology::spsc, 8));
  a.send(1);
  Channel<int> b = std::move(a);
  b.send(2);  // same role holder: no busy
  Channel<int> c;
  c = std::move(b);
  c.send(3);
  for (int i = 1; i <= 3; ++i) CHECK(c.receive() == i);
}

TEST_CASE("Channel mpmc: several objects send and receive", "[channel][mpmc]") {
  const std::string name = unique_name("many");
  Cleanup cleanup(name);
  auto a = Channel<int>::create(name, opts(Topology::mpmc, 8));
  auto b = Channel<int>::open(name);
  auto c = Channel<int>::open(name);
  a.send(1);
  b.send(2);
  c.send(3);
  CHECK(c.receive() == 1);
  CHECK(b.receive() == 2);
  CHECK(a.receive() == 3);
}

TEST_CASE("Channel carries struct payloads", "[channel]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  {
    const std::string name = unique_name("point");
    Cleanup cleanup(name);
    auto tx = Channel<Point>::create(name, opts(topo, 4));
    auto rx = Channel<Point>::open(name);
    CHECK(tx.max_message_size() == sizeof(Point));
    for (int i = 0; i < 20; ++i) {
      Point p{i, i * 0.5, {}};
      std::snprintf(p.tag, sizeof p.tag, "pt-%d", i);
      tx.send(p);
      const Point q = rx.receive();
      CHECK(q == p);
    }
  }
  {
    const std::string name = unique_name("big");
    Cleanup cleanup(name);
    auto tx = Channel<Big>::create(name, opts(topo, 3));
    auto rx = Channel<Big>::open(name);
    CHECK(tx.max_message_size() == sizeof(Big));
    for (std::uint64_t i = 0; i < 10; ++i) {
      Big b{};
      b.seq = i;
      for (std::size_t k = 0; k < sizeof b.bytes; ++k) b.bytes[k] = static_cast<std::uint8_t>(i + k);
      tx.send(b);
      const Big got = rx.receive();
      CHECK(got.seq == i);
      CHECK(std::memcmp(got.bytes, b.bytes, sizeof b.bytes) == 0);
    }
  }
  {
    // A larger max_message_size than the type needs is fine.
    const std::string name = unique_name("roomy");
    Cleanup cleanup(name);
    ChannelOptions o = opts(topo, 4);
    o.max_message_size = 512;
    auto ch = Channel<Point>::create(name, o);
    CHECK(ch.max_message_size() == 512);
    const Point p{7, 1.25, "roomy"};
    ch.send(p);
    CHECK(ch.receive() == p);
  }
}

TEST_CASE("Channel set_spin changes this object's budget only", "[channel][spin]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const std::string name = unique_name("spin");
  Cleanup cleanup(name);
  ChannelOptions o = opts(topo, 4);
  o.spin = 2ms;
  auto ch = Channel<int>::create(name, o);
  CHECK(ch.spin() == 2ms);
  auto other = Channel<int>::open(name);
  CHECK(other.spin() == 2ms);  // the segment's default
  ch.set_spin(0ns);
  CHECK(ch.spin() == 0ns);
  CHECK(other.spin() == 2ms);

  // Spin 0: an empty receive_for goes to sleep.
  const auto before = ch.stats().receive_sleeps;
  CHECK_FALSE(ch.receive_for(10ms));
  CHECK(ch.stats().receive_sleeps > before);

  // A spin budget longer than the timeout: it never sleeps.
  ch.set_spin(10s);
  CHECK(ch.spin() == 10s);
  const auto mid = ch.stats().receive_sleeps;
  const auto t0 = Clock::now();
  CHECK_FALSE(ch.receive_for(20ms));
  CHECK(ms_since(t0) >= 20);
  CHECK(ms_since(t0) < 2000);
  CHECK(ch.stats().receive_sleeps == mid);
  // And a message sent meanwhile is picked up by the spin.
  ch.send(1);
  CHECK(ch.receive_for(20ms) == std::optional<int>(1));
}

TEST_CASE("Channel open_or_create from two threads at once yields one channel",
          "[channel][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  for (int round = 0; round < 20; ++round) {
    const std::string name = unique_name("race");
    Cleanup cleanup(name);
    std::optional<Channel<int>> a, b;
    std::atomic<int> ready{0};
    std::thread other([&] {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      b = Channel<int>::open_or_create(name, opts(topo, 8));
    });
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    a = Channel<int>::open_or_create(name, opts(topo, 8));
    other.join();
    REQUIRE(a);
    REQUIRE(b);
    a->send(round);
    CHECK(b->receive() == round);
  }
}
