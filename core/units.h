// Units of the fleet spec and of what cbctl prints: sizes and durations.
//
// Sizes follow Postgres's convention: `kB`, `MB`, `GB`, `TB` are powers of 1024 (1MB =
// 1048576 bytes); `KiB`, `MiB`, `GiB`, `TiB` are accepted as the same; `B` is bytes. Decisions:
//   - A bare number is bytes ("4096" = 4096B). (Postgres uses each setting's own base unit;
//     the spec has none, and keys that want megabytes end in `_mb` and take plain integers.)
//   - Units are case-sensitive as in Postgres, except that `KB` is accepted for `kB`; a wrong
//     case ("512mb") is an error that suggests the right one.
//   - A fraction is allowed ("1.5GB") and rounded to the nearest byte; negative sizes are not.
//   - One space between number and unit is allowed ("512 MB").
//
// Durations are a number and a unit: `ms`, `s`, `m` (minutes), `h`, `d` (24 h), `mo` (calendar
// months). Compounds add up ("1h30m"). Decisions:
//   - A calendar month has no fixed length, so months are kept as a count (Period::months),
//     never turned into 30 days: "12mo" of retention means twelve calendar months.
//   - ParseDuration (timeouts, intervals, windows) refuses months; ParsePeriod (retention)
//     takes both parts.
//   - A bare number is an error ("30" — seconds or minutes?), except "0".
//   - Fractions are allowed for ms..d ("1.5s", "0.5h"), not for months.
//
// Formatting is canonical and round-trips through the parser: FormatSize picks the largest
// unit that divides exactly ("512MB", "1536kB", "100B"); FormatDuration writes a compound from
// days down to milliseconds ("1h30m", "500ms", "0s"). FormatSizeHuman and
// FormatDurationHuman are approximate, for tables ("1.5GB", "3d4h").
// Thread-safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace cb {

// What a size or a duration looks like, for "expected ..." in problems.
inline constexpr std::string_view kSizeExpected =
    "a size such as 512MB or 2GiB (B, kB, MB, GB, TB; powers of 1024)";
inline constexpr std::string_view kDurationExpected = "a duration such as 500ms, 30s, 5m, 2h or 1d";
inline constexpr std::string_view kPeriodExpected =
    "a duration such as 30s, 5m, 2h, 7d or 12mo (calendar months)";

// Bytes. kInvalidArgument with the reason ("unknown unit 'mb' (did you mean 'MB'?)").
Result<uint64_t> ParseSize(std::string_view s);
std::string FormatSize(uint64_t bytes);
std::string FormatSizeHuman(uint64_t bytes);  // one decimal at most: "1.5GB", "980kB", "12B"

// A span that may include calendar months: `months` calendar months plus `fixed`.
struct Period {
  int64_t months = 0;
  Duration fixed{0};
  bool operator==(const Period&) const = default;
};

Result<Duration> ParseDuration(std::string_view s);  // no months
Result<Period> ParsePeriod(std::string_view s);      // months allowed
std::string FormatDuration(Duration d);              // canonical: "1h30m", "250ms"
std::string FormatPeriod(const Period& p);           // "12mo", "1mo15d"
std::string FormatDurationHuman(Duration d);         // two largest units: "3d4h", "5m12s", "0.4s"

}  // namespace cb
