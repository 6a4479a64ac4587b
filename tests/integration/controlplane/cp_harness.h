// Harness for cbctld integration tests: a temp state dir, the real cbctld (init + serve on
// 127.0.0.1:0), the real cbagent it starts, a minimal HTTP/1.1 client (raw loopback socket, so
// the test does not depend on cpp-httplib's build flags), and a guard that stops, by PID, when
// the test ends (pass or fail): every cbctld it started, the agent, and every service process
// group the API ever reported.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process_util.h"

namespace cb::cpit {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

inline std::string BinDir() { return std::string(CBCTL_BIN_DIR); }

using cb::testing::Alive;
using cb::testing::ReadFile;
using cb::testing::RunResult;
using cb::testing::Trim;
using cb::testing::WaitFor;
using cb::testing::WriteFile;

// Pids whose parent is `parent` (from /proc/*/stat).
inline std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string stat = ReadFile(std::string("/proc/") + e->d_name + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream ss(stat.substr(close + 2));
    std::string state;
    long ppid = 0;
    ss >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::atol(e->d_name)));
  }
  closedir(d);
  return out;
}

// Runs argv (no shell) in its own process group, stdin /dev/null (empty), env additions;
// kills the group after `timeout` seconds.
inline RunResult RunCmd(const std::vector<std::string>& argv, double timeout = 20,
                        const std::vector<std::string>& env = {}) {
  return cb::testing::RunProcess(
      argv, {.timeout = timeout, .env = env, .own_process_group = true});
}

struct HttpReply {
  int status = 0;
  std::string headers;
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

// Connects to "127.0.0.1:PORT". Returns -1 on failure.
inline int ConnectTcp(const std::string& addr) {
  auto colon = addr.rfind(':');
  std::string host = addr.substr(0, colon);
  int port = std::atoi(addr.c_str() + colon + 1);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline std::string BuildRequest(const std::string& method, const std::string& path, const std::string& token,
                                const std::string& body, const std::vector<std::string>& headers) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (method == "POST" || method == "DELETE" || !body.empty()) {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  return req;
}

inline bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Decodes a chunked body (best effort).
inline std::string Dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    auto eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t n = std::strtoul(raw.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (n == 0) break;
    out += raw.substr(eol + 2, n);
    pos = eol + 2 + n + 2;
  }
  return out;
}

// One request with Connection: close; waits at most `timeout` seconds.
inline HttpReply Http(const std::string& addr, const std::string& method, const std::string& path,
                      const std::string& token = "", const std::string& body = "",
                      const std::vector<std::string>& headers = {}, double timeout = 30) {
  HttpReply r;
  int fd = ConnectTcp(addr);
  if (fd < 0) return r;
  SendAll(fd, BuildRequest(method, path, token, body, headers));
  std::string raw;
  auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                      std::chrono::duration<double>(timeout));
  char buf[65536];
  while (SteadyClock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  auto sp = raw.find(' ');
  if (sp == std::string::npos) return r;
  r.status = std::atoi(raw.c_str() + sp + 1);
  auto hdr_end = raw.find("\r\n\r\n");
  if (hdr_end == std::string::npos) return r;
  r.headers = raw.substr(0, hdr_end);
  r.body = raw.substr(hdr_end + 4);
  if (r.headers.find("Transfer-Encoding: chunked") != std::string::npos) r.body = Dechunk(r.body);
  return r;
}

// A cbctld world: state dir, cbctld processes, cleanup by PID.
class CpWorld {
 public:
  CpWorld() {
    char tmpl[] = "/tmp/cbcpit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    state_ = dir_ + "/st";
    auto r = RunCmd({BinDir() + "/cbctld", "init", "--state-dir", state_});
    EXPECT_EQ(r.rc, 0) << r.err;
    admin_ = Trim(ReadFile(state_ + "/admin.token"));
    EXPECT_NE(r.out.find(admin_), std::string::npos) << "init prints the token once";
  }
  ~CpWorld() {
    Harvest();
    for (pid_t p : daemons_) {
      kill(p, SIGKILL);
      int st;
      waitpid(p, &st, 0);
    }
    for (pid_t p : agent_pids_) {
      if (p <= 1) continue;
      // Freeze the agent so it cannot restart anything, kill the process group of every child
      // it has (services restarted after our last look included), then the agent.
      kill(p, SIGSTOP);
      for (pid_t c : ChildrenOf(p)) {
        kill(-c, SIGKILL);
        kill(c, SIGKILL);
      }
      kill(p, SIGKILL);
    }
    for (pid_t p : own_agents_) {
      int st;
      waitpid(p, &st, 0);
    }
    for (pid_t p : service_pids_) {
      if (p > 1) {
        kill(-p, SIGKILL);
        kill(p, SIGKILL);
      }
    }
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }

  const std::string& dir() const { return dir_; }
  const std::string& state() const { return state_; }
  const std::string& admin() const { return admin_; }
  const std::string& addr() const { return addr_; }
  pid_t daemon() const { return daemons_.empty() ? 0 : daemons_.back(); }

  // Starts `cbctld serve` on 127.0.0.1:0 and waits for listen.addr and /v1/health.
  // With `tls`, only waits for listen.addr (the plain-HTTP health probe cannot speak TLS).
  pid_t Serve(const std::vector<std::string>& extra = {}, bool tls = false) {
    unlink((state_ + "/listen.addr").c_str());
    std::string log = dir_ + "/cbctld.log";
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      int devnull = open("/dev/null", O_RDONLY);
      int e = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(devnull, 0);
      dup2(e, 1);
      dup2(e, 2);
      std::vector<std::string> args = {BinDir() + "/cbctld", "serve", "--state-dir", state_,
                                       "--listen", "127.0.0.1:0", "--reconcile-interval", "0.5"};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      execv(av[0], av.data());
      _exit(127);
    }
    daemons_.push_back(pid);
    bool up = WaitFor(
        [&] {
          std::string a = Trim(ReadFile(state_ + "/listen.addr"));
          if (a.empty()) return false;
          addr_ = a;
          return tls || Http(addr_, "GET", "/v1/health").status == 200;
        },
        15);
    EXPECT_TRUE(up) << "cbctld did not come up: " << Log();
    return pid;
  }
  // Starts `cbagent serve --state-dir DIR` ourselves (an agent cbctld did not start) and waits
  // for DIR/agent.sock. Stopped by PID at the end like everything else.
  pid_t StartAgent(const std::string& agent_dir) {
    mkdir(agent_dir.c_str(), 0700);
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      int devnull = open("/dev/null", O_RDONLY);
      int e = open((dir_ + "/own-agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(devnull, 0);
      dup2(e, 1);
      dup2(e, 2);
      std::vector<std::string> args = {BinDir() + "/cbagent", "serve", "--state-dir", agent_dir};
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      execv(av[0], av.data());
      _exit(127);
    }
    agent_pids_.insert(pid);
    own_agents_.push_back(pid);
    struct stat st {};
    EXPECT_TRUE(WaitFor([&] { return stat((agent_dir + "/agent.sock").c_str(), &st) == 0; }, 10))
        << ReadFile(dir_ + "/own-agent.log");
    return pid;
  }

  void Kill9Daemon() {
    pid_t p = daemon();
    kill(p, SIGKILL);
    int st;
    waitpid(p, &st, 0);
  }
  std::string Log() const { return ReadFile(dir_ + "/cbctld.log"); }

  HttpReply Get(const std::string& path, const std::string& token) { return Http(addr_, "GET", path, token); }
  HttpReply Post(const std::string& path, const std::string& token, const std::string& body,
                 const std::vector<std::string>& headers = {}) {
    return Http(addr_, "POST", path, token, body, headers);
  }

  static std::string SpecBody(const std::string& yaml) { return json{{"yaml", yaml}, {"filename", "fleet.yaml"}}.dump(); }

  HttpReply Plan(const std::string& yaml, const std::string& token = "") {
    return Post("/v1/spec/plan", token.empty() ? admin_ : token, SpecBody(yaml));
  }
  HttpReply Apply(const std::string& yaml, int64_t generation, const std::string& token = "") {
    auto r = Post("/v1/spec/apply", token.empty() ? admin_ : token, SpecBody(yaml),
                  {"If-Match: " + std::to_string(generation)});
    Harvest();
    return r;
  }

  // name -> service JSON from GET /v1/services (also remembers every pid for cleanup).
  std::map<std::string, json> Services() {
    std::map<std::string, json> out;
    auto r = Get("/v1/services", admin_);
    json j = r.Json();
    if (!j.is_object() || !j.contains("services")) return out;
    for (const auto& s : j["services"]) {
      out[s["name"].get<std::string>()] = s;
      if (s["pid"].is_number()) service_pids_.insert(s["pid"].get<pid_t>());
    }
    auto h = Get("/v1/hosts", admin_).Json();
    if (h.is_object() && h.contains("hosts")) {
      for (const auto& x : h["hosts"]) {
        if (x["agent_pid"].is_number()) agent_pids_.insert(x["agent_pid"].get<pid_t>());
      }
    }
    return out;
  }
  int64_t Pid(const std::string& name) {
    auto s = Services();
    if (!s.count(name) || !s[name]["pid"].is_number()) return 0;
    return s[name]["pid"].get<int64_t>();
  }
  std::string State(const std::string& name) {
    auto s = Services();
    if (!s.count(name)) return "";
    return s[name]["state"].get<std::string>();
  }
  bool WaitRunning(const std::vector<std::string>& names, double seconds = 15) {
    return WaitFor(
        [&] {
          auto s = Services();
          for (const auto& n : names) {
            if (!s.count(n) || s[n]["state"] != "running" || !s[n]["pid"].is_number()) return false;
          }
          return true;
        },
        seconds);
  }
  void Harvest() { (void)Services(); }

  // The value of one series line of /metrics ("cbctld_reconcile_duration_seconds_count"), -1
  // when absent.
  int64_t Stats(const std::string& series) {
    std::string body = Get("/metrics", admin_).body;
    std::string key = "\n" + series + " ";
    auto pos = body.find(key);
    if (pos == std::string::npos) return -1;
    return std::atoll(body.c_str() + pos + key.size());
  }

  // Creates a token with `scope`; returns its secret.
  std::string Token(const std::string& name, const std::string& scope) {
    auto r = Post("/v1/tokens", admin_, json{{"name", name}, {"scope", scope}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Json().value("secret", "");
  }

 private:
  std::string dir_, state_, admin_, addr_;
  std::vector<pid_t> daemons_;
  std::set<pid_t> agent_pids_;
  std::vector<pid_t> own_agents_;  // our children: reaped
  std::set<pid_t> service_pids_;
};

}  // namespace cb::cpit
