// RealLauncher: the ProcessLauncher on Linux, with plain fork/exec (Boost.Process v1 has no
// process groups or pidfds).
//
// Start():
//   - argv[0] is used as is when it contains '/', else searched on the agent's PATH (a clear
//     kNotFound when it is not found: "command 'x' not found on PATH (...)").
//   - the child: own process group (setpgid), signal mask and dispositions reset, stdin from
//     /dev/null, stdout and stderr appended to the log file that the CHILD opens (O_APPEND), so
//     its output never depends on the agent; cwd; user (initgroups/setgid/setuid, root only);
//     environment = a minimal one (PATH, HOME, USER, LOGNAME, LANG, TZ) plus spec.env.
//   - "started" means exec succeeded: a CLOEXEC pipe carries the errno of a failed step back
//     ("exec /x: No such file or directory", "chdir /srv: ...", "open log ...: ...").
//   - a pidfd is opened for every child and every adopted process and handed to the WatchFn;
//     when it becomes readable the loop calls Reap().
//
// Thread-safety: one thread (the agent loop).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agents/launcher.h"

namespace cb {

// Field 22 of /proc/PID/stat (start time in clock ticks since boot). kNotFound when gone.
Result<uint64_t> ProcessStartTicks(pid_t pid);

class RealLauncher final : public ProcessLauncher {
 public:
  // Called for every process to watch: its pid and a pidfd (owned by the launcher; valid until
  // Reap() of that pid returns a status).
  using WatchFn = std::function<void(pid_t pid, int pidfd)>;

  // default_cwd: used when spec.cwd is empty (the agent's state dir).
  RealLauncher(std::string default_cwd, WatchFn watch);
  ~RealLauncher() override;

  Result<ProcessId> Start(const ServiceSpec& spec, const std::string& log_path) override;
  // Up to kMaxParallelStarts starts in flight at once (helper threads, each vfork-ing and
  // waiting for its child's exec; services with `user:` are forked on the calling thread
  // first, before any helper runs). Batches below 8 run one after the other. Results in
  // order; the watch callback runs on the calling thread, after the spawns.
  std::vector<Result<ProcessId>> StartMany(const std::vector<StartRequest>& reqs) override;
  static constexpr size_t kMaxParallelStarts = 4;
  Result<void> SignalGroup(pid_t pgid, int sig) override;
  Result<void> Adopt(const ProcessId& id) override;

  // After `pid`'s pidfd became readable: the exit status (own child: reaped with
  // waitid(P_PIDFD); adopted: Unknown) and the pidfd is closed. nullopt when it has not exited
  // after all (spurious wake-up) or the pid is not watched.
  std::optional<ExitStatus> Reap(pid_t pid);

  // Number of watched processes.
  size_t watched() const { return watched_.size(); }

 private:
  struct Watched {
    int pidfd = -1;
    bool own_child = false;
  };
  struct Prepared;
  Result<std::unique_ptr<Prepared>> Prepare(const ServiceSpec& spec, const std::string& log_path);
  static void Spawn(Prepared& p);
  Result<ProcessId> Finish(Prepared& p);

  std::string default_cwd_;
  WatchFn watch_;
  std::map<pid_t, Watched> watched_;
  std::map<std::string, std::string> path_cache_;  // command name -> path found on PATH
  std::optional<std::pair<std::string, std::string>> self_user_;  // our user name and home
};

}  // namespace cb
