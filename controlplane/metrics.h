// cbctld's own metrics in Prometheus text format (cbctld_* names; see controlplane/API.md).
// Histogram: fixed buckets, cumulative on render. Metrics: API request durations by
// (method, route) and counts by status.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace cb::cp {

class Histogram {
 public:
  Histogram();
  void Observe(double seconds);
  // Lines "<name>_bucket{<labels>le=\"…\"} n", "_sum", "_count". `labels` is "" or
  // `route="/v1/x",method="GET",` (with a trailing comma).
  std::string Render(const std::string& name, const std::string& labels) const;
  int64_t count() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class ApiMetrics {
 public:
  void ObserveRequest(const std::string& method, const std::string& route, int status, double seconds);
  // "# HELP/# TYPE" + series for cbctld_api_request_duration_seconds and cbctld_api_requests_total.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Histogram> durations_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> counts_;
};

// Escapes a label value (backslash, quote, newline).
std::string EscapeLabel(const std::string& v);

}  // namespace cb::cp
