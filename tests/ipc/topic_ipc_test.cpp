// Topics between real processes (fork): P publisher processes, S
// subscriber processes, both overflow policies. Every message carries its
// publisher, a sequence number and a checksum. Under block every subscriber
// sees every (publisher, seq) exactly once and in order per publisher; under
// overwrite it sees each at most once, in order, and what it received plus
// what it counted as lost is exactly what was published. A subscriber
// SIGKILLed mid-stream never blocks a publisher. Children report through
// shared memory (never Catch2); every wait of the parent is bounded.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "ipc/ipc_support.hpp"
#include "sleet/topic.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::From;
using sleet::Overflow;
using sleet::Topic;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::patience;
using sleet::test::Report;
using sleet::test::scaled;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
using sleet::test::wait_until;

using Msg = sleet::test::SeqMsg;
using sleet::test::intact;
using sleet::test::make_msg;

constexpr int kMaxPublishers = 3;

struct SubscriberReport {
  Report report;
  std::uint64_t received;
  std::uint64_t lost;
  std::uint64_t hash;  // sum of the checksums received
};

struct Shared {
  std::atomic<int> subscribed{0};
  std::atomic<int> go{0};
};

// Receives until the topic is closed; checks order and integrity.
int run_subscriber(const std::string& name, Overflow policy, Shared& sh, SubscriberReport& r) {
  auto sub = Topic<Msg>::open(name).subscribe();
  sh.subscribed.fetch_add(1, std::memory_order_release);  // release: we are registered
  std::uint64_t next[kMaxPublishers] = {};
  for (const Msg& m : sub) {
    if (!intact(m)) return r.report.fail("torn message: publisher %u seq %llu", m.producer,
                                         static_cast<unsigned long long>(m.seq));
    if (m.producer >= kMaxPublishers) return r.report.fail("bad publisher %u", m.producer);
    std::uint64_t& want = next[m.producer];
    if (policy == Overflow::block ? m.seq != want : m.seq < want) {
      return r.report.fail("publisher %u: seq %llu, expected %s%llu", m.producer,
                           static_cast<unsigned long long>(m.seq), policy == Overflow::block ? "" : ">= ",
                           static_cast<unsigned long long>(want));
    }
    want = m.seq + 1;
    ++r.received;
    r.hash += m.check;
  }
  r.lost = sub.lost();
  return 0;
}

void fan_out(int publishers, int subscribers, Overflow policy) {
  INFO(publishers << " publishers, " << subscribers << " subscribers, "
                  << (policy == Overflow::block ? "block" : "overwrite"));
  Cleanup c(unique_name("topic-ipc"));
  auto topic = Topic<Msg>::create(c.name, {.capacity = 64, .overflow = policy});
  const std::uint64_t per = scaled(20000, 2000);
  SharedMemory<Shared> sh;
  SharedMemory<SubscriberReport> reports(subscribers);
  std::vector<Child> subs;
  for (int s = 0; s < subscribers; ++s) {
    subs.emplace_back([&, s] { return run_subscriber(c.name, policy, *sh, reports[s]); });
  }
  REQUIRE(sleet::test::eventually([&] { return sh->subscribed.load() == subscribers; }, patience(5000ms)));
  std::vector<Child> pubs;
  for (int p = 0; p < publishers; ++p) {
    pubs.emplace_back([&, p] {
      auto t = Topic<Msg>::open(c.name);
      for (std::uint64_t i = 0; i < per; ++i) {
        const Msg m = make_msg(static_cast<std::uint32_t>(p), i);
        if (i % 3 == 0) {
          t.publish(m);
        } else {
          while (!t.try_publish(m)) std::this_thread::yield();
        }
      }
      return 0;
    });
  }
  const auto deadline = sleet::test::Clock::now() + patience(60000ms);
  for (auto& p : pubs) CHECK(wait_until(p, deadline) == 0);
  topic.close();
  std::uint64_t want_hash = 0;
  for (int p = 0; p < publishers; ++p) {
    for (std::uint64_t i = 0; i < per; ++i) want_hash += make_msg(static_cast<std::uint32_t>(p), i).check;
  }
  const std::uint64_t total = per * static_cast<std::uint64_t>(publishers);
  for (int s = 0; s < subscribers; ++s) {
    INFO("subscriber " << s << ": " << reports[s].report.what());
    CHECK(wait_until(subs[s], deadline) == 0);
    CHECK(reports[s].report.ok());
    CHECK(reports[s].received + reports[s].lost == total);
    if (policy == Overflow::block) {
      CHECK(reports[s].received == total);
      CHECK(reports[s].lost == 0);
      CHECK(reports[s].hash == want_hash);
    }
  }
  const auto st = topic.stats();
  CHECK(st.published == total);
  CHECK(st.subscribers == 0);  // every subscriber process unsubscribed on exit
}

}  // namespace

TEST_CASE("topic ipc: exactly once per subscriber under block", "[topic][ipc]") {
  fan_out(1, 1, Overflow::block);
  fan_out(1, 4, Overflow::block);
  fan_out(3, 1, Overflow::block);
  fan_out(3, 4, Overflow::block);
}

TEST_CASE("topic ipc: overwrite delivers in order and counts every loss", "[topic][ipc]") {
  fan_out(1, 1, Overflow::overwrite);
  fan_out(1, 4, Overflow::overwrite);
  fan_out(3, 4, Overflow::overwrite);
}

TEST_CASE("topic ipc: a subscriber killed mid-read never blocks a publisher", "[topic][ipc]") {
  Cleanup c(unique_name("topic-kill"));
  auto topic = Topic<Msg>::create(c.name, {.capacity = 16, .overflow = Overflow::block});
  SharedMemory<Shared> sh;
  // A subscriber that reads 5 messages and then stops forever, and one that
  // dies at a chosen point: after receiving 3, in the middle of its stream.
  Child stalled([&] {
    auto sub = Topic<Msg>::open(c.name).subscribe();
    sh->subscribed.fetch_add(1, std::memory_order_release);  // release: registered
    for (int i = 0; i < 5; ++i) (void)sub.receive();
    ::pause();
    return 0;
  });
  Child dies([&] {
    auto sub = Topic<Msg>::open(c.name).subscribe();
    sh->subscribed.fetch_add(1, std::memory_order_release);  // release: registered
    for (int i = 0; i < 3; ++i) (void)sub.receive();
    ::raise(SIGKILL);
    return 0;
  });
  REQUIRE(sleet::test::eventually([&] { return sh->subscribed.load() == 2; }, patience(5000ms)));
  // Tickets up to 5 + 16 - 1 fit behind the stalled subscriber's cursor 5;
  // the dead one (cursor 3) holds back ticket 19 until it is found dead.
  std::uint64_t seq = 0;
  for (; seq < 21; ++seq) REQUIRE(topic.publish_for(make_msg(0, seq), 5s));
  CHECK(dies.wait_for(patience(5000ms)) == 128 + SIGKILL);
  CHECK(topic.stats().reclaimed == 1);
  // The stalled subscriber is alive: it holds publishers back (block's promise).
  CHECK_FALSE(topic.publish_for(make_msg(0, seq), 50ms));
  stalled.kill();
  CHECK(stalled.wait_for(patience(5000ms)) == 128 + SIGKILL);
  // Both dead now: publishing goes on (their places are reclaimed).
  for (std::uint64_t i = 0; i < 100; ++i, ++seq) REQUIRE(topic.publish_for(make_msg(0, seq), 5s));
  const auto st = topic.stats();
  CHECK(st.reclaimed == 2);
  CHECK(st.subscribers == 0);
  // And a new subscriber gets its place and every message from then on.
  auto sub = topic.subscribe();
  topic.publish(make_msg(0, seq));
  const auto m = sub.receive_for(1s);
  REQUIRE(m.has_value());
  CHECK(m->seq == seq);
}

TEST_CASE("topic ipc: a late subscriber sees a contiguous suffix", "[topic][ipc]") {
  Cleanup c(unique_name("topic-late"));
  auto topic = Topic<Msg>::create(c.name, {.capacity = 32});
  SharedMemory<Shared> sh;
  SharedMemory<SubscriberReport> r;
  const std::uint64_t n = scaled(20000, 2000);
  Child pub([&] {
    auto t = Topic<Msg>::open(c.name);
    for (std::uint64_t i = 0; i < n; ++i) {
      if (i == n / 4) sh->go.store(1, std::memory_order_release);  // release: the late one may join
      t.publish(make_msg(0, i));
    }
    return 0;
  });
  Child late([&] {
    if (!sleet::test::wait_flag(sh->go, 1, patience(10000ms))) return r->report.fail("never started");
    auto sub = Topic<Msg>::open(c.name).subscribe();
    std::uint64_t first = ~std::uint64_t{0}, next = 0;
    for (const Msg& m : sub) {
      if (!intact(m)) return r->report.fail("torn message");
      if (first == ~std::uint64_t{0}) first = next = m.seq;
      if (m.seq != next) return r->report.fail("gap: %llu after %llu", static_cast<unsigned long long>(m.seq),
                                               static_cast<unsigned long long>(next));
      ++next;
      ++r->received;
    }
    if (r->received != 0 && next != n) return r->report.fail("ended at %llu", static_cast<unsigned long long>(next));
    return 0;
  });
  const auto deadline = sleet::test::Clock::now() + patience(30000ms);
  CHECK(wait_until(pub, deadline) == 0);
  // The late subscriber may not have subscribed yet; wait for it before closing.
  sleet::test::eventually([&] { return topic.stats().subscribers == 1 || !sleet::test::running(late); },
                          patience(5000ms));
  topic.close();
  INFO(r->report.what());
  CHECK(wait_until(late, deadline) == 0);
  CHECK(r->report.ok());
}
