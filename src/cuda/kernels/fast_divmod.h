// Division by a divisor fixed at launch, with one multiply-high and a shift (CUTLASS
// FastDivmod), for decomposing linear indices into coordinates inside kernels. Plain C++ that
// also compiles for the device, so that the host tests check it exhaustively near the edges.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define CONVND_HD __host__ __device__ __forceinline__
#else
#define CONVND_HD inline
#endif

namespace convnd::cuda {

/// q = n / d and r = n % d for 0 <= n < 2^31 and 1 <= d < 2^31.
struct FastDivmod {
  uint32_t divisor = 1;
  uint32_t multiplier = 0;  // 0 when divisor is 1
  uint32_t shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(int64_t d) : divisor(uint32_t(d)) {
    if (d <= 1) return;
    uint32_t log2 = 0;  // ceil(log2(d))
    while ((uint64_t(1) << log2) < uint64_t(d)) ++log2;
    const uint32_t p = 31 + log2;
    multiplier = uint32_t(((uint64_t(1) << p) + uint64_t(d) - 1) / uint64_t(d));
    shift = p - 32;
  }
  CONVND_HD uint32_t div(uint32_t n) const {
    return multiplier ? uint32_t((uint64_t(n) * multiplier) >> 32) >> shift : n;
  }
  /// Returns n / d and sets *rem = n % d.
  CONVND_HD uint32_t divmod(uint32_t n, uint32_t* rem) const {
    const uint32_t q = div(n);
    *rem = n - q * divisor;
    return q;
  }
};

}  // namespace convnd::cuda
