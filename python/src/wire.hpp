// python/src/wire.hpp — Python objects straight to and from the bytes of an
// encoded sleet::Dynamic, without building a Dynamic tree.
//
//   wire::Buffer buf;                      // this thread's buffer, borrowed
//   wire::encode(obj, ctx, buf.bytes());   // exactly what cereal writes for the Dynamic
//   py::object back = wire::decode(buf.data(), buf.size(), ctx);
//
// Why: a channel of objects used to convert a Python object into a
// Dynamic (a tree of vectors and strings, one allocation per node) and
// cereal encoded the tree; a receiver decoded into a tree and converted
// that. For a small dict that was 1.5-4.5 us per direction, most of a
// round trip (bench/results/2026-12-02-python-xeon-2vcpu.md). Writing and
// reading cereal's bytes directly costs a few hundred ns.
//
// The format is cereal's binary archive of sleet::Dynamic (dynamic.hpp),
// byte for byte, so C++ peers reading Channel<Dynamic> or a Dynamic store
// value see no difference (python/tests/test_wire.py compares the two
// encoders on many values):
//
//   value  := index:int32 payload            index = the Variant alternative
//   null   := (nothing)                      0
//   bool   := u8 (0 or 1)                    1
//   int    := int64                          2
//   float  := double                         3
//   str    := n:uint64 n bytes of UTF-8      4
//   bytes  := n:uint64 n bytes               5
//   list   := n:uint64 n values              6
//   tuple  := n:uint64 n values              7   (Dynamic::Tuple holds one vector)
//   dict   := n:uint64 n (key value) pairs   8
//   pickle := n:uint64 n bytes               9   (pickle.dumps of another object)
//
// all little-endian (cereal writes the machine's order; sleet is x86-64
// and aarch64 Linux only).
//
// Decoding trusts nothing: every length is checked against the bytes left
// before anything is allocated (a value needs at least its 4-byte index,
// so a container claiming more items than 4 per remaining byte is
// corrupt), nesting deeper than Dynamic::kMaxDepth and trailing bytes are
// errors, and every failure is sleet::Error(errc::decode_failed) naming
// the object. Python semantics are those of the Conv<Dynamic> conversion
// it replaces (convert.hpp): the same types, the same errors, pickling
// only with ctx.pickle.
//
// Threads: call with the GIL held (both directions make or read Python
// objects; the dict-key cache is guarded by the GIL).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <vector>

#include <sleet/detail/raw_io.hpp>

#include "convert.hpp"

namespace sleet::py_binding::wire {

// Appends the encoding of `o` to `out` (after clearing it). Raises as the
// conversion did: TypeError for a type that cannot travel without
// pickling, ValueError for an int outside 64 bits, errc::invalid_argument
// for nesting deeper than Dynamic::kMaxDepth.
void encode(PyObject* o, const Ctx& ctx, std::vector<std::byte>& out);

// The object that in[0, size) encodes (a new reference).
py::object decode(const std::byte* in, std::size_t size, const Ctx& ctx);

// This thread's message buffer, lent for one call: encode() and decode()
// may run Python code (pickle, __hash__ of a key), which may send or
// receive on another object of this thread, so a nested call finds the
// slot empty and uses a fresh buffer instead of overwriting ours. The
// steady state reuses one allocation.
class Buffer {
 public:
  Buffer() noexcept : raw_(std::move(slot())) { raw_.bytes.clear(); }
  ~Buffer() {
    if (slot().bytes.capacity() < raw_.bytes.capacity()) slot() = std::move(raw_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // RawBytes: what a channel sends and receives with Codec<RawBytes>.
  detail::RawBytes& raw() noexcept { return raw_; }
  std::vector<std::byte>& bytes() noexcept { return raw_.bytes; }
  const std::byte* data() const noexcept { return raw_.bytes.data(); }
  std::size_t size() const noexcept { return raw_.bytes.size(); }

 private:
  static detail::RawBytes& slot() noexcept {
    thread_local detail::RawBytes r;
    return r;
  }
  detail::RawBytes raw_;
};

}  // namespace sleet::py_binding::wire
