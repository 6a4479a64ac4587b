#include "controlplane/db/partition.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <thread>

#include "controlplane/db/schema.h"
#include "controlplane/db/sql.h"

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {
namespace {

using Json = nlohmann::json;
constexpr char kSep = '\x1f';

std::vector<std::string> SplitSep(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    auto p = s.find(kSep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

std::string JoinQuoted(const std::vector<std::string>& cols) {
  std::string s;
  for (size_t i = 0; i < cols.size(); ++i) s += (i ? ", " : "") + QuoteIdent(cols[i]);
  return s;
}

struct KeyConstraint {
  std::string name;
  char type = 'p';  // 'p' primary key, 'u' unique
  std::vector<std::string> cols;
  bool has_col = false;          // already includes the partition column
  std::string new_index;         // CONCURRENTLY-built index (when !has_col)
};

struct TableInfo {
  std::string oid, schema, table, owner, comment;
  char relkind = 'r';
  bool is_owner = false, can_create = false;
  std::string column, col_type;  // col_type: timestamptz | timestamp | date
  bool col_notnull = false;
  std::vector<KeyConstraint> keys;
  std::vector<std::string> fk_defs;        // "ADD CONSTRAINT name FOREIGN KEY …" for outgoing FKs
  std::vector<std::string> index_defs;     // "USING btree (ts)" for plain indexes
  std::vector<std::string> grants;         // GRANT statements with a {T} placeholder
  std::string identity_col, identity_kind, identity_seq;  // kind: ALWAYS | BY DEFAULT
  std::vector<std::pair<std::string, std::string>> serials;  // (col, sequence regclass text)
};

struct Names {
  std::string t, shell, old, dflt, bound;
  std::string qt, qshell, qold, qdflt;  // qualified, quoted
};

Names MakeNames(const std::string& schema, const std::string& table) {
  Names n;
  n.t = table;
  n.shell = DerivedName(table, "_cbctl_new");
  n.old = DerivedName(table, "_old");
  n.dflt = DerivedName(table, "_default");
  n.bound = DerivedName(table, "_cbctl_bound");
  n.qt = QualifiedName(schema, table);
  n.qshell = QualifiedName(schema, n.shell);
  n.qold = QualifiedName(schema, n.old);
  n.qdflt = QualifiedName(schema, n.dflt);
  return n;
}

std::string BoundLiteral(const std::string& col_type, WallTime month) {
  std::string m = FormatMonth(month);
  if (col_type == "date") return QuoteLiteral(m.substr(0, 10));
  if (col_type == "timestamptz") return QuoteLiteral(m + "+00");
  return QuoteLiteral(m);
}

std::string PartName(const std::string& table, WallTime month) {
  std::string m = FormatMonth(month);  // 2027-01-01 …
  return DerivedName(table, "_p" + m.substr(0, 4) + "_" + m.substr(5, 2));
}

// Column types accepted as the partition key, normalized.
std::string NormalizeType(const std::string& t) {
  if (t == "timestamp with time zone") return "timestamptz";
  if (t == "timestamp without time zone") return "timestamp";
  if (t == "date") return "date";
  return "";
}

Result<TableInfo> Inspect(Db& db, const TableName& tn, const std::string& column_opt) {
  std::string reg = tn.schema.empty() ? QuoteIdent(tn.table) : QualifiedName(tn.schema, tn.table);
  std::string shown = tn.schema.empty() ? tn.table : tn.schema + "." + tn.table;
  CB_TRY(auto r, db.Exec(
                     "SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, "
                     "pg_has_role(current_user, c.relowner, 'USAGE') AS is_owner, "
                     "has_schema_privilege(c.relnamespace, 'CREATE') AS can_create, "
                     "obj_description(c.oid, 'pg_class') AS comment "
                     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(" +
                     QuoteLiteral(reg) + ")"));
  if (r.empty()) {
    return Err(Code::kNotFound, "table '{}' does not exist{}; check the name (quote mixed-case names: '\"MyTable\"')",
               shown, tn.schema.empty() ? " in the search_path" : "");
  }
  TableInfo ti;
  ti.oid = r.Get(0, "oid");
  ti.schema = r.Get(0, "nspname");
  ti.table = r.Get(0, "relname");
  ti.relkind = r.Get(0, "relkind").empty() ? 'r' : r.Get(0, "relkind")[0];
  ti.owner = r.Get(0, "owner");
  ti.is_owner = r.GetBool(0, "is_owner");
  ti.can_create = r.GetBool(0, "can_create");
  ti.comment = r.Get(0, "comment");
  bool has_comment = !r.IsNull(0, "comment");
  if (!has_comment) ti.comment.clear();
  if (ti.relkind == 'p') return ti;
  if (ti.relkind != 'r') {
    return Err(Code::kInvalidArgument, "'{}' is not an ordinary table (relkind {}); only tables can be partitioned",
               shown, std::string(1, ti.relkind));
  }
  // Columns.
  CB_TRY(auto cols, db.Exec("SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, "
                            "a.attidentity, pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) AS seq "
                            "FROM pg_attribute a WHERE a.attrelid = " + ti.oid +
                            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"));
  std::vector<std::string> ts_cols;
  for (size_t i = 0; i < cols.size(); ++i) {
    std::string name = cols.Get(i, "attname");
    if (!NormalizeType(cols.Get(i, "type")).empty()) ts_cols.push_back(name);
    std::string ident = cols.Get(i, "attidentity");
    if (!ident.empty()) {
      ti.identity_col = name;
      ti.identity_kind = ident == "a" ? "ALWAYS" : "BY DEFAULT";
      ti.identity_seq = cols.Get(i, "seq");
    } else if (!cols.IsNull(i, "seq")) {
      ti.serials.emplace_back(name, cols.Get(i, "seq"));
    }
  }
  std::string qtab = QualifiedName(ti.schema, ti.table);
  if (column_opt.empty()) {
    if (ts_cols.size() != 1) {
      std::string list;
      for (auto& c : ts_cols) list += (list.empty() ? "" : ", ") + c;
      return Err(Code::kInvalidArgument,
                 "table {} has {} timestamp/date columns{}{}; name the partition column with --column", qtab,
                 ts_cols.size(), ts_cols.empty() ? "" : ": ", list);
    }
    ti.column = ts_cols[0];
  } else {
    ti.column = column_opt;
  }
  bool found = false;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols.Get(i, "attname") != ti.column) continue;
    found = true;
    ti.col_type = NormalizeType(cols.Get(i, "type"));
    if (ti.col_type.empty()) {
      return Err(Code::kInvalidArgument,
                 "column {} of {} is {}, not a timestamp: monthly partitions need timestamptz, timestamp or date",
                 QuoteIdent(ti.column), qtab, cols.Get(i, "type"));
    }
    ti.col_notnull = cols.GetBool(i, "attnotnull");
  }
  if (!found) return Err(Code::kNotFound, "column {} does not exist in table {}", QuoteIdent(ti.column), qtab);
  if (!ti.col_notnull) {
    return Err(Code::kInvalidArgument,
               "column {} of {} allows NULLs, and a NULL cannot be placed in a range partition; make it NOT NULL "
               "first (without a long lock: ADD CONSTRAINT c CHECK ({} IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT "
               "c, then ALTER COLUMN {} SET NOT NULL)",
               QuoteIdent(ti.column), qtab, QuoteIdent(ti.column), QuoteIdent(ti.column));
  }
  // Refusals.
  CB_TRY(auto fks, db.Exec("SELECT conname, conrelid::regclass::text AS tbl FROM pg_constraint WHERE contype = 'f' "
                           "AND confrelid = " + ti.oid + " AND conrelid <> " + ti.oid));
  if (!fks.empty()) {
    std::string list;
    for (size_t i = 0; i < fks.size(); ++i) list += (i ? ", " : "") + fks.Get(i, "tbl") + " (" + fks.Get(i, "conname") + ")";
    return Err(Code::kFailedPrecondition,
               "table {} is referenced by foreign keys from {}: a foreign key to a partitioned table must include "
               "the partition column, so these would break; drop or change them first",
               qtab, list);
  }
  CB_TRY(auto trg, db.Exec("SELECT tgname FROM pg_trigger WHERE tgrelid = " + ti.oid + " AND NOT tgisinternal"));
  if (!trg.empty()) {
    return Err(Code::kFailedPrecondition,
               "table {} has triggers ({}…); cbctl does not carry triggers over to the partitioned table yet; drop "
               "them first and recreate them afterwards",
               qtab, trg.Get(0, "tgname"));
  }
  CB_TRY(auto views, db.Exec("SELECT DISTINCT v.oid::regclass::text AS v FROM pg_depend d JOIN pg_rewrite rw ON "
                             "rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class WHERE d.classid = "
                             "'pg_rewrite'::regclass AND d.refobjid = " + ti.oid + " AND v.oid <> " + ti.oid));
  if (!views.empty()) {
    return Err(Code::kFailedPrecondition,
               "view {} depends on table {}: after the swap it would still read the old rows only; drop it first "
               "and recreate it afterwards",
               views.Get(0, "v"), qtab);
  }
  if (!ti.is_owner) {
    return Err(Code::kPermissionDenied,
               "insufficient privileges: partitioning {} needs its owner ({}) or a superuser; connect as {}", qtab,
               ti.owner, ti.owner);
  }
  if (!ti.can_create) {
    return Err(Code::kPermissionDenied, "insufficient privileges: no CREATE privilege on schema {} (needed for the "
               "partitions); GRANT CREATE ON SCHEMA {} TO the connecting role", QuoteIdent(ti.schema),
               QuoteIdent(ti.schema));
  }
  // Key constraints.
  CB_TRY(auto cons, db.Exec(
                        "SELECT con.conname, con.contype, pg_get_constraintdef(con.oid) AS def, "
                        "array_to_string(ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
                        "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), E'\\x1f') "
                        "AS cols FROM pg_constraint con WHERE con.conrelid = " + ti.oid +
                        " AND con.contype IN ('p', 'u', 'f') ORDER BY con.contype, con.conname"));
  int n_idx = 0;
  for (size_t i = 0; i < cons.size(); ++i) {
    std::string type = cons.Get(i, "contype");
    if (type == "f") {
      ti.fk_defs.push_back("ADD CONSTRAINT " + QuoteIdent(cons.Get(i, "conname")) + " " + cons.Get(i, "def"));
      continue;
    }
    KeyConstraint k;
    k.name = cons.Get(i, "conname");
    k.type = type[0];
    k.cols = SplitSep(cons.Get(i, "cols"));
    k.has_col = std::find(k.cols.begin(), k.cols.end(), ti.column) != k.cols.end();
    if (!k.has_col) k.new_index = DerivedName(ti.table, "_cbctl_u" + std::to_string(n_idx++));
    ti.keys.push_back(k);
  }
  // Other indexes (not backing a constraint, not ours).
  CB_TRY(auto idx, db.Exec("SELECT ic.relname, i.indisunique, pg_get_indexdef(i.indexrelid) AS def, "
                           "array_to_string(ARRAY(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON "
                           "a.attrelid = i.indrelid AND a.attnum = k), E'\\x1f') AS cols "
                           "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = " + ti.oid +
                           " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND "
                           "c.conrelid = i.indrelid) ORDER BY ic.relname"));
  for (size_t i = 0; i < idx.size(); ++i) {
    std::string name = idx.Get(i, "relname");
    if (name.find("_cbctl_u") != std::string::npos) continue;
    std::string def = idx.Get(i, "def");
    auto using_pos = def.find(" USING ");
    if (using_pos == std::string::npos) continue;
    auto cols_v = SplitSep(idx.Get(i, "cols"));
    if (idx.GetBool(i, "indisunique") && std::find(cols_v.begin(), cols_v.end(), ti.column) == cols_v.end()) {
      return Err(Code::kFailedPrecondition,
                 "unique index {} on {} does not include {}: a partitioned table can only enforce uniqueness that "
                 "includes the partition column; replace it with a unique constraint (cbctl then extends it) or "
                 "drop it",
                 QuoteIdent(name), qtab, QuoteIdent(ti.column));
    }
    ti.index_defs.push_back(std::string(idx.GetBool(i, "indisunique") ? "UNIQUE " : "") +
                            "INDEX ON {T}" + def.substr(using_pos));
  }
  // Grants (other than the owner's own).
  CB_TRY(auto g, db.Exec("SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) "
                         "END AS grantee, a.privilege_type, a.is_grantable FROM pg_class c, aclexplode(c.relacl) a "
                         "WHERE c.oid = " + ti.oid + " AND a.grantee <> c.relowner ORDER BY 1, 2"));
  for (size_t i = 0; i < g.size(); ++i) {
    ti.grants.push_back("GRANT " + g.Get(i, "privilege_type") + " ON {T} TO " + g.Get(i, "grantee") +
                        (g.GetBool(i, "is_grantable") ? " WITH GRANT OPTION" : ""));
  }
  return ti;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

struct Plan {
  Names n;
  WallTime cutover;
  std::vector<std::string> shell, bound, validate, index, swap, finish;
  std::vector<std::string> notes;
};

Plan BuildPlan(const TableInfo& ti, WallTime cutover, int premake) {
  Plan p;
  p.n = MakeNames(ti.schema, ti.table);
  p.cutover = cutover;
  const Names& n = p.n;
  std::string qcol = QuoteIdent(ti.column);
  std::string like = "CREATE TABLE " + n.qshell + " (LIKE " + n.qt +
                     " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS INCLUDING "
                     "GENERATED INCLUDING STATISTICS INCLUDING COMPRESSION" +
                     (ti.identity_col.empty() ? "" : " INCLUDING IDENTITY") + ") PARTITION BY RANGE (" + qcol + ")";
  p.shell.push_back(like);
  for (const auto& k : ti.keys) {
    std::vector<std::string> cols = k.cols;
    if (!k.has_col) {
      cols.push_back(ti.column);
      p.notes.push_back(std::string(k.type == 'p' ? "primary key " : "unique constraint ") + QuoteIdent(k.name) +
                        " (" + JoinQuoted(k.cols) + ") is extended to (" + JoinQuoted(cols) +
                        "): a partitioned table enforces uniqueness per partition, so it must include " + qcol);
    }
    p.shell.push_back("ALTER TABLE " + n.qshell + " ADD CONSTRAINT " + QuoteIdent(DerivedName(k.name, "_cbctl")) +
                      (k.type == 'p' ? " PRIMARY KEY (" : " UNIQUE (") + JoinQuoted(cols) + ")");
  }
  for (const auto& d : ti.index_defs) p.shell.push_back("CREATE " + Replace(d, "{T}", n.qshell));
  for (const auto& fk : ti.fk_defs) p.shell.push_back("ALTER TABLE " + n.qshell + " " + fk);
  p.shell.push_back("CREATE TABLE " + n.qdflt + " PARTITION OF " + n.qshell + " DEFAULT");
  std::vector<std::string> parts = {n.qdflt};
  for (int i = 0; i < premake; ++i) {
    WallTime m = AddMonths(cutover, i);
    std::string qp = QualifiedName(ti.schema, PartName(ti.table, m));
    p.shell.push_back("CREATE TABLE " + qp + " PARTITION OF " + n.qshell + " FOR VALUES FROM (" +
                      BoundLiteral(ti.col_type, m) + ") TO (" + BoundLiteral(ti.col_type, AddMonths(m, 1)) + ")");
    parts.push_back(qp);
  }
  p.shell.push_back("ALTER TABLE " + n.qshell + " OWNER TO " + QuoteIdent(ti.owner));
  for (const auto& qp : parts) p.shell.push_back("ALTER TABLE " + qp + " OWNER TO " + QuoteIdent(ti.owner));
  for (const auto& g : ti.grants) p.shell.push_back(Replace(g, "{T}", n.qshell));
  if (!ti.comment.empty()) p.shell.push_back("COMMENT ON TABLE " + n.qshell + " IS " + QuoteLiteral(ti.comment));

  p.bound.push_back("ALTER TABLE " + n.qt + " ADD CONSTRAINT " + QuoteIdent(n.bound) + " CHECK (" + qcol +
                    " IS NOT NULL AND " + qcol + " < " + BoundLiteral(ti.col_type, cutover) + ") NOT VALID");
  p.validate.push_back("ALTER TABLE " + n.qt + " VALIDATE CONSTRAINT " + QuoteIdent(n.bound));
  for (const auto& k : ti.keys) {
    if (k.has_col) continue;
    std::vector<std::string> cols = k.cols;
    cols.push_back(ti.column);
    p.index.push_back("CREATE UNIQUE INDEX CONCURRENTLY " + QuoteIdent(k.new_index) + " ON " + n.qt + " (" +
                      JoinQuoted(cols) + ")");
  }
  p.swap.push_back("LOCK TABLE " + n.qt + " IN ACCESS EXCLUSIVE MODE");
  if (!ti.identity_col.empty()) {
    p.swap.push_back("SELECT setval(pg_get_serial_sequence(" + QuoteLiteral(n.qshell) + ", " +
                     QuoteLiteral(ti.identity_col) + "), last_value, is_called) FROM " + ti.identity_seq);
    p.swap.push_back("ALTER TABLE " + n.qt + " ALTER COLUMN " + QuoteIdent(ti.identity_col) + " DROP IDENTITY");
  }
  for (const auto& k : ti.keys) {
    std::string old_name = DerivedName(k.name, "_old");
    if (k.has_col) {
      p.swap.push_back("ALTER TABLE " + n.qt + " RENAME CONSTRAINT " + QuoteIdent(k.name) + " TO " + QuoteIdent(old_name));
    } else {
      // The original constraint and its index stay on the old-rows partition: dropping them
      // here would unlink the index files inside the lock, which grows with the table. The
      // concurrently built index becomes a UNIQUE constraint that the parent's key attaches to.
      p.swap.push_back("ALTER TABLE " + n.qt + " RENAME CONSTRAINT " + QuoteIdent(k.name) + " TO " + QuoteIdent(old_name));
      p.swap.push_back("ALTER TABLE " + n.qt + " ADD CONSTRAINT " + QuoteIdent(DerivedName(k.name, "_part")) +
                       " UNIQUE USING INDEX " + QuoteIdent(k.new_index));
    }
  }
  p.swap.push_back("ALTER TABLE " + n.qt + " RENAME TO " + QuoteIdent(n.old));
  p.swap.push_back("ALTER TABLE " + n.qshell + " ATTACH PARTITION " + n.qold + " FOR VALUES FROM (MINVALUE) TO (" +
                   BoundLiteral(ti.col_type, cutover) + ")");
  p.swap.push_back("ALTER TABLE " + n.qshell + " RENAME TO " + QuoteIdent(n.t));
  for (const auto& k : ti.keys) {
    p.swap.push_back("ALTER TABLE " + n.qt + " RENAME CONSTRAINT " + QuoteIdent(DerivedName(k.name, "_cbctl")) +
                     " TO " + QuoteIdent(k.name));
  }
  for (const auto& [col, seq] : ti.serials) {
    p.swap.push_back("ALTER SEQUENCE " + seq + " OWNED BY " + n.qt + "." + QuoteIdent(col));
  }
  for (const auto& part : parts) {
    if (part != n.qdflt) p.finish.push_back("ANALYZE " + part);
  }
  p.finish.push_back("ANALYZE " + n.qdflt);
  return p;
}

std::string TimeFmt(WallTime t, const char* fmt) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

Result<WallTime> ParseMonthText(const std::string& s) {
  std::tm tm{};
  if (s.size() < 10 || std::sscanf(s.c_str(), "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3) {
    return Err(Code::kInternal, "bad month text '{}' in the journal", s);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// Runs statements in one transaction with lock_timeout, retrying on lock timeouts.
class Runner {
 public:
  Runner(Db& db, const PartitionOptions& o) : db_(db), o_(o) {}

  bool Cancelled() const { return o_.cancel && o_.cancel->load(); }
  double last_tx_ms = 0;  // BEGIN..COMMIT of the last successful transaction

  Result<int> InTxWithRetry(const std::vector<std::string>& stmts, const std::string& step, int step_no,
                            const std::function<void()>& before_commit_note = {}) {
    for (int attempt = 1;; ++attempt) {
      if (Cancelled()) return Err(Code::kCancelled, "cancelled");
      auto t0 = std::chrono::steady_clock::now();
      CB_TRY_VOID(db_.Exec("BEGIN"));
      auto r = db_.Exec("SET LOCAL lock_timeout = '" + std::to_string(o_.lock_timeout_ms) + "ms'");
      for (size_t i = 0; r && i < stmts.size(); ++i) r = db_.Exec(stmts[i]);
      if (r) {
        if (before_commit_note) before_commit_note();
        auto c = db_.Exec("COMMIT");
        last_tx_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (c) return attempt;
        r = tl::unexpected(c.error());
      }
      (void)db_.Exec("ROLLBACK");
      if (r.error().code != Code::kTimeout || attempt >= o_.lock_attempts) return tl::unexpected(r.error());
      if (o_.on_progress) {
        o_.on_progress({step_no, -1, -1, static_cast<int>(PartitionSteps().size()), step,
                        "lock not granted within " + std::to_string(o_.lock_timeout_ms) + " ms, retrying (attempt " +
                            std::to_string(attempt + 1) + ")",
                        0});
      }
      int backoff = std::min(50 * attempt, 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    }
  }

 private:
  Db& db_;
  const PartitionOptions& o_;
};

Result<std::vector<std::string>> LongTransactions(Db& db, int older_than_s, const std::string& oid) {
  CB_TRY(auto r, db.Exec("SELECT a.pid, coalesce(a.application_name, '') AS app, a.state, "
                         "extract(epoch FROM now() - a.xact_start)::int AS age, left(coalesce(a.query, ''), 80) AS q, "
                         "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.relation = " + oid +
                         ") AS on_table FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.xact_start < "
                         "now() - interval '" + std::to_string(older_than_s) + " seconds' AND a.datname = "
                         "current_database() ORDER BY a.xact_start"));
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back("pid " + r.Get(i, "pid") + " (" + r.Get(i, "app") + ", " + r.Get(i, "state") + ") has had a " +
                  "transaction open for " + r.Get(i, "age") + " s" +
                  (r.GetBool(i, "on_table") ? " and holds a lock on the table" : "") + ": " + r.Get(i, "q"));
  }
  return out;
}

}  // namespace

const std::vector<std::string>& PartitionSteps() {
  static const std::vector<std::string> s = {"shell", "bound", "validate", "index", "swap", "finish"};
  return s;
}

WallTime MonthStart(WallTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  tm.tm_mday = 1;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

WallTime AddMonths(WallTime month_start, int n) {
  std::time_t tt = std::chrono::system_clock::to_time_t(month_start);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  int total = tm.tm_year * 12 + tm.tm_mon + n;
  tm.tm_year = total / 12;
  tm.tm_mon = total % 12;
  if (tm.tm_mon < 0) {
    tm.tm_mon += 12;
    tm.tm_year -= 1;
  }
  tm.tm_mday = 1;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

WallTime CutoverMonth(WallTime latest, int margin_days) {
  return AddMonths(MonthStart(latest + std::chrono::hours(24 * margin_days)), 1);
}

std::string FormatMonth(WallTime month_start) { return TimeFmt(month_start, "%Y-%m-%d %H:%M:%S"); }

Result<int> ParseRetentionMonths(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 6) return Err(Code::kInvalidArgument, "retention '{}': expected a number and a unit (12mo, 1y, 90d)", text);
  int n = std::stoi(text.substr(0, i));
  std::string unit = text.substr(i);
  if (unit == "mo" || unit == "month" || unit == "months") return n;
  if (unit == "y" || unit == "year" || unit == "years") return n * 12;
  if (unit == "d" || unit == "day" || unit == "days") return (n + 29) / 30;
  return Err(Code::kInvalidArgument, "retention '{}': unknown unit '{}' (use mo, y or d)", text, unit);
}

static Result<PartitionReport> PartitionMain(Db& db, const PartitionOptions& o, Clock& clock) {
  if (o.interval != "month") {
    return Err(Code::kInvalidArgument, "--interval {}: only 'month' is supported", o.interval);
  }
  if (o.premake < 1 || o.premake > 120) {
    return Err(Code::kInvalidArgument, "--premake {}: expected 1..120 future partitions", o.premake);
  }
  if (!o.retention.empty()) CB_TRY_VOID(ParseRetentionMonths(o.retention));
  CB_TRY(auto tn, ParseTableName(o.table));
  CB_TRY(auto ti, Inspect(db, tn, o.column));
  PartitionReport rep;
  rep.table = QualifiedName(ti.schema, ti.table);
  std::string target = rep.table;
  const int nsteps = static_cast<int>(PartitionSteps().size());
  auto progress = [&](int step, const std::string& msg) {
    if (o.on_progress) o.on_progress({step, -1, -1, nsteps, PartitionSteps()[step - 1], msg, 0});
  };
  auto note = [&](const std::string& s) {
    rep.notes.push_back(s);
    if (o.on_note) o.on_note(s);
  };

  // An earlier run's journal (only when the schema exists; dry runs never create it).
  CB_TRY(bool schema, SchemaExists(db));
  if (!schema && !o.dry_run) {
    CB_TRY_VOID(EnsureSchema(db));
    schema = true;
  }
  std::optional<OpLock> lock;
  if (!o.dry_run) {
    CB_TRY(auto l, OpLock::Acquire(db, "partition", target, o.wait_lock, [&](const LockHolder& h) {
      if (o.on_note) o.on_note("waiting for the partition lock on " + target + ", held by " + h.Describe());
    }));
    lock.emplace(std::move(l));
  }
  std::string op_id;
  Json params;
  if (schema) {
    CB_TRY(auto open, db.Exec("SELECT id, params::text AS params, status FROM cbctl.operations WHERE kind = "
                              "'partition' AND target = " + QuoteLiteral(target) + " AND status <> 'done'"));
    if (!open.empty()) {
      op_id = open.Get(0, "id");
      params = Json::parse(open.Get(0, "params"), nullptr, false);
      rep.resumed = true;
    }
  }
  if (ti.relkind == 'p') {
    if (op_id.empty()) {
      rep.already_partitioned = true;
      rep.column = ti.column;
      note("table " + target + " is already partitioned; nothing to do");
      return rep;
    }
    // Swapped by an earlier run that was stopped before `finish`: re-inspect the columns as
    // they were planned; only the finish step is left.
  }
  // Parameters: from the journal when resuming, else fresh.
  WallTime cutover;
  if (rep.resumed && params.is_object() && params.contains("cutover")) {
    if (!o.column.empty() && params.value("column", "") != o.column) {
      return Err(Code::kFailedPrecondition,
                 "an unfinished partition run on {} uses column {}; finish it (rerun with that column) or "
                 "clear it from cbctl.operations",
                 target, params.value("column", ""));
    }
    ti.column = params.value("column", ti.column);
    CB_TRY(cutover, ParseMonthText(params.value("cutover", "")));
  } else {
    CB_TRY(auto mx, QueryValue(db, "SELECT to_char(max(" + QuoteIdent(ti.column) +
                                       ")::timestamp, 'YYYY-MM-DD HH24:MI:SS') FROM " + rep.table));
    WallTime latest = clock.WallNow();
    if (!mx.empty()) {
      std::tm tm{};
      if (std::sscanf(mx.c_str(), "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec) == 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        latest = std::max(latest, std::chrono::system_clock::from_time_t(timegm(&tm)));
      }
    }
    cutover = CutoverMonth(latest);
  }
  rep.column = ti.column;
  rep.cutover = FormatMonth(cutover) + (ti.col_type == "timestamptz" ? "+00" : "");
  if (ti.relkind == 'p') {
    // Resume after the swap: only finish remains.
    ti.table = tn.table;
  }
  Plan plan = BuildPlan(ti, cutover, o.premake);
  rep.old_partition = plan.n.qold;
  if (ti.relkind != 'p') {
    for (const auto& n : plan.notes) note(n);
  }

  if (o.dry_run) {
    auto add = [&](const std::vector<std::string>& v) { rep.statements.insert(rep.statements.end(), v.begin(), v.end()); };
    rep.statements.push_back("BEGIN");
    add(plan.shell);
    rep.statements.push_back("COMMIT");
    rep.statements.push_back("/* retried on lock timeout */ SET lock_timeout = '" + std::to_string(o.lock_timeout_ms) + "ms'");
    add(plan.bound);
    rep.statements.push_back("SET lock_timeout = 0");
    add(plan.validate);
    add(plan.index);
    rep.statements.push_back("BEGIN");
    rep.statements.push_back("/* the transaction is retried on lock timeout */ SET LOCAL lock_timeout = '" + std::to_string(o.lock_timeout_ms) + "ms'");
    add(plan.swap);
    rep.statements.push_back("COMMIT");
    add(plan.finish);
    return rep;
  }

  if (op_id.empty()) {
    params = Json{{"column", ti.column}, {"cutover", FormatMonth(cutover)}, {"premake", o.premake},
                  {"retention", o.retention}, {"interval", o.interval}};
    CB_TRY(auto id, QueryValue(db, "INSERT INTO cbctl.operations(kind, target, status, params, runner_pid) VALUES "
                                   "('partition', " + QuoteLiteral(target) + ", 'running', " +
                                   QuoteLiteral(params.dump()) + "::jsonb, pg_backend_pid()) RETURNING id"));
    op_id = id;
  } else {
    CB_TRY_VOID(db.Exec("UPDATE cbctl.operations SET status = 'running', error = NULL, cancel_requested = false, "
                        "runner_pid = pg_backend_pid(), updated_at = now() WHERE id = " + op_id));
  }

  // Cancellation: a watcher cancels the running statement when the flag is set.
  std::atomic<bool> done{false};
  std::thread watcher;
  if (o.cancel) {
    watcher = std::thread([&] {
      while (!done.load()) {
        if (o.cancel->load()) {
          db.CancelCurrent();
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  struct Joiner {
    std::atomic<bool>& d;
    std::thread& t;
    ~Joiner() {
      d = true;
      if (t.joinable()) t.join();
    }
  } joiner{done, watcher};

  Runner run(db, o);
  std::string current_step;
  auto journal_step = [&](const std::string& step, WallTime started) -> std::string {
    return "INSERT INTO cbctl.operation_steps(op_id, step, started_at) VALUES (" + op_id + ", " + QuoteLiteral(step) +
           ", " + QuoteLiteral(FormatWallTime(started)) + "::timestamptz) ON CONFLICT DO NOTHING; UPDATE "
           "cbctl.operations SET step = " + QuoteLiteral(step) + ", updated_at = now() WHERE id = " + op_id;
  };
  auto cancel_requested = [&]() -> bool {
    if (run.Cancelled()) return true;
    auto v = QueryValue(db, "SELECT cancel_requested FROM cbctl.operations WHERE id = " + op_id);
    return v && *v == "t";
  };
  auto fail = [&](const Error& e) -> Result<PartitionReport> {
    bool cancelled = e.code == Code::kCancelled || (db.IsOpen() && cancel_requested());
    if (db.IsOpen()) {
      (void)db.Exec("ROLLBACK");
      (void)db.Exec("UPDATE cbctl.operations SET status = " + std::string(cancelled ? "'cancelled'" : "'failed'") +
                    ", error = " + QuoteLiteral(e.message) + ", updated_at = now() WHERE id = " + op_id);
    }
    std::string tail = "; the table is consistent (" + target + " is " +
                       (current_step == "swap" || current_step == "finish" ? "partitioned or unchanged" : "unchanged") +
                       " and readable/writable); run `cbctl db partition " + o.table + "` again to resume";
    if (cancelled) {
      return Err(Code::kCancelled, "partition of {} cancelled during step '{}'{}", target, current_step, tail);
    }
    return tl::unexpected(Error{e.code, "partition of " + target + ", step '" + current_step + "': " + e.message + tail});
  };
  auto step_done = [&](const std::string& step) -> std::string {
    return "UPDATE cbctl.operation_steps SET finished_at = clock_timestamp() WHERE op_id = " + op_id +
           " AND step = " + QuoteLiteral(step);
  };

  for (int si = 0; si < nsteps; ++si) {
    const std::string& step = PartitionSteps()[si];
    current_step = step;
    int step_no = si + 1;
    MonoTime t0 = clock.Now();
    WallTime w0 = clock.WallNow();
    PartitionReport::StepTiming timing{step, 0, 0, false};
    if (cancel_requested()) return fail(Error{Code::kCancelled, "cancelled"});
    // Catalog state decides what is left (the journal may lag a killed run by one statement).
    CB_TRY(auto state, db.Exec(
                           "SELECT (SELECT relkind FROM pg_class WHERE oid = to_regclass(" + QuoteLiteral(plan.n.qt) +
                           ")) AS kind, to_regclass(" + QuoteLiteral(plan.n.qshell) + ") IS NOT NULL AS shell, "
                           "(SELECT convalidated::text FROM pg_constraint WHERE conname = " + QuoteLiteral(plan.n.bound) +
                           " AND conrelid = to_regclass(" + QuoteLiteral(plan.n.qt) + ")) AS bound"));
    bool swapped = state.Get(0, "kind") == "p";
    bool shell_exists = state.GetBool(0, "shell");
    bool bound_exists = !state.IsNull(0, "bound");
    bool bound_valid = state.Get(0, "bound") == "true";
    if (swapped && step != "finish") {
      timing.skipped = true;
      rep.steps.push_back(timing);
      continue;
    }
    Result<int> r = 1;
    if (step == "shell") {
      if (shell_exists) {
        timing.skipped = true;
      } else {
        progress(step_no, "creating the partitioned table, its default and " + std::to_string(o.premake) +
                              " future partitions, and indexes");
        std::vector<std::string> stmts = plan.shell;
        stmts.push_back(journal_step(step, w0));
        r = run.InTxWithRetry(stmts, step, step_no);
      }
    } else if (step == "bound") {
      if (bound_exists) {
        timing.skipped = true;
      } else {
        CB_TRY(auto longx, LongTransactions(db, o.long_xact_warn_s, ti.oid));
        for (const auto& l : longx) note("before locking " + target + ": " + l);
        progress(step_no, "adding a NOT VALID check bounding the existing rows below " + rep.cutover);
        std::vector<std::string> stmts = plan.bound;
        stmts.push_back(journal_step(step, w0));
        r = run.InTxWithRetry(stmts, step, step_no);
      }
    } else if (step == "validate") {
      if (bound_valid) {
        timing.skipped = true;
      } else {
        progress(step_no, "validating the check (reads every row; writers are not blocked)");
        auto v = db.Exec(plan.validate[0]);
        if (!v) r = tl::unexpected(v.error());
        else r = db.Exec(journal_step(step, w0)).map([](const Rows&) { return 1; });
      }
    } else if (step == "index") {
      bool any = false;
      for (size_t k = 0, ix = 0; k < ti.keys.size() && r; ++k) {
        if (ti.keys[k].has_col) continue;
        const std::string& idx_sql = plan.index[ix++];
        std::string qidx = QualifiedName(ti.schema, ti.keys[k].new_index);
        auto st = db.Exec("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(" + QuoteLiteral(qidx) + ")");
        if (!st) {
          r = tl::unexpected(st.error());
          break;
        }
        if (!st->empty() && st->GetBool(0, "indisvalid")) continue;
        any = true;
        if (!st->empty()) {
          progress(step_no, "dropping the invalid index " + qidx + " left by an interrupted run");
          auto d = db.Exec("DROP INDEX CONCURRENTLY IF EXISTS " + qidx);
          if (!d) {
            r = tl::unexpected(d.error());
            break;
          }
        }
        progress(step_no, "building unique index " + qidx + " concurrently (writers are not blocked)");
        std::atomic<bool> built{false};
        std::thread poller;
        if (o.progress_db && o.on_progress) {
          poller = std::thread([&, step_no] {
            auto t0 = std::chrono::steady_clock::now();
            while (!built.load()) {
              for (int i = 0; i < 10 && !built.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
              if (built.load()) break;
              auto pr = o.progress_db->Exec(
                  "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total FROM "
                  "pg_stat_progress_create_index WHERE pid = " + std::to_string(db.BackendPid()));
              if (!pr || pr->empty()) continue;
              double bd = pr->GetDouble(0, "blocks_done"), bt = pr->GetDouble(0, "blocks_total");
              double td = pr->GetDouble(0, "tuples_done"), tt = pr->GetDouble(0, "tuples_total");
              double f = tt > 0 ? td / tt : bt > 0 ? bd / bt : -1;
              double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              double eta = f > 0.01 ? el * (1 - f) / f : -1;
              char buf[160];
              std::snprintf(buf, sizeof buf, "%s: %.0f%%%s", pr->Get(0, "phase").c_str(), f >= 0 ? f * 100 : 0.0,
                            eta >= 0 ? (", ETA " + std::to_string(static_cast<int>(eta + 0.5)) + " s").c_str() : "");
              o.on_progress({step_no, f, eta, nsteps, step, "index " + qidx + " " + buf, el});
            }
          });
        }
        auto c = db.Exec(idx_sql);
        built = true;
        if (poller.joinable()) poller.join();
        if (!c) r = tl::unexpected(c.error());
      }
      if (r) r = db.Exec(journal_step(step, w0)).map([](const Rows&) { return 1; });
      timing.skipped = !any;
    } else if (step == "swap") {
      CB_TRY(auto longx, LongTransactions(db, o.long_xact_warn_s, ti.oid));
      for (const auto& l : longx) note("before the swap: " + l);
      progress(step_no, "swapping: attach the existing rows as " + plan.n.qold + " and rename (short lock)");
      std::vector<std::string> stmts = plan.swap;
      stmts.push_back(journal_step(step, w0));
      r = run.InTxWithRetry(stmts, step, step_no);
      if (r) rep.swap_lock_ms = run.last_tx_ms;
    } else if (step == "finish") {
      progress(step_no, "analyzing the new partitions and registering the table for `db maintain`");
      for (const auto& s : plan.finish) {
        auto a = db.Exec(s);
        if (!a) {
          r = tl::unexpected(a.error());
          break;
        }
      }
      if (r) {
        r = db.Exec("INSERT INTO cbctl.managed_tables(schema_name, table_name, column_name, interval, premake, "
                    "retention) VALUES (" + QuoteLiteral(ti.schema) + ", " + QuoteLiteral(tn.table.empty() ? ti.table : ti.table) +
                    ", " + QuoteLiteral(ti.column) + ", " + QuoteLiteral(o.interval) + ", " +
                    std::to_string(params.value("premake", o.premake)) + ", " +
                    (params.value("retention", o.retention).empty() ? std::string("NULL")
                                                                     : QuoteLiteral(params.value("retention", o.retention))) +
                    ") ON CONFLICT (schema_name, table_name) DO UPDATE SET column_name = EXCLUDED.column_name, "
                    "premake = EXCLUDED.premake, retention = EXCLUDED.retention; " +
                    journal_step(step, w0) + "; UPDATE cbctl.operations SET status = 'done', finished_at = now() "
                    "WHERE id = " + op_id)
                .map([](const Rows&) { return 1; });
      }
    }
    if (!r) return fail(r.error());
    timing.lock_attempts = *r;
    if (!timing.skipped) (void)db.Exec(step_done(step));
    timing.seconds = ToSeconds(clock.Now() - t0);
    rep.steps.push_back(timing);
    if (o.after_step && !o.after_step(step)) {
      db.Abandon();
      return Err(Code::kCancelled, "stopped after step '{}' by the test hook", step);
    }
  }
  if (lock) (void)lock->Release();
  return rep;
}

// --split-old: moves the rows of <t>_old into monthly partitions, newest month first, one
// transaction per month (see PartitionOptions::split_old for what it locks).
static Result<void> SplitOld(Db& db, const PartitionOptions& o, PartitionReport& rep) {
  CB_TRY(auto tn, ParseTableName(o.table));
  std::string reg = tn.schema.empty() ? QuoteIdent(tn.table) : QualifiedName(tn.schema, tn.table);
  CB_TRY(auto t, db.Exec("SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, a.attname, "
                         "format_type(a.atttypid, a.atttypmod) AS type FROM pg_class c JOIN pg_namespace n ON n.oid = "
                         "c.relnamespace LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid LEFT JOIN pg_attribute a "
                         "ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] WHERE c.oid = to_regclass(" +
                         QuoteLiteral(reg) + ")"));
  if (t.empty() || t.Get(0, "relkind") != "p") {
    return Err(Code::kFailedPrecondition, "--split-old: {} is not partitioned", o.table);
  }
  std::string schema = t.Get(0, "nspname"), table = t.Get(0, "relname"), col = t.Get(0, "attname");
  std::string type = NormalizeType(t.Get(0, "type"));
  Names n = MakeNames(schema, table);
  CB_TRY(auto old, db.Exec("SELECT pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON "
                           "c.oid = i.inhrelid WHERE i.inhparent = to_regclass(" + QuoteLiteral(n.qt) +
                           ") AND c.oid = to_regclass(" + QuoteLiteral(n.qold) + ")"));
  if (old.empty()) {
    rep.notes.push_back("--split-old: " + n.qold + " is not a partition of " + n.qt + "; nothing to split");
    return Ok();
  }
  std::string b = old.Get(0, "bound");
  auto q = b.find("TO ('");
  if (q == std::string::npos) return Err(Code::kFailedPrecondition, "--split-old: unexpected bound of {}: {}", n.qold, b);
  CB_TRY(WallTime upper, ParseMonthText(b.substr(q + 5, 10)));
  CB_TRY(auto mn, QueryValue(db, "SELECT to_char(date_trunc('month', min(" + QuoteIdent(col) + ")), 'YYYY-MM-DD') FROM " +
                                     n.qold));
  if (mn.empty()) {
    rep.notes.push_back("--split-old: " + n.qold + " is empty; nothing to split");
    return Ok();
  }
  CB_TRY(WallTime lowest, ParseMonthText(mn));
  CB_TRY(auto total_s, QueryValue(db, "SELECT count(*) FROM " + n.qold));
  double total = std::stod(total_s), moved = 0;
  CB_TRY(auto lock, OpLock::Acquire(db, "partition", n.qt, o.wait_lock));
  Runner run(db, o);
  auto t0 = std::chrono::steady_clock::now();
  const int nsteps = static_cast<int>(PartitionSteps().size());
  int months = 0;
  for (WallTime m = AddMonths(MonthStart(upper - std::chrono::hours(1)), 0); m >= lowest; m = AddMonths(m, -1)) {
    if (run.Cancelled()) {
      (void)lock.Release();
      return Err(Code::kCancelled, "--split-old cancelled; months down to {} are split, run it again to continue",
                 FormatMonth(AddMonths(m, 1)).substr(0, 7));
    }
    std::string pname = PartName(table, m);
    std::string qp = QualifiedName(schema, pname);
    std::string lo = BoundLiteral(type, m), hi = BoundLiteral(type, AddMonths(m, 1));
    CB_TRY(auto cnt, QueryValue(db, "SELECT count(*) FROM " + n.qold + " WHERE " + QuoteIdent(col) + " >= " + lo));
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double eta = moved > 0 ? el * (total - moved) / moved : -1;
    if (o.on_progress) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "moving %s: %s rows (%.0f of %.0f moved so far%s)", FormatMonth(m).substr(0, 7).c_str(),
                    cnt.c_str(), moved, total, eta >= 0 ? (", ETA " + std::to_string(static_cast<int>(eta)) + " s").c_str() : "");
      o.on_progress({nsteps, total > 0 ? moved / total : -1, eta, nsteps, "split-old", buf, el});
    }
    std::vector<std::string> stmts = {
        "LOCK TABLE " + n.qt + " IN ACCESS EXCLUSIVE MODE",
        "ALTER TABLE " + n.qt + " DETACH PARTITION " + n.qold,
        "CREATE TABLE " + qp + " (LIKE " + n.qt + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "INSERT INTO " + qp + " SELECT * FROM " + n.qold + " WHERE " + QuoteIdent(col) + " >= " + lo,
        "DELETE FROM " + n.qold + " WHERE " + QuoteIdent(col) + " >= " + lo,
        "ALTER TABLE " + n.qold + " DROP CONSTRAINT IF EXISTS " + QuoteIdent(n.bound),
        "ALTER TABLE " + n.qold + " ADD CONSTRAINT " + QuoteIdent(n.bound) + " CHECK (" + QuoteIdent(col) +
            " IS NOT NULL AND " + QuoteIdent(col) + " < " + lo + ")",
        "ALTER TABLE " + qp + " ADD CONSTRAINT " + QuoteIdent(DerivedName(pname, "_bound")) + " CHECK (" +
            QuoteIdent(col) + " IS NOT NULL AND " + QuoteIdent(col) + " >= " + lo + " AND " + QuoteIdent(col) + " < " +
            hi + ")",
        "ALTER TABLE " + n.qt + " ATTACH PARTITION " + n.qold + " FOR VALUES FROM (MINVALUE) TO (" + lo + ")",
        "ALTER TABLE " + n.qt + " ATTACH PARTITION " + qp + " FOR VALUES FROM (" + lo + ") TO (" + hi + ")",
        "ALTER TABLE " + qp + " OWNER TO " + QuoteIdent(t.Get(0, "owner")),
    };
    auto r = run.InTxWithRetry(stmts, "split-old", nsteps);
    if (!r) {
      (void)lock.Release();
      return tl::unexpected(r.error().Wrap("--split-old, month " + FormatMonth(m).substr(0, 7) +
                                           " (earlier months are unchanged; run it again to continue)"));
    }
    moved += std::stod(cnt);
    ++months;
    rep.steps.push_back({"split-old " + FormatMonth(m).substr(0, 7), run.last_tx_ms / 1000.0, *r, false});
  }
  (void)db.Exec("ANALYZE " + n.qt);
  rep.notes.push_back("--split-old: moved " + std::to_string(static_cast<int64_t>(moved)) + " rows into " +
                      std::to_string(months) + " monthly partitions");
  (void)lock.Release();
  return Ok();
}

Result<PartitionReport> Partition(Db& db, const PartitionOptions& o, Clock& clock) {
  PartitionOptions main = o;
  main.split_old = false;
  CB_TRY(auto rep, PartitionMain(db, main, clock));
  if (!o.split_old) return rep;
  if (o.dry_run) {
    rep.notes.push_back("--split-old: then, newest month first, one transaction per month of " + rep.old_partition +
                        ": LOCK the table, DETACH the old partition, copy the month's rows into a new partition, "
                        "delete them from the old one, re-check its bound, ATTACH both");
    return rep;
  }
  CB_TRY_VOID(SplitOld(db, o, rep));
  rep.already_partitioned = false;
  return rep;
}

Result<std::string> CancelOperation(Db& db, const std::string& table) {
  CB_TRY(auto tn, ParseTableName(table));
  CB_TRY(bool schema, SchemaExists(db));
  if (!schema) return Err(Code::kNotFound, "no cbctl operation has ever run in this database");
  std::string reg = tn.schema.empty() ? QuoteIdent(tn.table) : QualifiedName(tn.schema, tn.table);
  CB_TRY(auto r, db.Exec("SELECT id, target, runner_pid, step FROM cbctl.operations WHERE status = 'running' AND kind = "
                         "'partition' AND (target = " + QuoteLiteral(QualifiedName(tn.schema.empty() ? "public" : tn.schema, tn.table)) +
                         " OR target = (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(" + QuoteLiteral(reg) +
                         ")) OR target = (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace "
                         "n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(" + QuoteLiteral(reg) + ")))"));
  if (r.empty()) return Err(Code::kNotFound, "no partition operation is running on {}", table);
  std::string target = r.Get(0, "target");
  CB_TRY_VOID(db.Exec("UPDATE cbctl.operations SET cancel_requested = true WHERE id = " + r.Get(0, "id")));
  CB_TRY(auto holder, OpLock::Holder(db, "partition", target));
  if (!holder) return "no runner holds the lock on " + target + " any more; marked cancelled for the next run";
  CB_TRY_VOID(db.Exec("SELECT pg_cancel_backend(" + std::to_string(holder->pid) + ")"));
  return "cancel sent to the partition of " + target + " (runner " + holder->Describe() + ", step " + r.Get(0, "step") +
         "); it stops consistent and resumable";
}

}  // namespace cb::db
