// sleet/kv_store.hpp — KvStore: a named key-value store in shared memory
// that every process reads directly.
//
//   auto kv = sleet::KvStore::open_or_create("settings", {.capacity = 4096});
//   kv.set("mode", std::string("fast"));            // any process
//   auto mode = kv.get<std::string>("mode");         // any other: std::optional
//   kv.update<int>("hits", [](std::optional<int> v) { return v.value_or(0) + 1; });
//   kv.get_many<int>(keys, [](std::size_t i, std::optional<int> v) { ... });
//   kv.wait_for_change("mode", 1s);                   // sleep until someone writes it
//
// Keys are 1..max_key_size bytes. Values go through Codec<V> (codec.hpp):
// trivially copyable types raw, others with cereal. Each value carries its
// type's fingerprint, so get<int> on a stored std::string is
// errc::type_mismatch naming the key and both types. A value's encoding is
// at most max_value_size bytes, unless the store was created with an
// overflow area (KvOptions::overflow_bytes): then larger values live there,
// as long as it has room.
//
// get_encoded() reads a value undecoded (its codec's bytes and its type
// fingerprint), for readers that decode the encoding themselves (the
// Python binding).
//
// Reads (get, get_many, get_or, get_encoded, contains, snapshot, for_each) are lock-free,
// never write shared memory and never wait for a writer: see
// detail/kv_table.hpp for the layout (tags probed first, key and value in
// one or two adjacent lines) and the seqlock that makes a killed writer
// harmless. get_many() overlaps the memory accesses of a batch of lookups
// (prefetches), so a batch of cache-missing gets costs little more than one.
// Writes to one key are serialised by a stripe lock; writes to keys in
// other stripes run in parallel. update() and compare_exchange() are atomic
// read-modify-writes under that lock.
//
// Errors: create/open/remove and bad keys or values throw sleet::Error
// naming the store: errc::invalid_argument (empty key), errc::too_large (key
// or value over its maximum), errc::full (no free slot, or no room in the
// overflow area), errc::type_mismatch, errc::kind_mismatch (the name is a
// channel, not a store), errc::not_sleet (damaged bytes in the segment).
//
// Threads: a KvStore object may be shared by threads. The function given to
// update() runs under the key's stripe lock and must not write to the store
// (a write to a key of the same stripe would wait for itself).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sleet/codec.hpp"
#include "sleet/detail/kv_table.hpp"
#include "sleet/detail/wait_source.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"

namespace sleet {

struct KvOptions {
  std::size_t capacity = 4096;       // entries; the table has the next power of two slots
  std::size_t max_key_size = 64;     // bytes
  std::size_t max_value_size = 256;  // bytes of an encoded value kept in its slot
  // Bytes of shared memory for values larger than max_value_size (0: such
  // values are errc::too_large). Sized for a few large values, not for all.
  std::size_t overflow_bytes = 0;
  unsigned permissions = 0600;
};

class KvStore;

// One entry of snapshot()/for_each(): the key and the encoded value.
namespace detail {
// A value of `key` that fails to decode: rethrows `e` (errc::decode_failed)
// as "kv store '<store>': key '<key>': <what the codec said>"; any other
// error unchanged.
[[noreturn]] SLEET_COLD void throw_kv_decode_failed(std::string_view store, std::string_view key,
                                                    const Error& e);
}  // namespace detail

struct KvEntry {
  std::string store;  // the store it came from (for messages)
  std::string key;
  std::string type_name;
  std::uint64_t fingerprint = 0;
  std::vector<std::byte> bytes;

  template <class V>
  bool is() const noexcept {
    return fingerprint == detail::fingerprint<V>(Codec<V>::name);
  }
  // Throws errc::type_mismatch if the value is not a V.
  template <class V>
  V as() const;
};

class KvStore {
 public:
  KvStore() = default;
  KvStore(KvStore&&) noexcept = default;
  KvStore& operator=(KvStore&&) noexcept = default;

  static KvStore create(std::string_view name, const KvOptions& options = {});
  static KvStore open(std::string_view name);
  static KvStore open_or_create(std::string_view name, const KvOptions& options = {});
  static bool remove(std::string_view name);

  template <class V>
  void set(std::string_view key, const V& value) {
    const detail::KvKey k = make_key(key);
    const Encoded e = encode(value);
    Writer w(*this, k);
    w.write(e.words, e.len, e.fingerprint, e.type);
  }

  template <class V>
  std::optional<V> get(std::string_view key) const {
    detail::KvKey k;
    make_key(key, k);
    return get_key<V>(key, k);
  }

  // The value of `key` undecoded: its codec's bytes into `out` (resized to
  // them) and the fingerprint of its type, for a reader that decodes the
  // encoding itself (the Python binding reads an encoded sleet::Dynamic
  // straight into Python objects, and learns a value's type in the same
  // lookup). std::nullopt if the key is missing. The bytes are as
  // untrusted as any read from the segment: the caller decodes them with
  // its bounds checked.
  std::optional<std::uint64_t> get_encoded(std::string_view key, std::vector<std::byte>& out) const {
    detail::KvKey k;
    make_key(key, k);
    std::vector<std::uint64_t>& buf = scratch(1);
    detail::KvSink sink{&buf};
    const detail::KvFound r = read(k, &sink);
    if (!r.found) return std::nullopt;
    const auto* p = reinterpret_cast<const std::byte*>(buf.data());
    out.assign(p, p + r.len);
    return r.fp;
  }

  // Batch get: fn(i, std::optional<V>) for each keys[i], in order. The
  // lookups of up to kBatch keys at a time are started together (their
  // metadata lines, then their slots, are prefetched) so that their cache
  // misses overlap. Each result is one consistent value, as with get();
  // the batch is not a point-in-time snapshot while writers run.
  static constexpr std::size_t kBatch = 8;
  template <class V, class F>
  void get_many(std::span<const std::string_view> keys, F&& fn) const {
    detail::KvKey batch[kBatch];
    for (std::size_t at = 0; at < keys.size(); at += kBatch) {
      const std::size_t n = keys.size() - at < kBatch ? keys.size() - at : kBatch;
      for (std::size_t i = 0; i < n; ++i) {
        make_key(keys[at + i], batch[i]);
        view_.prefetch_meta(batch[i]);
      }
      for (std::size_t i = 0; i < n; ++i) view_.prefetch_slot(batch[i]);
      for (std::size_t i = 0; i < n; ++i) fn(at + i, get_key<V>(keys[at + i], batch[i]));
    }
  }
  template <class V>
  V get_or(std::string_view key, V fallback) const {
    auto v = get<V>(key);
    return v ? std::move(*v) : std::move(fallback);
  }
  bool contains(std::string_view key) const;
  bool erase(std::string_view key);
  // Live keys, summed over the stripes (racy while writers run).
  std::size_t size() const noexcept;
  void clear();

  // Atomic read-modify-write: fn(std::optional<V> current) -> V new value.
  // Other writers of this key wait; readers see the old or the new value.
  template <class V, class F>
  V update(std::string_view key, F fn) {
    const detail::KvKey k = make_key(key);
    Writer w(*this, k);
    std::vector<std::uint64_t>& buf = scratch(1);
    detail::KvSink sink{&buf};
    const detail::KvFound r = w.current(&sink);
    std::optional<V> current;
    if (r.found) current = decode<V>(key, r, buf.data());
    V next = fn(std::move(current));
    const Encoded e = encode(next);
    w.write(e.words, e.len, e.fingerprint, e.type);
    return next;
  }
  // Writes `desired` if the key holds a value equal to `expected` (same type
  // and same encoding). False if it holds something else or nothing.
  template <class V>
  bool compare_exchange(std::string_view key, const V& expected, const V& desired) {
    const detail::KvKey k = make_key(key);
    const Encoded want = encode(expected);  // in scratch buffer 0
    Writer w(*this, k);
    std::vector<std::uint64_t>& buf = scratch(1);
    detail::KvSink sink{&buf};
    const detail::KvFound r = w.current(&sink);
    if (!r.found || r.fp != want.fingerprint || r.len != want.len ||
        std::memcmp(buf.data(), want.words, want.len) != 0) {
      return false;
    }
    const Encoded e = encode(desired);
    w.write(e.words, e.len, e.fingerprint, e.type);
    return true;
  }

  // Every live entry (each one consistent; the set is not a point-in-time
  // snapshot while writers run).
  std::vector<KvEntry> snapshot() const;
  template <class F>
  void for_each(F fn) const {
    for (const KvEntry& e : snapshot()) fn(e);
  }

  // Sleeps until `key` is written or erased by any process (true), or the
  // timeout passes (false).
  bool wait_for_change(std::string_view key, std::chrono::nanoseconds timeout) const;

  std::string_view name() const noexcept { return seg_.name(); }
  std::size_t capacity() const noexcept { return config().capacity; }
  std::size_t slots() const noexcept { return config().slots; }
  std::size_t max_key_size() const noexcept { return config().max_key_size; }
  std::size_t max_value_size() const noexcept { return config().max_value_size; }
  std::size_t overflow_bytes() const noexcept { return config().overflow_bytes; }
  // Bytes of the overflow area in use (runs of 64-byte blocks; racy).
  std::size_t overflow_used_approx() const noexcept;

  // Name of a value type this store has seen (for messages).
  std::string type_name_of(std::uint64_t fingerprint) const;

  // What a WaitSet waits on for `key` (wait_set.hpp): ready once per change
  // (set, update, erase) since it was made or last reported.
  detail::WaitSource wait_source(std::string_view key) const;

 private:
  friend struct KvEntry;
  struct Encoded {
    const std::uint64_t* words;
    std::uint32_t len;
    std::uint64_t fingerprint;
    std::string_view type;
  };

  // Holds the key's stripe lock; finds or inserts the key's slot on write.
  class Writer {
   public:
    Writer(KvStore& kv, const detail::KvKey& key);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    detail::KvFound current(detail::KvSink* out) const;
    void write(const std::uint64_t* words, std::uint32_t len, std::uint64_t fp,
               std::string_view type_name);
    bool erase();

   private:
    // A new key: claims a slot; the value is `words`, or the overflow run
    // `run` (already written, the overflow lock held) if not kNoRun.
    void insert(const std::uint64_t* words, std::uint32_t len, std::uint64_t fp, std::uint32_t run);
    KvStore& kv_;
    const detail::KvKey& key_;
    std::uint64_t stripe_;
  };
  class OverflowLock;

  explicit KvStore(detail::Segment seg);
  const detail::KvConfig& config() const noexcept { return *view_.config; }
  // The largest encoding this store can hold (max_value_size, or an
  // overflow run's capacity).
  std::size_t max_stored_size() const noexcept;
  void make_key(std::string_view key, detail::KvKey& k) const {
    // (The kKvMaxKeySize bound is implied by the config's; spelt out so
    // the compiler sees the copy below stay inside k.words.)
    if (SLEET_UNLIKELY(key.empty() || key.size() > config().max_key_size ||
                       key.size() > detail::kKvMaxKeySize)) {
      throw_bad_key(key);
    }
    const std::size_t words = (key.size() + 7) / 8;
    k.words[words - 1] = 0;
    std::memcpy(k.words, key.data(), key.size());
    k.len = key.size();
    k.hash = detail::kv_hash(k.words, k.len);
  }
  detail::KvKey make_key(std::string_view key) const {
    detail::KvKey k;
    make_key(key, k);
    return k;
  }
  [[noreturn]] SLEET_COLD void throw_bad_key(std::string_view key) const;
  detail::KvFound read(const detail::KvKey& key, detail::KvSink* out) const {
    return view_.lookup(key, out, [&](detail::KvDamage d) { throw_damaged(key, d); });
  }
  // A raw value is copied straight into a buffer of its size; others into
  // the per-thread buffer, then decoded.
  template <class V>
  static constexpr bool kRawValue = std::is_trivially_copyable_v<V> && Codec<V>::name == "raw";
  template <class V>
  std::optional<V> get_key(std::string_view key, const detail::KvKey& k) const {
    if constexpr (kRawValue<V>) {
      std::uint64_t words[(sizeof(V) + 7) / 8];
      detail::KvSink sink{nullptr, words, std::size(words)};
      const detail::KvFound r = read(k, &sink);
      if (!r.found) return std::nullopt;
      return decode<V>(key, r, words);
    } else {
      std::vector<std::uint64_t>& buf = scratch(1);
      detail::KvSink sink{&buf};
      const detail::KvFound r = read(k, &sink);
      if (!r.found) return std::nullopt;
      return decode<V>(key, r, buf.data());
    }
  }
  // Per-thread buffers, grown on demand: 0 holds encodings, 1 holds values read.
  static std::vector<std::uint64_t>& scratch(int which) {
    thread_local std::vector<std::uint64_t> buffers[2];
    return buffers[which];
  }
  [[noreturn]] SLEET_COLD void throw_value_too_large(std::size_t size) const;
  [[noreturn]] SLEET_COLD void throw_damaged(const detail::KvKey& key, detail::KvDamage d) const;
  [[noreturn]] SLEET_COLD void throw_type_mismatch(std::string_view key, std::uint64_t stored,
                                                   std::uint64_t fingerprint_of_wanted,
                                                   std::string_view wanted) const;

  template <class V>
  Encoded encode(const V& value) const {
    static_assert(HasCodec<V>, "sleet::KvStore: no sleet::Codec<V> for this value type");
    std::vector<std::uint64_t>& buf = scratch(0);
    if (buf.size() < config().value_bytes / 8 + 1) buf.resize(config().value_bytes / 8 + 1);
    std::size_t n = Codec<V>::encode(value, reinterpret_cast<std::byte*>(buf.data()), buf.size() * 8);
    if (SLEET_UNLIKELY(n > buf.size() * 8)) {
      // Larger than any value so far: measured, not written. Grow and redo
      // (only if the store can hold it at all).
      if (n > max_stored_size()) throw_value_too_large(n);
      buf.resize(n / 8 + 1);
      n = Codec<V>::encode(value, reinterpret_cast<std::byte*>(buf.data()), buf.size() * 8);
    }
    if (SLEET_UNLIKELY(n > config().max_value_size) && n > max_stored_size()) {
      throw_value_too_large(n);
    }
    // Zero the tail of the last word: equal values have equal words.
    if (n % 8) std::memset(reinterpret_cast<std::byte*>(buf.data()) + n, 0, 8 - n % 8);
    // static constexpr: computed at compile time, not per call.
    static constexpr std::uint64_t kFingerprint = detail::fingerprint<V>(Codec<V>::name);
    static constexpr std::string_view kTypeName = detail::type_name<V>();
    return {buf.data(), static_cast<std::uint32_t>(n), kFingerprint, kTypeName};
  }
  template <class V>
  V decode(std::string_view key, const detail::KvFound& r, const std::uint64_t* buf) const {
    static constexpr std::uint64_t kFingerprint = detail::fingerprint<V>(Codec<V>::name);
    if (r.fp != kFingerprint) {
      throw_type_mismatch(key, r.fp, kFingerprint, detail::type_name<V>());
    }
    V out{};
    try {
      Codec<V>::decode(reinterpret_cast<const std::byte*>(buf), r.len, out);
    } catch (const Error& e) {
      detail::throw_kv_decode_failed(name(), key, e);
    }
    return out;
  }

  detail::Segment seg_;
  detail::KvTableView view_;
};

template <class V>
V KvEntry::as() const {
  if (!is<V>()) {
    throw Error(errc::type_mismatch, "kv store '" + store + "': key '" + key + "' holds '" + type_name +
                                         "', read as '" +
                                         detail::readable_type_name(detail::type_name<V>()) + "'");
  }
  V out{};
  try {
    Codec<V>::decode(bytes.data(), bytes.size(), out);
  } catch (const Error& e) {
    detail::throw_kv_decode_failed(store, key, e);
  }
  return out;
}

}  // namespace sleet
