// ProcessManager: the supervisor thread. It owns every fork, kill and reap:
// it sleeps in poll() on its eventfd (tasks, signals, quit) and the running
// children's pidfds, runs the tasks other threads hand it (call(),
// post_task()), and then reaps and restarts what is due. Lifecycle hooks
// run here too, with calls back into the manager refused.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "process_manager_impl.hpp"

namespace sleet {

using detail::Clock;

void ProcessManager::Impl::wake() const noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd, &one, sizeof one);
}

void ProcessManager::Impl::post_task(std::function<void()> f) {
  {
    std::lock_guard lock(mutex);
    tasks.push_back(std::move(f));
  }
  wake();
}

void ProcessManager::Impl::call(std::function<void()> f) {
  if (std::this_thread::get_id() == supervisor_id) {
    if (in_hook) {
      detail::throw_error(errc::busy, "process manager",
                          "a lifecycle hook may not start, stop or restart targets");
    }
    f();
    return;
  }
  // The outcome travels back as values, not as an exception_ptr: the
  // caller builds its own Error (no exception object shared by threads).
  struct Outcome {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::optional<errc> code;
    std::string what;
  };
  auto outcome = std::make_shared<Outcome>();
  post_task([f = std::move(f), outcome] {
    std::optional<errc> code;
    std::string what;
    try {
      f();
    } catch (const Error& e) {
      code = e.value();
      what = e.detail();  // the caller's Error adds ": <code>" again
    } catch (const std::exception& e) {
      code = errc::system_error;
      what = e.what();
    }
    std::lock_guard lock(outcome->m);
    outcome->code = code;
    outcome->what = std::move(what);
    outcome->done = true;
    outcome->cv.notify_all();
  });
  std::unique_lock lock(outcome->m);
  outcome->cv.wait(lock, [&] { return outcome->done; });
  if (outcome->code) throw Error(*outcome->code, outcome->what);
}

void ProcessManager::Impl::supervise() {
  for (;;) {
    std::vector<pollfd> fds{{wake_fd, POLLIN, 0}};
    int timeout_ms = -1;
    bool have_tasks;
    {
      std::lock_guard lock(mutex);
      have_tasks = !tasks.empty();
      if (quit && !have_tasks) return;
      const auto now = Clock::now();
      auto at_most = [&](int ms) { timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms); };
      for (auto& [name, t] : targets) {
        if (t->state == TargetState::running) {
          if (t->pidfd >= 0) {
            fds.push_back({t->pidfd, POLLIN, 0});
          } else {
            at_most(detail::kNoPidfdPollMs);
          }
        } else if (t->state == TargetState::restarting) {
          const auto ms = std::chrono::ceil<std::chrono::milliseconds>(t->restart_at - now).count();
          at_most(static_cast<int>(std::clamp<long long>(ms, 0, detail::kMaxSupervisorSleepMs)));
        }
      }
    }
    if (!have_tasks) ::poll(fds.data(), fds.size(), timeout_ms);
    std::uint64_t counter;
    [[maybe_unused]] const auto n = ::read(wake_fd, &counter, sizeof counter);

    for (;;) {
      std::function<void()> task;
      {
        std::lock_guard lock(mutex);
        if (tasks.empty()) break;
        task = std::move(tasks.front());
        tasks.pop_front();
      }
      task();  // call() tasks catch their own exceptions; control tasks too
    }
    if (const auto sig = new_signal()) {
      bool down;
      {
        std::lock_guard lock(mutex);
        down = shut_down;
      }
      if (!down) on_signal(*sig);
    }
    reap_exited();
    restart_due();
  }
}

void ProcessManager::Impl::run_hook(const std::function<void(const std::string&)>& hook,
                                    const std::string& name) {
  if (!hook) return;
  in_hook = true;
  try {
    hook(name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sleet: %s: a lifecycle hook threw: %s\n",
                 detail::describe_target(name).c_str(), e.what());
  }
  in_hook = false;
}

}  // namespace sleet
