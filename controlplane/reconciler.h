// Reconciler: makes every host's agent run the services the stored fleet spec asks for.
//
// One pass (Step/ReconcileNow), for every host of the current spec:
//   1. connect to its agent (reusing the connection; the local connector starts an agent when
//      none runs), `hello` (refusing another protocol major),
//   2. `apply` the host's derived services with owner = this cbctld (declarative and idempotent
//      on the agent: unchanged services are left alone, changed ones restarted, missing ones
//      stopped) — overridden (`svc stop`) services stay in the list so their definition is kept,
//   3. `ps`, then level-trigger the overrides: a service with a stopped override that runs is
//      stopped; one without an override that the agent reports `stopped` is started,
//   4. store what `ps` said and the host's reachability.
// Hosts the store knows that the spec no longer has get an empty apply and are forgotten;
// overrides of services no longer in the spec are forgotten too.
// A pass runs when MarkDirty() was called or `period` passed since the last one. Errors of one
// host do not stop the others; they are recorded on the host and counted.
//
// Thread-safety: all public methods are thread-safe. Passes are serialised; service actions on
// a host serialise with that host's pass.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controlplane/agent_client.h"
#include "controlplane/metrics.h"
#include "controlplane/state_store.h"
#include "core/clock.h"
#include "core/service.h"
#include "core/wire.h"

namespace cb::cp {

struct DesiredHost {
  std::string name;
  std::string address;          // "local"
  std::string agent_socket;     // from the spec; "" = the default under the state dir
  std::vector<ServiceSpec> services;  // sorted by name
};

// What a fleet spec asks for, per host. spec_json is the document as JSON (for GET /v1/spec).
struct DesiredState {
  std::vector<DesiredHost> hosts;  // sorted by name
  nlohmann::json spec_json;
};

// Validates and derives a spec (YAML text). Invalid: kInvalidArgument whose message has one
// problem per line after the first ("N problems in fleet.yaml:\n  file:line:col: ...").
using DeriveFn = std::function<Result<DesiredState>(const std::string& yaml, const std::string& filename)>;
// The Connector for a host (called once per host and cached until the host's address/socket
// changes).
using ConnectorFactory = std::function<std::shared_ptr<Connector>(const DesiredHost&)>;

// The plan: per host and service, what applying `next` over `current` would do.
wire::PlanResponse ComputePlan(const DesiredState& current, const DesiredState& next,
                               int64_t current_generation);
// The fields that differ between two ServiceSpecs: command, env, cwd, user, restart, stop.
std::vector<std::string> ChangedFields(const ServiceSpec& a, const ServiceSpec& b);

struct ReconcilerOptions {
  std::string owner = "cbctld";            // agents' managed_by; "cbctld:<state id>"
  std::string client = "cbctld 0.1.0";     // hello's client string
  Duration period = Seconds(10);           // a pass at least this often
};

struct ReconcileStats {
  int64_t passes = 0;
  int64_t errors = 0;                      // host-level failures, cumulative
  double last_duration_seconds = 0;
  std::vector<double> durations;           // every pass's duration (bounded: last 1000)
};

class Reconciler {
 public:
  Reconciler(StateStore& store, const Clock& clock, DeriveFn derive, ConnectorFactory connectors,
             ReconcilerOptions options);

  // The next Step() runs a pass (call after a spec was stored or an override changed).
  void MarkDirty();
  // Runs a pass when dirty or due at `now`. Returns true when it ran one.
  bool Step(MonoTime now);
  // Runs a pass now and returns what each host's agent did (for `apply`).
  std::vector<wire::HostApplyResult> ReconcileNow(MonoTime now);

  // The desired state of the stored spec (derived once per generation). Empty before the first
  // apply.
  Result<std::pair<int64_t, std::shared_ptr<const DesiredState>>> Current();

  // Finds the host of a service address. kNotFound (with the known services' addresses when
  // few) or kInvalidArgument when NAME alone is ambiguous.
  Result<std::string> ResolveHost(const wire::ServiceAddress& a);

  // start|stop|restart|reset on a host's agent (after ResolveHost). stop/start set/clear the
  // override first. Returns the agent's ServiceStatus.
  Result<nlohmann::json> ServiceAction(const std::string& host, const std::string& name,
                                       const std::string& action, const std::string& actor);
  Result<std::vector<std::string>> Logs(const std::string& host, const std::string& name, int tail);
  // A fresh agent connection (for streaming logs without holding the host's lock).
  Result<std::unique_ptr<AgentClient>> OpenAgent(const std::string& host);

  // Every desired service with its observed status and override, sorted by host then name.
  // With `live`, hosts whose agent connection is open and idle are asked (`ps`) right now;
  // others report what the last pass stored (observed_at says when).
  Result<std::vector<wire::ServiceInfo>> Services(const std::string& host_filter = "", bool live = false);

  ReconcileStats stats() const;
  // The last pass's error per failing host ("" entries are not kept). For logging changes.
  std::map<std::string, std::string> HostErrors() const;
  // cbctld_reconcile_duration_seconds as a Prometheus histogram.
  std::string RenderDurationHistogram() const;

 private:
  struct HostConn {
    std::mutex mu;
    std::shared_ptr<Connector> connector;
    std::string key;  // address|socket the connector was made for
    std::unique_ptr<AgentClient> client;
  };

  // The host's connection slot, created on first use. Shared so a slot erased by a pass (host
  // removed from the spec) stays valid for a caller still using it.
  std::shared_ptr<HostConn> Conn(const DesiredHost& h);
  // Connects (and hellos) when needed. Called with hc.mu held.
  Result<AgentClient*> Client(HostConn& hc, const DesiredHost& h, AgentHello* hello);
  wire::HostApplyResult ReconcileHost(const DesiredHost& h,
                                      const std::vector<OverrideRecord>& overrides);
  std::vector<wire::HostApplyResult> Pass(MonoTime now);
  Result<const DesiredHost*> FindHost(const DesiredState& d, const std::string& host);

  StateStore& store_;
  const Clock& clock_;
  DeriveFn derive_;
  ConnectorFactory connectors_;
  ReconcilerOptions options_;

  std::mutex pass_mu_;                        // one pass at a time
  mutable std::mutex mu_;                     // guards the members below
  std::map<std::string, std::shared_ptr<HostConn>> conns_;
  int64_t cached_generation_ = -1;
  std::shared_ptr<const DesiredState> cached_ = std::make_shared<const DesiredState>();
  std::optional<MonoTime> last_pass_;
  std::atomic<bool> dirty_{true};
  ReconcileStats stats_;
  Histogram duration_hist_;
  std::map<std::string, std::string> host_errors_;
};

}  // namespace cb::cp
