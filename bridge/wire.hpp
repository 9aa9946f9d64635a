// bridge/wire.hpp — the bytes of one bridged message on a NATS subject.
//
//   0        4        6        8                16               24
//   +--------+--------+--------+----------------+----------------+
//   | magic  | version| namelen| fingerprint    | origin host id |
//   +--------+--------+--------+----------------+----------------+
//   24               32               40
//   +----------------+----------------+-----------+----------------------+
//   | session        | sequence       | type name | encoded message ...  |
//   +----------------+----------------+-----------+----------------------+
//
// Integers are little-endian (the bridge carries raw codec bytes, which
// already tie both hosts to one byte order; the header says so plainly).
// `session` is random per exporter start, `sequence` counts from 1 within
// it. kWireVersion changes whenever this layout does; a receiver refuses
// another version.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sleet::bridge_wire {

inline constexpr std::uint32_t kMagic = 0x52424c53;  // "SLBR" read as little-endian
inline constexpr std::uint16_t kWireVersion = 1;
inline constexpr std::size_t kHeaderSize = 40;
inline constexpr std::size_t kMaxTypeName = 191;  // a segment header's type_name holds 191 + NUL

struct Header {
  std::uint64_t fingerprint = 0;
  std::uint64_t origin = 0;
  std::uint64_t session = 0;
  std::uint64_t sequence = 0;
  std::string_view type_name;  // points into the message
  const std::byte* payload = nullptr;
  std::size_t payload_size = 0;
};

namespace detail {
template <class U>
inline void put(std::byte* at, U v) noexcept {
  static_assert(std::endian::native == std::endian::little, "the bridge's wire format is little-endian");
  std::memcpy(at, &v, sizeof v);
}
template <class U>
inline U get(const std::byte* at) noexcept {
  U v;
  std::memcpy(&v, at, sizeof v);
  return v;
}
}  // namespace detail

// Writes header + type name into `out` (resized), leaving room for
// `payload_size` bytes after it; returns where the payload goes.
inline std::byte* encode_header(std::vector<std::byte>& out, const Header& h, std::size_t payload_size) {
  const std::size_t name = std::min(h.type_name.size(), kMaxTypeName);
  out.resize(kHeaderSize + name + payload_size);
  std::byte* p = out.data();
  detail::put<std::uint32_t>(p, kMagic);
  detail::put<std::uint16_t>(p + 4, kWireVersion);
  detail::put<std::uint16_t>(p + 6, static_cast<std::uint16_t>(name));
  detail::put<std::uint64_t>(p + 8, h.fingerprint);
  detail::put<std::uint64_t>(p + 16, h.origin);
  detail::put<std::uint64_t>(p + 24, h.session);
  detail::put<std::uint64_t>(p + 32, h.sequence);
  std::memcpy(p + kHeaderSize, h.type_name.data(), name);
  return p + kHeaderSize + name;
}

// Parses a received message; an error string says what is wrong with it.
inline std::optional<Header> decode_header(const std::byte* p, std::size_t n, std::string& error) {
  if (n < kHeaderSize) {
    error = "a message of " + std::to_string(n) + " bytes is shorter than the bridge header (" +
            std::to_string(kHeaderSize) + ")";
    return std::nullopt;
  }
  if (detail::get<std::uint32_t>(p) != kMagic) {
    error = "a message that is not from a sleet bridge (bad magic)";
    return std::nullopt;
  }
  const auto version = detail::get<std::uint16_t>(p + 4);
  if (version != kWireVersion) {
    error = "a message of bridge wire version " + std::to_string(version) + ", this build reads " +
            std::to_string(kWireVersion);
    return std::nullopt;
  }
  const auto name = detail::get<std::uint16_t>(p + 6);
  if (name > kMaxTypeName || kHeaderSize + name > n) {
    error = "a message whose type name (" + std::to_string(name) + " bytes) overruns it";
    return std::nullopt;
  }
  Header h;
  h.fingerprint = detail::get<std::uint64_t>(p + 8);
  h.origin = detail::get<std::uint64_t>(p + 16);
  h.session = detail::get<std::uint64_t>(p + 24);
  h.sequence = detail::get<std::uint64_t>(p + 32);
  h.type_name = std::string_view(reinterpret_cast<const char*>(p + kHeaderSize), name);
  h.payload = p + kHeaderSize + name;
  h.payload_size = n - kHeaderSize - name;
  return h;
}

}  // namespace sleet::bridge_wire
