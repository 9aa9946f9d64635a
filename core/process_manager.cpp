// ProcessManager: the supervisor thread, spawning, stopping, restart policy,
// signals, and the per-target inboxes. The model is described in
// include/sleet/process_manager.hpp.
#include "sleet/process_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "process_env.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/process.hpp"
#include "system.hpp"

namespace sleet {

using detail::Clock;
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

constexpr std::size_t kMaxTargetName = 100;
constexpr int kExitUncaught = 70;  // EX_SOFTWARE: fn threw
constexpr int kExitExecFailed = 127;
constexpr int kExitOrphan = 71;    // the manager died before the child began

std::string describe(const std::string& name) { return "target '" + name + "'"; }

void validate_target_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= kMaxTargetName &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                  });
  if (!ok) {
    throw_error(errc::invalid_name, describe(name),
                "target names are 1-100 characters of [A-Za-z0-9._-]");
  }
}

int open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// "exit code 3" / "signal 9 (Killed)"
std::string describe_exit(const std::optional<int>& code, const std::optional<int>& sig) {
  if (code) return "exit code " + std::to_string(*code);
  if (sig) return "signal " + std::to_string(*sig) + " (" + ::strsignal(*sig) + ")";
  return "no exit status";
}

// ---- signals: process-wide ----

struct SignalState;
SignalState& signals();

}  // namespace

struct ProcessManager::Impl {
  struct Target {
    std::string name;
    std::function<int()> fn;        // a fork target, or
    std::vector<std::string> argv;  // an exec target
    TargetOptions options;
    Pipe<Message> active;  // end a
    Channel<Message> passive;

    TargetState state = TargetState::stopped;
    pid_t pid = 0;
    int pidfd = -1;
    bool stopping = false;  // the manager is ending it: not a failure
    unsigned restarts = 0;
    Clock::time_point restart_at{};
    std::optional<int> exit_code;
    std::optional<int> exit_signal;
    std::string error;
    Clock::time_point started_at{};
    std::deque<Message> inbox;
    std::condition_variable inbox_cv;
    std::uint64_t delivered = 0;  // records the dispatcher has finished with
    std::mutex send_mutex;        // the pipe's sending side is spsc: one thread at a time
  };

  ManagerOptions options;
  std::string ns;
  pid_t manager_pid = 0;

  mutable std::mutex mutex;          // everything below, and Target's state fields
  std::condition_variable state_cv;  // a target's state changed, or shutdown
  std::map<std::string, std::unique_ptr<Target>, std::less<>> targets;
  std::deque<std::function<void()>> tasks;  // run by the supervisor
  bool quit = false;       // the supervisor is to end
  bool shut_down = false;  // everything was stopped for good (signal or destructor)
  int wake_fd = -1;        // eventfd: tasks, signals, quit
  std::thread supervisor;
  std::thread::id supervisor_id;
  bool in_hook = false;           // supervisor thread only: a hook is running
  std::uint64_t signals_seen = 0; // supervisor thread only: signals handled

  explicit Impl(ManagerOptions o);
  ~Impl();

  Target& target(std::string_view name) const;  // caller holds mutex
  void add(const std::string& name, std::function<int()> fn, std::vector<std::string> argv,
           const TargetOptions& options);
  void wake() const noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd, &one, sizeof one);
  }
  // Runs f on the supervisor thread and waits for it (exceptions included).
  void call(std::function<void()> f);
  void post_task(std::function<void()> f);

  // Supervisor thread only.
  void supervise();
  void spawn(Target& t);
  void end(Target& t, std::chrono::milliseconds grace,
           TargetState after = TargetState::stopped);
  void end_all();
  void record_exit(Target& t, std::optional<int> wait_status);  // nullopt: reaped elsewhere
  void apply_policy(Target& t);
  void reap_exited();
  void restart_due();
  void on_signal(int sig);
  void handle_control(Target& t, const ControlRequest& request);
  void run_hook(const std::function<void(const std::string&)>& hook, const std::string& name);

  // Dispatcher threads: a message from a child.
  void deliver(Target& t, const Message& m);
  // The next message from the child; nullopt at the deadline, or once the
  // child is gone and sent nothing more (errc::peer_dead if `throw_if_gone`).
  std::optional<Message> receive(const std::string& name, detail::Deadline deadline,
                                 bool throw_if_gone);
};

namespace {

struct SignalState {
  std::mutex mutex;
  std::vector<const void*> managers;  // the Impls that handle signals
  struct sigaction old_int {};
  struct sigaction old_term {};
  // Read by the handler: each manager's eventfd + 1 (0: free slot).
  static constexpr int kSlots = 64;
  std::atomic<int> fds[kSlots] = {};
  std::atomic<int> last{0};             // the latest SIGINT/SIGTERM
  std::atomic<std::uint64_t> count{0};  // how many arrived: each manager acts once per new one
  std::atomic<int> in_handler{0};       // handlers running now (remove_handlers waits for 0)
};

SignalState& signals() {
  static SignalState* s = new SignalState;  // never destroyed: the handler may run at exit
  return *s;
}

extern "C" void sleet_manager_signal(int sig) {
  const int saved = errno;
  SignalState& s = signals();
  // seq_cst: ordered before the slot loads, against remove_handlers(),
  // which clears a slot and then waits for in_handler to be 0.
  s.in_handler.fetch_add(1, std::memory_order_seq_cst);
  // relaxed: the eventfd write/read pair orders them for the supervisor.
  s.last.store(sig, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  for (auto& slot : s.fds) {
    const int v = slot.load(std::memory_order_relaxed);  // relaxed: a plain fd number
    if (v > 0 && ::write(v - 1, &one, sizeof one) < 0) {
      // Nothing to do in a handler: the eventfd is full or gone.
    }
  }
  s.in_handler.fetch_sub(1, std::memory_order_release);  // release: our writes are done
  errno = saved;
}

void install_handlers(const void* m, int fd) {
  SignalState& s = signals();
  std::lock_guard lock(s.mutex);
  if (s.managers.empty()) {
    struct sigaction sa {};
    sa.sa_handler = &sleet_manager_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &s.old_int);
    ::sigaction(SIGTERM, &sa, &s.old_term);
  }
  s.managers.push_back(m);
  for (auto& slot : s.fds) {
    int expected = 0;
    // relaxed: the handler only needs some fd value, never data behind it.
    if (slot.compare_exchange_strong(expected, fd + 1, std::memory_order_relaxed)) break;
  }
}

void remove_handlers(const void* m, int fd) {
  SignalState& s = signals();
  std::lock_guard lock(s.mutex);
  const auto it = std::find(s.managers.begin(), s.managers.end(), m);
  if (it == s.managers.end()) return;
  s.managers.erase(it);
  for (auto& slot : s.fds) {
    int expected = fd + 1;
    // seq_cst: a handler that starts after this sees the slot empty; one
    // that started before is counted in in_handler, read below.
    if (slot.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) break;
  }
  // The caller closes the fd next: wait out a handler that may still write it.
  // acquire: pairs with the handler's release decrement.
  while (s.in_handler.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  if (s.managers.empty()) {
    ::sigaction(SIGINT, &s.old_int, nullptr);
    ::sigaction(SIGTERM, &s.old_term, nullptr);
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
  signals_seen = signals().count.load(std::memory_order_relaxed);  // relaxed: only ours to compare
  if (options.handle_signals) install_handlers(this, wake_fd);
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
  if (options.handle_signals) remove_handlers(this, wake_fd);
  {
    std::lock_guard lock(mutex);
    quit = true;
    for (auto& [name, t] : targets) t->inbox_cv.notify_all();
  }
  wake();
  supervisor.join();
  // Dispatchers drain and stop (deliver() drops messages once quit is set);
  // then the names go.
  for (auto& [name, t] : targets) {
    t->active.close();
    t->passive.close();
  }
  for (auto& [name, t] : targets) {
    const std::string active(t->active.name());
    const std::string passive(t->passive.name());
    t.reset();
    Pipe<Message>::remove(active);
    Channel<Message>::remove(passive);
  }
  ::close(wake_fd);
}

ProcessManager::Impl::Target& ProcessManager::Impl::target(std::string_view name) const {
  const auto it = targets.find(name);
  if (it == targets.end()) {
    throw_error(errc::not_found, describe(std::string(name)), "no such target in this manager");
  }
  return *it->second;
}

void ProcessManager::Impl::add(const std::string& name, std::function<int()> fn,
                               std::vector<std::string> argv, const TargetOptions& options) {
  validate_target_name(name);
  if (!fn && argv.empty()) throw_error(errc::invalid_argument, describe(name), "empty command");
  if (options.backoff.count() < 0 || options.max_backoff < options.backoff ||
      options.stop_grace.count() < 0) {
    throw_error(errc::invalid_argument, describe(name),
                "backoff, max_backoff and stop_grace must be >= 0 and backoff <= max_backoff");
  }
  std::lock_guard lock(mutex);
  if (shut_down) throw_error(errc::closed, describe(name), "the manager has shut down");
  if (targets.count(name) != 0) throw_error(errc::already_exists, describe(name), "already added");
  auto t = std::make_unique<Target>();
  t->name = name;
  t->fn = std::move(fn);
  t->argv = std::move(argv);
  t->options = options;
  ChannelOptions co;
  co.capacity = options.channel_capacity;
  co.max_message_size = options.max_message_size;
  const std::string active = ns + "." + name + "-active";
  const std::string passive = ns + "." + name + "-passive";
  auto ends = Pipe<Message>::create(active, co);
  t->active = std::move(ends.first);
  try {
    t->passive = Channel<Message>::create(passive, co);
  } catch (...) {
    Pipe<Message>::remove(active);
    throw;
  }
  // The pipe's end b is opened by the child; ours reads on a dispatcher.
  Target* raw = t.get();
  // Every record the dispatcher takes ends in deliver() or, if it does not
  // decode (or deliver() threw), in on_error: both count it as delivered.
  t->active.on_error([this, raw](std::exception_ptr) {
    std::lock_guard lock(mutex);
    ++raw->delivered;
    raw->inbox_cv.notify_all();
  });
  t->active.on_receive([this, raw](const Message& m) { deliver(*raw, m); });
  targets.emplace(name, std::move(t));
}

// ---- calls into the supervisor ----

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
      throw_error(errc::busy, "process manager",
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
      what = e.what();
      // what() ends with ": <code>", which the caller's Error adds again.
      const std::string suffix = std::string(": ") + std::string(to_string(e.value()));
      if (what.size() >= suffix.size() && what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0) {
        what.resize(what.size() - suffix.size());
      }
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

// ---- the supervisor ----

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
      for (auto& [name, t] : targets) {
        if (t->state == TargetState::running) {
          if (t->pidfd >= 0) {
            fds.push_back({t->pidfd, POLLIN, 0});
          } else {
            timeout_ms = timeout_ms < 0 ? 20 : std::min(timeout_ms, 20);  // no pidfd: poll
          }
        } else if (t->state == TargetState::restarting) {
          const auto ms = std::chrono::ceil<std::chrono::milliseconds>(t->restart_at - now).count();
          const int wait = static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
          timeout_ms = timeout_ms < 0 ? wait : std::min(timeout_ms, wait);
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
    if (options.handle_signals) {
      // relaxed: written by the handler before its eventfd write we just read.
      const std::uint64_t n = signals().count.load(std::memory_order_relaxed);
      if (n != signals_seen) {
        signals_seen = n;
        if (!shut_down) on_signal(signals().last.load(std::memory_order_relaxed));
      }
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
    std::fprintf(stderr, "sleet: %s: a lifecycle hook threw: %s\n", describe(name).c_str(), e.what());
  }
  in_hook = false;
}

// The environment of a child: ours, with the four identity variables set.
// Built before fork(): the child of a multi-threaded process must not
// allocate or take locks (another thread may have held malloc's or the
// environment's lock at the fork). The pid is written into its variable by
// the child itself, in place.
struct ChildEnvironment {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  std::size_t pid_entry = 0;  // index of "SLEET_PROCESS_PID=" + room for digits

  ChildEnvironment(const std::string& name, const std::string& active, const std::string& passive) {
    const std::string ours[] = {detail::kEnvProcessName, detail::kEnvProcessPid,
                                detail::kEnvActiveChannel, detail::kEnvPassiveChannel};
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string_view var(*e);
      const bool replaced = std::any_of(std::begin(ours), std::end(ours), [&](const std::string& o) {
        return var.size() > o.size() && var.compare(0, o.size(), o) == 0 && var[o.size()] == '=';
      });
      if (!replaced) strings.emplace_back(var);
    }
    strings.push_back(ours[0] + "=" + name);
    strings.push_back(ours[2] + "=" + active);
    strings.push_back(ours[3] + "=" + passive);
    pid_entry = strings.size();
    strings.push_back(ours[1] + "=" + std::string(24, '\0'));
    for (auto& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  // In the child: the decimal pid after the '=' (no allocation).
  void set_pid(pid_t pid) noexcept {
    char* at = pointers[pid_entry] + std::strlen(detail::kEnvProcessPid) + 1;
    char digits[24];
    int n = 0;
    for (auto v = static_cast<unsigned long>(pid); n == 0 || v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    for (int i = 0; i < n; ++i) at[i] = digits[n - 1 - i];
    at[n] = '\0';
  }
};

void ProcessManager::Impl::spawn(Target& t) {
  {
    std::lock_guard lock(mutex);
    if (shut_down) throw_error(errc::closed, describe(t.name), "the manager has shut down");
  }
  run_hook(options.hooks.before_start, t.name);
  // Everything the child needs, prepared before fork().
  std::vector<char*> argv;
  for (auto& a : t.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  ChildEnvironment env(t.name, std::string(t.active.name()), std::string(t.passive.name()));
  auto fail = [&](const std::string& why) {
    {
      std::lock_guard lock(mutex);
      t.state = TargetState::failed;
      t.pid = 0;
      t.error = why;
    }
    state_cv.notify_all();
  };
  int status_pipe[2] = {-1, -1};
  if (!t.argv.empty() && ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    fail(std::string("pipe2: ") + std::strerror(err));
    throw_error(errc::child_failed, describe(t.name), t.error);
  }
  // Signals stay blocked across fork() until the child has reset the
  // manager's handlers: a SIGTERM must not run them in the child.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (status_pipe[0] >= 0) ::close(status_pipe[0]), ::close(status_pipe[1]);
    fail(std::string("fork: ") + std::strerror(err));
    throw_error(errc::child_failed, describe(t.name), t.error);
  }
  if (pid == 0) {
    // The child. Ends with the manager (the supervisor thread that forked it).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != manager_pid) ::_exit(kExitOrphan);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGINT, &dfl, nullptr);
    ::sigaction(SIGTERM, &dfl, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    env.set_pid(::getpid());
    if (!t.argv.empty()) {
      ::close(status_pipe[0]);
      ::execvpe(argv[0], argv.data(), env.pointers.data());
      const int err = errno;
      [[maybe_unused]] const auto n = ::write(status_pipe[1], &err, sizeof err);
      ::_exit(kExitExecFailed);
    }
    environ = env.pointers.data();
    int rc = kExitUncaught;
    try {
      rc = t.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sleet: %s: uncaught exception: %s\n", describe(t.name).c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "sleet: %s: uncaught exception\n", describe(t.name).c_str());
    }
    std::fflush(nullptr);
    ::_exit(rc >= 0 && rc <= 255 ? rc : 255);  // an exit status is one byte: 256 is not success
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!t.argv.empty()) {
    ::close(status_pipe[1]);
    int err = 0;
    ssize_t got;
    do {
      got = ::read(status_pipe[0], &err, sizeof err);
    } while (got < 0 && errno == EINTR);
    ::close(status_pipe[0]);
    if (got == static_cast<ssize_t>(sizeof err)) {  // exec failed; the child exits 127
      int st = 0;
      ::waitpid(pid, &st, 0);
      {
        std::lock_guard lock(mutex);
        t.state = TargetState::failed;
        t.pid = 0;
        t.exit_code = kExitExecFailed;
        t.exit_signal.reset();
        t.error = "exec '" + t.argv[0] + "': " + std::strerror(err);
      }
      state_cv.notify_all();
      throw Error(err == ENOENT ? errc::not_found : errc::child_failed,
                  describe(t.name) + ": " + t.error);
    }
  }
  {
    std::lock_guard lock(mutex);
    t.pid = pid;
    t.pidfd = open_pidfd(pid);
    t.started_at = Clock::now();
    t.state = TargetState::running;
    t.stopping = false;
    t.error.clear();
  }
  state_cv.notify_all();
  if (options.hooks.after_start) {
    try {
      options.hooks.after_start(t.name, pid);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sleet: %s: a lifecycle hook threw: %s\n", describe(t.name).c_str(), e.what());
    }
  }
}

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
      std::fprintf(stderr, "sleet: %s: %s\n", describe(t.name).c_str(), t.error.c_str());
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
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    } else {
      ::usleep(1000);
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
    if (!running.empty()) ::usleep(1000);
  }
  state_cv.notify_all();
}

void ProcessManager::Impl::on_signal(int sig) {
  end_all();
  {
    std::lock_guard lock(mutex);
    shut_down = true;
  }
  state_cv.notify_all();
  if (!options.exit_on_signal) return;  // run() returns; the program decides what comes next
  // Nobody waits for this: clean up what the destructor would and end the
  // process the way the signal meant to.
  SignalState& s = signals();
  {
    std::lock_guard lock(mutex);
    for (auto& [name, t] : targets) {
      Pipe<Message>::remove(t->active.name());
      Channel<Message>::remove(t->passive.name());
    }
  }
  std::lock_guard lock(s.mutex);
  ::sigaction(SIGINT, &s.old_int, nullptr);
  ::sigaction(SIGTERM, &s.old_term, nullptr);
  std::fflush(nullptr);
  ::raise(sig);
}

void ProcessManager::Impl::handle_control(Target& t, const ControlRequest& request) {
  {
    std::lock_guard lock(mutex);
    // From an earlier incarnation, or arriving after the shutdown: ignored.
    if (shut_down || t.state != TargetState::running || (request.pid != 0 && request.pid != t.pid)) {
      return;
    }
  }
  if (request.action == ControlRequest::Action::stop) {
    end(t, t.options.stop_grace);
    return;
  }
  run_hook(options.hooks.before_restart, t.name);
  end(t, t.options.stop_grace, TargetState::restarting);
  try {
    spawn(t);
  } catch (const Error& e) {
    std::fprintf(stderr, "sleet: %s\n", e.what());
  }
}

void ProcessManager::Impl::deliver(Target& t, const Message& m) {
  if (m.control) {
    const ControlRequest request = *m.control;
    post_task([this, &t, request] { handle_control(t, request); });
    std::lock_guard lock(mutex);
    ++t.delivered;
    return;
  }
  std::unique_lock lock(mutex);
  t.inbox_cv.wait(lock, [&] { return quit || t.inbox.size() < t.options.channel_capacity; });
  if (!quit) t.inbox.push_back(m);
  ++t.delivered;
  t.inbox_cv.notify_all();
}

// ---- ProcessManager ----

ProcessManager::ProcessManager(ManagerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ProcessManager::~ProcessManager() = default;

void ProcessManager::add_target(const std::string& name, std::function<int()> fn,
                                const TargetOptions& options) {
  if (!fn) throw_error(errc::invalid_argument, describe(name), "empty function");
  impl_->add(name, std::move(fn), {}, options);
}

void ProcessManager::add_target(const std::string& name, std::vector<std::string> argv,
                                const TargetOptions& options) {
  if (argv.empty() || argv[0].empty()) throw_error(errc::invalid_argument, describe(name), "empty command");
  impl_->add(name, {}, std::move(argv), options);
}

void ProcessManager::start(const std::string& name) {
  impl_->call([this, &name] {
    Impl::Target* t;
    {
      std::lock_guard lock(impl_->mutex);
      if (impl_->shut_down) throw_error(errc::closed, describe(name), "the manager has shut down");
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
      if (impl_->shut_down) throw_error(errc::closed, describe(name), "the manager has shut down");
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

std::string ProcessManager::active_channel_name(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  return std::string(impl_->target(name).active.name());
}

std::string ProcessManager::passive_channel_name(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  return std::string(impl_->target(name).passive.name());
}

void ProcessManager::send(const std::string& name, const Message& message) {
  Impl::Target* t;
  {
    std::lock_guard lock(impl_->mutex);
    t = &impl_->target(name);
  }
  std::lock_guard send_lock(t->send_mutex);
  t->active.send(message);
}

bool ProcessManager::send_for(const std::string& name, const Message& message,
                              std::chrono::nanoseconds timeout) {
  Impl::Target* t;
  {
    std::lock_guard lock(impl_->mutex);
    t = &impl_->target(name);
  }
  std::lock_guard send_lock(t->send_mutex);
  return t->active.send_for(message, timeout);
}

void ProcessManager::post(const std::string& name, const Message& message) {
  Impl::Target* t;
  {
    std::lock_guard lock(impl_->mutex);
    t = &impl_->target(name);
  }
  t->passive.send(message);
}

std::optional<Message> ProcessManager::try_receive(const std::string& name) {
  return receive_for(name, std::chrono::nanoseconds(0));
}

Message ProcessManager::receive(const std::string& name) {
  return std::move(*impl_->receive(name, detail::kForever, true));
}

std::optional<Message> ProcessManager::receive_for(const std::string& name,
                                                   std::chrono::nanoseconds timeout) {
  return impl_->receive(name, detail::deadline_after(timeout), false);
}

std::optional<Message> ProcessManager::Impl::receive(const std::string& name,
                                                     detail::Deadline deadline, bool throw_if_gone) {
  std::unique_lock lock(mutex);
  Target& t = target(name);
  for (;;) {
    if (!t.inbox.empty()) {
      Message m = std::move(t.inbox.front());
      t.inbox.pop_front();
      t.inbox_cv.notify_all();  // room for the dispatcher
      return m;
    }
    const bool gone = t.state != TargetState::running && t.state != TargetState::restarting;
    // A child that has ended may still have messages in the pipe, or one the
    // dispatcher has taken and not yet delivered.
    const ChannelStats in_pipe = t.active.receive_stats();
    if (gone && in_pipe.queued == 0 && in_pipe.received == t.delivered) {
      if (!throw_if_gone) return std::nullopt;
      throw_error(errc::peer_dead, describe(name),
                  std::string("is ") + std::string(to_string(t.state)) + " and sent nothing more");
    }
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    // Bounded waits: the state can change without a notify on inbox_cv.
    t.inbox_cv.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(10)));
  }
}

}  // namespace sleet
