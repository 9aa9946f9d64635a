// The plugin host's process manager, in C++ with sleet: the main process
// adds a target, starts it, talks to it on its active channel (a
// conversation) and its passive channel (events it handles on its own
// thread), asks it to restart, and stops everything.
//
//   ./manager_example
#include <sleet/sleet.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>

using namespace std::chrono_literals;

// The plugin framework: runs in a child process the manager forked.
int plugin_framework() {
  std::atomic<int> events{0};
  // Passive: a dispatcher thread calls the handler for messages the filter accepts.
  sleet::this_process::passive_channel().on_receive(
      [&](const sleet::Message& m) {
        events.fetch_add(1);
        std::printf("[%s] event: %s\n", sleet::this_process::name().c_str(), m.topic.c_str());
        std::fflush(stdout);
      },
      [](const sleet::Message& m) { return m.topic.rfind("event.", 0) == 0; });

  // Active: we receive when we choose to.
  auto& active = sleet::this_process::active_channel();
  for (const sleet::Message& m : active) {
    if (m.topic == "greet") {
      active.send(sleet::Message("greeting")
                      .set("text", "hello " + *m.get<std::string>("who") + ", I am " +
                                       sleet::this_process::name())
                      .set("pid", static_cast<std::int64_t>(::getpid())));
    } else if (m.topic == "count-events") {
      active.send(sleet::Message("events").set("n", events.load()));
    } else if (m.topic == "please-restart") {
      sleet::this_process::request_restart("the host asked for it");
    }
  }
  return 0;
}

int main() {
  sleet::ManagerOptions options;
  options.hooks.after_start = [](const std::string& name, int) {
    std::printf("hook: %s started\n", name.c_str());
  };
  options.hooks.before_restart = [](const std::string& name) {
    std::printf("hook: %s restarting\n", name.c_str());
  };
  options.hooks.before_shutdown = [](const std::string& name) {
    std::printf("hook: %s shutting down\n", name.c_str());
  };
  sleet::ProcessManager pm(options);
  pm.add_target("plugins", plugin_framework, {.restart = sleet::RestartPolicy::on_failure});
  pm.start("plugins");

  pm.send("plugins", sleet::Message("greet").set("who", "main"));
  const sleet::Message hello = pm.receive("plugins");
  std::printf("main got: %s\n", hello.get<std::string>("text")->c_str());
  const auto first_pid = *hello.get<std::int64_t>("pid");

  for (int i = 0; i < 3; ++i) pm.post("plugins", sleet::Message("event.tick"));
  std::int64_t seen = 0;
  const auto enough = std::chrono::steady_clock::now() + 20s;
  while (seen < 3 && std::chrono::steady_clock::now() < enough) {  // the handler runs on its own thread
    pm.send("plugins", sleet::Message("count-events"));
    seen = *pm.receive("plugins").get<std::int64_t>("n");
    if (seen < 3) std::this_thread::sleep_for(2ms);
  }
  std::printf("plugins handled %lld events\n", static_cast<long long>(seen));

  // The child asks the manager to restart it (a ControlRequest on the manager's control channel).
  pm.send("plugins", sleet::Message("please-restart"));
  // Until a new process answers: the old one answers until it is stopped.
  std::int64_t pid = first_pid;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (pid == first_pid && std::chrono::steady_clock::now() < give_up) {
    pm.send("plugins", sleet::Message("greet").set("who", "main"));
    if (auto m = pm.receive_for("plugins", 200ms)) pid = *m->get<std::int64_t>("pid");
  }
  std::printf("restarted: %s\n", pid != first_pid ? "yes, new process" : "no");

  pm.stop_all();
  std::printf("alive after stop_all: %s\n", pm.is_alive("plugins") ? "yes" : "no");
  return pid != first_pid ? 0 : 1;
}
