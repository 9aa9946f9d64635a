// sleet/codec.hpp — layer 4: how a T becomes bytes in a ring and back.
//
// Codec<T> is a customisation point. A codec provides
//
//   static constexpr std::string_view name;         // part of the type fingerprint
//   static constexpr std::size_t fixed_size;        // bytes of every encoding, or 0 if variable
//   static std::size_t encode(const T&, std::byte* out, std::size_t capacity);
//       // writes the encoding and returns its size; if it needs more than
//       // `capacity` bytes it returns the size it needs and `out` is garbage
//   static void decode(const std::byte* in, std::size_t size, T& out);
//       // throws sleet::Error(errc::decode_failed) on bytes it cannot read
//
// Trivially copyable types are copied raw. Users may specialise Codec<T>
// for their own wire format.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"

namespace sleet {

template <class T, class Enable = void>
struct Codec;  // no codec for this T (yet)

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T>>> {
  static constexpr std::string_view name = "raw";
  static constexpr std::size_t fixed_size = sizeof(T);

  static std::size_t encode(const T& v, std::byte* out, std::size_t capacity) noexcept {
    if (capacity >= sizeof(T)) std::memcpy(out, &v, sizeof(T));
    return sizeof(T);
  }
  static void decode(const std::byte* in, std::size_t size, T& out) {
    if (size != sizeof(T)) {
      throw Error(errc::decode_failed, "raw codec for '" + std::string(detail::type_name<T>()) +
                                           "': record of " + std::to_string(size) +
                                           " bytes, expected " + std::to_string(sizeof(T)));
    }
    std::memcpy(&out, in, sizeof(T));
  }
};

template <class T>
concept HasCodec = requires { Codec<T>::fixed_size; };

}  // namespace sleet
