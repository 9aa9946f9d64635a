// Topic<T> / Subscriber<T> in one process: fan-out, where a subscriber
// starts, both overflow policies (exact loss counts), limits, close, passive
// mode, strings, and every bad input with its exact error.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "sleet/channel.hpp"
#include "sleet/registry.hpp"
#include "sleet/topic.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::errc;
using sleet::From;
using sleet::Overflow;
using sleet::Subscriber;
using sleet::Topic;
using sleet::TopicOptions;
using sleet::test::Cleanup;
using sleet::test::unique_name;

template <class T>
std::vector<T> drain(Subscriber<T>& s) {
  std::vector<T> out;
  while (auto v = s.try_receive()) out.push_back(*v);
  return out;
}

std::vector<std::int64_t> iota(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> v;
  for (std::int64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("topic: every subscriber sees every message published after it subscribed", "[topic]") {
  Cleanup c(unique_name("topic-fanout"));
  for (Overflow policy : {Overflow::block, Overflow::overwrite}) {
    INFO("overwrite " << (policy == Overflow::overwrite));
    Topic<std::int64_t>::remove(c.name);
    auto t = Topic<std::int64_t>::create(c.name, {.capacity = 16, .overflow = policy});
    t.publish(-1);  // before anyone subscribed: nobody sees it
    auto a = t.subscribe();
    auto b = Topic<std::int64_t>::open(c.name).subscribe();
    for (std::int64_t i = 0; i < 10; ++i) t.publish(i);
    auto late = t.subscribe();  // From::next: only what follows
    for (std::int64_t i = 10; i < 14; ++i) t.publish(i);
    CHECK(drain(a) == iota(0, 14));
    CHECK(drain(b) == iota(0, 14));
    CHECK(drain(late) == iota(10, 14));
    CHECK_FALSE(a.try_receive().has_value());
    CHECK(a.lost() == 0);
    const auto s = t.stats();
    CHECK(s.published == 15);
    CHECK(s.subscribers == 3);
    CHECK(s.slowest_lag == 0);
    CHECK(s.capacity == 16);
  }
}

TEST_CASE("topic: From::oldest starts at the oldest message the ring still holds", "[topic]") {
  Cleanup c(unique_name("topic-oldest"));
  auto t = Topic<std::int64_t>::create(c.name, {.capacity = 8});
  for (std::int64_t i = 0; i < 5; ++i) t.publish(i);
  auto early = t.subscribe(From::oldest);
  CHECK(drain(early) == iota(0, 5));
  // With no subscriber holding it back, the ring keeps the last 8; under
  // block a new subscriber starts after the oldest slot (a publisher that
  // has not seen it yet may be rewriting that one).
  early = Subscriber<std::int64_t>();
  for (std::int64_t i = 5; i < 20; ++i) t.publish(i);
  auto s = t.subscribe(From::oldest);
  CHECK(drain(s) == iota(13, 20));
  CHECK(s.lost() == 0);

  Cleanup o(unique_name("topic-oldest-ow"));
  auto w = Topic<std::int64_t>::create(o.name, {.capacity = 8, .overflow = Overflow::overwrite});
  for (std::int64_t i = 0; i < 20; ++i) w.publish(i);
  auto ws = w.subscribe(From::oldest);
  CHECK(drain(ws) == iota(12, 20));  // overwrite: every slot, torn ones are detected
  CHECK(ws.lost() == 0);
}

TEST_CASE("topic: block makes publishers wait for the slowest subscriber, losing nothing", "[topic]") {
  Cleanup c(unique_name("topic-block"));
  auto t = Topic<std::int64_t>::create(c.name, {.capacity = 8, .overflow = Overflow::block});
  auto fast = t.subscribe();
  auto slow = t.subscribe();
  for (std::int64_t i = 0; i < 8; ++i) REQUIRE(t.try_publish(i));
  CHECK(drain(fast) == iota(0, 8));
  CHECK_FALSE(t.try_publish(8));  // `slow` is a whole ring behind
  CHECK_FALSE(t.publish_for(8, 2ms));
  CHECK(t.stats().times_full >= 2);
  CHECK(t.stats().slowest_lag == 8);
  REQUIRE(slow.try_receive() == 0);
  CHECK(t.try_publish(8));  // one slot free
  CHECK_FALSE(t.try_publish(9));
  CHECK(drain(slow) == iota(1, 9));
  CHECK(drain(fast) == std::vector<std::int64_t>{8});
  // A subscriber that goes away stops holding publishers back.
  for (std::int64_t i = 9; i < 17; ++i) REQUIRE(t.try_publish(i));
  slow = Subscriber<std::int64_t>();
  CHECK_FALSE(t.try_publish(17));  // `fast` still holds it
  fast = Subscriber<std::int64_t>();
  for (std::int64_t i = 17; i < 40; ++i) CHECK(t.try_publish(i));
  CHECK(t.stats().subscribers == 0);
}

TEST_CASE("topic: overwrite never waits; a lapped subscriber skips ahead and counts exactly what it lost", "[topic]") {
  Cleanup c(unique_name("topic-overwrite"));
  auto t = Topic<std::int64_t>::create(c.name, {.capacity = 8, .overflow = Overflow::overwrite});
  auto s = t.subscribe();
  auto keeps_up = t.subscribe();
  for (std::int64_t i = 0; i < 20; ++i) {
    REQUIRE(t.try_publish(i));
    REQUIRE(keeps_up.try_receive() == i);
  }
  // `s` is at ticket 0 with 20 published: the ring holds 12..19.
  CHECK(drain(s) == iota(12, 20));
  CHECK(s.lost() == 12);
  CHECK(keeps_up.lost() == 0);
  CHECK(t.stats().lost == 12);
  for (std::int64_t i = 20; i < 23; ++i) t.publish(i);
  CHECK(drain(s) == iota(20, 23));
  CHECK(s.lost() == 12);
}

TEST_CASE("topic: strings and batches", "[topic]") {
  Cleanup c(unique_name("topic-string"));
  for (Overflow policy : {Overflow::block, Overflow::overwrite}) {
    Topic<std::string>::remove(c.name);
    auto t = Topic<std::string>::create(c.name, {.capacity = 64, .max_message_size = 64, .overflow = policy});
    auto s = t.subscribe();
    std::vector<std::string> words = {"", "a", std::string(50, 'x'), "hello world"};
    t.publish_batch(words);
    std::vector<std::string> got;
    CHECK(s.receive_batch([&](const std::string& w) { got.push_back(w); }) == words.size());
    CHECK(got == words);
    CHECK_SLEET_ERROR(t.publish(std::string(100, 'y')), errc::too_large, "topic '" + c.name + "'");
    CHECK_FALSE(s.try_receive().has_value());  // nothing of the refused message was published
    t.publish("after");
    CHECK(s.receive_for(1s) == std::string("after"));
  }
}

TEST_CASE("topic: close lets subscribers drain, then they see closed", "[topic]") {
  Cleanup c(unique_name("topic-close"));
  auto t = Topic<std::int64_t>::create(c.name, {.capacity = 8});
  auto s = t.subscribe();
  for (std::int64_t i = 0; i < 3; ++i) t.publish(i);
  t.close();
  CHECK(t.closed());
  CHECK(s.closed());
  CHECK_SLEET_ERROR(t.publish(3), errc::closed, "topic '" + c.name + "'");
  std::vector<std::int64_t> got;
  for (std::int64_t v : s) got.push_back(v);
  CHECK(got == iota(0, 3));
  CHECK_SLEET_ERROR(s.receive(), errc::closed, "closed");
  CHECK_SLEET_ERROR(s.try_receive(), errc::closed, "closed");
  CHECK(t.stats().closed);
}

TEST_CASE("topic: passive subscribers run handlers whose filter accepts", "[topic]") {
  Cleanup c(unique_name("topic-passive"));
  auto t = Topic<std::int64_t>::create(c.name, {.capacity = 16});
  auto s = t.subscribe();
  std::atomic<std::int64_t> even_sum{0}, all{0};
  s.on_receive([&](const std::int64_t& v) { even_sum += v; }, [](const std::int64_t& v) { return v % 2 == 0; });
  s.on_receive([&](const std::int64_t&) { ++all; });
  CHECK_SLEET_ERROR(s.try_receive(), errc::wrong_mode, "passive");
  for (std::int64_t i = 0; i < 100; ++i) t.publish(i);
  t.close();
  s.join();
  CHECK(all == 100);
  CHECK(even_sum == 2450);
  CHECK(s.unhandled() == 0);
}

TEST_CASE("topic: limits and bad input are clear errors naming the topic", "[topic][bad-input]") {
  Cleanup c(unique_name("topic-bad"));
  CHECK_SLEET_ERROR(Topic<int>::create(c.name, {.capacity = 0}), errc::invalid_argument, "capacity 0");
  CHECK_SLEET_ERROR(Topic<int>::create(c.name, {.max_subscribers = 0}), errc::invalid_argument,
                    "max_subscribers 0");
  CHECK_SLEET_ERROR(Topic<int>::create(c.name, {.max_subscribers = 5000}), errc::invalid_argument,
                    "max_subscribers 5000");
  CHECK_SLEET_ERROR(Topic<int>::create(c.name, {.overflow = static_cast<Overflow>(7)}),
                    errc::invalid_argument, "overflow");
  CHECK_SLEET_ERROR(Topic<int>::create("bad name"), errc::invalid_name, "bad name");
  CHECK_SLEET_ERROR(Topic<int>::open(c.name), errc::not_found, c.name);

  auto t = Topic<int>::create(c.name, {.capacity = 4, .max_subscribers = 2});
  CHECK_SLEET_ERROR(Topic<int>::create(c.name), errc::already_exists, c.name);
  CHECK_SLEET_ERROR(Topic<double>::open(c.name), errc::type_mismatch, "double");
  CHECK_SLEET_ERROR(sleet::Channel<int>::open(c.name), errc::kind_mismatch, "topic");
  {
    auto a = t.subscribe();
    auto b = t.subscribe();
    CHECK_SLEET_ERROR(t.subscribe(), errc::full, "topic '" + c.name + "': all 2 subscriber places");
    CHECK(t.stats().subscribers == 2);
  }
  auto again = t.subscribe();  // places come back when subscribers go
  CHECK(t.stats().subscribers == 1);

  Cleanup ch(unique_name("topic-bad-ch"));
  auto channel = sleet::Channel<int>::create(ch.name);
  CHECK_SLEET_ERROR(Topic<int>::open(ch.name), errc::kind_mismatch, "channel");
}

TEST_CASE("topic: the registry shows a topic and its subscribers", "[topic]") {
  Cleanup c(unique_name("topic-registry"));
  auto t = Topic<int>::create(c.name, {.capacity = 8, .overflow = Overflow::overwrite});
  auto s = t.subscribe();
  for (int i = 0; i < 3; ++i) t.publish(i);
  const sleet::ObjectInfo info = sleet::inspect_object(c.name);
  CHECK(info.kind == "topic");
  CHECK(info.problem.empty());
  auto field = [&](const std::string& k) -> std::uint64_t {
    for (const auto& [name, v] : info.fields) {
      if (name == k) return v;
    }
    FAIL("no field " << k);
    return 0;
  };
  CHECK(field("published") == 3);
  CHECK(field("subscribers") == 1);
  CHECK(field("slowest_lag") == 3);
  CHECK(field("overwrite") == 1);
  CHECK(field("capacity") == 8);
}
