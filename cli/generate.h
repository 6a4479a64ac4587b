// Generated artefacts of the command table: shell completion scripts and the man page.
// The checked-in copies (completions/cbctl.{bash,zsh,fish}, man/cbctl.1) are these outputs;
// tests/cli/generated_test.cc fails when they are stale. Regenerate with scripts/gen-docs.
// Output is deterministic (no dates), so it can be compared byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace cb::cli {

// shell: "bash", "zsh" or "fish"; anything else is kInvalidArgument.
Result<std::string> CompletionScript(std::string_view shell);
// The cbctl(1) manual page in roff (man(7) macros).
std::string ManPage();

}  // namespace cb::cli
