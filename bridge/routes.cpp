// bridge/routes.cpp — the text a bridge is configured with: route specs,
// server URLs, and the status store it writes (bridge.hpp).
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include <sleet/bridge.hpp>
#include <sleet/error.hpp>
#include <sleet/kv_store.hpp>

#include "bridge_internal.hpp"

namespace sleet {

namespace {

bool valid_object_name(std::string_view n) {
  if (n.empty() || n.size() > 200) return false;
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A NATS subject to publish to: dot-separated non-empty tokens of
// printable characters, no wildcard.
void check_subject(std::string_view subject, std::string_view spec) {
  auto bad = [&](const std::string& why) {
    throw Error(errc::invalid_argument, "route '" + std::string(spec) + "': subject '" +
                                            std::string(subject) + "' " + why);
  };
  if (subject.empty()) bad("is empty");
  if (subject.front() == '.' || subject.back() == '.' || subject.find("..") != std::string_view::npos) {
    bad("has an empty token");
  }
  for (char c : subject) {
    if (c == '*' || c == '>') bad("has a wildcard");
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) bad("has a space or control character");
  }
}

void check_name(std::string_view name, std::string_view spec) {
  if (!valid_object_name(name)) {
    throw Error(errc::invalid_name, "route '" + std::string(spec) + "': '" + std::string(name) +
                                        "' is not an object name (1-200 characters of [A-Za-z0-9._-])");
  }
}

// Splits "A=B"; `second` is empty without '='. An empty half is an error.
void split(std::string_view spec, std::string_view& first, std::string_view& second) {
  const auto eq = spec.find('=');
  first = spec.substr(0, eq);
  second = eq == std::string_view::npos ? std::string_view{} : spec.substr(eq + 1);
  if (first.empty() || (eq != std::string_view::npos && second.empty())) {
    throw Error(errc::invalid_argument,
                "route '" + std::string(spec) + "': an empty part (expected A or A=B)");
  }
}

}  // namespace

std::string BridgeRoute::describe() const {
  return direction == Direction::out ? "export " + object + " -> " + subject
                                     : "import " + subject + " -> " + object;
}

BridgeRoute parse_export(std::string_view spec) {
  std::string_view name, subject;
  split(spec, name, subject);
  check_name(name, spec);
  BridgeRoute r{BridgeRoute::Direction::out, std::string(name),
                subject.empty() ? "sleet." + std::string(name) : std::string(subject)};
  check_subject(r.subject, spec);
  return r;
}

BridgeRoute parse_import(std::string_view spec) {
  std::string_view subject, name;
  split(spec, subject, name);
  check_subject(subject, spec);
  if (name.empty()) {
    const auto dot = subject.rfind('.');
    name = dot == std::string_view::npos ? subject : subject.substr(dot + 1);
  }
  check_name(name, spec);
  return BridgeRoute{BridgeRoute::Direction::in, std::string(name), std::string(subject)};
}

namespace bridge_detail {

std::string redact_url(std::string_view url) {
  const auto scheme = url.find("://");
  const auto from = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto at = url.find('@', from);
  if (at == std::string_view::npos) return std::string(url);
  const auto colon = url.find(':', from);
  if (colon != std::string_view::npos && colon < at) {
    return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
  }
  return std::string(url.substr(0, from)) + "***" + std::string(url.substr(at));
}

void check_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    throw Error(errc::invalid_argument, "server URL '" + redact_url(url) + "' " + why);
  };
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) bad("has no scheme (expected nats://HOST:PORT or tls://HOST:PORT)");
  const std::string_view s = url.substr(0, scheme);
  if (s != "nats" && s != "tls") bad("has scheme '" + std::string(s) + "' (expected nats or tls)");
  std::string_view rest = url.substr(scheme + 3);
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 != rest.size()) bad("has a path");
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) bad("has an unclosed '['");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') bad("has junk after ']'");
      port = rest.substr(close + 2);
      if (port.empty()) bad("has an empty port");
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) bad("has an empty port");
  }
  if (host.empty()) bad("has no host");
  for (char c : host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '@') bad("has a bad host");
  }
  if (!port.empty()) {
    unsigned long v = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || port.size() > 5) bad("has a bad port '" + std::string(port) + "'");
      v = v * 10 + static_cast<unsigned long>(c - '0');
    }
    if (v == 0 || v > 65535) bad("has a port out of range (1-65535)");
  }
}

void write_status(KvStore& store, const std::vector<BridgeRouteStatus>& routes) {
  for (std::size_t i = 0; i < routes.size(); ++i) store.set("route." + std::to_string(i), routes[i]);
  store.set<std::uint64_t>("routes", routes.size());
}

KvOptions status_store_options() {
  KvOptions o;
  o.capacity = 256;  // routes of one bridge
  o.max_key_size = 32;
  o.max_value_size = sizeof(BridgeRouteStatus) + 64;  // + the value's type header
  return o;
}

}  // namespace bridge_detail

std::vector<BridgeRouteStatus> read_bridge_status(std::string_view store_name) {
  KvStore store = KvStore::open(store_name);
  // Bounded by what the status store can hold: a damaged count cannot make
  // us loop for ever.
  const auto n = std::min<std::uint64_t>(store.get_or<std::uint64_t>("routes", 0), store.capacity());
  std::vector<BridgeRouteStatus> out;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (auto s = store.get<BridgeRouteStatus>("route." + std::to_string(i))) out.push_back(*s);
  }
  return out;
}

}  // namespace sleet
