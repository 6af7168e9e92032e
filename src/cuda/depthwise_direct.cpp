// Depthwise convs on the GPU (the CUDA counterpart of src/cpu/depthwise_direct.cpp): one
// channel in and out per group, no input dilation. Memory-bound: kernels/depthwise.cu reads
// channel vectors and reuses each loaded input across a thread's outputs. 3x3 windows of
// stride 1 (the MobileNet / EfficientNet layer) get window kernels: with 16-byte channel
// vectors, the shared-memory row ring (a block streams whole input rows of a channel chunk
// into shared memory with cp.async, each read from memory about once; 0.477 ms against 0.643
// for the window kernel and cuDNN's 0.675 on the suite's 56x56 c384 bf16 layer, H100,
// bench/results/device-runs); otherwise the window kernel, whose threads walk 8 (4 for fewer
// than 16 output rows) output rows. The weights are first transposed to [taps, C] in the workspace
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

// The kernel, its rows per thread and its channel vector, chosen from the shapes. Whether the
// vector is used is also decided at run time from the tensors' addresses (16- or 8-byte
// alignment, unknown when planning): see run().
struct DepthwiseCudaConfig final : PlanConfig {
  cuda::DepthwiseKernel kernel = cuda::DepthwiseKernel::general;
  int64_t rows_per_thread = 0;      // window and ring: 4, 8 or 16; general: 0
  int64_t channels_per_thread = 1;  // the kernel's vector when C is a multiple of it, else 1
  int64_t outputs_per_thread = 1;   // general: positions along the last axis
  bool input_window = false;        // general: the inputs shared along a 3-tap last axis in registers
  // What the choices above depend on (not parameters: fixed by the problem).
  DType dtype = DType::f32;
  int64_t channels = 0;
  bool input_window_fits = false;  // cuda::depthwise_input_window_fits for the problem
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"kernel", int64_t(kernel)},
            {"rows_per_thread", rows_per_thread},
            {"channels_per_thread", channels_per_thread},
            {"outputs_per_thread", outputs_per_thread},
            {"input_window", input_window}};
  }
  // The window problems may run either window kernel at 4, 8 or 16 rows (timing them, and
  // checking their bits against each other); the general kernel takes every problem.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    auto c = std::make_shared<DepthwiseCudaConfig>(*this);
    const bool window_problem = rows_per_thread > 0;
    if (name == "kernel") {
      if (value == int64_t(cuda::DepthwiseKernel::general)) {
        c->kernel = cuda::DepthwiseKernel::general;
        c->rows_per_thread = 0;
        c->outputs_per_thread = cuda::kDepthwiseOutputsPerThread;
      } else if (window_problem && (value == int64_t(cuda::DepthwiseKernel::window) ||
                                    value == int64_t(cuda::DepthwiseKernel::ring))) {
        c->kernel = cuda::DepthwiseKernel(value);
      } else {
        return nullptr;
      }
    } else if (name == "rows_per_thread") {
      if (!window_problem || (value != 4 && value != 8 && value != 16)) return nullptr;
      c->rows_per_thread = value;
    } else {
      return nullptr;
    }
    c->choose_vectors();
    return c;
  }
  // channels_per_thread and input_window for the kernel chosen.
  void choose_vectors() {
    const int64_t vec = vector_width(dtype, kernel);
    channels_per_thread = channels % vec == 0 ? vec : 1;
    input_window = kernel == cuda::DepthwiseKernel::general && channels_per_thread > 1 && input_window_fits;
  }
  static int64_t vector_width(DType t, cuda::DepthwiseKernel k) {
    return k == cuda::DepthwiseKernel::general
               ? 16 / dtype_size(t)
               : cuda::depthwise_window_vector(int(dtype_size(t)), k == cuda::DepthwiseKernel::ring);
  }
};

class DepthwiseDirectCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t =
        cuda::cuda_traits("depthwise_direct__cuda", kAllDTypes, "the weights transposed to [taps, C]");
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out,
                   int64_t* min_ws) const override {
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
    auto cfg = std::make_shared<DepthwiseCudaConfig>();
    cfg->dtype = g.dtype;
    cfg->channels = g.c;
    cfg->input_window_fits =
        cuda::depthwise_input_window_fits(g.k[2], g.stride[2], g.kdil[2], int(dtype_size(g.dtype)));
    cfg->rows_per_thread = window_rows(g);
    if (cfg->rows_per_thread > 0) {
      // The ring needs 16-byte channel vectors; without them it would run one channel a thread,
      // slower than the window kernel's 8-byte vectors, so the window kernel takes those.
      const bool ring = g.c % DepthwiseCudaConfig::vector_width(g.dtype, cuda::DepthwiseKernel::ring) == 0;
      cfg->kernel = ring ? cuda::DepthwiseKernel::ring : cuda::DepthwiseKernel::window;
    } else {
      cfg->outputs_per_thread = cuda::kDepthwiseOutputsPerThread;
    }
    cfg->choose_vectors();
    out->workspace_bytes = ws;
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const DepthwiseCudaConfig* cfg = config_of<DepthwiseCudaConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    CONVND_CUDA_CHECK(cuda::launch_depthwise_weights(ctx.w.data, ctx.workspace, g.c, g.k.data(), g.flip,
                                                     cuda::elem_of(g.dtype), cuda::stream_of(ctx)));
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
    // Decided here, from the tensors' addresses (unknown when planning): a channel vector needs
    // x, the transposed weights and y aligned to its bytes. The ring copies 16-byte vectors
    // only; unaligned to them it gives way to the window kernel with that kernel's vector where
    // it aligns (8 bytes for f16 / bf16). Every form gives the same bits.
    const int64_t es = dtype_size(g.dtype);
    auto vector_aligned = [&](int64_t vec) {
      return vec > 1 && aligned(p.x, vec * es) && aligned(p.wt, vec * es) && aligned(p.y, vec * es);
    };
    cuda::DepthwiseKernel kernel = cfg->kernel;
    int64_t vec = cfg->channels_per_thread;
    if (vec > 1 && !vector_aligned(vec)) {
      if (kernel == cuda::DepthwiseKernel::ring) {
        kernel = cuda::DepthwiseKernel::window;
        vec = DepthwiseCudaConfig::vector_width(g.dtype, kernel);  // divides the ring's vector
      }
      if (!vector_aligned(vec)) vec = 1;
    }
    const bool input_window = cfg->input_window && vec > 1;  // the register window needs the vector
    CONVND_CUDA_CHECK(
        cuda::launch_depthwise(p, kernel, int(vec), int(cfg->rows_per_thread), input_window, cuda::stream_of(ctx)));
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
