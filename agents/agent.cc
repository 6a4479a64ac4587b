#include "agents/agent.h"

#include <fcntl.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "agents/hoststats.h"
#include "agents/real_launcher.h"
#include "agents/state_store.h"
#include "agents/supervisor.h"
#include "core/service.h"

namespace cb {

using nlohmann::json;

namespace {

enum Kind : uint64_t { kListen = 1, kSignal = 2, kTimer = 3, kConn = 4, kPidfd = 5 };
uint64_t Tag(Kind k, uint64_t v) { return (static_cast<uint64_t>(k) << 56) | v; }
Kind TagKind(uint64_t t) { return static_cast<Kind>(t >> 56); }
uint64_t TagValue(uint64_t t) { return t & ((1ull << 56) - 1); }

void Log(const std::string& msg) {
  std::string line = FormatWallTime(RealClock::Get()->WallNow()) + " cbagent: " + msg + "\n";
  ssize_t n = write(2, line.data(), line.size());
  (void)n;
}

json Opt(const std::optional<WallTime>& t) { return t ? json(FormatWallTime(*t)) : json(nullptr); }

}  // namespace

std::string AgentSocketPath(const std::string& state_dir) { return state_dir + "/agent.sock"; }

Result<void> CheckSocketPathLength(const std::string& path) {
  sockaddr_un a{};
  if (path.size() >= sizeof(a.sun_path)) {
    return Err(Code::kInvalidArgument,
               "socket path '{}' is {} bytes; a unix socket path must be shorter than {} bytes "
               "(use a shorter --state-dir)",
               path, path.size(), sizeof(a.sun_path));
  }
  return Ok();
}

struct Agent::Impl {
  struct Conn {
    int fd = -1;
    std::string in, out;
    bool closing = false;   // close once `out` is flushed
    bool want_out = false;  // EPOLLOUT registered
    struct Follow {
      json id;
      std::unique_ptr<LogFollower> follower;
    };
    std::vector<Follow> follows;
  };

  AgentOptions opts;
  std::string sock_path;
  Clock* clock = RealClock::Get();
  int lock_fd = -1, listen_fd = -1, epoll_fd = -1, signal_fd = -1, timer_fd = -1;
  std::map<int, Conn> conns;
  std::unique_ptr<RealLauncher> launcher;
  std::unique_ptr<Supervisor> sup;
  std::unique_ptr<StatsSampler> sampler;
  std::mt19937_64 rng{std::random_device{}()};
  std::optional<std::string> owner;
  std::string state_problem;  // a corrupt state file found at start
  uint64_t saved_generation = ~0ull;
  bool owner_dirty = true;
  std::string last_save_error;
  MonoTime next_log_check{};
  MonoTime next_follow_poll{};
  bool stop = false;
  bool trim_wanted = false;
  std::set<int> flush_after_save;  // connections with replies waiting for the state save
  // After a start by request, one stats sample soon, so `ps` shows rss/cpu without waiting a
  // whole --stats-interval.
  std::optional<MonoTime>
      sample_soon;  // a big request/reply was handled: return freed heap afterwards
  std::string hostname;

  ~Impl() {
    for (auto& [fd, c] : conns) {
      close(fd);
    }
    for (int fd : {listen_fd, epoll_fd, signal_fd, timer_fd}) {
      if (fd >= 0) {
        close(fd);
      }
    }
    if (listen_fd >= 0) {
      unlink(sock_path.c_str());
    }
    if (lock_fd >= 0) {
      close(lock_fd);
    }
  }

  std::string LogPathOf(const std::string& name) const { return LogPath(opts.state_dir, name); }

  void EpollAdd(int fd, uint32_t events, uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      Log(fmt::format("epoll_ctl ADD fd {}: {}", fd, strerror(errno)));
    }
  }

  // ---- persistence ----
  void MaybeSave() {
    if (sup->generation() == saved_generation && !owner_dirty) {
      return;
    }
    AgentState st;
    st.owner = owner;
    st.services = sup->Snapshot(clock->Now(), clock->WallNow());
    auto r = SaveState(opts.state_dir, st, clock->WallNow());
    if (!r) {
      if (r.error().message != last_save_error) {
        Log("ERROR saving state: " + r.error().message);
      }
      last_save_error = r.error().message;
      return;
    }
    last_save_error.clear();
    saved_generation = sup->generation();
    owner_dirty = false;
    // The JSON document and its text are freed now; give the heap back (keeps the agent's RSS
    // small with hundreds of services).
    malloc_trim(0);
  }

  // ---- timer ----
  void ArmTimer() {
    std::optional<MonoTime> next = sup->NextDeadline();
    auto consider = [&](MonoTime t) {
      if (!next || t < *next) {
        next = t;
      }
    };
    consider(sampler->next_due());
    if (sample_soon) {
      consider(*sample_soon);
    }
    consider(next_log_check);
    bool following = false;
    for (auto& [fd, c] : conns) {
      following |= !c.follows.empty();
    }
    if (following) {
      consider(next_follow_poll);
    }
    itimerspec its{};
    if (next) {
      auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch()).count();
      if (ns <= 0) {
        ns = 1;
      }
      its.it_value.tv_sec = ns / 1'000'000'000;
      its.it_value.tv_nsec = ns % 1'000'000'000;
      if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
        its.it_value.tv_nsec = 1;
      }
    }
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, nullptr);
  }

  // ---- connections ----
  void Accept() {
    for (;;) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          Log(fmt::format("accept: {}", strerror(errno)));
        }
        return;
      }
      conns[fd].fd = fd;
      EpollAdd(fd, EPOLLIN | EPOLLRDHUP, Tag(kConn, static_cast<uint64_t>(fd)));
    }
  }

  void CloseConn(int fd) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns.erase(fd);
  }

  // Writes what it can; returns false when the connection was closed.
  bool Flush(Conn& c) {
    while (!c.out.empty()) {
      ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          break;
        }
        CloseConn(c.fd);
        return false;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
    if (c.out.empty() && c.closing) {
      CloseConn(c.fd);
      return false;
    }
    bool want = !c.out.empty();
    if (want != c.want_out) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
      ev.data.u64 = Tag(kConn, static_cast<uint64_t>(c.fd));
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = want;
    }
    if (c.out.size() > (64u << 20)) {  // a client that never reads
      CloseConn(c.fd);
      return false;
    }
    return true;
  }

  void Send(Conn& c, const json& msg) {
    c.out += msg.dump(-1, ' ', false, json::error_handler_t::replace);
    c.out += '\n';
    if (c.out.size() > 32768) {
      trim_wanted = true;
    }
  }

  void OnConnReadable(int fd, Agent* self) {
    auto it = conns.find(fd);
    if (it == conns.end()) {
      return;
    }
    Conn& c = it->second;
    char buf[65536];
    bool eof = false;
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        if (!c.closing) {
          c.in.append(buf, static_cast<size_t>(n));
        }
        if (c.in.size() > 2 * kMaxLineBytes) {
          break;
        }
        continue;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      CloseConn(fd);
      return;
    }
    size_t pos;
    while (!c.closing && (pos = c.in.find('\n')) != std::string::npos) {
      std::string line = c.in.substr(0, pos);
      c.in.erase(0, pos + 1);
      if (line.size() > 32768) {
        trim_wanted = true;
      }
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      if (line.find_first_not_of(" \t") == std::string::npos) {
        continue;  // blank line
      }
      if (line.size() > kMaxLineBytes) {
        Send(c, ErrorReply(nullptr, Code::kInvalidArgument,
                           fmt::format("line of {} bytes exceeds the limit of {} bytes; closing",
                                       line.size(), kMaxLineBytes)));
        c.closing = true;
        break;
      }
      json reply = self->HandleLine(line, fd);
      auto again = conns.find(fd);  // the handler does not close, but be safe
      if (again == conns.end()) {
        return;
      }
      if (!reply.is_null()) {
        Send(c, reply);
      }
    }
    if (!c.closing && c.in.size() > kMaxLineBytes) {
      Send(c,
           ErrorReply(nullptr, Code::kInvalidArgument,
                      fmt::format("line exceeds the limit of {} bytes; closing", kMaxLineBytes)));
      c.closing = true;
      c.in.clear();
    }
    if (eof) {
      // The client is gone (or half-closed): answer what was asked (a last line without its
      // '\n' too), then close.
      if (!c.closing && c.in.find_first_not_of(" \t\r") != std::string::npos) {
        std::string line;
        line.swap(c.in);
        if (line.back() == '\r') {
          line.pop_back();
        }
        json reply = self->HandleLine(line, fd);
        if (!reply.is_null()) {
          Send(c, reply);
        }
      }
      c.closing = true;
      c.follows.clear();
    }
    // Replies go out after this step's state save (Agent::Step), so an acknowledged change
    // is on disk.
    flush_after_save.insert(fd);
  }

  // ---- child exits ----
  void OnPidfd(pid_t pid) {
    auto st = launcher->Reap(pid);
    if (!st) {
      return;
    }
    MonoTime now = clock->Now();
    std::string name = sup->NameOfPid(pid);
    double uptime = 0;
    if (!name.empty()) {
      if (auto before = sup->StatusOf(name, now, clock->WallNow())) {
        uptime = before->uptime_seconds;
      }
    }
    sup->OnExit(pid, *st, now);
    if (name.empty()) {
      return;
    }
    // A restart that is due now (immediate policy) happens before anything else: logging and
    // the state save (Agent::Step saves before it waits again) come after it.
    sup->Step(now);
    auto after = sup->StatusOf(name, now, clock->WallNow());
    std::string what = after ? std::string(ServiceStateName(after->state)) : "removed";
    if (after && after->next_start_at) {
      what += fmt::format(
          ", next start in {:.2f}s",
          std::chrono::duration<double>(*after->next_start_at - clock->WallNow()).count());
    }
    Log(fmt::format("{} (pid {}) exited after {:.1f}s: {}; now {}", name, pid, uptime,
                    ExitStatusToJson(*st).dump(), what));
  }

  // ---- periodic work ----
  void Housekeeping() {
    MonoTime now = clock->Now();
    if (now >= next_log_check) {
      next_log_check = now + opts.log_check_interval;
      for (const auto& s : sup->Status(now, clock->WallNow())) {
        auto r = MaybeRotate(LogPathOf(s.name), opts.log_max_bytes, opts.log_keep);
        if (!r) {
          Log("log rotation: " + r.error().message);
        }
      }
    }
    if (now >= sampler->next_due() || (sample_soon && now >= *sample_soon)) {
      std::map<std::string, pid_t> groups;
      for (const auto& s : sup->Status(now, clock->WallNow())) {
        groups[s.name] = s.pid;
      }
      auto r = sampler->SampleNow(now, clock->WallNow(), groups);
      if (!r) {
        Log("stats: " + r.error().message);
      }
      sample_soon.reset();
    }
    if (now >= next_follow_poll) {
      next_follow_poll = now + std::chrono::milliseconds(200);
      std::vector<int> fds;
      for (auto& [fd, c] : conns) {
        if (c.follows.empty()) {
          continue;
        }
        for (auto& f : c.follows) {
          auto lines = f.follower->Poll();
          if (!lines) {
            Send(c, ErrorReply(f.id, lines.error().code, lines.error().message));
            continue;
          }
          if (lines->empty()) {
            continue;
          }
          Send(c, json{{"v", kProtocolVersion}, {"id", f.id}, {"stream", {{"lines", *lines}}}});
        }
        fds.push_back(fd);
      }
      for (int fd : fds) {
        auto it = conns.find(fd);
        if (it != conns.end()) {
          Flush(it->second);
        }
      }
    }
  }

  // ---- RPC ----
  static json ErrorReply(const json& id, Code code, const std::string& msg) {
    return json{{"v", kProtocolVersion},
                {"id", id},
                {"error", {{"code", std::string(CodeName(code))}, {"message", msg}}}};
  }

  json StatusJson(const ServiceStatus& s) const {
    json j{
        {"name", s.name},
        {"state", std::string(ServiceStateName(s.state))},
        {"pid", s.pid ? json(s.pid) : json(nullptr)},
        {"restarts", s.restarts},
        {"consecutive_failures", s.consecutive_failures},
        {"next_start_at", Opt(s.next_start_at)},
        {"next_start_in_seconds",
         s.next_start_at
             ? json(std::max(
                   0.0, std::chrono::duration<double>(*s.next_start_at - clock->WallNow()).count()))
             : json(nullptr)},
        {"last_exit", s.last_exit ? ExitStatusToJson(*s.last_exit) : json(nullptr)},
        {"uptime_seconds", s.uptime_seconds},
        {"started_at", Opt(s.started_at)},
        {"adopted", s.adopted},
        {"log_path", LogPathOf(s.name)},
        {"last_error", s.last_error.empty() ? json(nullptr) : json(s.last_error)}};
    auto sample = sampler->LatestService(s.name);
    if (sample && s.pid) {
      j["rss_bytes"] = sample->rss_bytes;
      j["cpu_seconds"] = sample->cpu_seconds;
    } else {
      j["rss_bytes"] = nullptr;
      j["cpu_seconds"] = nullptr;
    }
    return j;
  }

  Result<json> Dispatch(const std::string& method, const json& params, const json& id,
                        int conn_fd) {
    MonoTime now = clock->Now();
    WallTime wall = clock->WallNow();
    if (method == "hello") {
      json r{{"agent", kAgentVersion},
             {"protocol", kProtocolVersion},
             {"host", hostname},
             {"pid", getpid()},
             {"managed_by", owner ? json(*owner) : json(nullptr)},
             {"state_dir", opts.state_dir}};
      if (!state_problem.empty()) {
        r["state_file_problem"] = state_problem;
      }
      if (params.contains("protocol") && params["protocol"].is_number_integer() &&
          params["protocol"].get<int>() != kProtocolVersion) {
        return Err(Code::kFailedPrecondition,
                   "protocol version {} is not supported: this agent speaks version {}",
                   params["protocol"].get<int>(), kProtocolVersion);
      }
      return r;
    }
    if (method == "apply" || method == "start" || method == "restart" || method == "reset") {
      if (!sample_soon) {
        sample_soon = now + std::chrono::seconds(1);
      }
    }
    if (method == "apply") {
      return Apply(params, now);
    }
    if (method == "ps") {
      json list = json::array();
      for (const auto& s : sup->Status(now, wall)) {
        list.push_back(StatusJson(s));
      }
      json r{{"services", list}};
      if (!state_problem.empty()) {
        r["state_file_problem"] = state_problem;
      }
      return r;
    }
    if (method == "start" || method == "stop" || method == "restart" || method == "reset") {
      if (!params.contains("name") || !params["name"].is_string()) {
        return Err(Code::kInvalidArgument, "params.name: expected a service name (string)");
      }
      std::string name = params["name"].get<std::string>();
      Result<ServiceStatus> r = method == "start"     ? sup->Start(name, now, wall)
                                : method == "stop"    ? sup->Stop(name, now, wall)
                                : method == "restart" ? sup->Restart(name, now, wall)
                                                      : sup->Reset(name, now, wall);
      if (!r) {
        return Err(r.error());
      }
      return json{{"service", StatusJson(*r)}};
    }
    if (method == "logs") {
      return Logs(params, id, conn_fd);
    }
    if (method == "stats") {
      size_t n = 60;
      if (params.contains("samples")) {
        if (!params["samples"].is_number_integer() || params["samples"].get<int64_t>() < 0) {
          return Err(Code::kInvalidArgument, "params.samples: expected a non-negative integer");
        }
        n = params["samples"].get<size_t>();
      }
      return sampler->StatsJson(n);
    }
    if (method == "spec") {
      json list = json::array();
      for (const auto& s : sup->Desired()) {
        json j;
        to_json(j, s);
        list.push_back(j);
      }
      return json{{"services", list}, {"owner", owner ? json(*owner) : json(nullptr)}};
    }
    return Err(Code::kInvalidArgument,
               "unknown method '{}' (expected one of hello, apply, ps, start, stop, restart, "
               "reset, logs, stats, spec)",
               method);
  }

  Result<json> Apply(const json& params, MonoTime now) {
    if (!params.contains("services") || !params["services"].is_array()) {
      return Err(Code::kInvalidArgument, "params.services: expected a list of services");
    }
    std::vector<std::string> problems;
    std::vector<ServiceSpec> specs;
    std::map<std::string, size_t> seen;
    const json& list = params["services"];
    for (size_t i = 0; i < list.size(); ++i) {
      std::string path = fmt::format("services[{}]", i);
      auto s = ServiceSpecFromJson(list[i], path);
      if (!s) {
        problems.push_back(s.error().message);
        continue;
      }
      if (auto [it, fresh] = seen.emplace(s->name, i); !fresh) {
        problems.push_back(fmt::format("{}.name: duplicate name '{}' (also services[{}])", path,
                                       s->name, it->second));
      }
      if (!s->user.empty() && geteuid() != 0) {
        problems.push_back(fmt::format(
            "{}.user: running as user '{}' needs the agent to run as root (it runs as uid {})",
            path, s->user, geteuid()));
      } else if (!s->user.empty() && getpwnam(s->user.c_str()) == nullptr) {
        problems.push_back(fmt::format("{}.user: unknown user '{}'", path, s->user));
      }
      specs.push_back(std::move(*s));
    }
    if (!problems.empty()) {
      std::string msg = "invalid services, nothing applied: ";
      for (size_t i = 0; i < problems.size(); ++i) {
        msg += (i ? "; " : "") + problems[i];
      }
      return Err(Code::kInvalidArgument, "{}", msg);
    }
    std::optional<std::string> new_owner;
    if (params.contains("owner") && params["owner"].is_string()) {
      new_owner = params["owner"].get<std::string>();
    }
    bool force =
        params.contains("force") && params["force"].is_boolean() && params["force"].get<bool>();
    if (owner && owner != new_owner && !force) {
      return Err(Code::kConflict,
                 "this agent is managed by '{}'; an apply from {} is refused (use force to "
                 "override)",
                 *owner, new_owner ? "'" + *new_owner + "'" : std::string("a local user"));
    }
    // Creating a file is the dearest step of a first start on some filesystems (ext4 without
    // a journal scans for inodes not recently freed: ~0.6 ms per file on a busy machine, as
    // much as the fork and exec). Missing log files of services this apply starts are created
    // by a helper thread, last first, while this thread starts them first first; each child
    // then opens an existing file (or creates its own when it gets there first).
    std::vector<std::string> missing_logs;
    for (const auto& spec : specs) {
      if (!sup->StatusOf(spec.name, now, clock->WallNow())) {
        std::string path = LogPathOf(spec.name);
        if (access(path.c_str(), F_OK) != 0) {
          missing_logs.push_back(std::move(path));
        }
      }
    }
    std::atomic<bool> starts_done{false};
    std::thread precreate;
    if (missing_logs.size() >= 8) {
      precreate = std::thread([&missing_logs, &starts_done] {
        for (auto it = missing_logs.rbegin(); it != missing_logs.rend() && !starts_done; ++it) {
          int fd = ::open(it->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
          if (fd >= 0) {
            close(fd);
          }
        }
      });
    }
    ApplyResult r = sup->Apply(specs, now);
    starts_done = true;
    if (precreate.joinable()) {
      precreate.join();
    }
    // Services that could not even be started (command missing, not executable, ...) are
    // reported right away; they are supervised like any failing service (backoff, circuit).
    json warnings = json::array();
    for (size_t i = 0; i < specs.size(); ++i) {
      auto st = sup->StatusOf(specs[i].name, now, clock->WallNow());
      if (st && !st->last_error.empty() && st->pid == 0) {
        warnings.push_back(fmt::format("services[{}] ({}): {}", i, specs[i].name, st->last_error));
      }
    }
    if (owner != new_owner) {
      owner = new_owner;
      owner_dirty = true;
    }
    Log(fmt::format("apply: {} started, {} restarted, {} stopped, {} unchanged", r.started.size(),
                    r.restarted.size(), r.stopped.size(), r.unchanged.size()));
    return json{{"started", r.started},
                {"restarted", r.restarted},
                {"stopped", r.stopped},
                {"unchanged", r.unchanged},
                {"warnings", warnings}};
  }

  Result<json> Logs(const json& params, const json& id, int conn_fd) {
    if (!params.contains("name") || !params["name"].is_string()) {
      return Err(Code::kInvalidArgument, "params.name: expected a service name (string)");
    }
    std::string name = params["name"].get<std::string>();
    if (auto v = ValidateServiceName(name); !v) {
      return Err(v.error());
    }
    size_t tail = 100;
    if (params.contains("tail")) {
      if (!params["tail"].is_number_integer() || params["tail"].get<int64_t>() < 0) {
        return Err(Code::kInvalidArgument, "params.tail: expected a non-negative integer");
      }
      tail = params["tail"].get<size_t>();
    }
    bool follow =
        params.contains("follow") && params["follow"].is_boolean() && params["follow"].get<bool>();
    std::string path = LogPathOf(name);
    bool known = static_cast<bool>(sup->StatusOf(name, clock->Now(), clock->WallNow()));
    if (!known && access(path.c_str(), F_OK) != 0) {
      return Err(Code::kNotFound, "service '{}' not found (and no log file {})", name, path);
    }
    if (!follow) {
      auto lines = Tail(path, tail);
      if (!lines) {
        return Err(lines.error());
      }
      return json{{"lines", *lines}};
    }
    // The tail and the follower's starting point are taken under one lock (agents/logfile.h),
    // so no line is shown twice or missed in between; an unfinished last line comes whole from
    // the stream once it ends.
    auto tf = TailThenFollow(path, tail);
    if (!tf) {
      return Err(tf.error());
    }
    auto it = conns.find(conn_fd);
    if (it != conns.end()) {
      it->second.follows.push_back(Conn::Follow{id, std::move(tf->follower)});
      next_follow_poll = clock->Now() + std::chrono::milliseconds(200);
    }
    return json{{"lines", std::move(tf->lines)}};
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() = default;

const std::string& Agent::state_dir() const { return impl_->opts.state_dir; }
const std::string& Agent::socket_path() const { return impl_->sock_path; }

Result<std::unique_ptr<Agent>> Agent::Create(const AgentOptions& opts_in) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts_in;
  std::string& dir = impl->opts.state_dir;
  if (dir.empty()) {
    return Err(Code::kInvalidArgument, "--state-dir is required");
  }
  // Create the directory (and parents) with mode 0700.
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      std::string sub = dir.substr(0, pos);
      if (mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST) {
        return Err(ErrnoError("cannot create state dir " + sub, errno));
      }
    }
  }
  char real[PATH_MAX];
  if (!realpath(dir.c_str(), real)) {
    return Err(ErrnoError("state dir " + dir, errno));
  }
  dir = real;
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Err(Code::kInvalidArgument, "state dir {} is not a directory", dir);
  }

  std::string lock_path = dir + "/agent.lock";
  impl->lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) {
    return Err(ErrnoError(fmt::format("state dir {} is not writable (creating {})", dir, lock_path),
                          errno));
  }
  if (flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    ssize_t n = pread(impl->lock_fd, buf, sizeof buf - 1, 0);
    (void)n;
    return Err(Code::kConflict, "another cbagent (pid {}) is already serving {}",
               std::string(buf).substr(0, std::string(buf).find('\n')), dir);
  }
  {
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(impl->lock_fd, 0) != 0 || pwrite(impl->lock_fd, pid.data(), pid.size(), 0) < 0) {
      return Err(
          ErrnoError("state dir " + dir + " is not writable (writing " + lock_path + ")", errno));
    }
  }
  // The state file must be writable too: try the temp file it is written through.
  {
    std::string probe = StatePath(dir) + ".tmp";
    int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Err(
          ErrnoError("state dir " + dir + " is not writable (creating " + probe + ")", errno));
    }
    close(fd);
    unlink(probe.c_str());
  }

  impl->sock_path = AgentSocketPath(dir);
  CB_TRY_VOID(CheckSocketPathLength(impl->sock_path));
  CB_TRY_VOID(EnsureLogDir(dir));

  // Signals: TERM/INT end the loop through the signalfd; SIGPIPE is ignored (and children
  // get default dispositions back in the launcher).
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  (void)signal(SIGPIPE, SIG_IGN);

  impl->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (impl->epoll_fd < 0) {
    return Err(ErrnoError("epoll_create1", errno));
  }
  impl->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (impl->signal_fd < 0) {
    return Err(ErrnoError("signalfd", errno));
  }
  impl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (impl->timer_fd < 0) {
    return Err(ErrnoError("timerfd_create", errno));
  }
  impl->EpollAdd(impl->signal_fd, EPOLLIN, Tag(kSignal, 0));
  impl->EpollAdd(impl->timer_fd, EPOLLIN, Tag(kTimer, 0));

  // Socket. We hold the lock, so an existing socket file is stale.
  unlink(impl->sock_path.c_str());
  impl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) {
    return Err(ErrnoError("socket", errno));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, impl->sock_path.c_str(), impl->sock_path.size() + 1);
  mode_t old = umask(077);
  int br = bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int berr = errno;
  umask(old);
  if (br != 0) {
    return Err(ErrnoError("bind " + impl->sock_path, berr));
  }
  chmod(impl->sock_path.c_str(), 0600);
  if (listen(impl->listen_fd, 128) != 0) {
    return Err(ErrnoError("listen " + impl->sock_path, errno));
  }
  impl->EpollAdd(impl->listen_fd, EPOLLIN, Tag(kListen, 0));

  char host[256] = {};
  gethostname(host, sizeof host - 1);
  impl->hostname = host;

  Impl* raw = impl.get();
  impl->launcher = std::make_unique<RealLauncher>(dir, [raw](pid_t pid, int pidfd) {
    raw->EpollAdd(pidfd, EPOLLIN, Tag(kPidfd, static_cast<uint64_t>(pid)));
  });
  impl->sup = std::make_unique<Supervisor>(
      impl->launcher.get(),
      [raw] { return std::uniform_real_distribution<double>(0.0, 1.0)(raw->rng); },
      [raw](const std::string& name) { return raw->LogPathOf(name); });
  StatsSampler::Options so;
  so.interval = impl->opts.stats_interval;
  impl->sampler = std::make_unique<StatsSampler>(so);

  // State file.
  auto loaded = LoadState(dir, impl->clock->WallNow());
  if (!loaded) {
    return Err(loaded.error());
  }
  if (!loaded->corrupt_moved_to.empty()) {
    impl->state_problem =
        fmt::format("state file {} was corrupt ({}); moved aside to {}", StatePath(dir),
                    loaded->corrupt_reason, loaded->corrupt_moved_to);
    Log("WARNING: " + impl->state_problem + "; starting with no services");
  }
  impl->owner = loaded->state.owner;
  size_t with_pid = 0;
  for (const auto& p : loaded->state.services) {
    with_pid += p.process.has_value();
  }
  impl->sup->Restore(loaded->state.services, impl->clock->Now(), impl->clock->WallNow());
  size_t adopted = 0;
  for (const auto& s : impl->sup->Status(impl->clock->Now(), impl->clock->WallNow())) {
    adopted += s.adopted;
  }
  impl->sup->Step(impl->clock->Now());
  impl->MaybeSave();
  if (!impl->last_save_error.empty()) {
    return Err(Code::kPermissionDenied, "state dir {} is not writable: {}", dir,
               impl->last_save_error);
  }
  Log(fmt::format("serving {} (pid {}): {} services, {} adopted, {} not found running",
                  impl->sock_path, getpid(), loaded->state.services.size(), adopted,
                  with_pid - adopted));
  impl->next_log_check = impl->clock->Now() + impl->opts.log_check_interval;
  impl->ArmTimer();
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

bool Agent::Step(int timeout_ms) {
  Impl& m = *impl_;
  epoll_event evs[64];
  int n = epoll_wait(m.epoll_fd, evs, 64, timeout_ms);
  if (n < 0 && errno != EINTR) {
    Log(fmt::format("epoll_wait: {}", strerror(errno)));
  }
  for (int i = 0; i < n; ++i) {
    uint64_t tag = evs[i].data.u64;
    switch (TagKind(tag)) {
      case kListen:
        m.Accept();
        break;
      case kSignal: {
        signalfd_siginfo si;
        while (read(m.signal_fd, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            Log(fmt::format("received SIG{}; exiting, services keep running",
                            si.ssi_signo == SIGTERM ? "TERM" : "INT"));
            m.stop = true;
          }
        }
        break;
      }
      case kTimer: {
        uint64_t expirations;
        ssize_t r = read(m.timer_fd, &expirations, sizeof expirations);
        (void)r;
        break;
      }
      case kConn: {
        int fd = static_cast<int>(TagValue(tag));
        auto it = m.conns.find(fd);
        if (it == m.conns.end()) {
          break;
        }
        if (evs[i].events & EPOLLOUT) {
          if (!m.Flush(it->second)) {
            break;
          }
        }
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          m.OnConnReadable(fd, this);
        }
        break;
      }
      case kPidfd:
        m.OnPidfd(static_cast<pid_t>(TagValue(tag)));
        break;
    }
  }
  m.sup->Step(m.clock->Now());
  m.Housekeeping();
  m.MaybeSave();
  for (int fd : m.flush_after_save) {
    auto it = m.conns.find(fd);
    if (it != m.conns.end()) {
      m.Flush(it->second);
    }
  }
  m.flush_after_save.clear();
  if (m.trim_wanted) {
    m.trim_wanted = false;
    malloc_trim(0);
  }
  m.ArmTimer();
  return !m.stop;
}

int Agent::Run() {
  while (Step(-1)) {
  }
  impl_->MaybeSave();
  return 0;
}

json Agent::HandleLine(const std::string& line, int conn_fd) {
  json req;
  try {
    req = json::parse(line);
  } catch (const json::parse_error& e) {
    return Impl::ErrorReply(
        nullptr, Code::kInvalidArgument,
        fmt::format("request is not valid JSON (at byte {}): {}", e.byte, e.what()));
  }
  if (!req.is_object()) {
    return Impl::ErrorReply(nullptr, Code::kInvalidArgument,
                            fmt::format("request must be a JSON object, got {}", req.type_name()));
  }
  json id = req.contains("id") ? req["id"] : json(nullptr);
  if (!id.is_null() && !id.is_number_integer() && !id.is_string()) {
    return Impl::ErrorReply(nullptr, Code::kInvalidArgument, "id: expected an integer or a string");
  }
  if (!req.contains("method") || !req["method"].is_string()) {
    return Impl::ErrorReply(id, Code::kInvalidArgument, "request lacks \"method\" (a string)");
  }
  if (!req.contains("v") || !req["v"].is_number_integer()) {
    return Impl::ErrorReply(
        id, Code::kInvalidArgument,
        fmt::format("request lacks \"v\" (the protocol version, {})", kProtocolVersion));
  }
  if (req["v"].get<int64_t>() != kProtocolVersion) {
    return Impl::ErrorReply(
        id, Code::kFailedPrecondition,
        fmt::format("protocol version {} is not supported: this agent speaks version {}",
                    req["v"].dump(), kProtocolVersion));
  }
  json params = req.contains("params") ? req["params"] : json::object();
  if (params.is_null()) {
    params = json::object();
  }
  if (!params.is_object()) {
    return Impl::ErrorReply(id, Code::kInvalidArgument, "params: expected an object");
  }
  Result<json> r = Err(Code::kInternal, "no result");
  try {
    r = impl_->Dispatch(req["method"].get<std::string>(), params, id, conn_fd);
  } catch (const std::exception& e) {
    r = Err(Code::kInvalidArgument, "bad params: {}", e.what());
  }
  if (!r) {
    return Impl::ErrorReply(id, r.error().code, r.error().message);
  }
  return json{{"v", kProtocolVersion}, {"id", id}, {"result", std::move(*r)}};
}

}  // namespace cb
