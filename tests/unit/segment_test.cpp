// Unit tests of layer 1 (include/sleet/detail/segment.hpp): name
// validation, the create/open/remove life cycle, the pinned shared layout,
// the /dev/shm file and its mode, and the users table.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

using sleet::errc;
using sleet::detail::Segment;
using sleet::detail::SegmentHeader;
using sleet::detail::SegmentKind;
using sleet::detail::SegmentSpec;
using sleet::test::Cleanup;
using sleet::test::unique_name;

// The sleet::Error thrown by f(), or nullopt if it threw nothing.
using sleet::test::thrown_error;

SegmentSpec spec_of(std::uint64_t object_size, unsigned permissions = 0600) {
  return SegmentSpec{SegmentKind::value, object_size, 0x1234'5678'9abc'def0ull, "test_type",
                     permissions};
}

Segment open_value(const std::string& name) {
  return Segment::open(name, SegmentKind::value, 0x1234'5678'9abc'def0ull, "test_type");
}

int count_users(const Segment& seg, int pid) {
  int n = 0;
  for (auto& u : seg.header()->users) {
    n += sleet::detail::identity_pid(u.load(std::memory_order_relaxed)) == pid;
  }
  return n;
}

// Restores the process umask when the test ends.
struct UmaskGuard {
  mode_t old;
  explicit UmaskGuard(mode_t m) : old(::umask(m)) {}
  ~UmaskGuard() { ::umask(old); }
};

}  // namespace

TEST_CASE("validate_name rejects bad names with errc::invalid_name", "[segment][name]") {
  using sleet::detail::validate_name;
  SECTION("empty") { CHECK_SLEET_ERROR(validate_name(""), errc::invalid_name, "''"); }
  SECTION("201 characters") {
    const std::string name(201, 'a');
    // Long names are shown by their first 60 characters.
    CHECK_SLEET_ERROR(validate_name(name), errc::invalid_name, name.substr(0, 60));
    CHECK_SLEET_ERROR(validate_name(name), errc::invalid_name, "201");
  }
  SECTION("a slash") {
    CHECK_SLEET_ERROR(validate_name("a/b"), errc::invalid_name, "'a/b'");
    CHECK_SLEET_ERROR(validate_name("/leading"), errc::invalid_name, "'/leading'");
  }
  SECTION("a space") { CHECK_SLEET_ERROR(validate_name("two words"), errc::invalid_name, "'two words'"); }
  SECTION("non-ASCII") {
    // Shown escaped: bytes outside printable ASCII never reach a terminal raw.
    CHECK_SLEET_ERROR(validate_name("caf\xc3\xa9"), errc::invalid_name, "'caf\\xc3\\xa9'");
  }
  SECTION("other punctuation and control characters") {
    for (const char* bad : {"a*b", "a:b", "a\\b", "tab\tname", "nul", "q?", "x+y", "..%"}) {
      std::string name = bad;
      if (name == "nul") name = std::string("n\0l", 3);
      CAPTURE(name);
      CHECK_SLEET_ERROR(validate_name(name), errc::invalid_name, "invalid sleet name");
    }
  }
}

TEST_CASE("validate_name accepts 1-200 characters of [A-Za-z0-9._-]", "[segment][name]") {
  using sleet::detail::validate_name;
  CHECK_NOTHROW(validate_name("a"));
  CHECK_NOTHROW(validate_name(std::string(200, 'z')));
  CHECK_NOTHROW(validate_name("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"));
  CHECK_NOTHROW(validate_name("."));
  CHECK_NOTHROW(validate_name("-"));
  CHECK(sleet::detail::kMaxNameLength == 200);
}

TEST_CASE("shm_name and shm_path", "[segment][name]") {
  CHECK(sleet::detail::shm_name("jobs") == "/sleet.jobs");
  CHECK(sleet::detail::shm_path("jobs") == "/dev/shm/sleet.jobs");
}

TEST_CASE("a 200-character name works end to end", "[segment][name]") {
  std::string name = unique_name("long");
  name.append(200 - name.size(), 'x');
  REQUIRE(name.size() == 200);
  Cleanup cleanup(name);
  auto seg = Segment::create(name, spec_of(64), nullptr);
  CHECK(::access(sleet::detail::shm_path(name).c_str(), F_OK) == 0);
  auto again = open_value(name);
  CHECK(again.name() == name);
  CHECK(Segment::remove(name));
}

TEST_CASE("Segment create/open/remove round trip", "[segment]") {
  const std::string name = unique_name("seg");
  Cleanup cleanup(name);

  auto seg = Segment::create(name, spec_of(1000), [](std::byte* object) {
    for (int i = 0; i < 1000; ++i) object[i] = static_cast<std::byte>(i * 7);
  });
  REQUIRE(seg.valid());
  CHECK(seg.name() == name);
  CHECK(seg.object_size() == 1024);  // rounded up to a cache line
  CHECK(seg.size() == sleet::detail::kHeaderSize + 1024);
  CHECK(seg.object() == reinterpret_cast<std::byte*>(seg.header()) + sleet::detail::kHeaderSize);

  const SegmentHeader* h = seg.header();
  CHECK(std::memcmp(h->magic, "SLEETSHM", 8) == 0);
  CHECK(h->layout_version == sleet::detail::kLayoutVersion);
  CHECK(h->kind == static_cast<std::uint32_t>(SegmentKind::value));
  CHECK(h->total_size == seg.size());
  CHECK(h->fingerprint == 0x1234'5678'9abc'def0ull);
  CHECK(h->creator.load() == sleet::detail::current_identity());
  CHECK(sleet::detail::identity_pid(h->creator.load()) == ::getpid());
  CHECK(h->pid_namespace == sleet::detail::current_pid_namespace());
  CHECK(h->pid_namespace != 0);
  CHECK(h->state.load() == sleet::detail::kReady);
  CHECK(h->object_offset == sleet::detail::kHeaderSize);
  CHECK(h->permissions == 0600u);
  CHECK(std::string(h->type_name) == "test_type");
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const auto now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u +
                      static_cast<std::uint64_t>(now.tv_nsec);
  CHECK(h->created_ns <= now_ns);
  CHECK(now_ns - h->created_ns < 60'000'000'000ull);

  auto other = open_value(name);
  REQUIRE(other.valid());
  CHECK(other.size() == seg.size());
  CHECK(other.object() != seg.object());  // a second mapping, not the same pointer
  bool init_seen = true;
  for (int i = 0; i < 1000; ++i) init_seen &= other.object()[i] == static_cast<std::byte>(i * 7);
  CHECK(init_seen);
  // The two mappings are the same memory.
  seg.object()[3] = std::byte{0x5a};
  CHECK(other.object()[3] == std::byte{0x5a});

  // Moving a segment keeps the mapping.
  Segment moved = std::move(other);
  CHECK_FALSE(other.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty
  CHECK(moved.valid());
  CHECK(moved.object()[3] == std::byte{0x5a});

  CHECK(Segment::remove(name));
  CHECK(::access(sleet::detail::shm_path(name).c_str(), F_OK) != 0);
  CHECK_SLEET_ERROR(open_value(name), errc::not_found, name);
  // Mappings outlive the name.
  seg.object()[4] = std::byte{0x6b};
  CHECK(moved.object()[4] == std::byte{0x6b});
  CHECK_FALSE(Segment::remove(name));
  // The name is free again.
  auto fresh = Segment::create(name, spec_of(64), nullptr);
  CHECK(fresh.object()[4] == std::byte{0});
}

TEST_CASE("Segment::create rejects sizes out of range and cleans up", "[segment]") {
  const std::string name = unique_name("size");
  Cleanup cleanup(name);
  CHECK_SLEET_ERROR(Segment::create(name, spec_of(0), nullptr), errc::invalid_argument, name);
  CHECK_SLEET_ERROR(Segment::create(name, spec_of(sleet::detail::kMaxSegmentSize), nullptr),
                    errc::invalid_argument, name);
  CHECK(::access(sleet::detail::shm_path(name).c_str(), F_OK) != 0);
}

TEST_CASE("Segment::create removes the object again when init throws", "[segment]") {
  const std::string name = unique_name("init");
  Cleanup cleanup(name);
  CHECK_THROWS_AS(Segment::create(name, spec_of(64),
                                  [](std::byte*) { throw std::runtime_error("init failed"); }),
                  std::runtime_error);
  CHECK(::access(sleet::detail::shm_path(name).c_str(), F_OK) != 0);
  CHECK_NOTHROW(Segment::create(name, spec_of(64), nullptr));
}

TEST_CASE("segment header layout and magic are pinned", "[segment][layout]") {
  // If this test fails, the shared layout changed: bump kLayoutVersion in
  // detail/segment.hpp and update the numbers here in the same change.
  using namespace sleet::detail;
  CHECK(std::string(kMagic, sizeof kMagic) == "SLEETSHM");
  STATIC_REQUIRE(sizeof kMagic == 8);
  STATIC_REQUIRE(kLayoutVersion == 7);
  STATIC_REQUIRE(kReady == 0x52454459u);
  STATIC_REQUIRE(kHeaderSize == 512);
  STATIC_REQUIRE(kMaxUsers == 28);
  STATIC_REQUIRE(sizeof(SegmentHeader) == 512);
  STATIC_REQUIRE(alignof(SegmentHeader) == 8);
  STATIC_REQUIRE(offsetof(SegmentHeader, magic) == 0);
  STATIC_REQUIRE(offsetof(SegmentHeader, layout_version) == 8);
  STATIC_REQUIRE(offsetof(SegmentHeader, kind) == 12);
  STATIC_REQUIRE(offsetof(SegmentHeader, total_size) == 16);
  STATIC_REQUIRE(offsetof(SegmentHeader, fingerprint) == 24);
  STATIC_REQUIRE(offsetof(SegmentHeader, permissions) == 32);
  STATIC_REQUIRE(offsetof(SegmentHeader, state) == 36);
  STATIC_REQUIRE(offsetof(SegmentHeader, created_ns) == 40);
  STATIC_REQUIRE(offsetof(SegmentHeader, object_offset) == 48);
  STATIC_REQUIRE(offsetof(SegmentHeader, creator) == 56);
  STATIC_REQUIRE(sizeof(SegmentHeader::creator) == 8);
  STATIC_REQUIRE(offsetof(SegmentHeader, type_name) == 64);
  STATIC_REQUIRE(sizeof(SegmentHeader::type_name) == 192);
  STATIC_REQUIRE(offsetof(SegmentHeader, pid_namespace) == 256);
  STATIC_REQUIRE(offsetof(SegmentHeader, unrecorded_users) == 264);
  STATIC_REQUIRE(offsetof(SegmentHeader, reserved0) == 268);
  STATIC_REQUIRE(offsetof(SegmentHeader, users) == 272);
  STATIC_REQUIRE(sizeof(SegmentHeader::users) == 28 * 8);
  STATIC_REQUIRE(offsetof(SegmentHeader, reserved1) == 496);
  STATIC_REQUIRE(std::atomic<std::uint64_t>::is_always_lock_free);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::channel) == 1);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::pipe) == 2);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::kv) == 3);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::mutex) == 4);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::semaphore) == 5);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::event) == 6);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::value) == 7);
  STATIC_REQUIRE(static_cast<std::uint32_t>(SegmentKind::array) == 8);

  // Layouts that live inside channel segments are covered by the same version.
  STATIC_REQUIRE(sizeof(EventCount) == 64);
  STATIC_REQUIRE(offsetof(EventCount, epoch) == 0);
  STATIC_REQUIRE(offsetof(EventCount, waiters) == 4);
  STATIC_REQUIRE(offsetof(EventCount, wakes) == 8);
  STATIC_REQUIRE(sizeof(RingCommon) == 512);
  STATIC_REQUIRE(offsetof(RingCommon, closed) == 0);
  STATIC_REQUIRE(offsetof(RingCommon, data_ec) == 128);
  STATIC_REQUIRE(offsetof(RingCommon, space_ec) == 256);
  STATIC_REQUIRE(offsetof(RingCommon, times_full) == 384);
  STATIC_REQUIRE(offsetof(RingCommon, send_sleeps) == 392);
  STATIC_REQUIRE(offsetof(RingCommon, receive_sleeps) == 400);
  STATIC_REQUIRE(offsetof(RingCommon, aborted) == 408);
  STATIC_REQUIRE(sizeof(ChannelConfig) == 128);
  STATIC_REQUIRE(offsetof(ChannelConfig, topology) == 0);
  STATIC_REQUIRE(offsetof(ChannelConfig, capacity) == 8);
  STATIC_REQUIRE(offsetof(ChannelConfig, max_message_size) == 16);
  STATIC_REQUIRE(offsetof(ChannelConfig, spin_ns) == 24);
  STATIC_REQUIRE(static_cast<std::uint32_t>(sleet::Topology::spsc) == 1);
  STATIC_REQUIRE(static_cast<std::uint32_t>(sleet::Topology::mpmc) == 2);
  STATIC_REQUIRE(sizeof(SpscControl) == 896);
  STATIC_REQUIRE(offsetof(SpscControl, bytes) == 0);
  STATIC_REQUIRE(offsetof(SpscControl, max_message_size) == 8);
  STATIC_REQUIRE(offsetof(SpscControl, common) == 128);
  STATIC_REQUIRE(offsetof(SpscControl, tail) == 640);
  STATIC_REQUIRE(offsetof(SpscControl, sent) == 648);
  STATIC_REQUIRE(offsetof(SpscControl, producer) == 656);
  STATIC_REQUIRE(offsetof(SpscControl, producer) + offsetof(SpscRole, serial) == 664);
  STATIC_REQUIRE(offsetof(SpscControl, in_send) == 672);
  STATIC_REQUIRE(offsetof(SpscControl, head) == 768);
  STATIC_REQUIRE(offsetof(SpscControl, received) == 776);
  STATIC_REQUIRE(offsetof(SpscControl, consumer) == 784);
  STATIC_REQUIRE(SpscRing::kHeader == 8);
  STATIC_REQUIRE(SpscRing::kData == 1);
  STATIC_REQUIRE(SpscRing::kPad == 2);
  STATIC_REQUIRE(sizeof(MpmcControl) == 1920);
  STATIC_REQUIRE(offsetof(MpmcControl, slots) == 0);
  STATIC_REQUIRE(offsetof(MpmcControl, stride) == 8);
  STATIC_REQUIRE(offsetof(MpmcControl, max_message_size) == 16);
  STATIC_REQUIRE(offsetof(MpmcControl, final_ticket) == 24);
  STATIC_REQUIRE(offsetof(MpmcControl, common) == 128);
  STATIC_REQUIRE(offsetof(MpmcControl, enqueue_pos) == 640);
  STATIC_REQUIRE(offsetof(MpmcControl, dequeue_pos) == 768);
  STATIC_REQUIRE(offsetof(MpmcControl, processes) == 896);
  STATIC_REQUIRE(sleet::detail::kTrackedProcesses == 127);
  STATIC_REQUIRE(sizeof(MpmcSlot) == 16);
  STATIC_REQUIRE(offsetof(MpmcSlot, word) == 0);
  STATIC_REQUIRE(MpmcRing::word(5, MpmcRing::kHolds, 3) == (5u << 9 | 2u << 7 | 3u));
  STATIC_REQUIRE(offsetof(MpmcSlot, size) == 8);
  STATIC_REQUIRE(MpmcRing::kSkip == 0xFFFFFFFFu);
  STATIC_REQUIRE(MpmcRing::kClosedBit == std::uint64_t{1} << 63);
  STATIC_REQUIRE(kOpen == 0);
  STATIC_REQUIRE(kClosing == 1);
  STATIC_REQUIRE(kClosed == 2);

  // And the bytes a created segment really has in /dev/shm.
  const std::string name = unique_name("pin");
  Cleanup cleanup(name);
  auto seg = Segment::create(name, spec_of(64), nullptr);
  unsigned char raw[kHeaderSize];
  const int fd = ::open(shm_path(name).c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  const ssize_t got = ::pread(fd, raw, sizeof raw, 0);
  ::close(fd);
  REQUIRE(got == static_cast<ssize_t>(sizeof raw));
  CHECK(std::string(reinterpret_cast<const char*>(raw), 8) == "SLEETSHM");
  auto le32 = [&](std::size_t at) {
    return std::uint32_t{raw[at]} | std::uint32_t{raw[at + 1]} << 8 |
           std::uint32_t{raw[at + 2]} << 16 | std::uint32_t{raw[at + 3]} << 24;
  };
  auto le64 = [&](std::size_t at) { return le32(at) | std::uint64_t{le32(at + 4)} << 32; };
  CHECK(le32(8) == 7);                                          // layout version
  CHECK(le32(12) == 7);                                         // kind: value
  CHECK(le64(16) == kHeaderSize + 64);                          // total size
  CHECK(le64(24) == 0x1234'5678'9abc'def0ull);                  // fingerprint
  CHECK(le32(32) == 0600u);                                     // permissions
  CHECK(le32(36) == 0x52454459u);                               // state: ready
  CHECK(le64(48) == kHeaderSize);                               // object offset
  CHECK(le64(56) == current_identity());                        // creator
  CHECK(static_cast<pid_t>(le32(60)) == ::getpid());            // its pid, the high half
  CHECK(std::string(reinterpret_cast<const char*>(raw + 64)) == "test_type");
  CHECK(le64(256) == current_pid_namespace());                  // pid namespace
  CHECK(le32(264) == 0);                                        // unrecorded users
  CHECK(le64(272) == current_identity());                       // users[0]
  CHECK(le64(280) == 0);                                        // users[1]
}

TEST_CASE("segment file is /dev/shm/sleet.<name> with mode 0600 by default", "[segment][perm]") {
  const std::string name = unique_name("mode");
  Cleanup cleanup(name);
  // A permissive umask must not widen the default.
  UmaskGuard umask_guard(0);
  auto seg = Segment::create(name, spec_of(100), nullptr);
  struct stat st {};
  REQUIRE(::stat(("/dev/shm/sleet." + name).c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(st.st_uid == ::geteuid());
  CHECK(static_cast<std::uint64_t>(st.st_size) == seg.size());
  CHECK(seg.header()->permissions == 0600u);
}

TEST_CASE("custom permissions are honoured exactly regardless of umask", "[segment][perm]") {
  for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0777}}) {
    for (const unsigned perms : {0640u, 0666u, 0604u, 0660u, 0644u, 0700u}) {
      CAPTURE(mask, perms);
      const std::string name = unique_name("perm");
      Cleanup cleanup(name);
      UmaskGuard umask_guard(mask);
      auto seg = Segment::create(name, spec_of(64, perms), nullptr);
      struct stat st {};
      REQUIRE(::stat(sleet::detail::shm_path(name).c_str(), &st) == 0);
      CHECK((st.st_mode & 07777) == perms);
      CHECK(seg.header()->permissions == perms);
    }
  }
}

TEST_CASE("Segment::remove returns false for a missing name", "[segment]") {
  const std::string name = unique_name("missing");
  CHECK_FALSE(Segment::remove(name));
  CHECK_FALSE(Segment::remove(name));
  CHECK_SLEET_ERROR(Segment::remove("no/slash"), errc::invalid_name, "no/slash");
}

TEST_CASE("users table holds our pid while mapped", "[segment][users]") {
  const std::string name = unique_name("users");
  Cleanup cleanup(name);
  const int me = ::getpid();
  auto seg = Segment::create(name, spec_of(64), nullptr);
  CHECK(count_users(seg, me) == 1);
  {
    auto a = open_value(name);
    auto b = open_value(name);
    CHECK(count_users(seg, me) == 3);
    Segment moved = std::move(a);  // a move neither adds nor frees a slot
    CHECK(count_users(seg, me) == 3);
  }
  CHECK(count_users(seg, me) == 1);
  {
    // More mappings than slots: the rest are counted, nothing breaks.
    std::vector<Segment> many;
    for (std::size_t i = 0; i < sleet::detail::kMaxUsers + 8; ++i) many.push_back(open_value(name));
    CHECK(count_users(seg, me) == static_cast<int>(sleet::detail::kMaxUsers));
    CHECK(seg.header()->unrecorded_users.load() == 9);  // 1 + kMaxUsers + 8 handles
  }
  CHECK(count_users(seg, me) == 1);
  CHECK(seg.header()->unrecorded_users.load() == 0);
}

TEST_CASE("users slot of a dead process is reused", "[segment][users]") {
  const std::string name = unique_name("deaduser");
  Cleanup cleanup(name);
  auto seg = Segment::create(name, spec_of(64), nullptr);
  sleet::test::Child child([&] {
    auto mine = open_value(name);
    (void)mine;
    ::_exit(0);  // dies with the segment mapped: its slot stays behind
    return 0;
  });
  const int child_pid = child.pid();
  REQUIRE(child.wait() == 0);
  CHECK(count_users(seg, child_pid) == 1);  // stale, but recognisable as dead
  auto again = open_value(name);
  CHECK(count_users(seg, child_pid) == 0);  // reused
  CHECK(count_users(seg, ::getpid()) == 2);
}
