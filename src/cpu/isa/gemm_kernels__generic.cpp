// The portable GEMM path: GCC/Clang vector extensions of 16 bytes, which become SSE2 on
// x86-64 and NEON on ARM, with the same element order as any other build of this file.
#include "cpu/gemm.h"
#include "cpu/isa/gemm_microkernel.h"

namespace convnd {
namespace {

typedef float F32x4 __attribute__((vector_size(16)));
typedef double F64x2 __attribute__((vector_size(16)));

template <class Elem, class Reg>
struct GenericVec {
  using T = Elem;
  using R = Reg;
  static constexpr int lanes = sizeof(Reg) / sizeof(Elem);
  static R zero() { return R{}; }
  static R load(const T* p) {
    R v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static R bcast(const T* p) { return R{} + *p; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R add(R a, R b) { return a + b; }
  static void store(T* p, R v) { std::memcpy(p, &v, sizeof v); }
  static void prefetch(const T*) {}
  static void prefetch_c(const T*, int) {}
};

void f32_gemm_4x8__generic(int64_t kc, const float* a, const int64_t* a_groups, const float* b, float* c, int64_t ldc,
                           int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel<GenericVec<float, F32x4>, 4, 2, 1>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

void f64_gemm_4x4__generic(int64_t kc, const double* a, const int64_t* a_groups, const double* b, double* c, int64_t ldc,
                           int64_t m, int64_t n, bool accumulate, GemmPrefetch* pf) {
  gemm_microkernel<GenericVec<double, F64x2>, 4, 2, 1>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

void f32_gemm_krows_4x8__generic(int64_t kc, const float* const* krows, int64_t off, const float* b,
                                 int64_t ldb, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_any<GenericVec<float, F32x4>, 4, 2, 0>(kc, krows, off, b, ldb, c, ldc, m, n,
                                                                accumulate);
}

void f64_gemm_krows_4x4__generic(int64_t kc, const double* const* krows, int64_t off, const double* b,
                                 int64_t ldb, double* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_any<GenericVec<double, F64x2>, 4, 2, 0>(kc, krows, off, b, ldb, c, ldc, m, n,
                                                                 accumulate);
}

void f32_gemm_krows2_4x8__generic(int64_t kc, const float* const* krows, const float* const* krows2,
                                  int64_t off, int64_t split, const float* b, int64_t ldb, float* c,
                                  int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_split<GenericVec<float, F32x4>, 4, 2, 0>(kc, krows, krows2, off, split, b, ldb, c,
                                                                  ldc, m, n, accumulate);
}

void f64_gemm_krows2_4x4__generic(int64_t kc, const double* const* krows, const double* const* krows2,
                                  int64_t off, int64_t split, const double* b, int64_t ldb, double* c,
                                  int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  gemm_microkernel_krows_split<GenericVec<double, F64x2>, 4, 2, 0>(kc, krows, krows2, off, split, b, ldb, c,
                                                                   ldc, m, n, accumulate);
}

// A panels in groups of one k: the B layout, with the panel's width.
void f32_pack_a__generic(DType dt, const GemmASegment* segs, int64_t nseg, int64_t nrows,
                         int64_t width, float* panel) {
  gemm_pack_a_segments_k1<float>(dt, segs, nseg, nrows, width, panel);
}

void f64_pack_a__generic(const GemmASegment* segs, int64_t nseg, int64_t nrows, int64_t width,
                         double* panel) {
  gemm_pack_a_segments_k1<double>(DType::f64, segs, nseg, nrows, width, panel);
}

void f32_pack_rows__generic(DType dt, const void* const* rows, int64_t nrows, int64_t kn,
                            int64_t width, float* dst) {
  gemm_pack_rows_scalar<float>(dt, rows, nrows, 0, kn, width, 0, width, dst);
}

void f64_pack_rows__generic(const double* const* rows, int64_t nrows, int64_t kn, int64_t width,
                            double* dst) {
  gemm_pack_rows_scalar<double>(DType::f64, reinterpret_cast<const void* const*>(rows), nrows, 0,
                                kn, width, 0, width, dst);
}

void f32_store__generic(const float* acc, int64_t ld_acc, int64_t m, int64_t n, DType dt, void* c,
                        int64_t ldc, bool accumulate) {
  gemm_store_scalar(acc, ld_acc, m, 0, n, dt, c, ldc, accumulate);
}

}  // namespace

const GemmKernels& gemm_kernels_generic() {
  static const GemmKernels k = {
      {4, 8, 256, 1},
      {4, 4, 256, 1},
      f32_gemm_4x8__generic,
      f64_gemm_4x4__generic,
      f32_pack_a__generic,
      f64_pack_a__generic,
      f32_pack_rows__generic,
      f64_pack_rows__generic,
      f32_store__generic,
      nullptr,
      nullptr,
      nullptr,
      f32_gemm_krows_4x8__generic,
      f64_gemm_krows_4x4__generic,
      f32_gemm_krows2_4x8__generic,
      f64_gemm_krows2_4x4__generic,
  };
  return k;
}

}  // namespace convnd
