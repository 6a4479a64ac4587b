// ApiServer: cbctld's HTTP API (/v1, controlplane/API.md) on cpp-httplib, which stays inside
// api_server.cc. Bearer-token auth with scopes, audit of every mutating call and every refused
// authentication, body size limit and validation, one error mapping (wire::HttpStatusFor),
// /metrics, and `logs -f` streams on their own share of the thread pool so they cannot starve
// other requests.
//
// Thread-safety: Bind() then Run() (blocking, on its own thread); Stop() from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "controlplane/reconciler.h"
#include "controlplane/state_store.h"
#include "core/clock.h"
#include "core/result.h"

namespace cb::cp {

struct ApiOptions {
  std::string listen = "127.0.0.1:7390";  // host:port; port 0 picks a free one
  std::string tls_cert;                   // both set: HTTPS
  std::string tls_key;
  bool insecure = false;                  // allow a non-loopback address without TLS
  int worker_threads = 8;                 // for ordinary requests
  int max_followers = 32;                 // concurrent `logs -f` streams; one more gets 503
  std::string version = "0.1.0";
  std::function<std::string()> extra_metrics;  // appended to /metrics (e.g. db maintenance); empty = none
};

// "127.0.0.1:7390" -> host, port. kInvalidArgument naming the input when malformed.
Result<std::pair<std::string, int>> ParseListen(const std::string& listen);
// 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

class ApiServer {
 public:
  ApiServer(StateStore& store, Reconciler& reconciler, DeriveFn derive, const Clock& clock,
            ApiOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Checks the options (refuses a non-loopback address without TLS unless insecure; TLS files
  // must be readable) and binds. Returns the bound "host:port".
  Result<std::string> Bind();
  // Serves until Stop(). Returns when stopped.
  void Run();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cb::cp
