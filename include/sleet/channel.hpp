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
//   max_message_size (mpmc_ring.hpp).
//
// Two ways to receive, one per Channel object (mixing them is
// errc::wrong_mode):
// - active: receive(), try_receive(), receive_for(), range-for;
// - passive: on_receive(handler, filter) starts one dispatcher thread for
//   this object that offers each message to every handler whose filter
//   accepts it, in registration order (dispatcher.hpp). close() drains and
//   joins it; the destructor stops it after the message in hand.
//
// Blocking calls spin for the spin budget, then sleep on a futex
// (futex.hpp). The fast path of send is: claim, encode in place, one
// release store, one load of the receivers' eventcount.
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
#include <iterator>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "sleet/codec.hpp"
#include "sleet/detail/channel_base.hpp"
#include "sleet/detail/dispatcher.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"

namespace sleet {

template <class T>
class Pipe;

template <class T>
class Channel {
  static_assert(HasCodec<T>, "sleet::Channel<T>: no sleet::Codec<T> for this type");
  using C = Codec<T>;

 public:
  using value_type = T;

  Channel() = default;
  // Moving a Channel is not thread-safe (like any move).
  Channel(Channel&& other) noexcept
      : base_(std::move(other.base_)),
        mode_(other.mode_.load(std::memory_order_relaxed)),
        dispatcher_(other.dispatcher_.exchange(nullptr, std::memory_order_relaxed)) {}
  Channel& operator=(Channel&& other) noexcept {
    if (this != &other) {
      delete dispatcher_.exchange(nullptr, std::memory_order_relaxed);  // stop ours first
      base_ = std::move(other.base_);
      mode_.store(other.mode_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      dispatcher_.store(other.dispatcher_.exchange(nullptr, std::memory_order_relaxed),
                        std::memory_order_relaxed);
    }
    return *this;
  }
  ~Channel() { delete dispatcher_.load(std::memory_order_relaxed); }  // stops and joins it

  static Channel create(std::string_view name, const ChannelOptions& options = {}) {
    return Channel(detail::ChannelBase::create(name, options, type()));
  }
  static Channel open(std::string_view name) {
    return Channel(detail::ChannelBase::open(name, type()));
  }
  static Channel open_or_create(std::string_view name, const ChannelOptions& options = {}) {
    return Channel(detail::ChannelBase::open_or_create(name, options, type()));
  }
  static bool remove(std::string_view name) { return detail::ChannelBase::remove(name); }
  static detail::MessageType type() noexcept {
    return {detail::fingerprint<T>(C::name), detail::type_name<T>(), C::fixed_size};
  }

  // ---- sending ----

  // Blocks while the ring is full. Throws errc::closed, errc::too_large.
  void send(const T& value) {
    auto w = writer(value);
    if (base_.send_bytes_until(room(), w, detail::kForever) == detail::Poll::closed) {
      base_.throw_closed();
    }
  }
  // False if the ring is full. Throws errc::closed, errc::too_large.
  [[nodiscard]] bool try_send(const T& value) {
    auto w = writer(value);
    const detail::Poll p = base_.try_send_bytes(room(), w);
    if (SLEET_LIKELY(p == detail::Poll::ready)) return true;
    if (p == detail::Poll::closed) base_.throw_closed();
    base_.count_full();
    return false;
  }
  // False if the ring stayed full for `timeout`.
  [[nodiscard]] bool send_for(const T& value, std::chrono::nanoseconds timeout) {
    auto w = writer(value);
    const detail::Poll p = base_.send_bytes_until(room(), w, detail::deadline_after(timeout));
    if (p == detail::Poll::closed) base_.throw_closed();
    return p == detail::Poll::ready;
  }

  // ---- active receiving ----

  // Blocks while the ring is empty. Throws errc::closed once closed and
  // drained, errc::decode_failed, errc::wrong_mode in passive mode.
  T receive() {
    enter_active();
    T out{};
    auto r = reader(out);
    if (base_.receive_bytes_until(r, detail::kForever) == detail::Poll::closed) {
      base_.throw_closed();
    }
    return out;
  }
  [[nodiscard]] std::optional<T> try_receive() {
    enter_active();
    T out{};
    auto r = reader(out);
    const detail::Poll p = base_.try_receive_bytes(r);
    if (SLEET_UNLIKELY(p == detail::Poll::closed)) base_.throw_closed();
    if (p == detail::Poll::empty) return std::nullopt;
    return out;
  }
  [[nodiscard]] std::optional<T> receive_for(std::chrono::nanoseconds timeout) {
    enter_active();
    T out{};
    auto r = reader(out);
    const detail::Poll p = base_.receive_bytes_until(r, detail::deadline_after(timeout));
    if (p == detail::Poll::closed) base_.throw_closed();
    if (p == detail::Poll::empty) return std::nullopt;
    return out;
  }

  // Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Channel* ch) : ch_(ch) { next(); }
    const T& operator*() const { return *current_; }
    const T* operator->() const { return &*current_; }
    iterator& operator++() {
      next();
      return *this;
    }
    void operator++(int) { next(); }
    bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

   private:
    void next() {
      try {
        current_ = ch_->receive();
      } catch (const Error& e) {
        if (e.code() != errc::closed) throw;
        current_.reset();
      }
    }
    Channel* ch_ = nullptr;
    std::optional<T> current_;
  };
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

  // ---- both ----

  // Marks the channel closed for every process and wakes all sleepers; in
  // passive mode, waits until the dispatcher has drained the channel.
  void close() noexcept {
    base_.close();
    // acquire: as in dispatcher().
    if (auto* d = dispatcher_.load(std::memory_order_acquire)) d->join();
  }
  bool closed() const noexcept { return base_.closed(); }

  std::string_view name() const noexcept { return base_.name(); }
  Topology topology() const noexcept { return base_.topology(); }
  std::size_t capacity() const noexcept { return base_.capacity(); }
  std::size_t max_message_size() const noexcept { return base_.max_message_size(); }
  std::size_t size_approx() const noexcept { return base_.size_approx(); }
  ChannelStats stats() const noexcept { return base_.stats(); }
  std::chrono::nanoseconds spin() const noexcept { return base_.spin(); }
  // Busy-wait budget of this object's blocking calls (the segment keeps the
  // default). Set it before on_receive() for the dispatcher to use it.
  void set_spin(std::chrono::nanoseconds spin) noexcept { base_.set_spin(spin); }

  detail::ChannelBase& base() noexcept { return base_; }  // white-box tests, benchmarks

 private:
  friend class Pipe<T>;
  enum Mode : std::uint8_t { kNone, kActive, kPassive };

  explicit Channel(detail::ChannelBase base) : base_(std::move(base)) {}

  std::uint32_t room() const noexcept {
    return C::fixed_size ? static_cast<std::uint32_t>(C::fixed_size)
                         : static_cast<std::uint32_t>(base_.max_message_size());
  }
  // Fixed-size codecs encode straight into the claimed space. Variable-size
  // ones are measured first (into a per-thread buffer of max_message_size),
  // so a value that is too large is refused before anything is claimed;
  // the ring gets a plain copy.
  auto writer(const T& value) const {
    if constexpr (C::fixed_size != 0) {
      return [&value](std::byte* dst, std::size_t space) { return C::encode(value, dst, space); };
    } else {
      const std::size_t room = base_.max_message_size();
      std::byte* buf = detail::encode_buffer(room);
      const std::size_t n = C::encode(value, buf, room);
      if (SLEET_UNLIKELY(n > room)) base_.throw_too_large(n);
      return [buf, n](std::byte* dst, std::size_t) {
        std::memcpy(dst, buf, n);
        return n;
      };
    }
  }
  static auto reader(T& out) {
    return [&out](const std::byte* src, std::size_t size) { C::decode(src, size, out); };
  }
  void enter_active() {
    // relaxed: the mode is this object's own state; the CAS only keeps two
    // threads of one process from choosing different modes at once.
    std::uint8_t m = mode_.load(std::memory_order_relaxed);
    if (SLEET_LIKELY(m == kActive)) return;
    if (m == kNone && mode_.compare_exchange_strong(m, kActive, std::memory_order_relaxed)) return;
    if (m == kActive) return;
    base_.throw_wrong_mode("receive() on a channel object in passive mode (on_receive)");
  }
  void enter_passive() {
    std::uint8_t m = mode_.load(std::memory_order_relaxed);  // relaxed: as in enter_active()
    if (m == kPassive) return;
    if (m == kNone && mode_.compare_exchange_strong(m, kPassive, std::memory_order_relaxed)) return;
    if (m == kPassive) return;
    base_.throw_wrong_mode("on_receive() on a channel object that receives actively");
  }
  // Created once, under a process-wide lock, so two threads calling
  // on_receive() at once share one dispatcher.
  detail::Dispatcher<T>& dispatcher() {
    // acquire: pairs with the release below; the dispatcher is constructed.
    if (auto* d = dispatcher_.load(std::memory_order_acquire)) return *d;
    std::lock_guard<std::mutex> lock(detail::dispatcher_creation_mutex());
    auto* d = dispatcher_.load(std::memory_order_relaxed);  // relaxed: under the lock
    if (d == nullptr) {
      d = new detail::Dispatcher<T>(base_.share());
      dispatcher_.store(d, std::memory_order_release);
    }
    return *d;
  }

  detail::ChannelBase base_;
  std::atomic<std::uint8_t> mode_{kNone};
  std::atomic<detail::Dispatcher<T>*> dispatcher_{nullptr};  // owned
};

}  // namespace sleet
