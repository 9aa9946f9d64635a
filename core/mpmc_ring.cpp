// The slow paths of the mpmc ring (include/sleet/detail/mpmc_ring.hpp):
// the process table and the recovery of slots held by dead processes; and
// the recovery helpers every ring shares (ring_common.hpp).
#include "sleet/detail/mpmc_ring.hpp"

namespace sleet::detail {

namespace {

// What this thread last saw held at a waiting position, and since when.
struct StuckWatch {
  const void* slot = nullptr;
  std::uint64_t word = 0;
  Clock::time_point since{};
};
thread_local StuckWatch t_watch;

}  // namespace

bool stuck_for_long(const void* slot, std::uint64_t word) noexcept {
  const auto now = Clock::now();
  StuckWatch& watch = t_watch;
  if (watch.slot != slot || watch.word != word) {
    watch = {slot, word, now};
    return false;
  }
  if (now - watch.since < kRecoverAfter) return false;
  watch.since = now;
  return true;
}

bool RingCommon::close_abandoned() const noexcept {
  // relaxed: the identity needs no order (see close_in_progress()).
  const std::uint64_t who = closer.load(std::memory_order_relaxed);
  return who != 0 && !is_closed() && !identity_alive(who);
}

std::uint32_t MpmcRing::attach() noexcept {
  const std::uint64_t me = current_identity();
  auto& table = c_->processes;
  // acquire (all loads of entries): pairs with the acq_rel CASes below, so
  // an entry read as ours or as dead is what its writer left.
  for (std::uint32_t i = 0; i < kTrackedProcesses; ++i) {
    if (table[i].load(std::memory_order_acquire) == me) return i;  // another object of ours
  }
  for (std::uint32_t i = 0; i < kTrackedProcesses; ++i) {
    std::uint64_t expected = 0;
    // acq_rel: the entry is ours before we stamp slots with it.
    if (table[i].load(std::memory_order_acquire) == 0 &&
        table[i].compare_exchange_strong(expected, me, std::memory_order_acq_rel, std::memory_order_acquire)) {
      return i;
    }
  }
  // A dead process's entry: first take back every slot still stamped with it
  // (it stamps no more), under no name of ours yet, then the entry.
  for (std::uint32_t i = 0; i < kTrackedProcesses; ++i) {
    std::uint64_t dead = table[i].load(std::memory_order_acquire);
    if (dead == 0 || dead == me || identity_alive(dead)) continue;
    const std::uint64_t base = c_->dequeue_pos.load(std::memory_order_relaxed);  // relaxed: a reference point
    for (std::uint64_t k = 0; k <= mask_; ++k) {
      const MpmcSlot* s = slot(k);
      const std::uint64_t w = s->word.load(std::memory_order_relaxed);  // relaxed: recover() re-reads with acquire
      const State st = state_of(w);
      if ((st == kWriting || st == kReading) && owner_of(w) == i) {
        (void)recover(base + static_cast<std::uint64_t>(lap_diff(w, base)), kUntracked);
      }
    }
    if (table[i].compare_exchange_strong(dead, me, std::memory_order_acq_rel, std::memory_order_acquire)) return i;
  }
  return kUntracked;
}

bool MpmcRing::recover(std::uint64_t ticket, std::uint32_t me) noexcept {
  MpmcSlot* s = slot(ticket);
  // acquire: pairs with the release that wrote the word (a taker's CAS is
  // relaxed, but it read a release-stored value, see Synchronization).
  std::uint64_t w = s->word.load(std::memory_order_acquire);
  const State st = state_of(w);
  if (lap_diff(w, ticket) != 0 || (st != kWriting && st != kReading)) return false;
  const std::uint32_t owner = owner_of(w);
  if (owner >= kTrackedProcesses) return false;  // untracked: nobody can tell
  // acquire: pairs with attach()'s acq_rel CAS.
  const std::uint64_t id = c_->processes[owner].load(std::memory_order_acquire);
  if (id != 0 && identity_alive(id)) return false;
  // Take it over under our own name: of several finders, one acts.
  // relaxed: the acquire load above read the value this replaces.
  if (!s->word.compare_exchange_strong(w, word(ticket, st, me), std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
    return false;
  }
  RingCommon& common = c_->common;
  if (st == kWriting) {
    // The dead producer's send() never returned: skip the slot.
    common.abandoned.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    (void)help_past(c_->enqueue_pos, ticket);  // it may have died before moving the position
    s->size = kSkip;
    // release (2): as a commit; pairs with the acquire (3) in peek().
    s->word.store(word(ticket, kHolds, 0), std::memory_order_release);
    common.data_ec.notify();
  } else {
    // The dead consumer took the message: free the slot, count the loss.
    common.lost.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistics
    (void)help_past(c_->dequeue_pos, ticket);
    // release (4): as a consume; pairs with the acquire (1) in claim().
    s->word.store(word(ticket + mask_ + 1, kFree, 0), std::memory_order_release);
    common.space_ec.notify();
  }
  return true;
}

bool MpmcRing::unstick(const std::atomic<std::uint64_t>& pos_word, std::uint64_t back, State st,
                       std::uint32_t me) noexcept {
  // relaxed (both): recover() re-reads the word with acquire and decides.
  const std::uint64_t pos = (pos_word.load(std::memory_order_relaxed) & ~kClosedBit) - back;
  const MpmcSlot* s = slot(pos);
  const std::uint64_t w = s->word.load(std::memory_order_relaxed);
  if (lap_diff(w, pos) != 0 || state_of(w) != st) return false;
  if (!stuck_for_long(s, w)) return false;
  return recover(pos, me);
}

}  // namespace sleet::detail
