// The CUDA kernels' index math, on the host (no device needed: these run in every build).
// FastDivmod against / and %; and the implicit GEMM kernels' addressing (row table, the K walk
// of the 16-byte loaders, the element-wise loader's decomposition) used to compute whole
// problems — plain convs and every stride phase of transposed ones — compared bit for bit with
// the oracle on small integers. What this cannot see (fragment layouts, the pipeline) the
// device tests in cuda_algorithms_test.cpp cover.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda/gemm_conv_params.h"
#include "cuda/kernels/fast_divmod.h"
#include "cuda/kernels/gemm_conv_index.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;
using convnd::cuda::FastDivmod;

TEST(CudaIndex, FastDivmodMatchesDivision) {
  std::vector<int64_t> divisors;
  for (int64_t d = 1; d <= 300; ++d) divisors.push_back(d);
  for (int b = 9; b <= 30; ++b)
    for (int64_t delta : {-1, 0, 1}) divisors.push_back((int64_t(1) << b) + delta);
  for (int64_t d : {int64_t(3136), int64_t(12544), int64_t(100000), int64_t(1) << 30, int64_t(2147483647)})
    divisors.push_back(d);
  Rng rng = test_rng();
  for (int64_t d : divisors) {
    const FastDivmod f(d);
    std::vector<int64_t> ns = {0, 1, d - 1, d, d + 1, 2 * d - 1, int64_t(INT32_MAX), int64_t(INT32_MAX) - 1};
    for (int64_t k : {int64_t(7), int64_t(1000), INT32_MAX / d}) ns.push_back(k * d), ns.push_back(k * d - 1);
    for (int i = 0; i < 200; ++i) ns.push_back(rng.integer(0, INT32_MAX));
    for (int64_t n : ns) {
      if (n < 0 || n > INT32_MAX) continue;
      uint32_t r = 0;
      const uint32_t q = f.divmod(uint32_t(n), &r);
      ASSERT_EQ(int64_t(q), n / d) << n << " / " << d;
      ASSERT_EQ(int64_t(r), n % d) << n << " % " << d;
    }
  }
}

namespace {

// y computed the way the implicit GEMM kernels address it: per piece, group, row and output
// channel, the sum over k of A (through gemm_row, tap_point, row_inside) times B, written at the
// row's y offset. Every element must be written exactly once.
Tensor emulate_gemm_conv(const Case& c, int64_t* writes) {
  const Geometry& g = c.geometry;
  const std::vector<double> x = to_doubles(c.x), w = to_doubles(c.w);
  std::vector<double> y(size_t(g.y_elems()), std::nan(""));
  *writes = 0;
  const int64_t w_len = g.kernel_volume() * g.cg();
  for (const cuda::DenseConvPiece& pc : cuda::dense_conv_pieces(g)) {
    EXPECT_EQ(cuda::gemm_conv_unsupported(g, pc.sub, pc.map), "");
    const cuda::GemmConvParams p = cuda::gemm_conv_params(g, pc.sub, pc.map);
    for (int64_t q = 0; q < g.groups; ++q)
      for (int64_t m = 0; m < p.m; ++m) {
        const cuda::GemmRow row = cuda::gemm_row(p, m, q);
        EXPECT_GE(row.y_off, 0);
        for (int64_t j = 0; j < p.og; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < p.k; ++k) {
            const cuda::TapPoint tp = cuda::tap_point(p, k);
            EXPECT_TRUE(tp.valid);
            if (!cuda::row_inside(p, row.b[0], row.b[1], row.b[2], tp.d)) continue;
            acc += x[size_t(row.x_off + tp.x_tap)] * w[size_t((q * p.og + j) * w_len + tp.w_tap)];
          }
          EXPECT_TRUE(std::isnan(y[size_t(row.y_off + j)]))
              << "y element " << row.y_off + j << " written twice";
          y[size_t(row.y_off + j)] = acc;
          ++*writes;
        }
      }
    // Rows past M are marked so that no tap brings them inside x.
    const cuda::GemmRow past = cuda::gemm_row(p, p.m, 0);
    EXPECT_EQ(past.y_off, -1);
    EXPECT_FALSE(cuda::row_inside(p, past.b[0], past.b[1], past.b[2], {0, 0, 0}));
  }
  const TensorShapes& s = c.shapes;
  return from_doubles(DType::f64, y_shape(s), y);
}

}  // namespace

TEST(CudaIndex, GemmAddressingComputesTheConv) {
  Rng rng = test_rng();
  DrawLimits lim;
  lim.max_channels_per_group = 5;
  lim.max_extent = 9;
  lim.max_macs = 2e4;
  int transposed = 0, dilated = 0;
  for (int i = 0; i < 300; ++i) {
    const Problem p = random_problem(rng, lim);
    Case c = make_case(p, rng, Fill::small_int, 2);
    if (c.geometry.idil != Dims{1, 1, 1}) ++dilated;
    if (p.op == Op::conv_transpose) ++transposed;
    int64_t writes = 0;
    const Tensor y = emulate_gemm_conv(c, &writes);
    ASSERT_EQ(writes, c.geometry.y_elems()) << to_string(p);
    Geometry g64 = c.geometry;
    g64.dtype = DType::f64;
    Tensor want = Tensor::empty(DType::f64, y_shape(c.shapes));
    reference_conv(g64, cast(c.x, DType::f64), cast(c.w, DType::f64), want);
    ASSERT_TRUE(bit_equal(y, want)) << to_string(p);
  }
  EXPECT_GE(transposed, 50);
  EXPECT_GE(dilated, 80);
}

// The 16-byte loaders walk K in chunks (8 channels on the tensor cores, 4 for f32) from their
// chunk's start, a tile (32 or 8) at a time: the walk must agree with the decomposition from
// scratch at every step, across tap boundaries.
TEST(CudaIndex, KWalkAgreesWithDecomposition) {
  Rng rng = test_rng();
  struct Walk {
    int chunk, tile;
  };
  int64_t steps = 0;
  for (int i = 0; i < 200; ++i) {
    const Walk wk = i % 2 ? Walk{8, 32} : Walk{4, 8};
    DrawLimits lim;
    lim.max_channels_per_group = 1;
    lim.max_macs = 1e9;
    Problem p = random_problem(rng, lim);
    const int64_t mult = rng.pick(std::vector<int64_t>{1, 2, 3, 4, 5, 8});
    p.c = p.groups * wk.chunk * mult;
    Geometry g;
    if (!validate(p, &g).ok()) continue;
    for (const cuda::DenseConvPiece& pc : cuda::dense_conv_pieces(g)) {
      const cuda::GemmConvParams gp = cuda::gemm_conv_params(g, pc.sub, pc.map);
      for (int start = 0; start < wk.tile; start += wk.chunk) {
        cuda::TapWalk walk;
        walk.start(gp, start);
        for (int64_t k = start; k < gp.k; k += wk.tile) {
          const cuda::TapPoint tp = cuda::tap_point(gp, k);
          ASSERT_EQ(walk.k, k);
          ASSERT_EQ(walk.x_tap, tp.x_tap) << to_string(p) << " k " << k;
          ASSERT_EQ(walk.w_tap, tp.w_tap) << to_string(p) << " k " << k;
          for (int j = 0; j < 3; ++j) ASSERT_EQ(walk.d[j], tp.d[j]) << to_string(p) << " k " << k;
          walk.advance(gp, wk.tile);
          ++steps;
        }
        ASSERT_GE(walk.k, gp.k);
      }
    }
  }
  EXPECT_GE(steps, 2000);
}

// Kernel limits: extents past the int32 math are refused with a reason, not run.
TEST(CudaIndex, GemmLimitsAreRefused) {
  const Geometry big = lower(parse_problem("n=1 in=2147483648 c=1 o=1 k=3"));
  const cuda::DenseConvPiece pc = cuda::dense_conv_pieces(big).front();
  EXPECT_NE(cuda::gemm_conv_unsupported(big, pc.sub, pc.map), "");
  const Geometry ok = lower(parse_problem("n=8 in=512x512 c=64 o=1100 k=3x3 pad=1"));
  const cuda::DenseConvPiece pk = cuda::dense_conv_pieces(ok).front();
  EXPECT_EQ(cuda::gemm_conv_unsupported(ok, pk.sub, pk.map), "");
}
