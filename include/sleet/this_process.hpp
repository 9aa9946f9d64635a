// sleet/this_process.hpp — a managed child's view of itself.
//
//   // in a process started by a ProcessManager (fork or exec):
//   auto& active = sleet::this_process::active_channel();     // Pipe<Message>, our end
//   for (const sleet::Message& m : active) active.send(handle(m));
//   sleet::this_process::passive_channel().on_receive(
//       [](const sleet::Message& m) { reload(); },
//       [](const sleet::Message& m) { return m.topic == "reload"; });
//   sleet::this_process::request_restart("config changed");   // the manager restarts us
//
// The identity comes from the environment the manager set (process_manager.hpp).
// It belongs to the process the manager started: a process that merely
// inherited the variables (a grandchild) is not managed. In a process no
// manager started, name(), active_channel(), passive_channel() and the
// requests throw errc::not_managed. The channels are opened on first use and
// live until the process ends.
#pragma once

#include <string>

#include "sleet/channel.hpp"
#include "sleet/message.hpp"
#include "sleet/pipe.hpp"

namespace sleet::this_process {

bool managed() noexcept;
const std::string& name();
Pipe<Message>& active_channel();
Channel<Message>& passive_channel();
// Ask the manager to stop / restart this process: a request on the
// manager's control channel (mpmc, not the active pipe), so any thread may
// call these at any time, also while another thread sends on
// active_channel(). The manager answers with SIGTERM (then SIGKILL after
// the target's grace period); the restart policy does not apply to a
// requested stop. A reason is cut to 1024 bytes. They return once the
// request is queued (blocking while the control channel is full).
void request_stop(std::string reason = {});
void request_restart(std::string reason = {});

}  // namespace sleet::this_process
