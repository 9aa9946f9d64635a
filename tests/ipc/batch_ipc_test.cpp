// Batches and loans between real processes (fork): producers mix
// send_batch, try_send_batch, loans (some abandoned) and single sends;
// consumers mix receive_batch_for with various `max`, receive_batch and
// single receives. Every message carries its producer, a sequence number
// and a checksum; at the end every (producer, seq) has been seen exactly
// once across all consumers, and in order per consumer.
//
// Children never use Catch2: they fill a Report in shared memory and exit
// with 0 or non-zero. Every wait of the parent is bounded.
#include <catch2/catch.hpp>

#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ipc/ipc_support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::Error;
using sleet::Topology;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::Clock;
using sleet::test::ms_since;
using sleet::test::patience;
using sleet::test::Report;
using sleet::test::Rng;
using sleet::test::scaled;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
using sleet::test::wait_until;

using Msg = sleet::test::SeqMsg;
using sleet::test::check_of;
using sleet::test::intact;
using sleet::test::make_msg;
using sleet::test::topo_name;

constexpr int kMaxSide = 2;

struct Config {
  Topology topology;
  int producers;
  int consumers;
};

struct ConsumerReport {
  Report report;
  std::uint64_t count[kMaxSide];
  std::uint64_t hash[kMaxSide];  // sum of the checksums received
  std::uint64_t batches;         // receive_batch* calls that returned messages
  std::uint64_t largest;         // most messages one call returned
};

struct ProducerReport {
  Report report;
  std::uint64_t batches;
  std::uint64_t loans;
  std::uint64_t abandoned;
  std::uint64_t singles;
};

struct Shared {
  ProducerReport tx[kMaxSide];
  ConsumerReport rx[kMaxSide];
};

// One producer: sends seq 0..n-1 in order, choosing the way at random.
int produce(const std::string& name, std::uint32_t p, std::uint64_t n, ProducerReport& me) {
  auto c = Channel<Msg>::open(name);
  Rng rng(0xC0FFEEull + p);
  std::vector<Msg> buf;
  buf.reserve(64);
  std::uint64_t s = 0;
  while (s < n) {
    switch (rng.below(6)) {
      case 0:
      case 1: {  // a blocking batch
        const std::uint64_t k = std::min<std::uint64_t>(1 + rng.below(64), n - s);
        buf.clear();
        for (std::uint64_t i = 0; i < k; ++i) buf.push_back(make_msg(p, s + i));
        c.send_batch(buf);
        s += k;
        ++me.batches;
        break;
      }
      case 2: {  // what fits now, the rest later
        const std::uint64_t k = std::min<std::uint64_t>(1 + rng.below(32), n - s);
        buf.clear();
        for (std::uint64_t i = 0; i < k; ++i) buf.push_back(make_msg(p, s + i));
        const std::size_t done = c.try_send_batch(buf);
        if (done > k) return me.report.fail("producer %u: try_send_batch sent %zu of %" PRIu64, p,
                                            done, k);
        s += done;
        ++me.batches;
        break;
      }
      case 3: {  // a loan, filled field by field
        auto l = c.loan();
        l->producer = p;
        l->seq = s;
        l->check = check_of(p, s);
        l.commit();
        ++s;
        ++me.loans;
        break;
      }
      case 4: {  // a loan that may time out, or one abandoned half filled
        if (rng.below(4) == 0) {
          if (auto l = c.try_loan()) {
            (*l)->producer = p;
            (*l)->seq = ~std::uint64_t{0};  // never delivered: abandoned
            ++me.abandoned;
          }
          break;
        }
        auto l = c.loan_for(patience(5s));
        if (!l) return me.report.fail("producer %u: loan_for timed out at seq %" PRIu64, p, s);
        **l = make_msg(p, s);
        l->commit();
        ++s;
        ++me.loans;
        break;
      }
      default:
        c.send(make_msg(p, s));
        ++s;
        ++me.singles;
        break;
    }
  }
  return me.report.ok() ? 0 : 1;
}

// One consumer: receives until the channel is closed and drained.
int consume(const std::string& name, int r, int producers, std::uint64_t n,
            SharedMemory<std::uint8_t>& seen, ConsumerReport& me) {
  auto c = Channel<Msg>::open(name);
  Rng rng(0xFEEDull + static_cast<std::uint64_t>(r));
  std::int64_t last[kMaxSide] = {-1, -1};
  auto on_msg = [&](const Msg& m) {
    if (m.producer >= static_cast<std::uint32_t>(producers) || m.seq >= n) {
      me.report.fail("consumer %d: message from producer %u seq %" PRIu64 " out of range", r,
                     m.producer, m.seq);
      return;
    }
    if (!intact(m)) {
      me.report.fail("consumer %d: bad checksum on producer %u seq %" PRIu64, r, m.producer,
                     m.seq);
      return;
    }
    const std::uint32_t p = m.producer;
    if (static_cast<std::int64_t>(m.seq) <= last[p]) {
      me.report.fail("consumer %d: producer %u seq %" PRIu64 " after %" PRId64, r, p, m.seq,
                     last[p]);
    }
    last[p] = static_cast<std::int64_t>(m.seq);
    ++me.count[p];
    me.hash[p] += m.check;
    // relaxed: the parent reads after waitpid().
    std::atomic_ref<std::uint8_t>(seen[p * n + m.seq]).fetch_add(1, std::memory_order_relaxed);
  };
  const std::size_t maxes[] = {1, 7, 64, std::numeric_limits<std::size_t>::max()};
  for (;;) {
    try {
      const unsigned pick = static_cast<unsigned>(rng.below(10));
      if (pick == 0) {
        if (auto m = c.receive_for(100ms)) on_msg(*m);
        continue;
      }
      const std::size_t max = maxes[pick % 4];
      std::size_t calls = 0;
      auto counted = [&](const Msg& m) {
        ++calls;
        on_msg(m);
      };
      const std::size_t got =
          pick == 1 ? c.receive_batch(counted, max) : c.receive_batch_for(counted, max, 100ms);
      if (got != calls || got > max) {
        return me.report.fail("consumer %d: receive_batch returned %zu, fn called %zu times, max %zu",
                              r, got, calls, max);
      }
      if (got != 0) ++me.batches;
      if (got > me.largest) me.largest = got;
    } catch (const Error& e) {
      if (e.code() == sleet::errc::closed) break;
      return me.report.fail("consumer %d: %s", r, e.what());
    }
  }
  return me.report.ok() ? 0 : 1;
}

}  // namespace

TEST_CASE("ipc batch: batches and loans cross processes exactly once", "[ipc][batch][loan]") {
  const auto cfg = GENERATE(values<Config>({{Topology::spsc, 1, 1},
                                            {Topology::mpmc, 1, 1},
                                            {Topology::mpmc, 2, 2}}));
  // The default spin budget, and none: every empty or full ring then puts
  // the waiting side to sleep on the futex.
  const auto spin = GENERATE(values<std::chrono::nanoseconds>({sleet::kDefaultSpin, 0ns}));
  const int P = cfg.producers;
  const int R = cfg.consumers;
  const std::uint64_t total = scaled(200000, 2000);
  const std::uint64_t N = total / static_cast<std::uint64_t>(P);  // per producer
  INFO(topo_name(cfg.topology) << ' ' << P << " -> " << R << " processes, " << N
                               << " messages per producer, capacity 256, spin " << spin.count()
                               << " ns");

  const std::string name = unique_name("bxfer");
  Cleanup cleanup(name);
  auto ch = Channel<Msg>::create(name, {.topology = cfg.topology, .capacity = 256, .spin = spin});
  SharedMemory<Shared> sh;
  SharedMemory<std::uint8_t> seen(static_cast<std::size_t>(P) * N);

  std::vector<Child> rx;
  std::vector<Child> tx;
  rx.reserve(R);
  tx.reserve(P);
  const auto t0 = Clock::now();
  for (int r = 0; r < R; ++r) {
    rx.emplace_back([&, r] { return consume(name, r, P, N, seen, sh->rx[r]); });
  }
  for (int p = 0; p < P; ++p) {
    tx.emplace_back([&, p] { return produce(name, static_cast<std::uint32_t>(p), N, sh->tx[p]); });
  }

  const auto deadline = Clock::now() + patience(60s);
  for (int p = 0; p < P; ++p) {
    INFO("producer " << p << ": " << sh->tx[p].report.what());
    CHECK(wait_until(tx[p], deadline) == 0);
  }
  ch.close();  // consumers drain what is left, then get errc::closed
  for (int r = 0; r < R; ++r) {
    INFO("consumer " << r << ": " << sh->rx[r].report.what());
    CHECK(wait_until(rx[r], deadline) == 0);
  }
  const double elapsed = ms_since(t0);

  for (int p = 0; p < P; ++p) {
    std::uint64_t count = 0, hash = 0, expected_hash = 0;
    for (int r = 0; r < R; ++r) {
      count += sh->rx[r].count[p];
      hash += sh->rx[r].hash[p];
    }
    for (std::uint64_t s = 0; s < N; ++s) expected_hash += check_of(static_cast<std::uint32_t>(p), s);
    std::uint64_t missing = 0, duplicated = 0;
    std::int64_t first_bad = -1;
    for (std::uint64_t s = 0; s < N; ++s) {
      const std::uint8_t k = seen[static_cast<std::size_t>(p) * N + s];
      if (k == 0) ++missing;
      if (k > 1) ++duplicated;
      if (k != 1 && first_bad < 0) first_bad = static_cast<std::int64_t>(s);
    }
    INFO("producer " << p << ": missing " << missing << ", duplicated " << duplicated
                     << ", first bad seq " << first_bad);
    CHECK(count == N);
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    CHECK(hash == expected_hash);
    // Every way of sending was used.
    CHECK(sh->tx[p].batches > 0);
    CHECK(sh->tx[p].loans > 0);
    CHECK(sh->tx[p].singles > 0);
  }
  std::uint64_t batches = 0, largest = 0, abandoned = 0;
  for (int r = 0; r < R; ++r) {
    batches += sh->rx[r].batches;
    largest = std::max(largest, sh->rx[r].largest);
  }
  for (int p = 0; p < P; ++p) abandoned += sh->tx[p].abandoned;
  CHECK(batches > 0);
  CHECK(largest > 1);  // some receive_batch took more than one message
  const auto s = ch.stats();
  CHECK(s.queued == 0);
  if (cfg.topology == Topology::spsc) CHECK(s.sent == total - total % static_cast<std::uint64_t>(P));
  INFO(topo_name(cfg.topology) << ' ' << P << "->" << R << ": " << P * N << " messages in "
                               << elapsed << " ms, " << batches << " receive batches (largest "
                               << largest << "), " << abandoned << " abandoned loans");
  CHECK(elapsed < static_cast<double>(patience(60s).count()));
}
