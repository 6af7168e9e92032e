// The weight gradient's device code (kernels/weight_grad.cu): a blocked, deterministic
// reduction. Per group gi it is the GEMM
//   dw[gi·O/g + o, j] = sum over rows r of dy[r, gi·O/g + o] · X[r, j]
// with rows r = (n, p) (N·P0·P1·P2 of them), columns j = (k0, k1, k2, c) ordered like
// w [O, K0, K1, K2, C/g], and X the implicit im2col of x (padding and the zeros of input
// dilation read as 0; with flip, dw's tap k reads input tap K−1−k). M = O/g, N = K·C/g,
// K = N·P (CUTLASS's wgrad mapping).
//
// The rows are cut into blocks of block_rows (a function of the shape only). A partials launch
// computes, for blocks [block0, block0 + count), each block's sum of every dw element into
// partial[block − block0] (float32, float64 for f64), each sum in row order. A reduce launch
// then adds partial[0], partial[1], ... in that order to a float64 running sum (Neumaier-
// compensated for f64) kept in `acc` between launches, and the last one rounds it into dw
// once. The summation order of every element is therefore block 0, 1, 2, ... whatever the
// number of blocks per launch: the bits do not depend on the workspace.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "params.h"

namespace convnd::cuda {

/// The partials kernels. tiled: a 64 (O/g) x 64 (K·C/g) tile of one group per block of
/// threads, on FMA units (any group shape). mma: the same tile on the tensor cores (f16 and
/// bf16, mma.sync m16n8k16 with f32 accumulation; O/g and K·C/g of 16 or more). depthwise: one
/// input and one output channel per group; a thread owns `vec` channels of one tap.
/// grouped_mma: the mma tile over 64 / (O/g) groups at once (O/g of 8, 16 or 32, C/g a multiple
/// of 8), each group's 64 columns.
enum class WeightGradKernel : int { tiled = 0, depthwise = 1, mma = 2, grouped_mma = 3 };

/// Rows of a chunk the tiled and mma kernels stage in shared memory at a time (block_rows is a
/// multiple of it).
constexpr int kWeightGradChunkRows = 16;
constexpr int kWeightGradMmaChunkRows = 32;
/// The tile of dw one block of threads owns (tiled and mma kernels).
constexpr int kWeightGradTileO = 64, kWeightGradTileJ = 64;
/// Threads of a block (the tiled, depthwise and reduce kernels; the mma kernel runs 128).
constexpr int kWeightGradThreads = 256;

/// Dense channels-last tensors: x [N, I0, I1, I2, C], dy [N, P0, P1, P2, O],
/// dw [O, K0, K1, K2, C/g]. Spatial extents, taps, strides, dilations and paddings are below
/// 2^30, so that positions p·stride − lo + k·kdil fit in int32 (the host checks); rows, columns
/// and element offsets are 64-bit.
struct WeightGradParams {
  const void* x;
  const void* dy;
  void* dw;
  void* partial;  // [count][w_elems]: float, or double for f64
  void* acc;      // [w_elems] double (f64: [2][w_elems], sum and compensation); unused with one launch
  int64_t n, c, o, groups, cg, og;
  int32_t in[3], k[3], out[3], stride[3], lo[3], kdil[3], idil[3];
  FastDivmod div_idil[3];  // by idil
  int32_t flip;
  int64_t rows;        // N·P0·P1·P2
  int64_t block_rows;  // rows per block (the last block may be shorter)
  int64_t columns;     // K0·K1·K2·C/g
  int64_t w_elems;     // O·columns
  Elem elem;
};

/// Block partials for blocks [block0, block0 + count) (count <= 65535) with `kernel`. `vec`:
/// depthwise, channels per thread (16 / element size, or 1; C a multiple of it); mma, elements
/// per load (8, or 1; C/g and O/g multiples of 8 either way); with a vector, x and dy must be
/// aligned to its bytes; every vector gives the same bits. Ignored by the tiled kernel.
/// cudaErrorInvalidValue for a choice the kernels do not run (mma for f32 / f64 or channels
/// that are not multiples of 8, a block_rows not a multiple of the kernel's chunk).
cudaError_t launch_weight_grad_partials(const WeightGradParams& p, WeightGradKernel kernel, int vec,
                                        int64_t block0, int64_t count, cudaStream_t stream);

/// Adds partial[0 .. count) in order to the running sums (starting from zero when `first`),
/// and rounds them into dw when `last` (else stores them in acc). count may be 0.
cudaError_t launch_weight_grad_reduce(const WeightGradParams& p, int64_t count, bool first, bool last,
                                      cudaStream_t stream);

}  // namespace convnd::cuda
