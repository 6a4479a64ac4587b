// Host and per-service resource statistics for cbagent (the `stats` RPC, `rss_bytes` /
// `cpu_seconds` in `ps`), and the cgroup limit detection that `db tune` reuses.
//
// Everything that reads the system takes a `root` directory ("" = the real system; a test
// passes a fixture dir holding proc/..., sys/...), and every parser is a pure function of the
// file contents, so all of it runs against fixtures.
//
// cgroups: the limits that apply to THIS process. cgroup v2 (cpu.max, memory.max) is used for
// a resource when the unified hierarchy has that controller for our cgroup; otherwise v1
// (cpu.cfs_quota_us / cpu.cfs_period_us, memory.limit_in_bytes). Hybrid hosts — a v2 mount
// without the cpu/memory controllers next to v1 mounts that have them, as on the build
// machine — fall back to v1 per resource. The limit is the tightest one from our cgroup up
// to the root of the hierarchy.
//
// Thread-safety: free functions are safe from any thread. StatsSampler is not thread-safe:
// the agent's loop thread owns it.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace cb {

// ---- cgroup limits (reused by the control plane's db tune) ----

struct CgroupLimits {
  std::string version = "none";     // "v2" if any limit source is v2, else "v1", else "none"
  std::optional<double> cpu_limit;  // CPUs allowed (quota / period); nullopt: no limit
  std::optional<uint64_t> memory_limit_bytes;  // nullopt: no limit
  std::string cpu_source;                      // the file the CPU limit came from ("" when none)
  std::string memory_source;                   // the file the memory limit came from ("" when none)
};

// Detects the cgroup CPU and memory limits of the calling process from
// ROOT/proc/self/mountinfo, ROOT/proc/self/cgroup and the controller files under the mount
// points (ROOT-prefixed). No cgroup filesystem at all is not an error (version "none").
// Failure: kIo when /proc/self/mountinfo cannot be read, kInvalidArgument when a limit file
// holds garbage (naming the file).
Result<CgroupLimits> DetectCgroupLimits(const std::string& root = "");

// Effective resources for sizing (db tune, worker concurrency): CPUs = min(online CPUs, cgroup
// CPU limit), memory = min(MemTotal, cgroup memory limit).
struct EffectiveResources {
  double cpus = 1;
  uint64_t memory_bytes = 0;
  CgroupLimits cgroup;
};
Result<EffectiveResources> DetectEffectiveResources(const std::string& root = "");

// Pure parsers of cgroup files. nullopt means "no limit" ("max", -1, or the v1 huge default).
Result<std::optional<double>> ParseCgroupV2CpuMax(
    std::string_view content);  // "max 100000" | "150000 100000"
Result<std::optional<uint64_t>> ParseCgroupV2MemoryMax(
    std::string_view content);  // "max" | "4294967296"
Result<std::optional<double>> ParseCgroupV1Cpu(std::string_view quota_us,
                                               std::string_view period_us);
Result<std::optional<uint64_t>> ParseCgroupV1MemoryLimit(
    std::string_view content);  // >= 2^62: none

// ---- host figures ----

struct MemInfo {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
  uint64_t swap_total_bytes = 0;
  uint64_t swap_free_bytes = 0;
};
// /proc/meminfo. Failure: kInvalidArgument when MemTotal is missing or a number is garbage.
Result<MemInfo> ParseMemInfo(std::string_view content);
// /proc/loadavg: the 1, 5, 15 minute load averages.
Result<std::array<double, 3>> ParseLoadAvg(std::string_view content);

// Aggregate CPU jiffies from the first line of /proc/stat. busy = total - idle - iowait.
struct CpuTimes {
  uint64_t busy = 0;
  uint64_t total = 0;
};
Result<CpuTimes> ParseProcStatCpu(std::string_view content);
// Busy fraction (0..1) between two readings; nullopt when no time passed.
std::optional<double> CpuBusyRatio(const CpuTimes& before, const CpuTimes& after);

// Online CPUs from /sys/devices/system/cpu/online ("0-3,6"): 5 for that example.
Result<int> ParseCpuList(std::string_view content);

// HostStats of agents/PROTOCOL.md.
struct HostStats {
  double cpus = 1;                             // online CPUs usable by us (affinity applied)
  std::optional<double> cpu_limit;             // cgroup CPU limit in CPUs
  uint64_t memory_bytes = 0;                   // MemTotal
  std::optional<uint64_t> memory_limit_bytes;  // cgroup memory limit
  std::string cgroup = "none";                 // "v1" | "v2" | "none"
  std::array<double, 3> load{0, 0, 0};
  uint64_t swap_total_bytes = 0;
  uint64_t swap_used_bytes = 0;
  uint64_t memory_available_bytes = 0;
};
// Reads ROOT/proc/meminfo, ROOT/proc/loadavg, ROOT/sys/devices/system/cpu/online and the
// cgroup limits. With the real root the CPU count is also capped by sched_getaffinity.
// `cgroup` may pass limits detected earlier (they rarely change) to skip re-detection.
Result<HostStats> ReadHostStats(const std::string& root = "", const CgroupLimits* cgroup = nullptr);

// ---- processes ----

// The fields of /proc/PID/stat that we use (the comm field may hold spaces and parentheses).
struct ProcStat {
  pid_t pid = 0;
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;  // clock ticks
  int num_threads = 1;                                    // field 20
  uint64_t start_ticks = 0;                               // field 22
  uint64_t rss_pages = 0;                                 // field 24
};
Result<ProcStat> ParseProcPidStat(std::string_view content);

// Resources of one process group (a service: pgid == the service's pid).
struct GroupUsage {
  uint64_t rss_bytes = 0;  // sum of the members' RSS (shared pages counted in each member)
  double cpu_seconds = 0;  // sum of utime+stime+cutime+cstime: includes reaped descendants
  int processes = 0;
};
// One pass over ROOT/proc/[0-9]*/stat, summed by process group. Processes that vanish during
// the scan are skipped. Cost: one open+read per process on the host (~5 ms for 500).
// Failure: kIo when ROOT/proc cannot be listed.
Result<std::map<pid_t, GroupUsage>> ScanProcessGroups(const std::string& root = "");

// The same for the given groups only (a service's pgid is its leader's pid), found by walking
// each leader's descendants through /proc/P/task/T/children: cost grows with the services'
// own processes, not with everything on the host (the sampler uses this). Counted: the leader
// and its descendants still in its group. Not seen: group members re-parented away from the
// leader's tree (a double fork without setsid). A group whose leader is gone is absent.
// Failure: kIo when ROOT/proc cannot be opened.
Result<std::map<pid_t, GroupUsage>> ScanGroupsFromLeaders(const std::vector<pid_t>& pgids,
                                                          const std::string& root = "");

// ---- samples, history, trend ----

struct HostSample {
  WallTime at;
  HostStats stats;
  std::optional<double> cpu_busy_ratio;  // since the previous sample; nullopt for the first
};
struct ServiceSample {
  WallTime at;
  uint64_t rss_bytes = 0;
  double cpu_seconds = 0;
};

// JSON of agents/PROTOCOL.md: HostStats; HostSample = HostStats fields + "at" +
// "cpu_busy_ratio"; ServiceSample = {"at", "rss_bytes", "cpu_seconds"}. "at" is ISO 8601 UTC.
void to_json(nlohmann::json& j, const HostStats& s);
void to_json(nlohmann::json& j, const HostSample& s);
void to_json(nlohmann::json& j, const ServiceSample& s);

// Fixed-capacity ring buffer: Push overwrites the oldest when full. Storage grows on demand
// up to the capacity (an agent that just started holds little).
template <class T>
class RingBuffer {
 public:
  explicit RingBuffer(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  void Push(T v) {
    if (items_.size() < capacity_) {
      items_.push_back(std::move(v));
    } else {
      items_[head_] = std::move(v);
      head_ = (head_ + 1) % capacity_;
    }
  }
  size_t size() const { return items_.size(); }
  size_t capacity() const { return capacity_; }
  bool empty() const { return items_.empty(); }
  // i = 0 is the oldest.
  const T& operator[](size_t i) const { return items_[(head_ + i) % items_.size()]; }
  const T& back() const { return (*this)[items_.size() - 1]; }
  // The newest n (all when n >= size), oldest first.
  std::vector<T> Last(size_t n) const {
    std::vector<T> out;
    size_t k = n < size() ? n : size();
    out.reserve(k);
    for (size_t i = size() - k; i < size(); ++i) {
      out.push_back((*this)[i]);
    }
    return out;
  }

 private:
  size_t capacity_;
  size_t head_ = 0;  // index of the oldest once full
  std::vector<T> items_;
};

// Least-squares slope of (seconds, value) points. Fewer than 2 points or no time span: slope 0.
struct Trend {
  size_t samples = 0;
  double slope_per_second = 0;  // value units per second (bytes/s for RSS)
  double first = 0;             // oldest value
  double last = 0;              // newest value
  double span_seconds = 0;
};
Trend ComputeTrend(const std::vector<std::pair<double, double>>& seconds_value);
Trend RssTrend(const std::vector<ServiceSample>& samples);
Trend CpuRateTrend(const std::vector<ServiceSample>& samples);  // slope = CPUs used on average

// Samples the host and the services every `interval` into ring buffers.
class StatsSampler {
 public:
  struct Options {
    Duration interval = std::chrono::seconds(10);  // sampling period
    size_t capacity = 180;                         // samples kept per series (30 min at 10 s)
    std::string root;                              // "" = the real system
  };
  explicit StatsSampler(Options opts);

  // When the next sample is due (the first Step always samples).
  MonoTime next_due() const { return next_due_; }
  const Options& options() const { return opts_; }

  // Samples when `now >= next_due()`; returns whether it did. `services` maps each known
  // service name to its process group id (0 when not running: no sample, history kept);
  // names absent from the map lose their history. A failure to read a host file is
  // returned (history unchanged apart from services, next attempt one interval later).
  Result<bool> Step(MonoTime now, WallTime wall, const std::map<std::string, pid_t>& services);
  // Samples now regardless of the schedule (the next one is one interval later).
  Result<void> SampleNow(MonoTime now, WallTime wall, const std::map<std::string, pid_t>& services);

  std::vector<HostSample> HostHistory(size_t n) const { return host_.Last(n); }
  std::vector<ServiceSample> ServiceHistory(const std::string& name, size_t n) const;
  std::optional<ServiceSample> LatestService(const std::string& name) const;
  std::optional<HostSample> LatestHost() const;
  // Cached cgroup limits (detected at the first sample, re-detected every 60 samples).
  const CgroupLimits& cgroup() const { return cgroup_; }

  // The `stats` RPC result: {"host": HostStats (latest sample, or read now when none),
  // "history": [HostSample…] (newest n), "services": {name: [ServiceSample…]}}.
  Result<nlohmann::json> StatsJson(size_t n) const;

 private:
  // Compact per-service sample: 16 bytes (200 services x 180 samples = 576 KB at most).
  struct Packed {
    int64_t at_ms;
    uint32_t rss_kib;
    float cpu_seconds;
  };
  static ServiceSample Unpack(const Packed& p);

  Options opts_;
  MonoTime next_due_{};
  bool sampled_ = false;
  int samples_since_cgroup_ = 0;
  CgroupLimits cgroup_;
  std::optional<CpuTimes> prev_cpu_;
  RingBuffer<HostSample> host_;
  std::map<std::string, RingBuffer<Packed>> services_;
};

}  // namespace cb
