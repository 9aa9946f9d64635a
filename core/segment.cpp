#include "sleet/detail/segment.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>

#include "sleet/detail/futex.hpp"
#include "sleet/detail/process.hpp"
#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet::detail {

const char* to_string(SegmentKind k) noexcept {
  switch (k) {
    case SegmentKind::channel: return "channel";
    case SegmentKind::pipe: return "pipe";
    case SegmentKind::kv: return "kv";
    case SegmentKind::mutex: return "mutex";
    case SegmentKind::semaphore: return "semaphore";
    case SegmentKind::event: return "event";
    case SegmentKind::value: return "value";
    case SegmentKind::array: return "array";
    case SegmentKind::topic: return "topic";
    case SegmentKind::service: return "service";
  }
  return "unknown";
}

namespace {

// Closes a descriptor on every path out of a scope, unless released.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Maps exactly `size` bytes; the caller checked them against the file.
std::byte* map(int fd, std::uint64_t size, std::string_view name) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) throw_errno(errno, object_label("sleet segment", name), "mmap");
  return static_cast<std::byte*>(p);
}

// Every open object keeps a descriptor (its flock is the liveness): lift
// the soft descriptor limit to the hard one, once per process.
void raise_fd_limit() noexcept {
  static const bool raised = [] {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
      r.rlim_cur = r.rlim_max;
      (void)::setrlimit(RLIMIT_NOFILE, &r);  // best effort: the old limit still works
    }
    return true;
  }();
  (void)raised;
}

// How often a wait for the creator or for a lock polls: short enough that
// open_or_create() races cost little, long enough not to spin a core.
constexpr auto kPollPeriod = std::chrono::milliseconds(1);

// flock(LOCK_SH) for as long as the descriptor lives. An exclusive holder
// is `sleet rm`, between its check and its unlink: wait for it, bounded.
void lock_shared(int fd, const std::string& what, Deadline give_up) {
  for (;;) {
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) return;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) throw_errno(errno, what, "flock");
    if (Clock::now() >= give_up) {
      throw_error(errc::busy, what,
                  "held exclusively by another process for " +
                      std::to_string(kReadyWait.count()) + " ms");
    }
    std::this_thread::sleep_for(kPollPeriod);
  }
}

// The name may have been removed (and made again) between shm_open() and
// our lock: an unlinked object is not the one asked for.
void require_still_named(int fd, std::string_view name, const std::string& what) {
  struct stat mine {}, named {};
  if (::fstat(fd, &mine) != 0) throw_errno(errno, what, "fstat");
  const std::string path = shm_path(name);
  if (::stat(path.c_str(), &named) != 0 || named.st_ino != mine.st_ino ||
      named.st_dev != mine.st_dev) {
    throw_error(errc::not_found, what, "was removed while being opened");
  }
}

std::uint64_t file_size(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, what, "fstat");
  return static_cast<std::uint64_t>(st.st_size);
}

// Waits (bounded) until the header copy says `ready`, and returns it.
HeaderCopy wait_ready(int fd, const std::string& what, Deadline give_up) {
  const std::uint64_t my_ns = current_pid_namespace();
  // A dead creator is believed when two copies a poll apart agree: a copy
  // taken while the creator writes the word could be torn.
  std::uint64_t seen_dead = 0;
  for (;;) {
    const std::uint64_t size = file_size(fd, what);
    if (size != 0 && size < kHeaderSize) {
      throw_error(errc::not_sleet, what,
                  "not a sleet segment (" + std::to_string(size) + " bytes, header needs " +
                      std::to_string(kHeaderSize) + ")");
    }
    std::uint64_t creator = 0;
    if (size != 0) {
      HeaderCopy copy = read_header(fd, what);
      const SegmentHeader& h = copy.header();
      // relaxed (all loads of the copy): a private snapshot, not shared.
      const std::uint32_t state = h.state.load(std::memory_order_relaxed);
      const bool zero_magic = std::all_of(h.magic, h.magic + sizeof h.magic,
                                          [](char c) { return c == 0; });
      if (!copy.has_magic() && !zero_magic) {
        throw_error(errc::not_sleet, what, "not a sleet segment (bad magic)");
      }
      if (state == kReady && copy.has_magic()) return copy;
      if (state != 0) throw_error(errc::not_sleet, what, "not a sleet segment (bad magic or state)");
      creator = h.creator.load(std::memory_order_relaxed);
      // Pids of another namespace cannot be judged here: wait for the bound.
      const bool same_ns = h.pid_namespace == 0 || my_ns == 0 || h.pid_namespace == my_ns;
      if (creator != 0 && same_ns && !identity_alive(creator)) {
        if (creator == seen_dead) {
          throw_error(errc::peer_dead, what,
                      "creator pid " + std::to_string(identity_pid(creator)) +
                          " died before it was ready");
        }
        seen_dead = creator;
      }
    }
    if (Clock::now() >= give_up) {
      const std::string waited = std::to_string(kReadyWait.count()) + " ms";
      if (size == 0) throw_error(errc::not_sleet, what, "not a sleet segment (zero length for " + waited + ")");
      if (creator == 0) {  // nobody ever started to create it
        throw_error(errc::not_sleet, what, "not a sleet segment (zero-filled, never initialised)");
      }
      throw_error(errc::timeout, what,
                  "not ready after " + waited + " (creator pid " +
                      std::to_string(identity_pid(creator)) + ")");
    }
    std::this_thread::sleep_for(kPollPeriod);
  }
}

// The checks of a ready header copy against the file and the expectation.
void check_header(const SegmentHeader& h, std::uint64_t size, SegmentKind kind,
                  std::uint64_t fingerprint, std::string_view type_name, const std::string& what) {
  if (h.layout_version != kLayoutVersion) {
    throw_error(errc::version_mismatch, what,
                "layout version " + std::to_string(h.layout_version) + ", this build reads " +
                    std::to_string(kLayoutVersion));
  }
  if (h.kind != static_cast<std::uint32_t>(kind)) {
    throw_error(errc::kind_mismatch, what,
                std::string("is a ") + to_string(static_cast<SegmentKind>(h.kind)) + ", not a " +
                    to_string(kind));
  }
  if (h.total_size != size || h.object_offset != kHeaderSize || h.total_size > kMaxSegmentSize) {
    throw_error(errc::corrupted, what,
                "truncated or damaged: header says " + std::to_string(h.total_size) +
                    " bytes at offset " + std::to_string(h.object_offset) + ", object has " +
                    std::to_string(size));
  }
  if (h.fingerprint != fingerprint) {
    const std::string stored(h.type_name, ::strnlen(h.type_name, sizeof h.type_name));
    const std::string wanted = readable_type_name(type_name);
    std::string detail = "holds '" + stored + "', opened as '" + wanted + "'";
    if (stored == wanted) detail += fingerprints_note(h.fingerprint, fingerprint);
    throw_error(errc::type_mismatch, what, detail);
  }
}

}  // namespace

void validate_name(std::string_view name) {
  const std::string shown = printable_name(name);
  if (name.empty()) throw Error(errc::invalid_name, "invalid sleet name '': empty");
  if (name.size() > kMaxNameLength) {
    throw Error(errc::invalid_name, "invalid sleet name '" + shown + "': " +
                                        std::to_string(name.size()) + " characters, at most " +
                                        std::to_string(kMaxNameLength));
  }
  for (char c : name) {
    if (!is_name_char(c)) {
      throw Error(errc::invalid_name, "invalid sleet name '" + shown +
                                          "': only [A-Za-z0-9._-] allowed, found '" +
                                          printable_name(std::string_view(&c, 1)) + "'");
    }
  }
}

std::string printable_name(std::string_view name, std::size_t shown) {
  std::string out;
  for (std::size_t i = 0; i < name.size() && i < shown; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (name.size() > shown) out += "...";
  return out;
}

std::uint64_t current_pid_namespace() noexcept {
  struct stat st {};
  if (::stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_ino);
}

std::string shm_name(std::string_view name) { return "/sleet." + std::string(name); }
std::string shm_path(std::string_view name) { return "/dev/shm/sleet." + std::string(name); }

bool HeaderCopy::has_magic() const noexcept {
  return bytes >= sizeof kMagic && std::memcmp(raw, kMagic, sizeof kMagic) == 0;
}

HeaderCopy read_header(int fd, std::string_view what) {
  HeaderCopy copy{};
  std::memset(copy.raw, 0, sizeof copy.raw);
  while (copy.bytes < kHeaderSize) {
    const ssize_t n = ::pread(fd, copy.raw + copy.bytes, kHeaderSize - copy.bytes,
                              static_cast<off_t>(copy.bytes));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, what, "pread");
    if (n == 0) break;
    copy.bytes += static_cast<std::size_t>(n);
  }
  return copy;
}

bool lock_if_unused(int fd) noexcept {
  // A user holds LOCK_SH for as long as it has the object open; another
  // prober (ls, stat, rm in another process) holds LOCK_EX for microseconds.
  // So a refusal is asked again a few times, 100 us apart, before it counts
  // as "in use": two probers never make each other's object look used.
  for (int tries = 0;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK || ++tries > 3) return false;
    const timespec pause{0, 100'000};
    ::nanosleep(&pause, nullptr);
  }
}

void unlock_segment(int fd) noexcept { (void)::flock(fd, LOCK_UN); }

Segment::Segment(std::string name, std::byte* base, std::uint64_t size, int fd)
    : name_(std::move(name)),
      mapping_(base,
               [size, fd](void* p) {
                 ::munmap(p, size);
                 ::close(fd);  // drops our LOCK_SH with the last descriptor
               }),
      base_(base),
      size_(size) {
  register_user();
}

Segment::~Segment() {
  if (base_ != nullptr) unregister_user();
}

void Segment::unregister_user() noexcept {
  // A forked child's copy of the handle is not the registered user.
  if (user_identity_ == 0 || user_identity_ != current_identity()) return;
  SegmentHeader* h = header();
  if (user_slot_ >= 0) {
    std::uint64_t expected = user_identity_;
    // relaxed: the users table is a diagnostic, never used for correctness.
    h->users[user_slot_].compare_exchange_strong(expected, 0, std::memory_order_relaxed);
  } else if (unrecorded_) {
    h->unrecorded_users.fetch_sub(1, std::memory_order_relaxed);  // relaxed: diagnostic
  }
}

Segment Segment::share() const {
  Segment s;
  s.name_ = name_;
  s.mapping_ = mapping_;
  s.base_ = base_;
  s.size_ = size_;
  return s;
}

void Segment::swap(Segment& other) noexcept {
  name_.swap(other.name_);
  mapping_.swap(other.mapping_);
  std::swap(base_, other.base_);
  std::swap(size_, other.size_);
  std::swap(user_slot_, other.user_slot_);
  std::swap(unrecorded_, other.unrecorded_);
  std::swap(user_identity_, other.user_identity_);
}

void Segment::register_user() noexcept {
  SegmentHeader* h = header();
  user_identity_ = current_identity();
  const std::uint64_t ns = current_pid_namespace();
  if (h->pid_namespace == 0 || ns == 0 || h->pid_namespace == ns) {
    for (std::size_t i = 0; i < kMaxUsers; ++i) {
      auto& slot = h->users[i];
      // relaxed: diagnostic table (see the header essay).
      std::uint64_t seen = slot.load(std::memory_order_relaxed);
      if (seen != 0 && identity_alive(seen)) continue;
      if (slot.compare_exchange_strong(seen, user_identity_, std::memory_order_relaxed)) {
        user_slot_ = static_cast<int>(i);
        return;
      }
    }
  }
  // No room, or our pids mean nothing to the table's namespace: counted.
  h->unrecorded_users.fetch_add(1, std::memory_order_relaxed);  // relaxed: diagnostic
  unrecorded_ = true;
}

Segment Segment::create(std::string_view name, const SegmentSpec& spec,
                        const std::function<void(std::byte* object)>& init) {
  validate_name(name);
  const std::string what = object_label("sleet segment", name);
  if ((spec.permissions & ~0777u) != 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "permissions 0%o are out of range (0 to 0777)", spec.permissions);
    throw_error(errc::invalid_argument, what, buf);
  }
  const std::uint64_t total = kHeaderSize + round_up(spec.object_size, kCacheLine);
  if (spec.object_size == 0 || total > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, what,
                "size of " + std::to_string(total) + " bytes is out of range (at most " +
                    std::to_string(kMaxSegmentSize) + ")");
  }
  raise_fd_limit();
  const std::string shm = shm_name(name);
  Fd fd{::shm_open(shm.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (fd.fd < 0) {
    if (errno == EEXIST) throw_error(errc::already_exists, what, "already exists");
    throw_errno(errno, what, "shm_open");
  }
  try {
    // In use from the first instant: an exclusive locker (sleet rm) only
    // removes what has the magic, which we write after this.
    lock_shared(fd.fd, what, Clock::now() + kReadyWait);
    // fchmod: the mode given to shm_open is filtered by the umask.
    if (::fchmod(fd.fd, spec.permissions) != 0) throw_errno(errno, what, "fchmod");
    // posix_fallocate reserves the pages now, so a full /dev/shm is an error
    // here rather than a SIGBUS on first touch.
    if (int err = ::posix_fallocate(fd.fd, 0, static_cast<off_t>(total)); err != 0) {
      throw_errno(err, what, "allocating " + std::to_string(total) + " bytes");
    }
    std::byte* base = map(fd.fd, total, name);
    Segment seg(std::string(name), base, total, fd.release());
    SegmentHeader* h = seg.header();
    // Magic and kind first: remove_segment() tells what it is from them.
    std::memcpy(h->magic, kMagic, sizeof kMagic);
    h->layout_version = kLayoutVersion;
    h->kind = static_cast<std::uint32_t>(spec.kind);
    h->pid_namespace = current_pid_namespace();
    // relaxed: read by openers only to tell a dead creator from a slow one.
    h->creator.store(current_identity(), std::memory_order_relaxed);
    h->total_size = total;
    h->fingerprint = spec.fingerprint;
    h->created_ns = realtime_ns();
    h->object_offset = kHeaderSize;
    h->permissions = spec.permissions;
    const std::string type = readable_type_name(spec.type_name);
    const std::size_t n = std::min(type.size(), sizeof h->type_name - 1);
    std::memcpy(h->type_name, type.data(), n);
    h->type_name[n] = '\0';
    if (init) init(seg.object());
    // release: publishes the header and the object; pairs with the acquire
    // load of `state` in Segment::open().
    h->state.store(kReady, std::memory_order_release);
    futex_wake(&h->state, INT32_MAX);
    return seg;
  } catch (...) {
    ::shm_unlink(shm.c_str());
    throw;
  }
}

Segment Segment::open(std::string_view name, SegmentKind kind, std::uint64_t fingerprint,
                      std::string_view type_name) {
  validate_name(name);
  const std::string what = object_label("sleet segment", name);
  raise_fd_limit();
  const std::string shm = shm_name(name);
  Fd fd{::shm_open(shm.c_str(), O_RDWR | O_CLOEXEC, 0)};
  if (fd.fd < 0) {
    if (errno == ENOENT) throw_error(errc::not_found, what, "does not exist");
    throw_errno(errno, what, "shm_open");
  }
  const Deadline give_up = Clock::now() + kReadyWait;
  lock_shared(fd.fd, what, give_up);
  require_still_named(fd.fd, name, what);
  // Everything is checked on a pread() copy against the real file size
  // before a single page is mapped.
  const HeaderCopy copy = wait_ready(fd.fd, what, give_up);
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) throw_errno(errno, what, "fstat");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  check_header(copy.header(), size, kind, fingerprint, type_name, what);
  // MAP_POPULATE below would allocate every hole.
  if (const std::string holes = holes_problem(static_cast<std::uint64_t>(st.st_blocks), size);
      !holes.empty()) {
    throw_error(errc::corrupted, what, holes);
  }
  std::byte* base = map(fd.fd, size, name);
  Segment seg(std::string(name), base, size, fd.release());
  // acquire: pairs with the creator's release store of kReady; the copy
  // said ready, and the state word never goes back.
  if (seg.header()->state.load(std::memory_order_acquire) != kReady) {
    throw_error(errc::corrupted, what, "state word changed after it was ready");
  }
  return seg;
}

void require_object_size(const Segment& segment, std::uint64_t expected, std::string_view what) {
  if (segment.object_size() != expected) {
    throw_error(errc::not_sleet, what,
                "object is " + std::to_string(segment.object_size()) + " bytes, expected " +
                    std::to_string(expected) + " (damaged or not made by this version)");
  }
}

bool remove_segment(std::string_view name, SegmentKind kind) {
  validate_name(name);
  const std::string what = object_label("sleet segment", name);
  const std::string path = shm_path(name);
  // O_NOFOLLOW: a symlink under our prefix is not ours to follow.
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (fd.fd < 0) {
    if (errno == ENOENT) return false;
    if (errno == ELOOP) throw_error(errc::not_sleet, what, "not a sleet segment (a symlink)");
    throw_errno(errno, what, "open");
  }
  const HeaderCopy copy = read_header(fd.fd, what);
  if (copy.has_magic()) {
    const SegmentHeader& h = copy.header();
    if (h.kind != static_cast<std::uint32_t>(kind)) {
      throw_error(errc::kind_mismatch, what,
                  std::string("is a ") + to_string(static_cast<SegmentKind>(h.kind)) +
                      ", not a " + to_string(kind) + " (remove_object() removes any kind)");
    }
  } else if (copy.bytes != 0 &&
             !std::all_of(copy.raw, copy.raw + copy.bytes, [](std::byte b) { return b == std::byte{0}; })) {
    throw_error(errc::not_sleet, what, "not a sleet segment (bad magic)");
  }
  return Segment::remove(name);
}

bool Segment::remove(std::string_view name) {
  validate_name(name);
  const std::string shm = shm_name(name);
  if (::shm_unlink(shm.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw_errno(errno, object_label("sleet segment", name), "shm_unlink");
}

}  // namespace sleet::detail
