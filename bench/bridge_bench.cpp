// bench/bridge_bench.cpp — host to host through the NATS bridge, next to a
// plain NATS publisher/subscriber pair (the reference), in one run.
//
//   build/bench/bridge_bench [--rounds=5] [--quick] [--low-latency] [--only=plain|bridge] [--case=0..3]
//
// --low-latency: libnats' SendAsap on the plain pair and
// BridgeOptions::low_latency on the bridges (each publish written at once;
// by default libnats' flusher coalesces writes, waiting up to 1 ms).
//
// Starts its own nats-server on a free loopback port. "Hosts" are forked
// children with a private /dev/shm (a mount namespace each: needs root or
// CAP_SYS_ADMIN), so the bridged messages can only go through NATS:
// - throughput: host A publishes M messages on a local topic exported to a
//   subject; host B's bridge imports it into a local topic its app drains.
//   Plain: process P publishes M messages of the same size on a subject,
//   process Q's subscription callback counts them. Messages/s from A's (P's)
//   first publish to B's (Q's) last receive.
// - round trip: A publishes a ping on topic "ping" (exported), B's app
//   receives it from its imported "ping" and publishes a pong on "pong"
//   (exported), A's app receives it from its imported "pong". Plain: P
//   publishes on a subject, Q's app takes it with NextMsg and publishes the
//   reply, P takes that with NextMsg. Both use libnats' default options.
// Rows run A B A B (plain, bridge) for every round; the table gives each
// round's bridge/plain ratio: median and range.
#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sleet/bridge.hpp>
#include <sleet/topic.hpp>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

template <std::size_t S>
struct Msg {
  std::uint64_t seq;
  char pad[S - 8];
};

// Plumbing between the parent and its children (an anonymous shared mapping).
struct Board {
  std::atomic<int> ready{0};
  std::atomic<int> done{0};
  std::atomic<std::int64_t> t0{0}, t1{0};
  std::atomic<std::uint64_t> count{0};
};

Board* new_board() {
  void* p = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) Board{};
}

void wait_for(const std::atomic<int>& v, int at_least) {
  // acquire: what the other side wrote before raising it is visible.
  while (v.load(std::memory_order_acquire) < at_least) std::this_thread::sleep_for(100us);
}

pid_t fork_child(const std::function<void()>& body, bool isolate) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (isolate && (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                  ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=512m") != 0)) {
    std::perror("bridge_bench: private /dev/shm");
    ::_exit(2);
  }
  try {
    body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bridge_bench: child: %s\n", e.what());
    ::_exit(1);
  }
  ::_exit(0);
}

bool reap(std::vector<pid_t> pids) {
  bool ok = true;
  for (pid_t p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  return ok;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool g_low_latency = false;  // --low-latency: SendAsap on both sides

natsConnection* connect(const std::string& url) {
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url.c_str());
  natsOptions_SetSendAsap(o, g_low_latency);
  natsConnection* nc = nullptr;
  const natsStatus s = natsConnection_Connect(&nc, o);
  natsOptions_Destroy(o);
  if (s != NATS_OK) throw std::runtime_error("connect " + url);
  return nc;
}

std::unique_ptr<sleet::Bridge> bridge(const std::string& url, const std::vector<sleet::BridgeRoute>& routes) {
  sleet::BridgeOptions o;
  o.servers = {url};
  o.backpressure = sleet::BridgeBackpressure::wait;  // the bench counts delivered messages
  o.wait_limit = 10s;
  o.log = [](std::string_view) {};
  o.low_latency = g_low_latency;
  auto b = std::make_unique<sleet::Bridge>(o);
  for (const auto& r : routes) b->add(r);
  b->start();
  return b;
}

// --- throughput: messages/s ---

template <std::size_t S>
double plain_throughput(const std::string& url, std::uint64_t m, int round) {
  Board* bd = new_board();
  const std::string subj = "plain.t." + std::to_string(round);
  const pid_t q = fork_child([&] {
    natsConnection* nc = connect(url);
    natsSubscription* sub = nullptr;
    struct Ctx {
      Board* bd;
      std::uint64_t m;
    } ctx{bd, m};
    natsConnection_Subscribe(
        &sub, nc, subj.c_str(),
        [](natsConnection*, natsSubscription*, natsMsg* msg, void* c) {
          auto* x = static_cast<Ctx*>(c);
          // relaxed: only this callback thread counts; t1 is published by done's release.
          if (x->bd->count.fetch_add(1, std::memory_order_relaxed) + 1 == x->m) {
            x->bd->t1.store(now_ns(), std::memory_order_relaxed);
            x->bd->done.store(1, std::memory_order_release);  // release: t1 first
          }
          natsMsg_Destroy(msg);
        },
        &ctx);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(nc);
    bd->ready.store(1, std::memory_order_release);  // release: subscribed
    wait_for(bd->done, 1);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }, false);
  const pid_t p = fork_child([&] {
    natsConnection* nc = connect(url);
    wait_for(bd->ready, 1);
    Msg<S> msg{};
    bd->t0.store(now_ns(), std::memory_order_relaxed);  // relaxed: read after the children exit
    for (std::uint64_t i = 1; i <= m; ++i) {
      msg.seq = i;
      while (natsConnection_Publish(nc, subj.c_str(), &msg, sizeof msg) != NATS_OK) std::this_thread::sleep_for(10us);
    }
    natsConnection_Flush(nc);
    wait_for(bd->done, 1);
    natsConnection_Destroy(nc);
  }, false);
  const bool ok = reap({p, q});
  const double secs = static_cast<double>(bd->t1 - bd->t0) / 1e9;
  return ok ? static_cast<double>(m) / secs : 0;
}

template <std::size_t S>
double bridge_throughput(const std::string& url, std::uint64_t m, int round) {
  Board* bd = new_board();
  const std::string subj = "bridge.t." + std::to_string(round);
  const pid_t b = fork_child([&] {
    auto t = sleet::Topic<Msg<S>>::create("in", {.capacity = 8192, .max_message_size = sizeof(Msg<S>)});
    auto sub = t.subscribe();
    auto br = bridge(url, {sleet::parse_import(subj + "=in")});
    while (!br->connected()) std::this_thread::sleep_for(1ms);
    bd->ready.store(1, std::memory_order_release);  // release: subscribed
    for (std::uint64_t i = 1; i <= m; ++i) {
      const Msg<S> x = sub.receive();
      if (x.seq != i) throw std::runtime_error("bridge throughput: out of order");
    }
    bd->t1.store(now_ns(), std::memory_order_relaxed);
    bd->done.store(1, std::memory_order_release);  // release: t1 first
  }, true);
  const pid_t a = fork_child([&] {
    auto t = sleet::Topic<Msg<S>>::create("out", {.capacity = 8192, .max_message_size = sizeof(Msg<S>)});
    auto br = bridge(url, {sleet::parse_export("out=" + subj)});
    while (!br->connected()) std::this_thread::sleep_for(1ms);
    wait_for(bd->ready, 1);
    Msg<S> msg{};
    bd->t0.store(now_ns(), std::memory_order_relaxed);  // relaxed: read after the children exit
    for (std::uint64_t i = 1; i <= m; ++i) {
      msg.seq = i;
      t.publish(msg);
    }
    wait_for(bd->done, 1);
  }, true);
  const bool ok = reap({a, b});
  const double secs = static_cast<double>(bd->t1 - bd->t0) / 1e9;
  return ok ? static_cast<double>(m) / secs : 0;
}

// --- round trip: microseconds ---

template <std::size_t S>
double plain_rtt(const std::string& url, int k, int round) {
  Board* bd = new_board();
  const std::string ping = "plain.ping." + std::to_string(round), pong = "plain.pong." + std::to_string(round);
  const pid_t q = fork_child([&] {
    natsConnection* nc = connect(url);
    natsSubscription* sub = nullptr;
    natsConnection_SubscribeSync(&sub, nc, ping.c_str());
    natsConnection_Flush(nc);
    bd->ready.fetch_add(1, std::memory_order_release);  // release: subscribed
    for (int i = 0; i < k; ++i) {
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, sub, 10000) != NATS_OK) throw std::runtime_error("plain rtt: no ping");
      natsConnection_Publish(nc, pong.c_str(), natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
      natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }, false);
  const pid_t p = fork_child([&] {
    natsConnection* nc = connect(url);
    natsSubscription* sub = nullptr;
    natsConnection_SubscribeSync(&sub, nc, pong.c_str());
    natsConnection_Flush(nc);
    wait_for(bd->ready, 1);
    Msg<S> msg{};
    bd->t0.store(now_ns(), std::memory_order_relaxed);  // relaxed: read after the children exit
    for (int i = 0; i < k; ++i) {
      msg.seq = static_cast<std::uint64_t>(i);
      natsConnection_Publish(nc, ping.c_str(), &msg, sizeof msg);
      natsMsg* r = nullptr;
      if (natsSubscription_NextMsg(&r, sub, 10000) != NATS_OK) throw std::runtime_error("plain rtt: no pong");
      natsMsg_Destroy(r);
    }
    bd->t1.store(now_ns(), std::memory_order_relaxed);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }, false);
  const bool ok = reap({p, q});
  return ok ? static_cast<double>(bd->t1 - bd->t0) / 1e3 / k : 0;
}

template <std::size_t S>
double bridge_rtt(const std::string& url, int k, int round) {
  Board* bd = new_board();
  const std::string ping = "bridge.ping." + std::to_string(round), pong = "bridge.pong." + std::to_string(round);
  const pid_t b = fork_child([&] {
    auto in = sleet::Topic<Msg<S>>::create("ping", {.max_message_size = sizeof(Msg<S>)});
    auto out = sleet::Topic<Msg<S>>::create("pong", {.max_message_size = sizeof(Msg<S>)});
    auto sub = in.subscribe();
    auto br = bridge(url, {sleet::parse_import(ping + "=ping"), sleet::parse_export("pong=" + pong)});
    while (!br->connected()) std::this_thread::sleep_for(1ms);
    bd->ready.fetch_add(1, std::memory_order_release);  // release: subscribed
    for (int i = 0; i < k; ++i) out.publish(sub.receive());
    wait_for(bd->done, 1);
  }, true);
  const pid_t a = fork_child([&] {
    auto out = sleet::Topic<Msg<S>>::create("ping", {.max_message_size = sizeof(Msg<S>)});
    auto in = sleet::Topic<Msg<S>>::create("pong", {.max_message_size = sizeof(Msg<S>)});
    auto sub = in.subscribe();
    auto br = bridge(url, {sleet::parse_export("ping=" + ping), sleet::parse_import(pong + "=pong")});
    while (!br->connected()) std::this_thread::sleep_for(1ms);
    wait_for(bd->ready, 1);
    Msg<S> msg{};
    bd->t0.store(now_ns(), std::memory_order_relaxed);  // relaxed: read after the children exit
    for (int i = 0; i < k; ++i) {
      msg.seq = static_cast<std::uint64_t>(i);
      out.publish(msg);
      if (sub.receive().seq != msg.seq) throw std::runtime_error("bridge rtt: wrong pong");
    }
    bd->t1.store(now_ns(), std::memory_order_relaxed);
    bd->done.store(1, std::memory_order_release);  // release: B may go
  }, true);
  const bool ok = reap({a, b});
  return ok ? static_cast<double>(bd->t1 - bd->t0) / 1e3 / k : 0;
}

struct Series {
  std::string what;
  bool higher_is_better;
  std::vector<double> plain, bridge;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  bool quick = false;
  std::string only;  // --only=plain|bridge and --case=0..3: one side or one row (strace, perf stat)
  int only_case = -1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--only=", 7) == 0) only = argv[i] + 7;
    if (std::strncmp(argv[i], "--case=", 7) == 0) only_case = std::atoi(argv[i] + 7);
    if (std::strncmp(argv[i], "--rounds=", 9) == 0) rounds = std::max(1, std::atoi(argv[i] + 9));
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--low-latency") == 0) g_low_latency = true;
  }
  if (quick) rounds = std::min(rounds, 2);
  const char* exe = nullptr;
  for (const char* p : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
    if (::access(p, X_OK) == 0) exe = p;
  }
  if (exe == nullptr) {
    std::fprintf(stderr, "bridge_bench: nats-server not found (Debian: nats-server)\n");
    return 1;
  }
  const int port = free_port();
  const std::string url = "nats://127.0.0.1:" + std::to_string(port);
  const pid_t server = fork_child([&] {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    const std::string p = std::to_string(port);
    ::execl(exe, exe, "-a", "127.0.0.1", "-p", p.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }, false);
  std::this_thread::sleep_for(500ms);

  const std::uint64_t m64 = quick ? 20000 : 200000, m4k = quick ? 5000 : 40000;
  const int k = quick ? 300 : 1000;
  std::vector<Series> s = {{"throughput 64 B (msg/s)", true, {}, {}},
                           {"throughput 4 KiB (msg/s)", true, {}, {}},
                           {"round trip 64 B (us)", false, {}, {}},
                           {"round trip 4 KiB (us)", false, {}, {}}};
  const bool plain = only != "bridge", bridged = only != "plain";
  auto want = [&](int c) { return only_case < 0 || only_case == c; };
  for (int r = 0; r < rounds; ++r) {
    if (want(0) && plain) s[0].plain.push_back(plain_throughput<64>(url, m64, r));
    if (want(0) && bridged) s[0].bridge.push_back(bridge_throughput<64>(url, m64, r));
    if (want(1) && plain) s[1].plain.push_back(plain_throughput<4096>(url, m4k, r));
    if (want(1) && bridged) s[1].bridge.push_back(bridge_throughput<4096>(url, m4k, r));
    if (want(2) && plain) s[2].plain.push_back(plain_rtt<64>(url, k, r));
    if (want(2) && bridged) s[2].bridge.push_back(bridge_rtt<64>(url, k, r));
    if (want(3) && plain) s[3].plain.push_back(plain_rtt<4096>(url, k, r));
    if (want(3) && bridged) s[3].bridge.push_back(bridge_rtt<4096>(url, k, r));
    std::fprintf(stderr, "round %d/%d done\n", r + 1, rounds);
  }
  ::kill(server, SIGTERM);
  ::waitpid(server, nullptr, 0);

  // Cost ratio: how many times the plain pair's cost the bridge takes
  // (plain/bridge for a rate, bridge/plain for a time): goal <= 1.3.
  std::printf("| what | plain NATS (median) | bridge (median) | cost ratio median | range | goal |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const auto& x : s) {
    std::vector<double> ratios;
    for (std::size_t i = 0; i < std::min(x.plain.size(), x.bridge.size()); ++i) {
      if (x.plain[i] > 0 && x.bridge[i] > 0) {
        ratios.push_back(x.higher_is_better ? x.plain[i] / x.bridge[i] : x.bridge[i] / x.plain[i]);
      }
    }
    const auto [lo, hi] = ratios.empty() ? std::pair<double, double>{0, 0}
                                         : std::pair<double, double>{*std::min_element(ratios.begin(), ratios.end()),
                                                                     *std::max_element(ratios.begin(), ratios.end())};
    const double med = median(ratios);
    if (ratios.empty()) {
      std::printf("| %s | %.4g | %.4g | - | - | 1.3x n/a |\n", x.what.c_str(), median(x.plain), median(x.bridge));
      continue;
    }
    std::printf("| %s | %.4g | %.4g | %.2fx | %.2f-%.2f | 1.3x %s |\n", x.what.c_str(), median(x.plain),
                median(x.bridge), med, lo, hi, med <= 1.3 ? "met" : "missed");
  }
  return 0;
}
