// How cbctl reaches cbctld: where the daemon is, which token to send, and an HTTP client for
// the /v1 API (controlplane/API.md, core/wire.h). cpp-httplib stays inside client.cc.
//
// The server comes from, in order: --server, $CBCTL_SERVER, `server:` in the config file, then
// http://127.0.0.1:7390. "HOST:PORT" means http://HOST:PORT.
// The token comes from, in order: --token-file FILE, $CBCTL_TOKEN, then the config file's
// `token_file:` (a path) or `token:` (the secret itself). Never from a flag value. A token file
// (or a config file holding a token) that other users can read is warned about.
// The config file is $XDG_CONFIG_HOME/cbctl/config.yaml, else ~/.config/cbctl/config.yaml:
//   server: http://127.0.0.1:7390
//   token_file: ~/.config/cbctl/token      # or token: cbt_...
//   ca_file: /etc/cbctl/ca.pem              # to verify an https:// server's certificate
//
// Errors: a daemon that cannot be reached is kUnavailable (exit 69) with one line saying
// where cbctl looked and how to start cbctld; a timeout is kTimeout (69); HTTP errors carry
// the daemon's code (401 -> kUnauthenticated, 403 -> kPermissionDenied: exit 77).
// Thread-safety: an ApiClient is used by one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cli/command.h"
#include "core/result.h"

namespace cb::cli {

struct ClientConfig {
  std::string server;                 // normalised: "http://127.0.0.1:7390" (no trailing '/')
  std::string server_source;          // "--server", "CBCTL_SERVER", "<config path>", "the default"
  std::string token;                  // "" = none found
  std::string token_source;           // "--token-file /p", "CBCTL_TOKEN", "<config path>", ""
  std::string ca_file;                // "" = the system's CAs
  std::string config_path;            // the config file that was looked for
  std::vector<std::string> warnings;  // to print on stderr (token file readable by others, …)
};

// Where the environment comes from (tests pass their own).
using EnvFn = std::function<const char*(const char*)>;

// Resolves server and token. Fails on a token file that cannot be read or is empty, a config
// file that is not valid, and a server URL that is not http(s)://HOST[:PORT].
Result<ClientConfig> ResolveClientConfig(const GlobalOptions& global, const EnvFn& env);

// "http://h:p" from "h:p", "http://h:p/", "https://h" (kept); kInvalidArgument otherwise.
Result<std::string> NormalizeServer(std::string_view s);

// The reply of a request whose body is streamed (logs -f).
using StreamSink = std::function<bool(std::string_view chunk)>;  // false stops the stream

class ApiClient {
 public:
  explicit ApiClient(ClientConfig config);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  const ClientConfig& config() const { return config_; }
  // Seconds to wait for a reply (default 30; apply sets more). 0 = no limit.
  void SetReadTimeout(double seconds);

  // JSON requests. 2xx: the body as JSON (null when empty). Else the daemon's error.
  Result<nlohmann::json> Get(const std::string& path);
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body,
                              const std::vector<std::pair<std::string, std::string>>& headers = {});
  Result<nlohmann::json> Delete(const std::string& path);
  // GET whose 2xx body is passed to `sink` as it arrives, until the server closes or `sink`
  // returns false (then kCancelled is not an error: Ok()).
  Result<void> Stream(const std::string& path, const StreamSink& sink);

 private:
  struct Impl;
  ClientConfig config_;
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes a path segment (service addresses, token names).
std::string EncodePathSegment(std::string_view s);

}  // namespace cb::cli
