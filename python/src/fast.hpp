// python/src/fast.hpp — the hot methods (send, receive, get, ...) as plain
// CPython METH_FASTCALL functions, bypassing pybind11's dispatcher.
//
// pybind11 spends 200-400 ns per call on this machine (argument vectors on
// the heap, type lookups by hashed name) where the call it wraps costs
// 20-50 ns. fast_method<Obj, F>(self) returns a builtin function bound to
// a capsule holding the C++ object's address and a strong reference to
// the pybind11 object that owns it (so the object lives as long as the
// function). The package binds these functions as instance attributes.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>

namespace sleet::py_binding {

namespace py = pybind11;

// Sets the Python error for the exception being handled (pybind11's
// translators, then ours for sleet::Error, as a pybind11 call would).
void set_error_from_current() noexcept;

using FastBody = PyObject* (*)(void* obj, PyObject* const* args, Py_ssize_t n);

// The parameter names of a fast method (for keyword arguments) and how
// many leading ones are required; every later one defaults to None.
struct FastParams {
  static constexpr int kMax = 3;
  const char* names[kMax] = {};
  Py_ssize_t count = 0;
  Py_ssize_t required = 0;
};

template <FastBody F>
FastParams& fast_params() {
  static FastParams p;
  return p;
}

template <FastBody F>
PyObject* fast_trampoline(PyObject* capsule, PyObject* const* args, Py_ssize_t n, PyObject* kwnames) {
  void* obj = PyCapsule_GetPointer(capsule, nullptr);
  if (obj == nullptr) return nullptr;
  const FastParams& p = fast_params<F>();
  PyObject* merged[FastParams::kMax];
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    // Keyword arguments into their positions; gaps are None.
    if (n > p.count) {
      PyErr_SetString(PyExc_TypeError, "too many positional arguments");
      return nullptr;
    }
    for (Py_ssize_t i = 0; i < FastParams::kMax; ++i) merged[i] = i < n ? args[i] : nullptr;
    Py_ssize_t last = n;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); ++k) {
      PyObject* kw = PyTuple_GET_ITEM(kwnames, k);
      Py_ssize_t j = 0;
      while (j < p.count && PyUnicode_CompareWithASCIIString(kw, p.names[j]) != 0) ++j;
      if (j == p.count || merged[j] != nullptr) {
        PyErr_Format(PyExc_TypeError, "unexpected or repeated keyword argument '%U'", kw);
        return nullptr;
      }
      merged[j] = args[n + k];
      last = std::max(last, j + 1);
    }
    for (Py_ssize_t i = 0; i < last; ++i) {
      if (merged[i] != nullptr) continue;
      if (i < p.required) {
        PyErr_Format(PyExc_TypeError, "missing required argument '%s'", p.names[i]);
        return nullptr;
      }
      merged[i] = Py_None;
    }
    args = merged;
    n = last;
  }
  try {
    return F(obj, args, n);
  } catch (...) {
    set_error_from_current();
    return nullptr;
  }
}

inline void release_owner(PyObject* capsule) { Py_XDECREF(static_cast<PyObject*>(PyCapsule_GetContext(capsule))); }

// `params`: the parameter names, the first `required` of them required.
template <FastBody F>
py::object fast_method(const char* name, std::initializer_list<const char*> params, Py_ssize_t required, void* obj,
                       py::handle owner) {
  FastParams& p = fast_params<F>();
  p.count = 0;
  for (const char* param : params) p.names[p.count++] = param;
  p.required = required;
  static PyMethodDef def{name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&fast_trampoline<F>)),
                         METH_FASTCALL | METH_KEYWORDS, nullptr};
  py::object cap = py::reinterpret_steal<py::object>(PyCapsule_New(obj, nullptr, &release_owner));
  if (!cap) throw py::error_already_set();
  Py_INCREF(owner.ptr());
  PyCapsule_SetContext(cap.ptr(), owner.ptr());
  PyObject* fn = PyCFunction_New(&def, cap.ptr());
  if (fn == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(fn);
}

// Argument helpers: positional only, as the package calls them.
inline void check_args(const char* name, Py_ssize_t n, Py_ssize_t min, Py_ssize_t max) {
  if (n < min || n > max) {
    throw py::type_error(std::string(name) + "() takes " + std::to_string(min) + " to " + std::to_string(max) +
                         " positional arguments, got " + std::to_string(n));
  }
}
inline std::optional<double> timeout_arg(PyObject* const* args, Py_ssize_t n, Py_ssize_t i) {
  if (n <= i || args[i] == Py_None) return std::nullopt;
  const double d = PyFloat_AsDouble(args[i]);
  if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return d;
}
inline py::object arg_or_none(PyObject* const* args, Py_ssize_t n, Py_ssize_t i) {
  return py::reinterpret_borrow<py::object>(n > i ? args[i] : Py_None);
}

}  // namespace sleet::py_binding
