#include "controlplane/transport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace cb::cp {

namespace {

constexpr size_t kMaxLine = 4u << 20;

class UnixTransport final : public Transport {
 public:
  UnixTransport(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~UnixTransport() override { Close(); }

  Result<void> WriteLine(std::string_view line) override {
    if (fd_ < 0) return Err(Code::kUnavailable, "{}: connection closed", path_);
    std::string buf(line);
    buf += '\n';
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = ::send(fd_, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        Error e = ErrnoError("write to agent " + path_, errno);
        e.code = Code::kUnavailable;
        return Err(e);
      }
      off += static_cast<size_t>(n);
    }
    return Ok();
  }

  Result<std::string> ReadLine(Duration timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      if (buf_.size() > kMaxLine) {
        return Err(Code::kInvalidArgument, "{}: agent sent a line longer than 4 MiB", path_);
      }
      if (fd_ < 0) return Err(Code::kUnavailable, "{}: connection closed", path_);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return Err(Code::kTimeout, "{}: no reply from the agent within {:.1f} s", path_, ToSeconds(timeout));
      }
      pollfd p{fd_, POLLIN, 0};
      int pr = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
      if (pr < 0) {
        if (errno == EINTR) continue;
        return Err(ErrnoError("poll agent socket " + path_, errno));
      }
      if (pr == 0) continue;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        Error e = ErrnoError("read from agent " + path_, errno);
        e.code = Code::kUnavailable;
        return Err(e);
      }
      if (n == 0) return Err(Code::kUnavailable, "{}: the agent closed the connection", path_);
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  void Close() override {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_;
  std::string path_;
  std::string buf_;
};

bool SocketAnswers(const std::string& path) {
  auto t = ConnectUnix(path);
  return t.has_value();
}

}  // namespace

Result<std::unique_ptr<Transport>> ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Err(Code::kInvalidArgument, "agent socket path is {} bytes, longer than a unix socket allows ({}): {}",
               path.size(), sizeof(addr.sun_path) - 1, path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Err(ErrnoError("socket", errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return Err(Code::kUnavailable, "no agent listening on {}: {}", path, std::strerror(err));
  }
  return std::unique_ptr<Transport>(new UnixTransport(fd, path));
}

LocalConnector::LocalConnector(std::string socket_path, std::string spawn_state_dir,
                               std::string cbagent_path, Duration start_timeout)
    : socket_path_(std::move(socket_path)),
      spawn_state_dir_(std::move(spawn_state_dir)),
      cbagent_path_(std::move(cbagent_path)),
      start_timeout_(start_timeout) {}

Result<std::unique_ptr<Transport>> LocalConnector::Connect() {
  auto t = ConnectUnix(socket_path_);
  if (t || spawn_state_dir_.empty() || t.error().code != Code::kUnavailable) return t;
  // Nothing listens: start an agent there.
  static std::mutex spawn_mu;  // one start at a time per process
  std::lock_guard lk(spawn_mu);
  if (SocketAnswers(socket_path_)) return ConnectUnix(socket_path_);
  if (cbagent_path_.empty()) {
    return Err(Code::kUnavailable,
               "{} and no cbagent binary found next to cbctld or on PATH to start one", t.error().message);
  }
  ::mkdir(spawn_state_dir_.c_str(), 0700);
  CB_TRY(int pid, SpawnDetached({cbagent_path_, "serve", "--state-dir", spawn_state_dir_},
                                spawn_state_dir_ + "/cbagent.out"));
  spawned_pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + start_timeout_;
  while (std::chrono::steady_clock::now() < deadline) {
    auto c = ConnectUnix(socket_path_);
    if (c) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Err(Code::kUnavailable,
             "started `{} serve --state-dir {}` (pid {}) but {} did not appear within {:.0f} s; see {}/cbagent.out",
             cbagent_path_, spawn_state_dir_, pid, socket_path_, ToSeconds(start_timeout_), spawn_state_dir_);
}

std::string FindCbagentBinary() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    std::string dir(self);
    auto slash = dir.rfind('/');
    if (slash != std::string::npos) {
      std::string candidate = dir.substr(0, slash) + "/cbagent";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  const char* path = ::getenv("PATH");
  if (!path) return "";
  std::string p(path);
  size_t pos = 0;
  while (pos <= p.size()) {
    auto next = p.find(':', pos);
    std::string dir = p.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    if (!dir.empty()) {
      std::string candidate = dir + "/cbagent";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return "";
}

Result<int> SpawnDetached(const std::vector<std::string>& argv, const std::string& output_path) {
  if (argv.empty()) return Err(Code::kInvalidArgument, "SpawnDetached: empty argv");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Err(ErrnoError("pipe", errno));
  pid_t child = ::fork();
  if (child < 0) {
    int err = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return Err(ErrnoError("fork", err));
  }
  if (child == 0) {
    // Intermediate: new session, fork the daemon, report its pid, exit.
    ::setsid();
    pid_t grand = ::fork();
    if (grand < 0) _exit(1);
    if (grand > 0) {
      int32_t p = grand;
      (void)!::write(pipefd[1], &p, sizeof p);
      _exit(0);
    }
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    // Close everything else so the daemon holds none of cbctld's sockets.
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != pipefd[1]) ::close(fd);
    }
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(pipefd[1]);
  int32_t pid = 0;
  ssize_t n;
  do {
    n = ::read(pipefd[0], &pid, sizeof pid);
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof pid) || pid <= 0) {
    return Err(Code::kInternal, "could not start {}: the intermediate process failed", argv[0]);
  }
  return static_cast<int>(pid);
}

}  // namespace cb::cp
