// sleet/detail/kv_table.hpp — the shared-memory hash table behind KvStore.
//
// Open addressing with linear probing over fixed-size slots. Segment layout
// (after the segment header):
//
//   +0        KvConfig        slots, key/value sizes, stride, offsets
//   +128      KvStripe[S]     writer locks, change counters, live counts
//   +types    KvType[64]      fingerprint -> type name (for error messages)
//   +slots    slot[N]         N = capacity rounded up to a power of two
//
// One slot (stride = 64 + key bytes + 2 x value bytes, rounded to 64):
//
//   0         8         16        24      28      32        40        48
//   +---------+---------+---------+-------+-------+---------+---------+
//   | version |  state  |  hash   |keylen | reach |vlen[0,1]| vfp[0]  | vfp[1]
//   +---------+---------+---------+-------+-------+---------+---------+
//   | key (max_key_size, zero-padded to 8)                            |
//   | value buffer 0 (max_value_size, padded to 8)                    |
//   | value buffer 1                                                  |
//
// - version = counter << 1 | active value buffer. Every change of the slot
//   (a value written, the key claimed, erased) bumps the counter.
// - state = owner pid << 32 | {empty, claimed, live, tombstone}. A slot is
//   empty until first claimed and never empty again (except by clear());
//   claimed while a writer fills it; tombstone after erase, reusable.
// - reach (in the key's home slot) = the largest distance from home at
//   which a key with this home has ever been placed. Lookups scan home ..
//   home + reach and stop early at an empty slot, so tombstones left by
//   insert/erase churn never make misses scan the table.
//
// Readers (get, contains, snapshot) never write shared memory and never
// wait: they read version (acquire), the key and the active buffer with
// relaxed word loads, an acquire fence, then version again, and retry the
// slot only if a write completed in between. A writer killed at any point
// costs readers nothing: a value is written into the inactive buffer and
// published by one release store of version; until then readers see the old
// value, and a half-written buffer is never published.
//
// Writers of one key are serialised by one of S stripe locks (chosen by
// the key's hash), so a key is never inserted twice; writers of keys in
// other stripes run in parallel, claiming free slots with a CAS on state.
// A stripe lock holds its owner's pid; a waiter that finds the owner dead
// takes the lock over and recounts the stripe's live keys (the only state a
// dead writer can leave stale). A slot claimed by a dead writer is free for
// the next one.
//
// Synchronization (numbers are referenced in core/kv_store.cpp)
// (1) writer: version.store(v', release) publishes a value buffer, key and
//     lengths; pairs with the reader's version.load(acquire) (2).
// (3) writer: atomic_thread_fence(release) after bumping version and before
//     overwriting bytes a reader may be copying; pairs with the reader's
//     acquire fence (4) before it re-reads version, so a reader that saw
//     any overwritten byte also sees the bump and retries.
// (5) state.store(live, release) after the key and value are in place;
//     pairs with the reader's state.load(acquire) (6).
// (7) stripe lock: CAS 0 -> pid (acquire) / store 0 (release).
// (8) stripe change counter: fetch_add(release) after a write, then the
//     eventcount protocol of futex.hpp for wait_for_change().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sleet/detail/platform.hpp"

namespace sleet::detail {

inline constexpr std::uint32_t kKvEmpty = 0;
inline constexpr std::uint32_t kKvClaimed = 1;
inline constexpr std::uint32_t kKvLive = 2;
inline constexpr std::uint32_t kKvTombstone = 3;
inline constexpr std::size_t kKvTypes = 64;
inline constexpr std::size_t kKvMaxKeySize = 1024;

struct KvConfig {
  std::uint64_t slots;  // power of two
  std::uint64_t capacity;
  std::uint64_t max_key_size;
  std::uint64_t max_value_size;
  std::uint64_t key_bytes;    // max_key_size rounded up to 8
  std::uint64_t value_bytes;  // max_value_size rounded up to 8
  std::uint64_t stride;
  std::uint64_t stripes;  // power of two
  std::uint64_t types_offset;
  std::uint64_t slots_offset;
  std::byte pad[kFalseSharing - 80];
};
static_assert(sizeof(KvConfig) == kFalseSharing);

struct alignas(kCacheLine) KvStripe {
  std::atomic<std::uint32_t> owner{0};     // pid holding the lock, 0 if free
  std::atomic<std::uint32_t> changes{0};   // futex word: bumped after every write
  std::atomic<std::uint32_t> watchers{0};  // sleepers in wait_for_change()
  std::uint32_t reserved{0};
  std::atomic<std::int64_t> count{0};      // live keys of this stripe
};
static_assert(sizeof(KvStripe) == kCacheLine);

struct KvType {
  std::atomic<std::uint64_t> fingerprint{0};  // 0 free, 1 being written
  char name[120];
};
static_assert(sizeof(KvType) == 128);

struct alignas(kCacheLine) KvSlot {
  std::atomic<std::uint64_t> version{0};
  std::atomic<std::uint64_t> state{0};
  std::atomic<std::uint64_t> hash{0};
  std::atomic<std::uint32_t> key_len{0};
  std::atomic<std::uint32_t> reach{0};
  std::atomic<std::uint32_t> value_len[2]{};
  std::atomic<std::uint64_t> value_fp[2]{};

  std::uint64_t* key_words() noexcept { return reinterpret_cast<std::uint64_t*>(this + 1); }
  std::uint64_t* value_words(const KvConfig& c, unsigned buffer) noexcept {
    return key_words() + (c.key_bytes + buffer * c.value_bytes) / 8;
  }
};
static_assert(sizeof(KvSlot) == kCacheLine);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

constexpr std::uint32_t kv_state(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word);
}
constexpr int kv_owner(std::uint64_t word) noexcept { return static_cast<int>(word >> 32); }
constexpr std::uint64_t kv_state_word(std::uint32_t state, int owner) noexcept {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(owner)) << 32) | state;
}

// Whether `c` is exactly the layout create() derives from its capacity, key
// and value sizes, and fits in `object_size` bytes. No derived field of an
// untrusted segment is believed without this (KvStore::open, the registry).
bool kv_layout_valid(const KvConfig& c, std::uint64_t object_size) noexcept;
// Live keys summed over the stripes of a table whose layout is valid (racy
// while writers run; needs only read access).
std::uint64_t kv_entries_approx(const std::byte* object) noexcept;

// Word-wise relaxed atomic copies: the seqlock's reads race with writes by
// design, and atomic accesses make that race defined (and visible to TSan).
inline void load_words(std::uint64_t* dst, std::uint64_t* shared, std::size_t words) noexcept {
  for (std::size_t i = 0; i < words; ++i) {
    dst[i] = std::atomic_ref<std::uint64_t>(shared[i]).load(std::memory_order_relaxed);
  }
}
inline void store_words(std::uint64_t* shared, const std::uint64_t* src, std::size_t words) noexcept {
  for (std::size_t i = 0; i < words; ++i) {
    std::atomic_ref<std::uint64_t>(shared[i]).store(src[i], std::memory_order_relaxed);
  }
}

// 64-bit hash of a key, 8 bytes at a time.
inline std::uint64_t kv_hash(const std::uint64_t* words, std::size_t len) noexcept {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
  const std::size_t n = (len + 7) / 8;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= words[i];
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
  }
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 32;
  return h;
}

}  // namespace sleet::detail
