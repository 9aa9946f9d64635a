// python/src/sync.cpp — Mutex, Semaphore, Event and SharedValue for Python.
// Waits go through wait_sliced (no GIL, Ctrl-C between slices).
#include <pybind11/stl.h>

#include <sleet/event.hpp>
#include <sleet/mutex.hpp>
#include <sleet/semaphore.hpp>
#include <sleet/shared_value.hpp>

#include "bindings.hpp"
#include "blocking.hpp"

namespace sleet::py_binding {
namespace {

// fetch_add: C++ has it for integers; a double adds in a compare_exchange
// loop (what std::atomic<double>::fetch_add does too).
template <class T>
T add(SharedValue<T>& v, T d) {
  if constexpr (std::is_integral_v<T>) {
    return v.fetch_add(d);
  } else {
    T old = v.load();
    while (!v.compare_exchange(old, old + d)) {
    }
    return old;
  }
}

template <class T>
void bind_value(py::module_& m, const char* name) {
  using V = SharedValue<T>;
  py::class_<V>(m, name)
      .def_static("create", [](const std::string& n, T initial, unsigned permissions) {
        ValueOptions o;
        o.permissions = permissions;
        return V::create(n, initial, o);
      })
      .def_static("open", [](const std::string& n) { return V::open(n); })
      .def_static("open_or_create", [](const std::string& n, T initial, unsigned permissions) {
        ValueOptions o;
        o.permissions = permissions;
        return V::open_or_create(n, initial, o);
      })
      .def_static("remove", [](const std::string& n) { return V::remove(n); })
      .def("load", [](const V& v) { return v.load(); })
      .def("store", [](V& v, T x) { v.store(x); })
      .def("exchange", [](V& v, T x) { return v.exchange(x); })
      .def("compare_exchange", [](V& v, T expected, T desired) { return v.compare_exchange(expected, desired); })
      .def("fetch_add", [](V& v, T d) { return add(v, d); })
      .def("fetch_sub", [](V& v, T d) { return add(v, -d); })
      .def_property_readonly("name", [](const V& v) { return std::string(v.name()); });
}

}  // namespace

void bind_sync(py::module_& m) {
  py::class_<Mutex>(m, "Mutex")
      .def_static("create",
                  [](const std::string& n, unsigned permissions) {
                    MutexOptions o;
                    o.permissions = permissions;
                    return Mutex::create(n, o);
                  })
      .def_static("open", [](const std::string& n) { return Mutex::open(n); })
      .def_static("open_or_create",
                  [](const std::string& n, unsigned permissions) {
                    MutexOptions o;
                    o.permissions = permissions;
                    return Mutex::open_or_create(n, o);
                  })
      .def_static("remove", [](const std::string& n) { return Mutex::remove(n); })
      .def(
          "lock",
          [](Mutex& mu, std::optional<double> timeout) {
            if (mu.try_lock()) return true;
            return wait_sliced([&mu](std::chrono::nanoseconds s) { return mu.lock_for(s); }, timeout);
          },
          py::arg("timeout") = py::none())
      .def("try_lock", [](Mutex& mu) { return mu.try_lock(); })
      .def("unlock", [](Mutex& mu) { mu.unlock(); })
      .def_property_readonly("owner_died", [](const Mutex& mu) { return mu.owner_died(); })
      .def_property_readonly("name", [](const Mutex& mu) { return std::string(mu.name()); });

  py::class_<Semaphore>(m, "Semaphore")
      .def_static("create",
                  [](const std::string& n, std::uint32_t initial, std::uint32_t max, unsigned permissions) {
                    SemaphoreOptions o;
                    o.max = max;
                    o.permissions = permissions;
                    return Semaphore::create(n, initial, o);
                  })
      .def_static("open", [](const std::string& n) { return Semaphore::open(n); })
      .def_static("open_or_create",
                  [](const std::string& n, std::uint32_t initial, std::uint32_t max, unsigned permissions) {
                    SemaphoreOptions o;
                    o.max = max;
                    o.permissions = permissions;
                    return Semaphore::open_or_create(n, initial, o);
                  })
      .def_static("remove", [](const std::string& n) { return Semaphore::remove(n); })
      .def(
          "acquire",
          [](Semaphore& s, std::optional<double> timeout) {
            if (s.try_acquire()) return true;
            return wait_sliced([&s](std::chrono::nanoseconds d) { return s.acquire_for(d); }, timeout);
          },
          py::arg("timeout") = py::none())
      .def("try_acquire", [](Semaphore& s) { return s.try_acquire(); })
      .def("release", [](Semaphore& s, std::uint32_t n) { s.release(n); }, py::arg("n") = 1)
      .def_property_readonly("value", [](const Semaphore& s) { return s.value(); })
      .def_property_readonly("max", [](const Semaphore& s) { return s.max(); })
      .def_property_readonly("name", [](const Semaphore& s) { return std::string(s.name()); });
  m.attr("kSemaphoreMax") = kSemaphoreMax;

  py::class_<Event>(m, "Event")
      .def_static("create",
                  [](const std::string& n, bool initially_set, unsigned permissions) {
                    EventOptions o;
                    o.initially_set = initially_set;
                    o.permissions = permissions;
                    return Event::create(n, o);
                  })
      .def_static("open", [](const std::string& n) { return Event::open(n); })
      .def_static("open_or_create",
                  [](const std::string& n, bool initially_set, unsigned permissions) {
                    EventOptions o;
                    o.initially_set = initially_set;
                    o.permissions = permissions;
                    return Event::open_or_create(n, o);
                  })
      .def_static("remove", [](const std::string& n) { return Event::remove(n); })
      .def("set", [](Event& e) { e.set(); })
      .def("clear", [](Event& e) { e.clear(); })
      .def("is_set", [](const Event& e) { return e.is_set(); })
      .def(
          "wait",
          [](Event& e, std::optional<double> timeout) {
            if (e.is_set()) return true;
            return wait_sliced([&e](std::chrono::nanoseconds d) { return e.wait_for(d); }, timeout);
          },
          py::arg("timeout") = py::none())
      .def_property_readonly("name", [](const Event& e) { return std::string(e.name()); });

  bind_value<std::int64_t>(m, "SharedValue_int");
  bind_value<double>(m, "SharedValue_float");
}

}  // namespace sleet::py_binding
