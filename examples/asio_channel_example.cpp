// A Boost.Asio program that serves a sleet channel next to a timer: the
// channel's notify_fd() goes into the io_context as a posix descriptor,
// async_wait() fires when messages are waiting, and the handler drains them
// with try_receive() (an empty try_receive() re-arms the descriptor). A
// forked child sends five jobs 20 ms apart and closes the channel.
//
//   asio_channel_example
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include <sleet/sleet.hpp>

int main() {
  const std::string name = "asio-example." + std::to_string(::getpid());
  try {
    auto jobs = sleet::Channel<std::string>::create(name, {.capacity = 16});
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 0;
      try {
        auto out = sleet::Channel<std::string>::open(name);
        for (int i = 1; i <= 5; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          out.send("job " + std::to_string(i));
        }
        out.close();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        rc = 1;
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }

    boost::asio::io_context io;
    // The descriptor stays owned by the channel: asio gets a duplicate.
    boost::asio::posix::stream_descriptor fd(io, ::dup(jobs.notify_fd()));
    boost::asio::steady_timer timer(io);
    int received = 0, ticks = 0;
    bool done = false;

    std::function<void()> wait_for_jobs = [&] {
      fd.async_wait(boost::asio::posix::stream_descriptor::wait_read, [&](boost::system::error_code ec) {
        if (ec) return;
        try {
          while (auto job = jobs.try_receive()) {  // until empty: that re-arms the descriptor
            std::printf("received %s\n", job->c_str());
            ++received;
          }
        } catch (const sleet::Error& e) {
          if (e.code() != sleet::errc::closed) throw;
          std::printf("channel closed after %d jobs\n", received);
          done = true;
          timer.cancel();
          return;
        }
        wait_for_jobs();
      });
    };
    std::function<void()> tick = [&] {
      timer.expires_after(std::chrono::milliseconds(15));
      timer.async_wait([&](boost::system::error_code ec) {
        if (ec || done) return;
        ++ticks;
        tick();
      });
    };
    wait_for_jobs();
    tick();
    io.run();
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::printf("timer ticked %s while waiting\n", ticks > 0 ? "too" : "never");
    sleet::Channel<std::string>::remove(name);
    return received == 5 && done && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_channel_example: %s\n", e.what());
    sleet::Channel<std::string>::remove(name);
    return 1;
  }
}
