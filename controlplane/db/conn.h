// Connections to the Codebolt Postgres database for the `cbctl db …` operations (libcbdb).
//
// Where the connection comes from, in order: --db-url, the spec's `database.url`, then the
// libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE, …). The password never
// comes from a flag value: it is read from --password-file or the spec's `password_file`
// (the whole file, trailing newline stripped), or libpq reads PGPASSFILE / ~/.pgpass itself.
// A URL that carries a password is accepted with a warning. Every printed URL has its password
// replaced by "****" (Redacted()).
//
// Db is the seam every db operation goes through: real = libpq via libpqxx (in conn.cc only),
// tests may wrap it to inject a fault. Statements run in autocommit; a transaction is
// "BEGIN" … "COMMIT" sent through Exec. Errors are values: SQL errors keep their SQLSTATE.
//
// Thread-safety: a Db is used by one thread at a time. ConnParams is a plain value.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cb::db {

// A parsed postgres:// or postgresql:// URL, or libpq keyword/value pairs.
struct ConnParams {
  std::map<std::string, std::string> kv;   // libpq keywords: host, port, user, dbname, password, sslmode, …
  std::string source = "environment";      // where it came from, for messages: "--db-url", "spec", "environment"
  std::vector<std::string> warnings;       // e.g. "the URL carries a password; use --password-file"
  std::string application_name = "cbctl"; // shown in pg_stat_activity

  // Conninfo string "host='…' port='…'" with values quoted for libpq. Contains the password.
  std::string ConnInfo() const;
  // Human-readable, password replaced: "postgresql://app:****@db:5432/codebolt" or "(PG environment)".
  std::string Redacted() const;
};

// Parses "postgresql://user:pass@host:port/db?sslmode=require" (percent-decoding; host may be
// a unix-socket dir in %2F form or as ?host=/dir). Error kInvalidArgument names the problem.
Result<ConnParams> ParseDbUrl(std::string_view url);
// Replaces the password of a URL (if any) by "****"; any string that is not a URL is returned as is.
std::string RedactUrl(std::string_view url);

// Where to look for the connection. Empty fields are not used.
struct ConnSource {
  std::string db_url;          // --db-url
  std::string password_file;   // --password-file
  std::string spec_file;       // -f fleet.yaml: database.url and database.password_file
};
// Resolves the sources into ConnParams (not connecting). Reads the password file (must be a
// regular file; a group/world-readable one adds a warning). Errors say which source is wrong.
Result<ConnParams> ResolveConn(const ConnSource& src);

// The spec's database.partitioning section ({tables, interval, premake, retention}), for
// `db maintain -f fleet.yaml` and cbctld. Missing section: empty tables. Bad values: an error
// naming the key.
struct SpecPartitioning {
  std::vector<std::string> tables;
  std::string interval = "month";
  int premake = 4;
  std::string retention;  // "" = keep forever
};
Result<SpecPartitioning> ReadSpecPartitioning(const std::string& spec_file);

// One result set. Values are text as Postgres sends them; NULL is nullopt.
struct Rows {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  int64_t affected = 0;

  size_t size() const { return rows.size(); }
  bool empty() const { return rows.empty(); }
  // Column index by name; -1 when absent.
  int Col(std::string_view name) const;
  // Text of row r column name ("" for NULL or a missing column).
  std::string Get(size_t r, std::string_view name) const;
  bool IsNull(size_t r, std::string_view name) const;
  int64_t GetInt(size_t r, std::string_view name, int64_t dflt = 0) const;
  double GetDouble(size_t r, std::string_view name, double dflt = 0) const;
  bool GetBool(size_t r, std::string_view name) const;
};

// SQLSTATE of an Error produced by Db::Exec, taken from the message prefix "[SQLSTATE xxxxx]";
// "" when it is not an SQL error.
std::string SqlState(const Error& e);

class Db {
 public:
  virtual ~Db() = default;
  // Runs one statement (or several separated by ';' when no result is needed).
  // Error codes: kPermissionDenied (42501), kNotFound (42P01 undefined table, 42703 column),
  // kTimeout (55P03 lock not available / lock_timeout), kCancelled (57014), kUnavailable
  // (connection lost or server shutting down), kInvalidArgument (other SQL errors).
  // The message is "[SQLSTATE xxxxx] <server message>".
  virtual Result<Rows> Exec(std::string_view sql) = 0;
  // The server process id of this session (pg_backend_pid()).
  virtual int BackendPid() const = 0;
  // Whether the connection is still usable.
  virtual bool IsOpen() const = 0;
  // Asks the server to cancel the statement running on this connection; safe to call from
  // another thread while Exec runs (libpq PQcancel). No effect when nothing runs.
  virtual void CancelCurrent() = 0;
  // Drops the connection at once (no COMMIT, no unlock): simulates a killed client.
  virtual void Abandon() = 0;
  // Where this connection goes, password redacted.
  virtual std::string Describe() const = 0;
};

// Opens a real connection (libpqxx), sets application_name, client_min_messages=warning and
// TimeZone=UTC. Connection failure: kUnavailable, or kUnauthenticated for a rejected password,
// with the redacted target in the message.
Result<std::unique_ptr<Db>> Connect(const ConnParams& params);

// Runs `sql` and returns the first column of the first row ("" when no row / NULL).
Result<std::string> QueryValue(Db& db, std::string_view sql);

}  // namespace cb::db
