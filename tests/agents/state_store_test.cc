#include "agents/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace cb {
namespace {

namespace fs = std::filesystem;

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cbstate-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

PersistedService Sample() {
  PersistedService p;
  p.spec.name = "web";
  p.spec.command = {"/usr/bin/web", "--port", "8080"};
  p.spec.env = {{"A", "1"}};
  p.spec.restart.backoff_seconds = {0.5, 2};
  p.spec.stop.signal = 2;
  p.state = ServiceState::kRunning;
  p.process = ProcessId{4242, 987654};
  p.started_at = WallTime(std::chrono::seconds(1'800'000'000));
  p.manual_stop = false;
  p.restarts = 3;
  p.consecutive_failures = 1;
  p.last_exit = ExitStatus::Signal(9);
  p.last_error = "boom";
  return p;
}

TEST_F(StateStoreTest, RoundTrip) {
  AgentState s;
  s.owner = "cbctld:abc";
  s.services.push_back(Sample());
  PersistedService stopped;
  stopped.spec.name = "idle";
  stopped.spec.command = {"sleep", "1"};
  stopped.state = ServiceState::kStopped;
  stopped.manual_stop = true;
  stopped.removing = true;
  stopped.last_exit = ExitStatus::Unknown();
  s.services.push_back(stopped);
  PersistedService waiting;
  waiting.spec.name = "waiting";
  waiting.spec.command = {"sleep", "1"};
  waiting.state = ServiceState::kBackoff;
  waiting.next_start_at = WallTime(std::chrono::milliseconds(1'800'000'123'456));
  s.services.push_back(waiting);
  ASSERT_TRUE(SaveState(dir_, s, WallTime{}));
  auto l = LoadState(dir_, WallTime{});
  ASSERT_TRUE(l) << l.error().ToString();
  EXPECT_TRUE(l->corrupt_moved_to.empty());
  ASSERT_EQ(l->state.services.size(), 3u);
  EXPECT_EQ(l->state.owner, "cbctld:abc");
  const auto& a = l->state.services[0];
  EXPECT_EQ(a.spec, s.services[0].spec);
  EXPECT_EQ(a.state, ServiceState::kRunning);
  ASSERT_TRUE(a.process);
  EXPECT_EQ(*a.process, (ProcessId{4242, 987654}));
  EXPECT_EQ(a.started_at, s.services[0].started_at);
  EXPECT_EQ(a.restarts, 3);
  EXPECT_EQ(a.consecutive_failures, 1);
  EXPECT_EQ(a.last_exit, ExitStatus::Signal(9));
  EXPECT_EQ(a.last_error, "boom");
  const auto& b = l->state.services[1];
  EXPECT_TRUE(b.manual_stop);
  EXPECT_TRUE(b.removing);
  EXPECT_FALSE(b.process);
  EXPECT_EQ(b.last_exit, ExitStatus::Unknown());
  EXPECT_FALSE(b.next_start_at);
  EXPECT_FALSE(a.next_start_at);
  const auto& c = l->state.services[2];
  EXPECT_EQ(c.state, ServiceState::kBackoff);
  EXPECT_EQ(c.next_start_at, waiting.next_start_at);
  // No temp file left behind; mode 0600.
  EXPECT_FALSE(fs::exists(dir_ + "/state.json.tmp"));
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/state.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(StateStoreTest, MissingFileIsEmptyState) {
  auto l = LoadState(dir_, WallTime{});
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->state.services.empty());
  EXPECT_FALSE(l->state.owner);
}

TEST_F(StateStoreTest, CorruptFilesAreMovedAside) {
  for (const char* text : {"{not json", "[]", "{\"version\": 2, \"services\": []}",
                           "{\"version\": 1, \"services\": [{\"spec\": {\"name\": \"x\"}}]}",
                           "{\"version\": 1, \"services\": [{\"spec\": {\"name\": \"x\", "
                           "\"command\": [\"a\"]}, \"state\": \"dancing\"}]}"}) {
    {
      std::ofstream f(dir_ + "/state.json");
      f << text;
    }
    WallTime now = WallTime(std::chrono::seconds(1'800'000'000));
    auto l = LoadState(dir_, now);
    ASSERT_TRUE(l) << text;
    EXPECT_TRUE(l->state.services.empty()) << text;
    EXPECT_FALSE(l->corrupt_reason.empty()) << text;
    EXPECT_NE(l->corrupt_moved_to.find("state.json.corrupt-20270115T080000Z"), std::string::npos)
        << l->corrupt_moved_to;
    EXPECT_TRUE(fs::exists(l->corrupt_moved_to)) << text;
    EXPECT_FALSE(fs::exists(dir_ + "/state.json")) << text;
    fs::remove(l->corrupt_moved_to);
  }
}

TEST_F(StateStoreTest, UnwritableDirIsAClearError) {
  auto r = SaveState(dir_ + "/missing/sub", AgentState{}, WallTime{});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("missing/sub/state.json.tmp"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace cb
