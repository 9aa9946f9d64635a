// KvStore: layout, creation, and the read side. The layout and the
// synchronization protocol, with the numbered pairs used below, are in
// detail/kv_table.hpp; the write side is in kv_write.cpp.
#include "sleet/kv_store.hpp"

#include <climits>
#include <cstring>

#include "kv_internal.hpp"
#include "sleet/detail/futex.hpp"
#include "system.hpp"

namespace sleet {

using namespace detail;

namespace {

constexpr std::uint64_t kMaxKvValueSize = std::uint64_t{1} << 20;
constexpr std::uint64_t kMaxStripes = 256;
// Longest key shown in a message.
constexpr std::size_t kQuotedKey = 80;

// The whole layout follows from the four options (bounds checked by the caller).
KvConfig layout_for(std::uint64_t capacity, std::uint64_t max_key, std::uint64_t max_value,
                    std::uint64_t overflow_bytes) {
  KvConfig c{};
  c.slots = next_pow2(capacity);
  c.capacity = capacity;
  c.max_key_size = max_key;
  c.max_value_size = max_value;
  c.key_bytes = round_up(max_key, 8);
  c.value_bytes = round_up(max_value, 8);
  c.stride = round_up(kKvSlotFixed + c.key_bytes + c.value_bytes, kCacheLine);
  c.stripes = c.slots < kMaxStripes ? c.slots : kMaxStripes;
  c.overflow_bytes = overflow_bytes;
  c.overflow_blocks = overflow_bytes / kKvBlock;
  c.types_offset = sizeof(KvConfig) + c.stripes * sizeof(KvStripe);
  std::uint64_t at = round_up(c.types_offset + kKvTypes * sizeof(KvType), kKvAlign);
  c.overflow_offset = at;
  if (c.overflow_blocks != 0) {
    at = round_up(at + sizeof(KvOverflow) + c.overflow_blocks * sizeof(std::uint32_t), kKvAlign);
  }
  c.spares_offset = at;
  at = round_up(at + c.stripes * c.value_bytes, kKvAlign);
  c.blocks_offset = at;
  at = round_up(at + c.overflow_blocks * kKvBlock, kKvAlign);
  c.meta_offset = at;
  c.slots_offset = round_up(at + c.slots * sizeof(KvMeta), kKvAlign);
  return c;
}

std::uint64_t object_bytes(const KvConfig& c) { return c.slots_offset + c.slots * c.stride; }

}  // namespace

std::string detail::kv_describe(std::string_view name) { return object_label("kv store", name); }

std::string detail::kv_quoted(std::string_view key) {
  std::string s = "'";
  s.append(printable_name(key, kQuotedKey)).append("'");
  return s;
}

void detail::throw_kv_decode_failed(std::string_view store, std::string_view key, const Error& e) {
  if (e.value() != errc::decode_failed) throw e;
  throw_error(errc::decode_failed, kv_describe(store), "key " + kv_quoted(key) + ": " + e.detail());
}

bool detail::kv_layout_valid(const KvConfig& c, std::uint64_t object_size) noexcept {
  if (object_size < sizeof(KvConfig)) return false;
  // Rebuild the layout from the options, as create() did, and demand an
  // exact match (checking the options first keeps the arithmetic in range).
  if (c.capacity == 0 || c.capacity > (std::uint64_t{1} << 32) || c.max_key_size == 0 ||
      c.max_key_size > kKvMaxKeySize || c.max_value_size == 0 ||
      c.max_value_size > kMaxKvValueSize || c.overflow_bytes > kKvMaxOverflow) {
    return false;
  }
  const KvConfig want = layout_for(c.capacity, c.max_key_size, c.max_value_size, c.overflow_bytes);
  return std::memcmp(&want, &c, sizeof c) == 0 && object_bytes(want) <= object_size;
}

std::uint64_t detail::kv_entries_approx(const std::byte* object) noexcept {
  const auto& c = *reinterpret_cast<const KvConfig*>(object);
  const auto* stripes = reinterpret_cast<const KvStripe*>(object + sizeof(KvConfig));
  std::int64_t n = 0;
  for (std::uint64_t i = 0; i < c.stripes; ++i) {
    n += stripes[i].count.load(std::memory_order_relaxed);  // relaxed: a statistic
  }
  return n > 0 ? static_cast<std::uint64_t>(n) : 0;
}

// ---- creation ----

KvStore::KvStore(Segment seg) : seg_(std::move(seg)) {
  std::byte* o = seg_.object();
  const auto* c = reinterpret_cast<const KvConfig*>(o);
  view_.config = c;
  view_.stripes = reinterpret_cast<KvStripe*>(o + sizeof(KvConfig));
  view_.types = reinterpret_cast<KvType*>(o + c->types_offset);
  if (c->overflow_blocks != 0) {
    view_.overflow = reinterpret_cast<KvOverflow*>(o + c->overflow_offset);
    view_.block_meta = reinterpret_cast<std::uint32_t*>(o + c->overflow_offset + sizeof(KvOverflow));
  }
  view_.spares = o + c->spares_offset;
  view_.blocks = o + c->blocks_offset;
  view_.meta = reinterpret_cast<KvMeta*>(o + c->meta_offset);
  view_.slots = o + c->slots_offset;
}

KvStore KvStore::create(std::string_view name, const KvOptions& options) {
  validate_name(name);
  const std::string what = kv_describe(name);
  if (options.capacity == 0 || options.capacity > (std::size_t{1} << 32)) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(options.capacity) + " is out of range [1, 2^32]");
  }
  if (options.max_key_size == 0 || options.max_key_size > kKvMaxKeySize) {
    throw_error(errc::invalid_argument, what,
                "max_key_size " + std::to_string(options.max_key_size) +
                    " is out of range [1, " + std::to_string(kKvMaxKeySize) + "]");
  }
  if (options.max_value_size == 0 || options.max_value_size > kMaxKvValueSize) {
    throw_error(errc::invalid_argument, what,
                "max_value_size " + std::to_string(options.max_value_size) +
                    " is out of range [1, " + std::to_string(kMaxKvValueSize) + "]");
  }
  if (options.overflow_bytes != 0 &&
      (options.overflow_bytes < 2 * kKvBlock || options.overflow_bytes > kKvMaxOverflow)) {
    throw_error(errc::invalid_argument, what,
                "overflow_bytes " + std::to_string(options.overflow_bytes) +
                    " is out of range (0, or [" + std::to_string(2 * kKvBlock) + ", 2^32])");
  }
  const KvConfig c = layout_for(options.capacity, options.max_key_size, options.max_value_size,
                                options.overflow_bytes);
  const std::uint64_t bytes = object_bytes(c);
  if (bytes > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(options.capacity) + " needs " +
                    std::to_string(bytes) + " bytes, more than the limit of " +
                    std::to_string(kMaxSegmentSize));
  }
  SegmentSpec spec{SegmentKind::kv, bytes, kKvFingerprint, "kv", options.permissions};
  // posix_fallocate hands us zeroed pages: every slot and tag is empty,
  // every stripe free, every type entry unused, every overflow block free.
  // Only the config and the overflow journal ("nothing in flight") need writing.
  Segment seg = Segment::create(name, spec, [&](std::byte* object) {
    new (object) KvConfig(c);
    if (c.overflow_blocks != 0) new (object + c.overflow_offset) KvOverflow{};
  });
  return KvStore(std::move(seg));
}

KvStore KvStore::open(std::string_view name) {
  Segment seg = Segment::open(name, SegmentKind::kv, kKvFingerprint, "kv");
  const auto& c = *reinterpret_cast<const KvConfig*>(seg.object());
  if (!kv_layout_valid(c, seg.object_size())) {
    throw_error(errc::not_sleet, kv_describe(name), "damaged kv layout");
  }
  return KvStore(std::move(seg));
}

KvStore KvStore::open_or_create(std::string_view name, const KvOptions& options) {
  return create_or_open([&] { return create(name, options); }, [&] { return open(name); });
}

bool KvStore::remove(std::string_view name) { return remove_segment(name, SegmentKind::kv); }

// ---- helpers ----

void KvStore::throw_bad_key(std::string_view key) const {
  if (key.empty()) throw_error(errc::invalid_argument, kv_describe(name()), "empty key");
  throw_error(errc::too_large, kv_describe(name()),
              "key " + kv_quoted(key) + " is " + std::to_string(key.size()) +
                  " bytes, max_key_size is " + std::to_string(config().max_key_size));
}

std::size_t KvStore::max_stored_size() const noexcept {
  const std::uint64_t run = view_.run_capacity(0);
  return run > config().max_value_size ? run : config().max_value_size;
}

std::size_t KvStore::overflow_used_approx() const noexcept {
  if (view_.overflow == nullptr) return 0;
  // relaxed: a statistic.
  return view_.overflow->used_blocks.load(std::memory_order_relaxed) * kKvBlock;
}

void KvStore::throw_value_too_large(std::size_t size) const {
  std::string why = "value of " + std::to_string(size) + " bytes exceeds max_value_size " +
                    std::to_string(config().max_value_size);
  if (view_.overflow != nullptr) {
    why += " and the overflow area's largest value " + std::to_string(view_.run_capacity(0));
  }
  throw_error(errc::too_large, kv_describe(name()), why);
}

void KvStore::throw_damaged(const KvKey& key, KvDamage d) const {
  throw_error(errc::not_sleet, kv_describe(name()),
              std::string("damaged slot of key ") +
                  kv_quoted(std::string_view(reinterpret_cast<const char*>(key.words), key.len)) +
                  (d == KvDamage::run ? " (overflow run out of range)" : " (value length)"));
}

void KvStore::throw_type_mismatch(std::string_view key, std::uint64_t stored,
                                  std::uint64_t fingerprint_of_wanted, std::string_view wanted) const {
  const std::string held = type_name_of(stored), read_as = readable_type_name(wanted);
  std::string detail = "key " + kv_quoted(key) + " holds '" + held + "', read as '" + read_as + "'";
  if (held == read_as) detail += fingerprints_note(stored, fingerprint_of_wanted);
  throw_error(errc::type_mismatch, kv_describe(name()), detail);
}

std::string KvStore::type_name_of(std::uint64_t fingerprint) const {
  for (std::size_t i = 0; i < kKvTypes; ++i) {
    KvType& t = view_.types[i];
    // acquire: pairs with the release in register_type(); the name is complete.
    if (t.fingerprint.load(std::memory_order_acquire) == fingerprint) {
      return std::string(t.name, ::strnlen(t.name, sizeof t.name));
    }
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "type %016llx", static_cast<unsigned long long>(fingerprint));
  return buf;
}

// ---- readers ----

bool KvStore::contains(std::string_view key) const { return read(make_key(key), nullptr).found; }

std::size_t KvStore::size() const noexcept { return kv_entries_approx(seg_.object()); }

std::vector<KvEntry> KvStore::snapshot() const {
  const KvConfig& c = config();
  std::vector<KvEntry> out;
  std::vector<std::uint64_t> value;
  KvKey key;
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    // relaxed: a hint (an insert in progress is not part of the snapshot).
    const std::uint8_t tag = view_.meta[i].tag.load(std::memory_order_relaxed);
    if (tag == kTagEmpty || tag == kTagFree) continue;
    KvSlot* s = view_.slot(i);
    for (;;) {
      const std::uint64_t v1 = seq_read_begin(s->version);  // (2)
      if (kv_state(s->state.load(std::memory_order_acquire)) != kKvLive) break;  // (6)
      // relaxed: validated by the version re-check below.
      const std::uint32_t klen = s->key_len.load(std::memory_order_relaxed);
      if (klen == 0 || klen > c.max_key_size) {
        if (!seq_read_valid(s->version, v1)) continue;  // (4): torn, re-read
        break;  // damaged: not an entry
      }
      key.len = klen;
      key.words[(klen + 7) / 8 - 1] = 0;
      load_words(key.words, s->key_words(), (klen + 7) / 8);
      key.hash = kv_hash(key.words, klen);
      KvFound r;
      KvSink sink{&value};
      const KvDamage dmg = view_.copy_value(s, v1, key, &sink, r);
      if (!seq_read_valid(s->version, v1)) continue;  // (4)
      if (dmg != KvDamage::none) throw_damaged(key, dmg);
      KvEntry e;
      e.store = std::string(name());
      e.key.assign(reinterpret_cast<const char*>(key.words), klen);
      e.fingerprint = r.fp;
      e.type_name = type_name_of(r.fp);
      const auto* bytes = reinterpret_cast<const std::byte*>(value.data());
      e.bytes.assign(bytes, bytes + r.len);
      out.push_back(std::move(e));
      break;
    }
  }
  return out;
}

namespace {
// A key's change token: which slot holds it and that slot's version.
std::uint64_t change_token(const KvFound& r) noexcept {
  return r.found ? (r.slot << 40) ^ r.version ^ (std::uint64_t{1} << 63) : 0;
}
}  // namespace

detail::WaitSource KvStore::wait_source(std::string_view key) const {
  struct KeyWatch {
    KeyWatch(KvStore s, KvKey k) : store(std::move(s)), key(k) {}
    KvStore store;  // a view of its own (shared mapping)
    KvKey key;
    std::atomic<std::uint64_t> seen{0};  // the token last reported
    // A damaged slot counts as a change: the owner's get() then reports it.
    std::uint64_t token() const noexcept {
      try {
        return change_token(store.read(key, nullptr));
      } catch (...) {
        return ~std::uint64_t{0};
      }
    }
  };
  auto watch = std::make_shared<KeyWatch>(KvStore(seg_.share()), make_key(key));
  // relaxed (all of seen): the watch's own state, between a WaitSet's thread
  // and its watcher thread; nothing is published through it.
  watch->seen.store(watch->token(), std::memory_order_relaxed);
  KvStripe& stripe = watch->store.view_.stripes[kv_stripe_of(watch->key.hash, config())];
  detail::WaitSource s;
  s.word = &stripe.changes;
  s.waiters = &stripe.watchers;
  s.ready = [](detail::WaitSource& self) noexcept {
    const auto* w = static_cast<const KeyWatch*>(self.keep.get());
    return w->token() != w->seen.load(std::memory_order_relaxed);
  };
  s.reported = [](detail::WaitSource& self) noexcept {
    auto* w = static_cast<KeyWatch*>(self.keep.get());
    w->seen.store(w->token(), std::memory_order_relaxed);
  };
  s.keep = std::move(watch);
  return s;
}

bool KvStore::wait_for_change(std::string_view key, std::chrono::nanoseconds timeout) const {
  const KvKey k = make_key(key);
  const Deadline deadline = timeout >= std::chrono::hours(24 * 365 * 100)
                                ? kForever
                                : Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  KvStripe& stripe = view_.stripes[kv_stripe_of(k.hash, config())];
  const KvFound before = read(k, nullptr);
  auto changed = [&] {
    const KvFound now = read(k, nullptr);
    const bool moved = now.found != before.found || now.slot != before.slot || now.version != before.version;
    return moved ? Poll::ready : Poll::empty;
  };
  // The eventcount's waiter half; its partner is announce_change() (8).
  // The caller's first look is `before`, so the wait starts at once.
  return wait_event(stripe.events(), changed, deadline) == Poll::ready;
}

}  // namespace sleet
