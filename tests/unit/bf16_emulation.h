// Plain C++ stand-ins for the bf16 instructions (AMX tiles, VDPBF16PS), instantiating the
// kernels of src/cpu/isa/gemm_bf16_kernels.h for machines without them (gemm_bf16_test.cpp,
// bf16_levels_test.cpp). Anonymous namespace: each test file has its own copy.
#pragma once
#include <convnd/dtype.h>

#include <cstdint>
#include <cstring>

#include "cpu/gemm.h"
#include "cpu/isa/gemm_bf16_kernels.h"

namespace convnd {
namespace {

float widen(uint16_t h) { return bf16_to_float(h); }

// AMX tiles in memory: eight of 16 rows × 64 bytes per thread; TDPBF16PS as Intel's pseudo-code
// gives it (each f32 sum plus the pair's two products).
struct EmulatedTiles {
  static thread_local uint8_t tile[8][16 * 64];
  template <int T>
  static void zero() {
    std::memset(tile[T], 0, sizeof(tile[T]));
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    for (int r = 0; r < 16; ++r) std::memcpy(tile[T] + r * 64, static_cast<const char*>(p) + r * stride, 64);
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    for (int r = 0; r < 16; ++r) std::memcpy(static_cast<char*>(p) + r * stride, tile[T] + r * 64, 64);
  }
  template <int C, int A, int B>
  static void dp() {
    float c[256];
    uint16_t a[512], b[512];
    std::memcpy(c, tile[C], sizeof(c));
    std::memcpy(a, tile[A], sizeof(a));
    std::memcpy(b, tile[B], sizeof(b));
    // The sum in a local: GCC 12 at -O3 vectorised the same loop accumulating through a
    // reference into c wrongly (each product counted twice).
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        float s = c[m * 16 + n];
        for (int k = 0; k < 16; ++k) {
          s += widen(a[m * 32 + 2 * k + 1]) * widen(b[k * 32 + 2 * n + 1]);
          s += widen(a[m * 32 + 2 * k]) * widen(b[k * 32 + 2 * n]);
        }
        c[m * 16 + n] = s;
      }
    std::memcpy(tile[C], c, sizeof(c));
  }
};
thread_local uint8_t EmulatedTiles::tile[8][16 * 64];

// VDPBF16PS on 16 lanes.
struct EmulatedDot {
  struct Acc {
    float v[16];
  };
  struct Pairs {
    uint16_t v[32];
  };
  static Acc zero() { return Acc{}; }
  static Acc load(const float* p) {
    Acc a;
    std::memcpy(a.v, p, sizeof(a.v));
    return a;
  }
  static void store(float* p, const Acc& a) { std::memcpy(p, a.v, sizeof(a.v)); }
  static Pairs load_b(const uint16_t* p) {
    Pairs b;
    std::memcpy(b.v, p, sizeof(b.v));
    return b;
  }
  static Pairs bcast_a(const uint16_t* p) {
    Pairs a;
    for (int i = 0; i < 16; ++i) a.v[2 * i] = p[0], a.v[2 * i + 1] = p[1];
    return a;
  }
  static Acc dp(Acc acc, const Pairs& a, const Pairs& b) {
    for (int i = 0; i < 16; ++i) {
      float s = acc.v[i];
      s += widen(a.v[2 * i + 1]) * widen(b.v[2 * i + 1]);
      s += widen(a.v[2 * i]) * widen(b.v[2 * i]);
      acc.v[i] = s;
    }
    return acc;
  }
};

void emulated_amx_gemm(int64_t kc, const uint16_t* a, const int64_t* groups, const uint16_t* b, float* c, int64_t ldc,
                       int64_t m, int64_t n, bool accumulate) {
  bf16_gemm_amx<EmulatedTiles>(kc, a, groups, b, c, ldc, m, n, accumulate);
}
void emulated_dot_gemm(int64_t kc, const uint16_t* a, const int64_t* groups, const uint16_t* b, float* c, int64_t ldc,
                       int64_t m, int64_t n, bool accumulate) {
  bf16_gemm_dot<EmulatedDot, 14>(kc, a, groups, b, c, ldc, m, n, accumulate);
}

// The real paths' tables with the emulated kernels in place of the instructions.
GemmBf16Kernels emulated_bf16_kernels(bool amx) {
  GemmBf16Kernels k = amx ? gemm_bf16_kernels_amx() : gemm_bf16_kernels_avx512bf16();
  k.gemm = amx ? emulated_amx_gemm : emulated_dot_gemm;
  k.begin = nullptr;
  k.end = nullptr;
  return k;
}

}  // namespace
}  // namespace convnd
