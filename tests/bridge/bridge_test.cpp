// sleet::Bridge between "hosts" (children with private /dev/shm) through a
// nats-server the test starts on loopback.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include <sleet/bridge.hpp>
#include <sleet/channel.hpp>
#include <sleet/kv_store.hpp>
#include <sleet/topic.hpp>

#include "bridge/bridge_support.hpp"

using namespace sleet;
using namespace sleet::test;

namespace {

// A bridge with `routes`, connected and started (errors throw: the host
// body reports them through Child's exit code 99 and stderr).
std::unique_ptr<Bridge> start_bridge(const std::string& url, const std::vector<BridgeRoute>& routes,
                                     LogLines& log, const std::string& status = "", bool durable = false) {
  BridgeOptions o;
  o.durable = durable;
  o.servers = {url};
  o.log = log.sink();
  o.status = status;
  auto b = std::make_unique<Bridge>(o);
  if (!eventually([&] { return b->connected(); }, patience(10s))) {
    throw std::runtime_error("bridge did not connect to " + url);
  }
  for (const auto& r : routes) b->add(r);
  b->start();
  return b;
}

#define SKIP_WITHOUT_HOSTS()                                                         \
  do {                                                                               \
    if (nats_server_path() == nullptr) {                                             \
      WARN("skipped: nats-server is not installed (Debian: nats-server)");           \
      return;                                                                        \
    }                                                                                \
    if (const std::string why = hosts_unavailable(); !why.empty()) {                 \
      WARN("skipped: cannot give a host its own /dev/shm (" << why << ")");          \
      return;                                                                        \
    }                                                                                \
  } while (0)

// Receives `n` ticks 1..n in order from `sub`; 0 or the report's failure.
int expect_ticks(Subscriber<Tick>& sub, std::uint64_t n, Report& r, std::atomic<std::uint64_t>& count) {
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto t = sub.receive_for(patience(10s));
    if (!t) return r.fail("tick %llu of %llu: timed out", (unsigned long long)i, (unsigned long long)n);
    if (t->seq != i || t->check != mix(i)) {
      return r.fail("tick %llu: got seq %llu check %llx", (unsigned long long)i,
                    (unsigned long long)t->seq, (unsigned long long)t->check);
    }
    count.fetch_add(1, std::memory_order_relaxed);  // relaxed: progress for the parent
  }
  if (sub.receive_for(100ms)) return r.fail("a tick after the last one (a duplicate)");
  return 0;
}

int check_route(const BridgeRouteStatus& s, std::uint64_t forwarded, Report& r) {
  if (s.forwarded != forwarded || s.dropped != 0 || s.refused != 0 || s.duplicates != 0 || s.gaps != 0) {
    return r.fail("%s: forwarded %llu (want %llu) dropped %llu refused %llu duplicates %llu gaps %llu: %s",
                  s.route, (unsigned long long)s.forwarded, (unsigned long long)forwarded,
                  (unsigned long long)s.dropped, (unsigned long long)s.refused,
                  (unsigned long long)s.duplicates, (unsigned long long)s.gaps, s.last_error);
  }
  return 0;
}

int wait_forwarded(Bridge& b, std::uint64_t n) {
  return eventually(
             [&] {
               for (const auto& s : b.status()) {
                 if (s.forwarded < n) return false;
               }
               return true;
             },
             patience(30s))
             ? 0
             : 1;
}

// Waits for host A (report 0), then B (report 1); each must exit 0.
void join_hosts(Child& a, Child& b, Board& board, std::chrono::milliseconds limit) {
  const int ra = a.wait_for(limit);
  const int rb = b.wait_for(limit);
  INFO("A: " << board.report[0].what() << "; B: " << board.report[1].what());
  CHECK(ra == 0);
  CHECK(rb == 0);
}

}  // namespace

TEST_CASE("bridge: routes and URLs are checked, each bad one with its error", "[bridge]") {
  const BridgeRoute e = parse_export("ticks");
  CHECK(e.direction == BridgeRoute::Direction::out);
  CHECK(e.object == "ticks");
  CHECK(e.subject == "sleet.ticks");
  CHECK(parse_export("ticks=market.eu.ticks").subject == "market.eu.ticks");
  const BridgeRoute i = parse_import("market.eu.ticks");
  CHECK(i.direction == BridgeRoute::Direction::in);
  CHECK(i.object == "ticks");
  CHECK(parse_import("sleet.jobs=work").object == "work");
  CHECK(i.describe() == "import market.eu.ticks -> ticks");

  CHECK_SLEET_ERROR(parse_export(""), errc::invalid_argument, "an empty part");
  CHECK_SLEET_ERROR(parse_export("ticks="), errc::invalid_argument, "an empty part");
  CHECK_SLEET_ERROR(parse_import("=ticks"), errc::invalid_argument, "an empty part");
  CHECK_SLEET_ERROR(parse_export("bad/name"), errc::invalid_name, "'bad/name' is not an object name");
  CHECK_SLEET_ERROR(parse_export("t=a..b"), errc::invalid_argument, "has an empty token");
  CHECK_SLEET_ERROR(parse_import("a.*"), errc::invalid_argument, "has a wildcard");
  CHECK_SLEET_ERROR(parse_import("a.>=x"), errc::invalid_argument, "has a wildcard");
  CHECK_SLEET_ERROR(parse_import("a b"), errc::invalid_argument, "has a space");

  auto bad_url = [](std::string url) {
    BridgeOptions o;
    o.servers = {std::move(url)};
    Bridge b(o);
  };
  CHECK_SLEET_ERROR(bad_url("127.0.0.1:4222"), errc::invalid_argument, "has no scheme");
  CHECK_SLEET_ERROR(bad_url("http://127.0.0.1:4222"), errc::invalid_argument, "has scheme 'http'");
  CHECK_SLEET_ERROR(bad_url("nats://:4222"), errc::invalid_argument, "has no host");
  CHECK_SLEET_ERROR(bad_url("nats://h:99999"), errc::invalid_argument, "port out of range");
  CHECK_SLEET_ERROR(bad_url("nats://h:42x"), errc::invalid_argument, "bad port '42x'");
  CHECK_SLEET_ERROR(bad_url("nats://h:"), errc::invalid_argument, "empty port");
  // The password never appears in an error.
  const auto err = thrown_error([&] { bad_url("nats://user:s3cret@h:0"); });
  REQUIRE(err);
  CHECK_THAT(err->what(), Catch::Matchers::Contains("nats://user:***@h:0"));
  CHECK_THAT(err->what(), !Catch::Matchers::Contains("s3cret"));
  BridgeOptions none;
  none.servers.clear();
  CHECK_SLEET_ERROR(Bridge{none}, errc::invalid_argument, "no NATS server URL");
}

TEST_CASE("bridge: an unknown object, another kind and a loop are refused at add()", "[bridge]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats;
  SharedMemory<Board> board;
  Child h = host(*board, [&](Board& bd) {
    Report& r = bd.report[0];
    BridgeOptions o;
    o.servers = {nats.url()};
    Bridge b(o);
    auto expect = [&](const BridgeRoute& route, errc code, const char* needle) {
      try {
        b.add(route);
      } catch (const Error& e) {
        if (e.code() != code || std::string(e.what()).find(needle) == std::string::npos) {
          return r.fail("%s: got '%s'", route.describe().c_str(), e.what());
        }
        return 0;
      }
      return r.fail("%s: accepted", route.describe().c_str());
    };
    if (expect(parse_export("nothing"), errc::not_found, "nothing")) return 1;
    KvStore::create("store");
    if (expect(parse_export("store"), errc::kind_mismatch, "'store' is a kv, not a topic or channel")) return 1;
    auto t = Topic<Tick>::create("ticks");
    b.add(parse_export("ticks"));
    if (expect(parse_import("sleet.back=ticks"), errc::invalid_argument, "both exported and imported")) return 1;
    return 0;
  });
  INFO(board->report[0].what());
  CHECK(h.wait_for(patience(30s)) == 0);
}

TEST_CASE("bridge: a topic exported on host A arrives on host B once and in order (struct, string)",
          "[bridge]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats;
  SharedMemory<Board> board;
  const std::uint64_t n = scaled(3000, 300);
  Child b = host(*board, [&](Board& bd) {
    Report& r = bd.report[1];
    auto ticks = Topic<Tick>::create("ticks", {.capacity = 8192});
    auto names = Topic<std::string>::create("names", {.capacity = 8192});
    auto ts = ticks.subscribe();
    auto ns = names.subscribe();
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_import("sleet.ticks"), parse_import("sleet.names")}, log, "st");
    bd.ready.fetch_add(1, std::memory_order_release);  // release: the subscriptions exist
    if (expect_ticks(ts, n, r, bd.received[1]) != 0) return 1;
    for (std::uint64_t i = 1; i <= n; ++i) {
      const auto s = ns.receive_for(patience(10s));
      if (!s) return r.fail("name %llu: timed out", (unsigned long long)i);
      if (*s != text(i)) return r.fail("name %llu: got '%s'", (unsigned long long)i, s->c_str());
    }
    br->stop();
    // The counters, as `sleet bridge --status` reads them from the store.
    const auto st = read_bridge_status("st");
    if (st.size() != 2) return r.fail("%zu routes in the status store", st.size());
    for (const auto& s : st) {
      if (check_route(s, n, r) != 0) return 1;
    }
    return 0;
  });
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == 1; }, patience(20s)));
  Child a = host(*board, [&](Board& bd) {
    auto ticks = Topic<Tick>::create("ticks", {.capacity = 8192});
    auto names = Topic<std::string>::create("names", {.capacity = 8192});
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_export("ticks"), parse_export("names")}, log);
    for (std::uint64_t i = 1; i <= n; ++i) {
      ticks.publish(tick(i));
      names.publish(text(i));
    }
    if (wait_forwarded(*br, n) != 0) return bd.report[0].fail("the exports did not forward everything");
    br->stop();
    for (const auto& s : br->status()) {
      if (check_route(s, n, bd.report[0]) != 0) return 1;
    }
    return 0;
  });
  join_hosts(a, b, *board, patience(60s));
}

TEST_CASE("bridge: a channel exported on host A is received on host B once and in order", "[bridge]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats;
  SharedMemory<Board> board;
  const std::uint64_t n = scaled(2000, 200);
  Child b = host(*board, [&](Board& bd) {
    Report& r = bd.report[1];
    auto jobs = Channel<std::string>::create("jobs", {.capacity = 4096});
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_import("sleet.jobs")}, log);
    bd.ready.fetch_add(1, std::memory_order_release);  // release: subscribed
    for (std::uint64_t i = 1; i <= n; ++i) {
      const auto s = jobs.receive_for(patience(10s));
      if (!s) return r.fail("job %llu: timed out", (unsigned long long)i);
      if (*s != text(i)) return r.fail("job %llu: got '%s'", (unsigned long long)i, s->c_str());
    }
    if (jobs.receive_for(100ms)) return r.fail("a job after the last one");
    br->stop();
    return check_route(br->status()[0], n, r);
  });
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == 1; }, patience(20s)));
  Child a = host(*board, [&](Board& bd) {
    auto jobs = Channel<std::string>::create("jobs", {.capacity = 4096});
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_export("jobs")}, log);
    for (std::uint64_t i = 1; i <= n; ++i) jobs.send(text(i));
    if (wait_forwarded(*br, n) != 0) return bd.report[0].fail("the export did not forward everything");
    br->stop();
    if (jobs.try_receive()) return bd.report[0].fail("a job stayed on host A");
    return check_route(br->status()[0], n, bd.report[0]);
  });
  join_hosts(a, b, *board, patience(60s));
}

TEST_CASE("bridge: both directions at once, and one exporter to two importers", "[bridge]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats;
  SharedMemory<Board> board;
  const std::uint64_t n = scaled(2000, 200);
  const bool fan_out = GENERATE(false, true);
  INFO((fan_out ? "A -> B and C" : "A -> B and B -> A"));
  // Host k publishes "from<k>" and imports the others' topics into "to<k>".
  auto body = [&](int k) {
    return [&, k](Board& bd) {
      Report& r = bd.report[k];
      auto out = Topic<Tick>::create("out", {.capacity = 8192});
      auto in = Topic<Tick>::create("in", {.capacity = 8192});
      auto sub = in.subscribe();
      std::vector<BridgeRoute> routes;
      const bool exports = !fan_out || k == 0;
      const bool imports = !fan_out || k != 0;
      if (exports) routes.push_back(parse_export("out=h" + std::to_string(k) + ".out"));
      if (imports) routes.push_back(parse_import("h" + std::to_string(fan_out ? 0 : 1 - k) + ".out=in"));
      LogLines log;
      auto br = start_bridge(nats.url(), routes, log);
      bd.ready.fetch_add(1, std::memory_order_release);  // release: subscribed
      // acquire: every host is subscribed before anyone publishes.
      if (!wait_flag(bd.go, 1, patience(20s))) return r.fail("no go");
      std::thread pub;
      if (exports) {
        pub = std::thread([&] {
          for (std::uint64_t i = 1; i <= n; ++i) out.publish(tick(i));
        });
      }
      int rc = imports ? expect_ticks(sub, n, r, bd.received[k]) : 0;
      if (pub.joinable()) pub.join();
      if (rc == 0 && exports && wait_forwarded(*br, n) != 0) rc = r.fail("exports stalled");
      br->stop();
      return rc;
    };
  };
  std::vector<Child> hosts;
  const int count = fan_out ? 3 : 2;
  for (int k = 0; k < count; ++k) hosts.push_back(host(*board, body(k)));
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == count; }, patience(20s)));
  board->go.store(1, std::memory_order_release);  // release: pairs with wait_flag's acquire
  for (int k = 0; k < count; ++k) {
    const int rc = hosts[k].wait_for(patience(60s));
    INFO("host " << k << ": " << board->report[k].what());
    CHECK(rc == 0);
  }
}

TEST_CASE("bridge: a message of another type is refused, counted and logged, never delivered", "[bridge]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats;
  SharedMemory<Board> board;
  constexpr std::uint64_t n = 20;
  Child b = host(*board, [&](Board& bd) {
    Report& r = bd.report[1];
    auto t = Topic<std::string>::create("ticks");
    auto sub = t.subscribe();
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_import("sleet.ticks")}, log);
    bd.ready.fetch_add(1, std::memory_order_release);  // release: subscribed
    if (!eventually([&] { return br->status()[0].refused == n; }, patience(20s))) {
      return r.fail("refused %llu of %llu", (unsigned long long)br->status()[0].refused,
                    (unsigned long long)n);
    }
    if (sub.try_receive()) return r.fail("a refused message was delivered");
    const auto s = br->status()[0];
    const std::string err = s.last_error;
    if (s.forwarded != 0 || err.find("refused a message of type '" + tname<Tick>() + "'") == std::string::npos ||
        err.find("holds '" + tname<std::string>() + "'") == std::string::npos) {
      return r.fail("forwarded %llu, last error '%s'", (unsigned long long)s.forwarded, err.c_str());
    }
    if (!log.has("refused a message of type")) return r.fail("the refusal was not logged");
    return 0;
  });
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == 1; }, patience(20s)));
  Child a = host(*board, [&](Board& bd) {
    auto t = Topic<Tick>::create("ticks");
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_export("ticks")}, log);
    for (std::uint64_t i = 1; i <= n; ++i) t.publish(tick(i));
    const int rc = wait_forwarded(*br, n);
    br->stop();
    return rc == 0 ? 0 : bd.report[0].fail("not forwarded");
  });
  join_hosts(a, b, *board, patience(30s));
}

TEST_CASE("bridge: a NATS server restart mid-stream: core counts every missing message as a gap, durable "
          "loses nothing",
          "[bridge]") {
  SKIP_WITHOUT_HOSTS();
  const bool durable = GENERATE(false, true);
  INFO((durable ? "durable" : "core"));
  NatsServer nats(durable);
  SharedMemory<Board> board;
  Child b = host(*board, [&](Board& bd) {
    Report& r = bd.report[1];
    auto t = Topic<Tick>::create("ticks", {.capacity = 1 << 16});
    auto sub = t.subscribe();
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_import("sleet.ticks")}, log, "", durable);
    bd.ready.fetch_add(1, std::memory_order_release);  // release: subscribed
    std::uint64_t last = 0, delivered = 0, missing = 0;
    for (;;) {
      // acquire: after the parent's stop, A has published everything it will.
      const bool stopping = bd.stop.load(std::memory_order_acquire) != 0;
      const auto m = sub.receive_for(10ms);
      if (!m) {
        if (stopping) break;
        continue;
      }
      if (m->check != mix(m->seq)) return r.fail("seq %llu: bad checksum", (unsigned long long)m->seq);
      if (m->seq <= last) return r.fail("seq %llu after %llu", (unsigned long long)m->seq, (unsigned long long)last);
      if (last != 0) missing += m->seq - last - 1;
      last = m->seq;
      ++delivered;
      bd.received[1].store(last, std::memory_order_relaxed);  // relaxed: progress for the parent
    }
    br->stop();
    while (const auto m = sub.try_receive()) {
      if (m->seq <= last) return r.fail("seq %llu after %llu", (unsigned long long)m->seq, (unsigned long long)last);
      missing += m->seq - last - 1;
      last = m->seq;
      ++delivered;
    }
    const auto s = br->status()[0];
    const std::uint64_t sent = bd.published[0].load(std::memory_order_relaxed);
    std::fprintf(stderr, "  restart: %llu sent, %llu delivered, %llu gaps\n", (unsigned long long)sent,
                 (unsigned long long)delivered, (unsigned long long)s.gaps);
    if (s.forwarded != delivered || s.gaps != missing || s.duplicates != 0) {
      return r.fail("forwarded %llu (delivered %llu), gaps %llu (missing %llu), duplicates %llu",
                    (unsigned long long)s.forwarded, (unsigned long long)delivered, (unsigned long long)s.gaps,
                    (unsigned long long)missing, (unsigned long long)s.duplicates);
    }
    if (last != sent) return r.fail("last seq %llu, %llu sent", (unsigned long long)last, (unsigned long long)sent);
    if (durable && delivered != sent) {
      return r.fail("durable: %llu of %llu delivered", (unsigned long long)delivered, (unsigned long long)sent);
    }
    if (!log.has("disconnected from NATS") || !log.has("connected to")) return r.fail("no reconnect logged");
    return 0;
  });
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == 1; }, patience(20s)));
  Child a = host(*board, [&](Board& bd) {
    auto t = Topic<Tick>::create("ticks", {.capacity = 1 << 16});
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_export("ticks")}, log, "", durable);
    std::uint64_t i = 0;
    // acquire: pairs with the parent's release of go = 2 (stop publishing).
    while (bd.go.load(std::memory_order_acquire) < 2) {
      t.publish(tick(++i));
      bd.published[0].store(i, std::memory_order_relaxed);  // relaxed: progress
      std::this_thread::sleep_for(500us);
    }
    if (wait_forwarded(*br, i) != 0) return bd.report[0].fail("not forwarded");
    br->stop();
    if (!log.has("disconnected from NATS")) return bd.report[0].fail("no disconnect logged");
    return 0;
  });
  auto progress = [&](std::uint64_t at_least) {
    return eventually([&] { return board->received[1].load(std::memory_order_relaxed) >= at_least; },
                      patience(20s));
  };
  REQUIRE(progress(200));
  nats.stop();
  std::this_thread::sleep_for(300ms);
  nats.start();
  // Messages published after the restart arrive.
  const std::uint64_t after = board->published[0].load(std::memory_order_relaxed);
  CHECK(progress(after + 200));
  board->go.store(2, std::memory_order_release);  // release: pairs with A's acquire
  const int ra = a.wait_for(patience(30s));
  // The last message crosses (B checks that it arrived) before B is told to stop.
  CHECK(progress(board->published[0].load(std::memory_order_relaxed)));
  board->stop.store(1, std::memory_order_release);  // release: pairs with B's acquire
  const int rb = b.wait_for(patience(30s));
  INFO("A: " << board->report[0].what() << "; B: " << board->report[1].what());
  CHECK(ra == 0);
  CHECK(rb == 0);
}

#ifdef SLEET_CLI
TEST_CASE("sleet bridge: bad command lines and config files, each with its error", "[bridge][cli]") {
  struct Case {
    std::vector<std::string> args;
    std::string config;  // written to a file passed with --config when not empty
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"bridge"}, "", 2, "no route (give --export, --import or --config)"},
      {{"bridge", "--export", "t", "--backpressure", "x"}, "", 2, "--backpressure"},
      {{"bridge", "--config", "/nonexistent/bridge.conf"}, "", 1, "cannot read config file '/nonexistent/bridge.conf'"},
      {{"bridge"}, "server nats://127.0.0.1:1\nbogus 1\n", 2, ":2: unknown setting 'bogus'"},
      {{"bridge"}, "export t\npassword\n", 2, ":2: 'password' needs a value"},
      {{"bridge"}, "export a b\n", 2, ":1: 'export' takes one value"},
      {{"bridge"}, "export t\nbackpressure later\n", 2, "backpressure must be 'drop' or 'wait', not 'later'"},
      {{"bridge", "--server", "http://h:1", "--export", "t"}, "", 1, "has scheme 'http'"},
      {{"bridge", "--export", "t=a..b"}, "", 1, "has an empty token"},
      {{"bridge", "--server", "nats://u:hunter2@h:x", "--export", "t"}, "", 1, "nats://u:***@h:x' has a bad port"},
      {{"bridge", "--status", "--name", "no-such-bridge-" + std::to_string(::getpid())}, "", 1, "not"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c.args;
    std::string path;
    if (!c.config.empty()) {
      path = (std::filesystem::temp_directory_path() / ("sleet-bridge-" + std::to_string(::getpid()) + ".conf")).string();
      std::FILE* f = std::fopen(path.c_str(), "w");
      REQUIRE(f != nullptr);
      std::fputs(c.config.c_str(), f);
      std::fclose(f);
      args.push_back("--config");
      args.push_back(path);
    }
    CliProcess p(args);
    const int rc = p.wait();
    if (!path.empty()) std::filesystem::remove(path);
    INFO("args: " << args.size() << " " << args.back() << "; stderr: " << p.err());
    CHECK(rc == c.status);
    CHECK_THAT(p.err(), Catch::Matchers::Contains(c.needle));
    CHECK_THAT(p.err(), !Catch::Matchers::Contains("hunter2"));
  }
}

TEST_CASE("sleet bridge: a CLI exporter from a config file to a library importer, --status, secrets unprinted",
          "[bridge][cli]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats;
  SharedMemory<Board> board;
  const std::uint64_t n = scaled(1000, 100);
  Child b = host(*board, [&](Board& bd) {
    auto t = Topic<Tick>::create("ticks", {.capacity = 4096});
    auto sub = t.subscribe();
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_import("sleet.ticks")}, log);
    bd.ready.fetch_add(1, std::memory_order_release);  // release: subscribed
    const int rc = expect_ticks(sub, n, bd.report[1], bd.received[1]);
    br->stop();
    return rc;
  });
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == 1; }, patience(20s)));
  Child a = host(*board, [&](Board& bd) {
    Report& r = bd.report[0];
    auto t = Topic<Tick>::create("ticks", {.capacity = 4096});
    const std::string conf = "/dev/shm/bridge.conf";  // this host's private tmpfs
    std::FILE* f = std::fopen(conf.c_str(), "w");
    std::fprintf(f, "# the exporter\nserver %s\nexport ticks   # default subject\nuser bridge\npassword hunter2\n",
                 nats.url().c_str());
    std::fclose(f);
    CliProcess cli({"bridge", "--config", conf, "--name", "b1"});
    // The status store appears once the bridge has started its routes.
    if (!eventually([] { return shm_exists("b1.status"); }, patience(20s))) return r.fail("no status store");
    for (std::uint64_t i = 1; i <= n; ++i) t.publish(tick(i));
    const bool all = eventually(
        [&] {
          const auto s = read_bridge_status("b1.status");
          return s.size() == 1 && s[0].forwarded == n;
        },
        patience(30s));
    if (!all) {
      cli.stop(SIGKILL);
      return r.fail("the CLI bridge did not forward %llu: %s", (unsigned long long)n, cli.err().c_str());
    }
    CliProcess status({"bridge", "--status", "--name", "b1"});
    if (status.wait() != 0) return r.fail("--status failed: %s", status.err().c_str());
    const std::string out = status.out();
    if (out.find("export ticks -> sleet.ticks") == std::string::npos ||
        out.find(" " + std::to_string(n) + " ") == std::string::npos || out.find("FORWARDED") == std::string::npos) {
      return r.fail("--status printed '%s'", out.c_str());
    }
    // acquire: B has every message before the exporter goes.
    if (!eventually([&] { return bd.received[1].load(std::memory_order_relaxed) == n; }, patience(30s))) {
      return r.fail("B did not receive everything");
    }
    const int rc = cli.stop(SIGTERM);
    const std::string err = cli.err();
    if (rc != 0) return r.fail("the CLI bridge exited %d: %s", rc, err.c_str());
    if (err.find("hunter2") != std::string::npos) return r.fail("the password was printed: %s", err.c_str());
    if (err.find("1 route, status in 'b1.status'") == std::string::npos) return r.fail("stderr: %s", err.c_str());
    return 0;
  });
  join_hosts(a, b, *board, patience(60s));
}

TEST_CASE("sleet bridge --durable: the importing bridge SIGKILLed mid-stream and restarted loses nothing",
          "[bridge][cli]") {
  SKIP_WITHOUT_HOSTS();
  NatsServer nats(true);
  SharedMemory<Board> board;
  const std::uint64_t n = scaled(3000, 400);
  Child b = host(*board, [&](Board& bd) {
    Report& r = bd.report[1];
    auto t = Topic<Tick>::create("ticks", {.capacity = 8192});
    auto sub = t.subscribe();
    const std::vector<std::string> args{"bridge", "--durable", "--server", nats.url(), "--import", "sleet.ticks",
                                        "--name", "bB"};
    auto cli = std::make_unique<CliProcess>(args);
    if (!eventually([] { return shm_exists("bB.status"); }, patience(20s))) return r.fail("no status store");
    bd.ready.fetch_add(1, std::memory_order_release);  // release: the import runs
    std::uint64_t last = 0, repeats = 0;
    int kills = 0;
    while (last < n) {
      const auto m = sub.receive_for(patience(20s));
      if (!m) return r.fail("timed out after seq %llu", (unsigned long long)last);
      if (m->check != mix(m->seq)) return r.fail("seq %llu: bad checksum", (unsigned long long)m->seq);
      // The one window of a durable import (bridge.hpp): killed between the
      // local publish and the position write, the message comes once more.
      if (m->seq == last && kills > 0 && repeats < static_cast<std::uint64_t>(kills)) {
        ++repeats;
        continue;
      }
      if (m->seq != last + 1) {
        return r.fail("seq %llu after %llu (kills %d)", (unsigned long long)m->seq, (unsigned long long)last, kills);
      }
      last = m->seq;
      bd.received[1].store(last, std::memory_order_relaxed);  // relaxed: progress
      if (kills < 2 && last == n * static_cast<std::uint64_t>(kills + 1) / 3) {
        cli->stop(SIGKILL);
        ++kills;
        std::this_thread::sleep_for(200ms);  // messages pile up in the stream meanwhile
        cli = std::make_unique<CliProcess>(args);
      }
    }
    if (sub.receive_for(300ms)) return r.fail("a message after the last one");
    const int rc = cli->stop(SIGTERM);
    if (rc != 0) return r.fail("the bridge exited %d: %s", rc, cli->err().c_str());
    std::fprintf(stderr, "  durable import: %llu delivered across %d kills, %llu repeated\n",
                 (unsigned long long)last, kills, (unsigned long long)repeats);
    return 0;
  });
  REQUIRE(eventually([&] { return board->ready.load(std::memory_order_acquire) == 1; }, patience(20s)));
  Child a = host(*board, [&](Board& bd) {
    auto t = Topic<Tick>::create("ticks", {.capacity = 8192});
    LogLines log;
    auto br = start_bridge(nats.url(), {parse_export("ticks")}, log, "", true);
    for (std::uint64_t i = 1; i <= n; ++i) {
      t.publish(tick(i));
      if (i % 16 == 0) std::this_thread::sleep_for(1ms);
    }
    const int rc = wait_forwarded(*br, n);
    br->stop();
    return rc == 0 ? 0 : bd.report[0].fail("not stored");
  });
  join_hosts(a, b, *board, patience(60s));
}
#endif  // SLEET_CLI
