// bridge/bridge_internal.hpp — what the bridge's source files share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <sleet/bridge.hpp>
#include <sleet/kv_store.hpp>

namespace sleet::bridge_detail {

// The URL with any password (or lone user/token) replaced by "***".
std::string redact_url(std::string_view url);
// Throws errc::invalid_argument naming the (redacted) URL.
void check_url(std::string_view url);

KvOptions status_store_options();
void write_status(KvStore& store, const std::vector<BridgeRouteStatus>& routes);

}  // namespace sleet::bridge_detail
