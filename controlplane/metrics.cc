#include "controlplane/metrics.h"

#include <fmt/format.h>

namespace cb::cp {

Histogram::Histogram()
    : bounds_{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
      counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double s) {
  std::lock_guard lk(mu_);
  size_t i = 0;
  while (i < bounds_.size() && s > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += s;
  count_++;
}

int64_t Histogram::count() const {
  std::lock_guard lk(mu_);
  return count_;
}

std::string Histogram::Render(const std::string& name, const std::string& labels) const {
  std::lock_guard lk(mu_);
  std::string out;
  int64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, labels, bounds_[i], cum);
  }
  cum += counts_.back();
  out += fmt::format("{}_bucket{{{}le=\"+Inf\"}} {}\n", name, labels, cum);
  std::string l = labels;
  if (!l.empty() && l.back() == ',') l.pop_back();
  std::string braces = l.empty() ? "" : "{" + l + "}";
  out += fmt::format("{}_sum{} {}\n", name, braces, sum_);
  out += fmt::format("{}_count{} {}\n", name, braces, count_);
  return out;
}

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void ApiMetrics::ObserveRequest(const std::string& method, const std::string& route, int status,
                                double seconds) {
  std::lock_guard lk(mu_);
  durations_[{method, route}].Observe(seconds);
  counts_[{method, route, status}]++;
}

std::string ApiMetrics::Render() const {
  std::lock_guard lk(mu_);
  std::string out =
      "# HELP cbctld_api_request_duration_seconds Time to answer an API request, by route.\n"
      "# TYPE cbctld_api_request_duration_seconds histogram\n";
  for (const auto& [k, h] : durations_) {
    out += h.Render("cbctld_api_request_duration_seconds",
                    fmt::format("route=\"{}\",method=\"{}\",", EscapeLabel(k.second), EscapeLabel(k.first)));
  }
  out +=
      "# HELP cbctld_api_requests_total API requests answered, by route and status.\n"
      "# TYPE cbctld_api_requests_total counter\n";
  for (const auto& [k, n] : counts_) {
    out += fmt::format("cbctld_api_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                       EscapeLabel(std::get<1>(k)), EscapeLabel(std::get<0>(k)), std::get<2>(k), n);
  }
  return out;
}

}  // namespace cb::cp
