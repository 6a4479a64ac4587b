// The reconciler's view of the fleet spec: core's loader (core/spec.h) validates the YAML and
// derives each host's services; this adapter turns that into a DesiredState.
// Thread-safety: the returned function is pure and safe from any thread.
#pragma once

#include "controlplane/reconciler.h"

namespace cb::cp {

// Invalid specs give kInvalidArgument "N problems in FILE:\n  FILE:L:C: path: message\n…"
// (wire::ErrorJson turns the lines into `problems`).
DeriveFn MakeSpecDeriver();

}  // namespace cb::cp
