// Unit tests of the seqlock kit (include/sleet/detail/seqlock.hpp): the
// word and byte copies, and a two-buffer seqlock driven only by the kit's
// steps, rewritten by a writer in another process while this one reads:
// no copy that validates is ever torn (every value carries a checksum).
// The store's and SharedValue's own seqlocks are tested through their
// objects as well (a SharedValue rewritten by a child, at the end).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ipc/ipc_support.hpp"
#include "sleet/detail/seqlock.hpp"
#include "sleet/shared_value.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
namespace d = sleet::detail;

namespace {

constexpr std::size_t kWords = 24;  // three cache lines: a copy takes a while

// Word i of value n; the last word is a checksum of the others.
std::uint64_t word_of(std::uint64_t n, std::size_t i) noexcept {
  return (n + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xC2B2AE3D27D4EB4Full);
}
std::uint64_t checksum(const std::uint64_t* w) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i + 1 < kWords; ++i) h = (h ^ w[i]) * 0x100000001b3ull;
  return h;
}
void make_value(std::uint64_t n, std::uint64_t* out) noexcept {
  for (std::size_t i = 0; i + 1 < kWords; ++i) out[i] = word_of(n, i);
  out[kWords - 1] = checksum(out);
}

// The store's scheme: one version names the published buffer (its low
// bit) and counts the writes (the rest).
struct alignas(64) TwoBuffers {
  std::atomic<std::uint64_t> version{0};
  std::atomic<std::uint64_t> writes_done{0};
  std::atomic<int> stop{0};
  alignas(64) std::uint64_t buffer[2][kWords];
};

void write_value(TwoBuffers& t, std::uint64_t n) noexcept {
  std::uint64_t value[kWords];
  make_value(n, value);
  const std::uint64_t v = t.version.load(std::memory_order_relaxed);  // relaxed: the writer's own
  const std::uint64_t target = (v & 1) ^ 1;  // the buffer readers are not directed to
  // The version moved off `target` when it was last published over; a
  // reader still copying it from then sees any of our words only with
  // that move (3)/(4).
  d::seq_begin_overwrite();
  d::store_words(t.buffer[target], value, kWords);
  d::seq_publish(t.version, ((v >> 1) + 1) << 1 | target);
}

// A consistent copy of the current value, or false if the checksum fails
// (a torn copy that validated: the bug this test looks for).
bool read_value(TwoBuffers& t, std::uint64_t* out, std::uint64_t* retries) noexcept {
  for (;;) {
    const std::uint64_t v1 = d::seq_read_begin(t.version);
    d::load_words(out, t.buffer[v1 & 1], kWords);
    if (d::seq_read_valid(t.version, v1)) return checksum(out) == out[kWords - 1];
    ++*retries;
  }
}

}  // namespace

TEST_CASE("seqlock: word and byte copies", "[seqlock]") {
  alignas(8) std::uint64_t shared[4] = {~0ull, ~0ull, ~0ull, ~0ull};
  const std::uint64_t src[3] = {1, 2, 3};
  d::store_words(shared, src, 3);
  CHECK(shared[0] == 1);
  CHECK(shared[2] == 3);
  CHECK(shared[3] == ~0ull);  // no word past the count
  std::uint64_t back[3] = {};
  d::load_words(back, shared, 3);
  CHECK(std::memcmp(back, src, sizeof src) == 0);

  // Bytes: a partial last word is zero-padded in shared memory, and only
  // `size` bytes reach the private buffer.
  const char text[13] = "hello, words";
  auto* bytes = reinterpret_cast<std::byte*>(shared);
  d::store_bytes(bytes, text, 13);
  CHECK(shared[1] >> 40 == 0);  // bytes 13..15 of the second word
  char out[16];
  std::memset(out, 'x', sizeof out);
  d::load_bytes(out, bytes, 13);
  CHECK(std::memcmp(out, text, 13) == 0);
  CHECK(out[13] == 'x');
}

TEST_CASE("seqlock: a reader never sees a torn value while another process writes", "[seqlock][stress]") {
  SharedMemory<TwoBuffers> t;
  write_value(*t, 0);
  const std::uint64_t max_writes = sleet::test::scaled(2'000'000, 50'000);
  Child writer([&] {
    std::uint64_t n = 1;
    // relaxed: a stop flag; nothing is published through it.
    for (; n <= max_writes && t->stop.load(std::memory_order_relaxed) == 0; ++n) write_value(*t, n);
    t->writes_done.store(n - 1, std::memory_order_relaxed);
    return 0;
  });
  std::uint64_t reads = 0, torn = 0, retries = 0, changes = 0, last = 0;
  const auto end = std::chrono::steady_clock::now() + (SLEET_TEST_SANITIZED ? 2s : 1s);
  std::uint64_t value[kWords];
  while (std::chrono::steady_clock::now() < end && reads < 20'000'000) {
    for (int i = 0; i < 256; ++i, ++reads) {
      if (!read_value(*t, value, &retries)) ++torn;
      changes += value[0] != last;
      last = value[0];
    }
  }
  t->stop.store(1, std::memory_order_relaxed);
  CHECK(writer.wait_for(10000ms) == 0);
  INFO("reads " << reads << ", retries " << retries << ", changes seen " << changes
                << ", writes " << t->writes_done.load());
  CHECK(torn == 0);
  CHECK(reads > 1000);
  CHECK(changes > 10);  // the reader did race the writer
  // The final value is whole too.
  CHECK(read_value(*t, value, &retries));
}

namespace {
struct Wide {
  std::uint64_t w[kWords];
};
}  // namespace

TEST_CASE("seqlock: a SharedValue rewritten by another process is never torn", "[seqlock][stress][value]") {
  const std::string name = unique_name("seq.value");
  Cleanup cleanup(name);
  Wide first{};
  make_value(0, first.w);
  auto v = sleet::SharedValue<Wide>::create(name, first);
  SharedMemory<std::atomic<int>> stop;
  Child writer([&] {
    auto mine = sleet::SharedValue<Wide>::open(name);
    Wide x{};
    for (std::uint64_t n = 1; n < 10'000'000 && stop->load(std::memory_order_relaxed) == 0; ++n) {
      make_value(n, x.w);
      mine.store(x);
    }
    return 0;
  });
  std::uint64_t reads = 0, torn = 0, changes = 0, last = 0;
  const auto end = std::chrono::steady_clock::now() + 500ms;
  while (std::chrono::steady_clock::now() < end && reads < 5'000'000) {
    const Wide x = v.load();
    torn += checksum(x.w) != x.w[kWords - 1];
    changes += x.w[0] != last;
    last = x.w[0];
    ++reads;
  }
  stop->store(1, std::memory_order_relaxed);  // relaxed: a stop flag
  CHECK(writer.wait_for(10000ms) == 0);
  INFO("reads " << reads << ", changes seen " << changes);
  CHECK(torn == 0);
  CHECK(changes > 10);
}
