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
//   32 creator_pid | 36 state (futex word) | 40 created_ns | 48 object_offset
//   56 permissions | 60 reserved
//   64  type_name[192]      NUL-terminated name of the message/value type
//   256 users[kMaxUsers]    pids of processes that have it mapped (best effort)
//   384 reserved up to 512
//
// Invariants
// - Creation is exclusive (O_CREAT|O_EXCL). The creator sizes the object,
//   fills the header and the object, then publishes `state = kReady` with a
//   release store and wakes futex waiters. Nothing is valid before that.
// - Openers wait (bounded by kReadyWait) until the object has its size and
//   `state == kReady`, then validate magic, version, kind, size and type
//   fingerprint, in that order, each failure a distinct errc.
// - A creator that died before `ready` is detected by its pid and reported
//   as errc::peer_dead at once instead of after the bound.
// - Everything inside a segment refers to other parts by offset: each
//   process maps the segment at its own address.
//
// Synchronization
// `state` is the only word an opener reads before it is published; it pairs
// (acquire) with the creator's release store in Segment::create(). `users`
// slots are claimed and freed with CAS; they are a diagnostic, never used
// for correctness.
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
inline constexpr std::uint32_t kLayoutVersion = 6;  // 6: owner words name a whole identity (pid or tid + start time): robust lock word 64-bit, kv stripe/overflow owners 64-bit, kv slot owners packed, spsc roles {identity, serial}; 5: mpmc slot words name their holder, process table (recovery from dead processes); 4: kv table v2 (tags, one buffer per slot, stripe spares, overflow area); topics and services (kinds 9, 10) came without a bump (a new kind changes no existing layout); 3: mpmc final_ticket (fetch_add tickets); 2: spsc publishes by header, two-phase close
inline constexpr std::uint32_t kReady = 0x52454459;  // "READY"; 0 means initializing
inline constexpr std::size_t kMaxNameLength = 200;
inline constexpr std::size_t kMaxUsers = 32;
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
  std::atomic<std::int32_t> creator_pid;  // read by openers before `ready`
  std::atomic<std::uint32_t> state;       // futex word: 0 or kReady
  std::uint64_t created_ns;               // CLOCK_REALTIME
  std::uint64_t object_offset;
  std::uint32_t permissions;
  std::uint32_t reserved0;
  char type_name[192];
  std::atomic<std::int32_t> users[kMaxUsers];
  std::byte reserved1[kHeaderSize - 256 - 4 * kMaxUsers];
};

static_assert(sizeof(SegmentHeader) == kHeaderSize);
static_assert(offsetof(SegmentHeader, layout_version) == 8);
static_assert(offsetof(SegmentHeader, kind) == 12);
static_assert(offsetof(SegmentHeader, creator_pid) == 32);
static_assert(offsetof(SegmentHeader, state) == 36);
static_assert(offsetof(SegmentHeader, type_name) == 64);
static_assert(offsetof(SegmentHeader, users) == 256);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);

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
  // Removes the name; processes that have it mapped keep their mapping.
  // Returns false if there was nothing to remove.
  static bool remove(std::string_view name);

  bool valid() const noexcept { return base_ != nullptr; }
  std::string_view name() const noexcept { return name_; }
  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base_); }
  std::byte* object() const noexcept { return base_ + kHeaderSize; }
  std::uint64_t object_size() const noexcept { return size_ - kHeaderSize; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  Segment(std::string name, std::byte* base, std::uint64_t size);
  void swap(Segment& other) noexcept;
  void register_user() noexcept;

  std::string name_;
  std::shared_ptr<void> mapping_;  // munmaps when the last handle goes
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  int user_slot_ = -1;
  int user_pid_ = 0;
};

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
