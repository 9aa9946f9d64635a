// sleet/detail/type_name.hpp — a type's name at compile time, and the
// fingerprint stored in segments so that opening a channel with another
// message type is an error, not a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sleet::detail {

template <class T>
constexpr std::string_view type_name() noexcept {
  // GCC: "... [with T = int; std::string_view = ...]", Clang: "... [T = int]".
  std::string_view p = __PRETTY_FUNCTION__;
  const std::size_t start = p.find("T = ") + 4;
  std::size_t end = p.find(';', start);
  if (end == std::string_view::npos) end = p.rfind(']');
  return p.substr(start, end - start);
}

constexpr std::uint64_t fnv1a(std::string_view s,
                              std::uint64_t h = 0xcbf29ce484222325ull) noexcept {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Hash of the type's name, its size and the codec's name.
template <class T>
constexpr std::uint64_t fingerprint(std::string_view codec) noexcept {
  std::uint64_t h = fnv1a(type_name<T>());
  h = fnv1a(codec, h ^ (sizeof(T) * 0x9e3779b97f4a7c15ull));
  return h;
}

}  // namespace sleet::detail
