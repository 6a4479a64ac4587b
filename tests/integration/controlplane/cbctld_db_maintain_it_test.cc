// cbctld's scheduled db maintenance (issue 4 item 4) against a real Postgres 15: the real
// cbctld with a short --maintain-interval and a spec whose database.partitioning lists a table.
#include <gtest/gtest.h>

#include "tests/integration/controlplane/cp_harness.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_test_util.h"

namespace cb::cpit {
namespace {

using cb::testing::PgCluster;
using cb::testing::TestDatabase;

std::string SpecFor(const std::string& url) {
  return "apiVersion: cbctl/v1\ndeployment: it\ndatabase:\n  url: \"" + url +
         "\"\n  partitioning: {tables: [event_log], interval: month, premake: 3}\nhosts:\n"
         "  - {name: local, address: local}\n";
}

// A metric series' value as a double (-1 when absent).
double Metric(CpWorld& w, const std::string& series) {
  std::string body = w.Get("/metrics", w.admin()).body;
  std::string key = "\n" + series + " ";
  auto pos = body.find(key);
  if (pos == std::string::npos) return -1;
  return std::atof(body.c_str() + pos + key.size());
}

TEST(CbctldDbMaintainIt, ScheduledPassPremakesPartitionsAndReportsDefaultRows) {
  REQUIRE_PG();
  TestDatabase tdb("cpmaint");
  ASSERT_TRUE(tdb.ok());
  // A natively partitioned table with only a default partition; three rows of two months ago
  // sit in it (the problem maintenance must report).
  ASSERT_TRUE(tdb.Psql(
      "CREATE TABLE event_log (id bigserial, created_at timestamptz NOT NULL, v int) PARTITION BY RANGE (created_at);"
      "CREATE TABLE event_log_default PARTITION OF event_log DEFAULT;"
      "INSERT INTO event_log (created_at, v) SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
      " - interval '45 days' + g * interval '1 minute', g FROM generate_series(1, 3) g"));
  ASSERT_EQ(tdb.Query("SELECT count(*) FROM event_log_default"), "3");

  CpWorld w;
  w.Serve({"--maintain-interval", "1"});
  EXPECT_EQ(Metric(w, "cbctld_db_maintain_last_success_timestamp_seconds"), 0);
  auto r = w.Apply(SpecFor(tdb.Url()), 0);
  ASSERT_EQ(r.status, 200) << r.body;

  // Within a few intervals: the current month and 3 ahead exist, the default is empty again.
  bool done = WaitFor(
      [&] {
        return std::atoi(tdb.Query("SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_log'::regclass "
                                   "AND inhrelid::regclass::text <> 'event_log_default' AND "
                                   "inhrelid::regclass::text >= 'event_log_p' || to_char(now() AT TIME ZONE "
                                   "'UTC', 'YYYY_MM')")
                             .c_str()) >= 4;
      },
      30);
  ASSERT_TRUE(done) << tdb.Query("SELECT string_agg(inhrelid::regclass::text, ',') FROM pg_inherits") << "\n"
                    << w.Log();
  ASSERT_TRUE(WaitFor([&] { return Metric(w, "cbctld_db_maintain_last_success_timestamp_seconds") > 0; }, 15))
      << w.Log();
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log"), "3");  // nothing lost
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log_default"), "0");
  // The first successful pass found the three rows; it is the only one that can have (they moved out).
  std::string body = w.Get("/metrics", w.admin()).body;
  EXPECT_GE(Metric(w, "cbctld_db_maintain_runs_total{result=\"ok\"}"), 1) << body;
  EXPECT_NE(w.Log().find("db maintain: problem: 3 row(s)"), std::string::npos) << w.Log();
  bool audited_problem = false;
  auto audit = w.Get("/v1/audit?limit=100", w.admin()).Json()["entries"];
  for (const auto& e : audit) {
    if (e["action"] == "db maintain" && e["result"] == "problems" &&
        e["detail"].get<std::string>().find("default partition") != std::string::npos)
      audited_problem = true;
  }
  EXPECT_TRUE(audited_problem) << audit.dump(1);
  // Detach only, never drop: nothing was dropped (no partitions past a retention here either).
  EXPECT_EQ(Metric(w, "cbctld_db_maintain_partitions_detached_total"), 0);
}

TEST(CbctldDbMaintainIt, DefaultRowsShowInTheMetricAndAnUnreachableDatabaseIsRetriedNotFatal) {
  REQUIRE_PG();
  TestDatabase tdb("cpmaint2");
  ASSERT_TRUE(tdb.ok());
  ASSERT_TRUE(tdb.Psql(
      "CREATE TABLE event_log (id bigserial, created_at timestamptz NOT NULL, v int) PARTITION BY RANGE (created_at);"
      "CREATE TABLE event_log_default PARTITION OF event_log DEFAULT;"));
  CpWorld w;
  // 3 s: the gauge holds the last pass's count, so the window to see it is one interval.
  w.Serve({"--maintain-interval", "3"});
  // First a database nobody listens on: logged, counted, cbctld keeps serving.
  auto r = w.Apply(SpecFor("postgresql://nobody@127.0.0.1:1/nothing"), 0);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(WaitFor([&] { return Metric(w, "cbctld_db_maintain_runs_total{result=\"error\"}") >= 2; }, 30))
      << w.Log();
  EXPECT_EQ(w.Get("/v1/version", "").status, 200);
  EXPECT_NE(w.Log().find("db maintain: "), std::string::npos);
  // Then the real one, after rows landed in its default partition: the gauge shows them.
  ASSERT_TRUE(tdb.Psql("INSERT INTO event_log (created_at, v) SELECT now() - interval '70 days', g FROM "
                       "generate_series(1, 5) g"));
  r = w.Apply(SpecFor(tdb.Url()), 1);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(WaitFor([&] { return Metric(w, "cbctld_db_default_partition_rows{table=\"event_log\"}") == 5; }, 20))
      << w.Get("/metrics", w.admin()).body << "\n" << w.Log();
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log"), "5");
}

}  // namespace
}  // namespace cb::cpit
