// Transposed and input-dilated convs with many channels on the GPU (the CUDA counterpart of
// src/cpu polyphase_gemm): by stride phases (src/core/phases.h) every group of output
// positions is a dense conv of the undilated input with a sub-kernel, run through the implicit
// GEMM kernels with its outputs written at first + step·m. No multiply-add touches an inserted
// zero and nothing is unfolded; a phase whose taps all miss the input is a GEMM with K = 0,
// which writes its zeros.
#include <algorithm>

#include "core/phases.h"
#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

constexpr int64_t kMaxPhases = 4096;  // a launch each

class PolyphaseGemmCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t = cuda::cuda_traits("polyphase_gemm__cuda", kAllDTypes, "none");
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest&, PlanChoice* out, int64_t*) const override {
    if (g.idil == Dims{1, 1, 1}) return "no input dilation (a dense conv needs no phases)";
    if (phase_count(g) > kMaxPhases) return "more than " + std::to_string(kMaxPhases) + " stride phases";
    // Every phase must suit the kernels; the one with the most outputs picks the tile width.
    const Geometry* widest = nullptr;
    const std::vector<cuda::DenseConvPiece> pieces = cuda::dense_conv_pieces(g);
    for (const cuda::DenseConvPiece& pc : pieces) {
      const std::string why = cuda::gemm_conv_unsupported(g, pc.sub, pc.map);
      if (!why.empty()) return "a stride phase: " + why;
      if (!widest || pc.sub.out_volume() > widest->out_volume()) widest = &pc.sub;
    }
    std::shared_ptr<cuda::GemmConvConfig> cfg = cuda::gemm_conv_config(g, widest ? *widest : g);
    cfg->phases = phase_count(g);
    cfg->phases_with_outputs = int64_t(pieces.size());
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const cuda::GemmConvConfig* cfg = config_of<cuda::GemmConvConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    int64_t done = 0;
    for (const cuda::DenseConvPiece& pc : cuda::dense_conv_pieces(ctx.g)) {
      const Status st = cuda::run_gemm_conv(ctx, pc.sub, pc.map, *cfg, &done, ctx.g.y_elems());
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& polyphase_gemm_cuda_algorithm() {
  static const PolyphaseGemmCuda a;
  return a;
}

}  // namespace convnd
