#include "core/spec.h"

#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>

namespace cb {
namespace {

using nlohmann::json;

std::string Dump(const std::vector<Problem>& ps) { return FormatProblems(ps); }

const Problem* Find(const std::vector<Problem>& ps, std::string_view path,
                    std::string_view says = "") {
  for (const auto& p : ps) {
    if (p.path == path && p.message.find(says) != std::string::npos) return &p;
  }
  return nullptr;
}

FleetSpec MustParse(std::string_view text) {
  SpecLoad l = ParseFleetSpec(text, "fleet.yaml");
  EXPECT_TRUE(l.ok()) << Dump(l.errors);
  return l.spec ? *l.spec : FleetSpec{};
}

std::vector<Problem> Errors(std::string_view text) {
  SpecLoad l = ParseFleetSpec(text, "fleet.yaml");
  EXPECT_FALSE(l.ok()) << "expected errors in:\n" << text;
  EXPECT_FALSE(l.spec.has_value());
  return l.errors;
}

TEST(FleetSpec, TheExampleLoads) {
  SpecLoad l = LoadFleetSpec(CBCTL_SOURCE_DIR "/templates/fleet.example.yaml");
  ASSERT_TRUE(l.ok()) << Dump(l.errors);
  EXPECT_TRUE(l.warnings.empty()) << Dump(l.warnings);
  const FleetSpec& s = *l.spec;
  EXPECT_EQ(s.deployment, "acme");
  EXPECT_FALSE(s.database.IsSqlite());
  ASSERT_TRUE(s.database.partitioning);
  EXPECT_EQ(s.database.partitioning->retention->months, 12);
  EXPECT_EQ(s.database.partitioning->interval, PartitionInterval::kMonth);
  ASSERT_EQ(s.hosts.size(), 2u);
  EXPECT_TRUE(s.hosts[0].IsLocal());
  ASSERT_TRUE(s.hosts[1].ssh);
  EXPECT_EQ(s.hosts[1].ssh->user, "codebolt");
  ASSERT_TRUE(s.server);
  EXPECT_EQ(s.server->reload_signal, SIGHUP);
  EXPECT_EQ(s.server->command[3], "2719");
  EXPECT_EQ(s.workers.log_ingest.mode, WorkerMode::kExternal);
  EXPECT_EQ(s.workers.memory_ingest.mode, WorkerMode::kInProcess);
  EXPECT_EQ(s.plugins[0].limits.memory_mb, 512);
  EXPECT_EQ(s.diagnose.window, Seconds(5));
  EXPECT_EQ(s.autopilot.cooldown, Seconds(1800));
  EXPECT_EQ(s.services[0].stop.signal, SIGINT);
  EXPECT_TRUE(LoadFleetSpec(CBCTL_SOURCE_DIR "/templates/fleet.example.minimal.yaml").ok());
}

TEST(FleetSpec, DefaultsComeFromTheHeader) {
  FleetSpec s = MustParse("{}");
  FleetSpec def;
  EXPECT_EQ(s, def);
  ASSERT_EQ(s.hosts.size(), 1u);
  EXPECT_EQ(s.hosts[0].name, "local");
  EXPECT_EQ(s.hosts[0].address, "local");
  EXPECT_TRUE(s.database.IsSqlite());
  EXPECT_EQ(s.plugin_process_manager.restart_backoff_seconds, (std::vector<double>{1, 5, 15, 60}));
  EXPECT_EQ(s.agent_process_manager.max_concurrent, 50);
  EXPECT_EQ(s.metrics.prometheus.port, 9091);
  EXPECT_FALSE(s.server);
  EXPECT_TRUE(DeriveServices(s).empty());
}

TEST(FleetSpec, RoundTripsThroughYamlAndJson) {
  for (const char* path : {CBCTL_SOURCE_DIR "/templates/fleet.example.yaml",
                           CBCTL_SOURCE_DIR "/templates/fleet.example.minimal.yaml"}) {
    SpecLoad l = LoadFleetSpec(path);
    ASSERT_TRUE(l.ok()) << Dump(l.errors);
    std::string yaml = SpecToYaml(*l.spec);
    SpecLoad again = ParseFleetSpec(yaml, "emitted.yaml");
    ASSERT_TRUE(again.ok()) << Dump(again.errors) << yaml;
    EXPECT_TRUE(again.warnings.empty()) << Dump(again.warnings);
    EXPECT_EQ(*again.spec, *l.spec) << yaml;
    SpecLoad from_json = ParseFleetSpec(SpecToJson(*l.spec).dump(), "emitted.json");
    ASSERT_TRUE(from_json.ok()) << Dump(from_json.errors);
    EXPECT_EQ(*from_json.spec, *l.spec);
  }
  FleetSpec rich = MustParse(R"(
hosts: [{name: a, address: local}, {name: b, address: 10.1.1.1, agent_socket: /run/cb/agent.sock}]
database: {url: "postgresql://u@db/x", partitioning: {interval: week, retention: 1mo15d}}
server: {hosts: [a, b], restart: {policy: on-failure, jitter: 0}, env: {X: "1"}}
workers: {log_ingest: {mode: external, hosts: [b], replicas: 3, concurrency: 4, command: [/opt/w, li]}}
diagnose: {window: 1m30s, prometheus_url: "http://127.0.0.1:9090", thresholds: {ingest_lag: {warning: 5, critical: 30}, pool: {critical: 0.9}}}
autopilot: {enabled: true, allow: [add-worker], interval: 45s}
message_bus: {kind: redis, url: "redis://127.0.0.1:6379"}
object_storage: {kind: s3, bucket: cb}
cache: {llm_response: enabled}
services: [{name: x, hosts: [a], command: [/bin/x], cwd: /srv, user: nobody}]
)");
  SpecLoad again = ParseFleetSpec(SpecToYaml(rich), "emitted.yaml");
  ASSERT_TRUE(again.ok()) << Dump(again.errors) << SpecToYaml(rich);
  EXPECT_EQ(*again.spec, rich) << SpecToYaml(rich);
  EXPECT_EQ(SpecToJson(rich)["diagnose"]["window"], "1m30s");
  EXPECT_EQ(SpecToJson(rich)["database"]["partitioning"]["retention"], "1mo15d");
}

TEST(FleetSpec, MalformedFileReportsEveryProblemWithPositions) {
  const char* text =
      "apiVersion: cbctl/v1\n"                                           // 1
      "deploymnet: acme\n"                                               // 2
      "hosts:\n"                                                         // 3
      "  - {name: app1, address: 10.0.0.1}\n"                            // 4
      "  - {name: app1, address: 10.0.0.2}\n"                            // 5
      "server: {hosts: [app1, app2], command: [/usr/bin/codebolt]}\n"    // 6
      "agent_process_manager: {max_concurrent: 5, max_per_user: 10}\n"   // 7
      "plugin_process_manager: {restart_backoff_seconds: [1, 15, 5]}\n"  // 8
      "diagnose: {window: 5sec}\n"                                       // 9
      "metrics: {prometheus: {port: 70000}}\n"                           // 10
      "services:\n"                                                      // 11
      "  - {name: Bad_Name, hosts: [app1], command: [x]}\n";             // 12
  auto ps = Errors(text);
  struct Want {
    const char* path;
    const char* says;
    int line, column;
  } wants[] = {
      {"deploymnet", "unknown key 'deploymnet' (did you mean 'deployment'?)", 2, 1},
      {"hosts[1].name", "duplicate host name 'app1' (also hosts[0])", 5, 12},
      {"server.hosts[1]", "unknown host 'app2' (did you mean 'app1'?)", 6, 24},
      {"agent_process_manager.max_per_user", "exceeds max_concurrent (5)", 7, 58},
      {"plugin_process_manager.restart_backoff_seconds[2]", "backoff must not decrease", 8, 59},
      {"diagnose.window", "unknown unit 'sec' (did you mean 's'?)", 9, 20},
      {"metrics.prometheus.port", "expected a port from 1 to 65535, found 70000", 10, 30},
      {"services[0].name", "must start with a lower-case letter", 12, 12},
  };
  for (const auto& w : wants) {
    const Problem* p = Find(ps, w.path, w.says);
    ASSERT_TRUE(p) << "missing " << w.path << ": " << w.says << "\n" << Dump(ps);
    EXPECT_EQ(p->line, w.line) << FormatProblem(*p);
    EXPECT_EQ(p->column, w.column) << FormatProblem(*p);
    EXPECT_EQ(p->file, "fleet.yaml");
  }
  // The SQLite rule fires too (two server hosts, default SQLite database).
  EXPECT_TRUE(Find(ps, "server.hosts", "SQLite database serves one server only")) << Dump(ps);
  // Sorted by position.
  for (size_t i = 1; i < ps.size(); ++i) {
    if (ps[i].line != 0) {
      EXPECT_LE(ps[i - 1].line, ps[i].line) << Dump(ps);
    }
  }
}

TEST(FleetSpec, SeveralServersNeedPostgres) {
  const char* base =
      "hosts: [{name: a, address: 10.0.0.1}, {name: b, address: 10.0.0.2}]\n"
      "server: {hosts: [a, b]}\n";
  auto ps = Errors(std::string(base) + "database: {url: \"sqlite:///var/db/main.db\"}\n");
  const Problem* p = Find(ps, "database.url", "several servers need a shared Postgres");
  ASSERT_TRUE(p) << Dump(ps);
  EXPECT_EQ(p->line, 3);
  EXPECT_TRUE(
      ParseFleetSpec(std::string(base) + "database: {url: \"postgresql://cb@db/cb\"}\n", "f").ok());
  EXPECT_TRUE(ParseFleetSpec("server: {hosts: [local]}\n", "f").ok());
}

TEST(FleetSpec, RestartBackoffMustBeNonEmptyAndNonDecreasing) {
  EXPECT_TRUE(Find(Errors("plugin_process_manager: {restart_backoff_seconds: []}\n"),
                   "plugin_process_manager.restart_backoff_seconds", "must not be empty"));
  EXPECT_TRUE(Find(Errors("plugin_process_manager: {restart_backoff_seconds: [5, 1]}\n"),
                   "plugin_process_manager.restart_backoff_seconds[1]", "must not decrease"));
  EXPECT_TRUE(Find(Errors("plugin_process_manager: {restart_backoff_seconds: [-1]}\n"),
                   "plugin_process_manager.restart_backoff_seconds[0]", ">= 0"));
  FleetSpec s = MustParse("plugin_process_manager: {restart_backoff_seconds: [0.5, 0.5, 2]}\n");
  EXPECT_EQ(s.DefaultRestart().backoff_seconds, (std::vector<double>{0.5, 0.5, 2}));
}

TEST(FleetSpec, LimitsArePositiveAndOrdered) {
  EXPECT_TRUE(Find(Errors("agent_process_manager: {max_concurrent: 0}\n"),
                   "agent_process_manager.max_concurrent", "expected a positive integer"));
  EXPECT_TRUE(Find(Errors("agent_process_manager: {max_per_user: -3}\n"),
                   "agent_process_manager.max_per_user", "expected a positive integer"));
  EXPECT_TRUE(Find(Errors("agent_process_manager: {max_concurrent: 10, max_per_workspace: 11}\n"),
                   "agent_process_manager.max_per_workspace", "exceeds max_concurrent"));
  EXPECT_TRUE(Find(Errors("agent_process_manager: {spawn_rate_per_second: 0}\n"),
                   "agent_process_manager.spawn_rate_per_second", "> 0"));
  EXPECT_TRUE(Find(Errors("agent_runs: {slots_per_host: 0}\n"), "agent_runs.slots_per_host"));
  EXPECT_TRUE(Find(Errors("cache: {codemap_mb: -1}\n"), "cache.codemap_mb"));
  EXPECT_TRUE(Find(Errors("workers: {log_ingest: {mode: external, replicas: 0}}\n"),
                   "workers.log_ingest.replicas"));
  EXPECT_TRUE(Find(Errors("agent_process_manager: {max_concurrent: many}\n"),
                   "agent_process_manager.max_concurrent", "expected an integer, found many"));
  MustParse(
      "agent_process_manager: {max_concurrent: 10, max_per_user: 10, max_per_workspace: 10}\n");
  // A default that no longer fits says so.
  auto by_default = Errors("agent_process_manager: {max_concurrent: 15}\n");
  const Problem* p = Find(by_default, "agent_process_manager.max_per_workspace",
                          "max_per_workspace (default 20) exceeds max_concurrent (15)");
  ASSERT_TRUE(p) << Dump(by_default);
  EXPECT_NE(p->message.find("set it to at most 15"), std::string::npos);
}

TEST(FleetSpec, HostsAreUniqueValidAndReferencesDefined) {
  EXPECT_TRUE(Find(Errors("hosts: [{name: App, address: local}]\n"), "hosts[0].name",
                   "host name 'App' must start"));
  EXPECT_TRUE(Find(Errors("hosts: [{name: a}]\n"), "hosts[0].address", "missing required key"));
  EXPECT_TRUE(Find(Errors("hosts: []\n"), "hosts", "at least one host"));
  EXPECT_TRUE(Find(Errors("hosts: [{name: a, address: 'x y'}]\n"), "hosts[0].address"));
  EXPECT_TRUE(Find(Errors("hosts: [{name: a, address: local, ssh: {user: u}}]\n"), "hosts[0].ssh",
                   "ssh does not apply"));
  EXPECT_TRUE(Find(Errors("agent_runs: {hosts: [nowhere]}\n"), "agent_runs.hosts[0]",
                   "unknown host 'nowhere'"));
  EXPECT_TRUE(Find(Errors("services: [{name: x, hosts: [local, local], command: [x]}]\n"),
                   "services[0].hosts[1]", "listed twice"));
  auto refs = Errors(
      "hosts: [{name: app1, address: a}, {name: app2, address: b}]\n"
      "plugins: [{name: p, hosts: [app3], command: [p]}]\n"
      "services: [{name: s, command: [s]}]\n"
      "workers: {log_ingest: {mode: external}}\n");
  EXPECT_TRUE(Find(refs, "plugins[0].hosts[0]", "unknown host 'app3'")) << Dump(refs);
  EXPECT_TRUE(Find(refs, "services[0].hosts", "needs hosts")) << Dump(refs);
  EXPECT_TRUE(Find(refs, "workers.log_ingest.hosts", "needs hosts")) << Dump(refs);
}

TEST(FleetSpec, SectionShapesAndUnits) {
  EXPECT_TRUE(Find(Errors("apiVersion: cbctl/v2\n"), "apiVersion", "expected cbctl/v1"));
  EXPECT_TRUE(Find(Errors("database: {url: \"mysql://x\"}\n"), "database.url"));
  EXPECT_TRUE(Find(Errors("database: {url: \"sqlite://relative.db\"}\n"), "database.url"));
  EXPECT_TRUE(Find(Errors("database: {partitioning: {interval: fortnight}}\n"),
                   "database.partitioning.interval", "one of day, week, month"));
  EXPECT_TRUE(Find(Errors("database: {partitioning: {retention: 12}}\n"),
                   "database.partitioning.retention", "needs a unit"));
  EXPECT_TRUE(Find(Errors("database: {partitioning: {tables: [\"a;drop\"]}}\n"),
                   "database.partitioning.tables[0]"));
  EXPECT_TRUE(Find(Errors("autopilot: {interval: 1mo}\n"), "autopilot.interval", "calendar"));
  EXPECT_TRUE(Find(Errors("autopilot: {sustain: 0}\n"), "autopilot.sustain", "> 0"));
  EXPECT_TRUE(Find(Errors("workers: {log_ingest: {mode: extrenal}}\n"), "workers.log_ingest.mode",
                   "did you mean 'external'?"));
  EXPECT_TRUE(Find(Errors("message_bus: {kind: nats}\n"), "message_bus.url", "needs a url"));
  EXPECT_TRUE(Find(Errors("object_storage: {kind: s3}\n"), "object_storage.bucket"));
  EXPECT_TRUE(Find(Errors("object_storage: {kind: nfs, path: rel}\n"), "object_storage.path"));
  EXPECT_TRUE(Find(Errors("metrics: {prometheus: {path: metrics}}\n"), "metrics.prometheus.path"));
  EXPECT_TRUE(Find(Errors("cache: {llm_response: sometimes}\n"), "cache.llm_response"));
  EXPECT_TRUE(Find(Errors("server: {hosts: [local], health: {http: \"127.0.0.1:1\"}}\n"),
                   "server.health.http"));
  EXPECT_TRUE(
      Find(Errors("server: {hosts: [local], reload: {signal: BOOM}}\n"), "server.reload.signal"));
  EXPECT_TRUE(
      Find(Errors("server: {hosts: [local], stop: {signal: NOPE}}\n"), "server.stop.signal"));
  EXPECT_TRUE(Find(Errors("hosts: 5\n"), "hosts", "expected a list"));
  EXPECT_TRUE(Find(Errors("- a\n- b\n"), "", "expected a map"));
  EXPECT_TRUE(Find(Errors(""), "", "empty"));
  EXPECT_TRUE(Find(Errors("a: [\n"), "", "YAML syntax error"));
}

TEST(FleetSpec, ThresholdsShape) {
  MustParse("diagnose: {thresholds: {ingest_lag: {warning: 5, critical: 30}, x: {warning: 1}}}\n");
  EXPECT_TRUE(Find(Errors("diagnose: {thresholds: {ingest_lag: 5}}\n"),
                   "diagnose.thresholds.ingest_lag", "{warning: N, critical: N}"));
  EXPECT_TRUE(Find(Errors("diagnose: {thresholds: {ingest_lag: {}}}\n"),
                   "diagnose.thresholds.ingest_lag", "needs warning, critical or both"));
  EXPECT_TRUE(Find(Errors("diagnose: {thresholds: {ingest_lag: {warn: 1}}}\n"),
                   "diagnose.thresholds.ingest_lag.warn", "did you mean 'warning'?"));
  EXPECT_TRUE(Find(Errors("diagnose: {thresholds: {ingest_lag: {critical: high}}}\n"),
                   "diagnose.thresholds.ingest_lag.critical", "expected a number"));
  EXPECT_TRUE(Find(Errors("diagnose: {thresholds: [a]}\n"), "diagnose.thresholds"));
}

TEST(FleetSpec, ServiceNamesAndDerivedNameClashes) {
  EXPECT_TRUE(
      Find(Errors("services: [{name: \"a/b\", command: [x]}]\n"), "services[0].name", "'/'"));
  EXPECT_TRUE(Find(Errors("services: [{name: x}]\n"), "services[0].command", "missing required"));
  EXPECT_TRUE(
      Find(Errors("services: [{name: x, command: []}]\n"), "services[0].command", "non-empty"));
  auto clash = Errors(
      "server: {hosts: [local]}\n"
      "services: [{name: server, command: [x]}]\n");
  EXPECT_TRUE(Find(clash, "services[0].name", "already used on host 'local' by server"))
      << Dump(clash);
  auto worker_clash = Errors(
      "workers: {log_ingest: {mode: external, replicas: 2}}\n"
      "plugins: [{name: log-ingest-2, command: [x]}]\n");
  EXPECT_TRUE(Find(worker_clash, "plugins[0].name", "already used")) << Dump(worker_clash);
}

TEST(FleetSpec, Warnings) {
  SpecLoad l = ParseFleetSpec(
      "database: {url: \"postgresql://cb:secret@db/cb\"}\n"
      "workers: {indexing: {mode: in-process, replicas: 3}}\n",
      "f.yaml");
  ASSERT_TRUE(l.ok()) << Dump(l.errors);
  EXPECT_TRUE(Find(l.warnings, "database.url", "carries a password")) << Dump(l.warnings);
  EXPECT_TRUE(Find(l.warnings, "workers.indexing.replicas", "mode external only"))
      << Dump(l.warnings);
  EXPECT_EQ(l.warnings[0].line, 1);
}

TEST(FleetSpec, OrErrorListsEveryProblem) {
  auto r = ParseFleetSpecOrError("hosts: 5\ncache: {vector_mb: x}\n", "fleet.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().message,
            "2 problems in fleet.yaml:\n"
            "  fleet.yaml:1:8: hosts: expected a list, found 5\n"
            "  fleet.yaml:2:20: cache.vector_mb: expected an integer, found x");
  EXPECT_TRUE(ParseFleetSpecOrError("{}", "f"));
}

TEST(Derive, ServicesPerHostWithNamesAndAddresses) {
  FleetSpec s = MustParse(R"(
hosts: [{name: local, address: local}, {name: app1, address: 10.0.0.1}, {name: app2, address: 10.0.0.2}]
database: {url: "postgresql://cb@db/cb"}
plugin_process_manager: {restart_backoff_seconds: [2, 4], circuit_break_after_failures: 3}
server: {command: [/usr/bin/codebolt, --server], hosts: [app1, app2], env: {A: b}}
workers:
  binary: /opt/cb/codebolt-worker
  log_ingest: {mode: external, hosts: [app1], replicas: 2, concurrency: 4}
  memory_ingest: {mode: external, hosts: [app2], command: [/opt/mem, run]}
plugins: [{name: search-mcp, hosts: [app1], command: [/opt/mcp/search]}]
services:
  - {name: pgbouncer, hosts: [local], command: [/usr/sbin/pgbouncer], restart: {policy: never}, stop: {signal: INT, grace_seconds: 30}}
)");
  auto all = DeriveServices(s);
  std::vector<std::string> addrs;
  for (const auto& d : all) addrs.push_back(d.host + ":" + d.address);
  EXPECT_EQ(addrs,
            (std::vector<std::string>{"app1:log-ingest-1", "app1:log-ingest-2", "app1:search-mcp",
                                      "app1:server@app1", "app2:memory-ingest-1",
                                      "app2:server@app2", "local:pgbouncer"}));
  RestartSpec base;
  base.backoff_seconds = {2, 4};
  base.circuit_break_after_failures = 3;
  for (const auto& d : all) {
    if (d.spec.name == "log-ingest-1") {
      EXPECT_EQ(d.spec.command, (std::vector<std::string>{"/opt/cb/codebolt-worker", "log-ingest",
                                                          "--concurrency", "4"}));
      EXPECT_EQ(d.spec.restart, base);
    }
    if (d.spec.name == "memory-ingest-1") {
      EXPECT_EQ(d.spec.command,
                (std::vector<std::string>{"/opt/mem", "run", "--concurrency", "1"}));
    }
    if (d.spec.name == "server") {
      EXPECT_EQ(d.spec.restart, base);
      EXPECT_EQ(d.spec.env.at("A"), "b");
    }
    if (d.spec.name == "search-mcp") {
      EXPECT_EQ(d.spec.restart, base);
    }
    if (d.spec.name == "pgbouncer") {
      EXPECT_EQ(d.spec.restart.policy, RestartPolicy::kNever);
      // Fields the block leaves out come from the plugin_process_manager policy.
      EXPECT_EQ(d.spec.restart.backoff_seconds, base.backoff_seconds);
      EXPECT_EQ(d.spec.stop.signal, SIGINT);
      EXPECT_EQ(d.spec.stop.grace_seconds, 30);
    }
    EXPECT_TRUE(ValidateServiceName(d.spec.name)) << d.spec.name;
  }
  auto by_host = DeriveServicesByHost(s);
  ASSERT_EQ(by_host.size(), 3u);
  EXPECT_EQ(by_host["local"].size(), 1u);
  EXPECT_EQ(by_host["app1"].size(), 4u);
  EXPECT_EQ(by_host["app1"][0].name, "log-ingest-1");
  EXPECT_EQ(by_host["app2"].size(), 2u);
}

TEST(Derive, SingleHostDefaultsAndDeterminism) {
  FleetSpec s =
      MustParse("server: {}\nservices: [{name: b, command: [b]}, {name: a, command: [a]}]\n");
  ASSERT_TRUE(s.server);
  EXPECT_EQ(s.server->hosts, (std::vector<std::string>{"local"}));
  auto all = DeriveServices(s);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].address, "a");
  EXPECT_EQ(all[1].address, "b");
  EXPECT_EQ(all[2].address, "server");
  EXPECT_EQ(all[2].spec.command, (std::vector<std::string>{"codebolt", "--server"}));
  EXPECT_EQ(DeriveServices(s), DeriveServices(MustParse(SpecToYaml(s))));
}

}  // namespace
}  // namespace cb
