// python/src/convert.cpp — the non-inline conversions of convert.hpp.
#include "convert.hpp"

#include <sleet/error.hpp>

namespace sleet::py_binding {

Registry& registry() {
  // Leaked on purpose: the Python objects must not be released after the
  // interpreter is gone (static destructors run after Py_Finalize).
  static Registry* r = new Registry();
  return *r;
}

void throw_type(const Ctx& ctx, const char* expected, py::handle got) {
  throw py::type_error(ctx.label + ": expected " + expected + ", got " +
                       std::string(py::str(py::type::handle_of(got).attr("__name__"))));
}

std::int64_t int_from(py::handle h, const Ctx& ctx) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
  if (overflow != 0) {
    throw py::value_error(ctx.label + ": int " + std::string(py::str(h)) +
                          " is outside the 64-bit range the C++ side reads");
  }
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

Dynamic::Bytes Conv<Dynamic::Bytes>::from(py::handle h, const Ctx& ctx) {
  if (PyBytes_Check(h.ptr())) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(PyBytes_AS_STRING(h.ptr()));
    return Dynamic::Bytes(p, p + PyBytes_GET_SIZE(h.ptr()));
  }
  if (PyByteArray_Check(h.ptr())) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(PyByteArray_AS_STRING(h.ptr()));
    return Dynamic::Bytes(p, p + PyByteArray_GET_SIZE(h.ptr()));
  }
  if (PyMemoryView_Check(h.ptr())) return from(py::bytes(py::reinterpret_borrow<py::object>(h)), ctx);
  throw_type(ctx, kPython, h);
}

namespace {

Value field_from(py::handle h, const Ctx& ctx, const std::string& key) {
  PyObject* o = h.ptr();
  if (o == Py_None) return std::monostate{};
  if (PyBool_Check(o)) return o == Py_True;
  if (PyLong_Check(o)) return int_from(h, ctx);
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  if (PyUnicode_Check(o)) return Conv<std::string>::from(h, ctx);
  throw py::type_error(ctx.label + ": Message field '" + key +
                       "' must be None, bool, int, float or str, got " +
                       std::string(py::str(py::type::handle_of(h).attr("__name__"))));
}

}  // namespace

Message Conv<Message>::from(py::handle h, const Ctx& ctx) {
  if (!PyDict_Check(h.ptr())) throw_type(ctx, kPython, h);
  Message m;
  if (py::hasattr(h, "topic")) m.topic = Conv<std::string>::from(h.attr("topic"), ctx);
  for (auto [k, v] : py::reinterpret_borrow<py::dict>(h)) {
    if (!PyUnicode_Check(k.ptr())) {
      throw py::type_error(ctx.label + ": Message keys must be str, got " +
                           std::string(py::str(py::type::handle_of(k).attr("__name__"))));
    }
    std::string key = Conv<std::string>::from(k, ctx);
    Value value = field_from(v, ctx, key);
    m.fields.emplace(std::move(key), std::move(value));
  }
  return m;
}

py::object Conv<Message>::to(const Message& m, const Ctx& ctx) {
  py::object out = registry().message_class(Conv<std::string>::to(m.topic, ctx));
  for (const auto& [k, v] : m.fields) {
    py::object value = std::visit(
        [&ctx](const auto& x) -> py::object {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, std::monostate>) {
            return py::none();
          } else {
            return Conv<X>::to(x, ctx);
          }
        },
        v);
    PyObject_SetItem(out.ptr(), Conv<std::string>::to(k, ctx).ptr(), value.ptr());
  }
  return out;
}

Dynamic Conv<Dynamic>::from(py::handle h, const Ctx& ctx, int depth) {
  if (depth > Dynamic::kMaxDepth) {
    throw Error(errc::invalid_argument,
                ctx.label + ": value nested deeper than " + std::to_string(Dynamic::kMaxDepth) + " levels");
  }
  PyObject* o = h.ptr();
  if (o == Py_None) return Dynamic();
  if (PyBool_Check(o)) return Dynamic(o == Py_True);
  if (PyLong_Check(o)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow == 0) {
      if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
      return Dynamic(static_cast<std::int64_t>(v));
    }
    if (!ctx.pickle) int_from(h, ctx);  // throws the out-of-range error
  } else if (PyFloat_Check(o)) {
    return Dynamic(PyFloat_AS_DOUBLE(o));
  } else if (PyUnicode_Check(o)) {
    return Dynamic(Conv<std::string>::from(h, ctx));
  } else if (PyBytes_Check(o) || PyByteArray_Check(o)) {
    return Dynamic(Conv<Dynamic::Bytes>::from(h, ctx));
  } else if (PyList_Check(o) || PyTuple_Check(o)) {
    const bool tuple = PyTuple_Check(o);
    const Py_ssize_t n = tuple ? PyTuple_GET_SIZE(o) : PyList_GET_SIZE(o);
    std::vector<Dynamic> items;
    items.reserve(static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
      items.push_back(from(tuple ? PyTuple_GET_ITEM(o, i) : PyList_GET_ITEM(o, i), ctx, depth + 1));
    }
    if (tuple) return Dynamic(Dynamic::Tuple{std::move(items)});
    return Dynamic(std::move(items));
  } else if (PyDict_Check(o)) {
    Dynamic::Dict d;
    d.reserve(static_cast<std::size_t>(PyDict_GET_SIZE(o)));
    PyObject* k = nullptr;
    PyObject* v = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(o, &pos, &k, &v)) d.emplace_back(from(k, ctx, depth + 1), from(v, ctx, depth + 1));
    return Dynamic(std::move(d));
  }
  if (!ctx.pickle) {
    throw py::type_error(ctx.label + ": cannot send a " +
                         std::string(py::str(py::type::handle_of(h).attr("__name__"))) +
                         " (only None, bool, int, float, str, bytes, list, tuple and dict travel; "
                         "open with pickle=True for other objects)");
  }
  const py::bytes b = registry().pickle_dumps(h, -1);
  const std::string s = b;
  return Dynamic(Dynamic::Pickled{Dynamic::Bytes(s.begin(), s.end())});
}

py::object Conv<Dynamic>::to(const Dynamic& d, const Ctx& ctx) {
  return std::visit(
      [&ctx](const auto& x) -> py::object {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, std::monostate>) {
          return py::none();
        } else if constexpr (std::is_same_v<X, Dynamic::List>) {
          py::list out(x.size());
          for (std::size_t i = 0; i < x.size(); ++i) out[i] = to(x[i], ctx);
          return out;
        } else if constexpr (std::is_same_v<X, Dynamic::Tuple>) {
          py::tuple out(x.items.size());
          for (std::size_t i = 0; i < x.items.size(); ++i) out[i] = to(x.items[i], ctx);
          return out;
        } else if constexpr (std::is_same_v<X, Dynamic::Dict>) {
          py::dict out;
          for (const auto& [k, v] : x) out[to(k, ctx)] = to(v, ctx);
          return out;
        } else if constexpr (std::is_same_v<X, Dynamic::Pickled>) {
          if (!ctx.pickle) {
            throw Error(errc::decode_failed, ctx.label +
                                                 ": received a pickled object; open with pickle=True to "
                                                 "unpickle it (unpickling runs code chosen by the sender)");
          }
          return registry().pickle_loads(
              py::bytes(reinterpret_cast<const char*>(x.data.data()), x.data.size()));
        } else {
          return Conv<X>::to(x, ctx);
        }
      },
      d.variant());
}

}  // namespace sleet::py_binding
