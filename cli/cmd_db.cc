// `cbctl db status|tune|partition|maintain|vacuum|cancel`: database operations that run in
// cbctl's own process (no daemon) through libcbdb (controlplane/db/). The connection comes from
// --db-url, -f fleet.yaml (database.url + password_file) or the PG* environment; the password
// from --password-file, the spec's password_file or PGPASSFILE — never from a flag value.
// Every mutating command prints its plan and asks on a terminal; --yes skips the question, and
// without a terminal --yes is required (exit 64).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/client.h"
#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "controlplane/db/conn.h"
#include "controlplane/db/maintain.h"
#include "controlplane/db/partition.h"
#include "controlplane/db/status.h"
#include "controlplane/db/tune.h"
#include "core/clock.h"
#include "core/spec.h"

namespace cb::cli {
namespace {

using Json = nlohmann::json;

std::atomic<bool> g_cancel{false};
extern "C" void OnSigint(int) { g_cancel.store(true); }

// Installs a SIGINT/SIGTERM handler that only sets g_cancel, restored on scope exit.
class CancelOnSignal {
 public:
  CancelOnSignal() {
    g_cancel = false;
    struct sigaction sa {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~CancelOnSignal() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

int Fail(Invocation& inv, const Error& e) { return PrintError(inv, e.message, ExitCodeFor(e.code)); }

struct Conn {
  std::unique_ptr<db::Db> db;
  db::ConnParams params;
};

// Resolves and opens the connection; prints warnings (URL with a password, loose file mode).
std::optional<Conn> OpenDb(Invocation& inv, int* exit_code) {
  db::ConnSource src{inv.args.Get("db-url"), inv.args.Get("password-file"), inv.args.Get("spec")};
  auto p = db::ResolveConn(src);
  if (!p) {
    *exit_code = p.error().code == Code::kInvalidArgument ? PrintUsageError(inv, p.error().message) : Fail(inv, p.error());
    return std::nullopt;
  }
  for (const auto& w : p->warnings) inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << w << "\n";
  auto c = db::Connect(*p);
  if (!c) {
    *exit_code = Fail(inv, c.error());
    return std::nullopt;
  }
  return Conn{std::move(*c), *p};
}

std::string DbHost(const db::ConnParams& p) {
  auto it = p.kv.find("host");
  if (it != p.kv.end()) return it->second;
  const char* env = std::getenv("PGHOST");
  return env ? env : "";
}

// Asks "Proceed? [y/N]" on a terminal. Returns kExitOk to go on, or the exit code to stop with.
int Confirm(Invocation& inv, const std::string& question) {
  if (inv.args.Flag("yes")) return kExitOk;
  if (!inv.io.in_tty) {
    return PrintUsageError(inv, "standard input is not a terminal: pass --yes to " + question);
  }
  inv.io.err << question << "? [y/N] " << std::flush;
  std::string answer;
  std::getline(inv.io.in, answer);
  if (answer == "y" || answer == "Y" || answer == "yes") return kExitOk;
  inv.io.err << "cancelled; nothing was changed\n";
  return kExitFailure;
}

std::optional<Format> OutputFormat(Invocation& inv, int* code) {
  auto f = ParseFormat(inv.args.Get("output").empty() ? "table" : inv.args.Get("output"));
  if (!f) {
    *code = PrintUsageError(inv, f.error().message);
    return std::nullopt;
  }
  return *f;
}

bool ParseInt(const std::string& s, int* out) {
  try {
    size_t n = 0;
    int v = std::stoi(s, &n);
    if (n != s.size()) return false;
    *out = v;
    return true;
  } catch (...) {
    return false;
  }
}

// Fills TuneOptions from --ram/--cpus/--max-connections/--storage; returns an exit code on bad input.
std::optional<db::TuneOptions> TuneOpts(Invocation& inv, const db::ConnParams& p, int* code) {
  db::TuneOptions o;
  o.db_host = DbHost(p);
  if (inv.args.Has("ram")) {
    auto r = db::ParseSize(inv.args.Get("ram"));
    if (!r) {
      *code = PrintUsageError(inv, "--ram: " + r.error().message);
      return std::nullopt;
    }
    o.ram_bytes = *r;
  }
  if (inv.args.Has("cpus")) {
    try {
      o.cpus = std::stod(inv.args.Get("cpus"));
    } catch (...) {
      *code = PrintUsageError(inv, "--cpus " + inv.args.Get("cpus") + ": expected a number");
      return std::nullopt;
    }
  }
  if (inv.args.Has("max-connections") && !ParseInt(inv.args.Get("max-connections"), &o.max_connections)) {
    *code = PrintUsageError(inv, "--max-connections " + inv.args.Get("max-connections") + ": expected an integer");
    return std::nullopt;
  }
  if (inv.args.Has("storage")) o.storage = inv.args.Get("storage");
  return o;
}

Json TuneItemsJson(const std::vector<db::TuneItem>& items) {
  Json a = Json::array();
  for (const auto& i : items) {
    a.push_back({{"name", i.name}, {"current", i.current}, {"recommended", i.recommended}, {"unit", i.unit},
                 {"action", i.action}, {"reason", i.reason}});
  }
  return a;
}

void PrintTuneTable(Invocation& inv, const std::vector<db::TuneItem>& items, bool include_skips) {
  Table t({"SETTING", "CURRENT", "RECOMMENDED", "ACTION", "REASON"});
  for (const auto& i : items) {
    if (!include_skips && i.action == "skip") continue;
    Color c = i.action == "restart" ? Color::kYellow : i.action == "reload" ? Color::kGreen : Color::kDim;
    t.Row({i.name, i.current, i.recommended, i.action, i.reason},
          {Color::kNone, Color::kNone, Color::kNone, c, Color::kNone}, inv.color_out);
  }
  inv.io.out << t.Render(inv.color_out);
}

}  // namespace

int CmdDbStatus(Invocation& inv) {
  int code = 0;
  auto fmt = OutputFormat(inv, &code);
  if (!fmt) return code;
  auto conn = OpenDb(inv, &code);
  if (!conn) return code;
  auto topts = TuneOpts(inv, conn->params, &code);
  if (!topts) return code;
  db::StatusOptions o;
  o.tune = *topts;
  if (inv.args.Has("top") && !ParseInt(inv.args.Get("top"), &o.top)) {
    return PrintUsageError(inv, "--top: expected an integer");
  }
  auto s = db::CollectStatus(*conn->db, o);
  if (!s) return Fail(inv, s.error());
  if (*fmt != Format::kTable) {
    PrintStructured(inv.io.out, db::ToJson(*s), *fmt);
  } else {
    inv.io.out << db::RenderStatus(*s);
  }
  return kExitOk;
}

// The spec's database.service for `db tune --restart`: from -f, else from the cbctld that
// --server / CBCTL_SERVER / the config names (its stored spec). source "" = no spec found
// (`why` says what was tried).
struct TuneSpecService {
  std::string source, service, why;
  std::vector<std::string> hosts;
};

Result<std::unique_ptr<ApiClient>> DaemonClient(Invocation& inv) {
  CB_TRY(ClientConfig config, ResolveClientConfig(inv.global, [](const char* n) {
           return static_cast<const char*>(std::getenv(n));
         }));
  for (const auto& w : config.warnings) inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << w << "\n";
  return std::make_unique<ApiClient>(std::move(config));
}

TuneSpecService FindTuneSpecService(Invocation& inv) {
  TuneSpecService out;
  std::string yaml, source;
  std::string file = inv.args.Get("spec");
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    yaml = ss.str();
    source = file;
  } else {
    auto client = DaemonClient(inv);
    if (!client) {
      inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << "--restart: " << client.error().message << "\n";
      return out;
    }
    auto r = (*client)->Get("/v1/spec");
    if (!r || !r->is_object() || !r->contains("yaml") || !(*r)["yaml"].is_string()) {
      inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << "--restart: cannot read cbctld's stored spec"
                 << (r ? std::string(" (none applied)") : ": " + r.error().message) << "\n";
      return out;
    }
    yaml = (*r)["yaml"].get<std::string>();
    source = "the spec stored in cbctld (" + (*client)->config().server + ")";
  }
  auto spec = ParseFleetSpecOrError(yaml, source);
  if (!spec) {
    inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << "--restart: " << spec.error().message << "\n";
    return out;
  }
  out.source = source;
  out.service = spec->database.service;
  for (const auto& c : spec->services) {
    if (c.name == out.service) out.hosts = c.hosts;
  }
  return out;
}

// Asks cbctld to restart the service running Postgres, waits (bounded) until a new postmaster
// accepts connections, and checks that `pending` are no longer pending. Replaces conn.db with
// the new connection.
Result<void> RestartSupervisedPostgres(Invocation& inv, Conn& conn, const std::string& address,
                                       const std::vector<std::string>& pending) {
  CB_TRY(std::string started_before, db::QueryValue(*conn.db, "SELECT pg_postmaster_start_time()::text"));
  CB_TRY(auto client, DaemonClient(inv));
  conn.db.reset();  // our own session must not hold up the shutdown
  auto r = client->Post("/v1/services/" + EncodePathSegment(address) + "/restart", Json::object());
  if (!r) {
    return Err(r.error().code, "asking cbctld ({}) to restart service {}: {}", client->config().server, address,
               r.error().message);
  }
  constexpr double kTimeoutSeconds = 120;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(static_cast<int>(kTimeoutSeconds));
  std::string last = "no attempt";
  while (true) {
    auto c = db::Connect(conn.params);
    if (c) {
      auto started = db::QueryValue(**c, "SELECT pg_postmaster_start_time()::text");
      if (started && *started != started_before) {
        conn.db = std::move(*c);
        break;
      }
      last = started ? "the old postmaster (started " + started_before + ") still answers" : started.error().message;
    } else {
      last = c.error().message;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Err(Code::kTimeout,
                 "service {} was restarted, but Postgres at {} did not accept connections as a new server within "
                 "{:.0f} s (last: {}); check `cbctl svc logs {}`",
                 address, conn.params.Redacted(), kTimeoutSeconds, last, address);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CB_TRY(auto still, db::StillPendingRestart(*conn.db, pending));
  if (!still.empty()) {
    std::string names;
    for (const auto& n : still) names += (names.empty() ? "" : ", ") + n;
    return Err(Code::kFailedPrecondition,
               "service {} was restarted but these settings are still pending a restart: {} (is it the Postgres "
               "at {}?)",
               address, names, conn.params.Redacted());
  }
  return Ok();
}

int CmdDbTune(Invocation& inv) {
  int code = 0;
  auto fmt = OutputFormat(inv, &code);
  if (!fmt) return code;
  bool apply = inv.args.Flag("apply"), restore = inv.args.Flag("restore"), dry = inv.args.Flag("dry-run");
  if ((apply && dry) || (restore && (apply || dry))) {
    return PrintUsageError(inv, "--apply, --dry-run and --restore exclude each other");
  }
  bool detailed = inv.args.Flag("detailed-exitcode");
  auto conn = OpenDb(inv, &code);
  if (!conn) return code;
  if (restore) {
    if (int c = Confirm(inv, "restore the settings from before the last `db tune --apply`"); c != kExitOk) return c;
    auto r = db::RestoreTune(*conn->db);
    if (!r) return Fail(inv, r.error());
    if (*fmt != Format::kTable) {
      PrintStructured(inv.io.out, Json{{"restored", TuneItemsJson(r->applied)}, {"pending_restart", r->pending_restart}}, *fmt);
    } else {
      inv.io.out << "Restored batch " << r->batch << ":\n";
      PrintTuneTable(inv, r->applied, true);
      if (!r->pending_restart.empty()) {
        auto adv = db::RestartAdvice(*conn->db);
        inv.io.out << "Pending restart for:";
        for (const auto& n : r->pending_restart) inv.io.out << " " << n;
        inv.io.out << "\n" << (adv ? *adv : "") << "\n";
      }
    }
    return kExitOk;
  }
  auto topts = TuneOpts(inv, conn->params, &code);
  if (!topts) return code;
  auto plan = db::PlanTune(*conn->db, *topts);
  if (!plan) return plan.error().code == Code::kInvalidArgument ? PrintUsageError(inv, plan.error().message)
                                                                : Fail(inv, plan.error());
  int changes_code = detailed && plan->HasChanges() ? kExitChanges : kExitOk;
  if (!apply) {
    if (*fmt != Format::kTable) {
      PrintStructured(inv.io.out, TuneItemsJson(plan->items), *fmt);
    } else {
      inv.io.out << "Tuning for " << plan->input.resources_source << ", max_connections " << plan->input.max_connections
                 << ", " << plan->input.storage << " storage\n";
      PrintTuneTable(inv, plan->items, true);
      inv.io.out << (plan->HasChanges() ? "Dry run: apply with `cbctl db tune --apply`.\n" : "Nothing to change.\n");
    }
    return changes_code;
  }
  if (!plan->HasChanges()) {
    if (*fmt != Format::kTable) PrintStructured(inv.io.out, TuneItemsJson(plan->items), *fmt);
    else inv.io.out << "Nothing to change.\n";
    return kExitOk;
  }
  if (*fmt == Format::kTable) {
    inv.io.out << "Plan (" << plan->input.resources_source << "):\n";
    PrintTuneTable(inv, plan->items, false);
  }
  if (int c = Confirm(inv, "apply these settings with ALTER SYSTEM and reload"); c != kExitOk) return c;
  auto res = db::ApplyTune(*conn->db, *plan);
  if (!res) return Fail(inv, res.error());
  std::string advice;
  bool restarted = false;
  std::optional<Error> restart_error;
  if (!res->pending_restart.empty()) {
    bool want = inv.args.Flag("restart");
    TuneSpecService svc;
    if (want) svc = FindTuneSpecService(inv);
    auto d = db::DecideRestart(res->pending_restart, want, svc.source, svc.service, svc.hosts);
    if (d.kind == db::RestartDecision::Kind::kRestart) {
      if (*fmt == Format::kTable) {
        inv.io.out << "Applied " << res->applied.size() << " setting(s) (batch " << res->batch
                   << "); restarting service " << d.service_address << " (" << svc.source << ") for:";
        for (const auto& n : res->pending_restart) inv.io.out << " " << n;
        inv.io.out << "\n" << std::flush;
      }
      auto r = RestartSupervisedPostgres(inv, *conn, d.service_address, res->pending_restart);
      if (r) {
        restarted = true;
        advice = "restarted service " + d.service_address + "; the pending settings took effect";
      } else {
        restart_error = r.error();
      }
    } else {
      auto adv = db::RestartAdvice(*conn->db);
      advice = adv ? *adv : "";
      if (want) advice = "--restart: not restarting: " + d.note + "; " + advice;
    }
  }
  if (restart_error) return Fail(inv, *restart_error);
  if (*fmt != Format::kTable) {
    PrintStructured(inv.io.out, Json{{"applied", TuneItemsJson(res->applied)}, {"batch", res->batch},
                                     {"pending_restart", restarted ? std::vector<std::string>{} : res->pending_restart},
                                     {"restarted", restarted}, {"restart_advice", advice}}, *fmt);
  } else if (restarted) {
    inv.io.out << "Done: " << advice << " (undo the settings with `cbctl db tune --restore`).\n";
  } else {
    inv.io.out << "Applied " << res->applied.size() << " setting(s) (batch " << res->batch
               << "; undo with `cbctl db tune --restore`).\n";
    if (!res->pending_restart.empty()) {
      inv.io.out << "Pending restart for:";
      for (const auto& n : res->pending_restart) inv.io.out << " " << n;
      inv.io.out << "\n" << advice << "\n";
    }
  }
  return detailed ? kExitChanges : kExitOk;
}

int CmdDbPartition(Invocation& inv) {
  int code = 0;
  auto fmt = OutputFormat(inv, &code);
  if (!fmt) return code;
  db::PartitionOptions o;
  o.table = inv.args.Get("table");
  o.column = inv.args.Get("column");
  if (inv.args.Has("interval")) o.interval = inv.args.Get("interval");
  if (inv.args.Has("premake") && !ParseInt(inv.args.Get("premake"), &o.premake)) {
    return PrintUsageError(inv, "--premake: expected an integer");
  }
  if (inv.args.Has("lock-timeout") && !ParseInt(inv.args.Get("lock-timeout"), &o.lock_timeout_ms)) {
    return PrintUsageError(inv, "--lock-timeout: expected milliseconds");
  }
  o.retention = inv.args.Get("retention");
  if (!o.retention.empty()) {
    if (auto r = db::ParseRetentionMonths(o.retention); !r) return PrintUsageError(inv, "--retention: " + r.error().message);
  }
  o.split_old = inv.args.Flag("split-old");
  o.wait_lock = !inv.args.Flag("no-wait");
  auto conn = OpenDb(inv, &code);
  if (!conn) return code;
  // Plan first (dry run), show it, ask, then run.
  db::PartitionOptions dry = o;
  dry.dry_run = true;
  auto plan = db::Partition(*conn->db, dry, *RealClock::Get());
  if (!plan) {
    return plan.error().code == Code::kInvalidArgument ? PrintUsageError(inv, plan.error().message)
                                                       : Fail(inv, plan.error());
  }
  if (plan->already_partitioned && !o.split_old) {
    if (*fmt != Format::kTable) PrintStructured(inv.io.out, Json{{"table", plan->table}, {"already_partitioned", true}}, *fmt);
    else inv.io.out << plan->table << " is already partitioned; nothing to do.\n";
    return kExitOk;
  }
  if (inv.args.Flag("dry-run")) {
    if (*fmt != Format::kTable) {
      PrintStructured(inv.io.out, Json{{"table", plan->table}, {"column", plan->column}, {"cutover", plan->cutover},
                                       {"resumed", plan->resumed}, {"notes", plan->notes}, {"statements", plan->statements}},
                      *fmt);
    } else {
      for (const auto& n : plan->notes) inv.io.out << "-- note: " << n << "\n";
      for (const auto& s : plan->statements) inv.io.out << s << ";\n";
    }
    return kExitOk;
  }
  if (*fmt == Format::kTable || inv.io.in_tty) {
    std::ostream& os = *fmt == Format::kTable ? inv.io.out : inv.io.err;
    os << "Partition " << plan->table << " by month on " << plan->column << "; rows below " << plan->cutover
       << " stay in one partition (" << plan->old_partition << "), new months get their own.\n";
    for (const auto& n : plan->notes) os << "note: " << n << "\n";
    os << "Steps: shell, bound, validate, index (no writer blocked), swap (lock_timeout " << o.lock_timeout_ms
       << " ms, retried), finish. `--dry-run` prints every statement.\n";
  }
  if (int c = Confirm(inv, "partition " + plan->table); c != kExitOk) return c;
  CancelOnSignal sig;
  o.cancel = &g_cancel;
  // A second connection to report index-build progress (rows/blocks done, ETA); optional.
  std::unique_ptr<db::Db> progress_conn;
  if (auto pc = db::Connect(conn->params); pc) {
    progress_conn = std::move(*pc);
    o.progress_db = progress_conn.get();
  }
  auto started = RealClock::Get()->Now();
  bool tty = inv.io.err_tty;
  o.on_progress = [&](const db::PartitionProgress& p) {
    double el = ToSeconds(RealClock::Get()->Now() - started);
    char buf[64];
    std::snprintf(buf, sizeof buf, "[%d/%d %6.1fs] ", p.step, p.steps, el);
    inv.io.err << (tty ? "\r\033[K" : "") << buf << p.name << ": " << p.message << (tty ? "" : "\n") << std::flush;
  };
  o.on_note = [&](const std::string& n) {
    if (std::find(plan->notes.begin(), plan->notes.end(), n) != plan->notes.end()) return;  // shown with the plan
    inv.io.err << (tty ? "\n" : "") << Paint("note: ", Color::kYellow, inv.color_err) << n << "\n";
  };
  auto r = db::Partition(*conn->db, o, *RealClock::Get());
  if (tty) inv.io.err << "\n";
  if (!r) return Fail(inv, r.error());
  if (*fmt != Format::kTable) {
    Json steps = Json::array();
    for (const auto& s : r->steps)
      steps.push_back({{"name", s.name}, {"seconds", s.seconds}, {"lock_attempts", s.lock_attempts}, {"skipped", s.skipped}});
    PrintStructured(inv.io.out, Json{{"table", r->table}, {"column", r->column}, {"cutover", r->cutover},
                                     {"resumed", r->resumed}, {"notes", r->notes}, {"steps", steps},
                                     {"swap_ms", r->swap_lock_ms}},
                    *fmt);
  } else {
    Table t({"STEP", "SECONDS", "LOCK ATTEMPTS", ""}, {false, true, true, false});
    for (const auto& s : r->steps) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", s.seconds);
      t.Row({s.name, buf, std::to_string(s.lock_attempts), s.skipped ? "done earlier" : ""});
    }
    inv.io.out << t.Render(inv.color_out);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", r->swap_lock_ms);
    inv.io.out << r->table << " is partitioned by month on " << r->column << " (swap transaction " << buf
               << " ms). Keep partitions ahead with `cbctl db maintain`.\n";
  }
  return kExitOk;
}

int CmdDbCancel(Invocation& inv) {
  int code = 0;
  auto conn = OpenDb(inv, &code);
  if (!conn) return code;
  auto r = db::CancelOperation(*conn->db, inv.args.Get("table"));
  if (!r) return Fail(inv, r.error());
  inv.io.out << *r << "\n";
  return kExitOk;
}

int CmdDbMaintain(Invocation& inv) {
  int code = 0;
  auto fmt = OutputFormat(inv, &code);
  if (!fmt) return code;
  db::MaintainOptions o;
  auto it = inv.args.lists.find("tables");
  if (it != inv.args.lists.end()) o.tables = it->second;
  if (inv.args.Has("premake") && !ParseInt(inv.args.Get("premake"), &o.premake)) {
    return PrintUsageError(inv, "--premake: expected an integer");
  }
  o.retention = inv.args.Get("retention");
  o.drop = inv.args.Flag("drop");
  if (o.tables.empty() && !inv.args.Get("spec").empty()) {
    // The spec's database.partitioning: its tables, premake and retention (flags override).
    auto sp = db::ReadSpecPartitioning(inv.args.Get("spec"));
    if (!sp) return PrintUsageError(inv, sp.error().message);
    o.tables = sp->tables;
    o.skip_unpartitioned = true;
    if (!inv.args.Has("premake")) o.premake = sp->premake;
    if (!inv.args.Has("retention")) o.retention = sp->retention;
  }
  auto conn = OpenDb(inv, &code);
  if (!conn) return code;
  auto plan = db::PlanMaintain(*conn->db, o, RealClock::Get()->WallNow());
  if (!plan) return Fail(inv, plan.error());
  auto to_json = [&](const db::MaintainReport& r) {
    Json a = Json::array();
    for (const auto& x : r.actions)
      a.push_back({{"table", x.table}, {"action", x.kind}, {"object", x.object}, {"detail", x.detail},
                   {"statements", x.statements}, {"done", x.done}});
    return Json{{"actions", a}, {"problems", r.problems}};
  };
  auto print_plan = [&](const db::MaintainReport& r) {
    Table t({"TABLE", "ACTION", "PARTITION", "DETAIL", "DONE"});
    for (const auto& x : r.actions) t.Row({x.table, x.kind, x.object, x.detail, x.done ? "yes" : "no"});
    if (!t.empty()) inv.io.out << t.Render(inv.color_out);
    for (const auto& p : r.problems) inv.io.out << Paint("problem: ", Color::kRed, inv.color_out) << p << "\n";
  };
  if (plan->actions.empty() || inv.args.Flag("dry-run")) {
    if (*fmt != Format::kTable) PrintStructured(inv.io.out, to_json(*plan), *fmt);
    else {
      print_plan(*plan);
      if (plan->actions.empty()) inv.io.out << "Nothing to do.\n";
    }
    return plan->problems.empty() ? kExitOk : kExitFailure;
  }
  if (*fmt == Format::kTable) print_plan(*plan);
  if (int c = Confirm(inv, "run these maintenance actions"); c != kExitOk) return c;
  auto r = db::RunMaintain(*conn->db, *plan, o);
  if (*fmt != Format::kTable) PrintStructured(inv.io.out, to_json(*plan), *fmt);
  else if (r) inv.io.out << "Done: " << plan->actions.size() << " action(s).\n";
  if (!r) return Fail(inv, r.error());
  // Rows found in a default partition are a problem even when they were moved: say so in the exit code.
  return plan->problems.empty() ? kExitOk : kExitFailure;
}

int CmdDbVacuum(Invocation& inv) {
  int code = 0;
  auto fmt = OutputFormat(inv, &code);
  if (!fmt) return code;
  db::VacuumOptions o;
  o.table = inv.args.Get("table");
  o.analyze = inv.args.Flag("analyze");
  o.full = inv.args.Flag("full");
  auto conn = OpenDb(inv, &code);
  if (!conn) return code;
  auto stmt = db::VacuumStatement(*conn->db, o);
  if (!stmt) return Fail(inv, stmt.error());
  if (o.full) {
    inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err)
               << "VACUUM FULL rewrites " << (o.table.empty() ? "every table" : o.table)
               << " under an ACCESS EXCLUSIVE lock: reads and writes wait until it finishes\n";
  }
  if (*fmt == Format::kTable) inv.io.out << *stmt << "\n";
  if (int c = Confirm(inv, "run " + *stmt); c != kExitOk) return c;
  auto r = db::RunVacuum(*conn->db, o);
  if (!r) return Fail(inv, r.error());
  if (*fmt != Format::kTable) {
    PrintStructured(inv.io.out, Json{{"statement", *stmt}, {"seconds", *r}}, *fmt);
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", *r);
    inv.io.out << "Done in " << buf << " s.\n";
  }
  return kExitOk;
}

}  // namespace cb::cli
