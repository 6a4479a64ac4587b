// The agent's persistent state: STATE_DIR/state.json holds the desired services, the owner
// (the control plane that manages this agent, if any), and per service the running pid with
// its start time, the manual-stop flag and the counters, so a new `cbagent serve` can re-adopt
// what is still running.
//
// Format (version 1):
//   {"version": 1, "owner": null | "cbctld:<id>", "saved_at": "<ISO time>",
//    "services": [{"spec": ServiceSpec, "state": "running", "pid": 4242,
//                  "start_ticks": 123456, "started_at_ns": <epoch ns>, "manual_stop": false,
//                  "removing": false, "restarts": 0, "consecutive_failures": 0,
//                  "last_exit": null | {"code": N} | {"signal": N} | {"unknown": true},
//                  "last_error": "",
//                  "next_start_at_ns": null | <epoch ns> (backoff: the restart, circuit-open:
//                                     the probe; restored as a monotonic deadline)}]}
//
// Writes are atomic: state.json.tmp is written, fsynced, renamed over state.json, and the
// directory is fsynced. Thread-safety: plain functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agents/supervisor.h"
#include "core/clock.h"
#include "core/result.h"

namespace cb {

struct AgentState {
  std::optional<std::string> owner;
  std::vector<PersistedService> services;
};

nlohmann::json StateToJson(const AgentState& s, WallTime now);
// Failure: kInvalidArgument naming the key path that is wrong.
Result<AgentState> StateFromJson(const nlohmann::json& j);

// STATE_DIR/state.json
std::string StatePath(const std::string& state_dir);

// Atomic write (tmp + fsync + rename + fsync dir). Failure: kIo/kPermissionDenied naming the
// file and the step.
Result<void> SaveState(const std::string& state_dir, const AgentState& s, WallTime now);

struct LoadedState {
  AgentState state;              // empty when there was no (usable) file
  std::string corrupt_moved_to;  // non-empty: the corrupt file was moved here
  std::string corrupt_reason;    // why it was found corrupt
};
// Reads STATE_DIR/state.json. Missing: an empty state. Corrupt (not JSON, wrong shape, an
// invalid service): moved aside to state.json.corrupt-<YYYYmmddTHHMMSSZ> and reported in the
// result; still success. Failure only when the file cannot be read or moved (kIo).
Result<LoadedState> LoadState(const std::string& state_dir, WallTime now);

// The ExitStatus <-> JSON mapping shared with the RPC server:
// {"code": N} | {"signal": "KILL"} | {"unknown": true}.
nlohmann::json ExitStatusToJson(const ExitStatus& e);

}  // namespace cb
