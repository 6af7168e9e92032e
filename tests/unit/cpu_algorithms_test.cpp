// Every CPU algorithm against the float64 oracle on fresh random problems it
// accepts, at tile boundaries and prime sizes, in every dtype and on every
// instruction set this CPU runs; tiled-against-untiled bitwise equality (a 1 MiB
// budget and one thread against an unlimited budget and all threads); and
// hand-made plans, which run exactly as configured or are refused.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "cpu/conv_gemm.h"
#include "cpu/gemm.h"
#include "engine/backend.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

// Runs problem p with the named algorithm forced; returns false when it
// declines.
bool run_forced(const Case& c, const std::string& algo, Tensor* y, int64_t budget = -1, int threads = 0) {
  ExecOptions opt;
  opt.algorithm = algo;
  opt.budget = budget;
  opt.threads = threads;
  opt.exact_threads = true;  // the threaded paths, even on small problems
  Plan plan;
  try {
    plan = make_plan(c.problem, opt);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::unsupported) return false;
    throw;
  }
  EXPECT_EQ(plan.algorithm, algo);
  *y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
  fill(y->view(), std::nan(""));  // every element must be written
  execute(plan, c.x, c.w, *y, opt);
  return true;
}

bool run_cpu(const Case& c, const std::string& algo, Tensor* y) { return run_forced(c, algo, y); }

void check_algorithm_on_draws(const std::string& algo, DrawLimits lim, int draws, int min_accepted) {
  convnd::test::check_algorithm_on_draws(run_cpu, algo, lim, draws, min_accepted);
}

void check_list(const std::string& algo, std::initializer_list<const char*> problems) {
  check_algorithm_on_list(run_cpu, algo, problems);
}

}  // namespace

TEST(CpuAlgorithms, PointwiseGemmRandom) {
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.max_kernel = 1;
  lim.max_stride = 1;
  lim.max_input_dilation = 1;
  lim.max_pad = 0;
  lim.max_channels_per_group = 40;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("pointwise_gemm", lim, 60, 30);
}

TEST(CpuAlgorithms, PointwiseGemmTileBoundaries) {
  // Channels and pixel counts around micro-tile sizes (multiples of 8/16/32)
  // and primes.
  check_list("pointwise_gemm",
             {"n=1 in=1 c=1 o=1", "n=3 in=7x5 c=13 o=31", "in=33 c=32 o=33", "in=97 c=17 o=64",
              "n=2 in=15x16 c=64 o=47 g=1", "in=29 c=12 o=18 g=3", "in=2x3x5 c=31 o=65"});
}

TEST(CpuAlgorithms, Im2colGemmRandom) {
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.max_input_dilation = 1;
  lim.max_channels_per_group = 20;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("im2col_gemm", lim, 80, 50);
}

TEST(CpuAlgorithms, Im2colGemmTileBoundaries) {
  check_list("im2col_gemm",
             {"n=2 in=9x9 c=3 o=17 k=3x3 pad=1", "in=17x15 c=16 o=33 k=3x3 stride=2 pad=0:2x1",
              "in=31 c=7 o=13 k=5 dil=3 pad=-1:4 flip=1", "in=5x6x7 c=5 o=6 k=2x3x2 g=1 pad=1 flip=1",
              "n=3 in=11x13 c=12 o=12 k=3x3 g=4 stride=1x2", "in=8x8 c=64 o=32 k=3x3 pad=1"});
}

// Panels inside one output line pack each (t0, t1) input run once and let the last-axis taps
// share its rows (Im2colA::pack_indexed). Channels per group that are whole vector groups (so
// that it applies on every path), lines that are and are not multiples of the micro-tile,
// kernel dilation on the last axis, several K blocks that start inside a tap pair, groups,
// every dtype.
TEST(CpuAlgorithms, Im2colGemmSharedTapRows) {
  check_list("im2col_gemm",
             {"n=2 in=28x28 c=32 o=40 k=3x3 pad=1", "in=14x30 c=64 o=16 k=3x3 pad=1 dil=1x2",
              "n=3 in=9x20 c=16 o=24 k=2x5 pad=0x2", "in=6x7x28 c=48 o=8 k=3x3x3 pad=1 dtype=bf16",
              "in=5x6x15 c=48 o=8 k=3x3x3 pad=1 dtype=f16", "in=6x5x14 c=32 o=9 k=3x3x3 pad=1x0x1 dtype=f64",
              "in=16x16x16 c=32 o=32 k=3x3x3 pad=1", "n=2 in=14x14 c=64 o=64 k=3x3 pad=1 g=2",
              "in=3x70 c=16 o=5 k=1x7 pad=0x3 dil=1x3"});
}

// Padded f32 convs whose output lines are short (panels cross lines) copy each sample with its
// padding and read the panels in place; with a budget one byte too small for the copy they
// pack as usual. Both against the oracle, and the same bits.
TEST(CpuAlgorithms, Im2colGemmPaddedCopyBitwise) {
  Rng rng = test_rng();
  int copied = 0;
  for (const char* s : {"in=16x16x16 c=32 o=32 k=3x3x3 pad=1", "n=2 in=9x20 c=16 o=24 k=3x5 pad=1x2",
                        "n=3 in=7x11 c=48 o=17 k=3x3 pad=2 dil=2", "in=6x13x19 c=16 o=8 k=2x3x3 pad=1 stride=1x2x1",
                        "n=2 in=10x10 c=32 o=5 k=5x5 pad=2:1x0:2"}) {
    const Problem p = parse_problem(s);
    const Case c = make_case(p, rng);
    ExecOptions opt;
    opt.algorithm = "im2col_gemm";
    opt.exact_threads = true;  // as run_forced plans: the same threads, so the same workspace
    const Plan big = make_plan(p, opt);
    const int64_t copy = plan_parameter(big, "padded_input");
    copied += copy > 0;
    Tensor y_copy;
    ASSERT_TRUE(run_forced(c, "im2col_gemm", &y_copy));
    ASSERT_TRUE(matches_oracle(y_copy, oracle(c))) << s;
    if (copy == 0) continue;
    opt.budget = big.workspace_bytes - 1;
    const Plan small = make_plan(p, opt);
    EXPECT_EQ(plan_parameter(small, "padded_input"), 0) << s;
    Tensor y_packed;
    ASSERT_TRUE(run_forced(c, "im2col_gemm", &y_packed, opt.budget));
    EXPECT_TRUE(bit_equal(y_copy, y_packed)) << s;
  }
  // The copy needs the gather kernel (the AVX-512 path has it).
  if (gemm_kernels(make_plan(parse_problem("in=8 c=1 o=1")).isa).f32_gemm_gather) EXPECT_GT(copied, 0);
}

TEST(CpuAlgorithms, DepthwiseDirectRandom) {
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.max_input_dilation = 1;
  lim.max_channels_per_group = 1;
  lim.max_groups = 40;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("depthwise_direct", lim, 60, 30);
}

TEST(CpuAlgorithms, DepthwiseDirectCases) {
  check_list("depthwise_direct",
             {"n=2 in=13x11 c=37 o=37 k=3x3 pad=1 g=37", "in=9x9 c=64 o=64 k=5x5 stride=2 pad=2 g=64 flip=1",
              "in=4x5x6 c=17 o=17 k=3x1x2 dil=2x1x1 pad=1:0 g=17",
              // rows of whole 8-output blocks with taps inside (7x7, channel vectors and a tail)
              "n=2 in=9x29 c=20 o=20 k=7x7 pad=3 g=20", "in=5x41 c=16 o=16 k=3x5 stride=1x2 dil=1x2 pad=1:-1x3:0 g=16"});
}

TEST(CpuAlgorithms, GroupedDirectRandom) {
  DrawLimits lim;
  lim.conv_transpose = false;
  lim.max_input_dilation = 1;
  lim.max_groups = 5;
  lim.max_channels_per_group = 20;
  lim.max_extent = 14;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("grouped_direct", lim, 80, 30);
}

// Tile boundaries: output channels per group around the vector (4, 8, 12, 16, 20, 24: one and
// two vectors a tile, partial last lanes), positions around the 3-, 4-, 6-, 8- and 12-position
// tiles (1, 5, 6, 7, 11, 12, 13, 17, 20, 22, 25: a line's last positions take the narrowest tile
// that holds them), prime extents, strides, dilations, asymmetric and negative
// padding, flip, 1-D to 3-D; the few-channel dense case (an RGB stem).
TEST(CpuAlgorithms, GroupedDirectCases) {
  check_list("grouped_direct",
             {"n=2 in=13x11 c=16 o=32 k=3x3 pad=1 g=4", "in=7x13 c=24 o=24 k=3x3 pad=1 g=3 flip=1",
              "n=3 in=5x25 c=6 o=12 k=2x3 stride=1x2 pad=1:0x2:1 g=3", "in=11x12 c=10 o=40 k=3x3 dil=2 pad=2 g=2",
              "in=6 c=4 o=8 k=3 pad=1 g=2", "in=1x1 c=3 o=5 k=1x1", "in=29x31 c=3 o=20 k=7x7 stride=2 pad=3",
              "in=9x7 c=2 o=16 k=5x5 pad=-1:2x1 g=1", "in=4x5x13 c=8 o=16 k=3x1x3 pad=1x0x1 g=2",
              "n=2 in=17 c=64 o=64 k=5 pad=2 g=16", "in=19x6 c=12 o=36 k=3x3 stride=2x3 g=3",
              "in=3x22 c=16 o=16 k=3x3 pad=1 g=2", "in=4x17 c=16 o=48 k=1x3 pad=0x1 g=2", "in=2x20 c=16 o=48 k=1x3 pad=0x1 g=2",
              "n=2 in=3x20 c=32 o=64 k=3x3 pad=1 g=4"});
}

// A shorter chunk (positions per task) changes no bit; nor does the thread count.
// grouped_direct reads a weight in PyTorch's layout ([O, C/g, k...] memory viewed as convnd's
// [O, k..., C/g]) through its strides, uncopied (AlgorithmTraits::strided_weight): the same
// bits as from the dense weight, in 1-D, 2-D and 3-D, with groups and flip, in every dtype.
TEST(CpuAlgorithms, GroupedDirectReadsAStridedWeight) {
  Rng rng = test_rng();
  for (const char* s : {"n=2 in=9x11 c=8 o=8 k=3x3 pad=1", "in=37 c=6 o=12 k=5 pad=2 g=3",
                        "in=4x5x6 c=4 o=8 k=2x3x2 pad=1 flip=1", "n=1 in=8x8 c=8 o=8 k=3x3 pad=1 g=2 stride=2"})
    for (DType t : kAllDtypes) {
      Problem p = parse_problem(s);
      p.dtype = t;
      SCOPED_TRACE(to_string(p));
      const Case c = make_case(p, rng);
      const Shape& ws = c.w.shape();  // [O, k..., C/g]
      const int r = int(ws.size()) - 2;
      Shape torch_shape{ws[0], ws[size_t(r + 1)]};  // [O, C/g, k...]
      for (int a = 0; a < r; ++a) torch_shape.push_back(ws[size_t(1 + a)]);
      Tensor torch_w = Tensor::empty(t, torch_shape);
      const int64_t es = dtype_size(t);
      const Shape ts = torch_w.view().strides;
      for_each_index(ws, [&](const Shape& idx, int64_t lin) {
        int64_t at = idx[0] * ts[0] + idx[size_t(r + 1)] * ts[1];
        for (int a = 0; a < r; ++a) at += idx[size_t(1 + a)] * ts[size_t(2 + a)];
        std::memcpy(static_cast<char*>(torch_w.data()) + at * es, static_cast<const char*>(c.w.data()) + lin * es,
                    size_t(es));
      });
      Shape strides{ts[0]};
      for (int a = 0; a < r; ++a) strides.push_back(ts[size_t(2 + a)]);
      strides.push_back(ts[1]);
      const TensorView strided(torch_w.data(), t, ws, strides);
      ASSERT_FALSE(strided.is_contiguous());
      ExecOptions opt;
      opt.algorithm = "grouped_direct";
      const Plan plan = make_plan(p, opt);
      Tensor dense = Tensor::empty(t, y_shape(c.shapes)), from_strided = Tensor::empty(t, y_shape(c.shapes));
      fill(dense.view(), std::nan(""));
      fill(from_strided.view(), std::nan(""));
      execute(plan, c.x, c.w, dense, opt);
      execute(plan, c.x, strided, from_strided, opt);
      ASSERT_TRUE(matches_oracle(dense, oracle(c)));
      EXPECT_TRUE(bit_equal(dense, from_strided));
    }
}

TEST(CpuAlgorithms, GroupedDirectChunksAreBitwiseEqual) {
  Rng rng = test_rng();
  for (const char* s : {"n=2 in=9x40 c=16 o=24 k=3x3 pad=1 g=2", "in=3x3x50 c=3 o=8 k=2x3x5 stride=1x1x2 pad=1"}) {
    Problem p = parse_problem(s);
    for (DType t : {DType::f32, DType::bf16}) {
      p.dtype = t;
      SCOPED_TRACE(to_string(p));
      const Case c = make_case(p, rng);
      Tensor first;
      bool have_first = false;
      for (int threads : {1, 3}) {
        ExecOptions opt;
        opt.algorithm = "grouped_direct";
        opt.threads = threads;
        opt.exact_threads = true;
        const Plan planned = make_plan(p, opt);
        const int64_t planned_chunk = plan_parameter(planned, "chunk");
        for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(12), int64_t(13), planned_chunk}) {
          if (chunk > planned_chunk) continue;
          const Plan hand = with_parameter(planned, "chunk", chunk);
          Tensor y = Tensor::empty(p.dtype, y_shape(c.shapes));
          fill(y.view(), std::nan(""));
          execute(hand, c.x, c.w, y, opt);
          if (!have_first) {
            ASSERT_TRUE(matches_oracle(y, oracle(c)));
            first = y;
            have_first = true;
          } else {
            EXPECT_TRUE(bit_equal(first, y)) << "chunk " << chunk << " threads " << threads;
          }
        }
        EXPECT_THROW(with_parameter(planned, "chunk", planned_chunk + 1), Error);
      }
    }
  }
}

// Stride phases on short output lines run as GEMMs of many rows into a buffer, copied to their
// places; with a budget too small for it, one GEMM per line. Both against the oracle, and the
// same bits.
TEST(CpuAlgorithms, PolyphaseGemmBufferedRowsBitwise) {
  Rng rng = test_rng();
  int buffered = 0;
  for (const char* s : {"op=convT n=2 in=7x9 c=16 o=24 k=2x2 stride=2", "op=convT n=3 in=5x6x7 c=8 o=20 k=3x3x3 stride=2 pad=1",
                        "op=convT n=2 in=9x13 c=12 o=40 k=4x4 stride=2 pad=1 outpad=1", "n=2 in=7x11 c=8 o=16 k=3x3 idil=2 pad=1 dtype=bf16"}) {
    const Problem p = parse_problem(s);
    const Case c = make_case(p, rng);
    ExecOptions opt;
    opt.algorithm = "polyphase_gemm";
    // Two threads, as run_forced below: with many, the per-thread blocks outgrow the budgets
    // at which the buffer is dropped before it is.
    opt.threads = 2;
    opt.exact_threads = true;
    const Plan big = make_plan(p, opt);
    const bool has_buffer = plan_parameter(big, "k0.buffer_rows") > 0;
    buffered += has_buffer;
    Tensor y_buf;
    ASSERT_TRUE(run_forced(c, "polyphase_gemm", &y_buf, -1, 2));
    ASSERT_TRUE(matches_oracle(y_buf, oracle(c))) << s;
    if (!has_buffer) continue;
    // Smaller budgets first shrink the channel tile (the buffer keeps its bytes), then drop the
    // buffer: the largest budget without one. Small steps: the budgets between the smallest
    // buffered tile and the smallest tile without a buffer can be few (about 2% of them for the
    // bf16 case on AVX-512's 14x32 tiles).
    int64_t budget = big.workspace_bytes - 1;
    for (;; budget -= budget / 256 + 1) {
      opt.budget = budget;
      const Plan small = make_plan(p, opt);  // throws (failing the test) if no plan fits
      if (plan_parameter(small, "k0.buffer_rows") == 0) break;
    }
    Tensor y_lines;
    ASSERT_TRUE(run_forced(c, "polyphase_gemm", &y_lines, opt.budget, 2));
    EXPECT_TRUE(bit_equal(y_buf, y_lines)) << s;
  }
  EXPECT_GT(buffered, 0);
}

// Transposed convs whose kernel is their stride (and their input-dilated forms, flipped or
// not): tile boundaries of the GEMM's columns (taps·O), prime extents, 1-D to 3-D.
TEST(CpuAlgorithms, KernelStrideGemmCases) {
  check_list("kernel_stride_gemm",
             {"op=convT n=2 in=7x9 c=16 o=24 k=2x2 stride=2", "op=convT in=13 c=5 o=3 k=4 stride=4",
              "op=convT n=2 in=3x5x4 c=8 o=7 k=2x3x2 stride=2x3x2", "op=convT in=11x6 c=33 o=17 k=3x1 stride=3x1",
              "n=2 in=5x7 c=3 o=4 k=2x3 idil=2x3 pad=1x2", "n=2 in=5x7 c=3 o=4 k=2x3 idil=2x3 pad=1x2 flip=1"});
  // Random transposed convs of one group without padding: what it accepts (kernel = stride on
  // every axis, no output padding) matches the oracle.
  DrawLimits lim;
  lim.conv = false;
  lim.max_groups = 1;
  lim.max_pad = 0;
  lim.max_dilation = 1;
  lim.max_kernel = 3;
  lim.max_stride = 3;
  lim.max_extent = 6;
  lim.max_channels_per_group = 12;
  check_algorithm_on_draws("kernel_stride_gemm", lim, 1000, 6);  // about 27 accepted
  // A strided conv over an input dilated by its kernel's size (outputs that skip taps) is not
  // one: declined, where an earlier version wrote past y.
  Tensor y;
  Rng rng = test_rng();
  EXPECT_FALSE(run_cpu(make_case(parse_problem("n=2 in=5x4 c=3 o=2 k=2x2 idil=2 pad=1 stride=2x1"), rng),
                       "kernel_stride_gemm", &y));
}

// The row buffer at its smallest (one tile: a budget just above it) gives the same bits as the
// planned one; declined when the packed weights alone do not fit.
TEST(CpuAlgorithms, KernelStrideGemmBudgets) {
  Rng rng = test_rng();
  const Problem p = parse_problem("op=convT n=3 in=9x10 c=24 o=40 k=2x2 stride=2");
  const Case c = make_case(p, rng);
  ExecOptions opt;
  opt.algorithm = "kernel_stride_gemm";
  opt.exact_threads = true;  // as run_forced plans: the same threads, so the same workspace
  const Plan big = make_plan(p, opt);
  Tensor y_big, y_small;
  ASSERT_TRUE(run_forced(c, "kernel_stride_gemm", &y_big));
  ASSERT_TRUE(matches_oracle(y_big, oracle(c)));
  int64_t budget = big.workspace_bytes;
  for (int64_t b = big.workspace_bytes; b > 0; b = b * 7 / 8) {
    opt.budget = b;
    try {
      if (make_plan(p, opt).algorithm != "kernel_stride_gemm") break;
      budget = b;
    } catch (const Error&) {
      break;
    }
  }
  opt.budget = budget;
  EXPECT_LT(plan_parameter(make_plan(p, opt), "buffer_rows"), plan_parameter(big, "buffer_rows"));
  ASSERT_TRUE(run_forced(c, "kernel_stride_gemm", &y_small, budget));
  EXPECT_TRUE(bit_equal(y_big, y_small));
  EXPECT_THROW(make_plan(p, [&] { ExecOptions o = opt; o.budget = 64; return o; }()), Error);
}

TEST(CpuAlgorithms, TransposedScatterRandom) {
  DrawLimits lim;
  lim.min_rank = lim.max_rank = 1;
  lim.max_stride = 4;
  lim.max_input_dilation = 4;
  lim.max_channels_per_group = 3;
  lim.max_extent = 30;
  lim.max_kernel = 12;
  check_algorithm_on_draws("transposed_scatter", lim, 80, 25);
}

TEST(CpuAlgorithms, TransposedScatterLongKernel) {
  check_list(
      "transposed_scatter",
      {"op=convT in=40 c=1 o=1 k=64 stride=16", "op=convT n=2 in=23 c=2 o=3 k=17 stride=5 pad=3 outpad=2",
       "op=convT in=50 c=1 o=1 k=9 stride=4 dil=2 pad=7", "in=20 c=2 o=2 k=7 idil=3 pad=-2:5 flip=1"});
}

TEST(CpuAlgorithms, PolyphaseGemmRandom) {
  DrawLimits lim;
  lim.max_channels_per_group = 12;
  lim.max_macs = 4e5;
  check_algorithm_on_draws("polyphase_gemm", lim, 80, 30);
}

TEST(CpuAlgorithms, PolyphaseGemmCases) {
  check_list("polyphase_gemm", {"op=convT n=2 in=9x7 c=16 o=8 k=4x4 stride=2 pad=1",
                                "op=convT in=21 c=8 o=4 k=16 stride=8 pad=4",
                                "op=convT in=5x4x3 c=4 o=6 k=3x2x3 stride=2x3x1 dil=1x2x1 "
                                "outpad=1x0x0 g=2",
                                "in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 "
                                "g=2 flip=1",
                                "in=6 c=3 o=5 k=2 stride=3 idil=4 pad=-3:2"});
}

// The planner's own choice, under a 1 MiB budget on one thread and an unlimited
// budget on every thread: the bits must not change.
TEST(CpuAlgorithms, TiledAgainstUntiledBitwise) {
  Rng rng = test_rng();
  DrawLimits lim;
  lim.max_channels_per_group = 48;
  lim.max_extent = 12;
  lim.max_macs = 1e6;
  for (int i = 0; i < 300; ++i) {
    lim.dtypes = {kAllDtypes[i % 4]};
    Problem p = random_problem(rng, lim);
    Case c = make_case(p, rng);
    ExecOptions small, large;
    small.budget = 1 << 20;
    small.threads = 1;
    large.budget = int64_t(1) << 40;
    Plan ps = make_plan(p, small), pl = make_plan(p, large);
    Tensor ys = Tensor::empty(p.dtype, y_shape(c.shapes)), yl = Tensor::empty(p.dtype, y_shape(c.shapes));
    execute(ps, c.x, c.w, ys, small);
    execute(pl, c.x, c.w, yl, large);
    ASSERT_TRUE(bit_equal(ys, yl)) << to_string(p) << " (" << ps.algorithm << " vs " << pl.algorithm << ")";
  }
}

// A budget smaller than the weights forces the GEMM algorithms to split the
// output channels.
TEST(CpuAlgorithms, TinyBudgetSplitsChannelsBitwise) {
  Rng rng = test_rng();
  for (const char* s : {"n=2 in=12x12 c=96 o=200 k=3x3 pad=1", "in=300 c=512 o=160",
                        "op=convT in=40 c=256 o=130 k=16 stride=4 pad=2"}) {
    Case c = make_case(s, rng);
    ExecOptions tiny, big;
    tiny.budget = 256 << 10;
    big.budget = int64_t(1) << 40;
    // Two threads whatever the machine: 256 KiB holds two threads' GEMM blocks, not sixteen.
    tiny.threads = big.threads = 2;
    tiny.exact_threads = big.exact_threads = true;
    Plan pt = make_plan(c.problem, tiny), pb = make_plan(c.problem, big);
    EXPECT_EQ(pt.algorithm, pb.algorithm) << s;
    EXPECT_LT(plan_parameter(pt, "n_tile"), plan_parameter(pb, "n_tile")) << s;
    EXPECT_LE(pt.workspace_bytes, tiny.budget);
    Tensor yt = Tensor::empty(c.problem.dtype, y_shape(c.shapes)),
           yb = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
    execute(pt, c.x, c.w, yt, tiny);
    execute(pb, c.x, c.w, yb, big);
    ASSERT_TRUE(bit_equal(yt, yb)) << s;
    ASSERT_TRUE(matches_oracle(yt, oracle(c))) << s;
  }
}

TEST(CpuAlgorithms, BudgetTooSmallIsOutOfMemoryBeforeAllocating) {
  ExecOptions opt;
  opt.budget = 1024;
  // The reference needs no workspace, but it is no fallback for a problem a
  // GEMM covers.
  for (const char* algo : {"", "im2col_gemm"}) {
    opt.algorithm = algo;
    try {
      make_plan(parse_problem("in=64x64 c=256 o=256 k=3x3 pad=1"), opt);
      FAIL() << "a 1 KiB budget cannot hold a GEMM tile";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
      EXPECT_NE(std::string(e.what()).find("budget is 1024"), std::string::npos) << e.what();
    }
  }
  // Forced, the reference still runs within any budget.
  opt.algorithm = "reference";
  EXPECT_EQ(make_plan(parse_problem("in=64x64 c=256 o=256 k=3x3 pad=1"), opt).algorithm, "reference");
}

TEST(CpuAlgorithms, PlannerPrefersFastPathsAndExplainsRejections) {
  struct Want {
    const char* problem;
    const char* algo;
  };
  for (Want w : {Want{"n=8 in=56x56 c=256 o=64", "pointwise_gemm"},
                 Want{"n=8 in=56x56 c=64 o=64 k=3x3 pad=1", "im2col_gemm"},
                 Want{"n=8 in=56x56 c=384 o=384 k=3x3 pad=1 g=384", "depthwise_direct"},
                 Want{"n=8 in=28x28 c=256 o=256 k=3x3 pad=1 g=32", "grouped_direct"},
                 Want{"n=8 in=224x224 c=3 o=64 k=7x7 stride=2 pad=3", "grouped_direct"},
                 Want{"op=convT n=8 in=28x28 c=256 o=128 k=2x2 stride=2", "kernel_stride_gemm"},
                 Want{"op=convT in=5160 c=1 o=1 k=4096 stride=1024", "transposed_scatter"},
                 Want{"op=convT in=1000 c=512 o=256 k=16 stride=8", "polyphase_gemm"}}) {
    Plan p = make_plan(parse_problem(w.problem));
    EXPECT_EQ(p.algorithm, w.algo) << w.problem << "\n" << p.to_text();
    for (const Rejection& r : p.rejected) EXPECT_FALSE(r.reason.empty()) << r.algorithm;
  }
}

// Whatever the budget, a plan never asks for more workspace than it. Budgets on a coarse grid,
// then byte by byte across every interval where the planner's answer changes (the smallest
// tile of an algorithm lies there), on 1 and 2 threads.
TEST(CpuAlgorithms, WorkspaceNeverExceedsTheBudget) {
  for (const char* s : {"op=convT in=40 c=1 o=1 k=4000 stride=16", "op=convT n=2 in=30 c=2 o=3 k=64 stride=8",
                        "n=2 in=9x9 c=24 o=40 k=3x3 pad=1", "in=50 c=64 o=96", "in=12x12 c=33 o=33 k=3x3 g=33",
                        "op=convT in=9x7 c=16 o=8 k=4x4 stride=2 pad=1"}) {
    const Problem p = parse_problem(s);
    for (int threads : {1, 2}) {
      // The algorithm planned for a budget ("" when out of memory), checking the bound.
      auto plan_for = [&](int64_t budget) -> std::string {
        ExecOptions opt;
        opt.budget = budget;
        opt.threads = threads;
        opt.exact_threads = true;
        try {
          Plan plan = make_plan(p, opt);
          EXPECT_LE(plan.workspace_bytes, budget) << s << " on " << threads << " threads: " << plan.algorithm;
          return plan.algorithm + "/" + std::to_string(plan.workspace_bytes > 0);
        } catch (const Error& e) {
          EXPECT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
          return "";
        }
      };
      int64_t prev = 0;
      std::string prev_answer = plan_for(0);
      for (int64_t budget = 1; budget < (int64_t(1) << 20); budget = budget * 9 / 8 + 1) {
        const std::string answer = plan_for(budget);
        if (answer != prev_answer && budget - prev <= 8192)
          for (int64_t b = prev + 1; b < budget; ++b) plan_for(b);
        prev = budget;
        prev_answer = answer;
      }
    }
  }
}

// ---- Hand-made plans: the executor runs the configuration it is given ------------------------

namespace {

// A copy of `planned` that runs `config` with `workspace_bytes` of workspace.
Plan hand_made(const Plan& planned, std::shared_ptr<const PlanConfig> config, int64_t workspace_bytes) {
  Plan plan = planned;
  plan.config = std::move(config);
  plan.workspace_bytes = workspace_bytes;
  return plan;
}

// A configuration type no CPU family knows.
struct ForeignConfig final : PlanConfig {
  std::vector<std::pair<std::string, int64_t>> parameters() const override { return {{"foreign", 1}}; }
};

}  // namespace

// A ConvGemm configuration made by hand (tiles planned under a smaller budget, so fewer output
// channels per packed B) and the planner's own, set through with_parameter, give the planner's
// bits: the K blocks, and so every sum, are the same.
TEST(CpuAlgorithms, HandMadeConvGemmPlansRunAsGiven) {
  Rng rng = test_rng();
  struct Want {
    const char* problem;
    const char* algorithm;
  };
  for (const Want& k : {Want{"n=2 in=15x16 c=64 o=47", "pointwise_gemm"},
                        Want{"n=2 in=12x12 c=40 o=70 k=3x3 pad=1 dtype=bf16", "im2col_gemm"},
                        Want{"n=2 in=9x20 c=16 o=70 k=3x5 pad=1x2", "im2col_gemm"},  // padded copy
                        Want{"in=13x11 c=24 o=99 k=3x3 g=3 dtype=f64", "im2col_gemm"}}) {
    SCOPED_TRACE(k.problem);
    const Case c = make_case(k.problem, rng);
    ExecOptions opt;
    opt.algorithm = k.algorithm;
    const Plan planned = make_plan(c.problem, opt);
    const ConvGemmConfig* cfg = config_of<ConvGemmConfig>(planned);
    ASSERT_NE(cfg, nullptr);
    const Tensor y_planned = run_plan(planned, c);
    ASSERT_TRUE(matches_oracle(y_planned, oracle(c)));

    // Tiles of the same GEMM path planned for a budget one byte short of the planned tiles
    // without their padded copy: no copy, and fewer channels per packed B.
    auto tiles = std::make_shared<ConvGemmConfig>();
    int64_t min_ws = 0;
    ASSERT_EQ(plan_conv_gemm(planned.geometry, true, cfg->tiles.workspace - cfg->tiles.padded - 1, planned.threads,
                             planned.isa, &tiles->tiles, &min_ws),
              "");
    EXPECT_LT(tiles->tiles.n_tile, cfg->tiles.n_tile);
    EXPECT_EQ(tiles->tiles.gemm.kc, cfg->tiles.gemm.kc);
    const int64_t ws = tiles->tiles.workspace;
    EXPECT_TRUE(bit_equal(run_plan(hand_made(planned, std::move(tiles), ws), c), y_planned));

    // Through the public interface: a channel tile that is no multiple of the micro-tile, and
    // GEMM calls of a prime number of pixels.
    for (auto [name, value] : {std::pair<const char*, int64_t>{"n_tile", 5}, {"m_tile", 37}}) {
      const Plan hand = with_parameter(planned, name, value);
      EXPECT_EQ(plan_parameter(hand, name), value);
      EXPECT_TRUE(bit_equal(run_plan(hand, c), y_planned)) << name << "=" << value;
    }
    // More channels per packed B than planned would overrun the workspace.
    EXPECT_TRUE(throws_error([&] { with_parameter(planned, "n_tile", cfg->tiles.n_tile + 1); }, ErrorKind::invalid,
                             {"n_tile"}));
    EXPECT_TRUE(throws_error([&] { with_parameter(planned, "kc", 8); }, ErrorKind::invalid, {"kc"}));
    // Tiles whose workspace exceeds the plan's are refused before they run.
    auto greedy = std::make_shared<ConvGemmConfig>(*cfg);
    EXPECT_TRUE(throws_error([&] { run_plan(hand_made(planned, greedy, cfg->tiles.workspace - 1), c); },
                             ErrorKind::invalid, {"workspace", "hand-made"}));
  }
}

// A polyphase plan holds tiles for every reduction length its phases have; one without the
// tiles of some K is refused before any output is written (never run with default tiles),
// and one with other tiles for each K gives the same bits.
TEST(CpuAlgorithms, HandMadePolyphasePlansNeedTilesForEveryK) {
  Rng rng = test_rng();
  // k=3 over stride 2: per axis the phases keep 1 or 2 taps, so K is 1, 2 or 4 taps of C/g.
  const Case c = make_case("op=convT n=2 in=9x7 c=16 o=40 k=3x3 stride=2 pad=1", rng);
  ExecOptions opt;
  opt.algorithm = "polyphase_gemm";
  const Plan planned = make_plan(c.problem, opt);
  const PolyphaseGemmConfig* cfg = config_of<PolyphaseGemmConfig>(planned);
  ASSERT_NE(cfg, nullptr);
  EXPECT_EQ(cfg->k, (std::vector<int64_t>{16, 32, 64}));
  EXPECT_EQ(plan_parameter(planned, "distinct_k"), 3);
  const Tensor y_planned = run_plan(planned, c);
  ASSERT_TRUE(matches_oracle(y_planned, oracle(c)));

  for (size_t drop = 0; drop < cfg->k.size(); ++drop) {
    auto partial = std::make_shared<PolyphaseGemmConfig>(*cfg);
    partial->k.erase(partial->k.begin() + drop);
    partial->by_k.erase(partial->by_k.begin() + drop);
    const Plan hand = hand_made(planned, partial, planned.workspace_bytes);
    Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
    fill(y.view(), 7.0);
    EXPECT_TRUE(throws_error([&] { execute(hand, c.x, c.w, y); }, ErrorKind::invalid,
                             {"no tiles for the phases of K = " + std::to_string(cfg->k[drop])}));
    const std::vector<double> untouched = to_doubles(y);
    EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](double v) { return v == 7.0; }))
        << "y was written before the missing tiles were found";
  }

  // Every K with fewer output channels per packed B: the same bits.
  auto narrow = std::make_shared<PolyphaseGemmConfig>(*cfg);
  for (ConvGemmTiles& t : narrow->by_k) t.n_tile = 3;
  EXPECT_TRUE(bit_equal(run_plan(hand_made(planned, narrow, planned.workspace_bytes), c), y_planned));
}

// Every CPU family refuses a plan that carries a configuration of another type (a hand-made
// plan naming the wrong algorithm) with ErrorKind::invalid, before it runs anything.
TEST(CpuAlgorithms, PlansWithAnotherFamilysConfigurationAreRefused) {
  Rng rng = test_rng();
  // Accepted by depthwise_direct, im2col_gemm and the reference, so their configurations exist.
  const Case c = make_case("n=2 in=9x11 c=8 o=8 k=3x3 pad=1 g=8", rng);
  std::vector<std::pair<std::string, std::shared_ptr<const PlanConfig>>> configs = {
      {"foreign", std::make_shared<ForeignConfig>()}};
  for (const char* algo : {"depthwise_direct", "im2col_gemm", "reference"}) {
    ExecOptions opt;
    opt.algorithm = algo;
    configs.emplace_back(algo, make_plan(c.problem, opt).config);
  }
  const Plan base = make_plan(c.problem);
  for (const Algorithm* a : cpu_backend().algorithms()) {
    const std::string name(a->name());
    ExecOptions own;
    own.algorithm = name;
    for (const auto& [from, config] : configs) {
      if (from == name) continue;
      // pointwise_gemm and im2col_gemm share ConvGemmConfig: that is the same family's type.
      if (name == "pointwise_gemm" && from == "im2col_gemm") continue;
      SCOPED_TRACE(name + " with the configuration of " + from);
      Plan plan = hand_made(base, config, int64_t(1) << 20);
      plan.algorithm = name;
      // A gradient family gets a problem of its direction (the same three tensors).
      const DirectionSet dirs = a->traits().directions;
      const Direction d = dirs.has(Direction::fwd) ? Direction::fwd : dirs.has(Direction::bwd_d) ? Direction::bwd_d : Direction::bwd_w;
      plan.problem.dir = plan.geometry.dir = d;
      Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
      EXPECT_TRUE(throws_error([&] { execute(plan, c.x, c.w, y); }, ErrorKind::invalid,
                               {"configuration is not one of " + name, "; problem: "}));
    }
  }
}

// The ISA is part of the plan: a configuration whose kernels are of another instruction set
// than the plan's is refused (the backend checks only the plan's).
TEST(CpuAlgorithms, ConfigurationOfAnotherIsaIsRefused) {
  if (!gemm_isa_supported(Isa::avx2)) GTEST_SKIP() << "this CPU runs the generic path only";
  Rng rng = test_rng();
  for (auto [problem, algo] : {std::pair<const char*, const char*>{"in=20 c=8 o=8", "pointwise_gemm"},
                               {"in=9x9 c=4 o=6 k=3x3 pad=1", "im2col_gemm"},
                               {"in=9x9 c=8 o=8 k=3x3 g=8", "depthwise_direct"},
                               {"op=convT in=30 c=1 o=1 k=16 stride=4", "transposed_scatter"},
                               {"op=convT in=9x7 c=8 o=8 k=4x4 stride=2 pad=1", "polyphase_gemm"}}) {
    SCOPED_TRACE(problem);
    const Case c = make_case(problem, rng);
    ExecOptions opt;
    opt.algorithm = algo;
    opt.isa = Isa::avx2;
    Plan plan = make_plan(c.problem, opt);
    ASSERT_EQ(plan.isa, Isa::avx2);
    plan.isa = Isa::generic;
    Tensor y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
    EXPECT_TRUE(throws_error([&] { execute(plan, c.x, c.w, y); }, ErrorKind::invalid,
                             {"avx2 kernels are not the plan's generic path"}));
  }
}

// Every algorithm on every instruction set this CPU runs (generic always), chosen through
// ExecOptions::isa: the plan says which, and the result matches the oracle (bit for bit on
// small integers). The GEMM's bits may differ between paths (kc is the path's), never its
// accuracy.
TEST(CpuAlgorithms, EveryIsaPathMatchesTheOracle) {
  struct Want {
    const char* algorithm;
    const char* problem;
  };
  const Want cases[] = {
      {"pointwise_gemm", "n=3 in=7x5 c=13 o=31"},
      {"im2col_gemm", "n=2 in=9x9 c=16 o=17 k=3x3 pad=1"},
      {"im2col_gemm", "n=2 in=9x20 c=16 o=24 k=3x5 pad=1x2"},
      {"depthwise_direct", "n=2 in=13x11 c=37 o=37 k=3x3 pad=1 g=37"},
      {"grouped_direct", "n=2 in=9x13 c=24 o=36 k=3x3 pad=1 g=3"},
      {"transposed_scatter", "op=convT n=2 in=23 c=2 o=3 k=17 stride=5 pad=3 outpad=2"},
      {"polyphase_gemm", "op=convT n=2 in=9x7 c=16 o=8 k=4x4 stride=2 pad=1"},
      {"kernel_stride_gemm", "op=convT n=2 in=9x7 c=16 o=8 k=2x2 stride=2"},
      {"reference", "in=7x5 c=3 o=4 k=3x2 pad=1"},
  };
  Rng rng = test_rng();
  int paths = 0;
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx}) {
    if (!gemm_isa_supported(isa)) continue;
    ++paths;
    for (const Want& k : cases)
      for (DType t : kAllDtypes) {
        Problem p = parse_problem(k.problem);
        p.dtype = t;
        SCOPED_TRACE(std::string(isa_name(isa)) + " " + k.algorithm + " on " + to_string(p));
        ExecOptions opt;
        opt.algorithm = k.algorithm;
        opt.isa = isa;
        const Plan plan = make_plan(p, opt);
        ASSERT_EQ(plan.isa, isa);
        const Case c = make_case(p, rng);
        ASSERT_TRUE(matches_oracle(run_plan(plan, c), oracle(c)));
        const Case ci = make_case(p, rng, Fill::small_int, 2);
        ASSERT_TRUE(bit_equal(run_plan(plan, ci), reference_output(ci)));
      }
  }
  EXPECT_GE(paths, 1);
}
