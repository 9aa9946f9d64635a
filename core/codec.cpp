#include "sleet/codec.hpp"

#include <mutex>
#include <vector>

#include "sleet/detail/dispatcher.hpp"
#include "system.hpp"

namespace sleet::detail {

std::byte* encode_buffer(std::size_t size) {
  thread_local std::vector<std::byte> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

std::mutex& dispatcher_creation_mutex() {
  static std::mutex m;
  return m;
}

void throw_raw_size(std::string_view type, std::size_t size, std::size_t expected) {
  throw Error(errc::decode_failed, "raw codec for '" + std::string(type) + "': record of " +
                                       std::to_string(size) + " bytes, expected " +
                                       std::to_string(expected));
}

void throw_decode_failed(std::string_view type, std::size_t size, std::string_view why) {
  throw Error(errc::decode_failed, "cereal codec for '" + readable_type_name(type) + "': record of " +
                                       std::to_string(size) + " bytes does not decode: " +
                                       std::string(why));
}

}  // namespace sleet::detail
