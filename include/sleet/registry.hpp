// sleet/registry.hpp — finding and inspecting sleet objects from any process.
//
//   auto ch = sleet::get_channel<Job>("jobs");   // open with the type check
//   for (const auto& o : sleet::list_objects()) std::cout << o.name << ' ' << o.kind << '\n';
//   sleet::ObjectInfo jobs = sleet::inspect_object("jobs");   // one object, every counter
//   sleet::remove_object("left-behind");                       // any kind, never a foreign file
//
// The registry reads /dev/shm/sleet.* through a read-only mapping: it never
// attaches (no role claimed, not listed as a user, nothing written), so
// looking at an object cannot change what it is looking at. Everything it
// reports about a live object is a racy snapshot: counters are relaxed
// loads, each exact when read but not taken at one instant together.
//
// What counts as a sleet segment: a regular file under the prefix, at least
// a header long, starting with the magic "SLEETSHM". Anything else under the
// prefix is foreign: list_objects() skips it, inspect_object() and
// remove_object() refuse it with errc::not_sleet. A sleet segment whose
// header or kind-specific layout does not check out (another layout
// version, still initialising, truncated, damaged) is still listed, with
// `problem` saying what is wrong and only the fields that could be trusted
// filled in; every size read from a segment is validated against the file
// before anything is read through it.
//
// Liveness: an object is in use while any process has it open: every
// opener holds a shared flock on it for as long (see detail/segment.hpp),
// so the verdict is the kernel's and cannot overflow. `stale` means nobody
// holds it: nobody will use it again unless someone opens it. `users` (the
// live pids of the header's table, for display) holds at most 28; openers
// beyond are counted in `unrecorded_users`. Pids recorded in another pid
// namespace are shown as recorded (`foreign_pids`), never judged dead. A
// segment of another layout version is never called stale (its processes
// may not take the lock). remove_object() removes a live object by default
// (like unlink(): processes that have it mapped keep working; the name is
// gone); RemoveWhen::unused refuses one in use.
//
// Adding a kind: give ObjectInfo a std::optional<KindInfo> member and add a
// reader for the kind to the table in core/registry.cpp. Kinds without a
// reader (today the sync primitives) report the generic header fields.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sleet/channel.hpp"

namespace sleet {

// One ring of a channel (a pipe has two: "a->b" and "b->a").
struct RingInfo {
  std::string direction;  // "" for a channel; "a->b" or "b->a" for a pipe
  Topology topology = Topology::mpmc;
  std::uint64_t capacity = 0;  // messages of max_message_size that fit
  std::uint64_t max_message_size = 0;
  bool closed = false;  // close() has begun
  ChannelStats stats;   // queued, sent, received, times_full, sleeps and wakes per side
};

struct KvInfo {
  std::uint64_t capacity = 0;        // entries it was created for
  std::uint64_t slots = 0;           // capacity rounded up to a power of two
  std::uint64_t entries = 0;         // live keys (racy while writers run)
  std::uint64_t max_key_size = 0;    // bytes
  std::uint64_t max_value_size = 0;  // bytes of an encoded value kept in its slot
  std::uint64_t overflow_bytes = 0;  // the overflow area for larger values (0: none)
  std::uint64_t overflow_used = 0;   // bytes of it in use (racy)
};

struct ObjectInfo {
  std::string name;
  std::string kind;       // channel, pipe, kv, mutex, semaphore, event, value, array;
                          // "unknown" when the header cannot be trusted (see problem)
  std::string type_name;  // message/value type as the creator's compiler spelt it
  std::uint64_t fingerprint = 0;  // of that type and its codec (what open() checks)
  std::uint32_t layout_version = 0;
  std::uint64_t total_size = 0;  // bytes of the shared memory object
  unsigned permissions = 0;      // mode bits of the shared memory object
  unsigned owner_uid = 0;        // its owner
  std::chrono::system_clock::time_point created{};
  int creator_pid = 0;
  bool creator_alive = false;
  std::vector<int> users;  // live processes in its users table, each once, ascending
  std::uint32_t unrecorded_users = 0;  // openers the table had no room for (may include dead ones)
  bool foreign_pids = false;  // pids of another pid namespace: shown, not judged
  bool stale = false;         // no process holds it open
  // Empty for a sound segment; otherwise what is wrong with it, e.g.
  // "initialising (creator pid 42)" or "layout version 1, this build reads 2".
  // Kind-specific details below are filled only when it is empty.
  std::string problem;

  std::vector<RingInfo> rings;  // channel: one; pipe: two (a->b, b->a)
  std::optional<KvInfo> kv;     // kind kv
  // The primitives' state and counters, by name, in a fixed order: mutex
  // owner_tid, sleeps, recoveries; semaphore value, max, waiters, sleeps,
  // wakes; event set, waiters, sets, sleeps; value lock_free, size; array
  // length, element_size, owner_tid.
  std::vector<std::pair<std::string, std::uint64_t>> fields;
};

// Every sleet segment in /dev/shm, sorted by name. Files that are not sleet
// segments, and ones this process may not read, are skipped.
std::vector<ObjectInfo> list_objects();

// One object by name. Throws sleet::Error naming it: errc::invalid_name,
// errc::not_found (no such object), errc::not_sleet (a file under the
// prefix that is not a sleet segment), errc::permission_denied.
ObjectInfo inspect_object(std::string_view name);

// Removes any sleet segment by name, of any kind; false if there was none.
// Refuses a file under the prefix that is not a sleet segment
// (errc::not_sleet), so a typo cannot delete another program's object.
// RemoveWhen::unused removes it only if no process holds it open
// (errc::busy naming the users otherwise); the check holds an exclusive
// lock through the unlink, so no opener gets in between. (For `always`,
// the check and the unlink are two steps: an object replaced in between is
// removed.)
enum class RemoveWhen { always, unused };
bool remove_object(std::string_view name, RemoveWhen when = RemoveWhen::always);

// Channels and pipes only, with both directions of a pipe added together.
struct ChannelInfo {
  std::string name;
  std::string kind;          // "channel" or "pipe"
  Topology topology = Topology::mpmc;
  std::string type_name;     // the message type, as the creator's compiler spelt it
  std::uint64_t capacity = 0;
  std::uint64_t max_message_size = 0;
  std::uint64_t queued = 0;  // for a pipe: both directions together
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  int creator_pid = 0;
  bool creator_alive = false;
  std::vector<int> users;  // live processes in its users table
  std::uint32_t unrecorded_users = 0;  // openers the table had no room for
  bool stale = false;      // no process holds it open
};

// The sound channels and pipes of list_objects().
std::vector<ChannelInfo> list_channels();

// Opens an existing channel; errc::not_found if there is none and
// errc::type_mismatch (naming both types) if it carries another type.
template <class T>
Channel<T> get_channel(std::string_view name) {
  return Channel<T>::open(name);
}

}  // namespace sleet
