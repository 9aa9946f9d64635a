// bench/peers/peers_bench.cpp — sleet against the mechanisms a user would
// otherwise pick, on the same workloads, between real processes, in one run.
//
// What is measured
//   throughput  one sender process and one receiver process, messages of 8,
//               64, 1024 and 4096 bytes, as fast as the sender can push them
//               for a fixed time; the rate is the messages the receiver took
//               over first start to the receiver's last message.
//   roundtrip   ping-pong: one process sends a message, the other sends it
//               back; the mean time of one round trip over a fixed time.
//   kv_get      16-byte keys, 64-byte values, 20,000 keys loaded by the
//               parent (untimed), then random gets from a second process.
//   kv_set      random updates of those keys from a second process.
//
// Every message carries a sequence number in its first and last 8 bytes;
// every receiver checks both against the number it expects (so a lost,
// duplicated, reordered or truncated message fails the case instead of
// making a transport look fast). A sender also reports how many it sent and
// the receiver must have taken exactly as many. Every value a kv get returns
// is checked against its key, and after a set run a sample of keys is read
// back and checked against the last value written.
//
// The mechanisms (each optional at build time; a missing one is a note)
//   sleet          Channel<Msg<N>> spsc (capacity 1024) with blocking
//                  send()/receive() at the default spin budget; round trips
//                  over a Pipe<Msg<N>>. sleet-nospin: the same Pipe with spin
//                  budget 0 (both sides sleep on a futex at once: what a
//                  kernel-based peer does). KvStore for the store.
//   pipe           two anonymous pipes (one each way), write()/read() loops.
//   unix-seqpacket socketpair(AF_UNIX, SOCK_SEQPACKET): message boundaries
//                  kept, one send()/recv() a message.
//   posix-mq       mq_open(), queue length fs.mqueue.msg_max (the most an
//                  unprivileged process may ask for; 10 by default).
//   boost-mq       boost::interprocess::message_queue, 1024 messages.
//   zeromq         ipc:// PUSH/PULL (throughput), PAIR (round trips); one
//                  context (one I/O thread) per process.
//   iceoryx        iceoryx 2 UntypedPublisher/UntypedSubscriber through an
//                  iox-roudi this program starts (its own config: pools of
//                  128 B, 1, 4 and 16 KiB chunks) and stops at the end. One
//                  topic each way, unique to the case; subscriber queue 256
//                  (iceoryx's maximum) with BLOCK_PRODUCER and the publisher
//                  WAIT_FOR_CONSUMER, so nothing is dropped and the counts
//                  hold. Zero-copy, as iceoryx is meant to be used: the sender
//                  stamps a loaned chunk in place and publishes it, the
//                  receiver checks the chunk it took and releases it. So its
//                  1 and 4 KiB rows copy no payload, where every other row
//                  copies it (sleet twice: into the ring and out of it). The
//                  receiver busy-polls take(). iceoryx-wait: the same, but
//                  the receiver (both sides in round trips) sleeps in a
//                  WaitSet on the subscriber's HAS_DATA state. Each side
//                  initialises its runtime after the fork and deregisters
//                  before it exits; setting up a case (RouDi connects the
//                  ports) takes some 100 ms, outside the timed part. Short
//                  runs understate it: a fresh process's first pass over
//                  RouDi's memory is slow, so its rate rises with --seconds.
//   lmdb           a fresh environment on tmpfs (/dev/shm), MDB_NOSYNC |
//                  MDB_NOMETASYNC | MDB_WRITEMAP; a get is mdb_txn_renew +
//                  mdb_get + mdb_txn_reset (it sees the latest commit, as a
//                  sleet get does); a set is one write transaction.
//   redis          a redis-server this program starts on a free 127.0.0.1
//                  port (no persistence) and stops at the end, even on error;
//                  hiredis, one blocking GET or SET per operation.
//
// Noise
//   Every case (workload, payload) runs every mechanism back to back, and
//   all cases run in rounds (the order of mechanisms reversed every other
//   round). A ratio is peer / sleet within one round; the table shows the
//   median over rounds (and the range in the results file). The two sides
//   are pinned to different CPUs (--no-pin to let the scheduler place them).
//
// Cleanup
//   Every name (sleet segment, message queue, socket file, LMDB directory,
//   iceoryx runtime) contains this process's pid, is removed by its owner's
//   destructor and, on SIGINT/SIGTERM/SIGHUP, by a handler that also kills
//   redis-server and iox-roudi (which die with this process anyway:
//   PR_SET_PDEATHSIG) and removes the shared memory, socket and lock files
//   RouDi made (/dev/shm/iceoryx_mgmt, /dev/shm/<group>, /tmp/roudi,
//   /tmp/roudi.lock, /tmp/iox-unique-roudi.lock). RouDi uses fixed names,
//   one RouDi a machine: if another one is running, ours will not start,
//   the iceoryx rows are skipped with a note and nothing of the other one's
//   is touched.
//
// Flags
//   --quick          1 round of 0.04 s per case (a few seconds in all)
//   --rounds=N       rounds (default 5)
//   --seconds=S      time budget of one case (default 0.25)
//   --out=FILE       write the results as CSV (comment lines start with #)
//   --only=a,b       only these mechanisms (ratios need sleet among them)
//   --workload=a,b   only these workloads (throughput, roundtrip, kv)
//   --payload=a,b    only these payload sizes
//   --no-pin         do not pin the two processes to CPUs
#include <arpa/inet.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>
#include <cstdarg>

#include "../harness.hpp"
#include "sleet/sleet.hpp"

#if SLEET_PEERS_HAVE_BOOST
#include <boost/interprocess/ipc/message_queue.hpp>
#endif
#if SLEET_PEERS_HAVE_ZMQ
#include <zmq.h>
#endif
#if SLEET_PEERS_HAVE_ICEORYX
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#endif
#if SLEET_PEERS_HAVE_LMDB
#include <lmdb.h>
#endif
#if SLEET_PEERS_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

namespace {

using namespace sleet_bench;

// ---------------------------------------------------------------- settings

constexpr std::size_t kPayloads[] = {8, 64, 1024, 4096};
constexpr std::uint64_t kStop = ~std::uint64_t{0};  // the sequence number that ends a run
constexpr std::size_t kChannelCapacity = 1024;      // sleet and Boost queues, in messages
constexpr std::uint32_t kKeys = 20'000;
constexpr std::size_t kKeySize = 16;
constexpr std::size_t kValueSize = 64;

struct Settings {
  bool quick = false;
  bool pin = true;
  int rounds = 5;
  double seconds = 0.25;
  std::string out;
  std::vector<std::string> only, workloads;
  std::vector<std::size_t> payloads;
};
Settings g_settings;
std::uint64_t g_messages = 0;  // every message and operation this run moved

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

template <class T>
bool contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// ---------------------------------------------------------------- cleanup

Cleanup g_cleanup;

// A unique name ("sleet-peers.<pid>.<n>") and what it stands for on the
// system, removed when the scope ends, only by the process that made it.
class ScopedName {
 public:
  ScopedName(Cleanup::Kind kind, const std::string& prefix, const std::string& suffix = "")
      : name_("sleet-peers." + std::to_string(::getpid()) + "." + std::to_string(++counter_)),
        path_(prefix + name_ + suffix),
        kind_(kind),
        owner_(::getpid()),
        slot_(g_cleanup.add(kind, path_)) {
    remove();  // a leftover of a crashed run with a recycled pid
  }
  ~ScopedName() {
    if (::getpid() != owner_) return;
    remove();
    g_cleanup.drop(slot_);
  }
  ScopedName(const ScopedName&) = delete;
  ScopedName& operator=(const ScopedName&) = delete;
  const std::string& name() const noexcept { return name_; }
  const std::string& path() const noexcept { return path_; }

 private:
  void remove() const noexcept { Cleanup::remove(kind_, path_.c_str()); }
  static inline int counter_ = 0;
  std::string name_, path_;
  Cleanup::Kind kind_;
  pid_t owner_;
  int slot_;
};

// A path that another process makes (a server this one started, a library
// in a forked side): removed when the scope ends, and by the signal handler
// until then. Unlike ScopedName it is not removed first: it may be in use.
class AdoptedPath {
 public:
  AdoptedPath(Cleanup::Kind kind, std::string path)
      : path_(std::move(path)), kind_(kind), owner_(::getpid()), slot_(g_cleanup.add(kind, path_)) {}
  ~AdoptedPath() {
    if (::getpid() != owner_) return;
    Cleanup::remove(kind_, path_.c_str());
    g_cleanup.drop(slot_);
  }
  AdoptedPath(const AdoptedPath&) = delete;
  AdoptedPath& operator=(const AdoptedPath&) = delete;

 private:
  std::string path_;
  Cleanup::Kind kind_;
  pid_t owner_;
  int slot_;
};

// ------------------------------------------------------------- messages

// Sequence number in the first and the last 8 bytes of a payload.
void stamp(std::byte* p, std::size_t n, std::uint64_t seq) noexcept {
  std::memcpy(p, &seq, 8);
  if (n >= 16) std::memcpy(p + n - 8, &seq, 8);
}
std::uint64_t read_stamp(const std::byte* p, std::size_t n) {
  std::uint64_t a = 0, b = 0;
  std::memcpy(&a, p, 8);
  if (n < 16) return a;
  std::memcpy(&b, p + n - 8, 8);
  if (a != b) throw std::runtime_error("torn or truncated message (sequence numbers differ)");
  return a;
}
void expect_seq(std::uint64_t got, std::uint64_t want) {
  if (got != want) {
    throw std::runtime_error("message out of sequence: got " + std::to_string(got) + ", expected " +
                             std::to_string(want));
  }
}

template <std::size_t N>
struct Msg {
  alignas(8) std::byte b[N];
};
static_assert(sizeof(Msg<8>) == 8 && sizeof(Msg<4096>) == 4096);

// The payload buffers of an endpoint of any mechanism but sleet.
class Buffers {
 public:
  explicit Buffers(std::size_t n) : n_(n), tx_(new std::byte[n]()), rx_(new std::byte[n]()) {}
  std::byte* tx() noexcept { return tx_.get(); }
  std::size_t size() const noexcept { return n_; }

 protected:
  std::size_t n_;
  std::unique_ptr<std::byte[]> tx_, rx_;
};

enum class Shape { oneway, pingpong };

// ------------------------------------------------------------- mechanisms
//
// A Link is made in the parent before the fork (it creates names, queues,
// file descriptors) and removes them when the parent destroys it. Each
// forked side calls end(side) (side 0: the sender or the pinger, side 1:
// the receiver or the ponger) and drives the End it gets:
//   std::byte* tx()              the payload to fill before send()
//   void send()                  sends it (blocking)
//   const std::byte* recv()      blocks for the next message; its payload

// --- sleet

// Conn: a Channel<Msg<N>> or a Pipe<Msg<N>> end.
template <std::size_t N, class Conn>
class SleetEnd {
 public:
  explicit SleetEnd(Conn c) : c_(std::move(c)) {}
  std::byte* tx() noexcept { return tx_.b; }
  static constexpr std::size_t size() noexcept { return N; }
  void send() { c_.send(tx_); }
  const std::byte* recv() {
    rx_ = c_.receive();
    return rx_.b;
  }

 private:
  Conn c_;
  Msg<N> tx_{}, rx_{};
};

// Throughput over a Channel, round trips over a Pipe; Spin false: spin
// budget 0 on both ends of the Pipe.
template <std::size_t N, bool Spin = true>
class SleetLink {
 public:
  SleetLink(std::size_t, Shape shape) : shape_(shape), name_(Cleanup::kUnlink, "/dev/shm/sleet.") {
    if (shape == Shape::oneway) {
      (void)sleet::Channel<Msg<N>>::create(
          name_.name(), {.topology = sleet::Topology::spsc, .capacity = kChannelCapacity});
    } else {
      (void)sleet::Pipe<Msg<N>>::create(name_.name(), {.capacity = kChannelCapacity});
    }
  }
  using ChannelEnd = SleetEnd<N, sleet::Channel<Msg<N>>>;
  using PipeEnd = SleetEnd<N, sleet::Pipe<Msg<N>>>;
  std::variant<ChannelEnd, PipeEnd> end(int side) const {
    if (shape_ == Shape::oneway) return ChannelEnd(sleet::Channel<Msg<N>>::open(name_.name()));
    auto p = sleet::Pipe<Msg<N>>::open(name_.name(), side == 0 ? sleet::End::a : sleet::End::b);
    if (!Spin) p.set_spin(std::chrono::nanoseconds(0));
    return PipeEnd(std::move(p));
  }

 private:
  Shape shape_;
  ScopedName name_;
};

// --- anonymous pipes

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

class PipeEnd : Buffers {
 public:
  PipeEnd(std::size_t n, int rfd, int wfd) : Buffers(n), rfd_(rfd), wfd_(wfd) {}
  using Buffers::size;
  using Buffers::tx;
  void send() {
    for (std::size_t done = 0; done < n_;) {
      const ssize_t k = ::write(wfd_, tx_.get() + done, n_ - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) throw std::runtime_error(sys_error("pipe write"));
      done += static_cast<std::size_t>(k);
    }
  }
  const std::byte* recv() {
    for (std::size_t done = 0; done < n_;) {
      const ssize_t k = ::read(rfd_, rx_.get() + done, n_ - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) throw std::runtime_error(k == 0 ? "pipe closed" : sys_error("pipe read"));
      done += static_cast<std::size_t>(k);
    }
    return rx_.get();
  }

 private:
  int rfd_, wfd_;
};

class PipeLink {
 public:
  PipeLink(std::size_t n, Shape) : n_(n) {
    for (auto& p : pipes_) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(sys_error("pipe2"));
      p = {Fd(fds[0]), Fd(fds[1])};
    }
  }
  // pipes_[0] carries side 0 -> side 1, pipes_[1] the way back.
  PipeEnd end(int side) const {
    return side == 0 ? PipeEnd(n_, pipes_[1].first.get(), pipes_[0].second.get())
                     : PipeEnd(n_, pipes_[0].first.get(), pipes_[1].second.get());
  }

 private:
  std::size_t n_;
  std::array<std::pair<Fd, Fd>, 2> pipes_;  // (read end, write end)
};

// --- Unix domain sockets, SOCK_SEQPACKET

class SocketEnd : Buffers {
 public:
  SocketEnd(std::size_t n, int fd) : Buffers(n), fd_(fd) {}
  using Buffers::size;
  using Buffers::tx;
  void send() {
    ssize_t k;
    do k = ::send(fd_, tx_.get(), n_, 0);
    while (k < 0 && errno == EINTR);
    if (k != static_cast<ssize_t>(n_)) throw std::runtime_error(sys_error("unix socket send"));
  }
  const std::byte* recv() {
    ssize_t k;
    do k = ::recv(fd_, rx_.get(), n_, 0);
    while (k < 0 && errno == EINTR);
    if (k != static_cast<ssize_t>(n_)) {
      throw std::runtime_error(k == 0 ? "unix socket closed" : sys_error("unix socket recv"));
    }
    return rx_.get();
  }

 private:
  int fd_;
};

class SocketLink {
 public:
  SocketLink(std::size_t n, Shape) : n_(n) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      throw std::runtime_error(sys_error("socketpair"));
    }
    fds_ = {Fd(sv[0]), Fd(sv[1])};
  }
  SocketEnd end(int side) const { return SocketEnd(n_, fds_[static_cast<std::size_t>(side)].get()); }

 private:
  std::size_t n_;
  std::array<Fd, 2> fds_;
};

// --- POSIX message queues

long mq_limit() {
  std::ifstream in("/proc/sys/fs/mqueue/msg_max");
  long v = 10;  // the kernel's default
  in >> v;
  return std::max(1L, v);
}

class MqEnd : Buffers {
 public:
  MqEnd(std::size_t n, mqd_t rq, mqd_t wq) : Buffers(n), rq_(rq), wq_(wq) {}
  using Buffers::size;
  using Buffers::tx;
  void send() {
    int rc;
    do rc = ::mq_send(wq_, reinterpret_cast<const char*>(tx_.get()), n_, 0);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) throw std::runtime_error(sys_error("mq_send"));
  }
  const std::byte* recv() {
    ssize_t k;
    do k = ::mq_receive(rq_, reinterpret_cast<char*>(rx_.get()), n_, nullptr);
    while (k < 0 && errno == EINTR);
    if (k != static_cast<ssize_t>(n_)) throw std::runtime_error(sys_error("mq_receive"));
    return rx_.get();
  }

 private:
  mqd_t rq_, wq_;
};

class MqLink {
 public:
  MqLink(std::size_t n, Shape shape) : n_(n) {
    const int queues = shape == Shape::oneway ? 1 : 2;
    for (int i = 0; i < queues; ++i) {
      names_[static_cast<std::size_t>(i)] = std::make_unique<ScopedName>(Cleanup::kMqUnlink, "/");
      mq_attr attr{};
      attr.mq_maxmsg = mq_limit();
      attr.mq_msgsize = static_cast<long>(n);
      const mqd_t q = ::mq_open(names_[static_cast<std::size_t>(i)]->path().c_str(),
                                O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
      if (q == static_cast<mqd_t>(-1)) throw std::runtime_error(sys_error("mq_open"));
      q_[static_cast<std::size_t>(i)] = q;  // inherited by the forked sides
    }
    if (queues == 1) q_[1] = q_[0];
  }
  ~MqLink() {
    ::mq_close(q_[0]);
    if (q_[1] != q_[0]) ::mq_close(q_[1]);
  }
  MqLink(const MqLink&) = delete;
  MqLink& operator=(const MqLink&) = delete;
  // q_[0] carries side 0 -> side 1, q_[1] the way back.
  MqEnd end(int side) const { return side == 0 ? MqEnd(n_, q_[1], q_[0]) : MqEnd(n_, q_[0], q_[1]); }

 private:
  std::size_t n_;
  std::array<std::unique_ptr<ScopedName>, 2> names_;
  std::array<mqd_t, 2> q_{static_cast<mqd_t>(-1), static_cast<mqd_t>(-1)};
};

// --- Boost.Interprocess message_queue

#if SLEET_PEERS_HAVE_BOOST
namespace bip = boost::interprocess;

class BoostMqEnd : Buffers {
 public:
  BoostMqEnd(std::size_t n, const std::string& rname, const std::string& wname)
      : Buffers(n),
        rq_(std::make_unique<bip::message_queue>(bip::open_only, rname.c_str())),
        wq_(wname == rname ? nullptr : std::make_unique<bip::message_queue>(bip::open_only, wname.c_str())) {}
  using Buffers::size;
  using Buffers::tx;
  void send() { (wq_ ? *wq_ : *rq_).send(tx_.get(), n_, 0); }
  const std::byte* recv() {
    bip::message_queue::size_type got = 0;
    unsigned prio = 0;
    rq_->receive(rx_.get(), n_, got, prio);
    if (got != n_) throw std::runtime_error("boost message_queue: short message");
    return rx_.get();
  }

 private:
  std::unique_ptr<bip::message_queue> rq_, wq_;  // wq_ null: one queue for both
};

class BoostMqLink {
 public:
  BoostMqLink(std::size_t n, Shape shape) : n_(n) {
    const int queues = shape == Shape::oneway ? 1 : 2;
    for (int i = 0; i < queues; ++i) {
      auto& name = names_[static_cast<std::size_t>(i)];
      name = std::make_unique<ScopedName>(Cleanup::kUnlink, "/dev/shm/");
      bip::message_queue(bip::create_only, name->name().c_str(), kChannelCapacity, n);
    }
  }
  // names_[0] carries side 0 -> side 1, names_[1] the way back.
  BoostMqEnd end(int side) const {
    const std::string& a = names_[0]->name();
    const std::string& b = names_[1] ? names_[1]->name() : a;
    return side == 0 ? BoostMqEnd(n_, b, a) : BoostMqEnd(n_, a, b);
  }

 private:
  std::size_t n_;
  std::array<std::unique_ptr<ScopedName>, 2> names_;
};
#endif

// --- ZeroMQ over ipc://

#if SLEET_PEERS_HAVE_ZMQ
class ZmqEnd : Buffers {
 public:
  ZmqEnd(std::size_t n, const std::string& endpoint, int type, bool bind) : Buffers(n) {
    ctx_ = ::zmq_ctx_new();
    if (ctx_ == nullptr) throw std::runtime_error(sys_error("zmq_ctx_new"));
    sock_ = ::zmq_socket(ctx_, type);
    if (sock_ == nullptr) fail("zmq_socket");
    const int linger_ms = 2000;  // time to deliver the last message at close
    ::zmq_setsockopt(sock_, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    if ((bind ? ::zmq_bind(sock_, endpoint.c_str()) : ::zmq_connect(sock_, endpoint.c_str())) != 0) {
      fail(bind ? "zmq_bind" : "zmq_connect");
    }
  }
  ZmqEnd(ZmqEnd&& o) noexcept
      : Buffers(std::move(o)), ctx_(std::exchange(o.ctx_, nullptr)), sock_(std::exchange(o.sock_, nullptr)) {}
  ZmqEnd& operator=(ZmqEnd&&) = delete;
  ~ZmqEnd() { close(); }
  using Buffers::size;
  using Buffers::tx;
  void send() {
    int rc;
    do rc = ::zmq_send(sock_, tx_.get(), n_, 0);
    while (rc < 0 && ::zmq_errno() == EINTR);
    if (rc != static_cast<int>(n_)) fail("zmq_send");
  }
  const std::byte* recv() {
    int rc;
    do rc = ::zmq_recv(sock_, rx_.get(), n_, 0);
    while (rc < 0 && ::zmq_errno() == EINTR);
    if (rc < 0) fail("zmq_recv");
    if (rc != static_cast<int>(n_)) throw std::runtime_error("zeromq: message of the wrong size");
    return rx_.get();
  }

 private:
  [[noreturn]] void fail(const char* what) {
    const std::string msg = std::string(what) + ": " + ::zmq_strerror(::zmq_errno());
    close();
    throw std::runtime_error(msg);
  }
  void close() noexcept {
    if (sock_ != nullptr) ::zmq_close(std::exchange(sock_, nullptr));
    if (ctx_ != nullptr) ::zmq_ctx_term(std::exchange(ctx_, nullptr));
  }
  void* ctx_ = nullptr;
  void* sock_ = nullptr;
};

class ZmqLink {
 public:
  ZmqLink(std::size_t n, Shape shape) : n_(n), shape_(shape), file_(Cleanup::kUnlink, "/tmp/", ".ipc") {}
  // Side 1 (the receiver, or the ponger) binds; side 0 connects.
  ZmqEnd end(int side) const {
    const int type = shape_ == Shape::pingpong ? ZMQ_PAIR : side == 0 ? ZMQ_PUSH : ZMQ_PULL;
    return ZmqEnd(n_, "ipc://" + file_.path(), type, side == 1);
  }

 private:
  std::size_t n_;
  Shape shape_;
  ScopedName file_;
};
#endif

// --- iceoryx publisher/subscriber

#if SLEET_PEERS_HAVE_ICEORYX
// A subscriber queue as deep as iceoryx allows (256 by default), so that a
// blocked publisher is the exception, as with sleet's 1024-slot ring.
constexpr std::uint64_t kIoxQueueCapacity = iox::MAX_SUBSCRIBER_QUEUE_CAPACITY;
// How long a side waits for RouDi to connect its publisher and subscriber
// (RouDi matches them in its discovery loop, every 100 ms or so).
constexpr std::chrono::seconds kIoxConnectTimeout{5};
constexpr std::chrono::milliseconds kIoxConnectPoll{1};

// The iceoryx runtime of one forked side, registered with RouDi under a name
// of its own. Made after the fork, never before: a runtime belongs to one
// process. The runtime is a function-local static that only exit() would
// destroy, and the runner's children end in _exit(); so the destructor
// destroys it by hand, which deregisters the side from RouDi (its ports, its
// socket file) as a normal exit would. Nothing touches it afterwards: the
// process _exit()s.
class IoxRuntime {
 public:
  explicit IoxRuntime(const std::string& name) {
    iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn, iox::log::LogLevelOutput::kHideLogLevel);
    (void)iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
  }
  ~IoxRuntime() { iox::runtime::PoshRuntime::getInstance().~PoshRuntime(); }
  IoxRuntime(const IoxRuntime&) = delete;
  IoxRuntime& operator=(const IoxRuntime&) = delete;
};

iox::capro::ServiceDescription iox_topic(const std::string& instance, const char* event) {
  using iox::capro::IdString_t;
  return {IdString_t("sleet-peers"), IdString_t(iox::cxx::TruncateToCapacity, instance.c_str()),
          IdString_t(iox::cxx::TruncateToCapacity, event)};
}

template <class Ready>
void iox_wait_until(Ready&& ready, const char* what) {
  const auto limit = std::chrono::steady_clock::now() + kIoxConnectTimeout;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > limit) {
      throw std::runtime_error(std::string("iceoryx: ") + what + " within 5 s (is RouDi running?)");
    }
    std::this_thread::sleep_for(kIoxConnectPoll);
  }
}

// One side: a publisher (none on a one-way receiver) and a subscriber (none
// on a one-way sender). Zero-copy, as iceoryx is meant to be used: tx() is a
// chunk loaned from the shared pool, written in place and published; recv()
// takes the next chunk and hands out its payload, released at the next
// recv(). Wait false: recv() polls take(); Wait true: it sleeps in a WaitSet
// attached to the subscriber's HAS_DATA state until data arrives.
template <std::size_t N, bool Wait>
class IoxEnd {
 public:
  IoxEnd(const std::string& runtime, const std::optional<iox::capro::ServiceDescription>& out,
         const std::optional<iox::capro::ServiceDescription>& in)
      : runtime_(runtime) {
    if (out) {
      iox::popo::PublisherOptions po;
      po.historyCapacity = 0;
      // Block, never drop, when the subscriber's queue is full: every
      // message must arrive for the count and sequence checks.
      po.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
      pub_.emplace(*out, po);
    }
    if (in) {
      iox::popo::SubscriberOptions so;
      so.queueCapacity = kIoxQueueCapacity;
      so.historyRequest = 0;
      so.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
      sub_.emplace(*in, so);
      if constexpr (Wait) {
        waitset_.emplace();
        waitset_->attachState(*sub_, iox::popo::SubscriberState::HAS_DATA).or_else([](auto) {
          throw std::runtime_error("iceoryx: cannot attach the subscriber to a WaitSet");
        });
      }
    }
    // A message published before RouDi has connected the two sides reaches
    // nobody: both sides wait for the connection before the first one.
    if (sub_) {
      iox_wait_until([&] { return sub_->getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
                     "the subscriber was not connected");
    }
    if (pub_) iox_wait_until([&] { return pub_->hasSubscribers(); }, "the publisher found no subscriber");
  }
  ~IoxEnd() {
    if (loaned_ != nullptr) pub_->release(loaned_);
    if (held_ != nullptr) sub_->release(held_);
  }
  IoxEnd(const IoxEnd&) = delete;
  IoxEnd& operator=(const IoxEnd&) = delete;

  static constexpr std::size_t size() noexcept { return N; }
  std::byte* tx() {
    if (loaned_ == nullptr) {
      auto chunk = pub_->loan(static_cast<std::uint32_t>(N), alignof(Msg<N>));
      if (chunk.has_error()) {
        throw std::runtime_error("iceoryx: loan failed (error " +
                                 std::to_string(static_cast<int>(chunk.get_error())) + ")");
      }
      loaned_ = chunk.value();
    }
    return static_cast<std::byte*>(loaned_);
  }
  void send() {
    (void)tx();  // a send without a tx() first publishes a fresh chunk
    pub_->publish(std::exchange(loaned_, nullptr));
  }
  const std::byte* recv() {
    if (held_ != nullptr) sub_->release(std::exchange(held_, nullptr));
    for (;;) {
      auto chunk = sub_->take();
      if (!chunk.has_error()) {
        held_ = chunk.value();
        return static_cast<const std::byte*>(held_);
      }
      if (chunk.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) {
        throw std::runtime_error("iceoryx: take failed (error " +
                                 std::to_string(static_cast<int>(chunk.get_error())) + ")");
      }
      if constexpr (Wait) {
        (void)waitset_->wait();  // returns while HAS_DATA holds, or on a spurious wake-up
      } else {
        cpu_pause();
      }
    }
  }

 private:
  // Declared first: made first, destroyed last, after the ports.
  IoxRuntime runtime_;
  std::optional<iox::popo::UntypedPublisher> pub_;
  std::optional<iox::popo::UntypedSubscriber> sub_;
  std::optional<iox::popo::WaitSet<>> waitset_;  // after sub_: detaches before sub_ goes
  void* loaned_ = nullptr;                      // tx(): loaned, not yet published
  const void* held_ = nullptr;                  // recv(): taken, not yet released
};

// The names of one case, made in the parent: two runtime names (a runtime
// makes /tmp/<name>, its socket, and /tmp/<name>.lock; both are removed at
// the end in case a side was killed before it could) and an instance name
// shared by the case's topics, so that no case meets a port another case
// left behind.
template <std::size_t N, bool Wait>
class IoxLink {
 public:
  IoxLink(std::size_t, Shape shape)
      : shape_(shape),
        side0_(Cleanup::kUnlink, "/tmp/"),
        side1_(Cleanup::kUnlink, "/tmp/"),
        lock0_(Cleanup::kUnlink, side0_.path() + ".lock"),
        lock1_(Cleanup::kUnlink, side1_.path() + ".lock") {}
  // Topic "0to1" carries side 0 -> side 1, "1to0" the way back.
  IoxEnd<N, Wait> end(int side) const {
    using Topic = std::optional<iox::capro::ServiceDescription>;
    const std::string& instance = side0_.name();
    const Topic there = iox_topic(instance, "0to1");
    const Topic back = shape_ == Shape::pingpong ? iox_topic(instance, "1to0") : Topic();
    if (side == 0) return IoxEnd<N, Wait>(side0_.name(), there, back);
    return IoxEnd<N, Wait>(side1_.name(), back, there);
  }

 private:
  Shape shape_;
  ScopedName side0_, side1_;
  AdoptedPath lock0_, lock1_;
};
template <std::size_t N>
using IoxPollLink = IoxLink<N, false>;
template <std::size_t N>
using IoxWaitLink = IoxLink<N, true>;
#endif

// ------------------------------------------------------------- workloads

struct CaseOptions {
  double seconds = 0.25;
  std::uint64_t warm_messages = 2000;  // untimed, before the barrier
  std::uint64_t warm_round_trips = 200;
  std::uint64_t max_count = 200'000'000;
};

// An End that is a std::variant of Ends (sleet's): forwards to the one held.
template <class E>
std::byte* tx_of(E& e) { return e.tx(); }
template <class... E>
std::byte* tx_of(std::variant<E...>& e) { return std::visit([](auto& x) { return x.tx(); }, e); }
template <class E>
void send_of(E& e) { e.send(); }
template <class... E>
void send_of(std::variant<E...>& e) { std::visit([](auto& x) { x.send(); }, e); }
template <class E>
std::size_t size_of(E& e) { return e.size(); }
template <class... E>
std::size_t size_of(std::variant<E...>& e) { return std::visit([](auto& x) { return x.size(); }, e); }
template <class E>
const std::byte* recv_of(E& e) { return e.recv(); }
template <class... E>
const std::byte* recv_of(std::variant<E...>& e) { return std::visit([](auto& x) { return x.recv(); }, e); }

// The result of one case: messages (or round trips, or operations) in the
// timed part, and its seconds.
struct Timed {
  std::uint64_t count = 0;
  double seconds = 0;
};

// Calls one() in batches of `batch` until the time budget is spent (the
// clock is read once a batch) or max_count calls; returns the calls.
template <class One>
std::uint64_t repeat_for(const CaseOptions& o, int batch, One&& one) {
  const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(o.seconds * 1e9);
  std::uint64_t done = 0;
  do {
    for (int k = 0; k < batch; ++k) one();
    done += static_cast<std::uint64_t>(batch);
  } while (now_ns() < deadline && done < o.max_count);
  return done;
}

template <class End>
void run_sender(Worker& w, End& e, const CaseOptions& o) {
  const std::size_t n = size_of(e);  // a constant for sleet's ends
  std::uint64_t seq = 0;
  while (seq < o.warm_messages) {
    stamp(tx_of(e), n, ++seq);
    send_of(e);
  }
  w.start();
  const std::uint64_t timed = repeat_for(o, 64, [&] {
    stamp(tx_of(e), n, ++seq);
    send_of(e);
  });
  stamp(tx_of(e), n, kStop);
  send_of(e);
  w.finish(timed);
  w.wait_finished(1);  // before the End closes: ZeroMQ may drop what is in flight at close
}

template <class End>
void run_receiver(Worker& w, End& e, const CaseOptions& o) {
  const std::size_t n = size_of(e);  // a constant for sleet's ends
  std::uint64_t expected = 0;
  while (expected < o.warm_messages) expect_seq(read_stamp(recv_of(e), n), ++expected);
  w.start();
  for (;;) {
    const std::uint64_t seq = read_stamp(recv_of(e), n);
    if (seq == kStop) break;
    expect_seq(seq, ++expected);
  }
  w.finish(expected - o.warm_messages);
}

template <class End>
void run_pinger(Worker& w, End& e, const CaseOptions& o) {
  const std::size_t n = size_of(e);  // a constant for sleet's ends
  std::uint64_t seq = 0;
  auto round_trip = [&] {
    stamp(tx_of(e), n, ++seq);
    send_of(e);
    expect_seq(read_stamp(recv_of(e), n), seq);
  };
  while (seq < o.warm_round_trips) round_trip();
  w.start();
  const std::uint64_t timed = repeat_for(o, 16, round_trip);
  w.finish(timed);
  stamp(tx_of(e), n, kStop);
  send_of(e);
  w.wait_finished(1);  // before the End closes: ZeroMQ may drop what is in flight at close
}

template <class End>
void run_ponger(Worker& w, End& e, const CaseOptions& o) {
  const std::size_t n = size_of(e);  // a constant for sleet's ends
  std::uint64_t expected = 0;
  auto echo = [&]() -> bool {
    const std::uint64_t seq = read_stamp(recv_of(e), n);
    if (seq == kStop) return false;
    expect_seq(seq, ++expected);
    stamp(tx_of(e), n, seq);
    send_of(e);
    return true;
  };
  while (expected < o.warm_round_trips) {
    if (!echo()) throw std::runtime_error("stopped during the warm-up");
  }
  w.start();
  while (echo()) {
  }
  w.finish(expected - o.warm_round_trips);
}

RunOptions run_options(double seconds) {
  RunOptions r;
  if (g_settings.pin) r.cpus = allowed_cpus();
  r.timeout_s = seconds + 30;
  return r;
}

// One messaging case between two forked processes.
template <class Link>
Timed run_messaging(Shape shape, std::size_t n, const CaseOptions& o) {
  Shared<Control> c;
  Link link(n, shape);
  run_processes(2, *c, run_options(o.seconds), [&](Worker& w) {
    auto e = link.end(w.index());
    if (shape == Shape::oneway) {
      w.index() == 0 ? run_sender(w, e, o) : run_receiver(w, e, o);
    } else {
      w.index() == 0 ? run_pinger(w, e, o) : run_ponger(w, e, o);
    }
  });
  const auto count = [&](int i) { return c->count[i].load(std::memory_order_relaxed); };
  const auto start = [&](int i) { return c->start_ns[i].load(std::memory_order_relaxed); };
  const auto end = [&](int i) { return c->end_ns[i].load(std::memory_order_relaxed); };
  if (count(0) != count(1)) {
    throw std::runtime_error("sent " + std::to_string(count(0)) + " but received " + std::to_string(count(1)));
  }
  const std::uint64_t warm = shape == Shape::oneway ? o.warm_messages : 2 * o.warm_round_trips;
  g_messages += warm + (shape == Shape::oneway ? 1 : 2) * count(0) + 1;
  if (shape == Shape::oneway) {
    return {count(1), static_cast<double>(end(1) - std::min(start(0), start(1))) * 1e-9};
  }
  return {count(0), static_cast<double>(end(0) - start(0)) * 1e-9};
}

// ------------------------------------------------------- key-value stores

struct Key16 {
  char b[kKeySize];
};
struct Val64 {
  std::uint64_t w[8];
};
static_assert(sizeof(Key16) == kKeySize && sizeof(Val64) == kValueSize);

const std::vector<Key16>& keys() {
  static const std::vector<Key16> k = [] {
    std::vector<Key16> v(kKeys);
    for (std::uint32_t i = 0; i < kKeys; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "key:%012u", i);
      std::memcpy(v[i].b, buf, kKeySize);
    }
    return v;
  }();
  return k;
}

// w[0] the key's index, w[1] a generation, the rest derived from both.
Val64 make_value(std::uint32_t index, std::uint64_t gen) noexcept {
  Val64 v;
  v.w[0] = index;
  v.w[1] = gen;
  for (int i = 2; i < 8; ++i) v.w[i] = (index + gen) * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(i);
  return v;
}
void check_value(const Val64& v, std::uint32_t index) {
  const Val64 want = make_value(index, v.w[1]);
  if (v.w[0] != index || std::memcmp(&v, &want, sizeof v) != 0) {
    throw std::runtime_error("kv: wrong value for key " + std::to_string(index));
  }
}

// xorshift64*: cheap and good enough to pick keys.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull | 1) {}
  std::uint32_t below(std::uint32_t n) noexcept {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return static_cast<std::uint32_t>((((s * 0x2545f4914f6cdd1dull) >> 32) * n) >> 32);
  }
};

// A Store is made (and loaded with every key, generation 0) in the parent;
// before_fork() lets go of what must not cross a fork; session() is called
// in the forked process and gives get(key, out) -> bool and set(key, value).

// --- sleet

class SleetKvSession {
 public:
  explicit SleetKvSession(const std::string& name) : kv_(sleet::KvStore::open(name)) {}
  bool get(const Key16& k, Val64& out) {
    auto v = kv_.get<Val64>(std::string_view(k.b, kKeySize));
    if (!v) return false;
    out = *v;
    return true;
  }
  void set(const Key16& k, const Val64& v) { kv_.set(std::string_view(k.b, kKeySize), v); }

 private:
  sleet::KvStore kv_;
};

class SleetKvStore {
 public:
  SleetKvStore() : name_(Cleanup::kUnlink, "/dev/shm/sleet.") {
    auto kv = sleet::KvStore::create(name_.name(), {.capacity = 2 * kKeys, .max_key_size = kKeySize,
                                                    .max_value_size = kValueSize});
    for (std::uint32_t i = 0; i < kKeys; ++i) kv.set(std::string_view(keys()[i].b, kKeySize), make_value(i, 0));
  }
  void before_fork() {}
  SleetKvSession session() const { return SleetKvSession(name_.name()); }

 private:
  ScopedName name_;
};

// --- LMDB

#if SLEET_PEERS_HAVE_LMDB
void lmdb_check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) throw std::runtime_error(std::string("lmdb ") + what + ": " + mdb_strerror(rc));
}

class LmdbSession {
 public:
  explicit LmdbSession(const std::string& dir) {
    lmdb_check(mdb_env_create(&env_), "env_create");
    try {
      lmdb_check(mdb_env_set_mapsize(env_, std::size_t{64} << 20), "set_mapsize");
      lmdb_check(mdb_env_open(env_, dir.c_str(), MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP, 0600), "env_open");
      MDB_txn* txn = nullptr;
      lmdb_check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
      const int rc = mdb_dbi_open(txn, nullptr, 0, &dbi_);
      if (rc != MDB_SUCCESS) mdb_txn_abort(txn);
      lmdb_check(rc, "dbi_open");
      lmdb_check(mdb_txn_commit(txn), "txn_commit");
      lmdb_check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_), "txn_begin");
      mdb_txn_reset(read_);
    } catch (...) {
      mdb_env_close(env_);
      throw;
    }
  }
  ~LmdbSession() {
    if (read_ != nullptr) mdb_txn_abort(read_);
    if (env_ != nullptr) mdb_env_close(env_);
  }
  LmdbSession(LmdbSession&& o) noexcept
      : env_(std::exchange(o.env_, nullptr)), dbi_(o.dbi_), read_(std::exchange(o.read_, nullptr)) {}
  LmdbSession& operator=(LmdbSession&&) = delete;

  // A fresh snapshot per get: it sees every committed set.
  bool get(const Key16& k, Val64& out) {
    lmdb_check(mdb_txn_renew(read_), "txn_renew");
    MDB_val key{kKeySize, const_cast<char*>(k.b)}, val{};
    const int rc = mdb_get(read_, dbi_, &key, &val);
    const bool found = rc == MDB_SUCCESS && val.mv_size == sizeof out;
    if (found) std::memcpy(&out, val.mv_data, sizeof out);
    mdb_txn_reset(read_);
    if (rc != MDB_NOTFOUND) lmdb_check(rc, "get");
    return found;
  }
  void set(const Key16& k, const Val64& v) { write(&k, &v, 1); }
  // Every key in one write transaction: the load phase.
  void load() {
    std::vector<Val64> values(kKeys);
    for (std::uint32_t i = 0; i < kKeys; ++i) values[i] = make_value(i, 0);
    write(keys().data(), values.data(), kKeys);
  }

 private:
  void write(const Key16* k, const Val64* v, std::size_t n) {
    MDB_txn* txn = nullptr;
    lmdb_check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    for (std::size_t i = 0; i < n; ++i) {
      MDB_val key{kKeySize, const_cast<char*>(k[i].b)}, val{sizeof v[i], const_cast<Val64*>(&v[i])};
      const int rc = mdb_put(txn, dbi_, &key, &val, 0);
      if (rc != MDB_SUCCESS) mdb_txn_abort(txn);
      lmdb_check(rc, "put");
    }
    lmdb_check(mdb_txn_commit(txn), "txn_commit");
  }

  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* read_ = nullptr;  // reset between gets
};

class LmdbStore {
 public:
  LmdbStore() : dir_(Cleanup::kLmdbDir, "/dev/shm/") {
    if (::mkdir(dir_.path().c_str(), 0700) != 0) throw std::runtime_error(sys_error("mkdir " + dir_.path()));
    LmdbSession(dir_.path()).load();
  }
  void before_fork() {}  // the loading environment is closed already
  LmdbSession session() const { return LmdbSession(dir_.path()); }

 private:
  ScopedName dir_;
};
#endif

// --- servers this program starts (redis-server, iox-roudi)

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = std::string(path != nullptr ? path : "") + ":/usr/bin:/usr/sbin:/usr/local/bin";
  std::stringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    const std::string p = dir + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// A peer that cannot run on this machine (its server is missing or will not
// start): its rows are skipped with this message, not failed.
struct NotAvailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A server process this program forks and execs. It dies with the benchmark
// (PR_SET_PDEATHSIG with the signal start() is given), is listed in g_cleanup
// so that the signal handler kills it, and stop() ends it: SIGTERM, then
// SIGKILL after the grace period. Only the process that started it stops it.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { stop(std::chrono::milliseconds(0)); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // args[0] is the name the program sees; output: a file for its stdout and
  // stderr ("" for /dev/null).
  void start(const std::string& exe, const std::vector<std::string>& args, const std::string& output,
             int death_signal) {
    stop(std::chrono::milliseconds(0));
    std::vector<char*> argv;  // built before the fork: the child only makes system calls
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const char* out = output.empty() ? "/dev/null" : output.c_str();
    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      pid_ = 0;
      throw std::runtime_error(sys_error("fork"));
    }
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, death_signal);  // never outlive the benchmark
      if (::getppid() != parent) ::_exit(3);
      const int null = ::open("/dev/null", O_RDWR);
      const int log = ::open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(null, 0);
      ::dup2(log >= 0 ? log : null, 1);
      ::dup2(log >= 0 ? log : null, 2);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    owner_ = parent;
    slot_ = g_cleanup.add_server(pid_);
  }
  // False once it has exited (it is reaped then).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    forget();
    return false;
  }
  void stop(std::chrono::milliseconds grace) noexcept {
    if (pid_ <= 0 || ::getpid() != owner_) return;
    ::kill(pid_, SIGTERM);
    const std::int64_t limit = now_ns() + static_cast<std::int64_t>(grace.count()) * 1'000'000;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (now_ns() > limit) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      ::usleep(5'000);
    }
    forget();
  }

 private:
  void forget() noexcept {
    pid_ = 0;
    g_cleanup.drop_server(std::exchange(slot_, -1));
  }
  pid_t pid_ = 0;
  pid_t owner_ = 0;
  int slot_ = -1;
};

// --- iox-roudi

#if SLEET_PEERS_HAVE_ICEORYX
// RouDi's memory pools: a chunk of each pool holds a payload of `size`
// bytes (RouDi adds its 40-byte chunk header). One case holds at most a full
// subscriber queue (256) and a few loaned or taken chunks of one size at a
// time; the counts leave room for a case whose ports RouDi has not reclaimed
// yet. 24 MB in all.
constexpr const char* kRoudiConfig =
    "[general]\nversion = 1\n\n[[segment]]\n\n"
    "[[segment.mempool]]\nsize = 128\ncount = 10000\n\n"    // 8 and 64 B payloads
    "[[segment.mempool]]\nsize = 1024\ncount = 5000\n\n"    // 1 KiB
    "[[segment.mempool]]\nsize = 4096\ncount = 2000\n\n"    // 4 KiB
    "[[segment.mempool]]\nsize = 16384\ncount = 500\n";     // unused by the cases; headroom
constexpr std::chrono::seconds kRoudiStartTimeout{10};
// RouDi's own shutdown is quick when no application is registered; past
// this it is killed and its files are removed here instead.
constexpr std::chrono::milliseconds kRoudiStopGrace{5000};
// The files RouDi 2.x makes outside /dev/shm; fixed names: one RouDi a machine.
constexpr const char* kRoudiFiles[] = {"/tmp/roudi", "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock"};

// iceoryx's broker daemon, started by this program with its own config and
// stopped at the end (SIGTERM: RouDi removes its shared memory, its socket
// and its lock files itself). It gets SIGTERM too when the benchmark dies
// (PR_SET_PDEATHSIG); the signal handler SIGKILLs it and removes what it
// left. Monitoring is off ("-m off"): on two busy-polling CPUs a side's
// keep-alive thread may starve and RouDi would then drop a live side; the
// sides deregister themselves (IoxRuntime) instead.
class Roudi {
 public:
  Roudi() : config_(Cleanup::kUnlink, "/tmp/", ".roudi.toml"), log_(Cleanup::kUnlink, "/tmp/", ".roudi.log") {
    const std::string exe = find_program("iox-roudi");
    if (exe.empty()) throw NotAvailable("iox-roudi not found (Debian package iceoryx)");
    {
      std::ofstream out(config_.path());
      out << kRoudiConfig;
      if (!out.flush()) throw NotAvailable(sys_error("cannot write " + config_.path()));
    }
    server_.start(exe, {"iox-roudi", "-c", config_.path(), "-l", "info", "-m", "off", "-k", "1"}, log_.path(),
                  SIGTERM);
    const std::int64_t limit = now_ns() + std::chrono::nanoseconds(kRoudiStartTimeout).count();
    for (;;) {
      const std::string log = read_log();
      if (log.find("RouDi is ready for clients") != std::string::npos) {
        adopt_files(log);
        return;
      }
      if (!server_.running()) {
        // Typically another RouDi holds the machine's one lock: its files are
        // not ours, so none is removed.
        throw NotAvailable("iox-roudi exited at start: " + log_summary(log));
      }
      if (now_ns() > limit) {
        server_.stop(kRoudiStopGrace);
        throw NotAvailable("iox-roudi not ready within 10 s: " + log_summary(read_log()));
      }
      ::usleep(10'000);
    }
  }
  ~Roudi() { server_.stop(kRoudiStopGrace); }  // then files_ removes what it left
  Roudi(const Roudi&) = delete;
  Roudi& operator=(const Roudi&) = delete;

  // Throws if RouDi has died: a side would wait for it until its timeout.
  void check() {
    if (!server_.running()) throw std::runtime_error("iox-roudi is not running: " + log_summary(read_log()));
  }

 private:
  std::string read_log() const {
    std::ifstream in(log_.path());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // What went wrong, for a note: RouDi's first fatal or error line (e.g.
  // "Could not acquire lock, is RouDi still running?"), else its last line;
  // without the terminal colours.
  static std::string log_summary(const std::string& log) {
    std::string plain;
    for (std::size_t i = 0; i < log.size(); ++i) {
      if (log[i] == '\x1b') {  // ESC [ ... m
        while (i < log.size() && log[i] != 'm') ++i;
      } else {
        plain += log[i];
      }
    }
    std::string line, last = "(no output)";
    std::stringstream in(plain);
    while (std::getline(in, line)) {
      if (line.find("[ Fatal ]") != std::string::npos || line.find("[ Error ]") != std::string::npos) return line;
      if (!line.empty()) last = line;
    }
    return last;
  }
  // The shared memory RouDi names in its log ("... in the shared memory
  // [iceoryx_mgmt]") and its fixed files: from now on ours to remove.
  void adopt_files(const std::string& log) {
    const std::string tag = "in the shared memory [";
    for (std::size_t at = log.find(tag); at != std::string::npos; at = log.find(tag, at + 1)) {
      const std::size_t from = at + tag.size(), to = log.find(']', from);
      if (to == std::string::npos) break;
      const std::string name = log.substr(from, to - from);
      if (!name.empty() && name.find('/') == std::string::npos) {
        files_.push_back(std::make_unique<AdoptedPath>(Cleanup::kUnlink, "/dev/shm/" + name));
      }
    }
    for (const char* f : kRoudiFiles) files_.push_back(std::make_unique<AdoptedPath>(Cleanup::kUnlink, f));
  }

  ScopedName config_, log_;
  std::vector<std::unique_ptr<AdoptedPath>> files_;  // declared before server_: removed after it stopped
  ServerProcess server_;
};
#endif

// --- Redis

#if SLEET_PEERS_HAVE_HIREDIS
// A port the kernel had free a moment ago.
int free_loopback_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (s.get() < 0 || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error(sys_error("finding a free port"));
  }
  return ntohs(a.sin_port);
}

using RedisContext = std::unique_ptr<redisContext, decltype(&redisFree)>;
using RedisReply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

RedisContext redis_connect(int port) {
  const timeval timeout{1, 0};
  RedisContext c(redisConnectWithTimeout("127.0.0.1", port, timeout), &redisFree);
  if (!c || c->err) return RedisContext(nullptr, &redisFree);
  return c;
}

RedisReply redis_command(redisContext* c, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  RedisReply r(static_cast<redisReply*>(redisvCommand(c, format, ap)), &freeReplyObject);
  va_end(ap);
  if (!r) throw std::runtime_error(std::string("redis: ") + (c->err ? c->errstr : "no reply"));
  if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error("redis: " + std::string(r->str, r->len));
  return r;
}

// redis-server on a free 127.0.0.1 port, no persistence, stopped by the
// destructor (SIGTERM, then SIGKILL after 3 s) and by the signal handler.
class RedisServer {
 public:
  RedisServer() {
    const std::string exe = find_program("redis-server");
    if (exe.empty()) throw NotAvailable("redis-server not found (Debian package redis-server)");
    for (int attempt = 0; attempt < 3; ++attempt) {  // the port may be taken in between
      port_ = free_loopback_port();
      server_.start(exe,
                    {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no", "--dir", "/tmp",
                     "--databases", "1", "--loglevel", "warning"},
                    "", SIGKILL);
      if (wait_ready()) return;
      server_.stop(kStopGrace);
    }
    throw std::runtime_error("redis-server did not answer on 127.0.0.1 within 5 s (3 tries)");
  }
  ~RedisServer() { server_.stop(kStopGrace); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  int port() const noexcept { return port_; }

 private:
  static constexpr std::chrono::milliseconds kStopGrace{3000};  // it has nothing to save

  bool wait_ready() {
    const std::int64_t limit = now_ns() + 5'000'000'000;
    while (now_ns() < limit) {
      if (!server_.running()) return false;  // exited (port taken?)
      if (RedisContext c = redis_connect(port_)) {
        RedisReply r(static_cast<redisReply*>(redisCommand(c.get(), "PING")), &freeReplyObject);
        if (r && r->type == REDIS_REPLY_STATUS) return true;
      }
      ::usleep(20'000);
    }
    return false;
  }

  ServerProcess server_;
  int port_ = 0;
};

class RedisSession {
 public:
  explicit RedisSession(int port) : c_(redis_connect(port)) {
    if (!c_) throw std::runtime_error("redis: cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  bool get(const Key16& k, Val64& out) {
    RedisReply r = redis_command(c_.get(), "GET %b", k.b, kKeySize);
    if (r->type == REDIS_REPLY_NIL) return false;
    if (r->type != REDIS_REPLY_STRING || r->len != sizeof out) throw std::runtime_error("redis: bad GET reply");
    std::memcpy(&out, r->str, sizeof out);
    return true;
  }
  void set(const Key16& k, const Val64& v) { (void)redis_command(c_.get(), "SET %b %b", k.b, kKeySize, &v, sizeof v); }
  // Pipelined sets of every key into an empty database: the load phase.
  void load() {
    (void)redis_command(c_.get(), "FLUSHALL");
    constexpr std::uint32_t kBatch = 1000;
    for (std::uint32_t first = 0; first < kKeys; first += kBatch) {
      const std::uint32_t last = std::min(kKeys, first + kBatch);
      for (std::uint32_t i = first; i < last; ++i) {
        const Val64 v = make_value(i, 0);
        redisAppendCommand(c_.get(), "SET %b %b", keys()[i].b, kKeySize, &v, sizeof v);
      }
      for (std::uint32_t i = first; i < last; ++i) {
        void* reply = nullptr;
        if (redisGetReply(c_.get(), &reply) != REDIS_OK) throw std::runtime_error("redis: load failed");
        freeReplyObject(reply);
      }
    }
  }

 private:
  RedisContext c_;
};

class RedisStore {
 public:
  explicit RedisStore(int port) : port_(port) {
    RedisSession(port_).load();
  }
  void before_fork() {}
  RedisSession session() const { return RedisSession(port_); }

 private:
  int port_;
};
#endif

enum class KvOp { get, set };

// One kv case: the store is loaded; one forked process gets or sets.
template <class Store>
Timed run_kv(Store& store, KvOp op, const CaseOptions& o) {
  Shared<Control> c;
  store.before_fork();
  run_processes(1, *c, run_options(o.seconds), [&](Worker& w) {
    auto s = store.session();
    Rng rng(static_cast<std::uint64_t>(::getpid()));
    std::vector<std::uint64_t> gen(kKeys, 0);
    std::uint64_t next_gen = static_cast<std::uint64_t>(now_ns());  // never 0: sets are visible
    Val64 v{};
    auto one = [&] {
      const std::uint32_t i = rng.below(kKeys);
      if (op == KvOp::get) {
        if (!s.get(keys()[i], v)) throw std::runtime_error("kv: a loaded key is missing");
        check_value(v, i);
      } else {
        gen[i] = ++next_gen;
        s.set(keys()[i], make_value(i, gen[i]));
      }
    };
    for (int k = 0; k < 256; ++k) one();  // warm-up
    w.start();
    w.finish(repeat_for(o, 16, one));
    if (op == KvOp::set) {  // read back a sample: the last value written wins
      for (int k = 0; k < 256; ++k) {
        const std::uint32_t i = rng.below(kKeys);
        if (!s.get(keys()[i], v)) throw std::runtime_error("kv: a key went missing");
        check_value(v, i);
        if (gen[i] != 0 && v.w[1] != gen[i]) throw std::runtime_error("kv: a set was lost");
      }
    }
  });
  const std::uint64_t count = c->count[0].load(std::memory_order_relaxed);
  g_messages += count + 256 + (op == KvOp::set ? 256 : 0);
  return {count, static_cast<double>(c->end_ns[0].load() - c->start_ns[0].load()) * 1e-9};
}

// ------------------------------------------------------------- the cases

enum class Workload { throughput, roundtrip, kv_get, kv_set };
constexpr Workload kWorkloads[] = {Workload::throughput, Workload::roundtrip, Workload::kv_get, Workload::kv_set};
const char* to_string(Workload w) {
  switch (w) {
    case Workload::throughput: return "throughput";
    case Workload::roundtrip: return "roundtrip";
    case Workload::kv_get: return "kv_get";
    case Workload::kv_set: return "kv_set";
  }
  return "?";
}
bool is_kv(Workload w) { return w == Workload::kv_get || w == Workload::kv_set; }
// Round trips are times (lower is better); everything else is a rate.
const char* unit_of(Workload w) {
  return w == Workload::roundtrip ? "ns" : is_kv(w) ? "op/s" : "msg/s";
}

using MessagingFn = std::function<Timed(Shape, std::size_t, const CaseOptions&)>;
using KvFn = std::function<Timed(KvOp, const CaseOptions&)>;

struct Mechanism {
  std::string name;
  std::string what;     // one line for the legend
  std::string missing;  // why it cannot run here (empty: it can)
  MessagingFn throughput, roundtrip;
  KvFn kv;
  bool runs(Workload w) const {
    if (!missing.empty()) return false;
    if (w == Workload::throughput) return static_cast<bool>(throughput);
    if (w == Workload::roundtrip) return static_cast<bool>(roundtrip);
    return static_cast<bool>(kv);
  }
};

template <template <std::size_t> class LinkOf>
MessagingFn by_payload() {
  return [](Shape shape, std::size_t n, const CaseOptions& o) -> Timed {
    switch (n) {
      case 8: return run_messaging<LinkOf<8>>(shape, n, o);
      case 64: return run_messaging<LinkOf<64>>(shape, n, o);
      case 1024: return run_messaging<LinkOf<1024>>(shape, n, o);
      case 4096: return run_messaging<LinkOf<4096>>(shape, n, o);
    }
    throw std::invalid_argument("payload must be 8, 64, 1024 or 4096 bytes");
  };
}
template <std::size_t N>
using SleetSpinLink = SleetLink<N, true>;
template <std::size_t N>
using SleetNoSpinLink = SleetLink<N, false>;

template <class Link>
MessagingFn messaging() {
  return [](Shape shape, std::size_t n, const CaseOptions& o) { return run_messaging<Link>(shape, n, o); };
}

// The stores live for the whole run (loaded once); made on first use.
template <class Store>
KvFn kv_of(std::function<std::unique_ptr<Store>()> make) {
  auto store = std::make_shared<std::unique_ptr<Store>>();
  return [store, make](KvOp op, const CaseOptions& o) {
    if (!*store) *store = make();
    return run_kv(**store, op, o);
  };
}

// A messaging function that first asks `before` (which may throw).
MessagingFn after_check(std::function<void()> before, MessagingFn fn) {
  return [before, fn](Shape shape, std::size_t n, const CaseOptions& o) {
    before();
    return fn(shape, n, o);
  };
}

// redis_port(): the port of the redis-server (started on first use);
// roudi_check(): throws if iox-roudi is not running.
std::vector<Mechanism> mechanisms(std::function<int()> redis_port, std::function<void()> roudi_check) {
  std::vector<Mechanism> m;
  m.push_back({"sleet", "sleet Channel<T> spsc (capacity 1024, default spin) / Pipe<T> / KvStore", "",
               by_payload<SleetSpinLink>(), by_payload<SleetSpinLink>(), kv_of<SleetKvStore>([] {
                 return std::make_unique<SleetKvStore>();
               })});
  m.push_back({"sleet-nospin", "sleet Pipe<T> with spin budget 0: both sides sleep on a futex at once", "",
               nullptr, by_payload<SleetNoSpinLink>(), nullptr});
  m.push_back({"pipe", "two anonymous pipes, write()/read()", "", messaging<PipeLink>(), messaging<PipeLink>(),
               nullptr});
  m.push_back({"unix-seqpacket", "socketpair(AF_UNIX, SOCK_SEQPACKET), send()/recv()", "",
               messaging<SocketLink>(), messaging<SocketLink>(), nullptr});
  m.push_back({"posix-mq",
               "POSIX mq_send()/mq_receive(), " + std::to_string(mq_limit()) +
                   " messages per queue (fs.mqueue.msg_max)",
               "", messaging<MqLink>(), messaging<MqLink>(), nullptr});
#if SLEET_PEERS_HAVE_BOOST
  m.push_back({"boost-mq", "boost::interprocess::message_queue, 1024 messages", "", messaging<BoostMqLink>(),
               messaging<BoostMqLink>(), nullptr});
#else
  m.push_back({"boost-mq", "", "not built: Boost.Interprocess headers not found (libboost-dev)", {}, {}, {}});
#endif
#if SLEET_PEERS_HAVE_ZMQ
  m.push_back({"zeromq", "ZeroMQ ipc:// PUSH/PULL (throughput), PAIR (round trip)", "", messaging<ZmqLink>(),
               messaging<ZmqLink>(), nullptr});
#else
  m.push_back({"zeromq", "", "not built: libzmq not found (libzmq3-dev)", {}, {}, {}});
#endif
#if SLEET_PEERS_HAVE_ICEORYX
  m.push_back({"iceoryx",
               "iceoryx 2 untyped publisher/subscriber via iox-roudi, zero-copy loan+publish / take, "
               "receiver polls take(); queue 256, BLOCK_PRODUCER",
               "", after_check(roudi_check, by_payload<IoxPollLink>()),
               after_check(roudi_check, by_payload<IoxPollLink>()), nullptr});
  m.push_back({"iceoryx-wait",
               "the same, receiver sleeps in a WaitSet on the subscriber's HAS_DATA state", "",
               after_check(roudi_check, by_payload<IoxWaitLink>()),
               after_check(roudi_check, by_payload<IoxWaitLink>()), nullptr});
#else
  (void)roudi_check;
  for (const char* name : {"iceoryx", "iceoryx-wait"}) {
    m.push_back({name, "", "not built: iceoryx not found (libiceoryx-posh-dev)", {}, {}, {}});
  }
#endif
#if SLEET_PEERS_HAVE_LMDB
  m.push_back({"lmdb", "LMDB on tmpfs: txn_renew+get+txn_reset per get, one write txn per set", "", nullptr,
               nullptr, kv_of<LmdbStore>([] { return std::make_unique<LmdbStore>(); })});
#else
  m.push_back({"lmdb", "", "not built: lmdb.h / liblmdb not found (liblmdb-dev)", {}, {}, {}});
#endif
#if SLEET_PEERS_HAVE_HIREDIS
  m.push_back({"redis", "redis-server on 127.0.0.1 (no persistence), hiredis, one GET/SET per operation", "",
               nullptr, nullptr, kv_of<RedisStore>([redis_port] {
                 return std::make_unique<RedisStore>(redis_port());
               })});
#else
  (void)redis_port;
  m.push_back({"redis", "", "not built: hiredis not found (libhiredis-dev)", {}, {}, {}});
#endif
  return m;
}

// ------------------------------------------------------------- results

struct Key {
  Workload workload;
  std::size_t payload;
  std::string mechanism;
  auto operator<=>(const Key&) const = default;
};
struct Series {
  std::vector<std::optional<double>> value;  // per round (nullopt: the case failed)
  std::uint64_t count = 0;                   // timed messages or operations, all rounds
  std::string error;
};
std::map<Key, Series> g_results;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  std::optional<double> value, ratio, ratio_min, ratio_max;
};
Summary summarize(const Key& k) {
  Summary s;
  const Series& me = g_results.at(k);
  std::vector<double> ok, ratios;
  for (const auto& v : me.value) {
    if (v) ok.push_back(*v);
  }
  if (!ok.empty()) s.value = median(ok);
  const auto base = g_results.find({k.workload, k.payload, "sleet"});
  if (base == g_results.end()) return s;
  for (std::size_t r = 0; r < me.value.size() && r < base->second.value.size(); ++r) {
    if (me.value[r] && base->second.value[r] && *base->second.value[r] > 0) {
      ratios.push_back(*me.value[r] / *base->second.value[r]);
    }
  }
  if (!ratios.empty()) {
    s.ratio = median(ratios);
    s.ratio_min = *std::min_element(ratios.begin(), ratios.end());
    s.ratio_max = *std::max_element(ratios.begin(), ratios.end());
  }
  return s;
}

std::string fmt_value(Workload w, double v) {
  char buf[32];
  if (w == Workload::roundtrip) {
    if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2f ms", v / 1e6);
    else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.2f us", v / 1e3);
    else std::snprintf(buf, sizeof buf, "%.0f ns", v);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M/s", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f k/s", v / 1e3);
  }
  return buf;
}

std::string cell(const Key& k) {
  const auto it = g_results.find(k);
  if (it == g_results.end()) return "-";
  const Summary s = summarize(k);
  if (!s.value) return "failed";
  std::string out = fmt_value(k.workload, *s.value);
  if (k.mechanism != "sleet" && s.ratio) {
    char buf[24];
    std::snprintf(buf, sizeof buf, " (%.2fx)", *s.ratio);
    out += buf;
  }
  return out;
}

void print_tables(const std::vector<Mechanism>& mechs, const std::vector<std::size_t>& payloads) {
  auto row = [](const std::string& first, const std::vector<std::string>& cells) {
    std::printf("  %-16s", first.c_str());
    for (const auto& c : cells) std::printf(" %-22s", c.c_str());
    std::printf("\n");
  };
  for (const Workload w : {Workload::throughput, Workload::roundtrip}) {
    if (!g_settings.workloads.empty() && !contains(g_settings.workloads, std::string(to_string(w)))) continue;
    std::printf("\n%s\n", w == Workload::throughput
                              ? "One-way throughput, messages/s (x: peer / sleet; below 1 = slower than sleet)"
                              : "Round trip, mean time (x: peer / sleet; above 1 = slower than sleet)");
    std::vector<std::string> head;
    for (std::size_t n : payloads) head.push_back(std::to_string(n) + " B");
    row("mechanism", head);
    for (const auto& m : mechs) {
      if (!m.runs(w)) continue;
      std::vector<std::string> cells;
      for (std::size_t n : payloads) cells.push_back(cell({w, n, m.name}));
      row(m.name, cells);
    }
  }
  if (g_settings.workloads.empty() || contains(g_settings.workloads, std::string("kv"))) {
    std::printf("\nKey-value store, operations/s from a second process, 16-byte keys, 64-byte values "
                "(x: peer / sleet; below 1 = slower than sleet)\n");
    row("mechanism", {"get", "set"});
    for (const auto& m : mechs) {
      if (m.runs(Workload::kv_get)) {
        row(m.name, {cell({Workload::kv_get, kValueSize, m.name}), cell({Workload::kv_set, kValueSize, m.name})});
      }
    }
  }
}

void write_csv(const std::string& path, const MachineInfo& info, const std::vector<Mechanism>& mechs,
               const std::string& mode) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error(sys_error("cannot write " + path));
  out << "# sleet peer comparison (bench/peers/peers_bench)\n"
      << "# cpu: " << info.cpu << "\n# cpus: " << info.cpus << "\n# kernel: " << info.kernel
      << "\n# date: " << info.date << "\n# compiler: " << info.compiler << "\n# mode: " << mode
      << "\n# pinned: " << (g_settings.pin ? "yes" : "no")
      << "\n# value: the median over rounds; unit msg/s and op/s are rates (higher is better), ns is the mean"
         " round trip (lower is better)"
      << "\n# ratio_vs_sleet: peer / sleet in the same round, median (min, max) over rounds\n";
  for (const auto& m : mechs) {
    if (m.missing.empty()) {
      out << "# mechanism " << m.name << ": " << m.what << "\n";
    } else {
      out << "# skipped " << m.name << ": " << m.missing << "\n";
    }
  }
  out << "workload,mechanism,payload_bytes,value,unit,ratio_vs_sleet,ratio_min,ratio_max,count,rounds,status\n";
  auto num = [](std::optional<double> v) {
    if (!v) return std::string();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", *v);
    return std::string(buf);
  };
  for (const auto& [k, series] : g_results) {
    const Summary s = summarize(k);
    std::size_t ok = 0;
    for (const auto& v : series.value) ok += v.has_value();
    std::string status = series.error.empty() ? "ok" : "failed: " + series.error;
    std::replace(status.begin(), status.end(), ',', ';');
    out << to_string(k.workload) << ',' << k.mechanism << ',' << k.payload << ',' << num(s.value) << ','
        << unit_of(k.workload) << ',' << num(s.ratio) << ',' << num(s.ratio_min) << ',' << num(s.ratio_max)
        << ',' << series.count << ',' << ok << ',' << status << '\n';
  }
  if (!out.flush()) throw std::runtime_error(sys_error("cannot write " + path));
}

// ------------------------------------------------------------- main

void usage() {
  std::fprintf(stderr,
               "usage: peers_bench [--quick] [--rounds=N] [--seconds=S] [--out=FILE] [--only=a,b]\n"
               "                   [--workload=throughput,roundtrip,kv] [--payload=8,64,1024,4096] [--no-pin]\n");
}

bool parse(int argc, char** argv) {
  bool rounds_set = false, seconds_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      const std::string f = flag;
      if (a.rfind(f + "=", 0) == 0) return a.substr(f.size() + 1);
      if (a == f && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    if (a == "--quick") {
      g_settings.quick = true;
    } else if (a == "--no-pin") {
      g_settings.pin = false;
    } else if (auto v = value("--rounds")) {
      g_settings.rounds = std::max(1, std::atoi(v->c_str()));
      rounds_set = true;
    } else if (auto v = value("--seconds")) {
      g_settings.seconds = std::max(0.001, std::atof(v->c_str()));
      seconds_set = true;
    } else if (auto v = value("--out")) {
      g_settings.out = *v;
    } else if (auto v = value("--only")) {
      g_settings.only = split(*v);
    } else if (auto v = value("--workload")) {
      g_settings.workloads = split(*v);
    } else if (auto v = value("--payload")) {
      for (const auto& p : split(*v)) {
        const auto n = static_cast<std::size_t>(std::atol(p.c_str()));
        if (std::find(std::begin(kPayloads), std::end(kPayloads), n) == std::end(kPayloads)) {
          std::fprintf(stderr, "peers_bench: payload %s is not one of 8, 64, 1024, 4096\n", p.c_str());
          return false;
        }
        g_settings.payloads.push_back(n);
      }
    } else {
      std::fprintf(stderr, "peers_bench: unknown argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (g_settings.quick) {
    if (!rounds_set) g_settings.rounds = 1;
    if (!seconds_set) g_settings.seconds = 0.04;
  }
  if (g_settings.payloads.empty()) g_settings.payloads.assign(std::begin(kPayloads), std::end(kPayloads));
  for (const auto& w : g_settings.workloads) {
    if (w != "throughput" && w != "roundtrip" && w != "kv") {
      std::fprintf(stderr, "peers_bench: unknown workload '%s'\n", w.c_str());
      return false;
    }
  }
  return true;
}

bool selected(Workload w) {
  if (g_settings.workloads.empty()) return true;
  return contains(g_settings.workloads, std::string(is_kv(w) ? "kv" : to_string(w)));
}

int run(int argc, char** argv) {
  if (!parse(argc, argv)) {
    usage();
    return 2;
  }
  sleet_bench::remove_on_fatal_signals(g_cleanup);
  ::signal(SIGPIPE, SIG_IGN);  // a dead peer is an error return, not a signal

  const MachineInfo info = machine_info();
  char mode[96];
  std::snprintf(mode, sizeof mode, "%s, %d round%s of %.2f s per case", g_settings.quick ? "quick" : "default",
                g_settings.rounds, g_settings.rounds == 1 ? "" : "s", g_settings.seconds);
  std::printf("sleet peer comparison: %s, %d CPUs, %s, %s\n%s%s\n", info.cpu.c_str(), info.cpus,
              info.kernel.c_str(), info.date.c_str(), mode,
              g_settings.pin ? ", the two processes pinned to different CPUs" : "");

#if SLEET_PEERS_HAVE_HIREDIS
  std::optional<RedisServer> redis;
  auto redis_port = [&]() -> int {
    if (!redis) redis.emplace();
    return redis->port();
  };
#else
  auto redis_port = []() -> int { return 0; };
#endif
#if SLEET_PEERS_HAVE_ICEORYX
  std::optional<Roudi> roudi;
  auto roudi_check = [&] {
    if (!roudi) throw std::runtime_error("iox-roudi was not started");
    roudi->check();
  };
#else
  auto roudi_check = [] {};
#endif
  std::vector<Mechanism> mechs = mechanisms(redis_port, roudi_check);
  if (!g_settings.only.empty()) {
    std::erase_if(mechs, [](const Mechanism& m) { return !contains(g_settings.only, m.name); });
  }
#if SLEET_PEERS_HAVE_ICEORYX
  // RouDi first, once for the whole run: the iceoryx rows are skipped
  // (with the reason as a note) when it will not start.
  const auto is_iceoryx = [](const Mechanism& m) { return m.name.rfind("iceoryx", 0) == 0; };
  if (std::any_of(mechs.begin(), mechs.end(),
                  [&](const Mechanism& m) { return is_iceoryx(m) && m.missing.empty(); }) &&
      (selected(Workload::throughput) || selected(Workload::roundtrip))) {
    try {
      roudi.emplace();
    } catch (const std::exception& e) {
      for (auto& m : mechs) {
        if (is_iceoryx(m) && m.missing.empty()) m.missing = e.what();
      }
    }
  }
#endif
#if SLEET_PEERS_HAVE_HIREDIS
  for (auto& m : mechs) {
    if (m.name == "redis" && find_program("redis-server").empty()) {
      m.missing = "redis-server not found in PATH (Debian package redis-server)";
    }
  }
#endif
  for (const auto& m : mechs) {
    if (!m.missing.empty()) std::printf("note: %s skipped: %s\n", m.name.c_str(), m.missing.c_str());
  }
  std::fflush(stdout);

  CaseOptions o;
  o.seconds = g_settings.seconds;
  if (g_settings.quick) {
    o.warm_messages = 500;
    o.warm_round_trips = 50;
  }
  int failures = 0;
  for (int round = 0; round < g_settings.rounds; ++round) {
    std::fprintf(stderr, "round %d/%d ...\n", round + 1, g_settings.rounds);
    for (const Workload w : kWorkloads) {
      if (!selected(w)) continue;
      const std::vector<std::size_t> sizes = is_kv(w) ? std::vector<std::size_t>{kValueSize} : g_settings.payloads;
      for (const std::size_t n : sizes) {
        std::vector<const Mechanism*> order;
        for (const auto& m : mechs) {
          if (m.runs(w)) order.push_back(&m);
        }
        if (round % 2 == 1) std::reverse(order.begin(), order.end());  // A B ... B A
        for (const Mechanism* m : order) {
          Series& s = g_results[{w, n, m->name}];
          s.value.resize(static_cast<std::size_t>(round));
          try {
            Timed t;
            if (w == Workload::throughput) t = m->throughput(Shape::oneway, n, o);
            else if (w == Workload::roundtrip) t = m->roundtrip(Shape::pingpong, n, o);
            else t = m->kv(w == Workload::kv_get ? KvOp::get : KvOp::set, o);
            if (t.count == 0 || t.seconds <= 0) throw std::runtime_error("nothing was measured");
            s.count += t.count;
            s.value.push_back(w == Workload::roundtrip ? t.seconds * 1e9 / static_cast<double>(t.count)
                                                       : static_cast<double>(t.count) / t.seconds);
          } catch (const std::exception& e) {
            ++failures;
            s.value.push_back(std::nullopt);
            if (s.error.empty()) s.error = e.what();
            std::fprintf(stderr, "FAILED %s %s %zu B: %s\n", m->name.c_str(), to_string(w), n, e.what());
            // A store that cannot start (redis) is not tried again.
            if (is_kv(w) && m->name != "sleet") {
              for (auto& mm : mechs) {
                if (&mm == m) mm.missing = e.what();
              }
            }
          }
        }
      }
    }
  }
#if SLEET_PEERS_HAVE_HIREDIS
  redis.reset();  // stop the server before printing
#endif
#if SLEET_PEERS_HAVE_ICEORYX
  roudi.reset();
#endif

  print_tables(mechs, g_settings.payloads);
  std::printf("\nMechanisms:\n");
  for (const auto& m : mechs) {
    std::printf("  %-16s %s\n", m.name.c_str(), m.missing.empty() ? m.what.c_str() : ("skipped: " + m.missing).c_str());
  }
  std::printf("messages: %llu (every message and kv operation this run moved, warm-up included)\n",
              static_cast<unsigned long long>(g_messages));
  if (!g_settings.out.empty()) {
    write_csv(g_settings.out, info, mechs, mode);
    std::printf("results: %s\n", g_settings.out.c_str());
  }
  if (failures > 0) {
    std::fprintf(stderr, "peers_bench: %d case%s failed\n", failures, failures == 1 ? "" : "s");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peers_bench: %s\n", e.what());
    g_cleanup.run();
    return 1;
  }
}
