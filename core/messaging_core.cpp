// The errors every messaging object throws (messaging_core.hpp).
#include "sleet/detail/messaging_core.hpp"

#include <string>

#include "sleet/channel_options.hpp"
#include "sleet/detail/type_name.hpp"
#include "system.hpp"

namespace sleet::detail {

namespace {
constexpr std::size_t kDefaultVariableMessageSize = 256;
}  // namespace

std::uint64_t check_ring_options(std::uint64_t capacity, std::uint64_t max_message_size,
                                 std::chrono::nanoseconds spin, const MessageType& type,
                                 std::string_view what) {
  if (capacity == 0 || capacity > kMaxCapacity) {
    throw_error(errc::invalid_argument, what,
                "capacity " + std::to_string(capacity) + " is out of range [1, " +
                    std::to_string(kMaxCapacity) + "]");
  }
  std::uint64_t max_size = max_message_size;
  if (max_size == 0) max_size = type.fixed_size ? type.fixed_size : kDefaultVariableMessageSize;
  if (max_size > kMaxMessageSize) {
    throw_error(errc::invalid_argument, what,
                "max_message_size " + std::to_string(max_size) + " is above the limit of " +
                    std::to_string(kMaxMessageSize));
  }
  if (type.fixed_size > max_size) {
    throw_error(errc::too_large, what,
                "'" + readable_type_name(type.name) + "' needs " + std::to_string(type.fixed_size) +
                    " bytes, max_message_size is " + std::to_string(max_size));
  }
  if (spin.count() < 0) throw_error(errc::invalid_argument, what, "negative spin budget");
  return max_size;
}

void MessagingCore::throw_closed() const { throw_error(errc::closed, label_, "closed"); }

void MessagingCore::throw_too_large(std::size_t size) const {
  throw_error(errc::too_large, label_,
              "message of " + std::to_string(size) + " bytes exceeds max_message_size " +
                  std::to_string(max_size_));
}

void MessagingCore::throw_wrong_mode(std::string_view detail) const {
  throw_error(errc::wrong_mode, label_, detail);
}

void MessagingCore::throw_damaged(std::string_view detail) const {
  throw_error(errc::decode_failed, label_, detail);
}

void MessagingCore::rethrow_decode_failed(const Error& e) const {
  throw_error(errc::decode_failed, label_, e.detail());  // ours adds ": decode_failed" again
}

}  // namespace sleet::detail
