// pointwise_gemm: 1x1 convs (stride 1, no padding) as one GEMM per group whose A is x itself
// ([N·H·W, C] with row stride C): no copy of the input.
#include <algorithm>

#include "cpu/conv_gemm.h"
#include "cpu/isas.h"

namespace convnd {

namespace {

// --- pointwise: 1x1 kernel, stride 1, no padding: A is x itself ----------------------------
class PointwiseGemm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"pointwise_gemm", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "packed B (C/g x n_tile) + per-thread A and C blocks"};
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    if (!all_ones(g.k)) return "needs a 1x1 kernel";
    if (!all_ones(g.stride) || !all_ones(g.idil) || !all_zeros(g.lo) || !all_zeros(g.hi))
      return "needs stride 1 and no padding (and no transposed stride or input dilation)";
    auto cfg = std::make_shared<ConvGemmConfig>();
    std::string why = plan_conv_gemm(g, true, req.budget, req.threads, req.isa, &cfg->tiles, min_ws);
    if (!why.empty()) return why;
    out->workspace_bytes = cfg->tiles.workspace;
    out->config = std::move(cfg);
    return {};
  }
  std::shared_ptr<const PlanConfig> with_swapped_weight(const PlanConfig& config, DType dtype) const override {
    return with_swapped_weight_of<ConvGemmConfig>(config, dtype);
  }
  Status run(const RunContext& ctx) const override {
    const ConvGemmConfig* cfg = config_of<ConvGemmConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    DenseConv dc;
    dc.sub = ctx.g;
    dc.w_k = ctx.g.k;
    dc.y_out = ctx.g.out;
    dc.pointwise_a = true;
    dc.w_swapped = cfg->w_swapped;
    return run_conv_gemm(cfg->tiles, dc, ctx, progress_of(ctx, ctx.g.y_elems()));
  }
};


}  // namespace

const Algorithm& pointwise_gemm_algorithm() {
  static const PointwiseGemm a;
  return a;
}

}  // namespace convnd
