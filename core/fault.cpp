// The test-only fault points (sleet/detail/fault.hpp).
#include "sleet/detail/fault.hpp"

#if defined(SLEET_FAULT_INJECTION)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#endif

namespace sleet::detail::fault {

#if defined(SLEET_FAULT_INJECTION)

std::atomic<bool> g_armed{false};

namespace {

struct Armed {
  char point[32] = {};
  std::uint64_t nth = 0;
  std::atomic<std::uint64_t> hits{0};
};
Armed g_point;
std::mutex g_arm_mutex;  // arm() against arm(); arm before the threads that hit the point start

void arm_locked(std::string_view point, std::uint64_t nth) noexcept {
  // relaxed: g_armed is cleared first and set (release) last, so a
  // concurrent hit() sees either no point or a complete one.
  g_armed.store(false, std::memory_order_relaxed);
  const std::size_t n = std::min(point.size(), sizeof g_point.point - 1);
  std::memcpy(g_point.point, point.data(), n);
  g_point.point[n] = '\0';
  g_point.nth = nth == 0 ? 1 : nth;
  g_point.hits.store(0, std::memory_order_relaxed);
  // release: pairs with the acquire in hit().
  g_armed.store(true, std::memory_order_release);
}

// SLEET_FAULT="point:nth" arms a point in an exec'd program.
[[maybe_unused]] const bool g_from_env = [] {
  const char* v = std::getenv("SLEET_FAULT");
  if (v == nullptr || *v == '\0') return false;
  const std::string s(v);
  const auto colon = s.rfind(':');
  const std::uint64_t nth = colon == std::string::npos ? 1 : std::strtoull(s.c_str() + colon + 1, nullptr, 10);
  arm_locked(std::string_view(s).substr(0, colon), nth);
  return true;
}();

}  // namespace

void hit(std::string_view point) noexcept {
  // acquire: pairs with the release in arm_locked(): the name is complete.
  if (!g_armed.load(std::memory_order_acquire) || point != g_point.point) return;
  // relaxed: a counter; only its value matters.
  if (g_point.hits.fetch_add(1, std::memory_order_relaxed) + 1 != g_point.nth) return;
  ::kill(::getpid(), SIGKILL);
  for (;;) ::pause();  // SIGKILL is delivered before kill() returns to user code
}

void arm(std::string_view point, std::uint64_t nth) noexcept {
  std::lock_guard<std::mutex> lock(g_arm_mutex);
  arm_locked(point, nth);
}

void disarm() noexcept {
  std::lock_guard<std::mutex> lock(g_arm_mutex);
  g_armed.store(false, std::memory_order_relaxed);  // relaxed: hits after this may still count; harmless
}

#else

void arm(std::string_view, std::uint64_t) noexcept {}
void disarm() noexcept {}

#endif

}  // namespace sleet::detail::fault
