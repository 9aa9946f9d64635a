// Loan<T> (include/sleet/loan.hpp) on spsc and mpmc channels and on a Pipe:
// commit() delivers exactly the value written in the ring; a loan abandoned
// at any point (at once, half filled, after a wrap, moved from, reset())
// publishes nothing and leaves the channel working with exact counts; full
// and timeout; one loan at a time on spsc (errc::busy); commit after close.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::errc;
using sleet::Loan;
using sleet::Pipe;
using sleet::Topology;
using sleet::detail::SpscRing;
using sleet::test::Cleanup;
using sleet::test::unique_name;
using Clock = std::chrono::steady_clock;

// 40 bytes: a 48-byte spsc record, which does not divide the array, so
// records pad at the wrap.
struct Quote {
  std::uint64_t id;
  double price;
  std::uint32_t qty;
  std::uint32_t flags;
  std::uint64_t a;
  std::uint64_t b;
  bool operator==(const Quote&) const = default;
};
static_assert(sizeof(Quote) == 40);
static_assert(std::is_trivially_copyable_v<Quote>);

Quote quote(std::uint64_t i) {
  return Quote{i, static_cast<double>(i) * 0.25, static_cast<std::uint32_t>(i * 3),
               static_cast<std::uint32_t>(i ^ 0xA5A5u), sleet::test::mix(i), ~i};
}

using sleet::test::topo_name;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Fills the loan field by field, as a user would.
void write(Loan<Quote>& l, const Quote& q) {
  l->id = q.id;
  l->price = q.price;
  (*l).qty = q.qty;
  l.get()->flags = q.flags;
  l->a = q.a;
  l->b = q.b;
}

// Sends with loans until the ring is full; returns how many.
int fill_with_loans(Channel<Quote>& ch, std::uint64_t first) {
  int n = 0;
  for (;;) {
    auto l = ch.try_loan();
    if (!l) return n;
    write(*l, quote(first + n));
    l->commit();
    ++n;
    REQUIRE(n < 100000);
  }
}

}  // namespace

TEST_CASE("loan: commit delivers exactly the value written in the ring", "[loan]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("loan.commit");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = topo, .capacity = 4});
  auto rx = Channel<Quote>::open(name);

  auto l = tx.loan();
  REQUIRE(l);
  CHECK(*l == Quote{});  // value-initialised
  CHECK(reinterpret_cast<std::uintptr_t>(l.get()) % alignof(Quote) == 0);
  write(l, quote(7));
  CHECK_FALSE(rx.try_receive().has_value());  // not published before commit()
  l.commit();
  CHECK_FALSE(l);
  CHECK(rx.try_receive() == quote(7));
  CHECK_FALSE(rx.try_receive().has_value());
  // A second commit of the (now empty) loan is refused.
  CHECK_SLEET_ERROR(l.commit(), errc::invalid_argument, "commit() of an empty loan");

  // Each form, and loans mixed with sends, keep their order.
  for (std::uint64_t lap = 0; lap < 20; ++lap) {
    {
      auto a = tx.try_loan();
      REQUIRE(a);
      write(*a, quote(lap * 10 + 1));
      a->commit();
    }
    tx.send(quote(lap * 10 + 2));
    {
      auto b = tx.loan_for(1s);
      REQUIRE(b);
      write(*b, quote(lap * 10 + 3));
      b->commit();
    }
    REQUIRE(rx.receive() == quote(lap * 10 + 1));
    REQUIRE(rx.receive() == quote(lap * 10 + 2));
    REQUIRE(rx.receive() == quote(lap * 10 + 3));
  }
  const auto s = rx.stats();
  CHECK(s.sent == 61);
  CHECK(s.received == 61);
  CHECK(s.queued == 0);
}

TEST_CASE("loan: an abandoned loan publishes nothing; the channel keeps working", "[loan][abandon]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("loan.abandon");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = topo, .capacity = 4});
  auto rx = Channel<Quote>::open(name);
  std::uint64_t sent = 0;

  // After each way of abandoning, a send and a receive must work and nothing
  // else may arrive.
  auto check_clean = [&](const char* what) {
    INFO("after: " << what);
    CHECK_FALSE(rx.try_receive().has_value());
    tx.send(quote(1000 + sent));
    CHECK(rx.try_receive() == quote(1000 + sent));
    ++sent;
    CHECK_FALSE(rx.try_receive().has_value());
  };

  SECTION("right after loan()") {
    { auto l = tx.loan(); }
    check_clean("destroyed at once");
    { auto l = tx.try_loan(); REQUIRE(l); }
    check_clean("try_loan destroyed at once");
    { auto l = tx.loan_for(10ms); REQUIRE(l); }
    check_clean("loan_for destroyed at once");
  }
  SECTION("after filling part of it") {
    {
      auto l = tx.loan();
      l->id = 99;
      l->price = 1.5;
    }
    check_clean("half filled");
    {
      auto l = tx.loan();
      write(l, quote(5));
    }
    check_clean("filled, never committed");
  }
  SECTION("reset()") {
    auto l = tx.loan();
    write(l, quote(5));
    l.reset();
    CHECK_FALSE(l);
    l.reset();  // a second reset is harmless
    check_clean("reset");
    CHECK_SLEET_ERROR(l.commit(), errc::invalid_argument, "empty loan");
    check_clean("commit of a reset loan");
  }
  SECTION("moved from") {
    {
      auto a = tx.loan();
      write(a, quote(11));
      Loan<Quote> b = std::move(a);
      CHECK_FALSE(a);
      CHECK(b);
      CHECK(*b == quote(11));
      // a's destruction (empty) must not abandon b's claim.
    }
    check_clean("moved to b, b destroyed");
    {
      auto a = tx.loan();
      write(a, quote(12));
      Loan<Quote> b;
      CHECK_FALSE(b);
      b = std::move(a);
      CHECK_FALSE(a);
      a.reset();  // empty: no effect
      b.commit();
    }
    CHECK(rx.try_receive() == quote(12));
    ++sent;
    check_clean("move-assigned and committed");
    {
      std::optional<Loan<Quote>> o = tx.try_loan();
      REQUIRE(o);
      Loan<Quote> b = std::move(*o);
      o.reset();  // the moved-from loan is destroyed first
      write(b, quote(13));
      b.commit();
    }
    CHECK(rx.try_receive() == quote(13));
    ++sent;
    check_clean("moved out of an optional");
  }
  SECTION("many in a row, interleaved with sends, through several laps") {
    for (std::uint64_t i = 0; i < 200; ++i) {
      {
        auto l = tx.loan();
        write(l, quote(i + 5000));
        if (i % 3 == 0) l.reset();
      }
      tx.send(quote(i));
      REQUIRE(rx.try_receive() == quote(i));
      ++sent;
      REQUIRE_FALSE(rx.try_receive().has_value());
    }
  }
  // Counts are exact: only the committed messages were sent and received
  // (mpmc counts tickets, skipped ones included: see "does not count as sent").
  const auto s = rx.stats();
  CHECK(s.queued == 0);
  if (topo == Topology::spsc) {
    CHECK(s.sent == sent);
    CHECK(s.received == sent);
  }
}

// stats().sent is "messages published"; an abandoned loan is not one.
TEST_CASE("loan: an abandoned loan does not count as sent", "[loan][abandon][stats]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("loan.count");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = topo, .capacity = 4});
  auto rx = Channel<Quote>::open(name);
  { auto l = tx.loan(); }
  CHECK(tx.stats().sent == 0);
  CHECK(tx.stats().queued == 0);
  tx.send(quote(1));
  CHECK(tx.stats().sent == 1);
  CHECK(tx.stats().queued == 1);
  CHECK(rx.receive() == quote(1));
  CHECK(rx.stats().sent == 1);
  CHECK(rx.stats().received == 1);
}

// An empty loan (committed, reset or moved from) should not keep pointing
// into the ring: writing through a stale get()/operator-> would change a
// message already published (or space another message now uses).
TEST_CASE("loan: an empty loan points nowhere", "[loan]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("loan.empty");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = topo, .capacity = 4});
  auto committed = tx.loan();
  committed.commit();
  CHECK(committed.get() == nullptr);
  auto reset = tx.loan();
  reset.reset();
  CHECK(reset.get() == nullptr);
  auto from = tx.loan();
  auto to = std::move(from);
  CHECK(from.get() == nullptr);
  CHECK(to.get() != nullptr);
}

TEST_CASE("loan spsc: abandoned after a wrap-around, its padding record is stepped over",
          "[loan][abandon][spsc][wrap]") {
  const auto name = unique_name("loan.wrap");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = Topology::spsc, .capacity = 4});
  auto rx = Channel<Quote>::open(name);
  const std::uint64_t bytes = tx.base().spsc_ring().control().bytes;
  REQUIRE(bytes == SpscRing::array_bytes(4, sizeof(Quote)));
  REQUIRE(bytes == 256);
  // 5 records of 48 bytes end at 240; the 6th (48 > 16) wraps.
  for (std::uint64_t i = 0; i < 5; ++i) {
    tx.send(quote(i));
    REQUIRE(rx.receive() == quote(i));
  }
  const bool commit = GENERATE(false, true);
  CAPTURE(commit);
  {
    auto l = tx.loan();
    auto* array = static_cast<std::byte*>(tx.base().core().ring()) + SpscRing::control_size();
    CHECK(reinterpret_cast<std::byte*>(l.get()) == array + SpscRing::kHeader);  // at 0
    CHECK(tx.base().spsc_ring().control().tail.load() == bytes);  // the pad is published
    CHECK_FALSE(rx.try_receive().has_value());  // the consumer steps over the pad, waits at 0
    write(l, quote(77));
    if (commit) l.commit();
  }
  if (commit) CHECK(rx.try_receive() == quote(77));
  CHECK_FALSE(rx.try_receive().has_value());
  // Another full lap with loans and sends.
  for (std::uint64_t i = 0; i < 12; ++i) {
    if (i % 2 == 0) {
      auto l = tx.loan();
      write(l, quote(100 + i));
      l.commit();
    } else {
      tx.send(quote(100 + i));
    }
    REQUIRE(rx.receive() == quote(100 + i));
  }
  CHECK_FALSE(rx.try_receive().has_value());
  const auto s = rx.stats();
  CHECK(s.sent == (commit ? 18u : 17u));
  CHECK(s.received == s.sent);
}

TEST_CASE("loan: try_loan on a full ring is nullopt; loan_for times out", "[loan][full]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("loan.full");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = topo, .capacity = 4, .spin = 0ns});
  auto rx = Channel<Quote>::open(name);
  const int n = fill_with_loans(tx, 0);
  CHECK(n == (topo == Topology::spsc ? 5 : 4));
  CHECK(tx.stats().times_full == 1);  // the try_loan that ended fill_with_loans()
  CHECK_FALSE(tx.try_loan().has_value());
  CHECK(tx.stats().times_full == 2);
  CHECK_FALSE(tx.try_send(quote(0)));
  const auto t0 = Clock::now();
  CHECK_FALSE(tx.loan_for(30ms).has_value());
  CHECK(ms_since(t0) >= 29.0);
  CHECK(tx.stats().send_sleeps >= 1);
  // Once two messages are taken, a loan fits again (spsc: the next record
  // wraps, and its padding record needs room too).
  CHECK(rx.receive() == quote(0));
  CHECK(rx.receive() == quote(1));
  {
    auto l = tx.try_loan();
    REQUIRE(l);
    write(*l, quote(100));
    l->commit();
  }
  for (int i = 2; i < n; ++i) REQUIRE(rx.receive() == quote(static_cast<std::uint64_t>(i)));
  CHECK(rx.receive() == quote(100));
  CHECK_FALSE(rx.try_receive().has_value());
}

TEST_CASE("loan: loan() blocks while full and returns once a receiver makes room",
          "[loan][threads]") {
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  CAPTURE(topo_name(topo));
  const auto name = unique_name("loan.block");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = topo, .capacity = 4, .spin = 0ns});
  auto rx = Channel<Quote>::open(name);
  const int n = fill_with_loans(tx, 0);
  std::atomic<bool> done{false};
  std::thread t([&] {
    auto l = tx.loan();
    write(l, quote(500));
    l.commit();
    done.store(true);
  });
  // The loan sleeps until room is made (it cannot return earlier: the ring is full).
  const auto end = Clock::now() + 5s;
  while (tx.stats().send_sleeps == 0 && Clock::now() < end) std::this_thread::sleep_for(1ms);
  CHECK_FALSE(done.load());
  CHECK(rx.receive() == quote(0));
  CHECK(rx.receive() == quote(1));  // spsc: room for the wrap's padding record too
  t.join();
  CHECK(done.load());
  for (int i = 2; i < n; ++i) REQUIRE(rx.receive() == quote(static_cast<std::uint64_t>(i)));
  CHECK(rx.receive() == quote(500));
}

TEST_CASE("loan spsc: one loan at a time per object; nothing else is sent meanwhile",
          "[loan][spsc][busy]") {
  const auto name = unique_name("loan.busy");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = Topology::spsc, .capacity = 8});
  auto rx = Channel<Quote>::open(name);
  const std::string kBusy = "a Loan of this channel object is outstanding";
  const std::vector<Quote> batch{quote(1), quote(2)};

  auto l = tx.loan();
  write(l, quote(1));
  CHECK_SLEET_ERROR(tx.loan(), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.try_loan(), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.loan_for(10ms), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.send(quote(2)), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.try_send(quote(2)), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.send_for(quote(2), 10ms), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.send_batch(batch), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.try_send_batch(batch), errc::busy, kBusy);
  CHECK_SLEET_ERROR(tx.send(quote(2)), errc::busy, name);  // the message names the channel
  // The refusals did not disturb the loan or publish anything.
  CHECK(*l == quote(1));
  CHECK_FALSE(rx.try_receive().has_value());
  // Another object cannot send either: tx holds the sender role.
  auto other = Channel<Quote>::open(name);
  CHECK_SLEET_ERROR(other.send(quote(3)), errc::busy, "sender");

  l.commit();
  CHECK(rx.receive() == quote(1));
  tx.send(quote(2));  // the object may send again
  CHECK(rx.receive() == quote(2));
  {
    auto again = tx.loan();  // and loan again
    write(again, quote(3));
  }
  tx.send_batch(batch);
  CHECK(rx.receive() == quote(1));
  CHECK(rx.receive() == quote(2));
  CHECK_FALSE(rx.try_receive().has_value());
  CHECK(rx.stats().sent == 4);
  CHECK(rx.stats().received == 4);
}

TEST_CASE("loan mpmc: several loans at once are delivered in claim order", "[loan][mpmc]") {
  const auto name = unique_name("loan.many");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = Topology::mpmc, .capacity = 8});
  auto rx = Channel<Quote>::open(name);
  auto first = tx.loan();
  auto second = tx.loan();
  auto third = tx.loan();
  write(second, quote(2));
  second.commit();
  CHECK_FALSE(rx.try_receive().has_value());  // the first holds the others back
  write(first, quote(1));
  first.commit();
  CHECK(rx.try_receive() == quote(1));
  CHECK(rx.try_receive() == quote(2));
  CHECK_FALSE(rx.try_receive().has_value());  // third is still out
  // Move-assigning over a live loan abandons it (consumers skip its slot).
  auto fourth = tx.loan();
  write(fourth, quote(4));
  third = std::move(fourth);
  tx.send(quote(5));
  CHECK_FALSE(rx.try_receive().has_value());  // fourth's slot (now in `third`) holds 5 back
  third.commit();
  CHECK(rx.try_receive() == quote(4));
  CHECK(rx.try_receive() == quote(5));
  CHECK_FALSE(rx.try_receive().has_value());
}

TEST_CASE("loan spsc: commit after close began is errc::closed and publishes nothing",
          "[loan][spsc][close]") {
  const auto name = unique_name("loan.close");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = Topology::spsc, .capacity = 8});
  auto rx = Channel<Quote>::open(name);
  tx.send(quote(1));
  auto l = tx.loan();
  write(l, quote(2));
  // close() does not wait for the loan (run it on a thread so a hang fails).
  std::atomic<bool> closed{false};
  std::thread closer([&] {
    rx.close();
    closed.store(true);
  });
  const auto end = Clock::now() + 5s;
  while (!closed.load() && Clock::now() < end) std::this_thread::sleep_for(1ms);
  CHECK(closed.load());
  CHECK_SLEET_ERROR(l.commit(), errc::closed, name);  // (this also unblocks a stuck close)
  closer.join();
  CHECK_FALSE(l);
  CHECK(rx.receive() == quote(1));
  CHECK_SLEET_ERROR(rx.receive(), errc::closed, "closed");
  CHECK(rx.stats().sent == 1);
  // No new loan once closed.
  CHECK_SLEET_ERROR(tx.loan(), errc::closed, name);
  CHECK_SLEET_ERROR(tx.try_loan(), errc::closed, name);
  CHECK_SLEET_ERROR(tx.loan_for(10ms), errc::closed, name);
}

TEST_CASE("loan spsc: a loan abandoned after close leaves the channel drained and closed",
          "[loan][spsc][close]") {
  const auto name = unique_name("loan.close2");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = Topology::spsc, .capacity = 8});
  auto rx = Channel<Quote>::open(name);
  {
    auto l = tx.loan();
    write(l, quote(1));
    tx.close();
  }
  CHECK_SLEET_ERROR(rx.receive(), errc::closed, name);
}

TEST_CASE("loan mpmc: a loan claimed before close is delivered when committed after it",
          "[loan][mpmc][close]") {
  const auto name = unique_name("loan.mclose");
  Cleanup cleanup(name);
  auto tx = Channel<Quote>::create(name, {.topology = Topology::mpmc, .capacity = 8});
  auto rx = Channel<Quote>::open(name);
  tx.send(quote(1));
  auto l = tx.loan();
  tx.close();
  CHECK(tx.closed());
  CHECK_SLEET_ERROR(tx.loan(), errc::closed, name);
  CHECK(rx.receive() == quote(1));
  CHECK_FALSE(rx.try_receive().has_value());  // not closed yet: the loan is still to come
  write(l, quote(2));
  l.commit();
  CHECK(rx.receive() == quote(2));
  CHECK_SLEET_ERROR(rx.receive(), errc::closed, name);
  CHECK_SLEET_ERROR(rx.try_receive(), errc::closed, name);

  SECTION("an abandoned one after close: receivers finish draining") {
    const auto n2 = unique_name("loan.mclose");
    Cleanup c2(n2);
    auto tx2 = Channel<Quote>::create(n2, {.topology = Topology::mpmc, .capacity = 8});
    auto rx2 = Channel<Quote>::open(n2);
    auto l2 = tx2.loan();
    tx2.close();
    CHECK_FALSE(rx2.try_receive().has_value());
    l2.reset();
    CHECK_SLEET_ERROR(rx2.try_receive(), errc::closed, n2);
  }
}

TEST_CASE("loan: Pipe ends loan in their sending direction", "[loan][pipe]") {
  const auto name = unique_name("loan.pipe");
  Cleanup cleanup(name);
  auto [a, b] = Pipe<Quote>::create(name, {.capacity = 4});
  {
    auto l = a.loan();
    write(l, quote(1));
    l.commit();
  }
  {
    auto l = b.try_loan();
    REQUIRE(l);
    write(*l, quote(2));
    l->commit();
  }
  CHECK(b.receive() == quote(1));
  CHECK(a.receive() == quote(2));
  { auto l = a.loan_for(10ms); REQUIRE(l); }  // abandoned
  CHECK_FALSE(b.try_receive().has_value());
  // One loan at a time per end; the other end's direction is independent.
  auto la = a.loan();
  CHECK_SLEET_ERROR(a.loan(), errc::busy, "a Loan of this channel object is outstanding");
  auto lb = b.loan();
  write(la, quote(3));
  write(lb, quote(4));
  lb.commit();
  la.commit();
  CHECK(b.receive() == quote(3));
  CHECK(a.receive() == quote(4));
  // Full, then timeout.
  int n = 0;
  while (auto l = a.try_loan()) {
    write(*l, quote(10 + n));
    l->commit();
    ++n;
    REQUIRE(n < 1000);
  }
  CHECK(n >= 4);
  CHECK_FALSE(a.loan_for(5ms).has_value());
  for (int i = 0; i < n; ++i) REQUIRE(b.receive() == quote(10 + i));
  CHECK(a.send_stats().sent == 2 + static_cast<std::uint64_t>(n));
  CHECK(a.send_stats().received == 2 + static_cast<std::uint64_t>(n));
  // Commit after close.
  auto late = a.loan();
  b.close();
  CHECK_SLEET_ERROR(late.commit(), errc::closed, name);
  CHECK_SLEET_ERROR(b.receive(), errc::closed, name);
}
