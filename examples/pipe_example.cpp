// Two processes talk over a Pipe: one asks, the other answers.
//
//   pipe_example [requests=5]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <sleet/sleet.hpp>

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 5;
  const std::string name = "pipe-example." + std::to_string(::getpid());
  try {
    auto [parent_end, unused] = sleet::Pipe<std::string>::create(name);

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 0;
      try {
        // The child attaches end b by name, as an unrelated process would.
        auto end = sleet::Pipe<std::string>::open(name, sleet::End::b);
        for (const std::string& question : end) end.send("pong " + question.substr(5));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        rc = 1;
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }

    int answered = 0;
    for (int i = 1; i <= requests; ++i) {
      parent_end.send("ping " + std::to_string(i));
      const std::string reply = parent_end.receive();
      std::printf("sent ping %d, got %s\n", i, reply.c_str());
      answered += reply == "pong " + std::to_string(i);
    }
    parent_end.close();
    int status = 0;
    ::waitpid(pid, &status, 0);
    sleet::Pipe<std::string>::remove(name);
    std::printf("%d of %d answered\n", answered, requests);
    return answered == requests && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  } catch (const sleet::Error& e) {
    std::fprintf(stderr, "pipe_example: %s\n", e.what());
    sleet::Pipe<std::string>::remove(name);
    return 1;
  }
}
