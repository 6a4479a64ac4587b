#include "controlplane/db/schema.h"

#include "controlplane/db/sql.h"

#include <cstdlib>

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {
namespace {

// 'cbct' as a 32-bit key class, so cbctl locks do not collide with the application's.
constexpr int kLockClass = 1667392372;

const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> m = {
      // v1
      R"SQL(
CREATE TABLE cbctl.operations (
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  target text NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled')),
  step text NOT NULL DEFAULT '',
  params jsonb NOT NULL DEFAULT '{}',
  error text,
  cancel_requested boolean NOT NULL DEFAULT false,
  runner_pid int,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz);
CREATE UNIQUE INDEX operations_one_open ON cbctl.operations (kind, target) WHERE status <> 'done';
CREATE TABLE cbctl.operation_steps (
  op_id bigint NOT NULL REFERENCES cbctl.operations(id) ON DELETE CASCADE,
  step text NOT NULL,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now(),
  detail text,
  PRIMARY KEY (op_id, step));
CREATE SEQUENCE cbctl.tune_batch;
CREATE TABLE cbctl.tune_history (
  batch bigint NOT NULL,
  name text NOT NULL,
  previous_auto_conf text,
  previous_setting text,
  new_value text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  restored_at timestamptz,
  PRIMARY KEY (batch, name));
CREATE TABLE cbctl.managed_tables (
  schema_name text NOT NULL,
  table_name text NOT NULL,
  column_name text NOT NULL,
  interval text NOT NULL DEFAULT 'month',
  premake int NOT NULL DEFAULT 4,
  retention text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, table_name));
)SQL",
  };
  return m;
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

Result<bool> SchemaExists(Db& db) {
  CB_TRY(auto v, QueryValue(db, "SELECT to_regclass('cbctl.schema_version') IS NOT NULL"));
  return v == "t";
}

Result<void> EnsureSchema(Db& db) {
  CB_TRY(bool exists, SchemaExists(db));
  if (exists) {
    CB_TRY(auto v, QueryValue(db, "SELECT coalesce(max(version), 0)::text FROM cbctl.schema_version"));
    int have = std::atoi(v.c_str());
    if (have == LatestSchemaVersion()) return Ok();
    if (have > LatestSchemaVersion()) {
      return Err(Code::kFailedPrecondition,
                 "the cbctl schema in this database is version {}, newer than this cbctl knows ({}); upgrade cbctl",
                 have, LatestSchemaVersion());
    }
  }
  auto fail = [&](const Error& e) -> Result<void> {
    (void)db.Exec("ROLLBACK");
    if (e.code == Code::kPermissionDenied) {
      return Err(Code::kPermissionDenied,
                 "cannot create the cbctl schema (insufficient privileges: {}); run once as the database "
                 "owner or a superuser, or GRANT CREATE ON DATABASE to this role",
                 e.message);
    }
    return tl::unexpected(e.Wrap("migrating the cbctl schema"));
  };
  auto r = db.Exec("BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(kLockClass) + ", 0)");
  if (!r) return fail(r.error());
  r = db.Exec(
      "CREATE SCHEMA IF NOT EXISTS cbctl; CREATE TABLE IF NOT EXISTS cbctl.schema_version (version int PRIMARY KEY, "
      "applied_at timestamptz NOT NULL DEFAULT now())");
  if (!r) return fail(r.error());
  int have = 0;
  if (auto v = QueryValue(db, "SELECT coalesce(max(version), 0)::text FROM cbctl.schema_version"); !v) {
    return fail(v.error());
  } else {
    have = std::atoi(v.value().c_str());
  }
  for (int i = have; i < LatestSchemaVersion(); ++i) {
    r = db.Exec(Migrations()[i]);
    if (!r) return fail(r.error());
    r = db.Exec("INSERT INTO cbctl.schema_version(version) VALUES (" + std::to_string(i + 1) + ")");
    if (!r) return fail(r.error());
  }
  r = db.Exec("COMMIT");
  if (!r) return fail(r.error());
  return Ok();
}

std::string LockKeySql(const std::string& kind, const std::string& target) {
  return std::to_string(kLockClass) + ", hashtext(" + QuoteLiteral(kind + ":" + target) + ")";
}

std::string LockHolder::Describe() const {
  std::string s = "pid " + std::to_string(pid);
  if (!application_name.empty()) s += " (application " + application_name + ")";
  if (!client.empty()) s += " from " + client;
  if (!since.empty()) s += " since " + since;
  return s;
}

Result<std::optional<LockHolder>> OpLock::Holder(Db& db, const std::string& kind, const std::string& target) {
  CB_TRY(bool schema, SchemaExists(db));
  std::string since_op = schema ? "(SELECT to_char(o.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM "
                                  "cbctl.operations o WHERE o.kind = " + QuoteLiteral(kind) + " AND o.target = " +
                                  QuoteLiteral(target) + " AND o.status = 'running' AND o.runner_pid = a.pid LIMIT 1)"
                                : "NULL";
  CB_TRY(auto r, db.Exec("SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket') AS client, "
                         "coalesce(" + since_op + ", to_char(a.backend_start AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) AS since, a.state, left(a.query, 200) AS query "
                         "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                         "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                         "AND l.classid = " + std::to_string(kLockClass) + "::oid "
                         "AND l.objid = (hashtext(" + QuoteLiteral(kind + ":" + target) +
                         ")::bigint & 4294967295)::oid AND l.database = "
                         "(SELECT oid FROM pg_database WHERE datname = current_database())"));
  if (r.empty()) return std::optional<LockHolder>();
  LockHolder h;
  h.pid = static_cast<int>(r.GetInt(0, "pid"));
  h.application_name = r.Get(0, "application_name");
  h.client = r.Get(0, "client");
  h.since = r.Get(0, "since");
  h.state = r.Get(0, "state");
  h.query = r.Get(0, "query");
  return std::optional<LockHolder>(h);
}

Result<OpLock> OpLock::Acquire(Db& db, const std::string& kind, const std::string& target, bool wait,
                               const std::function<void(const LockHolder&)>& on_wait) {
  CB_TRY(auto got, QueryValue(db, "SELECT pg_try_advisory_lock(" + LockKeySql(kind, target) + ")"));
  if (got == "t") return OpLock(&db, kind, target);
  CB_TRY(auto holder, Holder(db, kind, target));
  if (!wait) {
    if (!holder) {
      return Err(Code::kConflict, "{} of {} is locked by another session (it ended just now; retry)", kind, target);
    }
    return Err(Code::kConflict, "{} of {} is already running: locked by {}; wait for it, cancel it with "
               "`cbctl db cancel {}`, or run without --no-wait to wait", kind, target, holder->Describe(), target);
  }
  if (holder && on_wait) on_wait(*holder);
  CB_TRY_VOID(db.Exec("SELECT pg_advisory_lock(" + LockKeySql(kind, target) + ")"));
  return OpLock(&db, kind, target);
}

Result<void> OpLock::Release() {
  if (!db_) return Ok();
  auto r = db_->Exec("SELECT pg_advisory_unlock(" + LockKeySql(kind_, target_) + ")");
  db_ = nullptr;
  if (!r) return tl::unexpected(r.error());
  return Ok();
}

}  // namespace cb::db
