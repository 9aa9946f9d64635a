// this_process: the identity a ProcessManager put in our environment.
#include "sleet/this_process.hpp"

#include <cstdlib>
#include <memory>
#include <mutex>

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
  std::unique_ptr<Pipe<Message>> active;
  std::unique_ptr<Channel<Message>> passive;
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
  if (pid == nullptr || name == nullptr || active == nullptr || passive == nullptr) return nullptr;
  if (std::atoi(pid) != me) return nullptr;  // a descendant of a managed process
  auto* id = new Identity;  // lives until the process ends
  id->pid = me;
  id->name = name;
  id->active_name = active;
  id->passive_name = passive;
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

void request(ControlRequest::Action action, std::string reason, const char* what) {
  Message m("sleet.control");
  m.control = ControlRequest{action, std::move(reason), detail::current_pid()};
  Pipe<Message>* active;
  {
    std::lock_guard lock(g_mutex);
    active = &active_locked(identity(what));
  }
  active->send(m);
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
