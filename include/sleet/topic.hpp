// sleet/topic.hpp — Topic<T> and Subscriber<T>: publish/subscribe between
// processes. Every subscriber, in every process, sees every message
// published after it subscribed, in publication order, exactly once.
//
//   auto ticks = sleet::Topic<Tick>::create("ticks", {.capacity = 4096});
//   ticks.publish({42, 9.5});                     // any number of publishing processes
//
//   auto sub = sleet::Topic<Tick>::open("ticks").subscribe();   // in each reader
//   Tick t = sub.receive();                       // blocks; try_receive(), receive_for()
//   sub.on_receive([](const Tick& t) { ... }, [](const Tick& t) { return t.id > 10; });
//   for (const Tick& t : sub) ...                 // until the topic is closed and drained
//   sub.lost();                                   // what overwrite made this subscriber miss
//
// Overflow (TopicOptions::overflow), chosen at creation:
// - block: a publisher waits (publish), fails (try_publish) or times out
//   (publish_for) while the slowest live subscriber is a whole ring behind.
//   Nothing is ever lost. A subscriber whose process died is found by the
//   publisher it holds back (within kReapPeriod) and its place reclaimed.
// - overwrite: a publisher never waits for subscribers and never reads
//   their cursors, so publishing costs the same with 1 or 64 of them. A
//   subscriber that falls a ring behind skips to the oldest message still
//   held and counts the gap in lost().
//
// A topic with no subscribers drops what is published (a subscriber sees
// what comes after it subscribed; From::oldest also hands it what the ring
// still holds). More than max_subscribers live subscribers at once is
// errc::full. close() (any process) refuses later publishes; subscribers
// drain what was published before it, then receive() throws errc::closed.
//
// Layout and protocol: broadcast_ring.hpp. Messages are encoded as in a
// channel (codec.hpp, channel_io.hpp): in place in the slot under block,
// through a staging buffer under overwrite (where a lagging reader may be
// copying the slot while it is rewritten).
//
// Threads: a Topic object publishes from one thread at a time (it caches
// the slowest cursor), and a Subscriber is used by one thread at a time.
// Open one Topic object per publishing thread; subscribe once per reader.
// A Subscriber belongs to the process that subscribed: in a fork()ed child,
// subscribe again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <memory>
#include <vector>

#include "sleet/codec.hpp"
#include "sleet/detail/channel_io.hpp"
#include "sleet/detail/dispatcher.hpp"
#include "sleet/detail/receive_iterator.hpp"
#include "sleet/detail/notifier.hpp"
#include "sleet/detail/topic_core.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"
#include "sleet/topic_options.hpp"

namespace sleet {

template <class T>
class Topic;

namespace detail {

// What a Subscriber's dispatcher drains (dispatcher.hpp's End).
class SubscriberEnd {
 public:
  SubscriberEnd() = default;
  SubscriberEnd(TopicCore core, SubscriberPort port) : core_(std::move(core)), port_(std::move(port)) {}
  SubscriberEnd(SubscriberEnd&&) noexcept = default;
  // The port first: the old subscription is given back in memory that the
  // old core still maps.
  SubscriberEnd& operator=(SubscriberEnd&& other) noexcept {
    port_ = std::move(other.port_);
    core_ = std::move(other.core_);
    return *this;
  }
  TopicCore& core() noexcept { return core_; }
  const TopicCore& core() const noexcept { return core_; }
  SubscriberPort& port() noexcept { return port_; }
  template <class F>
  SLEET_INLINE decltype(auto) visit(F&& f) {
    return f(core_, port_);
  }

 private:
  TopicCore core_;
  SubscriberPort port_;
};

}  // namespace detail

template <class T>
class Subscriber {
  static_assert(HasCodec<T>, "sleet::Subscriber<T>: no sleet::Codec<T> for this type");
  using Wait = detail::Wait;
  using Poll = detail::Poll;

 public:
  using value_type = T;

  Subscriber() = default;
  Subscriber(Subscriber&& o) noexcept
      : end_(std::move(o.end_)),
        entry_(std::exchange(o.entry_, nullptr)),
        passive_(o.passive_),
        dispatcher_(std::exchange(o.dispatcher_, nullptr)),
        notifier_(std::move(o.notifier_)) {}
  Subscriber& operator=(Subscriber&& o) noexcept {
    if (this != &o) {
      delete dispatcher_;
      end_ = std::move(o.end_);
      entry_ = std::exchange(o.entry_, nullptr);
      passive_ = o.passive_;
      dispatcher_ = std::exchange(o.dispatcher_, nullptr);
      notifier_ = std::move(o.notifier_);
    }
    return *this;
  }
  ~Subscriber() { delete dispatcher_; }  // stops and joins it; the port unsubscribes

  // Blocks until a message is published. Throws errc::closed once the topic
  // is closed and drained, errc::decode_failed (the message is consumed),
  // errc::wrong_mode after on_receive().
  T receive() {
    T out{};
    if (receive_into(out, Wait::to(detail::kForever)) != Poll::ready) closed_error();
    return out;
  }
  [[nodiscard]] std::optional<T> try_receive() {
    T out{};
    const Poll p = receive_into(out, Wait::no());
    if (SLEET_UNLIKELY(p == Poll::closed)) closed_error();
    if (p == Poll::empty) {
      if (SLEET_UNLIKELY(notifier_ != nullptr)) notifier_->rearm();
      return std::nullopt;
    }
    return out;
  }
  [[nodiscard]] std::optional<T> receive_for(std::chrono::nanoseconds timeout) {
    T out{};
    const Poll p = receive_into(out, Wait::to(detail::deadline_after(timeout)));
    if (p == Poll::closed) closed_error();
    if (p == Poll::empty) return std::nullopt;
    return out;
  }
  // Calls fn(const T&) for up to `max` messages already published, without
  // blocking; returns how many (as Channel::receive_batch).
  template <class Fn>
  std::size_t receive_batch(Fn&& fn, std::size_t max = std::numeric_limits<std::size_t>::max()) {
    return receive_many(fn, max, Wait::no());
  }
  template <class Fn>
  std::size_t receive_batch_for(Fn&& fn, std::size_t max, std::chrono::nanoseconds timeout) {
    return receive_many(fn, max, Wait{Wait::until, detail::deadline_after(timeout)});
  }

  using iterator = detail::ReceiveIterator<Subscriber>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // Passive mode: a dispatcher thread offers every message to each handler
  // whose filter accepts it (dispatcher.hpp). From then on this object does
  // not receive actively (errc::wrong_mode).
  template <class Handler, class Filter = AcceptAll>
  void on_receive(Handler handler, Filter filter = {}) {
    dispatcher().add(typename Dispatcher::Handler(std::move(handler)),
                     typename Dispatcher::Filter(std::move(filter)));
  }
  void on_error(ErrorHandler handler) { dispatcher().set_error_handler(std::move(handler)); }
  std::uint64_t unhandled() const noexcept { return dispatcher_ ? dispatcher_->unhandled() : 0; }
  // Waits until the dispatcher has drained a closed topic (passive mode).
  void join() noexcept {
    if (dispatcher_ != nullptr) dispatcher_->join();
  }

  // An eventfd readable while messages are waiting (Channel::notify_fd()).
  int notify_fd() {
    if (!notifier_) {
      std::vector<detail::WaitSource> sources;
      sources.push_back(detail::subscriber_source(end_));
      notifier_ = std::make_unique<detail::Notifier>(std::move(sources));
    }
    return notifier_->fd();
  }

  // Messages this subscriber skipped because overwrite lapped it.
  std::uint64_t lost() const noexcept {
    // relaxed: a statistic, written by this subscriber's own thread.
    return entry_ ? entry_->lost.load(std::memory_order_relaxed) : 0;
  }
  std::string_view name() const noexcept { return end_.core().name(); }
  bool closed() const noexcept { return end_.core().closed(); }
  TopicStats stats() const noexcept { return end_.core().stats(); }
  void set_spin(std::chrono::nanoseconds spin) noexcept { end_.core().set_spin(spin); }

  detail::SubscriberEnd& base() noexcept { return end_; }  // white-box tests, WaitSet

 private:
  friend class Topic<T>;
  using Dispatcher = detail::Dispatcher<T, detail::SubscriberEnd>;

  Subscriber(detail::TopicCore core, From from) {
    detail::SubscriberPort port(core, from);
    entry_ = &core.ring().entry(port.index());
    end_ = detail::SubscriberEnd(std::move(core), std::move(port));
  }

  [[noreturn]] void closed_error() const { end_.core().throw_closed(); }

  void enter_active() const {
    if (SLEET_UNLIKELY(passive_)) {
      end_.core().throw_wrong_mode("receive() on a subscriber in passive mode (on_receive)");
    }
  }
  Poll receive_into(T& out, Wait wait) {
    enter_active();
    return end_.visit([&](auto& core, auto& port) { return detail::receive_one(core, port, out, wait); });
  }
  template <class Fn>
  std::size_t receive_many(Fn& fn, std::size_t max, Wait wait) {
    enter_active();
    std::size_t n = 0;
    const Poll p = end_.visit(
        [&](auto& core, auto& port) { return detail::receive_many<T>(core, port, fn, max, wait, n); });
    if (p == Poll::closed) closed_error();
    if (n == 0 && notifier_ != nullptr) notifier_->rearm();
    return n;
  }
  // The subscription moves to the dispatcher's thread; this object keeps
  // a view of the topic for name(), stats() and lost().
  Dispatcher& dispatcher() {
    if (dispatcher_ == nullptr) {
      passive_ = true;
      dispatcher_ = new Dispatcher(
          detail::SubscriberEnd(end_.core().share(), std::move(end_.port())));
    }
    return *dispatcher_;
  }

  detail::SubscriberEnd end_;
  const detail::SubscriberEntry* entry_ = nullptr;
  bool passive_ = false;
  Dispatcher* dispatcher_ = nullptr;  // owned
  std::unique_ptr<detail::Notifier> notifier_;  // notify_fd()
};

template <class T>
class Topic {
  static_assert(HasCodec<T>, "sleet::Topic<T>: no sleet::Codec<T> for this type");
  using C = Codec<T>;
  using Wait = detail::Wait;
  using Poll = detail::Poll;

 public:
  using value_type = T;

  Topic() = default;
  Topic(Topic&&) noexcept = default;
  // The port first: the old port gives its publisher entry back in memory
  // that the old core still maps.
  Topic& operator=(Topic&& other) noexcept {
    port_ = std::move(other.port_);
    core_ = std::move(other.core_);
    return *this;
  }

  static Topic create(std::string_view name, const TopicOptions& options = {}) {
    return Topic(detail::TopicCore::create(name, options, type()));
  }
  static Topic open(std::string_view name) { return Topic(detail::TopicCore::open(name, type())); }
  static Topic open_or_create(std::string_view name, const TopicOptions& options = {}) {
    return Topic(detail::TopicCore::open_or_create(name, options, type()));
  }
  static bool remove(std::string_view name) { return detail::TopicCore::remove(name); }
  static detail::MessageType type() noexcept {
    return {detail::fingerprint<T>(C::name), detail::type_name<T>(), C::fixed_size};
  }

  // Blocks while the ring is full (block). Throws errc::closed, errc::too_large.
  void publish(const T& value) {
    if (put_one(value, Wait::to(detail::kForever)) != Poll::ready) closed_error();
  }
  // False if the slowest subscriber is a ring behind (block; never under overwrite).
  [[nodiscard]] bool try_publish(const T& value) {
    const Poll p = put_one(value, Wait::no());
    if (SLEET_LIKELY(p == Poll::ready)) return true;
    if (p == Poll::closed) closed_error();
    core_.count_full();
    return false;
  }
  [[nodiscard]] bool publish_for(const T& value, std::chrono::nanoseconds timeout) {
    const Poll p = put_one(value, Wait::to(detail::deadline_after(timeout)));
    if (p == Poll::closed) closed_error();
    return p == Poll::ready;
  }
  // Publishes every message (one wake-up of sleeping subscribers at the end,
  // or before a wait for space). Throws errc::closed if closed midway.
  void publish_batch(std::span<const T> values) {
    bool closed = false;
    const std::size_t n = detail::send_many(core_, port_, values, Wait::to(detail::kForever), closed);
    if (n != values.size()) closed_error();
  }

  // A new subscription; throws errc::full when max_subscribers live
  // subscribers exist.
  Subscriber<T> subscribe(From from = From::next) const { return Subscriber<T>(core_.share(), from); }

  // Refuses later publishes, in every process; subscribers drain, then
  // see errc::closed.
  void close() noexcept { core_.close(); }
  bool closed() const noexcept { return core_.closed(); }

  std::string_view name() const noexcept { return core_.name(); }
  std::size_t capacity() const noexcept { return core_.capacity(); }
  std::size_t max_message_size() const noexcept { return core_.max_message_size(); }
  std::size_t max_subscribers() const noexcept { return core_.max_subscribers(); }
  Overflow overflow() const noexcept { return core_.overflow(); }
  TopicStats stats() const noexcept { return core_.stats(); }
  void set_spin(std::chrono::nanoseconds spin) noexcept { core_.set_spin(spin); }

 private:
  explicit Topic(detail::TopicCore core) : core_(std::move(core)), port_(core_) {}

  [[noreturn]] void closed_error() const { core_.throw_closed(); }
  Poll put_one(const T& value, Wait wait) { return detail::send_one(core_, port_, value, wait); }

  detail::TopicCore core_;
  detail::PublisherPort port_;
};

}  // namespace sleet
