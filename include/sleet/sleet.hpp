// sleet/sleet.hpp — everything public in one include.
#pragma once

#include "sleet/channel.hpp"
#include "sleet/codec.hpp"
#include "sleet/error.hpp"
#include "sleet/kv_store.hpp"
#include "sleet/pipe.hpp"
#include "sleet/registry.hpp"
