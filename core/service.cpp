// The untyped part of Service<Req, Resp>: its segment (a control block and
// the request ring), the server role and client ids (service.hpp).
#include "sleet/service.hpp"

#include <dirent.h>

#include <string>
#include <vector>

#include "sleet/detail/process.hpp"
#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet::detail {

namespace {

// Longest reply-channel suffix: ".reply." and a 20-digit id.
constexpr std::size_t kReplySuffix = 7 + 20;

std::uint64_t service_fingerprint(const MessageType& req, const MessageType& resp) noexcept {
  return req.fingerprint ^ (resp.fingerprint << 1 | resp.fingerprint >> 63);
}

std::string service_type(const MessageType& req, const MessageType& resp) {
  return readable_type_name(req.name) + " -> " + readable_type_name(resp.name);
}

}  // namespace

ServiceCore::ServiceCore(ChannelCore requests, std::string label)
    : requests_(std::move(requests)),
      control_(reinterpret_cast<ServiceControl*>(requests_.segment().object())),
      label_(std::move(label)) {}

ServiceCore ServiceCore::create(std::string_view name, const ServiceOptions& o,
                                const MessageType& req, const MessageType& resp) {
  validate_name(name);
  std::string label = object_label("service", name);
  if (name.size() > kMaxNameLength - kReplySuffix) {
    throw_error(errc::invalid_name, label,
                "a service name has at most " + std::to_string(kMaxNameLength - kReplySuffix) +
                    " characters (its reply channels add a suffix)");
  }
  if (o.reply_capacity == 0 || o.reply_capacity > kMaxCapacity) {
    throw_error(errc::invalid_argument, label,
                "reply_capacity " + std::to_string(o.reply_capacity) + " is out of range [1, " +
                    std::to_string(kMaxCapacity) + "]");
  }
  if (o.max_response_size == 0 || o.max_response_size > kMaxMessageSize - 16 ||
      o.max_request_size == 0 || o.max_request_size > kMaxMessageSize - 16) {
    throw_error(errc::invalid_argument, label,
                "max_request_size and max_response_size must be in [1, " +
                    std::to_string(kMaxMessageSize - 16) + "]");
  }
  // The request ring carries envelopes: 16 bytes of ids before the request.
  const ChannelOptions ring{.topology = Topology::mpmc,
                            .capacity = o.capacity,
                            .max_message_size = o.max_request_size + 16,
                            .permissions = o.permissions,
                            .spin = o.spin};
  const ChannelLayout layout = ChannelLayout::resolve(ring, req, label);
  const std::string type = service_type(req, resp);
  SegmentSpec spec{SegmentKind::service, sizeof(ServiceControl) + layout.bytes,
                   service_fingerprint(req, resp), type, o.permissions};
  Segment seg = Segment::create(name, spec, [&](std::byte* object) {
    auto* c = new (object) ServiceControl{};
    c->reply_capacity = o.reply_capacity;
    c->max_response_size = o.max_response_size;
    layout.initialize(object + sizeof(ServiceControl));
  });
  return ServiceCore(ChannelCore(std::move(seg), sizeof(ServiceControl), label), label);
}

ServiceCore ServiceCore::open(std::string_view name, const MessageType& req, const MessageType& resp) {
  std::string label = object_label("service", name);
  const std::string type = service_type(req, resp);
  Segment seg = Segment::open(name, SegmentKind::service, service_fingerprint(req, resp), type);
  if (seg.object_size() < sizeof(ServiceControl)) throw_error(errc::not_sleet, label, "too small for a service");
  const auto& c = *reinterpret_cast<const ServiceControl*>(seg.object());
  if (c.reply_capacity == 0 || c.reply_capacity > kMaxCapacity || c.max_response_size == 0 ||
      c.max_response_size > kMaxMessageSize - 16) {
    throw_error(errc::not_sleet, label, "damaged service control block");
  }
  ChannelLayout::check(seg.object() + sizeof(ServiceControl), seg.object_size() - sizeof(ServiceControl),
                       req, label);
  return ServiceCore(ChannelCore(std::move(seg), sizeof(ServiceControl), label), label);
}

bool ServiceCore::remove(std::string_view name) {
  validate_name(name);
  // The reply channels first: "<name>.reply.<id>" under the segment prefix.
  const std::string dir = "/dev/shm";
  const std::string prefix = shm_path(std::string(name) + ".reply.").substr(dir.size() + 1);
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> replies;
    while (const dirent* e = ::readdir(d)) {
      const std::string_view file = e->d_name;
      if (file.starts_with(prefix) && file.size() > prefix.size() &&
          file.find_first_not_of("0123456789", prefix.size()) == std::string_view::npos) {
        replies.emplace_back(file.substr(std::string_view("sleet.").size()));
      }
    }
    ::closedir(d);
    for (const std::string& r : replies) remove_segment(r, SegmentKind::channel);
  }
  return remove_segment(name, SegmentKind::service);
}

std::string ServiceCore::reply_name(std::uint64_t client) const {
  std::string s(name());
  s.append(".reply.").append(std::to_string(client));
  return s;
}

std::uint64_t ServiceCore::claim_server() const {
  const std::uint64_t me = current_identity();
  // acquire: we continue after the previous server's last stores.
  std::uint64_t cur = control_->server.load(std::memory_order_acquire);
  for (;;) {
    if (cur == me) {
      throw_error(errc::busy, label_, "another Service object in this process is the server");
    }
    if (cur != 0 && identity_alive(cur)) {
      throw_error(errc::busy, label_,
                  "the server role is held by live pid " + std::to_string(identity_pid(cur)));
    }
    // acq_rel: as above, and clients that load the word see a server that
    // is set up. Failure reloads cur.
    if (control_->server.compare_exchange_weak(cur, me, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
      return me;
    }
  }
}

void ServiceCore::release_server(std::uint64_t token) const noexcept {
  // release: pairs with the acquire in claim_server(). Only if still ours
  // (a fork()ed copy has another identity and gives nothing back).
  if (token != current_identity()) return;
  control_->server.compare_exchange_strong(token, 0, std::memory_order_release,
                                           std::memory_order_relaxed);
}

void ServiceCore::require_server(bool check_alive) const {
  // acquire: pairs with claim_server()'s CAS.
  const std::uint64_t s = control_->server.load(std::memory_order_acquire);
  if (s == 0) throw_error(errc::peer_dead, label_, "no server (none has started, or it stopped)");
  if (check_alive && !identity_alive(s)) {
    throw_error(errc::peer_dead, label_, "the server (pid " + std::to_string(identity_pid(s)) + ") died");
  }
}

bool ServiceCore::server_alive() const noexcept {
  const std::uint64_t s = control_->server.load(std::memory_order_acquire);  // acquire: as above
  return s != 0 && identity_alive(s);
}

ServiceStats ServiceCore::stats() const noexcept {
  ServiceStats st;
  // relaxed (all): a racy snapshot.
  const std::uint64_t s = control_->server.load(std::memory_order_relaxed);
  st.server_pid = identity_pid(s);
  st.server_alive = s != 0 && identity_alive(s);
  st.clients = control_->next_client.load(std::memory_order_relaxed);
  st.served = control_->served.load(std::memory_order_relaxed);
  st.dropped_replies = control_->dropped.load(std::memory_order_relaxed);
  st.requests = requests_.stats();
  return st;
}

void ServiceCore::throw_bad_reply(std::string_view why) const {
  throw_error(errc::invalid_argument, label_, why);
}

}  // namespace sleet::detail
