#include "system.hpp"

#include "sleet/detail/segment.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sleet::detail {

errc errc_from_errno(int err) noexcept {
  switch (err) {
    case ENOENT: return errc::not_found;
    case EEXIST: return errc::already_exists;
    case EACCES:
    case EPERM: return errc::permission_denied;
    case ENAMETOOLONG: return errc::invalid_name;
    case ETIMEDOUT: return errc::timeout;
    default: return errc::system_error;
  }
}

void throw_errno(int err, std::string_view object, std::string_view what) {
  std::string msg;
  msg.append(object).append(": ").append(what).append(": ").append(std::strerror(err));
  throw Error(errc_from_errno(err), msg);
}

std::string object_label(std::string_view kind, std::string_view name) {
  std::string s(kind);
  s.append(" '").append(printable_name(name)).append("'");
  return s;
}

std::string fingerprints_note(std::uint64_t held, std::uint64_t wanted) {
  char buf[64];
  std::snprintf(buf, sizeof buf, " (fingerprints %016llx and %016llx)",
                static_cast<unsigned long long>(held), static_cast<unsigned long long>(wanted));
  return buf;
}

std::string holes_problem(std::uint64_t blocks, std::uint64_t size) {
  if (blocks * 512 >= size) return "";
  return "has holes: " + std::to_string(blocks * 512) + " of " + std::to_string(size) +
         " bytes allocated (not made by sleet)";
}

void throw_error(errc code, std::string_view object, std::string_view detail) {
  std::string msg;
  msg.append(object).append(": ").append(detail);
  throw Error(code, msg);
}

}  // namespace sleet::detail
