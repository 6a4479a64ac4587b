// The `cbctl` schema: cbctl's durable state inside the Codebolt database, so any runner
// (cbctl on any box, or cbctld) can resume an operation or restore a tune.
//
//   cbctl.schema_version   forward-only migrations applied (one row per version)
//   cbctl.operations       journal of long operations (partition, …): kind, target, status,
//                          current step, parameters (json), cancel_requested, error
//   cbctl.operation_steps  one row per finished step of an operation, with timings
//   cbctl.tune_history     settings before each `db tune --apply` batch, for --restore
//   cbctl.managed_tables   tables cbctl partitioned, with interval/premake/retention, for maintain
//
// Migrations only ever add; each runs once, in a transaction, under a transaction-level
// advisory lock so two runners cannot race. Locks between operations are session-level
// advisory locks keyed by (operation, target).
//
// Thread-safety: functions use the Db they are given; one thread per Db.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/db/conn.h"
#include "core/result.h"

namespace cb::db {

// The newest schema version this build knows.
int LatestSchemaVersion();
// Creates/upgrades the cbctl schema. A database whose cbctl schema is newer than this build is
// refused (kFailedPrecondition, naming both versions). Insufficient privileges: kPermissionDenied
// with what to grant.
Result<void> EnsureSchema(Db& db);
// Whether the schema exists (for read-only commands that should not create it).
Result<bool> SchemaExists(Db& db);

// Who holds an operation lock.
struct LockHolder {
  int pid = 0;
  std::string application_name;
  std::string client;          // client address or "local socket"
  std::string since;           // when the holding operation started (journal) or its session began
  std::string state;           // pg_stat_activity.state
  std::string query;           // its current query, cut to 200 chars
  std::string Describe() const;
};

// A session-level advisory lock for (kind, target), e.g. ("partition", "public.event_log").
// Released by Release() or when the session ends (a killed runner never leaves it held).
class OpLock {
 public:
  // wait=true: blocks until free (calls on_wait once first with the current holder, if any).
  // wait=false: returns kConflict "… is locked by pid N (application A) since T" when held.
  static Result<OpLock> Acquire(Db& db, const std::string& kind, const std::string& target, bool wait,
                                const std::function<void(const LockHolder&)>& on_wait = {});
  // Returns the current holder, if any.
  static Result<std::optional<LockHolder>> Holder(Db& db, const std::string& kind, const std::string& target);
  Result<void> Release();
  const std::string& kind() const { return kind_; }
  const std::string& target() const { return target_; }

 private:
  OpLock(Db* db, std::string kind, std::string target) : db_(db), kind_(std::move(kind)), target_(std::move(target)) {}
  Db* db_;
  std::string kind_, target_;
};

// SQL that evaluates to the lock key pair "k1, k2" for (kind, target).
std::string LockKeySql(const std::string& kind, const std::string& target);

}  // namespace cb::db
