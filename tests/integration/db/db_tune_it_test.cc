// `db tune` against a real Postgres 15: plan (dry run), apply, restore, privileges.
// The harness cluster is shared by the test binaries, so each test restores what it applied.
#include <gtest/gtest.h>

#include <thread>

#include "controlplane/db/conn.h"
#include "controlplane/db/tune.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_test_util.h"

namespace cb::db {
namespace {

using cb::testing::PgCluster;
using cb::testing::TestDatabase;


std::unique_ptr<Db> Open(const std::string& url) { return cb::testing::OpenDb(url); }

TEST(DbTuneIt, PlanReadsThisMachinesLimitsAndChangesNothing) {
  REQUIRE_PG();
  TestDatabase tdb("tplan");
  ASSERT_TRUE(tdb.ok());
  auto db = Open(tdb.Url());
  ASSERT_TRUE(db);
  TuneOptions o;
  o.db_host = PgCluster::Get().host();
  auto plan = PlanTune(*db, o);
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  EXPECT_GT(plan->input.ram_bytes, 256u * 1024 * 1024);
  EXPECT_GT(plan->input.cpus, 0);
  // On this machine cgroup v2 has no memory controller: the source is cgroup v1 or /proc.
  EXPECT_NE(plan->input.resources_source.find("RAM"), std::string::npos) << plan->input.resources_source;
  EXPECT_FALSE(plan->items.empty());
  // Planning writes nothing (the cluster is shared with other tests, so look at this database:
  // not even the cbctl schema is created).
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM pg_namespace WHERE nspname = 'cbctl'"), "0");
}

TEST(DbTuneIt, RemoteHostNeedsRamAndCpus) {
  REQUIRE_PG();
  TestDatabase tdb("tremote");
  auto db = Open(tdb.Url());
  TuneOptions o;
  o.db_host = "db.internal";
  auto plan = PlanTune(*db, o);
  ASSERT_FALSE(plan.has_value());
  EXPECT_NE(plan.error().message.find("--ram"), std::string::npos);
  o.ram_bytes = 8ull << 30;
  o.cpus = 4;
  plan = PlanTune(*db, o);
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  EXPECT_NE(plan->input.resources_source.find("--ram"), std::string::npos);
}

TEST(DbTuneIt, ApplyThenRestore) {
  REQUIRE_PG();
  TestDatabase tdb("tapply");
  auto db = Open(tdb.Url());
  std::string wm_before = tdb.Query("SHOW work_mem");
  std::string sb_before = tdb.Query("SHOW shared_buffers");
  std::string pending_before = tdb.Query("SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart");
  TuneOptions o;
  o.ram_bytes = 8ull << 30;
  o.cpus = 4;
  o.max_connections = 300;  // the harness runs with 300: no max_connections change
  auto plan = PlanTune(*db, o);
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_TRUE(plan->HasChanges());
  auto res = ApplyTune(*db, *plan);
  ASSERT_TRUE(res.has_value()) << res.error().ToString();
  EXPECT_TRUE(res->file_errors.empty());
  // Reload settings are live in a new session; restart ones are reported pending.
  auto db2 = Open(tdb.Url());
  EXPECT_EQ(*QueryValue(*db2, "SHOW work_mem"), "27MB");  // 8GB / 300 connections, below the 32MB guidance
  EXPECT_EQ(*QueryValue(*db2, "SHOW shared_buffers"), sb_before);
  bool sb_pending = false;
  for (const auto& n : res->pending_restart) sb_pending |= n == "shared_buffers";
  EXPECT_TRUE(sb_pending);
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM cbctl.tune_history WHERE batch = " + std::to_string(res->batch)),
            std::to_string(res->applied.size()));
  // A second plan has nothing left to reload.
  auto again = PlanTune(*db2, o);
  ASSERT_TRUE(again.has_value());
  for (const auto& i : again->items) {
    if (i.name == "work_mem") {
      EXPECT_EQ(i.action, "skip");
    }
  }
  auto restored = RestoreTune(*db2);
  ASSERT_TRUE(restored.has_value()) << restored.error().ToString();
  auto db3 = Open(tdb.Url());
  EXPECT_EQ(*QueryValue(*db3, "SHOW work_mem"), wm_before);
  EXPECT_EQ(*QueryValue(*db3, "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf'"), "0");
  std::string pending_after;
  for (int i = 0; i < 30; ++i) {  // the reload reaches new sessions asynchronously
    pending_after = tdb.Query("SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart");
    if (pending_after.find("shared_buffers") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // shared_buffers is back to its running value, so no longer pending. (Postgres may keep
  // pending_restart on other postmaster settings whose file entry was removed, e.g. wal_buffers -1.)
  EXPECT_EQ(pending_after.find("shared_buffers"), std::string::npos) << pending_after << " (before: " << pending_before << ")";
  auto none = RestoreTune(*db3);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, Code::kNotFound);
}

TEST(DbTuneIt, ApplyNeedsSuperuser) {
  REQUIRE_PG();
  TestDatabase tdb("tpriv");
  std::string role = tdb.CreateRole("weak");
  auto db = Open(tdb.UrlFor(role));
  ASSERT_TRUE(db);
  TuneOptions o;
  o.ram_bytes = 8ull << 30;
  o.cpus = 4;
  auto plan = PlanTune(*db, o);
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  auto res = ApplyTune(*db, *plan);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, Code::kPermissionDenied);
  EXPECT_NE(res.error().message.find("superuser"), std::string::npos);
}

}  // namespace
}  // namespace cb::db
