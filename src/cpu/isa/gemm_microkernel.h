// The register-tiled GEMM micro-kernel and the portable panel packer, written once over a
// small SIMD traits type and instantiated by each gemm_kernels__<isa>.cpp. Everything here is
// in an anonymous namespace: a file compiled with -mavx512f must not hand the linker an
// out-of-line copy that another file (compiled for a lower ISA) could end up calling.
#pragma once
#include <convnd/dtype.h>

#include <cstdint>
#include <cstring>

namespace convnd {
namespace {

// The register tile every micro-kernel below shares: C[m, n] (+)= A · B for one
// MR × (NV·lanes) tile, acc[r][v] holding C[r, v·lanes ...]. A is broadcast one element at a
// time, B is loaded as NV vectors per k. The k loop is the only reduction, in order, so the
// result of an element does not depend on where its tile sits, nor on how a kernel finds A
// (packed, in place, gathered): the kernels differ only in the address of row r's k-th value.
// V provides: T, R (register), lanes, zero, load, bcast, fma, add, store, prefetch (of B,
// PrefetchB elements ahead; 0: none), prefetch_c.
template <class V, int MR, int NV>
struct MicroTile {
  using T = typename V::T;
  using R = typename V::R;
  static constexpr int L = V::lanes;
  static constexpr int NR = NV * L;
  R acc[MR][NV];

  // Zero accumulators; the C tile is read or written once at the end, so start fetching it.
  void start(const T* c, int64_t ldc) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) V::prefetch_c(c + r * ldc, NR);
  }

  // One k step: B's row at b, row r's A value at a_at(r).
  template <int PrefetchB, class At>
  void step(const T* b, const At& a_at) {
    if (PrefetchB)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) V::prefetch(b + PrefetchB + v * L);
    R bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * L);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      R av = V::bcast(a_at(r));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, bv[v], acc[r][v]);
    }
  }

  // C[r, j] (+)= acc for r < m, j < n.
  void finish(T* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
    if (m == MR && n == NR) {
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          T* p = c + r * ldc + v * L;
          V::store(p, accumulate ? V::add(V::load(p), acc[r][v]) : acc[r][v]);
        }
      return;
    }
    // Edge tile: the same sums, stored element by element (an IEEE add is the same in a lane
    // or alone, so edges and full tiles agree bit for bit).
    alignas(64) T tmp[MR * NR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) V::store(tmp + r * NR + v * L, acc[r][v]);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        T* p = c + r * ldc + j;
        *p = accumulate ? T(*p + tmp[r * NR + j]) : tmp[r * NR + j];
      }
  }
};

// The A prefetch stream (gemm.h GemmPrefetch) as a kernel walks it, one line per k step, its
// position in registers (a store to *pf per k would cost more than the fetch). On = false
// compiles to nothing.
template <bool On>
struct PrefetchCursor {
  GemmPrefetch* pf;
  int run = 0;
  const char* p = nullptr;
  int64_t left = 0;  // lines left in run `run`
  explicit PrefetchCursor(GemmPrefetch* f) : pf(f) {
    if (On) {
      run = pf->next;
      p = pf->runs[run].p + pf->line * 64;
      left = pf->runs[run].lines - pf->line;
    }
  }
  void tick() {
    if (On && left > 0) {
      __builtin_prefetch(p, 0, 3);
      p += 64;
      if (--left == 0 && run + 1 < pf->count) {
        ++run;
        p = pf->runs[run].p;
        left = pf->runs[run].lines;
      }
    }
  }
  void save() {
    if (On) {
      pf->next = run;
      pf->line = pf->runs[run].lines - left;
    }
  }
};

// Whether pf has lines left to fetch: the kernels come in two builds, with the stream and
// without it for when there is none (its per-k test, though never taken, costs a few percent
// of the tightest loop).
inline bool prefetch_pending(const GemmPrefetch* pf) {
  return pf && pf->next < pf->count && pf->line < pf->runs[pf->next].lines;
}

// The packed kernel. The A panel is in groups of G k (gemm.h): group j (k in [j·G, j·G + G))
// starts at a + a_groups[j], and within it element [k][r] is at r·G + k%G, so a row's G values
// are contiguous and packing them needs no transpose. The standard layout has
// a_groups[j] = j·MR·G.
template <class V, int MR, int NV, int G, int PrefetchB, bool PrefetchA>
inline void gemm_microkernel_body(int64_t kc, const typename V::T* a, const int64_t* a_groups,
                                  const typename V::T* b, typename V::T* c, int64_t ldc, int64_t m,
                                  int64_t n, bool accumulate, GemmPrefetch* pf) {
  using T = typename V::T;
  MicroTile<V, MR, NV> tile;
  tile.start(c, ldc);
  PrefetchCursor<PrefetchA> fetch(pf);
  for (int64_t k0 = 0; k0 < kc; k0 += G) {
    const int64_t kn = kc - k0 < G ? kc - k0 : G;
    const T* ak = a + *a_groups++;  // this group's MR rows of G values
    for (int64_t kk = 0; kk < kn; ++kk) {
      tile.template step<PrefetchB>(b, [&](int r) { return ak + r * G + kk; });
      b += MicroTile<V, MR, NV>::NR;
      fetch.tick();
    }
  }
  fetch.save();
  tile.finish(c, ldc, m, n, accumulate);
}

// The kernel reading a full panel of A straight from memory, rows lda elements apart (no
// packing): row r's k-th value is a[r·lda + k], for all MR rows. The rows are addressed from
// one base per three rows (base + {0, 1, 2}·lda is an x86 address mode), which keeps the
// pointers in registers where fourteen separate ones would not fit.
template <class V, int MR, int NV, int PrefetchB, bool PrefetchA>
inline void gemm_microkernel_rows_body(int64_t kc, const typename V::T* a, int64_t lda,
                                       const typename V::T* b, typename V::T* c, int64_t ldc, int64_t m,
                                       int64_t n, bool accumulate, GemmPrefetch* pf) {
  using T = typename V::T;
  static_assert(MR <= 15, "five bases of three rows");
  MicroTile<V, MR, NV> tile;
  tile.start(c, ldc);
  PrefetchCursor<PrefetchA> fetch(pf);
  const T* a0 = a;
  const T* a3 = a + (MR > 3 ? 3 : 0) * lda;
  const T* a6 = a + (MR > 6 ? 6 : 0) * lda;
  const T* a9 = a + (MR > 9 ? 9 : 0) * lda;
  const T* a12 = a + (MR > 12 ? 12 : 0) * lda;
  for (int64_t k = 0; k < kc; ++k) {
    tile.template step<PrefetchB>(b, [&](int r) {
      const T* base = r < 3 ? a0 : r < 6 ? a3 : r < 9 ? a6 : r < 12 ? a9 : a12;
      const int64_t sub = r < 3 ? r : r < 6 ? r - 3 : r < 9 ? r - 6 : r < 12 ? r - 9 : r - 12;
      return base + sub * lda + k;
    });
    b += MicroTile<V, MR, NV>::NR;
    fetch.tick();
  }
  fetch.save();
  tile.finish(c, ldc, m, n, accumulate);
}

template <class V, int MR, int NV, int PrefetchB = 0>
inline void gemm_microkernel_rows(int64_t kc, const typename V::T* a, int64_t lda,
                                  const typename V::T* b, typename V::T* c, int64_t ldc, int64_t m,
                                  int64_t n, bool accumulate, GemmPrefetch* pf) {
  if (prefetch_pending(pf))
    gemm_microkernel_rows_body<V, MR, NV, PrefetchB, true>(kc, a, lda, b, c, ldc, m, n, accumulate, pf);
  else
    gemm_microkernel_rows_body<V, MR, NV, PrefetchB, false>(kc, a, lda, b, c, ldc, m, n, accumulate, pf);
}

// The kernel reading a panel of an implicit im2col in place: row r of group j (its kg values
// contiguous) starts at rows[r] + groups[j]. For an input padded so that every tap is inside,
// rows[r] is output row r's input pixel and groups[j] its tap's offset plus the channel group:
// no packing at all.
template <class V, int MR, int NV, int G, int PrefetchB>
inline void gemm_microkernel_gather(int64_t kc, const typename V::T* const* rows, const int64_t* groups,
                                    const typename V::T* b, typename V::T* c, int64_t ldc, int64_t m,
                                    int64_t n, bool accumulate) {
  using T = typename V::T;
  MicroTile<V, MR, NV> tile;
  tile.start(c, ldc);
  for (int64_t k0 = 0; k0 < kc; k0 += G) {
    const int64_t kn = kc - k0 < G ? kc - k0 : G;
    const int64_t off = *groups++;
    const T* p[MR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) p[r] = rows[r] + off;
    for (int64_t kk = 0; kk < kn; ++kk) {
      tile.template step<PrefetchB>(b, [&](int r) { return p[r] + kk; });
      b += MicroTile<V, MR, NV>::NR;
    }
  }
  tile.finish(c, ldc, m, n, accumulate);
}

// gemm_microkernel_gather for panels whose rows come in pairs a fixed distance apart (row
// 2b + 1 at row 2b + lda: the pair lies in one output line): MR / 2 pointers and lda, and the
// k steps of a whole group unrolled, so that every address is a pointer plus lda plus a
// constant and nothing spills from the registers.
template <class V, int MR, int NV, int G, int PrefetchB>
inline void gemm_microkernel_pairs(int64_t kc, const typename V::T* const* rows, int64_t lda,
                                   const int64_t* groups, const typename V::T* b, typename V::T* c,
                                   int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  using T = typename V::T;
  constexpr int NR = MicroTile<V, MR, NV>::NR;
  constexpr int P = MR / 2;
  static_assert(MR % 2 == 0, "pairs of rows");
  MicroTile<V, MR, NV> tile;
  tile.start(c, ldc);
  // Group g's row pointers, and row r's value kk of them.
  const T* p[P];
  auto pointers = [&](int64_t off) {
#pragma GCC unroll 16
    for (int q = 0; q < P; ++q) p[q] = rows[2 * q] + off;
  };
  auto at = [&](int kk) { return [&, kk](int r) { return p[r / 2] + (r % 2) * lda + kk; }; };
  int64_t k0 = 0;
  for (; k0 + G <= kc; k0 += G) {
    pointers(*groups++);
#pragma GCC unroll 16
    for (int kk = 0; kk < G; ++kk) tile.template step<PrefetchB>(b + kk * NR, at(kk));
    b += G * NR;
  }
  if (k0 < kc) {
    pointers(*groups);
    for (int kk = 0; k0 + kk < kc; ++kk) tile.template step<PrefetchB>(b + kk * NR, at(kk));
  }
  tile.finish(c, ldc, m, n, accumulate);
}

// The kernel for an A given k-major through one pointer per k: row r's k-th value is
// krows[k][off + r], so a panel's MR values of one k are contiguous (e.g. MR consecutive channels
// of one input pixel: the transposed im2col of a weight gradient, read where it lies); B's rows
// ldb elements apart (NR when packed). The same sums in the same order as the packed kernel.
template <class V, int MR, int NV, int PrefetchB>
inline void gemm_microkernel_krows(int64_t kc, const typename V::T* const* krows, int64_t off,
                                   const typename V::T* b, int64_t ldb, typename V::T* c, int64_t ldc,
                                   int64_t m, int64_t n, bool accumulate) {
  using T = typename V::T;
  MicroTile<V, MR, NV> tile;
  tile.start(c, ldc);
  for (int64_t k = 0; k < kc; ++k) {
    const T* a = krows[k] + off;
    // The end of the next panel's run of row k (the columns after these): a caller walks the
    // columns in order and the rows are strided (one input pixel each), which the hardware
    // prefetchers do not follow; the start of that run mostly shares this run's last line.
    V::prefetch(a + (2 * MR - 1));
    tile.template step<PrefetchB>(b, [&](int r) { return a + r; });
    b += ldb;
  }
  tile.finish(c, ldc, m, n, accumulate);
}

// gemm_microkernel_krows for a partial panel (m < MR): a tile of 4 or 8 rows where that covers
// m, so that the last panel of a column range does not cost a whole one (1x1 c256: 18 panels
// of 14 and one of 4). Reads at least m and at most MR values per k.
template <class V, int MR, int NV, int PrefetchB>
inline void gemm_microkernel_krows_any(int64_t kc, const typename V::T* const* krows, int64_t off,
                                       const typename V::T* b, int64_t ldb, typename V::T* c, int64_t ldc,
                                       int64_t m, int64_t n, bool accumulate) {
  if constexpr (MR >= 12) {
    if (m <= 4)
      return gemm_microkernel_krows<V, 4, NV, PrefetchB>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
    if (m <= 8)
      return gemm_microkernel_krows<V, 8, NV, PrefetchB>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
  }
  gemm_microkernel_krows<V, MR, NV, PrefetchB>(kc, krows, off, b, ldb, c, ldc, m, n, accumulate);
}

// gemm_microkernel_krows for a panel whose rows come from two runs: rows r < S at
// krows[k][off + r], rows r >= S at krows2[k][r - S] (a panel of columns (tap, c) that crosses
// from one tap into the next). The same sums in the same order.
template <class V, int MR, int NV, int PrefetchB, int S>
inline void gemm_microkernel_krows2(int64_t kc, const typename V::T* const* krows,
                                    const typename V::T* const* krows2, int64_t off, const typename V::T* b,
                                    int64_t ldb, typename V::T* c, int64_t ldc, int64_t m, int64_t n,
                                    bool accumulate) {
  using T = typename V::T;
  MicroTile<V, MR, NV> tile;
  tile.start(c, ldc);
  for (int64_t k = 0; k < kc; ++k) {
    const T* a = krows[k] + off;
    const T* a2 = krows2[k];
    V::prefetch(a2 + (2 * MR - S - 1));  // as in gemm_microkernel_krows
    tile.template step<PrefetchB>(b, [&](int r) { return r < S ? a + r : a2 + (r - S); });
    b += ldb;
  }
  tile.finish(c, ldc, m, n, accumulate);
}

// gemm_microkernel_krows2 with the split S (0 < S < MR) chosen at run time.
template <class V, int MR, int NV, int PrefetchB, int S = 1>
inline void gemm_microkernel_krows_split(int64_t kc, const typename V::T* const* krows,
                                         const typename V::T* const* krows2, int64_t off, int64_t split,
                                         const typename V::T* b, int64_t ldb, typename V::T* c, int64_t ldc,
                                         int64_t m, int64_t n, bool accumulate) {
  if constexpr (S < MR) {
    if (split == S)
      return gemm_microkernel_krows2<V, MR, NV, PrefetchB, S>(kc, krows, krows2, off, b, ldb, c, ldc, m, n,
                                                              accumulate);
    return gemm_microkernel_krows_split<V, MR, NV, PrefetchB, S + 1>(kc, krows, krows2, off, split, b, ldb, c,
                                                                     ldc, m, n, accumulate);
  }
}

// The packed kernel, with or without the prefetch stream as pf has lines left.
template <class V, int MR, int NV, int G, int PrefetchB = 0>
inline void gemm_microkernel(int64_t kc, const typename V::T* a, const int64_t* a_groups,
                             const typename V::T* b, typename V::T* c, int64_t ldc, int64_t m,
                             int64_t n, bool accumulate, GemmPrefetch* pf) {
  if (prefetch_pending(pf))
    gemm_microkernel_body<V, MR, NV, G, PrefetchB, true>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
  else
    gemm_microkernel_body<V, MR, NV, G, PrefetchB, false>(kc, a, a_groups, b, c, ldc, m, n, accumulate, pf);
}

// bf16_to_float of dtype.h, kept file-local: an inline function shared with other files could
// be emitted here (e.g. at -O0) with AVX-512 instructions and picked by the linker for all.
inline float gemm_bf16_to_f32(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// dst[k·width + r] = rows[r][k] for rows r0 <= r < r1 (null or r >= nrows: zero), k in
// [k0, k1). The portable path, also used for edges by the vector packers. K goes in chunks so
// that the rows revisit a destination piece while it is still in L1.
template <class T>
inline void gemm_pack_rows_scalar(DType dt, const void* const* rows, int64_t nrows, int64_t k0,
                                  int64_t k1, int64_t width, int64_t r0, int64_t r1, T* dst) {
  constexpr int64_t kChunk = 64;
  for (int64_t ka = k0; ka < k1; ka += kChunk) {
    const int64_t kb = ka + kChunk < k1 ? ka + kChunk : k1;
    for (int64_t r = r0; r < r1; ++r) {
      const void* row = r < nrows ? rows[r] : nullptr;
      T* d = dst + r;
      if (!row) {
        for (int64_t k = ka; k < kb; ++k) d[k * width] = T(0);
      } else if (dt == DType::f32) {
        const float* s = static_cast<const float*>(row);
        for (int64_t k = ka; k < kb; ++k) d[k * width] = T(s[k]);
      } else if (dt == DType::f64) {
        const double* s = static_cast<const double*>(row);
        for (int64_t k = ka; k < kb; ++k) d[k * width] = T(s[k]);
      } else if (dt == DType::f16) {
        const uint16_t* s = static_cast<const uint16_t*>(row);
        for (int64_t k = ka; k < kb; ++k) d[k * width] = T(half_to_float(s[k]));
      } else {
        const uint16_t* s = static_cast<const uint16_t*>(row);
        for (int64_t k = ka; k < kb; ++k) d[k * width] = T(gemm_bf16_to_f32(s[k]));
      }
    }
  }
}

// The A-panel layout of gemm.h with G k per group: row r, k position kk of a panel of `width`
// rows lies at (kk/G)·width·G + r·G + kk%G. Writes rows r0 <= r < r1 (null or r >= nrows:
// zero) for kk in [k_lo, k_hi), reading rows[r][kk - k_off]. The portable path, also used for
// edges by the vector packers.
template <class T>
inline void gemm_pack_a_scalar(DType dt, const void* const* rows, int64_t nrows, int64_t k_off,
                               int64_t k_lo, int64_t k_hi, int64_t width, int64_t G, int64_t r0,
                               int64_t r1, T* panel) {
  for (int64_t r = r0; r < r1; ++r) {
    const void* row = r < nrows ? rows[r] : nullptr;
    for (int64_t kk = k_lo; kk < k_hi; ++kk) {
      const int64_t k = kk - k_off;
      T& d = panel[(kk / G) * width * G + r * G + kk % G];
      if (!row)
        d = T(0);
      else if (dt == DType::f32)
        d = T(static_cast<const float*>(row)[k]);
      else if (dt == DType::f64)
        d = T(static_cast<const double*>(row)[k]);
      else if (dt == DType::f16)
        d = T(half_to_float(static_cast<const uint16_t*>(row)[k]));
      else
        d = T(gemm_bf16_to_f32(static_cast<const uint16_t*>(row)[k]));
    }
  }
}

// gemm_pack_a_scalar over the segments of one panel of `width` rows, groups of G.
template <class T>
inline void gemm_pack_a_segments_scalar(DType dt, const GemmASegment* segs, int64_t nseg, int64_t nrows,
                                        int64_t width, int64_t G, T* panel) {
  for (int64_t i = 0; i < nseg; ++i)
    gemm_pack_a_scalar<T>(dt, segs[i].rows, nrows, segs[i].k_off, segs[i].k_off, segs[i].k_off + segs[i].kn,
                          width, G, 0, width, panel);
}

// The same for paths whose A groups are one k: that layout is the B layout of `width` rows,
// which the chunked (cache-friendly) row packer writes.
template <class T>
inline void gemm_pack_a_segments_k1(DType dt, const GemmASegment* segs, int64_t nseg, int64_t nrows,
                                    int64_t width, T* panel) {
  for (int64_t i = 0; i < nseg; ++i)
    gemm_pack_rows_scalar<T>(dt, segs[i].rows, nrows, 0, segs[i].kn, width, 0, width, panel + segs[i].k_off * width);
}

// c = dtype(acc (+ c)) for f16/bf16 C, one element; the vector stores must agree with it.
inline void gemm_store_scalar(const float* acc, int64_t ld_acc, int64_t m, int64_t n0, int64_t n1,
                              DType dt, void* c, int64_t ldc, bool accumulate) {
  for (int64_t r = 0; r < m; ++r) {
    uint16_t* cr = static_cast<uint16_t*>(c) + r * ldc;
    const float* ar = acc + r * ld_acc;
    for (int64_t j = n0; j < n1; ++j) {
      float v = ar[j];
      if (dt == DType::f16) {
        if (accumulate) v = v + half_to_float(cr[j]);
        cr[j] = float_to_half(v);
      } else {
        if (accumulate) v = v + gemm_bf16_to_f32(cr[j]);
        cr[j] = float_to_bf16(v);
      }
    }
  }
}

}  // namespace
}  // namespace convnd
