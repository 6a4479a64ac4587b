// AgentClient: the control plane's side of agents/PROTOCOL.md over one Transport.
// Every call sends one request and waits for the reply with the same id (stream messages of
// other ids are skipped). An error reply becomes an Error with the agent's code and message,
// prefixed with the host name.
//
// Thread-safety: not thread-safe; one caller at a time (the reconciler holds a per-host lock).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controlplane/transport.h"
#include "core/service.h"

namespace cb::cp {

inline constexpr int kAgentProtocol = 1;

struct AgentHello {
  std::string agent;        // "cbagent 0.1.0"
  int protocol = 0;
  std::string host;
  int64_t pid = 0;
  std::string managed_by;   // "" = none
};

struct AgentApplyResult {
  std::vector<std::string> started, restarted, stopped, unchanged;
};

class AgentClient {
 public:
  AgentClient(std::string host, std::unique_ptr<Transport> t, Duration timeout = Seconds(15));

  const std::string& host() const { return host_; }

  // Sends a request, returns the reply's "result". kFailedPrecondition on a protocol-version
  // mismatch (both versions named).
  Result<nlohmann::json> Call(const std::string& method, const nlohmann::json& params);

  // hello; refuses an agent whose major protocol differs (both versions named).
  Result<AgentHello> Hello(const std::string& client);
  Result<AgentApplyResult> Apply(const std::vector<ServiceSpec>& services, const std::string& owner,
                                 bool force = false);
  // ServiceStatus objects, verbatim.
  Result<std::vector<nlohmann::json>> Ps();
  // action: start | stop | restart | reset. Returns the ServiceStatus object.
  Result<nlohmann::json> Action(const std::string& action, const std::string& name);
  Result<std::vector<std::string>> Logs(const std::string& name, int tail);
  // Starts a follow stream: returns the initial lines; then call NextStream() repeatedly.
  Result<std::vector<std::string>> FollowStart(const std::string& name, int tail);
  // The next streamed lines of a follow (kTimeout when none within `wait`).
  Result<std::vector<std::string>> NextStream(Duration wait);

  Transport& transport() { return *t_; }

 private:
  std::string host_;
  std::unique_ptr<Transport> t_;
  Duration timeout_;
  int64_t next_id_ = 1;
  int64_t follow_id_ = 0;
};

}  // namespace cb::cp
