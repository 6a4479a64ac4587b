// Agent: the cbagent event loop (`cbagent serve`). One thread, one epoll set over
//   - the listening unix socket STATE_DIR/agent.sock (mode 0600) and its client connections,
//     speaking agents/PROTOCOL.md (newline-delimited JSON; a garbage line gets an error reply
//     and the connection stays open);
//   - one pidfd per supervised process (exits are seen by event, never by polling);
//   - a timerfd armed to the earliest of the supervisor's NextDeadline(), the next stats
//     sample, the next log-rotation check and the next `logs -f` poll;
//   - a signalfd for TERM/INT: Step() then returns false and the agent exits LEAVING ITS
//     SERVICES RUNNING (services outlive the agent; a new `serve` re-adopts them).
// Every change of the supervisor's state is written to STATE_DIR/state.json (atomically)
// before the next wait, and replies go out only after that save. Only one agent serves a
// state dir (flock on STATE_DIR/agent.lock).
// Short-lived helper threads exist only inside an `apply` that starts many services: up to
// RealLauncher::kMaxParallelStarts fork/execs in flight, and one thread creating missing log
// files ahead of them; they are joined before the apply's reply is built.
//
// Thread-safety: not thread-safe; Create, Step and Run from one thread.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agents/logfile.h"
#include "core/clock.h"
#include "core/result.h"

namespace cb {

inline constexpr int kProtocolVersion = 1;
inline constexpr const char* kAgentVersion = "cbagent 0.1.0";
inline constexpr size_t kMaxLineBytes = 4u << 20;  // agents/PROTOCOL.md: 4 MiB per line

struct AgentOptions {
  std::string state_dir;                                  // created (0700) when missing
  Duration stats_interval = std::chrono::seconds(10);     // host/service stats sampling period
  uint64_t log_max_bytes = kDefaultLogMaxBytes;           // rotate a service log at this size
  int log_keep = kDefaultLogKeep;                         // rotated files kept per service
  Duration log_check_interval = std::chrono::seconds(5);  // how often sizes are checked
};

// STATE_DIR/agent.sock
std::string AgentSocketPath(const std::string& state_dir);
// kInvalidArgument when `path` does not fit in sockaddr_un.sun_path (naming both lengths).
Result<void> CheckSocketPathLength(const std::string& path);

class Agent {
 public:
  // Prepares everything: state dir (writable, locked), socket, state file (a corrupt one is
  // moved aside and reported; the agent still starts), adoption of processes still running,
  // restart of those that died. Failure: a clear error (unwritable state dir, socket path too
  // long, another agent serving the dir, ...).
  static Result<std::unique_ptr<Agent>> Create(const AgentOptions& opts);
  ~Agent();  // closes sockets and fds; never signals the services

  // One iteration: waits up to `timeout_ms` (-1: until an event or the timer) and handles
  // what arrived. Returns false once TERM or INT was received.
  bool Step(int timeout_ms);
  // Step(-1) until it returns false. Returns the process exit code (0).
  int Run();

  // The reply to one request line (exposed for tests; the loop calls it per line).
  nlohmann::json HandleLine(const std::string& line, int conn_fd);

  const std::string& state_dir() const;
  const std::string& socket_path() const;

  struct Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cb
