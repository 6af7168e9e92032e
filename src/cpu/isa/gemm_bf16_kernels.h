// The bf16 GEMM kernels (gemm.h, "bf16 compute"), written once over small policy types:
// gemm_kernels__avx512bf16.cpp and gemm_kernels__amx.cpp instantiate them with the
// instructions, tests/unit/bf16_emulation.h with plain C++ that emulates them, so the layouts,
// edges and K tails are tested on any machine; and the B converter, plain C++ that gemm.cpp
// runs (once per packed B panel) for both. Anonymous namespace, like gemm_microkernel.h: an ISA
// file must not hand the linker a shared copy.
#pragma once
#include <cstdint>
#include <cstring>

namespace convnd {
namespace {

// f32 -> bf16, round to nearest even. The panels hold bf16 values widened to f32, for which
// this is exact; rounding keeps it right for anything else.
inline uint16_t bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// An f32 B panel [K, nr] rewritten in place as pairs [ceil(K/2), nr, 2] (zero for k = K when K
// is odd). Pair p's output, bytes [4p·nr, 4p·nr + 4nr), ends before row 2p + 2 (byte 8p·nr + 8nr)
// starts, and rows 2p and 2p + 1 are read whole before it is written: nothing unread is lost.
inline void bf16_convert_b_impl(void* panel, int64_t K, int64_t nr) {
  float* f = static_cast<float*>(panel);
  uint16_t* h = static_cast<uint16_t*>(panel);
  constexpr int64_t kMaxNr = 64;
  float row0[kMaxNr], row1[kMaxNr];
  for (int64_t p = 0; 2 * p < K; ++p) {
    std::memcpy(row0, f + 2 * p * nr, size_t(nr) * 4);
    if (2 * p + 1 < K)
      std::memcpy(row1, f + (2 * p + 1) * nr, size_t(nr) * 4);
    else
      for (int64_t c = 0; c < nr; ++c) row1[c] = 0.f;
    uint16_t* d = h + p * nr * 2;
    for (int64_t c = 0; c < nr; ++c) {
      d[2 * c] = bf16_round(row0[c]);
      d[2 * c + 1] = bf16_round(row1[c]);
    }
  }
}

// C (m × n of a 32 × 32 tile) (+)= A·B with AMX tiles: C in tiles 0..3 (rows 0-15 / 16-31 ×
// columns 0-15 / 16-31), A rows 0-15 and 16-31 in tiles 4 and 5, B columns 0-15 and 16-31 in
// tiles 6 and 7; all 16 rows × 64 bytes. Per 32 k (a group of the A panel, kg = 32, at
// a + a_groups[g]): A tile rows are 64 bytes apart, B tile rows (pairs of k) 128 (nr = 32).
// X provides configure(), zero<t>(), load<t>(p, stride_bytes), store<t>(p, stride_bytes),
// dp<c, a, b>() (tile c += a·b over bf16 pairs).
template <class X>
inline void bf16_gemm_amx(int64_t kc, const uint16_t* a, const int64_t* a_groups, const uint16_t* b, float* c,
                          int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  constexpr int64_t kMr = 32, kNr = 32;
  alignas(64) float edge[kMr * kNr];
  const bool full = m == kMr && n == kNr;
  float* cc = full ? c : edge;
  const int64_t ld = full ? ldc : kNr;
  if (accumulate) {
    if (!full) {
      for (int64_t r = 0; r < kMr; ++r)
        for (int64_t j = 0; j < kNr; ++j) edge[r * kNr + j] = r < m && j < n ? c[r * ldc + j] : 0.f;
    }
    X::template load<0>(cc, ld * 4);
    X::template load<1>(cc + 16, ld * 4);
    X::template load<2>(cc + 16 * ld, ld * 4);
    X::template load<3>(cc + 16 * ld + 16, ld * 4);
  } else {
    X::template zero<0>();
    X::template zero<1>();
    X::template zero<2>();
    X::template zero<3>();
  }
  auto step = [&](const uint16_t* ag, const uint16_t* bg) {
    X::template load<4>(ag, 64);
    X::template load<5>(ag + 16 * 32, 64);
    X::template load<6>(bg, kNr * 4);
    X::template load<7>(bg + 32, kNr * 4);
    X::template dp<0, 4, 6>();
    X::template dp<1, 4, 7>();
    X::template dp<2, 5, 6>();
    X::template dp<3, 5, 7>();
  };
  const int64_t whole = kc / 32, tail = kc % 32;
  for (int64_t g = 0; g < whole; ++g) step(a + a_groups[g], b + g * 16 * kNr * 2);
  if (tail) {
    // The last pairs of B end the panel: copy them into a zeroed group so the tile load reads
    // nothing past it (the A group's lanes past kc are zero).
    alignas(64) uint16_t bt[16 * kNr * 2] = {};
    std::memcpy(bt, b + whole * 16 * kNr * 2, size_t((tail + 1) / 2 * kNr * 2) * 2);
    step(a + a_groups[whole], bt);
  }
  X::template store<0>(cc, ld * 4);
  X::template store<1>(cc + 16, ld * 4);
  X::template store<2>(cc + 16 * ld, ld * 4);
  X::template store<3>(cc + 16 * ld + 16, ld * 4);
  if (!full)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = edge[r * kNr + j];
}

// C (m × n of an MR × 32 tile) (+)= A·B with dot products of bf16 pairs: acc[r][v] holds C[r,
// 16v ...]; per k pair, B's 32 columns in two vectors and row r's pair broadcast (A panel with
// kg = 2: row r's pair p at a + a_groups[p] + r·2). D provides Acc, Pairs, zero(), load(p),
// store(p, v), load_b(p), bcast_a(p), dp(acc, a, b).
template <class D, int MR>
inline void bf16_gemm_dot(int64_t kc, const uint16_t* a, const int64_t* a_groups, const uint16_t* b, float* c,
                          int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  constexpr int64_t kNr = 32;
  alignas(64) float edge[MR * kNr];
  const bool full = m == MR && n == kNr;
  float* cc = full ? c : edge;
  const int64_t ld = full ? ldc : kNr;
  if (accumulate && !full)
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t j = 0; j < kNr; ++j) edge[r * kNr + j] = r < m && j < n ? c[r * ldc + j] : 0.f;
  typename D::Acc acc[MR][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = accumulate ? D::load(cc + r * ld) : D::zero();
    acc[r][1] = accumulate ? D::load(cc + r * ld + 16) : D::zero();
  }
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    const typename D::Pairs b0 = D::load_b(b + p * kNr * 2), b1 = D::load_b(b + p * kNr * 2 + 32);
    const uint16_t* ap = a + a_groups[p];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename D::Pairs av = D::bcast_a(ap + r * 2);
      acc[r][0] = D::dp(acc[r][0], av, b0);
      acc[r][1] = D::dp(acc[r][1], av, b1);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    D::store(cc + r * ld, acc[r][0]);
    D::store(cc + r * ld + 16, acc[r][1]);
  }
  if (!full)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = edge[r * kNr + j];
}

}  // namespace
}  // namespace convnd
