// sleet/detail/platform.hpp — fixed layout constants and tiny CPU helpers.
//
// Shared layouts use these constants, never
// std::hardware_destructive_interference_size: that value may change with
// compiler flags, and two builds that share a segment must agree on it.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define SLEET_LIKELY(x) __builtin_expect(!!(x), 1)
// The fast path of a message crosses Channel -> channel_io -> port -> ring;
// each step is small, and inlining them all is what lets the compiler keep
// the indices in registers and drop the branches a caller cannot take.
#define SLEET_INLINE __attribute__((always_inline)) inline
// Waiting paths kept out of line (they end in a spin or a system call).
#define SLEET_NOINLINE __attribute__((noinline))
// Error paths kept out of the hot code.
#define SLEET_COLD __attribute__((cold, noinline))
#define SLEET_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace sleet::detail {

inline constexpr std::size_t kCacheLine = 64;
// Two lines: the adjacent-line prefetcher pulls pairs of lines, so hot words
// written by different sides sit 128 bytes apart.
inline constexpr std::size_t kFalseSharing = 128;

// A pause in a spin loop: lets the sibling hyper-thread run and saves power.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) noexcept {
  return (v + to - 1) / to * to;
}

constexpr std::uint64_t next_pow2(std::uint64_t v) noexcept {
  std::uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace sleet::detail
