// Few-channel transposed and input-dilated convs along one axis on the GPU (the CUDA
// counterpart of src/cpu/transposed_scatter.cpp), memory-bound: every output position of a
// stride phase is a short dot product over that phase's taps (kernels/scatter_conv.cu), so the
// run streams y once at near copy speed and never touches an inserted zero.
#include <algorithm>
#include <vector>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"
#include "core/phases.h"

namespace convnd {

namespace {

constexpr int64_t kMaxChannelProduct = 16;  // (C/g)·(O/g) beyond which a GEMM is better
constexpr int64_t kMaxPhases = int64_t(1) << 20;

class TransposedScatterCuda final : public Algorithm {
 public:
  std::string_view name() const override { return "transposed_scatter__cuda"; }
  Backend backend() const override { return Backend::cuda; }
  std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan, int64_t* min_ws) const override {
    for (int j = 0; j < 2; ++j)
      if (g.in[j] != 1 || g.k[j] != 1 || g.out[j] != 1 || g.lo[j] != 0 || g.idil[j] != 1 || g.stride[j] != 1)
        return "needs a problem along one axis (1-D, or unit leading axes)";
    if (g.idil[2] == 1) return "no input dilation: a dense conv is better";
    if (g.cg() * g.og() > kMaxChannelProduct)
      return "more than " + std::to_string(kMaxChannelProduct) + " channel pairs per group: a GEMM is better";
    // The phase table has one entry per phase: bound it before building it.
    if (phase_counts(g)[2] > kMaxPhases) return "more than 2^20 stride phases";
    const std::vector<PhaseAxis> phases = axis_phases(g, 2);
    int64_t taps_max = 0;
    for (const PhaseAxis& a : phases) taps_max = std::max(taps_max, a.count > 0 ? a.taps : 0);
    if (taps_max * g.cg() > cuda::kScatterMaxTapChannels)
      return "more than " + std::to_string(cuda::kScatterMaxTapChannels) + " taps x channels in a phase";
    const int64_t pp = int64_t(phases.size());
    if (pp > (INT32_MAX - 1024) / g.o) return "more than 2^31 (phase, channel) columns";
    const int64_t ws = pp * int64_t(sizeof(cuda::ScatterPhase));
    if (ws > req.budget) {
      *min_ws = ws;
      return "needs " + std::to_string(ws) + " bytes of workspace for its phase table; the budget is " +
             std::to_string(req.budget);
    }
    plan->workspace_bytes = ws;
    plan->index_bits = 64;
    plan->tiles = {{"phases", pp}, {"taps_max", taps_max}, {"columns", pp * g.o}};
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const Geometry& g = ctx.g;
    const std::vector<PhaseAxis> axis = axis_phases(g, 2);
    std::vector<cuda::ScatterPhase> table(axis.size());
    int taps_max = 0;
    for (size_t i = 0; i < axis.size(); ++i) {
      const PhaseAxis& a = axis[i];
      const int64_t taps = a.count > 0 ? a.taps : 0;
      table[i] = {a.lo, a.k_first, a.k_step, taps};
      taps_max = std::max(taps_max, int(taps));
    }
    CONVND_CUDA_CHECK(
        cudaMemcpy(ctx.workspace, table.data(), table.size() * sizeof(table[0]), cudaMemcpyHostToDevice));
    cuda::ScatterParams p{};
    p.x = ctx.x.data;
    p.w = ctx.w.data;
    p.y = ctx.y.data;
    p.phases = static_cast<const cuda::ScatterPhase*>(ctx.workspace);
    p.n = g.n;
    p.c = g.c;
    p.cg = g.cg();
    p.og = g.og();
    p.o = g.o;
    p.in = g.in[2];
    p.k = g.k[2];
    p.out = g.out[2];
    p.pp = int64_t(axis.size());
    p.stride = axis[0].stride;
    p.dil = axis[0].dil;
    p.rows = (g.out[2] + p.pp - 1) / p.pp;
    p.taps_max = taps_max;
    p.elem = cuda::elem_of(g.dtype);
    const int sms = cuda::device_info(cuda::current_device()).sm_count;
    CONVND_CUDA_CHECK(cuda::launch_scatter_conv(p, sms, 0));
    if (!cuda::report_done(ctx, 1.0))
      return Status(ErrorKind::interrupted, "[transposed_scatter__cuda] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& transposed_scatter_cuda_algorithm() {
  static const TransposedScatterCuda a;
  return a;
}

}  // namespace convnd
