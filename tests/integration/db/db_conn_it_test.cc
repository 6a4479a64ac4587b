// Connection, cbctl schema and operation locks against a real Postgres 15 (tests/support/pg_cluster).
#include <gtest/gtest.h>

#include <thread>

#include "controlplane/db/conn.h"
#include "controlplane/db/schema.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_test_util.h"

namespace cb::db {
namespace {

using cb::testing::PgCluster;
using cb::testing::TestDatabase;


std::unique_ptr<Db> MustConnect(const std::string& url) {
  auto p = ParseDbUrl(url);
  EXPECT_TRUE(p.has_value()) << p.error().ToString();
  auto c = Connect(*p);
  EXPECT_TRUE(c.has_value()) << c.error().ToString();
  return c ? std::move(*c) : nullptr;
}

TEST(DbConnIt, ConnectsAndMapsSqlErrors) {
  REQUIRE_PG();
  TestDatabase tdb("conn");
  ASSERT_TRUE(tdb.ok());
  auto db = MustConnect(tdb.Url());
  ASSERT_TRUE(db);
  auto v = QueryValue(*db, "SELECT current_database()");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, tdb.name());
  auto bad = db->Exec("SELECT * FROM no_such_table");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kNotFound);
  EXPECT_EQ(SqlState(bad.error()), "42P01");
  // The connection survives an SQL error.
  EXPECT_TRUE(QueryValue(*db, "SELECT 1").has_value());
}

TEST(DbConnIt, UnreachableDatabaseIsAClearError) {
  REQUIRE_PG();
  auto p = ParseDbUrl("postgresql://postgres:secret@%2Fnonexistent-dir:5/x");
  ASSERT_TRUE(p.has_value());
  auto c = Connect(*p);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, Code::kUnavailable);
  EXPECT_EQ(c.error().message.find("secret"), std::string::npos) << c.error().message;
}

TEST(DbConnIt, ConnectionKilledMidwayIsUnavailable) {
  REQUIRE_PG();
  TestDatabase tdb("gone");
  ASSERT_TRUE(tdb.ok());
  auto db = MustConnect(tdb.Url());
  ASSERT_TRUE(db);
  tdb.Psql("SELECT pg_terminate_backend(" + std::to_string(db->BackendPid()) + ")");
  auto r = db->Exec("SELECT 1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kUnavailable) << r.error().ToString();
}

TEST(DbConnIt, SchemaMigratesOnceAndIsIdempotent) {
  REQUIRE_PG();
  TestDatabase tdb("schema");
  ASSERT_TRUE(tdb.ok());
  auto db = MustConnect(tdb.Url());
  ASSERT_TRUE(db);
  ASSERT_TRUE(EnsureSchema(*db).has_value());
  ASSERT_TRUE(EnsureSchema(*db).has_value());
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM cbctl.schema_version"), std::to_string(LatestSchemaVersion()));
  // A newer schema is refused, naming both versions.
  tdb.Psql("INSERT INTO cbctl.schema_version VALUES (999)");
  auto r = EnsureSchema(*db);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("999"), std::string::npos);
}

TEST(DbConnIt, SchemaCreationWithoutPrivilegesSaysWhatToGrant) {
  REQUIRE_PG();
  TestDatabase tdb("schpriv");
  ASSERT_TRUE(tdb.ok());
  std::string role = tdb.CreateRole("weak");
  tdb.Psql("REVOKE CREATE ON DATABASE \"" + tdb.name() + "\" FROM PUBLIC");
  auto db = MustConnect(tdb.UrlFor(role));
  ASSERT_TRUE(db);
  auto r = EnsureSchema(*db);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kPermissionDenied);
  EXPECT_NE(r.error().message.find("GRANT CREATE"), std::string::npos) << r.error().message;
}

TEST(DbConnIt, SecondRunnerWaitsOrSaysWhoHoldsTheLock) {
  REQUIRE_PG();
  TestDatabase tdb("lock");
  ASSERT_TRUE(tdb.ok());
  auto a = MustConnect(tdb.Url());
  auto b = MustConnect(tdb.Url());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(EnsureSchema(*a).has_value());
  auto la = OpLock::Acquire(*a, "partition", "public.event_log", false);
  ASSERT_TRUE(la.has_value()) << la.error().ToString();
  auto lb = OpLock::Acquire(*b, "partition", "public.event_log", false);
  ASSERT_FALSE(lb.has_value());
  EXPECT_EQ(lb.error().code, Code::kConflict);
  EXPECT_NE(lb.error().message.find("pid " + std::to_string(a->BackendPid())), std::string::npos)
      << lb.error().message;
  EXPECT_NE(lb.error().message.find("cbctl"), std::string::npos) << lb.error().message;
  // Another table is independent.
  auto other = OpLock::Acquire(*b, "partition", "public.other", false);
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE(other->Release().has_value());
  // Waiting: b blocks until a releases.
  std::atomic<bool> got{false};
  int seen_holder = 0;
  std::thread t([&] {
    auto w = OpLock::Acquire(*b, "partition", "public.event_log", true,
                             [&](const LockHolder& h) { seen_holder = h.pid; });
    got = w.has_value();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(got.load());
  ASSERT_TRUE(la->Release().has_value());
  t.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(seen_holder, a->BackendPid());
}

TEST(DbConnIt, KilledRunnerReleasesItsLock) {
  REQUIRE_PG();
  TestDatabase tdb("lockkill");
  ASSERT_TRUE(tdb.ok());
  auto a = MustConnect(tdb.Url());
  auto b = MustConnect(tdb.Url());
  ASSERT_TRUE(EnsureSchema(*a).has_value());
  auto la = OpLock::Acquire(*a, "tune", "db", false);
  ASSERT_TRUE(la.has_value());
  a->Abandon();
  // The server notices the closed socket at once; allow it a moment.
  bool got = false;
  for (int i = 0; i < 50 && !got; ++i) {
    got = OpLock::Acquire(*b, "tune", "db", false).has_value();
    if (!got) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(got);
}

}  // namespace
}  // namespace cb::db
