// Pointwise convs (1x1 kernel, stride 1, no padding, no input dilation) through cuBLAS:
// per group q, y[:, q·og:(q+1)·og] = x[:, q·cg:(q+1)·cg] · w[q·og:(q+1)·og, :]ᵀ with
// M = N·P0·P1·P2 rows. cuBLAS takes int m, n, k and leading dimensions, so M is cut into
// tiles of fewer than 2^31 elements per matrix; tile bases are 64-bit pointer offsets.
// f32 computes in f32 (CUBLAS_COMPUTE_32F: no TF32 unless ExecOptions::allow_tf32), f16 and
// bf16 accumulate in f32, f64 in f64.
//
// The weight gradient of a pointwise conv is one GEMM per group too, over the pixels:
// dw[q·og:(q+1)·og, :] = dy[:, q·og:(q+1)·og]ᵀ · x[:, q·cg:(q+1)·cg], a long reduction (N·P
// values) into a small output. cuBLAS splits that reduction itself (cuDNN runs this layer on
// cuBLASLt's split-K GEMM too); CUTLASS's conv kernel has no split-K, and its per-launch sample
// chunks left half of an H100 idle on n=256 56x56 c=256 o=64 (0.37 ms against cuDNN's 0.22).
// In f16 and bf16 the reduction must fit one call (the partial sums of several calls would be
// rounded to 16 bits in between); f32 and f64 add the calls' products in dw (beta = 1).
#include <algorithm>
#include <climits>

#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

constexpr int64_t kMaxGroups = 16;  // beyond this, one GEMM call per group costs too much

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f16:
      return CUDA_R_16F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f64:
      return CUDA_R_64F;
  }
  return CUDA_R_32F;
}

// cuBLAS GEMMs of m_tile pixels at a time (each call's blocks under 2^31 elements).
struct PointwiseGemmCudaConfig final : PlanConfig {
  int64_t m_tile = 1;      // pixels per GEMM call
  int64_t gemm_calls = 0;  // calls in all (tiles × groups)
  bool tf32 = false;       // f32 through TF32 tensor cores (only when the caller allows it)
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"m_tile", m_tile}, {"gemm_calls", gemm_calls}, {"tf32", tf32}};
  }
};

class PointwiseGemmCuda final : public Algorithm {
 public:
  const AlgorithmTraits& traits() const override {
    static const AlgorithmTraits t = [] {
      AlgorithmTraits a = cuda::cuda_traits("pointwise_gemm__cuda", kAllDTypes, "none");
      a.directions = {Direction::fwd, Direction::bwd_w};
      return a;
    }();
    return t;
  }
  std::string plan(const Geometry& g, const PlanRequest& req, PlanChoice* out, int64_t*) const override {
    if (g.k != Dims{1, 1, 1}) return "needs a 1x1 kernel";
    if (g.stride != Dims{1, 1, 1} || g.idil != Dims{1, 1, 1} || g.lo != Dims{0, 0, 0} ||
        g.hi != Dims{0, 0, 0})
      return "needs stride 1, no padding and no input dilation";
    if (g.c > INT_MAX || g.o > INT_MAX) return "more than 2^31-1 channels (cuBLAS sizes are int)";
    if (g.groups > kMaxGroups) return "more than " + std::to_string(kMaxGroups) + " groups";
    if (std::string why; !cuda::cublas(&why)) return why;
    const int64_t M = g.n * g.out_volume();
    // Each call's x and y blocks hold fewer than 2^31 elements.
    const int64_t m_tile = std::min<int64_t>(M, INT_MAX / std::max(g.c, g.o));
    auto cfg = std::make_shared<PointwiseGemmCudaConfig>();
    cfg->m_tile = std::max<int64_t>(m_tile, 1);
    if (g.dir == Direction::bwd_w && cfg->m_tile < M && dtype_size(g.dtype) == 2)
      return "a 16-bit weight gradient whose " + std::to_string(M) +
             " pixels do not fit one cuBLAS call (its partial sums would round to 16 bits)";
    cfg->gemm_calls = ((M + cfg->m_tile - 1) / cfg->m_tile) * g.groups;
    cfg->tf32 = req.allow_tf32 && g.dtype == DType::f32;
    out->index_bits = 32;
    out->config = std::move(cfg);
    return {};
  }
  Status run(const RunContext& ctx) const override {
    const PointwiseGemmCudaConfig* cfg = config_of<PointwiseGemmCudaConfig>(ctx.plan);
    if (!cfg) return wrong_config(ctx.plan);
    const Geometry& g = ctx.g;
    const int64_t M = g.n * g.out_volume(), m_tile = cfg->m_tile;
    const int64_t es = dtype_size(g.dtype), cg = g.cg(), og = g.og();
    const bool tf32 = cfg->tf32;
    const cudaDataType_t t = cuda_type(g.dtype);
    const cublasComputeType_t compute = g.dtype == DType::f64 ? CUBLAS_COMPUTE_64F
                                        : tf32                ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                              : CUBLAS_COMPUTE_32F;
    const float one_f = 1.0f, zero_f = 0.0f;
    const double one_d = 1.0, zero_d = 0.0;
    const void* alpha = g.dtype == DType::f64 ? static_cast<const void*>(&one_d) : &one_f;
    const void* beta = g.dtype == DType::f64 ? static_cast<const void*>(&zero_d) : &zero_f;
    cublasHandle_t h = cuda::cublas_handle();
    const auto gemm_ex = cuda::cublas()->gemm_ex;  // loaded: cublas_handle() succeeded
    // The handle is shared: its stream is set, and the calls enqueued, under one lock.
    std::lock_guard<std::mutex> lock(cuda::cublas_mutex());
    CONVND_CUDA_CHECK(cuda::cublas()->set_stream(h, cuda::stream_of(ctx)));
    const char* x = static_cast<const char*>(ctx.x.data);
    const bool weight_grad = g.dir == Direction::bwd_w;  // then ctx.y is dy, read, and ctx.w is dw, written
    for (int64_t m0 = 0; m0 < M; m0 += m_tile) {
      const int mt = int(std::min(m_tile, M - m0));
      const char* xb = x + m0 * g.c * es;  // this tile's pixels
      for (int64_t q = 0; q < g.groups; ++q) {
        if (weight_grad) {
          // Column-major views: X-block (cg × mt, ld C) · dY-blockᵀ (dY-block og × mt, ld O)
          // gives dw's group as stored, cg × og (ld cg); later tiles add to it.
          const char* dy = static_cast<const char*>(ctx.y.data) + m0 * g.o * es;
          char* dw = static_cast<char*>(ctx.w.data);
          CONVND_CUDA_CHECK(gemm_ex(h, CUBLAS_OP_N, CUBLAS_OP_T, int(cg), int(og), mt, alpha, xb + q * cg * es, t,
                                    int(g.c), dy + q * og * es, t, int(g.o), m0 == 0 ? beta : alpha,
                                    dw + q * og * cg * es, t, int(cg), compute, CUBLAS_GEMM_DEFAULT));
        } else {
          // Column-major view: C (og × mt, ld O) = Wᵀ-as-stored (og × cg) · X-block (cg × mt, ld C).
          const char* w = static_cast<const char*>(ctx.w.data);
          char* y = static_cast<char*>(ctx.y.data) + m0 * g.o * es;
          CONVND_CUDA_CHECK(gemm_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, int(og), mt, int(cg), alpha, w + q * og * cg * es, t,
                                    int(cg), xb + q * cg * es, t, int(g.c), beta, y + q * og * es, t, int(g.o), compute,
                                    CUBLAS_GEMM_DEFAULT));
        }
      }
      if (!cuda::report_done(ctx, double(m0 + mt) / double(M)))
        return Status(ErrorKind::interrupted, "[pointwise_gemm__cuda] cancelled");
    }
    return Status::Ok();
  }
};

}  // namespace

const Algorithm& pointwise_gemm_cuda_algorithm() {
  static const PointwiseGemmCuda a;
  return a;
}

}  // namespace convnd
