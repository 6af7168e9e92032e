// The weight gradient's kernels (see weight_grad.h for the mapping and the blocked reduction).
//
// wgrad_tiled_kernel: one block of threads per (64 x 64 tile of one group's dw, row block). It
// walks the block's rows in chunks of 16: each thread loads one row's dy at 4 output channels
// and its implicit-im2col x at 4 columns (registers, one chunk ahead), the block stores them in
// shared memory, and each thread adds the chunk's rows into its 4 x 4 outputs in row order.
// Rows past the block's end read as zeros.
//
// wgrad_depthwise_kernel: one input and one output channel per group (memory-bound). A thread
// owns `VEC` consecutive channels (one 16-byte vector) of one tap and walks its block's rows
// line by line (a line: the outputs along the last axis of one (n, p0, p1)), skipping lines
// whose tap falls in the padding and, without input dilation, the outputs whose tap does.
//
// wgrad_mma_kernel: the tiled kernel's tile for f16 and bf16 on the tensor cores (mma.sync
// m16n8k16, f32 accumulation), 4 warps of 32 x 32, in chunks of 32 rows (see above the kernel).
//
// wgrad_grouped_mma_kernel: the same on 64 / (O/g) groups at once for O/g of 8, 16 or 32,
// where the mma kernel's tile would be mostly zero rows (see above the kernel).
//
// wgrad_reduce_kernel: one thread per dw element adds the block partials of a launch in block
// order into its float64 running sum (Neumaier-compensated for f64), and rounds once into dw.
//
// Every sum runs in an order fixed by the shape and block_rows alone, so the bits are the same
// for any number of blocks per launch.
#include <algorithm>
#include <atomic>

#include "elem.cuh"
#include "mma_sync.cuh"
#include "smem_opt_in.h"
#include "weight_grad.h"

namespace convnd::cuda {

namespace {

constexpr int kThreads = kWeightGradThreads;
constexpr int BK = kWeightGradChunkRows;
constexpr int TO = kWeightGradTileO, TJ = kWeightGradTileJ;
static_assert(kThreads == 256 && TO == 64 && TJ == 64 && BK == 16, "the tiled kernel's thread layout");

// A row r = ((n·P0 + p0)·P1 + p1)·P2 + p2 of the reduction as coordinates.
struct RowPos {
  int64_t n;
  int32_t p0, p1, p2;
};

__device__ __forceinline__ RowPos row_pos(const WeightGradParams& p, int64_t r) {
  const int64_t plane = int64_t(p.out[1]) * p.out[2];
  const int64_t per_sample = plane * p.out[0];
  RowPos q;
  q.n = r / per_sample;
  int64_t rem = r - q.n * per_sample;
  q.p0 = int32_t(rem / plane);
  rem -= int64_t(q.p0) * plane;
  q.p1 = int32_t(rem / p.out[2]);
  q.p2 = int32_t(rem - int64_t(q.p1) * p.out[2]);
  return q;
}

// q advanced by `step` rows (step < 2^30).
__device__ __forceinline__ void advance(RowPos& q, const WeightGradParams& p, int32_t step) {
  q.p2 += step;
  if (q.p2 < p.out[2]) return;
  int32_t carry = q.p2 / p.out[2];
  q.p2 -= carry * p.out[2];
  q.p1 += carry;
  if (q.p1 < p.out[1]) return;
  carry = q.p1 / p.out[1];
  q.p1 -= carry * p.out[1];
  q.p0 += carry;
  if (q.p0 < p.out[0]) return;
  carry = q.p0 / p.out[0];
  q.p0 -= carry * p.out[0];
  q.n += carry;
}

// The input index along one axis of position d in the dilated input, false where d falls in
// the padding or on a zero inserted by input dilation (reference.cpp input_index).
template <bool IDIL>
__device__ __forceinline__ bool input_index(int32_t d, const FastDivmod& idil, int32_t in, int32_t* i) {
  if constexpr (IDIL) {
    if (d < 0) return false;
    uint32_t rem;
    const int32_t q = int32_t(idil.divmod(uint32_t(d), &rem));
    *i = q;
    return rem == 0 && q < in;
  } else {
    *i = d;
    return unsigned(d) < unsigned(in);
  }
}

// One column j = (k0, k1, k2, c) of a group's dw: the offsets its tap adds to an output
// position in the dilated input (flip: dw's tap k reads input tap K−1−k), and x's channel.
struct Column {
  int32_t off[3];
  int64_t ch;
  bool valid;
};

__device__ __forceinline__ Column column(const WeightGradParams& p, int64_t gi, int64_t j) {
  Column col{{0, 0, 0}, 0, j < p.columns};
  if (!col.valid) return col;
  const int64_t c = j % p.cg;
  int64_t t = j / p.cg;
  int32_t k[3];
  k[2] = int32_t(t % p.k[2]);
  t /= p.k[2];
  k[1] = int32_t(t % p.k[1]);
  k[0] = int32_t(t / p.k[1]);
#pragma unroll
  for (int a = 0; a < 3; ++a) col.off[a] = (p.flip ? p.k[a] - 1 - k[a] : k[a]) * p.kdil[a];
  col.ch = gi * p.cg + c;
  return col;
}

// Row position q's positions p·stride − lo per axis, before a column's tap offsets.
__device__ __forceinline__ void row_origin(const WeightGradParams& p, const RowPos& q, int32_t (&u)[3]) {
#pragma unroll
  for (int a = 0; a < 3; ++a) u[a] = (a == 0 ? q.p0 : a == 1 ? q.p1 : q.p2) * p.stride[a] - p.lo[a];
}

// The element offset in x of row position q (u: its row_origin) at column col (its tap and
// channel), or -1 where that input is padding, an inserted zero, or the row is not valid.
template <bool IDIL>
__device__ __forceinline__ int64_t im2col_offset(const WeightGradParams& p, const RowPos& q, const int32_t (&u)[3],
                                                 const Column& col, bool row_valid) {
  int32_t i[3];
  bool ok = row_valid && col.valid;
#pragma unroll
  for (int a = 0; a < 3; ++a) ok = ok && input_index<IDIL>(u[a] + col.off[a], p.div_idil[a], p.in[a], &i[a]);
  if (!ok) return -1;
  return (((q.n * p.in[0] + i[0]) * p.in[1] + i[1]) * p.in[2] + i[2]) * p.c + col.ch;
}

// x at row position q (u: its row_origin) and column col, 0 outside the input.
template <class T, bool IDIL>
__device__ __forceinline__ compute_t<T> load_x(const T* __restrict__ x, const WeightGradParams& p,
                                               const RowPos& q, const int32_t (&u)[3], const Column& col,
                                               bool row_valid) {
  const int64_t off = im2col_offset<IDIL>(p, q, u, col, row_valid);
  return off < 0 ? compute_t<T>(0) : load(x + off);
}

template <class C>
__device__ __forceinline__ void load4(const C* s, C (&v)[4]) {
  if constexpr (sizeof(C) == 4) {
    const float4 f = *reinterpret_cast<const float4*>(s);
    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
  } else {
    const double2 a = *reinterpret_cast<const double2*>(s);
    const double2 b = *reinterpret_cast<const double2*>(s + 2);
    v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
  }
}

// grid.x: (column tile, output-channel tile, group), column tiles fastest; grid.y: the row
// block (block0 + blockIdx.y), whose partial goes to partial[blockIdx.y].
template <class T, bool IDIL>
__global__ void __launch_bounds__(kThreads)
    wgrad_tiled_kernel(const WeightGradParams p, const int64_t block0, const FastDivmod jtiles,
                       const FastDivmod otiles) {
  using C = compute_t<T>;
  __shared__ __align__(16) C s_dy[BK][TO];  // [row][o]
  __shared__ __align__(16) C s_x[BK][TJ];   // [row][j]
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const int tid = threadIdx.x;
  uint32_t jt, ot;
  const uint32_t rest = jtiles.divmod(blockIdx.x, &jt);
  const int64_t gi = otiles.divmod(rest, &ot);
  const int64_t o0 = int64_t(ot) * TO, j0 = int64_t(jt) * TJ;
  const int64_t r_begin = (block0 + blockIdx.y) * p.block_rows;
  const int64_t r_end = min(r_begin + p.block_rows, p.rows);

  // Loads: row lr of each chunk, output channels and columns lc + 16·i.
  const int lr = tid >> 4, lc = tid & 15;
  Column cols[4];
  bool o_valid[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    cols[i] = column(p, gi, j0 + lc + 16 * i);
    o_valid[i] = o0 + lc + 16 * i < p.og;
  }
  const T* __restrict__ dy = static_cast<const T*>(p.dy) + gi * p.og + o0 + lc;  // [rows, O]
  int64_t r = r_begin + lr;
  RowPos q = row_pos(p, r);
  C rdy[4], rx[4];
  auto fetch = [&]() {
    const bool rv = r < r_end;
    int32_t u[3];
    row_origin(p, q, u);
#pragma unroll
    for (int i = 0; i < 4; ++i) rdy[i] = rv && o_valid[i] ? load(dy + r * p.o + 16 * i) : C(0);
#pragma unroll
    for (int i = 0; i < 4; ++i) rx[i] = load_x<T, IDIL>(x, p, q, u, cols[i], rv);
  };
  fetch();

  // Adds: output channels ty·4 + a, columns tx·4 + b.
  const int ty = tid >> 4, tx = tid & 15;
  C acc[4][4];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b) acc[a][b] = C(0);
  for (int64_t r0 = r_begin; r0 < r_end; r0 += BK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s_dy[lr][lc + 16 * i] = rdy[i];
      s_x[lr][lc + 16 * i] = rx[i];
    }
    __syncthreads();
    if (r0 + BK < r_end) {
      r += BK;
      advance(q, p, BK);
      fetch();
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      C av[4], bv[4];
      load4(&s_dy[kk][ty * 4], av);
      load4(&s_x[kk][tx * 4], bv);
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] = fma(av[a], bv[b], acc[a][b]);
    }
    __syncthreads();
  }

  C* out = static_cast<C*>(p.partial) + int64_t(blockIdx.y) * p.w_elems;
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int64_t o = o0 + ty * 4 + a;
    if (o >= p.og) continue;
    C* row = out + (gi * p.og + o) * p.columns;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int64_t j = j0 + tx * 4 + b;
      if (j < p.columns) row[j] = acc[a][b];
    }
  }
}

// VEC elements at p converted to the compute type (one 16-byte load when VEC > 1).
template <class T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, compute_t<T> (&out)[VEC]) {
  if constexpr (VEC == 1) {
    out[0] = load(p);
  } else {
    static_assert(VEC * sizeof(T) == 16, "16-byte vectors");
    struct alignas(16) Pack {
      T v[VEC];
    };
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const Pack pk = *reinterpret_cast<const Pack*>(&u);
#pragma unroll
    for (int e = 0; e < VEC; ++e) out[e] = to_compute(pk.v[e]);
  }
}

// grid.x: (channel vector, tap) pairs, channel vectors fastest; grid.y: the row block.
template <class T, int VEC, bool IDIL>
__global__ void __launch_bounds__(kThreads)
    wgrad_depthwise_kernel(const WeightGradParams p, const int64_t block0, const int64_t cvecs,
                           const int64_t taps) {
  using C = compute_t<T>;
  const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (e >= cvecs * taps) return;
  const int64_t tap = e / cvecs, c0 = (e - tap * cvecs) * VEC;
  int32_t off[3];
  {
    int32_t k[3];
    k[2] = int32_t(tap % p.k[2]);
    const int64_t t = tap / p.k[2];
    k[1] = int32_t(t % p.k[1]);
    k[0] = int32_t(t / p.k[1]);
#pragma unroll
    for (int a = 0; a < 3; ++a) off[a] = (p.flip ? p.k[a] - 1 - k[a] : k[a]) * p.kdil[a];
  }
  const T* __restrict__ x = static_cast<const T*>(p.x) + c0;
  const T* __restrict__ dy = static_cast<const T*>(p.dy) + c0;
  const int64_t r_begin = (block0 + blockIdx.y) * p.block_rows;
  const int64_t r_end = min(r_begin + p.block_rows, p.rows);
  const int32_t s2 = p.stride[2], in2 = p.in[2];

  C acc[VEC];
#pragma unroll
  for (int v = 0; v < VEC; ++v) acc[v] = C(0);
  RowPos q = row_pos(p, r_begin);
  for (int64_t r = r_begin; r < r_end;) {
    const int32_t len = int32_t(min(int64_t(p.out[2] - q.p2), r_end - r));  // outputs left on this line
    int32_t i0, i1;
    if (input_index<IDIL>(q.p0 * p.stride[0] - p.lo[0] + off[0], p.div_idil[0], p.in[0], &i0) &&
        input_index<IDIL>(q.p1 * p.stride[1] - p.lo[1] + off[1], p.div_idil[1], p.in[1], &i1)) {
      const T* xl = x + ((q.n * p.in[0] + i0) * p.in[1] + i1) * int64_t(in2) * p.c;
      const T* dyl = dy + r * p.o;
      const int32_t d = q.p2 * s2 - p.lo[2] + off[2];  // output t of the line reads d + t·s2
      if constexpr (!IDIL) {
        // The outputs t in [t_lo, t_hi) read 0 <= d + t·s2 < in2.
        const int32_t t_lo = d >= 0 ? 0 : (s2 - 1 - d) / s2;
        const int32_t t_hi = min(len, d >= in2 ? 0 : (in2 - d + s2 - 1) / s2);
        for (int32_t t = t_lo; t < t_hi; ++t) {
          C dv[VEC], xv[VEC];
          load_vec<T, VEC>(dyl + int64_t(t) * p.o, dv);
          load_vec<T, VEC>(xl + int64_t(d + t * s2) * p.c, xv);
#pragma unroll
          for (int v = 0; v < VEC; ++v) acc[v] = fma(dv[v], xv[v], acc[v]);
        }
      } else {
        for (int32_t t = 0; t < len; ++t) {
          int32_t i2;
          if (!input_index<true>(d + t * s2, p.div_idil[2], in2, &i2)) continue;
          C dv[VEC], xv[VEC];
          load_vec<T, VEC>(dyl + int64_t(t) * p.o, dv);
          load_vec<T, VEC>(xl + int64_t(i2) * p.c, xv);
#pragma unroll
          for (int v = 0; v < VEC; ++v) acc[v] = fma(dv[v], xv[v], acc[v]);
        }
      }
    }
    r += len;
    q.p2 += len;
    if (q.p2 == p.out[2]) {
      q.p2 = 0;
      if (++q.p1 == p.out[1]) {
        q.p1 = 0;
        if (++q.p0 == p.out[0]) {
          q.p0 = 0;
          ++q.n;
        }
      }
    }
  }
  // dw [C, taps]: channel c0 + v, tap `tap`.
  C* out = static_cast<C*>(p.partial) + int64_t(blockIdx.y) * p.w_elems;
#pragma unroll
  for (int v = 0; v < VEC; ++v) out[(c0 + v) * taps + tap] = acc[v];
}

// ---- the tensor-core partials (f16, bf16) ----------------------------------------------------
// The same 64 x 64 tile as the tiled kernel, with 4 warps of 32 x 32 on mma.sync m16n8k16 (f32
// accumulation). A chunk of 32 rows of dy [row][o] and of im2col(x) [row][j] goes global ->
// registers (one chunk ahead, 8 elements a load: C/g and O/g are multiples of 8, so 8 columns
// never straddle a tap) -> shared memory (two stages, rows padded to 72 elements so that
// ldmatrix reads are free of bank conflicts); both operands are K-major there (K = rows), so
// the fragments come through ldmatrix.trans. The unaligned form loads element by element and
// fills shared memory with the same bits.
constexpr int kMmaThreads = 128;
constexpr int MK = kWeightGradMmaChunkRows;
constexpr int kPad = 72;  // shared row stride (elements): 144 bytes
static_assert(MK == 32 && kMmaThreads == 128, "the mma kernel's thread layout");

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned addr, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 8 consecutive 16-bit elements at p as raw bits: one 16-byte load, or 8 loads when p may be
// unaligned.
template <bool VEC>
__device__ __forceinline__ uint4 load8(const void* p) {
  if constexpr (VEC) {
    return __ldg(reinterpret_cast<const uint4*>(p));
  } else {
    const unsigned short* s = static_cast<const unsigned short*>(p);
    unsigned w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = unsigned(__ldg(s + 2 * i)) | (unsigned(__ldg(s + 2 * i + 1)) << 16);
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// grid as wgrad_tiled_kernel's.
template <class T, bool IDIL, bool VEC>
__global__ void __launch_bounds__(kMmaThreads)
    wgrad_mma_kernel(const WeightGradParams p, const int64_t block0, const FastDivmod jtiles,
                     const FastDivmod otiles) {
  __shared__ __align__(16) T s_dy[2][MK][kPad];  // [stage][row][o]
  __shared__ __align__(16) T s_x[2][MK][kPad];   // [stage][row][j]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  uint32_t jt, ot;
  const uint32_t rest = jtiles.divmod(blockIdx.x, &jt);
  const int64_t gi = otiles.divmod(rest, &ot);
  const int64_t o0 = int64_t(ot) * TO, j0 = int64_t(jt) * TJ;
  const int64_t r_begin = (block0 + blockIdx.y) * p.block_rows;
  const int64_t r_end = min(r_begin + p.block_rows, p.rows);

  // Loads: rows lr and lr + 16 of each chunk, 8 output channels and 8 columns from 8·lc.
  const int lr = tid >> 3, lc = tid & 7;
  const bool o_valid = o0 + 8 * lc < p.og;
  const Column col = column(p, gi, j0 + 8 * lc);
  const T* __restrict__ dy = static_cast<const T*>(p.dy) + gi * p.og + o0 + 8 * lc;  // [rows, O]
  const T* __restrict__ x = static_cast<const T*>(p.x);
  int64_t r[2] = {r_begin + lr, r_begin + lr + 16};
  RowPos q[2] = {row_pos(p, r[0]), row_pos(p, r[1])};
  uint4 rdy[2], rx[2];
  auto fetch = [&]() {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const bool rv = r[h] < r_end;
      rdy[h] = rv && o_valid ? load8<VEC>(dy + r[h] * p.o) : make_uint4(0, 0, 0, 0);
      int32_t u[3];
      row_origin(p, q[h], u);
      const int64_t off = im2col_offset<IDIL>(p, q[h], u, col, rv);
      rx[h] = off >= 0 ? load8<VEC>(x + off) : make_uint4(0, 0, 0, 0);
    }
  };
  auto stash = [&](int s) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      *reinterpret_cast<uint4*>(&s_dy[s][lr + 16 * h][8 * lc]) = rdy[h];
      *reinterpret_cast<uint4*>(&s_x[s][lr + 16 * h][8 * lc]) = rx[h];
    }
  };
  fetch();
  stash(0);
  __syncthreads();

  // Warp (wm, wn) owns output channels wm·32 + [0, 32) and columns wn·32 + [0, 32) of the tile.
  const int wm = warp >> 1, wn = warp & 1;
  const int q8 = lane >> 3, i8 = lane & 7;  // this lane's ldmatrix row: matrix q8, row i8
  float acc[2][4][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
  const int64_t chunks = (r_end - r_begin + MK - 1) / MK;
  for (int64_t c = 0; c < chunks; ++c) {
    const int s = int(c & 1);
    const bool more = c + 1 < chunks;
    if (more) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        r[h] += MK;
        advance(q[h], p, MK);
      }
      fetch();
    }
#pragma unroll
    for (int k0 = 0; k0 < MK; k0 += 16) {
      // A (16 o x 16 rows) of m-tile mt: matrices (o 0-7, rows 0-7), (o 8-15, rows 0-7),
      // (o 0-7, rows 8-15), (o 8-15, rows 8-15). B (16 rows x 8 j) of n-tiles 2·np and
      // 2·np + 1: matrices (rows 0-7, j 0-7), (rows 8-15, j 0-7), (rows 0-7, j 8-15),
      // (rows 8-15, j 8-15). Both stored [row][o or j]: transposed loads.
      unsigned a[2][4], b[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
        ldmatrix_x4_trans(smem_addr(&s_dy[s][k0 + i8 + 8 * (q8 >> 1)][wm * 32 + mt * 16 + 8 * (q8 & 1)]),
                          a[mt]);
#pragma unroll
      for (int np = 0; np < 2; ++np)
        ldmatrix_x4_trans(smem_addr(&s_x[s][k0 + i8 + 8 * (q8 & 1)][wn * 32 + np * 16 + 8 * (q8 >> 1)]),
                          b[np]);
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
          mma_16816<T>(acc[mt][nt], a[mt], b[nt >> 1][(nt & 1) * 2], b[nt >> 1][(nt & 1) * 2 + 1]);
    }
    if (more) stash(s ^ 1);
    __syncthreads();
  }

  // Accumulator element e of (mt, nt): o = g + 8·(e / 2), j = 2·tg + e % 2 within the m16n8 tile.
  float* out = static_cast<float*>(p.partial) + int64_t(blockIdx.y) * p.w_elems;
  const int g = lane >> 2, tg = lane & 3;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t o = o0 + wm * 32 + mt * 16 + g + 8 * h;
      if (o >= p.og) continue;
      float* row = out + (gi * p.og + o) * p.columns;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t j = j0 + wn * 32 + nt * 8 + 2 * tg + e;
          if (j < p.columns) row[j] = acc[mt][nt][2 * h + e];
        }
    }
}

// ---- the grouped tensor-core partials (f16, bf16; O/g of 8, 16 or 32) -----------------------
// The mma kernel's 64 x 64 tile is one group's: at O/g = 8 seven eighths of its rows are
// zeros. Here a block takes GB = 64 / (O/g) groups (their 64 output channels are contiguous in
// dy) and 64 columns j of each, and computes each group's dw^T tile [j][o]: A = im2col(x)^T
// (16 j x 16 rows, one A tile per group), B = dy (16 rows x 8 outputs of the group). Rows come
// in the same chunks of 32 as the mma kernel's, global -> registers (one chunk ahead, 8
// elements a load) -> shared memory (two stages, rows padded to 72 elements), fragments
// through ldmatrix.trans; every sum runs over its block's rows in order, 16 at a time.
// Warps: for GB >= 4 each takes GB/4 groups and all 64 columns; for GB = 2 two warps share a
// group, 32 columns each.
template <int OG>
constexpr int kWgGroups = 64 / OG;
template <int OG>
constexpr int grouped_smem_bytes(int elem_bytes) {
  return 2 * (1 + kWgGroups<OG>) * MK * kPad * elem_bytes;
}

// grid.x: (column tile, group block), column tiles fastest; grid.y: the row block.
template <class T, bool IDIL, bool VEC, int OG>
__global__ void __launch_bounds__(kMmaThreads)
    wgrad_grouped_mma_kernel(const WeightGradParams p, const int64_t block0, const FastDivmod jtiles) {
  constexpr int GB = kWgGroups<OG>, GW = GB >= 4 ? GB / 4 : 1, WPG = GB >= 4 ? 1 : 4 / GB;
  constexpr int MT = 4 / WPG, F = OG / 8, NB = GW * F;  // NB: the warp's 8-output B tiles
  static_assert(NB % 2 == 0, "B fragments come in pairs (ldmatrix x4)");
  extern __shared__ __align__(16) unsigned char wg_smem[];
  T(*s_dy)[MK][kPad] = reinterpret_cast<T(*)[MK][kPad]>(wg_smem);  // [stage][row][o]
  T(*s_x)[GB][MK][kPad] = reinterpret_cast<T(*)[GB][MK][kPad]>(wg_smem + 2 * MK * kPad * sizeof(T));  // [stage][g][row][j]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  uint32_t jt;
  const int64_t q0 = int64_t(jtiles.divmod(blockIdx.x, &jt)) * GB;
  const int groups_here = p.groups - q0 < GB ? int(p.groups - q0) : GB;
  const int64_t j0 = int64_t(jt) * TJ;
  const int64_t r_begin = (block0 + blockIdx.y) * p.block_rows;
  const int64_t r_end = min(r_begin + p.block_rows, p.rows);

  // Loads: rows lr and lr + 16 of each chunk; dy at 8 outputs from 8·lc (group 8·lc / O/g);
  // x at columns j0 + 8·lc of every group.
  const int lr = tid >> 3, lc = tid & 7;
  const bool o_valid = (8 * lc) / OG < groups_here;
  const Column col = column(p, q0, j0 + 8 * lc);
  const T* __restrict__ dy = static_cast<const T*>(p.dy) + q0 * OG + 8 * lc;  // [rows, O]
  const T* __restrict__ x = static_cast<const T*>(p.x);
  int64_t r[2] = {r_begin + lr, r_begin + lr + 16};
  RowPos q[2] = {row_pos(p, r[0]), row_pos(p, r[1])};
  uint4 rdy[2], rx[2][GB];
  auto fetch = [&]() {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const bool rv = r[h] < r_end;
      rdy[h] = rv && o_valid ? load8<VEC>(dy + r[h] * p.o) : make_uint4(0, 0, 0, 0);
      int32_t u[3];
      row_origin(p, q[h], u);
      const int64_t off = im2col_offset<IDIL>(p, q[h], u, col, rv);
#pragma unroll
      for (int g = 0; g < GB; ++g)
        rx[h][g] = off >= 0 && g < groups_here ? load8<VEC>(x + off + g * p.cg) : make_uint4(0, 0, 0, 0);
    }
  };
  auto stash = [&](int s) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      *reinterpret_cast<uint4*>(&s_dy[s][lr + 16 * h][8 * lc]) = rdy[h];
#pragma unroll
      for (int g = 0; g < GB; ++g) *reinterpret_cast<uint4*>(&s_x[s][g][lr + 16 * h][8 * lc]) = rx[h][g];
    }
  };
  fetch();
  stash(0);
  __syncthreads();

  const int warp_g = GB >= 4 ? warp * GW : warp % GB;       // the warp's first group (block-relative)
  const int warp_j = GB >= 4 ? 0 : (warp / GB) * (64 / WPG);  // ... and first column
  const int q8 = lane >> 3, i8 = lane & 7;  // this lane's ldmatrix row: matrix q8, row i8
  float acc[GW][MT][F][4];
#pragma unroll
  for (int gw = 0; gw < GW; ++gw)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int f = 0; f < F; ++f)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[gw][mt][f][e] = 0.f;
  const int64_t chunks = (r_end - r_begin + MK - 1) / MK;
  for (int64_t c = 0; c < chunks; ++c) {
    const int s = int(c & 1);
    const bool more = c + 1 < chunks;
    if (more) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        r[h] += MK;
        advance(q[h], p, MK);
      }
      fetch();
    }
#pragma unroll
    for (int k0 = 0; k0 < MK; k0 += 16) {
      // B (16 rows x 8 outputs) of the warp's B tiles 2·np and 2·np + 1: matrices (rows 0-7,
      // o 0-7), (rows 8-15, o 0-7), (rows 0-7, o 8-15), (rows 8-15, o 8-15), stored [row][o].
      unsigned b[NB / 2][4];
#pragma unroll
      for (int np = 0; np < NB / 2; ++np)
        ldmatrix_x4_trans(smem_addr(&s_dy[s][k0 + i8 + 8 * (q8 & 1)][warp_g * OG + np * 16 + 8 * (q8 >> 1)]), b[np]);
#pragma unroll
      for (int gw = 0; gw < GW; ++gw)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          // A (16 j x 16 rows): matrices (j 0-7, rows 0-7), (j 8-15, rows 0-7), (j 0-7, rows
          // 8-15), (j 8-15, rows 8-15), stored [row][j].
          unsigned a[4];
          ldmatrix_x4_trans(
              smem_addr(&s_x[s][warp_g + gw][k0 + i8 + 8 * (q8 >> 1)][warp_j + mt * 16 + 8 * (q8 & 1)]), a);
#pragma unroll
          for (int f = 0; f < F; ++f) {
            const int nt = gw * F + f;
            mma_16816<T>(acc[gw][mt][f], a, b[nt >> 1][(nt & 1) * 2], b[nt >> 1][(nt & 1) * 2 + 1]);
          }
        }
    }
    if (more) stash(s ^ 1);
    __syncthreads();
  }

  // Accumulator element e of (mt, f): j = g8 + 8·(e / 2), o = 2·tg + e % 2 within the m16n8 tile.
  float* out = static_cast<float*>(p.partial) + int64_t(blockIdx.y) * p.w_elems;
  const int g8 = lane >> 2, tg = lane & 3;
#pragma unroll
  for (int gw = 0; gw < GW; ++gw) {
    const int gl = warp_g + gw;
    if (gl >= groups_here) continue;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t j = j0 + warp_j + mt * 16 + g8 + 8 * h;
        if (j >= p.columns) continue;
#pragma unroll
        for (int f = 0; f < F; ++f)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t o = (q0 + gl) * OG + f * 8 + 2 * tg + e;
            out[o * p.columns + j] = acc[gw][mt][f][2 * h + e];
          }
      }
  }
}

// The float64 running sum rounded once to T.
template <class T>
__device__ __forceinline__ T round_once(double v);
template <>
__device__ __forceinline__ float round_once<float>(double v) {
  return __double2float_rn(v);
}
template <>
__device__ __forceinline__ double round_once<double>(double v) {
  return v;
}
template <>
__device__ __forceinline__ __half round_once<__half>(double v) {
  return __double2half(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 round_once<__nv_bfloat16>(double v) {
  return __double2bfloat16(v);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    wgrad_reduce_kernel(const WeightGradParams p, const int64_t count, const bool first, const bool last) {
  using C = compute_t<T>;
  const C* __restrict__ part = static_cast<const C*>(p.partial);
  double* __restrict__ acc = static_cast<double*>(p.acc);
  T* __restrict__ dw = static_cast<T*>(p.dw);
  const int64_t w = p.w_elems;
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < w; e += int64_t(gridDim.x) * kThreads) {
    double s = first ? 0.0 : acc[e];
    if constexpr (sizeof(T) == 8) {
      // Neumaier: comp collects what each addition rounded away.
      double comp = first ? 0.0 : acc[w + e];
      for (int64_t b = 0; b < count; ++b) {
        const double v = part[b * w + e];
        const double t = s + v;
        comp += fabs(s) >= fabs(v) ? (s - t) + v : (v - t) + s;
        s = t;
      }
      if (last) {
        dw[e] = round_once<T>(s + comp);
      } else {
        acc[e] = s;
        acc[w + e] = comp;
      }
    } else {
      for (int64_t b = 0; b < count; ++b) s += double(part[b * w + e]);
      if (last)
        dw[e] = round_once<T>(s);
      else
        acc[e] = s;
    }
  }
}

template <class T, bool IDIL>
cudaError_t launch_tiled(const WeightGradParams& p, int64_t block0, int64_t count, cudaStream_t stream) {
  const int64_t jtiles = (p.columns + TJ - 1) / TJ, otiles = (p.og + TO - 1) / TO;
  const int64_t tiles = jtiles * otiles * p.groups;
  if (tiles >= 0x7fffffff) return cudaErrorInvalidValue;
  wgrad_tiled_kernel<T, IDIL><<<dim3(unsigned(tiles), unsigned(count)), kThreads, 0, stream>>>(
      p, block0, FastDivmod(jtiles), FastDivmod(otiles));
  return cudaGetLastError();
}

template <class T, bool IDIL, bool VEC>
cudaError_t launch_mma(const WeightGradParams& p, int64_t block0, int64_t count, cudaStream_t stream) {
  const int64_t jtiles = (p.columns + TJ - 1) / TJ, otiles = (p.og + TO - 1) / TO;
  const int64_t tiles = jtiles * otiles * p.groups;
  if (tiles >= 0x7fffffff) return cudaErrorInvalidValue;
  wgrad_mma_kernel<T, IDIL, VEC><<<dim3(unsigned(tiles), unsigned(count)), kMmaThreads, 0, stream>>>(
      p, block0, FastDivmod(jtiles), FastDivmod(otiles));
  return cudaGetLastError();
}

template <class T, bool IDIL, bool VEC, int OG>
cudaError_t launch_grouped_mma_og(const WeightGradParams& p, int64_t block0, int64_t count, cudaStream_t stream) {
  constexpr int GB = kWgGroups<OG>;
  const int64_t jtiles = (p.columns + TJ - 1) / TJ, gblocks = (p.groups + GB - 1) / GB;
  const int64_t tiles = jtiles * gblocks;
  if (tiles >= 0x7fffffff) return cudaErrorInvalidValue;
  constexpr int bytes = grouped_smem_bytes<OG>(int(sizeof(T)));
  auto kernel = wgrad_grouped_mma_kernel<T, IDIL, VEC, OG>;
  static std::atomic<uint64_t> opted_in{0};
  const cudaError_t attr = opt_in_shared_memory(reinterpret_cast<const void*>(kernel), bytes, &opted_in);
  if (attr != cudaSuccess) return attr;
  kernel<<<dim3(unsigned(tiles), unsigned(count)), kMmaThreads, bytes, stream>>>(p, block0, FastDivmod(jtiles));
  return cudaGetLastError();
}

template <class T, bool IDIL, bool VEC>
cudaError_t launch_grouped_mma(const WeightGradParams& p, int64_t block0, int64_t count, cudaStream_t stream) {
  if (p.og == 8) return launch_grouped_mma_og<T, IDIL, VEC, 8>(p, block0, count, stream);
  if (p.og == 16) return launch_grouped_mma_og<T, IDIL, VEC, 16>(p, block0, count, stream);
  if (p.og == 32) return launch_grouped_mma_og<T, IDIL, VEC, 32>(p, block0, count, stream);
  return cudaErrorInvalidValue;
}

template <class T, int VEC, bool IDIL>
cudaError_t launch_depthwise(const WeightGradParams& p, int64_t block0, int64_t count, cudaStream_t stream) {
  if (p.c % VEC != 0) return cudaErrorInvalidValue;
  const int64_t cvecs = p.c / VEC, taps = int64_t(p.k[0]) * p.k[1] * p.k[2];
  const int64_t blocks = (cvecs * taps + kThreads - 1) / kThreads;
  if (blocks >= 0x7fffffff) return cudaErrorInvalidValue;
  wgrad_depthwise_kernel<T, VEC, IDIL>
      <<<dim3(unsigned(blocks), unsigned(count)), kThreads, 0, stream>>>(p, block0, cvecs, taps);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_weight_grad_partials(const WeightGradParams& p, WeightGradKernel kernel, int vec,
                                        int64_t block0, int64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (count < 0 || count > 65535 || block0 < 0 || p.block_rows <= 0 || p.w_elems == 0)
    return cudaErrorInvalidValue;
  const bool idil = p.idil[0] != 1 || p.idil[1] != 1 || p.idil[2] != 1;
  return dispatch_elem(p.elem, [&](auto tag) -> cudaError_t {
    using T = typename decltype(tag)::type;
    switch (kernel) {
      case WeightGradKernel::tiled:
        if (p.block_rows % BK != 0) return cudaErrorInvalidValue;
        return idil ? launch_tiled<T, true>(p, block0, count, stream)
                    : launch_tiled<T, false>(p, block0, count, stream);
      case WeightGradKernel::depthwise: {
        if (p.cg != 1 || p.og != 1) return cudaErrorInvalidValue;
        constexpr int V = int(16 / sizeof(T));
        if (vec == V)
          return idil ? launch_depthwise<T, V, true>(p, block0, count, stream)
                      : launch_depthwise<T, V, false>(p, block0, count, stream);
        if (vec == 1)
          return idil ? launch_depthwise<T, 1, true>(p, block0, count, stream)
                      : launch_depthwise<T, 1, false>(p, block0, count, stream);
        return cudaErrorInvalidValue;
      }
      case WeightGradKernel::mma:
        if constexpr (sizeof(T) == 2) {
          // C/g and O/g multiples of 8 (so are C and O); vec 8: x and dy 16-byte aligned.
          if (p.cg % 8 != 0 || p.og % 8 != 0 || p.block_rows % MK != 0 || (vec != 1 && vec != 8))
            return cudaErrorInvalidValue;
          if (vec == 8)
            return idil ? launch_mma<T, true, true>(p, block0, count, stream)
                        : launch_mma<T, false, true>(p, block0, count, stream);
          return idil ? launch_mma<T, true, false>(p, block0, count, stream)
                      : launch_mma<T, false, false>(p, block0, count, stream);
        } else {
          return cudaErrorInvalidValue;
        }
      case WeightGradKernel::grouped_mma:
        if constexpr (sizeof(T) == 2) {
          // C/g a multiple of 8, O/g 8, 16 or 32; vec 8: x and dy 16-byte aligned.
          if (p.cg % 8 != 0 || p.block_rows % MK != 0 || (vec != 1 && vec != 8)) return cudaErrorInvalidValue;
          if (vec == 8)
            return idil ? launch_grouped_mma<T, true, true>(p, block0, count, stream)
                        : launch_grouped_mma<T, false, true>(p, block0, count, stream);
          return idil ? launch_grouped_mma<T, true, false>(p, block0, count, stream)
                      : launch_grouped_mma<T, false, false>(p, block0, count, stream);
        } else {
          return cudaErrorInvalidValue;
        }
    }
    return cudaErrorInvalidValue;
  });
}

cudaError_t launch_weight_grad_reduce(const WeightGradParams& p, int64_t count, bool first, bool last,
                                      cudaStream_t stream) {
  if (p.w_elems == 0) return cudaSuccess;
  if (count < 0 || (!(first && last) && p.acc == nullptr)) return cudaErrorInvalidValue;
  return dispatch_elem(p.elem, [&](auto tag) -> cudaError_t {
    using T = typename decltype(tag)::type;
    wgrad_reduce_kernel<T>
        <<<grid_for(p.w_elems, kThreads, 2048), kThreads, 0, stream>>>(p, count, first, last);
    return cudaGetLastError();
  });
}

}  // namespace convnd::cuda
