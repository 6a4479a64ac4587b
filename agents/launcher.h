// ProcessLauncher: the seam between the supervisor's pure state machine and the operating
// system. The real implementation (agents/real_launcher.h) forks and execs; tests use
// tests/fakes/fake_launcher.h, which records what was started and signalled.
//
// A started service runs in its own process group (pgid == pid), so a signal to the group
// reaches its grandchildren too.
//
// Thread-safety: implementations are driven from the agent's single loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/service.h"

namespace cb {

// Identity of a running process: pid plus its start time (field 22 of /proc/PID/stat, clock
// ticks since boot). The pair survives an agent restart and detects pid reuse.
struct ProcessId {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  bool operator==(const ProcessId&) const = default;
};

// How a process ended. Adopted processes are not our children: their status cannot be read.
struct ExitStatus {
  enum Kind { kCode, kSignal, kUnknown };
  Kind kind = kUnknown;
  int value = 0;  // the exit code (kCode) or the signal number (kSignal)

  static ExitStatus Code(int c) { return {kCode, c}; }
  static ExitStatus Signal(int s) { return {kSignal, s}; }
  static ExitStatus Unknown() { return {kUnknown, 0}; }
  // A clean exit is code 0; a signal, a non-zero code and unknown are not.
  bool Clean() const { return kind == kCode && value == 0; }
  bool operator==(const ExitStatus&) const = default;
};

// One start of a batch (ProcessLauncher::StartMany). `spec` must outlive the call.
struct StartRequest {
  const ServiceSpec* spec = nullptr;
  std::string log_path;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;

  // Starts `spec` in a new process group, stdin from /dev/null, stdout and stderr appended to
  // `log_path` (opened by the child). Success means exec succeeded. Failure: the reason, e.g.
  // "exec /usr/bin/nope: No such file or directory" (kNotFound), not executable
  // (kPermissionDenied), unknown user, cwd missing, fork failure.
  virtual Result<ProcessId> Start(const ServiceSpec& spec, const std::string& log_path) = 0;

  // Starts several services, possibly several at a time (the real launcher overlaps their
  // fork/exec). The results are in the order of `reqs`, each what Start() would have
  // returned. Default: Start() for one after the other.
  virtual std::vector<Result<ProcessId>> StartMany(const std::vector<StartRequest>& reqs) {
    std::vector<Result<ProcessId>> out;
    out.reserve(reqs.size());
    for (const auto& r : reqs) {
      out.push_back(Start(*r.spec, r.log_path));
    }
    return out;
  }

  // Sends `sig` to the process group `pgid`. A group that no longer exists is success.
  virtual Result<void> SignalGroup(pid_t pgid, int sig) = 0;

  // Takes over watching a process from a previous agent: succeeds only when `id.pid` is alive
  // and its start time is `id.start_ticks` (otherwise kNotFound: it died or the pid was
  // reused). Its exit will be reported as ExitStatus::Unknown().
  virtual Result<void> Adopt(const ProcessId& id) = 0;
};

}  // namespace cb
