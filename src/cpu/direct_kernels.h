// Direct (non-GEMM) CPU kernels, written once as plain loops over contiguous channels or
// positions (src/cpu/isa/direct_kernels.inc) and compiled per instruction set, so that the
// compiler's vectoriser targets AVX-512, AVX2 or baseline x86-64. Chosen at run time with
// the plan's ISA.
#pragma once
#include <convnd/plan.h>
#include <convnd/problem.h>

#include <cstdint>

namespace convnd {

/// Depthwise conv (C/g = O/g = 1, no input dilation) on output rows [row0, row1), a row
/// being one (n, p0, p1), positions [p2_begin, p2_end) of each (a long 1-D row is split over
/// several calls). wt: the weights repacked as [KD·KH·KW, C] in the compute type (float, or
/// double for f64), flip already applied. Sums taps in a fixed order.
struct DepthwiseArgs {
  const Geometry* g;
  const void* x;   // [N, I0, I1, I2, C] of g->dtype
  const void* wt;  // [taps, C] of float / double
  void* y;         // [N, P0, P1, P2, C]
  void* acc;       // per call scratch: max(C, 256) compute elements
  int64_t p2_begin = 0, p2_end = 0;
};

/// Few-channel transposed / input-dilated conv along the last axis (the leading axes are
/// trivial, stride 1): output positions [pa, pb) of batch n, every output channel.
/// y[n, p, o] = Σ_i Σ_c x[n, i, c]·W[o, c, j] over inputs i and taps j with
/// p = i·idil + lo − (K−1)·kd + j·kd (wt holds taps in increasing-p order, flip applied).
/// Sums over i in increasing order whatever the tile, so tiles change no bits.
struct ScatterArgs {
  const Geometry* g;
  const void* x;   // [N, I, C]
  const void* wt;  // [O, C/g, K] of float / double, taps in increasing output position
  void* y;         // [N, P, O]
  void* acc;       // scratch: (pb − pa)·(O/g) compute elements
  int64_t n, pa, pb;
};

/// Grouped (or few-channel) conv without input dilation: output row `row` (one (n, p0, p1)),
/// positions [pa, pb) of its last axis, every output channel. wt: the weights repacked as
/// [g, taps, C/g, og_pad] in the compute type (flip applied, channels og .. og_pad zero).
/// window: per call scratch of k0·k1·span·C compute elements. Each output sums its taps, then
/// its channels, in increasing order: any split of rows and positions gives the same bits.
struct GroupedArgs {
  const Geometry* g;
  const void* x;   // [N, I0, I1, I2, C] of g->dtype
  const void* wt;  // [g, taps, C/g, og_pad] of float / double
  void* y;         // [N, P0, P1, P2, O]
  void* window;    // k0·k1·span·C compute elements
  int64_t og_pad;  // O/g rounded up to 8 floats or 4 doubles (a multiple of every path's lanes)
  int64_t span;    // input positions per window line: covers pb − pa outputs rounded up to 12
};
/// Most kernel lines (k0·k1) the grouped kernel takes.
constexpr int64_t kGroupedMaxLines = 1024;

using DepthwiseFn = void (*)(const DepthwiseArgs&, int64_t row0, int64_t row1);
using GroupedFn = void (*)(const GroupedArgs&, int64_t row, int64_t pa, int64_t pb);
using ScatterFn = void (*)(const ScatterArgs&);
/// The depthwise weight gradient (C/g = 1) of reduction rows [row0, row1) (a row being one
/// (n, output position)) for output channels [o0, o1): slot[t·O + o] = Σ_rows dy[row, o] ·
/// x[row's position + tap t, o / (O/g)], the rows summed in order in the compute type (float,
/// double for f64); slot's other channels are left alone.
using DepthwiseWgradFn = void (*)(const Geometry& g, const void* x, const void* dy, int64_t row0, int64_t row1,
                                  int64_t o0, int64_t o1, void* slot);

/// s[e] + c[e] += v[e] for e < n, compensated like neumaier_add (cpu/blocked_reduction.h), with
/// the same operations per element (so the same bits on every path): the weight gradients'
/// sum of block partials.
using NeumaierF32Fn = void (*)(double* s, double* c, const float* v, int64_t n);
using NeumaierF64Fn = void (*)(double* s, double* c, const double* v, int64_t n);

struct DirectKernels {
  DepthwiseFn depthwise[4];  // by DType: f32, f16, bf16, f64
  ScatterFn scatter[4];
  DepthwiseWgradFn depthwise_wgrad[4];
  GroupedFn grouped[4];
  NeumaierF32Fn neumaier_add_f32;
  NeumaierF64Fn neumaier_add_f64;
};
const DirectKernels& direct_kernels_generic();
const DirectKernels& direct_kernels_avx2();
const DirectKernels& direct_kernels_avx512();
/// The table of a CPU path (generic for anything but avx2 and avx512).
const DirectKernels& direct_kernels(Isa isa);

}  // namespace convnd
