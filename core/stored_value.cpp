// StoredValue: layouts, creation and the two-buffer seqlock of SharedValue
// and SharedArray (protocol in detail/stored_value.hpp; its steps and word
// copies in detail/seqlock.hpp).
#include "sleet/detail/stored_value.hpp"

#include <cstring>
#include <new>
#include <string>

#include "sleet/detail/process.hpp"
#include "sleet/detail/seqlock.hpp"
#include "system.hpp"

namespace sleet::detail {

namespace {

constexpr std::uint64_t kMaxElementSize = std::uint64_t{1} << 20;

std::string describe_segment(SegmentKind kind, std::string_view name) {
  return object_label(kind == SegmentKind::array ? "shared array" : "shared value", name);
}

}  // namespace

ValueLayout value_layout(SegmentKind kind, const ValueConfig& c) noexcept {
  ValueLayout l;
  if (kind == SegmentKind::array) {
    l.data = 2 * kCacheLine;
    l.size = l.data + round_up(c.length * c.element_size, kCacheLine);
  } else if (c.lock_free != 0) {
    l.data = kCacheLine;
    l.size = l.data + kCacheLine;
  } else {
    l.data = 3 * kCacheLine;
    l.buffer_bytes = round_up(c.element_size, kCacheLine);
    l.size = l.data + 2 * l.buffer_bytes;
  }
  return l;
}

StoredValue::StoredValue(Segment seg, SegmentKind kind) : seg_(std::move(seg)), kind_(kind) {
  layout_ = value_layout(kind_, config());
}

std::string StoredValue::describe() const { return describe_segment(kind_, name()); }

StoredValue StoredValue::create(std::string_view name, SegmentKind kind, std::uint64_t fingerprint,
                                std::string_view type_name, const ValueConfig& config,
                                unsigned permissions,
                                const std::function<void(std::byte*)>& init) {
  validate_name(name);
  const std::string what = describe_segment(kind, name);
  if (config.length == 0 || config.length > (std::uint64_t{1} << 32)) {
    throw_error(errc::invalid_argument, what,
                "length " + std::to_string(config.length) + " is out of range [1, 2^32]");
  }
  if (config.element_size == 0 || config.element_size > kMaxElementSize) {
    throw_error(errc::invalid_argument, what,
                "element size " + std::to_string(config.element_size) + " is out of range [1, 2^20]");
  }
  if (config.spin_ns < 0) throw_error(errc::invalid_argument, what, "spin must not be negative");
  const ValueLayout layout = value_layout(kind, config);
  const SegmentSpec spec{kind, layout.size, fingerprint, type_name, permissions};
  Segment seg = Segment::create(name, spec, [&](std::byte* at) {
    std::memcpy(at, &config, sizeof config);
    if (layout.lock != layout.data) new (at + layout.lock) RobustLock{};
    if (kind == SegmentKind::value && config.lock_free == 0) new (at + 2 * kCacheLine) SeqIndex{};
    init(at + layout.data);
  });
  return StoredValue(std::move(seg), kind);
}

StoredValue StoredValue::open(std::string_view name, SegmentKind kind, std::uint64_t fingerprint,
                              std::string_view type_name, std::uint32_t element_size,
                              std::uint32_t lock_free) {
  Segment seg = Segment::open(name, kind, fingerprint, type_name);
  const std::string what = describe_segment(kind, name);
  if (seg.object_size() < sizeof(ValueConfig)) require_object_size(seg, sizeof(ValueConfig), what);
  const auto& c = *reinterpret_cast<const ValueConfig*>(seg.object());
  if (c.element_size != element_size || (kind == SegmentKind::value && c.lock_free != lock_free)) {
    throw_error(errc::type_mismatch, what,
                "holds elements of " + std::to_string(c.element_size) + " bytes (" +
                    (c.lock_free ? "lock-free" : "seqlock") + "), opened with " +
                    std::to_string(element_size) + " (" + (lock_free ? "lock-free" : "seqlock") +
                    ")");
  }
  if (c.length == 0 || c.length > (std::uint64_t{1} << 32)) {
    throw_error(errc::not_sleet, what, "damaged: length " + std::to_string(c.length));
  }
  require_object_size(seg, value_layout(kind, c).size, what);
  return StoredValue(std::move(seg), kind);
}

bool StoredValue::acquire(std::string_view op) const {
  const LockState state = lock().lock(current_thread_identity(), kForever, std::chrono::nanoseconds(config().spin_ns));
  if (state == LockState::self_deadlock) {
    throw_error(errc::busy, describe(),
                std::string(op) + ": its lock is already held by this thread (inside with_lock?)");
  }
  return state == LockState::owner_died;
}

void StoredValue::read(void* out) const noexcept {
  SeqIndex& s = seq();
  const std::size_t size = config().element_size;
  for (;;) {
    // acquire: pairs with the writer's release of `index`; buffer i was
    // complete when it was published.
    const std::uint32_t i = s.index.load(std::memory_order_acquire) & 1u;
    // (2) of seqlock.hpp: acquire, so the copy is not hoisted above it.
    const std::uint32_t s1 = seq_read_begin(s.seq[i]);
    if ((s1 & 1u) == 0) {
      load_bytes(out, buffer(i), size);
      if (seq_read_valid(s.seq[i], s1)) return;  // (4)
    }
    cpu_relax();
  }
}

void StoredValue::write_locked(const void* in) const noexcept {
  SeqIndex& s = seq();
  // relaxed: only lock holders write index and seq.
  const std::uint32_t b = (s.index.load(std::memory_order_relaxed) & 1u) ^ 1u;
  // Odd while writing; a dead writer may have left it odd already.
  const std::uint32_t odd = (s.seq[b].load(std::memory_order_relaxed) + 1) | 1u;
  s.seq[b].store(odd, std::memory_order_relaxed);  // relaxed: ordered by the fence (3)
  // (3): a reader that sees any of the words below also sees odd.
  seq_begin_overwrite();
  store_bytes(buffer(b), in, config().element_size);
  // (1): the words are complete before seq is even again.
  seq_publish(s.seq[b], odd + 1);
  // release: and before readers are directed to buffer b; pairs with the
  // acquire load of `index` in read().
  s.index.store(b, std::memory_order_release);
}

const std::byte* StoredValue::current_locked() const noexcept {
  return buffer(seq().index.load(std::memory_order_relaxed) & 1u);  // relaxed: we hold the lock
}

void throw_index_out_of_range(std::string_view what, std::size_t index, std::size_t length) {
  throw_error(errc::invalid_argument, what,
              "index " + std::to_string(index) + " is out of range (length " +
                  std::to_string(length) + ")");
}

}  // namespace sleet::detail
