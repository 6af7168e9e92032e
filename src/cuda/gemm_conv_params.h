// A dense conv (no input dilation, no flip), possibly one stride phase of a bigger problem, as
// the implicit GEMM kernels take it (kernels/params.h GemmConvParams). Header-only and free of
// CUDA headers, so that the host tests of the kernels' index math build it like the backend.
#pragma once
#include <convnd/problem.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "core/phases.h"
#include "cuda/kernels/params.h"

namespace convnd::cuda {

/// Where a dense conv takes its taps from and writes its outputs: tap j of axis a is weight
/// index k_first[a] + j·k_step[a]; output position m of axis a lands at y position
/// first[a] + step[a]·m. The defaults are a plain conv without flip.
struct DenseConvMap {
  Dims k_first{0, 0, 0}, k_step{1, 1, 1};
  Dims first{0, 0, 0}, step{1, 1, 1};
};

/// Extents, strides, offsets the kernels keep in int32 stay below this.
constexpr int64_t kGemmIndexLimit = int64_t(1) << 30;
/// Output channels per group: grid.y of 64-wide tiles.
constexpr int64_t kGemmMaxOutputChannels = int64_t(65535) * 64;

/// "" when the implicit GEMM kernels take the dense problem `sub` of the full problem g
/// (sub.idil is 1 and sub.flip false: map carries a flip); otherwise why not, in one line.
inline std::string gemm_conv_unsupported(const Geometry& g, const Geometry& sub, const DenseConvMap& map) {
  const int64_t lim = kGemmIndexLimit;
  for (int j = 0; j < 3; ++j) {
    const int64_t lo = sub.lo[j] < 0 ? -sub.lo[j] : sub.lo[j];
    // (out − 1)·stride + (taps − 1)·dil + |lo| bounds every position the kernels form.
    const double span = double(sub.out[j] - 1) * double(sub.stride[j]) +
                        double(std::max<int64_t>(sub.k[j] - 1, 0)) * double(sub.kdil[j]) + double(lo);
    if (g.in[j] >= lim || sub.out[j] >= lim || sub.k[j] >= lim || sub.stride[j] >= lim ||
        sub.kdil[j] >= lim || lo >= lim || span >= double(lim) || g.k[j] >= lim || g.out[j] >= lim ||
        map.first[j] >= lim || map.step[j] >= lim || map.k_first[j] >= lim || map.k_step[j] >= lim ||
        -map.k_step[j] >= lim)
      return "an extent, stride, dilation, padding or span of 2^30 or more";
  }
  // The K walk steps past K by up to one tile in int32.
  if (double(sub.kernel_volume()) * double(sub.cg()) >= double(INT32_MAX - 64))
    return "K = taps x C/g of 2^31 - 64 or more";
  if (sub.out_volume() >= INT32_MAX) return "2^31 or more output positions in one sample";
  if (sub.og() > kGemmMaxOutputChannels)
    return "more than " + std::to_string(kGemmMaxOutputChannels) + " output channels per group";
  return {};
}

/// The kernel parameters of a dense conv of g, for every sample and group (the runner narrows
/// n, m, group0, groups and the pointers per launch); pointers null, vector flags off.
inline GemmConvParams gemm_conv_params(const Geometry& g, const Geometry& sub, const DenseConvMap& map) {
  GemmConvParams p{};
  p.n = g.n;
  p.c = g.c;
  p.o = g.o;
  p.cg = g.cg();
  p.og = g.og();
  p.m = g.n * sub.out_volume();
  p.k = sub.kernel_volume() * p.cg;
  p.group0 = 0;
  p.groups = int32_t(g.groups);
  for (int j = 0; j < 3; ++j) {
    p.in[j] = int32_t(g.in[j]);
    p.out[j] = int32_t(sub.out[j]);
    p.stride[j] = int32_t(sub.stride[j]);
    p.dil[j] = int32_t(sub.kdil[j]);
    p.lo[j] = int32_t(sub.lo[j]);
    p.taps[j] = int32_t(sub.k[j]);
    p.k_first[j] = int32_t(map.k_first[j]);
    p.k_step[j] = int32_t(map.k_step[j]);
    p.w_k[j] = int32_t(g.k[j]);
    p.y_out[j] = int32_t(g.out[j]);
    p.first[j] = int32_t(map.first[j]);
    p.step[j] = int32_t(map.step[j]);
    p.div_out[j] = FastDivmod(sub.out[j]);
    p.div_taps[j] = FastDivmod(sub.k[j]);
  }
  p.div_cg = FastDivmod(p.cg);
  p.block_n = 128;
  p.elem = static_cast<Elem>(int(g.dtype));
  return p;
}

/// One dense conv of a problem: the whole problem when it has no input dilation, else one
/// stride phase (src/core/phases.h) with outputs.
struct DenseConvPiece {
  Geometry sub;
  DenseConvMap map;
};

/// The dense convs that make up g, in a fixed order. A phase whose taps all miss the input has
/// K = 0 and yields zeros.
inline std::vector<DenseConvPiece> dense_conv_pieces(const Geometry& g) {
  std::vector<DenseConvPiece> pieces;
  if (g.idil == Dims{1, 1, 1}) {
    DenseConvPiece pc{g, {}};
    pc.sub.flip = false;  // the map reads a flipped kernel backwards
    for (int j = 0; j < 3; ++j) {
      pc.map.k_first[j] = g.flip ? g.k[j] - 1 : 0;
      pc.map.k_step[j] = g.flip ? -1 : 1;
    }
    pieces.push_back(pc);
    return pieces;
  }
  const std::vector<PhaseAxis> axis[3] = {axis_phases(g, 0), axis_phases(g, 1), axis_phases(g, 2)};
  for (const PhaseAxis& a0 : axis[0])
    for (const PhaseAxis& a1 : axis[1])
      for (const PhaseAxis& a2 : axis[2]) {
        const Phase ph{{a0, a1, a2}};
        if (ph.outputs() == 0) continue;
        DenseConvPiece pc{phase_geometry(g, ph), {}};
        for (int j = 0; j < 3; ++j) {
          pc.map.k_first[j] = ph.axis[j].k_first;
          pc.map.k_step[j] = ph.axis[j].k_step;
          pc.map.first[j] = ph.axis[j].first;
          pc.map.step[j] = ph.axis[j].step;
        }
        pieces.push_back(pc);
      }
  return pieces;
}

}  // namespace convnd::cuda
