// Checks a CPU algorithm's run() makes on the configuration it is given before any kernel
// runs. A plan from make_plan always passes them; a hand-made one (tests, timing the
// alternatives the planner decides between) that asks for another instruction set than the
// plan's, or for more workspace than the plan allocates, is refused with Status invalid rather
// than run on memory it does not have. Not included by src/cpu/isa/ (see direct_kernels.inc).
#pragma once
#include <convnd/plan.h>
#include <convnd/status.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace convnd {

/// The backend checked that the plan's ISA runs on this CPU; kernels run the configured one,
/// so the two must be the same.
inline Status check_config_isa(const Plan& plan, Isa configured) {
  if (configured == plan.isa) return Status::Ok();
  return Status(ErrorKind::invalid, "[" + plan.algorithm + "] the configuration's " +
                                        std::string(isa_name(configured)) + " kernels are not the plan's " +
                                        std::string(isa_name(plan.isa)) + " path (a hand-made plan?)");
}

/// `needed` bytes (what the configuration uses, with `what` saying for what) must fit in the
/// workspace execute() allocates for the plan.
inline Status check_workspace_fits(const Plan& plan, int64_t needed, std::string_view what) {
  if (needed >= 0 && needed <= plan.workspace_bytes) return Status::Ok();
  return Status(ErrorKind::invalid, "[" + plan.algorithm + "] " + std::string(what) + " needs " +
                                        std::to_string(needed) + " bytes of workspace; the plan has " +
                                        std::to_string(plan.workspace_bytes) + " (a hand-made plan?)");
}

}  // namespace convnd
