// sleet/service.hpp — Service<Request, Response>: request/response between
// processes. One server process answers; any number of client processes
// call.
//
//   // server
//   auto svc = sleet::Service<Query, Answer>::create("lookup");
//   svc.serve([](const Query& q) { return answer(q); });     // until closed
//   // or: auto r = svc.receive_request(); ...; svc.reply(r, answer(*r));
//
//   // any client
//   auto svc = sleet::Service<Query, Answer>::open("lookup");
//   Answer a = svc.call(q);                                    // blocks
//   std::optional<Answer> b = svc.call_for(q, 100ms);          // nullopt on timeout
//
// Shape. The service's segment holds a control block (the server's
// identity, counters) and an mpmc request ring. Each client object has its
// own reply channel, `<name>.reply.<client id>` (spsc; the server is its
// only sender), created on its first call and removed with the object.
// A request carries the client id and the client's call number; a reply
// carries them back, so each reply reaches only its caller, and a reply to
// a call the client gave up on (timeout) is recognised and dropped.
//
// Failures.
// - The server: the first receive_request()/serve() of a Service object
//   takes the server role (errc::busy while another live process has it);
//   it is given back when the object goes. A caller waiting for a reply
//   checks every kServerCheck whether the server still lives (identity:
//   pid + start time); a dead or departed server makes pending and later
//   calls throw errc::peer_dead instead of hanging. A call made while no
//   server has ever taken the role also throws errc::peer_dead (use
//   wait_for_server()).
// - A client: the server never blocks on one. A reply that does not fit in
//   a live client's reply channel within kReplyPatience, or whose client is
//   gone, is dropped and counted (stats().dropped_replies).
// - close() (any process): later calls throw errc::closed; the server
//   drains the requests sent before, then serve() returns and
//   receive_request() throws errc::closed.
//
// Threads: calls on one Service object are serialised by a mutex (one
// reply channel per object); the server side is used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "sleet/channel.hpp"
#include "sleet/codec.hpp"
#include "sleet/detail/segment.hpp"
#include "sleet/error.hpp"

namespace sleet {

struct ServiceOptions {
  std::size_t capacity = 256;           // requests the ring holds
  std::size_t max_request_size = 256;   // bytes of an encoded request
  std::size_t max_response_size = 256;  // bytes of an encoded response
  std::size_t reply_capacity = 8;       // replies a client's channel holds
  unsigned permissions = 0600;
  std::chrono::nanoseconds spin = std::chrono::microseconds(20);
};

struct ServiceStats {
  int server_pid = 0;  // 0: no server holds the role
  bool server_alive = false;
  std::uint64_t clients = 0;          // client ids handed out
  std::uint64_t served = 0;           // replies sent
  std::uint64_t dropped_replies = 0;  // replies whose client was gone or full
  ChannelStats requests;              // the request ring
};

namespace detail {

// How often a waiting caller checks that the server lives (reads /proc).
inline constexpr std::chrono::milliseconds kServerCheck{20};
// How long a server tries to hand a reply to a live client whose reply
// channel is full before it drops it.
inline constexpr std::chrono::milliseconds kReplyPatience{100};

// A request or a reply on the wire: the caller's id and call number, then
// the value in its own codec. Not trivially copyable (the destructor), so
// Codec<Envelope<T>> below is its only codec.
template <class T>
struct Envelope {
  std::uint64_t client = 0;
  std::uint64_t call = 0;
  T value{};
  Envelope() = default;
  Envelope(std::uint64_t c, std::uint64_t n, T v) : client(c), call(n), value(std::move(v)) {}
  Envelope(const Envelope&) = default;
  Envelope(Envelope&&) = default;
  Envelope& operator=(const Envelope&) = default;
  Envelope& operator=(Envelope&&) = default;
  ~Envelope() {}  // NOLINT: keeps the raw codec away
};

// The untyped half (core/service.cpp): the control segment with the
// request ring inside it, the server role, client ids.
struct ServiceControl {
  std::atomic<std::uint64_t> server{0};  // identity of the server role holder; 0 none
  std::atomic<std::uint64_t> next_client{0};
  std::atomic<std::uint64_t> served{0};
  std::atomic<std::uint64_t> dropped{0};
  std::uint64_t reply_capacity;
  std::uint64_t max_response_size;
  std::byte pad[kFalseSharing - 48];
};
static_assert(sizeof(ServiceControl) == kFalseSharing);
static_assert(offsetof(ServiceControl, reply_capacity) == 32);

class ServiceCore {
 public:
  ServiceCore() = default;
  static ServiceCore create(std::string_view name, const ServiceOptions& o, const MessageType& req,
                            const MessageType& resp);
  static ServiceCore open(std::string_view name, const MessageType& req, const MessageType& resp);
  static bool remove(std::string_view name);

  ChannelCore& requests() noexcept { return requests_; }
  const ChannelCore& requests() const noexcept { return requests_; }
  ServiceControl& control() const noexcept { return *control_; }
  const std::string& label() const noexcept { return label_; }
  std::string_view name() const noexcept { return requests_.name(); }
  std::string reply_name(std::uint64_t client) const;

  // The server role: errc::busy if a live process holds it.
  std::uint64_t claim_server() const;
  void release_server(std::uint64_t token) const noexcept;
  // Throws errc::peer_dead unless a live server holds the role; `check_alive`
  // reads /proc (slow), otherwise only the role word is looked at.
  void require_server(bool check_alive) const;
  bool server_alive() const noexcept;
  ServiceStats stats() const noexcept;
  [[noreturn]] void throw_bad_reply(std::string_view why) const;

 private:
  ServiceCore(ChannelCore requests, std::string label);

  ChannelCore requests_;
  ServiceControl* control_ = nullptr;
  std::string label_;
};

}  // namespace detail

template <class T>
struct Codec<detail::Envelope<T>> {
  using E = detail::Envelope<T>;
  static constexpr std::size_t kHeader = 16;
  static constexpr std::string_view name = "envelope";
  static constexpr std::size_t fixed_size = Codec<T>::fixed_size ? kHeader + Codec<T>::fixed_size : 0;

  static std::size_t encoded_size(const E& e)
    requires requires(const T& v) { Codec<T>::encoded_size(v); }
  {
    return kHeader + Codec<T>::encoded_size(e.value);
  }
  static std::size_t encode(const E& e, std::byte* out, std::size_t capacity) {
    if (capacity < kHeader) {  // only the size is wanted
      if constexpr (requires(const T& v) { Codec<T>::encoded_size(v); }) {
        return kHeader + Codec<T>::encoded_size(e.value);
      } else {
        return kHeader + Codec<T>::encode(e.value, out, 0);
      }
    }
    std::memcpy(out, &e.client, 8);
    std::memcpy(out + 8, &e.call, 8);
    return kHeader + Codec<T>::encode(e.value, out + kHeader, capacity - kHeader);
  }
  static void decode(const std::byte* in, std::size_t size, E& out) {
    if (size < kHeader) {
      throw Error(errc::decode_failed, "envelope of " + std::to_string(size) + " bytes, shorter than its header");
    }
    std::memcpy(&out.client, in, 8);
    std::memcpy(&out.call, in + 8, 8);
    Codec<T>::decode(in + kHeader, size - kHeader, out.value);
  }
};

// A request as the server received it: the value and who to answer.
template <class Req>
class Request {
 public:
  Request() = default;
  const Req& value() const noexcept { return env_.value; }
  const Req& operator*() const noexcept { return env_.value; }
  const Req* operator->() const noexcept { return &env_.value; }
  std::uint64_t client() const noexcept { return env_.client; }
  bool answered() const noexcept { return answered_; }

 private:
  template <class, class>
  friend class Service;
  detail::Envelope<Req> env_;
  std::uint64_t server_ = 0;  // the role token of the server that received it; 0 none
  mutable bool answered_ = false;
};

template <class Req, class Resp>
class Service {
  static_assert(HasCodec<Req>, "sleet::Service: no sleet::Codec for the request type");
  static_assert(HasCodec<Resp>, "sleet::Service: no sleet::Codec for the response type");
  using ReqEnv = detail::Envelope<Req>;
  using RespEnv = detail::Envelope<Resp>;

 public:
  Service() = default;
  Service(Service&& o) noexcept
      : core_(std::move(o.core_)),
        requests_(std::move(o.requests_)),
        mutex_(std::move(o.mutex_)),
        client_(std::move(o.client_)),
        server_(std::exchange(o.server_, 0)),
        replies_(std::move(o.replies_)) {}
  Service& operator=(Service&& o) noexcept {
    if (this != &o) {
      leave();
      core_ = std::move(o.core_);
      requests_ = std::move(o.requests_);
      mutex_ = std::move(o.mutex_);
      client_ = std::move(o.client_);
      server_ = std::exchange(o.server_, 0);
      replies_ = std::move(o.replies_);
    }
    return *this;
  }
  ~Service() { leave(); }

  static Service create(std::string_view name, const ServiceOptions& options = {}) {
    return Service(detail::ServiceCore::create(name, options, req_type(), resp_type()));
  }
  static Service open(std::string_view name) {
    return Service(detail::ServiceCore::open(name, req_type(), resp_type()));
  }
  static Service open_or_create(std::string_view name, const ServiceOptions& options = {}) {
    return Service(detail::create_or_open([&] { return detail::ServiceCore::create(name, options, req_type(), resp_type()); },
                                          [&] { return detail::ServiceCore::open(name, req_type(), resp_type()); }));
  }
  static bool remove(std::string_view name) { return detail::ServiceCore::remove(name); }

  // ---- clients ----

  // Blocks until the reply comes. Throws errc::peer_dead (no live server),
  // errc::closed, errc::too_large.
  Resp call(const Req& request) { return *call_until(request, detail::kForever); }
  // std::nullopt if no reply came within `timeout`.
  std::optional<Resp> call_for(const Req& request, std::chrono::nanoseconds timeout) {
    return call_until(request, detail::deadline_after(timeout));
  }
  // Whether a live server holds the role (reads /proc).
  bool server_alive() const noexcept { return core_.server_alive(); }
  // Waits until a live server holds the role; false on timeout.
  bool wait_for_server(std::chrono::nanoseconds timeout) const {
    const auto deadline = detail::deadline_after(timeout);
    while (!core_.server_alive()) {
      if (detail::Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  // ---- the server ----

  // Takes the server role now (receive_request() and serve() take it on
  // first use): callers see a server from here on. errc::busy while another
  // live process holds it.
  void listen() {
    if (server_ == 0) server_ = core_.claim_server();
  }

  Request<Req> receive_request() { return *receive_until(detail::kForever); }
  std::optional<Request<Req>> try_receive_request() { return receive_until(detail::Clock::now()); }
  std::optional<Request<Req>> receive_request_for(std::chrono::nanoseconds timeout) {
    return receive_until(detail::deadline_after(timeout));
  }
  // Answers `request`, which this object received and has not answered
  // (errc::invalid_argument otherwise). Never blocks on a client for more
  // than kReplyPatience; a reply that cannot be delivered is counted.
  void reply(const Request<Req>& request, const Resp& response) {
    if (request.server_ == 0 || request.server_ != server_) {
      core_.throw_bad_reply("reply() to a request this server did not receive");
    }
    if (request.answered_) core_.throw_bad_reply("reply() to a request that was already answered");
    request.answered_ = true;
    deliver(request.env_.client, RespEnv(request.env_.client, request.env_.call, response));
  }
  // Answers every request with handler(const Req&) -> Resp until the
  // service is closed and drained. An exception from the handler passes on
  // (the request stays unanswered: its caller times out or sees the server
  // go).
  template <class Handler>
  void serve(Handler&& handler) {
    for (;;) {
      std::optional<Request<Req>> r;
      try {
        r = receive_until(detail::kForever);
      } catch (const Error& e) {
        if (e.code() == errc::closed) return;
        throw;
      }
      reply(*r, handler(r->value()));
    }
  }

  void close() noexcept { core_.requests().close(); }
  bool closed() const noexcept { return core_.requests().closed(); }
  std::string_view name() const noexcept { return core_.name(); }
  ServiceStats stats() const noexcept { return core_.stats(); }

 private:
  // Gives the server role back and removes this client's reply channel.
  void leave() noexcept {
    if (server_ != 0) core_.release_server(std::exchange(server_, 0));
    if (client_) {
      const std::string name(client_->reply.name());
      client_.reset();
      try {
        Channel<RespEnv>::remove(name);
      } catch (...) {
      }
    }
  }

  struct Client {
    std::uint64_t id;
    std::uint64_t calls = 0;
    Channel<RespEnv> reply;
  };

  static detail::MessageType req_type() noexcept { return Channel<ReqEnv>::type(); }
  static detail::MessageType resp_type() noexcept { return Channel<RespEnv>::type(); }

  explicit Service(detail::ServiceCore core)
      : core_(std::move(core)),
        requests_(std::unique_ptr<Channel<ReqEnv>>(new Channel<ReqEnv>(core_.requests().share()))),
        mutex_(std::make_unique<std::mutex>()) {}

  std::optional<Resp> call_until(const Req& request, detail::Deadline deadline) {
    std::lock_guard<std::mutex> lock(*mutex_);
    core_.require_server(false);
    if (!client_) {
      const std::uint64_t id = core_.control().next_client.fetch_add(1, std::memory_order_relaxed);  // relaxed: an id
      const auto& ctl = core_.control();
      client_ = std::make_unique<Client>(Client{
          id, 0,
          Channel<RespEnv>::create(core_.reply_name(id),
                                   {.topology = Topology::spsc,
                                    .capacity = ctl.reply_capacity,
                                    .max_message_size = ctl.max_response_size + Codec<RespEnv>::kHeader})});
    }
    const std::uint64_t call = ++client_->calls;
    if (!requests_->send_for(ReqEnv(client_->id, call, request), remaining(deadline))) return std::nullopt;
    for (;;) {
      const auto slice = std::min<std::chrono::nanoseconds>(detail::kServerCheck, remaining(deadline));
      if (auto r = client_->reply.receive_for(slice)) {
        if (r->call == call) return std::move(r->value);
        continue;  // the reply to a call we gave up on
      }
      if (detail::Clock::now() >= deadline) return std::nullopt;
      core_.require_server(true);
    }
  }
  static std::chrono::nanoseconds remaining(detail::Deadline deadline) {
    if (deadline == detail::kForever) return std::chrono::hours(24 * 365);
    return std::max(deadline - detail::Clock::now(), detail::Clock::duration::zero());
  }

  std::optional<Request<Req>> receive_until(detail::Deadline deadline) {
    listen();
    std::optional<ReqEnv> env = deadline == detail::kForever ? std::optional<ReqEnv>(requests_->receive())
                                                              : requests_->receive_for(remaining(deadline));
    if (!env) return std::nullopt;
    Request<Req> r;
    r.env_ = std::move(*env);
    r.server_ = server_;
    return r;
  }

  void deliver(std::uint64_t client, const RespEnv& reply) {
    auto& ctl = core_.control();
    auto it = replies_.find(client);
    if (it == replies_.end()) {
      try {
        it = replies_.emplace(client, Channel<RespEnv>::open(core_.reply_name(client))).first;
      } catch (const Error&) {
        ctl.dropped.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats; the client is gone
        return;
      }
    }
    bool sent = false;
    try {
      sent = it->second.try_send(reply) || it->second.send_for(reply, detail::kReplyPatience);
    } catch (const Error& e) {
      if (e.code() != errc::closed) throw;  // too_large and the like reach the server
      replies_.erase(it);                   // the client went away
    }
    // relaxed (both): statistics.
    (sent ? ctl.served : ctl.dropped).fetch_add(1, std::memory_order_relaxed);
  }

  detail::ServiceCore core_;
  std::unique_ptr<Channel<ReqEnv>> requests_;
  std::unique_ptr<std::mutex> mutex_;
  std::unique_ptr<Client> client_;
  std::uint64_t server_ = 0;  // our server role token
  std::unordered_map<std::uint64_t, Channel<RespEnv>> replies_;
};

}  // namespace sleet
