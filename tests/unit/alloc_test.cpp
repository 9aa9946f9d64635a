// The send path allocates nothing in the steady state: global operator
// new/delete (every variant) are replaced for the whole test binary by
// counting versions over malloc/free, and only allocations made by the
// counting thread inside a counting scope are counted.
//
// Under AddressSanitizer the replacement is compiled out: ASan brings its
// own operator new, and replacing it for the whole binary would hide
// new/delete mismatches in every other test; the tests then SKIP with a
// warning. Under ThreadSanitizer it stays active (TSan only intercepts
// malloc underneath, which the replacement calls).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SLEET_TEST_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLEET_TEST_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SLEET_TEST_COUNT_ALLOCATIONS
#define SLEET_TEST_COUNT_ALLOCATIONS 1
#endif

namespace alloc_test {

// Trivial thread_locals: no constructor, no destructor, no allocation.
thread_local bool t_counting = false;
thread_local std::size_t t_count = 0;
thread_local std::size_t t_largest = 0;  // bytes of the largest counted allocation

struct Counting {
  Counting() {
    t_count = 0;
    t_largest = 0;
    t_counting = true;
  }
  ~Counting() { t_counting = false; }
  std::size_t count() const { return t_count; }
  std::size_t largest() const { return t_largest; }
};

inline void note(std::size_t n) {
  if (!t_counting) return;
  ++t_count;
  if (n > t_largest) t_largest = n;
}

}  // namespace alloc_test

#if SLEET_TEST_COUNT_ALLOCATIONS

namespace {

void* allocate(std::size_t n) {
  alloc_test::note(n);
  if (n == 0) n = 1;
  for (;;) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}

void* allocate_aligned(std::size_t n, std::align_val_t al) {
  alloc_test::note(n);
  std::size_t a = static_cast<std::size_t>(al);
  if (a < sizeof(void*)) a = sizeof(void*);
  if (n == 0) n = 1;
  for (;;) {
    void* p = nullptr;
    if (::posix_memalign(&p, a, n) == 0) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t al) { return allocate_aligned(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return allocate_aligned(n, al); }
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return allocate_aligned(n, al);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return allocate_aligned(n, al);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

#endif  // SLEET_TEST_COUNT_ALLOCATIONS

namespace {

namespace st = sleet::test;
using namespace std::chrono_literals;
using alloc_test::Counting;
using sleet::Topology;

bool counting_available() {
  if (SLEET_TEST_COUNT_ALLOCATIONS) return true;
  WARN("allocation counting is compiled out under AddressSanitizer; skipped");
  SUCCEED("skipped");  // counts as an assertion for --warn NoAssertions
  return false;
}

struct alignas(64) Wide {
  char bytes[64];
};

// 10000 sends of `value` (after a warm-up), alternating send, try_send and
// send_for; the receiver drains outside the counted scope. Returns the
// allocations counted inside send calls.
template <class T>
std::size_t send_allocations(Topology topo, const T& value) {
  const auto name = st::unique_name("alloc");
  st::Cleanup cleanup(name);
  auto tx = sleet::Channel<T>::create(name, {.topology = topo, .capacity = 64});
  auto rx = sleet::Channel<T>::open(name);
  for (int i = 0; i < 100; ++i) {  // warm-up: roles, thread-local streams, page faults
    tx.send(value);
    REQUIRE(rx.try_receive() == value);
  }
  std::size_t total = 0;
  for (int i = 0; i < 10000; ++i) {
    bool ok = true;
    {
      Counting c;
      switch (i % 3) {
        case 0: tx.send(value); break;
        case 1: ok = tx.try_send(value); break;
        default: ok = tx.send_for(value, 1s); break;
      }
      total += c.count();
    }
    REQUIRE(ok);
    if (i % 32 == 31) {
      for (int k = 0; k < 32; ++k) REQUIRE(rx.try_receive().has_value());
    }
  }
  while (rx.try_receive()) {
  }
  CHECK(tx.stats().sent == 10100);
  return total;
}

}  // namespace

TEST_CASE("alloc: the counting operator new sees every kind of allocation", "[alloc]") {
  if (!counting_available()) return;
  {
    Counting c;
    delete new int(1);
    CHECK(c.count() == 1);
  }
  {
    Counting c;
    delete[] new int[10];
    delete new (std::nothrow) int(2);
    delete[] new (std::nothrow) int[3];
    CHECK(c.count() == 3);
  }
  {
    Counting c;
    auto* w = new Wide{};  // aligned new
    CHECK(reinterpret_cast<std::uintptr_t>(w) % 64 == 0);
    delete w;
    auto* ws = new Wide[3];
    CHECK(reinterpret_cast<std::uintptr_t>(ws) % 64 == 0);
    delete[] ws;
    delete new (std::align_val_t{128}, std::nothrow) Wide;
    CHECK(c.count() == 3);
  }
  {
    Counting c;
    std::string s(100, 'x');  // beyond the small-string buffer
    std::vector<int> v(16);
    CHECK(c.count() == 2);
  }
  // Not counting outside a scope, nor allocations made by other threads.
  {
    std::atomic<int> step{0};
    std::thread t([&] {
      while (step.load() != 1) std::this_thread::yield();
      delete new int(3);
      std::string s(200, 'y');
      step.store(2);
    });
    std::size_t seen = 0;
    {
      Counting c;
      step.store(1);
      while (step.load() != 2) std::this_thread::yield();
      seen = c.count();
    }
    t.join();
    CHECK(seen == 0);
    delete new int(4);
    CHECK(alloc_test::t_count == 0);
  }
}

TEST_CASE("alloc: steady-state sends of a 64-byte std::string allocate nothing", "[alloc]") {
  if (!counting_available()) return;
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  const std::string value(64, 's');
  CHECK(send_allocations(topo, value) == 0);
}

TEST_CASE("alloc: steady-state sends of a 16-int std::vector allocate nothing", "[alloc]") {
  if (!counting_available()) return;
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  std::vector<int> value(16);
  for (int i = 0; i < 16; ++i) value[i] = i * 1000 - 7;
  CHECK(send_allocations(topo, value) == 0);
}

TEST_CASE("alloc: steady-state sends through a Pipe allocate nothing", "[alloc]") {
  if (!counting_available()) return;
  const auto name = st::unique_name("alloc.pipe");
  st::Cleanup cleanup(name);
  auto [a, b] = sleet::Pipe<std::string>::create(name, {.capacity = 64});
  const std::string value(64, 'p');
  for (int i = 0; i < 100; ++i) {
    a.send(value);
    REQUIRE(b.receive() == value);
  }
  std::size_t total = 0;
  for (int i = 0; i < 10000; ++i) {
    {
      Counting c;
      a.send(value);
      total += c.count();
    }
    REQUIRE(b.try_receive().has_value());
  }
  CHECK(total == 0);
}

TEST_CASE("alloc: a corrupted length field does not make the receiver allocate what it claims",
          "[alloc][codec]") {
  // A record of 12 bytes whose length field says 64 MiB must fail to decode
  // without first allocating (and zero-filling) 64 MiB: a corrupted or hostile
  // record could otherwise claim gigabytes.
  if (!counting_available()) return;
  constexpr std::uint64_t kClaimed = std::uint64_t{64} << 20;
  std::string record(8, '\0');
  std::memcpy(record.data(), &kClaimed, 8);
  record += "abcd";
  SECTION("std::string") {
    const auto name = st::unique_name("alloc.len");
    st::Cleanup cleanup(name);
    auto tx = sleet::Channel<std::string>::create(name, {.capacity = 4});
    auto rx = sleet::Channel<std::string>::open(name);
    REQUIRE(tx.base().mpmc_ring().try_write(record.data(), static_cast<std::uint32_t>(record.size())));
    std::size_t largest = 0;
    bool decode_failed = false;
    {
      Counting c;
      try {
        (void)rx.receive();
      } catch (const sleet::Error& e) {
        decode_failed = e.code() == sleet::errc::decode_failed;
      }
      largest = c.largest();
    }
    CHECK(decode_failed);
    INFO("largest allocation while decoding: " << largest << " bytes");
    CHECK(largest < (std::size_t{1} << 20));
  }
  SECTION("std::vector<int>") {
    const auto name = st::unique_name("alloc.len");
    st::Cleanup cleanup(name);
    auto tx = sleet::Channel<std::vector<int>>::create(name, {.capacity = 4});
    auto rx = sleet::Channel<std::vector<int>>::open(name);
    std::string rec(8, '\0');
    const std::uint64_t elements = kClaimed / sizeof(int);
    std::memcpy(rec.data(), &elements, 8);
    rec += "abcd";
    REQUIRE(tx.base().mpmc_ring().try_write(rec.data(), static_cast<std::uint32_t>(rec.size())));
    std::size_t largest = 0;
    bool decode_failed = false;
    {
      Counting c;
      try {
        (void)rx.receive();
      } catch (const sleet::Error& e) {
        decode_failed = e.code() == sleet::errc::decode_failed;
      }
      largest = c.largest();
    }
    CHECK(decode_failed);
    INFO("largest allocation while decoding: " << largest << " bytes");
    CHECK(largest < (std::size_t{1} << 20));
  }
}

// ---- loans and batches ----

namespace {

struct Tick {
  std::uint64_t seq;
  double price;
  std::uint32_t qty;
  std::uint32_t flags;
  bool operator==(const Tick&) const = default;
};

}  // namespace

TEST_CASE("alloc: steady-state loans allocate nothing", "[alloc][loan]") {
  if (!counting_available()) return;
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  const auto name = st::unique_name("alloc.loan");
  st::Cleanup cleanup(name);
  auto tx = sleet::Channel<Tick>::create(name, {.topology = topo, .capacity = 64});
  auto rx = sleet::Channel<Tick>::open(name);
  for (std::uint64_t i = 0; i < 100; ++i) {  // warm-up
    auto l = tx.loan();
    l->seq = i;
    l.commit();
    REQUIRE(rx.try_receive().has_value());
  }
  std::size_t total = 0;
  std::uint64_t committed = 0;
  for (std::uint64_t i = 0; i < 10000; ++i) {
    bool ok = true;
    {
      Counting c;
      switch (i % 4) {
        case 0: {
          auto l = tx.loan();
          *l = Tick{i, 1.5, 3, 0};
          l.commit();
          break;
        }
        case 1: {
          auto l = tx.try_loan();
          ok = l.has_value();
          if (l) {
            (*l)->seq = i;
            l->commit();
          }
          break;
        }
        case 2: {
          auto l = tx.loan_for(1s);
          ok = l.has_value();
          if (l) {
            (*l)->seq = i;
            l->commit();
          }
          break;
        }
        default: {
          auto l = tx.loan();  // abandoned
          l->seq = i;
          break;
        }
      }
      total += c.count();
    }
    REQUIRE(ok);
    if (i % 4 != 3) ++committed;
    if (i % 16 == 15) {
      for (int k = 0; k < 12; ++k) REQUIRE(rx.try_receive().has_value());
      REQUIRE_FALSE(rx.try_receive().has_value());
    }
  }
  CHECK(committed == 7500);
  CHECK(total == 0);
}

namespace {

// 1000 rounds of send_batch (32 values) and receive_batch after a warm-up;
// returns the allocations counted inside send_batch and receive_batch.
template <class T>
std::pair<std::size_t, std::size_t> batch_allocations(Topology topo, const std::vector<T>& values,
                                                      std::size_t& receive_calls) {
  const auto name = st::unique_name("alloc.batch");
  st::Cleanup cleanup(name);
  auto tx = sleet::Channel<T>::create(name, {.topology = topo, .capacity = 64});
  auto rx = sleet::Channel<T>::open(name);
  std::size_t seen = 0;
  bool same = true;
  auto check = [&](const T& v) {
    same = same && v == values[seen % values.size()];
    ++seen;
  };
  for (int i = 0; i < 10; ++i) {  // warm-up
    tx.send_batch(values);
    REQUIRE(rx.receive_batch(check) == values.size());
  }
  std::size_t sends = 0, receives = 0;
  receive_calls = 0;
  for (int i = 0; i < 1000; ++i) {
    {
      Counting c;
      if (i % 2 == 0) {
        tx.send_batch(values);
      } else {
        REQUIRE(tx.try_send_batch(values) == values.size());
      }
      sends += c.count();
    }
    std::size_t got = 0;
    while (got < values.size()) {
      Counting c;
      // Various max: 32 in one call, or in pieces of 5.
      got += rx.receive_batch(check, i % 3 == 0 ? 5 : values.size());
      receives += c.count();
      ++receive_calls;
    }
    REQUIRE(got == values.size());
  }
  CHECK(same);
  CHECK(seen == 1010 * values.size());
  return {sends, receives};
}

}  // namespace

TEST_CASE("alloc: steady-state send_batch and receive_batch of int allocate nothing",
          "[alloc][batch]") {
  if (!counting_available()) return;
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  std::vector<int> values(32);
  for (int i = 0; i < 32; ++i) values[i] = i * 31 - 5;
  std::size_t calls = 0;
  const auto [sends, receives] = batch_allocations(topo, values, calls);
  CHECK(sends == 0);
  CHECK(receives == 0);
}

TEST_CASE("alloc: steady-state send_batch and receive_batch of std::string", "[alloc][batch]") {
  if (!counting_available()) return;
  const Topology topo = GENERATE(Topology::spsc, Topology::mpmc);
  INFO("topology " << (topo == Topology::spsc ? "spsc" : "mpmc"));
  SECTION("short strings (in the small-string buffer): nothing at all") {
    std::vector<std::string> values;
    for (int i = 0; i < 32; ++i) values.push_back("m" + std::to_string(i * 7));
    std::size_t calls = 0;
    const auto [sends, receives] = batch_allocations(topo, values, calls);
    CHECK(sends == 0);
    CHECK(receives == 0);
  }
  SECTION("64-byte strings: nothing per message") {
    std::vector<std::string> values;
    for (int i = 0; i < 32; ++i) values.push_back(std::string(64, static_cast<char>('a' + i % 26)));
    std::size_t calls = 0;
    const auto [sends, receives] = batch_allocations(topo, values, calls);
    CHECK(sends == 0);
    // receive_batch decodes into one T per call: its buffer may be
    // allocated once per call, never once per message.
    INFO("receive allocations " << receives << " in " << calls << " calls");
    CHECK(receives <= calls);
  }
}
