// `cbctl db tune --apply --restart` against a Postgres that cbctld supervises: the real cbctld,
// its cbagent running /usr/lib/postgresql/15/bin/postgres as `user: postgres` on a throwaway
// data dir (unix socket only), and the real cbctl.
#include <gtest/gtest.h>
#include <pwd.h>

#include "tests/integration/controlplane/cp_harness.h"
#include "tests/support/pg_cluster.h"

namespace cb::cpit {
namespace {

const char* kPgBin = "/usr/lib/postgresql/15/bin";

// A throwaway cluster directory owned by postgres; at the end (after CpWorld froze the agent
// and killed its services) stops whatever postmaster its postmaster.pid names, by PID, and
// removes the directory.
struct PgDir {
  std::string dir;
  bool ok = false;
  std::string why;
  PgDir() {
    struct passwd* pw = getpwnam("postgres");
    if (geteuid() != 0 || !pw || access((std::string(kPgBin) + "/postgres").c_str(), X_OK) != 0) {
      why = "needs root, the postgres user and " + std::string(kPgBin);
      return;
    }
    char tmpl[] = "/tmp/cbpgsvc-XXXXXX";
    dir = mkdtemp(tmpl);
    if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) return;
    chmod(dir.c_str(), 0700);
    auto r = RunCmd({"/usr/sbin/runuser", "-u", "postgres", "--", std::string(kPgBin) + "/initdb", "-D",
                     dir + "/data", "-A", "trust", "-U", "postgres"},
                    120);
    ok = r.rc == 0;
    if (!ok) why = "initdb failed: " + r.out + r.err;
  }
  pid_t Postmaster() const {
    std::string pid = ReadFile(dir + "/data/postmaster.pid");
    return pid.empty() ? 0 : std::atoi(pid.c_str());
  }
  ~PgDir() {
    if (dir.empty()) return;
    pid_t p = Postmaster();
    if (p > 1 && Alive(p)) {
      kill(p, SIGQUIT);  // immediate shutdown: the postmaster stops its backends
      if (!WaitFor([&] { return !Alive(p); }, 10)) kill(p, SIGKILL);
    }
    RunCmd({"/bin/rm", "-rf", dir});
  }
};

TEST(CbctlDbTuneRestartIt, RestartsTheSupervisedPostgresAndThePendingSettingTakesEffect) {
  PgDir pg;  // declared before the world: destroyed after it
  if (!pg.ok) GTEST_SKIP() << pg.why;
  CpWorld w;
  w.Serve();
  ASSERT_EQ(access((BinDir() + "/cbctl").c_str(), X_OK), 0) << "build cbctl first";
  std::string url = "postgresql://postgres@/postgres?host=" + pg.dir + "&port=5432";
  std::string spec = "apiVersion: cbctl/v1\ndeployment: it\ndatabase:\n  url: \"" + url +
                     "\"\n  service: pg\nhosts:\n  - {name: local, address: local}\nservices:\n"
                     "  - {name: pg, user: postgres, cwd: " + pg.dir + ", command: [" + kPgBin + "/postgres, -D, " +
                     pg.dir + "/data, -k, " + pg.dir + ", -p, \"5432\", -c, \"listen_addresses=\"],\n"
                     "     stop: {signal: INT, grace_seconds: 30}}\n";
  std::string spec_file = w.dir() + "/fleet.yaml";
  WriteFile(spec_file, spec);
  auto applied = w.Apply(spec, 0);
  ASSERT_EQ(applied.status, 200) << applied.body;
  ASSERT_TRUE(w.WaitRunning({"pg"}, 30)) << w.Log();
  auto psql = [&](const std::string& sql) {
    auto r = RunCmd({std::string(kPgBin) + "/psql", "-X", "-q", "-At", "-h", pg.dir, "-p", "5432", "-U", "postgres",
                     "-d", "postgres", "-c", sql});
    return r.rc == 0 ? Trim(r.out) : std::string();
  };
  ASSERT_TRUE(WaitFor([&] { return psql("SELECT 1") == "1"; }, 30)) << w.Log();
  ASSERT_EQ(psql("SHOW shared_buffers"), "128MB");
  pid_t before = static_cast<pid_t>(w.Pid("pg"));
  ASSERT_GT(before, 0);

  std::string token_file = w.dir() + "/admin.token";
  WriteFile(token_file, w.admin() + "\n");
  chmod(token_file.c_str(), 0600);
  std::string home = w.dir() + "/home";
  mkdir(home.c_str(), 0700);
  auto tune = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {BinDir() + "/cbctl", "--server", "http://" + w.addr(), "--token-file",
                                     token_file, "db", "tune", "-f", spec_file, "--ram", "2GB", "--cpus", "2",
                                     "--yes"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCmd(argv, 180, {"HOME=" + home, "NO_COLOR=1"});
  };
  auto r = tune({"--apply", "--restart", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.out << r.err << "\n" << w.Log();
  auto j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["restarted"], true) << r.out;
  EXPECT_TRUE(j["pending_restart"].empty()) << r.out;
  // 25% of 2GB, in effect after the restart cbctld did.
  EXPECT_EQ(psql("SHOW shared_buffers"), "512MB");
  EXPECT_EQ(psql("SELECT count(*) FROM pg_settings WHERE pending_restart"), "0");
  pid_t after = static_cast<pid_t>(w.Pid("pg"));
  EXPECT_GT(after, 0);
  EXPECT_NE(after, before) << "the service was restarted";
  EXPECT_FALSE(Alive(before));

  // Restore puts 128MB back pending a restart; without database.service, --restart only advises.
  std::string plain = spec;
  plain.replace(plain.find("  service: pg\n"), std::string("  service: pg\n").size(), "");
  WriteFile(spec_file, plain);
  auto restore = RunCmd({BinDir() + "/cbctl", "db", "tune", "-f", spec_file, "--restore", "--yes"}, 60,
                        {"HOME=" + home, "NO_COLOR=1"});
  ASSERT_EQ(restore.rc, 0) << restore.out << restore.err;
  auto again = tune({"--apply", "--restart", "--max-connections", "150"});
  ASSERT_EQ(again.rc, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("not restarting"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("database.service is not set"), std::string::npos) << again.out;
  EXPECT_EQ(w.Pid("pg"), after) << "nothing restarted";
}

}  // namespace
}  // namespace cb::cpit
