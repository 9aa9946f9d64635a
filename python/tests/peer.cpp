// python_peer: the C++ process of the Python interop tests
// (python/tests/test_interop.py).
//
//   python_peer echo KIND IN OUT N   receive N messages of KIND on channel IN, send each back on OUT
//   python_peer kv-set STORE         set one value of each C++ type the binding maps
//   python_peer kv-check STORE       read what the Python side set; exit 0 if all match
//
// KIND: str, int, float, bytes, message, object (std::string, std::int64_t,
// double, std::vector<std::uint8_t>, sleet::Message, sleet::Dynamic).
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <sleet/sleet.hpp>

namespace {

template <class T>
int echo(const char* in, const char* out, long n) {
  auto rx = sleet::Channel<T>::open(in);
  auto tx = sleet::Channel<T>::open(out);
  for (long i = 0; i < n; ++i) tx.send(rx.receive());
  return 0;
}

int kv_set(const char* name) {
  auto kv = sleet::KvStore::open(name);
  kv.set("s", std::string("from c++"));
  kv.set("i", std::int64_t{-42});
  kv.set("f", 0.25);
  kv.set("b", true);
  kv.set("y", std::vector<std::uint8_t>{1, 2, 3});
  kv.set("m", sleet::Message("hello").set("n", 7));
  kv.set("d", sleet::Dynamic::dict({{"list", sleet::Dynamic::list({1, "x", nullptr})}}));
  kv.set("u", std::uint16_t{5});  // a type the binding has no mapping for
  return 0;
}

int kv_check(const char* name) {
  auto kv = sleet::KvStore::open(name);
  int bad = 0;
  auto check = [&bad](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "python_peer kv-check: %s differs\n", what);
      ++bad;
    }
  };
  check(kv.get<std::string>("s") == std::string("from python"), "s");
  check(kv.get<std::int64_t>("i") == std::int64_t{1} << 40, "i");
  check(kv.get<double>("f") == 1.5, "f");
  check(kv.get<bool>("b") == false, "b");
  check(kv.get<std::vector<std::uint8_t>>("y") == std::vector<std::uint8_t>{9, 8}, "y");
  check(kv.get<sleet::Dynamic>("d") ==
            sleet::Dynamic::dict({{"k", sleet::Dynamic::Tuple{{1, 2.5}}}, {"none", nullptr}}),
        "d");
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string_view cmd = argc > 1 ? argv[1] : "";
    if (cmd == "echo" && argc == 6) {
      const std::string_view kind = argv[2];
      const long n = std::stol(argv[5]);
      if (kind == "str") return echo<std::string>(argv[3], argv[4], n);
      if (kind == "int") return echo<std::int64_t>(argv[3], argv[4], n);
      if (kind == "float") return echo<double>(argv[3], argv[4], n);
      if (kind == "bytes") return echo<std::vector<std::uint8_t>>(argv[3], argv[4], n);
      if (kind == "message") return echo<sleet::Message>(argv[3], argv[4], n);
      if (kind == "object") return echo<sleet::Dynamic>(argv[3], argv[4], n);
    }
    if (cmd == "kv-set" && argc == 3) return kv_set(argv[2]);
    if (cmd == "kv-check" && argc == 3) return kv_check(argv[2]);
    std::fprintf(stderr, "usage: python_peer echo KIND IN OUT N | kv-set STORE | kv-check STORE\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "python_peer: %s\n", e.what());
    return 1;
  }
}
