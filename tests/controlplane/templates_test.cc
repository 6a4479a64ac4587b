// The checked-in templates this area owns stay valid.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "controlplane/spec_adapter.h"

namespace cb::cp {
namespace {

std::string Read(const std::string& rel) {
  std::ifstream f(std::string(CBCTL_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(TemplatesTest, DemoFleetIsValidAndRunsOnLocalOnly) {
  std::string yaml = Read("templates/fleet.demo.yaml");
  ASSERT_FALSE(yaml.empty());
  auto d = MakeSpecDeriver()(yaml, "templates/fleet.demo.yaml");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_EQ(d->hosts.size(), 1u);
  EXPECT_EQ(d->hosts[0].name, "local");
  EXPECT_EQ(d->hosts[0].address, "local");
  std::vector<std::string> names;
  for (const auto& s : d->hosts[0].services) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"flaky", "log-ingest-1", "log-ingest-2", "server"}));
  for (const auto& s : d->hosts[0].services) EXPECT_EQ(s.command[0], "/bin/sh") << "runs on a fresh machine";
}

TEST(TemplatesTest, SystemdUnitsCarryTheRequiredSettings) {
  std::string ctld = Read("templates/systemd/cbctld.service");
  for (const char* k : {"NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                        "ReadWritePaths=/var/lib/cbctld", "User=cbctld"}) {
    EXPECT_NE(ctld.find(k), std::string::npos) << k;
  }
  std::string agent = Read("templates/systemd/cbagent.service");
  EXPECT_NE(agent.find("KillMode=process"), std::string::npos);
  for (const char* k : {"\nProtectSystem=", "\nPrivateTmp=", "\nNoNewPrivileges=", "\nProtectHome="}) {
    EXPECT_EQ(agent.find(k), std::string::npos) << "services would inherit " << k;
  }
}

}  // namespace
}  // namespace cb::cp
