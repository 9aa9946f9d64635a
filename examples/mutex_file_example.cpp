// Ten processes append a line to one file, each under a sleet::Mutex, so no
// two lines interleave even though every line is written in small pieces.
//
//   mutex_file_example [processes=10] [file=/tmp/sleet-mutex-example.<pid>.txt]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include <sleet/sleet.hpp>

namespace {

// Appends "process <i> was here\n" with one write() per word, pausing in
// between: without the mutex, other processes' words would land in between.
void append_line(const std::string& path, int index) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  for (const std::string& word : {std::string("process "), std::to_string(index), std::string(" was here\n")}) {
    if (::write(fd, word.data(), word.size()) != static_cast<ssize_t>(word.size())) {
      ::close(fd);
      throw std::runtime_error("write failed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const int processes = argc > 1 ? std::atoi(argv[1]) : 10;
  const std::string path =
      argc > 2 ? argv[2] : "/tmp/sleet-mutex-example." + std::to_string(::getpid()) + ".txt";
  const std::string name = "mutex-example." + std::to_string(::getpid());
  std::remove(path.c_str());
  try {
    auto lock = sleet::Mutex::create(name);
    std::fflush(nullptr);
    for (int i = 0; i < processes; ++i) {
      if (::fork() == 0) {
        int rc = 0;
        try {
          auto mine = sleet::Mutex::open(name);  // attach by name, as any process could
          std::lock_guard guard(mine);           // held until the line is complete
          append_line(path, i);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "process %d: %s\n", i, e.what());
          rc = 1;
        }
        ::_exit(rc);
      }
    }
    int failed = 0;
    for (int i = 0; i < processes; ++i) {
      int status = 0;
      ::wait(&status);
      failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    sleet::Mutex::remove(name);

    std::ifstream in(path);
    int lines = 0;
    for (std::string line; std::getline(in, line); ++lines) std::printf("%s\n", line.c_str());
    std::remove(path.c_str());
    std::printf("%d lines from %d processes\n", lines, processes);
    return failed == 0 && lines == processes ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mutex_file_example: %s\n", e.what());
    sleet::Mutex::remove(name);
    return 1;
  }
}
