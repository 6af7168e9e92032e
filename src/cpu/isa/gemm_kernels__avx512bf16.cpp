// The avx512_bf16 path: the avx512 kernels, plus a bf16 GEMM kernel of 14 × 32 tiles built on
// VDPBF16PS (16 f32 sums += the dot products of 16 bf16 pairs): 28 accumulators, 2 B vectors,
// A's pair broadcast from memory.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR105593, as in the avx512 file
#endif
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/isa/gemm_bf16_kernels.h"

namespace convnd {
namespace {

struct DotBf16 {
  using Acc = __m512;
  using Pairs = __m512bh;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Acc v) { _mm512_storeu_ps(p, v); }
  static Pairs load_b(const uint16_t* p) { return Pairs(_mm512_loadu_si512(p)); }
  static Pairs bcast_a(const uint16_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return Pairs(_mm512_set1_epi32(v));
  }
  static Acc dp(Acc acc, Pairs a, Pairs b) { return _mm512_dpbf16_ps(acc, a, b); }
};

void bf16_gemm_14x32__avx512bf16(int64_t kc, const uint16_t* a, const int64_t* a_groups, const uint16_t* b, float* c, int64_t ldc,
                          int64_t m, int64_t n, bool accumulate) {
  bf16_gemm_dot<DotBf16, 14>(kc, a, a_groups, b, c, ldc, m, n, accumulate);
}


}  // namespace

const GemmBf16Kernels& gemm_bf16_kernels_avx512bf16() {
  static constexpr GemmBf16Kernels k = {{14, 32, 384, 2}, bf16_gemm_14x32__avx512bf16, nullptr, nullptr};
  return k;
}

}  // namespace convnd
