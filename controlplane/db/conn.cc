#include "controlplane/db/conn.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <yaml-cpp/yaml.h>

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {
namespace {

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> PercentDecode(std::string_view s, std::string_view what) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || HexVal(s[i + 1]) < 0 || HexVal(s[i + 2]) < 0) {
        return Err(Code::kInvalidArgument, "database URL: bad percent-escape in {}", what);
      }
      out.push_back(static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string QuoteConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

Code CodeForSqlState(const std::string& st) {
  if (st == "42501") return Code::kPermissionDenied;
  if (st == "42P01" || st == "42703" || st == "3D000" || st == "42704") return Code::kNotFound;
  if (st == "55P03") return Code::kTimeout;
  if (st == "57014") return Code::kCancelled;
  if (st.rfind("08", 0) == 0 || st == "57P01" || st == "57P02" || st == "57P03") return Code::kUnavailable;
  if (st == "28P01" || st == "28000") return Code::kUnauthenticated;
  if (st == "40P01" || st == "40001") return Code::kConflict;
  return Code::kInvalidArgument;
}

// libpqxx leaves sqlstate empty for some multi-statement failures; infer the common ones.
std::string GuessSqlState(const std::string& msg) {
  if (msg.find("permission denied") != std::string::npos || msg.find("must be owner") != std::string::npos)
    return "42501";
  if (msg.find("canceling statement due to user request") != std::string::npos) return "57014";
  if (msg.find("lock timeout") != std::string::npos || msg.find("could not obtain lock") != std::string::npos)
    return "55P03";
  if (msg.find("terminating connection") != std::string::npos) return "57P01";
  return "XX000";
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class PqxxDb final : public Db {
 public:
  PqxxDb(std::unique_ptr<pqxx::connection> c, std::string describe)
      : conn_(std::move(c)), describe_(std::move(describe)) {
    pid_ = conn_->backendpid();
  }
  ~PqxxDb() override {
    if (conn_) {
      try {
        conn_->disconnect();
      } catch (...) {
      }
    }
  }

  Result<Rows> Exec(std::string_view sql) override {
    if (!conn_ || !conn_->is_open()) {
      return Err(Code::kUnavailable, "[SQLSTATE 08003] connection to {} is closed", describe_);
    }
    try {
      pqxx::nontransaction tx(*conn_);
      pqxx::result r = tx.exec(std::string(sql));
      Rows out;
      out.affected = static_cast<int64_t>(r.affected_rows());
      for (pqxx::row::size_type c = 0; c < r.columns(); ++c) out.columns.emplace_back(r.column_name(c));
      out.rows.reserve(r.size());
      for (const auto& row : r) {
        std::vector<std::optional<std::string>> vals;
        vals.reserve(row.size());
        for (const auto& f : row) {
          if (f.is_null()) {
            vals.emplace_back(std::nullopt);
          } else {
            vals.emplace_back(std::string(f.c_str(), f.size()));
          }
        }
        out.rows.push_back(std::move(vals));
      }
      return out;
    } catch (const pqxx::sql_error& e) {
      std::string st = e.sqlstate();
      if (st.empty()) st = GuessSqlState(e.what());
      return tl::unexpected(Error{CodeForSqlState(st), "[SQLSTATE " + st + "] " + Trim(e.what())});
    } catch (const pqxx::broken_connection& e) {
      return tl::unexpected(Error{Code::kUnavailable, "[SQLSTATE 08006] connection to " + describe_ +
                                                          " lost: " + Trim(e.what())});
    } catch (const pqxx::in_doubt_error& e) {
      return tl::unexpected(Error{Code::kUnavailable, "[SQLSTATE 08007] " + Trim(e.what())});
    } catch (const std::exception& e) {
      if (!conn_->is_open()) {
        return tl::unexpected(Error{Code::kUnavailable, "[SQLSTATE 08006] connection to " + describe_ +
                                                            " lost: " + Trim(e.what())});
      }
      return tl::unexpected(Error{Code::kInternal, std::string("libpqxx: ") + Trim(e.what())});
    }
  }
  int BackendPid() const override { return pid_; }
  bool IsOpen() const override { return conn_ && conn_->is_open(); }
  void CancelCurrent() override {
    if (!conn_) return;
    try {
      conn_->cancel_query();
    } catch (...) {
    }
  }
  void Abandon() override {
    if (conn_) {
      try {
        conn_->disconnect();
      } catch (...) {
      }
    }
  }
  std::string Describe() const override { return describe_; }

 private:
  std::unique_ptr<pqxx::connection> conn_;
  std::string describe_;
  int pid_ = 0;
};

}  // namespace

std::string ConnParams::ConnInfo() const {
  std::string out;
  for (const auto& [k, v] : kv) {
    if (k == "application_name") continue;
    out += k + "=" + QuoteConnValue(v) + " ";
  }
  out += "application_name=" + QuoteConnValue(application_name);
  return out;
}

std::string ConnParams::Redacted() const {
  if (kv.empty() || (kv.size() == 1 && kv.count("password"))) {
    std::string env;
    for (const char* name : {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE"}) {
      const char* v = std::getenv(name);
      if (v && *v) env += std::string(env.empty() ? "" : " ") + name + "=" + v;
    }
    return env.empty() ? "(libpq defaults)" : "(" + env + ")";
  }
  std::string s = "postgresql://";
  auto get = [&](const char* k) {
    auto it = kv.find(k);
    return it == kv.end() ? std::string() : it->second;
  };
  std::string user = get("user");
  if (!user.empty()) s += user + (kv.count("password") ? ":****" : "") + "@";
  std::string host = get("host");
  bool socket = !host.empty() && host[0] == '/';
  if (!socket) s += host;
  if (!get("port").empty() && !socket) s += ":" + get("port");
  s += "/" + get("dbname");
  std::string q;
  for (const auto& [k, v] : kv) {
    if (k == "user" || k == "password" || k == "dbname" || (k == "host" && !socket) ||
        (k == "port" && !socket) || k == "application_name")
      continue;
    q += (q.empty() ? "?" : "&") + k + "=" + v;
  }
  return s + q;
}

Result<ConnParams> ParseDbUrl(std::string_view url) {
  ConnParams p;
  p.source = "--db-url";
  std::string_view rest;
  if (url.rfind("postgresql://", 0) == 0) {
    rest = url.substr(13);
  } else if (url.rfind("postgres://", 0) == 0) {
    rest = url.substr(11);
  } else {
    return Err(Code::kInvalidArgument,
               "database URL '{}': expected postgresql://[user[:password]@]host[:port]/dbname",
               RedactUrl(url));
  }
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  if (auto sl = rest.find('/'); sl != std::string_view::npos) {
    path = rest.substr(sl + 1);
    rest = rest.substr(0, sl);
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    std::string_view user = userinfo, pass;
    bool has_pass = false;
    if (auto c = userinfo.find(':'); c != std::string_view::npos) {
      user = userinfo.substr(0, c);
      pass = userinfo.substr(c + 1);
      has_pass = true;
    }
    CB_TRY(auto u, PercentDecode(user, "user"));
    if (!u.empty()) p.kv["user"] = u;
    if (has_pass) {
      CB_TRY(auto pw, PercentDecode(pass, "password"));
      p.kv["password"] = pw;
      p.warnings.push_back(
          "the database URL carries a password; prefer --password-file, PGPASSFILE or the spec's "
          "password_file (URLs end up in shell history and process lists)");
    }
  }
  // host[:port], [v6]:port, or a comma list (passed on as is).
  std::string_view hostport = rest;
  if (!hostport.empty()) {
    std::string host, port;
    if (hostport.front() == '[') {
      auto close = hostport.find(']');
      if (close == std::string_view::npos)
        return Err(Code::kInvalidArgument, "database URL '{}': unterminated '[' in host", RedactUrl(url));
      host = std::string(hostport.substr(1, close - 1));
      if (close + 1 < hostport.size() && hostport[close + 1] == ':') port = std::string(hostport.substr(close + 2));
    } else if (hostport.find(',') == std::string_view::npos) {
      auto c = hostport.rfind(':');
      if (c != std::string_view::npos) {
        host = std::string(hostport.substr(0, c));
        port = std::string(hostport.substr(c + 1));
      } else {
        host = std::string(hostport);
      }
    } else {
      host = std::string(hostport);
    }
    CB_TRY(auto h, PercentDecode(host, "host"));
    if (!h.empty()) p.kv["host"] = h;
    if (!port.empty()) {
      for (char ch : port)
        if (!std::isdigit(static_cast<unsigned char>(ch)))
          return Err(Code::kInvalidArgument, "database URL '{}': port '{}' is not a number", RedactUrl(url), port);
      p.kv["port"] = port;
    }
  }
  if (!path.empty()) {
    CB_TRY(auto d, PercentDecode(path, "database name"));
    p.kv["dbname"] = d;
  }
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kvp = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (kvp.empty()) continue;
    auto eq = kvp.find('=');
    if (eq == std::string_view::npos)
      return Err(Code::kInvalidArgument, "database URL '{}': query parameter '{}' has no '='", RedactUrl(url),
                 std::string(kvp));
    CB_TRY(auto k, PercentDecode(kvp.substr(0, eq), "query key"));
    CB_TRY(auto v, PercentDecode(kvp.substr(eq + 1), "query value"));
    if (k == "password") {
      p.warnings.push_back("the database URL carries a password; prefer --password-file or PGPASSFILE");
    }
    p.kv[k] = v;
  }
  return p;
}

std::string RedactUrl(std::string_view url) {
  std::string s(url);
  auto scheme = s.find("://");
  if (scheme == std::string::npos) return s;
  auto start = scheme + 3;
  auto end = s.find_first_of("/?", start);
  std::string auth = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
  auto at = auth.rfind('@');
  if (at != std::string::npos) {
    auto colon = auth.find(':');
    if (colon != std::string::npos && colon < at) {
      s.replace(start + colon + 1, at - colon - 1, "****");
    }
  }
  // ?password=… in the query.
  auto pw = s.find("password=");
  if (pw != std::string::npos && s.find('?') != std::string::npos && pw > s.find('?')) {
    auto e = s.find('&', pw);
    s.replace(pw + 9, (e == std::string::npos ? s.size() : e) - pw - 9, "****");
  }
  return s;
}

Result<ConnParams> ResolveConn(const ConnSource& src) {
  ConnParams p;
  std::string password_file = src.password_file;
  if (!src.db_url.empty()) {
    CB_TRY(p, ParseDbUrl(src.db_url));
  } else if (!src.spec_file.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(src.spec_file);
    } catch (const std::exception& e) {
      return Err(Code::kInvalidArgument, "{}: cannot read the spec: {}", src.spec_file, e.what());
    }
    YAML::Node dbn = root["database"];
    if (!dbn || !dbn.IsMap() || !dbn["url"]) {
      return Err(Code::kInvalidArgument, "{}: database.url is not set (or pass --db-url)", src.spec_file);
    }
    std::string url = dbn["url"].as<std::string>("");
    if (url.rfind("sqlite:", 0) == 0) {
      return Err(Code::kFailedPrecondition,
                 "{}: database.url is SQLite ({}); db commands need the Postgres database", src.spec_file, url);
    }
    CB_TRY(p, ParseDbUrl(url));
    p.source = src.spec_file + ": database.url";
    if (password_file.empty() && dbn["password_file"]) password_file = dbn["password_file"].as<std::string>("");
  }
  if (!password_file.empty()) {
    struct stat st{};
    if (::stat(password_file.c_str(), &st) != 0) {
      return tl::unexpected(ErrnoError("password file " + password_file, errno));
    }
    if (!S_ISREG(st.st_mode)) {
      return Err(Code::kInvalidArgument, "password file {}: not a regular file", password_file);
    }
    if (st.st_mode & 077) {
      p.warnings.push_back("password file " + password_file + " is readable by group or others; chmod 600 it");
    }
    std::ifstream in(password_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string pw = ss.str();
    auto nl = pw.find('\n');
    if (nl != std::string::npos) pw.resize(nl);
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    if (pw.empty()) return Err(Code::kInvalidArgument, "password file {}: empty", password_file);
    p.kv["password"] = pw;
  }
  return p;
}

Result<SpecPartitioning> ReadSpecPartitioning(const std::string& spec_file) {
  SpecPartitioning sp;
  YAML::Node root;
  try {
    root = YAML::LoadFile(spec_file);
  } catch (const std::exception& e) {
    return Err(Code::kInvalidArgument, "{}: cannot read the spec: {}", spec_file, e.what());
  }
  YAML::Node part = root["database"] ? root["database"]["partitioning"] : YAML::Node();
  if (!part) return sp;
  try {
    if (part["tables"]) {
      if (!part["tables"].IsSequence())
        return Err(Code::kInvalidArgument, "{}: database.partitioning.tables: expected a list of table names", spec_file);
      for (const auto& t : part["tables"]) sp.tables.push_back(t.as<std::string>());
    }
    if (part["interval"]) sp.interval = part["interval"].as<std::string>();
    if (part["premake"]) sp.premake = part["premake"].as<int>();
    if (part["retention"]) sp.retention = part["retention"].as<std::string>();
  } catch (const std::exception& e) {
    return Err(Code::kInvalidArgument, "{}: database.partitioning: {}", spec_file, e.what());
  }
  if (sp.interval != "month")
    return Err(Code::kInvalidArgument, "{}: database.partitioning.interval: only 'month' is supported, found '{}'",
               spec_file, sp.interval);
  if (sp.premake < 0 || sp.premake > 120)
    return Err(Code::kInvalidArgument, "{}: database.partitioning.premake: expected 0..120, found {}", spec_file,
               sp.premake);
  return sp;
}

int Rows::Col(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return static_cast<int>(i);
  return -1;
}
std::string Rows::Get(size_t r, std::string_view name) const {
  int c = Col(name);
  if (c < 0 || r >= rows.size() || !rows[r][c]) return "";
  return *rows[r][c];
}
bool Rows::IsNull(size_t r, std::string_view name) const {
  int c = Col(name);
  return c < 0 || r >= rows.size() || !rows[r][c];
}
int64_t Rows::GetInt(size_t r, std::string_view name, int64_t dflt) const {
  std::string s = Get(r, name);
  if (s.empty()) return dflt;
  try {
    return std::stoll(s);
  } catch (...) {
    return dflt;
  }
}
double Rows::GetDouble(size_t r, std::string_view name, double dflt) const {
  std::string s = Get(r, name);
  if (s.empty()) return dflt;
  try {
    return std::stod(s);
  } catch (...) {
    return dflt;
  }
}
bool Rows::GetBool(size_t r, std::string_view name) const {
  std::string s = Get(r, name);
  return s == "t" || s == "true";
}

std::string SqlState(const Error& e) {
  const std::string p = "[SQLSTATE ";
  if (e.message.rfind(p, 0) != 0 || e.message.size() < p.size() + 6) {
    auto pos = e.message.find(p);
    if (pos == std::string::npos || e.message.size() < pos + p.size() + 5) return "";
    return e.message.substr(pos + p.size(), 5);
  }
  return e.message.substr(p.size(), 5);
}

Result<std::unique_ptr<Db>> Connect(const ConnParams& params) {
  std::string where = params.Redacted();
  try {
    auto c = std::make_unique<pqxx::connection>(params.ConnInfo());
    // Never reconnect behind our back: advisory locks and transactions are session state.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    c->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    {
      pqxx::nontransaction tx(*c);
      tx.exec("SET client_min_messages = warning; SET TimeZone = 'UTC'");
    }
    return std::unique_ptr<Db>(new PqxxDb(std::move(c), where));
  } catch (const std::exception& e) {
    std::string msg = Trim(e.what());
    Code code = Code::kUnavailable;
    if (msg.find("password authentication failed") != std::string::npos ||
        msg.find("no password supplied") != std::string::npos) {
      code = Code::kUnauthenticated;
    }
    if (msg.find("does not exist") != std::string::npos) code = Code::kNotFound;
    return tl::unexpected(Error{code, "cannot connect to " + where + ": " + msg});
  }
}

Result<std::string> QueryValue(Db& db, std::string_view sql) {
  CB_TRY(auto r, db.Exec(sql));
  if (r.empty() || r.columns.empty() || !r.rows[0][0]) return std::string();
  return *r.rows[0][0];
}

}  // namespace cb::db
