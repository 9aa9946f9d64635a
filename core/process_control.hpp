// core/process_control.hpp — the record a managed child sends on its
// manager's control channel (this_process::request_stop/request_restart),
// and that channel's shape. Shared by this_process.cpp (the sending side)
// and process_manager_control.cpp (the supervisor's side).
//
// One mpmc Channel<ControlRecord> per manager, "<ns>.control": every child
// of that manager sends on it, from any thread, without sharing the spsc
// sending side of its active pipe with user code. The record names the
// target and carries the asking pid, so the manager can ignore a request
// from an earlier incarnation or from a process that is not the target's
// current child.
#pragma once

#include <cstddef>
#include <string>

#include "sleet/channel.hpp"
#include "sleet/message.hpp"

namespace sleet::detail {

struct ControlRecord {
  std::string target;      // the asking child's target name
  ControlRequest request;  // action, reason, pid

  template <class Archive>
  void serialize(Archive& ar) {
    ar(target, request);
  }
};

using ControlChannel = Channel<ControlRecord>;

// Requests wait here while the supervisor is busy (a stop's grace period):
// more than every child asking twice at once is not expected.
inline constexpr std::size_t kControlCapacity = 64;
// One slot: a target name (<= 100 bytes), a reason cut to kMaxControlReason
// and cereal's length prefixes fit with room to spare.
inline constexpr std::size_t kControlMaxMessage = 2048;
inline constexpr std::size_t kMaxControlReason = 1024;

inline std::string control_channel_name(const std::string& ns) { return ns + ".control"; }

}  // namespace sleet::detail
