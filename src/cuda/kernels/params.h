// The kernels' parameter structs, plain C++ without CUDA headers, so that the host code and
// the host tests of the kernels' index math (gemm_conv_index.h) can use them anywhere.
#pragma once
#include <cstdint>

#include "fast_divmod.h"

namespace convnd::cuda {

/// Element types, numbered like convnd::DType (checked by a static_assert on the host side).
enum class Elem : int { f32 = 0, f16 = 1, bf16 = 2, f64 = 3 };

/// The 3-D conv_general (see include/convnd/problem.h, Geometry), dense channels-last tensors:
/// x [N, I0, I1, I2, C], w [O, K0, K1, K2, C/g], y [N, P0, P1, P2, O].
struct ConvShape {
  int64_t n, c, o, groups, cg, og;
  int64_t in[3], k[3], out[3], stride[3], lo[3], kdil[3], idil[3];
  int flip;
  Elem elem;
};

/// The depthwise kernel (kernels.h launch_depthwise): x [N, I0, I1, I2, C], y [N, P0, P1, P2, C];
/// wt [K0·K1·K2, C] holds the weights transposed by launch_depthwise_weights (flip applied),
/// so that a thread reads its channels' taps with vector loads. The general kernel: a thread
/// owns `vec` consecutive channels of kDepthwiseOutputsPerThread consecutive output positions
/// along the last axis; the 3x3 window kernel: `vec` channels of one output column and `rows`
/// output rows (kernels/depthwise.cu). Extents are below 2^31 (the host checks); element
/// offsets are 64-bit.
struct DepthwiseParams {
  const void* x;
  const void* wt;
  void* y;
  int64_t n, c;
  int32_t in[3], k[3], out[3], stride[3], lo[3], dil[3];
  Elem elem;
};
/// Output positions per thread along the last axis (the general kernel).
constexpr int kDepthwiseOutputsPerThread = 4;
/// The depthwise kernels (kernels/depthwise.cu): any shape; the 3x3 window of stride 1 with
/// the input rows read from global memory; the same window with the rows staged in a
/// shared-memory ring. All sum each output's taps in the same order: the same bits.
enum class DepthwiseKernel : int { general = 0, window = 1, ring = 2 };
/// Channels per thread of the 3x3 window kernels when C allows a vector: 8-byte vectors for
/// f16 / bf16 in the window kernel (16-byte ones would need 72 registers of f32 weights),
/// 16-byte otherwise; the ring copies 16-byte vectors for every type.
constexpr int depthwise_window_vector(int elem_bytes, bool ring) {
  return elem_bytes == 2 && !ring ? 4 : 16 / elem_bytes;
}
/// Whether the general kernel can keep the V + 2 inputs that a thread's V outputs share in
/// registers: a last axis of 3 taps, stride 1 and dilation 1, and elements narrower than 8
/// bytes. The window exists for 16-byte channel vectors only (launch_depthwise checks).
constexpr bool depthwise_input_window_fits(int64_t k2, int64_t stride2, int64_t dil2, int elem_bytes) {
  return k2 == 3 && stride2 == 1 && dil2 == 1 && elem_bytes < 8;
}

// ---- implicit GEMM: a dense conv (no input dilation) per group ----------------------------
// Per group q: M = N·M0·M1·M2 output pixels of the dense problem, N = O/g output channels,
// K = T0·T1·T2·C/g taps × channels, ordered like the weight [O, K0, K1, K2, C/g] (CUTLASS
// convolution.h). A[m, k] is read straight from x (implicit im2col, padding as zeros), B[k, n]
// from w, C[m, n] written to y. The dense problem may be one stride phase of a transposed or
// input-dilated conv (src/core/phases.h): then tap j of axis a is weight index
// k_first[a] + j·k_step[a] of the full kernel, and output position m of axis a lands at y
// position first[a] + step[a]·m. A plain conv has k_first 0 (K−1 with flip), k_step 1 (−1),
// first 0, step 1.
//
// f16 and bf16 run on the tensor cores (mma.sync m16n8k16, f32 accumulation), f32 and f64 on
// FMA units in their own precision. Every output element's sum runs over K in order, in fixed
// chunks, whatever the tile sizes, so the result does not depend on the tiles.
//
// Spatial extents, taps, strides, dilations and padding are below 2^30 and K below 2^31 (the
// host checks); rows m and every element offset are 64-bit.
struct GemmConvParams {
  const void* x;
  const void* w;
  void* y;
  int64_t n;       // batch
  int64_t c, o;    // channels of x and y (their row lengths)
  int64_t cg, og;  // per group
  int64_t m;       // rows: n·out[0]·out[1]·out[2]
  int64_t k;       // taps[0]·taps[1]·taps[2]·cg
  int64_t group0;  // first group of this launch (groups run on grid.y)
  int32_t groups;  // groups in this launch
  int32_t in[3];   // input extents
  int32_t out[3];  // dense output extents (the phase's counts)
  int32_t stride[3], dil[3], lo[3];
  int32_t taps[3];  // the dense problem's kernel extents
  int32_t k_first[3], k_step[3];
  int32_t w_k[3];    // the full weight's kernel extents
  int32_t y_out[3];  // the full output's spatial extents
  int32_t first[3], step[3];
  FastDivmod div_out[3];           // by out[0], out[1], out[2]
  FastDivmod div_cg, div_taps[3];  // by cg and taps (the unaligned-channel loaders)
  int32_t block_n;     // 256, 128 or 64 (tensor-core tiles; FMA tiles are 128x128 for f32, 64x64 for f64)
  bool vector_loads;   // cg a multiple of 8 (f16/bf16) or 4 (f32), x and w 16-byte aligned
  bool vector_stores;  // o and og multiples of 16 bytes / element, y 16-byte aligned
  Elem elem;
};
/// Block tile of output rows (pixels) of the tensor-core and f32 implicit GEMM kernels.
constexpr int kGemmBlockM = 128;

}  // namespace convnd::cuda
