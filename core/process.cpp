#include "sleet/detail/process.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sleet::detail {

std::atomic<int> g_current_pid{0};

namespace {
void after_fork_in_child() noexcept {
  g_current_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);  // relaxed: see header
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

bool pid_alive(int pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;  // EPERM: exists, not ours
  // A zombie (dead, not yet reaped) still answers kill(); its state in
  // /proc/<pid>/stat, after the ")" that ends the command name, says Z or X.
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;  // no /proc: trust kill()
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');
  if (paren == nullptr || paren[1] != ' ') return true;
  return paren[2] != 'Z' && paren[2] != 'X';
}

}  // namespace sleet::detail
