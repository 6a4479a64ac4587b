// The version of every cbctl binary (cbctl, cbctld, cbagent, codebolt-worker): the CMake
// project version, passed by core/CMakeLists.txt as CBCTL_VERSION_STRING.
#pragma once

#include <string_view>

#ifndef CBCTL_VERSION_STRING
#define CBCTL_VERSION_STRING "0.0.0-unknown"
#endif

namespace cb {
inline constexpr std::string_view kVersion = CBCTL_VERSION_STRING;
}  // namespace cb
