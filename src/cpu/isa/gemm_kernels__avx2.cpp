// The AVX2+FMA GEMM path: f32 6x16 and f64 6x8 register tiles (12 accumulators, 2 B vectors,
// 1 broadcast of the 16 ymm registers), and an 8x8 in-register transpose to pack f32 panels.
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/isa/gemm_microkernel.h"

namespace convnd {
namespace {

constexpr int kPrefetchB = 16 * 8;
// k per group of an f32 A panel: one ymm of a row, so packing is a load and a store (f64
// panels keep groups of 1 and the scalar packer).
constexpr int kGroupF32 = 8;

struct F32x8 {
  using T = float;
  using R = __m256;
  static constexpr int lanes = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static R bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_c(const float* p, int n) {
    for (int i = 0; i < n; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
  }
};

struct F64x4 {
  using T = double;
  using R = __m256d;
  static constexpr int lanes = 4;
  static R zero() { return _mm256_setzero_pd(); }
  static R load(const double* p) { return _mm256_loadu_pd(p); }
  static R bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  static void prefetch(const double* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_c(const double* p, int n) {
    for (int i = 0; i < n; i += 8) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
  }
};

void f32_gemm_6x16__avx2(int64_t kc, const float* a, const int64_t* a_groups, const float* b, float* c, int64_t ldc,
                         int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel<F32x8, 6, 2, kGroupF32, kPrefetchB>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

void f32_gemm_rows_6x16__avx2(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                              int64_t ldc, int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel_rows<F32x8, 6, 2, kPrefetchB>(kc, a, lda, b, c, ldc, m, n, accumulate, pf);
}

void f32_gemm_krows_6x16__avx2(int64_t kc, const float* const* krows, int64_t off, const float* b,
                               int64_t ldb, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_any<F32x8, 6, 2, kPrefetchB>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
}

void f64_gemm_krows_6x8__avx2(int64_t kc, const double* const* krows, int64_t off, const double* b,
                              int64_t ldb, double* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_any<F64x4, 6, 2, kPrefetchB / 2>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
}

void f32_gemm_krows2_6x16__avx2(int64_t kc, const float* const* krows, const float* const* krows2,
                                int64_t off, int64_t split, const float* b, int64_t ldb, float* c,
                                int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_split<F32x8, 6, 2, kPrefetchB>(kc, krows, krows2, off, split, b, ldb, c, ldc, m, n,
                                                        accumulate);
}

void f64_gemm_krows2_6x8__avx2(int64_t kc, const double* const* krows, const double* const* krows2,
                               int64_t off, int64_t split, const double* b, int64_t ldb, double* c,
                               int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_split<F64x4, 6, 2, kPrefetchB / 2>(kc, krows, krows2, off, split, b, ldb, c, ldc, m,
                                                            n, accumulate);
}

void f64_gemm_6x8__avx2(int64_t kc, const double* a, const int64_t* a_groups, const double* b, double* c, int64_t ldc,
                        int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel<F64x4, 6, 2, 1, kPrefetchB / 2>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

// Loads 8 consecutive elements of a row as f32.
template <DType D>
inline __m256 load_row(const void* row, int64_t k) {
  if (D == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(row) + k);
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
  if (D == DType::f16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline void transpose_8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// Packs up to 8 rows (a group of the panel width): dst[k·width + i] for i < lanes; the last
// kn % 8 columns go through the scalar packer.
template <DType D>
void pack_group_f32(const void* const rows[8], int64_t kn, int64_t width, int lanes, float* dst) {
  alignas(32) static constexpr int32_t kLaneMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i store_mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask + 8 - lanes));
  __m256 r[8];
  int64_t k = 0;
  for (; k + 8 <= kn; k += 8) {
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = rows[i] ? load_row<D>(rows[i], k) : _mm256_setzero_ps();
    transpose_8x8(r);
    for (int j = 0; j < 8; ++j) _mm256_maskstore_ps(dst + (k + j) * width, store_mask, r[j]);
  }
  if (k < kn) gemm_pack_rows_scalar<float>(D, rows, lanes, k, kn, width, 0, lanes, dst);
}

void f32_pack_rows__avx2(DType dt, const void* const* rows, int64_t nrows, int64_t kn,
                         int64_t width, float* dst) {
  if (dt == DType::f64) {
    gemm_pack_rows_scalar<float>(dt, rows, nrows, 0, kn, width, 0, width, dst);
    return;
  }
  for (int64_t g = 0; g < width; g += 8) {
    const int lanes = width - g < 8 ? int(width - g) : 8;
    const void* group[8];
    for (int i = 0; i < 8; ++i) group[i] = (i < lanes && g + i < nrows) ? rows[g + i] : nullptr;
    switch (dt) {
      case DType::f32: pack_group_f32<DType::f32>(group, kn, width, lanes, dst + g); break;
      case DType::f16: pack_group_f32<DType::f16>(group, kn, width, lanes, dst + g); break;
      default: pack_group_f32<DType::bf16>(group, kn, width, lanes, dst + g); break;
    }
  }
}

// One row of an f32 A panel (6 rows, groups of 8): whole groups by vector, the partial
// groups at either end element by element.
template <DType D>
void pack_a_row_f32(const void* const* rows, int64_t nrows, int64_t r, int64_t k_off, int64_t kn,
                    int64_t MR, float* panel) {
  constexpr int64_t G = kGroupF32;
  const int64_t k_end = k_off + kn;
  // [g_lo, g_hi): the whole groups (no std::min here: see gemm_microkernel.h on inline code).
  const int64_t up = (k_off + G - 1) / G * G, g_lo = up < k_end ? up : k_end;
  const int64_t down = k_end / G * G, g_hi = down > g_lo ? down : g_lo;
  gemm_pack_a_scalar<float>(D, rows, nrows, k_off, k_off, g_lo, MR, G, r, r + 1, panel);
  const void* row = r < nrows ? rows[r] : nullptr;
  for (int64_t kk = g_lo; kk < g_hi; kk += G) {
    float* d = panel + kk * MR + r * G;  // (kk/G)·MR·G with kk a multiple of G
    _mm256_storeu_ps(d, row ? load_row<D>(row, kk - k_off) : _mm256_setzero_ps());
  }
  gemm_pack_a_scalar<float>(D, rows, nrows, k_off, g_hi, k_end, MR, G, r, r + 1, panel);
}

template <DType D>
void pack_a_segments_f32(const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width, float* panel) {
  for (int64_t i = 0; i < nseg; ++i)
    for (int64_t r = 0; r < width; ++r) pack_a_row_f32<D>(segs[i].rows, nrows, r, segs[i].k_off, segs[i].kn, width, panel);
}

void f32_pack_a__avx2(DType dt, const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width,
                      float* panel) {
  switch (dt) {
    case DType::f32: pack_a_segments_f32<DType::f32>(segs, nseg, nrows, width, panel); break;
    case DType::f16: pack_a_segments_f32<DType::f16>(segs, nseg, nrows, width, panel); break;
    case DType::bf16: pack_a_segments_f32<DType::bf16>(segs, nseg, nrows, width, panel); break;
    default:
      gemm_pack_a_segments_scalar<float>(dt, segs, nseg, nrows, width, kGroupF32, panel);
      break;
  }
}

void f64_pack_a__avx2(const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width, double* panel) {
  gemm_pack_a_segments_k1<double>(DType::f64, segs, nseg, nrows, width, panel);
}

void f64_pack_rows__avx2(const double* const* rows, int64_t nrows, int64_t kn, int64_t width,
                         double* dst) {
  gemm_pack_rows_scalar<double>(DType::f64, reinterpret_cast<const void* const*>(rows), nrows, 0,
                                kn, width, 0, width, dst);
}

// float_to_bf16 (dtype.cpp) on 8 lanes, the same bits: round to nearest even, NaNs made quiet.
inline __m128i f32_to_bf16(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  // |v| > inf as integers (both below 2^31: a signed compare will do).
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
  // 32 -> 16 bits (values below 2^16: no saturation), lanes 0-3 and 4-7 brought together.
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}

void f32_store__avx2(const float* acc, int64_t ld_acc, int64_t m, int64_t n, DType dt, void* c,
                     int64_t ldc, bool accumulate) {
  const int64_t n8 = n / 8 * 8;
  for (int64_t r = 0; r < m; ++r) {
    uint16_t* cr = static_cast<uint16_t*>(c) + r * ldc;
    const float* ar = acc + r * ld_acc;
    for (int64_t j = 0; j < n8; j += 8) {
      __m256 v = _mm256_loadu_ps(ar + j);
      __m128i* p = reinterpret_cast<__m128i*>(cr + j);
      if (dt == DType::f16) {
        if (accumulate) v = _mm256_add_ps(v, _mm256_cvtph_ps(_mm_loadu_si128(p)));
        _mm_storeu_si128(p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      } else {
        if (accumulate)
          v = _mm256_add_ps(v, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16)));
        _mm_storeu_si128(p, f32_to_bf16(v));
      }
    }
  }
  if (n8 < n) gemm_store_scalar(acc, ld_acc, m, n8, n, dt, c, ldc, accumulate);
}

}  // namespace

const GemmKernels& gemm_kernels_avx2() {
  static const GemmKernels k = {
      {6, 16, 256, kGroupF32},
      {6, 8, 256, 1},
      f32_gemm_6x16__avx2,
      f64_gemm_6x8__avx2,
      f32_pack_a__avx2,
      f64_pack_a__avx2,
      f32_pack_rows__avx2,
      f64_pack_rows__avx2,
      f32_store__avx2,
      f32_gemm_rows_6x16__avx2,
      nullptr,
      nullptr,
      f32_gemm_krows_6x16__avx2,
      f64_gemm_krows_6x8__avx2,
      f32_gemm_krows2_6x16__avx2,
      f64_gemm_krows2_6x8__avx2,
  };
  return k;
}

}  // namespace convnd
