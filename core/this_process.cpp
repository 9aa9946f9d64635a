// this_process: the identity a ProcessManager put in our environment.
#include "sleet/this_process.hpp"

#include <cstdlib>
#include <memory>
#include <mutex>

#include "process_control.hpp"
#include "process_env.hpp"
#include "sleet/detail/process.hpp"
#include "system.hpp"

namespace sleet::this_process {

namespace {

struct Identity {
  int pid = 0;  // the process the identity belongs to
  std::string name;
  std::string active_name;
  std::string passive_name;
  std::string control_name;
  std::unique_ptr<Pipe<Message>> active;
  std::unique_ptr<Channel<Message>> passive;
  std::unique_ptr<detail::ControlChannel> control;  // mpmc: shared by our threads
};

std::mutex g_mutex;
Identity* g_identity = nullptr;  // of the process in g_identity->pid

// The identity of this process, or nullptr. Caller holds g_mutex.
Identity* identity_locked() {
  const int me = detail::current_pid();
  if (g_identity != nullptr && g_identity->pid == me) return g_identity;
  // Inherited through fork() from another process: not ours. Its channels
  // belong to that process; leaving them mapped here costs nothing.
  g_identity = nullptr;
  const char* pid = std::getenv(detail::kEnvProcessPid);
  const char* name = std::getenv(detail::kEnvProcessName);
  const char* active = std::getenv(detail::kEnvActiveChannel);
  const char* passive = std::getenv(detail::kEnvPassiveChannel);
  const char* control = std::getenv(detail::kEnvControlChannel);
  if (pid == nullptr || name == nullptr || active == nullptr || passive == nullptr || control == nullptr) {
    return nullptr;
  }
  if (std::atoi(pid) != me) return nullptr;  // a descendant of a managed process
  auto* id = new Identity;  // lives until the process ends
  id->pid = me;
  id->name = name;
  id->active_name = active;
  id->passive_name = passive;
  id->control_name = control;
  g_identity = id;
  return id;
}

Identity& identity(const char* what) {
  Identity* id = identity_locked();
  if (id == nullptr) {
    detail::throw_error(errc::not_managed, "this_process",
                        std::string(what) + ": this process was not started by a sleet ProcessManager");
  }
  return *id;
}

Pipe<Message>& active_locked(Identity& id) {
  if (!id.active) id.active = std::make_unique<Pipe<Message>>(Pipe<Message>::open(id.active_name, End::b));
  return *id.active;
}

// On the manager's control channel (process_control.hpp), not on the
// active pipe: any thread may ask, whatever the others are sending.
void request(ControlRequest::Action action, std::string reason, const char* what) {
  if (reason.size() > detail::kMaxControlReason) reason.resize(detail::kMaxControlReason);
  detail::ControlChannel* control;
  detail::ControlRecord record;
  {
    std::lock_guard lock(g_mutex);
    Identity& id = identity(what);
    if (!id.control) {
      id.control = std::make_unique<detail::ControlChannel>(detail::ControlChannel::open(id.control_name));
    }
    control = id.control.get();
    record.target = id.name;
  }
  record.request = ControlRequest{action, std::move(reason), detail::current_pid()};
  control->send(record);
}

}  // namespace

bool managed() noexcept {
  std::lock_guard lock(g_mutex);
  try {
    return identity_locked() != nullptr;
  } catch (...) {
    return false;
  }
}

const std::string& name() {
  std::lock_guard lock(g_mutex);
  return identity("name()").name;
}

Pipe<Message>& active_channel() {
  std::lock_guard lock(g_mutex);
  return active_locked(identity("active_channel()"));
}

Channel<Message>& passive_channel() {
  std::lock_guard lock(g_mutex);
  Identity& id = identity("passive_channel()");
  if (!id.passive) {
    id.passive = std::make_unique<Channel<Message>>(Channel<Message>::open(id.passive_name));
  }
  return *id.passive;
}

void request_stop(std::string reason) {
  request(ControlRequest::Action::stop, std::move(reason), "request_stop()");
}

void request_restart(std::string reason) {
  request(ControlRequest::Action::restart, std::move(reason), "request_restart()");
}

}  // namespace sleet::this_process
