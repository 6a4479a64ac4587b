#include "agents/hoststats.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cb {
namespace {

constexpr uint64_t kV1Unlimited = 1ull << 62;

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> SplitWs(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) {
      ++i;
    }
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') {
      ++j;
    }
    if (j > i) {
      out.push_back(s.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

std::vector<std::string_view> SplitChar(std::string_view s, char c) {
  std::vector<std::string_view> out;
  size_t i = 0;
  for (;;) {
    size_t j = s.find(c, i);
    if (j == std::string_view::npos) {
      out.push_back(s.substr(i));
      return out;
    }
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
}

template <class T>
bool ParseNum(std::string_view s, T* out) {
  s = Trim(s);
  if (s.empty()) {
    return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseDouble(std::string_view s, double* out) {
  s = Trim(s);
  if (s.empty()) {
    return false;
  }
  std::string tmp(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(tmp.c_str(), &end);
  if (errno != 0 || end != tmp.c_str() + tmp.size()) {
    return false;
  }
  *out = v;
  return true;
}

// Reads a small file (proc/sys files report size 0, so read until EOF).
Result<std::string> ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Err(ErrnoError("open " + path, errno));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      int e = errno;
      ::close(fd);
      return Err(ErrnoError("read " + path, e));
    }
    if (r == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(r));
    if (out.size() > (16u << 20)) {
      break;
    }
  }
  ::close(fd);
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto oct = [](char c) { return c >= '0' && c <= '7'; };
    if (s[i] == '\\' && s.size() - i >= 4 && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

struct Mount {
  std::string mount_root;  // the hierarchy path mounted (field 4)
  std::string mount_point;
};

struct CgroupMounts {
  std::optional<Mount> v2;
  std::map<std::string, Mount> v1;  // controller name -> mount
};

CgroupMounts ParseMountInfo(std::string_view content) {
  CgroupMounts m;
  for (std::string_view line : SplitChar(content, '\n')) {
    auto f = SplitWs(line);
    auto dash = std::find(f.begin(), f.end(), std::string_view("-"));
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 2) {
      continue;
    }
    std::string_view fstype = *(dash + 1);
    Mount mount{Unescape(f[3]), Unescape(f[4])};
    if (fstype == "cgroup2") {
      if (!m.v2) {
        m.v2 = mount;
      }
    } else if (fstype == "cgroup") {
      std::string_view super = f.end() - dash >= 4 ? *(dash + 3) : std::string_view();
      for (std::string_view opt : SplitChar(super, ',')) {
        if (opt == "cpu" || opt == "memory") {
          m.v1.emplace(std::string(opt), mount);
        }
      }
    }
  }
  return m;
}

struct ProcCgroups {
  std::optional<std::string> v2_path;
  std::map<std::string, std::string> v1_paths;  // controller -> path
};

ProcCgroups ParseProcCgroup(std::string_view content) {
  ProcCgroups c;
  for (std::string_view line : SplitChar(content, '\n')) {
    line = Trim(line);
    if (line.empty()) {
      continue;
    }
    size_t a = line.find(':');
    size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) {
      continue;
    }
    std::string_view id = line.substr(0, a);
    std::string_view ctrls = line.substr(a + 1, b - a - 1);
    std::string path(line.substr(b + 1));
    if (id == "0" && ctrls.empty()) {
      c.v2_path = path;
    } else {
      for (std::string_view ctl : SplitChar(ctrls, ',')) {
        if (ctl == "cpu" || ctl == "memory") {
          c.v1_paths.emplace(std::string(ctl), path);
        }
      }
    }
  }
  return c;
}

// Directories from our cgroup up to the mount point (inclusive), ROOT-prefixed. A cgroup path
// outside the mount (cgroup namespaces, "/.."): only the mount point.
std::vector<std::string> CgroupDirs(const std::string& root, const Mount& mount,
                                    const std::string& path) {
  std::string rel = path;
  if (mount.mount_root != "/" && !mount.mount_root.empty()) {
    if (rel.rfind(mount.mount_root, 0) == 0) {
      rel = rel.substr(mount.mount_root.size());
    } else {
      rel = "/";
    }
  }
  if (rel.find("/..") != std::string::npos || rel.empty()) {
    rel = "/";
  }
  std::string base = root + mount.mount_point;
  std::vector<std::string> dirs;
  std::string cur = rel;
  while (!cur.empty() && cur != "/") {
    dirs.push_back(base + cur);
    size_t slash = cur.rfind('/');
    cur = slash == std::string::npos ? "" : cur.substr(0, slash);
  }
  dirs.push_back(base);
  return dirs;
}

bool V2HasController(const std::vector<std::string>& dirs, std::string_view ctl) {
  for (const auto& d : dirs) {
    auto c = ReadSmallFile(d + "/cgroup.controllers");
    if (!c) {
      continue;  // the leaf may not exist (namespaces): ask the next level up
    }
    for (auto w : SplitWs(*c)) {
      if (w == ctl) {
        return true;
      }
    }
    return false;
  }
  return false;
}

}  // namespace

Result<std::optional<double>> ParseCgroupV2CpuMax(std::string_view content) {
  auto f = SplitWs(content);
  if (f.empty() || f.size() > 2) {
    return Err(Code::kInvalidArgument, "cpu.max: expected \"QUOTA PERIOD\", found \"{}\"",
               Trim(content));
  }
  uint64_t period = 100000;
  if (f.size() == 2 && (!ParseNum(f[1], &period) || period == 0)) {
    return Err(Code::kInvalidArgument, "cpu.max: bad period \"{}\"", f[1]);
  }
  if (f[0] == "max") {
    return std::optional<double>();
  }
  uint64_t quota = 0;
  if (!ParseNum(f[0], &quota) || quota == 0) {
    return Err(Code::kInvalidArgument, "cpu.max: bad quota \"{}\"", f[0]);
  }
  return std::optional<double>(static_cast<double>(quota) / static_cast<double>(period));
}

Result<std::optional<uint64_t>> ParseCgroupV2MemoryMax(std::string_view content) {
  std::string_view s = Trim(content);
  if (s == "max") {
    return std::optional<uint64_t>();
  }
  uint64_t v = 0;
  if (!ParseNum(s, &v)) {
    return Err(Code::kInvalidArgument, "memory.max: expected \"max\" or bytes, found \"{}\"", s);
  }
  return std::optional<uint64_t>(v);
}

Result<std::optional<double>> ParseCgroupV1Cpu(std::string_view quota_us,
                                               std::string_view period_us) {
  int64_t quota = 0;
  uint64_t period = 0;
  if (!ParseNum(quota_us, &quota)) {
    return Err(Code::kInvalidArgument, "cpu.cfs_quota_us: expected an integer, found \"{}\"",
               Trim(quota_us));
  }
  if (quota < 0) {
    return std::optional<double>();
  }
  if (!ParseNum(period_us, &period) || period == 0) {
    return Err(Code::kInvalidArgument,
               "cpu.cfs_period_us: expected a positive integer, found \"{}\"", Trim(period_us));
  }
  if (quota == 0) {
    return std::optional<double>();
  }
  return std::optional<double>(static_cast<double>(quota) / static_cast<double>(period));
}

Result<std::optional<uint64_t>> ParseCgroupV1MemoryLimit(std::string_view content) {
  uint64_t v = 0;
  if (!ParseNum(content, &v)) {
    int64_t neg = 0;
    if (ParseNum(content, &neg) && neg == -1) {
      return std::optional<uint64_t>();
    }
    return Err(Code::kInvalidArgument, "memory.limit_in_bytes: expected bytes, found \"{}\"",
               Trim(content));
  }
  if (v >= kV1Unlimited) {
    return std::optional<uint64_t>();
  }
  return std::optional<uint64_t>(v);
}

Result<CgroupLimits> DetectCgroupLimits(const std::string& root) {
  CB_TRY(std::string mountinfo, ReadSmallFile(root + "/proc/self/mountinfo"));
  CgroupMounts mounts = ParseMountInfo(mountinfo);
  ProcCgroups procs;
  if (auto pc = ReadSmallFile(root + "/proc/self/cgroup")) {
    procs = ParseProcCgroup(*pc);
  }

  CgroupLimits lim;
  bool used_v2 = false, used_v1 = false;
  bool cpu_done = false, mem_done = false;

  if (mounts.v2 && (procs.v2_path || procs.v1_paths.empty())) {
    auto dirs = CgroupDirs(root, *mounts.v2, procs.v2_path.value_or("/"));
    if (V2HasController(dirs, "cpu")) {
      cpu_done = used_v2 = true;
      for (const auto& d : dirs) {
        std::string f = d + "/cpu.max";
        auto c = ReadSmallFile(f);
        if (!c) {
          continue;
        }
        auto v = ParseCgroupV2CpuMax(*c);
        if (!v) {
          return Err(v.error().Wrap(f));
        }
        if (*v && (!lim.cpu_limit || **v < *lim.cpu_limit)) {
          lim.cpu_limit = **v;
          lim.cpu_source = f;
        }
      }
    }
    if (V2HasController(dirs, "memory")) {
      mem_done = used_v2 = true;
      for (const auto& d : dirs) {
        std::string f = d + "/memory.max";
        auto c = ReadSmallFile(f);
        if (!c) {
          continue;
        }
        auto v = ParseCgroupV2MemoryMax(*c);
        if (!v) {
          return Err(v.error().Wrap(f));
        }
        if (*v && (!lim.memory_limit_bytes || **v < *lim.memory_limit_bytes)) {
          lim.memory_limit_bytes = **v;
          lim.memory_source = f;
        }
      }
    }
  }
  if (!cpu_done) {
    auto m = mounts.v1.find("cpu");
    if (m != mounts.v1.end()) {
      auto p = procs.v1_paths.find("cpu");
      auto dirs = CgroupDirs(root, m->second, p == procs.v1_paths.end() ? "/" : p->second);
      for (const auto& d : dirs) {
        auto q = ReadSmallFile(d + "/cpu.cfs_quota_us");
        if (!q) {
          continue;
        }
        used_v1 = true;
        auto per = ReadSmallFile(d + "/cpu.cfs_period_us");
        if (!per) {
          return Err(per.error());
        }
        auto v = ParseCgroupV1Cpu(*q, *per);
        if (!v) {
          return Err(v.error().Wrap(d));
        }
        if (*v && (!lim.cpu_limit || **v < *lim.cpu_limit)) {
          lim.cpu_limit = **v;
          lim.cpu_source = d + "/cpu.cfs_quota_us";
        }
      }
    }
  }
  if (!mem_done) {
    auto m = mounts.v1.find("memory");
    if (m != mounts.v1.end()) {
      auto p = procs.v1_paths.find("memory");
      auto dirs = CgroupDirs(root, m->second, p == procs.v1_paths.end() ? "/" : p->second);
      for (const auto& d : dirs) {
        std::string f = d + "/memory.limit_in_bytes";
        auto c = ReadSmallFile(f);
        if (!c) {
          continue;
        }
        used_v1 = true;
        auto v = ParseCgroupV1MemoryLimit(*c);
        if (!v) {
          return Err(v.error().Wrap(f));
        }
        if (*v && (!lim.memory_limit_bytes || **v < *lim.memory_limit_bytes)) {
          lim.memory_limit_bytes = **v;
          lim.memory_source = f;
        }
      }
    }
  }
  lim.version = used_v2 ? "v2" : used_v1 ? "v1" : "none";
  return lim;
}

Result<MemInfo> ParseMemInfo(std::string_view content) {
  MemInfo m;
  bool total = false, avail = false, free_found = false;
  uint64_t mem_free = 0, buffers = 0, cached = 0;
  for (std::string_view line : SplitChar(content, '\n')) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    std::string_view key = line.substr(0, colon);
    auto f = SplitWs(line.substr(colon + 1));
    if (f.empty()) {
      continue;
    }
    uint64_t v = 0;
    if (!ParseNum(f[0], &v)) {
      return Err(Code::kInvalidArgument, "meminfo: {}: expected a number, found \"{}\"", key, f[0]);
    }
    if (f.size() > 1 && f[1] == "kB") {
      v *= 1024;
    }
    if (key == "MemTotal") {
      m.total_bytes = v, total = true;
    } else if (key == "MemAvailable") {
      m.available_bytes = v, avail = true;
    } else if (key == "MemFree") {
      mem_free = v, free_found = true;
    } else if (key == "Buffers") {
      buffers = v;
    } else if (key == "Cached") {
      cached = v;
    } else if (key == "SwapTotal") {
      m.swap_total_bytes = v;
    } else if (key == "SwapFree") {
      m.swap_free_bytes = v;
    }
  }
  if (!total) {
    return Err(Code::kInvalidArgument, "meminfo: MemTotal missing");
  }
  if (!avail) {
    m.available_bytes = free_found ? mem_free + buffers + cached : 0;  // kernels < 3.14
  }
  return m;
}

Result<std::array<double, 3>> ParseLoadAvg(std::string_view content) {
  auto f = SplitWs(content);
  std::array<double, 3> out{};
  if (f.size() < 3) {
    return Err(Code::kInvalidArgument, "loadavg: expected 3 numbers, found \"{}\"", Trim(content));
  }
  for (int i = 0; i < 3; ++i) {
    if (!ParseDouble(f[i], &out[i])) {
      return Err(Code::kInvalidArgument, "loadavg: bad number \"{}\"", f[i]);
    }
  }
  return out;
}

Result<CpuTimes> ParseProcStatCpu(std::string_view content) {
  for (std::string_view line : SplitChar(content, '\n')) {
    auto f = SplitWs(line);
    if (f.empty() || f[0] != "cpu") {
      continue;
    }
    if (f.size() < 5) {
      return Err(Code::kInvalidArgument,
                 "/proc/stat: cpu line has {} fields, expected at least 4 numbers", f.size() - 1);
    }
    CpuTimes t;
    // user nice system idle iowait irq softirq steal (guest and guest_nice are in user/nice).
    for (size_t i = 1; i < f.size() && i <= 8; ++i) {
      uint64_t v = 0;
      if (!ParseNum(f[i], &v)) {
        return Err(Code::kInvalidArgument, "/proc/stat: cpu field {}: bad number \"{}\"", i, f[i]);
      }
      t.total += v;
      if (i != 4 && i != 5) {
        t.busy += v;
      }
    }
    return t;
  }
  return Err(Code::kInvalidArgument, "/proc/stat: no aggregate \"cpu\" line");
}

std::optional<double> CpuBusyRatio(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total) {
    return std::nullopt;
  }
  double busy = after.busy >= before.busy ? static_cast<double>(after.busy - before.busy) : 0.0;
  double r = busy / static_cast<double>(after.total - before.total);
  return std::clamp(r, 0.0, 1.0);
}

Result<int> ParseCpuList(std::string_view content) {
  std::string_view s = Trim(content);
  if (s.empty()) {
    return Err(Code::kInvalidArgument, "cpu list: empty");
  }
  int n = 0;
  for (std::string_view part : SplitChar(s, ',')) {
    size_t dash = part.find('-');
    int a = 0, b = 0;
    if (dash == std::string_view::npos) {
      if (!ParseNum(part, &a)) {
        return Err(Code::kInvalidArgument, "cpu list: bad entry \"{}\"", part);
      }
      b = a;
    } else if (!ParseNum(part.substr(0, dash), &a) || !ParseNum(part.substr(dash + 1), &b) ||
               b < a) {
      return Err(Code::kInvalidArgument, "cpu list: bad range \"{}\"", part);
    }
    n += b - a + 1;
  }
  return n;
}

Result<HostStats> ReadHostStats(const std::string& root, const CgroupLimits* cgroup) {
  HostStats h;
  CB_TRY(std::string mi, ReadSmallFile(root + "/proc/meminfo"));
  CB_TRY(MemInfo mem, ParseMemInfo(mi));
  h.memory_bytes = mem.total_bytes;
  h.memory_available_bytes = mem.available_bytes;
  h.swap_total_bytes = mem.swap_total_bytes;
  h.swap_used_bytes =
      mem.swap_total_bytes >= mem.swap_free_bytes ? mem.swap_total_bytes - mem.swap_free_bytes : 0;
  CB_TRY(std::string la, ReadSmallFile(root + "/proc/loadavg"));
  CB_TRY(h.load, ParseLoadAvg(la));

  int cpus = 0;
  if (auto online = ReadSmallFile(root + "/sys/devices/system/cpu/online")) {
    auto n = ParseCpuList(*online);
    if (!n) {
      return Err(n.error().Wrap(root + "/sys/devices/system/cpu/online"));
    }
    cpus = *n;
  }
  if (root.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
      int aff = CPU_COUNT(&set);
      cpus = cpus == 0 ? aff : std::min(cpus, aff);
    }
    if (cpus == 0) {
      cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    }
  }
  h.cpus = cpus > 0 ? cpus : 1;

  CgroupLimits detected;
  if (cgroup == nullptr) {
    CB_TRY(detected, DetectCgroupLimits(root));
    cgroup = &detected;
  }
  h.cgroup = cgroup->version;
  h.cpu_limit = cgroup->cpu_limit;
  h.memory_limit_bytes = cgroup->memory_limit_bytes;
  return h;
}

Result<EffectiveResources> DetectEffectiveResources(const std::string& root) {
  CB_TRY(HostStats h, ReadHostStats(root));
  EffectiveResources r;
  CB_TRY(r.cgroup, DetectCgroupLimits(root));
  r.cpus = h.cpus;
  if (r.cgroup.cpu_limit) {
    r.cpus = std::min(r.cpus, *r.cgroup.cpu_limit);
  }
  r.memory_bytes = h.memory_bytes;
  if (r.cgroup.memory_limit_bytes) {
    r.memory_bytes = std::min(r.memory_bytes, *r.cgroup.memory_limit_bytes);
  }
  return r;
}

Result<ProcStat> ParseProcPidStat(std::string_view content) {
  // Allocation-free: the scan calls this for every process on the host.
  size_t open = content.find('(');
  size_t close = content.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return Err(Code::kInvalidArgument, "/proc/PID/stat: no \"(comm)\" field");
  }
  ProcStat s;
  if (!ParseNum(content.substr(0, open), &s.pid)) {
    return Err(Code::kInvalidArgument, "/proc/PID/stat: bad pid");
  }
  // Field N (1-based, as in proc(5)) after the comm: state is field 3.
  const char* p = content.data() + close + 1;
  const char* end = content.data() + content.size();
  int field = 2;
  int64_t cut = 0, cst = 0, rss = 0;
  bool ok = true;
  while (p < end && field < 24) {
    while (p < end && (*p == ' ' || *p == '\n')) {
      ++p;
    }
    const char* q = p;
    while (q < end && *q != ' ' && *q != '\n') {
      ++q;
    }
    if (q == p) {
      break;
    }
    ++field;
    std::string_view f(p, static_cast<size_t>(q - p));
    switch (field) {
      case 3:
        s.state = f[0];
        break;
      case 4:
        ok = ok && ParseNum(f, &s.ppid);
        break;
      case 5:
        ok = ok && ParseNum(f, &s.pgrp);
        break;
      case 14:
        ok = ok && ParseNum(f, &s.utime);
        break;
      case 15:
        ok = ok && ParseNum(f, &s.stime);
        break;
      case 16:
        ok = ok && ParseNum(f, &cut);
        break;
      case 17:
        ok = ok && ParseNum(f, &cst);
        break;
      case 20:
        ok = ok && ParseNum(f, &s.num_threads);
        break;
      case 22:
        ok = ok && ParseNum(f, &s.start_ticks);
        break;
      case 24:
        ok = ok && ParseNum(f, &rss);
        break;
      default:
        break;
    }
    p = q;
  }
  if (field < 24) {
    return Err(Code::kInvalidArgument, "/proc/{}/stat: {} fields after comm, expected at least 22",
               s.pid, field - 2);
  }
  if (!ok) {
    return Err(Code::kInvalidArgument, "/proc/{}/stat: a numeric field is not a number", s.pid);
  }
  s.cutime = cut > 0 ? static_cast<uint64_t>(cut) : 0;
  s.cstime = cst > 0 ? static_cast<uint64_t>(cst) : 0;
  s.rss_pages = rss > 0 ? static_cast<uint64_t>(rss) : 0;
  return s;
}

Result<std::map<pid_t, GroupUsage>> ScanProcessGroups(const std::string& root) {
  std::string proc = root + "/proc";
  int dfd = ::open(proc.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return Err(ErrnoError("list " + proc, errno));
  }
  DIR* dir = ::fdopendir(dfd);
  if (dir == nullptr) {
    int e = errno;
    ::close(dfd);
    return Err(ErrnoError("list " + proc, e));
  }
  static const long kPage = ::sysconf(_SC_PAGESIZE);
  static const long kTck = ::sysconf(_SC_CLK_TCK);
  std::map<pid_t, GroupUsage> out;
  char path[300];
  char buf[4096];
  while (struct dirent* e = ::readdir(dir)) {
    const char* n = e->d_name;
    if (n[0] < '0' || n[0] > '9') {
      continue;
    }
    (void)std::snprintf(path, sizeof path, "%s/stat", n);
    int fd = ::openat(dfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;  // exited meanwhile
    }
    ssize_t r;
    do {
      r = ::read(fd, buf, sizeof buf);  // the whole line in one read (well under 4 KiB)
    } while (r < 0 && errno == EINTR);
    ::close(fd);
    if (r <= 0) {
      continue;
    }
    auto st = ParseProcPidStat(std::string_view(buf, static_cast<size_t>(r)));
    if (!st || st->state == 'Z') {
      continue;
    }
    GroupUsage& g = out[st->pgrp];
    g.rss_bytes += st->rss_pages * static_cast<uint64_t>(kPage > 0 ? kPage : 4096);
    g.cpu_seconds += static_cast<double>(st->utime + st->stime + st->cutime + st->cstime) /
                     static_cast<double>(kTck > 0 ? kTck : 100);
    g.processes += 1;
  }
  ::closedir(dir);
  return out;
}

namespace {

// Reads a /proc file relative to dirfd into buf (one read: these files are small).
ssize_t ReadAt(int dfd, const char* rel, char* buf, size_t size) {
  int fd = ::openat(dfd, rel, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return -1;
  }
  ssize_t r;
  do {
    r = ::read(fd, buf, size);
  } while (r < 0 && errno == EINTR);
  ::close(fd);
  return r;
}

void AddUsage(GroupUsage* g, const ProcStat& st) {
  static const long kPage = ::sysconf(_SC_PAGESIZE);
  static const long kTck = ::sysconf(_SC_CLK_TCK);
  g->rss_bytes += st.rss_pages * static_cast<uint64_t>(kPage > 0 ? kPage : 4096);
  g->cpu_seconds += static_cast<double>(st.utime + st.stime + st.cutime + st.cstime) /
                    static_cast<double>(kTck > 0 ? kTck : 100);
  g->processes += 1;
}

// Appends the pids listed in a /proc/P/task/T/children file.
void ParseChildren(std::string_view content, std::vector<pid_t>* out) {
  for (std::string_view w : SplitWs(content)) {
    pid_t c = 0;
    if (ParseNum(w, &c) && c > 0) {
      out->push_back(c);
    }
  }
}

}  // namespace

Result<std::map<pid_t, GroupUsage>> ScanGroupsFromLeaders(const std::vector<pid_t>& pgids,
                                                          const std::string& root) {
  std::string proc = root + "/proc";
  int dfd = ::open(proc.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return Err(ErrnoError("open " + proc, errno));
  }
  std::map<pid_t, GroupUsage> out;
  char path[128];
  std::string buf(4096, '\0');
  std::vector<pid_t> todo;
  for (pid_t pgid : pgids) {
    if (pgid <= 0 || out.count(pgid) != 0) {
      continue;
    }
    todo.assign(1, pgid);
    GroupUsage g;
    bool leader_alive = false;
    for (size_t i = 0; i < todo.size() && i < 100000; ++i) {
      pid_t pid = todo[i];
      (void)std::snprintf(path, sizeof path, "%d/stat", pid);
      ssize_t r = ReadAt(dfd, path, buf.data(), buf.size());
      if (r <= 0) {
        continue;  // exited meanwhile
      }
      auto st = ParseProcPidStat(std::string_view(buf.data(), static_cast<size_t>(r)));
      if (!st || st->state == 'Z') {
        continue;
      }
      if (i == 0) {
        leader_alive = true;
      }
      if (st->pgrp == pgid) {  // a descendant that moved to another group is not ours
        AddUsage(&g, *st);
      }
      // Children are listed per thread; most processes have one.
      if (st->num_threads <= 1) {
        (void)std::snprintf(path, sizeof path, "%d/task/%d/children", pid, pid);
        ssize_t c = ReadAt(dfd, path, buf.data(), buf.size());
        if (c > 0) {
          ParseChildren(std::string_view(buf.data(), static_cast<size_t>(c)), &todo);
        }
        continue;
      }
      std::string task_dir = proc + "/" + std::to_string(pid) + "/task";
      DIR* tasks = ::opendir(task_dir.c_str());
      if (tasks == nullptr) {
        continue;
      }
      while (struct dirent* e = ::readdir(tasks)) {
        pid_t tid = 0;
        if (!ParseNum(std::string_view(e->d_name), &tid)) {
          continue;
        }
        char cpath[128];
        (void)std::snprintf(cpath, sizeof cpath, "%d/task/%d/children", pid, tid);
        ssize_t c = ReadAt(dfd, cpath, buf.data(), buf.size());
        if (c > 0) {
          ParseChildren(std::string_view(buf.data(), static_cast<size_t>(c)), &todo);
        }
      }
      ::closedir(tasks);
    }
    if (leader_alive) {
      out[pgid] = g;
    }
  }
  ::close(dfd);
  return out;
}

void to_json(nlohmann::json& j, const HostStats& s) {
  j = nlohmann::json{
      {"cpus", s.cpus},
      {"cpu_limit", s.cpu_limit ? nlohmann::json(*s.cpu_limit) : nlohmann::json(nullptr)},
      {"memory_bytes", s.memory_bytes},
      {"memory_limit_bytes",
       s.memory_limit_bytes ? nlohmann::json(*s.memory_limit_bytes) : nlohmann::json(nullptr)},
      {"cgroup", s.cgroup},
      {"load", {s.load[0], s.load[1], s.load[2]}},
      {"swap_total_bytes", s.swap_total_bytes},
      {"swap_used_bytes", s.swap_used_bytes},
      {"memory_available_bytes", s.memory_available_bytes}};
}

void to_json(nlohmann::json& j, const HostSample& s) {
  to_json(j, s.stats);
  j["at"] = FormatWallTime(s.at);
  j["cpu_busy_ratio"] =
      s.cpu_busy_ratio ? nlohmann::json(*s.cpu_busy_ratio) : nlohmann::json(nullptr);
}

void to_json(nlohmann::json& j, const ServiceSample& s) {
  j = nlohmann::json{
      {"at", FormatWallTime(s.at)}, {"rss_bytes", s.rss_bytes}, {"cpu_seconds", s.cpu_seconds}};
}

Trend ComputeTrend(const std::vector<std::pair<double, double>>& pts) {
  Trend t;
  t.samples = pts.size();
  if (pts.empty()) {
    return t;
  }
  t.first = pts.front().second;
  t.last = pts.back().second;
  t.span_seconds = pts.back().first - pts.front().first;
  if (pts.size() < 2) {
    return t;
  }
  double n = static_cast<double>(pts.size());
  double mx = 0, my = 0;
  for (const auto& [x, y] : pts) {
    mx += x, my += y;
  }
  mx /= n;
  my /= n;
  double sxx = 0, sxy = 0;
  for (const auto& [x, y] : pts) {
    sxx += (x - mx) * (x - mx);
    sxy += (x - mx) * (y - my);
  }
  if (sxx <= 0) {
    return t;
  }
  t.slope_per_second = sxy / sxx;
  return t;
}

namespace {
std::vector<std::pair<double, double>> Points(const std::vector<ServiceSample>& s, bool rss) {
  std::vector<std::pair<double, double>> pts;
  if (s.empty()) {
    return pts;
  }
  WallTime t0 = s.front().at;
  for (const auto& x : s) {
    pts.emplace_back(ToSeconds(x.at - t0), rss ? static_cast<double>(x.rss_bytes) : x.cpu_seconds);
  }
  return pts;
}
}  // namespace

Trend RssTrend(const std::vector<ServiceSample>& samples) {
  return ComputeTrend(Points(samples, true));
}
Trend CpuRateTrend(const std::vector<ServiceSample>& samples) {
  return ComputeTrend(Points(samples, false));
}

StatsSampler::StatsSampler(Options opts) : opts_(std::move(opts)), host_(opts_.capacity) {
  if (opts_.interval <= Duration::zero()) {
    opts_.interval = std::chrono::seconds(10);
  }
}

ServiceSample StatsSampler::Unpack(const Packed& p) {
  ServiceSample s;
  s.at =
      WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(p.at_ms)));
  s.rss_bytes = static_cast<uint64_t>(p.rss_kib) * 1024;
  s.cpu_seconds = p.cpu_seconds;
  return s;
}

Result<bool> StatsSampler::Step(MonoTime now, WallTime wall,
                                const std::map<std::string, pid_t>& services) {
  if (sampled_ && now < next_due_) {
    return false;
  }
  CB_TRY_VOID(SampleNow(now, wall, services));
  return true;
}

Result<void> StatsSampler::SampleNow(MonoTime now, WallTime wall,
                                     const std::map<std::string, pid_t>& services) {
  sampled_ = true;
  next_due_ = now + opts_.interval;
  // Forget services that are gone.
  for (auto it = services_.begin(); it != services_.end();) {
    it = services.count(it->first) ? std::next(it) : services_.erase(it);
  }
  if (samples_since_cgroup_ == 0 || samples_since_cgroup_ >= 60) {
    CB_TRY(cgroup_, DetectCgroupLimits(opts_.root));
    samples_since_cgroup_ = 0;
  }
  ++samples_since_cgroup_;
  CB_TRY(HostStats hs, ReadHostStats(opts_.root, &cgroup_));
  HostSample h{wall, hs, std::nullopt};
  if (auto stat = ReadSmallFile(opts_.root + "/proc/stat")) {
    if (auto cpu = ParseProcStatCpu(*stat)) {
      if (prev_cpu_) {
        h.cpu_busy_ratio = CpuBusyRatio(*prev_cpu_, *cpu);
      }
      prev_cpu_ = *cpu;
    }
  }
  host_.Push(h);

  bool any = false;
  for (const auto& [name, pgid] : services) {
    any = any || pgid > 0;
  }
  if (!any) {
    return Ok();
  }
  std::vector<pid_t> pgids;
  for (const auto& [name, pgid] : services) {
    if (pgid > 0) {
      pgids.push_back(pgid);
    }
  }
  CB_TRY(auto groups, ScanGroupsFromLeaders(pgids, opts_.root));
  int64_t at_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
  for (const auto& [name, pgid] : services) {
    if (pgid <= 0) {
      continue;
    }
    auto g = groups.find(pgid);
    if (g == groups.end()) {
      continue;  // exited between the supervisor's view and the scan
    }
    auto [it, inserted] = services_.try_emplace(name, opts_.capacity);
    uint64_t kib = g->second.rss_bytes / 1024;
    it->second.Push(Packed{at_ms, static_cast<uint32_t>(std::min<uint64_t>(kib, UINT32_MAX)),
                           static_cast<float>(g->second.cpu_seconds)});
  }
  return Ok();
}

std::vector<ServiceSample> StatsSampler::ServiceHistory(const std::string& name, size_t n) const {
  std::vector<ServiceSample> out;
  auto it = services_.find(name);
  if (it == services_.end()) {
    return out;
  }
  for (const auto& p : it->second.Last(n)) {
    out.push_back(Unpack(p));
  }
  return out;
}

std::optional<ServiceSample> StatsSampler::LatestService(const std::string& name) const {
  auto it = services_.find(name);
  if (it == services_.end() || it->second.empty()) {
    return std::nullopt;
  }
  return Unpack(it->second.back());
}

std::optional<HostSample> StatsSampler::LatestHost() const {
  if (host_.empty()) {
    return std::nullopt;
  }
  return host_.back();
}

Result<nlohmann::json> StatsSampler::StatsJson(size_t n) const {
  nlohmann::json j;
  if (host_.empty()) {
    CB_TRY(HostStats h, ReadHostStats(opts_.root));
    j["host"] = h;
  } else {
    j["host"] = host_.back().stats;
  }
  j["history"] = nlohmann::json::array();
  for (const auto& s : host_.Last(n)) {
    j["history"].push_back(s);
  }
  j["services"] = nlohmann::json::object();
  for (const auto& [name, ring] : services_) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& p : ring.Last(n)) {
      arr.push_back(Unpack(p));
    }
    j["services"][name] = std::move(arr);
  }
  return j;
}

}  // namespace cb
