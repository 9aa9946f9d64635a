// Error category of sleet::errc.
#include "sleet/error.hpp"

namespace sleet {

std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::invalid_name: return "invalid_name";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::not_sleet: return "not_sleet";
    case errc::version_mismatch: return "version_mismatch";
    case errc::kind_mismatch: return "kind_mismatch";
    case errc::type_mismatch: return "type_mismatch";
    case errc::too_large: return "too_large";
    case errc::full: return "full";
    case errc::timeout: return "timeout";
    case errc::closed: return "closed";
    case errc::wrong_mode: return "wrong_mode";
    case errc::busy: return "busy";
    case errc::peer_dead: return "peer_dead";
    case errc::decode_failed: return "decode_failed";
    case errc::owner_died: return "owner_died";
    case errc::permission_denied: return "permission_denied";
    case errc::not_owner: return "not_owner";
    case errc::not_managed: return "not_managed";
    case errc::child_failed: return "child_failed";
    case errc::system_error: return "system_error";
    case errc::corrupted: return "corrupted";
  }
  return "unknown";
}

std::string Error::detail() const {
  std::string_view m = what();
  const std::string suffix = ": " + std::string(to_string(value()));
  if (m.ends_with(suffix)) m.remove_suffix(suffix.size());
  return std::string(m);
}

namespace {
class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sleet"; }
  std::string message(int code) const override {
    return std::string(to_string(static_cast<errc>(code)));
  }
};
}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace sleet
