// Bounded stress of Channel<T> between real processes: random message sizes
// (a codec that encodes only the used bytes, so spsc records vary in length
// and wrap with padding records), random spin budgets including 0 (so the
// futex sleep and wake paths run constantly), and a run where every call has
// a tiny deadline. Every message carries a checksum over its used bytes;
// receivers check it and the per-producer order, and the parent checks that
// every message sent arrived exactly once.
//
// Each run is bounded in time (about 1.5 s of sending) and in count.
#include <catch2/catch.hpp>

#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ipc/ipc_support.hpp"

namespace {

constexpr std::size_t kHead = 24;      // producer, len, seq, check
constexpr std::size_t kMaxData = 232;  // kHead + kMaxData = 256 bytes at most

struct VarMsg {
  std::uint32_t producer;
  std::uint32_t len;  // bytes of data in use
  std::uint64_t seq;
  std::uint64_t check;  // over the header fields and data[0, len)
  std::uint8_t data[kMaxData];
};
static_assert(offsetof(VarMsg, data) == kHead);

}  // namespace

// Encodes only the used bytes: the encoding is kHead + len bytes long.
template <>
struct sleet::Codec<VarMsg> {
  static constexpr std::string_view name = "stress.varmsg";
  static constexpr std::size_t fixed_size = 0;

  static std::size_t encode(const VarMsg& m, std::byte* out, std::size_t capacity) noexcept {
    const std::size_t n = kHead + m.len;
    if (n <= capacity) std::memcpy(out, &m, n);
    return n;
  }
  static void decode(const std::byte* in, std::size_t size, VarMsg& out) {
    if (size < kHead) {
      throw Error(errc::decode_failed, "VarMsg: record of " + std::to_string(size) + " bytes");
    }
    std::memcpy(&out, in, kHead);
    if (out.len > kMaxData || size != kHead + out.len) {
      throw Error(errc::decode_failed, "VarMsg: record of " + std::to_string(size) +
                                           " bytes says len " + std::to_string(out.len));
    }
    std::memcpy(out.data, in + kHead, out.len);
  }
};

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Error;
using sleet::Topology;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::Clock;
using sleet::test::mix;
using sleet::test::ms_since;
using sleet::test::patience;
using sleet::test::Report;
using sleet::test::Rng;
using sleet::test::scaled;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
using sleet::test::wait_until;

std::uint64_t checksum(const VarMsg& m) {
  std::uint64_t h =
      mix((std::uint64_t{m.producer} << 56) ^ (std::uint64_t{m.len} << 40) ^ m.seq ^ 0xC0FFEEull);
  for (std::uint32_t i = 0; i < m.len; ++i) h = (h ^ m.data[i]) * 0x100000001b3ull;  // FNV-1a
  return mix(h);
}

void fill(VarMsg& m, std::uint32_t producer, std::uint64_t seq, std::uint32_t len) {
  m.producer = producer;
  m.len = len;
  m.seq = seq;
  std::uint64_t x = mix((seq << 8) ^ producer);
  for (std::uint32_t i = 0; i < len; ++i) {
    if ((i & 7) == 0) x = mix(x + i + 1);
    m.data[i] = static_cast<std::uint8_t>(x >> ((i & 7) * 8));
  }
  m.check = checksum(m);
}

// Sizes: empty, tiny, anything, and the largest (the spsc wrap cases).
std::uint32_t random_len(Rng& rng) {
  switch (rng.below(8)) {
    case 0: return 0;
    case 1: return static_cast<std::uint32_t>(rng.below(9));
    case 2: return kMaxData;
    default: return static_cast<std::uint32_t>(rng.below(kMaxData + 1));
  }
}

// Spin budgets, 0 twice as likely as each other value.
std::chrono::nanoseconds random_spin(Rng& rng) {
  constexpr std::chrono::nanoseconds kSpins[] = {0ns, 0ns, 100ns, 1us, 10us, 50us};
  return kSpins[rng.below(std::size(kSpins))];
}

// Timeouts of send_for / receive_for in the deadline run.
std::chrono::nanoseconds random_timeout(Rng& rng) {
  constexpr std::chrono::nanoseconds kTimeouts[] = {0ns, 1us, 10us, 100us, 1ms};
  return kTimeouts[rng.below(std::size(kTimeouts))];
}

constexpr int kMaxSide = 2;

struct ProducerReport {
  Report report;
  std::uint64_t sent;
  std::uint64_t hash;      // sum of the checksums sent
  std::uint64_t timeouts;  // send_for calls that ran out
};
struct ReceiverReport {
  Report report;
  std::uint64_t count[kMaxSide];
  std::uint64_t hash[kMaxSide];
  std::uint64_t timeouts;  // receive_for calls that ran out
  std::uint64_t bytes;     // data bytes received
};
struct StressShared {
  ProducerReport tx[kMaxSide];
  ReceiverReport rx[kMaxSide];
};

enum class Mode { blocking, deadlines };

struct StressConfig {
  Topology topology;
  int producers;
  int receivers;
  std::size_t capacity;
  Mode mode;
};

void run_stress(const StressConfig& cfg) {
  const int P = cfg.producers;
  const int R = cfg.receivers;
  const bool deadlines = cfg.mode == Mode::deadlines;
  const auto duration = 1500ms;
  const std::uint64_t max_per_producer = scaled(1u << 20, 1000);
  const std::uint64_t seed = static_cast<std::uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ull;
  INFO((cfg.topology == Topology::spsc ? "spsc " : "mpmc ")
       << P << " -> " << R << " processes, capacity " << cfg.capacity
       << (deadlines ? ", send_for/receive_for with tiny timeouts" : ", blocking calls")
       << ", seed " << seed);

  const std::string name = unique_name(deadlines ? "stress-dl" : "stress");
  Cleanup cleanup(name);
  auto ch = Channel<VarMsg>::create(
      name, {.topology = cfg.topology, .capacity = cfg.capacity, .max_message_size = kHead + kMaxData});
  SharedMemory<StressShared> sh;
  SharedMemory<std::uint8_t> seen(static_cast<std::size_t>(P) * max_per_producer);

  const auto t0 = Clock::now();
  const auto stop_sending = t0 + duration;
  // A child that is still busy this long after stop_sending is stuck.
  const auto hard_stop = stop_sending + patience(10s);

  std::vector<Child> rx;
  std::vector<Child> tx;
  rx.reserve(R);
  tx.reserve(P);
  for (int r = 0; r < R; ++r) {
    rx.emplace_back([&, r] {
      ReceiverReport& me = sh->rx[r];
      Rng rng(seed ^ mix(100 + r));
      auto c = Channel<VarMsg>::open(name);
      std::int64_t last[kMaxSide] = {-1, -1};
      std::uint64_t n = 0;
      for (;; ++n) {
        if ((n & 127) == 0) {
          c.set_spin(random_spin(rng));
          if (Clock::now() > hard_stop) return me.report.fail("receiver %d still running", r);
          // Now and then stall, so senders find the ring full and sleep.
          if (rng.below(16) == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng.below(200)));
        }
        std::optional<VarMsg> m;
        try {
          m = deadlines ? c.receive_for(random_timeout(rng)) : std::optional<VarMsg>(c.receive());
        } catch (const Error& e) {
          if (e.code() == sleet::errc::closed) break;
          throw;
        }
        if (!m) {
          ++me.timeouts;
          continue;
        }
        if (m->producer >= static_cast<std::uint32_t>(P) || m->seq >= max_per_producer) {
          me.report.fail("receiver %d: producer %u seq %" PRIu64 " out of range", r, m->producer,
                         m->seq);
          continue;
        }
        if (checksum(*m) != m->check) {
          me.report.fail("receiver %d: bad checksum on producer %u seq %" PRIu64 " len %u", r,
                         m->producer, m->seq, m->len);
          continue;
        }
        const std::uint32_t p = m->producer;
        if (static_cast<std::int64_t>(m->seq) <= last[p]) {
          me.report.fail("receiver %d: producer %u seq %" PRIu64 " after %" PRId64, r, p, m->seq,
                         last[p]);
        }
        last[p] = static_cast<std::int64_t>(m->seq);
        ++me.count[p];
        me.hash[p] += m->check;
        me.bytes += m->len;
        // relaxed: the parent reads after waitpid().
        std::atomic_ref<std::uint8_t>(seen[p * max_per_producer + m->seq])
            .fetch_add(1, std::memory_order_relaxed);
      }
      return me.report.ok() ? 0 : 1;
    });
  }
  for (int p = 0; p < P; ++p) {
    tx.emplace_back([&, p] {
      ProducerReport& me = sh->tx[p];
      Rng rng(seed ^ mix(200 + p));
      auto c = Channel<VarMsg>::open(name);
      VarMsg m;
      std::uint64_t s = 0;
      for (; s < max_per_producer; ++s) {
        if ((s & 127) == 0) {
          c.set_spin(random_spin(rng));
          if (s > 0 && Clock::now() >= stop_sending) break;
        }
        fill(m, static_cast<std::uint32_t>(p), s, random_len(rng));
        if (deadlines) {
          while (!c.send_for(m, random_timeout(rng))) {
            ++me.timeouts;
            if (Clock::now() > hard_stop) return me.report.fail("sender %d stuck at seq %" PRIu64, p, s);
          }
        } else {
          c.send(m);
        }
        me.hash += m.check;
        me.sent = s + 1;
      }
      return 0;
    });
  }

  const auto deadline = hard_stop + patience(5s);
  for (int p = 0; p < P; ++p) {
    INFO("sender " << p << ": " << sh->tx[p].report.what());
    CHECK(wait_until(tx[p], deadline) == 0);
  }
  const double send_ms = ms_since(t0);
  ch.close();  // receivers drain, then get errc::closed
  for (int r = 0; r < R; ++r) {
    INFO("receiver " << r << ": " << sh->rx[r].report.what());
    CHECK(wait_until(rx[r], deadline) == 0);
  }

  std::uint64_t total = 0;
  std::uint64_t bytes = 0;
  std::uint64_t rx_timeouts = 0;
  std::string split;
  for (int r = 0; r < R; ++r) {
    bytes += sh->rx[r].bytes;
    rx_timeouts += sh->rx[r].timeouts;
    split += " " + std::to_string(sh->rx[r].count[0] + sh->rx[r].count[1]);
  }
  for (int p = 0; p < P; ++p) {
    const std::uint64_t sent = sh->tx[p].sent;
    total += sent;
    std::uint64_t count = 0;
    std::uint64_t hash = 0;
    for (int r = 0; r < R; ++r) {
      count += sh->rx[r].count[p];
      hash += sh->rx[r].hash[p];
    }
    std::uint64_t missing = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t phantom = 0;  // received but never sent
    std::int64_t first_bad = -1;
    for (std::uint64_t s = 0; s < max_per_producer; ++s) {
      const std::uint8_t n = seen[static_cast<std::uint64_t>(p) * max_per_producer + s];
      const bool ok = s < sent ? n == 1 : n == 0;
      if (s < sent && n == 0) ++missing;
      if (n > 1) ++duplicated;
      if (s >= sent && n != 0) ++phantom;
      if (!ok && first_bad < 0) first_bad = static_cast<std::int64_t>(s);
    }
    INFO("sender " << p << " sent " << sent << " (" << sh->tx[p].timeouts
                   << " send_for timeouts); first seq not delivered exactly once: " << first_bad);
    CHECK(sent > 0);
    CHECK(count == sent);
    CHECK(hash == sh->tx[p].hash);
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    CHECK(phantom == 0);
  }
  const auto st = ch.stats();
  INFO(total << " messages (" << bytes << " data bytes) in " << send_ms << " ms; receivers got"
             << split << "; receive_for timeouts " << rx_timeouts << "; times_full "
             << st.times_full << ", send_sleeps " << st.send_sleeps << ", receive_sleeps "
             << st.receive_sleeps << ", send_wakes " << st.send_wakes << ", receive_wakes "
             << st.receive_wakes);
  CHECK(st.sent == total);
  CHECK(st.received == total);
  CHECK(st.queued == 0);
  // Spin budgets of 0 send both sides to sleep; a run that never slept did
  // not test what it is for.
  CHECK(st.send_sleeps + st.receive_sleeps > 0);
}

TEST_CASE("stress: mpmc, 2 sending and 2 receiving processes, random sizes and spin budgets",
          "[stress][channel]") {
  run_stress({Topology::mpmc, 2, 2, 64, Mode::blocking});
}

TEST_CASE("stress: spsc, 1 sending and 1 receiving process, random sizes and spin budgets",
          "[stress][channel]") {
  // 16 records of the largest size: the byte ring wraps (with a padding
  // record) every few dozen messages.
  run_stress({Topology::spsc, 1, 1, 16, Mode::blocking});
}

TEST_CASE("stress: send_for and receive_for with tiny timeouts across processes",
          "[stress][channel][timeout]") {
  SECTION("mpmc, 2 -> 2") { run_stress({Topology::mpmc, 2, 2, 64, Mode::deadlines}); }
  SECTION("spsc, 1 -> 1") { run_stress({Topology::spsc, 1, 1, 16, Mode::deadlines}); }
}

}  // namespace
