// A fake cbagent behind the control plane's Transport seam (controlplane/transport.h): answers
// agents/PROTOCOL.md requests in memory and records every request, so reconciler tests can
// assert what was sent without processes or sockets.
//
// FakeAgent semantics (a small model of the real agent): `apply` replaces the desired services
// (new -> started with a fresh pid, changed -> restarted with a fresh pid, missing -> stopped
// and forgotten, unchanged -> left alone, also when stopped); `stop` sets state stopped; `start`
// starts with a fresh pid; `ps` lists them. `down = true` makes Connect() fail (kUnavailable).
// Not thread-safe: drive from the test thread.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controlplane/transport.h"
#include "core/service.h"

namespace cb::testing {

struct FakeAgent {
  struct Svc {
    ServiceSpec spec;
    std::string state = "running";
    int64_t pid = 0;
  };
  std::map<std::string, Svc> services;
  std::string owner;
  std::vector<std::string> methods;  // every request's method, in order
  std::vector<nlohmann::json> requests;
  int protocol = 1;
  bool down = false;
  int64_t next_pid = 1000;
  int connects = 0;

  nlohmann::json Status(const std::string& name, const Svc& s) const {
    nlohmann::json st = {{"name", name}, {"state", s.state}, {"restarts", 0}};
    st["pid"] = s.state == "running" ? nlohmann::json(s.pid) : nlohmann::json(nullptr);
    return st;
  }

  nlohmann::json Handle(const nlohmann::json& req) {
    using nlohmann::json;
    methods.push_back(req.value("method", ""));
    requests.push_back(req);
    json reply = {{"v", 1}, {"id", req["id"]}};
    std::string m = req.value("method", "");
    const json& p = req.contains("params") ? req["params"] : json::object();
    if (m == "hello") {
      reply["result"] = {{"agent", "cbagent fake"}, {"protocol", protocol}, {"host", "fake"}, {"pid", 42},
                         {"managed_by", owner.empty() ? json(nullptr) : json(owner)}};
    } else if (m == "apply") {
      std::string o = p.value("owner", "");
      if (!owner.empty() && o != owner && !p.value("force", false)) {
        reply["error"] = {{"code", "conflict"}, {"message", "managed by " + owner}};
        return reply;
      }
      owner = o;
      json started = json::array(), restarted = json::array(), stopped = json::array(), unchanged = json::array();
      std::map<std::string, Svc> next;
      for (const auto& j : p["services"]) {
        auto spec = ServiceSpecFromJson(j, "services");
        if (!spec) {
          reply["error"] = {{"code", "invalid_argument"}, {"message", spec.error().message}};
          return reply;
        }
        auto it = services.find(spec->name);
        Svc s;
        s.spec = *spec;
        if (it == services.end()) {
          s.pid = next_pid++;
          started.push_back(spec->name);
        } else if (it->second.spec == *spec) {
          s = it->second;
          unchanged.push_back(spec->name);
        } else {
          s.pid = next_pid++;
          restarted.push_back(spec->name);
        }
        next[spec->name] = s;
      }
      for (const auto& [n, _] : services) {
        if (!next.count(n)) stopped.push_back(n);
      }
      services = std::move(next);
      reply["result"] = {{"started", started}, {"restarted", restarted}, {"stopped", stopped}, {"unchanged", unchanged}};
    } else if (m == "ps") {
      json list = json::array();
      for (const auto& [n, s] : services) list.push_back(Status(n, s));
      reply["result"] = {{"services", list}};
    } else if (m == "start" || m == "stop" || m == "restart" || m == "reset") {
      std::string n = p.value("name", "");
      auto it = services.find(n);
      if (it == services.end()) {
        reply["error"] = {{"code", "not_found"}, {"message", "service '" + n + "' not found"}};
        return reply;
      }
      if (m == "stop") it->second.state = "stopped";
      if (m == "start" && it->second.state != "running") {
        it->second.state = "running";
        it->second.pid = next_pid++;
      }
      if (m == "restart") {
        it->second.state = "running";
        it->second.pid = next_pid++;
      }
      reply["result"] = {{"service", Status(n, it->second)}};
    } else if (m == "logs") {
      reply["result"] = {{"lines", json::array({"line 1", "line 2"})}};
    } else {
      reply["error"] = {{"code", "invalid_argument"}, {"message", "unknown method " + m}};
    }
    return reply;
  }

  // How many requests of `method` were made.
  int Count(const std::string& method) const {
    int n = 0;
    for (const auto& m : methods) n += m == method;
    return n;
  }
};

class FakeAgentTransport final : public cp::Transport {
 public:
  explicit FakeAgentTransport(FakeAgent* a) : agent_(a) {}
  Result<void> WriteLine(std::string_view line) override {
    if (closed_ || agent_->down) return Err(Code::kUnavailable, "fake agent: connection closed");
    auto req = nlohmann::json::parse(line, nullptr, false);
    replies_.push_back(agent_->Handle(req).dump());
    return Ok();
  }
  Result<std::string> ReadLine(Duration) override {
    if (replies_.empty()) return Err(Code::kTimeout, "fake agent: no reply queued");
    std::string r = replies_.front();
    replies_.pop_front();
    return r;
  }
  void Close() override { closed_ = true; }

 private:
  FakeAgent* agent_;
  std::deque<std::string> replies_;
  bool closed_ = false;
};

class FakeAgentConnector final : public cp::Connector {
 public:
  explicit FakeAgentConnector(FakeAgent* a) : agent_(a) {}
  Result<std::unique_ptr<cp::Transport>> Connect() override {
    agent_->connects++;
    if (agent_->down) return Err(Code::kUnavailable, "fake agent is down");
    return std::unique_ptr<cp::Transport>(new FakeAgentTransport(agent_));
  }
  std::string Describe() const override { return "fake:agent"; }

 private:
  FakeAgent* agent_;
};

}  // namespace cb::testing
