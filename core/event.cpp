// Event: creation, set/clear, waiting. Protocol in event.hpp.
#include "sleet/event.hpp"

#include <climits>
#include <new>
#include <string>

#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet {

using namespace detail;

namespace {

const std::uint64_t kEventFingerprint = fnv1a("sleet::Event");

}  // namespace

Event::Event(Segment seg) : seg_(std::move(seg)) {
  object_ = reinterpret_cast<EventObject*>(seg_.object());
  spin_ = std::chrono::nanoseconds(object_->spin_ns);
}

Event Event::create(std::string_view name, const EventOptions& options) {
  validate_name(name);
  if (options.spin.count() < 0) {
    throw_error(errc::invalid_argument, object_label("event", name), "spin must not be negative");
  }
  const SegmentSpec spec{SegmentKind::event, sizeof(EventObject), kEventFingerprint,
                         "sleet::Event", options.permissions};
  return Event(Segment::create(name, spec, [&](std::byte* at) {
    auto* object = new (at) EventObject{};
    // relaxed: published by the segment's `ready`.
    object->word.store(options.initially_set ? 1u : 0u, std::memory_order_relaxed);
    object->spin_ns = options.spin.count();
  }));
}

Event Event::open(std::string_view name) {
  Segment seg = Segment::open(name, SegmentKind::event, kEventFingerprint, "sleet::Event");
  require_object_size(seg, sizeof(EventObject), object_label("event", name));
  return Event(std::move(seg));
}

Event Event::open_or_create(std::string_view name, const EventOptions& options) {
  return create_or_open([&] { return create(name, options); }, [&] { return open(name); });
}

bool Event::remove(std::string_view name) { return remove_segment(name, SegmentKind::event); }

void Event::set() noexcept {
  EventObject& o = *object_;
  std::uint32_t w = o.word.load(std::memory_order_relaxed);  // relaxed: the CAS decides
  do {
    if (w & 1u) return;  // already set: nobody can be waiting for this set
    // seq_cst: releases what we did before set() to the waiters, and orders
    // the word before the load of `waiters` (event.hpp).
  } while (!o.word.compare_exchange_weak(w, (((w >> 1) + 1) << 1) | 1u, std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  o.sets.fetch_add(1, std::memory_order_relaxed);  // stats
  if (o.waiters.load(std::memory_order_seq_cst) != 0) futex_wake(&o.word, INT_MAX);
}

void Event::clear() noexcept {
  std::uint32_t w = object_->word.load(std::memory_order_relaxed);  // relaxed: the CAS decides
  // relaxed: clearing publishes nothing; waiters only look for set().
  while ((w & 1u) != 0 && !object_->word.compare_exchange_weak(w, w & ~1u, std::memory_order_relaxed,
                                                                std::memory_order_relaxed)) {
  }
}

bool Event::wait_for(std::chrono::nanoseconds timeout) {
  return wait_until(deadline_after(timeout));
}

bool Event::wait_until(Deadline deadline) {
  EventObject& o = *object_;
  // acquire: pairs with set()'s seq_cst CAS.
  const std::uint32_t seen = o.word.load(std::memory_order_acquire);
  if (seen & 1u) return true;
  // seq_cst: the re-check after announcing (futex.hpp, wait_announced).
  auto done = [&] { return o.word.load(std::memory_order_seq_cst) != seen; };
  if (done()) return true;
  return wait_announced(o.word, seen, o.waiters, o.sleeps, done, spin_, deadline);
}

EventStats Event::stats() const noexcept {
  EventStats s;
  // relaxed (all): a snapshot for display.
  s.is_set = (object_->word.load(std::memory_order_relaxed) & 1u) != 0;
  s.waiters = object_->waiters.load(std::memory_order_relaxed);
  s.sets = object_->sets.load(std::memory_order_relaxed);
  s.sleeps = object_->sleeps.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sleet

namespace sleet {

detail::WaitSource Event::wait_source() const {
  auto view = std::make_shared<detail::Segment>(seg_.share());
  auto* o = reinterpret_cast<detail::EventObject*>(view->object());
  detail::WaitSource s;
  // A set() changes the word with a seq_cst RMW and then wakes if it reads
  // waiters != 0: the same announce-then-check pair as the eventcount.
  s.word = &o->word;
  s.waiters = &o->waiters;
  s.ready = [](detail::WaitSource& self) noexcept {
    auto* obj = reinterpret_cast<detail::EventObject*>(static_cast<detail::Segment*>(self.keep.get())->object());
    // acquire: pairs with set(); what the setter did before is visible.
    return (obj->word.load(std::memory_order_acquire) & 1u) != 0;
  };
  s.keep = std::move(view);
  return s;
}

}  // namespace sleet
