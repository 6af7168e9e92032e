// The CPU gradients (dir=bwd_d, dir=bwd_w): every gradient algorithm against the float64
// oracle on random problems of every kind and dtype, at tile boundaries and prime sizes, bit
// for bit on small integers; the weight gradient's bits across threads, budgets and column
// splits; the public C++ entry points; the seed case where MLX's input gradient is wrong; the
// errors.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <cstring>

#include "cpu/gemm.h"
#include "grad_test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

Problem with_dir(Problem p, Direction d) {
  p.dir = d;
  return p;
}

// Random problems of direction d within lim, cycling dtypes; the ones `algo` accepts must match
// the oracle, and at least min_accepted must be accepted.
void check_draws(const std::string& algo, Direction d, DrawLimits lim, int draws, int min_accepted) {
  Rng rng = test_rng();
  int accepted = 0;
  for (int i = 0; i < draws; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    const GradCase gc = make_grad_case(with_dir(random_problem(rng, lim), d), rng);
    ExecOptions opt;
    opt.algorithm = algo;
    Tensor out;
    if (!run_grad(gc, opt, &out)) continue;
    ++accepted;
    ASSERT_TRUE(matches_oracle(out, grad_oracle(gc))) << algo << " on " << to_string(gc.c.problem);
  }
  EXPECT_GE(accepted, min_accepted) << algo << " accepted too few random problems";
}

// Named problems in every dtype: within tolerance on random reals and bit-exact on small
// integers (every partial sum is then exact).
void check_named(const std::string& algo, Direction d, std::initializer_list<const char*> problems) {
  Rng rng = test_rng();
  for (const char* s : problems)
    for (DType t : kAllDtypes) {
      Problem p = with_dir(parse_problem(s), d);
      p.dtype = t;
      ExecOptions opt;
      opt.algorithm = algo;
      const GradCase gc = make_grad_case(p, rng);
      Tensor out;
      ASSERT_TRUE(run_grad(gc, opt, &out)) << algo << " declined " << to_string(p);
      ASSERT_TRUE(matches_oracle(out, grad_oracle(gc))) << algo << " on " << to_string(p);
      const GradCase gi = make_grad_case(p, rng, Fill::small_int, 2);
      ASSERT_TRUE(run_grad(gi, opt, &out));
      ASSERT_TRUE(bit_equal(out, grad_reference(gi))) << algo << " (small integers) on " << to_string(p);
    }
}

}  // namespace

// ---- the input gradient -----------------------------------------------------------------

TEST(CpuGradients, DataGradRandom) {
  DrawLimits lim;
  lim.max_channels_per_group = 5;
  check_draws("data_grad", Direction::bwd_d, lim, 120, 120);
}

TEST(CpuGradients, DataGradTileBoundariesAndPrimes) {
  check_named("data_grad", Direction::bwd_d,
              {"n=2 in=9x9 c=3 o=17 k=3x3 pad=1", "in=17x15 c=16 o=33 k=3x3 stride=2 pad=0:2x1",
               "in=31 c=7 o=13 k=5 dil=3 pad=-1:4 flip=1", "n=3 in=11x13 c=12 o=12 k=3x3 g=4 stride=1x2",
               "n=2 in=15x16 c=64 o=47", "in=29 c=12 o=18 g=3 stride=2", "in=23x23 c=32 o=32 k=3x3 pad=1 g=32",
               "op=convT in=13 c=8 o=5 k=4 stride=3 pad=1 outpad=2", "op=convT in=7x6 c=16 o=16 k=3x3 stride=2 g=16",
               "op=convT in=97 c=1 o=1 k=64 stride=16", "in=37 c=5 o=7 k=3 idil=2 stride=3 pad=2:-1"});
}

// MLX's input gradient of a transposed conv is wrong where padding > dilation·(K-1); ours is
// the adjoint (checked against the oracle, which the adjoint identities check).
TEST(CpuGradients, SeedTransposedConvPaddingBeyondKernel) {
  check_named("data_grad", Direction::bwd_d, {"op=convT in=5 c=1 o=1 k=3 stride=2 pad=3"});
  check_named("weight_grad_dual", Direction::bwd_w, {"op=convT in=5 c=1 o=1 k=3 stride=2 pad=3"});
}

// The dual forward conv reads w in place with its channel axes swapped (no permuted copy; f16
// keeps the copy): the same bits as the forward conv of the dual problem run on a permuted
// copy of w made here, on every path and dtype, for each GEMM algorithm (im2col with a flipped
// kernel and groups, pointwise, polyphase) and a partial B panel (35 channels).
TEST(CpuGradients, DataGradSwappedWeightSameBitsAsPermutedCopy) {
  Rng rng = test_rng();
  const std::pair<const char*, const char*> cases[] = {
      {"n=2 in=9x9 c=12 o=20 k=3x3 pad=1 g=2", "n=2 in=9x9 c=20 o=12 k=3x3 pad=1 g=2 flip=1"},
      {"n=2 in=7x5 c=24 o=40", "n=2 in=7x5 c=40 o=24"},
      {"n=2 in=12x12 c=16 o=24 k=3x3 pad=1 stride=2", "n=2 in=6x6 c=24 o=16 k=3x3 idil=2 pad=1:2x1:2 flip=1"},
      {"n=1 in=8x7 c=35 o=33 k=2x3 pad=0:1x1 flip=1", "n=1 in=8x7 c=33 o=35 k=2x3 pad=1:0x1"},
  };
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx}) {
    if (!gemm_isa_supported(isa)) continue;
    for (DType t : kAllDtypes)
      for (const auto& [primal, dual] : cases) {
        Problem p = with_dir(parse_problem(primal), Direction::bwd_d);
        p.dtype = t;
        Problem pd = parse_problem(dual);
        pd.dtype = t;
        const GradCase gc = make_grad_case(p, rng);
        ExecOptions opt;
        opt.isa = isa;
        const Plan plan = make_plan(p, opt);
        ASSERT_EQ(plan.algorithm, "data_grad");
        // The GEMMs read a swapped f16 weight through a copy (w_swapped_supported); the grouped
        // kernel repacks any layout and dtype.
        const bool swapped = t != DType::f16 || plan.to_text().find("via grouped_direct") != std::string::npos;
        EXPECT_EQ(plan_parameter(plan, "w_swapped"), swapped) << primal;
        EXPECT_EQ(plan_parameter(plan, "copy_bytes") == 0, swapped) << primal;
        Tensor dx = Tensor::empty(t, x_shape(gc.c.shapes));
        fill(dx.view(), std::nan(""));
        execute(plan, dx, gc.c.w, gc.dy, opt);
        // w' [g, C/g, K, O/g] from w [g, O/g, K, C/g], element by element.
        const Geometry& g = gc.c.geometry;
        const int64_t og = g.o / g.groups, cg = g.c / g.groups, taps = g.kernel_volume(), es = dtype_size(t);
        Shape wd_shape = gc.c.w.shape();  // [C, k..., O/g]
        wd_shape.front() = g.c;
        wd_shape.back() = og;
        Tensor wd = Tensor::empty(t, wd_shape);
        const char* w = static_cast<const char*>(gc.c.w.data());
        for (int64_t q = 0; q < g.groups; ++q)
          for (int64_t o = 0; o < og; ++o)
            for (int64_t k = 0; k < taps; ++k)
              for (int64_t c = 0; c < cg; ++c)
                std::memcpy(static_cast<char*>(wd.data()) + (((q * cg + c) * taps + k) * og + o) * es,
                            w + (((q * og + o) * taps + k) * cg + c) * es, size_t(es));
        const Plan dual_plan = make_plan(pd, opt);
        EXPECT_EQ(dual_plan.algorithm, plan.config->via()) << dual;
        Tensor ref = Tensor::empty(t, x_shape(gc.c.shapes));
        execute(dual_plan, gc.dy, wd, ref, opt);
        ASSERT_TRUE(bit_equal(dx, ref)) << primal << " " << dtype_name(t) << " on " << gemm_isa_name(isa);
      }
  }
}

// ---- the weight gradient ----------------------------------------------------------------

TEST(CpuGradients, WeightGradGemmRandom) {
  DrawLimits lim;
  lim.max_channels_per_group = 6;
  check_draws("weight_grad_gemm", Direction::bwd_w, lim, 120, 120);
}

TEST(CpuGradients, WeightGradDepthwiseRandom) {
  DrawLimits lim;
  lim.max_channels_per_group = 1;
  lim.max_groups = 9;
  check_draws("weight_grad_depthwise", Direction::bwd_w, lim, 80, 80);
}

TEST(CpuGradients, WeightGradDualRandom) {
  DrawLimits lim;
  lim.conv = false;  // transposed convs: stride 1 with input dilation once lowered
  lim.max_channels_per_group = 5;
  check_draws("weight_grad_dual", Direction::bwd_w, lim, 80, 50);  // convTs of stride 1 go elsewhere
}

TEST(CpuGradients, WeightGradTileBoundariesAndPrimes) {
  // Rows around the 1024-row block (1023, 1024, 1025 and several blocks), channels around
  // micro-tile sizes, primes, groups, every dtype.
  check_named("weight_grad_gemm", Direction::bwd_w,
              {"n=1 in=1023 c=3 o=5 k=1", "in=1024 c=16 o=17 k=3 pad=1", "in=1025 c=17 o=16 k=3 pad=1",
               "n=3 in=41x31 c=13 o=31 k=3x3 pad=1 stride=1x2", "in=9x9 c=64 o=33 k=3x3 g=1",
               "in=29 c=12 o=18 g=3 k=5 dil=2 pad=-1:3 flip=1", "in=5x6x7 c=5 o=6 k=2x3x2 pad=1 flip=1",
               "op=convT in=13 c=8 o=5 k=4 stride=3 pad=1 outpad=2"});
  check_named("weight_grad_depthwise", Direction::bwd_w,
              {"n=2 in=33x31 c=32 o=32 k=3x3 pad=1 g=32", "in=1500 c=7 o=14 k=5 g=7 stride=2 pad=2",
               "in=2100 c=1 o=1 k=37 dil=2 pad=3", "in=600 c=1 o=1 k=31 flip=1 pad=30"});
  check_named("weight_grad_dual", Direction::bwd_w,
              {"op=convT in=97 c=1 o=1 k=64 stride=16", "op=convT in=40 c=6 o=10 k=7 stride=4 pad=2 outpad=1",
               "op=convT in=7x6 c=16 o=16 k=3x3 stride=2 g=16"});
}

// weight_grad_gemm's ways of reading its operands, on every kernel path this CPU runs: A in
// place (one tap, and across two taps), copied (partial panels, the 4- and 8-row tiles, panels
// over more taps, 16-bit data), and dy in place (O/g a multiple of the tile's nr: 32 or 16),
// groups included; against the oracle, and bit for bit on small integers.
TEST(CpuGradients, WeightGradGemmEveryReadOnEveryPath) {
  Rng rng = test_rng();
  int paths = 0;
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx}) {
    if (!gemm_isa_supported(isa)) continue;
    ++paths;
    for (const char* s : {"n=2 in=12x11 c=40 o=64 k=3x3 pad=1", "n=2 in=7x9 c=46 o=32",
                          "n=3 in=9x8 c=20 o=96 k=3x3 pad=1 g=2", "n=1 in=10x10 c=128 o=128 k=3x3 pad=1 stride=2 g=2",
                          "n=2 in=6x7 c=50 o=16 k=2x3 pad=1:0 dil=2x1"})
      for (DType t : kAllDtypes) {
        Problem p = with_dir(parse_problem(s), Direction::bwd_w);
        p.dtype = t;
        SCOPED_TRACE(std::string(isa_name(isa)) + " on " + to_string(p));
        ExecOptions opt;
        opt.algorithm = "weight_grad_gemm";
        opt.isa = isa;
        const GradCase gc = make_grad_case(p, rng);
        Tensor out;
        ASSERT_TRUE(run_grad(gc, opt, &out));
        ASSERT_TRUE(matches_oracle(out, grad_oracle(gc)));
        const GradCase gi = make_grad_case(p, rng, Fill::small_int, 2);
        ASSERT_TRUE(run_grad(gi, opt, &out));
        ASSERT_TRUE(bit_equal(out, grad_reference(gi)));
      }
  }
  EXPECT_GE(paths, 1);
}

// The weight gradient's bits do not depend on threads, budget (which changes the wave of
// blocks and the columns per pass) or the column split.
TEST(CpuGradients, WeightGradBitwiseAcrossThreadsBudgetsAndSplits) {
  Rng rng = test_rng();
  // (Depthwise: channels in whole vectors and a partial one, a channel multiplier, a stride.)
  for (const char* s : {"n=2 in=40x40 c=24 o=20 k=3x3 pad=1", "in=5000 c=8 o=8 k=5 g=8 pad=2",
                        "n=3 in=30x20 c=12 o=9 k=3x3 g=3 stride=2", "op=convT in=3000 c=1 o=1 k=64 stride=16",
                        "n=2 in=33x37 c=100 o=100 k=3x3 pad=1 g=100", "n=2 in=30x21 c=40 o=80 k=3x3 g=40 pad=1 stride=2"})
    for (DType t : {DType::f32, DType::bf16, DType::f64}) {
      Problem p = with_dir(parse_problem(s), Direction::bwd_w);
      p.dtype = t;
      const GradCase gc = make_grad_case(p, rng);
      ExecOptions base;
      base.threads = 1;
      base.exact_threads = true;  // the threaded paths, even on small problems
      Tensor ref;
      std::string algo;
      ASSERT_TRUE(run_grad(gc, base, &ref, &algo));
      ASSERT_TRUE(matches_oracle(ref, grad_oracle(gc))) << to_string(p);
      for (int threads : {2, 3, 5})
        for (int64_t budget : {int64_t(-1), int64_t(64) << 10, int64_t(200) << 10}) {
          ExecOptions opt;
          opt.threads = threads;
      opt.exact_threads = true;
          opt.exact_threads = true;
          opt.budget = budget;
          opt.algorithm = algo;
          Tensor out;
          bool ran = false;
          try {
            ran = run_grad(gc, opt, &out);
          } catch (const Error& e) {
            ASSERT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
            continue;  // a budget below the smallest tile: the clear error, checked below
          }
          ASSERT_TRUE(ran);
          ASSERT_TRUE(bit_equal(out, ref)) << algo << " threads=" << threads << " budget=" << budget << " on "
                                           << to_string(p);
        }
      // A hand-made plan with more column chunks: same bits.
      if (algo == "weight_grad_gemm") {
        ExecOptions opt;
        opt.threads = 2;
        opt.exact_threads = true;
        const Plan plan = with_parameter(make_plan(p, opt), "column_chunks", 3);
        Tensor out = Tensor::empty(t, ref.shape());
        execute(plan, gc.c.x, out, gc.dy, opt);
        ASSERT_TRUE(bit_equal(out, ref)) << "column_chunks=3 on " << to_string(p);
      }
      if (algo == "weight_grad_depthwise")
        for (int chunks : {2, 3, 7}) {
          ExecOptions opt;
          opt.threads = 2;
          opt.exact_threads = true;
          const Plan plan = with_parameter(make_plan(p, opt), "channel_chunks", chunks);
          Tensor out = Tensor::empty(t, ref.shape());
          execute(plan, gc.c.x, out, gc.dy, opt);
          ASSERT_TRUE(bit_equal(out, ref)) << "channel_chunks=" << chunks << " on " << to_string(p);
        }
    }
}

// ---- the planner's choices and the public entry points ----------------------------------

TEST(CpuGradients, PlannerChoosesAndMatchesOracle) {
  Rng rng = test_rng();
  const std::pair<const char*, const char*> cases[] = {
      {"dir=bwd_d n=2 in=12x12 c=16 o=24 k=3x3 pad=1 stride=2", "data_grad"},
      {"dir=bwd_d in=300 c=4 o=4 k=5 g=4", "data_grad"},
      {"dir=bwd_w n=2 in=12x12 c=16 o=24 k=3x3 pad=1 stride=2", "weight_grad_gemm"},
      {"dir=bwd_w in=300 c=4 o=4 k=5 g=4", "weight_grad_depthwise"},
      {"dir=bwd_w op=convT in=300 c=6 o=4 k=8 stride=4", "weight_grad_dual"},
  };
  for (const auto& [s, algo] : cases) {
    const GradCase gc = make_grad_case(parse_problem(s), rng);
    Tensor out;
    std::string chosen;
    ASSERT_TRUE(run_grad(gc, {}, &out, &chosen)) << s;
    EXPECT_EQ(chosen, algo) << s;
    EXPECT_TRUE(matches_oracle(out, grad_oracle(gc))) << s;
    const Plan plan = make_plan(gc.c.problem);
    EXPECT_NE(plan.to_text().find("direction:  " + std::string(direction_name(gc.c.problem.dir))),
              std::string::npos);
  }
  // The input gradient names the forward algorithm it runs.
  const Plan plan = make_plan(parse_problem("dir=bwd_d n=2 in=12x12 c=16 o=24 k=3x3 pad=1 stride=2"));
  EXPECT_NE(plan.to_text().find("(via polyphase_gemm)"), std::string::npos) << plan.to_text();
}

TEST(CpuGradients, PublicEntryPoints) {
  Rng rng = test_rng();
  // conv_general, conv2d and conv_transpose1d gradients against the oracle.
  {
    const Problem p = parse_problem("n=2 in=10x9 c=6 o=4 k=3x2 stride=2x1 pad=1:0x2 dil=1x2 idil=1x2 g=2 flip=1");
    GradCase gd = make_grad_case(with_dir(p, Direction::bwd_d), rng);
    Tensor dx = conv_general_input(x_shape(gd.c.shapes), gd.c.w, gd.dy, conv_general_options(p));
    EXPECT_TRUE(matches_oracle(dx, grad_oracle(gd)));
    GradCase gw = make_grad_case(with_dir(p, Direction::bwd_w), rng);
    Tensor dw = conv_general_weight(gw.c.x, w_shape(gw.c.shapes), gw.dy, conv_general_options(p));
    EXPECT_TRUE(matches_oracle(dw, grad_oracle(gw)));
  }
  {
    const Problem p = parse_problem("n=2 in=8x8 c=4 o=6 k=3x3 stride=2 pad=1");
    ConvOptions o;
    o.stride = {2};
    o.padding = {1};
    GradCase gd = make_grad_case(with_dir(p, Direction::bwd_d), rng);
    EXPECT_TRUE(matches_oracle(conv_input(2, x_shape(gd.c.shapes), gd.c.w, gd.dy, o), grad_oracle(gd)));
    GradCase gw = make_grad_case(with_dir(p, Direction::bwd_w), rng);
    EXPECT_TRUE(matches_oracle(conv_weight(2, gw.c.x, w_shape(gw.c.shapes), gw.dy, o), grad_oracle(gw)));
  }
  {
    const Problem p = parse_problem("op=convT n=2 in=11 c=3 o=5 k=4 stride=3 pad=1 outpad=2");
    GradCase gd = make_grad_case(with_dir(p, Direction::bwd_d), rng);
    EXPECT_TRUE(matches_oracle(
        conv_transpose_input(1, x_shape(gd.c.shapes), gd.c.w, gd.dy, conv_transpose_options(p)), grad_oracle(gd)));
    GradCase gw = make_grad_case(with_dir(p, Direction::bwd_w), rng);
    EXPECT_TRUE(matches_oracle(
        conv_transpose_weight(1, gw.c.x, w_shape(gw.c.shapes), gw.dy, conv_transpose_options(p)), grad_oracle(gw)));
  }
}

// Strided views of every tensor, in both directions: the same bits as dense ones.
TEST(CpuGradients, StridedViews) {
  Rng rng = test_rng();
  for (Direction d : {Direction::bwd_d, Direction::bwd_w}) {
    const GradCase gc = make_grad_case(with_dir(parse_problem("n=2 in=9x7 c=6 o=5 k=3x3 pad=1 stride=2"), d), rng);
    Tensor dense;
    ASSERT_TRUE(run_grad(gc, {}, &dense));
    const Plan plan = make_plan(gc.c.problem);
    StridedCopy xs = strided_copy(gc.c.x), ws = strided_copy(gc.c.w), ys = strided_copy(gc.dy);
    StridedCopy out = strided_copy(dense);
    fill(out.view, std::nan(""));
    if (d == Direction::bwd_d) execute(plan, out.view, ws.view, ys.view);
    else execute(plan, xs.view, out.view, ys.view);
    EXPECT_TRUE(bit_equal(out.view, dense)) << direction_name(d);
  }
}

TEST(CpuGradients, Errors) {
  Rng rng = test_rng();
  const Problem p = parse_problem("n=2 in=8x8 c=4 o=6 k=3x3 pad=1");
  const GradCase gc = make_grad_case(with_dir(p, Direction::bwd_d), rng);
  ConvGeneralOptions opt = conv_general_options(p);
  // A cotangent of the wrong shape or dtype: invalid, naming the cotangent and the problem.
  Tensor bad = Tensor::zeros(DType::f32, {2, 8, 7, 6});
  EXPECT_TRUE(throws_error([&] { conv_general_input(x_shape(gc.c.shapes), gc.c.w, bad, opt); }, ErrorKind::invalid,
                           {"cotangent dy", "dir=bwd_d", "problem: "}));
  Tensor bad_dtype = Tensor::zeros(DType::f64, y_shape(gc.c.shapes));
  EXPECT_TRUE(throws_error([&] { conv_general_weight(gc.c.x, w_shape(gc.c.shapes), bad_dtype, opt); },
                           ErrorKind::invalid, {"cotangent dy", "dtype", "dir=bwd_w"}));
  // A weight shape that disagrees with the input's channels.
  EXPECT_TRUE(throws_error([&] { conv_general_weight(gc.c.x, {6, 3, 3, 3}, gc.dy, opt); }, ErrorKind::invalid,
                           {"weight channels"}));
  // Too small a budget: out of memory before anything runs, as for the forward.
  ExecOptions tiny;
  tiny.budget = 64;
  EXPECT_TRUE(throws_error([&] { make_plan(with_dir(parse_problem("n=2 in=64x64 c=64 o=64 k=3x3 pad=1"), Direction::bwd_w), tiny); },
                           ErrorKind::out_of_memory, {"budget"}));
  // run() computes the forward only; the gradients have their own entry points.
  EXPECT_TRUE(throws_error([&] { run(gc.c.problem, gc.c.x, gc.c.w); }, ErrorKind::invalid, {"dir=fwd"}));
}

// The weight gradient's error does not grow with the number of terms: 2^24 + 3 terms of one
// sign (the worst case for a running float32 sum, whose error would grow like terms·u) in
// float32, against the float64 sum; the blocked, compensated sum stays within a few units of
// one block's rounding. Both weight-gradient algorithms, 1 and 2 threads.
TEST(CpuGradients, WeightGradLongReductionError) {
  const int64_t terms = (int64_t(1) << 24) + 3;
  Problem p = parse_problem("in=" + std::to_string(terms) + " c=1 o=1 dir=bwd_w");
  const Geometry g = lower(p);
  Tensor x = Tensor::empty(DType::f32, {1, terms, 1}), dy = Tensor::empty(DType::f32, {1, terms, 1});
  double exact = 0.0, abssum = 0.0;
  uint64_t s = 12345;
  for (int64_t i = 0; i < terms; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float a = 0.5f + float(s >> 40) / float(1 << 24), b = 1.0f + float((s >> 20) & 1023) / 1024.0f;
    x.ptr<float>()[i] = a;
    dy.ptr<float>()[i] = b;
    exact += double(a) * double(b);
    abssum += std::fabs(double(a) * double(b));
  }
  (void)g;
  for (const char* algo : {"weight_grad_depthwise", "weight_grad_gemm"})
    for (int threads : {1, 2}) {
      ExecOptions opt;
      opt.algorithm = algo;
      opt.threads = threads;
      Tensor dw = Tensor::empty(DType::f32, {1, 1, 1});
      execute(make_plan(p, opt), x, dw, dy, opt);
      const double err = std::fabs(double(dw.ptr<float>()[0]) - exact);
      // float32's final rounding (2^-24 relative) plus a small multiple of it for the blocks.
      EXPECT_LE(err, std::ldexp(1.0, -24) * std::fabs(exact) + std::ldexp(1.0, -22) * abssum)
          << algo << " threads=" << threads << ": got " << dw.ptr<float>()[0] << ", exact " << exact;
    }
}
