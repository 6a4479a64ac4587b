#include "cli/client.h"

#include <httplib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/doc.h"
#include "core/version.h"
#include "core/wire.h"
#include "core/yaml.h"

namespace cb::cli {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  return s.substr(b);
}

std::string ExpandHome(const std::string& p, const EnvFn& env) {
  if (p.starts_with("~/")) {
    const char* home = env("HOME");
    if (home && *home) return std::string(home) + p.substr(1);
  }
  return p;
}

std::string ModeString(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// Reads a token file; warns when group or others may read it.
Result<std::string> ReadTokenFile(const std::string& path, std::vector<std::string>* warnings) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return tl::unexpected(ErrnoError("cannot read token file " + path, errno));
  if ((st.st_mode & 077) != 0)
    warnings->push_back("token file " + path + " can be read by other users (mode " +
                        ModeString(st.st_mode) + "); run: chmod 600 " + path);
  std::ifstream in(path);
  if (!in) return tl::unexpected(ErrnoError("cannot read token file " + path, errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = Trim(ss.str());
  if (token.empty()) return Err(Code::kInvalidArgument, "token file {} is empty", path);
  if (token.find_first_of("\r\n") != std::string::npos)
    return Err(Code::kInvalidArgument, "token file {} holds more than one line", path);
  return token;
}

struct FileConfig {
  std::string server, token, token_file, ca_file;
  bool exists = false;
};

Result<FileConfig> LoadConfigFile(const std::string& path, const EnvFn& env,
                                  std::vector<std::string>* warnings) {
  FileConfig fc;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fc;  // no file: nothing configured
  fc.exists = true;
  Decoder d(path);
  auto root = LoadYamlFile(path, d);
  if (root && !root->IsNull() && d.Map(*root, "", {"server", "token", "token_file", "ca_file"})) {
    d.Get(*root, "server", "", &fc.server);
    d.Get(*root, "token", "", &fc.token);
    d.Get(*root, "token_file", "", &fc.token_file);
    d.Get(*root, "ca_file", "", &fc.ca_file);
  }
  if (!d.ok()) {
    std::string msg = "invalid config file:";
    for (const auto& p : d.problems()) msg += "\n  " + FormatProblem(p);
    return Err(Code::kInvalidArgument, "{}", msg);
  }
  if (!fc.token.empty() && (st.st_mode & 077) != 0)
    warnings->push_back("config file " + path +
                        " holds a token and can be read by other users (mode " +
                        ModeString(st.st_mode) + "); run: chmod 600 " + path);
  fc.token_file = ExpandHome(fc.token_file, env);
  fc.ca_file = ExpandHome(fc.ca_file, env);
  return fc;
}

}  // namespace

Result<std::string> NormalizeServer(std::string_view s) {
  std::string v = Trim(std::string(s));
  if (v.empty()) return Err(Code::kInvalidArgument, "empty server address");
  if (!v.starts_with("http://") && !v.starts_with("https://")) {
    if (v.find("://") != std::string::npos)
      return Err(Code::kInvalidArgument, "server '{}': only http:// and https:// are supported", v);
    v = "http://" + v;
  }
  while (v.size() > 8 && v.back() == '/') v.pop_back();
  std::string rest = v.substr(v.find("://") + 3);
  if (rest.empty() || rest.find('/') != std::string::npos || rest.find(' ') != std::string::npos)
    return Err(Code::kInvalidArgument, "server '{}': expected http(s)://HOST[:PORT]", s);
  return v;
}

Result<ClientConfig> ResolveClientConfig(const GlobalOptions& global, const EnvFn& env) {
  ClientConfig c;
  const char* xdg = env("XDG_CONFIG_HOME");
  const char* home = env("HOME");
  if (xdg && *xdg)
    c.config_path = std::string(xdg) + "/cbctl/config.yaml";
  else if (home && *home)
    c.config_path = std::string(home) + "/.config/cbctl/config.yaml";
  FileConfig fc;
  if (!c.config_path.empty()) {
    CB_TRY(fc, LoadConfigFile(c.config_path, env, &c.warnings));
  }
  // Server.
  std::string raw;
  if (!global.server.empty()) {
    raw = global.server;
    c.server_source = "--server";
  } else if (const char* s = env("CBCTL_SERVER"); s && *s) {
    raw = s;
    c.server_source = "CBCTL_SERVER";
  } else if (!fc.server.empty()) {
    raw = fc.server;
    c.server_source = c.config_path;
  } else {
    raw = "http://" + std::string(wire::kDefaultListen);
    c.server_source = "the default";
  }
  auto norm = NormalizeServer(raw);
  if (!norm) return tl::unexpected(norm.error().Wrap("from " + c.server_source));
  c.server = *norm;
  // Token.
  if (!global.token_file.empty()) {
    CB_TRY(c.token, ReadTokenFile(global.token_file, &c.warnings));
    c.token_source = "--token-file " + global.token_file;
  } else if (const char* t = env("CBCTL_TOKEN"); t && *t) {
    c.token = Trim(t);
    c.token_source = "CBCTL_TOKEN";
  } else if (!fc.token_file.empty()) {
    CB_TRY(c.token, ReadTokenFile(fc.token_file, &c.warnings));
    c.token_source = c.config_path + " (token_file: " + fc.token_file + ")";
  } else if (!fc.token.empty()) {
    c.token = fc.token;
    c.token_source = c.config_path;
  }
  c.ca_file = fc.ca_file;
  return c;
}

std::string EncodePathSegment(std::string_view s) {
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '@') {
      out += ch;
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

struct ApiClient::Impl {
  std::unique_ptr<httplib::Client> http;
  double read_timeout = 30;
};

ApiClient::ApiClient(ClientConfig config) : config_(std::move(config)), impl_(new Impl) {
  impl_->http = std::make_unique<httplib::Client>(config_.server);
  impl_->http->set_connection_timeout(3, 0);
  impl_->http->set_read_timeout(30, 0);
  impl_->http->set_write_timeout(30, 0);
  impl_->http->set_keep_alive(true);
  if (!config_.ca_file.empty()) impl_->http->set_ca_cert_path(config_.ca_file.c_str());
  httplib::Headers h = {{"User-Agent", "cbctl/" + std::string(kVersion)}};
  if (!config_.token.empty()) h.emplace("Authorization", "Bearer " + config_.token);
  impl_->http->set_default_headers(h);
}

ApiClient::~ApiClient() = default;

void ApiClient::SetReadTimeout(double seconds) {
  impl_->read_timeout = seconds;
  if (seconds <= 0) seconds = 24 * 3600.0;
  auto s = static_cast<time_t>(seconds);
  impl_->http->set_read_timeout(s, static_cast<time_t>((seconds - static_cast<double>(s)) * 1e6));
}

namespace {

Error TransportError(const ClientConfig& c, httplib::Error e, double read_timeout) {
  std::string where = "cbctld at " + c.server + " (from " + c.server_source + ")";
  switch (e) {
    case httplib::Error::Read:
      if (read_timeout > 0)
        return Error{Code::kTimeout, "no reply from " + where + " within " +
                                         std::to_string(static_cast<int>(read_timeout)) +
                                         " s (or the connection was dropped)"};
      return Error{Code::kUnavailable, "the connection to " + where + " was dropped"};
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      return Error{Code::kUnavailable, "TLS with " + where + " failed (" + httplib::to_string(e) +
                                           "); for a private CA set ca_file: in " + c.config_path};
    default:
      break;
  }
  std::string why;
  switch (e) {
    case httplib::Error::Connection:
      why = "connection refused (nothing listens there) or host unreachable";
      break;
    case httplib::Error::ConnectionTimeout:
      why = "connection timed out";
      break;
    case httplib::Error::Write:
      why = "the connection was dropped while sending";
      break;
    default:
      why = httplib::to_string(e);
      for (auto& ch : why) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  return Error{
      Code::kUnavailable,
      "cannot reach " + where + ": " + why +
          ". Start it with 'cbctld serve --state-dir DIR', or point cbctl at it with "
          "--server, CBCTL_SERVER or server: in " +
          (c.config_path.empty() ? std::string("~/.config/cbctl/config.yaml") : c.config_path)};
}

Error HttpError(const ClientConfig& c, int status, const std::string& body) {
  Error e = wire::ErrorFromReply(status, body);
  if (e.code == Code::kUnauthenticated) {
    if (c.token.empty())
      e.message +=
          " — no token found: give --token-file FILE, set CBCTL_TOKEN, or put "
          "token_file: in " +
          c.config_path;
    else
      e.message += " — the token from " + c.token_source + " was refused";
  }
  return e;
}

Result<nlohmann::json> ReplyJson(const ClientConfig& c, const httplib::Result& r, double timeout) {
  if (!r) return tl::unexpected(TransportError(c, r.error(), timeout));
  if (r->status < 200 || r->status >= 300) return tl::unexpected(HttpError(c, r->status, r->body));
  if (r->body.empty()) return nlohmann::json(nullptr);
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded())
    return Err(Code::kInternal, "cbctld at {} sent a reply that is not JSON ({} bytes)", c.server,
               r->body.size());
  return j;
}

}  // namespace

Result<nlohmann::json> ApiClient::Get(const std::string& path) {
  auto r = impl_->http->Get(path.c_str());
  return ReplyJson(config_, r, impl_->read_timeout);
}

Result<nlohmann::json> ApiClient::Post(
    const std::string& path, const nlohmann::json& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  std::string text = body.is_null() ? "{}" : body.dump();
  auto r = impl_->http->Post(path.c_str(), h, text, "application/json");
  return ReplyJson(config_, r, impl_->read_timeout);
}

Result<nlohmann::json> ApiClient::Delete(const std::string& path) {
  auto r = impl_->http->Delete(path.c_str());
  return ReplyJson(config_, r, impl_->read_timeout);
}

Result<void> ApiClient::Stream(const std::string& path, const StreamSink& sink) {
  int status = 0;
  std::string error_body;
  bool stopped = false;
  auto r = impl_->http->Get(
      path.c_str(),
      [&](const httplib::Response& resp) {
        status = resp.status;
        return true;
      },
      [&](const char* data, size_t len) {
        if (status < 200 || status >= 300) {
          if (error_body.size() < 65536) error_body.append(data, len);
          return true;
        }
        if (!sink(std::string_view(data, len))) {
          stopped = true;
          return false;
        }
        return true;
      });
  if (stopped) return Ok();
  if (!r) {
    if (status >= 200 && status < 300 && r.error() == httplib::Error::Read) return Ok();
    return tl::unexpected(TransportError(config_, r.error(), impl_->read_timeout));
  }
  if (status < 200 || status >= 300) return tl::unexpected(HttpError(config_, status, error_body));
  return Ok();
}

}  // namespace cb::cli
