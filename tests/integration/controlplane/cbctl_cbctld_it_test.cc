// The issue-3 story through the real cbctl against the real cbctld and cbagent: exit codes,
// --yes without a terminal, plan --detailed-exitcode, ps -o json, svc stop, 77 for a viewer's
// apply, 69 with one clear line when the daemon is unreachable.
#include <gtest/gtest.h>

#include "tests/integration/controlplane/cp_harness.h"

namespace cb::cpit {
namespace {

const char* kSpec = R"(apiVersion: cbctl/v1
deployment: it
hosts:
  - {name: local, address: local}
services:
  - {name: web, command: [/bin/sleep, "3600"]}
  - {name: worker, command: [/bin/sh, -c, "while true; do echo tick; sleep 0.2; done"]}
)";
const char* kSpecEdited = R"(apiVersion: cbctl/v1
deployment: it
hosts:
  - {name: local, address: local}
services:
  - {name: web, command: [/bin/sleep, "3600"]}
  - {name: worker, command: [/bin/sh, -c, "while true; do echo tock; sleep 0.2; done"]}
)";

class CbctlIt : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access((BinDir() + "/cbctl").c_str(), X_OK), 0) << "build cbctl first";
    w.Serve();
    token_file = w.dir() + "/admin.token";
    WriteFile(token_file, w.admin() + "\n");
    chmod(token_file.c_str(), 0600);
    spec = w.dir() + "/fleet.yaml";
    WriteFile(spec, kSpec);
    home = w.dir() + "/home";
    mkdir(home.c_str(), 0700);
  }
  RunResult Cbctl(std::vector<std::string> args, const std::string& tok = "") {
    std::vector<std::string> argv = {BinDir() + "/cbctl", "--server", "http://" + w.addr(), "--token-file",
                                     tok.empty() ? token_file : tok};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCmd(argv, 30, {"HOME=" + home, "NO_COLOR=1"});
  }
  CpWorld w;
  std::string token_file, spec, home;
};

TEST_F(CbctlIt, ApplyPlanPsSvcStopWithExitCodes) {
  // Without a terminal, apply needs --yes (usage error 64) and applies nothing.
  auto no_yes = Cbctl({"apply", "-f", spec});
  EXPECT_EQ(no_yes.rc, 64) << no_yes.out << no_yes.err;
  EXPECT_EQ(w.Get("/v1/spec", w.admin()).Json()["generation"], 0);

  auto plan = Cbctl({"plan", "-f", spec, "--detailed-exitcode"});
  EXPECT_EQ(plan.rc, 2) << plan.out << plan.err;
  EXPECT_NE(plan.out.find("+ web"), std::string::npos) << plan.out;

  auto apply = Cbctl({"apply", "-f", spec, "--yes"});
  ASSERT_EQ(apply.rc, 0) << apply.out << apply.err;
  ASSERT_TRUE(w.WaitRunning({"web", "worker"}));
  int64_t web = w.Pid("web"), worker = w.Pid("worker");

  auto same = Cbctl({"plan", "-f", spec, "--detailed-exitcode"});
  EXPECT_EQ(same.rc, 0) << same.out << same.err;

  auto ps = Cbctl({"ps", "-o", "json"});
  ASSERT_EQ(ps.rc, 0) << ps.err;
  json pj = json::parse(ps.out, nullptr, false);
  ASSERT_FALSE(pj.is_discarded()) << ps.out;
  json list = pj.is_object() && pj.contains("services") ? pj["services"] : pj;
  ASSERT_EQ(list.size(), 2u) << ps.out;
  std::map<std::string, int64_t> pids;
  for (const auto& s : list) pids[s["name"].get<std::string>()] = s["pid"].is_number() ? s["pid"].get<int64_t>() : 0;
  EXPECT_EQ(pids["web"], web);
  EXPECT_EQ(pids["worker"], worker);

  WriteFile(spec, kSpecEdited);
  auto edit = Cbctl({"apply", "-f", spec, "--yes"});
  ASSERT_EQ(edit.rc, 0) << edit.out << edit.err;
  ASSERT_TRUE(WaitFor([&] { auto p = w.Pid("worker"); return p > 0 && p != worker; }, 10));
  EXPECT_EQ(w.Pid("web"), web) << "only the edited service restarts";

  auto stop = Cbctl({"svc", "stop", "web"});
  EXPECT_EQ(stop.rc, 0) << stop.out << stop.err;
  ASSERT_TRUE(WaitFor([&] { return w.State("web") == "stopped"; }, 10));
  auto bad = Cbctl({"svc", "stop", "we/b"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_EQ(w.State("worker"), "running");
}

TEST_F(CbctlIt, ViewerApplyIs77AndUnreachableIs69) {
  std::string viewer = w.Token("ro", "viewer");
  std::string vf = w.dir() + "/viewer.token";
  WriteFile(vf, viewer + "\n");
  chmod(vf.c_str(), 0600);
  auto r = Cbctl({"apply", "-f", spec, "--yes"}, vf);
  EXPECT_EQ(r.rc, 77) << r.out << r.err;
  EXPECT_EQ(w.Get("/v1/spec", w.admin()).Json()["generation"], 0);

  // A port nothing listens on (taken from a socket we close) on loopback.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  int port = ntohs(sa.sin_port);
  close(fd);
  auto down = RunCmd({BinDir() + "/cbctl", "--server", "http://127.0.0.1:" + std::to_string(port), "--token-file",
                      token_file, "ps"},
                     30, {"HOME=" + home, "NO_COLOR=1"});
  EXPECT_EQ(down.rc, 69) << down.out << down.err;
  EXPECT_NE(down.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << down.err;
}

}  // namespace
}  // namespace cb::cpit
