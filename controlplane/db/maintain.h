// `cbctl db maintain` and `cbctl db vacuum` (also run by cbctld on a schedule for the tables
// the spec's database.partitioning lists). Everything in UTC.
//
// Maintain, per table (the given ones, else every table `db partition` registered in
// cbctl.managed_tables): keeps monthly partitions from the current month up to `premake`
// months ahead; moves rows sitting in the default partition into partitions created for
// their months (one transaction per month, lock_timeout + retry) and reports them as a
// problem — the failure pg_partman users most often discover months late; detaches
// partitions whose upper bound is older than the retention (including <t>_old once all of it
// is), dropping them only with `drop`; analyzes the partitions it created.
// Plan first (PlanMaintain, no change), then RunMaintain executes the plan.
//
// Thread-safety: uses the Db it is given from the calling thread.
#pragma once

#include <string>
#include <vector>

#include "controlplane/db/conn.h"
#include "core/clock.h"
#include "core/result.h"

namespace cb::db {

struct MaintainOptions {
  std::vector<std::string> tables;  // empty: cbctl.managed_tables
  bool skip_unpartitioned = false;  // a named table that is not partitioned is a problem, not an error (spec lists)
  int premake = -1;                 // -1: the table's registered value (4 when not registered)
  std::string retention;            // "": the table's registered value (none: keep forever)
  std::string column;               // for unregistered tables: empty = the partition key column
  bool drop = false;                // drop detached partitions
  int lock_timeout_ms = 100;
  int lock_attempts = 60;
};

struct MaintainAction {
  std::string table;      // "public"."event_log"
  std::string kind;       // create | move-default | detach | drop | analyze
  std::string object;     // the partition
  std::string detail;     // "2027-05-01 .. 2027-06-01", "12 rows", "upper bound 2025-11-01 is past retention 12mo"
  std::vector<std::string> statements;  // run in one transaction (analyze/drop: alone)
  bool done = false;
};

struct MaintainReport {
  std::vector<MaintainAction> actions;
  std::vector<std::string> problems;  // rows found in default partitions, tables not partitioned, …
};

Result<MaintainReport> PlanMaintain(Db& db, const MaintainOptions& opts, WallTime now);
// Executes the plan in order; stops at the first failure (earlier actions stay done; rerunning
// maintain plans what is left).
Result<void> RunMaintain(Db& db, MaintainReport& plan, const MaintainOptions& opts);

struct VacuumOptions {
  std::string table;  // empty: the whole database
  bool analyze = false;
  bool full = false;  // VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock
};
// The statement that will run ("VACUUM (ANALYZE) \"public\".\"t\"").
Result<std::string> VacuumStatement(Db& db, const VacuumOptions& opts);
// Runs it; returns the seconds it took.
Result<double> RunVacuum(Db& db, const VacuumOptions& opts);

}  // namespace cb::db
