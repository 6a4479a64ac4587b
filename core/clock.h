// Time comes from outside. Pure logic takes `now` as an argument; loops expose step(now).
// Clock is the seam: RealClock reads the system, tests use tests/fakes/fake_clock.h.
//
// Two kinds of time:
//   MonoTime — steady clock, for timeouts, backoff and uptime (never jumps).
//   WallTime — system clock, for what is shown to people and persisted (ISO 8601, UTC).
// Thread-safety: RealClock is stateless and safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cb {

using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime Now() const = 0;
  virtual WallTime WallNow() const = 0;
};

class RealClock final : public Clock {
 public:
  MonoTime Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
  // The process-wide instance.
  static RealClock* Get();
};

// Seconds (fractional allowed) to a Duration.
inline Duration Seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}
inline double ToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// "2026-12-04T16:47:58.123Z"
std::string FormatWallTime(WallTime t);
// Wall time of a monotonic instant, given a matching (mono, wall) pair read together.
inline WallTime MonoToWall(MonoTime t, MonoTime mono_now, WallTime wall_now) {
  return wall_now + std::chrono::duration_cast<WallTime::duration>(t - mono_now);
}

}  // namespace cb
