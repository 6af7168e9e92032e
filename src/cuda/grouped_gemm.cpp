// Grouped f16 / bf16 convs with 8, 16 or 32 output channels per group (ResNeXt's 3x3 layers,
// 32 groups of 8 to 32 channels) on the tensor cores, several groups per block
// (kernels/grouped_mma.cu). implicit_gemm__cuda runs them one group per 64-column block, most
// of its multiply-adds on zero columns: 0.36x cuDNN on 3x3 c256 g=32 (an H100, 2026-12-07).
// Also the input gradients of such convs (data_grad__cuda plans their dual, a grouped conv
// with O/g and C/g swapped, through this list).
#include "cuda/algorithms.h"

namespace convnd {

namespace {

struct GroupedGemmConfig final : PlanConfig {
  // The implicit GEMM configuration this kernel shares its runner with, and which runs the
  // problem where the tensors turn out not to be 16-byte aligned (the same bits: both walk K
  // in the same 16-wide MMA steps).
  std::shared_ptr<const cuda::GemmConvConfig> gemm;
  int64_t groups_per_block = 1;
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"block_m", 64}, {"block_n", 64}, {"block_k", 32}, {"groups_per_block", groups_per_block}};
  }
};

class GroupedGemmCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t = cuda::cuda_traits("grouped_gemm__cuda", DTypeSet{DType::f16, DType::bf16}, "none");
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest&, PlanChoice* out, int64_t*) const override {
    if (g.idil != Dims{1, 1, 1}) return "input dilation needs the polyphase algorithms";
    if (g.groups < 2) return "one group (implicit_gemm__cuda fills its tiles)";
    const int64_t og = g.og();
    if (og != 8 && og != 16 && og != 32) return "O/g is not 8, 16 or 32";
    if (g.cg() % 8 != 0) return "C/g is not a multiple of 8 (16-byte loads)";
    const cuda::DenseConvPiece pc = cuda::dense_conv_pieces(g).front();
    std::string why = cuda::gemm_conv_unsupported(g, pc.sub, pc.map);
    if (!why.empty()) return why;
    auto gemm = cuda::gemm_conv_config(g, pc.sub);
    gemm->block_n = 64;  // the unaligned fallback's tile: the only one without 16-byte loads
    auto cfg = std::make_shared<GroupedGemmConfig>();
    cfg->groups_per_block = 64 / og;
    cfg->gemm = std::move(gemm);
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const GroupedGemmConfig* cfg = config_of<GroupedGemmConfig>(ctx.plan);
    if (!cfg || !cfg->gemm) return wrong_config(ctx.plan);
    const cuda::DenseConvPiece pc = cuda::dense_conv_pieces(ctx.g).front();
    const bool aligned = cuda::aligned16(ctx.x.data) && cuda::aligned16(ctx.w.data) && cuda::aligned16(ctx.y.data);
    int64_t done = 0;
    return cuda::run_gemm_conv(ctx, pc.sub, pc.map, *cfg->gemm, &done, ctx.g.y_elems(),
                               aligned ? cuda::launch_grouped_mma : cuda::launch_gemm_conv);
  }
};

}  // namespace

const Algorithm& grouped_gemm_cuda_algorithm() {
  static const GroupedGemmCuda a;
  return a;
}

}  // namespace convnd
