// Wire types of the cbctl <-> cbctld HTTP API (/v1), shared by the CLI and the daemon.
// controlplane/API.md is the human description of the routes; this header is the contract in
// code. One type per request/response body, each with exactly one JSON mapping:
//   void to_json(nlohmann::json&, const T&)        — encode (never fails)
//   Result<T> Decode<T>(const nlohmann::json&)      — decode; unknown fields, missing required
//                                                     fields and wrong types are kInvalidArgument
//                                                     with the JSON path ("tokens[2].scope: ...")
// Optional fields are encoded as JSON null when absent and accepted as null or missing.
//
// The HTTP status of every error code is decided in ONE place: HttpStatusFor(); the inverse
// (status -> code, for a reply whose body is not an error object) is CodeForHttpStatus().
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace cb::wire {

inline constexpr std::string_view kApiVersion = "v1";
inline constexpr int kDefaultPort = 7390;
inline constexpr std::string_view kDefaultListen = "127.0.0.1:7390";
// Request bodies larger than this are refused (413) before they are parsed.
inline constexpr std::size_t kMaxRequestBodyBytes = 1 << 20;  // 1 MiB

// ---------------------------------------------------------------------------------------------
// Errors: every non-2xx reply has the body {"error": ErrorBody}.

struct ErrorBody {
  std::string code;                       // a cb::Code name: "invalid_argument", "conflict", …
  std::string message;                    // what failed and where, one line
  std::vector<std::string> problems;      // every problem when there are several (spec
                                          // validation); [] otherwise
  std::optional<int64_t> current_generation;  // set on a stale-generation 409
  std::optional<int64_t> your_generation;     // set on a stale-generation 409
};
void to_json(nlohmann::json& j, const ErrorBody& e);

// The one place mapping error codes to HTTP statuses:
//   invalid_argument 400, unauthenticated 401, permission_denied 403, not_found 404,
//   already_exists 409, conflict 409, failed_precondition 412, timeout 504,
//   unavailable 503, cancelled 503, io 500, internal 500.
int HttpStatusFor(Code code);
// For a reply whose body is not an error object: 400->invalid_argument, 401, 403, 404, 409,
// 412, 413->invalid_argument, 503->unavailable, 504->timeout, other 4xx invalid_argument,
// other 5xx internal.
Code CodeForHttpStatus(int status);
// {"error": {...}} from an Error (problems split from a multi-line message, one per line
// after the first).
nlohmann::json ErrorJson(const Error& e);
// Parses an error reply body; falls back to CodeForHttpStatus(status) and the raw body text.
Error ErrorFromReply(int status, std::string_view body);

// ---------------------------------------------------------------------------------------------
// Scopes of API tokens. viewer: read-only routes. operator: viewer + services start/stop/
// restart/reset + logs. admin: everything, including spec apply and tokens.
enum class Scope { kViewer, kOperator, kAdmin };
std::string_view ScopeName(Scope s);              // "viewer", "operator", "admin"
Result<Scope> ParseScope(std::string_view s);     // unknown: kInvalidArgument listing the three
bool ScopeAllows(Scope have, Scope need);         // admin > operator > viewer

// ---------------------------------------------------------------------------------------------
// Service addresses: "NAME" or "NAME@HOST". NAME follows core/service.h (ValidateServiceName:
// [a-z0-9][a-z0-9._-]*, no "..", <= 63 chars); HOST the same rules. Anything else (a '/',
// "..", control characters, empty parts, two '@') is kInvalidArgument saying which part.
struct ServiceAddress {
  std::string name;
  std::string host;  // empty: not given (valid only when the name runs on exactly one host)
  std::string ToString() const { return host.empty() ? name : name + "@" + host; }
  bool operator==(const ServiceAddress&) const = default;
};
Result<ServiceAddress> ParseServiceAddress(std::string_view s);

// ---------------------------------------------------------------------------------------------
// GET /v1/health (no token)
struct HealthResponse {
  std::string status = "ok";
};
// GET /v1/version (no token)
struct VersionResponse {
  std::string server;        // "cbctld 0.1.0"
  std::string version;       // "0.1.0"
  std::string api = "v1";
  int agent_protocol = 1;    // agents/PROTOCOL.md major version this daemon speaks
};

// ---------------------------------------------------------------------------------------------
// Spec. The fleet spec travels as YAML text (what the operator wrote; the daemon stores it
// verbatim and validates it with core's loader).

// Body of POST /v1/spec/plan and POST /v1/spec/apply.
struct SpecRequest {
  std::string yaml;          // required: the whole fleet.yaml text
  std::string filename;      // optional, used in validation messages ("fleet.yaml:12:5"); default "spec"
};

// GET /v1/spec
struct SpecGetResponse {
  int64_t generation = 0;             // 0: nothing applied yet (yaml empty, spec null)
  std::string yaml;                   // as applied
  nlohmann::json spec;                // the same document as JSON (null when generation 0)
  std::optional<std::string> applied_at;  // ISO 8601 UTC
  std::optional<std::string> applied_by;  // token name
};

// One service's planned change. `action`: "add" (new on that host), "change" (definition
// differs; it will be restarted; `fields` names what differs: "command", "env", "cwd", "user",
// "restart", "stop"), "remove" (no longer desired; it will be stopped), "unchanged".
struct ServiceChange {
  std::string host;
  std::string name;
  std::string action;
  std::vector<std::string> fields;    // only for "change"
};
struct PlanSummary {
  int add = 0, change = 0, remove = 0, unchanged = 0;
};
// Response of POST /v1/spec/plan (and part of the apply response).
struct PlanResponse {
  int64_t current_generation = 0;     // send this back as If-Match to apply this plan
  std::vector<ServiceChange> changes; // sorted by host, then name; includes "unchanged"
  PlanSummary summary;
  bool HasChanges() const { return summary.add + summary.change + summary.remove > 0; }
};
// Human rendering shared by cbctl and logs:
//   host local:
//     + log-ingest-2            (add)
//     ~ server                  (change: command, env)
//     - old-exporter            (remove)
//     = pgbouncer               (unchanged)      [only when show_unchanged]
//   Plan: 1 to add, 1 to change, 1 to remove, 3 unchanged.
// or "No changes. (generation N)" when nothing changes.
std::string FormatPlan(const PlanResponse& p, bool show_unchanged = false);

// What one host's agent did on apply (agents/PROTOCOL.md `apply` result), or why it could not.
struct HostApplyResult {
  std::string host;
  bool ok = true;
  std::optional<std::string> error;   // set when ok == false (agent unreachable, refused…)
  std::vector<std::string> started, restarted, stopped, unchanged;
};
// Response of POST /v1/spec/apply (header If-Match: <current_generation from plan>).
struct ApplyResponse {
  int64_t generation = 0;             // the new generation (unchanged when nothing changed)
  PlanResponse plan;                  // what was applied
  std::vector<HostApplyResult> hosts; // what each agent reported
};

// ---------------------------------------------------------------------------------------------
// Services. State names are the agent's (agents/PROTOCOL.md): starting, running, backoff,
// stopping, stopped, exited, circuit-open; plus "unknown" (the host's agent did not answer
// yet) and "pending" (desired but not yet reported by the agent).
struct ServiceInfo {
  std::string host;
  std::string name;
  std::string address;                   // NAME when the name runs on one host, else NAME@HOST
  std::string state;
  std::optional<int64_t> pid;
  int64_t restarts = 0;
  std::optional<double> uptime_seconds;
  std::optional<int64_t> rss_bytes;
  std::optional<double> cpu_seconds;
  std::optional<std::string> started_at;    // ISO 8601 UTC
  std::optional<std::string> next_start_at; // backoff / circuit-open
  std::optional<std::string> last_error;
  std::optional<std::string> override_state; // JSON key "override": "stopped" after `svc stop`, else null
  std::optional<std::string> observed_at;   // when cbctld last read this from the agent
};
// GET /v1/services[?host=H]
struct ServicesResponse {
  std::vector<ServiceInfo> services;     // sorted by host, then name
};
// POST /v1/services/{address}/{start|stop|restart|reset} (no body or {})
struct ServiceActionResponse {
  ServiceInfo service;                   // status after the action
};
// GET /v1/services/{address}/logs?tail=N (default 100, max 10000)
// With &follow=1 the reply is instead a chunked text/plain stream: the tail, then new lines as
// they are written, one log line per "\n"-terminated line, until the client disconnects.
struct LogsResponse {
  std::vector<std::string> lines;
};

// ---------------------------------------------------------------------------------------------
// Hosts. GET /v1/hosts
struct HostInfo {
  std::string name;
  std::string address;                   // "local" for this machine
  std::string transport;                 // "local" (unix socket); "ssh" later
  bool reachable = false;
  std::optional<std::string> agent;      // "cbagent 0.1.0"
  std::optional<int> protocol;
  std::optional<int64_t> agent_pid;
  std::optional<std::string> socket;     // the agent socket path (local transport)
  std::optional<std::string> last_seen;  // last successful contact, ISO 8601 UTC
  std::optional<std::string> last_error;
  int services = 0;                      // desired services on this host
};
struct HostsResponse {
  std::vector<HostInfo> hosts;
};

// ---------------------------------------------------------------------------------------------
// Audit. GET /v1/audit?limit=N (default 100, newest first)
// Every mutating call is recorded (also refused ones: 401/403/400/409).
struct AuditEntry {
  int64_t id = 0;
  std::string at;        // ISO 8601 UTC
  std::string actor;     // token name, or "anonymous" / "invalid-token" when 401
  std::string action;    // "POST /v1/spec/apply", "auth", …
  std::string target;    // "generation 4", "web@local", "token ci", …
  std::string result;    // "ok" or the error code name
  int status = 0;        // HTTP status returned
  std::string detail;    // short human text (the error message, the plan summary…)
};
struct AuditResponse {
  std::vector<AuditEntry> entries;
};

// ---------------------------------------------------------------------------------------------
// Tokens (admin only). The secret is shown once, on create; the daemon stores its SHA-256.
struct TokenInfo {
  int64_t id = 0;
  std::string name;
  std::string scope;                       // viewer | operator | admin
  std::string created_at;
  std::string created_by;
  std::optional<std::string> revoked_at;
  std::optional<std::string> last_used_at;
};
// POST /v1/tokens
struct TokenCreateRequest {
  std::string name;      // required, [a-z0-9][a-z0-9._-]*; unique among live tokens
  std::string scope;     // required: viewer | operator | admin
};
struct TokenCreateResponse {
  TokenInfo token;
  std::string secret;    // "cbt_…" — the bearer token; never shown again
};
// GET /v1/tokens
struct TokensResponse {
  std::vector<TokenInfo> tokens;
};
// DELETE /v1/tokens/{id or name} -> TokenRevokeResponse
struct TokenRevokeResponse {
  TokenInfo token;
};

// ---------------------------------------------------------------------------------------------
// JSON mapping. One to_json per type; Decode<T> is the one from_json (errors are values).
#define CB_WIRE_TYPES(X)                                                                    \
  X(HealthResponse) X(VersionResponse) X(SpecRequest) X(SpecGetResponse) X(ServiceChange)   \
  X(PlanSummary) X(PlanResponse) X(HostApplyResult) X(ApplyResponse) X(ServiceInfo)         \
  X(ServicesResponse) X(ServiceActionResponse) X(LogsResponse) X(HostInfo) X(HostsResponse) \
  X(AuditEntry) X(AuditResponse) X(TokenInfo) X(TokenCreateRequest) X(TokenCreateResponse)  \
  X(TokensResponse) X(TokenRevokeResponse)

#define CB_WIRE_DECLARE(T) void to_json(nlohmann::json& j, const T& v);
CB_WIRE_TYPES(CB_WIRE_DECLARE)
#undef CB_WIRE_DECLARE

// Decodes a T from JSON; `path` prefixes error messages ("body", "services[3]").
template <class T>
Result<T> Decode(const nlohmann::json& j, std::string_view path = "body");
#define CB_WIRE_DECLARE_DECODE(T) \
  template <>                     \
  Result<T> Decode<T>(const nlohmann::json& j, std::string_view path);
CB_WIRE_TYPES(CB_WIRE_DECLARE_DECODE)
#undef CB_WIRE_DECLARE_DECODE
// Decodes a T from body text (JSON parse errors name the byte offset).
template <class T>
Result<T> DecodeText(std::string_view text, std::string_view path = "body");

}  // namespace cb::wire
