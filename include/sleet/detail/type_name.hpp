// sleet/detail/type_name.hpp — a type's name at compile time, and the
// fingerprint stored in segments so that opening a channel with another
// message type is an error, not a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
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

// type_name() as a person would write it: "std::string", not
// "std::__cxx11::basic_string<char>". For messages and listings only; the
// fingerprint hashes the compiler's spelling.
inline std::string readable_type_name(std::string_view raw) {
  std::string s(raw);
  auto replace_all = [&s](std::string_view from, std::string_view to) {
    for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos)) {
      s.replace(pos, from.size(), to);
      pos += to.size();
    }
  };
  replace_all("std::__cxx11::basic_string<char>", "std::string");
  replace_all("std::basic_string<char>", "std::string");
  replace_all("std::__cxx11::", "std::");
  return s;
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
