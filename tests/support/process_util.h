// Small helpers shared by the integration-test harnesses: files, /proc liveness, polling with a
// deadline, and running a binary (no shell) with its output captured and a timeout that kills
// it by PID. Header-only; every helper is safe to call from the test thread only.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cb::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}
// The non-empty lines of `text`.
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l)) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}
// `s` without trailing newlines, carriage returns and spaces.
inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}
// True while `pid` exists and is neither a zombie nor dead (from /proc/PID/stat).
inline bool Alive(pid_t pid) {
  if (pid <= 0) return false;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' &&
         stat[close + 2] != 'X';
}
// Polls `cond` every 20 ms until it holds or `seconds` pass; returns its last value.
inline bool WaitFor(const std::function<bool()>& cond, double seconds) {
  using SteadyClock = std::chrono::steady_clock;
  auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                      std::chrono::duration<double>(seconds));
  while (SteadyClock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

struct RunResult {
  int rc = -1;  // exit code, or 128 + signal
  std::string out, err;
};

struct RunOptions {
  std::string input;                 // standard input ("" reads as empty)
  double timeout = 20;               // then SIGKILL and a test failure
  std::vector<std::string> env;      // "KEY=value" additions
  bool own_process_group = false;    // setpgid(0,0) in the child; the timeout kills the group
};

// Runs argv (no shell) and waits for it, with stdout and stderr captured.
inline RunResult RunProcess(const std::vector<std::string>& argv, const RunOptions& opt = {}) {
  char tmpl[] = "/tmp/cbit-run-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string in = dir + "/in", out = dir + "/out", err = dir + "/err";
  WriteFile(in, opt.input);
  pid_t pid = fork();
  if (pid == 0) {
    if (opt.own_process_group) setpgid(0, 0);
    int i = open(in.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    for (const auto& kv : opt.env) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> av;
    for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  RunResult r;
  int status = 0;
  bool done = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, opt.timeout);
  if (!done) {
    if (opt.own_process_group) kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "timed out: " << argv[0] << " " << (argv.size() > 1 ? argv[1] : "");
  }
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  unlink(in.c_str());
  unlink(out.c_str());
  unlink(err.c_str());
  rmdir(dir.c_str());
  return r;
}

}  // namespace cb::testing
