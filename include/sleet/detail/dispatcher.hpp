// sleet/detail/dispatcher.hpp — the thread behind a channel's passive mode.
//
// The first on_receive() of a Channel object starts one Dispatcher. It
// receives on its own view of the channel (ChannelEnd::share(), so it holds
// the spsc receiver role by itself) and offers every message to each
// registered handler whose filter accepts it, in registration order. It
// drains in batches (receive_many(), up to kDispatchBatch messages per
// release of their space).
//
// Invariants
// - Handlers may be added while the thread runs: the list is copied on
//   write and published under `mutex_`; the thread takes a new snapshot when
//   `version_` moved, so the hot loop takes no lock.
// - An exception from a filter, a handler, or a record that does not decode
//   goes to the error handler (default: one line on stderr naming the
//   channel) and the loop goes on.
// - Every message the thread takes is either offered to the handlers or
//   counted in `unhandled` (no filter accepted it). stop() lets the message
//   in hand finish, then ends the loop; on close() the loop drains what was
//   sent before it ends (close() joins it). A damaged spsc record ends the
//   loop after it is reported once.
//
// Synchronization
// - `stop_` is stored with release before the receivers' eventcount is
//   bumped; the thread's acquire load sees it on its next attempt.
// - `version_` is bumped with release after the new list is in place; the
//   thread's acquire load pairs with it (and takes the mutex to copy the
//   shared_ptr anyway).
#pragma once

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "sleet/codec.hpp"
#include "sleet/detail/channel_io.hpp"

namespace sleet {

// Called with the exception a handler, a filter or a decode threw.
using ErrorHandler = std::function<void(std::exception_ptr)>;

struct AcceptAll {
  template <class T>
  constexpr bool operator()(const T&) const noexcept {
    return true;
  }
};

namespace detail {

// Guards the creation of a Channel's dispatcher (a cold path).
std::mutex& dispatcher_creation_mutex();

// End: the receiving object it drains, with visit(f(core, port)) and
// core() (ChannelEnd for channels and pipes, SubscriberEnd for topics).
template <class T, class End = ChannelEnd>
class Dispatcher {
 public:
  using Handler = std::function<void(const T&)>;
  using Filter = std::function<bool(const T&)>;

  // Messages taken per batch: enough to amortise the release and the
  // wake-up, few enough that the sender gets its space back soon.
  static constexpr std::size_t kDispatchBatch = 64;

  explicit Dispatcher(End end) : base_(std::move(end)) {}
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;
  ~Dispatcher() { stop(); }

  // Takes the receiving role first (spsc), so errc::busy reaches the
  // caller instead of the thread.
  void add(Handler handler, Filter filter) {
    base_.visit([](auto& core, auto& port) { port.take_receiver_role(core); });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto next = std::make_shared<Entries>(*entries_);
      next->push_back({std::move(handler), std::move(filter)});
      entries_ = std::move(next);
      // release: the new list is in place before the thread sees the bump.
      version_.fetch_add(1, std::memory_order_release);
    }
    std::call_once(started_, [this] { thread_ = std::thread([this] { run(); }); });
  }

  void set_error_handler(ErrorHandler handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::move(handler);
    version_.fetch_add(1, std::memory_order_release);  // release: as in add()
  }

  // Ends the loop after the message in hand and joins the thread.
  void stop() noexcept {
    // release: pairs with the acquire in the thread's stop check.
    stop_.store(true, std::memory_order_release);
    base_.core().wake_receivers();
    join();
  }
  // Waits until the thread has drained a closed channel. In the child of a
  // fork() the thread does not exist (only its handle was copied), and from
  // inside a handler it is this thread: then the handle is let go instead.
  void join() noexcept {
    if (!thread_.joinable()) return;
    if (owner_pid_ != current_pid() || thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  std::uint64_t unhandled() const noexcept {
    return unhandled_.load(std::memory_order_relaxed);  // relaxed: a statistic
  }
  std::uint64_t dispatched() const noexcept {
    return dispatched_.load(std::memory_order_relaxed);  // relaxed: a statistic
  }

 private:
  struct Entry {
    Handler handler;
    Filter filter;
  };
  using Entries = std::vector<Entry>;

  void run() noexcept {
    std::shared_ptr<const Entries> entries;
    ErrorHandler on_error;
    std::uint64_t seen_version = ~std::uint64_t{0};
    // acquire: pairs with the release in stop().
    auto stopping = [this] { return stop_.load(std::memory_order_acquire); };
    auto refresh = [&] {
      // acquire: pairs with the release bump in add()/set_error_handler().
      const std::uint64_t v = version_.load(std::memory_order_acquire);
      if (v == seen_version) return;
      std::lock_guard<std::mutex> lock(mutex_);
      entries = entries_;
      on_error = error_;
      seen_version = v;
    };
    std::uint64_t accepted_count = 0;
    std::uint64_t unhandled_count = 0;
    auto offer = [&](const T& value) {
      refresh();  // one acquire load unless handlers changed
      bool accepted = false;
      for (const Entry& e : *entries) {
        try {
          if (!e.filter(value)) continue;
          accepted = true;
          e.handler(value);
        } catch (...) {
          report(on_error, std::current_exception());
        }
      }
      ++(accepted ? accepted_count : unhandled_count);
    };
    // A Wait::until with no deadline: sleeps as long as needed, but polls
    // stop() and never takes a ticket it might not use.
    const Wait wait{Wait::until, kForever};
    while (!stopping()) {
      refresh();
      Poll p;
      std::size_t n = 0;
      try {
        p = base_.visit([&](auto& core, auto& port) {
          return receive_many<T>(core, port, offer, kDispatchBatch, wait, n, stopping);
        });
      } catch (...) {
        refresh();  // an on_error set just before this message applies to it
        report(on_error, std::current_exception());
        p = Poll::ready;
        // A damaged spsc header cannot be stepped over: reporting it again
        // and again would spin. The dispatcher ends (active receives keep
        // reporting it).
        if (base_.visit([](auto&, auto& port) { return port.stuck_on_damage(); })) p = Poll::closed;
      }
      // relaxed (both): statistics, published once per batch.
      if (accepted_count != 0) dispatched_.fetch_add(std::exchange(accepted_count, 0), std::memory_order_relaxed);
      if (unhandled_count != 0) unhandled_.fetch_add(std::exchange(unhandled_count, 0), std::memory_order_relaxed);
      if (p != Poll::ready) break;  // closed and drained, or stopping
    }
  }

  void report(const ErrorHandler& on_error, std::exception_ptr e) const noexcept {
    try {
      if (on_error) {
        on_error(e);
        return;
      }
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      // Decode errors already start with the label; don't say it twice.
      const std::string& label = base_.core().label();
      const char* what = ex.what();
      if (std::strncmp(what, label.c_str(), label.size()) == 0) {
        std::fprintf(stderr, "sleet: passive receive failed: %s\n", what);
      } else {
        std::fprintf(stderr, "sleet: %s: passive receive failed: %s\n", label.c_str(), what);
      }
    } catch (...) {
      std::fprintf(stderr, "sleet: %s: passive receive failed: unknown exception\n",
                   base_.core().label().c_str());
    }
  }

  End base_;
  std::mutex mutex_;
  std::shared_ptr<const Entries> entries_ = std::make_shared<Entries>();
  ErrorHandler error_;
  std::atomic<std::uint64_t> version_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> unhandled_{0};
  std::atomic<std::uint64_t> dispatched_{0};
  std::once_flag started_;
  std::thread thread_;
  int owner_pid_ = current_pid();  // the process that started thread_
};

}  // namespace detail
}  // namespace sleet
