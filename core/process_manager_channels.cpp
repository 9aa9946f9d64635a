// ProcessManager: each target's channels, and the manager's side of them.
// send()/send_for() write the manager's end of the active pipe, post() the
// passive channel, and receive()/try_receive()/receive_for() read the
// active pipe directly, in the calling thread: no dispatcher, no second
// queue. A receive with nothing to read sleeps on the pipe's futex in
// slices of kReceiveStatePoll, looking at the target's state in between,
// so that it returns (or throws errc::peer_dead) once the child has ended
// and everything it sent has been read.
#include "process_manager_impl.hpp"

#include <algorithm>

namespace sleet {

using detail::Clock;
using detail::describe_target;

void ProcessManager::Impl::create_channels(Target& t) {
  ChannelOptions co;
  co.capacity = t.options.channel_capacity;
  co.max_message_size = t.options.max_message_size;
  const std::string active = ns + "." + t.name + "-active";
  const std::string passive = ns + "." + t.name + "-passive";
  auto ends = Pipe<Message>::create(active, co);  // end b is opened by the child
  t.active = std::move(ends.first);
  try {
    t.passive = Channel<Message>::create(passive, co);
  } catch (...) {
    Pipe<Message>::remove(active);
    throw;
  }
}

std::optional<Message> ProcessManager::Impl::receive(const std::string& name,
                                                     detail::Deadline deadline, bool throw_if_gone) {
  Target& t = find(name);
  std::lock_guard receiving(t.receive_mutex);
  for (;;) {
    std::optional<Message> m = t.active.try_receive();
    if (!m) {
      TargetState state;
      {
        std::lock_guard lock(mutex);
        state = t.state;
      }
      if (state != TargetState::running && state != TargetState::restarting) {
        // The child has been reaped, so everything it sent was published
        // before: one more look finds the last of it.
        m = t.active.try_receive();
        if (!m) {
          if (!throw_if_gone) return std::nullopt;
          detail::throw_error(errc::peer_dead, describe_target(name),
                              std::string("is ") + std::string(to_string(state)) + " and sent nothing more");
        }
      } else {
        const auto now = Clock::now();
        if (now >= deadline) return std::nullopt;
        const auto until = std::min(deadline, now + detail::kReceiveStatePoll);
        m = t.active.receive_for(until - now);
        if (!m) continue;
      }
    }
    if (m->control) {
      // A request a child put on its pipe itself (this_process sends them
      // on the control channel): acted on, never handed to user code.
      detail::ControlRecord record{t.name, *m->control};
      post_task([this, record] { handle_control(record, true); });
      continue;
    }
    return m;
  }
}

std::optional<std::pair<std::string, Message>> ProcessManager::Impl::receive_any(
    detail::Deadline deadline, bool throw_if_gone) {
  std::lock_guard any(any_mutex);
  for (;;) {
    std::vector<std::string> names;
    {
      std::lock_guard lock(mutex);
      for (const auto& [name, t] : targets) {
        if (std::find(any_names.begin(), any_names.end(), name) == any_names.end()) {
          any_set.add(t->active);  // id == position in any_names
          any_names.push_back(name);
        }
      }
      names = any_names;
    }
    if (names.empty()) {
      if (!throw_if_gone) return std::nullopt;
      detail::throw_error(errc::not_found, "process manager", "receive_any() with no targets");
    }
    bool any_alive = false;
    for (std::size_t k = 0; k < names.size(); ++k) {
      const std::string& name = names[(any_next + k) % names.size()];
      if (auto m = receive(name, Clock::now(), false)) {
        any_next = (any_next + k + 1) % names.size();
        return std::pair<std::string, Message>(name, std::move(*m));
      }
      std::lock_guard lock(mutex);
      const TargetState st = target(name).state;
      any_alive = any_alive || st == TargetState::running || st == TargetState::restarting;
    }
    if (!any_alive) {
      if (!throw_if_gone) return std::nullopt;
      detail::throw_error(errc::peer_dead, "process manager",
                          "receive_any(): no target is running and none sent anything more");
    }
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    // Sleeps on every pipe at once; the slice bounds how late an exit is seen.
    (void)any_set.wait_for(std::min<std::chrono::nanoseconds>(deadline - now, detail::kReceiveStatePoll));
  }
}

std::pair<std::string, Message> ProcessManager::receive_any() {
  return std::move(*impl_->receive_any(detail::kForever, true));
}

std::optional<std::pair<std::string, Message>> ProcessManager::receive_any_for(
    std::chrono::nanoseconds timeout) {
  return impl_->receive_any(detail::deadline_after(timeout), false);
}

void ProcessManager::send(const std::string& name, const Message& message) {
  Impl::Target& t = impl_->find(name);
  std::lock_guard sending(t.send_mutex);
  t.active.send(message);
}

bool ProcessManager::send_for(const std::string& name, const Message& message,
                              std::chrono::nanoseconds timeout) {
  Impl::Target& t = impl_->find(name);
  std::lock_guard sending(t.send_mutex);
  return t.active.send_for(message, timeout);
}

void ProcessManager::post(const std::string& name, const Message& message) {
  impl_->find(name).passive.send(message);  // mpmc: any thread
}

Message ProcessManager::receive(const std::string& name) {
  return std::move(*impl_->receive(name, detail::kForever, true));
}

std::optional<Message> ProcessManager::try_receive(const std::string& name) {
  return impl_->receive(name, Clock::now(), false);
}

std::optional<Message> ProcessManager::receive_for(const std::string& name,
                                                   std::chrono::nanoseconds timeout) {
  return impl_->receive(name, detail::deadline_after(timeout), false);
}

std::string ProcessManager::active_channel_name(const std::string& name) const {
  return std::string(impl_->find(name).active.name());
}

std::string ProcessManager::passive_channel_name(const std::string& name) const {
  return std::string(impl_->find(name).passive.name());
}

}  // namespace sleet
