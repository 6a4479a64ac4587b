// Doc: a parsed document (YAML or JSON) as a small tree whose nodes remember where they came
// from, and Decoder, which reads typed values out of it while collecting every Problem.
//
// One decoder serves YAML files (with line:column) and JSON request bodies (without), so the
// fleet spec, the cbagent service file and the wire codecs share their checks and messages.
//
//   Decoder d("fleet.yaml");
//   if (d.Map(root, "", {"name", "command"})) {
//     d.Get(root, "name", "", &spec.name);          // leaves the default when absent
//   }
//   if (!d.ok()) ... d.problems() ...
//
// Scalars keep their kind: a YAML plain scalar (`8080`, `true`, `abc`) is kPlain and may be
// read as a string, number or bool; a quoted YAML scalar or a JSON string is kString and reads
// only as a string; JSON numbers and booleans read only as such.
// Thread-safety: plain values; a Decoder is used by one thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/problem.h"

namespace cb {

struct Mark {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

struct MapEntry;

struct Node {
  enum class Kind { kNull, kPlain, kString, kNumber, kBool, kSeq, kMap };
  Kind kind = Kind::kNull;
  std::string text;                                   // scalars: the text as written
  std::vector<Node> items;                            // kSeq
  std::vector<MapEntry> entries;                       // kMap, in document order
  std::vector<Mark> key_marks;                        // kMap: where each key is
  Mark mark;

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsMap() const { return kind == Kind::kMap; }
  bool IsSeq() const { return kind == Kind::kSeq; }
  bool IsScalar() const {
    return kind == Kind::kPlain || kind == Kind::kString || kind == Kind::kNumber ||
           kind == Kind::kBool;
  }
  // First entry with this key, or nullptr (also when not a map).
  const Node* Find(std::string_view key) const;
  // The mark of the key `key` (its value's mark when not found).
  Mark KeyMark(std::string_view key) const;
};

// One key: value of a map (first/second like std::pair; a struct because std::pair may not
// hold the still-incomplete Node).
struct MapEntry {
  std::string first;
  Node second;
};

// How a node is described in "found": `-1`, `"abc"`, `a list`, `a map`, `null`.
std::string Describe(const Node& n);

// A JSON value as a Node (no marks). Strings -> kString, numbers -> kNumber, bools -> kBool.
Node NodeFromJson(const nlohmann::json& j);
// A Node as JSON: plain scalars become numbers/bools/null when they read as such in YAML 1.2's
// core schema, else strings.
nlohmann::json NodeToJson(const Node& n);

// Joins a key path: Join("a", "b") = "a.b"; Join("", "b") = "b"; Index("a", 2) = "a[2]".
std::string JoinPath(std::string_view path, std::string_view key);
std::string IndexPath(std::string_view path, size_t i);

class Decoder {
 public:
  explicit Decoder(std::string file = "") : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  bool ok() const { return problems_.empty(); }
  const std::vector<Problem>& problems() const { return problems_; }
  std::vector<Problem> TakeProblems() { return std::move(problems_); }
  size_t mark_count() const { return problems_.size(); }

  // Records a problem at `at`. The message is "expected E, found F" when `message` is empty.
  void Add(Mark at, std::string path, std::string message, std::string expected = "",
           std::string found = "");
  // "expected <what>, found <Describe(n)>" at n.
  void Expected(const Node& n, const std::string& path, std::string what);

  // n must be a map whose keys are all in `known`; reports each unknown key with "did you
  // mean". Returns false (after reporting) when n is not a map.
  bool Map(const Node& n, const std::string& path, std::initializer_list<std::string_view> known);
  bool Map(const Node& n, const std::string& path, const std::vector<std::string_view>& known);
  // n must be a list. Returns false (after reporting) when it is not.
  bool Seq(const Node& n, const std::string& path);
  // Reports a required key that is absent. Returns the value node or nullptr.
  const Node* Require(const Node& map, std::string_view key, const std::string& path);

  // Typed scalar reads. Each reports and returns nullopt on a wrong type.
  std::optional<std::string> String(const Node& n, const std::string& path);
  std::optional<int64_t> Int(const Node& n, const std::string& path);
  std::optional<double> Number(const Node& n, const std::string& path);
  std::optional<bool> Bool(const Node& n, const std::string& path);
  std::optional<std::vector<std::string>> StringList(const Node& n, const std::string& path);
  std::optional<std::vector<double>> NumberList(const Node& n, const std::string& path);
  std::optional<std::map<std::string, std::string>> StringMap(const Node& n,
                                                              const std::string& path);

  // Optional fields of a map: when `key` is present (and not null), read it into *out (which
  // keeps its default otherwise). Return true when the key was present and read well.
  bool Get(const Node& map, std::string_view key, const std::string& path, std::string* out);
  bool Get(const Node& map, std::string_view key, const std::string& path, int* out);
  bool Get(const Node& map, std::string_view key, const std::string& path, int64_t* out);
  bool Get(const Node& map, std::string_view key, const std::string& path, double* out);
  bool Get(const Node& map, std::string_view key, const std::string& path, bool* out);
  bool Get(const Node& map, std::string_view key, const std::string& path,
           std::vector<std::string>* out);
  bool Get(const Node& map, std::string_view key, const std::string& path,
           std::vector<double>* out);
  bool Get(const Node& map, std::string_view key, const std::string& path,
           std::map<std::string, std::string>* out);

 private:
  std::string file_;
  std::vector<Problem> problems_;
};

}  // namespace cb
