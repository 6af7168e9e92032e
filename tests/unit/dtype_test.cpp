// Data types: float16 and bfloat16 conversions (exhaustive over all 65536 patterns, round to
// nearest even at every halfway point, overflow, subnormals, NaN), every dtype through the
// public API against the float64 oracle, accumulation precision, and bit-exact results on
// small-integer inputs in every dtype.
#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "unit/test_util.h"

using namespace convnd;
using namespace convnd::test;

namespace {

float bits_to_float(uint32_t u) { return std::bit_cast<float>(u); }
uint32_t float_bits(float f) { return std::bit_cast<uint32_t>(f); }

bool half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0; }
bool bf16_is_nan(uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x007f) != 0; }

// The value of a binary16 pattern, from its fields.
double half_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? std::ldexp(double(m), -24)
             : e == 31 ? (m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity())
                       : std::ldexp(double(1024 + m), e - 25);
  return s ? -v : v;
}

// The value of a bfloat16 pattern, from its fields.
double bf16_value(uint16_t b) {
  const int s = b >> 15, e = (b >> 7) & 0xff, m = b & 0x7f;
  double v = e == 0 ? std::ldexp(double(m), -133)
             : e == 255 ? (m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity())
                        : std::ldexp(double(128 + m), e - 134);
  return s ? -v : v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// float16

TEST(Float16, EveryPatternToFloatAndBack) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float f = half_to_float(h);
    const double want = half_value(h);
    if (half_is_nan(h)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << i;
      const uint16_t back = float_to_half(f);
      ASSERT_TRUE(half_is_nan(back)) << std::hex << i << " -> " << back;
      ASSERT_EQ(back & 0x8000, h & 0x8000) << std::hex << i << ": NaN sign";
      continue;
    }
    ASSERT_EQ(double(f), want) << std::hex << i;
    ASSERT_EQ(std::signbit(f), bool(h & 0x8000)) << std::hex << i;
    ASSERT_EQ(float_to_half(f), h) << std::hex << i;
#ifdef __FLT16_MAX__
    ASSERT_EQ(f, float(std::bit_cast<_Float16>(h))) << std::hex << i;
#endif
  }
}

TEST(Float16, RoundsToNearestEvenAtEveryHalfwayPoint) {
  // Between every pair of neighbouring finite halves (and past the largest, towards the
  // overflow threshold 65520): the midpoint goes to the even pattern, a float either side of it
  // to the nearer one.
  for (uint32_t i = 0; i < 0x7c00; ++i) {
    for (uint16_t sign : {uint16_t(0), uint16_t(0x8000)}) {
      const uint16_t h = uint16_t(i | sign), next = uint16_t((i + 1) | sign);
      const float lo = half_to_float(h);
      const float hi = i + 1 == 0x7c00 ? (sign ? -65536.0f : 65536.0f) : half_to_float(next);
      const float mid = (lo + hi) / 2;  // exact: 12 significant bits
      ASSERT_EQ(double(mid), (double(lo) + double(hi)) / 2) << std::hex << i;
      const uint16_t even = (h & 1) ? next : h;
      ASSERT_EQ(float_to_half(mid), even) << std::hex << i << " midpoint " << mid;
      ASSERT_EQ(float_to_half(std::nextafter(mid, lo)), h) << std::hex << i;
      ASSERT_EQ(float_to_half(std::nextafter(mid, hi)), next) << std::hex << i;
    }
  }
}

TEST(Float16, OverflowSubnormalsAndSpecialValues) {
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65519.996f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // the halfway point to 2^16 rounds to inf
  EXPECT_EQ(float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(float_to_half(FLT_MAX), 0x7c00);
  EXPECT_EQ(float_to_half(-FLT_MAX), 0xfc00);
  EXPECT_EQ(float_to_half(INFINITY), 0x7c00);
  EXPECT_EQ(float_to_half(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isinf(half_to_float(0x7c00)));
  EXPECT_EQ(float_to_half(0.0f), 0x0000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  // Subnormals: 2^-24 is the smallest; 2^-25 is halfway to 0 and rounds to even (0).
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 subnormal units: to even
  EXPECT_EQ(float_to_half(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(float_to_half(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(float_to_half(1e-30f), 0x0000);
  EXPECT_EQ(float_to_half(-1e-30f), 0x8000);
  EXPECT_EQ(float_to_half(bits_to_float(0x00000001)), 0x0000);  // float subnormal
  // NaN of any payload stays NaN (never inf), sign kept.
  for (uint32_t nan : {0x7f800001u, 0x7fc00000u, 0x7fffffffu, 0xff800001u, 0xffc00000u, 0x7f802000u}) {
    uint16_t h = float_to_half(bits_to_float(nan));
    EXPECT_TRUE(half_is_nan(h)) << std::hex << nan << " -> " << h;
    EXPECT_EQ(h >> 15, nan >> 31) << std::hex << nan;
  }
}

#ifdef __FLT16_MAX__
TEST(Float16, MatchesTheCompilersConversionOnSampledFloats) {
  // Every exponent, with random mantissas and mantissas at the rounding boundaries.
  Rng rng = test_rng();
  const uint32_t tails[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff};
  for (uint32_t e = 0; e < 255; ++e)
    for (int j = 0; j < 512; ++j) {
      uint32_t man = uint32_t(rng.bits()) & 0x7fffff;
      if (j < 128) man = (man & ~0x1fffu) | tails[j % 6];
      for (uint32_t sign : {0u, 0x80000000u}) {
        const float f = bits_to_float(sign | (e << 23) | man);
        const uint16_t want = std::bit_cast<uint16_t>(_Float16(f));
        ASSERT_EQ(float_to_half(f), want) << std::hex << float_bits(f);
      }
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// bfloat16

TEST(BFloat16, EveryPatternToFloatAndBack) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t b = uint16_t(i);
    const float f = bf16_to_float(b);
    if (bf16_is_nan(b)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << i;
      const uint16_t back = float_to_bf16(f);
      ASSERT_TRUE(bf16_is_nan(back)) << std::hex << i << " -> " << back;
      ASSERT_EQ(back & 0x8000, b & 0x8000) << std::hex << i;
      continue;
    }
    ASSERT_EQ(double(f), bf16_value(b)) << std::hex << i;
    ASSERT_EQ(std::signbit(f), bool(b & 0x8000)) << std::hex << i;
    ASSERT_EQ(float_to_bf16(f), b) << std::hex << i;
  }
}

TEST(BFloat16, RoundsToNearestEvenAtEveryHalfwayPoint) {
  for (uint32_t i = 0; i < 0x7f80; ++i) {
    for (uint16_t sign : {uint16_t(0), uint16_t(0x8000)}) {
      const uint16_t b = uint16_t(i | sign), next = uint16_t((i + 1) | sign);
      // The midpoint and its neighbours, built from bits (the midpoint past the largest finite
      // bfloat16 is a finite float too).
      const uint32_t mid_bits = (uint32_t(b) << 16) | 0x8000;
      const float mid = bits_to_float(mid_bits);
      const uint16_t even = (b & 1) ? next : b;
      ASSERT_EQ(float_to_bf16(mid), even) << std::hex << i;
      ASSERT_EQ(float_to_bf16(bits_to_float(mid_bits - 1)), b) << std::hex << i;
      ASSERT_EQ(float_to_bf16(bits_to_float(mid_bits + 1)), next) << std::hex << i;
    }
  }
}

TEST(BFloat16, OverflowSubnormalsAndSpecialValues) {
  EXPECT_EQ(float_to_bf16(bits_to_float(0x7f7f7fff)), 0x7f7f);  // just below the threshold
  EXPECT_EQ(float_to_bf16(bits_to_float(0x7f7f8000)), 0x7f80);  // halfway to 2^128: inf
  EXPECT_EQ(float_to_bf16(FLT_MAX), 0x7f80);
  EXPECT_EQ(float_to_bf16(-FLT_MAX), 0xff80);
  EXPECT_EQ(float_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(float_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  // Float subnormals are bfloat16 subnormals, rounded the same way.
  EXPECT_EQ(float_to_bf16(bits_to_float(0x00008000)), 0x0000);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x00018000)), 0x0002);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x00010000)), 0x0001);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x007fffff)), 0x0080);  // up into the normals
  EXPECT_EQ(bf16_to_float(0x0001), bits_to_float(0x00010000));
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3f80);  // 1 + 2^-8: halfway, to even
  EXPECT_EQ(float_to_bf16(1.01171875f), 0x3f82);  // 1 + 3·2^-8: halfway, to even
  // NaN of any payload stays NaN; a payload only in the low 16 bits must not become inf.
  for (uint32_t nan : {0x7f800001u, 0x7fc00000u, 0x7fffffffu, 0xff800001u, 0xffc00000u, 0x7f80ffffu}) {
    uint16_t b = float_to_bf16(bits_to_float(nan));
    EXPECT_TRUE(bf16_is_nan(b)) << std::hex << nan << " -> " << b;
    EXPECT_EQ(b >> 15, nan >> 31) << std::hex << nan;
  }
}

TEST(BFloat16, RoundsLikeExactArithmeticOnSampledFloats) {
  // The nearest bfloat16 by value (ties to even), found from the two candidates.
  Rng rng = test_rng();
  for (int i = 0; i < 1 << 20; ++i) {
    const uint32_t u = uint32_t(rng.bits());
    const float f = bits_to_float(u);
    if (std::isnan(f)) continue;
    const uint16_t down = uint16_t(u >> 16), up = uint16_t(down + 1);
    const double d = f, vd = bf16_value(down);
    // Past the largest finite value, `up` is inf and the threshold is 2^128 - 2^119.
    const double vu = (up & 0x7fff) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), d) : bf16_value(up);
    uint16_t want;
    if ((u & 0xffff) == 0) want = down;
    else if (std::fabs(d - vd) < std::fabs(vu - d)) want = down;
    else if (std::fabs(d - vd) > std::fabs(vu - d)) want = up;
    else want = (down & 1) ? up : down;
    ASSERT_EQ(float_to_bf16(f), want) << std::hex << u;
  }
}

// ---------------------------------------------------------------------------------------------
// Every dtype through the public API

TEST(DTypes, EveryDtypeMatchesTheFloat64Oracle) {
  Rng rng = test_rng();
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    DrawLimits lim;
    lim.dtypes = {t};
    lim.max_channels_per_group = 9;
    lim.max_macs = 1e5;
    for (int it = 0; it < 60; ++it) {
      Problem p = random_problem(rng, lim);
      SCOPED_TRACE(to_string(p));
      Case c = make_case(p, rng);
      Tensor y = call_api(p, c.x, c.w);
      ASSERT_EQ(y.dtype(), t);
      ASSERT_EQ(y.shape(), y_shape(c.shapes));
      EXPECT_TRUE(matches_oracle(y, oracle(c))) << make_plan(p).algorithm;
    }
    // Larger reductions, where the accumulation order matters.
    for (const char* s : {"in=9x9 c=64 o=33 k=3x3 pad=1", "n=2 in=30 c=300 o=17 k=2", "op=convT in=6x6 c=70 o=9 k=4x4 stride=2 pad=1"}) {
      Problem p = parse_problem(s);
      p.dtype = t;
      SCOPED_TRACE(to_string(p));
      Case c = make_case(p, rng);
      EXPECT_TRUE(matches_oracle(call_api(p, c.x, c.w), oracle(c))) << make_plan(p).algorithm;
    }
  }
}

TEST(DTypes, ToleranceTableIsNotVacuous) {
  // One output element moved by 1% fails the comparison in every dtype but bfloat16, whose
  // spacing is 2^-7 (0.8%): there 4%.
  Rng rng = test_rng();
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    Problem p = parse_problem("in=8x8 c=16 o=8 k=3x3 pad=1");
    p.dtype = t;
    Case c = make_case(p, rng);
    Oracle ref = oracle(c);
    Tensor y = reference_output(c);
    ASSERT_TRUE(matches_oracle(y, ref));
    size_t i = 9 * 8 + 3;  // an interior element
    Shape idx{0, 1, 1, 3};
    set_element(y.view(), idx, ref.value[i] + (t == DType::bf16 ? 0.04 : 0.01) * ref.abssum[i]);
    EXPECT_FALSE(matches_oracle(y, ref)) << dtype_name(t);
  }
}

TEST(DTypes, HalfPrecisionAccumulatesInFloat32) {
  // 2048 + 1 + 1 = 2050 is exact in float16 (spacing 2 there); summed in float16 it would be
  // 2048. 256 + 1 + 1 = 258 likewise in bfloat16. 60000 + 60000 - 60000 overflows float16
  // partway when summed in order. Each as a 1x3 kernel of ones over 3 inputs, in the oracle and the planner.
  struct Case { DType t; std::vector<double> x; double want; };
  const Case cases[] = {
      {DType::f16, {2048, 1, 1}, 2050},
      {DType::f16, {1, 1, 2048}, 2050},
      {DType::f16, {60000, 60000, -60000}, 60000},
      {DType::bf16, {256, 1, 1}, 258},
      {DType::bf16, {1, 1, 256}, 258},
      // float64 computes in float64: 2 + 2^-30 needs 31 significant bits.
      {DType::f64, {1, std::ldexp(1.0, -30), 1}, 2 + std::ldexp(1.0, -30)},
  };
  for (const Case& cs : cases) {
    for (int c = 1; c <= 40; c += 39) {  // one channel, and a reduction over channels too
      Problem p = parse_problem("in=3 c=" + std::to_string(c) + " o=1 k=3");
      p.dtype = cs.t;
      SCOPED_TRACE(to_string(p) + " x=" + std::to_string(cs.x[0]));
      const Geometry g = lower(p);
      const TensorShapes s = tensor_shapes(p, g);
      std::vector<double> xv, wv(size_t(3 * c), 0.0);
      for (double v : cs.x)
        for (int ch = 0; ch < c; ++ch) xv.push_back(ch == 0 ? v : 0.0);
      for (int k = 0; k < 3; ++k) wv[size_t(k * c)] = 1;
      Tensor x = from_doubles(cs.t, x_shape(s), xv), w = from_doubles(cs.t, w_shape(s), wv);
      Tensor y = Tensor::empty(cs.t, y_shape(s));
      reference_conv(g, x, w, y);
      EXPECT_EQ(to_doubles(y)[0], cs.want) << "oracle";
      EXPECT_EQ(to_doubles(run(p, x, w))[0], cs.want) << make_plan(p).algorithm;
    }
  }
}

TEST(DTypes, SmallIntegerInputsAreBitExactInEveryDtype) {
  // Integers in [-2, 2]: every partial sum is an integer far below 2^24, so any summation
  // order in float32 (or float64) is exact and the one rounding to the output dtype is the
  // oracle's. Outputs within +-256 are the exact integer in every dtype.
  Rng rng = test_rng();
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    DrawLimits lim;
    lim.dtypes = {t};
    lim.max_channels_per_group = 8;
    lim.max_macs = 1e5;
    for (int it = 0; it < 60; ++it) {
      Problem p = random_problem(rng, lim);
      SCOPED_TRACE(to_string(p));
      Case c = make_case(p, rng, Fill::small_int, 2);
      Tensor y = call_api(p, c.x, c.w);
      Tensor want = reference_output(c);
      EXPECT_TRUE(bit_equal(y, want)) << make_plan(p).algorithm;
      Oracle ref = oracle(c);
      std::vector<double> got = to_doubles(y);
      for (size_t i = 0; i < got.size(); ++i) {
        if (std::fabs(ref.value[i]) <= 256) ASSERT_EQ(got[i], ref.value[i]) << "element " << i;
      }
    }
    for (const char* s : {"n=2 in=10x10 c=32 o=33 k=3x3 pad=1", "in=40 c=200 o=16 k=3 stride=2",
                          "op=convT in=5x5 c=24 o=17 k=3x3 stride=2 pad=1 outpad=1", "in=12x12 c=24 o=24 k=3x3 g=24"}) {
      Problem p = parse_problem(s);
      p.dtype = t;
      SCOPED_TRACE(to_string(p));
      Case c = make_case(p, rng, Fill::small_int, 2);
      EXPECT_TRUE(bit_equal(call_api(p, c.x, c.w), reference_output(c))) << make_plan(p).algorithm;
    }
  }
}
