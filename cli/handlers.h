// The handlers named by the command table (cli/command_table.cc). Each returns an exit code
// (cli/exit_codes.h). Grouped by the file that defines them.
#pragma once

#include "cli/command.h"

namespace cb::cli {

// cli/cmd_local.cc — commands that need no daemon.
int CmdConfigValidate(Invocation& inv);
int CmdVersion(Invocation& inv);
int CmdCompletion(Invocation& inv);
int CmdMan(Invocation& inv);

}  // namespace cb::cli
