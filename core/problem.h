// Problem: one thing wrong with an input document (a fleet spec, a service file, a request
// body), with where it is and what was expected. Loaders collect every problem at once rather
// than stopping at the first, so an operator fixes a file in one round.
//
// Rendered as one line:
//   fleet.yaml:12:5: workers.log_ingest.replicas: expected a positive integer, found -1
// and as JSON (`cbctl config validate -o json`):
//   {"file": "fleet.yaml", "line": 12, "column": 5, "path": "workers.log_ingest.replicas",
//    "message": "...", "expected": "a positive integer", "found": "-1"}
//
// line/column are 1-based; 0 means unknown (a JSON request body has no positions).
// Thread-safety: plain values.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/result.h"

namespace cb {

struct Problem {
  std::string file;      // empty: not from a file (a request body)
  int line = 0;          // 1-based; 0 = unknown
  int column = 0;        // 1-based; 0 = unknown
  std::string path;      // key path: "services[2].restart.jitter"; empty = the whole document
  std::string message;   // what is wrong, in a sentence fragment ("unknown key 'replica'")
  std::string expected;  // what would be right ("a positive integer"); may be empty
  std::string found;     // what was there ("-1", "a list"); may be empty
  bool operator==(const Problem&) const = default;
};

// "file:line:column: path: message" (parts that are unknown are left out).
std::string FormatProblem(const Problem& p);
// One problem per line, each formatted as above.
std::string FormatProblems(const std::vector<Problem>& ps);

void to_json(nlohmann::json& j, const Problem& p);

// One kInvalidArgument Error naming every problem ("; "-separated), for APIs that return a
// single Error. `what` prefixes the message when not empty ("invalid service file").
Error ProblemsToError(const std::vector<Problem>& ps, std::string_view what = "");

// Levenshtein distance, for "did you mean".
int EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word` when it is close enough to be a likely typo; else "".
std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace cb
