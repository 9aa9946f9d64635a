// sleet/message.hpp — Message: the structured message of a managed child's
// channels (process_manager.hpp, this_process.hpp).
//
//   sleet::Message job{"resize"};
//   job.set("path", "/tmp/a.png").set("width", 640).set("keep_ratio", true);
//   pm.send("worker", job);
//   ...
//   if (const auto* w = msg.get<std::int64_t>("width")) use(*w);
//
// A Message is a topic plus named fields, each a Value: null, bool, 64-bit
// integer, double or string (bytes fit in a string). That is what the
// plugin host sent as dictionaries; it travels through cereal, so its size
// varies and is bounded by the channel's max_message_size.
//
// A child asks its manager to stop or restart it with a ControlRequest
// (this_process::request_stop()/request_restart()), sent on the manager's
// control channel. A Message whose `control` is set that the manager reads
// from a child's active pipe is acted on the same way and never handed to
// user code.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace sleet {

using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string>;

struct ControlRequest {
  enum class Action : std::uint8_t { stop, restart };
  Action action = Action::stop;
  std::string reason;
  std::int32_t pid = 0;  // the asking process: a request from an earlier incarnation is ignored

  bool operator==(const ControlRequest&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(action, reason, pid);
  }
};

struct Message {
  std::string topic;
  std::map<std::string, Value, std::less<>> fields;
  std::optional<ControlRequest> control;  // set only on a child's stop/restart request

  Message() = default;
  explicit Message(std::string t) : topic(std::move(t)) {}

  // Sets a field; integers of any width become int64, string-likes strings.
  template <class V>
  Message& set(std::string key, V&& value) {
    using D = std::decay_t<V>;
    if constexpr (std::is_same_v<D, bool>) {
      fields[std::move(key)] = static_cast<bool>(value);
    } else if constexpr (std::is_integral_v<D>) {
      fields[std::move(key)] = static_cast<std::int64_t>(value);
    } else if constexpr (std::is_floating_point_v<D>) {
      fields[std::move(key)] = static_cast<double>(value);
    } else if constexpr (std::is_same_v<D, std::monostate>) {
      fields[std::move(key)] = std::monostate{};
    } else {
      fields[std::move(key)] = std::string(std::forward<V>(value));
    }
    return *this;
  }
  // The field's value if it exists and holds a T, else nullptr.
  template <class T>
  const T* get(std::string_view key) const {
    const auto it = fields.find(key);
    return it == fields.end() ? nullptr : std::get_if<T>(&it->second);
  }
  bool has(std::string_view key) const { return fields.find(key) != fields.end(); }

  bool operator==(const Message&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(topic, fields, control);
  }
};

}  // namespace sleet
