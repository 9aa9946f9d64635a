// python/src/module.cpp — the _sleet extension module: errors, the registry
// of Python classes the package hands in at import, channel listing, and
// the pieces of bindings.hpp. Users import the package `sleet`
// (python/sleet/), never _sleet directly.
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>

#include <sleet/channel.hpp>
#include <sleet/dynamic.hpp>
#include <sleet/error.hpp>
#include <sleet/registry.hpp>

#include "bindings.hpp"
#include "convert.hpp"
#include "fast.hpp"
#include "wire.hpp"

namespace sleet::py_binding {
namespace {

// Every errc value from 1 to the last has a name and a Python class.
constexpr int kLastErrc = static_cast<int>(sleet::kLastErrc);

void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const Error& e) {
    py::object classes = registry().error_classes;
    py::object cls;
    if (classes && classes.contains(py::int_(static_cast<int>(e.value())))) {
      cls = classes[py::int_(static_cast<int>(e.value()))];
    } else {
      cls = py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
    }
    py::object exc = cls(e.what(), static_cast<int>(e.value()));
    PyErr_SetObject(cls.ptr(), exc.ptr());
  }
}

}  // namespace

void set_error_from_current() noexcept {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const Error&) {
    try {
      translate(std::current_exception());
    } catch (...) {
      PyErr_SetString(PyExc_RuntimeError, "sleet: an error while raising an error");
    }
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "sleet: unknown C++ exception");
  }
}

namespace {

template <class T>
std::string type_name_of() {
  return std::string(Channel<T>::type().name);
}

// The C++ cost of what the binding's Channel_int.send + try_receive wraps,
// ns per pair, for bench/python_bench.py's overhead row.
double cpp_send_receive_ns(const std::string& name, std::size_t n) {
  auto ch = Channel<std::int64_t>::open(name);
  py::gil_scoped_release release;
  const auto t0 = std::chrono::steady_clock::now();
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ch.send(static_cast<std::int64_t>(i));
    sum += ch.try_receive().value_or(0);
  }
  const auto t1 = std::chrono::steady_clock::now();
  if (sum != static_cast<std::int64_t>(n * (n - 1) / 2)) throw Error(errc::decode_failed, "bench: lost messages");
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
}

// For python/tests/test_wire.py only: both encoders and both decoders of
// an object, so a test can prove wire.hpp writes cereal's bytes.
py::bytes wire_encode(py::handle o, bool pickle) {
  wire::Buffer buf;
  wire::encode(o.ptr(), Ctx{"wire test", pickle}, buf.bytes());
  return py::bytes(reinterpret_cast<const char*>(buf.data()), buf.size());
}
py::bytes cereal_encode(py::handle o, bool pickle) {
  const Dynamic d = Conv<Dynamic>::from(o, Ctx{"wire test", pickle});
  std::vector<std::byte> out(Codec<Dynamic>::encode(d, nullptr, 0));  // measured, then written
  Codec<Dynamic>::encode(d, out.data(), out.size());
  return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
}
py::object wire_decode(const py::bytes& b, bool pickle) {
  const std::string_view s = b;
  return wire::decode(reinterpret_cast<const std::byte*>(s.data()), s.size(), Ctx{"wire test", pickle});
}
py::object cereal_decode(const py::bytes& b, bool pickle) {
  const std::string_view s = b;
  Dynamic d;
  Codec<Dynamic>::decode(reinterpret_cast<const std::byte*>(s.data()), s.size(), d);
  return Conv<Dynamic>::to(d, Ctx{"wire test", pickle});
}

}  // namespace
}  // namespace sleet::py_binding

PYBIND11_MODULE(_sleet, m) {
  namespace sb = sleet::py_binding;
  namespace py = pybind11;
  m.doc() = "sleet's C++ core; use the package `sleet`.";
  py::register_exception_translator(&sb::translate);

  m.def(
      "_init",
      [](py::object message_class, py::object error_classes) {
        auto& r = sb::registry();
        r.message_class = std::move(message_class);
        r.error_classes = std::move(error_classes);
        py::module_ pickle = py::module_::import("pickle");
        r.pickle_dumps = pickle.attr("dumps");
        r.pickle_loads = pickle.attr("loads");
      },
      "Called once by the package: the classes the module returns and raises.");
  m.def("errc_names", [] {
    py::dict d;
    for (int i = 1; i <= sb::kLastErrc; ++i) d[py::int_(i)] = std::string(sleet::to_string(static_cast<sleet::errc>(i)));
    return d;
  });
  m.def("type_names", [] {
    py::dict d;
    d["str"] = sb::type_name_of<std::string>();
    d["int"] = sb::type_name_of<std::int64_t>();
    d["float"] = sb::type_name_of<double>();
    d["bytes"] = sb::type_name_of<sleet::Dynamic::Bytes>();
    d["message"] = sb::type_name_of<sleet::Message>();
    d["object"] = sb::type_name_of<sleet::Dynamic>();
    return d;
  });
  m.def("list_channels", [] {
    py::list out;
    for (const auto& c : sleet::list_channels()) {
      py::dict d;
      d["name"] = c.name;
      d["kind"] = c.kind;
      d["topology"] = c.topology == sleet::Topology::spsc ? "spsc" : "mpmc";
      d["type_name"] = c.type_name;
      d["capacity"] = c.capacity;
      d["max_message_size"] = c.max_message_size;
      d["queued"] = c.queued;
      d["sent"] = c.sent;
      out.append(d);
    }
    return out;
  });
  m.def("_wire_encode", &sb::wire_encode, py::arg("value"), py::arg("pickle") = false);
  m.def("_cereal_encode", &sb::cereal_encode, py::arg("value"), py::arg("pickle") = false);
  m.def("_wire_decode", &sb::wire_decode, py::arg("data"), py::arg("pickle") = false);
  m.def("_cereal_decode", &sb::cereal_decode, py::arg("data"), py::arg("pickle") = false);
  m.def("cpp_send_receive_ns", &sb::cpp_send_receive_ns, py::arg("channel"), py::arg("n"));
  sb::bind_messaging(m);
  sb::bind_store(m);
  sb::bind_manager(m);
  sb::bind_sync(m);
}
