// The reference oracle: the direct definition of conv_general with 64-bit indices and
// float64 accumulation for every dtype. Never optimised; every algorithm is checked
// against it. reference_point() evaluates a single output element so that outputs far too
// large for the full oracle can be checked by sampling.
#pragma once
#include <convnd/problem.h>
#include <convnd/tensor.h>

namespace convnd {

/// y = conv(x, w) by the definition; y is rounded to its dtype from the float64 sum.
/// Views may be strided. Shapes must match the geometry (rank+2 dims, or the 3-D form).
void reference_conv(const Geometry& g, const TensorView& x, const TensorView& w,
                    const TensorView& y);

/// The oracle on output rows [row_begin, row_end) only, a row being one (n, p0, p1) of the 3-D
/// geometry (rows = N·PD·PH). Views as for reference_conv; callers may run disjoint row ranges
/// on several threads.
void reference_conv_rows(const Geometry& g, const TensorView& x, const TensorView& w, const TensorView& y,
                         int64_t row_begin, int64_t row_end);

/// The gradients by their definition (semantics.md, "Gradients"), for the forward problem g
/// (g.dir is not read): with y = conv(x, w) and a cotangent dy of y's shape,
///   dx = d<y, dy>/dx (x's shape; inputs no output reads get 0), and
///   dw = d<y, dy>/dw (w's shape: a sum over the batch and every output position).
/// Each element is summed in float64 and rounded once to its dtype. Single-threaded and
/// allocates a float64 copy of the result: for checking, not for speed.
void reference_conv_backward_data(const Geometry& g, const TensorView& dy, const TensorView& w,
                                  const TensorView& dx);
void reference_conv_backward_weight(const Geometry& g, const TensorView& x, const TensorView& dy,
                                    const TensorView& dw);

struct PointValue {
  double value;   // the exact-as-float64 sum
  double abssum;  // sum of |x*w| over the terms, the scale for error bounds
  int64_t terms;  // number of nonzero-position terms (taps that land on real input)
};

/// One output element y[n, p0, p1, p2, oc] in the 3-D geometry's coordinates.
PointValue reference_point(const Geometry& g, const TensorView& x, const TensorView& w,
                           int64_t n, const Dims& p, int64_t oc);

}  // namespace convnd
