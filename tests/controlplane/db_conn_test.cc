// Pure logic of libcbdb connections and SQL text: URL parsing, redaction, quoting.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <sys/stat.h>

#include "controlplane/db/conn.h"
#include "controlplane/db/sql.h"

namespace cb::db {
namespace {

TEST(DbUrl, ParsesAllParts) {
  auto p = ParseDbUrl("postgresql://app%40x:p%3Ass@db.internal:6543/code%20bolt?sslmode=require");
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->kv["user"], "app@x");
  EXPECT_EQ(p->kv["password"], "p:ss");
  EXPECT_EQ(p->kv["host"], "db.internal");
  EXPECT_EQ(p->kv["port"], "6543");
  EXPECT_EQ(p->kv["dbname"], "code bolt");
  EXPECT_EQ(p->kv["sslmode"], "require");
  ASSERT_EQ(p->warnings.size(), 1u);
  EXPECT_NE(p->warnings[0].find("password"), std::string::npos);
}

TEST(DbUrl, SocketDirectoryHost) {
  auto p = ParseDbUrl("postgres://postgres@%2Ftmp%2Fpg:5433/db");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kv["host"], "/tmp/pg");
  EXPECT_EQ(p->kv["port"], "5433");
  EXPECT_TRUE(p->warnings.empty());
}

TEST(DbUrl, RejectsBadInputWithReason) {
  EXPECT_FALSE(ParseDbUrl("mysql://x/y").has_value());
  auto r = ParseDbUrl("postgresql://u:secret@h:abc/d");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("port"), std::string::npos);
  EXPECT_EQ(r.error().message.find("secret"), std::string::npos) << r.error().message;
  EXPECT_FALSE(ParseDbUrl("postgresql://h/d%zz").has_value());
}

TEST(DbUrl, RedactionNeverShowsThePassword) {
  EXPECT_EQ(RedactUrl("postgresql://u:secret@h/d"), "postgresql://u:****@h/d");
  EXPECT_EQ(RedactUrl("postgresql://u@h/d"), "postgresql://u@h/d");
  EXPECT_EQ(RedactUrl("postgresql://h/d?password=secret&x=1"), "postgresql://h/d?password=****&x=1");
  auto p = ParseDbUrl("postgresql://u:secret@h:1/d");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->Redacted().find("secret"), std::string::npos);
  EXPECT_NE(p->ConnInfo().find("password='secret'"), std::string::npos);
}

TEST(DbUrl, ConnInfoQuotesValues) {
  ConnParams p;
  p.kv["password"] = "a'b\\c d";
  EXPECT_NE(p.ConnInfo().find(R"(password='a\'b\\c d')"), std::string::npos) << p.ConnInfo();
}

TEST(DbConnSource, PasswordComesFromAFileNeverAFlag) {
  std::string path = "/tmp/cbctl_dbpw_" + std::to_string(::getpid());
  {
    std::ofstream f(path);
    f << "s3cret\n";
  }
  ::chmod(path.c_str(), 0600);
  auto p = ResolveConn({"postgresql://u@h/d", path, ""});
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->kv["password"], "s3cret");
  EXPECT_TRUE(p->warnings.empty());
  ::chmod(path.c_str(), 0644);
  p = ResolveConn({"postgresql://u@h/d", path, ""});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->warnings.size(), 1u);
  std::remove(path.c_str());
  auto missing = ResolveConn({"postgresql://u@h/d", path, ""});
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find(path), std::string::npos);
}

TEST(DbConnSource, ReadsTheSpecDatabaseSection) {
  std::string dir = "/tmp/cbctl_dbspec_" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  {
    std::ofstream f(dir + "/pw");
    f << "frompw";
  }
  ::chmod((dir + "/pw").c_str(), 0600);
  {
    std::ofstream f(dir + "/fleet.yaml");
    f << "database:\n  url: postgresql://codebolt@db.internal/codebolt\n  password_file: " << dir << "/pw\n";
  }
  auto p = ResolveConn({"", "", dir + "/fleet.yaml"});
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->kv["host"], "db.internal");
  EXPECT_EQ(p->kv["password"], "frompw");
  {
    std::ofstream f(dir + "/fleet.yaml");
    f << "database:\n  url: sqlite:///var/lib/x.db\n";
  }
  auto s = ResolveConn({"", "", dir + "/fleet.yaml"});
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("SQLite"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(DbConnSource, ReadsTheSpecPartitioningSection) {
  std::string path = "/tmp/cbctl_dbpart_" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream f(path);
    f << "database:\n  url: postgresql://x@h/d\n  partitioning: {tables: [event_log, agent_execution_phases], "
         "interval: month, premake: 6, retention: 12mo}\n";
  }
  auto sp = ReadSpecPartitioning(path);
  ASSERT_TRUE(sp.has_value()) << sp.error().ToString();
  EXPECT_EQ(sp->tables, (std::vector<std::string>{"event_log", "agent_execution_phases"}));
  EXPECT_EQ(sp->premake, 6);
  EXPECT_EQ(sp->retention, "12mo");
  {
    std::ofstream f(path);
    f << "database:\n  partitioning: {tables: [t], interval: week}\n";
  }
  auto bad = ReadSpecPartitioning(path);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("interval"), std::string::npos);
  std::remove(path.c_str());
}

TEST(Sql, QuotesIdentifiersAndLiterals) {
  EXPECT_EQ(QuoteIdent("event_log"), "\"event_log\"");
  EXPECT_EQ(QuoteIdent("Mixed \"Case\""), "\"Mixed \"\"Case\"\"\"");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
  EXPECT_EQ(QualifiedName("public", "T x"), "\"public\".\"T x\"");
}

TEST(Sql, ParsesTableNamesLikePostgres) {
  auto t = ParseTableName("Public.Event_Log");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->schema, "public");
  EXPECT_EQ(t->table, "event_log");
  t = ParseTableName("\"My Schema\".\"Ev\"\"il.T\"");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->schema, "My Schema");
  EXPECT_EQ(t->table, "Ev\"il.T");
  EXPECT_FALSE(ParseTableName("a.b.c").has_value());
  EXPECT_FALSE(ParseTableName("\"open").has_value());
  EXPECT_FALSE(ParseTableName("").has_value());
  EXPECT_FALSE(ParseTableName("x.").has_value());
}

TEST(Sql, DerivedNamesFitIn63Bytes) {
  std::string longname(70, 'a');
  auto n = DerivedName(longname, "_p2026_01");
  EXPECT_EQ(n.size(), 63u);
  EXPECT_EQ(n.substr(n.size() - 9), "_p2026_01");
  EXPECT_EQ(DerivedName("ev", "_old"), "ev_old");
}

}  // namespace
}  // namespace cb::db
