// What the implicit GEMM kernels share (implicit_gemm_mma.cu, implicit_gemm_fma.cu): the
// per-row table of a block tile, the walk over K (tap by tap, channel chunk by chunk) and the
// element-wise loader for channel counts that 16-byte loads cannot take.
//
// Mapping (per group q, see kernels.h GemmConvParams):
//   A[m, k] = x[n, b0 + t0·dil0, b1 + t1·dil1, b2 + t2·dil2, q·cg + c]   (0 outside x)
//   B[k, j] = w[q·og + j, k_first + t·k_step (per axis), c]
//   y[n, first + step·a (per axis), q·og + j] = sum_k A[m, k]·B[k, j]
// with m = ((n·M0 + a0)·M1 + a1)·M2 + a2, b = a·stride − lo, k = ((t0·T1 + t1)·T2 + t2)·cg + c.
#pragma once
#include "elem.cuh"
#include "gemm_conv_index.h"

namespace convnd::cuda {

/// Fills rows[r] with row m0 + r of group q (one thread per row).
__device__ __forceinline__ void gemm_row_table(const GemmConvParams& p, int64_t m0, int64_t q, int r,
                                               GemmRow* rows) {
  rows[r] = gemm_row(p, m0 + r, q);
}

cudaError_t launch_gemm_conv_mma(const GemmConvParams& p, cudaStream_t stream);
cudaError_t launch_gemm_conv_fma(const GemmConvParams& p, cudaStream_t stream);

}  // namespace convnd::cuda
