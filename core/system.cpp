#include "system.hpp"

#include <cerrno>
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
  s.append(" '").append(name).append("'");
  return s;
}

void throw_error(errc code, std::string_view object, std::string_view detail) {
  std::string msg;
  msg.append(object).append(": ").append(detail);
  throw Error(code, msg);
}

}  // namespace sleet::detail
