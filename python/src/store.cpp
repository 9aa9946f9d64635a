// python/src/store.cpp — KvStore for Python: _sleet.KvStore.
//
// A Python value is stored as the C++ type a C++ reader would ask for: str
// as std::string, int as std::int64_t, float as double, bool as bool, bytes
// as std::vector<std::uint8_t>, sleet.Message as sleet::Message, anything
// else as sleet::Dynamic. get() reads a value's bytes with its type
// fingerprint in one lookup (KvStore::get_encoded) and decodes them as
// that type; a Dynamic goes straight to Python objects (wire.hpp).
#include <pybind11/stl.h>

#include <array>
#include <type_traits>

#include <sleet/kv_store.hpp>

#include "bindings.hpp"
#include "blocking.hpp"
#include "convert.hpp"
#include "fast.hpp"
#include "wire.hpp"

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

// The kind whose C++ type has fingerprint `fp` (as KvStore stores it).
std::optional<Kind> kind_of_fingerprint(std::uint64_t fp) {
  static const auto kFingerprints = [] {
    std::array<std::uint64_t, kKinds.size()> a{};
    for (std::size_t i = 0; i < kKinds.size(); ++i) {
      a[i] = with_type(kKinds[i], [](auto t) {
        using V = typename decltype(t)::type;
        return detail::fingerprint<V>(Codec<V>::name);
      });
    }
    return a;
  }();
  for (std::size_t i = 0; i < kKinds.size(); ++i) {
    if (kFingerprints[i] == fp) return kKinds[i];
  }
  return std::nullopt;
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
  }

  // One lookup: the value's bytes and type fingerprint (get_encoded), then
  // the decoder of that type; a Dynamic straight into Python objects
  // (wire.hpp).
  py::object get(const std::string& key, py::object fallback) {
    wire::Buffer buf;
    const std::optional<std::uint64_t> fp = kv_.get_encoded(key, buf.bytes());
    if (!fp) return fallback;
    const std::optional<Kind> k = kind_of_fingerprint(*fp);
    if (!k) return get_typed(key, fallback);  // throws the type mismatch
    try {
      if (*k == Kind::dynamic) return wire::decode(buf.data(), buf.size(), ctx_);
      return with_type(*k, [&](auto t) -> py::object {
        using V = typename decltype(t)::type;
        V v{};
        Codec<V>::decode(buf.data(), buf.size(), v);
        return Conv<V>::to(v, ctx_);
      });
    } catch (const Error& e) {
      if (e.value() != errc::decode_failed) throw;
      // Read again through the typed get, whose error names the store and
      // the key (and which returns the value if a writer replaced it meanwhile).
      return get_typed(key, fallback);
    }
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
    Kind k = Kind::dynamic;
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
  // get() by trying each type in turn: errc::type_mismatch for a value of a
  // C++ type Python has no mapping for.
  py::object get_typed(const std::string& key, py::object fallback) {
    std::optional<Error> mismatch;
    for (Kind k : kKinds) {
      try {
        return with_type(k, [&](auto t) -> py::object {
          using V = typename decltype(t)::type;
          auto v = kv_.get<V>(key);
          return v ? Conv<V>::to(*v, ctx_) : fallback;
        });
      } catch (const Error& e) {
        if (e.value() != errc::type_mismatch) throw;
        mismatch = e;
      }
    }
    throw *mismatch;
  }

  KvStore kv_;
  Ctx ctx_;
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
