// Depthwise convs on the GPU (the CUDA counterpart of src/cpu/depthwise_direct.cpp): one
// channel in and out per group, no input dilation. Memory-bound: kernels/depthwise.cu reads
// 16-byte channel vectors and reuses each loaded input across a thread's outputs. The weights
// are first transposed to [taps, C] in the workspace (flip applied), so that a thread's
// channels of one tap are one vector load.
#include <climits>
#include <cstdint>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

constexpr int64_t kMaxExtent = int64_t(1) << 30;

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

class DepthwiseDirectCuda final : public Algorithm {
 public:
  std::string_view name() const override { return "depthwise_direct__cuda"; }
  Backend backend() const override { return Backend::cuda; }
  std::string plan(const Geometry& g, const PlanRequest& req, Plan* plan, int64_t* min_ws) const override {
    if (g.cg() != 1 || g.og() != 1) return "needs one input and one output channel per group";
    if (g.idil != Dims{1, 1, 1}) return "input dilation needs the polyphase algorithms";
    for (int j = 0; j < 3; ++j) {
      // Every position and tap offset of an axis stays inside int32 in the kernel.
      const int64_t span = (g.out[j] - 1) * g.stride[j] + (g.k[j] - 1) * g.kdil[j];
      if (g.in[j] >= kMaxExtent || g.out[j] >= kMaxExtent || span >= kMaxExtent || g.lo[j] >= kMaxExtent ||
          -g.lo[j] >= kMaxExtent)
        return "an extent, span or padding of 2^30 or more";
    }
    // One sample's threads must number fewer than 2^31 (the kernel's 32-bit decomposition).
    const int64_t per_sample =
        g.c * ((g.out[2] + cuda::kDepthwiseOutputsPerThread - 1) / cuda::kDepthwiseOutputsPerThread) *
        g.out[1] * g.out[0];
    if (per_sample >= INT32_MAX) return "2^31 or more threads for one sample";
    const int64_t ws = g.kernel_volume() * g.c * dtype_size(g.dtype);
    if (ws > req.budget) {
      *min_ws = ws;
      return "needs " + std::to_string(ws) +
             " bytes of workspace for the transposed weights; the budget is " + std::to_string(req.budget);
    }
    const int64_t vec = 16 / dtype_size(g.dtype);
    plan->workspace_bytes = ws;
    plan->index_bits = 64;
    plan->tiles = {
        {"channels_per_thread", g.c % vec == 0 ? vec : 1},
        {"outputs_per_thread", cuda::kDepthwiseOutputsPerThread},
        {"input_window", g.k[2] == 3 && g.stride[2] == 1 && g.kdil[2] == 1 && dtype_size(g.dtype) < 8}};
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const Geometry& g = ctx.g;
    CONVND_CUDA_CHECK(cuda::launch_depthwise_weights(ctx.w.data, ctx.workspace, g.c, g.k.data(), g.flip,
                                                     cuda::elem_of(g.dtype), 0));
    cuda::DepthwiseParams p{};
    p.x = ctx.x.data;
    p.wt = ctx.workspace;
    p.y = ctx.y.data;
    p.n = g.n;
    p.c = g.c;
    for (int j = 0; j < 3; ++j) {
      p.in[j] = int32_t(g.in[j]);
      p.k[j] = int32_t(g.k[j]);
      p.out[j] = int32_t(g.out[j]);
      p.stride[j] = int32_t(g.stride[j]);
      p.lo[j] = int32_t(g.lo[j]);
      p.dil[j] = int32_t(g.kdil[j]);
    }
    p.elem = cuda::elem_of(g.dtype);
    // 16-byte channel vectors when the channel count and every pointer allow them.
    const bool vector =
        ctx.plan.tile("channels_per_thread", 1) > 1 && aligned16(p.x) && aligned16(p.wt) && aligned16(p.y);
    CONVND_CUDA_CHECK(
        cuda::launch_depthwise(p, vector, cuda::device_info(cuda::current_device()).sm_count, 0));
    if (!cuda::report_done(ctx, 1.0))
      return Status(ErrorKind::interrupted, "[depthwise_direct__cuda] cancelled");
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& depthwise_direct_cuda_algorithm() {
  static const DepthwiseDirectCuda a;
  return a;
}

}  // namespace convnd
