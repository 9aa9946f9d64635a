// Dead publishers of a topic (#11 item 1, broadcast_ring.hpp "Dead
// publishers"): a publisher killed between taking its ticket and publishing
// it holds nobody up. Chosen instants (a child that takes a ticket through
// the port and is SIGKILLed holding it) and a random kill campaign (every
// message checked: publisher, sequence, checksum).
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/ipc_support.hpp"
#include "sleet/topic.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::From;
using sleet::Overflow;
using sleet::Topic;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::patience;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
namespace d = sleet::detail;

namespace {

struct Msg {
  std::uint32_t publisher;
  std::uint32_t incarnation;
  std::uint64_t seq;
  std::uint64_t check;
};
std::uint64_t check_of(const Msg& m) {
  return sleet::test::mix(m.seq * 131 + m.publisher * 7 + m.incarnation);
}

// A child that takes the next ticket of `name` through the port (as a
// publish does before it writes) and then waits to be killed: a publisher
// that dies holding a ticket, at a chosen instant.
Child holder_of_a_ticket(const std::string& name, SharedMemory<std::atomic<std::uint64_t>>& ticket) {
  return Child([&] {
    auto core = d::TopicCore::open(name, Topic<std::uint64_t>::type());
    d::PublisherPort port(core);
    d::PublisherPort::Claim c;
    if (port.try_claim(core, 8, c) != d::Poll::ready) return 1;
    ticket->store(c.ticket + 1);
    for (;;) ::pause();
    return 0;
  });
}

void kill_holding(Child& holder, SharedMemory<std::atomic<std::uint64_t>>& ticket) {
  REQUIRE(sleet::test::eventually([&] { return ticket->load() != 0; }, patience(5000ms)));
  holder.kill(SIGKILL);
  holder.wait();
}

}  // namespace

TEST_CASE("topic recovery: a publisher killed holding a ticket holds no subscriber up",
          "[topic][recovery]") {
  const Overflow overflow = GENERATE(Overflow::block, Overflow::overwrite);
  const std::string name = unique_name("topic.rec.sub");
  Cleanup cleanup(name);
  auto topic = Topic<std::uint64_t>::create(name, {.capacity = 8, .overflow = overflow});
  auto sub = topic.subscribe(From::next);
  topic.publish(1);
  CHECK(sub.receive() == 1);

  SharedMemory<std::atomic<std::uint64_t>> ticket;
  Child holder = holder_of_a_ticket(name, ticket);
  kill_holding(holder, ticket);
  CHECK(ticket->load() == 2);  // it held ticket 1
  for (std::uint64_t v = 2; v <= 4; ++v) topic.publish(v);
  // The subscriber waits at ticket 1: within a few kRecoverAfter periods it
  // is published as skipped and the messages behind it arrive, in order.
  for (std::uint64_t v = 2; v <= 4; ++v) {
    const auto got = sub.receive_for(patience(3000ms));
    REQUIRE(got.has_value());
    CHECK(*got == v);
  }
  CHECK(topic.stats().abandoned == 1);
  CHECK(sleet::inspect_object(name).fields.size() > 0);
  // The dead publisher's entry is reused by a new publisher.
  Child again([&] {
    auto t = Topic<std::uint64_t>::open(name);
    t.publish(5);
    return 0;
  });
  REQUIRE(again.wait_for(patience(3000ms)) == 0);
  CHECK(sub.receive_for(patience(3000ms)) == std::optional<std::uint64_t>(5));
}

TEST_CASE("topic recovery: a polling subscriber (try_receive only) gets past a dead publisher's ticket",
          "[topic][recovery]") {
  const std::string name = unique_name("topic.rec.poll");
  Cleanup cleanup(name);
  auto topic = Topic<std::uint64_t>::create(name, {.capacity = 8});
  auto sub = topic.subscribe(From::next);
  SharedMemory<std::atomic<std::uint64_t>> ticket;
  Child holder = holder_of_a_ticket(name, ticket);
  kill_holding(holder, ticket);
  topic.publish(7);
  std::optional<std::uint64_t> got;
  const auto end = std::chrono::steady_clock::now() + patience(3000ms);
  while (!got && std::chrono::steady_clock::now() < end) got = sub.try_receive();
  CHECK(got == std::optional<std::uint64_t>(7));
  CHECK(topic.stats().abandoned == 1);
}

TEST_CASE("topic recovery: a publisher killed holding a ticket holds no publisher of the next lap up",
          "[topic][recovery]") {
  const Overflow overflow = GENERATE(Overflow::block, Overflow::overwrite);
  const std::string name = unique_name("topic.rec.pub");
  Cleanup cleanup(name);
  auto topic = Topic<std::uint64_t>::create(name, {.capacity = 4, .overflow = overflow});
  SharedMemory<std::atomic<std::uint64_t>> ticket;
  Child holder = holder_of_a_ticket(name, ticket);
  kill_holding(holder, ticket);
  // Tickets 1-3 fill the other slots; ticket 4 needs ticket 0's slot, which
  // the dead publisher never published (no subscribers: only the slot
  // holds the publisher back).
  for (std::uint64_t v = 1; v <= 3; ++v) REQUIRE(topic.try_publish(v));
  CHECK(topic.publish_for(4, patience(3000ms)));
  CHECK(topic.stats().abandoned == 1);
  CHECK(topic.stats().published == 5);
}

TEST_CASE("topic recovery: close() with a dead publisher's ticket below the final one ends every receive",
          "[topic][recovery]") {
  const std::string name = unique_name("topic.rec.close");
  Cleanup cleanup(name);
  auto topic = Topic<std::uint64_t>::create(name, {.capacity = 8});
  auto sub = topic.subscribe(From::next);
  SharedMemory<std::atomic<std::uint64_t>> ticket;
  Child holder = holder_of_a_ticket(name, ticket);
  kill_holding(holder, ticket);
  topic.publish(9);
  topic.close();
  CHECK(sub.receive_for(patience(3000ms)) == std::optional<std::uint64_t>(9));
  CHECK_SLEET_ERROR(sub.receive_for(patience(3000ms)), sleet::errc::closed, "closed");
}

TEST_CASE("topic recovery: the publisher table and recovery lock are pinned", "[topic][layout]") {
  STATIC_REQUIRE(d::kLayoutVersion == 7);
  STATIC_REQUIRE(sizeof(d::TopicControl) == 7 * 128 + 32 * 64);
  STATIC_REQUIRE(offsetof(d::TopicControl, recovery) == 768);
  STATIC_REQUIRE(offsetof(d::TopicControl, untracked) == 832);
  STATIC_REQUIRE(offsetof(d::TopicControl, publishers) == 896);
  STATIC_REQUIRE(sizeof(d::PublisherEntry) == 64);
  STATIC_REQUIRE(offsetof(d::PublisherEntry, claiming) == 8);
  STATIC_REQUIRE(d::BroadcastRing::entries_offset() == 3072);
}

// Random SIGKILLs of publishers mid-stream, 2 publishers and 1 subscriber
// as processes (block: nothing a confirmed publish put in is lost). Each
// publisher incarnation numbers its messages from 0 and records, in shared
// memory, how many publish() calls returned; the subscriber checks every
// message (checksum, per-incarnation order, no duplicate) and that every
// confirmed one arrived.
TEST_CASE("topic recovery: random publisher kills never wedge a topic", "[topic][recovery][stress]") {
  constexpr std::uint32_t kPublishers = 2;
  constexpr std::uint32_t kIncarnations = 64;  // per publisher, at most
  const int kills = static_cast<int>(sleet::test::scaled(60, 10));
  const std::string name = unique_name("topic.rec.kills");
  Cleanup cleanup(name);
  auto topic = Topic<Msg>::create(name, {.capacity = 16, .overflow = Overflow::block});
  auto sub = topic.subscribe(From::next);

  // confirmed[p][i]: publishes that returned in incarnation i of publisher p.
  SharedMemory<std::atomic<std::uint64_t>> confirmed(kPublishers * kIncarnations);
  auto start = [&](std::uint32_t p, std::uint32_t inc) {
    return Child([&, p, inc] {
      auto t = Topic<Msg>::open(name);
      for (std::uint64_t s = 0;; ++s) {
        Msg m{p, inc, s, 0};
        m.check = check_of(m);
        t.publish(m);
        confirmed[p * kIncarnations + inc].store(s + 1);
      }
      return 0;
    });
  };
  std::vector<std::optional<Child>> pubs(kPublishers);
  std::uint32_t incarnation[kPublishers] = {};
  for (std::uint32_t p = 0; p < kPublishers; ++p) pubs[p].emplace(start(p, 0));

  // next[p][i]: the next sequence expected from that incarnation.
  std::vector<std::uint64_t> next(kPublishers * kIncarnations, 0);
  std::uint64_t received = 0, torn = 0, out_of_order = 0;
  auto drain = [&](std::chrono::nanoseconds wait) {
    while (auto m = sub.receive_for(wait)) {
      ++received;
      if (m->publisher >= kPublishers || m->incarnation >= kIncarnations || m->check != check_of(*m)) {
        ++torn;
        continue;
      }
      std::uint64_t& n = next[m->publisher * kIncarnations + m->incarnation];
      if (m->seq != n) ++out_of_order;
      n = m->seq + 1;
      wait = std::chrono::nanoseconds(0);
    }
  };
  std::mt19937 rng(12345);
  for (int k = 0; k < kills; ++k) {
    drain(std::chrono::microseconds(50 + rng() % 2000));
    const std::uint32_t p = rng() % kPublishers;
    if (incarnation[p] + 1 >= kIncarnations) continue;
    pubs[p]->kill(SIGKILL);
    pubs[p]->wait();
    pubs[p].reset();
    pubs[p].emplace(start(p, ++incarnation[p]));
  }
  for (auto& c : pubs) {
    c->kill(SIGKILL);
    c->wait();
  }
  // Everything confirmed is there; nothing more is coming once drained.
  drain(patience(2000ms));
  std::uint64_t missing = 0, confirmed_total = 0;
  for (std::size_t i = 0; i < next.size(); ++i) {
    const std::uint64_t c = confirmed[i].load();
    confirmed_total += c;
    if (next[i] < c) missing += c - next[i];
  }
  const auto st = topic.stats();
  WARN("topic kill campaign: kills " << kills << ", confirmed publishes " << confirmed_total
                                     << ", received " << received << ", abandoned tickets "
                                     << st.abandoned << ", torn " << torn << ", out of order "
                                     << out_of_order << ", missing " << missing);
  CHECK(torn == 0);
  CHECK(out_of_order == 0);
  CHECK(missing == 0);
  CHECK(confirmed_total > static_cast<std::uint64_t>(kills));
  CHECK(st.abandoned <= static_cast<std::uint64_t>(kills) + kPublishers);
}
