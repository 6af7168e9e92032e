// im2col_gemm: any conv without input dilation as an implicit-im2col GEMM per group; A's panels
// are gathered from x while packing, so nothing is unfolded in memory.
#include <algorithm>

#include "cpu/conv_gemm.h"
#include "cpu/isas.h"

namespace convnd {

namespace {

// --- implicit im2col GEMM: any dense conv (no input dilation) ------------------------------
class Im2colGemm final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t{"im2col_gemm", Backend::cpu, {Direction::fwd}, kAllDTypes,
                                   kCpuIsas,
                                   "packed B (K x n_tile) + per-thread A and C blocks [+ one padded f32 sample]"};
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t* min_ws) const override {
    if (!all_ones(g.idil)) return "a transposed conv with stride > 1 (or input dilation) needs polyphase_gemm's stride phases";
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
    const Geometry& g = ctx.g;
    DenseConv dc;
    dc.sub = g;
    dc.sub.flip = false;
    dc.w_k = g.k;
    dc.y_out = g.out;
    dc.w_swapped = cfg->w_swapped;
    for (int j = 0; j < 3; ++j) {
      dc.k_first[j] = g.flip ? g.k[j] - 1 : 0;
      dc.k_step[j] = g.flip ? -1 : 1;
    }
    return run_conv_gemm(cfg->tiles, dc, ctx, progress_of(ctx, g.y_elems()));
  }
};


}  // namespace

const Algorithm& im2col_gemm_algorithm() {
  static const Im2colGemm a;
  return a;
}

}  // namespace convnd
