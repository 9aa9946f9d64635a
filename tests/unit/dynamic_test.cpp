// sleet::Dynamic: every kind round-trips through a channel, a pipe and the
// store; its fingerprint differs from every fixed type; as<>() on the wrong
// kind and a record nested past kMaxDepth are errors naming the problem.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "support.hpp"

namespace st = sleet::test;
using sleet::Dynamic;

namespace {

Dynamic every_kind() {
  Dynamic::Dict d;
  d.emplace_back("null", nullptr);
  d.emplace_back("bool", true);
  d.emplace_back("int", std::int64_t{-9007199254740993});
  d.emplace_back("float", 2.5);
  d.emplace_back("str", "h\xc3\xa9llo");
  d.emplace_back("bytes", Dynamic::Bytes{0, 255, 7});
  d.emplace_back("list", Dynamic::list({1, "two", 3.0}));
  d.emplace_back("tuple", Dynamic::Tuple{{1, 2}});
  d.emplace_back(7, "an int key");
  d.emplace_back("pickled", Dynamic::Pickled{{0x80, 0x04}});
  return Dynamic(std::move(d));
}

// n lists, each inside the next.
Dynamic nested(int n) {
  Dynamic v = 1;
  for (int i = 0; i < n; ++i) v = Dynamic(Dynamic::List{v});
  return v;
}

}  // namespace

TEST_CASE("Dynamic: every kind round-trips through a channel", "[dynamic]") {
  const auto name = st::unique_name("dyn");
  st::Cleanup cleanup(name);
  auto ch = sleet::Channel<Dynamic>::create(name, {.capacity = 4, .max_message_size = 512});
  const Dynamic v = every_kind();
  ch.send(v);
  const Dynamic got = ch.receive();
  CHECK(got == v);
  REQUIRE(got.find("int") != nullptr);
  CHECK(got.find("int")->as<std::int64_t>() == -9007199254740993);
  CHECK(got.find("str")->as<std::string>() == "h\xc3\xa9llo");
  CHECK(got.find("missing") == nullptr);
  CHECK(got.find("null")->is_null());
  CHECK(got.kind_name() == "dict");
  CHECK(got.find("tuple")->kind_name() == "tuple");
}

TEST_CASE("Dynamic: in the store, next to fixed types", "[dynamic]") {
  const auto name = st::unique_name("dynkv");
  st::Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 16, .max_value_size = 512});
  kv.set("v", every_kind());
  CHECK(kv.get<Dynamic>("v") == every_kind());
  kv.set("s", std::string("text"));
  CHECK_THROWS_MATCHES(kv.get<Dynamic>("s"), sleet::Error,
                       Catch::Predicate<sleet::Error>(
                           [](const sleet::Error& e) { return e.value() == sleet::errc::type_mismatch; }));
}

TEST_CASE("Dynamic: a channel of Dynamic is not a channel of std::string", "[dynamic]") {
  const auto name = st::unique_name("dynfp");
  st::Cleanup cleanup(name);
  auto ch = sleet::Channel<Dynamic>::create(name);
  CHECK_THROWS_MATCHES(sleet::Channel<std::string>::open(name), sleet::Error,
                       Catch::Predicate<sleet::Error>(
                           [](const sleet::Error& e) { return e.value() == sleet::errc::type_mismatch; }));
  CHECK(sleet::Channel<Dynamic>::type().fingerprint != sleet::Channel<sleet::Message>::type().fingerprint);
}

TEST_CASE("Dynamic: as<>() of another kind is type_mismatch naming the kind", "[dynamic]") {
  const Dynamic v = "text";
  CHECK(v.as<std::string>() == "text");
  CHECK_THROWS_WITH(v.as<std::int64_t>(), Catch::Contains("holds str"));
  CHECK_FALSE(v.is<double>());
}

TEST_CASE("Dynamic: nesting is bounded on encode and decode", "[dynamic]") {
  const auto name = st::unique_name("dyndeep");
  st::Cleanup cleanup(name);
  auto ch = sleet::Channel<Dynamic>::create(name, {.capacity = 4, .max_message_size = 4096});
  // kMaxDepth levels in all (the outermost list counts as one) travel.
  ch.send(nested(Dynamic::kMaxDepth - 1));
  CHECK(ch.receive() == nested(Dynamic::kMaxDepth - 1));
  CHECK_THROWS_WITH(ch.send(nested(Dynamic::kMaxDepth)), Catch::Contains("nested deeper than 64"));

  // A crafted record, as a peer that ignores the bound could write it: the
  // reader refuses it with decode_failed and the channel goes on.
  // cereal's variant index is 4 bytes, a vector's length 8 (little endian).
  std::vector<std::uint8_t> bytes;
  auto put = [&bytes](std::uint64_t v, int n) {
    for (int b = 0; b < n; ++b) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * b)));
  };
  for (int i = 0; i < 200; ++i) {  // a List of one element, 200 times over
    put(6, 4);
    put(1, 8);
  }
  put(0, 4);  // null
  CHECK(bytes.size() < 4096);
  std::vector<std::byte> record(bytes.size());
  std::memcpy(record.data(), bytes.data(), bytes.size());
  Dynamic out;
  CHECK_THROWS_MATCHES(sleet::Codec<Dynamic>::decode(record.data(), record.size(), out), sleet::Error,
                       Catch::Predicate<sleet::Error>(
                           [](const sleet::Error& e) { return e.value() == sleet::errc::decode_failed; }));
  ch.send(Dynamic(1));
  CHECK(ch.receive() == Dynamic(1));
}
