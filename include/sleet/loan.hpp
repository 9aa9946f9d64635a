// sleet/loan.hpp — Loan<T>: a message written in place in a channel's ring.
//
//   auto loan = ch.loan();        // blocks while the ring is full
//   loan->id = 7;                 // fill the T that lives in the ring
//   loan->price = 9.5;
//   loan.commit();                // publishes it (errc::closed if closed)
//
// T must be trivially copyable (its bytes are the message, as with the raw
// codec) and aligned to at most 8 bytes (records are 8-byte aligned). The T
// is value-initialised when the loan is made. A loan destroyed without
// commit() is abandoned: nothing is published and its space is reused.
//
// A loan belongs to the Channel (or Pipe) object that made it and must not
// outlive it or cross a move of it. On an spsc channel one loan may be out
// at a time, and the object sends nothing else meanwhile (errc::busy); an
// spsc loan never delays close(), and a commit() after close began is
// refused with errc::closed. On mpmc a loan holds a ticket: receivers of
// later tickets (and their report of closed) wait until it is committed or
// abandoned, and a slot claimed before the close is delivered. Hold mpmc
// loans briefly.
#pragma once

#include <new>
#include <type_traits>
#include <utility>

#include "sleet/detail/channel_io.hpp"

namespace sleet {

template <class T>
class Channel;

template <class T>
class Loan {
  static_assert(std::is_trivially_copyable_v<T>, "sleet::Loan<T>: T must be trivially copyable");
  static_assert(alignof(T) <= 8, "sleet::Loan<T>: T may be aligned to at most 8 bytes");

 public:
  Loan() = default;
  Loan(Loan&& o) noexcept
      : end_(std::exchange(o.end_, nullptr)), claim_(o.claim_), value_(std::exchange(o.value_, nullptr)) {}
  Loan& operator=(Loan&& o) noexcept {
    if (this != &o) {
      reset();
      end_ = std::exchange(o.end_, nullptr);
      claim_ = o.claim_;
      value_ = std::exchange(o.value_, nullptr);
    }
    return *this;
  }
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  ~Loan() { reset(); }

  T& operator*() const noexcept { return *value_; }
  T* operator->() const noexcept { return value_; }
  T* get() const noexcept { return value_; }  // nullptr once committed, abandoned or moved from
  // True until commit() or abandonment.
  explicit operator bool() const noexcept { return end_ != nullptr; }

  // Publishes the message. Throws errc::closed (spsc, close began: nothing
  // is published). Either way the loan is empty afterwards.
  void commit() {
    if (end_ == nullptr) throw Error(errc::invalid_argument, "sleet::Loan: commit() of an empty loan");
    detail::ChannelEnd* e = std::exchange(end_, nullptr);
    value_ = nullptr;  // the space is the channel's again
    const bool ok = e->visit([&](auto& core, auto& port) {
      using Claim = typename std::remove_reference_t<decltype(port)>::Claim;
      return port.commit_loan(core, std::get<Claim>(claim_), sizeof(T));
    });
    if (!ok) e->core().throw_closed();
  }
  // Abandons the message now (as the destructor does).
  void reset() noexcept {
    if (end_ == nullptr) return;
    value_ = nullptr;
    std::exchange(end_, nullptr)->visit([&](auto&, auto& port) {
      using Claim = typename std::remove_reference_t<decltype(port)>::Claim;
      port.abort_loan(std::get<Claim>(claim_));
    });
  }

 private:
  friend class Channel<T>;
  Loan(detail::ChannelEnd* end, detail::AnyClaim claim, std::byte* at) noexcept
      : end_(end), claim_(claim), value_(::new (at) T{}) {}

  detail::ChannelEnd* end_ = nullptr;
  detail::AnyClaim claim_;
  T* value_ = nullptr;
};

}  // namespace sleet
