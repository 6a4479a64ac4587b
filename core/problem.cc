#include "core/problem.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace cb {

std::string FormatProblem(const Problem& p) {
  std::string out;
  if (!p.file.empty()) {
    out += p.file;
    if (p.line > 0) {
      out += ":" + std::to_string(p.line);
      if (p.column > 0) out += ":" + std::to_string(p.column);
    }
    out += ": ";
  } else if (p.line > 0) {
    out += "line " + std::to_string(p.line) + ":" + std::to_string(p.column) + ": ";
  }
  if (!p.path.empty()) out += p.path + ": ";
  out += p.message;
  return out;
}

std::string FormatProblems(const std::vector<Problem>& ps) {
  std::string out;
  for (const auto& p : ps) {
    out += FormatProblem(p);
    out += '\n';
  }
  return out;
}

void to_json(nlohmann::json& j, const Problem& p) {
  j = nlohmann::json{{"file", p.file},  {"line", p.line},       {"column", p.column},
                     {"path", p.path},  {"message", p.message}, {"expected", p.expected},
                     {"found", p.found}};
}

Error ProblemsToError(const std::vector<Problem>& ps, std::string_view what) {
  std::string msg(what);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (i == 0 && !msg.empty()) msg += ": ";
    if (i > 0) msg += "; ";
    msg += FormatProblem(ps[i]);
  }
  return Error{Code::kInvalidArgument, msg};
}

int EditDistance(std::string_view a, std::string_view b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  int best_d = 1 << 30;
  for (auto c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // A prefix of a candidate ("warn" for "warning") is a likely abbreviation.
  if (word.size() >= 3) {
    for (auto c : candidates) {
      if (c.size() > word.size() && c.substr(0, word.size()) == word) return std::string(c);
    }
  }
  if (best.empty()) return "";
  // A typo: a couple of edits, or up to a third of the word for long keys.
  int limit = std::max<int>(2, static_cast<int>(std::max(word.size(), best.size()) / 3));
  if (best_d <= limit && best_d < static_cast<int>(std::max(word.size(), best.size())))
    return std::string(best);
  return "";
}

}  // namespace cb
