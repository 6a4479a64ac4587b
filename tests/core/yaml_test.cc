#include "core/yaml.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/service_file.h"

namespace cb {
namespace {

using nlohmann::json;

const Problem* FindProblem(const std::vector<Problem>& ps, std::string_view path,
                           std::string_view says = "") {
  for (const auto& p : ps) {
    if (p.path == path && p.message.find(says) != std::string::npos) return &p;
  }
  return nullptr;
}

std::string Dump(const std::vector<Problem>& ps) { return FormatProblems(ps); }

TEST(Yaml, KeepsPositionsAndScalarKinds) {
  Decoder d("f.yaml");
  auto n = ParseYaml("a: 1\nb: \"2\"\nc:\n  - x\n  - 'y'\nd:\n", d);
  ASSERT_TRUE(n);
  EXPECT_TRUE(d.ok()) << Dump(d.problems());
  ASSERT_TRUE(n->IsMap());
  EXPECT_EQ(n->Find("a")->kind, Node::Kind::kPlain);
  EXPECT_EQ(n->Find("b")->kind, Node::Kind::kString);
  EXPECT_EQ(n->Find("a")->mark.line, 1);
  EXPECT_EQ(n->Find("a")->mark.column, 4);
  EXPECT_EQ(n->KeyMark("b").line, 2);
  EXPECT_EQ(n->KeyMark("b").column, 1);
  const Node* c = n->Find("c");
  ASSERT_TRUE(c && c->IsSeq());
  EXPECT_EQ(c->items[1].mark.line, 5);
  EXPECT_EQ(c->items[1].mark.column, 5);
  EXPECT_EQ(c->items[1].kind, Node::Kind::kString);
  // A key without a value is null, placed at its key.
  EXPECT_TRUE(n->Find("d")->IsNull());
  EXPECT_EQ(n->Find("d")->mark.line, 6);
}

TEST(Yaml, DuplicateKeysAreErrors) {
  Decoder d("f.yaml");
  auto n = ParseYaml("a: 1\nb:\n  x: 1\n  x: 2\na: 3\n", d);
  ASSERT_TRUE(n);
  ASSERT_EQ(d.problems().size(), 2u) << Dump(d.problems());
  const Problem* a = FindProblem(d.problems(), "a", "duplicate key 'a'");
  ASSERT_TRUE(a) << Dump(d.problems());
  EXPECT_EQ(a->line, 5);
  EXPECT_EQ(a->column, 1);
  EXPECT_NE(a->message.find("first defined at line 1"), std::string::npos);
  const Problem* x = FindProblem(d.problems(), "b.x", "duplicate key 'x'");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->line, 4);
  EXPECT_EQ(x->column, 3);
  EXPECT_EQ(FormatProblem(*x), "f.yaml:4:3: b.x: duplicate key 'x' (first defined at line 3)");
}

TEST(Yaml, SyntaxErrorsHaveAPosition) {
  Decoder d("bad.yaml");
  auto n = ParseYaml("a: [1, 2\nb: 3\n", d);
  EXPECT_FALSE(n);
  ASSERT_EQ(d.problems().size(), 1u);
  EXPECT_EQ(d.problems()[0].line, 2);
  EXPECT_NE(d.problems()[0].message.find("YAML syntax error"), std::string::npos);
}

TEST(Yaml, OddInputsDoNotCrash) {
  for (const char* text :
       {"", "---\n", "a: &x [1, *x]\n", "[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]",
        "? [a]\n: 1\n", "a: 1\n---\nb: 2\n", "\t\x01\x02", "{a: }", "- - -",
        "key: !!binary aGVsbG8=", "*unknown"}) {
    Decoder d("x");
    auto n = ParseYaml(text, d);
    (void)n;
  }
  Decoder d("x");
  ASSERT_TRUE(ParseYaml("a: 1\n---\nb: 2\n", d));
  EXPECT_TRUE(FindProblem(d.problems(), "", "more than one YAML document"));
  Decoder deep("x");
  ParseYaml(std::string(200, '[') + std::string(200, ']'), deep);
  ASSERT_EQ(deep.problems().size(), 1u);
  EXPECT_NE(deep.problems()[0].message.find("nesting deeper"), std::string::npos);
}

TEST(Yaml, JsonIsYamlTooWithPositions) {
  Decoder d("f.json");
  auto n = ParseYaml("{\n\t\"a\": 1,\n\t\"b\": [\"x\", 2]\n}\n", d);
  ASSERT_TRUE(n);
  EXPECT_TRUE(d.ok()) << Dump(d.problems());
  EXPECT_EQ(n->Find("b")->mark.line, 3);
  EXPECT_EQ(NodeToJson(*n), json::parse(R"({"a": 1, "b": ["x", 2]})"));
}

TEST(Yaml, EmitterRoundTripsThroughTheParser) {
  json j = json::parse(R"({
    "name": "acme", "port": "2719", "flag": "true", "empty": "", "nothing": null,
    "n": 5, "f": 0.25, "b": false, "list": ["a", "1", 2], "nested": {"k": [{"x": "y: z"}]},
    "odd": "- dash", "hash": "a #b", "multi": "line1\nline2", "emptylist": [], "emptymap": {}
  })");
  std::string y = JsonToYaml(j);
  Decoder d("");
  auto n = ParseYaml(y, d);
  ASSERT_TRUE(n) << y;
  EXPECT_TRUE(d.ok()) << Dump(d.problems());
  EXPECT_EQ(NodeToJson(*n), j) << y;
  EXPECT_NE(y.find("port: \"2719\""), std::string::npos) << y;
}

TEST(ServiceFile, LoadsYamlAndJson) {
  auto y = ParseServiceFile(R"(services:
  - name: web
    command: [/usr/bin/web, --port, 8080]
    env: {A: "1"}
    restart: {policy: on-failure, backoff_seconds: [0.5, 1]}
    stop: {signal: INT, grace_seconds: 3}
  - name: worker
    command:
      - sleep
      - "100"
)",
                            "s.yaml");
  ASSERT_TRUE(y) << Dump(y.error());
  ASSERT_EQ(y->size(), 2u);
  EXPECT_EQ((*y)[0].command[2], "8080");
  EXPECT_EQ((*y)[0].restart.policy, RestartPolicy::kOnFailure);
  EXPECT_EQ((*y)[0].stop.signal, SIGINT);
  EXPECT_EQ((*y)[1].restart, RestartSpec{});

  json j = {{"services", *y}};
  auto back = ParseServiceFile(j.dump(2), "s.json");
  ASSERT_TRUE(back) << Dump(back.error());
  EXPECT_EQ(*back, *y);
}

TEST(ServiceFile, MalformedFileReportsEveryProblemWithLineAndColumn) {
  const char* text =
      "services:\n"                                    // 1
      "  - name: web\n"                                // 2
      "    command: [/bin/web]\n"                      // 3
      "    restart: {policy: sometimes, jitter: 2}\n"  // 4
      "  - name: Web/2\n"                              // 5
      "    comand: [x]\n"                              // 6
      "  - name: web\n"                                // 7
      "    command: [/bin/other]\n"                    // 8
      "    stop: {signal: TERM, grace_seconds: -1}\n"  // 9
      "    cwd: relative\n"                            // 10
      "    cwd: /abs\n";                               // 11
  auto r = ParseServiceFile(text, "svc.yaml");
  ASSERT_FALSE(r);
  const auto& ps = r.error();
  struct Want {
    const char* path;
    const char* says;
    int line, column;
  } wants[] = {
      {"services[0].restart.policy", "expected one of always, on-failure, never", 4, 23},
      {"services[0].restart.jitter", "expected a number from 0 to 1, found 2", 4, 42},
      {"services[1].name", "service name 'Web/2'", 5, 11},
      {"services[1].comand", "unknown key 'comand' (did you mean 'command'?)", 6, 5},
      {"services[1].command", "missing required key 'command'", 5, 5},
      {"services[2].stop.grace_seconds", "expected seconds >= 0, found -1", 9, 41},
      {"services[2].cwd", "duplicate key 'cwd' (first defined at line 10)", 11, 5},
      {"services[2].cwd", "expected an absolute path", 10, 10},
  };
  for (const auto& w : wants) {
    const Problem* p = FindProblem(ps, w.path, w.says);
    ASSERT_TRUE(p) << "missing " << w.path << ": " << w.says << "\n" << Dump(ps);
    EXPECT_EQ(p->line, w.line) << FormatProblem(*p);
    EXPECT_EQ(p->column, w.column) << FormatProblem(*p);
    EXPECT_EQ(p->file, "svc.yaml");
  }
  EXPECT_EQ(ps.size(), std::size(wants)) << Dump(ps);
  const Problem* typo = FindProblem(ps, "services[1].comand");
  EXPECT_EQ(typo->found, "comand");
  EXPECT_NE(typo->expected.find("command"), std::string::npos);
}

TEST(ServiceFile, DuplicateNamesAndShapeErrors) {
  auto dup = ParseServiceFile(
      "services:\n  - {name: a, command: [x]}\n  - {name: a, command: [y]}\n", "f");
  ASSERT_FALSE(dup);
  ASSERT_EQ(dup.error().size(), 1u);
  EXPECT_EQ(dup.error()[0].path, "services[1].name");
  EXPECT_EQ(dup.error()[0].line, 3);
  EXPECT_NE(dup.error()[0].message.find("duplicate service name 'a' (also services[0])"),
            std::string::npos);

  auto empty = ParseServiceFile("", "f");
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error()[0].message.find("empty"), std::string::npos);
  auto not_list = ParseServiceFile("services: {a: 1}\n", "f");
  ASSERT_FALSE(not_list);
  EXPECT_EQ(not_list.error()[0].path, "services");
  auto top = ParseServiceFile("service: []\n", "f");
  ASSERT_FALSE(top);
  EXPECT_TRUE(FindProblem(top.error(), "service", "did you mean 'services'?"));
  auto none = ParseServiceFile("services: []\n", "f");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(ServiceFile, FileErrorsNameTheFile) {
  auto missing = LoadServiceFile("/nonexistent/services.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(FormatProblem(missing.error()[0]), "/nonexistent/services.yaml: no such file");
  auto dir = LoadServiceFile("/tmp");
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error()[0].message.find("directory"), std::string::npos);

  auto path = std::filesystem::temp_directory_path() / "cbctl-svcfile-test.yaml";
  {
    std::ofstream f(path);
    f << "services:\n  - name: ok\n    command: [/bin/true]\n";
  }
  auto good = LoadServiceFile(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(good);
  EXPECT_EQ((*good)[0].name, "ok");
}

}  // namespace
}  // namespace cb
