// One element of any dtype to and from double (set-up loops, the oracle and checks; never
// the hot paths of an algorithm).
#pragma once
#include <convnd/dtype.h>

#include <cstring>

namespace convnd {

inline double load_as_double(const void* p, DType t) {
  switch (t) {
    case DType::f32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::f64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::f16: { uint16_t v; std::memcpy(&v, p, 2); return half_to_float(v); }
    case DType::bf16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_float(v); }
  }
  return 0;
}

/// Rounds v to the dtype (through float for the 16-bit types, as f32 accumulation does).
inline void store_from_double(void* p, DType t, double v) {
  switch (t) {
    case DType::f32: { float f = float(v); std::memcpy(p, &f, 4); break; }
    case DType::f64: std::memcpy(p, &v, 8); break;
    case DType::f16: { uint16_t h = float_to_half(float(v)); std::memcpy(p, &h, 2); break; }
    case DType::bf16: { uint16_t h = float_to_bf16(float(v)); std::memcpy(p, &h, 2); break; }
  }
}

}  // namespace convnd
