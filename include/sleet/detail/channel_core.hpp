// sleet/detail/channel_core.hpp — what every channel has whatever its ring:
// the segment, the label errors use, the options, the close protocol and the
// spsc role claims. The rings are driven by ports (spsc_port.hpp,
// mpmc_port.hpp), chosen once when the channel is opened.
//
// Layout of one channel inside a segment, at `offset` from the object start
// (0 for a Channel; a Pipe holds two, one per direction):
//
//   +0    ChannelConfig   topology, capacity, max_message_size, spin budget
//   +128  SpscControl or MpmcControl, then the ring's array; both control
//         blocks keep RingCommon at their offset 128, so the core finds the
//         close flag, eventcounts and counters without asking which ring.
//
// Closing is two-phase (ring_common.hpp): close() refuses new sends, makes
// sure no send that passed its check is still publishing (spsc: it waits
// for the sender's in_send word; mpmc: the closed bit in the ticket counter
// fixes the final ticket and receivers drain up to it), then lets receivers
// report closed once drained.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "sleet/channel_options.hpp"
#include "sleet/detail/messaging_core.hpp"
#include "sleet/detail/mpmc_ring.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/ring_common.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/detail/spsc_ring.hpp"
#include "sleet/error.hpp"

namespace sleet::detail {

struct ChannelConfig {
  std::uint32_t topology;
  std::uint32_t reserved;
  std::uint64_t capacity;
  std::uint64_t max_message_size;
  std::int64_t spin_ns;
  std::byte pad[kFalseSharing - 32];
};
static_assert(sizeof(ChannelConfig) == kFalseSharing);
// The core finds RingCommon at the same offset in either control block.
inline constexpr std::size_t kRingCommonOffset = kFalseSharing;
static_assert(offsetof(SpscControl, common) == kRingCommonOffset);
static_assert(offsetof(MpmcControl, common) == kRingCommonOffset);


// Options resolved and validated: everything needed to lay a channel out.
struct ChannelLayout {
  Topology topology;
  std::uint64_t capacity;
  std::uint64_t max_message_size;
  std::int64_t spin_ns;
  std::uint64_t ring_units;  // spsc: bytes of the array; mpmc: slots
  std::uint64_t bytes;       // config + control + array, a multiple of 128

  // Throws errc::invalid_argument / too_large naming `what`.
  static ChannelLayout resolve(const ChannelOptions& options, const MessageType& type,
                               std::string_view what);
  // Creator only, before the segment is published.
  void initialize(std::byte* at) const;
  // Validates a channel found at `at` with `limit` bytes available; returns
  // its size in bytes. Throws errc::not_sleet / too_large naming `what`.
  static std::uint64_t check(const std::byte* at, std::uint64_t limit, const MessageType& type,
                             std::string_view what);
};

// Reads the counters of the channel laid out at `at` (its ChannelConfig),
// which check() has accepted: a racy snapshot that needs only read access,
// so the registry can use it on a read-only mapping.
ChannelStats read_channel_stats(const std::byte* at) noexcept;
// Whether close() has begun on the channel at `at` (same conditions).
bool read_channel_closed(const std::byte* at) noexcept;

class ChannelCore : public MessagingCore {
 public:
  ChannelCore() = default;
  ChannelCore(Segment seg, std::size_t offset, std::string label);
  ChannelCore(ChannelCore&&) noexcept = default;
  ChannelCore& operator=(ChannelCore&&) noexcept = default;

  static ChannelCore create(std::string_view name, const ChannelOptions& options,
                            const MessageType& type);
  static ChannelCore open(std::string_view name, const MessageType& type);
  static ChannelCore open_or_create(std::string_view name, const ChannelOptions& options,
                                    const MessageType& type);
  // Removes a channel (or, with `kind`, a pipe); see remove_segment().
  static bool remove(std::string_view name, SegmentKind kind = SegmentKind::channel);

  // A second view of the same channel (a dispatcher's, a pipe end's).
  ChannelCore share() const;

  Topology topology() const noexcept { return topology_; }
  std::size_t capacity() const noexcept { return capacity_; }
  ChannelStats stats() const noexcept { return read_channel_stats(config()); }
  std::size_t size_approx() const noexcept {
    const ChannelStats s = stats();
    return s.queued;
  }
  // The ring's control block (SpscControl or MpmcControl).
  void* ring() const noexcept { return seg_.object() + offset_ + sizeof(ChannelConfig); }
  std::uint64_t serial() const noexcept { return serial_; }

  // The two-phase close (see the essay). Idempotent, any process.
  void close() const noexcept;
  // Whether close() has begun: sends are refused from then on.
  bool closed() const noexcept { return common().refuses_sends(); }

  // Takes an spsc role for this object unless a live holder (another
  // process, or another object of this one) has it (errc::busy). Returns
  // the token: this process's identity.
  std::uint64_t claim_role(SpscRole& role, const char* what) const;

 private:
  const std::byte* config() const noexcept { return seg_.object() + offset_; }

  std::size_t offset_ = 0;
  Topology topology_ = Topology::mpmc;
  std::uint64_t capacity_ = 0;
  std::uint64_t serial_ = 0;  // this object's id within its process (role tokens)
};

// The pid a role token was taken under.
inline int token_pid(std::uint64_t token) noexcept { return identity_pid(token); }
// Gives an spsc role back if `token` (from claim_role by the object with
// `serial`) holds it and was taken in this process (not by our parent
// before a fork()).
void release_role(SpscRole& role, std::uint64_t token, std::uint64_t serial) noexcept;

}  // namespace sleet::detail
