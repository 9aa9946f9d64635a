// sleet/detail/kv_table.hpp — the shared-memory hash table behind KvStore
// (layout v2: tags first, one value buffer per slot).
//
// Open addressing with linear probing. A lookup reads the slot metadata
// first — a compact array of one tag byte and one reach byte per slot, 32
// slots per cache line — and touches a slot only where its tag matches the
// key's (a false match costs one extra slot read in 254). A miss and the
// probe of a hit are answered by one metadata line; a hit then reads one
// slot, whose key and value sit next to the slot's small header. The table
// keeps ONE value buffer per slot: the second buffer a seqlock needs so that
// a killed writer leaves the old value readable lives with the writer's
// stripe (one per stripe, not one per slot), out of every line a reader of
// another key touches. Values larger than max_value_size go to an opt-in
// overflow area (KvOptions::overflow_bytes) as runs of 64-byte blocks.
//
// Segment object layout (offsets in KvConfig; every part 128-byte aligned):
//
//   +0         KvConfig          options, derived sizes, offsets
//   +128       KvStripe[S]       writer locks, change counters, live counts, spare headers
//   +types     KvType[64]        fingerprint -> type name (for error messages)
//   +overflow  KvOverflow        overflow lock and journal      (only if overflow_bytes > 0)
//              u32[B]            per block: 0 free, n = a run of n blocks starts here, kRunBody
//   +spares    spare[S]          one value buffer (value_bytes) per stripe
//   +blocks    block[B]          overflow runs, 64 bytes per block
//   +meta      KvMeta[N]         {tag, reach} per slot, N = capacity rounded up to a power of two
//   +slots     slot[N]           stride = 32 + key bytes + value bytes + 16, rounded to 64
//
// One slot (key 16 B, value 64 B: stride 128, two lines of one 128-byte pair):
//
//   0         8         16      20      24        32             32+K     32+K+V
//   +---------+---------+-------+-------+---------+--------------+--------+------------------+
//   | version |  state  |keylen | vlen  |   vfp   | key (K bytes)| value  | run[2] reach pad |
//   +---------+---------+-------+-------+---------+--------------+--------+------------------+
//   '------------------ what a reader of an inline value touches -'        cold tail (16 B)
//
// - version = counter << 2 | where the value is: kInline (the slot's
//   buffer), kSpare (the buffer of the key's stripe), kRun0 / kRun1 (the
//   overflow run named by run[0] / run[1]). Every change bumps the counter.
// - state = owner pid << 32 | {empty, claimed, live, tombstone}: the truth
//   about the slot. Empty until first claimed, never empty again (except by
//   clear()); claimed while a writer fills or erases it; tombstone after
//   erase, reusable.
// - tag (KvMeta) = kTagEmpty while the slot was never used (a probe stops
//   there), kTagFree when it holds no key, else 2..255 from the top byte of
//   the key's hash. Only a hint: a reader trusts only the slot's state and
//   key. A tag leaves kTagEmpty (by CAS, anyone) before the slot can be
//   claimed; otherwise it is written only by the slot's owner: the claimer
//   of a claimed slot, the key's stripe-lock holder for a live one.
// - reach (the home slot's cold tail) = the largest distance from home at
//   which a key with this home has ever been placed; the meta byte holds
//   min(reach, kReachFar), and kReachFar sends the reader to the slot's
//   32-bit copy. Lookups scan home .. home + reach and stop early at an
//   empty tag, so tombstones left by insert/erase churn never make misses
//   scan the table.
//
// Writing a value of a live key (the key's stripe lock held):
//   inline -> inline   copy into the stripe's spare, publish kSpare (readers
//                      now read the spare), rewrite the slot's buffer,
//                      publish kInline: the active value is back in the
//                      reader's line, and at every instant one complete
//                      value is published. The stripe records the slot it
//                      is rewriting (pending), for the repair below.
//   inline/run -> run  write a fresh run, publish kRun b; free the old run.
//   run -> inline      the slot's buffer is inactive: write it, publish.
// An insert claims a free slot (CAS on state), sets tag and reach, writes
// key and value, publishes version, then state = live.
//
// Dead writers. A stripe lock holds its owner's identity (pid + start time,
// so a recycled pid is not mistaken for it); a waiter that finds the
// owner dead takes the lock over and repairs the stripe: a pending slot
// left on kSpare is copied back to its buffer, the stripe's live keys are
// recounted, and slots claimed by dead writers get kTagFree and become
// tombstones. The overflow area has its own lock (taken after a stripe lock,
// never before) and a one-entry journal {slot, new run, old run} written
// before a run is published; whoever takes that lock from a dead owner
// frees whichever of the two runs the slot does not reference, so a killed
// writer leaks no overflow space. Readers never take a lock: a killed
// writer costs them nothing.
//
// Trust. Every length, index, reach and run read from the segment is
// bounded before use: a value that fails a bound with the version unchanged
// is errc::not_sleet naming the store and key; a tag or reach out of range
// costs at most a miss or a longer (bounded) probe.
//
// Synchronization (numbers are referenced in core/kv_store.cpp). Each slot
// is a two-buffer seqlock (seqlock.hpp, same numbers (1)-(4)) whose second
// buffer is the stripe's spare or an overflow run.
// (1) writer: seq_publish(version, v') (a release store) publishes a value
//     (buffer, spare or run), key and lengths; pairs with the reader's
//     seq_read_begin(version) (an acquire load) (2).
// (3) writer: seq_begin_overwrite() (a release fence) after bumping
//     version and before overwriting bytes a reader may be copying (the
//     slot's buffer, the stripe's spare, a freed run reused); pairs with
//     the reader's acquire fence in seq_read_valid() (4) before it re-reads
//     version, so a reader that saw any overwritten byte also sees the bump
//     and retries.
// (5) state.store(live, release) after tag, reach, key and value are in
//     place; pairs with the reader's state.load(acquire) (6).
// (7) stripe and overflow locks: owner words holding the holder's process
//     identity (owner_word.hpp): CAS 0 -> identity (acquire) in
//     lock_owner_word() / store 0 (release) in unlock_owner_word().
// (8) stripe change counter {changes, watchers}: an eventcount (futex.hpp).
//     After a write, EventWords::notify(): light_fence, then if watchers
//     != 0 the epoch moves (release) and sleepers wake; wait_for_change()
//     and WaitSets wait with the eventcount's waiter half. A write that
//     nobody watches leaves `changes` alone (it is a wake-up word, not a
//     count of writes: readers decide "changed" from the slot's version).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/platform.hpp"
#include "sleet/detail/seqlock.hpp"

namespace sleet::detail {

inline constexpr std::uint32_t kKvEmpty = 0;
inline constexpr std::uint32_t kKvClaimed = 1;
inline constexpr std::uint32_t kKvLive = 2;
inline constexpr std::uint32_t kKvTombstone = 3;
inline constexpr std::size_t kKvTypes = 64;
inline constexpr std::size_t kKvMaxKeySize = 1024;

// Where a slot's value is (the low two bits of its version).
inline constexpr std::uint64_t kKvInline = 0;
inline constexpr std::uint64_t kKvSpare = 1;
inline constexpr std::uint64_t kKvRun0 = 2;  // kKvRun0 + b: run[b]
inline constexpr std::uint64_t kKvWhereMask = 3;

inline constexpr std::uint8_t kTagEmpty = 0;
inline constexpr std::uint8_t kTagFree = 1;
inline constexpr std::uint8_t kTagFirst = 2;
// The meta reach byte saturates here; the home slot's 32-bit reach is exact.
inline constexpr std::uint8_t kReachFar = 255;
// Slots whose metadata shares one cache line.
inline constexpr std::size_t kMetaPerLine = 32;

// Overflow area: 64-byte blocks; a run's first 16 bytes are its header.
inline constexpr std::uint64_t kKvBlock = 64;
inline constexpr std::uint64_t kKvRunHeader = 16;
inline constexpr std::uint32_t kRunBody = 0xFFFFFFFFu;  // block meta: inside a run
inline constexpr std::uint32_t kNoRun = 0xFFFFFFFFu;    // run index: none
inline constexpr std::uint64_t kKvMaxOverflow = std::uint64_t{1} << 32;  // bytes
// Parts of the object start on 128-byte boundaries (adjacent-line pairs).
inline constexpr std::size_t kKvAlign = kFalseSharing;

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
  std::uint64_t overflow_offset;
  std::uint64_t overflow_blocks;  // B, 0 without an overflow area
  std::uint64_t spares_offset;
  std::uint64_t blocks_offset;
  std::uint64_t meta_offset;
  std::uint64_t slots_offset;
  std::uint64_t overflow_bytes;  // the option as given
};
static_assert(sizeof(KvConfig) == kFalseSharing);

struct alignas(kCacheLine) KvStripe {
  std::atomic<std::uint64_t> owner{0};     // identity of the lock holder, 0 if free
  std::atomic<std::uint32_t> changes{0};   // eventcount epoch: bumped after a write someone waits for
  std::atomic<std::uint32_t> watchers{0};  // eventcount waiters: wait_for_change(), WaitSets
  std::atomic<std::uint32_t> spare_len{0}; // bytes in this stripe's spare buffer
  std::atomic<std::int64_t> count{0};      // live keys of this stripe
  std::atomic<std::uint64_t> spare_fp{0};  // fingerprint of the spare's value
  std::atomic<std::uint64_t> pending{0};   // slot + 1 being rewritten through the spare, 0 none
  std::byte reserved[kCacheLine - 48];

  // The change counter as an eventcount (futex.hpp), (8).
  EventWords events() noexcept { return {&changes, &watchers}; }
};
static_assert(sizeof(KvStripe) == kCacheLine);
static_assert(offsetof(KvStripe, owner) == 0 && offsetof(KvStripe, changes) == 8 &&
              offsetof(KvStripe, watchers) == 12 && offsetof(KvStripe, spare_len) == 16 &&
              offsetof(KvStripe, count) == 24 && offsetof(KvStripe, spare_fp) == 32 &&
              offsetof(KvStripe, pending) == 40);

struct KvType {
  std::atomic<std::uint64_t> fingerprint{0};  // 0 free, 1 being written
  char name[120];
};
static_assert(sizeof(KvType) == 128);

struct alignas(kKvAlign) KvOverflow {
  std::atomic<std::uint64_t> owner{0};        // identity of the lock holder, 0 if free
  std::atomic<std::uint64_t> journal_slot{0};  // slot + 1 it is published in, 0 none
  std::atomic<std::uint32_t> journal_new{kNoRun};  // run being published
  std::atomic<std::uint32_t> journal_old{kNoRun};  // run it replaces (freed after)
  std::atomic<std::uint64_t> used_blocks{0};  // statistic
  std::atomic<std::uint64_t> recoveries{0};   // dead lock holders repaired (statistic)
  std::byte pad[kKvAlign - 40];
};
static_assert(sizeof(KvOverflow) == kKvAlign);
static_assert(offsetof(KvOverflow, journal_slot) == 8 && offsetof(KvOverflow, journal_new) == 16 &&
              offsetof(KvOverflow, journal_old) == 20 &&
              offsetof(KvOverflow, used_blocks) == 24 && offsetof(KvOverflow, recoveries) == 32);

struct KvMeta {
  std::atomic<std::uint8_t> tag{kTagEmpty};
  std::atomic<std::uint8_t> reach{0};
};
static_assert(sizeof(KvMeta) == 2 && kMetaPerLine * sizeof(KvMeta) == kCacheLine);
static_assert(std::atomic<std::uint8_t>::is_always_lock_free);

// The fixed head of a slot; the key, the value buffer and the cold tail
// follow at offsets that depend on the store's key and value sizes.
struct KvSlot {
  std::atomic<std::uint64_t> version{0};
  std::atomic<std::uint64_t> state{0};
  std::atomic<std::uint32_t> key_len{0};
  std::atomic<std::uint32_t> value_len{0};  // of the slot's own buffer
  std::atomic<std::uint64_t> value_fp{0};   // of the slot's own buffer

  std::uint64_t* key_words() noexcept { return reinterpret_cast<std::uint64_t*>(this + 1); }
  std::uint64_t* value_words(const KvConfig& c) noexcept { return key_words() + c.key_bytes / 8; }
  struct Tail {
    std::atomic<std::uint32_t> run[2];  // first block of the runs of kRun0, kRun1
    std::atomic<std::uint32_t> reach;   // exact reach of this home slot
    std::uint32_t pad;
  };
  Tail& tail(const KvConfig& c) noexcept {
    return *reinterpret_cast<Tail*>(key_words() + (c.key_bytes + c.value_bytes) / 8);
  }
};
static_assert(sizeof(KvSlot) == 32 && sizeof(KvSlot::Tail) == 16);
static_assert(offsetof(KvSlot, state) == 8 && offsetof(KvSlot, key_len) == 16 &&
              offsetof(KvSlot, value_len) == 20 && offsetof(KvSlot, value_fp) == 24);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
inline constexpr std::uint64_t kKvSlotFixed = sizeof(KvSlot) + sizeof(KvSlot::Tail);

// A slot's state word: the state in bits 0-7, and for a claimed or live
// slot the identity (process.hpp) of the process that claimed or wrote it,
// packed: its pid in bits 8-31 (Linux pids are < 2^22), its start time's
// low 32 bits in bits 32-63. A recycled pid does not repeat both.
constexpr std::uint32_t kv_state(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word & 0xFF);
}
constexpr std::uint64_t kv_owner(std::uint64_t word) noexcept {
  return (word >> 8 & 0xFFFFFF) << 32 | word >> 32;
}
constexpr std::uint64_t kv_state_word(std::uint32_t state, std::uint64_t owner) noexcept {
  return (owner & 0xFFFFFFFFu) << 32 | (owner >> 32 & 0xFFFFFF) << 8 | state;
}
constexpr std::uint64_t kv_next_version(std::uint64_t v, std::uint64_t where) noexcept {
  return ((v >> 2) + 1) << 2 | where;
}
constexpr std::uint8_t kv_tag(std::uint64_t hash) noexcept {
  const auto t = static_cast<std::uint8_t>(hash >> 56);
  return t < kTagFirst ? static_cast<std::uint8_t>(t + kTagFirst) : t;
}

// Whether `c` is exactly the layout create() derives from its options, and
// fits in `object_size` bytes. No derived field of an untrusted segment is
// believed without this (KvStore::open, the registry).
bool kv_layout_valid(const KvConfig& c, std::uint64_t object_size) noexcept;
// Live keys summed over the stripes of a table whose layout is valid (racy
// while writers run; needs only read access).
std::uint64_t kv_entries_approx(const std::byte* object) noexcept;

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

inline std::uint64_t kv_stripe_of(std::uint64_t hash, const KvConfig& c) noexcept {
  return (hash >> 40) & (c.stripes - 1);  // other bits than the home slot's and the tag's
}

// A key ready for lookup: zero-padded words, length, hash.
struct KvKey {
  std::uint64_t words[kKvMaxKeySize / 8];
  std::size_t len;
  std::uint64_t hash;
};

// What a lookup found. `value` (when asked for) holds len bytes.
struct KvFound {
  bool found = false;
  std::uint32_t len = 0;
  std::uint64_t fp = 0;
  std::uint64_t slot = 0;
  std::uint64_t version = 0;
};

// Where a lookup copies a value: a vector grown to fit, or a fixed buffer
// (a value that does not fit it is not copied; its length tells).
struct KvSink {
  std::vector<std::uint64_t>* vec = nullptr;
  std::uint64_t* fixed = nullptr;
  std::size_t fixed_words = 0;
  std::uint64_t* reserve(std::size_t words) {
    if (vec != nullptr) {
      if (vec->size() < words) vec->resize(words);
      return vec->data();
    }
    return words <= fixed_words ? fixed : nullptr;
  }
};

// Why a read gave up on a slot (its bytes are damaged, not being written).
enum class KvDamage { none, value_length, run };

// Pointers into one mapped table; the reader's half of the protocol,
// inlined into KvStore::get. Readers only load.
struct KvTableView {
  const KvConfig* config = nullptr;
  KvStripe* stripes = nullptr;
  KvType* types = nullptr;
  KvOverflow* overflow = nullptr;
  std::uint32_t* block_meta = nullptr;
  std::byte* spares = nullptr;
  std::byte* blocks = nullptr;
  KvMeta* meta = nullptr;
  std::byte* slots = nullptr;

  std::uint64_t mask() const noexcept { return config->slots - 1; }
  KvSlot* slot(std::uint64_t i) const noexcept {
    return reinterpret_cast<KvSlot*>(slots + (i & mask()) * config->stride);
  }
  KvMeta& meta_of(std::uint64_t i) const noexcept { return meta[i & mask()]; }
  std::uint64_t* spare(std::uint64_t stripe) const noexcept {
    return reinterpret_cast<std::uint64_t*>(spares + stripe * config->value_bytes);
  }
  std::uint64_t* run_words(std::uint32_t run) const noexcept {
    return reinterpret_cast<std::uint64_t*>(blocks + std::uint64_t{run} * kKvBlock);
  }
  // Largest value an overflow run can hold (0 without an overflow area).
  std::uint64_t run_capacity(std::uint32_t run) const noexcept {
    return run < config->overflow_blocks
               ? (config->overflow_blocks - run) * kKvBlock - kKvRunHeader
               : 0;
  }

  // The distance from `home` a lookup must scan, bounded by the table.
  std::uint64_t reach_of(std::uint64_t home) const noexcept {
    // acquire: pairs with the release CAS in raise_reach() (kv_store.cpp)
    // that raised it before the key went live.
    std::uint64_t r = meta_of(home).reach.load(std::memory_order_acquire);
    if (SLEET_UNLIKELY(r == kReachFar)) {
      r = slot(home)->tail(*config).reach.load(std::memory_order_acquire);  // acquire: as above
    }
    return r < config->slots ? r : config->slots - 1;
  }

  static bool same_key(KvSlot* s, const KvKey& key) noexcept {
    // relaxed (all): validated by the caller's version re-check, or stable
    // because the caller holds the key's stripe lock.
    if (s->key_len.load(std::memory_order_relaxed) != key.len) return false;
    std::uint64_t* words = s->key_words();
    for (std::size_t i = 0, n = (key.len + 7) / 8; i < n; ++i) {
      if (std::atomic_ref<std::uint64_t>(words[i]).load(std::memory_order_relaxed) != key.words[i]) {
        return false;
      }
    }
    return true;
  }

  // Copies the value published by version `v` of slot `s` (holding `key`)
  // into `out` (if not null and the value fits it); sets len and fp. The caller validates the
  // copy with a version re-check. Returns what was out of bounds, if
  // anything (then nothing was copied).
  KvDamage copy_value(KvSlot* s, std::uint64_t v, const KvKey& key, KvSink* out, KvFound& r) const {
    const KvConfig& c = *config;
    const std::uint64_t where = v & kKvWhereMask;
    std::uint64_t* words;
    // relaxed (all loads): validated by the version re-check (2)/(4).
    if (SLEET_LIKELY(where == kKvInline)) {
      r.len = s->value_len.load(std::memory_order_relaxed);
      r.fp = s->value_fp.load(std::memory_order_relaxed);
      if (SLEET_UNLIKELY(r.len > c.max_value_size)) return KvDamage::value_length;
      words = s->value_words(c);
    } else if (where == kKvSpare) {
      const std::uint64_t stripe = kv_stripe_of(key.hash, c);
      r.len = stripes[stripe].spare_len.load(std::memory_order_relaxed);
      r.fp = stripes[stripe].spare_fp.load(std::memory_order_relaxed);
      if (SLEET_UNLIKELY(r.len > c.max_value_size)) return KvDamage::value_length;
      words = spare(stripe);
    } else {
      const std::uint32_t run = s->tail(c).run[where - kKvRun0].load(std::memory_order_relaxed);
      const std::uint64_t cap = run_capacity(run);
      if (SLEET_UNLIKELY(cap == 0)) return KvDamage::run;
      std::uint64_t* head = run_words(run);
      const std::uint64_t len = std::atomic_ref<std::uint64_t>(head[0]).load(std::memory_order_relaxed);
      r.fp = std::atomic_ref<std::uint64_t>(head[1]).load(std::memory_order_relaxed);
      if (SLEET_UNLIKELY(len > cap || len > UINT32_MAX)) return KvDamage::value_length;
      r.len = static_cast<std::uint32_t>(len);
      words = head + kKvRunHeader / 8;
    }
    if (out != nullptr) {
      const std::size_t n = (r.len + 7) / 8;
      if (std::uint64_t* dst = out->reserve(n)) load_words(dst, words, n);
    }
    return KvDamage::none;
  }

  // Lock-free lookup: never writes shared memory, never waits for a
  // writer; retries a slot only if a write completed while it was copied.
  // `damaged` is called (and must throw) for a slot whose bytes are out of
  // bounds while no writer touched it.
  template <class OnDamage>
  SLEET_INLINE KvFound lookup(const KvKey& key, KvSink* out, OnDamage&& damaged) const {
    const std::uint64_t home = key.hash & mask();
    const std::uint8_t tag = kv_tag(key.hash);
    const std::uint64_t reach = reach_of(home);
    for (std::uint64_t d = 0; d <= reach; ++d) {
      // relaxed: a hint; the slot's state and key below decide.
      const std::uint8_t t = meta_of(home + d).tag.load(std::memory_order_relaxed);
      if (t == kTagEmpty) return {};
      if (t != tag) continue;
      KvSlot* s = slot(home + d);
      for (;;) {
        const std::uint64_t v1 = seq_read_begin(s->version);  // (2)
        const std::uint32_t st = kv_state(s->state.load(std::memory_order_acquire));  // (6)
        if (st != kKvLive || !same_key(s, key)) break;
        KvFound r;
        const KvDamage dmg = copy_value(s, v1, key, out, r);
        if (!seq_read_valid(s->version, v1)) continue;  // (4): a write landed, retry
        if (SLEET_UNLIKELY(dmg != KvDamage::none)) damaged(dmg);
        r.found = true;
        r.slot = (home + d) & mask();
        r.version = v1;
        return r;
      }
    }
    return {};
  }

  // Touches the metadata line of `key`'s home (a batch's first step).
  void prefetch_meta(const KvKey& key) const noexcept {
    __builtin_prefetch(&meta_of(key.hash & mask()), 0, 3);
  }
  // Touches the slot of the first tag match (a batch's second step).
  void prefetch_slot(const KvKey& key) const noexcept {
    const std::uint64_t home = key.hash & mask();
    const std::uint8_t tag = kv_tag(key.hash);
    const std::uint64_t reach = reach_of(home);
    for (std::uint64_t d = 0; d <= reach; ++d) {
      const std::uint8_t t = meta_of(home + d).tag.load(std::memory_order_relaxed);  // relaxed: a hint
      if (t == kTagEmpty) return;
      if (t == tag) {
        const auto* p = reinterpret_cast<const char*>(slot(home + d));
        __builtin_prefetch(p, 0, 3);
        if (config->stride > kCacheLine) __builtin_prefetch(p + kCacheLine, 0, 3);
        return;
      }
    }
  }
};

}  // namespace sleet::detail
