// The oracle against hand-computed cases, and identities that need no reference: the adjoint
// identity <conv(x), y> = <x, conv_transpose(y)>, conv_transpose as conv_general (and as a
// scatter written here), linearity, a delta input reproducing the kernel, reference_point
// against reference_conv, and strided views against dense ones. Each identity is checked on
// the oracle and on whatever algorithm the planner picks.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "unit/test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

// Runs `problem` on x and w (row-major values) through the oracle and through the planner's
// algorithm, in f64 and f32, and checks both against `want` exactly (every value is a small
// integer, exact in both).
void expect_hand_computed(std::string_view problem, const std::vector<double>& x, const std::vector<double>& w,
                          const std::vector<double>& want) {
  SCOPED_TRACE(std::string(problem));
  for (DType t : {DType::f64, DType::f32}) {
    Problem p = parse_problem(problem);
    p.dtype = t;
    Geometry g = lower(p);
    TensorShapes s = tensor_shapes(p, g);
    ASSERT_EQ(int64_t(x.size()), Tensor::empty(t, x_shape(s)).numel());
    ASSERT_EQ(int64_t(w.size()), Tensor::empty(t, w_shape(s)).numel());
    Tensor xt = from_doubles(t, x_shape(s), x), wt = from_doubles(t, w_shape(s), w);
    Tensor y = Tensor::empty(t, y_shape(s));
    ASSERT_EQ(y.numel(), int64_t(want.size()));
    reference_conv(g, xt, wt, y);
    EXPECT_EQ(to_doubles(y), want) << "oracle, " << dtype_name(t);
    Tensor y2 = run(p, xt, wt);
    EXPECT_EQ(to_doubles(y2), want) << make_plan(p).algorithm << ", " << dtype_name(t);
  }
}

std::vector<double> iota(int n, double first = 1) {
  std::vector<double> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

Tensor abs_of(const TensorView& t) {
  std::vector<double> v = to_doubles(t);
  for (double& e : v) e = std::fabs(e);
  return from_doubles(t.dtype, t.shape, v);
}

// The forward problem's weight [O, K..., C/g] as the weight of its adjoint, a transposed conv
// from O to C channels: wT[q·C/g + c, k..., o] = w[q·O/g + o, k..., c].
Tensor adjoint_weight(const Problem& fwd, const TensorView& w) {
  const int64_t g = fwd.groups, cg = fwd.c / g, og = fwd.o / g;
  Shape shape = w.shape;
  shape.front() = fwd.c;
  shape.back() = og;
  Tensor wt = Tensor::empty(w.dtype, shape);
  for_each_index(w.shape, [&](const Shape& idx, int64_t) {
    const int64_t o = idx.front(), c = idx.back(), q = o / og;
    Shape t = idx;
    t.front() = q * cg + c;
    t.back() = o - q * og;
    set_element(wt.view(), t, element_as_double(w, idx));
  });
  return wt;
}

// conv_transpose by its definition as a scatter (semantics.md): input position t adds
// x[n, t, c]·w[o, k, c] to output position t·s + k·d - padding. Row-major y values.
std::vector<double> scatter_conv_transpose(const Problem& p, const TensorView& x, const TensorView& w) {
  const Geometry g = lower(p);
  const TensorShapes s = tensor_shapes(p, g);
  const Shape ys = y_shape(s);
  std::vector<double> y(size_t(Tensor::empty(DType::f64, ys).numel()), 0.0);
  const int r = p.rank;
  const Shape ystr = contiguous_strides(ys);
  const int64_t og = p.o / p.groups, cg = p.c / p.groups;
  for_each_index(x.shape, [&](const Shape& xi, int64_t) {
    const double xv = element_as_double(x, xi);
    const int64_t c = xi.back(), q = c / cg;
    Shape kshape(p.k.begin(), p.k.begin() + r);
    for_each_index(kshape, [&](const Shape& k, int64_t) {
      int64_t off = xi[0] * ystr[0];
      for (int a = 0; a < r; ++a) {
        int64_t u = xi[1 + a] * p.stride[a] + k[a] * p.dil[a] - p.pad_lo[a];
        if (u < 0 || u >= ys[1 + a]) return;
        off += u * ystr[1 + a];
      }
      for (int64_t oo = 0; oo < og; ++oo) {
        const int64_t o = q * og + oo;
        Shape wi{o};
        wi.insert(wi.end(), k.begin(), k.end());
        wi.push_back(c - q * cg);
        y[size_t(off + o)] += xv * element_as_double(w, wi);
      }
    });
  });
  return y;
}

// Relative closeness for f64 results whose terms' absolute values sum to `scale`.
::testing::AssertionResult close_f64(double a, double b, double scale) {
  if (std::fabs(a - b) <= 1e-12 * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b << " (scale " << scale << ")";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hand-computed cases

TEST(OracleHandComputed, Conv2dWithGroups) {
  // Channel 0 holds 1..9, channel 1 ten times that; group 0 (o=0) reads channel 0 only with
  // [[1,2],[3,4]], group 1 (o=1) reads channel 1 only with [[1,0],[0,-1]].
  std::vector<double> x;
  for (int i = 1; i <= 9; ++i) x.insert(x.end(), {double(i), 10.0 * i});
  std::vector<double> w = {1, 2, 3, 4, 1, 0, 0, -1};
  // y0 = x[p,q] + 2x[p,q+1] + 3x[p+1,q] + 4x[p+1,q+1]: 37, 47, 67, 77; y1 = 10·(x - x[+1,+1]) = -40.
  expect_hand_computed("in=3x3 c=2 o=2 k=2x2 g=2", x, w, {37, -40, 47, -40, 67, -40, 77, -40});
}

TEST(OracleHandComputed, Flip) {
  // flip=1 is convolution: y[p] = x[p]·w[2] + x[p+1]·w[1] + x[p+2]·w[0].
  expect_hand_computed("in=4 c=1 o=1 k=3 flip=1", {1, 2, 3, 4}, {1, 10, 100}, {123, 234});
  expect_hand_computed("in=4 c=1 o=1 k=3", {1, 2, 3, 4}, {1, 10, 100}, {321, 432});
  // 2-D: the whole kernel reversed on both axes: 1·1000 + 2·100 + 3·10 + 4·1.
  expect_hand_computed("in=2x2 c=1 o=1 k=2x2 flip=1", {1, 2, 3, 4}, {1, 10, 100, 1000}, {1234});
  expect_hand_computed("in=2x2 c=1 o=1 k=2x2", {1, 2, 3, 4}, {1, 10, 100, 1000}, {4321});
}

TEST(OracleHandComputed, InputDilation) {
  // [1,2,3] dilated by 2 is [1,0,2,0,3].
  expect_hand_computed("in=3 c=1 o=1 k=2 idil=2", {1, 2, 3}, {1, 10}, {1, 20, 2, 30});
  // Padding applies after dilation: [0,1,0,2,0,3].
  expect_hand_computed("in=3 c=1 o=1 k=2 pad=1:0 idil=2", {1, 2, 3}, {1, 10}, {10, 1, 20, 2, 30});
  // 2-D, dilation 2 on the first axis only: rows [1,2], [0,0], [3,4]; 1x1 kernel of 5.
  expect_hand_computed("in=2x2 c=1 o=1 idil=2x1", {1, 2, 3, 4}, {5}, {5, 10, 0, 0, 15, 20});
}

TEST(OracleHandComputed, NegativePaddingCrops) {
  // [1,2,3,4,5] cropped by 1 before and 2 after: [2,3]; with [1,10]: 2 + 30.
  expect_hand_computed("in=5 c=1 o=1 k=2 pad=-1:-2", {1, 2, 3, 4, 5}, {1, 10}, {32});
  // Dilate, then crop dilated positions: [1,0,2,0,3,0,4,0,5] -> drop 3 and 1 -> [0,3,0,4,0].
  expect_hand_computed("in=5 c=1 o=1 k=3 pad=-3:-1 idil=2", {1, 2, 3, 4, 5}, {1, 10, 100}, {30, 403, 40});
  // A crop on one side, padding on the other, 2-D: rows 1..2 of [[1,2],[3,4],[5,6]] plus a zero column.
  expect_hand_computed("in=3x2 c=1 o=1 pad=-1:0x0:1", {1, 2, 3, 4, 5, 6}, {2}, {6, 8, 0, 10, 12, 0});
}

TEST(OracleHandComputed, KernelDilation) {
  // y[p] = x[p] + 10·x[p+2] + 100·x[p+4].
  expect_hand_computed("in=6 c=1 o=1 k=3 dil=2", iota(6), {1, 10, 100}, {531, 642});
  expect_hand_computed("in=7 c=1 o=1 k=3 stride=2 dil=2", iota(7), {1, 10, 100}, {531, 753});
  // 2-D, dilation 2 on the second axis: taps (0,0) and (0,2) of a 2x3 input.
  expect_hand_computed("in=2x3 c=1 o=1 k=1x2 dil=1x2", iota(6), {1, 10}, {31, 64});
}

TEST(OracleHandComputed, ThreeDimensionsInLayoutOrder) {
  // x = 1..8 over [D, H, W], w = 10^i over [KD, KH, KW]: every tap lands on its own digit.
  std::vector<double> w(8);
  for (int i = 0; i < 8; ++i) w[size_t(i)] = std::pow(10.0, i);
  Problem p = parse_problem("in=2x2x2 c=1 o=1 k=2x2x2 dtype=f64");
  Geometry g = lower(p);
  TensorShapes s = tensor_shapes(p, g);
  Tensor xt = from_doubles(DType::f64, x_shape(s), iota(8)), wt = from_doubles(DType::f64, w_shape(s), w);
  Tensor y = Tensor::empty(DType::f64, y_shape(s));
  reference_conv(g, xt, wt, y);
  EXPECT_EQ(y.ptr<double>()[0], 87654321.0);
  EXPECT_EQ(run(p, xt, wt).ptr<double>()[0], 87654321.0);
  p.flip = true;
  g = lower(p);
  reference_conv(g, xt, wt, y);
  EXPECT_EQ(y.ptr<double>()[0], 12345678.0);
}

TEST(OracleHandComputed, TransposedConv2d) {
  // Stride 2, 2x2 kernel, no overlap: every input value stamps its own scaled copy of w.
  std::vector<double> x = {1, 2, 3, 4}, w = {1, 10, 100, 1000};
  expect_hand_computed("op=convT in=2x2 c=1 o=1 k=2x2 stride=2", x, w,
                       {1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000});
  // padding 1 removes one position on each side: P = (2-1)·2 - 2 + 1 + 1 = 2.
  expect_hand_computed("op=convT in=2x2 c=1 o=1 k=2x2 stride=2 pad=1", x, w, {1000, 200, 30, 4});
  // output_padding adds a position at the end that only the zero-padded tail reaches.
  expect_hand_computed("op=convT in=2 c=1 o=1 k=2 stride=2 outpad=1", {1, 2}, {1, 10}, {1, 10, 2, 20, 0});
  // Overlapping taps: stride 1, [1,2] with [1,10,100]: [1, 12, 120, 200].
  expect_hand_computed("op=convT in=2 c=1 o=1 k=3", {1, 2}, {1, 10, 100}, {1, 12, 120, 200});
  // padding beyond d·(K-1) = 2 (MLX gets these wrong): the oracle_test.cpp case, and a 2-D one.
  expect_hand_computed("op=convT in=5 c=1 o=1 k=3 stride=2 pad=3", {1, 2, 3, 4, 5}, {1, 10, 100},
                       {20, 203, 30, 304, 40});
  // 2-D, k=1, stride 3, pad 2: the 7x7 upsampled grid [x at 0,3,6] cropped to [2, 5): x at 3 only.
  expect_hand_computed("op=convT in=3x3 c=1 o=1 stride=3 pad=2", iota(9), {2}, {0, 0, 0, 0, 10, 0, 0, 0, 0});
}

TEST(OracleHandComputed, TransposedWithGroups) {
  // x = [3, 5] (one position, two channels), g=2, o=4: output channels 0,1 read channel 0 and
  // 2,3 read channel 1; w[o, k] = 10·o + k + 1.
  expect_hand_computed("op=convT in=1 c=2 o=4 k=2 g=2", {3, 5}, {1, 2, 11, 12, 21, 22, 31, 32},
                       {3, 33, 105, 155, 6, 36, 110, 160});
}

TEST(OracleHandComputed, ReferencePointTermsAndScale) {
  // Padding 1 on [1,2,3] with [1,-10,100]: the first output has taps on x[0], x[1] only.
  Problem p = parse_problem("in=3 c=2 o=1 k=3 pad=1 dtype=f64");
  Geometry g = lower(p);
  TensorShapes s = tensor_shapes(p, g);
  Tensor x = from_doubles(DType::f64, x_shape(s), {1, 1, 2, 2, 3, 3});
  Tensor w = from_doubles(DType::f64, w_shape(s), {1, 1, -10, -10, 100, 100});
  PointValue v = reference_point(g, x, w, 0, {0, 0, 0}, 0);
  EXPECT_EQ(v.value, 2 * (-10 + 200));
  EXPECT_EQ(v.abssum, 2 * (10 + 200));
  EXPECT_EQ(v.terms, 4);  // two taps, two channels
  v = reference_point(g, x, w, 0, {0, 0, 1}, 0);
  EXPECT_EQ(v.value, 2 * (1 - 20 + 300));
  EXPECT_EQ(v.terms, 6);
}

// ---------------------------------------------------------------------------------------------
// Identities on random problems

TEST(OracleIdentities, AdjointOfForwardConvIsTransposedConv) {
  // <conv(x, w), y> = <x, conv_transpose(y, w')> with the same stride, padding, dilation and
  // groups, output_padding making the transposed output as long as x, and w' the weight as
  // the adjoint sees it.
  Rng rng = test_rng();
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.negative_padding = false;
  lim.flip = false;
  lim.max_input_dilation = 1;
  lim.max_pad = 4;
  int checked = 0, with_outpad = 0;
  for (int it = 0; it < 300; ++it) {
    Problem fwd = random_problem(rng, lim);
    for (int a = 0; a < fwd.rank; ++a) fwd.pad_hi[a] = fwd.pad_lo[a];  // conv_transpose's padding is symmetric
    Geometry gf;
    if (!validate(fwd, &gf).ok()) continue;
    Problem adj = fwd;
    adj.op = Op::conv_transpose;
    adj.c = fwd.o;
    adj.o = fwd.c;
    const TensorShapes sf = tensor_shapes(fwd, gf);
    for (int a = 0; a < fwd.rank; ++a) {
      adj.in[a] = sf.y[1 + a];
      const int64_t E = fwd.dil[a] * (fwd.k[a] - 1) + 1;
      adj.outpad[a] = (fwd.in[a] + 2 * fwd.pad_lo[a] - E) % fwd.stride[a];
      with_outpad += adj.outpad[a] > 0;
    }
    SCOPED_TRACE(to_string(fwd) + "  adjoint: " + to_string(adj));
    Geometry ga;
    Status st = validate(adj, &ga);
    ASSERT_TRUE(st.ok()) << st.message();
    const TensorShapes sa = tensor_shapes(adj, ga);
    ASSERT_EQ(y_shape(sa), x_shape(sf));

    Case c = make_case(fwd, rng);
    Tensor y = random_tensor(DType::f64, y_shape(sf), rng);
    Tensor wt = adjoint_weight(fwd, c.w);
    // Scale: the same sums over absolute values.
    Tensor ax = abs_of(c.x), aw = abs_of(c.w), ay = abs_of(y), awt = abs_of(wt);
    auto conv_ref = [](const Problem& p, const TensorView& a, const TensorView& b) {
      Geometry g = lower(p);
      Tensor out = Tensor::empty(DType::f64, y_shape(tensor_shapes(p, g)));
      reference_conv(g, a, b, out);
      return to_doubles(out);
    };
    const double lhs = dot(conv_ref(fwd, c.x, c.w), to_doubles(y));
    const double rhs = dot(to_doubles(c.x), conv_ref(adj, y, wt));
    const double scale = dot(conv_ref(fwd, ax, aw), to_doubles(ay));
    EXPECT_TRUE(close_f64(lhs, rhs, scale)) << "oracle";
    EXPECT_NEAR(scale, dot(to_doubles(ax), conv_ref(adj, ay, awt)), 1e-12 * scale);
    // The same with the planner's algorithms.
    const double lhs2 = dot(to_doubles(run(fwd, c.x, c.w)), to_doubles(y));
    const double rhs2 = dot(to_doubles(c.x), to_doubles(run(adj, y, wt)));
    EXPECT_TRUE(close_f64(lhs2, rhs2, scale)) << make_plan(fwd).algorithm << " / " << make_plan(adj).algorithm;
    ++checked;
  }
  EXPECT_GE(checked, 250);
  EXPECT_GT(with_outpad, 20);
}

TEST(OracleIdentities, TransposedConvIsConvGeneralAndAScatter) {
  // conv_transpose(stride s, padding p, dilation d, output_padding op) ==
  // conv_general(stride 1, lo = d(K-1) - p, hi = lo + op, kernel dilation d, input dilation s,
  // flip) for every p, including p > d(K-1); both equal the scatter of the definition.
  Rng rng = test_rng();
  DrawLimits lim;
  lim.conv = false;
  lim.max_pad = 6;
  int beyond_span = 0;
  for (int it = 0; it < 300; ++it) {
    Problem t = random_problem(rng, lim);
    Problem cg = t;
    cg.op = Op::conv;
    cg.outpad = {0, 0, 0};
    cg.flip = true;
    for (int a = 0; a < t.rank; ++a) {
      const int64_t span = t.dil[a] * (t.k[a] - 1);
      beyond_span += t.pad_lo[a] > span;
      cg.stride[a] = 1;
      cg.idil[a] = t.stride[a];
      cg.pad_lo[a] = span - t.pad_lo[a];
      cg.pad_hi[a] = span - t.pad_lo[a] + t.outpad[a];
    }
    SCOPED_TRACE(to_string(t) + "  as conv_general: " + to_string(cg));
    Case c = make_case(t, rng);
    const std::vector<double> want = scatter_conv_transpose(t, c.x, c.w);
    Oracle ref = oracle(c);
    ASSERT_TRUE(all_close(ref.value, want, 1e-13, 1.0));
    Geometry gg;
    ASSERT_TRUE(validate(cg, &gg).ok());
    Oracle ref2 = oracle(gg, tensor_shapes(cg, gg), c.x, c.w);
    EXPECT_EQ(ref2.value, ref.value);
    EXPECT_TRUE(matches_oracle(run(t, c.x, c.w), ref)) << make_plan(t).algorithm;
    EXPECT_TRUE(matches_oracle(run(cg, c.x, c.w), ref)) << make_plan(cg).algorithm;
  }
  EXPECT_GT(beyond_span, 30);
}

TEST(OracleIdentities, Linearity) {
  // conv(a·x1 + b·x2, w) = a·conv(x1, w) + b·conv(x2, w), and the same in w.
  Rng rng = test_rng();
  for (int it = 0; it < 100; ++it) {
    Problem p = random_problem(rng);
    SCOPED_TRACE(to_string(p));
    Case c1 = make_case(p, rng), c2 = make_case(p, rng);
    const double a = rng.uniform(-2, 2), b = rng.uniform(-2, 2);
    auto combine = [&](const TensorView& u, const TensorView& v) {
      std::vector<double> x = to_doubles(u), y = to_doubles(v);
      for (size_t i = 0; i < x.size(); ++i) x[i] = a * x[i] + b * y[i];
      return from_doubles(DType::f64, u.shape, x);
    };
    Tensor xs = combine(c1.x, c2.x), ws = combine(c1.w, c2.w);
    const double scale = 4.0 * double(c1.geometry.kernel_volume() * c1.geometry.cg());
    for (bool use_ref : {true, false}) {
      auto conv = [&](const TensorView& x, const TensorView& w) {
        if (!use_ref) return to_doubles(run(p, x, w));
        Tensor y = Tensor::empty(DType::f64, y_shape(c1.shapes));
        reference_conv(c1.geometry, x, w, y);
        return to_doubles(y);
      };
      std::vector<double> y1 = conv(c1.x, c1.w), y2 = conv(c2.x, c1.w), lhs = conv(xs, c1.w);
      std::vector<double> rhs(y1.size());
      for (size_t i = 0; i < y1.size(); ++i) rhs[i] = a * y1[i] + b * y2[i];
      EXPECT_TRUE(all_close(lhs, rhs, 1e-12, scale)) << (use_ref ? "oracle" : "planner") << ", in x";
      y2 = conv(c1.x, c2.w);
      lhs = conv(c1.x, ws);
      for (size_t i = 0; i < y1.size(); ++i) rhs[i] = a * y1[i] + b * y2[i];
      EXPECT_TRUE(all_close(lhs, rhs, 1e-12, scale)) << (use_ref ? "oracle" : "planner") << ", in w";
    }
  }
}

TEST(OracleIdentities, DeltaInputReproducesTheKernel) {
  // A single 1 at input position t0, channel ci. Forward (stride 1, padding d(K-1) on both
  // sides): output position p gets w[o, k, ci'] where p + k·d - lo = t0, i.e. the kernel in
  // reverse order for cross-correlation and in order with flip. Transposed: output position
  // t0·s + k·d - padding gets w[o, k, ci']. Every other element, and every output channel of
  // another group, is exactly 0.
  Rng rng = test_rng();
  for (int it = 0; it < 120; ++it) {
    DrawLimits lim;
    lim.max_input_dilation = 1;
    lim.max_kernel = 5;
    Problem p = random_problem(rng, lim);
    if (p.op == Op::conv)
      for (int a = 0; a < p.rank; ++a) {
        p.stride[a] = 1;
        p.pad_lo[a] = p.pad_hi[a] = p.dil[a] * (p.k[a] - 1);
      }
    Geometry g;
    ASSERT_TRUE(validate(p, &g).ok()) << to_string(p);
    SCOPED_TRACE(to_string(p));
    const TensorShapes s = tensor_shapes(p, g);
    Tensor x = Tensor::zeros(p.dtype, x_shape(s));
    Shape t0(size_t(p.rank + 2), 0);
    t0[0] = rng.integer(0, p.n - 1);
    for (int a = 0; a < p.rank; ++a) t0[1 + a] = rng.integer(0, p.in[a] - 1);
    const int64_t ci = rng.integer(0, p.c - 1), cg = p.c / p.groups, og = p.o / p.groups, q = ci / cg;
    t0.back() = ci;
    set_element(x.view(), t0, 1.0);
    Tensor w = random_tensor(p.dtype, w_shape(s), rng);

    // Expected output, built position by position from the kernel.
    std::vector<double> want(size_t(Tensor::empty(DType::f64, y_shape(s)).numel()), 0.0);
    const Shape ystr = contiguous_strides(y_shape(s));
    Shape kshape(p.k.begin(), p.k.begin() + p.rank);
    for_each_index(kshape, [&](const Shape& k, int64_t) {
      int64_t off = t0[0] * ystr[0];
      Shape wk(k);
      for (int a = 0; a < p.rank; ++a) {
        int64_t pos = p.op == Op::conv ? t0[1 + a] + p.pad_lo[a] - k[a] * p.dil[a]
                                       : t0[1 + a] * p.stride[a] + k[a] * p.dil[a] - p.pad_lo[a];
        if (pos < 0 || pos >= s.y[1 + a]) return;
        off += pos * ystr[1 + a];
        if (p.flip) wk[size_t(a)] = p.k[a] - 1 - k[a];
      }
      for (int64_t oo = 0; oo < og; ++oo) {
        Shape wi{q * og + oo};
        wi.insert(wi.end(), wk.begin(), wk.end());
        wi.push_back(ci - q * cg);
        want[size_t(off + q * og + oo)] = element_as_double(w, wi);
      }
    });
    Tensor y = Tensor::empty(p.dtype, y_shape(s));
    reference_conv(g, x, w, y);
    EXPECT_EQ(to_doubles(y), want) << "oracle";
    EXPECT_EQ(to_doubles(run(p, x, w)), want) << make_plan(p).algorithm;
  }
}

TEST(OracleIdentities, ReferencePointEqualsReferenceConv) {
  // Every element of every output, every dtype: the point value rounded as reference_conv
  // rounds, and the count of terms from an independent walk over the taps.
  Rng rng = test_rng();
  DrawLimits lim;
  lim.dtypes = {DType::f32, DType::f16, DType::bf16, DType::f64};
  lim.max_macs = 2e4;
  for (int it = 0; it < 100; ++it) {
    Problem p = random_problem(rng, lim);
    SCOPED_TRACE(to_string(p));
    Case c = make_case(p, rng);
    const Geometry& g = c.geometry;
    Tensor y = reference_output(c);
    const Shape ys = y_shape(c.shapes);
    int64_t bad = 0;
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t p0 = 0; p0 < g.out[0]; ++p0)
        for (int64_t p1 = 0; p1 < g.out[1]; ++p1)
          for (int64_t p2 = 0; p2 < g.out[2]; ++p2)
            for (int64_t oc = 0; oc < g.o; ++oc) {
              const Dims pos{p0, p1, p2};
              PointValue v = reference_point(g, c.x, c.w, n, pos, oc);
              // Taps that land on real input, counted here from the geometry.
              int64_t taps = 1;
              for (int j = 0; j < 3; ++j) {
                int64_t hits = 0;
                for (int64_t k = 0; k < g.k[j]; ++k) {
                  int64_t u = pos[j] * g.stride[j] + k * g.kdil[j] - g.lo[j];
                  hits += u >= 0 && u % g.idil[j] == 0 && u / g.idil[j] < g.in[j];
                }
                taps *= hits;
              }
              Shape idx{n};
              for (int j = 3 - p.rank; j < 3; ++j) idx.push_back(pos[j]);
              idx.push_back(oc);
              const double got = element_as_double(y, idx);
              if (round_to(p.dtype, v.value) != got || v.terms != taps * g.cg() || v.abssum < std::fabs(v.value)) {
                if (bad++ < 3)
                  ADD_FAILURE() << "at n=" << n << " p=" << p0 << "," << p1 << "," << p2 << " o=" << oc << ": point "
                                << v.value << " (" << v.terms << " terms), conv " << got << ", taps " << taps;
              }
            }
    EXPECT_EQ(bad, 0);
  }
}

TEST(OracleIdentities, StridedViewsGiveTheDenseResult) {
  // Non-contiguous x, w and y (gaps after every dimension, NaN in the gaps) give results
  // bit-identical to dense ones, in the oracle and through the planner.
  Rng rng = test_rng();
  DrawLimits lim;
  lim.dtypes = {DType::f32, DType::f16, DType::bf16, DType::f64};
  int strided = 0;
  for (int it = 0; it < 60; ++it) {
    Problem p = random_problem(rng, lim);
    SCOPED_TRACE(to_string(p));
    Case c = make_case(p, rng);
    StridedCopy xs = strided_copy(c.x, 1 + it % 3), ws = strided_copy(c.w, 2);
    strided += !xs.view.is_contiguous();  // (a view with unit extents can still be dense)
    Tensor dense = reference_output(c);
    StridedCopy ys = strided_copy(dense, 1);
    fill(ys.view, std::nan(""));  // every element must be written
    reference_conv(c.geometry, xs.view, ws.view, ys.view);
    EXPECT_TRUE(bit_equal(ys.view, dense)) << "oracle, strided x, w and y";
    Tensor planned = run(p, c.x, c.w);
    EXPECT_TRUE(bit_equal(run(p, xs.view, ws.view), planned)) << "planner, strided x and w";
    Plan plan = make_plan(p);
    StridedCopy ys2 = strided_copy(dense, 2);
    fill(ys2.view, std::nan(""));
    execute(plan, xs.view, c.w, ys2.view);
    EXPECT_TRUE(bit_equal(ys2.view, planned)) << plan.algorithm << ", strided x and y";
  }
  EXPECT_GT(strided, 40);
}
