// bench/manager_rows.hpp — the ProcessManager round trip against the bare
// pipe it is built on, for channel_bench's targets table (issue 13: manager
// <-> child request/reply <= 2x a bare Pipe<Message> round trip).
//
// Both rows time the same exchange between the same kind of two processes:
// this process sends a small Message ("ping" with one integer field) and
// waits for the child to send it back, n times, after kWarm untimed round
// trips; the reply must carry the number that was sent.
//   BM_Pipe_Message_RoundTrip   a Pipe<Message> with the manager's default
//                               TargetOptions (capacity 64, 16 KiB
//                               messages); the child is fork()ed here and
//                               echoes on end b.
//   BM_Manager_RoundTrip        pm.send(name, m) / pm.receive(name) to a
//                               target the ProcessManager forked, which
//                               echoes on this_process::active_channel().
// This process's thread is pinned to the first allowed CPU for the run (the
// manager's supervisor thread, created after, inherits it and sleeps in
// poll()); the child pins itself to the second. p50 is the median of
// kBatch-round-trip batches, as channel_bench's other round trips.
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"
#include "sleet/sleet.hpp"

namespace sleet_bench::manager {

constexpr std::int64_t kBatch = 64;   // round trips per p50 sample
constexpr std::int64_t kWarm = 1000;  // untimed: first-touch faults, cold lines
constexpr unsigned kChildAlarmSeconds = 600;  // a child's last resort against a hang
constexpr std::chrono::seconds kChildExitWait{10};
const char* const kQuit = "quit";

struct Timing {
  double seconds = 0;
  double p50_ns = 0;  // 0: too few batches
};

// Pins the calling thread for a scope and gives it its CPU set back after.
class PinScope {
 public:
  PinScope(const std::vector<int>& cpus, bool pin) {
    CPU_ZERO(&old_);
    saved_ = pin && ::sched_getaffinity(0, sizeof old_, &old_) == 0;
    if (saved_) pin_to_cpu_for(cpus, 0);
  }
  ~PinScope() {
    if (saved_) ::sched_setaffinity(0, sizeof old_, &old_);
  }
  PinScope(const PinScope&) = delete;
  PinScope& operator=(const PinScope&) = delete;

 private:
  cpu_set_t old_;
  bool saved_ = false;
};

inline sleet::Message ping(std::int64_t i) { return sleet::Message("ping").set("i", i); }

// The child's side of both rows: echo until "quit".
template <class End>
void echo(End& end) {
  for (;;) {
    sleet::Message m = end.receive();
    if (m.topic == kQuit) return;
    end.send(m);
  }
}

// kWarm untimed, then n timed calls of one_round_trip(i), which must
// return the number the reply carried.
template <class RoundTrip>
Timing time_round_trips(std::int64_t n, RoundTrip&& one_round_trip) {
  auto check = [&](std::int64_t i) {
    if (one_round_trip(i) != i) throw std::runtime_error("round trip: reply out of order");
  };
  for (std::int64_t i = 0; i < kWarm; ++i) check(-1 - i);
  std::vector<std::int64_t> marks;
  marks.reserve(static_cast<std::size_t>(n / kBatch + 2));
  const std::int64_t t0 = now_ns();
  marks.push_back(t0);
  for (std::int64_t i = 0; i < n; ++i) {
    check(i);
    if ((i + 1) % kBatch == 0) marks.push_back(now_ns());
  }
  Timing t;
  t.seconds = static_cast<double>(now_ns() - t0) * 1e-9;
  if (marks.size() >= 9) {  // at least 8 batches, else the mean stands
    std::vector<double> batch;
    for (std::size_t k = 1; k < marks.size(); ++k) {
      batch.push_back(static_cast<double>(marks[k] - marks[k - 1]) / kBatch);
    }
    std::nth_element(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(batch.size() / 2), batch.end());
    t.p50_ns = batch[batch.size() / 2];
  }
  return t;
}

inline std::int64_t field_i(const sleet::Message& m) {
  const auto* v = m.get<std::int64_t>("i");
  if (v == nullptr) throw std::runtime_error("round trip: reply without its number");
  return *v;
}

// BM_Pipe_Message_RoundTrip: `name` is a fresh name the caller removes.
inline Timing pipe_message_round_trips(const std::string& name, std::int64_t n, const std::vector<int>& cpus,
                                       bool pin) {
  const sleet::TargetOptions defaults;
  sleet::ChannelOptions co;
  co.capacity = defaults.channel_capacity;
  co.max_message_size = defaults.max_message_size;
  auto ends = sleet::Pipe<sleet::Message>::create(name, co);
  sleet::Pipe<sleet::Message>& a = ends.first;
  PinScope pinned(cpus, pin);
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::alarm(kChildAlarmSeconds);
    if (pin) pin_to_cpu_for(cpus, 1);
    int rc = 0;
    try {
      auto b = sleet::Pipe<sleet::Message>::open(name, sleet::End::b);
      echo(b);
    } catch (...) {
      rc = 1;
    }
    ::_exit(rc);
  }
  auto reap = [&](bool kill) {
    if (kill) ::kill(child, SIGKILL);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  };
  Timing t;
  try {
    t = time_round_trips(n, [&](std::int64_t i) {
      a.send(ping(i));
      return field_i(a.receive());
    });
    a.send(sleet::Message(kQuit));
  } catch (...) {
    reap(true);
    throw;
  }
  const int status = reap(false);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("echo child failed");
  return t;
}

// BM_Manager_RoundTrip.
inline Timing manager_round_trips(std::int64_t n, const std::vector<int>& cpus, bool pin) {
  PinScope pinned(cpus, pin);  // before the manager: its threads inherit it
  sleet::ProcessManager pm({.handle_signals = false});
  pm.add_target("echo", [&cpus, pin] {
    ::alarm(kChildAlarmSeconds);
    if (pin) pin_to_cpu_for(cpus, 1);
    echo(sleet::this_process::active_channel());
    return 0;
  });
  pm.start("echo");
  Timing t;
  try {
    t = time_round_trips(n, [&](std::int64_t i) {
      pm.send("echo", ping(i));
      return field_i(pm.receive("echo"));
    });
    pm.send("echo", sleet::Message(kQuit));
  } catch (...) {
    pm.stop("echo", std::chrono::milliseconds(0));
    throw;
  }
  bool timed_out = false;
  const auto rc = pm.wait_for("echo", kChildExitWait, &timed_out);
  if (timed_out || rc != 0) throw std::runtime_error("echo target failed");
  return t;
}

}  // namespace sleet_bench::manager
