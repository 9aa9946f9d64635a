// bench/patterns_bench.cpp — the messaging patterns of issue #13 (Topic,
// WaitSet, notify_fd, Service) measured against the mechanism each one is
// built on or replaces, side by side in one run, with the targets table at
// the end (rounds.hpp).
//
// What is measured (every row: nanoseconds per message or per round trip)
//   topic        1 publisher -> 1 subscriber, 8-byte messages, Overflow::block,
//                against the same stream through an spsc Channel<uint64_t>
//                (same capacity, default spin). Then 4 subscriber processes:
//                time per *delivered* message (wall time / (4 x messages)),
//                against the 1-subscriber row. Then Overflow::overwrite: the
//                publisher's own time per publish() with 8 subscribers
//                reading against 1.
//   waitset      round trip: worker 0 pings on one of 8 spsc channels (round
//                robin) and sleeps on its reply channel; worker 1 sleeps in
//                WaitSet::wait() over the 8 (spin 0), takes the message with
//                try_receive() and replies. Against the same with one
//                channel and receive(): every wait of both rows sleeps on a
//                futex (spin 0).
//   notify_fd    round trip: worker 1 sleeps in epoll_wait() on the ping
//                channel's notify_fd() and calls try_receive() until it is
//                empty (which re-arms the descriptor); worker 0 sleeps in
//                receive() on the reply channel (spin 0). Against a kernel
//                pipe(2) round trip (1-byte write/read each way).
//   service      Service<uint64_t, uint64_t>::call() answered by a server in
//                receive_request() + reply() (default spin budgets), against
//                the spinning spsc round trip it is made of: two spsc
//                Channel<uint64_t> ping-pong with send()/receive() (default
//                spin).
// Every row checks what it receives (sequence numbers, the channel a ping
// came on, lost counts under overwrite); a broken run is an error row, not
// a number.
//
// How a run works
//   Every row forks its workers through sleet_bench::run_processes()
//   (harness.hpp): each opens its own objects by name, warms up (one ring
//   lap of messages, or kWarmTrips round trips, untimed), meets the others
//   at the barrier and records its start and finish. Worker 0 (the
//   publisher, or the side that asks) is pinned alone to the first allowed
//   CPU, the others round-robin to the rest (--no-pin to disable); on two
//   CPUs every subscriber shares the second. Names are bench.<pid>.<tag>.<n>,
//   unlinked when the row's batch ends and by a SIGINT/SIGTERM/SIGHUP
//   handler; a worker's objects are destroyed before it exits (a Service
//   client removes its reply channel then).
//
// Flags: rounds.hpp (--quick, --rounds=N, --table-out=PATH, --no-pin).
#include <benchmark/benchmark.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "rounds.hpp"
#include "sleet/sleet.hpp"
#include "sleet/service.hpp"
#include "sleet/topic.hpp"
#include "sleet/wait_set.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::Channel;
using sleet::ChannelOptions;
using sleet::Topology;
using sleet_bench::Comparison;
using sleet_bench::Control;
using sleet_bench::Shared;
using sleet_bench::Worker;
using Seq = std::uint64_t;

// Untimed round trips before the clock starts (first-touch faults, reply
// channels created, caches warm).
constexpr std::int64_t kWarmTrips = 1000;
// Ring capacity of every stream row (topic and channel alike).
constexpr std::size_t kCapacity = 1024;
// The WaitSet row's channels.
constexpr int kWaitChannels = 8;

[[noreturn]] void mismatch(const char* what, Seq got, Seq expected) {
  throw std::runtime_error(std::string(what) + ": got " + std::to_string(got) + ", expected " +
                           std::to_string(expected));
}

// ------------------------------------------------------------- names

sleet_bench::Cleanup g_cleanup;

// A fresh object name, bench.<pid>.<tag>.<n>, owned by this scope: the
// segment /dev/shm/sleet.<name><suffix> of each suffix is unlinked when the
// scope ends (only by the process that made it) and by the signal handler.
class ScopedName {
 public:
  explicit ScopedName(const char* tag, std::vector<std::string> suffixes = {""})
      : name_("bench." + std::to_string(::getpid()) + "." + tag + "." + std::to_string(++counter_)),
        owner_(::getpid()) {
    for (const std::string& s : suffixes) {
      paths_.push_back("/dev/shm/sleet." + name_ + s);
      slots_.push_back(g_cleanup.add(sleet_bench::Cleanup::kUnlink, paths_.back()));
      ::unlink(paths_.back().c_str());  // a leftover of a crashed run with a recycled pid
    }
  }
  ~ScopedName() {
    if (::getpid() != owner_) return;
    for (std::size_t i = 0; i < paths_.size(); ++i) {
      ::unlink(paths_[i].c_str());
      g_cleanup.drop(slots_[i]);
    }
  }
  ScopedName(const ScopedName&) = delete;
  ScopedName& operator=(const ScopedName&) = delete;
  const std::string& str() const noexcept { return name_; }

 private:
  static inline int counter_ = 0;
  std::string name_;
  pid_t owner_;
  std::vector<std::string> paths_;
  std::vector<int> slots_;
};

// ------------------------------------------------------------ processes

struct Ctrl : Control {
  alignas(128) std::atomic<int> subscribed{0};  // subscribers ready for the warm-up stream
};

// Worker 0 alone on the first allowed CPU, the others round-robin on the
// rest.
sleet_bench::RunOptions options_for(int workers) {
  sleet_bench::RunOptions o;
  const std::vector<int> cpus = sleet_bench::allowed_cpus();
  if (sleet_bench::settings().pin && cpus.size() >= 2) {
    o.cpus.push_back(cpus[0]);
    for (int i = 1; i < workers; ++i) o.cpus.push_back(cpus[1 + static_cast<std::size_t>(i - 1) % (cpus.size() - 1)]);
  }
  return o;
}

// Seconds from the first start() to the last finish() of workers [from, to).
double span_s(const Control& c, int from, int to) {
  std::int64_t first = INT64_MAX, last = 0;
  for (int i = from; i < to; ++i) {
    first = std::min(first, c.start_ns[i].load(std::memory_order_relaxed));  // relaxed: read after reaping
    last = std::max(last, c.end_ns[i].load(std::memory_order_relaxed));
  }
  if (first == INT64_MAX || last < first) throw std::runtime_error("a worker did not record its time");
  return static_cast<double>(last - first) * 1e-9;
}

// Worker 0 calls ask(i) for i = 1, 2, ... and worker 1 answer(i); each
// returns false on a wrong message. kWarmTrips untimed trips, then n timed
// ones. make_asker() and make_answerer() run in the workers and return the
// callables (which own the worker's objects).
template <class MakeAsker, class MakeAnswerer>
double round_trips(std::int64_t n, MakeAsker make_asker, MakeAnswerer make_answerer) {
  Shared<Ctrl> c;
  const auto first = static_cast<Seq>(std::min(n, kWarmTrips) + 1);
  const auto total = first - 1 + static_cast<Seq>(n);
  auto trips = [&](Worker& w, auto&& step) {
    for (Seq i = 1; i <= total; ++i) {
      if (i == first) w.start();
      if (!step(i)) throw std::runtime_error("round trip " + std::to_string(i) + ": wrong reply");
    }
    w.finish(static_cast<std::uint64_t>(n));
  };
  sleet_bench::run_processes(2, *c, options_for(2), [&](Worker& w) {
    if (w.index() == 0) {
      trips(w, make_asker());
    } else {
      trips(w, make_answerer());
    }
  });
  return span_s(*c, 0, 2);
}

// ---------------------------------------------------------- the streams

// Futex sleeps per message of the stream rows (from the stats of the
// channel or topic), reported as counters: where a row waits.
class Sleeps {
 public:
  // receivers: the subscribers that each read the msgs (1 for a channel).
  void add(std::uint64_t send, std::uint64_t receive, double msgs, int receivers = 1) {
    send_ += static_cast<double>(send), receive_ += static_cast<double>(receive) / receivers, msgs_ += msgs;
  }
  void report(benchmark::State& state) const {
    if (msgs_ == 0) return;
    state.counters["send_sleeps/msg"] = send_ / msgs_;
    state.counters["recv_sleeps/msg"] = receive_ / msgs_;  // per message each subscriber reads
  }

 private:
  double send_ = 0, receive_ = 0, msgs_ = 0;
};

ChannelOptions spsc(std::chrono::nanoseconds spin = sleet::kDefaultSpin) {
  ChannelOptions o;
  o.topology = Topology::spsc;
  o.capacity = kCapacity;
  o.spin = spin;
  return o;
}

// Baseline: seq 1..warm+n through an spsc channel, send()/receive().
void BM_Channel_Stream(benchmark::State& state) {
  Sleeps sleeps;
  sleet_bench::run_batches(state, [&](std::int64_t n) {
    ScopedName name("stream");
    auto keep = Channel<Seq>::create(name.str(), spsc());
    Shared<Ctrl> c;
    const auto warm = static_cast<Seq>(std::min<std::int64_t>(n, kCapacity));
    const Seq total = warm + static_cast<Seq>(n);
    sleet_bench::run_processes(2, *c, options_for(2), [&](Worker& w) {
      auto ch = Channel<Seq>::open(name.str());
      for (Seq i = 1; i <= total; ++i) {
        if (i == warm + 1) w.start();
        if (w.index() == 0) {
          ch.send(i);
        } else if (const Seq v = ch.receive(); v != i) {
          mismatch("channel stream", v, i);
        }
      }
      w.finish(static_cast<std::uint64_t>(n));
    });
    const sleet::ChannelStats st = keep.stats();
    sleeps.add(st.send_sleeps, st.receive_sleeps, static_cast<double>(total));
    return span_s(*c, 0, 2);
  });
  sleeps.report(state);
}

// A topic stream of seq 1..warm+n (warm: one ring lap, untimed): worker 0
// runs publish(worker, topic, warm, total) once all `subs` subscribers
// (workers 1..subs) have subscribed; each of them runs read(worker,
// subscriber, warm, total). Returns the workers' times (Control).
template <class Publish, class Read>
void run_topic(std::int64_t n, int subs, sleet::Overflow overflow, Ctrl& c, Sleeps& sleeps, Publish publish,
               Read read) {
  ScopedName name("topic");
  sleet::TopicOptions opt;
  opt.capacity = kCapacity;
  opt.overflow = overflow;
  auto keep = sleet::Topic<Seq>::create(name.str(), opt);
  const auto warm = static_cast<Seq>(std::min<std::int64_t>(n, kCapacity));
  const Seq total = warm + static_cast<Seq>(n);
  sleet_bench::run_processes(1 + subs, c, options_for(1 + subs), [&](Worker& w) {
    auto topic = sleet::Topic<Seq>::open(name.str());
    if (w.index() == 0) {
      // acquire: pairs with the release increment below (every subscriber is in).
      while (c.subscribed.load(std::memory_order_acquire) < subs) {
        w.check();
        ::sched_yield();
      }
      publish(w, topic, warm, total);
    } else {
      auto sub = topic.subscribe();
      c.subscribed.fetch_add(1, std::memory_order_release);  // release: the subscription exists
      read(w, sub, warm, total);
    }
  });
  const sleet::TopicStats st = keep.stats();
  sleeps.add(st.publish_sleeps, st.receive_sleeps, static_cast<double>(total), subs);
}

// Overflow::block: every subscriber checks that it reads exactly 1..total.
// Returns the seconds of the timed part, first start to last finish.
double topic_stream(std::int64_t n, int subs, Sleeps& sleeps) {
  Shared<Ctrl> c;
  run_topic(
      n, subs, sleet::Overflow::block, *c, sleeps,
      [&](Worker& w, sleet::Topic<Seq>& topic, Seq warm, Seq total) {
        for (Seq i = 1; i <= total; ++i) {
          if (i == warm + 1) w.start();
          topic.publish(i);
        }
        w.finish(static_cast<std::uint64_t>(n));
      },
      [&](Worker& w, sleet::Subscriber<Seq>& sub, Seq warm, Seq total) {
        for (Seq i = 1; i <= total; ++i) {
          if (i == warm + 1) w.start();
          if (const Seq v = sub.receive(); v != i) mismatch("topic stream", v, i);
        }
        w.finish(static_cast<std::uint64_t>(n));
        if (sub.lost() != 0) throw std::runtime_error("topic stream: lost messages under Overflow::block");
      });
  return span_s(*c, 0, 1 + subs);
}

void BM_Topic_Stream1(benchmark::State& state) {
  Sleeps sleeps;
  sleet_bench::run_batches(state, [&](std::int64_t n) { return topic_stream(n, 1, sleeps); });
  sleeps.report(state);
}
// n delivered messages: n/4 published, read by each of 4 subscribers.
void BM_Topic_Stream4(benchmark::State& state) {
  Sleeps sleeps;
  sleet_bench::run_batches(state, [&](std::int64_t n) {
    const std::int64_t published = (n + 3) / 4;
    return topic_stream(published, 4, sleeps) * static_cast<double>(n) / static_cast<double>(4 * published);
  });
  sleeps.report(state);
}

// Overflow::overwrite: worker 0 publishes and closes the topic; each
// subscriber reads until closed and checks that what it got is increasing,
// ends at the last message, and that got + lost() is every message.
// Returns the publisher's seconds only.
double topic_overwrite(std::int64_t n, int subs, Sleeps& sleeps) {
  Shared<Ctrl> c;
  run_topic(
      n, subs, sleet::Overflow::overwrite, *c, sleeps,
      [&](Worker& w, sleet::Topic<Seq>& topic, Seq warm, Seq total) {
        for (Seq i = 1; i <= warm; ++i) topic.publish(i);
        w.start();  // every subscriber has read the warm-up
        for (Seq i = warm + 1; i <= total; ++i) topic.publish(i);
        w.finish(static_cast<std::uint64_t>(n));
        topic.close();
      },
      [&](Worker& w, sleet::Subscriber<Seq>& sub, Seq warm, Seq total) {
        Seq last = 0, got = 0;
        auto take = [&](Seq v) {
          if (v <= last || v > total) mismatch("overwrite: out of order", v, last + 1);
          last = v;
          ++got;
        };
        while (last < warm) take(sub.receive());
        w.start();
        for (const Seq v : sub) take(v);  // until closed and drained
        w.finish(got);
        if (last != total) mismatch("overwrite: last message", last, total);
        if (got + sub.lost() != total) mismatch("overwrite: received + lost()", got + sub.lost(), total);
      });
  return span_s(*c, 0, 1);
}

template <int Subs>
void BM_Topic_Overwrite(benchmark::State& state) {
  Sleeps sleeps;
  sleet_bench::run_batches(state, [&](std::int64_t n) { return topic_overwrite(n, Subs, sleeps); });
  sleeps.report(state);
}

// ------------------------------------------------------- the round trips

// Opens `name` with the given spin budget.
Channel<Seq> open_channel(const std::string& name, std::chrono::nanoseconds spin) {
  auto ch = Channel<Seq>::open(name);
  ch.set_spin(spin);
  return ch;
}

// Two spsc channels, send()/receive() each way with spin budget `spin`.
double channel_round_trips(std::int64_t n, std::chrono::nanoseconds spin) {
  ScopedName ping("ping"), pong("pong");
  auto keep_ping = Channel<Seq>::create(ping.str(), spsc(spin));
  auto keep_pong = Channel<Seq>::create(pong.str(), spsc(spin));
  return round_trips(
      n,
      [&] {
        return [out = open_channel(ping.str(), spin), in = open_channel(pong.str(), spin)](Seq i) mutable {
          out.send(i);
          return in.receive() == i;
        };
      },
      [&] {
        return [in = open_channel(ping.str(), spin), out = open_channel(pong.str(), spin)](Seq i) mutable {
          const Seq v = in.receive();
          out.send(v);
          return v == i;
        };
      });
}

// Baseline of the WaitSet row: one channel each way, every wait a futex sleep.
void BM_Channel_RoundTripSleep(benchmark::State& state) {
  sleet_bench::run_batches(state, [](std::int64_t n) { return channel_round_trips(n, 0ns); });
}
// Baseline of the Service row: the spinning spsc round trip.
void BM_Channel_RoundTripSpin(benchmark::State& state) {
  sleet_bench::run_batches(state, [](std::int64_t n) { return channel_round_trips(n, sleet::kDefaultSpin); });
}

// Worker 0 pings seq i on channel i mod 8 and sleeps on the reply channel;
// worker 1 sleeps in a WaitSet over the 8 (spin 0) and checks the channel.
void BM_WaitSet_RoundTrip8(benchmark::State& state) {
  sleet_bench::run_batches(state, [](std::int64_t n) {
    std::vector<std::unique_ptr<ScopedName>> names;
    std::vector<Channel<Seq>> keep;
    for (int k = 0; k <= kWaitChannels; ++k) {  // the 8, then the reply channel
      names.push_back(std::make_unique<ScopedName>("ws"));
      keep.push_back(Channel<Seq>::create(names.back()->str(), spsc(0ns)));
    }
    auto open_all = [&] {
      std::vector<Channel<Seq>> chs;
      for (const auto& name : names) chs.push_back(open_channel(name->str(), 0ns));
      return chs;
    };
    return round_trips(
        n,
        [&] {
          return [chs = open_all()](Seq i) mutable {
            chs[i % kWaitChannels].send(i);
            return chs[kWaitChannels].receive() == i;
          };
        },
        [&] {
          struct Answer {
            std::vector<Channel<Seq>> chs;
            sleet::WaitSet ws{0ns};
            std::vector<sleet::WaitSet::Id> ids;
            bool operator()(Seq i) {
              for (;;) {
                for (const sleet::WaitSet::Id id : ws.wait()) {
                  const std::size_t k = static_cast<std::size_t>(
                      std::find(ids.begin(), ids.end(), id) - ids.begin());
                  if (k == ids.size()) throw std::runtime_error("WaitSet::wait(): an id that was never added");
                  if (const auto v = chs[k].try_receive()) {
                    chs[kWaitChannels].send(*v);
                    return *v == i && k == i % kWaitChannels;
                  }
                }
              }
            }
          };
          Answer a{open_all(), sleet::WaitSet(0ns), {}};
          for (int k = 0; k < kWaitChannels; ++k) a.ids.push_back(a.ws.add(a.chs[static_cast<std::size_t>(k)]));
          return a;
        });
  });
}

// The two ends of a kernel pipe, closed with the scope.
struct PipeFds {
  int fd[2] = {-1, -1};
  PipeFds() {
    if (::pipe(fd) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  }
  ~PipeFds() {
    for (int f : fd) ::close(f);
  }
  PipeFds(const PipeFds&) = delete;
  PipeFds& operator=(const PipeFds&) = delete;
};

void write_byte(int fd, unsigned char b) {
  while (::write(fd, &b, 1) != 1) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "pipe write");
  }
}
unsigned char read_byte(int fd) {
  unsigned char b = 0;
  for (;;) {
    const ssize_t k = ::read(fd, &b, 1);
    if (k == 1) return b;
    if (k == 0) throw std::runtime_error("pipe closed");
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "pipe read");
  }
}

// Baseline of the notify_fd row: 1-byte write/read each way.
void BM_Pipe_RoundTrip(benchmark::State& state) {
  sleet_bench::run_batches(state, [](std::int64_t n) {
    PipeFds ping, pong;
    return round_trips(
        n,
        [&] {
          return [&](Seq i) {
            write_byte(ping.fd[1], static_cast<unsigned char>(i));
            return read_byte(pong.fd[0]) == static_cast<unsigned char>(i);
          };
        },
        [&] {
          return [&](Seq i) {
            const unsigned char b = read_byte(ping.fd[0]);
            write_byte(pong.fd[1], b);
            return b == static_cast<unsigned char>(i);
          };
        });
  });
}

// Worker 1 serves the ping channel from an epoll loop on its notify_fd();
// worker 0 sleeps in receive() on the reply channel (spin 0).
void BM_NotifyFd_RoundTripEpoll(benchmark::State& state) {
  sleet_bench::run_batches(state, [](std::int64_t n) {
    ScopedName ping("ping"), pong("pong");
    auto keep_ping = Channel<Seq>::create(ping.str(), spsc(0ns));
    auto keep_pong = Channel<Seq>::create(pong.str(), spsc(0ns));
    return round_trips(
        n,
        [&] {
          return [out = open_channel(ping.str(), 0ns), in = open_channel(pong.str(), 0ns)](Seq i) mutable {
            out.send(i);
            return in.receive() == i;
          };
        },
        [&] {
          struct Answer {
            Channel<Seq> in, out;
            int ep = -1;
            Answer(Channel<Seq> i, Channel<Seq> o) : in(std::move(i)), out(std::move(o)), ep(::epoll_create1(EPOLL_CLOEXEC)) {
              if (ep < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
              epoll_event ev{};
              ev.events = EPOLLIN;
              if (::epoll_ctl(ep, EPOLL_CTL_ADD, in.notify_fd(), &ev) != 0) {
                throw std::system_error(errno, std::generic_category(), "epoll_ctl");
              }
            }
            Answer(Answer&& o) noexcept : in(std::move(o.in)), out(std::move(o.out)), ep(std::exchange(o.ep, -1)) {}
            ~Answer() {
              if (ep >= 0) ::close(ep);
            }
            // try_receive() first: an empty one re-arms the descriptor
            // (the drain after the previous message), then epoll_wait().
            bool operator()(Seq i) {
              for (;;) {
                if (const auto v = in.try_receive()) {
                  out.send(*v);
                  return *v == i;
                }
                epoll_event ev{};
                if (::epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR) {
                  throw std::system_error(errno, std::generic_category(), "epoll_wait");
                }
              }
            }
          };
          return Answer(open_channel(ping.str(), 0ns), open_channel(pong.str(), 0ns));
        });
  });
}

// Service<Seq, Seq>::call(i) answered with i + 1 (default spin budgets).
void BM_Service_Call(benchmark::State& state) {
  using Svc = sleet::Service<Seq, Seq>;
  sleet_bench::run_batches(state, [](std::int64_t n) {
    ScopedName name("svc", {"", ".reply.0"});  // the one client's reply channel
    auto keep = Svc::create(name.str());
    return round_trips(
        n,
        [&] {
          auto svc = Svc::open(name.str());
          if (!svc.wait_for_server(10s)) throw std::runtime_error("service: no server within 10 s");
          return [svc = std::move(svc)](Seq i) mutable { return svc.call(i) == i + 1; };
        },
        [&] {
          auto svc = Svc::open(name.str());
          if (svc.try_receive_request()) throw std::runtime_error("service: a request before any call");
          return [svc = std::move(svc)](Seq i) mutable {
            const sleet::Request<Seq> r = svc.receive_request();
            svc.reply(r, *r + 1);
            return *r == i;
          };
        });
  });
}

// ------------------------------------------------------------ the rows

std::vector<Comparison> comparisons() {
  const sleet_bench::Row channel_stream{"BM_Topic_Throughput/channel_spsc", BM_Channel_Stream, true};
  const sleet_bench::Row topic1{"BM_Topic_Throughput/1sub", BM_Topic_Stream1, true};
  return {
      {"Topic 1 pub -> 1 sub, 8 B, ns/msg, vs spsc Channel<uint64_t> (target: rate >= 0.7x)", channel_stream, topic1,
       1 / 0.7},
      {"Topic 1 pub -> 4 sub processes, ns per delivered msg, vs 1 sub (target: aggregate >= 2x)", topic1,
       {"BM_Topic_Throughput/4sub_per_delivered", BM_Topic_Stream4, true}, 0.5},
      {"Topic overwrite, publisher ns/publish with 8 subscribers vs 1 (target: does not grow)",
       {"BM_Topic_OverwritePublish/1sub", BM_Topic_Overwrite<1>, true},
       {"BM_Topic_OverwritePublish/8sub", BM_Topic_Overwrite<8>, true}, 1.2},
      {"WaitSet over 8 channels, wake-up round trip (spin 0) vs one channel's blocking round trip (spin 0)",
       {"BM_WaitSet_RoundTrip/channel_spin0", BM_Channel_RoundTripSleep, true},
       {"BM_WaitSet_RoundTrip/8ch_spin0", BM_WaitSet_RoundTrip8, true}, 1.2},
      {"notify_fd + epoll round trip vs pipe(2) round trip", {"BM_NotifyFd_RoundTrip/pipe", BM_Pipe_RoundTrip, true},
       {"BM_NotifyFd_RoundTrip/epoll", BM_NotifyFd_RoundTripEpoll, true}, 1.5},
      {"Service call, spinning server, vs spinning spsc Channel round trip",
       {"BM_Service_Call/spsc_round_trip", BM_Channel_RoundTripSpin, true},
       {"BM_Service_Call/service", BM_Service_Call, true}, 2.0},
  };
}

}  // namespace

int main(int argc, char** argv) {
  sleet_bench::remove_on_fatal_signals(g_cleanup);
  return sleet_bench::rounds_main(argc, argv, "patterns_bench", comparisons());
}
