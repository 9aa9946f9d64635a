// What the kill campaigns against mpmc channels share (tests/stress/
// mpmc_recovery_test.cpp kills at random instants, tests/fault/ at chosen
// points): messages stamped with their producer's incarnation, sequence
// and a checksum over the payload, and a board in shared memory where
// producers record the sends that returned and consumers every message
// they got, so the parent can count what was torn, duplicated, out of
// order or missing after the children are gone.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include <unistd.h>

#include "sleet/channel.hpp"
#include "support.hpp"

namespace sleet::test {

// A message of 16 + 8 * FillWords bytes; the fill makes a kill mid-copy
// (a torn message) detectable.
template <std::size_t FillWords>
struct StampedMsg {
  std::uint32_t incarnation;
  std::uint32_t seq;
  std::uint64_t check;
  std::uint64_t fill[FillWords];

  static StampedMsg make(std::uint32_t inc, std::uint32_t seq) {
    StampedMsg m{inc, seq, 0, {}};
    for (std::size_t i = 0; i < FillWords; ++i) m.fill[i] = mix(inc * 1000003ull + seq + i);
    m.check = mix(m.fill[0] ^ m.fill[FillWords - 1] ^ seq);
    return m;
  }
};

// Incarnations x PerIncarnation messages at most; lives in SharedMemory.
template <class Msg, std::uint32_t Incarnations, std::uint32_t PerIncarnation>
struct KillBoard {
  std::atomic<std::uint32_t> confirmed[Incarnations];  // sends that returned, per incarnation
  std::atomic<std::uint8_t> seen[Incarnations][PerIncarnation];
  std::atomic<std::uint64_t> torn;
  std::atomic<std::uint64_t> duplicates;
  std::atomic<std::uint64_t> out_of_order;
  std::atomic<std::uint64_t> received;

  static constexpr std::uint32_t kIncarnations = Incarnations;
  static constexpr std::uint32_t kPerIncarnation = PerIncarnation;

  // A producer's life: sends its incarnation's messages in order, each
  // recorded once send_for() returned; then exits 0 (or 3 if a send timed out).
  [[noreturn]] void produce(const std::string& name, std::uint32_t inc) {
    auto ch = Channel<Msg>::open(name);
    for (std::uint32_t seq = 0; seq < PerIncarnation; ++seq) {
      if (!ch.send_for(Msg::make(inc, seq), std::chrono::seconds(30))) ::_exit(3);
      confirmed[inc].store(seq + 1, std::memory_order_release);
    }
    ::_exit(0);
  }
  // A consumer's life: receives and checks every message until the channel
  // is closed (exit 0; 4 for another error).
  [[noreturn]] void consume(const std::string& name) {
    auto ch = Channel<Msg>::open(name);
    std::vector<std::int64_t> last(Incarnations, -1);
    for (;;) {
      std::optional<Msg> m;
      try {
        m = ch.receive();
      } catch (const Error& e) {
        ::_exit(e.code() == errc::closed ? 0 : 4);
      }
      if (!intact(*m)) {
        torn.fetch_add(1);
        continue;
      }
      if (static_cast<std::int64_t>(m->seq) <= last[m->incarnation]) out_of_order.fetch_add(1);
      last[m->incarnation] = m->seq;
      if (seen[m->incarnation][m->seq].fetch_add(1) != 0) duplicates.fetch_add(1);
      received.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // After the children are gone: confirmed sends and those never received,
  // over the first `incarnations`.
  std::uint64_t confirmed_total(std::uint32_t incarnations) const {
    std::uint64_t n = 0;
    for (std::uint32_t i = 0; i < incarnations; ++i) n += confirmed[i].load();
    return n;
  }
  std::uint64_t missing(std::uint32_t incarnations) const {
    std::uint64_t n = 0;
    for (std::uint32_t i = 0; i < incarnations; ++i) {
      const std::uint32_t c = confirmed[i].load();
      for (std::uint32_t s = 0; s < c; ++s) n += seen[i][s].load() == 0;
    }
    return n;
  }

 private:
  static bool intact(const Msg& m) {
    if (m.incarnation >= Incarnations || m.seq >= PerIncarnation) return false;
    const Msg want = Msg::make(m.incarnation, m.seq);
    return std::memcmp(&want, &m, sizeof m) == 0;
  }
};

}  // namespace sleet::test
