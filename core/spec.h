// The fleet spec: one YAML document (`fleet.yaml`) that is the fleet's desired state. See
// ARCHITECTURE.md ("The fleet spec"). Every section is modelled here and every default is
// written beside its field, in this header only: a key that is absent from the file takes the
// value written here, and SpecToJson writes every field (the effective spec).
//
// Loading (ParseFleetSpec / LoadFleetSpec) reports every problem at once, each with
// file:line:column, the key path, what was expected and what was found; unknown keys are
// errors with "did you mean"; duplicate keys are errors. Then semantic checks, with reasons:
//   - host names unique and valid; every host referenced (server, workers, agent_runs,
//     plugins, services) is defined;
//   - more than one server host with a SQLite database is an error (several servers need a
//     shared Postgres);
//   - plugin_process_manager.restart_backoff_seconds non-empty and non-decreasing;
//   - agent_process_manager limits positive, max_per_user <= max_concurrent and
//     max_per_workspace <= max_concurrent;
//   - service names valid, and every derived service name unique on its host;
//   - diagnose.thresholds.<check-id> is {warning, critical} numbers;
//   - sizes and durations parsed (core/units.h), ports in 1..65535.
// Warnings (the spec is still valid): a database URL that carries a password.
//
// DeriveServices turns a spec into what each host's agent must run (ARCHITECTURE "Derived
// services and their names"):
//   server                  on each of server.hosts, command = server.command
//   log-ingest-1..N         (and memory-ingest-i, indexing-i) for a worker kind in mode
//                           `external`: N = replicas on each of its hosts, command = the kind's
//                           `command` or [workers.binary, "<kind>"], then "--concurrency", "<C>"
//   <plugin name>           each entry of plugins:, on its hosts
//   <service name>          each entry of services:, on its hosts
// Servers, workers and plugins restart with the plugin_process_manager policy (backoff 1, 5,
// 15, 60 s; circuit after 5 failures); a services: entry takes the same unless it sets
// restart:. A service is addressed NAME when that name runs on one host, NAME@HOST otherwise.
//
// Thread-safety: plain values and functions.
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/problem.h"
#include "core/result.h"
#include "core/service.h"
#include "core/units.h"

namespace cb {

inline constexpr std::string_view kSpecApiVersion = "cbctl/v1";
// The address of the embedded default host: this machine, reached without SSH.
inline constexpr std::string_view kLocalAddress = "local";

struct SshSpec {
  std::string user;           // "" = the control plane's own user
  int port = 22;              // 1..65535
  std::string identity_file;  // "" = the ssh defaults (~/.ssh/id_*)
  bool operator==(const SshSpec&) const = default;
};

struct HostSpec {
  std::string name;            // required; [a-z0-9][a-z0-9._-]*, unique
  std::string address;         // required; "local" = this machine without SSH
  std::optional<SshSpec> ssh;  // absent = defaults above (remote hosts only)
  std::string agent_socket;    // "" = the control plane's default for this host
  bool IsLocal() const { return address == kLocalAddress; }
  bool operator==(const HostSpec&) const = default;
};

enum class PartitionInterval { kDay, kWeek, kMonth };
std::string_view PartitionIntervalName(PartitionInterval i);  // "day", "week", "month"

struct PartitioningSpec {
  std::vector<std::string> tables = {"event_log", "agent_execution_phases"};
  PartitionInterval interval = PartitionInterval::kMonth;
  int premake = 4;                  // partitions created ahead, >= 1
  std::optional<Period> retention;  // absent/null = keep every partition; e.g. 12mo
  bool operator==(const PartitioningSpec&) const = default;
};

struct DatabaseSpec {
  // postgresql://user@host[:port]/db (postgres:// too) or sqlite:///absolute/path.db
  std::string url = "sqlite:///var/lib/codebolt/db/main.db";
  std::string password_file;                     // "" = none (or PGPASSFILE)
  std::optional<PartitioningSpec> partitioning;  // absent = not partitioned by cbctl
  // The name of the `services:` entry that runs this Postgres (validated: it must exist). "" =
  // cbctl does not supervise it: `db tune --restart` then only prints how to restart it.
  std::string service;
  bool IsSqlite() const { return url.starts_with("sqlite:"); }
  bool operator==(const DatabaseSpec&) const = default;
};

struct HealthSpec {
  std::string http;  // "" = no health check; else an http:// URL answered 2xx when healthy
  bool operator==(const HealthSpec&) const = default;
};

struct ServerSpec {
  std::vector<std::string> command = {"codebolt", "--server"};
  std::vector<std::string> hosts;  // required, non-empty
  std::string config_path = "/etc/codebolt/codebolt-server.yaml";
  HealthSpec health;
  std::optional<int> reload_signal;        // reload: {signal: HUP}; absent = restart to reload
  std::map<std::string, std::string> env;  // {}
  std::optional<RestartSpec> restart;      // absent = the plugin_process_manager policy
  StopSpec stop;                           // TERM, 10 s
  bool operator==(const ServerSpec&) const = default;
};

enum class WorkerMode { kInProcess, kExternal };
std::string_view WorkerModeName(WorkerMode m);  // "in-process", "external"

struct WorkerKindSpec {
  WorkerMode mode = WorkerMode::kInProcess;  // in-process: the server does this work itself
  std::vector<std::string> hosts;            // required when external
  int replicas = 1;                          // processes per host, >= 1
  int concurrency = 1;                       // threads inside one process, >= 1
  std::vector<std::string> command;          // [] = [workers.binary, "<kind>"]
  std::map<std::string, std::string> env;    // {}
  std::optional<RestartSpec> restart;        // absent = the plugin_process_manager policy
  StopSpec stop;                             // TERM, 10 s
  bool operator==(const WorkerKindSpec&) const = default;
};

struct WorkersSpec {
  std::string binary = "codebolt-worker";
  WorkerKindSpec log_ingest;     // kind "log-ingest"
  WorkerKindSpec memory_ingest;  // kind "memory-ingest"
  WorkerKindSpec indexing;       // kind "indexing"
  bool operator==(const WorkersSpec&) const = default;
};

enum class EnforcedBy { kCbctld, kServer };
std::string_view EnforcedByName(EnforcedBy e);  // "cbctld", "server"

struct AgentProcessManagerSpec {
  int max_concurrent = 50;                       // > 0
  int max_per_user = 10;                         // > 0, <= max_concurrent
  int max_per_workspace = 20;                    // > 0, <= max_concurrent
  double spawn_rate_per_second = 5;              // > 0
  EnforcedBy enforced_by = EnforcedBy::kCbctld;  // server: cbctld only renders the limits
  bool operator==(const AgentProcessManagerSpec&) const = default;
};

struct AgentRunsSpec {
  std::vector<std::string> hosts;  // [] = no host runs agent runs
  int slots_per_host = 25;         // > 0
  bool operator==(const AgentRunsSpec&) const = default;
};

struct PluginProcessManagerSpec {
  int max_concurrent = 100;                                      // > 0
  std::vector<double> restart_backoff_seconds = {1, 5, 15, 60};  // non-empty, non-decreasing
  int circuit_break_after_failures = 5;                          // > 0
  bool operator==(const PluginProcessManagerSpec&) const = default;
};

struct PluginLimitsSpec {
  int memory_mb = 0;   // 0 = no limit
  int open_files = 0;  // 0 = no limit
  bool operator==(const PluginLimitsSpec&) const = default;
};

struct PluginSpec {
  std::string name;                        // required; a service name
  std::vector<std::string> hosts;          // [] = the only host when there is one
  std::vector<std::string> command;        // required
  std::map<std::string, std::string> env;  // {}
  HealthSpec health;
  PluginLimitsSpec limits;
  std::optional<RestartSpec> restart;  // absent = the plugin_process_manager policy
  StopSpec stop;                       // TERM, 10 s
  bool operator==(const PluginSpec&) const = default;
};

struct CacheSpec {
  int codemap_mb = 500;       // >= 0
  int vector_mb = 100;        // >= 0
  bool llm_response = false;  // llm_response: enabled | disabled
  bool operator==(const CacheSpec&) const = default;
};

struct PrometheusSpec {
  bool enabled = true;
  std::string path = "/metrics";  // starts with '/'
  int port = 9091;                // 1..65535
  bool operator==(const PrometheusSpec&) const = default;
};

struct MetricsSpec {
  PrometheusSpec prometheus;
  bool operator==(const MetricsSpec&) const = default;
};

enum class BusKind { kPostgres, kRedis, kNats };
std::string_view BusKindName(BusKind k);  // "postgres", "redis", "nats"

struct MessageBusSpec {
  BusKind kind = BusKind::kPostgres;  // postgres = LISTEN/NOTIFY on the database
  std::string url;                    // required for redis and nats
  bool operator==(const MessageBusSpec&) const = default;
};

enum class StorageKind { kNone, kS3, kNfs };
std::string_view StorageKindName(StorageKind k);  // "none", "s3", "nfs"

struct ObjectStorageSpec {
  StorageKind kind = StorageKind::kNone;
  std::string bucket;    // s3: required
  std::string endpoint;  // s3: "" = AWS
  std::string path;      // nfs: required, absolute
  bool operator==(const ObjectStorageSpec&) const = default;
};

struct ThresholdSpec {
  std::optional<double> warning;  // at least one of the two
  std::optional<double> critical;
  bool operator==(const ThresholdSpec&) const = default;
};

struct DiagnoseSpec {
  Duration window = Seconds(5);                     // > 0
  std::string prometheus_url;                       // "" (null) = scrape the targets directly
  std::map<std::string, ThresholdSpec> thresholds;  // check-id -> override
  bool operator==(const DiagnoseSpec&) const = default;
};

struct AutopilotSpec {
  bool enabled = false;
  Duration interval = Seconds(60);    // 1m, > 0
  std::vector<std::string> allow;     // actions it may take; [] = none
  Duration sustain = Seconds(600);    // 10m: a symptom must last this long
  Duration cooldown = Seconds(1800);  // 30m between two actions
  bool dry_run = false;
  bool operator==(const AutopilotSpec&) const = default;
};

struct CustomServiceSpec {
  std::string name;                        // required; a service name
  std::vector<std::string> hosts;          // [] = the only host when there is one
  std::vector<std::string> command;        // required
  std::map<std::string, std::string> env;  // {}
  std::string cwd;                         // "" = the agent's state dir
  std::string user;                        // "" = the agent's user
  std::optional<RestartSpec> restart;      // absent = the plugin_process_manager policy
  StopSpec stop;                           // TERM, 10 s
  bool operator==(const CustomServiceSpec&) const = default;
};

struct FleetSpec {
  std::string api_version = std::string(kSpecApiVersion);  // apiVersion; must be cbctl/v1
  std::string deployment = "codebolt";                     // a name for this fleet
  DatabaseSpec database;
  std::string master_key_file;  // "" = none
  std::vector<HostSpec> hosts = {HostSpec{"local", "local", std::nullopt, ""}};
  std::optional<ServerSpec> server;  // absent = no server supervised
  WorkersSpec workers;
  AgentProcessManagerSpec agent_process_manager;
  AgentRunsSpec agent_runs;
  PluginProcessManagerSpec plugin_process_manager;
  std::vector<PluginSpec> plugins;
  CacheSpec cache;
  MetricsSpec metrics;
  MessageBusSpec message_bus;
  ObjectStorageSpec object_storage;
  DiagnoseSpec diagnose;
  AutopilotSpec autopilot;
  std::vector<CustomServiceSpec> services;

  const HostSpec* FindHost(std::string_view name) const;
  // The default restart policy of derived services (from plugin_process_manager).
  RestartSpec DefaultRestart() const;
  bool operator==(const FleetSpec&) const = default;
};

// The outcome of loading: the spec when there are no errors, and every error and warning.
struct SpecLoad {
  std::optional<FleetSpec> spec;  // set iff errors is empty
  std::vector<Problem> errors;
  std::vector<Problem> warnings;
  bool ok() const { return errors.empty(); }
};

// `file` names the source in problems. JSON text is accepted (JSON is YAML).
SpecLoad ParseFleetSpec(std::string_view text, const std::string& file);
SpecLoad LoadFleetSpec(const std::string& path);

// For APIs that take one Error: kInvalidArgument with the message
// "N problems in FILE:\n  FILE:L:C: path: message\n  ..." ("1 problem in ..." for one).
Result<FleetSpec> ParseFleetSpecOrError(std::string_view text, const std::string& file);

// The effective spec (every field, defaults filled) as JSON with the file's keys, and as YAML.
// Parsing either gives back an equal FleetSpec.
nlohmann::json SpecToJson(const FleetSpec& spec);
std::string SpecToYaml(const FleetSpec& spec);

struct DerivedService {
  std::string host;     // host name
  std::string address;  // "NAME" or "NAME@HOST"
  ServiceSpec spec;
  bool operator==(const DerivedService&) const = default;
};

// Every service of the fleet, sorted by (host, name). The spec must have loaded without errors.
std::vector<DerivedService> DeriveServices(const FleetSpec& spec);
// The same grouped by host name; every host of the spec has an entry (possibly empty), each
// list sorted by service name.
std::map<std::string, std::vector<ServiceSpec>> DeriveServicesByHost(const FleetSpec& spec);

}  // namespace cb
