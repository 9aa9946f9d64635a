// core/system.hpp — the one place where errno becomes sleet::errc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sleet/error.hpp"

namespace sleet::detail {

// Maps errno to an errc (ENOENT -> not_found, EEXIST -> already_exists,
// EACCES/EPERM -> permission_denied, anything else -> system_error).
errc errc_from_errno(int err) noexcept;

// Throws Error(errc_from_errno(err), "<object>: <what>: <strerror(err)>").
[[noreturn]] void throw_errno(int err, std::string_view object, std::string_view what);

// How errors name an object: "<kind> '<name>'", e.g. "topic 'ticks'".
std::string object_label(std::string_view kind, std::string_view name);

inline bool is_pow2(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// Throws Error(code, "<kind> '<name>': <detail>").
[[noreturn]] void throw_error(errc code, std::string_view object, std::string_view detail);

}  // namespace sleet::detail
