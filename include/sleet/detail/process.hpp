// sleet/detail/process.hpp — who we are, and whether another process lives.
//
// current_pid() is on hot paths (the spsc side-ownership check), so it reads
// a cached value instead of calling getpid(). The cache is refreshed in the
// child of every fork() by a pthread_atfork handler registered in
// core/process.cpp, so a Channel object inherited across fork() notices that
// it now runs in another process.
#pragma once

#include <atomic>
#include <cstdint>

#include "sleet/detail/platform.hpp"

namespace sleet::detail {

// 0 until first use. Atomic because several threads may refresh it at once
// (always with the same value); relaxed: it publishes nothing else.
extern std::atomic<int> g_current_pid;
int refresh_current_pid() noexcept;

inline int current_pid() noexcept {
  const int pid = g_current_pid.load(std::memory_order_relaxed);
  return SLEET_LIKELY(pid != 0) ? pid : refresh_current_pid();
}

// The calling thread's kernel id (gettid()), cached per thread; the fork
// handler clears the forking thread's cache in the child. Robust locks store
// it as their owner.
// constinit: no dynamic initialisation, so every translation unit reads it
// directly (no TLS wrapper function).
constinit inline thread_local int t_current_tid = 0;
int refresh_current_tid() noexcept;

inline int current_tid() noexcept {
  const int tid = t_current_tid;
  return SLEET_LIKELY(tid != 0) ? tid : refresh_current_tid();
}

// The calling thread's identity, made like a process identity below but
// from the thread's own id and start time (/proc/<tid>/stat resolves thread
// ids and gives the thread's own start). Cached per thread (constinit, as
// t_current_tid); the fork handler clears the forking thread's cache in the
// child. Robust locks store it as their owner.
constinit inline thread_local std::uint64_t t_thread_identity = 0;
std::uint64_t refresh_thread_identity() noexcept;

inline std::uint64_t current_thread_identity() noexcept {
  const std::uint64_t id = t_thread_identity;
  return SLEET_LIKELY(id != 0) ? id : refresh_thread_identity();
}

// True unless kill(pid, 0) says the process does not exist. A pid of 0 or
// below is "nobody" and never alive.
bool pid_alive(int pid) noexcept;

// A process identity that a recycled pid cannot fake: pid << 32 | the low
// 32 bits of the process's start time (clock ticks since boot, field 22 of
// /proc/<pid>/stat). A new process with the same pid started at another
// tick, so its identity differs. 0 is "nobody". Cached; the fork handler
// refreshes it in the child.
std::uint64_t current_identity() noexcept;
// The identity of the process (or thread) `pid` as /proc shows it now; for
// a pid that does not run, pid << 32 (start time 0: never alive).
std::uint64_t identity_of(int pid) noexcept;
inline int identity_pid(std::uint64_t identity) noexcept {
  return static_cast<int>(identity >> 32);
}
// Whether the process (or thread) `identity` names still runs: its pid is alive and
// started at the recorded tick (a reused pid is not it). Slow (reads
// /proc): slow paths only. When /proc cannot tell (hidden, another pid
// namespace without /proc), falls back to pid_alive().
bool identity_alive(std::uint64_t identity) noexcept;

}  // namespace sleet::detail
