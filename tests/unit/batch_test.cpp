// send_batch / try_send_batch / receive_batch / receive_batch_for on spsc,
// mpmc and Pipe, for a fixed-size type, a trivially copyable struct,
// std::string (size known: encoded in place) and a cereal struct (size
// unknown): order and values, `max`, exact counts on a nearly full ring,
// empty, closed and drained, too_large in the middle of a batch, an
// exception from the handler, and the futex wake-ups a batch costs.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "ipc/ipc_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::errc;
using sleet::Pipe;
using sleet::Topology;
using sleet::test::Cleanup;
using sleet::test::unique_name;
using Clock = std::chrono::steady_clock;

using sleet::test::topo_name;

struct Point {
  std::int32_t x;
  double y;
  char tag[12];
  bool operator==(const Point& o) const {
    return x == o.x && y == o.y && std::memcmp(tag, o.tag, sizeof tag) == 0;
  }
};

struct Labelled {  // cereal, no encoded_size()
  std::string label;
  std::int32_t id = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, id);
  }
  bool operator==(const Labelled&) const = default;
};

// Message i of a test; every value of one type has the same encoded size,
// so counts of what fits are exact.
template <class T>
T make(std::uint64_t i);
template <>
int make<int>(std::uint64_t i) {
  return static_cast<int>(i * 7 + 1);
}
template <>
Point make<Point>(std::uint64_t i) {
  Point p{static_cast<std::int32_t>(i), static_cast<double>(i) * 0.5, {}};
  std::snprintf(p.tag, sizeof p.tag, "p%06llu", static_cast<unsigned long long>(i % 1000000));
  return p;
}
template <>
std::string make<std::string>(std::uint64_t i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "s%06llu", static_cast<unsigned long long>(i % 1000000));
  return buf;
}
template <>
Labelled make<Labelled>(std::uint64_t i) {
  return Labelled{make<std::string>(i), static_cast<std::int32_t>(i)};
}

template <class T>
std::vector<T> make_range(std::uint64_t first, std::uint64_t n) {
  std::vector<T> v;
  for (std::uint64_t i = 0; i < n; ++i) v.push_back(make<T>(first + i));
  return v;
}

// Sends one by one until the ring is full; returns how many fit.
template <class T>
std::uint64_t fill(Channel<T>& ch, std::uint64_t first) {
  std::uint64_t n = 0;
  while (ch.try_send(make<T>(first + n))) {
    ++n;
    REQUIRE(n < 1'000'000);
  }
  return n;
}

// Collects what receive_batch hands over.
template <class T>
struct Collect {
  std::vector<T>* out;
  void operator()(const T& v) const { out->push_back(v); }
};

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

}  // namespace

TEMPLATE_TEST_CASE("batch: send_batch then receive_batch keep order and values; max is honoured",
                   "[batch]", int, Point, std::string, Labelled) {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("batch.order");
  Cleanup cleanup(name);
  auto tx = Channel<TestType>::create(name, {.topology = topo, .capacity = 128});
  auto rx = Channel<TestType>::open(name);
  const auto values = make_range<TestType>(0, 100);
  tx.send_batch(values);
  CHECK(tx.stats().sent == 100);
  CHECK(tx.size_approx() == 100);

  std::vector<TestType> got;
  CHECK(rx.receive_batch(Collect<TestType>{&got}, 7) == 7);
  REQUIRE(got.size() == 7);
  CHECK(std::vector<TestType>(values.begin(), values.begin() + 7) == got);
  CHECK(rx.stats().received == 7);
  CHECK(rx.receive_batch(Collect<TestType>{&got}, 0) == 0);  // max 0 takes nothing
  CHECK(got.size() == 7);
  CHECK(rx.receive_batch(Collect<TestType>{&got}) == 93);
  CHECK(got == values);
  // Empty: 0, and fn is not called.
  int calls = 0;
  CHECK(rx.receive_batch([&](const TestType&) { ++calls; }) == 0);
  CHECK(rx.receive_batch_for([&](const TestType&) { ++calls; }, kAll, 1ms) == 0);
  CHECK(calls == 0);
  const auto s = rx.stats();
  CHECK(s.sent == 100);
  CHECK(s.received == 100);
  CHECK(s.queued == 0);

  // Batches mixed with single sends and receives, several laps.
  std::uint64_t next_send = 100, next_recv = 100;
  for (int round = 0; round < 50; ++round) {
    const auto b = make_range<TestType>(next_send, 1 + round % 17);
    tx.send_batch(b);
    next_send += b.size();
    tx.send(make<TestType>(next_send++));
    const std::size_t max = 1 + static_cast<std::size_t>(round % 5);
    std::vector<TestType> part;
    const std::size_t n = rx.receive_batch(Collect<TestType>{&part}, max);
    REQUIRE(n == std::min<std::size_t>(max, next_send - next_recv));
    REQUIRE(part.size() == n);
    for (const auto& v : part) REQUIRE(v == make<TestType>(next_recv++));
    if (round % 2 == 0 && next_recv < next_send) REQUIRE(rx.receive() == make<TestType>(next_recv++));
    if (round % 3 == 2) {  // drain, so the sender never blocks on its own thread
      std::vector<TestType> all;
      REQUIRE(rx.receive_batch(Collect<TestType>{&all}) == next_send - next_recv);
      for (const auto& v : all) REQUIRE(v == make<TestType>(next_recv++));
    }
  }
  std::vector<TestType> rest;
  CHECK(rx.receive_batch(Collect<TestType>{&rest}) == next_send - next_recv);
  for (const auto& v : rest) REQUIRE(v == make<TestType>(next_recv++));
  CHECK(next_recv == next_send);
  CHECK(rx.stats().received == next_send);
}

TEMPLATE_TEST_CASE("batch: try_send_batch on a nearly full ring sends exactly what fits",
                   "[batch][full]", int, Point, std::string, Labelled) {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  // How many fit in an empty ring, measured on a fresh channel.
  std::uint64_t fits = 0;
  {
    const auto probe = unique_name("batch.probe");
    Cleanup cleanup(probe);
    auto ch = Channel<TestType>::create(probe, {.topology = topo, .capacity = 8});
    fits = fill(ch, 0);
  }
  REQUIRE(fits >= 8);
  const auto name = unique_name("batch.full");
  Cleanup cleanup(name);
  auto tx = Channel<TestType>::create(name, {.topology = topo, .capacity = 8});
  auto rx = Channel<TestType>::open(name);
  const auto head = make_range<TestType>(0, fits - 3);
  CHECK(tx.try_send_batch(head) == fits - 3);
  const auto batch = make_range<TestType>(fits - 3, 10);
  CHECK(tx.try_send_batch(batch) == 3);
  CHECK(tx.stats().times_full == 1);
  CHECK(tx.try_send_batch(batch) == 0);  // full: nothing
  CHECK(tx.stats().times_full == 2);
  CHECK(tx.try_send_batch(std::span<const TestType>()) == 0);
  CHECK(tx.stats().sent == fits);

  std::vector<TestType> got;
  CHECK(rx.receive_batch(Collect<TestType>{&got}) == fits);
  CHECK(got == make_range<TestType>(0, fits));
  // Room again: the rest of the batch goes in.
  CHECK(tx.try_send_batch(std::span<const TestType>(batch).subspan(3)) == 7);
  got.clear();
  CHECK(rx.receive_batch(Collect<TestType>{&got}) == 7);
  CHECK(got == make_range<TestType>(fits, 7));
}

TEMPLATE_TEST_CASE("batch: closed and drained is errc::closed; what was queued drains first",
                   "[batch][close]", int, std::string) {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("batch.close");
  Cleanup cleanup(name);
  auto tx = Channel<TestType>::create(name, {.topology = topo, .capacity = 16});
  auto rx = Channel<TestType>::open(name);
  const auto values = make_range<TestType>(0, 5);
  tx.send_batch(values);
  tx.close();
  CHECK_SLEET_ERROR(tx.send_batch(values), errc::closed, name);
  CHECK_SLEET_ERROR(tx.try_send_batch(values), errc::closed, "closed");
  std::vector<TestType> got;
  CHECK(rx.receive_batch(Collect<TestType>{&got}, 2) == 2);
  CHECK(rx.receive_batch_for(Collect<TestType>{&got}, kAll, 1s) == 3);
  CHECK(got == values);
  int calls = 0;
  auto count = [&](const TestType&) { ++calls; };
  CHECK_SLEET_ERROR(rx.receive_batch(count), errc::closed, name);
  CHECK_SLEET_ERROR(rx.receive_batch(count, 1), errc::closed, "closed");
  CHECK_SLEET_ERROR(rx.receive_batch_for(count, kAll, 10ms), errc::closed, name);
  CHECK(calls == 0);
  CHECK(rx.stats().sent == 5);
  CHECK(rx.stats().received == 5);
}

TEST_CASE("batch: a value too large in the middle of a batch is errc::too_large; those before it are sent",
          "[batch][too_large]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  const bool blocking = GENERATE(true, false);
  CAPTURE(topo_name(topo), blocking);
  SECTION("std::string (size known before encoding)") {
    const auto name = unique_name("batch.large");
    Cleanup cleanup(name);
    auto tx = Channel<std::string>::create(
        name, {.topology = topo, .capacity = 16, .max_message_size = 64});
    auto rx = Channel<std::string>::open(name);
    const std::vector<std::string> batch{"a", "b", std::string(100, 'x'), "c"};
    if (blocking) {
      CHECK_SLEET_ERROR(tx.send_batch(batch), errc::too_large,
                        "message of 108 bytes exceeds max_message_size 64");
    } else {
      CHECK_SLEET_ERROR(tx.try_send_batch(batch), errc::too_large,
                        "message of 108 bytes exceeds max_message_size 64");
    }
    std::vector<std::string> got;
    CHECK(rx.receive_batch(Collect<std::string>{&got}) == 2);
    CHECK(got == std::vector<std::string>{"a", "b"});
    CHECK(rx.stats().sent == 2);
    tx.send_batch(std::vector<std::string>{"d", "e"});
    got.clear();
    CHECK(rx.receive_batch(Collect<std::string>{&got}) == 2);
    CHECK(got == std::vector<std::string>{"d", "e"});
  }
  SECTION("a cereal struct (measured by encoding)") {
    const auto name = unique_name("batch.large");
    Cleanup cleanup(name);
    auto tx = Channel<Labelled>::create(
        name, {.topology = topo, .capacity = 16, .max_message_size = 64});
    auto rx = Channel<Labelled>::open(name);
    const std::vector<Labelled> batch{{"a", 1}, {"b", 2}, {std::string(100, 'x'), 3}, {"c", 4}};
    // 8 bytes of length + 100 characters + a 4-byte int.
    if (blocking) {
      CHECK_SLEET_ERROR(tx.send_batch(batch), errc::too_large,
                        "message of 112 bytes exceeds max_message_size 64");
    } else {
      CHECK_SLEET_ERROR(tx.try_send_batch(batch), errc::too_large,
                        "message of 112 bytes exceeds max_message_size 64");
    }
    std::vector<Labelled> got;
    CHECK(rx.receive_batch(Collect<Labelled>{&got}) == 2);
    CHECK(got == std::vector<Labelled>{{"a", 1}, {"b", 2}});
    tx.send(Labelled{"d", 5});
    got.clear();
    CHECK(rx.receive_batch(Collect<Labelled>{&got}) == 1);
    CHECK(got == std::vector<Labelled>{{"d", 5}});
  }
  SECTION("the first value too large: nothing is sent") {
    const auto name = unique_name("batch.large");
    Cleanup cleanup(name);
    auto tx = Channel<std::string>::create(
        name, {.topology = topo, .capacity = 16, .max_message_size = 64});
    auto rx = Channel<std::string>::open(name);
    const std::vector<std::string> batch{std::string(57, 'y'), "a"};
    CHECK_SLEET_ERROR(tx.send_batch(batch), errc::too_large, "message of 65 bytes");
    CHECK(rx.receive_batch([](const std::string&) {}) == 0);
    CHECK(rx.stats().sent == 0);
  }
}

TEST_CASE("batch: strings of many sizes (0..max) through several laps, in order", "[batch][laps]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("batch.sizes");
  Cleanup cleanup(name);
  constexpr std::size_t kMax = 200;
  auto tx = Channel<std::string>::create(
      name, {.topology = topo, .capacity = 8, .max_message_size = kMax});
  auto rx = Channel<std::string>::open(name);
  auto value = [](std::uint64_t i) {
    std::string s(i * 37 % (kMax - 8 + 1), '\0');  // encoded: 8 + size <= kMax
    for (std::size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>('a' + (i + k) % 26);
    return s;
  };
  std::uint64_t sent = 0, received = 0;
  sleet::test::Rng rng(42);
  while (sent < 5000) {
    std::vector<std::string> batch;
    const std::uint64_t k = 1 + rng.below(12);
    for (std::uint64_t j = 0; j < k; ++j) batch.push_back(value(sent + j));
    const std::size_t n = tx.try_send_batch(batch);
    sent += n;
    const std::size_t max = 1 + rng.below(10);
    const std::size_t got = rx.receive_batch(
        [&](const std::string& s) {
          if (s != value(received)) FAIL("message " << received << " differs");
          ++received;
        },
        max);
    REQUIRE(got <= max);
  }
  rx.receive_batch([&](const std::string& s) {
    if (s != value(received)) FAIL("message " << received << " differs");
    ++received;
  });
  CHECK(received == sent);
  CHECK(rx.stats().received == sent);
}

TEST_CASE("batch: send_batch blocks until all are sent; receive_batch_for waits for the first",
          "[batch][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  const auto spin = GENERATE(values<std::chrono::nanoseconds>({sleet::kDefaultSpin, 0ns}));
  CAPTURE(topo_name(topo), spin.count());
  const auto name = unique_name("batch.block");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, {.topology = topo, .capacity = 8, .spin = spin});
  auto rx = Channel<int>::open(name);
  constexpr int kN = 20000;
  std::vector<int> values(kN);
  for (int i = 0; i < kN; ++i) values[i] = i * 3 + 1;
  std::atomic<bool> receiver_ok{true};
  std::atomic<int> received{0};
  std::thread receiver([&] {
    int next = 0;
    const auto end = Clock::now() + 20s;
    std::size_t max = 1;
    while (next < kN && Clock::now() < end) {
      rx.receive_batch_for(
          [&](const int& v) {
            if (v != next * 3 + 1) receiver_ok.store(false);
            ++next;
          },
          max, 100ms);
      max = max % 13 + 1;
    }
    received.store(next);
  });
  for (int off = 0; off < kN; off += 1000) {
    tx.send_batch(std::span<const int>(values).subspan(off, 1000));
  }
  receiver.join();
  CHECK(received.load() == kN);
  CHECK(receiver_ok.load());
  CHECK(tx.stats().sent == kN);
  CHECK(tx.stats().times_full >= 1);

  // receive_batch_for on an empty channel returns 0 after the timeout.
  const auto t0 = Clock::now();
  CHECK(rx.receive_batch_for([](const int&) {}, kAll, 20ms) == 0);
  CHECK(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() >= 19.0);
}

TEST_CASE("batch: an exception from fn passes on; the message it was given counts as taken",
          "[batch]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("batch.throw");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, {.topology = topo, .capacity = 16});
  auto rx = Channel<int>::open(name);
  tx.send_batch(std::vector<int>{1, 2, 3, 4, 5});
  std::vector<int> got;
  CHECK_THROWS_WITH(rx.receive_batch([&](const int& v) {
    got.push_back(v);
    if (v == 3) throw std::runtime_error("boom");
  }),
                    "boom");
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK(rx.stats().received == 3);
  CHECK(rx.receive_batch(Collect<int>{&got}) == 2);
  CHECK(got == std::vector<int>{1, 2, 3, 4, 5});
}

TEST_CASE("batch: one receive_batch wakes a sleeping sender at most once", "[batch][wake]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("batch.swake");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, {.topology = topo, .capacity = 16, .spin = 0ns});
  auto rx = Channel<int>::open(name);
  const std::uint64_t n = fill(tx, 0);
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    tx.send(make<int>(n));  // blocks: the ring is full
    sent.store(true);
  });
  const auto end = Clock::now() + 5s;
  while (rx.stats().send_sleeps == 0 && Clock::now() < end) std::this_thread::sleep_for(1ms);
  REQUIRE(rx.stats().send_sleeps >= 1);
  const auto before = rx.stats();
  // The sender cannot add anything until the batch releases, so this takes
  // exactly the n queued messages.
  std::vector<int> got;
  CHECK(rx.receive_batch(Collect<int>{&got}) == n);
  CHECK(got == make_range<int>(0, n));
  sender.join();
  CHECK(sent.load());
  const auto after = rx.stats();
  INFO("send_wakes " << before.send_wakes << " -> " << after.send_wakes);
  CHECK(after.send_wakes - before.send_wakes <= 1);
  CHECK(after.receive_wakes == before.receive_wakes);  // nobody waited for data
  CHECK(rx.try_receive() == make<int>(n));
}

TEST_CASE("batch: one send_batch wakes a sleeping receiver at most once", "[batch][wake]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("batch.rwake");
  Cleanup cleanup(name);
  auto tx = Channel<int>::create(name, {.topology = topo, .capacity = 64, .spin = 0ns});
  auto rx = Channel<int>::open(name);
  std::atomic<std::size_t> first{0};
  std::vector<int> got;  // written by the receiver thread only until join()
  std::thread receiver([&] {
    first.store(rx.receive_batch_for(Collect<int>{&got}, kAll, 10s));
  });
  const auto end = Clock::now() + 5s;
  while (tx.stats().receive_sleeps == 0 && Clock::now() < end) std::this_thread::sleep_for(1ms);
  REQUIRE(tx.stats().receive_sleeps >= 1);
  const auto before = tx.stats();
  const auto values = make_range<int>(0, 50);
  tx.send_batch(values);
  receiver.join();
  const auto after = tx.stats();
  INFO("receive_wakes " << before.receive_wakes << " -> " << after.receive_wakes);
  CHECK(after.receive_wakes - before.receive_wakes <= 1);
  CHECK(after.send_wakes == before.send_wakes);
  if (topo == Topology::spsc) {
    // One publication: the receiver finds the whole batch at once.
    CHECK(first.load() == 50);
  } else {
    CHECK(first.load() >= 1);
  }
  rx.receive_batch(Collect<int>{&got});
  CHECK(got == values);

  // With nobody asleep, a batch issues no wake-up at all.
  const auto quiet = tx.stats();
  tx.send_batch(values);
  got.clear();
  CHECK(rx.receive_batch(Collect<int>{&got}) == 50);
  CHECK(got == values);
  CHECK(tx.stats().receive_wakes == quiet.receive_wakes);
  CHECK(tx.stats().send_wakes == quiet.send_wakes);
}

TEST_CASE("batch: Pipe ends batch in both directions", "[batch][pipe]") {
  const auto name = unique_name("batch.pipe");
  Cleanup cleanup(name);
  auto [a, b] = Pipe<std::string>::create(name, {.capacity = 32});
  const auto to_b = make_range<std::string>(0, 20);
  const auto to_a = make_range<std::string>(100, 20);
  a.send_batch(to_b);
  CHECK(b.try_send_batch(to_a) == 20);
  std::vector<std::string> got_b, got_a;
  CHECK(b.receive_batch(Collect<std::string>{&got_b}, 7) == 7);
  CHECK(b.receive_batch(Collect<std::string>{&got_b}) == 13);
  CHECK(got_b == to_b);
  CHECK(a.receive_batch_for(Collect<std::string>{&got_a}, kAll, 1s) == 20);
  CHECK(got_a == to_a);
  CHECK(a.receive_batch(Collect<std::string>{&got_a}) == 0);
  CHECK(a.send_stats().sent == 20);
  CHECK(a.receive_stats().received == 20);
  // Pipe of ints: exact count on a nearly full direction.
  const auto n2 = unique_name("batch.pipe");
  Cleanup c2(n2);
  auto [x, y] = Pipe<int>::create(n2, {.capacity = 4});
  std::uint64_t fits = 0;
  while (x.try_send(make<int>(fits))) ++fits;
  std::vector<int> got;
  CHECK(y.receive_batch(Collect<int>{&got}) == fits);
  CHECK(x.try_send_batch(make_range<int>(fits, fits + 5)) == fits);
  got.clear();
  CHECK(y.receive_batch(Collect<int>{&got}, 2) == 2);
  CHECK(y.receive_batch(Collect<int>{&got}) == fits - 2);
  CHECK(got == make_range<int>(fits, fits));
  // Close: drained, then errc::closed on both ends.
  a.send_batch(to_b);
  b.close();
  CHECK_SLEET_ERROR(a.send_batch(to_b), errc::closed, name);
  got_b.clear();
  CHECK(b.receive_batch(Collect<std::string>{&got_b}) == 20);
  CHECK_SLEET_ERROR(b.receive_batch(Collect<std::string>{&got_b}), errc::closed, name);
  CHECK_SLEET_ERROR(a.receive_batch(Collect<std::string>{&got_a}), errc::closed, name);
}

TEST_CASE("batch: an mpmc receive_batch takes at most one ring's worth per call",
          "[batch][mpmc]") {
  // fn refills the ring as fast as the batch drains it: without the bound
  // the call would never return.
  const auto name = unique_name("batch.bound");
  Cleanup cleanup(name);
  auto tx = Channel<std::uint64_t>::create(name, {.topology = Topology::mpmc, .capacity = 16});
  auto rx = Channel<std::uint64_t>::open(name);
  std::uint64_t next = 0;
  while (tx.try_send(next)) ++next;
  REQUIRE(next == 16);
  std::uint64_t expect = 0;
  const std::size_t n = rx.receive_batch([&](const std::uint64_t& v) {
    CHECK(v == expect++);
    REQUIRE(tx.try_send(next));
    ++next;
  });
  CHECK(n == 16);
  CHECK(rx.receive_batch([](const std::uint64_t&) {}, 5) == 5);
}
