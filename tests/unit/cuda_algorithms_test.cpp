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

const DType kAllDtypes[] = {DType::f32, DType::f16, DType::bf16, DType::f64};

void check_algorithm_on_draws(const std::string& algo, DrawLimits lim, int draws, int min_accepted) {
  Rng rng = test_rng();
  int accepted = 0;
  for (int i = 0; i < draws; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    Problem p = random_problem(rng, lim);
    Case c = make_case(p, rng);
    Tensor y;
    if (!run_cuda(c, algo, &y)) continue;
    ++accepted;
    ASSERT_TRUE(matches_oracle(y, oracle(c))) << algo << " on " << to_string(p);
  }
  EXPECT_GE(accepted, min_accepted) << algo << " accepted too few random problems";
}

void check_list(const std::string& algo, std::initializer_list<const char*> problems) {
  Rng rng = test_rng();
  for (const char* s : problems)
    for (DType t : kAllDtypes) {
      Problem p = parse_problem(s);
      p.dtype = t;
      Case c = make_case(p, rng);
      Tensor y;
      ASSERT_TRUE(run_cuda(c, algo, &y)) << algo << " declined " << to_string(p);
      ASSERT_TRUE(matches_oracle(y, oracle(c))) << algo << " on " << to_string(p);
      // Small integers: every partial sum is exact, so the result must equal the oracle's bits.
      Case ci = make_case(p, rng, Fill::small_int, 2);
      ASSERT_TRUE(run_cuda(ci, algo, &y));
      ASSERT_TRUE(bit_equal(y, reference_output(ci))) << algo << " (small integers) on " << to_string(p);
    }
}

}  // namespace

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

TEST(CudaAlgorithms, TransposedScatterRandom) {
  CONVND_SKIP_WITHOUT_CUDA();
  DrawLimits lim;
  lim.min_rank = lim.max_rank = 1;
  lim.max_stride = 4;
  lim.max_input_dilation = 4;
  lim.max_channels_per_group = 3;
  lim.max_extent = 30;
  lim.max_kernel = 12;
  check_algorithm_on_draws("transposed_scatter__cuda", lim, 120, 25);
}

TEST(CudaAlgorithms, TransposedScatterLongKernel) {
  CONVND_SKIP_WITHOUT_CUDA();
  check_list(
      "transposed_scatter__cuda",
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
  struct Want {
    const char* problem;
    const char* algo;
  };
  for (Want w : {Want{"n=8 in=56x56 c=256 o=64 dtype=bf16", "pointwise_gemm__cuda"},
                 Want{"op=convT in=5160 c=1 o=1 k=4096 stride=1024", "transposed_scatter__cuda"}}) {
    Plan p = make_plan(parse_problem(w.problem), cuda_options());
    EXPECT_EQ(p.algorithm, w.algo) << w.problem << "\n" << p.to_text();
    EXPECT_EQ(p.backend, Backend::cuda);
    for (const Rejection& r : p.rejected) EXPECT_FALSE(r.reason.empty()) << r.algorithm;
  }
}
