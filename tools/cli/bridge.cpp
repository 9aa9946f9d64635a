// `sleet bridge`: runs a sleet::Bridge (bridge.hpp) until SIGINT/SIGTERM,
// or prints the counters a running one keeps in its status store.
//
// Config file (--config): one setting per line, '#' starts a comment:
//   server nats://10.0.0.5:4222      (repeatable)
//   export ticks                     (NAME[=SUBJECT], repeatable)
//   import sleet.jobs=jobs           (SUBJECT[=NAME], repeatable)
//   backpressure drop|wait
//   durable / low-latency
//   user NAME / password SECRET / token SECRET / creds FILE / nkey SEEDFILE / nkey-public KEY
//   tls / tls-ca FILE / tls-cert FILE / tls-key FILE
// The command line adds to the file's routes and servers and overrides its
// other settings. Secrets are never printed (a bad line names its key, not
// its value); SLEET_BRIDGE_PASSWORD and SLEET_BRIDGE_TOKEN in the
// environment keep them off the command line.
#include <signal.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <sleet/bridge.hpp>
#include <sleet/error.hpp>

#include "cli.hpp"

namespace sleet::cli {

namespace {

void read_config(const std::string& path, BridgeCliOptions& o, BridgeCliOptions& from_file) {
  std::ifstream in(path);
  if (!in) throw Failure(kError, "bridge: cannot read config file '" + path + "'");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string key, value, extra;
    if (!(words >> key)) continue;
    words >> value;
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (words >> extra) throw Failure(kUsage, "bridge: " + where + "'" + key + "' takes one value");
    const bool flag = key == "tls" || key == "durable" || key == "low-latency";
    if (!flag && value.empty()) throw Failure(kUsage, "bridge: " + where + "'" + key + "' needs a value");
    if (key == "server") o.servers.push_back(value);
    else if (key == "export") o.exports.push_back(value);
    else if (key == "import") o.imports.push_back(value);
    else if (key == "backpressure") from_file.backpressure = value;
    else if (key == "user") from_file.user = value;
    else if (key == "password") from_file.password = value;
    else if (key == "token") from_file.token = value;
    else if (key == "creds") from_file.creds = value;
    else if (key == "nkey") from_file.nkey = value;
    else if (key == "nkey-public") from_file.nkey_public = value;
    else if (key == "tls") from_file.tls = true;
    else if (key == "durable") from_file.durable = true;
    else if (key == "low-latency") from_file.low_latency = true;
    else if (key == "tls-ca") from_file.tls_ca = value;
    else if (key == "tls-cert") from_file.tls_cert = value;
    else if (key == "tls-key") from_file.tls_key = value;
    else throw Failure(kUsage, "bridge: " + where + "unknown setting '" + key + "'");
  }
}

const std::string& pick(const std::string& cli, const std::string& file) { return cli.empty() ? file : cli; }

int print_status(const std::string& store) {
  const auto routes = read_bridge_status(store);
  std::printf("%-40s %12s %9s %9s %10s %9s %9s  %s\n", "ROUTE", "FORWARDED", "DROPPED", "REFUSED",
              "DUPLICATES", "GAPS", "ECHOES", "LAST ERROR");
  for (const auto& r : routes) {
    std::printf("%-40s %12" PRIu64 " %9" PRIu64 " %9" PRIu64 " %10" PRIu64 " %9" PRIu64 " %9" PRIu64 "  %s\n",
                r.route, r.forwarded, r.dropped, r.refused, r.duplicates, r.gaps, r.echoes,
                r.last_error[0] != '\0' ? r.last_error : "-");
  }
  return kOk;
}

}  // namespace

int run_bridge(const BridgeCliOptions& cli) {
  const std::string store = cli.name + ".status";
  if (cli.status) return print_status(store);

  BridgeCliOptions o = cli;
  BridgeCliOptions file;
  if (!cli.config.empty()) read_config(cli.config, o, file);
  BridgeOptions b;
  if (!o.servers.empty()) b.servers = o.servers;
  const std::string bp = pick(o.backpressure, file.backpressure);
  if (bp == "wait") {
    b.backpressure = BridgeBackpressure::wait;
  } else if (!bp.empty() && bp != "drop") {
    throw Failure(kUsage, "bridge: backpressure must be 'drop' or 'wait', not '" + bp + "'");
  }
  BridgeCredentials& c = b.credentials;
  c.user = pick(o.user, file.user);
  c.password = pick(o.password, file.password);
  c.token = pick(o.token, file.token);
  if (const char* p = std::getenv("SLEET_BRIDGE_PASSWORD"); p != nullptr && c.password.empty()) c.password = p;
  if (const char* t = std::getenv("SLEET_BRIDGE_TOKEN"); t != nullptr && c.token.empty()) c.token = t;
  c.creds_file = pick(o.creds, file.creds);
  c.nkey_seed_file = pick(o.nkey, file.nkey);
  c.nkey_public = pick(o.nkey_public, file.nkey_public);
  c.tls = o.tls || file.tls;
  c.ca_file = pick(o.tls_ca, file.tls_ca);
  c.cert_file = pick(o.tls_cert, file.tls_cert);
  c.key_file = pick(o.tls_key, file.tls_key);
  b.status = store;
  b.durable = o.durable || file.durable;
  b.low_latency = o.low_latency || file.low_latency;

  std::vector<BridgeRoute> routes;
  for (const auto& e : o.exports) routes.push_back(parse_export(e));
  for (const auto& i : o.imports) routes.push_back(parse_import(i));
  if (routes.empty()) throw Failure(kUsage, "bridge: no route (give --export, --import or --config)");

  // SIGINT/SIGTERM end the bridge cleanly: blocked here (so every thread
  // the bridge starts inherits the mask) and taken with sigwait().
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Bridge bridge(b);
  for (const auto& r : routes) bridge.add(r);
  bridge.start();
  std::fprintf(stderr, "sleet bridge: %zu route%s, status in '%s'\n", routes.size(),
               routes.size() == 1 ? "" : "s", store.c_str());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  bridge.stop();
  return kOk;
}

}  // namespace sleet::cli
