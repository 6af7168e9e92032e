// The CUDA backend as the planner and the registry see it: a list of algorithms and three
// calls. Defined in src/cuda/backend.cpp when CUDA is built, and in src/cuda/no_cuda.cpp
// (an empty list, "unavailable") otherwise, so nothing outside src/cuda/ includes a CUDA header.
#pragma once
#include <convnd/plan.h>
#include <convnd/status.h>
#include <convnd/tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "plan/algorithm.h"

namespace convnd {

/// The CUDA algorithms in planner order, most specialised first, the direct kernel last
/// (empty in a build without CUDA).
const std::vector<const Algorithm*>& cuda_algorithms();

/// "" when the CUDA backend can run in this process; otherwise why not, in one line (no
/// CUDA in this build, no driver, no device, a device this build has no code for).
std::string cuda_unavailable_reason();

/// Out of memory (with the bytes) when the plan's workspace does not fit in the current
/// device's free memory, or input, weight, output and workspace together exceed the device's
/// memory; checked by make_plan before anything is allocated. (Where x, w and y live is known
/// only at execute(), which checks the staging it needs the same way.)
Status cuda_check_memory(const Plan& plan);

/// execute() for a CUDA plan: device tensors are used in place; host tensors are staged (x and
/// w copied to the device, y copied back), so host callers work unchanged. Throws Error.
void cuda_execute(const Plan& plan, const Algorithm& algorithm, const TensorView& x, const TensorView& w,
                  const TensorView& y, const ExecOptions& opt);

/// Device memory for a Tensor on `device`, from the backend's caching allocator, released
/// when the last owner lets go. Error(unsupported) without CUDA, Error(out_of_memory) when
/// the device has no room.
std::shared_ptr<void> cuda_allocate(int64_t bytes, int device);

}  // namespace convnd
