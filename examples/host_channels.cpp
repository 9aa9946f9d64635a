// The plugin host's channel example, in C++.
//
// The main process starts a child and talks to it on the child's two
// channels: "<name>-passive", which the child handles with on_receive() and
// a filter that accepts strings, and "<name>-active", which the child reads
// with receive() in a loop. Every interval the main process sends one
// message on each.
//
//   host_channels [interval_ms=1000] [rounds=5]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <variant>

#include <sleet/sleet.hpp>

namespace {

// What the host's channels carry: any of a few common types.
using Message = std::variant<std::string, std::int64_t, double>;

int child_main(const std::string& name) {
  auto passive = sleet::Channel<Message>::open(name + "-passive");
  auto active = sleet::Channel<Message>::open(name + "-active");

  passive.on_receive(
      [](const Message& m) {
        std::printf("Passive receive: %s\n", std::get<std::string>(m).c_str());
        std::fflush(stdout);
      },
      [](const Message& m) { return std::holds_alternative<std::string>(m); });

  for (const Message& m : active) {  // until the main process closes the channel
    if (const auto* s = std::get_if<std::string>(&m)) {
      std::printf("Active receive: %s\n", s->c_str());
      std::fflush(stdout);
    }
  }
  passive.close();  // drains what is left and joins the dispatcher
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto interval = std::chrono::milliseconds(argc > 1 ? std::atoi(argv[1]) : 1000);
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::string name = "liteyuki." + std::to_string(::getpid());

  try {
    auto passive = sleet::Channel<Message>::create(name + "-passive");
    auto active = sleet::Channel<Message>::create(name + "-active");

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 1;
      try {
        rc = child_main(name);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }

    for (int i = 0; i < rounds; ++i) {
      passive.send(Message{std::string("I am liteyuki main process passive")});
      active.send(Message{std::string("I am liteyuki main process active")});
      std::this_thread::sleep_for(interval);
    }
    passive.close();
    active.close();

    int status = 0;
    ::waitpid(pid, &status, 0);
    sleet::Channel<Message>::remove(name + "-passive");
    sleet::Channel<Message>::remove(name + "-active");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  } catch (const sleet::Error& e) {
    std::fprintf(stderr, "host_channels: %s\n", e.what());
    sleet::Channel<Message>::remove(name + "-passive");
    sleet::Channel<Message>::remove(name + "-active");
    return 1;
  }
}
