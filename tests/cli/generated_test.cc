// The checked-in completions and man page must be what the built cbctl generates from the
// command table. Regenerate with scripts/gen-docs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {

struct Output {
  int status;
  std::string out;
};

Output Sh(const std::string& cmd) {
  Output o{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
  int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kCbctl = std::string(CBCTL_BIN_DIR) + "/cbctl";
const std::string kSrc = CBCTL_SOURCE_DIR;

bool Have(const char* tool) {
  return Sh(std::string("command -v ") + tool + " >/dev/null 2>&1").status == 0;
}

TEST(Generated, CompletionsAreUpToDate) {
  for (const char* shell : {"bash", "zsh", "fish"}) {
    Output gen = Sh(kCbctl + " completion " + shell);
    ASSERT_EQ(gen.status, 0) << shell;
    std::string file = kSrc + "/completions/cbctl." + shell;
    EXPECT_EQ(ReadFile(file), gen.out)
        << file << " is stale: run scripts/gen-docs (BUILD_DIR=... if not build/)";
  }
}

TEST(Generated, ManPageIsUpToDateAndRenders) {
  Output gen = Sh(kCbctl + " man");
  ASSERT_EQ(gen.status, 0);
  EXPECT_EQ(ReadFile(kSrc + "/man/cbctl.1"), gen.out)
      << "man/cbctl.1 is stale: run scripts/gen-docs";
  if (Have("groff")) {
    // No warnings at all (-ww), and output produced.
    Output warnings = Sh("groff -man -ww -z " + kSrc + "/man/cbctl.1 2>&1");
    EXPECT_EQ(warnings.status, 0);
    EXPECT_EQ(warnings.out, "");
  }
  if (Have("man")) {
    Output rendered = Sh("MANWIDTH=80 man -l " + kSrc + "/man/cbctl.1 2>&1 | cat");
    EXPECT_EQ(rendered.status, 0);
    EXPECT_NE(rendered.out.find("EXIT STATUS"), std::string::npos) << rendered.out;
    EXPECT_NE(rendered.out.find("cbctl config validate"), std::string::npos);
  }
}

TEST(Generated, ScriptsParseAndComplete) {
  std::string bash = kSrc + "/completions/cbctl.bash";
  EXPECT_EQ(Sh("bash -n " + bash).status, 0);
  // Drive the bash function the way readline would.
  std::string probe =
      "source " + bash +
      "; t() { COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _cbctl; "
      "echo \"${COMPREPLY[*]}\"; }; "
      "t cbctl ''; t cbctl config ''; t cbctl config validate -o ''; t cbctl completion z";
  std::string script = ::testing::TempDir() + "cbctl-completion-probe.sh";
  std::ofstream(script) << probe << "\n";
  Output out = Sh("bash " + script);
  ASSERT_EQ(out.status, 0);
  std::istringstream lines(out.out);
  std::string top, config, formats, shell;
  std::getline(lines, top);
  std::getline(lines, config);
  std::getline(lines, formats);
  std::getline(lines, shell);
  EXPECT_NE(top.find("config"), std::string::npos) << top;
  EXPECT_NE(top.find("version"), std::string::npos) << top;
  EXPECT_EQ(config, "validate");
  EXPECT_EQ(formats, "table json yaml");
  EXPECT_EQ(shell, "zsh");
  if (Have("zsh")) {
    EXPECT_EQ(Sh("zsh -n " + kSrc + "/completions/cbctl.zsh").status, 0);
  }
  if (Have("fish")) {
    EXPECT_EQ(Sh("fish -n " + kSrc + "/completions/cbctl.fish").status, 0);
    Output f = Sh("HOME=" + ::testing::TempDir() + " fish -c 'source " + kSrc +
                  "/completions/cbctl.fish; complete -C \"cbctl config \"' 2>&1");
    EXPECT_NE(f.out.find("validate"), std::string::npos) << f.out;
  }
}

}  // namespace
