// The stride-phase decomposition (src/core/phases.h): each phase's sub-problem reproduces the
// oracle on its outputs, and the tap-pair count matches the enumeration.
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include "core/phases.h"
#include "test_util.h"

using namespace convnd;
using namespace convnd::test;

TEST(Phases, TapPairsMatchEnumeration) {
  Rng rng = test_rng();
  DrawLimits lim;
  lim.max_input_dilation = 7;
  lim.max_stride = 5;
  lim.max_dilation = 4;
  lim.max_kernel = 9;
  lim.max_extent = 20;
  for (int i = 0; i < 2000; ++i) {
    Problem p = random_problem(rng, lim);
    Geometry g = lower(p);
    for (int j = 0; j < 3; ++j) {
      double enumerated = 0;
      for (const PhaseAxis& a : axis_phases(g, j)) enumerated += double(a.count) * double(a.taps);
      // Brute force over every (p, k) pair as the definition states it.
      double brute = 0;
      for (int64_t q = 0; q < g.out[j]; ++q)
        for (int64_t k = 0; k < g.k[j]; ++k) {
          int64_t u = q * g.stride[j] + k * g.kdil[j] - g.lo[j];
          brute += ((u % g.idil[j]) + g.idil[j]) % g.idil[j] == 0;
        }
      ASSERT_EQ(enumerated, brute) << to_string(p) << " axis " << j;
      ASSERT_EQ(axis_tap_pairs(g, j), brute) << to_string(p) << " axis " << j;
    }
  }
}

TEST(Phases, HugeInputDilationIsCheap) {
  // One input sample, dilation 10^15: the count must not enumerate phases.
  Problem p = parse_problem("in=3 c=1 o=1 k=2 idil=1000000000000000 pad=1");
  Geometry g = lower(p);
  EXPECT_EQ(phase_count(g), int64_t(1000000000000000));
  // Output positions 0 .. 2e15: tap k lands on the grid at p = 1 - k (mod 1e15), twice per
  // tap within range except at the ends.
  EXPECT_GT(g.macs(), 0);
  Problem q = parse_problem("in=2x2x2 c=1 o=1 stride=3037000500 idil=3037000499");
  EXPECT_EQ(phase_count(lower(q)), INT64_MAX);  // saturates instead of overflowing
  // The planner refuses to enumerate so many phases but still plans the problem.
  Plan plan = make_plan(q);
  EXPECT_EQ(plan.algorithm, "reference");
  bool named = false;
  for (const Rejection& r : plan.rejected) named = named || r.reason.find("stride phases") != std::string::npos;
  EXPECT_TRUE(named) << plan.to_text();
}

TEST(Phases, EachPhaseIsADenseConvOfTheUndilatedInput) {
  Rng rng = test_rng();
  DrawLimits lim;
  lim.max_input_dilation = 4;
  lim.dtypes = {DType::f64};
  for (int i = 0; i < 200; ++i) {
    Problem p = random_problem(rng, lim);
    Case c = make_case(p, rng);
    const Geometry& g = c.geometry;
    Tensor y = reference_output(c);
    const std::vector<PhaseAxis> ax[3] = {axis_phases(g, 0), axis_phases(g, 1), axis_phases(g, 2)};
    // Every output position belongs to exactly one phase per axis.
    for (int j = 0; j < 3; ++j) {
      int64_t total = 0;
      for (const PhaseAxis& a : ax[j]) total += a.count;
      ASSERT_EQ(total, g.out[j]) << to_string(p);
    }
    // Spot-check: each phase's outputs are sums over its sub-kernel taps of undilated x.
    for (const PhaseAxis& a0 : ax[0])
      for (const PhaseAxis& a1 : ax[1])
        for (const PhaseAxis& a2 : ax[2]) {
          Phase ph{{a0, a1, a2}};
          if (ph.outputs() == 0) continue;
          const int64_t m[3] = {a0.count - 1, a1.count - 1, a2.count - 1};  // the phase's last output
          for (int64_t n = 0; n < g.n; ++n)
            for (int64_t oc = 0; oc < g.o; ++oc) {
              double want = 0;
              const int64_t cg = g.cg(), c0 = (oc / g.og()) * cg;
              for (int64_t j0 = 0; j0 < a0.taps; ++j0)
                for (int64_t j1 = 0; j1 < a1.taps; ++j1)
                  for (int64_t j2 = 0; j2 < a2.taps; ++j2) {
                    const int64_t i0 = m[0] * a0.stride + j0 * a0.dil - a0.lo, i1 = m[1] * a1.stride + j1 * a1.dil - a1.lo,
                                  i2 = m[2] * a2.stride + j2 * a2.dil - a2.lo;
                    if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2]) continue;
                    const int64_t k0 = a0.k_first + j0 * a0.k_step, k1 = a1.k_first + j1 * a1.k_step,
                                  k2 = a2.k_first + j2 * a2.k_step;
                    for (int64_t ci = 0; ci < cg; ++ci) {
                      const double xv = c.x.ptr<double>()[(((n * g.in[0] + i0) * g.in[1] + i1) * g.in[2] + i2) * g.c + c0 + ci];
                      const double wv = c.w.ptr<double>()[(((oc * g.k[0] + k0) * g.k[1] + k1) * g.k[2] + k2) * cg + ci];
                      want += xv * wv;
                    }
                  }
              const int64_t p0 = a0.first + a0.step * m[0], p1 = a1.first + a1.step * m[1], p2 = a2.first + a2.step * m[2];
              const double got = y.ptr<double>()[(((n * g.out[0] + p0) * g.out[1] + p1) * g.out[2] + p2) * g.o + oc];
              ASSERT_NEAR(got, want, 1e-12 * (1 + std::fabs(want))) << to_string(p);
            }
        }
  }
}
