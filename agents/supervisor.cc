#include "agents/supervisor.h"

#include <algorithm>
#include <csignal>
#include <set>

namespace cb {

std::string_view ServiceStateName(ServiceState s) {
  switch (s) {
    case ServiceState::kStarting:
      return "starting";
    case ServiceState::kRunning:
      return "running";
    case ServiceState::kBackoff:
      return "backoff";
    case ServiceState::kStopping:
      return "stopping";
    case ServiceState::kStopped:
      return "stopped";
    case ServiceState::kExited:
      return "exited";
    case ServiceState::kCircuitOpen:
      return "circuit-open";
  }
  return "unknown";
}

std::optional<ServiceState> ServiceStateFromName(std::string_view name) {
  for (auto s : {ServiceState::kStarting, ServiceState::kRunning, ServiceState::kBackoff,
                 ServiceState::kStopping, ServiceState::kStopped, ServiceState::kExited,
                 ServiceState::kCircuitOpen}) {
    if (ServiceStateName(s) == name) {
      return s;
    }
  }
  return std::nullopt;
}

Supervisor::Supervisor(ProcessLauncher* launcher, RandomSource random, LogPathFn log_path)
    : launcher_(launcher), random_(std::move(random)), log_path_(std::move(log_path)) {}

namespace {

// The longest delay a backoff restart can have been scheduled with (last value, full jitter).
Duration MaxBackoff(const ServiceSpec& spec) {
  const auto& b = spec.restart.backoff_seconds;
  double longest = b.empty() ? 0.0 : *std::max_element(b.begin(), b.end());
  return Seconds(std::max(0.0, longest) * (1.0 + std::clamp(spec.restart.jitter, 0.0, 1.0)));
}

// A persisted wall-clock due time as a monotonic instant: past ones are due now, ones further
// away than `longest` (the wall clock went back) are cut to now + longest; none persisted:
// `fallback`.
MonoTime RestoredDueTime(const std::optional<WallTime>& due, Duration longest, MonoTime now,
                         WallTime wall_now, MonoTime fallback) {
  if (!due) {
    return fallback;
  }
  Duration left = std::chrono::duration_cast<Duration>(*due - wall_now);
  return now + std::clamp(left, Duration::zero(), longest);
}

}  // namespace

double Supervisor::BackoffSeconds(const Svc& s) {
  const auto& b = s.spec.restart.backoff_seconds;
  if (b.empty()) {
    return 0;
  }
  size_t k = static_cast<size_t>(std::max(1, s.consecutive_failures));
  double base = b[std::min(k - 1, b.size() - 1)];
  double j = std::clamp(s.spec.restart.jitter, 0.0, 1.0);
  double u = random_ ? random_() : 0.5;
  u = std::clamp(u, 0.0, 1.0);
  return std::max(0.0, base * (1.0 - j + 2.0 * j * u));
}

void Supervisor::BeginStart(Svc& s) {
  Touch();
  s.state = ServiceState::kStarting;
  s.process.reset();
  s.adopted = false;
  s.kill_sent = false;
  s.after_stop = AfterStop::kStay;
}

void Supervisor::StartNow(Svc& s, MonoTime now) {
  BeginStart(s);
  FinishStart(s, launcher_->Start(s.spec, log_path_ ? log_path_(s.spec.name) : std::string()), now);
}

void Supervisor::FinishStart(Svc& s, Result<ProcessId> r, MonoTime now) {
  if (r) {
    s.process = *r;
    s.started = now;
    s.state = ServiceState::kRunning;
    s.last_error.clear();
    return;
  }
  // An exec failure (or any start failure) is a failure, like an immediate crash.
  s.last_error = r.error().message;
  s.consecutive_failures++;
  if (s.spec.restart.policy == RestartPolicy::kNever) {
    s.state = ServiceState::kExited;
    return;
  }
  ScheduleRestart(s, now);
}

void Supervisor::ScheduleRestart(Svc& s, MonoTime now) {
  if (s.consecutive_failures >= std::max(1, s.spec.restart.circuit_break_after_failures)) {
    s.state = ServiceState::kCircuitOpen;
    s.next_start = now + Seconds(s.spec.restart.probe_after_seconds);
  } else {
    s.state = ServiceState::kBackoff;
    s.next_start = now + Seconds(BackoffSeconds(s));
  }
}

void Supervisor::HandleExit(Svc& s, ExitStatus status, MonoTime now) {
  Touch();
  bool healthy = (now - s.started) >= Seconds(s.spec.restart.healthy_after_seconds);
  if (healthy) {
    s.consecutive_failures = 0;
  }
  if (!healthy || !status.Clean()) {
    s.consecutive_failures++;
  }
  s.last_exit = status;
  s.process.reset();
  s.adopted = false;
  bool restart = false;
  switch (s.spec.restart.policy) {
    case RestartPolicy::kAlways:
      restart = true;
      break;
    case RestartPolicy::kOnFailure:
      restart = !status.Clean();
      break;
    case RestartPolicy::kNever:
      restart = false;
      break;
  }
  if (!restart) {
    s.state = ServiceState::kExited;
    return;
  }
  ScheduleRestart(s, now);
}

void Supervisor::BeginStop(Svc& s, MonoTime now, AfterStop after) {
  Touch();
  s.after_stop = after;
  if (!s.process) {
    return;  // callers handle the no-process case
  }
  (void)launcher_->SignalGroup(s.process->pid, s.spec.stop.signal);
  s.state = ServiceState::kStopping;
  s.kill_at = now + Seconds(s.spec.stop.grace_seconds);
  s.kill_sent = (s.spec.stop.signal == SIGKILL);
}

ApplyResult Supervisor::Apply(const std::vector<ServiceSpec>& desired, MonoTime now) {
  Touch();
  ApplyResult out;
  std::set<std::string> names;
  std::vector<Svc*> to_start;  // started together at the end (launcher->StartMany)
  for (const auto& d : desired) {
    names.insert(d.name);
    auto it = services_.find(d.name);
    if (it == services_.end()) {
      Svc& s = services_[d.name];
      s.spec = d;
      to_start.push_back(&s);
      out.started.push_back(d.name);
      continue;
    }
    Svc& s = it->second;
    if (!s.desired) {
      // Removed earlier and still stopping; wanted again: start it with this definition.
      s.desired = true;
      s.manual_stop = false;
      s.pending_spec = d;
      s.after_stop = AfterStop::kRestart;
      out.started.push_back(d.name);
      continue;
    }
    if (s.spec == d && !s.pending_spec) {
      out.unchanged.push_back(d.name);
      continue;
    }
    if (s.pending_spec && *s.pending_spec == d) {
      out.unchanged.push_back(d.name);  // the same change is already under way
      continue;
    }
    s.manual_stop = false;
    if (s.process) {
      s.pending_spec = d;
      if (s.state == ServiceState::kStopping) {
        s.after_stop = AfterStop::kRestart;
      } else {
        BeginStop(s, now, AfterStop::kRestart);
      }
    } else {
      s.spec = d;
      s.pending_spec.reset();
      s.consecutive_failures = 0;
      s.restarts++;
      to_start.push_back(&s);
    }
    out.restarted.push_back(d.name);
  }
  std::vector<std::string> erase;
  for (auto& [name, s] : services_) {
    if (names.count(name) || !s.desired) {
      continue;
    }
    s.desired = false;
    s.pending_spec.reset();
    out.stopped.push_back(name);
    if (s.process) {
      if (s.state == ServiceState::kStopping) {
        s.after_stop = AfterStop::kRemove;
      } else {
        BeginStop(s, now, AfterStop::kRemove);
      }
    } else {
      erase.push_back(name);
    }
  }
  for (const auto& n : erase) {
    services_.erase(n);  // never one of to_start (those are desired)
  }
  if (!to_start.empty()) {
    std::vector<StartRequest> reqs;
    reqs.reserve(to_start.size());
    for (Svc* s : to_start) {
      BeginStart(*s);
      reqs.push_back({&s->spec, log_path_ ? log_path_(s->spec.name) : std::string()});
    }
    auto results = launcher_->StartMany(reqs);
    for (size_t i = 0; i < to_start.size(); ++i) {
      FinishStart(*to_start[i],
                  i < results.size() ? std::move(results[i])
                                     : Result<ProcessId>(Err(Code::kInternal, "no start result")),
                  now);
    }
  }
  return out;
}

void Supervisor::OnExit(pid_t pid, ExitStatus status, MonoTime now) {
  auto it = std::find_if(services_.begin(), services_.end(), [&](const auto& kv) {
    return kv.second.process && kv.second.process->pid == pid;
  });
  if (it == services_.end()) {
    return;
  }
  Svc& s = it->second;
  if (s.adopted) {
    status = ExitStatus::Unknown();  // not our child: no status to read
  }
  // Whatever is left of its process group (grandchildren) goes with it.
  (void)launcher_->SignalGroup(pid, SIGKILL);
  if (s.state != ServiceState::kStopping) {
    HandleExit(s, status, now);
    return;
  }
  Touch();
  s.last_exit = status;
  s.process.reset();
  s.adopted = false;
  switch (s.after_stop) {
    case AfterStop::kRemove:
      services_.erase(it);
      return;
    case AfterStop::kRestart:
      if (s.pending_spec) {
        s.spec = *s.pending_spec;
        s.pending_spec.reset();
        s.consecutive_failures = 0;
      }
      s.restarts++;
      StartNow(s, now);
      return;
    case AfterStop::kStay:
      s.state = ServiceState::kStopped;
      return;
  }
}

void Supervisor::Step(MonoTime now) {
  for (auto& [name, s] : services_) {
    switch (s.state) {
      case ServiceState::kBackoff:
      case ServiceState::kCircuitOpen:
        if (now >= s.next_start) {
          s.restarts++;
          StartNow(s, now);
        }
        break;
      case ServiceState::kStopping:
        if (!s.kill_sent && now >= s.kill_at && s.process) {
          Touch();
          (void)launcher_->SignalGroup(s.process->pid, SIGKILL);
          s.kill_sent = true;
        }
        break;
      case ServiceState::kRunning:
        if (s.consecutive_failures > 0 &&
            now - s.started >= Seconds(s.spec.restart.healthy_after_seconds)) {
          Touch();
          s.consecutive_failures = 0;
        }
        break;
      default:
        break;
    }
  }
}

std::optional<MonoTime> Supervisor::NextDeadline() const {
  std::optional<MonoTime> best;
  auto consider = [&](MonoTime t) {
    if (!best || t < *best) {
      best = t;
    }
  };
  for (const auto& [name, s] : services_) {
    switch (s.state) {
      case ServiceState::kBackoff:
      case ServiceState::kCircuitOpen:
        consider(s.next_start);
        break;
      case ServiceState::kStopping:
        if (!s.kill_sent) {
          consider(s.kill_at);
        }
        break;
      case ServiceState::kRunning:
        if (s.consecutive_failures > 0) {
          consider(s.started + Seconds(s.spec.restart.healthy_after_seconds));
        }
        break;
      default:
        break;
    }
  }
  return best;
}

Result<Supervisor::Svc*> Supervisor::FindDesired(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end() || !it->second.desired) {
    return Err(Code::kNotFound, "service '{}' not found", name);
  }
  return &it->second;
}

Result<ServiceStatus> Supervisor::Start(const std::string& name, MonoTime now, WallTime wall_now) {
  CB_TRY(Svc * found, FindDesired(name));
  Svc& s = *found;
  Touch();
  s.manual_stop = false;
  if (s.state == ServiceState::kStopping) {
    s.after_stop = AfterStop::kRestart;
  } else if (!s.process) {
    StartNow(s, now);
  }
  return StatusFor(s, now, wall_now);
}

Result<ServiceStatus> Supervisor::Stop(const std::string& name, MonoTime now, WallTime wall_now) {
  CB_TRY(Svc * found, FindDesired(name));
  Svc& s = *found;
  Touch();
  s.manual_stop = true;
  if (s.state == ServiceState::kStopping) {
    s.after_stop = AfterStop::kStay;
  } else if (s.process) {
    BeginStop(s, now, AfterStop::kStay);
  } else {
    s.state = ServiceState::kStopped;
  }
  return StatusFor(s, now, wall_now);
}

Result<ServiceStatus> Supervisor::Restart(const std::string& name, MonoTime now,
                                          WallTime wall_now) {
  CB_TRY(Svc * found, FindDesired(name));
  Svc& s = *found;
  Touch();
  s.manual_stop = false;
  if (s.state == ServiceState::kStopping) {
    s.after_stop = AfterStop::kRestart;
  } else if (s.process) {
    BeginStop(s, now, AfterStop::kRestart);
  } else {
    s.restarts++;
    StartNow(s, now);
  }
  return StatusFor(s, now, wall_now);
}

Result<ServiceStatus> Supervisor::Reset(const std::string& name, MonoTime now, WallTime wall_now) {
  CB_TRY(Svc * found, FindDesired(name));
  Svc& s = *found;
  Touch();
  s.consecutive_failures = 0;
  if (s.state == ServiceState::kBackoff || s.state == ServiceState::kCircuitOpen) {
    s.restarts++;
    StartNow(s, now);
  }
  return StatusFor(s, now, wall_now);
}

ServiceStatus Supervisor::StatusFor(const Svc& s, MonoTime now, WallTime wall_now) const {
  ServiceStatus st;
  st.name = s.spec.name;
  st.state = s.state;
  st.restarts = s.restarts;
  st.consecutive_failures = s.consecutive_failures;
  st.last_exit = s.last_exit;
  st.last_error = s.last_error;
  st.adopted = s.adopted;
  if (s.process) {
    st.pid = s.process->pid;
    st.uptime_seconds = std::max(0.0, ToSeconds(now - s.started));
    st.started_at = MonoToWall(s.started, now, wall_now);
  }
  if (s.state == ServiceState::kBackoff || s.state == ServiceState::kCircuitOpen) {
    st.next_start_at = MonoToWall(s.next_start, now, wall_now);
  }
  return st;
}

std::vector<ServiceStatus> Supervisor::Status(MonoTime now, WallTime wall_now) const {
  std::vector<ServiceStatus> out;
  out.reserve(services_.size());
  for (const auto& [name, s] : services_) {
    out.push_back(StatusFor(s, now, wall_now));
  }
  return out;
}

Result<ServiceStatus> Supervisor::StatusOf(const std::string& name, MonoTime now,
                                           WallTime wall_now) const {
  auto it = services_.find(name);
  if (it == services_.end()) {
    return Err(Code::kNotFound, "service '{}' not found", name);
  }
  return StatusFor(it->second, now, wall_now);
}

std::vector<ServiceSpec> Supervisor::Desired() const {
  std::vector<ServiceSpec> out;
  for (const auto& [name, s] : services_) {
    if (s.desired) {
      out.push_back(s.pending_spec.value_or(s.spec));
    }
  }
  return out;
}

std::vector<pid_t> Supervisor::LivePids() const {
  std::vector<pid_t> out;
  for (const auto& [name, s] : services_) {
    if (s.process) {
      out.push_back(s.process->pid);
    }
  }
  return out;
}

std::string Supervisor::NameOfPid(pid_t pid) const {
  for (const auto& [name, s] : services_) {
    if (s.process && s.process->pid == pid) {
      return name;
    }
  }
  return {};
}

std::vector<PersistedService> Supervisor::Snapshot(MonoTime now, WallTime wall_now) const {
  std::vector<PersistedService> out;
  for (const auto& [name, s] : services_) {
    PersistedService p;
    p.spec = s.pending_spec.value_or(s.spec);
    p.state = s.state;
    p.process = s.process;
    if (s.process) {
      p.started_at = MonoToWall(s.started, now, wall_now);
    }
    p.manual_stop = s.manual_stop;
    p.restarts = s.restarts;
    p.consecutive_failures = s.consecutive_failures;
    p.last_exit = s.last_exit;
    p.last_error = s.last_error;
    p.removing = !s.desired;
    if (s.state == ServiceState::kBackoff || s.state == ServiceState::kCircuitOpen) {
      p.next_start_at = MonoToWall(s.next_start, now, wall_now);
    }
    out.push_back(std::move(p));
  }
  return out;
}

void Supervisor::Restore(const std::vector<PersistedService>& saved, MonoTime now,
                         WallTime wall_now) {
  Touch();
  services_.clear();
  for (const auto& p : saved) {
    Svc s;
    s.spec = p.spec;
    s.restarts = p.restarts;
    s.consecutive_failures = p.consecutive_failures;
    s.last_exit = p.last_exit;
    s.last_error = p.last_error;
    s.manual_stop = p.manual_stop;
    s.desired = !p.removing;
    s.state = p.state;
    if (p.started_at) {
      s.started = now - std::chrono::duration_cast<Duration>(wall_now - *p.started_at);
      if (s.started > now) {
        s.started = now;
      }
    } else {
      s.started = now;
    }
    AfterStop after = p.removing      ? AfterStop::kRemove
                      : p.manual_stop ? AfterStop::kStay
                                      : AfterStop::kRestart;
    bool was_stopping = p.state == ServiceState::kStopping;
    if (p.process) {
      if (launcher_->Adopt(*p.process)) {
        s.process = p.process;
        s.adopted = true;
        s.state = ServiceState::kRunning;
        Svc& ref = services_[p.spec.name] = std::move(s);
        if (was_stopping || p.removing || p.manual_stop) {
          BeginStop(ref, now, after);
        }
        continue;
      }
      // Died while no agent watched it: its status cannot be known.
      if (p.removing) {
        continue;
      }
      s.last_exit = ExitStatus::Unknown();
      if (was_stopping || p.manual_stop) {
        s.state = p.manual_stop ? ServiceState::kStopped : ServiceState::kStopping;
        Svc& ref = services_[p.spec.name] = std::move(s);
        if (!p.manual_stop) {
          ref.restarts++;
          StartNow(ref, now);
        }
        continue;
      }
      Svc& ref = services_[p.spec.name] = std::move(s);
      ref.process = p.process;  // HandleExit clears it
      HandleExit(ref, ExitStatus::Unknown(), now);
      if (ref.state == ServiceState::kBackoff) {
        ref.next_start = now;  // it has been down already
      }
      continue;
    }
    if (p.removing) {
      continue;
    }
    Svc& ref = services_[p.spec.name] = std::move(s);
    switch (p.state) {
      case ServiceState::kBackoff:
        ref.next_start = RestoredDueTime(p.next_start_at, MaxBackoff(ref.spec), now, wall_now, now);
        break;
      case ServiceState::kCircuitOpen: {
        Duration probe = Seconds(ref.spec.restart.probe_after_seconds);
        ref.next_start = RestoredDueTime(p.next_start_at, probe, now, wall_now, now + probe);
        break;
      }
      case ServiceState::kStarting:
      case ServiceState::kRunning:
      case ServiceState::kStopping:
        if (p.manual_stop) {
          ref.state = ServiceState::kStopped;
        } else {
          StartNow(ref, now);
        }
        break;
      case ServiceState::kStopped:
      case ServiceState::kExited:
        break;
    }
  }
}

}  // namespace cb
