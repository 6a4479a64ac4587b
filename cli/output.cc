#include "cli/output.h"

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/yaml.h"

namespace cb::cli {

Result<Format> ParseFormat(std::string_view s) {
  if (s == "table") return Format::kTable;
  if (s == "json") return Format::kJson;
  if (s == "yaml") return Format::kYaml;
  return Err(Code::kInvalidArgument, "unknown output format '{}' (expected table, json or yaml)",
             s);
}

bool ShouldColor(bool is_tty, bool no_color_flag) {
  if (!is_tty || no_color_flag) return false;
  if (std::getenv("NO_COLOR") != nullptr) return false;
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::strcmp(term, "dumb") == 0) return false;
  return true;
}

std::string Paint(std::string_view text, Color c, bool on) {
  if (!on || c == Color::kNone) return std::string(text);
  const char* code = "";
  switch (c) {
    case Color::kRed:
      code = "31";
      break;
    case Color::kGreen:
      code = "32";
      break;
    case Color::kYellow:
      code = "33";
      break;
    case Color::kBlue:
      code = "34";
      break;
    case Color::kBold:
      code = "1";
      break;
    case Color::kDim:
      code = "2";
      break;
    case Color::kNone:
      break;
  }
  return std::string("\x1b[") + code + "m" + std::string(text) + "\x1b[0m";
}

Color StateColor(std::string_view state) {
  if (state == "running") return Color::kGreen;
  if (state == "starting" || state == "backoff" || state == "stopping" || state == "pending")
    return Color::kYellow;
  if (state == "circuit-open" || state == "exited" || state == "unknown") return Color::kRed;
  if (state == "stopped") return Color::kDim;
  return Color::kNone;
}

size_t VisibleWidth(std::string_view s) {
  size_t w = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1b && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;
      continue;
    }
    if ((c & 0xC0) != 0x80) ++w;  // count lead bytes only
  }
  return w;
}

Table::Table(std::vector<std::string> headers, std::vector<bool> numeric)
    : headers_(std::move(headers)), numeric_(std::move(numeric)) {
  numeric_.resize(headers_.size(), false);
}

void Table::Row(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Row(std::vector<std::string> cells, const std::vector<Color>& colors, bool color) {
  for (size_t i = 0; i < cells.size() && i < colors.size(); ++i)
    cells[i] = Paint(cells[i], colors[i], color);
  Row(std::move(cells));
}

std::string Table::Render(bool color) const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) width[c] = VisibleWidth(headers_[c]);
  for (const auto& r : rows_)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], VisibleWidth(r[c]));
  std::string out;
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string l;
    for (size_t c = 0; c < cells.size(); ++c) {
      size_t pad = width[c] - VisibleWidth(cells[c]);
      bool last = c + 1 == cells.size();
      std::string cell = header ? Paint(cells[c], Color::kBold, color) : cells[c];
      if (numeric_[c] && !header) {
        l += std::string(pad, ' ') + cell;
      } else {
        l += cell;
        if (!last) l += std::string(pad, ' ');
      }
      if (!last) l += "  ";
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(headers_, true);
  for (const auto& r : rows_) line(r, false);
  return out;
}

void PrintStructured(std::ostream& out, const nlohmann::json& j, Format f) {
  if (f == Format::kYaml) {
    out << JsonToYaml(j);
  } else {
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

}  // namespace cb::cli
