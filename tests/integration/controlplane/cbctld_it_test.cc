// End-to-end tests of cbctld with the real cbctld and cbagent binaries (issue 3, "Tests").
#include <gtest/gtest.h>

#include "tests/integration/controlplane/cp_harness.h"

namespace cb::cpit {
namespace {

const char* kSpecV1 = R"(apiVersion: cbctl/v1
deployment: it
hosts:
  - {name: local, address: local}
services:
  - {name: web, command: [/bin/sleep, "3600"]}
  - {name: worker, command: [/bin/sh, -c, "while true; do echo tick; sleep 0.2; done"]}
)";

// Same as V1 but worker's command changed.
const char* kSpecV2 = R"(apiVersion: cbctl/v1
deployment: it
hosts:
  - {name: local, address: local}
services:
  - {name: web, command: [/bin/sleep, "3600"]}
  - {name: worker, command: [/bin/sh, -c, "while true; do echo tock; sleep 0.2; done"]}
)";

class CbctldIt : public ::testing::Test {
 protected:
  void SetUp() override { w.Serve(); }
  // Applies kSpecV1 at generation 0 and waits until both run.
  void ApplyV1() {
    auto r = w.Apply(kSpecV1, 0);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_TRUE(w.WaitRunning({"web", "worker"})) << r.body << "\n" << w.Log();
  }
  CpWorld w;
};

TEST_F(CbctldIt, ApplyRunsThenPlanShowsNoChangeThenEditingOneRestartsOnlyThatOne) {
  auto plan0 = w.Plan(kSpecV1);
  ASSERT_EQ(plan0.status, 200) << plan0.body;
  EXPECT_EQ(plan0.Json()["summary"]["add"], 2);
  EXPECT_EQ(plan0.Json()["current_generation"], 0);

  ApplyV1();
  int64_t web = w.Pid("web"), worker = w.Pid("worker");
  ASSERT_GT(web, 0);
  ASSERT_GT(worker, 0);
  EXPECT_TRUE(Alive(static_cast<pid_t>(web)));
  EXPECT_TRUE(Alive(static_cast<pid_t>(worker)));

  auto same = w.Plan(kSpecV1);
  ASSERT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(same.Json()["has_changes"], false) << same.body;
  EXPECT_EQ(same.Json()["summary"]["unchanged"], 2);
  EXPECT_EQ(same.Json()["current_generation"], 1);

  auto plan2 = w.Plan(kSpecV2);
  ASSERT_EQ(plan2.status, 200);
  json changes = plan2.Json()["changes"];
  bool saw_change = false;
  for (const auto& c : changes) {
    if (c["name"] == "worker") {
      EXPECT_EQ(c["action"], "change");
      EXPECT_EQ(c["fields"], json::array({"command"}));
      saw_change = true;
    } else {
      EXPECT_EQ(c["action"], "unchanged") << c.dump();
    }
  }
  EXPECT_TRUE(saw_change) << plan2.body;

  auto r = w.Apply(kSpecV2, 1);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["generation"], 2);
  EXPECT_EQ(r.Json()["hosts"][0]["restarted"], json::array({"worker"})) << r.body;
  ASSERT_TRUE(WaitFor([&] { auto p = w.Pid("worker"); return p > 0 && p != worker; }, 10));
  ASSERT_TRUE(w.WaitRunning({"web", "worker"}));
  EXPECT_EQ(w.Pid("web"), web) << "web's definition did not change: it must not restart";
  EXPECT_TRUE(Alive(static_cast<pid_t>(web)));
  EXPECT_FALSE(WaitFor([&] { return !Alive(static_cast<pid_t>(web)); }, 1.0));
}

TEST_F(CbctldIt, SvcStopSurvivesReconcileUntilStart) {
  ApplyV1();
  int64_t before = w.Stats("cbctld_reconcile_duration_seconds_count");
  auto r = w.Post("/v1/services/web/stop", w.admin(), "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["service"]["override"], "stopped");
  ASSERT_TRUE(WaitFor([&] { return w.State("web") == "stopped"; }, 15)) << w.State("web");
  // Several reconcile passes (every 0.5 s) later it is still stopped.
  ASSERT_TRUE(WaitFor([&] { return w.Stats("cbctld_reconcile_duration_seconds_count") >= before + 3; }, 15));
  EXPECT_EQ(w.State("web"), "stopped");
  EXPECT_EQ(w.Services()["web"]["override"], "stopped");
  // An apply of the same spec does not start it either.
  auto a = w.Apply(kSpecV1, 1);
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(w.State("web"), "stopped");

  auto s = w.Post("/v1/services/web@local/start", w.admin(), "{}");
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_TRUE(s.Json()["service"]["override"].is_null());
  EXPECT_TRUE(w.WaitRunning({"web"}));
}

TEST_F(CbctldIt, CbctldKilledAndRestartedKeepsTheSamePids) {
  ApplyV1();
  int64_t web = w.Pid("web"), worker = w.Pid("worker");
  auto hosts = w.Get("/v1/hosts", w.admin()).Json();
  int64_t agent = hosts["hosts"][0]["agent_pid"].get<int64_t>();
  w.Kill9Daemon();
  EXPECT_TRUE(Alive(static_cast<pid_t>(web)));
  EXPECT_TRUE(Alive(static_cast<pid_t>(agent))) << "the agent outlives cbctld";
  w.Serve();
  // Wait for a pass of the new daemon (it reaches the agent and records it).
  ASSERT_TRUE(WaitFor([&] { return w.Stats("cbctld_reconcile_duration_seconds_count") >= 2; }, 15));
  EXPECT_EQ(w.Pid("web"), web);
  EXPECT_EQ(w.Pid("worker"), worker);
  auto hosts2 = w.Get("/v1/hosts", w.admin()).Json();
  EXPECT_EQ(hosts2["hosts"][0]["agent_pid"].get<int64_t>(), agent) << "no second agent";
  EXPECT_EQ(hosts2["hosts"][0]["reachable"], true);
}

TEST_F(CbctldIt, ViewerCannotApplyAndMissingOrWrongTokenIs401WithAuditEntries) {
  std::string viewer = w.Token("ro", "viewer");
  auto p = w.Plan(kSpecV1, viewer);
  EXPECT_EQ(p.status, 200) << "viewers may plan";
  auto a = w.Apply(kSpecV1, 0, viewer);
  EXPECT_EQ(a.status, 403) << a.body;
  EXPECT_EQ(a.Json()["error"]["code"], "permission_denied");
  EXPECT_EQ(w.Get("/v1/spec", w.admin()).Json()["generation"], 0) << "nothing applied";

  auto none = w.Get("/v1/services", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.Json()["error"]["code"], "unauthenticated");
  auto wrong = w.Get("/v1/services", "cbt_0000000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(wrong.status, 401);

  auto audit = w.Get("/v1/audit?limit=50", w.admin()).Json()["entries"];
  bool anon = false, invalid = false, forbidden = false;
  for (const auto& e : audit) {
    if (e["actor"] == "anonymous" && e["status"] == 401) anon = true;
    if (e["actor"] == "invalid-token" && e["status"] == 401) invalid = true;
    if (e["actor"] == "ro" && e["status"] == 403 && e["action"] == "POST /v1/spec/apply") forbidden = true;
  }
  EXPECT_TRUE(anon) << audit.dump(1);
  EXPECT_TRUE(invalid) << audit.dump(1);
  EXPECT_TRUE(forbidden) << audit.dump(1);

  // A flood of bad requests does not grow the audit log without bound.
  for (int i = 0; i < 60; ++i) (void)w.Get("/v1/services", "");
  auto flood = w.Get("/v1/audit?limit=1000", w.admin()).Json()["entries"];
  int refused = 0;
  for (const auto& e : flood) refused += e["status"] == 401 ? 1 : 0;
  EXPECT_LT(refused, 50) << "rate-limited";
  EXPECT_GE(refused, 3);

  // A revoked token is refused.
  auto rv = Http(w.addr(), "DELETE", "/v1/tokens/ro", w.admin());
  EXPECT_EQ(rv.status, 200) << rv.body;
  EXPECT_EQ(w.Get("/v1/spec", viewer).status, 401);
}

TEST_F(CbctldIt, StaleGenerationApplyGets409WithBothGenerations) {
  ApplyV1();
  auto r = w.Apply(kSpecV2, 0);
  ASSERT_EQ(r.status, 409) << r.body;
  json e = r.Json()["error"];
  EXPECT_EQ(e["code"], "conflict");
  EXPECT_EQ(e["current_generation"], 1);
  EXPECT_EQ(e["your_generation"], 0);
  EXPECT_EQ(w.Get("/v1/spec", w.admin()).Json()["generation"], 1);
  auto missing = w.Post("/v1/spec/apply", w.admin(), CpWorld::SpecBody(kSpecV2));
  EXPECT_EQ(missing.status, 400) << missing.body;
  EXPECT_NE(missing.body.find("If-Match"), std::string::npos);
}

TEST_F(CbctldIt, InvalidSpecAppliesNothingAndListsEveryProblem) {
  ApplyV1();
  int64_t web = w.Pid("web");
  const char* bad = R"(apiVersion: cbctl/v1
hostz: []
services:
  - {name: web, command: [/bin/sleep, "1"]}
  - {name: Bad/Name, command: [/bin/true]}
  - {name: nocmd}
)";
  auto r = w.Apply(bad, 1);
  ASSERT_EQ(r.status, 400) << r.body;
  json e = r.Json()["error"];
  EXPECT_EQ(e["code"], "invalid_argument");
  ASSERT_TRUE(e["problems"].is_array()) << r.body;
  EXPECT_GE(e["problems"].size(), 3u) << r.body;
  std::string all = e["problems"].dump();
  EXPECT_NE(all.find("hostz"), std::string::npos) << all;
  EXPECT_NE(all.find("Bad/Name"), std::string::npos) << all;
  EXPECT_NE(all.find("fleet.yaml:"), std::string::npos) << "problems name file:line:col: " << all;
  EXPECT_EQ(w.Get("/v1/spec", w.admin()).Json()["generation"], 1);
  EXPECT_EQ(w.Pid("web"), web);
}

TEST_F(CbctldIt, LogsTailAndAFollowerDoesNotBlockOtherRequests) {
  ApplyV1();
  ASSERT_TRUE(WaitFor([&] {
    auto l = w.Get("/v1/services/worker/logs?tail=5", w.admin()).Json();
    return l.is_object() && l["lines"].size() >= 2;
  }, 10));
  // More followers than the ordinary worker threads (8).
  std::vector<int> followers;
  for (int i = 0; i < 10; ++i) {
    int fd = ConnectTcp(w.addr());
    ASSERT_GE(fd, 0);
    SendAll(fd, BuildRequest("GET", "/v1/services/worker/logs?tail=1&follow=1", w.admin(), "", {}));
    followers.push_back(fd);
  }
  // The first follower receives streamed lines.
  std::string got;
  ASSERT_TRUE(WaitFor([&] {
    char buf[4096];
    pollfd p{followers[0], POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      ssize_t n = recv(followers[0], buf, sizeof buf, 0);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
    }
    size_t ticks = 0, pos = 0;
    while ((pos = got.find("tick", pos)) != std::string::npos) { ++ticks; ++pos; }
    return ticks >= 3;
  }, 10)) << got;
  EXPECT_NE(got.find("200 OK"), std::string::npos);
  // Meanwhile other requests are answered promptly.
  for (int i = 0; i < 5; ++i) {
    auto t0 = SteadyClock::now();
    auto r = w.Get("/v1/services", w.admin());
    double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(secs, 3.0);
  }
  for (int fd : followers) close(fd);
}

TEST_F(CbctldIt, AFollowerOfAQuietServiceIsReleasedWhenItsClientGoes) {
  ApplyV1();
  int fd = ConnectTcp(w.addr());
  ASSERT_GE(fd, 0);
  SendAll(fd, BuildRequest("GET", "/v1/services/web/logs?tail=1&follow=1", w.admin(), "", {}));
  ASSERT_TRUE(WaitFor([&] { return w.Stats("cbctld_log_followers") == 1; }, 10));
  close(fd);
  // web (sleep) writes nothing: the server notices the client is gone while idle.
  EXPECT_TRUE(WaitFor([&] { return w.Stats("cbctld_log_followers") == 0; }, 15))
      << w.Stats("cbctld_log_followers");
}

TEST_F(CbctldIt, BadInputGetsClearErrorsAndLeavesStateAsItWas) {
  ApplyV1();
  // Oversized body.
  std::string big(2 * 1024 * 1024, 'a');
  auto r1 = w.Post("/v1/spec/plan", w.admin(), big);
  EXPECT_EQ(r1.status, 413);
  EXPECT_EQ(r1.Json()["error"]["code"], "invalid_argument") << r1.body;
  // Invalid JSON.
  auto r2 = w.Post("/v1/spec/plan", w.admin(), "{\"yaml\": ");
  EXPECT_EQ(r2.status, 400);
  EXPECT_NE(r2.Json()["error"]["message"].get<std::string>().find("invalid JSON"), std::string::npos) << r2.body;
  // Unknown field.
  auto r3 = w.Post("/v1/spec/plan", w.admin(), json{{"yaml", kSpecV1}, {"force", true}}.dump());
  EXPECT_EQ(r3.status, 400);
  EXPECT_NE(r3.body.find("unknown field 'force'"), std::string::npos) << r3.body;
  // Service names with '/', '..' or control characters.
  for (const char* path : {"/v1/services/we%2Fb/stop", "/v1/services/..%2Fetc/stop", "/v1/services/we%01b/stop",
                           "/v1/services/a..b/restart"}) {
    auto r = w.Post(path, w.admin(), "{}");
    EXPECT_EQ(r.status, 400) << path << " " << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "invalid_argument") << path;
  }
  auto r5 = w.Post("/v1/tokens", w.admin(), json{{"name", "x"}, {"scope", "root"}}.dump());
  EXPECT_EQ(r5.status, 400);
  EXPECT_NE(r5.body.find("viewer, operator or admin"), std::string::npos) << r5.body;
  auto r6 = w.Post("/v1/services/nosuch/stop", w.admin(), "{}");
  EXPECT_EQ(r6.status, 404) << r6.body;
  EXPECT_EQ(w.Get("/v1/spec", w.admin()).Json()["generation"], 1);
  EXPECT_EQ(w.State("web"), "running");
  EXPECT_TRUE(w.Services()["web"]["override"].is_null());
}

TEST_F(CbctldIt, ScopesRestartResetAndTokens) {
  ApplyV1();
  std::string op = w.Token("ops", "operator");
  std::string ro = w.Token("ro", "viewer");
  int64_t worker = w.Pid("worker");
  auto rs = w.Post("/v1/services/worker/restart", op, "{}");
  ASSERT_EQ(rs.status, 200) << rs.body;
  ASSERT_TRUE(WaitFor([&] { auto p = w.Pid("worker"); return p > 0 && p != worker; }, 10));
  EXPECT_EQ(w.Post("/v1/services/worker/reset", op, "{}").status, 200);
  EXPECT_EQ(w.Post("/v1/services/worker/stop", ro, "{}").status, 403);
  EXPECT_EQ(w.Get("/v1/services/worker/logs?tail=2", ro).status, 200) << "viewers read logs";
  EXPECT_EQ(w.Get("/v1/services/worker/logs?tail=2&follow=1", ro).status, 403) << "follow needs operator";
  EXPECT_EQ(w.Apply(kSpecV2, 1, op).status, 403);
  EXPECT_EQ(w.Post("/v1/tokens", op, R"({"name": "x", "scope": "admin"})").status, 403);
  auto list = w.Get("/v1/tokens", w.admin());
  ASSERT_EQ(list.status, 200);
  std::set<std::string> names;
  json tokens = list.Json()["tokens"];
  for (const auto& t : tokens) {
    names.insert(t["name"].get<std::string>());
    EXPECT_FALSE(t.contains("secret")) << "secrets are shown once, on create";
  }
  EXPECT_EQ(names, (std::set<std::string>{"admin", "ops", "ro"}));
  EXPECT_EQ(list.body.find(op), std::string::npos);
  EXPECT_EQ(w.Get("/v1/services/worker/logs?tail=abc", w.admin()).status, 400);
}

TEST_F(CbctldIt, UsesTheAgentSocketGivenInTheSpecWithoutStartingOne) {
  std::string agent_dir = w.dir() + "/own-agent";
  pid_t agent = w.StartAgent(agent_dir);
  std::string spec = std::string(R"(apiVersion: cbctl/v1
hosts:
  - {name: local, address: local, agent_socket: )") + agent_dir + R"(/agent.sock}
services:
  - {name: web, command: [/bin/sleep, "3600"]}
)";
  auto r = w.Apply(spec, 0);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(w.WaitRunning({"web"})) << r.body;
  auto h = w.Get("/v1/hosts", w.admin()).Json()["hosts"][0];
  EXPECT_EQ(h["agent_pid"].get<int64_t>(), agent) << h.dump();
  EXPECT_NE(h["socket"].get<std::string>().find(agent_dir), std::string::npos);
  struct stat st {};
  EXPECT_NE(stat((w.state() + "/agents/local/agent.sock").c_str(), &st), 0) << "no agent started under the state dir";
}

TEST_F(CbctldIt, ASecondCbctldOnTheSameStateDirIsRefused) {
  auto r = RunCmd({BinDir() + "/cbctld", "serve", "--state-dir", w.state(), "--listen", "127.0.0.1:0"}, 10);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("another cbctld (pid " + std::to_string(w.daemon()) + ")"), std::string::npos) << r.err;
  EXPECT_EQ(w.Get("/v1/health", "").status, 200);
}

TEST_F(CbctldIt, MetricsAndVersionAndHosts) {
  ApplyV1();
  auto m = w.Get("/metrics", w.admin());
  ASSERT_EQ(m.status, 200);
  for (const char* name : {"cbctld_services{state=\"running\"} 2", "cbctld_service_restarts_total",
                           "cbctld_services_circuit_open 0", "cbctld_reconcile_duration_seconds_count",
                           "cbctld_api_request_duration_seconds_bucket{route=\"/v1/spec/apply\""}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name << "\n" << m.body;
  }
  EXPECT_EQ(w.Get("/metrics", "").status, 401);
  auto v = w.Get("/v1/version", "").Json();
  EXPECT_EQ(v["api"], "v1");
  auto h = w.Get("/v1/hosts", w.admin()).Json();
  ASSERT_EQ(h["hosts"].size(), 1u);
  EXPECT_EQ(h["hosts"][0]["name"], "local");
  EXPECT_EQ(h["hosts"][0]["reachable"], true);
  EXPECT_EQ(h["hosts"][0]["services"], 2);
}

TEST(CbctldServeIt, ServesHttpsWithTheGivenCertificate) {
  CpWorld w;
  std::string crt = w.dir() + "/tls.crt", key = w.dir() + "/tls.key";
  auto gen = RunCmd({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                     "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
                     "-out", crt},
                    60);
  ASSERT_EQ(gen.rc, 0) << gen.err;
  w.Serve({"--tls-cert", crt, "--tls-key", key}, /*tls=*/true);
  auto ok = RunCmd({"/usr/bin/curl", "-s", "--cacert", crt, "https://" + w.addr() + "/v1/health"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_NE(ok.out.find("\"ok\""), std::string::npos) << ok.out;
  auto auth = RunCmd({"/usr/bin/curl", "-s", "--cacert", crt, "-H", "Authorization: Bearer " + w.admin(),
                      "https://" + w.addr() + "/v1/spec"});
  EXPECT_NE(auth.out.find("\"generation\":0"), std::string::npos) << auth.out;
  EXPECT_NE(Http(w.addr(), "GET", "/v1/health", "", "", {}, 3).status, 200) << "no plain HTTP on a TLS port";
  auto bad = RunCmd({BinDir() + "/cbctld", "serve", "--state-dir", w.state(), "--listen", "127.0.0.1:0",
                     "--tls-cert", crt},
                    10);
  EXPECT_EQ(bad.rc, 64);
  EXPECT_NE(bad.err.find("together"), std::string::npos) << bad.err;
}

TEST(CbctldServeIt, RefusesNonLoopbackWithoutTlsAndNeedsInit) {
  char tmpl[] = "/tmp/cbcpit-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto init = RunCmd({BinDir() + "/cbctld", "init", "--state-dir", dir + "/st"});
  ASSERT_EQ(init.rc, 0) << init.err;
  struct stat st {};
  ASSERT_EQ(stat((dir + "/st/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = RunCmd({BinDir() + "/cbctld", "init", "--state-dir", dir + "/st"});
  EXPECT_NE(again.rc, 0);
  EXPECT_NE(again.err.find("already initialised"), std::string::npos) << again.err;
  // Refused before binding anything.
  auto r = RunCmd({BinDir() + "/cbctld", "serve", "--state-dir", dir + "/st", "--listen", "0.0.0.0:0"}, 10);
  EXPECT_EQ(r.rc, 64) << r.err;
  EXPECT_NE(r.err.find("without TLS"), std::string::npos) << r.err;
  auto r2 = RunCmd({BinDir() + "/cbctld", "serve", "--state-dir", dir + "/nope", "--listen", "127.0.0.1:0"}, 10);
  EXPECT_NE(r2.rc, 0);
  EXPECT_NE(r2.err.find("cbctld init"), std::string::npos) << r2.err;
  std::string cmd = "rm -rf '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) {
  }
}

}  // namespace
}  // namespace cb::cpit
