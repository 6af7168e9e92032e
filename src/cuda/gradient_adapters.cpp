// The CUDA instances of the gradient adapters (src/engine/gradient_adapters.h): the input
// gradient as the dual forward conv, and a transposed conv's weight gradient as its dual's.
// The permuted copies are the strided-copy kernels' (a permutation is a strided view).
#include "engine/gradient_adapters.h"

#include "cuda/algorithms.h"
#include "engine/backend.h"

namespace convnd {

namespace {

cuda::StridedLayout layout_of(const WeightDual& d) {
  cuda::StridedLayout l{};
  l.ndim = 4;
  for (int i = 0; i < 4; ++i) {
    l.shape[i] = d.shape[i];
    l.strides[i] = d.strides[i];
  }
  return l;
}

Status cuda_permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                    int es) {
  const cudaStream_t s = cuda::stream_of(ctx);
  const cudaError_t e = to_permuted ? cuda::launch_copy_to_strided(src, dst, layout_of(d), es, s)
                                    : cuda::launch_copy_from_strided(src, layout_of(d), dst, es, s);
  if (e != cudaSuccess)
    return Status(ErrorKind::backend, std::string("[gradient] permuted copy: ") + cudaGetErrorString(e));
  return Status::Ok();
}

constexpr IsaSet kCudaIsas{Isa::sm_90};

// Either adapter (DataGradAdapter, WeightGradDualAdapter) on the CUDA list and device copies.
template <class Adapter>
class CudaAdapter final : public Adapter {
 public:
  explicit CudaAdapter(const AlgorithmTraits& traits) : traits_(traits) {}
  const AlgorithmTraits& traits() const override { return traits_; }

 protected:
  const std::vector<const Algorithm*>& candidates() const override { return cuda_backend().algorithms(); }
  Status permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                 int es) const override {
    return cuda_permute(ctx, src, dst, d, to_permuted, es);
  }

 private:
  AlgorithmTraits traits_;
};

}  // namespace

const Algorithm& data_grad_cuda_algorithm() {
  static const CudaAdapter<DataGradAdapter> a({"data_grad__cuda", Backend::cuda, {Direction::bwd_d}, kAllDTypes,
                                               kCudaIsas,
                                               "w permuted to [C, K, O/g] (none when depthwise) + the dual forward "
                                               "plan's"});
  return a;
}

const Algorithm& weight_grad_dual_cuda_algorithm() {
  static const CudaAdapter<WeightGradDualAdapter> a({"weight_grad_dual__cuda", Backend::cuda, {Direction::bwd_w},
                                                     kAllDTypes, kCudaIsas,
                                                     "dw' [C, K, O/g] (none when depthwise) + the dual's "
                                                     "weight-gradient plan"});
  return a;
}

}  // namespace convnd
