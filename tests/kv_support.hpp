// Checksummed KvStore values for the concurrency, multi-process and crash
// tests: a reader can tell a torn value (a mix of two writes, or a length
// that does not match its contents) from a whole one.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include <sleet/detail/kv_table.hpp>
#include <sleet/detail/segment.hpp>

#include "support.hpp"

namespace sleet::test {

// A fixed-size (raw codec) value: seq, a payload derived from seq, and a
// checksum over both.
struct KvRec {
  std::uint64_t seq;
  std::uint64_t payload[6];
  std::uint64_t checksum;
};
static_assert(sizeof(KvRec) == 64);

inline std::uint64_t kv_rec_checksum(const KvRec& r) {
  std::uint64_t h = mix(r.seq ^ 0x5bd1e995u);
  for (std::uint64_t p : r.payload) h = mix(h ^ p);
  return h;
}

inline KvRec make_kv_rec(std::uint64_t seq) {
  KvRec r{};
  r.seq = seq;
  for (int i = 0; i < 6; ++i) r.payload[i] = mix(seq * 7 + static_cast<std::uint64_t>(i) + 1);
  r.checksum = kv_rec_checksum(r);
  return r;
}

// Whole: the payload is the one seq implies and the checksum matches.
inline bool kv_rec_ok(const KvRec& r) {
  if (r.checksum != kv_rec_checksum(r)) return false;
  for (int i = 0; i < 6; ++i) {
    if (r.payload[i] != mix(r.seq * 7 + static_cast<std::uint64_t>(i) + 1)) return false;
  }
  return true;
}

// A variable-size (cereal codec) value: 8 bytes of seq, a payload of
// mix(seq) % 81 bytes derived from seq (150 + mix(seq) % 400 if seq has
// kKvBigSeq set: a value for the overflow area), 8 bytes of checksum.
inline constexpr std::uint64_t kKvBigSeq = std::uint64_t{1} << 61;
inline std::string make_kv_str(std::uint64_t seq) {
  const std::size_t len = (seq & kKvBigSeq) ? 150 + mix(seq) % 400 : mix(seq) % 81;
  std::string s(16 + len, '\0');
  std::memcpy(s.data(), &seq, 8);
  for (std::size_t i = 0; i < len; ++i) {
    s[8 + i] = static_cast<char>('a' + mix(seq + i) % 26);
  }
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < 8 + len; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ull;
  std::memcpy(s.data() + 8 + len, &h, 8);
  return s;
}

inline bool kv_str_ok(const std::string& s) {
  if (s.size() < 16) return false;
  std::uint64_t seq = 0;
  std::memcpy(&seq, s.data(), 8);
  return s == make_kv_str(seq);
}

inline std::uint64_t kv_str_seq(const std::string& s) {
  std::uint64_t seq = 0;
  if (s.size() >= 8) std::memcpy(&seq, s.data(), 8);
  return seq;
}

// White-box access to a store's table (layout: detail/kv_table.hpp), for
// tests that build by hand what a killed writer leaves behind.
struct KvTable {
  sleet::detail::Segment seg;
  const sleet::detail::KvConfig& config() const {
    return *reinterpret_cast<const sleet::detail::KvConfig*>(seg.object());
  }
  sleet::detail::KvStripe& stripe(std::uint64_t i) const {
    return reinterpret_cast<sleet::detail::KvStripe*>(seg.object() + sizeof(sleet::detail::KvConfig))[i];
  }
  sleet::detail::KvSlot& slot(std::uint64_t i) const {
    return *reinterpret_cast<sleet::detail::KvSlot*>(seg.object() + config().slots_offset +
                                                     i * config().stride);
  }
  sleet::detail::KvMeta& meta(std::uint64_t i) const {
    return reinterpret_cast<sleet::detail::KvMeta*>(seg.object() + config().meta_offset)[i];
  }
  sleet::detail::KvOverflow& overflow() const {
    return *reinterpret_cast<sleet::detail::KvOverflow*>(seg.object() + config().overflow_offset);
  }
  std::uint32_t* block_meta() const {
    return reinterpret_cast<std::uint32_t*>(seg.object() + config().overflow_offset +
                                            sizeof(sleet::detail::KvOverflow));
  }
  std::uint64_t* spare(std::uint64_t stripe) const {
    return reinterpret_cast<std::uint64_t*>(seg.object() + config().spares_offset +
                                            stripe * config().value_bytes);
  }
  // The length word of the overflow run starting at block `run`.
  std::uint64_t& run_header_len(std::uint32_t run) const {
    return *reinterpret_cast<std::uint64_t*>(seg.object() + config().blocks_offset + run * sleet::detail::kKvBlock);
  }
  static std::uint64_t hash_of(const std::string& key) {
    std::uint64_t words[sleet::detail::kKvMaxKeySize / 8] = {};
    std::memcpy(words, key.data(), key.size());
    return sleet::detail::kv_hash(words, key.size());
  }
  // The stripe a key's writers lock (kv_store.cpp: kv_stripe_of(kv_hash(key))).
  std::uint64_t stripe_of(const std::string& key) const {
    return sleet::detail::kv_stripe_of(hash_of(key), config());
  }
  std::uint64_t home_of(const std::string& key) const { return hash_of(key) & (config().slots - 1); }
  // The slot holding `key` live, or -1.
  long slot_of(const std::string& key) const {
    for (std::uint64_t i = 0; i < config().slots; ++i) {
      auto& s = slot(i);
      if (sleet::detail::kv_state(s.state.load()) != sleet::detail::kKvLive) continue;
      if (s.key_len.load() == key.size() && std::memcmp(s.key_words(), key.data(), key.size()) == 0) {
        return static_cast<long>(i);
      }
    }
    return -1;
  }
  // Overflow blocks of the runs live keys publish (what is not leaked).
  std::uint64_t overflow_blocks_referenced() const {
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; i < config().slots; ++i) {
      auto& s = slot(i);
      if (sleet::detail::kv_state(s.state.load()) != sleet::detail::kKvLive) continue;
      const std::uint64_t where = s.version.load() & sleet::detail::kKvWhereMask;
      if (where < sleet::detail::kKvRun0) continue;
      const std::uint32_t run = s.tail(config()).run[where - sleet::detail::kKvRun0].load();
      if (run < config().overflow_blocks) n += block_meta()[run];
    }
    return n;
  }
  // Overflow blocks marked in use (the block meta, not the statistic).
  std::uint64_t overflow_blocks_used() const {
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; i < config().overflow_blocks; ++i) n += block_meta()[i] != 0;
    return n;
  }
};

inline KvTable kv_white_box(const std::string& name) {
  return {sleet::detail::Segment::open(name, sleet::detail::SegmentKind::kv,
                                       sleet::detail::fnv1a("sleet::KvStore"), "kv")};
}

}  // namespace sleet::test
