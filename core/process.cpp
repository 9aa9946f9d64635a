#include "sleet/detail/process.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace sleet::detail {

int g_current_pid = 0;

namespace {
void after_fork_in_child() noexcept { g_current_pid = static_cast<int>(::getpid()); }

// Registered once per process, before main() or at first use.
const bool g_atfork_registered = [] {
  ::pthread_atfork(nullptr, nullptr, &after_fork_in_child);
  g_current_pid = static_cast<int>(::getpid());
  return true;
}();
}  // namespace

int refresh_current_pid() noexcept {
  (void)g_atfork_registered;
  g_current_pid = static_cast<int>(::getpid());
  return g_current_pid;
}

bool pid_alive(int pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) == 0) return true;
  return errno != ESRCH;  // EPERM: it exists but belongs to someone else
}

}  // namespace sleet::detail
