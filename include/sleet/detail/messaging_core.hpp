// sleet/detail/messaging_core.hpp — what every object that moves messages
// through a ring has, whatever the ring: its segment, the label its errors
// use ("channel 'jobs'", "topic 'ticks'"), the maximum message size, the
// spin budget of its blocking calls, the RingCommon block (close flag,
// eventcounts, slow-path counters: ring_common.hpp) and the errors the
// typed code (channel_io.hpp) throws. ChannelCore (channel_core.hpp) and
// TopicCore (topic_core.hpp) derive from it, so channel_io.hpp's functions
// serve both.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "sleet/detail/ring_common.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/error.hpp"

namespace sleet::detail {

// What the template tells the untyped code about its message type T.
struct MessageType {
  std::uint64_t fingerprint;
  std::string_view name;
  std::size_t fixed_size;  // 0 if variable
};

// Checks the options every message ring shares (capacity in [1,
// kMaxCapacity], a non-negative spin) and resolves max_message_size (0: the
// type's fixed size, or 256 for variable types), which must be within
// kMaxMessageSize and hold a fixed-size T. Throws errc::invalid_argument /
// too_large naming `what`.
std::uint64_t check_ring_options(std::uint64_t capacity, std::uint64_t max_message_size,
                                 std::chrono::nanoseconds spin, const MessageType& type,
                                 std::string_view what);

class MessagingCore {
 public:
  bool valid() const noexcept { return seg_.valid(); }
  std::string_view name() const noexcept { return seg_.name(); }
  // How errors name this object.
  const std::string& label() const noexcept { return label_; }
  std::uint32_t max_message_size() const noexcept { return max_size_; }
  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }
  RingCommon& common() const noexcept { return *common_; }
  const Segment& segment() const noexcept { return seg_; }  // white-box tests, registry

  // Wakes every receiver sleeping on this object (they re-check and, if
  // nothing changed, sleep again); used to stop a dispatcher thread.
  void wake_receivers() const noexcept { common_->data_ec.notify_slow(); }
  // A send found the ring full (stats).
  void count_full() const noexcept {
    common_->times_full.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats only
  }

  [[noreturn]] void throw_closed() const;
  [[noreturn]] void throw_too_large(std::size_t size) const;
  [[noreturn]] void throw_wrong_mode(std::string_view detail) const;
  [[noreturn]] void throw_damaged(std::string_view detail) const;
  // A decode_failed error from a codec, rethrown naming this object.
  [[noreturn]] void rethrow_decode_failed(const Error& e) const;

 protected:
  MessagingCore() = default;
  MessagingCore(Segment seg, std::string label, RingCommon* common, std::uint32_t max_size,
                std::chrono::nanoseconds spin)
      : seg_(std::move(seg)), label_(std::move(label)), common_(common), max_size_(max_size),
        spin_(spin) {}

  Segment seg_;
  std::string label_;
  RingCommon* common_ = nullptr;  // inside seg_'s mapping, which moves with it
  std::uint32_t max_size_ = 0;
  std::chrono::nanoseconds spin_{0};
};

}  // namespace sleet::detail
