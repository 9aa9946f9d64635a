// Internals shared by the KvStore sources (kv_store.cpp, kv_write.cpp).
#pragma once

#include <string>
#include <string_view>

#include "sleet/detail/segment.hpp"
#include "sleet/detail/type_name.hpp"

namespace sleet::detail {

// The segment fingerprint of every store (the value types live in KvType).
inline constexpr std::uint64_t kKvFingerprint = fnv1a("sleet::KvStore");

// "kv store '<name>'", the prefix of every message.
std::string kv_describe(std::string_view name);
// A key for a message: quoted, long keys shortened.
std::string kv_quoted(std::string_view key);

}  // namespace sleet::detail
