#include "cli/exit_codes.h"

namespace cb::cli {

int ExitCodeFor(Code code) {
  switch (code) {
    case Code::kUnavailable:
    case Code::kTimeout:
      return kExitUnavailable;
    case Code::kUnauthenticated:
    case Code::kPermissionDenied:
      return kExitNotAllowed;
    default:
      return kExitFailure;
  }
}

}  // namespace cb::cli
