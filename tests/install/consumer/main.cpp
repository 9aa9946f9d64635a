// Sends one message through an installed sleet and reads it back.
#include <unistd.h>

#include <cstdio>
#include <string>

#include <sleet/sleet.hpp>

int main() {
  const std::string name = "consumer." + std::to_string(::getpid());
  auto ch = sleet::Channel<int>::create(name);
  ch.send(42);
  const int got = ch.receive();
  sleet::Channel<int>::remove(name);
  std::printf("installed sleet works: %d\n", got);
  return got == 42 ? 0 : 1;
}
