// sleet/detail/seqlock.hpp — the seqlock's steps and its word copies, shared
// by the store (kv_table.hpp, kv_write.cpp) and SharedValue/SharedArray
// (stored_value.hpp).
//
// Two-buffer seqlock. A writer (serialised by a lock: an owner word or a
// RobustLock) never rewrites the bytes that readers are directed to: it
// writes an inactive buffer, then publishes it by a release store of a
// version word that names it (a store slot's version says where its value
// is: slot buffer, stripe spare or overflow run; a SharedValue's index
// names buffer 0 or 1, each with its own sequence). A writer killed at any
// instant therefore leaves a complete value published, and readers never
// wait for a writer. A reader copies without a lock and keeps the copy only
// if the version did not move while it copied:
//
//   writer (lock held)                  reader (never writes, never blocks)
//   ------------------                  -----------------------------------
//   the version moves off the buffer,   v1 = seq_read_begin(version)    (2)
//   or the buffer is not published      copy with load_words()
//   seq_begin_overwrite()         (3)   seq_read_valid(version, v1)     (4)
//   store_words() into the buffer         (fence acquire, reload, compare)
//   seq_publish(version, v2)      (1)   retry unless valid
//
// Pairs. (1) seq_publish() is a release store; seq_read_begin() (2) is
// its acquire load: a reader that sees v2 sees the whole buffer written
// before it. (3) seq_begin_overwrite() is a release fence after the version
// moved and before the buffer's words are overwritten; seq_read_valid()'s
// acquire fence (4) is its pair: a reader whose copy read any overwritten word also sees
// the version move when it re-reads it, and discards the copy.
//
// Why relaxed atomic words. The reader's copy races with the writer's
// stores by design. Plain memcpy would make that a data race (undefined,
// and reported by TSan); 8-byte relaxed atomic loads and stores make it
// defined, cost the same as plain moves on x86-64 and AArch64, and the
// fences above give the order. Buffers are 8-byte aligned and padded to
// whole words (store slots, spares and runs: multiples of 8; SharedValue
// buffers: multiples of 64), so the byte forms below copy whole words and
// only the caller's private buffer sees a partial last word.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sleet::detail {

// ---- word copies ----

inline void load_words(std::uint64_t* dst, std::uint64_t* shared, std::size_t words) noexcept {
#pragma GCC unroll 8
  for (std::size_t i = 0; i < words; ++i) {
    // relaxed: validated by seq_read_valid() (4).
    dst[i] = std::atomic_ref<std::uint64_t>(shared[i]).load(std::memory_order_relaxed);
  }
}
inline void store_words(std::uint64_t* shared, const std::uint64_t* src, std::size_t words) noexcept {
  for (std::size_t i = 0; i < words; ++i) {
    // relaxed: ordered after seq_begin_overwrite() (3), published by seq_publish() (1).
    std::atomic_ref<std::uint64_t>(shared[i]).store(src[i], std::memory_order_relaxed);
  }
}
// `size` bytes from a word-padded shared buffer to any private one.
inline void load_bytes(void* out, const std::byte* shared, std::size_t size) noexcept {
  // atomic_ref needs a non-const object; the words are only loaded.
  auto* src = reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(shared));
  auto* dst = static_cast<unsigned char*>(out);
  for (std::size_t off = 0; off < size; off += 8) {
    // relaxed: as in load_words().
    const std::uint64_t w = std::atomic_ref<std::uint64_t>(src[off / 8]).load(std::memory_order_relaxed);
    std::memcpy(dst + off, &w, size - off < 8 ? size - off : 8);
  }
}
// `size` bytes from any private buffer into a word-padded shared one (the
// last word's padding is written as zeros).
inline void store_bytes(std::byte* shared, const void* in, std::size_t size) noexcept {
  auto* dst = reinterpret_cast<std::uint64_t*>(shared);
  const auto* src = static_cast<const unsigned char*>(in);
  for (std::size_t off = 0; off < size; off += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, src + off, size - off < 8 ? size - off : 8);
    // relaxed: as in store_words().
    std::atomic_ref<std::uint64_t>(dst[off / 8]).store(w, std::memory_order_relaxed);
  }
}

// ---- the version protocol ----

// (2) The version a copy is validated against.
template <class V>
inline V seq_read_begin(const std::atomic<V>& version) noexcept {
  // acquire: pairs with seq_publish() (1); the buffer it names is complete.
  return version.load(std::memory_order_acquire);
}
// (4) Whether a copy made since seq_read_begin() returned `seen` is whole.
template <class V>
inline bool seq_read_valid(const std::atomic<V>& version, V seen) noexcept {
  // acquire fence: the copy's loads are ordered before the re-read; pairs
  // with seq_begin_overwrite() (3).
  std::atomic_thread_fence(std::memory_order_acquire);
  // relaxed: ordered after the copy by the fence above.
  return version.load(std::memory_order_relaxed) == seen;
}
// (3) After the version moved off a buffer, before its words are rewritten.
inline void seq_begin_overwrite() noexcept {
  // release fence: a reader that sees any word stored after it also sees
  // the version move; pairs with seq_read_valid()'s acquire fence (4).
  std::atomic_thread_fence(std::memory_order_release);
}
// (1) Publishes what was written since seq_begin_overwrite().
template <class V>
inline void seq_publish(std::atomic<V>& version, V next) noexcept {
  // release: pairs with seq_read_begin() (2).
  version.store(next, std::memory_order_release);
}

}  // namespace sleet::detail
