// Transport seam: a byte-stream connection from cbctld to one host's agent, carrying
// agents/PROTOCOL.md (newline-delimited JSON). LocalTransport is the agent's unix socket
// (host `local`); an SSH exec channel (`cbagent rpc`) comes later through the same seam.
// AgentClient (agent_client.h) speaks the protocol on top of a Transport.
//
// Thread-safety: a Transport is used by one thread at a time; Connectors are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace cb::cp {

class Transport {
 public:
  virtual ~Transport() = default;
  // Writes `line` plus '\n'. kUnavailable when the peer is gone.
  virtual Result<void> WriteLine(std::string_view line) = 0;
  // Reads one line (without the '\n'), waiting at most `timeout`. kTimeout when nothing came,
  // kUnavailable on EOF/reset, kInvalidArgument for a line over 4 MiB.
  virtual Result<std::string> ReadLine(Duration timeout) = 0;
  // Closes the connection; later calls fail with kUnavailable. Idempotent.
  virtual void Close() = 0;
};

// Opens transports to one host's agent.
class Connector {
 public:
  virtual ~Connector() = default;
  virtual Result<std::unique_ptr<Transport>> Connect() = 0;
  // Where it connects, for messages: "unix:/var/lib/cbctld/agents/local/agent.sock".
  virtual std::string Describe() const = 0;
};

// A connection to the unix socket at `path` (kUnavailable when nothing listens, with the path;
// kInvalidArgument for a path too long for sun_path).
Result<std::unique_ptr<Transport>> ConnectUnix(const std::string& path);

// Connector for the local agent's socket. When `spawn_state_dir` is not empty and nothing
// listens on `socket_path`, Connect() first starts `<cbagent> serve --state-dir
// <spawn_state_dir>` detached (own session, stdin /dev/null, output appended to
// <spawn_state_dir>/cbagent.out) so it outlives cbctld, then waits up to `start_timeout` for
// the socket.
class LocalConnector final : public Connector {
 public:
  LocalConnector(std::string socket_path, std::string spawn_state_dir, std::string cbagent_path,
                 Duration start_timeout = Seconds(10));
  Result<std::unique_ptr<Transport>> Connect() override;
  std::string Describe() const override { return "unix:" + socket_path_; }
  // The pid of the agent this connector started (0 when it started none). For logs/tests.
  int spawned_pid() const { return spawned_pid_; }

 private:
  std::string socket_path_;
  std::string spawn_state_dir_;
  std::string cbagent_path_;
  Duration start_timeout_;
  int spawned_pid_ = 0;
};

// The cbagent binary: the one next to this process's executable, else the first on PATH,
// else "" (the caller reports it).
std::string FindCbagentBinary();

// Starts `argv` detached: double fork, setsid, stdin /dev/null, stdout+stderr appended to
// `output_path`, no inherited descriptors beyond 0-2. Returns the daemon's pid.
Result<int> SpawnDetached(const std::vector<std::string>& argv, const std::string& output_path);

}  // namespace cb::cp
