// The Postgres 15 harness shared by every test binary (no libpq dependency: it drives initdb,
// pg_ctl and psql as subprocesses, argv only).
//
// PgCluster::Get() returns the cluster for this test binary:
//   * CBCTL_TEST_PGHOST / CBCTL_TEST_PGPORT / CBCTL_TEST_PGUSER set (scripts/test starts one
//     with scripts/peers): that cluster is used and never stopped here;
//   * otherwise a private cluster is created on first use: initdb as the `postgres` user (when
//     running as root) in a temp dir (mode 700, owned by postgres), listening only on a unix
//     socket in that dir (no TCP), started with pg_ctl, and stopped by its postmaster PID when
//     the test binary exits (static destructor), its directory removed.
// When Postgres is not installed, available() is false and skip_reason() says why; db tests
// GTEST_SKIP() with it.
//
// TestDatabase creates a database with a unique name (so tests run in parallel, even across
// binaries) and drops it (WITH (FORCE)) in its destructor.
//
// Thread-safety: Get() is thread-safe (function-local static); the rest is used from the test thread.
#pragma once

#include <string>
#include <vector>

namespace cb::testing {

class PgCluster {
 public:
  static PgCluster& Get();
  ~PgCluster();

  bool available() const { return available_; }
  const std::string& skip_reason() const { return skip_reason_; }
  const std::string& host() const { return host_; }  // socket directory
  const std::string& port() const { return port_; }
  const std::string& user() const { return user_; }  // superuser, "postgres"
  // postmaster pid when this harness started the cluster, else 0.
  int owned_pid() const { return pid_; }

  // Runs `sql` with psql -X -q -At as the superuser on `dbname`. Returns false (and the error
  // text in *out) when psql fails.
  bool Psql(const std::string& dbname, const std::string& sql, std::string* out = nullptr) const;

 private:
  PgCluster();
  bool StartPrivate();
  bool available_ = false;
  std::string skip_reason_;
  std::string host_, port_, user_ = "postgres";
  std::string dir_;  // private cluster dir, removed at exit
  int pid_ = 0;
};

class TestDatabase {
 public:
  // Creates "cbt_<prefix>_<pid>_<n>". Check ok() (false when the cluster is unavailable).
  explicit TestDatabase(const std::string& prefix = "t");
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  // "postgresql://postgres@/NAME?host=SOCKDIR&port=PORT" for the superuser.
  std::string Url() const { return UrlFor(PgCluster::Get().user()); }
  std::string UrlFor(const std::string& role) const;
  // Runs SQL as the superuser (psql); on failure returns false and fills *out.
  bool Psql(const std::string& sql, std::string* out = nullptr) const;
  // psql output of a query, trimmed ("" on error).
  std::string Query(const std::string& sql) const;
  // Creates a LOGIN role (NOSUPERUSER) unique to this database, dropped with it; returns its name.
  std::string CreateRole(const std::string& suffix, const std::string& extra_sql = "");

 private:
  bool ok_ = false;
  std::string name_;
  std::vector<std::string> roles_;
};

// Runs argv (no shell), waits, returns the exit status (-1 if it could not start); stdout and
// stderr are captured into *output when given.
int RunCommand(const std::vector<std::string>& argv, std::string* output = nullptr);

}  // namespace cb::testing
