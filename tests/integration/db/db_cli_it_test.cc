// The real `cbctl db …` binary against a real Postgres 15: exit codes, --yes without a terminal,
// JSON output, SIGKILL of a running partition and a rerun, Ctrl-C (SIGINT) leaving it resumable.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/pg_cluster.h"
#include "tests/support/pg_test_util.h"

namespace {

using cb::testing::PgCluster;
using cb::testing::TestDatabase;

#define REQUIRE_PG_AND_CBCTL()                                                    \
  REQUIRE_PG();                                                                   \
  if (::access(Cbctl().c_str(), X_OK) != 0) FAIL() << Cbctl() << " is not built"

std::string Cbctl() { return std::string(CBCTL_BIN_DIR) + "/cbctl"; }

// A cbctl child process with stdout/stderr to files; killed by PID when the guard goes.
class Child {
 public:
  Child(std::vector<std::string> argv, const std::string& out_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int pid() const { return pid_; }
  // Exit code (128+signal when killed); -1 if still running after `timeout`.
  int Wait(std::chrono::seconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  int pid_ = -1;
};

int RunCbctl(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {Cbctl()};
  argv.insert(argv.end(), args.begin(), args.end());
  return cb::testing::RunCommand(argv, out);
}

void MakeTable(TestDatabase& tdb) {
  ASSERT_TRUE(tdb.Psql("CREATE TABLE event_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, created_at "
                       "timestamptz NOT NULL DEFAULT now(), v text); INSERT INTO event_log (created_at, v) SELECT "
                       "now() - g * interval '1 hour', 'x' FROM generate_series(1, 3000) g"));
}

bool WaitForLockWait(TestDatabase& tdb, const std::string& app) {
  for (int i = 0; i < 200; ++i) {
    if (tdb.Query("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app +
                  "' AND wait_event_type = 'Lock'") != "0")
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(DbCliIt, DryRunJsonAndConfirmationRules) {
  REQUIRE_PG_AND_CBCTL();
  TestDatabase tdb("cli");
  MakeTable(tdb);
  std::string out;
  EXPECT_EQ(RunCbctl({"db", "partition", "event_log", "--dry-run", "-o", "json", "--db-url", tdb.Url()}, &out), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_FALSE(j["statements"].empty());
  // Mutating without a terminal and without --yes: usage error, nothing changed.
  EXPECT_EQ(RunCbctl({"db", "partition", "event_log", "--db-url", tdb.Url()}, &out), 64) << out;
  EXPECT_NE(out.find("--yes"), std::string::npos);
  EXPECT_EQ(tdb.Query("SELECT relkind FROM pg_class WHERE relname = 'event_log'"), "r");
  // Bad input exits non-zero with the object named.
  EXPECT_NE(RunCbctl({"db", "partition", "nope", "--yes", "--db-url", tdb.Url()}, &out), 0);
  EXPECT_NE(out.find("nope"), std::string::npos) << out;
  // Tune: plan in JSON with the documented fields; --detailed-exitcode says 2 for changes.
  EXPECT_EQ(RunCbctl({"db", "tune", "--ram", "8GB", "--cpus", "4", "-o", "json", "--detailed-exitcode", "--db-url",
                 tdb.Url()},
                &out),
            2)
      << out;
  j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << out;
  for (const char* k : {"name", "current", "recommended", "unit", "action", "reason"}) EXPECT_TRUE(j[0].contains(k)) << k;
  // An unreachable database exits 69 (the --ram/--cpus rule for remote hosts is tested in db_tune_it_test).
  EXPECT_EQ(RunCbctl({"db", "tune", "--db-url", "postgresql://postgres@db.invalid:1/x"}, &out), 69) << out;
  // Status works and prints JSON.
  EXPECT_EQ(RunCbctl({"db", "status", "-o", "json", "--db-url", tdb.Url()}, &out), 0) << out;
  EXPECT_TRUE(nlohmann::json::parse(out, nullptr, false).contains("largest_tables")) << out;
  // A password in the URL is accepted with a warning, and never printed back.
  EXPECT_EQ(RunCbctl({"db", "status", "--db-url", tdb.Url().replace(tdb.Url().find("postgres@"), 9, "postgres:hunter2@")},
                &out),
            0)
      << out;
  EXPECT_NE(out.find("warning"), std::string::npos);
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
}

TEST(DbCliIt, SigkilledRunIsFinishedByARerun) {
  REQUIRE_PG_AND_CBCTL();
  TestDatabase tdb("clikill");
  MakeTable(tdb);
  // Hold SHARE UPDATE EXCLUSIVE so the run waits in `validate`; kill it there with SIGKILL.
  std::string blocker_out;
  Child blocker({"/usr/bin/psql", "-X", "-q", "-d", tdb.Url(), "-c",
                 "BEGIN; LOCK TABLE event_log IN SHARE UPDATE EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;"},
                "/tmp/cbctl_it_blocker_" + std::to_string(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::string log = "/tmp/cbctl_it_kill_" + std::to_string(::getpid());
  Child run({Cbctl(), "db", "partition", "event_log", "--yes", "--db-url", tdb.Url()}, log);
  ASSERT_TRUE(WaitForLockWait(tdb, "cbctl"));
  ::kill(run.pid(), SIGKILL);
  EXPECT_EQ(run.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log"), "3000");
  EXPECT_EQ(blocker.Wait(std::chrono::seconds(20)), 0);
  std::string out;
  EXPECT_EQ(RunCbctl({"db", "partition", "event_log", "--yes", "-o", "json", "--db-url", tdb.Url()}, &out), 0) << out;
  auto j = nlohmann::json::parse(out.substr(out.find('{')), nullptr, false);
  EXPECT_EQ(j.value("resumed", false), true) << out;
  EXPECT_EQ(tdb.Query("SELECT relkind FROM pg_class WHERE oid = 'event_log'::regclass"), "p");
  EXPECT_EQ(tdb.Query("SELECT count(*) FROM event_log"), "3000");
  ::unlink(log.c_str());
}

TEST(DbCliIt, CtrlCCancelsConsistentlyAndTheRerunFinishes) {
  REQUIRE_PG_AND_CBCTL();
  TestDatabase tdb("cliint");
  MakeTable(tdb);
  Child blocker({"/usr/bin/psql", "-X", "-q", "-d", tdb.Url(), "-c",
                 "BEGIN; LOCK TABLE event_log IN SHARE UPDATE EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;"},
                "/tmp/cbctl_it_blocker2_" + std::to_string(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::string log = "/tmp/cbctl_it_int_" + std::to_string(::getpid());
  Child run({Cbctl(), "db", "partition", "event_log", "--yes", "--db-url", tdb.Url()}, log);
  ASSERT_TRUE(WaitForLockWait(tdb, "cbctl"));
  ::kill(run.pid(), SIGINT);
  int rc = run.Wait(std::chrono::seconds(10));
  EXPECT_EQ(rc, 1);
  std::string out;
  cb::testing::RunCommand({"/bin/cat", log}, &out);
  EXPECT_NE(out.find("cancelled"), std::string::npos) << out;
  EXPECT_NE(out.find("again to resume"), std::string::npos) << out;
  EXPECT_EQ(tdb.Query("SELECT status FROM cbctl.operations"), "cancelled");
  EXPECT_EQ(blocker.Wait(std::chrono::seconds(20)), 0);
  EXPECT_EQ(RunCbctl({"db", "partition", "event_log", "--yes", "--db-url", tdb.Url()}, &out), 0) << out;
  EXPECT_EQ(tdb.Query("SELECT relkind FROM pg_class WHERE oid = 'event_log'::regclass"), "p");
  ::unlink(log.c_str());
}

}  // namespace
