// The life cycle of a segment (include/sleet/detail/segment.hpp): liveness
// by flock (what fork() does to it), the bounded open (a sparse garbage file
// costs no page), kind-checked remove for every object kind, and the exact
// errors of bad permissions, names and types.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <sleet/sleet.hpp>

#include "support.hpp"

namespace lifecycle_test {
// Encodes its text verbatim; refuses to decode one that starts with "bad".
struct Picky {
  std::string text;
};
}  // namespace lifecycle_test

template <>
struct sleet::Codec<lifecycle_test::Picky> {
  static constexpr std::string_view name = "picky-v1";
  static constexpr std::size_t fixed_size = 0;
  static std::size_t encode(const lifecycle_test::Picky& v, std::byte* out, std::size_t capacity) {
    if (v.text.size() <= capacity) std::memcpy(out, v.text.data(), v.text.size());
    return v.text.size();
  }
  static void decode(const std::byte* in, std::size_t size, lifecycle_test::Picky& out) {
    out.text.assign(reinterpret_cast<const char*>(in), size);
    if (out.text.starts_with("bad")) throw sleet::Error(sleet::errc::decode_failed, "picky codec: a bad value");
  }
};

namespace {

using namespace std::chrono_literals;
using sleet::errc;
using sleet::detail::Segment;
using sleet::detail::SegmentKind;
using sleet::detail::SegmentSpec;
using sleet::test::Cleanup;
using sleet::test::unique_name;

constexpr std::uint64_t kFp = 0x1234'5678'9abc'def0ull;

SegmentSpec value_spec(unsigned permissions = 0600) {
  return SegmentSpec{SegmentKind::value, 64, kFp, "test_type", permissions};
}

Segment open_value(const std::string& name) {
  return Segment::open(name, SegmentKind::value, kFp, "test_type");
}

bool stale(const std::string& name) { return sleet::inspect_object(name).stale; }

int entries_of(const Segment& seg, int pid) {
  int n = 0;
  for (auto& u : seg.header()->users) {
    n += sleet::detail::identity_pid(u.load(std::memory_order_relaxed)) == pid;
  }
  return n;
}

// st_blocks of the file behind `name` (pages allocated, in 512-byte units).
long long blocks_of(const std::string& name) {
  struct stat st {};
  REQUIRE(::stat(sleet::detail::shm_path(name).c_str(), &st) == 0);
  return static_cast<long long>(st.st_blocks);
}

// A sparse file of `bytes` whose first page is `first` (padded with text).
void write_sparse(const std::string& name, std::uint64_t bytes, std::string first) {
  while (first.size() < 4096) first += " sparse garbage, not a sleet segment.";
  first.resize(4096);
  const int fd = ::open(sleet::detail::shm_path(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(bytes)) == 0);
  REQUIRE(::pwrite(fd, first.data(), first.size(), 0) == static_cast<ssize_t>(first.size()));
  ::close(fd);
}

}  // namespace

TEST_CASE("lifecycle: an object is in use exactly while a handle is open", "[segment][lifecycle]") {
  const std::string name = unique_name("life");
  Cleanup cleanup(name);
  {
    auto seg = Segment::create(name, value_spec(), nullptr);
    CHECK_FALSE(stale(name));
    {
      auto other = open_value(name);
      auto shared = other.share();
      CHECK_FALSE(stale(name));
    }
    CHECK_FALSE(stale(name));  // `seg` still holds it
  }
  CHECK(stale(name));
  auto again = open_value(name);
  CHECK_FALSE(stale(name));
  // A second look does not take the lock away from us.
  CHECK_FALSE(stale(name));
}

TEST_CASE("lifecycle: a forked child holds the object through the inherited descriptor",
          "[segment][lifecycle][fork]") {
  const std::string name = unique_name("fork");
  const std::string go = unique_name("fork.go");
  Cleanup cleanup(name), cleanup_go(go);
  const std::string done = unique_name("fork.done");
  Cleanup cleanup_done(done);
  auto go_event = sleet::Event::create(go);
  auto done_event = sleet::Event::create(done);
  std::optional<Segment> seg(Segment::create(name, value_spec(), nullptr));
  const int me = ::getpid();
  auto view = open_value(name);
  const std::uint32_t unrecorded = view.header()->unrecorded_users.load();
  sleet::test::Child child([&] {
    // The child's copy of a handle is not the registered user: destroying
    // it neither frees the parent's entry nor changes the count. It keeps
    // its copy of `view` (and so that descriptor's lock).
    seg.reset();
    done_event.set();
    return go_event.wait_for(10s) ? 0 : 2;
  });
  REQUIRE(done_event.wait_for(10s));
  CHECK(entries_of(view, me) == 2);  // seg and view, both the parent's
  CHECK(entries_of(view, child.pid()) == 0);
  CHECK(view.header()->unrecorded_users.load() == unrecorded);
  // The parent lets go: the child's inherited lock keeps it in use.
  seg.reset();
  view = Segment();
  CHECK_FALSE(stale(name));
  CHECK(sleet::inspect_object(name).users.empty());  // nobody recorded, still in use
  go_event.set();
  REQUIRE(child.wait_for(10000ms) == 0);
  CHECK(stale(name));
}

TEST_CASE("lifecycle: remove_object(unused) refuses an object in use and removes an unused one",
          "[segment][lifecycle][registry]") {
  const std::string name = unique_name("busy");
  Cleanup cleanup(name);
  std::optional<Segment> seg(Segment::create(name, value_spec(), nullptr));
  CHECK_SLEET_ERROR(sleet::remove_object(name, sleet::RemoveWhen::unused), errc::busy,
                    "in use (pid " + std::to_string(::getpid()) + ")");
  CHECK(sleet::test::shm_exists(name));
  seg.reset();
  CHECK(sleet::remove_object(name, sleet::RemoveWhen::unused));
  CHECK_FALSE(sleet::test::shm_exists(name));
  CHECK_FALSE(sleet::remove_object(name, sleet::RemoveWhen::unused));
  // `always` removes one in use (processes that have it keep their mapping).
  seg.emplace(Segment::create(name, value_spec(), nullptr));
  CHECK(sleet::remove_object(name));
  CHECK_FALSE(sleet::test::shm_exists(name));
}

TEST_CASE("lifecycle: an open racing a removal never attaches to the removed object",
          "[segment][lifecycle]") {
  // The opener takes its lock, then checks that the name still means the
  // file it opened: a name removed (and made again) in between is not_found
  // or the new object, never the unlinked one.
  const std::string name = unique_name("race");
  Cleanup cleanup(name);
  for (int round = 0; round < 50; ++round) {
    { auto seg = Segment::create(name, value_spec(), nullptr); }
    sleet::test::Child remover([&] {
      try {
        return sleet::remove_object(name, sleet::RemoveWhen::unused) ? 0 : 1;
      } catch (const sleet::Error& e) {
        return e.code() == errc::busy ? 2 : 3;
      }
    });
    try {
      auto seg = open_value(name);
      // Attached: then the name is ours and in use, so the remover failed
      // or ran before the open (and then open() could not have succeeded).
      CHECK(remover.wait() == 2);  // busy
      CHECK(sleet::test::shm_exists(name));
    } catch (const sleet::Error& e) {
      CHECK(e.code() == errc::not_found);
      CHECK(remover.wait() == 0);
    }
    Segment::remove(name);
  }
}

TEST_CASE("lifecycle: a sparse garbage file of 4 GiB is refused by every entry point without a page",
          "[segment][lifecycle][bounded]") {
  const std::string name = unique_name("sparse");
  Cleanup cleanup(name);
  constexpr std::uint64_t kSize = std::uint64_t{4} << 30;
  SECTION("text") { write_sparse(name, kSize, "this is not a sleet segment"); }
  SECTION("a real header claiming the whole file") {
    const std::string real = unique_name("sparse.real");
    Cleanup cleanup_real(real);
    std::string first(4096, '\0');
    {
      auto ch = sleet::Channel<int>::create(real, {.capacity = 4});
      std::memcpy(first.data(), ch.base().segment().header(), sleet::detail::kHeaderSize);
    }
    std::memcpy(first.data() + 16, &kSize, sizeof kSize);  // total_size == the file's size
    write_sparse(name, kSize, first);
  }
  const long long before = blocks_of(name);
  CHECK(before <= 4096 / 512 * 2);  // one page written (tmpfs may count it twice for huge pages: at most 2)
  const std::vector<std::pair<const char*, std::function<void()>>> entry_points = {
      {"Channel::open", [&] { (void)sleet::Channel<int>::open(name); }},
      {"Pipe::open", [&] { (void)sleet::Pipe<int>::open(name, sleet::End::a); }},
      {"KvStore::open", [&] { (void)sleet::KvStore::open(name); }},
      {"Mutex::open", [&] { (void)sleet::Mutex::open(name); }},
      {"Semaphore::open", [&] { (void)sleet::Semaphore::open(name); }},
      {"Event::open", [&] { (void)sleet::Event::open(name); }},
      {"SharedValue::open", [&] { (void)sleet::SharedValue<int>::open(name); }},
      {"SharedArray::open", [&] { (void)sleet::SharedArray<int>::open(name); }},
      {"Topic::open", [&] { (void)sleet::Topic<int>::open(name); }},
      {"Service::open", [&] { (void)sleet::Service<int, int>::open(name); }},
      {"Mutex::remove", [&] { (void)sleet::Mutex::remove(name); }},
  };
  for (const auto& [what, call] : entry_points) {
    CAPTURE(what);
    const auto err = sleet::test::thrown_error(call);
    REQUIRE(err);
    INFO(err->what());
    CHECK((err->code() == errc::not_sleet || err->code() == errc::corrupted ||
           err->code() == errc::kind_mismatch));
    CHECK(blocks_of(name) == before);
  }
  // The registry refuses it (bad magic) or lists it with what is wrong,
  // and maps nothing.
  const auto err = sleet::test::thrown_error([&] {
    const auto info = sleet::inspect_object(name);
    CHECK(info.problem == "has holes: 4096 of 4294967296 bytes allocated (not made by sleet)");
    CHECK(info.rings.empty());
  });
  if (err) CHECK(err->code() == errc::not_sleet);
  (void)sleet::list_objects();
  CHECK(blocks_of(name) == before);
  CHECK(sleet::test::shm_exists(name));
}

TEST_CASE("lifecycle: every X::remove removes only its own kind", "[segment][lifecycle][remove]") {
  struct Kind {
    const char* kind;
    std::function<void(const std::string&)> create;
    std::function<bool(const std::string&)> remove;
  };
  const std::vector<Kind> kinds = {
      {"channel", [](auto& n) { (void)sleet::Channel<int>::create(n, {.capacity = 4}); },
       [](auto& n) { return sleet::Channel<int>::remove(n); }},
      {"pipe", [](auto& n) { (void)sleet::Pipe<int>::create(n, {.capacity = 4}); },
       [](auto& n) { return sleet::Pipe<int>::remove(n); }},
      {"kv", [](auto& n) { (void)sleet::KvStore::create(n, {.capacity = 8}); },
       [](auto& n) { return sleet::KvStore::remove(n); }},
      {"mutex", [](auto& n) { (void)sleet::Mutex::create(n); },
       [](auto& n) { return sleet::Mutex::remove(n); }},
      {"semaphore", [](auto& n) { (void)sleet::Semaphore::create(n, 1); },
       [](auto& n) { return sleet::Semaphore::remove(n); }},
      {"event", [](auto& n) { (void)sleet::Event::create(n); },
       [](auto& n) { return sleet::Event::remove(n); }},
      {"value", [](auto& n) { (void)sleet::SharedValue<int>::create(n); },
       [](auto& n) { return sleet::SharedValue<int>::remove(n); }},
      {"array", [](auto& n) { (void)sleet::SharedArray<int>::create(n, 4); },
       [](auto& n) { return sleet::SharedArray<int>::remove(n); }},
      {"topic", [](auto& n) { (void)sleet::Topic<int>::create(n); },
       [](auto& n) { return sleet::Topic<int>::remove(n); }},
      {"service", [](auto& n) { (void)sleet::Service<int, int>::create(n); },
       [](auto& n) { return sleet::Service<int, int>::remove(n); }},
  };
  for (const Kind& object : kinds) {
    const std::string name = unique_name(std::string("rm.") + object.kind);
    Cleanup cleanup(name);
    object.create(name);
    for (const Kind& remover : kinds) {
      if (std::strcmp(remover.kind, object.kind) == 0) continue;
      CAPTURE(object.kind, remover.kind);
      CHECK_SLEET_ERROR(remover.remove(name), errc::kind_mismatch,
                        "sleet segment '" + name + "': is a " + object.kind + ", not a " +
                            remover.kind + " (remove_object() removes any kind)");
      CHECK(sleet::test::shm_exists(name));
    }
    CAPTURE(object.kind);
    CHECK(object.remove(name));
    CHECK_FALSE(sleet::test::shm_exists(name));
    CHECK_FALSE(object.remove(name));
  }
  // What is not a sleet segment is refused by every X::remove, as by remove_object().
  const std::string foreign = unique_name("rm.foreign");
  Cleanup cleanup(foreign);
  REQUIRE(sleet::test::write_foreign_object(foreign));
  CHECK_SLEET_ERROR(sleet::Mutex::remove(foreign), errc::not_sleet, "not a sleet segment (bad magic)");
  CHECK(sleet::test::shm_exists(foreign));
  // A creator that died before writing anything left a zero-filled file:
  // any kind's remove takes it (there is nothing to mismatch).
  const std::string zeros = unique_name("rm.zeros");
  Cleanup cleanup_zeros(zeros);
  {
    const int fd = ::open(sleet::detail::shm_path(zeros).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 4096) == 0);
    ::close(fd);
  }
  CHECK(sleet::Event::remove(zeros));
  CHECK_FALSE(sleet::test::shm_exists(zeros));
}

TEST_CASE("errors: permissions outside 0777 are errc::invalid_argument", "[segment][errors]") {
  const std::string name = unique_name("perm.bad");
  Cleanup cleanup(name);
  CHECK_SLEET_ERROR(Segment::create(name, value_spec(0100000), nullptr), errc::invalid_argument,
                    "sleet segment '" + name + "': permissions 0100000 are out of range (0 to 0777)");
  CHECK_SLEET_ERROR(sleet::Channel<int>::create(name, {.permissions = 07777}), errc::invalid_argument,
                    "permissions 07777 are out of range (0 to 0777)");
  CHECK_SLEET_ERROR(sleet::KvStore::create(name, {.permissions = 01600}), errc::invalid_argument,
                    "permissions 01600 are out of range");
  CHECK_FALSE(sleet::test::shm_exists(name));
  auto ok = Segment::create(name, value_spec(0777), nullptr);
  CHECK(ok.header()->permissions == 0777u);
}

TEST_CASE("errors: control characters in a name are escaped before they are echoed",
          "[segment][errors][name]") {
  const std::string bad = "two\nlines\x1b[31m\t'q'\\";
  const auto err = sleet::test::thrown_error([&] { (void)sleet::Channel<int>::open(bad); });
  REQUIRE(err);
  const std::string what = err->what();
  CHECK(err->code() == errc::invalid_name);
  CHECK(what ==
        "invalid sleet name 'two\\x0alines\\x1b[31m\\x09\\x27q\\x27\\x5c': only [A-Za-z0-9._-] "
        "allowed, found '\\x0a': invalid_name");
  for (char c : what) CHECK(static_cast<unsigned char>(c) >= 0x20);
  CHECK(sleet::detail::printable_name(std::string(70, 'a')) == std::string(60, 'a') + "...");
  CHECK(sleet::detail::printable_name("caf\xc3\xa9") == "caf\\xc3\\xa9");
}

TEST_CASE("errors: a type mismatch with equal type names shows the fingerprints",
          "[segment][errors][type]") {
  const std::string name = unique_name("fp");
  Cleanup cleanup(name);
  auto seg = Segment::create(name, value_spec(), nullptr);
  CHECK_SLEET_ERROR(Segment::open(name, SegmentKind::value, 0xabcdefull, "test_type"), errc::type_mismatch,
                    "sleet segment '" + name +
                        "': holds 'test_type', opened as 'test_type' (fingerprints "
                        "123456789abcdef0 and 0000000000abcdef)");
  // Different names need no fingerprints.
  const auto err = sleet::test::thrown_error(
      [&] { (void)Segment::open(name, SegmentKind::value, 0xabcdefull, "other_type"); });
  REQUIRE(err);
  CHECK(std::string(err->what()) ==
        "sleet segment '" + name + "': holds 'test_type', opened as 'other_type': type_mismatch");
}

TEST_CASE("errors: a store's decode error names the store and the key", "[kv][errors]") {
  using lifecycle_test::Picky;
  const std::string name = unique_name("kv.decode");
  Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 8});
  kv.set("good", Picky{"fine"});
  kv.set("key\n1", Picky{"bad value"});
  CHECK(kv.get<Picky>("good")->text == "fine");
  const std::string want = "kv store '" + name + "': key 'key\\x0a1': picky codec: a bad value: decode_failed";
  auto err = sleet::test::thrown_error([&] { (void)kv.get<Picky>("key\n1"); });
  REQUIRE(err);
  CHECK(err->code() == errc::decode_failed);
  CHECK(std::string(err->what()) == want);
  // Through a snapshot entry too.
  for (const sleet::KvEntry& e : kv.snapshot()) {
    if (e.key != "key\n1") continue;
    err = sleet::test::thrown_error([&] { (void)e.as<Picky>(); });
    REQUIRE(err);
    CHECK(std::string(err->what()) == want);
  }
  // A type mismatch whose two names are equal cannot happen through the
  // API (a fingerprint hashes the name); a different one names both.
  CHECK_SLEET_ERROR(kv.get<int>("good"), errc::type_mismatch,
                    "kv store '" + name + "': key 'good' holds 'lifecycle_test::Picky', read as 'int'");
}
