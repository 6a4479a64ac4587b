#include "controlplane/db/maintain.h"

#include <chrono>
#include <map>
#include <thread>

#include "controlplane/db/partition.h"
#include "controlplane/db/schema.h"
#include "controlplane/db/sql.h"

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {
namespace {

struct Part {
  std::string name;
  bool is_default = false;
  bool has_lower = false, has_upper = false;
  std::string lower, upper;  // "YYYY-MM-DD" (month starts), empty with MINVALUE/MAXVALUE
};

// Extracts the first quoted value after `key` in a partition bound expression.
std::string BoundValue(const std::string& bound, const std::string& key) {
  auto p = bound.find(key);
  if (p == std::string::npos) return "";
  auto q = bound.find('\'', p);
  auto paren = bound.find(')', p);
  if (q == std::string::npos || q > paren) return "";  // MINVALUE / MAXVALUE
  return bound.substr(q + 1, 10);
}

std::string MonthText(WallTime m) { return FormatMonth(m).substr(0, 10); }

std::string Literal(const std::string& col_type, WallTime m) {
  std::string s = FormatMonth(m);
  if (col_type == "date") return QuoteLiteral(s.substr(0, 10));
  if (col_type == "timestamp with time zone") return QuoteLiteral(s + "+00");
  return QuoteLiteral(s);
}

WallTime ParseDay(const std::string& ymd) {
  std::tm tm{};
  std::sscanf(ymd.c_str(), "%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Result<void> InTx(Db& db, const std::vector<std::string>& stmts, const MaintainOptions& o) {
  for (int attempt = 1;; ++attempt) {
    CB_TRY_VOID(db.Exec("BEGIN"));
    auto r = db.Exec("SET LOCAL lock_timeout = '" + std::to_string(o.lock_timeout_ms) + "ms'");
    for (size_t i = 0; r && i < stmts.size(); ++i) r = db.Exec(stmts[i]);
    if (r) r = db.Exec("COMMIT");
    if (r) return Ok();
    (void)db.Exec("ROLLBACK");
    if (r.error().code != Code::kTimeout || attempt >= o.lock_attempts) return tl::unexpected(r.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * attempt, 1000)));
  }
}

}  // namespace

Result<MaintainReport> PlanMaintain(Db& db, const MaintainOptions& o, WallTime now) {
  MaintainReport rep;
  struct T {
    std::string schema, table, column;
    int premake = 4;
    std::string retention;
  };
  std::vector<T> tables;
  CB_TRY(bool schema, SchemaExists(db));
  std::map<std::string, T> registered;
  if (schema) {
    CB_TRY(auto r, db.Exec("SELECT schema_name, table_name, column_name, premake, coalesce(retention, '') AS retention "
                           "FROM cbctl.managed_tables ORDER BY 1, 2"));
    for (size_t i = 0; i < r.size(); ++i) {
      T t{r.Get(i, "schema_name"), r.Get(i, "table_name"), r.Get(i, "column_name"),
          static_cast<int>(r.GetInt(i, "premake", 4)), r.Get(i, "retention")};
      registered[QualifiedName(t.schema, t.table)] = t;
      if (o.tables.empty()) tables.push_back(t);
    }
  }
  for (const auto& name : o.tables) {
    CB_TRY(auto tn, ParseTableName(name));
    std::string reg = tn.schema.empty() ? QuoteIdent(tn.table) : QualifiedName(tn.schema, tn.table);
    CB_TRY(auto r, db.Exec("SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
                           "c.relnamespace WHERE c.oid = to_regclass(" + QuoteLiteral(reg) + ")"));
    if (r.empty()) return Err(Code::kNotFound, "table '{}' does not exist", name);
    T t{r.Get(0, "nspname"), r.Get(0, "relname"), o.column, 4, ""};
    auto it = registered.find(QualifiedName(t.schema, t.table));
    if (it != registered.end()) t = it->second;
    if (r.Get(0, "relkind") != "p" && o.skip_unpartitioned) {
      rep.problems.push_back("table " + QualifiedName(t.schema, t.table) +
                             " is listed for partitioning but is not partitioned yet; run `cbctl db partition " + name +
                             "`");
      continue;
    }
    if (r.Get(0, "relkind") != "p") {
      return Err(Code::kFailedPrecondition, "table {} is not partitioned; run `cbctl db partition {}` first",
                 QualifiedName(t.schema, t.table), name);
    }
    tables.push_back(t);
  }
  if (tables.empty() && o.tables.empty()) {
    rep.problems.push_back("no tables to maintain: none was partitioned by cbctl in this database; name them");
  }
  WallTime this_month = MonthStart(now);
  for (auto t : tables) {
    if (o.premake >= 0) t.premake = o.premake;
    if (!o.retention.empty()) t.retention = o.retention;
    std::string qt = QualifiedName(t.schema, t.table);
    // Partition key column and its type.
    CB_TRY(auto key, db.Exec("SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, p.partstrat FROM "
                             "pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = "
                             "p.partattrs[0] WHERE p.partrelid = to_regclass(" + QuoteLiteral(qt) + ")"));
    if (key.empty()) {
      rep.problems.push_back("table " + qt + " is not partitioned (any more); skipped");
      continue;
    }
    if (key.Get(0, "partstrat") != "r") {
      rep.problems.push_back("table " + qt + " is not range-partitioned; skipped");
      continue;
    }
    std::string col = key.Get(0, "attname");
    std::string type = key.Get(0, "type");
    CB_TRY(auto pr, db.Exec("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN "
                            "pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(" + QuoteLiteral(qt) +
                            ") ORDER BY c.relname"));
    std::vector<Part> parts;
    std::string dflt;
    for (size_t i = 0; i < pr.size(); ++i) {
      Part p;
      p.name = pr.Get(i, "relname");
      std::string b = pr.Get(i, "bound");
      if (b == "DEFAULT") {
        p.is_default = true;
        dflt = p.name;
      } else {
        p.lower = BoundValue(b, "FROM (");
        p.upper = BoundValue(b, "TO (");
        p.has_lower = !p.lower.empty();
        p.has_upper = !p.upper.empty();
      }
      parts.push_back(p);
    }
    auto covered = [&](WallTime m) {
      std::string ms = MonthText(m);
      for (const auto& p : parts) {
        if (p.is_default) continue;
        bool ge = !p.has_lower || p.lower <= ms;
        bool lt = !p.has_upper || ms < p.upper;
        if (ge && lt) return true;
      }
      return false;
    };
    auto create_stmt = [&](WallTime m, const std::string& pname) {
      return "CREATE TABLE " + QualifiedName(t.schema, pname) + " PARTITION OF " + qt + " FOR VALUES FROM (" +
             Literal(type, m) + ") TO (" + Literal(type, AddMonths(m, 1)) + ")";
    };
    auto part_name = [&](WallTime m) {
      std::string s = MonthText(m);
      return DerivedName(t.table, "_p" + s.substr(0, 4) + "_" + s.substr(5, 2));
    };
    // Rows in the default partition: one move per month.
    std::vector<std::string> moved_months;
    if (!dflt.empty()) {
      std::string qd = QualifiedName(t.schema, dflt);
      CB_TRY(auto dm, db.Exec("SELECT to_char(date_trunc('month', " + QuoteIdent(col) + "), 'YYYY-MM-DD') AS m, count(*) "
                              "AS n FROM " + qd + " GROUP BY 1 ORDER BY 1"));
      for (size_t i = 0; i < dm.size(); ++i) {
        WallTime m = ParseDay(dm.Get(i, "m"));
        std::string pname = part_name(m);
        std::string qp = QualifiedName(t.schema, pname);
        rep.problems.push_back(dm.Get(i, "n") + " row(s) for " + dm.Get(i, "m").substr(0, 7) + " in default partition " +
                               qd + (covered(m) ? " overlap an existing partition: move them by hand" : ": moved to " + qp));
        if (covered(m)) continue;
        std::string range = QuoteIdent(col) + " >= " + Literal(type, m) + " AND " + QuoteIdent(col) + " < " +
                            Literal(type, AddMonths(m, 1));
        MaintainAction a{qt, "move-default", qp, dm.Get(i, "n") + " rows of " + dm.Get(i, "m").substr(0, 7), {}, false};
        a.statements = {
            "LOCK TABLE " + qd + " IN ACCESS EXCLUSIVE MODE",
            "CREATE TABLE " + qp + " (LIKE " + qt + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
            "INSERT INTO " + qp + " SELECT * FROM " + qd + " WHERE " + range,
            "DELETE FROM " + qd + " WHERE " + range,
            "ALTER TABLE " + qt + " ATTACH PARTITION " + qp + " FOR VALUES FROM (" + Literal(type, m) + ") TO (" +
                Literal(type, AddMonths(m, 1)) + ")"};
        rep.actions.push_back(a);
        rep.actions.push_back({qt, "analyze", qp, "", {"ANALYZE " + qp}, false});
        parts.push_back({pname, false, true, true, MonthText(m), MonthText(AddMonths(m, 1))});
        moved_months.push_back(MonthText(m));
      }
    }
    // Premake.
    for (int i = 0; i <= t.premake; ++i) {
      WallTime m = AddMonths(this_month, i);
      if (covered(m)) continue;
      std::string pname = part_name(m);
      std::string qp = QualifiedName(t.schema, pname);
      rep.actions.push_back({qt, "create", qp, MonthText(m) + " .. " + MonthText(AddMonths(m, 1)), {create_stmt(m, pname)}, false});
      rep.actions.push_back({qt, "analyze", qp, "", {"ANALYZE " + qp}, false});
      parts.push_back({pname, false, true, true, MonthText(m), MonthText(AddMonths(m, 1))});
    }
    // Retention.
    if (!t.retention.empty()) {
      CB_TRY(int months, ParseRetentionMonths(t.retention));
      std::string limit = MonthText(AddMonths(this_month, -months));
      for (const auto& p : parts) {
        if (p.is_default || !p.has_upper || p.upper > limit) continue;
        std::string qp = QualifiedName(t.schema, p.name);
        rep.actions.push_back({qt, "detach", qp, "upper bound " + p.upper + " is past the retention (" + t.retention +
                                                     " before " + MonthText(this_month) + ")",
                               {"ALTER TABLE " + qt + " DETACH PARTITION " + qp}, false});
        if (o.drop) rep.actions.push_back({qt, "drop", qp, "--drop", {"DROP TABLE " + qp}, false});
      }
    }
  }
  return rep;
}

Result<void> RunMaintain(Db& db, MaintainReport& plan, const MaintainOptions& o) {
  for (auto& a : plan.actions) {
    Result<void> r = Ok();
    if (a.kind == "analyze" || a.kind == "drop") {
      for (const auto& s : a.statements) {
        auto e = db.Exec(s);
        if (!e) {
          r = tl::unexpected(e.error());
          break;
        }
      }
    } else {
      r = InTx(db, a.statements, o);
    }
    if (!r) return tl::unexpected(r.error().Wrap(a.kind + " " + a.object));
    a.done = true;
  }
  return Ok();
}

Result<std::string> VacuumStatement(Db& db, const VacuumOptions& o) {
  std::string opts;
  if (o.full) opts += "FULL";
  if (o.analyze) opts += std::string(opts.empty() ? "" : ", ") + "ANALYZE";
  std::string s = "VACUUM" + (opts.empty() ? std::string() : " (" + opts + ")");
  if (!o.table.empty()) {
    CB_TRY(auto tn, ParseTableName(o.table));
    std::string reg = tn.schema.empty() ? QuoteIdent(tn.table) : QualifiedName(tn.schema, tn.table);
    CB_TRY(auto r, db.Exec("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.oid = to_regclass(" + QuoteLiteral(reg) + ")"));
    if (r.empty()) return Err(Code::kNotFound, "table '{}' does not exist", o.table);
    s += " " + QualifiedName(r.Get(0, "nspname"), r.Get(0, "relname"));
  }
  return s;
}

Result<double> RunVacuum(Db& db, const VacuumOptions& o) {
  CB_TRY(auto stmt, VacuumStatement(db, o));
  auto t0 = std::chrono::steady_clock::now();
  CB_TRY_VOID(db.Exec(stmt));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace cb::db
