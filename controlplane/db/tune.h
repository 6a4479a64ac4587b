// `cbctl db tune`: recommends Postgres settings for the hardware the database really has and
// applies or restores them.
//
// Recommendations (Recommend(), pure):
//   Codebolt guidance: shared_buffers 25% of RAM, effective_cache_size 75%, work_mem 32MB,
//   maintenance_work_mem 512MB, max_connections 200 (--max-connections overrides) — with two
//   safety caps on small hosts, each stated in the reason: work_mem ≤ RAM / max_connections
//   (at least 4MB), maintenance_work_mem ≤ RAM / 8 (at least 64MB).
//   pgtune where the guidance is silent ("web/mixed" profile): wal_buffers 3% of shared_buffers
//   (16MB max), min_wal_size 1GB, max_wal_size 4GB, checkpoint_completion_target 0.9,
//   random_page_cost 1.1 ssd / 4 hdd, effective_io_concurrency 200 ssd / 2 hdd,
//   default_statistics_target 100, and with 4 or more CPUs max_worker_processes = CPUs,
//   max_parallel_workers = CPUs, max_parallel_workers_per_gather and
//   max_parallel_maintenance_workers = min(4, ceil(CPUs / 2)).
//   Each value is clamped to pg_settings.min_val/max_val; a change within 5% of the current
//   value is skipped; the action is "restart" when pg_settings.context is postmaster, else
//   "reload".
// RAM and CPUs: flags override; else, when the database is on this machine (unix socket,
// localhost, 127.x, ::1), the cgroup v2/v1 limits before /proc (agents/hoststats.h); for any
// other host --ram and --cpus are required (kInvalidArgument says so).
// Apply: ALTER SYSTEM for each change, pg_reload_conf(), then pg_file_settings is checked for
// errors; the previous postgresql.auto.conf values are stored in cbctl.tune_history first, so
// Restore() puts them back (ALTER SYSTEM RESET where there was none).
//
// Thread-safety: functions use the Db they are given from the calling thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/db/conn.h"
#include "core/result.h"

namespace cb::db {

struct PgSetting {
  std::string name, setting, unit, vartype, context, min_val, max_val;
  bool pending_restart = false;
};

struct TuneInput {
  uint64_t ram_bytes = 0;
  double cpus = 0;
  int max_connections = 200;
  std::string storage = "ssd";  // ssd | hdd
  std::string resources_source; // "cgroup v1 memory.limit_in_bytes", "--ram/--cpus", …
};

struct TuneItem {
  std::string name;
  std::string current;       // as shown: "128MB", "0.5", "100"
  std::string recommended;   // as shown and as written to ALTER SYSTEM: "4GB", "1.1"
  std::string unit;          // pg_settings.unit ("8kB", "kB", "MB", "") 
  std::string action;        // reload | restart | skip
  std::string reason;
};

// Pure: the plan for `settings` (name -> pg_settings row). Settings missing from the map are
// left out.
std::vector<TuneItem> Recommend(const TuneInput& in, const std::map<std::string, PgSetting>& settings);

// "4GB", "512MB", "64kB" for a byte count (largest exact unit).
std::string FormatBytes(uint64_t bytes);
// "8GB", "512MiB", "1.5G" (decimal allowed), "2048" (MB when unitless). Error names the text.
Result<uint64_t> ParseSize(const std::string& text);

// Whether a libpq host value means this machine.
bool IsLocalHost(const std::string& host);

struct TuneOptions {
  std::optional<uint64_t> ram_bytes;     // --ram
  std::optional<double> cpus;            // --cpus
  int max_connections = 200;
  std::string storage = "ssd";
  std::string db_host;                   // libpq host of the connection ("" = default socket)
  std::string resource_root;             // test seam: "" = the real /proc and /sys
};

struct TunePlan {
  TuneInput input;
  std::vector<TuneItem> items;
  bool HasChanges() const;
};

// Reads pg_settings and the host resources, returns the plan (no change made).
Result<TunePlan> PlanTune(Db& db, const TuneOptions& opts);

struct TuneResult {
  int64_t batch = 0;
  std::vector<TuneItem> applied;           // reload + restart items written
  std::vector<std::string> pending_restart;// names that need a restart to take effect
  std::vector<std::string> file_errors;    // pg_file_settings errors after the reload
};
// Applies the plan's changes (ALTER SYSTEM + reload). Needs superuser (or ALTER SYSTEM grants):
// kPermissionDenied says so. Errors in pg_file_settings make it fail (kFailedPrecondition) after
// telling which file/line; the previous values stay recorded for Restore().
Result<TuneResult> ApplyTune(Db& db, const TunePlan& plan);
// Puts back the values from before the latest applied, unrestored batch. kNotFound when there
// is none.
Result<TuneResult> RestoreTune(Db& db);
// How to restart this Postgres (it is not a service cbctl supervises): data directory based.
Result<std::string> RestartAdvice(Db& db);

// `db tune --restart`: what to do about settings pending a restart (pure).
//   kNothing  nothing is pending;
//   kAdvise   print RestartAdvice (no --restart; or --restart but Postgres is not a service cbctl
//             supervises: `note` says why, e.g. "the spec's database has no `service:`");
//   kRestart  ask cbctld to restart `service_address` (POST /v1/services/{addr}/restart), wait
//             until Postgres accepts connections, then check nothing is pending any more.
struct RestartDecision {
  enum class Kind { kNothing, kAdvise, kRestart };
  Kind kind = Kind::kNothing;
  std::string service_address;  // kRestart: the service's address ("postgres", or "postgres@db1")
  std::string note;             // kAdvise with --restart: why cbctl does not restart it
};
// pending: names pending a restart; restart: --restart given; spec_source: where the spec came
// from ("" = no spec: neither -f nor a reachable cbctld); db_service: its database.service ("" =
// none); service_hosts: the hosts that services: entry runs on.
RestartDecision DecideRestart(const std::vector<std::string>& pending, bool restart, const std::string& spec_source,
                              const std::string& db_service, const std::vector<std::string>& service_hosts);

// Names among `names` that pg_settings still marks pending_restart (after a restart: the ones
// that did not take effect).
Result<std::vector<std::string>> StillPendingRestart(Db& db, const std::vector<std::string>& names);

}  // namespace cb::db
