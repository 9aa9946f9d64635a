// Ten producer processes each put their index on one queue; the parent
// receives all ten (multiprocessing.Queue, in C++).
//
//   queue_example [producers=10]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sleet/sleet.hpp>

int main(int argc, char** argv) {
  const int producers = argc > 1 ? std::atoi(argv[1]) : 10;
  const std::string name = "queue-example." + std::to_string(::getpid());
  try {
    auto queue = sleet::Channel<int>::create(name, {.topology = sleet::Topology::mpmc});
    std::vector<pid_t> children;
    std::fflush(nullptr);
    for (int i = 0; i < producers; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        int rc = 0;
        try {
          sleet::Channel<int>::open(name).send(i);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "producer %d: %s\n", i, e.what());
          rc = 1;
        }
        ::_exit(rc);
      }
      children.push_back(pid);
    }
    std::vector<int> got;
    for (int i = 0; i < producers; ++i) got.push_back(queue.receive());
    int failed = 0;
    for (pid_t pid : children) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    sleet::Channel<int>::remove(name);
    std::sort(got.begin(), got.end());
    std::printf("received:");
    for (int v : got) std::printf(" %d", v);
    std::printf("\n");
    bool all = static_cast<int>(got.size()) == producers;
    for (int i = 0; all && i < producers; ++i) all = got[static_cast<std::size_t>(i)] == i;
    return all && failed == 0 ? 0 : 1;
  } catch (const sleet::Error& e) {
    std::fprintf(stderr, "queue_example: %s\n", e.what());
    sleet::Channel<int>::remove(name);
    return 1;
  }
}
