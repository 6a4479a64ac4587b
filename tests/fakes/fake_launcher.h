// A ProcessLauncher that starts nothing and records everything: each Start() hands out the
// next pid (1000, 1001, ...), each SignalGroup() is recorded. Tests make Start() fail for a
// command (exec failure) and decide which pids Adopt() accepts.
// Not thread-safe: drive it from the test thread.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "agents/launcher.h"

namespace cb::testing {

class FakeLauncher final : public ProcessLauncher {
 public:
  struct Started {
    std::string name;
    pid_t pid;
    std::string log_path;
    ServiceSpec spec;
  };
  struct Signalled {
    pid_t pgid;
    int sig;
  };

  Result<ProcessId> Start(const ServiceSpec& spec, const std::string& log_path) override {
    if (!spec.command.empty() && failing_commands.count(spec.command[0])) {
      failed_starts++;
      return Err(Code::kNotFound, "exec {}: No such file or directory", spec.command[0]);
    }
    pid_t pid = next_pid++;
    starts.push_back({spec.name, pid, log_path, spec});
    return ProcessId{pid, static_cast<uint64_t>(pid) * 10};
  }
  // Records the batch (names, in order), then starts each like Start().
  std::vector<Result<ProcessId>> StartMany(const std::vector<StartRequest>& reqs) override {
    std::vector<std::string> names;
    for (const auto& r : reqs) names.push_back(r.spec->name);
    batches.push_back(names);
    return ProcessLauncher::StartMany(reqs);
  }
  Result<void> SignalGroup(pid_t pgid, int sig) override {
    signals.push_back({pgid, sig});
    return Ok();
  }
  Result<void> Adopt(const ProcessId& id) override {
    if (adoptable.count(id.pid) && adoptable[id.pid] == id.start_ticks) {
      adopted.push_back(id.pid);
      return Ok();
    }
    return Err(Code::kNotFound, "process {} is gone", id.pid);
  }

  // Number of starts of `name`.
  int StartsOf(const std::string& name) const {
    int n = 0;
    for (const auto& s : starts) n += (s.name == name);
    return n;
  }
  pid_t LastPid() const { return starts.empty() ? 0 : starts.back().pid; }
  // Signals sent to `pgid`, in order.
  std::vector<int> SignalsTo(pid_t pgid) const {
    std::vector<int> out;
    for (const auto& s : signals)
      if (s.pgid == pgid) out.push_back(s.sig);
    return out;
  }

  pid_t next_pid = 1000;
  std::set<std::string> failing_commands;  // argv[0] values whose exec fails
  std::map<pid_t, uint64_t> adoptable;     // pid -> start ticks Adopt() accepts
  std::vector<Started> starts;
  std::vector<std::vector<std::string>> batches;  // StartMany() calls, names in order
  std::vector<Signalled> signals;
  std::vector<pid_t> adopted;
  int failed_starts = 0;
};

}  // namespace cb::testing
