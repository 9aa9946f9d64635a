// sleet/pipe.hpp — Pipe<T>: two connected ends; each sends to and receives
// from the other, like multiprocessing.Pipe(duplex=True).
//
//   auto [a, b] = sleet::Pipe<Msg>::create("calc");   // or, in another process:
//   auto b = sleet::Pipe<Msg>::open("calc", sleet::End::b);
//   a.send(request);  Msg reply = a.receive();
//
// One segment of kind `pipe` holds two spsc channels (channel_core.hpp):
//
//   +0           channel a->b   (config, SpscControl, array)
//   +bytes(a->b) channel b->a
//
// An end sends on one and receives on the other, with the whole Channel
// family: send/try_send/send_for, send_batch/try_send_batch, loans,
// receive/try_receive/receive_for, receive_batch, range-for, on_receive
// (passive mode), close. Each direction is spsc, so each end may
// be used by one process at a time (a second one gets errc::busy).
#pragma once

#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>
#include <string_view>
#include <utility>

#include "sleet/channel.hpp"

namespace sleet {

enum class End { a, b };

namespace detail {
// Creates the pipe segment; returns views of a->b and b->a.
std::pair<ChannelCore, ChannelCore> create_pipe(std::string_view name,
                                                const ChannelOptions& options,
                                                const MessageType& type);
std::pair<ChannelCore, ChannelCore> open_pipe(std::string_view name, const MessageType& type);
}  // namespace detail

template <class T>
class Pipe {
 public:
  Pipe() = default;

  // Creates the pipe and returns its two ends (a, b). Options apply to both
  // directions; the topology is always spsc.
  static std::pair<Pipe, Pipe> create(std::string_view name, const ChannelOptions& options = {}) {
    auto [ab, ba] = detail::create_pipe(name, options, Channel<T>::type());
    detail::ChannelCore ab2 = ab.share();
    detail::ChannelCore ba2 = ba.share();
    return {Pipe(End::a, std::move(ab), std::move(ba)), Pipe(End::b, std::move(ba2), std::move(ab2))};
  }
  // Attaches one end of an existing pipe.
  static Pipe open(std::string_view name, End end) {
    auto [ab, ba] = detail::open_pipe(name, Channel<T>::type());
    return end == End::a ? Pipe(End::a, std::move(ab), std::move(ba))
                         : Pipe(End::b, std::move(ba), std::move(ab));
  }
  static bool remove(std::string_view name) {
    return detail::ChannelCore::remove(name, detail::SegmentKind::pipe);
  }

  void send(const T& v) { tx_.send(v); }
  [[nodiscard]] bool try_send(const T& v) { return tx_.try_send(v); }
  [[nodiscard]] bool send_for(const T& v, std::chrono::nanoseconds t) { return tx_.send_for(v, t); }

  void send_batch(std::span<const T> v) { tx_.send_batch(v); }
  [[nodiscard]] std::size_t try_send_batch(std::span<const T> v) { return tx_.try_send_batch(v); }
  Loan<T> loan()
    requires std::is_trivially_copyable_v<T>
  {
    return tx_.loan();
  }
  [[nodiscard]] std::optional<Loan<T>> try_loan()
    requires std::is_trivially_copyable_v<T>
  {
    return tx_.try_loan();
  }
  [[nodiscard]] std::optional<Loan<T>> loan_for(std::chrono::nanoseconds t)
    requires std::is_trivially_copyable_v<T>
  {
    return tx_.loan_for(t);
  }

  T receive() { return rx_.receive(); }
  [[nodiscard]] std::optional<T> try_receive() { return rx_.try_receive(); }
  [[nodiscard]] std::optional<T> receive_for(std::chrono::nanoseconds t) {
    return rx_.receive_for(t);
  }
  template <class Fn>
  std::size_t receive_batch(Fn&& fn, std::size_t max = std::numeric_limits<std::size_t>::max()) {
    return rx_.receive_batch(std::forward<Fn>(fn), max);
  }
  template <class Fn>
  std::size_t receive_batch_for(Fn&& fn, std::size_t max, std::chrono::nanoseconds t) {
    return rx_.receive_batch_for(std::forward<Fn>(fn), max, t);
  }
  auto begin() { return rx_.begin(); }
  std::default_sentinel_t end() const noexcept { return {}; }

  template <class Handler, class Filter = AcceptAll>
  void on_receive(Handler handler, Filter filter = {}) {
    rx_.on_receive(std::move(handler), std::move(filter));
  }
  void on_error(ErrorHandler handler) { rx_.on_error(std::move(handler)); }
  std::uint64_t unhandled() const noexcept { return rx_.unhandled(); }

  // Closes both directions for both ends.
  void close() noexcept {
    tx_.close();
    rx_.close();
  }
  bool closed() const noexcept { return tx_.closed() && rx_.closed(); }

  // The receiving side's descriptor (Channel::notify_fd()).
  int notify_fd() { return rx_.notify_fd(); }
  // The two directions as channels (a WaitSet waits on receiving()).
  Channel<T>& receiving() noexcept { return rx_; }
  Channel<T>& sending() noexcept { return tx_; }

  End which() const noexcept { return end_; }
  std::string_view name() const noexcept { return tx_.name(); }
  ChannelStats send_stats() const noexcept { return tx_.stats(); }
  ChannelStats receive_stats() const noexcept { return rx_.stats(); }
  void set_spin(std::chrono::nanoseconds spin) noexcept {
    tx_.set_spin(spin);
    rx_.set_spin(spin);
  }

 private:
  Pipe(End end, detail::ChannelCore tx, detail::ChannelCore rx)
      : end_(end), tx_(std::move(tx)), rx_(std::move(rx)) {}

  End end_ = End::a;
  Channel<T> tx_;
  Channel<T> rx_;
};

}  // namespace sleet
