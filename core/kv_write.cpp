// KvStore: the write side — stripe and overflow locks (owner words of
// detail/owner_word.hpp), inserts, updates through the stripe's spare
// buffer, overflow runs, erase, clear, and the repairs after a dead writer.
// Layout and numbered synchronization pairs: detail/kv_table.hpp.
#include <cstring>

#include "kv_internal.hpp"
#include "sleet/detail/fault.hpp"
#include "sleet/detail/futex.hpp"
#include "sleet/detail/owner_word.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/seqlock.hpp"
#include "sleet/kv_store.hpp"
#include "system.hpp"

namespace sleet {

using namespace detail;

namespace {

// Tells wait_for_change() and WaitSet sleepers of this stripe that
// something changed (8): the eventcount's publisher half (futex.hpp). The
// change itself was published by the release stores (1)/(5) before it; the
// epoch moves only while someone watches, so a write nobody waits for
// costs no read-modify-write here.
void announce_change(KvStripe& s) noexcept { s.events().notify(); }

// Only the stripe's lock holder writes its count.
void add_count(KvStripe& s, std::int64_t delta) noexcept {
  // relaxed: a statistic, written by the lock holder only.
  s.count.store(s.count.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
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

bool claimable(std::uint64_t state_word) noexcept {
  const std::uint32_t st = kv_state(state_word);
  return st == kKvEmpty || st == kKvTombstone ||
         (st == kKvClaimed && !identity_alive(kv_owner(state_word)));
}

// Writes a value into slot `s`'s own buffer and publishes it there. The
// buffer must not be the published one (the value is in the spare or a run).
void write_inline(KvSlot* s, const KvConfig& c, const std::uint64_t* words, std::uint32_t len,
                  std::uint64_t fp) noexcept {
  const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
  // (3): a reader still copying the buffer under an older version sees
  // the version move if it sees any byte we write next.
  seq_begin_overwrite();
  store_words(s->value_words(c), words, (len + 7) / 8);
  s->value_len.store(len, std::memory_order_relaxed);  // relaxed: published by (1)
  s->value_fp.store(fp, std::memory_order_relaxed);
  seq_publish(s->version, kv_next_version(v, kKvInline));  // (1)
}

// Raises the reach of `home` to at least `d` (release: pairs with the
// acquire loads in KvTableView::reach_of(); done before the key goes live).
void raise_reach(const KvTableView& t, std::uint64_t home, std::uint64_t d) noexcept {
  if (d >= kReachFar) {
    auto& exact = t.slot(home)->tail(*t.config).reach;
    std::uint32_t r = exact.load(std::memory_order_relaxed);
    while (r < d && !exact.compare_exchange_weak(r, static_cast<std::uint32_t>(d),
                                                 std::memory_order_release,
                                                 std::memory_order_relaxed)) {
    }
  }
  const auto want = static_cast<std::uint8_t>(d < kReachFar ? d : kReachFar);
  auto& byte = t.meta_of(home).reach;
  std::uint8_t r = byte.load(std::memory_order_relaxed);
  while (r < want && !byte.compare_exchange_weak(r, want, std::memory_order_release,
                                                 std::memory_order_relaxed)) {
  }
}

// The slot holding `key` live, or nullptr. Caller holds the key's stripe
// lock, so the key's slot, state and tag cannot change under it.
KvSlot* find(const KvTableView& t, const KvKey& key, std::uint64_t* index) {
  const std::uint64_t home = key.hash & t.mask();
  const std::uint8_t tag = kv_tag(key.hash);
  const std::uint64_t reach = t.reach_of(home);
  for (std::uint64_t d = 0; d <= reach; ++d) {
    // relaxed: our stripe's keys' tags are written under our lock.
    const std::uint8_t m = t.meta_of(home + d).tag.load(std::memory_order_relaxed);
    if (m == kTagEmpty) return nullptr;
    if (m != tag) continue;
    KvSlot* s = t.slot(home + d);
    // acquire: pairs with (5); a live slot's key is complete.
    if (kv_state(s->state.load(std::memory_order_acquire)) == kKvLive &&
        KvTableView::same_key(s, key)) {
      if (index) *index = (home + d) & t.mask();
      return s;
    }
  }
  return nullptr;
}

// Claims a free slot for `key` (the first from home), or returns false.
// Tags say which slots may be free; a second pass over the slots' states
// finds slots claimed by dead writers whose tags were never reset.
bool claim_slot(const KvTableView& t, const KvKey& key, std::uint64_t* index, std::uint64_t* dist) {
  const std::uint64_t home = key.hash & t.mask();
  const std::uint64_t mine = kv_state_word(kKvClaimed, current_identity());
  for (const bool by_tag : {true, false}) {
    for (std::uint64_t d = 0; d < t.config->slots; ++d) {
      KvMeta& m = t.meta_of(home + d);
      // relaxed: a hint; the CAS on state below decides.
      std::uint8_t tag = m.tag.load(std::memory_order_relaxed);
      if (by_tag && tag != kTagEmpty && tag != kTagFree) continue;
      KvSlot* s = t.slot(home + d);
      std::uint64_t st = s->state.load(std::memory_order_relaxed);  // relaxed: the CAS decides
      if (!claimable(st)) continue;
      // The tag leaves kTagEmpty before the slot can be claimed, so a probe
      // never stops in front of a key placed beyond this slot. relaxed:
      // published by the acq_rel CAS below.
      if (tag == kTagEmpty) {
        m.tag.compare_exchange_strong(tag, kTagFree, std::memory_order_relaxed);
      }
      // acq_rel: acquire the previous occupant's writes to the slot before
      // we overwrite them; release publishes the tag above.
      if (s->state.compare_exchange_strong(st, mine, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
        *index = (home + d) & t.mask();
        *dist = d;
        return true;
      }
    }
  }
  return false;
}

// Gives back a slot we claimed: kTagFree, then tombstone (release: the
// tag is written before the slot can be claimed again).
void release_slot(const KvTableView& t, std::uint64_t index) noexcept {
  t.meta_of(index).tag.store(kTagFree, std::memory_order_relaxed);  // relaxed: published below
  t.slot(index)->state.store(kv_state_word(kKvTombstone, 0), std::memory_order_release);
}

// The overflow run a live slot's published value is in, or kNoRun.
std::uint32_t published_run(const KvTableView& t, KvSlot* s) noexcept {
  // acquire: pairs with (5) and (1); we hold the overflow lock, so runs do not change.
  if (kv_state(s->state.load(std::memory_order_acquire)) != kKvLive) return kNoRun;
  const std::uint64_t where = s->version.load(std::memory_order_acquire) & kKvWhereMask;
  if (where < kKvRun0) return kNoRun;
  return s->tail(*t.config).run[where - kKvRun0].load(std::memory_order_relaxed);  // relaxed: as above
}

// ---- overflow blocks (the overflow lock held) ----

// Frees the run starting at block `r`; ignores what is not a run start.
// Body blocks first, the head last: a free killed half-way is redone.
void free_run(const KvTableView& t, std::uint32_t r) noexcept {
  const std::uint64_t n = t.config->overflow_blocks;
  if (r >= n) return;
  // relaxed (all block meta): written and read under the overflow lock only.
  const std::uint32_t len = std::atomic_ref<std::uint32_t>(t.block_meta[r]).load(std::memory_order_relaxed);
  if (len == 0 || len == kRunBody || len > n - r) return;
  for (std::uint64_t i = r + 1; i < r + len; ++i) {
    std::atomic_ref<std::uint32_t>(t.block_meta[i]).store(0, std::memory_order_relaxed);
  }
  std::atomic_ref<std::uint32_t>(t.block_meta[r]).store(0, std::memory_order_relaxed);
  t.overflow->used_blocks.fetch_sub(len, std::memory_order_relaxed);  // relaxed: a statistic
}

// First fit; kNoRun if no free run of `need` blocks. The journal names the
// run before its blocks are marked (head first), so a recoverer frees it.
std::uint32_t alloc_run(const KvTableView& t, std::uint64_t need) noexcept {
  const std::uint64_t n = t.config->overflow_blocks;
  std::uint64_t i = 0;
  while (i < n) {
    const std::uint32_t m = std::atomic_ref<std::uint32_t>(t.block_meta[i]).load(std::memory_order_relaxed);
    if (m != 0) {
      i += (m == kRunBody || m > n - i) ? 1 : m;  // a damaged entry costs one step
      continue;
    }
    std::uint64_t j = i;
    while (j < n && j - i < need &&
           std::atomic_ref<std::uint32_t>(t.block_meta[j]).load(std::memory_order_relaxed) == 0) {
      ++j;
    }
    if (j - i == need) {
      const auto r = static_cast<std::uint32_t>(i);
      t.overflow->journal_new.store(r, std::memory_order_relaxed);  // relaxed: read by a recoverer after takeover
      std::atomic_ref<std::uint32_t>(t.block_meta[i]).store(static_cast<std::uint32_t>(need),
                                                            std::memory_order_relaxed);
      for (std::uint64_t b = i + 1; b < i + need; ++b) {
        std::atomic_ref<std::uint32_t>(t.block_meta[b]).store(kRunBody, std::memory_order_relaxed);
      }
      t.overflow->used_blocks.fetch_add(need, std::memory_order_relaxed);  // relaxed: a statistic
      return r;
    }
    i = j;
  }
  return kNoRun;
}

std::uint64_t largest_free_run(const KvTableView& t) noexcept {
  std::uint64_t best = 0, cur = 0;
  for (std::uint64_t i = 0; i < t.config->overflow_blocks; ++i) {
    const bool free = std::atomic_ref<std::uint32_t>(t.block_meta[i]).load(std::memory_order_relaxed) == 0;
    cur = free ? cur + 1 : 0;
    best = cur > best ? cur : best;
  }
  return best;
}

void clear_journal(KvOverflow& o) noexcept {
  // relaxed (all journal fields): read only by the next lock holder.
  o.journal_slot.store(0, std::memory_order_relaxed);
  o.journal_old.store(kNoRun, std::memory_order_relaxed);
  o.journal_new.store(kNoRun, std::memory_order_relaxed);
}

// The overflow lock was taken from a dead owner: free whichever run of its
// journal the journal's slot does not publish.
void recover_overflow(const KvTableView& t) noexcept {
  KvOverflow& o = *t.overflow;
  // relaxed (journal): written by the dead owner before it died.
  const std::uint64_t slot = o.journal_slot.load(std::memory_order_relaxed);
  const std::uint32_t fresh = o.journal_new.load(std::memory_order_relaxed);
  const std::uint32_t old = o.journal_old.load(std::memory_order_relaxed);
  const std::uint32_t ref =
      slot != 0 && slot <= t.config->slots ? published_run(t, t.slot(slot - 1)) : kNoRun;
  if (fresh != kNoRun && fresh != ref) free_run(t, fresh);
  if (old != kNoRun && old != ref) free_run(t, old);
  clear_journal(o);
  o.recoveries.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
}

// The stripe lock was taken from a dead owner: finish a rewrite it left on
// the spare, recount its live keys, and give back slots dead writers claimed.
void repair_stripe(const KvTableView& t, std::uint64_t stripe) {
  const KvConfig& c = *t.config;
  KvStripe& st = t.stripes[stripe];
  // relaxed (pending, spare): written by the dead owner under the lock we now hold.
  const std::uint64_t pending = st.pending.load(std::memory_order_relaxed);
  if (pending != 0 && pending <= c.slots) {
    KvSlot* s = t.slot(pending - 1);
    const std::uint32_t len = st.spare_len.load(std::memory_order_relaxed);
    if (kv_state(s->state.load(std::memory_order_acquire)) == kKvLive &&
        (s->version.load(std::memory_order_relaxed) & kKvWhereMask) == kKvSpare &&
        len <= c.max_value_size) {
      std::vector<std::uint64_t> words((len + 7) / 8);
      load_words(words.data(), t.spare(stripe), words.size());
      write_inline(s, c, words.data(), len, st.spare_fp.load(std::memory_order_relaxed));
    }
  }
  st.pending.store(0, std::memory_order_relaxed);
  std::int64_t n = 0;
  KvKey key;
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    KvSlot* s = t.slot(i);
    const std::uint64_t word = s->state.load(std::memory_order_acquire);  // acquire: pairs with (5)
    if (kv_state(word) == kKvClaimed && !identity_alive(kv_owner(word))) {
      std::uint64_t seen = word;
      // acq_rel: as in claim_slot(); the slot is ours to give back.
      if (s->state.compare_exchange_strong(seen, kv_state_word(kKvClaimed, current_identity()),
                                           std::memory_order_acq_rel, std::memory_order_relaxed)) {
        release_slot(t, i);
      }
      continue;
    }
    if (kv_state(word) != kKvLive) continue;
    // relaxed: keys of our stripe do not change while we hold its lock;
    // others' keys may, and then only decide which stripe counts them.
    const std::uint32_t klen = s->key_len.load(std::memory_order_relaxed);
    if (klen == 0 || klen > c.max_key_size) continue;
    key.words[(klen + 7) / 8 - 1] = 0;
    load_words(key.words, s->key_words(), (klen + 7) / 8);
    if (kv_stripe_of(kv_hash(key.words, klen), c) == stripe) ++n;
  }
  st.count.store(n, std::memory_order_relaxed);  // relaxed: a statistic
}

}  // namespace

// Holds the overflow area's lock (after the key's stripe lock, never before).
class KvStore::OverflowLock {
 public:
  explicit OverflowLock(const KvTableView& t) : t_(t) {
    if (lock_owner_word(t_.overflow->owner)) recover_overflow(t_);
  }
  ~OverflowLock() { unlock_owner_word(t_.overflow->owner); }
  OverflowLock(const OverflowLock&) = delete;
  OverflowLock& operator=(const OverflowLock&) = delete;

 private:
  const KvTableView& t_;
};

KvStore::Writer::Writer(KvStore& kv, const KvKey& key)
    : kv_(kv), key_(key), stripe_(kv_stripe_of(key.hash, kv.config())) {
  if (lock_owner_word(kv_.view_.stripes[stripe_].owner)) repair_stripe(kv_.view_, stripe_);
}

KvStore::Writer::~Writer() { unlock_owner_word(kv_.view_.stripes[stripe_].owner); }

KvFound KvStore::Writer::current(KvSink* out) const {
  const KvTableView& t = kv_.view_;
  KvFound r;
  KvSlot* s = find(t, key_, &r.slot);
  if (s == nullptr) return r;
  // relaxed: we hold the stripe lock, nobody else writes this slot.
  r.version = s->version.load(std::memory_order_relaxed);
  const KvDamage dmg = t.copy_value(s, r.version, key_, out, r);
  if (dmg != KvDamage::none) kv_.throw_damaged(key_, dmg);
  r.found = true;
  return r;
}

void KvStore::Writer::write(const std::uint64_t* words, std::uint32_t len, std::uint64_t fp,
                            std::string_view type_name) {
  const KvTableView& t = kv_.view_;
  const KvConfig& c = *t.config;
  KvStripe& stripe = t.stripes[stripe_];
  register_type(t.types, fp, type_name);
  std::uint64_t index = 0;
  KvSlot* s = find(t, key_, &index);
  const std::uint64_t where = s ? s->version.load(std::memory_order_relaxed) & kKvWhereMask : 0;  // relaxed: ours
  const bool big = len > c.max_value_size;
  if (!big && (s == nullptr || where < kKvRun0)) {
    if (s != nullptr) {
      // Update: through the stripe's spare, back into the slot's buffer.
      const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
      if (where == kKvInline) {
        stripe.pending.store(index + 1, std::memory_order_relaxed);  // relaxed: for a repairer
        // (3): a reader still copying the spare for an earlier write sees
        // that slot's version move if it sees our bytes.
        seq_begin_overwrite();
        store_words(t.spare(stripe_), words, (len + 7) / 8);
        stripe.spare_len.store(len, std::memory_order_relaxed);  // relaxed: published by (1)
        stripe.spare_fp.store(fp, std::memory_order_relaxed);
        SLEET_FAULT_POINT("kv.write");
        seq_publish(s->version, kv_next_version(v, kKvSpare));  // (1)
      }
      write_inline(s, c, words, len, fp);
      stripe.pending.store(0, std::memory_order_relaxed);  // relaxed: for a repairer
      announce_change(stripe);
      return;
    }
    insert(words, len, fp, kNoRun);
    return;
  }
  if (t.overflow == nullptr) kv_.throw_value_too_large(len);
  // The value goes to, or comes from, the overflow area: under its lock,
  // with the journal naming the slot and both runs until the old is freed.
  OverflowLock lock(t);
  KvOverflow& o = *t.overflow;
  const std::uint32_t old = s ? published_run(t, s) : kNoRun;
  // relaxed (journal): read only by a recoverer after a takeover.
  o.journal_slot.store(s ? index + 1 : 0, std::memory_order_relaxed);
  o.journal_old.store(old, std::memory_order_relaxed);
  if (!big) {
    // Run -> slot buffer: the buffer is not the published value.
    write_inline(s, c, words, len, fp);
  } else {
    const std::uint64_t need = (kKvRunHeader + len + kKvBlock - 1) / kKvBlock;
    const std::uint32_t run = alloc_run(t, need);
    if (run == kNoRun) {
      clear_journal(o);
      const std::uint64_t used = o.used_blocks.load(std::memory_order_relaxed) * kKvBlock;  // relaxed: statistic
      throw_error(errc::full, kv_describe(kv_.name()),
                  "overflow area full: value of " + std::to_string(len) + " bytes for key " +
                      kv_quoted(std::string_view(reinterpret_cast<const char*>(key_.words), key_.len)) +
                      " needs " + std::to_string(need * kKvBlock) + " bytes (" +
                      std::to_string(need) + " blocks of " + std::to_string(kKvBlock) + "); " +
                      std::to_string(used) + " of " + std::to_string(c.overflow_blocks * kKvBlock) +
                      " bytes in use, largest free run " +
                      std::to_string(largest_free_run(t) * kKvBlock) + " bytes");
    }
    std::uint64_t* head = t.run_words(run);
    // (3): a reader still copying a freed run that held another value sees
    // that slot's version move if it sees our bytes.
    seq_begin_overwrite();
    // relaxed (run words): published by (1).
    std::atomic_ref<std::uint64_t>(head[0]).store(len, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(head[1]).store(fp, std::memory_order_relaxed);
    store_words(head + kKvRunHeader / 8, words, (len + 7) / 8);
    if (s == nullptr) {
      insert(words, len, fp, run);
      free_run(t, old);
      clear_journal(o);
      return;
    }
    const std::uint64_t b = where >= kKvRun0 ? ((where - kKvRun0) ^ 1) : 0;
    s->tail(c).run[b].store(run, std::memory_order_relaxed);  // relaxed: published by (1)
    const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
    seq_publish(s->version, kv_next_version(v, kKvRun0 + b));  // (1)
  }
  free_run(t, old);
  clear_journal(o);
  announce_change(stripe);
}

void KvStore::Writer::insert(const std::uint64_t* words, std::uint32_t len, std::uint64_t fp,
                             std::uint32_t run) {
  const KvTableView& t = kv_.view_;
  const KvConfig& c = *t.config;
  std::uint64_t index = 0, d = 0;
  if (!claim_slot(t, key_, &index, &d)) {
    if (run != kNoRun) {
      free_run(t, run);  // under the overflow lock (the caller holds it)
      clear_journal(*t.overflow);
    }
    throw_error(errc::full, kv_describe(kv_.name()),
                "no free slot for key " +
                    kv_quoted(std::string_view(reinterpret_cast<const char*>(key_.words), key_.len)) +
                    " (" + std::to_string(kv_.size()) + " keys in " + std::to_string(c.slots) +
                    " slots)");
  }
  KvSlot* s = t.slot(index);
  if (run != kNoRun) {
    // relaxed: read by a recoverer after a takeover of the overflow lock.
    t.overflow->journal_slot.store(index + 1, std::memory_order_relaxed);
  }
  raise_reach(t, key_.hash & t.mask(), d);
  t.meta_of(index).tag.store(kv_tag(key_.hash), std::memory_order_relaxed);  // relaxed: published by (5)
  // Move the version before touching bytes a stale reader may still be
  // copying (the slot's previous key and value).
  const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
  // release: a reader whose acquire load sees this bump also sees the
  // slot's claimed state, so it cannot validate a copy of the old key's
  // state against it (writers of other stripes take no lock we hold).
  const std::uint64_t bumped = kv_next_version(v, kKvInline);
  s->version.store(bumped, std::memory_order_release);
  seq_begin_overwrite();  // (3)
  // relaxed (all): published by (1) and (5).
  s->key_len.store(static_cast<std::uint32_t>(key_.len), std::memory_order_relaxed);
  store_words(s->key_words(), key_.words, (key_.len + 7) / 8);
  std::uint64_t where = kKvInline;
  if (run == kNoRun) {
    store_words(s->value_words(c), words, (len + 7) / 8);
    s->value_len.store(len, std::memory_order_relaxed);
    s->value_fp.store(fp, std::memory_order_relaxed);
  } else {
    s->tail(c).run[0].store(run, std::memory_order_relaxed);
    where = kKvRun0;
  }
  SLEET_FAULT_POINT("kv.claim");
  seq_publish(s->version, kv_next_version(bumped, where));  // (1)
  s->state.store(kv_state_word(kKvLive, current_identity()), std::memory_order_release);  // (5)
  KvStripe& stripe = t.stripes[stripe_];
  add_count(stripe, 1);
  announce_change(stripe);
}

bool KvStore::Writer::erase() {
  const KvTableView& t = kv_.view_;
  std::uint64_t index = 0;
  KvSlot* s = find(t, key_, &index);
  if (s == nullptr) return false;
  const std::uint64_t where = s->version.load(std::memory_order_relaxed) & kKvWhereMask;  // relaxed: ours
  auto take_out = [&] {
    const std::uint64_t v = s->version.load(std::memory_order_relaxed);  // relaxed: ours
    // release: a reader that sees the new version re-reads the state below.
    s->version.store(kv_next_version(v, where), std::memory_order_release);
    SLEET_FAULT_POINT("kv.erase");
    // Claimed by us (not live, not free) while the tag is reset, so no
    // writer of another stripe claims it and has its tag overwritten.
    s->state.store(kv_state_word(kKvClaimed, current_identity()), std::memory_order_release);  // (5)
    release_slot(t, index);
  };
  if (where >= kKvRun0 && t.overflow != nullptr) {
    OverflowLock lock(t);
    KvOverflow& o = *t.overflow;
    const std::uint32_t old = published_run(t, s);
    // relaxed (journal): read only by a recoverer after a takeover.
    o.journal_slot.store(index + 1, std::memory_order_relaxed);
    o.journal_old.store(old, std::memory_order_relaxed);
    take_out();
    free_run(t, old);
    clear_journal(o);
  } else {
    take_out();
  }
  KvStripe& stripe = t.stripes[stripe_];
  add_count(stripe, -1);
  announce_change(stripe);
  return true;
}

bool KvStore::erase(std::string_view key) {
  const KvKey k = make_key(key);
  Writer w(*this, k);
  return w.erase();
}

void KvStore::clear() {
  const KvTableView& t = view_;
  const KvConfig& c = config();
  for (std::uint64_t i = 0; i < c.stripes; ++i) {
    if (lock_owner_word(t.stripes[i].owner)) repair_stripe(t, i);
  }
  // With every stripe held no writer is inside the table (a claimed slot
  // belongs to a dead writer), so slots may go back to empty: misses stop
  // scanning early again. Two passes, so that a clear() killed half-way
  // never hides a live key behind an empty tag: first every live key is
  // taken out, then every tag becomes empty.
  KvKey key;
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    KvSlot* s = t.slot(i);
    // relaxed: all writers are locked out.
    if (kv_state(s->state.load(std::memory_order_relaxed)) != kKvLive) continue;
    const std::uint64_t v = s->version.load(std::memory_order_relaxed);
    s->version.store(kv_next_version(v, kKvInline), std::memory_order_release);  // readers retry
    release_slot(t, i);
    const std::uint32_t klen = s->key_len.load(std::memory_order_relaxed);
    if (klen != 0 && klen <= c.max_key_size) {
      key.words[(klen + 7) / 8 - 1] = 0;
      load_words(key.words, s->key_words(), (klen + 7) / 8);
      add_count(t.stripes[kv_stripe_of(kv_hash(key.words, klen), c)], -1);
    }
  }
  if (t.overflow != nullptr) {
    // No live key references a run now: every block is free.
    OverflowLock lock(t);
    for (std::uint64_t b = 0; b < c.overflow_blocks; ++b) {
      std::atomic_ref<std::uint32_t>(t.block_meta[b]).store(0, std::memory_order_relaxed);
    }
    t.overflow->used_blocks.store(0, std::memory_order_relaxed);  // relaxed: a statistic
    clear_journal(*t.overflow);
  }
  for (std::uint64_t i = 0; i < c.slots; ++i) {
    // relaxed: no key is live and no writer is inside; readers stop at once.
    t.meta[i].tag.store(kTagEmpty, std::memory_order_relaxed);
    t.meta[i].reach.store(0, std::memory_order_relaxed);
    t.slot(i)->tail(c).reach.store(0, std::memory_order_relaxed);
    t.slot(i)->state.store(kv_state_word(kKvEmpty, 0), std::memory_order_release);
  }
  for (std::uint64_t i = 0; i < c.stripes; ++i) {
    t.stripes[i].count.store(0, std::memory_order_relaxed);  // relaxed: a statistic
    announce_change(t.stripes[i]);
    unlock_owner_word(t.stripes[i].owner);
  }
}

}  // namespace sleet
