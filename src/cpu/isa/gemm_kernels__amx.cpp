// The amx path: the avx512 kernels, plus a bf16 GEMM kernel of 32 × 32 tiles on AMX: four C
// tiles of 16 × 16 f32, two A and two B tiles per 32 k, four TDPBF16PS (each 16 × 16 × 32
// multiply-adds). The tile configuration is per thread and other code on the thread (oneDNN
// in the same process, say) may change it, so it is loaded at the start of every task.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR105593, as in the avx512 file
#endif
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/isa/gemm_bf16_kernels.h"

namespace convnd {
namespace {

// Palette 1, eight tiles of 16 rows × 64 bytes (the layout of ldtilecfg's 64-byte operand).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// GCC's tile intrinsics are macros that paste the tile number into the instruction text, so
// each tile number is spelled out: TILE_CASES(OP) expands OP(t) for the t the template asks.
#define CONVND_TILE_CASES(T, OP)  \
  if constexpr (T == 0) {         \
    OP(0);                        \
  } else if constexpr (T == 1) {  \
    OP(1);                        \
  } else if constexpr (T == 2) {  \
    OP(2);                        \
  } else if constexpr (T == 3) {  \
    OP(3);                        \
  } else if constexpr (T == 4) {  \
    OP(4);                        \
  } else if constexpr (T == 5) {  \
    OP(5);                        \
  } else if constexpr (T == 6) {  \
    OP(6);                        \
  } else {                        \
    static_assert(T == 7);        \
    OP(7);                        \
  }

// GCC's tile loads and stores are asm statements that take the address in a register and name
// no memory operand, so the compiler does not know they read or write memory: it may drop or
// delay stores to a buffer a tile load reads (the kernel's zeroed tail of B) and read a buffer
// before the tile store that fills it (the edge tile). A compiler barrier before every load and
// after every store keeps memory in order. (Found on the GPU machine's Sapphire Rapids: NaN in
// the columns whose stack bytes the tail copy had not written; the emulated tests read memory
// through memcpy and could not see it.)
inline void memory_barrier() { __asm__ __volatile__("" ::: "memory"); }

struct AmxTiles {
  template <int T>
  static void zero() {
#define CONVND_OP(t) _tile_zero(t)
    CONVND_TILE_CASES(T, CONVND_OP)
#undef CONVND_OP
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    memory_barrier();
#define CONVND_OP(t) _tile_loadd(t, p, stride)
    CONVND_TILE_CASES(T, CONVND_OP)
#undef CONVND_OP
  }
  template <int T>
  static void store(void* p, int64_t stride) {
#define CONVND_OP(t) _tile_stored(t, p, stride)
    CONVND_TILE_CASES(T, CONVND_OP)
#undef CONVND_OP
    memory_barrier();
  }
  // The kernel's four products: C tile c from A tile 4 + c/2 and B tile 6 + c%2.
  template <int C, int A, int B>
  static void dp() {
    static_assert(A == 4 + C / 2 && B == 6 + C % 2, "the kernel's tile assignment");
    if constexpr (C == 0) {
      _tile_dpbf16ps(0, 4, 6);
    } else if constexpr (C == 1) {
      _tile_dpbf16ps(1, 4, 7);
    } else if constexpr (C == 2) {
      _tile_dpbf16ps(2, 5, 6);
    } else {
      _tile_dpbf16ps(3, 5, 7);
    }
  }
};
#undef CONVND_TILE_CASES

void bf16_gemm_32x32__amx(int64_t kc, const uint16_t* a, const int64_t* a_groups, const uint16_t* b, float* c, int64_t ldc,
                          int64_t m, int64_t n, bool accumulate) {
  bf16_gemm_amx<AmxTiles>(kc, a, a_groups, b, c, ldc, m, n, accumulate);
}


void amx_begin() {
  static const TileConfig config;
  memory_barrier();
  _tile_loadconfig(&config);
}

void amx_end() { _tile_release(); }

}  // namespace

const GemmBf16Kernels& gemm_bf16_kernels_amx() {
  static constexpr GemmBf16Kernels k = {{32, 32, 512, 32}, bf16_gemm_32x32__amx, amx_begin, amx_end};
  return k;
}

}  // namespace convnd
