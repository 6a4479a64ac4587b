#include "core/result.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cb {

namespace {
struct CodeEntry {
  Code code;
  std::string_view name;
};
constexpr CodeEntry kCodes[] = {
    {Code::kInvalidArgument, "invalid_argument"},
    {Code::kNotFound, "not_found"},
    {Code::kAlreadyExists, "already_exists"},
    {Code::kConflict, "conflict"},
    {Code::kFailedPrecondition, "failed_precondition"},
    {Code::kPermissionDenied, "permission_denied"},
    {Code::kUnauthenticated, "unauthenticated"},
    {Code::kUnavailable, "unavailable"},
    {Code::kTimeout, "timeout"},
    {Code::kCancelled, "cancelled"},
    {Code::kIo, "io"},
    {Code::kInternal, "internal"},
};
}  // namespace

std::string_view CodeName(Code code) {
  for (const auto& e : kCodes) {
    if (e.code == code) return e.name;
  }
  return "internal";
}

Code CodeFromName(std::string_view name) {
  for (const auto& e : kCodes) {
    if (e.name == name) return e.code;
  }
  return Code::kInternal;
}

Error ErrnoError(std::string_view what, int err) {
  Code code = Code::kIo;
  if (err == EACCES || err == EPERM) code = Code::kPermissionDenied;
  if (err == ENOENT) code = Code::kNotFound;
  if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH) code = Code::kUnavailable;
  if (err == ETIMEDOUT) code = Code::kTimeout;
  return Error{code, std::string(what) + ": " + std::strerror(err)};
}

void CheckFailed(const char* file, int line, const char* cond) {
  std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, cond);
  std::fflush(stderr);
  std::abort();
}

}  // namespace cb
