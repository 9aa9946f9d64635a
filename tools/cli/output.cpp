// Tables, JSON, numbers and durations for the sleet tool.
#include "output.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli.hpp"

namespace sleet::cli {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  std::size_t n;
  std::uint32_t cp;
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) {
    n = 2;
    cp = b & 0x1F;
  } else if ((b & 0xF0) == 0xE0) {
    n = 3;
    cp = b & 0x0F;
  } else if ((b & 0xF8) == 0xF0) {
    n = 4;
    cp = b & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (c & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t n = utf8_length(text, i);
    if (n > 1) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || n == 0) {  // control character, or a byte that is not UTF-8
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

void Json::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (has_items_.empty()) return;
  if (has_items_.back()) out_ += ',';
  has_items_.back() = true;
}

Json& Json::begin_object() {
  separate();
  out_ += '{';
  has_items_.push_back(false);
  return *this;
}
Json& Json::end_object() {
  has_items_.pop_back();
  out_ += '}';
  return *this;
}
Json& Json::begin_array() {
  separate();
  out_ += '[';
  has_items_.push_back(false);
  return *this;
}
Json& Json::end_array() {
  has_items_.pop_back();
  out_ += ']';
  return *this;
}
Json& Json::key(std::string_view k) {
  separate();
  out_ += json_quote(k);
  out_ += ':';
  after_key_ = true;
  return *this;
}
Json& Json::value(std::string_view v) {
  separate();
  out_ += json_quote(v);
  return *this;
}
Json& Json::value(std::uint64_t v) {
  separate();
  out_ += std::to_string(v);
  return *this;
}
Json& Json::value(std::int64_t v) {
  separate();
  out_ += std::to_string(v);
  return *this;
}
Json& Json::value(double v) {
  separate();
  if (!std::isfinite(v)) {
    out_ += "null";  // JSON has no inf or nan
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out_ += buf;
  }
  return *this;
}
Json& Json::value(bool v) {
  separate();
  out_ += v ? "true" : "false";
  return *this;
}
Json& Json::null() {
  separate();
  out_ += "null";
  return *this;
}

std::string Table::str() const {
  std::vector<std::size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string si(double v) {
  static constexpr const char* kSuffix[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 4) {
    v /= 1000;
    ++i;
  }
  if (i == 0) return fixed(v, v == std::floor(v) ? 0 : 1);
  return fixed(v, std::fabs(v) < 10 ? 2 : std::fabs(v) < 100 ? 1 : 0) + kSuffix[i];
}

int exit_code_of(const Error& e) { return e.code() == errc::invalid_name ? kUsage : kError; }

std::optional<std::chrono::nanoseconds> parse_duration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(number) || number < 0) return std::nullopt;
  const std::string unit(end);
  double scale;  // nanoseconds per unit
  if (unit.empty() || unit == "s") {
    scale = 1e9;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "us") {
    scale = 1e3;
  } else if (unit == "ns") {
    scale = 1;
  } else if (unit == "m" || unit == "min") {
    scale = 60e9;
  } else if (unit == "h") {
    scale = 3600e9;
  } else {
    return std::nullopt;
  }
  const double ns = number * scale;
  if (ns > 1e18) return std::nullopt;  // past what the clocks hold (~31 years)
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

std::string format_duration(std::chrono::nanoseconds d) {
  const auto ns = static_cast<double>(d.count());
  if (ns >= 1e9) return fixed(ns / 1e9, ns >= 10e9 || d.count() % 1'000'000'000 == 0 ? 0 : 2) + "s";
  if (ns >= 1e6) return fixed(ns / 1e6, d.count() % 1'000'000 == 0 ? 0 : 2) + "ms";
  if (ns >= 1e3) return fixed(ns / 1e3, d.count() % 1'000 == 0 ? 0 : 2) + "us";
  return std::to_string(d.count()) + "ns";
}

}  // namespace sleet::cli
