// A short cross-process tour of sleet: a parent and a forked child talk over
// two named channels, then the parent streams a million small messages to the
// child and both report what they saw.
//
//   demo [messages]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sleet/sleet.hpp>

namespace {

struct Order {
  std::uint64_t id;
  double price;
  std::int32_t quantity;
};

struct Reply {
  std::uint64_t id;
  double total;
};

int child(const std::string& orders_name, const std::string& replies_name) {
  auto orders = sleet::Channel<Order>::open(orders_name);
  auto replies = sleet::Channel<Reply>::open(replies_name);
  // Conversation: answer each order with its total, until the stream starts.
  for (;;) {
    const Order o = orders.receive();
    if (o.quantity < 0) break;  // marks the start of the stream
    replies.send({o.id, o.price * o.quantity});
  }
  // Stream: count and check everything until the channel is closed.
  std::uint64_t count = 0, expected = 0;
  bool in_order = true;
  try {
    for (;;) {
      const Order o = orders.receive();
      in_order = in_order && o.id == expected++;
      ++count;
    }
  } catch (const sleet::Error& e) {
    if (e.code() != sleet::errc::closed) throw;
  }
  replies.send({count, in_order ? 1.0 : 0.0});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t messages = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const std::string orders_name = "demo.orders." + std::to_string(::getpid());
  const std::string replies_name = "demo.replies." + std::to_string(::getpid());
  try {
    auto orders = sleet::Channel<Order>::create(
        orders_name, {.topology = sleet::Topology::spsc, .capacity = 4096});
    auto replies = sleet::Channel<Reply>::create(replies_name, {.topology = sleet::Topology::spsc});

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 1;
      try {
        rc = child(orders_name, replies_name);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }

    std::printf("parent %d -> child %d over /dev/shm/sleet.%s\n", ::getpid(), pid,
                orders_name.c_str());
    for (std::uint64_t id = 1; id <= 3; ++id) {
      const Order o{id, 9.5 * static_cast<double>(id), static_cast<std::int32_t>(id * 10)};
      orders.send(o);
      const Reply r = replies.receive();
      std::printf("  order %llu: %d x %.2f -> child says total %.2f\n",
                  static_cast<unsigned long long>(r.id), o.quantity, o.price, r.total);
    }

    orders.send({0, 0, -1});
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < messages; ++i) orders.send({i, 1.0, 1});
    orders.close();
    const Reply done = replies.receive();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int status = 0;
    ::waitpid(pid, &status, 0);

    const auto st = orders.stats();
    std::printf("streamed %llu messages of %zu bytes in %.3f s: %.1f M msgs/s, child got %llu%s\n",
                static_cast<unsigned long long>(messages), sizeof(Order), secs,
                static_cast<double>(messages) / secs / 1e6,
                static_cast<unsigned long long>(done.id),
                done.total == 1.0 ? " in order" : " OUT OF ORDER");
    std::printf("ring full %llu times; sender slept %llu, receiver slept %llu times\n",
                static_cast<unsigned long long>(st.times_full),
                static_cast<unsigned long long>(st.send_sleeps),
                static_cast<unsigned long long>(st.receive_sleeps));
    sleet::Channel<Order>::remove(orders_name);
    sleet::Channel<Reply>::remove(replies_name);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && done.id == messages &&
                    done.total == 1.0;
    return ok ? 0 : 1;
  } catch (const sleet::Error& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    sleet::Channel<Order>::remove(orders_name);
    sleet::Channel<Reply>::remove(replies_name);
    return 1;
  }
}
