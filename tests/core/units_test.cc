#include "core/units.h"

#include <gtest/gtest.h>

namespace cb {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr uint64_t kMiB = 1024 * 1024;

TEST(Size, PostgresUnitsArePowersOf1024) {
  EXPECT_EQ(*ParseSize("512MB"), 512 * kMiB);
  EXPECT_EQ(*ParseSize("2GiB"), 2048 * kMiB);
  EXPECT_EQ(*ParseSize("2GB"), *ParseSize("2GiB"));
  EXPECT_EQ(*ParseSize("1kB"), 1024u);
  EXPECT_EQ(*ParseSize("1KB"), 1024u);
  EXPECT_EQ(*ParseSize("1KiB"), 1024u);
  EXPECT_EQ(*ParseSize("1TB"), 1024 * 1024 * kMiB);
  EXPECT_EQ(*ParseSize("100B"), 100u);
  EXPECT_EQ(*ParseSize("4096"), 4096u);  // bare number: bytes
  EXPECT_EQ(*ParseSize("1.5GB"), 1536 * kMiB);
  EXPECT_EQ(*ParseSize(" 512 MB "), 512 * kMiB);
  EXPECT_EQ(*ParseSize("0"), 0u);
}

TEST(Size, ClearErrors) {
  auto wrong_case = ParseSize("512mb");
  ASSERT_FALSE(wrong_case);
  EXPECT_EQ(wrong_case.error().code, Code::kInvalidArgument);
  EXPECT_NE(wrong_case.error().message.find("unknown unit 'mb' (did you mean 'MB'?)"),
            std::string::npos)
      << wrong_case.error().message;
  EXPECT_NE(ParseSize("-1MB").error().message.find("negative"), std::string::npos);
  EXPECT_FALSE(ParseSize(""));
  EXPECT_FALSE(ParseSize("MB"));
  EXPECT_FALSE(ParseSize("12XB"));
  EXPECT_FALSE(ParseSize("1e3MB"));
  EXPECT_FALSE(ParseSize("99999999999TB"));
}

TEST(Size, FormatIsExactAndRoundTrips) {
  EXPECT_EQ(FormatSize(512 * kMiB), "512MB");
  EXPECT_EQ(FormatSize(1536 * 1024), "1536kB");
  EXPECT_EQ(FormatSize(2048 * kMiB), "2GB");
  EXPECT_EQ(FormatSize(100), "100B");
  EXPECT_EQ(FormatSize(0), "0B");
  for (uint64_t b : {uint64_t{0}, uint64_t{1}, uint64_t{1023}, uint64_t{1024}, 512 * kMiB,
                     3 * kMiB + 1, 5 * 1024 * kMiB})
    EXPECT_EQ(*ParseSize(FormatSize(b)), b) << b;
  EXPECT_EQ(FormatSizeHuman(1536 * kMiB), "1.5GB");
  EXPECT_EQ(FormatSizeHuman(12), "12B");
  EXPECT_EQ(FormatSizeHuman(512 * kMiB), "512MB");
}

TEST(Duration, Units) {
  EXPECT_EQ(*ParseDuration("30s"), seconds(30));
  EXPECT_EQ(*ParseDuration("5m"), minutes(5));
  EXPECT_EQ(*ParseDuration("2h"), hours(2));
  EXPECT_EQ(*ParseDuration("1d"), hours(24));
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("1h30m"), minutes(90));
  EXPECT_EQ(*ParseDuration("0"), Duration(0));
  EXPECT_EQ(*ParseDuration("5 s"), seconds(5));
}

TEST(Duration, MonthsAreCalendarMonthsNotThirtyDays) {
  auto p = ParsePeriod("12mo");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->months, 12);
  EXPECT_EQ(p->fixed, Duration(0));
  auto mixed = ParsePeriod("1mo15d");
  ASSERT_TRUE(mixed);
  EXPECT_EQ(mixed->months, 1);
  EXPECT_EQ(mixed->fixed, hours(15 * 24));
  EXPECT_EQ(ParsePeriod("7d")->fixed, hours(7 * 24));
  // A timeout cannot be in months.
  auto d = ParseDuration("1mo");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("calendar months"), std::string::npos);
  EXPECT_FALSE(ParsePeriod("1.5mo"));
}

TEST(Duration, ClearErrors) {
  auto bare = ParseDuration("30");
  ASSERT_FALSE(bare);
  EXPECT_NE(bare.error().message.find("needs a unit"), std::string::npos) << bare.error().message;
  auto word = ParseDuration("5min");
  ASSERT_FALSE(word);
  EXPECT_NE(word.error().message.find("did you mean 'm'?"), std::string::npos)
      << word.error().message;
  auto caps = ParseDuration("5S");
  ASSERT_FALSE(caps);
  EXPECT_NE(caps.error().message.find("did you mean 's'?"), std::string::npos);
  EXPECT_FALSE(ParseDuration("-5s"));
  EXPECT_FALSE(ParseDuration(""));
  EXPECT_FALSE(ParseDuration("s"));
  EXPECT_FALSE(ParseDuration("5s garbage"));
  EXPECT_FALSE(ParseDuration("99999999999999d"));
}

TEST(Duration, FormatIsCanonicalAndRoundTrips) {
  EXPECT_EQ(FormatDuration(minutes(90)), "1h30m");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(Duration(0)), "0s");
  EXPECT_EQ(FormatDuration(hours(48)), "2d");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1s500ms");
  for (Duration d : {Duration(0), Duration(milliseconds(1)), Duration(seconds(59)),
                     Duration(minutes(61)), Duration(hours(100)), Duration(milliseconds(86400001))})
    EXPECT_EQ(*ParseDuration(FormatDuration(d)), d) << FormatDuration(d);
  EXPECT_EQ(FormatPeriod(Period{12, {}}), "12mo");
  EXPECT_EQ(FormatPeriod(Period{1, hours(24)}), "1mo1d");
  EXPECT_EQ(FormatPeriod(Period{}), "0s");
  EXPECT_EQ(*ParsePeriod(FormatPeriod(Period{3, minutes(5)})), (Period{3, minutes(5)}));
  EXPECT_EQ(FormatDurationHuman(seconds(3 * 86400 + 4 * 3600 + 5)), "3d4h");
  EXPECT_EQ(FormatDurationHuman(seconds(312)), "5m12s");
  EXPECT_EQ(FormatDurationHuman(milliseconds(400)), "0.4s");
}

}  // namespace
}  // namespace cb
