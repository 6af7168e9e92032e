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

struct DirectCudaConfig final : PlanConfig {
  int64_t outputs_per_launch = kChunk;  // one thread per output element
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"outputs_per_launch", outputs_per_launch}};
  }
};

class DirectCuda final : public Algorithm {
 public:
  // The last resort: not chosen when a faster algorithm only lacks budget.
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t = cuda::cuda_traits("direct__cuda", kAllDTypes, "none", /*fallback=*/true);
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest&, PlanChoice* out, int64_t*) const override {
    auto cfg = std::make_shared<DirectCudaConfig>();
    cfg->outputs_per_launch = std::max<int64_t>(1, std::min(kChunk, g.y_elems()));
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const DirectCudaConfig* cfg = config_of<DirectCudaConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const cuda::ConvShape s = cuda::conv_shape(ctx.g);
    const int64_t total = ctx.g.y_elems(), chunk = std::max<int64_t>(1, cfg->outputs_per_launch);
    for (int64_t b = 0; b < total; b += chunk) {
      const int64_t e = std::min(total, b + chunk);
      CONVND_CUDA_CHECK(cuda::launch_direct_conv(s, ctx.x.data, ctx.w.data, ctx.y.data, b, e, cuda::stream_of(ctx)));
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
