// `cbctl db partition TABLE`: converts a live, unpartitioned table into a monthly
// range-partitioned one without blocking writers for more than a short swap.
//
// Design (constant-time swap; see TEST-PEERS.md for the measured facts it relies on):
//   1 shell     CREATE TABLE <t>_cbctl_new (LIKE <t> …) PARTITION BY RANGE (col), with the
//               primary key / unique constraints (extended with col when they lack it — then
//               uniqueness is per partition, and the report says so), the other indexes, foreign
//               keys, an empty DEFAULT partition and `premake` monthly partitions from the
//               cut-over month; owner, grants and comment copied. One transaction, no lock on <t>.
//   2 bound     ALTER TABLE <t> ADD CONSTRAINT <t>_cbctl_bound CHECK (col IS NOT NULL AND col <
//               cutover) NOT VALID  (brief lock, lock_timeout + retry)
//   3 validate  VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: writers keep writing)
//   4 index     CREATE UNIQUE INDEX CONCURRENTLY on <t> (pk cols…, col) for each PK/unique
//               constraint lacking col (an invalid leftover of a killed run is dropped and rebuilt)
//   5 swap      one transaction with lock_timeout, retried: LOCK <t>; turn the new indexes
//               into UNIQUE constraints (the original PK/unique constraints and their indexes
//               stay on <t>_old, renamed *_old: dropping them would unlink index files inside
//               the lock, a cost that grows with the table); rename <t> to <t>_old; move identity (sequence
//               value) / serial sequence ownership; ATTACH <t>_old FOR VALUES FROM (MINVALUE) TO
//               (cutover) — no scan, the validated CHECK implies it; rename the shell to <t>;
//               journal the step. Writers wait only for this (milliseconds, not size-dependent).
//   6 finish    ANALYZE the new empty partitions, register the table for `db maintain`.
// The cut-over month is the first month boundary at least 7 days after max(now, max(col)):
// every row already there and every row written during the run (now()) lands below it, and
// late rows for any earlier month go to <t>_old, whose range covers everything below it.
// Rows written during steps 2–5 with a timestamp at or beyond the cut-over are refused by the
// CHECK (they would not fit <t>_old); the 7-day margin keeps ordinary writers clear of it.
//
// Every step is journaled in cbctl.operations / cbctl.operation_steps and is idempotent (checks
// the catalog first), so a run killed at any point is finished by running the command again,
// from any machine. A second run on the same table waits for (or with wait_lock=false reports)
// the advisory lock holder. Cancelling (the `cancel` flag, Ctrl-C in cbctl, or `cbctl db cancel`
// from anywhere) stops the current statement; the table stays consistent and resumable.
//
// Refused, with the reason and what to do: missing table/column, a column that is not
// timestamptz/timestamp/date or allows NULLs, a table referenced by foreign keys, a table with
// user triggers or dependent views, a unique index (not constraint) lacking the column,
// insufficient privileges (must own the table and have CREATE on its schema).
//
// Thread-safety: Partition() uses the Db it is given from the calling thread; `cancel` may be
// set from any thread (a signal handler included).
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/db/conn.h"
#include "core/clock.h"
#include "core/result.h"

namespace cb::db {

struct PartitionProgress {
  int step = 0;         // 1-based
  double fraction = -1; // 0..1 when known (index builds), else -1
  double eta_s = -1;    // seconds left when known, else -1
  int steps = 0;
  std::string name;     // "validate"
  std::string message;  // what is happening ("waiting for lock, attempt 3")
  double elapsed_s = 0; // in this step
};

struct PartitionOptions {
  std::string table;             // as typed: event_log, app."Event Log"
  std::string column;            // empty: the only timestamp column
  std::string interval = "month";// only "month" is supported
  int premake = 4;               // future monthly partitions created up front
  std::string retention;         // e.g. "12mo"; stored for `db maintain`; empty = keep forever
  bool dry_run = false;          // print the statements, change nothing (not even the cbctl schema)
  // Then move the old rows into monthly partitions, newest month first, one transaction per
  // month. Each holds an ACCESS EXCLUSIVE lock on the whole table (readers and writers wait)
  // while it copies and deletes that month's rows, re-checks the remaining old rows and builds
  // the new partition's indexes: seconds per million rows. Resumable month by month.
  bool split_old = false;
  bool wait_lock = true;         // false: a concurrent run makes this fail naming the holder
  int lock_timeout_ms = 100;     // per attempt, for every statement that locks the table
  int lock_attempts = 60;        // then the step fails (kTimeout), resumable
  int long_xact_warn_s = 5;      // transactions older than this are reported before locking
  const std::atomic<bool>* cancel = nullptr;                      // set to cancel
  std::function<void(const PartitionProgress&)> on_progress;       // step starts / waits / index progress
  // Optional second connection to the same database: while an index is built, its progress
  // (pg_stat_progress_create_index: blocks or tuples done, ETA) is polled through it every
  // 500 ms and reported through on_progress (from a helper thread). nullptr: no polling.
  Db* progress_db = nullptr;
  std::function<void(const std::string&)> on_note;                 // warnings and notes as they happen
  // Test seam: called after each step is journaled; returning false stops the run at once
  // without any cleanup (the connection is abandoned), as if the process had been killed.
  std::function<bool(const std::string& step)> after_step;
};

struct PartitionReport {
  std::string table;                    // "public"."event_log"
  std::string column;
  std::string cutover;                  // "2027-01-01 00:00:00+00"
  std::string old_partition;            // "public"."event_log_old": the partition holding the old rows
  bool already_partitioned = false;     // nothing was changed
  bool resumed = false;                 // continued an earlier run
  std::vector<std::string> statements;  // dry run: every statement, in order
  std::vector<std::string> notes;       // e.g. "primary key (id) extended to (id, created_at)"
  struct StepTiming {
    std::string name;
    double seconds = 0;
    int lock_attempts = 0;
    bool skipped = false;  // done by an earlier run
  };
  std::vector<StepTiming> steps;
  double swap_lock_ms = 0;  // BEGIN..COMMIT of the successful swap transaction (the table lock is held within it)
};

// Names of the steps, in order.
const std::vector<std::string>& PartitionSteps();

// Start of the cut-over month: first month boundary at least `margin_days` after `latest`
// (the later of now and max(column)), UTC. Pure.
WallTime CutoverMonth(WallTime latest, int margin_days = 7);
// "2027-01-01 00:00:00" (UTC) for a month start.
std::string FormatMonth(WallTime month_start);
// Adds n calendar months to a month start (n may be negative). Pure.
WallTime AddMonths(WallTime month_start, int n);
// Start of the month containing t (UTC). Pure.
WallTime MonthStart(WallTime t);
// "12mo", "1y", "90d" -> months (days rounded up to months, 30-day months). Error for other text.
Result<int> ParseRetentionMonths(const std::string& text);

Result<PartitionReport> Partition(Db& db, const PartitionOptions& opts, Clock& clock);

// Marks the running partition operation on `table` as cancel-requested and cancels the
// statement its runner is executing (pg_cancel_backend on the lock holder). Returns a message
// describing what was cancelled; kNotFound when nothing is running.
Result<std::string> CancelOperation(Db& db, const std::string& table);

}  // namespace cb::db
