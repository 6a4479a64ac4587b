// Helpers shared by the tests that need the real Postgres cluster of tests/support/pg_cluster.h.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "controlplane/db/conn.h"
#include "tests/support/pg_cluster.h"

// Skips the test when no cluster could be had (Postgres not installed and no
// CBCTL_TEST_PGHOST) — except under scripts/test, which starts one and exports
// CBCTL_TEST_PGHOST: there a missing cluster is a failure, so CI can never pass by skipping.
#define REQUIRE_PG()                                                                   \
  if (!::cb::testing::PgCluster::Get().available()) {                                  \
    if (std::getenv("CBCTL_TEST_PGHOST") != nullptr) {                                 \
      FAIL() << "CBCTL_TEST_PGHOST is set but the cluster is not usable: "             \
             << ::cb::testing::PgCluster::Get().skip_reason();                         \
    }                                                                                  \
    GTEST_SKIP() << ::cb::testing::PgCluster::Get().skip_reason();                     \
  }

namespace cb::testing {

// Connects to a database URL; nullptr when it cannot (the test's next ASSERT says so).
inline std::unique_ptr<cb::db::Db> OpenDb(const std::string& url) {
  auto p = cb::db::ParseDbUrl(url);
  if (!p) return nullptr;
  auto c = cb::db::Connect(*p);
  return c ? std::move(*c) : nullptr;
}

}  // namespace cb::testing
