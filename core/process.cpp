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
  t_current_tid = 0;  // the child's only thread has a new id
}

// False when /proc/<id>/stat is gone or says the task is a zombie (Z) or
// dead (X); true when it cannot tell.
bool proc_task_running(int id) noexcept {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", id);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return !(n < 0 && errno == ESRCH);  // ESRCH: it died since open()
  buf[n] = '\0';
  // The state follows the ")" that ends the command name.
  const char* paren = std::strrchr(buf, ')');
  if (paren == nullptr || paren[1] != ' ') return true;
  return paren[2] != 'Z' && paren[2] != 'X';
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

bool pid_alive(int pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;  // EPERM: exists, not ours
  // A zombie (dead, not yet reaped) still answers kill().
  return proc_task_running(pid);
}

bool thread_alive(int tid) noexcept {
  if (tid <= 0) return false;
  // kill() accepts any thread id, not only process ids; ESRCH is the only
  // answer that means gone (EPERM: exists, another user's).
  if (::kill(tid, 0) != 0 && errno == ESRCH) return false;
  // It exists; /proc/<tid> (which resolves thread ids too) tells a zombie.
  // A /proc that is missing or hides the task (hidepid) says "running".
  return proc_task_running(tid);
}

}  // namespace sleet::detail
