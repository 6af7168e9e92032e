// The registry: every backend's algorithm families in planner order, and the backends
// themselves. The one place above the backends that knows all of them.
#pragma once
#include <convnd/plan.h>

#include <string_view>
#include <vector>

#include "engine/algorithm.h"
#include "engine/backend.h"

namespace convnd {

/// The implementation of a backend (the CPU one, or CUDA's; CUDA's says why it is unavailable
/// in a build or process without it).
const BackendImpl& backend_impl(Backend b);

/// Every backend's algorithms, CPU first, each backend's list in its planner order.
const std::vector<const Algorithm*>& algorithm_registry();
/// The algorithm of that name, or null.
const Algorithm* find_algorithm(std::string_view name);

}  // namespace convnd
