// The gradients as other convolutions. For a forward problem g (y = conv(x, w)) the input
// gradient is itself a forward conv of dy, which is what lets every forward algorithm serve
// bwd_d, and lets bwd_w of a conv with input dilation run as bwd_w of a conv without it:
//
//   <conv_g(x, w), dy> = <conv_g'(dy, w'), x>   for all x, w, dy, where
//   g' = dual_forward(g): input dy [N, out, O], output [N, in, C], O and C swapped per group,
//        stride' = input dilation, input dilation' = stride, kernel dilation kept,
//        lo' = d(K-1) - lo, hi' = (in-1)·idil - (out-1)·stride + lo, flip' = !flip;
//   w'[gi·C/g + c, k, o] = w[gi·O/g + o, k, c]  (same tap index k: the flip flag does the rest).
//
// So dx = conv_g'(dy, w') (bwd_d as a forward conv), and dw of g at (x, dy) is the transpose
// (as above) of dw' of g' at (x' = dy, dy' = x): a strided conv's gradient has no inserted
// zeros, which is why the weight gradient of a transposed conv takes that route.
#pragma once
#include <convnd/problem.h>

namespace convnd {

/// g' above, with dir = fwd. Extents and products stay those of g (the same tensors), so a
/// valid g gives a valid g' (out' == g.in on every axis).
Geometry dual_forward(const Geometry& g);

/// The shape of w' as [groups, C/g, K, O/g] strides of w's elements: w'[gi, c, k, o] sits at
/// element gi·(C/g)·K·(O/g) + c·K·(O/g) + k·(O/g) + o; w[gi, o, k, c] (w [O, K, C/g] read as
/// [groups, O/g, K, C/g]) goes there. The strides below map w's [groups, O/g, K, C/g] index to
/// w's position in w'; see transpose_weight users.
struct WeightDual {
  int64_t shape[4];    // groups, O/g, K, C/g  (w's dense order)
  int64_t strides[4];  // where each of w's indices lands in w' (elements)
};
WeightDual weight_dual(const Geometry& g);

/// Whether w' has the same memory as w (one input and one output channel per group: w [C, K, 1]
/// is its own dual), so no copy is needed.
inline bool weight_dual_is_identity(const Geometry& g) { return g.c == g.groups && g.o == g.groups; }

}  // namespace convnd
