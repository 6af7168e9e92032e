// The interface of the CUTLASS 4 Hopper implicit-GEMM conv kernels (TMA + wgmma, warp-
// specialised) that src/cuda/cutlass_sm90.cpp plans and runs. It includes no CUTLASS header:
// only the .cu files of this folder do, compiled for sm_90a (wgmma exists on sm_90a only).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace convnd::cuda::sm90 {

enum class Op : int { fprop = 0, dgrad = 1, wgrad = 2 };
// The tensors' element type and the tensor cores' math: f16 and bf16 tensors multiply in their
// own type; tf32 is float32 tensors multiplied as TF32 (10-bit mantissa products, float sums),
// which the caller must have allowed (ExecOptions::allow_tf32). All accumulate in float.
enum class Elem : int { f16 = 0, bf16 = 1, tf32 = 2 };

/// One conv in CUTLASS's terms, always the forward conv's shapes (as Geometry): act [N, D, H, W,
/// C], flt [K, T, R, S, C], out [N, Z, P, Q, K], channels last and dense. rank 2 ignores index 0.
/// fprop writes out from act and flt; dgrad writes act from out and flt (stride 1 only: CUTLASS
/// does not check a strided dgrad and computes it wrong); wgrad writes flt as float (a partial
/// sum over the samples given) from out and act.
struct Conv {
  Op op = Op::fprop;
  Elem elem = Elem::bf16;
  int rank = 2;        // spatial axes: 2 or 3
  int tile = 128;  // 64 or 128: the tile over fprop's and wgrad's output channels, dgrad's input channels
  // wgrad with a 64 tile: CTAs per cluster along N ((C, taps) tiles), which share one TMA load
  // of dy's tile (multicast): 1 or 2.
  int cluster_n = 1;
  int n = 0, c = 0, k = 0;
  int in[3] = {1, 1, 1}, flt[3] = {1, 1, 1};
  int lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0}, stride[3] = {1, 1, 1}, dil[3] = {1, 1, 1};
  const void* act = nullptr;  // fprop, wgrad: read; dgrad: written
  const void* flt_ptr = nullptr;  // fprop, dgrad: read; wgrad: written (float)
  const void* out = nullptr;  // fprop: written; dgrad, wgrad: read
};

/// A compiled kernel: its checks (CUTLASS's can_implement, host only), workspace and launch.
struct Kernel {
  const char* name;
  bool (*can_implement)(const Conv&);
  size_t (*workspace)(const Conv&);
  cudaError_t (*run)(const Conv&, void* workspace, cudaStream_t);
};

/// The kernel for (op, elem, rank, tile, cluster_n), or nullptr when none is compiled for it.
const Kernel* kernel_for(Op op, Elem elem, int rank, int tile, int cluster_n = 1);

/// dst[i] = sum over s < parts of src[s·count + i] (in that order, float), in dst's dtype.
cudaError_t launch_sum_partials(const float* src, int64_t parts, int64_t count, void* dst, Elem elem,
                                cudaStream_t stream);

}  // namespace convnd::cuda::sm90
