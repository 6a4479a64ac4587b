#include "controlplane/db/tune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "agents/hoststats.h"
#include "controlplane/db/schema.h"
#include "controlplane/db/sql.h"

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {
namespace {

constexpr uint64_t kKB = 1024, kMB = 1024 * kKB, kGB = 1024 * kMB;

// Bytes per unit of a memory setting; 0 when the unit is not a memory unit.
uint64_t UnitBytes(const std::string& unit) {
  if (unit == "B") return 1;
  if (unit == "kB") return kKB;
  if (unit == "8kB") return 8 * kKB;
  if (unit == "16kB") return 16 * kKB;
  if (unit == "32kB") return 32 * kKB;
  if (unit == "MB") return kMB;
  if (unit == "GB") return kGB;
  return 0;
}

std::string FormatReal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

double ToDouble(const std::string& s, double dflt = 0) {
  try {
    return std::stod(s);
  } catch (...) {
    return dflt;
  }
}

struct Rec {
  std::string name;
  double value;       // bytes for memory settings, else the plain number
  bool memory;
  std::string reason;
};

}  // namespace

std::string FormatBytes(uint64_t b) {
  if (b >= kGB && b % kGB == 0) return std::to_string(b / kGB) + "GB";
  if (b >= kMB && b % kMB == 0) return std::to_string(b / kMB) + "MB";
  if (b % kKB == 0) return std::to_string(b / kKB) + "kB";
  return std::to_string(b) + "B";
}

Result<uint64_t> ParseSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return Err(Code::kInvalidArgument, "size '{}': expected a number with a unit, e.g. 16GB", text);
  double n = ToDouble(text.substr(0, i), -1);
  if (n <= 0) return Err(Code::kInvalidArgument, "size '{}': must be positive", text);
  std::string u = text.substr(i);
  uint64_t mul;
  if (u.empty() || u == "MB" || u == "MiB" || u == "M") mul = kMB;
  else if (u == "GB" || u == "GiB" || u == "G") mul = kGB;
  else if (u == "TB" || u == "TiB" || u == "T") mul = kGB * 1024;
  else if (u == "kB" || u == "KiB" || u == "K" || u == "KB") mul = kKB;
  else return Err(Code::kInvalidArgument, "size '{}': unknown unit '{}' (kB, MB, GB, TB)", text, u);
  return static_cast<uint64_t>(n * static_cast<double>(mul));
}

bool IsLocalHost(const std::string& host) {
  if (host.empty() || host[0] == '/' || host[0] == '@') return true;
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  return host.rfind("127.", 0) == 0;
}

bool TunePlan::HasChanges() const {
  return std::any_of(items.begin(), items.end(), [](const TuneItem& i) { return i.action != "skip"; });
}

std::vector<TuneItem> Recommend(const TuneInput& in, const std::map<std::string, PgSetting>& settings) {
  const double ram = static_cast<double>(in.ram_bytes);
  const int conns = in.max_connections > 0 ? in.max_connections : 200;
  const bool ssd = in.storage != "hdd";
  std::vector<Rec> recs;
  auto mem = [&](const std::string& n, double bytes, std::string why) { recs.push_back({n, bytes, true, std::move(why)}); };
  auto num = [&](const std::string& n, double v, std::string why) { recs.push_back({n, v, false, std::move(why)}); };
  std::string ram_s = FormatBytes(in.ram_bytes / kMB * kMB);
  double sb = ram / 4;
  mem("shared_buffers", sb, "Codebolt guidance: 25% of RAM (" + ram_s + ")");
  mem("effective_cache_size", ram * 3 / 4, "Codebolt guidance: 75% of RAM (" + ram_s + ")");
  double wm = 32.0 * kMB;
  std::string wm_why = "Codebolt guidance: 32MB";
  if (ram / conns < wm) {
    wm = std::max(4.0 * kMB, std::floor(ram / conns / kMB) * kMB);
    wm_why += ", capped at RAM / max_connections (" + std::to_string(conns) + ") on this small host";
  }
  mem("work_mem", wm, wm_why);
  double mwm = 512.0 * kMB;
  std::string mwm_why = "Codebolt guidance: 512MB";
  if (ram / 8 < mwm) {
    mwm = std::max(64.0 * kMB, std::floor(ram / 8 / kMB) * kMB);
    mwm_why += ", capped at RAM / 8 on this small host";
  }
  mem("maintenance_work_mem", mwm, mwm_why);
  num("max_connections", conns, in.max_connections == 200 ? "Codebolt guidance: 200" : "--max-connections");
  double wb = std::min(16.0 * kMB, std::max(64.0 * kKB, sb * 0.03));
  if (wb > 14.0 * kMB) wb = 16.0 * kMB;
  wb = std::floor(wb / (8 * kKB)) * 8 * kKB;
  mem("wal_buffers", wb, "pgtune: 3% of shared_buffers, at most 16MB");
  mem("min_wal_size", 1.0 * kGB, "pgtune (web/mixed): 1GB");
  mem("max_wal_size", 4.0 * kGB, "pgtune (web/mixed): 4GB");
  num("checkpoint_completion_target", 0.9, "pgtune: 0.9 spreads checkpoint writes");
  num("random_page_cost", ssd ? 1.1 : 4.0, ssd ? "pgtune: 1.1 for SSD storage" : "pgtune: 4 for HDD storage");
  num("effective_io_concurrency", ssd ? 200 : 2, ssd ? "pgtune: 200 for SSD storage" : "pgtune: 2 for HDD storage");
  num("default_statistics_target", 100, "pgtune: 100");
  int cpus = static_cast<int>(std::floor(in.cpus + 1e-9));
  if (cpus >= 4) {
    int half = std::min(4, (cpus + 1) / 2);
    num("max_worker_processes", cpus, "pgtune: one per CPU (" + std::to_string(cpus) + ")");
    num("max_parallel_workers", cpus, "pgtune: one per CPU (" + std::to_string(cpus) + ")");
    num("max_parallel_workers_per_gather", half, "pgtune: half the CPUs, at most 4");
    num("max_parallel_maintenance_workers", half, "pgtune: half the CPUs, at most 4");
  }

  std::vector<TuneItem> out;
  for (const auto& r : recs) {
    auto it = settings.find(r.name);
    if (it == settings.end()) continue;
    const PgSetting& s = it->second;
    TuneItem item;
    item.name = r.name;
    item.unit = s.unit;
    item.reason = r.reason;
    uint64_t ub = UnitBytes(s.unit);
    double cur = ToDouble(s.setting);
    double rec_units;  // in the setting's own unit
    if (r.memory && ub) {
      // Whole MB above 64MB, like pgtune, so the value reads well ("6026MB", not "6170944kB").
      double v = r.value >= 64.0 * kMB ? std::floor(r.value / kMB) * kMB : r.value;
      rec_units = std::floor(v / static_cast<double>(ub));
    } else {
      rec_units = r.value;
    }
    if (s.vartype == "integer") rec_units = std::round(rec_units);
    if (!s.min_val.empty() && rec_units < ToDouble(s.min_val)) {
      rec_units = ToDouble(s.min_val);
      item.reason += "; raised to Postgres's minimum " + s.min_val;
    }
    if (!s.max_val.empty() && rec_units > ToDouble(s.max_val)) {
      rec_units = ToDouble(s.max_val);
      item.reason += "; lowered to Postgres's maximum " + s.max_val;
    }
    if (r.memory && ub) {
      item.current = FormatBytes(static_cast<uint64_t>(cur) * ub);
      item.recommended = FormatBytes(static_cast<uint64_t>(rec_units) * ub);
    } else if (s.vartype == "integer") {
      item.current = s.setting;
      item.recommended = std::to_string(static_cast<int64_t>(rec_units));
    } else {
      item.current = s.setting;
      item.recommended = FormatReal(rec_units);
    }
    bool within = cur == rec_units || (cur != 0 && std::fabs(rec_units - cur) / std::fabs(cur) <= 0.05);
    if (within) {
      item.action = "skip";
      item.reason = (cur == rec_units ? "already " : "within 5% of ") + item.recommended + " (" + item.reason + ")";
    } else if (s.context == "internal") {
      item.action = "skip";
      item.reason += "; cannot be changed (internal)";
    } else {
      item.action = s.context == "postmaster" ? "restart" : "reload";
    }
    out.push_back(item);
  }
  return out;
}

Result<TunePlan> PlanTune(Db& db, const TuneOptions& o) {
  TunePlan plan;
  TuneInput& in = plan.input;
  in.max_connections = o.max_connections;
  if (o.storage != "ssd" && o.storage != "hdd") {
    return Err(Code::kInvalidArgument, "--storage {}: expected ssd or hdd", o.storage);
  }
  if (o.max_connections < 1 || o.max_connections > 262143) {
    return Err(Code::kInvalidArgument, "--max-connections {}: expected 1..262143", o.max_connections);
  }
  in.storage = o.storage;
  std::vector<std::string> sources;
  if (!o.ram_bytes || !o.cpus) {
    if (!IsLocalHost(o.db_host)) {
      return Err(Code::kInvalidArgument,
                 "the database host '{}' is not this machine, so its RAM and CPUs cannot be read here; pass --ram "
                 "and --cpus (the database host's own limits, e.g. its container's)",
                 o.db_host);
    }
    CB_TRY(auto res, DetectEffectiveResources(o.resource_root));
    if (!o.ram_bytes) {
      in.ram_bytes = res.memory_bytes;
      sources.push_back("RAM " + FormatBytes(in.ram_bytes / kMB * kMB) + " from " +
                        (res.cgroup.memory_source.empty() ? std::string("/proc/meminfo")
                                                          : "cgroup " + res.cgroup.memory_source));
    }
    if (!o.cpus) {
      in.cpus = res.cpus;
      sources.push_back("CPUs " + FormatReal(in.cpus) + " from " +
                        (res.cgroup.cpu_source.empty() ? std::string("online CPUs") : "cgroup " + res.cgroup.cpu_source));
    }
  }
  if (o.ram_bytes) {
    in.ram_bytes = *o.ram_bytes;
    sources.push_back("RAM " + FormatBytes(in.ram_bytes) + " from --ram");
  }
  if (o.cpus) {
    if (*o.cpus <= 0) return Err(Code::kInvalidArgument, "--cpus {}: must be positive", *o.cpus);
    in.cpus = *o.cpus;
    sources.push_back("CPUs " + FormatReal(in.cpus) + " from --cpus");
  }
  for (size_t i = 0; i < sources.size(); ++i) in.resources_source += (i ? "; " : "") + sources[i];
  if (in.ram_bytes < 256 * kMB) {
    return Err(Code::kInvalidArgument, "RAM {} is too small to tune for (at least 256MB)", FormatBytes(in.ram_bytes));
  }
  CB_TRY(auto rows, db.Exec("SELECT name, setting, coalesce(unit, '') AS unit, vartype, context, "
                            "coalesce(min_val, '') AS min_val, coalesce(max_val, '') AS max_val, pending_restart "
                            "FROM pg_settings"));
  std::map<std::string, PgSetting> settings;
  for (size_t i = 0; i < rows.size(); ++i) {
    PgSetting s{rows.Get(i, "name"), rows.Get(i, "setting"), rows.Get(i, "unit"), rows.Get(i, "vartype"),
                rows.Get(i, "context"), rows.Get(i, "min_val"), rows.Get(i, "max_val"),
                rows.GetBool(i, "pending_restart")};
    settings[s.name] = s;
  }
  plan.items = Recommend(in, settings);
  return plan;
}

namespace {

Result<std::vector<std::string>> FileErrors(Db& db) {
  CB_TRY(auto r, db.Exec("SELECT sourcefile, sourceline, coalesce(name, '') AS name, error FROM pg_file_settings "
                         "WHERE error IS NOT NULL AND error <> 'setting could not be applied' "
                         "AND error NOT LIKE '%cannot be changed without restarting the server%'"));
  // "setting could not be applied" is how Postgres marks a restart-only setting changed in a
  // file, and "parameter … cannot be changed without restarting the server" (no file) one
  // removed from it (e.g. by an earlier --restore): both are a pending restart, not an error.
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    out.push_back(r.Get(i, "sourcefile") + ":" + r.Get(i, "sourceline") + ": " + r.Get(i, "name") + ": " +
                  r.Get(i, "error"));
  }
  return out;
}

Result<void> ReloadAndWait(Db& db) {
  CB_TRY_VOID(db.Exec("SELECT pg_reload_conf()"));
  // The reload is asynchronous; give the postmaster and this backend a moment to pick it up.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return Ok();
}

Result<std::vector<std::string>> PendingRestart(Db& db, const std::vector<std::string>& names) {
  if (names.empty()) return std::vector<std::string>{};
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) list += (i ? ", " : "") + QuoteLiteral(names[i]);
  CB_TRY(auto r, db.Exec("SELECT name FROM pg_settings WHERE pending_restart AND name IN (" + list + ") ORDER BY name"));
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) out.push_back(r.Get(i, "name"));
  return out;
}

Error PrivilegeError(const Error& e) {
  if (e.code == Code::kPermissionDenied) {
    return Error{Code::kPermissionDenied,
                 "insufficient privileges to change server settings (" + e.message +
                     "); run as a superuser, or GRANT ALTER SYSTEM ON PARAMETER … to this role"};
  }
  return e;
}

}  // namespace

Result<TuneResult> ApplyTune(Db& db, const TunePlan& plan) {
  CB_TRY(auto super, QueryValue(db, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"));
  if (super != "t") {
    return Err(Code::kPermissionDenied,
               "insufficient privileges: db tune --apply needs a superuser (ALTER SYSTEM and pg_file_settings); "
               "connect as one, or apply the plan by hand");
  }
  CB_TRY_VOID(EnsureSchema(db));
  CB_TRY(auto lock, OpLock::Acquire(db, "tune", "database", true));
  TuneResult res;
  CB_TRY(auto batch, QueryValue(db, "SELECT nextval('cbctl.tune_batch')"));
  res.batch = std::stoll(batch);
  std::vector<std::string> restart_names;
  for (const auto& it : plan.items) {
    if (it.action == "skip") continue;
    CB_TRY(auto prev, db.Exec("SELECT (SELECT setting FROM pg_file_settings WHERE name = " + QuoteLiteral(it.name) +
                              " AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1) AS auto_conf, "
                              "current_setting(" + QuoteLiteral(it.name) + ") AS cur"));
    std::string auto_conf = prev.IsNull(0, "auto_conf") ? "NULL" : QuoteLiteral(prev.Get(0, "auto_conf"));
    CB_TRY_VOID(db.Exec("INSERT INTO cbctl.tune_history(batch, name, previous_auto_conf, previous_setting, new_value) "
                        "VALUES (" + batch + ", " + QuoteLiteral(it.name) + ", " + auto_conf + ", " +
                        QuoteLiteral(prev.Get(0, "cur")) + ", " + QuoteLiteral(it.recommended) + ")"));
    auto r = db.Exec("ALTER SYSTEM SET " + QuoteIdent(it.name) + " = " + QuoteLiteral(it.recommended));
    if (!r) return tl::unexpected(PrivilegeError(r.error()));
    res.applied.push_back(it);
    if (it.action == "restart") restart_names.push_back(it.name);
  }
  CB_TRY_VOID(ReloadAndWait(db));
  CB_TRY(res.file_errors, FileErrors(db));
  CB_TRY(res.pending_restart, PendingRestart(db, restart_names));
  (void)lock.Release();
  if (!res.file_errors.empty()) {
    std::string all;
    for (const auto& e : res.file_errors) all += "\n  " + e;
    return Err(Code::kFailedPrecondition,
               "the configuration has errors after the change (Postgres kept the old values):{}\nput the previous "
               "values back with `cbctl db tune --restore`",
               all);
  }
  return res;
}

Result<TuneResult> RestoreTune(Db& db) {
  CB_TRY(bool schema, SchemaExists(db));
  if (!schema) return Err(Code::kNotFound, "nothing to restore: db tune --apply never ran on this database");
  CB_TRY(auto lock, OpLock::Acquire(db, "tune", "database", true));
  CB_TRY(auto batch, QueryValue(db, "SELECT max(batch) FROM cbctl.tune_history WHERE restored_at IS NULL"));
  if (batch.empty()) return Err(Code::kNotFound, "nothing to restore: every applied tune has been restored already");
  CB_TRY(auto rows, db.Exec("SELECT name, previous_auto_conf, previous_setting, new_value FROM cbctl.tune_history "
                            "WHERE batch = " + batch + " ORDER BY name"));
  TuneResult res;
  res.batch = std::stoll(batch);
  std::vector<std::string> names;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string name = rows.Get(i, "name");
    Result<Rows> r;
    TuneItem item;
    item.name = name;
    item.current = rows.Get(i, "new_value");
    if (rows.IsNull(i, "previous_auto_conf")) {
      r = db.Exec("ALTER SYSTEM RESET " + QuoteIdent(name));
      item.recommended = "(default: " + rows.Get(i, "previous_setting") + ")";
    } else {
      r = db.Exec("ALTER SYSTEM SET " + QuoteIdent(name) + " = " + QuoteLiteral(rows.Get(i, "previous_auto_conf")));
      item.recommended = rows.Get(i, "previous_auto_conf");
    }
    if (!r) return tl::unexpected(PrivilegeError(r.error()));
    CB_TRY(auto ctx, QueryValue(db, "SELECT context FROM pg_settings WHERE name = " + QuoteLiteral(name)));
    item.action = ctx == "postmaster" ? "restart" : "reload";
    item.reason = "restored from batch " + batch;
    if (item.action == "restart") names.push_back(name);
    res.applied.push_back(item);
  }
  CB_TRY_VOID(ReloadAndWait(db));
  CB_TRY_VOID(db.Exec("UPDATE cbctl.tune_history SET restored_at = now() WHERE batch = " + batch));
  CB_TRY(res.file_errors, FileErrors(db));
  CB_TRY(res.pending_restart, PendingRestart(db, names));
  (void)lock.Release();
  return res;
}

Result<std::string> RestartAdvice(Db& db) {
  auto dir = QueryValue(db, "SELECT current_setting('data_directory')");
  std::string d = dir && !dir->empty() ? *dir : "<data directory>";
  return "this Postgres is not a service cbctl supervises; restart it with its own service manager, e.g. "
         "`systemctl restart postgresql` or `pg_ctl restart -D " + d + " -m fast` (as its OS user)";
}

RestartDecision DecideRestart(const std::vector<std::string>& pending, bool restart, const std::string& spec_source,
                              const std::string& db_service, const std::vector<std::string>& service_hosts) {
  RestartDecision d;
  if (pending.empty()) return d;
  d.kind = RestartDecision::Kind::kAdvise;
  if (!restart) return d;
  if (spec_source.empty()) {
    d.note = "no fleet spec (pass -f fleet.yaml, or reach the cbctld that stores it with --server) names the "
             "service that runs Postgres";
    return d;
  }
  if (db_service.empty()) {
    d.note = spec_source + ": database.service is not set (name the services: entry that runs Postgres to let "
             "cbctl restart it)";
    return d;
  }
  if (service_hosts.size() > 1) {
    d.note = spec_source + ": service '" + db_service + "' runs on " + std::to_string(service_hosts.size()) +
             " hosts; restart the right one with `cbctl svc restart " + db_service + "@HOST`";
    return d;
  }
  d.kind = RestartDecision::Kind::kRestart;
  d.service_address = db_service;
  return d;
}

Result<std::vector<std::string>> StillPendingRestart(Db& db, const std::vector<std::string>& names) {
  CB_TRY(Rows r, db.Exec("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name"));
  std::vector<std::string> out;
  for (size_t i = 0; i < r.size(); ++i) {
    std::string n = r.Get(i, "name");
    if (std::find(names.begin(), names.end(), n) != names.end()) out.push_back(n);
  }
  return out;
}

}  // namespace cb::db
