// The AVX-512 GEMM path: f32 14x32 and f64 14x16 register tiles (28 accumulators, 2 B
// vectors, 1 broadcast of the 32 zmm registers). A panels are in groups of one zmm of k (16
// f32, 8 f64), packed by masked copies; B panels by 16x16 (f32) and 8x8 (f64) in-register
// transposes.
// GCC 12's AVX-512 headers trip its own uninitialised-value warning (_mm512_undefined_ps,
// GCC PR105593); nothing here reads an undefined register.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/isa/gemm_microkernel.h"

namespace convnd {
namespace {

// How far ahead (elements) the kernel prefetches the B panel it streams from L2.
constexpr int kPrefetchB = 32 * 8;

struct F32x16 {
  using T = float;
  using R = __m512;
  static constexpr int lanes = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static R bcast(const float* p) { return _mm512_set1_ps(*p); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static void prefetch(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_c(const float* p, int n) {
    for (int i = 0; i < n; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
  }
};

struct F64x8 {
  using T = double;
  using R = __m512d;
  static constexpr int lanes = 8;
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const double* p) { return _mm512_loadu_pd(p); }
  static R bcast(const double* p) { return _mm512_set1_pd(*p); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static void store(double* p, R v) { _mm512_storeu_pd(p, v); }
  static void prefetch(const double* p) { _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_c(const double* p, int n) {
    for (int i = 0; i < n; i += 8) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
  }
};

void f32_gemm_14x32__avx512(int64_t kc, const float* a, const int64_t* a_groups, const float* b, float* c, int64_t ldc,
                            int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel<F32x16, 14, 2, 16, kPrefetchB>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

void f32_gemm_rows_14x32__avx512(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                                 int64_t ldc, int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel_rows<F32x16, 14, 2, kPrefetchB>(kc, a, lda, b, c, ldc, m, n, accumulate, pf);
}

void f32_gemm_gather_14x32__avx512(int64_t kc, const float* const* rows, const int64_t* groups, const float* b,
                                   float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_gather<F32x16, 14, 2, 16, kPrefetchB>(kc, rows, groups, b, c, ldc, m, n, accumulate);
}

void f32_gemm_pairs_14x32__avx512(int64_t kc, const float* const* rows, int64_t lda, const int64_t* groups,
                                  const float* b, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_pairs<F32x16, 14, 2, 16, kPrefetchB>(kc, rows, lda, groups, b, c, ldc, m, n, accumulate);
}

void f64_gemm_14x16__avx512(int64_t kc, const double* a, const int64_t* a_groups, const double* b, double* c, int64_t ldc,
                            int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel<F64x8, 14, 2, 8, kPrefetchB / 2>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

void f32_gemm_krows_14x32__avx512(int64_t kc, const float* const* krows, int64_t off, const float* b,
                                  int64_t ldb, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_any<F32x16, 14, 2, kPrefetchB>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
}

void f64_gemm_krows_14x16__avx512(int64_t kc, const double* const* krows, int64_t off, const double* b,
                                  int64_t ldb, double* c, int64_t ldc, int64_t m, int64_t n,
                                  bool accumulate) {
  gemm_microkernel_krows_any<F64x8, 14, 2, kPrefetchB / 2>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
}

void f32_gemm_krows2_14x32__avx512(int64_t kc, const float* const* krows, const float* const* krows2,
                                   int64_t off, int64_t split, const float* b, int64_t ldb, float* c,
                                   int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_split<F32x16, 14, 2, kPrefetchB>(kc, krows, krows2, off, split, b, ldb, c, ldc, m, n,
                                                          accumulate);
}

void f64_gemm_krows2_14x16__avx512(int64_t kc, const double* const* krows, const double* const* krows2,
                                   int64_t off, int64_t split, const double* b, int64_t ldb, double* c,
                                   int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_split<F64x8, 14, 2, kPrefetchB / 2>(kc, krows, krows2, off, split, b, ldb, c, ldc, m,
                                                             n, accumulate);
}

// Loads 16 consecutive elements of a row as f32 (the first `count` of them; the rest zero).
template <DType D>
inline __m512 load_row(const void* row, int64_t k, __mmask16 mask) {
  if (D == DType::f32) return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(row) + k);
  __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(row) + k);
  if (D == DType::f16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// r[i] = row i (16 values) -> r[j] = column j (16 rows); the classic 4-stage shuffle network.
// GCC 12's avx512fintrin.h implements _mm512_unpacklo_ps as a masked builtin whose pass-through
// operand is _mm512_undefined_ps(), which -Wuninitialized reports once the call is inlined
// (seen in the sanitizer build); every lane is written by the all-ones mask, so nothing is read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline void transpose_16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Now r[4i + j], 128-bit lane l, holds rows 4i..4i+3 of column 4l + j.
  for (int j = 0; j < 4; ++j) {
    __m512 s0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    __m512 s1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
    __m512 s2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    __m512 s3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    t[j] = _mm512_shuffle_f32x4(s0, s2, 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(s1, s3, 0x88);
    t[8 + j] = _mm512_shuffle_f32x4(s0, s2, 0xdd);
    t[12 + j] = _mm512_shuffle_f32x4(s1, s3, 0xdd);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}
#pragma GCC diagnostic pop

// Packs up to 16 rows (a group of the panel width) for all kn: dst[k·width + i] for i < lanes.
template <DType D>
void pack_group_f32(const void* const rows[16], int64_t kn, int64_t width, int lanes, float* dst) {
  const __mmask16 store_mask = __mmask16((1u << lanes) - 1);
  __m512 r[16];
  for (int64_t k = 0; k < kn; k += 16) {
    const int count = kn - k < 16 ? int(kn - k) : 16;
    const __mmask16 load_mask = __mmask16((1u << count) - 1);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      r[i] = rows[i] ? load_row<D>(rows[i], k, load_mask) : _mm512_setzero_ps();
    transpose_16x16(r);
    for (int j = 0; j < count; ++j) _mm512_mask_storeu_ps(dst + (k + j) * width, store_mask, r[j]);
  }
}

// The address of element k of a row as a uintptr_t: k may be negative, for a masked load
// whose leading lanes are off (they read nothing and cannot fault).
inline uintptr_t element_address(const void* row, int64_t k, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(row) + uintptr_t(k * bytes);
}

// Writes A-panel columns [k_off, k_off + kn) of all MR rows, groups of 16: each row's part of a
// group is one masked load (lanes before k_off or past the end off) and one masked store.
template <DType D>
void pack_a_f32(const void* const* rows, int64_t nrows, int64_t k_off, int64_t kn, int64_t MR, float* panel) {
  constexpr int64_t G = 16;
  const int64_t es = D == DType::f32 ? 4 : 2;
  const int64_t k_end = k_off + kn;
  for (int64_t g0 = k_off / G * G; g0 < k_end; g0 += G) {
    const int64_t lo = g0 > k_off ? g0 : k_off, hi = g0 + G < k_end ? g0 + G : k_end;
    const __mmask16 mask = __mmask16(((1u << (hi - lo)) - 1) << (lo - g0));
    float* d = panel + g0 * MR;  // (g0/G)·MR·G
    for (int64_t r = 0; r < MR; ++r) {
      const void* row = r < nrows ? rows[r] : nullptr;
      __m512 v = _mm512_setzero_ps();
      if (row) {
        const uintptr_t lane0 = element_address(row, g0 - k_off, es);
        if (D == DType::f32) {
          v = _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(lane0));
        } else {
          __m256i h = _mm256_maskz_loadu_epi16(mask, reinterpret_cast<const uint16_t*>(lane0));
          v = D == DType::f16 ? _mm512_cvtph_ps(h)
                              : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        }
      }
      _mm512_mask_storeu_ps(d + r * G, mask, v);
    }
  }
}

template <DType D>
void pack_a_segments_f32(const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width, float* panel) {
  for (int64_t i = 0; i < nseg; ++i) pack_a_f32<D>(segs[i].rows, nrows, segs[i].k_off, segs[i].kn, width, panel);
}

void f32_pack_a__avx512(DType dt, const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width,
                        float* panel) {
  switch (dt) {
    case DType::f32: pack_a_segments_f32<DType::f32>(segs, nseg, nrows, width, panel); break;
    case DType::f16: pack_a_segments_f32<DType::f16>(segs, nseg, nrows, width, panel); break;
    case DType::bf16: pack_a_segments_f32<DType::bf16>(segs, nseg, nrows, width, panel); break;
    default:
      gemm_pack_a_segments_scalar<float>(dt, segs, nseg, nrows, width, 16, panel);
      break;
  }
}

void f64_pack_a__avx512(const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t MR,
                        double* panel) {
  constexpr int64_t G = 8;
  for (int64_t i = 0; i < nseg; ++i) {
    const int64_t k_off = segs[i].k_off, k_end = k_off + segs[i].kn;
    for (int64_t g0 = k_off / G * G; g0 < k_end; g0 += G) {
      const int64_t lo = g0 > k_off ? g0 : k_off, hi = g0 + G < k_end ? g0 + G : k_end;
      const __mmask8 mask = __mmask8(((1u << (hi - lo)) - 1) << (lo - g0));
      double* d = panel + g0 * MR;
      for (int64_t r = 0; r < MR; ++r) {
        const void* row = r < nrows ? segs[i].rows[r] : nullptr;
        const __m512d v = row ? _mm512_maskz_loadu_pd(mask, reinterpret_cast<const double*>(element_address(row, g0 - k_off, 8)))
                              : _mm512_setzero_pd();
        _mm512_mask_storeu_pd(d + r * G, mask, v);
      }
    }
  }
}

void f32_pack_rows__avx512(DType dt, const void* const* rows, int64_t nrows, int64_t kn,
                           int64_t width, float* dst) {
  if (dt == DType::f64) {
    gemm_pack_rows_scalar<float>(dt, rows, nrows, 0, kn, width, 0, width, dst);
    return;
  }
  for (int64_t g = 0; g < width; g += 16) {
    const int lanes = width - g < 16 ? int(width - g) : 16;
    const void* group[16];
    for (int i = 0; i < 16; ++i) group[i] = (i < lanes && g + i < nrows) ? rows[g + i] : nullptr;
    switch (dt) {
      case DType::f32: pack_group_f32<DType::f32>(group, kn, width, lanes, dst + g); break;
      case DType::f16: pack_group_f32<DType::f16>(group, kn, width, lanes, dst + g); break;
      default: pack_group_f32<DType::bf16>(group, kn, width, lanes, dst + g); break;
    }
  }
}

// r[i] = row i (8 values) -> r[j] = column j (8 rows).
inline void transpose_8x8(__m512d r[8]) {
  __m512d t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
  // t[2i], 128-bit lane l: rows 2i, 2i+1 of column 2l; t[2i+1]: of column 2l + 1.
  for (int h = 0; h < 2; ++h) {
    u[4 * h] = _mm512_shuffle_f64x2(t[4 * h], t[4 * h + 2], 0x88);
    u[4 * h + 1] = _mm512_shuffle_f64x2(t[4 * h], t[4 * h + 2], 0xdd);
    u[4 * h + 2] = _mm512_shuffle_f64x2(t[4 * h + 1], t[4 * h + 3], 0x88);
    u[4 * h + 3] = _mm512_shuffle_f64x2(t[4 * h + 1], t[4 * h + 3], 0xdd);
  }
  // u[4h + q]: rows 4h..4h+3 of columns (0, 4), (2, 6), (1, 5), (3, 7) for q = 0, 1, 2, 3.
  static constexpr int kColumn[4] = {0, 2, 1, 3};
  for (int q = 0; q < 4; ++q) {
    r[kColumn[q]] = _mm512_shuffle_f64x2(u[q], u[4 + q], 0x88);
    r[kColumn[q] + 4] = _mm512_shuffle_f64x2(u[q], u[4 + q], 0xdd);
  }
}

void f64_pack_rows__avx512(const double* const* rows, int64_t nrows, int64_t kn, int64_t width,
                           double* dst) {
  for (int64_t g = 0; g < width; g += 8) {
    const int lanes = width - g < 8 ? int(width - g) : 8;
    const __mmask8 store_mask = __mmask8((1u << lanes) - 1);
    const double* group[8];
    for (int i = 0; i < 8; ++i) group[i] = (i < lanes && g + i < nrows) ? rows[g + i] : nullptr;
    __m512d r[8];
    for (int64_t k = 0; k < kn; k += 8) {
      const int count = kn - k < 8 ? int(kn - k) : 8;
      const __mmask8 load_mask = __mmask8((1u << count) - 1);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        r[i] = group[i] ? _mm512_maskz_loadu_pd(load_mask, group[i] + k) : _mm512_setzero_pd();
      transpose_8x8(r);
      for (int j = 0; j < count; ++j) _mm512_mask_storeu_pd(dst + g + (k + j) * width, store_mask, r[j]);
    }
  }
}

// Round to nearest even like float_to_bf16, NaN made quiet.
inline __m256i f32_to_bf16(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

void f32_store__avx512(const float* acc, int64_t ld_acc, int64_t m, int64_t n, DType dt, void* c,
                       int64_t ldc, bool accumulate) {
  for (int64_t r = 0; r < m; ++r) {
    uint16_t* cr = static_cast<uint16_t*>(c) + r * ldc;
    const float* ar = acc + r * ld_acc;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mask = n - j < 16 ? __mmask16((1u << (n - j)) - 1) : __mmask16(0xffff);
      __m512 v = _mm512_maskz_loadu_ps(mask, ar + j);
      if (dt == DType::f16) {
        if (accumulate) v = _mm512_add_ps(v, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, cr + j)));
        _mm256_mask_storeu_epi16(cr + j, mask, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      } else {
        if (accumulate) {
          __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, cr + j));
          v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
        }
        _mm256_mask_storeu_epi16(cr + j, mask, f32_to_bf16(v));
      }
    }
  }
}

}  // namespace

const GemmKernels& gemm_kernels_avx512() {
  static const GemmKernels k = {
      {14, 32, 384, 16},
      {14, 16, 192, 8},
      f32_gemm_14x32__avx512,
      f64_gemm_14x16__avx512,
      f32_pack_a__avx512,
      f64_pack_a__avx512,
      f32_pack_rows__avx512,
      f64_pack_rows__avx512,
      f32_store__avx512,
      f32_gemm_rows_14x32__avx512,
      f32_gemm_gather_14x32__avx512,
      f32_gemm_pairs_14x32__avx512,
      f32_gemm_krows_14x32__avx512,
      f64_gemm_krows_14x16__avx512,
      f32_gemm_krows2_14x32__avx512,
      f64_gemm_krows2_14x16__avx512,
  };
  return k;
}

}  // namespace convnd
