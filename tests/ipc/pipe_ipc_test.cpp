// Pipe<T> across real processes: a forked child attaches End::b with
// Pipe::open and answers requests, actively or in passive mode; an end held
// by a live process is busy for another.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "support.hpp"

namespace st = sleet::test;
using namespace std::chrono_literals;
using sleet::End;
using sleet::Pipe;

namespace {

// Creates the pipe and keeps only end a in this process.
Pipe<std::string> create_end_a(const std::string& name, std::size_t capacity) {
  auto pair = Pipe<std::string>::create(name, {.capacity = capacity});
  return std::move(pair.first);
}

// Waits (bounded) until the pipe is closed; false on timeout.
bool wait_closed(const Pipe<std::string>& p, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!p.closed()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("pipe ipc: a forked child opens End::b and replies to requests", "[pipe][ipc]") {
  const auto name = st::unique_name("pipe.ipc");
  st::Cleanup cleanup(name);
  auto a = create_end_a(name, 64);
  st::Child child([&] {
    auto b = Pipe<std::string>::open(name, End::b);
    for (;;) {
      std::optional<std::string> req;
      try {
        req = b.receive_for(3s);
      } catch (const sleet::Error& e) {
        return e.code() == sleet::errc::closed ? 0 : 3;
      }
      if (!req) return 2;  // the parent went quiet
      b.send("re:" + *req + ":" + std::to_string(::getpid()));
    }
  });
  const std::string suffix = ":" + std::to_string(child.pid());
  // One at a time...
  for (int i = 0; i < 100; ++i) {
    a.send("q" + std::to_string(i));
    auto r = a.receive_for(2s);
    REQUIRE(r);
    CHECK(*r == "re:q" + std::to_string(i) + suffix);
  }
  // ...and pipelined (fewer than the capacity, so neither side can block the other).
  for (int i = 0; i < 40; ++i) a.send("p" + std::to_string(i));
  for (int i = 0; i < 40; ++i) {
    auto r = a.receive_for(2s);
    REQUIRE(r);
    CHECK(*r == "re:p" + std::to_string(i) + suffix);
  }
  a.close();
  CHECK(child.wait_for(3000ms) == 0);
  CHECK(a.send_stats().sent == 140);
  CHECK(a.receive_stats().received == 140);
}

TEST_CASE("pipe ipc: a child in passive mode on End::b replies from its handler",
          "[pipe][ipc][passive]") {
  const auto name = st::unique_name("pipe.ipcp");
  st::Cleanup cleanup(name);
  auto a = create_end_a(name, 256);
  st::Child child([&] {
    std::atomic<int> handled{0};
    auto b = Pipe<std::string>::open(name, End::b);
    b.on_receive([&](const std::string& s) {
      b.send("p:" + s);
      handled.fetch_add(1);
    });
    if (!wait_closed(b, 5000ms)) return 2;
    b.close();  // drains and joins the dispatcher
    return handled.load() == 100 ? 0 : 4;
  });
  for (int i = 0; i < 100; ++i) a.send(std::to_string(i));
  for (int i = 0; i < 100; ++i) {
    auto r = a.receive_for(2s);
    REQUIRE(r);
    CHECK(*r == "p:" + std::to_string(i));
  }
  a.close();
  CHECK(child.wait_for(3000ms) == 0);
}

TEST_CASE("pipe ipc: an end in use by a live process is busy for another process",
          "[pipe][ipc]") {
  const auto name = st::unique_name("pipe.ipcbusy");
  st::Cleanup cleanup(name);
  auto pair = Pipe<std::string>::create(name, {.capacity = 8});
  auto& b = pair.second;
  pair.first.send("hello");
  REQUIRE(b.receive() == "hello");  // this process now holds end b's receiving role
  const int parent = static_cast<int>(::getpid());
  st::Child child([&] {
    auto b2 = Pipe<std::string>::open(name, End::b);
    try {
      (void)b2.try_receive();
      return 2;
    } catch (const sleet::Error& e) {
      if (e.code() != sleet::errc::busy) return 3;
      if (std::string(e.what()).find(std::to_string(parent)) == std::string::npos) return 4;
    }
    return 0;
  });
  CHECK(child.wait_for(3000ms) == 0);
}
