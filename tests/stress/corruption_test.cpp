// Corruption campaign (#11, "Bounded reads of everything in shared
// memory"): a segment's bytes are damaged, by targeted bad values in every
// 8-byte word of its control blocks and first slots and by random bytes
// anywhere after the header, and then every call of the object runs in a
// child process (blocking ones with short timeouts). A call may fail, with a
// sleet::Error; it must never crash, throw anything else, or fail to return.
//
// Each round restores the pristine bytes first, so every damage is tried
// alone. The counts of each kind are printed (WARN) for the note and the
// README's reliability section.
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "sleet/channel.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/kv_store.hpp"
#include "sleet/pipe.hpp"
#include "sleet/registry.hpp"
#include "sleet/topic.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::unique_name;

namespace {

// A child that overruns this is counted as a hang: every call it makes is
// non-blocking or has a timeout of at most 20 ms, and open() waits for a
// creator only when the init state is damaged (kReadyWait, 1 s).
constexpr auto kChildBound = SLEET_TEST_SANITIZED ? 20000ms : 5000ms;

struct Tally {
  int rounds = 0;
  int failed_cleanly = 0;  // a call threw sleet::Error
  int crashes = 0;         // killed by a signal
  int hangs = 0;           // overran kChildBound
  int foreign = 0;         // threw something other than sleet::Error
  std::vector<std::string> examples;
};

// Runs `calls` in a child against the damaged segment.
void run_round(Tally& t, const std::string& what, const std::function<void()>& calls) {
  ++t.rounds;
  Child child([&] {
    try {
      calls();
    } catch (const sleet::Error&) {
      return 1;
    } catch (...) {
      return 2;
    }
    return 0;
  });
  const int rc = child.wait_for(std::chrono::duration_cast<std::chrono::milliseconds>(kChildBound));
  std::string verdict;
  if (rc == 1) ++t.failed_cleanly;
  if (rc == 2) ++t.foreign, verdict = "threw a non-sleet exception";
  if (rc == -1) ++t.hangs, verdict = "did not return";
  if (rc > 128) ++t.crashes, verdict = "crashed (signal " + std::to_string(rc - 128) + ")";
  if (!verdict.empty() && t.examples.size() < 12) t.examples.push_back(what + ": " + verdict);
}

// Targeted rounds per kind (five per word): every word of a small segment;
// a larger one (or a sanitized run) takes every k-th word.
constexpr std::size_t kTargetedRounds = SLEET_TEST_SANITIZED ? 500 : 2500;

// Every damage of one segment: 8-byte words after the header (all of them,
// or evenly spaced up to kTargetedRounds) each set to five bad values, then
// `random_rounds` rounds of 1-8 random bytes anywhere after the header.
void campaign(const char* kind, const std::string& name, int random_rounds,
              const std::function<void()>& calls) {
  const std::vector<unsigned char> pristine = sleet::test::shm_bytes(name);
  const std::size_t from = sleet::detail::kHeaderSize;
  const std::size_t to = pristine.size();
  const std::size_t words = (to - from) / 8;
  const std::size_t step = 8 * std::max<std::size_t>(1, (words * 5 + kTargetedRounds - 1) / kTargetedRounds);
  // Undamaged, every call succeeds: the campaign exercises real paths.
  {
    Child clean([&] {
      try {
        calls();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s, undamaged: %s\n", kind, e.what());
        return 1;
      }
      return 0;
    });
    REQUIRE(clean.wait_for(std::chrono::duration_cast<std::chrono::milliseconds>(kChildBound)) == 0);
    sleet::test::set_shm_bytes(name, pristine);
  }
  Tally t;
  for (std::size_t at = from; at + 8 <= to; at += step) {
    std::uint64_t orig = 0;
    std::memcpy(&orig, pristine.data() + at, 8);
    const std::uint64_t bad[] = {orig + 1, orig - 1, ~std::uint64_t{0}, orig ^ (std::uint64_t{1} << 31),
                                 orig + (std::uint64_t{1} << 20)};
    for (const std::uint64_t v : bad) {
      std::vector<unsigned char> damaged = pristine;
      std::memcpy(damaged.data() + at, &v, 8);
      sleet::test::set_shm_bytes(name, damaged);
      char what[96];
      std::snprintf(what, sizeof what, "%s word at %zu = %#llx", kind, at, static_cast<unsigned long long>(v));
      run_round(t, what, calls);
    }
  }
  std::mt19937_64 rng(0x51ee7 + pristine.size());
  const std::size_t body = pristine.size() - sleet::detail::kHeaderSize;
  for (int r = 0; r < random_rounds; ++r) {
    std::vector<unsigned char> damaged = pristine;
    const int n = 1 + static_cast<int>(rng() % 8);
    std::string what = std::string(kind) + " random bytes at";
    for (int i = 0; i < n; ++i) {
      const std::size_t at = sleet::detail::kHeaderSize + rng() % body;
      damaged[at] = static_cast<unsigned char>(rng());
      what += " " + std::to_string(at);
    }
    sleet::test::set_shm_bytes(name, damaged);
    run_round(t, what, calls);
  }
  sleet::test::set_shm_bytes(name, pristine);
  WARN(kind << " (" << pristine.size() << " bytes, every " << step / 8 << ". word): " << t.rounds
            << " damaged segments, " << t.failed_cleanly
            << " made a call fail with sleet::Error, " << t.crashes << " crashes, " << t.hangs
            << " hangs, " << t.foreign << " other exceptions");
  for (const std::string& e : t.examples) UNSCOPED_INFO(e);
  CHECK(t.crashes == 0);
  CHECK(t.hangs == 0);
  CHECK(t.foreign == 0);
}

// Every call of a channel end: non-blocking ones, then timed ones.
template <class Ch>
void exercise_channel(Ch& ch) {
  (void)ch.stats();
  for (int i = 0; i < 8; ++i) (void)ch.try_receive();
  (void)ch.receive_for(2ms);
  (void)ch.try_send(std::string(10, 's'));
  (void)ch.send_for(std::string(40, 't'), 2ms);
  for (int i = 0; i < 8; ++i) (void)ch.try_receive();
}

void exercise_registry(const std::string& name) {
  (void)sleet::inspect_object(name);
}

}  // namespace

TEST_CASE("corruption: damaged channel rings never crash or hang a caller", "[corruption][stress]") {
  const sleet::Topology topo = GENERATE(sleet::Topology::spsc, sleet::Topology::mpmc);
  const std::string name = unique_name("corrupt.ch");
  Cleanup cleanup(name);
  {
    auto ch = sleet::Channel<std::string>::create(
        name, {.topology = topo, .capacity = 8, .max_message_size = 64});
    for (int i = 0; i < 5; ++i) ch.send(std::string(static_cast<std::size_t>(8 * i), 'a'));
    (void)ch.try_receive();
  }
  const char* kind = topo == sleet::Topology::spsc ? "spsc channel" : "mpmc channel";
  // The config, the control block(s) and the first slots/records.
  campaign(kind, name, SLEET_TEST_SANITIZED ? 60 : 200, [&] {
             exercise_registry(name);
             auto ch = sleet::Channel<std::string>::open(name);
             exercise_channel(ch);
             ch.close();
             try {
               for (int i = 0; i < 8; ++i) (void)ch.try_receive();
             } catch (const sleet::Error& e) {
               if (e.code() != sleet::errc::closed) throw;  // drained and closed: expected
             }
           });
}

TEST_CASE("corruption: a damaged pipe never crashes or hangs a caller", "[corruption][stress]") {
  const std::string name = unique_name("corrupt.pipe");
  Cleanup cleanup(name);
  {
    auto [a, b] = sleet::Pipe<std::string>::create(name, {.capacity = 8, .max_message_size = 64});
    a.send("to b");
    b.send("to a");
    a.send(std::string(30, 'x'));
  }
  campaign("pipe", name, SLEET_TEST_SANITIZED ? 40 : 150, [&] {
             exercise_registry(name);
             auto end = sleet::Pipe<std::string>::open(name, sleet::End::b);
             for (int i = 0; i < 4; ++i) (void)end.try_receive();
             (void)end.receive_for(2ms);
             (void)end.try_send("back");
           });
}

TEST_CASE("corruption: a damaged store never crashes or hangs a caller", "[corruption][stress][kv]") {
  const std::string name = unique_name("corrupt.kv");
  Cleanup cleanup(name);
  {
    auto kv = sleet::KvStore::create(
        name, {.capacity = 8, .max_key_size = 16, .max_value_size = 32, .overflow_bytes = 1024});
    kv.set("a", 1);
    kv.set("b", std::string("bee"));
    kv.set("long", std::string(200, 'L'));  // an overflow run
    kv.set("c", 3.5);
  }
  campaign("store", name, SLEET_TEST_SANITIZED ? 60 : 200, [&] {
             exercise_registry(name);
             auto kv = sleet::KvStore::open(name);
             (void)kv.size();
             (void)kv.snapshot();
             for (const char* k : {"a", "b", "long", "c", "missing"}) {
               try {
                 (void)kv.contains(k);
                 (void)kv.get<std::string>(k);
               } catch (const sleet::Error&) {
               }
             }
             (void)kv.wait_for_change("a", 1ms);
             kv.set("a", 2);
             kv.set("long", std::string(150, 'M'));
             (void)kv.update<int>("n", [](std::optional<int> v) { return v.value_or(0) + 1; });
             (void)kv.erase("b");
             (void)kv.snapshot();
           });
}

TEST_CASE("corruption: a damaged topic never crashes or hangs a caller", "[corruption][stress][topic]") {
  const std::string name = unique_name("corrupt.topic");
  Cleanup cleanup(name);
  const sleet::Overflow overflow = GENERATE(sleet::Overflow::block, sleet::Overflow::overwrite);
  auto topic = sleet::Topic<std::string>::create(
      name, {.capacity = 8, .max_message_size = 64, .max_subscribers = 4, .overflow = overflow});
  {
    auto sub = topic.subscribe(sleet::From::oldest);
    for (int i = 0; i < 5; ++i) topic.publish(std::string(static_cast<std::size_t>(6 * i), 'p'));
    (void)sub.try_receive();
  }
  campaign(overflow == sleet::Overflow::block ? "topic (block)" : "topic (overwrite)", name,
           SLEET_TEST_SANITIZED ? 40 : 150, [&] {
             exercise_registry(name);
             auto t = sleet::Topic<std::string>::open(name);
             auto sub = t.subscribe(sleet::From::oldest);
             for (int i = 0; i < 8; ++i) (void)sub.try_receive();
             (void)sub.receive_for(2ms);
             (void)t.try_publish("x");
             (void)t.publish_for(std::string(20, 'y'), 2ms);
             for (int i = 0; i < 4; ++i) (void)sub.try_receive();
           });
}
