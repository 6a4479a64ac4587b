// Commands that talk to cbctld over its /v1 API (controlplane/API.md, core/wire.h).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/client.h"
#include "cli/exit_codes.h"
#include "cli/handlers.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "core/clock.h"
#include "core/units.h"
#include "core/wire.h"
#include "core/yaml.h"

namespace cb::cli {

namespace {

using nlohmann::json;

int Fail(Invocation& inv, const Error& e) {
  return PrintError(inv, e.message, ExitCodeFor(e.code));
}

// Where cbctld is and which token to use could not be worked out: a bad --server, a bad
// config file (usage, 64), or a token file that cannot be read (1).
int FailConfig(Invocation& inv, const Error& e) {
  return PrintError(inv, e.message,
                    e.code == Code::kInvalidArgument ? kExitUsage : ExitCodeFor(e.code));
}

Format OutputFormat(const Invocation& inv) {
  auto f = ParseFormat(inv.args.Get("output"));
  return f ? *f : Format::kTable;
}

// Resolves where cbctld is and the token, prints warnings, and makes the client.
Result<std::unique_ptr<ApiClient>> Connect(Invocation& inv) {
  CB_TRY(ClientConfig config, ResolveClientConfig(inv.global, [](const char* n) {
           return static_cast<const char*>(std::getenv(n));
         }));
  for (const auto& w : config.warnings)
    inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << w << "\n";
  return std::make_unique<ApiClient>(std::move(config));
}

template <class T>
Result<T> DecodeReply(const Result<json>& r, std::string_view what) {
  if (!r) return tl::unexpected(r.error());
  auto v = wire::Decode<T>(*r, what);
  if (!v) return Err(Code::kInternal, "unexpected reply from cbctld: {}", v.error().message);
  return v;
}

// A plain read: GET `path` from cbctld and decode a T. With -o json|yaml it prints the reply
// and returns nullopt with *exit_code = 0; on an error it prints it and returns nullopt with
// the error's exit code. Otherwise it returns the reply for the caller's table.
template <class T>
std::optional<T> GetForTable(Invocation& inv, const std::string& path, std::string_view what,
                             int* exit_code) {
  Format format = OutputFormat(inv);
  auto api = Connect(inv);
  if (!api) {
    *exit_code = FailConfig(inv, api.error());
    return std::nullopt;
  }
  auto reply = DecodeReply<T>((*api)->Get(path), what);
  if (!reply) {
    *exit_code = Fail(inv, reply.error());
    return std::nullopt;
  }
  if (format != Format::kTable) {
    PrintStructured(inv.io.out, json(*reply), format);
    *exit_code = kExitOk;
    return std::nullopt;
  }
  return std::move(*reply);
}

Result<std::string> ReadSpecFile(Invocation& inv, const std::string& file) {
  if (file == "-") {
    return std::string((std::istreambuf_iterator<char>(inv.io.in)),
                       std::istreambuf_iterator<char>());
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return tl::unexpected(ErrnoError("cannot read " + file, errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > wire::kMaxRequestBodyBytes / 2)
    return Err(Code::kInvalidArgument, "{} is larger than {} bytes", file,
               wire::kMaxRequestBodyBytes / 2);
  return ss.str();
}

std::string OptStr(const std::optional<std::string>& s) { return s ? *s : ""; }

std::string Uptime(const std::optional<double>& s) {
  return s ? FormatDurationHuman(Seconds(*s)) : "-";
}
std::string Rss(const std::optional<int64_t>& b) {
  return b ? FormatSizeHuman(static_cast<uint64_t>(*b)) : "-";
}

// "2026-12-04T16:47:58.123Z" -> "2026-12-04 16:47:58" for tables.
std::string ShortTime(const std::string& iso) {
  if (iso.size() < 19) return iso.empty() ? "-" : iso;
  std::string t = iso.substr(0, 19);
  t[10] = ' ';
  return t;
}

bool Confirm(Invocation& inv, const std::string& question) {
  inv.io.err << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(inv.io.in, answer)) return false;
  while (!answer.empty() && (answer.back() == ' ' || answer.back() == '\r')) answer.pop_back();
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes";
}

// Prints a plan in the table format: "+ add", "~ change", "- remove", coloured on a terminal.
void PrintPlan(Invocation& inv, const wire::PlanResponse& plan, bool show_unchanged) {
  std::string text = wire::FormatPlan(plan, show_unchanged);
  if (!inv.color_out) {
    inv.io.out << text;
    return;
  }
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    Color c = Color::kNone;
    if (line.starts_with("  + ")) c = Color::kGreen;
    if (line.starts_with("  ~ ")) c = Color::kYellow;
    if (line.starts_with("  - ")) c = Color::kRed;
    if (line.starts_with("  = ")) c = Color::kDim;
    if (line.starts_with("host ")) c = Color::kBold;
    inv.io.out << Paint(line, c, true) << "\n";
  }
}

Result<wire::PlanResponse> RequestPlan(Invocation& inv, ApiClient& api, const std::string& file,
                                       const std::string& text) {
  wire::SpecRequest req{text, file == "-" ? "<stdin>" : file};
  Progress progress(inv.io.err, inv.io.err_tty, "planning");
  auto r = api.Post("/v1/spec/plan", json(req));
  progress.Done();
  return DecodeReply<wire::PlanResponse>(r, "plan");
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

// ---- apply / plan ----

int CmdApply(Invocation& inv) {
  Format format = OutputFormat(inv);
  bool yes = inv.args.Flag("yes");
  bool dry_run = inv.args.Flag("dry-run");
  bool detailed = inv.args.Flag("detailed-exitcode");
  std::string file = inv.args.Get("file");
  if (!yes && !dry_run && (!inv.io.in_tty || file == "-"))
    return PrintUsageError(inv,
                           "apply asks for confirmation, but standard input is not a terminal: "
                           "give --yes to apply without asking (or --dry-run to only see the "
                           "plan); nothing was applied");
  auto text = ReadSpecFile(inv, file);
  if (!text) return Fail(inv, text.error());
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  auto plan = RequestPlan(inv, **api, file, *text);
  if (!plan) return Fail(inv, plan.error());
  bool changes = plan->HasChanges();
  if (format == Format::kTable) PrintPlan(inv, *plan, false);
  if (!changes || dry_run) {
    if (format != Format::kTable) {
      json j = dry_run ? json(*plan)
                       : json{{"generation", plan->current_generation},
                              {"plan", *plan},
                              {"hosts", json::array()},
                              {"applied", false}};
      PrintStructured(inv.io.out, j, format);
    }
    return detailed && changes ? kExitChanges : kExitOk;
  }
  if (!yes && !Confirm(inv, "Apply these changes?")) {
    inv.io.err << "Not applied.\n";
    return kExitFailure;
  }
  (*api)->SetReadTimeout(300);
  Progress progress(inv.io.err, inv.io.err_tty, "applying");
  auto r =
      (*api)->Post("/v1/spec/apply", json(wire::SpecRequest{*text, file == "-" ? "<stdin>" : file}),
                   {{"If-Match", std::to_string(plan->current_generation)}});
  progress.Done();
  auto applied = DecodeReply<wire::ApplyResponse>(r, "apply");
  if (!applied) {
    if (applied.error().code == Code::kConflict)
      return PrintError(inv, applied.error().message + " (run the command again to re-plan)",
                        kExitFailure);
    return Fail(inv, applied.error());
  }
  bool host_failed = false;
  for (const auto& h : applied->hosts) {
    if (!h.ok) {
      host_failed = true;
      inv.io.err << Paint("warning: ", Color::kYellow, inv.color_err) << "host " << h.host << ": "
                 << OptStr(h.error) << " (the spec is stored; cbctld keeps trying to reach it)\n";
    }
  }
  if (format != Format::kTable) {
    json j = *applied;
    j["applied"] = true;
    PrintStructured(inv.io.out, j, format);
  } else {
    for (const auto& h : applied->hosts) {
      if (!h.ok) continue;
      std::vector<std::string> parts;
      if (!h.started.empty()) parts.push_back("started " + JoinNames(h.started));
      if (!h.restarted.empty()) parts.push_back("restarted " + JoinNames(h.restarted));
      if (!h.stopped.empty()) parts.push_back("stopped " + JoinNames(h.stopped));
      if (parts.empty()) parts.push_back("nothing to do");
      std::string line;
      for (const auto& p : parts) line += (line.empty() ? "" : "; ") + p;
      inv.io.out << "host " << h.host << ": " << line << "\n";
    }
    inv.io.out << Paint("Applied", Color::kGreen, inv.color_out) << ": generation "
               << applied->generation << (host_failed ? " (some hosts not reached yet)" : "")
               << ".\n";
  }
  return detailed ? kExitChanges : kExitOk;
}

int CmdPlan(Invocation& inv) {
  Format format = OutputFormat(inv);
  std::string file = inv.args.Get("file");
  auto text = ReadSpecFile(inv, file);
  if (!text) return Fail(inv, text.error());
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  auto plan = RequestPlan(inv, **api, file, *text);
  if (!plan) return Fail(inv, plan.error());
  if (format == Format::kTable)
    PrintPlan(inv, *plan, inv.args.Flag("all"));
  else
    PrintStructured(inv.io.out, json(*plan), format);
  return inv.args.Flag("detailed-exitcode") && plan->HasChanges() ? kExitChanges : kExitOk;
}

// ---- reads ----

int CmdGetSpec(Invocation& inv) {
  Format format = OutputFormat(inv);
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  auto spec = DecodeReply<wire::SpecGetResponse>((*api)->Get("/v1/spec"), "spec");
  if (!spec) return Fail(inv, spec.error());
  if (format == Format::kJson) {
    PrintStructured(inv.io.out, json(*spec), format);
    return kExitOk;
  }
  if (spec->generation == 0) {
    inv.io.err << "No spec has been applied yet (cbctl apply -f fleet.yaml).\n";
    return kExitOk;
  }
  std::string header = "# generation " + std::to_string(spec->generation);
  if (spec->applied_at) header += ", applied " + *spec->applied_at;
  if (spec->applied_by) header += " by " + *spec->applied_by;
  if (format == Format::kYaml && !inv.args.Flag("original")) {
    // The effective spec: every field, defaults filled; applying it again changes nothing.
    inv.io.out << header << " (effective: defaults filled)\n" << JsonToYaml(spec->spec);
    return kExitOk;
  }
  inv.io.out << header << " (as written)\n" << spec->yaml;
  if (!spec->yaml.empty() && spec->yaml.back() != '\n') inv.io.out << "\n";
  return kExitOk;
}

int CmdGetHosts(Invocation& inv) {
  int rc = kExitOk;
  auto hosts = GetForTable<wire::HostsResponse>(inv, "/v1/hosts", "hosts", &rc);
  if (!hosts) return rc;
  Table t(
      {"HOST", "ADDRESS", "REACHABLE", "AGENT", "AGENT PID", "SERVICES", "LAST SEEN", "LAST ERROR"},
      {false, false, false, false, true, true, false, false});
  for (const auto& h : hosts->hosts) {
    t.Row({h.name, h.address, h.reachable ? "yes" : "no", OrDash(OptStr(h.agent)),
           h.agent_pid ? std::to_string(*h.agent_pid) : "-", std::to_string(h.services),
           ShortTime(OptStr(h.last_seen)), OrDash(OptStr(h.last_error))},
          {Color::kNone, Color::kNone, h.reachable ? Color::kGreen : Color::kRed}, inv.color_out);
  }
  inv.io.out << t.Render(inv.color_out);
  return kExitOk;
}

int CmdStatus(Invocation& inv) {
  Format format = OutputFormat(inv);
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  auto version = DecodeReply<wire::VersionResponse>((*api)->Get("/v1/version"), "version");
  if (!version) return Fail(inv, version.error());
  auto spec = DecodeReply<wire::SpecGetResponse>((*api)->Get("/v1/spec"), "spec");
  if (!spec) return Fail(inv, spec.error());
  auto hosts = DecodeReply<wire::HostsResponse>((*api)->Get("/v1/hosts"), "hosts");
  if (!hosts) return Fail(inv, hosts.error());
  auto services = DecodeReply<wire::ServicesResponse>((*api)->Get("/v1/services"), "services");
  if (!services) return Fail(inv, services.error());
  std::map<std::string, int> by_state;
  for (const auto& s : services->services) by_state[s.state]++;
  int reachable = 0;
  for (const auto& h : hosts->hosts) reachable += h.reachable ? 1 : 0;
  if (format != Format::kTable) {
    json j = {{"server", (*api)->config().server},
              {"daemon", *version},
              {"spec",
               {{"generation", spec->generation},
                {"applied_at", spec->applied_at ? json(*spec->applied_at) : json(nullptr)},
                {"applied_by", spec->applied_by ? json(*spec->applied_by) : json(nullptr)}}},
              {"hosts", hosts->hosts},
              {"services", {{"total", services->services.size()}, {"by_state", by_state}}}};
    PrintStructured(inv.io.out, j, format);
    return kExitOk;
  }
  bool c = inv.color_out;
  auto& out = inv.io.out;
  out << Paint("cbctld  ", Color::kBold, c) << "  " << (*api)->config().server << " ("
      << version->server << ", api " << version->api << ")\n";
  out << Paint("spec    ", Color::kBold, c) << "  ";
  if (spec->generation == 0) {
    out << "nothing applied yet\n";
  } else {
    out << "generation " << spec->generation;
    if (spec->applied_at) out << ", applied " << ShortTime(*spec->applied_at);
    if (spec->applied_by) out << " by " << *spec->applied_by;
    out << "\n";
  }
  out << Paint("hosts   ", Color::kBold, c) << "  " << reachable << "/" << hosts->hosts.size()
      << " reachable\n";
  out << Paint("services", Color::kBold, c) << "  " << services->services.size();
  if (!by_state.empty()) {
    out << ":";
    bool first = true;
    for (const auto& [state, n] : by_state) {
      out << (first ? " " : ", ") << n << " " << Paint(state, StateColor(state), c);
      first = false;
    }
  }
  out << "\n";
  bool trouble = false;
  for (const auto& h : hosts->hosts) {
    if (!h.reachable) {
      if (!trouble) out << "\n";
      trouble = true;
      out << Paint("host " + h.name + " unreachable", Color::kRed, c) << ": "
          << OrDash(OptStr(h.last_error)) << "\n";
    }
  }
  for (const auto& s : services->services) {
    if (s.state == "circuit-open" || s.state == "backoff" || s.state == "exited") {
      if (!trouble) out << "\n";
      trouble = true;
      out << Paint(s.address + " " + s.state, StateColor(s.state), c);
      if (s.last_error) out << ": " << *s.last_error;
      out << "\n";
    }
  }
  return kExitOk;
}

int CmdPs(Invocation& inv) {
  std::string path = "/v1/services";
  if (inv.args.Has("host")) path += "?host=" + EncodePathSegment(inv.args.Get("host"));
  int rc = kExitOk;
  auto services = GetForTable<wire::ServicesResponse>(inv, path, "services", &rc);
  if (!services) return rc;
  if (services->services.empty()) {
    inv.io.err << "No services (apply a fleet spec with: cbctl apply -f fleet.yaml).\n";
    return kExitOk;
  }
  Table t({"HOST", "SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "RSS"},
          {false, false, false, true, true, true, true});
  for (const auto& s : services->services) {
    std::string state = s.state;
    if (s.override_state) state += " (" + *s.override_state + " by svc)";
    t.Row({s.host, s.name, state, s.pid ? std::to_string(*s.pid) : "-", Uptime(s.uptime_seconds),
           std::to_string(s.restarts), Rss(s.rss_bytes)},
          {Color::kNone, Color::kNone, StateColor(s.state)}, inv.color_out);
  }
  inv.io.out << t.Render(inv.color_out);
  return kExitOk;
}

// ---- services ----

namespace {

int ServiceAction(Invocation& inv, std::string_view verb) {
  Format format = OutputFormat(inv);
  auto addr = wire::ParseServiceAddress(inv.args.Get("service"));
  if (!addr) return PrintUsageError(inv, addr.error().message);
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  (*api)->SetReadTimeout(120);
  std::string path =
      "/v1/services/" + EncodePathSegment(addr->ToString()) + "/" + std::string(verb);
  auto r = DecodeReply<wire::ServiceActionResponse>((*api)->Post(path, json::object()), "service");
  if (!r) return Fail(inv, r.error());
  if (format != Format::kTable) {
    PrintStructured(inv.io.out, json(*r), format);
    return kExitOk;
  }
  const auto& s = r->service;
  inv.io.out << (s.address.empty() ? addr->ToString() : s.address) << ": "
             << Paint(s.state, StateColor(s.state), inv.color_out);
  if (s.pid) inv.io.out << ", pid " << *s.pid;
  if (s.override_state) inv.io.out << " (" << *s.override_state << " until 'cbctl svc start')";
  inv.io.out << "\n";
  return kExitOk;
}

}  // namespace

int CmdSvcStart(Invocation& inv) { return ServiceAction(inv, "start"); }
int CmdSvcStop(Invocation& inv) { return ServiceAction(inv, "stop"); }
int CmdSvcRestart(Invocation& inv) { return ServiceAction(inv, "restart"); }
int CmdSvcReset(Invocation& inv) { return ServiceAction(inv, "reset"); }

int CmdLogs(Invocation& inv) {
  Format format = OutputFormat(inv);
  auto addr = wire::ParseServiceAddress(inv.args.Get("service"));
  if (!addr) return PrintUsageError(inv, addr.error().message);
  std::string tail = inv.args.Get("tail");
  char* end = nullptr;
  long n = std::strtol(tail.c_str(), &end, 10);
  if (tail.empty() || *end != '\0' || n < 0 || n > 10000)
    return PrintUsageError(
        inv, "--tail: expected a number of lines from 0 to 10000, found '" + tail + "'");
  bool follow = inv.args.Flag("follow");
  if (follow && format != Format::kTable)
    return PrintUsageError(inv, "--follow streams plain lines; it cannot be combined with -o " +
                                    inv.args.Get("output"));
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  std::string path =
      "/v1/services/" + EncodePathSegment(addr->ToString()) + "/logs?tail=" + std::to_string(n);
  if (follow) {
    (*api)->SetReadTimeout(0);
    auto r = (*api)->Stream(path + "&follow=1", [&](std::string_view chunk) {
      inv.io.out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      inv.io.out.flush();
      return static_cast<bool>(inv.io.out);
    });
    if (!r) return Fail(inv, r.error());
    return kExitOk;
  }
  auto logs = DecodeReply<wire::LogsResponse>((*api)->Get(path), "logs");
  if (!logs) return Fail(inv, logs.error());
  if (format != Format::kTable) {
    PrintStructured(inv.io.out, json(*logs), format);
    return kExitOk;
  }
  for (const auto& l : logs->lines) inv.io.out << l << "\n";
  return kExitOk;
}

int CmdAudit(Invocation& inv) {
  std::string limit = inv.args.Get("limit");
  char* end = nullptr;
  long n = std::strtol(limit.c_str(), &end, 10);
  if (limit.empty() || *end != '\0' || n < 1 || n > 10000)
    return PrintUsageError(inv,
                           "--limit: expected a number from 1 to 10000, found '" + limit + "'");
  int rc = kExitOk;
  auto audit = GetForTable<wire::AuditResponse>(inv, "/v1/audit?limit=" + std::to_string(n),
                                                "audit", &rc);
  if (!audit) return rc;
  Table t({"ID", "AT", "ACTOR", "ACTION", "TARGET", "RESULT", "STATUS", "DETAIL"},
          {true, false, false, false, false, false, true, false});
  for (const auto& e : audit->entries) {
    std::string detail = e.detail.size() > 60 ? e.detail.substr(0, 57) + "..." : e.detail;
    for (auto& ch : detail)
      if (ch == '\n') ch = ' ';
    t.Row({std::to_string(e.id), ShortTime(e.at), e.actor, e.action, OrDash(e.target), e.result,
           std::to_string(e.status), OrDash(detail)},
          {Color::kNone, Color::kNone, Color::kNone, Color::kNone, Color::kNone,
           e.result == "ok" ? Color::kGreen : Color::kRed},
          inv.color_out);
  }
  inv.io.out << t.Render(inv.color_out);
  return kExitOk;
}

// ---- tokens ----

int CmdTokenCreate(Invocation& inv) {
  Format format = OutputFormat(inv);
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  wire::TokenCreateRequest req{inv.args.Get("name"), inv.args.Get("scope")};
  auto r = DecodeReply<wire::TokenCreateResponse>((*api)->Post("/v1/tokens", json(req)), "token");
  if (!r) return Fail(inv, r.error());
  if (format != Format::kTable) {
    PrintStructured(inv.io.out, json(*r), format);
    return kExitOk;
  }
  // The secret alone on stdout (so `cbctl token create ci --scope viewer > ci.token` works);
  // the explanation on stderr.
  inv.io.err << "Created token '" << r->token.name << "' (scope " << r->token.scope
             << "). Its secret is shown only this once; store it in a file only you can read "
                "(chmod 600).\n";
  inv.io.out << r->secret << "\n";
  return kExitOk;
}

int CmdTokenList(Invocation& inv) {
  int rc = kExitOk;
  auto r = GetForTable<wire::TokensResponse>(inv, "/v1/tokens", "tokens", &rc);
  if (!r) return rc;
  Table t({"ID", "NAME", "SCOPE", "CREATED", "BY", "LAST USED", "REVOKED"},
          {true, false, false, false, false, false, false});
  for (const auto& tk : r->tokens) {
    t.Row(
        {std::to_string(tk.id), tk.name, tk.scope, ShortTime(tk.created_at), OrDash(tk.created_by),
         ShortTime(OptStr(tk.last_used_at)), ShortTime(OptStr(tk.revoked_at))},
        {Color::kNone, Color::kNone, Color::kNone, Color::kNone, Color::kNone, Color::kNone,
         tk.revoked_at ? Color::kRed : Color::kNone},
        inv.color_out);
  }
  inv.io.out << t.Render(inv.color_out);
  return kExitOk;
}

int CmdTokenRevoke(Invocation& inv) {
  Format format = OutputFormat(inv);
  auto api = Connect(inv);
  if (!api) return FailConfig(inv, api.error());
  auto r = DecodeReply<wire::TokenRevokeResponse>(
      (*api)->Delete("/v1/tokens/" + EncodePathSegment(inv.args.Get("token"))), "token");
  if (!r) return Fail(inv, r.error());
  if (format != Format::kTable) {
    PrintStructured(inv.io.out, json(*r), format);
    return kExitOk;
  }
  inv.io.out << "Revoked token '" << r->token.name << "' (id " << r->token.id << ").\n";
  return kExitOk;
}

// ---- completion helper ----

int CmdCompleteServices(Invocation& inv) {
  auto config = ResolveClientConfig(
      inv.global, [](const char* n) { return static_cast<const char*>(std::getenv(n)); });
  if (!config) return kExitFailure;
  ApiClient api(*config);
  api.SetReadTimeout(2);
  auto r = DecodeReply<wire::ServicesResponse>(api.Get("/v1/services"), "services");
  if (!r) return ExitCodeFor(r.error().code);
  for (const auto& s : r->services) inv.io.out << s.address << "\n";
  return kExitOk;
}

}  // namespace cb::cli
