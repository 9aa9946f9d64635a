// python/src/convert.hpp — Python objects to and from the C++ message types
// the binding carries: std::string, std::int64_t, double, bool, bytes
// (std::vector<std::uint8_t>), sleet::Message and sleet::Dynamic.
//
// Each C++ type has one Conv<T> with from(handle, ctx) (a Python object to
// T, TypeError/OverflowError naming the object when it does not fit) and
// to(value, ctx) (T to a new Python object). Ctx carries the object's label
// for messages and whether pickling is allowed (opt-in per object: an
// unpickled message runs code chosen by its sender).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include <sleet/dynamic.hpp>
#include <sleet/message.hpp>

namespace sleet::py_binding {

namespace py = pybind11;

struct Ctx {
  std::string label;  // "channel 'jobs'", for messages
  bool pickle = false;
};

// The Python classes the package registers at import (sleet/__init__.py).
struct Registry {
  py::object message_class;   // sleet.Message
  py::object error_classes;   // dict: errc value -> exception class
  py::object pickle_dumps;
  py::object pickle_loads;
};
Registry& registry();

[[noreturn]] void throw_type(const Ctx& ctx, const char* expected, py::handle got);

template <class T>
struct Conv;

template <>
struct Conv<std::string> {
  static constexpr const char* kPython = "str";
  static std::string from(py::handle h, const Ctx& ctx) {
    if (!PyUnicode_Check(h.ptr())) throw_type(ctx, kPython, h);
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(h.ptr(), &n);
    if (s == nullptr) throw py::error_already_set();
    return std::string(s, static_cast<std::size_t>(n));
  }
  static py::object to(const std::string& s, const Ctx&) {
    // surrogateescape: bytes from a C++ peer that are not UTF-8 still arrive.
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
    if (o == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(o);
  }
};

std::int64_t int_from(py::handle h, const Ctx& ctx);

template <>
struct Conv<std::int64_t> {
  static constexpr const char* kPython = "int";
  static std::int64_t from(py::handle h, const Ctx& ctx) {
    if (!PyLong_Check(h.ptr()) || PyBool_Check(h.ptr())) throw_type(ctx, kPython, h);
    return int_from(h, ctx);
  }
  static py::object to(std::int64_t v, const Ctx&) {
    return py::reinterpret_steal<py::object>(PyLong_FromLongLong(v));
  }
};

template <>
struct Conv<double> {
  static constexpr const char* kPython = "float";
  static double from(py::handle h, const Ctx& ctx) {
    if (PyFloat_Check(h.ptr())) return PyFloat_AS_DOUBLE(h.ptr());
    if (PyLong_Check(h.ptr()) && !PyBool_Check(h.ptr())) {
      const double d = PyLong_AsDouble(h.ptr());
      if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
      return d;
    }
    throw_type(ctx, kPython, h);
  }
  static py::object to(double v, const Ctx&) { return py::reinterpret_steal<py::object>(PyFloat_FromDouble(v)); }
};

template <>
struct Conv<bool> {
  static constexpr const char* kPython = "bool";
  static bool from(py::handle h, const Ctx& ctx) {
    if (!PyBool_Check(h.ptr())) throw_type(ctx, kPython, h);
    return h.ptr() == Py_True;
  }
  static py::object to(bool v, const Ctx&) { return py::bool_(v); }
};

template <>
struct Conv<Dynamic::Bytes> {
  static constexpr const char* kPython = "bytes";
  static Dynamic::Bytes from(py::handle h, const Ctx& ctx);
  static py::object to(const Dynamic::Bytes& v, const Ctx&) {
    return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
  }
};

template <>
struct Conv<Message> {
  static constexpr const char* kPython = "sleet.Message or dict";
  static Message from(py::handle h, const Ctx& ctx);
  static py::object to(const Message& m, const Ctx& ctx);
};

template <>
struct Conv<Dynamic> {
  static constexpr const char* kPython = "object";
  static Dynamic from(py::handle h, const Ctx& ctx) { return from(h, ctx, 1); }
  static Dynamic from(py::handle h, const Ctx& ctx, int depth);
  static py::object to(const Dynamic& d, const Ctx& ctx);
};

}  // namespace sleet::py_binding
