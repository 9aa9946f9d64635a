// White-box tests of the spsc byte ring (include/sleet/detail/spsc_ring.hpp)
// placed in a plain aligned heap buffer: padding at the wrap, 64-bit counter
// wrap, exact full detection, batches, variable sizes over many laps.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

using sleet::detail::SpscRing;
using sleet::test::mix;

// A ring's control block and array in 128-byte aligned heap memory. The
// array starts zeroed, as a fresh segment is (initialize() requires it).
class RingBuffer {
 public:
  RingBuffer(std::uint64_t bytes, std::uint64_t max_message_size, std::uint64_t start = 0)
      : size_(SpscRing::control_size() + bytes) {
    mem_ = static_cast<std::byte*>(::operator new(size_, std::align_val_t{128}));
    std::memset(mem_, 0, size_);
    SpscRing::initialize(mem_, bytes, max_message_size, start);
    producer = SpscRing(mem_);
    consumer = SpscRing(mem_);
    producer.attach_producer();
    consumer.attach_consumer();
  }
  ~RingBuffer() { ::operator delete(mem_, std::align_val_t{128}); }
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  std::byte* data() const { return mem_ + SpscRing::control_size(); }
  sleet::detail::SpscControl& control() const { return producer.control(); }
  std::uint64_t shared_tail() const { return control().tail.load(); }
  std::uint64_t shared_head() const { return control().head.load(); }
  // The 8-byte record header at array offset `pos`: {length, flags}
  // (flags: 0 nothing published, kData, kPad).
  std::pair<std::uint32_t, std::uint32_t> header_at(std::uint64_t pos) const {
    std::uint32_t h[2];
    std::memcpy(h, data() + pos, sizeof h);
    return {h[0], h[1]};
  }

  SpscRing producer;  // two views of one ring, as two processes would have
  SpscRing consumer;

 private:
  std::size_t size_;
  std::byte* mem_;
};

// Payload byte i of message `seq`: a function of both, so a torn or
// misplaced record is caught.
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

// Writes one record of `payload` bytes (tagged with seq); REQUIREs room.
void put(RingBuffer& rb, std::uint32_t payload, std::uint64_t seq) {
  std::byte* p = rb.producer.claim(payload);
  REQUIRE(p != nullptr);
  fill(p, payload, seq);
  rb.producer.commit(payload);
    rb.producer.publish();
}

// Reads one record; REQUIREs it to be `payload` bytes tagged with seq.
void take(RingBuffer& rb, std::uint32_t payload, std::uint64_t seq) {
  SpscRing::Record r{};
  REQUIRE(rb.consumer.peek(r));
  CHECK(r.size() == payload);
  CHECK(matches(r.data(), r.size(), seq));
  rb.consumer.consume(r);
    rb.consumer.release();
}

}  // namespace

TEST_CASE("spsc ring: record and array sizes", "[spsc]") {
  STATIC_REQUIRE(SpscRing::record_size(0) == 8);
  STATIC_REQUIRE(SpscRing::record_size(1) == 16);
  STATIC_REQUIRE(SpscRing::record_size(8) == 16);
  STATIC_REQUIRE(SpscRing::record_size(9) == 24);
  // capacity records plus the 8-byte header past the last one, at least two
  // records, rounded up to a power of two.
  CHECK(SpscRing::array_bytes(3, 8) == 64);    // 3 * 16 + 8 = 56
  CHECK(SpscRing::array_bytes(4, 8) == 128);   // 72
  CHECK(SpscRing::array_bytes(1, 100) == 256);  // 2 * 112 -> 256
  CHECK(SpscRing::array_bytes(1000, 4) == 16384);
  STATIC_REQUIRE(SpscRing::kData != 0);
  STATIC_REQUIRE(SpscRing::kPad != 0);
  STATIC_REQUIRE(SpscRing::kPad != SpscRing::kData);
  for (std::uint64_t cap : {1u, 2u, 3u, 7u, 100u, 1023u}) {
    for (std::uint64_t max : {0u, 1u, 8u, 13u, 256u, 4000u}) {
      const auto b = SpscRing::array_bytes(cap, max);
      CAPTURE(cap, max);
      CHECK((b & (b - 1)) == 0);
      CHECK(b >= cap * SpscRing::record_size(max) + SpscRing::kHeader);
      CHECK(b >= 2 * SpscRing::record_size(max));
    }
  }
}

TEST_CASE("spsc ring: round trip and size_approx", "[spsc]") {
  RingBuffer rb(256, 64);
  SpscRing::Record r{};
  CHECK_FALSE(rb.consumer.peek(r));
  CHECK(rb.producer.size_approx() == 0);

  const char msg[] = "hello, ring";
  REQUIRE(rb.producer.try_write(msg, sizeof msg));
  CHECK(rb.consumer.size_approx() == 1);
  CHECK(rb.shared_tail() == SpscRing::record_size(sizeof msg));
  CHECK(rb.header_at(0) == std::make_pair(std::uint32_t{sizeof msg}, SpscRing::kData));
  // The header just past the record is zero: nothing published there.
  CHECK(rb.header_at(SpscRing::record_size(sizeof msg)) == std::make_pair(0u, 0u));

  char out[64] = {};
  std::uint32_t size = 0;
  REQUIRE(rb.consumer.try_read(out, sizeof out, size));
  CHECK(size == sizeof msg);
  CHECK(std::string(out) == msg);
  CHECK(rb.shared_head() == rb.shared_tail());
  CHECK(rb.consumer.size_approx() == 0);
  CHECK_FALSE(rb.consumer.try_read(out, sizeof out, size));

  // Zero-length records are records too.
  REQUIRE(rb.producer.try_write(msg, 0));
  REQUIRE(rb.consumer.try_read(out, sizeof out, size));
  CHECK(size == 0);

  // size_approx counts published and not yet released messages.
  for (int i = 0; i < 5; ++i) put(rb, 8, i);
  CHECK(rb.producer.size_approx() == 5);
  for (int i = 0; i < 3; ++i) take(rb, 8, i);
  CHECK(rb.producer.size_approx() == 2);
  CHECK(rb.control().sent.load() == 7);
  CHECK(rb.control().received.load() == 5);
}

TEST_CASE("spsc ring: padding record at the wrap", "[spsc][wrap]") {
  RingBuffer rb(256, 64);
  // Five records of 40 bytes: tail at 200, 56 bytes left before the end.
  for (int i = 0; i < 5; ++i) put(rb, 32, i);
  for (int i = 0; i < 5; ++i) take(rb, 32, i);
  REQUIRE(rb.shared_tail() == 200);
  REQUIRE(rb.shared_head() == 200);

  SECTION("a record that does not fit goes to offset 0 behind a pad") {
    std::byte* p = rb.producer.claim(64);  // needs 72 > 56
    REQUIRE(p != nullptr);
    CHECK(p == rb.data() + SpscRing::kHeader);  // payload of the record at offset 0
    // The old record at 0 is unpublished at once; the pad is held back until publish.
    CHECK(rb.header_at(0) == std::make_pair(0u, 0u));
    CHECK(rb.header_at(200) == std::make_pair(0u, 0u));
    SpscRing::Record r{};
    CHECK_FALSE(rb.consumer.peek(r));
    fill(p, 64, 99);
    rb.producer.commit(64);
    CHECK(rb.header_at(200) == std::make_pair(0u, 0u));  // committed, not published
    CHECK_FALSE(rb.consumer.peek(r));
    rb.producer.publish();
    // The pad covers the 56 bytes to the end: length 48, flag kPad.
    CHECK(rb.header_at(200) == std::make_pair(48u, SpscRing::kPad));
    CHECK(rb.header_at(0) == std::make_pair(64u, SpscRing::kData));
    CHECK(rb.header_at(72) == std::make_pair(0u, 0u));
    CHECK(rb.shared_tail() == 200 + 56 + 72);
    // The consumer skips the pad and lands on the record.
    REQUIRE(rb.consumer.peek(r));
    CHECK(r.data() == rb.data() + SpscRing::kHeader);
    CHECK(r.size() == 64);
    CHECK(matches(r.data(), 64, 99));
    rb.consumer.consume(r);
    rb.consumer.release();
    CHECK(rb.shared_head() == rb.shared_tail());
    CHECK_FALSE(rb.consumer.peek(r));
  }
  SECTION("a record that fits exactly needs no pad") {
    put(rb, 48, 7);  // 56 bytes: ends exactly at 256
    CHECK(rb.header_at(200) == std::make_pair(48u, SpscRing::kData));
    put(rb, 8, 8);  // next record at offset 0
    CHECK(rb.header_at(0) == std::make_pair(8u, SpscRing::kData));
    CHECK(rb.shared_tail() == 200 + 56 + 16);
    take(rb, 48, 7);
    take(rb, 8, 8);
  }
  SECTION("an 8-byte gap becomes an empty pad") {
    put(rb, 40, 1);  // 48 bytes: tail at 248, 8 bytes left
    REQUIRE(rb.shared_tail() == 248);
    put(rb, 0, 2);   // 8 bytes: fits exactly, no pad
    CHECK(rb.header_at(248) == std::make_pair(0u, SpscRing::kData));
    take(rb, 40, 1);
    take(rb, 0, 2);
    for (int i = 0; i < 40; ++i) {  // walk back to offset 248 in 8-byte steps
      put(rb, 0, 3);
      take(rb, 0, 3);
      if ((rb.shared_tail() & 255) == 248) break;
    }
    REQUIRE((rb.shared_tail() & 255) == 248);
    put(rb, 1, 4);  // 16 bytes > 8: pad of length 0 at 248
    CHECK(rb.header_at(248) == std::make_pair(0u, SpscRing::kPad));
    CHECK(rb.header_at(0) == std::make_pair(1u, SpscRing::kData));
    take(rb, 1, 4);
    CHECK(rb.shared_head() == rb.shared_tail());
  }
}

// A claim needs its record, the pad before it if it wraps, and the 8-byte
// header word past it (zeroed so that the consumer stops there).
TEST_CASE("spsc ring: full detection counts the padding and the next header", "[spsc][full]") {
  RingBuffer rb(256, 64);
  for (int i = 0; i < 5; ++i) put(rb, 32, i);  // tail at 200
  take(rb, 32, 0);                              // head at 40: 96 bytes free
  // 72 + 8 bytes would fit in 96, but not after the 56-byte pad.
  CHECK(rb.producer.claim(64) == nullptr);
  CHECK(rb.producer.claim(48) != nullptr);  // 56 + 8 fit without a pad (abandoned)
  take(rb, 32, 1);                              // head at 80: 136 free = 56 + 72 + 8
  std::byte* p = rb.producer.claim(64);
  REQUIRE(p != nullptr);
  CHECK(p == rb.data() + SpscRing::kHeader);
  fill(p, 64, 5);
  rb.producer.commit(64);
    rb.producer.publish();
  // 200 + 56 + 72 - 80 = 248 used: the last 8 bytes are the zero header word.
  CHECK(rb.producer.claim(0) == nullptr);
  take(rb, 32, 2);  // head at 120: 48 free, tail at offset 72
  CHECK(rb.producer.claim(33) == nullptr);  // 48 + 8 > 48
  put(rb, 32, 6);                               // 40 + 8 == 48: fits exactly
  CHECK(rb.producer.claim(0) == nullptr);
  take(rb, 32, 3);
  take(rb, 32, 4);
  take(rb, 64, 5);
  take(rb, 32, 6);
  SpscRing::Record r{};
  CHECK_FALSE(rb.consumer.peek(r));
  CHECK(rb.shared_head() == rb.shared_tail());
}

TEST_CASE("spsc ring: a maximum record fits an empty ring at every position", "[spsc][full]") {
  // The array holds two records of the largest size, so one always fits an
  // empty ring, even behind a pad of up to one record minus 8 bytes.
  constexpr std::uint64_t kMax = 56;  // record of 64 bytes in a 128-byte array
  for (std::uint64_t start = 0; start < 2 * 128; start += 8) {
    CAPTURE(start);
    RingBuffer rb(128, kMax, start);
    put(rb, kMax, start);
    take(rb, kMax, start);
    put(rb, kMax, start + 1);
    take(rb, kMax, start + 1);
  }
}

TEST_CASE("spsc ring: claim returns nullptr exactly when there is no room", "[spsc][full]") {
  // A model of the byte counters decides whether each claim must fit.
  constexpr std::uint64_t kBytes = 512, kMax = 100;
  const std::uint64_t start = GENERATE(std::uint64_t{0}, std::uint64_t{0} - 1000,
                                       std::uint64_t{0} - 8);
  CAPTURE(start);
  RingBuffer rb(kBytes, kMax, start);
  std::mt19937_64 rng(start ^ 12345);
  struct Rec {
    std::uint64_t seq;
    std::uint32_t size;
    std::uint64_t span;  // bytes including a pad before it
  };
  std::deque<Rec> queued;
  std::uint64_t tail = start, head = start, seq = 0;
  std::uint64_t claims = 0, refusals = 0, pads = 0;
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 3 != 0) {
      const auto size = static_cast<std::uint32_t>(rng() % (kMax + 1));
      const std::uint64_t need = SpscRing::record_size(size);
      const std::uint64_t to_end = kBytes - (tail % kBytes);
      const std::uint64_t span = need <= to_end ? need : to_end + need;
      const bool fits = tail + span + SpscRing::kHeader - head <= kBytes;
      std::byte* p = rb.producer.claim(size);
      CAPTURE(step, size, tail - head, span);
      REQUIRE((p != nullptr) == fits);
      if (!fits) {
        ++refusals;
        continue;
      }
      ++claims;
      if (span != need) ++pads;
      const std::uint64_t at = span == need ? tail % kBytes : 0;
      REQUIRE(p == rb.data() + at + SpscRing::kHeader);
      fill(p, size, seq);
      rb.producer.commit(size);
    rb.producer.publish();
      queued.push_back({seq++, size, span});
      tail += span;
      REQUIRE(rb.shared_tail() == tail);
    } else if (!queued.empty()) {
      const Rec want = queued.front();
      queued.pop_front();
      take(rb, want.size, want.seq);
      head += want.span;
      REQUIRE(rb.shared_head() == head);
    }
    REQUIRE(rb.producer.size_approx() == queued.size());
  }
  CHECK(claims > 1000);
  CHECK(refusals > 100);
  CHECK(pads > 50);
}

TEST_CASE("spsc ring: 64-bit counters wrap around", "[spsc][wrap]") {
  // 1000 bytes before 2^64: the counters wrap to small values within four laps.
  const std::uint64_t start = std::uint64_t{0} - 1000;
  RingBuffer rb(256, 64, start);
  CHECK(rb.shared_tail() == start);
  std::uint64_t seq_in = 0, seq_out = 0;
  bool crossed = false;
  for (int round = 0; round < 200; ++round) {
    // Fill until full, with sizes that vary per record.
    for (;;) {
      const auto size = static_cast<std::uint32_t>((seq_in * 13) % 65);
      std::byte* p = rb.producer.claim(size);
      if (p == nullptr) break;
      fill(p, size, seq_in);
      rb.producer.commit(size);
    rb.producer.publish();
      ++seq_in;
    }
    const std::uint64_t used = rb.shared_tail() - rb.shared_head();  // modular
    CHECK(used <= 256 - SpscRing::kHeader);
    // Refused only when nearly full: a pad is shorter than the record it precedes.
    CHECK(used > 256 - 2 * SpscRing::record_size(64) - SpscRing::kHeader);
    // Drain.
    SpscRing::Record r{};
    while (rb.consumer.peek(r)) {
      CHECK(r.size() == (seq_out * 13) % 65);
      CHECK(matches(r.data(), r.size(), seq_out));
      rb.consumer.consume(r);
    rb.consumer.release();
      ++seq_out;
    }
    CHECK(seq_out == seq_in);
    if (rb.shared_tail() < start) crossed = true;
  }
  CHECK(crossed);
  CHECK(rb.shared_tail() < 100000);  // well past zero
  CHECK(rb.shared_head() == rb.shared_tail());
  CHECK(seq_in > 1000);
}

TEST_CASE("spsc ring: batches of commit() then publish(), consume() then release()", "[spsc][batch]") {
  RingBuffer rb(256, 32);  // 40-byte records of 32 bytes: six fit (240 + 8)
  SpscRing::Record r{};

  // Three committed records stay invisible until one publish().
  for (std::uint64_t i = 0; i < 3; ++i) {
    std::byte* p = rb.producer.claim(32);
    REQUIRE(p != nullptr);
    fill(p, 32, i);
    rb.producer.commit(32);
  }
  CHECK(rb.shared_tail() == 0);
  CHECK(rb.control().sent.load() == 0);
  CHECK_FALSE(rb.consumer.peek(r));
  rb.producer.publish();
  CHECK(rb.shared_tail() == 120);
  CHECK(rb.control().sent.load() == 3);
  CHECK(rb.producer.size_approx() == 3);

  // Three more: the ring holds six.
  for (std::uint64_t i = 3; i < 6; ++i) {
    std::byte* p = rb.producer.claim(32);
    REQUIRE(p != nullptr);
    fill(p, 32, i);
    rb.producer.commit(32);
  }
  rb.producer.publish();
  CHECK(rb.producer.claim(32) == nullptr);

  // Advancing over three records does not free their space until release().
  for (std::uint64_t i = 0; i < 3; ++i) {
    REQUIRE(rb.consumer.peek(r));
    CHECK(matches(r.data(), r.size(), i));
    rb.consumer.consume(r);
  }
  CHECK(rb.shared_head() == 0);
  CHECK(rb.control().received.load() == 0);
  CHECK(rb.producer.size_approx() == 6);
  CHECK(rb.producer.claim(32) == nullptr);
  rb.consumer.release();
  CHECK(rb.shared_head() == 120);
  CHECK(rb.control().received.load() == 3);
  CHECK(rb.producer.size_approx() == 3);
  // Now 136 bytes are free: a 16-byte pad, 40 + 40, and the header word.
  put(rb, 32, 6);
  put(rb, 32, 7);
  CHECK(rb.producer.claim(32) == nullptr);
  for (std::uint64_t i = 3; i < 8; ++i) take(rb, 32, i);
  CHECK_FALSE(rb.consumer.peek(r));
}

TEST_CASE("spsc ring: random sizes 0..max with checksums through many laps", "[spsc][laps]") {
  constexpr std::uint64_t kMax = 200;
  const std::uint64_t start = GENERATE(std::uint64_t{0}, std::uint64_t{0} - 4096);
  CAPTURE(start);
  RingBuffer rb(1024, kMax, start);
  std::mt19937_64 rng(99 + start);
  std::deque<std::pair<std::uint64_t, std::uint32_t>> expect;
  std::uint64_t seq = 0, read = 0;
  while (read < 30000) {
    // Write a random batch, publish once.
    const int batch = static_cast<int>(rng() % 6);
    int staged = 0;
    for (int i = 0; i < batch; ++i) {
      const auto size = static_cast<std::uint32_t>(rng() % (kMax + 1));
      std::byte* p = rb.producer.claim(size);
      if (p == nullptr) break;
      fill(p, size, seq);
      rb.producer.commit(size);
      expect.emplace_back(seq++, size);
      ++staged;
    }
    if (staged > 0) rb.producer.publish();
    // Read a random batch, release once.
    const int reads = static_cast<int>(rng() % 6);
    int advanced = 0;
    SpscRing::Record r{};
    for (int i = 0; i < reads && rb.consumer.peek(r); ++i) {
      REQUIRE_FALSE(expect.empty());
      REQUIRE(r.size() == expect.front().second);
      REQUIRE(matches(r.data(), r.size(), expect.front().first));
      expect.pop_front();
      rb.consumer.consume(r);
      ++advanced;
      ++read;
    }
    if (advanced > 0) rb.consumer.release();
  }
  CHECK(rb.producer.size_approx() == expect.size());
  CHECK((rb.shared_tail() - start) / 1024 > 100);  // laps
}

TEST_CASE("spsc ring: a producer and a consumer thread, checksummed", "[spsc][threads]") {
  constexpr std::uint64_t kMax = 120;
  // Sanitized and on a loaded 2-CPU machine, 100,000 took over 3 s.
  constexpr std::uint64_t kCount = SLEET_TEST_SANITIZED ? 20000 : 100000;
  RingBuffer rb(2048, kMax, std::uint64_t{0} - 8192);
  std::atomic<bool> stop{false};
  const auto t0 = std::chrono::steady_clock::now();
  const auto give_up = t0 + std::chrono::seconds(10);

  std::thread producer([&] {
    for (std::uint64_t seq = 0; seq < kCount && !stop.load(std::memory_order_relaxed);) {
      const auto size = static_cast<std::uint32_t>(mix(seq) % (kMax + 1));
      std::byte* p = rb.producer.claim(size);
      if (p == nullptr) {
        if (std::chrono::steady_clock::now() > give_up) return;
        std::this_thread::yield();
        continue;
      }
      fill(p, size, seq);
      rb.producer.commit(size);
    rb.producer.publish();
      ++seq;
    }
  });
  std::uint64_t got = 0;
  bool ok = true;
  while (got < kCount && ok) {
    SpscRing::Record r{};
    if (!rb.consumer.peek(r)) {
      if (std::chrono::steady_clock::now() > give_up) break;
      std::this_thread::yield();
      continue;
    }
    ok = r.size() == mix(got) % (kMax + 1) && matches(r.data(), r.size(), got);
    rb.consumer.consume(r);
    rb.consumer.release();
    ++got;
  }
  stop.store(true);
  producer.join();
  CHECK(ok);
  CHECK(got == kCount);
  CHECK(rb.producer.size_approx() == 0);
}

// A producer that takes over (the previous one was destroyed or died) starts
// from the shared `tail` hint and walks over published headers, so records
// published after the last hint are neither lost nor overwritten.
TEST_CASE("spsc ring: a new producer continues after the last published record", "[spsc][takeover]") {
  const std::uint64_t start = GENERATE(std::uint64_t{0}, std::uint64_t{0} - 64);
  CAPTURE(start);
  RingBuffer rb(256, 32, start);
  for (int i = 0; i < 3; ++i) put(rb, 16, i);  // 24-byte records

  SECTION("the hint is behind the last record") {
    rb.control().tail.store(start);  // as if the producer died before storing it
  }
  SECTION("the hint is behind head") {
    take(rb, 16, 0);
    take(rb, 16, 1);
    rb.control().tail.store(start);
    put(rb, 16, 100);  // through the old producer: the queue is now 2, 100
  }
  SECTION("the old producer abandoned a claim that wrapped") {
    for (int i = 0; i < 3; ++i) take(rb, 16, i);
    for (int i = 3; i < 64 && (rb.shared_tail() & 255) != 240; ++i) {
      put(rb, 16, i);
      take(rb, 16, i);
    }
    REQUIRE((rb.shared_tail() & 255) == 240);  // 16 bytes to the end
    // A 24-byte record wraps: the claim writes nothing visible and is never committed.
    REQUIRE(rb.producer.claim(16) == rb.data() + SpscRing::kHeader);
  }
  SpscRing next(rb.data() - SpscRing::control_size());
  next.attach_producer();
  std::byte* p = next.claim(16);
  REQUIRE(p != nullptr);
  fill(p, 16, 200);
  next.commit(16);
    next.publish();
  // Everything still queued comes out in order, then the new record.
  std::vector<std::uint64_t> seen;
  SpscRing::Record r{};
  while (rb.consumer.peek(r)) {
    std::uint64_t seq = 0;
    for (std::uint64_t cand : {0, 1, 2, 100, 200}) {
      if (matches(r.data(), r.size(), cand)) seq = cand + 1;
    }
    REQUIRE(seq != 0);
    seen.push_back(seq - 1);
    rb.consumer.consume(r);
    rb.consumer.release();
  }
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back() == 200);
  seen.pop_back();
  const std::vector<std::uint64_t> all{0, 1, 2}, after_take{2, 100}, none{};
  CHECK((seen == all || seen == after_take || seen == none));
}
