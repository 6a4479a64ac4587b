#include "controlplane/reconciler.h"

#include <algorithm>
#include <set>

namespace cb::cp {

using nlohmann::json;

std::vector<std::string> ChangedFields(const ServiceSpec& a, const ServiceSpec& b) {
  std::vector<std::string> f;
  if (a.command != b.command) f.push_back("command");
  if (a.env != b.env) f.push_back("env");
  if (a.cwd != b.cwd) f.push_back("cwd");
  if (a.user != b.user) f.push_back("user");
  if (!(a.restart == b.restart)) f.push_back("restart");
  if (!(a.stop == b.stop)) f.push_back("stop");
  return f;
}

wire::PlanResponse ComputePlan(const DesiredState& current, const DesiredState& next,
                               int64_t current_generation) {
  wire::PlanResponse p;
  p.current_generation = current_generation;
  std::map<std::string, std::map<std::string, const ServiceSpec*>> cur, nxt;
  for (const auto& h : current.hosts) {
    auto& m = cur[h.name];
    for (const auto& s : h.services) m[s.name] = &s;
  }
  for (const auto& h : next.hosts) {
    auto& m = nxt[h.name];
    for (const auto& s : h.services) m[s.name] = &s;
  }
  std::set<std::string> hosts;
  for (const auto& [h, _] : cur) hosts.insert(h);
  for (const auto& [h, _] : nxt) hosts.insert(h);
  for (const auto& host : hosts) {
    const auto& c = cur[host];
    const auto& n = nxt[host];
    std::set<std::string> names;
    for (const auto& [k, _] : c) names.insert(k);
    for (const auto& [k, _] : n) names.insert(k);
    for (const auto& name : names) {
      wire::ServiceChange ch;
      ch.host = host;
      ch.name = name;
      auto ci = c.find(name);
      auto ni = n.find(name);
      if (ci == c.end()) {
        ch.action = "add";
        ++p.summary.add;
      } else if (ni == n.end()) {
        ch.action = "remove";
        ++p.summary.remove;
      } else if (*ci->second == *ni->second) {
        ch.action = "unchanged";
        ++p.summary.unchanged;
      } else {
        ch.action = "change";
        ch.fields = ChangedFields(*ci->second, *ni->second);
        ++p.summary.change;
      }
      p.changes.push_back(std::move(ch));
    }
  }
  return p;
}

Reconciler::Reconciler(StateStore& store, const Clock& clock, DeriveFn derive,
                       ConnectorFactory connectors, ReconcilerOptions options)
    : store_(store),
      clock_(clock),
      derive_(std::move(derive)),
      connectors_(std::move(connectors)),
      options_(std::move(options)) {}

void Reconciler::MarkDirty() { dirty_ = true; }

bool Reconciler::Step(MonoTime now) {
  bool due;
  {
    std::lock_guard lk(mu_);
    due = dirty_ || !last_pass_ || now - *last_pass_ >= options_.period;
  }
  if (!due) return false;
  (void)Pass(now);
  return true;
}

std::vector<wire::HostApplyResult> Reconciler::ReconcileNow(MonoTime now) { return Pass(now); }

Result<std::pair<int64_t, std::shared_ptr<const DesiredState>>> Reconciler::Current() {
  CB_TRY(auto spec, store_.CurrentSpec());
  std::lock_guard lk(mu_);
  int64_t gen = spec ? spec->generation : 0;
  if (gen != cached_generation_) {
    if (!spec) {
      cached_ = std::make_shared<const DesiredState>();
    } else {
      auto d = derive_(spec->yaml, "stored spec generation " + std::to_string(gen));
      if (!d) return Err(d.error().Wrap(fmt::format("stored spec generation {}", gen)));
      cached_ = std::make_shared<const DesiredState>(std::move(*d));
    }
    cached_generation_ = gen;
  }
  return std::make_pair(gen, cached_);
}

std::shared_ptr<Reconciler::HostConn> Reconciler::Conn(const DesiredHost& h) {
  std::lock_guard lk(mu_);
  auto& slot = conns_[h.name];
  if (!slot) slot = std::make_shared<HostConn>();
  return slot;
}

Result<AgentClient*> Reconciler::Client(HostConn& hc, const DesiredHost& h, AgentHello* hello) {
  std::string key = h.address + "|" + h.agent_socket;
  if (!hc.connector || hc.key != key) {
    hc.connector = connectors_(h);
    hc.key = key;
    hc.client.reset();
  }
  if (!hc.connector) {
    return Err(Code::kUnavailable,
               "host {}: no transport for address '{}' (only `address: local` is reachable in this "
               "version; remote hosts come with the SSH transport)",
               h.name, h.address);
  }
  if (hc.client) {
    if (!hello) return hc.client.get();
    auto r = hc.client->Hello(options_.client);
    if (r) {
      *hello = *r;
      return hc.client.get();
    }
    hc.client.reset();  // stale connection: reconnect once
  }
  CB_TRY(auto t, hc.connector->Connect().map_error([&](Error e) { return e.Wrap("host " + h.name); }));
  auto client = std::make_unique<AgentClient>(h.name, std::move(t));
  CB_TRY(AgentHello hi, client->Hello(options_.client));
  if (hello) *hello = hi;
  hc.client = std::move(client);
  return hc.client.get();
}

wire::HostApplyResult Reconciler::ReconcileHost(const DesiredHost& h,
                                                const std::vector<OverrideRecord>& overrides) {
  wire::HostApplyResult res;
  res.host = h.name;
  auto hc_ref = Conn(h);
  HostConn& hc = *hc_ref;
  std::lock_guard lk(hc.mu);
  HostRecord rec;
  rec.name = h.name;
  rec.address = h.address;
  rec.transport = "local";
  rec.socket = hc.connector ? hc.connector->Describe() : "";
  std::string wall = FormatWallTime(clock_.WallNow());

  auto fail = [&](const Error& e) {
    res.ok = false;
    res.error = e.message;
    rec.reachable = false;
    rec.last_error = e.message;
    // Keep what we knew about the agent.
    if (auto hosts = store_.ListHosts()) {
      for (const auto& old : *hosts) {
        if (old.name == h.name) {
          rec.agent = old.agent;
          rec.protocol = old.protocol;
          rec.agent_pid = old.agent_pid;
          rec.last_seen = old.last_seen;
        }
      }
    }
    if (hc.connector) rec.socket = hc.connector->Describe();
    (void)store_.UpsertHost(rec);
    hc.client.reset();
    return res;
  };

  AgentHello hello;
  auto client = Client(hc, h, &hello);
  if (!client) return fail(client.error());
  rec.socket = hc.connector->Describe();
  AgentClient* c = *client;

  auto applied = c->Apply(h.services, options_.owner);
  if (!applied) return fail(applied.error());
  res.started = applied->started;
  res.restarted = applied->restarted;
  res.stopped = applied->stopped;
  res.unchanged = applied->unchanged;

  auto ps = c->Ps();
  if (!ps) return fail(ps.error());

  std::set<std::string> stopped_override;
  for (const auto& o : overrides) {
    if (o.host == h.name && o.state == "stopped") stopped_override.insert(o.name);
  }
  std::set<std::string> desired;
  for (const auto& s : h.services) desired.insert(s.name);

  std::vector<json> statuses = *ps;
  for (auto& st : statuses) {
    std::string name = st.value("name", std::string());
    std::string state = st.contains("state") && st["state"].is_string() ? st["state"].get<std::string>() : "";
    if (!desired.count(name)) continue;
    std::optional<std::string> action;
    if (stopped_override.count(name)) {
      if (state != "stopped" && state != "exited" && state != "stopping") action = "stop";
    } else if (state == "stopped") {
      action = "start";
    }
    if (action) {
      auto r = c->Action(*action, name);
      if (!r) return fail(r.error());
      if (r->is_object() && r->contains("name")) st = *r;
    }
  }

  std::vector<ObservedService> observed;
  for (const auto& st : statuses) {
    observed.push_back(ObservedService{h.name, st.value("name", std::string()), st.dump(), wall});
  }
  if (auto r = store_.ReplaceObserved(h.name, observed); !r) return fail(r.error());

  rec.reachable = true;
  rec.agent = hello.agent;
  rec.protocol = hello.protocol;
  rec.agent_pid = hello.pid;
  rec.last_seen = wall;
  rec.last_error.clear();
  if (auto r = store_.UpsertHost(rec); !r) {
    res.ok = false;
    res.error = r.error().message;
  }
  return res;
}

std::vector<wire::HostApplyResult> Reconciler::Pass(MonoTime now) {
  std::lock_guard pass(pass_mu_);
  dirty_ = false;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<wire::HostApplyResult> results;
  int64_t errors = 0;

  auto cur = Current();
  if (!cur) {
    ++errors;
  } else {
    const DesiredState& d = *cur->second;
    std::vector<OverrideRecord> overrides;
    if (auto o = store_.ListOverrides()) overrides = *o;
    // An override outlives neither its service nor its host: a service removed from the spec
    // and added back later starts normally.
    std::set<std::pair<std::string, std::string>> desired;
    for (const auto& h : d.hosts) {
      for (const auto& s : h.services) desired.insert({h.name, s.name});
    }
    for (const auto& o : overrides) {
      if (!desired.count({o.host, o.name})) (void)store_.ClearOverride(o.host, o.name);
    }
    std::set<std::string> names;
    for (const auto& h : d.hosts) {
      names.insert(h.name);
      results.push_back(ReconcileHost(h, overrides));
      if (!results.back().ok) ++errors;
    }
    // Hosts no longer in the spec: empty apply, then forget them.
    if (auto known = store_.ListHosts()) {
      for (const auto& old : *known) {
        if (names.count(old.name)) continue;
        DesiredHost gone;
        gone.name = old.name;
        gone.address = old.address;
        auto r = ReconcileHost(gone, {});
        if (r.ok) {
          (void)store_.DeleteHost(old.name);
          (void)store_.ReplaceObserved(old.name, {});
          std::lock_guard lk(mu_);
          conns_.erase(old.name);
        } else {
          ++errors;
        }
        results.push_back(std::move(r));
      }
    }
  }

  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  duration_hist_.Observe(secs);
  std::lock_guard lk(mu_);
  host_errors_.clear();
  for (const auto& r : results) {
    if (!r.ok) host_errors_[r.host] = r.error.value_or("failed");
  }
  last_pass_ = now;
  stats_.passes++;
  stats_.errors += errors;
  stats_.last_duration_seconds = secs;
  stats_.durations.push_back(secs);
  if (stats_.durations.size() > 1000) stats_.durations.erase(stats_.durations.begin());
  return results;
}

ReconcileStats Reconciler::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

std::map<std::string, std::string> Reconciler::HostErrors() const {
  std::lock_guard lk(mu_);
  return host_errors_;
}

std::string Reconciler::RenderDurationHistogram() const {
  return duration_hist_.Render("cbctld_reconcile_duration_seconds", "");
}

Result<const DesiredHost*> Reconciler::FindHost(const DesiredState& d, const std::string& host) {
  for (const auto& h : d.hosts) {
    if (h.name == host) return &h;
  }
  return Err(Code::kNotFound, "host '{}' is not in the spec", host);
}

Result<std::string> Reconciler::ResolveHost(const wire::ServiceAddress& a) {
  CB_TRY(auto cur, Current());
  std::vector<std::string> hosts;
  for (const auto& h : cur.second->hosts) {
    for (const auto& s : h.services) {
      if (s.name == a.name && (a.host.empty() || a.host == h.name)) hosts.push_back(h.name);
    }
  }
  if (hosts.empty()) {
    if (!a.host.empty()) {
      return Err(Code::kNotFound, "service '{}' is not desired on host '{}'", a.name, a.host);
    }
    return Err(Code::kNotFound, "no service '{}' in the spec (generation {})", a.name, cur.first);
  }
  if (hosts.size() > 1) {
    std::string list;
    for (const auto& h : hosts) list += (list.empty() ? "" : ", ") + a.name + "@" + h;
    return Err(Code::kInvalidArgument, "service '{}' runs on {} hosts; name one of: {}", a.name,
               hosts.size(), list);
  }
  return hosts[0];
}

Result<json> Reconciler::ServiceAction(const std::string& host, const std::string& name,
                                       const std::string& action, const std::string& actor) {
  CB_TRY(auto cur, Current());
  CB_TRY(const DesiredHost* h, FindHost(*cur.second, host));
  if (action == "restart") {
    CB_TRY(auto ovs, store_.ListOverrides());
    for (const auto& o : ovs) {
      if (o.host == host && o.name == name && o.state == "stopped") {
        return Err(Code::kFailedPrecondition, "{}@{} is stopped by `svc stop` (by {} at {}); use `svc start`",
                   name, host, o.set_by, o.set_at);
      }
    }
  }
  if (action == "stop") {
    CB_TRY_VOID(store_.SetOverride(OverrideRecord{host, name, "stopped", actor, FormatWallTime(clock_.WallNow())}));
  } else if (action == "start") {
    CB_TRY_VOID(store_.ClearOverride(host, name));
  }
  auto hc_ref = Conn(*h);
  HostConn& hc = *hc_ref;
  std::lock_guard lk(hc.mu);
  CB_TRY(AgentClient * c, Client(hc, *h, nullptr));
  auto r = c->Action(action, name);
  if (!r) {
    if (r.error().code == Code::kUnavailable || r.error().code == Code::kTimeout) hc.client.reset();
    return r;
  }
  // Record what the agent reports now.
  if (auto all = store_.ListObserved()) {
    std::vector<ObservedService> mine;
    bool found = false;
    for (auto& o : *all) {
      if (o.host != host) continue;
      if (o.name == name) {
        o.status_json = r->dump();
        o.observed_at = FormatWallTime(clock_.WallNow());
        found = true;
      }
      mine.push_back(o);
    }
    if (!found) mine.push_back({host, name, r->dump(), FormatWallTime(clock_.WallNow())});
    (void)store_.ReplaceObserved(host, mine);
  }
  return r;
}

Result<std::vector<std::string>> Reconciler::Logs(const std::string& host, const std::string& name, int tail) {
  CB_TRY(auto cur, Current());
  CB_TRY(const DesiredHost* h, FindHost(*cur.second, host));
  auto hc_ref = Conn(*h);
  HostConn& hc = *hc_ref;
  std::lock_guard lk(hc.mu);
  CB_TRY(AgentClient * c, Client(hc, *h, nullptr));
  auto r = c->Logs(name, tail);
  if (!r && (r.error().code == Code::kUnavailable || r.error().code == Code::kTimeout)) hc.client.reset();
  return r;
}

Result<std::unique_ptr<AgentClient>> Reconciler::OpenAgent(const std::string& host) {
  CB_TRY(auto cur, Current());
  CB_TRY(const DesiredHost* h, FindHost(*cur.second, host));
  std::shared_ptr<Connector> conn;
  {
    auto hc_ref = Conn(*h);
  HostConn& hc = *hc_ref;
    std::lock_guard lk(hc.mu);
    std::string key = h->address + "|" + h->agent_socket;
    if (!hc.connector || hc.key != key) {
      hc.connector = connectors_(*h);
      hc.key = key;
      hc.client.reset();
    }
    conn = hc.connector;
  }
  if (!conn) return Err(Code::kUnavailable, "host {}: no transport", host);
  CB_TRY(auto t, conn->Connect());
  auto client = std::make_unique<AgentClient>(host, std::move(t), Seconds(15));
  CB_TRY_VOID(client->Hello(options_.client));
  return client;
}

Result<std::vector<wire::ServiceInfo>> Reconciler::Services(const std::string& host_filter, bool live) {
  CB_TRY(auto cur, Current());
  CB_TRY(auto overrides, store_.ListOverrides());
  CB_TRY(auto hosts, store_.ListHosts());
  const DesiredState& d = *cur.second;

  // Status objects by (host, name): live from idle agent connections, else the stored view.
  std::map<std::pair<std::string, std::string>, std::pair<json, std::string>> status;  // -> (status, observed_at)
  std::set<std::string> live_hosts;
  if (live) {
    std::string wall = FormatWallTime(clock_.WallNow());
    for (const auto& h : d.hosts) {
      if (!host_filter.empty() && h.name != host_filter) continue;
      std::shared_ptr<HostConn> hc;
      {
        std::lock_guard lk(mu_);
        auto it = conns_.find(h.name);
        if (it != conns_.end()) hc = it->second;
      }
      if (!hc) continue;
      std::unique_lock hl(hc->mu, std::try_to_lock);
      if (!hl.owns_lock() || !hc->client) continue;  // a pass is talking to it: use the stored view
      auto ps = hc->client->Ps();
      if (!ps) {
        hc->client.reset();
        continue;
      }
      live_hosts.insert(h.name);
      for (auto& st : *ps) {
        std::string name = st.value("name", std::string());
        status[{h.name, name}] = {std::move(st), wall};
      }
    }
  }
  bool need_stored = false;
  for (const auto& h : d.hosts) {
    if ((host_filter.empty() || h.name == host_filter) && !live_hosts.count(h.name)) need_stored = true;
  }
  if (need_stored) {
    CB_TRY(auto observed, store_.ListObserved());
    for (auto& o : observed) {
      if (live_hosts.count(o.host)) continue;
      json st = json::parse(o.status_json, nullptr, false);
      if (!st.is_object()) st = json::object();
      status[{o.host, o.name}] = {std::move(st), o.observed_at};
    }
  }

  std::map<std::string, int> hosts_of_name;
  for (const auto& h : d.hosts) {
    for (const auto& s : h.services) hosts_of_name[s.name]++;
  }
  std::map<std::string, bool> reachable;
  for (const auto& h : hosts) reachable[h.name] = h.reachable || live_hosts.count(h.name);
  std::map<std::pair<std::string, std::string>, std::string> override_of;
  for (const auto& o : overrides) override_of[{o.host, o.name}] = o.state;

  std::vector<wire::ServiceInfo> out;
  for (const auto& h : d.hosts) {
    if (!host_filter.empty() && h.name != host_filter) continue;
    bool unreachable = reachable.count(h.name) && !reachable[h.name];
    for (const auto& s : h.services) {
      wire::ServiceInfo i;
      i.host = h.name;
      i.name = s.name;
      i.address = hosts_of_name[s.name] > 1 ? s.name + "@" + h.name : s.name;
      if (auto o = override_of.find({h.name, s.name}); o != override_of.end()) i.override_state = o->second;
      auto it = status.find({h.name, s.name});
      if (it == status.end()) {
        i.state = unreachable ? "unknown" : "pending";
        out.push_back(std::move(i));
        continue;
      }
      const json& st = it->second.first;
      i.observed_at = it->second.second;
      i.state = st.contains("state") && st["state"].is_string() ? st["state"].get<std::string>() : "unknown";
      if (unreachable) i.state = "unknown";
      auto num = [&](const char* k) -> const json* {
        auto f = st.find(k);
        return f != st.end() && f->is_number() ? &*f : nullptr;
      };
      auto str = [&](const char* k) -> std::optional<std::string> {
        auto f = st.find(k);
        if (f != st.end() && f->is_string()) return f->get<std::string>();
        return std::nullopt;
      };
      if (auto p = num("pid")) i.pid = p->get<int64_t>();
      if (auto p = num("restarts")) i.restarts = p->get<int64_t>();
      if (auto p = num("uptime_seconds")) i.uptime_seconds = p->get<double>();
      if (auto p = num("rss_bytes")) i.rss_bytes = p->get<int64_t>();
      if (auto p = num("cpu_seconds")) i.cpu_seconds = p->get<double>();
      i.started_at = str("started_at");
      i.next_start_at = str("next_start_at");
      i.last_error = str("last_error");
      out.push_back(std::move(i));
    }
  }
  return out;
}

}  // namespace cb::cp
