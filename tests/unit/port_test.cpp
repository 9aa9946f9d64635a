// White-box tests of the two ports (include/sleet/detail/spsc_port.hpp,
// mpmc_port.hpp) driven through a real Channel: claim/commit/abort and
// batches (many commits, one publish; many consumes, one release), exact
// claims of mixed sizes through many wrap-arounds checked against a model of
// the ring, aborts that publish nothing and lose nothing, mpmc skips, the
// exact-claim packing of small messages, and record lengths that fail their
// bounds (errc::decode_failed, never a crash).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "ipc/ipc_support.hpp"
#include "support.hpp"

namespace {

using sleet::Channel;
using sleet::errc;
using sleet::Topology;
using sleet::detail::ChannelCore;
using sleet::detail::MpmcPort;
using sleet::detail::MpmcRing;
using sleet::detail::Poll;
using sleet::detail::SpscPort;
using sleet::detail::SpscRing;
using sleet::test::Cleanup;
using sleet::test::mix;
using sleet::test::Rng;
using sleet::test::unique_name;

// The core and the port of a channel object, for tests that drive the port.
template <class Port>
struct Access {
  ChannelCore* core = nullptr;
  Port* port = nullptr;
  Port* operator->() const { return port; }
};

template <class Port, class T>
Access<Port> access(Channel<T>& ch) {
  Access<Port> a;
  ch.base().visit([&](auto& core, auto& port) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(port)>, Port>) {
      a.core = &core;
      a.port = &port;
    }
  });
  REQUIRE(a.port != nullptr);
  return a;
}

// The byte array of an spsc channel's ring (after its control block).
template <class T>
std::byte* spsc_array(Channel<T>& ch) {
  return static_cast<std::byte*>(ch.base().core().ring()) + SpscRing::control_size();
}
// The header word of the spsc record at array offset `pos`.
template <class T>
std::atomic_ref<std::uint64_t> spsc_header(Channel<T>& ch, std::uint64_t pos) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(spsc_array(ch) + pos));
}
std::uint64_t header_word(std::uint32_t size, std::uint32_t flags) {
  return std::uint64_t{flags} << 32 | size;
}

std::byte pattern(std::uint64_t seq, std::uint64_t i) {
  return static_cast<std::byte>(mix(seq * 1'000'003 + i) & 0xff);
}
void fill(std::byte* p, std::uint32_t size, std::uint64_t seq) {
  for (std::uint32_t i = 0; i < size; ++i) p[i] = pattern(seq, i);
}
bool matches(const std::byte* p, std::uint32_t size, std::uint64_t seq) {
  for (std::uint32_t i = 0; i < size; ++i) {
    if (p[i] != pattern(seq, i)) return false;
  }
  return true;
}

// How many records of `payload` bytes an empty spsc array of `bytes` takes
// from byte counter `start` (head == tail == start; a model of SpscRing::claim(): pads at the wrap, and the
// 8 bytes past every record for the next header).
std::uint64_t spsc_fit_count(std::uint64_t bytes, std::uint64_t payload, std::uint64_t start = 0) {
  const std::uint64_t need = SpscRing::record_size(payload);
  std::uint64_t tail = start;
  std::uint64_t n = 0;
  for (;;) {
    const std::uint64_t pos = tail & (bytes - 1);
    const std::uint64_t to_end = bytes - pos;
    const bool wrap = need > to_end;
    const std::uint64_t step = wrap ? to_end + need : need;
    if (tail + step + SpscRing::kHeader - start > bytes) return n;
    tail += step;
    ++n;
  }
}

// A cereal type without encoded_size(): the spsc port encodes it in place
// when there is room for max_message_size, else measures it and claims
// exactly what it needs.
struct Labelled {
  std::string label;
  std::int32_t id = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, id);
  }
  bool operator==(const Labelled&) const = default;
};

template <class T>
std::size_t encoded_size_of(const T& v) {
  std::vector<std::byte> buf(1 << 16);
  return sleet::Codec<T>::encode(v, buf.data(), buf.size());
}

// What a test expects the consumer to find next.
struct Expected {
  std::uint64_t seq;
  std::uint32_t size;
  std::uint64_t end;  // spsc: the byte counter just past the record
};

}  // namespace

// ---------------------------------------------------------------------------
// spsc

TEST_CASE("port spsc: commits are invisible until publish(); consumes return space at release()",
          "[port][spsc][batch]") {
  const auto name = unique_name("port.batch");
  Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = 100});
  auto rx = Channel<std::string>::open(name);
  auto p = access<SpscPort>(tx);
  auto c = access<SpscPort>(rx);
  auto& ctl = p->ring().control();

  const std::uint32_t sizes[] = {10, 0, 20, 7};
  std::uint64_t end = 0;
  for (std::uint64_t i = 0; i < 4; ++i) {
    SpscPort::Claim cl;
    REQUIRE(p->try_claim(*p.core, sizes[i], cl) == Poll::ready);
    fill(cl.data(), sizes[i], i);
    p->commit(cl, sizes[i]);
    end += SpscRing::record_size(sizes[i]);
    // Nothing of the batch is visible yet, and the shared tail has not moved.
    SpscPort::Record r;
    CHECK(c->try_peek(*c.core, r) == Poll::empty);
    CHECK(ctl.tail.load() == 0);
    CHECK(ctl.in_send.load() == 1);  // the close bracket is open for the whole batch
  }
  CHECK(tx.stats().sent == 0);
  p->publish();
  CHECK(ctl.in_send.load() == 0);
  CHECK(ctl.tail.load() == end);
  CHECK(tx.stats().sent == 4);

  std::uint64_t head = 0;
  for (std::uint64_t i = 0; i < 4; ++i) {
    SpscPort::Record r;
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
    CHECK(r.size() == sizes[i]);
    CHECK(matches(r.data(), r.size(), i));
    c->consume(r);
    head += SpscRing::record_size(sizes[i]);
    CHECK(ctl.head.load() == 0);  // released only at release()
  }
  SpscPort::Record r;
  CHECK(c->try_peek(*c.core, r) == Poll::empty);
  c->release();
  CHECK(ctl.head.load() == head);
  CHECK(ctl.head.load() == end);
  const auto s = rx.stats();
  CHECK(s.sent == 4);
  CHECK(s.received == 4);
  CHECK(s.queued == 0);
}

TEST_CASE("port spsc: exact claims of mixed sizes wrap around; full and contents match a model",
          "[port][spsc][wrap]") {
  const auto name = unique_name("port.wrap");
  Cleanup cleanup(name);
  constexpr std::uint32_t kMax = 100;
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = kMax});
  auto rx = Channel<std::string>::open(name);
  auto p = access<SpscPort>(tx);
  auto c = access<SpscPort>(rx);
  auto& ctl = p->ring().control();
  const std::uint64_t bytes = ctl.bytes;
  REQUIRE(bytes == SpscRing::array_bytes(4, kMax));

  Rng rng(GENERATE(1u, 2u, 3u));
  std::uint64_t tail = 0;  // model: the producer's byte counter
  std::uint64_t head = 0;  // model: the released head
  std::uint64_t local = 0;  // model: the consumer's position (released at release())
  std::deque<std::pair<std::uint64_t, std::uint64_t>> pads;  // [start, end) of padding records
  std::deque<Expected> queue;
  std::uint64_t seq = 0;
  std::uint64_t committed = 0, received = 0, wraps = 0, aborts = 0, fulls = 0;
  for (int round = 0; round < 6000; ++round) {
    // Producer: a batch of 1..4 claims, some aborted, then one publish.
    const int batch = 1 + static_cast<int>(rng.below(4));
    bool any = false;
    for (int k = 0; k < batch; ++k) {
      const auto size = static_cast<std::uint32_t>(rng.below(kMax + 1));
      const std::uint64_t need = SpscRing::record_size(size);
      const std::uint64_t pos = tail & (bytes - 1);
      const std::uint64_t to_end = bytes - pos;
      const bool wrap = need > to_end;
      const std::uint64_t step = wrap ? to_end + need : need;
      const bool fits = tail + step + SpscRing::kHeader - head <= bytes;
      SpscPort::Claim cl;
      const Poll got = p->try_claim(*p.core, size, cl);
      INFO("round " << round << " size " << size << " tail " << tail << " head " << head);
      REQUIRE((got == Poll::ready) == fits);
      if (got != Poll::ready) {
        ++fulls;
        break;
      }
      // The claim is exactly where the model puts it.
      REQUIRE(cl.data() == spsc_array(tx) + (wrap ? 0 : pos) + SpscRing::kHeader);
      if (wrap) {
        ++wraps;
        pads.emplace_back(tail, tail + to_end);  // published with the batch (or by the abort)
      }
      if (rng.below(8) == 0) {
        p->abort(cl);  // publishes what the batch committed (and a pad), nothing of this claim
        ++aborts;
        if (wrap) tail += to_end;
        any = false;
        continue;
      }
      fill(cl.data(), size, seq);
      p->commit(cl, size);
      tail += step;
      queue.push_back({seq, size, tail});
      ++seq;
      ++committed;
      any = true;
    }
    if (any) p->publish();
    REQUIRE(ctl.in_send.load() == 0);
    // Consumer: up to 5 records, one release.
    const int take = static_cast<int>(rng.below(6));
    int took = 0;
    for (; took < take; ++took) {
      SpscPort::Record r;
      const Poll got = c->try_peek(*c.core, r);
      if (queue.empty()) {
        REQUIRE(got == Poll::empty);
        // The peek stepped over a padding record that starts where it stands.
        while (!pads.empty() && pads.front().first < local) pads.pop_front();
        if (!pads.empty() && pads.front().first == local) local = pads.front().second;
        break;
      }
      REQUIRE(got == Poll::ready);
      const Expected e = queue.front();
      queue.pop_front();
      REQUIRE(r.size() == e.size);
      REQUIRE(matches(r.data(), r.size(), e.seq));
      c->consume(r);
      local = e.end;
      ++received;
    }
    if (took != 0) {
      c->release();
      head = local;
      REQUIRE(ctl.head.load() == head);
    }
  }
  // Drain the rest.
  for (;;) {
    SpscPort::Record r;
    if (c->try_peek(*c.core, r) != Poll::ready) break;
    REQUIRE_FALSE(queue.empty());
    REQUIRE(r.size() == queue.front().size);
    REQUIRE(matches(r.data(), r.size(), queue.front().seq));
    c->consume(r);
    queue.pop_front();
    ++received;
  }
  c->release();
  CHECK(queue.empty());
  CHECK(received == committed);
  const auto s = rx.stats();
  CHECK(s.sent == committed);
  CHECK(s.received == committed);
  INFO("committed " << committed << ", wraps " << wraps << ", aborts " << aborts << ", full "
                    << fulls);
  CHECK(tail / bytes > 100);  // many laps
  CHECK(wraps > 100);
  CHECK(aborts > 100);
  CHECK(fulls > 10);
  // The channel still works through the public API.
  tx.send("after");
  CHECK(rx.receive() == "after");
}

TEST_CASE("port spsc: abort publishes nothing of its claim and loses nothing after",
          "[port][spsc][abort]") {
  const auto name = unique_name("port.abort");
  Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = 100});
  auto rx = Channel<std::string>::open(name);
  auto p = access<SpscPort>(tx);
  auto c = access<SpscPort>(rx);
  auto& ctl = p->ring().control();
  const std::uint64_t bytes = ctl.bytes;
  REQUIRE(bytes == 512);

  SECTION("a single claim") {
    SpscPort::Claim cl;
    REQUIRE(p->try_claim(*p.core, 40, cl) == Poll::ready);
    fill(cl.data(), 40, 1);
    p->abort(cl);
    CHECK(ctl.in_send.load() == 0);
    CHECK(ctl.tail.load() == 0);
    CHECK(spsc_header(tx, 0).load() == 0);
    SpscPort::Record r;
    CHECK(c->try_peek(*c.core, r) == Poll::empty);
    CHECK(tx.stats().sent == 0);
    // The next claim reuses the space.
    SpscPort::Claim again;
    REQUIRE(p->try_claim(*p.core, 40, again) == Poll::ready);
    CHECK(again.data() == cl.data());
    p->abort(again);
    tx.send("next");
    CHECK(rx.receive() == "next");
    CHECK_FALSE(rx.try_receive().has_value());
    CHECK(rx.stats().sent == 1);
    CHECK(rx.stats().received == 1);
  }
  SECTION("in the middle of a batch: the commits before it are published") {
    SpscPort::Claim a, b, d;
    REQUIRE(p->try_claim(*p.core, 10, a) == Poll::ready);
    fill(a.data(), 10, 10);
    p->commit(a, 10);
    REQUIRE(p->try_claim(*p.core, 20, b) == Poll::ready);
    fill(b.data(), 20, 20);
    p->abort(b);
    CHECK(ctl.in_send.load() == 0);
    CHECK(ctl.tail.load() == SpscRing::record_size(10));
    SpscPort::Record r;
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
    CHECK(r.size() == 10);
    CHECK(matches(r.data(), 10, 10));
    c->consume(r);
    CHECK(c->try_peek(*c.core, r) == Poll::empty);
    // The next claim takes the aborted one's place.
    REQUIRE(p->try_claim(*p.core, 30, d) == Poll::ready);
    CHECK(d.data() == b.data());
    fill(d.data(), 30, 30);
    p->commit(d, 30);
    p->publish();
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
    CHECK(r.size() == 30);
    CHECK(matches(r.data(), 30, 30));
    c->consume(r);
    c->release();
    CHECK(rx.stats().sent == 2);
    CHECK(rx.stats().received == 2);
  }
  SECTION("a claim that wrapped: only its padding record is published") {
    // Records of 24 bytes up to 512 - 32 = 480, consumed, so the next claim
    // of 100 (112 bytes) must wrap.
    std::uint64_t tail = 0;
    std::uint64_t seq = 0;
    while (tail != bytes - 32) {
      REQUIRE(seq < 100);
      SpscPort::Claim cl;
      REQUIRE(p->try_claim(*p.core, 16, cl) == Poll::ready);
      fill(cl.data(), 16, seq++);
      p->commit(cl, 16);
      p->publish();
      tail += 24;
      SpscPort::Record r;
      REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
      c->consume(r);
      c->release();
    }
    SpscPort::Claim cl;
    REQUIRE(p->try_claim(*p.core, 100, cl) == Poll::ready);
    CHECK(cl.data() == spsc_array(tx) + SpscRing::kHeader);  // at 0, after the pad
    fill(cl.data(), 100, 999);
    p->abort(cl);
    CHECK(ctl.in_send.load() == 0);
    CHECK(ctl.tail.load() == bytes);  // the pad is published
    CHECK(spsc_header(tx, bytes - 32).load() == header_word(24, SpscRing::kPad));
    CHECK(spsc_header(tx, 0).load() == 0);
    SpscPort::Record r;
    CHECK(c->try_peek(*c.core, r) == Poll::empty);  // steps over the pad, finds nothing
    // The next claim starts the lap without a second pad.
    SpscPort::Claim next;
    REQUIRE(p->try_claim(*p.core, 100, next) == Poll::ready);
    CHECK(next.data() == spsc_array(tx) + SpscRing::kHeader);
    fill(next.data(), 100, 1000);
    p->commit(next, 100);
    p->publish();
    CHECK(ctl.tail.load() == bytes + SpscRing::record_size(100));
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
    CHECK(r.size() == 100);
    CHECK(matches(r.data(), 100, 1000));
    c->consume(r);
    c->release();
    CHECK(ctl.head.load() == bytes + SpscRing::record_size(100));
    CHECK(rx.stats().sent == seq + 1);
    CHECK(rx.stats().received == seq + 1);
  }
}

TEST_CASE("port spsc: a full ring reports empty claims and reopens after release",
          "[port][spsc][full]") {
  const auto name = unique_name("port.full");
  Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = 100});
  auto rx = Channel<std::string>::open(name);
  auto p = access<SpscPort>(tx);
  auto c = access<SpscPort>(rx);
  const std::uint64_t bytes = p->ring().control().bytes;
  const std::uint64_t fit = spsc_fit_count(bytes, 8);
  // A batch: every claim that fits is committed, the first that does not
  // returns empty, and the batch stays publishable.
  std::uint64_t n = 0;
  for (;;) {
    SpscPort::Claim cl;
    const Poll got = p->try_claim(*p.core, 8, cl);
    if (got != Poll::ready) {
      CHECK(got == Poll::empty);
      break;
    }
    fill(cl.data(), 8, n);
    p->commit(cl, 8);
    ++n;
    REQUIRE(n <= fit);
  }
  CHECK(n == fit);
  CHECK(p->ring().control().in_send.load() == 1);  // still open: the batch is unpublished
  p->publish();
  CHECK(p->ring().control().in_send.load() == 0);
  // One consumed record is not enough room until it is released.
  SpscPort::Record r;
  REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
  CHECK(matches(r.data(), 8, 0));
  c->consume(r);
  SpscPort::Claim cl;
  CHECK(p->try_claim(*p.core, 8, cl) == Poll::empty);
  c->release();
  REQUIRE(p->try_claim(*p.core, 8, cl) == Poll::ready);
  fill(cl.data(), 8, n);
  p->commit(cl, 8);
  p->publish();
  for (std::uint64_t i = 1; i <= n; ++i) {
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
    CHECK(r.size() == 8);
    CHECK(matches(r.data(), 8, i));
    c->consume(r);
  }
  c->release();
  CHECK(c->try_peek(*c.core, r) == Poll::empty);
}

TEST_CASE("port spsc: sends claim the exact encoded size, so small messages pack",
          "[port][spsc][exact]") {
  constexpr std::size_t kMax = 16384;
  SECTION("std::string (encoded in place, size known)") {
    const auto name = unique_name("port.exact");
    Cleanup cleanup(name);
    auto ch = Channel<std::string>::create(
        name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = kMax});
    const std::string ten = "0123456789";
    std::uint64_t n = 0;
    while (ch.try_send(ten)) {
      ++n;
      REQUIRE(n < 1'000'000);
    }
    const std::uint64_t bytes = SpscRing::array_bytes(4, kMax);
    // 8 bytes of length + 10 characters: a 32-byte record.
    CHECK(SpscRing::record_size(8 + ten.size()) == 32);
    CHECK(n == spsc_fit_count(bytes, 8 + ten.size()));
    CHECK(n == (bytes - 8) / 32);
    CHECK(n > 4 * 100);
    CHECK(ch.stats().times_full == 1);
    for (std::uint64_t i = 0; i < n; ++i) REQUIRE(ch.try_receive() == ten);
    CHECK_FALSE(ch.try_receive().has_value());
  }
  SECTION("std::vector<std::int32_t> of 5 (40-byte records: a pad at every wrap)") {
    const auto name = unique_name("port.exact");
    Cleanup cleanup(name);
    auto ch = Channel<std::vector<std::int32_t>>::create(
        name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = kMax});
    const std::vector<std::int32_t> v{1, -2, 3, -4, 5};
    const std::uint64_t rec = SpscRing::record_size(8 + 5 * 4);
    REQUIRE(rec == 40);
    // Start from a non-zero position: 5 messages sent and received.
    for (int i = 0; i < 5; ++i) {
      REQUIRE(ch.try_send(v));
      REQUIRE(ch.try_receive() == v);
    }
    std::uint64_t n = 0;
    while (ch.try_send(v)) {
      ++n;
      REQUIRE(n < 1'000'000);
    }
    const std::uint64_t bytes = SpscRing::array_bytes(4, kMax);
    CHECK(n == spsc_fit_count(bytes, 8 + 5 * 4, 5 * rec));
    CHECK(n >= (bytes - 8) / rec - 1);  // at most one record lost to the pad
    CHECK(n > 400);
    for (std::uint64_t i = 0; i < n; ++i) REQUIRE(ch.try_receive() == v);
    CHECK_FALSE(ch.try_receive().has_value());
  }
  SECTION("a cereal struct without encoded_size (measured, then an exact claim)") {
    const auto name = unique_name("port.exact");
    Cleanup cleanup(name);
    auto ch = Channel<Labelled>::create(
        name, {.topology = Topology::spsc, .capacity = 4, .max_message_size = kMax});
    const Labelled v{"abc", 7};
    const std::size_t size = encoded_size_of(v);
    std::uint64_t n = 0;
    while (ch.try_send(v)) {
      ++n;
      REQUIRE(n < 1'000'000);
    }
    const std::uint64_t bytes = SpscRing::array_bytes(4, kMax);
    CHECK(n == spsc_fit_count(bytes, size));
    CHECK(n > 400);
    for (std::uint64_t i = 0; i < n; ++i) REQUIRE(ch.try_receive() == v);
    CHECK_FALSE(ch.try_receive().has_value());
  }
  SECTION("mpmc, for contrast: one fixed slot per message") {
    const auto name = unique_name("port.exact");
    Cleanup cleanup(name);
    auto ch = Channel<std::string>::create(
        name, {.topology = Topology::mpmc, .capacity = 4, .max_message_size = kMax});
    std::uint64_t n = 0;
    while (ch.try_send("0123456789")) ++n;
    CHECK(n == 4);
  }
}

// ---------------------------------------------------------------------------
// mpmc

TEST_CASE("port mpmc: commits are visible at once; publish() wakes; abort makes a skip",
          "[port][mpmc][abort]") {
  const auto name = unique_name("port.mpmc");
  Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::mpmc, .capacity = 4, .max_message_size = 100});
  auto rx = Channel<std::string>::open(name);
  auto p = access<MpmcPort>(tx);
  auto c = access<MpmcPort>(rx);

  SECTION("claims in order, the middle one aborted") {
    MpmcPort::Claim a, b, d;
    REQUIRE(p->try_claim(*p.core, 0, a) == Poll::ready);
    REQUIRE(p->try_claim(*p.core, 0, b) == Poll::ready);
    REQUIRE(p->try_claim(*p.core, 0, d) == Poll::ready);
    CHECK(b.ticket == a.ticket + 1);
    CHECK(d.ticket == b.ticket + 1);
    fill(d.data(), 30, 3);
    p->commit(d, 30);
    MpmcPort::Record r;
    CHECK(c->try_peek(*c.core, r) == Poll::empty);  // `a` holds the ones behind it back
    fill(a.data(), 10, 1);
    p->commit(a, 10);
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);  // before any publish()
    CHECK(r.size() == 10);
    CHECK(matches(r.data(), 10, 1));
    c->consume(r);
    CHECK(c->try_peek(*c.core, r) == Poll::empty);  // `b` is still claimed
    p->abort(b);
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);  // skips `b`
    CHECK(r.ticket == d.ticket);
    CHECK(r.size() == 30);
    CHECK(matches(r.data(), 30, 3));
    c->consume(r);
    c->release();
    CHECK(c->try_peek(*c.core, r) == Poll::empty);
    tx.send("after");
    CHECK(rx.receive() == "after");
    CHECK_FALSE(rx.try_receive().has_value());
  }
  SECTION("full is exact: slots, aborted ones included until a consumer skips them") {
    std::vector<MpmcPort::Claim> claims(4);
    for (auto& cl : claims) REQUIRE(p->try_claim(*p.core, 0, cl) == Poll::ready);
    MpmcPort::Claim extra;
    CHECK(p->try_claim(*p.core, 0, extra) == Poll::empty);
    for (auto& cl : claims) p->abort(cl);
    CHECK(p->try_claim(*p.core, 0, extra) == Poll::empty);  // aborted slots are not free yet
    MpmcPort::Record r;
    CHECK(c->try_peek(*c.core, r) == Poll::empty);  // the consumer skips all four
    for (int i = 0; i < 4; ++i) {
      REQUIRE(p->try_claim(*p.core, 0, claims[i]) == Poll::ready);
      fill(claims[i].data(), 5, 100 + i);
      p->commit(claims[i], 5);
    }
    p->publish();
    for (int i = 0; i < 4; ++i) {
      REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
      CHECK(matches(r.data(), 5, 100 + i));
      c->consume(r);
    }
    c->release();
    CHECK(c->try_peek(*c.core, r) == Poll::empty);
  }
  SECTION("after close: a claim made before it is delivered, new claims are refused") {
    MpmcPort::Claim a;
    REQUIRE(p->try_claim(*p.core, 0, a) == Poll::ready);
    tx.close();
    MpmcPort::Claim late;
    CHECK(p->try_claim(*p.core, 0, late) == Poll::closed);
    MpmcPort::Record r;
    CHECK(c->try_peek(*c.core, r) == Poll::empty);  // not closed: `a` is still to come
    fill(a.data(), 12, 12);
    p->commit(a, 12);
    p->publish();
    REQUIRE(c->try_peek(*c.core, r) == Poll::ready);
    CHECK(matches(r.data(), 12, 12));
    c->consume(r);
    c->release();
    CHECK(c->try_peek(*c.core, r) == Poll::closed);
  }
}

TEST_CASE("port mpmc: mixed sizes and aborts through many laps match a model",
          "[port][mpmc][wrap]") {
  const auto name = unique_name("port.mwrap");
  Cleanup cleanup(name);
  constexpr std::uint32_t kMax = 100;
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::mpmc, .capacity = 8, .max_message_size = kMax});
  auto rx = Channel<std::string>::open(name);
  auto p = access<MpmcPort>(tx);
  auto c = access<MpmcPort>(rx);
  Rng rng(GENERATE(7u, 8u));
  std::deque<std::uint64_t> in_ring;  // tickets claimed and not yet consumed (skips included)
  std::deque<Expected> queue;         // what the consumer must get
  std::uint64_t seq = 0, committed = 0, received = 0, aborts = 0, fulls = 0, tickets = 0;
  for (int round = 0; round < 6000; ++round) {
    const int batch = 1 + static_cast<int>(rng.below(4));
    for (int k = 0; k < batch; ++k) {
      MpmcPort::Claim cl;
      const Poll got = p->try_claim(*p.core, 0, cl);
      REQUIRE((got == Poll::ready) == (in_ring.size() < 8));
      if (got != Poll::ready) {
        ++fulls;
        break;
      }
      REQUIRE(cl.ticket == tickets);
      ++tickets;
      in_ring.push_back(cl.ticket);
      if (rng.below(6) == 0) {
        p->abort(cl);
        ++aborts;
        continue;
      }
      const auto size = static_cast<std::uint32_t>(rng.below(kMax + 1));
      fill(cl.data(), size, seq);
      p->commit(cl, size);
      queue.push_back({seq, size, cl.ticket});
      ++seq;
      ++committed;
    }
    p->publish();
    const int take = static_cast<int>(rng.below(6));
    int took = 0;
    for (; took < take; ++took) {
      MpmcPort::Record r;
      const Poll got = c->try_peek(*c.core, r);
      if (queue.empty()) {
        REQUIRE(got == Poll::empty);
        in_ring.clear();  // the trailing skips were stepped over
        break;
      }
      REQUIRE(got == Poll::ready);
      const Expected e = queue.front();
      queue.pop_front();
      REQUIRE(r.ticket == e.end);
      REQUIRE(r.size() == e.size);
      REQUIRE(matches(r.data(), r.size(), e.seq));
      c->consume(r);
      while (!in_ring.empty() && in_ring.front() <= e.end) in_ring.pop_front();
      ++received;
    }
    if (took != 0) c->release();
  }
  for (;;) {
    MpmcPort::Record r;
    if (c->try_peek(*c.core, r) != Poll::ready) break;
    REQUIRE_FALSE(queue.empty());
    REQUIRE(r.size() == queue.front().size);
    REQUIRE(matches(r.data(), r.size(), queue.front().seq));
    c->consume(r);
    queue.pop_front();
    ++received;
  }
  c->release();
  CHECK(queue.empty());
  CHECK(received == committed);
  INFO("committed " << committed << ", aborts " << aborts << ", full " << fulls);
  CHECK(tickets / 8 > 100);
  CHECK(aborts > 100);
  CHECK(fulls > 10);
  tx.send("after");
  CHECK(rx.receive() == "after");
}

// ---------------------------------------------------------------------------
// Bounded record lengths

TEST_CASE("port spsc: a header whose length fails its bounds is decode_failed, not a crash",
          "[port][spsc][damaged]") {
  const auto name = unique_name("port.damaged");
  Cleanup cleanup(name);
  constexpr std::uint32_t kMax = 64;
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::spsc, .capacity = 2, .max_message_size = kMax});
  auto rx = Channel<std::string>::open(name);
  const std::uint64_t bytes = SpscRing::array_bytes(2, kMax);
  REQUIRE(bytes == 256);
  const std::string kDamaged = "a record header is damaged";
  const std::uint32_t bad = GENERATE(kMax + 1, 1000u, 0x7FFFFFFFu, 0xFFFFFFF0u);
  CAPTURE(bad);

  auto check_stuck = [&] {
    // It stays and every receive reports it.
    CHECK_SLEET_ERROR(rx.receive(), errc::decode_failed, kDamaged);
    CHECK_SLEET_ERROR(rx.try_receive(), errc::decode_failed, kDamaged);
    CHECK_SLEET_ERROR(rx.receive_for(std::chrono::milliseconds(1)), errc::decode_failed, name);
    int calls = 0;
    CHECK_SLEET_ERROR(rx.receive_batch([&](const std::string&) { ++calls; }), errc::decode_failed,
                      kDamaged);
    CHECK(calls == 0);
  };

  SECTION("length above max_message_size") {
    tx.send("first");
    CHECK(rx.receive() == "first");
    const std::uint64_t pos = SpscRing::record_size(8 + 5);
    tx.send("hello");
    REQUIRE(spsc_header(tx, pos).load() == header_word(8 + 5, SpscRing::kData));
    spsc_header(tx, pos).store(header_word(bad, SpscRing::kData));
    check_stuck();
  }
  SECTION("length within max_message_size but running past the array") {
    // 15 empty strings (16-byte records) leave head == tail == 240; a header
    // there claiming 16 bytes would need 24.
    for (int i = 0; i < 15; ++i) {
      tx.send("");
      REQUIRE(rx.receive().empty());
    }
    REQUIRE(spsc_header(tx, 240).load() == 0);
    spsc_header(tx, 240).store(header_word(16, SpscRing::kData));
    check_stuck();
  }
  SECTION("a padding record that does not end at the array's end") {
    tx.send("x");
    REQUIRE(rx.receive() == "x");
    const std::uint64_t pos = SpscRing::record_size(9);
    spsc_header(tx, pos).store(header_word(8, SpscRing::kPad));
    check_stuck();
  }
  SECTION("the largest valid length is accepted") {
    // A 64-byte record: a std::string of 56 characters.
    const std::string s(kMax - 8, 'm');
    tx.send(s);
    CHECK(rx.receive() == s);
    CHECK_SLEET_ERROR(tx.send(std::string(kMax - 7, 'm')), errc::too_large,
                      "message of 65 bytes exceeds max_message_size 64");
  }
}

TEST_CASE("port mpmc: a slot whose length fails its bound is decode_failed; the next is delivered",
          "[port][mpmc][damaged]") {
  const auto name = unique_name("port.mdamaged");
  Cleanup cleanup(name);
  constexpr std::uint32_t kMax = 64;
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::mpmc, .capacity = 8, .max_message_size = kMax});
  auto rx = Channel<std::string>::open(name);
  auto& ring = tx.base().mpmc_ring();
  const std::uint32_t bad = GENERATE(kMax + 1, 4096u, 0x7FFFFFFFu, MpmcRing::kDamaged);
  CAPTURE(bad);
  auto write_bad = [&] {
    const MpmcRing::Claim cl = ring.claim();
    REQUIRE(cl);
    std::memset(cl.data(), 0x5A, kMax);
    ring.commit(cl, bad);
    ring.publish();
  };

  SECTION("receive") {
    write_bad();
    tx.send("next");
    CHECK_SLEET_ERROR(rx.receive(), errc::decode_failed, "damaged");
    CHECK(rx.receive() == "next");
    CHECK_FALSE(rx.try_receive().has_value());
  }
  SECTION("try_receive and receive_for") {
    write_bad();
    tx.send("one");
    write_bad();
    tx.send("two");
    CHECK_SLEET_ERROR(rx.try_receive(), errc::decode_failed, name);
    CHECK(rx.try_receive() == "one");
    CHECK_SLEET_ERROR(rx.receive_for(std::chrono::milliseconds(100)), errc::decode_failed,
                      "damaged");
    CHECK(rx.receive_for(std::chrono::milliseconds(100)) == "two");
  }
  SECTION("receive_batch: the messages before it are handed over, the ones after it next time") {
    tx.send("a");
    write_bad();
    tx.send("b");
    tx.send("c");
    std::vector<std::string> got;
    auto take = [&](const std::string& s) { got.push_back(s); };
    CHECK_SLEET_ERROR(rx.receive_batch(take), errc::decode_failed, "damaged");
    CHECK(got == std::vector<std::string>{"a"});
    CHECK(rx.receive_batch(take) == 2);
    CHECK(got == std::vector<std::string>{"a", "b", "c"});
    CHECK(rx.receive_batch(take) == 0);
  }
  // The ring is intact afterwards: a full lap and more.
  for (int i = 0; i < 20; ++i) {
    tx.send(std::to_string(i));
    REQUIRE(rx.receive() == std::to_string(i));
  }
}

TEST_CASE("port mpmc: a receiver that skips an aborted slot wakes a sender asleep on a full ring",
          "[port][mpmc][abort][wake]") {
  // Two slots: a loan on each fills the ring; a sender with spin 0 sleeps.
  // Abandoning the first loan and a try_receive (which skips its slot and
  // finds the second still claimed) frees a slot: the sender must be woken.
  const auto name = unique_name("port.skipwake");
  Cleanup cleanup(name);
  auto tx = Channel<std::uint64_t>::create(
      name, {.topology = Topology::mpmc, .capacity = 2, .spin = std::chrono::nanoseconds(0)});
  auto rx = Channel<std::uint64_t>::open(name);
  auto first = tx.try_loan();
  auto second = tx.try_loan();
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE_FALSE(tx.try_loan());
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    tx.send(7);
    sent.store(true, std::memory_order_release);  // release: pairs with the acquire below
  });
  // The sender sleeps once the ring is still full after its first try.
  REQUIRE(sleet::test::eventually([&] { return tx.stats().send_sleeps >= 1; }, std::chrono::milliseconds(5000)));
  first->reset();
  CHECK_FALSE(rx.try_receive());  // skips the aborted slot; the second is still claimed
  const bool woke = sleet::test::eventually([&] { return sent.load(std::memory_order_acquire); }, std::chrono::milliseconds(2000));
  CHECK(woke);
  **second = 5;
  second->commit();
  if (!woke) (void)rx.try_receive();  // let a stuck sender finish before join
  sender.join();
  CHECK(rx.receive() == 5);
  CHECK(rx.receive() == 7);
}

TEST_CASE("port spsc: a passive dispatcher reports a damaged header once and stops",
          "[port][spsc][damaged][passive]") {
  const auto name = unique_name("port.dispdamaged");
  Cleanup cleanup(name);
  auto tx = Channel<std::string>::create(
      name, {.topology = Topology::spsc, .capacity = 2, .max_message_size = 64});
  auto rx = Channel<std::string>::open(name);
  tx.send("hello");
  spsc_header(tx, 0).store(header_word(1000, SpscRing::kData));
  std::atomic<int> errors{0};
  rx.on_error([&](std::exception_ptr) { errors.fetch_add(1, std::memory_order_relaxed); });
  rx.on_receive([](const std::string&) {});
  REQUIRE(sleet::test::eventually([&] { return errors.load(std::memory_order_relaxed) >= 1; }, std::chrono::milliseconds(5000)));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(errors.load(std::memory_order_relaxed) == 1);  // not a loop of reports
}
