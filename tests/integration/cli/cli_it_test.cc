// cbctl against the real cbctld (and the cbagent it starts): exit codes, the --yes rule,
// server/token resolution, JSON output, and the commands end to end. The daemon harness is
// the control plane's (tests/integration/controlplane/cp_harness.h); everything it starts is
// stopped by PID when a test ends.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/integration/controlplane/cp_harness.h"

namespace cb::cliit {
namespace {

using cpit::CpWorld;
using cpit::ReadFile;
using cpit::RunCmd;
using cpit::RunResult;
using cpit::WaitFor;
using cpit::WriteFile;
using nlohmann::json;

const char* kFleet = R"(apiVersion: cbctl/v1
services:
  - {name: ticker, command: [/bin/sh, -c, "while true; do echo tick-$$; sleep 0.2; done"]}
  - {name: sleeper, command: [/bin/sleep, "1000"]}
)";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_unique<CpWorld>();
    world_->Serve();
    home_ = world_->dir() + "/home";
    mkdir(home_.c_str(), 0700);
    token_file_ = world_->state() + "/admin.token";
    fleet_ = world_->dir() + "/fleet.yaml";
    WriteFile(fleet_, kFleet);
  }

  // cbctl with HOME in the test dir (no stray config), the server from CBCTL_SERVER and the
  // admin token from --token-file unless `token` says otherwise.
  RunResult Cbctl(std::vector<std::string> args, std::vector<std::string> env = {},
                  bool admin = true) {
    std::vector<std::string> argv = {cpit::BinDir() + "/cbctl"};
    if (admin) {
      argv.push_back("--token-file");
      argv.push_back(token_file_);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> e = {"HOME=" + home_, "CBCTL_SERVER=" + world_->addr(),
                                  "CBCTL_TOKEN=", "XDG_CONFIG_HOME=", "NO_COLOR=1"};
    e.insert(e.end(), env.begin(), env.end());
    auto r = RunCmd(argv, 60, e);
    world_->Harvest();
    return r;
  }

  std::unique_ptr<CpWorld> world_;
  std::string home_, token_file_, fleet_;
};

TEST_F(CliTest, ApplyPlanPsAndNoChangeOnReapply) {
  // Without a terminal, apply needs --yes: usage error, nothing applied.
  auto refused = Cbctl({"apply", "-f", fleet_});
  EXPECT_EQ(refused.rc, 64) << refused.err;
  EXPECT_NE(refused.err.find("--yes"), std::string::npos);
  EXPECT_EQ(world_->Get("/v1/spec", world_->admin()).Json()["generation"], 0);

  auto plan = Cbctl({"plan", "-f", fleet_, "--detailed-exitcode"});
  EXPECT_EQ(plan.rc, 2) << plan.err;
  EXPECT_NE(plan.out.find("+ sleeper"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("Plan: 2 to add"), std::string::npos) << plan.out;
  auto dry = Cbctl({"apply", "-f", fleet_, "--dry-run", "-o", "json"});
  EXPECT_EQ(dry.rc, 0) << dry.err;
  EXPECT_EQ(json::parse(dry.out)["summary"]["add"], 2);

  auto apply = Cbctl({"apply", "-f", fleet_, "--yes", "--detailed-exitcode"});
  EXPECT_EQ(apply.rc, 2) << apply.err;
  EXPECT_NE(apply.out.find("Applied: generation 1"), std::string::npos) << apply.out;
  ASSERT_TRUE(world_->WaitRunning({"ticker", "sleeper"})) << world_->Log();

  auto ps = Cbctl({"ps", "-o", "json"});
  ASSERT_EQ(ps.rc, 0) << ps.err;
  auto services = json::parse(ps.out)["services"];
  ASSERT_EQ(services.size(), 2u);
  for (const auto& s : services) {
    EXPECT_EQ(s["host"], "local");
    EXPECT_TRUE(s["pid"].is_number());
  }
  auto table = Cbctl({"ps"});
  EXPECT_EQ(table.rc, 0);
  EXPECT_NE(table.out.find("HOST"), std::string::npos);
  EXPECT_NE(table.out.find("RESTARTS"), std::string::npos);
  EXPECT_NE(table.out.find("running"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("\x1b["), std::string::npos) << "no colour off a terminal";

  // The same file again: no change; the effective spec from get spec: no change either.
  auto again = Cbctl({"apply", "-f", fleet_, "--yes", "--detailed-exitcode"});
  EXPECT_EQ(again.rc, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("No changes"), std::string::npos) << again.out;
  auto got = Cbctl({"get", "spec", "-o", "yaml"});
  ASSERT_EQ(got.rc, 0) << got.err;
  std::string effective = world_->dir() + "/effective.yaml";
  WriteFile(effective, got.out);
  auto replan = Cbctl({"plan", "-f", effective, "--detailed-exitcode"});
  EXPECT_EQ(replan.rc, 0) << replan.out << replan.err << got.out;
  auto original = Cbctl({"get", "spec"});
  EXPECT_NE(original.out.find("name: ticker"), std::string::npos) << original.out;
  auto as_json = Cbctl({"get", "spec", "-o", "json"});
  EXPECT_EQ(json::parse(as_json.out)["generation"], 1);

  auto status = Cbctl({"status"});
  EXPECT_EQ(status.rc, 0) << status.err;
  EXPECT_NE(status.out.find("generation 1"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("1/1 reachable"), std::string::npos) << status.out;
  auto status_json = Cbctl({"status", "-o", "json"});
  EXPECT_EQ(json::parse(status_json.out)["services"]["total"], 2);
  auto names = Cbctl({"__services"});  // what the completion scripts offer
  EXPECT_EQ(names.out, "sleeper\nticker\n") << names.err;
  auto hosts = Cbctl({"get", "hosts", "-o", "yaml"});
  EXPECT_NE(hosts.out.find("reachable: true"), std::string::npos) << hosts.out;
}

// Runs `cbctl apply` on a pseudo-terminal and answers its question.
struct PtyRun {
  int rc = -1;
  std::string screen;
};
PtyRun ApplyOnTerminal(const std::string& home, const std::string& addr, const std::string& token,
                       const std::string& fleet, const std::string& answer) {
  PtyRun r;
  int fd = -1;
  pid_t pid = forkpty(&fd, nullptr, nullptr, nullptr);
  if (pid == 0) {
    setenv("HOME", home.c_str(), 1);
    setenv("CBCTL_SERVER", addr.c_str(), 1);
    setenv("TERM", "xterm", 1);
    unsetenv("NO_COLOR");
    std::string bin = cpit::BinDir() + "/cbctl";
    execl(bin.c_str(), "cbctl", "--token-file", token.c_str(), "apply", "-f", fleet.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  bool answered = false;
  auto end = cpit::SteadyClock::now() + std::chrono::seconds(30);
  char buf[4096];
  while (cpit::SteadyClock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child is gone
    r.screen.append(buf, static_cast<size_t>(n));
    if (!answered && r.screen.find("[y/N]") != std::string::npos) {
      std::string line = answer + "\n";
      if (write(fd, line.data(), line.size()) < 0) break;
      answered = true;
    }
  }
  int st = 0;
  if (waitpid(pid, &st, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  close(fd);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST_F(CliTest, ApplyAsksOnATerminal) {
  auto no = ApplyOnTerminal(home_, world_->addr(), token_file_, fleet_, "n");
  EXPECT_EQ(no.rc, 1) << no.screen;
  EXPECT_NE(no.screen.find("+ sleeper"), std::string::npos) << no.screen;
  EXPECT_NE(no.screen.find("Apply these changes? [y/N]"), std::string::npos) << no.screen;
  EXPECT_NE(no.screen.find("Not applied"), std::string::npos) << no.screen;
  EXPECT_NE(no.screen.find("\x1b[32m"), std::string::npos) << "colour on a terminal";
  EXPECT_EQ(world_->Get("/v1/spec", world_->admin()).Json()["generation"], 0);
  auto yes = ApplyOnTerminal(home_, world_->addr(), token_file_, fleet_, "y");
  EXPECT_EQ(yes.rc, 0) << yes.screen;
  EXPECT_NE(yes.screen.find("generation 1"), std::string::npos) << yes.screen;
  EXPECT_EQ(world_->Get("/v1/spec", world_->admin()).Json()["generation"], 1);
  EXPECT_TRUE(world_->WaitRunning({"ticker", "sleeper"}));
}

TEST_F(CliTest, InvalidSpecListsEveryProblemAndAppliesNothing) {
  std::string bad = world_->dir() + "/bad.yaml";
  WriteFile(bad, "services:\n  - {name: Bad/Name, command: []}\nhostz: []\n");
  auto r = Cbctl({"apply", "-f", bad, "--yes"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("services[0].name"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("services[0].command"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'hosts'"), std::string::npos) << r.err;
  EXPECT_EQ(world_->Get("/v1/spec", world_->admin()).Json()["generation"], 0);
  auto missing = Cbctl({"plan", "-f", world_->dir() + "/nope.yaml"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos);
}

TEST_F(CliTest, ServiceCommandsAndLogs) {
  ASSERT_EQ(Cbctl({"apply", "-f", fleet_, "--yes"}).rc, 0);
  ASSERT_TRUE(world_->WaitRunning({"ticker", "sleeper"}));
  auto stop = Cbctl({"svc", "stop", "sleeper"});
  EXPECT_EQ(stop.rc, 0) << stop.err;
  EXPECT_NE(stop.out.find("sleeper"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return world_->State("sleeper") == "stopped"; }, 15));
  auto restart = Cbctl({"svc", "restart", "sleeper"});
  EXPECT_EQ(restart.rc, 1) << "restart of a stopped override is refused: " << restart.out;
  auto start = Cbctl({"svc", "start", "sleeper@local", "-o", "json"});
  EXPECT_EQ(start.rc, 0) << start.err;
  EXPECT_EQ(json::parse(start.out)["service"]["name"], "sleeper");
  EXPECT_TRUE(world_->WaitRunning({"sleeper"}));
  EXPECT_EQ(Cbctl({"svc", "reset", "sleeper"}).rc, 0);

  auto bad = Cbctl({"svc", "stop", "../etc"});
  EXPECT_EQ(bad.rc, 64) << bad.err;
  auto unknown = Cbctl({"svc", "stop", "nosuch"});
  EXPECT_EQ(unknown.rc, 1);
  EXPECT_NE(unknown.err.find("nosuch"), std::string::npos);

  ASSERT_TRUE(WaitFor(
      [&] {
        return Cbctl({"logs", "ticker", "--tail", "3"}).out.find("tick-") != std::string::npos;
      },
      15));
  auto logs = Cbctl({"logs", "ticker", "--tail", "2", "-o", "json"});
  EXPECT_EQ(logs.rc, 0);
  EXPECT_LE(json::parse(logs.out)["lines"].size(), 2u);
  EXPECT_EQ(Cbctl({"logs", "ticker", "--tail", "x"}).rc, 64);
  EXPECT_EQ(Cbctl({"logs", "ticker", "-f", "-o", "json"}).rc, 64);

  // logs -f keeps printing new lines until it is stopped (here by SIGTERM, by PID).
  std::string out = world_->dir() + "/follow.out";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    setenv("HOME", home_.c_str(), 1);
    setenv("CBCTL_SERVER", world_->addr().c_str(), 1);
    execl((cpit::BinDir() + "/cbctl").c_str(), "cbctl", "--token-file", token_file_.c_str(), "logs",
          "ticker", "-f", "--tail", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  bool streamed = WaitFor(
      [&] {
        std::string text = ReadFile(out);
        return std::count(text.begin(), text.end(), '\n') >= 4;  // the tail, then new lines
      },
      20);
  // Other requests are served while a follower is connected.
  EXPECT_EQ(Cbctl({"ps"}).rc, 0);
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(streamed) << ReadFile(out);
  EXPECT_NE(ReadFile(out).find("tick-"), std::string::npos);
}

TEST_F(CliTest, TokensScopesAndAudit) {
  auto created = Cbctl({"token", "create", "ci", "--scope", "viewer"});
  ASSERT_EQ(created.rc, 0) << created.err;
  std::string secret = cpit::Trim(created.out);
  EXPECT_TRUE(secret.starts_with("cbt_")) << "only the secret on stdout: " << created.out;
  EXPECT_NE(created.err.find("shown only this once"), std::string::npos);

  std::string viewer_file = world_->dir() + "/viewer.token";
  WriteFile(viewer_file, secret + "\n");
  chmod(viewer_file.c_str(), 0600);
  auto as_viewer = [&](std::vector<std::string> args) {
    std::vector<std::string> a = {"--token-file", viewer_file};
    a.insert(a.end(), args.begin(), args.end());
    return Cbctl(a, {}, false);
  };
  EXPECT_EQ(as_viewer({"ps"}).rc, 0);
  auto denied = as_viewer({"apply", "-f", fleet_, "--yes"});
  EXPECT_EQ(denied.rc, 77) << denied.err;
  EXPECT_EQ(as_viewer({"token", "list"}).rc, 77);

  // A token file others can read works, with a warning.
  chmod(viewer_file.c_str(), 0644);
  auto loose = as_viewer({"ps"});
  EXPECT_EQ(loose.rc, 0);
  EXPECT_NE(loose.err.find("can be read by other users"), std::string::npos) << loose.err;

  // No token, a wrong one: 77 with a hint where tokens come from.
  auto none = Cbctl({"ps"}, {}, false);
  EXPECT_EQ(none.rc, 77);
  EXPECT_NE(none.err.find("no token found"), std::string::npos) << none.err;
  auto wrong = Cbctl({"ps"}, {"CBCTL_TOKEN=cbt_wrong"}, false);
  EXPECT_EQ(wrong.rc, 77);
  EXPECT_NE(wrong.err.find("CBCTL_TOKEN"), std::string::npos) << wrong.err;

  // The config file: server and token_file.
  mkdir((home_ + "/.config").c_str(), 0700);
  mkdir((home_ + "/.config/cbctl").c_str(), 0700);
  WriteFile(home_ + "/.config/cbctl/config.yaml",
            "server: http://" + world_->addr() + "\ntoken_file: " + token_file_ + "\n");
  auto from_config = RunCmd({cpit::BinDir() + "/cbctl", "token", "list", "-o", "json"}, 30,
                            {"HOME=" + home_, "CBCTL_SERVER=", "CBCTL_TOKEN=", "XDG_CONFIG_HOME="});
  ASSERT_EQ(from_config.rc, 0) << from_config.err;
  auto tokens = json::parse(from_config.out)["tokens"];
  EXPECT_EQ(tokens.size(), 2u);

  auto revoked = Cbctl({"token", "revoke", "ci"});
  EXPECT_EQ(revoked.rc, 0) << revoked.err;
  chmod(viewer_file.c_str(), 0600);
  EXPECT_EQ(as_viewer({"ps"}).rc, 77);

  auto audit = Cbctl({"audit", "--limit", "50", "-o", "json"});
  ASSERT_EQ(audit.rc, 0) << audit.err;
  bool saw_denied = false, saw_revoke = false;
  json audit_json = json::parse(audit.out);
  for (const auto& e : audit_json["entries"]) {
    saw_denied = saw_denied || e["result"] == "permission_denied";
    saw_revoke =
        saw_revoke || (e["action"].get<std::string>().starts_with("DELETE") && e["result"] == "ok");
  }
  EXPECT_TRUE(saw_denied) << audit.out;
  EXPECT_TRUE(saw_revoke) << audit.out;
  EXPECT_EQ(Cbctl({"audit", "--limit", "0"}).rc, 64);
  EXPECT_EQ(Cbctl({"token", "create", "x", "--scope", "root"}).rc, 64);
}

TEST_F(CliTest, UnreachableDaemonIsOneClearLineAndExit69) {
  world_->Kill9Daemon();
  auto r = Cbctl({"ps"});
  EXPECT_EQ(r.rc, 69);
  EXPECT_NE(r.err.find("cannot reach cbctld at http://" + world_->addr() + " (from CBCTL_SERVER)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("cbctld serve"), std::string::npos) << "says how to start it";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  auto bad_server = Cbctl({"--server", "ftp://x", "ps"});
  EXPECT_EQ(bad_server.rc, 64) << bad_server.err;
  // Daemon-less commands do not care.
  EXPECT_EQ(Cbctl({"version"}).rc, 0);
  EXPECT_EQ(Cbctl({"config", "validate", fleet_}).rc, 0);
}

// cbctl execs cbctl-api (no libpq) for daemon commands and cbctl-full only for db commands:
// with only cbctl and cbctl-api installed, `ps` still works and `db status` names what is missing.
TEST_F(CliTest, DaemonCommandsRunWithoutCbctlFull) {
  std::string bin = world_->dir() + "/bin";
  ASSERT_EQ(mkdir(bin.c_str(), 0700), 0);
  for (const char* name : {"cbctl", "cbctl-api"}) {
    std::filesystem::copy_file(cpit::BinDir() + "/" + name, bin + "/" + name);
  }
  std::vector<std::string> env = {"HOME=" + home_, "CBCTL_SERVER=" + world_->addr(),
                                  "CBCTL_TOKEN=", "XDG_CONFIG_HOME=", "NO_COLOR=1"};
  ASSERT_EQ(Cbctl({"apply", "--yes", "-f", fleet_}).rc, 0);
  auto ps = RunCmd({bin + "/cbctl", "--token-file", token_file_, "ps", "-o", "json"}, 60, env);
  world_->Harvest();
  ASSERT_EQ(ps.rc, 0) << ps.err;
  EXPECT_NE(ps.out.find("sleeper"), std::string::npos) << ps.out;
  auto db = RunCmd({bin + "/cbctl", "db", "status"}, 60, env);
  EXPECT_EQ(db.rc, 1) << db.err;
  EXPECT_NE(db.err.find(bin + "/cbctl-full, which cannot be started"), std::string::npos) << db.err;
  // The daemon binary does not load the Postgres client libraries.
  auto ldd = RunCmd({"/usr/bin/ldd", bin + "/cbctl-api"}, 60, {});
  ASSERT_EQ(ldd.rc, 0) << ldd.err;
  EXPECT_NE(ldd.out.find("libcpp-httplib"), std::string::npos) << ldd.out;
  EXPECT_EQ(ldd.out.find("libpq"), std::string::npos) << ldd.out;
}

}  // namespace
}  // namespace cb::cliit
