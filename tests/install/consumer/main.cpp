// Sends messages through an installed sleet and reads them back: a raw type
// and a cereal-coded one (std::string), so the installed headers and the
// package's cereal dependency are both exercised.
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

  const std::string text_name = name + ".text";
  auto text = sleet::Channel<std::string>::create(text_name);
  text.send(std::string("hello through cereal"));
  const std::string got_text = text.receive();
  sleet::Channel<std::string>::remove(text_name);

  std::printf("installed sleet works: %d, \"%s\"\n", got, got_text.c_str());
  return got == 42 && got_text == "hello through cereal" ? 0 : 1;
}
