#include "core/units.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "core/problem.h"

namespace cb {

namespace {

struct Unit {
  std::string_view name;
  uint64_t factor;
};
constexpr uint64_t kKi = 1024;
constexpr Unit kSizeUnits[] = {
    {"B", 1},
    {"kB", kKi},
    {"KB", kKi},
    {"KiB", kKi},
    {"MB", kKi* kKi},
    {"MiB", kKi* kKi},
    {"GB", kKi* kKi* kKi},
    {"GiB", kKi* kKi* kKi},
    {"TB", kKi* kKi* kKi* kKi},
    {"TiB", kKi* kKi* kKi* kKi},
};
// For formatting: the canonical names, largest first.
constexpr Unit kSizeCanonical[] = {
    {"TB", kKi* kKi* kKi* kKi}, {"GB", kKi* kKi* kKi}, {"MB", kKi* kKi}, {"kB", kKi}, {"B", 1}};

constexpr int64_t kMsPerS = 1000;
struct DurUnit {
  std::string_view name;
  int64_t ms;  // 0 for months
};
constexpr DurUnit kDurUnits[] = {
    {"ms", 1}, {"s", kMsPerS}, {"m", 60 * kMsPerS}, {"h", 3600 * kMsPerS}, {"d", 86400 * kMsPerS},
    {"mo", 0},
};

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return std::string(s.substr(b, e - b));
}

// Splits "1.5GB" into number text and unit text at the first character that cannot be part
// of a decimal number. Returns false when there is no number.
bool SplitNumber(std::string_view s, size_t* pos, double* value, std::string* number) {
  size_t i = *pos;
  size_t start = i;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    ++i;
    digits = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      digits = true;
    }
  }
  if (!digits) return false;
  *number = std::string(s.substr(start, i - start));
  *value = std::strtod(number->c_str(), nullptr);
  *pos = i;
  return true;
}

std::string UnitNames(bool size) {
  std::string out;
  if (size) {
    for (auto u : {"B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"}) {
      if (!out.empty()) out += ", ";
      out += u;
    }
  } else {
    for (const auto& u : kDurUnits) {
      if (!out.empty()) out += ", ";
      out += u.name;
    }
  }
  return out;
}

std::string UnknownUnit(std::string_view unit, bool size) {
  std::vector<std::string_view> names;
  if (size) {
    for (const auto& u : kSizeUnits) names.push_back(u.name);
  } else {
    for (const auto& u : kDurUnits) names.push_back(u.name);
  }
  // Case first: "mb" -> "MB".
  std::string guess;
  for (auto n : names) {
    if (n.size() != unit.size()) continue;
    bool same = true;
    for (size_t i = 0; i < n.size(); ++i)
      same = same && std::tolower(static_cast<unsigned char>(n[i])) ==
                         std::tolower(static_cast<unsigned char>(unit[i]));
    if (same) {
      guess = std::string(n);
      break;
    }
  }
  if (guess.empty() && !size) {
    if (unit == "min" || unit == "mins" || unit == "minute" || unit == "minutes") guess = "m";
    if (unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds") guess = "s";
    if (unit == "month" || unit == "months" || unit == "M") guess = "mo";
    if (unit == "w" || unit == "week" || unit == "weeks") guess = "d (7d)";
  }
  if (guess.empty()) guess = DidYouMean(unit, names);
  std::string msg = "unknown unit '" + std::string(unit) + "'";
  if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
  msg += "; units: " + UnitNames(size);
  return msg;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view input) {
  std::string s = Trim(input);
  if (s.empty()) return Err(Code::kInvalidArgument, "empty size; expected {}", kSizeExpected);
  if (s[0] == '-') return Err(Code::kInvalidArgument, "size '{}' must not be negative", s);
  size_t pos = s[0] == '+' ? 1 : 0;
  double value = 0;
  std::string number;
  if (!SplitNumber(s, &pos, &value, &number))
    return Err(Code::kInvalidArgument, "invalid size '{}': expected {}", s, kSizeExpected);
  if (pos < s.size() && s[pos] == ' ') ++pos;
  std::string unit = s.substr(pos);
  uint64_t factor = 0;
  if (unit.empty()) {
    factor = 1;
  } else {
    for (const auto& u : kSizeUnits) {
      if (u.name == unit) factor = u.factor;
    }
  }
  if (factor == 0)
    return Err(Code::kInvalidArgument, "invalid size '{}': {}", s, UnknownUnit(unit, true));
  long double bytes = static_cast<long double>(value) * static_cast<long double>(factor);
  if (bytes > 1.8e19L) return Err(Code::kInvalidArgument, "size '{}' is too large", s);
  return static_cast<uint64_t>(std::llround(static_cast<double>(bytes)));
}

std::string FormatSize(uint64_t bytes) {
  if (bytes == 0) return "0B";
  for (const auto& u : kSizeCanonical) {
    if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string(u.name);
  }
  return std::to_string(bytes) + "B";
}

std::string FormatSizeHuman(uint64_t bytes) {
  for (const auto& u : kSizeCanonical) {
    if (u.factor == 1 || bytes >= u.factor) {
      double v = static_cast<double>(bytes) / static_cast<double>(u.factor);
      char buf[64];
      if (u.factor == 1 || v >= 100 || std::fabs(v - std::round(v)) < 0.05)
        std::snprintf(buf, sizeof buf, "%.0f%s", std::round(v), std::string(u.name).c_str());
      else
        std::snprintf(buf, sizeof buf, "%.1f%s", v, std::string(u.name).c_str());
      return buf;
    }
  }
  return std::to_string(bytes) + "B";
}

Result<Period> ParsePeriod(std::string_view input) {
  std::string s = Trim(input);
  if (s.empty()) return Err(Code::kInvalidArgument, "empty duration; expected {}", kPeriodExpected);
  if (s[0] == '-') return Err(Code::kInvalidArgument, "duration '{}' must not be negative", s);
  if (s == "0") return Period{};
  Period out;
  long double total_ms = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    double value = 0;
    std::string number;
    if (!SplitNumber(s, &pos, &value, &number))
      return Err(Code::kInvalidArgument, "invalid duration '{}': expected {}", s, kPeriodExpected);
    if (pos < s.size() && s[pos] == ' ') ++pos;
    size_t ustart = pos;
    while (pos < s.size() && std::isalpha(static_cast<unsigned char>(s[pos]))) ++pos;
    std::string unit = s.substr(ustart, pos - ustart);
    if (unit.empty())
      return Err(Code::kInvalidArgument, "invalid duration '{}': '{}' needs a unit ({})", s, number,
                 UnitNames(false));
    const DurUnit* u = nullptr;
    for (const auto& d : kDurUnits) {
      if (d.name == unit) u = &d;
    }
    if (u == nullptr)
      return Err(Code::kInvalidArgument, "invalid duration '{}': {}", s, UnknownUnit(unit, false));
    if (u->ms == 0) {
      if (number.find('.') != std::string::npos)
        return Err(Code::kInvalidArgument,
                   "invalid duration '{}': months must be a whole number (a calendar month has "
                   "no fixed length)",
                   s);
      out.months += static_cast<int64_t>(value);
    } else {
      total_ms += static_cast<long double>(value) * u->ms;
    }
    while (pos < s.size() && s[pos] == ' ') ++pos;
  }
  if (total_ms > 9.2e15L || out.months > 120000)
    return Err(Code::kInvalidArgument, "duration '{}' is too long", s);
  // Sub-millisecond precision is kept in nanoseconds.
  out.fixed = std::chrono::duration_cast<Duration>(
      std::chrono::duration<long double, std::milli>(total_ms));
  return out;
}

Result<Duration> ParseDuration(std::string_view input) {
  auto p = ParsePeriod(input);
  if (!p) {
    // Same message, but the expectation without months.
    return tl::unexpected(p.error());
  }
  if (p->months != 0)
    return Err(Code::kInvalidArgument,
               "duration '{}' uses calendar months (mo), which have no fixed length here; use "
               "days (d)",
               Trim(input));
  return p->fixed;
}

std::string FormatDuration(Duration d) {
  if (d.count() < 0) return "-" + FormatDuration(-d);
  auto ms_total = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms_total == 0) {
    if (d.count() == 0) return "0s";
    // Below a millisecond: keep it exact enough to round-trip as fractional ms.
    char buf[64];
    std::snprintf(buf, sizeof buf, "%gms", static_cast<double>(d.count()) / 1e6);
    return buf;
  }
  std::string out;
  int64_t rest = ms_total;
  for (const DurUnit* u = std::end(kDurUnits) - 2; u >= std::begin(kDurUnits); --u) {
    if (rest >= u->ms) {
      out += std::to_string(rest / u->ms) + std::string(u->name);
      rest %= u->ms;
    }
  }
  return out;
}

std::string FormatPeriod(const Period& p) {
  std::string out;
  if (p.months != 0) out = std::to_string(p.months) + "mo";
  if (p.fixed.count() != 0 || out.empty()) out += FormatDuration(p.fixed);
  return out;
}

std::string FormatDurationHuman(Duration d) {
  double s = ToSeconds(d);
  char buf[64];
  if (s < 0) return "-" + FormatDurationHuman(-d);
  if (s < 10) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
    return buf;
  }
  int64_t secs = static_cast<int64_t>(s);
  struct Part {
    int64_t n;
    const char* u;
  } parts[] = {
      {secs / 86400, "d"}, {secs / 3600 % 24, "h"}, {secs / 60 % 60, "m"}, {secs % 60, "s"}};
  for (int i = 0; i < 4; ++i) {
    if (parts[i].n == 0) continue;
    std::string out = std::to_string(parts[i].n) + parts[i].u;
    if (i + 1 < 4 && parts[i + 1].n != 0) out += std::to_string(parts[i + 1].n) + parts[i + 1].u;
    return out;
  }
  return "0s";
}

}  // namespace cb
