#include "core/service.h"

#include <csignal>
#include <nlohmann/json.hpp>

#include "core/doc.h"
#include "core/service_decode.h"

namespace cb {

namespace {

struct PolicyEntry {
  RestartPolicy policy;
  std::string_view name;
};
constexpr PolicyEntry kPolicies[] = {
    {RestartPolicy::kAlways, "always"},
    {RestartPolicy::kOnFailure, "on-failure"},
    {RestartPolicy::kNever, "never"},
};

struct SignalEntry {
  int number;
  std::string_view name;
};
constexpr SignalEntry kSignals[] = {
    {SIGTERM, "TERM"}, {SIGINT, "INT"},   {SIGHUP, "HUP"},     {SIGQUIT, "QUIT"}, {SIGUSR1, "USR1"},
    {SIGUSR2, "USR2"}, {SIGKILL, "KILL"}, {SIGWINCH, "WINCH"}, {SIGCONT, "CONT"}, {SIGSTOP, "STOP"},
    {SIGTSTP, "TSTP"}, {SIGABRT, "ABRT"}, {SIGALRM, "ALRM"},   {SIGPIPE, "PIPE"}, {SIGSEGV, "SEGV"},
    {SIGBUS, "BUS"},   {SIGFPE, "FPE"},   {SIGILL, "ILL"},     {SIGTRAP, "TRAP"}, {SIGCHLD, "CHLD"},
    {SIGPWR, "PWR"},   {SIGSYS, "SYS"},   {SIGXCPU, "XCPU"},   {SIGXFSZ, "XFSZ"},
};

std::string ToUpper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string_view RestartPolicyName(RestartPolicy p) {
  for (const auto& e : kPolicies) {
    if (e.policy == p) return e.name;
  }
  return "always";
}

Result<void> ValidateServiceName(std::string_view name) {
  if (name.empty()) return Err(Code::kInvalidArgument, "a service name must not be empty");
  auto shown = [&] {
    std::string s;
    for (char c : name) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", u);
        s += buf;
      } else {
        s += c;
      }
    }
    return s;
  };
  if (name.size() > 63)
    return Err(Code::kInvalidArgument, "service name '{}' is longer than 63 characters", shown());
  char first = name.front();
  if (!((first >= 'a' && first <= 'z') || (first >= '0' && first <= '9')))
    return Err(Code::kInvalidArgument,
               "service name '{}' must start with a lower-case letter or a digit", shown());
  for (char c : name) {
    bool good =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!good) {
      unsigned char u = static_cast<unsigned char>(c);
      std::string what = (u < 0x20 || u == 0x7f) ? "a control character"
                         : c == '/'              ? "'/'"
                                                 : "'" + std::string(1, c) + "'";
      return Err(Code::kInvalidArgument,
                 "service name '{}' contains {} (allowed: a-z, 0-9, '.', '_', '-')", shown(), what);
    }
  }
  if (name.find("..") != std::string_view::npos)
    return Err(Code::kInvalidArgument, "service name '{}' must not contain '..'", shown());
  return Ok();
}

Result<int> ParseSignalName(std::string_view name) {
  std::string up = ToUpper(name);
  std::string_view s = up;
  if (s.starts_with("SIG")) s.remove_prefix(3);
  for (const auto& e : kSignals) {
    if (e.name == s) return e.number;
  }
  std::string known;
  for (int i = 0; i < 7; ++i) {
    if (i) known += ", ";
    known += kSignals[i].name;
  }
  return Err(Code::kInvalidArgument, "unknown signal '{}' (expected one of {}, ...)", name, known);
}

std::string SignalName(int sig) {
  for (const auto& e : kSignals) {
    if (e.number == sig) return std::string(e.name);
  }
  return std::to_string(sig);
}

void to_json(nlohmann::json& j, const ServiceSpec& s) {
  j = nlohmann::json{
      {"name", s.name},
      {"command", s.command},
      {"env", s.env},
      {"cwd", s.cwd},
      {"user", s.user},
      {"restart",
       {{"policy", RestartPolicyName(s.restart.policy)},
        {"backoff_seconds", s.restart.backoff_seconds},
        {"jitter", s.restart.jitter},
        {"circuit_break_after_failures", s.restart.circuit_break_after_failures},
        {"healthy_after_seconds", s.restart.healthy_after_seconds},
        {"probe_after_seconds", s.restart.probe_after_seconds}}},
      {"stop", {{"signal", SignalName(s.stop.signal)}, {"grace_seconds", s.stop.grace_seconds}}},
  };
}

Result<ServiceSpec> ServiceSpecFromJson(const nlohmann::json& j, std::string_view path) {
  Decoder d;
  Node n = NodeFromJson(j);
  auto spec = DecodeServiceSpec(d, n, std::string(path));
  if (!d.ok() || !spec) return tl::unexpected(ProblemsToError(d.problems()));
  return *spec;
}

// ---- Decoding (core/service_decode.h) ----

const std::vector<std::string_view> kServiceKeys = {"name", "command", "env", "cwd",
                                                    "user", "restart", "stop"};
const std::vector<std::string_view> kRestartKeys = {"policy",
                                                    "backoff_seconds",
                                                    "jitter",
                                                    "circuit_break_after_failures",
                                                    "healthy_after_seconds",
                                                    "probe_after_seconds"};
const std::vector<std::string_view> kStopKeys = {"signal", "grace_seconds"};

void DecodeRestart(Decoder& d, const Node& n, const std::string& path, RestartSpec* out) {
  if (n.IsNull()) return;
  if (!d.Map(n, path, kRestartKeys)) return;
  if (const Node* p = n.Find("policy"); p && !p->IsNull()) {
    std::string pp = JoinPath(path, "policy");
    if (auto s = d.String(*p, pp)) {
      bool found = false;
      for (const auto& e : kPolicies) {
        if (e.name == *s) {
          out->policy = e.policy;
          found = true;
        }
      }
      if (!found) d.Expected(*p, pp, "one of always, on-failure, never");
    }
  }
  if (const Node* b = n.Find("backoff_seconds"); b && !b->IsNull()) {
    std::string bp = JoinPath(path, "backoff_seconds");
    if (auto v = d.NumberList(*b, bp)) {
      bool good = true;
      if (v->empty()) {
        d.Expected(*b, bp, "a non-empty list of seconds");
        good = false;
      }
      for (size_t i = 0; i < v->size(); ++i) {
        if ((*v)[i] < 0) {
          d.Expected(b->items[i], IndexPath(bp, i), "seconds >= 0");
          good = false;
        } else if (i > 0 && (*v)[i] < (*v)[i - 1]) {
          d.Add(b->items[i].mark, IndexPath(bp, i),
                "backoff must not decrease (" + Describe(b->items[i]) + " after " +
                    Describe(b->items[i - 1]) + ")",
                "a value >= " + Describe(b->items[i - 1]), Describe(b->items[i]));
          good = false;
        }
      }
      if (good) out->backoff_seconds = *v;
    }
  }
  if (const Node* j = n.Find("jitter"); j && !j->IsNull()) {
    std::string jp = JoinPath(path, "jitter");
    if (auto v = d.Number(*j, jp)) {
      if (*v < 0 || *v > 1)
        d.Expected(*j, jp, "a number from 0 to 1");
      else
        out->jitter = *v;
    }
  }
  if (const Node* c = n.Find("circuit_break_after_failures"); c && !c->IsNull()) {
    std::string cp = JoinPath(path, "circuit_break_after_failures");
    if (auto v = d.Int(*c, cp)) {
      if (*v < 1 || *v > 1000000)
        d.Expected(*c, cp, "a positive integer");
      else
        out->circuit_break_after_failures = static_cast<int>(*v);
    }
  }
  auto seconds = [&](std::string_view key, double* field, bool positive) {
    const Node* s = n.Find(key);
    if (!s || s->IsNull()) return;
    std::string sp = JoinPath(path, key);
    if (auto v = d.Number(*s, sp)) {
      if (positive ? *v <= 0 : *v < 0)
        d.Expected(*s, sp, positive ? "seconds > 0" : "seconds >= 0");
      else
        *field = *v;
    }
  };
  seconds("healthy_after_seconds", &out->healthy_after_seconds, false);
  seconds("probe_after_seconds", &out->probe_after_seconds, true);
}

void DecodeStop(Decoder& d, const Node& n, const std::string& path, StopSpec* out) {
  if (n.IsNull()) return;
  if (!d.Map(n, path, kStopKeys)) return;
  if (const Node* s = n.Find("signal"); s && !s->IsNull()) {
    std::string sp = JoinPath(path, "signal");
    if (s->kind == Node::Kind::kNumber) {
      auto v = d.Int(*s, sp);
      if (v && (*v < 1 || *v > 64))
        d.Expected(*s, sp, "a signal name (TERM, INT, HUP, QUIT, USR1, USR2, KILL)");
      else if (v)
        out->signal = static_cast<int>(*v);
    } else if (auto name = d.String(*s, sp)) {
      auto sig = ParseSignalName(*name);
      if (sig)
        out->signal = *sig;
      else
        d.Expected(*s, sp, "a signal name (TERM, INT, HUP, QUIT, USR1, USR2, KILL)");
    }
  }
  if (const Node* g = n.Find("grace_seconds"); g && !g->IsNull()) {
    std::string gp = JoinPath(path, "grace_seconds");
    if (auto v = d.Number(*g, gp)) {
      if (*v < 0)
        d.Expected(*g, gp, "seconds >= 0");
      else
        out->grace_seconds = *v;
    }
  }
}

void CheckCommand(Decoder& d, const Node& at, const std::string& path,
                  const std::vector<std::string>& argv) {
  if (argv.empty()) {
    d.Expected(at, path, "a non-empty list (the program and its arguments)");
    return;
  }
  if (argv[0].empty()) {
    d.Add(at.IsSeq() && !at.items.empty() ? at.items[0].mark : at.mark, IndexPath(path, 0),
          "the program must not be empty", "a program path or name", "\"\"");
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].find('\0') != std::string::npos) {
      d.Add(at.IsSeq() && i < at.items.size() ? at.items[i].mark : at.mark, IndexPath(path, i),
            "an argument must not contain a NUL byte");
    }
  }
}

std::optional<ServiceSpec> DecodeServiceSpec(Decoder& d, const Node& n, const std::string& path,
                                             const RestartSpec& restart_default,
                                             const StopSpec& stop_default) {
  size_t before = d.problems().size();
  if (!d.Map(n, path, kServiceKeys)) return std::nullopt;
  ServiceSpec s;
  s.restart = restart_default;
  s.stop = stop_default;
  if (const Node* name = d.Require(n, "name", path)) {
    std::string np = JoinPath(path, "name");
    if (auto v = d.String(*name, np)) {
      if (auto ok = ValidateServiceName(*v); !ok)
        d.Add(name->mark, np, ok.error().message, "[a-z0-9][a-z0-9._-]*, at most 63 characters",
              Describe(*name));
      s.name = *v;
    }
  }
  if (const Node* cmd = d.Require(n, "command", path)) {
    std::string cp = JoinPath(path, "command");
    if (auto v = d.StringList(*cmd, cp)) {
      CheckCommand(d, *cmd, cp, *v);
      s.command = *v;
    }
  }
  if (d.Get(n, "env", path, &s.env)) {
    for (const auto& [k, v] : s.env) {
      if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
        d.Add(n.Find("env")->KeyMark(k), JoinPath(JoinPath(path, "env"), k),
              "an environment variable name must be non-empty without '=' or NUL");
    }
  }
  if (d.Get(n, "cwd", path, &s.cwd) && !s.cwd.empty() && s.cwd.front() != '/')
    d.Expected(*n.Find("cwd"), JoinPath(path, "cwd"), "an absolute path");
  d.Get(n, "user", path, &s.user);
  if (const Node* r = n.Find("restart"))
    DecodeRestart(d, *r, JoinPath(path, "restart"), &s.restart);
  if (const Node* st = n.Find("stop")) DecodeStop(d, *st, JoinPath(path, "stop"), &s.stop);
  if (d.problems().size() != before) return std::nullopt;
  return s;
}

}  // namespace cb
