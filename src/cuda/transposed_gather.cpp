// Few-channel transposed and input-dilated convs along one axis on the GPU (the CUDA
// counterpart of src/cpu/transposed_scatter.cpp, which scatters each input into a tile of
// the output; here each output gathers), memory-bound: every output position of a
// stride phase is a short dot product over that phase's taps (kernels/transposed_gather.cu), so the
// run streams y once at near copy speed and never touches an inserted zero.
#include <algorithm>
#include <vector>

#include "core/phases.h"
#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

constexpr int64_t kMaxChannelProduct = 16;  // (C/g)·(O/g) beyond which a GEMM is better
constexpr int64_t kMaxPhases = int64_t(1) << 20;

// The phase table's shape (the table itself is built into the workspace at run time) and the
// kernel's register tile.
struct TransposedGatherConfig final : PlanConfig {
  int64_t phases = 0;              // stride phases of the one axis
  int64_t taps_max = 0;            // most taps of a phase
  int64_t columns = 0;             // (phase, output channel) columns the kernel walks
  int64_t tap_channels = 0;        // weights a thread holds per column: 4 or 16 (>= taps_max·C/g)
  int64_t columns_per_thread = 0;  // consecutive columns a thread owns (one vector store)
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"phases", phases},
            {"taps_max", taps_max},
            {"columns", columns},
            {"tap_channels", tap_channels},
            {"columns_per_thread", columns_per_thread}};
  }
};

class TransposedGatherCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t =
        cuda::cuda_traits("transposed_gather__cuda", kAllDTypes, "a phase table of phases x 32 bytes");
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out,
                   int64_t* min_ws) const override {
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
    if (taps_max * g.cg() > cuda::kGatherMaxTapChannels)
      return "more than " + std::to_string(cuda::kGatherMaxTapChannels) + " taps x channels in a phase";
    const int64_t pp = int64_t(phases.size());
    if (pp > (INT32_MAX - 1024) / g.o) return "more than 2^31 (phase, channel) columns";
    const int64_t ws = pp * int64_t(sizeof(cuda::GatherPhase));
    if (ws > req.budget) {
      *min_ws = ws;
      return "needs " + std::to_string(ws) + " bytes of workspace for its phase table; the budget is " +
             std::to_string(req.budget);
    }
    auto cfg = std::make_shared<TransposedGatherConfig>();
    cfg->phases = pp;
    cfg->taps_max = taps_max;
    cfg->columns = pp * g.o;
    cfg->tap_channels = cuda::gather_tap_channels(taps_max * g.cg());
    cfg->columns_per_thread =
        cuda::gather_columns_per_thread(int(dtype_size(g.dtype)), int(cfg->tap_channels));
    out->workspace_bytes = ws;
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const TransposedGatherConfig* cfg = config_of<TransposedGatherConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    const std::vector<PhaseAxis> axis = axis_phases(g, 2);
    std::vector<cuda::GatherPhase> table(axis.size());
    for (size_t i = 0; i < axis.size(); ++i) {
      const PhaseAxis& a = axis[i];
      table[i] = {a.lo, a.k_first, a.k_step, a.count > 0 ? a.taps : 0};
    }
    // On the run's stream (the workspace may still be read by work enqueued there before);
    // from pageable memory the call returns once the table is staged, so it may go out of scope.
    CONVND_CUDA_CHECK(cudaMemcpyAsync(ctx.workspace, table.data(), table.size() * sizeof(table[0]),
                                      cudaMemcpyHostToDevice, cuda::stream_of(ctx)));
    cuda::GatherParams p{};
    p.x = ctx.x.data;
    p.w = ctx.w.data;
    p.y = ctx.y.data;
    p.phases = static_cast<const cuda::GatherPhase*>(ctx.workspace);
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
    p.taps_max = int(cfg->taps_max);
    p.tap_channels = int(cfg->tap_channels);
    p.elem = cuda::elem_of(g.dtype);
    const int sms = cuda::device_info(cuda::current_device()).sm_count;
    CONVND_CUDA_CHECK(cuda::launch_transposed_gather(p, sms, cuda::stream_of(ctx)));
    if (!cuda::report_done(ctx, 1.0))
      return Status(ErrorKind::interrupted, "[transposed_gather__cuda] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& transposed_gather_cuda_algorithm() {
  static const TransposedGatherCuda a;
  return a;
}

}  // namespace convnd
