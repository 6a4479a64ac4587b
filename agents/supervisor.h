// Supervisor: the pure state machine that keeps a host's services running. It performs no
// syscalls itself: processes are started and signalled through a ProcessLauncher, time comes
// in as `now`, randomness (jitter) from an injected source. The agent loop (agents/loop.h)
// feeds it child exits and calls Step() when NextDeadline() is reached.
//
// Restart semantics (ARCHITECTURE.md):
//   - policy always: restart after any exit; on-failure: only after a non-zero exit, a signal,
//     an unknown exit (adopted process) or an exec failure; never: not at all (state exited).
//   - An exit before the service was up for restart.healthy_after_seconds is a failure and
//     counts towards the circuit; a service that stayed up that long has its count reset
//     first (at that moment, by Step(), or at the exit at the latest). A non-clean exit after
//     a healthy uptime is a failure too (count 1). An exec failure is a failure.
//   - The delay before restart k (k = consecutive failures, at least 1) is
//     backoff_seconds[k-1] (the last value repeats) x a uniform factor in
//     [1 - jitter, 1 + jitter] from the random source.
//   - After circuit_break_after_failures consecutive failures the state is circuit-open; a
//     probe start happens every probe_after_seconds; a probe that fails (exits before healthy)
//     keeps it open; one that stays up healthy_after_seconds closes it. Reset() closes it at
//     once (count 0) and starts the service.
//   - Stop: stop.signal to the process group, SIGKILL to the group after stop.grace_seconds.
//     When a service's main process exits, the rest of its process group is SIGKILLed, so
//     grandchildren never outlive it.
//   - Apply() is declarative: new services are started, unchanged ones (ServiceSpec ==) are
//     left alone (including a manual stop), changed ones are restarted with the new
//     definition (failure count reset, manual stop cleared), removed ones are stopped and
//     forgotten once their process has exited.
//
// Thread-safety: not thread-safe; drive from one thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agents/launcher.h"
#include "core/clock.h"
#include "core/result.h"
#include "core/service.h"

namespace cb {

enum class ServiceState {
  kStarting,
  kRunning,
  kBackoff,
  kStopping,
  kStopped,
  kExited,
  kCircuitOpen
};
// "starting", "running", "backoff", "stopping", "stopped", "exited", "circuit-open"
std::string_view ServiceStateName(ServiceState s);
std::optional<ServiceState> ServiceStateFromName(std::string_view name);

// What ps shows for one service (agents/PROTOCOL.md ServiceStatus, minus stats and log path,
// which the loop adds).
struct ServiceStatus {
  std::string name;
  ServiceState state = ServiceState::kStopped;
  pid_t pid = 0;     // 0 when no process
  int restarts = 0;  // automatic and manual restarts since first start
  int consecutive_failures = 0;
  std::optional<WallTime> next_start_at;  // backoff: the restart; circuit-open: the next probe
  std::optional<ExitStatus> last_exit;
  double uptime_seconds = 0;           // 0 when no process
  std::optional<WallTime> started_at;  // when the current process started
  bool adopted = false;                // process taken over from a previous agent
  std::string last_error;              // empty: none
};

// Everything that must survive an agent restart, per service (agents/state_store.h writes it).
struct PersistedService {
  ServiceSpec spec;
  ServiceState state = ServiceState::kStopped;
  std::optional<ProcessId> process;    // the running process, if any
  std::optional<WallTime> started_at;  // of that process
  bool manual_stop = false;
  int restarts = 0;
  int consecutive_failures = 0;
  std::optional<ExitStatus> last_exit;
  std::string last_error;
  bool removing = false;  // no longer desired; stopping before being forgotten
  // backoff: when the restart is due; circuit-open: when the probe is due. nullopt in other
  // states (and in state files written before this field existed).
  std::optional<WallTime> next_start_at;
};

struct ApplyResult {
  std::vector<std::string> started, restarted, stopped, unchanged;
};

class Supervisor {
 public:
  // Uniform double in [0, 1).
  using RandomSource = std::function<double()>;
  // Path of a service's log file (the loop supplies the log layout).
  using LogPathFn = std::function<std::string(const std::string& name)>;

  Supervisor(ProcessLauncher* launcher, RandomSource random, LogPathFn log_path);

  // Replaces the desired services (see the header comment). `desired` must already be valid
  // (unique names); the agent validates before calling. The services it starts are started
  // with one launcher->StartMany() (after the stop signals of removed/changed ones).
  ApplyResult Apply(const std::vector<ServiceSpec>& desired, MonoTime now);

  // A process exited (pid as returned by Start/Adopt). Unknown pids are ignored.
  void OnExit(pid_t pid, ExitStatus status, MonoTime now);

  // Acts on every deadline that has passed: restarts, probes, SIGKILL after grace, the
  // healthy-window reset.
  void Step(MonoTime now);

  // The earliest future instant at which Step() has something to do; nullopt: none.
  std::optional<MonoTime> NextDeadline() const;

  // Imperative commands. kNotFound for an unknown name.
  // Start: clears a manual stop; starts now unless a process is running (or stopping: then it
  //        is started again when that one has exited).
  // Stop: marks manual stop; stops a running process (signal, SIGKILL after grace).
  // Restart: stops the running process and starts it again when it has exited (or starts it
  //          now when none runs); clears a manual stop.
  // Reset: failure count 0, closes the circuit; a service in backoff or circuit-open is
  //        started now.
  Result<ServiceStatus> Start(const std::string& name, MonoTime now, WallTime wall_now);
  Result<ServiceStatus> Stop(const std::string& name, MonoTime now, WallTime wall_now);
  Result<ServiceStatus> Restart(const std::string& name, MonoTime now, WallTime wall_now);
  Result<ServiceStatus> Reset(const std::string& name, MonoTime now, WallTime wall_now);

  // Status of all services sorted by name (wall_now maps monotonic instants to wall time).
  std::vector<ServiceStatus> Status(MonoTime now, WallTime wall_now) const;
  Result<ServiceStatus> StatusOf(const std::string& name, MonoTime now, WallTime wall_now) const;

  // Desired services, sorted by name (not those still stopping before removal).
  std::vector<ServiceSpec> Desired() const;

  // Pids of all processes currently watched (running or stopping).
  std::vector<pid_t> LivePids() const;
  // The service whose current process is `pid`; empty when none.
  std::string NameOfPid(pid_t pid) const;

  // Persistence. Snapshot() lists desired services and those still stopping for removal
  // (removing = true: a restored agent adopts and stops them, then forgets them).
  std::vector<PersistedService> Snapshot(MonoTime now, WallTime wall_now) const;
  // Restores after an agent restart: processes are adopted via launcher->Adopt (identity by
  // pid + start time); one that cannot be adopted died meanwhile: its exit is recorded as
  // unknown and the policy applies (restart). Services are otherwise left as persisted; a
  // backoff restart and a circuit probe keep their persisted due time (next_start_at, wall
  // time, converted to monotonic time with `now`/`wall_now`): one already past is due at once,
  // and a due time further away than the configured delay (the wall clock was set back) is
  // cut to that delay. Without a persisted due time (an older state file) a backoff restart
  // is due at once and a probe after probe_after_seconds.
  void Restore(const std::vector<PersistedService>& saved, MonoTime now, WallTime wall_now);

  // Incremented on every change worth persisting (the loop saves when it moves).
  uint64_t generation() const { return generation_; }

 private:
  enum class AfterStop { kStay, kRestart, kRemove };
  struct Svc {
    ServiceSpec spec;
    ServiceState state = ServiceState::kStopped;
    std::optional<ProcessId> process;
    MonoTime started{};
    bool adopted = false;
    int restarts = 0;
    int consecutive_failures = 0;
    std::optional<ExitStatus> last_exit;
    std::string last_error;
    bool manual_stop = false;
    bool desired = true;    // false: stopping for removal
    MonoTime next_start{};  // backoff / circuit-open
    MonoTime kill_at{};     // stopping: SIGKILL then
    bool kill_sent = false;
    AfterStop after_stop = AfterStop::kStay;
    std::optional<ServiceSpec> pending_spec;  // changed definition applied after the stop
  };

  // The desired service called `name`, or kNotFound ("service 'NAME' not found").
  Result<Svc*> FindDesired(const std::string& name);
  void StartNow(Svc& s, MonoTime now);
  void BeginStart(Svc& s);  // StartNow = BeginStart, the launcher's start, FinishStart
  void FinishStart(Svc& s, Result<ProcessId> r, MonoTime now);
  void BeginStop(Svc& s, MonoTime now, AfterStop after);
  void HandleExit(Svc& s, ExitStatus status, MonoTime now);  // policy decision after an exit
  void ScheduleRestart(Svc& s, MonoTime now);
  double BackoffSeconds(const Svc& s);
  ServiceStatus StatusFor(const Svc& s, MonoTime now, WallTime wall_now) const;
  void Touch() { ++generation_; }

  ProcessLauncher* launcher_;
  RandomSource random_;
  LogPathFn log_path_;
  std::map<std::string, Svc> services_;
  uint64_t generation_ = 0;
};

}  // namespace cb
