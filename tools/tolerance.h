// The one table of tolerances `convnd check` compares against the oracle with.
//
// For an output element whose exact sum is `value` with term magnitudes summing to `abssum`
// (PointValue from reference_point), the allowed |got - value| is
//
//   abssum_rel * abssum   accumulation error (float64 for f64, float32 for the rest)
// + value_rel  * |value|  rounding of the result to the output dtype (half an ulp)
// + abs_floor             the dtype's smallest subnormal step (results near zero)
//
// An output that overflows in its dtype passes when the library returns the same infinity as
// the exact value rounded to the dtype; a NaN never passes.
#pragma once
#include <convnd/dtype.h>
#include <convnd/reference.h>

#include <cmath>

namespace convnd::cli {

struct Tolerance {
  double abssum_rel;
  double value_rel;
  double abs_floor;
};

/// tf32: the plan multiplies float32 as TF32 (--precision tf32 on a GPU, tf32=1 in its
/// configuration): each operand of a product cut to 10 mantissa bits (up to 2^-10 each), so the
/// accumulation term grows to 2^-9 of the terms' magnitudes.
constexpr Tolerance tolerance_for(DType t, bool tf32 = false) {
  if (tf32 && t == DType::f32) return {0x1p-9, 0x1p-24, 0x1p-149};
  switch (t) {
    case DType::f64: return {1e-12, 0x1p-53, 0x1p-1074};
    case DType::f32: return {1e-5, 0x1p-24, 0x1p-149};
    case DType::f16: return {1e-5, 0x1p-11, 0x1p-24};
    case DType::bf16: return {1e-5, 0x1p-8, 0x1p-133};
  }
  return {1e-5, 0x1p-24, 0x1p-149};
}

inline double allowed_error(DType t, const PointValue& v, bool tf32 = false) {
  const Tolerance tol = tolerance_for(t, tf32);
  return tol.abssum_rel * v.abssum + tol.value_rel * std::fabs(v.value) + tol.abs_floor;
}

/// The exact value rounded to the dtype (for the overflow rule).
inline double round_to_dtype(DType t, double v) {
  switch (t) {
    case DType::f64: return v;
    case DType::f32: return double(float(v));
    case DType::f16: return half_to_float(float_to_half(float(v)));
    case DType::bf16: return bf16_to_float(float_to_bf16(float(v)));
  }
  return v;
}

/// |got - want| / allowed: <= 1 passes. Infinity for NaN or a wrong infinity.
inline double error_ratio(DType t, double got, const PointValue& want, bool tf32 = false) {
  if (std::isnan(got)) return INFINITY;
  if (std::isinf(got)) return got == round_to_dtype(t, want.value) ? 0.0 : INFINITY;
  return std::fabs(got - want.value) / allowed_error(t, want, tf32);
}

}  // namespace convnd::cli
