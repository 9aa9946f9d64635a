// KvStore bad input: each gets its exact errc and a message that names the
// store (and the key, sizes or types involved).
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "support.hpp"

using sleet::errc;
using sleet::KvOptions;
using sleet::KvStore;
using sleet::test::Cleanup;
using sleet::test::unique_name;

namespace {

// Runs f, which must throw sleet::Error with `code` and a what() that
// contains every string in `parts`.
void expect_error(const std::function<void()>& f, errc code,
                  std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const sleet::Error& e) {
    INFO("what(): " << e.what());
    CHECK(sleet::to_string(e.value()) == sleet::to_string(code));
    CHECK(e.code() == code);
    for (const auto& p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
    return;
  } catch (const std::exception& e) {
    FAIL("threw a non-sleet exception: " << e.what());
  }
  FAIL("did not throw; expected errc::" << sleet::to_string(code));
}

bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::stat(sleet::detail::shm_path(name).c_str(), &st) == 0;
}

struct Blob24 {
  char bytes[24];
};
struct Blob16 {
  char bytes[16];
};

}  // namespace

TEST_CASE("KvStore bad input: key longer than max_key_size is too_large", "[kv]") {
  const std::string name = unique_name("kv.bad.key");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 8, .max_key_size = 8});
  const std::string ok(8, 'k');
  const std::string long_key = "longkey-9";  // 9 bytes
  kv.set(ok, 1);  // exactly max_key_size is fine
  CHECK(kv.get<int>(ok) == 1);

  const std::initializer_list<std::string> parts = {name, long_key, "9", "8"};
  expect_error([&] { kv.set(long_key, 1); }, errc::too_large, parts);
  expect_error([&] { (void)kv.get<int>(long_key); }, errc::too_large, parts);
  expect_error([&] { (void)kv.get_or<int>(long_key, 0); }, errc::too_large, parts);
  expect_error([&] { (void)kv.contains(long_key); }, errc::too_large, parts);
  expect_error([&] { (void)kv.erase(long_key); }, errc::too_large, parts);
  expect_error([&] { kv.update<int>(long_key, [](std::optional<int>) { return 1; }); },
               errc::too_large, parts);
  expect_error([&] { (void)kv.compare_exchange<int>(long_key, 0, 1); }, errc::too_large, parts);
  expect_error([&] { (void)kv.wait_for_change(long_key, std::chrono::milliseconds(1)); },
               errc::too_large, parts);
  // A very long key is abbreviated in the message but still named.
  expect_error([&] { kv.set(std::string(5000, 'z'), 1); }, errc::too_large,
               {name, "zzzzzzzzzz", "5000", "8"});
  CHECK(kv.size() == 1);
}

TEST_CASE("KvStore bad input: empty key is invalid_argument", "[kv]") {
  const std::string name = unique_name("kv.bad.empty");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 8});
  const std::initializer_list<std::string> parts = {name, "empty key"};
  expect_error([&] { kv.set("", 1); }, errc::invalid_argument, parts);
  expect_error([&] { (void)kv.get<int>(""); }, errc::invalid_argument, parts);
  expect_error([&] { (void)kv.get_or<int>("", 0); }, errc::invalid_argument, parts);
  expect_error([&] { (void)kv.contains(""); }, errc::invalid_argument, parts);
  expect_error([&] { (void)kv.erase(""); }, errc::invalid_argument, parts);
  expect_error([&] { kv.update<int>("", [](std::optional<int>) { return 1; }); },
               errc::invalid_argument, parts);
  expect_error([&] { (void)kv.compare_exchange<int>("", 0, 1); }, errc::invalid_argument, parts);
  expect_error([&] { (void)kv.wait_for_change("", std::chrono::milliseconds(1)); },
               errc::invalid_argument, parts);
  CHECK(kv.size() == 0);
}

TEST_CASE("KvStore bad input: value larger than max_value_size is too_large", "[kv]") {
  const std::string name = unique_name("kv.bad.value");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 8, .max_value_size = 16});
  kv.set("raw16", Blob16{});  // exactly max_value_size is fine
  kv.set("str", std::string(8, 's'));  // 8 (length) + 8 bytes
  CHECK(kv.get<std::string>("str") == std::string(8, 's'));

  // Raw: 24 bytes.
  expect_error([&] { kv.set("raw24", Blob24{}); }, errc::too_large, {name, "24", "16"});
  CHECK_FALSE(kv.contains("raw24"));
  // cereal: 8 bytes of length + 100 = 108 bytes.
  expect_error([&] { kv.set("str", std::string(100, 'x')); }, errc::too_large,
               {name, "108", "16"});
  CHECK(kv.get<std::string>("str") == std::string(8, 's'));  // the old value survives
  expect_error(
      [&] {
        kv.update<std::string>("str", [](std::optional<std::string>) { return std::string(9, 'y'); });
      },
      errc::too_large, {name, "17", "16"});
  CHECK(kv.get<std::string>("str") == std::string(8, 's'));
  expect_error([&] { (void)kv.compare_exchange<std::string>("str", std::string(8, 's'), std::string(50, 'z')); },
               errc::too_large, {name, "58", "16"});
  CHECK(kv.get<std::string>("str") == std::string(8, 's'));
  CHECK(kv.size() == 2);
  // The store stays writable after the failures.
  kv.set("str", std::string("ok"));
  CHECK(kv.get<std::string>("str") == "ok");
}

TEST_CASE("KvStore bad input: a full store is errc::full", "[kv]") {
  const std::string name = unique_name("kv.bad.full");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 4});
  for (int i = 0; i < 4; ++i) kv.set("k" + std::to_string(i), i);
  expect_error([&] { kv.set("newcomer", 1); }, errc::full, {name, "newcomer"});
  expect_error([&] { kv.update<int>("newcomer", [](std::optional<int>) { return 1; }); }, errc::full,
               {name, "newcomer"});
  CHECK(kv.size() == 4);
  CHECK_FALSE(kv.contains("newcomer"));
}

TEST_CASE("KvStore bad input: type mismatch names the key and both types", "[kv]") {
  const std::string name = unique_name("kv.bad.type");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 8});
  kv.set("greeting", std::string("hello"));
  kv.set("number", 42);

  expect_error([&] { (void)kv.get<int>("greeting"); }, errc::type_mismatch,
               {name, "greeting", "std::string", "int"});
  expect_error([&] { (void)kv.get_or<int>("greeting", 0); }, errc::type_mismatch,
               {name, "greeting", "std::string", "int"});
  expect_error([&] { (void)kv.get<std::string>("number"); }, errc::type_mismatch,
               {name, "number", "'int'", "std::string"});
  expect_error([&] { (void)kv.get<long>("number"); }, errc::type_mismatch,
               {name, "number", "'int'", "'long"});
  expect_error([&] { (void)kv.get<unsigned>("number"); }, errc::type_mismatch,
               {name, "number", "'int'", "unsigned"});
  // update: throws before calling fn, value unchanged.
  bool called = false;
  expect_error(
      [&] {
        kv.update<int>("greeting", [&](std::optional<int>) {
          called = true;
          return 1;
        });
      },
      errc::type_mismatch, {name, "greeting", "std::string", "int"});
  CHECK_FALSE(called);
  CHECK(kv.get<std::string>("greeting") == "hello");
  // The store still works for the right type, and the lock was released.
  kv.update<std::string>("greeting", [](std::optional<std::string> s) { return s.value() + "!"; });
  CHECK(kv.get<std::string>("greeting") == "hello!");
  // KvEntry::as names the key and both types.
  for (const auto& e : kv.snapshot()) {
    if (e.key != "greeting") continue;
    expect_error([&] { (void)e.as<int>(); }, errc::type_mismatch, {"greeting", "std::string", "int"});
  }
}

TEST_CASE("KvStore bad input: type names survive re-creating a store", "[kv]") {
  // Type names are registered in the store; a store created after another
  // was unmapped (perhaps at the same address) must still know its types.
  const KvOptions options{.capacity = 8};
  for (int round = 0; round < 3; ++round) {
    const std::string name = unique_name("kv.bad.retype");
    Cleanup cleanup(name);
    auto kv = KvStore::create(name, options);
    kv.set("n", 1);
    INFO("round " << round);
    expect_error([&] { (void)kv.get<std::string>("n"); }, errc::type_mismatch,
                 {name, "'n'", "holds 'int'", "std::string"});
  }
}

TEST_CASE("KvStore bad input: opening a channel as a store is kind_mismatch", "[kv]") {
  const std::string name = unique_name("kv.bad.kind");
  Cleanup cleanup(name);
  auto ch = sleet::Channel<int>::create(name, {.capacity = 4});
  expect_error([&] { (void)KvStore::open(name); }, errc::kind_mismatch, {name});
  expect_error([&] { (void)KvStore::open_or_create(name); }, errc::kind_mismatch, {name});
  expect_error([&] { (void)KvStore::create(name); }, errc::already_exists, {name});
  // The channel is untouched.
  CHECK(ch.try_send(5));
  CHECK(ch.try_receive() == 5);
}

TEST_CASE("KvStore bad input: invalid options are invalid_argument", "[kv]") {
  auto check = [](const KvOptions& o, std::initializer_list<std::string> parts) {
    const std::string name = unique_name("kv.bad.opt");
    Cleanup cleanup(name);
    std::vector<std::string> all(parts);
    all.push_back(name);
    try {
      (void)KvStore::create(name, o);
      FAIL("create did not throw");
    } catch (const sleet::Error& e) {
      INFO("what(): " << e.what());
      CHECK(e.code() == errc::invalid_argument);
      for (const auto& p : all) CHECK_THAT(e.what(), Catch::Contains(p));
    }
    CHECK_FALSE(shm_exists(name));  // nothing created
    try {
      (void)KvStore::open_or_create(name, o);
      FAIL("open_or_create did not throw");
    } catch (const sleet::Error& e) {
      CHECK(e.code() == errc::invalid_argument);
    }
    CHECK_FALSE(shm_exists(name));
  };
  check({.capacity = 0}, {"capacity", "0"});
  check({.max_key_size = 0}, {"max_key_size", "0"});
  check({.max_key_size = 1025}, {"max_key_size", "1025"});
  check({.max_value_size = 0}, {"max_value_size", "0"});

  // The edges are accepted.
  const std::string name = unique_name("kv.bad.edge");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 1, .max_key_size = 1024, .max_value_size = 1});
  kv.set(std::string(1024, 'k'), char{'v'});
  CHECK(kv.get<char>(std::string(1024, 'k')) == 'v');
  expect_error([&] { kv.set(std::string(1025, 'k'), char{'v'}); }, errc::too_large,
               {name, "1025", "1024"});
}

TEST_CASE("KvStore bad input: names, missing and existing stores", "[kv]") {
  expect_error([] { (void)KvStore::create("bad/name"); }, errc::invalid_name, {"bad/name"});
  expect_error([] { (void)KvStore::create(""); }, errc::invalid_name, {});
  const std::string name = unique_name("kv.bad.missing");
  Cleanup cleanup(name);
  expect_error([&] { (void)KvStore::open(name); }, errc::not_found, {name});
  auto kv = KvStore::create(name, {.capacity = 4});
  expect_error([&] { (void)KvStore::create(name, {.capacity = 4}); }, errc::already_exists, {name});
}
