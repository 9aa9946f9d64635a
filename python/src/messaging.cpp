// python/src/messaging.cpp — Channel<T>, Pipe<T>, Topic<T> and Subscriber<T>
// for the six message types Python speaks (kinds "str", "int", "float",
// "bytes", "message", "object"), as classes _sleet.Channel_<kind> etc.
// The package (sleet/_messaging.py) picks the class and adds the Python-only
// parts (on_receive, async_receive, iteration).
//
// Fast paths keep the GIL: a send that finds room and a receive that finds
// a message never release it (releasing and retaking costs more than the
// call). Only a call that has to wait goes through wait_sliced().
//
// Channels, pipes and subscribers of objects move bytes: a value is
// encoded by wire.hpp into the exact bytes a C++ Channel<Dynamic> reads,
// and a record is decoded from its bytes, with no sleet::Dynamic in
// between. Topics still publish through Conv<Dynamic> (Topic<T> has no
// byte-level publish).
#include <pybind11/stl.h>

#include <sleet/channel.hpp>
#include <sleet/pipe.hpp>
#include <sleet/topic.hpp>

#include "blocking.hpp"
#include "bindings.hpp"
#include "convert.hpp"
#include "fast.hpp"
#include "wire.hpp"

namespace sleet::py_binding {

namespace {

// The end a wrapped object sends from (`tx`) or receives on, for the
// object path: a channel's one, a pipe's two, a subscriber's one.
template <class T>
detail::ChannelEnd& end_of(Channel<T>& c, bool) noexcept { return c.base(); }
template <class T>
detail::ChannelEnd& end_of(Pipe<T>& p, bool tx) noexcept { return (tx ? p.sending() : p.receiving()).base(); }
template <class T>
detail::SubscriberEnd& end_of(Subscriber<T>& s, bool) noexcept { return s.base(); }

// Objects (C++ Dynamic) skip the Dynamic tree (wire.hpp): a record is
// copied out of the ring as bytes (Codec<RawBytes>, the bridge's raw path)
// and decoded with the GIL held, so a wait without the GIL never touches
// Python objects. Returns nullopt when nothing came (at once if !wait,
// else within `timeout`).
template <class Obj>
std::optional<py::object> receive_object(Obj& o, const Ctx& ctx, bool wait, std::optional<double> timeout) {
  auto& end = end_of(o, false);
  wire::Buffer buf;
  auto take = [&](detail::Wait w) {
    const detail::Poll p =
        end.visit([&](auto& core, auto& port) { return detail::receive_one(core, port, buf.raw(), w); });
    if (SLEET_UNLIKELY(p == detail::Poll::closed)) end.core().throw_closed();
    return p == detail::Poll::ready;
  };
  if (!take(detail::Wait::no())) {
    if (!wait) {
      // Empty: the typed call re-arms notify_fd()'s descriptor, as a typed
      // try_receive does (a message that came meanwhile is taken the old way).
      if (auto v = o.try_receive()) return Conv<Dynamic>::to(*v, ctx);
      return std::nullopt;
    }
    auto step = [&](std::chrono::nanoseconds s) { return take(detail::Wait::to(detail::deadline_after(s))); };
    if (!wait_sliced(step, timeout)) return std::nullopt;
  }
  return wire::decode(buf.data(), buf.size(), ctx);
}

// One message of T, or nullopt as receive_object().
template <class T, class Obj>
std::optional<py::object> receive_value(Obj& o, const Ctx& ctx, bool wait, std::optional<double> timeout) {
  if constexpr (std::is_same_v<T, Dynamic>) {
    return receive_object(o, ctx, wait, timeout);
  } else {
    if (auto v = o.try_receive()) return Conv<T>::to(*v, ctx);
    if (!wait) return std::nullopt;
    auto r = wait_sliced([&o](std::chrono::nanoseconds s) { return o.receive_for(s); }, timeout);
    if (!r) return std::nullopt;
    return Conv<T>::to(*r, ctx);
  }
}

// Receiving, the same for a channel, a pipe end and a subscriber.
template <class T, class Obj>
py::object receive(Obj& o, const Ctx& ctx, std::optional<double> timeout) {
  auto r = receive_value<T>(o, ctx, true, timeout);
  if (!r) throw_timeout(ctx.label, timeout);
  return std::move(*r);
}
template <class T, class Obj>
py::object receive_or(Obj& o, const Ctx& ctx, std::optional<double> timeout, py::object fallback) {
  auto r = receive_value<T>(o, ctx, true, timeout);
  return r ? std::move(*r) : fallback;
}
template <class T, class Obj>
py::object try_receive(Obj& o, const Ctx& ctx, py::object fallback) {
  auto r = receive_value<T>(o, ctx, false, std::nullopt);
  return r ? std::move(*r) : fallback;
}

// Sending: try_send/send_for, or try_publish/publish_for for a topic.
template <class TrySend, class SendFor>
void send_sliced(TrySend&& try_send, SendFor&& send_for, const Ctx& ctx, std::optional<double> timeout) {
  if (try_send()) return;
  if (!wait_sliced(send_for, timeout)) {
    throw Error(errc::timeout, ctx.label + ": still full after the timeout of " + std::to_string(*timeout) + " s");
  }
}

// Sends `v` from a channel or pipe end; with !wait only if there is room
// (returns whether it sent). Objects are encoded straight into bytes
// (wire.hpp), sent with Codec<RawBytes>: one exact claim and a copy.
template <class T, class Obj>
bool send_value(Obj& o, py::handle v, const Ctx& ctx, bool wait, std::optional<double> timeout) {
  if constexpr (std::is_same_v<T, Dynamic>) {
    wire::Buffer buf;
    wire::encode(v.ptr(), ctx, buf.bytes());
    auto& end = end_of(o, true);
    auto put = [&](detail::Wait w) {
      const detail::Poll p = end.visit(
          [&](auto& core, auto& port) { return detail::send_one(core, port, std::as_const(buf.raw()), w); });
      if (SLEET_UNLIKELY(p == detail::Poll::closed)) end.core().throw_closed();
      return p == detail::Poll::ready;
    };
    auto try_put = [&] {
      if (put(detail::Wait::no())) return true;
      end.core().count_full();  // as Channel::try_send does
      return false;
    };
    if (!wait) return try_put();
    send_sliced(try_put,
                [&](std::chrono::nanoseconds s) { return put(detail::Wait::to(detail::deadline_after(s))); }, ctx,
                timeout);
    return true;
  } else {
    const T t = Conv<T>::from(v, ctx);
    if (!wait) return o.try_send(t);
    send_sliced([&] { return o.try_send(t); }, [&](std::chrono::nanoseconds s) { return o.send_for(t, s); }, ctx,
                timeout);
    return true;
  }
}

template <class T>
struct PyChannel {
  Channel<T> ch;
  Ctx ctx;
};
template <class T>
struct PyPipe {
  Pipe<T> owned;
  Pipe<T>* external = nullptr;  // this_process::active_channel(): not ours to own
  Ctx ctx;
  Pipe<T>& get() noexcept { return external != nullptr ? *external : owned; }
  const Pipe<T>& get() const noexcept { return external != nullptr ? *external : owned; }
};
template <class T>
struct PySubscriber {
  Subscriber<T> sub;
  Ctx ctx;
};
template <class T>
struct PyTopic {
  Topic<T> topic;
  Ctx ctx;
};

// The C++ object behind each wrapper, for the fast methods.
template <class T>
Channel<T>& target(PyChannel<T>& w) {
  return w.ch;
}
template <class T>
Pipe<T>& target(PyPipe<T>& w) {
  return w.get();
}
template <class T>
Subscriber<T>& target(PySubscriber<T>& w) {
  return w.sub;
}

// The fast methods (fast.hpp): send(value, timeout=None), try_send(value),
// receive(timeout=None), try_receive(default=None), publish(value, timeout=None).
template <class T, class W>
PyObject* fast_send(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("send", n, 1, 2);
  W& w = *static_cast<W*>(o);
  send_value<T>(target(w), a[0], w.ctx, true, timeout_arg(a, n, 1));
  Py_RETURN_NONE;
}
template <class T, class W>
PyObject* fast_try_send(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("try_send", n, 1, 1);
  W& w = *static_cast<W*>(o);
  return PyBool_FromLong(send_value<T>(target(w), a[0], w.ctx, false, std::nullopt) ? 1 : 0);
}
template <class T, class W>
PyObject* fast_receive(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("receive", n, 0, 1);
  W& w = *static_cast<W*>(o);
  return receive<T>(target(w), w.ctx, timeout_arg(a, n, 0)).release().ptr();
}
template <class T, class W>
PyObject* fast_try_receive(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("try_receive", n, 0, 1);
  W& w = *static_cast<W*>(o);
  return try_receive<T>(target(w), w.ctx, arg_or_none(a, n, 0)).release().ptr();
}
template <class T>
PyObject* fast_publish(void* o, PyObject* const* a, Py_ssize_t n) {
  check_args("publish", n, 1, 2);
  auto& w = *static_cast<PyTopic<T>*>(o);
  const T t = Conv<T>::from(a[0], w.ctx);
  send_sliced([&] { return w.topic.try_publish(t); },
              [&](std::chrono::nanoseconds s) { return w.topic.publish_for(t, s); }, w.ctx, timeout_arg(a, n, 1));
  Py_RETURN_NONE;
}

template <class T, class W, bool kSends>
py::dict fast_methods(py::object self) {
  W& w = self.cast<W&>();
  py::dict d;
  if constexpr (kSends) {
    d["send"] = fast_method<&fast_send<T, W>>("send", {"value", "timeout"}, 1, &w, self);
    d["try_send"] = fast_method<&fast_try_send<T, W>>("try_send", {"value"}, 1, &w, self);
  }
  d["receive"] = fast_method<&fast_receive<T, W>>("receive", {"timeout"}, 0, &w, self);
  d["try_receive"] = fast_method<&fast_try_receive<T, W>>("try_receive", {"default"}, 0, &w, self);
  return d;
}

ChannelOptions channel_options(std::size_t capacity, std::size_t max_message_size, const std::string& topology,
                               unsigned permissions) {
  ChannelOptions o;
  o.capacity = capacity;
  o.max_message_size = max_message_size;
  o.permissions = permissions;
  if (topology == "spsc") {
    o.topology = Topology::spsc;
  } else if (topology != "mpmc") {
    throw py::value_error("topology must be 'spsc' or 'mpmc', not '" + topology + "'");
  }
  return o;
}

py::dict channel_stats(const ChannelStats& s) {
  py::dict d;
  d["sent"] = s.sent;
  d["received"] = s.received;
  d["queued"] = s.queued;
  d["times_full"] = s.times_full;
  d["send_sleeps"] = s.send_sleeps;
  d["receive_sleeps"] = s.receive_sleeps;
  d["send_wakes"] = s.send_wakes;
  d["receive_wakes"] = s.receive_wakes;
  d["abandoned"] = s.abandoned;
  d["lost"] = s.lost;
  return d;
}

template <class T>
void bind_kind(py::module_& m, const std::string& kind) {
  using C = PyChannel<T>;
  auto label = [](std::string_view what, std::string_view name) {
    return std::string(what) + " '" + std::string(name) + "'";
  };
  py::class_<C>(m, ("Channel_" + kind).c_str())
      .def_static(
          "create",
          [label](const std::string& name, std::size_t capacity, std::size_t max_message_size,
                  const std::string& topology, unsigned permissions, bool pickle) {
            auto ch = Channel<T>::create(name, channel_options(capacity, max_message_size, topology, permissions));
            return new C{std::move(ch), Ctx{label("channel", name), pickle}};
          },
          py::arg("name"), py::arg("capacity"), py::arg("max_message_size"), py::arg("topology"),
          py::arg("permissions"), py::arg("pickle"))
      .def_static(
          "open_or_create",
          [label](const std::string& name, std::size_t capacity, std::size_t max_message_size,
                  const std::string& topology, unsigned permissions, bool pickle) {
            auto ch = Channel<T>::open_or_create(name,
                                                 channel_options(capacity, max_message_size, topology, permissions));
            return new C{std::move(ch), Ctx{label("channel", name), pickle}};
          },
          py::arg("name"), py::arg("capacity"), py::arg("max_message_size"), py::arg("topology"),
          py::arg("permissions"), py::arg("pickle"))
      .def_static(
          "open",
          [label](const std::string& name, bool pickle) {
            return new C{Channel<T>::open(name), Ctx{label("channel", name), pickle}};
          },
          py::arg("name"), py::arg("pickle"))
      .def(
          "send",
          [](C& c, py::handle v, std::optional<double> timeout) { send_value<T>(c.ch, v, c.ctx, true, timeout); },
          py::arg("value"), py::arg("timeout") = py::none())
      .def("try_send", [](C& c, py::handle v) { return send_value<T>(c.ch, v, c.ctx, false, std::nullopt); })
      .def(
          "receive", [](C& c, std::optional<double> t) { return receive<T>(c.ch, c.ctx, t); },
          py::arg("timeout") = py::none())
      .def("receive_or", [](C& c, std::optional<double> t, py::object d) { return receive_or<T>(c.ch, c.ctx, t, d); })
      .def(
          "try_receive", [](C& c, py::object d) { return try_receive<T>(c.ch, c.ctx, d); }, py::arg("default") = py::none())
      .def("fast_methods", [](py::object self) { return fast_methods<T, C, true>(self); })
      .def("set_spin", [](C& c, double seconds) { c.ch.set_spin(*to_duration(seconds)); })
      .def("notify_fd", [](C& c) { return c.ch.notify_fd(); })
      .def("close", [](C& c) { c.ch.close(); })
      .def_property_readonly("closed", [](const C& c) { return c.ch.closed(); })
      .def_property_readonly("name", [](const C& c) { return std::string(c.ch.name()); })
      .def_property_readonly("topology",
                             [](const C& c) { return c.ch.topology() == Topology::spsc ? "spsc" : "mpmc"; })
      .def_property_readonly("capacity", [](const C& c) { return c.ch.capacity(); })
      .def_property_readonly("max_message_size", [](const C& c) { return c.ch.max_message_size(); })
      .def("size_approx", [](const C& c) { return c.ch.size_approx(); })
      .def("stats", [](const C& c) { return channel_stats(c.ch.stats()); });
  m.def(("remove_channel_" + kind).c_str(), [](const std::string& name) { return Channel<T>::remove(name); });

  using P = PyPipe<T>;
  py::class_<P>(m, ("Pipe_" + kind).c_str())
      .def_static(
          "create",
          [label](const std::string& name, std::size_t capacity, std::size_t max_message_size, unsigned permissions,
                  bool pickle) {
            auto [a, b] = Pipe<T>::create(name, channel_options(capacity, max_message_size, "spsc", permissions));
            return py::make_tuple(new P{std::move(a), nullptr, Ctx{label("pipe", name) + " end a", pickle}},
                                  new P{std::move(b), nullptr, Ctx{label("pipe", name) + " end b", pickle}});
          },
          py::arg("name"), py::arg("capacity"), py::arg("max_message_size"), py::arg("permissions"),
          py::arg("pickle"))
      .def_static(
          "open",
          [label](const std::string& name, const std::string& end, bool pickle) {
            if (end != "a" && end != "b") throw py::value_error("end must be 'a' or 'b', not '" + end + "'");
            return new P{Pipe<T>::open(name, end == "a" ? End::a : End::b), nullptr,
                         Ctx{label("pipe", name) + " end " + end, pickle}};
          },
          py::arg("name"), py::arg("end"), py::arg("pickle"))
      .def(
          "send",
          [](P& p, py::handle v, std::optional<double> timeout) { send_value<T>(p.get(), v, p.ctx, true, timeout); },
          py::arg("value"), py::arg("timeout") = py::none())
      .def("try_send", [](P& p, py::handle v) { return send_value<T>(p.get(), v, p.ctx, false, std::nullopt); })
      .def(
          "receive", [](P& p, std::optional<double> t) { return receive<T>(p.get(), p.ctx, t); },
          py::arg("timeout") = py::none())
      .def("receive_or",
           [](P& p, std::optional<double> t, py::object d) { return receive_or<T>(p.get(), p.ctx, t, d); })
      .def(
          "try_receive", [](P& p, py::object d) { return try_receive<T>(p.get(), p.ctx, d); }, py::arg("default") = py::none())
      .def("fast_methods", [](py::object self) { return fast_methods<T, P, true>(self); })
      .def("set_spin", [](P& p, double seconds) { p.get().set_spin(*to_duration(seconds)); })
      .def("notify_fd", [](P& p) { return p.get().notify_fd(); })
      .def("close", [](P& p) { p.get().close(); })
      .def_property_readonly("closed", [](const P& p) { return p.get().closed(); })
      .def_property_readonly("name", [](const P& p) { return std::string(p.get().name()); });
  m.def(("remove_pipe_" + kind).c_str(), [](const std::string& name) { return Pipe<T>::remove(name); });

  using S = PySubscriber<T>;
  py::class_<S>(m, ("Subscriber_" + kind).c_str())
      .def(
          "receive", [](S& s, std::optional<double> t) { return receive<T>(s.sub, s.ctx, t); },
          py::arg("timeout") = py::none())
      .def("receive_or", [](S& s, std::optional<double> t, py::object d) { return receive_or<T>(s.sub, s.ctx, t, d); })
      .def(
          "try_receive", [](S& s, py::object d) { return try_receive<T>(s.sub, s.ctx, d); }, py::arg("default") = py::none())
      .def("fast_methods", [](py::object self) { return fast_methods<T, S, false>(self); })
      .def("set_spin", [](S& s, double seconds) { s.sub.set_spin(*to_duration(seconds)); })
      .def("notify_fd", [](S& s) { return s.sub.notify_fd(); })
      .def("lost", [](const S& s) { return s.sub.lost(); })
      .def_property_readonly("closed", [](const S& s) { return s.sub.closed(); })
      .def_property_readonly("name", [](const S& s) { return std::string(s.sub.name()); });

  using Tp = PyTopic<T>;
  auto topic_options = [](std::size_t capacity, std::size_t max_message_size, std::size_t max_subscribers,
                          const std::string& overflow, unsigned permissions) {
    TopicOptions o;
    o.capacity = capacity;
    o.max_message_size = max_message_size;
    o.max_subscribers = max_subscribers;
    o.permissions = permissions;
    if (overflow == "overwrite") {
      o.overflow = Overflow::overwrite;
    } else if (overflow != "block") {
      throw py::value_error("overflow must be 'block' or 'overwrite', not '" + overflow + "'");
    }
    return o;
  };
  py::class_<Tp>(m, ("Topic_" + kind).c_str())
      .def_static(
          "create",
          [label, topic_options](const std::string& name, std::size_t capacity, std::size_t max_message_size,
                                 std::size_t max_subscribers, const std::string& overflow, unsigned permissions,
                                 bool pickle) {
            auto t = Topic<T>::create(name, topic_options(capacity, max_message_size, max_subscribers, overflow,
                                                          permissions));
            return new Tp{std::move(t), Ctx{label("topic", name), pickle}};
          })
      .def_static(
          "open_or_create",
          [label, topic_options](const std::string& name, std::size_t capacity, std::size_t max_message_size,
                                 std::size_t max_subscribers, const std::string& overflow, unsigned permissions,
                                 bool pickle) {
            auto t = Topic<T>::open_or_create(
                name, topic_options(capacity, max_message_size, max_subscribers, overflow, permissions));
            return new Tp{std::move(t), Ctx{label("topic", name), pickle}};
          })
      .def_static("open",
                  [label](const std::string& name, bool pickle) {
                    return new Tp{Topic<T>::open(name), Ctx{label("topic", name), pickle}};
                  })
      .def(
          "publish",
          [](Tp& t, py::handle v, std::optional<double> timeout) {
            const T value = Conv<T>::from(v, t.ctx);
            send_sliced([&] { return t.topic.try_publish(value); },
                 [&](std::chrono::nanoseconds s) { return t.topic.publish_for(value, s); }, t.ctx, timeout);
          },
          py::arg("value"), py::arg("timeout") = py::none())
      .def("fast_publish",
           [](py::object self) { return fast_method<&fast_publish<T>>("publish", {"value", "timeout"}, 1, &self.cast<Tp&>(), self); })
      .def("try_publish", [](Tp& t, py::handle v) { return t.topic.try_publish(Conv<T>::from(v, t.ctx)); })
      .def(
          "subscribe",
          [](const Tp& t, bool oldest) {
            return new S{t.topic.subscribe(oldest ? From::oldest : From::next), t.ctx};
          },
          py::arg("oldest") = false)
      .def("close", [](Tp& t) { t.topic.close(); })
      .def_property_readonly("closed", [](const Tp& t) { return t.topic.closed(); })
      .def_property_readonly("name", [](const Tp& t) { return std::string(t.topic.name()); })
      .def("stats", [](const Tp& t) {
        const TopicStats s = t.topic.stats();
        py::dict d;
        d["published"] = s.published;
        d["subscribers"] = s.subscribers;
        d["slowest_lag"] = s.slowest_lag;
        d["lost"] = s.lost;
        d["reclaimed"] = s.reclaimed;
        d["abandoned"] = s.abandoned;
        d["closed"] = s.closed;
        return d;
      });
  m.def(("remove_topic_" + kind).c_str(), [](const std::string& name) { return Topic<T>::remove(name); });
}

}  // namespace

py::object wrap_active_channel(Pipe<Message>& pipe) {
  return py::cast(new PyPipe<Message>{Pipe<Message>{}, &pipe, Ctx{"pipe '" + std::string(pipe.name()) + "'", false}},
                  py::return_value_policy::take_ownership);
}
py::object wrap_passive_channel(Channel<Message>& ch) {
  // A second Channel object on the same segment, owned by Python: the
  // process-wide one stays with this_process.
  return py::cast(new PyChannel<Message>{Channel<Message>::open(ch.name()),
                                         Ctx{"channel '" + std::string(ch.name()) + "'", false}},
                  py::return_value_policy::take_ownership);
}

void bind_messaging(py::module_& m) {
  bind_kind<std::string>(m, "str");
  bind_kind<std::int64_t>(m, "int");
  bind_kind<double>(m, "float");
  bind_kind<Dynamic::Bytes>(m, "bytes");
  bind_kind<Message>(m, "message");
  bind_kind<Dynamic>(m, "object");
}

}  // namespace sleet::py_binding
