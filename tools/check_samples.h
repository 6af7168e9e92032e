// Which elements `convnd check` compares when the full oracle is too expensive, and the
// per-element oracles of the gradients it compares them with.
//
// The result compared is y [N, P, O] (dir=fwd), dx [N, I, C] (dir=bwd_d) or dw [O, K, C/g]
// (dir=bwd_w), seen as the 5-D index space [B, E0, E1, E2, Ch] of the 3-D geometry (an
// "entry" B: a batch entry of y or dx, an output channel of dw). Always included (bounded by a
// budget of oracle work, so that a huge problem still finishes):
//  - every element of the first row of the first entry and of the last row of the first and
//    last entries (a row: all positions of the innermost spatial axis times all channels); a
//    row longer than the cap is sampled densely instead: its first and last quarter-cap
//    elements, plus half a cap spread evenly (with jitter) over the middle;
//  - borders: for every spatial axis, its first and last index with random other coordinates
//    (4 points per border), at every channel or a spread of them (first, last, random);
//  - the very last element;
// plus K uniformly random elements. Duplicates are removed.
#pragma once
#include <convnd/problem.h>
#include <convnd/reference.h>
#include <convnd/tensor.h>

#include <cstdint>
#include <vector>

namespace convnd::cli {

/// Coordinates of one element of the result in the 3-D geometry: y[n, p0, p1, p2, oc] for
/// fwd, dx[n, i0, i1, i2, c] for bwd_d, dw[o, k0, k1, k2, c] for bwd_w (n, p, oc hold them).
struct OutputIndex {
  int64_t n;
  Dims p;
  int64_t oc;
};

/// What the forward oracle costs for the whole output: it visits every (output, tap) pair and
/// does C/g multiply-adds on each that lands on real input or padding. For a conv without input
/// dilation this is about N*P*O*K*C/g; for a strided transposed conv it is far less. The
/// gradients' oracles (reference_conv_backward_data/weight) walk the same (output, tap) pairs.
inline double oracle_work(const Geometry& g) {
  return double(g.y_elems()) * double(g.kernel_volume()) + g.macs();
}

/// The result of a direction as an index space [b, e0, e1, e2, ch], and what the per-element
/// oracle costs for one of its elements on average (reference_point, or the gradient oracles
/// below).
struct ResultSpace {
  int64_t b;
  Dims e;
  int64_t ch;
  double cost;
  int64_t elems() const { return b * e[0] * e[1] * e[2] * ch; }
};
ResultSpace result_space(const Geometry& g);

/// Linear index (row-major over [B, E0, E1, E2, Ch]) to coordinates and back.
OutputIndex decompose(const ResultSpace& s, int64_t linear);
int64_t linear_index(const ResultSpace& s, const OutputIndex& c);
/// The same for y (the forward output) of a geometry.
OutputIndex decompose(const Geometry& g, int64_t linear);
int64_t linear_index(const Geometry& g, const OutputIndex& c);

struct SampleSet {
  std::vector<int64_t> index;  // sorted, unique linear indices into the result
  int64_t row_length = 0;      // elements per row (E2 * Ch)
  int64_t row_cap = 0;         // > 0: rows were longer than this and were sampled at this many
};

/// Oracle multiply-adds the always-included set may cost (it shrinks the caps, not below a floor).
inline constexpr double kSampleWorkBudget = 1e9;
/// Random samples when the caller gives no K (fewer when one element is very expensive).
inline constexpr int64_t kDefaultRandomSamples = 4096;

/// The sample for a result space (result_space(g)); `random_samples` < 0: the default.
SampleSet choose_samples(const ResultSpace& s, int64_t random_samples, uint64_t seed);
/// The sample of y for a forward geometry.
SampleSet choose_samples(const Geometry& g, int64_t random_samples, uint64_t seed);

/// One element of a gradient by its definition (semantics.md, "Gradients"), summed in float64
/// with the magnitude of its terms for the tolerance, as reference_point does for y. They
/// follow reference_conv_backward_data/weight (src/reference/reference.cpp): output position p
/// and tap k read input position i where p·stride + k·kdil − lo = i·idil (on each axis), and
/// with flip the weight's tap is K − 1 − k. Tensors are dense in the 3-D layout (or rank+2
/// dims of the same memory): x [N, I, C], w [O, K, C/g], dy [N, P, O].
///   dx[n, i, c]   = Σ over taps k, positions p reading i, channels oc of c's group:
///                   dy[n, p, oc] · w[oc, k', c mod C/g]
///   dw[oc, k', c] = Σ over n and positions p whose tap k lands on input i:
///                   dy[n, p, oc] · x[n, i, group(oc)·C/g + c]
/// `terms` counts the products.
PointValue gradient_point_dx(const Geometry& g, const TensorView& w, const TensorView& dy, const OutputIndex& at);
PointValue gradient_point_dw(const Geometry& g, const TensorView& x, const TensorView& dy, const OutputIndex& at);

}  // namespace convnd::cli
