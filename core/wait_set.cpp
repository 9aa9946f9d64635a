// WaitSet, the sources it waits on, and the watcher thread behind
// notify_fd() (wait_set.hpp).
#include "sleet/wait_set.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "system.hpp"

namespace sleet {
namespace detail {

// ---- sources ----

WaitSource channel_source(const ChannelEnd& end) {
  auto view = std::make_shared<ChannelEnd>(end.share());
  WaitSource s;
  s.word = &view->core().common().data_ec.epoch;
  s.waiters = &view->core().common().data_ec.waiters;
  s.ready = [](WaitSource& self) noexcept {
    auto* e = static_cast<ChannelEnd*>(self.keep.get());
    return e->visit([](auto&, auto& port) { return port.has_data(); });
  };
  s.keep = std::move(view);
  return s;
}

namespace {
struct SubscriptionView {
  TopicCore core;
  std::uint64_t index;
};
}  // namespace

WaitSource subscriber_source(const SubscriberEnd& end) {
  const SubscriberPort& port = const_cast<SubscriberEnd&>(end).port();
  if (!port.subscribed()) {
    throw_error(errc::wrong_mode, end.core().label(),
                "a passive subscriber (on_receive) cannot be waited on: its dispatcher receives");
  }
  auto view = std::make_shared<SubscriptionView>(SubscriptionView{end.core().share(), port.index()});
  WaitSource s;
  s.word = &view->core.common().data_ec.epoch;
  s.waiters = &view->core.common().data_ec.waiters;
  s.ready = [](WaitSource& self) noexcept {
    auto* v = static_cast<SubscriptionView*>(self.keep.get());
    const BroadcastRing& ring = v->core.ring();
    // acquire: the subscriber's release (6) of its cursor after a receive.
    const std::uint64_t c = ring.entry(v->index).cursor.load(std::memory_order_acquire);
    if (c >= kCursorPending) return false;
    // relaxed: a hint; the subscriber's peek reads the slot with acquire (4).
    return ring.slot(c).seq.load(std::memory_order_relaxed) >= BroadcastRing::holds(c) ||
           v->core.closed();
  };
  s.keep = std::move(view);
  return s;
}

// ---- waiting ----

namespace {

void collect(std::span<WaitSource> sources, std::vector<std::size_t>& ready) {
  ready.clear();
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].ready(sources[i])) ready.push_back(i);
  }
}

}  // namespace

bool wait_sources(std::span<WaitSource> sources, Deadline deadline, std::chrono::nanoseconds spin,
                  std::vector<std::size_t>& ready, std::atomic<std::uint32_t>* wake,
                  std::uint32_t wake_seen) {
  // acquire (wake): pairs with the release bump of the Notifier's control word.
  auto woken = [&] { return wake != nullptr && wake->load(std::memory_order_acquire) != wake_seen; };
  collect(sources, ready);
  if (!ready.empty() || woken()) return true;
  if (spin.count() > 0) {
    const Deadline spin_end = std::min(deadline, Clock::now() + spin);
    for (unsigned i = 1;; ++i) {
      if (i <= kPureSpinTries) {
        cpu_relax();
      } else {
        yield_cpu();  // the publisher may be waiting for this CPU
      }
      collect(sources, ready);
      if (!ready.empty() || woken()) return true;
      if (((i & 63) == 0 || i > kPureSpinTries) && Clock::now() >= spin_end) break;
    }
  }
  std::vector<FutexWaitItem> items(sources.size() + (wake ? 1 : 0));
  for (;;) {
    if (deadline != kForever && Clock::now() >= deadline) return false;
    // The eventcount protocol of futex.hpp, on every source at once:
    // announce (1), read the word (2), heavy_fence, re-check, sleep.
    for (std::size_t i = 0; i < sources.size(); ++i) {
      // relaxed: ordered before the re-check by heavy_fence(); pairs with
      // the publisher's load of the count after its light_fence().
      sources[i].waiters->fetch_add(1, std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < sources.size(); ++i) {
      // acquire: a bump we read comes with the publication before it.
      items[i] = {sources[i].word, sources[i].word->load(std::memory_order_acquire)};
    }
    if (wake) items.back() = {wake, wake_seen};
    heavy_fence();
    collect(sources, ready);
    if (ready.empty() && !woken()) {
      WaitvResult r = WaitvResult::unsupported;
      if (items.size() <= kMaxWaitv) r = futex_waitv(items.data(), items.size(), deadline);
      if (r == WaitvResult::unsupported) {
        // One word at a time, a slice each (see the essay).
        const Deadline slice = std::min(deadline, Clock::now() + kWaitSetSlice);
        futex_wait(items.front().word, items.front().expected, slice);
      }
      collect(sources, ready);
    }
    for (auto& s : sources) {
      // relaxed: a late decrement only costs a publisher a spare wake.
      s.waiters->fetch_sub(1, std::memory_order_relaxed);
    }
    if (!ready.empty() || woken()) return true;
  }
}

// ---- Notifier ----

struct Notifier::Thread {
  std::thread t;
  std::mutex mutex;  // guards next and changed (set_sources() -> the watcher)
  std::vector<WaitSource> next;
  bool changed = false;
};

Notifier::Notifier(std::vector<WaitSource> sources) : sources_(std::move(sources)) {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) throw_errno(errno, "notify_fd", "eventfd()");
  thread_ = std::make_unique<Thread>();
  thread_->t = std::thread([this] { run(); });
}

Notifier::~Notifier() {
  // release: pairs with the acquire loads in run().
  stop_.store(true, std::memory_order_release);
  control_.fetch_add(1, std::memory_order_release);
  futex_wake(&control_, 1);
  if (thread_->t.joinable()) thread_->t.join();
  ::close(fd_);
}

void Notifier::rearm() noexcept {
  std::uint64_t v;
  (void)!::read(fd_, &v, sizeof v);  // clears the descriptor (EAGAIN if already clear)
  // acq_rel: the watcher sees the descriptor cleared before it looks again
  // (release); we see its disarm (acquire). Only a disarmed watcher needs
  // the wake.
  if (!armed_.exchange(true, std::memory_order_acq_rel)) {
    control_.fetch_add(1, std::memory_order_release);  // release: pairs with run()'s acquire
    futex_wake(&control_, 1);
  }
}

void Notifier::set_sources(std::vector<WaitSource> sources) {
  {
    std::lock_guard<std::mutex> lock(thread_->mutex);
    thread_->next = std::move(sources);
    thread_->changed = true;
  }
  control_.fetch_add(1, std::memory_order_release);  // release: the watcher looks again
  futex_wake(&control_, 1);
}

void Notifier::run() noexcept {
  std::vector<std::size_t> ready;
  // acquire (both): pair with the release stores in rearm() and ~Notifier().
  auto stopping = [this] { return stop_.load(std::memory_order_acquire); };
  while (!stopping()) {
    const std::uint32_t seen = control_.load(std::memory_order_acquire);
    {
      std::lock_guard<std::mutex> lock(thread_->mutex);
      if (thread_->changed) {
        sources_ = std::move(thread_->next);
        thread_->changed = false;
      }
    }
    if (!armed_.load(std::memory_order_acquire)) {
      futex_wait(&control_, seen, kForever);  // until rearm() or stop
      continue;
    }
    if (sources_.empty()) {
      futex_wait(&control_, seen, kForever);
      continue;
    }
    if (!wait_sources(sources_, kForever, std::chrono::nanoseconds(0), ready, &control_, seen)) continue;
    if (stopping() || ready.empty()) continue;  // woken by rearm() or stop: look again
    // Disarm, then write: a rearm() in between reads nothing and re-arms;
    // the write then makes the owner look once more (a spare wake-up, never
    // a descriptor left readable with nobody to clear it: every rearm()
    // reads it).
    armed_.store(false, std::memory_order_release);  // release: pairs with rearm()'s exchange
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  }
}

}  // namespace detail

// ---- WaitSet ----

WaitSet::~WaitSet() = default;

WaitSet::Id WaitSet::add_source(detail::WaitSource s) {
  const Id id = sources_.size();
  sources_.push_back(std::move(s));
  live_.push_back(id);
  compact_.push_back(sources_.back());
  restart_notifier();
  return id;
}

bool WaitSet::remove(Id id) noexcept {
  if (id >= sources_.size() || !sources_[id]) return false;
  sources_[id] = {};
  const auto it = std::find(live_.begin(), live_.end(), id);
  compact_.erase(compact_.begin() + (it - live_.begin()));
  live_.erase(it);
  try {
    restart_notifier();
  } catch (...) {
  }
  return true;
}

std::size_t WaitSet::size() const noexcept { return live_.size(); }

std::span<const WaitSet::Id> WaitSet::wait() { return wait_until(detail::kForever); }

std::span<const WaitSet::Id> WaitSet::wait_for(std::chrono::nanoseconds timeout) {
  return wait_until(detail::deadline_after(timeout));
}

std::span<const WaitSet::Id> WaitSet::try_wait() {
  detail::collect(compact_, ready_);
  if (ready_.empty() && notifier_) notifier_->rearm();  // the owner found nothing: re-arm
  result_.clear();
  for (std::size_t i : ready_) {
    result_.push_back(live_[i]);
    if (compact_[i].reported) compact_[i].reported(compact_[i]);
  }
  return result_;
}

std::span<const WaitSet::Id> WaitSet::wait_until(detail::Deadline deadline) {
  result_.clear();
  if (compact_.empty()) {
    if (deadline == detail::kForever) {
      throw Error(errc::invalid_argument, "WaitSet: wait() on an empty set would never return");
    }
    std::this_thread::sleep_until(deadline);
    return result_;
  }
  if (!detail::wait_sources(compact_, deadline, spin_, ready_)) {
    if (notifier_) notifier_->rearm();
    return result_;
  }
  for (std::size_t i : ready_) {
    result_.push_back(live_[i]);
    if (compact_[i].reported) compact_[i].reported(compact_[i]);
  }
  return result_;
}

int WaitSet::notify_fd() {
  if (!notifier_) notifier_ = std::make_unique<detail::Notifier>(compact_);
  return notifier_->fd();
}

void WaitSet::restart_notifier() {
  // The watcher has its own copy of the sources: give it the new list.
  if (notifier_) notifier_->set_sources(compact_);
}

}  // namespace sleet
