#include "sleet/detail/segment.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

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

std::string describe(std::string_view name) {
  std::string s = "sleet segment '";
  s.append(name).append("'");
  return s;
}

// Closes a descriptor on every path out of a scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
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

std::byte* map(int fd, std::uint64_t size, std::string_view name) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) throw_errno(errno, describe(name), "mmap");
  return static_cast<std::byte*>(p);
}

}  // namespace

void validate_name(std::string_view name) {
  std::string shown(name.substr(0, 60));
  if (name.size() > 60) shown += "...";
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
                                          std::string(1, c) + "'");
    }
  }
}

std::string shm_name(std::string_view name) { return "/sleet." + std::string(name); }
std::string shm_path(std::string_view name) { return "/dev/shm/sleet." + std::string(name); }

Segment::Segment(std::string name, std::byte* base, std::uint64_t size)
    : name_(std::move(name)),
      mapping_(base, [size](void* p) { ::munmap(p, size); }),
      base_(base),
      size_(size) {
  register_user();
}

Segment::~Segment() {
  if (base_ == nullptr) return;
  if (user_slot_ >= 0) {
    int expected = user_pid_;
    // relaxed: the users table is a diagnostic, never used for correctness.
    header()->users[user_slot_].compare_exchange_strong(expected, 0, std::memory_order_relaxed);
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
  std::swap(user_pid_, other.user_pid_);
}

void Segment::register_user() noexcept {
  const int me = current_pid();
  for (std::size_t i = 0; i < kMaxUsers; ++i) {
    auto& slot = header()->users[i];
    // relaxed: diagnostic table (see the header essay).
    int seen = slot.load(std::memory_order_relaxed);
    if (seen != 0 && pid_alive(seen)) continue;
    if (slot.compare_exchange_strong(seen, me, std::memory_order_relaxed)) {
      user_slot_ = static_cast<int>(i);
      user_pid_ = me;
      return;
    }
  }
}

Segment Segment::create(std::string_view name, const SegmentSpec& spec,
                        const std::function<void(std::byte* object)>& init) {
  validate_name(name);
  const std::uint64_t total = kHeaderSize + round_up(spec.object_size, kCacheLine);
  if (spec.object_size == 0 || total > kMaxSegmentSize) {
    throw_error(errc::invalid_argument, describe(name),
                "size of " + std::to_string(total) + " bytes is out of range (at most " +
                    std::to_string(kMaxSegmentSize) + ")");
  }
  const std::string shm = shm_name(name);
  Fd fd{::shm_open(shm.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (fd.fd < 0) {
    if (errno == EEXIST) throw_error(errc::already_exists, describe(name), "already exists");
    throw_errno(errno, describe(name), "shm_open");
  }
  try {
    // fchmod: the mode given to shm_open is filtered by the umask.
    if (::fchmod(fd.fd, spec.permissions & 07777) != 0) throw_errno(errno, describe(name), "fchmod");
    // posix_fallocate reserves the pages now, so a full /dev/shm is an error
    // here rather than a SIGBUS on first touch.
    if (int err = ::posix_fallocate(fd.fd, 0, static_cast<off_t>(total)); err != 0) {
      throw_errno(err, describe(name), "allocating " + std::to_string(total) + " bytes");
    }
    std::byte* base = map(fd.fd, total, name);
    Segment seg(std::string(name), base, total);
    SegmentHeader* h = seg.header();
    // relaxed: read by openers only to tell a dead creator from a slow one.
    h->creator_pid.store(current_pid(), std::memory_order_relaxed);
    std::memcpy(h->magic, kMagic, sizeof kMagic);
    h->layout_version = kLayoutVersion;
    h->kind = static_cast<std::uint32_t>(spec.kind);
    h->total_size = total;
    h->fingerprint = spec.fingerprint;
    h->created_ns = realtime_ns();
    h->object_offset = kHeaderSize;
    h->permissions = spec.permissions & 07777;
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
  const std::string what = describe(name);
  const std::string shm = shm_name(name);
  Fd fd{::shm_open(shm.c_str(), O_RDWR | O_CLOEXEC, 0)};
  if (fd.fd < 0) {
    if (errno == ENOENT) throw_error(errc::not_found, what, "does not exist");
    throw_errno(errno, what, "shm_open");
  }
  const Deadline give_up = Clock::now() + kReadyWait;
  struct stat st {};
  // A creator sizes the object right after creating it: wait a bounded time
  // for a zero-length object to grow.
  for (;;) {
    if (::fstat(fd.fd, &st) != 0) throw_errno(errno, what, "fstat");
    if (st.st_size != 0) break;
    if (Clock::now() >= give_up) {
      throw_error(errc::not_sleet, what,
                  "not a sleet segment (zero length for " +
                      std::to_string(kReadyWait.count()) + " ms)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (file_size < kHeaderSize) {
    throw_error(errc::not_sleet, what,
                "not a sleet segment (" + std::to_string(file_size) + " bytes, header needs " +
                    std::to_string(kHeaderSize) + ")");
  }
  std::byte* base = map(fd.fd, file_size, name);
  Segment seg(std::string(name), base, file_size);
  SegmentHeader* h = seg.header();
  // The creator wrote the magic before publishing; bytes that are neither
  // zero (still initialising) nor the magic mean the object is not ours.
  auto magic_state = [&] {
    static constexpr char zero[8] = {};
    if (std::memcmp(h->magic, kMagic, sizeof kMagic) == 0) return 1;
    return std::memcmp(h->magic, zero, sizeof zero) == 0 ? 0 : -1;
  };
  for (;;) {
    // acquire: pairs with the creator's release store of kReady.
    const std::uint32_t state = h->state.load(std::memory_order_acquire);
    if (state == kReady) break;
    if (state != 0 || magic_state() < 0) {
      throw_error(errc::not_sleet, what, "not a sleet segment (bad magic or state)");
    }
    // relaxed: only used to tell a dead creator from a slow one.
    const int creator = h->creator_pid.load(std::memory_order_relaxed);
    if (creator != 0 && !pid_alive(creator)) {
      throw_error(errc::peer_dead, what,
                  "creator pid " + std::to_string(creator) + " died before it was ready");
    }
    if (Clock::now() >= give_up) {
      if (creator == 0) {  // nobody ever started to create it
        throw_error(errc::not_sleet, what,
                    "not a sleet segment (zero-filled, never initialised)");
      }
      throw_error(errc::timeout, what,
                  "not ready after " + std::to_string(kReadyWait.count()) + " ms (creator pid " +
                      std::to_string(creator) + ")");
    }
    futex_wait(&h->state, state, std::min(give_up, Clock::now() + std::chrono::milliseconds(10)));
  }
  if (magic_state() != 1) throw_error(errc::not_sleet, what, "not a sleet segment (bad magic)");
  if (h->layout_version != kLayoutVersion) {
    throw_error(errc::version_mismatch, what,
                "layout version " + std::to_string(h->layout_version) + ", this build reads " +
                    std::to_string(kLayoutVersion));
  }
  if (h->kind != static_cast<std::uint32_t>(kind)) {
    throw_error(errc::kind_mismatch, what,
                std::string("is a ") + to_string(static_cast<SegmentKind>(h->kind)) +
                    ", not a " + to_string(kind));
  }
  if (h->total_size != file_size || h->object_offset != kHeaderSize) {
    throw_error(errc::not_sleet, what,
                "truncated or damaged: header says " + std::to_string(h->total_size) +
                    " bytes, object has " + std::to_string(file_size));
  }
  if (h->fingerprint != fingerprint) {
    const std::string stored(h->type_name, ::strnlen(h->type_name, sizeof h->type_name));
    throw_error(errc::type_mismatch, what,
                "holds '" + stored + "', opened as '" + readable_type_name(type_name) + "'");
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

bool Segment::remove(std::string_view name) {
  validate_name(name);
  const std::string shm = shm_name(name);
  if (::shm_unlink(shm.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw_errno(errno, describe(name), "shm_unlink");
}

}  // namespace sleet::detail
