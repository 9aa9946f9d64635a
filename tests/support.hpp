// Shared helpers for sleet's tests: unique object names, cleanup guards and
// real child processes.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sleet/sleet.hpp>

// 1 in a build with AddressSanitizer or ThreadSanitizer (tests scale their
// counts and waits by it).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLEET_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLEET_TEST_SANITIZED 1
#endif
#endif
#ifndef SLEET_TEST_SANITIZED
#define SLEET_TEST_SANITIZED 0
#endif

namespace sleet::test {

// A name no other test (or concurrent test run) uses: "t.<pid>.<tag>.<n>".
inline std::string unique_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "t." + std::to_string(::getpid()) + "." + tag + "." +
         std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

// Removes a segment name when the test ends, pass or fail.
struct Cleanup {
  std::string name;
  explicit Cleanup(std::string n) : name(std::move(n)) { sleet::detail::Segment::remove(name); }
  ~Cleanup() {
    try {
      sleet::detail::Segment::remove(name);
    } catch (...) {
    }
  }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
};

// A forked child running `body`; its exit status is body's return value
// (or 99 if it threw, 98 for anything else). The child never returns into
// Catch2: it always ends in _exit().
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) std::abort();
    if (pid_ == 0) {
      int rc = 98;
      try {
        rc = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), e.what());
        rc = 99;
      } catch (...) {
        rc = 99;
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }

  // Waits for the child; returns its exit code, or 128+signal if killed.
  int wait() {
    if (pid_ <= 0) return status_;
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }
  // Waits at most `timeout`; kills the child and returns -1 if it overran.
  int wait_for(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      if (std::chrono::steady_clock::now() >= end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        status_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return status_;
  }
  void kill(int sig = SIGKILL) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// The sleet::Error that f() throws, if any.
template <class F>
std::optional<sleet::Error> thrown_error(F&& f) {
  try {
    f();
  } catch (const sleet::Error& e) {
    return e;
  }
  return std::nullopt;
}

inline bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

// Whether /dev/shm/sleet.<name> exists (of any kind, ours or not).
inline bool shm_exists(const std::string& name) {
  return ::access(sleet::detail::shm_path(name).c_str(), F_OK) == 0;
}

// The bytes of /dev/shm/sleet.<name>, and writing them back (same size).
inline std::vector<unsigned char> shm_bytes(const std::string& name) {
  const int fd = ::open(sleet::detail::shm_path(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("shm_bytes: cannot open " + name);
  struct stat st {};
  std::vector<unsigned char> bytes;
  if (::fstat(fd, &st) == 0) bytes.resize(static_cast<std::size_t>(st.st_size));
  const ssize_t n = ::pread(fd, bytes.data(), bytes.size(), 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(bytes.size())) throw std::runtime_error("shm_bytes: short read of " + name);
  return bytes;
}
inline void set_shm_bytes(const std::string& name, const std::vector<unsigned char>& bytes) {
  const int fd = ::open(sleet::detail::shm_path(name).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("set_shm_bytes: cannot open " + name);
  const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(bytes.size())) throw std::runtime_error("set_shm_bytes: short write of " + name);
}

// Puts a file that is not a sleet segment (`bytes` of 'G') at
// /dev/shm/sleet.<name>; false if it could not.
inline bool write_foreign_object(const std::string& name, std::size_t bytes = 4096) {
  const int fd = ::shm_open(sleet::detail::shm_name(name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return false;
  const std::string garbage(bytes, 'G');
  const bool ok = ::write(fd, garbage.data(), garbage.size()) == static_cast<ssize_t>(bytes);
  ::close(fd);
  return ok;
}

// A type's name as errors and listings spell it.
template <class T>
std::string tname() {
  return sleet::detail::readable_type_name(sleet::detail::type_name<T>());
}

// expr must throw sleet::Error with exactly `want`, and what() must contain
// `needle` (Catch2 assertions; use inside a test case).
#define CHECK_SLEET_ERROR(expr, want, needle)                                              \
  do {                                                                                     \
    INFO("expression: " #expr);                                                            \
    const auto err_ = ::sleet::test::thrown_error([&] { (void)(expr); });                  \
    REQUIRE(err_.has_value());                                                             \
    INFO("what(): " << err_->what());                                                      \
    CHECK(sleet::to_string(err_->value()) == sleet::to_string(want));                      \
    CHECK(err_->code() == (want));                                                         \
    CHECK_THAT(std::string(err_->what()), Catch::Matchers::Contains(std::string(needle))); \
  } while (0)

// A checksum of a message's sequence number and producer id, so a receiver
// can check every message it gets.
inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

inline const char* topo_name(Topology t) { return t == Topology::spsc ? "spsc" : "mpmc"; }

// A message that proves itself: its producer, its sequence number and a
// checksum of both (multi-process tests check every one).
struct SeqMsg {
  std::uint32_t producer;
  std::uint32_t reserved;
  std::uint64_t seq;
  std::uint64_t check;
};
static_assert(sizeof(SeqMsg) == 24);
inline std::uint64_t check_of(std::uint32_t producer, std::uint64_t seq) {
  return mix((std::uint64_t{producer} << 40) ^ seq ^ 0x5EE7C0DEull);
}
inline SeqMsg make_msg(std::uint32_t producer, std::uint64_t seq) {
  return SeqMsg{producer, 0, seq, check_of(producer, seq)};
}
inline bool intact(const SeqMsg& m) { return m.check == check_of(m.producer, m.seq); }

}  // namespace sleet::test
