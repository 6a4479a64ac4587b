#include "controlplane/agent_client.h"

namespace cb::cp {

using nlohmann::json;

AgentClient::AgentClient(std::string host, std::unique_ptr<Transport> t, Duration timeout)
    : host_(std::move(host)), t_(std::move(t)), timeout_(timeout) {}

Result<json> AgentClient::Call(const std::string& method, const json& params) {
  int64_t id = next_id_++;
  json req = {{"v", kAgentProtocol}, {"id", id}, {"method", method}, {"params", params}};
  CB_TRY_VOID(t_->WriteLine(req.dump()).map_error([&](Error e) { return e.Wrap("host " + host_); }));
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (true) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= Duration::zero()) {
      return Err(Code::kTimeout, "host {}: agent did not answer '{}' within {:.0f} s", host_, method,
                 ToSeconds(timeout_));
    }
    auto line = t_->ReadLine(std::chrono::duration_cast<Duration>(left));
    if (!line) return Err(line.error().Wrap("host " + host_));
    json reply = json::parse(*line, nullptr, false);
    if (!reply.is_object()) {
      return Err(Code::kInternal, "host {}: agent sent a line that is not a JSON object: {}", host_,
                 line->substr(0, 200));
    }
    // Skip stream messages and replies to other ids (e.g. a follow on this connection).
    if (!reply.contains("id") || reply["id"] != json(id)) {
      if (reply.contains("id") && reply["id"].is_null() && reply.contains("error")) {
        const json& e = reply["error"];
        return Err(CodeFromName(e.value("code", "internal")), "host {}: agent: {}", host_,
                   e.value("message", std::string("error")));
      }
      continue;
    }
    if (reply.contains("stream")) continue;
    if (reply.contains("error") && reply["error"].is_object()) {
      const json& e = reply["error"];
      std::string code = e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "internal";
      std::string msg = e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
      return tl::unexpected(Error{CodeFromName(code), fmt::format("host {}: agent: {}", host_, msg)});
    }
    if (!reply.contains("result")) {
      return Err(Code::kInternal, "host {}: agent reply to '{}' has neither result nor error", host_, method);
    }
    return reply["result"];
  }
}

Result<AgentHello> AgentClient::Hello(const std::string& client) {
  CB_TRY(json r, Call("hello", json{{"client", client}, {"protocol", kAgentProtocol}}));
  AgentHello h;
  try {
    h.agent = r.value("agent", std::string());
    h.protocol = r.value("protocol", 0);
    h.host = r.value("host", std::string());
    h.pid = r.value("pid", int64_t{0});
    if (r.contains("managed_by") && r["managed_by"].is_string()) h.managed_by = r["managed_by"].get<std::string>();
  } catch (const json::exception& e) {
    return Err(Code::kInternal, "host {}: malformed hello reply: {}", host_, e.what());
  }
  if (h.protocol != kAgentProtocol) {
    return Err(Code::kFailedPrecondition,
               "host {}: agent speaks protocol {} ({}), cbctld speaks {}; upgrade the agent (host upgrade)",
               host_, h.protocol, h.agent, kAgentProtocol);
  }
  return h;
}

namespace {
std::vector<std::string> Names(const json& r, const char* key) {
  std::vector<std::string> out;
  if (r.contains(key) && r[key].is_array()) {
    for (const auto& n : r[key]) {
      if (n.is_string()) out.push_back(n.get<std::string>());
    }
  }
  return out;
}
std::vector<std::string> Lines(const json& r) { return Names(r, "lines"); }
}  // namespace

Result<AgentApplyResult> AgentClient::Apply(const std::vector<ServiceSpec>& services,
                                            const std::string& owner, bool force) {
  json list = json::array();
  for (const auto& s : services) {
    json j;
    to_json(j, s);
    list.push_back(std::move(j));
  }
  CB_TRY(json r, Call("apply", json{{"services", list}, {"owner", owner}, {"force", force}}));
  AgentApplyResult a;
  a.started = Names(r, "started");
  a.restarted = Names(r, "restarted");
  a.stopped = Names(r, "stopped");
  a.unchanged = Names(r, "unchanged");
  return a;
}

Result<std::vector<json>> AgentClient::Ps() {
  CB_TRY(json r, Call("ps", json::object()));
  std::vector<json> out;
  if (r.contains("services") && r["services"].is_array()) {
    for (const auto& s : r["services"]) {
      if (s.is_object() && s.contains("name") && s["name"].is_string()) out.push_back(s);
    }
  }
  return out;
}

Result<json> AgentClient::Action(const std::string& action, const std::string& name) {
  CB_TRY(json r, Call(action, json{{"name", name}}));
  if (r.contains("service")) return r["service"];
  return r;
}

Result<std::vector<std::string>> AgentClient::Logs(const std::string& name, int tail) {
  CB_TRY(json r, Call("logs", json{{"name", name}, {"tail", tail}, {"follow", false}}));
  return Lines(r);
}

Result<std::vector<std::string>> AgentClient::FollowStart(const std::string& name, int tail) {
  follow_id_ = next_id_;
  CB_TRY(json r, Call("logs", json{{"name", name}, {"tail", tail}, {"follow", true}}));
  return Lines(r);
}

Result<std::vector<std::string>> AgentClient::NextStream(Duration wait) {
  while (true) {
    CB_TRY(std::string line, t_->ReadLine(wait));
    json m = json::parse(line, nullptr, false);
    if (!m.is_object()) continue;
    if (m.contains("error") && m["error"].is_object()) {
      return Err(CodeFromName(m["error"].value("code", "internal")), "host {}: agent: {}", host_,
                 m["error"].value("message", std::string()));
    }
    if (m.contains("stream") && m["stream"].is_object()) return Lines(m["stream"]);
  }
}

}  // namespace cb::cp
