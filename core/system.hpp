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

// " (fingerprints <held> and <wanted>)", in hex: what tells apart two
// types whose names are spelt the same (another codec or definition).
std::string fingerprints_note(std::uint64_t held, std::uint64_t wanted);

// Every page of a segment sleet made was allocated at creation: "" if a
// file of `size` bytes has `blocks` (512-byte units) for all of them, else
// what is wrong ("has holes: ..."). A file with holes is refused before it
// is mapped: touching a hole of a tmpfs file allocates it.
std::string holes_problem(std::uint64_t blocks, std::uint64_t size);

// Throws Error(code, "<kind> '<name>': <detail>").
[[noreturn]] void throw_error(errc code, std::string_view object, std::string_view detail);

}  // namespace sleet::detail
