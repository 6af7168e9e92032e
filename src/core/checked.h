// Checked 64-bit shape arithmetic: every product or sum of extents goes through these, so an
// overflow is reported instead of wrapping.
#pragma once
#include <cstdint>

namespace convnd {

inline bool checked_mul(int64_t a, int64_t b, int64_t* r) { return !__builtin_mul_overflow(a, b, r); }
inline bool checked_add(int64_t a, int64_t b, int64_t* r) { return !__builtin_add_overflow(a, b, r); }

/// Product of a list; false on overflow.
template <class It>
bool checked_product(It first, It last, int64_t* r) {
  int64_t acc = 1;
  for (; first != last; ++first)
    if (!checked_mul(acc, *first, &acc)) return false;
  *r = acc;
  return true;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
/// Floor division that is right for negative a (b > 0).
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace convnd
