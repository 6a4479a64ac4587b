// Pure logic of `db tune`: the Codebolt guidance + pgtune formulas, clamping, the 5% rule,
// reload/restart labels, sizes.
#include <gtest/gtest.h>

#include "controlplane/db/partition.h"
#include "controlplane/db/tune.h"

namespace cb::db {
namespace {

constexpr uint64_t kMB = 1024 * 1024, kGB = 1024 * kMB;

// A pg_settings subset as Postgres 15 reports it with its defaults.
std::map<std::string, PgSetting> Pg15Defaults() {
  std::map<std::string, PgSetting> m;
  auto add = [&](PgSetting s) { m[s.name] = s; };
  add({"shared_buffers", "16384", "8kB", "integer", "postmaster", "16", "1073741823"});
  add({"effective_cache_size", "524288", "8kB", "integer", "user", "1", "2147483647"});
  add({"work_mem", "4096", "kB", "integer", "user", "64", "2147483647"});
  add({"maintenance_work_mem", "65536", "kB", "integer", "user", "1024", "2147483647"});
  add({"max_connections", "100", "", "integer", "postmaster", "1", "262143"});
  add({"wal_buffers", "512", "8kB", "integer", "postmaster", "-1", "262143"});
  add({"min_wal_size", "80", "MB", "integer", "sighup", "2", "2147483647"});
  add({"max_wal_size", "1024", "MB", "integer", "sighup", "2", "2147483647"});
  add({"checkpoint_completion_target", "0.9", "", "real", "sighup", "0", "1"});
  add({"random_page_cost", "4", "", "real", "user", "0", "1.79769e+308"});
  add({"effective_io_concurrency", "1", "", "integer", "user", "0", "1000"});
  add({"default_statistics_target", "100", "", "integer", "user", "1", "10000"});
  add({"max_worker_processes", "8", "", "integer", "postmaster", "0", "262143"});
  add({"max_parallel_workers", "8", "", "integer", "user", "0", "1024"});
  add({"max_parallel_workers_per_gather", "2", "", "integer", "user", "0", "1024"});
  add({"max_parallel_maintenance_workers", "2", "", "integer", "user", "0", "1024"});
  return m;
}

const TuneItem& Find(const std::vector<TuneItem>& v, const std::string& name) {
  for (const auto& i : v)
    if (i.name == name) return i;
  static TuneItem none;
  ADD_FAILURE() << name << " missing from the plan";
  return none;
}

TEST(DbTune, GuidanceFor16GbAnd8Cpus) {
  TuneInput in{16 * kGB, 8, 200, "ssd", ""};
  auto plan = Recommend(in, Pg15Defaults());
  EXPECT_EQ(Find(plan, "shared_buffers").recommended, "4GB");
  EXPECT_EQ(Find(plan, "shared_buffers").action, "restart");
  EXPECT_EQ(Find(plan, "shared_buffers").current, "128MB");
  EXPECT_EQ(Find(plan, "effective_cache_size").recommended, "12GB");
  EXPECT_EQ(Find(plan, "effective_cache_size").action, "reload");
  EXPECT_EQ(Find(plan, "work_mem").recommended, "32MB");
  EXPECT_EQ(Find(plan, "maintenance_work_mem").recommended, "512MB");
  EXPECT_EQ(Find(plan, "max_connections").recommended, "200");
  EXPECT_EQ(Find(plan, "max_connections").action, "restart");
  EXPECT_EQ(Find(plan, "wal_buffers").recommended, "16MB");
  EXPECT_EQ(Find(plan, "min_wal_size").recommended, "1GB");
  EXPECT_EQ(Find(plan, "max_wal_size").recommended, "4GB");
  EXPECT_EQ(Find(plan, "random_page_cost").recommended, "1.1");
  EXPECT_EQ(Find(plan, "effective_io_concurrency").recommended, "200");
  EXPECT_EQ(Find(plan, "max_worker_processes").action, "skip");  // 8 already
  EXPECT_EQ(Find(plan, "max_parallel_workers_per_gather").recommended, "4");
  // Unchanged values are skipped with the reason.
  EXPECT_EQ(Find(plan, "checkpoint_completion_target").action, "skip");
  EXPECT_NE(Find(plan, "checkpoint_completion_target").reason.find("already"), std::string::npos);
}

TEST(DbTune, SmallHostCapsAndHdd) {
  TuneInput in{2 * kGB, 2, 200, "hdd", ""};
  auto plan = Recommend(in, Pg15Defaults());
  EXPECT_EQ(Find(plan, "shared_buffers").recommended, "512MB");
  EXPECT_EQ(Find(plan, "work_mem").recommended, "10MB");  // 2GB / 200
  EXPECT_NE(Find(plan, "work_mem").reason.find("capped"), std::string::npos);
  EXPECT_EQ(Find(plan, "maintenance_work_mem").recommended, "256MB");
  EXPECT_EQ(Find(plan, "random_page_cost").action, "skip");  // 4 already
  EXPECT_EQ(Find(plan, "effective_io_concurrency").recommended, "2");
  // Fewer than 4 CPUs: pgtune leaves the parallel settings alone.
  for (const auto& i : plan) EXPECT_NE(i.name, "max_worker_processes");
}

TEST(DbTune, WithinFivePercentIsSkipped) {
  auto s = Pg15Defaults();
  s["shared_buffers"].setting = std::to_string(4 * kGB / 8192 - 1000);  // ~1.9% below 4GB
  auto plan = Recommend({16 * kGB, 8, 200, "ssd", ""}, s);
  EXPECT_EQ(Find(plan, "shared_buffers").action, "skip");
  EXPECT_NE(Find(plan, "shared_buffers").reason.find("within 5%"), std::string::npos);
  s["shared_buffers"].setting = std::to_string(4 * kGB / 8192 * 90 / 100);  // 10% below
  plan = Recommend({16 * kGB, 8, 200, "ssd", ""}, s);
  EXPECT_EQ(Find(plan, "shared_buffers").action, "restart");
}

TEST(DbTune, ClampedToPostgresLimits) {
  auto s = Pg15Defaults();
  s["effective_io_concurrency"].max_val = "100";
  auto plan = Recommend({16 * kGB, 8, 200, "ssd", ""}, s);
  EXPECT_EQ(Find(plan, "effective_io_concurrency").recommended, "100");
  EXPECT_NE(Find(plan, "effective_io_concurrency").reason.find("maximum"), std::string::npos);
}

TEST(DbTune, MaxConnectionsFlagChangesWorkMemCap) {
  auto plan = Recommend({4 * kGB, 4, 500, "ssd", ""}, Pg15Defaults());
  EXPECT_EQ(Find(plan, "max_connections").recommended, "500");
  EXPECT_EQ(Find(plan, "work_mem").recommended, "8MB");  // 4096MB / 500 = 8.19 -> 8MB
}

TEST(DbTune, SizesParseAndFormat) {
  EXPECT_EQ(*ParseSize("16GB"), 16 * kGB);
  EXPECT_EQ(*ParseSize("512MiB"), 512 * kMB);
  EXPECT_EQ(*ParseSize("1.5G"), 1536 * kMB);
  EXPECT_EQ(*ParseSize("2048"), 2048 * kMB);
  EXPECT_FALSE(ParseSize("lots").has_value());
  EXPECT_FALSE(ParseSize("16XB").has_value());
  EXPECT_EQ(FormatBytes(4 * kGB), "4GB");
  EXPECT_EQ(FormatBytes(1536 * kMB), "1536MB");
  EXPECT_EQ(FormatBytes(64 * 1024), "64kB");
}

TEST(DbTune, LocalHostDetection) {
  EXPECT_TRUE(IsLocalHost(""));
  EXPECT_TRUE(IsLocalHost("/var/run/postgresql"));
  EXPECT_TRUE(IsLocalHost("localhost"));
  EXPECT_TRUE(IsLocalHost("127.0.0.1"));
  EXPECT_FALSE(IsLocalHost("db.internal"));
  EXPECT_FALSE(IsLocalHost("10.0.0.5"));
}

TEST(DbPartitionCalendar, CutoverLeavesAWeekOfMargin) {
  auto at = [](int y, int m, int d) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 12;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
  };
  EXPECT_EQ(FormatMonth(CutoverMonth(at(2026, 12, 4))), "2027-01-01 00:00:00");
  EXPECT_EQ(FormatMonth(CutoverMonth(at(2026, 12, 28))), "2027-02-01 00:00:00");
  EXPECT_EQ(FormatMonth(AddMonths(MonthStart(at(2026, 1, 15)), -13)), "2024-12-01 00:00:00");
  EXPECT_EQ(FormatMonth(AddMonths(MonthStart(at(2026, 11, 30)), 2)), "2027-01-01 00:00:00");
  EXPECT_EQ(*ParseRetentionMonths("12mo"), 12);
  EXPECT_EQ(*ParseRetentionMonths("2y"), 24);
  EXPECT_EQ(*ParseRetentionMonths("90d"), 3);
  EXPECT_FALSE(ParseRetentionMonths("12 weeks").has_value());
  EXPECT_FALSE(ParseRetentionMonths("mo").has_value());
}

}  // namespace
}  // namespace cb::db
