// A sleet::Semaphore with two units lets at most two of four worker
// processes into a section at once; the workers count who is inside.
//
//   semaphore_example [workers=4] [rounds=50]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <sleet/sleet.hpp>

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::atoi(argv[1]) : 4;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 50;
  const std::string base = "semaphore-example." + std::to_string(::getpid());
  const std::string slots_name = base + ".slots", inside_name = base + ".inside", most_name = base + ".most";
  auto remove_all = [&] {
    sleet::Semaphore::remove(slots_name);
    sleet::SharedValue<int>::remove(inside_name);
    sleet::SharedValue<int>::remove(most_name);
  };
  try {
    auto slots = sleet::Semaphore::create(slots_name, 2, {.max = 2});  // two units, never more
    auto inside = sleet::SharedValue<int>::create(inside_name, 0);     // workers inside now
    auto most = sleet::SharedValue<int>::create(most_name, 0);         // the most seen at once
    std::fflush(nullptr);
    for (int w = 0; w < workers; ++w) {
      if (::fork() == 0) {
        int rc = 0;
        try {
          auto s = sleet::Semaphore::open(slots_name);
          auto now_in = sleet::SharedValue<int>::open(inside_name);
          auto max_in = sleet::SharedValue<int>::open(most_name);
          for (int r = 0; r < rounds; ++r) {
            s.acquire();  // waits while two others are inside
            const int n = now_in.fetch_add(1) + 1;
            max_in.update([n](int m) { return std::max(m, n); });
            std::this_thread::sleep_for(std::chrono::microseconds(500));  // the work
            now_in.fetch_sub(1);
            s.release();
          }
        } catch (const std::exception& e) {
          std::fprintf(stderr, "worker %d: %s\n", w, e.what());
          rc = 1;
        }
        ::_exit(rc);
      }
    }
    int failed = 0;
    for (int w = 0; w < workers; ++w) {
      int status = 0;
      ::wait(&status);
      failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    const int seen = most.load();
    remove_all();
    std::printf("%d workers, %d rounds each: at most %d inside at once (limit 2)\n", workers, rounds, seen);
    return failed == 0 && seen <= 2 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "semaphore_example: %s\n", e.what());
    remove_all();
    return 1;
  }
}
