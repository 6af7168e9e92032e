// pointwise_gemm: 1x1 convs (stride 1, no padding) as one GEMM per group whose A is x itself
// ([N·H·W, C] with row stride C): no copy of the input.
#include <algorithm>

#include "cpu/conv_gemm.h"

namespace convnd {

namespace {

// --- pointwise: 1x1 kernel, stride 1, no padding: A is x itself ----------------------------
class PointwiseGemm final : public Algorithm {
 public:
  std::string_view name() const override { return "pointwise_gemm"; }
  Backend backend() const override { return Backend::cpu; }
  std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan, int64_t* min_ws) const override {
    if (!all_ones(g.k)) return "needs a 1x1 kernel";
    if (!all_ones(g.stride) || !all_ones(g.idil) || !all_zeros(g.lo) || !all_zeros(g.hi))
      return "needs stride 1, no padding and no input dilation";
    ConvGemmTiles t;
    std::string why = plan_conv_gemm(g, true, req.budget, req.threads, &t, min_ws);
    if (!why.empty()) return why;
    record_tiles(t, plan);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    DenseConv dc;
    dc.sub = ctx.g;
    dc.w_k = ctx.g.k;
    dc.y_out = ctx.g.out;
    dc.pointwise_a = true;
    ConvGemmTiles t = tiles_from_plan(ctx.plan, ctx.g, true);
    if (t.workspace < 0) return Status(ErrorKind::backend, "[pointwise_gemm] plan no longer fits its workspace");
    return run_conv_gemm(t, dc, ctx.x.data, ctx.w.data, ctx.y.data, ctx.workspace, ctx.pool,
                         progress_of(ctx, ctx.g.y_elems()));
  }
};


}  // namespace

const Algorithm& pointwise_gemm_algorithm() {
  static const PointwiseGemm a;
  return a;
}

}  // namespace convnd
