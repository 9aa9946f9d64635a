// The plugin host's storage example, in C++: one process sets a key, another
// reads it straight from shared memory (no round trip through a parent).
//
//   storage_example
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <sleet/sleet.hpp>

int main() {
  const std::string name = "storage-example." + std::to_string(::getpid());
  try {
    auto store = sleet::KvStore::create(name);

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 0;
      try {
        auto kv = sleet::KvStore::open(name);  // any process may open it by name
        kv.set("key", std::string("value"));
        kv.update<int>("visits", [](std::optional<int> v) { return v.value_or(0) + 1; });
        std::printf("child %d: set key = value\n", ::getpid());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        rc = 1;
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }

    // Sleep until the child writes the key (or give up after 5 s).
    if (!store.contains("key")) store.wait_for_change("key", std::chrono::seconds(5));
    int status = 0;
    ::waitpid(pid, &status, 0);
    const auto value = store.get<std::string>("key");
    std::printf("parent %d: get key -> %s\n", ::getpid(), value ? value->c_str() : "(missing)");
    store.update<int>("visits", [](std::optional<int> v) { return v.value_or(0) + 1; });
    std::printf("parent: visits = %d, %zu keys:", store.get_or("visits", 0), store.size());
    for (const auto& e : store.snapshot()) std::printf(" %s (%s)", e.key.c_str(), e.type_name.c_str());
    std::printf("\n");
    sleet::KvStore::remove(name);
    return value == "value" && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  } catch (const sleet::Error& e) {
    std::fprintf(stderr, "storage_example: %s\n", e.what());
    sleet::KvStore::remove(name);
    return 1;
  }
}
