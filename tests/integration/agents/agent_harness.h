// Test harness for cbagent integration tests: a temp dir, the real cbagent binary started as
// `serve`, `ctl`/`rpc` runs with captured output, and a guard that kills by PID, at the end of
// every test (pass or fail), the agent AND every service process group it ever reported.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cb::it {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline std::string Bin() { return std::string(CBCTL_BIN_DIR) + "/cbagent"; }

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
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) out.push_back(l);
  return out;
}
inline bool Alive(pid_t pid) {
  if (pid <= 0) return false;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' &&
         stat[close + 2] != 'X';
}
// Polls `cond` every 20 ms until it holds or `seconds` pass.
inline bool WaitFor(const std::function<bool()>& cond, double seconds) {
  auto end = Clock::now() +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

struct RunResult {
  int rc = -1;
  std::string out, err;
};

// Runs argv (no shell) with `input` on stdin; kills it after `timeout` seconds.
inline RunResult Run(const std::vector<std::string>& argv, const std::string& input = "",
                     double timeout = 20) {
  char tmpl[] = "/tmp/cbit-run-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string in = dir + "/in", out = dir + "/out", err = dir + "/err";
  WriteFile(in, input);
  pid_t pid = fork();
  if (pid == 0) {
    int i = open(in.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> av;
    for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  RunResult r;
  int status = 0;
  bool done = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
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

// One test's world: temp dir, agent processes, cleanup of everything by PID.
class AgentWorld {
 public:
  AgentWorld() {
    char tmpl[] = "/tmp/cbit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    state_ = dir_ + "/st";
  }
  ~AgentWorld() {
    // Learn every service pid we can, then kill agent(s) and groups.
    Harvest();
    for (pid_t p : agents_) {
      kill(p, SIGKILL);
      int st;
      waitpid(p, &st, 0);
    }
    Harvest();
    for (pid_t p : service_pids_) {
      if (p > 1) kill(-p, SIGKILL);
      if (p > 1) kill(p, SIGKILL);
    }
    for (pid_t p : extra_pids_)
      if (p > 1) kill(p, SIGKILL);
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }

  const std::string& dir() const { return dir_; }
  const std::string& state() const { return state_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Starts `cbagent serve` and waits until its socket answers. Returns its pid.
  // `uid` >= 0: run the agent as that user (the test must be root).
  pid_t Serve(const std::vector<std::string>& extra = {}, int uid = -1) {
    std::string log = dir_ + "/agent.stderr";
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);  // its own group: a test's kill does not hit the test runner
      int devnull = open("/dev/null", O_RDONLY);
      int e = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(devnull, 0);
      dup2(e, 1);
      dup2(e, 2);
      if (uid >= 0 &&
          (setgid(static_cast<gid_t>(uid)) != 0 || setuid(static_cast<uid_t>(uid)) != 0))
        _exit(126);
      std::vector<std::string> args = {Bin(), "serve", "--state-dir", state_};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      execv(av[0], av.data());
      _exit(127);
    }
    agents_.push_back(pid);
    bool up = WaitFor(
        [&] {
          int st;
          if (waitpid(pid, &st, WNOHANG) == pid) return true;  // died
          return Ctl({"ps"}, false).rc == 0;
        },
        10);
    EXPECT_TRUE(up && Alive(pid)) << "agent did not come up: " << ReadFile(log);
    return pid;
  }
  std::string AgentLog() const { return ReadFile(dir_ + "/agent.stderr"); }

  void Kill9(pid_t agent) {
    kill(agent, SIGKILL);
    int st;
    waitpid(agent, &st, 0);
  }
  void Term(pid_t agent) {
    kill(agent, SIGTERM);
    int st;
    waitpid(agent, &st, 0);
  }

  RunResult Ctl(const std::vector<std::string>& args, bool harvest = true,
                const std::string& input = "") {
    std::vector<std::string> argv = {Bin(), "ctl", "--state-dir", state_};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = Run(argv, input);
    (void)harvest;
    return r;
  }
  RunResult Rpc(const std::string& input) {
    return Run({Bin(), "rpc", "--state-dir", state_}, input);
  }

  // Writes a service file and applies it; asserts success.
  RunResult Apply(const std::string& yaml, const std::vector<std::string>& extra = {}) {
    std::string f = dir_ + "/services-" + std::to_string(++files_) + ".yaml";
    WriteFile(f, yaml);
    std::vector<std::string> args = {"apply", "-f", f};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Ctl(args);
    Harvest();
    return r;
  }

  // `ctl ps -o json` as a map name -> status. Records pids for the cleanup.
  std::map<std::string, json> Ps() {
    RunResult r = Ctl({"ps", "-o", "json"});
    std::map<std::string, json> out;
    if (r.rc != 0) return out;
    json j = json::parse(r.out, nullptr, false);
    if (!j.is_array()) return out;
    for (auto& s : j) {
      if (s["pid"].is_number_integer()) service_pids_.insert(s["pid"].get<pid_t>());
      out[s["name"].get<std::string>()] = s;
    }
    return out;
  }
  json PsOf(const std::string& name) {
    auto m = Ps();
    return m.count(name) ? m[name] : json();
  }
  std::string StateOf(const std::string& name) {
    json s = PsOf(name);
    return s.is_object() ? s["state"].get<std::string>() : "";
  }
  pid_t PidOf(const std::string& name) {
    json s = PsOf(name);
    return s.is_object() && s["pid"].is_number_integer() ? s["pid"].get<pid_t>() : 0;
  }
  // Pids the test learned by other means (grandchildren) to kill at the end.
  void Track(pid_t p) { extra_pids_.insert(p); }

 private:
  // Reads pids from state.json too (works without an agent).
  void Harvest() {
    json j = json::parse(ReadFile(state_ + "/state.json"), nullptr, false);
    if (j.is_object() && j.contains("services") && j["services"].is_array())
      for (auto& s : j["services"])
        if (s.contains("pid") && s["pid"].is_number_integer())
          service_pids_.insert(s["pid"].get<pid_t>());
  }

  std::string dir_, state_;
  std::vector<pid_t> agents_;
  std::set<pid_t> service_pids_, extra_pids_;
  int files_ = 0;
};

}  // namespace cb::it
