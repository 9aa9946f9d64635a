// sleet/codec.hpp — layer 4: how a T becomes bytes in a ring and back.
//
// Codec<T> is a customisation point. A codec provides
//
//   static constexpr std::string_view name;         // part of the type fingerprint
//   static constexpr std::size_t fixed_size;        // bytes of every encoding, or 0 if variable
//   static std::size_t encoded_size(const T&);      // optional: the size encode() will
//                                                   // write, known without encoding
//   static std::size_t encode(const T&, std::byte* out, std::size_t capacity);
//       // writes the encoding and returns its size; if it needs more than
//       // `capacity` bytes it returns the size it needs and `out` is garbage
//   static void decode(const std::byte* in, std::size_t size, T& out);
//       // throws sleet::Error(errc::decode_failed) on bytes it cannot read
//
// Trivially copyable types are copied raw. Every other type goes through
// cereal's portable-enough binary archives: std::string, std::vector,
// std::map, std::optional, std::variant, std::tuple, ... and user types with
// a `serialize` member or free function. Users may specialise Codec<T> for
// their own wire format.
//
// A codec with encoded_size() lets a channel claim exactly the space a value
// needs and encode straight into it (channel_io.hpp): the raw codec, and the
// cereal codec for std::string and vectors of numbers, have it. The cereal
// codec for other types encodes into whatever span it is given (a streambuf
// over that span, reused per thread), so the steady state of a send
// allocates nothing; a value that does not fit is measured to its full size
// so the error can say how large it was.
#pragma once

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cstddef>
#include <cstring>
#include <istream>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sleet/detail/platform.hpp"
#include "sleet/detail/type_name.hpp"
#include "sleet/error.hpp"

namespace sleet {

namespace detail {
// "raw codec for 'T': record of N bytes, expected M" (errc::decode_failed).
[[noreturn]] SLEET_COLD void throw_raw_size(std::string_view type, std::size_t size,
                                            std::size_t expected);
}  // namespace detail

template <class T, class Enable = void>
struct Codec;  // no codec for this T (yet)

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T>>> {
  static constexpr std::string_view name = "raw";
  static constexpr std::size_t fixed_size = sizeof(T);

  static constexpr std::size_t encoded_size(const T&) noexcept { return sizeof(T); }
  static std::size_t encode(const T& v, std::byte* out, std::size_t capacity) noexcept {
    if (capacity >= sizeof(T)) std::memcpy(out, &v, sizeof(T));
    return sizeof(T);
  }
  static void decode(const std::byte* in, std::size_t size, T& out) {
    if (SLEET_UNLIKELY(size != sizeof(T))) detail::throw_raw_size(detail::type_name<T>(), size, sizeof(T));
    std::memcpy(&out, in, sizeof(T));
  }
};

namespace detail {

// Writes into a fixed span; past its end it only counts, so the caller
// learns the size a value needs.
class SpanWriteBuffer final : public std::streambuf {
 public:
  void reset(std::byte* out, std::size_t capacity) noexcept {
    out_ = reinterpret_cast<char*>(out);
    capacity_ = capacity;
    size_ = 0;
  }
  std::size_t size() const noexcept { return size_; }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const auto len = static_cast<std::size_t>(n);
    if (len != 0 && size_ + len <= capacity_) std::memcpy(out_ + size_, s, len);
    size_ += len;
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }

 private:
  char* out_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

class SpanReadBuffer final : public std::streambuf {
 public:
  void reset(const std::byte* in, std::size_t size) noexcept {
    // The get area is never written through: std::streambuf just wants char*.
    char* p = const_cast<char*>(reinterpret_cast<const char*>(in));
    setg(p, p, p + size);
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

// cereal's binary format, read from a record with every length checked
// against the bytes left: a corrupted length field is decode_failed, not a
// container resized to whatever the field claims. (cereal's own
// BinaryInputArchive resizes first and reads after.) Values are written
// with cereal::BinaryOutputArchive; the formats are the same.
class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit BoundedInputArchive(SpanReadBuffer& in)
      : cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision>(this), in_(in) {}
  void loadBinary(void* data, std::size_t size) {
    if (size > in_.remaining()) {
      throw cereal::Exception("record ends " + std::to_string(size - in_.remaining()) +
                              " bytes early");
    }
    in_.sgetn(static_cast<char*>(data), static_cast<std::streamsize>(size));
  }
  std::size_t remaining() const noexcept { return in_.remaining(); }

 private:
  SpanReadBuffer& in_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
// A container of n elements needs at least n bytes in the record (for the
// usual element types), so a larger count is corruption.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
  ar.loadBinary(std::addressof(t.size), sizeof(t.size));
  if (static_cast<std::uint64_t>(t.size) > ar.remaining()) {
    throw cereal::Exception("length " + std::to_string(static_cast<std::uint64_t>(t.size)) +
                            " is more than the " + std::to_string(ar.remaining()) +
                            " bytes left in the record");
  }
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

// One stream per thread and direction, built once: constructing a
// std::ostream per message would allocate (locale) and cost far more than
// the copy.
struct ThreadStreams {
  SpanWriteBuffer write_buffer;
  SpanReadBuffer read_buffer;
  std::ostream out{&write_buffer};
  static ThreadStreams& get() {
    thread_local ThreadStreams streams;
    return streams;
  }
};

// A per-thread buffer of at least `size` bytes (grown once, then reused).
std::byte* encode_buffer(std::size_t size);

// std::string and std::vector of arithmetic types: cereal writes them as a
// 64-bit length and the raw elements; the codec does the same directly.
template <class T>
inline constexpr bool kFlatSequence = false;
template <>
inline constexpr bool kFlatSequence<std::string> = true;
template <class E, class A>
inline constexpr bool kFlatSequence<std::vector<E, A>> =
    std::is_arithmetic_v<E> && !std::is_same_v<E, bool>;

[[noreturn]] void throw_decode_failed(std::string_view type, std::size_t size,
                                      std::string_view why);

}  // namespace detail

template <class T>
struct Codec<T, std::enable_if_t<!std::is_trivially_copyable_v<T> &&
                                 cereal::traits::is_output_serializable<
                                     T, cereal::BinaryOutputArchive>::value &&
                                 cereal::traits::is_input_serializable<
                                     T, detail::BoundedInputArchive>::value>> {
  static constexpr std::string_view name = "cereal-binary";
  static constexpr std::size_t fixed_size = 0;

  static std::size_t encoded_size(const T& v) noexcept
    requires detail::kFlatSequence<T>
  {
    return sizeof(std::uint64_t) + v.size() * sizeof(typename T::value_type);
  }

  static std::size_t encode(const T& v, std::byte* out, std::size_t capacity) {
    if constexpr (detail::kFlatSequence<T>) {
      // The bytes cereal would write (a 64-bit length, then the elements),
      // without building an archive per message.
      const std::uint64_t n = v.size();
      const std::size_t bytes = n * sizeof(typename T::value_type);
      if (sizeof n + bytes <= capacity) {
        std::memcpy(out, &n, sizeof n);
        if (bytes != 0) std::memcpy(out + sizeof n, v.data(), bytes);
      }
      return sizeof n + bytes;
    }
    auto& s = detail::ThreadStreams::get();
    s.write_buffer.reset(out, capacity);
    {
      cereal::BinaryOutputArchive archive(s.out);
      archive(v);
    }
    return s.write_buffer.size();
  }
  static void decode(const std::byte* in, std::size_t size, T& out) {
    if constexpr (detail::kFlatSequence<T>) {
      std::uint64_t n = 0;
      constexpr std::size_t elem = sizeof(typename T::value_type);
      if (size < sizeof n) detail::throw_decode_failed(detail::type_name<T>(), size, "no length");
      std::memcpy(&n, in, sizeof n);
      if (n > (size - sizeof n) / elem || sizeof n + n * elem != size) {
        detail::throw_decode_failed(detail::type_name<T>(), size,
                                    "length " + std::to_string(n) + " does not match the record");
      }
      out.resize(n);
      if (n != 0) std::memcpy(out.data(), in + sizeof n, n * elem);
      return;
    }
    auto& s = detail::ThreadStreams::get();
    s.read_buffer.reset(in, size);
    try {
      detail::BoundedInputArchive archive(s.read_buffer);
      archive(out);
    } catch (const std::exception& e) {
      detail::throw_decode_failed(detail::type_name<T>(), size, e.what());
    }
    if (s.read_buffer.remaining() != 0) {
      detail::throw_decode_failed(detail::type_name<T>(), size, "trailing bytes after the value");
    }
  }
};

template <class T>
concept HasCodec = requires { Codec<T>::fixed_size; };

}  // namespace sleet

CEREAL_REGISTER_ARCHIVE(sleet::detail::BoundedInputArchive)
namespace cereal::traits::detail {
// Types with save_minimal/load_minimal (enums, for one) need to know which
// output archive pairs with ours; BinaryOutputArchive keeps its own pairing.
template <>
struct get_output_from_input<sleet::detail::BoundedInputArchive> {
  using type = cereal::BinaryOutputArchive;
};
}  // namespace cereal::traits::detail
