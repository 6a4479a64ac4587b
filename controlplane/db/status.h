// `cbctl db status`: one read-only look at the database's health. Never writes (does not create
// the cbctl schema). Table output for people, JSON (ToJson) for scripts.
// Thread-safety: uses the Db it is given from the calling thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "controlplane/db/conn.h"
#include "controlplane/db/tune.h"
#include "core/result.h"

namespace cb::db {

struct TableStat {
  std::string schema, name;
  bool partitioned = false;
  int64_t rows = 0;          // estimate (reltuples / n_live_tup), summed over partitions
  int64_t size_bytes = 0;    // total incl. indexes and TOAST, summed over partitions
  int64_t dead_rows = 0;
  std::string last_vacuum, last_vacuum_kind;    // ISO time and "auto" | "manual"; "" = never
  std::string last_analyze, last_analyze_kind;
};

struct PartitionStat {
  std::string name, bound;   // "FOR VALUES FROM (…) TO (…)" | "DEFAULT"
  int64_t rows = 0;          // estimate; exact for the default partition
  bool is_default = false;
};

struct PartitionedTable {
  std::string schema, name, key;  // key: "RANGE (created_at)"
  std::vector<PartitionStat> partitions;
  int64_t default_rows = 0;       // exact (counted up to 1,000,000)
  bool managed = false;           // registered by cbctl db partition
};

struct StatusReport {
  std::string target;             // redacted connection
  std::string version;            // "15.18"
  std::string database;
  int64_t size_bytes = 0;
  int max_connections = 0;
  std::vector<std::pair<std::string, int>> connections;  // by state: active, idle, idle in transaction, …
  int connections_total = 0;
  std::optional<double> cache_hit_ratio;   // nullopt: no reads yet
  int64_t xid_age = 0;
  int64_t autovacuum_freeze_max_age = 200000000;
  std::vector<TableStat> largest;
  std::vector<PartitionedTable> partitioned;
  std::vector<TuneItem> settings_off;      // recommendation differs (action != skip)
  std::string settings_note;               // why the comparison was not done, when it was not
  std::vector<std::string> problems;       // e.g. "12 rows in default partition public.event_log_default"
};

struct StatusOptions {
  int top = 10;                 // largest tables shown
  TuneOptions tune;             // for "settings that differ from the recommendation"
};

Result<StatusReport> CollectStatus(Db& db, const StatusOptions& opts);
nlohmann::json ToJson(const StatusReport& r);
std::string RenderStatus(const StatusReport& r);
// "1.2 GB", "830 MB", "12 kB"
std::string HumanBytes(int64_t b);

}  // namespace cb::db
