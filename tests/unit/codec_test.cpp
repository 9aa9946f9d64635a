// Codec<T> through real channels: cereal round trips of standard and user
// types, a user specialisation with its own wire format, the type
// fingerprint, too_large before anything is published, and decode_failed on
// crafted records (white-box writes into the ring) with the channel going on.
#include <catch2/catch.hpp>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "support.hpp"

namespace st = sleet::test;
using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Topology;

namespace codec_test {

// A user type with a member serialize.
struct Point {
  std::string label;
  std::vector<double> xs;
  std::int32_t id = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, xs, id);
  }
  bool operator==(const Point&) const = default;
};

// A user type with a free serialize (found by ADL).
struct Reading {
  std::string sensor;
  std::optional<double> value;
  std::map<std::string, std::int32_t> tags;
  bool operator==(const Reading&) const = default;
};
template <class Archive>
void serialize(Archive& ar, Reading& r) {
  ar(r.sensor, r.value, r.tags);
}

// A user type with its own sleet::Codec (text: "<n>:<key>").
struct Tagged {
  std::string key;
  std::int32_t n = 0;
  bool operator==(const Tagged&) const = default;
};

}  // namespace codec_test

template <>
struct sleet::Codec<codec_test::Tagged> {
  static constexpr std::string_view name = "tagged-text-v1";
  static constexpr std::size_t fixed_size = 0;
  static std::size_t encode(const codec_test::Tagged& v, std::byte* out, std::size_t capacity) {
    const std::string s = std::to_string(v.n) + ":" + v.key;
    if (s.size() <= capacity) std::memcpy(out, s.data(), s.size());
    return s.size();
  }
  static void decode(const std::byte* in, std::size_t size, codec_test::Tagged& out) {
    const std::string_view s(reinterpret_cast<const char*>(in), size);
    const std::size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
      throw sleet::Error(sleet::errc::decode_failed, "tagged codec: no ':' in the record");
    }
    std::int32_t n = 0;
    const auto r = std::from_chars(s.data(), s.data() + colon, n);
    if (r.ec != std::errc() || r.ptr != s.data() + colon) {
      throw sleet::Error(sleet::errc::decode_failed, "tagged codec: bad number");
    }
    out.n = n;
    out.key.assign(s.substr(colon + 1));
  }
};

namespace {

using sleet::test::thrown_error;
using sleet::test::contains;
using sleet::test::tname;

using sleet::test::topo_name;




// Sends every value through a fresh channel, one at a time (try_send /
// try_receive, send / receive, send_for / receive_for in turn), then all at
// once; everything must come back equal and in order.
template <class T>
void round_trip(Topology topo, const std::vector<T>& values, std::size_t max_message_size = 0) {
  INFO("topology " << topo_name(topo));
  const auto name = st::unique_name("codec");
  st::Cleanup cleanup(name);
  auto tx = Channel<T>::create(name, {.topology = topo,
                                      .capacity = values.size() + 1,
                                      .max_message_size = max_message_size});
  auto rx = Channel<T>::open(name);
  int k = 0;
  for (const T& v : values) {
    std::optional<T> got;
    switch (k++ % 3) {
      case 0:
        REQUIRE(tx.try_send(v));
        got = rx.try_receive();
        break;
      case 1:
        tx.send(v);
        got = rx.receive();
        break;
      default:
        REQUIRE(tx.send_for(v, 1s));
        got = rx.receive_for(1s);
        break;
    }
    REQUIRE(got.has_value());
    CHECK(*got == v);
  }
  for (const T& v : values) REQUIRE(tx.try_send(v));
  for (const T& v : values) {
    auto got = rx.try_receive();
    REQUIRE(got.has_value());
    CHECK(*got == v);
  }
  CHECK_FALSE(rx.try_receive().has_value());
  CHECK(rx.stats().sent == 2 * values.size());
  CHECK(rx.stats().received == 2 * values.size());
}

}  // namespace

TEST_CASE("codec: std::string round trips (empty, 16, 64, 1024 bytes)", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  std::vector<std::string> values{"", std::string(16, 'a'), std::string(64, 'b'),
                                  std::string(1024, 'c')};
  std::string binary(64, '\0');
  for (int i = 0; i < 64; ++i) binary[i] = static_cast<char>(i * 7);  // NULs and high bytes
  values.push_back(binary);
  round_trip<std::string>(topo, values, 2048);
}

TEST_CASE("codec: std::vector<int> and std::map<std::string,int> round trips", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  std::vector<int> big(200);
  for (int i = 0; i < 200; ++i) big[i] = i * i - 5000;
  round_trip<std::vector<int>>(topo, {{1}, {-1, 0, 1, 2147483647}, big}, 1024);
  round_trip<std::map<std::string, int>>(
      topo, {{}, {{"one", 1}}, {{"a", -1}, {"b", 2}, {"", 0}, {std::string(40, 'z'), 99}}});
}

TEST_CASE("codec: empty containers round trip", "[codec]") {
  // An empty std::vector's data() is nullptr: cereal writes it as a 0-byte
  // block, which must not reach memcpy (UBSan: "null pointer passed as
  // argument 2"). Kept apart so a failure here is easy to attribute.
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  round_trip<std::vector<int>>(topo, {{}, {1}, {}});
  round_trip<codec_test::Point>(topo, {codec_test::Point{}});
  using Tup = std::tuple<int, std::string, std::vector<std::int16_t>>;
  round_trip<Tup>(topo, {Tup{-7, "", {}}});
}

TEST_CASE("codec: std::optional, std::variant and std::tuple round trips", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  round_trip<std::optional<std::string>>(topo, {std::nullopt, std::string("x"), std::string()});
  round_trip<std::optional<std::vector<int>>>(topo, {std::nullopt, std::vector<int>{1, 2, 3}});
  using V = std::variant<std::string, std::int64_t, double>;
  round_trip<V>(topo, {V{std::string("hello")}, V{std::int64_t{-42}}, V{3.5}, V{std::string()},
                       V{std::int64_t{INT64_MAX}}});
  using Tup = std::tuple<int, std::string, std::vector<std::int16_t>>;
  round_trip<Tup>(topo, {Tup{1, "one", {1, 2}}, Tup{-7, "", {3}}, Tup{0, std::string(100, 'q'), {-1}}});
}

TEST_CASE("codec: user structs with member and free serialize round trip", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  using codec_test::Point;
  using codec_test::Reading;
  static_assert(!std::is_trivially_copyable_v<Point>);
  CHECK(sleet::Codec<Point>::name == "cereal-binary");
  CHECK(sleet::Codec<Reading>::name == "cereal-binary");
  round_trip<Point>(topo, {Point{"", {0.0}, 0}, Point{"p", {1.5, -2.25}, 7},
                           Point{std::string(50, 'l'), {1e300}, -1}});
  round_trip<Reading>(topo, {Reading{}, Reading{"t1", 21.5, {{"room", 3}}},
                             Reading{"t2", std::nullopt, {{"a", 1}, {"b", 2}}}});
}

TEST_CASE("codec: a user specialisation of sleet::Codec<T> defines the wire format",
          "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  using codec_test::Tagged;
  round_trip<Tagged>(topo, {Tagged{"alpha", 1}, Tagged{"", -5}, Tagged{"with:colon", 123456}});

  // The bytes in the ring are exactly the custom encoding.
  const auto name = st::unique_name("codec.wire");
  st::Cleanup cleanup(name);
  auto ch = Channel<Tagged>::create(name, {.topology = topo, .capacity = 4});
  ch.send(Tagged{"key", 42});
  char buf[64] = {};
  std::uint32_t size = 0;
  auto& base = ch.base();
  const bool read = topo == Topology::spsc ? base.spsc_ring().try_read(buf, sizeof buf, size)
                                           : base.mpmc_ring().try_read(buf, sizeof buf, size);
  REQUIRE(read);
  CHECK(std::string(buf, size) == "42:key");

  // The codec's name is part of the fingerprint.
  CHECK(Channel<Tagged>::type().fingerprint != sleet::detail::fingerprint<Tagged>("cereal-binary"));
}

TEST_CASE("codec: a user codec's decode failure is decode_failed naming the channel",
          "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  using codec_test::Tagged;
  const auto name = st::unique_name("codec.userbad");
  st::Cleanup cleanup(name);
  auto tx = Channel<Tagged>::create(name, {.topology = topo, .capacity = 4});
  auto rx = Channel<Tagged>::open(name);
  tx.send(Tagged{"a", 1});  // spsc: tx now holds the producer role and its ring state
  const char garbage[] = "no colon here";
  auto& base = tx.base();
  REQUIRE((topo == Topology::spsc ? base.spsc_ring().try_write(garbage, sizeof garbage - 1)
                                  : base.mpmc_ring().try_write(garbage, sizeof garbage - 1)));
  tx.send(Tagged{"b", 2});
  CHECK(rx.receive() == Tagged{"a", 1});
  auto err = thrown_error([&] { (void)rx.receive(); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::decode_failed);
  CHECK(contains(err->what(), name));
  CHECK(contains(err->what(), "no ':'"));
  CHECK(rx.receive() == Tagged{"b", 2});
}

TEST_CASE("codec: the fingerprint tells std::string from std::vector<char>", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CHECK(Channel<std::string>::type().fingerprint != Channel<std::vector<char>>::type().fingerprint);
  CHECK(Channel<int>::type().fingerprint != Channel<unsigned>::type().fingerprint);
  CHECK(sleet::detail::fingerprint<int>("raw") != sleet::detail::fingerprint<int>("other"));

  const std::string string_type(tname<std::string>());
  const std::string vector_type(tname<std::vector<char>>());
  REQUIRE(string_type != vector_type);

  const auto a = st::unique_name("codec.fp");
  st::Cleanup ca(a);
  auto sch = Channel<std::string>::create(a, {.topology = topo});
  auto err = thrown_error([&] { (void)Channel<std::vector<char>>::open(a); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::type_mismatch);
  CHECK(contains(err->what(), a));
  CHECK(contains(err->what(), string_type));
  CHECK(contains(err->what(), vector_type));

  const auto b = st::unique_name("codec.fp");
  st::Cleanup cb(b);
  auto vch = Channel<std::vector<char>>::create(b, {.topology = topo});
  err = thrown_error([&] { (void)Channel<std::string>::open(b); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::type_mismatch);
  CHECK(contains(err->what(), string_type));
  CHECK(contains(err->what(), vector_type));

  // open_or_create does not paper over it either.
  err = thrown_error([&] { (void)Channel<std::string>::open_or_create(b); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::type_mismatch);

  // The right type still opens.
  auto ok = Channel<std::string>::open(a);
  sch.send("fine");
  CHECK(ok.receive() == "fine");
}

TEST_CASE("codec: too_large is refused before anything is published", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << topo_name(topo));
  const auto name = st::unique_name("codec.big");
  st::Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(name,
                                         {.topology = topo, .capacity = 16, .max_message_size = 128});
  auto rx = Channel<std::string>::open(name);
  REQUIRE(tx.max_message_size() == 128);

  const std::string big(200, 'x');  // cereal: 8-byte length + 200 bytes = 208
  auto check_too_large = [&](const std::optional<sleet::Error>& err, std::size_t encoded) {
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::too_large);
    CHECK(contains(err->what(), name));
    CHECK(contains(err->what(), std::to_string(encoded)));
    CHECK(contains(err->what(), "128"));
  };
  check_too_large(thrown_error([&] { tx.send(big); }), 208);
  check_too_large(thrown_error([&] { (void)tx.try_send(big); }), 208);
  check_too_large(thrown_error([&] { (void)tx.send_for(big, 10ms); }), 208);
  // The boundary: 120 bytes encode to exactly 128 and fit; 121 do not.
  check_too_large(thrown_error([&] { tx.send(std::string(121, 'y')); }), 129);

  // Nothing was published: the next message received is the small one.
  REQUIRE(tx.try_send("small"));
  REQUIRE(tx.try_send(std::string(120, 'z')));
  auto got = rx.try_receive();
  REQUIRE(got);
  CHECK(*got == "small");
  got = rx.try_receive();
  REQUIRE(got);
  CHECK(*got == std::string(120, 'z'));
  CHECK_FALSE(rx.try_receive().has_value());

  // The ring is whole: fill it and drain it again after the refusals.
  int sent = 0;
  while (sent < 100 && tx.try_send("m" + std::to_string(sent))) ++sent;
  CHECK(sent >= 16);
  for (int i = 0; i < sent; ++i) CHECK(rx.receive() == "m" + std::to_string(i));
  CHECK_FALSE(rx.try_receive().has_value());
}

TEST_CASE("codec: a refused too_large message takes no room and does not count as sent",
          "[codec]") {
  // "refused before anything is written": a refusal must not use up ring
  // capacity (senders would block on messages that were never sent), nor show
  // in the statistics and list_channels().
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << topo_name(topo));
  const auto name = st::unique_name("codec.bigstats");
  st::Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(name,
                                         {.topology = topo, .capacity = 2, .max_message_size = 64});
  // try_send, not send: on a ring clogged by refusals send() would block.
  for (int i = 0; i < 4; ++i) {
    INFO("refusal " << i);
    CHECK(thrown_error([&] { (void)tx.try_send(std::string(100, 'x')); }).has_value());
  }
  CHECK(tx.stats().sent == 0);
  CHECK(tx.stats().queued == 0);
  CHECK(tx.size_approx() == 0);
  // The full capacity is still there (try_send: a clogged ring fails, not hangs).
  CHECK(tx.try_send("a"));
  CHECK(tx.try_send("b"));
  auto rx = Channel<std::string>::open(name);
  CHECK(rx.try_receive() == std::optional<std::string>("a"));
}

TEST_CASE("codec: too_large is reported even when the ring is full", "[codec]") {
  // A codec that knows the encoded size (std::string) is measured before
  // anything is claimed. (A cereal type without encoded_size() on a full
  // mpmc ring is only measured once a slot is free: try_send says full.)
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << topo_name(topo));
  const auto name = st::unique_name("codec.bigfull");
  st::Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(name,
                                         {.topology = topo, .capacity = 2, .max_message_size = 64});
  int n = 0;
  while (n < 100 && tx.try_send("fill")) ++n;
  REQUIRE(n < 100);
  const std::string big(100, 'x');
  auto err = thrown_error([&] { (void)tx.try_send(big); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::too_large);
  err = thrown_error([&] { (void)tx.send_for(big, 20ms); });
  REQUIRE(err);
  CHECK(err->code() == sleet::errc::too_large);
}

namespace {

// Writes `bytes` as one raw record into the channel's ring (white-box).
bool write_raw(sleet::detail::ChannelEnd& base, const std::string& bytes) {
  return base.topology() == Topology::spsc
             ? base.spsc_ring().try_write(bytes.data(), static_cast<std::uint32_t>(bytes.size()))
             : base.mpmc_ring().try_write(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
}

std::string u64_bytes(std::uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

}  // namespace

TEST_CASE("codec: corrupted records throw decode_failed naming the channel, then go on",
          "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << topo_name(topo));
  struct Bad {
    const char* what;
    std::string bytes;
  };
  const std::vector<Bad> bad{
      {"truncated record (length says 100, 10 bytes follow)", u64_bytes(100) + std::string(10, 'a')},
      {"garbage length field (2^64-1)", u64_bytes(~std::uint64_t{0}) + "abcd"},
      {"garbage length field (2^63)", u64_bytes(std::uint64_t{1} << 63) + "abcd"},
      {"record shorter than the length field", std::string("\x01\x02\x03", 3)},
      {"empty record", std::string()},
      {"trailing bytes after a valid string", u64_bytes(3) + "abc" + "extra"},
  };
  for (const Bad& b : bad) {
    DYNAMIC_SECTION(b.what) {
      const auto name = st::unique_name("codec.bad");
      st::Cleanup cleanup(name);
      auto tx = Channel<std::string>::create(name, {.topology = topo, .capacity = 8});
      auto rx = Channel<std::string>::open(name);
      tx.send("before");  // spsc: tx takes the producer role, so raw writes follow it
      REQUIRE(write_raw(tx.base(), b.bytes));
      tx.send("after");
      REQUIRE(write_raw(tx.base(), b.bytes));
      tx.send("last");

      CHECK(rx.receive() == "before");
      auto err = thrown_error([&] { (void)rx.receive(); });
      REQUIRE(err);
      CHECK(err->code() == sleet::errc::decode_failed);
      CHECK(contains(err->what(), "channel '" + name + "'"));
      CHECK(rx.receive() == "after");
      // try_receive reports it the same way, and the record is consumed.
      err = thrown_error([&] { (void)rx.try_receive(); });
      REQUIRE(err);
      CHECK(err->code() == sleet::errc::decode_failed);
      CHECK(contains(err->what(), name));
      auto last = rx.receive_for(1s);
      REQUIRE(last);
      CHECK(*last == "last");
      CHECK_FALSE(rx.try_receive().has_value());
    }
  }
}

TEST_CASE("codec: decode_failed for a raw type, a variant and a vector", "[codec]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << topo_name(topo));
  SECTION("raw int64 record of the wrong size") {
    const auto name = st::unique_name("codec.badraw");
    st::Cleanup cleanup(name);
    auto tx = Channel<std::int64_t>::create(name, {.topology = topo, .capacity = 4});
    auto rx = Channel<std::int64_t>::open(name);
    tx.send(1);
    REQUIRE(write_raw(tx.base(), "abc"));
    tx.send(2);
    CHECK(rx.receive() == 1);
    auto err = thrown_error([&] { (void)rx.receive(); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::decode_failed);
    CHECK(contains(err->what(), name));
    CHECK(rx.receive() == 2);
  }
  SECTION("variant with an out-of-range index") {
    using V = std::variant<std::string, std::int64_t, double>;
    const auto name = st::unique_name("codec.badvar");
    st::Cleanup cleanup(name);
    auto tx = Channel<V>::create(name, {.topology = topo, .capacity = 4});
    auto rx = Channel<V>::open(name);
    tx.send(V{1.0});
    std::string rec(4, '\0');
    const std::int32_t index = 7;
    std::memcpy(rec.data(), &index, 4);
    REQUIRE(write_raw(tx.base(), rec + u64_bytes(5)));
    tx.send(V{std::string("ok")});
    CHECK(rx.receive() == V{1.0});
    auto err = thrown_error([&] { (void)rx.receive(); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::decode_failed);
    CHECK(contains(err->what(), name));
    CHECK(rx.receive() == V{std::string("ok")});
  }
  SECTION("vector<int> whose length exceeds the record") {
    const auto name = st::unique_name("codec.badvec");
    st::Cleanup cleanup(name);
    auto tx = Channel<std::vector<int>>::create(name, {.topology = topo, .capacity = 4});
    auto rx = Channel<std::vector<int>>::open(name);
    REQUIRE(write_raw(tx.base(), u64_bytes(1000) + std::string(12, '\x01')));
    tx.send({4, 5, 6});
    auto err = thrown_error([&] { (void)rx.receive(); });
    REQUIRE(err);
    CHECK(err->code() == sleet::errc::decode_failed);
    CHECK(contains(err->what(), name));
    CHECK(rx.receive() == std::vector<int>{4, 5, 6});
  }
}
