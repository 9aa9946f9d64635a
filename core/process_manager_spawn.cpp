// ProcessManager: starting a child. Everything the child needs (argv, its
// environment with the identity variables) is built before fork(), because
// the child of a multi-threaded process may not allocate or take locks;
// then fork, and in the child either run fn and _exit, or exec (an exec
// failure travels back through a close-on-exec pipe, so start() can throw).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "process_env.hpp"
#include "process_manager_impl.hpp"

namespace sleet {

using detail::Clock;
using detail::describe_target;

namespace {

int open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Room for the decimal pid in SLEET_PROCESS_PID, written by the child.
constexpr std::size_t kPidDigits = 24;

// The environment of a child: ours, with the identity variables set. The
// pid is written into its variable by the child itself, in place.
struct ChildEnvironment {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  std::size_t pid_entry = 0;  // index of "SLEET_PROCESS_PID=" + room for digits

  ChildEnvironment(const std::string& name, const std::string& active, const std::string& passive,
                   const std::string& control) {
    const std::pair<std::string, std::string> ours[] = {
        {detail::kEnvProcessName, name},
        {detail::kEnvActiveChannel, active},
        {detail::kEnvPassiveChannel, passive},
        {detail::kEnvControlChannel, control},
        {detail::kEnvProcessPid, std::string(kPidDigits, '\0')},  // last: pid_entry
    };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string_view var(*e);
      const bool replaced = std::any_of(std::begin(ours), std::end(ours), [&](const auto& o) {
        const std::string& key = o.first;
        return var.size() > key.size() && var.compare(0, key.size(), key) == 0 && var[key.size()] == '=';
      });
      if (!replaced) strings.emplace_back(var);
    }
    for (const auto& [key, value] : ours) strings.push_back(key + "=" + value);
    pid_entry = strings.size() - 1;
    for (auto& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  // In the child: the decimal pid after the '=' (no allocation).
  void set_pid(pid_t pid) noexcept {
    char* at = pointers[pid_entry] + std::strlen(detail::kEnvProcessPid) + 1;
    char digits[kPidDigits];
    int n = 0;
    for (auto v = static_cast<unsigned long>(pid); n == 0 || v != 0; v /= 10) {
      digits[n++] = static_cast<char>('0' + v % 10);
    }
    for (int i = 0; i < n; ++i) at[i] = digits[n - 1 - i];
    at[n] = '\0';
  }
};

}  // namespace

void ProcessManager::Impl::spawn(Target& t) {
  {
    std::lock_guard lock(mutex);
    if (shut_down) detail::throw_error(errc::closed, describe_target(t.name), "the manager has shut down");
  }
  run_hook(options.hooks.before_start, t.name);
  // Everything the child needs, prepared before fork().
  std::vector<char*> argv;
  for (auto& a : t.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  ChildEnvironment env(t.name, std::string(t.active.name()), std::string(t.passive.name()),
                       std::string(control.name()));
  auto fail = [&](const std::string& why) {
    {
      std::lock_guard lock(mutex);
      t.state = TargetState::failed;
      t.pid = 0;
      t.error = why;
    }
    state_cv.notify_all();
  };
  int status_pipe[2] = {-1, -1};
  if (!t.argv.empty() && ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    fail(std::string("pipe2: ") + std::strerror(err));
    detail::throw_error(errc::child_failed, describe_target(t.name), t.error);
  }
  // Signals stay blocked across fork() until the child has reset the
  // manager's handlers: a SIGTERM must not run them in the child.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (status_pipe[0] >= 0) ::close(status_pipe[0]), ::close(status_pipe[1]);
    fail(std::string("fork: ") + std::strerror(err));
    detail::throw_error(errc::child_failed, describe_target(t.name), t.error);
  }
  if (pid == 0) {
    // The child. Ends with the manager (the supervisor thread that forked it).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != manager_pid) ::_exit(detail::kExitOrphan);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGINT, &dfl, nullptr);
    ::sigaction(SIGTERM, &dfl, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    env.set_pid(::getpid());
    if (!t.argv.empty()) {
      ::close(status_pipe[0]);
      ::execvpe(argv[0], argv.data(), env.pointers.data());
      const int err = errno;
      [[maybe_unused]] const auto n = ::write(status_pipe[1], &err, sizeof err);
      ::_exit(detail::kExitExecFailed);
    }
    environ = env.pointers.data();
    int rc = detail::kExitUncaught;
    try {
      rc = t.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sleet: %s: uncaught exception: %s\n", describe_target(t.name).c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "sleet: %s: uncaught exception\n", describe_target(t.name).c_str());
    }
    std::fflush(nullptr);
    ::_exit(rc >= 0 && rc <= 255 ? rc : 255);  // an exit status is one byte: 256 is not success
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!t.argv.empty()) {
    ::close(status_pipe[1]);
    int err = 0;
    ssize_t got;
    do {
      got = ::read(status_pipe[0], &err, sizeof err);
    } while (got < 0 && errno == EINTR);
    ::close(status_pipe[0]);
    if (got == static_cast<ssize_t>(sizeof err)) {  // exec failed; the child exits 127
      int st = 0;
      ::waitpid(pid, &st, 0);
      {
        std::lock_guard lock(mutex);
        t.state = TargetState::failed;
        t.pid = 0;
        t.exit_code = detail::kExitExecFailed;
        t.exit_signal.reset();
        t.error = "exec '" + t.argv[0] + "': " + std::strerror(err);
      }
      state_cv.notify_all();
      throw Error(err == ENOENT ? errc::not_found : errc::child_failed,
                  describe_target(t.name) + ": " + t.error);
    }
  }
  {
    std::lock_guard lock(mutex);
    t.pid = pid;
    t.pidfd = open_pidfd(pid);
    t.started_at = Clock::now();
    t.state = TargetState::running;
    t.stopping = false;
    t.error.clear();
  }
  state_cv.notify_all();
  if (options.hooks.after_start) {
    try {
      options.hooks.after_start(t.name, pid);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sleet: %s: a lifecycle hook threw: %s\n", describe_target(t.name).c_str(), e.what());
    }
  }
}

}  // namespace sleet
