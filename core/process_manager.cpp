// ProcessManager: the public API's lifecycle half (start, stop, restart,
// wait, run, status) and the manager's setup and teardown. Each lifecycle
// call is handed to the supervisor thread (call()), which owns every fork,
// kill and reap; the messaging half is in process_manager_channels.cpp.
#include "sleet/process_manager.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "process_manager_impl.hpp"
#include "sleet/detail/process.hpp"

namespace sleet {

using detail::describe_target;
using detail::throw_error;

std::string_view to_string(TargetState s) noexcept {
  switch (s) {
    case TargetState::stopped: return "stopped";
    case TargetState::running: return "running";
    case TargetState::restarting: return "restarting";
    case TargetState::exited: return "exited";
    case TargetState::failed: return "failed";
  }
  return "unknown";
}

namespace {

void validate_target_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= detail::kMaxTargetName &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                  });
  if (!ok) {
    throw_error(errc::invalid_name, describe_target(name),
                "target names are 1-100 characters of [A-Za-z0-9._-]");
  }
}

std::atomic<int> g_manager_count{0};

}  // namespace

// ---- Impl: setup and teardown ----

ProcessManager::Impl::Impl(ManagerOptions o) : options(std::move(o)) {
  manager_pid = ::getpid();
  ns = "pm-" + std::to_string(manager_pid) + "-" +
       std::to_string(g_manager_count.fetch_add(1, std::memory_order_relaxed));  // relaxed: a counter
  wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) detail::throw_errno(errno, "process manager", "eventfd");
  const std::string control_name = detail::control_channel_name(ns);
  try {
    ChannelOptions co;
    co.topology = Topology::mpmc;  // every child of this manager sends on it
    co.capacity = detail::kControlCapacity;
    co.max_message_size = detail::kControlMaxMessage;
    control = detail::ControlChannel::create(control_name, co);
    start_control();
  } catch (...) {
    detail::ControlChannel::remove(control_name);
    ::close(wake_fd);
    throw;
  }
  install_signal_handlers();
  supervisor = std::thread([this] { supervise(); });
  supervisor_id = supervisor.get_id();
}

ProcessManager::Impl::~Impl() {
  {
    std::lock_guard lock(mutex);
    shut_down = true;  // no control request or policy starts anything now
  }
  try {
    call([this] { end_all(); });
  } catch (...) {
    // end_all() reports nothing; a failing call() here cannot be helped.
  }
  stop_control();
  remove_signal_handlers();
  {
    std::lock_guard lock(mutex);
    quit = true;
  }
  wake();
  supervisor.join();
  for (auto& [name, t] : targets) {
    t->active.close();
    t->passive.close();
  }
  remove_channels();
  ::close(wake_fd);
}

ProcessManager::Impl::Target& ProcessManager::Impl::target(std::string_view name) const {
  const auto it = targets.find(name);
  if (it == targets.end()) {
    throw_error(errc::not_found, describe_target(std::string(name)), "no such target in this manager");
  }
  return *it->second;
}

ProcessManager::Impl::Target& ProcessManager::Impl::find(std::string_view name) const {
  std::lock_guard lock(mutex);
  return target(name);
}

void ProcessManager::Impl::add(const std::string& name, std::function<int()> fn,
                               std::vector<std::string> argv, const TargetOptions& options) {
  validate_target_name(name);
  if (!fn && argv.empty()) throw_error(errc::invalid_argument, describe_target(name), "empty command");
  if (options.backoff.count() < 0 || options.max_backoff < options.backoff ||
      options.stop_grace.count() < 0) {
    throw_error(errc::invalid_argument, describe_target(name),
                "backoff, max_backoff and stop_grace must be >= 0 and backoff <= max_backoff");
  }
  std::lock_guard lock(mutex);
  if (shut_down) throw_error(errc::closed, describe_target(name), "the manager has shut down");
  if (targets.count(name) != 0) throw_error(errc::already_exists, describe_target(name), "already added");
  auto t = std::make_unique<Target>();
  t->name = name;
  t->fn = std::move(fn);
  t->argv = std::move(argv);
  t->options = options;
  create_channels(*t);
  targets.emplace(name, std::move(t));
}

// ---- ProcessManager: lifecycle ----

ProcessManager::ProcessManager(ManagerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ProcessManager::~ProcessManager() = default;

void ProcessManager::add_target(const std::string& name, std::function<int()> fn,
                                const TargetOptions& options) {
  if (!fn) throw_error(errc::invalid_argument, describe_target(name), "empty function");
  impl_->add(name, std::move(fn), {}, options);
}

void ProcessManager::add_target(const std::string& name, std::vector<std::string> argv,
                                const TargetOptions& options) {
  if (argv.empty() || argv[0].empty()) throw_error(errc::invalid_argument, describe_target(name), "empty command");
  impl_->add(name, {}, std::move(argv), options);
}

void ProcessManager::start(const std::string& name) {
  impl_->call([this, &name] {
    Impl::Target* t;
    {
      std::lock_guard lock(impl_->mutex);
      if (impl_->shut_down) throw_error(errc::closed, describe_target(name), "the manager has shut down");
      t = &impl_->target(name);
      if (t->state == TargetState::running) return;
      t->restarts = 0;
    }
    impl_->spawn(*t);
  });
}

void ProcessManager::start_all() {
  for (const auto& name : targets()) start(name);
}

void ProcessManager::stop(const std::string& name, std::optional<std::chrono::milliseconds> grace) {
  impl_->call([this, &name, grace] {
    Impl::Target* t;
    {
      std::lock_guard lock(impl_->mutex);
      t = &impl_->target(name);
    }
    impl_->end(*t, grace.value_or(t->options.stop_grace));
  });
}

void ProcessManager::stop_all() {
  impl_->call([this] { impl_->end_all(); });
}

void ProcessManager::restart(const std::string& name) {
  impl_->call([this, &name] {
    Impl::Target* t;
    {
      std::lock_guard lock(impl_->mutex);
      if (impl_->shut_down) throw_error(errc::closed, describe_target(name), "the manager has shut down");
      t = &impl_->target(name);
      t->restarts = 0;
    }
    impl_->run_hook(impl_->options.hooks.before_restart, name);
    impl_->end(*t, t->options.stop_grace, TargetState::restarting);
    impl_->spawn(*t);
  });
}

bool ProcessManager::is_alive(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  const Impl::Target& t = impl_->target(name);
  return t.state == TargetState::running && detail::pid_alive(t.pid);
}

std::optional<int> ProcessManager::wait(const std::string& name) {
  bool timed_out = false;
  return wait_for(name, std::chrono::nanoseconds::max(), &timed_out);
}

std::optional<int> ProcessManager::wait_for(const std::string& name, std::chrono::nanoseconds timeout,
                                            bool* timed_out) {
  std::unique_lock lock(impl_->mutex);
  Impl::Target& t = impl_->target(name);
  auto ended = [&] {
    return t.state != TargetState::running && t.state != TargetState::restarting;
  };
  bool ok;
  if (timeout == std::chrono::nanoseconds::max()) {
    impl_->state_cv.wait(lock, ended);
    ok = true;
  } else {
    ok = impl_->state_cv.wait_for(lock, timeout, ended);
  }
  if (timed_out != nullptr) *timed_out = !ok;
  if (!ok) return std::nullopt;
  if (t.exit_code) return *t.exit_code;
  if (t.exit_signal) return 128 + *t.exit_signal;
  return std::nullopt;
}

void ProcessManager::run() {
  std::unique_lock lock(impl_->mutex);
  impl_->state_cv.wait(lock, [&] {
    if (impl_->shut_down) return true;
    return std::none_of(impl_->targets.begin(), impl_->targets.end(), [](const auto& kv) {
      return kv.second->state == TargetState::running || kv.second->state == TargetState::restarting;
    });
  });
}

TargetStatus ProcessManager::status(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  const Impl::Target& t = impl_->target(name);
  TargetStatus s;
  s.name = t.name;
  s.state = t.state;
  s.pid = t.pid;
  s.restarts = t.restarts;
  s.exit_code = t.exit_code;
  s.exit_signal = t.exit_signal;
  s.error = t.error;
  return s;
}

std::vector<std::string> ProcessManager::targets() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> names;
  for (const auto& [name, t] : impl_->targets) names.push_back(name);
  return names;
}

const std::string& ProcessManager::ns() const noexcept { return impl_->ns; }

}  // namespace sleet
