#include "controlplane/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <thread>

#include "controlplane/auth.h"
#include "controlplane/db_maintainer.h"
#include "controlplane/reconciler.h"
#include "controlplane/spec_adapter.h"
#include "controlplane/state_store.h"
#include "controlplane/transport.h"

namespace cb::cp {

void LogLine(const std::string& message) {
  std::string line = FormatWallTime(RealClock::Get()->WallNow()) + " cbctld: " + message + "\n";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

namespace {

Result<void> MkdirP(const std::string& dir, mode_t mode) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return Err(ErrnoError("mkdir " + cur, errno));
  }
  return Ok();
}

// Writes `content` to `path` with `mode` via a temp file and rename.
Result<void> WriteFileAtomic(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Err(ErrnoError("create " + tmp, errno));
  ::fchmod(fd, mode);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Err(ErrnoError("write " + tmp, err));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Err(ErrnoError("rename to " + path, errno));
  return Ok();
}

}  // namespace

Result<std::string> InitStateDir(const std::string& dir, const Clock& clock) {
  if (dir.empty()) return Err(Code::kInvalidArgument, "--state-dir is required");
  CB_TRY_VOID(MkdirP(dir, 0700));
  struct stat st {};
  if (::stat((dir + "/cbctld.db").c_str(), &st) == 0) {
    return Err(Code::kAlreadyExists, "{}/cbctld.db exists: this state directory is already initialised", dir);
  }
  CB_TRY(auto store, OpenSqliteStateStore(dir, /*create=*/true));
  CB_TRY(std::string id_secret, GenerateSecret());
  CB_TRY_VOID(store->SetMeta("state_id", id_secret.substr(4, 12)));
  CB_TRY(std::string secret, GenerateSecret());
  std::string at = FormatWallTime(clock.WallNow());
  CB_TRY_VOID(store->CreateToken("admin", "admin", HashSecret(secret), "cbctld init", at).map(
      [](auto&&) {}));
  CB_TRY_VOID(WriteFileAtomic(dir + "/admin.token", secret + "\n", 0600));
  wire::AuditEntry e;
  e.at = at;
  e.actor = "cbctld init";
  e.action = "init";
  e.target = dir;
  e.result = "ok";
  e.status = 0;
  e.detail = "state created; admin token written to admin.token";
  (void)store->AppendAudit(e);
  return secret;
}

Result<void> Serve(const ServeOptions& o, const std::atomic<bool>& stop, const Clock& clock) {
  if (o.state_dir.empty()) return Err(Code::kInvalidArgument, "--state-dir is required");
  CB_TRY(auto store, OpenSqliteStateStore(o.state_dir, /*create=*/false));
  CB_TRY(auto state_id, store->GetMeta("state_id"));
  if (!state_id) {
    CB_TRY(std::string s, GenerateSecret());
    state_id = s.substr(4, 12);
    CB_TRY_VOID(store->SetMeta("state_id", *state_id));
  }
  std::string agents_dir = o.state_dir + "/agents";
  CB_TRY_VOID(MkdirP(agents_dir, 0700));
  std::string cbagent = FindCbagentBinary();

  ReconcilerOptions ro;
  ro.owner = "cbctld:" + *state_id;
  ro.client = "cbctld " + std::string(kCbctldVersion);
  ro.period = o.reconcile_period;
  DeriveFn derive = MakeSpecDeriver();
  ConnectorFactory connectors = [agents_dir, cbagent](const DesiredHost& h) -> std::shared_ptr<Connector> {
    if (h.address != "local") return nullptr;  // remote hosts: the SSH transport comes later
    if (!h.agent_socket.empty()) {
      return std::make_shared<LocalConnector>(h.agent_socket, "", "");
    }
    std::string dir = agents_dir + "/" + h.name;
    return std::make_shared<LocalConnector>(dir + "/agent.sock", dir, cbagent);
  };
  Reconciler rec(*store, clock, derive, connectors, ro);

  StateStore* store_ptr = store.get();
  DbMaintainerOptions mo;
  mo.interval = o.maintain_interval;
  DbMaintainer maintainer(
      [store_ptr]() -> Result<std::optional<std::string>> {
        CB_TRY(auto spec, store_ptr->CurrentSpec());
        if (!spec) return std::optional<std::string>();
        return std::optional<std::string>(spec->yaml);
      },
      RealMaintainRunner(), [](const std::string& line) { LogLine(line); },
      [store_ptr](const wire::AuditEntry& e) { (void)store_ptr->AppendAudit(e); }, mo);

  ApiOptions api = o.api;
  api.version = std::string(kCbctldVersion);
  api.extra_metrics = [&maintainer] { return maintainer.RenderMetrics(); };
  ApiServer server(*store, rec, derive, clock, api);
  CB_TRY(std::string addr, server.Bind());  // validates --listen / TLS first
  // One cbctld per state dir: an exclusive lock held for the process's lifetime (released by
  // the kernel when it exits, also on kill -9).
  std::string lock_path = o.state_dir + "/cbctld.lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return Err(ErrnoError("open " + lock_path, errno));
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = ::pread(lock_fd, buf, sizeof buf - 1, 0);
    ::close(lock_fd);
    return Err(Code::kFailedPrecondition, "another cbctld (pid {}) is serving {}",
               n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?"), o.state_dir);
  }
  if (::ftruncate(lock_fd, 0) == 0) {
    std::string pid = std::to_string(::getpid());
    (void)!::pwrite(lock_fd, pid.data(), pid.size(), 0);
  }
  auto hp = ParseListen(api.listen);
  bool tls = !api.tls_cert.empty();
  if (hp && !IsLoopbackHost(hp->first) && !tls) {
    LogLine(fmt::format("WARNING: --insecure: serving plain HTTP on non-loopback address {}; bearer tokens "
                        "cross the network in clear text",
                        addr));
  }
  CB_TRY_VOID(WriteFileAtomic(o.state_dir + "/listen.addr", addr + "\n", 0644));
  LogLine(fmt::format("cbctld {} listening on {}://{} (state {}, owner {}, cbagent {})", kCbctldVersion,
                      tls ? "https" : "http", addr, o.state_dir, ro.owner, cbagent.empty() ? "not found" : cbagent));

  std::thread http([&] { server.Run(); });
  // Db maintenance on its own thread: a slow or unreachable database never holds up the API or
  // the reconciler; one thread, so two passes never overlap.
  std::thread maint([&] {
    while (!stop.load()) {
      maintainer.Step(clock.Now(), clock.WallNow());
      for (int i = 0; i < 2 && !stop.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::map<std::string, std::string> last_errors;
  while (!stop.load()) {
    rec.Step(clock.Now());
    // Log a host's failure when it starts or changes, and its recovery, not every pass.
    auto errors = rec.HostErrors();
    for (const auto& [host, err] : errors) {
      auto it = last_errors.find(host);
      if (it == last_errors.end() || it->second != err) LogLine("reconcile: " + err);
    }
    for (const auto& [host, err] : last_errors) {
      if (!errors.count(host)) LogLine("reconcile: host " + host + " is reachable again");
    }
    last_errors = std::move(errors);
    for (int i = 0; i < 5 && !stop.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  LogLine("stopping (agents and their services keep running)");
  server.Stop();
  http.join();
  maint.join();  // a pass in progress finishes first (bounded by the library's lock timeouts)
  return Ok();
}

}  // namespace cb::cp
