// Pipe<T> in one process: a connected pair of ends, each sending to and
// receiving from the other with the whole Channel family, close from either
// end, passive mode on an end, kind and type checks, and end ownership.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace st = sleet::test;
using namespace std::chrono_literals;
using sleet::End;
using sleet::Pipe;

namespace {

using sleet::test::thrown_error;
using sleet::test::contains;
using sleet::test::tname;




template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout = 2000ms) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("pipe: create makes a connected pair; each end talks to the other", "[pipe]") {
  const auto name = st::unique_name("pipe.pair");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<std::string>::create(name, {.capacity = 16});
  CHECK(a.which() == End::a);
  CHECK(b.which() == End::b);
  CHECK(a.name() == name);
  CHECK(b.name() == name);

  a.send("to b");
  b.send("to a");
  CHECK(b.receive() == "to b");
  CHECK(a.receive() == "to a");
  // Nothing echoes back to the sender's own end.
  CHECK_FALSE(a.try_receive().has_value());
  CHECK_FALSE(b.try_receive().has_value());

  // Interleaved traffic in both directions keeps each direction's order.
  for (int i = 0; i < 10; ++i) {
    a.send("a" + std::to_string(i));
    b.send("b" + std::to_string(i));
  }
  for (int i = 0; i < 10; ++i) {
    CHECK(b.receive() == "a" + std::to_string(i));
    CHECK(a.receive() == "b" + std::to_string(i));
  }
  CHECK(a.send_stats().sent == 11);
  CHECK(a.receive_stats().received == 11);
  CHECK(b.send_stats().sent == 11);
  CHECK(b.receive_stats().received == 11);
}

TEST_CASE("pipe: the full send/receive family on both ends", "[pipe]") {
  const auto name = st::unique_name("pipe.family");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<int>::create(name, {.capacity = 4});
  for (auto* ends : {&a, &b}) {
    auto& tx = *ends;
    auto& rx = ends == &a ? b : a;
    INFO("sender end " << (tx.which() == End::a ? "a" : "b"));
    // Empty: try_receive is nullopt, receive_for times out within bounds.
    CHECK_FALSE(rx.try_receive().has_value());
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(rx.receive_for(20ms).has_value());
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 20ms);
    CHECK(waited < 1s);
    // Fill: try_send turns false, send_for times out.
    int n = 0;
    while (n < 1000 && tx.try_send(n)) ++n;
    CHECK(n >= 4);
    REQUIRE(n < 1000);
    CHECK_FALSE(tx.send_for(-1, 20ms));
    // Drain with each receive form; order is kept.
    for (int i = 0; i < n; ++i) {
      std::optional<int> got;
      switch (i % 3) {
        case 0: got = rx.receive(); break;
        case 1: got = rx.try_receive(); break;
        default: got = rx.receive_for(1s); break;
      }
      REQUIRE(got);
      CHECK(*got == i);
    }
    CHECK_FALSE(rx.try_receive().has_value());
    // send and send_for with room.
    tx.send(100);
    CHECK(tx.send_for(101, 1s));
    CHECK(rx.receive() == 100);
    CHECK(rx.receive() == 101);
  }
}

TEST_CASE("pipe: a blocked receive on one end wakes for the other end's send", "[pipe]") {
  const auto name = st::unique_name("pipe.block");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<std::string>::create(name, {.capacity = 4});
  auto fut = std::async(std::launch::async, [&b] { return b.receive(); });
  std::this_thread::sleep_for(20ms);
  a.send("wake up");
  REQUIRE(fut.wait_for(2s) == std::future_status::ready);
  CHECK(fut.get() == "wake up");
}

TEST_CASE("pipe: close from one end ends the other's receive with errc::closed", "[pipe]") {
  const auto name = st::unique_name("pipe.close");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<int>::create(name, {.capacity = 8});
  SECTION("queued messages are drained first") {
    a.send(1);
    a.send(2);
    a.close();
    CHECK(a.closed());
    CHECK(b.closed());
    CHECK(b.receive() == 1);
    CHECK(b.try_receive() == 2);
    auto err = thrown_error([&] { (void)b.receive(); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::closed);
    CHECK(contains(err->what(), name));
    err = thrown_error([&] { (void)b.try_receive(); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::closed);
    // Both directions are closed, for both ends.
    err = thrown_error([&] { b.send(3); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::closed);
    err = thrown_error([&] { (void)a.receive_for(10ms); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::closed);
    err = thrown_error([&] { (void)a.try_send(4); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::closed);
  }
  SECTION("close from a ends b's blocked receive") {
    auto fut = std::async(std::launch::async, [&b] {
      try {
        (void)b.receive();
        return std::string("received");
      } catch (const sleet::Error& e) {
        return std::string(sleet::to_string(e.value()));
      }
    });
    std::this_thread::sleep_for(20ms);
    a.close();
    REQUIRE(fut.wait_for(2s) == std::future_status::ready);
    CHECK(fut.get() == "closed");
  }
  SECTION("close from b ends a's blocked receive") {
    auto fut = std::async(std::launch::async, [&a] {
      try {
        (void)a.receive();
        return std::string("received");
      } catch (const sleet::Error& e) {
        return std::string(sleet::to_string(e.value()));
      }
    });
    std::this_thread::sleep_for(20ms);
    b.close();
    REQUIRE(fut.wait_for(2s) == std::future_status::ready);
    CHECK(fut.get() == "closed");
  }
}

TEST_CASE("pipe: range-for over an end receives until the pipe is closed", "[pipe]") {
  const auto name = st::unique_name("pipe.range");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<std::string>::create(name, {.capacity = 64});
  for (int i = 0; i < 20; ++i) a.send(std::to_string(i));
  a.close();
  std::vector<std::string> got;
  for (const std::string& s : b) got.push_back(s);
  REQUIRE(got.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK(got[i] == std::to_string(i));
}

TEST_CASE("pipe: passive mode on a pipe end", "[pipe][passive]") {
  const auto name = st::unique_name("pipe.passive");
  st::Cleanup cleanup(name);
  std::mutex m;
  std::vector<int> seen;
  auto [a, b] = Pipe<int>::create(name, {.capacity = 16});
  b.on_receive(
      [&](const int& v) {
        std::lock_guard<std::mutex> lock(m);
        seen.push_back(v);
      },
      [](const int& v) { return v >= 0; });
  for (int i = -5; i < 20; ++i) a.send(i);
  REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> lock(m);
    return seen.size() == 20 && b.unhandled() == 5;
  }));
  {
    std::lock_guard<std::mutex> lock(m);
    for (int i = 0; i < 20; ++i) CHECK(seen[i] == i);
  }
  // The passive end still sends actively, and receive() on it is wrong_mode.
  b.send(42);
  CHECK(a.receive_for(1s) == 42);
  auto err = thrown_error([&] { (void)b.try_receive(); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::wrong_mode);
  // close() drains the passive end.
  a.send(99);
  b.close();
  std::lock_guard<std::mutex> lock(m);
  CHECK(seen.back() == 99);
}

TEST_CASE("pipe: Pipe::open attaches either end of an existing pipe", "[pipe]") {
  const auto name = st::unique_name("pipe.open");
  st::Cleanup cleanup(name);
  { auto pair = Pipe<std::string>::create(name, {.capacity = 8}); }  // ends released, pipe stays
  auto b = Pipe<std::string>::open(name, End::b);
  auto a = Pipe<std::string>::open(name, End::a);
  CHECK(a.which() == End::a);
  CHECK(b.which() == End::b);
  a.send("ping");
  CHECK(b.receive() == "ping");
  b.send("pong");
  CHECK(a.receive() == "pong");

  // A second live object on the same end is refused (each direction is spsc).
  auto a2 = Pipe<std::string>::open(name, End::a);
  auto err = thrown_error([&] { a2.send("x"); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::busy);
  err = thrown_error([&] { (void)a2.try_receive(); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::busy);

  CHECK(Pipe<std::string>::remove(name));
  CHECK_FALSE(Pipe<std::string>::remove(name));
  auto missing = thrown_error([&] { (void)Pipe<std::string>::open(name, End::a); });
  REQUIRE(missing);
  CHECK(missing->code() == sleet::errc::not_found);
}

TEST_CASE("pipe: kind and type checks", "[pipe]") {
  const auto name = st::unique_name("pipe.kind");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<std::string>::create(name);

  SECTION("a Channel<T> on a pipe's name is kind_mismatch") {
    auto err = thrown_error([&] { (void)sleet::Channel<std::string>::open(name); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::kind_mismatch);
    CHECK(contains(err->what(), name));
    err = thrown_error([&] { (void)sleet::get_channel<std::string>(name); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::kind_mismatch);
  }
  SECTION("a Pipe<T> on a channel's name is kind_mismatch") {
    const auto ch_name = st::unique_name("pipe.kindch");
    st::Cleanup ch_cleanup(ch_name);
    auto ch = sleet::Channel<std::string>::create(ch_name);
    auto err = thrown_error([&] { (void)Pipe<std::string>::open(ch_name, End::a); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::kind_mismatch);
    CHECK(contains(err->what(), ch_name));
  }
  SECTION("Pipe::open with another type is type_mismatch naming both types") {
    auto err = thrown_error([&] { (void)Pipe<std::vector<char>>::open(name, End::b); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::type_mismatch);
    CHECK(contains(err->what(), name));
    CHECK(contains(err->what(), tname<std::string>()));
    CHECK(contains(err->what(), tname<std::vector<char>>()));
    err = thrown_error([&] { (void)Pipe<int>::open(name, End::a); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::type_mismatch);
  }
  SECTION("create on a taken name is already_exists") {
    auto err = thrown_error([&] { (void)Pipe<std::string>::create(name); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::already_exists);
  }
}

TEST_CASE("pipe: too_large names the pipe and its direction; nothing is sent", "[pipe]") {
  const auto name = st::unique_name("pipe.errors");
  st::Cleanup cleanup(name);
  auto [a, b] = Pipe<std::string>::create(name, {.capacity = 4, .max_message_size = 64});
  auto err = thrown_error([&] { a.send(std::string(100, 'x')); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::too_large);
  CHECK(contains(err->what(), name));
  CHECK(contains(err->what(), "a->b"));
  CHECK(contains(err->what(), "108"));
  CHECK(contains(err->what(), "64"));
  err = thrown_error([&] { (void)b.try_send(std::string(57, 'y')); });  // 65 bytes encoded
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::too_large);
  CHECK(contains(err->what(), "b->a"));
  CHECK(contains(err->what(), "65"));
  a.send("fits");
  CHECK(b.receive() == "fits");
  CHECK_FALSE(b.try_receive().has_value());
  CHECK_FALSE(a.try_receive().has_value());
  CHECK(a.send_stats().sent == 1);
}
