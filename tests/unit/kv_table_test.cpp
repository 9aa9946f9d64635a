// KvStore table v2, white-box: the pinned layout, tag collisions, probing
// a full table, saturated reach, bounded probes after churn, the overflow
// area (exhaustion, reuse, transitions, a dead holder's journal), the
// stripe spare left by a dead writer, damaged fields, and get_many (missing
// keys, batches, keys written concurrently by threads and by processes).
#include <catch2/catch.hpp>
#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sleet/detail/process.hpp"
#include "kv_support.hpp"
#include "support.hpp"

using sleet::KvStore;
using sleet::errc;
using sleet::test::Cleanup;
using sleet::test::KvRec;
using sleet::test::KvTable;
using sleet::test::unique_name;
namespace d = sleet::detail;

namespace {

// `n` keys "<prefix><i>" whose home slot (in a table of `slots`) is `home`
// and, if `tag` is not 0, whose tag is `tag`.
std::vector<std::string> keys_at(std::uint64_t slots, std::uint64_t home, std::size_t n,
                                 const std::string& prefix, std::uint8_t tag = 0) {
  std::vector<std::string> out;
  for (std::uint64_t i = 0; out.size() < n; ++i) {
    const std::string k = prefix + std::to_string(i);
    const std::uint64_t h = KvTable::hash_of(k);
    if ((h & (slots - 1)) == home && (tag == 0 || d::kv_tag(h) == tag)) out.push_back(k);
  }
  return out;
}

std::uint64_t blocks_for(std::size_t encoded) {
  return (d::kKvRunHeader + encoded + d::kKvBlock - 1) / d::kKvBlock;
}

}  // namespace

TEST_CASE("KvStore table: layout v2 is pinned", "[kv][layout]") {
  // If this fails, the store's shared layout changed: bump kLayoutVersion
  // (detail/segment.hpp) and update these numbers in the same change.
  STATIC_REQUIRE(d::kLayoutVersion == 7);  // 6: owner identities (64-bit stripe/overflow owners, packed slot owners); 7 changed the segment header only
  STATIC_REQUIRE(sizeof(d::KvConfig) == 128);
  STATIC_REQUIRE(offsetof(d::KvConfig, slots) == 0);
  STATIC_REQUIRE(offsetof(d::KvConfig, stride) == 48);
  STATIC_REQUIRE(offsetof(d::KvConfig, stripes) == 56);
  STATIC_REQUIRE(offsetof(d::KvConfig, types_offset) == 64);
  STATIC_REQUIRE(offsetof(d::KvConfig, overflow_offset) == 72);
  STATIC_REQUIRE(offsetof(d::KvConfig, overflow_blocks) == 80);
  STATIC_REQUIRE(offsetof(d::KvConfig, spares_offset) == 88);
  STATIC_REQUIRE(offsetof(d::KvConfig, blocks_offset) == 96);
  STATIC_REQUIRE(offsetof(d::KvConfig, meta_offset) == 104);
  STATIC_REQUIRE(offsetof(d::KvConfig, slots_offset) == 112);
  STATIC_REQUIRE(offsetof(d::KvConfig, overflow_bytes) == 120);
  STATIC_REQUIRE(sizeof(d::KvStripe) == 64);
  STATIC_REQUIRE(offsetof(d::KvStripe, owner) == 0);
  STATIC_REQUIRE(offsetof(d::KvStripe, changes) == 8);
  STATIC_REQUIRE(offsetof(d::KvStripe, watchers) == 12);
  STATIC_REQUIRE(offsetof(d::KvStripe, spare_len) == 16);
  STATIC_REQUIRE(offsetof(d::KvStripe, count) == 24);
  STATIC_REQUIRE(offsetof(d::KvStripe, spare_fp) == 32);
  STATIC_REQUIRE(offsetof(d::KvStripe, pending) == 40);
  STATIC_REQUIRE(sizeof(d::KvType) == 128);
  STATIC_REQUIRE(sizeof(d::KvOverflow) == 128);
  STATIC_REQUIRE(offsetof(d::KvOverflow, owner) == 0);
  STATIC_REQUIRE(offsetof(d::KvOverflow, journal_slot) == 8);
  STATIC_REQUIRE(offsetof(d::KvOverflow, journal_new) == 16);
  STATIC_REQUIRE(offsetof(d::KvOverflow, journal_old) == 20);
  STATIC_REQUIRE(offsetof(d::KvOverflow, used_blocks) == 24);
  STATIC_REQUIRE(sizeof(d::KvMeta) == 2);
  STATIC_REQUIRE(offsetof(d::KvMeta, reach) == 1);
  STATIC_REQUIRE(sizeof(d::KvSlot) == 32);
  STATIC_REQUIRE(offsetof(d::KvSlot, version) == 0);
  STATIC_REQUIRE(offsetof(d::KvSlot, state) == 8);
  STATIC_REQUIRE(offsetof(d::KvSlot, key_len) == 16);
  STATIC_REQUIRE(offsetof(d::KvSlot, value_len) == 20);
  STATIC_REQUIRE(offsetof(d::KvSlot, value_fp) == 24);
  STATIC_REQUIRE(sizeof(d::KvSlot::Tail) == 16);
  STATIC_REQUIRE(d::kTagEmpty == 0 && d::kTagFree == 1 && d::kTagFirst == 2 && d::kReachFar == 255);
  STATIC_REQUIRE(d::kKvInline == 0 && d::kKvSpare == 1 && d::kKvRun0 == 2);
  STATIC_REQUIRE(d::kKvBlock == 64 && d::kKvRunHeader == 16);
  STATIC_REQUIRE(d::kKvEmpty == 0 && d::kKvClaimed == 1 && d::kKvLive == 2 && d::kKvTombstone == 3);
  // A slot's state word: state in bits 0-7, the owner's pid in 8-31, its
  // start time's low 32 bits in 32-63.
  STATIC_REQUIRE(d::kv_state_word(d::kKvLive, std::uint64_t{0x123456} << 32 | 0x89abcdefu) ==
                 0x89abcdef'12345602u);
  STATIC_REQUIRE(d::kv_owner(0x89abcdef'12345602u) == (std::uint64_t{0x123456} << 32 | 0x89abcdefu));

  // The bench's shape: 16-byte keys, 64-byte values: two lines per slot,
  // the key and value right after the 32-byte head.
  const std::string name = unique_name("kv.pin");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 1024, .max_key_size = 16, .max_value_size = 64});
  const KvTable t = sleet::test::kv_white_box(name);
  const d::KvConfig& c = t.config();
  CHECK(c.slots == 1024);
  CHECK(c.stride == 128);
  CHECK(c.stripes == 256);
  CHECK(c.types_offset == 128 + 256 * 64);
  CHECK(c.overflow_offset == c.types_offset + 64 * 128);
  CHECK(c.overflow_blocks == 0);
  CHECK(c.spares_offset == c.overflow_offset);
  CHECK(c.blocks_offset == c.spares_offset + 256 * 64);
  CHECK(c.meta_offset == c.blocks_offset);
  CHECK(c.slots_offset == c.meta_offset + 1024 * 2);
  CHECK(c.slots_offset % 128 == 0);
  CHECK(t.seg.object_size() >= c.slots_offset + 1024 * 128);
  kv.set("0123456789abcdef", KvRec{});
  const long i = t.slot_of("0123456789abcdef");
  REQUIRE(i >= 0);
  auto& s = t.slot(static_cast<std::uint64_t>(i));
  CHECK(reinterpret_cast<std::byte*>(s.key_words()) - reinterpret_cast<std::byte*>(&s) == 32);
  CHECK(reinterpret_cast<std::byte*>(s.value_words(c)) - reinterpret_cast<std::byte*>(&s) == 48);
  CHECK(reinterpret_cast<std::byte*>(&s.tail(c)) - reinterpret_cast<std::byte*>(&s) == 112);
  CHECK(t.meta(static_cast<std::uint64_t>(i)).tag.load() == d::kv_tag(KvTable::hash_of("0123456789abcdef")));
  // A small entry (8-byte key, 8-byte value) is one cache line: 32-byte
  // head, key, value, 16-byte cold tail.
  const std::string small = unique_name("kv.pin.small");
  Cleanup cleanup2(small);
  auto kv2 = KvStore::create(small, {.capacity = 64, .max_key_size = 8, .max_value_size = 8});
  CHECK(sleet::test::kv_white_box(small).config().stride == 64);
}

TEST_CASE("KvStore table: keys with the same home and the same tag", "[kv]") {
  const std::string name = unique_name("kv.tags");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64});
  const KvTable t = sleet::test::kv_white_box(name);
  const std::uint64_t home = 5;
  const std::vector<std::string> first = keys_at(64, home, 1, "a");
  const std::uint8_t tag = d::kv_tag(KvTable::hash_of(first[0]));
  // Three more keys that share both home and tag, and one absent one.
  const std::vector<std::string> twins = keys_at(64, home, 4, "b", tag);
  kv.set(first[0], 0);
  for (int i = 0; i < 3; ++i) kv.set(twins[i], i + 1);
  for (std::uint64_t dist = 0; dist < 4; ++dist) CHECK(t.meta(home + dist).tag.load() == tag);
  CHECK(kv.get<int>(first[0]) == 0);
  for (int i = 0; i < 3; ++i) CHECK(kv.get<int>(twins[i]) == i + 1);
  CHECK_FALSE(kv.contains(twins[3]));  // every tag matches, no key does
  CHECK(kv.erase(twins[0]));
  CHECK(t.meta(home + 1).tag.load() == d::kTagFree);
  CHECK_FALSE(kv.contains(twins[0]));
  CHECK(kv.get<int>(twins[1]) == 2);  // found past the freed slot
  CHECK(kv.get<int>(twins[2]) == 3);
  kv.set(twins[3], 4);                // reuses the freed slot
  CHECK(t.slot_of(twins[3]) == static_cast<long>(home + 1));
  CHECK(kv.get<int>(twins[3]) == 4);
  CHECK(kv.size() == 4);
}

TEST_CASE("KvStore table: a full table is probed to its end, then errc::full", "[kv]") {
  const std::string name = unique_name("kv.fullprobe");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16});
  const KvTable t = sleet::test::kv_white_box(name);
  REQUIRE(t.config().slots == 16);
  // All 16 keys with one home: distances 0..15, the probe wraps the table.
  const std::vector<std::string> keys = keys_at(16, 9, 17, "f");
  for (int i = 0; i < 16; ++i) kv.set(keys[i], i);
  CHECK(t.meta(9).reach.load() == 15);
  for (int i = 0; i < 16; ++i) CHECK(kv.get<int>(keys[i]) == i);
  // No empty tag anywhere: a miss stops at the reach, not by luck.
  for (std::uint64_t i = 0; i < 16; ++i) CHECK(t.meta(i).tag.load() >= d::kTagFirst);
  CHECK_FALSE(kv.contains(keys[16]));
  CHECK_FALSE(kv.contains("other"));
  CHECK_SLEET_ERROR(kv.set(keys[16], 16), errc::full, "no free slot for key '" + keys[16] + "' (16 keys in 16 slots)");
  CHECK(kv.erase(keys[0]));
  kv.set(keys[16], 16);
  CHECK(kv.get<int>(keys[16]) == 16);
  CHECK(t.slot_of(keys[16]) == 9);
}

TEST_CASE("KvStore table: a reach past 254 saturates the meta byte and stays exact", "[kv]") {
  const std::string name = unique_name("kv.farreach");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 512});
  const KvTable t = sleet::test::kv_white_box(name);
  const std::vector<std::string> keys = keys_at(512, 100, 301, "r");
  for (int i = 0; i < 300; ++i) kv.set(keys[i], i);
  CHECK(t.meta(100).reach.load() == d::kReachFar);
  CHECK(t.slot(100).tail(t.config()).reach.load() == 299);
  for (int i = 0; i < 300; ++i) REQUIRE(kv.get<int>(keys[i]) == i);
  CHECK_FALSE(kv.contains(keys[300]));
  // A damaged exact reach is bounded by the table: lookups still answer.
  t.slot(100).tail(t.config()).reach.store(0xFFFFFFFFu);
  CHECK(kv.get<int>(keys[299]) == 299);
  CHECK_FALSE(kv.contains(keys[300]));
  kv.clear();
  CHECK(t.meta(100).reach.load() == 0);
  CHECK(t.slot(100).tail(t.config()).reach.load() == 0);
}

TEST_CASE("KvStore table: insert/erase churn keeps every probe short", "[kv]") {
  const std::string name = unique_name("kv.churnreach");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 1024});
  const KvTable t = sleet::test::kv_white_box(name);
  // 75% load, then 40,000 insert+erase pairs over ever new keys: every
  // slot becomes a tombstone many times over.
  for (int i = 0; i < 768; ++i) kv.set("k" + std::to_string(i), i);
  for (int i = 768; i < 40768; ++i) {
    kv.set("k" + std::to_string(i), i);
    REQUIRE(kv.erase("k" + std::to_string(i - 768)));
  }
  std::uint64_t max_reach = 0, empty = 0;
  for (std::uint64_t i = 0; i < 1024; ++i) {
    max_reach = std::max<std::uint64_t>(max_reach, t.meta(i).reach.load());
    empty += t.meta(i).tag.load() == d::kTagEmpty;
  }
  INFO("max reach " << max_reach << ", empty tags " << empty);
  // A miss scans at most max_reach + 1 tags (no tag is empty any more):
  // tombstones are reused from home, so reach follows the clusters of a
  // 75%-full table (174 here, deterministic), not the number of erases.
  CHECK(max_reach < 1024 / 4);
  CHECK(kv.size() == 768);
  CHECK_FALSE(kv.contains("k0"));
  CHECK(kv.get<int>("k40767") == 40767);
}

TEST_CASE("KvStore table: overflow area exhaustion is errc::full with the sizes", "[kv][overflow]") {
  const std::string name = unique_name("kv.ovf.full");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16, .max_value_size = 64, .overflow_bytes = 1024});
  const KvTable t = sleet::test::kv_white_box(name);
  REQUIRE(t.config().overflow_blocks == 16);
  const std::string v600(600, 'a');  // 608 encoded bytes: 10 blocks with the header
  REQUIRE(blocks_for(608) == 10);
  kv.set("one", v600);
  CHECK(kv.get<std::string>("one") == v600);
  CHECK(kv.overflow_used_approx() == 640);
  CHECK(t.overflow_blocks_used() == 10);
  CHECK_SLEET_ERROR(kv.set("two", v600), errc::full,
                    "overflow area full: value of 608 bytes for key 'two' needs 640 bytes (10 blocks "
                    "of 64); 640 of 1024 bytes in use, largest free run 384 bytes");
  CHECK_FALSE(kv.contains("two"));  // nothing half-inserted
  CHECK(kv.size() == 1);
  CHECK(t.overflow_blocks_used() == 10);
  // Larger than the whole area: never storable, errc::too_large.
  CHECK_SLEET_ERROR(kv.set("huge", std::string(2000, 'h')), errc::too_large,
                    "value of 2008 bytes exceeds max_value_size 64 and the overflow area's largest value 1008");
  // Small values still go to slots.
  kv.set("small", std::string(20, 's'));
  CHECK(kv.overflow_used_approx() == 640);
}

TEST_CASE("KvStore table: overflow space is reused after erase, update and clear", "[kv][overflow]") {
  const std::string name = unique_name("kv.ovf.reuse");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16, .max_value_size = 64, .overflow_bytes = 1024});
  const KvTable t = sleet::test::kv_white_box(name);
  const std::string a(600, 'a'), b(600, 'b'), c(300, 'c');
  kv.set("a", a);
  CHECK_THROWS(kv.set("b", b));
  CHECK(kv.erase("a"));
  CHECK(t.overflow_blocks_used() == 0);
  CHECK(kv.overflow_used_approx() == 0);
  kv.set("b", b);  // the space "a" had
  CHECK(kv.get<std::string>("b") == b);
  // big -> small: the run is freed; small -> big: a run again.
  kv.set("b", std::string("tiny"));
  CHECK(t.overflow_blocks_used() == 0);
  CHECK(kv.get<std::string>("b") == "tiny");
  kv.set("b", b);
  CHECK(t.overflow_blocks_used() == 10);
  // big -> big: the new run is taken before the old is freed, so two 600s
  // do not fit, but two 300s do (5 + 5 of 16 blocks... then 10 + 5).
  CHECK_THROWS_AS(kv.set("b", a), sleet::Error);
  CHECK(kv.get<std::string>("b") == b);  // unchanged by the failed write
  kv.set("b", c);
  CHECK(kv.get<std::string>("b") == c);
  CHECK(t.overflow_blocks_used() == blocks_for(308));
  kv.update<std::string>("b", [&](std::optional<std::string> cur) { return cur.value() + "!"; });
  CHECK(kv.get<std::string>("b") == c + "!");
  CHECK(kv.compare_exchange<std::string>("b", c + "!", a));
  CHECK(kv.get<std::string>("b") == a);
  CHECK(t.overflow_blocks_used() == 10);
  const auto snap = kv.snapshot();
  REQUIRE(snap.size() == 1);
  CHECK(snap[0].as<std::string>() == a);
  kv.clear();
  CHECK(t.overflow_blocks_used() == 0);
  kv.set("x", a);
  CHECK(kv.get<std::string>("x") == a);
  // Many rounds of churn in a roomier area leave nothing behind.
  const std::string roomy = unique_name("kv.ovf.roomy");
  Cleanup cleanup2(roomy);
  auto kv2 = KvStore::create(roomy, {.capacity = 16, .max_value_size = 64, .overflow_bytes = 4096});
  const KvTable t2 = sleet::test::kv_white_box(roomy);
  for (int i = 0; i < 300; ++i) {
    kv2.set("k" + std::to_string(i % 3), std::string(i % 2 ? 100 + i % 100 : 10, 'z'));
    if (i % 5 == 0) (void)kv2.erase("k" + std::to_string((i + 1) % 3));
  }
  CHECK(t2.overflow_blocks_used() == t2.overflow_blocks_referenced());
  for (int i = 0; i < 3; ++i) (void)kv2.erase("k" + std::to_string(i));
  CHECK(t2.overflow_blocks_used() == 0);
}

TEST_CASE("KvStore table: a dead overflow lock holder's unpublished run is freed", "[kv][overflow]") {
  const std::string name = unique_name("kv.ovf.dead");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16, .max_value_size = 64, .overflow_bytes = 2048});
  const KvTable t = sleet::test::kv_white_box(name);
  const std::string a(600, 'a');
  kv.set("a", a);
  const long slot = t.slot_of("a");
  REQUIRE(slot >= 0);
  const std::uint32_t run_a = t.slot(static_cast<std::uint64_t>(slot)).tail(t.config()).run[0].load();
  // A writer died updating "a" with a new run (blocks 20..29 marked, the
  // journal naming them and "a"), before publishing it.
  sleet::test::Child dead([] { return 0; });
  const int pid = dead.pid();
  REQUIRE(dead.wait_for(std::chrono::milliseconds(3000)) == 0);
  auto& o = t.overflow();
  o.owner.store(d::identity_of(pid));
  o.journal_slot.store(static_cast<std::uint64_t>(slot) + 1);
  o.journal_old.store(run_a);
  o.journal_new.store(20);
  t.block_meta()[20] = 10;
  for (int b = 21; b < 30; ++b) t.block_meta()[b] = d::kRunBody;
  CHECK(t.overflow_blocks_used() == 20);
  // Readers still see the old value.
  CHECK(kv.get<std::string>("a") == a);
  // The next overflow writer takes the lock over and frees the new run only.
  kv.set("b", std::string(500, 'b'));
  CHECK(o.owner.load() == 0);
  CHECK(o.recoveries.load() == 1);
  CHECK(kv.get<std::string>("a") == a);
  CHECK(t.overflow_blocks_used() == t.overflow_blocks_referenced());
  CHECK(t.block_meta()[20] == 0);
}

TEST_CASE("KvStore table: a rewrite left on the stripe spare by a dead writer", "[kv]") {
  const std::string name = unique_name("kv.spare");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16, .max_value_size = 64});
  const KvTable t = sleet::test::kv_white_box(name);
  kv.set("r", sleet::test::make_kv_rec(1));
  const long i = t.slot_of("r");
  REQUIRE(i >= 0);
  auto& s = t.slot(static_cast<std::uint64_t>(i));
  const std::uint64_t stripe = t.stripe_of("r");
  // The writer had published rec 2 in the spare and was rewriting the
  // slot's buffer when it died holding the stripe lock.
  const KvRec two = sleet::test::make_kv_rec(2);
  std::memcpy(t.spare(stripe), &two, sizeof two);
  t.stripe(stripe).spare_len.store(sizeof two);
  t.stripe(stripe).spare_fp.store(s.value_fp.load());
  t.stripe(stripe).pending.store(static_cast<std::uint64_t>(i) + 1);
  s.version.store(d::kv_next_version(s.version.load(), d::kKvSpare));
  std::memset(s.value_words(t.config()), 0xCD, 40);  // half rewritten
  sleet::test::Child dead([] { return 0; });
  const int pid = dead.pid();
  REQUIRE(dead.wait_for(std::chrono::milliseconds(3000)) == 0);
  t.stripe(stripe).owner.store(d::identity_of(pid));
  // Readers read the spare: the new value, whole.
  CHECK(kv.get<KvRec>("r")->seq == 2);
  CHECK(sleet::test::kv_rec_ok(*kv.get<KvRec>("r")));
  // The next writer of the stripe copies it back into the slot.
  kv.update<KvRec>("r", [](std::optional<KvRec> cur) {
    return sleet::test::make_kv_rec(cur.value().seq + 1);
  });
  CHECK((s.version.load() & d::kKvWhereMask) == d::kKvInline);
  CHECK(t.stripe(stripe).pending.load() == 0);
  CHECK(kv.get<KvRec>("r")->seq == 3);
}

TEST_CASE("KvStore table: damaged fields are errors or misses, never crashes", "[kv][bad_input]") {
  const std::string name = unique_name("kv.damaged");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 16, .max_value_size = 64, .overflow_bytes = 1024});
  const KvTable t = sleet::test::kv_white_box(name);
  kv.set("len", 1);
  kv.set("run", std::string(300, 'r'));
  kv.set("key", 2);
  kv.set("tag", 3);
  auto& s_len = t.slot(static_cast<std::uint64_t>(t.slot_of("len")));
  s_len.value_len.store(0xFFFFFF);
  CHECK_SLEET_ERROR(kv.get<int>("len"), errc::not_sleet, "damaged slot of key 'len' (value length)");
  CHECK_SLEET_ERROR((void)kv.snapshot(), errc::not_sleet, "value length");
  s_len.value_len.store(4);
  auto& s_run = t.slot(static_cast<std::uint64_t>(t.slot_of("run")));
  const std::uint64_t where = s_run.version.load() & d::kKvWhereMask;
  REQUIRE(where >= d::kKvRun0);
  s_run.tail(t.config()).run[where - d::kKvRun0].store(1u << 30);
  CHECK_SLEET_ERROR(kv.get<std::string>("run"), errc::not_sleet,
                    "damaged slot of key 'run' (overflow run out of range)");
  s_run.tail(t.config()).run[where - d::kKvRun0].store(0);
  t.run_header_len(0) = 1u << 20;
  CHECK_SLEET_ERROR(kv.get<std::string>("run"), errc::not_sleet, "value length");
  t.run_header_len(0) = 308;
  CHECK(kv.get<std::string>("run") == std::string(300, 'r'));
  // A key length or a tag out of range: a miss.
  auto& s_key = t.slot(static_cast<std::uint64_t>(t.slot_of("key")));
  s_key.key_len.store(0xFFFFFFFFu);
  CHECK_FALSE(kv.contains("key"));
  CHECK(kv.snapshot().size() == 3);
  const long tag_slot = t.slot_of("tag");
  t.meta(static_cast<std::uint64_t>(tag_slot)).tag.store(static_cast<std::uint8_t>(
      d::kv_tag(KvTable::hash_of("tag")) ^ 0x80));
  CHECK_FALSE(kv.contains("tag"));
  CHECK(kv.get<int>("len") == 1);
}

TEST_CASE("KvStore get_many: present, missing, repeated keys and long batches", "[kv]") {
  const std::string name = unique_name("kv.many");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 256, .max_value_size = 64, .overflow_bytes = 4096});
  for (int i = 0; i < 100; i += 2) kv.set("k" + std::to_string(i), i);
  kv.set("big", std::string(1000, 'b'));
  std::vector<std::string> storage;
  for (int i = 0; i < 37; ++i) storage.push_back("k" + std::to_string(i));  // > 4 batches
  storage.push_back("k4");       // repeated
  storage.push_back("missing");  // absent
  std::vector<std::string_view> keys(storage.begin(), storage.end());
  std::vector<std::optional<int>> got(keys.size(), -1);
  std::vector<std::size_t> order;
  kv.get_many<int>(keys, [&](std::size_t i, std::optional<int> v) {
    order.push_back(i);
    got[i] = v;
  });
  REQUIRE(order.size() == keys.size());
  for (std::size_t i = 0; i < order.size(); ++i) CHECK(order[i] == i);
  for (int i = 0; i < 37; ++i) {
    if (i % 2 == 0) {
      CHECK(got[static_cast<std::size_t>(i)] == i);
    } else {
      CHECK_FALSE(got[static_cast<std::size_t>(i)].has_value());
    }
  }
  CHECK(got[37] == 4);
  CHECK_FALSE(got[38].has_value());
  // Empty batch: no call.
  int calls = 0;
  kv.get_many<int>(std::span<const std::string_view>(), [&](std::size_t, std::optional<int>) { ++calls; });
  CHECK(calls == 0);
  // Overflow values and type checks, as get().
  const std::string_view big[] = {"big", "nothing"};
  std::vector<std::optional<std::string>> strs;
  kv.get_many<std::string>(big, [&](std::size_t, std::optional<std::string> v) { strs.push_back(v); });
  REQUIRE(strs.size() == 2);
  CHECK(strs[0] == std::string(1000, 'b'));
  CHECK_FALSE(strs[1].has_value());
  const std::string_view wrong[] = {"k0"};
  CHECK_SLEET_ERROR(kv.get_many<std::string>(wrong, [](std::size_t, std::optional<std::string>) {}),
                    errc::type_mismatch, "key 'k0' holds 'int'");
  const std::string_view empty_key[] = {""};
  CHECK_SLEET_ERROR(kv.get_many<int>(empty_key, [](std::size_t, std::optional<int>) {}),
                    errc::invalid_argument, "empty key");
}

TEST_CASE("KvStore get_many: keys written concurrently by a thread are whole and monotonic", "[kv]") {
  const std::string name = unique_name("kv.many.mt");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64, .max_value_size = 64});
  constexpr int kKeys = 24;
  std::vector<std::string> storage;
  for (int i = 0; i < kKeys; ++i) storage.push_back("w" + std::to_string(i));
  for (int i = 0; i < kKeys; i += 3) kv.set(storage[static_cast<std::size_t>(i)], sleet::test::make_kv_rec(0));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (std::uint64_t seq = 1; !stop.load(); ++seq) {
      const std::string& k = storage[seq % kKeys];
      if (seq % 7 == 0) {
        (void)kv.erase(k);
      } else {
        kv.set(k, sleet::test::make_kv_rec(seq));
      }
    }
  });
  std::vector<std::string_view> keys(storage.begin(), storage.end());
  std::vector<std::uint64_t> last(kKeys, 0);
  std::uint64_t found = 0, torn = 0, backwards = 0;
  for (int round = 0; round < 3000; ++round) {
    kv.get_many<KvRec>(keys, [&](std::size_t i, std::optional<KvRec> v) {
      if (!v) return;
      ++found;
      if (!sleet::test::kv_rec_ok(*v)) ++torn;
      if (v->seq < last[i]) ++backwards;
      last[i] = v->seq;
    });
  }
  stop = true;
  writer.join();
  CHECK(torn == 0);
  CHECK(backwards == 0);
  CHECK(found > 0);
}

TEST_CASE("KvStore get_many: keys written by another process", "[kv][ipc]") {
  const std::string name = unique_name("kv.many.ipc");
  Cleanup cleanup(name);
  auto kv = KvStore::create(name, {.capacity = 64, .max_value_size = 64, .overflow_bytes = 8192});
  constexpr int kKeys = 16;
  std::vector<std::string> storage;
  for (int i = 0; i < kKeys; ++i) storage.push_back("p" + std::to_string(i));
  kv.set("stop", 0);
  sleet::test::Child writer([&] {
    auto mine = KvStore::open(name);
    for (std::uint64_t seq = 1; mine.get_or<int>("stop", 1) == 0; ++seq) {
      const std::string& k = storage[seq % kKeys];
      // Small and overflow strings by turns, erased now and then.
      if (seq % 11 == 0) {
        (void)mine.erase(k);
      } else {
        mine.set(k, sleet::test::make_kv_str(seq % 3 == 0 ? seq | sleet::test::kKvBigSeq : seq));
      }
    }
    return 0;
  });
  std::vector<std::string_view> keys(storage.begin(), storage.end());
  std::uint64_t found = 0, torn = 0;
  for (int round = 0; round < 2000 || found == 0; ++round) {
    kv.get_many<std::string>(keys, [&](std::size_t, std::optional<std::string> v) {
      if (!v) return;
      ++found;
      if (!sleet::test::kv_str_ok(*v)) ++torn;
    });
    if (round > 200000) break;
  }
  kv.set("stop", 1);
  CHECK(writer.wait_for(std::chrono::milliseconds(5000)) == 0);
  CHECK(torn == 0);
  CHECK(found > 0);
}
