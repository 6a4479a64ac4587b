// DbMaintainer scheduling and reporting, driven by the fake clock with a fake runner.
#include "controlplane/db_maintainer.h"

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.h"

namespace cb::cp {
namespace {

const char* kSpec = R"(apiVersion: cbctl/v1
deployment: t
database:
  url: "postgresql://u@127.0.0.1:5432/app"
  password_file: /etc/pw
  partitioning: {tables: [event_log, agent_execution_phases], interval: month, premake: 3, retention: 12mo}
)";

struct Harness {
  testing::FakeClock clock;
  std::optional<std::string> spec = std::string(kSpec);
  std::vector<std::pair<MaintainJob, WallTime>> runs;
  Result<db::MaintainReport> next = db::MaintainReport{};
  std::vector<std::string> logs;
  std::vector<wire::AuditEntry> audits;
  DbMaintainer m;
  explicit Harness(Duration interval)
      : m([this]() -> Result<std::optional<std::string>> { return spec; },
          [this](const MaintainJob& j, WallTime now) -> Result<db::MaintainReport> {
            runs.emplace_back(j, now);
            return next;
          },
          [this](const std::string& l) { logs.push_back(l); },
          [this](const wire::AuditEntry& e) { audits.push_back(e); }, DbMaintainerOptions{interval}) {}
  bool Step() { return m.Step(clock.Now(), clock.WallNow()); }
};

TEST(DbMaintainer, JobFromSpecTakesTablesPremakeRetentionAndNeverDrops) {
  auto j = MaintainJobFromSpec(kSpec);
  ASSERT_TRUE(j) << j.error().message;
  ASSERT_TRUE(j->has_value());
  EXPECT_EQ((*j)->db_url, "postgresql://u@127.0.0.1:5432/app");
  EXPECT_EQ((*j)->password_file, "/etc/pw");
  EXPECT_EQ((*j)->options.tables, (std::vector<std::string>{"event_log", "agent_execution_phases"}));
  EXPECT_EQ((*j)->options.premake, 3);
  EXPECT_EQ((*j)->options.retention, "12mo");
  EXPECT_FALSE((*j)->options.drop);
  EXPECT_TRUE((*j)->options.skip_unpartitioned);

  auto none = MaintainJobFromSpec("apiVersion: cbctl/v1\ndatabase: {url: \"postgresql://u@h/db\"}\n");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->has_value());
  auto sqlite = MaintainJobFromSpec("apiVersion: cbctl/v1\n");  // default database is SQLite
  ASSERT_TRUE(sqlite);
  EXPECT_FALSE(sqlite->has_value());
  EXPECT_FALSE(MaintainJobFromSpec("apiVersion: [oops\n"));
}

TEST(DbMaintainer, RunsAtFirstStepThenOncePerInterval) {
  Harness h(Seconds(3600));
  EXPECT_TRUE(h.Step());
  ASSERT_EQ(h.runs.size(), 1u);
  EXPECT_EQ(h.runs[0].second, h.clock.WallNow());  // maintenance uses the wall time it is given (UTC)
  h.clock.AdvanceSeconds(3599);
  EXPECT_FALSE(h.Step());
  EXPECT_EQ(h.runs.size(), 1u);
  h.clock.AdvanceSeconds(1);
  EXPECT_TRUE(h.Step());
  EXPECT_EQ(h.runs.size(), 2u);
  EXPECT_FALSE(h.Step());  // not twice for the same due time
  EXPECT_EQ(h.runs.size(), 2u);
  EXPECT_EQ(h.m.stats().runs_ok, 2);
  EXPECT_EQ(h.audits.size(), 2u);
  EXPECT_EQ(h.audits[0].action, "db maintain");
  EXPECT_EQ(h.audits[0].result, "ok");
}

TEST(DbMaintainer, UnreachableDatabaseIsLoggedCountedAndRetriedNextInterval) {
  Harness h(Seconds(60));
  h.next = Err(Code::kUnavailable, "cannot connect to postgresql://u@127.0.0.1:5432/app: refused");
  EXPECT_TRUE(h.Step());
  EXPECT_EQ(h.m.stats().runs_error, 1);
  EXPECT_EQ(h.m.stats().runs_ok, 0);
  ASSERT_FALSE(h.logs.empty());
  EXPECT_NE(h.logs.back().find("refused"), std::string::npos);
  EXPECT_NE(h.logs.back().find("retrying in 60s"), std::string::npos);
  ASSERT_EQ(h.audits.size(), 1u);
  EXPECT_EQ(h.audits[0].result, "unavailable");
  h.clock.AdvanceSeconds(30);
  EXPECT_FALSE(h.Step());
  h.next = db::MaintainReport{};
  h.clock.AdvanceSeconds(30);
  EXPECT_TRUE(h.Step());
  EXPECT_EQ(h.m.stats().runs_ok, 1);
  EXPECT_TRUE(h.m.stats().last_success.has_value());
  EXPECT_NE(h.m.RenderMetrics().find("cbctld_db_maintain_runs_total{result=\"error\"} 1"), std::string::npos);
}

TEST(DbMaintainer, NoSpecOrNoPartitioningRunsNothing) {
  Harness h(Seconds(60));
  h.spec.reset();
  EXPECT_TRUE(h.Step());
  EXPECT_TRUE(h.runs.empty());
  h.spec = "apiVersion: cbctl/v1\n";
  h.clock.AdvanceSeconds(60);
  EXPECT_TRUE(h.Step());
  EXPECT_TRUE(h.runs.empty());
  EXPECT_EQ(h.m.stats().runs_ok + h.m.stats().runs_error, 0);
  // A spec that no longer parses is an error, logged, not fatal.
  h.spec = "database: [\n";
  h.clock.AdvanceSeconds(60);
  EXPECT_TRUE(h.Step());
  EXPECT_EQ(h.m.stats().runs_error, 1);
}

TEST(DbMaintainer, ReportsCreatedDetachedAndDefaultRowsAsMetrics) {
  Harness h(Seconds(60));
  db::MaintainReport r;
  r.actions.push_back({"\"public\".\"event_log\"", "create", "\"public\".\"event_log_p2027_01\"", "", {}, true});
  r.actions.push_back({"\"public\".\"event_log\"", "create", "\"public\".\"event_log_p2027_02\"", "", {}, true});
  r.actions.push_back({"\"public\".\"event_log\"", "move-default", "\"public\".\"event_log_p2026_03\"",
                       "12 rows of 2026-03", {}, true});
  r.actions.push_back({"\"public\".\"event_log\"", "move-default", "\"public\".\"event_log_p2026_04\"",
                       "3 rows of 2026-04", {}, true});
  r.actions.push_back({"\"public\".\"event_log\"", "detach", "\"public\".\"event_log_p2024_01\"", "", {}, true});
  r.problems.push_back("12 row(s) for 2026-03 in default partition ...");
  h.next = r;
  EXPECT_TRUE(h.Step());
  auto s = h.m.stats();
  EXPECT_EQ(s.created, 2);
  EXPECT_EQ(s.detached, 1);
  EXPECT_EQ(s.default_rows["event_log"], 15);
  EXPECT_EQ(s.default_rows["agent_execution_phases"], 0);
  std::string m = h.m.RenderMetrics();
  EXPECT_NE(m.find("cbctld_db_default_partition_rows{table=\"event_log\"} 15"), std::string::npos) << m;
  EXPECT_NE(m.find("cbctld_db_maintain_runs_total{result=\"ok\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("cbctld_db_maintain_last_success_timestamp_seconds 1800000000.000"), std::string::npos) << m;
  ASSERT_EQ(h.audits.size(), 1u);
  EXPECT_EQ(h.audits[0].result, "problems");
  EXPECT_NE(h.audits[0].detail.find("2 partition(s) created, 1 detached"), std::string::npos);
  bool logged_problem = false;
  for (const auto& l : h.logs) logged_problem |= l.find("problem: 12 row(s)") != std::string::npos;
  EXPECT_TRUE(logged_problem);
  // The next pass finds the default empty again: the gauge goes back to 0.
  h.next = db::MaintainReport{};
  h.clock.AdvanceSeconds(60);
  EXPECT_TRUE(h.Step());
  EXPECT_EQ(h.m.stats().default_rows["event_log"], 0);
}

}  // namespace
}  // namespace cb::cp
