// core/process_manager_impl.hpp — ProcessManager::Impl, shared by the files
// that implement the manager, one responsibility each (the model is in
// include/sleet/process_manager.hpp):
//
//   process_manager.cpp             the public API: lifecycle calls, status, setup, teardown
//   process_manager_supervisor.cpp  the supervisor thread: its loop, tasks, hooks
//   process_manager_spawn.cpp       fork/exec of a child with its environment
//   process_manager_policy.cpp      exits: reaping, stopping, the restart policy
//   process_manager_signals.cpp     SIGINT/SIGTERM to the manager's process
//   process_manager_channels.cpp    each target's channels: send, post, receive
//   process_manager_control.cpp     the control channel: children's stop/restart requests
//
// Locking. `mutex` guards the target map, the task queue, the flags and
// every Target's lifecycle fields (state .. started_at). A Target's channel
// objects are not guarded by it: `send_mutex` and `receive_mutex` give each
// side of the spsc active pipe to one thread at a time. Targets are never
// erased before the destructor, so a Target& found under `mutex` stays
// valid after it is released.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "process_control.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/process_manager.hpp"
#include "sleet/wait_set.hpp"
#include "system.hpp"

namespace sleet {

namespace detail {

inline constexpr std::size_t kMaxTargetName = 100;
inline constexpr int kExitUncaught = 70;     // EX_SOFTWARE: fn threw
inline constexpr int kExitExecFailed = 127;  // what a shell says for a command it cannot run
inline constexpr int kExitOrphan = 71;       // the manager died before the child began
// How often a blocked receive() looks at the target's state, so that it
// notices a child that ended without a message (an exit wakes nobody's
// futex). Only a receive with nothing to read pays for it.
inline constexpr std::chrono::milliseconds kReceiveStatePoll{10};
// How often the supervisor looks at a child it has no pidfd for (kernels
// before 5.3): its exit is found by waitpid(WNOHANG) this often.
inline constexpr int kNoPidfdPollMs = 20;
// The longest the supervisor sleeps towards a restart that is further off
// (poll()'s timeout is an int of milliseconds).
inline constexpr long long kMaxSupervisorSleepMs = 60'000;
// How often end_all() looks for children that have not exited yet.
inline constexpr std::chrono::microseconds kReapPoll{1000};
// The longest end() sleeps on one pidfd before it looks at the deadline.
inline constexpr long long kEndPollMaxMs = 1000;

inline std::string describe_target(const std::string& name) { return "target '" + name + "'"; }

}  // namespace detail

struct ProcessManager::Impl {
  struct Target {
    std::string name;
    std::function<int()> fn;        // a fork target, or
    std::vector<std::string> argv;  // an exec target
    TargetOptions options;
    Pipe<Message> active;  // end a
    Channel<Message> passive;

    // Lifecycle, guarded by Impl::mutex; written by the supervisor only.
    TargetState state = TargetState::stopped;
    pid_t pid = 0;
    int pidfd = -1;
    bool stopping = false;  // the manager is ending it: not a failure
    unsigned restarts = 0;
    detail::Clock::time_point restart_at{};
    std::optional<int> exit_code;
    std::optional<int> exit_signal;
    std::string error;
    detail::Clock::time_point started_at{};

    std::mutex send_mutex;     // the pipe's sending side is spsc: one thread at a time
    std::mutex receive_mutex;  // ... and so is its receiving side
  };

  ManagerOptions options;
  std::string ns;
  pid_t manager_pid = 0;

  mutable std::mutex mutex;          // everything below, and Target's lifecycle fields
  std::condition_variable state_cv;  // a target's state changed, or shutdown
  std::map<std::string, std::unique_ptr<Target>, std::less<>> targets;
  std::deque<std::function<void()>> tasks;  // run by the supervisor
  bool quit = false;       // the supervisor is to end
  bool shut_down = false;  // everything was stopped for good (signal or destructor)
  int wake_fd = -1;        // eventfd: tasks, signals, quit
  std::thread supervisor;
  std::thread::id supervisor_id;
  bool in_hook = false;            // supervisor thread only: a hook is running
  std::uint64_t signals_seen = 0;  // supervisor thread only: signals handled
  // Children's stop/restart requests (process_control.hpp); read by its own
  // dispatcher (on_receive), which hands each to the supervisor as a task.
  detail::ControlChannel control;

  explicit Impl(ManagerOptions o);
  ~Impl();

  // process_manager.cpp
  Target& target(std::string_view name) const;  // caller holds mutex
  Target& find(std::string_view name) const;    // takes mutex
  void add(const std::string& name, std::function<int()> fn, std::vector<std::string> argv,
           const TargetOptions& options);

  // process_manager_supervisor.cpp
  void wake() const noexcept;
  // Runs f on the supervisor thread and waits for it (exceptions included).
  void call(std::function<void()> f);
  void post_task(std::function<void()> f);
  void supervise();  // the supervisor thread's body
  void run_hook(const std::function<void(const std::string&)>& hook, const std::string& name);

  // process_manager_spawn.cpp (supervisor thread only)
  void spawn(Target& t);

  // process_manager_policy.cpp (supervisor thread only)
  void end(Target& t, std::chrono::milliseconds grace, TargetState after = TargetState::stopped);
  void end_all();
  void record_exit(Target& t, std::optional<int> wait_status);  // nullopt: reaped elsewhere
  void apply_policy(Target& t);
  void reap_exited();
  void restart_due();

  // process_manager_signals.cpp
  void install_signal_handlers();
  void remove_signal_handlers();
  std::optional<int> new_signal();  // supervisor thread only: a SIGINT/SIGTERM not yet handled
  void on_signal(int sig);          // supervisor thread only
  void remove_channels() noexcept;  // every name this manager created

  // process_manager_control.cpp
  void start_control();  // the control channel's reader
  void stop_control() noexcept;
  // Supervisor thread only. `own_pipe`: it came on the target's active pipe
  // (a Message with control set), not on the control channel.
  void handle_control(const detail::ControlRecord& record, bool own_pipe);

  // process_manager_channels.cpp
  void create_channels(Target& t);
  // The next message from the child; nullopt at the deadline, or once the
  // child is gone and sent nothing more (errc::peer_dead if `throw_if_gone`).
  std::optional<Message> receive(const std::string& name, detail::Deadline deadline,
                                 bool throw_if_gone);
  std::optional<std::pair<std::string, Message>> receive_any(detail::Deadline deadline,
                                                             bool throw_if_gone);

  // receive_any(): one WaitSet over every target's pipe (targets are never
  // erased, so it only grows), its ids in any_names order; any_next rotates
  // which target is looked at first.
  std::mutex any_mutex;
  WaitSet any_set{std::chrono::nanoseconds(0)};
  std::vector<std::string> any_names;
  std::size_t any_next = 0;
};

}  // namespace sleet
