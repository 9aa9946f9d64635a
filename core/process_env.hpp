// core/process_env.hpp — the environment a ProcessManager gives a child, read
// back by this_process (both in core/).
#pragma once

namespace sleet::detail {

inline constexpr const char* kEnvProcessName = "SLEET_PROCESS_NAME";
inline constexpr const char* kEnvProcessPid = "SLEET_PROCESS_PID";
inline constexpr const char* kEnvActiveChannel = "SLEET_ACTIVE_CHANNEL";
inline constexpr const char* kEnvPassiveChannel = "SLEET_PASSIVE_CHANNEL";
inline constexpr const char* kEnvControlChannel = "SLEET_CONTROL_CHANNEL";

}  // namespace sleet::detail
