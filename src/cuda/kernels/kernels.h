// The device code's interface: launch functions, one per kernel family, taking the plain
// parameter structs of params.h. Self-contained (CUDA's runtime header only), so that src/cuda/kernels/
// includes nothing from the rest of convnd; the host code (src/cuda/*.cpp) fills the structs from a Geometry
// and checks every returned cudaError_t with file and line.
//
// Every extent and offset is 64-bit. A kernel narrows to 32 bits only inside a tile whose
// size the host proved small (each struct says where).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "params.h"

namespace convnd::cuda {

// ---- direct: one thread per output element, any problem (the backend's fallback) ----------
cudaError_t launch_direct_conv(const ConvShape& s, const void* x, const void* w, void* y, int64_t y_begin,
                               int64_t y_end, cudaStream_t stream);

// ---- strided copies between a dense buffer and a strided view (up to 8 dimensions) --------
struct StridedLayout {
  int ndim;
  int64_t shape[8];
  int64_t strides[8];  // elements
};
/// dst (dense) = src (strided).
cudaError_t launch_copy_from_strided(const void* src, const StridedLayout& src_layout, void* dst,
                                     int elem_bytes, cudaStream_t stream);
/// dst (strided) = src (dense).
cudaError_t launch_copy_to_strided(const void* src, void* dst, const StridedLayout& dst_layout,
                                   int elem_bytes, cudaStream_t stream);

// ---- few-channel polyphase along one axis (transposed / input-dilated 1-D convs) ----------
/// One stride phase of the last axis (src/core/phases.h, PhaseAxis): output positions
/// p = phi + Pp·m read input i = m·stride + j·dil − lo for taps j < taps, each tap's weight
/// index being k_first + j·k_step.
struct GatherPhase {
  int64_t lo;
  int64_t k_first;
  int64_t k_step;
  int64_t taps;
};
/// y [N, P, O] viewed as rows m (P/Pp of them per sample) of Pp·O columns (phi, o): a thread
/// owns a few consecutive columns, keeps their weights in registers and streams rows.
/// Columns index in 32 bits (the host proves Pp·O < 2^31); row offsets are 64-bit.
struct GatherParams {
  const void* x;
  const void* w;
  void* y;
  const GatherPhase* phases;  // [Pp], device memory
  int64_t n, c, cg, og, o;
  int64_t in;        // input extent of the axis
  int64_t k;         // weight taps of the axis
  int64_t out;       // output extent P
  int64_t pp;        // phases Pp
  int64_t stride;    // st' (undilated input stride between rows)
  int64_t dil;       // kd' (input distance between taps)
  int64_t rows;      // per sample: ceil(P / Pp)
  int taps_max;      // largest phase tap count (taps_max·cg <= tap_channels)
  int tap_channels;  // the register tile of weights per column: 4 or kGatherMaxTapChannels
  Elem elem;
};
/// Largest taps·(C/g) per phase the register kernel takes.
constexpr int kGatherMaxTapChannels = 16;
/// The register tile of weights per column for a phase of taps·(C/g) = tap_channels_needed:
/// 4 where that fits (more resident blocks), else kGatherMaxTapChannels.
constexpr int gather_tap_channels(int64_t tap_channels_needed) {
  return tap_channels_needed <= 4 ? 4 : kGatherMaxTapChannels;
}
/// Output columns per thread: one 16-byte store with the small tile; with the large one 4
/// (2 for 8-byte elements), which keeps the weights' registers in bounds.
constexpr int gather_columns_per_thread(int elem_bytes, int tap_channels) {
  return tap_channels <= 4 ? 16 / elem_bytes : elem_bytes == 8 ? 2 : 4;
}
/// Runs the whole output with p.tap_channels (gather_tap_channels of taps_max·cg).
/// cudaErrorInvalidValue when taps_max·cg exceeds it or it is neither 4 nor 16.
cudaError_t launch_transposed_gather(const GatherParams& p, int sm_count, cudaStream_t stream);

// ---- depthwise: one channel in and out per group (params.h DepthwiseParams) -------------
/// wt[tap, c] = w[c, flip ? K−1−tap : tap] (all axes); wt holds K0·K1·K2·C elements.
cudaError_t launch_depthwise_weights(const void* w, void* wt, int64_t c, const int64_t k[3], bool flip,
                                     Elem elem, cudaStream_t stream);
/// Whether the 3x3 window kernel takes p: one tap on axis 0, 3x3 taps of stride 1 and
/// dilation 1 on axes 1 and 2.
bool depthwise_window_fits(const DepthwiseParams& p);
/// Runs the whole output with `kernel`. general: `vec` channels per thread, 16 / element size
/// or 1 (rows ignored), and with input_window (depthwise_input_window_fits, vectors only) the
/// register window along the last axis. window and ring (depthwise_window_fits): rows 4, 8 or
/// 16 output rows per thread (the ring gives a thread strips of up to 4·rows rows) and `vec`
/// channels, depthwise_window_vector(element size, ring) or 1 (the ring with vec 1 runs the
/// window kernel's one-channel form). A vector needs C a multiple of it and every pointer
/// aligned to its bytes. cudaErrorInvalidValue for any other choice, or when one sample's
/// threads or blocks reach 2^31.
cudaError_t launch_depthwise(const DepthwiseParams& p, DepthwiseKernel kernel, int vec, int rows,
                             bool input_window, cudaStream_t stream);

// ---- implicit GEMM: a dense conv per group, maybe one stride phase (params.h GemmConvParams)
/// Runs the whole dense problem (every group from group0 on, every row).
cudaError_t launch_gemm_conv(const GemmConvParams& p, cudaStream_t stream);
/// The same problem for O/g of 8, 16 or 32, f16 / bf16, C/g a multiple of 8, with 16-byte loads
/// and stores (vector_loads and vector_stores set): blocks of 64 / (O/g) groups
/// (kernels/grouped_mma.cu), the same bits as launch_gemm_conv. cudaErrorInvalidValue otherwise.
cudaError_t launch_grouped_mma(const GemmConvParams& p, cudaStream_t stream);
/// A launcher of a dense conv (launch_gemm_conv or launch_grouped_mma).
using GemmConvLaunch = cudaError_t (*)(const GemmConvParams&, cudaStream_t);

}  // namespace convnd::cuda
