// Errors are values. Every fallible function in cbctl returns Result<T>; exceptions from
// third-party libraries are caught in the adapter that wraps the library and turned into an
// Error here. An Error carries one of a handful of codes (which decide the HTTP status and the
// CLI exit code, each mapped in exactly one place) and a message that says what failed and
// where ("spec.yaml:12:5: workers.log_ingest.replicas: expected a positive integer, found -1").
//
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace cb {

enum class Code {
  kInvalidArgument,    // bad input from a user or a peer: spec, flag, request body
  kNotFound,           // a named thing (service, host, table, file) does not exist
  kAlreadyExists,      // creating something that is there
  kConflict,           // stale generation, lock held by someone else
  kFailedPrecondition, // the world is not in the state the operation needs
  kPermissionDenied,   // authenticated but not allowed (403), or OS EACCES/EPERM
  kUnauthenticated,    // no or wrong credentials (401)
  kUnavailable,        // a peer (daemon, agent, host, database) cannot be reached
  kTimeout,            // a deadline passed
  kCancelled,          // the operator or a signal cancelled it
  kIo,                 // local I/O failed (disk, socket) in a way that is not the above
  kInternal,           // a bug on our side; the message says where
};

// Stable lower_snake_case name used on the wire ({"error": {"code": "not_found"}}).
std::string_view CodeName(Code code);
// Inverse of CodeName; unknown names map to kInternal.
Code CodeFromName(std::string_view name);

struct [[nodiscard]] Error {
  Code code = Code::kInternal;
  std::string message;

  // Returns a copy whose message is "<context>: <message>", for adding the "where".
  Error Wrap(std::string_view context) const {
    return Error{code, std::string(context) + ": " + message};
  }
  std::string ToString() const { return std::string(CodeName(code)) + ": " + message; }
};

template <class T>
using Result = tl::expected<T, Error>;

// An error return: `return Err(Code::kNotFound, "service '{}' not found", name);`
template <class... Args>
tl::unexpected<Error> Err(Code code, fmt::format_string<Args...> f, Args&&... args) {
  return tl::unexpected<Error>(Error{code, fmt::format(f, std::forward<Args>(args)...)});
}
inline tl::unexpected<Error> Err(Error e) { return tl::unexpected<Error>(std::move(e)); }

// An Error for a failed syscall: "<what>: <strerror(errno)>", code chosen from errno
// (EACCES/EPERM -> kPermissionDenied, ENOENT -> kNotFound, others -> kIo).
Error ErrnoError(std::string_view what, int err);

// Success of a Result<void>.
inline Result<void> Ok() { return {}; }

}  // namespace cb

// Propagates an error: `CB_TRY(x, Parse(s));` declares x on success, returns the error otherwise.
#define CB_CONCAT_INNER(a, b) a##b
#define CB_CONCAT(a, b) CB_CONCAT_INNER(a, b)
#define CB_TRY(decl, expr)                                                        \
  auto CB_CONCAT(cb_try_, __LINE__) = (expr);                                     \
  if (!CB_CONCAT(cb_try_, __LINE__)) return tl::unexpected(std::move(CB_CONCAT(cb_try_, __LINE__)).error()); \
  decl = std::move(*CB_CONCAT(cb_try_, __LINE__))
// Propagates the error of a Result<void> (or any Result whose value is not needed).
#define CB_TRY_VOID(expr)                                                          \
  do {                                                                             \
    auto cb_try_v_ = (expr);                                                       \
    if (!cb_try_v_) return tl::unexpected(std::move(cb_try_v_).error());           \
  } while (0)

// For what cannot happen after start-up (a broken invariant): print where and abort.
#define CB_CHECK(cond)                                                             \
  do {                                                                             \
    if (!(cond)) ::cb::CheckFailed(__FILE__, __LINE__, #cond);                     \
  } while (0)
namespace cb {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond);
}
