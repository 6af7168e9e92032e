// The CUDA fallback: the definition of conv_general, one thread per output element
// (kernels/direct.cu). It takes every problem, so every valid problem has a CUDA plan.
#include <algorithm>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

// Output elements per launch, so that progress is reported and cancelling takes effect
// between launches.
constexpr int64_t kChunk = int64_t(1) << 26;

class DirectCuda final : public Algorithm {
 public:
  std::string_view name() const override { return "direct__cuda"; }
  // The last resort: not chosen when a faster algorithm only lacks budget.
  bool fallback() const override { return true; }
  Backend backend() const override { return Backend::cuda; }
  std::string plan(const Geometry& g, const PlanRequest&, Plan* plan, int64_t*) const override {
    plan->workspace_bytes = 0;
    plan->index_bits = 64;
    plan->tiles = {{"outputs_per_launch", std::min(kChunk, g.y_elems())}};
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const cuda::ConvShape s = cuda::conv_shape(ctx.g);
    const int64_t total = ctx.g.y_elems();
    for (int64_t b = 0; b < total; b += kChunk) {
      const int64_t e = std::min(total, b + kChunk);
      CONVND_CUDA_CHECK(cuda::launch_direct_conv(s, ctx.x.data, ctx.w.data, ctx.y.data, b, e, 0));
      if (!cuda::report_done(ctx, double(e) / double(total)))
        return Status(ErrorKind::interrupted, "[direct__cuda] cancelled");
    }
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& direct_cuda_algorithm() {
  static const DirectCuda a;
  return a;
}

}  // namespace convnd
