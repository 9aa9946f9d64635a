// sleet/process_manager.hpp — ProcessManager: starts named child processes,
// each with its own pair of channels, and keeps them running.
//
//   sleet::ProcessManager pm;
//   pm.add_target("resizer", [] {                        // a fork that runs the function
//     auto& in = sleet::this_process::active_channel();
//     for (const sleet::Message& m : in) in.send(sleet::Message("done").set("path", *m.get<std::string>("path")));
//     return 0;
//   }, {.restart = sleet::RestartPolicy::on_failure});
//   pm.add_target("indexer", {"/usr/bin/indexer", "--fast"});   // exec'd
//   pm.start_all();
//   pm.send("resizer", sleet::Message("job").set("path", "/tmp/a.png"));
//   sleet::Message reply = pm.receive("resizer");
//   pm.post("indexer", sleet::Message("reload"));         // to its passive channel
//   pm.run();                                             // until SIGINT/SIGTERM or all ended
//
// Channels. Every target gets two, created before its first start and kept
// across restarts, under a namespace unique to this manager
// ("pm-<manager pid>-<n>"), so two managers never collide:
//   <ns>.<name>-active   Pipe<Message>: the conversation. The manager holds
//                        end a (send(), receive()), the child end b
//                        (this_process::active_channel()). A pipe rather
//                        than one channel, so neither side can take its own
//                        messages back.
//   <ns>.<name>-passive  Channel<Message> (mpmc): things for the child to
//                        handle with on_receive(handler, filter)
//                        (this_process::passive_channel()); the manager and
//                        any other process may post() to it.
// and the manager has one more, for all its children:
//   <ns>.control         mpmc channel of stop/restart requests
//                        (this_process::request_stop/request_restart), each
//                        naming its target and the asking pid.
//
// The fast path. receive(name), try_receive and receive_for read the
// manager's end of the active pipe in the calling thread: a reply costs
// what a bare Pipe<Message> receive costs plus a map lookup and two
// uncontended locks (no dispatcher thread, no second queue). send() and
// receive() each hold a per-target lock around their side of the pipe
// (each side is spsc), so any thread may call them. A receive with nothing
// to read sleeps on the pipe's futex, waking every 10 ms to look at the
// target's state: once the child has ended and everything it sent has been
// read, receive() throws errc::peer_dead and the others return nullopt.
// While a target is restarting they keep waiting for the next child.
//
// Restarts and delivery. The pipe outlives the child, so a restart loses
// nothing that was sent: every message whose send() returned in the old
// child is received, once, before the new child's (a child killed in the
// middle of a send never published it: its send did not return). What a
// restart can lose is a message for the child: one the old child had
// received but not answered. Messages still queued for it are read by the
// next child. Control requests travel on their own channel, so a child may
// call request_stop/request_restart from any thread while another sends
// on its active pipe at full speed; a request whose pid is not the
// target's current child (an earlier incarnation) is ignored.

// Lifecycle. All forks, kills and reaping happen on one supervisor thread:
// it watches each child through a pidfd, applies the restart policy
// (on_failure: an exit code other than 0 or a signal the manager did not
// send; backoff doubling from `backoff` up to `max_backoff`; after
// `max_restarts` restarts the target is `failed` and wait() returns), and
// runs the hooks; requests from the control channel reach it as tasks.
// Calls like start() and stop() hand their work to that thread and wait
// for it, so errors (e.g. exec of a missing binary) are
// thrown in the caller. Children get SIGTERM when the supervisor thread
// dies (PR_SET_PDEATHSIG), i.e. when the manager's process dies, however.
//
// Shutdown. The destructor stops every child (SIGTERM, then SIGKILL after
// the grace period) and removes the channels (the control channel too). With handle_signals (the
// default), SIGINT/SIGTERM to the manager's process do the same; then, with
// exit_on_signal (the default), the channels are removed and the signal is
// raised again with the disposition it had before the manager, so the
// process ends as the sender meant; without it, the manager is shut down
// (start() is errc::closed) and run() returns, for a program that has more
// to do before it exits.
// If the manager itself is SIGKILLed, its channels stay behind and
// list_channels()/`sleet ls` mark them stale (creator and users dead).
//
// Child identity: environment variables SLEET_PROCESS_NAME,
// SLEET_PROCESS_PID, SLEET_ACTIVE_CHANNEL, SLEET_PASSIVE_CHANNEL and
// SLEET_CONTROL_CHANNEL, set in
// the child before fn runs or the command is exec'd (this_process.hpp).
// A forked child runs fn in a copy of the manager's process with one
// thread and ends with _exit(fn's return value) after flushing stdio: the
// manager's destructors and atexit handlers never run in the child. An
// exception escaping fn is printed and exits with 70.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sleet/channel.hpp"
#include "sleet/message.hpp"
#include "sleet/pipe.hpp"

namespace sleet {

enum class RestartPolicy {
  never,       // an exit is final
  on_failure,  // restart after an exit code != 0 or a crash (not after stop())
  always,      // restart after any exit the manager did not ask for
};

struct TargetOptions {
  RestartPolicy restart = RestartPolicy::never;
  unsigned max_restarts = 5;                       // then the target is `failed`
  std::chrono::milliseconds backoff{100};          // before the first restart; doubles
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds stop_grace{2000};      // SIGTERM .. SIGKILL, for stop() and shutdown
  std::chrono::milliseconds reset_after{30000};    // a child that ran this long starts a fresh restart count
  std::size_t channel_capacity = 64;               // messages, each channel
  std::size_t max_message_size = 16384;            // bytes of an encoded Message
};

enum class TargetState {
  stopped,     // added, or stopped by the manager
  running,
  restarting,  // exited; waiting out its backoff before the next start
  exited,      // exited and will not be restarted (policy)
  failed,      // gave up after max_restarts, or could not be started
};
std::string_view to_string(TargetState s) noexcept;

struct TargetStatus {
  std::string name;
  TargetState state = TargetState::stopped;
  int pid = 0;                 // while running
  unsigned restarts = 0;       // automatic restarts since start()/restart() or since it ran reset_after
  std::optional<int> exit_code;    // of the last exit, if it exited normally
  std::optional<int> exit_signal;  // of the last exit, if a signal ended it
  std::string error;           // why it failed
};

// Every member has an initializer ({}), so designated initializers that
// name only some members ({.handle_signals = false}) leave the rest empty
// without a -Wmissing-field-initializers warning.
struct ProcessHooks {
  std::function<void(const std::string& name)> before_start{};
  std::function<void(const std::string& name, int pid)> after_start{};
  std::function<void(const std::string& name)> before_shutdown{};  // before stop() kills it
  std::function<void(const std::string& name)> before_restart{};   // restart(), a request, or the policy
};

struct ManagerOptions {
  bool handle_signals = true;  // SIGINT/SIGTERM stop everything (see above)
  bool exit_on_signal = true;  // ... and then end the process by that signal
  ProcessHooks hooks{};
};

class ProcessManager {
 public:
  explicit ProcessManager(ManagerOptions options = {});
  ~ProcessManager();
  ProcessManager(const ProcessManager&) = delete;
  ProcessManager& operator=(const ProcessManager&) = delete;

  // Names are 1-100 characters of [A-Za-z0-9._-]; a second target of one
  // name is errc::already_exists. Both create the target's channels.
  void add_target(const std::string& name, std::function<int()> fn, const TargetOptions& options = {});
  void add_target(const std::string& name, std::vector<std::string> argv,
                  const TargetOptions& options = {});

  // errc::not_found for an unknown name; errc::child_failed if the child
  // cannot be started (fork failed, exec failed: the message says why).
  // Starting a running target does nothing.
  void start(const std::string& name);
  void start_all();
  // SIGTERM, then SIGKILL after `grace` (default: the target's stop_grace);
  // returns once the child is reaped. Stopping a stopped target does nothing.
  void stop(const std::string& name, std::optional<std::chrono::milliseconds> grace = {});
  void stop_all();
  void restart(const std::string& name);
  bool is_alive(const std::string& name) const;
  // Waits until the target is no longer running or restarting; returns its
  // last exit status (exit code, or 128 + signal), if it ran.
  std::optional<int> wait(const std::string& name);
  std::optional<int> wait_for(const std::string& name, std::chrono::nanoseconds timeout,
                              bool* timed_out = nullptr);
  // Blocks until no target is running or restarting, or until SIGINT/SIGTERM
  // (handle_signals without exit_on_signal) has stopped everything.
  void run();

  TargetStatus status(const std::string& name) const;
  std::vector<std::string> targets() const;
  const std::string& ns() const noexcept;
  std::string active_channel_name(const std::string& name) const;
  std::string passive_channel_name(const std::string& name) const;

  // Messages for the child: on its active channel, or its passive one.
  void send(const std::string& name, const Message& message);
  bool send_for(const std::string& name, const Message& message, std::chrono::nanoseconds timeout);
  void post(const std::string& name, const Message& message);
  // Messages from the child (its active channel), oldest first, read in
  // the calling thread. receive() throws errc::peer_dead once the target is
  // neither running nor restarting and everything it sent has been read;
  // try_receive/receive_for return nullopt then. errc::decode_failed for a
  // record that does not decode (it is consumed).
  Message receive(const std::string& name);
  std::optional<Message> try_receive(const std::string& name);
  std::optional<Message> receive_for(const std::string& name, std::chrono::nanoseconds timeout);
  // The next message from any target, with the target's name: every
  // target's pipe is waited on at once (one WaitSet, one futex_waitv), and
  // targets with messages are taken in turn. receive_any() throws
  // errc::peer_dead once no target is running or restarting and nothing is
  // left to read (errc::not_found if there are no targets);
  // receive_any_for() returns nullopt then, or at the timeout.
  std::pair<std::string, Message> receive_any();
  std::optional<std::pair<std::string, Message>> receive_any_for(std::chrono::nanoseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sleet
