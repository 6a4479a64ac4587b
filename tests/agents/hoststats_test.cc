// Host stats: pure parsers, cgroup detection from fixture roots (v2, v1, hybrid, none) and on
// this machine, the process-group scan against real processes, the sampler and trends.
#include "agents/hoststats.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

namespace cb {
namespace hoststats_test {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "cb-hoststats-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // Writes ROOT/rel (creating directories).
  void Put(const std::string& rel, const std::string& content) const {
    fs::path p = fs::path(path_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }

 private:
  std::string path_;
};

constexpr uint64_t kGiB = 1ull << 30;

// ---- parsers ----

TEST(HostStatsParse, CgroupV2CpuMax) {
  EXPECT_EQ(*ParseCgroupV2CpuMax("max 100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(**ParseCgroupV2CpuMax("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(**ParseCgroupV2CpuMax("50000"), 0.5);  // period defaults to 100000
  auto bad = ParseCgroupV2CpuMax("lots 100000");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("lots"), std::string::npos);
  EXPECT_FALSE(ParseCgroupV2CpuMax("100 0"));
  EXPECT_FALSE(ParseCgroupV2CpuMax(""));
}

TEST(HostStatsParse, CgroupV2MemoryMax) {
  EXPECT_EQ(*ParseCgroupV2MemoryMax("max\n"), std::nullopt);
  EXPECT_EQ(**ParseCgroupV2MemoryMax("4294967296\n"), 4 * kGiB);
  EXPECT_FALSE(ParseCgroupV2MemoryMax("4G"));
}

TEST(HostStatsParse, CgroupV1) {
  EXPECT_EQ(*ParseCgroupV1Cpu("-1\n", "100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(**ParseCgroupV1Cpu("200000\n", "100000\n"), 2.0);
  EXPECT_FALSE(ParseCgroupV1Cpu("x", "100000"));
  EXPECT_FALSE(ParseCgroupV1Cpu("100", "0"));
  EXPECT_EQ(*ParseCgroupV1MemoryLimit("9223372036854771712\n"),
            std::nullopt);  // the v1 "unlimited"
  EXPECT_EQ(**ParseCgroupV1MemoryLimit("536870912\n"), 512ull << 20);
  EXPECT_EQ(*ParseCgroupV1MemoryLimit("-1"), std::nullopt);
  EXPECT_FALSE(ParseCgroupV1MemoryLimit("lots"));
}

TEST(HostStatsParse, MemInfo) {
  auto m = ParseMemInfo(
      "MemTotal:       24683784 kB\nMemFree:        24402948 kB\nMemAvailable:   24370104 kB\n"
      "Buffers:            2096 kB\nSwapTotal:        1048576 kB\nSwapFree:          524288 kB\n");
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->total_bytes, 24683784ull * 1024);
  EXPECT_EQ(m->available_bytes, 24370104ull * 1024);
  EXPECT_EQ(m->swap_total_bytes, 1048576ull * 1024);
  EXPECT_EQ(m->swap_free_bytes, 524288ull * 1024);
  // Old kernels without MemAvailable: free + buffers + cached.
  auto old = ParseMemInfo("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 1 kB\nCached: 2 kB\n");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->available_bytes, 13u * 1024);
  EXPECT_FALSE(ParseMemInfo("MemFree: 10 kB\n"));
  auto bad = ParseMemInfo("MemTotal: lots kB\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("MemTotal"), std::string::npos);
}

TEST(HostStatsParse, LoadAvgStatAndCpuList) {
  auto l = ParseLoadAvg("0.02 0.09 0.05 1/96 6014\n");
  ASSERT_TRUE(l);
  EXPECT_DOUBLE_EQ((*l)[0], 0.02);
  EXPECT_DOUBLE_EQ((*l)[2], 0.05);
  EXPECT_FALSE(ParseLoadAvg("0.1 x 0.3"));
  EXPECT_FALSE(ParseLoadAvg(""));

  auto a = ParseProcStatCpu("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->total, 1000u);
  EXPECT_EQ(a->busy, 150u);  // idle and iowait are not busy
  auto b = ParseProcStatCpu("cpu  200 0 100 1400 100 0 0 0 0 0\n");
  ASSERT_TRUE(b);
  EXPECT_DOUBLE_EQ(*CpuBusyRatio(*a, *b), 150.0 / 800.0);
  EXPECT_EQ(CpuBusyRatio(*a, *a), std::nullopt);
  EXPECT_FALSE(ParseProcStatCpu("intr 1 2 3\n"));

  EXPECT_EQ(*ParseCpuList("0-3,6\n"), 5);
  EXPECT_EQ(*ParseCpuList("0"), 1);
  EXPECT_FALSE(ParseCpuList("3-1"));
  EXPECT_FALSE(ParseCpuList(""));
}

TEST(HostStatsParse, ProcPidStatWithAwkwardComm) {
  // comm may contain spaces and ')'.
  std::string line =
      "4242 (my (weird) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 10 5 20 0 1 0 "
      "123456 10000000 768 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  auto s = ParseProcPidStat(line);
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(s->state, 'S');
  EXPECT_EQ(s->ppid, 1);
  EXPECT_EQ(s->pgrp, 4242);
  EXPECT_EQ(s->utime, 250u);
  EXPECT_EQ(s->stime, 50u);
  EXPECT_EQ(s->cutime, 10u);
  EXPECT_EQ(s->cstime, 5u);
  EXPECT_EQ(s->start_ticks, 123456u);
  EXPECT_EQ(s->rss_pages, 768u);
  EXPECT_FALSE(ParseProcPidStat("garbage"));
  EXPECT_FALSE(ParseProcPidStat("1 (x) S 1 2"));
}

// ---- cgroup detection from fixture roots ----

TEST(HostStatsCgroup, V2FixtureTakesTheTightestLimitUpTheTree) {
  TempDir r;
  r.Put("proc/self/mountinfo",
        "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  r.Put("proc/self/cgroup", "0::/user.slice/app.service\n");
  r.Put("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  r.Put("sys/fs/cgroup/user.slice/cgroup.controllers", "cpu memory pids\n");
  r.Put("sys/fs/cgroup/user.slice/memory.max", "4294967296\n");
  r.Put("sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  r.Put("sys/fs/cgroup/user.slice/app.service/cgroup.controllers", "cpu memory\n");
  r.Put("sys/fs/cgroup/user.slice/app.service/memory.max", "max\n");
  r.Put("sys/fs/cgroup/user.slice/app.service/cpu.max", "150000 100000\n");
  auto l = DetectCgroupLimits(r.path());
  ASSERT_TRUE(l) << l.error().ToString();
  EXPECT_EQ(l->version, "v2");
  ASSERT_TRUE(l->cpu_limit);
  EXPECT_DOUBLE_EQ(*l->cpu_limit, 1.5);
  EXPECT_EQ(l->cpu_source, r.path() + "/sys/fs/cgroup/user.slice/app.service/cpu.max");
  ASSERT_TRUE(l->memory_limit_bytes);
  EXPECT_EQ(*l->memory_limit_bytes, 4 * kGiB);  // from the parent: the child says "max"
  EXPECT_EQ(l->memory_source, r.path() + "/sys/fs/cgroup/user.slice/memory.max");
}

TEST(HostStatsCgroup, V1Fixture) {
  TempDir r;
  r.Put("proc/self/mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n");
  r.Put("proc/self/cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n");
  r.Put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
  r.Put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  r.Put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  r.Put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  r.Put("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "2147483648\n");
  r.Put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  auto l = DetectCgroupLimits(r.path());
  ASSERT_TRUE(l) << l.error().ToString();
  EXPECT_EQ(l->version, "v1");
  ASSERT_TRUE(l->cpu_limit);
  EXPECT_DOUBLE_EQ(*l->cpu_limit, 2.5);
  ASSERT_TRUE(l->memory_limit_bytes);
  EXPECT_EQ(*l->memory_limit_bytes, 2 * kGiB);
}

// The shape of the build machine: a cgroup2 mount whose controllers lack cpu and memory, next
// to v1 mounts that have them. Each resource falls back to v1.
TEST(HostStatsCgroup, HybridFallsBackToV1PerResource) {
  TempDir r;
  r.Put("proc/self/mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  r.Put("proc/self/cgroup", "4:memory:/process_api/ad60\n1:cpu:/\n0::/\n");
  r.Put("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
  r.Put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  r.Put("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  r.Put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  r.Put("sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "9223372036854771712\n");
  r.Put("sys/fs/cgroup/memory/process_api/ad60/memory.limit_in_bytes", "1073741824\n");
  auto l = DetectCgroupLimits(r.path());
  ASSERT_TRUE(l) << l.error().ToString();
  EXPECT_EQ(l->version, "v1");
  EXPECT_EQ(l->cpu_limit, std::nullopt);
  ASSERT_TRUE(l->memory_limit_bytes);
  EXPECT_EQ(*l->memory_limit_bytes, kGiB);
  // Now give v2 the memory controller: memory comes from v2, CPU still from v1.
  r.Put("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb memory\n");
  r.Put("sys/fs/cgroup/unified/memory.max", "max\n");
  r.Put("proc/self/cgroup", "4:memory:/process_api/ad60\n1:cpu:/\n0::/svc\n");
  r.Put("sys/fs/cgroup/unified/svc/cgroup.controllers", "memory\n");
  r.Put("sys/fs/cgroup/unified/svc/memory.max", "536870912\n");
  r.Put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "50000\n");
  auto l2 = DetectCgroupLimits(r.path());
  ASSERT_TRUE(l2) << l2.error().ToString();
  EXPECT_EQ(l2->version, "v2");
  EXPECT_EQ(*l2->memory_limit_bytes, 512ull << 20);
  ASSERT_TRUE(l2->cpu_limit);
  EXPECT_DOUBLE_EQ(*l2->cpu_limit, 0.5);
}

TEST(HostStatsCgroup, NoCgroupsAndBadFiles) {
  TempDir r;
  r.Put("proc/self/mountinfo", "22 1 0:21 / / rw - ext4 /dev/vda rw\n");
  auto l = DetectCgroupLimits(r.path());
  ASSERT_TRUE(l);
  EXPECT_EQ(l->version, "none");
  EXPECT_FALSE(l->cpu_limit);
  EXPECT_FALSE(l->memory_limit_bytes);

  TempDir bad;
  bad.Put("proc/self/mountinfo", "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  bad.Put("proc/self/cgroup", "0::/\n");
  bad.Put("sys/fs/cgroup/cgroup.controllers", "memory\n");
  bad.Put("sys/fs/cgroup/memory.max", "lots\n");
  auto e = DetectCgroupLimits(bad.path());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Code::kInvalidArgument);
  EXPECT_NE(e.error().message.find("memory.max"), std::string::npos) << e.error().message;

  auto missing = DetectCgroupLimits("/nonexistent-root");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent-root/proc/self/mountinfo"),
            std::string::npos);
}

// What actually runs on this machine: read the same files independently and check that the
// detection made the same choice. On the build host (cgroup2 mounted without cpu/memory, v1
// memory mounted) this is the v1 fallback.
TEST(HostStatsCgroup, RealMachine) {
  auto l = DetectCgroupLimits();
  ASSERT_TRUE(l) << l.error().ToString();
  std::ifstream mi("/proc/self/mountinfo");
  std::string line, v2_mount;
  bool v1_memory = false;
  while (std::getline(mi, line)) {
    if (line.find(" - cgroup2 ") != std::string::npos) {
      std::istringstream ss(line);
      std::string a, b, c, d, mp;
      ss >> a >> b >> c >> d >> mp;
      if (v2_mount.empty()) v2_mount = mp;
    }
    if (line.find(" - cgroup ") != std::string::npos &&
        (line.find(",memory") != std::string::npos)) {
      v1_memory = true;
    }
  }
  std::string v2_ctrls;
  if (!v2_mount.empty()) std::getline(std::ifstream(v2_mount + "/cgroup.controllers"), v2_ctrls);
  bool v2_useful =
      v2_ctrls.find("memory") != std::string::npos || v2_ctrls.find("cpu") != std::string::npos;
  if (v2_useful) {
    EXPECT_EQ(l->version, "v2");
  } else if (v1_memory) {
    EXPECT_EQ(l->version, "v1") << "v2 controllers: \"" << v2_ctrls << "\"";
    EXPECT_NE(l->memory_source.empty() && l->memory_limit_bytes.has_value(), true);
  } else {
    EXPECT_EQ(l->version, "none");
  }
  auto eff = DetectEffectiveResources();
  ASSERT_TRUE(eff) << eff.error().ToString();
  EXPECT_GE(eff->cpus, 0.01);
  EXPECT_LE(eff->cpus, static_cast<double>(std::thread::hardware_concurrency()));
  EXPECT_GT(eff->memory_bytes, 0u);
}

TEST(HostStatsHost, FixtureRootAndRealHost) {
  TempDir r;
  r.Put("proc/meminfo",
        "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\nSwapTotal: 1000 kB\nSwapFree: 400 kB\n");
  r.Put("proc/loadavg", "1.50 0.75 0.25 2/100 123\n");
  r.Put("sys/devices/system/cpu/online", "0-7\n");
  r.Put("proc/self/mountinfo", "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  r.Put("proc/self/cgroup", "0::/a\n");
  r.Put("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  r.Put("sys/fs/cgroup/a/cgroup.controllers", "cpu memory\n");
  r.Put("sys/fs/cgroup/a/cpu.max", "200000 100000\n");
  r.Put("sys/fs/cgroup/a/memory.max", "1073741824\n");
  auto h = ReadHostStats(r.path());
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_DOUBLE_EQ(h->cpus, 8);
  EXPECT_EQ(h->cgroup, "v2");
  EXPECT_DOUBLE_EQ(*h->cpu_limit, 2.0);
  EXPECT_EQ(*h->memory_limit_bytes, kGiB);
  EXPECT_EQ(h->memory_bytes, 8000000ull * 1024);
  EXPECT_EQ(h->memory_available_bytes, 6000000ull * 1024);
  EXPECT_EQ(h->swap_used_bytes, 600u * 1024);
  EXPECT_DOUBLE_EQ(h->load[0], 1.5);
  auto eff = DetectEffectiveResources(r.path());
  ASSERT_TRUE(eff);
  EXPECT_DOUBLE_EQ(eff->cpus, 2.0);
  EXPECT_EQ(eff->memory_bytes, kGiB);

  nlohmann::json j = *h;
  EXPECT_EQ(j["cgroup"], "v2");
  EXPECT_EQ(j["cpu_limit"], 2.0);
  EXPECT_EQ(j["memory_limit_bytes"], kGiB);
  EXPECT_EQ(j["load"].size(), 3u);
  for (const char* k :
       {"cpus", "memory_bytes", "swap_total_bytes", "swap_used_bytes", "memory_available_bytes"})
    EXPECT_TRUE(j.contains(k)) << k;

  auto real = ReadHostStats();
  ASSERT_TRUE(real) << real.error().ToString();
  EXPECT_GE(real->cpus, 1);
  EXPECT_GT(real->memory_bytes, 0u);
  EXPECT_LE(real->memory_available_bytes, real->memory_bytes);

  TempDir broken;
  broken.Put("proc/meminfo", "nothing here\n");
  auto e = ReadHostStats(broken.path());
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("MemTotal"), std::string::npos);
}

// ---- processes ----

// A real process group: a leader and a child, both sleeping. The scan finds both.
TEST(HostStatsProcess, ScanSumsTheProcessGroup) {
  pid_t leader = ::fork();
  ASSERT_GE(leader, 0);
  if (leader == 0) {
    ::setpgid(0, 0);
    if (::fork() == 0) {
      ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  struct Guard {
    pid_t pgid;
    ~Guard() {
      ::kill(-pgid, SIGKILL);
      ::kill(pgid, SIGKILL);
      ::waitpid(pgid, nullptr, 0);
    }
  } guard{leader};
  ::setpgid(leader, leader);  // also from the parent, so the group exists before we scan
  GroupUsage g;
  for (int i = 0; i < 100 && g.processes < 2; ++i) {
    auto groups = ScanProcessGroups();
    ASSERT_TRUE(groups) << groups.error().ToString();
    auto it = groups->find(leader);
    if (it != groups->end()) g = it->second;
    if (g.processes < 2) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(g.processes, 2);
  EXPECT_GT(g.rss_bytes, 0u);
  EXPECT_GE(g.cpu_seconds, 0.0);
  // Walking from the leader finds the same group. The two processes may still be between fork
  // and exec (RSS of a copy of this test binary) when the first scan sees them, so compare the
  // two scans until the group has settled; a walker that sums differently never agrees.
  bool agreed = false;
  for (int i = 0; i < 250 && !agreed; ++i) {
    auto walked = ScanGroupsFromLeaders({leader, 999999999});
    ASSERT_TRUE(walked) << walked.error().ToString();
    ASSERT_TRUE(walked->count(leader));
    EXPECT_FALSE(walked->count(999999999));  // no such leader
    auto full = ScanProcessGroups();
    ASSERT_TRUE(full) << full.error().ToString();
    ASSERT_TRUE(full->count(leader));
    agreed = walked->at(leader).processes == 2 && full->at(leader).processes == 2 &&
             walked->at(leader).rss_bytes == full->at(leader).rss_bytes;
    if (!agreed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(agreed) << "the leader walk and the full scan never agreed on the group's usage";
  auto self = ScanProcessGroups();
  ASSERT_TRUE(self);
  EXPECT_TRUE(self->count(::getpgrp()));
  EXPECT_FALSE(ScanProcessGroups("/nonexistent-root"));
}

TEST(HostStatsProcess, ScanFromFixture) {
  TempDir r;
  r.Put("proc/10/stat", "10 (a) S 1 10 10 0 -1 0 0 0 0 0 100 100 0 0 20 0 1 0 5 0 10 0\n");
  r.Put("proc/11/stat", "11 (b c) S 10 10 10 0 -1 0 0 0 0 0 50 50 100 0 20 0 1 0 6 0 20 0\n");
  r.Put("proc/12/stat",
        "12 (z) Z 10 10 10 0 -1 0 0 0 0 0 50 50 0 0 20 0 1 0 6 0 0 0\n");  // zombie: skipped
  r.Put("proc/13/stat", "13 (other) S 1 13 13 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 7 0 5 0\n");
  r.Put("proc/self/stat", "not a pid dir\n");
  r.Put("proc/14/stat", "garbage\n");
  auto g = ScanProcessGroups(r.path());
  ASSERT_TRUE(g) << g.error().ToString();
  ASSERT_TRUE(g->count(10));
  EXPECT_EQ(g->at(10).processes, 2);
  long page = ::sysconf(_SC_PAGESIZE);
  long tck = ::sysconf(_SC_CLK_TCK);
  EXPECT_EQ(g->at(10).rss_bytes, 30u * static_cast<uint64_t>(page));
  EXPECT_DOUBLE_EQ(g->at(10).cpu_seconds, 400.0 / static_cast<double>(tck));
  EXPECT_EQ(g->at(13).processes, 1);
}

TEST(HostStatsProcess, WalkFromLeadersFixture) {
  TempDir r;
  auto stat = [&](int pid, int ppid, int pgrp, int threads, int rss, char state = 'S') {
    r.Put("proc/" + std::to_string(pid) + "/stat",
          std::to_string(pid) + " (p " + std::to_string(pid) + ") " + state + " " +
              std::to_string(ppid) + " " + std::to_string(pgrp) +
              " 1 0 -1 0 0 0 0 0 10 10 0 0 20 0 " + std::to_string(threads) + " 0 5 0 " +
              std::to_string(rss) + " 0\n");
  };
  stat(10, 1, 10, 1, 100);
  r.Put("proc/10/task/10/children", "11 15 ");
  stat(11, 10, 10, 1, 10);
  r.Put("proc/11/task/11/children", "12");
  stat(12, 11, 10, 1, 1);
  stat(15, 10, 15, 1, 1000);  // moved to its own group: not counted for 10
  stat(20, 1, 20, 2, 200);    // two threads: children are listed per thread
  r.Put("proc/20/task/20/children", "");
  r.Put("proc/20/task/21/children", "22 ");
  stat(22, 20, 20, 1, 20);
  stat(40, 1, 40, 1, 7, 'Z');  // a zombie leader counts as gone
  stat(50, 1, 50, 1, 5);       // not asked for
  auto g = ScanGroupsFromLeaders({10, 20, 30, 40}, r.path());
  ASSERT_TRUE(g) << g.error().ToString();
  uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  ASSERT_TRUE(g->count(10));
  EXPECT_EQ(g->at(10).processes, 3);
  EXPECT_EQ(g->at(10).rss_bytes, 111 * page);
  ASSERT_TRUE(g->count(20));
  EXPECT_EQ(g->at(20).processes, 2);
  EXPECT_EQ(g->at(20).rss_bytes, 220 * page);
  EXPECT_FALSE(g->count(30));
  EXPECT_FALSE(g->count(40));
  EXPECT_FALSE(g->count(50));
  EXPECT_FALSE(ScanGroupsFromLeaders({1}, "/nonexistent-root"));
}

// ---- ring buffer, trend, sampler ----

TEST(HostStatsHistory, RingBufferKeepsTheNewest) {
  RingBuffer<int> r(3);
  EXPECT_TRUE(r.empty());
  for (int i = 1; i <= 5; ++i) r.Push(i);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], 3);
  EXPECT_EQ(r.back(), 5);
  EXPECT_EQ(r.Last(2), (std::vector<int>{4, 5}));
  EXPECT_EQ(r.Last(10), (std::vector<int>{3, 4, 5}));
}

TEST(HostStatsHistory, Trend) {
  Trend t = ComputeTrend({{0, 100}, {10, 200}, {20, 300}});
  EXPECT_EQ(t.samples, 3u);
  EXPECT_DOUBLE_EQ(t.slope_per_second, 10.0);
  EXPECT_DOUBLE_EQ(t.first, 100);
  EXPECT_DOUBLE_EQ(t.last, 300);
  EXPECT_DOUBLE_EQ(t.span_seconds, 20);
  EXPECT_DOUBLE_EQ(ComputeTrend({{0, 5}}).slope_per_second, 0);
  EXPECT_DOUBLE_EQ(ComputeTrend({{3, 5}, {3, 9}}).slope_per_second, 0);  // no time span
  EXPECT_EQ(ComputeTrend({}).samples, 0u);

  WallTime t0{};
  std::vector<ServiceSample> s;
  for (int i = 0; i < 6; ++i)
    s.push_back(
        {t0 + std::chrono::seconds(10 * i), 1000000u + 4096u * static_cast<uint64_t>(i), 0.5 * i});
  EXPECT_NEAR(RssTrend(s).slope_per_second, 409.6, 1e-6);
  EXPECT_NEAR(CpuRateTrend(s).slope_per_second, 0.05, 1e-9);
}

// A fixture root the sampler can read and a test can change between samples.
struct FakeHost {
  TempDir r;
  FakeHost() {
    r.Put("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
    r.Put("proc/loadavg", "0.1 0.2 0.3 1/1 1\n");
    r.Put("sys/devices/system/cpu/online", "0-1\n");
    r.Put("proc/self/mountinfo", "22 1 0:21 / / rw - ext4 /dev/vda rw\n");
    SetCpu(0, 1000);
    SetWeb(100, 10);
  }
  void SetCpu(uint64_t busy, uint64_t idle) {
    r.Put("proc/stat",
          "cpu  " + std::to_string(busy) + " 0 0 " + std::to_string(idle) + " 0 0 0 0\n");
  }
  void SetWeb(uint64_t rss_pages, uint64_t utime) {
    r.Put("proc/77/stat", "77 (web) S 1 77 77 0 -1 0 0 0 0 0 " + std::to_string(utime) +
                              " 0 0 0 20 0 1 0 5 0 " + std::to_string(rss_pages) + " 0\n");
  }
};

TEST(HostStatsSampler, SamplesOnScheduleIntoBoundedHistory) {
  FakeHost h;
  StatsSampler s({std::chrono::seconds(10), 4, h.r.path()});
  MonoTime m0{};
  WallTime w0 = WallTime{} + std::chrono::hours(24 * 365 * 56);
  std::map<std::string, pid_t> svcs{{"web", 77}, {"idle", 0}};
  ASSERT_TRUE(*s.Step(m0, w0, svcs));  // the first step always samples
  EXPECT_FALSE(*s.Step(m0 + std::chrono::seconds(9), w0, svcs));
  EXPECT_EQ(s.next_due(), m0 + std::chrono::seconds(10));
  long page = ::sysconf(_SC_PAGESIZE);
  for (int i = 1; i <= 6; ++i) {
    h.SetWeb(100 + 10 * static_cast<uint64_t>(i), 10 + static_cast<uint64_t>(i));
    h.SetCpu(100 * static_cast<uint64_t>(i), 1000 + 100 * static_cast<uint64_t>(i));
    ASSERT_TRUE(
        *s.Step(m0 + std::chrono::seconds(10 * i), w0 + std::chrono::seconds(10 * i), svcs));
  }
  auto hist = s.HostHistory(100);
  ASSERT_EQ(hist.size(), 4u);  // capacity
  ASSERT_TRUE(hist.back().cpu_busy_ratio);
  EXPECT_DOUBLE_EQ(*hist.back().cpu_busy_ratio, 0.5);
  auto web = s.ServiceHistory("web", 100);
  ASSERT_EQ(web.size(), 4u);
  EXPECT_EQ(web.back().rss_bytes, 160u * static_cast<uint64_t>(page));
  EXPECT_GT(RssTrend(web).slope_per_second, 0);  // RSS growing
  EXPECT_TRUE(s.ServiceHistory("idle", 10).empty());
  ASSERT_TRUE(s.LatestService("web"));
  EXPECT_EQ(s.LatestService("web")->at, w0 + std::chrono::seconds(60));

  auto j = s.StatsJson(2);
  ASSERT_TRUE(j) << j.error().ToString();
  EXPECT_EQ((*j)["history"].size(), 2u);
  EXPECT_TRUE((*j)["history"][1].contains("cpu_busy_ratio"));
  EXPECT_TRUE((*j)["history"][1].contains("at"));
  EXPECT_TRUE((*j)["history"][1].contains("memory_bytes"));
  EXPECT_EQ((*j)["host"]["cgroup"], "none");
  ASSERT_EQ((*j)["services"]["web"].size(), 2u);
  EXPECT_EQ((*j)["services"]["web"][1]["rss_bytes"], 160u * static_cast<uint64_t>(page));
  EXPECT_TRUE((*j)["services"]["web"][1]["at"].get<std::string>().ends_with("Z"));

  // A service dropped from the map loses its history.
  ASSERT_TRUE(*s.Step(m0 + std::chrono::seconds(70), w0, {{"idle", 0}}));
  EXPECT_TRUE(s.ServiceHistory("web", 10).empty());
}

TEST(HostStatsSampler, ReadErrorIsReturnedNotFatal) {
  FakeHost h;
  StatsSampler s({std::chrono::seconds(10), 4, h.r.path()});
  fs::remove(h.r.path() + "/proc/meminfo");
  auto r = s.Step(MonoTime{}, WallTime{}, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("meminfo"), std::string::npos);
  h.r.Put("proc/meminfo", "MemTotal: 1000 kB\n");
  EXPECT_TRUE(*s.Step(MonoTime{} + std::chrono::seconds(10), WallTime{}, {}));
}

}  // namespace
}  // namespace hoststats_test
}  // namespace cb
