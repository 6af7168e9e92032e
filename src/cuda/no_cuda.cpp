// Stands in for the CUDA backend in a build without it (no nvcc, or CONVND_CUDA=OFF): no
// algorithms, and every CUDA request is an 'unsupported' error that says why.
#include "engine/backend.h"

namespace convnd {

namespace {

const char* const kReason =
    "this build has no CUDA support (configure with nvcc on the PATH and -DCONVND_CUDA=ON)";

class NoCudaBackend final : public BackendImpl {
 public:
  Backend kind() const override { return Backend::cuda; }
  std::string unavailable_reason() const override { return kReason; }
  const std::vector<const Algorithm*>& algorithms() const override {
    static const std::vector<const Algorithm*> none;
    return none;
  }
  Isa resolve_isa(const ExecOptions&, DType) const override { return Isa::sm_90; }
  int current_device() const override { return 0; }
  Status check_memory(const Plan&, Allocating) const override { return Status(ErrorKind::unsupported, kReason); }
  std::shared_ptr<void> allocate(int64_t bytes, int device, void* = nullptr) const override {
    throw Error(ErrorKind::unsupported, "[tensor] cannot allocate " + std::to_string(bytes) +
                                            " bytes on CUDA device " + std::to_string(device) + ": " +
                                            kReason);
  }
  void copy(void*, int, const void*, int, int64_t) const override {
    throw Error(ErrorKind::unsupported, std::string("[copy] ") + kReason);
  }
  void synchronize(int) const override {}
  void execute(const Plan& plan, const Algorithm&, const TensorView&, const TensorView&, const TensorView&,
               const ExecOptions&) const override {
    throw Error(ErrorKind::unsupported,
                std::string("[execute] ") + kReason + "; problem: " + to_string(plan.problem));
  }
};

}  // namespace

const BackendImpl& cuda_backend() {
  static const NoCudaBackend backend;
  return backend;
}

}  // namespace convnd
