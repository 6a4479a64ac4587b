// The cbagent service file: `services: [ServiceSpec…]` in YAML or JSON (see core/service.h
// for the keys). Loading checks everything at once and returns either every spec or every
// problem (file:line:column, key path, expected, found); nothing is half-loaded.
//
// Checks beyond each spec's own: `services` is required and a list; names are unique.
// Thread-safety: plain functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/problem.h"
#include "core/service.h"

namespace cb {

// A value, or every problem found while producing it.
template <class T>
using Checked = tl::expected<T, std::vector<Problem>>;

// `file` names the source in problems ("services.yaml"; may be empty).
Checked<std::vector<ServiceSpec>> ParseServiceFile(std::string_view text, const std::string& file);
Checked<std::vector<ServiceSpec>> LoadServiceFile(const std::string& path);

}  // namespace cb
