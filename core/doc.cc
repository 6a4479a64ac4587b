#include "core/doc.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace cb {

const Node* Node::Find(std::string_view key) const {
  if (kind != Kind::kMap) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

Mark Node::KeyMark(std::string_view key) const {
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == key)
      return i < key_marks.size() ? key_marks[i] : entries[i].second.mark;
  }
  return mark;
}

namespace {

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

bool IsYamlNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}
std::optional<bool> YamlBool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}
std::optional<int64_t> ParseInt(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string_view t = s;
  if (t.front() == '+') t.remove_prefix(1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
  return v;
}
std::optional<double> ParseDouble(std::string_view s) {
  if (s.empty()) return std::nullopt;
  // Only decimal notation (no hex, inf or nan).
  for (char c : s) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E'))
      return std::nullopt;
  }
  std::string tmp(s);
  char* end = nullptr;
  double v = std::strtod(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::string Describe(const Node& n) {
  switch (n.kind) {
    case Node::Kind::kNull:
      return "null";
    case Node::Kind::kPlain:
      return n.text;
    case Node::Kind::kString:
      return Quote(n.text);
    case Node::Kind::kNumber:
    case Node::Kind::kBool:
      return n.text;
    case Node::Kind::kSeq:
      return "a list";
    case Node::Kind::kMap:
      return "a map";
  }
  return "?";
}

Node NodeFromJson(const nlohmann::json& j) {
  Node n;
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      n.kind = Node::Kind::kNull;
      break;
    case nlohmann::json::value_t::boolean:
      n.kind = Node::Kind::kBool;
      n.text = j.get<bool>() ? "true" : "false";
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      n.kind = Node::Kind::kNumber;
      n.text = j.dump();
      break;
    case nlohmann::json::value_t::string:
      n.kind = Node::Kind::kString;
      n.text = j.get<std::string>();
      break;
    case nlohmann::json::value_t::array:
      n.kind = Node::Kind::kSeq;
      for (const auto& e : j) n.items.push_back(NodeFromJson(e));
      break;
    case nlohmann::json::value_t::object:
      n.kind = Node::Kind::kMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        n.entries.push_back(MapEntry{it.key(), NodeFromJson(it.value())});
        n.key_marks.push_back({});
      }
      break;
    case nlohmann::json::value_t::binary:
      n.kind = Node::Kind::kString;
      break;
  }
  return n;
}

nlohmann::json NodeToJson(const Node& n) {
  switch (n.kind) {
    case Node::Kind::kNull:
      return nullptr;
    case Node::Kind::kString:
      return n.text;
    case Node::Kind::kBool:
      return n.text == "true";
    case Node::Kind::kNumber:
    case Node::Kind::kPlain: {
      if (n.kind == Node::Kind::kPlain) {
        if (IsYamlNull(n.text)) return nullptr;
        if (auto b = YamlBool(n.text)) return *b;
      }
      if (auto i = ParseInt(n.text)) return *i;
      if (auto d = ParseDouble(n.text)) return *d;
      return n.text;
    }
    case Node::Kind::kSeq: {
      auto a = nlohmann::json::array();
      for (const auto& e : n.items) a.push_back(NodeToJson(e));
      return a;
    }
    case Node::Kind::kMap: {
      auto o = nlohmann::json::object();
      for (const auto& [k, v] : n.entries) {
        if (!o.contains(k)) o[k] = NodeToJson(v);
      }
      return o;
    }
  }
  return nullptr;
}

std::string JoinPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string out(path);
  out += '.';
  out += key;
  return out;
}

std::string IndexPath(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

void Decoder::Add(Mark at, std::string path, std::string message, std::string expected,
                  std::string found) {
  if (message.empty()) {
    message = "expected " + expected;
    if (!found.empty()) message += ", found " + found;
  }
  problems_.push_back(Problem{file_, at.line, at.column, std::move(path), std::move(message),
                              std::move(expected), std::move(found)});
}

void Decoder::Expected(const Node& n, const std::string& path, std::string what) {
  Add(n.mark, path, "", std::move(what), Describe(n));
}

bool Decoder::Map(const Node& n, const std::string& path,
                  std::initializer_list<std::string_view> known) {
  return Map(n, path, std::vector<std::string_view>(known));
}

bool Decoder::Map(const Node& n, const std::string& path,
                  const std::vector<std::string_view>& known) {
  if (!n.IsMap()) {
    Expected(n, path, "a map");
    return false;
  }
  for (size_t i = 0; i < n.entries.size(); ++i) {
    const auto& key = n.entries[i].first;
    bool found = false;
    for (auto k : known) found = found || k == key;
    if (found) continue;
    Mark at = i < n.key_marks.size() ? n.key_marks[i] : n.entries[i].second.mark;
    std::string msg = "unknown key '" + key + "'";
    std::string guess = DidYouMean(key, known);
    if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
    std::string expected;
    for (auto k : known) {
      if (!expected.empty()) expected += ", ";
      expected += k;
    }
    Add(at, JoinPath(path, key), msg, "one of: " + expected, key);
  }
  return true;
}

bool Decoder::Seq(const Node& n, const std::string& path) {
  if (!n.IsSeq()) {
    Expected(n, path, "a list");
    return false;
  }
  return true;
}

const Node* Decoder::Require(const Node& map, std::string_view key, const std::string& path) {
  const Node* v = map.Find(key);
  if (v == nullptr || v->IsNull()) {
    Add(v ? v->mark : map.mark, JoinPath(path, key),
        "missing required key '" + std::string(key) + "'", "a value", v ? "null" : "nothing");
    return nullptr;
  }
  return v;
}

std::optional<std::string> Decoder::String(const Node& n, const std::string& path) {
  if (n.kind == Node::Kind::kString || n.kind == Node::Kind::kPlain) return n.text;
  Expected(n, path, "a string");
  return std::nullopt;
}

std::optional<int64_t> Decoder::Int(const Node& n, const std::string& path) {
  if (n.kind == Node::Kind::kNumber || n.kind == Node::Kind::kPlain) {
    if (auto v = ParseInt(n.text)) return v;
    // 5.0 from a JSON encoder is an integer too.
    if (auto d = ParseDouble(n.text); d && std::floor(*d) == *d && std::fabs(*d) < 9e15)
      return static_cast<int64_t>(*d);
  }
  Expected(n, path, "an integer");
  return std::nullopt;
}

std::optional<double> Decoder::Number(const Node& n, const std::string& path) {
  if (n.kind == Node::Kind::kNumber || n.kind == Node::Kind::kPlain) {
    if (auto v = ParseDouble(n.text)) return v;
  }
  Expected(n, path, "a number");
  return std::nullopt;
}

std::optional<bool> Decoder::Bool(const Node& n, const std::string& path) {
  if (n.kind == Node::Kind::kBool || n.kind == Node::Kind::kPlain) {
    if (auto b = YamlBool(n.text)) return b;
  }
  Expected(n, path, "true or false");
  return std::nullopt;
}

std::optional<std::vector<std::string>> Decoder::StringList(const Node& n,
                                                            const std::string& path) {
  if (!Seq(n, path)) return std::nullopt;
  std::vector<std::string> out;
  bool good = true;
  for (size_t i = 0; i < n.items.size(); ++i) {
    auto s = String(n.items[i], IndexPath(path, i));
    if (s) out.push_back(*s);
    good = good && s.has_value();
  }
  if (!good) return std::nullopt;
  return out;
}

std::optional<std::vector<double>> Decoder::NumberList(const Node& n, const std::string& path) {
  if (!Seq(n, path)) return std::nullopt;
  std::vector<double> out;
  bool good = true;
  for (size_t i = 0; i < n.items.size(); ++i) {
    auto v = Number(n.items[i], IndexPath(path, i));
    if (v) out.push_back(*v);
    good = good && v.has_value();
  }
  if (!good) return std::nullopt;
  return out;
}

std::optional<std::map<std::string, std::string>> Decoder::StringMap(const Node& n,
                                                                     const std::string& path) {
  if (!n.IsMap()) {
    Expected(n, path, "a map of strings");
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  bool good = true;
  for (const auto& [k, v] : n.entries) {
    auto s = String(v, JoinPath(path, k));
    if (s) out[k] = *s;
    good = good && s.has_value();
  }
  if (!good) return std::nullopt;
  return out;
}

namespace {
template <class T, class F>
bool GetWith(const Node& map, std::string_view key, T* out, F&& read) {
  const Node* v = map.Find(key);
  if (v == nullptr || v->IsNull()) return false;
  auto r = read(*v);
  if (!r) return false;
  *out = static_cast<T>(*r);
  return true;
}
}  // namespace

bool Decoder::Get(const Node& map, std::string_view key, const std::string& path,
                  std::string* out) {
  return GetWith(map, key, out, [&](const Node& v) { return String(v, JoinPath(path, key)); });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path, int* out) {
  std::string p = JoinPath(path, key);
  return GetWith(map, key, out, [&](const Node& v) -> std::optional<int64_t> {
    auto i = Int(v, p);
    if (i && (*i > INT32_MAX || *i < INT32_MIN)) {
      Expected(v, p, "an integer that fits 32 bits");
      return std::nullopt;
    }
    return i;
  });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path, int64_t* out) {
  return GetWith(map, key, out, [&](const Node& v) { return Int(v, JoinPath(path, key)); });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path, double* out) {
  return GetWith(map, key, out, [&](const Node& v) { return Number(v, JoinPath(path, key)); });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path, bool* out) {
  return GetWith(map, key, out, [&](const Node& v) { return Bool(v, JoinPath(path, key)); });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path,
                  std::vector<std::string>* out) {
  return GetWith(map, key, out, [&](const Node& v) { return StringList(v, JoinPath(path, key)); });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path,
                  std::vector<double>* out) {
  return GetWith(map, key, out, [&](const Node& v) { return NumberList(v, JoinPath(path, key)); });
}
bool Decoder::Get(const Node& map, std::string_view key, const std::string& path,
                  std::map<std::string, std::string>* out) {
  return GetWith(map, key, out, [&](const Node& v) { return StringMap(v, JoinPath(path, key)); });
}

}  // namespace cb
