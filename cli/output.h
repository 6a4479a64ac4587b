// Output of cbctl: one format switch (-o table|json|yaml) for every read, tables that line up,
// and colour only where it helps.
//
// Colour is used only when the stream is a terminal, NO_COLOR is unset (any value, even
// empty, turns it off: https://no-color.org), TERM is not "dumb", and --no-color was not given.
// JSON is printed indented with a trailing newline; YAML through core's emitter.
// Thread-safety: plain functions; a Table is used by one thread.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cb::cli {

enum class Format { kTable, kJson, kYaml };
inline constexpr std::string_view kFormatChoices = "table json yaml";
Result<Format> ParseFormat(std::string_view s);

// Whether to colour a stream: is_tty && !no_color_flag && NO_COLOR unset && TERM != dumb.
bool ShouldColor(bool is_tty, bool no_color_flag);

enum class Color { kNone, kRed, kGreen, kYellow, kBlue, kBold, kDim };
// Wraps text in the ANSI sequence for `c` when `on`, else returns it unchanged.
std::string Paint(std::string_view text, Color c, bool on);
// The colour of a service state (running green, backoff/starting yellow, circuit-open and
// exited red, stopped dim, others none).
Color StateColor(std::string_view state);

// Columns separated by two spaces, left-aligned (numbers right-aligned when the column was
// declared numeric), header in bold when coloured. Cells may carry ANSI colour: widths count
// visible characters only. UTF-8 characters count as one column each.
class Table {
 public:
  explicit Table(std::vector<std::string> headers, std::vector<bool> numeric = {});
  void Row(std::vector<std::string> cells);
  // Cells painted with a colour (pass the plain text; it is painted when `color` is on).
  void Row(std::vector<std::string> cells, const std::vector<Color>& colors, bool color);
  bool empty() const { return rows_.empty(); }
  std::string Render(bool color) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> numeric_;
  std::vector<std::vector<std::string>> rows_;
};

// Visible width of a string (skipping ANSI sequences, counting UTF-8 code points).
size_t VisibleWidth(std::string_view s);

// Prints j as JSON (indent 2) or YAML. kTable is the caller's business: this prints JSON.
void PrintStructured(std::ostream& out, const nlohmann::json& j, Format f);

// "-" for null/empty values in tables.
std::string OrDash(const std::string& s);

}  // namespace cb::cli
