// Pipe segments: two spsc channel layouts back to back (pipe.hpp).
#include "sleet/pipe.hpp"

#include <string>

#include "system.hpp"

namespace sleet::detail {

namespace {

std::string pipe_label(std::string_view name, const char* direction) {
  return object_label("pipe", name).append(" (").append(direction).append(")");
}

}  // namespace

std::pair<ChannelCore, ChannelCore> create_pipe(std::string_view name,
                                                const ChannelOptions& options,
                                                const MessageType& type) {
  validate_name(name);
  ChannelOptions o = options;
  o.topology = Topology::spsc;
  const ChannelLayout layout = ChannelLayout::resolve(o, type, pipe_label(name, "a->b"));
  SegmentSpec spec{SegmentKind::pipe, 2 * layout.bytes, type.fingerprint, type.name,
                   options.permissions};
  Segment seg = Segment::create(name, spec, [&](std::byte* object) {
    layout.initialize(object);
    layout.initialize(object + layout.bytes);
  });
  Segment seg2 = seg.share();
  return {ChannelCore(std::move(seg), 0, pipe_label(name, "a->b")),
          ChannelCore(std::move(seg2), layout.bytes, pipe_label(name, "b->a"))};
}

std::pair<ChannelCore, ChannelCore> open_pipe(std::string_view name, const MessageType& type) {
  Segment seg = Segment::open(name, SegmentKind::pipe, type.fingerprint, type.name);
  const std::string ab = pipe_label(name, "a->b");
  const std::uint64_t first = ChannelLayout::check(seg.object(), seg.object_size(), type, ab);
  const std::string ba = pipe_label(name, "b->a");
  ChannelLayout::check(seg.object() + first, seg.object_size() - first, type, ba);
  Segment seg2 = seg.share();
  return {ChannelCore(std::move(seg), 0, ab), ChannelCore(std::move(seg2), first, ba)};
}

}  // namespace sleet::detail
