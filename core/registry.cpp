// list_channels(): a read-only scan of /dev/shm.
#include "sleet/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "sleet/detail/process.hpp"

namespace sleet {

namespace {

using detail::ChannelConfig;
using detail::SegmentHeader;

struct Unmap {
  std::size_t size;
  void operator()(void* p) const { ::munmap(p, size); }
};

// Adds what the channel at `at` says to `info`; returns its byte size, or 0
// if it does not look like a channel.
std::uint64_t read_channel(const std::byte* at, std::uint64_t limit, ChannelInfo& info) {
  if (limit < sizeof(ChannelConfig) + detail::MpmcRing::control_size()) return 0;
  const auto& cfg = *reinterpret_cast<const ChannelConfig*>(at);
  const std::byte* ring = at + sizeof(ChannelConfig);
  std::uint64_t bytes = sizeof(ChannelConfig);
  std::uint64_t sent, received;
  // relaxed (all loads): a snapshot for display.
  if (cfg.topology == static_cast<std::uint32_t>(Topology::spsc)) {
    const auto& c = *reinterpret_cast<const detail::SpscControl*>(ring);
    if (c.bytes > limit) return 0;
    bytes += detail::SpscRing::control_size() + c.bytes;
    sent = c.sent.load(std::memory_order_relaxed);
    received = c.received.load(std::memory_order_relaxed);
  } else if (cfg.topology == static_cast<std::uint32_t>(Topology::mpmc)) {
    const auto& c = *reinterpret_cast<const detail::MpmcControl*>(ring);
    if (c.stride == 0 || c.slots > limit / c.stride) return 0;  // damaged: would overflow
    bytes += detail::MpmcRing::control_size() + c.slots * c.stride;
    sent = c.enqueue_pos.load(std::memory_order_relaxed);
    received = c.dequeue_pos.load(std::memory_order_relaxed);
  } else {
    return 0;
  }
  bytes = detail::round_up(bytes, detail::kFalseSharing);
  if (bytes > limit) return 0;
  info.topology = static_cast<Topology>(cfg.topology);
  info.capacity = cfg.capacity;
  info.max_message_size = cfg.max_message_size;
  info.sent += sent;
  info.received += received;
  info.queued += sent > received ? sent - received : 0;
  return bytes;
}

bool inspect(const std::string& name, ChannelInfo& info) {
  const std::string path = detail::shm_path(name);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat st {};
  const bool sized = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                     static_cast<std::uint64_t>(st.st_size) >= detail::kHeaderSize;
  void* p = sized ? ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED,
                           fd, 0)
                  : MAP_FAILED;
  ::close(fd);
  if (p == MAP_FAILED) return false;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::unique_ptr<void, Unmap> mapping(p, Unmap{static_cast<std::size_t>(size)});
  const auto* h = static_cast<const SegmentHeader*>(p);
  // acquire: pairs with the creator's release of kReady (segment.hpp).
  if (std::memcmp(h->magic, detail::kMagic, sizeof detail::kMagic) != 0 ||
      h->state.load(std::memory_order_acquire) != detail::kReady ||
      h->layout_version != detail::kLayoutVersion || h->total_size != size) {
    return false;
  }
  const auto kind = static_cast<detail::SegmentKind>(h->kind);
  if (kind != detail::SegmentKind::channel && kind != detail::SegmentKind::pipe) return false;
  info.name = name;
  info.kind = detail::to_string(kind);
  info.type_name.assign(h->type_name, ::strnlen(h->type_name, sizeof h->type_name));
  const auto* object = static_cast<const std::byte*>(p) + detail::kHeaderSize;
  const std::uint64_t limit = size - detail::kHeaderSize;
  const std::uint64_t first = read_channel(object, limit, info);
  if (first == 0) return false;
  if (kind == detail::SegmentKind::pipe && read_channel(object + first, limit - first, info) == 0) {
    return false;
  }
  // relaxed (pids): diagnostics.
  info.creator_pid = h->creator_pid.load(std::memory_order_relaxed);
  info.creator_alive = detail::pid_alive(info.creator_pid);
  for (const auto& slot : h->users) {
    const int pid = slot.load(std::memory_order_relaxed);
    if (pid > 0 && detail::pid_alive(pid)) info.users.push_back(pid);
  }
  info.stale = !info.creator_alive && info.users.empty();
  return true;
}

}  // namespace

std::vector<ChannelInfo> list_channels() {
  std::vector<ChannelInfo> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/dev/shm"), &::closedir);
  if (!dir) return out;
  constexpr std::string_view prefix = "sleet.";
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string_view file = e->d_name;
    if (!file.starts_with(prefix)) continue;
    const std::string name(file.substr(prefix.size()));
    try {
      detail::validate_name(name);
    } catch (const Error&) {
      continue;
    }
    ChannelInfo info;
    if (inspect(name, info)) out.push_back(std::move(info));
  }
  return out;
}

}  // namespace sleet
