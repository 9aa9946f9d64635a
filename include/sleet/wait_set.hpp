// sleet/wait_set.hpp — WaitSet: wait on many sources at once, Go-select
// style; and notify_fd(), a file descriptor for epoll / asio / libuv loops.
//
//   sleet::WaitSet ws;
//   const auto jobs = ws.add(jobs_channel);         // a channel's receiving side
//   const auto reply = ws.add(pipe_end);            // a pipe end
//   const auto ticks = ws.add(subscriber);          // a topic subscription
//   const auto stop = ws.add(stop_event);           // an Event (ready while set)
//   const auto mode = ws.add(store, "mode");        // a store key (ready once per change)
//   for (;;) {
//     for (sleet::WaitSet::Id id : ws.wait()) {     // or wait_for(timeout), try_wait()
//       if (id == jobs) while (auto j = jobs_channel.try_receive()) handle(*j);
//       ...
//     }
//   }
//
// wait() returns the ids of the sources that are ready, in id order, as a
// span valid until the next call. Ready means: a channel, pipe end or
// subscriber has a message waiting (or is closed, so that receive() would
// throw errc::closed); an Event is set; a key changed (set, erased,
// updated) since it was added or last reported. Readiness is a hint for
// sources other readers share: another receiver of an mpmc channel may
// take the message first, so handle a source with try_receive().
//
// Cost. If something is ready, wait() makes no system call. Otherwise it
// spins for its spin budget, then announces itself on every source (the
// eventcount protocol of futex.hpp: one atomic increment each), re-checks,
// and sleeps once for all of them with futex_waitv (Linux 5.16 and later;
// up to 128 sources). Without futex_waitv (ENOSYS), or beyond 128 sources,
// it sleeps on one source's word at a time in slices of kWaitSetSlice and
// re-checks all of them in between: still correct, but a wake-up may take
// up to one slice. A publisher pays a futex_wake only while a WaitSet is
// announced on its object.
//
// notify_fd() (on a WaitSet, a Channel, a Pipe end, a Subscriber): an
// eventfd that becomes readable when a source is ready. A watcher thread
// waits for the sources as wait() does and writes the descriptor; it
// re-arms (and the descriptor is cleared) when the owner finds nothing: a
// try_wait() (or a timed-out wait_for()) that returns no id, or a
// try_receive()/receive_batch() on the channel, pipe end or subscriber that
// returns nothing. So the loop is: when the descriptor is readable, call
// try_wait() (a WaitSet) or try_receive() (the others) until it returns
// nothing. Reading the descriptor yourself is allowed and not needed; a
// spare wake-up (readable, nothing there) can happen and is harmless.
// Senders pay nothing for a descriptor beyond the futex_wake they pay for
// any sleeping receiver.
//
// Threads: a WaitSet is used by one thread at a time. The sources are views
// of their own (a shared mapping each): the objects they were added from
// may be moved or destroyed. Ids stay valid until remove().
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "sleet/channel.hpp"
#include "sleet/event.hpp"
#include "sleet/kv_store.hpp"
#include "sleet/pipe.hpp"
#include "sleet/topic.hpp"
#include "sleet/detail/notifier.hpp"

namespace sleet {

class WaitSet {
 public:
  using Id = std::size_t;

  explicit WaitSet(std::chrono::nanoseconds spin = std::chrono::microseconds(20)) : spin_(spin) {}
  WaitSet(WaitSet&&) noexcept = default;
  WaitSet& operator=(WaitSet&&) noexcept = default;
  ~WaitSet();

  template <class T>
  Id add(Channel<T>& channel) {
    return add_source(detail::channel_source(channel.base()));
  }
  template <class T>
  Id add(Pipe<T>& end) {
    return add_source(detail::channel_source(end.receiving().base()));
  }
  template <class T>
  Id add(Subscriber<T>& subscriber) {
    return add_source(detail::subscriber_source(subscriber.base()));
  }
  Id add(const Event& event) { return add_source(event.wait_source()); }
  Id add(const KvStore& store, std::string_view key) { return add_source(store.wait_source(key)); }
  // False if `id` is not in the set.
  bool remove(Id id) noexcept;
  std::size_t size() const noexcept;

  // The ready sources' ids; blocks until there is at least one.
  std::span<const Id> wait();
  // Empty if none became ready within `timeout`.
  std::span<const Id> wait_for(std::chrono::nanoseconds timeout);
  // Without waiting (no system call).
  std::span<const Id> try_wait();

  // An eventfd readable while a source is ready (see the essay); owned by
  // the set. Sources added later are watched too.
  int notify_fd();

  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }

 private:
  Id add_source(detail::WaitSource s);
  std::span<const Id> wait_until(detail::Deadline deadline);
  void restart_notifier();

  std::vector<detail::WaitSource> sources_;  // by id; removed ones are empty
  std::vector<std::size_t> live_;            // ids of the sources in the set
  std::vector<detail::WaitSource> compact_;  // the live sources, in live_ order
  std::vector<std::size_t> ready_;           // indices into compact_
  std::vector<Id> result_;
  std::chrono::nanoseconds spin_;
  std::unique_ptr<detail::Notifier> notifier_;
};

}  // namespace sleet
