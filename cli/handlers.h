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

// cli/cmd_daemon.cc — commands that talk to cbctld.
int CmdApply(Invocation& inv);
int CmdPlan(Invocation& inv);
int CmdGetSpec(Invocation& inv);
int CmdGetHosts(Invocation& inv);
int CmdStatus(Invocation& inv);
int CmdPs(Invocation& inv);
int CmdSvcStart(Invocation& inv);
int CmdSvcStop(Invocation& inv);
int CmdSvcRestart(Invocation& inv);
int CmdSvcReset(Invocation& inv);
int CmdLogs(Invocation& inv);
int CmdAudit(Invocation& inv);
int CmdTokenCreate(Invocation& inv);
int CmdTokenList(Invocation& inv);
int CmdTokenRevoke(Invocation& inv);
int CmdCompleteServices(Invocation& inv);  // hidden: service addresses for shell completion

// cli/cmd_db.cc — database operations (libcbdb), no daemon.
int CmdDbStatus(Invocation& inv);
int CmdDbTune(Invocation& inv);
int CmdDbPartition(Invocation& inv);
int CmdDbCancel(Invocation& inv);
int CmdDbMaintain(Invocation& inv);
int CmdDbVacuum(Invocation& inv);

}  // namespace cb::cli
