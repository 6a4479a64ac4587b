#include "tests/support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace cb::testing {
namespace {

const char* kPgBin = "/usr/lib/postgresql/15/bin";

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

int RunCommand(const std::vector<std::string>& argv, std::string* output) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return -1;
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output) *output = out;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

PgCluster& PgCluster::Get() {
  static PgCluster cluster;
  return cluster;
}

PgCluster::PgCluster() {
  if (!Env("CBCTL_TEST_PGHOST").empty()) {
    host_ = Env("CBCTL_TEST_PGHOST");
    port_ = Env("CBCTL_TEST_PGPORT").empty() ? "5432" : Env("CBCTL_TEST_PGPORT");
    if (!Env("CBCTL_TEST_PGUSER").empty()) user_ = Env("CBCTL_TEST_PGUSER");
    available_ = Psql("postgres", "SELECT 1");
    if (!available_) skip_reason_ = "CBCTL_TEST_PGHOST=" + host_ + " is set but the cluster does not answer";
    return;
  }
  available_ = StartPrivate();
}

bool PgCluster::StartPrivate() {
  if (::access((std::string(kPgBin) + "/initdb").c_str(), X_OK) != 0) {
    skip_reason_ = std::string("Postgres 15 is not installed (") + kPgBin + "/initdb missing)";
    return false;
  }
  char tmpl[] = "/tmp/cbpg.XXXXXX";
  if (!::mkdtemp(tmpl)) {
    skip_reason_ = "mkdtemp failed";
    return false;
  }
  dir_ = tmpl;
  ::chmod(dir_.c_str(), 0755);
  std::string data = dir_ + "/data";
  bool root = ::geteuid() == 0;
  std::vector<std::string> as_pg;
  if (root) {
    struct passwd* pw = ::getpwnam("postgres");
    if (!pw) {
      skip_reason_ = "running as root but there is no postgres user to run Postgres as";
      return false;
    }
    ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid);
    as_pg = {"runuser", "-u", "postgres", "--"};
  }
  auto cmd = [&](std::vector<std::string> argv) {
    std::vector<std::string> full = as_pg;
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  };
  std::string out;
  if (RunCommand(cmd({std::string(kPgBin) + "/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                      "--encoding=UTF8", "--locale=C", "--no-sync"}),
                 &out) != 0) {
    skip_reason_ = "initdb failed: " + out;
    return false;
  }
  ::chmod(data.c_str(), 0700);
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = std::to_string(FreePort());
    std::string opts = "-k " + dir_ + " -p " + port_ + " -c listen_addresses='' -c max_connections=300 -c fsync=off";
    if (RunCommand(cmd({std::string(kPgBin) + "/pg_ctl", "-D", data, "-l", dir_ + "/log", "-o", opts, "-w", "-t",
                        "60", "start"}),
                   &out) == 0) {
      std::ifstream pidf(data + "/postmaster.pid");
      pidf >> pid_;
      host_ = dir_;
      user_ = "postgres";
      return Psql("postgres", "SELECT 1", &out) || (skip_reason_ = "private cluster does not answer: " + out, false);
    }
  }
  skip_reason_ = "pg_ctl start failed: " + out;
  return false;
}

PgCluster::~PgCluster() {
  if (pid_ > 0) {
    ::kill(pid_, SIGINT);  // fast shutdown
    for (int i = 0; i < 300 && ::kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (::kill(pid_, 0) == 0) ::kill(pid_, SIGQUIT);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

bool PgCluster::Psql(const std::string& dbname, const std::string& sql, std::string* out) const {
  std::string o;
  int rc = RunCommand({"psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", host_, "-p", port_, "-U", user_, "-d",
                       dbname, "-c", sql},
                      &o);
  if (out) *out = o;
  return rc == 0;
}

TestDatabase::TestDatabase(const std::string& prefix) {
  static std::atomic<int> counter{0};
  auto& c = PgCluster::Get();
  if (!c.available()) return;
  name_ = "cbt_" + prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  std::string out;
  ok_ = c.Psql("postgres", "CREATE DATABASE \"" + name_ + "\"", &out);
}

TestDatabase::~TestDatabase() {
  if (!ok_) return;
  auto& c = PgCluster::Get();
  c.Psql("postgres", "DROP DATABASE IF EXISTS \"" + name_ + "\" WITH (FORCE)");
  for (const auto& r : roles_) c.Psql("postgres", "DROP ROLE IF EXISTS \"" + r + "\"");
}

std::string TestDatabase::UrlFor(const std::string& role) const {
  auto& c = PgCluster::Get();
  std::string host;
  for (char ch : c.host()) {
    if (ch == '/') host += "%2F";
    else host.push_back(ch);
  }
  return "postgresql://" + role + "@" + host + ":" + c.port() + "/" + name_;
}

bool TestDatabase::Psql(const std::string& sql, std::string* out) const {
  return PgCluster::Get().Psql(name_, sql, out);
}

std::string TestDatabase::Query(const std::string& sql) const {
  std::string out;
  if (!Psql(sql, &out)) return "";
  return Trim(out);
}

std::string TestDatabase::CreateRole(const std::string& suffix, const std::string& extra_sql) {
  std::string role = name_ + "_" + suffix;
  PgCluster::Get().Psql("postgres", "CREATE ROLE \"" + role + "\" LOGIN NOSUPERUSER " + extra_sql);
  roles_.push_back(role);
  return role;
}

}  // namespace cb::testing
