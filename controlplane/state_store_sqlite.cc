// SQLite implementation of StateStore (C API). See state_store.h.
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

#include "controlplane/state_store.h"

namespace cb::cp {

wire::TokenInfo TokenRecord::ToInfo() const {
  wire::TokenInfo t;
  t.id = id;
  t.name = name;
  t.scope = scope;
  t.created_at = created_at;
  t.created_by = created_by;
  if (!revoked_at.empty()) t.revoked_at = revoked_at;
  if (!last_used_at.empty()) t.last_used_at = last_used_at;
  return t;
}

namespace {

// Forward-only migrations: kMigrations[i] brings the schema from version i to i+1.
constexpr const char* kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE specs (
  generation INTEGER PRIMARY KEY,
  yaml TEXT NOT NULL,
  applied_at TEXT NOT NULL,
  applied_by TEXT NOT NULL
);
CREATE TABLE hosts (
  name TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  transport TEXT NOT NULL,
  socket TEXT NOT NULL DEFAULT '',
  reachable INTEGER NOT NULL DEFAULT 0,
  agent TEXT NOT NULL DEFAULT '',
  protocol INTEGER NOT NULL DEFAULT 0,
  agent_pid INTEGER NOT NULL DEFAULT 0,
  last_seen TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE observed (
  host TEXT NOT NULL,
  name TEXT NOT NULL,
  status_json TEXT NOT NULL,
  observed_at TEXT NOT NULL,
  PRIMARY KEY (host, name)
);
CREATE TABLE overrides (
  host TEXT NOT NULL,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  set_by TEXT NOT NULL,
  set_at TEXT NOT NULL,
  PRIMARY KEY (host, name)
);
CREATE TABLE tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  scope TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  revoked_at TEXT NOT NULL DEFAULT '',
  last_used_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  result TEXT NOT NULL,
  status INTEGER NOT NULL,
  detail TEXT NOT NULL
);
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
};
constexpr int kVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, const std::string& s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(st_); }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }
  int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  int rc_ = SQLITE_OK;
};

class SqliteStore final : public StateStore {
 public:
  SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  Result<void> Migrate() {
    std::lock_guard lk(mu_);
    CB_TRY_VOID(Exec("PRAGMA journal_mode=WAL;"));
    CB_TRY_VOID(Exec("PRAGMA synchronous=NORMAL;"));
    CB_TRY_VOID(Exec("PRAGMA foreign_keys=ON;"));
    CB_TRY_VOID(Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"));
    int64_t version = 0;
    {
      Stmt s(db_, "SELECT MAX(version) FROM schema_version");
      if (!s.prepared()) return Fail("read schema_version");
      if (s.step() == SQLITE_ROW) version = s.i64(0);
    }
    if (version > kVersion) {
      return Err(Code::kFailedPrecondition,
                 "{}: schema version {} is newer than this cbctld knows ({}); upgrade cbctld", path_,
                 version, kVersion);
    }
    for (int64_t v = version; v < kVersion; ++v) {
      CB_TRY_VOID(Exec("BEGIN IMMEDIATE;"));
      auto r = Exec(kMigrations[v]);
      if (r) r = Exec(fmt::format("INSERT INTO schema_version(version) VALUES ({});", v + 1).c_str());
      if (!r) {
        (void)Exec("ROLLBACK;");
        return Err(r.error().Wrap(fmt::format("migrating schema to version {}", v + 1)));
      }
      CB_TRY_VOID(Exec("COMMIT;"));
    }
    return Ok();
  }

  Result<std::optional<StoredSpec>> CurrentSpec() override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT generation, yaml, applied_at, applied_by FROM specs ORDER BY generation DESC LIMIT 1");
    if (!s.prepared()) return Fail("read spec");
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<StoredSpec>();
    if (rc != SQLITE_ROW) return Fail("read spec");
    return std::optional<StoredSpec>(StoredSpec{s.i64(0), s.text(1), s.text(2), s.text(3)});
  }

  Result<int64_t> PutSpec(int64_t expected, const std::string& yaml, const std::string& actor,
                          const std::string& at) override {
    std::lock_guard lk(mu_);
    CB_TRY_VOID(Exec("BEGIN IMMEDIATE;"));
    int64_t current = 0;
    {
      Stmt s(db_, "SELECT COALESCE(MAX(generation), 0) FROM specs");
      if (!s.prepared() || s.step() != SQLITE_ROW) {
        (void)Exec("ROLLBACK;");
        return Fail("read spec generation");
      }
      current = s.i64(0);
    }
    if (current != expected) {
      (void)Exec("ROLLBACK;");
      return Err(Code::kConflict,
                 "spec changed since it was planned: current generation is {}, the plan was made "
                 "against {}; plan again",
                 current, expected);
    }
    {
      Stmt s(db_, "INSERT INTO specs(generation, yaml, applied_at, applied_by) VALUES (?, ?, ?, ?)");
      s.bind(1, current + 1).bind(2, yaml).bind(3, at).bind(4, actor);
      if (!s.prepared() || s.step() != SQLITE_DONE) {
        auto e = Fail("store spec");
        (void)Exec("ROLLBACK;");
        return e;
      }
    }
    CB_TRY_VOID(Exec("COMMIT;"));
    return current + 1;
  }

  Result<void> UpsertHost(const HostRecord& h) override {
    std::lock_guard lk(mu_);
    Stmt s(db_,
           "INSERT OR REPLACE INTO hosts(name, address, transport, socket, reachable, agent, "
           "protocol, agent_pid, last_seen, last_error) VALUES (?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, h.name).bind(2, h.address).bind(3, h.transport).bind(4, h.socket);
    s.bind(5, int64_t{h.reachable ? 1 : 0}).bind(6, h.agent).bind(7, int64_t{h.protocol});
    s.bind(8, h.agent_pid).bind(9, h.last_seen).bind(10, h.last_error);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("store host " + h.name);
    return Ok();
  }

  Result<std::vector<HostRecord>> ListHosts() override {
    std::lock_guard lk(mu_);
    Stmt s(db_,
           "SELECT name, address, transport, socket, reachable, agent, protocol, agent_pid, "
           "last_seen, last_error FROM hosts ORDER BY name");
    if (!s.prepared()) return Fail("list hosts");
    std::vector<HostRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      HostRecord h;
      h.name = s.text(0);
      h.address = s.text(1);
      h.transport = s.text(2);
      h.socket = s.text(3);
      h.reachable = s.i64(4) != 0;
      h.agent = s.text(5);
      h.protocol = static_cast<int>(s.i64(6));
      h.agent_pid = s.i64(7);
      h.last_seen = s.text(8);
      h.last_error = s.text(9);
      out.push_back(std::move(h));
    }
    if (rc != SQLITE_DONE) return Fail("list hosts");
    return out;
  }

  Result<void> DeleteHost(const std::string& name) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "DELETE FROM hosts WHERE name = ?");
    s.bind(1, name);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("delete host " + name);
    return Ok();
  }

  Result<void> ReplaceObserved(const std::string& host,
                               const std::vector<ObservedService>& services) override {
    std::lock_guard lk(mu_);
    CB_TRY_VOID(Exec("BEGIN IMMEDIATE;"));
    auto r = [&]() -> Result<void> {
      Stmt d(db_, "DELETE FROM observed WHERE host = ?");
      d.bind(1, host);
      if (!d.prepared() || d.step() != SQLITE_DONE) return Fail("clear observed");
      for (const auto& o : services) {
        Stmt s(db_, "INSERT OR REPLACE INTO observed(host, name, status_json, observed_at) VALUES (?,?,?,?)");
        s.bind(1, host).bind(2, o.name).bind(3, o.status_json).bind(4, o.observed_at);
        if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("store observed " + o.name);
      }
      return Ok();
    }();
    if (!r) {
      (void)Exec("ROLLBACK;");
      return r;
    }
    return Exec("COMMIT;");
  }

  Result<std::vector<ObservedService>> ListObserved() override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT host, name, status_json, observed_at FROM observed ORDER BY host, name");
    if (!s.prepared()) return Fail("list observed");
    std::vector<ObservedService> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
    if (rc != SQLITE_DONE) return Fail("list observed");
    return out;
  }

  Result<void> SetOverride(const OverrideRecord& o) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO overrides(host, name, state, set_by, set_at) VALUES (?,?,?,?,?)");
    s.bind(1, o.host).bind(2, o.name).bind(3, o.state).bind(4, o.set_by).bind(5, o.set_at);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("store override");
    return Ok();
  }

  Result<bool> ClearOverride(const std::string& host, const std::string& name) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "DELETE FROM overrides WHERE host = ? AND name = ?");
    s.bind(1, host).bind(2, name);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("clear override");
    return sqlite3_changes(db_) > 0;
  }

  Result<std::vector<OverrideRecord>> ListOverrides() override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT host, name, state, set_by, set_at FROM overrides ORDER BY host, name");
    if (!s.prepared()) return Fail("list overrides");
    std::vector<OverrideRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4)});
    }
    if (rc != SQLITE_DONE) return Fail("list overrides");
    return out;
  }

  Result<TokenRecord> CreateToken(const std::string& name, const std::string& scope,
                                  const std::string& hash, const std::string& created_by,
                                  const std::string& at) override {
    std::lock_guard lk(mu_);
    {
      Stmt s(db_, "SELECT COUNT(*) FROM tokens WHERE name = ? AND revoked_at = ''");
      s.bind(1, name);
      if (!s.prepared() || s.step() != SQLITE_ROW) return Fail("check token name");
      if (s.i64(0) > 0) return Err(Code::kAlreadyExists, "a live token named '{}' exists", name);
    }
    Stmt s(db_, "INSERT INTO tokens(name, scope, hash, created_at, created_by) VALUES (?,?,?,?,?)");
    s.bind(1, name).bind(2, scope).bind(3, hash).bind(4, at).bind(5, created_by);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("create token " + name);
    TokenRecord t;
    t.id = sqlite3_last_insert_rowid(db_);
    t.name = name;
    t.scope = scope;
    t.hash = hash;
    t.created_at = at;
    t.created_by = created_by;
    return t;
  }

  Result<std::optional<TokenRecord>> FindLiveTokenByHash(const std::string& hash) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, std::string(kTokenCols + std::string(" WHERE hash = ? AND revoked_at = ''")).c_str());
    s.bind(1, hash);
    if (!s.prepared()) return Fail("find token");
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<TokenRecord>();
    if (rc != SQLITE_ROW) return Fail("find token");
    return std::optional<TokenRecord>(ReadToken(s));
  }

  Result<std::vector<TokenRecord>> ListTokens() override {
    std::lock_guard lk(mu_);
    Stmt s(db_, std::string(kTokenCols + std::string(" ORDER BY id")).c_str());
    if (!s.prepared()) return Fail("list tokens");
    std::vector<TokenRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(ReadToken(s));
    if (rc != SQLITE_DONE) return Fail("list tokens");
    return out;
  }

  Result<TokenRecord> RevokeToken(const std::string& id_or_name, const std::string& at) override {
    std::lock_guard lk(mu_);
    bool numeric = !id_or_name.empty() &&
                   id_or_name.find_first_not_of("0123456789") == std::string::npos && id_or_name.size() < 18;
    std::optional<TokenRecord> found;
    {
      std::string sql = kTokenCols + std::string(numeric ? " WHERE id = ?" : " WHERE name = ? ORDER BY revoked_at = '' DESC, id DESC LIMIT 1");
      Stmt s(db_, sql.c_str());
      if (numeric) {
        s.bind(1, static_cast<int64_t>(std::strtoll(id_or_name.c_str(), nullptr, 10)));
      } else {
        s.bind(1, id_or_name);
      }
      if (!s.prepared()) return Fail("find token");
      int rc = s.step();
      if (rc == SQLITE_ROW) found = ReadToken(s);
      else if (rc != SQLITE_DONE) return Fail("find token");
    }
    if (!found) return Err(Code::kNotFound, "no token with id or name '{}'", id_or_name);
    if (!found->revoked_at.empty()) {
      return Err(Code::kFailedPrecondition, "token '{}' (id {}) was already revoked at {}", found->name,
                 found->id, found->revoked_at);
    }
    Stmt u(db_, "UPDATE tokens SET revoked_at = ? WHERE id = ?");
    u.bind(1, at).bind(2, found->id);
    if (!u.prepared() || u.step() != SQLITE_DONE) return Fail("revoke token");
    found->revoked_at = at;
    return *found;
  }

  Result<void> TouchToken(int64_t id, const std::string& at) override {
    std::lock_guard lk(mu_);
    Stmt u(db_, "UPDATE tokens SET last_used_at = ? WHERE id = ?");
    u.bind(1, at).bind(2, id);
    if (!u.prepared() || u.step() != SQLITE_DONE) return Fail("touch token");
    return Ok();
  }

  Result<int64_t> AppendAudit(const wire::AuditEntry& e) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "INSERT INTO audit(at, actor, action, target, result, status, detail) VALUES (?,?,?,?,?,?,?)");
    s.bind(1, e.at).bind(2, e.actor).bind(3, e.action).bind(4, e.target).bind(5, e.result);
    s.bind(6, int64_t{e.status}).bind(7, e.detail);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("append audit");
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
  }

  Result<std::vector<wire::AuditEntry>> ListAudit(int limit) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT id, at, actor, action, target, result, status, detail FROM audit ORDER BY id DESC LIMIT ?");
    s.bind(1, int64_t{limit});
    if (!s.prepared()) return Fail("list audit");
    std::vector<wire::AuditEntry> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      wire::AuditEntry e;
      e.id = s.i64(0);
      e.at = s.text(1);
      e.actor = s.text(2);
      e.action = s.text(3);
      e.target = s.text(4);
      e.result = s.text(5);
      e.status = static_cast<int>(s.i64(6));
      e.detail = s.text(7);
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return Fail("list audit");
    return out;
  }

  Result<std::optional<std::string>> GetMeta(const std::string& key) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT value FROM meta WHERE key = ?");
    s.bind(1, key);
    if (!s.prepared()) return Fail("read meta");
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return Fail("read meta");
    return std::optional<std::string>(s.text(0));
  }

  Result<void> SetMeta(const std::string& key, const std::string& value) override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
    s.bind(1, key).bind(2, value);
    if (!s.prepared() || s.step() != SQLITE_DONE) return Fail("write meta");
    return Ok();
  }

 private:
  static constexpr const char* kTokenCols =
      "SELECT id, name, scope, hash, created_at, created_by, revoked_at, last_used_at FROM tokens";
  static TokenRecord ReadToken(const Stmt& s) {
    TokenRecord t;
    t.id = s.i64(0);
    t.name = s.text(1);
    t.scope = s.text(2);
    t.hash = s.text(3);
    t.created_at = s.text(4);
    t.created_by = s.text(5);
    t.revoked_at = s.text(6);
    t.last_used_at = s.text(7);
    return t;
  }

  tl::unexpected<Error> Fail(const std::string& what) {
    return Err(Code::kIo, "{}: {}: {}", path_, what, sqlite3_errmsg(db_));
  }
  Result<void> Exec(const char* sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      std::string m = msg ? msg : sqlite3_errstr(rc);
      sqlite3_free(msg);
      return Err(Code::kIo, "{}: {}", path_, m);
    }
    return Ok();
  }

  std::mutex mu_;
  sqlite3* db_;
  std::string path_;
};

}  // namespace

int SqliteSchemaVersion() { return kVersion; }

Result<std::unique_ptr<StateStore>> OpenSqliteStateStore(const std::string& state_dir, bool create) {
  std::string path = state_dir + "/cbctld.db";
  struct stat st {};
  if (!create && ::stat(path.c_str(), &st) != 0) {
    return Err(Code::kNotFound, "{} does not exist: run `cbctld init --state-dir {}` first", path,
               state_dir);
  }
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Err(Code::kIo, "open {}: {}", path, m);
  }
  sqlite3_busy_timeout(db, 5000);
  ::chmod(path.c_str(), 0600);
  auto store = std::make_unique<SqliteStore>(db, path);
  CB_TRY_VOID(store->Migrate());
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace cb::cp
