// Which output elements `convnd check` compares when the full oracle is too expensive.
//
// Always included (bounded by a budget of oracle work, so that a huge problem still finishes):
//  - every element of the first row of the first batch entry and of the last row of the first
//    and last batch entries (a row: all positions of the innermost spatial axis times all
//    output channels); a row longer than the cap is sampled densely instead: its first and
//    last quarter-cap elements, plus half a cap spread evenly (with jitter) over the middle;
//  - borders: for every spatial axis, its first and last index with random other coordinates
//    (4 points per border), at every output channel or a spread of them (first, last, random);
//  - the very last element of y;
// plus K uniformly random elements. Duplicates are removed.
#pragma once
#include <convnd/problem.h>

#include <cstdint>
#include <vector>

namespace convnd::cli {

/// Coordinates of one output element in the 3-D geometry: y[n, p0, p1, p2, oc].
struct OutputIndex {
  int64_t n;
  Dims p;
  int64_t oc;
};

/// What the oracle costs for the whole output: it visits every (output, tap) pair and does
/// C/g multiply-adds on each that lands on real input or padding. For a conv without input
/// dilation this is about N*P*O*K*C/g; for a strided transposed conv it is far less.
inline double oracle_work(const Geometry& g) {
  return double(g.y_elems()) * double(g.kernel_volume()) + g.macs();
}

/// Linear index (row-major over [N, P0, P1, P2, O]) to coordinates.
OutputIndex decompose(const Geometry& g, int64_t linear);
int64_t linear_index(const Geometry& g, const OutputIndex& c);

struct SampleSet {
  std::vector<int64_t> index;  // sorted, unique linear indices into y
  int64_t row_length = 0;      // elements per row (P2 * O)
  int64_t row_cap = 0;         // > 0: rows were longer than this and were sampled at this many
};

/// Oracle multiply-adds the always-included set may cost (it shrinks the caps, not below a floor).
inline constexpr double kSampleWorkBudget = 1e9;
/// Random samples when the caller gives no K (fewer when one element is very expensive).
inline constexpr int64_t kDefaultRandomSamples = 4096;

/// The sample for a geometry. `random_samples` < 0: the default.
SampleSet choose_samples(const Geometry& g, int64_t random_samples, uint64_t seed);

}  // namespace convnd::cli
