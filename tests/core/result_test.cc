#include "core/result.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "core/clock.h"

namespace cb {
namespace {

Result<int> ParsePositive(int v) {
  if (v <= 0) return Err(Code::kInvalidArgument, "expected a positive integer, found {}", v);
  return v;
}

Result<int> Doubled(int v) {
  CB_TRY(int x, ParsePositive(v));
  return 2 * x;
}

TEST(Result, PropagatesErrorsWithCodeAndMessage) {
  EXPECT_EQ(*Doubled(4), 8);
  auto r = Doubled(-1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().message, "expected a positive integer, found -1");
  EXPECT_EQ(r.error().Wrap("spec.yaml:3:7").message,
            "spec.yaml:3:7: expected a positive integer, found -1");
}

TEST(Result, CodeNamesRoundTrip) {
  for (Code c : {Code::kInvalidArgument, Code::kNotFound, Code::kConflict, Code::kUnavailable,
                 Code::kPermissionDenied, Code::kUnauthenticated, Code::kInternal}) {
    EXPECT_EQ(CodeFromName(CodeName(c)), c) << CodeName(c);
  }
  EXPECT_EQ(CodeFromName("no-such-code"), Code::kInternal);
}

TEST(Result, ErrnoMapsToCodes) {
  EXPECT_EQ(ErrnoError("open x", ENOENT).code, Code::kNotFound);
  EXPECT_EQ(ErrnoError("open x", EACCES).code, Code::kPermissionDenied);
  EXPECT_EQ(ErrnoError("connect", ECONNREFUSED).code, Code::kUnavailable);
  EXPECT_NE(ErrnoError("open x", ENOENT).message.find("open x: "), std::string::npos);
}

TEST(Clock, FormatsWallTimeInUtc) {
  WallTime t{std::chrono::milliseconds(1'800'000'000'123)};
  EXPECT_EQ(FormatWallTime(t), "2027-01-15T08:00:00.123Z");
}

}  // namespace
}  // namespace cb
