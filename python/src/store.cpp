// python/src/store.cpp — KvStore for Python: _sleet.KvStore.
//
// A Python value is stored as the C++ type a C++ reader would ask for: str
// as std::string, int as std::int64_t, float as double, bool as bool, bytes
// as std::vector<std::uint8_t>, sleet.Message as sleet::Message, anything
// else as sleet::Dynamic. get() has to find which one a key holds: it
// tries the type it last saw for that key first (a small per-object map,
// so a steady reader makes one lookup), then the others.
#include <pybind11/stl.h>

#include <array>
#include <mutex>
#include <type_traits>
#include <unordered_map>

#include <sleet/kv_store.hpp>

#include "bindings.hpp"
#include "blocking.hpp"
#include "convert.hpp"
#include "fast.hpp"

namespace sleet::py_binding {
namespace {

enum class Kind : std::uint8_t { str, int64, float64, boolean, bytes, message, dynamic };
constexpr std::array kKinds{Kind::str,   Kind::int64,   Kind::float64, Kind::boolean,
                            Kind::bytes, Kind::message, Kind::dynamic};

template <class F>
decltype(auto) with_type(Kind k, F&& f) {
  switch (k) {
    case Kind::str: return f(std::type_identity<std::string>{});
    case Kind::int64: return f(std::type_identity<std::int64_t>{});
    case Kind::float64: return f(std::type_identity<double>{});
    case Kind::boolean: return f(std::type_identity<bool>{});
    case Kind::bytes: return f(std::type_identity<Dynamic::Bytes>{});
    case Kind::message: return f(std::type_identity<Message>{});
    case Kind::dynamic: break;
  }
  return f(std::type_identity<Dynamic>{});
}

// The C++ type a Python value is stored as.
Kind kind_of(py::handle h) {
  PyObject* o = h.ptr();
  if (PyBool_Check(o)) return Kind::boolean;
  if (PyLong_Check(o)) {
    int overflow = 0;
    PyLong_AsLongLongAndOverflow(o, &overflow);
    return overflow == 0 ? Kind::int64 : Kind::dynamic;  // Dynamic: an error, or pickled
  }
  if (PyFloat_Check(o)) return Kind::float64;
  if (PyUnicode_Check(o)) return Kind::str;
  if (PyBytes_Check(o)) return Kind::bytes;
  const py::object& mc = registry().message_class;
  if (mc && PyObject_IsInstance(o, mc.ptr()) == 1) return Kind::message;
  return Kind::dynamic;
}

class PyKv {
 public:
  PyKv(KvStore kv, bool pickle) : kv_(std::move(kv)), ctx_{"store '" + std::string(kv_.name()) + "'", pickle} {}

  void set(const std::string& key, py::handle v) {
    const Kind k = kind_of(v);
    with_type(k, [&](auto t) {
      using V = typename decltype(t)::type;
      kv_.set(key, Conv<V>::from(v, ctx_));
    });
    remember(key, k);
  }

  py::object get(const std::string& key, py::object fallback) {
    const Kind first = hint(key);
    std::optional<Error> mismatch;
    auto try_kind = [&](Kind k) -> std::optional<py::object> {
      try {
        return with_type(k, [&](auto t) -> std::optional<py::object> {
          using V = typename decltype(t)::type;
          auto v = kv_.get<V>(key);
          if (!v) return py::object(fallback);
          remember(key, k);
          return Conv<V>::to(*v, ctx_);
        });
      } catch (const Error& e) {
        if (e.value() != errc::type_mismatch) throw;
        mismatch = e;
        return std::nullopt;
      }
    };
    if (auto r = try_kind(first)) return *r;
    for (Kind k : kKinds) {
      if (k == first) continue;
      if (auto r = try_kind(k)) return *r;
    }
    throw *mismatch;  // a C++ type Python has no mapping for
  }

  // {key: value} of every entry; values of C++ types Python cannot read
  // are sleet.Opaque(type_name, raw bytes).
  py::dict get_all(py::object opaque) {
    py::dict out;
    for (const KvEntry& e : kv_.snapshot()) {
      py::object value;
      for (Kind k : kKinds) {
        with_type(k, [&](auto t) {
          using V = typename decltype(t)::type;
          if (!value && e.is<V>()) value = Conv<V>::to(e.as<V>(), ctx_);
        });
        if (value) break;
      }
      if (!value) {
        value = opaque(e.type_name, py::bytes(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size()));
      }
      out[Conv<std::string>::to(e.key, ctx_)] = value;
    }
    return out;
  }

  // fn(old or None) -> new, atomically; new must be of the stored value's
  // type (or, for a missing key, the type fn(None) returns).
  py::object update(const std::string& key, py::function fn) {
    Kind k = hint(key);
    bool found = false;
    for (Kind c : kKinds) {  // the stored type, if any
      found = with_type(c, [&](auto t) {
        using V = typename decltype(t)::type;
        try {
          return kv_.get<V>(key).has_value();
        } catch (const Error& e) {
          if (e.value() != errc::type_mismatch) throw;
          return false;
        }
      });
      if (found) {
        k = c;
        break;
      }
    }
    if (!found) k = kind_of(fn(py::none()));
    return with_type(k, [&](auto t) {
      using V = typename decltype(t)::type;
      std::optional<V> result;
      {
        // Without the GIL while we wait for the key's stripe lock; taken
        // again only to call fn (so a thread holding the lock and waiting
        // for the GIL cannot deadlock with one holding the GIL).
        py::gil_scoped_release release;
        kv_.update<V>(key, [&](std::optional<V> old) {
          py::gil_scoped_acquire acquire;
          // Conv<V>::from is the type check: a value of another type is a TypeError.
          return Conv<V>::from(fn(old ? Conv<V>::to(*old, ctx_) : py::none()), ctx_);
        });
      }
      remember(key, k);
      return get(key, py::none());
    });
  }

  bool compare_exchange(const std::string& key, py::handle expected, py::handle desired) {
    const Kind k = kind_of(expected);
    if (kind_of(desired) != k) {
      throw py::type_error(ctx_.label + ": compare_exchange of '" + key + "': expected and desired differ in type");
    }
    return with_type(k, [&](auto t) {
      using V = typename decltype(t)::type;
      return kv_.compare_exchange<V>(key, Conv<V>::from(expected, ctx_), Conv<V>::from(desired, ctx_));
    });
  }

  bool wait_for_change(const std::string& key, std::optional<double> timeout) {
    return wait_sliced([&](std::chrono::nanoseconds s) { return kv_.wait_for_change(key, s); }, timeout);
  }

  KvStore& kv() noexcept { return kv_; }
  const Ctx& ctx() const noexcept { return ctx_; }

 private:
  Kind hint(const std::string& key) {
    std::lock_guard lock(mu_);
    const auto it = hints_.find(key);
    return it == hints_.end() ? Kind::str : it->second;
  }
  void remember(const std::string& key, Kind k) {
    std::lock_guard lock(mu_);
    // Bounded: a reader of many keys keeps hints for the first ones only.
    if (hints_.size() < kMaxHints || hints_.count(key) != 0) hints_[key] = k;
  }
  static constexpr std::size_t kMaxHints = 4096;

  KvStore kv_;
  Ctx ctx_;
  std::mutex mu_;  // hints_ (update() calls back into Python from other threads)
  std::unordered_map<std::string, Kind> hints_;
};

// The fast methods (fast.hpp): get(key, default=None), set(key, value).
PyObject* fast_get(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("get", n, 1, 2);
  auto& k = *static_cast<PyKv*>(o);
  return k.get(Conv<std::string>::from(a[0], k.ctx()), arg_or_none(a, n, 1)).release().ptr();
}
PyObject* fast_set(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("set", n, 2, 2);
  auto& k = *static_cast<PyKv*>(o);
  k.set(Conv<std::string>::from(a[0], k.ctx()), a[1]);
  Py_RETURN_NONE;
}

KvOptions kv_options(std::size_t capacity, std::size_t max_key_size, std::size_t max_value_size,
                     std::size_t overflow_bytes, unsigned permissions) {
  KvOptions o;
  o.capacity = capacity;
  o.max_key_size = max_key_size;
  o.max_value_size = max_value_size;
  o.overflow_bytes = overflow_bytes;
  o.permissions = permissions;
  return o;
}

}  // namespace

void bind_store(py::module_& m) {
  py::class_<PyKv>(m, "KvStore")
      .def_static(
          "create",
          [](const std::string& name, std::size_t capacity, std::size_t max_key_size, std::size_t max_value_size,
             std::size_t overflow_bytes, unsigned permissions, bool pickle) {
            return new PyKv(KvStore::create(name, kv_options(capacity, max_key_size, max_value_size, overflow_bytes,
                                                             permissions)),
                            pickle);
          })
      .def_static(
          "open_or_create",
          [](const std::string& name, std::size_t capacity, std::size_t max_key_size, std::size_t max_value_size,
             std::size_t overflow_bytes, unsigned permissions, bool pickle) {
            return new PyKv(KvStore::open_or_create(name, kv_options(capacity, max_key_size, max_value_size,
                                                                     overflow_bytes, permissions)),
                            pickle);
          })
      .def_static("open", [](const std::string& name, bool pickle) { return new PyKv(KvStore::open(name), pickle); })
      .def_static("remove", [](const std::string& name) { return KvStore::remove(name); })
      .def("set", &PyKv::set)
      .def("get", &PyKv::get)
      .def("fast_methods",
           [](py::object self) {
             PyKv& k = self.cast<PyKv&>();
             py::dict d;
             d["get"] = fast_method<&fast_get>("get", {"key", "default"}, 1, &k, self);
             d["set"] = fast_method<&fast_set>("set", {"key", "value"}, 2, &k, self);
             return d;
           })
      .def("get_all", &PyKv::get_all)
      .def("update", &PyKv::update)
      .def("compare_exchange", &PyKv::compare_exchange)
      .def("wait_for_change", &PyKv::wait_for_change)
      .def("delete", [](PyKv& k, const std::string& key) { return k.kv().erase(key); })
      .def("contains", [](PyKv& k, const std::string& key) { return k.kv().contains(key); })
      .def("size", [](PyKv& k) { return k.kv().size(); })
      .def("clear", [](PyKv& k) { k.kv().clear(); })
      .def_property_readonly("name", [](PyKv& k) { return std::string(k.kv().name()); })
      .def_property_readonly("capacity", [](PyKv& k) { return k.kv().capacity(); })
      .def_property_readonly("max_key_size", [](PyKv& k) { return k.kv().max_key_size(); })
      .def_property_readonly("max_value_size", [](PyKv& k) { return k.kv().max_value_size(); });
}

}  // namespace sleet::py_binding
