// bench/harness.hpp — small pieces a cross-process benchmark needs: a
// monotonic clock comparable across processes, CPU pinning, memory shared
// with forked children, a barrier and failure flag in that memory, a fork
// runner that always reaps (and, after a failure or a hang, kills) its
// children, and the machine description a results file records.
//
// Rules the runner keeps
//   Children end in _exit() (no atexit handlers, no destructors of the
//   parent's objects), die with the parent (PR_SET_PDEATHSIG) and carry an
//   alarm() as a last resort. A child that throws records its message in the
//   shared Control block and the others stop at their next check(); a child
//   stuck in a system call (its peer died) is killed after a grace period.
//   The parent never returns while one of its children is alive.
//
// Cleanup
//   Cleanup records what a process created (files, shared memory objects,
//   message queues, LMDB directories, a server it started) so that a signal
//   handler can remove it; a scope's owner removes its own entry normally.
//
// Synchronization
//   Control lives in MAP_SHARED memory. Workers announce themselves with
//   ready (acq_rel) and spin on go (acquire), which the parent publishes
//   (release) once every worker is ready; failed is published (release)
//   after the error text is written.
#pragma once

#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace sleet_bench {

inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// CLOCK_MONOTONIC is system-wide: stamps from two processes compare.
inline std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The CPUs this process may run on, in order.
inline std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  return cpus;
}

// Pins the calling thread to allowed CPU index mod n (nothing with fewer
// than two CPUs: both sides would share one).
inline void pin_to_cpu_for(const std::vector<int>& cpus, int index) noexcept {
  if (cpus.size() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus[static_cast<std::size_t>(index) % cpus.size()], &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

// A T in MAP_SHARED|MAP_ANONYMOUS memory: shared with children forked after
// it was made.
template <class T>
class Shared {
 public:
  Shared() {
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    p_ = new (p) T();
  }
  ~Shared() {
    p_->~T();
    ::munmap(p_, bytes());
  }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  T& operator*() const noexcept { return *p_; }
  T* operator->() const noexcept { return p_; }

 private:
  static constexpr std::size_t bytes() noexcept { return (sizeof(T) + 4095) / 4096 * 4096; }
  T* p_;
};

// What the results file records about the machine.
struct MachineInfo {
  std::string cpu;       // /proc/cpuinfo "model name"
  int cpus = 0;          // CPUs this process may use
  std::string kernel;    // uname -sr
  std::string date;      // UTC, ISO 8601
  std::string compiler;
};

inline MachineInfo machine_info() {
  MachineInfo m;
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  if (m.cpu.empty()) m.cpu = "unknown";
  m.cpus = static_cast<int>(allowed_cpus().size());
  utsname u{};
  if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release;
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  m.date = buf;
#if defined(__clang__)
  m.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.compiler = "g++ " __VERSION__;
#endif
  return m;
}

// ---------------------------------------------------------------- cleanup

// Names this process created and has not removed yet, and the pids of the
// servers it started (redis-server and iox-roudi may run at once). run() is async-signal-safe (unlink, rmdir, mq_unlink
// and kill are system calls; the rest is plain copies) and does nothing in
// a forked child.
class Cleanup {
 public:
  enum Kind : int {
    kFree,
    kUnlink,    // a file, or a shared memory object under /dev/shm
    kMqUnlink,  // a POSIX message queue ("/name")
    kLmdbDir,   // an LMDB environment: data.mdb, lock.mdb, the directory
  };
  static constexpr int kSlots = 32;
  static constexpr int kServerSlots = 4;  // one per kind of server a run may start

  int add(Kind kind, const std::string& path) noexcept {
    for (int i = 0; i < kSlots; ++i) {
      if (kind_[i].load(std::memory_order_relaxed) != kFree) continue;
      std::snprintf(path_[i], sizeof path_[i], "%s", path.c_str());
      int expected = kFree;
      // release: the path is written before the handler may read it; pairs
      // with the acquire in run().
      if (kind_[i].compare_exchange_strong(expected, kind, std::memory_order_release)) return i;
    }
    return -1;
  }
  void drop(int slot) noexcept {
    if (slot >= 0) kind_[slot].store(kFree, std::memory_order_relaxed);
  }
  // A server's pid, killed by run(); -1 when every slot is taken.
  int add_server(pid_t pid) noexcept {
    for (int i = 0; i < kServerSlots; ++i) {
      pid_t expected = 0;
      // relaxed: a pid is one word, read whole or not at all by the handler.
      if (server_[i].compare_exchange_strong(expected, pid, std::memory_order_relaxed)) return i;
    }
    return -1;
  }
  void drop_server(int slot) noexcept {
    if (slot >= 0) server_[slot].store(0, std::memory_order_relaxed);
  }

  void run() noexcept {
    if (::getpid() != owner_) return;
    for (const auto& slot : server_) {
      const pid_t server = slot.load(std::memory_order_relaxed);
      if (server > 0) ::kill(server, SIGKILL);
    }
    for (int i = 0; i < kSlots; ++i) {
      // acquire: pairs with the release in add().
      const int kind = kind_[i].load(std::memory_order_acquire);
      if (kind != kFree) remove(static_cast<Kind>(kind), path_[i]);
    }
  }
  static void remove(Kind kind, const char* path) noexcept {
    switch (kind) {
      case kFree: break;
      case kUnlink: ::unlink(path); break;
      case kMqUnlink: ::mq_unlink(path); break;
      case kLmdbDir: {
        char buf[300];
        const std::size_t n = std::strlen(path);
        for (const char* leaf : {"/data.mdb", "/lock.mdb"}) {
          if (n + std::strlen(leaf) + 1 > sizeof buf) break;
          std::memcpy(buf, path, n);
          std::memcpy(buf + n, leaf, std::strlen(leaf) + 1);
          ::unlink(buf);
        }
        ::rmdir(path);
        break;
      }
    }
  }

 private:
  pid_t owner_ = ::getpid();
  char path_[kSlots][256] = {};
  std::atomic<int> kind_[kSlots] = {};
  std::atomic<pid_t> server_[kServerSlots] = {};
};

// On SIGINT, SIGTERM or SIGHUP: cleanup.run(), then die of the signal.
inline void remove_on_fatal_signals(Cleanup& cleanup) {
  static Cleanup* target = nullptr;
  target = &cleanup;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    ::signal(sig, +[](int s) {
      target->run();
      ::signal(s, SIG_DFL);
      ::raise(s);
    });
  }
}

// ------------------------------------------------------------ the runner

// Forks a child that runs body() -> exit status and ends in _exit(). The
// child dies with its parent and carries alarm(alarm_s) against a hang.
// Returns the child's pid (or -1) in the parent.
template <class Body>
pid_t fork_child(unsigned alarm_s, Body&& body) {
  const pid_t parent = ::getpid();
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(3);
  ::alarm(alarm_s);
  ::_exit(body());
}

// Control block of one run, shared by the parent and its workers.
struct Control {
  static constexpr int kMaxWorkers = 16;  // patterns_bench: a publisher and 8 subscribers
  alignas(128) std::atomic<int> ready{0};  // workers at the barrier
  alignas(128) std::atomic<int> go{0};     // set once every worker is ready
  alignas(128) std::atomic<int> failed{0};
  std::atomic<int> error_set{0};
  char error[256] = {};
  alignas(128) std::atomic<std::int64_t> start_ns[kMaxWorkers] = {};
  std::atomic<std::int64_t> end_ns[kMaxWorkers] = {};
  std::atomic<std::uint64_t> count[kMaxWorkers] = {};  // what each worker completed

  void fail(const char* what) noexcept {
    if (error_set.exchange(1, std::memory_order_acq_rel) == 0) {
      std::snprintf(error, sizeof error, "%s", what);
    }
    // release: the message is written before anyone sees `failed`; pairs
    // with the acquire loads in the parent.
    failed.store(1, std::memory_order_release);
  }
};

struct Aborted {};  // thrown in a worker when another one failed

class Worker {
 public:
  Worker(Control& c, int index) : c_(c), index_(index) {}
  int index() const noexcept { return index_; }
  Control& control() const noexcept { return c_; }
  void check() const {
    if (c_.failed.load(std::memory_order_relaxed)) throw Aborted{};
  }
  // The barrier: returns when every worker has arrived, then the clock runs.
  void start() {
    c_.ready.fetch_add(1, std::memory_order_acq_rel);
    // acquire: pairs with the parent's release store of go.
    while (!c_.go.load(std::memory_order_acquire)) {
      check();
      ::sched_yield();
    }
    c_.start_ns[index_].store(now_ns(), std::memory_order_relaxed);
  }
  void finish(std::uint64_t count) {
    c_.count[index_].store(count, std::memory_order_relaxed);
    // release: the count is written first; pairs with wait_finished().
    c_.end_ns[index_].store(now_ns(), std::memory_order_release);
  }
  // Returns once worker `other` has called finish() (or throws Aborted).
  void wait_finished(int other) const {
    // acquire: pairs with the release in finish().
    while (c_.end_ns[other].load(std::memory_order_acquire) == 0) {
      check();
      ::usleep(50);
    }
  }

 private:
  Control& c_;
  int index_;
};

// Runs fn(); an exception other than Aborted is recorded in c. Returns
// false if fn threw one (the caller may then wake the other workers).
template <class Fn>
bool record_failure(Control& c, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const Aborted&) {
    return true;  // another worker failed first
  } catch (const std::exception& e) {
    c.fail(e.what());
  } catch (...) {
    c.fail("unknown exception");
  }
  return false;
}

struct RunOptions {
  std::vector<int> cpus;        // pin worker i to cpus[i mod size]; empty: no pinning
  double timeout_s = 60;        // from fork to the last exit; then every child is killed
  unsigned child_alarm_s = 120; // a child's own last resort
};

// Forks n workers running fn(Worker&) and waits for all of them. Throws
// std::runtime_error with the first worker's error (or the timeout).
template <class Fn>
void run_processes(int n, Control& c, const RunOptions& opt, Fn&& fn) {
  if (n > Control::kMaxWorkers) throw std::logic_error("run_processes: too many workers");
  std::vector<pid_t> live;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork_child(opt.child_alarm_s, [&]() -> int {
      if (!opt.cpus.empty()) pin_to_cpu_for(opt.cpus, i);
      Worker w(c, i);
      record_failure(c, [&] { fn(w); });
      return c.failed.load(std::memory_order_acquire) ? 1 : 0;
    });
    if (pid < 0) {
      c.fail("fork failed");
      break;
    }
    live.push_back(pid);
  }

  const std::int64_t hard_limit = now_ns() + static_cast<std::int64_t>(opt.timeout_s * 1e9);
  std::int64_t kill_at = 0;
  bool released = false;
  while (!live.empty()) {
    // acquire: pairs with fail()'s release store.
    const bool failed = c.failed.load(std::memory_order_acquire);
    if (!released && !failed && c.ready.load(std::memory_order_acquire) == n) {
      c.go.store(1, std::memory_order_release);  // release: pairs with start()'s acquire
      released = true;
    }
    if (now_ns() > hard_limit && !failed) c.fail("timed out (a worker hung)");
    if (c.failed.load(std::memory_order_acquire) && kill_at == 0) kill_at = now_ns() + 1'000'000'000;
    // Only this run's children: another child of the caller (a server it
    // started) must be left for its owner to reap.
    for (const pid_t pid : std::vector<pid_t>(live)) {
      int status = 0;
      const pid_t got = ::waitpid(pid, &status, WNOHANG);
      if (got == 0 || (got < 0 && errno == EINTR)) continue;
      live.erase(std::find(live.begin(), live.end(), pid));
      if (got < 0) continue;  // not ours any more
      if (WIFSIGNALED(status) && !c.failed.load(std::memory_order_acquire)) {
        c.fail(("worker killed by signal " + std::to_string(WTERMSIG(status))).c_str());
      } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                 !c.failed.load(std::memory_order_acquire)) {
        c.fail("worker exited with an error");
      } else if (!released && !c.failed.load(std::memory_order_acquire)) {
        c.fail("a worker exited before the barrier");
      }
    }
    if (live.empty()) break;
    if (kill_at != 0 && now_ns() > kill_at) {
      for (pid_t p : live) ::kill(p, SIGKILL);  // only this run's children
    }
    ::usleep(released ? 2000 : 100);  // rarely, once the workers run: they own the CPUs
  }
  if (c.failed.load(std::memory_order_acquire)) throw std::runtime_error(c.error);
}

}  // namespace sleet_bench
