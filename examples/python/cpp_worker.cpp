// The C++ half of examples/python/cpp_example.py: a ProcessManager child
// written in C++, started by a Python manager. It answers each job on its
// active channel with the sum of the job's numbers.
#include <cstdint>

#include <sleet/sleet.hpp>

int main() {
  auto& ch = sleet::this_process::active_channel();
  for (const sleet::Message& job : ch) {
    if (job.topic == "quit") break;
    std::int64_t sum = 0;
    for (const auto& [key, value] : job.fields) {
      if (const auto* v = std::get_if<std::int64_t>(&value)) sum += *v;
    }
    ch.send(sleet::Message("sum").set("of", job.topic).set("sum", sum).set("by", "c++"));
  }
  return 0;
}
