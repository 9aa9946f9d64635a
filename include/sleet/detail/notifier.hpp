// sleet/detail/notifier.hpp — what notify_fd() and WaitSet share: the
// sources of the objects that can be waited on, the wait over many of them,
// and the watcher thread behind a notify descriptor (wait_set.hpp has the
// protocol and the costs).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/wait_source.hpp"

namespace sleet::detail {

class ChannelEnd;
class SubscriberEnd;

// How long a sleep lasts when futex_waitv cannot cover every source.
inline constexpr std::chrono::milliseconds kWaitSetSlice{1};
// Sources one futex_waitv call takes (the kernel's FUTEX_WAITV_MAX).
inline constexpr std::size_t kMaxWaitv = 128;

WaitSource channel_source(const ChannelEnd& end);
WaitSource subscriber_source(const SubscriberEnd& end);

// Waits until some source is ready (or `wake`, if given, changes from
// `wake_seen`); fills `ready` with their indices. Returns false at the
// deadline.
bool wait_sources(std::span<WaitSource> sources, Deadline deadline, std::chrono::nanoseconds spin,
                  std::vector<std::size_t>& ready, std::atomic<std::uint32_t>* wake = nullptr,
                  std::uint32_t wake_seen = 0);

// The watcher thread behind notify_fd(): writes an eventfd when a source is
// ready, then waits for rearm() before it looks again.
class Notifier {
 public:
  explicit Notifier(std::vector<WaitSource> sources);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;
  int fd() const noexcept { return fd_; }
  // The owner looked (and will look again when the descriptor is readable).
  void rearm() noexcept;
  // Replaces what the watcher waits for (a WaitSet changed).
  void set_sources(std::vector<WaitSource> sources);

 private:
  void run() noexcept;

  std::vector<WaitSource> sources_;
  int fd_ = -1;
  std::atomic<std::uint32_t> control_{0};  // futex word: bumped by rearm() and stop
  std::atomic<bool> armed_{true};
  std::atomic<bool> stop_{false};
  struct Thread;
  std::unique_ptr<Thread> thread_;
};

}  // namespace sleet::detail
