// White-box tests of the mpmc slot ring (include/sleet/detail/mpmc_ring.hpp)
// placed in a plain aligned heap buffer: laps and the 63-bit ticket limit,
// exact full/empty, skipped slots, close_tickets, batches, and 2 producers
// x 2 consumer threads.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <algorithm>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

using sleet::detail::block_on;
using sleet::detail::Clock;
using sleet::detail::MpmcRing;
using sleet::detail::Poll;
using sleet::test::mix;

class RingBuffer {
 public:
  RingBuffer(std::uint64_t slots, std::uint64_t max_message_size, std::uint64_t start = 0)
      : size_(MpmcRing::control_size() + slots * MpmcRing::stride_for(max_message_size)) {
    mem_ = static_cast<std::byte*>(::operator new(size_, std::align_val_t{128}));
    std::memset(mem_, 0xA5, size_);
    MpmcRing::initialize(mem_, slots, max_message_size, start);
    ring = MpmcRing(mem_);
  }
  ~RingBuffer() { ::operator delete(mem_, std::align_val_t{128}); }
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  sleet::detail::MpmcControl& control() const { return ring.control(); }
  // A second view of the same ring, as another process would have.
  MpmcRing view() const { return MpmcRing(mem_); }

  MpmcRing ring;

 private:
  std::size_t size_;
  std::byte* mem_;
};

bool write_u64(MpmcRing& r, std::uint64_t v) { return r.try_write(&v, sizeof v); }

std::optional<std::uint64_t> read_u64(MpmcRing& r) {
  std::uint64_t v = 0;
  std::uint32_t size = 0;
  if (!r.try_read(&v, sizeof v, size)) return std::nullopt;
  CHECK(size == sizeof v);
  return v;
}

}  // namespace

TEST_CASE("mpmc ring: slot count and stride", "[mpmc]") {
  CHECK(MpmcRing::slot_count(1) == 2);  // never 1: see "capacity 1" below
  CHECK(MpmcRing::slot_count(2) == 2);
  CHECK(MpmcRing::slot_count(5) == 8);
  CHECK(MpmcRing::slot_count(8) == 8);
  CHECK(MpmcRing::slot_count(1000) == 1024);
  CHECK(MpmcRing::slot_count(1025) == 2048);
  // Whole cache lines per slot (16-byte slot header + payload).
  STATIC_REQUIRE(MpmcRing::stride_for(0) == 64);
  STATIC_REQUIRE(MpmcRing::stride_for(8) == 64);
  STATIC_REQUIRE(MpmcRing::stride_for(48) == 64);
  STATIC_REQUIRE(MpmcRing::stride_for(49) == 128);
  for (std::uint64_t max = 0; max < 1000; ++max) {
    const auto stride = MpmcRing::stride_for(max);
    CAPTURE(max);
    REQUIRE(stride % sleet::detail::kCacheLine == 0);
    REQUIRE(stride >= sizeof(sleet::detail::MpmcSlot) + max);
    REQUIRE(stride < sizeof(sleet::detail::MpmcSlot) + max + sleet::detail::kCacheLine);
  }
}

TEST_CASE("mpmc ring: full and empty are exact", "[mpmc][full]") {
  const std::uint64_t capacity = GENERATE(2, 3, 5, 8, 100);
  const std::uint64_t slots = MpmcRing::slot_count(capacity);
  CAPTURE(capacity, slots);
  RingBuffer rb(slots, 8);
  auto& r = rb.ring;
  CHECK_FALSE(read_u64(r));
  for (int lap = 0; lap < 3; ++lap) {
    for (std::uint64_t i = 0; i < slots; ++i) REQUIRE(write_u64(r, lap * 1000 + i));
    CHECK_FALSE(write_u64(r, 999999));  // exactly `slots` fit
    CHECK_FALSE(r.claim());
    CHECK(r.size_approx() == slots);
    // One out, one in.
    CHECK(read_u64(r) == std::optional<std::uint64_t>(lap * 1000));
    CHECK(write_u64(r, lap * 1000 + slots));
    CHECK_FALSE(write_u64(r, 999999));
    for (std::uint64_t i = 1; i <= slots; ++i) {
      CHECK(read_u64(r) == std::optional<std::uint64_t>(lap * 1000 + i));
    }
    CHECK_FALSE(read_u64(r));
    CHECK_FALSE(r.peek());
    CHECK(r.size_approx() == 0);
  }
}

// Vyukov's queue needs at least two slots: with one, "holds the message of
// ticket t" (seq == t + 1) and "free for ticket t + 1" (seq == t + 1) are the
// same state, so a second write would overwrite an unread message and the
// next peek() would spin forever. slot_count() must never return 1.
TEST_CASE("mpmc ring: capacity 1 still gets a working ring", "[mpmc][full]") {
  CHECK(MpmcRing::slot_count(0) >= 2);
  CHECK(MpmcRing::slot_count(1) >= 2);
  const std::uint64_t slots = MpmcRing::slot_count(1);
  RingBuffer rb(slots, 8);
  for (std::uint64_t i = 0; i < slots; ++i) REQUIRE(write_u64(rb.ring, 1 + i));
  const bool overwrote = write_u64(rb.ring, 99);
  CHECK_FALSE(overwrote);
  REQUIRE_FALSE(overwrote);  // reading after an overwrite would spin forever
  for (std::uint64_t i = 0; i < slots; ++i) {
    CHECK(read_u64(rb.ring) == std::optional<std::uint64_t>(1 + i));
  }
  CHECK_FALSE(read_u64(rb.ring));
}

// Tickets have 63 bits: bit 63 of enqueue_pos is the closed flag
// (mpmc_ring.hpp). Slot indices wrap every lap; the tickets themselves run
// right up to the limit, where the ring reports closed instead of wrapping.
TEST_CASE("mpmc ring: slots wrap every lap; tickets run up to the 63-bit limit", "[mpmc][wrap]") {
  constexpr std::uint64_t kLimit = MpmcRing::kClosedBit;
  const std::uint64_t start = kLimit - 8 * 20 - 3;  // 20 laps and a bit below the limit
  RingBuffer rb(8, 8, start);
  auto& r = rb.ring;
  CHECK(rb.control().enqueue_pos.load() == start);
  std::uint64_t in = 0, out = 0;
  for (int round = 0; round < 20; ++round) {
    // Fill to the brim (a lap that starts mid-array), then drain.
    while (write_u64(r, in)) ++in;
    CHECK(rb.control().enqueue_pos.load() - rb.control().dequeue_pos.load() == 8);
    CHECK(r.size_approx() == 8);
    while (auto v = read_u64(r)) {
      CHECK(*v == out);
      ++out;
    }
    CHECK(out == in);
    CHECK(r.size_approx() == 0);
  }
  CHECK(in == 160);
  // The last three tickets below the limit still work.
  for (int i = 0; i < 3; ++i) REQUIRE(write_u64(r, in++));
  CHECK(rb.control().enqueue_pos.load() == kLimit);
  // At the limit a claim fails as closed, never by wrapping into old tickets.
  const auto cl = r.claim();
  CHECK_FALSE(cl);
  CHECK(cl.closed);
  for (int i = 0; i < 3; ++i) CHECK(read_u64(r) == std::optional<std::uint64_t>(out++));
  CHECK_FALSE(read_u64(r));
  CHECK(r.sent_approx() == 0);  // the limit reads as ticket 0 with the flag set
}

TEST_CASE("mpmc ring: close_tickets stops producers; consumers drain up to the final ticket",
          "[mpmc][close]") {
  RingBuffer rb(8, 8, 1000);
  auto& r = rb.ring;
  REQUIRE(write_u64(r, 1));
  REQUIRE(write_u64(r, 2));
  auto pending = r.claim();  // claimed before close, committed after
  REQUIRE(pending);
  CHECK(r.close_tickets() == 1003);
  CHECK(r.close_tickets() == 1003);  // idempotent
  const auto refused = r.claim();
  CHECK_FALSE(refused);
  CHECK(refused.closed);
  CHECK_FALSE(write_u64(r, 4));
  CHECK(r.sent_approx() == 1003);
  CHECK(r.size_approx() == 3);
  CHECK_FALSE(r.drained());
  CHECK(read_u64(r) == std::optional<std::uint64_t>(1));
  CHECK(read_u64(r) == std::optional<std::uint64_t>(2));
  CHECK_FALSE(read_u64(r));   // the pending ticket is not published yet
  CHECK_FALSE(r.drained());   // and receivers must wait for it
  const std::uint64_t three = 3;
  std::memcpy(pending.data(), &three, 8);
  r.commit(pending, 8);
    r.publish();
  CHECK(read_u64(r) == std::optional<std::uint64_t>(3));
  CHECK(r.drained());
  CHECK_FALSE(read_u64(r));
}

TEST_CASE("mpmc ring: a full ring is not a closed one", "[mpmc][close]") {
  RingBuffer rb(2, 8);
  REQUIRE(write_u64(rb.ring, 1));
  REQUIRE(write_u64(rb.ring, 2));
  const auto cl = rb.ring.claim();
  CHECK_FALSE(cl);
  CHECK_FALSE(cl.closed);
}

TEST_CASE("mpmc ring: consumers skip kSkip slots", "[mpmc][skip]") {
  RingBuffer rb(8, 8);
  auto& r = rb.ring;
  auto a = r.claim();
  auto b = r.claim();
  auto c = r.claim();
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(a.ticket == 0);
  CHECK(b.ticket == 1);
  CHECK(c.ticket == 2);
  const std::uint64_t va = 11, vc = 33;
  std::memcpy(a.data(), &va, 8);
  std::memcpy(c.data(), &vc, 8);
  r.commit(a, 8);
    r.publish();
  r.commit(b, MpmcRing::kSkip);
    r.publish();
  r.commit(c, 8);
    r.publish();
  CHECK(read_u64(r) == std::optional<std::uint64_t>(11));
  CHECK(read_u64(r) == std::optional<std::uint64_t>(33));  // b skipped
  CHECK_FALSE(read_u64(r));
  CHECK(rb.control().dequeue_pos.load() == 3);

  // A skipped slot as the last one published: the consumer frees it and reports empty.
  auto d = r.claim();
  REQUIRE(d);
  r.commit(d, MpmcRing::kSkip);
    r.publish();
  CHECK_FALSE(r.peek());
  CHECK(rb.control().dequeue_pos.load() == 4);

  // Several skips in a row, and every skipped slot is free again for producers.
  for (int i = 0; i < 5; ++i) {
    auto s = r.claim();
    REQUIRE(s);
    r.commit(s, MpmcRing::kSkip);
    r.publish();
  }
  REQUIRE(write_u64(r, 77));
  CHECK(read_u64(r) == std::optional<std::uint64_t>(77));
  for (std::uint64_t i = 0; i < 8; ++i) REQUIRE(write_u64(r, i));
  CHECK_FALSE(write_u64(r, 8));
  for (std::uint64_t i = 0; i < 8; ++i) CHECK(read_u64(r) == std::optional<std::uint64_t>(i));
}

TEST_CASE("mpmc ring: an uncommitted claim holds back the ones behind it", "[mpmc]") {
  RingBuffer rb(4, 8);
  auto& r = rb.ring;
  auto first = r.claim();
  REQUIRE(first);
  REQUIRE(write_u64(r, 2));  // ticket 1, committed
  CHECK_FALSE(r.peek());  // ticket 0 is not ready: consumers keep order
  const std::uint64_t one = 1;
  std::memcpy(first.data(), &one, 8);
  r.commit(first, 8);
    r.publish();
  CHECK(read_u64(r) == std::optional<std::uint64_t>(1));
  CHECK(read_u64(r) == std::optional<std::uint64_t>(2));
}

TEST_CASE("mpmc ring: commit/publish and consume/release", "[mpmc][batch]") {
  RingBuffer rb(4, 8);
  auto& r = rb.ring;
  auto& ec_data = rb.control().common.data_ec;
  auto& ec_space = rb.control().common.space_ec;
  // Pretend somebody sleeps on both eventcounts, so that notify() must wake.
  ec_data.waiters.store(1);
  ec_space.waiters.store(1);

  std::vector<MpmcRing::Claim> claims;
  for (std::uint64_t i = 0; i < 4; ++i) {
    auto cl = r.claim();
    REQUIRE(cl);
    std::memcpy(cl.data(), &i, 8);
    r.commit(cl, 8);
  }
  CHECK(ec_data.wakes.load() == 0);  // commit() publishes the slot but wakes nobody
  r.publish();
  CHECK(ec_data.wakes.load() == 1);  // one wake for the batch

  MpmcRing consumer = rb.view();
  std::vector<MpmcRing::Take> takes;
  for (std::uint64_t i = 0; i < 4; ++i) {
    auto t = consumer.peek();
    REQUIRE(t);
    std::uint64_t v = 0;
    std::memcpy(&v, t.data(), 8);
    CHECK(v == i);
    CHECK(t.size() == 8);
    takes.push_back(t);
  }
  CHECK_FALSE(r.claim());  // taken but not consumed: still occupied
  for (auto& t : takes) consumer.consume(t);
  CHECK(ec_space.wakes.load() == 0);
  auto again = r.claim();  // consumed slots are free at once
  CHECK(again);
  r.commit(again, 0);
    r.publish();
  consumer.release();
  CHECK(ec_space.wakes.load() == 1);
  CHECK(ec_data.wakes.load() == 2);
  ec_data.waiters.store(0);
  ec_space.waiters.store(0);
}

TEST_CASE("mpmc ring: variable payload sizes and size_approx", "[mpmc]") {
  constexpr std::uint32_t kMax = 100;
  RingBuffer rb(16, kMax);
  auto& r = rb.ring;
  std::byte buf[kMax];
  for (std::uint32_t size = 0; size <= kMax; ++size) {
    for (std::uint32_t i = 0; i < size; ++i) buf[i] = static_cast<std::byte>(size + i);
    REQUIRE(r.try_write(buf, size));
    CHECK(r.size_approx() == 1);
    CHECK(r.sent_approx() == size + 1);
    std::byte out[kMax];
    std::uint32_t got = 12345;
    REQUIRE(r.try_read(out, kMax, got));
    CHECK(got == size);
    CHECK(std::memcmp(out, buf, size) == 0);
    CHECK(r.received_approx() == size + 1);
  }
  CHECK(r.size_approx() == 0);
}

// Two producer threads and two consumer threads on one ring, waiting on the
// ring's own eventcounts; every message is checked, counted exactly once,
// and each producer's messages reach each consumer in order.
TEST_CASE("mpmc ring: 2 producers x 2 consumers, checksummed", "[mpmc][threads]") {
  constexpr std::uint32_t kMax = 48;
  constexpr std::uint64_t kPerProducer = 40000;
  constexpr int kProducers = 2, kConsumers = 2;
  RingBuffer rb(64, kMax, MpmcRing::kClosedBit - 100000);  // big tickets, slot index wraps
  auto& common = rb.control().common;
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<bool> failed{false};
  const auto t0 = Clock::now();
  const auto give_up = t0 + std::chrono::seconds(3);

  struct Msg {
    std::uint64_t producer;
    std::uint64_t seq;
    std::uint64_t check;
  };
  // seen[p][seq]: how many times message seq of producer p arrived.
  std::vector<std::vector<std::atomic<std::uint8_t>>> seen(kProducers);
  for (auto& s : seen) s = std::vector<std::atomic<std::uint8_t>>(kPerProducer);

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      MpmcRing ring = rb.view();
      std::byte buf[kMax];
      for (std::uint64_t seq = 0; seq < kPerProducer && !failed.load(); ++seq) {
        const Msg m{static_cast<std::uint64_t>(p), seq, mix(seq * 2 + p)};
        const auto size = static_cast<std::uint32_t>(sizeof m + m.check % (kMax - sizeof m + 1));
        std::memcpy(buf, &m, sizeof m);
        for (std::uint32_t i = sizeof m; i < size; ++i) buf[i] = static_cast<std::byte>(m.check + i);
        std::atomic<std::uint64_t> sleeps{0};
        const Poll res = block_on(
            common.space_ec, [&] { return ring.try_write(buf, size) ? Poll::ready : Poll::empty; },
            std::chrono::microseconds(20), give_up, sleeps);
        if (res != Poll::ready) {
          failed.store(true);
          return;
        }
      }
    });
  }
  std::vector<std::uint64_t> per_consumer(kConsumers, 0);
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      MpmcRing ring = rb.view();
      std::vector<std::int64_t> last(kProducers, -1);
      std::byte buf[kMax];
      std::uint32_t size = 0;
      std::atomic<std::uint64_t> sleeps{0};
      while (consumed.load() < kProducers * kPerProducer && !failed.load()) {
        const Poll res = block_on(
            common.data_ec,
            [&] { return ring.try_read(buf, kMax, size) ? Poll::ready : Poll::empty; },
            std::chrono::microseconds(20), std::min(give_up, Clock::now() + std::chrono::milliseconds(20)),
            sleeps);
        if (res != Poll::ready) {
          if (Clock::now() >= give_up) failed.store(true);
          continue;  // re-check the total: the others may have taken the rest
        }
        Msg m{};
        std::memcpy(&m, buf, sizeof m);
        bool ok = m.producer < kProducers && m.seq < kPerProducer &&
                  m.check == mix(m.seq * 2 + m.producer) &&
                  size == sizeof m + m.check % (kMax - sizeof m + 1) &&
                  static_cast<std::int64_t>(m.seq) > last[m.producer];
        for (std::uint32_t i = sizeof m; ok && i < size; ++i) {
          ok = buf[i] == static_cast<std::byte>(m.check + i);
        }
        if (!ok) {
          failed.store(true);
          return;
        }
        last[m.producer] = static_cast<std::int64_t>(m.seq);
        seen[m.producer][m.seq].fetch_add(1);
        ++per_consumer[c];
        consumed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  INFO("consumed " << consumed.load() << " in " << ms << " ms; per consumer " << per_consumer[0]
                   << " / " << per_consumer[1]);
  CHECK_FALSE(failed.load());
  CHECK(consumed.load() == kProducers * kPerProducer);
  std::uint64_t once = 0;
  for (auto& s : seen) {
    for (auto& n : s) once += n.load() == 1;
  }
  CHECK(once == kProducers * kPerProducer);
  CHECK(rb.ring.size_approx() == 0);
  CHECK(ms < 3000);
}

// ---- recovery from dead processes (mpmc_ring.hpp, "Dead processes") ----

namespace {

// An identity whose process is gone: a child that has exited and been reaped.
std::uint64_t dead_identity() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return static_cast<std::uint64_t>(pid) << 32 | 12345u;
}

// Enters `identity` in the ring's process table as another process would.
std::uint32_t enter_process(MpmcRing& r, std::uint64_t identity) {
  for (std::uint32_t i = 0; i < sleet::detail::kTrackedProcesses; ++i) {
    std::uint64_t expected = 0;
    if (r.control().processes[i].compare_exchange_strong(expected, identity)) return i;
  }
  FAIL("process table full");
  return sleet::detail::kUntracked;
}

}  // namespace

TEST_CASE("mpmc ring: a producer that died holding a claim is skipped and counted", "[mpmc][recovery]") {
  const bool moved_position = GENERATE(true, false);  // died after / before moving enqueue_pos
  CAPTURE(moved_position);
  RingBuffer rb(4, 8);
  auto& r = rb.ring;
  const std::uint32_t me = r.attach();
  const std::uint32_t dead = enter_process(r, dead_identity());
  REQUIRE(me != dead);
  REQUIRE(r.try_write("\x01\0\0\0\0\0\0\0", 8, me));
  const auto held = r.claim(dead);  // the dead process's last act
  REQUIRE(held);
  if (!moved_position) rb.control().enqueue_pos.store(held.ticket);
  std::uint64_t v = 2;
  REQUIRE(r.try_write(&v, 8, me));  // helps the position past the held slot
  CHECK(read_u64(r) == std::optional<std::uint64_t>(1));
  CHECK_FALSE(r.peek(me));  // ticket 1 is held
  CHECK(r.consumer_stuck());
  CHECK(r.recover(held.ticket, me));
  CHECK_FALSE(r.recover(held.ticket, me));  // once
  CHECK(rb.control().common.abandoned.load() == 1);
  CHECK(read_u64(r) == std::optional<std::uint64_t>(2));  // the message behind it flows
  CHECK_FALSE(r.peek(me));
  CHECK_FALSE(r.consumer_stuck());
  // The ring is whole: every slot usable for two more laps.
  for (std::uint64_t i = 0; i < 8; ++i) {
    REQUIRE(write_u64(r, 100 + i));
    CHECK(read_u64(r) == std::optional<std::uint64_t>(100 + i));
  }
}

TEST_CASE("mpmc ring: a consumer that died holding a message frees its slot; the loss is counted",
          "[mpmc][recovery]") {
  RingBuffer rb(2, 8);
  auto& r = rb.ring;
  const std::uint32_t me = r.attach();
  const std::uint32_t dead = enter_process(r, dead_identity());
  REQUIRE(write_u64(r, 1));
  REQUIRE(write_u64(r, 2));
  const auto taken = r.peek(dead);  // taken, never consumed
  REQUIRE(taken);
  CHECK_FALSE(write_u64(r, 3));  // ticket 2 waits for slot 0
  CHECK(r.recover(taken.ticket, me));
  CHECK(rb.control().common.lost.load() == 1);
  REQUIRE(write_u64(r, 3));
  CHECK(read_u64(r) == std::optional<std::uint64_t>(2));
  CHECK(read_u64(r) == std::optional<std::uint64_t>(3));
  CHECK_FALSE(read_u64(r));
}

TEST_CASE("mpmc ring: a live holder is never taken over; unstick waits kRecoverAfter", "[mpmc][recovery]") {
  RingBuffer rb(4, 8);
  auto& r = rb.ring;
  const std::uint32_t me = r.attach();
  CHECK(r.attach() == me);  // one entry per process
  const auto mine = r.claim(me);
  REQUIRE(mine);
  CHECK_FALSE(r.recover(mine.ticket, me));  // we live
  const auto anon = r.claim();              // untracked: nobody can tell
  REQUIRE(anon);
  CHECK_FALSE(r.recover(anon.ticket, me));
  r.commit(mine, sleet::detail::MpmcRing::kSkip);
  r.commit(anon, sleet::detail::MpmcRing::kSkip);
  CHECK_FALSE(r.peek(me));

  const std::uint32_t dead = enter_process(r, dead_identity());
  const auto held = r.claim(dead);
  REQUIRE(held);
  CHECK_FALSE(r.unstick_consumer(me));  // first sight: only noted
  CHECK_FALSE(r.unstick_consumer(me));  // too soon
  std::this_thread::sleep_for(sleet::detail::kRecoverAfter + std::chrono::milliseconds(2));
  CHECK(r.unstick_consumer(me));
  CHECK(rb.control().common.abandoned.load() == 1);
}

TEST_CASE("mpmc ring: a dead process's table entry is reused only after its slots are recovered",
          "[mpmc][recovery]") {
  RingBuffer rb(4, 8);
  auto& r = rb.ring;
  const std::uint64_t gone = dead_identity();
  for (std::uint32_t i = 0; i < sleet::detail::kTrackedProcesses; ++i) REQUIRE(enter_process(r, gone) == i);
  REQUIRE(write_u64(r, 7));
  const auto held = r.claim(0);  // stamped with entry 0, whose process is gone
  REQUIRE(held);
  const std::uint32_t me = r.attach();  // the table is full of the dead: entry 0 is taken back
  CHECK(me == 0);
  CHECK(rb.control().common.abandoned.load() == 1);
  CHECK(read_u64(r) == std::optional<std::uint64_t>(7));
  CHECK_FALSE(r.peek(me));  // the skipped slot was consumed on the way
  CHECK(rb.control().dequeue_pos.load() == 2);
}
