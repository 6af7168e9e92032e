// cutlass_sm90__cuda (CUTLASS's Hopper kernels) against the float64 oracle: forward convs,
// stride-1 input gradients and weight gradients of f16 and bf16 (and f32 forward convs as TF32
// when the caller allows it), 1-D, 2-D and 3-D, at the
// tiles' boundaries (rows around 128, channels around the 64 and 128 tiles, K tails), prime
// extents, strides, kernel dilation and asymmetric padding; the weight gradient's sample
// chunks bit for bit against themselves; unaligned device tensors through the fallback plan;
// and what it declines, with the reason. Skipped without a device or a build without CUTLASS.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "grad_test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

const char* const kAlgo = "cutlass_sm90__cuda";

// The reason the algorithm declines p, or "" when it plans it.
std::string declines(const Problem& p) {
  try {
    make_plan(p, cuda_options(kAlgo));
    return {};
  } catch (const Error& e) {
    return e.what();
  }
}

bool cutlass_built() {
  return declines(parse_problem("n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dtype=bf16")).empty();
}

#define SKIP_WITHOUT_CUTLASS()                                                   \
  CONVND_SKIP_WITHOUT_CUDA();                                                    \
  if (!cutlass_built()) GTEST_SKIP() << "this build has no CUTLASS kernels"

Problem with(const char* s, DType t, Direction d) {
  Problem p = parse_problem(s);
  p.dtype = t;
  p.dir = d;
  return p;
}

int64_t parameter(const Plan& plan, const std::string& name) {
  for (const auto& [k, v] : plan.parameters())
    if (k == name) return v;
  ADD_FAILURE() << "the plan has no parameter " << name << "\n" << plan.to_text();
  return -1;
}

// Rows around the 128-row tile, channels around the 64 and 128 tiles and the 64-deep K step,
// prime extents, strides, dilation, asymmetric padding; 1-D, 2-D, 3-D.
const char* const kProblems[] = {
    "n=1 in=8x8 c=8 o=8 k=3x3 pad=1",
    "n=1 in=127 c=16 o=64 k=3 pad=1",
    "n=1 in=129 c=72 o=136 k=5 pad=2:1",
    "n=2 in=16x8 c=64 o=64 k=3x3 pad=1",
    "n=3 in=11x13 c=32 o=72 k=3x3 pad=1",
    "n=2 in=17x19 c=136 o=200 k=3x3 pad=1",
    "n=2 in=7x7 c=128 o=128 k=3x3 pad=1",
    "n=2 in=23x29 c=24 o=40 k=1x1",
    "n=2 in=17x15 c=16 o=32 k=3x3 stride=2 pad=1:2x0",
    "n=1 in=31x9 c=8 o=16 k=3x3 dil=2 pad=2",
    "n=2 in=5x6x7 c=8 o=24 k=2x3x2 pad=1",
    "n=2 in=8x8x8 c=64 o=64 k=3x3x3 pad=1",
    "n=1 in=9x10x11 c=16 o=8 k=3x1x3 stride=2x1x1 pad=1x0x1",
};

}  // namespace

TEST(CudaCutlass, ForwardAgainstOracle) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  for (const char* s : kProblems)
    for (DType t : {DType::f16, DType::bf16}) {
      const Problem p = with(s, t, Direction::fwd);
      ASSERT_EQ(declines(p), "") << s;
      const Case c = make_case(p, rng);
      Tensor y;
      ASSERT_TRUE(run_cuda(c, kAlgo, &y)) << s;
      ASSERT_TRUE(matches_oracle(y, oracle(c))) << to_string(p);
    }
}

TEST(CudaCutlass, GradientsAgainstOracle) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  for (const char* s : kProblems)
    for (DType t : {DType::f16, DType::bf16})
      for (Direction d : {Direction::bwd_d, Direction::bwd_w}) {
        const Problem p = with(s, t, d);
        const bool strided = p.stride != Dims{1, 1, 1};
        if (d == Direction::bwd_d && strided) {
          EXPECT_NE(declines(p).find("stride 1 only"), std::string::npos) << s;
          continue;
        }
        ASSERT_EQ(declines(p), "") << to_string(p);
        const GradCase gc = make_grad_case(p, rng);
        Tensor out;
        ASSERT_TRUE(run_grad(gc, cuda_options(kAlgo), &out)) << s;
        ASSERT_TRUE(matches_oracle(out, grad_oracle(gc), 4.0)) << to_string(p);
      }
}

// Many samples and few output tiles: the weight gradient runs in sample chunks on side
// streams. Its bits are the same on every run.
TEST(CudaCutlass, WeightGradChunksAreDeterministic) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  for (const char* s : {"n=32 in=48x47 c=64 o=64 k=3x3 pad=1", "n=13 in=5x40x40 c=16 o=32 k=3x3x3 pad=1"}) {
    const Problem p = with(s, DType::bf16, Direction::bwd_w);
    const Plan plan = make_plan(p, cuda_options(kAlgo));
    EXPECT_GT(parameter(plan, "splits"), 1) << plan.to_text();
    const GradCase gc = make_grad_case(p, rng);
    Tensor a, b;
    ASSERT_TRUE(run_grad(gc, cuda_options(kAlgo), &a));
    ASSERT_TRUE(run_grad(gc, cuda_options(kAlgo), &b));
    ASSERT_TRUE(matches_oracle(a, grad_oracle(gc), 4.0)) << s;
    ASSERT_TRUE(bit_equal(a, b)) << s;
  }
}

// Other sample chunkings of the weight gradient (with_parameter "splits", what gpu_bench
// --tile times): every count from 1 to the planned one that chunks N exactly runs and matches
// the oracle; counts that no chunking gives, or above N, are refused.
TEST(CudaCutlass, WeightGradOtherChunkings) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  const Problem p = with("n=16 in=64x64 c=64 o=64 k=3x3 pad=1", DType::bf16, Direction::bwd_w);
  const Plan plan = make_plan(p, cuda_options(kAlgo));
  const int64_t planned = parameter(plan, "splits");
  ASSERT_GE(planned, 2) << plan.to_text();
  const GradCase gc = make_grad_case(p, rng);
  const Oracle want = grad_oracle(gc);
  for (int64_t s = 1; s <= planned; ++s) {
    const int64_t chunk = (p.n + s - 1) / s;
    if ((p.n + chunk - 1) / chunk != s) {  // 16 samples: none gives 7 chunks, say
      EXPECT_THROW(with_parameter(plan, "splits", s), Error) << s;
      continue;
    }
    const Plan other = with_parameter(plan, "splits", s);
    EXPECT_EQ(parameter(other, "splits"), s);
    EXPECT_EQ(parameter(other, "chunk"), chunk);
    ASSERT_TRUE(matches_oracle(run_grad_plan(other, gc, cuda_options(kAlgo)), want, 4.0)) << "splits=" << s;
  }
  EXPECT_THROW(with_parameter(plan, "splits", 0), Error);
  EXPECT_THROW(with_parameter(plan, "splits", p.n + 1), Error);
  EXPECT_THROW(with_parameter(plan, "tile", 128), Error);
}

// The weight gradient's kernels on clusters of 2 CTAs that share dy's loads (64-row tiles;
// with_parameter cluster_n=2, not planned yet): 2-D and 3-D, 64, 8 and 200 channels (9, 27 and
// 6 N tiles: odd counts round the grid up to whole clusters), the oracle's values and the same
// bits as without the cluster; refused for 128-row tiles and other cluster sizes.
TEST(CudaCutlass, WeightGradClustersShareDy) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  for (const char* s : {"n=6 in=20x23 c=64 o=64 k=3x3 pad=1", "n=3 in=6x7x9 c=64 o=56 k=3x3x3 pad=1",
                        "n=4 in=19x9 c=8 o=16 k=3x3 pad=1:2", "n=2 in=31 c=200 o=64 k=3 pad=1"})
    for (DType t : {DType::bf16, DType::f16}) {
      const Problem p = with(s, t, Direction::bwd_w);
      const Plan plan = make_plan(p, cuda_options(kAlgo));
      ASSERT_EQ(parameter(plan, "cluster_n"), 1) << plan.to_text();
      const Plan pair = with_parameter(plan, "cluster_n", 2);
      const GradCase gc = make_grad_case(p, rng);
      const Tensor a = run_grad_plan(plan, gc, cuda_options(kAlgo)), b = run_grad_plan(pair, gc, cuda_options(kAlgo));
      ASSERT_TRUE(matches_oracle(b, grad_oracle(gc), 4.0)) << to_string(p);
      ASSERT_TRUE(bit_equal(a, b)) << to_string(p);
    }
  const Plan wide = make_plan(with("n=2 in=9x9 c=64 o=128 k=3x3 pad=1", DType::bf16, Direction::bwd_w),
                              cuda_options(kAlgo));
  EXPECT_THROW(with_parameter(wide, "cluster_n", 2), Error);
  const Plan narrow = make_plan(with("n=2 in=9x9 c=64 o=64 k=3x3 pad=1", DType::bf16, Direction::bwd_w),
                                cuda_options(kAlgo));
  EXPECT_THROW(with_parameter(narrow, "cluster_n", 3), Error);
}

TEST(CudaCutlass, DeclinesWhatItCannotDoAndSaysWhy) {
  SKIP_WITHOUT_CUTLASS();
  struct Want {
    const char* problem;
    const char* reason;
  };
  for (Want w : {Want{"n=1 in=8x8 c=8 o=8 k=3x3 pad=1", "f32 only as TF32"},
                 Want{"n=1 in=8x8 c=16 o=16 k=3x3 pad=1 g=2 dtype=bf16", "groups"},
                 Want{"n=1 in=8x8 c=12 o=16 k=3x3 pad=1 dtype=bf16", "multiples of 8"},
                 Want{"op=convT n=1 in=8x8 c=16 o=16 k=4x4 stride=2 dtype=bf16", "input dilation"},
                 Want{"n=1 in=8x8 c=16 o=16 k=3x3 flip=1 dtype=f16", "flipped"},
                 Want{"n=1 in=8x8 c=16 o=16 k=3x3 pad=-1 dtype=f16", "negative padding"}}) {
    const std::string why = declines(parse_problem(w.problem));
    EXPECT_NE(why.find(w.reason), std::string::npos) << w.problem << ": " << why;
  }
}

// Until the kernels have passed these tests on a GPU they run only when named: the planner
// keeps its earlier choices.
// The planner takes it for dense f16/bf16 convs and their gradients, except a pointwise input
// gradient (data_grad__cuda's GEMM), which it still plans when named.
TEST(CudaCutlass, PlannerChoosesItForDenseHalfConvs) {
  SKIP_WITHOUT_CUTLASS();
  for (const char* s : {"n=2 in=14x14 c=256 o=256 k=3x3 pad=1 dtype=bf16",
                        "n=1 in=16x16x16 c=64 o=64 k=3x3x3 pad=1 dtype=f16"})
    for (Direction d : {Direction::fwd, Direction::bwd_d, Direction::bwd_w}) {
      const Problem p = with(s, parse_problem(s).dtype, d);
      EXPECT_EQ(make_plan(p, cuda_options()).algorithm, kAlgo) << s;
    }
  const Problem pw = with("n=2 in=14x14 c=64 o=32", DType::bf16, Direction::bwd_d);
  EXPECT_EQ(make_plan(pw, cuda_options()).algorithm, "data_grad__cuda");
  EXPECT_EQ(make_plan(pw, cuda_options(kAlgo)).algorithm, kAlgo);
  EXPECT_EQ(make_plan(with("n=2 in=14x14 c=64 o=32", DType::bf16, Direction::bwd_w), cuda_options()).algorithm, kAlgo);
}

#ifdef CONVND_WITH_CUDA
// TMA needs 16-byte aligned tensors: device tensors that are not run the plan's fallback
// (the next algorithm's plan for the same problem), with the same results.
TEST(CudaCutlass, UnalignedDeviceTensorsRunTheFallback) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  const Problem p = with("n=2 in=9x10 c=16 o=24 k=3x3 pad=1", DType::bf16, Direction::fwd);
  const Case c = make_case(p, rng);
  const Plan plan = make_plan(p, cuda_options(kAlgo));
  EXPECT_NE(plan.to_text().find("unaligned: "), std::string::npos) << plan.to_text();
  const Tensor y = run_on_unaligned_device_tensors(c, plan, cuda_options(kAlgo));
  ASSERT_TRUE(matches_oracle(y, oracle(c))) << to_string(p);
}
#endif

// f32 forward convs on TF32 tensor cores, only when the caller allows it: products of operands
// cut to 10 mantissa bits (within 2^-10 each), float sums, so the bound's accumulation term is
// widened to 2^-8 of the terms' absolute sum (acc_scale 1024 over f32's 64·2^-24).
TEST(CudaCutlass, Tf32ForwardOnlyWhenAllowed) {
  SKIP_WITHOUT_CUTLASS();
  Rng rng = test_rng();
  ExecOptions tf32 = cuda_options(kAlgo);
  tf32.allow_tf32 = true;
  for (const char* s : kProblems) {
    const Problem p = with(s, DType::f32, Direction::fwd);
    EXPECT_NE(declines(p).find("f32 only as TF32"), std::string::npos) << s;
    const Plan plan = make_plan(p, tf32);
    EXPECT_EQ(parameter(plan, "tf32"), 1) << plan.to_text();
    const Case c = make_case(p, rng);
    Tensor y = Tensor::empty(DType::f32, y_shape(c.shapes));
    fill(y.view(), std::nan(""));
    execute(plan, c.x, c.w, y, tf32);
    ASSERT_TRUE(matches_oracle(y, oracle(c), 1024.0)) << to_string(p);
  }
  // TF32 is for the forward operator only, and 16-byte rows are 4 f32 channels.
  for (const char* s : {"n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dir=bwd_d", "n=1 in=8x8 c=8 o=8 k=3x3 pad=1 dir=bwd_w"}) {
    try {
      make_plan(parse_problem(s), tf32);
      ADD_FAILURE() << s << " was planned";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("forward convs only"), std::string::npos) << e.what();
    }
  }
  try {
    make_plan(parse_problem("n=1 in=8x8 c=6 o=8 k=3x3 pad=1"), tf32);
    ADD_FAILURE() << "c=6 was planned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiples of 4"), std::string::npos) << e.what();
  }
}

// The planner's own choice: exact f32 never reaches the TF32 kernels; with TF32 allowed a
// dense 3x3 layer does.
TEST(CudaCutlass, PlannerTakesTf32OnlyWhenAllowed) {
  SKIP_WITHOUT_CUTLASS();
  const Problem p = parse_problem("n=4 in=28x28 c=64 o=128 k=3x3 pad=1");
  EXPECT_NE(make_plan(p, cuda_options()).algorithm, kAlgo);
  ExecOptions tf32 = cuda_options();
  tf32.allow_tf32 = true;
  EXPECT_EQ(make_plan(p, tf32).algorithm, kAlgo);
}
