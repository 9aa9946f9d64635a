// Two threads increment and decrement one shared counter a million times
// each: first without a lock (a read-modify-write race: updates get lost,
// so the result is usually not 0), then under a sleet::Mutex (always 0).
//
//   counter_race_example [iterations=1000000]
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <sleet/sleet.hpp>

namespace {

// Runs `step(+1)` in one thread and `step(-1)` in another, `n` times each,
// started together so that they really overlap.
template <class Step>
void race(int n, Step step) {
  std::atomic<int> ready{0};
  auto body = [&](int d) {
    ready.fetch_add(1, std::memory_order_relaxed);  // relaxed: only a start line
    while (ready.load(std::memory_order_relaxed) < 2) {
    }
    for (int i = 0; i < n; ++i) step(d);
  };
  std::thread up(body, +1);
  std::thread down(body, -1);
  up.join();
  down.join();
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000000;
  const std::string base = "race-example." + std::to_string(::getpid());
  const std::string counter_name = base + ".counter", lock_name = base + ".lock";
  try {
    auto counter = sleet::SharedValue<std::int64_t>::create(counter_name, 0);
    auto lock = sleet::Mutex::create(lock_name);

    // Without a lock: load, then store. Each access is atomic, the pair is
    // not, so one thread can overwrite the other's update.
    race(n, [&](int d) {
      counter.store(counter.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);  // relaxed: the race is the point
    });
    std::printf("without a lock: counter = %lld (0 only by luck)\n", static_cast<long long>(counter.load()));

    counter.store(0);
    race(n, [&](int d) {
      lock.lock();
      counter.store(counter.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);  // relaxed: the mutex orders it
      lock.unlock();
    });
    const std::int64_t locked = counter.load();
    std::printf("with a sleet::Mutex: counter = %lld\n", static_cast<long long>(locked));

    sleet::SharedValue<std::int64_t>::remove(counter_name);
    sleet::Mutex::remove(lock_name);
    return locked == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "counter_race_example: %s\n", e.what());
    sleet::SharedValue<std::int64_t>::remove(counter_name);
    sleet::Mutex::remove(lock_name);
    return 1;
  }
}
