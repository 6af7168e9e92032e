// The gradient oracles (reference_conv_backward_data / _weight) against identities that need no
// other reference: the adjoint identities <conv(x, w), dy> = <x, dx> = <w, dw> (both gradients
// are linear in dy, and y is bilinear in x and w), a hand-computed case, and zeros where no
// output reads an input.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

double inner(const TensorView& a, const TensorView& b) {
  double s = 0;
  for_each_index(a.shape, [&](const Shape& idx, int64_t) { s += element_as_double(a, idx) * element_as_double(b, idx); });
  return s;
}

double abs_inner(const TensorView& a, const TensorView& b) {
  double s = 0;
  for_each_index(a.shape, [&](const Shape& idx, int64_t) {
    s += std::fabs(element_as_double(a, idx) * element_as_double(b, idx));
  });
  return s;
}

struct Grads {
  Tensor y, dy, dx, dw;
};

Grads gradients(const Case& c, Rng& rng) {
  Grads r;
  const DType t = c.problem.dtype;
  r.y = Tensor::empty(t, y_shape(c.shapes));
  reference_conv(c.geometry, c.x, c.w, r.y);
  r.dy = random_tensor(t, y_shape(c.shapes), rng);
  r.dx = Tensor::empty(t, x_shape(c.shapes));
  r.dw = Tensor::empty(t, w_shape(c.shapes));
  reference_conv_backward_data(c.geometry, r.dy, c.w, r.dx);
  reference_conv_backward_weight(c.geometry, c.x, r.dy, r.dw);
  return r;
}

}  // namespace

TEST(OracleGradients, AdjointIdentitiesOnRandomProblems) {
  Rng rng = test_rng();
  DrawLimits lim;  // every parameter: convT, groups, flip, strides, both dilations, negative padding
  for (int i = 0; i < 400; ++i) {
    const Problem p = random_problem(rng, lim);
    SCOPED_TRACE(to_string(p));
    const Case c = make_case(p, rng);
    const Grads g = gradients(c, rng);
    const double ydy = inner(g.y, g.dy), scale = abs_inner(g.y, g.dy) + 1e-300;
    // Each side sums the same products in another order: float64 rounding only.
    EXPECT_NEAR(inner(c.x, g.dx), ydy, 1e-12 * (scale + abs_inner(c.x, g.dx))) ;
    EXPECT_NEAR(inner(c.w, g.dw), ydy, 1e-12 * (scale + abs_inner(c.w, g.dw)));
  }
}

TEST(OracleGradients, HandComputedStridedConv1d) {
  // y[p] = w0·x[2p] + w1·x[2p+1] + w2·x[2p+2] for in=5 k=3 stride=2 (outputs p = 0, 1).
  const Problem p = parse_problem("in=5 c=1 o=1 k=3 stride=2 dtype=f64");
  const Geometry g = lower(p);
  double x[5] = {1, 2, 3, 4, 5}, w[3] = {10, 100, 1000}, dy[2] = {1, -2}, dx[5], dw[3];
  TensorView xv(x, DType::f64, {1, 5, 1}), wv(w, DType::f64, {1, 3, 1}), dyv(dy, DType::f64, {1, 2, 1});
  TensorView dxv(dx, DType::f64, {1, 5, 1}), dwv(dw, DType::f64, {1, 3, 1});
  reference_conv_backward_data(g, dyv, wv, dxv);
  reference_conv_backward_weight(g, xv, dyv, dwv);
  // dx[i] = sum over (p, k) with 2p + k = i of dy[p]·w[k].
  const double want_dx[5] = {10, 100, 1000 - 20, -200, -2000};
  // dw[k] = sum_p dy[p]·x[2p + k].
  const double want_dw[3] = {1 * 1 - 2 * 3, 1 * 2 - 2 * 4, 1 * 3 - 2 * 5};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(dx[i], want_dx[i]) << i;
  for (int k = 0; k < 3; ++k) EXPECT_EQ(dw[k], want_dw[k]) << k;
}

TEST(OracleGradients, InputsNoOutputReadsGetZero) {
  // Stride 3 over a 1x1 kernel reads inputs 0, 3, 6; a crop of 1 at each end drops input 0 and 8.
  Rng rng = test_rng();
  const Case c = make_case("in=9 c=2 o=3 stride=3 pad=-1 dtype=f64", rng);
  const Grads g = gradients(c, rng);
  for (int64_t i = 0; i < 9; ++i)
    for (int64_t ch = 0; ch < 2; ++ch) {
      const double v = element_as_double(g.dx, {0, i, ch});
      if (i == 1 || i == 4 || i == 7) EXPECT_NE(v, 0.0) << i;
      else EXPECT_EQ(v, 0.0) << i;
    }
}

TEST(OracleGradients, HalfPrecisionRoundsTheFloat64SumOnce) {
  // Small integers: every product and sum is exact in float64, so the bf16 / f16 gradients equal
  // the f64 ones rounded once (and the values chosen stay exact in 16 bits).
  Rng rng = test_rng();
  for (DType t : {DType::f16, DType::bf16, DType::f32}) {
    Problem p = parse_problem("n=2 in=6x5 c=4 o=6 k=3x2 stride=2x1 pad=1 g=2");
    p.dtype = t;
    const Case c = make_case(p, rng, Fill::small_int, 2);
    Problem p64 = p;
    p64.dtype = DType::f64;
    Case c64 = make_case(p64, rng);
    c64.x = random_tensor(DType::f64, x_shape(c.shapes), rng);
    for_each_index(c.x.shape(), [&](const Shape& idx, int64_t) { set_element(c64.x.view(), idx, element_as_double(c.x, idx)); });
    for_each_index(c.w.shape(), [&](const Shape& idx, int64_t) { set_element(c64.w.view(), idx, element_as_double(c.w, idx)); });
    Tensor dy = random_tensor(t, y_shape(c.shapes), rng, Fill::small_int, 2);
    Tensor dy64 = Tensor::empty(DType::f64, y_shape(c.shapes));
    for_each_index(dy.shape(), [&](const Shape& idx, int64_t) { set_element(dy64.view(), idx, element_as_double(dy, idx)); });
    Tensor dx = Tensor::empty(t, x_shape(c.shapes)), dx64 = Tensor::empty(DType::f64, x_shape(c.shapes));
    Tensor dw = Tensor::empty(t, w_shape(c.shapes)), dw64 = Tensor::empty(DType::f64, w_shape(c.shapes));
    reference_conv_backward_data(c.geometry, dy, c.w, dx);
    reference_conv_backward_data(c64.geometry, dy64, c64.w, dx64);
    reference_conv_backward_weight(c.geometry, c.x, dy, dw);
    reference_conv_backward_weight(c64.geometry, c64.x, dy64, dw64);
    for_each_index(dx.shape(), [&](const Shape& idx, int64_t) {
      EXPECT_EQ(element_as_double(dx, idx), element_as_double(dx64, idx)) << dtype_name(t);
    });
    for_each_index(dw.shape(), [&](const Shape& idx, int64_t) {
      EXPECT_EQ(element_as_double(dw, idx), element_as_double(dw64, idx)) << dtype_name(t);
    });
  }
}
