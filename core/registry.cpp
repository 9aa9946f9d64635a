// The registry: read-only inspection of /dev/shm/sleet.* (registry.hpp).
#include "sleet/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "sleet/detail/kv_table.hpp"
#include "sleet/detail/stored_value.hpp"
#include "sleet/detail/topic_core.hpp"
#include "sleet/service.hpp"
#include "sleet/event.hpp"
#include "sleet/mutex.hpp"
#include "sleet/semaphore.hpp"
#include "sleet/detail/process.hpp"
#include "system.hpp"

namespace sleet {

namespace {

using detail::SegmentHeader;
using detail::SegmentKind;

// ---- per-kind readers ----
//
// A reader gets the object part of a segment whose header checked out, and
// `size` bytes of it that are mapped. It validates every size it reads
// before reading through it, and throws sleet::Error for a damaged layout
// (the message becomes ObjectInfo::problem).

std::uint64_t read_ring(const std::byte* at, std::uint64_t size, std::string direction,
                        ObjectInfo& info) {
  const detail::MessageType any{0, {}, 0};  // no type to check: only the layout
  const std::uint64_t bytes =
      detail::ChannelLayout::check(at, size, any, direction.empty() ? "ring" : direction);
  const auto& cfg = *reinterpret_cast<const detail::ChannelConfig*>(at);
  RingInfo r;
  r.direction = std::move(direction);
  r.topology = static_cast<Topology>(cfg.topology);
  r.capacity = cfg.capacity;
  r.max_message_size = cfg.max_message_size;
  r.closed = detail::read_channel_closed(at);
  r.stats = detail::read_channel_stats(at);
  info.rings.push_back(std::move(r));
  return bytes;
}

void read_channel(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  read_ring(object, size, "", info);
}

void read_pipe(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const std::uint64_t first = read_ring(object, size, "a->b", info);
  read_ring(object + first, size - first, "b->a", info);
}

void read_kv(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const auto& c = *reinterpret_cast<const detail::KvConfig*>(object);
  if (!detail::kv_layout_valid(c, size)) throw Error(errc::not_sleet, "damaged kv layout");
  KvInfo kv;
  kv.capacity = c.capacity;
  kv.slots = c.slots;
  kv.entries = detail::kv_entries_approx(object);
  kv.max_key_size = c.max_key_size;
  kv.max_value_size = c.max_value_size;
  kv.overflow_bytes = c.overflow_blocks * detail::kKvBlock;
  if (c.overflow_blocks != 0) {
    const auto& o = *reinterpret_cast<const detail::KvOverflow*>(object + c.overflow_offset);
    // relaxed: a statistic; bounded, a damaged counter is not believed.
    const std::uint64_t used = o.used_blocks.load(std::memory_order_relaxed);
    kv.overflow_used = (used <= c.overflow_blocks ? used : c.overflow_blocks) * detail::kKvBlock;
  }
  info.kv = kv;
}

// The primitives: fixed layouts (their headers), read with relaxed loads
// (a snapshot for display).
template <class Object>
const Object& fixed(const std::byte* object, std::uint64_t size) {
  if (size != sizeof(Object)) throw Error(errc::not_sleet, "damaged: object size " + std::to_string(size));
  return *reinterpret_cast<const Object*>(object);
}

void read_mutex(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const auto& l = fixed<detail::MutexObject>(object, size).lock;
  info.fields = {{"owner_tid", static_cast<std::uint64_t>(detail::identity_pid(l.owner()))},
                 {"sleeps", l.sleeps.load(std::memory_order_relaxed)},
                 {"recoveries", l.recoveries.load(std::memory_order_relaxed)}};
}

void read_semaphore(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const auto& o = fixed<detail::SemaphoreObject>(object, size);
  info.fields = {{"value", o.count.load(std::memory_order_relaxed)},
                 {"max", o.max},
                 {"waiters", o.waiters.load(std::memory_order_relaxed)},
                 {"sleeps", o.sleeps.load(std::memory_order_relaxed)},
                 {"wakes", o.wakes.load(std::memory_order_relaxed)}};
}

void read_event(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const auto& o = fixed<detail::EventObject>(object, size);
  info.fields = {{"set", o.word.load(std::memory_order_relaxed) & 1u},
                 {"waiters", o.waiters.load(std::memory_order_relaxed)},
                 {"sets", o.sets.load(std::memory_order_relaxed)},
                 {"sleeps", o.sleeps.load(std::memory_order_relaxed)}};
}

const detail::ValueConfig& value_config(SegmentKind kind, const std::byte* object,
                                        std::uint64_t size) {
  if (size < sizeof(detail::ValueConfig)) throw Error(errc::not_sleet, "damaged: too small");
  const auto& c = *reinterpret_cast<const detail::ValueConfig*>(object);
  if (c.length == 0 || c.length > (std::uint64_t{1} << 32) || c.element_size == 0 ||
      detail::value_layout(kind, c).size != size) {
    throw Error(errc::not_sleet, "damaged value layout");
  }
  return c;
}

void read_value(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const auto& c = value_config(SegmentKind::value, object, size);
  info.fields = {{"lock_free", c.lock_free}, {"size", c.element_size}};
}

void read_array(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  const auto& c = value_config(SegmentKind::array, object, size);
  const auto& l = *reinterpret_cast<const detail::RobustLock*>(
      object + detail::value_layout(SegmentKind::array, c).lock);
  info.fields = {{"length", c.length},
                 {"element_size", c.element_size},
                 {"owner_tid", static_cast<std::uint64_t>(detail::identity_pid(l.owner()))}};
}

void read_topic(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  if (size < detail::BroadcastRing::entries_offset()) throw Error(errc::not_sleet, "damaged: too small");
  const auto& c = *reinterpret_cast<const detail::TopicConfig*>(object);
  if (c.max_subscribers == 0 || c.max_subscribers > detail::kMaxSubscribers || c.slots == 0 ||
      (c.slots & (c.slots - 1)) != 0 ||
      detail::BroadcastRing::bytes(c.slots, c.stride, c.max_subscribers) > size) {
    throw Error(errc::not_sleet, "damaged topic layout");
  }
  const auto& ctl = *reinterpret_cast<const detail::TopicControl*>(object + sizeof(detail::TopicConfig));
  const auto* entries = reinterpret_cast<const detail::SubscriberEntry*>(
      object + detail::BroadcastRing::entries_offset());
  // relaxed (all): a display snapshot.
  const std::uint64_t head = ctl.head.load(std::memory_order_relaxed);
  const std::uint64_t published = head & ~detail::kTopicClosedBit;
  const std::uint64_t n = std::min<std::uint64_t>(ctl.high_water.load(std::memory_order_relaxed),
                                                  c.max_subscribers);
  std::uint64_t subscribers = 0, min = published;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t cur = entries[i].cursor.load(std::memory_order_relaxed);
    if (cur == detail::kCursorFree || cur == detail::kCursorPending) continue;
    ++subscribers;
    min = std::min(min, cur);
  }
  info.fields = {{"capacity", c.slots},
                 {"max_message_size", c.max_message_size},
                 {"max_subscribers", c.max_subscribers},
                 {"overwrite", c.overflow},
                 {"closed", (head & detail::kTopicClosedBit) != 0 ? 1u : 0u},
                 {"published", published},
                 {"subscribers", subscribers},
                 {"slowest_lag", published - std::min(min, published)},
                 {"lost", ctl.lost.load(std::memory_order_relaxed)},
                 {"reclaimed", ctl.reclaimed.load(std::memory_order_relaxed)},
                 {"abandoned", ctl.common.abandoned.load(std::memory_order_relaxed)},
                 {"times_full", ctl.common.times_full.load(std::memory_order_relaxed)}};
}

void read_service(const std::byte* object, std::uint64_t size, ObjectInfo& info) {
  if (size < sizeof(detail::ServiceControl)) throw Error(errc::not_sleet, "damaged: too small");
  const auto& c = *reinterpret_cast<const detail::ServiceControl*>(object);
  read_ring(object + sizeof(detail::ServiceControl), size - sizeof(detail::ServiceControl), "requests", info);
  // relaxed (all): a display snapshot.
  const std::uint64_t server = c.server.load(std::memory_order_relaxed);
  info.fields = {{"server_pid", static_cast<std::uint64_t>(detail::identity_pid(server))},
                 {"server_alive", server != 0 && detail::identity_alive(server) ? 1u : 0u},
                 {"clients", c.next_client.load(std::memory_order_relaxed)},
                 {"served", c.served.load(std::memory_order_relaxed)},
                 {"dropped_replies", c.dropped.load(std::memory_order_relaxed)}};
}

struct KindReader {
  SegmentKind kind;
  void (*read)(const std::byte* object, std::uint64_t size, ObjectInfo& info);
};

// Every kind has a reader; one added later without an entry reports the
// generic header fields only.
constexpr KindReader kReaders[] = {
    {SegmentKind::channel, &read_channel},
    {SegmentKind::pipe, &read_pipe},
    {SegmentKind::kv, &read_kv},
    {SegmentKind::mutex, &read_mutex},
    {SegmentKind::semaphore, &read_semaphore},
    {SegmentKind::event, &read_event},
    {SegmentKind::value, &read_value},
    {SegmentKind::array, &read_array},
    {SegmentKind::topic, &read_topic},
    {SegmentKind::service, &read_service},
};

// ---- the header ----

bool known_kind(std::uint32_t kind) {
  return kind >= static_cast<std::uint32_t>(SegmentKind::channel) &&
         kind <= static_cast<std::uint32_t>(SegmentKind::service);
}

// The users table and the creator, for display. `in_use` is the verdict
// (the flock, see detail/segment.hpp), never the table.
void read_liveness(const SegmentHeader& h, bool in_use, ObjectInfo& info) {
  const std::uint64_t mine = detail::current_pid_namespace();
  info.foreign_pids = h.pid_namespace != 0 && mine != 0 && h.pid_namespace != mine;
  // relaxed (all): diagnostics; the table is for display by design.
  const std::uint64_t creator = h.creator.load(std::memory_order_relaxed);
  info.creator_pid = detail::identity_pid(creator);
  info.unrecorded_users = h.unrecorded_users.load(std::memory_order_relaxed);
  if (info.foreign_pids) {
    // Another namespace's pids: shown as recorded, never judged dead.
    info.creator_alive = false;
    for (const auto& slot : h.users) {
      const int pid = detail::identity_pid(slot.load(std::memory_order_relaxed));
      if (pid > 0 && std::find(info.users.begin(), info.users.end(), pid) == info.users.end()) {
        info.users.push_back(pid);
      }
    }
  } else {
    info.creator_alive = detail::identity_alive(creator);
    for (const auto& slot : h.users) {
      const std::uint64_t id = slot.load(std::memory_order_relaxed);
      const int pid = detail::identity_pid(id);
      // A process with several handles has several entries: list it once.
      if (pid <= 0 || std::find(info.users.begin(), info.users.end(), pid) != info.users.end()) {
        continue;
      }
      if (detail::identity_alive(id)) info.users.push_back(pid);
    }
  }
  std::sort(info.users.begin(), info.users.end());
  info.stale = !in_use;
}

// Everything after the magic, from the header's pread() copy `copy`; the
// object is mapped (read-only, exactly `size` bytes) only once the header
// checked out against the file's size.
void read_segment(int fd, const detail::HeaderCopy& copy, std::uint64_t size, blkcnt_t blocks,
                  bool in_use, ObjectInfo& info) {
  const SegmentHeader& h = copy.header();
  info.kind = "unknown";
  // relaxed: a private copy; the mapping's acquire below is what publishes.
  if (h.state.load(std::memory_order_relaxed) != detail::kReady) {
    read_liveness(h, in_use, info);  // creator and users are written before ready
    info.problem = !in_use ? "creator pid " + std::to_string(info.creator_pid) +
                                 " died before it was ready"
                           : "initialising (creator pid " + std::to_string(info.creator_pid) + ")";
    return;
  }
  info.layout_version = h.layout_version;
  if (h.layout_version != detail::kLayoutVersion) {
    // Another layout: nothing past the version can be trusted, not even
    // whether its processes hold the lock we judge liveness by.
    info.problem = "layout version " + std::to_string(h.layout_version) +
                   ", this build reads " + std::to_string(detail::kLayoutVersion);
    return;
  }
  if (known_kind(h.kind)) info.kind = detail::to_string(static_cast<SegmentKind>(h.kind));
  info.type_name.assign(h.type_name, ::strnlen(h.type_name, sizeof h.type_name));
  info.fingerprint = h.fingerprint;
  info.created = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(h.created_ns)));
  read_liveness(h, in_use, info);
  if (!known_kind(h.kind)) {
    info.problem = "unknown kind " + std::to_string(h.kind);
    return;
  }
  if (h.total_size != size || h.object_offset != detail::kHeaderSize) {
    info.problem = "truncated or damaged: header says " + std::to_string(h.total_size) +
                   " bytes, object has " + std::to_string(size);
    return;
  }
  info.problem = detail::holes_problem(static_cast<std::uint64_t>(blocks), size);
  if (!info.problem.empty()) return;
  void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    info.problem = std::string("mmap: ") + std::strerror(errno);
    return;
  }
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() { ::munmap(p, n); }
  } mapping{p, static_cast<std::size_t>(size)};
  const auto* bytes = static_cast<const std::byte*>(p);
  // acquire: pairs with the creator's release of kReady (segment.hpp); only
  // then is the object published to us.
  if (reinterpret_cast<const SegmentHeader*>(bytes)->state.load(std::memory_order_acquire) !=
      detail::kReady) {
    info.problem = "state word changed after it was ready";
    return;
  }
  for (const KindReader& r : kReaders) {
    if (static_cast<std::uint32_t>(r.kind) != h.kind) continue;
    try {
      r.read(bytes + detail::kHeaderSize, size - detail::kHeaderSize, info);
    } catch (const Error& e) {
      info.rings.clear();
      info.kv.reset();
      info.fields.clear();
      info.problem = e.detail();
    }
  }
}

// Closes a descriptor on every path out of a scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Opens `name` read-only and checks that it is a sleet segment (a regular
// file, a header long, the magic); returns the descriptor, the header copy
// and the size.
struct Opened {
  Fd fd;
  detail::HeaderCopy copy;
  struct stat st {};
};

void open_checked(std::string_view name, Opened& o) {
  detail::validate_name(name);
  const std::string what = detail::object_label("sleet segment", name);
  const std::string path = detail::shm_path(name);
  // O_NOFOLLOW: a symlink under our prefix is not ours to follow.
  o.fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (o.fd.fd < 0) {
    if (errno == ENOENT) detail::throw_error(errc::not_found, what, "does not exist");
    if (errno == ELOOP) detail::throw_error(errc::not_sleet, what, "not a sleet segment (a symlink)");
    detail::throw_errno(errno, what, "open");
  }
  if (::fstat(o.fd.fd, &o.st) != 0) detail::throw_errno(errno, what, "fstat");
  if (!S_ISREG(o.st.st_mode)) {
    detail::throw_error(errc::not_sleet, what, "not a sleet segment (not a regular file)");
  }
  const auto size = static_cast<std::uint64_t>(o.st.st_size);
  if (size < detail::kHeaderSize) {
    detail::throw_error(errc::not_sleet, what,
                        "not a sleet segment (" + std::to_string(size) + " bytes, header needs " +
                            std::to_string(detail::kHeaderSize) + ")");
  }
  // pread, not a mapping: a sparse file of garbage costs no page.
  o.copy = detail::read_header(o.fd.fd, what);
  if (!o.copy.has_magic()) {
    detail::throw_error(errc::not_sleet, what, "not a sleet segment (bad magic)");
  }
}

ObjectInfo read_object(std::string_view name) {
  Opened o;
  open_checked(name, o);
  ObjectInfo info;
  info.name = std::string(name);
  info.total_size = static_cast<std::uint64_t>(o.st.st_size);
  info.permissions = o.st.st_mode & 07777;
  info.owner_uid = o.st.st_uid;
  // The verdict: does anyone hold it open? (Our probe's exclusive lock is
  // let go at once; an opener meanwhile retries.)
  const bool unused = detail::lock_if_unused(o.fd.fd);
  if (unused) detail::unlock_segment(o.fd.fd);
  read_segment(o.fd.fd, o.copy, info.total_size, o.st.st_blocks, !unused, info);
  return info;
}

// The live users of `info` for a message: "pids 1, 2 and 3 unrecorded".
std::string users_of(const ObjectInfo& info) {
  std::string s;
  for (int pid : info.users) s += (s.empty() ? "pid " : ", ") + std::to_string(pid);
  if (info.unrecorded_users != 0) {
    s += (s.empty() ? "" : " and ") + std::to_string(info.unrecorded_users) + " unrecorded";
  }
  return s.empty() ? "processes not in its table" : s;
}

}  // namespace

ObjectInfo inspect_object(std::string_view name) { return read_object(name); }

std::vector<ObjectInfo> list_objects() {
  std::vector<ObjectInfo> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/dev/shm"), &::closedir);
  if (!dir) return out;
  constexpr std::string_view prefix = "sleet.";
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string_view file = e->d_name;
    if (!file.starts_with(prefix)) continue;
    try {
      out.push_back(read_object(file.substr(prefix.size())));
    } catch (const Error&) {
      // Not ours, not readable, or removed since readdir(): not listed.
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
  return out;
}

bool remove_object(std::string_view name, RemoveWhen when) {
  Opened o;
  try {
    open_checked(name, o);  // refuses what is not a sleet segment
  } catch (const Error& e) {
    if (e.code() == errc::not_found) return false;
    throw;
  }
  if (when == RemoveWhen::unused) {
    // Exclusive while we look and unlink: an opener's LOCK_SH waits for us
    // and then finds the name gone (segment.cpp, require_still_named).
    if (!detail::lock_if_unused(o.fd.fd)) {
      ObjectInfo info;
      read_liveness(o.copy.header(), true, info);
      detail::throw_error(errc::busy, detail::object_label("sleet segment", name), "in use (" + users_of(info) + ")");
    }
    struct stat named {};
    const std::string path = detail::shm_path(name);
    if (::stat(path.c_str(), &named) != 0 || named.st_ino != o.st.st_ino) return false;  // replaced
  }
  return detail::Segment::remove(name);
}

std::vector<ChannelInfo> list_channels() {
  std::vector<ChannelInfo> out;
  for (ObjectInfo& o : list_objects()) {
    if ((o.kind != "channel" && o.kind != "pipe") || !o.problem.empty() || o.rings.empty()) {
      continue;
    }
    ChannelInfo c;
    c.name = std::move(o.name);
    c.kind = std::move(o.kind);
    c.topology = o.rings.front().topology;
    c.type_name = std::move(o.type_name);
    c.capacity = o.rings.front().capacity;
    c.max_message_size = o.rings.front().max_message_size;
    for (const RingInfo& r : o.rings) {
      c.queued += r.stats.queued;
      c.sent += r.stats.sent;
      c.received += r.stats.received;
    }
    c.creator_pid = o.creator_pid;
    c.creator_alive = o.creator_alive;
    c.users = std::move(o.users);
    c.unrecorded_users = o.unrecorded_users;
    c.stale = o.stale;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace sleet
