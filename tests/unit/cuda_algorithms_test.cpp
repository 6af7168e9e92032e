// Every CUDA algorithm against the float64 oracle on fresh random problems it accepts, at
// tile boundaries and prime sizes, in every dtype (results copied back and compared on the
// host); small-integer inputs compared bit for bit; and a tiny budget against a large one,
// bit for bit. Skipped (GTEST_SKIP) where no CUDA device is visible.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

bool run_cuda_default(const Case& c, const std::string& algo, Tensor* y) {
  return run_cuda(c, algo, y);
}

void check_algorithm_on_draws(const std::string& algo, DrawLimits lim, int draws, int min_accepted) {
  convnd::test::check_algorithm_on_draws(run_cuda_default, algo, lim, draws, min_accepted);
}

void check_list(const std::string& algo, std::initializer_list<const char*> problems) {
  check_algorithm_on_list(run_cuda_default, algo, problems);
}

// Random depthwise problems (C = O = groups) around the kernels' vector widths (4 channels
// for f32, 8 (general) or 4 (3x3 window) for f16 / bf16, 2 for f64) and their 4 outputs or rows
// per thread.
Problem random_depthwise(Rng& rng, DType t) {
  for (;;) {
    DrawLimits lim;
    lim.conv_transpose = false;
    lim.max_input_dilation = 1;
    lim.max_groups = 1;
    lim.max_channels_per_group = 1;
    lim.max_extent = 11;
    lim.max_kernel = 5;
    lim.max_macs = 1e9;
    lim.dtypes = {t};
    Problem p = random_problem(rng, lim);
    p.groups = p.c = p.o = rng.pick(std::vector<int64_t>{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 37, 64});
    Geometry g;
    if (validate(p, &g).ok() && g.macs() <= 3e5) return p;
  }
}

// Runs c with the named algorithm and parameters of its plan's configuration replaced (a
// hand-made plan: with_parameter; these parameters never change bits).
Tensor run_with_tiles(const Case& c, const std::string& algo,
                      const std::vector<std::pair<std::string, int64_t>>& tiles) {
  const ExecOptions opt = cuda_options(algo);
  Plan plan = make_plan(c.problem, opt);
  for (const auto& [tile, value] : tiles) plan = with_parameter(plan, tile, value);
  Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
  execute(plan, c.x, c.w, y, opt);
  return y;
}

Tensor run_with_tile(const Case& c, const std::string& algo, const std::string& tile, int64_t value) {
  return run_with_tiles(c, algo, {{tile, value}});
}

// The depthwise 3x3 window kernels besides the planner's choice (the ring where 16-byte channel
// vectors fit, else the window kernel): each at 4, 8 and 16 rows per thread (the ring's row
// strips of up to 4·rows = 16, 32 or 64 rows). kernel: 1 window, 2 ring (DepthwiseKernel).
const std::vector<std::vector<std::pair<std::string, int64_t>>> kDepthwiseWindowVariants = {
    {{"kernel", 1}, {"rows_per_thread", 8}},  {{"kernel", 1}, {"rows_per_thread", 4}},
    {{"kernel", 1}, {"rows_per_thread", 16}}, {{"kernel", 2}, {"rows_per_thread", 8}},
    {{"kernel", 2}, {"rows_per_thread", 4}},  {{"kernel", 2}, {"rows_per_thread", 16}}};

std::string tiles_string(const std::vector<std::pair<std::string, int64_t>>& tiles) {
  std::string s;
  for (const auto& [n, v] : tiles) s += " " + n + "=" + std::to_string(v);
  return s;
}

// One parameter of a plan's configuration (a test failure when it has none of that name).
int64_t parameter(const Plan& plan, const std::string& name) {
  for (const auto& [n, v] : plan.parameters())
    if (n == name) return v;
  ADD_FAILURE() << "no parameter " << name << " in\n" << plan.to_text();
  return -1;
}

}  // namespace

TEST(CudaAlgorithms, DepthwiseDirectRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (int i = 0; i < 160; ++i) {
    const Problem p = random_depthwise(rng, kAllDtypes[i % 4]);
    Case c = make_case(p, rng);
    Tensor y;
    ASSERT_TRUE(run_cuda(c, "depthwise_direct__cuda", &y)) << to_string(p);
    ASSERT_TRUE(matches_oracle(y, oracle(c))) << to_string(p);
  }
}

TEST(CudaAlgorithms, DepthwiseDirectTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Output widths 3, 4, 5, 8, 9 around the 4 outputs per thread; channels around every vector
  // width; the 3-tap window and the general path (stride, dilation, 5 taps, flip, 3-D).
  check_list(
      "depthwise_direct__cuda",
      {"n=2 in=13x11 c=37 o=37 k=3x3 pad=1 g=37", "n=2 in=6x4 c=8 o=8 k=3x3 pad=1 g=8",
       "in=5x5 c=16 o=16 k=3x3 g=16", "in=3x7 c=9 o=9 k=3x3 pad=1 g=9", "in=4x8 c=24 o=24 k=3x3 pad=1 g=24",
       "in=2x9 c=7 o=7 k=1x3 pad=0:1 g=7", "n=3 in=15x17 c=4 o=4 k=3x3 pad=1 g=4 stride=2",
       "in=9x9 c=64 o=64 k=5x5 stride=2 pad=2 g=64 flip=1",
       "in=4x5x6 c=17 o=17 k=3x1x2 dil=2x1x1 pad=1:0 g=17", "in=33 c=8 o=8 k=7 pad=3 g=8",
       "in=12 c=16 o=16 k=3 dil=2 pad=-1:2 g=16", "in=1x1 c=5 o=5 k=1x1 g=5"});
}

TEST(CudaAlgorithms, DepthwiseWindowTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // The 3x3 window kernel: output rows around its 4- and 8-row groups (3, 4, 5, 8, 9, 15, 16, 17),
  // channels around its vectors (4 for f16 / bf16 / f32, 2 for f64) and 128-byte channel tiles,
  // columns around the 256-thread block, padding on one side, none, more than the window and
  // negative, a 3-D problem with one tap (and a stride) on axis 0, flip.
  check_list(
      "depthwise_direct__cuda",
      {"n=2 in=3x7 c=8 o=8 k=3x3 pad=1 g=8", "in=4x5 c=4 o=4 k=3x3 pad=1 g=4",
       "in=5x3 c=5 o=5 k=3x3 pad=1 g=5", "n=3 in=10x6 c=12 o=12 k=3x3 g=12", "in=9x9 c=3 o=3 k=3x3 pad=1 g=3",
       "in=15x4 c=96 o=96 k=3x3 pad=1 g=96 flip=1", "in=16x9 c=64 o=64 k=3x3 pad=1:0 g=64",
       "n=2 in=17x33 c=40 o=40 k=3x3 pad=2 g=40", "in=19x260 c=2 o=2 k=3x3 pad=1 g=2",
       "in=18x5 c=24 o=24 k=3x3 pad=-1:1x1 g=24", "n=2 in=3x12x7 c=16 o=16 k=1x3x3 stride=2x1x1 pad=1 g=16"});
}

TEST(CudaAlgorithms, DepthwiseWindowVariantsTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // The same boundaries for both window kernels at 4, 8 and 16 rows, plus rows around 16
  // and a block that spans several channel tiles (few columns), every dtype, against the
  // oracle. For the ring: channels that end inside a 64- or 128-byte chunk (72, 40, 264) or
  // allow no 16-byte vector (37, 5: the window kernel's one-channel form instead), prime widths over
  // several balanced column tiles (67, 131), prime heights over several balanced row strips
  // (37, 41), padding on one side only, more padding than the window (whole rows and columns
  // of zeros), and a 3-D problem whose first P0 plane falls in the padding.
  Rng rng = test_rng();
  for (const char* s :
       {"n=2 in=3x7 c=8 o=8 k=3x3 pad=1 g=8", "in=5x3 c=5 o=5 k=3x3 pad=1 g=5",
        "n=3 in=10x6 c=12 o=12 k=3x3 g=12", "in=15x4 c=96 o=96 k=3x3 pad=1 g=96 flip=1",
        "in=16x9 c=64 o=64 k=3x3 pad=1:0 g=64", "n=2 in=17x33 c=40 o=40 k=3x3 pad=2 g=40",
        "in=19x260 c=2 o=2 k=3x3 pad=1 g=2", "in=18x5 c=24 o=24 k=3x3 pad=-1:1x1 g=24",
        "n=2 in=3x12x7 c=16 o=16 k=1x3x3 stride=2x1x1 pad=1 g=16", "in=33x1 c=8 o=8 k=3x3 pad=1 g=8",
        "in=17x2 c=264 o=264 k=3x3 pad=1 g=264", "n=3 in=37x67 c=72 o=72 k=3x3 pad=1 g=72",
        "in=41x131 c=24 o=24 k=3x3 pad=1:2x2:0 g=24", "n=2 in=5x9 c=8 o=8 k=3x3 pad=3 g=8",
        "in=23x29 c=136 o=136 k=3x3 pad=0:1x1:0 g=136 flip=1"})
    for (DType t : kAllDtypes) {
      Problem p = parse_problem(s);
      p.dtype = t;
      Case c = make_case(p, rng);
      const Oracle want = oracle(c);
      for (const auto& tiles : kDepthwiseWindowVariants) {
        const Tensor y = run_with_tiles(c, "depthwise_direct__cuda", tiles);
        ASSERT_TRUE(matches_oracle(y, want)) << to_string(p) << tiles_string(tiles);
      }
    }
}

TEST(CudaAlgorithms, DepthwiseKernelsAgreeBitwise) {
  CONVND_SKIP_WITHOUT_CUDA();
  // The planner's window kernel at 8 and 4 rows per thread, both window kernels at 4, 8 and 16
  // rows and the general kernel (kernel 0) sum every output's taps in the same order: the same
  // bits.
  Rng rng = test_rng();
  for (const char* s :
       {"n=2 in=21x19 c=384 o=384 k=3x3 pad=1 g=384", "n=1 in=17x9 c=37 o=37 k=3x3 pad=1 g=37",
        "n=3 in=37x67 c=72 o=72 k=3x3 pad=1 g=72", "n=2 in=3x11x7 c=24 o=24 k=1x3x3 stride=2x1x1 pad=1 g=24"})
    for (DType t : kAllDtypes) {
      Problem p = parse_problem(s);
      p.dtype = t;
      Case c = make_case(p, rng);
      const Tensor a = run_with_tile(c, "depthwise_direct__cuda", "rows_per_thread", 8);
      const Tensor b = run_with_tile(c, "depthwise_direct__cuda", "rows_per_thread", 4);
      const Tensor g = run_with_tile(c, "depthwise_direct__cuda", "kernel", 0);
      ASSERT_TRUE(matches_oracle(a, oracle(c))) << to_string(p);
      ASSERT_TRUE(bit_equal(a, b)) << to_string(p);
      ASSERT_TRUE(bit_equal(a, g)) << to_string(p);
      for (const auto& tiles : kDepthwiseWindowVariants)
        ASSERT_TRUE(bit_equal(a, run_with_tiles(c, "depthwise_direct__cuda", tiles)))
            << to_string(p) << tiles_string(tiles);
    }
}

TEST(CudaAlgorithms, DepthwisePlansSayWhichVectorsRun) {
  CONVND_SKIP_WITHOUT_CUDA();
  // The planner's configuration and every hand-made one name a channel vector that divides C
  // (else one channel a thread), and the general kernel's register window only where it applies
  // (a 3-tap, stride-1 last axis, vectors, elements narrower than 8 bytes).
  for (const char* s : {"in=5x3 c=5 o=5 k=3x3 pad=1 g=5", "in=15x4 c=12 o=12 k=3x3 pad=1 g=12",
                        "in=16x9 c=64 o=64 k=3x3 pad=1 g=64", "in=9x9 c=64 o=64 k=5x5 stride=2 pad=2 g=64",
                        "in=12 c=16 o=16 k=3 pad=1 g=16", "in=4x5x6 c=17 o=17 k=3x1x2 pad=1 g=17"})
    for (DType t : kAllDtypes) {
      Problem p = parse_problem(s);
      p.dtype = t;
      const Plan planned = make_plan(p, cuda_options("depthwise_direct__cuda"));
      std::vector<Plan> plans = {planned, with_parameter(planned, "kernel", 0)};
      if (parameter(planned, "rows_per_thread") > 0)
        for (int64_t k : {1, 2}) plans.push_back(with_parameter(planned, "kernel", k));
      for (const Plan& plan : plans) {
        const int64_t vec = parameter(plan, "channels_per_thread");
        EXPECT_TRUE(vec == 1 || p.c % vec == 0) << to_string(p) << "\n" << plan.to_text();
        const Geometry& g = plan.geometry;
        const bool window_fits = g.k[2] == 3 && g.stride[2] == 1 && g.kdil[2] == 1 && dtype_size(t) < 8;
        const bool general = parameter(plan, "kernel") == 0;
        EXPECT_EQ(parameter(plan, "input_window"), general && vec > 1 && window_fits) << to_string(p) << "\n"
                                                                                      << plan.to_text();
      }
    }
}

TEST(CudaAlgorithms, ImplicitGemmRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.max_input_dilation = 1;
  lim.max_channels_per_group = 40;
  lim.max_extent = 10;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("implicit_gemm__cuda", lim, 160, 150);
}

TEST(CudaAlgorithms, ImplicitGemmTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Rows M around the 128-row tile (127, 128, 129, 256, primes), output channels around the 64 and
  // 128 tiles, channels per group around the 8-channel (4 for f32) vectors and the 32-wide K
  // step, K tails, groups, strides, dilation, negative padding, flip, 1-D and 3-D.
  check_list("implicit_gemm__cuda",
             {"n=1 in=127 c=8 o=64 k=3 pad=1", "n=1 in=128 c=32 o=128 k=1", "n=1 in=129 c=33 o=129 k=3 pad=1",
              "n=2 in=16x8 c=64 o=63 k=3x3 pad=1", "n=1 in=11x13 c=32 o=65 k=3x3 pad=1",
              "n=3 in=7x7 c=128 o=127 k=3x3 pad=1", "n=1 in=8x16 c=40 o=65 k=3x3 pad=1",
              "n=2 in=9x9 c=3 o=17 k=3x3 pad=1", "in=31 c=7 o=13 k=5 dil=3 pad=-1:4 flip=1",
              "n=1 in=17x15 c=16 o=33 k=3x3 stride=2 pad=0:2x1", "in=5x6x7 c=8 o=6 k=2x3x2 pad=1 flip=1",
              "n=3 in=11x13 c=32 o=32 k=3x3 g=4 stride=1x2", "n=3 in=11x13 c=12 o=12 k=3x3 g=4 stride=1x2",
              "n=2 in=8x8x8 c=16 o=16 k=3x3x3 pad=1", "n=2 in=12x12 c=24 o=40 k=1x1 stride=2",
              "in=257 c=9 o=131 k=2", "n=2 in=37 c=24 o=256 k=4 stride=3 pad=2",
              "in=23 c=96 o=8 k=7 dil=2 pad=6", "in=10 c=8 o=8 k=3 g=1 pad=-2"});
}

TEST(CudaAlgorithms, ImplicitGemmTileWidthsAgreeBitwise) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  // Channels per group that allow 16-byte loads (the tensor-core tiles' other widths need them).
  for (const char* s : {"n=2 in=15x9 c=64 o=200 k=3x3 pad=1", "n=1 in=130 c=24 o=129 k=3 pad=1 g=1",
                        "n=3 in=9x11 c=40 o=300 k=3x3 pad=1 g=1", "n=2 in=7x7 c=32 o=512 k=3x3 pad=1 g=2"})
    for (DType t : {DType::f16, DType::bf16}) {
      Problem p = parse_problem(s);
      p.dtype = t;
      Case c = make_case(p, rng);
      const Tensor a = run_with_tile(c, "implicit_gemm__cuda", "block_n", 64);
      const Tensor b = run_with_tile(c, "implicit_gemm__cuda", "block_n", 128);
      const Tensor d = run_with_tile(c, "implicit_gemm__cuda", "block_n", 256);  // 8 warps, one block per SM
      ASSERT_TRUE(matches_oracle(a, oracle(c))) << to_string(p);
      ASSERT_TRUE(bit_equal(a, b)) << to_string(p);
      ASSERT_TRUE(bit_equal(a, d)) << to_string(p) << " (block_n=256)";
    }
}

TEST(CudaAlgorithms, ImplicitGemmUnalignedChannelsRunTheNarrowTile) {
  CONVND_SKIP_WITHOUT_CUDA();
  // C/g not a multiple of 8: the tensor-core kernels load element by element, which only their
  // 64-wide tile does; the plan says so and refuses the other widths.
  Rng rng = test_rng();
  for (const char* s : {"n=1 in=130 c=17 o=129 k=3 pad=1", "n=2 in=9x9 c=12 o=96 k=3x3 pad=1 g=2"})
    for (DType t : {DType::f16, DType::bf16}) {
      Problem p = parse_problem(s);
      p.dtype = t;
      const Plan plan = make_plan(p, cuda_options("implicit_gemm__cuda"));
      EXPECT_EQ(parameter(plan, "vector_loads"), 0) << plan.to_text();
      EXPECT_EQ(parameter(plan, "block_n"), 64) << plan.to_text();
      EXPECT_TRUE(
          throws_error([&] { with_parameter(plan, "block_n", 128); }, ErrorKind::invalid, {"block_n"}))
          << to_string(p);
      Case c = make_case(p, rng);
      Tensor y;
      ASSERT_TRUE(run_cuda(c, "implicit_gemm__cuda", &y));
      ASSERT_TRUE(matches_oracle(y, oracle(c))) << to_string(p);
    }
}

// grouped_gemm__cuda: several groups of 8, 16 or 32 output channels per block. Each case runs
// against the oracle (random reals), bit for bit against it on small integers, and bit for
// bit against implicit_gemm__cuda (one group per block: the same MMAs in the same order).
void check_grouped_gemm(const Problem& p, Rng& rng) {
  Case c = make_case(p, rng);
  Tensor y, ref;
  ASSERT_TRUE(run_cuda(c, "grouped_gemm__cuda", &y)) << "grouped_gemm__cuda declined " << to_string(p);
  ASSERT_TRUE(matches_oracle(y, oracle(c))) << to_string(p);
  ASSERT_TRUE(run_cuda(c, "implicit_gemm__cuda", &ref));
  ASSERT_TRUE(bit_equal(y, ref)) << "against implicit_gemm__cuda: " << to_string(p);
  Case ci = make_case(p, rng, Fill::small_int, 2);
  ASSERT_TRUE(run_cuda(ci, "grouped_gemm__cuda", &y));
  ASSERT_TRUE(bit_equal(y, reference_output(ci))) << "small integers: " << to_string(p);
}

TEST(CudaAlgorithms, GroupedGemmTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Rows around the 64-row tile (63, 64, 65, 128, primes), group counts that leave the last
  // block partly empty (3 or 9 groups of 8: blocks of 8), every O/g (8, 16, 32: 8, 4, 2 groups a
  // block), C/g of 8 to 40 (K tails past the 32-wide step), strides, dilation, negative padding,
  // flip, 1-D and 3-D, batches.
  Rng rng = test_rng();
  for (const char* s :
       {"n=1 in=63 c=64 o=64 k=3 pad=1 g=8", "n=1 in=8x8 c=128 o=64 k=3x3 pad=1 g=8", "n=1 in=65 c=24 o=24 k=1 g=3",
        "n=2 in=11x13 c=72 o=72 k=3x3 pad=1 g=9", "n=3 in=7x7 c=256 o=256 k=3x3 pad=1 g=32",
        "n=1 in=9x7 c=64 o=64 k=3x3 stride=2 pad=1 g=4", "n=2 in=10x10 c=96 o=96 k=3x3 pad=2 dil=2 g=3",
        "n=1 in=12x9 c=48 o=32 k=3x2 pad=-1:2x1 g=2 flip=1", "n=1 in=5x6x7 c=48 o=48 k=3x3x3 pad=1 g=6",
        "n=2 in=17 c=128 o=128 k=5 stride=3 pad=2 g=4", "n=1 in=127 c=160 o=80 k=3 pad=1 g=5",
        "n=1 in=13x11 c=64 o=128 k=3x3 pad=1 g=8", "n=4 in=6x6 c=256 o=512 k=1x1 g=16"})
    for (DType t : {DType::bf16, DType::f16}) {
      Problem p = parse_problem(s);
      p.dtype = t;
      check_grouped_gemm(p, rng);
    }
}

TEST(CudaAlgorithms, GroupedGemmRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  for (int i = 0; i < 40; ++i) {
    const int64_t og = rng.pick(std::vector<int64_t>{8, 16, 32}), cg = 8 * rng.integer(1, 5);
    const int64_t groups = rng.integer(2, 12), dims = rng.integer(1, 3);
    std::string in, k, stride, dil, pad;
    for (int64_t d = 0; d < dims; ++d) {
      const std::string sep = d ? "x" : "";
      const int64_t kk = rng.integer(1, 3), st = rng.integer(1, 2), di = rng.integer(1, 2);
      in += sep + std::to_string(rng.integer(dims == 1 ? 20 : 3, dims == 1 ? 150 : dims == 2 ? 14 : 6) + (kk - 1) * di);
      k += sep + std::to_string(kk);
      stride += sep + std::to_string(st);
      dil += sep + std::to_string(di);
      pad += sep + std::to_string(rng.integer(0, kk - 1)) + ":" + std::to_string(rng.integer(-1, kk - 1));
    }
    Problem p = parse_problem("n=" + std::to_string(rng.integer(1, 3)) + " in=" + in + " c=" + std::to_string(cg * groups) +
                              " o=" + std::to_string(og * groups) + " k=" + k + " stride=" + stride + " dil=" + dil +
                              " pad=" + pad + " g=" + std::to_string(groups) + " flip=" + std::to_string(rng.integer(0, 1)));
    p.dtype = i % 2 ? DType::f16 : DType::bf16;
    check_grouped_gemm(p, rng);
  }
}

TEST(CudaAlgorithms, GroupedGemmDeclinesWhatItDoesNotCover) {
  CONVND_SKIP_WITHOUT_CUDA();
  for (const char* s : {"n=1 in=8x8 c=64 o=64 k=3x3 g=8",               // f32
                        "n=1 in=8x8 c=64 o=128 k=3x3 g=2 dtype=bf16",   // O/g = 64
                        "n=1 in=8x8 c=32 o=64 k=3x3 dtype=bf16",         // one group
                        "n=1 in=8x8 c=48 o=64 k=3x3 g=8 dtype=bf16",     // C/g = 6
                        "n=1 in=8x8 c=64 o=96 k=3x3 g=8 dtype=bf16",     // O/g = 12
                        "op=convT in=8x8 c=64 o=64 k=2x2 stride=2 g=8 dtype=bf16"})
    EXPECT_TRUE(throws_error([&] { make_plan(parse_problem(s), cuda_options("grouped_gemm__cuda")); },
                             ErrorKind::unsupported, {"grouped_gemm__cuda"}))
        << s;
}

#ifdef CONVND_WITH_CUDA
// 16-byte loads need 16-byte aligned tensors: device tensors that are not run the implicit
// GEMM's element-wise loader, with the same bits.
TEST(CudaAlgorithms, GroupedGemmUnalignedDeviceTensorsKeepTheBits) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  const Problem p = parse_problem("n=2 in=9x10 c=64 o=64 k=3x3 pad=1 g=8 dtype=bf16");
  const Case c = make_case(p, rng);
  Tensor aligned;
  ASSERT_TRUE(run_cuda(c, "grouped_gemm__cuda", &aligned));
  const ExecOptions opt = cuda_options("grouped_gemm__cuda");
  const Tensor y = run_on_unaligned_device_tensors(c, make_plan(p, opt), opt);
  ASSERT_TRUE(bit_equal(y, aligned)) << to_string(p);
}
#endif

TEST(CudaAlgorithms, PolyphaseGemmRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.max_channels_per_group = 24;
  lim.max_extent = 9;
  lim.max_macs = 3e5;
  check_algorithm_on_draws("polyphase_gemm__cuda", lim, 160, 60);
}

TEST(CudaAlgorithms, PolyphaseGemmCases) {
  CONVND_SKIP_WITHOUT_CUDA();
  check_list(
      "polyphase_gemm__cuda",
      {"op=convT n=2 in=9x7 c=16 o=8 k=4x4 stride=2 pad=1", "op=convT in=21 c=8 o=4 k=16 stride=8 pad=4",
       "op=convT in=5x4x3 c=4 o=6 k=3x2x3 stride=2x3x1 dil=1x2x1 outpad=1x0x0 g=2",
       "op=convT n=2 in=30 c=64 o=32 k=16 stride=8", "op=convT n=1 in=16x16 c=64 o=129 k=4x4 stride=2 pad=1",
       "in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1",
       "in=6 c=3 o=5 k=2 stride=3 idil=4 pad=-3:2", "in=17 c=2 o=3 k=4 dil=2 idil=3 pad=2:1",
       "op=convT in=3 c=8 o=8 k=2 stride=5"});
}

TEST(CudaAlgorithms, PointwiseGemmRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.max_kernel = 1;
  lim.max_stride = 1;
  lim.max_input_dilation = 1;
  lim.max_pad = 0;
  lim.max_channels_per_group = 40;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("pointwise_gemm__cuda", lim, 60, 30);
}

TEST(CudaAlgorithms, PointwiseGemmTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  check_list("pointwise_gemm__cuda",
             {"n=1 in=1 c=1 o=1", "n=3 in=7x5 c=13 o=31", "in=33 c=32 o=33", "in=97 c=17 o=64",
              "n=2 in=15x16 c=64 o=47", "in=29 c=12 o=18 g=3", "in=2x3x5 c=31 o=65", "in=257 c=128 o=129"});
}

TEST(CudaAlgorithms, TransposedGatherRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.min_rank = lim.max_rank = 1;
  lim.max_stride = 4;
  lim.max_input_dilation = 4;
  lim.max_channels_per_group = 3;
  lim.max_extent = 30;
  lim.max_kernel = 12;
  check_algorithm_on_draws("transposed_gather__cuda", lim, 120, 25);
}

TEST(CudaAlgorithms, TransposedGatherLongKernel) {
  CONVND_SKIP_WITHOUT_CUDA();
  check_list(
      "transposed_gather__cuda",
      {"op=convT in=40 c=1 o=1 k=64 stride=16", "op=convT n=2 in=23 c=2 o=3 k=17 stride=5 pad=3 outpad=2",
       "op=convT in=50 c=1 o=1 k=9 stride=4 dil=2 pad=7", "in=20 c=2 o=2 k=7 idil=3 pad=-2:5 flip=1",
       // Columns (Pp·O) around the 256-thread row and the vector width; partial last rows.
       "op=convT n=3 in=37 c=1 o=1 k=4096 stride=1024 pad=5 outpad=3",
       "op=convT in=19 c=1 o=3 k=300 stride=100", "op=convT n=2 in=64 c=1 o=1 k=8 stride=4 outpad=1",
       "op=convT in=7 c=4 o=4 k=8 stride=2 g=4", "op=convT in=11 c=1 o=2 k=2048 stride=513"});
}

TEST(CudaAlgorithms, DirectRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.max_channels_per_group = 6;
  check_algorithm_on_draws("direct__cuda", lim, 120, 110);
}

TEST(CudaAlgorithms, DirectCases) {
  CONVND_SKIP_WITHOUT_CUDA();
  check_list("direct__cuda", {"n=2 in=9x9 c=3 o=17 k=3x3 pad=1", "in=31 c=7 o=13 k=5 dil=3 pad=-1:4 flip=1",
                              "op=convT n=2 in=9x7 c=16 o=8 k=4x4 stride=2 pad=1",
                              "in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1",
                              "in=6 c=3 o=5 k=2 stride=3 idil=4 pad=-3:2"});
}

// The planner's own choice under a tiny budget and under a large one: the bits must not change.
TEST(CudaAlgorithms, TinyBudgetAgainstLargeBitwise) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  DrawLimits lim;
  lim.max_channels_per_group = 24;
  lim.max_extent = 12;
  lim.max_macs = 1e6;
  for (int i = 0; i < 120; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    Problem p = random_problem(rng, lim);
    Case c = make_case(p, rng);
    const ExecOptions small = cuda_options({}, 64 << 10), large = cuda_options({}, int64_t(1) << 34);
    Plan ps, pl;
    try {
      ps = make_plan(p, small);
    } catch (const Error& e) {
      ASSERT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
      continue;  // an algorithm that needs more than 64 KiB: nothing to compare
    }
    pl = make_plan(p, large);
    EXPECT_LE(ps.workspace_bytes, small.budget);
    Tensor ys = Tensor::empty(p.dtype, y_shape(c.shapes)), yl = Tensor::empty(p.dtype, y_shape(c.shapes));
    execute(ps, c.x, c.w, ys, small);
    execute(pl, c.x, c.w, yl, large);
    ASSERT_TRUE(bit_equal(ys, yl)) << to_string(p) << " (" << ps.algorithm << " vs " << pl.algorithm << ")";
  }
}

TEST(CudaAlgorithms, PlannerPrefersFastPathsAndExplainsRejections) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Dense f16/bf16 convs go to CUTLASS's kernels where the build has them.
  const bool cutlass = [] {
    ExecOptions o = cuda_options();
    o.algorithm = "cutlass_sm90__cuda";
    try {
      make_plan(parse_problem("n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dtype=bf16"), o);
      return true;
    } catch (const Error&) {
      return false;
    }
  }();
  const char* dense_half = cutlass ? "cutlass_sm90__cuda" : "implicit_gemm__cuda";
  struct Want {
    const char* problem;
    const char* algo;
  };
  for (Want w : {Want{"n=8 in=56x56 c=256 o=64 dtype=bf16", "pointwise_gemm__cuda"},
                 Want{"op=convT in=5160 c=1 o=1 k=4096 stride=1024", "transposed_gather__cuda"},
                 Want{"n=2 in=56x56 c=384 o=384 k=3x3 pad=1 g=384 dtype=bf16", "depthwise_direct__cuda"},
                 Want{"n=2 in=14x14 c=256 o=256 k=3x3 pad=1 dtype=bf16", dense_half},
                 Want{"n=1 in=32x32x32 c=64 o=64 k=3x3x3 pad=1 dtype=bf16", dense_half},
                 Want{"n=2 in=28x28 c=64 o=128 k=3x3 pad=1 dtype=bf16", dense_half},
                 // Short reductions into few channels: the implicit GEMM, and for the input
                 // gradient its dual forward.
                 Want{"n=2 in=56x56 c=64 o=64 k=3x3 pad=1 dtype=bf16", "implicit_gemm__cuda"},
                 Want{"n=2 in=56x56 c=64 o=64 k=3x3 pad=1 dtype=bf16 dir=bwd_d", "data_grad__cuda"},
                 Want{"n=2 in=56x56 c=128 o=64 k=3x3 pad=1 dtype=bf16 dir=bwd_d", cutlass ? "cutlass_sm90__cuda" : "data_grad__cuda"},
                 Want{"n=2 in=14x14 c=256 o=256 k=3x3 pad=1 g=2 dtype=bf16", "implicit_gemm__cuda"},
                 Want{"n=2 in=28x28 c=256 o=256 k=3x3 pad=1 g=32 dtype=bf16", "grouped_gemm__cuda"},
                 Want{"n=1 in=64x64 c=64 o=1100 k=3x3 pad=1", "implicit_gemm__cuda"},
                 Want{"op=convT n=1 in=1000 c=512 o=256 k=16 stride=8", "polyphase_gemm__cuda"},
                 Want{"op=convT n=1 in=64x64 c=256 o=128 k=4x4 stride=2 pad=1", "polyphase_gemm__cuda"}}) {
    Plan p = make_plan(parse_problem(w.problem), cuda_options());
    EXPECT_EQ(p.algorithm, w.algo) << w.problem << "\n" << p.to_text();
    EXPECT_EQ(p.backend, Backend::cuda);
    for (const Rejection& r : p.rejected) EXPECT_FALSE(r.reason.empty()) << r.algorithm;
  }
}
