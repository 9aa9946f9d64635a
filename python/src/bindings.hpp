// python/src/bindings.hpp — the parts of the _sleet module, one per file.
#pragma once

#include <pybind11/pybind11.h>

#include <sleet/channel.hpp>
#include <sleet/message.hpp>
#include <sleet/pipe.hpp>

namespace sleet::py_binding {

namespace py = pybind11;

void bind_messaging(py::module_& m);  // messaging.cpp
void bind_store(py::module_& m);      // store.cpp
void bind_manager(py::module_& m);    // manager.cpp
void bind_sync(py::module_& m);       // sync.cpp

// this_process's channels as the Pipe_message / Channel_message classes.
py::object wrap_active_channel(Pipe<Message>& pipe);
py::object wrap_passive_channel(Channel<Message>& ch);

}  // namespace sleet::py_binding
