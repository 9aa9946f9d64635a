// sleet/channel.hpp — Channel<T>: a named, typed message queue in shared
// memory that any process may open, send to and receive from.
//
//   auto jobs = sleet::Channel<Job>::create("jobs", {.capacity = 4096});
//   jobs.send(job);                          // blocks while full
//   if (auto j = other.receive_for(10ms)) …  // std::nullopt on timeout
//   for (const Job& j : other) …             // receives until closed
//   jobs.close();                            // receivers drain, then errc::closed
//
// T is anything with a Codec<T> (codec.hpp): trivially copyable types are
// copied raw, others (std::string, containers, user types) go through cereal.
//
// Topology is chosen at creation:
// - spsc: one sending and one receiving role holder (they may be the same
//   process). Records are variable-length and packed (spsc_ring.hpp). A
//   second live Channel object, in this or another process, that tries to
//   send (or receive) gets errc::busy instead of corrupting the ring; the
//   role passes on when its holder is destroyed or its process dies.
// - mpmc: any number of senders and receivers; fixed slots of
//   max_message_size (mpmc_ring.hpp). A process that dies holding a slot
//   (mid-send or mid-receive) holds nobody up: within about kRecoverAfter
//   (10 ms) of someone waiting on that slot it is taken back; its unfinished
//   send is skipped (stats().abandoned; that send() never returned) and a
//   message it had taken is counted in stats().lost.
//
// Two ways to receive, one per Channel object (mixing them is
// errc::wrong_mode):
// - active: receive(), try_receive(), receive_for(), range-for;
// - passive: on_receive(handler, filter) starts one dispatcher thread for
//   this object that offers each message to every handler whose filter
//   accepts it, in registration order (dispatcher.hpp). close() drains and
//   joins it; the destructor stops it after the message in hand.
//
// Batches and loans: send_batch()/try_send_batch() publish many messages at
// once (one publication, at most one wake-up); receive_batch() hands every
// queued message (up to a maximum) to a function and releases their space
// once; loan() gives a T constructed in the ring to fill and commit()
// (loan.hpp). The passive dispatcher drains in batches.
//
// Blocking calls spin for the spin budget, then sleep on a futex
// (futex.hpp). The fast path of send is: claim the encoded size, encode in
// place, one release store, one load of the receivers' eventcount
// (channel_io.hpp has the encoding rules).
//
// Errors: create/open/remove throw sleet::Error naming the channel. Full,
// empty and timeout come back as bool/std::optional. A closed channel
// throws errc::closed from send*, and from receive* once it is drained. A
// record that does not decode throws errc::decode_failed (it is consumed,
// so the next receive gets the next message); a value whose encoding is
// larger than max_message_size throws errc::too_large before anything is
// published.
//
// Threads: an mpmc Channel object may be shared by threads. For spsc, each
// role (sending, receiving) must be used by one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sleet/channel_options.hpp"
#include "sleet/codec.hpp"
#include "sleet/detail/channel_io.hpp"
#include "sleet/detail/dispatcher.hpp"
#include "sleet/detail/receive_iterator.hpp"
#include "sleet/detail/notifier.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"
#include "sleet/loan.hpp"

namespace sleet {

template <class T>
class Pipe;
template <class Req, class Resp>
class Service;

template <class T>
class Channel {
  static_assert(HasCodec<T>, "sleet::Channel<T>: no sleet::Codec<T> for this type");
  using C = Codec<T>;
  using Wait = detail::Wait;

 public:
  using value_type = T;

  Channel() = default;
  // Moving a Channel is not thread-safe (like any move).
  Channel(Channel&& other) noexcept
      : end_(std::move(other.end_)),
        mode_(other.mode_.load(std::memory_order_relaxed)),
        dispatcher_(other.dispatcher_.exchange(nullptr, std::memory_order_relaxed)),
        notifier_(std::move(other.notifier_)) {}
  Channel& operator=(Channel&& other) noexcept {
    if (this != &other) {
      delete dispatcher_.exchange(nullptr, std::memory_order_relaxed);  // stop ours first
      end_ = std::move(other.end_);
      mode_.store(other.mode_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      dispatcher_.store(other.dispatcher_.exchange(nullptr, std::memory_order_relaxed),
                        std::memory_order_relaxed);
      notifier_ = std::move(other.notifier_);
    }
    return *this;
  }
  ~Channel() { delete dispatcher_.load(std::memory_order_relaxed); }  // stops and joins it

  static Channel create(std::string_view name, const ChannelOptions& options = {}) {
    return Channel(detail::ChannelCore::create(name, options, type()));
  }
  static Channel open(std::string_view name) {
    return Channel(detail::ChannelCore::open(name, type()));
  }
  static Channel open_or_create(std::string_view name, const ChannelOptions& options = {}) {
    return Channel(detail::ChannelCore::open_or_create(name, options, type()));
  }
  static bool remove(std::string_view name) { return detail::ChannelCore::remove(name); }
  static detail::MessageType type() noexcept {
    return {detail::fingerprint<T>(C::name), detail::type_name<T>(), C::fixed_size};
  }

  // ---- sending ----

  // Blocks while the ring is full. Throws errc::closed, errc::too_large.
  SLEET_INLINE void send(const T& value) {
    const detail::Poll p = end_.visit([&](auto& core, auto& port) {
      return detail::send_one(core, port, value, Wait::to(detail::kForever));
    });
    if (SLEET_UNLIKELY(p != detail::Poll::ready)) closed_error();
  }
  // False if the ring is full. Throws errc::closed, errc::too_large.
  [[nodiscard]] SLEET_INLINE bool try_send(const T& value) {
    const detail::Poll p = end_.visit(
        [&](auto& core, auto& port) { return detail::send_one(core, port, value, Wait::no()); });
    if (SLEET_LIKELY(p == detail::Poll::ready)) return true;
    if (p == detail::Poll::closed) closed_error();
    end_.core().count_full();
    return false;
  }
  // False if the ring stayed full for `timeout`.
  [[nodiscard]] bool send_for(const T& value, std::chrono::nanoseconds timeout) {
    const auto wait = Wait::to(detail::deadline_after(timeout));
    const detail::Poll p = end_.visit(
        [&](auto& core, auto& port) { return detail::send_one(core, port, value, wait); });
    if (p == detail::Poll::closed) closed_error();
    return p == detail::Poll::ready;
  }

  // Sends every message, blocking while the ring is full: one publication
  // and at most one wake-up, unless it had to wait for space midway (then
  // what it has is published first). Throws errc::closed (messages before
  // the close are sent), errc::too_large (those before it are sent).
  void send_batch(std::span<const T> values) {
    bool closed = false;
    const std::size_t n = end_.visit([&](auto& core, auto& port) {
      return detail::send_many(core, port, values, Wait::to(detail::kForever), closed);
    });
    if (n != values.size()) closed_error();
  }
  // Sends what fits now, in order; returns how many (one publication).
  // Throws errc::closed if the channel is closed before the first.
  [[nodiscard]] std::size_t try_send_batch(std::span<const T> values) {
    bool closed = false;
    const std::size_t n = end_.visit([&](auto& core, auto& port) {
      return detail::send_many(core, port, values, Wait::no(), closed);
    });
    if (closed) closed_error();
    return n;
  }

  // A T in the ring to fill and commit() (loan.hpp); blocks while full.
  Loan<T> loan()
    requires std::is_trivially_copyable_v<T>
  {
    auto l = make_loan(Wait::to(detail::kForever));
    if (!l) closed_error();
    return std::move(*l);
  }
  [[nodiscard]] std::optional<Loan<T>> try_loan()
    requires std::is_trivially_copyable_v<T>
  {
    return make_loan(Wait::no());
  }
  [[nodiscard]] std::optional<Loan<T>> loan_for(std::chrono::nanoseconds timeout)
    requires std::is_trivially_copyable_v<T>
  {
    return make_loan(Wait::to(detail::deadline_after(timeout)));
  }

  // ---- active receiving ----

  // Blocks while the ring is empty. Throws errc::closed once closed and
  // drained, errc::decode_failed, errc::wrong_mode in passive mode.
  SLEET_INLINE T receive() {
    T out{};
    if (SLEET_UNLIKELY(receive_into(out, Wait::to(detail::kForever)) != detail::Poll::ready)) {
      closed_error();
    }
    return out;
  }
  [[nodiscard]] SLEET_INLINE std::optional<T> try_receive() {
    T out{};
    const detail::Poll p = receive_into(out, Wait::no());
    if (SLEET_UNLIKELY(p == detail::Poll::closed)) closed_error();
    if (p == detail::Poll::empty) {
      if (SLEET_UNLIKELY(notifier_ != nullptr)) notifier_->rearm();
      return std::nullopt;
    }
    return out;
  }
  [[nodiscard]] std::optional<T> receive_for(std::chrono::nanoseconds timeout) {
    T out{};
    const detail::Poll p = receive_into(out, Wait::to(detail::deadline_after(timeout)));
    if (p == detail::Poll::closed) closed_error();
    if (p == detail::Poll::empty) return std::nullopt;
    return out;
  }

  // Calls fn(const T&) for up to `max` messages already queued (on mpmc at
  // most one ring's worth per call), without blocking; returns how many. Their space is released (and a sleeping
  // sender woken) once per call. Throws errc::closed if the channel is
  // closed and drained, errc::decode_failed for a record that does not
  // decode (the messages before it were handed to fn; it is consumed). An
  // exception from fn passes on; the message it was given counts as taken.
  template <class Fn>
  std::size_t receive_batch(Fn&& fn, std::size_t max = std::numeric_limits<std::size_t>::max()) {
    return receive_many(fn, max, Wait::no());
  }
  // The same, but first waits up to `timeout` for a message (0 if none came).
  template <class Fn>
  std::size_t receive_batch_for(Fn&& fn, std::size_t max, std::chrono::nanoseconds timeout) {
    const Deadline d = detail::deadline_after(timeout);
    // Wait::until even for a huge timeout: receive_many never takes tickets it may not use.
    return receive_many(fn, max, Wait{Wait::until, d});
  }

  // Range-for: receives until the channel is closed and drained.
  using iterator = detail::ReceiveIterator<Channel>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // ---- passive receiving ----

  // Offers every message to `handler` if `filter(message)` is true. The
  // first call starts this object's dispatcher thread. Throws
  // errc::wrong_mode if this object receives actively.
  template <class Handler, class Filter = AcceptAll>
  void on_receive(Handler handler, Filter filter = {}) {
    enter_passive();
    dispatcher().add(typename detail::Dispatcher<T>::Handler(std::move(handler)),
                     typename detail::Dispatcher<T>::Filter(std::move(filter)));
  }
  // Where exceptions from handlers, filters and undecodable records go
  // (default: one line on stderr naming the channel).
  void on_error(ErrorHandler handler) {
    enter_passive();
    dispatcher().set_error_handler(std::move(handler));
  }
  // Messages the dispatcher took that no filter accepted.
  std::uint64_t unhandled() const noexcept {
    const auto* d = dispatcher_.load(std::memory_order_acquire);  // acquire: as in dispatcher()
    return d ? d->unhandled() : 0;
  }

  // An eventfd readable while messages are waiting, for epoll/asio/libuv
  // (wait_set.hpp has the protocol): once it is readable, try_receive()
  // until it returns nothing; that re-arms it. Owned by this object.
  int notify_fd() {
    if (!notifier_) {
      std::vector<detail::WaitSource> sources;
      sources.push_back(detail::channel_source(end_));
      notifier_ = std::make_unique<detail::Notifier>(std::move(sources));
    }
    return notifier_->fd();
  }

  // ---- both ----

  // Marks the channel closed for every process and wakes all sleepers; in
  // passive mode, waits until the dispatcher has drained the channel.
  void close() noexcept {
    end_.core().close();
    // acquire: as in dispatcher().
    if (auto* d = dispatcher_.load(std::memory_order_acquire)) d->join();
  }
  // Whether close() has begun (in any process): sends are refused from then
  // on; receivers still drain what was sent before.
  bool closed() const noexcept { return end_.core().closed(); }

  std::string_view name() const noexcept { return end_.core().name(); }
  Topology topology() const noexcept { return end_.core().topology(); }
  std::size_t capacity() const noexcept { return end_.core().capacity(); }
  std::size_t max_message_size() const noexcept { return end_.core().max_message_size(); }
  std::size_t size_approx() const noexcept { return end_.core().size_approx(); }
  ChannelStats stats() const noexcept { return end_.core().stats(); }
  std::chrono::nanoseconds spin() const noexcept { return end_.core().spin(); }
  // Busy-wait budget of this object's blocking calls (the segment keeps the
  // default). Set it before on_receive() for the dispatcher to use it.
  void set_spin(std::chrono::nanoseconds spin) noexcept { end_.core().set_spin(spin); }

  detail::ChannelEnd& base() noexcept { return end_; }  // white-box tests, benchmarks

 private:
  friend class Pipe<T>;
  template <class, class>
  friend class Service;  // its request ring lives inside its own segment
  using Deadline = detail::Deadline;
  enum Mode : std::uint8_t { kNone, kActive, kPassive };

  explicit Channel(detail::ChannelCore core) : end_(std::move(core)) {}
  explicit Channel(detail::ChannelEnd end) : end_(std::move(end)) {}

  [[noreturn]] void closed_error() const { end_.core().throw_closed(); }

  SLEET_INLINE detail::Poll receive_into(T& out, Wait wait) {
    enter_active();
    return end_.visit(
        [&](auto& core, auto& port) { return detail::receive_one(core, port, out, wait); });
  }
  template <class Fn>
  std::size_t receive_many(Fn& fn, std::size_t max, Wait wait) {
    enter_active();
    std::size_t n = 0;
    const detail::Poll p = end_.visit([&](auto& core, auto& port) {
      return detail::receive_many<T>(core, port, fn, max, wait, n);
    });
    if (p == detail::Poll::closed) closed_error();
    if (n == 0 && notifier_ != nullptr) notifier_->rearm();
    return n;
  }
  std::optional<Loan<T>> make_loan(Wait wait) {
    // A user Codec<T> with fixed_size 0 escapes the check at open.
    if (SLEET_UNLIKELY(sizeof(T) > end_.core().max_message_size())) end_.core().throw_too_large(sizeof(T));
    std::optional<Loan<T>> out;
    const detail::Poll p = end_.visit([&](auto& core, auto& port) {
      typename std::remove_reference_t<decltype(port)>::Claim c;
      const detail::Poll q = wait.kind == Wait::none
                                 ? port.try_loan(core, sizeof(T), c)
                                 : port.loan_until(core, sizeof(T), c, wait.deadline);
      if (q == detail::Poll::ready) out.emplace(Loan<T>(&end_, detail::AnyClaim(c), c.data()));
      return q;
    });
    if (p == detail::Poll::closed) closed_error();
    if (p == detail::Poll::empty && wait.kind == Wait::none) end_.core().count_full();
    return out;
  }
  SLEET_INLINE void enter_active() {
    // relaxed: the mode is this object's own state; the CAS only keeps two
    // threads of one process from choosing different modes at once.
    std::uint8_t m = mode_.load(std::memory_order_relaxed);
    if (SLEET_LIKELY(m == kActive)) return;
    if (m == kNone && mode_.compare_exchange_strong(m, kActive, std::memory_order_relaxed)) return;
    if (m == kActive) return;
    end_.core().throw_wrong_mode("receive() on a channel object in passive mode (on_receive)");
  }
  void enter_passive() {
    std::uint8_t m = mode_.load(std::memory_order_relaxed);  // relaxed: as in enter_active()
    if (m == kPassive) return;
    if (m == kNone && mode_.compare_exchange_strong(m, kPassive, std::memory_order_relaxed)) return;
    if (m == kPassive) return;
    end_.core().throw_wrong_mode("on_receive() on a channel object that receives actively");
  }
  // Created once, under a process-wide lock, so two threads calling
  // on_receive() at once share one dispatcher.
  detail::Dispatcher<T>& dispatcher() {
    // acquire: pairs with the release below; the dispatcher is constructed.
    if (auto* d = dispatcher_.load(std::memory_order_acquire)) return *d;
    std::lock_guard<std::mutex> lock(detail::dispatcher_creation_mutex());
    auto* d = dispatcher_.load(std::memory_order_relaxed);  // relaxed: under the lock
    if (d == nullptr) {
      d = new detail::Dispatcher<T>(end_.share());
      dispatcher_.store(d, std::memory_order_release);
    }
    return *d;
  }

  detail::ChannelEnd end_;
  std::atomic<std::uint8_t> mode_{kNone};
  std::atomic<detail::Dispatcher<T>*> dispatcher_{nullptr};  // owned
  std::unique_ptr<detail::Notifier> notifier_;               // notify_fd()
};

}  // namespace sleet
