// A child process increments a sleet::SharedValue; the parent reads the
// result (multiprocessing.Value, in C++).
//
//   shared_value_example [increments=1000]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sleet/sleet.hpp>

int main(int argc, char** argv) {
  const int increments = argc > 1 ? std::atoi(argv[1]) : 1000;
  const std::string name = "value-example." + std::to_string(::getpid());
  try {
    auto counter = sleet::SharedValue<std::int64_t>::create(name, 0);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 0;
      try {
        auto mine = sleet::SharedValue<std::int64_t>::open(name);
        for (int i = 0; i < increments; ++i) mine.fetch_add(1);  // one atomic instruction each
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        rc = 1;
      }
      ::_exit(rc);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    const std::int64_t seen = counter.load();
    sleet::SharedValue<std::int64_t>::remove(name);
    std::printf("child incremented %d times, parent reads %lld\n", increments, static_cast<long long>(seen));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && seen == increments ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shared_value_example: %s\n", e.what());
    sleet::SharedValue<std::int64_t>::remove(name);
    return 1;
  }
}
