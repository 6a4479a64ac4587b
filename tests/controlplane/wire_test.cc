// core/wire.h: the JSON mapping (unknown fields, types, paths), error mapping, addresses.
#include "core/wire.h"

#include <gtest/gtest.h>

namespace cb::wire {
namespace {

using nlohmann::json;

TEST(WireTest, DecodeRefusesUnknownFieldsAndWrongTypesWithThePath) {
  auto ok = DecodeText<SpecRequest>(R"({"yaml": "a: 1"})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->yaml, "a: 1");
  auto unknown = DecodeText<SpecRequest>(R"({"yaml": "a", "force": true})");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kInvalidArgument);
  EXPECT_NE(unknown.error().message.find("body: unknown field 'force'"), std::string::npos);
  auto type = DecodeText<SpecRequest>(R"({"yaml": 5})");
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("body.yaml: expected a string, found number"), std::string::npos)
      << type.error().message;
  auto missing = DecodeText<SpecRequest>(R"({})");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("body.yaml: required field missing"), std::string::npos);
  auto bad = DecodeText<SpecRequest>("{\"yaml\": ");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("invalid JSON at byte"), std::string::npos);
  auto notobj = DecodeText<SpecRequest>("[1]");
  ASSERT_FALSE(notobj);
  EXPECT_NE(notobj.error().message.find("expected an object"), std::string::npos);
  auto nested = Decode<ServicesResponse>(json::parse(R"({"services": [{"host": "h", "name": "a", "state": 3}]})"));
  ASSERT_FALSE(nested);
  EXPECT_NE(nested.error().message.find("body.services[0].state"), std::string::npos) << nested.error().message;
}

TEST(WireTest, RoundTripsEveryOptional) {
  ServiceInfo s;
  s.host = "local";
  s.name = "web";
  s.address = "web";
  s.state = "running";
  s.pid = 42;
  s.uptime_seconds = 1.5;
  s.override_state = "stopped";
  json j = s;
  EXPECT_EQ(j["override"], "stopped");
  EXPECT_TRUE(j["rss_bytes"].is_null());
  auto back = Decode<ServiceInfo>(j);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->pid, std::optional<int64_t>(42));
  EXPECT_EQ(back->override_state, std::optional<std::string>("stopped"));
  EXPECT_FALSE(back->rss_bytes.has_value());

  PlanResponse p;
  p.current_generation = 3;
  p.changes.push_back({"local", "web", "change", {"command"}});
  p.summary.change = 1;
  json pj = p;
  EXPECT_EQ(pj["has_changes"], true);
  auto pb = Decode<PlanResponse>(pj);
  ASSERT_TRUE(pb);
  EXPECT_EQ(pb->changes[0].fields, std::vector<std::string>{"command"});
}

TEST(WireTest, ErrorMappingIsOnePlace) {
  EXPECT_EQ(HttpStatusFor(Code::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(Code::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(Code::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(Code::kConflict), 409);
  EXPECT_EQ(HttpStatusFor(Code::kUnavailable), 503);
  EXPECT_EQ(CodeForHttpStatus(401), Code::kUnauthenticated);
  EXPECT_EQ(CodeForHttpStatus(413), Code::kInvalidArgument);
  json e = ErrorJson(Error{Code::kInvalidArgument, "2 problems in f:\n  f:1:1: a: x\n  f:2:1: b: y"});
  EXPECT_EQ(e["error"]["code"], "invalid_argument");
  EXPECT_EQ(e["error"]["message"], "2 problems in f:");
  EXPECT_EQ(e["error"]["problems"], json::array({"f:1:1: a: x", "f:2:1: b: y"}));
  Error back = ErrorFromReply(400, e.dump());
  EXPECT_EQ(back.code, Code::kInvalidArgument);
  EXPECT_NE(back.message.find("f:2:1: b: y"), std::string::npos);
  Error raw = ErrorFromReply(502, "Bad Gateway");
  EXPECT_EQ(raw.code, Code::kInternal);
  EXPECT_NE(raw.message.find("502"), std::string::npos);
}

TEST(WireTest, ServiceAddresses) {
  auto a = ParseServiceAddress("web");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->name, "web");
  EXPECT_EQ(a->host, "");
  auto b = ParseServiceAddress("log-ingest-2@app1");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "app1");
  EXPECT_EQ(b->ToString(), "log-ingest-2@app1");
  for (const char* bad : {"", "a/b", "..", "a..b", "we\x01" "b", "a@", "@h", "a@b@c", "Web", "a@b/c"}) {
    auto r = ParseServiceAddress(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    }
  }
  auto ctl = ParseServiceAddress("we\nb");
  ASSERT_FALSE(ctl);
  EXPECT_NE(ctl.error().message.find("\\x0a"), std::string::npos) << "control characters are shown escaped";
}

TEST(WireTest, Scopes) {
  EXPECT_TRUE(ScopeAllows(Scope::kAdmin, Scope::kOperator));
  EXPECT_TRUE(ScopeAllows(Scope::kOperator, Scope::kViewer));
  EXPECT_FALSE(ScopeAllows(Scope::kViewer, Scope::kOperator));
  EXPECT_FALSE(ScopeAllows(Scope::kOperator, Scope::kAdmin));
  EXPECT_FALSE(ParseScope("root"));
  auto t = DecodeText<TokenCreateRequest>(R"({"name": "ci", "scope": "root"})");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("viewer, operator or admin"), std::string::npos);
}

}  // namespace
}  // namespace cb::wire
