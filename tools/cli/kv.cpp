// sleet kv get|set|del|dump: a key-value store from the shell, std::string
// values only (other types are named, not decoded).
#include <algorithm>
#include <iostream>
#include <optional>
#include <string>

#include <sleet/sleet.hpp>

#include "cli.hpp"
#include "output.hpp"

namespace sleet::cli {

namespace {

Failure no_key(const KvOptions& o) {
  return Failure(kError, "kv store '" + o.store + "': no key '" + o.key + "'");
}

int dump(const KvStore& kv, bool json) {
  std::vector<KvEntry> entries = kv.snapshot();
  std::sort(entries.begin(), entries.end(),
            [](const KvEntry& a, const KvEntry& b) { return a.key < b.key; });
  int rc = kOk;
  if (json) {
    Json j;
    j.begin_array();
    for (const KvEntry& e : entries) {
      j.begin_object();
      j.key("key").value(e.key);
      j.key("type").value(e.type_name);
      j.key("value");
      std::optional<std::string> text;
      if (e.is<std::string>()) {
        try {
          text = e.as<std::string>();
        } catch (const Error& err) {
          std::cerr << "sleet: " << err.detail() << '\n';  // the value shows as null
          rc = kError;
        }
      }
      text ? j.value(*text) : j.null();
      j.key("bytes").value(std::uint64_t{e.bytes.size()});
      j.end_object();
    }
    j.end_array();
    std::cout << j.str() << '\n';
    return rc;
  }
  // Every line is made whole before it is printed: a value that fails to
  // decode prints nothing of itself (its error goes to stderr, and the
  // dump goes on with the next key).
  for (const KvEntry& e : entries) {
    std::string line = e.key + '\t';
    try {
      line += e.is<std::string>() ? e.as<std::string>()
                                  : "(" + e.type_name + ", " + std::to_string(e.bytes.size()) + " bytes)";
    } catch (const Error& err) {
      std::cerr << "sleet: " << err.detail() << '\n';
      rc = kError;
      continue;
    }
    std::cout << line << '\n';
  }
  return rc;
}

}  // namespace

int run_kv(const KvOptions& o) {
  if (o.action == "set") {
    KvStore kv = o.create ? KvStore::open_or_create(o.store) : KvStore::open(o.store);
    kv.set(o.key, o.value);
    return kOk;
  }
  KvStore kv = KvStore::open(o.store);
  if (o.action == "get") {
    // A value of another type is errc::type_mismatch naming its type.
    const std::optional<std::string> v = kv.get<std::string>(o.key);
    if (!v) throw no_key(o);
    std::cout << *v << '\n';
    return kOk;
  }
  if (o.action == "del") {
    if (!kv.erase(o.key)) throw no_key(o);
    return kOk;
  }
  return dump(kv, o.json);
}

}  // namespace sleet::cli
