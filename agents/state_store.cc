#include "agents/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "core/service.h"

namespace cb {
namespace {

using nlohmann::json;

json ExitToStateJson(const ExitStatus& e) {
  switch (e.kind) {
    case ExitStatus::kCode:
      return json{{"code", e.value}};
    case ExitStatus::kSignal:
      return json{{"signal", e.value}};
    case ExitStatus::kUnknown:
      break;
  }
  return json{{"unknown", true}};
}

Result<ExitStatus> ExitFromStateJson(const json& j, const std::string& path) {
  if (!j.is_object()) {
    return Err(Code::kInvalidArgument, "{}: expected an object", path);
  }
  if (j.contains("code") && j["code"].is_number_integer()) {
    return ExitStatus::Code(j["code"].get<int>());
  }
  if (j.contains("signal") && j["signal"].is_number_integer()) {
    return ExitStatus::Signal(j["signal"].get<int>());
  }
  if (j.contains("unknown")) {
    return ExitStatus::Unknown();
  }
  return Err(Code::kInvalidArgument, "{}: expected {{code}}, {{signal}} or {{unknown}}", path);
}

Result<void> WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Err(ErrnoError("write " + path, errno));
    }
    off += static_cast<size_t>(n);
  }
  return Ok();
}

std::string CompactTime(WallTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  (void)std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

json ExitStatusToJson(const ExitStatus& e) {
  switch (e.kind) {
    case ExitStatus::kCode:
      return json{{"code", e.value}};
    case ExitStatus::kSignal:
      return json{{"signal", SignalName(e.value)}};
    case ExitStatus::kUnknown:
      break;
  }
  return json{{"unknown", true}};
}

std::string StatePath(const std::string& state_dir) { return state_dir + "/state.json"; }

json StateToJson(const AgentState& s, WallTime now) {
  json services = json::array();
  for (const auto& p : s.services) {
    json spec;
    to_json(spec, p.spec);
    json e{{"spec", spec},
           {"state", std::string(ServiceStateName(p.state))},
           {"manual_stop", p.manual_stop},
           {"removing", p.removing},
           {"restarts", p.restarts},
           {"consecutive_failures", p.consecutive_failures},
           {"last_error", p.last_error}};
    e["pid"] = p.process ? json(p.process->pid) : json(nullptr);
    e["start_ticks"] = p.process ? json(p.process->start_ticks) : json(nullptr);
    e["started_at_ns"] = p.started_at ? json(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 p.started_at->time_since_epoch())
                                                 .count())
                                      : json(nullptr);
    e["last_exit"] = p.last_exit ? ExitToStateJson(*p.last_exit) : json(nullptr);
    e["next_start_at_ns"] = p.next_start_at
                                ? json(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           p.next_start_at->time_since_epoch())
                                           .count())
                                : json(nullptr);
    services.push_back(std::move(e));
  }
  return json{{"version", 1},
              {"owner", s.owner ? json(*s.owner) : json(nullptr)},
              {"saved_at", FormatWallTime(now)},
              {"services", services}};
}

Result<AgentState> StateFromJson(const json& j) {
  if (!j.is_object()) {
    return Err(Code::kInvalidArgument, "expected a JSON object at the top");
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != 1) {
    return Err(Code::kInvalidArgument, "version: expected 1");
  }
  AgentState st;
  if (j.contains("owner") && j["owner"].is_string()) {
    st.owner = j["owner"].get<std::string>();
  }
  if (!j.contains("services") || !j["services"].is_array()) {
    return Err(Code::kInvalidArgument, "services: expected a list");
  }
  try {
    size_t i = 0;
    for (const auto& e : j["services"]) {
      std::string path = fmt::format("services[{}]", i++);
      if (!e.is_object()) {
        return Err(Code::kInvalidArgument, "{}: expected an object", path);
      }
      if (!e.contains("spec")) {
        return Err(Code::kInvalidArgument, "{}.spec: missing", path);
      }
      CB_TRY(ServiceSpec spec, ServiceSpecFromJson(e["spec"], path + ".spec"));
      PersistedService p;
      p.spec = std::move(spec);
      auto state = ServiceStateFromName(e.value("state", std::string("stopped")));
      if (!state) {
        return Err(Code::kInvalidArgument, "{}.state: unknown state", path);
      }
      p.state = *state;
      if (e.contains("pid") && e["pid"].is_number_integer()) {
        ProcessId id;
        id.pid = e["pid"].get<pid_t>();
        id.start_ticks = e.value("start_ticks", uint64_t{0});
        p.process = id;
      }
      if (e.contains("started_at_ns") && e["started_at_ns"].is_number_integer()) {
        p.started_at = WallTime(std::chrono::duration_cast<WallTime::duration>(
            std::chrono::nanoseconds(e["started_at_ns"].get<int64_t>())));
      }
      if (e.contains("next_start_at_ns") && !e["next_start_at_ns"].is_null()) {
        if (!e["next_start_at_ns"].is_number_integer()) {
          return Err(Code::kInvalidArgument,
                     "{}.next_start_at_ns: expected an integer (ns since the epoch) or null", path);
        }
        p.next_start_at = WallTime(std::chrono::duration_cast<WallTime::duration>(
            std::chrono::nanoseconds(e["next_start_at_ns"].get<int64_t>())));
      }
      p.manual_stop = e.value("manual_stop", false);
      p.removing = e.value("removing", false);
      p.restarts = e.value("restarts", 0);
      p.consecutive_failures = e.value("consecutive_failures", 0);
      p.last_error = e.value("last_error", std::string());
      if (e.contains("last_exit") && !e["last_exit"].is_null()) {
        CB_TRY(ExitStatus x, ExitFromStateJson(e["last_exit"], path + ".last_exit"));
        p.last_exit = x;
      }
      st.services.push_back(std::move(p));
    }
  } catch (const json::exception& ex) {
    return Err(Code::kInvalidArgument, "wrong type: {}", ex.what());
  }
  return st;
}

Result<void> SaveState(const std::string& state_dir, const AgentState& s, WallTime now) {
  std::string path = StatePath(state_dir);
  std::string tmp = path + ".tmp";
  std::string data = StateToJson(s, now).dump(1) + "\n";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Err(ErrnoError("cannot write state file " + tmp, errno));
  }
  auto w = WriteAll(fd, data, tmp);
  if (!w) {
    close(fd);
    return w;
  }
  if (fsync(fd) != 0) {
    int e = errno;
    close(fd);
    return Err(ErrnoError("fsync " + tmp, e));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return Err(ErrnoError("rename " + tmp + " to " + path, errno));
  }
  int dfd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return Ok();
}

Result<LoadedState> LoadState(const std::string& state_dir, WallTime now) {
  LoadedState out;
  std::string path = StatePath(state_dir);
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
      return out;
    }
    return Err(ErrnoError("cannot read state file " + path, errno));
  }
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  std::string reason;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    reason = "not valid JSON";
  } else {
    auto st = StateFromJson(j);
    if (st) {
      out.state = std::move(*st);
      return out;
    }
    reason = st.error().message;
  }
  std::string aside = path + ".corrupt-" + CompactTime(now);
  if (rename(path.c_str(), aside.c_str()) != 0) {
    return Err(ErrnoError("cannot move corrupt state file " + path + " aside to " + aside, errno));
  }
  out.corrupt_moved_to = aside;
  out.corrupt_reason = reason;
  return out;
}

}  // namespace cb
