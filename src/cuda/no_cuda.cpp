// Stands in for the CUDA backend in a build without it (no nvcc, or CONVND_CUDA=OFF): no
// algorithms, and every CUDA request is an 'unsupported' error from the planner.
#include "cuda/backend.h"

namespace convnd {

const std::vector<const Algorithm*>& cuda_algorithms() {
  static const std::vector<const Algorithm*> none;
  return none;
}

std::string cuda_unavailable_reason() {
  return "this build has no CUDA support (configure with nvcc on the PATH and -DCONVND_CUDA=ON)";
}

Status cuda_check_memory(const Plan&) {
  return Status::Ok();
}

void cuda_execute(const Plan& plan, const Algorithm&, const TensorView&, const TensorView&, const TensorView&,
                  const ExecOptions&) {
  throw Error(ErrorKind::unsupported,
              "[execute] " + cuda_unavailable_reason() + "; problem: " + to_string(plan.problem));
}

std::shared_ptr<void> cuda_allocate(int64_t bytes, int device) {
  throw Error(ErrorKind::unsupported, "[tensor] cannot allocate " + std::to_string(bytes) + " bytes on CUDA device " +
                                          std::to_string(device) + ": " + cuda_unavailable_reason());
}

}  // namespace convnd
