// Log capture: rotation (collapse-range and copy-truncate), Tail across rotated files, the
// follower across rotation, truncation and replacement, with a writer appending concurrently.
#include "agents/logfile.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cb {
namespace logfile_test {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "cb-logfile-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Append(const std::string& p, const std::string& data) {
  int fd = OpenForChild(p.c_str());
  ASSERT_GE(fd, 0) << p;
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

std::string Lines(int from, int to) {  // "line from\n" .. "line to-1\n"
  std::string s;
  for (int i = from; i < to; ++i) s += "line " + std::to_string(i) + "\n";
  return s;
}

// The whole stream: NAME.log.K .. NAME.log.1, NAME.log concatenated.
std::string Stream(const std::string& log) {
  int k = 0;
  while (fs::exists(RotatedPath(log, k + 1))) ++k;
  std::string s;
  for (int i = k; i >= 1; --i) s += ReadFile(RotatedPath(log, i));
  return s + ReadFile(log);
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '\n') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// Whether this temp filesystem can collapse ranges (ext4/xfs yes, tmpfs no).
bool CollapseSupported(const std::string& dir) {
  std::string p = dir + "/probe";
  Append(p, std::string(3 * 4096 + 10, 'x'));
  auto r = MaybeRotate(p, 1, 0);
  fs::remove(p);
  return r && r->method == RotateResult::kCollapse;
}

TEST(LogFile, PathLayout) {
  EXPECT_EQ(LogDir("/s"), "/s/logs");
  EXPECT_EQ(LogPath("/s", "web"), "/s/logs/web.log");
  EXPECT_EQ(RotatedPath("/s/logs/web.log", 0), "/s/logs/web.log");
  EXPECT_EQ(RotatedPath("/s/logs/web.log", 2), "/s/logs/web.log.2");
  TempDir d;
  ASSERT_TRUE(EnsureLogDir(d.path()));
  ASSERT_TRUE(EnsureLogDir(d.path()));  // idempotent
  EXPECT_TRUE(fs::is_directory(d.path() + "/logs"));
}

TEST(LogFile, EnsureLogDirReportsWhere) {
  TempDir d;
  Append(d.path() + "/logs", "a file, not a dir");
  auto r = EnsureLogDir(d.path());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(d.path() + "/logs"), std::string::npos) << r.error().message;
  auto r2 = EnsureLogDir("/proc/nonexistent-dir/x");
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("/proc/nonexistent-dir/x/logs"), std::string::npos);
}

TEST(LogFile, OpenForChildAppendsWithoutCloexec) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  int fd = OpenForChild(p.c_str());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_APPEND, 0);
  ::close(fd);
  auto r = OpenForAppend(p);
  ASSERT_TRUE(r);
  EXPECT_NE(::fcntl(*r, F_GETFD) & FD_CLOEXEC, 0);
  ::close(*r);
  EXPECT_EQ(OpenForChild("/nonexistent-dir/x.log"), -1);
  auto bad = OpenForAppend("/nonexistent-dir/x.log");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("/nonexistent-dir/x.log"), std::string::npos);
}

TEST(LogFile, MissingFileIsNotAnError) {
  TempDir d;
  std::string p = d.path() + "/none.log";
  auto r = MaybeRotate(p, 10, 3);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->method, RotateResult::kNone);
  auto t = Tail(p, 10);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->empty());
  LogFollower f(p);
  auto lines = f.Poll();
  ASSERT_TRUE(lines);
  EXPECT_TRUE(lines->empty());
  Append(p, "first\nsecond\n");  // created after the follower started: read from its start
  lines = f.Poll();
  ASSERT_TRUE(lines);
  EXPECT_EQ(*lines, (std::vector<std::string>{"first", "second"}));
}

TEST(LogFile, BelowThresholdDoesNothing) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 10));
  auto r = MaybeRotate(p, 1 << 20, 3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->method, RotateResult::kNone);
  EXPECT_EQ(r->live_bytes, Lines(0, 10).size());
  EXPECT_FALSE(fs::exists(RotatedPath(p, 1)));
}

void RotationKeepsN(bool allow_collapse) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  int next = 0;
  for (int round = 0; round < 6; ++round) {
    Append(p, Lines(next, next + 2000));  // ~20 KB per round
    next += 2000;
    auto r = MaybeRotate(p, 8192, 2, allow_collapse);
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_NE(r->method, RotateResult::kNone);
    if (!allow_collapse) {
      EXPECT_EQ(r->method, RotateResult::kCopyTruncate);
    }
    EXPECT_GT(r->moved_bytes, 0u);
    EXPECT_EQ(fs::file_size(RotatedPath(p, 1)), r->moved_bytes);
  }
  EXPECT_TRUE(fs::exists(RotatedPath(p, 1)));
  EXPECT_TRUE(fs::exists(RotatedPath(p, 2)));
  EXPECT_FALSE(fs::exists(RotatedPath(p, 3)));
  EXPECT_FALSE(fs::exists(RotatedPath(p, 1) + ".tmp"));
  // What is kept is a contiguous, in-order tail of what was written (single writer: no loss).
  std::string all = Lines(0, next);
  std::string kept = Stream(p);
  ASSERT_GE(all.size(), kept.size());
  EXPECT_EQ(all.substr(all.size() - kept.size()), kept);
}

TEST(LogFile, RotationKeepsNFilesCopyTruncate) { RotationKeepsN(false); }

TEST(LogFile, RotationKeepsNFilesCollapse) {
  TempDir d;
  if (!CollapseSupported(d.path()))
    GTEST_SKIP() << "filesystem of " << d.path() << " cannot collapse ranges";
  RotationKeepsN(true);
}

TEST(LogFile, KeepZeroDropsThePrefix) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 3000));
  auto r = MaybeRotate(p, 4096, 0, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->method, RotateResult::kCopyTruncate);
  EXPECT_EQ(fs::file_size(p), 0u);
  EXPECT_FALSE(fs::exists(RotatedPath(p, 1)));
  EXPECT_FALSE(MaybeRotate(p, 1, -1));  // bad argument: an error, not a crash
}

// A writer appends numbered lines through its own O_APPEND fd (as a child would) while the
// agent rotates again and again. With collapse-range every line survives exactly once, in
// order, in the stream NAME.log.K .. NAME.log.
TEST(LogFile, CollapseLosesNoBytesUnderConcurrentWriter) {
  TempDir d;
  if (!CollapseSupported(d.path()))
    GTEST_SKIP() << "filesystem of " << d.path() << " cannot collapse ranges";
  std::string p = d.path() + "/busy.log";
  // The writer goes on until the rotator has collapsed 20 times (and at least 20000 lines).
  std::atomic<bool> done{false};
  std::atomic<int> collapses{0};
  int written = 0;
  std::thread writer([&] {
    int fd = OpenForChild(p.c_str());
    for (int i = 0; i < 20000 || collapses < 20; ++i) {
      std::string l = "line " + std::to_string(i) + " " + std::string(i % 37, 'x') + "\n";
      if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::abort();
      written = i + 1;
    }
    ::close(fd);
    done = true;
  });
  while (!done) {
    auto r = MaybeRotate(p, 16384, 5000);  // keep everything so the test can count
    ASSERT_TRUE(r) << r.error().ToString();
    if (r->method == RotateResult::kCollapse) ++collapses;
    EXPECT_NE(r->method, RotateResult::kCopyTruncate);
  }
  writer.join();
  const int kLines = written;
  EXPECT_GE(collapses, 20);
  std::vector<std::string> got = Split(Stream(p));
  ASSERT_EQ(got.size(), static_cast<size_t>(kLines));
  for (int i = 0; i < kLines; ++i) {
    ASSERT_EQ(got[i], "line " + std::to_string(i) + " " + std::string(i % 37, 'x')) << "at " << i;
  }
}

TEST(LogFile, TailCrossesIntoRotatedFiles) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 3000));
  ASSERT_TRUE(MaybeRotate(p, 4096, 3));  // collapse cuts mid-line (block boundary) or copytruncate
  Append(p, Lines(3000, 3005));
  auto t = Tail(p, 10);
  ASSERT_TRUE(t) << t.error().ToString();
  std::vector<std::string> want = Split(Lines(2995, 3005));
  EXPECT_EQ(*t, want);
  // More lines than the live file holds: the rest comes from .1, whole lines.
  size_t live_lines = Split(ReadFile(p)).size();
  auto t2 = Tail(p, live_lines + 50);
  ASSERT_TRUE(t2);
  EXPECT_EQ(*t2, Split(Lines(3005 - static_cast<int>(live_lines) - 50, 3005)));
  // Everything there is.
  auto t3 = Tail(p, 100000);
  ASSERT_TRUE(t3);
  EXPECT_EQ(*t3, Split(Lines(0, 3005)));
}

TEST(LogFile, TailIncludesAnUnfinishedLastLineAndHonoursTheByteLimit) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, "one\ntwo\nthree-no-newline");
  auto t = Tail(p, 2);
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (std::vector<std::string>{"two", "three-no-newline"}));
  Append(p, "\n" + Lines(0, 1000));
  auto t2 = Tail(p, 1000, 100);  // 100 bytes hold ~10 lines; the cut one is dropped
  ASSERT_TRUE(t2);
  ASSERT_FALSE(t2->empty());
  EXPECT_LT(t2->size(), 12u);
  EXPECT_EQ(t2->back(), "line 999");
  for (const auto& l : *t2) EXPECT_EQ(l.rfind("line ", 0), 0u) << l;
  EXPECT_TRUE(Tail(p, 0)->empty());
}

TEST(LogFile, InvalidUtf8IsReplaced) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, std::string("ok \xff\xfe end\n\xc3\xa9t\xc3\xa9\n"));
  auto t = Tail(p, 5);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0], "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
  EXPECT_EQ((*t)[1], "\xc3\xa9t\xc3\xa9");
}

TEST(LogFile, FollowerStartsAtTheEndAndHoldsPartialLines) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, "old\n");
  LogFollower f(p);
  EXPECT_TRUE(f.Poll()->empty());
  Append(p, "new 1\nnew ");
  EXPECT_EQ(*f.Poll(), std::vector<std::string>{"new 1"});
  Append(p, "2\n");
  EXPECT_EQ(*f.Poll(), std::vector<std::string>{"new 2"});
  EXPECT_TRUE(f.Poll()->empty());
}

TEST(LogFile, FollowerAcrossTruncation) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 100));
  LogFollower f(p);
  Append(p, Lines(100, 102));
  EXPECT_EQ(*f.Poll(), Split(Lines(100, 102)));
  ::truncate(p.c_str(), 0);  // someone else truncates (e.g. `: > file`)
  Append(p, Lines(200, 203));
  EXPECT_EQ(*f.Poll(), Split(Lines(200, 203)));
}

TEST(LogFile, FollowerAcrossReplacement) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 10));
  LogFollower f(p);
  std::string other = d.path() + "/other";
  Append(other, Lines(50, 52));
  fs::rename(other, p);
  EXPECT_EQ(*f.Poll(), Split(Lines(50, 52)));
}

void FollowerAcrossRotations(bool allow_collapse) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 500));
  LogFollower f(p);
  Append(p, Lines(500, 510));
  EXPECT_EQ(*f.Poll(), Split(Lines(500, 510)));
  // Unread lines, then two rotations before the next poll: nothing missed, nothing twice.
  Append(p, Lines(510, 2000));
  ASSERT_TRUE(MaybeRotate(p, 4096, 5, allow_collapse));
  Append(p, Lines(2000, 3000));
  ASSERT_TRUE(MaybeRotate(p, 4096, 5, allow_collapse));
  Append(p, Lines(3000, 3010));
  EXPECT_EQ(*f.Poll(), Split(Lines(510, 3010)));
  // A rotation right after a poll that consumed everything.
  Append(p, Lines(3010, 4000));
  EXPECT_EQ(*f.Poll(), Split(Lines(3010, 4000)));
  ASSERT_TRUE(MaybeRotate(p, 4096, 5, allow_collapse));
  Append(p, Lines(4000, 4003));
  EXPECT_EQ(*f.Poll(), Split(Lines(4000, 4003)));
}

TEST(LogFile, FollowerAcrossCopyTruncateRotations) { FollowerAcrossRotations(false); }

TEST(LogFile, FollowerAcrossCollapseRotations) {
  TempDir d;
  if (!CollapseSupported(d.path()))
    GTEST_SKIP() << "filesystem of " << d.path() << " cannot collapse ranges";
  FollowerAcrossRotations(true);
}

// Writer, rotator and follower at once: the follower sees every line once, in order.
TEST(LogFile, FollowerSeesEveryLineWhileRotatingUnderLoad) {
  TempDir d;
  if (!CollapseSupported(d.path()))
    GTEST_SKIP() << "filesystem of " << d.path() << " cannot collapse ranges";
  std::string p = d.path() + "/a.log";
  Append(p, "");
  LogFollower f(p);
  std::atomic<bool> done{false};
  std::atomic<int> rotations{0};
  int written = 0;
  std::thread writer([&] {
    int fd = OpenForChild(p.c_str());
    for (int i = 0; i < 20000 || rotations < 20; ++i) {
      std::string l = "line " + std::to_string(i) + "\n";
      if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::abort();
      written = i + 1;
    }
    ::close(fd);
    done = true;
  });
  std::vector<std::string> seen;
  auto poll = [&] {
    auto r = f.Poll();
    ASSERT_TRUE(r) << r.error().ToString();
    seen.insert(seen.end(), r->begin(), r->end());
  };
  while (!done) {
    auto r = MaybeRotate(p, 8192, 4);
    ASSERT_TRUE(r) << r.error().ToString();
    if (r->method != RotateResult::kNone) ++rotations;
    if (rotations % 2 == 0) poll();  // sometimes two rotations between polls
  }
  writer.join();
  poll();
  const int kLines = written;
  EXPECT_GE(rotations, 20);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kLines));
  for (int i = 0; i < kLines; ++i) ASSERT_EQ(seen[i], "line " + std::to_string(i));
}

TEST(LogFile, InterruptedRotationIsRecovered) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  // As if an agent died after cutting the live file but before installing the copy.
  Append(RotatedPath(p, 1) + ".tmp", Lines(0, 10));
  Append(RotatedPath(p, 1), "older\n");
  Append(p, Lines(10, 12));
  // A check below the threshold only stat()s: the copy waits for the next real rotation.
  auto quiet = MaybeRotate(p, 1 << 20, 3);
  ASSERT_TRUE(quiet);
  EXPECT_EQ(quiet->method, RotateResult::kNone);
  EXPECT_EQ(quiet->live_bytes, Lines(10, 12).size());
  auto r = MaybeRotate(p, 1, 3);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_NE(r->method, RotateResult::kNone);
  EXPECT_FALSE(fs::exists(RotatedPath(p, 1) + ".tmp"));
  EXPECT_EQ(Stream(p), "older\n" + Lines(0, 12));  // nothing lost, order kept
}

// A real child process whose stdout is the log file (as the launcher sets it up), rotated
// while it writes: with collapse-range every line of its output is kept, in order.
TEST(LogFile, RealChildOutputSurvivesRotation) {
  TempDir d;
  if (!CollapseSupported(d.path())) {
    GTEST_SKIP() << "filesystem of " << d.path() << " cannot collapse ranges";
  }
  std::string p = d.path() + "/child.log";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = OpenForChild(p.c_str());
    if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(126);
    ::execl("/usr/bin/seq", "seq", "1", "400000", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  struct Reap {
    pid_t pid;
    int status = -1;
    ~Reap() {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } child{pid};
  int rotations = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &child.status, WNOHANG);
    auto rot = MaybeRotate(p, 32768, 10000);
    ASSERT_TRUE(rot) << rot.error().ToString();
    if (rot->method != RotateResult::kNone) ++rotations;
    if (r == pid) {
      child.pid = 0;
      break;
    }
  }
  ASSERT_TRUE(WIFEXITED(child.status));
  ASSERT_EQ(WEXITSTATUS(child.status), 0);
  EXPECT_GT(rotations, 0);
  std::vector<std::string> got = Split(Stream(p));
  ASSERT_EQ(got.size(), 400000u);
  for (int i = 0; i < 400000; ++i) {
    ASSERT_EQ(got[static_cast<size_t>(i)], std::to_string(i + 1)) << "line " << i;
  }
}

// On a filesystem without collapse-range (tmpfs) rotation falls back to copy-truncate.
TEST(LogFile, FallsBackToCopyTruncateOnTmpfs) {
  struct statfs sfs {};
  if (::statfs("/dev/shm", &sfs) != 0 || sfs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  }
  std::string dir = "/dev/shm/cb-logfile-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  std::string p = dir + "/a.log";
  Append(p, Lines(0, 3000));
  auto r = MaybeRotate(p, 4096, 2);
  std::string kept = Stream(p);
  fs::remove_all(dir);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->method, RotateResult::kCopyTruncate);
  EXPECT_EQ(kept, Lines(0, 3000));
}

// A follower far behind (more than it reads per poll) skips ahead and says so in a line.
TEST(LogFile, FollowerFarBehindSkipsAheadAndSaysSo) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, "");
  LogFollower f(p);
  std::string big;
  for (int i = 0; i < 600000; ++i) big += "line " + std::to_string(i) + "\n";  // ~6.5 MB
  Append(p, big);
  auto lines = f.Poll();
  ASSERT_TRUE(lines) << lines.error().ToString();
  ASSERT_FALSE(lines->empty());
  EXPECT_NE(lines->front().find("bytes skipped"), std::string::npos) << lines->front();
  EXPECT_EQ(lines->back(), "line 599999");
  EXPECT_LT(lines->size(), 600000u);
}

TEST(LogFile, TailThenFollowHoldsThePartialLineForTheFollower) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  Append(p, Lines(0, 10) + "par");
  auto tf = TailThenFollow(p, 3);
  ASSERT_TRUE(tf) << tf.error().ToString();
  EXPECT_EQ(tf->lines, Split(Lines(7, 10)));
  EXPECT_TRUE(tf->follower->Poll()->empty());
  Append(p, "tial\n" + Lines(10, 11));
  EXPECT_EQ(*tf->follower->Poll(), (std::vector<std::string>{"partial", "line 10"}));

  auto none = TailThenFollow(d.path() + "/later.log", 5);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->lines.empty());
  Append(d.path() + "/later.log", "first\n");
  EXPECT_EQ(*none->follower->Poll(), std::vector<std::string>{"first"});
}

// Tail + follow taken while a writer appends and the agent rotates: the tail and what the
// follower yields afterwards join into the whole output, nothing twice, nothing missed.
TEST(LogFile, TailThenFollowJoinsExactlyUnderConcurrentWrites) {
  TempDir d;
  std::string p = d.path() + "/a.log";
  std::atomic<int> progress{0};
  std::atomic<bool> done{false};
  std::thread writer([&] {
    int fd = OpenForChild(p.c_str());
    for (int i = 0; i < 40000; ++i) {
      std::string l = "line " + std::to_string(i) + "\n";
      if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
        std::abort();
      }
      progress = i;
    }
    ::close(fd);
    done = true;
  });
  while (progress < 5000) {
    std::this_thread::yield();
  }
  auto tf = TailThenFollow(p, 1000000, 64u << 20);
  ASSERT_TRUE(tf) << tf.error().ToString();
  std::vector<std::string> seen = tf->lines;
  while (!done) {
    ASSERT_TRUE(MaybeRotate(p, 65536, 1000));
    auto r = tf->follower->Poll();
    ASSERT_TRUE(r) << r.error().ToString();
    seen.insert(seen.end(), r->begin(), r->end());
  }
  writer.join();
  auto r = tf->follower->Poll();
  ASSERT_TRUE(r);
  seen.insert(seen.end(), r->begin(), r->end());
  ASSERT_EQ(seen.size(), 40000u);
  for (int i = 0; i < 40000; ++i) {
    ASSERT_EQ(seen[static_cast<size_t>(i)], "line " + std::to_string(i));
  }
}

}  // namespace
}  // namespace logfile_test
}  // namespace cb
