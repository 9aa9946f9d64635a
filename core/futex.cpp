#include "sleet/detail/futex.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>

namespace sleet::detail {

namespace {
#ifdef FUTEX_WAITV_MAX
constexpr std::size_t kFutexWaitvMax = FUTEX_WAITV_MAX;
#else
constexpr std::size_t kFutexWaitvMax = 128;
#endif
}  // namespace

bool g_light_fence = false;

void yield_cpu() noexcept { ::sched_yield(); }

namespace {

// atomic: heavy_fence() may clear it from several threads at once.
std::atomic<bool> g_membarrier_supported{false};

long membarrier(int cmd) noexcept { return ::syscall(SYS_membarrier, cmd, 0u, 0); }

bool register_membarrier() noexcept {
  return membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
}

void reregister_in_child() noexcept {
  // The registration belongs to the address space; make sure the child of a
  // fork() has it before it publishes anything with a light fence.
  if (g_light_fence && !register_membarrier()) g_light_fence = false;
}

const bool g_fences_initialised = [] {
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  const bool supported = cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
  // relaxed: written before main() or under the static-init guard.
  g_membarrier_supported.store(supported, std::memory_order_relaxed);
  const char* opt_out = std::getenv("SLEET_NO_MEMBARRIER");
  const bool wanted = opt_out == nullptr || opt_out[0] == '\0' || opt_out[0] == '0';
  g_light_fence = supported && wanted && register_membarrier();
  ::pthread_atfork(nullptr, nullptr, &reregister_in_child);
  return true;
}();

}  // namespace

bool asymmetric_fences() noexcept { return g_light_fence; }

void heavy_fence() noexcept {
  // relaxed: a flag only; the syscall itself is the barrier.
  if (g_membarrier_supported.load(std::memory_order_relaxed) &&
      membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0) {
    g_membarrier_supported.store(false, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                Deadline deadline) noexcept {
  timespec ts{};
  const timespec* tsp = nullptr;
  if (deadline != kForever) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        deadline.time_since_epoch())
                        .count();
    if (ns <= 0) return false;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout.
  const long rc = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET,
                            expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  return !(rc != 0 && errno == ETIMEDOUT);
}

WaitvResult futex_waitv(const FutexWaitItem* items, std::size_t count, Deadline deadline) noexcept {
#ifdef SYS_futex_waitv
  struct futex_waitv w[kFutexWaitvMax];
  if (count > kFutexWaitvMax) count = kFutexWaitvMax;
  for (std::size_t i = 0; i < count; ++i) {
    w[i] = {};
    w[i].val = items[i].expected;
    w[i].uaddr = reinterpret_cast<std::uintptr_t>(items[i].word);
    w[i].flags = FUTEX_32;  // shared: never FUTEX_PRIVATE_FLAG (the words live in segments)
  }
  timespec ts{};
  const timespec* tsp = nullptr;
  if (deadline != kForever) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    if (ns <= 0) return WaitvResult::timeout;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  // The timeout is absolute on the clock named last (CLOCK_MONOTONIC).
  const long rc = ::syscall(SYS_futex_waitv, w, static_cast<unsigned>(count), 0u, tsp, CLOCK_MONOTONIC);
  if (rc >= 0) return WaitvResult::woken;
  if (errno == ETIMEDOUT) return WaitvResult::timeout;
  if (errno == ENOSYS) return WaitvResult::unsupported;
  return WaitvResult::woken;  // EAGAIN (a word had changed), EINTR: the caller re-checks
#else
  (void)items;
  (void)count;
  (void)deadline;
  return WaitvResult::unsupported;
#endif
}

void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr,
            0);
}

void EventWords::wake() const noexcept {
  // release: a waiter that reads the new epoch (acquire, (2) in wait_event)
  // also sees the publication that preceded this notify.
  epoch->fetch_add(1, std::memory_order_release);
  futex_wake(epoch, INT_MAX);
}

}  // namespace sleet::detail
