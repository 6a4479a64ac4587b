#include "agents/real_launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace cb {
namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Steps of the child that can fail, reported through the pipe.
enum ChildStage : int { kSetpgid = 1, kDevNull, kLog, kChdir, kGroups, kSetgid, kSetuid, kExec };

struct ChildError {
  int stage;
  int err;
};

std::string FindOnPath(const std::string& cmd, std::string* searched) {
  const char* p = getenv("PATH");
  std::string path = p && *p ? p : "/usr/local/bin:/usr/bin:/bin";
  *searched = path;
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) {
      dir = ".";
    }
    std::string full = dir;
    full += '/';
    full += cmd;
    struct stat st {};
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(full.c_str(), X_OK) == 0) {
      return full;
    }
  }
  return {};
}

struct ChildArgs {
  const char* cwd;
  const char* log;
  const char* exe;
  const char* user;
  bool set_user;
  uid_t uid;
  gid_t gid;
  char** argv;
  char** envp;
  int errfd;
};

[[noreturn]] void ChildFail(const ChildArgs* a, int stage) {
  ChildError ce{stage, errno};
  ssize_t n = write(a->errfd, &ce, sizeof ce);
  (void)n;
  _exit(127);
}

// The child between fork/vfork and exec: syscalls only, no allocation (except initgroups in
// the fork case), never returns.
[[noreturn]] __attribute__((noinline)) void ChildMain(const ChildArgs* a) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2}) {
    (void)signal(sig, SIG_DFL);
  }
  if (setpgid(0, 0) != 0) {
    ChildFail(a, kSetpgid);
  }
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) {
    ChildFail(a, kDevNull);
  }
  int logfd = open(a->log, O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY | O_CLOEXEC, 0640);
  if (logfd < 0) {
    ChildFail(a, kLog);
  }
  if (dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) {
    ChildFail(a, kLog);
  }
  for (int fd = 0; fd <= 2; ++fd) {
    fcntl(fd, F_SETFD, 0);
  }
  if (a->cwd && chdir(a->cwd) != 0) {
    ChildFail(a, kChdir);
  }
  if (a->set_user) {
    if (initgroups(a->user, a->gid) != 0) {
      ChildFail(a, kGroups);
    }
    if (setgid(a->gid) != 0) {
      ChildFail(a, kSetgid);
    }
    if (setuid(a->uid) != 0) {
      ChildFail(a, kSetuid);
    }
  }
  execve(a->exe, a->argv, a->envp);
  ChildFail(a, kExec);
}

}  // namespace

Result<uint64_t> ProcessStartTicks(pid_t pid) {
  char path[64];
  (void)std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Err(Code::kNotFound, "process {} does not exist", pid);
  }
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) {
    return Err(Code::kNotFound, "process {} does not exist", pid);
  }
  std::string_view line(buf, static_cast<size_t>(n));
  auto close_paren = line.rfind(')');
  if (close_paren == std::string_view::npos) {
    return Err(Code::kInternal, "/proc/{}/stat: unexpected format", pid);
  }
  // Fields after the comm: field 3 (state) is token 0, field 22 (starttime) is token 19.
  size_t pos = close_paren + 1;
  std::string_view tok;
  for (int i = 0; i <= 19; ++i) {
    while (pos < line.size() && line[pos] == ' ') {
      ++pos;
    }
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) {
      end = line.size();
    }
    if (pos >= end) {
      return Err(Code::kInternal, "/proc/{}/stat: too few fields", pid);
    }
    tok = line.substr(pos, end - pos);
    pos = end;
    if (i == 0 && tok == "Z") {
      return Err(Code::kNotFound, "process {} is a zombie", pid);
    }
  }
  uint64_t v = 0;
  for (char c : tok) {
    if (c < '0' || c > '9') {
      return Err(Code::kInternal, "/proc/{}/stat: bad start time", pid);
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

RealLauncher::RealLauncher(std::string default_cwd, WatchFn watch)
    : default_cwd_(std::move(default_cwd)), watch_(std::move(watch)) {}

RealLauncher::~RealLauncher() {
  for (auto& [pid, w] : watched_) {
    close(w.pidfd);
  }
}

// Everything one start needs, prepared on the agent's thread; the spawn step only makes
// syscalls (it may run on a helper thread, see StartMany).
struct RealLauncher::Prepared {
  const ServiceSpec* spec = nullptr;
  std::string log_path;
  std::string exe, cwd, user_name;
  std::vector<std::string> args, env_strs;
  std::vector<char*> argv, envp;
  ChildArgs ca{};
  // Outcome of Spawn():
  pid_t pid = -1;
  const char* spawn_step = nullptr;  // "pipe2" or "fork" when that failed, with spawn_errno
  int spawn_errno = 0;
  int child_stage = 0;  // a child step failed (ChildStage), with child_errno
  int child_errno = 0;
};

Result<std::unique_ptr<RealLauncher::Prepared>> RealLauncher::Prepare(const ServiceSpec& spec,
                                                                      const std::string& log_path) {
  auto p = std::make_unique<Prepared>();
  p->spec = &spec;
  p->log_path = log_path;
  if (spec.command.empty()) {
    return Err(Code::kInvalidArgument, "service '{}': empty command", spec.name);
  }
  // Everything the child needs is prepared here: after fork it only makes syscalls.
  std::string exe = spec.command[0];
  if (exe.find('/') == std::string::npos) {
    // Cache hits are re-checked with one access(); a miss searches PATH again.
    auto hit = path_cache_.find(exe);
    if (hit != path_cache_.end() && access(hit->second.c_str(), X_OK) == 0) {
      exe = hit->second;
    } else {
      std::string searched;
      std::string found = FindOnPath(exe, &searched);
      if (found.empty()) {
        return Err(Code::kNotFound, "command '{}' not found on PATH ({})", exe, searched);
      }
      if (path_cache_.size() > 1000) {
        path_cache_.clear();
      }
      path_cache_[exe] = found;
      exe = found;
    }
  }
  bool set_user = !spec.user.empty();
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home, user_name;
  if (set_user) {
    if (geteuid() != 0) {
      return Err(Code::kPermissionDenied,
                 "service '{}': user '{}' needs the agent to run as root (it runs as uid {})",
                 spec.name, spec.user, geteuid());
    }
    struct passwd* pw = getpwnam(spec.user.c_str());
    if (!pw) {
      return Err(Code::kNotFound, "service '{}': unknown user '{}'", spec.name, spec.user);
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    home = pw->pw_dir;
    user_name = pw->pw_name;
  } else {
    if (!self_user_) {  // the agent's own user does not change: look it up once
      self_user_.emplace();
      if (struct passwd* pw = getpwuid(geteuid())) {
        *self_user_ = {pw->pw_name, pw->pw_dir};
      }
    }
    user_name = self_user_->first;
    home = self_user_->second;
  }
  std::map<std::string, std::string> env;
  const char* path = getenv("PATH");
  env["PATH"] = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  if (!home.empty()) {
    env["HOME"] = home;
  }
  if (!user_name.empty()) {
    env["USER"] = env["LOGNAME"] = user_name;
  }
  for (const char* k : {"LANG", "LC_ALL", "TZ"}) {
    if (const char* v = getenv(k)) {
      env[k] = v;
    }
  }
  for (const auto& [k, v] : spec.env) {
    env[k] = v;
  }
  std::vector<std::string> env_strs;
  env_strs.reserve(env.size());
  for (const auto& [k, v] : env) {
    std::string kv = k;
    kv += '=';
    kv += v;
    env_strs.push_back(std::move(kv));
  }
  std::vector<std::string> args = spec.command;
  std::string cwd = spec.cwd.empty() ? default_cwd_ : spec.cwd;
  p->exe = std::move(exe);
  p->cwd = std::move(cwd);
  p->user_name = std::move(user_name);
  p->args = std::move(args);
  p->env_strs = std::move(env_strs);
  for (auto& e : p->env_strs) {
    p->envp.push_back(e.data());
  }
  p->envp.push_back(nullptr);
  for (auto& a : p->args) {
    p->argv.push_back(a.data());
  }
  p->argv.push_back(nullptr);
  ChildArgs& ca = p->ca;
  ca.cwd = p->cwd.empty() ? nullptr : p->cwd.c_str();
  ca.log = p->log_path.empty() ? "/dev/null" : p->log_path.c_str();
  ca.exe = p->exe.c_str();
  ca.user = p->user_name.c_str();
  ca.set_user = set_user;
  ca.uid = uid;
  ca.gid = gid;
  ca.argv = p->argv.data();
  ca.envp = p->envp.data();
  ca.errfd = -1;
  return p;
}

// fork/vfork and wait for the exec (or the failure the child reports). Syscalls only: safe on
// a helper thread (vfork suspends only the calling thread; the child uses that thread's
// stack and touches nothing else).
void RealLauncher::Spawn(Prepared& p) {
  ChildArgs ca = p.ca;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    p.spawn_step = "pipe2";
    p.spawn_errno = errno;
    return;
  }
  ca.errfd = pipefd[1];
  // vfork when no user switch is needed: no page-table copy, and the parent waits for the
  // exec anyway. The child only makes syscalls and then execs or _exits. initgroups() (for
  // `user:`) reads NSS and allocates, so that case uses fork (and never runs on a helper
  // thread: StartMany spawns those on the agent's thread with no helper running).
  // The child (ChildMain) only makes syscalls and then execs or _exits; posix_spawn cannot
  // report which step failed nor switch users.
  // NOLINTNEXTLINE(clang-analyzer-unix.Vfork,clang-analyzer-security.insecureAPI.vfork)
  pid_t pid = ca.set_user ? fork() : vfork();
  if (pid == 0) {
    ChildMain(&ca);
  }
  if (pid < 0) {
    p.spawn_step = "fork";
    p.spawn_errno = errno;
    close(pipefd[0]);
    close(pipefd[1]);
    return;
  }
  close(pipefd[1]);
  setpgid(pid, pid);  // also from the parent, so a signal right away reaches the group
  ChildError ce{};
  ssize_t n;
  do {
    n = read(pipefd[0], &ce, sizeof ce);
  } while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  p.pid = pid;
  if (n == static_cast<ssize_t>(sizeof ce)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    p.child_stage = ce.stage;
    p.child_errno = ce.err;
  }
}

Result<ProcessId> RealLauncher::Finish(Prepared& p) {
  const ServiceSpec& spec = *p.spec;
  const ChildArgs& ca = p.ca;
  const std::string& log_path = p.log_path;
  const std::string& cwd = p.cwd;
  const std::string& exe = p.exe;
  if (p.spawn_step != nullptr) {
    return Err(ErrnoError(p.spawn_step, p.spawn_errno));
  }
  pid_t pid = p.pid;
  if (p.child_stage != 0) {
    ChildError ce{p.child_stage, p.child_errno};
    std::string what;
    switch (ce.stage) {
      case kSetpgid:
        what = "setpgid";
        break;
      case kDevNull:
        what = "open /dev/null";
        break;
      case kLog:
        what = "open log file " + log_path;
        break;
      case kChdir:
        what = "chdir " + cwd;
        break;
      case kGroups:
        what = "initgroups " + spec.user;
        break;
      case kSetgid:
        what = "setgid " + std::to_string(ca.gid);
        break;
      case kSetuid:
        what = "setuid " + std::to_string(ca.uid);
        break;
      default:
        what = "exec " + exe;
        break;
    }
    Error e = ErrnoError(what, ce.err);
    if (ce.stage == kExec && ce.err == EACCES) {
      e.message += " (not executable?)";
    }
    return Err(e);
  }
  ProcessId id{pid, 0};
  auto ticks = ProcessStartTicks(pid);
  if (ticks) {
    id.start_ticks = *ticks;
  }
  int fd = PidfdOpen(pid);
  if (fd < 0) {
    // Cannot watch it: do not leave an unwatched process behind.
    int e = errno;
    kill(-pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    return Err(ErrnoError("pidfd_open", e));
  }
  watched_[pid] = Watched{fd, true};
  if (watch_) {
    watch_(pid, fd);
  }
  return id;
}

Result<ProcessId> RealLauncher::Start(const ServiceSpec& spec, const std::string& log_path) {
  CB_TRY(std::unique_ptr<Prepared> p, Prepare(spec, log_path));
  Spawn(*p);
  return Finish(*p);
}

std::vector<Result<ProcessId>> RealLauncher::StartMany(const std::vector<StartRequest>& reqs) {
  std::vector<Result<ProcessId>> out(reqs.size(), Result<ProcessId>(ProcessId{}));
  std::vector<std::unique_ptr<Prepared>> prepared(reqs.size());
  std::vector<size_t> parallel;  // indexes spawned by the helpers
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto p = Prepare(*reqs[i].spec, reqs[i].log_path);
    if (!p) {
      out[i] = Err(p.error());
      continue;
    }
    prepared[i] = std::move(*p);
    if (prepared[i]->ca.set_user) {
      Spawn(*prepared[i]);  // fork + initgroups: on this thread, no helper running yet
    } else {
      parallel.push_back(i);
    }
  }
  // Each start waits for its child's exec; several in flight overlap those waits (and use
  // every CPU). Below a handful, threads cost more than they save.
  size_t helpers = std::min<size_t>(kMaxParallelStarts, parallel.size() / 4);
  if (helpers <= 1) {
    for (size_t i : parallel) {
      Spawn(*prepared[i]);
    }
  } else {
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t k = next++; k < parallel.size(); k = next++) {
        Spawn(*prepared[parallel[k]]);
      }
    };
    std::vector<std::thread> threads;
    for (size_t t = 1; t < helpers; ++t) {
      try {
        threads.emplace_back(work);
      } catch (const std::system_error&) {
        break;  // no thread: this one does the rest
      }
    }
    work();
    for (auto& t : threads) {
      t.join();
    }
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (prepared[i]) {
      out[i] = Finish(*prepared[i]);
    }
  }
  return out;
}

Result<void> RealLauncher::SignalGroup(pid_t pgid, int sig) {
  if (pgid <= 1) {
    return Err(Code::kInternal, "refusing to signal process group {}", pgid);
  }
  if (kill(-pgid, sig) != 0 && errno != ESRCH) {
    return Err(ErrnoError(fmt::format("kill(-{}, {})", pgid, sig), errno));
  }
  return Ok();
}

Result<void> RealLauncher::Adopt(const ProcessId& id) {
  if (id.pid <= 1) {
    return Err(Code::kNotFound, "invalid pid {}", id.pid);
  }
  int fd = PidfdOpen(id.pid);
  if (fd < 0) {
    return Err(ErrnoError(fmt::format("pidfd_open {}", id.pid), errno));
  }
  // Check identity after opening the pidfd: if it still matches now, the fd refers to it.
  auto ticks = ProcessStartTicks(id.pid);
  if (!ticks || *ticks != id.start_ticks) {
    close(fd);
    return Err(Code::kNotFound, "process {} is gone (or its pid was reused)", id.pid);
  }
  watched_[id.pid] = Watched{fd, false};
  if (watch_) {
    watch_(id.pid, fd);
  }
  return Ok();
}

std::optional<ExitStatus> RealLauncher::Reap(pid_t pid) {
  auto it = watched_.find(pid);
  if (it == watched_.end()) {
    return std::nullopt;
  }
  ExitStatus st = ExitStatus::Unknown();
  if (it->second.own_child) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do {
      r = waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(it->second.pidfd), &info,
                 WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0 && info.si_pid == 0) {
      return std::nullopt;  // not exited yet
    }
    if (r == 0) {
      st = info.si_code == CLD_EXITED ? ExitStatus::Code(info.si_status)
                                      : ExitStatus::Signal(info.si_status);
    }
  }
  close(it->second.pidfd);
  watched_.erase(it);
  return st;
}

}  // namespace cb
