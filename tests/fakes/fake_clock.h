// A Clock that moves only when the test says so. Not thread-safe: drive it from the test thread.
#pragma once

#include "core/clock.h"

namespace cb::testing {

class FakeClock final : public Clock {
 public:
  FakeClock() : mono_(std::chrono::hours(1000)), wall_(std::chrono::seconds(1'800'000'000)) {}
  MonoTime Now() const override { return mono_; }
  WallTime WallNow() const override { return wall_; }
  void Advance(Duration d) {
    mono_ += d;
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
  }
  void AdvanceSeconds(double s) { Advance(Seconds(s)); }

 private:
  MonoTime mono_;
  WallTime wall_;
};

}  // namespace cb::testing
