// The implicit GEMM kernels' index math (see gemm_conv.cuh for the mapping): plain C++ that
// also compiles for the device, so that host tests compare it with the conv's definition.
#pragma once
#include <cstdint>

#include "params.h"

namespace convnd::cuda {

/// One output row (pixel) of a block tile, computed once per block by one thread.
struct GemmRow {
  int64_t x_off;  // element offset in x of (n, b0, b1, b2, q·cg); any value when invalid
  int64_t y_off;  // element offset in y of the row's first channel of group q; −1: no such row
  int32_t b[3];   // a·stride − lo per axis; b[0] = kNoRow when the row is past M
  int32_t pad;
};
constexpr int32_t kNoRow = -(1 << 30);  // b[0] of a missing row: no tap brings it inside x

/// Row m of group q (m < 2^31: the host launches fewer rows).
CONVND_HD GemmRow gemm_row(const GemmConvParams& p, int64_t m, int64_t q) {
  GemmRow row;
  if (m < p.m) {
    uint32_t a2, a1, a0;
    uint32_t rest = p.div_out[2].divmod(uint32_t(m), &a2);
    rest = p.div_out[1].divmod(rest, &a1);
    const int64_t n = p.div_out[0].divmod(rest, &a0);
    const int32_t a[3] = {int32_t(a0), int32_t(a1), int32_t(a2)};
#pragma unroll
    for (int j = 0; j < 3; ++j) row.b[j] = a[j] * p.stride[j] - p.lo[j];
    row.x_off = (((n * p.in[0] + row.b[0]) * p.in[1] + row.b[1]) * p.in[2] + row.b[2]) * p.c + q * p.cg;
    row.y_off = (((n * p.y_out[0] + p.first[0] + int64_t(p.step[0]) * a[0]) * p.y_out[1] + p.first[1] +
                  int64_t(p.step[1]) * a[1]) *
                     p.y_out[2] +
                 p.first[2] + int64_t(p.step[2]) * a[2]) *
                    p.o +
                q * p.og;
  } else {
    row.b[0] = kNoRow;
    row.b[1] = row.b[2] = 0;
    row.x_off = 0;
    row.y_off = -1;
  }
  row.pad = 0;
  return row;
}

/// Whether tap offsets d (t·dil per axis) bring row b inside x.
CONVND_HD bool row_inside(const GemmConvParams& p, int32_t b0, int32_t b1, int32_t b2,
                          const int32_t (&d)[3]) {
  return unsigned(b0 + d[0]) < unsigned(p.in[0]) && unsigned(b1 + d[1]) < unsigned(p.in[1]) &&
         unsigned(b2 + d[2]) < unsigned(p.in[2]);
}

/// A thread's position in K for chunks of `width` channels that never straddle a tap (cg a
/// multiple of width): the tap (t0, t1, t2), the channel c inside it, the offsets that tap and
/// channel add in x and in w, and k itself. advance(step) moves to k + step.
struct TapWalk {
  int32_t t[3];
  int32_t d[3];  // t·dil per axis
  int32_t c;
  int32_t k;        // K < 2^31 (the host checks)
  int64_t x_tap;  // ((d0·I1 + d1)·I2 + d2)·C + c
  int64_t w_tap;  // ((kk0·WK1 + kk1)·WK2 + kk2)·cg + c, kk = k_first + t·k_step

  CONVND_HD void offsets(const GemmConvParams& p) {
#pragma unroll
    for (int j = 0; j < 3; ++j) d[j] = t[j] * p.dil[j];
    x_tap = ((int64_t(d[0]) * p.in[1] + d[1]) * p.in[2] + d[2]) * p.c + c;
    const int64_t kk0 = p.k_first[0] + t[0] * p.k_step[0], kk1 = p.k_first[1] + t[1] * p.k_step[1],
                  kk2 = p.k_first[2] + t[2] * p.k_step[2];
    w_tap = ((kk0 * p.w_k[1] + kk1) * p.w_k[2] + kk2) * p.cg + c;
  }
  CONVND_HD void next_taps(const GemmConvParams& p) {
    while (c >= p.cg) {
      c -= int32_t(p.cg);
      if (++t[2] == p.taps[2]) {
        t[2] = 0;
        if (++t[1] == p.taps[1]) {
          t[1] = 0;
          ++t[0];
        }
      }
    }
    offsets(p);
  }
  CONVND_HD void start(const GemmConvParams& p, int32_t k0) {
    t[0] = t[1] = t[2] = 0;
    c = k0;
    k = k0;
    next_taps(p);
  }
  CONVND_HD void advance(const GemmConvParams& p, int32_t step) {
    c += step;
    k += step;
    if (c >= p.cg) {
      next_taps(p);
    } else {
      x_tap += step;
      w_tap += step;
    }
  }
};

/// Element k of the K walk decomposed from scratch (the loaders for unaligned channel counts):
/// the offsets of x and w it adds, or valid = false past K. The tap's per-axis t·dil in d.
struct TapPoint {
  bool valid;
  int32_t d[3];
  int64_t x_tap, w_tap;
};
CONVND_HD TapPoint tap_point(const GemmConvParams& p, int64_t k) {
  TapPoint tp;
  tp.valid = k < p.k;
  if (!tp.valid) {
    tp.d[0] = tp.d[1] = tp.d[2] = 0;
    tp.x_tap = tp.w_tap = 0;
    return tp;
  }
  uint32_t c, t2, t1;
  const uint32_t tap = p.div_cg.divmod(uint32_t(k), &c);
  const uint32_t r = p.div_taps[2].divmod(tap, &t2);
  const uint32_t t0 = p.div_taps[1].divmod(r, &t1);
  const int32_t t[3] = {int32_t(t0), int32_t(t1), int32_t(t2)};
#pragma unroll
  for (int j = 0; j < 3; ++j) tp.d[j] = t[j] * p.dil[j];
  tp.x_tap = ((int64_t(tp.d[0]) * p.in[1] + tp.d[1]) * p.in[2] + tp.d[2]) * p.c + c;
  const int64_t kk0 = p.k_first[0] + t[0] * p.k_step[0], kk1 = p.k_first[1] + t[1] * p.k_step[1],
                kk2 = p.k_first[2] + t[2] * p.k_step[2];
  tp.w_tap = ((kk0 * p.w_k[1] + kk1) * p.w_k[2] + kk2) * p.cg + c;
  return tp;
}

}  // namespace convnd::cuda
