// cbctld's two commands as library functions (main.cc only parses flags):
//   InitStateDir — `cbctld init`: creates the state store and the first admin token.
//   Serve        — `cbctld serve`: the API server plus the reconcile loop until stopped.
// Thread-safety: call from the main thread; Serve watches `stop` (set it from a signal handler).
#pragma once

#include <atomic>
#include <string>

#include "controlplane/api_server.h"
#include "core/clock.h"
#include "core/result.h"

namespace cb::cp {

inline constexpr std::string_view kCbctldVersion = "0.1.0";

// Creates DIR (0700) and DIR/cbctld.db, a state id, and an admin token named "admin" written
// 0600 to DIR/admin.token. Returns the token secret (the caller prints it once).
// kAlreadyExists when DIR/cbctld.db exists.
Result<std::string> InitStateDir(const std::string& dir, const Clock& clock);

struct ServeOptions {
  std::string state_dir;
  ApiOptions api;
  Duration reconcile_period = Seconds(10);  // a pass at least this often (and on every change)
  // Scheduled db maintenance of the stored spec's database.partitioning tables (db_maintainer.h):
  // the first pass at start, then one per interval, on its own thread.
  Duration maintain_interval = Seconds(3600);
};

// Opens the store, binds (writing the bound address to DIR/listen.addr), then serves and
// reconciles until `stop` becomes true. Agents and their services are left running.
Result<void> Serve(const ServeOptions& options, const std::atomic<bool>& stop, const Clock& clock);

// One log line to stderr: "<UTC time> cbctld: <message>".
void LogLine(const std::string& message);

}  // namespace cb::cp
