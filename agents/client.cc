#include "agents/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agents/agent.h"

namespace cb {

Result<int> ConnectAgentSocket(const std::string& state_dir) {
  std::string path = AgentSocketPath(state_dir);
  CB_TRY_VOID(CheckSocketPathLength(path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Err(ErrnoError("socket", errno));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    return Err(Code::kUnavailable,
               "no cbagent is running for {}: cannot connect to {} ({}); start one with: "
               "cbagent serve --state-dir {}",
               state_dir, path, strerror(e), state_dir);
  }
  return fd;
}

Result<std::unique_ptr<AgentClient>> AgentClient::Connect(const std::string& state_dir) {
  CB_TRY(int fd, ConnectAgentSocket(state_dir));
  return std::unique_ptr<AgentClient>(new AgentClient(fd));
}

AgentClient::~AgentClient() { close(fd_); }

Result<std::string> AgentClient::ReadLine() {
  for (;;) {
    size_t pos = buf_.find('\n');
    if (pos != std::string::npos) {
      std::string line = buf_.substr(0, pos);
      buf_.erase(0, pos + 1);
      return line;
    }
    char tmp[65536];
    ssize_t n = read(fd_, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Err(ErrnoError("reading from the agent", errno));
    }
    if (n == 0) {
      return Err(Code::kUnavailable, "the agent closed the connection");
    }
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

Result<nlohmann::json> AgentClient::ReadMessage() {
  CB_TRY(std::string line, ReadLine());
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Err(Code::kInternal, "the agent sent a line that is not a JSON object: {}",
               line.substr(0, 200));
  }
  return j;
}

Result<nlohmann::json> AgentClient::Call(const std::string& method, const nlohmann::json& params) {
  int id = next_id_++;
  nlohmann::json req{{"v", kProtocolVersion}, {"id", id}, {"method", method}, {"params", params}};
  std::string line = req.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Err(Code::kUnavailable, "sending to the agent: {}", strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  for (;;) {
    CB_TRY(nlohmann::json msg, ReadMessage());
    if (msg.value("id", nlohmann::json()) != nlohmann::json(id)) {
      continue;
    }
    if (msg.contains("error")) {
      const auto& e = msg["error"];
      return Err(CodeFromName(e.value("code", std::string("internal"))), "{}",
                 e.value("message", std::string("(no message)")));
    }
    if (!msg.contains("result")) {
      return Err(Code::kInternal, "reply without result: {}", msg.dump());
    }
    return msg["result"];
  }
}

}  // namespace cb
