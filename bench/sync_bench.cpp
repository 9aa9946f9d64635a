// bench/sync_bench.cpp — sleet's Mutex, Semaphore and SharedValue measured
// against what a user would otherwise pick, side by side in one run, with a
// table of ratios at the end.
//
// What is measured (every row reports nanoseconds per operation)
//   uncontended  one thread, lock + unlock in a loop: sleet::Mutex, a
//                process-shared robust pthread mutex (PTHREAD_PROCESS_SHARED
//                + PTHREAD_MUTEX_ROBUST, in MAP_SHARED memory) and
//                std::mutex.
//   contended    two processes lock, increment a shared counter and unlock
//                in a loop (the count is checked): sleet::Mutex against the
//                robust pthread mutex. Time per op = wall time / all ops.
//   ping-pong    two processes hand a token back and forth through two
//                semaphores: sleet::Semaphore (default spin budget, and spin
//                0 so that every wait sleeps on the futex as sem_wait does)
//                against POSIX named semaphores (sem_open). Time per op =
//                one round trip.
//   fetch_add    SharedValue<int64_t>::fetch_add(1) in one process and in
//                two processes at once, against std::atomic<int64_t> in
//                MAP_SHARED memory (the count is checked).
//
// How a run works
//   Two-process rows fork one child per batch; parent and child each open
//   the objects, meet at a barrier in shared memory and record their start
//   and finish; a batch lasts from the first start to the last finish
//   (Google Benchmark's manual time). Workers are pinned to distinct CPUs
//   (--no-pin to disable). Named objects are removed as soon as they exist:
//   both processes use the mapping the parent made (fork keeps it), so
//   nothing is left in /dev/shm even after a crash.
//
// Noise
//   Every comparison runs in rounds, baseline and sleet back to back
//   (A B A B ...); a ratio is the median of the per-round ratios, shown with
//   its range (rounds.hpp).
//
// Flags (rounds.hpp; the rest is Google Benchmark's):
//   --quick            3 rounds, short runs (a few seconds in all)
//   --rounds=N         rounds (default 7, quick 3)
//   --table-out=PATH   also write the ratio table as markdown to PATH
//   --no-pin           let the scheduler place the workers
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "rounds.hpp"
#include "sleet/sleet.hpp"

namespace {

using sleet_bench::Comparison;
using sleet_bench::now_ns;
using sleet_bench::run_batches;
using sleet_bench::Shared;

// Pins the calling thread to the i-th allowed CPU; returns the old mask.
cpu_set_t pin_to(int i) {
  cpu_set_t old;
  CPU_ZERO(&old);
  ::sched_getaffinity(0, sizeof old, &old);
  if (!sleet_bench::settings().pin || CPU_COUNT(&old) < 2) return old;
  int seen = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &old)) continue;
    if (seen++ == i % CPU_COUNT(&old)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      ::sched_setaffinity(0, sizeof one, &one);
      break;
    }
  }
  return old;
}

// A fresh name per object: "bench.<pid>.<tag>.<n>".
std::string fresh_name(const char* tag) {
  static int counter = 0;
  return "bench." + std::to_string(::getpid()) + "." + tag + "." + std::to_string(++counter);
}

// Creates a sleet object and removes its name at once (the mapping lives on).
template <class T, class... Args>
T make_anonymous(const char* tag, Args&&... args) {
  const std::string name = fresh_name(tag);
  T t = T::create(name, std::forward<Args>(args)...);
  T::remove(name);
  return t;
}

// ------------------------------------------------------- two processes

struct Pair {
  alignas(128) std::atomic<int> ready{0};
  alignas(128) std::atomic<std::int64_t> start[2] = {};
  std::atomic<std::int64_t> end[2] = {};
  std::atomic<int> failed{0};
};

// Runs work(who) in the parent (who = 0) and a forked child (who = 1), both
// released together; returns the seconds from the first start to the last
// finish. work returns false on a failed check.
double two_processes(const std::function<bool(int)>& work) {
  Shared<Pair> pair;
  auto run = [&](int who) {
    const cpu_set_t old = pin_to(who);
    // acq_rel: the barrier; each side's setup happens-before the other's start.
    pair->ready.fetch_add(1, std::memory_order_acq_rel);
    while (pair->ready.load(std::memory_order_acquire) < 2) {
    }
    pair->start[who].store(now_ns(), std::memory_order_relaxed);  // relaxed: read after waitpid()
    if (!work(who)) pair->failed.store(1, std::memory_order_relaxed);
    pair->end[who].store(now_ns(), std::memory_order_relaxed);
    ::sched_setaffinity(0, sizeof old, &old);
  };
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::alarm(120);  // last resort against a hang
    run(1);
    ::_exit(0);
  }
  run(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("worker process failed");
  if (pair->failed.load(std::memory_order_relaxed)) throw std::runtime_error("a check failed");
  const auto first = std::min(pair->start[0].load(std::memory_order_relaxed), pair->start[1].load(std::memory_order_relaxed));
  const auto last = std::max(pair->end[0].load(std::memory_order_relaxed), pair->end[1].load(std::memory_order_relaxed));
  return static_cast<double>(last - first) * 1e-9;
}

// --------------------------------------------------------- the mutexes

// A process-shared robust pthread mutex in MAP_SHARED memory.
struct RobustPthreadMutex {
  pthread_mutex_t m;
  RobustPthreadMutex() {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m, &a);
    pthread_mutexattr_destroy(&a);
  }
  ~RobustPthreadMutex() { pthread_mutex_destroy(&m); }
  void lock() {
    if (pthread_mutex_lock(&m) == EOWNERDEAD) pthread_mutex_consistent(&m);
  }
  void unlock() { pthread_mutex_unlock(&m); }
};

void BM_Uncontended_Sleet(benchmark::State& state) {
  auto m = make_anonymous<sleet::Mutex>("mutex");
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}
void BM_Uncontended_Pthread(benchmark::State& state) {
  Shared<RobustPthreadMutex> m;
  for (auto _ : state) {
    m->lock();
    m->unlock();
  }
}
void BM_Uncontended_Std(benchmark::State& state) {
  std::mutex m;
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}

struct Counter {
  alignas(128) std::uint64_t value = 0;  // guarded by the mutex under test
};

template <class Lock>
double contended_batch(Lock& lock, std::int64_t n) {
  Shared<Counter> counter;
  const double s = two_processes([&](int who) {
    for (std::int64_t i = who; i < n; i += 2) {
      lock.lock();
      ++counter->value;
      lock.unlock();
    }
    return true;
  });
  if (counter->value != static_cast<std::uint64_t>(n)) throw std::runtime_error("lost increments");
  return s;
}
void BM_Contended_Sleet(benchmark::State& state) {
  auto m = make_anonymous<sleet::Mutex>("mutex");
  run_batches(state, [&](std::int64_t n) { return contended_batch(m, n); });
}
void BM_Contended_Pthread(benchmark::State& state) {
  Shared<RobustPthreadMutex> m;
  run_batches(state, [&](std::int64_t n) { return contended_batch(*m, n); });
}

// ----------------------------------------------------------- ping-pong

// Round trips: worker 0 posts `ping` and waits for `pong`, worker 1 the
// other way round. Post and Wait act on a semaphore pointer.
template <class Sem, class Post, class Wait>
double ping_pong(Sem* ping, Sem* pong, std::int64_t n, Post post, Wait wait) {
  return two_processes([&](int who) {
    for (std::int64_t i = 0; i < n; ++i) {
      if (who == 0) {
        post(ping);
        if (!wait(pong)) return false;
      } else {
        if (!wait(ping)) return false;
        post(pong);
      }
    }
    return true;
  });
}
// spin: the busy-wait budget before sleeping (0: every wait sleeps on the
// futex, as a sem_wait does).
void pingpong_sleet(benchmark::State& state, std::chrono::nanoseconds spin) {
  auto ping = make_anonymous<sleet::Semaphore>("ping", 0u, sleet::SemaphoreOptions{.spin = spin});
  auto pong = make_anonymous<sleet::Semaphore>("pong", 0u, sleet::SemaphoreOptions{.spin = spin});
  run_batches(state, [&](std::int64_t n) {
    return ping_pong(&ping, &pong, n, [](sleet::Semaphore* s) { s->release(); },
                     [](sleet::Semaphore* s) { s->acquire(); return true; });
  });
}
void BM_PingPong_Sleet(benchmark::State& state) { pingpong_sleet(state, sleet::SemaphoreOptions{}.spin); }
void BM_PingPong_SleetNoSpin(benchmark::State& state) { pingpong_sleet(state, std::chrono::nanoseconds(0)); }
void BM_PingPong_Posix(benchmark::State& state) {
  auto open = [](const char* tag) {
    const std::string name = "/" + fresh_name(tag);
    sem_t* s = ::sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, 0);
    if (s == SEM_FAILED) throw std::runtime_error("sem_open failed");
    ::sem_unlink(name.c_str());  // the mapping lives on, the name goes
    return s;
  };
  sem_t* ping = nullptr;
  sem_t* pong = nullptr;
  try {
    ping = open("ping");
    pong = open("pong");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  run_batches(state, [&](std::int64_t n) {
    return ping_pong(ping, pong, n, [](sem_t* s) { ::sem_post(s); },
                     [](sem_t* s) {
                       while (::sem_wait(s) != 0) {
                         if (errno != EINTR) return false;
                       }
                       return true;
                     });
  });
  ::sem_close(ping);
  ::sem_close(pong);
}

// ----------------------------------------------------------- fetch_add

struct SharedAtomic {
  alignas(128) std::atomic<std::int64_t> value{0};
};

void BM_FetchAdd1_Sleet(benchmark::State& state) {
  auto v = make_anonymous<sleet::SharedValue<std::int64_t>>("value", std::int64_t{0});
  for (auto _ : state) benchmark::DoNotOptimize(v.fetch_add(1));
}
void BM_FetchAdd1_Atomic(benchmark::State& state) {
  Shared<SharedAtomic> a;
  // seq_cst: the same order SharedValue::fetch_add uses by default.
  for (auto _ : state) benchmark::DoNotOptimize(a->value.fetch_add(1, std::memory_order_seq_cst));
}
// Batches of n fetch_add(1) split between two processes; load() checks the
// count before and after.
template <class Add, class Load>
void fetch_add_two(benchmark::State& state, Add add, Load load) {
  run_batches(state, [&](std::int64_t n) {
    const std::int64_t before = load();
    const double s = two_processes([&](int who) {
      for (std::int64_t i = who; i < n; i += 2) add();
      return true;
    });
    if (load() != before + n) throw std::runtime_error("lost increments");
    return s;
  });
}
void BM_FetchAdd2_Sleet(benchmark::State& state) {
  auto v = make_anonymous<sleet::SharedValue<std::int64_t>>("value", std::int64_t{0});
  fetch_add_two(state, [&] { v.fetch_add(1); }, [&] { return v.load(); });
}
void BM_FetchAdd2_Atomic(benchmark::State& state) {
  Shared<SharedAtomic> a;
  fetch_add_two(
      state, [&] { a->value.fetch_add(1, std::memory_order_seq_cst); },  // seq_cst: as sleet's default
      [&] { return a->value.load(std::memory_order_relaxed); });        // relaxed: no worker runs
}

// ------------------------------------------------------------ the rows

std::vector<Comparison> comparisons() {
  return {
      {"Mutex lock+unlock, uncontended, vs robust process-shared pthread mutex",
       {"BM_Mutex_Uncontended/pthread_robust", BM_Uncontended_Pthread, false},
       {"BM_Mutex_Uncontended/sleet", BM_Uncontended_Sleet, false},
       1.0},
      {"Mutex lock+unlock, uncontended, vs std::mutex (one process only)",
       {"BM_Mutex_Uncontended/std_mutex", BM_Uncontended_Std, false},
       {"BM_Mutex_Uncontended/sleet", BM_Uncontended_Sleet, false}},
      {"Mutex lock+inc+unlock, 2 processes contending, vs robust pthread mutex",
       {"BM_Mutex_Contended2/pthread_robust", BM_Contended_Pthread, true},
       {"BM_Mutex_Contended2/sleet", BM_Contended_Sleet, true}},
      {"Semaphore ping-pong round trip, 2 processes, vs POSIX named semaphores",
       {"BM_Semaphore_PingPong/posix_sem_open", BM_PingPong_Posix, true},
       {"BM_Semaphore_PingPong/sleet", BM_PingPong_Sleet, true}},
      {"Semaphore ping-pong round trip, 2 processes, spin 0 (always sleeps, as sem_wait) vs POSIX named semaphores",
       {"BM_Semaphore_PingPong/posix_sem_open", BM_PingPong_Posix, true},
       {"BM_Semaphore_PingPong/sleet_spin0", BM_PingPong_SleetNoSpin, true}},
      {"SharedValue<int64> fetch_add, 1 process, vs std::atomic in shared memory",
       {"BM_Value_FetchAdd/atomic/1proc", BM_FetchAdd1_Atomic, false},
       {"BM_Value_FetchAdd/sleet/1proc", BM_FetchAdd1_Sleet, false}},
      {"SharedValue<int64> fetch_add, 2 processes contending, vs std::atomic in shared memory",
       {"BM_Value_FetchAdd/atomic/2procs", BM_FetchAdd2_Atomic, true},
       {"BM_Value_FetchAdd/sleet/2procs", BM_FetchAdd2_Sleet, true}},
  };
}

}  // namespace

int main(int argc, char** argv) { return sleet_bench::rounds_main(argc, argv, "sync_bench", comparisons()); }
