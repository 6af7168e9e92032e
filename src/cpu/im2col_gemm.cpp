// im2col_gemm: any conv without input dilation as an implicit-im2col GEMM per group; A's panels
// are gathered from x while packing, so nothing is unfolded in memory.
#include <algorithm>

#include "cpu/conv_gemm.h"

namespace convnd {

namespace {

// --- implicit im2col GEMM: any dense conv (no input dilation) ------------------------------
class Im2colGemm final : public Algorithm {
 public:
  std::string_view name() const override { return "im2col_gemm"; }
  Backend backend() const override { return Backend::cpu; }
  std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan, int64_t* min_ws) const override {
    if (!all_ones(g.idil)) return "input dilation needs the polyphase algorithm";
    ConvGemmTiles t;
    std::string why = plan_conv_gemm(g, true, req.budget, req.threads, &t, min_ws);
    if (!why.empty()) return why;
    record_tiles(t, plan);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const Geometry& g = ctx.g;
    DenseConv dc;
    dc.sub = g;
    dc.sub.flip = false;
    dc.w_k = g.k;
    dc.y_out = g.out;
    for (int j = 0; j < 3; ++j) {
      dc.k_first[j] = g.flip ? g.k[j] - 1 : 0;
      dc.k_step[j] = g.flip ? -1 : 1;
    }
    ConvGemmTiles t = tiles_from_plan(ctx.plan, dc.sub, true);
    if (t.workspace < 0) return Status(ErrorKind::backend, "[im2col_gemm] plan no longer fits its workspace");
    return run_conv_gemm(t, dc, ctx.x.data, ctx.w.data, ctx.y.data, ctx.workspace, ctx.pool,
                         progress_of(ctx, g.y_elems()));
  }
};


}  // namespace

const Algorithm& im2col_gemm_algorithm() {
  static const Im2colGemm a;
  return a;
}

}  // namespace convnd
