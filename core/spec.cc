#include "core/spec.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/doc.h"
#include "core/service_decode.h"
#include "core/yaml.h"

namespace cb {

namespace {

template <class E>
struct EnumName {
  E value;
  std::string_view name;
};

constexpr EnumName<PartitionInterval> kIntervals[] = {{PartitionInterval::kDay, "day"},
                                                      {PartitionInterval::kWeek, "week"},
                                                      {PartitionInterval::kMonth, "month"}};
constexpr EnumName<WorkerMode> kModes[] = {{WorkerMode::kInProcess, "in-process"},
                                           {WorkerMode::kExternal, "external"}};
constexpr EnumName<EnforcedBy> kEnforcers[] = {{EnforcedBy::kCbctld, "cbctld"},
                                               {EnforcedBy::kServer, "server"}};
constexpr EnumName<BusKind> kBuses[] = {
    {BusKind::kPostgres, "postgres"}, {BusKind::kRedis, "redis"}, {BusKind::kNats, "nats"}};
constexpr EnumName<StorageKind> kStorages[] = {
    {StorageKind::kNone, "none"}, {StorageKind::kS3, "s3"}, {StorageKind::kNfs, "nfs"}};

template <class E, size_t N>
std::string_view NameOf(const EnumName<E> (&table)[N], E v) {
  for (const auto& e : table) {
    if (e.value == v) return e.name;
  }
  return table[0].name;
}

template <class E, size_t N>
std::string OneOf(const EnumName<E> (&table)[N]) {
  std::string out = "one of ";
  for (size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += table[i].name;
  }
  return out;
}

// The worker kinds: spec key, service/command name, member.
struct WorkerKind {
  std::string_view key;
  std::string_view name;
  WorkerKindSpec WorkersSpec::*member;
};
const WorkerKind kWorkerKinds[] = {
    {"log_ingest", "log-ingest", &WorkersSpec::log_ingest},
    {"memory_ingest", "memory-ingest", &WorkersSpec::memory_ingest},
    {"indexing", "indexing", &WorkersSpec::indexing},
};

// Finds the node at a path built by JoinPath/IndexPath ("plugins[2].hosts[0]"); nullptr when
// any part is missing. Keys containing '.' or '[' are not addressable (not needed here).
const Node* Lookup(const Node& root, std::string_view path) {
  const Node* n = &root;
  size_t i = 0;
  while (i < path.size() && n) {
    if (path[i] == '.') {
      ++i;
      continue;
    }
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) return nullptr;
      size_t idx = std::stoul(std::string(path.substr(i + 1, close - i - 1)));
      if (!n->IsSeq() || idx >= n->items.size()) return nullptr;
      n = &n->items[idx];
      i = close + 1;
      continue;
    }
    size_t end = path.find_first_of(".[", i);
    if (end == std::string_view::npos) end = path.size();
    n = n->Find(path.substr(i, end - i));
    i = end;
  }
  return n;
}

class SpecDecoder {
 public:
  SpecDecoder(Decoder& d, const Node& root) : d_(d), root_(root) {}

  std::vector<Problem> warnings;

  // Where to report a problem about `path`: the node there, else its nearest ancestor.
  Mark MarkOf(std::string path) {
    while (true) {
      if (const Node* n = Lookup(root_, path)) {
        // For a map entry, the key is where people look.
        size_t dot = path.find_last_of('.');
        if (dot != std::string::npos && path.back() != ']') {
          if (const Node* parent = Lookup(root_, path.substr(0, dot)); parent && parent->IsMap())
            return parent->KeyMark(path.substr(dot + 1));
        } else if (path.find_first_of(".[") == std::string::npos && root_.IsMap()) {
          return root_.KeyMark(path);
        }
        return n->mark;
      }
      size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos || cut == 0) return root_.mark;
      path.resize(cut);
    }
  }
  // A value's own mark (for "found X" problems).
  Mark ValueMark(const std::string& path) {
    if (const Node* n = Lookup(root_, path)) return n->mark;
    return MarkOf(path);
  }

  void Error(const std::string& path, std::string message, std::string expected = "",
             std::string found = "") {
    d_.Add(ValueMark(path), path, std::move(message), std::move(expected), std::move(found));
  }
  void Warn(const std::string& path, std::string message) {
    Mark m = ValueMark(path);
    warnings.push_back(Problem{d_.file(), m.line, m.column, path, std::move(message), "", ""});
  }

  template <class E, size_t N>
  void GetEnum(const Node& map, std::string_view key, const std::string& path,
               const EnumName<E> (&table)[N], E* out) {
    const Node* v = map.Find(key);
    if (!v || v->IsNull()) return;
    std::string p = JoinPath(path, key);
    auto s = d_.String(*v, p);
    if (!s) return;
    for (const auto& e : table) {
      if (e.name == *s) {
        *out = e.value;
        return;
      }
    }
    std::vector<std::string_view> names;
    for (const auto& e : table) names.push_back(e.name);
    std::string guess = DidYouMean(*s, names);
    std::string msg = "expected " + OneOf(table) + ", found " + Describe(*v);
    if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
    d_.Add(v->mark, p, msg, OneOf(table), Describe(*v));
  }

  void GetDuration(const Node& map, std::string_view key, const std::string& path, Duration* out) {
    const Node* v = map.Find(key);
    if (!v || v->IsNull()) return;
    std::string p = JoinPath(path, key);
    auto s = d_.String(*v, p);
    if (!s) return;
    auto r = ParseDuration(*s);
    if (!r) {
      d_.Add(v->mark, p, r.error().message, std::string(kDurationExpected), Describe(*v));
      return;
    }
    if (r->count() <= 0) {
      d_.Add(v->mark, p, "", "a duration > 0", Describe(*v));
      return;
    }
    *out = *r;
  }

  void GetPositive(const Node& map, std::string_view key, const std::string& path, int* out,
                   bool allow_zero = false) {
    const Node* v = map.Find(key);
    int value = *out;
    if (!d_.Get(map, key, path, &value)) return;
    if (allow_zero ? value < 0 : value <= 0) {
      d_.Add(v->mark, JoinPath(path, key), "",
             allow_zero ? "an integer >= 0" : "a positive integer", Describe(*v));
      return;
    }
    *out = value;
  }

  void GetPort(const Node& map, std::string_view key, const std::string& path, int* out) {
    const Node* v = map.Find(key);
    int value = *out;
    if (!d_.Get(map, key, path, &value)) return;
    if (value < 1 || value > 65535) {
      d_.Add(v->mark, JoinPath(path, key), "", "a port from 1 to 65535", Describe(*v));
      return;
    }
    *out = value;
  }

  // enabled | disabled (and true | false).
  void GetEnabled(const Node& map, std::string_view key, const std::string& path, bool* out) {
    const Node* v = map.Find(key);
    if (!v || v->IsNull()) return;
    if (v->kind == Node::Kind::kPlain || v->kind == Node::Kind::kString) {
      if (v->text == "enabled" || v->text == "true") {
        *out = true;
        return;
      }
      if (v->text == "disabled" || v->text == "false") {
        *out = false;
        return;
      }
    }
    if (v->kind == Node::Kind::kBool) {
      *out = v->text == "true";
      return;
    }
    d_.Expected(*v, JoinPath(path, key), "enabled or disabled");
  }

  void GetCommand(const Node& map, const std::string& path, std::vector<std::string>* out,
                  bool required) {
    const Node* v = required ? d_.Require(map, "command", path) : map.Find("command");
    if (!v || v->IsNull()) return;
    std::string p = JoinPath(path, "command");
    auto argv = d_.StringList(*v, p);
    if (!argv) return;
    if (!required && argv->empty()) {
      *out = {};
      return;
    }
    CheckCommand(d_, *v, p, *argv);
    *out = *argv;
  }

  void GetEnv(const Node& map, const std::string& path, std::map<std::string, std::string>* out) {
    if (!d_.Get(map, "env", path, out)) return;
    for (const auto& [k, v] : *out) {
      if (k.empty() || k.find('=') != std::string::npos)
        d_.Add(map.Find("env")->KeyMark(k), JoinPath(JoinPath(path, "env"), k),
               "an environment variable name must be non-empty without '='");
    }
  }

  void GetRestart(const Node& map, const std::string& path, std::optional<RestartSpec>* out) {
    const Node* v = map.Find("restart");
    if (!v || v->IsNull()) return;
    RestartSpec r = base_restart_;
    DecodeRestart(d_, *v, JoinPath(path, "restart"), &r);
    *out = r;
  }

  void GetStop(const Node& map, const std::string& path, StopSpec* out) {
    const Node* v = map.Find("stop");
    if (!v || v->IsNull()) return;
    DecodeStop(d_, *v, JoinPath(path, "stop"), out);
  }

  void GetHealth(const Node& map, const std::string& path, HealthSpec* out) {
    const Node* v = map.Find("health");
    if (!v || v->IsNull()) return;
    std::string p = JoinPath(path, "health");
    if (!d_.Map(*v, p, {"http"})) return;
    if (d_.Get(*v, "http", p, &out->http) && !out->http.empty() &&
        !out->http.starts_with("http://") && !out->http.starts_with("https://"))
      d_.Expected(*v->Find("http"), JoinPath(p, "http"), "an http:// or https:// URL");
  }

  void GetHosts(const Node& map, const std::string& path, std::vector<std::string>* out) {
    if (!d_.Get(map, "hosts", path, out)) return;
    std::string p = JoinPath(path, "hosts");
    host_refs_.push_back(p);
  }

  // ---- sections ----

  FleetSpec Decode() {
    FleetSpec s;
    static const std::vector<std::string_view> kTop = {"apiVersion",     "deployment",
                                                       "database",       "master_key_file",
                                                       "hosts",          "server",
                                                       "workers",        "agent_process_manager",
                                                       "agent_runs",     "plugin_process_manager",
                                                       "plugins",        "cache",
                                                       "metrics",        "message_bus",
                                                       "object_storage", "diagnose",
                                                       "autopilot",      "services"};
    if (root_.IsNull()) {
      d_.Add(root_.mark, "", "the spec is empty", "a map with the fleet's sections", "nothing");
      return s;
    }
    if (!d_.Map(root_, "", kTop)) return s;
    if (d_.Get(root_, "apiVersion", "", &s.api_version) && s.api_version != kSpecApiVersion)
      d_.Expected(*root_.Find("apiVersion"), "apiVersion", std::string(kSpecApiVersion));
    d_.Get(root_, "deployment", "", &s.deployment);
    d_.Get(root_, "master_key_file", "", &s.master_key_file);
    // plugin_process_manager first: it is the default restart policy of the rest.
    DecodePluginProcessManager(s);
    base_restart_ = s.DefaultRestart();
    DecodeDatabase(s);
    DecodeHosts(s);
    DecodeServer(s);
    DecodeWorkers(s);
    DecodeAgentProcessManager(s);
    DecodeAgentRuns(s);
    DecodePlugins(s);
    DecodeCache(s);
    DecodeMetrics(s);
    DecodeMessageBus(s);
    DecodeObjectStorage(s);
    DecodeDiagnose(s);
    DecodeAutopilot(s);
    DecodeServices(s);
    CheckHostReferences(s);
    CheckSqliteServers(s);
    CheckDatabaseService(s);
    CheckDerivedNames(s);
    return s;
  }

  void DecodePluginProcessManager(FleetSpec& s) {
    const Node* n = root_.Find("plugin_process_manager");
    if (!n || n->IsNull()) return;
    const std::string p = "plugin_process_manager";
    if (!d_.Map(*n, p,
                {"max_concurrent", "restart_backoff_seconds", "circuit_break_after_failures"}))
      return;
    auto& m = s.plugin_process_manager;
    GetPositive(*n, "max_concurrent", p, &m.max_concurrent);
    GetPositive(*n, "circuit_break_after_failures", p, &m.circuit_break_after_failures);
    if (const Node* b = n->Find("restart_backoff_seconds"); b && !b->IsNull()) {
      std::string bp = JoinPath(p, "restart_backoff_seconds");
      if (auto v = d_.NumberList(*b, bp)) {
        bool good = true;
        if (v->empty()) {
          d_.Add(b->mark, bp, "the backoff list must not be empty (the last value repeats)",
                 "a non-empty list of seconds", Describe(*b));
          good = false;
        }
        for (size_t i = 0; i < v->size(); ++i) {
          if ((*v)[i] < 0) {
            d_.Expected(b->items[i], IndexPath(bp, i), "seconds >= 0");
            good = false;
          } else if (i > 0 && (*v)[i] < (*v)[i - 1]) {
            d_.Add(b->items[i].mark, IndexPath(bp, i),
                   "backoff must not decrease (" + Describe(b->items[i]) + " after " +
                       Describe(b->items[i - 1]) + ")",
                   "a value >= " + Describe(b->items[i - 1]), Describe(b->items[i]));
            good = false;
          }
        }
        if (good) m.restart_backoff_seconds = *v;
      }
    }
  }

  void DecodeDatabase(FleetSpec& s) {
    const Node* n = root_.Find("database");
    if (!n || n->IsNull()) return;
    const std::string p = "database";
    if (!d_.Map(*n, p, {"url", "password_file", "partitioning", "service"})) return;
    auto& db = s.database;
    if (d_.Get(*n, "url", p, &db.url)) {
      const Node* u = n->Find("url");
      std::string up = "database.url";
      if (db.url.starts_with("postgresql://") || db.url.starts_with("postgres://")) {
        std::string rest = db.url.substr(db.url.find("://") + 3);
        size_t at = rest.find('@');
        size_t slash = rest.find('/');
        if (at != std::string::npos && (slash == std::string::npos || at < slash) &&
            rest.substr(0, at).find(':') != std::string::npos)
          Warn(up,
               "the URL carries a password; put it in database.password_file instead (it is "
               "printed with the password replaced)");
      } else if (db.url.starts_with("sqlite:")) {
        if (!db.url.starts_with("sqlite:///")) d_.Expected(*u, up, "sqlite:///absolute/path.db");
      } else {
        d_.Expected(*u, up, "a postgresql://… or sqlite:///… URL");
      }
    }
    d_.Get(*n, "password_file", p, &db.password_file);
    d_.Get(*n, "service", p, &db.service);
    const Node* part = n->Find("partitioning");
    if (!part || part->IsNull()) return;
    std::string pp = "database.partitioning";
    if (!d_.Map(*part, pp, {"tables", "interval", "premake", "retention"})) return;
    PartitioningSpec ps;
    if (d_.Get(*part, "tables", pp, &ps.tables)) {
      const Node* t = part->Find("tables");
      if (ps.tables.empty()) d_.Expected(*t, JoinPath(pp, "tables"), "a non-empty list of tables");
      for (size_t i = 0; i < ps.tables.size(); ++i) {
        const auto& name = ps.tables[i];
        bool good = !name.empty();
        for (char c : name)
          good = good && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.');
        if (!good)
          d_.Expected(t->items[i], IndexPath(JoinPath(pp, "tables"), i),
                      "a table name ([A-Za-z0-9_.]+)");
      }
    }
    GetEnum(*part, "interval", pp, kIntervals, &ps.interval);
    GetPositive(*part, "premake", pp, &ps.premake);
    if (const Node* r = part->Find("retention"); r && !r->IsNull()) {
      std::string rp = JoinPath(pp, "retention");
      if (auto str = d_.String(*r, rp)) {
        auto per = ParsePeriod(*str);
        if (!per)
          d_.Add(r->mark, rp, per.error().message, std::string(kPeriodExpected), Describe(*r));
        else if (per->months == 0 && per->fixed.count() == 0)
          d_.Add(r->mark, rp, "", "a retention > 0 (or null to keep every partition)",
                 Describe(*r));
        else
          ps.retention = *per;
      }
    }
    db.partitioning = ps;
  }

  void DecodeHosts(FleetSpec& s) {
    const Node* n = root_.Find("hosts");
    if (!n || n->IsNull()) return;
    if (!d_.Seq(*n, "hosts")) return;
    s.hosts.clear();
    if (n->items.empty())
      d_.Add(n->mark, "hosts", "the fleet needs at least one host",
             "a list of hosts ({name: local, address: local})", "an empty list");
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < n->items.size(); ++i) {
      const Node& h = n->items[i];
      std::string p = IndexPath("hosts", i);
      if (!d_.Map(h, p, {"name", "address", "ssh", "agent_socket"})) continue;
      HostSpec host;
      host.address.clear();
      if (const Node* name = d_.Require(h, "name", p)) {
        if (auto v = d_.String(*name, JoinPath(p, "name"))) {
          host.name = *v;
          if (auto ok = ValidateServiceName(*v); !ok) {
            std::string msg = ok.error().message;
            if (msg.starts_with("service name")) msg = "host name" + msg.substr(12);
            d_.Add(name->mark, JoinPath(p, "name"), msg,
                   "[a-z0-9][a-z0-9._-]*, at most 63 characters", Describe(*name));
          } else if (auto it = seen.find(*v); it != seen.end()) {
            d_.Add(
                name->mark, JoinPath(p, "name"),
                "duplicate host name '" + *v + "' (also hosts[" + std::to_string(it->second) + "])",
                "a unique name", *v);
          } else {
            seen[*v] = i;
          }
        }
      }
      if (const Node* addr = d_.Require(h, "address", p)) {
        if (auto v = d_.String(*addr, JoinPath(p, "address"))) {
          host.address = *v;
          bool good = !v->empty();
          for (char c : *v)
            good = good && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                            c == ':' || c == '_' || c == '[' || c == ']');
          if (!good)
            d_.Expected(*addr, JoinPath(p, "address"), "\"local\", a host name or an IP address");
        }
      }
      d_.Get(h, "agent_socket", p, &host.agent_socket);
      if (!host.agent_socket.empty() && host.agent_socket.front() != '/')
        d_.Expected(*h.Find("agent_socket"), JoinPath(p, "agent_socket"), "an absolute path");
      if (const Node* ssh = h.Find("ssh"); ssh && !ssh->IsNull()) {
        std::string sp = JoinPath(p, "ssh");
        if (host.IsLocal()) {
          d_.Add(h.KeyMark("ssh"), sp,
                 "host '" + host.name +
                     "' has address local (this machine, no SSH); ssh does "
                     "not apply");
        } else if (d_.Map(*ssh, sp, {"user", "port", "identity_file"})) {
          SshSpec sshs;
          d_.Get(*ssh, "user", sp, &sshs.user);
          GetPort(*ssh, "port", sp, &sshs.port);
          d_.Get(*ssh, "identity_file", sp, &sshs.identity_file);
          host.ssh = sshs;
        }
      }
      s.hosts.push_back(std::move(host));
    }
  }

  void DecodeServer(FleetSpec& s) {
    const Node* n = root_.Find("server");
    if (!n || n->IsNull()) return;
    const std::string p = "server";
    if (!d_.Map(*n, p,
                {"command", "hosts", "config_path", "health", "reload", "env", "restart", "stop"}))
      return;
    ServerSpec srv;
    GetCommand(*n, p, &srv.command, false);
    if (srv.command.empty()) srv.command = ServerSpec{}.command;
    GetHosts(*n, p, &srv.hosts);
    d_.Get(*n, "config_path", p, &srv.config_path);
    if (!srv.config_path.empty() && srv.config_path.front() != '/')
      d_.Expected(*n->Find("config_path"), "server.config_path", "an absolute path");
    GetHealth(*n, p, &srv.health);
    if (const Node* r = n->Find("reload"); r && !r->IsNull()) {
      if (d_.Map(*r, "server.reload", {"signal"})) {
        if (const Node* sig = r->Find("signal"); sig && !sig->IsNull()) {
          auto name = d_.String(*sig, "server.reload.signal");
          if (name) {
            auto num = ParseSignalName(*name);
            if (num)
              srv.reload_signal = *num;
            else
              d_.Expected(*sig, "server.reload.signal", "a signal name (HUP, USR1, USR2, ...)");
          }
        }
      }
    }
    GetEnv(*n, p, &srv.env);
    GetRestart(*n, p, &srv.restart);
    GetStop(*n, p, &srv.stop);
    s.server = srv;
  }

  void DecodeWorkers(FleetSpec& s) {
    const Node* n = root_.Find("workers");
    if (!n || n->IsNull()) return;
    const std::string p = "workers";
    if (!d_.Map(*n, p, {"binary", "log_ingest", "memory_ingest", "indexing"})) return;
    if (d_.Get(*n, "binary", p, &s.workers.binary) && s.workers.binary.empty())
      d_.Expected(*n->Find("binary"), "workers.binary", "a program path or name");
    for (const auto& kind : kWorkerKinds) {
      const Node* k = n->Find(kind.key);
      if (!k || k->IsNull()) continue;
      std::string kp = JoinPath(p, kind.key);
      if (!d_.Map(
              *k, kp,
              {"mode", "hosts", "replicas", "concurrency", "command", "env", "restart", "stop"}))
        continue;
      WorkerKindSpec& w = s.workers.*kind.member;
      GetEnum(*k, "mode", kp, kModes, &w.mode);
      GetHosts(*k, kp, &w.hosts);
      GetPositive(*k, "replicas", kp, &w.replicas);
      GetPositive(*k, "concurrency", kp, &w.concurrency);
      GetCommand(*k, kp, &w.command, false);
      GetEnv(*k, kp, &w.env);
      GetRestart(*k, kp, &w.restart);
      GetStop(*k, kp, &w.stop);
      if (w.mode == WorkerMode::kInProcess) {
        const WorkerKindSpec def;
        std::pair<const char*, bool> set[] = {{"hosts", !w.hosts.empty()},
                                              {"replicas", w.replicas != def.replicas},
                                              {"concurrency", w.concurrency != def.concurrency},
                                              {"command", !w.command.empty()}};
        for (auto [key, differs] : set) {
          if (differs)
            Warn(JoinPath(kp, key), std::string(key) +
                                        " applies to mode external only; the server runs " +
                                        std::string(kind.name) + " in-process");
        }
      }
    }
  }

  void DecodeAgentProcessManager(FleetSpec& s) {
    const Node* n = root_.Find("agent_process_manager");
    if (!n || n->IsNull()) return;
    const std::string p = "agent_process_manager";
    if (!d_.Map(*n, p,
                {"max_concurrent", "max_per_user", "max_per_workspace", "spawn_rate_per_second",
                 "enforced_by"}))
      return;
    auto& m = s.agent_process_manager;
    GetPositive(*n, "max_concurrent", p, &m.max_concurrent);
    GetPositive(*n, "max_per_user", p, &m.max_per_user);
    GetPositive(*n, "max_per_workspace", p, &m.max_per_workspace);
    if (const Node* r = n->Find("spawn_rate_per_second"); r && !r->IsNull()) {
      std::string rp = JoinPath(p, "spawn_rate_per_second");
      if (auto v = d_.Number(*r, rp)) {
        if (*v <= 0)
          d_.Expected(*r, rp, "a number > 0");
        else
          m.spawn_rate_per_second = *v;
      }
    }
    GetEnum(*n, "enforced_by", p, kEnforcers, &m.enforced_by);
    auto over = [&](std::string_view key, int value, std::string_view why) {
      if (value <= m.max_concurrent) return;
      bool given = n->Find(key) != nullptr;
      std::string shown =
          std::string(key) + (given ? " (" : " (default ") + std::to_string(value) + ")";
      Error(JoinPath(p, key),
            shown + " exceeds max_concurrent (" + std::to_string(m.max_concurrent) + ")" +
                std::string(why) +
                (given ? "" : "; set it to at most " + std::to_string(m.max_concurrent)),
            "at most " + std::to_string(m.max_concurrent), std::to_string(value));
    };
    over("max_per_user", m.max_per_user, ": one user could never reach it");
    over("max_per_workspace", m.max_per_workspace, ": one workspace could never reach it");
  }

  void DecodeAgentRuns(FleetSpec& s) {
    const Node* n = root_.Find("agent_runs");
    if (!n || n->IsNull()) return;
    const std::string p = "agent_runs";
    if (!d_.Map(*n, p, {"hosts", "slots_per_host"})) return;
    GetHosts(*n, p, &s.agent_runs.hosts);
    GetPositive(*n, "slots_per_host", p, &s.agent_runs.slots_per_host);
  }

  void DecodePlugins(FleetSpec& s) {
    const Node* n = root_.Find("plugins");
    if (!n || n->IsNull()) return;
    if (!d_.Seq(*n, "plugins")) return;
    for (size_t i = 0; i < n->items.size(); ++i) {
      const Node& e = n->items[i];
      std::string p = IndexPath("plugins", i);
      if (!d_.Map(e, p, {"name", "hosts", "command", "env", "health", "limits", "restart", "stop"}))
        continue;
      PluginSpec pl;
      GetName(e, p, &pl.name);
      GetHosts(e, p, &pl.hosts);
      GetCommand(e, p, &pl.command, true);
      GetEnv(e, p, &pl.env);
      GetHealth(e, p, &pl.health);
      if (const Node* l = e.Find("limits"); l && !l->IsNull()) {
        std::string lp = JoinPath(p, "limits");
        if (d_.Map(*l, lp, {"memory_mb", "open_files"})) {
          GetPositive(*l, "memory_mb", lp, &pl.limits.memory_mb, true);
          GetPositive(*l, "open_files", lp, &pl.limits.open_files, true);
        }
      }
      GetRestart(e, p, &pl.restart);
      GetStop(e, p, &pl.stop);
      s.plugins.push_back(std::move(pl));
    }
  }

  void GetName(const Node& e, const std::string& p, std::string* out) {
    const Node* name = d_.Require(e, "name", p);
    if (!name) return;
    std::string np = JoinPath(p, "name");
    auto v = d_.String(*name, np);
    if (!v) return;
    if (auto ok = ValidateServiceName(*v); !ok)
      d_.Add(name->mark, np, ok.error().message, "[a-z0-9][a-z0-9._-]*, at most 63 characters",
             Describe(*name));
    *out = *v;
  }

  void DecodeCache(FleetSpec& s) {
    const Node* n = root_.Find("cache");
    if (!n || n->IsNull()) return;
    const std::string p = "cache";
    if (!d_.Map(*n, p, {"codemap_mb", "vector_mb", "llm_response"})) return;
    GetPositive(*n, "codemap_mb", p, &s.cache.codemap_mb, true);
    GetPositive(*n, "vector_mb", p, &s.cache.vector_mb, true);
    GetEnabled(*n, "llm_response", p, &s.cache.llm_response);
  }

  void DecodeMetrics(FleetSpec& s) {
    const Node* n = root_.Find("metrics");
    if (!n || n->IsNull()) return;
    if (!d_.Map(*n, "metrics", {"prometheus"})) return;
    const Node* pr = n->Find("prometheus");
    if (!pr || pr->IsNull()) return;
    const std::string p = "metrics.prometheus";
    if (!d_.Map(*pr, p, {"enabled", "path", "port"})) return;
    auto& m = s.metrics.prometheus;
    d_.Get(*pr, "enabled", p, &m.enabled);
    if (d_.Get(*pr, "path", p, &m.path) && (m.path.empty() || m.path.front() != '/'))
      d_.Expected(*pr->Find("path"), JoinPath(p, "path"), "a path starting with '/'");
    GetPort(*pr, "port", p, &m.port);
  }

  void DecodeMessageBus(FleetSpec& s) {
    const Node* n = root_.Find("message_bus");
    if (!n || n->IsNull()) return;
    const std::string p = "message_bus";
    if (!d_.Map(*n, p, {"kind", "url"})) return;
    GetEnum(*n, "kind", p, kBuses, &s.message_bus.kind);
    d_.Get(*n, "url", p, &s.message_bus.url);
    if (s.message_bus.kind != BusKind::kPostgres && s.message_bus.url.empty())
      Error("message_bus.url",
            "message_bus kind " + std::string(BusKindName(s.message_bus.kind)) + " needs a url",
            std::string(BusKindName(s.message_bus.kind)) + "://host:port", "nothing");
  }

  void DecodeObjectStorage(FleetSpec& s) {
    const Node* n = root_.Find("object_storage");
    if (!n || n->IsNull()) return;
    const std::string p = "object_storage";
    if (!d_.Map(*n, p, {"kind", "bucket", "endpoint", "path"})) return;
    auto& o = s.object_storage;
    GetEnum(*n, "kind", p, kStorages, &o.kind);
    d_.Get(*n, "bucket", p, &o.bucket);
    d_.Get(*n, "endpoint", p, &o.endpoint);
    d_.Get(*n, "path", p, &o.path);
    if (o.kind == StorageKind::kS3 && o.bucket.empty())
      Error("object_storage.bucket", "object_storage kind s3 needs a bucket", "a bucket name",
            "nothing");
    if (o.kind == StorageKind::kNfs && (o.path.empty() || o.path.front() != '/'))
      Error("object_storage.path", "object_storage kind nfs needs an absolute path",
            "an absolute path", o.path.empty() ? "nothing" : o.path);
  }

  void DecodeDiagnose(FleetSpec& s) {
    const Node* n = root_.Find("diagnose");
    if (!n || n->IsNull()) return;
    const std::string p = "diagnose";
    if (!d_.Map(*n, p, {"window", "prometheus_url", "thresholds"})) return;
    GetDuration(*n, "window", p, &s.diagnose.window);
    if (d_.Get(*n, "prometheus_url", p, &s.diagnose.prometheus_url) &&
        !s.diagnose.prometheus_url.starts_with("http://") &&
        !s.diagnose.prometheus_url.starts_with("https://"))
      d_.Expected(*n->Find("prometheus_url"), "diagnose.prometheus_url",
                  "an http:// or https:// URL (or null)");
    const Node* t = n->Find("thresholds");
    if (!t || t->IsNull()) return;
    std::string tp = "diagnose.thresholds";
    if (!t->IsMap()) {
      d_.Expected(*t, tp, "a map of check-id: {warning, critical}");
      return;
    }
    for (size_t i = 0; i < t->entries.size(); ++i) {
      const auto& [id, v] = t->entries[i];
      std::string ip = JoinPath(tp, id);
      if (auto ok = ValidateServiceName(id); !ok)
        d_.Add(t->key_marks[i], ip, "a check id is [a-z0-9][a-z0-9._-]*", "a check id", id);
      if (!v.IsMap()) {
        d_.Expected(v, ip, "{warning: N, critical: N}");
        continue;
      }
      if (!d_.Map(v, ip, {"warning", "critical"})) continue;
      ThresholdSpec th;
      if (const Node* w = v.Find("warning"); w && !w->IsNull())
        th.warning = d_.Number(*w, JoinPath(ip, "warning"));
      if (const Node* c = v.Find("critical"); c && !c->IsNull())
        th.critical = d_.Number(*c, JoinPath(ip, "critical"));
      if (!v.Find("warning") && !v.Find("critical"))
        d_.Add(v.mark, ip, "a threshold needs warning, critical or both",
               "{warning: N, critical: N}", "a map without either");
      s.diagnose.thresholds[id] = th;
    }
  }

  void DecodeAutopilot(FleetSpec& s) {
    const Node* n = root_.Find("autopilot");
    if (!n || n->IsNull()) return;
    const std::string p = "autopilot";
    if (!d_.Map(*n, p, {"enabled", "interval", "allow", "sustain", "cooldown", "dry_run"})) return;
    auto& a = s.autopilot;
    d_.Get(*n, "enabled", p, &a.enabled);
    GetDuration(*n, "interval", p, &a.interval);
    if (d_.Get(*n, "allow", p, &a.allow)) {
      for (size_t i = 0; i < a.allow.size(); ++i) {
        if (a.allow[i].empty())
          d_.Expected(n->Find("allow")->items[i], IndexPath("autopilot.allow", i),
                      "an action name");
      }
    }
    GetDuration(*n, "sustain", p, &a.sustain);
    GetDuration(*n, "cooldown", p, &a.cooldown);
    d_.Get(*n, "dry_run", p, &a.dry_run);
  }

  void DecodeServices(FleetSpec& s) {
    const Node* n = root_.Find("services");
    if (!n || n->IsNull()) return;
    if (!d_.Seq(*n, "services")) return;
    for (size_t i = 0; i < n->items.size(); ++i) {
      const Node& e = n->items[i];
      std::string p = IndexPath("services", i);
      if (!d_.Map(e, p, {"name", "hosts", "command", "env", "cwd", "user", "restart", "stop"}))
        continue;
      CustomServiceSpec cs;
      GetName(e, p, &cs.name);
      GetHosts(e, p, &cs.hosts);
      GetCommand(e, p, &cs.command, true);
      GetEnv(e, p, &cs.env);
      if (d_.Get(e, "cwd", p, &cs.cwd) && !cs.cwd.empty() && cs.cwd.front() != '/')
        d_.Expected(*e.Find("cwd"), JoinPath(p, "cwd"), "an absolute path");
      d_.Get(e, "user", p, &cs.user);
      GetRestart(e, p, &cs.restart);
      GetStop(e, p, &cs.stop);
      s.services.push_back(std::move(cs));
    }
  }

  // ---- semantic checks ----

  void CheckHostReferences(FleetSpec& s) {
    std::vector<std::string_view> names;
    for (const auto& h : s.hosts) names.push_back(h.name);
    for (const auto& ref_path : host_refs_) {
      const Node* list = Lookup(root_, ref_path);
      if (!list || !list->IsSeq()) continue;
      std::set<std::string> seen;
      for (size_t i = 0; i < list->items.size(); ++i) {
        const Node& item = list->items[i];
        const std::string& name = item.text;
        std::string ip = IndexPath(ref_path, i);
        if (!seen.insert(name).second) {
          d_.Add(item.mark, ip, "host '" + name + "' is listed twice", "each host once", name);
          continue;
        }
        if (s.FindHost(name)) continue;
        std::string msg = "unknown host '" + name + "'";
        std::string guess = DidYouMean(name, names);
        if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
        std::string defined;
        for (auto n : names) defined += (defined.empty() ? "" : ", ") + std::string(n);
        msg += "; hosts: defines " + (defined.empty() ? std::string("none") : defined);
        d_.Add(item.mark, ip, msg, "a host defined under hosts:", name);
      }
    }
    // Empty host lists: the only host when there is one, else an error. Workers only when
    // external; agent_runs may be empty (no host runs agent runs).
    auto resolve = [&](std::vector<std::string>& hosts, const std::string& path,
                       const std::string& what) {
      if (!hosts.empty()) return;
      if (s.hosts.size() == 1) {
        hosts = {s.hosts[0].name};
        return;
      }
      if (s.hosts.empty()) return;  // already an error
      Error(path,
            what + " needs hosts: the spec defines " + std::to_string(s.hosts.size()) +
                " hosts, so say which run it",
            "a list of host names", "nothing");
    };
    if (s.server) resolve(s.server->hosts, "server.hosts", "server");
    for (const auto& kind : kWorkerKinds) {
      WorkerKindSpec& w = s.workers.*kind.member;
      if (w.mode == WorkerMode::kExternal)
        resolve(w.hosts, JoinPath(JoinPath("workers", kind.key), "hosts"),
                "workers." + std::string(kind.key) + " (mode external)");
    }
    for (size_t i = 0; i < s.plugins.size(); ++i)
      resolve(s.plugins[i].hosts, JoinPath(IndexPath("plugins", i), "hosts"),
              "plugin '" + s.plugins[i].name + "'");
    for (size_t i = 0; i < s.services.size(); ++i)
      resolve(s.services[i].hosts, JoinPath(IndexPath("services", i), "hosts"),
              "service '" + s.services[i].name + "'");
  }

  // database.service names a services: entry (the one that runs Postgres).
  void CheckDatabaseService(const FleetSpec& s) {
    if (s.database.service.empty()) return;
    std::string names;
    for (const auto& c : s.services) {
      if (c.name == s.database.service) {
        if (s.database.IsSqlite())
          Error("database.service", "a service runs Postgres, but database.url is SQLite", "a postgresql:// URL",
                s.database.url);
        return;
      }
      names += (names.empty() ? "" : ", ") + c.name;
    }
    Error("database.service", "no entry of services: is named '" + s.database.service + "'",
          names.empty() ? std::string("the name of a services: entry (there is none)")
                        : "one of the services: " + names,
          s.database.service);
  }

  void CheckSqliteServers(const FleetSpec& s) {
    if (!s.server || !s.database.IsSqlite() || s.server->hosts.size() <= 1) return;
    std::string hosts;
    for (const auto& h : s.server->hosts) hosts += (hosts.empty() ? "" : ", ") + h;
    std::string msg = "a SQLite database serves one server only, but server.hosts has " +
                      std::to_string(s.server->hosts.size()) + " (" + hosts +
                      "); several servers need a shared Postgres database (postgresql://…)";
    bool url_given = Lookup(root_, "database.url") != nullptr;
    Error(url_given ? "database.url" : "server.hosts", msg,
          "a postgresql:// URL, or one server host", s.database.url);
  }

  void CheckDerivedNames(const FleetSpec& s) {
    // name -> host -> the path that introduced it
    std::map<std::pair<std::string, std::string>, std::string> owner;
    auto claim = [&](const std::string& name, const std::vector<std::string>& hosts,
                     const std::string& path) {
      for (const auto& h : hosts) {
        auto [it, fresh] = owner.try_emplace({h, name}, path);
        if (!fresh)
          Error(JoinPath(path, "name"),
                "service name '" + name + "' is already used on host '" + h + "' by " + it->second,
                "a name unique on each host", name);
      }
    };
    if (s.server) claim("server", s.server->hosts, "server");
    for (const auto& kind : kWorkerKinds) {
      const WorkerKindSpec& w = s.workers.*kind.member;
      if (w.mode != WorkerMode::kExternal) continue;
      for (int i = 1; i <= w.replicas; ++i)
        claim(std::string(kind.name) + "-" + std::to_string(i), w.hosts,
              JoinPath("workers", kind.key));
    }
    for (size_t i = 0; i < s.plugins.size(); ++i)
      if (!s.plugins[i].name.empty())
        claim(s.plugins[i].name, s.plugins[i].hosts, IndexPath("plugins", i));
    for (size_t i = 0; i < s.services.size(); ++i)
      if (!s.services[i].name.empty())
        claim(s.services[i].name, s.services[i].hosts, IndexPath("services", i));
  }

 private:
  Decoder& d_;
  const Node& root_;
  RestartSpec base_restart_;
  std::vector<std::string> host_refs_;
};

bool ProblemBefore(const Problem& a, const Problem& b) {
  // Problems without a position (line 0) go last; else by position.
  int la = a.line == 0 ? INT32_MAX : a.line, lb = b.line == 0 ? INT32_MAX : b.line;
  if (la != lb) return la < lb;
  return a.column < b.column;
}

SpecLoad Finish(const std::optional<Node>& root, Decoder& d) {
  SpecLoad out;
  if (root) {
    SpecDecoder sd(d, *root);
    FleetSpec spec = sd.Decode();
    out.warnings = std::move(sd.warnings);
    if (d.ok()) out.spec = std::move(spec);
  }
  out.errors = d.TakeProblems();
  std::stable_sort(out.errors.begin(), out.errors.end(), ProblemBefore);
  std::stable_sort(out.warnings.begin(), out.warnings.end(), ProblemBefore);
  return out;
}

nlohmann::json RestartJson(const RestartSpec& r) {
  return {{"policy", RestartPolicyName(r.policy)},
          {"backoff_seconds", r.backoff_seconds},
          {"jitter", r.jitter},
          {"circuit_break_after_failures", r.circuit_break_after_failures},
          {"healthy_after_seconds", r.healthy_after_seconds},
          {"probe_after_seconds", r.probe_after_seconds}};
}
nlohmann::json OptRestartJson(const std::optional<RestartSpec>& r) {
  return r ? RestartJson(*r) : nlohmann::json(nullptr);
}
nlohmann::json StopJson(const StopSpec& s) {
  return {{"signal", SignalName(s.signal)}, {"grace_seconds", s.grace_seconds}};
}
nlohmann::json HealthJson(const HealthSpec& h) {
  return {{"http", h.http.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.http)}};
}
nlohmann::json OrNull(const std::string& s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

}  // namespace

std::string_view PartitionIntervalName(PartitionInterval i) { return NameOf(kIntervals, i); }
std::string_view WorkerModeName(WorkerMode m) { return NameOf(kModes, m); }
std::string_view EnforcedByName(EnforcedBy e) { return NameOf(kEnforcers, e); }
std::string_view BusKindName(BusKind k) { return NameOf(kBuses, k); }
std::string_view StorageKindName(StorageKind k) { return NameOf(kStorages, k); }

const HostSpec* FleetSpec::FindHost(std::string_view name) const {
  for (const auto& h : hosts) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

RestartSpec FleetSpec::DefaultRestart() const {
  RestartSpec r;
  r.backoff_seconds = plugin_process_manager.restart_backoff_seconds;
  r.circuit_break_after_failures = plugin_process_manager.circuit_break_after_failures;
  return r;
}

SpecLoad ParseFleetSpec(std::string_view text, const std::string& file) {
  Decoder d(file);
  auto root = ParseYaml(text, d);
  return Finish(root, d);
}

SpecLoad LoadFleetSpec(const std::string& path) {
  Decoder d(path);
  auto root = LoadYamlFile(path, d);
  return Finish(root, d);
}

Result<FleetSpec> ParseFleetSpecOrError(std::string_view text, const std::string& file) {
  SpecLoad l = ParseFleetSpec(text, file);
  if (l.ok()) return std::move(*l.spec);
  std::string msg = std::to_string(l.errors.size()) +
                    (l.errors.size() == 1 ? " problem in " : " problems in ") +
                    (file.empty() ? std::string("the spec") : file) + ":";
  for (const auto& p : l.errors) msg += "\n  " + FormatProblem(p);
  return tl::unexpected(Error{Code::kInvalidArgument, msg});
}

nlohmann::json SpecToJson(const FleetSpec& s) {
  using nlohmann::json;
  json j = json::object();
  j["apiVersion"] = s.api_version;
  j["deployment"] = s.deployment;
  {
    json db = {{"url", s.database.url}, {"password_file", OrNull(s.database.password_file)}};
    if (s.database.partitioning) {
      const auto& p = *s.database.partitioning;
      db["partitioning"] = {
          {"tables", p.tables},
          {"interval", PartitionIntervalName(p.interval)},
          {"premake", p.premake},
          {"retention", p.retention ? json(FormatPeriod(*p.retention)) : json(nullptr)}};
    } else {
      db["partitioning"] = nullptr;
    }
    if (!s.database.service.empty()) db["service"] = s.database.service;
    j["database"] = db;
  }
  j["master_key_file"] = OrNull(s.master_key_file);
  j["hosts"] = json::array();
  for (const auto& h : s.hosts) {
    json hj = {{"name", h.name}, {"address", h.address}};
    if (h.ssh)
      hj["ssh"] = {{"user", OrNull(h.ssh->user)},
                   {"port", h.ssh->port},
                   {"identity_file", OrNull(h.ssh->identity_file)}};
    if (!h.agent_socket.empty()) hj["agent_socket"] = h.agent_socket;
    j["hosts"].push_back(hj);
  }
  if (s.server) {
    const auto& v = *s.server;
    j["server"] = {{"command", v.command},
                   {"hosts", v.hosts},
                   {"config_path", v.config_path},
                   {"health", HealthJson(v.health)},
                   {"reload", v.reload_signal ? json{{"signal", SignalName(*v.reload_signal)}}
                                              : json(nullptr)},
                   {"env", v.env},
                   {"restart", OptRestartJson(v.restart)},
                   {"stop", StopJson(v.stop)}};
  } else {
    j["server"] = nullptr;
  }
  {
    json w = {{"binary", s.workers.binary}};
    for (const auto& kind : kWorkerKinds) {
      const WorkerKindSpec& k = s.workers.*kind.member;
      w[std::string(kind.key)] = {{"mode", WorkerModeName(k.mode)},
                                  {"hosts", k.hosts},
                                  {"replicas", k.replicas},
                                  {"concurrency", k.concurrency},
                                  {"command", k.command},
                                  {"env", k.env},
                                  {"restart", OptRestartJson(k.restart)},
                                  {"stop", StopJson(k.stop)}};
    }
    j["workers"] = w;
  }
  const auto& apm = s.agent_process_manager;
  j["agent_process_manager"] = {{"max_concurrent", apm.max_concurrent},
                                {"max_per_user", apm.max_per_user},
                                {"max_per_workspace", apm.max_per_workspace},
                                {"spawn_rate_per_second", apm.spawn_rate_per_second},
                                {"enforced_by", EnforcedByName(apm.enforced_by)}};
  j["agent_runs"] = {{"hosts", s.agent_runs.hosts},
                     {"slots_per_host", s.agent_runs.slots_per_host}};
  const auto& ppm = s.plugin_process_manager;
  j["plugin_process_manager"] = {
      {"max_concurrent", ppm.max_concurrent},
      {"restart_backoff_seconds", ppm.restart_backoff_seconds},
      {"circuit_break_after_failures", ppm.circuit_break_after_failures}};
  j["plugins"] = json::array();
  for (const auto& p : s.plugins) {
    j["plugins"].push_back(
        {{"name", p.name},
         {"hosts", p.hosts},
         {"command", p.command},
         {"env", p.env},
         {"health", HealthJson(p.health)},
         {"limits", {{"memory_mb", p.limits.memory_mb}, {"open_files", p.limits.open_files}}},
         {"restart", OptRestartJson(p.restart)},
         {"stop", StopJson(p.stop)}});
  }
  j["cache"] = {{"codemap_mb", s.cache.codemap_mb},
                {"vector_mb", s.cache.vector_mb},
                {"llm_response", s.cache.llm_response ? "enabled" : "disabled"}};
  j["metrics"] = {{"prometheus",
                   {{"enabled", s.metrics.prometheus.enabled},
                    {"path", s.metrics.prometheus.path},
                    {"port", s.metrics.prometheus.port}}}};
  j["message_bus"] = {{"kind", BusKindName(s.message_bus.kind)},
                      {"url", OrNull(s.message_bus.url)}};
  j["object_storage"] = {{"kind", StorageKindName(s.object_storage.kind)},
                         {"bucket", OrNull(s.object_storage.bucket)},
                         {"endpoint", OrNull(s.object_storage.endpoint)},
                         {"path", OrNull(s.object_storage.path)}};
  {
    json th = json::object();
    for (const auto& [id, t] : s.diagnose.thresholds) {
      json tj = json::object();
      if (t.warning) tj["warning"] = *t.warning;
      if (t.critical) tj["critical"] = *t.critical;
      th[id] = tj;
    }
    j["diagnose"] = {{"window", FormatDuration(s.diagnose.window)},
                     {"prometheus_url", OrNull(s.diagnose.prometheus_url)},
                     {"thresholds", th}};
  }
  j["autopilot"] = {{"enabled", s.autopilot.enabled},
                    {"interval", FormatDuration(s.autopilot.interval)},
                    {"allow", s.autopilot.allow},
                    {"sustain", FormatDuration(s.autopilot.sustain)},
                    {"cooldown", FormatDuration(s.autopilot.cooldown)},
                    {"dry_run", s.autopilot.dry_run}};
  j["services"] = json::array();
  for (const auto& c : s.services) {
    j["services"].push_back({{"name", c.name},
                             {"hosts", c.hosts},
                             {"command", c.command},
                             {"env", c.env},
                             {"cwd", OrNull(c.cwd)},
                             {"user", OrNull(c.user)},
                             {"restart", OptRestartJson(c.restart)},
                             {"stop", StopJson(c.stop)}});
  }
  return j;
}

std::string SpecToYaml(const FleetSpec& spec) { return JsonToYaml(SpecToJson(spec)); }

std::vector<DerivedService> DeriveServices(const FleetSpec& s) {
  std::vector<DerivedService> out;
  const RestartSpec base = s.DefaultRestart();
  auto add = [&](const std::vector<std::string>& hosts, const ServiceSpec& spec) {
    for (const auto& h : hosts) out.push_back(DerivedService{h, "", spec});
  };
  if (s.server) {
    ServiceSpec v;
    v.name = "server";
    v.command = s.server->command;
    v.env = s.server->env;
    v.restart = s.server->restart.value_or(base);
    v.stop = s.server->stop;
    add(s.server->hosts, v);
  }
  for (const auto& kind : kWorkerKinds) {
    const WorkerKindSpec& w = s.workers.*kind.member;
    if (w.mode != WorkerMode::kExternal) continue;
    std::vector<std::string> argv = w.command;
    if (argv.empty()) argv = {s.workers.binary, std::string(kind.name)};
    argv.push_back("--concurrency");
    argv.push_back(std::to_string(w.concurrency));
    for (int i = 1; i <= w.replicas; ++i) {
      ServiceSpec v;
      v.name = std::string(kind.name) + "-" + std::to_string(i);
      v.command = argv;
      v.env = w.env;
      v.restart = w.restart.value_or(base);
      v.stop = w.stop;
      add(w.hosts, v);
    }
  }
  for (const auto& p : s.plugins) {
    ServiceSpec v;
    v.name = p.name;
    v.command = p.command;
    v.env = p.env;
    v.restart = p.restart.value_or(base);
    v.stop = p.stop;
    add(p.hosts, v);
  }
  for (const auto& c : s.services) {
    ServiceSpec v;
    v.name = c.name;
    v.command = c.command;
    v.env = c.env;
    v.cwd = c.cwd;
    v.user = c.user;
    v.restart = c.restart.value_or(base);
    v.stop = c.stop;
    add(c.hosts, v);
  }
  std::map<std::string, int> hosts_per_name;
  for (const auto& d : out) hosts_per_name[d.spec.name]++;
  for (auto& d : out)
    d.address = hosts_per_name[d.spec.name] > 1 ? d.spec.name + "@" + d.host : d.spec.name;
  std::sort(out.begin(), out.end(), [](const DerivedService& a, const DerivedService& b) {
    return std::tie(a.host, a.spec.name) < std::tie(b.host, b.spec.name);
  });
  return out;
}

std::map<std::string, std::vector<ServiceSpec>> DeriveServicesByHost(const FleetSpec& s) {
  std::map<std::string, std::vector<ServiceSpec>> out;
  for (const auto& h : s.hosts) out[h.name];
  for (auto& d : DeriveServices(s)) out[d.host].push_back(std::move(d.spec));
  return out;
}

}  // namespace cb
