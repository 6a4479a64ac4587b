// AgentClient: a blocking client of agents/PROTOCOL.md over the agent's unix socket, for
// `cbagent ctl` and `cbagent rpc`. One request at a time.
//
// Thread-safety: one thread per AgentClient.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"

namespace cb {

// Connects to STATE_DIR/agent.sock. Failure: kUnavailable saying where it looked and how to
// start an agent ("no cbagent is running: cannot connect to /x/agent.sock (...); start one
// with: cbagent serve --state-dir /x"); kInvalidArgument for a path too long.
Result<int> ConnectAgentSocket(const std::string& state_dir);

class AgentClient {
 public:
  static Result<std::unique_ptr<AgentClient>> Connect(const std::string& state_dir);
  ~AgentClient();

  // Sends {"v":1,"id":N,"method":…,"params":…} and returns the reply's "result", or the
  // reply's error as an Error (its code and message), or kUnavailable when the connection
  // broke.
  Result<nlohmann::json> Call(const std::string& method, const nlohmann::json& params);
  // Reads the next message (for streams after a `logs` request with follow). kUnavailable at
  // end of stream.
  Result<nlohmann::json> ReadMessage();

 private:
  explicit AgentClient(int fd) : fd_(fd) {}
  Result<std::string> ReadLine();
  int fd_;
  int next_id_ = 1;
  std::string buf_;
};

}  // namespace cb
