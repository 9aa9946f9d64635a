// Unit tests of the owner-word lock (include/sleet/detail/owner_word.hpp):
// taking a free word, taking a dead owner's word over (the caller is told
// to repair), respecting a live unrelated owner (a live process whose pid a
// recorded identity names with another start time is not it: the word is
// taken over; one naming it exactly is respected), mutual exclusion across
// processes, and RobustLock's encoding (kWaiters kept at a take-over).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>

#include "ipc/ipc_support.hpp"
#include "sleet/detail/owner_word.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/robust_lock.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::test::Child;
using sleet::test::identity_now;
using sleet::test::SharedMemory;
using sleet::test::sleeper;
namespace d = sleet::detail;

namespace {

// The identity of a process that has exited and been reaped.
std::uint64_t dead_identity() {
  Child c(sleeper());
  const std::uint64_t id = identity_now(c);
  c.kill();
  c.wait();
  REQUIRE_FALSE(d::identity_alive(id));
  return id;
}

}  // namespace

TEST_CASE("owner word: a free word is taken and given back", "[owner_word]") {
  std::atomic<std::uint64_t> word{0};
  const std::uint64_t me = d::current_identity();
  std::uint64_t seen = 0;
  CHECK(d::try_owner_word(word, me, seen) == d::OwnerTake::acquired);
  CHECK(word.load() == me);
  // Held by us, alive: another attempt is refused and says who holds it.
  seen = word.load();
  CHECK(d::try_owner_word(word, me + 1, seen) == d::OwnerTake::held);
  CHECK(seen == me);
  d::unlock_owner_word(word);
  CHECK(word.load() == 0);
  CHECK_FALSE(d::lock_owner_word(word));  // free: taken, nothing to repair
  CHECK(word.load() == me);
  d::unlock_owner_word(word);
}

TEST_CASE("owner word: a dead owner's word is taken over with the repair flag", "[owner_word]") {
  std::atomic<std::uint64_t> word{0};
  const std::uint64_t dead = dead_identity();
  const std::uint64_t me = d::current_identity();

  SECTION("one attempt") {
    word.store(dead);
    std::uint64_t seen = word.load();
    CHECK(d::try_owner_word(word, me, seen) == d::OwnerTake::taken_over);
    CHECK(word.load() == me);
  }
  SECTION("lock_owner_word waits through the spin, then takes it over") {
    word.store(dead);
    CHECK(d::lock_owner_word(word));
    CHECK(word.load() == me);
  }
  SECTION("a recycled pid (a live process, another start time) is not the owner") {
    Child live = sleeper();
    word.store(identity_now(live) ^ 1);
    CHECK(d::lock_owner_word(word));
    CHECK(word.load() == me);
  }
  SECTION("a holder killed inside its critical section") {
    SharedMemory<std::atomic<std::uint64_t>> shared;
    Child holder([&] {
      if (d::lock_owner_word(*shared)) return 1;
      for (;;) ::pause();  // killed while holding it
      return 0;
    });
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (shared->load() == 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
    REQUIRE(shared->load() != 0);
    holder.kill();
    holder.wait();
    CHECK(d::lock_owner_word(*shared));
    CHECK(shared->load() == me);
  }
  d::unlock_owner_word(word);
}

TEST_CASE("owner word: a live unrelated owner is never taken over", "[owner_word]") {
  Child live = sleeper();
  const std::uint64_t id = identity_now(live);
  std::atomic<std::uint64_t> word{id};
  const std::uint64_t me = d::current_identity();
  std::uint64_t seen = word.load();
  CHECK(d::try_owner_word(word, me, seen) == d::OwnerTake::held);
  CHECK(seen == id);
  // A bounded spin past the pure spin (yields, liveness checks) gives up
  // at its deadline and leaves the word as it was.
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(d::spin_owner_word(word, me, t0 + 30ms, seen) == d::OwnerTake::held);
  CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
  CHECK(word.load() == id);
  CHECK(seen == id);
  // Once it dies, the next attempt takes the word over.
  live.kill();
  live.wait();
  CHECK(d::try_owner_word(word, me, seen) == d::OwnerTake::taken_over);
  CHECK(word.load() == me);
}

TEST_CASE("owner word: mutual exclusion across processes", "[owner_word]") {
  struct Shared {
    std::atomic<std::uint64_t> word{0};
    std::uint64_t counter = 0;  // plain: protected by the lock
    std::atomic<int> repairs{0};
  };
  SharedMemory<Shared> s;
  const int kids = 3;
  const std::uint64_t each = sleet::test::scaled(20000, 2000);
  std::vector<Child> children;
  for (int k = 0; k < kids; ++k) {
    children.emplace_back([&] {
      for (std::uint64_t i = 0; i < each; ++i) {
        if (d::lock_owner_word(s->word)) s->repairs.fetch_add(1);
        s->counter = s->counter + 1;
        d::unlock_owner_word(s->word);
      }
      return 0;
    });
  }
  for (auto& c : children) CHECK(c.wait_for(60000ms) == 0);
  CHECK(s->counter == kids * each);
  CHECK(s->repairs.load() == 0);
  CHECK(s->word.load() == 0);
}

TEST_CASE("owner word: RobustLock's encoding keeps kWaiters at a take-over", "[owner_word][mutex]") {
  const std::uint64_t dead = dead_identity();
  const std::uint64_t me = d::current_thread_identity();
  std::atomic<std::uint64_t> word{d::lock_word(dead) | d::kWaiters};
  std::uint64_t seen = word.load();
  CHECK(d::try_owner_word<d::LockWordEncoding>(word, me, seen) == d::OwnerTake::taken_over);
  CHECK(word.load() == (d::lock_word(me) | d::kWaiters));
  CHECK(d::word_owner(word.load()) == me);

  // Through the lock: try_lock() reports the death and sets dirty.
  d::RobustLock lock;
  lock.word.store(d::lock_word(dead));
  CHECK(lock.try_lock(me) == d::LockState::owner_died);
  CHECK(lock.owner_died());
  CHECK(lock.recoveries.load() == 1);
  CHECK(lock.try_lock(me) == d::LockState::self_deadlock);
  CHECK(lock.unlock(me));
  CHECK_FALSE(lock.owner_died());
  // A spinning lock() takes a dead owner's word over during its spin.
  lock.word.store(d::lock_word(dead));
  CHECK(lock.lock(me, d::Clock::now() + 5s, 1s) == d::LockState::owner_died);
  CHECK(lock.unlock(me));
}
