// The plugin host's storage example, in C++: one process sets a key, another
// reads it straight from shared memory (no round trip through a parent);
// and its publish/subscribe half: the child publishes on a topic, and the
// parent's subscriber handler (the host's on_subscriber_receive) runs for it.
//
//   storage_example
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <atomic>
#include <cstdio>
#include <string>

#include <sleet/sleet.hpp>

int main() {
  const std::string name = "storage-example." + std::to_string(::getpid());
  const std::string events = name + ".events";
  try {
    auto store = sleet::KvStore::create(name);
    auto topic = sleet::Topic<std::string>::create(events);
    auto subscriber = topic.subscribe();
    std::atomic<int> heard{0};
    subscriber.on_receive([&](const std::string& m) {
      std::printf("parent: subscriber got \"%s\"\n", m.c_str());
      ++heard;
    });

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 0;
      try {
        auto kv = sleet::KvStore::open(name);  // any process may open it by name
        kv.set("key", std::string("value"));
        kv.update<int>("visits", [](std::optional<int> v) { return v.value_or(0) + 1; });
        std::printf("child %d: set key = value\n", ::getpid());
        std::fflush(nullptr);
        sleet::Topic<std::string>::open(name + ".events").publish("key was set");  // the host's publish()
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
    topic.close();
    subscriber.join();  // the handler has run for everything published
    sleet::KvStore::remove(name);
    sleet::Topic<std::string>::remove(events);
    return value == "value" && heard == 1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  } catch (const sleet::Error& e) {
    std::fprintf(stderr, "storage_example: %s\n", e.what());
    sleet::KvStore::remove(name);
    sleet::Topic<std::string>::remove(events);
    return 1;
  }
}
