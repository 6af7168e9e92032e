// weight_grad__cuda (dir=bwd_w) against the float64 gradient oracle (reference_conv_backward_weight)
// through the public API (make_plan + execute(plan, x, dw, dy)): random problems with every
// parameter (op=convT, groups, depthwise, flip, strides, both dilations, negative padding) in
// every dtype, tile boundaries and prime sizes, reductions over several row blocks, small
// integers bit for bit, the same bits for any budget (waves) and run, the smallest budget,
// progress and cancellation. Skipped (GTEST_SKIP) where no CUDA device is visible.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "grad_test_util.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

const std::string kAlgo = "weight_grad__cuda";

// Accumulation error scale against the oracle: float32 block sums of up to 8192 rows (float64
// for f64), float64 across blocks.
constexpr double kAccScale = 4.0;

GradCase make_wgrad_case(std::string_view s, DType t, Rng& rng, Fill fill = Fill::uniform) {
  Problem p = parse_problem(s);
  p.dtype = t;
  p.dir = Direction::bwd_w;
  return make_grad_case(p, rng, fill, 2);
}

Plan plan_for(const GradCase& gc, int64_t budget = -1) {
  return make_plan(gc.c.problem, cuda_options(kAlgo, budget));
}

// dw of gc by the plan (every element must be written: dw starts as NaN).
Tensor run_plan(const GradCase& gc, const Plan& plan, const ExecOptions& opt) {
  Tensor dw = Tensor::empty(gc.c.problem.dtype, w_shape(gc.c.shapes));
  fill(dw.view(), std::nan(""));
  execute(plan, gc.c.x, dw, gc.dy, opt);
  return dw;
}

Tensor run_wgrad(const GradCase& gc, int64_t budget = -1) {
  Tensor dw;
  EXPECT_TRUE(run_grad(gc, cuda_options(kAlgo, budget), &dw))
      << kAlgo << " declined " << to_string(gc.c.problem);
  return dw;
}

// Each problem in every dtype: random reals within tolerance, small integers bit for bit.
void check_list(std::initializer_list<const char*> problems) {
  Rng rng = test_rng();
  for (const char* s : problems)
    for (DType t : kAllDtypes) {
      const GradCase gc = make_wgrad_case(s, t, rng);
      SCOPED_TRACE(to_string(gc.c.problem));
      ASSERT_TRUE(matches_oracle(run_wgrad(gc), grad_oracle(gc), kAccScale));
      const GradCase gi = make_wgrad_case(s, t, rng, Fill::small_int);
      ASSERT_TRUE(bit_equal(run_wgrad(gi), grad_reference(gi))) << "small integers";
    }
}

// A budget for two blocks' partials per wave plus the float64 running sums (×2 for f64).
int64_t budget_for_waves(const Geometry& g) {
  const int64_t w = g.w_elems();
  const bool f64 = g.dtype == DType::f64;
  return w * 8 * (f64 ? 2 : 1) + 2 * ((w * (f64 ? 8 : 4) + 255) / 256 * 256);
}

}  // namespace

TEST(CudaWeightGrad, RandomProblems) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  DrawLimits lim;  // every parameter: convT, groups, flip, strides, both dilations, negative padding
  lim.max_channels_per_group = 5;
  for (int i = 0; i < 240; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    Problem p = random_problem(rng, lim);
    p.dir = Direction::bwd_w;
    const GradCase gc = make_grad_case(p, rng);
    SCOPED_TRACE(to_string(p));
    ASSERT_TRUE(matches_oracle(run_wgrad(gc), grad_oracle(gc), kAccScale));
  }
}

TEST(CudaWeightGrad, RandomDepthwise) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  DrawLimits lim;
  lim.max_channels_per_group = 1;
  lim.max_groups = 1;
  for (int i = 0; i < 120; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    Problem p = random_problem(rng, lim);
    // C = O = groups around the channel vectors (2, 4, 8).
    p.groups = p.c = p.o = rng.pick(std::vector<int64_t>{1, 2, 3, 4, 7, 8, 9, 16, 17, 24, 40});
    p.dir = Direction::bwd_w;
    Geometry g;
    if (!validate(p, &g).ok()) continue;
    const GradCase gc = make_grad_case(p, rng);
    SCOPED_TRACE(to_string(p));
    ASSERT_TRUE(matches_oracle(run_wgrad(gc), grad_oracle(gc), kAccScale));
  }
}

TEST(CudaWeightGrad, TileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // C/g and O/g around the 64 x 64 tile (63, 64, 65; 127, 128, 129 columns with taps), K·C/g
  // crossing tiles inside a tap, few channels with many taps, groups, primes, 1-D to 3-D.
  check_list({"in=9x7 c=63 o=64 k=1x1", "in=9x7 c=64 o=65 k=1x1", "in=5x6 c=65 o=63 k=1x1",
              "in=7 c=64 o=64 k=2 pad=1", "n=2 in=6x5 c=43 o=17 k=3x3 pad=1",
              "in=11x13 c=3 o=64 k=7x7 stride=2 pad=3", "in=8x8 c=130 o=10 k=1x1 g=2",
              "n=2 in=5x5 c=12 o=132 k=3x3 g=4 pad=1", "in=4x5x6 c=6 o=9 k=2x3x2 g=3",
              "in=31 c=67 o=71 k=5 stride=3 dil=2 pad=-1:4", "in=1 c=1 o=1", "in=2x3 c=2 o=128 k=2x3"});
}

TEST(CudaWeightGrad, TensorCoreTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Channel counts the f16 / bf16 tensor-core kernel takes (C/g and O/g multiples of 8) around
  // its 64 x 64 tile and its 16 x 8 mma tiles: 8, 16, 24, 56, 64, 72, 136; columns that end
  // inside a tap; groups, strides, input dilation, flip, 1-D to 3-D (f32 and f64 run the
  // tiled kernel on the same problems).
  check_list({"in=6x7 c=8 o=8 k=3x3 pad=1", "n=2 in=9x9 c=16 o=24 k=3x3 pad=1",
              "n=3 in=10x10 c=136 o=72 k=1x1", "in=9x9 c=32 o=48 k=3x3 g=2 stride=2",
              "in=11 c=56 o=64 k=3 dil=2 pad=2:-1", "op=convT n=2 in=6x6 c=16 o=16 k=4x4 stride=2 pad=1",
              "in=5x5x5 c=8 o=16 k=3x3x3 flip=1 pad=1", "n=2 in=13x3 c=64 o=128 k=2x1 g=2 idil=2x1 pad=1",
              "in=4x4 c=72 o=8 k=3x3 pad=1"});
}

TEST(CudaWeightGrad, GroupedTensorCoreTileBoundaries) {
  CONVND_SKIP_WITHOUT_CUDA();
  // The grouped tensor-core kernel (f16 / bf16, O/g of 8, 16 or 32, C/g a multiple of 8): 8, 4
  // or 2 groups a tile, group counts that leave a tile partly empty (3, 5, 9), columns past the
  // 64-wide tile (72 = 3x3 of 8, 216, 80), strides, kernel and input dilation, negative padding,
  // flip, transposed, 1-D to 3-D (f32 and f64 run the tiled kernel on the same problems).
  check_list({"n=2 in=9x9 c=64 o=64 k=3x3 pad=1 g=8", "in=7x6 c=24 o=24 k=3x3 pad=1 g=3",
              "n=2 in=8x8 c=40 o=80 k=3x3 pad=1 g=5", "in=11 c=72 o=144 k=5 stride=2 dil=2 pad=-1:3 g=9",
              "in=6x5 c=48 o=64 k=3x3 g=2 flip=1 pad=1", "n=2 in=9x5 c=80 o=64 k=2x2 g=2",
              "in=4x5x3 c=48 o=96 k=2x3x2 g=3 pad=1", "op=convT n=2 in=6x6 c=64 o=64 k=3x3 stride=2 pad=1 g=8",
              "n=2 in=7x5 c=32 o=32 k=3x3 idil=2x1 pad=1 g=4"});
}

TEST(CudaWeightGrad, KernelChoice) {
  CONVND_SKIP_WITHOUT_CUDA();
  // kernel: 0 tiled (FMA), 1 depthwise, 2 tensor cores (f16 / bf16 with C/g, O/g multiples of 8),
  // 3 tensor cores over several groups a tile (O/g of 8, 16 or 32).
  struct Want {
    const char* problem;
    DType dtype;
    int64_t kernel;
  };
  Rng rng = test_rng();
  for (const Want& w :
       {Want{"in=9x9 c=16 o=16 k=3x3", DType::bf16, 2}, Want{"in=9x9 c=16 o=16 k=3x3", DType::f16, 2},
        Want{"in=9x9 c=16 o=16 k=3x3", DType::f32, 0}, Want{"in=9x9 c=16 o=16 k=3x3", DType::f64, 0},
        Want{"in=9x9 c=12 o=16 k=3x3", DType::bf16, 0}, Want{"in=9x9 c=16 o=16 k=3x3 g=16", DType::bf16, 1},
        Want{"in=9x9 c=16 o=32 k=3x3 g=16", DType::bf16, 0}, Want{"in=9x9 c=64 o=64 k=3x3 g=8", DType::bf16, 3},
        Want{"in=9x9 c=64 o=256 k=3x3 g=8", DType::f16, 3}, Want{"in=9x9 c=64 o=64 k=3x3 g=8", DType::f32, 0},
        Want{"in=9x9 c=64 o=128 k=3x3 g=2", DType::bf16, 2}, Want{"in=9x9 c=64 o=64 k=3x3 g=4", DType::bf16, 3},
        Want{"in=9x9 c=32 o=8 k=3x3", DType::bf16, 2}}) {
    const GradCase gc = make_wgrad_case(w.problem, w.dtype, rng);
    EXPECT_EQ(plan_parameter(plan_for(gc), "kernel"), w.kernel) << to_string(gc.c.problem);
  }
}

TEST(CudaWeightGrad, EveryParameter) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Strides, kernel dilation, asymmetric and negative padding, flip, input dilation, groups, and
  // transposed convs (input dilation by the stride, output_padding), depthwise among them.
  check_list({"n=2 in=10x9 c=6 o=4 k=3x2 stride=2x3 dil=2x1 pad=1:-1x2:0 flip=1",
              "in=7x6 c=4 o=6 k=3x3 idil=2x3 pad=2:1 g=2",
              "in=12 c=5 o=7 k=4 idil=3 stride=2 dil=2 pad=-2:3 flip=1",
              "op=convT n=2 in=5x4 c=6 o=4 k=3x3 stride=2 pad=1 outpad=1",
              "op=convT in=7 c=3 o=8 k=5 stride=3 dil=2 pad=4",
              "op=convT in=3x4x3 c=4 o=6 k=2x3x2 stride=2x1x2 g=2", "n=2 in=9x11 c=24 o=24 k=3x3 pad=1 g=24",
              "in=13x5 c=16 o=16 k=5x3 stride=2 dil=1x2 pad=-1:3 g=16 flip=1",
              "in=12 c=9 o=9 k=3 idil=2 pad=1 g=9", "op=convT in=6x6 c=8 o=8 k=4x4 stride=2 pad=1 g=8"});
}

TEST(CudaWeightGrad, RowsAcrossBlocks) {
  CONVND_SKIP_WITHOUT_CUDA();
  // Reductions over several row blocks, the last one partial: rows = N·P just below, at and
  // above multiples of the block, tiled, tensor-core and depthwise, some with input dilation.
  Rng rng = test_rng();
  for (const char* s :
       {"n=3 in=41x43 c=8 o=8 k=3x3 pad=1", "n=2 in=4099 c=5 o=3 k=3 pad=1",
        "n=1 in=8192 c=2 o=2 k=2 pad=0:1", "n=1 in=8193 c=2 o=2 k=2 pad=0:1",
        "n=5 in=37x29 c=32 o=32 k=3x3 pad=1 g=32", "n=1 in=20000 c=4 o=4 k=5 pad=2 g=4",
        "op=convT n=2 in=30x31 c=6 o=5 k=3x3 stride=2 pad=1", "n=2 in=3x40x40 c=3 o=7 k=1x3x3",
        "n=4 in=33x35 c=16 o=24 k=3x3 pad=1", "op=convT n=2 in=20x21 c=8 o=16 k=4x4 stride=2 pad=1"})
    for (DType t : kAllDtypes) {
      const GradCase gc = make_wgrad_case(s, t, rng);
      SCOPED_TRACE(to_string(gc.c.problem));
      const Plan plan = plan_for(gc);
      EXPECT_GT(plan_parameter(plan, "blocks"), 1) << plan.to_text();
      ASSERT_TRUE(matches_oracle(run_plan(gc, plan, cuda_options(kAlgo)), grad_oracle(gc), kAccScale));
      const GradCase gi = make_wgrad_case(s, t, rng, Fill::small_int);
      ASSERT_TRUE(bit_equal(run_wgrad(gi), grad_reference(gi))) << "small integers";
    }
}

TEST(CudaWeightGrad, SameBitsForAnyBudgetAndRun) {
  CONVND_SKIP_WITHOUT_CUDA();
  // One wave of every block's partials, then a budget for two blocks per wave (several waves
  // with the float64 sums carried between them), then a run again: bit for bit.
  Rng rng = test_rng();
  for (const char* s :
       {"n=4 in=40x40 c=8 o=12 k=3x3 pad=1", "n=2 in=3000 c=70 o=3 k=3 stride=2",
        "n=3 in=48x48 c=16 o=16 k=3x3 pad=1 g=16", "op=convT n=2 in=40x40 c=4 o=6 k=3x3 stride=2",
        "n=1 in=30000 c=1 o=1 k=7 pad=3", "n=4 in=30x30 c=16 o=16 k=3x3 pad=1",
        "n=4 in=24x24 c=64 o=64 k=3x3 pad=1 g=8"})
    for (DType t : kAllDtypes) {
      const GradCase gc = make_wgrad_case(s, t, rng);
      SCOPED_TRACE(to_string(gc.c.problem));
      const Plan wide = plan_for(gc);
      EXPECT_EQ(plan_parameter(wide, "waves"), 1) << wide.to_text();
      ASSERT_GT(plan_parameter(wide, "blocks"), 2) << wide.to_text();
      const int64_t small_budget = budget_for_waves(gc.c.geometry);
      const Plan narrow = plan_for(gc, small_budget);
      EXPECT_GT(plan_parameter(narrow, "waves"), 1) << narrow.to_text();
      EXPECT_LE(narrow.workspace_bytes, small_budget);
      EXPECT_EQ(plan_parameter(narrow, "block_rows"), plan_parameter(wide, "block_rows"));
      const Tensor a = run_plan(gc, wide, cuda_options(kAlgo));
      const Tensor b = run_plan(gc, narrow, cuda_options(kAlgo, small_budget));
      const Tensor again = run_plan(gc, wide, cuda_options(kAlgo));
      ASSERT_TRUE(bit_equal(a, b)) << "one wave against " << plan_parameter(narrow, "waves");
      ASSERT_TRUE(bit_equal(a, again)) << "two runs";
      ASSERT_TRUE(matches_oracle(a, grad_oracle(gc), kAccScale));
    }
}

TEST(CudaWeightGrad, SmallestBudget) {
  CONVND_SKIP_WITHOUT_CUDA();
  // One block per wave still runs; a byte less is out of memory, naming the bytes.
  Rng rng = test_rng();
  const GradCase gc = make_wgrad_case("n=2 in=50x50 c=8 o=8 k=3x3 pad=1", DType::f32, rng);
  const Plan wide = plan_for(gc);
  const int64_t w = gc.c.geometry.w_elems();
  const int64_t smallest = w * 8 + (w * 4 + 255) / 256 * 256;
  const Plan narrow = plan_for(gc, smallest);
  EXPECT_EQ(plan_parameter(narrow, "wave_blocks"), 1);
  EXPECT_EQ(plan_parameter(narrow, "waves"), plan_parameter(wide, "blocks"));
  ASSERT_TRUE(bit_equal(run_plan(gc, narrow, cuda_options(kAlgo, smallest)),
                        run_plan(gc, wide, cuda_options(kAlgo))));
  EXPECT_TRUE(throws_error([&] { plan_for(gc, smallest - 1); }, ErrorKind::out_of_memory,
                           {std::to_string(smallest)}));
}

TEST(CudaWeightGrad, ProgressAndCancel) {
  CONVND_SKIP_WITHOUT_CUDA();
  Rng rng = test_rng();
  const GradCase gc = make_wgrad_case("n=2 in=50x50 c=8 o=8 k=3x3 pad=1", DType::f32, rng);
  const int64_t w = gc.c.geometry.w_elems();
  const int64_t budget = w * 8 + 3 * ((w * 4 + 255) / 256 * 256);
  const Plan plan = plan_for(gc, budget);
  const int64_t waves = plan_parameter(plan, "waves");
  ASSERT_GT(waves, 2);
  ExecOptions opt = cuda_options(kAlgo, budget);
  std::vector<double> seen;
  opt.progress = [&](double f) {
    seen.push_back(f);
    return true;
  };
  const Tensor dw = run_plan(gc, plan, opt);
  ASSERT_EQ(int64_t(seen.size()), waves);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]);
  EXPECT_EQ(seen.back(), 1.0);
  EXPECT_TRUE(matches_oracle(dw, grad_oracle(gc), kAccScale));
  seen.clear();
  opt.progress = [&](double f) {
    seen.push_back(f);
    return false;
  };
  EXPECT_TRUE(throws_error([&] { run_plan(gc, plan, opt); }, ErrorKind::interrupted));
  EXPECT_EQ(seen.size(), 1u) << "progress called again after it returned false";
}

#ifdef CONVND_WITH_CUDA
TEST(CudaWeightGrad, UnalignedDeviceTensors) {
  CONVND_SKIP_WITHOUT_CUDA();
  // x and dy on the device one element past a 16-byte boundary: the depthwise kernel's channel
  // vectors and the tensor-core kernel's 16-byte loads give way to element loads, with the same
  // bits as the aligned run (host tensors are staged aligned).
  Rng rng = test_rng();
  for (const char* s : {"n=2 in=12x12 c=16 o=16 k=3x3 pad=1 g=16", "n=2 in=12x12 c=16 o=24 k=3x3 pad=1",
                        "n=2 in=12x12 c=64 o=64 k=3x3 pad=1 g=8"})
    for (DType t : kAllDtypes) {
      const GradCase gc = make_wgrad_case(s, t, rng);
      SCOPED_TRACE(to_string(gc.c.problem));
      const Tensor aligned = run_wgrad(gc);
      const int64_t es = dtype_size(t);
      const Tensor& x = gc.c.x;
      DeviceMemory dx(x.nbytes() + es), ddy(gc.dy.nbytes() + es), ddw(aligned.nbytes());
      ASSERT_TRUE(dx.get() && ddy.get() && ddw.get());
      char* xp = static_cast<char*>(dx.get()) + es;
      char* yp = static_cast<char*>(ddy.get()) + es;
      ASSERT_EQ(cudaMemcpy(xp, x.data(), size_t(x.nbytes()), 1), 0);
      ASSERT_EQ(cudaMemcpy(yp, gc.dy.data(), size_t(gc.dy.nbytes()), 1), 0);
      TensorView xv(xp, t, x.shape()), dyv(yp, t, gc.dy.shape()), dwv(ddw.get(), t, aligned.shape());
      xv.device = dyv.device = dwv.device = 0;
      const ExecOptions opt = cuda_options(kAlgo);
      execute(make_plan(gc.c.problem, opt), xv, dwv, dyv, opt);
      Tensor got = Tensor::empty(t, aligned.shape());
      ASSERT_TRUE(ddw.download(got.data(), got.nbytes()));
      ASSERT_TRUE(bit_equal(got, aligned));
    }
}
#endif
