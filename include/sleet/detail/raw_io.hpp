// sleet/detail/raw_io.hpp — a channel or topic as encoded bytes, for code
// that moves messages without knowing their C++ type (the NATS bridge).
//
//   auto type = sleet::detail::MessageType{fp, "Tick", 0};   // from inspect_object()
//   RawReader in = RawReader::open_topic("ticks", type);      // a subscription
//   RawBytes m;
//   if (in.receive_for(m, 50ms)) ...                          // m.bytes: the codec's encoding
//   RawWriter out = RawWriter::open_channel("jobs", type);
//   out.send_for(m, 50ms);
//
// An object is opened with the fingerprint the caller names (the segment
// checks it as for Channel<T>::open: errc::type_mismatch naming both
// types), so the bytes read are exactly what a Channel<T>/Topic<T> of that
// type wrote, and the bytes written are what one of its readers decodes.
// Nothing here decodes: a writer trusts the caller that the bytes are an
// encoding of the named type (the bridge checks the fingerprint each
// message carries before it writes).
//
// Reading and writing go through channel_io.hpp with Codec<RawBytes> (a
// byte copy), so the ports, waits and wake-ups are the typed ones.
//
// Threads: as for the typed objects, one thread at a time per reader or
// writer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "sleet/codec.hpp"
#include "sleet/detail/channel_io.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/messaging_core.hpp"
#include "sleet/detail/topic_core.hpp"

namespace sleet::detail {

// One message as its codec encoded it.
struct RawBytes {
  std::vector<std::byte> bytes;
};

}  // namespace sleet::detail

namespace sleet {

template <>
struct Codec<detail::RawBytes> {
  static constexpr std::string_view name = "raw-bytes";  // never a segment's fingerprint
  static constexpr std::size_t fixed_size = 0;
  static std::size_t encoded_size(const detail::RawBytes& v) noexcept { return v.bytes.size(); }
  static std::size_t encode(const detail::RawBytes& v, std::byte* out, std::size_t capacity) noexcept {
    if (capacity >= v.bytes.size() && !v.bytes.empty()) std::memcpy(out, v.bytes.data(), v.bytes.size());
    return v.bytes.size();
  }
  static void decode(const std::byte* in, std::size_t size, detail::RawBytes& out) {
    out.bytes.assign(in, in + size);
  }
};

}  // namespace sleet

namespace sleet::detail {

// Receives from a channel (takes each message from the queue, competing
// with its other receivers) or a topic (one subscription: sees everything
// published after open).
class RawReader {
 public:
  RawReader() = default;
  static RawReader open_channel(std::string_view name, const MessageType& type) {
    RawReader r;
    r.channel_.emplace(ChannelEnd(ChannelCore::open(name, type)));
    return r;
  }
  static RawReader open_topic(std::string_view name, const MessageType& type) {
    RawReader r;
    TopicCore core = TopicCore::open(name, type);
    SubscriberPort port(core, From::next);
    r.topic_.emplace(TopicSide{std::move(core), std::move(port)});
    return r;
  }

  // True with a message in `out`; false when `timeout` passed. Throws
  // errc::closed once the object is closed and drained.
  bool receive_for(RawBytes& out, std::chrono::nanoseconds timeout) {
    const Wait wait = Wait::to(deadline_after(timeout));
    Poll p;
    const MessagingCore* core;
    if (channel_) {
      core = &channel_->core();
      p = channel_->visit([&](auto& c, auto& port) { return receive_one(c, port, out, wait); });
    } else {
      core = &topic_->core;
      p = receive_one(topic_->core, topic_->port, out, wait);
    }
    if (p == Poll::closed) core->throw_closed();
    return p == Poll::ready;
  }
  // Messages a topic subscription skipped under overwrite (0 for a channel).
  std::uint64_t lost() const noexcept { return topic_ ? topic_->port.lost() : 0; }
  // Wakes this reader if it sleeps in receive_for() (another thread may call it).
  void wake() const noexcept {
    if (channel_) channel_->core().wake_receivers();
    if (topic_) topic_->core.wake_receivers();
  }

 private:
  struct TopicSide {
    TopicCore core;
    SubscriberPort port;
  };
  std::optional<ChannelEnd> channel_;
  std::optional<TopicSide> topic_;
};

// Sends to a channel or publishes to a topic.
class RawWriter {
 public:
  RawWriter() = default;
  static RawWriter open_channel(std::string_view name, const MessageType& type) {
    RawWriter w;
    w.channel_.emplace(ChannelEnd(ChannelCore::open(name, type)));
    return w;
  }
  static RawWriter open_topic(std::string_view name, const MessageType& type) {
    RawWriter w;
    TopicCore core = TopicCore::open(name, type);
    PublisherPort port(core);
    w.topic_.emplace(TopicSide{std::move(core), std::move(port)});
    return w;
  }

  // True when sent; false when the ring stayed full until `timeout` (0: do
  // not wait). Throws errc::closed, errc::too_large (nothing sent).
  bool send_for(const RawBytes& m, std::chrono::nanoseconds timeout) {
    const Wait wait = timeout.count() <= 0 ? Wait::no() : Wait::to(deadline_after(timeout));
    Poll p;
    const MessagingCore* core;
    if (channel_) {
      core = &channel_->core();
      p = channel_->visit([&](auto& c, auto& port) { return send_one(c, port, m, wait); });
    } else {
      core = &topic_->core;
      p = send_one(topic_->core, topic_->port, m, wait);
    }
    if (p == Poll::closed) core->throw_closed();
    if (p != Poll::ready) core->count_full();
    return p == Poll::ready;
  }

 private:
  struct TopicSide {
    TopicCore core;
    PublisherPort port;
  };
  std::optional<ChannelEnd> channel_;
  std::optional<TopicSide> topic_;
};

}  // namespace sleet::detail
