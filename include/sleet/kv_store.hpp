// sleet/kv_store.hpp — KvStore: a named key-value store in shared memory
// that every process reads directly.
//
//   auto kv = sleet::KvStore::open_or_create("settings", {.capacity = 4096});
//   kv.set("mode", std::string("fast"));            // any process
//   auto mode = kv.get<std::string>("mode");         // any other: std::optional
//   kv.update<int>("hits", [](std::optional<int> v) { return v.value_or(0) + 1; });
//   kv.wait_for_change("mode", 1s);                   // sleep until someone writes it
//
// Keys are 1..max_key_size bytes. Values go through Codec<V> (codec.hpp):
// trivially copyable types raw, others with cereal. Each value carries its
// type's fingerprint, so get<int> on a stored std::string is
// errc::type_mismatch naming the key and both types.
//
// Reads (get, get_or, contains, snapshot, for_each) are lock-free, never
// write shared memory and never wait for a writer: see detail/kv_table.hpp
// for the seqlock with two value buffers that makes a killed writer harmless.
// Writes to one key are serialised by a stripe lock; writes to keys in
// other stripes run in parallel. update() and compare_exchange() are atomic
// read-modify-writes under that lock.
//
// Errors: create/open/remove and bad keys or values throw sleet::Error
// naming the store: errc::invalid_argument (empty key), errc::too_large (key
// or value over its maximum), errc::full (no free slot), errc::type_mismatch,
// errc::kind_mismatch (the name is a channel, not a store).
//
// Threads: a KvStore object may be shared by threads. The function given to
// update() runs under the key's stripe lock and must not write to the store
// (a write to a key of the same stripe would wait for itself).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
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
  std::size_t max_value_size = 256;  // bytes of an encoded value
  unsigned permissions = 0600;
};

class KvStore;

// One entry of snapshot()/for_each(): the key and the encoded value.
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
    const Key k = make_key(key);
    const Encoded e = encode(value);
    Writer w(*this, k);
    w.write(e.words, e.len, e.fingerprint, e.type);
  }

  template <class V>
  std::optional<V> get(std::string_view key) const {
    const Key k = make_key(key);
    std::uint64_t* buf = scratch(value_words(), 1);
    const Raw r = read(k, buf);
    if (!r.found) return std::nullopt;
    return decode<V>(key, r, buf);
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
    const Key k = make_key(key);
    Writer w(*this, k);
    std::uint64_t* buf = scratch(value_words(), 1);
    const Raw r = w.current(buf);
    std::optional<V> current;
    if (r.found) current = decode<V>(key, r, buf);
    V next = fn(std::move(current));
    const Encoded e = encode(next);
    w.write(e.words, e.len, e.fingerprint, e.type);
    return next;
  }
  // Writes `desired` if the key holds a value equal to `expected` (same type
  // and same encoding). False if it holds something else or nothing.
  template <class V>
  bool compare_exchange(std::string_view key, const V& expected, const V& desired) {
    const Key k = make_key(key);
    const Encoded want = encode(expected);  // in scratch buffer 0
    Writer w(*this, k);
    std::uint64_t* buf = scratch(value_words(), 1);
    const Raw r = w.current(buf);
    if (!r.found || r.fp != want.fingerprint || r.len != want.len ||
        std::memcmp(buf, want.words, want.len) != 0) {
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

  // Name of a value type this store has seen (for messages).
  std::string type_name_of(std::uint64_t fingerprint) const;

  // What a WaitSet waits on for `key` (wait_set.hpp): ready once per change
  // (set, update, erase) since it was made or last reported.
  detail::WaitSource wait_source(std::string_view key) const;

 private:
  friend struct KvEntry;
  struct Key {
    std::uint64_t words[detail::kKvMaxKeySize / 8];
    std::size_t len;
    std::uint64_t hash;
  };
  struct Raw {
    bool found = false;
    std::uint32_t len = 0;
    std::uint64_t fp = 0;
    std::uint64_t slot = 0;
    std::uint64_t version = 0;
  };
  struct Encoded {
    const std::uint64_t* words;
    std::uint32_t len;
    std::uint64_t fingerprint;
    std::string_view type;
  };

  // Holds the key's stripe lock; finds or inserts the key's slot on write.
  class Writer {
   public:
    Writer(KvStore& kv, const Key& key);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    Raw current(std::uint64_t* out) const;
    void write(const std::uint64_t* words, std::uint32_t len, std::uint64_t fp,
               std::string_view type_name);
    bool erase();

   private:
    KvStore& kv_;
    const Key& key_;
    std::uint64_t stripe_;
  };

  explicit KvStore(detail::Segment seg);
  const detail::KvConfig& config() const noexcept {
    return *reinterpret_cast<const detail::KvConfig*>(seg_.object());
  }
  std::size_t value_words() const noexcept { return config().value_bytes / 8; }
  Key make_key(std::string_view key) const;
  Raw read(const Key& key, std::uint64_t* out) const;
  // Per-thread buffers, grown once: 0 holds encodings, 1 holds values read.
  static std::uint64_t* scratch(std::size_t words, int which = 0);
  [[noreturn]] void throw_value_too_large(std::size_t size) const;
  [[noreturn]] void throw_type_mismatch(std::string_view key, std::uint64_t stored,
                                        std::string_view wanted) const;

  template <class V>
  Encoded encode(const V& value) const {
    static_assert(HasCodec<V>, "sleet::KvStore: no sleet::Codec<V> for this value type");
    const std::size_t cap = config().value_bytes;
    std::uint64_t* buf = scratch(cap / 8 + 1, 0);
    std::size_t n = Codec<V>::encode(value, reinterpret_cast<std::byte*>(buf), cap);
    if (n > config().max_value_size) throw_value_too_large(n);
    // Zero the tail of the last word: equal values have equal words.
    if (n % 8) std::memset(reinterpret_cast<std::byte*>(buf) + n, 0, 8 - n % 8);
    // static constexpr: computed at compile time, not per call.
    static constexpr std::uint64_t kFingerprint = detail::fingerprint<V>(Codec<V>::name);
    static constexpr std::string_view kTypeName = detail::type_name<V>();
    return {buf, static_cast<std::uint32_t>(n), kFingerprint, kTypeName};
  }
  template <class V>
  V decode(std::string_view key, const Raw& r, const std::uint64_t* buf) const {
    static constexpr std::uint64_t kFingerprint = detail::fingerprint<V>(Codec<V>::name);
    if (r.fp != kFingerprint) {
      throw_type_mismatch(key, r.fp, detail::type_name<V>());
    }
    V out{};
    Codec<V>::decode(reinterpret_cast<const std::byte*>(buf), r.len, out);
    return out;
  }

  detail::Segment seg_;
  detail::KvStripe* stripes_ = nullptr;
  detail::KvType* types_ = nullptr;
  std::byte* slots_ = nullptr;
};

template <class V>
V KvEntry::as() const {
  if (!is<V>()) {
    throw Error(errc::type_mismatch, "kv store '" + store + "': key '" + key + "' holds '" + type_name +
                                         "', read as '" +
                                         detail::readable_type_name(detail::type_name<V>()) + "'");
  }
  V out{};
  Codec<V>::decode(bytes.data(), bytes.size(), out);
  return out;
}

}  // namespace sleet
