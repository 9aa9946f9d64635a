// sleet/dynamic.hpp — Dynamic: a dynamically typed value, the message type
// that C++ and Python processes share when neither side wants a fixed type.
//
//   auto ch = sleet::Channel<sleet::Dynamic>::open_or_create("jobs");
//   ch.send(sleet::Dynamic::dict({{"path", "/tmp/a.png"}, {"width", 640}}));
//   sleet::Dynamic m = ch.receive();
//   if (const auto* w = m.find("width")) use(w->as<std::int64_t>());
//
// A Dynamic holds one of: null, bool, 64-bit integer, double, string (UTF-8
// text), bytes, list, tuple, dict (keys are Dynamics too, in insertion
// order, as a Python dict keeps them) or a pickled Python object (opaque
// bytes that only a Python process with pickling enabled turns back into an
// object). That is exactly what the Python module (python/) maps to and
// from None, bool, int, float, str, bytes, list, tuple and dict, so a
// Channel<Dynamic>, Topic<Dynamic> or a Dynamic store value is read the
// same way by both languages.
//
// Encoding: cereal's binary archive (codec.hpp), a one-byte kind index
// then the payload; the type fingerprint is that of sleet::Dynamic. Decoding
// is bounded like every cereal decode (a length past the record is an
// error) and nesting deeper than kMaxDepth is errc::decode_failed, so a
// hostile record cannot exhaust the reader's stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "sleet/error.hpp"

namespace sleet {

class Dynamic {
 public:
  // Nesting bound for encode and decode: deeper is an error, not a stack
  // overflow. 64 levels is far beyond any message a person writes.
  static constexpr int kMaxDepth = 64;

  using Bytes = std::vector<std::uint8_t>;
  using List = std::vector<Dynamic>;
  struct Tuple {
    std::vector<Dynamic> items;
    bool operator==(const Tuple&) const = default;
    template <class Archive>
    void serialize(Archive& ar) {
      ar(items);
    }
  };
  using Dict = std::vector<std::pair<Dynamic, Dynamic>>;
  struct Pickled {
    Bytes data;
    bool operator==(const Pickled&) const = default;
    template <class Archive>
    void serialize(Archive& ar) {
      ar(data);
    }
  };
  // The order is the wire format: a new kind goes at the end.
  using Variant = std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes, List,
                               Tuple, Dict, Pickled>;

  Dynamic() = default;
  Dynamic(std::nullptr_t) {}
  Dynamic(bool v) : v_(v) {}
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
  Dynamic(I v) : v_(static_cast<std::int64_t>(v)) {}
  Dynamic(double v) : v_(v) {}
  Dynamic(const char* v) : v_(std::string(v)) {}
  Dynamic(std::string v) : v_(std::move(v)) {}
  Dynamic(std::string_view v) : v_(std::string(v)) {}
  Dynamic(Bytes v) : v_(std::move(v)) {}
  Dynamic(List v) : v_(std::move(v)) {}
  Dynamic(Tuple v) : v_(std::move(v)) {}
  Dynamic(Dict v) : v_(std::move(v)) {}
  Dynamic(Pickled v) : v_(std::move(v)) {}

  static Dynamic list(std::initializer_list<Dynamic> items) { return Dynamic(List(items)); }
  static Dynamic dict(std::initializer_list<std::pair<Dynamic, Dynamic>> items) {
    return Dynamic(Dict(items));
  }

  bool is_null() const noexcept { return std::holds_alternative<std::monostate>(v_); }
  template <class T>
  bool is() const noexcept {
    return std::holds_alternative<T>(v_);
  }
  // The value as a T; errc::type_mismatch if it holds something else.
  template <class T>
  const T& as() const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    throw Error(errc::type_mismatch, std::string("sleet::Dynamic: holds ") + std::string(kind_name()) +
                                         ", not the type asked for");
  }
  // A dict's value for a string key, or nullptr (also when not a dict).
  const Dynamic* find(std::string_view key) const noexcept {
    const Dict* d = std::get_if<Dict>(&v_);
    if (d == nullptr) return nullptr;
    for (const auto& [k, v] : *d) {
      const std::string* s = std::get_if<std::string>(&k.v_);
      if (s != nullptr && *s == key) return &v;
    }
    return nullptr;
  }

  const Variant& variant() const noexcept { return v_; }
  Variant& variant() noexcept { return v_; }
  std::string_view kind_name() const noexcept {
    static constexpr std::string_view kNames[] = {"null", "bool",  "int",  "float", "str",
                                                  "bytes", "list", "tuple", "dict", "pickled"};
    return kNames[v_.index()];
  }

  bool operator==(const Dynamic&) const = default;

  template <class Archive>
  void serialize(Archive& ar) {
    DepthGuard guard;
    ar(v_);
  }

 private:
  // Counts nesting on this thread while a value is encoded or decoded.
  struct DepthGuard {
    DepthGuard() {
      if (++depth() > kMaxDepth) {
        --depth();
        throw Error(errc::decode_failed,
                    "sleet::Dynamic: nested deeper than " + std::to_string(kMaxDepth) + " levels");
      }
    }
    ~DepthGuard() { --depth(); }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    static int& depth() noexcept {
      thread_local int d = 0;
      return d;
    }
  };

  Variant v_;
};

}  // namespace sleet
