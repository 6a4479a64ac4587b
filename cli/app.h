// Runs cbctl: builds the CLI11 parser from the command table (cli/command.h), parses argv and
// calls the chosen command's handler. Usage errors exit 64 (cli/exit_codes.h).
// Thread-safety: call from one thread.
#pragma once

#include "cli/command.h"

namespace cb::cli {

// The whole program; main() is `return Run(argc, argv, io)` with the real streams.
int Run(int argc, const char* const* argv, Io& io);

// Split a table path into words ("svc start" -> {"svc", "start"}).
std::vector<std::string_view> PathWords(std::string_view path);

}  // namespace cb::cli
