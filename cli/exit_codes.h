// Exit codes of cbctl, in ONE place (ARCHITECTURE.md "Exit codes of cbctl"):
//   0  success
//   1  the operation failed (including a declined confirmation and a 409 conflict)
//   2  with --detailed-exitcode on plan/apply: there are (or were) changes
//   64 usage error (including a missing --yes without a terminal)
//   69 the daemon or the target is unreachable
//   77 not allowed (401/403)
// Every handler returns one of these; ExitCodeFor maps an Error's code to one.
#pragma once

#include "core/result.h"

namespace cb::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitChanges = 2;
inline constexpr int kExitUsage = 64;        // EX_USAGE
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE
inline constexpr int kExitNotAllowed = 77;   // EX_NOPERM

// unavailable, timeout -> 69; unauthenticated, permission_denied -> 77; everything else -> 1
// (a usage error is found by the CLI itself, never by a peer, so no Code maps to 64).
int ExitCodeFor(Code code);

}  // namespace cb::cli
