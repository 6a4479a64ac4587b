// StateStore: cbctld's durable state — spec generations, hosts, last observed service status,
// overrides (`svc stop`), API tokens (SHA-256 hashes only) and the audit log.
//
// The interface is shaped so a shared Postgres store can follow: every call is one short
// transaction, generation checks are compare-and-set inside the store, ids are assigned by
// the store, times are ISO 8601 UTC strings produced by the caller (from its Clock).
//
// SqliteStateStore is the embedded default: one file STATE_DIR/cbctld.db, WAL journal,
// forward-only schema migrations recorded in table schema_version (a database written by a
// newer cbctld is refused with both versions named).
//
// Thread-safety: implementations are safe to call from any thread (SqliteStateStore
// serialises calls on one connection with a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/wire.h"

namespace cb::cp {

struct StoredSpec {
  int64_t generation = 0;   // 1, 2, …
  std::string yaml;
  std::string applied_at;
  std::string applied_by;
};

struct HostRecord {
  std::string name;
  std::string address;                 // "local"
  std::string transport = "local";
  std::string socket;                  // agent socket path (local)
  bool reachable = false;
  std::string agent;                   // "cbagent 0.1.0"
  int protocol = 0;
  int64_t agent_pid = 0;
  std::string last_seen;               // "" = never
  std::string last_error;              // "" = none
};

// One service as last read from an agent's `ps` (the ServiceStatus JSON object, verbatim).
struct ObservedService {
  std::string host;
  std::string name;
  std::string status_json;
  std::string observed_at;
};

struct OverrideRecord {
  std::string host;
  std::string name;
  std::string state = "stopped";
  std::string set_by;
  std::string set_at;
};

struct TokenRecord {
  int64_t id = 0;
  std::string name;
  std::string scope;                   // viewer | operator | admin
  std::string hash;                    // hex SHA-256 of the secret
  std::string created_at;
  std::string created_by;
  std::string revoked_at;              // "" = live
  std::string last_used_at;            // "" = never
  wire::TokenInfo ToInfo() const;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // The newest spec generation, or nullopt when none was applied.
  virtual Result<std::optional<StoredSpec>> CurrentSpec() = 0;
  // Stores `yaml` as generation expected+1 when the current generation is `expected` (0 = none
  // yet); otherwise kConflict whose message names both generations. Returns the new generation.
  virtual Result<int64_t> PutSpec(int64_t expected, const std::string& yaml, const std::string& actor,
                                  const std::string& at) = 0;

  virtual Result<void> UpsertHost(const HostRecord& h) = 0;
  virtual Result<std::vector<HostRecord>> ListHosts() = 0;            // by name
  virtual Result<void> DeleteHost(const std::string& name) = 0;

  // Replaces everything observed for `host` with `services`.
  virtual Result<void> ReplaceObserved(const std::string& host,
                                       const std::vector<ObservedService>& services) = 0;
  virtual Result<std::vector<ObservedService>> ListObserved() = 0;    // by host, name

  virtual Result<void> SetOverride(const OverrideRecord& o) = 0;       // insert or replace
  virtual Result<bool> ClearOverride(const std::string& host, const std::string& name) = 0;  // true if there was one
  virtual Result<std::vector<OverrideRecord>> ListOverrides() = 0;

  // kAlreadyExists when a live token has that name.
  virtual Result<TokenRecord> CreateToken(const std::string& name, const std::string& scope,
                                          const std::string& hash, const std::string& created_by,
                                          const std::string& at) = 0;
  // The live (not revoked) token with this hash, or nullopt.
  virtual Result<std::optional<TokenRecord>> FindLiveTokenByHash(const std::string& hash) = 0;
  virtual Result<std::vector<TokenRecord>> ListTokens() = 0;           // by id
  // `id_or_name`: a decimal id or a live token's name. kNotFound when none; revoking twice is
  // kFailedPrecondition.
  virtual Result<TokenRecord> RevokeToken(const std::string& id_or_name, const std::string& at) = 0;
  virtual Result<void> TouchToken(int64_t id, const std::string& at) = 0;

  // Appends an entry (its id is assigned; `e.id` ignored) and returns the id.
  virtual Result<int64_t> AppendAudit(const wire::AuditEntry& e) = 0;
  // Newest first, at most `limit`.
  virtual Result<std::vector<wire::AuditEntry>> ListAudit(int limit) = 0;

  // Small key/value settings (e.g. "state_id", the owner name given to agents).
  virtual Result<std::optional<std::string>> GetMeta(const std::string& key) = 0;
  virtual Result<void> SetMeta(const std::string& key, const std::string& value) = 0;
};

// Opens (creating when `create`) STATE_DIR/cbctld.db and migrates it to the current schema.
// Errors: kNotFound when it does not exist and !create ("run cbctld init"), kIo on SQLite
// errors (with the path), kFailedPrecondition for a schema newer than this binary knows.
Result<std::unique_ptr<StateStore>> OpenSqliteStateStore(const std::string& state_dir, bool create);

// The schema version this binary migrates to.
int SqliteSchemaVersion();

}  // namespace cb::cp
