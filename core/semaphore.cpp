// Semaphore: creation, the blocking paths, release. Protocol in semaphore.hpp.
#include "sleet/semaphore.hpp"

#include <climits>
#include <new>
#include <string>

#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet {

using namespace detail;

namespace {

const std::uint64_t kSemaphoreFingerprint = fnv1a("sleet::Semaphore");

}  // namespace

Semaphore::Semaphore(Segment seg) : seg_(std::move(seg)) {
  object_ = reinterpret_cast<SemaphoreObject*>(seg_.object());
  spin_ = std::chrono::nanoseconds(object_->spin_ns);
}

Semaphore Semaphore::create(std::string_view name, std::uint32_t initial,
                            const SemaphoreOptions& options) {
  validate_name(name);
  const std::string what = object_label("semaphore", name);
  if (options.max == 0 || options.max > kSemaphoreMax) {
    throw_error(errc::invalid_argument, what,
                "max " + std::to_string(options.max) + " is out of range [1, 2^31-1]");
  }
  if (initial > options.max) {
    throw_error(errc::invalid_argument, what,
                "initial count " + std::to_string(initial) + " is above max " +
                    std::to_string(options.max));
  }
  if (options.spin.count() < 0) throw_error(errc::invalid_argument, what, "spin must not be negative");
  const SegmentSpec spec{SegmentKind::semaphore, sizeof(SemaphoreObject), kSemaphoreFingerprint,
                         "sleet::Semaphore", options.permissions};
  return Semaphore(Segment::create(name, spec, [&](std::byte* at) {
    auto* object = new (at) SemaphoreObject{};
    object->count.store(initial, std::memory_order_relaxed);  // relaxed: published by `ready`
    object->max = options.max;
    object->spin_ns = options.spin.count();
  }));
}

Semaphore Semaphore::open(std::string_view name) {
  Segment seg =
      Segment::open(name, SegmentKind::semaphore, kSemaphoreFingerprint, "sleet::Semaphore");
  require_object_size(seg, sizeof(SemaphoreObject), object_label("semaphore", name));
  return Semaphore(std::move(seg));
}

Semaphore Semaphore::open_or_create(std::string_view name, std::uint32_t initial,
                                    const SemaphoreOptions& options) {
  return create_or_open([&] { return create(name, initial, options); },
                        [&] { return open(name); });
}

bool Semaphore::remove(std::string_view name) { return remove_segment(name, SegmentKind::semaphore); }

bool Semaphore::acquire_slow(Deadline deadline) {
  return wait_announced(object_->count, 0, object_->waiters, object_->sleeps,
                        [this] { return try_acquire(); }, spin_, deadline);
}

bool Semaphore::acquire_for(std::chrono::nanoseconds timeout) {
  if (try_acquire()) return true;
  if (timeout.count() <= 0) return false;
  return acquire_slow(deadline_after(timeout));
}

void Semaphore::release(std::uint32_t n) {
  if (n == 0) return;
  SemaphoreObject& o = *object_;
  std::uint32_t c = o.count.load(std::memory_order_relaxed);  // relaxed: the CAS decides
  do {
    if (n > o.max - c) {
      throw_error(errc::full, object_label("semaphore", name()),
                  "release(" + std::to_string(n) + ") would raise the count " +
                      std::to_string(c) + " past its max " + std::to_string(o.max));
    }
    // seq_cst: releases what we did to the acquirer, and orders the count
    // before the load of `waiters` below (semaphore.hpp).
  } while (!o.count.compare_exchange_weak(c, c + n, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  if (o.waiters.load(std::memory_order_seq_cst) != 0) {
    o.wakes.fetch_add(1, std::memory_order_relaxed);  // stats
    futex_wake(&o.count, n > INT_MAX ? INT_MAX : static_cast<int>(n));
  }
}

SemaphoreStats Semaphore::stats() const noexcept {
  SemaphoreStats s;
  // relaxed (all): a snapshot for display.
  s.value = object_->count.load(std::memory_order_relaxed);
  s.max = object_->max;
  s.waiters = object_->waiters.load(std::memory_order_relaxed);
  s.sleeps = object_->sleeps.load(std::memory_order_relaxed);
  s.wakes = object_->wakes.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sleet
