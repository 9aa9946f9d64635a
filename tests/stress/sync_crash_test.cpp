// Crash tests of the sync primitives: worker processes SIGKILLed at random
// moments while they hold a robust lock or write a seqlock value, and
// restarted. Bounded in time and in kills; every recovery is checked.
#include <catch2/catch.hpp>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sync_support.hpp"

using namespace sleet;
using namespace sleet::test;

namespace {

// ------------------------------------------------------------ the record

// A multi-field record that tells a whole write from a torn one: field 0 is
// the sequence, field i > 0 is field_of(seq, i).
constexpr std::size_t kFields = 8;

std::uint64_t field_of(std::uint64_t seq, std::size_t i) { return i == 0 ? seq : mix(seq * kFields + i); }

// release: keeps the stores of one write in program order, so whatever a
// kill leaves behind is a prefix of the write.
void put(std::uint64_t& f, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(f).store(v, std::memory_order_release);
}
// relaxed: read under the lock, which orders it after the last holder.
std::uint64_t peek(std::uint64_t& f) { return std::atomic_ref<std::uint64_t>(f).load(std::memory_order_relaxed); }

// A little work between the stores of a write, so that kills land inside.
void dawdle() {
  for (int k = 0; k < 32; ++k) detail::cpu_relax();
}

// Fields 1.. first, the sequence last.
void write_record(std::span<std::uint64_t> r, std::uint64_t seq) {
  for (std::size_t i = 1; i < kFields; ++i) {
    put(r[i], field_of(seq, i));
    dawdle();
  }
  put(r[0], seq);
}

enum class Shape { consistent, torn, garbage };

// torn: what a kill inside write_record(seq + 1) or repair() leaves behind:
// fields 1..j of seq + 1 (j >= 1) and the rest of seq. Anything else is
// garbage, which no kill can explain.
Shape inspect(std::span<std::uint64_t> r) {
  const std::uint64_t seq = peek(r[0]);
  std::size_t i = 1;
  while (i < kFields && peek(r[i]) == field_of(seq + 1, i)) ++i;
  const bool newer = i > 1;
  for (; i < kFields; ++i) {
    if (peek(r[i]) != field_of(seq, i)) return Shape::garbage;
  }
  return newer ? Shape::torn : Shape::consistent;
}

// Rolls a torn record back to its sequence, last field first: a kill in
// here leaves a torn record of the same shape.
void repair(std::span<std::uint64_t> r) {
  const std::uint64_t seq = peek(r[0]);
  for (std::size_t i = kFields - 1; i >= 1; --i) {
    put(r[i], field_of(seq, i));
    dawdle();
  }
}

// ------------------------------------------------------------ the workers

// Shared by the parent and every worker (in SharedMemory).
struct CrashCtrl {
  Report report;
  std::atomic<int> stop{0};
  std::atomic<int> inside{0};                 // 1 + the slot of a worker in its critical section
  std::atomic<std::uint64_t> commits{0};      // writes completed and counted
  std::atomic<std::uint64_t> owner_died{0};   // locks that reported a dead holder
  std::atomic<std::uint64_t> repairs{0};      // torn records rolled back
  std::atomic<std::uint64_t> loads{0};        // seqlock test: reads checked
  std::atomic<std::int64_t> slowest_load_ns{0};

  bool stopping() const { return stop.load(std::memory_order_acquire) != 0; }  // acquire: pairs with finish()
};

// One critical section: check (and repair) what the last holder left, then
// write the next sequence. Returns 0, or the Report's failure code.
int update_record(CrashCtrl& c, int slot, std::span<std::uint64_t> rec, LockResult r, std::uint64_t& last_seen) {
  // relaxed (all counters and the hint): read by the parent after the workers are reaped.
  c.inside.store(slot + 1, std::memory_order_relaxed);
  if (r == LockResult::owner_died) c.owner_died.fetch_add(1, std::memory_order_relaxed);
  switch (inspect(rec)) {
    case Shape::garbage: return c.report.fail("worker %d: a record no kill can explain", slot);
    case Shape::torn:
      if (r != LockResult::owner_died) return c.report.fail("worker %d: torn record without owner_died", slot);
      repair(rec);
      c.repairs.fetch_add(1, std::memory_order_relaxed);
      break;
    case Shape::consistent: break;
  }
  const std::uint64_t seq = peek(rec[0]);
  if (seq < last_seen) return c.report.fail("worker %d: sequence went back from %llu to %llu", slot,
                                            static_cast<unsigned long long>(last_seen),
                                            static_cast<unsigned long long>(seq));
  write_record(rec, seq + 1);
  last_seen = seq + 1;
  c.commits.fetch_add(1, std::memory_order_relaxed);
  c.inside.store(0, std::memory_order_relaxed);
  return 0;
}

struct KillStats {
  int kills = 0;
  int zombies = 0;  // victims left unreaped until the end
};

// Runs `workers` children made by spawn(slot); until `budget` or `max_kills`,
// SIGKILLs one at a random moment (every other time the one in its critical
// section) and starts a new one in its slot. One victim in four is left a
// zombie until the end. Then stops and reaps everyone, checking every exit.
template <class Spawn>
KillStats kill_and_restart(CrashCtrl& c, int workers, Spawn spawn, std::chrono::milliseconds budget,
                           int max_kills) {
  std::vector<std::optional<Child>> kids(static_cast<std::size_t>(workers));
  std::vector<Child> zombies;
  for (int i = 0; i < workers; ++i) kids[static_cast<std::size_t>(i)].emplace(spawn(i));
  Rng rng(static_cast<std::uint64_t>(::getpid()));
  KillStats ks;
  const auto end = Clock::now() + budget;
  while (Clock::now() < end && ks.kills < max_kills && c.report.ok()) {
    std::this_thread::sleep_for(std::chrono::microseconds(rng.below(4000)));
    auto victim = static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(workers)));
    if (ks.kills % 2 == 0) {
      const int in = c.inside.load(std::memory_order_relaxed);  // relaxed: a hint
      if (in > 0) victim = static_cast<std::size_t>(in - 1);
    }
    Child& k = *kids[victim];
    k.kill();
    if (rng.below(4) == 0) {
      zombies.push_back(std::move(k));
      ++ks.zombies;
    } else {
      CHECK(k.wait() == 128 + SIGKILL);
    }
    kids[victim].reset();
    kids[victim].emplace(spawn(static_cast<int>(victim)));
    ++ks.kills;
  }
  c.stop.store(1, std::memory_order_release);  // release: pairs with stopping()
  for (auto& k : kids) CHECK(k->wait_for(patience(std::chrono::milliseconds(10000))) == 0);
  for (auto& z : zombies) CHECK(z.wait() == 128 + SIGKILL);
  return ks;
}

// The checks a record run ends with, made by the parent holding the lock
// (`r`: what its lock reported). `recoveries`: the lock's own count of
// take-overs, where it shows one.
void check_after_kills(CrashCtrl& c, const KillStats& ks, std::span<std::uint64_t> rec, LockResult r,
                       std::optional<std::uint64_t> recoveries) {
  INFO(c.report.what());
  REQUIRE(c.report.ok());
  // relaxed (all): the workers are reaped.
  const auto commits = c.commits.load(std::memory_order_relaxed);
  const auto died = c.owner_died.load(std::memory_order_relaxed);
  const auto repairs = c.repairs.load(std::memory_order_relaxed);
  const auto kills = static_cast<std::uint64_t>(ks.kills);
  INFO("kills " << ks.kills << " (zombies " << ks.zombies << "), commits " << commits << ", recoveries "
                << recoveries.value_or(0) << ", owner_died seen " << died << ", repairs " << repairs);
  CHECK(died > 0);
  CHECK(repairs <= died);
  if (recoveries) {
    CHECK(*recoveries <= kills);  // one dead holder per kill at most
    CHECK(died <= *recoveries);   // a taker killed before it counted is not seen
  } else {
    CHECK(died <= kills);
  }
  // Every worker exited cleanly, so the lock was free and the record whole.
  CHECK(r == LockResult::acquired);
  CHECK(inspect(rec) == Shape::consistent);
  CHECK(rec[0] >= commits);          // a worker killed after its write
  CHECK(rec[0] <= commits + kills);  // did not count it
}

const auto kBudget = std::chrono::milliseconds(3000);
const int kMaxKills = static_cast<int>(scaled(250, 60));

}  // namespace

TEST_CASE("Mutex crash test: holders SIGKILLed at random, every owner_died repairs the record",
          "[stress][sync][mutex][crash]") {
  const Names<1> names("crash");
  const std::string& name = names.all[0];
  auto m = Mutex::create(name);
  SharedMemory<CrashCtrl> ctrl;
  SharedMemory<std::uint64_t> memory(kFields);
  const std::span<std::uint64_t> rec(memory.get(), kFields);
  write_record(rec, 0);

  auto spawn = [&](int slot) {
    return Child([&, slot]() -> int {
      auto mine = Mutex::open(name);
      std::uint64_t last = 0;
      do {  // at least once: a worker started after the last kill repairs it
        const LockResult r = mine.lock();
        if (mine.owner_died() != (r == LockResult::owner_died)) {
          return ctrl->report.fail("worker %d: owner_died() disagrees with lock()", slot);
        }
        if (const int rc = update_record(*ctrl, slot, rec, r, last)) return rc;
        mine.unlock();
      } while (!ctrl->stopping());
      return 0;
    });
  };
  const KillStats ks = kill_and_restart(*ctrl, 3, spawn, kBudget, kMaxKills);

  const LockResult r = m.lock();
  check_after_kills(*ctrl, ks, rec, r, m.stats().recoveries);
  m.unlock();
  CHECK(m.lock_for(std::chrono::milliseconds(100)));
  CHECK_FALSE(m.owner_died());
  m.unlock();
}

TEST_CASE("SharedArray crash test: with_lock holders SIGKILLed at random, repaired from LockResult",
          "[stress][sync][array][crash]") {
  const Names<1> names("crash");
  const std::string& name = names.all[0];
  auto a = SharedArray<std::uint64_t>::create(name, kFields);
  a.with_lock([](std::span<std::uint64_t> rec) { write_record(rec, 0); });
  SharedMemory<CrashCtrl> ctrl;

  auto spawn = [&](int slot) {
    return Child([&, slot]() -> int {
      auto mine = SharedArray<std::uint64_t>::open(name);
      std::uint64_t last = 0;
      do {
        const int rc = mine.with_lock([&](std::span<std::uint64_t> rec, LockResult r) {
          return update_record(*ctrl, slot, rec, r, last);
        });
        if (rc != 0) return rc;
      } while (!ctrl->stopping());
      return 0;
    });
  };
  const KillStats ks = kill_and_restart(*ctrl, 3, spawn, kBudget, kMaxKills);

  a.with_lock([&](std::span<std::uint64_t> rec, LockResult r) { check_after_kills(*ctrl, ks, rec, r, std::nullopt); });
  CHECK(a.get(0) == a.snapshot()[0]);
}

TEST_CASE("SharedValue seqlock crash test: writers SIGKILLed mid-store, readers never see a torn value",
          "[stress][sync][value][crash]") {
  using Big = Checked<2045>;  // 16 KiB: a store takes long enough for kills to land inside
  STATIC_REQUIRE(sizeof(Big) == 16384);
  const Names<1> names("crash");
  const std::string& name = names.all[0];
  auto v = SharedValue<Big>::create(name, Big::make(0, 0));
  SharedMemory<CrashCtrl> ctrl;

  // A reader that is never killed: every value whole, the sequence never
  // going back; it reports its slowest load.
  Child reader([&]() -> int {
    auto mine = SharedValue<Big>::open(name);
    std::uint64_t last = 0;
    std::int64_t slowest = 0;
    std::uint64_t loads = 0;
    while (!ctrl->stopping()) {
      const auto t0 = Clock::now();
      const Big b = mine.load();
      slowest = std::max<std::int64_t>(slowest, (Clock::now() - t0).count());
      if (!b.intact()) return ctrl->report.fail("torn value: seq %llu", static_cast<unsigned long long>(b.seq));
      if (b.seq < last) return ctrl->report.fail("sequence went back");
      last = b.seq;
      ++loads;
    }
    ctrl->loads.store(loads, std::memory_order_relaxed);  // relaxed: read after waitpid()
    ctrl->slowest_load_ns.store(slowest, std::memory_order_relaxed);
    return 0;
  });
  auto spawn = [&](int slot) {
    return Child([&, slot]() -> int {
      auto mine = SharedValue<Big>::open(name);
      do {
        bool intact = true;
        ctrl->inside.store(slot + 1, std::memory_order_relaxed);  // relaxed: a hint for the killer
        mine.update([&](const Big& old) {
          intact = old.intact();
          return Big::make(static_cast<std::uint64_t>(slot) + 1, old.seq + 1);
        });
        ctrl->inside.store(0, std::memory_order_relaxed);
        if (!intact) return ctrl->report.fail("writer %d: update saw a torn value", slot);
        ctrl->commits.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after waitpid()
      } while (!ctrl->stopping());
      return 0;
    });
  };
  const KillStats ks = kill_and_restart(*ctrl, 2, spawn, kBudget, kMaxKills);
  CHECK(reader.wait_for(patience(std::chrono::milliseconds(10000))) == 0);

  INFO(ctrl->report.what());
  REQUIRE(ctrl->report.ok());
  const auto commits = ctrl->commits.load(std::memory_order_relaxed);
  const auto slowest_ms = static_cast<double>(ctrl->slowest_load_ns.load(std::memory_order_relaxed)) / 1e6;
  INFO("kills " << ks.kills << ", commits " << commits << ", loads " << ctrl->loads.load(std::memory_order_relaxed)
                << ", slowest load " << slowest_ms << " ms");
  CHECK(ctrl->loads.load(std::memory_order_relaxed) > 0);
  // That no load waits for a (dead) writer is proven by the next test, which
  // reads while a dead writer holds the lock; the slowest load is reported
  // above, not asserted (a time bound fails on a loaded machine).
  const Big last = v.load();
  CHECK(last.intact());
  CHECK(last.seq >= commits);
  CHECK(last.seq <= commits + static_cast<std::uint64_t>(ks.kills));
  v.store(Big::make(9, last.seq + 1));  // a later writer proceeds
  CHECK(v.load().seq == last.seq + 1);
}

TEST_CASE("SharedValue seqlock: a writer killed holding the lock blocks no reader, and the next writer takes over",
          "[stress][sync][value][crash]") {
  using Big = Checked<125>;  // 1 KiB
  const Names<1> names("crash");
  const std::string& name = names.all[0];
  auto v = SharedValue<Big>::create(name, Big::make(0, 1));
  SharedMemory<std::atomic<int>> held;
  Child writer([&]() -> int {
    auto mine = SharedValue<Big>::open(name);
    mine.update([&](const Big& b) {
      held->store(1, std::memory_order_release);  // release: pairs with wait_flag()'s acquire
      for (;;) ::pause();
      return b;
    });
    return 1;
  });
  REQUIRE(wait_flag(*held, 1, patience(std::chrono::milliseconds(5000))));
  auto reads_whole = [&] {
    for (int i = 0; i < 1000; ++i) {
      const Big b = v.load();
      if (!b.intact() || b.seq != 1) return false;
    }
    return true;
  };
  auto t0 = Clock::now();
  CHECK(reads_whole());  // the writer is alive and holds the lock
  writer.kill();         // not reaped: a zombie holds the lock now
  CHECK(reads_whole());
  Child reader([&]() -> int { return reads_whole() ? 0 : 1; });
  CHECK(reader.wait_for(patience(std::chrono::milliseconds(5000))) == 0);
  CHECK(ms_since(t0) < static_cast<double>(patience(std::chrono::milliseconds(1000)).count()));

  t0 = Clock::now();
  v.store(Big::make(5, 2));  // takes the lock over from the dead writer
  CHECK(ms_since(t0) < static_cast<double>(patience(std::chrono::milliseconds(2000)).count()));
  const Big now = v.load();
  CHECK(now.intact());
  CHECK(now.seq == 2);
  CHECK(now.writer == 5);
  CHECK(writer.wait() == 128 + SIGKILL);
}
