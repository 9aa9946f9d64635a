// bench/channel_bench.cpp — Channel<T> measured against the machine's own
// limits and against the mechanisms users would otherwise pick, side by side
// in one run, with a table of ratios and targets at the end.
//
// What is measured
//   throughput   one producer and one consumer, as two threads of one process
//                or as two forked processes; 8, 64, 1024 and 4096-byte
//                messages; spsc and mpmc; blocking calls (send/receive with
//                the default spin budget) and pure spinning (try_send /
//                try_receive loops). mpmc also with 2 producer and 2 consumer
//                processes. Counters: items_per_second, bytes_per_second and,
//                from stats(), futex system calls per message.
//   round trip   ping-pong between two processes over two channels: spinning
//                (try_* loops), the default spin budget, and both sides
//                asleep on futexes (spin budget 0). A small Message through
//                ProcessManager send/receive against the bare Pipe<Message>
//                under it (manager_rows.hpp).
//   baselines    a bare cache-line ping-pong between two processes (one
//                atomic each way: the physical round-trip limit), memcpy,
//                a pipe (the same throughput and round-trip workloads) and
//                atomic_queue SPSC / MPMC (threads, plus the same queue in
//                shared memory between processes).
//
// How a run works
//   Every workload runs its workers (threads, or processes from fork())
//   through one harness, run_workers(): each worker opens its own end, warms
//   up (one lap of the ring, so first-touch faults and cold lines are not
//   timed), meets the others at a barrier, and records when it starts and
//   when it is done. The time of a run is first start to last finish, given
//   to Google Benchmark with UseManualTime. A consumer is done when it has
//   received every message, so queued-but-unreceived messages never count.
//   Each run uses a fresh segment named bench.<pid>.<tag>.<n>; its name is
//   removed as soon as every worker has it open, again at the end of the run
//   (also on error), and by a SIGINT/SIGTERM/SIGHUP handler. Children end in
//   _exit(), are always reaped, die with the parent (PR_SET_PDEATHSIG) and
//   carry an alarm() as a last resort against a hang. Workers are pinned to
//   distinct CPUs (worker i on allowed CPU i mod n; --no-pin to disable).
//
// Noise
//   The rows the targets need run in rounds, baseline and sleet back to
//   back (A B A B ...); a ratio is the median of the per-round ratios, shown
//   with its range. The other rows run once each.
//
// Flags (removed before benchmark::Initialize, everything else is Google
// Benchmark's):
//   --quick            only the rows the targets need, 3 rounds, short runs
//   --rounds=N         rounds of the target rows (default 9, quick 3)
//   --table-out=PATH   also write the ratio table as markdown to PATH
//   --no-pin           let the scheduler place the workers
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <span>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "manager_rows.hpp"
#include "sleet/sleet.hpp"

#if SLEET_BENCH_HAVE_ATOMIC_QUEUE
#include <atomic_queue/atomic_queue.h>
#endif

namespace {

using sleet::Channel;
using sleet::ChannelOptions;
using sleet::Topology;

// ---------------------------------------------------------------- settings

struct Settings {
  bool quick = false;
  bool pin = true;
  int rounds = 0;  // 0: the mode's default
  std::string table_out;
  std::string min_time = "default";  // for the table header only
};
Settings g_settings;
std::vector<int> g_cpus;  // CPUs this process may run on

using sleet_bench::cpu_pause;
using sleet_bench::now_ns;
using sleet_bench::Shared;

void pin_to_cpu_for(int index) noexcept {
  if (g_settings.pin) sleet_bench::pin_to_cpu_for(g_cpus, index);
}

// ---------------------------------------------------------- segment names

// Segments this process created and has not removed yet: the signal
// handler unlinks them (shm_unlink() is unlink() of /dev/shm/<name> on Linux).
sleet_bench::Cleanup g_registry;

// A unique channel name owned by this scope: removed when the scope ends,
// only by the process that made it (a forked child never removes it).
class ScopedName {
 public:
  explicit ScopedName(const char* tag)
      : name_("bench." + std::to_string(::getpid()) + "." + tag + "." + std::to_string(++counter_)),
        owner_(::getpid()),
        slot_(g_registry.add(sleet_bench::Cleanup::kUnlink, "/dev/shm/sleet." + name_)) {
    unlink();  // a leftover of a crashed run with a recycled pid
  }
  ~ScopedName() {
    if (::getpid() != owner_) return;
    unlink();
    g_registry.drop(slot_);
  }
  ScopedName(const ScopedName&) = delete;
  ScopedName& operator=(const ScopedName&) = delete;

  const std::string& str() const noexcept { return name_; }
  void unlink() noexcept {
    try {
      (void)Channel<char>::remove(name_);
    } catch (...) {
    }
  }

 private:
  static inline int counter_ = 0;
  std::string name_;
  pid_t owner_;
  int slot_;
};

// ------------------------------------------------------------ the harness

enum class Mode { threads, processes };
const char* to_string(Mode m) { return m == Mode::threads ? "threads" : "procs"; }

// Control block of one run, shared by the parent and its workers: the
// harness's barrier, failure flag and times, plus what the workloads check.
struct Ctrl : sleet_bench::Control {
  alignas(128) std::atomic<int> producers_done{0};
  std::atomic<std::uint64_t> checksum{0};
  std::atomic<double> typical_ns{0};  // round trips: median of batches (0: not measured)
};

using sleet_bench::Aborted;  // thrown in a worker when another one failed

class Worker : public sleet_bench::Worker {
 public:
  Worker(Ctrl& c, int index) : sleet_bench::Worker(c, index), c_(c) {}
  Ctrl& ctrl() const noexcept { return c_; }
  void finish() { sleet_bench::Worker::finish(0); }

 private:
  Ctrl& c_;
};

// Between polls of a try_* loop: a pause, and now and then a look at whether
// another worker failed (so nothing spins forever on a dead peer).
inline void spin_wait(const Worker& w, std::uint32_t i, bool pause) {
  if ((i & 0xFFFFF) == 0) w.check();
  if (pause) cpu_pause();
}

struct Hooks {
  std::function<void()> on_ready;  // parent, all workers at the barrier, before `go`
  std::function<void()> on_abort;  // the failing worker (or the parent): wake the others
};

// Runs fn(worker) for workers 0..n-1 in threads or forked processes and
// returns the seconds from the first start() to the last finish(). Throws
// std::runtime_error with the first worker's error.
template <class Fn>
double run_workers(Mode mode, int n, Ctrl& c, const Hooks& hooks, Fn&& fn) {
  auto body = [&](int i) noexcept {
    pin_to_cpu_for(i);
    Worker w(c, i);
    if (!sleet_bench::record_failure(c, [&] { fn(w); }) && hooks.on_abort) hooks.on_abort();
  };
  auto wait_ready = [&](auto&& dead) {
    const std::int64_t limit = now_ns() + 30'000'000'000;  // 30 s to warm up
    while (c.ready.load(std::memory_order_acquire) < n) {
      if (c.failed.load(std::memory_order_acquire) || dead()) return false;
      if (now_ns() > limit) {
        c.fail("workers did not reach the barrier within 30 s");
        return false;
      }
      ::usleep(20);
    }
    return true;
  };

  if (mode == Mode::threads) {
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) threads.emplace_back(body, i);
    if (wait_ready([] { return false; })) {
      if (hooks.on_ready) hooks.on_ready();
      c.go.store(1, std::memory_order_release);  // release: pairs with start()'s acquire
    } else if (hooks.on_abort) {
      hooks.on_abort();
    }
    for (auto& t : threads) t.join();
  } else {
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) {
      const pid_t pid = sleet_bench::fork_child(300, [&] {
        body(i);
        return c.failed.load(std::memory_order_acquire) ? 1 : 0;
      });
      if (pid < 0) {
        c.fail("fork failed");
        break;
      }
      pids.push_back(pid);
    }
    std::vector<pid_t> live = pids;
    auto reap = [&](pid_t pid, int status) {
      live.erase(std::remove(live.begin(), live.end(), pid), live.end());
      if (WIFSIGNALED(status)) {
        char msg[96];
        std::snprintf(msg, sizeof msg, "worker process %d killed by signal %d", static_cast<int>(pid),
                      WTERMSIG(status));
        c.fail(msg);
        if (hooks.on_abort) hooks.on_abort();
      } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                 !c.failed.load(std::memory_order_acquire)) {
        c.fail("worker process exited with an error");
        if (hooks.on_abort) hooks.on_abort();
      }
    };
    const bool all_ready = static_cast<int>(pids.size()) == n && wait_ready([&] {
      for (pid_t pid : std::vector<pid_t>(live)) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
          reap(pid, status);
          return true;  // nobody exits before `go`
        }
      }
      return false;
    });
    if (all_ready) {
      if (hooks.on_ready) hooks.on_ready();
      c.go.store(1, std::memory_order_release);  // release: pairs with start()'s acquire
    } else {
      if (!c.failed.load(std::memory_order_acquire)) c.fail("a worker process exited early");
      if (hooks.on_abort) hooks.on_abort();
    }
    // Reap everyone. After a failure the survivors get a grace period to
    // notice (they poll `failed`, or wake on a closed channel); a survivor
    // stuck in a system call (a pipe peer that died) is then killed.
    std::int64_t kill_at = 0;
    while (!live.empty()) {
      int status = 0;
      const bool failed = c.failed.load(std::memory_order_acquire);
      if (failed && kill_at == 0) kill_at = now_ns() + 2'000'000'000;
      const pid_t pid = ::waitpid(-1, &status, failed ? WNOHANG : 0);
      if (pid < 0) {
        if (errno == EINTR) continue;
        break;  // ECHILD: nothing left
      }
      if (pid == 0) {  // WNOHANG, nobody exited yet
        if (now_ns() > kill_at) {
          for (pid_t p : live) ::kill(p, SIGKILL);  // only our own children
        }
        ::usleep(1000);
        continue;
      }
      if (std::find(live.begin(), live.end(), pid) != live.end()) reap(pid, status);
    }
  }

  if (c.failed.load(std::memory_order_acquire)) throw std::runtime_error(c.error);
  std::int64_t first = INT64_MAX, last = 0;
  for (int i = 0; i < n; ++i) {
    const auto s = c.start_ns[i].load(std::memory_order_relaxed);
    const auto e = c.end_ns[i].load(std::memory_order_relaxed);
    if (s > 0) first = std::min(first, s);
    last = std::max(last, e);
  }
  if (first == INT64_MAX || last < first) throw std::runtime_error("a worker did not record its time");
  return static_cast<double>(last - first) * 1e-9;
}

// Runs body(n) -> seconds once with n = the iterations Google Benchmark asks
// for, and reports a failure as a skipped run instead of a crash.
template <class Body>
void run_batches(benchmark::State& state, Body&& body) {
  const benchmark::IterationCount n = state.max_iterations;
  try {
    while (state.KeepRunningBatch(n)) state.SetIterationTime(body(static_cast<std::int64_t>(n)));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

std::uint64_t sum_1_to(std::uint64_t n) { return n * (n + 1) / 2; }

// Untimed warm-up messages: one lap of the ring, but never more than the
// timed part (the short trials Google Benchmark starts with are discarded).
std::int64_t warm_for(std::int64_t n, std::uint64_t lap) {
  return std::min(n, static_cast<std::int64_t>(lap));
}

void check_sum(const Ctrl& c, std::uint64_t expected) {
  const auto got = c.checksum.load(std::memory_order_relaxed);
  if (got != expected) {
    throw std::runtime_error("checksum mismatch: got " + std::to_string(got) + ", expected " +
                             std::to_string(expected));
  }
}

// ------------------------------------------------------------- messages

template <std::size_t N>
struct Msg {
  std::uint64_t seq;
  std::array<std::byte, N - 8> pad;
};
template <>
struct Msg<8> {
  std::uint64_t seq;
};
static_assert(sizeof(Msg<8>) == 8 && sizeof(Msg<64>) == 64 && sizeof(Msg<1024>) == 1024 &&
              sizeof(Msg<4096>) == 4096);

constexpr std::uint64_t kSentinel = ~std::uint64_t{0};

// ------------------------------------------------------------- endpoints
//
// A workload talks to an endpoint: push(worker, v) sends a message carrying
// v, pop(worker) returns the v of the next message.

enum class Wait { block, spin };
const char* to_string(Wait w) { return w == Wait::block ? "block" : "spin"; }

// One Channel<Msg<N>> object. Wait::block uses send()/receive() (spin budget,
// then futex); Wait::spin uses try_send()/try_receive() loops, with a pause
// between polls unless Pause is false (the latency rows, like the bare
// ping-pong, poll flat out).
template <std::size_t N, Wait W, bool Pause = true>
class ChannelEnd {
 public:
  explicit ChannelEnd(const std::string& name) : ch_(Channel<Msg<N>>::open(name)) {}
  void push(const Worker& w, std::uint64_t v) {
    msg_.seq = v;
    if constexpr (W == Wait::block) {
      ch_.send(msg_);
    } else {
      for (std::uint32_t i = 1; !ch_.try_send(msg_); ++i) spin_wait(w, i, Pause);
    }
  }
  std::uint64_t pop(const Worker& w) {
    if constexpr (W == Wait::block) {
      return ch_.receive().seq;
    } else {
      for (std::uint32_t i = 1;; ++i) {
        if (auto m = ch_.try_receive()) return m->seq;
        spin_wait(w, i, Pause);
      }
    }
  }

 private:
  Channel<Msg<N>> ch_;
  Msg<N> msg_{};
};

// send_batch()/receive_batch() in batches of kBatch: push() collects
// messages and sends a full batch; pop() refills from one receive_batch()
// (waiting with receive_batch_for() when nothing is queued). The stream
// must be a multiple of kBatch messages (BM_Channel_Batch rounds it up).
constexpr std::size_t kBatch = 64;
class BatchEnd {
 public:
  explicit BatchEnd(const std::string& name) : ch_(Channel<Msg<8>>::open(name)) {}
  void push(const Worker&, std::uint64_t v) {
    out_[fill_++].seq = v;
    if (fill_ == kBatch) {
      ch_.send_batch(std::span<const Msg<8>>(out_.data(), kBatch));
      fill_ = 0;
    }
  }
  std::uint64_t pop(const Worker& w) {
    for (std::uint32_t i = 1; next_ == got_; ++i) {
      next_ = got_ = 0;
      (void)ch_.receive_batch_for([this](const Msg<8>& m) { in_[got_++] = m.seq; }, kBatch,
                                  std::chrono::milliseconds(100));
      spin_wait(w, i, false);
    }
    return in_[next_++];
  }

 private:
  Channel<Msg<8>> ch_;
  std::array<Msg<8>, kBatch> out_{};
  std::size_t fill_ = 0;
  std::array<std::uint64_t, kBatch> in_{};
  std::size_t next_ = 0, got_ = 0;
};

// A pipe (or two): write()/read() of whole N-byte messages.
template <std::size_t N>
class PipeEnd {
 public:
  PipeEnd(int read_fd, int write_fd) : rfd_(read_fd), wfd_(write_fd) {}
  void push(const Worker& w, std::uint64_t v) {
    std::memcpy(buf_.data(), &v, sizeof v);
    for (std::size_t done = 0; done < N;) {
      const ssize_t k = ::write(wfd_, buf_.data() + done, N - done);
      if (k < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "pipe write");
      }
      done += static_cast<std::size_t>(k);
    }
    w.check();
  }
  std::uint64_t pop(const Worker& w) {
    for (std::size_t done = 0; done < N;) {
      const ssize_t k = ::read(rfd_, buf_.data() + done, N - done);
      if (k == 0) throw std::runtime_error("pipe closed");
      if (k < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "pipe read");
      }
      done += static_cast<std::size_t>(k);
    }
    w.check();
    std::uint64_t v;
    std::memcpy(&v, buf_.data(), sizeof v);
    return v;
  }

 private:
  int rfd_, wfd_;
  alignas(64) std::array<std::byte, N> buf_{};
};

struct PipeFds {
  int fd[2] = {-1, -1};
  PipeFds() {
    if (::pipe(fd) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  }
  // After a failure: wakes a peer blocked in write() (drain) or read() (one
  // page of bytes), through new non-blocking open file descriptions so the
  // caller never blocks itself. The woken peer then sees `failed`.
  void unstick() const noexcept {
    char path[64], buf[4096] = {};
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd[0]);
    if (const int r = ::open(path, O_RDONLY | O_NONBLOCK); r >= 0) {
      while (::read(r, buf, sizeof buf) > 0) {
      }
      ::close(r);
    }
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd[1]);
    if (const int wr = ::open(path, O_WRONLY | O_NONBLOCK); wr >= 0) {
      (void)!::write(wr, buf, sizeof buf);
      ::close(wr);
    }
  }
  ~PipeFds() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  PipeFds(const PipeFds&) = delete;
  PipeFds& operator=(const PipeFds&) = delete;
};

// Sends on one end, receives on another (round trips over two channels).
template <class Out, class In>
struct Duplex {
  Out out;
  In in;
  void push(const Worker& w, std::uint64_t v) { out.push(w, v); }
  std::uint64_t pop(const Worker& w) { return in.pop(w); }
};

// The physical limit: one atomic each way, polled flat out.
struct PingPongLines {
  alignas(128) std::atomic<std::uint64_t> ping{0};
  alignas(128) std::atomic<std::uint64_t> pong{0};
};
class LineEnd {
 public:
  LineEnd(std::atomic<std::uint64_t>& out, std::atomic<std::uint64_t>& in) : out_(out), in_(in) {}
  void push(const Worker&, std::uint64_t v) {
    out_.store(v, std::memory_order_release);  // release: pairs with the peer's acquire in pop()
  }
  std::uint64_t pop(const Worker& w) {
    for (std::uint32_t i = 1;; ++i) {
      const std::uint64_t v = in_.load(std::memory_order_acquire);  // pairs with push()
      if (v != last_) return last_ = v;
      spin_wait(w, i, false);
    }
  }

 private:
  std::atomic<std::uint64_t>& out_;
  std::atomic<std::uint64_t>& in_;
  std::uint64_t last_ = 0;
};

#if SLEET_BENCH_HAVE_ATOMIC_QUEUE
// atomic_queue's own blocking push()/pop() (busy-wait with pause), as its
// benchmarks use them. NIL (0) cannot be stored, so values start at 1.
using AqSpsc = atomic_queue::AtomicQueue<std::uint64_t, 65536, 0, true, true, false, true>;
using AqMpmc = atomic_queue::AtomicQueue<std::uint64_t, 65536>;
constexpr std::int64_t kAqCapacity = 65536;

template <class Q>
struct AqEnd {
  Q& q;
  void push(const Worker&, std::uint64_t v) { q.push(v); }
  std::uint64_t pop(const Worker&) { return q.pop(); }
};
#endif

// ------------------------------------------------------------- typed payloads
//
// Messages that go through cereal (issue: "any type"): a std::string of N
// bytes and a struct holding a std::vector<int> of 16. The value v rides in
// the first 8 bytes so the checksum still covers every message.

template <std::size_t N>
struct Str {
  static std::string make(std::uint64_t v) {
    std::string s(N, 'x');
    std::memcpy(s.data(), &v, sizeof v);
    return s;
  }
  static std::uint64_t value(const std::string& s) {
    std::uint64_t v = 0;
    std::memcpy(&v, s.data(), sizeof v);
    return v;
  }
  using type = std::string;
  static constexpr std::size_t max_size = N + 8;  // cereal's length prefix
  static std::string name() { return "string" + std::to_string(N); }
};

struct VecStruct {
  std::vector<int> v;
  template <class A>
  void serialize(A& a) {
    a(v);
  }
};
struct Vec16 {
  static VecStruct make(std::uint64_t v) {
    VecStruct m{std::vector<int>(16, 7)};
    std::memcpy(m.v.data(), &v, sizeof v);
    return m;
  }
  static std::uint64_t value(const VecStruct& m) {
    std::uint64_t v = 0;
    std::memcpy(&v, m.v.data(), sizeof v);
    return v;
  }
  using type = VecStruct;
  static constexpr std::size_t max_size = 16 * sizeof(int) + 8;
  static std::string name() { return "vector16"; }
};

// send()/receive() of a typed value, built once per message like user code would.
template <class P>
class TypedEnd {
 public:
  explicit TypedEnd(const std::string& name) : ch_(Channel<typename P::type>::open(name)) {}
  void push(const Worker&, std::uint64_t v) { ch_.send(P::make(v)); }
  std::uint64_t pop(const Worker&) { return P::value(ch_.receive()); }

 private:
  Channel<typename P::type> ch_;
};

// Passive mode: a handler counts what the dispatcher thread hands it; pop()
// waits for the next message and returns the growth of the sum, so the
// consumer's total is the checksum as in the active rows.
class PassiveEnd {
 public:
  explicit PassiveEnd(const std::string& name) : ch_(Channel<Msg<8>>::open(name)) {
    ch_.on_receive([this](const Msg<8>& m) {
      // relaxed/release: one writer (the dispatcher); pop() reads count with
      // acquire and then the sum.
      sum_.store(sum_.load(std::memory_order_relaxed) + m.seq, std::memory_order_relaxed);
      count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    });
  }
  void push(const Worker&, std::uint64_t) { std::abort(); }  // receive side only
  // The dispatcher thread is the receiver being measured: this thread only
  // collects, and naps rather than spins, so on a 2-CPU machine it does not
  // take the CPU the dispatcher (or the sender) needs. A nap costs at most
  // kNap at the end of a run of millions of messages.
  std::uint64_t pop(const Worker& w) {
    constexpr auto kNap = std::chrono::microseconds(50);
    for (std::uint32_t i = 1; count_.load(std::memory_order_acquire) <= taken_; ++i) {
      if (i < 64) {
        spin_wait(w, i, true);
      } else {
        w.check();
        std::this_thread::sleep_for(kNap);
      }
    }
    ++taken_;
    const std::uint64_t sum = sum_.load(std::memory_order_relaxed);
    const std::uint64_t delta = sum - returned_;
    returned_ = sum;
    return delta;
  }

 private:
  Channel<Msg<8>> ch_;
  std::atomic<std::uint64_t> sum_{0}, count_{0};
  std::uint64_t taken_ = 0, returned_ = 0;
};

// ------------------------------------------------------------- workloads

// Worker 0 sends n messages (v = 1..n) to worker 1, after `warm` untimed ones.
template <class MakeEnd>
double stream_1x1(Mode mode, Ctrl& c, std::int64_t n, std::int64_t warm, const Hooks& hooks,
                  MakeEnd make) {
  return run_workers(mode, 2, c, hooks, [&](Worker& w) {
    auto end = make(w);
    if (w.index() == 0) {
      for (std::int64_t i = 0; i < warm; ++i) end.push(w, 1);
      w.start();
      for (std::int64_t i = 1; i <= n; ++i) end.push(w, static_cast<std::uint64_t>(i));
      w.finish();
    } else {
      for (std::int64_t i = 0; i < warm; ++i) (void)end.pop(w);
      w.start();
      std::uint64_t sum = 0;
      for (std::int64_t i = 0; i < n; ++i) sum += end.pop(w);
      w.finish();
      c.checksum.fetch_add(sum, std::memory_order_relaxed);  // relaxed: read after reaping
    }
  });
}

// Workers 0 and 1 send, 2 and 3 receive; n messages in all. Each phase ends
// with one sentinel per consumer, sent by the producer that finishes last; a
// consumer stops at its first sentinel, so each gets exactly one. Phase 1 is
// the untimed warm-up (`warm` messages per producer).
template <class MakeEnd>
double stream_2x2(Mode mode, Ctrl& c, std::int64_t n, std::int64_t warm, const Hooks& hooks,
                  MakeEnd make) {
  return run_workers(mode, 4, c, hooks, [&](Worker& w) {
    auto end = make(w);
    auto produce = [&](std::int64_t count, int phase) {
      for (std::int64_t i = 1; i <= count; ++i) end.push(w, static_cast<std::uint64_t>(i));
      // acq_rel: the last producer's sentinels follow every message of both.
      if (c.producers_done.fetch_add(1, std::memory_order_acq_rel) + 1 == 2 * phase) {
        end.push(w, kSentinel);
        end.push(w, kSentinel);
      }
    };
    auto consume = [&] {
      std::uint64_t sum = 0;
      for (std::uint64_t v; (v = end.pop(w)) != kSentinel;) sum += v;
      return sum;
    };
    if (w.index() < 2) {
      produce(warm, 1);
      w.start();
      produce(w.index() == 0 ? (n + 1) / 2 : n / 2, 2);
      w.finish();
    } else {
      (void)consume();
      w.start();
      const std::uint64_t sum = consume();
      w.finish();
      c.checksum.fetch_add(sum, std::memory_order_relaxed);  // relaxed: read after reaping
    }
  });
}
std::uint64_t sum_2x2(std::int64_t n) {
  return sum_1_to(static_cast<std::uint64_t>((n + 1) / 2)) + sum_1_to(static_cast<std::uint64_t>(n / 2));
}

// Worker 0 sends v, worker 1 sends it back; n timed round trips after `warm`.
// Worker 0 also times every batch of kRttBatch round trips; the median batch
// (ctrl.typical_ns, per round trip) shrugs off the odd descheduling that
// inflates the mean on a busy machine.
constexpr std::int64_t kRttBatch = 64;

template <class MakeEnd>
double round_trips(Mode mode, Ctrl& c, std::int64_t n, std::int64_t warm, const Hooks& hooks,
                   MakeEnd make) {
  return run_workers(mode, 2, c, hooks, [&](Worker& w) {
    auto end = make(w);
    const auto total = static_cast<std::uint64_t>(warm + n);
    const auto first = static_cast<std::uint64_t>(warm + 1);
    std::vector<std::int64_t> marks;
    if (w.index() == 0) marks.reserve(static_cast<std::size_t>(n / kRttBatch + 2));
    for (std::uint64_t i = 1; i <= total; ++i) {
      if (i == first) {
        w.start();
        if (w.index() == 0) marks.push_back(now_ns());
      }
      if (w.index() == 0) {
        end.push(w, i);
        if (end.pop(w) != i) throw std::runtime_error("round trip: reply out of order");
        if (i >= first && (i - first + 1) % kRttBatch == 0) marks.push_back(now_ns());
      } else {
        end.push(w, end.pop(w));
      }
    }
    w.finish();
    if (marks.size() >= 9) {  // at least 8 batches, else the mean stands
      std::vector<double> batch;
      for (std::size_t k = 1; k < marks.size(); ++k) {
        batch.push_back(static_cast<double>(marks[k] - marks[k - 1]) / kRttBatch);
      }
      std::nth_element(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(batch.size() / 2), batch.end());
      c.typical_ns.store(batch[batch.size() / 2], std::memory_order_relaxed);  // read after reaping
    }
  });
}

// ------------------------------------------------------------ statistics

// Futex system calls (and full rings) per message, from ChannelStats.
class FutexCounters {
 public:
  void add(const sleet::ChannelStats& before, const sleet::ChannelStats& after, std::int64_t msgs) {
    wakes_ += (after.send_wakes - before.send_wakes) + (after.receive_wakes - before.receive_wakes);
    sleeps_ += (after.send_sleeps - before.send_sleeps) + (after.receive_sleeps - before.receive_sleeps);
    full_ += after.times_full - before.times_full;
    msgs_ += static_cast<double>(msgs);
  }
  void report(benchmark::State& state) const {
    if (msgs_ == 0) return;
    state.counters["futex/msg"] = static_cast<double>(wakes_ + sleeps_) / msgs_;
    state.counters["wakes/msg"] = static_cast<double>(wakes_) / msgs_;
    state.counters["sleeps/msg"] = static_cast<double>(sleeps_) / msgs_;
    // Sends that found the ring full: which side is the bottleneck.
    state.counters["full/msg"] = static_cast<double>(full_) / msgs_;
  }

 private:
  std::uint64_t wakes_ = 0, sleeps_ = 0, full_ = 0;
  double msgs_ = 0;
};

// Round trips: the median of 64-round-trip batches, next to the mean time.
void report_typical(benchmark::State& state, double typical_ns) {
  if (typical_ns > 0) state.counters["p50_ns"] = typical_ns;
}

void set_rates(benchmark::State& state, std::size_t bytes_per_item) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes_per_item));
}

// ------------------------------------------------------------ benchmarks

// capacity 0: the default of ChannelOptions.
template <std::size_t N, Wait W>
void BM_Channel_Throughput(benchmark::State& state, Topology topo, Mode mode, std::size_t capacity) {
  FutexCounters futex;
  run_batches(state, [&](std::int64_t n) {
    ScopedName name("tp");
    ChannelOptions opt;
    opt.topology = topo;
    if (capacity != 0) opt.capacity = capacity;
    auto ch = Channel<Msg<N>>::create(name.str(), opt);
    Shared<Ctrl> c;
    sleet::ChannelStats before{};
    const Hooks hooks{[&] { before = ch.stats(), name.unlink(); }, [&] { ch.close(); }};
    const double secs = stream_1x1(mode, *c, n, warm_for(n, ch.capacity()), hooks,
                                   [&](Worker&) { return ChannelEnd<N, W>(name.str()); });
    check_sum(*c, sum_1_to(static_cast<std::uint64_t>(n)));
    futex.add(before, ch.stats(), n);
    return secs;
  });
  set_rates(state, N);
  futex.report(state);
}

template <class P>
void BM_Channel_Typed(benchmark::State& state, Topology topo) {
  FutexCounters futex;
  run_batches(state, [&](std::int64_t n) {
    ScopedName name("typed");
    ChannelOptions opt;
    opt.topology = topo;
    opt.max_message_size = P::max_size;
    auto ch = Channel<typename P::type>::create(name.str(), opt);
    Shared<Ctrl> c;
    sleet::ChannelStats before{};
    const Hooks hooks{[&] { before = ch.stats(), name.unlink(); }, [&] { ch.close(); }};
    const double secs = stream_1x1(Mode::processes, *c, n, warm_for(n, ch.capacity()), hooks,
                                   [&](Worker&) { return TypedEnd<P>(name.str()); });
    check_sum(*c, sum_1_to(static_cast<std::uint64_t>(n)));
    futex.add(before, ch.stats(), n);
    return secs;
  });
  set_rates(state, P::max_size - 8);
  futex.report(state);
}

// Worker 0 sends with send(); worker 1 receives in passive mode.
class PassivePair {
 public:
  PassivePair(bool sender, const std::string& name) {
    if (sender) {
      tx_.emplace(name);
    } else {
      rx_ = std::make_unique<PassiveEnd>(name);  // its handler captures its address
    }
  }
  void push(const Worker& w, std::uint64_t v) { tx_->push(w, v); }
  std::uint64_t pop(const Worker& w) { return rx_->pop(w); }

 private:
  std::optional<ChannelEnd<8, Wait::block>> tx_;
  std::unique_ptr<PassiveEnd> rx_;
};

// Worker 1 receives in passive mode (one handler); worker 0 sends as usual.
void BM_Channel_Passive(benchmark::State& state, Topology topo) {
  FutexCounters futex;
  run_batches(state, [&](std::int64_t n) {
    ScopedName name("passive");
    ChannelOptions opt;
    opt.topology = topo;
    auto ch = Channel<Msg<8>>::create(name.str(), opt);
    Shared<Ctrl> c;
    sleet::ChannelStats before{};
    const Hooks hooks{[&] { before = ch.stats(), name.unlink(); }, [&] { ch.close(); }};
    const double secs = stream_1x1(Mode::processes, *c, n, warm_for(n, ch.capacity()), hooks,
                                   [&](Worker& w) { return PassivePair(w.index() == 0, name.str()); });
    check_sum(*c, sum_1_to(static_cast<std::uint64_t>(n)));
    futex.add(before, ch.stats(), n);
    return secs;
  });
  set_rates(state, 8);
  futex.report(state);
}

// Batches of kBatch each way (BatchEnd); n and the warm-up rounded up to
// whole batches.
void BM_Channel_Batch(benchmark::State& state, Topology topo) {
  FutexCounters futex;
  run_batches(state, [&](std::int64_t n) {
    const auto whole = [](std::int64_t k) {
      return (k + static_cast<std::int64_t>(kBatch) - 1) / static_cast<std::int64_t>(kBatch) *
             static_cast<std::int64_t>(kBatch);
    };
    n = whole(n);
    ScopedName name("batch");
    ChannelOptions opt;
    opt.topology = topo;
    auto ch = Channel<Msg<8>>::create(name.str(), opt);
    Shared<Ctrl> c;
    sleet::ChannelStats before{};
    const Hooks hooks{[&] { before = ch.stats(), name.unlink(); }, [&] { ch.close(); }};
    const double secs = stream_1x1(Mode::processes, *c, n, whole(warm_for(n, ch.capacity())), hooks,
                                   [&](Worker&) { return BatchEnd(name.str()); });
    check_sum(*c, sum_1_to(static_cast<std::uint64_t>(n)));
    futex.add(before, ch.stats(), n);
    return secs;
  });
  set_rates(state, 8);
  futex.report(state);
}

template <Wait W>
void BM_Channel_Mpmc2x2(benchmark::State& state, std::size_t capacity) {
  FutexCounters futex;
  run_batches(state, [&](std::int64_t n) {
    ScopedName name("mpmc");
    ChannelOptions opt;
    opt.topology = Topology::mpmc;
    if (capacity != 0) opt.capacity = capacity;
    auto ch = Channel<Msg<8>>::create(name.str(), opt);
    Shared<Ctrl> c;
    sleet::ChannelStats before{};
    const Hooks hooks{[&] { before = ch.stats(), name.unlink(); }, [&] { ch.close(); }};
    const double secs =
        stream_2x2(Mode::processes, *c, n, warm_for(n, ch.capacity() / 2), hooks,
                   [&](Worker&) { return ChannelEnd<8, W>(name.str()); });
    check_sum(*c, sum_2x2(n));
    futex.add(before, ch.stats(), n);
    return secs;
  });
  set_rates(state, 8);
  futex.report(state);
}

// Spin: try_* loops polled flat out. Block: send/receive with the channel's
// spin budget (`spin`; 0 means both sides sleep on the futex every time).
template <Wait W>
void BM_Channel_RoundTrip(benchmark::State& state, Topology topo, std::chrono::nanoseconds spin) {
  FutexCounters futex;
  double typical = 0;
  run_batches(state, [&](std::int64_t n) {
    ScopedName ping("ping"), pong("pong");
    ChannelOptions opt;
    opt.topology = topo;
    opt.spin = spin;
    auto a = Channel<Msg<8>>::create(ping.str(), opt);
    auto b = Channel<Msg<8>>::create(pong.str(), opt);
    Shared<Ctrl> c;
    sleet::ChannelStats before_a{}, before_b{};
    const Hooks hooks{[&] {
                        before_a = a.stats(), before_b = b.stats();
                        ping.unlink(), pong.unlink();
                      },
                      [&] { a.close(), b.close(); }};
    using End = ChannelEnd<8, W, false>;
    const double secs = round_trips(Mode::processes, *c, n, warm_for(n, 1000), hooks, [&](Worker& w) {
      return w.index() == 0 ? Duplex<End, End>{End(ping.str()), End(pong.str())}
                            : Duplex<End, End>{End(pong.str()), End(ping.str())};
    });
    futex.add(before_a, a.stats(), n);
    futex.add(before_b, b.stats(), n);
    typical = c->typical_ns.load(std::memory_order_relaxed);
    return secs;
  });
  state.SetItemsProcessed(state.iterations());
  futex.report(state);  // per message (a round trip is two)
  report_typical(state, typical);
}

template <std::size_t N>
void BM_Pipe_Throughput(benchmark::State& state, Mode mode) {
  run_batches(state, [&](std::int64_t n) {
    PipeFds p;
    Shared<Ctrl> c;
    const double secs = stream_1x1(mode, *c, n, warm_for(n, 1024), Hooks{{}, [&] { p.unstick(); }},
                                   [&](Worker&) { return PipeEnd<N>(p.fd[0], p.fd[1]); });
    check_sum(*c, sum_1_to(static_cast<std::uint64_t>(n)));
    return secs;
  });
  set_rates(state, N);
}

void BM_Pipe_RoundTrip(benchmark::State& state) {
  double typical = 0;
  run_batches(state, [&](std::int64_t n) {
    PipeFds ping, pong;
    Shared<Ctrl> c;
    const Hooks hooks{{}, [&] { ping.unstick(), pong.unstick(); }};
    const double secs = round_trips(Mode::processes, *c, n, warm_for(n, 1000), hooks, [&](Worker& w) {
      return w.index() == 0 ? PipeEnd<8>(pong.fd[0], ping.fd[1]) : PipeEnd<8>(ping.fd[0], pong.fd[1]);
    });
    typical = c->typical_ns.load(std::memory_order_relaxed);
    return secs;
  });
  state.SetItemsProcessed(state.iterations());
  report_typical(state, typical);
}

// ProcessManager <-> child against the bare Pipe<Message> under it
// (manager_rows.hpp): run(n) -> Timing.
template <class Run>
void message_round_trip_row(benchmark::State& state, Run&& run) {
  double typical = 0;
  run_batches(state, [&](std::int64_t n) {
    const sleet_bench::manager::Timing t = run(n);
    typical = t.p50_ns;
    return t.seconds;
  });
  state.SetItemsProcessed(state.iterations());
  report_typical(state, typical);
}

void BM_Pipe_Message_RoundTrip(benchmark::State& state) {
  message_round_trip_row(state, [](std::int64_t n) {
    ScopedName name("msgpipe");
    return sleet_bench::manager::pipe_message_round_trips(name.str(), n, g_cpus, g_settings.pin);
  });
}

void BM_Manager_RoundTrip(benchmark::State& state) {
  message_round_trip_row(
      state, [](std::int64_t n) { return sleet_bench::manager::manager_round_trips(n, g_cpus, g_settings.pin); });
}

void BM_CacheLine_PingPong(benchmark::State& state) {
  double typical = 0;
  run_batches(state, [&](std::int64_t n) {
    Shared<PingPongLines> lines;
    Shared<Ctrl> c;
    const double secs = round_trips(Mode::processes, *c, n, warm_for(n, 10000), Hooks{}, [&](Worker& w) {
      return w.index() == 0 ? LineEnd(lines->ping, lines->pong) : LineEnd(lines->pong, lines->ping);
    });
    typical = c->typical_ns.load(std::memory_order_relaxed);
    return secs;
  });
  state.SetItemsProcessed(state.iterations());
  report_typical(state, typical);
}

void BM_Memcpy(benchmark::State& state, std::size_t n) {
  auto* src = static_cast<std::byte*>(std::aligned_alloc(64, 8192));
  auto* dst = static_cast<std::byte*>(std::aligned_alloc(64, 8192));
  std::memset(src, 1, 8192);
  std::memset(dst, 0, 8192);
  benchmark::DoNotOptimize(src);
  benchmark::DoNotOptimize(dst);
  for (auto _ : state) {
    std::memcpy(dst, src, n);
    benchmark::ClobberMemory();
  }
  std::free(src);
  std::free(dst);
  set_rates(state, n);
}

#if SLEET_BENCH_HAVE_ATOMIC_QUEUE
void BM_AtomicQueue_Spsc(benchmark::State& state, Mode mode) {
  run_batches(state, [&](std::int64_t n) {
    Shared<AqSpsc> q;  // shared memory works for threads and for forked processes alike
    Shared<Ctrl> c;
    const double secs =
        stream_1x1(mode, *c, n, warm_for(n, kAqCapacity), Hooks{}, [&](Worker&) { return AqEnd<AqSpsc>{*q}; });
    check_sum(*c, sum_1_to(static_cast<std::uint64_t>(n)));
    return secs;
  });
  set_rates(state, 8);
}

void BM_AtomicQueue_Mpmc2x2(benchmark::State& state, Mode mode) {
  run_batches(state, [&](std::int64_t n) {
    Shared<AqMpmc> q;
    Shared<Ctrl> c;
    const double secs = stream_2x2(mode, *c, n, warm_for(n, kAqCapacity / 2), Hooks{},
                                   [&](Worker&) { return AqEnd<AqMpmc>{*q}; });
    check_sum(*c, sum_2x2(n));
    return secs;
  });
  set_rates(state, 8);
}
#endif

// ------------------------------------------------------------- the rows

std::string tp_row(Topology t, Mode m, Wait w, std::size_t n) {
  return std::string("BM_Channel_Throughput/") + (t == Topology::spsc ? "spsc/" : "mpmc/") +
         to_string(m) + "/" + to_string(w) + "/" + std::to_string(n) + "B";
}
template <class P>
std::string typed_row(Topology t) {
  return std::string("BM_Channel_Typed/") + (t == Topology::spsc ? "spsc" : "mpmc") + "/procs/" + P::name();
}
std::string passive_row(Topology t) {
  return std::string("BM_Channel_Passive/") + (t == Topology::spsc ? "spsc" : "mpmc") + "/procs/8B";
}
std::string batch_row(Topology t) {
  return std::string("BM_Channel_Batch/") + (t == Topology::spsc ? "spsc" : "mpmc") + "/procs/8B/64";
}
std::string mpmc2x2_row(Wait w) { return std::string("BM_Channel_Mpmc2x2/procs/") + to_string(w) + "/8B"; }
// The same rows with atomic_queue's capacity (65536), for a like-for-like comparison.
constexpr std::size_t kBigCapacity = 65536;
std::string big(const std::string& row) { return row + "/cap65536"; }
std::string rtt_row(Topology t, const char* how) {
  return std::string("BM_Channel_RoundTrip/") + (t == Topology::spsc ? "spsc" : "mpmc") + "/procs/" + how;
}
std::string pipe_row(Mode m, std::size_t n) {
  return std::string("BM_Pipe_Throughput/") + to_string(m) + "/" + std::to_string(n) + "B";
}
std::string memcpy_row(std::size_t n) { return "BM_Memcpy/" + std::to_string(n) + "B"; }
std::string aq_spsc_row(Mode m) { return std::string("BM_AtomicQueue_Spsc/") + to_string(m) + "/8B"; }
std::string aq_mpmc_row(Mode m) { return std::string("BM_AtomicQueue_Mpmc/") + to_string(m) + "/2x2/8B"; }
const std::string kPipeRtt = "BM_Pipe_RoundTrip/procs";
const std::string kBareRtt = "BM_CacheLine_PingPong/procs";
const std::string kPipeMessageRtt = "BM_Pipe_Message_RoundTrip/procs";
const std::string kManagerRtt = "BM_Manager_RoundTrip/procs";

constexpr std::size_t kSizes[] = {8, 64, 1024, 4096};
constexpr Topology kTopologies[] = {Topology::spsc, Topology::mpmc};
constexpr Mode kModes[] = {Mode::threads, Mode::processes};

struct Row {
  std::string name;
  std::function<void(benchmark::State&)> fn;
  bool manual_time = true;
};

template <std::size_t N>
void add_size_rows(std::vector<Row>& rows) {
  for (Topology t : kTopologies) {
    for (Mode m : kModes) {
      rows.push_back({tp_row(t, m, Wait::block, N),
                      [t, m](benchmark::State& s) { BM_Channel_Throughput<N, Wait::block>(s, t, m, 0); }});
      rows.push_back({tp_row(t, m, Wait::spin, N),
                      [t, m](benchmark::State& s) { BM_Channel_Throughput<N, Wait::spin>(s, t, m, 0); }});
    }
  }
  for (Mode m : kModes) rows.push_back({pipe_row(m, N), [m](benchmark::State& s) { BM_Pipe_Throughput<N>(s, m); }});
  rows.push_back({memcpy_row(N), [](benchmark::State& s) { BM_Memcpy(s, N); }, false});
}

std::vector<Row> all_rows() {
  using namespace std::chrono_literals;
  std::vector<Row> rows;
  add_size_rows<8>(rows);
  add_size_rows<64>(rows);
  add_size_rows<1024>(rows);
  add_size_rows<4096>(rows);
  rows.push_back({tp_row(Topology::spsc, Mode::processes, Wait::block, 8) + "/cap65536", [](benchmark::State& s) {
                    BM_Channel_Throughput<8, Wait::block>(s, Topology::spsc, Mode::processes, kBigCapacity);
                  }});
  rows.push_back({mpmc2x2_row(Wait::block), [](benchmark::State& s) { BM_Channel_Mpmc2x2<Wait::block>(s, 0); }});
  rows.push_back({mpmc2x2_row(Wait::spin), [](benchmark::State& s) { BM_Channel_Mpmc2x2<Wait::spin>(s, 0); }});
  rows.push_back({big(mpmc2x2_row(Wait::block)),
                  [](benchmark::State& s) { BM_Channel_Mpmc2x2<Wait::block>(s, kBigCapacity); }});
  for (Topology t : kTopologies) {
    rows.push_back({rtt_row(t, "spin"),
                    [t](benchmark::State& s) { BM_Channel_RoundTrip<Wait::spin>(s, t, sleet::kDefaultSpin); }});
    rows.push_back({rtt_row(t, "block"),
                    [t](benchmark::State& s) { BM_Channel_RoundTrip<Wait::block>(s, t, sleet::kDefaultSpin); }});
    rows.push_back({rtt_row(t, "sleep"),
                    [t](benchmark::State& s) { BM_Channel_RoundTrip<Wait::block>(s, t, 0ns); }});
  }
  for (Topology t : kTopologies) {
    rows.push_back({typed_row<Str<16>>(t), [t](benchmark::State& s) { BM_Channel_Typed<Str<16>>(s, t); }});
    rows.push_back({typed_row<Str<64>>(t), [t](benchmark::State& s) { BM_Channel_Typed<Str<64>>(s, t); }});
    rows.push_back({typed_row<Str<1024>>(t), [t](benchmark::State& s) { BM_Channel_Typed<Str<1024>>(s, t); }});
    rows.push_back({typed_row<Vec16>(t), [t](benchmark::State& s) { BM_Channel_Typed<Vec16>(s, t); }});
    rows.push_back({tp_row(t, Mode::processes, Wait::block, 16),
                    [t](benchmark::State& s) { BM_Channel_Throughput<16, Wait::block>(s, t, Mode::processes, 0); }});
    rows.push_back({passive_row(t), [t](benchmark::State& s) { BM_Channel_Passive(s, t); }});
    rows.push_back({batch_row(t), [t](benchmark::State& s) { BM_Channel_Batch(s, t); }});
  }
  rows.push_back({kPipeRtt, BM_Pipe_RoundTrip});
  rows.push_back({kBareRtt, BM_CacheLine_PingPong});
  rows.push_back({kPipeMessageRtt, BM_Pipe_Message_RoundTrip});
  rows.push_back({kManagerRtt, BM_Manager_RoundTrip});
#if SLEET_BENCH_HAVE_ATOMIC_QUEUE
  for (Mode m : kModes) {
    rows.push_back({aq_spsc_row(m), [m](benchmark::State& s) { BM_AtomicQueue_Spsc(s, m); }});
    rows.push_back({aq_mpmc_row(m), [m](benchmark::State& s) { BM_AtomicQueue_Mpmc2x2(s, m); }});
  }
#endif
  return rows;
}

// The rows the targets compare, run in rounds (A B A B ...).
std::vector<std::vector<std::string>> target_groups() {
  return {
      {aq_spsc_row(Mode::threads), tp_row(Topology::spsc, Mode::processes, Wait::block, 8),
       tp_row(Topology::spsc, Mode::processes, Wait::spin, 8), pipe_row(Mode::processes, 8),
       big(tp_row(Topology::spsc, Mode::processes, Wait::block, 8)), passive_row(Topology::spsc),
       batch_row(Topology::spsc), aq_spsc_row(Mode::processes)},
      {kBareRtt, rtt_row(Topology::spsc, "spin")},
      {kPipeRtt, rtt_row(Topology::spsc, "sleep")},
      {kPipeMessageRtt, kManagerRtt},
      {aq_mpmc_row(Mode::threads), mpmc2x2_row(Wait::block), big(mpmc2x2_row(Wait::block)),
       aq_mpmc_row(Mode::processes)},
      {memcpy_row(1024), tp_row(Topology::spsc, Mode::processes, Wait::block, 1024), memcpy_row(4096),
       tp_row(Topology::spsc, Mode::processes, Wait::block, 4096)},
      {tp_row(Topology::spsc, Mode::processes, Wait::block, 64), typed_row<Str<64>>(Topology::spsc),
       tp_row(Topology::mpmc, Mode::processes, Wait::block, 64), typed_row<Str<64>>(Topology::mpmc)},
  };
}

// ------------------------------------------------------- collected results

struct Sample {
  double items_ps = 0, bytes_ps = 0, ns = 0;
  std::map<std::string, double> counters;
};
struct Series {
  std::map<int, std::vector<Sample>> by_round;  // round -1: not part of a round
  std::string error;
};
std::map<std::string, Series> g_results;

// Collects every run for the table and passes it on to the reporter that
// --benchmark_format asks for (console by default).
class CollectingReporter : public benchmark::BenchmarkReporter {
 public:
  explicit CollectingReporter(const std::string& format) {
    if (format == "json") {
      inner_ = std::make_unique<benchmark::JSONReporter>();
    } else {  // console; CSV is deprecated in Google Benchmark
      inner_ = std::make_unique<benchmark::ConsoleReporter>();
    }
  }
  bool ReportContext(const Context& context) override { return inner_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) collect(r);
    inner_->ReportRuns(runs);
  }
  void Finalize() override { inner_->Finalize(); }

 private:
  static void collect(const Run& r) {
    if (r.run_type != Run::RT_Iteration) return;
    std::string name = r.run_name.function_name;
    int round = -1;
    if (const auto pos = name.rfind("/round:"); pos != std::string::npos) {
      round = std::atoi(name.c_str() + pos + 7);
      name.resize(pos);
    }
    Series& s = g_results[name];
    if (r.error_occurred) {
      s.error = r.error_message;
      return;
    }
    Sample x;
    for (const auto& [k, v] : r.counters) x.counters[k] = v.value;
    if (auto it = x.counters.find("items_per_second"); it != x.counters.end()) x.items_ps = it->second;
    if (auto it = x.counters.find("bytes_per_second"); it != x.counters.end()) x.bytes_ps = it->second;
    if (r.iterations > 0) x.ns = r.real_accumulated_time / static_cast<double>(r.iterations) * 1e9;
    s.by_round[round].push_back(std::move(x));
  }

  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
};

enum class Metric { items, bytes, ns, p50, futex, wakes, sleeps, full };

double metric_of(const Sample& s, Metric m) {
  auto counter = [&](const char* k) {
    const auto it = s.counters.find(k);
    return it == s.counters.end() ? NAN : it->second;
  };
  switch (m) {
    case Metric::items: return s.items_ps;
    case Metric::bytes: return s.bytes_ps;
    case Metric::ns: return s.ns;
    case Metric::p50: {
      const double v = counter("p50_ns");
      return std::isnan(v) ? s.ns : v;
    }
    case Metric::full: return counter("full/msg");
    case Metric::futex: return counter("futex/msg");
    case Metric::wakes: return counter("wakes/msg");
    case Metric::sleeps: return counter("sleeps/msg");
  }
  return NAN;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

std::vector<double> values(const std::vector<Sample>& samples, Metric m) {
  std::vector<double> v;
  for (const auto& s : samples) {
    const double x = metric_of(s, m);
    if (!std::isnan(x)) v.push_back(x);
  }
  return v;
}

// Median over every run of a row (all rounds).
std::optional<double> value_of(const std::string& row, Metric m) {
  const auto it = g_results.find(row);
  if (it == g_results.end()) return std::nullopt;
  std::vector<double> all;
  for (const auto& [round, samples] : it->second.by_round) {
    const auto v = values(samples, m);
    all.insert(all.end(), v.begin(), v.end());
  }
  if (all.empty()) return std::nullopt;
  return median(all);
}

struct Ratio {
  double median = NAN, lo = NAN, hi = NAN;
  int pairs = 0;  // 0: a ratio of two medians (the rows did not run in rounds)
};

// a / b, paired by round where both ran in rounds.
std::optional<Ratio> ratio_of(const std::string& a, const std::string& b, Metric m) {
  const auto ia = g_results.find(a), ib = g_results.find(b);
  if (ia == g_results.end() || ib == g_results.end()) return std::nullopt;
  std::vector<double> r;
  for (const auto& [round, samples] : ia->second.by_round) {
    if (round < 0) continue;
    const auto jt = ib->second.by_round.find(round);
    if (jt == ib->second.by_round.end()) continue;
    const double x = median(values(samples, m)), y = median(values(jt->second, m));
    if (!std::isnan(x) && !std::isnan(y) && y != 0) r.push_back(x / y);
  }
  Ratio out;
  if (!r.empty()) {
    out.median = median(r);
    out.lo = *std::min_element(r.begin(), r.end());
    out.hi = *std::max_element(r.begin(), r.end());
    out.pairs = static_cast<int>(r.size());
    return out;
  }
  const auto x = value_of(a, m), y = value_of(b, m);
  if (!x || !y || *y == 0) return std::nullopt;
  out.median = out.lo = out.hi = *x / *y;
  return out;
}

// ------------------------------------------------------------- the table

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string fmt_rate(std::optional<double> v) {
  if (!v) return "n/a";
  if (*v >= 1e6) return fmt("%.1f M/s", *v / 1e6);
  return fmt("%.0f k/s", *v / 1e3);
}
std::string fmt_gbps(std::optional<double> v) { return v ? fmt("%.2f GB/s", *v / 1e9) : "n/a"; }
std::string fmt_ns(std::optional<double> v) {
  if (!v) return "n/a";
  return *v >= 10000 ? fmt("%.1f us", *v / 1000) : fmt("%.0f ns", *v);
}
std::string fmt_x(double v) {
  if (std::isnan(v)) return "n/a";
  return v >= 100 ? fmt("%.0fx", v) : v >= 10 ? fmt("%.1fx", v) : fmt("%.2fx", v);
}
std::string fmt_ratio(const std::optional<Ratio>& r) {
  if (!r) return "n/a";
  std::string s = fmt_x(r->median);
  if (r->pairs > 0) s += " (" + std::to_string(r->pairs) + " pairs, " + fmt_x(r->lo) + "-" + fmt_x(r->hi) + ")";
  return s;
}
std::string row_or_error(const std::string& row, const std::string& shown) {
  const auto it = g_results.find(row);
  if (it != g_results.end() && !it->second.error.empty() && it->second.by_round.empty()) {
    return "error: " + it->second.error;
  }
  return shown;
}

// PASS/MISS with the margin: `higher` means the ratio must reach `goal`.
std::string verdict(std::optional<double> v, double goal, bool higher, bool strict = false) {
  if (!v || std::isnan(*v)) return "n/a";
  const bool pass = higher ? (strict ? *v > goal : *v >= goal) : (strict ? *v < goal : *v <= goal);
  double margin;
  if (*v == 0) {
    margin = INFINITY;
  } else {
    margin = higher ? *v / goal : goal / *v;
  }
  if (pass) return std::isinf(margin) ? "**PASS**" : "**PASS** (" + fmt_x(margin) + " margin)";
  return "**MISS** (" + fmt_x(1 / margin) + " short)";
}

std::string read_first_line(const char* path, const char* key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (key == nullptr) return line;
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string g_load_before;

std::string make_table() {
  std::ostringstream o;
  utsname u{};
  ::uname(&u);
#if defined(__clang__)
  const std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = "g++ " __VERSION__;
#else
  const std::string compiler = "unknown";
#endif
  const int rounds = g_settings.rounds;
  o << "## sleet channel_bench: ratios and targets\n\n";
  o << "| | |\n|---|---|\n";
  o << "| CPU | " << read_first_line("/proc/cpuinfo", "model name") << ", " << g_cpus.size()
    << " usable CPUs |\n";
  o << "| kernel | " << u.sysname << " " << u.release << " " << u.machine << " |\n";
  o << "| compiler | " << compiler << " |\n";
  o << "| run | " << (g_settings.quick ? "--quick" : "full") << ", min_time " << g_settings.min_time
    << " s, " << rounds << " rounds of the target rows, workers "
    << (g_settings.pin ? "pinned to distinct CPUs" : "not pinned") << " |\n";
  o << "| sleet fences | " << (sleet::detail::asymmetric_fences() ? "asymmetric (membarrier)" : "symmetric (mfence)")
    << ", default spin budget " << sleet::kDefaultSpin.count() / 1000 << " us |\n";
  o << "| load average | before " << g_load_before << "; after " << read_first_line("/proc/loadavg", nullptr)
    << " |\n\n";
#if !SLEET_BENCH_HAVE_ATOMIC_QUEUE
  o << "> atomic_queue was not found at build time: its rows and the targets that use it are n/a.\n\n";
#endif

  const auto spsc8_block = tp_row(Topology::spsc, Mode::processes, Wait::block, 8);
  const auto spsc8_spin = tp_row(Topology::spsc, Mode::processes, Wait::spin, 8);
  const auto pipe8 = pipe_row(Mode::processes, 8);
  const auto aq_spsc = aq_spsc_row(Mode::threads);
  const auto aq_mpmc = aq_mpmc_row(Mode::threads);
  const auto rtt_spin = rtt_row(Topology::spsc, "spin");
  const auto rtt_sleep = rtt_row(Topology::spsc, "sleep");
  const auto mpmc8 = mpmc2x2_row(Wait::block);
  const auto str64 = typed_row<Str<64>>(Topology::spsc);
  const auto raw64 = tp_row(Topology::spsc, Mode::processes, Wait::block, 64);
  const auto spsc4096 = tp_row(Topology::spsc, Mode::processes, Wait::block, 4096);
  const auto passive8 = passive_row(Topology::spsc);

  // The targets, one line each: what, sleet row, baseline row (empty: an
  // absolute goal on the sleet row's metric), metric, goal, higher is better.
  // A target whose sleet row is empty is listed as not measured yet.
  // tools/summary.py reads this table (columns target, ratio, goal, result).
  struct Target {
    std::string what, a, b;
    Metric m;
    double goal;
    bool higher;
  };
  const std::vector<Target> targets = {
      {"spsc 8 B, 2 processes, send/receive vs atomic_queue SPSC (threads)", spsc8_block, aq_spsc, Metric::items, 0.6, true},
      {"spsc send_batch/receive_batch of 64 vs atomic_queue SPSC (threads)", batch_row(Topology::spsc), aq_spsc, Metric::items, 1.0, true},
      {"mpmc 8 B, 2+2 processes vs atomic_queue MPMC 2+2 threads", mpmc8, aq_mpmc, Metric::items, 1.0, true},
      {"std::string 64 B vs raw 64 B, spsc, 2 processes", str64, raw64, Metric::items, 0.7, true},
      {"spsc 4096 B, 2 processes vs memcpy 4096 B (bytes/s)", spsc4096, memcpy_row(4096), Metric::bytes, 0.5, true},
      {"passive on_receive vs active receive, spsc 8 B, 2 processes", passive8, spsc8_block, Metric::items, 0.8, true},
      {"round trip p50, spsc, spinning vs bare cache-line ping-pong", rtt_spin, kBareRtt, Metric::p50, 1.1, false},
      {"futex calls per message, spsc 8 B, 2 processes, default spin", spsc8_block, "", Metric::futex, 0.01, false},
      {"spsc 8 B, 2 processes, send/receive vs pipe (2 processes)", spsc8_block, pipe8, Metric::items, 100, true},
      {"round trip p50, spsc, both asleep (spin 0) vs pipe round trip", rtt_sleep, kPipeRtt, Metric::p50, 1.0, false},
      {"spsc 8 B, 2 processes: send/receive vs try_* spin loops", spsc8_block, spsc8_spin, Metric::items, 0.5, true},
      {"round trip p50, ProcessManager send/receive vs bare Pipe<Message> (2 processes)", kManagerRtt,
       kPipeMessageRtt, Metric::p50, 2.0, false},
  };
  auto fmt_metric = [](Metric m, std::optional<double> v) {
    switch (m) {
      case Metric::items: return fmt_rate(v);
      case Metric::bytes: return fmt_gbps(v);
      case Metric::ns:
      case Metric::p50: return fmt_ns(v);
      default: return v ? fmt("%.5f", *v) : std::string("n/a");
    }
  };

  o << "### Targets\n\n";
  o << "Ratios are sleet / baseline, the median of per-round ratios (baseline and sleet run back to back), "
       "with the range over the rounds. A target without a baseline is a goal on the value itself.\n\n";
  o << "| target | sleet | baseline | ratio | goal | result |\n|---|---|---|---|---|---|\n";
  for (const Target& t : targets) {
    const std::string goal = (t.b.empty() ? (t.higher ? "> " : "< ") : (t.higher ? "≥ " : "≤ ")) +
                             (t.b.empty() ? fmt("%g", t.goal) : fmt_x(t.goal));
    o << "| " << t.what << " | ";
    if (t.a.empty()) {
      o << "not measured yet | | | " << goal << " | not measured yet |\n";
    } else if (t.b.empty()) {  // an absolute goal, strict (futex calls per message)
      const auto v = value_of(t.a, t.m);
      o << row_or_error(t.a, fmt_metric(t.m, v));
      if (t.m == Metric::futex) {
        const auto w = value_of(t.a, Metric::wakes), s = value_of(t.a, Metric::sleeps);
        o << " (wakes " << (w ? fmt("%.5f", *w) : "n/a") << ", sleeps " << (s ? fmt("%.5f", *s) : "n/a") << ")";
      }
      o << " | | " << (v ? fmt("%.5f", *v) : "n/a") << " | " << goal << " | " << verdict(v, t.goal, t.higher, true)
        << " |\n";
    } else {
      const auto r = ratio_of(t.a, t.b, t.m);
      o << row_or_error(t.a, fmt_metric(t.m, value_of(t.a, t.m))) << " | "
        << row_or_error(t.b, fmt_metric(t.m, value_of(t.b, t.m))) << " | " << fmt_ratio(r) << " | " << goal << " | "
        << verdict(r ? std::optional<double>(r->median) : std::nullopt, t.goal, t.higher) << " |\n";
    }
  }

  o << "\nInformational (no goal):\n\n";
  o << "| comparison | sleet | baseline | ratio |\n|---|---|---|---|\n";
  auto info = [&](const std::string& what, const std::string& a, const std::string& b, Metric m, auto fmt_value) {
    o << "| " << what << " | " << row_or_error(a, fmt_value(value_of(a, m))) << " | "
      << row_or_error(b, fmt_value(value_of(b, m))) << " | " << fmt_ratio(ratio_of(a, b, m)) << " |\n";
  };
  info("spsc 8 B, 2 processes, send/receive, capacity 65536 (as atomic_queue) vs atomic_queue SPSC (threads)",
       big(spsc8_block), aq_spsc, Metric::items, fmt_rate);
  info("spsc 8 B, 2 processes, try_* spin vs atomic_queue SPSC (threads)", spsc8_spin, aq_spsc, Metric::items,
       fmt_rate);
  info("spsc 8 B, 2 processes, try_* spin vs pipe", spsc8_spin, pipe8, Metric::items, fmt_rate);
  info("spsc 8 B, 2 processes, send/receive vs atomic_queue SPSC in shared memory (2 processes)", spsc8_block,
       aq_spsc_row(Mode::processes), Metric::items, fmt_rate);
  info("mpmc 8 B, 2+2 processes, send/receive, capacity 65536 (as atomic_queue) vs atomic_queue MPMC 2+2 threads",
       big(mpmc2x2_row(Wait::block)), aq_mpmc, Metric::items, fmt_rate);
  info("mpmc 8 B, 2+2 processes, try_* spin vs atomic_queue MPMC 2+2 threads", mpmc2x2_row(Wait::spin), aq_mpmc,
       Metric::items, fmt_rate);
  info("mpmc 8 B, 2+2 processes, send/receive vs atomic_queue MPMC in shared memory (2+2 processes)",
       mpmc2x2_row(Wait::block), aq_mpmc_row(Mode::processes), Metric::items, fmt_rate);
  info("spsc 1024 B, 2 processes, send/receive vs memcpy 1024 B", tp_row(Topology::spsc, Mode::processes, Wait::block, 1024),
       memcpy_row(1024), Metric::bytes, fmt_gbps);

  o << "\n### Typed messages (cereal) and passive mode, 2 processes, send/receive\n\n";
  o << "Each typed row against the raw (trivially copyable) path with the same payload bytes; "
       "passive = one on_receive handler in the receiving process, against active receive().\n\n";
  o << "| row | msgs/s | raw or active msgs/s | ratio |\n|---|---|---|---|\n";
  for (Topology t : kTopologies) {
    auto typed = [&](const std::string& row, std::size_t raw) {
      const std::string base = tp_row(t, Mode::processes, Wait::block, raw);
      o << "| " << row << " | " << row_or_error(row, fmt_rate(value_of(row, Metric::items))) << " | "
        << row_or_error(base, fmt_rate(value_of(base, Metric::items))) << " | "
        << fmt_ratio(ratio_of(row, base, Metric::items)) << " |\n";
    };
    typed(typed_row<Str<16>>(t), 16);
    typed(typed_row<Str<64>>(t), 64);
    typed(typed_row<Str<1024>>(t), 1024);
    typed(typed_row<Vec16>(t), 64);
    typed(passive_row(t), 8);
  }

  o << "\n### Throughput, one producer and one consumer\n\n";
  o << "block = send/receive with the default spin budget; spin = try_send/try_receive loops. "
       "x pipe: against a pipe between the same pair (threads or processes) with the same message size. "
       "futex/msg: (wakes + sleeps) / messages from stats(); full/msg: sends that found the ring full "
       "(stats().times_full, counted by blocking sends) / messages.\n\n";
  o << "| topology | pair | wait | size | msgs/s | GB/s | futex/msg | full/msg | pipe msgs/s | x pipe | memcpy GB/s "
       "| x memcpy |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (std::size_t n : kSizes) {
    for (Topology t : kTopologies) {
      for (Mode m : kModes) {
        for (Wait w : {Wait::block, Wait::spin}) {
          const auto row = tp_row(t, m, w, n);
          if (!g_results.count(row)) continue;
          const auto f = value_of(row, Metric::futex);
          const auto full = value_of(row, Metric::full);
          o << "| " << (t == Topology::spsc ? "spsc" : "mpmc") << " | " << to_string(m) << " | " << to_string(w)
            << " | " << n << " B | " << row_or_error(row, fmt_rate(value_of(row, Metric::items))) << " | "
            << fmt_gbps(value_of(row, Metric::bytes)) << " | " << (f ? fmt("%.4f", *f) : "n/a") << " | "
            << (full ? fmt("%.4f", *full) : "n/a") << " | "
            << fmt_rate(value_of(pipe_row(m, n), Metric::items)) << " | "
            << fmt_ratio(ratio_of(row, pipe_row(m, n), Metric::items)) << " | "
            << fmt_gbps(value_of(memcpy_row(n), Metric::bytes)) << " | "
            << fmt_ratio(ratio_of(row, memcpy_row(n), Metric::bytes)) << " |\n";
        }
      }
    }
  }

  o << "\n### Other rows\n\n| row | msgs/s | GB/s | time per item |\n|---|---|---|---|\n";
  for (const auto& [row, series] : g_results) {
    if (row.rfind("BM_Channel_Throughput/", 0) == 0 || row.rfind("BM_Channel_RoundTrip/", 0) == 0) continue;
    if (row.rfind("BM_CacheLine", 0) == 0 || row.rfind("BM_Pipe_RoundTrip", 0) == 0) continue;
    if (row == kPipeMessageRtt || row == kManagerRtt) continue;
    o << "| " << row << " | " << row_or_error(row, fmt_rate(value_of(row, Metric::items))) << " | "
      << fmt_gbps(value_of(row, Metric::bytes)) << " | " << fmt_ns(value_of(row, Metric::ns)) << " |\n";
  }

  o << "\n### Round trip between two processes\n\n";
  o << "spin = try_* loops polled flat out; block = send/receive with the default spin budget; "
       "sleep = spin budget 0 (both sides sleep on a futex every message). p50: the median of 64-round-trip "
       "batches within a run (robust to the odd descheduling); mean: run time / round trips. Ratios use p50.\n\n";
  o << "| row | round trip p50 | mean | futex/msg | x bare ping-pong | x pipe |\n|---|---|---|---|---|---|\n";
  std::vector<std::string> rtts = {kBareRtt, kPipeRtt, kPipeMessageRtt, kManagerRtt};
  for (Topology t : kTopologies) {
    for (const char* how : {"spin", "block", "sleep"}) rtts.push_back(rtt_row(t, how));
  }
  for (const auto& row : rtts) {
    if (!g_results.count(row)) continue;
    const auto f = value_of(row, Metric::futex);
    o << "| " << row << " | " << row_or_error(row, fmt_ns(value_of(row, Metric::p50))) << " | "
      << fmt_ns(value_of(row, Metric::ns)) << " | " << (f ? fmt("%.3f", *f) : "") << " | "
      << (row == kBareRtt ? "-" : fmt_ratio(ratio_of(row, kBareRtt, Metric::p50))) << " | "
      << (row == kPipeRtt ? "-" : fmt_ratio(ratio_of(row, kPipeRtt, Metric::p50))) << " |\n";
  }
  return o.str();
}

// ------------------------------------------------------------------ main

bool starts_with(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

}  // namespace

int main(int argc, char** argv) {
  // Our flags first; the rest goes to Google Benchmark.
  std::vector<char*> args{argv[0]};
  bool user_min_time = false;
  std::string format = "console";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_settings.quick = true;
    } else if (std::strcmp(argv[i], "--no-pin") == 0) {
      g_settings.pin = false;
    } else if (starts_with(argv[i], "--rounds=")) {
      g_settings.rounds = std::max(1, std::atoi(argv[i] + 9));
    } else if (starts_with(argv[i], "--table-out=")) {
      g_settings.table_out = argv[i] + 12;
    } else {
      if (starts_with(argv[i], "--benchmark_format=")) format = argv[i] + 19;
      if (starts_with(argv[i], "--benchmark_min_time=")) {
        user_min_time = true;
        g_settings.min_time = argv[i] + 21;
      }
      args.push_back(argv[i]);
    }
  }
  if (g_settings.rounds == 0) g_settings.rounds = g_settings.quick ? 3 : 9;
  std::string min_time_flag;
  if (!user_min_time) {
    g_settings.min_time = g_settings.quick ? "0.02" : "0.25";
    min_time_flag = "--benchmark_min_time=" + g_settings.min_time;
    args.push_back(min_time_flag.data());
  }
  int bargc = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&bargc, args.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, args.data())) return 1;

  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) g_cpus.push_back(c);
    }
  }
  sleet_bench::remove_on_fatal_signals(g_registry);
  ::signal(SIGPIPE, SIG_IGN);  // a pipe peer that died is an error, not a death

#if !SLEET_BENCH_HAVE_ATOMIC_QUEUE
  std::printf("note: atomic_queue was not found at build time; its baseline rows are skipped\n");
#endif

  // Register: the target groups in rounds, then (full mode) every other row once.
  const std::vector<Row> rows = all_rows();
  std::map<std::string, const Row*> catalog;
  for (const Row& r : rows) catalog.emplace(r.name, &r);
  auto add = [&](const Row& r, const std::string& suffix) {
    auto* b = benchmark::RegisterBenchmark((r.name + suffix).c_str(), r.fn);
    b->Unit(benchmark::kNanosecond);
    if (r.manual_time) {
      b->UseManualTime();
    } else {
      b->UseRealTime();
    }
  };
  std::vector<std::string> in_groups;
  for (const auto& group : target_groups()) {
    for (int round = 0; round < g_settings.rounds; ++round) {
      for (const auto& name : group) {
        const auto it = catalog.find(name);
        if (it == catalog.end()) continue;  // e.g. atomic_queue absent
        add(*it->second, "/round:" + std::to_string(round));
      }
    }
    in_groups.insert(in_groups.end(), group.begin(), group.end());
  }
  if (!g_settings.quick) {
    for (const Row& r : rows) {
      if (std::find(in_groups.begin(), in_groups.end(), r.name) == in_groups.end()) add(r, "");
    }
  }

  g_load_before = read_first_line("/proc/loadavg", nullptr);
  CollectingReporter reporter(format);
  benchmark::RunSpecifiedBenchmarks(&reporter);

  // The table goes to stdout after console output, to stderr after JSON.
  const std::string table = make_table();
  std::fflush(stdout);
  std::fprintf(format == "json" ? stderr : stdout, "\n%s", table.c_str());
  if (!g_settings.table_out.empty()) {
    std::ofstream out(g_settings.table_out);
    out << table;
    if (!out) {
      std::fprintf(stderr, "channel_bench: cannot write %s\n", g_settings.table_out.c_str());
      return 1;
    }
  }
  benchmark::Shutdown();
  return 0;
}
