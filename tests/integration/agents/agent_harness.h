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
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process_util.h"

namespace cb::it {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline std::string Bin() { return std::string(CBCTL_BIN_DIR) + "/cbagent"; }

using cb::testing::Alive;
using cb::testing::Lines;
using cb::testing::ReadFile;
using cb::testing::RunResult;
using cb::testing::WaitFor;
using cb::testing::WriteFile;

// Runs argv (no shell) with `input` on stdin; kills it after `timeout` seconds.
inline RunResult Run(const std::vector<std::string>& argv, const std::string& input = "",
                     double timeout = 20) {
  return cb::testing::RunProcess(argv, {.input = input, .timeout = timeout});
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

  // A copy of cbagent that another user can execute: the build tree may sit under a directory
  // only root can enter (a clone in a `mktemp -d` dir), so the copy goes into this world's dir,
  // which is opened to 0755.
  std::string BinForOtherUsers() {
    std::string copy = dir_ + "/cbagent";
    if (access(copy.c_str(), X_OK) != 0) {
      chmod(dir_.c_str(), 0755);
      std::filesystem::copy_file(Bin(), copy, std::filesystem::copy_options::overwrite_existing);
      chmod(copy.c_str(), 0755);
    }
    return copy;
  }

  // Starts `cbagent serve` and waits until its socket answers. Returns its pid.
  // `uid` >= 0: run the agent as that user (the test must be root).
  pid_t Serve(const std::vector<std::string>& extra = {}, int uid = -1) {
    std::string log = dir_ + "/agent.stderr";
    std::string bin = uid >= 0 ? BinForOtherUsers() : Bin();
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
      std::vector<std::string> args = {bin, "serve", "--state-dir", state_};
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
