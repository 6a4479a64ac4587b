#include "controlplane/api_server.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <httplib.h>

#include "controlplane/auth.h"
#include "core/wire.h"

namespace cb::cp {

using nlohmann::json;

Result<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  std::string host;
  std::string port;
  if (!listen.empty() && listen[0] == '[') {
    auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Err(Code::kInvalidArgument, "--listen '{}': expected [ADDR]:PORT", listen);
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return Err(Code::kInvalidArgument, "--listen '{}': expected HOST:PORT, e.g. 127.0.0.1:7390", listen);
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return Err(Code::kInvalidArgument, "--listen '{}': port '{}' is not a number 0..65535", listen, port);
  }
  int p = std::stoi(port);
  if (p > 65535) return Err(Code::kInvalidArgument, "--listen '{}': port {} is above 65535", listen, p);
  return std::make_pair(host, p);
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

namespace {

std::string Now(const Clock& c) { return FormatWallTime(c.WallNow()); }

struct Reply {
  int status = 200;
  json body = json::object();
  std::string detail;
};

struct Ctx {
  const httplib::Request& req;
  httplib::Response& res;
  std::string actor;
  wire::Scope scope = wire::Scope::kViewer;
  std::string target;
  bool streamed = false;  // the handler set a streaming response itself
};

using Handler = std::function<Result<Reply>(Ctx&)>;

// Body of a POST that takes no parameters: empty or an empty JSON object.
Result<void> ExpectEmptyBody(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return Ok();
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Err(Code::kInvalidArgument, "body: invalid JSON (this route takes no body or {{}})");
  if (!j.is_object()) return Err(Code::kInvalidArgument, "body: expected an object, found {}", j.type_name());
  if (!j.empty()) {
    return Err(Code::kInvalidArgument, "body: unknown field '{}' (this route takes no fields)", j.begin().key());
  }
  return Ok();
}

Result<int> IntParam(const httplib::Request& req, const char* key, int def, int min, int max) {
  if (!req.has_param(key)) return def;
  std::string v = req.get_param_value(key);
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos) {
    return Err(Code::kInvalidArgument, "query parameter {}='{}': expected an integer {}..{}", key, v, min, max);
  }
  int n = std::stoi(v);
  if (n < min || n > max) {
    return Err(Code::kInvalidArgument, "query parameter {}={}: expected {}..{}", key, n, min, max);
  }
  return n;
}

Result<bool> BoolParam(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) return false;
  std::string v = req.get_param_value(key);
  if (v == "1" || v == "true" || v.empty()) return true;
  if (v == "0" || v == "false") return false;
  return Err(Code::kInvalidArgument, "query parameter {}='{}': expected 1, 0, true or false", key, v);
}

// Whether the client of a TCP connection (our local_port, its remote_port) has gone: the
// connection is in CLOSE_WAIT or no longer listed in /proc/net/tcp{,6}. cpp-httplib only notices
// a vanished client on the next write, so a follower of a quiet service checks this while idle.
bool PeerGone(int local_port, int remote_port) {
  if (local_port <= 0 || remote_port <= 0) return false;
  bool seen_table = false;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(path);
    if (!f) continue;
    seen_table = true;
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::istringstream ss(line);
      std::string sl, local, remote, st;
      ss >> sl >> local >> remote >> st;
      auto lc = local.rfind(':'), rc = remote.rfind(':');
      if (lc == std::string::npos || rc == std::string::npos) continue;
      int lp = static_cast<int>(std::strtol(local.c_str() + lc + 1, nullptr, 16));
      int rp = static_cast<int>(std::strtol(remote.c_str() + rc + 1, nullptr, 16));
      if (lp == local_port && rp == remote_port) return st == "08" || st == "07";  // CLOSE_WAIT, CLOSE
    }
  }
  return seen_table;  // not listed any more
}

}  // namespace

struct ApiServer::Impl {
  StateStore& store;
  Reconciler& rec;
  DeriveFn derive;
  const Clock& clock;
  ApiOptions opt;
  std::unique_ptr<httplib::Server> srv;
  ApiMetrics metrics;
  std::atomic<int> followers{0};

  static constexpr int kMaxRefusedPerSecond = 5;
  std::mutex refused_mu;
  std::chrono::steady_clock::time_point refused_window{};
  int refused_in_window = 0;
  int64_t refused_skipped = 0;
  // Whether to record one more refused authentication now; *skipped = how many were dropped
  // since the last recorded one (then reset).
  bool AdmitRefused(int64_t* skipped) {
    std::lock_guard lk(refused_mu);
    auto now = std::chrono::steady_clock::now();
    if (now - refused_window >= std::chrono::seconds(1)) {
      refused_window = now;
      refused_in_window = 0;
    }
    if (refused_in_window >= kMaxRefusedPerSecond) {
      ++refused_skipped;
      return false;
    }
    ++refused_in_window;
    *skipped = refused_skipped;
    refused_skipped = 0;
    return true;
  }

  Impl(StateStore& s, Reconciler& r, DeriveFn d, const Clock& c, ApiOptions o)
      : store(s), rec(r), derive(std::move(d)), clock(c), opt(std::move(o)) {}

  void Audit(const std::string& actor, const std::string& action, const std::string& target,
             int status, const std::string& result, const std::string& detail) {
    wire::AuditEntry e;
    e.at = Now(clock);
    e.actor = actor;
    e.action = action;
    e.target = target;
    e.status = status;
    e.result = result;
    e.detail = detail.substr(0, 500);
    auto clean = [](const std::string& v) {
      std::string out;
      for (unsigned char ch : v) out += (ch < 0x20 || ch == 0x7f) ? std::string("?") : std::string(1, static_cast<char>(ch));
      return out;
    };
    std::fprintf(stderr, "%s cbctld: audit: %s %s%s%s -> %d %s\n", e.at.c_str(), clean(e.actor).c_str(),
                 clean(action).c_str(), target.empty() ? "" : " ", clean(target).c_str(), status, result.c_str());
    if (auto r = store.AppendAudit(e); !r) {
      std::fprintf(stderr, "%s cbctld: audit write failed: %s\n", e.at.c_str(), r.error().message.c_str());
    }
  }

  static void SendJson(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump() + "\n", "application/json");
  }

  // Wraps a handler with auth, scope, error mapping, audit and metrics.
  void Route(const char* method, const std::string& pattern, const std::string& route,
             std::optional<wire::Scope> need, Handler h) {
    auto fn = [this, method, route, need, h](const httplib::Request& req, httplib::Response& res) {
      auto t0 = std::chrono::steady_clock::now();
      std::string m = method;
      // Plan is a POST but changes nothing: not audited.
      bool mutating = (m == "POST" || m == "DELETE") && route != "/v1/spec/plan";
      std::string action = m + " " + req.path;
      Ctx ctx{req, res, "", wire::Scope::kViewer, "", false};
      int status = 200;
      std::string result = "ok";
      std::string detail;

      auto fail = [&](const Error& e) {
        status = wire::HttpStatusFor(e.code);
        result = std::string(CodeName(e.code));
        detail = e.message;
        SendJson(res, status, wire::ErrorJson(e));
      };

      bool authed = true;
      if (need) {
        std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (auth.empty()) {
          authed = false;
          ctx.actor = "anonymous";
          fail(Error{Code::kUnauthenticated, "missing bearer token (send Authorization: Bearer <token>)"});
        } else if (auth.compare(0, prefix.size(), prefix) != 0) {
          authed = false;
          ctx.actor = "anonymous";
          fail(Error{Code::kUnauthenticated, "Authorization header is not 'Bearer <token>'"});
        } else {
          std::string secret = auth.substr(prefix.size());
          auto tok = store.FindLiveTokenByHash(HashSecret(secret));
          if (!tok) {
            authed = false;
            ctx.actor = "anonymous";
            fail(tok.error());
          } else if (!*tok) {
            authed = false;
            ctx.actor = "invalid-token";
            fail(Error{Code::kUnauthenticated, "invalid or revoked token"});
          } else {
            ctx.actor = (*tok)->name;
            auto sc = wire::ParseScope((*tok)->scope);
            ctx.scope = sc ? *sc : wire::Scope::kViewer;
            (void)store.TouchToken((*tok)->id, Now(clock));
            if (!wire::ScopeAllows(ctx.scope, *need)) {
              authed = false;
              fail(Error{Code::kPermissionDenied,
                         fmt::format("token '{}' has scope {}; {} {} needs {}", ctx.actor,
                                     wire::ScopeName(ctx.scope), m, route, wire::ScopeName(*need))});
            }
          }
        }
        if (!authed && status == 401) {
          // Refused authentications are audited, at most kMaxRefusedPerSecond a second so a
          // flood of bad requests cannot grow the audit log without bound; the next recorded
          // entry says how many were left out.
          int64_t skipped = 0;
          if (AdmitRefused(&skipped)) {
            Audit(ctx.actor, action, "", status, result,
                  skipped ? fmt::format("{} ({} similar refused requests not recorded)", detail, skipped) : detail);
          }
        } else if (!authed && mutating) {
          Audit(ctx.actor, action, "", status, result, detail);
        }
      } else {
        ctx.actor = "anonymous";
      }

      if (authed) {
        Result<Reply> r = Err(Code::kInternal, "handler did not run");
        try {
          r = h(ctx);
        } catch (const std::exception& e) {
          r = Err(Code::kInternal, "{} {}: {}", m, route, e.what());
        }
        if (!r) {
          fail(r.error());
        } else if (!ctx.streamed) {
          status = r->status;
          detail = r->detail;
          SendJson(res, status, r->body);
          if (status >= 400 && r->body.contains("error")) {
            result = r->body["error"].value("code", "error");
            detail = r->body["error"].value("message", "");
          }
        }
        if (mutating) Audit(ctx.actor, action, ctx.target, status, result, detail);
      }
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      metrics.ObserveRequest(m, route, status, secs);
    };
    std::string mm = method;
    if (mm == "GET") srv->Get(pattern, fn);
    else if (mm == "POST") srv->Post(pattern, fn);
    else if (mm == "DELETE") srv->Delete(pattern, fn);
  }

  // ---- handlers

  Result<Reply> Plan(Ctx& c) {
    CB_TRY(auto body, wire::DecodeText<wire::SpecRequest>(c.req.body));
    std::string file = body.filename.empty() ? "spec" : body.filename;
    CB_TRY(DesiredState next, derive(body.yaml, file));
    CB_TRY(auto cur, rec.Current());
    wire::PlanResponse p = ComputePlan(*cur.second, next, cur.first);
    Reply r;
    r.body = p;
    return r;
  }

  Result<Reply> Apply(Ctx& c) {
    std::string im = c.req.get_header_value("If-Match");
    // Accept 4, "4" and W/"4".
    if (im.rfind("W/", 0) == 0) im = im.substr(2);
    if (im.size() >= 2 && im.front() == '"' && im.back() == '"') im = im.substr(1, im.size() - 2);
    if (im.empty()) {
      return Err(Code::kInvalidArgument,
                 "If-Match header required: the generation the plan was made against (see current_generation of POST /v1/spec/plan)");
    }
    if (im.size() > 18 || im.find_first_not_of("0123456789") != std::string::npos) {
      return Err(Code::kInvalidArgument, "If-Match '{}': expected a generation number", im);
    }
    int64_t want = std::stoll(im);
    c.target = fmt::format("generation {}", want);
    CB_TRY(auto body, wire::DecodeText<wire::SpecRequest>(c.req.body));
    std::string file = body.filename.empty() ? "spec" : body.filename;
    CB_TRY(DesiredState next, derive(body.yaml, file));
    CB_TRY(auto cur, rec.Current());
    auto conflict = [&](int64_t current) {
      Reply r;
      r.status = 409;
      wire::ErrorBody e;
      e.code = "conflict";
      e.message = fmt::format(
          "spec changed since it was planned: current generation is {}, the plan was made against {}; plan again",
          current, want);
      e.current_generation = current;
      e.your_generation = want;
      r.body = json{{"error", e}};
      return r;
    };
    if (cur.first != want) return conflict(cur.first);
    wire::ApplyResponse out;
    out.plan = ComputePlan(*cur.second, next, cur.first);
    CB_TRY(auto stored, store.CurrentSpec());
    int64_t gen = cur.first;
    if (!stored || stored->yaml != body.yaml) {
      auto put = store.PutSpec(want, body.yaml, c.actor, Now(clock));
      if (!put) {
        if (put.error().code == Code::kConflict) {
          auto again = store.CurrentSpec();
          return conflict(again && *again ? (*again)->generation : want + 1);
        }
        return Err(put.error());
      }
      gen = *put;
    }
    out.generation = gen;
    c.target = fmt::format("generation {}", gen);
    rec.MarkDirty();
    out.hosts = rec.ReconcileNow(clock.Now());
    Reply r;
    r.body = out;
    r.detail = fmt::format("generation {}: {} to add, {} to change, {} to remove", gen, out.plan.summary.add,
                           out.plan.summary.change, out.plan.summary.remove);
    for (const auto& h : out.hosts) {
      if (!h.ok) r.detail += fmt::format("; host {}: {}", h.host, h.error.value_or("failed"));
    }
    return r;
  }

  Result<Reply> GetSpec(Ctx&) {
    CB_TRY(auto stored, store.CurrentSpec());
    wire::SpecGetResponse g;
    if (stored) {
      g.generation = stored->generation;
      g.yaml = stored->yaml;
      g.applied_at = stored->applied_at;
      g.applied_by = stored->applied_by;
      CB_TRY(auto cur, rec.Current());
      g.spec = cur.second->spec_json;
    }
    Reply r;
    r.body = g;
    return r;
  }

  Result<Reply> ListServices(Ctx& c) {
    std::string host;
    if (c.req.has_param("host")) {
      host = c.req.get_param_value("host");
      CB_TRY_VOID(ValidateServiceName(host).map_error([&](Error e) { return e.Wrap("query parameter host"); }));
    }
    CB_TRY(auto list, rec.Services(host, /*live=*/true));
    wire::ServicesResponse s;
    s.services = std::move(list);
    Reply r;
    r.body = s;
    return r;
  }

  Result<Reply> ServiceAction(Ctx& c, const std::string& action) {
    std::string raw = c.req.matches[1];
    c.target = raw;
    CB_TRY(auto addr, wire::ParseServiceAddress(raw));
    CB_TRY_VOID(ExpectEmptyBody(c.req.body));
    CB_TRY(std::string host, rec.ResolveHost(addr));
    c.target = addr.name + "@" + host;
    CB_TRY(json st, rec.ServiceAction(host, addr.name, action, c.actor));
    CB_TRY(auto list, rec.Services(host));
    wire::ServiceActionResponse a;
    for (auto& s : list) {
      if (s.name == addr.name) a.service = s;
    }
    Reply r;
    r.body = a;
    r.detail = fmt::format("{} {}: state {}", action, c.target, a.service.state);
    return r;
  }

  Result<Reply> Logs(Ctx& c) {
    std::string raw = c.req.matches[1];
    CB_TRY(auto addr, wire::ParseServiceAddress(raw));
    CB_TRY(int tail, IntParam(c.req, "tail", 100, 0, 10000));
    CB_TRY(bool follow, BoolParam(c.req, "follow"));
    CB_TRY(std::string host, rec.ResolveHost(addr));
    if (!follow) {
      CB_TRY(auto lines, rec.Logs(host, addr.name, tail));
      wire::LogsResponse l;
      l.lines = std::move(lines);
      Reply r;
      r.body = l;
      return r;
    }
    if (!wire::ScopeAllows(c.scope, wire::Scope::kOperator)) {
      return Err(Code::kPermissionDenied, "token '{}' has scope {}; logs follow needs operator", c.actor,
                 wire::ScopeName(c.scope));
    }
    if (followers.fetch_add(1) >= opt.max_followers) {
      followers.fetch_sub(1);
      return Err(Code::kUnavailable, "too many log followers ({}); try again later", opt.max_followers);
    }
    auto client = rec.OpenAgent(host);
    if (!client) {
      followers.fetch_sub(1);
      return Err(client.error());
    }
    auto first = (*client)->FollowStart(addr.name, tail);
    if (!first) {
      followers.fetch_sub(1);
      return Err(first.error());
    }
    struct Follow {
      std::unique_ptr<AgentClient> client;
      std::vector<std::string> pending;
      bool ended = false;
      int local_port = -1, remote_port = -1;
      int idle_seconds = 0;
    };
    auto f = std::make_shared<Follow>();
    f->local_port = c.req.local_port;
    f->remote_port = c.req.remote_port;
    f->client = std::move(*client);
    f->pending = std::move(*first);
    c.streamed = true;
    c.res.status = 200;
    c.res.set_chunked_content_provider(
        "text/plain; charset=utf-8",
        [f](size_t, httplib::DataSink& sink) {
          if (f->ended) return false;
          if (f->pending.empty()) {
            auto next = f->client->NextStream(Seconds(1));
            if (!next) {
              if (next.error().code == Code::kTimeout) {
                // Quiet service: every few idle seconds, check the client is still there.
                if (++f->idle_seconds % 3 == 0 && PeerGone(f->local_port, f->remote_port)) return false;
                return sink.is_writable();
              }
              f->ended = true;
              std::string msg = "cbctld: log stream ended: " + next.error().message + "\n";
              sink.write(msg.data(), msg.size());
              sink.done();
              return true;
            }
            f->pending = std::move(*next);
            f->idle_seconds = 0;
          }
          std::string out;
          for (const auto& l : f->pending) out += l + "\n";
          f->pending.clear();
          if (out.empty()) return true;
          return sink.write(out.data(), out.size());
        },
        [this, f](bool) {
          f->client.reset();
          followers.fetch_sub(1);
        });
    return Reply{};
  }

  Result<Reply> Hosts(Ctx&) {
    CB_TRY(auto cur, rec.Current());
    CB_TRY(auto recs, store.ListHosts());
    wire::HostsResponse out;
    for (const auto& d : cur.second->hosts) {
      wire::HostInfo h;
      h.name = d.name;
      h.address = d.address;
      h.transport = "local";
      h.services = static_cast<int>(d.services.size());
      for (const auto& r : recs) {
        if (r.name != d.name) continue;
        h.transport = r.transport;
        h.reachable = r.reachable;
        if (!r.agent.empty()) h.agent = r.agent;
        if (r.protocol) h.protocol = r.protocol;
        if (r.agent_pid) h.agent_pid = r.agent_pid;
        if (!r.socket.empty()) h.socket = r.socket;
        if (!r.last_seen.empty()) h.last_seen = r.last_seen;
        if (!r.last_error.empty()) h.last_error = r.last_error;
      }
      out.hosts.push_back(std::move(h));
    }
    Reply r;
    r.body = out;
    return r;
  }

  Result<Reply> AuditList(Ctx& c) {
    CB_TRY(int limit, IntParam(c.req, "limit", 100, 1, 10000));
    CB_TRY(auto entries, store.ListAudit(limit));
    wire::AuditResponse a;
    a.entries = std::move(entries);
    Reply r;
    r.body = a;
    return r;
  }

  Result<Reply> TokenCreate(Ctx& c) {
    CB_TRY(auto body, wire::DecodeText<wire::TokenCreateRequest>(c.req.body));
    c.target = "token " + body.name;
    CB_TRY(std::string secret, GenerateSecret());
    CB_TRY(auto rec_, store.CreateToken(body.name, body.scope, HashSecret(secret), c.actor, Now(clock)));
    wire::TokenCreateResponse t;
    t.token = rec_.ToInfo();
    t.secret = secret;
    Reply r;
    r.status = 201;
    r.body = t;
    r.detail = fmt::format("created token '{}' (id {}, scope {})", body.name, rec_.id, body.scope);
    return r;
  }

  Result<Reply> TokenList(Ctx&) {
    CB_TRY(auto list, store.ListTokens());
    wire::TokensResponse t;
    for (const auto& x : list) t.tokens.push_back(x.ToInfo());
    Reply r;
    r.body = t;
    return r;
  }

  Result<Reply> TokenRevoke(Ctx& c) {
    std::string which = c.req.matches[1];
    c.target = "token " + which;
    for (unsigned char ch : which) {
      if (ch < 0x20 || ch == 0x7f || ch == '/') {
        return Err(Code::kInvalidArgument, "token id or name contains '/' or a control character");
      }
    }
    CB_TRY(auto t, store.RevokeToken(which, Now(clock)));
    wire::TokenRevokeResponse out;
    out.token = t.ToInfo();
    Reply r;
    r.body = out;
    r.detail = fmt::format("revoked token '{}' (id {})", t.name, t.id);
    return r;
  }

  Result<std::string> MetricsText() {
    std::string out;
    auto services = rec.Services();
    std::map<std::string, int> by_state;
    for (const char* s : {"starting", "running", "backoff", "stopping", "stopped", "exited", "circuit-open",
                          "pending", "unknown"}) {
      by_state[s] = 0;
    }
    int64_t restarts = 0;
    int circuit = 0;
    if (services) {
      for (const auto& s : *services) {
        by_state[s.state]++;
        restarts += s.restarts;
        if (s.state == "circuit-open") ++circuit;
      }
    }
    out += "# HELP cbctld_services Desired services by last observed state.\n# TYPE cbctld_services gauge\n";
    for (const auto& [k, v] : by_state) out += fmt::format("cbctld_services{{state=\"{}\"}} {}\n", EscapeLabel(k), v);
    out += "# HELP cbctld_service_restarts_total Restarts reported by the agents, summed over desired services.\n"
           "# TYPE cbctld_service_restarts_total counter\n";
    out += fmt::format("cbctld_service_restarts_total {}\n", restarts);
    out += "# HELP cbctld_services_circuit_open Services whose restart circuit is open.\n"
           "# TYPE cbctld_services_circuit_open gauge\n";
    out += fmt::format("cbctld_services_circuit_open {}\n", circuit);
    out += "# HELP cbctld_reconcile_duration_seconds Duration of reconcile passes.\n"
           "# TYPE cbctld_reconcile_duration_seconds histogram\n";
    out += rec.RenderDurationHistogram();
    auto st = rec.stats();
    out += "# HELP cbctld_reconcile_errors_total Host-level reconcile failures.\n"
           "# TYPE cbctld_reconcile_errors_total counter\n";
    out += fmt::format("cbctld_reconcile_errors_total {}\n", st.errors);
    auto spec = store.CurrentSpec();
    out += "# HELP cbctld_spec_generation The stored spec generation.\n# TYPE cbctld_spec_generation gauge\n";
    out += fmt::format("cbctld_spec_generation {}\n", spec && *spec ? (*spec)->generation : 0);
    int reachable = 0;
    if (auto hosts = store.ListHosts()) {
      for (const auto& h : *hosts) reachable += h.reachable ? 1 : 0;
    }
    out += "# HELP cbctld_hosts_reachable Hosts whose agent answered the last pass.\n"
           "# TYPE cbctld_hosts_reachable gauge\n";
    out += fmt::format("cbctld_hosts_reachable {}\n", reachable);
    out += "# HELP cbctld_log_followers Open `logs -f` streams.\n# TYPE cbctld_log_followers gauge\n";
    out += fmt::format("cbctld_log_followers {}\n", followers.load());
    out += metrics.Render();
    if (opt.extra_metrics) out += opt.extra_metrics();
    return out;
  }

  void Register() {
    using S = wire::Scope;
    Route("GET", "/v1/health", "/v1/health", std::nullopt, [](Ctx&) -> Result<Reply> {
      Reply r;
      r.body = wire::HealthResponse{};
      return r;
    });
    Route("GET", "/v1/version", "/v1/version", std::nullopt, [this](Ctx&) -> Result<Reply> {
      wire::VersionResponse v;
      v.server = "cbctld " + opt.version;
      v.version = opt.version;
      v.agent_protocol = kAgentProtocol;
      Reply r;
      r.body = v;
      return r;
    });
    Route("GET", "/v1/spec", "/v1/spec", S::kViewer, [this](Ctx& c) { return GetSpec(c); });
    Route("POST", "/v1/spec/plan", "/v1/spec/plan", S::kViewer, [this](Ctx& c) { return Plan(c); });
    Route("POST", "/v1/spec/apply", "/v1/spec/apply", S::kAdmin, [this](Ctx& c) { return Apply(c); });
    Route("GET", "/v1/services", "/v1/services", S::kViewer, [this](Ctx& c) { return ListServices(c); });
    for (const char* a : {"start", "stop", "restart", "reset"}) {
      std::string action = a;
      Route("POST", std::string(R"(/v1/services/([\s\S]+)/)") + a, "/v1/services/{addr}/" + action,
            S::kOperator, [this, action](Ctx& c) { return ServiceAction(c, action); });
    }
    Route("GET", R"(/v1/services/([\s\S]+)/logs)", "/v1/services/{addr}/logs", S::kViewer,
          [this](Ctx& c) { return Logs(c); });
    Route("GET", "/v1/hosts", "/v1/hosts", S::kViewer, [this](Ctx& c) { return Hosts(c); });
    Route("GET", "/v1/audit", "/v1/audit", S::kViewer, [this](Ctx& c) { return AuditList(c); });
    Route("POST", "/v1/tokens", "/v1/tokens", S::kAdmin, [this](Ctx& c) { return TokenCreate(c); });
    Route("GET", "/v1/tokens", "/v1/tokens", S::kAdmin, [this](Ctx& c) { return TokenList(c); });
    Route("DELETE", R"(/v1/tokens/([\s\S]+))", "/v1/tokens/{id}", S::kAdmin, [this](Ctx& c) { return TokenRevoke(c); });
    Route("GET", "/metrics", "/metrics", S::kViewer, [this](Ctx& c) -> Result<Reply> {
      CB_TRY(std::string text, MetricsText());
      c.streamed = true;
      c.res.status = 200;
      c.res.set_content(text, "text/plain; version=0.0.4");
      return Reply{};
    });

    srv->set_payload_max_length(wire::kMaxRequestBodyBytes);
    srv->set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      Error e;
      e.code = wire::CodeForHttpStatus(res.status);
      if (res.status == 413 &&
          req.get_header_value("Content-Type").find("x-www-form-urlencoded") != std::string::npos) {
        e.message = "form-encoded request bodies are limited to 8 KiB; send JSON with Content-Type: application/json";
      } else if (res.status == 413) {
        e.message = fmt::format("request body is larger than the limit of {} bytes", wire::kMaxRequestBodyBytes);
      } else if (res.status == 404) {
        e.code = Code::kNotFound;
        e.message = fmt::format("no route {} {} (see controlplane/API.md)", req.method, req.path);
      } else {
        e.message = fmt::format("HTTP {} for {} {}", res.status, req.method, req.path);
      }
      res.set_content(wire::ErrorJson(e).dump() + "\n", "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    srv->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      res.status = 500;
      res.set_content(wire::ErrorJson(Error{Code::kInternal, fmt::format("{} {}: {}", req.method, req.path, what)}).dump() + "\n",
                      "application/json");
    });
  }
};

ApiServer::ApiServer(StateStore& store, Reconciler& reconciler, DeriveFn derive, const Clock& clock,
                     ApiOptions options)
    : impl_(std::make_unique<Impl>(store, reconciler, std::move(derive), clock, std::move(options))) {}

ApiServer::~ApiServer() { Stop(); }

Result<std::string> ApiServer::Bind() {
  auto& o = impl_->opt;
  CB_TRY(auto hp, ParseListen(o.listen));
  bool tls = !o.tls_cert.empty() || !o.tls_key.empty();
  if (tls && (o.tls_cert.empty() || o.tls_key.empty())) {
    return Err(Code::kInvalidArgument, "--tls-cert and --tls-key must be given together");
  }
  if (!IsLoopbackHost(hp.first) && !tls && !o.insecure) {
    return Err(Code::kInvalidArgument,
               "refusing to listen on non-loopback address {} without TLS: give --tls-cert and --tls-key, "
               "or --insecure to accept plain HTTP (tokens would cross the network in clear text)",
               o.listen);
  }
  if (tls) {
    for (const auto& f : {o.tls_cert, o.tls_key}) {
      if (::access(f.c_str(), R_OK) != 0) return Err(ErrnoError("TLS file " + f, errno));
    }
    auto s = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str());
    if (!s->is_valid()) {
      return Err(Code::kInvalidArgument, "TLS certificate {} / key {} could not be loaded", o.tls_cert, o.tls_key);
    }
    impl_->srv = std::move(s);
  } else {
    impl_->srv = std::make_unique<httplib::Server>();
  }
  size_t threads = static_cast<size_t>(std::max(2, o.worker_threads) + std::max(0, o.max_followers));
  impl_->srv->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->srv->set_read_timeout(30, 0);
  impl_->Register();
  int port = hp.second;
  if (port == 0) {
    port = impl_->srv->bind_to_any_port(hp.first);
    if (port < 0) return Err(Code::kUnavailable, "cannot bind {}: {}", o.listen, std::strerror(errno));
  } else if (!impl_->srv->bind_to_port(hp.first, port)) {
    return Err(Code::kUnavailable, "cannot bind {}: {}", o.listen, std::strerror(errno));
  }
  std::string host = hp.first.find(':') != std::string::npos ? "[" + hp.first + "]" : hp.first;
  return fmt::format("{}:{}", host, port);
}

void ApiServer::Run() {
  if (impl_->srv) impl_->srv->listen_after_bind();
}

void ApiServer::Stop() {
  if (impl_ && impl_->srv) impl_->srv->stop();
}

}  // namespace cb::cp
