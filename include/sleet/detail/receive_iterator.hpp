// sleet/detail/receive_iterator.hpp — range-for over anything that
// receives (Channel, Pipe, Subscriber): receive() until errc::closed.
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>

#include "sleet/error.hpp"

namespace sleet::detail {

template <class Source>
class ReceiveIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = typename Source::value_type;
  using difference_type = std::ptrdiff_t;

  ReceiveIterator() = default;
  explicit ReceiveIterator(Source* s) : s_(s) { next(); }
  const value_type& operator*() const { return *current_; }
  const value_type* operator->() const { return &*current_; }
  ReceiveIterator& operator++() {
    next();
    return *this;
  }
  void operator++(int) { next(); }
  bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

 private:
  void next() {
    try {
      current_ = s_->receive();
    } catch (const Error& e) {
      if (e.code() != errc::closed) throw;
      current_.reset();
    }
  }
  Source* s_ = nullptr;
  std::optional<value_type> current_;
};

}  // namespace sleet::detail
