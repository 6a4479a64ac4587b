// Decoding ServiceSpecs out of a Doc tree (see core/doc.h), shared by the JSON codec of
// core/service.h, the cbagent service file loader (core/service_file.h) and the fleet spec
// (core/spec.h), whose servers, workers and services take the same restart:/stop: blocks.
//
// Every function reports problems into the Decoder and never stops at the first one.
// Thread-safety: plain functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/doc.h"
#include "core/service.h"

namespace cb {

// The keys of a ServiceSpec map, of its restart: block and of its stop: block.
extern const std::vector<std::string_view> kServiceKeys;
extern const std::vector<std::string_view> kRestartKeys;
extern const std::vector<std::string_view> kStopKeys;

// restart: {policy, backoff_seconds, jitter, circuit_break_after_failures,
// healthy_after_seconds, probe_after_seconds}. Fields that are absent keep *out's value, so a
// caller can start from a default policy (the fleet spec's plugin_process_manager one).
void DecodeRestart(Decoder& d, const Node& n, const std::string& path, RestartSpec* out);
// stop: {signal, grace_seconds}. Absent fields keep *out's value.
void DecodeStop(Decoder& d, const Node& n, const std::string& path, StopSpec* out);

// A full ServiceSpec map. `defaults` gives the restart/stop used when those blocks (or fields
// of them) are absent. Returns nullopt when anything was wrong (all of it reported).
std::optional<ServiceSpec> DecodeServiceSpec(Decoder& d, const Node& n, const std::string& path,
                                             const RestartSpec& restart_default = {},
                                             const StopSpec& stop_default = {});

// Checks of a command argv (non-empty, argv[0] non-empty, no NUL); reported at `at`.
void CheckCommand(Decoder& d, const Node& at, const std::string& path,
                  const std::vector<std::string>& argv);

}  // namespace cb
