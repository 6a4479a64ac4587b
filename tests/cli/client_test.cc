#include "cli/client.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace cb::cli {
namespace {

namespace fs = std::filesystem;

class ClientConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::path(::testing::TempDir()) /
            ("cbctl-home-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(home_);
    fs::create_directories(home_ / ".config/cbctl");
    env_["HOME"] = home_.string();
  }
  void TearDown() override { fs::remove_all(home_); }

  EnvFn Env() {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }
  std::string Write(const std::string& rel, const std::string& text, mode_t mode = 0600) {
    fs::path p = home_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p.string();
  }

  fs::path home_;
  std::map<std::string, std::string> env_;
};

TEST_F(ClientConfigTest, DefaultsWhenNothingIsSet) {
  auto c = ResolveClientConfig({}, Env());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "http://127.0.0.1:7390");
  EXPECT_EQ(c->server_source, "the default");
  EXPECT_TRUE(c->token.empty());
  EXPECT_EQ(c->config_path, (home_ / ".config/cbctl/config.yaml").string());
  EXPECT_TRUE(c->warnings.empty());
}

TEST_F(ClientConfigTest, ServerPrecedenceFlagEnvFile) {
  Write(".config/cbctl/config.yaml", "server: http://from-file:1\n");
  auto file = ResolveClientConfig({}, Env());
  ASSERT_TRUE(file);
  EXPECT_EQ(file->server, "http://from-file:1");
  EXPECT_EQ(file->server_source, file->config_path);
  env_["CBCTL_SERVER"] = "from-env:2";
  auto env = ResolveClientConfig({}, Env());
  ASSERT_TRUE(env);
  EXPECT_EQ(env->server, "http://from-env:2");
  EXPECT_EQ(env->server_source, "CBCTL_SERVER");
  GlobalOptions g;
  g.server = "https://from-flag:3/";
  auto flag = ResolveClientConfig(g, Env());
  ASSERT_TRUE(flag);
  EXPECT_EQ(flag->server, "https://from-flag:3");
  EXPECT_EQ(flag->server_source, "--server");
}

TEST_F(ClientConfigTest, XdgConfigHome) {
  env_["XDG_CONFIG_HOME"] = (home_ / "xdg").string();
  Write("xdg/cbctl/config.yaml", "server: xdg:9\n");
  auto c = ResolveClientConfig({}, Env());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->server, "http://xdg:9");
}

TEST_F(ClientConfigTest, TokenPrecedenceFileEnvConfig) {
  std::string cfg_token = Write("cfg.token", "from-config-file\n");
  Write(".config/cbctl/config.yaml", "token_file: ~/cfg.token\n");
  auto from_cfg = ResolveClientConfig({}, Env());
  ASSERT_TRUE(from_cfg) << from_cfg.error().message;
  EXPECT_EQ(from_cfg->token, "from-config-file");
  EXPECT_NE(from_cfg->token_source.find("token_file"), std::string::npos);
  env_["CBCTL_TOKEN"] = "from-env";
  EXPECT_EQ(ResolveClientConfig({}, Env())->token, "from-env");
  GlobalOptions g;
  g.token_file = Write("flag.token", "  from-flag-file \n");
  auto flag = ResolveClientConfig(g, Env());
  ASSERT_TRUE(flag);
  EXPECT_EQ(flag->token, "from-flag-file");
  EXPECT_EQ(flag->token_source, "--token-file " + g.token_file);
  EXPECT_TRUE(flag->warnings.empty());
}

TEST_F(ClientConfigTest, InlineTokenInConfig) {
  Write(".config/cbctl/config.yaml", "token: cbt_inline\n", 0600);
  auto c = ResolveClientConfig({}, Env());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->token, "cbt_inline");
  EXPECT_TRUE(c->warnings.empty());
  Write(".config/cbctl/config.yaml", "token: cbt_inline\n", 0644);
  auto loose = ResolveClientConfig({}, Env());
  ASSERT_TRUE(loose);
  ASSERT_EQ(loose->warnings.size(), 1u);
  EXPECT_NE(loose->warnings[0].find("can be read by other users"), std::string::npos);
}

TEST_F(ClientConfigTest, TokenFileReadableByOthersIsWarnedAbout) {
  GlobalOptions g;
  g.token_file = Write("loose.token", "secret\n", 0644);
  auto c = ResolveClientConfig(g, Env());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->token, "secret");
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_NE(c->warnings[0].find("mode 0644"), std::string::npos) << c->warnings[0];
  EXPECT_NE(c->warnings[0].find("chmod 600"), std::string::npos);
  g.token_file = Write("group.token", "secret\n", 0640);
  EXPECT_EQ(ResolveClientConfig(g, Env())->warnings.size(), 1u);
}

TEST_F(ClientConfigTest, BadInputsAreClearErrors) {
  GlobalOptions g;
  g.token_file = (home_ / "missing.token").string();
  auto missing = ResolveClientConfig(g, Env());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot read token file"), std::string::npos);
  g.token_file = Write("empty.token", "\n");
  auto empty = ResolveClientConfig(g, Env());
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("is empty"), std::string::npos);

  Write(".config/cbctl/config.yaml", "sever: x\n");
  auto typo = ResolveClientConfig({}, Env());
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().code, Code::kInvalidArgument);
  EXPECT_NE(typo.error().message.find(
                "config.yaml:1:1: sever: unknown key 'sever' (did you mean 'server'?)"),
            std::string::npos)
      << typo.error().message;

  Write(".config/cbctl/config.yaml", "server: ftp://x\n");
  auto scheme = ResolveClientConfig({}, Env());
  ASSERT_FALSE(scheme);
  EXPECT_NE(scheme.error().message.find("only http:// and https://"), std::string::npos);
}

TEST(NormalizeServer, Forms) {
  EXPECT_EQ(*NormalizeServer("127.0.0.1:7390"), "http://127.0.0.1:7390");
  EXPECT_EQ(*NormalizeServer("http://h:1/"), "http://h:1");
  EXPECT_EQ(*NormalizeServer("https://h"), "https://h");
  EXPECT_EQ(*NormalizeServer("[::1]:7390"), "http://[::1]:7390");
  EXPECT_FALSE(NormalizeServer(""));
  EXPECT_FALSE(NormalizeServer("http://h/v1"));
  EXPECT_FALSE(NormalizeServer("unix:///x"));
  EXPECT_FALSE(NormalizeServer("http://"));
}

TEST(EncodePathSegment, KeepsAddressesAndEscapesTheRest) {
  EXPECT_EQ(EncodePathSegment("log-ingest-1@app1"), "log-ingest-1@app1");
  EXPECT_EQ(EncodePathSegment("a/b c"), "a%2Fb%20c");
}

}  // namespace
}  // namespace cb::cli
