#include "cli/app.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/output.h"

namespace cb::cli {
namespace {

struct Ran {
  int code;
  std::string out, err;
};

Ran RunCbctl(std::vector<std::string> args, std::string stdin_text = "", bool tty = false) {
  std::ostringstream out, err;
  std::istringstream in(stdin_text);
  Io io{out, err, in, tty, tty, tty};
  std::vector<const char*> argv = {"cbctl"};
  for (const auto& a : args) argv.push_back(a.c_str());
  int code = Run(static_cast<int>(argv.size()), argv.data(), io);
  return {code, out.str(), err.str()};
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ExitCodes, OnePlaceMapsCodes) {
  EXPECT_EQ(ExitCodeFor(Code::kUnavailable), kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(Code::kTimeout), 69);
  EXPECT_EQ(ExitCodeFor(Code::kUnauthenticated), 77);
  EXPECT_EQ(ExitCodeFor(Code::kPermissionDenied), 77);
  EXPECT_EQ(ExitCodeFor(Code::kConflict), 1);
  EXPECT_EQ(ExitCodeFor(Code::kInvalidArgument), 1);
  EXPECT_EQ(ExitCodeFor(Code::kInternal), 1);
}

TEST(App, UsageErrorsExit64WithAClearLine) {
  Ran none = RunCbctl({});
  EXPECT_EQ(none.code, 64);
  EXPECT_NE(none.err.find("config"), std::string::npos);  // the help lists commands

  Ran typo = RunCbctl({"confg", "validate", "x"});
  EXPECT_EQ(typo.code, 64);
  EXPECT_NE(typo.err.find("unknown command 'confg' (did you mean 'config'?)"), std::string::npos)
      << typo.err;

  Ran sub = RunCbctl({"config", "valdate", "x"});
  EXPECT_EQ(sub.code, 64);
  EXPECT_NE(sub.err.find("did you mean 'config validate'?"), std::string::npos) << sub.err;

  Ran group = RunCbctl({"config"});
  EXPECT_EQ(group.code, 64);
  EXPECT_NE(group.err.find("validate"), std::string::npos);

  Ran missing = RunCbctl({"config", "validate"});
  EXPECT_EQ(missing.code, 64);
  EXPECT_NE(missing.err.find("cbctl: error: file is required"), std::string::npos) << missing.err;

  Ran bad_format = RunCbctl({"version", "-o", "xml"});
  EXPECT_EQ(bad_format.code, 64);
  EXPECT_NE(bad_format.err.find("--output"), std::string::npos);

  Ran extra = RunCbctl({"version", "extra"});
  EXPECT_EQ(extra.code, 64);
}

TEST(App, HelpAndVersion) {
  Ran help = RunCbctl({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("config"), std::string::npos);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
  Ran sub_help = RunCbctl({"config", "validate", "--help"});
  EXPECT_EQ(sub_help.code, 0);
  EXPECT_NE(sub_help.out.find("FILE"), std::string::npos);

  Ran v = RunCbctl({"version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_TRUE(v.out.starts_with("cbctl ")) << v.out;
  Ran vj = RunCbctl({"version", "-o", "json"});
  auto j = nlohmann::json::parse(vj.out);
  EXPECT_EQ(j["client"], "cbctl");
  EXPECT_FALSE(j["version"].get<std::string>().empty());
  Ran vy = RunCbctl({"version", "-o", "yaml"});
  EXPECT_NE(vy.out.find("client: cbctl"), std::string::npos) << vy.out;
  // Global flags before or after the command.
  EXPECT_EQ(RunCbctl({"--no-color", "version"}).code, 0);
  EXPECT_EQ(RunCbctl({"version", "--server", "http://x:1"}).code, 0);
}

TEST(ConfigValidate, ValidSpec) {
  Ran r = RunCbctl({"config", "validate", CBCTL_SOURCE_DIR "/templates/fleet.example.yaml"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "valid\n");
  Ran j = RunCbctl(
      {"config", "validate", "-o", "json", CBCTL_SOURCE_DIR "/templates/fleet.example.yaml"});
  EXPECT_EQ(j.code, 0);
  EXPECT_EQ(nlohmann::json::parse(j.out), nlohmann::json::array());
}

TEST(ConfigValidate, InvalidSpecListsEveryProblem) {
  std::string path = WriteTemp("bad-fleet.yaml",
                               "hosts: 5\n"
                               "cache: {vector_mb: x}\n"
                               "servr: {}\n");
  Ran r = RunCbctl({"config", "validate", path});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(path + ":1:8: hosts: expected a list, found 5\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(path + ":2:20: cache.vector_mb: expected an integer, found x\n"),
            std::string::npos);
  EXPECT_NE(r.out.find(path + ":3:1: servr: unknown key 'servr' (did you mean 'server'?)"),
            std::string::npos);
  EXPECT_NE(r.err.find("3 problems"), std::string::npos) << r.err;

  Ran j = RunCbctl({"config", "validate", path, "-o", "json"});
  EXPECT_EQ(j.code, 1);
  auto list = nlohmann::json::parse(j.out);
  ASSERT_EQ(list.size(), 3u);
  for (const auto& p : list) {
    for (const char* key : {"file", "line", "column", "path", "message", "expected", "found"})
      EXPECT_TRUE(p.contains(key)) << key << " in " << p.dump();
  }
  EXPECT_EQ(list[0]["file"], path);
  EXPECT_EQ(list[0]["line"], 1);
  EXPECT_EQ(list[0]["column"], 8);
  EXPECT_EQ(list[0]["path"], "hosts");
  EXPECT_EQ(list[0]["expected"], "a list");
  EXPECT_EQ(list[0]["found"], "5");
}

TEST(ConfigValidate, StdinMissingFilesAndWarnings) {
  Ran in = RunCbctl({"config", "validate", "-"}, "services: [{name: a, command: [x]}]\n");
  EXPECT_EQ(in.code, 0) << in.out << in.err;
  Ran bad_in = RunCbctl({"config", "validate", "-"}, "nope: 1\n");
  EXPECT_EQ(bad_in.code, 1);
  EXPECT_NE(bad_in.out.find("<stdin>:1:1: nope: unknown key"), std::string::npos) << bad_in.out;
  Ran missing = RunCbctl({"config", "validate", "/nonexistent/fleet.yaml"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("/nonexistent/fleet.yaml: no such file"), std::string::npos);
  Ran warn = RunCbctl({"config", "validate", "-"}, "database: {url: \"postgresql://u:pw@db/x\"}\n");
  EXPECT_EQ(warn.code, 0);
  EXPECT_EQ(warn.out, "valid\n");
  EXPECT_NE(warn.err.find("warning: <stdin>:1:17: database.url: the URL carries a password"),
            std::string::npos)
      << warn.err;
}

TEST(Color, OnlyOnATerminalAndNeverWithNoColor) {
  unsetenv("NO_COLOR");
  setenv("TERM", "xterm", 1);
  EXPECT_TRUE(ShouldColor(true, false));
  EXPECT_FALSE(ShouldColor(false, false));
  EXPECT_FALSE(ShouldColor(true, true));
  setenv("NO_COLOR", "", 1);  // any value, even empty
  EXPECT_FALSE(ShouldColor(true, false));
  unsetenv("NO_COLOR");
  setenv("TERM", "dumb", 1);
  EXPECT_FALSE(ShouldColor(true, false));
  setenv("TERM", "xterm", 1);

  Ran tty =
      RunCbctl({"config", "validate", CBCTL_SOURCE_DIR "/templates/fleet.example.yaml"}, "", true);
  EXPECT_NE(tty.out.find("\x1b[32mvalid\x1b[0m"), std::string::npos);
  Ran no_flag = RunCbctl(
      {"--no-color", "config", "validate", CBCTL_SOURCE_DIR "/templates/fleet.example.yaml"}, "",
      true);
  EXPECT_EQ(no_flag.out, "valid\n");
  setenv("NO_COLOR", "1", 1);
  Ran env =
      RunCbctl({"config", "validate", CBCTL_SOURCE_DIR "/templates/fleet.example.yaml"}, "", true);
  EXPECT_EQ(env.out, "valid\n");
  unsetenv("NO_COLOR");
  Ran pipe = RunCbctl({"config", "validate", CBCTL_SOURCE_DIR "/templates/fleet.example.yaml"});
  EXPECT_EQ(pipe.out, "valid\n");
}

TEST(Table, AlignsColumnsIgnoringColour) {
  Table t({"HOST", "SERVICE", "PID"}, {false, false, true});
  t.Row({"local", "web", "42"});
  t.Row({"app1", "log-ingest-1", "12345"}, {Color::kNone, Color::kGreen, Color::kNone}, true);
  std::string plain = t.Render(false);
  EXPECT_EQ(plain.substr(0, plain.find('\n')), "HOST   SERVICE       PID");
  std::istringstream lines(plain);
  std::string header, row1, row2;
  std::getline(lines, header);
  std::getline(lines, row1);
  std::getline(lines, row2);
  EXPECT_EQ(row1, "local  web              42");
  EXPECT_EQ(VisibleWidth(row2), row1.size()) << row2;
  EXPECT_EQ(VisibleWidth("\x1b[31mé\x1b[0m"), 1u);
}

TEST(CommandTable, IsWellFormed) {
  std::set<std::string_view> paths;
  for (const auto& c : CommandTable()) {
    EXPECT_TRUE(paths.insert(c.path).second) << "duplicate " << c.path;
    EXPECT_FALSE(c.summary.empty()) << c.path;
    EXPECT_NE(c.summary.back(), '.') << c.path;
    // The parent of every command is in the table.
    auto words = PathWords(c.path);
    if (words.size() > 1) {
      std::string parent(c.path.substr(0, c.path.rfind(' ')));
      const Command* p = FindCommand(parent);
      ASSERT_NE(p, nullptr) << c.path;
      EXPECT_TRUE(IsGroup(*p)) << parent << " is a group";
      EXPECT_EQ(p->handler, nullptr) << parent;
    }
    std::set<std::string_view> keys;
    for (const auto& f : c.flags) {
      EXPECT_TRUE(keys.insert(f.key).second) << c.path << " " << f.key;
      EXPECT_FALSE(f.help.empty()) << c.path << " " << f.key;
    }
  }
  for (const auto& c : CommandTable()) {
    if (!IsGroup(c)) {
      EXPECT_TRUE(c.handler != nullptr || c.needs_daemon || c.path.starts_with("db "))
          << c.path << ": only heavy handlers may be missing from this binary";
    }
  }
}

}  // namespace
}  // namespace cb::cli
