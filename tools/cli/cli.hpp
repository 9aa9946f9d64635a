// tools/cli/cli.hpp — the commands of the `sleet` tool and what they share.
//
// main.cpp parses the command line (CLI11) into the option structs below and
// calls one command; only main.cpp includes CLI11, so the commands compile
// quickly and can be read without it. Commands use the public sleet API
// only (layer 7).
//
// Errors: a command throws sleet::Error (from the library) or cli::Failure
// (its own); main() prints one line, "sleet: <object>: <what>", on stderr
// and exits with the code below.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sleet/error.hpp>

namespace sleet::cli {

// Exit codes (documented in `sleet --help` and the README).
inline constexpr int kOk = 0;
inline constexpr int kError = 1;    // the operation failed (not found, wrong kind, ...)
inline constexpr int kUsage = 2;    // a bad command line: unknown command, missing or bad argument
inline constexpr int kTimeout = 3;  // recv --timeout ran out before -n messages arrived

// A failure the tool itself reports; what() is the line after "sleet: ".
class Failure : public std::runtime_error {
 public:
  Failure(int exit_code, const std::string& what) : std::runtime_error(what), code_(exit_code) {}
  int exit_code() const noexcept { return code_; }

 private:
  int code_;
};

struct LsOptions {
  bool json = false;
};
struct StatOptions {
  std::string name;
  bool json = false;
};
struct RmOptions {
  std::vector<std::string> names;
  bool stale = false;
  bool all = false;
  bool yes = false;
  std::string prefix;  // --stale/--all: only names that start with it
  bool force = false;  // NAME...: remove it even while processes use it
};
struct KvOptions {
  std::string action;  // get, set, del, dump
  std::string store;
  std::string key;
  std::string value;
  bool create = false;  // set: create the store if it does not exist
  bool json = false;    // dump
};
struct SendOptions {
  std::string channel;
  bool close = false;  // close the channel at the end of input
};
struct RecvOptions {
  std::string channel;
  std::optional<std::uint64_t> count;            // -n
  std::optional<std::chrono::nanoseconds> timeout;  // --timeout, for the whole command
};
struct BenchOptions {
  std::string which = "all";  // spsc, mpmc, pipe, kv, all
  std::uint64_t size = 64;    // bytes per message / value
  double seconds = 1.0;       // per benchmark
};

// `sleet bridge` (only in a build with the bridge, SLEET_HAVE_BRIDGE).
struct BridgeCliOptions {
  std::vector<std::string> servers;  // --server, repeatable
  std::vector<std::string> exports;  // NAME[=SUBJECT]
  std::vector<std::string> imports;  // SUBJECT[=NAME]
  std::string config;                // --config FILE
  std::string backpressure;          // drop (default) or wait
  std::string name = "bridge";       // the status store is <name>.status
  bool status = false;               // print the counters and exit
  bool durable = false;              // JetStream streams (at-least-once across restarts)
  bool low_latency = false;          // every publish written at once (SendAsap)
  std::string user, password, token, creds, nkey, nkey_public;
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key;
};

// Each returns the exit code (kOk, or kTimeout for recv).
int run_ls(const LsOptions& o);
int run_stat(const StatOptions& o);
int run_rm(const RmOptions& o);
int run_kv(const KvOptions& o);
int run_send(const SendOptions& o);
int run_recv(const RecvOptions& o);
int run_bench(const BenchOptions& o);
int run_bridge(const BridgeCliOptions& o);

// kUsage for an error in the command line itself (an invalid name), else kError.
int exit_code_of(const Error& e);

// "500ms", "2s", "1.5s", "250us", "1m", or a bare number of seconds;
// std::nullopt if `text` is none of these.
std::optional<std::chrono::nanoseconds> parse_duration(const std::string& text);
// "1.5s", "500ms": a duration as a person would write it.
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace sleet::cli
