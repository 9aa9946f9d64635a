#include "sleet/codec.hpp"

#include "system.hpp"

namespace sleet::detail {

void throw_decode_failed(std::string_view type, std::size_t size, std::string_view why) {
  throw Error(errc::decode_failed, "cereal codec for '" + readable_type_name(type) + "': record of " +
                                       std::to_string(size) + " bytes does not decode: " +
                                       std::string(why));
}

}  // namespace sleet::detail
