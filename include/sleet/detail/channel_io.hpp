// sleet/detail/channel_io.hpp — the typed half of a channel, written once
// for every port: how a T is claimed, encoded, published, peeked, decoded
// and consumed, singly and in batches. Channel<T>, Pipe<T>, Loan<T> and the
// passive dispatcher all go through these functions.
//
// ChannelEnd holds a ChannelCore and the port of its ring, chosen when the
// channel is opened. visit() hands the port to a generic lambda: one
// well-predicted branch at the entry of a call, then that port's fast path,
// inlined (no virtual or indirect calls).
//
// Encoding (codec.hpp):
// - a codec that knows the size before encoding (Codec<T>::encoded_size:
//   trivially copyable types, strings, vectors of numbers) claims exactly
//   that size and encodes straight into the claimed space;
// - any other codec encodes in place where the port can offer room for
//   max_message_size (an mpmc slot always; an spsc ring when that room is
//   free up to the end of the array) and commits the size it wrote; else it
//   encodes into a per-thread buffer, then claims that exact size and copies.
// A value whose encoding exceeds max_message_size is errc::too_large and
// nothing of it is published.
//
// Batches: put() commits without publishing; the caller publishes once per
// call (send_batch: one publication and at most one wake-up, unless it had
// to wait for space midway). Receiving consumes record by record and
// releases once per call.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <utility>
#include <variant>

#include "sleet/codec.hpp"
#include "sleet/detail/channel_core.hpp"
#include "sleet/detail/mpmc_port.hpp"
#include "sleet/detail/spsc_port.hpp"

namespace sleet::detail {

class ChannelEnd {
 public:
  ChannelEnd() = default;
  explicit ChannelEnd(ChannelCore core) : core_(std::move(core)) {
    if (core_.topology() == Topology::spsc) {
      port_.emplace<SpscPort>(core_);
    } else {
      port_.emplace<MpmcPort>(core_);
    }
  }
  ChannelEnd(ChannelEnd&&) noexcept = default;
  // The port first: the old port gives its spsc roles back in memory that
  // the old core still maps (the default would replace the core first).
  ChannelEnd& operator=(ChannelEnd&& other) noexcept {
    port_ = std::move(other.port_);
    core_ = std::move(other.core_);
    return *this;
  }
  // A second view of the same channel, with its own spsc roles.
  ChannelEnd share() const {
    ChannelEnd e(core_.share());
    e.core_.set_spin(core_.spin());
    return e;
  }

  ChannelCore& core() noexcept { return core_; }
  const ChannelCore& core() const noexcept { return core_; }
  template <class F>
  SLEET_INLINE decltype(auto) visit(F&& f) {
    if (auto* s = std::get_if<SpscPort>(&port_)) return f(core_, *s);
    return f(core_, *std::get_if<MpmcPort>(&port_));
  }

  // White-box access (tests, benchmarks): the ring of the matching topology.
  SpscRing& spsc_ring() { return std::get<SpscPort>(port_).ring(); }
  MpmcRing& mpmc_ring() { return std::get<MpmcPort>(port_).ring(); }
  MpmcPort& mpmc_port() { return std::get<MpmcPort>(port_); }
  const Segment& segment() const noexcept { return core_.segment(); }
  Topology topology() const noexcept { return core_.topology(); }
  void close() noexcept { core_.close(); }

 private:
  ChannelCore core_;
  std::variant<MpmcPort, SpscPort> port_;
};

// A claim of either port (Loan<T> keeps one).
using AnyClaim = std::variant<SpscPort::Claim, MpmcPort::Claim>;

template <class T>
concept KnowsSize = requires(const T& v) {
  { Codec<T>::encoded_size(v) } -> std::convertible_to<std::size_t>;
};

// How long a claim or a peek may wait.
struct Wait {
  enum Kind { none, until, forever } kind;
  Deadline deadline;
  static Wait no() noexcept { return {none, Deadline{}}; }
  static Wait to(Deadline d) noexcept { return d == kForever ? Wait{forever, d} : Wait{until, d}; }
};

template <class Port>
SLEET_INLINE Poll claim_for(const auto& core, Port& port, std::uint32_t n, typename Port::Claim& c,
               Wait wait) {
  if (wait.kind == Wait::none) return port.try_claim(core, n, c);
  return port.claim_until(core, n, c, wait.deadline);
}

// Encodes `v` into a claim with room for `room` bytes; commits what it wrote
// or aborts the claim (and throws) if it does not fit or the codec throws.
template <class T, class Port>
SLEET_INLINE void encode_into(const auto& core, Port& port, const typename Port::Claim& c, const T& v,
                 std::size_t room) {
  std::size_t n;
  try {
    n = Codec<T>::encode(v, c.data(), room);
  } catch (...) {
    port.abort(c);
    throw;
  }
  if (SLEET_UNLIKELY(n > room)) {
    port.abort(c);
    core.throw_too_large(n);
  }
  port.commit(c, static_cast<std::uint32_t>(n));
}

// Claims room for `v`, encodes and commits it; the caller publishes.
template <class T, class Port>
SLEET_INLINE Poll put(const auto& core, Port& port, const T& v, Wait wait) {
  using C = Codec<T>;
  typename Port::Claim c;
  const std::uint32_t max = core.max_message_size();
  if constexpr (KnowsSize<T>) {
    const std::size_t n = C::encoded_size(v);
    if (SLEET_UNLIKELY(n > max)) core.throw_too_large(n);
    const Poll p = claim_for(core, port, static_cast<std::uint32_t>(n), c, wait);
    if (SLEET_UNLIKELY(p != Poll::ready)) return p;
    encode_into(core, port, c, v, n);
    return Poll::ready;
  } else {
    if constexpr (!Port::kFixedSlots) {
      const Poll p = port.try_claim_in_place(core, max, c);
      if (p == Poll::closed) return p;
      if (p == Poll::ready) {
        encode_into(core, port, c, v, max);
        return Poll::ready;
      }
      // No room for max_message_size at this position: measure, then claim
      // exactly what the value needs.
      std::byte* buf = encode_buffer(max);
      const std::size_t n = C::encode(v, buf, max);
      if (SLEET_UNLIKELY(n > max)) core.throw_too_large(n);
      const Poll q = claim_for(core, port, static_cast<std::uint32_t>(n), c, wait);
      if (q != Poll::ready) return q;
      std::memcpy(c.data(), buf, n);
      port.commit(c, static_cast<std::uint32_t>(n));
      return Poll::ready;
    } else {
      const Poll p = claim_for(core, port, max, c, wait);
      if (SLEET_UNLIKELY(p != Poll::ready)) return p;
      encode_into(core, port, c, v, max);
      return Poll::ready;
    }
  }
}

// One message: put() and publish().
template <class T, class Port>
SLEET_INLINE Poll send_one(const auto& core, Port& port, const T& v, Wait wait) {
  const Poll p = put(core, port, v, wait);
  if (SLEET_LIKELY(p == Poll::ready)) port.publish();
  return p;
}

// Up to items.size() messages, waiting per `wait` when the ring is full
// (none: stops at the first that does not fit). Returns how many were sent,
// or Poll::closed through `closed` if the channel was closed before the
// first. One publication at the end (and before any wait).
template <class T, class Port>
std::size_t send_many(const auto& core, Port& port, std::span<const T> items, Wait wait,
                      bool& closed) {
  std::size_t sent = 0;
  struct Publish {  // also when a codec throws midway: what was committed is sent
    Port& port;
    const std::size_t& sent;
    ~Publish() {
      if (sent != 0) port.publish();
    }
  } publish{port, sent};
  closed = false;
  for (const T& v : items) {
    Poll p = put(core, port, v, Wait::no());
    if (p == Poll::empty) {
      if (wait.kind == Wait::none) {
        core.count_full();
        break;
      }
      if (sent != 0) port.publish();  // the receiver drains while we wait
      p = put(core, port, v, wait);
    }
    if (p == Poll::closed) {
      closed = sent == 0;
      break;
    }
    if (p != Poll::ready) break;  // the deadline passed
    ++sent;
  }
  return sent;
}

// Decodes the peeked record into `out` and consumes it (even if decoding
// throws, so a bad record never blocks the ones behind it). The caller
// releases.
template <class T, class Port>
SLEET_INLINE void decode_record(const auto& core, Port& port, const typename Port::Record& r, T& out) {
  if (SLEET_UNLIKELY(Port::damaged(r))) {
    port.drop_damaged(r);
    core.throw_damaged("a record header is damaged (its length is out of bounds)");
  }
  struct Consume {
    Port& port;
    const typename Port::Record& r;
    ~Consume() { port.consume(r); }
  } consume{port, r};
  try {
    Codec<T>::decode(r.data(), r.size(), out);
  } catch (const Error& e) {
    if (e.code() == errc::decode_failed) core.rethrow_decode_failed(e);
    throw;
  }
}

template <class Port, class Stop>
SLEET_INLINE Poll peek_for(const auto& core, Port& port, typename Port::Record& r, Wait wait,
              Stop&& stop) {
  switch (wait.kind) {
    case Wait::none: return port.try_peek(core, r);
    case Wait::forever: return port.peek_forever(core, r);
    case Wait::until: break;
  }
  return port.peek_until(core, r, wait.deadline, stop);
}

struct NoStop {
  constexpr bool operator()() const noexcept { return false; }
};

// One message into `out`.
template <class T, class Port>
SLEET_INLINE Poll receive_one(const auto& core, Port& port, T& out, Wait wait) {
  typename Port::Record r;
  const Poll p = peek_for(core, port, r, wait, NoStop{});
  if (p != Poll::ready) return p;
  struct Release {
    Port& port;
    ~Release() { port.release(); }
  } release{port};
  decode_record(core, port, r, out);
  return Poll::ready;
}

// Waits per `wait` for a first message (a dispatcher passes a stop
// condition, and Wait::until with kForever so that stop() is polled), then
// calls fn(const T&) for it and for every message already queued, up to
// `max`; releases once. Poll::closed only if the channel is closed and
// drained before the first.
template <class T, class Port, class Fn, class Stop = NoStop>
Poll receive_many(const auto& core, Port& port, Fn& fn, std::size_t max, Wait wait,
                  std::size_t& count, Stop&& stop = {}) {
  count = 0;
  if (max == 0) return Poll::empty;
  max = std::min(max, port.batch_limit());  // "already queued": at most one ring's worth
  typename Port::Record r;
  Poll p = wait.kind == Wait::none ? port.try_peek(core, r)
                                   : port.peek_until(core, r, wait.deadline, stop);
  if (p != Poll::ready) return p;
  std::size_t consumed = 0;
  struct Release {
    Port& port;
    const std::size_t& consumed;
    ~Release() {
      if (consumed != 0) port.release();
    }
  } release{port, consumed};
  T value{};
  for (;;) {
    if (!Port::damaged(r)) ++consumed;
    decode_record(core, port, r, value);
    ++count;
    fn(static_cast<const T&>(value));
    if (count == max || stop() || !port.peek_next(r)) break;
  }
  return Poll::ready;
}

}  // namespace sleet::detail
