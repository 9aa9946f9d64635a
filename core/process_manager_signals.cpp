// ProcessManager: SIGINT/SIGTERM to the manager's process. One process-wide
// handler serves every manager that handles signals: it records the signal
// and writes each manager's eventfd; each supervisor then stops its
// children, and (exit_on_signal) removes its channels and raises the signal
// again with the disposition it had before the first manager.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <thread>
#include <vector>

#include "process_manager_impl.hpp"

namespace sleet {

namespace {

struct SignalState {
  std::mutex mutex;
  std::vector<const void*> managers;  // the Impls that handle signals
  struct sigaction old_int {};
  struct sigaction old_term {};
  // Read by the handler: each manager's eventfd + 1 (0: free slot).
  static constexpr int kSlots = 64;
  std::atomic<int> fds[kSlots] = {};
  std::atomic<int> last{0};             // the latest SIGINT/SIGTERM
  std::atomic<std::uint64_t> count{0};  // how many arrived: each manager acts once per new one
  std::atomic<int> in_handler{0};       // handlers running now (remove waits for 0)
};

SignalState& signals() {
  static SignalState* s = new SignalState;  // never destroyed: the handler may run at exit
  return *s;
}

extern "C" void sleet_manager_signal(int sig) {
  const int saved = errno;
  SignalState& s = signals();
  // seq_cst: ordered before the slot loads, against remove_signal_handlers(),
  // whose seq_cst slot CAS comes before its wait for in_handler to be 0.
  s.in_handler.fetch_add(1, std::memory_order_seq_cst);
  // relaxed: the eventfd write (below) / read (supervise()) pair orders them
  // for the supervisor's loads in new_signal().
  s.last.store(sig, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  for (auto& slot : s.fds) {
    const int v = slot.load(std::memory_order_relaxed);  // relaxed: a plain fd number
    if (v > 0 && ::write(v - 1, &one, sizeof one) < 0) {
      // Nothing to do in a handler: the eventfd is full or gone.
    }
  }
  // release: our eventfd writes are done; pairs with the acquire load in
  // remove_signal_handlers() before it lets the fd be closed.
  s.in_handler.fetch_sub(1, std::memory_order_release);
  errno = saved;
}

}  // namespace

void ProcessManager::Impl::install_signal_handlers() {
  SignalState& s = signals();
  // relaxed: only compared with later loads by this supervisor (new_signal()).
  signals_seen = s.count.load(std::memory_order_relaxed);
  if (!options.handle_signals) return;
  std::lock_guard lock(s.mutex);
  if (s.managers.empty()) {
    struct sigaction sa {};
    sa.sa_handler = &sleet_manager_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &s.old_int);
    ::sigaction(SIGTERM, &sa, &s.old_term);
  }
  s.managers.push_back(this);
  for (auto& slot : s.fds) {
    int expected = 0;
    // relaxed: the handler only needs some fd value, never data behind it.
    if (slot.compare_exchange_strong(expected, wake_fd + 1, std::memory_order_relaxed)) break;
  }
}

void ProcessManager::Impl::remove_signal_handlers() {
  if (!options.handle_signals) return;
  SignalState& s = signals();
  std::lock_guard lock(s.mutex);
  const auto it = std::find(s.managers.begin(), s.managers.end(), this);
  if (it == s.managers.end()) return;
  s.managers.erase(it);
  for (auto& slot : s.fds) {
    int expected = wake_fd + 1;
    // seq_cst: a handler that starts after this sees the slot empty; one
    // that started before is counted in in_handler (its seq_cst increment).
    if (slot.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) break;
  }
  // The caller closes the fd next: wait out a handler that may still write it.
  // acquire: pairs with the handler's release decrement.
  while (s.in_handler.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  if (s.managers.empty()) {
    ::sigaction(SIGINT, &s.old_int, nullptr);
    ::sigaction(SIGTERM, &s.old_term, nullptr);
  }
}

std::optional<int> ProcessManager::Impl::new_signal() {
  if (!options.handle_signals) return std::nullopt;
  SignalState& s = signals();
  // relaxed: written by the handler before its eventfd write, which the
  // supervisor's read of wake_fd has seen.
  const std::uint64_t n = s.count.load(std::memory_order_relaxed);
  if (n == signals_seen) return std::nullopt;
  signals_seen = n;
  return s.last.load(std::memory_order_relaxed);  // relaxed: as count
}

void ProcessManager::Impl::on_signal(int sig) {
  end_all();
  {
    std::lock_guard lock(mutex);
    shut_down = true;
  }
  state_cv.notify_all();
  if (!options.exit_on_signal) return;  // run() returns; the program decides what comes next
  // Nobody waits for this: clean up what the destructor would and end the
  // process the way the signal meant to.
  remove_channels();
  SignalState& s = signals();
  std::lock_guard lock(s.mutex);
  ::sigaction(SIGINT, &s.old_int, nullptr);
  ::sigaction(SIGTERM, &s.old_term, nullptr);
  std::fflush(nullptr);
  ::raise(sig);
}

void ProcessManager::Impl::remove_channels() noexcept {
  // Runs in the destructor and on the supervisor thread after a signal: a
  // name that cannot be checked (garbage under it, out of descriptors) must
  // not end the process or keep the others from being removed.
  auto remove = [](auto&& fn) noexcept {
    try {
      fn();
    } catch (const std::exception&) {
    }
  };
  std::lock_guard lock(mutex);
  for (auto& [name, t] : targets) {
    remove([&] { Pipe<Message>::remove(t->active.name()); });
    remove([&] { Channel<Message>::remove(t->passive.name()); });
  }
  remove([&] { detail::ControlChannel::remove(detail::control_channel_name(ns)); });
}

}  // namespace sleet
