// KvStore across real processes (fork via sleet::test::Child).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kv_support.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using sleet::KvStore;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::unique_name;

namespace {

// Polls `pred` every 100 us until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

}  // namespace

TEST_CASE("KvStore ipc: a value set in one process is read in another", "[kv][ipc]") {
  const std::string name = unique_name("kv.ipc.share");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64});
  kv.set("from-parent", std::string("hello child"));
  kv.set("vec", std::vector<int>{1, 2, 3});

  Child child([&] {
    auto mine = KvStore::open(name);  // a fresh attachment by name
    if (mine.get<std::string>("from-parent") != "hello child") return 1;
    if (mine.get<std::vector<int>>("vec") != std::vector<int>{1, 2, 3}) return 2;
    if (mine.capacity() != 64) return 3;
    mine.set("from-child", 4242);
    mine.set("vec", std::vector<int>{4, 5});
    if (!mine.erase("from-parent")) return 4;
    return 0;
  });
  REQUIRE(child.wait_for(3000ms) == 0);
  CHECK(kv.get<int>("from-child") == 4242);
  CHECK(kv.get<std::vector<int>>("vec") == std::vector<int>{4, 5});
  CHECK_FALSE(kv.contains("from-parent"));
  CHECK(kv.size() == 2);
}

TEST_CASE("KvStore ipc: two writer processes update one counter", "[kv][ipc]") {
  const std::string name = unique_name("kv.ipc.counter");
  Cleanup cleanup(name);
  constexpr int kIncrements = 50000;
  auto kv = KvStore::create(name, {.capacity = 64});
  kv.set("go", 0);

  auto body = [&] {
    auto mine = KvStore::open(name);
    // Start together so the updates really contend.
    if (!eventually([&] { return mine.get<int>("go") == 1; }, 2000ms)) return 2;
    for (int i = 0; i < kIncrements; ++i) {
      mine.update<int>("counter", [](std::optional<int> v) { return v.value_or(0) + 1; });
    }
    return 0;
  };
  Child a(body);
  Child b(body);
  kv.set("go", 1);
  CHECK(a.wait_for(5000ms) == 0);
  CHECK(b.wait_for(5000ms) == 0);
  CHECK(kv.get<int>("counter") == 2 * kIncrements);
  CHECK(kv.size() == 2);
  CHECK(kv.snapshot().size() == 2);
}

TEST_CASE("KvStore ipc: wait_for_change wakes across processes", "[kv][ipc]") {
  const std::string name = unique_name("kv.ipc.wait");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64});

  SECTION("woken by a set in the parent") {
    // The child announces it is about to wait; the parent then writes the
    // key every 20 ms until the child is done, so a write that lands just
    // before the child sleeps cannot make the test hang.
    Child child([&] {
      auto mine = KvStore::open(name);
      mine.set("ready", 1);
      const auto t0 = std::chrono::steady_clock::now();
      const bool changed = mine.wait_for_change("watched", 3s);
      const auto elapsed = std::chrono::steady_clock::now() - t0;
      mine.set("done", 1);
      if (!changed) return 1;
      if (elapsed >= 2s) return 2;
      if (!mine.contains("watched")) return 3;
      return 0;
    });
    REQUIRE(eventually([&] { return kv.contains("ready"); }, 2000ms));
    std::this_thread::sleep_for(20ms);
    // Keep writing until the child reports back (bounded by 4 s).
    const bool done = eventually(
        [&, i = 0]() mutable {
          if (i++ % 200 == 0) kv.set("watched", i);  // every ~20 ms
          return kv.contains("done");
        },
        4000ms);
    CHECK(done);
    CHECK(child.wait_for(3000ms) == 0);
  }
  SECTION("times out when nothing changes") {
    kv.set("watched", 1);
    Child child([&] {
      auto mine = KvStore::open(name);
      const auto t0 = std::chrono::steady_clock::now();
      const bool changed = mine.wait_for_change("watched", 200ms);
      const auto elapsed = std::chrono::steady_clock::now() - t0;
      if (changed) return 1;
      if (elapsed < 200ms) return 2;
      if (elapsed > 2s) return 3;
      return 0;
    });
    // Writes to other keys from the parent must not end the wait.
    for (int i = 0; i < 20; ++i) {
      kv.set("other" + std::to_string(i), i);
      std::this_thread::sleep_for(5ms);
    }
    CHECK(child.wait_for(3000ms) == 0);
  }
}

TEST_CASE("KvStore ipc: two readers and a writer, every value whole", "[kv][ipc]") {
  const std::string name = unique_name("kv.ipc.rw");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 32, .max_value_size = 128});
  const std::vector<std::string> recs = {"rec.0", "rec.1", "rec.2"};
  const std::vector<std::string> strs = {"str.0", "str.1", "str.2"};
  kv.set("phase", 0);  // 1: run, 2: stop

  Child writer([&] {
    auto mine = KvStore::open(name);
    std::uint64_t seq = 1;
    while (mine.get<int>("phase") != 2) {
      for (std::size_t i = 0; i < recs.size(); ++i, ++seq) {
        switch (seq % 3) {
          case 0:
            mine.set(recs[i], sleet::test::make_kv_rec(seq));
            mine.set(strs[i], sleet::test::make_kv_str(seq));
            break;
          case 1:
            mine.update<sleet::test::KvRec>(recs[i], [&](std::optional<sleet::test::KvRec> cur) {
              if (cur && !sleet::test::kv_rec_ok(*cur)) std::_Exit(5);
              return sleet::test::make_kv_rec(seq);
            });
            mine.update<std::string>(strs[i], [&](std::optional<std::string> cur) {
              if (cur && !sleet::test::kv_str_ok(*cur)) std::_Exit(5);
              return sleet::test::make_kv_str(seq);
            });
            break;
          case 2:
            (void)mine.erase(recs[i]);
            (void)mine.erase(strs[i]);
            mine.set(recs[i], sleet::test::make_kv_rec(seq));
            mine.set(strs[i], sleet::test::make_kv_str(seq));
            break;
        }
      }
      mine.set("writes", seq);
    }
    return 0;
  });
  auto reader_body = [&](const char* tag) {
    return [&, tag] {
      auto mine = KvStore::open(name);
      std::uint64_t reads = 0, found = 0;
      while (mine.get<int>("phase") != 2) {
        for (std::size_t i = 0; i < recs.size(); ++i) {
          if (auto v = mine.get<sleet::test::KvRec>(recs[i])) {
            ++found;
            if (!sleet::test::kv_rec_ok(*v)) {
              std::fprintf(stderr, "%s: torn record at %s seq %llu\n", tag, recs[i].c_str(),
                           static_cast<unsigned long long>(v->seq));
              return 1;
            }
          }
          if (auto v = mine.get<std::string>(strs[i])) {
            ++found;
            if (!sleet::test::kv_str_ok(*v)) {
              std::fprintf(stderr, "%s: torn string at %s (%zu bytes)\n", tag, strs[i].c_str(),
                           v->size());
              return 1;
            }
          }
          reads += 2;
        }
      }
      mine.set(std::string(tag) + ".reads", reads);
      mine.set(std::string(tag) + ".found", found);
      return 0;
    };
  };
  Child reader1(reader_body("reader1"));
  Child reader2(reader_body("reader2"));
  kv.set("phase", 1);
  std::this_thread::sleep_for(700ms);
  kv.set("phase", 2);
  CHECK(writer.wait_for(3000ms) == 0);
  CHECK(reader1.wait_for(3000ms) == 0);
  CHECK(reader2.wait_for(3000ms) == 0);
  for (const char* tag : {"reader1", "reader2"}) {
    INFO(tag);
    CHECK(kv.get_or<std::uint64_t>(std::string(tag) + ".reads", 0) > 1000);
    CHECK(kv.get_or<std::uint64_t>(std::string(tag) + ".found", 0) > 500);
  }
  CHECK(kv.get_or<std::uint64_t>("writes", 0) > 1000);
  // Every key is live and whole once the writer is done.
  for (const auto& k : recs) CHECK(sleet::test::kv_rec_ok(kv.get<sleet::test::KvRec>(k).value()));
  for (const auto& k : strs) CHECK(sleet::test::kv_str_ok(kv.get<std::string>(k).value()));
  CHECK(kv.size() == kv.snapshot().size());
}
