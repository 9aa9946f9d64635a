// ProcessManager: how children end. Reaping an exit (record_exit), what
// the restart policy makes of it (apply_policy: exited, failed, or a
// restart after a doubling backoff), restarts that have come due, and the
// manager's own stops: end() for one child (SIGTERM, the grace period,
// SIGKILL), end_all() for every child under one grace period.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "process_manager_impl.hpp"

namespace sleet {

using detail::Clock;
using detail::describe_target;

namespace {

// "exit code 3" / "signal 9 (Killed)"
std::string describe_exit(const std::optional<int>& code, const std::optional<int>& sig) {
  if (code) return "exit code " + std::to_string(*code);
  if (sig) return "signal " + std::to_string(*sig) + " (" + ::strsignal(*sig) + ")";
  return "no exit status";
}

}  // namespace

void ProcessManager::Impl::record_exit(Target& t, std::optional<int> wait_status) {
  std::lock_guard lock(mutex);
  if (t.pidfd >= 0) ::close(t.pidfd);
  t.pidfd = -1;
  t.pid = 0;
  t.exit_code.reset();
  t.exit_signal.reset();
  if (!wait_status) {
    t.error = "its exit status was taken by someone else (is SIGCHLD ignored?)";
    return;
  }
  if (WIFEXITED(*wait_status)) t.exit_code = WEXITSTATUS(*wait_status);
  if (WIFSIGNALED(*wait_status)) t.exit_signal = WTERMSIG(*wait_status);
}

// Decides what happens after an exit the manager did not cause.
void ProcessManager::Impl::apply_policy(Target& t) {
  {
    std::lock_guard lock(mutex);
    const bool failure = !(t.exit_code && *t.exit_code == 0);
    const RestartPolicy p = t.options.restart;
    if (Clock::now() - t.started_at >= t.options.reset_after) t.restarts = 0;  // it had settled
    const bool again = !shut_down && (p == RestartPolicy::always ||
                                      (p == RestartPolicy::on_failure && failure));
    if (!again) {
      t.state = TargetState::exited;
    } else if (t.restarts >= t.options.max_restarts) {
      t.state = TargetState::failed;
      t.error = "gave up after " + std::to_string(t.restarts) + " restarts (last: " +
                describe_exit(t.exit_code, t.exit_signal) + ")";
      std::fprintf(stderr, "sleet: %s: %s\n", describe_target(t.name).c_str(), t.error.c_str());
    } else {
      auto delay = t.options.backoff;
      for (unsigned i = 0; i < t.restarts && delay < t.options.max_backoff; ++i) delay *= 2;
      t.state = TargetState::restarting;
      t.restart_at = Clock::now() + std::min(delay, t.options.max_backoff);
    }
  }
  state_cv.notify_all();
}

void ProcessManager::Impl::reap_exited() {
  std::vector<Target*> running;
  {
    std::lock_guard lock(mutex);
    for (auto& [name, t] : targets) {
      if (t->state == TargetState::running) running.push_back(t.get());
    }
  }
  for (Target* t : running) {
    int status = 0;
    const pid_t r = ::waitpid(t->pid, &status, WNOHANG);
    if (r == 0) continue;
    record_exit(*t, r < 0 ? std::nullopt : std::optional<int>(status));  // r < 0: ECHILD
    apply_policy(*t);
  }
}

void ProcessManager::Impl::restart_due() {
  std::vector<Target*> due;
  {
    std::lock_guard lock(mutex);
    const auto now = Clock::now();
    for (auto& [name, t] : targets) {
      if (t->state == TargetState::restarting && t->restart_at <= now) due.push_back(t.get());
    }
  }
  for (Target* t : due) {
    run_hook(options.hooks.before_restart, t->name);
    {
      std::lock_guard lock(mutex);
      ++t->restarts;
    }
    try {
      spawn(*t);
    } catch (const Error& e) {
      std::fprintf(stderr, "sleet: %s\n", e.what());
      std::lock_guard lock(mutex);
      if (t->state == TargetState::restarting) t->state = TargetState::stopped;  // shut down
    }
  }
}

// SIGTERM, up to `grace` for it to go, then SIGKILL; reaps it. `after` is
// `restarting` when a start follows at once, so that receive() does not
// take the child for gone in between.
void ProcessManager::Impl::end(Target& t, std::chrono::milliseconds grace, TargetState after) {
  pid_t pid;
  {
    std::lock_guard lock(mutex);
    if (t.state == TargetState::restarting) {
      t.state = TargetState::stopped;
      state_cv.notify_all();
      return;
    }
    if (t.state != TargetState::running || t.pid <= 0) return;
    t.stopping = true;
    pid = t.pid;  // read before the hook runs
  }
  run_hook(options.hooks.before_shutdown, t.name);
  ::kill(pid, SIGTERM);
  const auto deadline = Clock::now() + grace;
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, WNOHANG)) == 0) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      r = ::waitpid(pid, &status, 0);
      break;
    }
    if (t.pidfd >= 0) {
      pollfd p{t.pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, detail::kEndPollMaxMs)));
    } else {
      std::this_thread::sleep_for(detail::kReapPoll);
    }
  }
  record_exit(t, r < 0 ? std::nullopt : std::optional<int>(status));
  {
    std::lock_guard lock(mutex);
    t.state = after;
    t.restart_at = Clock::now();
    t.stopping = false;
  }
  state_cv.notify_all();
}

// Every child at once: SIGTERM to all, one grace period, SIGKILL to the rest.
void ProcessManager::Impl::end_all() {
  std::vector<Target*> all;
  {
    std::lock_guard lock(mutex);
    for (auto& [name, t] : targets) all.push_back(t.get());
  }
  std::chrono::milliseconds grace{0};
  std::vector<std::pair<Target*, pid_t>> running;
  for (Target* t : all) {
    pid_t pid = 0;
    {
      std::lock_guard lock(mutex);
      if (t->state == TargetState::restarting) t->state = TargetState::stopped;
      if (t->state == TargetState::running && t->pid > 0) {
        t->stopping = true;
        pid = t->pid;  // read before the hook runs
      }
    }
    if (pid == 0) continue;
    run_hook(options.hooks.before_shutdown, t->name);
    ::kill(pid, SIGTERM);
    grace = std::max(grace, t->options.stop_grace);
    running.emplace_back(t, pid);
  }
  const auto deadline = Clock::now() + grace;
  while (!running.empty()) {
    const bool late = Clock::now() >= deadline;
    for (auto it = running.begin(); it != running.end();) {
      const auto [t, pid] = *it;
      int status = 0;
      if (late) ::kill(pid, SIGKILL);
      const pid_t r = ::waitpid(pid, &status, late ? 0 : WNOHANG);
      if (r == 0) {
        ++it;
        continue;
      }
      record_exit(*t, r < 0 ? std::nullopt : std::optional<int>(status));
      {
        std::lock_guard lock(mutex);
        t->state = TargetState::stopped;
        t->stopping = false;
      }
      it = running.erase(it);
    }
    if (!running.empty()) std::this_thread::sleep_for(detail::kReapPoll);
  }
  state_cv.notify_all();
}

}  // namespace sleet
