// Kill campaign against an mpmc channel: 2 producer and 2 consumer
// processes of 256-byte messages through 64 slots, SIGKILLed at random
// instants and restarted, then the channel is closed. The channel must never
// wedge (every consumer ends with closed within a bound), no message is
// delivered twice or torn, every message whose send() returned is delivered
// except at most one per killed consumer (counted in stats().lost, or taken
// in the instant between its receive() returning and the consumer recording
// it), and the slots dead producers held are counted as abandoned.
//
// Bounded: scaled(150) kills 2-20 ms apart (about 2 s), then a drain.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "ipc/ipc_support.hpp"
#include "ipc/kill_board.hpp"
#include "sleet/channel.hpp"
#include "sleet/loan.hpp"

namespace {

using sleet::test::patience;
using sleet::test::scaled;
using sleet::test::SharedMemory;

using BigMsg = sleet::test::StampedMsg<30>;  // 256 bytes: a wide window for a kill mid-copy
static_assert(sizeof(BigMsg) == 256);
using Board = sleet::test::KillBoard<BigMsg, 512, 1u << 15>;

}  // namespace

TEST_CASE("mpmc kill campaign: random SIGKILLs of producers and consumers never wedge the channel",
          "[stress][mpmc][recovery][ipc]") {
  sleet::test::Cleanup c(sleet::test::unique_name("mpmc-kill"));
  auto ch = sleet::Channel<BigMsg>::create(c.name, {.capacity = 64, .max_message_size = sizeof(BigMsg)});
  SharedMemory<Board> board;
  std::uint32_t next_inc = 0;
  auto spawn = [&](bool producer) {
    const std::uint32_t inc = producer ? next_inc++ : 0;
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (producer) board->produce(c.name, inc);
      board->consume(c.name);
    }
    return pid;
  };
  std::vector<pid_t> producers{spawn(true), spawn(true)};
  std::vector<pid_t> consumers{spawn(false), spawn(false)};

  std::mt19937 rng(20261202);
  const std::uint64_t kills = scaled(150, 40);
  std::uint64_t consumer_kills = 0;
  for (std::uint64_t k = 0; k < kills && next_inc + 2 < Board::kIncarnations; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + rng() % 19));
    const bool producer = rng() % 2 == 0;
    auto& side = producer ? producers : consumers;
    pid_t& victim = side[rng() % side.size()];
    ::kill(victim, SIGKILL);
    ::waitpid(victim, nullptr, 0);
    if (!producer) ++consumer_kills;
    victim = spawn(producer);
  }
  for (pid_t p : producers) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  ch.close();
  // Every consumer drains and ends with closed, however the kills left the slots.
  const auto give_up = sleet::test::Clock::now() + patience(std::chrono::seconds(20));
  for (pid_t p : consumers) {
    int status = -1;
    while (::waitpid(p, &status, WNOHANG) == 0 && sleet::test::Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (sleet::test::Clock::now() >= give_up) {
      ::kill(p, SIGKILL);
      ::waitpid(p, &status, 0);
      FAIL("a consumer never saw the end of the closed channel (wedged)");
    }
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  const std::uint64_t confirmed = board->confirmed_total(next_inc);
  const std::uint64_t missing = board->missing(next_inc);
  const auto st = ch.stats();
  INFO("kills " << kills << " (consumers " << consumer_kills << "), producer incarnations " << next_inc
                << ", confirmed sends " << confirmed << ", received " << board->received.load()
                << ", missing " << missing << ", lost " << st.lost << ", abandoned " << st.abandoned);
  CHECK(board->torn.load() == 0);
  CHECK(board->duplicates.load() == 0);
  CHECK(board->out_of_order.load() == 0);
  CHECK(missing <= consumer_kills);
  CHECK(st.lost <= consumer_kills);
  CHECK(confirmed > kills);  // the campaign made progress throughout
  CHECK(st.queued == 0);     // drained: nothing stranded behind a dead process's slot
}

// ---- kills at chosen instants (a child stops holding a slot, and is killed there) ----

namespace {

struct Flag {
  std::atomic<int> ready;
};

// Forks a child that runs `hold` (which takes a slot and keeps it), waits
// until it says it holds it, and SIGKILLs it there.
template <class Hold>
void kill_while_holding(Hold&& hold) {
  SharedMemory<Flag> flag;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    hold();
    flag->ready.store(1);
    for (;;) ::pause();
  }
  const auto give_up = sleet::test::Clock::now() + patience(std::chrono::seconds(10));
  while (flag->ready.load() == 0 && sleet::test::Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(flag->ready.load() == 1);
}

}  // namespace

TEST_CASE("mpmc recovery: a sender killed holding a claimed slot holds nobody up",
          "[mpmc][recovery][ipc]") {
  sleet::test::Cleanup c(sleet::test::unique_name("mpmc-dead-sender"));
  auto ch = sleet::Channel<std::uint64_t>::create(c.name, {.capacity = 4});
  REQUIRE(ch.try_send(1));
  kill_while_holding([&] {
    static auto* mine = new sleet::Channel<std::uint64_t>(sleet::Channel<std::uint64_t>::open(c.name));
    // Ticket 1, claimed and never committed: the Loan is never destroyed
    // (the child is killed first).
    static auto* keep = new sleet::Loan<std::uint64_t>(mine->loan());
    **keep = 999;
  });
  REQUIRE(ch.try_send(2));  // behind the dead sender's slot
  REQUIRE(ch.try_send(3));
  CHECK(ch.receive_for(std::chrono::seconds(5)) == std::optional<std::uint64_t>(1));
  CHECK(ch.receive_for(std::chrono::seconds(5)) == std::optional<std::uint64_t>(2));
  CHECK(ch.receive_for(std::chrono::seconds(5)) == std::optional<std::uint64_t>(3));
  const auto st = ch.stats();
  CHECK(st.abandoned == 1);
  CHECK(st.sent == 3);
  CHECK(st.received == 3);
  CHECK(st.queued == 0);
  // The channel is whole: laps go on, and close() ends a blocking receive().
  for (std::uint64_t i = 0; i < 20; ++i) {
    REQUIRE(ch.try_send(10 + i));
    REQUIRE(ch.try_receive() == std::optional<std::uint64_t>(10 + i));
  }
}

TEST_CASE("mpmc recovery: a receiver killed holding a taken message frees its slot; the loss is counted",
          "[mpmc][recovery][ipc]") {
  sleet::test::Cleanup c(sleet::test::unique_name("mpmc-dead-receiver"));
  auto ch = sleet::Channel<std::uint64_t>::create(c.name, {.capacity = 2});
  REQUIRE(ch.try_send(1));
  REQUIRE(ch.try_send(2));
  kill_while_holding([&] {
    static auto* mine = new sleet::Channel<std::uint64_t>(sleet::Channel<std::uint64_t>::open(c.name));
    auto& port = mine->base().mpmc_port();
    const auto taken = port.ring().peek(port.me());  // message 1, taken, never consumed
    if (!taken) ::_exit(5);
  });
  CHECK_FALSE(ch.try_send(3));  // ticket 2 needs the dead receiver's slot
  CHECK(ch.send_for(3, std::chrono::seconds(5)));  // recovered within kRecoverAfter
  CHECK(ch.stats().lost == 1);
  CHECK(ch.try_receive() == std::optional<std::uint64_t>(2));
  CHECK(ch.try_receive() == std::optional<std::uint64_t>(3));
  CHECK_FALSE(ch.try_receive());
}

TEST_CASE("mpmc recovery: close() with a dead sender's slot below the final ticket still ends every receive",
          "[mpmc][recovery][ipc]") {
  sleet::test::Cleanup c(sleet::test::unique_name("mpmc-dead-close"));
  auto ch = sleet::Channel<std::uint64_t>::create(c.name, {.capacity = 8});
  kill_while_holding([&] {
    static auto* mine = new sleet::Channel<std::uint64_t>(sleet::Channel<std::uint64_t>::open(c.name));
    static auto* keep = new sleet::Loan<std::uint64_t>(mine->loan());
    (void)keep;
  });
  REQUIRE(ch.try_send(7));
  ch.close();
  SharedMemory<Flag> result;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto rx = sleet::Channel<std::uint64_t>::open(c.name);
    int code = 1;
    try {
      if (rx.receive() == 7) {
        (void)rx.receive();  // must throw closed, not hang
      }
    } catch (const sleet::Error& e) {
      code = e.code() == sleet::errc::closed ? 0 : 2;
    }
    result->ready.store(code == 0 ? 1 : 0);
    ::_exit(code);
  }
  const auto give_up = sleet::test::Clock::now() + patience(std::chrono::seconds(10));
  int status = -1;
  while (::waitpid(pid, &status, WNOHANG) == 0 && sleet::test::Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (sleet::test::Clock::now() >= give_up) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL("receive() on a closed channel hung behind a dead sender's slot");
  }
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(ch.stats().abandoned == 1);
}
