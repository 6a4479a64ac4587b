// The agent loop driven one Step() at a time from the test, with a raw client on its socket.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agents/agent.h"

namespace cb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class AgentLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cbloop-XXXXXX";
    dir_ = mkdtemp(tmpl);
    AgentOptions o;
    o.state_dir = dir_ + "/st";
    auto a = Agent::Create(o);
    ASSERT_TRUE(a) << a.error().ToString();
    agent_ = std::move(*a);
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string p = agent_->socket_path();
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    ASSERT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    // Kill every service group by pid (the agent itself never does on exit).
    if (agent_) {
      json ps = agent_->HandleLine(R"({"v":1,"id":1,"method":"ps"})", -1);
      for (auto& s : ps["result"]["services"])
        if (s["pid"].is_number_integer()) kill(-s["pid"].get<pid_t>(), SIGKILL);
    }
    agent_.reset();
    fs::remove_all(dir_);
  }
  void SendRaw(const std::string& s) {
    ASSERT_EQ(write(fd_, s.data(), s.size()), (ssize_t)s.size());
  }
  // Steps the loop until one reply line arrives.
  json Next() {
    for (int i = 0; i < 200; ++i) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return json::parse(line);
      }
      agent_->Step(10);
      char tmp[65536];
      ssize_t n = recv(fd_, tmp, sizeof tmp, MSG_DONTWAIT);
      if (n > 0) buf_.append(tmp, n);
    }
    ADD_FAILURE() << "no reply";
    return json();
  }
  json Call(const std::string& method, json params = json::object()) {
    SendRaw(json{{"v", 1}, {"id", ++id_}, {"method", method}, {"params", params}}.dump() + "\n");
    json r = Next();
    EXPECT_EQ(r["id"], id_);
    return r;
  }

  std::string dir_;
  std::unique_ptr<Agent> agent_;
  int fd_ = -1;
  int id_ = 0;
  std::string buf_;
};

TEST_F(AgentLoopTest, GarbageThenValidOnOneConnection) {
  SendRaw("garbage\n{\"v\":1}\n");
  json a = Next();
  EXPECT_EQ(a["error"]["code"], "invalid_argument");
  EXPECT_TRUE(a["id"].is_null());
  json b = Next();
  EXPECT_EQ(b["error"]["code"], "invalid_argument");
  json h = Call("hello", {{"client", "test"}, {"protocol", 1}});
  EXPECT_EQ(h["result"]["protocol"], 1);
  EXPECT_EQ(h["result"]["pid"], getpid());
  EXPECT_TRUE(h["result"]["managed_by"].is_null());
}

TEST_F(AgentLoopTest, ExitSeenByEventAndRestartedAfterBackoff) {
  json r = Call("apply", {{"services",
                           {{{"name", "q"},
                             {"command", {"/bin/sh", "-c", "exit 4"}},
                             {"restart", {{"backoff_seconds", {0.1}}, {"jitter", 0}}}}}}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["started"], json({"q"}));
  // Drive the loop: the exit arrives on the pidfd, the timer fires the restart.
  json s;
  for (int i = 0; i < 300; ++i) {
    agent_->Step(10);
    s = agent_->HandleLine(R"({"v":1,"id":9,"method":"ps"})", -1)["result"]["services"][0];
    if (s["restarts"].get<int>() >= 2) break;
  }
  EXPECT_GE(s["restarts"].get<int>(), 2) << s.dump();
  EXPECT_EQ(s["last_exit"]["code"], 4);
  // Persisted.
  std::ifstream f(dir_ + "/st/state.json");
  json st = json::parse(f);
  EXPECT_EQ(st["services"][0]["spec"]["name"], "q");
}

TEST_F(AgentLoopTest, ImperativeCommandsAndErrors) {
  Call("apply", {{"services", {{{"name", "s"}, {"command", {"sleep", "30"}}}}}});
  json st = Call("stop", {{"name", "s"}});
  EXPECT_EQ(st["result"]["service"]["state"], "stopping");
  json missing = Call("start", {{"name", "ghost"}});
  EXPECT_EQ(missing["error"]["code"], "not_found");
  json noname = Call("restart");
  EXPECT_EQ(noname["error"]["code"], "invalid_argument");
  json dup = Call(
      "apply",
      {{"services", {{{"name", "d"}, {"command", {"a"}}}, {{"name", "d"}, {"command", {"b"}}}}}});
  EXPECT_EQ(dup["error"]["code"], "invalid_argument");
  EXPECT_NE(dup["error"]["message"].get<std::string>().find("duplicate"), std::string::npos);
  if (geteuid() == 0) {
    json nouser =
        Call("apply",
             {{"services", {{{"name", "u"}, {"command", {"a"}}, {"user", "no-such-user-xyz"}}}}});
    EXPECT_EQ(nouser["error"]["code"], "invalid_argument");
    EXPECT_NE(nouser["error"]["message"].get<std::string>().find("services[0].user: unknown user"),
              std::string::npos)
        << nouser.dump();
  }
  json spec = Call("spec");
  ASSERT_EQ(spec["result"]["services"].size(), 1u);  // the refused apply changed nothing
  json stats = Call("stats", {{"samples", 5}});
  EXPECT_TRUE(stats.contains("result")) << stats.dump();
}

// `logs --tail N -f`: the tail and the stream join without a duplicate or a split line. An
// unfinished last line is held back from the tail and arrives whole in the stream once its
// newline is written (a separate Tail + follower at the end showed "par" then "tial").
TEST_F(AgentLoopTest, LogsTailThenFollowNoDuplicateNoSplitLine) {
  // No service of that name: the log file alone makes the name known.
  std::string log = dir_ + "/st/logs/old.log";
  {
    std::ofstream f(log);
    f << "one\ntwo\npar";
  }
  json r = Call("logs", {{"name", "old"}, {"tail", 5}, {"follow", true}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["lines"], json({"one", "two"}));
  {
    std::ofstream f(log, std::ios::app);
    f << "tial\nthree\n";
  }
  json streamed = json::array();
  for (int i = 0; i < 20 && streamed.size() < 2; ++i) {
    json m = Next();
    ASSERT_TRUE(m.contains("stream")) << m.dump();
    EXPECT_EQ(m["id"], id_);
    for (auto& l : m["stream"]["lines"]) streamed.push_back(l);
  }
  EXPECT_EQ(streamed, json({"partial", "three"}));
  // Without follow: a plain tail, the unfinished line included as it is.
  {
    std::ofstream f(log, std::ios::app);
    f << "four";
  }
  json t = Call("logs", {{"name", "old"}, {"tail", 2}});
  EXPECT_EQ(t["result"]["lines"], json({"three", "four"})) << t.dump();
}

TEST(AgentCreate, SocketPathTooLong) {
  char tmpl[] = "/tmp/cbloop-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  AgentOptions o;
  o.state_dir = dir + "/" + std::string(120, 'x');
  auto a = Agent::Create(o);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Code::kInvalidArgument);
  EXPECT_NE(a.error().message.find("unix socket path"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cb
