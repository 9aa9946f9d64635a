// Mutex: creation, the timed and non-blocking paths, errors.
#include "sleet/mutex.hpp"

#include <new>
#include <string>

#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet {

using namespace detail;

namespace {

const std::uint64_t kMutexFingerprint = fnv1a("sleet::Mutex");

}  // namespace

Mutex::Mutex(Segment seg) : seg_(std::move(seg)) {
  object_ = reinterpret_cast<MutexObject*>(seg_.object());
  spin_ = std::chrono::nanoseconds(object_->spin_ns);
}

Mutex Mutex::create(std::string_view name, const MutexOptions& options) {
  validate_name(name);
  if (options.spin.count() < 0) {
    throw_error(errc::invalid_argument, object_label("mutex", name), "spin must not be negative");
  }
  const SegmentSpec spec{SegmentKind::mutex, sizeof(MutexObject), kMutexFingerprint,
                         "sleet::Mutex", options.permissions};
  return Mutex(Segment::create(name, spec, [&](std::byte* at) {
    auto* object = new (at) MutexObject{};
    object->spin_ns = options.spin.count();
  }));
}

Mutex Mutex::open(std::string_view name) {
  Segment seg = Segment::open(name, SegmentKind::mutex, kMutexFingerprint, "sleet::Mutex");
  require_object_size(seg, sizeof(MutexObject), object_label("mutex", name));
  return Mutex(std::move(seg));
}

Mutex Mutex::open_or_create(std::string_view name, const MutexOptions& options) {
  return create_or_open([&] { return create(name, options); }, [&] { return open(name); });
}

bool Mutex::remove(std::string_view name) { return remove_segment(name, SegmentKind::mutex); }

bool Mutex::try_lock() {
  const LockState state = object_->lock.try_lock(me());
  if (state == LockState::timeout) return false;
  finish(state, "try_lock");
  return true;
}

bool Mutex::lock_for(std::chrono::nanoseconds timeout) {
  if (object_->lock.try_lock_fast(me())) return true;
  const LockState state = object_->lock.lock_slow(me(), deadline_after(timeout), spin_);
  if (state == LockState::timeout) return false;
  finish(state, "lock_for");
  return true;
}

LockResult Mutex::finish(LockState state, std::string_view op) {
  switch (state) {
    case LockState::acquired: return LockResult::acquired;
    case LockState::owner_died: return LockResult::owner_died;
    case LockState::self_deadlock:
      throw_error(errc::busy, object_label("mutex", name()),
                  std::string(op) + ": already held by this thread (it would wait for itself)");
    case LockState::timeout: break;
  }
  throw_error(errc::timeout, object_label("mutex", name()), std::string(op) + ": timed out");
}

void Mutex::throw_not_owner() const {
  const int owner = identity_pid(object_->lock.owner());
  throw_error(errc::not_owner, object_label("mutex", name()),
              "unlock by thread " + std::to_string(current_tid()) + ", which does not hold it (" +
                  (owner == 0 ? std::string("it is not locked")
                              : "held by thread " + std::to_string(owner)) +
                  ")");
}

MutexStats Mutex::stats() const noexcept {
  MutexStats s;
  const RobustLock& l = object_->lock;
  // relaxed (all): a snapshot for display.
  s.owner_tid = static_cast<std::uint32_t>(identity_pid(l.owner()));
  s.sleeps = l.sleeps.load(std::memory_order_relaxed);
  s.recoveries = l.recoveries.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sleet
