// cbagent: the per-host supervisor. Thin: parses flags, wires the real implementations.
//   cbagent serve --state-dir DIR [--stats-interval 10s] [--log-max-size 10MB] [--log-keep 3]
//                 [--log-check-interval 5s]
//   cbagent rpc --state-dir DIR [--start-agent]  (stdin/stdout <-> STATE_DIR/agent.sock;
//               --start-agent: start a detached `serve` first when none answers)
//   cbagent ctl --state-dir DIR apply -f FILE [--force] | ps [-o json] | logs NAME [-f]
//               [--tail N] | start|stop|restart|reset NAME | spec | stats
// Exit codes: 0 ok, 1 failed, 64 usage, 69 no agent reachable.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "agents/client.h"
#include "core/service.h"
#include "core/service_file.h"
#include "core/units.h"

namespace {

using nlohmann::json;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 64;
constexpr int kExitUnavailable = 69;

const char* kUsage =
    "usage:\n"
    "  cbagent serve --state-dir DIR [--stats-interval 10s] [--log-max-size 10MB]\n"
    "                [--log-keep 3] [--log-check-interval 5s]\n"
    "  cbagent rpc --state-dir DIR [--start-agent]\n"
    "  cbagent ctl --state-dir DIR apply -f FILE [--force]\n"
    "  cbagent ctl --state-dir DIR ps [-o json]\n"
    "  cbagent ctl --state-dir DIR logs NAME [-f] [--tail N]\n"
    "  cbagent ctl --state-dir DIR start|stop|restart|reset NAME\n"
    "  cbagent ctl --state-dir DIR spec | stats [-o json]\n"
    "  cbagent version\n";

int Usage(const std::string& msg) {
  if (!msg.empty()) {
    (void)std::fprintf(stderr, "cbagent: %s\n", msg.c_str());
  }
  (void)std::fputs(kUsage, stderr);
  return kExitUsage;
}

int Fail(const cb::Error& e) {
  (void)std::fprintf(stderr, "cbagent: %s\n", e.message.c_str());
  return e.code == cb::Code::kUnavailable ? kExitUnavailable : kExitFailed;
}

// Flags with a value, flags without, and positionals.
struct Args {
  std::map<std::string, std::string> opts;
  std::vector<std::string> pos;
  std::string error;
};

Args Parse(int argc, char** argv, int start, const std::vector<std::string>& with_value,
           const std::vector<std::string>& boolean) {
  Args a;
  for (int i = start; i < argc; ++i) {
    std::string s = argv[i];
    if (s.size() > 1 && s[0] == '-') {
      std::string key = s, val;
      bool has_eq = false;
      if (auto eq = s.find('='); eq != std::string::npos && s.rfind("--", 0) == 0) {
        key = s.substr(0, eq);
        val = s.substr(eq + 1);
        has_eq = true;
      }
      if (std::find(with_value.begin(), with_value.end(), key) != with_value.end()) {
        if (!has_eq) {
          if (i + 1 >= argc) {
            a.error = "option " + key + " needs a value";
            return a;
          }
          val = argv[++i];
        }
        a.opts[key] = val;
      } else if (std::find(boolean.begin(), boolean.end(), key) != boolean.end()) {
        a.opts[key] = "1";
      } else {
        a.error = "unknown option '" + s + "'";
        return a;
      }
    } else {
      a.pos.push_back(s);
    }
  }
  return a;
}

int Serve(int argc, char** argv) {
  Args a = Parse(
      argc, argv, 2,
      {"--state-dir", "--stats-interval", "--log-max-size", "--log-keep", "--log-check-interval"},
      {});
  if (!a.error.empty()) {
    return Usage(a.error);
  }
  if (!a.pos.empty()) {
    return Usage("unexpected argument '" + a.pos[0] + "'");
  }
  if (!a.opts.count("--state-dir")) {
    return Usage("serve needs --state-dir DIR");
  }
  cb::AgentOptions o;
  o.state_dir = a.opts["--state-dir"];
  auto dur = [&](const char* flag, cb::Duration* out) -> bool {
    if (!a.opts.count(flag)) {
      return true;
    }
    auto d = cb::ParseDuration(a.opts[flag]);
    if (!d || d->count() <= 0) {
      Usage(std::string(flag) + ": expected a positive duration like 10s or 500ms, found '" +
            a.opts[flag] + "'");
      return false;
    }
    *out = *d;
    return true;
  };
  if (!dur("--stats-interval", &o.stats_interval)) {
    return kExitUsage;
  }
  if (!dur("--log-check-interval", &o.log_check_interval)) {
    return kExitUsage;
  }
  if (a.opts.count("--log-max-size")) {
    auto s = cb::ParseSize(a.opts["--log-max-size"]);
    if (!s || *s == 0) {
      return Usage("--log-max-size: expected a size like 10MB, found '" + a.opts["--log-max-size"] +
                   "'");
    }
    o.log_max_bytes = *s;
  }
  if (a.opts.count("--log-keep")) {
    try {
      o.log_keep = std::stoi(a.opts["--log-keep"]);
    } catch (...) {
      o.log_keep = -1;
    }
    if (o.log_keep < 0) {
      return Usage("--log-keep: expected a number >= 0");
    }
  }
  auto agent = cb::Agent::Create(o);
  if (!agent) {
    return Fail(agent.error());
  }
  return (*agent)->Run();
}

// Starts `cbagent serve --state-dir DIR` detached (own session, stdin /dev/null, output
// appended to DIR/agent.log), for `rpc --start-agent` over SSH.
cb::Result<void> StartDetachedAgent(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return cb::Err(cb::ErrnoError("cannot create state dir " + dir, errno));
  }
  std::string log = dir + "/agent.log";
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    return cb::Err(cb::ErrnoError("readlink /proc/self/exe", errno));
  }
  self[n] = 0;
  pid_t pid = fork();
  if (pid < 0) {
    return cb::Err(cb::ErrnoError("fork", errno));
  }
  if (pid == 0) {
    setsid();
    if (fork() != 0) {
      _exit(0);  // the agent is not our child: nothing to reap
    }
    int in = open("/dev/null", O_RDONLY);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0) {
      _exit(127);
    }
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execl(self, "cbagent", "serve", "--state-dir", dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  return cb::Ok();
}

int Rpc(int argc, char** argv) {
  Args a = Parse(argc, argv, 2, {"--state-dir"}, {"--start-agent"});
  if (!a.error.empty()) {
    return Usage(a.error);
  }
  if (!a.opts.count("--state-dir")) {
    return Usage("rpc needs --state-dir DIR");
  }
  std::string dir = a.opts["--state-dir"];
  auto fd = cb::ConnectAgentSocket(dir);
  if (!fd && fd.error().code == cb::Code::kUnavailable && a.opts.count("--start-agent")) {
    if (auto st = StartDetachedAgent(dir); !st) {
      return Fail(st.error());
    }
    for (int i = 0; i < 250 && !fd; ++i) {  // up to 5 s
      usleep(20000);
      fd = cb::ConnectAgentSocket(dir);
    }
    if (!fd) {
      (void)std::fprintf(stderr,
                         "cbagent: started an agent but it did not answer; see %s/agent.log\n",
                         dir.c_str());
    }
  }
  if (!fd) {
    return Fail(fd.error());
  }
  int s = *fd;
  bool stdin_open = true;
  char buf[65536];
  for (;;) {
    pollfd p[2] = {{s, POLLIN, 0}, {0, static_cast<short>(stdin_open ? POLLIN : 0), 0}};
    int n = poll(p, stdin_open ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return kExitFailed;
    }
    if (p[0].revents) {
      ssize_t r = read(s, buf, sizeof buf);
      if (r <= 0) {
        return 0;  // the agent closed: done
      }
      ssize_t off = 0;
      while (off < r) {
        ssize_t w = write(1, buf + off, static_cast<size_t>(r - off));
        if (w < 0 && errno == EINTR) {
          continue;
        }
        if (w <= 0) {
          return kExitFailed;
        }
        off += w;
      }
    }
    if (stdin_open && p[1].revents) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r <= 0) {
        stdin_open = false;
        shutdown(s, SHUT_WR);  // the agent answers what it got, then closes
        continue;
      }
      ssize_t off = 0;
      while (off < r) {
        ssize_t w = send(s, buf + off, static_cast<size_t>(r - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
          continue;
        }
        if (w <= 0) {
          return kExitFailed;
        }
        off += w;
      }
    }
  }
}

std::string ExitText(const json& e) {
  if (e.is_null()) {
    return "-";
  }
  if (e.contains("code")) {
    return "code " + e["code"].dump();
  }
  if (e.contains("signal")) {
    return "SIG" + e["signal"].get<std::string>();
  }
  return "unknown";
}

std::string Uptime(double s) {
  if (s <= 0) {
    return "-";
  }
  return cb::FormatDurationHuman(cb::Seconds(s));
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) {
        w.push_back(0);
      }
      w[i] = std::max(w[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) {
        line += std::string(w[i] - r[i].size() + 2, ' ');
      }
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string StatusLine(const json& s) {
  std::string out = s["name"].get<std::string>() + ": " + s["state"].get<std::string>();
  if (!s["pid"].is_null()) {
    out += " (pid " + s["pid"].dump() + ")";
  }
  if (!s["last_error"].is_null()) {
    out += " — " + s["last_error"].get<std::string>();
  }
  return out;
}

int Ctl(int argc, char** argv) {
  // `-f` is the file for apply and --follow for logs: parse as a flag first, and again with a
  // value when the command is apply.
  Args a = Parse(argc, argv, 2, {"--state-dir", "--file", "-o", "--output", "--tail"},
                 {"--force", "--follow", "-f"});
  if (a.error.empty() && !a.pos.empty() && a.pos[0] == "apply") {
    a = Parse(argc, argv, 2, {"--state-dir", "-f", "--file", "-o", "--output", "--tail"},
              {"--force"});
  }
  if (!a.error.empty()) {
    return Usage(a.error);
  }
  if (!a.opts.count("--state-dir")) {
    return Usage("ctl needs --state-dir DIR");
  }
  if (a.pos.empty()) {
    return Usage("ctl needs a command");
  }
  std::string dir = a.opts["--state-dir"];
  std::string cmd = a.pos[0];
  std::string output = a.opts.count("-o")         ? a.opts["-o"]
                       : a.opts.count("--output") ? a.opts["--output"]
                                                  : "table";
  if (output != "table" && output != "json") {
    return Usage("-o: expected table or json, found '" + output + "'");
  }

  if (cmd == "apply") {
    std::string file = a.opts.count("-f")       ? a.opts["-f"]
                       : a.opts.count("--file") ? a.opts["--file"]
                                                : "";
    if (file.empty()) {
      return Usage("apply needs -f FILE");
    }
    if (a.pos.size() > 1) {
      return Usage("unexpected argument '" + a.pos[1] + "'");
    }
    auto specs = cb::LoadServiceFile(file);
    if (!specs) {
      std::string text = cb::FormatProblems(specs.error());
      while (!text.empty() && text.back() == '\n') {
        text.pop_back();
      }
      (void)std::fprintf(stderr, "%s\ncbagent: %s: %zu problem(s); nothing applied\n", text.c_str(),
                         file.c_str(), specs.error().size());
      return kExitFailed;
    }
    json list = json::array();
    for (const auto& s : *specs) {
      json j;
      to_json(j, s);
      list.push_back(j);
    }
    auto client = cb::AgentClient::Connect(dir);
    if (!client) {
      return Fail(client.error());
    }
    auto r =
        (*client)->Call("apply", json{{"services", list}, {"force", a.opts.count("--force") > 0}});
    if (!r) {
      return Fail(r.error());
    }
    if (output == "json") {
      std::printf("%s\n", r->dump(2).c_str());
    } else {
      for (const char* k : {"started", "restarted", "stopped", "unchanged"}) {
        std::string names;
        for (const auto& n : (*r)[k]) {
          names += (names.empty() ? "" : ", ") + n.get<std::string>();
        }
        std::printf("%-10s %s\n", (std::string(k) + ":").c_str(),
                    names.empty() ? "-" : names.c_str());
      }
    }
    if (r->contains("warnings")) {
      for (const auto& w : (*r)["warnings"]) {
        (void)std::fprintf(stderr, "cbagent: warning: %s\n", w.get<std::string>().c_str());
      }
    }
    return 0;
  }

  // Usage errors before connecting, so they are not hidden by "no agent running".
  static const std::vector<std::string> kNamed = {"start", "stop", "restart", "reset", "logs"};
  bool named = std::find(kNamed.begin(), kNamed.end(), cmd) != kNamed.end();
  if (!named && cmd != "ps" && cmd != "spec" && cmd != "stats") {
    return Usage("unknown ctl command '" + cmd + "'");
  }
  if (named && a.pos.size() != 2) {
    return Usage(cmd + " needs exactly one service NAME");
  }
  if (!named && a.pos.size() != 1) {
    return Usage("unexpected argument '" + a.pos[1] + "'");
  }

  auto client = cb::AgentClient::Connect(dir);
  if (!client) {
    return Fail(client.error());
  }
  auto& c = **client;

  if (cmd == "ps") {
    auto r = c.Call("ps", json::object());
    if (!r) {
      return Fail(r.error());
    }
    if (output == "json") {
      std::printf("%s\n", (*r)["services"].dump(2).c_str());
    } else {
      std::vector<std::vector<std::string>> rows = {
          {"NAME", "STATE", "PID", "RESTARTS", "FAILS", "UPTIME", "LAST-EXIT", "INFO"}};
      for (const auto& s : (*r)["services"]) {
        std::string info;
        if (!s["next_start_at"].is_null()) {
          info = fmt::format("next start in {:.1f}s", s.value("next_start_in_seconds", 0.0));
        }
        if (s["adopted"].get<bool>()) {
          info += (info.empty() ? "" : "; ") + std::string("adopted");
        }
        if (!s["last_error"].is_null()) {
          info += (info.empty() ? "" : "; ") + s["last_error"].get<std::string>();
        }
        rows.push_back({s["name"].get<std::string>(), s["state"].get<std::string>(),
                        s["pid"].is_null() ? "-" : s["pid"].dump(), s["restarts"].dump(),
                        s["consecutive_failures"].dump(), Uptime(s["uptime_seconds"].get<double>()),
                        ExitText(s["last_exit"]), info});
      }
      PrintTable(rows);
    }
    if (r->contains("state_file_problem")) {
      (void)std::fprintf(stderr, "cbagent: warning: %s\n",
                         (*r)["state_file_problem"].get<std::string>().c_str());
    }
    return 0;
  }
  if (cmd == "start" || cmd == "stop" || cmd == "restart" || cmd == "reset") {
    if (a.pos.size() != 2) {
      return Usage(cmd + " needs exactly one service NAME");
    }
    auto r = c.Call(cmd, json{{"name", a.pos[1]}});
    if (!r) {
      return Fail(r.error());
    }
    if (output == "json") {
      std::printf("%s\n", (*r)["service"].dump(2).c_str());
    } else {
      std::printf("%s\n", StatusLine((*r)["service"]).c_str());
    }
    return 0;
  }
  if (cmd == "logs") {
    if (a.pos.size() != 2) {
      return Usage("logs needs exactly one service NAME");
    }
    bool follow = a.opts.count("--follow") > 0 || a.opts.count("-f") > 0;
    int64_t tail = 100;
    if (a.opts.count("--tail")) {
      try {
        tail = std::stoll(a.opts["--tail"]);
      } catch (...) {
        tail = -1;
      }
      if (tail < 0) {
        return Usage("--tail: expected a number >= 0");
      }
    }
    auto r = c.Call("logs", json{{"name", a.pos[1]}, {"tail", tail}, {"follow", follow}});
    if (!r) {
      return Fail(r.error());
    }
    for (const auto& l : (*r)["lines"]) {
      std::printf("%s\n", l.get<std::string>().c_str());
    }
    (void)std::fflush(stdout);
    while (follow) {
      auto m = c.ReadMessage();
      if (!m) {
        return Fail(m.error());
      }
      if (m->contains("error")) {
        (void)std::fprintf(stderr, "cbagent: %s\n",
                           (*m)["error"].value("message", std::string()).c_str());
        continue;
      }
      if (!m->contains("stream")) {
        continue;
      }
      for (const auto& l : (*m)["stream"]["lines"]) {
        std::printf("%s\n", l.get<std::string>().c_str());
      }
      (void)std::fflush(stdout);
    }
    return 0;
  }
  if (cmd == "spec" || cmd == "stats") {
    auto r = c.Call(cmd, json::object());
    if (!r) {
      return Fail(r.error());
    }
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  return Usage("unknown ctl command '" + cmd + "'");
}

}  // namespace

int main(int argc, char** argv) {
  // fds 0-2 must be open: otherwise a socket could land on fd 2 and receive log lines.
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int n = open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        dup2(n, fd);
        close(n);
      }
    }
  }
  if (argc < 2) {
    return Usage("");
  }
  // -h/--help anywhere: the usage on stdout, exit 0 (a request, not a mistake).
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      (void)std::fputs(kUsage, stdout);
      return 0;
    }
  }
  std::string cmd = argv[1];
  if (cmd == "serve") {
    return Serve(argc, argv);
  }
  if (cmd == "rpc") {
    return Rpc(argc, argv);
  }
  if (cmd == "ctl") {
    return Ctl(argc, argv);
  }
  if (cmd == "version" || cmd == "--version") {
    std::printf("%s (protocol %d)\n", cb::kAgentVersion, cb::kProtocolVersion);
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    (void)std::fputs(kUsage, stdout);
    return 0;
  }
  return Usage("unknown command '" + cmd + "'");
}
