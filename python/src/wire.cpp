// python/src/wire.cpp — the direct encoder and the bounded decoder of
// wire.hpp.
#include "wire.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include <sleet/dynamic.hpp>
#include <sleet/error.hpp>

namespace sleet::py_binding::wire {
namespace {

// The Variant alternatives of Dynamic (dynamic.hpp); the order is the wire
// format and these must follow it.
enum Index : std::int32_t { kNull, kBool, kInt, kFloat, kStr, kBytes, kList, kTuple, kDict, kPickled, kCount };
static_assert(kCount == std::variant_size_v<Dynamic::Variant>);
static_assert(std::is_same_v<std::variant_alternative_t<kStr, Dynamic::Variant>, std::string>);
static_assert(std::is_same_v<std::variant_alternative_t<kDict, Dynamic::Variant>, Dynamic::Dict>);
static_assert(std::is_same_v<std::variant_alternative_t<kPickled, Dynamic::Variant>, Dynamic::Pickled>);

// ---- encoding ----

class Writer {
 public:
  Writer(std::vector<std::byte>& out, const Ctx& ctx) : out_(out), ctx_(ctx) { out_.clear(); }

  void value(PyObject* o, int depth) {
    if (depth > Dynamic::kMaxDepth) {
      throw Error(errc::invalid_argument,
                  ctx_.label + ": value nested deeper than " + std::to_string(Dynamic::kMaxDepth) + " levels");
    }
    if (o == Py_None) return index(kNull);
    if (PyBool_Check(o)) {
      index(kBool);
      return put_u8(o == Py_True ? 1 : 0);
    }
    if (PyLong_Check(o)) {
      int overflow = 0;
      const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
      if (overflow == 0) {
        if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
        index(kInt);
        return put(static_cast<std::int64_t>(v));
      }
      if (!ctx_.pickle) int_from(o, ctx_);  // throws the out-of-range error
      return pickled(o);
    }
    if (PyFloat_Check(o)) {
      index(kFloat);
      return put(PyFloat_AS_DOUBLE(o));
    }
    if (PyUnicode_Check(o)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(o, &n);
      if (s == nullptr) throw py::error_already_set();
      index(kStr);
      return sized(s, static_cast<std::size_t>(n));
    }
    if (PyBytes_Check(o)) {
      index(kBytes);
      return sized(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
    }
    if (PyByteArray_Check(o)) {
      index(kBytes);
      return sized(PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o)));
    }
    if (PyList_Check(o)) {
      index(kList);
      // The size is read per item: pickling an item runs Python code, which
      // may change the list; the count written is the count of items written.
      const std::size_t at = count_placeholder();
      std::uint64_t n = 0;
      for (; static_cast<Py_ssize_t>(n) < PyList_GET_SIZE(o); ++n) {
        const py::object item = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(o, n));
        value(item.ptr(), depth + 1);
      }
      return patch_count(at, n);
    }
    if (PyTuple_Check(o)) {
      index(kTuple);
      const Py_ssize_t n = PyTuple_GET_SIZE(o);  // immutable
      put(static_cast<std::uint64_t>(n));
      for (Py_ssize_t i = 0; i < n; ++i) value(PyTuple_GET_ITEM(o, i), depth + 1);
      return;
    }
    if (PyDict_Check(o)) {
      index(kDict);
      const std::size_t at = count_placeholder();
      std::uint64_t n = 0;
      PyObject* k = nullptr;
      PyObject* v = nullptr;
      Py_ssize_t pos = 0;
      while (PyDict_Next(o, &pos, &k, &v)) {
        // Owned for the encoding of the pair (pickling may drop the dict's references).
        const py::object key = py::reinterpret_borrow<py::object>(k);
        const py::object val = py::reinterpret_borrow<py::object>(v);
        value(key.ptr(), depth + 1);
        value(val.ptr(), depth + 1);
        ++n;
      }
      return patch_count(at, n);
    }
    if (!ctx_.pickle) {
      throw py::type_error(ctx_.label + ": cannot send a " + std::string(Py_TYPE(o)->tp_name) +
                           " (only None, bool, int, float, str, bytes, list, tuple and dict travel; "
                           "open with pickle=True for other objects)");
    }
    pickled(o);
  }

 private:
  void pickled(PyObject* o) {
    const py::object b = registry().pickle_dumps(py::handle(o), -1);
    if (!PyBytes_Check(b.ptr())) throw py::type_error(ctx_.label + ": pickle.dumps returned no bytes");
    index(kPickled);
    sized(PyBytes_AS_STRING(b.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(b.ptr())));
  }
  void append(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  template <class V>
  void put(V v) {
    append(&v, sizeof v);
  }
  void put_u8(std::uint8_t v) { out_.push_back(static_cast<std::byte>(v)); }
  void index(Index i) { put(static_cast<std::int32_t>(i)); }
  // cereal's size tag (a 64-bit count), then the bytes.
  void sized(const char* p, std::size_t n) {
    put(static_cast<std::uint64_t>(n));
    append(p, n);
  }
  std::size_t count_placeholder() {
    const std::size_t at = out_.size();
    put(std::uint64_t{0});
    return at;
  }
  void patch_count(std::size_t at, std::uint64_t n) { std::memcpy(out_.data() + at, &n, sizeof n); }

  std::vector<std::byte>& out_;
  const Ctx& ctx_;
};

// ---- decoding ----

// Dict keys repeat from message to message ("topic", "id", ...): a str
// made once and kept (with its hash cached in the object) saves creating
// and hashing it per message. str is immutable, so sharing one object is
// invisible to the receiver. Direct-mapped on a hash of the UTF-8 bytes,
// guarded by the GIL, and never freed: it lives as long as the process,
// and the interpreter may be gone before static destructors run.
class KeyCache {
 public:
  static constexpr std::size_t kSlots = 512;       // a few hundred distinct keys
  static constexpr std::size_t kMaxKeyBytes = 48;  // longer keys are rare and made each time

  static KeyCache& get() {
    static KeyCache* c = new KeyCache();
    return *c;
  }
  // A new reference to the str of s[0, n), or nullptr with a Python error.
  PyObject* str(const char* s, std::size_t n) {
    if (n > kMaxKeyBytes) return make(s, n);
    Entry& e = slots_[detail::fnv1a(std::string_view(s, n)) % kSlots];
    if (e.obj != nullptr && e.len == n && std::memcmp(e.bytes, s, n) == 0) {
      Py_INCREF(e.obj);
      return e.obj;
    }
    PyObject* o = make(s, n);
    if (o == nullptr) return nullptr;
    Py_XDECREF(e.obj);
    Py_INCREF(o);
    e.obj = o;
    e.len = static_cast<std::uint32_t>(n);
    std::memcpy(e.bytes, s, n);
    return o;
  }
  // surrogateescape: bytes from a C++ peer that are not UTF-8 still arrive
  // (as Conv<std::string>::to does).
  static PyObject* make(const char* s, std::size_t n) {
    return PyUnicode_DecodeUTF8(s, static_cast<Py_ssize_t>(n), "surrogateescape");
  }

 private:
  struct Entry {
    PyObject* obj = nullptr;
    std::uint32_t len = 0;
    char bytes[kMaxKeyBytes];
  };
  Entry slots_[kSlots];
};

class Reader {
 public:
  Reader(const std::byte* in, std::size_t size, const Ctx& ctx) : p_(in), end_(in + size), size_(size), ctx_(ctx) {}

  py::object value(int depth, bool key = false) {
    if (depth > Dynamic::kMaxDepth) fail("nested deeper than " + std::to_string(Dynamic::kMaxDepth) + " levels");
    const auto i = get<std::int32_t>("a kind index");
    switch (i) {
      case kNull: return py::none();
      case kBool: {
        const auto b = get<std::uint8_t>("a bool");
        if (b > 1) fail("a bool of value " + std::to_string(b));
        return py::bool_(b == 1);
      }
      case kInt: return own(PyLong_FromLongLong(get<std::int64_t>("an int")));
      case kFloat: return own(PyFloat_FromDouble(get<double>("a float")));
      case kStr: {
        const std::size_t n = length(1, "str");
        const char* s = chars(n);
        return own(key ? KeyCache::get().str(s, n) : KeyCache::make(s, n));
      }
      case kBytes: {
        const std::size_t n = length(1, "bytes");
        return own(PyBytes_FromStringAndSize(chars(n), static_cast<Py_ssize_t>(n)));
      }
      case kList: {
        const std::size_t n = length(kMinValue, "list");
        py::object out = own(PyList_New(static_cast<Py_ssize_t>(n)));
        for (std::size_t k = 0; k < n; ++k) PyList_SET_ITEM(out.ptr(), k, value(depth + 1).release().ptr());
        return out;
      }
      case kTuple: {
        const std::size_t n = length(kMinValue, "tuple");
        py::object out = own(PyTuple_New(static_cast<Py_ssize_t>(n)));
        for (std::size_t k = 0; k < n; ++k) PyTuple_SET_ITEM(out.ptr(), k, value(depth + 1).release().ptr());
        return out;
      }
      case kDict: {
        const std::size_t n = length(2 * kMinValue, "dict");
        py::object out = own(PyDict_New());
        for (std::size_t k = 0; k < n; ++k) {
          const py::object key_obj = value(depth + 1, true);
          const py::object val = value(depth + 1);
          if (PyDict_SetItem(out.ptr(), key_obj.ptr(), val.ptr()) != 0) throw py::error_already_set();
        }
        return out;
      }
      case kPickled: {
        const std::size_t n = length(1, "pickled object");
        const char* s = chars(n);
        if (!ctx_.pickle) {
          throw Error(errc::decode_failed, ctx_.label +
                                               ": received a pickled object; open with pickle=True to "
                                               "unpickle it (unpickling runs code chosen by the sender)");
        }
        return registry().pickle_loads(py::bytes(s, n));
      }
      default: break;
    }
    fail("kind index " + std::to_string(i) + " is not a sleet::Dynamic kind");
  }

  void finish() const {
    if (p_ != end_) fail(std::to_string(end_ - p_) + " bytes after the value");
  }

 private:
  // Every value is at least its kind index.
  static constexpr std::size_t kMinValue = sizeof(std::int32_t);

  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  template <class V>
  V get(const char* what) {
    if (left() < sizeof(V)) fail(std::string("the record ends inside ") + what);
    V v;
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  // A count of items of at least `min_bytes` each, checked against the
  // bytes left before anything is allocated for it.
  std::size_t length(std::size_t min_bytes, const char* what) {
    const auto n = get<std::uint64_t>("a length");
    if (n > left() / min_bytes) {
      fail(std::string(what) + " of length " + std::to_string(n) + " in the " + std::to_string(left()) +
           " bytes left");
    }
    return static_cast<std::size_t>(n);
  }
  const char* chars(std::size_t n) {  // n <= left(): checked by length()
    const char* s = reinterpret_cast<const char*>(p_);
    p_ += n;
    return s;
  }
  static py::object own(PyObject* o) {
    if (o == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(o);
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(errc::decode_failed,
                ctx_.label + ": a record of " + std::to_string(size_) + " bytes is not a sleet::Dynamic: " + why);
  }

  const std::byte* p_;
  const std::byte* end_;
  std::size_t size_;
  const Ctx& ctx_;
};

}  // namespace

void encode(PyObject* o, const Ctx& ctx, std::vector<std::byte>& out) { Writer(out, ctx).value(o, 1); }

py::object decode(const std::byte* in, std::size_t size, const Ctx& ctx) {
  Reader r(in, size, ctx);
  py::object out = r.value(1);
  r.finish();
  return out;
}

}  // namespace sleet::py_binding::wire
