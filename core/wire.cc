#include "core/wire.h"

#include <algorithm>
#include <set>

#include "core/service.h"

namespace cb::wire {

using nlohmann::json;

// ----------------------------------------------------------------------------- errors

void to_json(json& j, const ErrorBody& e) {
  j = json{{"code", e.code}, {"message", e.message}};
  if (!e.problems.empty()) j["problems"] = e.problems;
  if (e.current_generation) j["current_generation"] = *e.current_generation;
  if (e.your_generation) j["your_generation"] = *e.your_generation;
}

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kConflict: return 409;
    case Code::kFailedPrecondition: return 412;
    case Code::kTimeout: return 504;
    case Code::kUnavailable: return 503;
    case Code::kCancelled: return 503;
    case Code::kIo: return 500;
    case Code::kInternal: return 500;
  }
  return 500;
}

Code CodeForHttpStatus(int status) {
  switch (status) {
    case 400: return Code::kInvalidArgument;
    case 401: return Code::kUnauthenticated;
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 409: return Code::kConflict;
    case 412: return Code::kFailedPrecondition;
    case 413: return Code::kInvalidArgument;
    case 503: return Code::kUnavailable;
    case 504: return Code::kTimeout;
    default: break;
  }
  if (status >= 400 && status < 500) return Code::kInvalidArgument;
  return Code::kInternal;
}

json ErrorJson(const Error& e) {
  ErrorBody b;
  b.code = std::string(CodeName(e.code));
  auto nl = e.message.find('\n');
  if (nl == std::string::npos) {
    b.message = e.message;
  } else {
    b.message = e.message.substr(0, nl);
    std::string rest = e.message.substr(nl + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
      auto next = rest.find('\n', pos);
      std::string line = rest.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
      // Problem lines may be indented ("  - x"); keep the text only.
      auto first = line.find_first_not_of(" \t-");
      if (first != std::string::npos) b.problems.push_back(line.substr(first));
      if (next == std::string::npos) break;
      pos = next + 1;
    }
  }
  return json{{"error", b}};
}

Error ErrorFromReply(int status, std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const json& e = j["error"];
    Error err;
    err.code = e.contains("code") && e["code"].is_string()
                   ? CodeFromName(e["code"].get<std::string>())
                   : CodeForHttpStatus(status);
    err.message = e.contains("message") && e["message"].is_string()
                      ? e["message"].get<std::string>()
                      : std::string("HTTP ") + std::to_string(status);
    if (e.contains("problems") && e["problems"].is_array()) {
      for (const auto& p : e["problems"]) {
        if (p.is_string()) err.message += "\n  - " + p.get<std::string>();
      }
    }
    return err;
  }
  std::string text(body.substr(0, 200));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return Error{CodeForHttpStatus(status),
               "HTTP " + std::to_string(status) + (text.empty() ? "" : ": " + text)};
}

// ----------------------------------------------------------------------------- scopes

std::string_view ScopeName(Scope s) {
  switch (s) {
    case Scope::kViewer: return "viewer";
    case Scope::kOperator: return "operator";
    case Scope::kAdmin: return "admin";
  }
  return "viewer";
}

Result<Scope> ParseScope(std::string_view s) {
  if (s == "viewer") return Scope::kViewer;
  if (s == "operator") return Scope::kOperator;
  if (s == "admin") return Scope::kAdmin;
  return Err(Code::kInvalidArgument, "unknown scope '{}': expected viewer, operator or admin", s);
}

bool ScopeAllows(Scope have, Scope need) { return static_cast<int>(have) >= static_cast<int>(need); }

// ----------------------------------------------------------------------------- addresses

namespace {
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}
}  // namespace

Result<ServiceAddress> ParseServiceAddress(std::string_view s) {
  if (s.empty()) return Err(Code::kInvalidArgument, "empty service name");
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return Err(Code::kInvalidArgument, "service name '{}' contains a control character",
                 Printable(s));
    }
  }
  if (s.find('/') != std::string_view::npos) {
    return Err(Code::kInvalidArgument, "service name '{}' contains '/'", s);
  }
  if (s.find("..") != std::string_view::npos) {
    return Err(Code::kInvalidArgument, "service name '{}' contains '..'", s);
  }
  ServiceAddress a;
  auto at = s.find('@');
  if (at == std::string_view::npos) {
    a.name = std::string(s);
  } else {
    if (s.find('@', at + 1) != std::string_view::npos) {
      return Err(Code::kInvalidArgument, "service address '{}' has more than one '@'", s);
    }
    a.name = std::string(s.substr(0, at));
    a.host = std::string(s.substr(at + 1));
    if (a.host.empty()) {
      return Err(Code::kInvalidArgument, "service address '{}': empty host after '@'", s);
    }
  }
  if (auto r = ValidateServiceName(a.name); !r) {
    return Err(r.error().Wrap(fmt::format("service address '{}': name", s)));
  }
  if (!a.host.empty()) {
    if (auto r = ValidateServiceName(a.host); !r) {
      return Err(r.error().Wrap(fmt::format("service address '{}': host", s)));
    }
  }
  return a;
}

// ----------------------------------------------------------------------------- plan text

std::string FormatPlan(const PlanResponse& p, bool show_unchanged) {
  if (!p.HasChanges()) {
    return fmt::format("No changes. ({} service{} unchanged, generation {})\n", p.summary.unchanged,
                       p.summary.unchanged == 1 ? "" : "s", p.current_generation);
  }
  std::string out;
  std::string host;
  bool host_printed = false;
  for (const auto& c : p.changes) {
    if (c.host != host) {
      host = c.host;
      host_printed = false;
    }
    if (c.action == "unchanged" && !show_unchanged) continue;
    if (!host_printed) {
      out += fmt::format("host {}:\n", host);
      host_printed = true;
    }
    char sign = c.action == "add" ? '+' : c.action == "change" ? '~' : c.action == "remove" ? '-' : '=';
    std::string what = c.action;
    if (c.action == "change" && !c.fields.empty()) {
      what += ": ";
      for (size_t i = 0; i < c.fields.size(); ++i) what += (i ? ", " : "") + c.fields[i];
    }
    out += fmt::format("  {} {:<24} ({})\n", sign, c.name, what);
  }
  out += fmt::format("Plan: {} to add, {} to change, {} to remove, {} unchanged.\n", p.summary.add,
                     p.summary.change, p.summary.remove, p.summary.unchanged);
  return out;
}

// ----------------------------------------------------------------------------- JSON mapping

namespace {

template <class T>
void PutOpt(json& j, const char* key, const std::optional<T>& v) {
  if (v) {
    j[key] = *v;
  } else {
    j[key] = nullptr;
  }
}

// Reads one JSON object field by field, remembering the first problem and rejecting unknown
// fields at the end.
class Reader {
 public:
  Reader(const json& j, std::string_view path) : j_(j), path_(path) {
    if (!j.is_object()) fail(fmt::format("{}: expected an object, found {}", path_, j.type_name()));
  }

  template <class T>
  void req(const char* key, T& out) {
    seen_.insert(key);
    if (!ok()) return;
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      fail(fmt::format("{}.{}: required field missing", path_, key));
      return;
    }
    read(*it, fmt::format("{}.{}", path_, key), out);
  }
  template <class T>
  void opt(const char* key, T& out) {
    seen_.insert(key);
    if (!ok()) return;
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    read(*it, fmt::format("{}.{}", path_, key), out);
  }
  template <class T>
  void opt(const char* key, std::optional<T>& out) {
    seen_.insert(key);
    if (!ok()) return;
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      out.reset();
      return;
    }
    T v{};
    read(*it, fmt::format("{}.{}", path_, key), v);
    out = std::move(v);
  }
  void any(const char* key, json& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it != j_.end()) out = *it;
  }

  Result<void> finish() {
    if (ok() && j_.is_object()) {
      for (auto it = j_.begin(); it != j_.end(); ++it) {
        if (!seen_.count(it.key())) {
          std::string known;
          for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
          fail(fmt::format("{}: unknown field '{}' (known: {})", path_, it.key(), known));
          break;
        }
      }
    }
    if (!ok()) return tl::unexpected(Error{Code::kInvalidArgument, *error_});
    return Ok();
  }

 private:
  bool ok() const { return !error_.has_value(); }
  void fail(std::string m) {
    if (!error_) error_ = std::move(m);
  }
  void read(const json& v, const std::string& p, std::string& out) {
    if (!v.is_string()) return fail(fmt::format("{}: expected a string, found {}", p, v.type_name()));
    out = v.get<std::string>();
  }
  void read(const json& v, const std::string& p, bool& out) {
    if (!v.is_boolean()) return fail(fmt::format("{}: expected true or false, found {}", p, v.type_name()));
    out = v.get<bool>();
  }
  void read(const json& v, const std::string& p, int64_t& out) {
    if (!v.is_number_integer()) return fail(fmt::format("{}: expected an integer, found {}", p, v.type_name()));
    out = v.get<int64_t>();
  }
  void read(const json& v, const std::string& p, int& out) {
    if (!v.is_number_integer()) return fail(fmt::format("{}: expected an integer, found {}", p, v.type_name()));
    out = v.get<int>();
  }
  void read(const json& v, const std::string& p, double& out) {
    if (!v.is_number()) return fail(fmt::format("{}: expected a number, found {}", p, v.type_name()));
    out = v.get<double>();
  }
  template <class T>
  void read(const json& v, const std::string& p, std::vector<T>& out) {
    if (!v.is_array()) return fail(fmt::format("{}: expected an array, found {}", p, v.type_name()));
    out.clear();
    for (size_t i = 0; i < v.size() && ok(); ++i) {
      T item{};
      read(v[i], fmt::format("{}[{}]", p, i), item);
      out.push_back(std::move(item));
    }
  }
  template <class T>
  void read(const json& v, const std::string& p, T& out) {
    auto r = Decode<T>(v, p);
    if (!r) return fail(r.error().message);
    out = std::move(*r);
  }

  const json& j_;
  std::string path_;
  std::set<std::string> seen_;
  std::optional<std::string> error_;
};

}  // namespace

// --- HealthResponse
void to_json(json& j, const HealthResponse& v) { j = json{{"status", v.status}}; }
template <>
Result<HealthResponse> Decode<HealthResponse>(const json& j, std::string_view path) {
  HealthResponse v;
  Reader r(j, path);
  r.req("status", v.status);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- VersionResponse
void to_json(json& j, const VersionResponse& v) {
  j = json{{"server", v.server}, {"version", v.version}, {"api", v.api}, {"agent_protocol", v.agent_protocol}};
}
template <>
Result<VersionResponse> Decode<VersionResponse>(const json& j, std::string_view path) {
  VersionResponse v;
  Reader r(j, path);
  r.req("server", v.server);
  r.req("version", v.version);
  r.req("api", v.api);
  r.opt("agent_protocol", v.agent_protocol);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- SpecRequest
void to_json(json& j, const SpecRequest& v) {
  j = json{{"yaml", v.yaml}};
  if (!v.filename.empty()) j["filename"] = v.filename;
}
template <>
Result<SpecRequest> Decode<SpecRequest>(const json& j, std::string_view path) {
  SpecRequest v;
  Reader r(j, path);
  r.req("yaml", v.yaml);
  r.opt("filename", v.filename);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- SpecGetResponse
void to_json(json& j, const SpecGetResponse& v) {
  j = json{{"generation", v.generation}, {"yaml", v.yaml}, {"spec", v.spec}};
  PutOpt(j, "applied_at", v.applied_at);
  PutOpt(j, "applied_by", v.applied_by);
}
template <>
Result<SpecGetResponse> Decode<SpecGetResponse>(const json& j, std::string_view path) {
  SpecGetResponse v;
  Reader r(j, path);
  r.req("generation", v.generation);
  r.opt("yaml", v.yaml);
  r.any("spec", v.spec);
  r.opt("applied_at", v.applied_at);
  r.opt("applied_by", v.applied_by);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- ServiceChange
void to_json(json& j, const ServiceChange& v) {
  j = json{{"host", v.host}, {"name", v.name}, {"action", v.action}, {"fields", v.fields}};
}
template <>
Result<ServiceChange> Decode<ServiceChange>(const json& j, std::string_view path) {
  ServiceChange v;
  Reader r(j, path);
  r.req("host", v.host);
  r.req("name", v.name);
  r.req("action", v.action);
  r.opt("fields", v.fields);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- PlanSummary
void to_json(json& j, const PlanSummary& v) {
  j = json{{"add", v.add}, {"change", v.change}, {"remove", v.remove}, {"unchanged", v.unchanged}};
}
template <>
Result<PlanSummary> Decode<PlanSummary>(const json& j, std::string_view path) {
  PlanSummary v;
  Reader r(j, path);
  r.req("add", v.add);
  r.req("change", v.change);
  r.req("remove", v.remove);
  r.req("unchanged", v.unchanged);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- PlanResponse
void to_json(json& j, const PlanResponse& v) {
  j = json{{"current_generation", v.current_generation}, {"changes", v.changes}, {"summary", v.summary},
           {"has_changes", v.HasChanges()}};
}
template <>
Result<PlanResponse> Decode<PlanResponse>(const json& j, std::string_view path) {
  PlanResponse v;
  Reader r(j, path);
  bool has_changes = false;
  r.req("current_generation", v.current_generation);
  r.req("changes", v.changes);
  r.req("summary", v.summary);
  r.opt("has_changes", has_changes);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- HostApplyResult
void to_json(json& j, const HostApplyResult& v) {
  j = json{{"host", v.host},       {"ok", v.ok},           {"started", v.started},
           {"restarted", v.restarted}, {"stopped", v.stopped}, {"unchanged", v.unchanged}};
  PutOpt(j, "error", v.error);
}
template <>
Result<HostApplyResult> Decode<HostApplyResult>(const json& j, std::string_view path) {
  HostApplyResult v;
  Reader r(j, path);
  r.req("host", v.host);
  r.req("ok", v.ok);
  r.opt("error", v.error);
  r.opt("started", v.started);
  r.opt("restarted", v.restarted);
  r.opt("stopped", v.stopped);
  r.opt("unchanged", v.unchanged);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- ApplyResponse
void to_json(json& j, const ApplyResponse& v) {
  j = json{{"generation", v.generation}, {"plan", v.plan}, {"hosts", v.hosts}};
}
template <>
Result<ApplyResponse> Decode<ApplyResponse>(const json& j, std::string_view path) {
  ApplyResponse v;
  Reader r(j, path);
  r.req("generation", v.generation);
  r.req("plan", v.plan);
  r.opt("hosts", v.hosts);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- ServiceInfo
void to_json(json& j, const ServiceInfo& v) {
  j = json{{"host", v.host}, {"name", v.name}, {"address", v.address}, {"state", v.state},
           {"restarts", v.restarts}};
  PutOpt(j, "pid", v.pid);
  PutOpt(j, "uptime_seconds", v.uptime_seconds);
  PutOpt(j, "rss_bytes", v.rss_bytes);
  PutOpt(j, "cpu_seconds", v.cpu_seconds);
  PutOpt(j, "started_at", v.started_at);
  PutOpt(j, "next_start_at", v.next_start_at);
  PutOpt(j, "last_error", v.last_error);
  PutOpt(j, "override", v.override_state);
  PutOpt(j, "observed_at", v.observed_at);
}
template <>
Result<ServiceInfo> Decode<ServiceInfo>(const json& j, std::string_view path) {
  ServiceInfo v;
  Reader r(j, path);
  r.req("host", v.host);
  r.req("name", v.name);
  r.opt("address", v.address);
  r.req("state", v.state);
  r.opt("restarts", v.restarts);
  r.opt("pid", v.pid);
  r.opt("uptime_seconds", v.uptime_seconds);
  r.opt("rss_bytes", v.rss_bytes);
  r.opt("cpu_seconds", v.cpu_seconds);
  r.opt("started_at", v.started_at);
  r.opt("next_start_at", v.next_start_at);
  r.opt("last_error", v.last_error);
  r.opt("override", v.override_state);
  r.opt("observed_at", v.observed_at);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- ServicesResponse
void to_json(json& j, const ServicesResponse& v) { j = json{{"services", v.services}}; }
template <>
Result<ServicesResponse> Decode<ServicesResponse>(const json& j, std::string_view path) {
  ServicesResponse v;
  Reader r(j, path);
  r.req("services", v.services);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- ServiceActionResponse
void to_json(json& j, const ServiceActionResponse& v) { j = json{{"service", v.service}}; }
template <>
Result<ServiceActionResponse> Decode<ServiceActionResponse>(const json& j, std::string_view path) {
  ServiceActionResponse v;
  Reader r(j, path);
  r.req("service", v.service);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- LogsResponse
void to_json(json& j, const LogsResponse& v) { j = json{{"lines", v.lines}}; }
template <>
Result<LogsResponse> Decode<LogsResponse>(const json& j, std::string_view path) {
  LogsResponse v;
  Reader r(j, path);
  r.req("lines", v.lines);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- HostInfo
void to_json(json& j, const HostInfo& v) {
  j = json{{"name", v.name}, {"address", v.address}, {"transport", v.transport},
           {"reachable", v.reachable}, {"services", v.services}};
  PutOpt(j, "agent", v.agent);
  PutOpt(j, "protocol", v.protocol);
  PutOpt(j, "agent_pid", v.agent_pid);
  PutOpt(j, "socket", v.socket);
  PutOpt(j, "last_seen", v.last_seen);
  PutOpt(j, "last_error", v.last_error);
}
template <>
Result<HostInfo> Decode<HostInfo>(const json& j, std::string_view path) {
  HostInfo v;
  Reader r(j, path);
  r.req("name", v.name);
  r.opt("address", v.address);
  r.opt("transport", v.transport);
  r.opt("reachable", v.reachable);
  r.opt("services", v.services);
  r.opt("agent", v.agent);
  r.opt("protocol", v.protocol);
  r.opt("agent_pid", v.agent_pid);
  r.opt("socket", v.socket);
  r.opt("last_seen", v.last_seen);
  r.opt("last_error", v.last_error);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- HostsResponse
void to_json(json& j, const HostsResponse& v) { j = json{{"hosts", v.hosts}}; }
template <>
Result<HostsResponse> Decode<HostsResponse>(const json& j, std::string_view path) {
  HostsResponse v;
  Reader r(j, path);
  r.req("hosts", v.hosts);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- AuditEntry
void to_json(json& j, const AuditEntry& v) {
  j = json{{"id", v.id},         {"at", v.at},         {"actor", v.actor},   {"action", v.action},
           {"target", v.target}, {"result", v.result}, {"status", v.status}, {"detail", v.detail}};
}
template <>
Result<AuditEntry> Decode<AuditEntry>(const json& j, std::string_view path) {
  AuditEntry v;
  Reader r(j, path);
  r.req("id", v.id);
  r.req("at", v.at);
  r.req("actor", v.actor);
  r.req("action", v.action);
  r.opt("target", v.target);
  r.req("result", v.result);
  r.opt("status", v.status);
  r.opt("detail", v.detail);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- AuditResponse
void to_json(json& j, const AuditResponse& v) { j = json{{"entries", v.entries}}; }
template <>
Result<AuditResponse> Decode<AuditResponse>(const json& j, std::string_view path) {
  AuditResponse v;
  Reader r(j, path);
  r.req("entries", v.entries);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- TokenInfo
void to_json(json& j, const TokenInfo& v) {
  j = json{{"id", v.id}, {"name", v.name}, {"scope", v.scope}, {"created_at", v.created_at},
           {"created_by", v.created_by}};
  PutOpt(j, "revoked_at", v.revoked_at);
  PutOpt(j, "last_used_at", v.last_used_at);
}
template <>
Result<TokenInfo> Decode<TokenInfo>(const json& j, std::string_view path) {
  TokenInfo v;
  Reader r(j, path);
  r.req("id", v.id);
  r.req("name", v.name);
  r.req("scope", v.scope);
  r.opt("created_at", v.created_at);
  r.opt("created_by", v.created_by);
  r.opt("revoked_at", v.revoked_at);
  r.opt("last_used_at", v.last_used_at);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- TokenCreateRequest
void to_json(json& j, const TokenCreateRequest& v) { j = json{{"name", v.name}, {"scope", v.scope}}; }
template <>
Result<TokenCreateRequest> Decode<TokenCreateRequest>(const json& j, std::string_view path) {
  TokenCreateRequest v;
  Reader r(j, path);
  r.req("name", v.name);
  r.req("scope", v.scope);
  CB_TRY_VOID(r.finish());
  if (auto s = ParseScope(v.scope); !s) return Err(s.error().Wrap(fmt::format("{}.scope", path)));
  if (auto n = ValidateServiceName(v.name); !n) {
    return Err(Code::kInvalidArgument, "{}.name: token name '{}': {}", path, Printable(v.name),
               n.error().message);
  }
  return v;
}

// --- TokenCreateResponse
void to_json(json& j, const TokenCreateResponse& v) { j = json{{"token", v.token}, {"secret", v.secret}}; }
template <>
Result<TokenCreateResponse> Decode<TokenCreateResponse>(const json& j, std::string_view path) {
  TokenCreateResponse v;
  Reader r(j, path);
  r.req("token", v.token);
  r.req("secret", v.secret);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- TokensResponse
void to_json(json& j, const TokensResponse& v) { j = json{{"tokens", v.tokens}}; }
template <>
Result<TokensResponse> Decode<TokensResponse>(const json& j, std::string_view path) {
  TokensResponse v;
  Reader r(j, path);
  r.req("tokens", v.tokens);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- TokenRevokeResponse
void to_json(json& j, const TokenRevokeResponse& v) { j = json{{"token", v.token}}; }
template <>
Result<TokenRevokeResponse> Decode<TokenRevokeResponse>(const json& j, std::string_view path) {
  TokenRevokeResponse v;
  Reader r(j, path);
  r.req("token", v.token);
  CB_TRY_VOID(r.finish());
  return v;
}

// --- text
template <class T>
Result<T> DecodeText(std::string_view text, std::string_view path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    return Err(Code::kInvalidArgument, "{}: invalid JSON at byte {}: {}", path, e.byte,
               std::string(e.what()));
  }
  return Decode<T>(j, path);
}

#define CB_WIRE_INSTANTIATE(T) template Result<T> DecodeText<T>(std::string_view, std::string_view);
CB_WIRE_TYPES(CB_WIRE_INSTANTIATE)
#undef CB_WIRE_INSTANTIATE

}  // namespace cb::wire
