// sleet/sleet.hpp — everything public in one include.
#pragma once

#include "sleet/channel.hpp"
#include "sleet/codec.hpp"
#include "sleet/error.hpp"
#include "sleet/event.hpp"
#include "sleet/kv_store.hpp"
#include "sleet/message.hpp"
#include "sleet/mutex.hpp"
#include "sleet/pipe.hpp"
#include "sleet/process_manager.hpp"
#include "sleet/registry.hpp"
#include "sleet/semaphore.hpp"
#include "sleet/shared_array.hpp"
#include "sleet/shared_value.hpp"
#include "sleet/this_process.hpp"
