// Element types. float16/bfloat16 are stored as raw 16-bit patterns and accumulate in float32;
// float64 computes in float64 (see ../shared/spec/semantics.md, "Data types").
#pragma once
#include <cstdint>
#include <string_view>

namespace convnd {

enum class DType : uint8_t { f32, f16, bf16, f64 };

/// Bytes per element.
constexpr int64_t dtype_size(DType t) {
  return t == DType::f64 ? 8 : (t == DType::f32 ? 4 : 2);
}

/// Short name as used in problem strings: "f32", "f16", "bf16", "f64".
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::f64: return "f64";
  }
  return "?";
}

/// Parses a short dtype name; returns false for anything else.
bool parse_dtype(std::string_view s, DType* out);

/// IEEE binary16 and bfloat16 conversions (round to nearest even, NaN kept quiet).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
inline float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f);

/// One element of type t at p, widened to double (set-up loops, checks and the oracle; not
/// meant for hot loops). Out of line, so code compiled for one instruction set never carries
/// a copy that another set's code could be linked to.
double load_as_double(const void* p, DType t);
/// Stores v at p as type t, rounded once (16-bit types through float, as f32 accumulation does).
void store_from_double(void* p, DType t, double v);

}  // namespace convnd
