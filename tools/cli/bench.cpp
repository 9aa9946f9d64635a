// sleet bench: quick cross-process benchmarks of the public API.
//
// Each benchmark forks a peer process and runs for --seconds:
// - spsc, mpmc: the parent streams --size-byte messages to the child, which
//   checks every one (sequence number in the first 8 bytes, the rest filled
//   with its low byte; in order, none missing) and reports its count.
// - pipe: round trips; the child echoes, the parent checks each reply.
// - kv: the child sets 64 keys over and over (a value is its writer's
//   counter, repeated), the parent reads them and checks that no value is
//   torn; set ops/s are the child's, get ops/s the parent's.
// Segments are named "bench.<pid>.<what>" and removed on every way out
// (error, Ctrl-C); the child notices a dead parent and leaves.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>

#include <sleet/sleet.hpp>

#include "cli.hpp"
#include "output.hpp"

namespace sleet::cli {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// What a peer reports: messages or operations done, errors found, and the
// nanoseconds it ran.
using Report = std::array<std::uint64_t, 3>;

constexpr std::uint64_t kKvKeys = 64;

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) { g_interrupted = 1; }

// Ctrl-C or SIGTERM ends the benchmark through the normal cleanup path.
struct InterruptGuard {
  struct sigaction old_int {}, old_term {};
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = &on_interrupt;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
  }
  ~InterruptGuard() {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
  }
};

void check_interrupted() {
  if (g_interrupted) throw Failure(128 + SIGINT, "bench: interrupted");
}

// Removes the names it holds on every way out.
struct Names {
  std::vector<std::string> names;
  std::string add(const std::string& what) {
    names.push_back("bench." + std::to_string(::getpid()) + "." + what);
    remove_object(names.back());  // left over from a crashed run with our pid
    return names.back();
  }
  ~Names() {
    for (const auto& n : names) {
      try {
        remove_object(n);
      } catch (...) {
      }
    }
  }
};

// A forked peer; killed and reaped if still running when this goes away.
class Peer {
 public:
  explicit Peer(const std::function<Report()>& body, const std::string& report_name) {
    const pid_t parent = ::getpid();
    std::cout.flush();
    std::cerr.flush();
    pid_ = ::fork();
    if (pid_ < 0) throw Failure(kError, "bench: fork failed");
    if (pid_ != 0) return;
    int rc = 0;
    try {
      auto out = Channel<Report>::open(report_name);
      const Report r = body();
      if (::getppid() == parent) out.send(r);
    } catch (const std::exception& e) {
      std::cerr << "sleet: bench peer: " << e.what() << '\n';
      rc = 1;
    }
    ::_exit(rc);
  }
  ~Peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Between two waits of the parent: throws if the peer has exited (it
  // never should before it reports) or we were interrupted.
  void check(const std::string& bench) {
    check_alive(bench);
    check_interrupted();
  }
  void check_alive(const std::string& bench) {
    int st = 0;
    if (pid_ > 0 && ::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      throw Failure(kError, "bench " + bench + ": the peer process exited early (status " +
                                std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) +
                                ")");
    }
  }
  // The peer's report, waiting while it is alive.
  Report report(Channel<Report>& from, const std::string& bench) {
    for (;;) {
      if (auto r = from.receive_for(100ms)) {
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return *r;
      }
      check(bench);
    }
  }

 private:
  pid_t pid_ = -1;
};

// Peer side: receives from `from` until it is closed (true), passing each
// message to `take`; false if `take` refuses one or the parent died (a peer
// that outlives its parent leaves instead of waiting forever).
template <class Source, class Take>
bool drain(Source& from, pid_t parent, Take take) {
  try {
    for (;;) {
      auto m = from.receive_for(100ms);
      if (!m) {
        if (::getppid() != parent) return false;
        continue;
      }
      if (!take(*m)) return false;
    }
  } catch (const Error& e) {
    if (e.code() != errc::closed) throw;
  }
  return true;
}

// Message `seq`: the number, then its low byte repeated.
void fill(std::string& m, std::uint64_t seq) {
  std::memcpy(m.data(), &seq, sizeof seq);
  std::memset(m.data() + sizeof seq, static_cast<int>(seq & 0xFF), m.size() - sizeof seq);
}
bool holds(const std::string& m, std::size_t size, std::uint64_t seq) {
  if (m.size() != size) return false;
  std::uint64_t got;
  std::memcpy(&got, m.data(), sizeof got);
  if (got != seq) return false;
  for (std::size_t i = sizeof seq; i < m.size(); ++i) {
    if (static_cast<unsigned char>(m[i]) != (seq & 0xFF)) return false;
  }
  return true;
}

// Calls step(0), step(1), ... until `seconds` have passed (the clock is
// read every `every` steps) or Ctrl-C; returns how many steps ran.
template <class Step>
std::uint64_t repeat_for(double seconds, std::uint64_t every, Step step) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
  std::uint64_t i = 0;
  for (;; ++i) {
    if (i % every == 0 && (Clock::now() >= end || g_interrupted)) return i;
    step(i);
  }
}

struct Row {
  std::string bench;
  std::uint64_t ops = 0;
  double seconds = 0;
  std::uint64_t bytes_per_op = 0;  // 0: no MB/s column
};

std::uint64_t ns_since(Clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
}

Row stream(Topology topology, const BenchOptions& o) {
  const std::string bench = topology == Topology::spsc ? "spsc" : "mpmc";
  Names names;
  const std::string data_name = names.add(bench);
  const std::string report_name = names.add(bench + ".report");
  auto data = Channel<std::string>::create(
      data_name, {.topology = topology, .capacity = 1024, .max_message_size = o.size + 16});
  auto reports = Channel<Report>::create(report_name, {.capacity = 2});
  const pid_t parent = ::getpid();
  const std::size_t size = o.size;
  Peer peer(
      [&]() -> Report {
        auto in = Channel<std::string>::open(data_name);
        const auto start = Clock::now();
        std::uint64_t expected = 0;
        const bool ok = drain(in, parent, [&](const std::string& m) {
          if (!holds(m, size, expected)) return false;
          ++expected;
          return true;
        });
        return {expected, ok ? 0u : 1u, ns_since(start)};
      },
      report_name);

  std::string m(o.size, '\0');
  const auto start = Clock::now();
  const std::uint64_t seq = repeat_for(o.seconds, 256, [&](std::uint64_t i) {
    fill(m, i);
    while (!data.send_for(m, 100ms)) peer.check(bench);
  });
  check_interrupted();
  data.close();
  const Report r = peer.report(reports, bench);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (r[1] != 0 || r[0] != seq) {
    throw Failure(kError, "bench " + bench + ": the receiver checked " + std::to_string(r[0]) +
                              " of " + std::to_string(seq) + " messages, then found message " +
                              std::to_string(r[0]) + " wrong or missing");
  }
  return {bench, seq, seconds, o.size};
}

Row pipe(const BenchOptions& o) {
  const std::string bench = "pipe";
  Names names;
  const std::string pipe_name = names.add("pipe");
  const std::string report_name = names.add("pipe.report");
  auto [a, b] = Pipe<std::string>::create(
      pipe_name, {.capacity = 64, .max_message_size = o.size + 16});
  { auto drop = std::move(b); }  // the child opens its own end b
  auto reports = Channel<Report>::create(report_name, {.capacity = 2});
  const pid_t parent = ::getpid();
  Peer peer(
      [&]() -> Report {
        auto end_b = Pipe<std::string>::open(pipe_name, End::b);
        std::uint64_t echoed = 0;
        const bool ok = drain(end_b, parent, [&](const std::string& m) {
          end_b.send(m);
          ++echoed;
          return true;
        });
        return {echoed, ok ? 0u : 1u, 0};
      },
      report_name);

  std::string m(o.size, '\0');
  const auto start = Clock::now();
  const std::uint64_t seq = repeat_for(o.seconds, 64, [&](std::uint64_t i) {
    fill(m, i);
    a.send(m);
    std::optional<std::string> reply;
    while (!(reply = a.receive_for(100ms))) peer.check(bench);
    if (!holds(*reply, o.size, i)) {
      throw Failure(kError, "bench pipe: reply " + std::to_string(i) + " is not what was sent");
    }
  });
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  check_interrupted();
  a.close();
  const Report r = peer.report(reports, bench);
  if (r[1] != 0 || r[0] != seq) {
    throw Failure(kError, "bench pipe: the peer echoed " + std::to_string(r[0]) + " of " +
                              std::to_string(seq) + " messages");
  }
  return {"pipe round trip", seq, seconds, 2 * o.size};
}

// A kv value: the writer's counter, then its low byte repeated (as fill()).
std::pair<Row, Row> kv(const BenchOptions& o) {
  const std::string bench = "kv";
  Names names;
  const std::string store_name = names.add("kv");
  const std::string report_name = names.add("kv.report");
  auto store = KvStore::create(store_name, {.capacity = 2 * kKvKeys, .max_key_size = 16,
                                            .max_value_size = o.size + 16});
  auto reports = Channel<Report>::create(report_name, {.capacity = 2});
  const std::size_t size = o.size;
  const double seconds = o.seconds;
  std::array<std::string, kKvKeys> keys;
  for (std::uint64_t i = 0; i < kKvKeys; ++i) keys[i] = std::string("k").append(std::to_string(i));
  Peer peer(
      [&]() -> Report {
        auto kv = KvStore::open(store_name);
        std::string v(size, '\0');
        const auto start = Clock::now();
        const std::uint64_t n = repeat_for(seconds, 256, [&](std::uint64_t i) {
          fill(v, i);
          kv.set(keys[i % kKvKeys], v);
        });
        return {n, 0, ns_since(start)};
      },
      report_name);

  const auto start = Clock::now();
  std::uint64_t torn = 0;
  const std::uint64_t n = repeat_for(o.seconds, 256, [&](std::uint64_t i) {
    if (auto v = store.get<std::string>(keys[i % kKvKeys])) {
      std::uint64_t seq;
      std::memcpy(&seq, v->data(), sizeof seq);
      torn += !holds(*v, o.size, seq);
    }
  });
  check_interrupted();
  const double get_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const Report r = peer.report(reports, bench);
  if (torn != 0) throw Failure(kError, "bench kv: " + std::to_string(torn) + " torn values read");
  return {Row{"kv set", r[0], static_cast<double>(r[2]) / 1e9, o.size},
          Row{"kv get", n, get_seconds, o.size}};
}

void progress(const std::string& bench, const BenchOptions& o) {
  std::cerr << "sleet bench: " << bench << ", " << o.size << "-byte messages, "
            << format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::duration<double>(o.seconds)))
            << " ...\n";
}

}  // namespace

int run_bench(const BenchOptions& o) {
  if (o.size < 8 || o.size > 65536) {
    throw Failure(kUsage, "bench: --size " + std::to_string(o.size) +
                              " is out of range [8, 65536] (bytes per message)");
  }
  if (!(o.seconds > 0 && o.seconds <= 3600)) {
    throw Failure(kUsage, "bench: --seconds " + fixed(o.seconds, 3) + " is out of range (0, 3600]");
  }
  InterruptGuard interrupts;
  g_interrupted = 0;
  const bool all = o.which == "all";
  std::vector<Row> rows;
  if (all || o.which == "spsc") {
    progress("spsc", o);
    rows.push_back(stream(Topology::spsc, o));
  }
  if (all || o.which == "mpmc") {
    progress("mpmc", o);
    rows.push_back(stream(Topology::mpmc, o));
  }
  if (all || o.which == "pipe") {
    progress("pipe", o);
    rows.push_back(pipe(o));
  }
  if (all || o.which == "kv") {
    progress("kv", o);
    auto [set, get] = kv(o);
    rows.push_back(set);
    rows.push_back(get);
  }
  Table t({"BENCHMARK", "SIZE", "OPS", "SECONDS", "OPS/S", "MB/S", "NS/OP"});
  for (const Row& r : rows) {
    const double rate = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
    const double mb = rate * static_cast<double>(r.bytes_per_op) / 1e6;
    t.add({r.bench, std::to_string(o.size), std::to_string(r.ops), fixed(r.seconds, 2), si(rate),
           fixed(mb, 1), r.ops ? fixed(r.seconds * 1e9 / static_cast<double>(r.ops), 1) : "-"});
  }
  std::cout << t.str();
  return kOk;
}

}  // namespace sleet::cli
