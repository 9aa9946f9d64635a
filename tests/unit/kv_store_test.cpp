// KvStore, one process: every API call, value types, options, churn, a
// model-based randomized run against std::map, a full table, and threads.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kv_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::KvOptions;
using sleet::KvStore;
using sleet::test::Cleanup;
using sleet::test::unique_name;

namespace {

struct Point {  // trivially copyable: raw codec
  int x;
  double y;
  char tag[4];
  bool operator==(const Point&) const = default;
};

struct Person {  // cereal codec through a serialize member
  std::string name;
  int age = 0;
  std::vector<std::string> tags;
  template <class Archive>
  void serialize(Archive& a) {
    a(name, age, tags);
  }
  bool operator==(const Person&) const = default;
};

std::string key_of(const char* prefix, std::uint64_t i) { return prefix + std::to_string(i); }

// A start line for threads, so their work overlaps instead of running one
// after another.
void start_together(std::atomic<int>& ready, int n) {
  ready.fetch_add(1);
  while (ready.load() < n) std::this_thread::yield();
}

}  // namespace

TEST_CASE("KvStore: set, get, get_or, contains, erase, size", "[kv]") {
  const std::string name = unique_name("kv.basic");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64});
  CHECK(kv.name() == name);
  CHECK(kv.size() == 0);
  CHECK_FALSE(kv.contains("a"));
  CHECK(kv.get<int>("a") == std::nullopt);
  CHECK(kv.get_or<int>("a", 17) == 17);
  CHECK_FALSE(kv.erase("a"));

  kv.set("a", 1);
  kv.set("b", 2);
  CHECK(kv.size() == 2);
  CHECK(kv.contains("a"));
  CHECK(kv.get<int>("a") == 1);
  CHECK(kv.get<int>("b") == 2);
  CHECK(kv.get_or<int>("b", 17) == 2);

  kv.set("a", 10);  // overwrite: same entry, size unchanged
  CHECK(kv.get<int>("a") == 10);
  CHECK(kv.size() == 2);

  CHECK(kv.erase("a"));
  CHECK_FALSE(kv.erase("a"));
  CHECK_FALSE(kv.contains("a"));
  CHECK(kv.get<int>("a") == std::nullopt);
  CHECK(kv.get_or<int>("a", -1) == -1);
  CHECK(kv.size() == 1);

  kv.set("a", 11);  // re-insert after erase
  CHECK(kv.get<int>("a") == 11);
  CHECK(kv.size() == 2);

  // A key may change type on overwrite; get of the new type works.
  kv.set("b", std::string("two"));
  CHECK(kv.get<std::string>("b") == "two");
  CHECK(kv.size() == 2);

  // Keys are bytes: embedded NULs and near-identical keys are distinct.
  kv.set(std::string_view("k\0x", 3), 1);
  kv.set(std::string_view("k\0y", 3), 2);
  kv.set("k", 3);
  CHECK(kv.get<int>(std::string_view("k\0x", 3)) == 1);
  CHECK(kv.get<int>(std::string_view("k\0y", 3)) == 2);
  CHECK(kv.get<int>("k") == 3);
  CHECK(kv.size() == 5);
}

TEST_CASE("KvStore: update on an absent and a present key", "[kv]") {
  const std::string name = unique_name("kv.update");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16});

  bool saw_absent = false;
  int r = kv.update<int>("n", [&](std::optional<int> cur) {
    saw_absent = !cur.has_value();
    return cur.value_or(100) + 1;
  });
  CHECK(saw_absent);
  CHECK(r == 101);
  CHECK(kv.get<int>("n") == 101);
  CHECK(kv.size() == 1);

  std::optional<int> seen;
  r = kv.update<int>("n", [&](std::optional<int> cur) {
    seen = cur;
    return *cur * 2;
  });
  CHECK(seen == 101);
  CHECK(r == 202);
  CHECK(kv.get<int>("n") == 202);
  CHECK(kv.size() == 1);

  // Non-trivial values: append to a string.
  for (int i = 0; i < 5; ++i) {
    kv.update<std::string>("s", [](std::optional<std::string> cur) {
      return cur.value_or("") + "x";
    });
  }
  CHECK(kv.get<std::string>("s") == "xxxxx");

  // An exception from fn leaves the value alone and the key writable.
  CHECK_THROWS_AS(kv.update<int>("n", [](std::optional<int>) -> int { throw std::runtime_error("no"); }),
                  std::runtime_error);
  CHECK(kv.get<int>("n") == 202);
  kv.set("n", 3);
  CHECK(kv.get<int>("n") == 3);
}

TEST_CASE("KvStore: compare_exchange", "[kv]") {
  const std::string name = unique_name("kv.cas");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16});

  SECTION("absent key: false, nothing inserted") {
    CHECK_FALSE(kv.compare_exchange<int>("c", 0, 1));
    CHECK_FALSE(kv.contains("c"));
    CHECK(kv.size() == 0);
  }
  SECTION("match: swapped") {
    kv.set("c", 5);
    CHECK(kv.compare_exchange<int>("c", 5, 6));
    CHECK(kv.get<int>("c") == 6);
    CHECK(kv.size() == 1);
  }
  SECTION("mismatch: false, unchanged") {
    kv.set("c", 5);
    CHECK_FALSE(kv.compare_exchange<int>("c", 4, 6));
    CHECK(kv.get<int>("c") == 5);
  }
  SECTION("type differs: false, unchanged") {
    kv.set("c", std::int64_t{5});
    CHECK_FALSE(kv.compare_exchange<int>("c", 5, 6));
    CHECK(kv.get<std::int64_t>("c") == 5);
    kv.set("s", std::string("abc"));
    CHECK_FALSE(kv.compare_exchange<int>("s", 0, 1));
    CHECK(kv.get<std::string>("s") == "abc");
  }
  SECTION("strings: equal by encoding") {
    kv.set("s", std::string("abc"));
    CHECK_FALSE(kv.compare_exchange<std::string>("s", "abd", "zzz"));
    CHECK_FALSE(kv.compare_exchange<std::string>("s", "ab", "zzz"));
    CHECK(kv.compare_exchange<std::string>("s", "abc", "a much longer replacement"));
    CHECK(kv.get<std::string>("s") == "a much longer replacement");
    CHECK(kv.compare_exchange<std::string>("s", "a much longer replacement", ""));
    CHECK(kv.get<std::string>("s") == "");
  }
  SECTION("a CAS loop increments exactly") {
    kv.set("c", 0);
    for (int i = 0; i < 100; ++i) {
      const int cur = *kv.get<int>("c");
      REQUIRE(kv.compare_exchange<int>("c", cur, cur + 1));
    }
    CHECK(kv.get<int>("c") == 100);
  }
}

TEST_CASE("KvStore: snapshot and for_each with KvEntry::is/as", "[kv]") {
  const std::string name = unique_name("kv.snap");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 32});
  CHECK(kv.snapshot().empty());

  kv.set("i", 42);
  kv.set("s", std::string("hello"));
  kv.set("v", std::vector<int>{1, 2, 3});
  kv.set("gone", 0);
  CHECK(kv.erase("gone"));

  const auto snap = kv.snapshot();
  REQUIRE(snap.size() == 3);
  std::map<std::string, sleet::KvEntry> by_key;
  for (const auto& e : snap) by_key.emplace(e.key, e);
  REQUIRE(by_key.size() == 3);  // each key once
  CHECK_FALSE(by_key.count("gone"));

  const auto& i = by_key.at("i");
  CHECK(i.is<int>());
  CHECK_FALSE(i.is<std::string>());
  CHECK_FALSE(i.is<unsigned>());
  CHECK(i.as<int>() == 42);
  CHECK(i.type_name == "int");
  CHECK(i.bytes.size() == sizeof(int));

  const auto& s = by_key.at("s");
  CHECK(s.is<std::string>());
  CHECK(s.as<std::string>() == "hello");
  CHECK(s.type_name == "std::string");
  CHECK_THROWS_MATCHES(s.as<int>(), sleet::Error,
                       Catch::Matchers::Predicate<sleet::Error>(
                           [](const sleet::Error& e) { return e.code() == sleet::errc::type_mismatch; },
                           "type_mismatch"));

  const auto& v = by_key.at("v");
  CHECK(v.is<std::vector<int>>());
  CHECK(v.as<std::vector<int>>() == std::vector<int>{1, 2, 3});

  std::map<std::string, std::string> seen;
  int calls = 0;
  kv.for_each([&](const sleet::KvEntry& e) {
    ++calls;
    seen[e.key] = e.type_name;
    if (e.is<int>()) CHECK(e.as<int>() == 42);
  });
  CHECK(calls == 3);
  CHECK(seen == std::map<std::string, std::string>{
                    {"i", "int"}, {"s", "std::string"}, {"v", by_key.at("v").type_name}});
}

TEST_CASE("KvStore: get_encoded gives a value's codec bytes and type fingerprint", "[kv]") {
  const std::string name = unique_name("kv.encoded");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 32, .max_value_size = 64, .overflow_bytes = 4096});
  std::vector<std::byte> bytes(3, std::byte{0x55});  // resized to the value, whatever it held
  CHECK_FALSE(kv.get_encoded("missing", bytes).has_value());

  kv.set("i", 42);
  auto fp = kv.get_encoded("i", bytes);
  REQUIRE(fp.has_value());
  CHECK(*fp == sleet::detail::fingerprint<int>(sleet::Codec<int>::name));
  REQUIRE(bytes.size() == sizeof(int));
  int i = 0;
  sleet::Codec<int>::decode(bytes.data(), bytes.size(), i);
  CHECK(i == 42);

  // A value in the overflow area (larger than max_value_size) too.
  const std::string big(1000, 'x');
  kv.set("s", big);
  fp = kv.get_encoded("s", bytes);
  REQUIRE(fp.has_value());
  CHECK(*fp == sleet::detail::fingerprint<std::string>(sleet::Codec<std::string>::name));
  CHECK(bytes.size() == sizeof(std::uint64_t) + big.size());
  std::string s;
  sleet::Codec<std::string>::decode(bytes.data(), bytes.size(), s);
  CHECK(s == big);
}

TEST_CASE("KvStore: clear, then reuse", "[kv]") {
  const std::string name = unique_name("kv.clear");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16});
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 16; ++i) kv.set(key_of("k", i), i + round);
    CHECK(kv.size() == 16);
    CHECK_THROWS_AS(kv.set("one-too-many", 0), sleet::Error);
    kv.clear();
    CHECK(kv.size() == 0);
    CHECK(kv.snapshot().empty());
    for (int i = 0; i < 16; ++i) CHECK_FALSE(kv.contains(key_of("k", i)));
    CHECK(kv.get<int>("k0") == std::nullopt);
  }
  // After clear the whole table is usable again, with other keys.
  for (int i = 0; i < 16; ++i) kv.set(key_of("other", i), i);
  CHECK(kv.size() == 16);
  for (int i = 0; i < 16; ++i) CHECK(kv.get<int>(key_of("other", i)) == i);
  kv.clear();
  kv.clear();  // clearing an empty store is fine
  CHECK(kv.size() == 0);
}

TEST_CASE("KvStore: value types", "[kv]") {
  const std::string name = unique_name("kv.types");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 32, .max_value_size = 512});

  kv.set("str", std::string("hello, world"));
  kv.set("empty", std::string());
  kv.set("vec", std::vector<int>{1, -2, 3, 1 << 30});
  kv.set("pt", Point{3, 2.5, {'a', 'b', 'c', '\0'}});
  const Person ada{"Ada", 36, {"math", "engines"}};
  kv.set("person", ada);
  kv.set("u64", std::uint64_t{0xdeadbeefcafef00dull});
  kv.set("dbl", 0.1);
  kv.set("map", std::map<std::string, int>{{"a", 1}, {"b", 2}});

  CHECK(kv.get<std::string>("str") == "hello, world");
  CHECK(kv.get<std::string>("empty") == std::string());
  CHECK(kv.get<std::vector<int>>("vec") == std::vector<int>{1, -2, 3, 1 << 30});
  CHECK(kv.get<Point>("pt") == Point{3, 2.5, {'a', 'b', 'c', '\0'}});
  CHECK(kv.get<Person>("person") == ada);
  CHECK(kv.get<std::uint64_t>("u64") == 0xdeadbeefcafef00dull);
  CHECK(kv.get<double>("dbl") == 0.1);
  CHECK(kv.get<std::map<std::string, int>>("map") == std::map<std::string, int>{{"a", 1}, {"b", 2}});
  CHECK(kv.get_or<Person>("nobody", Person{"x", 1, {}}) == Person{"x", 1, {}});

  // Shrinking and growing a variable-size value in place.
  kv.set("str", std::string(400, 'L'));
  CHECK(kv.get<std::string>("str") == std::string(400, 'L'));
  kv.set("str", std::string("s"));
  CHECK(kv.get<std::string>("str") == "s");

  // update on a user type.
  kv.update<Person>("person", [](std::optional<Person> p) {
    Person q = p.value_or(Person{});
    q.age += 1;
    q.tags.push_back("poetry");
    return q;
  });
  CHECK(kv.get<Person>("person") == Person{"Ada", 37, {"math", "engines", "poetry"}});
  CHECK(kv.size() == 8);
}

TEST_CASE("KvStore: empty containers", "[kv]") {
  // Run in a child: an empty std::vector has data() == nullptr, and cereal
  // hands that to the codec's stream buffer, which passes it to memcpy (UB
  // that -fsanitize=undefined turns into an abort). In a child that abort
  // fails this case instead of ending the whole test run.
  const std::string name = unique_name("kv.empty");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 8});
  sleet::test::Child child([&] {
    kv.set("evec", std::vector<int>{});
    kv.set("estr", std::string());
    kv.set("emap", std::map<std::string, int>{});
    if (kv.get<std::vector<int>>("evec") != std::vector<int>{}) return 11;
    if (kv.get<std::string>("estr") != std::string()) return 12;
    if (kv.get<std::map<std::string, int>>("emap") != std::map<std::string, int>{}) return 13;
    kv.update<std::vector<int>>("evec", [](std::optional<std::vector<int>> v) {
      std::vector<int> x = v.value_or(std::vector<int>{99});
      x.push_back(1);
      return x;
    });
    if (kv.get<std::vector<int>>("evec") != std::vector<int>{1}) return 14;  // was present and empty
    return 0;
  });
  INFO("child exit 11-14: a value read back wrong; 1: a sanitizer abort (see stderr)");
  REQUIRE(child.wait_for(std::chrono::milliseconds(3000)) == 0);
  CHECK(kv.get<std::vector<int>>("evec") == std::vector<int>{1});
  CHECK(kv.get<std::string>("estr") == std::string());
}

TEST_CASE("KvStore: open reads the options from the segment", "[kv]") {
  const std::string name = unique_name("kv.open");
  Cleanup cleanup(name);
  auto created =
      KvStore::create(name, {.capacity = 100, .max_key_size = 20, .max_value_size = 40});
  CHECK(created.capacity() == 100);
  CHECK(created.slots() == 128);
  created.set("shared", 7);

  auto opened = KvStore::open(name);
  CHECK(opened.name() == name);
  CHECK(opened.capacity() == 100);
  CHECK(opened.slots() == 128);
  CHECK(opened.max_key_size() == 20);
  CHECK(opened.max_value_size() == 40);
  CHECK(opened.get<int>("shared") == 7);
  opened.set("back", 8);
  CHECK(created.get<int>("back") == 8);
  CHECK(created.size() == 2);

  // The opened handle enforces the creator's limits.
  opened.set(std::string(20, 'k'), 1);
  CHECK_THROWS_AS(opened.set(std::string(21, 'k'), 1), sleet::Error);
  opened.set("v40", std::string(32, 'v'));  // 8 + 32 = 40 bytes encoded
  CHECK_THROWS_AS(opened.set("v41", std::string(33, 'v')), sleet::Error);

  // Defaults when no options are given.
  const std::string name2 = unique_name("kv.defaults");
  Cleanup cleanup2(name2);
  auto d = KvStore::create(name2);
  CHECK(d.capacity() == 4096);
  CHECK(d.slots() == 4096);
  CHECK(d.max_key_size() == 64);
  CHECK(d.max_value_size() == 256);
}

TEST_CASE("KvStore: open_or_create and remove", "[kv]") {
  const std::string name = unique_name("kv.ooc");
  Cleanup cleanup(name);
  auto a = KvStore::open_or_create(name, {.capacity = 8, .max_value_size = 16});
  CHECK(a.capacity() == 8);
  a.set("x", 1);
  // The second call opens: the existing options win, the data is shared.
  auto b = KvStore::open_or_create(name, {.capacity = 1000, .max_value_size = 500});
  CHECK(b.capacity() == 8);
  CHECK(b.max_value_size() == 16);
  CHECK(b.get<int>("x") == 1);

  CHECK(KvStore::remove(name));
  CHECK_FALSE(KvStore::remove(name));
  // Existing handles keep working on the unlinked segment.
  a.set("y", 2);
  CHECK(b.get<int>("y") == 2);
  // A new open_or_create makes a fresh, empty store.
  auto c = KvStore::open_or_create(name, {.capacity = 4});
  CHECK(c.capacity() == 4);
  CHECK(c.size() == 0);
  CHECK_FALSE(c.contains("x"));
}

TEST_CASE("KvStore: permissions", "[kv]") {
  const std::string name = unique_name("kv.perm");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name);
  struct stat st {};
  REQUIRE(::stat(sleet::detail::shm_path(name).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  const std::string name2 = unique_name("kv.perm");
  Cleanup cleanup2(name2);
  auto kv2 = KvStore::create(name2, {.capacity = 8, .permissions = 0640});
  REQUIRE(::stat(sleet::detail::shm_path(name2).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
}

TEST_CASE("KvStore: insert/erase churn at 75% load never fills the table", "[kv]") {
  const std::string name = unique_name("kv.churn");
  Cleanup cleanup(name);
  constexpr std::size_t kSlots = 256;
  constexpr std::size_t kLive = kSlots * 3 / 4;
  constexpr std::uint64_t kInserts = 24 * kSlots;  // >= 20 laps of the table
  auto kv = KvStore::create(name, {.capacity = kSlots});
  REQUIRE(kv.slots() == kSlots);

  auto value_of = [](std::uint64_t i) { return sleet::test::mix(i); };
  std::deque<std::uint64_t> live;
  std::uint64_t next = 0;
  for (; next < kLive; ++next) {
    kv.set(key_of("churn.", next), value_of(next));
    live.push_back(next);
  }
  REQUIRE(kv.size() == kLive);

  std::uint64_t failures = 0;
  for (std::uint64_t n = 0; n < kInserts; ++n, ++next) {
    const std::uint64_t oldest = live.front();
    live.pop_front();
    if (!kv.erase(key_of("churn.", oldest))) ++failures;
    try {
      kv.set(key_of("churn.", next), value_of(next));
    } catch (const sleet::Error& e) {
      FAIL("insert " << n << " at steady load failed: " << e.what());
    }
    live.push_back(next);
    // Every step: exact size, the new key found, the erased key gone.
    if (kv.size() != kLive) ++failures;
    if (kv.get<std::uint64_t>(key_of("churn.", next)) != value_of(next)) ++failures;
    if (kv.contains(key_of("churn.", oldest))) ++failures;
    if (kv.get<std::uint64_t>(key_of("churn.", oldest)).has_value()) ++failures;
    REQUIRE(failures == 0);

    if (n % 512 == 511) {  // a full check now and then
      for (std::uint64_t k : live) REQUIRE(kv.get<std::uint64_t>(key_of("churn.", k)) == value_of(k));
      // No phantom hits: long-erased and never-written keys miss.
      for (std::uint64_t k = 0; k + kLive < next && k < 300; ++k) {
        REQUIRE_FALSE(kv.contains(key_of("churn.", k)));
      }
      for (std::uint64_t k = 0; k < 300; ++k) REQUIRE_FALSE(kv.contains(key_of("never.", k)));
    }
  }
  CHECK(kv.snapshot().size() == kLive);
  CHECK(kv.size() == kLive);
}

TEST_CASE("KvStore: randomized against std::map", "[kv]") {
  const std::string name = unique_name("kv.model");
  Cleanup cleanup(name);
  constexpr std::uint32_t kSeed = 0x5eed1;
  constexpr int kKeys = 48;  // at most 48 live keys in 64 slots: never full
  constexpr int kOps = 6000;
  INFO("seed " << kSeed);
  auto kv = KvStore::create(name, {.capacity = 64, .max_key_size = 16});
  std::map<std::string, int> model;
  std::mt19937 rng(kSeed);
  auto key = [&] { return key_of("m", rng() % kKeys); };

  for (int op = 0; op < kOps; ++op) {
    INFO("op " << op);
    const std::string k = key();
    const int value = static_cast<int>(rng() % 1000);
    switch (rng() % 8) {
      case 0:
      case 1:
        kv.set(k, value);
        model[k] = value;
        break;
      case 2:
        REQUIRE(kv.erase(k) == (model.erase(k) == 1));
        break;
      case 3: {
        const auto it = model.find(k);
        const std::optional<int> expected =
            it == model.end() ? std::nullopt : std::optional<int>(it->second);
        std::optional<int> seen;
        const int r = kv.update<int>(k, [&](std::optional<int> cur) {
          seen = cur;
          return cur ? *cur * 3 % 1000 : -value;
        });
        REQUIRE(seen == expected);
        model[k] = expected ? *expected * 3 % 1000 : -value;
        REQUIRE(r == model[k]);
        break;
      }
      case 4: {
        const auto it = model.find(k);
        const int expected = (it != model.end() && rng() % 2) ? it->second : value;
        const bool should = it != model.end() && it->second == expected;
        REQUIRE(kv.compare_exchange<int>(k, expected, value + 1) == should);
        if (should) model[k] = value + 1;
        break;
      }
      case 5:
        REQUIRE(kv.get_or<int>(k, -7777) == (model.count(k) ? model[k] : -7777));
        break;
      case 6:
        REQUIRE(kv.contains(k) == (model.count(k) == 1));
        break;
      case 7:
        if (rng() % 64 == 0) {
          kv.clear();
          model.clear();
        } else {
          REQUIRE(kv.get<int>(k) == (model.count(k) ? std::optional<int>(model[k]) : std::nullopt));
        }
        break;
    }
    // Check everything, every step.
    REQUIRE(kv.size() == model.size());
    for (int i = 0; i < kKeys; ++i) {
      const std::string ki = key_of("m", i);
      const auto it = model.find(ki);
      const auto got = kv.get<int>(ki);
      if (it == model.end()) {
        REQUIRE(got == std::nullopt);
      } else {
        REQUIRE(got == it->second);
      }
    }
    if (op % 500 == 0) {
      std::map<std::string, int> snap;
      for (const auto& e : kv.snapshot()) REQUIRE(snap.emplace(e.key, e.as<int>()).second);
      REQUIRE(snap == model);
    }
  }
}

TEST_CASE("KvStore: a table filled to its slot count, then errc::full", "[kv]") {
  for (std::size_t capacity : {std::size_t{16}, std::size_t{10}, std::size_t{1}}) {
    const std::string name = unique_name("kv.fill");
    Cleanup cleanup(name);
    auto kv = KvStore::create(name, {.capacity = capacity});
    const std::size_t slots = kv.slots();
    INFO("capacity " << capacity << ", slots " << slots);
    for (std::size_t i = 0; i < slots; ++i) kv.set(key_of("f", i), static_cast<int>(i));
    CHECK(kv.size() == slots);
    for (std::size_t i = 0; i < slots; ++i) CHECK(kv.get<int>(key_of("f", i)) == static_cast<int>(i));
    CHECK_FALSE(kv.contains("f-none"));  // a miss in a full table terminates

    try {
      kv.set("one-more", 1);
      FAIL("set of a new key in a full table did not throw");
    } catch (const sleet::Error& e) {
      CHECK(e.code() == sleet::errc::full);
      CHECK_THAT(e.what(), Catch::Contains(name) && Catch::Contains("one-more"));
    }
    CHECK_THROWS_AS(kv.update<int>("one-more", [](std::optional<int>) { return 1; }), sleet::Error);
    CHECK(kv.size() == slots);
    CHECK_FALSE(kv.contains("one-more"));

    // Existing keys still update; an erase makes room for exactly one.
    kv.set(key_of("f", 0), -1);
    CHECK(kv.get<int>(key_of("f", 0)) == -1);
    CHECK(kv.update<int>(key_of("f", 0), [](std::optional<int> v) { return *v - 1; }) == -2);
    CHECK(kv.erase(key_of("f", slots - 1)));
    kv.set("one-more", 1);
    CHECK(kv.get<int>("one-more") == 1);
    CHECK_THROWS_AS(kv.set("two-more", 2), sleet::Error);
    CHECK(kv.size() == slots);
  }
}

TEST_CASE("KvStore: threads writing different keys", "[kv]") {
  const std::string name = unique_name("kv.thr.diff");
  Cleanup cleanup(name);
  constexpr int kThreads = 4;
  constexpr int kKeysEach = 256;
  constexpr int kRounds = 4;
  auto kv = KvStore::create(name, {.capacity = 2048});
  std::atomic<int> errors{0}, ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start_together(ready, kThreads);
      try {
        for (int r = 0; r < kRounds; ++r) {
          for (int i = 0; i < kKeysEach; ++i) {
            const std::string k = "t" + std::to_string(t) + "." + std::to_string(i);
            kv.set(k, t * 1'000'000 + r * 1000 + i);
            if (kv.get<int>(k) != t * 1'000'000 + r * 1000 + i) ++errors;
          }
          // Erase every third key and put it back, while others insert.
          for (int i = 0; i < kKeysEach; i += 3) {
            const std::string k = "t" + std::to_string(t) + "." + std::to_string(i);
            if (!kv.erase(k)) ++errors;
            kv.set(k, t * 1'000'000 + r * 1000 + i);
          }
        }
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(kv.size() == kThreads * kKeysEach);
  std::set<std::string> keys;
  for (const auto& e : kv.snapshot()) CHECK(keys.insert(e.key).second);
  CHECK(keys.size() == kThreads * kKeysEach);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kKeysEach; ++i) {
      CHECK(kv.get<int>("t" + std::to_string(t) + "." + std::to_string(i)) ==
            t * 1'000'000 + (kRounds - 1) * 1000 + i);
    }
  }
}

TEST_CASE("KvStore: threads updating the same key", "[kv]") {
  const std::string name = unique_name("kv.thr.same");
  Cleanup cleanup(name);
  constexpr int kThreads = 4;
  constexpr int kIncrements = 10000;
  auto kv = KvStore::create(name, {.capacity = 64});
  std::atomic<int> errors{0}, ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start_together(ready, kThreads);
      try {
        for (int i = 0; i < kIncrements; ++i) {
          kv.update<int>("counter", [](std::optional<int> v) { return v.value_or(0) + 1; });
        }
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(kv.get<int>("counter") == kThreads * kIncrements);
  CHECK(kv.size() == 1);
  const auto snap = kv.snapshot();
  REQUIRE(snap.size() == 1);
  CHECK(snap[0].key == "counter");
}

TEST_CASE("KvStore: threads inserting and erasing the same keys never duplicate", "[kv]") {
  const std::string name = unique_name("kv.thr.dup");
  Cleanup cleanup(name);
  constexpr int kThreads = 4;
  constexpr int kKeys = 40;
  constexpr int kOps = 8000;
  auto kv = KvStore::create(name, {.capacity = 64});
  std::atomic<int> errors{0}, ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      start_together(ready, kThreads);
      try {
        for (int i = 0; i < kOps; ++i) {
          const std::string k = key_of("d", rng() % kKeys);
          switch (rng() % 4) {
            case 0:
              (void)kv.erase(k);
              break;
            case 1:
              kv.update<int>(k, [](std::optional<int> v) { return v.value_or(0) + 1; });
              break;
            default:
              kv.set(k, t);
              break;
          }
          if (const auto v = kv.get<int>(k); v && *v < 0) ++errors;
        }
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  std::set<std::string> keys;
  for (const auto& e : kv.snapshot()) CHECK(keys.insert(e.key).second);  // each key once
  CHECK(kv.size() == keys.size());
  for (int i = 0; i < kKeys; ++i) CHECK(kv.contains(key_of("d", i)) == (keys.count(key_of("d", i)) == 1));
}

TEST_CASE("KvStore: readers in threads never see a torn value", "[kv]") {
  const std::string name = unique_name("kv.thr.torn");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16, .max_value_size = 128});
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0}, reads{0};
  const std::vector<std::string> keys = {"r0", "r1", "s0", "s1"};
  std::thread writer([&] {
    std::uint64_t seq = 1;
    try {
      while (!stop.load(std::memory_order_relaxed)) {
        for (const auto& k : keys) {
          const bool rec = k[0] == 'r';
          switch (seq % 3) {
            case 0:
              rec ? kv.set(k, sleet::test::make_kv_rec(seq)) : kv.set(k, sleet::test::make_kv_str(seq));
              break;
            case 1:
              if (rec) {
                kv.update<sleet::test::KvRec>(k, [&](auto) { return sleet::test::make_kv_rec(seq); });
              } else {
                kv.update<std::string>(k, [&](auto) { return sleet::test::make_kv_str(seq); });
              }
              break;
            case 2:
              (void)kv.erase(k);
              rec ? kv.set(k, sleet::test::make_kv_rec(seq)) : kv.set(k, sleet::test::make_kv_str(seq));
              break;
          }
          ++seq;
        }
      }
    } catch (...) {
      ++bad;
    }
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      try {
        while (!stop.load(std::memory_order_relaxed)) {
          for (const auto& k : keys) {
            if (k[0] == 'r') {
              if (auto v = kv.get<sleet::test::KvRec>(k); v && !sleet::test::kv_rec_ok(*v)) ++bad;
            } else {
              if (auto v = kv.get<std::string>(k); v && !sleet::test::kv_str_ok(*v)) ++bad;
            }
            reads.fetch_add(1, std::memory_order_relaxed);
          }
        }
      } catch (...) {
        ++bad;
      }
    });
  }
  std::this_thread::sleep_for(400ms);
  stop = true;
  writer.join();
  for (auto& th : readers) th.join();
  CHECK(bad == 0);
  CHECK(reads > 100);
}

TEST_CASE("KvStore: wait_for_change in one process", "[kv]") {
  const std::string name = unique_name("kv.wait");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64});

  SECTION("times out when nothing changes") {
    kv.set("w", 1);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(kv.wait_for_change("w", 100ms));
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    CHECK(elapsed >= 100ms);
    CHECK(elapsed < 1500ms);
    CHECK_FALSE(kv.wait_for_change("w", 0ms));
  }
  SECTION("writes to other keys do not end the wait") {
    // Including keys of w's own stripe, whose writes wake its sleepers.
    const auto table = sleet::test::kv_white_box(name);
    std::vector<std::string> others;
    for (int i = 0; others.size() < 4 && i < 100000; ++i) {
      if (table.stripe_of(key_of("other", i)) == table.stripe_of("w")) others.push_back(key_of("other", i));
    }
    REQUIRE(others.size() == 4);
    for (int i = 0; i < 4; ++i) others.push_back(key_of("x", i));
    std::atomic<bool> stop{false};
    std::thread other([&] {
      for (int i = 0; !stop; ++i) {
        kv.set(others[i % others.size()], i);
        std::this_thread::sleep_for(1ms);
      }
    });
    const auto t0 = std::chrono::steady_clock::now();
    const bool changed = kv.wait_for_change("w", 150ms);
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    stop = true;
    other.join();
    CHECK_FALSE(changed);
    CHECK(elapsed >= 150ms);
  }
  for (const char* how : {"set", "update", "erase", "insert", "clear"}) {
    DYNAMIC_SECTION("wakes on " << how) {
      if (std::string(how) != "insert") kv.set("w", 1);
      std::atomic<bool> waiting{false};
      std::thread writer([&] {
        while (!waiting) std::this_thread::yield();
        std::this_thread::sleep_for(50ms);  // let the waiter fall asleep
        const std::string h = how;
        if (h == "set" || h == "insert") kv.set("w", 2);
        if (h == "update") kv.update<int>("w", [](std::optional<int> v) { return *v + 1; });
        if (h == "erase") (void)kv.erase("w");
        if (h == "clear") kv.clear();
      });
      const auto t0 = std::chrono::steady_clock::now();
      waiting = true;
      const bool changed = kv.wait_for_change("w", 2s);
      const auto elapsed = std::chrono::steady_clock::now() - t0;
      writer.join();
      CHECK(changed);
      CHECK(elapsed < 1500ms);
    }
  }
}

// The stripe's {changes, watchers} pair is an eventcount (futex.hpp): a
// write that nobody watches leaves the epoch alone (no read-modify-write on
// the write path); a watched write moves it and wakes the watcher.
TEST_CASE("KvStore: the stripe's change counter moves only while watched", "[kv][eventcount]") {
  const std::string name = unique_name("kv.ec");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64});
  const auto table = sleet::test::kv_white_box(name);
  auto& stripe = table.stripe(table.stripe_of("w"));
  for (int i = 0; i < 100; ++i) kv.set("w", i);
  CHECK(stripe.changes.load() == 0);
  CHECK(stripe.watchers.load() == 0);

  std::thread writer([&] {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (stripe.watchers.load() == 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::yield();
    }
    kv.set("w", 1000);
  });
  const bool changed = kv.wait_for_change("w", 5s);
  writer.join();
  CHECK(changed);
  CHECK(stripe.changes.load() == 1);
  CHECK(stripe.watchers.load() == 0);
  CHECK(kv.get<int>("w") == 1000);
}
