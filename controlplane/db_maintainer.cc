#include "controlplane/db_maintainer.h"

#include <fmt/format.h>

#include "controlplane/metrics.h"
#include "core/spec.h"
#include "core/units.h"

namespace cb::cp {

Result<std::optional<MaintainJob>> MaintainJobFromSpec(const std::string& yaml) {
  CB_TRY(FleetSpec spec, ParseFleetSpecOrError(yaml, "stored spec"));
  const auto& d = spec.database;
  if (d.IsSqlite() || !d.partitioning || d.partitioning->tables.empty()) return std::optional<MaintainJob>();
  MaintainJob job;
  job.db_url = d.url;
  job.password_file = d.password_file;
  job.options.tables = d.partitioning->tables;
  job.options.skip_unpartitioned = true;
  job.options.premake = d.partitioning->premake;
  if (d.partitioning->retention) job.options.retention = FormatPeriod(*d.partitioning->retention);
  job.options.drop = false;  // the schedule detaches only, never drops
  return std::optional<MaintainJob>(std::move(job));
}

DbMaintainer::DbMaintainer(SpecFn spec, RunFn run, LogFn log, AuditFn audit, DbMaintainerOptions options)
    : spec_(std::move(spec)), run_(std::move(run)), log_(std::move(log)), audit_(std::move(audit)),
      options_(options) {}

std::optional<MonoTime> DbMaintainer::NextDue() const { return next_due_; }

DbMaintainer::Stats DbMaintainer::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

namespace {
// "12 rows of 2026-03" -> 12.
int64_t LeadingInt(const std::string& s) {
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') break;
    n = n * 10 + (c - '0');
  }
  return n;
}
}  // namespace

bool DbMaintainer::Step(MonoTime mono, WallTime wall) {
  if (next_due_ && mono < *next_due_) return false;
  next_due_ = mono + options_.interval;

  wire::AuditEntry audit;
  audit.at = FormatWallTime(wall);
  audit.actor = "cbctld";
  audit.action = "db maintain";
  auto fail = [&](const std::string& target, const Error& e) {
    log_(fmt::format("db maintain: {}; retrying in {:.0f}s", e.message, ToSeconds(options_.interval)));
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.runs_error++;
    }
    audit.target = target;
    audit.result = std::string(CodeName(e.code));
    audit.status = 1;
    audit.detail = e.message;
    audit_(audit);
  };

  auto yaml = spec_();
  if (!yaml) {
    fail("stored spec", yaml.error());
    return true;
  }
  if (!*yaml) return true;  // no spec applied yet: nothing to maintain
  auto job = MaintainJobFromSpec(**yaml);
  if (!job) {
    fail("stored spec", job.error());
    return true;
  }
  if (!*job) return true;  // no partitioning section / SQLite: nothing to do
  std::string target = "tables " + fmt::format("{}", fmt::join((*job)->options.tables, ","));
  auto rep = run_(**job, wall);
  if (!rep) {
    fail(target, rep.error());
    return true;
  }
  int64_t created = 0, detached = 0;
  std::map<std::string, int64_t> defaults;
  for (const auto& t : (*job)->options.tables) defaults[t] = 0;
  for (const auto& a : rep->actions) {
    if (!a.done) continue;
    if (a.kind == "create") ++created;
    if (a.kind == "detach") ++detached;
  }
  for (const auto& a : rep->actions) {
    if (a.kind != "move-default") continue;
    // a.table is the quoted qualified name ("public"."event_log"); label by the spec's name when it matches.
    std::string label = a.table;
    for (const auto& t : (*job)->options.tables) {
      if (a.table == t || a.table.ends_with("\"" + t + "\"")) label = t;
    }
    defaults[label] += LeadingInt(a.detail);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.runs_ok++;
    stats_.created += created;
    stats_.detached += detached;
    stats_.last_success = wall;
    stats_.default_rows = defaults;
  }
  std::string summary = fmt::format("{} partition(s) created, {} detached, {} action(s), {} problem(s)", created,
                                    detached, rep->actions.size(), rep->problems.size());
  log_("db maintain: " + target + ": " + summary);
  for (const auto& p : rep->problems) log_("db maintain: problem: " + p);
  audit.target = target;
  audit.result = rep->problems.empty() ? "ok" : "problems";
  audit.status = 0;
  audit.detail = summary;
  for (const auto& p : rep->problems) audit.detail += "; " + p;
  audit_(audit);
  return true;
}

std::string DbMaintainer::RenderMetrics() const {
  Stats s = stats();
  std::string out;
  out += "# HELP cbctld_db_maintain_runs_total Scheduled db maintenance passes by result.\n"
         "# TYPE cbctld_db_maintain_runs_total counter\n";
  out += fmt::format("cbctld_db_maintain_runs_total{{result=\"ok\"}} {}\n", s.runs_ok);
  out += fmt::format("cbctld_db_maintain_runs_total{{result=\"error\"}} {}\n", s.runs_error);
  out += "# HELP cbctld_db_default_partition_rows Rows the last maintenance pass found in the table's default "
         "partition (a problem; they were moved into their own partitions).\n"
         "# TYPE cbctld_db_default_partition_rows gauge\n";
  for (const auto& [t, n] : s.default_rows)
    out += fmt::format("cbctld_db_default_partition_rows{{table=\"{}\"}} {}\n", EscapeLabel(t), n);
  out += "# HELP cbctld_db_maintain_last_success_timestamp_seconds Unix time of the last successful maintenance "
         "pass (0: none yet).\n# TYPE cbctld_db_maintain_last_success_timestamp_seconds gauge\n";
  double ts = s.last_success ? std::chrono::duration<double>(s.last_success->time_since_epoch()).count() : 0.0;
  out += fmt::format("cbctld_db_maintain_last_success_timestamp_seconds {:.3f}\n", ts);
  out += "# HELP cbctld_db_maintain_partitions_created_total Partitions created by scheduled maintenance.\n"
         "# TYPE cbctld_db_maintain_partitions_created_total counter\n";
  out += fmt::format("cbctld_db_maintain_partitions_created_total {}\n", s.created);
  out += "# HELP cbctld_db_maintain_partitions_detached_total Partitions detached by scheduled maintenance.\n"
         "# TYPE cbctld_db_maintain_partitions_detached_total counter\n";
  out += fmt::format("cbctld_db_maintain_partitions_detached_total {}\n", s.detached);
  return out;
}

DbMaintainer::RunFn RealMaintainRunner() {
  return [](const MaintainJob& job, WallTime now) -> Result<db::MaintainReport> {
    db::ConnSource src;
    src.db_url = job.db_url;
    src.password_file = job.password_file;
    CB_TRY(db::ConnParams params, db::ResolveConn(src));
    params.source = "spec database.url";
    params.application_name = "cbctld maintain";
    CB_TRY(auto conn, db::Connect(params));
    CB_TRY(db::MaintainReport plan, db::PlanMaintain(*conn, job.options, now));
    auto r = db::RunMaintain(*conn, plan, job.options);
    if (!r) return tl::unexpected(r.error());
    return plan;
  };
}

}  // namespace cb::cp
