// The public C++ API: options structs (empty, one value for every axis, one per axis, wrong
// counts), tensor mismatches, weight channels against C/groups, conv1d/2d/3d and
// conv_transpose1d/2d/3d against conv_general, groups in 3-D and in transposed convs (against
// per-group slices), and the progress callback (called, monotone, cancels with interrupted)
// for every algorithm of the registry.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "plan/registry.h"
#include "unit/grad_test_util.h"
#include "unit/test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

using Dim = std::vector<int64_t>;

Tensor conv_nd(int rank, const TensorView& x, const TensorView& w, const ConvOptions& opt, const ExecOptions& e = {}) {
  return rank == 1 ? conv1d(x, w, opt, e) : rank == 2 ? conv2d(x, w, opt, e) : conv3d(x, w, opt, e);
}
Tensor conv_transpose_nd(int rank, const TensorView& x, const TensorView& w, const ConvTransposeOptions& opt,
                         const ExecOptions& e = {}) {
  return rank == 1 ? conv_transpose1d(x, w, opt, e)
         : rank == 2 ? conv_transpose2d(x, w, opt, e)
                     : conv_transpose3d(x, w, opt, e);
}

// Dense random tensors of the given shapes.
struct XW {
  Tensor x, w;
};
XW tensors(Rng& rng, const Shape& xs, const Shape& ws, DType t = DType::f32, Fill fill = Fill::small_int) {
  return {random_tensor(t, xs, rng, fill, 2), random_tensor(t, ws, rng, fill, 2)};
}

// A view of channels [c0, c0 + count) of a channels-last tensor (strided when count < C).
TensorView channel_slice(const TensorView& t, int64_t c0, int64_t count) {
  Shape shape = t.shape;
  shape.back() = count;
  char* data = static_cast<char*>(t.data) + c0 * t.strides.back() * dtype_size(t.dtype);
  return TensorView(data, t.dtype, shape, t.strides);
}
// A view of rows [o0, o0 + count) of the leading dimension (dense).
TensorView leading_slice(const TensorView& t, int64_t o0, int64_t count) {
  Shape shape = t.shape;
  shape.front() = count;
  char* data = static_cast<char*>(t.data) + o0 * t.strides.front() * dtype_size(t.dtype);
  return TensorView(data, t.dtype, shape, t.strides);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Options structs

TEST(ApiOptions, EmptyOptionsAreTheDefaults) {
  Rng rng = test_rng();
  XW t = tensors(rng, {2, 7, 6, 3}, {4, 3, 2, 3});
  Tensor a = conv2d(t.x, t.w);
  Tensor b = conv_general(t.x, t.w);
  ConvGeneralOptions explicit_defaults;
  explicit_defaults.stride = {1, 1};
  explicit_defaults.padding_lo = {0, 0};
  explicit_defaults.padding_hi = {0, 0};
  explicit_defaults.kernel_dilation = {1, 1};
  explicit_defaults.input_dilation = {1, 1};
  Tensor c = conv_general(t.x, t.w, explicit_defaults);
  EXPECT_EQ(a.shape(), (Shape{2, 5, 5, 4}));
  EXPECT_TRUE(bit_equal(a, b));
  EXPECT_TRUE(bit_equal(a, c));
  EXPECT_EQ(problem_for_conv(2, t.x, t.w, {}), parse_problem("n=2 in=7x6 c=3 o=4 k=3x2"));
  EXPECT_EQ(problem_for_conv_general(t.x, t.w, {}), parse_problem("n=2 in=7x6 c=3 o=4 k=3x2"));
  XW u = tensors(rng, {1, 5, 2}, {3, 2, 2});
  EXPECT_EQ(problem_for_conv_transpose(1, u.x, u.w, {}), parse_problem("op=convT in=5 c=2 o=3 k=2"));
}

TEST(ApiOptions, OneValueAppliesToEveryAxis) {
  Rng rng = test_rng();
  XW t = tensors(rng, {1, 9, 8, 7, 2}, {3, 3, 2, 2, 2});
  ConvOptions one, each;
  one.stride = {2};
  one.padding = {1};
  one.dilation = {2};
  each.stride = {2, 2, 2};
  each.padding = {1, 1, 1};
  each.dilation = {2, 2, 2};
  EXPECT_TRUE(bit_equal(conv3d(t.x, t.w, one), conv3d(t.x, t.w, each)));
  EXPECT_EQ(problem_for_conv(3, t.x, t.w, one), parse_problem("in=9x8x7 c=2 o=3 k=3x2x2 stride=2 pad=1 dil=2"));

  ConvGeneralOptions g1, g3;
  g1.stride = {3};
  g1.padding_lo = {-1};
  g1.padding_hi = {2};
  g1.kernel_dilation = {1};
  g1.input_dilation = {2};
  g3.stride = {3, 3, 3};
  g3.padding_lo = {-1, -1, -1};
  g3.padding_hi = {2, 2, 2};
  g3.kernel_dilation = {1, 1, 1};
  g3.input_dilation = {2, 2, 2};
  EXPECT_TRUE(bit_equal(conv_general(t.x, t.w, g1), conv_general(t.x, t.w, g3)));
  EXPECT_EQ(problem_for_conv_general(t.x, t.w, g1),
            parse_problem("in=9x8x7 c=2 o=3 k=3x2x2 stride=3 pad=-1:2 idil=2"));

  ConvTransposeOptions t1, t3;
  t1.stride = {2};
  t1.padding = {1};
  t1.output_padding = {1};
  t3.stride = {2, 2, 2};
  t3.padding = {1, 1, 1};
  t3.output_padding = {1, 1, 1};
  XW u = tensors(rng, {1, 3, 4, 2, 2}, {3, 3, 2, 2, 2});
  EXPECT_TRUE(bit_equal(conv_transpose3d(u.x, u.w, t1), conv_transpose3d(u.x, u.w, t3)));
  EXPECT_EQ(problem_for_conv_transpose(3, u.x, u.w, t1),
            parse_problem("op=convT in=3x4x2 c=2 o=3 k=3x2x2 stride=2 pad=1 outpad=1"));
}

TEST(ApiOptions, PerAxisValues) {
  Rng rng = test_rng();
  XW t = tensors(rng, {1, 9, 8, 2}, {3, 3, 2, 2});
  ConvOptions o;
  o.stride = {2, 1};
  o.padding = {0, 2};
  o.dilation = {1, 3};
  EXPECT_EQ(problem_for_conv(2, t.x, t.w, o), parse_problem("in=9x8 c=2 o=3 k=3x2 stride=2x1 pad=0x2 dil=1x3"));
  EXPECT_EQ(conv2d(t.x, t.w, o).shape(), (Shape{1, 4, 9, 3}));
  ConvGeneralOptions g;
  g.padding_lo = {1, 0};  // padding_hi empty: the same as padding_lo
  EXPECT_EQ(problem_for_conv_general(t.x, t.w, g), parse_problem("in=9x8 c=2 o=3 k=3x2 pad=1x0"));
  g.padding_hi = {0, 2};
  EXPECT_EQ(problem_for_conv_general(t.x, t.w, g), parse_problem("in=9x8 c=2 o=3 k=3x2 pad=1:0x0:2"));
  ConvGeneralOptions hi_only;
  hi_only.padding_hi = {2, 1};
  EXPECT_EQ(problem_for_conv_general(t.x, t.w, hi_only), parse_problem("in=9x8 c=2 o=3 k=3x2 pad=0:2x0:1"));
  ConvTransposeOptions ct;
  ct.stride = {3, 2};
  ct.output_padding = {2, 0};
  ct.dilation = {1, 2};
  EXPECT_EQ(problem_for_conv_transpose(2, t.x, t.w, ct),
            parse_problem("op=convT in=9x8 c=2 o=3 k=3x2 stride=3x2 dil=1x2 outpad=2x0"));
}

TEST(ApiOptions, WrongCountsAreClearInvalidErrors) {
  Rng rng = test_rng();
  XW t2 = tensors(rng, {1, 8, 8, 2}, {2, 3, 3, 2});
  auto bad_conv = [&](ConvOptions o, const char* name) {
    EXPECT_TRUE(throws_error([&] { conv2d(t2.x, t2.w, o); }, ErrorKind::invalid,
                             {"[conv2d]", name, "3 values", "expected 1 or 2"}))
        << name;
  };
  bad_conv(ConvOptions{.stride = {1, 2, 1}}, "stride");
  bad_conv(ConvOptions{.padding = {1, 1, 1}}, "padding");
  bad_conv(ConvOptions{.dilation = {1, 1, 1}}, "dilation");
  auto bad_general = [&](ConvGeneralOptions o, const char* name) {
    EXPECT_TRUE(throws_error([&] { conv_general(t2.x, t2.w, o); }, ErrorKind::invalid,
                             {"[conv_general]", name, "3 values", "expected 1 or 2"}))
        << name;
  };
  bad_general(ConvGeneralOptions{.stride = {1, 1, 1}}, "stride");
  bad_general(ConvGeneralOptions{.padding_lo = {0, 0, 0}}, "padding_lo");
  bad_general(ConvGeneralOptions{.padding_lo = {0}, .padding_hi = {0, 0, 0}}, "padding_hi");
  bad_general(ConvGeneralOptions{.kernel_dilation = {1, 1, 1}}, "kernel_dilation");
  bad_general(ConvGeneralOptions{.input_dilation = {1, 1, 1}}, "input_dilation");
  auto bad_transpose = [&](ConvTransposeOptions o, const char* name) {
    EXPECT_TRUE(throws_error([&] { conv_transpose2d(t2.x, t2.w, o); }, ErrorKind::invalid,
                             {"[conv_transpose2d]", name, "3 values", "expected 1 or 2"}))
        << name;
  };
  bad_transpose(ConvTransposeOptions{.stride = {2, 2, 2}}, "stride");
  bad_transpose(ConvTransposeOptions{.padding = {0, 0, 0}}, "padding");
  bad_transpose(ConvTransposeOptions{.dilation = {1, 1, 1}}, "dilation");
  bad_transpose(ConvTransposeOptions{.output_padding = {0, 0, 0}}, "output_padding");
  // Values that break a rule of the spec: the message names the call and the problem.
  EXPECT_TRUE(throws_error([&] { conv2d(t2.x, t2.w, ConvOptions{.stride = {0}}); }, ErrorKind::invalid,
                           {"[conv2d] stride (0) must be >= 1", "; problem: in=8x8 c=2 o=2 k=3x3 stride=0"}));
  EXPECT_TRUE(throws_error([&] { conv_transpose2d(t2.x, t2.w, ConvTransposeOptions{.stride = {2}, .output_padding = {2}}); },
                           ErrorKind::invalid, {"[conv_transpose2d] output padding outpad (2)", "; problem: op=convT"}));
  EXPECT_TRUE(throws_error([&] { conv_transpose2d(t2.x, t2.w, ConvTransposeOptions{.padding = {-1}}); },
                           ErrorKind::invalid, {"[conv_transpose2d] padding pad (-1) must be >= 0"}));
  EXPECT_TRUE(throws_error([&] { conv2d(t2.x, t2.w, ConvOptions{.groups = 0}); }, ErrorKind::invalid,
                           {"[conv2d] groups g (0) must be >= 1"}));
}

// ---------------------------------------------------------------------------------------------
// Tensors

TEST(ApiTensors, DtypeAndRankMismatches) {
  Rng rng = test_rng();
  Tensor x32 = random_tensor(DType::f32, {1, 8, 8, 2}, rng), w16 = random_tensor(DType::f16, {2, 3, 3, 2}, rng);
  EXPECT_TRUE(throws_error([&] { conv2d(x32, w16); }, ErrorKind::invalid,
                           {"[conv2d]", "input dtype f32 and weight dtype f16 must match"}));
  EXPECT_TRUE(throws_error([&] { conv_general(x32, w16); }, ErrorKind::invalid, {"[conv_general]", "f32", "f16"}));
  EXPECT_TRUE(throws_error([&] { conv_transpose2d(x32, w16); }, ErrorKind::invalid, {"[conv_transpose2d]"}));
  Tensor w3 = random_tensor(DType::f32, {2, 3, 2}, rng), x3 = random_tensor(DType::f32, {1, 8, 2}, rng);
  EXPECT_TRUE(throws_error([&] { conv2d(x3, w3); }, ErrorKind::invalid, {"[conv2d] input x must have 4 dimensions", "got 3"}));
  EXPECT_TRUE(throws_error([&] { conv2d(x32, w3); }, ErrorKind::invalid, {"[conv2d] weight w must have 4 dimensions", "got 3"}));
  EXPECT_TRUE(throws_error([&] { conv1d(x32, w3); }, ErrorKind::invalid, {"[conv1d] input x must have 3 dimensions"}));
  EXPECT_TRUE(throws_error([&] { conv3d(x32, w3); }, ErrorKind::invalid, {"[conv3d] input x must have 5 dimensions"}));
  EXPECT_TRUE(throws_error([&] { conv_general(x32, w3); }, ErrorKind::invalid, {"[conv_general] weight w must have 4"}));
  EXPECT_TRUE(throws_error([&] { conv_transpose3d(x3, w3); }, ErrorKind::invalid, {"[conv_transpose3d] input x must have 5"}));
  Tensor x2 = random_tensor(DType::f32, {8, 2}, rng), x6 = random_tensor(DType::f32, {1, 2, 2, 2, 2, 2}, rng);
  EXPECT_TRUE(throws_error([&] { conv_general(x2, w3); }, ErrorKind::invalid, {"[conv_general] input x must have 3, 4 or 5"}));
  EXPECT_TRUE(throws_error([&] { conv_general(x6, w3); }, ErrorKind::invalid, {"got 6"}));
  // A zero extent in a tensor is an invalid problem, not an empty result.
  Tensor x0 = Tensor::empty(DType::f32, {0, 8, 2}), w1 = random_tensor(DType::f32, {2, 1, 2}, rng);
  EXPECT_TRUE(throws_error([&] { conv1d(x0, w1); }, ErrorKind::invalid, {"batch size n (0)"}));
}

TEST(ApiTensors, WeightChannelsMustBeInputChannelsOverGroups) {
  Rng rng = test_rng();
  Tensor x = random_tensor(DType::f32, {1, 8, 8, 4}, rng);
  Tensor w4 = random_tensor(DType::f32, {6, 3, 3, 4}, rng), w2 = random_tensor(DType::f32, {6, 3, 3, 2}, rng);
  EXPECT_TRUE(throws_error([&] { conv2d(x, w4, ConvOptions{.groups = 2}); }, ErrorKind::invalid,
                           {"[conv2d] weight channels (4) must equal input channels / groups (4 / 2 = 2)", "; problem: "}));
  EXPECT_TRUE(throws_error([&] { conv2d(x, w2); }, ErrorKind::invalid, {"weight channels (2)", "(4 / 1 = 4)"}));
  EXPECT_NO_THROW(conv2d(x, w2, ConvOptions{.groups = 2}));
  Tensor w8 = random_tensor(DType::f32, {8, 3, 3, 2}, rng);
  EXPECT_TRUE(throws_error([&] { conv_general(x, w8, ConvGeneralOptions{.groups = 4}); }, ErrorKind::invalid,
                           {"[conv_general] weight channels (2)", "(4 / 4 = 1)"}));
  EXPECT_TRUE(throws_error([&] { conv_transpose2d(x, w4, ConvTransposeOptions{.groups = 2}); }, ErrorKind::invalid,
                           {"[conv_transpose2d] weight channels (4)"}));
  // Groups not dividing the channels are reported as that, before the weight is looked at.
  EXPECT_TRUE(throws_error([&] { conv2d(x, w2, ConvOptions{.groups = 3}); }, ErrorKind::invalid,
                           {"input channels (4) must be divisible by groups (3)"}));
}

TEST(ApiTensors, ExecuteChecksEveryTensor) {
  Rng rng = test_rng();
  const Problem p = parse_problem("n=2 in=6x6 c=3 o=4 k=3x3 pad=1");
  Case c = make_case(p, rng);
  Plan plan = make_plan(p);
  Tensor y = Tensor::empty(DType::f32, {2, 6, 6, 4});
  EXPECT_NO_THROW(execute(plan, c.x, c.w, y));
  Tensor y_bad = Tensor::empty(DType::f32, {2, 6, 5, 4});
  EXPECT_TRUE(throws_error([&] { execute(plan, c.x, c.w, y_bad); }, ErrorKind::invalid,
                           {"output y", "extent 5", "; problem: n=2 in=6x6 c=3 o=4 k=3x3 pad=1"}));
  Tensor y16 = Tensor::empty(DType::f16, {2, 6, 6, 4});
  EXPECT_TRUE(throws_error([&] { execute(plan, c.x, c.w, y16); }, ErrorKind::invalid, {"output y", "f16"}));
  EXPECT_TRUE(throws_error([&] { execute(plan, c.w, c.x, y); }, ErrorKind::invalid, {"input x"}));
  TensorView no_data = c.x.view();
  no_data.data = nullptr;
  EXPECT_TRUE(throws_error([&] { execute(plan, no_data, c.w, y); }, ErrorKind::invalid, {"input x", "no data"}));
  TensorView negative = c.w.view();
  negative.strides[1] = -negative.strides[1];
  EXPECT_TRUE(throws_error([&] { execute(plan, c.x, negative, y); }, ErrorKind::invalid, {"weight w", "negative stride"}));
  TensorView device = c.x.view();
  device.device = 0;
  EXPECT_TRUE(throws_error([&] { execute(plan, device, c.w, y); }, ErrorKind::invalid, {"host"}));
}

// ---------------------------------------------------------------------------------------------
// The convenience forms against conv_general

TEST(ApiForms, ConvNdIsConvGeneral) {
  Rng rng = test_rng();
  for (int it = 0; it < 60; ++it) {
    DrawLimits lim;
    lim.conv_transpose = false;
    lim.max_input_dilation = 1;
    lim.flip = false;
    lim.negative_padding = false;
    lim.dtypes = {DType::f32, DType::f64, DType::bf16};
    Problem p = random_problem(rng, lim);
    for (int a = 0; a < p.rank; ++a) p.pad_hi[a] = p.pad_lo[a];
    if (!validate(p, nullptr).ok()) continue;
    SCOPED_TRACE(to_string(p));
    Case c = make_case(p, rng);
    ConvOptions o;
    o.stride.assign(p.stride.begin(), p.stride.begin() + p.rank);
    o.padding.assign(p.pad_lo.begin(), p.pad_lo.begin() + p.rank);
    o.dilation.assign(p.dil.begin(), p.dil.begin() + p.rank);
    o.groups = p.groups;
    EXPECT_EQ(problem_for_conv(p.rank, c.x, c.w, o), p);
    Tensor a = conv_nd(p.rank, c.x, c.w, o);
    EXPECT_TRUE(bit_equal(a, conv_general(c.x, c.w, conv_general_options(p))));
    EXPECT_TRUE(matches_oracle(a, oracle(c)));
  }
}

TEST(ApiForms, ConvTransposeNdIsConvGeneralWithInputDilationAndFlip) {
  Rng rng = test_rng();
  DrawLimits lim;
  lim.conv = false;
  lim.max_pad = 5;
  lim.dtypes = {DType::f32, DType::f64, DType::f16};
  for (int it = 0; it < 80; ++it) {
    Problem p = random_problem(rng, lim);
    SCOPED_TRACE(to_string(p));
    Case c = make_case(p, rng);
    ConvTransposeOptions o = conv_transpose_options(p);
    EXPECT_EQ(problem_for_conv_transpose(p.rank, c.x, c.w, o), p);
    ConvGeneralOptions g;
    g.stride = {1};
    g.kernel_dilation.assign(p.dil.begin(), p.dil.begin() + p.rank);
    g.input_dilation.assign(p.stride.begin(), p.stride.begin() + p.rank);
    for (int a = 0; a < p.rank; ++a) {
      const int64_t lo = p.dil[a] * (p.k[a] - 1) - p.pad_lo[a];
      g.padding_lo.push_back(lo);
      g.padding_hi.push_back(lo + p.outpad[a]);
    }
    g.groups = p.groups;
    g.flip = true;
    Tensor a = conv_transpose_nd(p.rank, c.x, c.w, o), b = conv_general(c.x, c.w, g);
    ASSERT_EQ(a.shape(), b.shape());
    Oracle ref = oracle(c);
    EXPECT_TRUE(matches_oracle(a, ref)) << make_plan(p).algorithm;
    EXPECT_TRUE(matches_oracle(b, ref));
  }
}

TEST(ApiForms, GroupsAreIndependentSlices) {
  // A grouped conv equals, group by group, the ungrouped conv of that group's input channels
  // (a strided channel slice of x) and weight rows; in 3-D (MLX refuses groups there) and in
  // transposed convs of every rank.
  Rng rng = test_rng();
  const char* problems[] = {
      "n=2 in=5x6x4 c=6 o=9 k=3x2x3 pad=1 g=3",
      "in=6x5x5 c=8 o=8 k=3x3x3 stride=2 dil=1x2x1 g=8",
      "in=4x4x4 c=4 o=6 k=2x2x2 pad=-1:1 idil=2 g=2 flip=1",
      "op=convT n=2 in=7 c=6 o=4 k=3 stride=2 pad=1 outpad=1 g=2",
      "op=convT in=5x4 c=9 o=6 k=3x3 stride=3x2 pad=2 g=3",
      "op=convT in=3x4x3 c=6 o=9 k=3x2x3 stride=2 dil=2 outpad=1 g=3",
      "op=convT in=4x3x3 c=4 o=4 k=2x2x2 stride=2 g=4",
  };
  for (const char* text : problems) {
    for (DType t : {DType::f32, DType::f64}) {
      Problem p = parse_problem(text);
      p.dtype = t;
      SCOPED_TRACE(to_string(p));
      Case c = make_case(p, rng, Fill::small_int, 2);
      Tensor y = call_api(p, c.x, c.w);
      const int64_t cg = p.c / p.groups, og = p.o / p.groups;
      Problem one = p;
      one.groups = 1;
      one.c = cg;
      one.o = og;
      for (int64_t q = 0; q < p.groups; ++q) {
        TensorView xq = channel_slice(c.x, q * cg, cg), wq = leading_slice(c.w, q * og, og);
        Tensor yq = call_api(one, xq, wq);
        EXPECT_TRUE(bit_equal(channel_slice(y, q * og, og), yq)) << "group " << q;
      }
      EXPECT_TRUE(matches_oracle(y, oracle(c)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Progress and cancellation, for every algorithm of the registry

namespace {

// Problems of which each algorithm accepts at least one.
const char* const kProgressProblems[] = {
    "n=2 in=24x24 c=32 o=32",
    "n=2 in=20x20 c=16 o=24 k=3x3 pad=1",
    "in=24x24 c=16 o=16 k=3x3 pad=1 g=16",
    "n=2 in=20x20 c=16 o=32 k=3x3 pad=1 g=4",
    "op=convT in=16x16 c=16 o=8 k=4x4 stride=2 pad=1",
    "op=convT n=2 in=30x30 c=16 o=8 k=2x2 stride=2",
    "op=convT in=4000 c=1 o=1 k=64 stride=16",
    "op=convT n=2 in=300 c=2 o=3 k=8 stride=4",
    "in=12x12 c=4 o=4 k=3x3 idil=2 pad=1",
    "n=2 in=6x6x6 c=8 o=8 k=3x3x3 pad=1",
    "op=convT in=3000 c=4 o=4 k=8 stride=4",  // several waves of weight-gradient blocks
};

struct Recorder {
  std::mutex mu;
  std::vector<double> fractions;
  int stop_after = -1;  // return false on this call (0-based); -1: never
  std::function<bool(double)> callback() {
    return [this](double f) {
      std::lock_guard<std::mutex> lock(mu);
      fractions.push_back(f);
      return stop_after < 0 || int(fractions.size()) <= stop_after;
    };
  }
};

// The direction an algorithm computes (the first of fwd, bwd_d, bwd_w it serves).
Direction direction_of(const Algorithm& a) {
  const DirectionSet d = a.traits().directions;
  return d.has(Direction::fwd) ? Direction::fwd : d.has(Direction::bwd_d) ? Direction::bwd_d : Direction::bwd_w;
}

// Runs gc through the public entry point of its direction, with opt; returns the result.
Tensor run_direction(const GradCase& gc, const ExecOptions& opt) {
  const Problem& p = gc.c.problem;
  if (p.dir == Direction::fwd) return call_api(p, gc.c.x, gc.c.w, opt);
  if (p.dir == Direction::bwd_d) return run_backward_data(p, gc.c.w, gc.dy, opt);
  return run_backward_weight(p, gc.c.x, gc.dy, opt);
}

}  // namespace

TEST(ApiProgress, CalledMonotoneUpToOneForEveryAlgorithm) {
  Rng rng = test_rng();
  std::vector<std::string> covered;
  for (const Algorithm* algo : algorithm_registry()) {
    if (algo->backend() != Backend::cpu) continue;
    const std::string name(algo->name());
    for (const char* text : kProgressProblems) {
      Problem p = parse_problem(text);
      p.dir = direction_of(*algo);
      ExecOptions opt;
      opt.algorithm = name;
      try {
        make_plan(p, opt);
      } catch (const Error&) {
        continue;  // this algorithm does not take this problem
      }
      SCOPED_TRACE(name + ": " + text);
      const GradCase gc = make_grad_case(p, rng);
      Recorder rec;
      opt.progress = rec.callback();
      Tensor y = run_direction(gc, opt);
      ASSERT_FALSE(rec.fractions.empty()) << "progress never called";
      for (size_t i = 0; i < rec.fractions.size(); ++i) {
        EXPECT_GE(rec.fractions[i], 0.0);
        EXPECT_LE(rec.fractions[i], 1.0);
        if (i) EXPECT_GE(rec.fractions[i], rec.fractions[i - 1]) << "call " << i;
      }
      EXPECT_EQ(rec.fractions.back(), 1.0);
      EXPECT_TRUE(matches_oracle(y, p.dir == Direction::fwd ? oracle(gc.c) : grad_oracle(gc)));
      covered.push_back(name);
      break;
    }
  }
  // Every cpu algorithm found a problem (add one to kProgressProblems for a new algorithm).
  for (const Algorithm* algo : algorithm_registry())
    if (algo->backend() == Backend::cpu)
      EXPECT_NE(std::find(covered.begin(), covered.end(), std::string(algo->name())), covered.end()) << algo->name();
}

TEST(ApiProgress, ReturningFalseCancelsWithInterrupted) {
  Rng rng = test_rng();
  for (const Algorithm* algo : algorithm_registry()) {
    if (algo->backend() != Backend::cpu) continue;
    const std::string name(algo->name());
    for (const char* text : kProgressProblems) {
      Problem p = parse_problem(text);
      p.dir = direction_of(*algo);
      ExecOptions opt;
      opt.algorithm = name;
      try {
        make_plan(p, opt);
      } catch (const Error&) {
        continue;
      }
      SCOPED_TRACE(name + ": " + text);
      const GradCase gc = make_grad_case(p, rng);
      Recorder rec;
      rec.stop_after = 0;  // cancel at the first report
      opt.progress = rec.callback();
      EXPECT_TRUE(throws_error([&] { run_direction(gc, opt); }, ErrorKind::interrupted,
                               {"; problem: " + to_string(p)}));
      EXPECT_EQ(rec.fractions.size(), 1u) << "progress called again after it returned false";
      // execute() on the caller's own output: the same, and no later success.
      Recorder rec2;
      rec2.stop_after = 0;
      opt.progress = rec2.callback();
      Tensor out;
      EXPECT_TRUE(throws_error([&] { run_grad(gc, opt, &out); }, ErrorKind::interrupted));
      // The options without a callback run to completion.
      opt.progress = nullptr;
      EXPECT_NO_THROW(run_direction(gc, opt));
      break;
    }
  }
}

// contiguous_copy of strided views (a framework's layout read as convnd's: permuted axes,
// broadcast zero strides, negative strides from the binding) in each element size, against an
// element-by-element walk of the index.
TEST(ApiTensors, ContiguousCopyOfStridedViews) {
  Rng rng = test_rng();
  for (int trial = 0; trial < 200; ++trial) {
    const DType dt = std::array<DType, 4>{DType::f32, DType::f64, DType::f16, DType::bf16}[trial % 4];
    const int nd = int(rng.integer(1, 5));
    Shape shape(static_cast<size_t>(nd));
    for (auto& e : shape) e = rng.integer(1, 6);
    // A dense base tensor whose axes are permuted, some broadcast, some reversed.
    std::vector<int> order(static_cast<size_t>(nd));
    for (int d = 0; d < nd; ++d) order[size_t(d)] = d;
    for (int d = nd - 1; d > 0; --d) std::swap(order[size_t(d)], order[size_t(rng.integer(0, d))]);
    Shape base_shape(static_cast<size_t>(nd));
    for (int d = 0; d < nd; ++d) base_shape[size_t(d)] = shape[size_t(order[size_t(d)])];
    Tensor base = Tensor::empty(dt, base_shape);
    const int64_t es = dtype_size(dt);
    auto* bytes = static_cast<unsigned char*>(base.data());
    for (int64_t i = 0; i < base.view().numel() * es; ++i) bytes[i] = static_cast<unsigned char>(rng.integer(0, 255));
    const std::vector<unsigned char> bytes_copy(bytes, bytes + base.view().numel() * es);
    const Shape base_strides = base.view().strides;
    TensorView v(base.data(), dt, shape, Shape(size_t(nd), 0));
    int64_t offset = 0;
    for (int d = 0; d < nd; ++d) {
      int b = 0;  // the base axis that is view axis d
      while (order[size_t(b)] != d) ++b;
      int64_t stride = base_strides[size_t(b)];
      const int kind = int(rng.integer(0, 5));
      if (kind == 0) stride = 0;  // broadcast
      if (kind == 1 && shape[size_t(d)] > 1) {  // reversed
        offset += stride * (shape[size_t(d)] - 1);
        stride = -stride;
      }
      v.strides[size_t(d)] = stride;
    }
    v.data = bytes + offset * es;
    const Tensor got = contiguous_copy(v);
    ASSERT_TRUE(got.view().is_contiguous());
    // The reference: element by element over the index.
    std::vector<int64_t> idx(size_t(nd), 0);
    const auto* out = static_cast<const unsigned char*>(got.data());
    for (int64_t lin = 0; lin < v.numel(); ++lin) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[size_t(d)] * v.strides[size_t(d)];
      ASSERT_EQ(std::memcmp(out + lin * es, static_cast<const unsigned char*>(v.data) + off * es, size_t(es)), 0)
          << "trial " << trial << " element " << lin;
      for (int d = nd - 1; d >= 0 && ++idx[size_t(d)] == shape[size_t(d)]; --d) idx[size_t(d)] = 0;
    }
    // copy_from_dense, the inverse, into the same view of a cleared base (where no axis is
    // broadcast, so each element has its own place): reading it back gives the dense data.
    bool broadcast = false;
    for (int d = 0; d < nd; ++d) broadcast = broadcast || (v.strides[size_t(d)] == 0 && shape[size_t(d)] > 1);
    if (broadcast) continue;
    std::memset(base.data(), 0, size_t(base.view().numel() * es));
    copy_from_dense(got.data(), v);
    const Tensor back = contiguous_copy(v);
    ASSERT_EQ(std::memcmp(back.data(), got.data(), size_t(v.numel() * es)), 0) << "trial " << trial;
    ASSERT_EQ(std::memcmp(base.data(), bytes_copy.data(), size_t(base.view().numel() * es)), 0) << "trial " << trial;
  }
}
