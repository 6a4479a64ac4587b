// RealLauncher with real processes (short-lived, killed by PID at the end of each test).
#include "agents/real_launcher.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace cb {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class RealLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cblaunch-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    for (auto& [pid, fd] : watched_) kill(-pid, SIGKILL);
    for (auto& [pid, fd] : watched_) (void)launcher_.Reap(pid);
    fs::remove_all(dir_);
  }
  ServiceSpec Spec(std::vector<std::string> cmd) {
    ServiceSpec s;
    s.name = "t";
    s.command = std::move(cmd);
    return s;
  }
  // Waits for the pidfd of `pid` to become readable, then reaps.
  std::optional<ExitStatus> WaitExit(pid_t pid, int timeout_ms = 5000) {
    pollfd p{watched_.at(pid), POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    auto st = launcher_.Reap(pid);
    if (st) watched_.erase(pid);
    return st;
  }

  std::string dir_;
  std::map<pid_t, int> watched_;
  RealLauncher launcher_{"/", [this](pid_t pid, int fd) { watched_[pid] = fd; }};
};

TEST_F(RealLauncherTest, StartsInOwnGroupWithLogEnvAndCwd) {
  std::string log = dir_ + "/t.log";
  ServiceSpec s =
      Spec({"/bin/sh", "-c", "echo out $FOO $(pwd); echo err >&2; ps -o pgid= -p $$; exit 7"});
  s.env["FOO"] = "bar";
  s.cwd = dir_;
  auto id = launcher_.Start(s, log);
  ASSERT_TRUE(id) << id.error().ToString();
  EXPECT_GT(id->start_ticks, 0u);
  ASSERT_TRUE(watched_.count(id->pid));
  auto st = WaitExit(id->pid);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, ExitStatus::Code(7));
  std::string text = Slurp(log);
  EXPECT_NE(text.find("out bar " + dir_), std::string::npos) << text;
  EXPECT_NE(text.find("err"), std::string::npos) << text;
  EXPECT_NE(text.find(std::to_string(id->pid)), std::string::npos) << "pgid == pid: " << text;
}

TEST_F(RealLauncherTest, SignalExitAndGroupSignal) {
  auto id = launcher_.Start(Spec({"sleep", "30"}), dir_ + "/l");
  ASSERT_TRUE(id);
  auto ticks = ProcessStartTicks(id->pid);
  ASSERT_TRUE(ticks);
  EXPECT_EQ(*ticks, id->start_ticks);
  ASSERT_TRUE(launcher_.SignalGroup(id->pid, SIGTERM));
  auto st = WaitExit(id->pid);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, ExitStatus::Signal(SIGTERM));
  EXPECT_TRUE(launcher_.SignalGroup(id->pid, SIGKILL));  // gone group: success
}

TEST_F(RealLauncherTest, ExecFailuresComeBackWithErrno) {
  auto missing = launcher_.Start(Spec({dir_ + "/nope"}), dir_ + "/l");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_NE(missing.error().message.find("exec " + dir_ + "/nope"), std::string::npos)
      << missing.error().message;
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);

  std::ofstream(dir_ + "/script") << "#!/bin/sh\n";
  auto noexec = launcher_.Start(Spec({dir_ + "/script"}), dir_ + "/l");
  ASSERT_FALSE(noexec);
  EXPECT_EQ(noexec.error().code, Code::kPermissionDenied);
  EXPECT_NE(noexec.error().message.find("not executable"), std::string::npos);

  auto nopath = launcher_.Start(Spec({"definitely-not-a-command-xyz"}), dir_ + "/l");
  ASSERT_FALSE(nopath);
  EXPECT_NE(nopath.error().message.find("not found on PATH"), std::string::npos);

  ServiceSpec badcwd = Spec({"/bin/true"});
  badcwd.cwd = dir_ + "/no-such-dir";
  auto cwd = launcher_.Start(badcwd, dir_ + "/l");
  ASSERT_FALSE(cwd);
  EXPECT_NE(cwd.error().message.find("chdir " + dir_ + "/no-such-dir"), std::string::npos);

  auto badlog = launcher_.Start(Spec({"/bin/true"}), dir_ + "/no-dir/x.log");
  ASSERT_FALSE(badlog);
  EXPECT_NE(badlog.error().message.find("open log file"), std::string::npos);
  EXPECT_TRUE(watched_.empty());  // nothing left to watch after failures
}

// A batch runs several starts at a time (helper threads); every result is in request order,
// each service runs in its own group with its own log and argv, and failures come back with
// their errno like Start()'s.
TEST_F(RealLauncherTest, StartManyKeepsOrderAndReportsEachFailure) {
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < 24; ++i) {
    ServiceSpec s = Spec({"/bin/sh", "-c", "echo svc" + std::to_string(i) + "; exec sleep 30"});
    s.name = "s" + std::to_string(i);
    specs.push_back(s);
  }
  specs[5].command = {dir_ + "/nope"};
  specs[17].command = {"definitely-not-a-command-xyz"};
  std::vector<StartRequest> reqs;
  for (auto& s : specs) reqs.push_back({&s, dir_ + "/" + s.name + ".log"});
  auto results = launcher_.StartMany(reqs);
  ASSERT_EQ(results.size(), specs.size());
  std::set<pid_t> pids;
  for (size_t i = 0; i < results.size(); ++i) {
    if (i == 5) {
      ASSERT_FALSE(results[i]);
      EXPECT_EQ(results[i].error().message, "exec " + dir_ + "/nope: No such file or directory");
      continue;
    }
    if (i == 17) {
      ASSERT_FALSE(results[i]);
      EXPECT_NE(results[i].error().message.find("not found on PATH"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().ToString();
    pid_t pid = results[i]->pid;
    EXPECT_TRUE(pids.insert(pid).second);
    EXPECT_EQ(getpgid(pid), pid) << i;
    ASSERT_TRUE(watched_.count(pid)) << i;
    EXPECT_EQ(ProcessStartTicks(pid).value_or(0), results[i]->start_ticks) << i;
  }
  EXPECT_EQ(launcher_.watched(), specs.size() - 2);
  // Each log got its own service's output (order and identity of the results).
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i == 5 || i == 17) continue;
    std::string log = dir_ + "/" + specs[i].name + ".log";
    for (int k = 0; k < 200 && Slurp(log).empty(); ++k) usleep(10000);
    EXPECT_EQ(Slurp(log), "svc" + std::to_string(i) + "\n") << i;
  }
}

TEST_F(RealLauncherTest, AdoptChecksStartTime) {
  auto id = launcher_.Start(Spec({"sleep", "30"}), dir_ + "/l");
  ASSERT_TRUE(id);
  RealLauncher other("/", [](pid_t, int) {});
  EXPECT_FALSE(other.Adopt(ProcessId{id->pid, id->start_ticks + 1}));
  EXPECT_TRUE(other.Adopt(*id));
  EXPECT_EQ(other.watched(), 1u);
  EXPECT_FALSE(other.Adopt(ProcessId{999999999, 1}));
}

TEST_F(RealLauncherTest, UserNeedsRoot) {
  if (geteuid() == 0) GTEST_SKIP() << "running as root";
  ServiceSpec s = Spec({"/bin/true"});
  s.user = "nobody";
  auto r = launcher_.Start(s, dir_ + "/l");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kPermissionDenied);
  EXPECT_NE(r.error().message.find("root"), std::string::npos);
}

TEST_F(RealLauncherTest, UserRunsAsThatUserWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  ServiceSpec s = Spec({"/bin/sh", "-c", "id -un"});
  s.user = "nobody";
  std::string log = dir_ + "/u.log";
  auto id = launcher_.Start(s, log);
  ASSERT_TRUE(id) << id.error().ToString();
  ASSERT_TRUE(WaitExit(id->pid));
  EXPECT_EQ(Slurp(log), "nobody\n");
}

}  // namespace
}  // namespace cb
