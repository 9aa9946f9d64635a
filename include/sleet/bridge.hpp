// sleet/bridge.hpp — layer 7: topics and channels carried to other hosts
// over NATS (https://nats.io), with the same API on both ends.
//
//   sleet::BridgeOptions o;
//   o.servers = {"nats://10.0.0.5:4222"};
//   o.status = "bridge.status";   // counters, for `sleet bridge --status` (created by start())
//   sleet::Bridge b(o);
//   b.add(sleet::parse_export("ticks"));             // topic "ticks" -> subject sleet.ticks
//   b.add(sleet::parse_import("sleet.jobs=jobs"));   // subject sleet.jobs -> channel "jobs"
//   b.start();                                       // threads run until stop() / ~Bridge
//
// A route names a local object that exists (a topic or a channel; its type
// is read from its segment, so the bridge needs no C++ type) and a NATS
// subject (default `sleet.<name>`).
// - export: a subscription to the topic (or a receiver of the channel,
//   competing with its other receivers) publishes every message to the
//   subject;
// - import: every message on the subject is published to the topic (or
//   sent to the channel).
//
// Wire format (bridge/wire.hpp): a 40-byte header — magic, version, the
// length of the type name, the type fingerprint, the origin host id, the
// exporter's session id,
// route's sequence number — then the type name, then the message's encoded
// bytes exactly as the codec wrote them into shared memory (codec.hpp; so
// both hosts must agree on the codec's byte layout: same architecture and
// type definitions, which the fingerprint checks by name and size).
//
// Host id: a random 64-bit number kept in the KvStore "sleet.bridge.host",
// so every bridge that shares a /dev/shm (one host, in sleet's sense) has
// the same id. An import drops messages carrying its own host id: a host
// that exports and imports one subject never hears its own messages back.
//
// Refusals: an import whose local object has another fingerprint than the
// message refuses it (a line on the log naming both types, `refused`
// counted) and goes on; a message with a bad header is refused the same way.
//
// Delivery (core NATS): at most once. Each route numbers its messages from
// 1 per exporter start (with a random session id, so a restarted exporter
// is a new sequence); an importer tracks the last number per (origin,
// session) and counts `gaps` (numbers it never saw) and `duplicates`
// (numbers at or below the last, dropped).
//
// What can be lost (core NATS):
// - exporter killed: the messages it took from the local object and had
//   not yet written to the socket (at most what libnats buffers, flushed
//   within milliseconds); a channel export also loses the one message being
//   forwarded. Messages published locally while no exporter runs are not
//   seen by a topic export (a subscription sees what comes after it).
// - importer killed or disconnected: everything published on the subject
//   while it is away (core NATS keeps nothing); counted as gaps when the
//   same exporter's next message arrives.
// - NATS server restart: the exporter buffers what it publishes while
//   disconnected (libnats' reconnect buffer, 8 MiB) and sends it after
//   reconnecting; what arrives before an importer has re-subscribed is lost
//   and counted as a gap.
// Nothing is ever delivered twice in core mode.
//
// Durable (BridgeOptions::durable, JetStream): each subject is a stream
// "sleet_<subject with '_' for '.'>" (file storage; created if missing, an
// existing one used as it is). An export waits for the server's ack of each
// message, retrying with the same message id (which the server
// deduplicates) until it is stored. An import is an ordered consumer from
// just past the stream position this host last delivered, which it keeps
// in the KvStore "sleet.bridge.state" (shared memory: it survives the
// bridge, not the host's /dev/shm); a first import starts at the stream's
// end. What can be lost or doubled (durable):
// - exporter killed: the one message between the local receive and the
//   server's ack (and, as in core mode, what is published locally while no
//   export runs);
// - importer killed: nothing; a message delivered locally whose position
//   was not yet written comes once more (a window of one KvStore write);
// - server restart: nothing (exports retry, imports resume).
// The local side full: the import waits (the consumer's flow control slows
// the stream), never drops.
//
// Backpressure (core import, local object full): BridgeBackpressure::drop
// counts the message in `dropped` and goes on; ::wait waits up to
// wait_limit per message (holding up the subscription's callback), then
// counts it in `dropped`.
//
// Reconnects: the connection retries forever (also when no server is up at
// start), with a growing delay (kReconnectMin doubling to kReconnectMax); each
// disconnect and reconnect is a line on the log.
//
// Credentials (user/password, token, creds file, nkey seed, TLS files) go
// to libnats only; the bridge never prints them (a URL with a password is
// logged with the password replaced by ***).
//
// Threads: one per export route (blocked in the local receive), libnats'
// threads (subscription callbacks run the imports), and one that writes the
// status store every kStatusPeriod. add() before start(); stop() joins
// and is final (a stopped bridge does not start again: make a new one).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sleet {

enum class BridgeBackpressure { drop, wait };

struct BridgeCredentials {
  std::string user;      // with password
  std::string password;
  std::string token;
  std::string creds_file;      // a NATS .creds file (user JWT + seed)
  std::string nkey_public;     // with nkey_seed_file
  std::string nkey_seed_file;
  bool tls = false;            // require TLS
  std::string ca_file;         // trusted CA certificates
  std::string cert_file;       // client certificate chain, with key_file
  std::string key_file;
};

struct BridgeRoute {
  enum class Direction { out, in } direction = Direction::out;  // out: export, in: import
  std::string object;   // the local topic or channel
  std::string subject;  // the NATS subject
  // "export ticks -> sleet.ticks", "import sleet.jobs -> jobs"
  std::string describe() const;
};

// "NAME[=SUBJECT]" and "SUBJECT[=NAME]"; the missing half is sleet.<name>
// or the subject's last token. Throws errc::invalid_argument naming the
// spec (empty part, bad subject: empty token, spaces, wildcard) or
// errc::invalid_name.
BridgeRoute parse_export(std::string_view spec);
BridgeRoute parse_import(std::string_view spec);

struct BridgeOptions {
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};  // nats:// or tls:// URLs
  BridgeCredentials credentials;
  BridgeBackpressure backpressure = BridgeBackpressure::drop;  // core NATS imports
  // JetStream: each subject is a stream (created if missing), exports wait
  // for the server's ack, imports resume where this host left off.
  bool durable = false;
  std::chrono::milliseconds wait_limit{1000};  // ::wait: longest wait for room per message
  // libnats writes each publish to the socket at once instead of letting its
  // flusher thread coalesce them (which waits up to a millisecond): lower
  // latency, one write per message (lower throughput for small messages).
  bool low_latency = false;
  std::string status;  // KvStore for the counters ("" for none); created by start()
  // Where the bridge's lines go (default: stderr, prefixed "sleet bridge: ").
  std::function<void(std::string_view)> log;
};

// Counters of one route (a KvStore value, so trivially copyable).
struct BridgeRouteStatus {
  char route[160];        // describe(), NUL-terminated
  char last_error[320];   // the last refusal or failure, "" if none
  std::uint64_t forwarded;   // export: published to NATS; import: delivered locally
  std::uint64_t dropped;     // import: local side full (drop); export: NATS publish failed
  std::uint64_t refused;     // import: another type or a bad header
  std::uint64_t duplicates;  // import: a sequence number already seen
  std::uint64_t gaps;        // import: sequence numbers never seen
  std::uint64_t echoes;      // import: this host's own messages, skipped
};

// How often the status store is rewritten while a bridge runs.
inline constexpr std::chrono::milliseconds kStatusPeriod{100};
// Reconnect delay: starts at kReconnectMin, doubles per failed attempt.
inline constexpr std::chrono::milliseconds kReconnectMin{50};
inline constexpr std::chrono::milliseconds kReconnectMax{2000};

class Bridge {
 public:
  // Checks the URLs (errc::invalid_argument naming a bad one; never its
  // password) and starts connecting (retrying forever in the background).
  explicit Bridge(BridgeOptions options);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Opens the route's local object now: errc::not_found if there is none,
  // errc::kind_mismatch if it is not a topic or channel. Before start().
  void add(const BridgeRoute& route);
  // Subscribes the imports (flushed to the server when connected) and
  // starts the exports.
  void start();
  // Stops the exports, unsubscribes, writes the status a last time.
  void stop();

  std::vector<BridgeRouteStatus> status() const;
  std::uint64_t host_id() const noexcept;
  bool connected() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The counters a running (or finished) bridge wrote to `store`, in route
// order. Throws errc::not_found if there is no such store.
std::vector<BridgeRouteStatus> read_bridge_status(std::string_view store);

}  // namespace sleet
