// The sleet tool, driven as a user drives it: the real binary in a child
// process, with stdin, stdout, stderr and the exit code checked. Objects are
// made with the library and looked at with the tool (and the other way
// round). Other tests' objects may exist at the same time, so output is
// searched for this test's names, and `rm --stale/--all` are limited with
// --prefix to this process's names.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

#ifdef SLEET_CLI

namespace st = sleet::test;
using namespace std::chrono_literals;
using sleet::Channel;
using st::contains;

namespace {

struct Run {
  int status = -1;  // exit code, or 128 + signal
  std::string out;
  std::string err;
  int pid = 0;
};

std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  for (off_t at = 0; (n = ::pread(fd, buf, sizeof buf, at)) > 0; at += n) s.append(buf, n);
  return s;
}

// Runs `sleet args...` with `input` on stdin; kills it after `limit`.
Run sleet_cli(const std::vector<std::string>& args, const std::string& input = "",
              std::chrono::milliseconds limit = 20s) {
  std::vector<std::string> full{SLEET_CLI};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Memory files, so nothing can block on a full pipe and nothing lands on disk.
  const int in = ::memfd_create("sleet-cli-in", MFD_CLOEXEC);
  const int out = ::memfd_create("sleet-cli-out", MFD_CLOEXEC);
  const int err = ::memfd_create("sleet-cli-err", MFD_CLOEXEC);
  REQUIRE((in >= 0 && out >= 0 && err >= 0));
  REQUIRE(::pwrite(in, input.data(), input.size(), 0) == static_cast<ssize_t>(input.size()));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  Run r;
  r.pid = pid;
  const auto end = std::chrono::steady_clock::now() + limit;
  int st = 0;
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      FAIL("sleet timed out: " << full[1]);
    }
    std::this_thread::sleep_for(1ms);
  }
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = read_all(out);
  r.err = read_all(err);
  ::close(in);
  ::close(out);
  ::close(err);
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// The `ls` row of `name`, as words ("" if not listed).
std::vector<std::string> ls_row(const std::string& ls_out, const std::string& name) {
  for (const auto& line : lines_of(ls_out)) {
    if (line.starts_with(name + " ")) return words_of(line);
  }
  return {};
}

// The value after "label:" in `stat` output.
std::string stat_field(const std::string& stat_out, const std::string& label) {
  for (const auto& line : lines_of(stat_out)) {
    if (!line.starts_with(label + ":")) continue;
    const auto at = line.find_first_not_of(' ', label.size() + 1);
    return at == std::string::npos ? "" : line.substr(at);
  }
  return "<no " + label + ">";
}

const std::string kPid = std::to_string(::getpid());
const std::string kString = st::tname<std::string>();

// This process's own names start with it (st::unique_name).
std::string own_prefix() { return "t." + std::to_string(::getpid()) + "."; }

}  // namespace

TEST_CASE("cli: ls shows a channel and a kv store with the right fields", "[cli]") {
  const auto ch_name = st::unique_name("cli.ls.ch");
  const auto kv_name = st::unique_name("cli.ls.kv");
  st::Cleanup c1(ch_name), c2(kv_name);
  auto ch = Channel<std::string>::create(ch_name, {.capacity = 16, .max_message_size = 100});
  for (const char* m : {"a", "b", "c"}) ch.send(m);
  auto kv = sleet::KvStore::create(kv_name, {.capacity = 100});
  kv.set("x", std::string("1"));
  kv.set("y", 2);

  const Run r = sleet_cli({"ls"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(lines_of(r.out).at(0).starts_with("NAME"));
  CHECK(words_of(lines_of(r.out).at(0)) ==
        std::vector<std::string>{"NAME", "KIND", "TOPOLOGY", "TYPE", "CAPACITY", "FILL", "CREATOR",
                                 "USERS", "STATE"});
  CHECK(ls_row(r.out, ch_name) == std::vector<std::string>{ch_name, "channel", "mpmc", kString,
                                                           "16", "3", kPid, kPid, "live"});
  CHECK(ls_row(r.out, kv_name) ==
        std::vector<std::string>{kv_name, "kv", "-", "-", "100", "2", kPid, kPid, "live"});
}

TEST_CASE("cli: ls --json shows every field of a channel and a kv store", "[cli]") {
  const auto ch_name = st::unique_name("cli.json.ch");
  const auto kv_name = st::unique_name("cli.json.kv");
  st::Cleanup c1(ch_name), c2(kv_name);
  auto ch = Channel<std::string>::create(
      ch_name, {.topology = sleet::Topology::spsc, .capacity = 8, .max_message_size = 40});
  ch.send("hello");
  auto kv = sleet::KvStore::create(kv_name, {.capacity = 8, .max_key_size = 16, .max_value_size = 32});
  kv.set("k", std::string("v"));

  const Run r = sleet_cli({"ls", "--json"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() >= 4);
  CHECK(lines.front() == "[");
  CHECK(lines.back() == "]");
  std::string ch_line, kv_line;
  for (const auto& l : lines) {
    if (contains(l, "{\"name\":\"" + ch_name + "\"")) ch_line = l;
    if (contains(l, "{\"name\":\"" + kv_name + "\"")) kv_line = l;
  }
  CHECK(contains(ch_line, "\"kind\":\"channel\",\"type\":\"" + kString +
                              "\",\"layout_version\":" + std::to_string(sleet::detail::kLayoutVersion) + ",\"size\":" +
                              std::to_string(ch.base().segment().size()) +
                              ",\"permissions\":\"0600\",\"owner_uid\":" +
                              std::to_string(::getuid()) + ",\"created\":\""));
  CHECK(contains(ch_line, "\"creator_pid\":" + kPid + ",\"creator_alive\":true,\"users\":[" +
                              kPid + "],\"unrecorded_users\":0,\"foreign_pids\":false,\"stale\":false,\"problem\":null,"));
  CHECK(contains(ch_line,
                 "\"rings\":[{\"direction\":null,\"topology\":\"spsc\",\"capacity\":8,"
                 "\"max_message_size\":40,\"closed\":false,\"queued\":1,\"sent\":1,\"received\":0,"
                 "\"times_full\":0,\"send_sleeps\":0,\"receive_sleeps\":0,\"send_wakes\":0,"
                 "\"receive_wakes\":0,\"abandoned\":0,\"lost\":0}]}"));
  CHECK(contains(kv_line, "\"kind\":\"kv\","));
  // One live key: the whole segment is its memory per key.
  const std::string kv_size = std::to_string(
      sleet::detail::Segment::open(kv_name, sleet::detail::SegmentKind::kv,
                                   sleet::detail::fnv1a("sleet::KvStore"), "kv").size());
  CHECK(contains(kv_line, "\"size\":" + kv_size + ","));
  CHECK(contains(kv_line, "\"kv\":{\"capacity\":8,\"slots\":8,\"entries\":1,\"max_key_size\":16,"
                          "\"max_value_size\":32,\"overflow_bytes\":0,\"overflow_used\":0,"
                          "\"bytes_per_entry\":" + kv_size + "}}"));
  CHECK_FALSE(contains(kv_line, "\"rings\""));
}

TEST_CASE("cli: stat of a kv store shows the fill and the memory per live key", "[cli][kv]") {
  const auto name = st::unique_name("cli.stat.kv");
  st::Cleanup cleanup(name);
  auto kv = sleet::KvStore::create(name, {.capacity = 64, .max_key_size = 16, .max_value_size = 64,
                                          .overflow_bytes = 4096});
  for (int i = 0; i < 16; ++i) kv.set("k" + std::to_string(i), i);
  kv.set("big", std::string(1000, 'x'));
  const Run r = sleet_cli({"stat", name});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  const std::uint64_t size = sleet::detail::Segment::open(name, sleet::detail::SegmentKind::kv,
                                                          sleet::detail::fnv1a("sleet::KvStore"), "kv")
                                 .size();
  CHECK(stat_field(r.out, "entries") == "17 (26% of the slots), " + std::to_string(size / 17) +
                                            " bytes of shared memory per live key");
  // 1,008 encoded bytes + the 16-byte run header, in 64-byte blocks.
  CHECK(stat_field(r.out, "overflow") == "1024 of 4096 bytes in use");
}

TEST_CASE("cli: a segment whose processes were SIGKILLed is STALE and rm --stale removes it",
          "[cli][ipc]") {
  const auto dead = st::unique_name("cli.stale");
  const auto live = st::unique_name("cli.live");
  const auto ready = st::unique_name("cli.ready");
  st::Cleanup c1(dead), c2(live), c3(ready);
  auto ready_ch = Channel<int>::create(ready, {.capacity = 2});
  auto mine = Channel<int>::create(live);
  st::Child child([&] {
    auto ch = Channel<int>::create(dead);
    ch.send(7);
    auto go = Channel<int>::open(ready);
    go.send(1);
    for (;;) ::pause();  // until SIGKILL
    return 0;
  });
  REQUIRE(ready_ch.receive_for(5s) == 1);
  const Run before = sleet_cli({"ls"});
  CHECK(ls_row(before.out, dead).back() == "live");
  const int child_pid = child.pid();
  child.kill(SIGKILL);
  REQUIRE(child.wait() == 128 + SIGKILL);

  const Run r = sleet_cli({"ls"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  const auto row = ls_row(r.out, dead);
  REQUIRE(row.size() == 10);  // the creator column reads "<pid> (dead)"
  CHECK(row[6] == std::to_string(child_pid));
  CHECK(row[7] == "(dead)");
  CHECK(row[8] == "-");
  CHECK(row[9] == "STALE");
  CHECK(ls_row(r.out, live).back() == "live");

  const Run rm = sleet_cli({"rm", "--stale", "--prefix", own_prefix()});
  INFO(rm.out << rm.err);
  CHECK(rm.status == 0);
  CHECK(contains(rm.out, "removed " + dead + "\n"));
  CHECK_FALSE(contains(rm.out, live));
  CHECK_FALSE(st::shm_exists(dead));
  CHECK(st::shm_exists(live));
  CHECK(st::shm_exists(ready));
}

TEST_CASE("cli: stat shows the header and the futex counters", "[cli]") {
  const auto name = st::unique_name("cli.stat");
  st::Cleanup cleanup(name);
  auto ch = Channel<std::string>::create(
      name, {.capacity = 16, .max_message_size = 100, .permissions = 0640, .spin = 0ns});
  CHECK_FALSE(ch.receive_for(1ms).has_value());  // a receiver that slept once
  for (const char* m : {"a", "b", "c"}) ch.send(m);
  REQUIRE(ch.receive() == "a");
  const auto stats = ch.stats();
  REQUIRE(stats.receive_sleeps >= 1);

  const Run r = sleet_cli({"stat", name});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(stat_field(r.out, "name") == name);
  CHECK(stat_field(r.out, "kind") == "channel");
  CHECK(stat_field(r.out, "type") == kString);
  CHECK(stat_field(r.out, "state") == "live");
  CHECK(stat_field(r.out, "size") == std::to_string(ch.base().segment().size()) + " bytes");
  CHECK(stat_field(r.out, "permissions") == "0640 (uid " + std::to_string(::getuid()) + ")");
  CHECK(stat_field(r.out, "creator") == "pid " + kPid + " (alive)");
  CHECK(stat_field(r.out, "users") == kPid);
  CHECK(stat_field(r.out, "layout") == "version " + std::to_string(sleet::detail::kLayoutVersion));
  CHECK(stat_field(r.out, "topology") == "mpmc");
  CHECK(stat_field(r.out, "capacity") == "16 messages of up to 100 bytes");
  CHECK(stat_field(r.out, "closed") == "no");
  CHECK(stat_field(r.out, "queued") == "2");
  CHECK(stat_field(r.out, "sent") == "3");
  CHECK(stat_field(r.out, "received") == "1");
  CHECK(stat_field(r.out, "times full") == "0");
  CHECK(stat_field(r.out, "send sleeps") == "0");
  CHECK(stat_field(r.out, "receive sleeps") == std::to_string(stats.receive_sleeps));
  CHECK(stat_field(r.out, "send wakes") == std::to_string(stats.send_wakes));
  CHECK(stat_field(r.out, "receive wakes") == std::to_string(stats.receive_wakes));
  CHECK(stat_field(r.out, "waiting") ==
        "senders slept 0 times, receivers " + std::to_string(stats.receive_sleeps) + " times");

  const Run j = sleet_cli({"stat", name, "--json"});
  CHECK(j.status == 0);
  CHECK(lines_of(j.out).size() == 1);
  CHECK(j.out.starts_with("{\"name\":\"" + name + "\",\"kind\":\"channel\","));
  CHECK(contains(j.out, "\"permissions\":\"0640\""));
  CHECK(contains(j.out, "\"receive_sleeps\":" + std::to_string(stats.receive_sleeps) + ","));
}

TEST_CASE("cli: stat of a pipe shows each direction; of a spinning channel, no sleeps",
          "[cli][pipe]") {
  const auto name = st::unique_name("cli.stat.pipe");
  st::Cleanup cleanup(name);
  auto [a, b] = sleet::Pipe<int>::create(name, {.capacity = 8});
  a.send(1);
  a.send(2);
  b.send(3);
  const Run r = sleet_cli({"stat", name});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(stat_field(r.out, "kind") == "pipe");
  CHECK(stat_field(r.out, "type") == "int");
  CHECK(stat_field(r.out, "a->b topology") == "spsc");
  CHECK(stat_field(r.out, "a->b queued") == "2");
  CHECK(stat_field(r.out, "b->a queued") == "1");
  CHECK(stat_field(r.out, "b->a sent") == "1");
  CHECK(stat_field(r.out, "a->b waiting") ==
        "no futex sleeps (every wait ended while spinning, or nobody waited)");
}

TEST_CASE("cli: rm removes objects of any kind and refuses what is missing or not sleet's",
          "[cli]") {
  const auto ch = st::unique_name("cli.rm.ch");
  const auto kv = st::unique_name("cli.rm.kv");
  const auto missing = st::unique_name("cli.rm.missing");
  const auto foreign = st::unique_name("cli.rm.foreign");
  st::Cleanup c1(ch), c2(kv), c3(missing), c4(foreign);
  (void)Channel<int>::create(ch);
  (void)sleet::KvStore::create(kv, {.capacity = 8});
  REQUIRE(st::write_foreign_object(foreign));

  Run r = sleet_cli({"rm", ch, kv});
  CHECK(r.status == 0);
  CHECK(r.out == "removed " + ch + "\nremoved " + kv + "\n");
  CHECK(r.err.empty());
  CHECK_FALSE(st::shm_exists(ch));
  CHECK_FALSE(st::shm_exists(kv));

  r = sleet_cli({"rm", missing});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "sleet: sleet segment '" + missing + "': does not exist\n");

  r = sleet_cli({"rm", foreign});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "sleet: sleet segment '" + foreign + "': not a sleet segment (bad magic)\n");
  CHECK(st::shm_exists(foreign));
  r = sleet_cli({"stat", foreign});
  CHECK(r.status == 1);
  CHECK(r.err == "sleet: sleet segment '" + foreign + "': not a sleet segment (bad magic)\n");
  r = sleet_cli({"ls"});
  CHECK(ls_row(r.out, foreign).empty());

  // --all --yes (limited to this process's names) takes everything sleet's, nothing else.
  const auto a = st::unique_name("cli.rm.all");
  st::Cleanup c5(a);
  (void)Channel<int>::create(a);
  r = sleet_cli({"rm", "--all", "--yes", "--prefix", own_prefix()});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "removed " + a + "\n"));
  CHECK_FALSE(st::shm_exists(a));
  CHECK(st::shm_exists(foreign));
}

TEST_CASE("cli: kv get, set, del and dump round trip", "[cli][kv]") {
  const auto store = st::unique_name("cli.kv");
  const auto fresh = st::unique_name("cli.kv.fresh");
  st::Cleanup c1(store), c2(fresh);
  auto kv = sleet::KvStore::create(store, {.capacity = 64});
  kv.set("n", 42);

  Run r = sleet_cli({"kv", "set", store, "mode", "fast"});
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
  CHECK(kv.get<std::string>("mode") == "fast");
  r = sleet_cli({"kv", "set", store, "greeting", "hello, \"world\"\tand more"});
  CHECK(r.status == 0);

  r = sleet_cli({"kv", "get", store, "mode"});
  CHECK(r.status == 0);
  CHECK(r.out == "fast\n");
  kv.set("mode", std::string("safe"));  // written by the library, read by the tool
  r = sleet_cli({"kv", "get", store, "mode"});
  CHECK(r.out == "safe\n");

  r = sleet_cli({"kv", "dump", store});
  CHECK(r.status == 0);
  CHECK(r.out == "greeting\thello, \"world\"\tand more\nmode\tsafe\nn\t(int, 4 bytes)\n");
  r = sleet_cli({"kv", "dump", store, "--json"});
  CHECK(r.status == 0);
  CHECK(r.out == "[{\"key\":\"greeting\",\"type\":\"" + kString +
                     "\",\"value\":\"hello, \\\"world\\\"\\tand more\",\"bytes\":31},"
                     "{\"key\":\"mode\",\"type\":\"" + kString +
                     "\",\"value\":\"safe\",\"bytes\":12},"
                     "{\"key\":\"n\",\"type\":\"int\",\"value\":null,\"bytes\":4}]\n");

  // A value of another type is named, not printed.
  r = sleet_cli({"kv", "get", store, "n"});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "sleet: kv store '" + store + "': key 'n' holds 'int', read as '" + kString + "'\n");

  r = sleet_cli({"kv", "del", store, "mode"});
  CHECK(r.status == 0);
  CHECK_FALSE(kv.contains("mode"));
  r = sleet_cli({"kv", "get", store, "mode"});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "sleet: kv store '" + store + "': no key 'mode'\n");
  r = sleet_cli({"kv", "del", store, "mode"});
  CHECK(r.status == 1);
  CHECK(r.err == "sleet: kv store '" + store + "': no key 'mode'\n");

  // JSON stays valid for any bytes: control characters and bytes that are
  // not UTF-8 are escaped, valid UTF-8 is kept.
  kv.set("raw", std::string("a\x01\xff\xc3\xa9\n\"z"));
  r = sleet_cli({"kv", "dump", store, "--json"});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "{\"key\":\"raw\",\"type\":\"" + kString +
                            "\",\"value\":\"a\\u0001\\u00ff\xc3\xa9\\n\\\"z\",\"bytes\":16}"));

  // set does not create a store unless told to.
  r = sleet_cli({"kv", "set", fresh, "k", "v"});
  CHECK(r.status == 1);
  CHECK(r.err == "sleet: sleet segment '" + fresh + "': does not exist\n");
  CHECK_FALSE(st::shm_exists(fresh));
  r = sleet_cli({"kv", "set", fresh, "k", "v", "--create"});
  CHECK(r.status == 0);
  CHECK(sleet::KvStore::open(fresh).get<std::string>("k") == "v");
}

TEST_CASE("cli: send turns stdin lines into messages, recv prints them until closed",
          "[cli][ipc]") {
  const auto name = st::unique_name("cli.lines");
  st::Cleanup cleanup(name);
  auto ch = Channel<std::string>::create(name, {.capacity = 64});

  Run r = sleet_cli({"send", name}, "first\nwith spaces\n\nlast without newline");
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
  CHECK(ch.try_receive() == "first");
  CHECK(ch.try_receive() == "with spaces");
  CHECK(ch.try_receive() == "");
  CHECK(ch.try_receive() == "last without newline");
  CHECK_FALSE(ch.try_receive().has_value());

  // Tool to tool: send --close, then recv drains and ends with 0.
  r = sleet_cli({"send", name, "--close"}, "one\ntwo\nthree\n");
  CHECK(r.status == 0);
  r = sleet_cli({"recv", name});
  CHECK(r.status == 0);
  CHECK(r.out == "one\ntwo\nthree\n");
  CHECK(r.err.empty());

  // A closed channel refuses more.
  r = sleet_cli({"send", name}, "late\n");
  CHECK(r.status == 1);
  CHECK(r.err == "sleet: channel '" + name + "': closed\n");
}

TEST_CASE("cli: recv -n stops after N, --timeout gives up with exit code 3", "[cli][ipc]") {
  const auto name = st::unique_name("cli.recv");
  st::Cleanup cleanup(name);
  auto ch = Channel<std::string>::create(name, {.capacity = 16});
  for (const char* m : {"x", "y", "z"}) ch.send(m);

  Run r = sleet_cli({"recv", name, "-n", "2"});
  CHECK(r.status == 0);
  CHECK(r.out == "x\ny\n");
  CHECK(r.err.empty());

  const auto start = std::chrono::steady_clock::now();
  r = sleet_cli({"recv", name, "--timeout", "200ms"});
  CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  CHECK(r.status == 3);
  CHECK(r.out == "z\n");
  CHECK(r.err == "sleet: channel '" + name + "': timed out after 200ms (1 message)\n");

  r = sleet_cli({"recv", name, "-n", "5", "--timeout", "50ms"});
  CHECK(r.status == 3);
  CHECK(r.out.empty());
  CHECK(r.err == "sleet: channel '" + name + "': timed out after 50ms (0 messages)\n");

  // A message sent by another process while recv waits.
  st::Child sender([&] {
    std::this_thread::sleep_for(50ms);
    Channel<std::string>::open(name).send("late");
    return 0;
  });
  r = sleet_cli({"recv", name, "-n", "1", "--timeout", "10s"});
  CHECK(r.status == 0);
  CHECK(r.out == "late\n");
  CHECK(sender.wait() == 0);
}

TEST_CASE("cli: bench runs each benchmark across processes and prints a table", "[cli][ipc]") {
  Run r = sleet_cli({"bench", "spsc", "--seconds", "0.05"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err == "sleet bench: spsc, 64-byte messages, 50ms ...\n");
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(words_of(lines[0]) ==
        std::vector<std::string>{"BENCHMARK", "SIZE", "OPS", "SECONDS", "OPS/S", "MB/S", "NS/OP"});
  auto row = words_of(lines[1]);
  REQUIRE(row.size() == 7);
  CHECK(row[0] == "spsc");
  CHECK(row[1] == "64");
  CHECK(std::stoull(row[2]) > 0);

  r = sleet_cli({"bench", "all", "--seconds", "0.05", "--size", "16"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  lines = lines_of(r.out);
  REQUIRE(lines.size() == 6);
  const std::vector<std::string> benches{"spsc", "mpmc", "pipe", "kv", "kv"};
  for (std::size_t i = 0; i < benches.size(); ++i) {
    row = words_of(lines[i + 1]);
    CHECK(row.at(0) == benches[i]);
    CHECK(std::stoull(row.at(row.size() - 5)) > 0);  // OPS
    CHECK(row.at(row.size() - 6) == "16");           // SIZE
  }
  CHECK(contains(lines[3], "pipe round trip"));
  CHECK(contains(lines[4], "kv set"));
  CHECK(contains(lines[5], "kv get"));
  // Its segments are gone.
  for (const auto& o : sleet::list_objects()) {
    CHECK_FALSE(o.name.starts_with("bench." + std::to_string(r.pid) + "."));
  }
}

TEST_CASE("cli: rm NAME refuses an object in use unless --force", "[cli][rm]") {
  const auto name = st::unique_name("cli.rm.live");
  const auto other = st::unique_name("cli.rm.idle");
  st::Cleanup c1(name), c2(other);
  std::optional<Channel<int>> ch(Channel<int>::create(name));
  (void)Channel<int>::create(other);  // nobody holds it

  Run r = sleet_cli({"rm", name, other});
  CHECK(r.status == 1);
  CHECK(r.out == "removed " + other + "\n");
  CHECK(r.err == "sleet: sleet segment '" + name + "': in use (pid " + kPid +
                     "); not removed (--force removes it anyway)\n");
  CHECK(st::shm_exists(name));
  CHECK_FALSE(st::shm_exists(other));

  // --stale leaves it alone too, without a word.
  r = sleet_cli({"rm", "--stale", "--prefix", name});
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(st::shm_exists(name));

  r = sleet_cli({"rm", "--force", name});
  CHECK(r.status == 0);
  CHECK(r.out == "removed " + name + "\n");
  CHECK(r.err.empty());
  CHECK_FALSE(st::shm_exists(name));
  ch->send(1);  // the mapping still works; the name is gone
  CHECK(ch->try_receive() == 1);

  r = sleet_cli({"rm", "--force", "--stale"});
  CHECK(r.status == 2);
  CHECK(r.err == "sleet: rm: --force goes with names\n");
}

TEST_CASE("cli: a sparse garbage file of 4 GiB costs no page to ls, stat, recv or kv get",
          "[cli][bounded]") {
  const auto name = st::unique_name("cli.sparse");
  st::Cleanup cleanup(name);
  const std::string path = sleet::detail::shm_path(name);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, off_t{4} << 30) == 0);
  const std::string text = "garbage under the sleet prefix";
  REQUIRE(::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto blocks = [&] {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_blocks;
  };
  const auto before = blocks();
  const std::vector<std::vector<std::string>> commands = {
      {"ls"}, {"stat", name}, {"recv", name}, {"kv", "get", name, "k"}, {"kv", "dump", name}};
  for (const auto& args : commands) {
    CAPTURE(args[0]);
    const Run r = sleet_cli(args);
    if (args[0] == "ls") {
      CHECK(r.status == 0);
      CHECK_FALSE(contains(r.out, name));  // not a sleet segment: not listed
    } else {
      CHECK(r.status == 1);
      CHECK(r.err == "sleet: sleet segment '" + name + "': not a sleet segment (bad magic)\n");
    }
    CHECK(blocks() == before);
  }
}

TEST_CASE("cli: kv dump prints nothing of a value it cannot decode", "[cli][kv]") {
  const auto store = st::unique_name("cli.kv.bad");
  st::Cleanup cleanup(store);
  auto kv = sleet::KvStore::create(store, {.capacity = 8});
  kv.set("a", std::string("fine"));
  kv.set("b", std::string("MARKER-of-a-value-to-damage"));
  kv.set("c", std::string("also fine"));
  {
    // Its length prefix (8 bytes before the text) no longer matches the record.
    auto seg = sleet::detail::Segment::open(store, sleet::detail::SegmentKind::kv,
                                            sleet::detail::fnv1a("sleet::KvStore"), "kv");
    const std::string_view marker = "MARKER-of-a-value-to-damage";
    auto* at = static_cast<std::byte*>(::memmem(seg.object(), seg.object_size(), marker.data(), marker.size()));
    REQUIRE(at != nullptr);
    const std::uint64_t bad = 999;
    std::memcpy(at - 8, &bad, sizeof bad);
  }
  Run r = sleet_cli({"kv", "dump", store});
  CHECK(r.status == 1);
  CHECK(r.out == "a\tfine\nc\talso fine\n");
  CHECK(contains(r.err, "sleet: kv store '" + store + "': key 'b': "));
  CHECK(contains(r.err, "length 999 does not match the record\n"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  r = sleet_cli({"kv", "dump", store, "--json"});
  CHECK(r.status == 1);
  CHECK(contains(r.out, "{\"key\":\"b\",\"type\":\"" + kString + "\",\"value\":null,"));
  CHECK_FALSE(contains(r.out, "MARKER"));
  CHECK(contains(r.err, "key 'b'"));
  r = sleet_cli({"kv", "get", store, "b"});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "sleet: kv store '" + store + "': key 'b': "));
}

TEST_CASE("cli: every bad input gets one exact error line and its exit code", "[cli]") {
  const auto ch = st::unique_name("cli.bad.ch");
  const auto ints = st::unique_name("cli.bad.ints");
  const auto kv = st::unique_name("cli.bad.kv");
  const auto missing = st::unique_name("cli.bad.missing");
  st::Cleanup c1(ch), c2(ints), c3(kv), c4(missing);
  auto channel = Channel<std::string>::create(ch, {.max_message_size = 16});
  auto int_channel = Channel<int>::create(ints);
  auto store = sleet::KvStore::create(kv, {.capacity = 8});

  struct Case {
    std::vector<std::string> args;
    std::string err;
    int status;
    std::string input = "";
  };
  const std::vector<Case> cases{
      {{}, "sleet: a command is required (see 'sleet --help')", 2},
      {{"bogus"}, "sleet: unknown command 'bogus' (see 'sleet --help')", 2},
      {{"kv"}, "sleet: kv: a command is required (see 'sleet kv --help')", 2},
      {{"kv", "frob", kv}, "sleet: kv: unknown command 'frob' (see 'sleet kv --help')", 2},
      {{"stat"}, "sleet: stat: NAME is required (see 'sleet stat --help')", 2},
      {{"stat", ch, "extra"},
       "sleet: stat: The following argument was not expected: extra (see 'sleet stat --help')", 2},
      {{"ls", "--bogus"},
       "sleet: ls: The following argument was not expected: --bogus (see 'sleet ls --help')", 2},
      {{"kv", "get", kv}, "sleet: kv get: KEY is required (see 'sleet kv get --help')", 2},
      {{"kv", "set", kv, "k"}, "sleet: kv set: VALUE is required (see 'sleet kv set --help')", 2},
      {{"send"}, "sleet: send: CHANNEL is required (see 'sleet send --help')", 2},
      {{"stat", "bad name!"},
       "sleet: invalid sleet name 'bad name!': only [A-Za-z0-9._-] allowed, found ' '", 2},
      {{"rm", "a/b"}, "sleet: invalid sleet name 'a/b': only [A-Za-z0-9._-] allowed, found '/'", 2},
      {{"kv", "get", "", "k"}, "sleet: invalid sleet name '': empty", 2},
      {{"stat", missing}, "sleet: sleet segment '" + missing + "': does not exist", 1},
      {{"kv", "get", ch, "k"}, "sleet: sleet segment '" + ch + "': is a channel, not a kv", 1},
      {{"recv", kv}, "sleet: sleet segment '" + kv + "': is a kv, not a channel", 1},
      {{"send", ints},
       "sleet: sleet segment '" + ints + "': holds 'int', opened as '" + kString + "'", 1, "1\n"},
      {{"send", ch}, "sleet: channel '" + ch + "': message of 30 bytes exceeds max_message_size 16",
       1, "twenty characters long\n"},
      {{"rm"}, "sleet: rm: give NAME..., --stale or --all --yes (one of them)", 2},
      {{"rm", "--stale", ch}, "sleet: rm: give NAME..., --stale or --all --yes (one of them)", 2},
      {{"rm", "--all"}, "sleet: rm --all removes every sleet object; add --yes to confirm", 2},
      {{"rm", ch, "--prefix", "t."}, "sleet: rm: --prefix goes with --stale or --all, not with names",
       2},
      {{"recv", ch, "--timeout", "soon"},
       "sleet: recv: --timeout: invalid duration 'soon' (e.g. 500ms, 2s, 1m)", 2},
      {{"recv", ch, "-n", "0"},
       "sleet: recv: --count: must be a whole number of at least 1, not '0' (see 'sleet recv "
       "--help')",
       2},
      {{"bench", "fast"},
       "sleet: bench: WHICH: fast not in {spsc,mpmc,pipe,kv,all} (see 'sleet bench --help')", 2},
      {{"bench", "--size", "4"},
       "sleet: bench: --size 4 is out of range [8, 65536] (bytes per message)", 2},
      {{"bench", "--seconds", "0"}, "sleet: bench: --seconds 0.000 is out of range (0, 3600]", 2},
  };
  for (const Case& c : cases) {
    std::string cmd;
    for (const auto& a : c.args) cmd += " " + a;
    INFO("sleet" << cmd);
    const Run r = sleet_cli(c.args, c.input);
    CHECK(r.status == c.status);
    CHECK(r.err == c.err + "\n");
    CHECK(r.out.empty());
  }
  // Nothing was sent, removed or created by any of them.
  CHECK_FALSE(channel.try_receive().has_value());
  CHECK(st::shm_exists(ch));
  CHECK_FALSE(st::shm_exists(missing));
}

TEST_CASE("cli: --help works for every command", "[cli]") {
  const std::vector<std::vector<std::string>> commands{
      {}, {"ls"}, {"stat"}, {"rm"}, {"kv"}, {"kv", "get"}, {"kv", "set"}, {"kv", "del"},
      {"kv", "dump"}, {"send"}, {"recv"}, {"bench"}};
  for (const auto& command : commands) {
    std::string path;
    for (const auto& w : command) path += " " + w;
    INFO("sleet" << path << " --help");
    auto args = command;
    args.push_back("--help");
    const Run r = sleet_cli(args);
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(contains(r.out, "Usage: sleet" + path));
    CHECK(contains(r.out, "Exit codes: 0 success, 1 error"));
  }
}

#endif  // SLEET_CLI
