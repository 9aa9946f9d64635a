#include "sleet/detail/process.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sleet::detail {

std::atomic<int> g_current_pid{0};

namespace {
// 0 until first use; atomic for the same reason as g_current_pid.
std::atomic<std::uint64_t> g_current_identity{0};

void after_fork_in_child() noexcept {
  g_current_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);  // relaxed: see header
  g_current_identity.store(0, std::memory_order_relaxed);  // relaxed: recomputed on first use
  t_current_tid = 0;  // the child's only thread has a new id
  t_thread_identity = 0;
}

// What /proc/<id>/stat says about a task.
struct ProcStat {
  enum { gone, running, dead, unknown } state;
  std::uint64_t start_ticks;  // field 22, valid when running or dead
};

ProcStat read_proc_stat(int id) noexcept {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", id);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {errno == ENOENT ? ProcStat::gone : ProcStat::unknown, 0};
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return {n < 0 && errno == ESRCH ? ProcStat::gone : ProcStat::unknown, 0};  // ESRCH: died since open()
  buf[n] = '\0';
  // The state follows the ")" that ends the command name (which may hold
  // spaces and parentheses itself); the start time is the 20th field after it.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return {ProcStat::unknown, 0};
  const bool zombie = p[2] == 'Z' || p[2] == 'X';
  p += 2;  // field 3, the state
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return {zombie ? ProcStat::dead : ProcStat::unknown, 0};
    ++p;
  }
  const std::uint64_t start = std::strtoull(p, nullptr, 10);
  return {zombie ? ProcStat::dead : ProcStat::running, start};
}

// False when /proc/<id>/stat is gone or says the task is a zombie (Z) or
// dead (X); true when it cannot tell.
bool proc_task_running(int id) noexcept {
  const ProcStat s = read_proc_stat(id);
  return s.state == ProcStat::running || s.state == ProcStat::unknown;
}

std::uint64_t make_identity(int pid, std::uint64_t start_ticks) noexcept {
  return static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) << 32 |
         (start_ticks & 0xFFFFFFFFu);
}

// Registered once per process, before main() or at first use.
const bool g_atfork_registered = [] {
  ::pthread_atfork(nullptr, nullptr, &after_fork_in_child);
  g_current_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
  return true;
}();
}  // namespace

int refresh_current_pid() noexcept {
  (void)g_atfork_registered;
  const int pid = static_cast<int>(::getpid());
  g_current_pid.store(pid, std::memory_order_relaxed);  // relaxed: see header
  return pid;
}

int refresh_current_tid() noexcept {
  t_current_tid = static_cast<int>(::gettid());
  return t_current_tid;
}

std::uint64_t identity_of(int pid) noexcept {
  const ProcStat s = read_proc_stat(pid);
  return make_identity(pid, s.state == ProcStat::running ? s.start_ticks : 0);
}

// An identity whose start time could not be read (start 0: /proc hidden or
// out of file descriptors) is not cached: the next call reads again, so a
// passing failure does not leave us with an identity others judge dead.
namespace {
constexpr bool complete(std::uint64_t identity) noexcept { return (identity & 0xFFFFFFFFu) != 0; }
}  // namespace

std::uint64_t refresh_thread_identity() noexcept {
  const std::uint64_t id = identity_of(refresh_current_tid());
  if (complete(id)) t_thread_identity = id;
  return id;
}

bool pid_alive(int pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;  // EPERM: exists, not ours
  // A zombie (dead, not yet reaped) still answers kill().
  return proc_task_running(pid);
}

std::uint64_t current_identity() noexcept {
  // relaxed: a cache of a value every thread computes the same.
  std::uint64_t id = g_current_identity.load(std::memory_order_relaxed);
  if (SLEET_LIKELY(id != 0)) return id;
  id = identity_of(refresh_current_pid());
  if (complete(id)) g_current_identity.store(id, std::memory_order_relaxed);
  return id;
}

bool identity_alive(std::uint64_t identity) noexcept {
  const int pid = identity_pid(identity);
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  const ProcStat s = read_proc_stat(pid);
  switch (s.state) {
    case ProcStat::gone:
    case ProcStat::dead: return false;
    // An identity recorded without its start time (its owner could not
    // read /proc) is judged by the pid alone.
    case ProcStat::running: return !complete(identity) || make_identity(pid, s.start_ticks) == identity;
    case ProcStat::unknown: break;
  }
  return true;  // /proc cannot tell; kill() says the pid exists
}

}  // namespace sleet::detail
