#include "core/yaml.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cb {

namespace {

constexpr int kMaxDepth = 64;
constexpr off_t kMaxFileBytes = 16 << 20;

Mark ToMark(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return {};
  return Mark{m.line + 1, m.column + 1};
}

class Converter {
 public:
  explicit Converter(Decoder& d) : d_(d) {}

  Node Convert(const YAML::Node& y, const std::string& path, int depth, Mark fallback) {
    Node n;
    n.mark = ToMark(y.Mark());
    if (n.mark.line == 0) n.mark = fallback;
    if (depth > kMaxDepth) {
      if (!deep_reported_)
        d_.Add(n.mark, path,
               "nesting deeper than " + std::to_string(kMaxDepth) +
                   " levels (or an alias that refers to itself)");
      deep_reported_ = true;
      return n;
    }
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        n.kind = Node::Kind::kNull;
        break;
      case YAML::NodeType::Scalar:
        n.text = y.Scalar();
        // "?" is a plain scalar; "!" a quoted one; anything else an explicit tag (!!str...).
        n.kind = y.Tag() == "?" ? Node::Kind::kPlain : Node::Kind::kString;
        break;
      case YAML::NodeType::Sequence: {
        n.kind = Node::Kind::kSeq;
        size_t i = 0;
        for (const auto& item : y) {
          n.items.push_back(Convert(item, IndexPath(path, i), depth + 1, n.mark));
          ++i;
        }
        break;
      }
      case YAML::NodeType::Map: {
        n.kind = Node::Kind::kMap;
        for (auto it = y.begin(); it != y.end(); ++it) {
          const YAML::detail::iterator_value kv = *it;
          const YAML::Node key = kv.first;
          const YAML::Node value = kv.second;
          Mark key_mark = ToMark(key.Mark());
          if (key_mark.line == 0) key_mark = n.mark;
          std::string k;
          if (key.IsScalar()) {
            k = key.Scalar();
          } else if (key.IsNull()) {
            k = "";
          } else {
            d_.Add(key_mark, path, "a key must be a plain value", "a scalar key",
                   key.IsMap() ? "a map" : "a list");
            continue;
          }
          std::string child = JoinPath(path, k);
          for (size_t j = 0; j < n.entries.size(); ++j) {
            if (n.entries[j].first == k) {
              d_.Add(key_mark, child,
                     "duplicate key '" + k + "' (first defined at line " +
                         std::to_string(n.key_marks[j].line) + ")",
                     "each key once", k);
              break;
            }
          }
          // A key without a value has no position of its own: use the key's.
          Node v = Convert(value, child, depth + 1, key_mark);
          if (v.IsNull()) v.mark = key_mark;
          n.entries.push_back(MapEntry{k, std::move(v)});
          n.key_marks.push_back(key_mark);
        }
        break;
      }
    }
    return n;
  }

 private:
  Decoder& d_;
  bool deep_reported_ = false;
};

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  nlohmann::json probe = NodeToJson(Node{Node::Kind::kPlain, s, {}, {}, {}, {}});
  if (!probe.is_string()) return true;
  // Leading/trailing space, or characters YAML gives meaning to at the start.
  if (s.front() == ' ' || s.back() == ' ') return true;
  static const std::string kIndicators = "-?:,[]{}#&*!|>'\"%@`~";
  if (kIndicators.find(s.front()) != std::string::npos) return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) return true;
  }
  if (s == "yes" || s == "no" || s == "on" || s == "off" || s == "Yes" || s == "No" || s == "y" ||
      s == "n")
    return true;
  return false;
}

void Emit(YAML::Emitter& out, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out << YAML::Null;
      break;
    case nlohmann::json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      out << j.dump();
      break;
    case nlohmann::json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (NeedsQuotes(s))
        out << YAML::DoubleQuoted << s;
      else
        out << s;
      break;
    }
    case nlohmann::json::value_t::binary:
      out << YAML::Null;
      break;
    case nlohmann::json::value_t::array: {
      bool flat = true;  // [] and lists of scalars stay on one line
      for (const auto& e : j) flat = flat && e.is_primitive();
      if (flat) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& e : j) Emit(out, e);
      out << YAML::EndSeq;
      break;
    }
    case nlohmann::json::value_t::object:
      if (j.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        out << YAML::Key;
        if (NeedsQuotes(it.key()))
          out << YAML::DoubleQuoted << it.key();
        else
          out << it.key();
        out << YAML::Value;
        Emit(out, it.value());
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

std::optional<Node> ParseYaml(std::string_view text, Decoder& d) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::ParserException& e) {
    d.Add(ToMark(e.mark), "", "YAML syntax error: " + e.msg);
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    d.Add(ToMark(e.mark), "", std::string("YAML error: ") + e.what());
    return std::nullopt;
  } catch (const std::exception& e) {
    d.Add({}, "", std::string("cannot parse: ") + e.what());
    return std::nullopt;
  }
  if (docs.empty()) return Node{};
  if (docs.size() > 1)
    d.Add(ToMark(docs[1].Mark()), "", "more than one YAML document ('---'); expected one");
  try {
    Converter c(d);
    return c.Convert(docs[0], "", 0, Mark{1, 1});
  } catch (const YAML::Exception& e) {
    d.Add(ToMark(e.mark), "", std::string("YAML error: ") + e.what());
    return std::nullopt;
  }
}

std::optional<Node> LoadYamlFile(const std::string& path, Decoder& d) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    d.Add({}, "", err == ENOENT ? "no such file" : "cannot read: " + std::string(strerror(err)));
    return std::nullopt;
  }
  if (S_ISDIR(st.st_mode)) {
    d.Add({}, "", "is a directory, not a file");
    return std::nullopt;
  }
  if (st.st_size > kMaxFileBytes) {
    d.Add({}, "", "file is larger than 16 MiB");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    d.Add({}, "", "cannot read: " + std::string(strerror(errno)));
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseYaml(ss.str(), d);
}

std::string JsonToYaml(const nlohmann::json& j) {
  YAML::Emitter out;
  out.SetIndent(2);
  Emit(out, j);
  std::string s = out.c_str();
  if (s.empty() || s.back() != '\n') s += '\n';
  return s;
}

}  // namespace cb
