// tools/cli/output.hpp — what the commands print: aligned tables and JSON
// (written by hand: no dependency for it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sleet::cli {

// `text` as a JSON string literal: quotes, backslashes and control
// characters escaped; bytes that are not valid UTF-8 become \u00XX, so the
// output is always valid JSON.
std::string json_quote(std::string_view text);

// Compact JSON, built front to back. Commas and colons are placed for the
// caller; nesting mistakes are programming errors (not checked).
class Json {
 public:
  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(std::string_view k);
  Json& value(std::string_view v);
  Json& value(const char* v) { return value(std::string_view(v)); }
  Json& value(const std::string& v) { return value(std::string_view(v)); }
  Json& value(std::uint64_t v);
  Json& value(std::int64_t v);
  Json& value(int v) { return value(static_cast<std::int64_t>(v)); }
  Json& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
  Json& value(double v);
  Json& value(bool v);
  Json& null();
  const std::string& str() const noexcept { return out_; }

 private:
  void separate();
  std::string out_;
  std::vector<bool> has_items_;  // per open object/array
  bool after_key_ = false;
};

// Columns padded to their widest cell, two spaces apart, no trailing blanks.
class Table {
 public:
  Table() = default;
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// 1234567 -> "1234567"; 12.5e6 -> "12.5M" (three significant figures).
std::string si(double v);
// A fixed-point number with `decimals` digits after the point.
std::string fixed(double v, int decimals);

}  // namespace sleet::cli
