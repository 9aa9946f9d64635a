// KvStore: the untyped table operations. The layout and the synchronization
// protocol, with the numbered pairs used below, are in detail/kv_table.hpp.
#include "sleet/kv_store.hpp"

#include <sched.h>
#include <time.h>

#include <climits>
#include <cstring>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/process.hpp"
#include "system.hpp"

namespace sleet {

using namespace detail;

namespace {

constexpr std::uint64_t kMaxKvValueSize = std::uint64_t{1} << 20;
constexpr std::uint64_t kMaxStripes = 256;
const std::uint64_t kKvFingerprint = fnv1a("sleet::KvStore");

std::string describe(std::string_view name) {
  std::string s = "kv store '";
  s.append(name).append("'");
  return s;
}

std::string quoted(std::string_view key) {
  std::string s = "'";
  s.append(key.substr(0, 80)).append(key.size() > 80 ? "...'" : "'");
  return s;
}

void pause_briefly() {
  const timespec ts{0, 50'000};  // 50 us: the holder is slow or dead, not busy for long
  ::nanosleep(&ts, nullptr);
}

// The whole layout follows from the three options (bounds checked by the caller).
KvConfig layout_for(std::uint64_t capacity, std::uint64_t max_key, std::uint64_t max_value) {
  KvConfig c{};
  c.slots = next_pow2(capacity);
  c.capacity = capacity;
  c.max_key_size = max_key;
  c.max_value_size = max_value;
  c.key_bytes = round_up(max_key, 8);
  c.value_bytes = round_up(max_value, 8);
  c.stride = round_up(sizeof(KvSlot) + c.key_bytes + 2 * c.value_bytes, kCacheLine);
  c.stripes = c.slots < kMaxStripes ? c.slots : kMaxStripes;
  c.types_offset = sizeof(KvConfig) + c.stripes * sizeof(KvStripe);
  c.slots_offset = round_up(c.types_offset + kKvTypes * sizeof(KvType), kCacheLine);
  return c;
}

}  // namespace

bool detail::kv_layout_valid(const KvConfig& c, std::uint64_t object_size) noexcept {
  if (object_size < sizeof(KvConfig)) return false;
  // Rebuild the layout from the three options, as create() did, and demand
  // an exact match (checking the options first keeps the arithmetic in range).
  if (c.capacity == 0 || c.capacity > (std::uint64_t{1} << 32) || c.max_key_size == 0 ||
      c.max_key_size > kKvMaxKeySize || c.max_value_size == 0 ||
      c.max_value_size > kMaxKvValueSize) {
    return false;
  }
  const KvConfig want = layout_for(c.capacity, c.max_key_size, c.max_value_size);
  return std::memcmp(&want, &c, offsetof(KvConfig, pad)) == 0 &&
         want.slots_offset + want.slots * want.stride <= object_size;
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
  const KvConfig& c = config();
  stripes_ = reinterpret_cast<KvStripe*>(seg_.object() + sizeof(KvConfig));
  types_ = reinterpret_cast<KvType*>(seg_.object() + c.types_offset);
  slots_ = seg_.object() + c.slots_offset;
}

KvStore KvStore::create(std::string_view name, const KvOptions& options) {
  validate_name(name);
  const std::string what = describe(name);
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
  const KvConfig c = layout_for(options.capacity, options.max_key_size, options.max_value_size);
  const std::uint64_t bytes = c.slots_offset + c.slots * c.stride;
  if (bytes > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(options.capacity) + " needs " +
                    std::to_string(bytes) + " bytes, more than the limit of " +
                    std::to_string(kMaxSegmentSize));
  }
  SegmentSpec spec{SegmentKind::kv, bytes, kKvFingerprint, "kv", options.permissions};
  // posix_fallocate hands us zeroed pages: every slot is empty, every stripe
  // free, every type entry unused. Only the config needs writing.
  Segment seg = Segment::create(name, spec, [&](std::byte* object) { new (object) KvConfig(c); });
  return KvStore(std::move(seg));
}

KvStore KvStore::open(std::string_view name) {
  Segment seg = Segment::open(name, SegmentKind::kv, kKvFingerprint, "kv");
  const auto& c = *reinterpret_cast<const KvConfig*>(seg.object());
  if (!kv_layout_valid(c, seg.object_size())) {
    throw_error(errc::not_sleet, describe(name), "damaged kv layout");
  }
  return KvStore(std::move(seg));
}

KvStore KvStore::open_or_create(std::string_view name, const KvOptions& options) {
  return create_or_open([&] { return create(name, options); }, [&] { return open(name); });
}

bool KvStore::remove(std::string_view name) { return Segment::remove(name); }

// ---- helpers ----

KvStore::Key KvStore::make_key(std::string_view key) const {
  if (key.empty()) throw_error(errc::invalid_argument, describe(name()), "empty key");
  if (key.size() > config().max_key_size) {
    throw_error(errc::too_large, describe(name()),
                "key " + quoted(key) + " is " + std::to_string(key.size()) +
                    " bytes, max_key_size is " + std::to_string(config().max_key_size));
  }
  Key k;
  const std::size_t words = (key.size() + 7) / 8;
  k.words[words - 1] = 0;
  std::memcpy(k.words, key.data(), key.size());
  k.len = key.size();
  k.hash = kv_hash(k.words, k.len);
  return k;
}

std::uint64_t* KvStore::scratch(std::size_t words, int which) {
  thread_local std::vector<std::uint64_t> buffers[2];
  auto& b = buffers[which];
  if (b.size() < words) b.resize(words);
  return b.data();
}

void KvStore::throw_value_too_large(std::size_t size) const {
  throw_error(errc::too_large, describe(name()),
              "value of " + std::to_string(size) + " bytes exceeds max_value_size " +
                  std::to_string(config().max_value_size));
}

void KvStore::throw_type_mismatch(std::string_view key, std::uint64_t stored,
                                  std::string_view wanted) const {
  throw_error(errc::type_mismatch, describe(name()),
              "key " + quoted(key) + " holds '" + type_name_of(stored) + "', read as '" +
                  readable_type_name(wanted) + "'");
}

std::string KvStore::type_name_of(std::uint64_t fingerprint) const {
  for (std::size_t i = 0; i < kKvTypes; ++i) {
    // acquire: pairs with the release in register_type(); the name is complete.
    if (types_[i].fingerprint.load(std::memory_order_acquire) == fingerprint) {
      return std::string(types_[i].name, ::strnlen(types_[i].name, sizeof types_[i].name));
    }
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "type %016llx", static_cast<unsigned long long>(fingerprint));
  return buf;
}

namespace {

KvSlot* slot_at(std::byte* slots, const KvConfig& c, std::uint64_t i) noexcept {
  return reinterpret_cast<KvSlot*>(slots + (i & (c.slots - 1)) * c.stride);
}

bool same_key(KvSlot* s, const std::uint64_t* key, std::size_t len, std::uint64_t hash) noexcept {
  // relaxed (all): validated by the caller's version re-check, or stable
  // because the caller holds the key's stripe lock.
  if (s->hash.load(std::memory_order_relaxed) != hash) return false;
  if (s->key_len.load(std::memory_order_relaxed) != len) return false;
  std::uint64_t* words = s->key_words();
  for (std::size_t i = 0, n = (len + 7) / 8; i < n; ++i) {
    if (std::atomic_ref<std::uint64_t>(words[i]).load(std::memory_order_relaxed) != key[i]) {
      return false;
    }
  }
  return true;
}

std::uint64_t stripe_of(std::uint64_t hash, const KvConfig& c) noexcept {
  return (hash >> 40) & (c.stripes - 1);  // other bits than the home slot's
}

// Registers a value type's name once per store. The scan stops at the
// first match, usually within the first few entries.
void register_type(KvType* types, std::uint64_t fp, std::string_view raw_name) {
  for (std::size_t i = 0; i < kKvTypes; ++i) {
    // acquire: pairs with the release below (another process's registration).
    std::uint64_t cur = types[i].fingerprint.load(std::memory_order_acquire);
    if (cur == fp) break;
    if (cur != 0) continue;
    // relaxed: claiming an entry orders nothing; the release below publishes.
    if (!types[i].fingerprint.compare_exchange_strong(cur, 1, std::memory_order_relaxed)) {
      if (cur == fp) break;
      continue;
    }
    const std::string name = readable_type_name(raw_name);
    const std::size_t n = std::min(name.size(), sizeof types[i].name - 1);
    std::memcpy(types[i].name, name.data(), n);
    types[i].name[n] = '\0';
    // release: the name is complete before the fingerprint names it.
    types[i].fingerprint.store(fp, std::memory_order_release);
    break;
  }
}

}  // namespace

// ---- readers ----

KvStore::Raw KvStore::read(const Key& key, std::uint64_t* out) const {
  const KvConfig& c = config();
  const std::uint64_t home = key.hash & (c.slots - 1);
  // acquire: pairs with the release in Writer::write() that raised reach
  // before the key went live.
  const std::uint32_t reach =
      slot_at(slots_, c, home)->reach.load(std::memory_order_acquire);
  for (std::uint64_t d = 0; d <= reach; ++d) {
    KvSlot* s = slot_at(slots_, c, home + d);
    for (;;) {
      const std::uint64_t v1 = s->version.load(std::memory_order_acquire);  // (2)
      const std::uint32_t st = kv_state(s->state.load(std::memory_order_acquire));  // (6)
      if (st == kKvEmpty) return {};
      if (st != kKvLive || !same_key(s, key.words, key.len, key.hash)) break;
      Raw r;
      const unsigned b = v1 & 1;
      // relaxed: validated by the version re-check below.
      r.len = s->value_len[b].load(std::memory_order_relaxed);
      r.fp = s->value_fp[b].load(std::memory_order_relaxed);
      if (out != nullptr && r.len <= c.value_bytes) {
        load_words(out, s->value_words(c, b), (r.len + 7) / 8);
      }
      std::atomic_thread_fence(std::memory_order_acquire);  // (4)
      // relaxed: ordered after the copy by the fence (4).
      if (s->version.load(std::memory_order_relaxed) != v1) continue;  // a write landed: retry
      if (SLEET_UNLIKELY(r.len > c.max_value_size)) {
        throw_error(errc::not_sleet, describe(name()), "damaged slot (value length)");
      }
      r.found = true;
      r.slot = (home + d) & (c.slots - 1);
      r.version = v1;
      return r;
    }
  }
  return {};
}

bool KvStore::contains(std::string_view key) const { return read(make_key(key), nullptr).found; }

std::size_t KvStore::size() const noexcept { return kv_entries_approx(seg_.object()); }

std::vector<KvEntry> KvStore::snapshot() const {
  const KvConfig& c = config();
  std::vector<KvEntry> out;
  std::vector<std::uint64_t> key(c.key_bytes / 8), value(c.value_bytes / 8);
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    KvSlot* s = slot_at(slots_, c, i);
    for (;;) {
      const std::uint64_t v1 = s->version.load(std::memory_order_acquire);  // (2)
      if (kv_state(s->state.load(std::memory_order_acquire)) != kKvLive) break;  // (6)
      const unsigned b = v1 & 1;
      // relaxed (all): validated by the version re-check below.
      const std::uint32_t klen = s->key_len.load(std::memory_order_relaxed);
      const std::uint32_t vlen = s->value_len[b].load(std::memory_order_relaxed);
      const std::uint64_t fp = s->value_fp[b].load(std::memory_order_relaxed);
      if (klen > c.key_bytes || vlen > c.value_bytes) continue;  // torn: re-read
      load_words(key.data(), s->key_words(), (klen + 7) / 8);
      load_words(value.data(), s->value_words(c, b), (vlen + 7) / 8);
      std::atomic_thread_fence(std::memory_order_acquire);  // (4)
      if (s->version.load(std::memory_order_relaxed) != v1) continue;
      KvEntry e;
      e.store = std::string(name());
      e.key.assign(reinterpret_cast<const char*>(key.data()), klen);
      e.fingerprint = fp;
      e.type_name = type_name_of(fp);
      const auto* bytes = reinterpret_cast<const std::byte*>(value.data());
      e.bytes.assign(bytes, bytes + vlen);
      out.push_back(std::move(e));
      break;
    }
  }
  return out;
}

bool KvStore::wait_for_change(std::string_view key, std::chrono::nanoseconds timeout) const {
  const Key k = make_key(key);
  const Deadline deadline = timeout >= std::chrono::hours(24 * 365 * 100)
                                ? kForever
                                : Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  KvStripe& stripe = stripes_[stripe_of(k.hash, config())];
  const Raw before = read(k, nullptr);
  auto changed = [&] {
    const Raw now = read(k, nullptr);
    return now.found != before.found || now.slot != before.slot || now.version != before.version;
  };
  for (;;) {
    // relaxed: ordered before the re-check by heavy_fence() (futex.hpp protocol).
    stripe.watchers.fetch_add(1, std::memory_order_relaxed);
    // acquire: a bump we read comes with the write that preceded it.
    const std::uint32_t epoch = stripe.changes.load(std::memory_order_acquire);
    heavy_fence();
    bool done = changed();
    if (!done && Clock::now() < deadline) {
      futex_wait(&stripe.changes, epoch, deadline);
      done = changed();
    }
    stripe.watchers.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as above
    if (done) return true;
    if (Clock::now() >= deadline) return false;
  }
}

namespace {
// A key's change token: which slot holds it and that slot's version.
std::uint64_t change_token(bool found, std::uint64_t slot, std::uint64_t version) noexcept {
  return found ? (slot << 40) ^ version ^ (std::uint64_t{1} << 63) : 0;
}
}  // namespace

detail::WaitSource KvStore::wait_source(std::string_view key) const {
  struct KeyWatch {
    KeyWatch(KvStore s, Key k) : store(std::move(s)), key(k) {}
    KvStore store;  // a view of its own (shared mapping)
    Key key;
    std::atomic<std::uint64_t> seen{0};  // the token last reported
  };
  auto watch = std::make_shared<KeyWatch>(KvStore(seg_.share()), make_key(key));
  auto token = [](const KeyWatch& w) noexcept {
    const Raw r = w.store.read(w.key, nullptr);
    return change_token(r.found, r.slot, r.version);
  };
  // relaxed: the watch's own state (a WaitSet's thread, its watcher thread).
  watch->seen.store(token(*watch), std::memory_order_relaxed);
  KvStripe& stripe = watch->store.stripes_[stripe_of(watch->key.hash, config())];
  detail::WaitSource s;
  s.word = &stripe.changes;
  s.waiters = &stripe.watchers;
  s.ready = [](detail::WaitSource& self) noexcept {
    auto* w = static_cast<KeyWatch*>(self.keep.get());
    const Raw r = w->store.read(w->key, nullptr);
    // relaxed: as above.
    return change_token(r.found, r.slot, r.version) != w->seen.load(std::memory_order_relaxed);
  };
  s.reported = [](detail::WaitSource& self) noexcept {
    auto* w = static_cast<KeyWatch*>(self.keep.get());
    const Raw r = w->store.read(w->key, nullptr);
    w->seen.store(change_token(r.found, r.slot, r.version), std::memory_order_relaxed);  // relaxed: as above
  };
  s.keep = std::move(watch);
  return s;
}

// ---- writers ----

namespace {

// Recounts the live keys of a stripe whose lock holder died mid-write.
void recount(std::byte* slots, const KvConfig& c, KvStripe* stripes, std::uint64_t stripe) {
  std::int64_t n = 0;
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    KvSlot* s = slot_at(slots, c, i);
    // relaxed: we hold the stripe lock; only our stripe's writers change
    // these slots' membership in this stripe.
    if (kv_state(s->state.load(std::memory_order_relaxed)) == kKvLive &&
        stripe_of(s->hash.load(std::memory_order_relaxed), c) == stripe) {
      ++n;
    }
  }
  stripes[stripe].count.store(n, std::memory_order_relaxed);  // relaxed: a statistic
}

void lock_stripe(std::byte* slots, const KvConfig& c, KvStripe* stripes, std::uint64_t i) {
  KvStripe& s = stripes[i];
  const auto me = static_cast<std::uint32_t>(current_pid());
  for (unsigned spins = 0;; ++spins) {
    std::uint32_t cur = 0;
    // acquire (7): pairs with the release in unlock_stripe().
    if (s.owner.compare_exchange_weak(cur, me, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      return;
    }
    if (cur == 0) continue;
    if (spins < 128) {
      cpu_relax();
      continue;
    }
    if ((spins & 63) == 0 && !pid_alive(static_cast<int>(cur))) {
      // The holder died with the lock: take it over (acquire, as above) and
      // repair what a killed writer can leave stale.
      if (s.owner.compare_exchange_strong(cur, me, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
        recount(slots, c, stripes, i);
        return;
      }
      continue;
    }
    if (spins < 1024) {
      ::sched_yield();
    } else {
      pause_briefly();
    }
  }
}

void unlock_stripe(KvStripe& s) noexcept {
  s.owner.store(0, std::memory_order_release);  // release (7)
}

// Tells wait_for_change() sleepers of this stripe that something changed.
void announce_change(KvStripe& s) noexcept {
  // release (8): a sleeper that reads the new count sees the write.
  s.changes.fetch_add(1, std::memory_order_release);
  light_fence();
  // relaxed: the fence pairs with heavy_fence() in wait_for_change().
  if (s.watchers.load(std::memory_order_relaxed) != 0) futex_wake(&s.changes, INT_MAX);
}

// The slot holding `key`, or nullptr. Caller holds the key's stripe lock,
// so the key's own slot cannot change under it.
KvSlot* find(std::byte* slots, const KvConfig& c, const std::uint64_t* key, std::size_t len,
             std::uint64_t hash, std::uint64_t* index) {
  const std::uint64_t home = hash & (c.slots - 1);
  const std::uint32_t reach = slot_at(slots, c, home)->reach.load(std::memory_order_acquire);
  for (std::uint64_t d = 0; d <= reach; ++d) {
    KvSlot* s = slot_at(slots, c, home + d);
    // acquire: pairs with (5); a live slot's key is complete.
    const std::uint32_t st = kv_state(s->state.load(std::memory_order_acquire));
    if (st == kKvEmpty) return nullptr;
    if (st == kKvLive && same_key(s, key, len, hash)) {
      if (index) *index = (home + d) & (c.slots - 1);
      return s;
    }
  }
  return nullptr;
}

}  // namespace

KvStore::Writer::Writer(KvStore& kv, const Key& key)
    : kv_(kv), key_(key), stripe_(stripe_of(key.hash, kv.config())) {
  lock_stripe(kv_.slots_, kv_.config(), kv_.stripes_, stripe_);
}

KvStore::Writer::~Writer() { unlock_stripe(kv_.stripes_[stripe_]); }

KvStore::Raw KvStore::Writer::current(std::uint64_t* out) const {
  const KvConfig& c = kv_.config();
  Raw r;
  KvSlot* s = find(kv_.slots_, c, key_.words, key_.len, key_.hash, &r.slot);
  if (s == nullptr) return r;
  // relaxed (all): we hold the stripe lock, nobody else writes this slot.
  r.version = s->version.load(std::memory_order_relaxed);
  const unsigned b = r.version & 1;
  r.len = s->value_len[b].load(std::memory_order_relaxed);
  r.fp = s->value_fp[b].load(std::memory_order_relaxed);
  if (out != nullptr) load_words(out, s->value_words(c, b), (r.len + 7) / 8);
  r.found = true;
  return r;
}

void KvStore::Writer::write(const std::uint64_t* words, std::uint32_t len, std::uint64_t fp,
                            std::string_view type_name) {
  const KvConfig& c = kv_.config();
  register_type(kv_.types_, fp, type_name);
  const std::size_t n = (len + 7) / 8;
  if (KvSlot* s = find(kv_.slots_, c, key_.words, key_.len, key_.hash, nullptr)) {
    // Update in place: fill the inactive buffer, publish it with one store.
    // relaxed: only we write this slot.
    const std::uint64_t v = s->version.load(std::memory_order_relaxed);
    const unsigned b = (v & 1) ^ 1;
    // release (3): a reader still copying buffer b from two versions ago
    // sees the version move if it sees any byte we write next.
    std::atomic_thread_fence(std::memory_order_release);
    store_words(s->value_words(c, b), words, n);
    s->value_len[b].store(len, std::memory_order_relaxed);  // relaxed: published by (1)
    s->value_fp[b].store(fp, std::memory_order_relaxed);
    s->version.store(((v >> 1) + 1) << 1 | b, std::memory_order_release);  // (1)
    announce_change(kv_.stripes_[stripe_]);
    return;
  }
  // Insert: claim the first free slot from home (empty, tombstone, or
  // claimed by a writer that died).
  const std::uint64_t home = key_.hash & (c.slots - 1);
  const int me = current_pid();
  for (std::uint64_t d = 0; d < c.slots; ++d) {
    KvSlot* s = slot_at(kv_.slots_, c, home + d);
    // relaxed: the CAS below decides; nothing is read through this load.
    std::uint64_t st = s->state.load(std::memory_order_relaxed);
    const std::uint32_t state = kv_state(st);
    const bool free = state == kKvEmpty || state == kKvTombstone ||
                      (state == kKvClaimed && !pid_alive(kv_owner(st)));
    // acq_rel: acquire the previous occupant's writes to the slot before we
    // overwrite them; release is not needed but costs nothing on a CAS.
    if (!free || !s->state.compare_exchange_strong(st, kv_state_word(kKvClaimed, me),
                                                    std::memory_order_acq_rel,
                                                    std::memory_order_relaxed)) {
      continue;
    }
    // Raise the home's reach before the key can be seen (release; pairs
    // with the acquire loads of reach in read() and find()).
    auto& reach = slot_at(kv_.slots_, c, home)->reach;
    std::uint32_t r = reach.load(std::memory_order_relaxed);
    while (r < d && !reach.compare_exchange_weak(r, static_cast<std::uint32_t>(d),
                                                 std::memory_order_release,
                                                 std::memory_order_relaxed)) {
    }
    // Move the version before touching bytes a stale reader may still be
    // copying (the slot's previous key and value).
    const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
    // release: a reader whose acquire load sees this bump also sees the
    // slot's claimed state, so it cannot validate a copy of the old key's
    // state against it (writers of other stripes take no lock we hold).
    s->version.store(v + 2, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_release);  // (3)
    s->hash.store(key_.hash, std::memory_order_relaxed);  // relaxed: published by (1), (5)
    s->key_len.store(static_cast<std::uint32_t>(key_.len), std::memory_order_relaxed);
    store_words(s->key_words(), key_.words, (key_.len + 7) / 8);
    store_words(s->value_words(c, 0), words, n);
    s->value_len[0].store(len, std::memory_order_relaxed);
    s->value_fp[0].store(fp, std::memory_order_relaxed);
    s->version.store(((v >> 1) + 2) << 1, std::memory_order_release);  // (1), buffer 0
    s->state.store(kv_state_word(kKvLive, me), std::memory_order_release);  // (5)
    KvStripe& stripe = kv_.stripes_[stripe_];
    // relaxed: only the lock holder writes the count.
    stripe.count.store(stripe.count.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
    announce_change(stripe);
    return;
  }
  throw_error(errc::full, describe(kv_.name()),
              "no free slot for key " +
                  quoted(std::string_view(reinterpret_cast<const char*>(key_.words), key_.len)) +
                  " (" + std::to_string(kv_.size()) + " keys in " + std::to_string(c.slots) +
                  " slots)");
}

bool KvStore::Writer::erase() {
  const KvConfig& c = kv_.config();
  KvSlot* s = find(kv_.slots_, c, key_.words, key_.len, key_.hash, nullptr);
  if (s == nullptr) return false;
  const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
  // release: a reader that sees the new version re-reads the state below.
  s->version.store(v + 2, std::memory_order_release);
  s->state.store(kv_state_word(kKvTombstone, 0), std::memory_order_release);  // (5)
  KvStripe& stripe = kv_.stripes_[stripe_];
  stripe.count.store(stripe.count.load(std::memory_order_relaxed) - 1,
                     std::memory_order_relaxed);  // relaxed: only the lock holder writes it
  announce_change(stripe);
  return true;
}

bool KvStore::erase(std::string_view key) {
  const Key k = make_key(key);
  Writer w(*this, k);
  return w.erase();
}

void KvStore::clear() {
  const KvConfig& c = config();
  for (std::uint64_t i = 0; i < c.stripes; ++i) lock_stripe(slots_, c, stripes_, i);
  // With every stripe held no writer is inside the table (a claimed slot
  // belongs to a dead writer), so slots may go back to empty: misses stop
  // scanning early again.
  // Two passes, so that a clear() killed half-way never hides a live key
  // behind an empty slot: first every live key becomes a tombstone, then
  // every slot becomes empty.
  for (const std::uint32_t to : {kKvTombstone, kKvEmpty}) {
    for (std::uint64_t i = 0; i < c.slots; ++i) {
      KvSlot* s = slot_at(slots_, c, i);
      // relaxed: all writers are locked out.
      const std::uint32_t st = kv_state(s->state.load(std::memory_order_relaxed));
      if (st == kKvEmpty || (to == kKvTombstone && st != kKvLive)) continue;
      const std::uint64_t v = s->version.load(std::memory_order_relaxed);
      s->version.store(v + 2, std::memory_order_release);  // readers of this slot retry
      s->state.store(kv_state_word(to, 0), std::memory_order_release);
      if (to == kKvTombstone) {
        KvStripe& stripe = stripes_[stripe_of(s->hash.load(std::memory_order_relaxed), c)];
        stripe.count.store(stripe.count.load(std::memory_order_relaxed) - 1,
                           std::memory_order_relaxed);  // relaxed: we hold every stripe lock
      }
    }
  }
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    slot_at(slots_, c, i)->reach.store(0, std::memory_order_relaxed);  // relaxed: table empty
  }
  for (std::uint64_t i = 0; i < c.stripes; ++i) {
    stripes_[i].count.store(0, std::memory_order_relaxed);
    announce_change(stripes_[i]);
    unlock_stripe(stripes_[i]);
  }
}

}  // namespace sleet
