// API token secrets: generation and hashing. The daemon stores only HashSecret(secret).
// Thread-safety: pure functions (GenerateSecret uses OpenSSL's thread-safe RAND_bytes).
#pragma once

#include <string>

#include "core/result.h"

namespace cb::cp {

// "cbt_" + 64 hex characters (32 random bytes). kInternal when the RNG fails.
Result<std::string> GenerateSecret();
// Lower-case hex SHA-256 of the secret.
std::string HashSecret(const std::string& secret);
// Constant-time comparison of two equal-length strings (false when lengths differ).
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace cb::cp
