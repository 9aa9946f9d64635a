// sleet/mutex.hpp — Mutex: a named cross-process mutex that survives the
// death of its owner.
//
//   auto m = sleet::Mutex::open_or_create("ledger");
//   {
//     std::lock_guard guard(m);             // BasicLockable, Lockable, TimedLockable
//     if (m.owner_died()) repair_ledger();  // the last holder died holding it
//     append(entry);
//   }
//   if (m.lock() == sleet::LockResult::owner_died) { repair_ledger(); }
//   m.unlock();
//
// Robustness: when the holder dies (SIGKILL, crash, or its thread exits
// without unlocking), the next locker takes the lock over within about
// 10 ms (detail/robust_lock.hpp), gets LockResult::owner_died from lock(),
// and owner_died() stays true until it unlocks: unlocking declares the
// protected data repaired.
//
// The owner is a thread: unlock() from a thread that does not hold the
// mutex is errc::not_owner, and lock() by the thread that already holds it
// is errc::busy (it would wait for itself). A Mutex object may be shared by
// threads; each thread locks for itself.
//
// Uncontended lock + unlock is one CAS and one exchange on the mutex's
// cache line, no system call. A contended locker spins for the spin budget,
// then sleeps on the futex word.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "sleet/detail/process.hpp"
#include "sleet/detail/robust_lock.hpp"
#include "sleet/detail/segment.hpp"

namespace sleet {

struct MutexOptions {
  unsigned permissions = 0600;
  // Busy-wait budget of a contended lock() before it sleeps.
  std::chrono::nanoseconds spin = std::chrono::microseconds(5);
};

enum class LockResult {
  acquired,    // the lock is ours
  owner_died,  // the lock is ours; its previous holder died holding it
};

struct MutexStats {
  std::uint32_t owner_tid = 0;    // 0 when free
  std::uint64_t sleeps = 0;       // times a locker went to sleep
  std::uint64_t recoveries = 0;   // locks taken over from a dead holder
};

namespace detail {
struct MutexObject {
  RobustLock lock;
  alignas(kCacheLine) std::int64_t spin_ns;
};
}  // namespace detail

class Mutex {
 public:
  Mutex() = default;
  Mutex(Mutex&&) noexcept = default;
  Mutex& operator=(Mutex&&) noexcept = default;

  static Mutex create(std::string_view name, const MutexOptions& options = {});
  static Mutex open(std::string_view name);
  static Mutex open_or_create(std::string_view name, const MutexOptions& options = {});
  static bool remove(std::string_view name);

  LockResult lock() {
    const detail::LockState s = object_->lock.lock(me(), detail::kForever, spin_);
    if (SLEET_LIKELY(s == detail::LockState::acquired)) return LockResult::acquired;
    return finish(s, "lock");
  }
  bool try_lock();
  bool lock_for(std::chrono::nanoseconds timeout);
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    // Longer than nanoseconds can hold (hours::max()): forever, not an overflow.
    using D = std::chrono::duration<Rep, Period>;
    if (timeout >= std::chrono::duration_cast<D>(std::chrono::nanoseconds::max())) {
      return lock_for(std::chrono::nanoseconds::max());
    }
    return lock_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return try_lock_for(deadline - Clock::now());
  }
  void unlock() {
    if (SLEET_UNLIKELY(!object_->lock.unlock(me()))) throw_not_owner();
  }
  // True while the calling holder took the lock over from a dead holder.
  bool owner_died() const noexcept { return object_->lock.owner_died(); }

  std::string_view name() const noexcept { return seg_.name(); }
  MutexStats stats() const noexcept;
  std::chrono::nanoseconds spin() const noexcept { return spin_; }
  void set_spin(std::chrono::nanoseconds spin) noexcept { spin_ = spin; }

 private:
  explicit Mutex(detail::Segment seg);
  static std::uint64_t me() noexcept { return detail::current_thread_identity(); }
  // Turns a slow-path outcome into a LockResult, or throws errc::busy.
  LockResult finish(detail::LockState state, std::string_view op);
  [[noreturn]] void throw_not_owner() const;

  detail::Segment seg_;
  detail::MutexObject* object_ = nullptr;
  std::chrono::nanoseconds spin_{0};
};

}  // namespace sleet
