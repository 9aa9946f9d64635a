// Deaths at chosen instants (#11, the fault-injection hook): a child arms
// one of the named points of sleet/detail/fault.hpp and dies exactly there
// (SIGKILL to itself); the survivors must go on as the failure model says.
// Compiled only with SLEET_FAULT_INJECTION (the sanitizer builds), so every
// case here runs under TSan and under ASan+UBSan in CI.
//
// Then a campaign: 2 producer and 2 consumer processes of an mpmc channel,
// each armed with a random point of the send or receive path and a random
// hit count, respawned as they die, scaled(1000) deaths; every message is
// checked (incarnation, sequence, checksum), nothing may be torn,
// duplicated, out of order or stranded, and what is missing is bounded by
// the deaths that could hold it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ipc/ipc_support.hpp"
#include "ipc/kill_board.hpp"
#include "sleet/channel.hpp"
#include "sleet/detail/fault.hpp"
#include "sleet/kv_store.hpp"
#include "sleet/mutex.hpp"
#include "sleet/topic.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Topology;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::patience;
using sleet::test::scaled;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
namespace fault = sleet::detail::fault;

namespace {

constexpr int kKilled = 128 + SIGKILL;  // Child::wait()'s code for a SIGKILLed child

// Runs `body` in a child armed to die at the nth hit of `point`; requires
// that it died there (not that it returned, crashed or hung).
template <class Body>
void die_at(const char* point, std::uint64_t nth, Body&& body) {
  Child child([&] {
    fault::arm(point, nth);
    body();
    return 1;  // the point was never reached
  });
  INFO("fault point " << point << ", hit " << nth);
  REQUIRE(child.wait_for(patience(10000ms)) == kKilled);
}

// Expects `ch.receive()` (blocking, no deadline) to end with errc::closed in
// a child, within a bound: a close whose closer died is finished by the waiter.
template <class T>
void receive_ends_closed(const std::string& name) {
  Child receiver([&] {
    auto ch = Channel<T>::open(name);
    for (;;) {
      try {
        (void)ch.receive();
      } catch (const sleet::Error& e) {
        return e.code() == sleet::errc::closed ? 0 : 2;
      }
    }
  });
  CHECK(receiver.wait_for(patience(5000ms)) == 0);
}

}  // namespace

TEST_CASE("fault: a sender dead at mpmc.claim or mpmc.commit holds nobody up; its slot is abandoned",
          "[fault][mpmc][recovery]") {
  const char* point = GENERATE("mpmc.claim", "mpmc.commit");
  const std::string name = unique_name("fault.mpmc.send");
  Cleanup cleanup(name);
  auto ch = Channel<std::uint64_t>::create(name, {.topology = Topology::mpmc, .capacity = 4});
  REQUIRE(ch.try_send(1));
  die_at(point, 1, [&] { Channel<std::uint64_t>::open(name).send(999); });
  REQUIRE(ch.try_send(2));
  REQUIRE(ch.try_send(3));
  for (std::uint64_t v = 1; v <= 3; ++v) CHECK(ch.receive_for(patience(5000ms)) == std::optional<std::uint64_t>(v));
  auto st = ch.stats();
  CHECK(st.abandoned == 1);
  CHECK(st.queued == 0);
  // Whole again: laps over the recovered slot.
  for (std::uint64_t v = 10; v < 30; ++v) {
    REQUIRE(ch.try_send(v));
    REQUIRE(ch.try_receive() == std::optional<std::uint64_t>(v));
  }
}

TEST_CASE("fault: a receiver dead at mpmc.take or mpmc.consume frees its slot; the message is counted lost",
          "[fault][mpmc][recovery]") {
  const char* point = GENERATE("mpmc.take", "mpmc.consume");
  const std::string name = unique_name("fault.mpmc.recv");
  Cleanup cleanup(name);
  auto ch = Channel<std::uint64_t>::create(name, {.topology = Topology::mpmc, .capacity = 2});
  REQUIRE(ch.try_send(1));
  REQUIRE(ch.try_send(2));
  die_at(point, 1, [&] { (void)Channel<std::uint64_t>::open(name).receive(); });
  // Ticket 2 needs the slot the dead receiver held: recovered by the sender.
  CHECK(ch.send_for(3, patience(5000ms)));
  CHECK(ch.stats().lost == 1);
  CHECK(ch.try_receive() == std::optional<std::uint64_t>(2));
  CHECK(ch.try_receive() == std::optional<std::uint64_t>(3));
  CHECK_FALSE(ch.try_receive());
}

TEST_CASE("fault: a closer dead half-way through close() still ends every blocking receive",
          "[fault][close][recovery]") {
  const Topology topology = GENERATE(Topology::spsc, Topology::mpmc);
  const char* point = GENERATE("close.begun", "close.closing", "mpmc.close");
  if (topology == Topology::spsc && std::string(point) == "mpmc.close") return;  // no ticket counter
  const std::string name = unique_name("fault.close");
  Cleanup cleanup(name);
  auto ch = Channel<std::uint64_t>::create(name, {.topology = topology, .capacity = 8});
  REQUIRE(ch.try_send(7));
  die_at(point, 1, [&] { Channel<std::uint64_t>::open(name).close(); });
  // Sends are refused once the dead closer closed the tickets (mpmc) or set
  // kClosing; an spsc closer dead at close.begun had refused nothing yet.
  const bool refused = topology == Topology::mpmc || std::string(point) != "close.begun";
  if (refused) {
    CHECK_SLEET_ERROR(ch.try_send(8), sleet::errc::closed, "closed");
  } else {
    CHECK(ch.try_send(8));
  }
  // What was sent before the close is still delivered, then closed.
  Child receiver([&] {
    auto r = Channel<std::uint64_t>::open(name);
    if (r.receive() != 7) return 3;
    if (!refused && r.receive() != 8) return 5;
    try {
      (void)r.receive();
    } catch (const sleet::Error& e) {
      return e.code() == sleet::errc::closed ? 0 : 2;
    }
    return 4;
  });
  CHECK(receiver.wait_for(patience(5000ms)) == 0);
  CHECK(ch.closed());
  receive_ends_closed<std::uint64_t>(name);
  ch.close();  // returns at once: nothing to wait for from the dead closer
}

TEST_CASE("fault: a receiver asleep before the close began is woken when its closer dies",
          "[fault][close][recovery]") {
  const Topology topology = GENERATE(Topology::spsc, Topology::mpmc);
  const std::string name = unique_name("fault.close.asleep");
  Cleanup cleanup(name);
  auto ch = Channel<std::uint64_t>::create(name, {.topology = topology, .capacity = 8});
  SharedMemory<std::atomic<int>> ready;
  Child asleep([&] {
    auto r = Channel<std::uint64_t>::open(name);
    r.set_spin(0ns);
    ready->store(1);
    try {
      (void)r.receive();  // asleep on an empty channel when the close begins
    } catch (const sleet::Error& e) {
      return e.code() == sleet::errc::closed ? 0 : 2;
    }
    return 4;
  });
  REQUIRE(sleet::test::eventually([&] { return ready->load() == 1; }, patience(5000ms)));
  std::this_thread::sleep_for(20ms);  // into its futex sleep (not needed for correctness)
  die_at("close.closing", 1, [&] { Channel<std::uint64_t>::open(name).close(); });
  CHECK(asleep.wait_for(patience(5000ms)) == 0);
}

TEST_CASE("fault: an spsc sender dead before publishing loses only its own unsent record",
          "[fault][spsc][recovery]") {
  const std::string name = unique_name("fault.spsc.publish");
  Cleanup cleanup(name);
  auto rx = Channel<std::uint64_t>::create(name, {.topology = Topology::spsc, .capacity = 8});
  die_at("spsc.publish", 3, [&] {
    auto tx = Channel<std::uint64_t>::open(name);
    for (std::uint64_t v = 1;; ++v) tx.send(v);  // 1 and 2 published, 3 written, never published
  });
  CHECK(rx.try_receive() == std::optional<std::uint64_t>(1));
  CHECK(rx.try_receive() == std::optional<std::uint64_t>(2));
  CHECK_FALSE(rx.try_receive());
  // The dead sender's role is taken over; the next record overwrites its
  // unpublished one.
  Child next([&] {
    Channel<std::uint64_t>::open(name).send(10);
    return 0;
  });
  REQUIRE(next.wait_for(patience(5000ms)) == 0);
  CHECK(rx.receive_for(patience(5000ms)) == std::optional<std::uint64_t>(10));
  CHECK_FALSE(rx.try_receive());
}

TEST_CASE("fault: an spsc receiver dead before releasing never made its messages delivered; the next gets them once",
          "[fault][spsc][recovery]") {
  const std::string name = unique_name("fault.spsc.release");
  Cleanup cleanup(name);
  auto tx = Channel<std::uint64_t>::create(name, {.topology = Topology::spsc, .capacity = 8});
  for (std::uint64_t v = 1; v <= 4; ++v) REQUIRE(tx.try_send(v));
  // The second receive() dies after reading 2 and before releasing it: its
  // receive never returned, so 2 is not delivered; 1 was (released).
  die_at("spsc.release", 2, [&] {
    auto rx = Channel<std::uint64_t>::open(name);
    for (;;) (void)rx.receive();
  });
  Child next([&] {
    auto rx = Channel<std::uint64_t>::open(name);
    for (std::uint64_t v = 2; v <= 4; ++v) {
      if (rx.receive_for(5s) != std::optional<std::uint64_t>(v)) return 3;
    }
    return rx.try_receive() ? 4 : 0;
  });
  CHECK(next.wait_for(patience(10000ms)) == 0);
}

TEST_CASE("fault: a publisher dead at topic.claim holds no subscriber up; a closer dead at topic.close ends them",
          "[fault][topic][recovery]") {
  const std::string name = unique_name("fault.topic");
  Cleanup cleanup(name);
  auto topic = sleet::Topic<std::uint64_t>::create(name, {.capacity = 8});
  auto sub = topic.subscribe();
  topic.publish(1);
  die_at("topic.claim", 1, [&] { sleet::Topic<std::uint64_t>::open(name).publish(99); });
  topic.publish(2);
  CHECK(sub.receive_for(patience(5000ms)) == std::optional<std::uint64_t>(1));
  CHECK(sub.receive_for(patience(5000ms)) == std::optional<std::uint64_t>(2));
  CHECK(topic.stats().abandoned == 1);
  die_at("topic.close", 1, [&] { sleet::Topic<std::uint64_t>::open(name).close(); });
  CHECK_SLEET_ERROR(sub.receive(), sleet::errc::closed, "closed");
}

TEST_CASE("fault: a store writer dead at kv.write, kv.claim or kv.erase leaves every key whole",
          "[fault][kv][recovery]") {
  const char* point = GENERATE("kv.write", "kv.claim", "kv.erase");
  const std::string name = unique_name("fault.kv");
  Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 64});
  kv.set("kept", std::string("old value"));
  kv.set("other", std::int64_t{42});
  die_at(point, 1, [&] {
    auto mine = sleet::KvStore::open(name);
    const std::string p(point);
    if (p == "kv.write") mine.set("kept", std::string("new value, never published"));
    if (p == "kv.claim") mine.set("fresh", std::string("never live"));
    if (p == "kv.erase") (void)mine.erase("kept");
  });
  // Readers never wait and never see a torn value: the dead writer's key
  // holds its old value (or, for an erase caught half-way, the old value
  // or nothing), the half-inserted key is absent, the others untouched.
  const auto kept = kv.get<std::string>("kept");
  if (std::string(point) == "kv.erase") {
    CHECK((!kept || *kept == "old value"));
  } else {
    CHECK(kept == std::optional<std::string>("old value"));
  }
  CHECK_FALSE(kv.contains("fresh"));
  CHECK(kv.get<std::int64_t>("other") == std::optional<std::int64_t>(42));
  // The next writer takes the dead writer's stripe lock over, repairs the
  // stripe (its count too), and every kind of write proceeds.
  kv.set("kept", std::string("after"));
  kv.set("fresh", std::string("live"));
  CHECK(kv.get<std::string>("kept") == std::optional<std::string>("after"));
  CHECK(kv.get<std::string>("fresh") == std::optional<std::string>("live"));
  CHECK(kv.size() == 3);
  CHECK(kv.erase("fresh"));
  CHECK(kv.size() == 2);
}

TEST_CASE("fault: a Mutex holder dead at lock.held: the next locker gets owner_died",
          "[fault][mutex][recovery]") {
  const std::string name = unique_name("fault.mutex");
  Cleanup cleanup(name);
  auto m = sleet::Mutex::create(name);
  die_at("lock.held", 1, [&] { (void)sleet::Mutex::open(name).lock(); });
  CHECK(m.lock() == sleet::LockResult::owner_died);
  CHECK(m.owner_died());
  m.unlock();
  CHECK(m.lock() == sleet::LockResult::acquired);
  m.unlock();
}

// ---- the campaign ----

namespace {

constexpr const char* kSendPoints[] = {"mpmc.claim", "mpmc.commit"};
constexpr const char* kReceivePoints[] = {"mpmc.take", "mpmc.consume"};
using Msg = sleet::test::StampedMsg<6>;  // 64 bytes
using Board = sleet::test::KillBoard<Msg, 4096, 4096>;

}  // namespace

TEST_CASE("fault campaign: mpmc producers and consumers dying at every send and receive point",
          "[fault][mpmc][recovery][stress]") {
  const std::string name = unique_name("fault.campaign");
  Cleanup cleanup(name);
  auto ch = Channel<Msg>::create(name, {.topology = Topology::mpmc, .capacity = 16});
  SharedMemory<Board> board;
  std::mt19937_64 rng(0x5EE7F00D);
  std::uint32_t next_inc = 0;

  auto spawn = [&](bool producer, bool armed) {
    const std::uint32_t inc = producer ? next_inc++ : 0;
    const char* point = producer ? kSendPoints[rng() % 2] : kReceivePoints[rng() % 2];
    const std::uint64_t nth = 1 + rng() % 400;
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid != 0) return pid;
    if (armed) fault::arm(point, nth);
    if (producer) board->produce(name, inc);
    board->consume(name);
  };

  const std::uint64_t target = scaled(1000, 100);
  std::vector<pid_t> producers{spawn(true, true), spawn(true, true)};
  std::vector<pid_t> consumers{spawn(false, true), spawn(false, true)};
  // Whatever ends the test (a failed REQUIRE too), no child outlives it.
  struct Reaper {
    std::vector<pid_t>* sides[2];
    ~Reaper() { kill_all(); }
    void kill_all() {
      for (auto* side : sides) {
        for (pid_t& p : *side) {
          if (p > 0 && ::kill(p, SIGKILL) == 0) ::waitpid(p, nullptr, 0);
          p = -1;
        }
      }
    }
  } reaper{{&producers, &consumers}};
  std::uint64_t producer_deaths = 0, consumer_deaths = 0, other_exits = 0;
  const auto give_up = sleet::test::Clock::now() + patience(120000ms);
  while (producer_deaths + consumer_deaths < target && next_inc + 2 < Board::kIncarnations &&
         sleet::test::Clock::now() < give_up) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    REQUIRE(pid > 0);
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    for (auto* side : {&producers, &consumers}) {
      for (pid_t& p : *side) {
        if (p != pid) continue;
        const bool producer = side == &producers;
        if (killed) {
          ++(producer ? producer_deaths : consumer_deaths);
        } else {
          // Every child reaches its point long before its incarnation ends
          // (at most 400 hits): any other end is a failure.
          INFO((producer ? "producer" : "consumer") << " ended with status " << status);
          CHECK(killed);
          ++other_exits;
        }
        p = spawn(producer, true);
      }
    }
  }
  REQUIRE(sleet::test::Clock::now() < give_up);
  // The end: producers and armed consumers are killed from outside (each
  // consumer may hold a message then, too), two unarmed consumers drain.
  const std::uint64_t holders = consumer_deaths + consumers.size();
  reaper.kill_all();
  ch.close();
  std::vector<pid_t> drainers{spawn(false, false), spawn(false, false)};
  const auto drain_end = sleet::test::Clock::now() + patience(20000ms);
  for (pid_t p : drainers) {
    int status = -1;
    while (::waitpid(p, &status, WNOHANG) == 0 && sleet::test::Clock::now() < drain_end) {
      std::this_thread::sleep_for(5ms);
    }
    if (sleet::test::Clock::now() >= drain_end) {
      ::kill(p, SIGKILL);
      ::waitpid(p, &status, 0);
      FAIL("a consumer never saw the end of the closed channel (wedged)");
    }
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }

  const std::uint64_t confirmed = board->confirmed_total(next_inc);
  const std::uint64_t missing = board->missing(next_inc);
  const auto st = ch.stats();
  INFO("deaths at fault points: producers " << producer_deaths << ", consumers " << consumer_deaths
                                            << "; other exits " << other_exits << "; confirmed sends "
                                            << confirmed << ", received " << board->received.load()
                                            << ", missing " << missing << ", lost " << st.lost
                                            << ", abandoned " << st.abandoned);
  CHECK(producer_deaths + consumer_deaths >= target);
  CHECK(board->torn.load() == 0);
  CHECK(board->duplicates.load() == 0);
  CHECK(board->out_of_order.load() == 0);
  // Only a consumer that died holding a message can make a confirmed one
  // go missing, one each; a producer's death loses only its unconfirmed one.
  CHECK(missing <= holders);
  CHECK(st.lost <= holders);
  CHECK(st.abandoned <= producer_deaths);
  CHECK(st.queued == 0);
  CHECK(confirmed > target);
  std::printf("fault campaign: %llu deaths at fault points (%llu producers, %llu consumers), %llu confirmed "
              "sends, %llu missing, %llu lost, %llu abandoned\n",
              static_cast<unsigned long long>(producer_deaths + consumer_deaths),
              static_cast<unsigned long long>(producer_deaths), static_cast<unsigned long long>(consumer_deaths),
              static_cast<unsigned long long>(confirmed), static_cast<unsigned long long>(missing),
              static_cast<unsigned long long>(st.lost), static_cast<unsigned long long>(st.abandoned));
}
