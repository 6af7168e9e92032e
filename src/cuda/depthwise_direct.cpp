// Depthwise convs on the GPU (the CUDA counterpart of src/cpu/depthwise_direct.cpp): one
// channel in and out per group, no input dilation. Memory-bound: kernels/depthwise.cu reads
// channel vectors and reuses each loaded input across a thread's outputs. 3x3 windows of
// stride 1 (the MobileNet / EfficientNet layer) get window kernels: with 16-byte channel
// vectors, the shared-memory row ring (window variant 3: a block streams whole input rows of
// a channel chunk into shared memory with cp.async, each read from memory about once; 0.477
// ms against 0.643 for variant 0 and cuDNN's 0.675 on the suite's 56x56 c384 bf16 layer, H100,
// bench/results/device-runs); otherwise variant 0, whose threads walk 8 (4 for fewer than 16
// output rows) output rows. The weights are first transposed to [taps, C] in the workspace
// (flip applied), so that a thread's channels of one tap are one vector load.
#include <climits>
#include <cstdint>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

constexpr int64_t kMaxExtent = int64_t(1) << 30;

bool aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % uint64_t(bytes) == 0;
}

// Output rows per thread of the 3x3 window kernel (kernels/depthwise.cu), 0 where it does not
// apply: one tap on axis 0, 3x3 taps of stride 1 and dilation 1 on axes 1 and 2, and one
// sample's threads and blocks below 2^31.
int64_t window_rows(const Geometry& g) {
  if (g.k[0] != 1 || g.k[1] != 3 || g.k[2] != 3 || g.stride[1] != 1 || g.stride[2] != 1 || g.kdil[1] != 1 ||
      g.kdil[2] != 1)
    return 0;
  const int64_t rows = g.out[1] >= 16 ? 8 : 4;
  const int64_t threads = g.c * g.out[2];  // at most, with one channel per thread
  const int64_t blocks = (threads + 255) / 256 * ((g.out[1] + rows - 1) / rows) * g.out[0];
  return threads < INT32_MAX && blocks < INT32_MAX ? rows : 0;
}

// Channels per thread when C allows a vector: the window kernel's (8 bytes for f16 / bf16 in
// variants 0 and 2, 16 otherwise) or the general kernel's (16 bytes).
int64_t vector_width(DType t, int64_t rows, int variant = 0) {
  return rows > 0 ? cuda::depthwise_window_vector(int(dtype_size(t)), variant) : 16 / dtype_size(t);
}

// The ring (variant 3) needs 16-byte channel vectors; without them it would run one channel a
// thread, slower than variant 0's vectors, so variant 0 takes those problems.
constexpr int kRingVariant = 3;
int window_variant_for(DType t, int64_t c, int64_t rows) {
  return rows > 0 && c % vector_width(t, rows, kRingVariant) == 0 ? kRingVariant : 0;
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
    const int64_t rows = window_rows(g);
    const int variant = window_variant_for(g.dtype, g.c, rows);
    const int64_t vec = vector_width(g.dtype, rows, variant);
    plan->workspace_bytes = ws;
    plan->index_bits = 64;
    plan->tiles = {{"rows_per_thread", rows},
                   {"channels_per_thread", g.c % vec == 0 ? vec : 1},
                   {"outputs_per_thread", rows > 0 ? 1 : cuda::kDepthwiseOutputsPerThread},
                   // The window kernel (kernels/depthwise.cu: 0..2 WindowShape, 3 and 4 the
                   // ring); the others are there for timing, all giving the same bits.
                   {"window_variant", variant},
                   {"input_window", rows == 0 && g.k[2] == 3 && g.stride[2] == 1 && g.kdil[2] == 1 &&
                                        dtype_size(g.dtype) < 8}};
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
    // rows_per_thread 0 is the general kernel (a tile override may ask for it on a window problem,
    // or for 16 rows, or another window_variant).
    int rows = int(ctx.plan.tile("rows_per_thread", 0));
    if (rows != 0 && ((rows != 4 && rows != 8 && rows != 16) || !cuda::depthwise_window_fits(p)))
      rows = int(window_rows(g));
    int variant = int(ctx.plan.tile("window_variant", 0));
    if (variant < 0 || variant >= cuda::kDepthwiseWindowVariants) variant = 0;
    // Channel vectors when the plan wants them and the channel count and every pointer allow them.
    auto vectors = [&](int v) {
      const int64_t vec = vector_width(g.dtype, rows, v), bytes = vec * dtype_size(g.dtype);
      return ctx.plan.tile("channels_per_thread", 1) > 1 && g.c % vec == 0 && aligned(p.x, bytes) &&
             aligned(p.wt, bytes) && aligned(p.y, bytes);
    };
    // The ring without its 16-byte vectors (pointers not 16-byte aligned) gives way to variant 0.
    if (variant == kRingVariant && !vectors(variant)) variant = 0;
    const int64_t vec = vector_width(g.dtype, rows, variant);
    const bool vector = vectors(variant);
    CONVND_CUDA_CHECK(cuda::launch_depthwise(p, vector ? int(vec) : 1, rows, variant, 0));
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
