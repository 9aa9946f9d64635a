// python/src/manager.cpp — ProcessManager and this_process for Python.
//
// The C++ ProcessManager forks from its supervisor thread, which a Python
// process cannot survive running Python in; so every Python target is an
// argv target. The package turns a function into
// [sys.executable, "-m", "sleet._child", module, qualname] (as the spawn
// start method of multiprocessing does, the function must be importable).
// Every call that may wait runs without the GIL; hooks take it to call back.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>

#include <sleet/process_manager.hpp>
#include <sleet/this_process.hpp>

#include "bindings.hpp"
#include "blocking.hpp"
#include "convert.hpp"

namespace sleet::py_binding {
namespace {

RestartPolicy restart_policy(const std::string& s) {
  if (s == "never") return RestartPolicy::never;
  if (s == "on_failure") return RestartPolicy::on_failure;
  if (s == "always") return RestartPolicy::always;
  throw py::value_error("restart must be 'never', 'on_failure' or 'always', not '" + s + "'");
}

class PyManager {
 public:
  // on_event(event, name, pid) is called on the supervisor thread for
  // before_start, after_start, before_shutdown, before_restart.
  explicit PyManager(py::object on_event) : on_event_(std::make_shared<py::object>(std::move(on_event))) {
    ManagerOptions o;
    o.handle_signals = false;  // Python keeps SIGINT (KeyboardInterrupt)
    auto hook = [ev = on_event_](const char* event, const std::string& name, int pid) {
      py::gil_scoped_acquire acquire;
      try {
        (*ev)(event, name, pid);
      } catch (py::error_already_set& e) {
        e.discard_as_unraisable("sleet.ProcessManager hook");
      }
    };
    o.hooks.before_start = [hook](const std::string& n) { hook("before_start", n, 0); };
    o.hooks.after_start = [hook](const std::string& n, int pid) { hook("after_start", n, pid); };
    o.hooks.before_shutdown = [hook](const std::string& n) { hook("before_shutdown", n, 0); };
    o.hooks.before_restart = [hook](const std::string& n) { hook("before_restart", n, 0); };
    pm_ = std::make_unique<ProcessManager>(std::move(o));
  }
  ~PyManager() { close(); }
  PyManager(const PyManager&) = delete;
  PyManager& operator=(const PyManager&) = delete;

  // Stops every child and ends the supervisor (which may be waiting for
  // the GIL to run a hook: so without it).
  void close() {
    if (!pm_) return;
    py::gil_scoped_release release;
    pm_.reset();
  }

  ProcessManager& pm() {
    if (!pm_) throw Error(errc::closed, "ProcessManager: closed");
    return *pm_;
  }

  py::object receive(const std::string& name, std::optional<double> timeout, bool raise_timeout) {
    ProcessManager& p = pm();
    if (auto m = p.try_receive(name)) return Conv<Message>::to(*m, ctx_);
    // A target that is neither running nor restarting and has nothing
    // left to read is an error, not a wait until the timeout.
    auto r = wait_sliced(
        [&](std::chrono::nanoseconds s) -> std::optional<Message> {
          auto m = p.receive_for(name, s);
          if (m) return m;
          const TargetState st = p.status(name).state;
          if (st != TargetState::running && st != TargetState::restarting) {
            m = p.try_receive(name);
            if (!m) throw Error(errc::peer_dead, "ProcessManager: target '" + name + "' is " +
                                                     std::string(to_string(st)) + " and sent nothing more");
          }
          return m;
        },
        timeout);
    if (r) return Conv<Message>::to(*r, ctx_);
    if (raise_timeout) throw_timeout("ProcessManager: receive from '" + name + "'", timeout);
    return py::none();
  }

  Ctx ctx_{"ProcessManager", false};

 private:
  std::shared_ptr<py::object> on_event_;
  std::unique_ptr<ProcessManager> pm_;
};

py::dict status_dict(const TargetStatus& s) {
  py::dict d;
  d["name"] = s.name;
  d["state"] = std::string(to_string(s.state));
  d["pid"] = s.pid;
  d["restarts"] = s.restarts;
  d["exit_code"] = s.exit_code;
  d["exit_signal"] = s.exit_signal;
  d["error"] = s.error;
  return d;
}

}  // namespace

void bind_manager(py::module_& m) {
  using namespace std::chrono;
  py::class_<PyManager>(m, "ProcessManager")
      .def(py::init<py::object>())
      .def("close", &PyManager::close)
      .def("add_target",
           [](PyManager& p, const std::string& name, std::vector<std::string> argv, const std::string& restart,
              unsigned max_restarts, double backoff, double stop_grace, std::size_t capacity,
              std::size_t max_message_size) {
             TargetOptions o;
             o.restart = restart_policy(restart);
             o.max_restarts = max_restarts;
             o.backoff = milliseconds(static_cast<std::int64_t>(backoff * 1000));
             o.stop_grace = milliseconds(static_cast<std::int64_t>(stop_grace * 1000));
             o.channel_capacity = capacity;
             o.max_message_size = max_message_size;
             py::gil_scoped_release release;
             p.pm().add_target(name, std::move(argv), o);
           })
      .def("start", [](PyManager& p, const std::string& n) { py::gil_scoped_release r; p.pm().start(n); })
      .def("start_all", [](PyManager& p) { py::gil_scoped_release r; p.pm().start_all(); })
      .def("stop",
           [](PyManager& p, const std::string& n, std::optional<double> grace) {
             std::optional<milliseconds> g;
             if (grace) g = milliseconds(static_cast<std::int64_t>(*grace * 1000));
             py::gil_scoped_release r;
             p.pm().stop(n, g);
           })
      .def("stop_all", [](PyManager& p) { py::gil_scoped_release r; p.pm().stop_all(); })
      .def("restart", [](PyManager& p, const std::string& n) { py::gil_scoped_release r; p.pm().restart(n); })
      .def("is_alive", [](PyManager& p, const std::string& n) { return p.pm().is_alive(n); })
      .def("wait",
           [](PyManager& p, const std::string& n, std::optional<double> timeout) -> py::object {
             ProcessManager& pm = p.pm();
             bool done = false;
             std::optional<int> code;
             wait_sliced(
                 [&](nanoseconds s) {
                   bool timed_out = false;
                   code = pm.wait_for(n, s, &timed_out);
                   done = !timed_out;
                   return done;
                 },
                 timeout);
             if (!done) throw_timeout("ProcessManager: wait for '" + n + "'", timeout);
             return code ? py::object(py::int_(*code)) : py::object(py::none());
           })
      .def("status", [](PyManager& p, const std::string& n) { return status_dict(p.pm().status(n)); })
      .def("targets", [](PyManager& p) { return p.pm().targets(); })
      .def_property_readonly("namespace", [](PyManager& p) { return p.pm().ns(); })
      .def("active_channel_name", [](PyManager& p, const std::string& n) { return p.pm().active_channel_name(n); })
      .def("passive_channel_name", [](PyManager& p, const std::string& n) { return p.pm().passive_channel_name(n); })
      .def("send",
           [](PyManager& p, const std::string& n, py::handle msg) {
             Message m = Conv<Message>::from(msg, p.ctx_);
             ProcessManager& pm = p.pm();
             if (!wait_sliced([&](nanoseconds s) { return pm.send_for(n, m, s); }, std::nullopt)) {
               throw Error(errc::timeout, "ProcessManager: send to '" + n + "'");  // unreachable without a timeout
             }
           })
      .def("post",
           [](PyManager& p, const std::string& n, py::handle msg) {
             Message m = Conv<Message>::from(msg, p.ctx_);
             py::gil_scoped_release r;
             p.pm().post(n, m);
           })
      .def("receive", [](PyManager& p, const std::string& n,
                         std::optional<double> timeout) { return p.receive(n, timeout, true); })
      .def("try_receive", [](PyManager& p, const std::string& n) -> py::object {
        if (auto m = p.pm().try_receive(n)) return Conv<Message>::to(*m, p.ctx_);
        return py::none();
      });

  py::module_ tp = m.def_submodule("this_process", "the managed child's own channels");
  tp.def("managed", [] { return this_process::managed(); });
  tp.def("name", [] { return this_process::name(); });
  tp.def("active_channel", [] { return wrap_active_channel(this_process::active_channel()); });
  tp.def("passive_channel", [] { return wrap_passive_channel(this_process::passive_channel()); });
  tp.def(
      "request_stop", [](std::string reason) { py::gil_scoped_release r; this_process::request_stop(std::move(reason)); },
      py::arg("reason") = "");
  tp.def(
      "request_restart",
      [](std::string reason) { py::gil_scoped_release r; this_process::request_restart(std::move(reason)); },
      py::arg("reason") = "");
}

}  // namespace sleet::py_binding
