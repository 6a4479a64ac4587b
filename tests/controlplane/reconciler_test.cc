// Reconciler unit tests: real SQLite store in a temp dir, the real spec deriver, a fake agent
// behind the Transport seam, and a fake clock driving step(now).
#include "controlplane/reconciler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "controlplane/spec_adapter.h"
#include "controlplane/state_store.h"
#include "tests/fakes/fake_agent_transport.h"
#include "tests/fakes/fake_clock.h"

namespace cb::cp {
namespace {

using cb::testing::FakeAgent;
using cb::testing::FakeAgentConnector;
using cb::testing::FakeClock;

const char* kSpec = R"(apiVersion: cbctl/v1
hosts: [{name: local, address: local}]
services:
  - {name: web, command: [/bin/sleep, "100"]}
  - {name: worker, command: [/bin/sleep, "200"]}
)";
const char* kSpecWorkerChanged = R"(apiVersion: cbctl/v1
hosts: [{name: local, address: local}]
services:
  - {name: web, command: [/bin/sleep, "100"]}
  - {name: worker, command: [/bin/sleep, "300"], env: {A: b}}
)";

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cbcp-rec-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto s = OpenSqliteStateStore(dir_, true);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    rec_ = Make();
  }
  void TearDown() override {
    rec_.reset();
    store_.reset();
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }
  std::unique_ptr<Reconciler> Make() {
    ReconcilerOptions o;
    o.owner = "cbctld:test";
    o.period = Seconds(10);
    return std::make_unique<Reconciler>(
        *store_, clock_, MakeSpecDeriver(),
        [this](const DesiredHost&) { return std::make_shared<FakeAgentConnector>(&agent_); }, o);
  }
  void Put(const char* yaml) {
    auto cur = store_->CurrentSpec();
    ASSERT_TRUE(cur);
    int64_t g = *cur ? (*cur)->generation : 0;
    ASSERT_TRUE(store_->PutSpec(g, yaml, "test", "now"));
    rec_->MarkDirty();
  }

  std::string dir_;
  std::unique_ptr<StateStore> store_;
  FakeClock clock_;
  FakeAgent agent_;
  std::unique_ptr<Reconciler> rec_;
};

TEST_F(ReconcilerTest, StepRunsWhenDirtyOrDueOnly) {
  EXPECT_TRUE(rec_->Step(clock_.Now())) << "the first step always runs";
  EXPECT_FALSE(rec_->Step(clock_.Now()));
  clock_.AdvanceSeconds(9.9);
  EXPECT_FALSE(rec_->Step(clock_.Now()));
  clock_.AdvanceSeconds(0.1);
  EXPECT_TRUE(rec_->Step(clock_.Now())) << "due after the period";
  rec_->MarkDirty();
  EXPECT_TRUE(rec_->Step(clock_.Now())) << "dirty runs at once";
  EXPECT_EQ(rec_->stats().passes, 3);
  EXPECT_EQ(agent_.Count("apply"), 0) << "no spec yet: no host to contact";
}

TEST_F(ReconcilerTest, PushesDerivedServicesWithOwnerAndReadsStatusBack) {
  Put(kSpec);
  ASSERT_TRUE(rec_->Step(clock_.Now()));
  ASSERT_EQ(agent_.services.size(), 2u);
  EXPECT_EQ(agent_.owner, "cbctld:test");
  EXPECT_EQ(agent_.services["web"].spec.command, (std::vector<std::string>{"/bin/sleep", "100"}));
  // hello before apply, ps after.
  ASSERT_GE(agent_.methods.size(), 3u);
  EXPECT_EQ(agent_.methods[0], "hello");
  EXPECT_EQ(agent_.methods[1], "apply");
  EXPECT_EQ(agent_.methods[2], "ps");
  auto svcs = rec_->Services();
  ASSERT_TRUE(svcs);
  ASSERT_EQ(svcs->size(), 2u);
  EXPECT_EQ((*svcs)[0].name, "web");
  EXPECT_EQ((*svcs)[0].state, "running");
  EXPECT_EQ((*svcs)[0].pid, agent_.services["web"].pid);
  EXPECT_EQ((*svcs)[0].address, "web");
  auto hosts = store_->ListHosts();
  ASSERT_TRUE(hosts);
  ASSERT_EQ(hosts->size(), 1u);
  EXPECT_TRUE((*hosts)[0].reachable);
  EXPECT_EQ((*hosts)[0].agent, "cbagent fake");
}

TEST_F(ReconcilerTest, PassesAreIdempotentAndOnlyChangedServicesRestart) {
  Put(kSpec);
  rec_->Step(clock_.Now());
  int64_t web = agent_.services["web"].pid, worker = agent_.services["worker"].pid;
  auto again = rec_->ReconcileNow(clock_.Now());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(again[0].restarted.empty());
  EXPECT_TRUE(again[0].started.empty());
  EXPECT_EQ(again[0].unchanged.size(), 2u);
  EXPECT_EQ(agent_.services["web"].pid, web);

  Put(kSpecWorkerChanged);
  auto r = rec_->ReconcileNow(clock_.Now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].restarted, std::vector<std::string>{"worker"});
  EXPECT_EQ(agent_.services["web"].pid, web);
  EXPECT_NE(agent_.services["worker"].pid, worker);
}

TEST_F(ReconcilerTest, ANewReconcilerOverTheSameStoreRestartsNothing) {
  Put(kSpec);
  rec_->Step(clock_.Now());
  int64_t web = agent_.services["web"].pid;
  rec_ = Make();  // cbctld restarted
  ASSERT_TRUE(rec_->Step(clock_.Now()));
  EXPECT_EQ(agent_.services["web"].pid, web);
  EXPECT_EQ(agent_.Count("restart"), 0);
  EXPECT_EQ(agent_.Count("start"), 0);
}

TEST_F(ReconcilerTest, StopOverrideIsLevelTriggeredAndStartClearsIt) {
  Put(kSpec);
  rec_->Step(clock_.Now());
  auto st = rec_->ServiceAction("local", "web", "stop", "alice");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(agent_.services["web"].state, "stopped");
  // Someone starts it behind cbctld's back: the next pass stops it again.
  agent_.services["web"].state = "running";
  clock_.AdvanceSeconds(10);
  ASSERT_TRUE(rec_->Step(clock_.Now()));
  EXPECT_EQ(agent_.services["web"].state, "stopped");
  auto svcs = rec_->Services();
  ASSERT_TRUE(svcs);
  EXPECT_EQ((*svcs)[0].override_state, std::optional<std::string>("stopped"));
  // A restart is refused while the override holds.
  auto rs = rec_->ServiceAction("local", "web", "restart", "alice");
  ASSERT_FALSE(rs);
  EXPECT_EQ(rs.error().code, Code::kFailedPrecondition);
  // Without an override a stopped service is started again.
  agent_.services["worker"].state = "stopped";
  ASSERT_TRUE(rec_->ServiceAction("local", "web", "start", "alice"));
  clock_.AdvanceSeconds(10);
  rec_->Step(clock_.Now());
  EXPECT_EQ(agent_.services["web"].state, "running");
  EXPECT_EQ(agent_.services["worker"].state, "running");
  auto ovs = store_->ListOverrides();
  ASSERT_TRUE(ovs);
  EXPECT_TRUE(ovs->empty());
}

TEST_F(ReconcilerTest, AnOverrideIsForgottenWithItsService) {
  Put(kSpec);
  rec_->Step(clock_.Now());
  ASSERT_TRUE(rec_->ServiceAction("local", "web", "stop", "alice"));
  Put(R"(apiVersion: cbctl/v1
hosts: [{name: local, address: local}]
services:
  - {name: worker, command: [/bin/sleep, "200"]}
)");
  rec_->Step(clock_.Now());
  EXPECT_FALSE(agent_.services.count("web"));
  EXPECT_TRUE(store_->ListOverrides()->empty());
  Put(kSpec);  // web comes back: it starts normally
  rec_->Step(clock_.Now());
  EXPECT_EQ(agent_.services["web"].state, "running");
}

TEST_F(ReconcilerTest, UnreachableAgentIsRecordedAndCountedThenRecovers) {
  Put(kSpec);
  rec_->Step(clock_.Now());
  agent_.down = true;
  auto r = rec_->ReconcileNow(clock_.Now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok);
  ASSERT_TRUE(r[0].error.has_value());
  EXPECT_NE(r[0].error->find("local"), std::string::npos) << *r[0].error;
  EXPECT_EQ(rec_->stats().errors, 1);
  auto svcs = rec_->Services();
  ASSERT_TRUE(svcs);
  EXPECT_EQ((*svcs)[0].state, "unknown");
  auto hosts = store_->ListHosts();
  ASSERT_TRUE(hosts);
  EXPECT_FALSE((*hosts)[0].reachable);
  EXPECT_FALSE((*hosts)[0].last_error.empty());
  agent_.down = false;
  auto ok = rec_->ReconcileNow(clock_.Now());
  EXPECT_TRUE(ok[0].ok);
  EXPECT_EQ((*rec_->Services())[0].state, "running");
}

TEST_F(ReconcilerTest, LiveServicesAskTheAgentStoredOnesWaitForAPass) {
  Put(kSpec);
  rec_->Step(clock_.Now());
  agent_.services["worker"].state = "backoff";  // changed on the agent, no pass since
  EXPECT_EQ((*rec_->Services("", false))[1].state, "running") << "stored view";
  EXPECT_EQ((*rec_->Services("", true))[1].state, "backoff") << "live view";
  agent_.down = true;
  auto fallback = rec_->Services("", true);
  ASSERT_TRUE(fallback);
  EXPECT_EQ((*fallback)[1].state, "running") << "an agent that fails falls back to the stored view";
}

TEST_F(ReconcilerTest, AnotherProtocolMajorIsRefusedNamingBoth) {
  Put(kSpec);
  agent_.protocol = 2;
  auto r = rec_->ReconcileNow(clock_.Now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok);
  EXPECT_NE(r[0].error->find("protocol 2"), std::string::npos) << *r[0].error;
  EXPECT_NE(r[0].error->find("speaks 1"), std::string::npos) << *r[0].error;
  EXPECT_EQ(agent_.Count("apply"), 0);
}

TEST_F(ReconcilerTest, AddressesAreNameOrNameAtHost) {
  Put(R"(apiVersion: cbctl/v1
hosts: [{name: local, address: local}, {name: app1, address: 10.0.0.11}]
services:
  - {name: exporter, hosts: [local, app1], command: [/bin/sleep, "1"]}
  - {name: web, hosts: [local], command: [/bin/sleep, "1"]}
)");
  rec_->Step(clock_.Now());
  auto amb = rec_->ResolveHost(wire::ServiceAddress{"exporter", ""});
  ASSERT_FALSE(amb);
  EXPECT_EQ(amb.error().code, Code::kInvalidArgument);
  EXPECT_NE(amb.error().message.find("exporter@app1"), std::string::npos) << amb.error().message;
  EXPECT_EQ(*rec_->ResolveHost(wire::ServiceAddress{"exporter", "app1"}), "app1");
  EXPECT_EQ(*rec_->ResolveHost(wire::ServiceAddress{"web", ""}), "local");
  auto nf = rec_->ResolveHost(wire::ServiceAddress{"web", "app1"});
  ASSERT_FALSE(nf);
  EXPECT_EQ(nf.error().code, Code::kNotFound);
  auto svcs = rec_->Services();
  ASSERT_TRUE(svcs);
  std::set<std::string> addrs;
  for (const auto& s : *svcs) addrs.insert(s.address);
  EXPECT_EQ(addrs, (std::set<std::string>{"exporter@app1", "exporter@local", "web"}));
}

TEST(ComputePlanTest, AddChangeRemoveUnchangedWithFields) {
  DesiredState cur, next;
  ServiceSpec a{.name = "a", .command = {"/bin/a"}};
  ServiceSpec b{.name = "b", .command = {"/bin/b"}};
  ServiceSpec c{.name = "c", .command = {"/bin/c"}};
  ServiceSpec b2 = b;
  b2.env = {{"X", "1"}};
  b2.stop.grace_seconds = 3;
  ServiceSpec d{.name = "d", .command = {"/bin/d"}};
  cur.hosts = {DesiredHost{"h", "local", "", {a, b, c}}};
  next.hosts = {DesiredHost{"h", "local", "", {a, b2, d}}};
  auto p = ComputePlan(cur, next, 7);
  EXPECT_EQ(p.current_generation, 7);
  EXPECT_EQ(p.summary.add, 1);
  EXPECT_EQ(p.summary.change, 1);
  EXPECT_EQ(p.summary.remove, 1);
  EXPECT_EQ(p.summary.unchanged, 1);
  ASSERT_EQ(p.changes.size(), 4u);
  EXPECT_EQ(p.changes[1].name, "b");
  EXPECT_EQ(p.changes[1].fields, (std::vector<std::string>{"env", "stop"}));
  std::string text = wire::FormatPlan(p);
  EXPECT_NE(text.find("~ b"), std::string::npos) << text;
  EXPECT_NE(text.find("change: env, stop"), std::string::npos) << text;
  EXPECT_NE(text.find("- c"), std::string::npos) << text;
  EXPECT_NE(text.find("+ d"), std::string::npos) << text;
  EXPECT_EQ(text.find("= a"), std::string::npos) << "unchanged hidden by default";
  EXPECT_TRUE(p.HasChanges());
  EXPECT_FALSE(ComputePlan(next, next, 8).HasChanges());
  EXPECT_NE(wire::FormatPlan(ComputePlan(next, next, 8)).find("No changes"), std::string::npos);
}

}  // namespace
}  // namespace cb::cp
