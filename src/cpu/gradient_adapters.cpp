// The CPU instances of the gradient adapters (src/engine/gradient_adapters.h): the input
// gradient as the dual forward conv, and a transposed conv's weight gradient as its dual's.
#include "engine/gradient_adapters.h"

#include <cstring>

#include "cpu/thread_pool.h"
#include "engine/backend.h"

namespace convnd {

namespace {

// The permuted copy on the host: one task per (group, row of the dense index's second axis).
Status cpu_permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                   int es) {
  const int64_t rows = d.shape[0] * d.shape[1];
  const char* s = static_cast<const char*>(src);
  char* t = static_cast<char*>(dst);
  ctx.pool->parallel_for(rows, [&](int64_t row, int) {
    const int64_t i0 = row / d.shape[1], i1 = row % d.shape[1];
    int64_t dense = row * d.shape[2] * d.shape[3];
    for (int64_t i2 = 0; i2 < d.shape[2]; ++i2)
      for (int64_t i3 = 0; i3 < d.shape[3]; ++i3, ++dense) {
        const int64_t perm = i0 * d.strides[0] + i1 * d.strides[1] + i2 * d.strides[2] + i3 * d.strides[3];
        if (to_permuted) std::memcpy(t + perm * es, s + dense * es, size_t(es));
        else std::memcpy(t + dense * es, s + perm * es, size_t(es));
      }
  });
  return Status::Ok();
}

constexpr IsaSet kCpuIsas{Isa::generic, Isa::avx2, Isa::avx512};

class CpuDataGrad final : public DataGradAdapter {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"data_grad", Backend::cpu, {Direction::bwd_d}, kAllDTypes, kCpuIsas,
                                   "w permuted to [C, K, O/g] (none when depthwise) + the dual forward plan's"};
    return t;
  }

 protected:
  const std::vector<const Algorithm*>& candidates() const override { return cpu_backend().algorithms(); }
  Status permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                 int es) const override {
    return cpu_permute(ctx, src, dst, d, to_permuted, es);
  }
};

class CpuWeightGradDual final : public WeightGradDualAdapter {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"weight_grad_dual", Backend::cpu, {Direction::bwd_w}, kAllDTypes, kCpuIsas,
                                   "dw' [C, K, O/g] (none when depthwise) + the dual's weight-gradient plan"};
    return t;
  }

 protected:
  const std::vector<const Algorithm*>& candidates() const override { return cpu_backend().algorithms(); }
  Status permute(const RunContext& ctx, const void* src, void* dst, const WeightDual& d, bool to_permuted,
                 int es) const override {
    return cpu_permute(ctx, src, dst, d, to_permuted, es);
  }
};

}  // namespace

const Algorithm& data_grad_algorithm() {
  static const CpuDataGrad a;
  return a;
}

const Algorithm& weight_grad_dual_algorithm() {
  static const CpuWeightGradDual a;
  return a;
}

}  // namespace convnd
