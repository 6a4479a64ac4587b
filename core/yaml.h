// YAML (and JSON, which is YAML) to a Doc tree with positions, and JSON to YAML text.
//
// The yaml-cpp adapter: its exceptions stop here. What the parser itself rejects (bad syntax)
// is one Problem at the place it stopped; what it silently accepts but we do not is reported
// too, all at once:
//   - duplicate keys (yaml-cpp keeps both and answers lookups with the first): an error at the
//     second, naming the line of the first;
//   - keys that are not scalars; more than one document; nesting deeper than 64 levels
//     (which also stops alias cycles).
// Thread-safety: plain functions.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/doc.h"

namespace cb {

// Parses `text`; problems are reported into d (with d.file() as their file). Returns the root
// (a null Node for an empty document) or nullopt when the text could not be parsed at all.
// Duplicate keys and the like are reported but still give a tree (the first entry wins on
// Find), so the caller goes on to report the rest.
std::optional<Node> ParseYaml(std::string_view text, Decoder& d);

// Reads `path` and parses it. A file that cannot be read is one Problem naming it and why.
// Files larger than 16 MiB are refused.
std::optional<Node> LoadYamlFile(const std::string& path, Decoder& d);

// Block-style YAML for a JSON value, keys in the JSON object's order. Strings that YAML
// would read as something else ("2719", "true", "null", "") are quoted.
std::string JsonToYaml(const nlohmann::json& j);

}  // namespace cb
