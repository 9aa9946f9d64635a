// Liveness of one object opened by many processes (detail/segment.hpp): the
// verdict is the kernel's flock, so it never overflows however many open
// it, and it follows their deaths exactly. The users table (28 entries plus
// an unrecorded count) is only what `sleet ls` shows.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <atomic>
#include <vector>

#include <catch2/catch.hpp>

#include <sleet/sleet.hpp>

#include "ipc/ipc_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::detail::Segment;
using sleet::detail::SegmentKind;
using sleet::detail::SegmentSpec;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::eventually;
using sleet::test::patience;
using sleet::test::SharedMemory;
using sleet::test::unique_name;

constexpr std::uint64_t kFp = 0x5e65'0000'0000'0100ull;

}  // namespace

TEST_CASE("users: 100 processes on one object: never stale while any lives, stale once all died",
          "[segment][users][ipc]") {
  constexpr int kProcesses = 100;
  const std::string name = unique_name("many");
  Cleanup cleanup(name);
  // Made and let go: the parent holds nothing its children could inherit.
  { (void)Segment::create(name, SegmentSpec{SegmentKind::value, 64, kFp, "many", 0600}, nullptr); }
  REQUIRE(sleet::inspect_object(name).stale);

  SharedMemory<std::atomic<int>> opened;
  std::vector<Child> kids;
  kids.reserve(kProcesses);
  for (int i = 0; i < kProcesses; ++i) {
    kids.emplace_back([&] {
      auto seg = Segment::open(name, SegmentKind::value, kFp, "many");
      opened->fetch_add(1, std::memory_order_release);  // release: after our lock is taken
      for (;;) ::pause();  // until SIGKILL
      return 0;
    });
  }
  REQUIRE(eventually([&] { return opened->load(std::memory_order_acquire) == kProcesses; },
                     patience(60000ms)));

  auto info = sleet::inspect_object(name);
  CHECK_FALSE(info.stale);
  CHECK(info.users.size() == sleet::detail::kMaxUsers);
  CHECK(info.unrecorded_users == kProcesses - sleet::detail::kMaxUsers);

  // The recorded ones die first: the table then names nobody alive while
  // 72 processes still use the object, which must not make it stale.
  const std::vector<int> recorded = info.users;
  std::vector<Child*> order;
  for (Child& kid : kids) {
    if (std::find(recorded.begin(), recorded.end(), kid.pid()) != recorded.end()) order.push_back(&kid);
  }
  for (Child& kid : kids) {
    if (std::find(recorded.begin(), recorded.end(), kid.pid()) == recorded.end()) order.push_back(&kid);
  }
  REQUIRE(order.size() == kids.size());
  int alive = kProcesses;
  int checks_not_stale = 0;
  for (Child* kid : order) {
    kid->kill(SIGKILL);
    REQUIRE(kid->wait() == 128 + SIGKILL);
    --alive;
    info = sleet::inspect_object(name);
    CAPTURE(alive);
    if (alive > 0) {
      CHECK_FALSE(info.stale);
      checks_not_stale += !info.stale;
    }
    if (alive == kProcesses - static_cast<int>(sleet::detail::kMaxUsers)) {
      CHECK(info.users.empty());  // the whole table is dead
    }
  }
  CHECK(checks_not_stale == kProcesses - 1);
  CHECK(info.stale);
  CHECK(info.users.empty());
  // The count of the dead unrecorded stays behind: display only.
  CHECK(info.unrecorded_users == kProcesses - sleet::detail::kMaxUsers);
  CHECK(sleet::remove_object(name, sleet::RemoveWhen::unused));
}
