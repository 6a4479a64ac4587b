// The handlers named by the command table (cli/command_table.cc). Each returns an exit code
// (cli/exit_codes.h). Grouped by the file that defines them.
//
// Start-up time: `cbctl` itself links only what the daemon-less commands need (core, CLI11,
// yaml-cpp), so `cbctl version` does not load libssl, libpq and their dozens of libraries.
// Handlers that need those are declared CB_HEAVY_HANDLER (weak): in `cbctl` they are null and
// the command is run by exec'ing, with the same arguments, `cbctl-api` (daemon commands:
// cmd_daemon.cc linked, no libpq/libpqxx) or `cbctl-full` (every handler linked: db commands),
// both installed beside it. See cli/app.cc and cli/CMakeLists.txt.
#pragma once

#include "cli/command.h"

#define CB_HEAVY_HANDLER __attribute__((weak))

namespace cb::cli {

// cli/cmd_local.cc — commands that need no daemon.
int CmdConfigValidate(Invocation& inv);
int CmdVersion(Invocation& inv);
int CmdCompletion(Invocation& inv);
int CmdMan(Invocation& inv);

// cli/cmd_daemon.cc — commands that talk to cbctld.
CB_HEAVY_HANDLER int CmdApply(Invocation& inv);
CB_HEAVY_HANDLER int CmdPlan(Invocation& inv);
CB_HEAVY_HANDLER int CmdGetSpec(Invocation& inv);
CB_HEAVY_HANDLER int CmdGetHosts(Invocation& inv);
CB_HEAVY_HANDLER int CmdStatus(Invocation& inv);
CB_HEAVY_HANDLER int CmdPs(Invocation& inv);
CB_HEAVY_HANDLER int CmdSvcStart(Invocation& inv);
CB_HEAVY_HANDLER int CmdSvcStop(Invocation& inv);
CB_HEAVY_HANDLER int CmdSvcRestart(Invocation& inv);
CB_HEAVY_HANDLER int CmdSvcReset(Invocation& inv);
CB_HEAVY_HANDLER int CmdLogs(Invocation& inv);
CB_HEAVY_HANDLER int CmdAudit(Invocation& inv);
CB_HEAVY_HANDLER int CmdTokenCreate(Invocation& inv);
CB_HEAVY_HANDLER int CmdTokenList(Invocation& inv);
CB_HEAVY_HANDLER int CmdTokenRevoke(Invocation& inv);
// Hidden: service addresses for shell completion.
CB_HEAVY_HANDLER int CmdCompleteServices(Invocation& inv);

// cli/cmd_db.cc — database operations (libcbdb), no daemon.
CB_HEAVY_HANDLER int CmdDbStatus(Invocation& inv);
CB_HEAVY_HANDLER int CmdDbTune(Invocation& inv);
CB_HEAVY_HANDLER int CmdDbPartition(Invocation& inv);
CB_HEAVY_HANDLER int CmdDbCancel(Invocation& inv);
CB_HEAVY_HANDLER int CmdDbMaintain(Invocation& inv);
CB_HEAVY_HANDLER int CmdDbVacuum(Invocation& inv);

}  // namespace cb::cli
