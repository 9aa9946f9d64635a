// What the bridge tests share: a nats-server on a free loopback port
// (started and always stopped by the test), and "hosts": forked children
// that each mount a private tmpfs on /dev/shm in their own mount namespace,
// so two hosts share no sleet object and can only talk through NATS.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sleet/bridge.hpp>

#include "ipc/ipc_support.hpp"
#include "support.hpp"

namespace sleet::test {

inline const char* nats_server_path() {
  for (const char* p : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return nullptr;
}

// A free TCP port on 127.0.0.1 (bound and released: another process could
// take it before the server does; the server then fails to start, loudly).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::abort();
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool port_accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// nats-server on 127.0.0.1:<free port>; stopped (SIGTERM, then SIGKILL)
// by the destructor, so also when a REQUIRE fails.
class NatsServer {
 public:
  // jetstream: -js with its store in a fresh temporary directory (removed
  // by the destructor).
  explicit NatsServer(bool jetstream = false) : port_(free_port()) {
    if (jetstream) {
      std::string dir = (std::filesystem::temp_directory_path() / "sleet-nats-XXXXXX").string();
      if (::mkdtemp(dir.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      store_ = dir;
    }
    start();
  }
  ~NatsServer() {
    stop();
    if (!store_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(store_, ec);
    }
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  void start() {
    const char* exe = nats_server_path();
    if (exe == nullptr) throw std::runtime_error("nats-server not found (Debian: nats-server)");
    const std::string port = std::to_string(port_);
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) std::abort();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (store_.empty()) {
        ::execl(exe, exe, "-a", "127.0.0.1", "-p", port.c_str(), static_cast<char*>(nullptr));
      } else {
        ::execl(exe, exe, "-a", "127.0.0.1", "-p", port.c_str(), "-js", "-sd", store_.c_str(),
                static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    if (!eventually([&] { return port_accepts(port_); }, patience(10s))) {
      stop();
      throw std::runtime_error("nats-server did not start on port " + port);
    }
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto end = Clock::now() + 5s;
    while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      if (Clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
  }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
  std::string store_;  // JetStream's directory ("" without JetStream)
};

// Enters a new mount namespace with a private, empty /dev/shm. Returns ""
// or what failed.
inline std::string isolate_shm() {
  if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("mount --make-rprivate /: ") + std::strerror(errno);
  }
  if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777") != 0) {
    return std::string("mount tmpfs /dev/shm: ") + std::strerror(errno);
  }
  return "";
}

// Whether this machine lets us make hosts (root, or a user namespace
// setup); the reason if not.
inline std::string hosts_unavailable() {
  static const std::string why = [] {
    SharedMemory<char> msg(200);
    Child probe([&] {
      const std::string e = isolate_shm();
      std::snprintf(msg.get(), 200, "%s", e.c_str());
      return e.empty() ? 0 : 1;
    });
    return probe.wait() == 0 ? std::string() : std::string(msg.get());
  }();
  return why;
}

// The board the parent and its hosts coordinate on (an anonymous shared
// mapping: test plumbing only, not a path for messages).
struct Board {
  std::atomic<int> ready{0};     // hosts that are set up
  std::atomic<int> go{0};        // the parent's go
  std::atomic<int> stop{0};      // the parent's stop
  std::atomic<std::uint64_t> published[4]{};  // per host
  std::atomic<std::uint64_t> received[4]{};   // per host
  Report report[4];
};

// A host: a child in its own /dev/shm running body(board).
inline Child host(Board& b, std::function<int(Board&)> body) {
  return Child([&b, body = std::move(body)] {
    const std::string e = isolate_shm();
    if (!e.empty()) {
      std::fprintf(stderr, "host: %s\n", e.c_str());
      return 97;
    }
    return body(b);
  });
}

// Collects the bridge's log lines (its callbacks run on libnats' threads).
struct LogLines {
  std::mutex m;
  std::vector<std::string> lines;
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view l) {
      std::lock_guard lock(m);
      lines.emplace_back(l);
      std::fprintf(stderr, "  [bridge %d] %.*s\n", static_cast<int>(::getpid()), static_cast<int>(l.size()),
                   l.data());
    };
  }
  bool has(std::string_view needle) {
    std::lock_guard lock(m);
    for (const auto& l : lines) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
};

// A typed message of the tests: sequence number and checksum.
struct Tick {
  std::uint64_t seq;
  std::uint64_t check;
};
inline Tick tick(std::uint64_t seq) { return {seq, mix(seq)}; }
inline std::string text(std::uint64_t seq) {
  return "message " + std::to_string(seq) + " " + std::to_string(mix(seq)) + std::string(seq % 50, 'x');
}

}  // namespace sleet::test

#include <sys/mman.h>

namespace sleet::test {

// `sleet args...` as a child process (stdout and stderr in memory files),
// usable from a host (no Catch2 assertions inside).
class CliProcess {
 public:
  explicit CliProcess(const std::vector<std::string>& args) {
#ifdef SLEET_CLI
    std::vector<std::string> full{SLEET_CLI};
#else
    std::vector<std::string> full{"sleet"};
#endif
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    out_ = ::memfd_create("bridge-cli-out", MFD_CLOEXEC);
    err_ = ::memfd_create("bridge-cli-err", MFD_CLOEXEC);
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) std::abort();
    if (pid_ == 0) {
      ::dup2(out_, 1);
      ::dup2(err_, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~CliProcess() {
    if (pid_ > 0) stop(SIGKILL);
    ::close(out_);
    ::close(err_);
  }
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  // Sends `sig` (0: none) and waits at most `limit`; the exit code, 128 +
  // signal, or -1 if it had to be killed.
  int stop(int sig, std::chrono::milliseconds limit = 20s) {
    if (pid_ <= 0) return status_;
    if (sig != 0) ::kill(pid_, sig);
    const auto end = Clock::now() + limit;
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0) {
      if (Clock::now() >= end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return status_ = -1;
      }
      std::this_thread::sleep_for(1ms);
    }
    pid_ = -1;
    return status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  int wait(std::chrono::milliseconds limit = 20s) { return stop(0, limit); }
  std::string out() const { return read_all(out_); }
  std::string err() const { return read_all(err_); }

 private:
  static std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    for (off_t at = 0; (n = ::pread(fd, buf, sizeof buf, at)) > 0; at += n) s.append(buf, n);
    return s;
  }
  pid_t pid_ = -1;
  int status_ = -1;
  int out_ = -1;
  int err_ = -1;
};

}  // namespace sleet::test
