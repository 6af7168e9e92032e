// Dense convs (no input dilation) as an implicit GEMM per group on the GPU (the CUDA
// counterpart of src/cpu im2col_gemm): kernels/implicit_gemm_mma.cu on the tensor cores for
// f16 / bf16, kernels/implicit_gemm_fma.cu on the FMA units for f32 (exact, no TF32) and f64.
// Nothing is unfolded: the kernels address x per tap, so no workspace is needed and the
// budget never changes the result. Also the runner that polyphase_gemm.cpp shares.
#include <algorithm>
#include <climits>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace cuda {

namespace {

constexpr int64_t kRowsPerLaunch = int64_t(1) << 22;  // progress granularity
constexpr int64_t kMaxGroupsPerLaunch = 65535;        // grid.z

int64_t ceil_div64(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Fraction of the launched waves' block slots that hold a block.
double wave_fill(int64_t blocks, int64_t slots) {
  const int64_t waves = ceil_div64(blocks, slots);
  return waves == 0 ? 1.0 : double(blocks) / double(waves * slots);
}

}  // namespace

int gemm_block_n(const Geometry& sub) {
  const int64_t og = sub.og();
  if (og <= 64) return 64;
  const int64_t sms = device_info(current_device()).sm_count;
  const int64_t m_tiles = ceil_div64(sub.n * sub.out_volume(), kGemmBlockM);
  // Resident blocks per multiprocessor: 2 of the 128-wide tile, 3 of the 64-wide one.
  const double fill128 = wave_fill(m_tiles * ceil_div64(og, 128) * sub.groups, 2 * sms);
  const double fill64 = wave_fill(m_tiles * ceil_div64(og, 64) * sub.groups, 3 * sms);
  return fill64 > 1.15 * fill128 ? 64 : 128;
}

std::shared_ptr<GemmConvConfig> gemm_conv_config(const Geometry& g, const Geometry& widest) {
  const bool mma = g.dtype == DType::f16 || g.dtype == DType::bf16;
  const int64_t load_vec = g.dtype == DType::f64 ? 0 : g.dtype == DType::f32 ? 4 : 8;  // channels
  const int64_t store_vec = 16 / dtype_size(g.dtype);
  auto cfg = std::make_shared<GemmConvConfig>();
  // FMA tiles: 128x128 of f32, 64x64 of f64 (8-deep K steps); tensor-core tiles 128 x block_n
  // (32-deep K steps).
  cfg->block_m = g.dtype == DType::f64 ? 64 : kGemmBlockM;
  cfg->block_k = mma ? 32 : 8;
  cfg->tensor_cores = mma;
  cfg->vector_loads = load_vec > 0 && g.cg() % load_vec == 0;
  cfg->vector_stores = g.o % store_vec == 0 && g.og() % store_vec == 0;
  // The tensor-core kernels' element-wise loaders exist for the 64-wide tile only.
  cfg->block_n = !mma ? cfg->block_m : cfg->vector_loads ? gemm_block_n(widest) : 64;
  return cfg;
}

Status run_gemm_conv(const RunContext& ctx, const Geometry& sub, const DenseConvMap& map,
                     const GemmConvConfig& cfg, int64_t* done, int64_t total, GemmConvLaunch launch) {
  const Geometry& g = ctx.g;
  const int64_t es = dtype_size(g.dtype);
  GemmConvParams p = gemm_conv_params(g, sub, map);
  p.block_n = int32_t(cfg.block_n);
  p.elem = elem_of(g.dtype);
  // The shapes allow 16-byte loads and stores (the plan); the addresses must too (known only
  // now): unaligned, the same kernels load or store element by element, same bits.
  p.vector_loads = cfg.vector_loads && aligned16(ctx.x.data) && aligned16(ctx.w.data);
  p.vector_stores = cfg.vector_stores && aligned16(ctx.y.data);

  const int64_t out_volume = sub.out_volume();
  if (out_volume == 0 || g.n == 0) return Status::Ok();
  const int64_t x_sample = g.in_volume() * g.c * es, y_sample = g.out_volume() * g.o * es;
  const int64_t samples = std::clamp<int64_t>(kRowsPerLaunch / out_volume, 1, INT32_MAX / out_volume);
  for (int64_t n0 = 0; n0 < g.n; n0 += samples) {
    const int64_t ns = std::min(samples, g.n - n0);
    p.n = ns;
    p.m = ns * out_volume;
    p.x = static_cast<const char*>(ctx.x.data) + n0 * x_sample;
    p.w = ctx.w.data;
    p.y = static_cast<char*>(ctx.y.data) + n0 * y_sample;
    for (int64_t q0 = 0; q0 < g.groups; q0 += kMaxGroupsPerLaunch) {
      p.group0 = q0;
      p.groups = int32_t(std::min(kMaxGroupsPerLaunch, g.groups - q0));
      CONVND_CUDA_CHECK(launch(p, cuda::stream_of(ctx)));
      *done += p.m * p.og * p.groups;
      if (!report_done(ctx, double(*done) / double(std::max<int64_t>(total, 1))))
        return Status(ErrorKind::interrupted, "[" + std::string(ctx.plan.algorithm) + "] cancelled");
    }
  }
  return Status::Ok();
}

}  // namespace cuda

namespace {

class ImplicitGemmCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t = cuda::cuda_traits("implicit_gemm__cuda", kAllDTypes, "none");
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest&, PlanChoice* out, int64_t*) const override {
    if (g.idil != Dims{1, 1, 1}) return "input dilation needs the polyphase algorithms";
    const cuda::DenseConvPiece pc = cuda::dense_conv_pieces(g).front();
    std::string why = cuda::gemm_conv_unsupported(g, pc.sub, pc.map);
    if (!why.empty()) return why;
    out->config = cuda::gemm_conv_config(g, pc.sub);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const cuda::GemmConvConfig* cfg = config_of<cuda::GemmConvConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const cuda::DenseConvPiece pc = cuda::dense_conv_pieces(ctx.g).front();
    int64_t done = 0;
    return cuda::run_gemm_conv(ctx, pc.sub, pc.map, *cfg, &done, ctx.g.y_elems());
  }
};

}  // namespace

const Algorithm& implicit_gemm_cuda_algorithm() {
  static const ImplicitGemmCuda a;
  return a;
}

}  // namespace convnd
