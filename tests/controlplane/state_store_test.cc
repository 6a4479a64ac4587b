// SqliteStateStore: generations (compare-and-set), tokens, audit, overrides, migrations.
#include "controlplane/state_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "controlplane/auth.h"

namespace cb::cp {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cbcp-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }
  std::unique_ptr<StateStore> Open(bool create = true) {
    auto s = OpenSqliteStateStore(dir_, create);
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  std::string dir_;
};

TEST_F(StoreTest, OpeningAMissingStoreWithoutCreateSaysRunInit) {
  auto s = OpenSqliteStateStore(dir_, false);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kNotFound);
  EXPECT_NE(s.error().message.find("cbctld init"), std::string::npos);
}

TEST_F(StoreTest, SpecGenerationsAreCompareAndSet) {
  auto s = Open();
  auto none = s->CurrentSpec();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto g1 = s->PutSpec(0, "a: 1", "alice", "t1");
  ASSERT_TRUE(g1);
  EXPECT_EQ(*g1, 1);
  auto stale = s->PutSpec(0, "a: 2", "bob", "t2");
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Code::kConflict);
  EXPECT_NE(stale.error().message.find("current generation is 1"), std::string::npos);
  EXPECT_EQ(*s->PutSpec(1, "a: 3", "bob", "t3"), 2);
  auto cur = s->CurrentSpec();
  ASSERT_TRUE(cur && *cur);
  EXPECT_EQ((*cur)->generation, 2);
  EXPECT_EQ((*cur)->yaml, "a: 3");
  EXPECT_EQ((*cur)->applied_by, "bob");
}

TEST_F(StoreTest, TokensAreStoredHashedAndRevocable) {
  auto s = Open();
  std::string secret = *GenerateSecret();
  EXPECT_EQ(secret.rfind("cbt_", 0), 0u);
  EXPECT_EQ(secret.size(), 4u + 64u);
  std::string hash = HashSecret(secret);
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_NE(hash, secret);
  EXPECT_EQ(HashSecret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto t = s->CreateToken("ci", "operator", hash, "admin", "t");
  ASSERT_TRUE(t);
  auto dup = s->CreateToken("ci", "viewer", HashSecret("x"), "admin", "t");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Code::kAlreadyExists);
  auto found = s->FindLiveTokenByHash(hash);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->scope, "operator");
  // The secret itself is nowhere in the database file.
  s.reset();
  std::string cmd = "grep -q " + secret + " " + dir_ + "/cbctld.db*";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  s = Open(false);
  auto rv = s->RevokeToken("ci", "t2");
  ASSERT_TRUE(rv);
  EXPECT_EQ(rv->revoked_at, "t2");
  EXPECT_FALSE(*s->FindLiveTokenByHash(hash));
  auto twice = s->RevokeToken(std::to_string(rv->id), "t3");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, Code::kFailedPrecondition);
  auto missing = s->RevokeToken("nobody", "t3");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  // The name is free again after revocation.
  EXPECT_TRUE(s->CreateToken("ci", "viewer", HashSecret("y"), "admin", "t4"));
}

TEST_F(StoreTest, AuditIsNewestFirstAndSurvivesReopen) {
  {
    auto s = Open();
    for (int i = 0; i < 5; ++i) {
      wire::AuditEntry e;
      e.at = "t" + std::to_string(i);
      e.actor = "alice";
      e.action = "POST /v1/x";
      e.result = "ok";
      e.status = 200;
      ASSERT_TRUE(s->AppendAudit(e));
    }
  }
  auto s = Open(false);
  auto list = s->ListAudit(3);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].at, "t4");
  EXPECT_EQ((*list)[2].at, "t2");
  EXPECT_GT((*list)[0].id, (*list)[1].id);
}

TEST_F(StoreTest, OverridesObservedHostsAndMeta) {
  auto s = Open();
  ASSERT_TRUE(s->SetOverride({"local", "web", "stopped", "alice", "t"}));
  EXPECT_EQ(s->ListOverrides()->size(), 1u);
  EXPECT_TRUE(*s->ClearOverride("local", "web"));
  EXPECT_FALSE(*s->ClearOverride("local", "web"));
  ASSERT_TRUE(s->ReplaceObserved("local", {{"local", "a", "{}", "t"}, {"local", "b", "{}", "t"}}));
  ASSERT_TRUE(s->ReplaceObserved("local", {{"local", "b", "{\"state\":\"running\"}", "t2"}}));
  auto obs = s->ListObserved();
  ASSERT_EQ(obs->size(), 1u);
  EXPECT_EQ((*obs)[0].name, "b");
  HostRecord h;
  h.name = "local";
  h.address = "local";
  h.reachable = true;
  ASSERT_TRUE(s->UpsertHost(h));
  EXPECT_TRUE((*s->ListHosts())[0].reachable);
  ASSERT_TRUE(s->SetMeta("state_id", "abc"));
  EXPECT_EQ(**s->GetMeta("state_id"), "abc");
  EXPECT_FALSE(s->GetMeta("nope")->has_value());
}

TEST_F(StoreTest, WalModeFileModeAndANewerSchemaIsRefused) {
  { auto s = Open(); }
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/cbctld.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/cbctld.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, nullptr);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(q, 0))), "wal");
  sqlite3_finalize(q);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_version(version) VALUES (99)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = OpenSqliteStateStore(dir_, false);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("99"), std::string::npos);
  EXPECT_NE(s.error().message.find(std::to_string(SqliteSchemaVersion())), std::string::npos);
}

}  // namespace
}  // namespace cb::cp
