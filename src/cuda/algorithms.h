// What the CUDA algorithms share: the Geometry → kernel-struct conversions, and the
// algorithm objects the list in backend.cpp is made of (one file each).
#pragma once
#include <convnd/problem.h>

#include <cstdint>
#include <string>

#include "cuda/gemm_conv_params.h"
#include "cuda/kernels/kernels.h"
#include "cuda/runtime.h"
#include "engine/algorithm.h"

namespace convnd {

const Algorithm& pointwise_gemm_cuda_algorithm();     // cuBLAS, 1x1 stride 1 no padding
const Algorithm& depthwise_direct_cuda_algorithm();   // one channel per group
const Algorithm& transposed_gather_cuda_algorithm();  // few-channel polyphase along one axis
const Algorithm& cutlass_sm90_cuda_algorithm();       // CUTLASS Hopper kernels: dense f16/bf16 convs
const Algorithm& grouped_gemm_cuda_algorithm();       // f16/bf16 groups of 8 to 32 output channels
const Algorithm& implicit_gemm_cuda_algorithm();      // any conv without input dilation
const Algorithm& polyphase_gemm_cuda_algorithm();     // input-dilated / transposed, many channels
const Algorithm& direct_cuda_algorithm();             // everything (the fallback)
const Algorithm& data_grad_cuda_algorithm();          // bwd_d as the dual forward conv
const Algorithm& weight_grad_dual_cuda_algorithm();   // bwd_w of a transposed conv via its dual
const Algorithm& weight_grad_cuda_algorithm();        // bwd_w, blocked deterministic reduction

namespace cuda {

/// The configuration of the implicit GEMM kernels (implicit_gemm__cuda, and each stride phase
/// of polyphase_gemm__cuda), chosen from the shapes. The 16-byte loads and stores are also
/// decided at run time from the tensors' addresses (unknown when planning): where x or w is not
/// 16-byte aligned the loads are element-wise (and the tensor-core kernels then run their
/// 64-wide tile), where y is not the stores are.
struct GemmConvConfig final : PlanConfig {
  int64_t block_m = 128, block_n = 128, block_k = 32;  // the block tile (elements)
  bool tensor_cores = false;                           // mma.sync (f16, bf16) or FMA (f32, f64)
  bool vector_loads = false;                           // C/g allows 16-byte loads of x and w
  bool vector_stores = false;                          // O and O/g allow 16-byte stores of y
  int64_t phases = 1;                                  // stride phases (1: a dense conv)
  int64_t phases_with_outputs = 1;                     // phases launched
  std::vector<std::pair<std::string, int64_t>> parameters() const override {
    return {{"block_m", block_m},
            {"block_n", block_n},
            {"block_k", block_k},
            {"tensor_cores", tensor_cores},
            {"vector_loads", vector_loads},
            {"vector_stores", vector_stores},
            {"phases", phases},
            {"phases_with_outputs", phases_with_outputs}};
  }
  // block_n: the tensor-core kernels with 16-byte loads run 64, 128 or 256 (the planner picks
  // 64 or 128); without them, and in the FMA kernels, the tile is fixed.
  std::shared_ptr<const PlanConfig> with_parameter(std::string_view name, int64_t value) const override {
    if (name != "block_n" || !tensor_cores || !vector_loads || (value != 64 && value != 128 && value != 256))
      return nullptr;
    auto c = std::make_shared<GemmConvConfig>(*this);
    c->block_n = value;
    return c;
  }
};

/// The implicit GEMM configuration of problem g (one phase when `phases` > 1), the tile width
/// chosen for the dense problem `widest` (g itself, or its phase with the most outputs).
std::shared_ptr<GemmConvConfig> gemm_conv_config(const Geometry& g, const Geometry& widest);

/// The tensor-core kernels' tile width over output channels (64 or 128) for a dense problem,
/// by rule: 128 reads shared memory less per multiply-add; 64 when O/g <= 64, or when its
/// blocks fill the device's waves clearly better.
int gemm_block_n(const Geometry& sub);

/// Runs one dense conv of ctx's problem through the implicit GEMM kernels as cfg says, a launch
/// per chunk of whole samples (and of at most 65535 groups). Adds the outputs written to *done
/// and reports progress as a fraction of `total`; Status interrupted when the caller asked to
/// stop.
/// `launch` replaces the implicit GEMM's launcher (launch_grouped_mma).
Status run_gemm_conv(const RunContext& ctx, const Geometry& sub, const DenseConvMap& map,
                     const GemmConvConfig& cfg, int64_t* done, int64_t total,
                     GemmConvLaunch launch = launch_gemm_conv);

static_assert(int(Elem::f32) == int(DType::f32) && int(Elem::f16) == int(DType::f16) &&
              int(Elem::bf16) == int(DType::bf16) && int(Elem::f64) == int(DType::f64));

/// The CUDA algorithms' traits: what they share (backend, ISA), the rest given.
inline AlgorithmTraits cuda_traits(std::string_view name, DTypeSet dtypes, std::string_view workspace,
                                   bool fallback = false) {
  return AlgorithmTraits{name, Backend::cuda, {Direction::fwd}, dtypes, {Isa::sm_90}, workspace, fallback};
}

/// Whether a tensor's address allows 16-byte vector accesses (and TMA), known only at run time.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// The stream a run enqueues its kernels on (the caller's, or the legacy default stream).
inline cudaStream_t stream_of(const RunContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

/// Reports progress once the work enqueued so far has finished (a synchronize, made only when
/// the caller asked for progress); false when the caller asked to stop.
inline bool report_done(const RunContext& ctx, double fraction) {
  if (!ctx.progress || !*ctx.progress) return true;
  CONVND_CUDA_CHECK(cudaStreamSynchronize(stream_of(ctx)));
  return ctx.report(fraction);
}

inline Elem elem_of(DType t) {
  return static_cast<Elem>(int(t));
}

inline ConvShape conv_shape(const Geometry& g) {
  ConvShape s{};
  s.n = g.n;
  s.c = g.c;
  s.o = g.o;
  s.groups = g.groups;
  s.cg = g.cg();
  s.og = g.og();
  for (int j = 0; j < 3; ++j) {
    s.in[j] = g.in[j];
    s.k[j] = g.k[j];
    s.out[j] = g.out[j];
    s.stride[j] = g.stride[j];
    s.lo[j] = g.lo[j];
    s.kdil[j] = g.kdil[j];
    s.idil[j] = g.idil[j];
  }
  s.flip = g.flip ? 1 : 0;
  s.elem = elem_of(g.dtype);
  return s;
}

}  // namespace cuda
}  // namespace convnd
