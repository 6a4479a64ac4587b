// The supervisor's restart policy, exactly, with a fake clock, a fake launcher and a
// controlled random source.
#include "agents/supervisor.h"

#include <gtest/gtest.h>

#include <csignal>

#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_launcher.h"

namespace cb {
namespace {

using testing::FakeClock;
using testing::FakeLauncher;

ServiceSpec Svc(const std::string& name, std::vector<double> backoff = {1, 5, 15, 60}) {
  ServiceSpec s;
  s.name = name;
  s.command = {"/bin/" + name};
  s.restart.backoff_seconds = std::move(backoff);
  s.restart.jitter = 0;
  s.restart.circuit_break_after_failures = 5;
  s.restart.healthy_after_seconds = 60;
  s.restart.probe_after_seconds = 600;
  return s;
}

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest()
      : sup_(
            &launcher_, [this] { return random_value_; },
            [](const std::string& n) { return "/logs/" + n + ".log"; }) {}

  MonoTime now() const { return clock_.Now(); }
  ServiceStatus St(const std::string& name) {
    auto r = sup_.StatusOf(name, clock_.Now(), clock_.WallNow());
    EXPECT_TRUE(r) << name;
    return r ? *r : ServiceStatus{};
  }
  // Crash the current process of `name` (exit code 1) now.
  void Crash(const std::string& name, ExitStatus st = ExitStatus::Code(1)) {
    pid_t pid = St(name).pid;
    ASSERT_NE(pid, 0) << name << " has no process";
    sup_.OnExit(pid, st, now());
  }
  // Seconds from now until the next deadline.
  double UntilDeadline() {
    auto d = sup_.NextDeadline();
    EXPECT_TRUE(d.has_value());
    return d ? ToSeconds(*d - now()) : -1;
  }
  // Advances to just before and then exactly to the next deadline, asserting nothing starts
  // early. Returns the delay that elapsed.
  double RunToDeadline(const std::string& name) {
    double d = UntilDeadline();
    int before = launcher_.StartsOf(name);
    clock_.AdvanceSeconds(d - 0.001);
    sup_.Step(now());
    EXPECT_EQ(launcher_.StartsOf(name), before) << "started before its deadline";
    clock_.AdvanceSeconds(0.001);
    sup_.Step(now());
    return d;
  }

  FakeClock clock_;
  FakeLauncher launcher_;
  double random_value_ = 0.5;
  Supervisor sup_;
};

TEST_F(SupervisorTest, ApplyStartsNewServices) {
  auto r = sup_.Apply({Svc("a"), Svc("b")}, now());
  EXPECT_EQ(r.started, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(launcher_.starts.size(), 2u);
  EXPECT_EQ(launcher_.starts[0].log_path, "/logs/a.log");
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  EXPECT_EQ(St("a").pid, 1000);
  EXPECT_FALSE(sup_.NextDeadline().has_value());
}

TEST_F(SupervisorTest, BackoffSequenceWithLastRepeating) {
  sup_.Apply({Svc("a", {0.25, 1.5, 3})}, now());
  std::vector<double> delays;
  for (int i = 0; i < 4; ++i) {
    Crash("a");
    EXPECT_EQ(St("a").state, ServiceState::kBackoff);
    EXPECT_EQ(St("a").consecutive_failures, i + 1);
    EXPECT_TRUE(St("a").next_start_at.has_value());
    delays.push_back(RunToDeadline("a"));
    EXPECT_EQ(St("a").state, ServiceState::kRunning);
  }
  ASSERT_EQ(delays.size(), 4u);
  EXPECT_NEAR(delays[0], 0.25, 1e-6);
  EXPECT_NEAR(delays[1], 1.5, 1e-6);
  EXPECT_NEAR(delays[2], 3, 1e-6);
  EXPECT_NEAR(delays[3], 3, 1e-6);  // the last value repeats
  EXPECT_EQ(St("a").restarts, 4);
  EXPECT_EQ(launcher_.StartsOf("a"), 5);
}

TEST_F(SupervisorTest, DefaultBackoffIsOneFiveFifteenSixty) {
  ServiceSpec s = Svc("a");
  s.restart.circuit_break_after_failures = 10;
  sup_.Apply({s}, now());
  std::vector<double> want = {1, 5, 15, 60, 60};
  for (double w : want) {
    Crash("a");
    EXPECT_NEAR(RunToDeadline("a"), w, 1e-6);
  }
}

TEST_F(SupervisorTest, JitterStaysWithinBounds) {
  ServiceSpec s = Svc("a", {10});
  s.restart.jitter = 0.2;
  s.restart.circuit_break_after_failures = 100;
  sup_.Apply({s}, now());
  // u = 0 -> factor 0.8; u -> 1 -> factor 1.2; u = 0.5 -> 1.0.
  for (double u : {0.0, 0.5, 0.999999, 0.25}) {
    random_value_ = u;
    Crash("a");
    double d = UntilDeadline();
    EXPECT_NEAR(d, 10 * (1 - 0.2 + 0.4 * u), 1e-6) << "u=" << u;
    EXPECT_GE(d, 8 - 1e-6);
    EXPECT_LE(d, 12 + 1e-6);
    RunToDeadline("a");
  }
}

TEST_F(SupervisorTest, CircuitOpensAfterConfiguredFailuresAndProbes) {
  ServiceSpec s = Svc("a", {1});
  s.restart.circuit_break_after_failures = 3;
  s.restart.probe_after_seconds = 100;
  sup_.Apply({s}, now());
  Crash("a");
  RunToDeadline("a");
  Crash("a");
  RunToDeadline("a");
  Crash("a");  // third consecutive failure
  EXPECT_EQ(St("a").state, ServiceState::kCircuitOpen);
  EXPECT_EQ(St("a").consecutive_failures, 3);
  EXPECT_TRUE(St("a").next_start_at.has_value());
  int starts = launcher_.StartsOf("a");
  EXPECT_NEAR(RunToDeadline("a"), 100, 1e-6);  // the probe
  EXPECT_EQ(launcher_.StartsOf("a"), starts + 1);
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  // A failing probe keeps it open, next probe after another probe_after_seconds.
  clock_.AdvanceSeconds(2);
  Crash("a");
  EXPECT_EQ(St("a").state, ServiceState::kCircuitOpen);
  EXPECT_EQ(St("a").consecutive_failures, 4);
  EXPECT_NEAR(RunToDeadline("a"), 100, 1e-6);
  // A probe that stays up healthy_after_seconds closes it.
  EXPECT_NEAR(RunToDeadline("a"), 60, 1e-6);  // the healthy-window deadline
  EXPECT_EQ(St("a").consecutive_failures, 0);
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  Crash("a");
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
  EXPECT_EQ(St("a").consecutive_failures, 1);
}

TEST_F(SupervisorTest, ResetClosesCircuitAtOnce) {
  ServiceSpec s = Svc("a", {1});
  s.restart.circuit_break_after_failures = 1;
  sup_.Apply({s}, now());
  Crash("a");
  EXPECT_EQ(St("a").state, ServiceState::kCircuitOpen);
  int starts = launcher_.StartsOf("a");
  auto r = sup_.Reset("a", now(), clock_.WallNow());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, ServiceState::kRunning);
  EXPECT_EQ(r->consecutive_failures, 0);
  EXPECT_EQ(launcher_.StartsOf("a"), starts + 1);
  // After the reset the count starts over: the next crash is failure 1 -> backoff.
  Crash("a");
  EXPECT_EQ(St("a").state, ServiceState::kCircuitOpen);  // threshold 1
  EXPECT_FALSE(sup_.Reset("nope", now(), clock_.WallNow()));
}

TEST_F(SupervisorTest, HealthyUptimeResetsCountBeforeTheExit) {
  sup_.Apply({Svc("a")}, now());
  Crash("a");
  RunToDeadline("a");
  Crash("a");
  RunToDeadline("a");
  EXPECT_EQ(St("a").consecutive_failures, 2);
  clock_.AdvanceSeconds(59.9);
  sup_.Step(now());
  EXPECT_EQ(St("a").consecutive_failures, 2);
  // Crash after 60 s up without Step() at the boundary: the count is reset first, then this
  // crash counts 1 -> the first backoff value again.
  clock_.AdvanceSeconds(0.2);
  Crash("a");
  EXPECT_EQ(St("a").consecutive_failures, 1);
  EXPECT_NEAR(UntilDeadline(), 1, 1e-6);
}

TEST_F(SupervisorTest, CleanExitBeforeHealthyIsAFailure) {
  sup_.Apply({Svc("a")}, now());
  clock_.AdvanceSeconds(5);
  Crash("a", ExitStatus::Code(0));
  EXPECT_EQ(St("a").consecutive_failures, 1);
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);  // policy always restarts
  RunToDeadline("a");
  clock_.AdvanceSeconds(61);
  Crash("a", ExitStatus::Code(0));  // clean exit after a healthy run: not a failure
  EXPECT_EQ(St("a").consecutive_failures, 0);
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
  EXPECT_NEAR(UntilDeadline(), 1, 1e-6);
}

TEST_F(SupervisorTest, OnFailurePolicy) {
  ServiceSpec s = Svc("a");
  s.restart.policy = RestartPolicy::kOnFailure;
  sup_.Apply({s}, now());
  Crash("a", ExitStatus::Signal(SIGSEGV));
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
  ASSERT_TRUE(St("a").last_exit.has_value());
  EXPECT_EQ(*St("a").last_exit, ExitStatus::Signal(SIGSEGV));
  RunToDeadline("a");
  Crash("a", ExitStatus::Code(3));
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
  RunToDeadline("a");
  int starts = launcher_.StartsOf("a");
  Crash("a", ExitStatus::Code(0));
  EXPECT_EQ(St("a").state, ServiceState::kExited);
  EXPECT_FALSE(sup_.NextDeadline().has_value());
  clock_.AdvanceSeconds(1000);
  sup_.Step(now());
  EXPECT_EQ(launcher_.StartsOf("a"), starts);
}

TEST_F(SupervisorTest, NeverPolicy) {
  ServiceSpec s = Svc("a");
  s.restart.policy = RestartPolicy::kNever;
  sup_.Apply({s}, now());
  Crash("a", ExitStatus::Code(1));
  EXPECT_EQ(St("a").state, ServiceState::kExited);
  EXPECT_EQ(St("a").pid, 0);
  clock_.AdvanceSeconds(1000);
  sup_.Step(now());
  EXPECT_EQ(launcher_.StartsOf("a"), 1);
  // A manual start still works.
  ASSERT_TRUE(sup_.Start("a", now(), clock_.WallNow()));
  EXPECT_EQ(launcher_.StartsOf("a"), 2);
}

TEST_F(SupervisorTest, AlwaysPolicyRestartsAfterCleanExit) {
  sup_.Apply({Svc("a")}, now());
  Crash("a", ExitStatus::Code(0));
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
}

TEST_F(SupervisorTest, ExecFailureIsAFailureWithClearError) {
  ServiceSpec s = Svc("a", {0.5});
  s.command = {"/nope/missing"};
  s.restart.circuit_break_after_failures = 2;
  launcher_.failing_commands.insert("/nope/missing");
  auto r = sup_.Apply({s}, now());
  EXPECT_EQ(r.started, (std::vector<std::string>{"a"}));
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
  EXPECT_EQ(St("a").consecutive_failures, 1);
  EXPECT_NE(St("a").last_error.find("/nope/missing"), std::string::npos);
  EXPECT_NEAR(UntilDeadline(), 0.5, 1e-6);
  clock_.AdvanceSeconds(0.5);
  sup_.Step(now());
  EXPECT_EQ(St("a").state, ServiceState::kCircuitOpen);
  EXPECT_EQ(launcher_.failed_starts, 2);
  // Fixed command: reset starts it, error cleared.
  launcher_.failing_commands.clear();
  ASSERT_TRUE(sup_.Reset("a", now(), clock_.WallNow()));
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  EXPECT_EQ(St("a").last_error, "");
}

TEST_F(SupervisorTest, ExecFailureWithNeverPolicyExits) {
  ServiceSpec s = Svc("a");
  s.restart.policy = RestartPolicy::kNever;
  launcher_.failing_commands.insert("/bin/a");
  sup_.Apply({s}, now());
  EXPECT_EQ(St("a").state, ServiceState::kExited);
  EXPECT_FALSE(St("a").last_error.empty());
}

TEST_F(SupervisorTest, StopSignalsGroupThenKillsAfterGrace) {
  ServiceSpec s = Svc("a");
  s.stop.signal = SIGINT;
  s.stop.grace_seconds = 2.5;
  sup_.Apply({s}, now());
  pid_t pid = St("a").pid;
  auto r = sup_.Stop("a", now(), clock_.WallNow());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, ServiceState::kStopping);
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGINT}));
  EXPECT_NEAR(UntilDeadline(), 2.5, 1e-6);
  clock_.AdvanceSeconds(2.4);
  sup_.Step(now());
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGINT}));
  clock_.AdvanceSeconds(0.1);
  sup_.Step(now());
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGINT, SIGKILL}));
  EXPECT_FALSE(sup_.NextDeadline().has_value());
  sup_.OnExit(pid, ExitStatus::Signal(SIGKILL), now());
  EXPECT_EQ(St("a").state, ServiceState::kStopped);
  EXPECT_EQ(St("a").pid, 0);
  // Manually stopped: never restarted, even after a long time.
  clock_.AdvanceSeconds(10000);
  sup_.Step(now());
  EXPECT_EQ(launcher_.StartsOf("a"), 1);
  // Unchanged apply leaves the manual stop alone.
  auto ar = sup_.Apply({s}, now());
  EXPECT_EQ(ar.unchanged, (std::vector<std::string>{"a"}));
  EXPECT_EQ(St("a").state, ServiceState::kStopped);
  ASSERT_TRUE(sup_.Start("a", now(), clock_.WallNow()));
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  EXPECT_EQ(launcher_.StartsOf("a"), 2);
}

TEST_F(SupervisorTest, StopThatExitsWithinGraceSendsNoKillToRunningProcess) {
  sup_.Apply({Svc("a")}, now());
  pid_t pid = St("a").pid;
  ASSERT_TRUE(sup_.Stop("a", now(), clock_.WallNow()));
  clock_.AdvanceSeconds(1);
  sup_.OnExit(pid, ExitStatus::Signal(SIGTERM), now());
  // TERM, then the post-exit sweep of the (now empty) group. Nothing at the grace deadline.
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGTERM, SIGKILL}));
  clock_.AdvanceSeconds(100);
  sup_.Step(now());
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_EQ(St("a").consecutive_failures, 0);  // a requested stop is not a failure
}

TEST_F(SupervisorTest, ExitOfMainProcessKillsItsGroup) {
  sup_.Apply({Svc("a")}, now());
  pid_t pid = St("a").pid;
  Crash("a");
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGKILL}));
}

TEST_F(SupervisorTest, RestartStopsThenStarts) {
  sup_.Apply({Svc("a")}, now());
  pid_t pid = St("a").pid;
  ASSERT_TRUE(sup_.Restart("a", now(), clock_.WallNow()));
  EXPECT_EQ(St("a").state, ServiceState::kStopping);
  EXPECT_EQ(launcher_.StartsOf("a"), 1);
  sup_.OnExit(pid, ExitStatus::Signal(SIGTERM), now());
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  EXPECT_EQ(launcher_.StartsOf("a"), 2);
  EXPECT_EQ(St("a").restarts, 1);
  EXPECT_NE(St("a").pid, pid);
  EXPECT_FALSE(sup_.Restart("nope", now(), clock_.WallNow()));
}

TEST_F(SupervisorTest, ApplyDiff) {
  sup_.Apply({Svc("keep"), Svc("change"), Svc("drop")}, now());
  pid_t keep = St("keep").pid, change = St("change").pid, drop = St("drop").pid;
  ServiceSpec changed = Svc("change");
  changed.env["X"] = "1";
  auto r = sup_.Apply({Svc("keep"), changed, Svc("new")}, now());
  EXPECT_EQ(r.unchanged, (std::vector<std::string>{"keep"}));
  EXPECT_EQ(r.restarted, (std::vector<std::string>{"change"}));
  EXPECT_EQ(r.stopped, (std::vector<std::string>{"drop"}));
  EXPECT_EQ(r.started, (std::vector<std::string>{"new"}));
  EXPECT_TRUE(launcher_.SignalsTo(keep).empty());
  EXPECT_EQ(launcher_.SignalsTo(change), (std::vector<int>{SIGTERM}));
  EXPECT_EQ(launcher_.SignalsTo(drop), (std::vector<int>{SIGTERM}));
  // The desired list already shows the new definition and not the dropped one.
  auto desired = sup_.Desired();
  ASSERT_EQ(desired.size(), 3u);
  EXPECT_EQ(desired[0].name, "change");
  EXPECT_EQ(desired[0].env.at("X"), "1");
  sup_.OnExit(change, ExitStatus::Signal(SIGTERM), now());
  EXPECT_EQ(St("change").state, ServiceState::kRunning);
  EXPECT_EQ(launcher_.starts.back().spec.env.at("X"), "1");
  sup_.OnExit(drop, ExitStatus::Signal(SIGTERM), now());
  EXPECT_FALSE(sup_.StatusOf("drop", now(), clock_.WallNow()));
  EXPECT_EQ(sup_.Status(now(), clock_.WallNow()).size(), 3u);
}

TEST_F(SupervisorTest, RemovedServiceIgnoringTermIsKilledAfterGrace) {
  ServiceSpec s = Svc("a");
  s.stop.grace_seconds = 3;
  sup_.Apply({s}, now());
  pid_t pid = St("a").pid;
  sup_.Apply({}, now());
  EXPECT_EQ(St("a").state, ServiceState::kStopping);
  EXPECT_NEAR(RunToDeadline("a"), 3, 1e-6);
  EXPECT_EQ(launcher_.SignalsTo(pid), (std::vector<int>{SIGTERM, SIGKILL}));
  sup_.OnExit(pid, ExitStatus::Signal(SIGKILL), now());
  EXPECT_TRUE(sup_.Status(now(), clock_.WallNow()).empty());
}

TEST_F(SupervisorTest, ChangedServiceInBackoffStartsAtOnceWithNewSpec) {
  sup_.Apply({Svc("a")}, now());
  Crash("a");
  EXPECT_EQ(St("a").state, ServiceState::kBackoff);
  ServiceSpec changed = Svc("a");
  changed.command = {"/bin/other"};
  auto r = sup_.Apply({changed}, now());
  EXPECT_EQ(r.restarted, (std::vector<std::string>{"a"}));
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  EXPECT_EQ(St("a").consecutive_failures, 0);
  EXPECT_EQ(launcher_.starts.back().spec.command[0], "/bin/other");
}

TEST_F(SupervisorTest, StatusFields) {
  sup_.Apply({Svc("a")}, now());
  clock_.AdvanceSeconds(12.5);
  auto st = St("a");
  EXPECT_EQ(st.name, "a");
  EXPECT_NEAR(st.uptime_seconds, 12.5, 1e-6);
  ASSERT_TRUE(st.started_at.has_value());
  EXPECT_EQ(*st.started_at, clock_.WallNow() - std::chrono::milliseconds(12500));
  EXPECT_FALSE(st.next_start_at.has_value());
  Crash("a");
  st = St("a");
  EXPECT_EQ(st.pid, 0);
  EXPECT_EQ(st.uptime_seconds, 0);
  ASSERT_TRUE(st.next_start_at.has_value());
  EXPECT_EQ(*st.next_start_at, clock_.WallNow() + std::chrono::seconds(1));
}

TEST_F(SupervisorTest, RestoreAdoptsLiveProcessesAndRestartsDeadOnes) {
  sup_.Apply({Svc("alive"), Svc("dead"), Svc("stopped")}, now());
  ASSERT_TRUE(sup_.Stop("stopped", now(), clock_.WallNow()));
  sup_.OnExit(St("stopped").pid, ExitStatus::Signal(SIGTERM), now());
  clock_.AdvanceSeconds(100);
  auto snap = sup_.Snapshot(now(), clock_.WallNow());
  ASSERT_EQ(snap.size(), 3u);
  pid_t alive = St("alive").pid;

  FakeLauncher l2;
  l2.next_pid = 5000;
  l2.adoptable[alive] = static_cast<uint64_t>(alive) * 10;
  Supervisor s2(
      &l2, [] { return 0.5; }, [](const std::string& n) { return n; });
  s2.Restore(snap, now(), clock_.WallNow());
  auto a = s2.StatusOf("alive", now(), clock_.WallNow());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->pid, alive);
  EXPECT_TRUE(a->adopted);
  EXPECT_EQ(a->state, ServiceState::kRunning);
  EXPECT_NEAR(a->uptime_seconds, 100, 1e-3);
  EXPECT_EQ(l2.StartsOf("alive"), 0);  // no duplicate
  auto d = s2.StatusOf("dead", now(), clock_.WallNow());
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->last_exit.has_value());
  EXPECT_EQ(d->last_exit->kind, ExitStatus::kUnknown);
  // Died meanwhile: restarted at the next step.
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("dead"), 1);
  EXPECT_EQ(s2.StatusOf("stopped", now(), clock_.WallNow())->state, ServiceState::kStopped);
  EXPECT_EQ(l2.StartsOf("stopped"), 0);
  // The adopted one's exit is unknown whatever the loop says.
  s2.OnExit(alive, ExitStatus::Code(0), now());
  EXPECT_EQ(s2.StatusOf("alive", now(), clock_.WallNow())->last_exit->kind, ExitStatus::kUnknown);
}

TEST_F(SupervisorTest, RestoreRejectsReusedPid) {
  sup_.Apply({Svc("a")}, now());
  auto snap = sup_.Snapshot(now(), clock_.WallNow());
  FakeLauncher l2;
  l2.next_pid = 7000;
  l2.adoptable[snap[0].process->pid] = 999999;  // same pid, different start time
  Supervisor s2(
      &l2, [] { return 0.5; }, [](const std::string& n) { return n; });
  s2.Restore(snap, now(), clock_.WallNow());
  EXPECT_TRUE(l2.adopted.empty());
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("a"), 1);
}

TEST_F(SupervisorTest, RestoreFinishesStopsThatWereUnderWay) {
  ServiceSpec keep = Svc("stopping");
  keep.stop.grace_seconds = 4;
  sup_.Apply({keep, Svc("removed")}, now());
  pid_t stopping = St("stopping").pid, removed = St("removed").pid;
  ASSERT_TRUE(sup_.Stop("stopping", now(), clock_.WallNow()));
  sup_.Apply({keep}, now());  // "removed" is now stopping before being forgotten
  auto snap = sup_.Snapshot(now(), clock_.WallNow());
  ASSERT_EQ(snap.size(), 2u);

  FakeLauncher l2;
  l2.adoptable[stopping] = static_cast<uint64_t>(stopping) * 10;
  l2.adoptable[removed] = static_cast<uint64_t>(removed) * 10;
  Supervisor s2(
      &l2, [] { return 0.5; }, [](const std::string& n) { return n; });
  s2.Restore(snap, now(), clock_.WallNow());
  // Both adopted and signalled again; nothing started.
  EXPECT_EQ(l2.SignalsTo(stopping), (std::vector<int>{SIGTERM}));
  EXPECT_EQ(l2.SignalsTo(removed), (std::vector<int>{SIGTERM}));
  EXPECT_TRUE(l2.starts.empty());
  EXPECT_EQ(s2.Desired().size(), 1u);
  clock_.AdvanceSeconds(4);
  s2.Step(now());
  EXPECT_EQ(l2.SignalsTo(stopping), (std::vector<int>{SIGTERM, SIGKILL}));
  s2.OnExit(stopping, ExitStatus::Unknown(), now());
  s2.OnExit(removed, ExitStatus::Unknown(), now());
  auto all = s2.Status(now(), clock_.WallNow());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name, "stopping");
  EXPECT_EQ(all[0].state, ServiceState::kStopped);
  EXPECT_TRUE(l2.starts.empty());
}

// Backoff and circuit survive an agent restart: the due times are persisted as wall time and
// restored as monotonic deadlines, so the downtime counts towards the wait (neither an instant
// restart nor a fresh full probe period).
TEST_F(SupervisorTest, RestoreKeepsCountersAndBackoffAndCircuitDueTimes) {
  ServiceSpec a = Svc("backoff", {10});
  ServiceSpec b = Svc("open", {1});
  b.restart.circuit_break_after_failures = 1;
  b.restart.probe_after_seconds = 50;
  sup_.Apply({a, b}, now());
  Crash("backoff");  // restart due in 10 s
  Crash("open");     // probe due in 50 s
  ASSERT_EQ(St("open").state, ServiceState::kCircuitOpen);
  clock_.AdvanceSeconds(4);
  auto snap = sup_.Snapshot(now(), clock_.WallNow());
  ASSERT_TRUE(snap[0].next_start_at && snap[1].next_start_at);
  clock_.AdvanceSeconds(3);  // the agent was down for 3 s
  FakeLauncher l2;
  Supervisor s2(
      &l2, [] { return 0.5; }, [](const std::string& n) { return n; });
  s2.Restore(snap, now(), clock_.WallNow());
  auto st = s2.StatusOf("open", now(), clock_.WallNow());
  EXPECT_EQ(st->state, ServiceState::kCircuitOpen);
  EXPECT_EQ(st->consecutive_failures, 1);
  EXPECT_EQ(s2.StatusOf("backoff", now(), clock_.WallNow())->restarts, 0);
  EXPECT_EQ(s2.StatusOf("backoff", now(), clock_.WallNow())->state, ServiceState::kBackoff);
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("backoff"), 0);  // 3 s of the 10 are still to wait
  clock_.AdvanceSeconds(2.999);
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("backoff"), 0);
  clock_.AdvanceSeconds(0.001);
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("backoff"), 1);
  EXPECT_EQ(l2.StartsOf("open"), 0);
  clock_.AdvanceSeconds(39.999);  // 4 + 3 + 3 + 39.999 < 50
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("open"), 0);
  clock_.AdvanceSeconds(0.001);
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("open"), 1);
}

TEST_F(SupervisorTest, RestoredDueTimesInThePastAreDueAtOnceAndFarOnesAreCapped) {
  ServiceSpec a = Svc("late", {10});
  ServiceSpec b = Svc("far", {10});
  ServiceSpec c = Svc("old", {10});
  ServiceSpec d = Svc("oldopen", {1});
  d.restart.circuit_break_after_failures = 1;
  d.restart.probe_after_seconds = 50;
  sup_.Apply({a, b, c, d}, now());
  for (const char* n : {"late", "far", "old", "oldopen"}) Crash(n);
  auto snap = sup_.Snapshot(now(), clock_.WallNow());
  for (auto& p : snap) {
    if (p.spec.name == "late") p.next_start_at = clock_.WallNow() - std::chrono::seconds(30);
    // The wall clock was set back by a day meanwhile: wait at most the configured delay.
    if (p.spec.name == "far") p.next_start_at = clock_.WallNow() + std::chrono::hours(24);
    // A state file from before next_start_at existed.
    if (p.spec.name == "old" || p.spec.name == "oldopen") p.next_start_at.reset();
  }
  FakeLauncher l2;
  Supervisor s2(
      &l2, [] { return 0.5; }, [](const std::string& n) { return n; });
  s2.Restore(snap, now(), clock_.WallNow());
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("late"), 1);
  EXPECT_EQ(l2.StartsOf("old"), 1);  // as before: backoff due at once
  EXPECT_EQ(l2.StartsOf("far"), 0);
  clock_.AdvanceSeconds(9.999);
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("far"), 0);
  clock_.AdvanceSeconds(0.001);  // the longest backoff, 10 s (jitter 0)
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("far"), 1);
  EXPECT_EQ(l2.StartsOf("oldopen"), 0);
  clock_.AdvanceSeconds(40);  // as before: a full probe period from the restore
  s2.Step(now());
  EXPECT_EQ(l2.StartsOf("oldopen"), 1);
}

// Apply starts what it starts in one launcher batch (the real launcher overlaps those
// fork/execs); a failed start in the batch is handled like any other; removed ones are stopped.
TEST_F(SupervisorTest, ApplyStartsInOneBatch) {
  sup_.Apply({Svc("old")}, now());
  ASSERT_EQ(launcher_.batches.size(), 1u);
  pid_t old_pid = St("old").pid;
  ServiceSpec bad = Svc("bad");
  bad.command = {"/bin/missing"};
  launcher_.failing_commands.insert("/bin/missing");
  auto r = sup_.Apply({Svc("a"), bad, Svc("b")}, now());
  EXPECT_EQ(r.started, (std::vector<std::string>{"a", "bad", "b"}));
  EXPECT_EQ(r.stopped, std::vector<std::string>{"old"});
  ASSERT_EQ(launcher_.batches.size(), 2u);
  EXPECT_EQ(launcher_.batches[1], (std::vector<std::string>{"a", "bad", "b"}));
  EXPECT_EQ(launcher_.SignalsTo(old_pid), std::vector<int>{SIGTERM});
  EXPECT_EQ(St("a").state, ServiceState::kRunning);
  EXPECT_EQ(St("b").state, ServiceState::kRunning);
  EXPECT_NE(St("a").pid, St("b").pid);
  EXPECT_EQ(St("bad").state, ServiceState::kBackoff);
  EXPECT_EQ(St("bad").consecutive_failures, 1);
  EXPECT_NE(St("bad").last_error.find("/bin/missing"), std::string::npos);
  // Nothing to start: no batch.
  sup_.Apply({Svc("a"), bad, Svc("b")}, now());
  EXPECT_EQ(launcher_.batches.size(), 2u);
}

TEST_F(SupervisorTest, ImperativeCommandsOnUnknownServiceAreNotFound) {
  for (auto f : {&Supervisor::Start, &Supervisor::Stop, &Supervisor::Restart, &Supervisor::Reset}) {
    auto r = (sup_.*f)("ghost", now(), clock_.WallNow());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kNotFound);
    EXPECT_NE(r.error().message.find("ghost"), std::string::npos);
  }
}

TEST_F(SupervisorTest, GenerationMovesOnChanges) {
  uint64_t g = sup_.generation();
  sup_.Apply({Svc("a")}, now());
  EXPECT_GT(sup_.generation(), g);
  g = sup_.generation();
  sup_.Step(now());
  EXPECT_EQ(sup_.generation(), g);
  Crash("a");
  EXPECT_GT(sup_.generation(), g);
}

}  // namespace
}  // namespace cb
