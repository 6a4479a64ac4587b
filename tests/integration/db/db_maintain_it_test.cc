// `db status`, `db maintain` and `db vacuum` against a real Postgres 15.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "controlplane/db/conn.h"
#include "controlplane/db/maintain.h"
#include "controlplane/db/partition.h"
#include "controlplane/db/status.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_test_util.h"

namespace cb::db {
namespace {

using cb::testing::PgCluster;
using cb::testing::TestDatabase;


std::unique_ptr<Db> Open(const std::string& url) { return cb::testing::OpenDb(url); }

void MakePartitioned(TestDatabase& tdb, Db& db, const std::string& retention = "") {
  ASSERT_TRUE(tdb.Psql("CREATE TABLE event_log (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, v int);"
                       "INSERT INTO event_log (created_at, v) SELECT now() - g * interval '1 hour', g FROM "
                       "generate_series(1, 2000) g"));
  PartitionOptions o;
  o.table = "event_log";
  o.retention = retention;
  auto r = Partition(db, o, *RealClock::Get());
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
}

TEST(DbStatusIt, ReportsTablesPartitionsDefaultRowsAndSettings) {
  REQUIRE_PG();
  TestDatabase tdb("status");
  auto db = Open(tdb.Url());
  ASSERT_TRUE(db);
  MakePartitioned(tdb, *db);
  ASSERT_TRUE(tdb.Psql("CREATE TABLE other (id int); INSERT INTO other SELECT generate_series(1, 100); "
                       "INSERT INTO event_log (created_at, v) VALUES (now() + interval '3 years', 0); ANALYZE"));
  StatusOptions o;
  o.tune.ram_bytes = 8ull << 30;
  o.tune.cpus = 4;
  auto s = CollectStatus(*db, o);
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_EQ(s->version.substr(0, 2), "15");
  EXPECT_GT(s->size_bytes, 0);
  EXPECT_GE(s->connections_total, 1);
  EXPECT_EQ(s->max_connections, std::stoi(tdb.Query("SHOW max_connections")));
  ASSERT_FALSE(s->largest.empty());
  EXPECT_EQ(s->largest[0].name, "event_log");
  EXPECT_TRUE(s->largest[0].partitioned);
  EXPECT_GE(s->largest[0].rows, 2000);
  EXPECT_EQ(s->largest[0].last_analyze_kind, "manual");
  ASSERT_EQ(s->partitioned.size(), 1u);
  EXPECT_TRUE(s->partitioned[0].managed);
  EXPECT_EQ(s->partitioned[0].default_rows, 1);
  EXPECT_EQ(s->partitioned[0].partitions.size(), 6u);
  ASSERT_FALSE(s->problems.empty());
  EXPECT_NE(s->problems[0].find("default partition"), std::string::npos);
  EXPECT_FALSE(s->settings_off.empty());
  auto j = ToJson(*s);
  EXPECT_EQ(j["partitioned_tables"][0]["default_rows"], 1);
  EXPECT_TRUE(j["settings_differing"][0].contains("action"));
  std::string text = RenderStatus(*s);
  EXPECT_NE(text.find("event_log"), std::string::npos);
  EXPECT_NE(text.find("Problems"), std::string::npos);
}

TEST(DbStatusIt, ReadOnlyAndWorksForAWeakRole) {
  REQUIRE_PG();
  TestDatabase tdb("statusro");
  std::string role = tdb.CreateRole("ro");
  auto db = Open(tdb.UrlFor(role));
  ASSERT_TRUE(db);
  StatusOptions o;
  o.tune.db_host = "db.elsewhere";
  auto s = CollectStatus(*db, o);
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_NE(s->settings_note.find("--ram"), std::string::npos);
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM pg_namespace WHERE nspname = 'cbctl'"), "0");
}

TEST(DbMaintainIt, PremakesMovesDefaultRowsAndDetachesPastRetention) {
  REQUIRE_PG();
  TestDatabase tdb("maint");
  auto db = Open(tdb.Url());
  ASSERT_TRUE(db);
  MakePartitioned(tdb, *db, "1mo");
  // A row far in the future lands in the default partition.
  ASSERT_TRUE(tdb.Psql("INSERT INTO event_log (created_at, v) VALUES (now() + interval '14 months', -1)"));
  int64_t total = std::stoll(tdb.Query("SELECT count(*) FROM event_log"));
  // Ten months from now: premake needs new partitions, and the old-rows partition is past 1mo retention.
  WallTime later = RealClock::Get()->WallNow() + std::chrono::hours(24 * 300);
  MaintainOptions o;
  auto plan = PlanMaintain(*db, o, later);
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  int creates = 0, moves = 0, detaches = 0;
  bool old_detached = false;
  for (const auto& a : plan->actions) {
    creates += a.kind == "create";
    moves += a.kind == "move-default";
    detaches += a.kind == "detach";
    old_detached |= a.kind == "detach" && a.object.find("event_log_old") != std::string::npos;
  }
  EXPECT_GE(creates, 4);
  EXPECT_EQ(moves, 1);
  EXPECT_GE(detaches, 1);
  EXPECT_TRUE(old_detached);
  ASSERT_FALSE(plan->problems.empty());
  EXPECT_NE(plan->problems[0].find("default partition"), std::string::npos);
  // Planning changed nothing.
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log_default"), "1");
  ASSERT_TRUE(RunMaintain(*db, *plan, o).has_value());
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log_default"), "0");
  // The old rows were detached (not dropped): gone from event_log, still a table.
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log_old") , "2000");
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM pg_inherits WHERE inhrelid = 'event_log_old'::regclass"), "0");
  EXPECT_EQ(std::stoll(tdb.Query("SELECT count(*) FROM event_log")), total - 2000);
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log WHERE v = -1"), "1");
  // A second plan at the same time has nothing left to do.
  auto again = PlanMaintain(*db, o, later);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->actions.empty()) << again->actions.size() << " " << again->actions[0].kind << " "
                                      << again->actions[0].object;
}

TEST(DbMaintainIt, DropOnlyWithDrop) {
  REQUIRE_PG();
  TestDatabase tdb("maintdrop");
  auto db = Open(tdb.Url());
  MakePartitioned(tdb, *db, "1mo");
  MaintainOptions o;
  o.drop = true;
  o.premake = 0;
  WallTime later = RealClock::Get()->WallNow() + std::chrono::hours(24 * 300);
  auto plan = PlanMaintain(*db, o, later);
  ASSERT_TRUE(plan.has_value());
  ASSERT_TRUE(RunMaintain(*db, *plan, o).has_value());
  EXPECT_EQ(tdb.Query("SELECT to_regclass('event_log_old') IS NULL"), "t");
}

TEST(DbMaintainIt, UnpartitionedTableIsRefused) {
  REQUIRE_PG();
  TestDatabase tdb("maintno");
  auto db = Open(tdb.Url());
  ASSERT_TRUE(tdb.Psql("CREATE TABLE plain (id int)"));
  MaintainOptions o;
  o.tables = {"plain"};
  auto plan = PlanMaintain(*db, o, RealClock::Get()->WallNow());
  ASSERT_FALSE(plan.has_value());
  EXPECT_NE(plan.error().message.find("db partition"), std::string::npos);
}

TEST(DbMaintainIt, SpecListedTableNotYetPartitionedIsAProblem) {
  REQUIRE_PG();
  TestDatabase tdb("maintspec");
  auto db = Open(tdb.Url());
  ASSERT_TRUE(tdb.Psql("CREATE TABLE agent_execution_phases (id int, at timestamptz NOT NULL)"));
  MaintainOptions o;
  o.tables = {"agent_execution_phases"};
  o.skip_unpartitioned = true;
  auto plan = PlanMaintain(*db, o, RealClock::Get()->WallNow());
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  EXPECT_TRUE(plan->actions.empty());
  ASSERT_EQ(plan->problems.size(), 1u);
  EXPECT_NE(plan->problems[0].find("not partitioned yet"), std::string::npos);
}

TEST(DbVacuumIt, VacuumsAndAnalyzesATable) {
  REQUIRE_PG();
  TestDatabase tdb("vac");
  auto db = Open(tdb.Url());
  ASSERT_TRUE(tdb.Psql("CREATE TABLE \"My T\" (id int); INSERT INTO \"My T\" SELECT generate_series(1, 1000); "
                       "DELETE FROM \"My T\" WHERE id % 2 = 0"));
  VacuumOptions o;
  o.table = "\"My T\"";
  o.analyze = true;
  auto st = VacuumStatement(*db, o);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(*st, "VACUUM (ANALYZE) \"public\".\"My T\"");
  ASSERT_TRUE(RunVacuum(*db, o).has_value());
  // The statistics collector reports asynchronously; poll briefly.
  std::string v;
  for (int i = 0; i < 30 && v != "t"; ++i) {
    v = tdb.Query("SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'My T'");
    if (v != "t") std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(v, "t");
  o.table = "missing";
  auto bad = RunVacuum(*db, o);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kNotFound);
}

}  // namespace
}  // namespace cb::db
