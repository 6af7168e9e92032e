// One element of any dtype to and from double (for small set-up loops, never hot paths).
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

}  // namespace convnd
