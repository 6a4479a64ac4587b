// ServiceSpec: one supervised process, as a cbagent service file declares it and as the
// control plane's reconciler derives it from the fleet spec. It is the unit the agent
// supervises and the unit `apply` compares: two specs that are == need no restart.
//
// Service file (YAML or JSON):
//   services:
//     - name: web                       # [a-z0-9][a-z0-9._-]*, at most 63 characters
//       command: [/usr/bin/web, --port, "8080"]   # argv; argv[0] absolute or found on PATH
//       env: {KEY: value}                # added to the agent's minimal environment
//       cwd: /srv/web                    # default: the agent's state dir
//       user: www-data                   # needs the agent to run as root
//       restart: {policy: always, backoff_seconds: [1, 5, 15, 60], jitter: 0.1,
//                 circuit_break_after_failures: 5, healthy_after_seconds: 60,
//                 probe_after_seconds: 600}
//       stop: {signal: TERM, grace_seconds: 10}
//
// Restart semantics are those of ARCHITECTURE.md ("Restart semantics").
// Thread-safety: plain values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/result.h"

namespace cb {

enum class RestartPolicy { kAlways, kOnFailure, kNever };
std::string_view RestartPolicyName(RestartPolicy p);  // "always", "on-failure", "never"

struct RestartSpec {
  RestartPolicy policy = RestartPolicy::kAlways;
  std::vector<double> backoff_seconds = {1, 5, 15, 60};  // delay before restart k; last repeats
  double jitter = 0.1;                                   // uniform factor in [1-j, 1+j], 0..1
  int circuit_break_after_failures = 5;                  // >= 1
  double healthy_after_seconds = 60;                     // uptime that resets the failure count
  double probe_after_seconds = 600;                      // open circuit: one probe start this often
  bool operator==(const RestartSpec&) const = default;
};

struct StopSpec {
  int signal = 15;               // SIGTERM; in files: TERM, INT, HUP, QUIT, USR1, USR2, KILL
  double grace_seconds = 10;     // then SIGKILL to the whole process group
  bool operator==(const StopSpec&) const = default;
};

struct ServiceSpec {
  std::string name;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string cwd;               // empty: the agent's state dir
  std::string user;              // empty: the agent's own user
  RestartSpec restart;
  StopSpec stop;
  bool operator==(const ServiceSpec&) const = default;
};

// Names: [a-z0-9][a-z0-9._-]*, 1..63 characters, no "..".
Result<void> ValidateServiceName(std::string_view name);

// Signal names without "SIG" ("TERM") <-> numbers. Unknown names: kInvalidArgument.
Result<int> ParseSignalName(std::string_view name);
std::string SignalName(int sig);

// JSON codec (the wire form used by the agent protocol and the control plane API). The
// decoder reports unknown keys and wrong types with the JSON path ("services[2].restart.jitter").
void to_json(nlohmann::json& j, const ServiceSpec& s);
Result<ServiceSpec> ServiceSpecFromJson(const nlohmann::json& j, std::string_view path);

}  // namespace cb
