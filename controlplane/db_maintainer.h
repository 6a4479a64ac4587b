// DbMaintainer: cbctld's scheduled database maintenance (issue 4 item 4). Every `interval`
// (default 1 h; `cbctld serve --maintain-interval SECONDS`) it reads the stored spec and, when
// its `database` is Postgres and has a `partitioning` section, runs the same library code as
// `cbctl db maintain -f fleet.yaml` (cb::db::PlanMaintain + RunMaintain, in UTC) for the listed
// tables: premake future partitions, move rows found in default partitions (reported as a
// problem), detach partitions past retention. It never drops (drop = false, always).
//
// step(now)-driven: Step runs at most one pass and returns; the daemon calls it from its own
// thread, so a slow or hung database never blocks the API or the reconciler, and passes never
// overlap (one thread; the library's advisory lock also keeps a manual `cbctl db maintain` on
// the same table from running at the same time). The first pass runs at the first Step; the
// next one `interval` after the previous one started. A failure (database unreachable, no
// spec, bad spec) is logged and counted and retried at the next interval; it is never fatal.
//
// Results: one log line per pass (plus one per problem), one audit entry per pass (actor
// "cbctld", action "db maintain"), and metrics (RenderMetrics):
//   cbctld_db_maintain_runs_total{result="ok|error"}         counter
//   cbctld_db_default_partition_rows{table="…"}              gauge: rows the last pass found in the
//                                                             table's default partition (moved out)
//   cbctld_db_maintain_last_success_timestamp_seconds        gauge: unix time of the last good pass
//   cbctld_db_maintain_partitions_created_total / _detached_total   counters
//
// Thread-safety: Step from one thread; RenderMetrics from any thread.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/db/maintain.h"
#include "core/clock.h"
#include "core/result.h"
#include "core/wire.h"

namespace cb::cp {

// What one pass maintains, derived from the stored spec.
struct MaintainJob {
  std::string db_url;         // database.url (Postgres)
  std::string password_file;  // database.password_file ("" = none / PGPASSFILE)
  db::MaintainOptions options;  // tables, premake, retention; skip_unpartitioned; drop = false
};

// From the stored spec text: nullopt when there is nothing to maintain (no spec, SQLite
// database, no `database.partitioning` or no tables). A spec that does not parse: error.
Result<std::optional<MaintainJob>> MaintainJobFromSpec(const std::string& yaml);

struct DbMaintainerOptions {
  Duration interval = Seconds(3600);  // between the starts of two passes
};

class DbMaintainer {
 public:
  // The stored spec text (nullopt when none was applied yet).
  using SpecFn = std::function<Result<std::optional<std::string>>()>;
  // Connects, plans and runs one job at `now` (the seam the unit test fakes). Returns the report
  // with each action's `done`; an error when the pass could not run or stopped.
  using RunFn = std::function<Result<db::MaintainReport>(const MaintainJob&, WallTime now)>;
  using LogFn = std::function<void(const std::string&)>;
  using AuditFn = std::function<void(const wire::AuditEntry&)>;

  DbMaintainer(SpecFn spec, RunFn run, LogFn log, AuditFn audit, DbMaintainerOptions options);

  // Runs a pass when one is due at `mono` (wall time `wall` is what maintenance uses, in UTC).
  // Returns true when a pass was attempted (whatever its result).
  bool Step(MonoTime mono, WallTime wall);
  // When the next pass is due (nullopt before the first Step).
  std::optional<MonoTime> NextDue() const;

  std::string RenderMetrics() const;

  struct Stats {
    int64_t runs_ok = 0, runs_error = 0, created = 0, detached = 0;
    std::optional<WallTime> last_success;
    std::map<std::string, int64_t> default_rows;  // table -> rows found in its default partition
  };
  Stats stats() const;

 private:
  SpecFn spec_;
  RunFn run_;
  LogFn log_;
  AuditFn audit_;
  DbMaintainerOptions options_;
  std::optional<MonoTime> next_due_;
  mutable std::mutex mu_;
  Stats stats_;
};

// The real RunFn: resolves the connection (url + password_file, as `cbctl db` does), connects
// (application_name "cbctld maintain"), PlanMaintain then RunMaintain.
DbMaintainer::RunFn RealMaintainRunner();

}  // namespace cb::cp
