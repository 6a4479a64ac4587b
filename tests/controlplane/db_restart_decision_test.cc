// `db tune --restart`: the decision (restart the supervised service or print how) and the
// spec's database.service validation it relies on.
#include <gtest/gtest.h>

#include "controlplane/db/tune.h"
#include "core/spec.h"

namespace cb::db {
namespace {

using K = RestartDecision::Kind;

TEST(DbRestartDecision, NothingPendingMeansNothingToDo) {
  EXPECT_EQ(DecideRestart({}, true, "fleet.yaml", "pg", {}).kind, K::kNothing);
  EXPECT_EQ(DecideRestart({}, false, "", "", {}).kind, K::kNothing);
}

TEST(DbRestartDecision, WithoutRestartFlagOnlyAdvises) {
  auto d = DecideRestart({"shared_buffers"}, false, "fleet.yaml", "pg", {"local"});
  EXPECT_EQ(d.kind, K::kAdvise);
  EXPECT_TRUE(d.note.empty());
}

TEST(DbRestartDecision, RestartsTheSpecsDatabaseService) {
  auto d = DecideRestart({"shared_buffers", "max_connections"}, true, "fleet.yaml", "pg", {"local"});
  EXPECT_EQ(d.kind, K::kRestart);
  EXPECT_EQ(d.service_address, "pg");
  EXPECT_EQ(DecideRestart({"shared_buffers"}, true, "fleet.yaml", "pg", {}).kind, K::kRestart);
}

TEST(DbRestartDecision, NotSupervisedAdvisesAndSaysWhy) {
  auto none = DecideRestart({"shared_buffers"}, true, "", "", {});
  EXPECT_EQ(none.kind, K::kAdvise);
  EXPECT_NE(none.note.find("no fleet spec"), std::string::npos) << none.note;
  auto unset = DecideRestart({"shared_buffers"}, true, "fleet.yaml", "", {});
  EXPECT_EQ(unset.kind, K::kAdvise);
  EXPECT_NE(unset.note.find("fleet.yaml: database.service is not set"), std::string::npos) << unset.note;
  auto many = DecideRestart({"shared_buffers"}, true, "fleet.yaml", "pg", {"a", "b"});
  EXPECT_EQ(many.kind, K::kAdvise);
  EXPECT_NE(many.note.find("cbctl svc restart pg@HOST"), std::string::npos) << many.note;
}

TEST(DbSpecService, MustNameAServicesEntry) {
  const char* good = R"(apiVersion: cbctl/v1
database: {url: "postgresql://postgres@/postgres?host=/tmp", service: pg}
services:
  - {name: pg, command: [/usr/lib/postgresql/15/bin/postgres, -D, /tmp/data], user: postgres}
)";
  auto s = ParseFleetSpecOrError(good, "fleet.yaml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->database.service, "pg");
  EXPECT_EQ(FleetSpec{}.database.service, "");  // default: not supervised

  const char* missing = R"(apiVersion: cbctl/v1
database: {url: "postgresql://postgres@/postgres?host=/tmp", service: postgres}
services:
  - {name: pg, command: [/bin/true]}
)";
  auto m = ParseFleetSpecOrError(missing, "fleet.yaml");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("database.service"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("'postgres'"), std::string::npos) << m.error().message;

  const char* sqlite = R"(apiVersion: cbctl/v1
database: {url: "sqlite:///var/lib/x.db", service: pg}
services:
  - {name: pg, command: [/bin/true]}
)";
  auto q = ParseFleetSpecOrError(sqlite, "fleet.yaml");
  ASSERT_FALSE(q);
  EXPECT_NE(q.error().message.find("SQLite"), std::string::npos) << q.error().message;
}

}  // namespace
}  // namespace cb::db
