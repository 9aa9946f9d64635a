// sleet — the command-line tool: list, inspect and remove sleet objects,
// read and write a key-value store, send and receive text, run quick
// benchmarks. The command line is parsed here (CLI11); the commands live in
// the other files of tools/cli (cli.hpp).
#include <CLI/CLI.hpp>

#include <iostream>

#include <sleet/sleet.hpp>

#include "cli.hpp"

namespace {

using namespace sleet::cli;

constexpr const char* kExitCodes =
    "Exit codes: 0 success, 1 error (the line on stderr says what), 2 usage (bad command line,\n"
    "unknown command, missing or invalid argument, invalid name), 3 recv timed out.";

// The deepest subcommand the parser had entered, and its path ("kv get").
const CLI::App* deepest(const CLI::App& app, std::string& path) {
  for (const CLI::App* sub : app.get_subcommands()) {
    path += path.empty() ? "" : " ";
    path += sub->get_name();
    return deepest(*sub, path);
  }
  return &app;
}

// One line for a command line the parser refused.
std::string usage_error(const CLI::App& app, const CLI::ParseError& e) {
  std::string path;
  const CLI::App* at = deepest(app, path);
  const std::string hint = " (see 'sleet " + (path.empty() ? "" : path + " ") + "--help')";
  const std::string where = path.empty() ? "" : path + ": ";
  const bool has_commands = !at->get_subcommands([](const CLI::App*) { return true; }).empty();
  if (has_commands && (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr ||
                       dynamic_cast<const CLI::RequiredError*>(&e) != nullptr)) {
    // A word where a command was due is an unknown command; none at all is a missing one.
    const std::vector<std::string> extra = at->remaining();
    if (!extra.empty()) return where + "unknown command '" + extra.front() + "'" + hint;
    return where + "a command is required" + hint;
  }
  return where + e.what() + hint;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  CLI::App app{"sleet: inspect and use sleet shared-memory objects (/dev/shm/sleet.*)", "sleet"};
  app.footer(kExitCodes);
  app.require_subcommand(1);

  LsOptions ls_o;
  auto* ls = app.add_subcommand("ls", "List every sleet object: kind, type, fill, processes, STALE");
  ls->add_flag("--json", ls_o.json, "Print a JSON array, one object per line");

  StatOptions stat_o;
  auto* stat = app.add_subcommand("stat", "Everything the header and counters say about one object");
  stat->add_option("NAME", stat_o.name, "Object name")->required();
  stat->add_flag("--json", stat_o.json, "Print one JSON object");

  RmOptions rm_o;
  auto* rm = app.add_subcommand("rm", "Remove sleet objects (never a file that is not one)");
  rm->add_option("NAME", rm_o.names, "Objects to remove");
  rm->add_flag("--stale", rm_o.stale, "Remove every object no live process uses");
  rm->add_flag("--all", rm_o.all, "Remove every sleet object (needs --yes)");
  rm->add_flag("-y,--yes", rm_o.yes, "Confirm --all");
  rm->add_option("--prefix", rm_o.prefix, "With --stale or --all: only names starting with PREFIX");
  rm->add_flag("-f,--force", rm_o.force, "With NAME: remove it even while processes use it");

  KvOptions kv_o;
  auto* kv = app.add_subcommand("kv", "Read and write a key-value store (std::string values)");
  kv->require_subcommand(1);
  auto* kv_get = kv->add_subcommand("get", "Print the value of KEY (error if missing)");
  auto* kv_set = kv->add_subcommand("set", "Set KEY to VALUE");
  auto* kv_del = kv->add_subcommand("del", "Erase KEY (error if missing)");
  auto* kv_dump = kv->add_subcommand("dump", "Print every key and value, sorted by key");
  for (CLI::App* sub : {kv_get, kv_set, kv_del, kv_dump}) {
    sub->add_option("STORE", kv_o.store, "Store name")->required();
  }
  for (CLI::App* sub : {kv_get, kv_set, kv_del}) {
    sub->add_option("KEY", kv_o.key, "Key")->required();
  }
  kv_set->add_option("VALUE", kv_o.value, "Value (stored as std::string)")->required();
  kv_set->add_flag("--create", kv_o.create, "Create the store (default options) if it does not exist");
  kv_dump->add_flag("--json", kv_o.json, "Print a JSON array of {key, type, value, bytes}");

  SendOptions send_o;
  auto* send = app.add_subcommand(
      "send", "Send each line of stdin as one message on a Channel<std::string>");
  send->add_option("CHANNEL", send_o.channel, "Channel name")->required();
  send->add_flag("--close", send_o.close, "Close the channel at the end of input");

  RecvOptions recv_o;
  std::uint64_t count = 0;
  std::string timeout;
  auto* recv = app.add_subcommand(
      "recv", "Print each message of a Channel<std::string> on its own line, until closed");
  recv->add_option("CHANNEL", recv_o.channel, "Channel name")->required();
  recv->add_option("-n,--count", count, "Stop after N messages (N >= 1)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return text.size() <= 19 && text.find_first_not_of("0123456789") == std::string::npos &&
                           text.find_first_not_of('0') != std::string::npos
                       ? ""
                       : "must be a whole number of at least 1, not '" + text + "'";
          },
          "N"));
  recv->add_option("--timeout", timeout,
                   "Give up after this long in all, e.g. 500ms, 2s, 1m (exit code 3)");

  BenchOptions bench_o;
  auto* bench = app.add_subcommand("bench", "Quick cross-process benchmarks (a forked peer)");
  bench->add_option("WHICH", bench_o.which, "spsc, mpmc, pipe, kv or all (default)")
      ->check(CLI::IsMember({"spsc", "mpmc", "pipe", "kv", "all"}));
  bench->add_option("--size", bench_o.size, "Bytes per message or value, 8-65536 (default 64)");
  bench->add_option("--seconds", bench_o.seconds, "Seconds per benchmark (default 1)");

#ifdef SLEET_HAVE_BRIDGE
  BridgeCliOptions bridge_o;
  auto* bridge = app.add_subcommand("bridge", "Carry topics and channels to other hosts over NATS");
  bridge->add_option("--server", bridge_o.servers, "NATS server URL, repeatable (default nats://127.0.0.1:4222)");
  bridge->add_option("--export", bridge_o.exports, "NAME[=SUBJECT]: publish a local topic or channel (subject sleet.NAME)");
  bridge->add_option("--import", bridge_o.imports, "SUBJECT[=NAME]: deliver a subject into a local topic or channel");
  bridge->add_option("--config", bridge_o.config, "Read servers, routes and settings from FILE");
  bridge->add_option("--backpressure", bridge_o.backpressure, "Local side full: drop (count it, default) or wait")
      ->check(CLI::IsMember({"drop", "wait"}));
  bridge->add_option("--name", bridge_o.name, "Bridge name: its counters are in the store NAME.status (default bridge)");
  bridge->add_flag("--durable", bridge_o.durable, "JetStream: a stream per subject, imports resume after a restart");
  bridge->add_flag("--low-latency", bridge_o.low_latency, "Write every publish at once (lower latency, more writes)");
  bridge->add_flag("--status", bridge_o.status, "Print the counters of the bridge NAME and exit");
  bridge->add_option("--user", bridge_o.user, "NATS user (with --password or SLEET_BRIDGE_PASSWORD)");
  bridge->add_option("--password", bridge_o.password, "NATS password (never printed)");
  bridge->add_option("--token", bridge_o.token, "NATS token (never printed; or SLEET_BRIDGE_TOKEN)");
  bridge->add_option("--creds", bridge_o.creds, "NATS credentials file (user JWT and seed)");
  bridge->add_option("--nkey", bridge_o.nkey, "NKey seed file (with --nkey-public)");
  bridge->add_option("--nkey-public", bridge_o.nkey_public, "NKey public key");
  bridge->add_flag("--tls", bridge_o.tls, "Require TLS");
  bridge->add_option("--tls-ca", bridge_o.tls_ca, "Trusted CA certificates file");
  bridge->add_option("--tls-cert", bridge_o.tls_cert, "Client certificate chain file (with --tls-key)");
  bridge->add_option("--tls-key", bridge_o.tls_key, "Client private key file");
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    std::cerr << "sleet: " << usage_error(app, e) << '\n';
    return kUsage;
  }

  try {
    if (ls->parsed()) return run_ls(ls_o);
    if (stat->parsed()) return run_stat(stat_o);
    if (rm->parsed()) return run_rm(rm_o);
    if (kv->parsed()) {
      kv_o.action = kv_get->parsed() ? "get" : kv_set->parsed() ? "set" : kv_del->parsed() ? "del" : "dump";
      return run_kv(kv_o);
    }
    if (send->parsed()) return run_send(send_o);
    if (recv->parsed()) {
      if (recv->count("-n") != 0) recv_o.count = count;
      if (recv->count("--timeout") != 0) {
        recv_o.timeout = parse_duration(timeout);
        if (!recv_o.timeout) {
          throw Failure(kUsage, "recv: --timeout: invalid duration '" + timeout +
                                    "' (e.g. 500ms, 2s, 1m)");
        }
      }
      return run_recv(recv_o);
    }
#ifdef SLEET_HAVE_BRIDGE
    if (bridge->parsed()) return run_bridge(bridge_o);
#endif
    return run_bench(bench_o);
  } catch (const sleet::Error& e) {
    std::cerr << "sleet: " << e.detail() << '\n';
    return exit_code_of(e);
  } catch (const Failure& e) {
    std::cerr << "sleet: " << e.what() << '\n';
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "sleet: " << e.what() << '\n';
    return kError;
  }
}
