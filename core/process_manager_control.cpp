// ProcessManager: the control channel (process_control.hpp). Children send
// their stop/restart requests on "<ns>.control"; its dispatcher thread
// hands each to the supervisor as a task, which acts on it if it still
// applies (the target is running, and the asking pid is its current child).
//
// Why a dispatcher and not the supervisor's poll(): the channel wakes its
// readers with a futex, which poll() cannot wait on next to the pidfds.
// The hop costs only the control requests, never the active pipes' traffic.
#include <cstdio>

#include "process_manager_impl.hpp"

namespace sleet {

using detail::describe_target;

void ProcessManager::Impl::start_control() {
  control.on_receive([this](const detail::ControlRecord& record) {
    post_task([this, record] { handle_control(record, false); });
  });
}

void ProcessManager::Impl::stop_control() noexcept {
  // Drains and joins the dispatcher; requests it hands over now find the
  // manager shut down and are ignored.
  control.close();
}

void ProcessManager::Impl::handle_control(const detail::ControlRecord& record, bool own_pipe) {
  Target* t = nullptr;
  {
    std::lock_guard lock(mutex);
    const auto it = targets.find(record.target);
    if (it == targets.end()) {
      std::fprintf(stderr, "sleet: process manager %s: a control request for %s, which it does not have\n",
                   ns.c_str(), describe_target(record.target).c_str());
      return;
    }
    t = it->second.get();
    const ControlRequest& r = record.request;
    // From an earlier incarnation, from another process, or arriving after
    // the shutdown: ignored. On the target's own pipe a request may leave
    // the pid 0 (a Message built by hand).
    const bool ours = r.pid == t->pid || (own_pipe && r.pid == 0);
    if (shut_down || t->state != TargetState::running || !ours) return;
  }
  if (record.request.action == ControlRequest::Action::stop) {
    end(*t, t->options.stop_grace);
    return;
  }
  run_hook(options.hooks.before_restart, t->name);
  end(*t, t->options.stop_grace, TargetState::restarting);
  try {
    spawn(*t);
  } catch (const Error& e) {
    std::fprintf(stderr, "sleet: %s\n", e.what());
  }
}

}  // namespace sleet
