#include "controlplane/db/status.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "controlplane/db/schema.h"
#include "controlplane/db/sql.h"

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {

std::string HumanBytes(int64_t b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  else std::snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

Result<StatusReport> CollectStatus(Db& db, const StatusOptions& o) {
  StatusReport r;
  r.target = db.Describe();
  CB_TRY(auto head, db.Exec("SELECT current_setting('server_version') AS v, current_database() AS d, "
                            "pg_database_size(current_database()) AS size, current_setting('max_connections')::int AS mc, "
                            "age(datfrozenxid) AS xid_age, current_setting('autovacuum_freeze_max_age')::bigint AS fma, "
                            "(SELECT sum(blks_hit)::float8 / nullif(sum(blks_hit + blks_read), 0) FROM pg_stat_database "
                            "WHERE datname = current_database()) AS hit FROM pg_database WHERE datname = current_database()"));
  r.version = head.Get(0, "v");
  r.database = head.Get(0, "d");
  r.size_bytes = head.GetInt(0, "size");
  r.max_connections = static_cast<int>(head.GetInt(0, "mc"));
  r.xid_age = head.GetInt(0, "xid_age");
  r.autovacuum_freeze_max_age = head.GetInt(0, "fma", 200000000);
  if (!head.IsNull(0, "hit")) r.cache_hit_ratio = head.GetDouble(0, "hit");
  CB_TRY(auto conns, db.Exec("SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity WHERE "
                             "backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC"));
  for (size_t i = 0; i < conns.size(); ++i) {
    int n = static_cast<int>(conns.GetInt(i, "n"));
    r.connections.emplace_back(conns.Get(i, "state"), n);
    r.connections_total += n;
  }
  CB_TRY(auto tabs, db.Exec(
                        "WITH t AS (SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON "
                        "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT "
                        "IN ('pg_catalog', 'information_schema', 'cbctl') AND n.nspname NOT LIKE 'pg_toast%'), "
                        "m AS (SELECT t.oid AS root, coalesce(pt.relid, t.oid) AS rel FROM t LEFT JOIN LATERAL "
                        "pg_partition_tree(t.oid) pt ON t.relkind = 'p' WHERE t.relkind = 'r' OR pt.isleaf) "
                        "SELECT t.nspname, t.relname, t.relkind, sum(pg_total_relation_size(m.rel)) AS size, "
                        "sum(greatest(coalesce(s.n_live_tup, 0), (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = m.rel)))::bigint AS rows, "
                        "sum(coalesce(s.n_dead_tup, 0)) AS dead, "
                        "max(greatest(s.last_vacuum, s.last_autovacuum)) AS lv, bool_or(s.last_vacuum >= "
                        "coalesce(s.last_autovacuum, '-infinity')) AS lv_manual, "
                        "max(greatest(s.last_analyze, s.last_autoanalyze)) AS la, bool_or(s.last_analyze >= "
                        "coalesce(s.last_autoanalyze, '-infinity')) AS la_manual "
                        "FROM t JOIN m ON m.root = t.oid LEFT JOIN pg_stat_user_tables s ON s.relid = m.rel "
                        "GROUP BY t.nspname, t.relname, t.relkind ORDER BY 4 DESC NULLS LAST LIMIT " +
                        std::to_string(o.top)));
  for (size_t i = 0; i < tabs.size(); ++i) {
    TableStat t;
    t.schema = tabs.Get(i, "nspname");
    t.name = tabs.Get(i, "relname");
    t.partitioned = tabs.Get(i, "relkind") == "p";
    t.size_bytes = tabs.GetInt(i, "size");
    t.rows = tabs.GetInt(i, "rows");
    t.dead_rows = tabs.GetInt(i, "dead");
    t.last_vacuum = tabs.Get(i, "lv");
    if (!t.last_vacuum.empty()) t.last_vacuum_kind = tabs.GetBool(i, "lv_manual") ? "manual" : "auto";
    t.last_analyze = tabs.Get(i, "la");
    if (!t.last_analyze.empty()) t.last_analyze_kind = tabs.GetBool(i, "la_manual") ? "manual" : "auto";
    r.largest.push_back(t);
  }
  CB_TRY(bool schema, SchemaExists(db));
  CB_TRY(auto parts, db.Exec(
                         "SELECT pn.nspname AS ps, p.relname AS pname, pg_get_partkeydef(p.oid) AS key, n.nspname AS cs, "
                         "c.relname AS cname, pg_get_expr(c.relpartbound, c.oid) AS bound, greatest(c.reltuples, 0)::bigint "
                         "AS est, " + std::string(schema ? "EXISTS (SELECT 1 FROM cbctl.managed_tables mt WHERE "
                         "mt.schema_name = pn.nspname AND mt.table_name = p.relname)" : "false") + " AS managed "
                         "FROM pg_partitioned_table pt JOIN pg_class p ON p.oid = pt.partrelid JOIN pg_namespace pn ON "
                         "pn.oid = p.relnamespace LEFT JOIN pg_inherits i ON i.inhparent = p.oid LEFT JOIN pg_class c ON "
                         "c.oid = i.inhrelid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE pn.nspname NOT IN "
                         "('pg_catalog', 'cbctl') ORDER BY 1, 2, c.relname"));
  for (size_t i = 0; i < parts.size(); ++i) {
    if (r.partitioned.empty() || r.partitioned.back().schema != parts.Get(i, "ps") ||
        r.partitioned.back().name != parts.Get(i, "pname")) {
      r.partitioned.push_back({parts.Get(i, "ps"), parts.Get(i, "pname"), parts.Get(i, "key"), {}, 0,
                               parts.GetBool(i, "managed")});
    }
    if (parts.IsNull(i, "cname")) continue;
    PartitionStat ps;
    ps.name = parts.Get(i, "cname");
    ps.bound = parts.Get(i, "bound");
    ps.is_default = ps.bound == "DEFAULT";
    ps.rows = parts.GetInt(i, "est");
    if (ps.is_default) {
      CB_TRY(auto n, QueryValue(db, "SELECT count(*) FROM (SELECT 1 FROM " + QualifiedName(parts.Get(i, "cs"), ps.name) +
                                        " LIMIT 1000000) x"));
      ps.rows = std::stoll(n);
      r.partitioned.back().default_rows += ps.rows;
      if (ps.rows > 0) {
        r.problems.push_back(std::to_string(ps.rows) + " row(s) in default partition " +
                             QualifiedName(parts.Get(i, "cs"), ps.name) +
                             ": create the partitions they belong to (cbctl db maintain moves them)");
      }
    }
    r.partitioned.back().partitions.push_back(ps);
  }
  if (r.xid_age > r.autovacuum_freeze_max_age) {
    r.problems.push_back("transaction-ID age " + std::to_string(r.xid_age) + " is past autovacuum_freeze_max_age (" +
                         std::to_string(r.autovacuum_freeze_max_age) + "): check that autovacuum keeps up");
  }
  auto plan = PlanTune(db, o.tune);
  if (plan) {
    for (const auto& it : plan->items)
      if (it.action != "skip") r.settings_off.push_back(it);
    r.settings_note = plan->input.resources_source;
  } else {
    r.settings_note = "not compared: " + plan.error().message;
  }
  return r;
}

nlohmann::json ToJson(const StatusReport& r) {
  using J = nlohmann::json;
  J j;
  j["target"] = r.target;
  j["version"] = r.version;
  j["database"] = r.database;
  j["size_bytes"] = r.size_bytes;
  J c = J::object();
  for (const auto& [s, n] : r.connections) c[s] = n;
  j["connections"] = {{"total", r.connections_total}, {"max", r.max_connections}, {"by_state", c}};
  j["cache_hit_ratio"] = r.cache_hit_ratio ? J(*r.cache_hit_ratio) : J(nullptr);
  j["xid_age"] = r.xid_age;
  j["autovacuum_freeze_max_age"] = r.autovacuum_freeze_max_age;
  J tabs = J::array();
  for (const auto& t : r.largest) {
    auto opt = [](const std::string& s) { return s.empty() ? J(nullptr) : J(s); };
    tabs.push_back({{"schema", t.schema}, {"name", t.name}, {"partitioned", t.partitioned}, {"rows", t.rows},
                    {"size_bytes", t.size_bytes}, {"dead_rows", t.dead_rows}, {"last_vacuum", opt(t.last_vacuum)},
                    {"last_vacuum_kind", opt(t.last_vacuum_kind)}, {"last_analyze", opt(t.last_analyze)},
                    {"last_analyze_kind", opt(t.last_analyze_kind)}});
  }
  j["largest_tables"] = tabs;
  J pts = J::array();
  for (const auto& p : r.partitioned) {
    J parts = J::array();
    for (const auto& s : p.partitions)
      parts.push_back({{"name", s.name}, {"bound", s.bound}, {"rows", s.rows}, {"default", s.is_default}});
    pts.push_back({{"schema", p.schema}, {"name", p.name}, {"key", p.key}, {"managed", p.managed},
                   {"default_rows", p.default_rows}, {"partitions", parts}});
  }
  j["partitioned_tables"] = pts;
  J set = J::array();
  for (const auto& s : r.settings_off) {
    set.push_back({{"name", s.name}, {"current", s.current}, {"recommended", s.recommended}, {"unit", s.unit},
                   {"action", s.action}, {"reason", s.reason}});
  }
  j["settings_differing"] = set;
  j["settings_note"] = r.settings_note;
  j["problems"] = r.problems;
  return j;
}

std::string RenderStatus(const StatusReport& r) {
  std::ostringstream o;
  char buf[512];
  o << "Database   " << r.database << " on " << r.target << "\n";
  o << "Version    PostgreSQL " << r.version << "\n";
  o << "Size       " << HumanBytes(r.size_bytes) << "\n";
  o << "Connections " << r.connections_total << " / " << r.max_connections << " max";
  if (!r.connections.empty()) {
    o << " (";
    for (size_t i = 0; i < r.connections.size(); ++i)
      o << (i ? ", " : "") << r.connections[i].second << " " << r.connections[i].first;
    o << ")";
  }
  o << "\n";
  if (r.cache_hit_ratio) {
    std::snprintf(buf, sizeof buf, "%.2f%%", *r.cache_hit_ratio * 100);
    o << "Cache hit  " << buf << "\n";
  } else {
    o << "Cache hit  n/a (no reads yet)\n";
  }
  std::snprintf(buf, sizeof buf, "%lld (%.1f%% of autovacuum_freeze_max_age)", static_cast<long long>(r.xid_age),
                100.0 * static_cast<double>(r.xid_age) / static_cast<double>(r.autovacuum_freeze_max_age));
  o << "XID age    " << buf << "\n\n";
  o << "Largest tables\n";
  std::snprintf(buf, sizeof buf, "  %-32s %12s %10s %10s  %-28s %-28s\n", "TABLE", "ROWS", "SIZE", "DEAD",
                "LAST VACUUM", "LAST ANALYZE");
  o << buf;
  for (const auto& t : r.largest) {
    std::string name = t.schema + "." + t.name + (t.partitioned ? " (p)" : "");
    std::string lv = t.last_vacuum.empty() ? "never" : t.last_vacuum.substr(0, 19) + " " + t.last_vacuum_kind;
    std::string la = t.last_analyze.empty() ? "never" : t.last_analyze.substr(0, 19) + " " + t.last_analyze_kind;
    std::snprintf(buf, sizeof buf, "  %-32s %12lld %10s %10lld  %-28s %-28s\n", name.c_str(),
                  static_cast<long long>(t.rows), HumanBytes(t.size_bytes).c_str(), static_cast<long long>(t.dead_rows),
                  lv.c_str(), la.c_str());
    o << buf;
  }
  if (r.largest.empty()) o << "  (no user tables)\n";
  o << "\nPartitioned tables\n";
  if (r.partitioned.empty()) o << "  (none)\n";
  for (const auto& p : r.partitioned) {
    o << "  " << p.schema << "." << p.name << "  " << p.key << "  " << p.partitions.size() << " partitions"
      << (p.managed ? ", managed by cbctl" : "") << ", " << p.default_rows << " rows in default\n";
    for (const auto& s : p.partitions) {
      std::snprintf(buf, sizeof buf, "    %-40s %12lld  %s\n", s.name.c_str(), static_cast<long long>(s.rows),
                    s.bound.c_str());
      o << buf;
    }
  }
  o << "\nSettings that differ from the recommendation";
  if (!r.settings_note.empty()) o << " (" << r.settings_note << ")";
  o << "\n";
  for (const auto& s : r.settings_off) {
    std::snprintf(buf, sizeof buf, "  %-34s %12s -> %-12s %-8s %s\n", s.name.c_str(), s.current.c_str(),
                  s.recommended.c_str(), s.action.c_str(), s.reason.c_str());
    o << buf;
  }
  if (r.settings_off.empty()) o << "  (none)\n";
  if (!r.problems.empty()) {
    o << "\nProblems\n";
    for (const auto& p : r.problems) o << "  ! " << p << "\n";
  }
  return o.str();
}

}  // namespace cb::db
