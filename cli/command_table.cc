// The command table. See cli/command.h. Order here is the order of help, completion and man.
#include "cli/command.h"
#include "cli/handlers.h"
#include "cli/output.h"

namespace cb::cli {

const Flag kOutputFlag{.kind = FlagKind::kValue,
                       .names = "-o,--output",
                       .key = "output",
                       .help = "Output format",
                       .value_name = "FORMAT",
                       .default_value = "table",
                       .choices = kFormatChoices,
                       .complete = Complete::kChoices};

const Flag kSpecFileFlag{.kind = FlagKind::kValue,
                         .names = "-f,--file",
                         .key = "file",
                         .help = "The fleet spec (YAML or JSON; - for standard input)",
                         .value_name = "FILE",
                         .required = true,
                         .complete = Complete::kFile};

namespace {

const Flag kGlobalFlags[] = {
    {.kind = FlagKind::kValue,
     .names = "--server",
     .key = "server",
     .help = "cbctld address (default: $CBCTL_SERVER, then server: in "
             "~/.config/cbctl/config.yaml, then http://127.0.0.1:7390)",
     .value_name = "URL"},
    {.kind = FlagKind::kValue,
     .names = "--token-file",
     .key = "token-file",
     .help = "File holding the API token (default: $CBCTL_TOKEN, then token_file: or token: in "
             "the config file)",
     .value_name = "FILE",
     .complete = Complete::kFile},
    {.kind = FlagKind::kBool,
     .names = "--no-color",
     .key = "no-color",
     .help = "Never colour the output (colour is used only on a terminal and never when "
             "NO_COLOR is set)"},
};

const Flag kDetailedExitcode{.kind = FlagKind::kBool,
                             .names = "--detailed-exitcode",
                             .key = "detailed-exitcode",
                             .help = "Exit 0 when nothing changes, 2 when something does (or "
                                     "did), 1 on error"};

const Flag kServiceArg{.kind = FlagKind::kPositional,
                       .names = "service",
                       .key = "service",
                       .help = "The service: NAME, or NAME@HOST when the name runs on several "
                               "hosts",
                       .value_name = "NAME[@HOST]",
                       .required = true,
                       .complete = Complete::kService};

std::vector<Command> BuildTable() {
  std::vector<Command> t;
  // ---- Desired state ----
  t.push_back(
      {.path = "apply",
       .summary = "Make the fleet match a fleet spec: show the plan, confirm, apply",
       .handler = CmdApply,
       .needs_daemon = true,
       .flags = {kSpecFileFlag,
                 {.kind = FlagKind::kBool,
                  .names = "-y,--yes",
                  .key = "yes",
                  .help = "Apply without asking (required when standard input is not a "
                          "terminal)"},
                 {.kind = FlagKind::kBool,
                  .names = "--dry-run",
                  .key = "dry-run",
                  .help = "Only show the plan (the same as cbctl plan)"},
                 kDetailedExitcode, kOutputFlag},
       .details = "Sends the spec to cbctld, which validates it (every problem is listed; "
                  "nothing is applied when there is one) and plans it against the stored "
                  "generation. On a terminal, cbctl shows the plan and asks before applying; "
                  "without a terminal --yes is required (exit 64 otherwise), so a script never "
                  "hangs on a prompt. The apply is guarded by the planned generation: if the "
                  "spec changed in between, nothing is applied and cbctl exits 1. Only services "
                  "whose definition changed are restarted."});
  t.push_back({.path = "plan",
               .summary = "Show what applying a fleet spec would change",
               .handler = CmdPlan,
               .needs_daemon = true,
               .flags = {kSpecFileFlag,
                         {.kind = FlagKind::kBool,
                          .names = "--all",
                          .key = "all",
                          .help = "Also list the services that stay unchanged"},
                         kDetailedExitcode, kOutputFlag},
               .details = "Each service is listed per host as + (added), ~ (changed, with the "
                          "fields that differ: it will be restarted) or - (removed)."});
  t.push_back({.path = "get", .summary = "Show what cbctld stores"});
  t.push_back({.path = "get spec",
               .summary = "Print the applied fleet spec",
               .handler = CmdGetSpec,
               .needs_daemon = true,
               .flags = {kOutputFlag,
                         {.kind = FlagKind::kBool,
                          .names = "--original",
                          .key = "original",
                          .help = "With -o yaml: the text as it was applied, not the "
                                  "effective spec"}},
               .details = "-o yaml prints the effective spec (every field, defaults filled), "
                          "which applies again without changes; the table format prints the "
                          "text as it was applied; -o json prints the generation, the text and "
                          "the spec as JSON."});
  t.push_back({.path = "get hosts",
               .summary = "List the hosts and whether their agents answer",
               .handler = CmdGetHosts,
               .needs_daemon = true,
               .flags = {kOutputFlag}});
  // ---- Observing ----
  t.push_back({.path = "status",
               .summary = "Summarise the daemon, the spec, the hosts and the services",
               .handler = CmdStatus,
               .needs_daemon = true,
               .flags = {kOutputFlag},
               .details = "Lists unreachable hosts and services in backoff, exited or with an "
                          "open circuit."});
  t.push_back({.path = "ps",
               .summary = "List services: host, state, pid, uptime, restarts, memory",
               .handler = CmdPs,
               .needs_daemon = true,
               .flags = {{.kind = FlagKind::kValue,
                          .names = "--host",
                          .key = "host",
                          .help = "Only the services of this host",
                          .value_name = "HOST"},
                         kOutputFlag}});
  t.push_back({.path = "logs",
               .summary = "Print a service's recent output, or follow it",
               .handler = CmdLogs,
               .needs_daemon = true,
               .flags = {kServiceArg,
                         {.kind = FlagKind::kBool,
                          .names = "-f,--follow",
                          .key = "follow",
                          .help = "Keep printing new lines until interrupted"},
                         {.kind = FlagKind::kValue,
                          .names = "--tail",
                          .key = "tail",
                          .help = "How many recent lines to print first",
                          .value_name = "N",
                          .default_value = "100"},
                         kOutputFlag}});
  t.push_back({.path = "audit",
               .summary = "List the audit log of mutating calls, newest first",
               .handler = CmdAudit,
               .needs_daemon = true,
               .flags = {{.kind = FlagKind::kValue,
                          .names = "--limit",
                          .key = "limit",
                          .help = "How many entries",
                          .value_name = "N",
                          .default_value = "100"},
                         kOutputFlag}});
  // ---- Services ----
  t.push_back({.path = "svc", .summary = "Start, stop, restart or reset one service"});
  t.push_back({.path = "svc start",
               .summary = "Start a service (and clear a stop made with svc stop)",
               .handler = CmdSvcStart,
               .needs_daemon = true,
               .flags = {kServiceArg, kOutputFlag}});
  t.push_back({.path = "svc stop",
               .summary = "Stop a service and keep it stopped until svc start",
               .handler = CmdSvcStop,
               .needs_daemon = true,
               .flags = {kServiceArg, kOutputFlag},
               .details = "The stop is remembered by cbctld, so reconciliation does not start "
                          "the service again."});
  t.push_back({.path = "svc restart",
               .summary = "Restart a service",
               .handler = CmdSvcRestart,
               .needs_daemon = true,
               .flags = {kServiceArg, kOutputFlag}});
  t.push_back({.path = "svc reset",
               .summary = "Clear a service's failure count and close its circuit",
               .handler = CmdSvcReset,
               .needs_daemon = true,
               .flags = {kServiceArg, kOutputFlag}});
  // ---- Tokens ----
  t.push_back({.path = "token", .summary = "Create, list and revoke API tokens (admin)"});
  t.push_back({.path = "token create",
               .summary = "Create an API token and print its secret once",
               .handler = CmdTokenCreate,
               .needs_daemon = true,
               .flags = {{.kind = FlagKind::kPositional,
                          .names = "name",
                          .key = "name",
                          .help = "A name for the token ([a-z0-9][a-z0-9._-]*)",
                          .value_name = "NAME",
                          .required = true},
                         {.kind = FlagKind::kValue,
                          .names = "--scope",
                          .key = "scope",
                          .help = "What the token may do",
                          .value_name = "SCOPE",
                          .choices = "viewer operator admin",
                          .required = true,
                          .complete = Complete::kChoices},
                         kOutputFlag},
               .details = "The secret alone goes to standard output (cbctl token create ci "
                          "--scope viewer > ci.token); keep the file readable by its owner only. "
                          "viewer may read; operator may also start, stop, restart and reset "
                          "services and follow logs; admin may do everything."});
  t.push_back({.path = "token list",
               .summary = "List API tokens (never their secrets)",
               .handler = CmdTokenList,
               .needs_daemon = true,
               .flags = {kOutputFlag}});
  t.push_back({.path = "token revoke",
               .summary = "Revoke an API token",
               .handler = CmdTokenRevoke,
               .needs_daemon = true,
               .flags = {{.kind = FlagKind::kPositional,
                          .names = "token",
                          .key = "token",
                          .help = "The token's id or name",
                          .value_name = "ID|NAME",
                          .required = true},
                         kOutputFlag}});
  // Hidden: service addresses for the completion scripts.
  t.push_back({.path = "__services",
               .summary = "Print service addresses, one per line (for shell completion)",
               .handler = CmdCompleteServices,
               .needs_daemon = true,
               .hidden = true});
  // ---- Daemon-less commands ----
  t.push_back({.path = "config", .summary = "Work with fleet spec files locally"});
  t.push_back(
      {.path = "config validate",
       .summary = "Check a fleet spec and list every problem",
       .handler = CmdConfigValidate,
       .flags = {{.kind = FlagKind::kPositional,
                  .names = "file",
                  .key = "file",
                  .help = "The fleet spec (YAML or JSON; - for standard input)",
                  .value_name = "FILE",
                  .required = true,
                  .complete = Complete::kFile},
                 kOutputFlag},
       .details = "Prints \"valid\" and exits 0, or prints every problem as "
                  "FILE:LINE:COLUMN: KEY.PATH: MESSAGE and exits 1. Warnings (a spec that is "
                  "valid but probably not what was meant) go to standard error. With -o json "
                  "the output is a list of {file, line, column, path, message, expected, "
                  "found}, empty when the spec is valid."});
  t.push_back({.path = "version",
               .summary = "Print the version of cbctl",
               .handler = CmdVersion,
               .flags = {kOutputFlag}});
  t.push_back({.path = "completion",
               .summary = "Print a shell completion script",
               .handler = CmdCompletion,
               .flags = {{.kind = FlagKind::kPositional,
                          .names = "shell",
                          .key = "shell",
                          .help = "The shell",
                          .value_name = "SHELL",
                          .choices = "bash zsh fish",
                          .required = true,
                          .complete = Complete::kChoices}},
               .details = "bash: source <(cbctl completion bash), or save it as "
                          "/usr/share/bash-completion/completions/cbctl. zsh: save it as _cbctl "
                          "in a directory of $fpath. fish: save it as "
                          "~/.config/fish/completions/cbctl.fish."});
  // ---- Database operations (cli/cmd_db.cc, libcbdb; no daemon) ----
  static const Flag kDbUrl{.kind = FlagKind::kValue, .names = "--db-url", .key = "db-url",
                           .help = "postgresql://USER@HOST:PORT/DB (default: -f's database.url, then "
                                   "the PG* environment); a password in it is accepted with a warning",
                           .value_name = "URL"};
  static const Flag kDbPasswordFile{.kind = FlagKind::kValue, .names = "--password-file",
                                    .key = "password-file",
                                    .help = "File holding the database password (else the spec's "
                                            "password_file, then PGPASSFILE / ~/.pgpass)",
                                    .value_name = "FILE", .complete = Complete::kFile};
  static const Flag kDbSpec{.kind = FlagKind::kValue, .names = "-f,--file", .key = "spec",
                            .help = "Fleet spec whose database section to use",
                            .value_name = "FILE", .complete = Complete::kFile};
  static const Flag kDbYes{.kind = FlagKind::kBool, .names = "-y,--yes", .key = "yes",
                           .help = "Do not ask for confirmation (required without a terminal)"};
  static const Flag kDbDryRun{.kind = FlagKind::kBool, .names = "--dry-run", .key = "dry-run",
                              .help = "Show the plan (the exact statements) and change nothing"};
  static const Flag kDbRam{.kind = FlagKind::kValue, .names = "--ram", .key = "ram",
                           .help = "RAM of the database host (e.g. 16GB); required when it is not "
                                   "this machine",
                           .value_name = "SIZE"};
  static const Flag kDbCpus{.kind = FlagKind::kValue, .names = "--cpus", .key = "cpus",
                            .help = "CPUs of the database host; required when it is not this machine",
                            .value_name = "N"};
  static const Flag kDbMaxConn{.kind = FlagKind::kValue, .names = "--max-connections",
                               .key = "max-connections", .help = "max_connections to tune for",
                               .value_name = "N", .default_value = "200"};
  static const Flag kDbStorage{.kind = FlagKind::kValue, .names = "--storage", .key = "storage",
                               .help = "Storage of the database host", .value_name = "KIND",
                               .default_value = "ssd", .choices = "ssd hdd",
                               .complete = Complete::kChoices};
  static const Flag kDbPremake{.kind = FlagKind::kValue, .names = "--premake", .key = "premake",
                               .help = "Future monthly partitions to keep ready", .value_name = "N"};
  static const Flag kDbRetention{.kind = FlagKind::kValue, .names = "--retention", .key = "retention",
                                 .help = "Keep partitions this long (12mo, 1y, 90d); older ones are "
                                         "detached by db maintain",
                                 .value_name = "AGE"};
  t.push_back({.path = "db", .summary = "Postgres operations: status, tune, partition, maintain, vacuum"});
  t.push_back({.path = "db status",
               .summary = "Show the database's health and what to fix",
               .handler = CmdDbStatus,
               .flags = {kDbUrl, kDbPasswordFile, kDbSpec, kDbRam, kDbCpus, kDbMaxConn, kDbStorage,
                         {.kind = FlagKind::kValue, .names = "--top", .key = "top",
                          .help = "Largest tables shown", .value_name = "N", .default_value = "10"},
                         kOutputFlag},
               .details = "Server version, size, connections by state against max_connections, cache "
                          "hit ratio, the largest tables (rows, size, dead rows, last vacuum/analyze and "
                          "whether auto or manual), partitioned tables with their partitions, rows in "
                          "default partitions (a problem), transaction-ID age, and the settings that "
                          "differ from `db tune`'s recommendation. Read-only."});
  t.push_back({.path = "db tune",
               .summary = "Tune Postgres settings for the host's real RAM and CPUs",
               .handler = CmdDbTune,
               .flags = {kDbUrl, kDbPasswordFile, kDbSpec, kDbRam, kDbCpus, kDbMaxConn, kDbStorage,
                         kDbDryRun,
                         {.kind = FlagKind::kBool, .names = "--apply", .key = "apply",
                          .help = "Apply with ALTER SYSTEM and reload (previous values are kept)"},
                         {.kind = FlagKind::kBool, .names = "--restore", .key = "restore",
                          .help = "Put back the values from before the last --apply"},
                         {.kind = FlagKind::kBool, .names = "--restart", .key = "restart",
                          .help = "Restart Postgres for pending settings when the spec's database.service "
                                  "names the service that runs it (cbctld restarts it; otherwise print how)"},
                         {.kind = FlagKind::kBool, .names = "--detailed-exitcode",
                          .key = "detailed-exitcode",
                          .help = "Exit 0 when nothing changes, 2 when there are changes, 1 on error"},
                         kDbYes, kOutputFlag},
               .details = "Codebolt guidance (shared_buffers 25% of RAM, effective_cache_size 75%, "
                          "work_mem 32MB, maintenance_work_mem 512MB, max_connections 200) refined "
                          "with pgtune's formulas (WAL, checkpoints, planner costs, parallel workers). "
                          "RAM and CPUs come from the cgroup limits before /proc when the database is "
                          "on this machine; otherwise pass --ram and --cpus. Values are clamped to "
                          "Postgres's limits, changes within 5% are skipped, and each change is "
                          "labelled reload or restart. Without --apply only the plan is shown. -o json "
                          "prints [{name, current, recommended, unit, action, reason}]. "
                          "--restart: when settings are pending a restart and the fleet spec (-f, or the "
                          "one stored in cbctld) has database.service naming the services: entry that "
                          "runs this Postgres, cbctl asks cbctld to restart that service, waits (up to "
                          "120 s) until a new Postgres accepts connections and checks the settings took "
                          "effect. Otherwise it prints how to restart Postgres and restarts nothing."});
  t.push_back({.path = "db partition",
               .summary = "Partition a live table by month, online",
               .handler = CmdDbPartition,
               .flags = {{.kind = FlagKind::kPositional, .names = "table", .key = "table",
                          .help = "The table (SCHEMA.TABLE; quote mixed case: '\"Events\"')",
                          .value_name = "TABLE", .required = true},
                         {.kind = FlagKind::kValue, .names = "--column", .key = "column",
                          .help = "Partition column (default: the table's only timestamp column)",
                          .value_name = "COLUMN"},
                         {.kind = FlagKind::kValue, .names = "--interval", .key = "interval",
                          .help = "Partition interval", .value_name = "INTERVAL",
                          .default_value = "month", .choices = "month",
                          .complete = Complete::kChoices},
                         kDbPremake, kDbRetention,
                         {.kind = FlagKind::kBool, .names = "--split-old", .key = "split-old",
                          .help = "Then move the old rows into monthly partitions, one month per "
                                  "transaction; each month locks the whole table (see below)"},
                         {.kind = FlagKind::kBool, .names = "--no-wait", .key = "no-wait",
                          .help = "Fail, naming the holder, when another run holds the table's lock"},
                         {.kind = FlagKind::kValue, .names = "--lock-timeout", .key = "lock-timeout",
                          .help = "lock_timeout per attempt for every lock on the table (retried)",
                          .value_name = "MS", .default_value = "100"},
                         kDbDryRun, kDbUrl, kDbPasswordFile, kDbSpec, kDbYes, kOutputFlag},
               .details = "Writers are blocked only by a short swap: the partitioned table, its "
                          "default and future partitions and indexes are built first; a NOT VALID "
                          "CHECK bounding the existing rows is added and validated without blocking "
                          "writes; a primary key or unique constraint lacking the column gets a "
                          "unique index built CONCURRENTLY and is extended with the column (said in "
                          "the plan); then one transaction with lock_timeout (retried) renames the "
                          "table to TABLE_old, attaches it as the partition of everything below the "
                          "cut-over month (no scan: the CHECK implies it) and gives the partitioned "
                          "table the original name, identity/serial, grants, owner and comments. "
                          "Late rows for earlier months go to TABLE_old. Every step is journaled in "
                          "the cbctl schema: a killed or cancelled run (Ctrl-C, `cbctl db cancel`) "
                          "is finished by running the same command again. Refused: tables referenced "
                          "by foreign keys, with triggers or dependent views, columns that are not "
                          "timestamps or allow NULLs. Without --split-old the old rows stay in "
                          "TABLE_old until db maintain detaches it past the retention. --split-old "
                          "then moves them into monthly partitions, newest month first, one "
                          "transaction per month that holds an ACCESS EXCLUSIVE lock on the whole "
                          "table (readers and writers wait) while it copies and deletes that month's "
                          "rows, re-checks the remaining old rows and indexes the new partition: "
                          "seconds per million rows (bench/partition measures it). It can be "
                          "stopped between months and continued by running it again."});
  t.push_back({.path = "db cancel",
               .summary = "Cancel a running db partition; it stays consistent and resumable",
               .handler = CmdDbCancel,
               .flags = {{.kind = FlagKind::kPositional, .names = "table", .key = "table",
                          .help = "The table being partitioned", .value_name = "TABLE",
                          .required = true},
                         kDbUrl, kDbPasswordFile, kDbSpec}});
  t.push_back({.path = "db maintain",
               .summary = "Premake partitions, move default-partition rows, detach past retention",
               .handler = CmdDbMaintain,
               .flags = {{.kind = FlagKind::kPositionalList, .names = "tables", .key = "tables",
                          .help = "Tables (default: every table db partition registered)",
                          .value_name = "TABLE"},
                         kDbPremake, kDbRetention,
                         {.kind = FlagKind::kBool, .names = "--drop", .key = "drop",
                          .help = "Drop partitions past retention (default: only detach them)"},
                         kDbDryRun, kDbUrl, kDbPasswordFile, kDbSpec, kDbYes, kOutputFlag},
               .details = "Keeps monthly partitions from the current month to --premake months ahead, "
                          "moves rows found in a default partition into partitions for their months "
                          "and reports them as a problem (exit 1), detaches partitions whose upper "
                          "bound is older than the retention (drops them only with --drop), and "
                          "analyzes new partitions. Months are UTC."});
  t.push_back({.path = "db vacuum",
               .summary = "VACUUM a table or the whole database",
               .handler = CmdDbVacuum,
               .flags = {{.kind = FlagKind::kPositional, .names = "table", .key = "table",
                          .help = "The table (default: the whole database)", .value_name = "TABLE"},
                         {.kind = FlagKind::kBool, .names = "--analyze", .key = "analyze",
                          .help = "Also update planner statistics"},
                         {.kind = FlagKind::kBool, .names = "--full", .key = "full",
                          .help = "Rewrite the table (locks it against reads and writes; asks first)"},
                         kDbUrl, kDbPasswordFile, kDbSpec, kDbYes, kOutputFlag}});
  t.push_back({.path = "man",
               .summary = "Print the manual page (roff)",
               .handler = CmdMan,
               .details = "Read it with: cbctl man | man -l -"});
  return t;
}

}  // namespace

std::span<const Command> CommandTable() {
  static const std::vector<Command> table = BuildTable();
  return table;
}

std::span<const Flag> GlobalFlags() { return kGlobalFlags; }

const Command* FindCommand(std::string_view path) {
  for (const auto& c : CommandTable()) {
    if (c.path == path) return &c;
  }
  return nullptr;
}

std::vector<const Command*> Children(std::string_view path) {
  std::vector<const Command*> out;
  for (const auto& c : CommandTable()) {
    std::string_view p = c.path;
    size_t cut = p.rfind(' ');
    std::string_view parent = cut == std::string_view::npos ? std::string_view() : p.substr(0, cut);
    if (parent == path) out.push_back(&c);
  }
  return out;
}

}  // namespace cb::cli
