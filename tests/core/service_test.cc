#include "core/service.h"

#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>

namespace cb {
namespace {

using nlohmann::json;

TEST(ServiceName, AcceptsTheAllowedShapes) {
  for (std::string n : {std::string("web"), std::string("log-ingest-1"), std::string("a"),
                        std::string("0day"), std::string("x.y_z-1"), std::string(63, 'a')})
    EXPECT_TRUE(ValidateServiceName(n)) << n;
}

TEST(ServiceName, RejectsBadNamesWithAReason) {
  struct Case {
    std::string name;
    std::string says;
  } cases[] = {
      {"", "empty"},
      {std::string(64, 'a'), "longer than 63"},
      {"Web", "must start"},
      {"-web", "must start"},
      {".hidden", "must start"},
      {"a/b", "'/'"},
      {"a..b", "'..'"},
      {"a\nb", "control character"},
      {"a b", "' '"},
      {"web@host", "'@'"},
  };
  for (const auto& c : cases) {
    auto r = ValidateServiceName(c.name);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
  }
}

TEST(Signals, NamesRoundTrip) {
  EXPECT_EQ(*ParseSignalName("TERM"), SIGTERM);
  EXPECT_EQ(*ParseSignalName("SIGINT"), SIGINT);
  EXPECT_EQ(*ParseSignalName("hup"), SIGHUP);
  EXPECT_EQ(*ParseSignalName("KILL"), SIGKILL);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGKILL})
    EXPECT_EQ(*ParseSignalName(SignalName(sig)), sig);
  auto bad = ParseSignalName("TERMINATE");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unknown signal 'TERMINATE'"), std::string::npos);
}

TEST(RestartPolicy, Names) {
  EXPECT_EQ(RestartPolicyName(RestartPolicy::kAlways), "always");
  EXPECT_EQ(RestartPolicyName(RestartPolicy::kOnFailure), "on-failure");
  EXPECT_EQ(RestartPolicyName(RestartPolicy::kNever), "never");
}

ServiceSpec Full() {
  ServiceSpec s;
  s.name = "web";
  s.command = {"/usr/bin/web", "--port", "8080"};
  s.env = {{"A", "1"}, {"B", "two"}};
  s.cwd = "/srv/web";
  s.user = "www-data";
  s.restart.policy = RestartPolicy::kOnFailure;
  s.restart.backoff_seconds = {0.5, 2, 2, 30};
  s.restart.jitter = 0.25;
  s.restart.circuit_break_after_failures = 3;
  s.restart.healthy_after_seconds = 12.5;
  s.restart.probe_after_seconds = 120;
  s.stop.signal = SIGINT;
  s.stop.grace_seconds = 2.5;
  return s;
}

TEST(ServiceJson, RoundTrips) {
  ServiceSpec s = Full();
  json j = s;
  EXPECT_EQ(j["stop"]["signal"], "INT");
  EXPECT_EQ(j["restart"]["policy"], "on-failure");
  auto back = ServiceSpecFromJson(j, "services[0]");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);
  // And through text.
  auto again = ServiceSpecFromJson(json::parse(j.dump()), "");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, s);
}

TEST(ServiceJson, DefaultsFillAbsentFields) {
  auto s = ServiceSpecFromJson(json{{"name", "x"}, {"command", {"sleep", "1"}}}, "");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->restart, RestartSpec{});
  EXPECT_EQ(s->stop, StopSpec{});
  EXPECT_EQ(s->stop.signal, SIGTERM);
  EXPECT_TRUE(s->cwd.empty());
  // Partial blocks keep the other defaults.
  auto p = ServiceSpecFromJson(
      json{{"name", "x"}, {"command", {"sleep"}}, {"restart", {{"policy", "never"}}}}, "");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->restart.policy, RestartPolicy::kNever);
  EXPECT_EQ(p->restart.backoff_seconds, (std::vector<double>{1, 5, 15, 60}));
}

TEST(ServiceJson, ReportsEveryProblemWithItsPath) {
  json j = {{"name", "Bad/Name"},
            {"command", json::array()},
            {"env", {{"A", 1}}},
            {"cwd", "relative"},
            {"restart",
             {{"policy", "sometimes"},
              {"jitter", 3},
              {"backoff_seconds", {5, 1}},
              {"circuit_break_after_failures", 0},
              {"retries", 2}}},
            {"stop", {{"signal", "TERMINATE"}, {"grace_seconds", -1}}},
            {"comand", {"x"}}};
  auto r = ServiceSpecFromJson(j, "services[2]");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  const std::string& m = r.error().message;
  for (const char* want : {
           "services[2].name: service name 'Bad/Name'",
           "services[2].command: expected a non-empty list",
           "services[2].env.A: expected a string, found 1",
           "services[2].cwd: expected an absolute path, found \"relative\"",
           "services[2].restart.policy: expected one of always, on-failure, never",
           "services[2].restart.jitter: expected a number from 0 to 1, found 3",
           "services[2].restart.backoff_seconds[1]: backoff must not decrease",
           "services[2].restart.circuit_break_after_failures: expected a positive integer",
           "services[2].restart.retries: unknown key 'retries'",
           "services[2].stop.signal: expected a signal name",
           "services[2].stop.grace_seconds: expected seconds >= 0, found -1",
           "services[2].comand: unknown key 'comand' (did you mean 'command'?)",
       }) {
    EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin: " << m;
  }
}

TEST(ServiceJson, WrongTypesAreErrorsNotExceptions) {
  for (json j :
       {json(nullptr), json(5), json("web"), json::array(),
        json{{"name", 5}, {"command", "sleep 1"}}, json{{"name", "x"}, {"command", {"a", nullptr}}},
        json{{"name", "x"}, {"command", {"a"}}, {"restart", "always"}},
        json{{"name", "x"}, {"command", {"a"}}, {"restart", {{"jitter", "0.1"}}}},
        json{{"command", {"a"}}}}) {
    auto r = ServiceSpecFromJson(j, "s");
    EXPECT_FALSE(r) << j.dump();
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    }
  }
}

TEST(ServiceJson, SignalMayBeANumberOrSigPrefixed) {
  auto a = ServiceSpecFromJson(
      json{{"name", "x"}, {"command", {"a"}}, {"stop", {{"signal", "SIGHUP"}}}}, "");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->stop.signal, SIGHUP);
  auto b =
      ServiceSpecFromJson(json{{"name", "x"}, {"command", {"a"}}, {"stop", {{"signal", 9}}}}, "");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->stop.signal, SIGKILL);
}

}  // namespace
}  // namespace cb
