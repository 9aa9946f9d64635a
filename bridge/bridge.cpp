// bridge/bridge.cpp — sleet::Bridge over the NATS C client (bridge.hpp has
// the design; wire.hpp the bytes).
#include <nats/nats.h>
#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sleet/bridge.hpp>
#include <sleet/detail/raw_io.hpp>
#include <sleet/detail/type_name.hpp>
#include <sleet/error.hpp>
#include <sleet/kv_store.hpp>
#include <sleet/registry.hpp>

#include "bridge_internal.hpp"
#include "wire.hpp"

namespace sleet {

namespace {

using namespace std::chrono_literals;
using detail::RawBytes;

// How long an export's local receive waits before it checks for stop().
constexpr std::chrono::milliseconds kStopPoll{50};
// How often a refusal is logged per route: the first, then every Nth
// (a wrong-typed stream must not flood stderr).
constexpr std::uint64_t kRefusalLogEvery = 1000;
// Longest wait in ~Bridge for libnats' closed callback (it comes within
// milliseconds; the bound only keeps a broken client from hanging us).
constexpr std::chrono::seconds kCloseWait{10};

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  while (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
  }
  return v;
}

// The host id every bridge on this /dev/shm shares (bridge.hpp).
std::uint64_t shared_host_id() {
  KvOptions o;
  o.capacity = 4;
  o.max_key_size = 8;
  o.max_value_size = 64;
  KvStore ids = KvStore::open_or_create("sleet.bridge.host", o);
  const std::uint64_t mine = random_u64() | 1;  // never 0
  return ids.update<std::uint64_t>("id", [&](std::optional<std::uint64_t> v) { return v ? *v : mine; });
}

void copy_text(char* dst, std::size_t cap, std::string_view s) {
  const std::size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

std::string nats_error(natsStatus s) {
  std::string out = natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && out != last) out += std::string(" (") + last + ")";
  return out;
}

void check_nats(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw Error(errc::system_error, what + ": " + nats_error(s));
}

// JetStream names may not hold '.', '*', '>' or spaces: "sleet_<subject with '_'>".
std::string stream_name(std::string_view subject) {
  std::string n = "sleet_";
  for (char c : subject) n += (c == '.' || c == '*' || c == '>' || c == ' ') ? '_' : c;
  return n;
}

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The store where durable imports keep their stream position (per host).
KvOptions state_store_options() {
  KvOptions o;
  o.capacity = 1024;  // durable import routes on one host
  o.max_key_size = 64;
  o.max_value_size = 64;
  return o;
}

// Longest wait between two JetStream publish attempts of one message.
constexpr std::chrono::milliseconds kRetryMax{1000};

struct Counters {
  // relaxed everywhere: independent statistics, read by the status thread.
  std::atomic<std::uint64_t> forwarded{0}, dropped{0}, refused{0}, duplicates{0}, gaps{0}, echoes{0};
  mutable std::mutex error_mutex;  // guards last_error
  std::string last_error;
};

}  // namespace

struct Bridge::Impl {
  struct Route {
    BridgeRoute spec;
    std::string label;  // spec.describe()
    bool topic = false;
    std::uint64_t fingerprint = 0;
    std::string type_name;
    Counters counters;
    Impl* owner = nullptr;
    // export
    detail::RawReader reader;
    std::thread thread;
    std::uint64_t session = 0;
    // import (touched only by its subscription's callback thread)
    detail::RawWriter writer;
    natsSubscription* sub = nullptr;
    RawBytes scratch;
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> last_seq;  // (origin, session)

    std::string stream;        // durable: the JetStream stream of the subject
    std::string position_key;  // durable import: its key in the state store

    // Records `what` as the last error and logs it (no counter).
    void note(const std::string& what) {
      {
        std::lock_guard lock(counters.error_mutex);
        counters.last_error = what;
      }
      owner->log(label + ": " + what);
    }
    void fail(const std::string& what, std::atomic<std::uint64_t>& counter) {
      const std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed) + 1;  // relaxed: stats
      {
        std::lock_guard lock(counters.error_mutex);
        counters.last_error = what;
      }
      if (n == 1 || n % kRefusalLogEvery == 0) {
        owner->log(label + ": " + what + (n > 1 ? " (" + std::to_string(n) + " so far)" : ""));
      }
    }
  };

  BridgeOptions options;
  std::uint64_t host = 0;
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;                  // durable only
  std::optional<KvStore> state;         // durable imports' positions
  std::atomic<bool> connected{false};
  std::atomic<bool> stopping{false};
  bool started = false;
  std::vector<std::unique_ptr<Route>> routes;
  std::optional<KvStore> status_store;
  std::thread status_thread;
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  // libnats runs connection callbacks on its own thread, after Close()
  // returns: ~Bridge waits for the last one (closed) before Impl goes.
  std::mutex closed_mutex;
  std::condition_variable closed_cv;
  bool closed = false;  // guarded by closed_mutex

  void log(const std::string& line) const {
    if (options.log) {
      options.log(line);
    } else {
      std::fprintf(stderr, "sleet bridge: %s\n", line.c_str());
    }
  }

  std::vector<BridgeRouteStatus> snapshot() const {
    std::vector<BridgeRouteStatus> out;
    for (const auto& r : routes) {
      BridgeRouteStatus s{};
      copy_text(s.route, sizeof s.route, r->label);
      {
        std::lock_guard lock(r->counters.error_mutex);
        copy_text(s.last_error, sizeof s.last_error, r->counters.last_error);
      }
      const Counters& c = r->counters;
      // relaxed: statistics (see Counters).
      s.forwarded = c.forwarded.load(std::memory_order_relaxed);
      s.dropped = c.dropped.load(std::memory_order_relaxed);
      s.refused = c.refused.load(std::memory_order_relaxed);
      s.duplicates = c.duplicates.load(std::memory_order_relaxed);
      s.gaps = c.gaps.load(std::memory_order_relaxed);
      s.echoes = c.echoes.load(std::memory_order_relaxed);
      out.push_back(s);
    }
    return out;
  }

  void publish_status() {
    if (!status_store) return;
    try {
      bridge_detail::write_status(*status_store, snapshot());
    } catch (const std::exception& e) {
      log(std::string("status store: ") + e.what());
    }
  }

  // --- libnats callbacks (its threads) ---

  static void on_disconnected(natsConnection*, void* closure) {
    auto* self = static_cast<Impl*>(closure);
    self->connected.store(false, std::memory_order_relaxed);  // relaxed: a status flag
    if (!self->stopping.load(std::memory_order_relaxed)) {     // relaxed: only quiets the log
      self->log("disconnected from NATS; reconnecting");
    }
  }
  static void on_connected(natsConnection* nc, void* closure) {
    auto* self = static_cast<Impl*>(closure);
    self->connected.store(true, std::memory_order_relaxed);  // relaxed: a status flag
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    self->log("connected to " + bridge_detail::redact_url(url));
  }
  static void on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<Impl*>(closure);
    std::lock_guard lock(self->closed_mutex);
    self->closed = true;
    self->closed_cv.notify_all();
  }
  static void on_error(natsConnection*, natsSubscription* sub, natsStatus err, void* closure) {
    auto* self = static_cast<Impl*>(closure);
    for (auto& r : self->routes) {  // only subscriptions' errors have a sub: routes no longer change
      if (sub != nullptr && r->sub == sub) {
        r->fail("NATS: " + std::string(natsStatus_GetText(err)), r->counters.dropped);
        return;
      }
    }
    self->log(std::string("NATS: ") + natsStatus_GetText(err));
  }
  static int64_t reconnect_delay(natsConnection*, int attempts, void*) {
    const auto ms = std::min<std::int64_t>(kReconnectMax.count(),
                                           kReconnectMin.count() << std::min(attempts, 10));
    return ms;
  }
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* r = static_cast<Route*>(closure);
    Impl& b = *r->owner;
    const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(msg));
    const auto size = static_cast<std::size_t>(natsMsg_GetDataLength(msg));
    if (!b.options.durable) {
      b.import_one(*r, data, size);
    } else {
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        // Flow-control and heartbeat messages of the ordered consumer carry no
        // metadata and never reach a callback; anything else is not ours.
        r->fail("refused a message without JetStream metadata", r->counters.refused);
      } else {
        const std::uint64_t at = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        // The position moves only past a message that was handled: one cut
        // short by stop() comes again when the route is next started.
        if (b.import_one(*r, data, size)) {
          try {
            b.state->set<std::uint64_t>(r->position_key, at);
          } catch (const Error& e) {
            r->note(std::string("cannot keep the stream position: ") + e.what());
          }
        }
      }
    }
    natsMsg_Destroy(msg);
  }

  // --- the two directions ---

  // Delivers one message locally; false only if stop() cut a durable wait
  // short (the message was not delivered and must come again).
  bool import_one(Route& r, const std::byte* data, std::size_t size) {
    std::string error;
    const auto h = bridge_wire::decode_header(data, size, error);
    if (!h) {
      r.fail("refused " + error, r.counters.refused);
      return true;
    }
    if (h->origin == host) {
      r.counters.echoes.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
      return true;
    }
    if (h->fingerprint != r.fingerprint) {
      r.fail("refused a message of type '" + std::string(h->type_name) + "': the local " +
                 (r.topic ? "topic" : "channel") + " '" + r.spec.object + "' holds '" + r.type_name + "'",
             r.counters.refused);
      return true;
    }
    auto [it, fresh] = r.last_seq.try_emplace({h->origin, h->session}, h->sequence);
    if (!fresh) {
      if (h->sequence <= it->second) {
        r.counters.duplicates.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
        return true;
      }
      if (h->sequence > it->second + 1) {
        r.counters.gaps.fetch_add(h->sequence - it->second - 1, std::memory_order_relaxed);  // relaxed: stats
      }
      it->second = h->sequence;
    }
    r.scratch.bytes.assign(h->payload, h->payload + h->payload_size);
    try {
      if (options.durable) {
        // Durable: wait as long as it takes; the ordered consumer's flow
        // control slows the stream meanwhile (nothing is dropped).
        while (!r.writer.send_for(r.scratch, kStopPoll)) {
          if (stopping.load(std::memory_order_relaxed)) return false;  // relaxed: see export_loop
        }
        r.counters.forwarded.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
        return true;
      }
      // Once stop() has begun, no waiting: it drains the queued callbacks.
      const bool stopping_now = stopping.load(std::memory_order_relaxed);  // relaxed: a hint
      const auto wait = options.backpressure == BridgeBackpressure::wait && !stopping_now
                            ? std::chrono::nanoseconds(options.wait_limit)
                            : std::chrono::nanoseconds(0);
      if (r.writer.send_for(r.scratch, wait)) {
        r.counters.forwarded.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
      } else {
        r.fail("dropped a message: the local " + std::string(r.topic ? "topic" : "channel") + " '" +
                   r.spec.object + "' is full",
               r.counters.dropped);
      }
    } catch (const Error& e) {
      r.fail(std::string("dropped a message: ") + e.what(), r.counters.dropped);
    }
    return true;
  }

  // Durable: publishes to the stream and waits for its ack, retrying (with
  // the same message id, which the server deduplicates) until it is stored;
  // false if stop() came first.
  bool publish_durable(Route& r, const std::vector<std::byte>& wire, const bridge_wire::Header& h) {
    const std::string id = hex(h.origin) + "-" + hex(h.session) + "-" + std::to_string(h.sequence);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    auto delay = kReconnectMin;
    for (bool first = true;; first = false) {
      jsPubAck* ack = nullptr;
      jsErrCode ec = static_cast<jsErrCode>(0);
      const natsStatus s = js_Publish(&ack, js, r.spec.subject.c_str(), wire.data(),
                                      static_cast<int>(wire.size()), &po, &ec);
      jsPubAck_Destroy(ack);
      if (s == NATS_OK) {
        if (!first) r.note("JetStream publish succeeded again");
        return true;
      }
      if (first) r.note("JetStream publish failed (retrying): " + nats_error(s));
      if (stopping.load(std::memory_order_relaxed)) return false;  // relaxed: see export_loop
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, kRetryMax);
    }
  }

  // Durable: the stream of `subject` exists (created if not; an existing
  // one is used as it is). Retries while JetStream is unreachable.
  void ensure_stream(Route& r) {
    r.stream = stream_name(r.spec.subject);
    const char* subjects[] = {r.spec.subject.c_str()};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = r.stream.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    auto delay = kReconnectMin;
    for (bool first = true;; first = false) {
      jsStreamInfo* si = nullptr;
      jsErrCode ec = static_cast<jsErrCode>(0);
      const natsStatus s = js_AddStream(&si, js, &cfg, nullptr, &ec);
      jsStreamInfo_Destroy(si);
      if (s == NATS_OK || ec == JSStreamNameExistErr) return;
      if (first) r.note("cannot create JetStream stream '" + r.stream + "' (retrying): " + nats_error(s));
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, kReconnectMax);
    }
  }

  // Durable import: an ordered consumer from just past the position this
  // host last delivered (the stream's end if it never imported).
  void subscribe_durable(Route& r) {
    r.position_key = "pos." + hex(detail::fnv1a(r.spec.subject + "\n" + r.spec.object));
    std::optional<std::uint64_t> at = state->get<std::uint64_t>(r.position_key);
    if (!at) {
      jsStreamInfo* si = nullptr;
      jsErrCode ec = static_cast<jsErrCode>(0);
      check_nats(js_GetStreamInfo(&si, js, r.stream.c_str(), nullptr, &ec), "bridge: " + r.label + ": stream info");
      at = si->State.LastSeq;
      jsStreamInfo_Destroy(si);
      state->set<std::uint64_t>(r.position_key, *at);
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = r.stream.c_str();
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = *at + 1;
    jsErrCode ec = static_cast<jsErrCode>(0);
    check_nats(js_Subscribe(&r.sub, js, r.spec.subject.c_str(), &Impl::on_message, &r, nullptr, &so, &ec),
               "bridge: " + r.label + ": JetStream subscribe");
  }

  void export_loop(Route& r) {
    RawBytes m;
    std::vector<std::byte> wire;
    std::uint64_t seq = 0;
    bridge_wire::Header h;
    h.fingerprint = r.fingerprint;
    h.origin = host;
    h.session = r.session;
    h.type_name = r.type_name;
    // relaxed: stop() also wakes us through the timeout; no data rides on the flag.
    while (!stopping.load(std::memory_order_relaxed)) {
      try {
        if (!r.reader.receive_for(m, kStopPoll)) continue;
      } catch (const Error& e) {
        if (e.code() == errc::closed) {
          log(r.label + ": the local object was closed; this export ends");
          return;
        }
        r.fail(std::string("a local message was lost: ") + e.what(), r.counters.dropped);
        continue;
      }
      h.sequence = ++seq;
      std::byte* payload = bridge_wire::encode_header(wire, h, m.bytes.size());
      if (!m.bytes.empty()) std::memcpy(payload, m.bytes.data(), m.bytes.size());
      if (options.durable) {
        if (publish_durable(r, wire, h)) {
          r.counters.forwarded.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
        } else {
          r.fail("stopped before JetStream stored a message", r.counters.dropped);
        }
        continue;
      }
      const natsStatus s =
          natsConnection_Publish(nc, r.spec.subject.c_str(), wire.data(), static_cast<int>(wire.size()));
      if (s == NATS_OK) {
        r.counters.forwarded.fetch_add(1, std::memory_order_relaxed);  // relaxed: stats
      } else {
        r.fail("NATS publish failed: " + nats_error(s), r.counters.dropped);
      }
    }
  }

  void status_loop() {
    std::unique_lock lock(stop_mutex);
    // relaxed: the flag is also read under stop_mutex, which orders it.
    while (!stopping.load(std::memory_order_relaxed)) {
      lock.unlock();
      publish_status();
      lock.lock();
      stop_cv.wait_for(lock, kStatusPeriod, [&] { return stopping.load(std::memory_order_relaxed); });
    }
  }
};

Bridge::Bridge(BridgeOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& b = *impl_;
  if (options.servers.empty()) throw Error(errc::invalid_argument, "bridge: no NATS server URL");
  for (const auto& url : options.servers) bridge_detail::check_url(url);
  b.options = std::move(options);
  b.host = shared_host_id();

  check_nats(natsOptions_Create(&b.opts), "bridge: natsOptions_Create");
  std::vector<const char*> urls;
  for (const auto& u : b.options.servers) urls.push_back(u.c_str());
  const BridgeCredentials& c = b.options.credentials;
  check_nats(natsOptions_SetServers(b.opts, urls.data(), static_cast<int>(urls.size())), "bridge: servers");
  check_nats(natsOptions_SetMaxReconnect(b.opts, -1), "bridge: reconnect");  // forever
  check_nats(natsOptions_SetCustomReconnectDelay(b.opts, &Impl::reconnect_delay, &b), "bridge: reconnect");
  check_nats(natsOptions_SetRetryOnFailedConnect(b.opts, true, &Impl::on_connected, &b), "bridge: retry");
  check_nats(natsOptions_SetReconnectedCB(b.opts, &Impl::on_connected, &b), "bridge: callbacks");
  check_nats(natsOptions_SetDisconnectedCB(b.opts, &Impl::on_disconnected, &b), "bridge: callbacks");
  check_nats(natsOptions_SetErrorHandler(b.opts, &Impl::on_error, &b), "bridge: callbacks");
  check_nats(natsOptions_SetClosedCB(b.opts, &Impl::on_closed, &b), "bridge: callbacks");
  check_nats(natsOptions_SetName(b.opts, "sleet-bridge"), "bridge: name");
  if (b.options.low_latency) check_nats(natsOptions_SetSendAsap(b.opts, true), "bridge: low latency");
  // The credentials' values never appear in an error: only which one failed.
  if (!c.user.empty() || !c.password.empty()) {
    check_nats(natsOptions_SetUserInfo(b.opts, c.user.c_str(), c.password.c_str()), "bridge: user/password");
  }
  if (!c.token.empty()) check_nats(natsOptions_SetToken(b.opts, c.token.c_str()), "bridge: token");
  if (!c.creds_file.empty()) {
    check_nats(natsOptions_SetUserCredentialsFromFiles(b.opts, c.creds_file.c_str(), nullptr),
               "bridge: creds file '" + c.creds_file + "'");
  }
  if (!c.nkey_seed_file.empty()) {
    check_nats(natsOptions_SetNKeyFromSeed(b.opts, c.nkey_public.c_str(), c.nkey_seed_file.c_str()),
               "bridge: nkey seed file '" + c.nkey_seed_file + "'");
  }
  if (c.tls) check_nats(natsOptions_SetSecure(b.opts, true), "bridge: TLS");
  if (!c.ca_file.empty()) {
    check_nats(natsOptions_LoadCATrustedCertificates(b.opts, c.ca_file.c_str()),
               "bridge: CA file '" + c.ca_file + "'");
  }
  if (!c.cert_file.empty() || !c.key_file.empty()) {
    check_nats(natsOptions_LoadCertificatesChain(b.opts, c.cert_file.c_str(), c.key_file.c_str()),
               "bridge: certificate '" + c.cert_file + "'");
  }
  if (b.options.durable) {
    b.state.emplace(KvStore::open_or_create("sleet.bridge.state", state_store_options()));
  }
  const natsStatus s = natsConnection_Connect(&b.nc, b.opts);
  if (s == NATS_NOT_YET_CONNECTED) {
    b.log("no NATS server reachable yet; retrying");
  } else {
    check_nats(s, "bridge: connect");
    b.connected.store(true, std::memory_order_relaxed);  // relaxed: a status flag
  }
  if (b.options.durable) check_nats(natsConnection_JetStream(&b.js, b.nc, nullptr), "bridge: JetStream");
}

Bridge::~Bridge() {
  stop();
  Impl& b = *impl_;
  b.stopping.store(true, std::memory_order_relaxed);  // relaxed: quiets on_disconnected's line
  if (b.js != nullptr) jsCtx_Destroy(b.js);
  if (b.nc != nullptr) {
    natsConnection_Close(b.nc);
    {
      // The disconnected callback may still be queued: closed comes after it.
      std::unique_lock lock(b.closed_mutex);
      b.closed_cv.wait_for(lock, kCloseWait, [&] { return b.closed; });
    }
    natsConnection_Destroy(b.nc);
  }
  natsOptions_Destroy(b.opts);
}

void Bridge::add(const BridgeRoute& spec) {
  Impl& b = *impl_;
  if (b.started) throw Error(errc::invalid_argument, "bridge: add() after start()");
  for (const auto& r : b.routes) {
    if (r->spec.object == spec.object && r->spec.direction != spec.direction) {
      throw Error(errc::invalid_argument,
                  "bridge: '" + spec.object + "' is both exported and imported: every message would "
                  "travel back and forth (bridge two objects instead)");
    }
  }
  const ObjectInfo info = inspect_object(spec.object);
  auto r = std::make_unique<Impl::Route>();
  r->spec = spec;
  r->label = spec.describe();
  r->owner = &b;
  if (info.kind == "topic") {
    r->topic = true;
  } else if (info.kind != "channel") {
    throw Error(errc::kind_mismatch, "bridge: '" + spec.object + "' is a " + info.kind +
                                         ", not a topic or channel");
  }
  r->fingerprint = info.fingerprint;
  r->type_name = info.type_name;
  const detail::MessageType type{r->fingerprint, r->type_name, 0};
  if (spec.direction == BridgeRoute::Direction::out) {
    r->reader = r->topic ? detail::RawReader::open_topic(spec.object, type)
                         : detail::RawReader::open_channel(spec.object, type);
    r->session = random_u64();
  } else {
    r->writer = r->topic ? detail::RawWriter::open_topic(spec.object, type)
                         : detail::RawWriter::open_channel(spec.object, type);
  }
  b.routes.push_back(std::move(r));
}

void Bridge::start() {
  Impl& b = *impl_;
  if (b.started) return;
  // relaxed: stop() ran on this thread.
  if (b.stopping.load(std::memory_order_relaxed)) throw Error(errc::invalid_argument, "bridge: start() after stop()");
  b.started = true;
  for (auto& r : b.routes) {
    if (b.options.durable) b.ensure_stream(*r);
    if (r->spec.direction != BridgeRoute::Direction::in) continue;
    if (b.options.durable) {
      b.subscribe_durable(*r);
      continue;
    }
    check_nats(natsConnection_Subscribe(&r->sub, b.nc, r->spec.subject.c_str(), &Impl::on_message, r.get()),
               "bridge: " + r->label + ": subscribe");
    // No limit on what waits for the callback: a slow local side is the
    // backpressure policy's business, not a silent drop in the client.
    natsSubscription_SetPendingLimits(r->sub, -1, -1);
  }
  // The subscriptions are known to the server once this returns (when
  // connected; otherwise they are sent on connect).
  if (b.connected.load(std::memory_order_relaxed)) natsConnection_FlushTimeout(b.nc, 2000);  // relaxed: a hint
  for (auto& r : b.routes) {
    if (r->spec.direction == BridgeRoute::Direction::out) {
      r->thread = std::thread([&b, route = r.get()] { b.export_loop(*route); });
    }
  }
  // The store appears once every route runs (a tool may wait for it).
  if (!b.options.status.empty()) {
    b.status_store.emplace(KvStore::open_or_create(b.options.status, bridge_detail::status_store_options()));
  }
  b.publish_status();
  b.status_thread = std::thread([&b] { b.status_loop(); });
}

void Bridge::stop() {
  Impl& b = *impl_;
  if (!b.started) return;
  {
    std::lock_guard lock(b.stop_mutex);
    b.stopping.store(true, std::memory_order_relaxed);  // relaxed: read under stop_mutex or polled
  }
  b.stop_cv.notify_all();
  for (auto& r : b.routes) {
    if (r->thread.joinable()) r->thread.join();
  }
  if (b.status_thread.joinable()) b.status_thread.join();
  // What the exports published goes out before the subscriptions end.
  if (b.connected.load(std::memory_order_relaxed)) natsConnection_FlushTimeout(b.nc, 2000);  // relaxed: a hint
  for (auto& r : b.routes) {
    if (r->sub != nullptr) {
      // Drain: the server stops sending, the callbacks already queued run,
      // and none runs after WaitForDrainCompletion (the route may go).
      // Imports stop waiting for local room once `stopping` is set, so the
      // queued callbacks finish quickly; the route must outlive every one.
      if (natsSubscription_Drain(r->sub) == NATS_OK) {
        while (natsSubscription_WaitForDrainCompletion(r->sub, 2000) == NATS_TIMEOUT) {
          b.log("bridge: " + r->label + ": still draining the subscription");
        }
      } else {
        natsSubscription_Unsubscribe(r->sub);
      }
      natsSubscription_Destroy(r->sub);
      // r->sub keeps its (now dangling) value: on_error compares it, and
      // clearing it here would race with that read. stop() runs once.
    }
  }
  b.publish_status();
  b.started = false;
}

std::vector<BridgeRouteStatus> Bridge::status() const { return impl_->snapshot(); }
std::uint64_t Bridge::host_id() const noexcept { return impl_->host; }
bool Bridge::connected() const noexcept {
  return impl_->connected.load(std::memory_order_relaxed);  // relaxed: a status flag
}

}  // namespace sleet
