// sleet/detail/segment.hpp — layer 1: one named POSIX shared memory object.
//
// A Segment is `/dev/shm/sleet.<name>`, mapped read-write. It starts with a
// fixed 512-byte header that says what the rest is; the kind-specific layout
// (a ring, a hash table, ...) follows at `object_offset`.
//
//   0        8       12      16              24              32
//   +--------+-------+-------+---------------+---------------+
//   | magic "SLEETSHM"| ver  | kind | total_size | fingerprint |
//   +-------+-------+---------------+---------------+--------+
//   32 permissions | 36 state (futex word) | 40 created_ns | 48 object_offset
//   56 creator (identity: pid << 32 | start time, see detail/process.hpp)
//   64  type_name[192]      NUL-terminated name of the message/value type
//   256 pid_namespace       inode of the creator's /proc/self/ns/pid
//   264 unrecorded_users    openers the table had no room for (display only)
//   268 reserved0
//   272 users[kMaxUsers]    identities of processes that have it open (display only)
//   496 reserved1 up to 512
//
// Invariants
// - Creation is exclusive (O_CREAT|O_EXCL). The creator sizes the object,
//   fills the header and the object, then publishes `state = kReady` with a
//   release store and wakes futex waiters. Nothing is valid before that.
// - Opening is bounded by the file: the header is read with pread() from
//   the descriptor and checked — magic, version, kind, sizes against
//   fstat()'s real size, fingerprint, in that order, each failure a distinct
//   errc — before anything is mapped; then exactly `total_size` bytes are
//   mapped. A sparse file of garbage under our prefix costs no pages.
//   Openers wait (bounded by kReadyWait) for `state == kReady`; a creator
//   that died before `ready` is errc::peer_dead at once.
// - Everything inside a segment refers to other parts by offset: each
//   process maps the segment at its own address.
//
// Liveness (who uses an object)
// Every process that has a segment open holds flock(LOCK_SH) on its shm
// descriptor for as long as it has it open (the descriptor lives with the
// mapping), so "nobody uses it" is exactly "flock(LOCK_EX|LOCK_NB)
// succeeds": the kernel counts, nothing overflows, a dead process lets go
// by dying. That is the only stale verdict (registry.hpp, `sleet rm
// --stale`); the `users` table is for display: 28 identities plus a count
// of openers it had no room for (`unrecorded_users`, which a process that
// died while counted leaves behind). Identities are pids of the namespace
// in `pid_namespace`; an opener in another pid namespace is not recorded
// (counted unrecorded), and a viewer there shows the pids as foreign and
// never judges them dead.
// fork(): a child inherits the descriptor, hence the same open file
// description and its lock: a forked child keeps the object in use for as
// long as it lives (it has the mapping too) or until it execs (O_CLOEXEC).
// It is not recorded in the table, and its copy of a handle neither frees
// nor counts the parent's entry. Closing never calls LOCK_UN (that would
// drop the lock for the whole description, i.e. for the forked relatives
// too); the lock goes with the last descriptor.
// Every opener keeps one descriptor per open object, so the first open
// raises RLIMIT_NOFILE's soft limit to its hard limit.
//
// Synchronization
// `state` is the only word an opener relies on before it is published; it
// pairs (acquire, on the mapping) with the creator's release store in
// Segment::create(); pread() copies are checked, never trusted as
// synchronisation. `users` entries are claimed and freed with CAS; they are
// a diagnostic, never used for correctness.
//
// Layout version: bump kLayoutVersion whenever this header or any layout
// that lives in a segment (ring control blocks, slots, records, kv slots)
// changes shape or meaning. tests/unit/segment_test.cpp pins the magic and
// the version so a change cannot slip in unnoticed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sleet/detail/platform.hpp"
#include "sleet/error.hpp"

namespace sleet::detail {

inline constexpr char kMagic[8] = {'S', 'L', 'E', 'E', 'T', 'S', 'H', 'M'};
inline constexpr std::uint32_t kLayoutVersion = 7;  // 7: topics gained a publisher table and a recovery lock (dead publishers); the segment header holds the creator's identity, pid namespace, a users table of identities and an unrecorded count (liveness by flock); 6: owner words name a whole identity (pid or tid + start time): robust lock word 64-bit, kv stripe/overflow owners 64-bit, kv slot owners packed, spsc roles {identity, serial}; 5: mpmc slot words name their holder, process table (recovery from dead processes); 4: kv table v2 (tags, one buffer per slot, stripe spares, overflow area); topics and services (kinds 9, 10) came without a bump (a new kind changes no existing layout); 3: mpmc final_ticket (fetch_add tickets); 2: spsc publishes by header, two-phase close
inline constexpr std::uint32_t kReady = 0x52454459;  // "READY"; 0 means initializing
inline constexpr std::size_t kMaxNameLength = 200;
inline constexpr std::size_t kMaxUsers = 28;
inline constexpr std::size_t kHeaderSize = 512;
// Upper bound on one segment; larger requests are errc::invalid_argument
// rather than a tmpfs that SIGBUSes on first touch.
inline constexpr std::uint64_t kMaxSegmentSize = std::uint64_t{1} << 36;  // 64 GiB
// How long open() waits for a creator to publish `ready`.
inline constexpr std::chrono::milliseconds kReadyWait{1000};

enum class SegmentKind : std::uint32_t {
  channel = 1,
  pipe = 2,
  kv = 3,
  mutex = 4,
  semaphore = 5,
  event = 6,
  value = 7,
  array = 8,
  topic = 9,
  service = 10,
};

const char* to_string(SegmentKind k) noexcept;

struct SegmentHeader {
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t kind;
  std::uint64_t total_size;
  std::uint64_t fingerprint;
  std::uint32_t permissions;
  std::atomic<std::uint32_t> state;     // futex word: 0 or kReady
  std::uint64_t created_ns;             // CLOCK_REALTIME
  std::uint64_t object_offset;
  std::atomic<std::uint64_t> creator;   // identity; read by openers before `ready`
  char type_name[192];
  std::uint64_t pid_namespace;          // inode of the creator's /proc/self/ns/pid (0: unknown)
  std::atomic<std::uint32_t> unrecorded_users;
  std::uint32_t reserved0;
  std::atomic<std::uint64_t> users[kMaxUsers];
  std::byte reserved1[kHeaderSize - 272 - 8 * kMaxUsers];
};

static_assert(sizeof(SegmentHeader) == kHeaderSize);
static_assert(offsetof(SegmentHeader, layout_version) == 8);
static_assert(offsetof(SegmentHeader, kind) == 12);
static_assert(offsetof(SegmentHeader, total_size) == 16);
static_assert(offsetof(SegmentHeader, fingerprint) == 24);
static_assert(offsetof(SegmentHeader, permissions) == 32);
static_assert(offsetof(SegmentHeader, state) == 36);
static_assert(offsetof(SegmentHeader, created_ns) == 40);
static_assert(offsetof(SegmentHeader, object_offset) == 48);
static_assert(offsetof(SegmentHeader, creator) == 56);
static_assert(offsetof(SegmentHeader, type_name) == 64);
static_assert(offsetof(SegmentHeader, pid_namespace) == 256);
static_assert(offsetof(SegmentHeader, unrecorded_users) == 264);
static_assert(offsetof(SegmentHeader, users) == 272);
static_assert(offsetof(SegmentHeader, reserved1) == 496);
static_assert(alignof(SegmentHeader) == 8);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// What create() writes into a new header.
struct SegmentSpec {
  SegmentKind kind;
  std::uint64_t object_size;  // bytes after the header
  std::uint64_t fingerprint;
  std::string_view type_name;
  unsigned permissions = 0600;
};

// Throws Error(errc::invalid_name) unless `name` is 1-200 of [A-Za-z0-9._-].
void validate_name(std::string_view name);
// `name` as it may be echoed in a message: control characters, quotes,
// backslashes and bytes >= 0x7f as \xNN, at most `shown` characters then "...".
std::string printable_name(std::string_view name, std::size_t shown = 60);
// The inode of /proc/self/ns/pid (0 if it cannot be read): two processes
// with the same value see the same pids.
std::uint64_t current_pid_namespace() noexcept;
// "/sleet.<name>" (the shm_open name) and "/dev/shm/sleet.<name>".
std::string shm_name(std::string_view name);
std::string shm_path(std::string_view name);

class Segment {
 public:
  Segment() = default;
  Segment(Segment&& other) noexcept { swap(other); }
  Segment& operator=(Segment&& other) noexcept {
    Segment tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  // Exclusive create. `init(object)` fills the kind-specific part before
  // `ready` is published; if it throws, the object is removed again.
  static Segment create(std::string_view name, const SegmentSpec& spec,
                        const std::function<void(std::byte* object)>& init);
  // Open and validate kind and fingerprint (`type_name` is only for the
  // message of a type mismatch).
  static Segment open(std::string_view name, SegmentKind kind, std::uint64_t fingerprint,
                      std::string_view type_name);
  // Another handle on the same mapping (the mapping lives until the last
  // handle is gone); used by objects that need a second view, e.g. the
  // dispatcher thread of a passive channel.
  Segment share() const;
  // Removes the name whatever it is (no kind or magic check: for tests and
  // internals; objects use remove_segment()). Processes that have it mapped
  // keep their mapping. Returns false if there was nothing to remove.
  static bool remove(std::string_view name);

  bool valid() const noexcept { return base_ != nullptr; }
  std::string_view name() const noexcept { return name_; }
  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base_); }
  std::byte* object() const noexcept { return base_ + kHeaderSize; }
  std::uint64_t object_size() const noexcept { return size_ - kHeaderSize; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  Segment(std::string name, std::byte* base, std::uint64_t size, int fd);
  void swap(Segment& other) noexcept;
  void register_user() noexcept;
  void unregister_user() noexcept;

  std::string name_;
  // munmaps and closes the descriptor (which holds the LOCK_SH) when the
  // last handle goes.
  std::shared_ptr<void> mapping_;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  int user_slot_ = -1;              // our entry in header()->users, or -1
  bool unrecorded_ = false;         // counted in unrecorded_users instead
  std::uint64_t user_identity_ = 0; // who registered (a forked copy is not it)
};

// X::remove(name) of every object kind: removes `name` if it is a sleet
// segment of `kind` (or one whose creator never wrote a header: nothing to
// mismatch). False if there is nothing of that name. Throws
// errc::kind_mismatch for an object of another kind (remove_object()
// removes any kind), errc::not_sleet for a file that is not ours,
// errc::invalid_name.
bool remove_segment(std::string_view name, SegmentKind kind);

// The first kHeaderSize bytes of a shm descriptor, read with pread() (no
// mapping). `bytes` is how many were read (fewer for a short file).
struct HeaderCopy {
  alignas(SegmentHeader) std::byte raw[kHeaderSize];
  std::size_t bytes = 0;
  const SegmentHeader& header() const noexcept {
    return *reinterpret_cast<const SegmentHeader*>(raw);
  }
  bool has_magic() const noexcept;
};
HeaderCopy read_header(int fd, std::string_view what);

// Whether no process holds the segment open (no LOCK_SH on it): takes
// flock(LOCK_EX|LOCK_NB) on `fd`; on true the caller holds the exclusive
// lock until it closes `fd` or calls unlock_segment(fd).
bool lock_if_unused(int fd) noexcept;
void unlock_segment(int fd) noexcept;

// open_or_create() of every object: create, or open what another process
// created; retried because the name may be created or removed between the
// two attempts.
template <class Create, class Open>
auto create_or_open(Create&& create, Open&& open) {
  for (int attempt = 0;; ++attempt) {
    try {
      return create();
    } catch (const Error& e) {
      if (e.code() != errc::already_exists) throw;
    }
    try {
      return open();
    } catch (const Error& e) {
      if (e.code() != errc::not_found || attempt >= 100) throw;
    }
  }
}

// Throws errc::not_sleet unless an opened object is exactly `expected` bytes
// (objects of a fixed layout: the primitives).
void require_object_size(const Segment& segment, std::uint64_t expected, std::string_view what);

}  // namespace sleet::detail
